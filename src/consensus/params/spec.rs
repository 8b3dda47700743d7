//! Chain specs: a powkit chain described in a JSON file (`powkit chain new` writes one, `--chain
//! FILE` reads it), so that users can launch their own networks. docs/CONSENSUS.md, "Chain specs".
//!
//! A spec is checked whole when it is loaded ([`ChainSpec::to_params`]): every field within its
//! limits, the magic, chain id and name distinct from the built-in chains', and the genesis the
//! fields give mined (its hash meets the limit) and equal to the hash the spec records, so that a
//! spec edited after it was made is refused rather than starting a different chain by accident.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ledger::{genesis_block, LedgerNetwork, LedgerParams, CONSENSUS_VERSION};
use super::{BitcoinNetwork, Network};
use crate::ledger::{AccountKey, LedgerBlock, LedgerTx};
use crate::primitives::{CompactTarget, TxMerkleNode, U256};

/// Shortest target spacing a spec may ask for, in seconds.
pub const MIN_SPACING: i64 = 1;
/// Longest target spacing, in seconds: with heights up to 2^32, ASERT's `spacing * height` stays
/// far below the 2^47 its fixed-point exponent allows.
pub const MAX_SPACING: i64 = 3600;
/// The half-life must be at least this many spacings (shorter makes the difficulty of one block
/// swing by more than a factor of 2^(1/2) for one late block)...
pub const MIN_HALF_LIFE_SPACINGS: i64 = 2;
/// ...and at most this many (Bitcoin Cash uses 288; longer adapts too slowly for a new network).
pub const MAX_HALF_LIFE_SPACINGS: i64 = 10_000;

/// A chain spec as stored (JSON). Integers are plain JSON numbers; byte strings are hex.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSpec {
    /// The consensus version the spec is for ([`CONSENSUS_VERSION`]).
    pub consensus_version: u32,
    /// The chain's name: 1 to 32 characters `a-z`, `0-9`, `-`, none of the built-in names.
    pub name: String,
    /// Network magic, 4 bytes as 8 hex digits (P2P frames and blk records).
    pub magic: String,
    /// Chain id signed into every transfer (no replay across chains).
    pub chain_id: u32,
    /// Seconds per block the difficulty aims for ([`MIN_SPACING`]..=[`MAX_SPACING`]).
    pub target_spacing: i64,
    /// ASERT half-life in seconds ([`MIN_HALF_LIFE_SPACINGS`] to [`MAX_HALF_LIFE_SPACINGS`]
    /// spacings).
    pub half_life: i64,
    /// The proof-of-work limit as compact bits, 8 hex digits (canonical; from Bitcoin's limit
    /// `1d00ffff`, about 2^32 hashes a block, to below 2^239, ASERT's room).
    pub pow_limit: String,
    /// Launch time: the genesis block's time, Unix seconds.
    pub launch_time: u32,
    /// The genesis header's nonce (the lowest that meets the limit, found by `powkit chain new`).
    pub genesis_nonce: u32,
    /// The genesis block's hash (display order), derived from the fields above.
    pub genesis_hash: String,
    /// Initial allocations: balances the state holds after genesis (none by default; at most
    /// [`MAX_ALLOCATIONS`], distinct keys, each amount at least 1, their sum within a u64).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allocations: Vec<Allocation>,
}

/// Most initial allocations a spec may hold (they are written to the state at genesis).
pub const MAX_ALLOCATIONS: usize = 100_000;

/// Most bytes in a spec file: room for [`MAX_ALLOCATIONS`] allocations (about 100 bytes of JSON
/// each) and the rest.
pub const MAX_SPEC_BYTES: u64 = 32 * 1024 * 1024;

/// One initial allocation: `amount` base units to the public key `key` (64 hex digits).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allocation {
    /// The Ed25519 public key, 64 hex digits.
    pub key: String,
    /// Base units.
    pub amount: u64,
}

/// Why a spec was refused: the file, the field, and why. Displays as
/// `chain spec FILE: FIELD: WHY`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("chain spec {file}: {field}: {why}")]
pub struct SpecError {
    /// The spec file (or `-` for a spec not read from a file).
    pub file: String,
    /// The field at fault (`json` when the file is not a spec at all).
    pub field: &'static str,
    /// What is wrong.
    pub why: String,
}

impl ChainSpec {
    /// Reads, checks and turns into parameters the spec at `path`. The parameters are leaked (one
    /// allocation per call, for the life of the process) so that they are `&'static` like the
    /// built-in chains'.
    ///
    /// # Errors
    /// The file cannot be read, is not a spec, or the spec breaks a limit ([`SpecError`]).
    pub fn load(path: &Path) -> Result<&'static LedgerParams, SpecError> {
        let file = path.display().to_string();
        let err = |field, why: String| SpecError { file: file.clone(), field, why };
        // Read at most MAX_SPEC_BYTES + 1 bytes: a spec comes from whoever launched the network.
        let bytes =
            crate::primitives::lines::read_small_file(path, MAX_SPEC_BYTES).map_err(|e| err("file", e.to_string()))?;
        let text = String::from_utf8(bytes).map_err(|e| err("file", format!("not UTF-8: {e}")))?;
        let spec: ChainSpec = serde_json::from_str(&text).map_err(|e| err("json", e.to_string()))?;
        let params = spec.to_params().map_err(|e| SpecError { file: file.clone(), ..e })?;
        Ok(Box::leak(Box::new(params)))
    }

    /// The spec's genesis block with its recorded nonce, after checking every field but the
    /// genesis nonce and hash. Its coinbase's recipient (unused: the coinbase pays nothing) is
    /// [`ChainSpec::commitment`], so the genesis hash commits to every consensus field: two specs
    /// that differ in any of them are two chains, and an edited spec no longer matches its
    /// recorded hash.
    ///
    /// # Errors
    /// The first field that breaks its limit ([`SpecError`], file `-`).
    pub fn genesis(&self) -> Result<LedgerBlock, SpecError> {
        let err = |field, why: String| SpecError { file: "-".into(), field, why };
        if self.consensus_version != CONSENSUS_VERSION {
            return Err(err(
                "consensus_version",
                format!("{} is not this powkit's consensus version {CONSENSUS_VERSION}", self.consensus_version),
            ));
        }
        check_name(&self.name).map_err(|why| err("name", why))?;
        parse_magic(&self.magic).map_err(|why| err("magic", why))?;
        check_chain_id(self.chain_id).map_err(|why| err("chain_id", why))?;
        check_spacing(self.target_spacing).map_err(|why| err("target_spacing", why))?;
        check_half_life(self.half_life, self.target_spacing).map_err(|why| err("half_life", why))?;
        let bits = parse_pow_limit(&self.pow_limit).map_err(|why| err("pow_limit", why))?;
        parse_allocations(&self.allocations).map_err(|why| err("allocations", why))?;
        let mut g = genesis_block(self.launch_time, bits, self.genesis_nonce);
        if let LedgerTx::Coinbase(cb) = &mut g.txs[0] {
            cb.recipient = AccountKey(self.commitment());
        }
        g.header.merkle_root = TxMerkleNode(g.txs[0].txid().0);
        Ok(g)
    }

    /// SHA-256 of `"powkit/chain-spec/v2"` then every consensus field: name (its length as one
    /// byte, then its bytes), magic (4 bytes as written), chain id (u32 LE), target spacing and
    /// half-life (i64 LE), the limit's bits (u32 LE), the launch time (u32 LE) and the allocations
    /// (their count u32 LE, then each key's 32 bytes and amount u64 LE, in spec order). Only called on
    /// a spec whose fields passed their checks ([`ChainSpec::genesis`]).
    pub fn commitment(&self) -> [u8; 32] {
        let mut m = b"powkit/chain-spec/v2".to_vec();
        m.push(self.name.len() as u8);
        m.extend_from_slice(self.name.as_bytes());
        m.extend_from_slice(&parse_magic(&self.magic).unwrap_or_default());
        m.extend_from_slice(&self.chain_id.to_le_bytes());
        m.extend_from_slice(&self.target_spacing.to_le_bytes());
        m.extend_from_slice(&self.half_life.to_le_bytes());
        m.extend_from_slice(&parse_pow_limit(&self.pow_limit).map(|b| b.0).unwrap_or_default().to_le_bytes());
        m.extend_from_slice(&self.launch_time.to_le_bytes());
        let allocations = parse_allocations(&self.allocations).unwrap_or_default();
        m.extend_from_slice(&(allocations.len() as u32).to_le_bytes());
        for (key, amount) in allocations {
            m.extend_from_slice(&key.0);
            m.extend_from_slice(&amount.to_le_bytes());
        }
        crate::sha256::reference::sha256(&m)
    }

    /// The chain parameters of this spec, after checking every field (see the module docs). The
    /// name is leaked to be `&'static`.
    ///
    /// # Errors
    /// The first field that breaks its limit ([`SpecError`], file `-`).
    pub fn to_params(&self) -> Result<LedgerParams, SpecError> {
        let err = |field, why: String| SpecError { file: "-".into(), field, why };
        let genesis = self.genesis()?;
        let bits = genesis.header.bits;
        let hash = genesis.header.block_hash();
        let limit = bits.to_target().map_err(|e| err("pow_limit", e.to_string()))?;
        if !limit.is_met_by(&hash) {
            return Err(err(
                "genesis_nonce",
                format!(
                    "the genesis hash {hash} with nonce {} does not meet the limit (edited after `powkit chain new`? \
                     make a new spec)",
                    self.genesis_nonce
                ),
            ));
        }
        if hash.to_string() != self.genesis_hash {
            return Err(err(
                "genesis_hash",
                format!(
                    "the spec records {} but its fields give {hash} (edited after `powkit chain new`? make a new spec)",
                    self.genesis_hash
                ),
            ));
        }
        let name: &'static str = Box::leak(self.name.clone().into_boxed_str());
        let magic = parse_magic(&self.magic).map_err(|why| err("magic", why))?;
        let mut p = LedgerParams::new(
            name,
            self.chain_id,
            magic,
            bits,
            self.target_spacing,
            self.half_life,
            self.launch_time,
            self.genesis_nonce,
        )
        .map_err(|e| err("pow_limit", e.to_string()))?;
        p.genesis = genesis;
        p.allocations = parse_allocations(&self.allocations).map_err(|why| err("allocations", why))?;
        Ok(p)
    }
}

/// At most [`MAX_ALLOCATIONS`] allocations to distinct, well-formed public keys, each of at least 1
/// base unit, summing to at most `u64::MAX` (the state's balances are u64, consensus rule
/// `credit_does_not_overflow`).
fn parse_allocations(list: &[Allocation]) -> Result<Vec<(AccountKey, u64)>, String> {
    if list.len() > MAX_ALLOCATIONS {
        return Err(format!("{} allocations, at most {MAX_ALLOCATIONS}", list.len()));
    }
    let mut seen = std::collections::HashSet::with_capacity(list.len());
    let mut sum = 0u64;
    let mut out = Vec::with_capacity(list.len());
    for (i, a) in list.iter().enumerate() {
        let key: AccountKey = a.key.parse().map_err(|e| format!("[{i}].key {:?}: {e}", a.key))?;
        if a.amount == 0 {
            return Err(format!("[{i}].amount is 0"));
        }
        if !seen.insert(key) {
            return Err(format!("[{i}].key {} appears twice", a.key));
        }
        sum = sum.checked_add(a.amount).ok_or_else(|| format!("[{i}]: the amounts' sum exceeds 2^64 - 1"))?;
        out.push((key, a.amount));
    }
    Ok(out)
}

/// 1 to 32 characters `a-z`, `0-9`, `-`, and not the name of a built-in chain (of either family).
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 32 {
        return Err(format!("{name:?} must be 1 to 32 characters"));
    }
    if !name.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-') {
        return Err(format!("{name:?} may hold only a-z, 0-9 and '-'"));
    }
    if Network::ALL.iter().any(|n| n.name() == name) {
        return Err(format!("{name:?} is a built-in chain's name"));
    }
    Ok(())
}

/// 8 hex digits, not the magic of a built-in chain (of either family: a node must never mistake
/// one network's frames or blk records for another's).
fn parse_magic(s: &str) -> Result<[u8; 4], String> {
    let mut magic = [0u8; 4];
    hex::decode_to_slice(s, &mut magic).map_err(|e| format!("{s:?} is not 4 bytes of hex ({e})"))?;
    let builtin = LedgerNetwork::ALL
        .iter()
        .map(|c| (c.name(), c.params().magic))
        .chain(BitcoinNetwork::ALL.iter().map(|c| (c.name(), c.params().magic)));
    for (name, m) in builtin {
        if m == magic {
            return Err(format!("{s} is {name}'s magic"));
        }
    }
    Ok(magic)
}

/// Not the chain id of a built-in powkit chain (transfers signed for one must not replay on it).
fn check_chain_id(id: u32) -> Result<(), String> {
    match LedgerNetwork::ALL.iter().find(|c| c.params().chain_id == id) {
        Some(c) => Err(format!("{id:#x} is {}'s chain id", c.name())),
        None => Ok(()),
    }
}

/// [`MIN_SPACING`]..=[`MAX_SPACING`] seconds.
fn check_spacing(spacing: i64) -> Result<(), String> {
    if !(MIN_SPACING..=MAX_SPACING).contains(&spacing) {
        return Err(format!("{spacing} s is outside {MIN_SPACING}..={MAX_SPACING} s"));
    }
    Ok(())
}

/// [`MIN_HALF_LIFE_SPACINGS`] to [`MAX_HALF_LIFE_SPACINGS`] spacings.
fn check_half_life(half_life: i64, spacing: i64) -> Result<(), String> {
    let (lo, hi) = (MIN_HALF_LIFE_SPACINGS * spacing, MAX_HALF_LIFE_SPACINGS * spacing);
    if !(lo..=hi).contains(&half_life) {
        return Err(format!(
            "{half_life} s is outside {lo}..={hi} s ({MIN_HALF_LIFE_SPACINGS} to {MAX_HALF_LIFE_SPACINGS} spacings of {spacing} s)"
        ));
    }
    Ok(())
}

/// 8 hex digits of canonical compact bits whose target is at least Bitcoin's limit (`1d00ffff`)
/// and below 2^239 (the room ASERT's multiplication needs, [`crate::consensus::asert`]).
fn parse_pow_limit(s: &str) -> Result<CompactTarget, String> {
    let mut b = [0u8; 4];
    hex::decode_to_slice(s, &mut b).map_err(|e| format!("{s:?} is not 4 bytes of hex ({e})"))?;
    let bits = CompactTarget(u32::from_be_bytes(b));
    let target = bits.to_target().map_err(|e| format!("{s}: {e}"))?;
    if target.to_compact() != bits {
        return Err(format!("{s} is not canonical (it encodes as {})", target.to_compact()));
    }
    let easiest = U256::ONE.shl_bits(239);
    let hardest = CompactTarget(0x1d00_ffff).to_target().expect("Bitcoin's limit").0;
    if target.0 >= easiest {
        return Err(format!("{s} is 2^239 or more (ASERT needs 17 bits of room)"));
    }
    if target.0 < hardest {
        return Err(format!("{s} is harder than 1d00ffff (the genesis must be minable in one nonce range)"));
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid spec (its genesis mined here, as `powkit chain new` does).
    fn spec() -> ChainSpec {
        let mut s = ChainSpec {
            consensus_version: CONSENSUS_VERSION,
            name: "testnet-a".into(),
            magic: "a1b2c3d4".into(),
            chain_id: 0x1234_5678,
            target_spacing: 5,
            half_life: 40,
            pow_limit: "1e7fffff".into(),
            launch_time: 1_795_900_000,
            genesis_nonce: 0,
            genesis_hash: String::new(),
            allocations: vec![Allocation { key: "ab".repeat(32), amount: 1_000 }],
        };
        let scanner = crate::sha256::CpuImpl::detect().scanner().unwrap();
        let h = crate::mine::mine_header(s.genesis().unwrap().header, scanner.as_ref()).unwrap();
        s.genesis_nonce = h.nonce;
        s.genesis_hash = h.block_hash().to_string();
        s
    }

    #[test]
    fn a_valid_spec_becomes_params_with_its_fields() {
        let s = spec();
        let p = s.to_params().unwrap();
        assert_eq!((p.name, p.chain_id, p.magic), ("testnet-a", 0x1234_5678, [0xa1, 0xb2, 0xc3, 0xd4]));
        assert_eq!((p.target_spacing, p.half_life), (5, 40));
        assert_eq!(p.genesis.header.time, 1_795_900_000);
        assert_eq!(p.genesis.header.block_hash().to_string(), s.genesis_hash);
        assert_eq!(p.genesis.merkle_root(), (p.genesis.header.merkle_root.0, false));
        let LedgerTx::Coinbase(cb) = &p.genesis.txs[0] else { panic!("a coinbase") };
        assert_eq!((cb.recipient, cb.amount), (AccountKey(s.commitment()), 0));
        assert_eq!(p.allocations, vec![(AccountKey([0xab; 32]), 1_000)]);
        // JSON round trip.
        let back: ChainSpec = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    /// Each limit refuses its field, naming it.
    #[test]
    fn each_bad_field_is_refused_by_name() {
        type Edit = fn(&mut ChainSpec);
        let cases: &[(&str, Edit)] = &[
            ("consensus_version", |s| s.consensus_version = 1),
            ("name", |s| s.name = "powkit-regtest".into()),
            ("name", |s| s.name = "Big Net".into()),
            ("name", |s| s.name = String::new()),
            ("magic", |s| s.magic = "706b77ff".into()),
            ("magic", |s| s.magic = "f9beb4d9".into()),
            ("magic", |s| s.magic = "xyz".into()),
            ("chain_id", |s| s.chain_id = 0x706f_7701),
            ("target_spacing", |s| s.target_spacing = 0),
            ("target_spacing", |s| s.target_spacing = 3601),
            ("half_life", |s| s.half_life = 9),
            ("half_life", |s| s.half_life = 50_001),
            ("pow_limit", |s| s.pow_limit = "207fffff".into()),
            ("pow_limit", |s| s.pow_limit = "1c00ffff".into()),
            ("pow_limit", |s| s.pow_limit = "1e00007f".into()),
            ("pow_limit", |s| s.pow_limit = "1e800000".into()),
            ("genesis_hash", |s| s.launch_time += 1),
            // Fields outside the genesis header are committed in its coinbase.
            ("genesis_hash", |s| s.half_life += 1),
            ("genesis_hash", |s| s.target_spacing += 1),
            ("genesis_hash", |s| s.chain_id += 1),
            ("genesis_hash", |s| s.magic = "a1b2c3d5".into()),
            ("genesis_hash", |s| s.name = "testnet-b".into()),
            ("genesis_hash", |s| s.allocations[0].amount += 1),
            ("genesis_hash", |s| s.allocations.clear()),
            ("allocations", |s| s.allocations[0].amount = 0),
            ("allocations", |s| s.allocations[0].key = "zz".into()),
            ("allocations", |s| s.allocations.push(s.allocations[0].clone())),
            ("allocations", |s| s.allocations.push(Allocation { key: "cd".repeat(32), amount: u64::MAX })),
            ("genesis_hash", |s| s.genesis_hash = "00".repeat(32)),
        ];
        for (field, edit) in cases {
            let mut s = spec();
            edit(&mut s);
            let e = s.to_params().unwrap_err();
            // A changed launch time may also leave the genesis short of the limit.
            let ok = e.field == *field || (*field == "genesis_hash" && e.field == "genesis_nonce");
            assert!(ok, "{field}: {e}");
        }
    }

    #[test]
    fn load_names_the_file_and_refuses_unknown_fields() {
        let dir = std::env::temp_dir().join(format!("powkit-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("a.json");
        let mut v = serde_json::to_value(spec()).unwrap();
        std::fs::write(&f, v.to_string()).unwrap();
        let p = ChainSpec::load(&f).unwrap();
        assert_eq!(p.name, "testnet-a");
        v["surprise"] = 1.into();
        std::fs::write(&f, v.to_string()).unwrap();
        let e = ChainSpec::load(&f).unwrap_err();
        assert_eq!(e.field, "json");
        assert!(
            e.to_string().starts_with(&format!("chain spec {}: json: unknown field `surprise`", f.display())),
            "{e}"
        );
        let e = ChainSpec::load(&dir.join("missing.json")).unwrap_err();
        assert_eq!(e.field, "file");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
