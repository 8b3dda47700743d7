//! Parameters of powkit's own chains (docs/CONSENSUS.md, "powkit chains").

use std::fmt;
use std::sync::OnceLock;

use crate::ledger::{Coinbase, LedgerBlock, LedgerTx};
use crate::primitives::{BlockHash, BlockHeader, CompactTarget, Target, TxMerkleNode};

/// powkit's chains: the two built in, and any loaded from a chain spec file
/// ([`super::spec::ChainSpec`], `powkit chain new`).
#[derive(Clone, Copy, Debug)]
pub enum LedgerNetwork {
    /// The public chain: 30-second blocks.
    Powkit,
    /// A fast local chain for tests: an easy limit, 1-second blocks.
    PowkitRegtest,
    /// A chain from a spec file, loaded (and leaked: one per `--chain FILE`) by
    /// [`super::spec::ChainSpec::load`].
    Custom(&'static LedgerParams),
}

impl PartialEq for LedgerNetwork {
    /// Built-in chains by name; spec chains by name and genesis hash.
    fn eq(&self, other: &LedgerNetwork) -> bool {
        self.name() == other.name() && self.params().genesis.header == other.params().genesis.header
    }
}

impl Eq for LedgerNetwork {}

impl std::hash::Hash for LedgerNetwork {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

/// Everything consensus needs to know about a powkit chain.
#[derive(Clone, Debug)]
pub struct LedgerParams {
    /// Its name on the command line ([`LedgerNetwork::name`]).
    pub name: &'static str,
    /// Signed into every transfer (no replay across chains).
    pub chain_id: u32,
    /// Network magic (P2P messages and blk-file records).
    pub magic: [u8; 4],
    /// The easiest allowed target.
    pub pow_limit: Target,
    /// Seconds per block the difficulty aims for.
    pub target_spacing: i64,
    /// ASERT half-life in seconds: a chain this far behind (or ahead of) schedule doubles (halves)
    /// the target.
    pub half_life: i64,
    /// Block subsidy at height 0, in base units.
    pub initial_subsidy: u64,
    /// Blocks between subsidy halvings.
    pub halving_interval: u32,
    /// The genesis block (mined deterministically from the fields above, see [`genesis_block`]).
    pub genesis: LedgerBlock,
    /// The state after genesis: balances (base units, nonce 0) given to public keys at launch.
    /// Empty for the built-in chains; a chain spec's `allocations` (committed in its genesis).
    pub allocations: Vec<(crate::ledger::AccountKey, u64)>,
}

/// The consensus version of this powkit's chains (docs/CONSENSUS.md, "Consensus versions"):
/// 3 = the coinbase has a 12-byte extranonce (2 = ASERT anchored at the first block after genesis,
/// 1 was anchored at genesis).
pub const CONSENSUS_VERSION: u32 = 3;

impl LedgerNetwork {
    /// The built-in powkit chains.
    pub const ALL: [LedgerNetwork; 2] = [LedgerNetwork::Powkit, LedgerNetwork::PowkitRegtest];

    /// Its name on the command line: `powkit`, `powkit-regtest`, or a spec's name.
    pub fn name(self) -> &'static str {
        match self {
            LedgerNetwork::Powkit => "powkit",
            LedgerNetwork::PowkitRegtest => "powkit-regtest",
            LedgerNetwork::Custom(p) => p.name,
        }
    }

    /// The built-in chain named `s` (`powkit`, `powkit-regtest`), if it is one. The command line
    /// parses `--chain` with [`super::Network`], which knows both families and spec files.
    pub fn from_name(s: &str) -> Option<LedgerNetwork> {
        LedgerNetwork::ALL.into_iter().find(|c| c.name() == s)
    }

    /// The chain's parameters (computed once).
    pub fn params(self) -> &'static LedgerParams {
        static MAIN: OnceLock<LedgerParams> = OnceLock::new();
        static REGTEST: OnceLock<LedgerParams> = OnceLock::new();
        match self {
            LedgerNetwork::Powkit => MAIN.get_or_init(|| {
                let (bits, nonce) = (CompactTarget(0x1e00_ffff), 313_726);
                LedgerParams::new(
                    "powkit",
                    0x706f_7701,
                    [0x70, 0x6b, 0x77, 0x01],
                    bits,
                    30,
                    30 * 60,
                    GENESIS_TIME,
                    nonce,
                )
                .expect("valid built-in parameters")
            }),
            LedgerNetwork::PowkitRegtest => REGTEST.get_or_init(|| {
                let (bits, nonce) = (CompactTarget(0x1e7f_ffff), 193_905);
                LedgerParams::new(
                    "powkit-regtest",
                    0x706f_77ff,
                    [0x70, 0x6b, 0x77, 0xff],
                    bits,
                    1,
                    8,
                    GENESIS_TIME,
                    nonce,
                )
                .expect("valid built-in parameters")
            }),
            LedgerNetwork::Custom(p) => p,
        }
    }
}

impl LedgerParams {
    /// The parameters of a chain with these fields, its genesis built by [`genesis_block`]
    /// (`limit_bits` is the proof-of-work limit, `genesis_time` the launch time in Unix seconds,
    /// `genesis_nonce` the genesis header's nonce). Only the limit is checked here (the bits must
    /// decode to a usable target); [`super::spec::ChainSpec`] checks everything else of a spec.
    ///
    /// # Errors
    /// The limit bits are negative, overflow or zero.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &'static str,
        chain_id: u32,
        magic: [u8; 4],
        limit_bits: CompactTarget,
        target_spacing: i64,
        half_life: i64,
        genesis_time: u32,
        genesis_nonce: u32,
    ) -> Result<LedgerParams, crate::primitives::BitsError> {
        let pow_limit = limit_bits.to_target()?;
        Ok(LedgerParams {
            name,
            chain_id,
            magic,
            pow_limit,
            target_spacing,
            half_life,
            initial_subsidy: 50 * 100_000_000,
            halving_interval: 210_000,
            genesis: genesis_block(genesis_time, limit_bits, genesis_nonce),
            allocations: Vec::new(),
        })
    }
}

/// The built-in genesis blocks' time (2026-11-29 00:00:00 UTC, since consensus version 2; version 1's
/// genesis blocks were dated 1,700,000,000). With ASERT anchored at the block after genesis, the
/// genesis time no longer sets the difficulty schedule; it only has to precede every block.
pub const GENESIS_TIME: u32 = 1_795_910_400;

/// The genesis block: one coinbase (height 0, a zero extranonce, amount 0, the zero recipient, the
/// empty state's root), version 1, `time` and the limit bits. `nonce` is the lowest that meets the limit, found
/// once and written into the parameters (a test mines it again) so that start-up does no mining.
pub fn genesis_block(time: u32, bits: CompactTarget, nonce: u32) -> LedgerBlock {
    let cb = LedgerTx::Coinbase(Coinbase {
        height: 0,
        extranonce: [0; crate::ledger::tx::COINBASE_EXTRANONCE_SIZE],
        recipient: crate::ledger::AccountKey::ZERO,
        amount: 0,
        state_root: crate::ledger::StateRoot::ZERO,
    });
    let header = BlockHeader {
        version: 1,
        prev_blockhash: BlockHash::ZERO,
        merkle_root: TxMerkleNode(cb.txid().0),
        time,
        bits,
        nonce,
    };
    LedgerBlock { header, txs: vec![cb] }
}

impl fmt::Display for LedgerNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl LedgerParams {
    /// The block subsidy at `height`: halved every `halving_interval` blocks, zero after 64 halvings.
    pub fn subsidy(&self, height: u32) -> u64 {
        let halvings = height / self.halving_interval;
        if halvings >= 64 {
            0
        } else {
            self.initial_subsidy >> halvings
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genesis_blocks_are_deterministic_and_meet_their_limit() {
        for c in LedgerNetwork::ALL {
            let p = c.params();
            assert_eq!(LedgerNetwork::from_name(p.name), Some(c));
            let g = &p.genesis;
            assert!(p.pow_limit.is_met_by(&g.header.block_hash()), "{}", p.name);
            // The written nonce is the lowest that meets the limit.
            let scanner = crate::sha256::CpuImpl::detect().scanner().unwrap();
            let mined = crate::mine::mine_header(BlockHeader { nonce: 0, ..g.header }, scanner.as_ref()).unwrap();
            assert_eq!(mined.nonce, g.header.nonce, "{}", p.name);
            assert_eq!(g.merkle_root(), (g.header.merkle_root.0, false));
            assert_eq!(LedgerBlock::from_bytes(&g.to_bytes()).as_ref(), Ok(g));
            assert_eq!(g.header.time, GENESIS_TIME);
        }
        // The consensus version 3 genesis hashes (recomputed independently with Python's hashlib:
        // SHA-256d of the 80-byte header, version 1, zero parent, the coinbase txid as root, the
        // coinbase the 89 bytes 00 | 00000000 | 12 zero extranonce bytes | 72 zero bytes).
        assert_eq!(
            LedgerNetwork::Powkit.params().genesis.header.block_hash().to_string(),
            "0000004bf77d77aae0960ed7d5ffa651361895975e9801177fb78b6ca9360ceb"
        );
        assert_eq!(
            LedgerNetwork::PowkitRegtest.params().genesis.header.block_hash().to_string(),
            "0000373b4f3171b30a25e5bd1602089feb109e3379fe0c28af8353eb80ff8b5b"
        );
        assert_ne!(LedgerNetwork::Powkit.params().chain_id, LedgerNetwork::PowkitRegtest.params().chain_id);
        assert_eq!(LedgerNetwork::from_name("bitcoin"), None);
        let p = LedgerNetwork::Powkit.params();
        assert_eq!(p.subsidy(0), 5_000_000_000);
        assert_eq!(p.subsidy(209_999), 5_000_000_000);
        assert_eq!(p.subsidy(210_000), 2_500_000_000);
        assert_eq!(p.subsidy(u32::MAX), 0);
    }
}
