//! Stratum v1 work: how a miner turns a `mining.notify` job into block headers, and how a pool
//! splits a block template into one. Every rule here is one the field's miners (cpuminer's
//! `stratum_gen_work`, cgminer's `gen_stratum_work`) and pools agree on; none is in a formal
//! specification besides BIP310 for version rolling:
//!
//! - the coinbase transaction (its serialization without witness, what the txid hashes) is
//!   `coinb1 ++ extranonce1 ++ extranonce2 ++ coinb2` ([`coinbase`]);
//! - the merkle root is the coinbase's txid hashed up the branch: `h = sha256d(h ++ branch[i])`,
//!   branch hashes in internal byte order as sent ([`merkle_root`], [`merkle_branch`]);
//! - `prevhash` is the 32 bytes of the header's field with each 4-byte word byte-swapped
//!   ([`prevhash_from_stratum`]);
//! - `version`, `nbits` and `ntime` (and the submitted `ntime` and `nonce`) are the header fields'
//!   `u32` values as big-endian hex ([`u32_from_hex`]);
//! - a share at difficulty `d` must hash at or below `difficulty-1 target / d`, the difficulty-1
//!   target being Bitcoin's proof-of-work limit `0x00000000ffff0000…` (bits `1d00ffff`)
//!   ([`share_target`]);
//! - with version rolling (BIP310), the header's version is `(job_version & !mask) | (bits & mask)`
//!   ([`rolled_version`]).

use serde_json::{json, Value};

use crate::primitives::{sha256d, BlockHash, BlockHeader, CompactTarget, Target, TxMerkleNode, U256};

/// Why a job or share field could not be used: the field and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {why}")]
pub struct WorkError {
    /// The field (`prevhash`, `coinb1`, `merkle_branch[3]`, …).
    pub field: String,
    /// What was wrong with it.
    pub why: String,
}

fn bad(field: impl Into<String>, why: impl Into<String>) -> WorkError {
    WorkError { field: field.into(), why: why.into() }
}

/// Most bytes accepted in `coinb1` or `coinb2` (a coinbase is at most a block; real ones are a few
/// hundred bytes).
pub const MAX_COINBASE_PART: usize = 100_000;

/// Most merkle branch entries (a branch of 32 covers 2^32 transactions).
pub const MAX_BRANCH: usize = 32;

/// The `u32` a Stratum field carries as 8 big-endian hex digits (`version`, `nbits`, `ntime`, the
/// submitted `nonce` and version bits): `"20000000"` is `0x2000_0000`.
///
/// # Errors
/// Not exactly 8 hex digits.
pub fn u32_from_hex(field: &str, s: &str) -> Result<u32, WorkError> {
    if s.len() != 8 {
        return Err(bad(field, format!("'{s}' is not 8 hex digits")));
    }
    u32::from_str_radix(s, 16).map_err(|_| bad(field, format!("'{s}' is not hex")))
}

/// A `u32` as Stratum sends it: 8 big-endian hex digits.
pub fn u32_to_hex(v: u32) -> String {
    format!("{v:08x}")
}

/// Bytes from hex, at most `max` of them.
///
/// # Errors
/// Not hex, an odd length, or longer than `max` bytes.
pub fn bytes_from_hex(field: &str, s: &str, max: usize) -> Result<Vec<u8>, WorkError> {
    if s.len() > 2 * max {
        return Err(bad(field, format!("{} hex digits, more than the {} bytes allowed", s.len(), max)));
    }
    hex::decode(s).map_err(|e| bad(field, format!("not hex: {e}")))
}

/// The header's `prev_blockhash` from Stratum's `prevhash`: 64 hex digits, the field's 32 bytes
/// with each 4-byte word byte-swapped (cpuminer's `stratum_gen_work` swaps them back with
/// `le32dec` per word).
///
/// # Errors
/// Not 64 hex digits.
pub fn prevhash_from_stratum(s: &str) -> Result<BlockHash, WorkError> {
    let b = bytes_from_hex("prevhash", s, 32)?;
    let mut out: [u8; 32] = b.try_into().map_err(|_| bad("prevhash", format!("'{s}' is not 64 hex digits")))?;
    for w in out.chunks_exact_mut(4) {
        w.reverse();
    }
    Ok(BlockHash(out))
}

/// Stratum's `prevhash` for a header's `prev_blockhash` (the inverse of [`prevhash_from_stratum`]).
pub fn prevhash_to_stratum(h: &BlockHash) -> String {
    let mut b = h.0;
    for w in b.chunks_exact_mut(4) {
        w.reverse();
    }
    hex::encode(b)
}

/// The coinbase transaction's bytes: `coinb1 ++ extranonce1 ++ extranonce2 ++ coinb2`.
pub fn coinbase(coinb1: &[u8], extranonce1: &[u8], extranonce2: &[u8], coinb2: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(coinb1.len() + extranonce1.len() + extranonce2.len() + coinb2.len());
    out.extend_from_slice(coinb1);
    out.extend_from_slice(extranonce1);
    out.extend_from_slice(extranonce2);
    out.extend_from_slice(coinb2);
    out
}

/// The merkle root from the coinbase's txid (internal byte order) and the branch: each step hashes
/// the running node on the left of the branch entry, `sha256d(node ++ branch[i])`.
pub fn merkle_root(coinbase_txid: [u8; 32], branch: &[[u8; 32]]) -> [u8; 32] {
    branch.iter().fold(coinbase_txid, |node, b| crate::sha256::merkle::parent(&node, b))
}

/// The merkle branch of the first transaction (the coinbase) given the block's other txids in
/// block order (internal byte order): at each level of Bitcoin's tree, the coinbase's sibling. An
/// odd level pairs its last node with itself, as `BlockMerkleRoot` does.
pub fn merkle_branch(other_txids: &[[u8; 32]]) -> Vec<[u8; 32]> {
    let mut branch = Vec::new();
    // The level without its first node (the coinbase's ancestor, unknown here).
    let mut rest: Vec<[u8; 32]> = other_txids.to_vec();
    while !rest.is_empty() {
        branch.push(rest[0]);
        // Next level: the coinbase's ancestor pairs with rest[0]; the others pair among themselves.
        let tail = &rest[1..];
        let mut next = Vec::with_capacity(tail.len().div_ceil(2));
        for pair in tail.chunks(2) {
            let right = pair.get(1).unwrap_or(&pair[0]);
            next.push(crate::sha256::merkle::parent(&pair[0], right));
        }
        rest = next;
    }
    branch
}

/// The share target at pool difficulty `difficulty`: `difficulty-1 target / difficulty`, rounded
/// down, at most the largest 256-bit value (a difficulty below 2^-32 is taken as 2^-32). The
/// difficulty-1 target is Bitcoin's proof-of-work limit (`1d00ffff`), as cpuminer's and cgminer's
/// `diff_to_target` use it for sha256d.
///
/// # Errors
/// A difficulty that is not a finite number above zero.
pub fn share_target(difficulty: f64) -> Result<Target, WorkError> {
    if !difficulty.is_finite() || difficulty <= 0.0 {
        return Err(bad("difficulty", format!("{difficulty} is not a finite number above zero")));
    }
    // difficulty-1 target * 2^32 / round(difficulty * 2^32), in 256-bit integers.
    let scaled = (difficulty * 4_294_967_296.0).round().clamp(1.0, 2f64.powi(127));
    let den = U256([scaled as u128 as u64, (scaled as u128 >> 64) as u64, 0, 0]);
    let num = Target::bitcoin_pow_limit().0.shl_bits(32);
    let (q, _) = num.div_rem(den).expect("the denominator is at least 1");
    Ok(Target(q))
}

/// The difficulty a hash achieves: `difficulty-1 target / hash` (a share is accepted at pool
/// difficulty `d` when this is at least `d`, up to [`share_target`]'s rounding).
pub fn hash_difficulty(hash: &BlockHash) -> f64 {
    // The hash read as a target: the same ratio `Target::difficulty` computes.
    Target(U256::from_le_bytes(hash.0)).difficulty()
}

/// BIP310: the header version when a miner rolls the bits in `mask`: the job's version outside
/// the mask, the miner's bits inside it.
pub fn rolled_version(job_version: u32, version_bits: u32, mask: u32) -> u32 {
    (job_version & !mask) | (version_bits & mask)
}

/// BIP310: submitted version bits may only set bits inside the negotiated mask.
pub fn version_bits_within_mask(version_bits: u32, mask: u32) -> bool {
    version_bits & !mask == 0
}

/// The `n`-th combination of the bits in `mask` (the lowest mask bit takes `n`'s lowest bit):
/// a miner rolling the version walks `n = 0, 1, 2, …` and never repeats a version until all
/// `2^popcount(mask)` are used.
pub fn version_bits_nth(mask: u32, n: u32) -> u32 {
    let mut out = 0u32;
    let mut k = 0;
    for bit in 0..32 {
        if mask & (1 << bit) != 0 {
            if n & (1 << k) != 0 {
                out |= 1 << bit;
            }
            k += 1;
        }
    }
    out
}

/// The parameters of `mining.notify`: one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// The pool's job id (opaque; sent back with each share).
    pub job_id: String,
    /// The header's `prev_blockhash` (decoded from Stratum's word-swapped form).
    pub prev_hash: BlockHash,
    /// The coinbase before the extranonces.
    pub coinb1: Vec<u8>,
    /// The coinbase after the extranonces.
    pub coinb2: Vec<u8>,
    /// The coinbase's merkle branch, internal byte order.
    pub merkle_branch: Vec<[u8; 32]>,
    /// The header version (rolled bits aside).
    pub version: u32,
    /// The header bits (the network target).
    pub bits: CompactTarget,
    /// The header time the pool proposes (Unix seconds).
    pub time: u32,
    /// Whether earlier jobs are void (a new tip): a miner drops them at once.
    pub clean_jobs: bool,
}

impl Notify {
    /// Parses `mining.notify`'s params: `[job_id, prevhash, coinb1, coinb2, merkle_branch[],
    /// version, nbits, ntime, clean_jobs]`.
    ///
    /// # Errors
    /// A missing or malformed field, named.
    pub fn from_params(params: &Value) -> Result<Notify, WorkError> {
        let p = params.as_array().ok_or_else(|| bad("mining.notify", "params are not an array"))?;
        if p.len() < 9 {
            return Err(bad("mining.notify", format!("{} params, 9 expected", p.len())));
        }
        let s = |i: usize, name: &str| -> Result<&str, WorkError> {
            p[i].as_str().ok_or_else(|| bad(name, format!("not a string: {}", p[i])))
        };
        let job_id = s(0, "job_id")?;
        if job_id.is_empty() || job_id.len() > 64 {
            return Err(bad("job_id", "empty or longer than 64 characters"));
        }
        let branch = p[4].as_array().ok_or_else(|| bad("merkle_branch", "not an array"))?;
        if branch.len() > MAX_BRANCH {
            return Err(bad("merkle_branch", format!("{} entries, at most {MAX_BRANCH}", branch.len())));
        }
        let mut merkle_branch = Vec::with_capacity(branch.len());
        for (i, b) in branch.iter().enumerate() {
            let name = format!("merkle_branch[{i}]");
            let h = b.as_str().ok_or_else(|| bad(&name, "not a string"))?;
            let v = bytes_from_hex(&name, h, 32)?;
            merkle_branch.push(v.try_into().map_err(|_| bad(&name, "not 32 bytes"))?);
        }
        Ok(Notify {
            job_id: job_id.to_string(),
            prev_hash: prevhash_from_stratum(s(1, "prevhash")?)?,
            coinb1: bytes_from_hex("coinb1", s(2, "coinb1")?, MAX_COINBASE_PART)?,
            coinb2: bytes_from_hex("coinb2", s(3, "coinb2")?, MAX_COINBASE_PART)?,
            merkle_branch,
            version: u32_from_hex("version", s(5, "version")?)?,
            bits: CompactTarget(u32_from_hex("nbits", s(6, "nbits")?)?),
            time: u32_from_hex("ntime", s(7, "ntime")?)?,
            clean_jobs: p[8].as_bool().ok_or_else(|| bad("clean_jobs", format!("not a boolean: {}", p[8])))?,
        })
    }

    /// `mining.notify`'s params for this job (the inverse of [`Self::from_params`]).
    pub fn to_params(&self) -> Value {
        json!([
            self.job_id,
            prevhash_to_stratum(&self.prev_hash),
            hex::encode(&self.coinb1),
            hex::encode(&self.coinb2),
            self.merkle_branch.iter().map(hex::encode).collect::<Vec<_>>(),
            u32_to_hex(self.version),
            u32_to_hex(self.bits.0),
            u32_to_hex(self.time),
            self.clean_jobs,
        ])
    }

    /// The coinbase with these extranonces.
    pub fn coinbase(&self, extranonce1: &[u8], extranonce2: &[u8]) -> Vec<u8> {
        coinbase(&self.coinb1, extranonce1, extranonce2, &self.coinb2)
    }

    /// The merkle root with these extranonces.
    pub fn merkle_root(&self, extranonce1: &[u8], extranonce2: &[u8]) -> TxMerkleNode {
        TxMerkleNode(merkle_root(sha256d(&self.coinbase(extranonce1, extranonce2)), &self.merkle_branch))
    }

    /// The header for these extranonces, time, nonce and version (the job's, or a rolled one).
    pub fn header(&self, extranonce1: &[u8], extranonce2: &[u8], time: u32, nonce: u32, version: u32) -> BlockHeader {
        BlockHeader {
            version: version as i32,
            prev_blockhash: self.prev_hash,
            merkle_root: self.merkle_root(extranonce1, extranonce2),
            time,
            bits: self.bits,
            nonce,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::Block;

    fn block(name: &str) -> Option<Block> {
        let p =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/bitcoin/single-blocks").join(name);
        let Ok(raw) = std::fs::read(&p) else {
            eprintln!("skipped: {} not found", p.display());
            return None;
        };
        Some(Block::from_bytes(&raw[8..]).expect("a real block"))
    }

    /// Splits a real block's coinbase around `en1_len + en2_len` bytes of its scriptSig (after the
    /// BIP34 height push) into a job, and recovers the block's header, hash and nonce from it the
    /// way a miner does.
    fn recover(b: &Block, en1_len: usize, en2_len: usize) {
        let cb = b.txdata[0].legacy_bytes();
        // version (4), input count (1), prevout (36), script length (1), then the scriptSig.
        let script_at = 4 + 1 + 36 + 1;
        let height_push = 1 + cb[script_at] as usize;
        let split = script_at + height_push;
        let (coinb1, rest) = cb.split_at(split);
        let (en, coinb2) = rest.split_at(en1_len + en2_len);
        let (en1, en2) = en.split_at(en1_len);
        let others: Vec<[u8; 32]> = b.txdata[1..].iter().map(|t| t.txid().0).collect();
        let h = b.header;
        let params = json!([
            "4f2a",
            prevhash_to_stratum(&h.prev_blockhash),
            hex::encode(coinb1),
            hex::encode(coinb2),
            merkle_branch(&others).iter().map(hex::encode).collect::<Vec<_>>(),
            u32_to_hex(h.version as u32),
            u32_to_hex(h.bits.0),
            u32_to_hex(h.time),
            true
        ]);
        let job = Notify::from_params(&params).unwrap();
        assert_eq!(job.to_params(), params);
        let got = job.header(en1, en2, h.time, h.nonce, h.version as u32);
        assert_eq!(got, h);
        assert_eq!(got.block_hash(), h.block_hash());
        // The nonce as a miner submits it, and the share difficulty of a block-solving hash.
        assert_eq!(u32_from_hex("nonce", &u32_to_hex(h.nonce)).unwrap(), h.nonce);
        let target = h.bits.to_target().unwrap();
        assert!(target.is_met_by(&got.block_hash()));
        assert!(hash_difficulty(&got.block_hash()) >= target.difficulty() * 0.999_999);
    }

    #[test]
    fn real_mainnet_headers_are_recovered_from_a_split_coinbase() {
        // 277647: 213 transactions, BIP34 coinbase; 574200: 3,315 transactions, segwit coinbase
        // (the txid is of the serialization without witness, what coinb1 ++ … ++ coinb2 is).
        for (name, en1, en2) in [("277647.blk", 4, 4), ("574200.blk", 4, 8), ("540107.blk", 4, 4)] {
            if let Some(b) = block(name) {
                assert!(b.txdata[0].inputs[0].script_sig.len() >= 1 + en1 + en2);
                recover(&b, en1, en2);
            }
        }
    }

    #[test]
    fn merkle_branches_match_the_tree_at_every_size() {
        for n in 1..=40usize {
            let ids: Vec<[u8; 32]> = (0..n).map(|i| sha256d(&(i as u32).to_le_bytes())).collect();
            let root = crate::sha256::merkle::root(&ids).unwrap();
            assert_eq!(merkle_root(ids[0], &merkle_branch(&ids[1..])), root, "{n} transactions");
        }
    }

    #[test]
    fn prevhash_words_are_swapped_both_ways() {
        // Stratum swaps each 4-byte word of the header's stored bytes.
        let mut stored = [0u8; 32];
        for (i, b) in stored.iter_mut().enumerate() {
            *b = i as u8;
        }
        let s = prevhash_to_stratum(&BlockHash(stored));
        assert_eq!(&s[..16], "0302010007060504");
        assert_eq!(prevhash_from_stratum(&s).unwrap(), BlockHash(stored));
        assert!(prevhash_from_stratum("00").is_err());
        assert!(prevhash_from_stratum(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn share_targets_divide_the_difficulty_one_target() {
        let limit = Target::bitcoin_pow_limit();
        assert_eq!(share_target(1.0).unwrap(), limit);
        assert_eq!(share_target(2.0).unwrap().0, limit.0.shr_bits(1));
        assert_eq!(share_target(65536.0).unwrap().0, limit.0.shr_bits(16));
        // Below 1: easier than the difficulty-1 target.
        assert_eq!(share_target(0.5).unwrap().0, limit.0.shl_bits(1));
        let t = share_target(0.001).unwrap();
        assert!((t.difficulty() - 0.001).abs() < 1e-9, "{}", t.difficulty());
        let t = share_target(1_234_567.89).unwrap();
        assert!((t.difficulty() / 1_234_567.89 - 1.0).abs() < 1e-9);
        for d in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(share_target(d).is_err(), "{d}");
        }
    }

    #[test]
    fn version_rolling_stays_inside_the_mask() {
        let mask = 0x1fff_e000;
        assert_eq!(rolled_version(0x2000_0000, 0xffff_ffff, mask), 0x3fff_e000);
        assert_eq!(rolled_version(0x2000_0004, 0x0000_2000, mask), 0x2000_2004);
        assert!(version_bits_within_mask(0x0000_2000, mask));
        assert!(!version_bits_within_mask(0x2000_0000, mask));
        let mut seen = std::collections::HashSet::new();
        for n in 0..(1 << 16) {
            let v = version_bits_nth(mask, n);
            assert!(version_bits_within_mask(v, mask));
            assert!(seen.insert(v), "{n} repeats");
        }
        assert_eq!(version_bits_nth(mask, 1), 0x2000);
    }

    #[test]
    fn malformed_jobs_name_the_field() {
        let good = json!(["1", "00".repeat(32), "01", "02", [], "20000000", "1d00ffff", "504e86ed", false]);
        assert!(Notify::from_params(&good).is_ok());
        let cases = [
            (5, json!("2000000"), "version"),
            (6, json!(17), "nbits"),
            (7, json!("xx4e86ed"), "ntime"),
            (8, json!("true"), "clean_jobs"),
            (4, json!(["00"]), "merkle_branch[0]"),
            (2, json!("0g"), "coinb1"),
            (0, json!(""), "job_id"),
        ];
        for (i, v, field) in cases {
            let mut p = good.clone();
            p[i] = v;
            let e = Notify::from_params(&p).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
        assert!(Notify::from_params(&json!([1, 2])).is_err());
        assert!(Notify::from_params(&json!({})).is_err());
    }
}
