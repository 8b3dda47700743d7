//! Following a powkit chain: linking blocks to the tip, the header rules with context (ASERT
//! difficulty, median time past, the 2-hour limit), and the state transitions. Used by
//! `powkit validate --chain powkit|powkit-regtest` and `powkit chain generate`.

use std::collections::VecDeque;

use super::block::LedgerBlock;
use super::params::LedgerParams;
use crate::consensus::asert::asert_next_bits;
use crate::consensus::ledger::{self as lrules, LedgerError};
use crate::consensus::rules::{self, RuleError};
use crate::primitives::{BlockHash, CompactTarget, U256};
use crate::state::accounts::{State, Undo};

/// A broken rule, Bitcoin-style header rule or powkit rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// A header rule shared with Bitcoin (proof of work, time).
    #[error(transparent)]
    Header(#[from] RuleError),
    /// A powkit block or state rule.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl ChainError {
    /// The rule function that failed.
    pub fn rule(&self) -> &'static str {
        match self {
            ChainError::Header(e) => e.rule(),
            ChainError::Ledger(e) => e.rule(),
        }
    }

    /// Whether the failure depends on the validator's clock ([`RuleError::depends_on_local_clock`]).
    pub fn depends_on_local_clock(&self) -> bool {
        matches!(self, ChainError::Header(e) if e.depends_on_local_clock())
    }

    /// Whether the failure is of the proof of work itself ([`RuleError::is_proof_of_work_failure`]).
    pub fn is_proof_of_work_failure(&self) -> bool {
        matches!(self, ChainError::Header(e) if e.is_proof_of_work_failure())
    }
}

/// The bits a block needs on top of a parent at `parent_height` with time `parent_time`: ASERT
/// anchored at genesis, whose parent's time is taken as `genesis.time - target_spacing`
/// (docs/CONSENSUS.md, "Difficulty").
pub fn next_bits(params: &LedgerParams, parent_height: u32, parent_time: u32) -> CompactTarget {
    let g = &params.genesis.header;
    let anchor_parent_time = g.time as i64 - params.target_spacing;
    asert_next_bits(
        g.bits,
        parent_time as i64 - anchor_parent_time,
        parent_height as i64,
        params.target_spacing,
        params.half_life,
        params.pow_limit,
    )
}

/// Every rule that needs no other block (runs on many blocks at once).
pub fn check_context_free(
    b: &LedgerBlock,
    hash: &BlockHash,
    size: usize,
    params: &LedgerParams,
    now: i64,
) -> Result<(), ChainError> {
    let target = rules::target_bits_are_within(b.header.bits, params.pow_limit)?;
    rules::hash_meets_target(hash, target)?;
    rules::time_is_not_too_far_ahead(&b.header, now)?;
    lrules::block_size_is_within_limit(size)?;
    lrules::block_has_transactions(b)?;
    lrules::coinbase_is_first_and_only(b)?;
    lrules::ledger_merkle_root_is_valid(b)?;
    Ok(())
}

/// The chain as followed so far: tip, recent times, chain work and the replicated state.
pub struct Follower {
    params: &'static LedgerParams,
    /// The state after the tip.
    pub state: State,
    /// Height of the tip.
    pub height: u32,
    /// Hash of the tip.
    pub tip: BlockHash,
    tip_time: u32,
    times: VecDeque<u32>,
    /// Work of the chain up to the tip.
    pub chainwork: U256,
    /// Transactions connected (coinbases included), genesis excluded.
    pub transactions: u64,
}

impl Follower {
    /// At genesis (whose coinbase pays nothing: the state is empty).
    pub fn new(params: &'static LedgerParams) -> Follower {
        let g = &params.genesis.header;
        let work = g.bits.block_work();
        Follower {
            params,
            state: State::new(),
            height: 0,
            tip: g.block_hash(),
            tip_time: g.time,
            times: VecDeque::from([g.time]),
            chainwork: work,
            transactions: 0,
        }
    }

    /// A follower at a stored tip (`times`: the last up-to-11 block times, oldest first).
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        params: &'static LedgerParams,
        state: State,
        height: u32,
        tip: BlockHash,
        times: Vec<u32>,
        chainwork: U256,
        transactions: u64,
    ) -> Follower {
        let tip_time = times.last().copied().unwrap_or(params.genesis.header.time);
        Follower { params, state, height, tip, tip_time, times: times.into(), chainwork, transactions }
    }

    /// The bits the next block needs.
    pub fn next_bits(&self) -> CompactTarget {
        next_bits(self.params, self.height, self.tip_time)
    }

    /// Whether `b` extends the tip.
    pub fn extends(&self, b: &LedgerBlock) -> bool {
        b.header.prev_blockhash == self.tip
    }

    /// Connects `b` (context-free rules already checked, signatures already verified in a batch):
    /// difficulty, median time past, then the state transition. Returns the undo data.
    pub fn connect(&mut self, b: &LedgerBlock, hash: &BlockHash) -> Result<Undo, ChainError> {
        let height = self.height + 1;
        lrules::difficulty_matches_asert(b.header.bits, self.next_bits())?;
        rules::time_is_above_median_past(&b.header, self.times.make_contiguous())?;
        let undo = self.state.apply_block(b, height, self.params)?;
        self.height = height;
        self.tip = *hash;
        self.tip_time = b.header.time;
        self.times.push_back(b.header.time);
        if self.times.len() > 11 {
            self.times.pop_front();
        }
        let work = b.header.bits.block_work();
        self.chainwork = self.chainwork.checked_add(work).unwrap_or(U256::MAX);
        self.transactions += b.txs.len() as u64;
        Ok(undo)
    }

    /// Disconnects the tip block `b` with the undo data of its connect: the state goes back
    /// exactly, and the tip becomes its parent, whose chain work and last up-to-11 block times
    /// (oldest first, ending with the parent's) the caller takes from the block index.
    pub fn disconnect(&mut self, b: &LedgerBlock, undo: Undo, parent_chainwork: U256, times: Vec<u32>) {
        debug_assert_eq!(b.header.block_hash(), self.tip, "only the tip can be disconnected");
        self.state.undo(undo);
        self.height -= 1;
        self.tip = b.header.prev_blockhash;
        self.tip_time = times.last().copied().unwrap_or(self.params.genesis.header.time);
        self.times = times.into();
        self.chainwork = parent_chainwork;
        self.transactions -= b.txs.len() as u64;
    }

    /// The parameters followed.
    pub fn params(&self) -> &'static LedgerParams {
        self.params
    }

    /// The last up-to-11 block times, oldest first (the median time past is the middle one).
    pub fn recent_times(&self) -> Vec<u32> {
        self.times.iter().copied().collect()
    }
}
