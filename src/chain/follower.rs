//! Following one powkit chain: linking blocks to the tip, the contextual header rules (ASERT
//! difficulty, median time past) and the state transitions, with undo. Used by bulk validation,
//! `chain import`, the test-chain generator and, behind the block index, the node's [`super::Chain`].

use std::collections::VecDeque;

use crate::consensus::ledger::{
    check_header_contextual, next_bits, AsertAnchor, ConsensusError, ParentContext, ASERT_ANCHOR_HEIGHT,
};
use crate::consensus::LedgerParams;
use crate::ledger::block::LedgerBlock;
use crate::primitives::{BlockHash, CompactTarget, U256};
use crate::state::accounts::{State, Undo};
use crate::store::{StoredState, StoredTip};

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
    anchor: Option<AsertAnchor>,
    /// Work of the chain up to the tip.
    pub chainwork: U256,
    /// Transactions connected (coinbases included), genesis excluded.
    pub transactions: u64,
}

impl Follower {
    /// At genesis (whose coinbase pays nothing: the state is the chain's initial allocations,
    /// empty for the built-in chains).
    pub fn new(params: &'static LedgerParams) -> Follower {
        let g = &params.genesis.header;
        let work = g.bits.block_work();
        let mut state = State::new();
        for &(key, balance) in &params.allocations {
            state.load(key, crate::state::accounts::Account { balance, nonce: 0 });
        }
        Follower {
            params,
            state,
            height: 0,
            tip: g.block_hash(),
            tip_time: g.time,
            times: VecDeque::from([g.time]),
            anchor: None,
            chainwork: work,
            transactions: 0,
        }
    }

    /// A follower at a stored tip (`times`: the last up-to-11 block times, oldest first; `anchor`:
    /// the chain's ASERT anchor, its block at height 1, `None` at genesis).
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        params: &'static LedgerParams,
        state: State,
        height: u32,
        tip: BlockHash,
        times: Vec<u32>,
        anchor: Option<AsertAnchor>,
        chainwork: U256,
        transactions: u64,
    ) -> Follower {
        let tip_time = times.last().copied().unwrap_or(params.genesis.header.time);
        Follower { params, state, height, tip, tip_time, times: times.into(), anchor, chainwork, transactions }
    }

    /// A follower at a store's tip ([`crate::store::Store::tip_state`]).
    pub fn from_stored(params: &'static LedgerParams, s: StoredState) -> Follower {
        Follower::restore(
            params,
            s.state,
            s.tip.height,
            s.tip.hash,
            s.times,
            s.anchor,
            s.tip.chainwork,
            s.tip.transactions,
        )
    }

    /// The tip as the store records it.
    pub fn stored_tip(&self) -> StoredTip {
        StoredTip { height: self.height, hash: self.tip, chainwork: self.chainwork, transactions: self.transactions }
    }

    /// The bits the next block needs.
    pub fn next_bits(&self) -> CompactTarget {
        next_bits(self.params, self.height, self.tip_time, self.anchor)
    }

    /// Whether `b` extends the tip.
    pub fn extends(&self, b: &LedgerBlock) -> bool {
        b.header.prev_blockhash == self.tip
    }

    /// Connects `b` on the tip (stages 1, 3 and 4 of [`crate::consensus::ledger`] already run):
    /// stage 2, the contextual header rules (ASERT bits, median time past, the 2-hour limit against
    /// `now`, Unix seconds), then stage 5, the state transition. Returns the undo data; on an error
    /// nothing changed.
    pub fn connect(&mut self, b: &LedgerBlock, hash: &BlockHash, now: i64) -> Result<Undo, ConsensusError> {
        let parent = ParentContext {
            height: self.height,
            time: self.tip_time,
            recent_times: self.times.make_contiguous(),
            anchor: self.anchor,
        };
        check_header_contextual(&b.header, &parent, self.params, now)?;
        self.connect_checked_header(b, hash)
    }

    /// Connects `b` on the tip when its header already passed stage 2 against this tip's block (the
    /// node's block index checks every header as it arrives): stage 5, the state transition, only.
    /// Returns the undo data; on an error nothing changed.
    pub(crate) fn connect_checked_header(&mut self, b: &LedgerBlock, hash: &BlockHash) -> Result<Undo, ConsensusError> {
        let height = self.height + 1;
        let undo = self.state.apply_block(b, height, self.params)?;
        self.height = height;
        self.tip = *hash;
        self.tip_time = b.header.time;
        if height == ASERT_ANCHOR_HEIGHT {
            self.anchor = Some(AsertAnchor::of(&b.header));
        }
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
        if self.height < ASERT_ANCHOR_HEIGHT {
            self.anchor = None;
        }
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

    /// The chain's ASERT anchor (its block at height 1), `None` at genesis.
    pub fn anchor(&self) -> Option<AsertAnchor> {
        self.anchor
    }

    /// The last up-to-11 block times, oldest first (the median time past is the middle one).
    pub fn recent_times(&self) -> Vec<u32> {
        self.times.iter().copied().collect()
    }
}
