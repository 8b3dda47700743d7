//! Parameters of powkit's own chains (docs/CONSENSUS.md, "powkit chains").

use std::fmt;
use std::sync::OnceLock;

use crate::ledger::{Coinbase, LedgerBlock, LedgerTx};
use crate::primitives::{BlockHash, BlockHeader, CompactTarget, Target, TxMerkleNode};

/// powkit's chains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LedgerNetwork {
    /// The public chain: 30-second blocks.
    Powkit,
    /// A fast local chain for tests: the easiest target, 1-second blocks.
    PowkitRegtest,
}

/// Everything consensus needs to know about a powkit chain.
#[derive(Clone, Debug)]
pub struct LedgerParams {
    /// Which chain.
    pub network: LedgerNetwork,
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
    /// ASERT half-life: a chain this far behind (or ahead of) schedule halves (doubles) the target.
    pub half_life: i64,
    /// Block subsidy at height 0, in base units.
    pub initial_subsidy: u64,
    /// Blocks between subsidy halvings.
    pub halving_interval: u32,
    /// The genesis block (mined deterministically from the fields above, see [`genesis_block`]).
    pub genesis: LedgerBlock,
}

impl LedgerNetwork {
    /// Every powkit chain.
    pub const ALL: [LedgerNetwork; 2] = [LedgerNetwork::Powkit, LedgerNetwork::PowkitRegtest];

    /// Its name on the command line: `powkit` or `powkit-regtest`.
    pub fn name(self) -> &'static str {
        match self {
            LedgerNetwork::Powkit => "powkit",
            LedgerNetwork::PowkitRegtest => "powkit-regtest",
        }
    }

    /// The chain named `s` (`powkit`, `powkit-regtest`), if it is one. The command line parses
    /// `--chain` with [`super::Network`], which knows both families.
    pub fn from_name(s: &str) -> Option<LedgerNetwork> {
        LedgerNetwork::ALL.into_iter().find(|c| c.name() == s)
    }

    /// The chain's parameters (computed once).
    pub fn params(self) -> &'static LedgerParams {
        static MAIN: OnceLock<LedgerParams> = OnceLock::new();
        static REGTEST: OnceLock<LedgerParams> = OnceLock::new();
        match self {
            LedgerNetwork::Powkit => MAIN
                .get_or_init(|| make(self, 0x706f_7701, [0x70, 0x6b, 0x77, 0x01], 0x1e00_ffff, 30, 30 * 60, 296_814)),
            LedgerNetwork::PowkitRegtest => {
                REGTEST.get_or_init(|| make(self, 0x706f_77ff, [0x70, 0x6b, 0x77, 0xff], 0x1e7f_ffff, 1, 60, 208_754))
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn make(
    network: LedgerNetwork,
    chain_id: u32,
    magic: [u8; 4],
    limit_bits: u32,
    target_spacing: i64,
    half_life: i64,
    genesis_nonce: u32,
) -> LedgerParams {
    let pow_limit = CompactTarget(limit_bits).to_target().expect("valid limit bits");
    LedgerParams {
        network,
        name: network.name(),
        chain_id,
        magic,
        pow_limit,
        target_spacing,
        half_life,
        initial_subsidy: 50 * 100_000_000,
        halving_interval: 210_000,
        genesis: genesis_block(GENESIS_TIME, CompactTarget(limit_bits), genesis_nonce),
    }
}

/// The genesis blocks' time.
pub const GENESIS_TIME: u32 = 1_700_000_000;

/// The genesis block: one coinbase (height 0, amount 0, the zero recipient, the empty state's
/// root), version 1, `time` and the limit bits. `nonce` is the lowest that meets the limit, found
/// once and written into the parameters (a test mines it again) so that start-up does no mining.
pub fn genesis_block(time: u32, bits: CompactTarget, nonce: u32) -> LedgerBlock {
    let cb = LedgerTx::Coinbase(Coinbase {
        height: 0,
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
        }
        assert_ne!(LedgerNetwork::Powkit.params().chain_id, LedgerNetwork::PowkitRegtest.params().chain_id);
        assert_eq!(LedgerNetwork::from_name("bitcoin"), None);
        let p = LedgerNetwork::Powkit.params();
        assert_eq!(p.subsidy(0), 5_000_000_000);
        assert_eq!(p.subsidy(209_999), 5_000_000_000);
        assert_eq!(p.subsidy(210_000), 2_500_000_000);
        assert_eq!(p.subsidy(u32::MAX), 0);
    }
}
