//! The rules of powkit chains (docs/CONSENSUS.md, "powkit chains"), one function per rule, and the
//! stages that run them in order. Header rules shared with Bitcoin (proof of work, the time rules)
//! live in [`super::rules`]; the difficulty is ASERT ([`super::asert`]).
//!
//! # The stages (Bitcoin Core's `CheckBlockHeader`, `ContextualCheckBlockHeader`, `CheckBlock`,
//! `ConnectBlock` split)
//! Every path (the node, bulk validation, `chain import`, the tests) runs each stage exactly once per
//! block, and only through these functions; the paths differ only in *when* (bulk validation runs
//! the context-free stages on all cores and the signatures in one batch per 2 MB, the node checks a
//! header before its body arrives):
//! 1. [`check_header_context_free`]: target bits, proof of work.
//! 2. [`check_header_contextual`]: ASERT bits (anchored at height 1) and median time past against the parent, then the
//!    2-hour limit against the clock.
//! 3. [`check_block_context_free`]: merkle root (a mismatch is a *mutation*: the header may be fine),
//!    size, at least one transaction, coinbase first and only.
//! 4. [`check_signatures`]: every transfer signature, batched (ZIP-215).
//! 5. The state rules, in [`crate::state::accounts::State::apply_block`] (nonces, balances, reward,
//!    state root).

use super::asert::asert_next_bits;
use super::rules::{self, RuleError};
use crate::consensus::LedgerParams;
use crate::ledger::block::{LedgerBlock, MAX_LEDGER_BLOCK_BYTES};
use crate::ledger::ids::StateRoot;
use crate::ledger::tx::{Coinbase, LedgerTx, Transfer};
use crate::primitives::{BlockHash, BlockHeader, CompactTarget};

/// A broken powkit consensus rule: a header rule shared with Bitcoin or a powkit rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsensusError {
    /// A header rule shared with Bitcoin (proof of work, time).
    #[error(transparent)]
    Header(#[from] RuleError),
    /// A powkit block or state rule.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl ConsensusError {
    /// The rule function that failed.
    pub fn rule(&self) -> &'static str {
        match self {
            ConsensusError::Header(e) => e.rule(),
            ConsensusError::Ledger(e) => e.rule(),
        }
    }

    /// Whether the failure depends on the validator's clock ([`RuleError::depends_on_local_clock`]).
    pub fn depends_on_local_clock(&self) -> bool {
        matches!(self, ConsensusError::Header(e) if e.depends_on_local_clock())
    }

    /// Whether the failure is of the proof of work itself ([`RuleError::is_proof_of_work_failure`]).
    pub fn is_proof_of_work_failure(&self) -> bool {
        matches!(self, ConsensusError::Header(e) if e.is_proof_of_work_failure())
    }

    /// Whether the transactions do not match the header's merkle root (or repeat a subtree): the
    /// header may be valid with other transactions, so only the sender of these is at fault
    /// (Bitcoin Core's `BLOCK_MUTATED`).
    pub fn is_mutation(&self) -> bool {
        matches!(self, ConsensusError::Ledger(LedgerError::MerkleRoot { .. } | LedgerError::MerkleMutation))
    }
}

/// What the contextual header rules need of the parent.
#[derive(Clone, Copy, Debug)]
pub struct ParentContext<'a> {
    /// The parent's height.
    pub height: u32,
    /// The parent's time.
    pub time: u32,
    /// The last up-to-11 block times ending with the parent's, oldest first.
    pub recent_times: &'a [u32],
    /// The ASERT anchor on the parent's chain (its block at [`ASERT_ANCHOR_HEIGHT`]); `None` when
    /// the parent is genesis.
    pub anchor: Option<AsertAnchor>,
}

/// The height of the ASERT anchor block: the chain's first block after genesis.
pub const ASERT_ANCHOR_HEIGHT: u32 = 1;

/// The ASERT anchor block (docs/CONSENSUS.md, "Difficulty"): what the difficulty of every later
/// block is computed from, as Bitcoin Cash's aserti3-2d is computed from its fork block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AsertAnchor {
    /// The anchor block's time (Unix seconds).
    pub time: u32,
    /// The anchor block's bits (the limit, [`anchor_bits_are_pow_limit`]).
    pub bits: CompactTarget,
}

impl AsertAnchor {
    /// The anchor of a chain whose block at [`ASERT_ANCHOR_HEIGHT`] has header `h`.
    pub fn of(h: &BlockHeader) -> AsertAnchor {
        AsertAnchor { time: h.time, bits: h.bits }
    }
}

/// The bits a block needs on top of a parent at `parent_height` with time `parent_time` (Unix
/// seconds): the limit for the anchor block itself ([`anchor_bits_are_pow_limit`]), ASERT from the
/// anchor above it ([`asert_bits_after_anchor`]). docs/CONSENSUS.md, "Difficulty".
///
/// # Panics
/// When `parent_height >= ASERT_ANCHOR_HEIGHT` and `anchor` is `None` (a caller that did not look
/// up its chain's anchor; never a block's data).
pub fn next_bits(
    params: &LedgerParams,
    parent_height: u32,
    parent_time: u32,
    anchor: Option<AsertAnchor>,
) -> CompactTarget {
    if parent_height < ASERT_ANCHOR_HEIGHT {
        return anchor_bits_are_pow_limit(params);
    }
    let anchor = anchor.expect("next_bits: a parent above genesis needs its chain's ASERT anchor");
    asert_bits_after_anchor(params, anchor, parent_height, parent_time)
}

/// Rule (consensus version 2): blocks up to and including the anchor (genesis and the block at
/// [`ASERT_ANCHOR_HEIGHT`]) carry the chain's proof-of-work limit bits. Source: the aserti3-2d
/// specification (Bitcoin Cash, 2020-11-15-asert.md, "anchor block"): the anchor's bits are the
/// reference target; a new chain has no history, so its reference is the easiest target, which
/// the first miners leave as soon as they are ahead of schedule.
pub fn anchor_bits_are_pow_limit(params: &LedgerParams) -> CompactTarget {
    params.genesis.header.bits
}

/// Rule (consensus version 2): the reference time of the ASERT schedule is the anchor's time minus
/// one spacing. aserti3-2d (2020-11-15-asert.md, "anchor block") takes the anchor's *parent's*
/// time, which on Bitcoin Cash was an ordinary block about one spacing before the anchor. powkit's
/// anchor's parent is genesis, dated when the chain spec was written (for the built-in chains,
/// when this powkit was released), possibly long before anyone mines: anchoring there would leave
/// a chain launched later millions of blocks "behind schedule" and pinned at the limit (issue 12,
/// fault 8). The anchor's own time is the launch; one spacing before it is where its parent would
/// be on schedule, so the first block after the anchor is exactly on schedule.
pub fn asert_reference_time(anchor: &AsertAnchor, target_spacing: i64) -> i64 {
    anchor.time as i64 - target_spacing
}

/// Rule (consensus version 2): the bits of a block above the anchor are aserti3-2d's
/// ([`asert_next_bits`], Bitcoin Cash Node `GetNextASERTWorkRequired`) from the anchor's bits,
/// with `time_diff = parent_time - `[`asert_reference_time`] and `height_diff = parent_height -
/// `[`ASERT_ANCHOR_HEIGHT`].
pub fn asert_bits_after_anchor(
    params: &LedgerParams,
    anchor: AsertAnchor,
    parent_height: u32,
    parent_time: u32,
) -> CompactTarget {
    asert_next_bits(
        anchor.bits,
        parent_time as i64 - asert_reference_time(&anchor, params.target_spacing),
        (parent_height - ASERT_ANCHOR_HEIGHT) as i64,
        params.target_spacing,
        params.half_life,
        params.pow_limit,
    )
}

/// Rule: the first block of a blk file or data directory is this chain's genesis (a genesis block
/// is any block whose parent is all zeros). A file or store made with another chain's genesis, or
/// with the genesis of an earlier consensus version (1: anchored at genesis; 2: a coinbase without
/// extranonce, docs/CONSENSUS.md "Consensus versions"), is refused by name rather than reported as a block with an unknown parent.
pub fn genesis_matches_chain(hash: &BlockHash, params: &LedgerParams) -> Result<(), LedgerError> {
    let want = params.genesis.header.block_hash();
    if *hash != want {
        return Err(LedgerError::ForeignGenesis { got: hash.to_string(), want: want.to_string(), chain: params.name });
    }
    Ok(())
}

/// Stage 1, the header rules that need no other block (Bitcoin Core's `CheckBlockHeader`): the target
/// bits are within the chain's limit, the hash meets the target.
///
/// # Errors
/// The first rule broken, in that order.
pub fn check_header_context_free(
    h: &BlockHeader,
    hash: &BlockHash,
    params: &LedgerParams,
) -> Result<(), ConsensusError> {
    let target = rules::target_bits_are_within(h.bits, params.pow_limit)?;
    rules::hash_meets_target(hash, target)?;
    Ok(())
}

/// Stage 2, the header rules against the parent and the clock (Bitcoin Core's
/// `ContextualCheckBlockHeader`): the bits are ASERT's, the time is above the median time past and at
/// most 2 hours past `now` (Unix seconds; [`CLOCK_PAST_EVERY_HEADER`] where no clock applies).
///
/// # Errors
/// The first rule broken, in that order.
pub fn check_header_contextual(
    h: &BlockHeader,
    parent: &ParentContext<'_>,
    params: &LedgerParams,
    now: i64,
) -> Result<(), ConsensusError> {
    difficulty_matches_asert(h.bits, next_bits(params, parent.height, parent.time, parent.anchor))?;
    rules::time_is_above_median_past(h, parent.recent_times)?;
    rules::time_is_not_too_far_ahead(h, now)?;
    Ok(())
}

/// A clock past every header time a `u32` can hold: for checking chains this process made itself
/// (test-chain generators, tests), where the 2-hour limit is not the question.
pub const CLOCK_PAST_EVERY_HEADER: i64 = u32::MAX as i64;

/// Stages 1 and 3 for a whole block read from a file (bulk validation, `chain import`); the node
/// runs them apart, the header's as it arrives and the body's when the block does.
///
/// # Errors
/// The first rule broken, stage 1's before stage 3's.
pub fn check_block_alone(
    b: &LedgerBlock,
    hash: &BlockHash,
    encoded_len: usize,
    params: &LedgerParams,
) -> Result<(), ConsensusError> {
    check_header_context_free(&b.header, hash, params)?;
    check_block_context_free(b, encoded_len)
}

/// Stage 3, the block rules that need no state: the merkle root first (a mismatch is a mutation,
/// [`ConsensusError::is_mutation`]), then the size (`encoded_len`: the block's encoded length in
/// bytes), at least one transaction, the coinbase first and only.
///
/// # Errors
/// The first rule broken, in that order.
pub fn check_block_context_free(b: &LedgerBlock, encoded_len: usize) -> Result<(), ConsensusError> {
    ledger_merkle_root_is_valid(b)?;
    block_size_is_within_limit(encoded_len)?;
    block_has_transactions(b)?;
    coinbase_is_first_and_only(b)?;
    Ok(())
}

/// Stage 4: every transfer signature of `blocks`, in batches on all cores (ZIP-215, the same
/// verdicts as [`transfer_signature_is_valid`]).
///
/// # Errors
/// The first failure as (index into `blocks`, error naming the transaction).
pub fn check_signatures(blocks: &[&LedgerBlock]) -> Result<(), (usize, LedgerError)> {
    check_signatures_with(blocks, &crate::sigs::CpuSigVerifier::default())
}

/// [`check_signatures`] on a chosen verifier (CPU threads, a GPU, or both: every one gives the
/// same verdicts).
///
/// # Errors
/// As [`check_signatures`].
pub fn check_signatures_with(
    blocks: &[&LedgerBlock],
    verifier: &dyn crate::sigs::SigVerifier,
) -> Result<(), (usize, LedgerError)> {
    let mut place = Vec::new();
    let mut msgs = Vec::new();
    for (b, block) in blocks.iter().enumerate() {
        for (i, tx) in block.txs.iter().enumerate() {
            if let LedgerTx::Transfer(t) = tx {
                place.push((b, i, t));
                msgs.push(t.signing_hash());
            }
        }
    }
    let refs: Vec<crate::sigs::SigRef> = place
        .iter()
        .zip(&msgs)
        .map(|((_, _, t), m)| crate::sigs::SigRef { pubkey: t.from.as_bytes(), signature: &t.signature, message: m })
        .collect();
    match verifier.invalid(&refs).first() {
        None => Ok(()),
        Some(&k) => {
            let (b, i, t) = place[k];
            Err((b, LedgerError::Signature { tx: i, from: t.from.to_string() }))
        }
    }
}

/// A broken powkit rule. `tx` is the transaction's index in its block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// See [`block_has_transactions`].
    #[error("block has no transactions")]
    Empty,
    /// See [`coinbase_is_first_and_only`].
    #[error("transaction {tx}: {why}")]
    Coinbase {
        /// Index.
        tx: usize,
        /// What is wrong.
        why: &'static str,
    },
    /// See [`ledger_merkle_root_is_valid`].
    #[error("merkle root {got} in the header, {computed} computed")]
    MerkleRoot {
        /// In the header (display order).
        got: String,
        /// Computed (display order).
        computed: String,
    },
    /// See [`ledger_merkle_root_is_valid`].
    #[error("a merkle level pairs two equal nodes (duplicated transactions, CVE-2012-2459)")]
    MerkleMutation,
    /// See [`block_size_is_within_limit`].
    #[error("block is {size} bytes, above the limit of {MAX_LEDGER_BLOCK_BYTES}")]
    TooLarge {
        /// Encoded size.
        size: usize,
    },
    /// See [`coinbase_height_matches`].
    #[error("coinbase states height {stated}, the block is at height {height}")]
    CoinbaseHeight {
        /// In the coinbase.
        stated: u32,
        /// The block's height.
        height: u32,
    },
    /// See [`difficulty_matches_asert`].
    #[error("bits {got} but ASERT requires {want}")]
    Difficulty {
        /// In the header.
        got: CompactTarget,
        /// Required.
        want: CompactTarget,
    },
    /// See [`genesis_matches_chain`].
    #[error(
        "genesis block {got} is not {chain}'s genesis {want}: made for another chain, or by a powkit before \
         consensus version 3 (docs/CONSENSUS.md, \"Consensus versions\": version 3 gave the coinbase an \
         extranonce, so blocks from earlier versions do not decode); start a new data directory or \
         regenerate the file"
    )]
    ForeignGenesis {
        /// The genesis found (display order).
        got: String,
        /// This chain's.
        want: String,
        /// This chain's name.
        chain: &'static str,
    },
    /// See [`transfer_chain_id_matches`].
    #[error("transaction {tx}: chain id {got:#x}, this chain is {want:#x}")]
    ChainId {
        /// Index.
        tx: usize,
        /// Signed into the transfer.
        got: u32,
        /// This chain's.
        want: u32,
    },
    /// See [`transfer_signature_is_valid`].
    #[error("transaction {tx}: the Ed25519 signature is not valid (ZIP-215) for sender {from}")]
    Signature {
        /// Index.
        tx: usize,
        /// Sender (hex).
        from: String,
    },
    /// See [`transfer_nonce_matches`].
    #[error("transaction {tx}: nonce {got}, the sender's account nonce is {want} (replayed or out of order)")]
    Nonce {
        /// Index.
        tx: usize,
        /// In the transfer.
        got: u64,
        /// The account's.
        want: u64,
    },
    /// See [`transfer_is_funded`].
    #[error("transaction {tx}: spends {spend} (amount plus fee) but the sender's balance is {balance}")]
    Overspend {
        /// Index.
        tx: usize,
        /// Amount plus fee (saturated at u64::MAX when it overflows).
        spend: u64,
        /// Balance.
        balance: u64,
    },
    /// See [`credit_does_not_overflow`].
    #[error("transaction {tx}: crediting {amount} to a balance of {balance} overflows")]
    Overflow {
        /// Index.
        tx: usize,
        /// Credited.
        amount: u64,
        /// Balance before.
        balance: u64,
    },
    /// See [`coinbase_amount_within_reward`].
    #[error("coinbase claims {amount}, more than subsidy {subsidy} plus fees {fees}")]
    Reward {
        /// Claimed.
        amount: u64,
        /// The height's subsidy.
        subsidy: u64,
        /// The block's fees.
        fees: u64,
    },
    /// See [`coinbase_commits_state_root`].
    #[error("coinbase commits to state root {stated}, applying the block gives {computed}")]
    StateRoot {
        /// In the coinbase (hex).
        stated: String,
        /// Computed (hex).
        computed: String,
    },
}

impl LedgerError {
    /// The name of the rule function that failed.
    pub fn rule(&self) -> &'static str {
        match self {
            LedgerError::Empty => "block_has_transactions",
            LedgerError::Coinbase { .. } => "coinbase_is_first_and_only",
            LedgerError::MerkleRoot { .. } | LedgerError::MerkleMutation => "ledger_merkle_root_is_valid",
            LedgerError::TooLarge { .. } => "block_size_is_within_limit",
            LedgerError::CoinbaseHeight { .. } => "coinbase_height_matches",
            LedgerError::Difficulty { .. } => "difficulty_matches_asert",
            LedgerError::ForeignGenesis { .. } => "genesis_matches_chain",
            LedgerError::ChainId { .. } => "transfer_chain_id_matches",
            LedgerError::Signature { .. } => "transfer_signature_is_valid",
            LedgerError::Nonce { .. } => "transfer_nonce_matches",
            LedgerError::Overspend { .. } => "transfer_is_funded",
            LedgerError::Overflow { .. } => "credit_does_not_overflow",
            LedgerError::Reward { .. } => "coinbase_amount_within_reward",
            LedgerError::StateRoot { .. } => "coinbase_commits_state_root",
        }
    }
}

/// A block has at least one transaction, its coinbase (CONSENSUS.md "powkit block rules" 1).
pub fn block_has_transactions(b: &LedgerBlock) -> Result<(), LedgerError> {
    if b.txs.is_empty() {
        return Err(LedgerError::Empty);
    }
    Ok(())
}

/// The first transaction is the coinbase and no other is (CONSENSUS.md rule 2).
pub fn coinbase_is_first_and_only(b: &LedgerBlock) -> Result<&Coinbase, LedgerError> {
    let Some(LedgerTx::Coinbase(cb)) = b.txs.first() else {
        return Err(LedgerError::Coinbase { tx: 0, why: "the first transaction is not a coinbase" });
    };
    if let Some(i) = b.txs.iter().skip(1).position(|t| matches!(t, LedgerTx::Coinbase(_))) {
        return Err(LedgerError::Coinbase { tx: i + 1, why: "a second coinbase" });
    }
    Ok(cb)
}

/// The header's merkle root is Bitcoin's merkle tree of the txids, and no level pairs two equal
/// nodes (CONSENSUS.md rule 3; Bitcoin Core `CheckMerkleRoot` and CVE-2012-2459).
pub fn ledger_merkle_root_is_valid(b: &LedgerBlock) -> Result<(), LedgerError> {
    let (root, mutated) = b.merkle_root();
    if root != b.header.merkle_root.0 {
        let mut c = root;
        c.reverse();
        return Err(LedgerError::MerkleRoot { got: b.header.merkle_root.to_string(), computed: hex::encode(c) });
    }
    if mutated {
        return Err(LedgerError::MerkleMutation);
    }
    Ok(())
}

/// The encoded block is at most 4,000,000 bytes (CONSENSUS.md rule 4). `size` is the encoded length.
pub fn block_size_is_within_limit(size: usize) -> Result<(), LedgerError> {
    if size > MAX_LEDGER_BLOCK_BYTES {
        return Err(LedgerError::TooLarge { size });
    }
    Ok(())
}

/// The coinbase states the block's height (CONSENSUS.md rule 5; makes every coinbase txid unique,
/// as BIP34 does for Bitcoin).
pub fn coinbase_height_matches(cb: &Coinbase, height: u32) -> Result<(), LedgerError> {
    if cb.height != height {
        return Err(LedgerError::CoinbaseHeight { stated: cb.height, height });
    }
    Ok(())
}

/// The header's bits are what ASERT gives for its parent (CONSENSUS.md rule 6).
pub fn difficulty_matches_asert(bits: CompactTarget, required: CompactTarget) -> Result<(), LedgerError> {
    if bits != required {
        return Err(LedgerError::Difficulty { got: bits, want: required });
    }
    Ok(())
}

/// A transfer names this chain's id (CONSENSUS.md rule 7: no replay across chains).
pub fn transfer_chain_id_matches(t: &Transfer, tx: usize, chain_id: u32) -> Result<(), LedgerError> {
    if t.chain_id != chain_id {
        return Err(LedgerError::ChainId { tx, got: t.chain_id, want: chain_id });
    }
    Ok(())
}

/// A transfer's signature is a valid Ed25519 signature under ZIP-215 by `from` over its signing
/// hash (CONSENSUS.md rule 8). Bulk paths check many at once with `crate::sigs::verify_all`,
/// which gives the same verdicts.
pub fn transfer_signature_is_valid(t: &Transfer, tx: usize) -> Result<(), LedgerError> {
    let msg = t.signing_hash();
    let s = crate::sigs::SigRef { pubkey: t.from.as_bytes(), signature: &t.signature, message: &msg };
    if !crate::sigs::verify_one(&s) {
        return Err(LedgerError::Signature { tx, from: t.from.to_string() });
    }
    Ok(())
}

/// A transfer's nonce equals the sender's account nonce (CONSENSUS.md rule 9: each signed transfer
/// applies once, in order).
pub fn transfer_nonce_matches(t: &Transfer, tx: usize, account_nonce: u64) -> Result<(), LedgerError> {
    if t.nonce != account_nonce {
        return Err(LedgerError::Nonce { tx, got: t.nonce, want: account_nonce });
    }
    Ok(())
}

/// The sender's balance covers amount plus fee, and that sum does not overflow (CONSENSUS.md
/// rule 10). Returns the sum.
pub fn transfer_is_funded(t: &Transfer, tx: usize, balance: u64) -> Result<u64, LedgerError> {
    match t.amount.checked_add(t.fee) {
        Some(spend) if spend <= balance => Ok(spend),
        spend => Err(LedgerError::Overspend { tx, spend: spend.unwrap_or(u64::MAX), balance }),
    }
}

/// A credit does not overflow the recipient's balance (CONSENSUS.md rule 11). Returns the new
/// balance.
pub fn credit_does_not_overflow(balance: u64, amount: u64, tx: usize) -> Result<u64, LedgerError> {
    balance.checked_add(amount).ok_or(LedgerError::Overflow { tx, amount, balance })
}

/// The coinbase claims at most the height's subsidy plus the block's fees (CONSENSUS.md rule 12).
pub fn coinbase_amount_within_reward(cb: &Coinbase, subsidy: u64, fees: u64) -> Result<(), LedgerError> {
    if u128::from(cb.amount) > u128::from(subsidy) + u128::from(fees) {
        return Err(LedgerError::Reward { amount: cb.amount, subsidy, fees });
    }
    Ok(())
}

/// The coinbase commits to the state root after the whole block is applied (CONSENSUS.md rule 13).
pub fn coinbase_commits_state_root(cb: &Coinbase, computed: &StateRoot) -> Result<(), LedgerError> {
    if cb.state_root != *computed {
        return Err(LedgerError::StateRoot { stated: cb.state_root.to_string(), computed: computed.to_string() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::LedgerNetwork;

    fn regtest() -> &'static LedgerParams {
        LedgerNetwork::PowkitRegtest.params()
    }

    fn header(time: u32, bits: CompactTarget) -> BlockHeader {
        BlockHeader { time, bits, ..regtest().genesis.header }
    }

    /// Issue 12, fault 8: a network launched years after its genesis, its blocks coming ten times
    /// faster than the spacing, leaves the limit at once. Anchored at genesis (consensus version
    /// 1) the same chain stayed at the limit: millions of blocks "behind schedule".
    #[test]
    fn a_chain_launched_years_after_genesis_leaves_the_limit() {
        let p = regtest();
        let limit = p.genesis.header.bits;
        let launch = p.genesis.header.time + 3 * 365 * 24 * 3600;
        let anchor = AsertAnchor { time: launch, bits: next_bits(p, 0, p.genesis.header.time, None) };
        assert_eq!(anchor.bits, limit);
        // Blocks 2..=20 come 0.1 spacing apart (ten in each second).
        let mut prev = limit.decode().value;
        for height in 2..=20u32 {
            let parent_time = launch + (height - 1) / 10;
            let bits = next_bits(p, height - 1, parent_time, Some(anchor));
            let t = bits.decode().value;
            assert!(t <= prev, "height {height}");
            prev = t;
        }
        assert!(prev < limit.decode().value, "still at the limit after 20 fast blocks");
        // What consensus version 1 gave for the last of them: the limit (kept as the record of the
        // fault; `asert_next_bits` itself is unchanged).
        let v1 = asert_next_bits(
            p.genesis.header.bits,
            (launch + 1) as i64 - (p.genesis.header.time as i64 - p.target_spacing),
            19,
            p.target_spacing,
            p.half_life,
            p.pow_limit,
        );
        assert_eq!(v1, limit);
    }

    /// `anchor_bits_are_pow_limit`: the block after genesis carries the limit whatever its time.
    #[test]
    fn the_anchor_block_is_at_the_limit() {
        let p = regtest();
        for t in [0, p.genesis.header.time, p.genesis.header.time + 10, u32::MAX] {
            assert_eq!(next_bits(p, 0, t, None), p.genesis.header.bits);
        }
        // Breaking only that rule: block 1 with any other bits.
        let parent = ParentContext {
            height: 0,
            time: p.genesis.header.time,
            recent_times: &[p.genesis.header.time],
            anchor: None,
        };
        let ok = header(p.genesis.header.time + 1, p.genesis.header.bits);
        assert_eq!(check_header_contextual(&ok, &parent, p, CLOCK_PAST_EVERY_HEADER), Ok(()));
        let bad = header(p.genesis.header.time + 1, CompactTarget(0x1e3fffff));
        let e = check_header_contextual(&bad, &parent, p, CLOCK_PAST_EVERY_HEADER).unwrap_err();
        assert_eq!(e.rule(), "difficulty_matches_asert");
    }

    /// `asert_reference_time`: the schedule starts one spacing before the anchor, so a chain on
    /// schedule from its anchor keeps the anchor's bits, and one a half-life ahead of it has half
    /// the target; the genesis time plays no part.
    #[test]
    fn the_schedule_starts_at_the_anchor() {
        let p = regtest();
        let anchor = AsertAnchor { time: 2_000_000_000, bits: p.genesis.header.bits };
        assert_eq!(asert_reference_time(&anchor, p.target_spacing), 2_000_000_000 - p.target_spacing);
        for n in 1..50u32 {
            let on_schedule = anchor.time + (n - 1) * p.target_spacing as u32;
            assert_eq!(next_bits(p, n, on_schedule, Some(anchor)), anchor.bits, "height {n}");
        }
        // 100 blocks, a half-life ahead of schedule: half the limit (within compact rounding).
        let ahead = anchor.time + 99 * p.target_spacing as u32 - p.half_life as u32;
        let t = next_bits(p, 100, ahead, Some(anchor)).decode().value;
        let half = p.pow_limit.0.shr_bits(1);
        assert!(t <= half && t >= half.shr_bits(1).wrapping_add(half.shr_bits(2)), "{t:?}");
        // Breaking only `difficulty_matches_asert` above the anchor: the limit's bits when ASERT
        // asks for less.
        let times = [ahead];
        let parent = ParentContext { height: 100, time: ahead, recent_times: &times, anchor: Some(anchor) };
        let bad = header(ahead + 1, p.genesis.header.bits);
        let e = check_header_contextual(&bad, &parent, p, CLOCK_PAST_EVERY_HEADER).unwrap_err();
        assert_eq!(e.rule(), "difficulty_matches_asert");
        let good = header(ahead + 1, next_bits(p, 100, ahead, Some(anchor)));
        assert_eq!(check_header_contextual(&good, &parent, p, CLOCK_PAST_EVERY_HEADER), Ok(()));
    }

    #[test]
    #[should_panic(expected = "ASERT anchor")]
    fn above_genesis_the_anchor_is_required() {
        next_bits(regtest(), 1, 0, None);
    }

    /// `genesis_matches_chain`: another genesis is named, with both hashes.
    #[test]
    fn a_foreign_genesis_is_refused_by_name() {
        let p = regtest();
        assert_eq!(genesis_matches_chain(&p.genesis.header.block_hash(), p), Ok(()));
        let other = LedgerNetwork::Powkit.params().genesis.header.block_hash();
        let e = genesis_matches_chain(&other, p).unwrap_err();
        assert_eq!(e.rule(), "genesis_matches_chain");
        assert!(e.to_string().contains(&other.to_string()) && e.to_string().contains("consensus version 3"), "{e}");
    }
}
