//! Consensus rules, one function each, named for the rule, citing its source.
//!
//! Context-free rules need only the header or block itself (Bitcoin Core's `CheckBlockHeader` and
//! `CheckBlock`); contextual ones need the parent chain (`ContextualCheckBlockHeader`,
//! `ContextualCheckBlock`). Each returns a [`RuleError`] whose variant names the rule, with Bitcoin
//! Core's reject reason in its message. docs/CONSENSUS.md lists them all.
//!
//! The rules that need the UTXO set or the chain (inputs, amounts, maturity, lock times, BIP30,
//! the block reward) are in [`tx`], signature-operation counting and its limits in [`sigops`]; they
//! report a [`tx::TxRuleError`]. Scripts run in Bitcoin Core's interpreter (`consensus::script`).

pub mod sigops;
pub mod tx;

use std::collections::HashSet;

use super::params::BitcoinParams;
use crate::primitives::encoding::compact_size_len;
use crate::primitives::{Block, BlockHash, BlockHeader, CompactTarget, Target, Transaction};
use crate::sha256::merkle;

/// Bitcoin's `MAX_BLOCK_WEIGHT` (BIP141).
pub const MAX_BLOCK_WEIGHT: usize = 4_000_000;
/// `WITNESS_SCALE_FACTOR`.
pub const WITNESS_SCALE_FACTOR: usize = 4;
/// `MAX_MONEY`: 21 million coins in satoshis.
pub const MAX_MONEY: i64 = 21_000_000 * 100_000_000;
/// `MAX_FUTURE_BLOCK_TIME`: two hours.
pub const MAX_FUTURE_BLOCK_TIME: i64 = 2 * 60 * 60;

/// A broken consensus rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The bits do not decode to a usable target (negative, overflow, zero) or exceed the limit.
    #[error("high-hash: bits {bits} are not a valid target for this chain ({why})")]
    BadTargetBits {
        /// The bits.
        bits: CompactTarget,
        /// Which part failed.
        why: &'static str,
    },
    /// The hash is above the target.
    #[error("high-hash: proof of work failed: hash {hash} is above the target {target}")]
    ProofOfWork {
        /// The block hash.
        hash: BlockHash,
        /// The target, 64 hex digits.
        target: String,
    },
    /// The parent is not known.
    #[error("prev-blk-not-found: parent {prev} is not known")]
    UnknownParent {
        /// The parent hash.
        prev: BlockHash,
    },
    /// The parent is not known and too many blocks already wait for theirs.
    #[error(
        "prev-blk-not-found: parent {prev} is not known and {limit} blocks are already waiting for their \
         parents (the orphan limit)"
    )]
    OrphanLimit {
        /// The parent hash.
        prev: BlockHash,
        /// The limit.
        limit: usize,
    },
    /// The bits are not the ones the retarget rule requires.
    #[error("bad-diffbits: bits {got} but the retarget rule requires {want}")]
    BadDifficultyBits {
        /// In the header.
        got: CompactTarget,
        /// Required.
        want: CompactTarget,
    },
    /// Time not above the median of the previous 11 blocks.
    #[error("time-too-old: time {time} is not above the median time past {median}")]
    TimeTooOld {
        /// The header's time.
        time: u32,
        /// Median of the last 11.
        median: u32,
    },
    /// Time more than two hours past `now`.
    #[error("time-too-new: time {time} is more than 2 hours after now ({now})")]
    TimeTooNew {
        /// The header's time.
        time: u32,
        /// The validator's clock.
        now: i64,
    },
    /// Version below what an activated soft fork requires.
    #[error("bad-version(0x{version:08x}): height {height} requires version >= {min} ({bip})")]
    ObsoleteVersion {
        /// The version.
        version: i32,
        /// The height.
        height: u32,
        /// Minimum.
        min: i32,
        /// Which BIP.
        bip: &'static str,
    },
    /// No transactions.
    #[error("bad-blk-length: block has no transactions")]
    EmptyBlock,
    /// Merkle root mismatch.
    #[error("bad-txnmrklroot: merkle root {got} in the header, {computed} computed")]
    MerkleRootMismatch {
        /// In the header (display order).
        got: String,
        /// From the transactions.
        computed: String,
    },
    /// Duplicate transactions that leave the merkle root unchanged (CVE-2012-2459).
    #[error("bad-txns-duplicate: duplicate transactions at the end of a merkle level (CVE-2012-2459)")]
    MerkleMutation,
    /// The first transaction is not a coinbase.
    #[error("bad-cb-missing: the first transaction is not a coinbase")]
    FirstNotCoinbase,
    /// A coinbase after the first transaction.
    #[error("bad-cb-multiple: transaction {index} is a second coinbase")]
    MultipleCoinbase {
        /// Index of the extra coinbase.
        index: usize,
    },
    /// Size or weight over the limit.
    #[error("{reason}: {what} {value} exceeds {limit}")]
    TooLarge {
        /// Bitcoin Core's reason (`bad-blk-length`, `bad-blk-weight`).
        reason: &'static str,
        /// What was measured.
        what: &'static str,
        /// Its value.
        value: usize,
        /// The limit.
        limit: usize,
    },
    /// A transaction breaks `CheckTransaction`.
    #[error("{reason}: transaction {index} ({txid})")]
    BadTransaction {
        /// Index in the block.
        index: usize,
        /// Its txid.
        txid: String,
        /// Bitcoin Core's reason.
        reason: &'static str,
    },
    /// The segwit witness commitment is missing or wrong.
    #[error("{reason}: witness commitment check failed")]
    WitnessCommitment {
        /// Bitcoin Core's reason.
        reason: &'static str,
    },
    /// A rule of [`tx`] or [`sigops`] (transactions against the UTXO set and the chain).
    #[error("{0}")]
    Tx(#[from] tx::TxRuleError),
    /// The coinbase does not start with the block height (BIP34).
    #[error("bad-cb-height: coinbase does not begin with the height {height} (BIP34)")]
    CoinbaseHeight {
        /// The expected height.
        height: u32,
    },
}

impl RuleError {
    /// The name of the rule function that failed (as listed in docs/CONSENSUS.md).
    pub fn rule(&self) -> &'static str {
        match self {
            RuleError::BadTargetBits { .. } => "target_bits_are_valid",
            RuleError::ProofOfWork { .. } => "proof_of_work_is_valid",
            RuleError::UnknownParent { .. } | RuleError::OrphanLimit { .. } => "parent_is_known",
            RuleError::BadDifficultyBits { .. } => "difficulty_matches_retarget",
            RuleError::TimeTooOld { .. } => "time_is_above_median_past",
            RuleError::TimeTooNew { .. } => "time_is_not_too_far_ahead",
            RuleError::ObsoleteVersion { .. } => "version_is_not_obsolete",
            RuleError::EmptyBlock => "block_is_not_empty",
            RuleError::MerkleRootMismatch { .. } | RuleError::MerkleMutation => "merkle_root_is_valid",
            RuleError::FirstNotCoinbase | RuleError::MultipleCoinbase { .. } => "coinbase_is_first_and_only",
            RuleError::TooLarge { reason: "bad-blk-weight", .. } => "block_weight_is_within_limit",
            RuleError::TooLarge { .. } => "block_size_is_within_limits",
            RuleError::BadTransaction { .. } => "transaction_is_well_formed",
            RuleError::WitnessCommitment { .. } => "witness_commitment_is_valid",
            RuleError::CoinbaseHeight { .. } => "coinbase_has_height",
            RuleError::Tx(e) => e.rule(),
        }
    }
}

impl RuleError {
    /// Bitcoin Core's reject reason for this failure (what `submitblock` answers), e.g.
    /// `bad-txnmrklroot`, `bad-txns-inputs-missingorspent`.
    pub fn reason(&self) -> String {
        match self {
            RuleError::Tx(e) => e.reason().to_string(),
            other => other.to_string().split(": ").next().unwrap_or_default().to_string(),
        }
    }

    /// Whether the failure depends on the validator's clock (the 2-hour future limit): the same
    /// header may be valid a little later, so it is neither remembered as invalid nor a peer's
    /// misbehaviour (Bitcoin Core's `BLOCK_TIME_FUTURE`).
    pub fn depends_on_local_clock(&self) -> bool {
        matches!(self, RuleError::TimeTooNew { .. })
    }

    /// Whether the failure is of the proof of work itself (bad target bits or a hash above the
    /// target): such a header cost its sender nothing to make, so it is not worth remembering.
    pub fn is_proof_of_work_failure(&self) -> bool {
        matches!(self, RuleError::BadTargetBits { .. } | RuleError::ProofOfWork { .. })
    }
}

/// The target for `bits`, checked as the first half of Bitcoin Core's `CheckProofOfWork`
/// (src/pow.cpp): not negative, no overflow, not zero, not above the chain's `powLimit`.
pub fn target_bits_are_valid(bits: CompactTarget, params: &BitcoinParams) -> Result<Target, RuleError> {
    target_bits_are_within(bits, params.pow_limit)
}

/// [`target_bits_are_valid`] against a limit given directly (powkit chains have their own
/// parameters type; the rule is the same).
pub fn target_bits_are_within(bits: CompactTarget, limit: Target) -> Result<Target, RuleError> {
    let t = bits.to_target().map_err(|e| RuleError::BadTargetBits {
        bits,
        why: match e {
            crate::primitives::BitsError::Negative(_) => "negative",
            crate::primitives::BitsError::Overflow(_) => "overflow",
            crate::primitives::BitsError::Zero(_) => "zero",
        },
    })?;
    if t > limit {
        return Err(RuleError::BadTargetBits { bits, why: "easier than the chain's proof-of-work limit" });
    }
    Ok(t)
}

/// Proof of work: the header's hash, as a little-endian integer, is at most its target (Bitcoin Core
/// `CheckProofOfWork`, second half).
pub fn proof_of_work_is_valid(header: &BlockHeader, params: &BitcoinParams) -> Result<(), RuleError> {
    let target = target_bits_are_valid(header.bits, params)?;
    hash_meets_target(&header.block_hash(), target)
}

/// The second half of [`proof_of_work_is_valid`] for a hash already computed (bulk paths hash
/// headers in batches and decode the target once per run of equal bits).
pub fn hash_meets_target(hash: &BlockHash, target: Target) -> Result<(), RuleError> {
    if !target.is_met_by(hash) {
        return Err(RuleError::ProofOfWork { hash: *hash, target: target.to_be_hex() });
    }
    Ok(())
}

/// The header's time is at most two hours after `now` (Bitcoin Core `ContextualCheckBlockHeader`,
/// "time-too-new", `MAX_FUTURE_BLOCK_TIME`). It needs no earlier block, so `--no-context` checks it.
pub fn time_is_not_too_far_ahead(header: &BlockHeader, now: i64) -> Result<(), RuleError> {
    if header.time as i64 > now + MAX_FUTURE_BLOCK_TIME {
        return Err(RuleError::TimeTooNew { time: header.time, now });
    }
    Ok(())
}

/// The header's time is above the median of the previous 11 blocks' times (Bitcoin Core
/// `ContextualCheckBlockHeader`, "time-too-old"; `GetMedianTimePast`). `previous` holds the last
/// times, oldest first, fewer than 11 near genesis; only the last 11 count, in any order.
///
/// `time > median` holds exactly when more than half of the times are below `time` (the median of
/// `n` sorted times is the one at index `n / 2`), so the check counts instead of sorting; the
/// median itself is computed only for the error.
pub fn time_is_above_median_past(header: &BlockHeader, previous: &[u32]) -> Result<(), RuleError> {
    let prev = &previous[previous.len() - previous.len().min(11)..];
    if prev.is_empty() {
        return Ok(());
    }
    let below = prev.iter().filter(|&&t| t < header.time).count();
    if below > prev.len() / 2 {
        return Ok(());
    }
    let mut t = [0u32; 11];
    t[..prev.len()].copy_from_slice(prev);
    t[..prev.len()].sort_unstable();
    Err(RuleError::TimeTooOld { time: header.time, median: t[prev.len() / 2] })
}

/// The header carries the bits the retarget rule requires (Bitcoin Core `ContextualCheckBlockHeader`,
/// "bad-diffbits"; the rule itself is [`super::pow::next_work_required`]).
pub fn difficulty_matches_retarget(header: &BlockHeader, required: CompactTarget) -> Result<(), RuleError> {
    if header.bits != required {
        return Err(RuleError::BadDifficultyBits { got: header.bits, want: required });
    }
    Ok(())
}

/// After BIP34, BIP66 and BIP65 activate, versions below 2, 3 and 4 are rejected (Bitcoin Core
/// `ContextualCheckBlockHeader`, "bad-version").
pub fn version_is_not_obsolete(header: &BlockHeader, height: u32, params: &BitcoinParams) -> Result<(), RuleError> {
    for (min, at, bip) in
        [(2, params.bip34_height, "BIP34"), (3, params.bip66_height, "BIP66"), (4, params.bip65_height, "BIP65")]
    {
        if height >= at && header.version < min {
            return Err(RuleError::ObsoleteVersion { version: header.version, height, min, bip });
        }
    }
    Ok(())
}

/// A block has at least one transaction (Bitcoin Core `CheckBlock`, "bad-blk-length").
pub fn block_is_not_empty(block: &Block) -> Result<(), RuleError> {
    if block.txdata.is_empty() {
        return Err(RuleError::EmptyBlock);
    }
    Ok(())
}

/// The txids of a block's transactions, in order: serialized into one reused buffer per thread and
/// hashed with the SHA extensions where present; a block of many transactions is split over the
/// rayon pool (the hashing is the merkle check's main cost).
pub fn txids(block: &Block) -> Vec<[u8; 32]> {
    use rayon::prelude::*;
    const PER_TASK: usize = 256;
    let mut out = vec![[0u8; 32]; block.txdata.len()];
    let hash = |(txs, ids): (&[Transaction], &mut [[u8; 32]])| {
        let mut buf = Vec::with_capacity(1024);
        for (tx, id) in txs.iter().zip(ids) {
            *id = tx.txid_with(&mut buf).0;
        }
    };
    if block.txdata.len() <= PER_TASK {
        hash((&block.txdata, &mut out));
    } else {
        block.txdata.par_chunks(PER_TASK).zip(out.par_chunks_mut(PER_TASK)).for_each(hash);
    }
    out
}

/// The header's merkle root is the root of the transactions' txids (Bitcoin Core `CheckMerkleRoot`,
/// "bad-txnmrklroot"), and no level pairs two equal nodes ("bad-txns-duplicate", CVE-2012-2459:
/// duplicating the last transactions of a level leaves the root unchanged).
pub fn merkle_root_is_valid(block: &Block) -> Result<(), RuleError> {
    merkle_root_matches_txids(block, &txids(block))
}

/// [`merkle_root_is_valid`] with the block's txids already computed (see [`txids`]).
pub fn merkle_root_matches_txids(block: &Block, txids: &[[u8; 32]]) -> Result<(), RuleError> {
    let (root, mutated) = merkle::root_and_mutation(txids);
    if root != block.header.merkle_root.0 {
        let mut c = root;
        c.reverse();
        return Err(RuleError::MerkleRootMismatch {
            got: block.header.merkle_root.to_string(),
            computed: hex::encode(c),
        });
    }
    if mutated {
        return Err(RuleError::MerkleMutation);
    }
    Ok(())
}

/// The first transaction is a coinbase and no other is (Bitcoin Core `CheckBlock`, "bad-cb-missing",
/// "bad-cb-multiple").
pub fn coinbase_is_first_and_only(block: &Block) -> Result<(), RuleError> {
    if !block.txdata.first().is_some_and(Transaction::is_coinbase) {
        return Err(RuleError::FirstNotCoinbase);
    }
    if let Some(index) = block.txdata.iter().skip(1).position(Transaction::is_coinbase) {
        return Err(RuleError::MultipleCoinbase { index: index + 1 });
    }
    Ok(())
}

/// Size limits (Bitcoin Core `CheckBlock`, "bad-blk-length"): at most `MAX_BLOCK_WEIGHT / 4`
/// transactions, and the block without witness data at most `MAX_BLOCK_WEIGHT / 4` bytes.
pub fn block_size_is_within_limits(block: &Block) -> Result<(), RuleError> {
    let limit = MAX_BLOCK_WEIGHT / WITNESS_SCALE_FACTOR;
    if block.txdata.len() > limit {
        return Err(RuleError::TooLarge {
            reason: "bad-blk-length",
            what: "transaction count",
            value: block.txdata.len(),
            limit,
        });
    }
    let base = 80
        + compact_size_len(block.txdata.len() as u64)
        + block.txdata.iter().map(Transaction::base_size).sum::<usize>();
    if base > limit {
        return Err(RuleError::TooLarge { reason: "bad-blk-length", what: "size without witness", value: base, limit });
    }
    Ok(())
}

/// Block weight at most `MAX_BLOCK_WEIGHT` (Bitcoin Core `ContextualCheckBlock`, "bad-blk-weight").
pub fn block_weight_is_within_limit(block: &Block) -> Result<(), RuleError> {
    let n = compact_size_len(block.txdata.len() as u64);
    let weight = (80 + n) * WITNESS_SCALE_FACTOR + block.txdata.iter().map(Transaction::weight).sum::<usize>();
    if weight > MAX_BLOCK_WEIGHT {
        return Err(RuleError::TooLarge {
            reason: "bad-blk-weight",
            what: "weight",
            value: weight,
            limit: MAX_BLOCK_WEIGHT,
        });
    }
    Ok(())
}

/// Bitcoin Core's `CheckTransaction` (src/consensus/tx_check.cpp): inputs and outputs present, size,
/// output values in range and their sum too, no duplicate inputs, a coinbase's scriptSig 2 to 100
/// bytes, no null prevout outside a coinbase.
pub fn transaction_is_well_formed(tx: &Transaction, index: usize) -> Result<(), RuleError> {
    let bad = |reason| RuleError::BadTransaction { index, txid: tx.txid().to_string(), reason };
    if tx.inputs.is_empty() {
        return Err(bad("bad-txns-vin-empty"));
    }
    if tx.outputs.is_empty() {
        return Err(bad("bad-txns-vout-empty"));
    }
    if tx.base_size() * WITNESS_SCALE_FACTOR > MAX_BLOCK_WEIGHT {
        return Err(bad("bad-txns-oversize"));
    }
    let mut total: i64 = 0;
    for o in &tx.outputs {
        if o.value < 0 {
            return Err(bad("bad-txns-vout-negative"));
        }
        if o.value > MAX_MONEY {
            return Err(bad("bad-txns-vout-toolarge"));
        }
        total += o.value;
        if total > MAX_MONEY {
            return Err(bad("bad-txns-txouttotal-toolarge"));
        }
    }
    let mut seen = HashSet::with_capacity(tx.inputs.len());
    for i in &tx.inputs {
        if !seen.insert(i.prevout) {
            return Err(bad("bad-txns-inputs-duplicate"));
        }
    }
    if tx.is_coinbase() {
        if !(2..=100).contains(&tx.inputs[0].script_sig.len()) {
            return Err(bad("bad-cb-length"));
        }
    } else if tx.inputs.iter().any(|i| i.prevout.is_null()) {
        return Err(bad("bad-txns-prevout-null"));
    }
    Ok(())
}

/// BIP34: from `bip34_height` on, the coinbase's scriptSig begins with the height as a minimal
/// script number push (Bitcoin Core `ContextualCheckBlock`, "bad-cb-height").
pub fn coinbase_has_height(block: &Block, height: u32, params: &BitcoinParams) -> Result<(), RuleError> {
    if height < params.bip34_height {
        return Ok(());
    }
    let want = script_push_number(height as i64);
    let sig = block.txdata.first().map(|t| t.inputs[0].script_sig.as_slice()).unwrap_or(&[]);
    if !sig.starts_with(&want) {
        return Err(RuleError::CoinbaseHeight { height });
    }
    Ok(())
}

/// `CScript() << n`: OP_0, OP_1..OP_16, or a minimal little-endian sign-magnitude push.
pub fn script_push_number(n: i64) -> Vec<u8> {
    if n == 0 {
        return vec![0x00];
    }
    if (1..=16).contains(&n) {
        return vec![0x50 + n as u8];
    }
    let neg = n < 0;
    let mut abs = n.unsigned_abs();
    let mut data = Vec::new();
    while abs > 0 {
        data.push((abs & 0xff) as u8);
        abs >>= 8;
    }
    if data.last().is_some_and(|b| b & 0x80 != 0) {
        data.push(if neg { 0x80 } else { 0 });
    } else if neg {
        *data.last_mut().expect("non-empty") |= 0x80;
    }
    let mut out = vec![data.len() as u8];
    out.extend(data);
    out
}

/// BIP141 witness commitment (Bitcoin Core `CheckWitnessMalleation`, validation.cpp, called from
/// `ContextualCheckBlock`): when segwit is active and a coinbase output carries the commitment
/// (`OP_RETURN 0x24 aa21a9ed` + 32 bytes; the last such output counts), the coinbase's witness must be
/// exactly one 32-byte item (the reserved value, "bad-witness-nonce-size") and the commitment must be
/// `sha256d(witness merkle root || reserved value)` ("bad-witness-merkle-match"), the witness root
/// taken over the wtxids with the coinbase's as zero. Where no commitment applies (before segwit, at
/// every height, or a block without one) no transaction may carry witness data:
/// [`witness_data_is_committed`].
pub fn witness_commitment_is_valid(block: &Block, height: u32, params: &BitcoinParams) -> Result<(), RuleError> {
    let Some(cb) = block.txdata.first() else { return Ok(()) };
    if height >= params.segwit_height {
        let commitment = cb
            .outputs
            .iter()
            .rev()
            .find(|o| o.script_pubkey.len() >= 38 && o.script_pubkey[..6] == [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed]);
        if let Some(out) = commitment {
            let w = &cb.inputs[0].witness;
            if w.len() != 1 || w[0].len() != 32 {
                return Err(RuleError::WitnessCommitment { reason: "bad-witness-nonce-size" });
            }
            let mut leaves: Vec<[u8; 32]> = block.txdata.iter().map(|t| t.wtxid().0).collect();
            leaves[0] = [0; 32];
            let (root, _) = merkle::root_and_mutation(&leaves);
            let mut buf = [0u8; 64];
            buf[..32].copy_from_slice(&root);
            buf[32..].copy_from_slice(&w[0]);
            if crate::primitives::sha256d(&buf)[..] != out.script_pubkey[6..38] {
                return Err(RuleError::WitnessCommitment { reason: "bad-witness-merkle-match" });
            }
            return Ok(());
        }
    }
    witness_data_is_committed(block)
}

/// No transaction carries witness data in a block that commits to none (Bitcoin Core
/// `CheckWitnessMalleation`, "unexpected-witness"): before segwit's activation too, so witness bytes,
/// which are outside the txid merkle tree, cannot be added to any block without changing its hash.
pub fn witness_data_is_committed(block: &Block) -> Result<(), RuleError> {
    if block.txdata.iter().any(Transaction::has_witness) {
        return Err(RuleError::WitnessCommitment { reason: "unexpected-witness" });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
