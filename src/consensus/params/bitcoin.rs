//! Bitcoin chain parameters: genesis, proof-of-work limit, retarget rule, activation heights, magic bytes.
//!
//! Values are Bitcoin Core's (src/kernel/chainparams.cpp). powkit's own chains are in the sibling
//! module `ledger`.

use std::fmt;
use std::str::FromStr;

use crate::primitives::{BlockHash, BlockHeader, CompactTarget, Target, U256};

/// A Bitcoin network powkit knows (`--chain` names them through [`super::Network`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BitcoinNetwork {
    /// Bitcoin mainnet.
    Bitcoin,
    /// Bitcoin testnet3 (with its 20-minute minimum-difficulty rule).
    BitcoinTestnet,
    /// Bitcoin regtest (no retargeting, trivial target).
    BitcoinRegtest,
}

impl BitcoinNetwork {
    /// Every Bitcoin network.
    pub const ALL: [BitcoinNetwork; 3] =
        [BitcoinNetwork::Bitcoin, BitcoinNetwork::BitcoinTestnet, BitcoinNetwork::BitcoinRegtest];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            BitcoinNetwork::Bitcoin => "bitcoin",
            BitcoinNetwork::BitcoinTestnet => "bitcoin-testnet",
            BitcoinNetwork::BitcoinRegtest => "bitcoin-regtest",
        }
    }

    /// Its parameters.
    pub fn params(self) -> BitcoinParams {
        BitcoinParams::new(self)
    }
}

impl fmt::Display for BitcoinNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BitcoinNetwork {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BitcoinNetwork::ALL.into_iter().find(|c| c.name() == s).ok_or_else(|| {
            format!("unknown chain '{s}' (expected {})", BitcoinNetwork::ALL.map(|c| c.name()).join(", "))
        })
    }
}

/// Everything consensus needs to know about a Bitcoin network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BitcoinParams {
    /// Which network.
    pub network: BitcoinNetwork,
    /// Network magic, the first four bytes of every P2P message and blk-file record.
    pub magic: [u8; 4],
    /// The genesis block's header.
    pub genesis: BlockHeader,
    /// The easiest allowed target (`powLimit`).
    pub pow_limit: Target,
    /// Seconds a retarget period should take (two weeks).
    pub pow_target_timespan: i64,
    /// Seconds per block (ten minutes).
    pub pow_target_spacing: i64,
    /// Testnet's rule: a block more than twice the spacing after its parent may use the limit.
    pub allow_min_difficulty_blocks: bool,
    /// Regtest: the target never changes.
    pub no_retargeting: bool,
    /// First height that needs version >= 2 and the height in the coinbase (BIP34).
    pub bip34_height: u32,
    /// First height that needs version >= 3 (BIP66).
    pub bip66_height: u32,
    /// First height that needs version >= 4 (BIP65).
    pub bip65_height: u32,
    /// First height where segwit's witness commitment rules apply (BIP141).
    pub segwit_height: u32,
    /// First height where BIP68 relative lock times, BIP112 `CHECKSEQUENCEVERIFY` and BIP113's
    /// median-time-past lock-time cutoff apply (Core's `CSVHeight`).
    pub csv_height: u32,
    /// The hash of the block at `bip34_height` on this network's main chain (Core's `BIP34Hash`):
    /// where a chain contains it, BIP34 makes BIP30's duplicate check redundant until height
    /// 1,983,702. `None` on regtest (Core's `uint256()`), so BIP30 is always checked there.
    pub bip34_hash: Option<BlockHash>,
    /// Blocks between subsidy halvings (Core's `nSubsidyHalvingInterval`: 210,000; 150 on regtest).
    pub subsidy_halving_interval: u32,
    /// The blocks whose scripts are checked with only P2SH (BIP16) off, and the one checked with
    /// only P2SH and WITNESS (taproot off): Core's `script_flag_exceptions` (kernel/chainparams.cpp).
    /// Each entry is the block hash and whether taproot alone is the exception (`true`) or every
    /// always-on flag is (`false`: no flags).
    pub script_flag_exceptions: Vec<(BlockHash, bool)>,
    /// `pow_limit` in compact form (computed once: validation compares against it per header).
    pub pow_limit_bits: CompactTarget,
    /// Blocks per retarget period, `pow_target_timespan / pow_target_spacing` (computed once).
    pub retarget_interval: u32,
}

fn genesis(time: u32, bits: u32, nonce: u32) -> BlockHeader {
    let mut merkle = hex::decode("4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b").expect("hex");
    merkle.reverse();
    BlockHeader {
        version: 1,
        prev_blockhash: crate::primitives::BlockHash::ZERO,
        merkle_root: crate::primitives::TxMerkleNode(merkle.try_into().expect("32 bytes")),
        time,
        bits: crate::primitives::CompactTarget(bits),
        nonce,
    }
}

impl BitcoinParams {
    /// The parameters of `network`.
    pub fn new(network: BitcoinNetwork) -> BitcoinParams {
        // 0x00000000ffff...ff: Bitcoin's powLimit (not the compact form's 0x00000000ffff0000...).
        let bitcoin_limit = Target(U256::MAX.shr_bits(32));
        let mut p = match network {
            BitcoinNetwork::Bitcoin => BitcoinParams {
                network,
                magic: [0xf9, 0xbe, 0xb4, 0xd9],
                genesis: genesis(1231006505, 0x1d00ffff, 2083236893),
                pow_limit: bitcoin_limit,
                pow_target_timespan: 14 * 24 * 60 * 60,
                pow_target_spacing: 10 * 60,
                allow_min_difficulty_blocks: false,
                no_retargeting: false,
                bip34_height: 227_931,
                bip66_height: 363_725,
                bip65_height: 388_381,
                segwit_height: 481_824,
                csv_height: 419_328,
                bip34_hash: Some(
                    BlockHash::from_display_hex("000000000000024b89b42a942fe0d9fea3bb44ab7bd1b19115dd6a759c0808b8")
                        .expect("a valid hash"),
                ),
                subsidy_halving_interval: 210_000,
                script_flag_exceptions: vec![
                    (
                        BlockHash::from_display_hex("00000000000002dc756eebf4f49723ed8d30cc28a5f108eb94b1ba88ac4f9c22")
                            .expect("a valid hash"),
                        false,
                    ),
                    (
                        BlockHash::from_display_hex("0000000000000000000f14c35b2d841e986ab5441de8c585d5ffe55ea1e395ad")
                            .expect("a valid hash"),
                        true,
                    ),
                ],
                // Derived from the fields above, below.
                pow_limit_bits: CompactTarget(0),
                retarget_interval: 0,
            },
            BitcoinNetwork::BitcoinTestnet => BitcoinParams {
                network,
                magic: [0x0b, 0x11, 0x09, 0x07],
                genesis: genesis(1296688602, 0x1d00ffff, 414098458),
                pow_limit: bitcoin_limit,
                pow_target_timespan: 14 * 24 * 60 * 60,
                pow_target_spacing: 10 * 60,
                allow_min_difficulty_blocks: true,
                no_retargeting: false,
                bip34_height: 21_111,
                bip66_height: 330_776,
                bip65_height: 581_885,
                segwit_height: 834_624,
                csv_height: 770_112,
                bip34_hash: Some(
                    BlockHash::from_display_hex("0000000023b3a96d3484e5abb3755c413e7d41500f8e2a5c3f0dd01299cd8ef8")
                        .expect("a valid hash"),
                ),
                subsidy_halving_interval: 210_000,
                script_flag_exceptions: vec![(
                    BlockHash::from_display_hex("00000000dd30457c001f4095d208cc1296b0eed002427aa599874af7a432b105")
                        .expect("a valid hash"),
                    false,
                )],
                // Derived from the fields above, below.
                pow_limit_bits: CompactTarget(0),
                retarget_interval: 0,
            },
            BitcoinNetwork::BitcoinRegtest => BitcoinParams {
                network,
                magic: [0xfa, 0xbf, 0xb5, 0xda],
                genesis: genesis(1296688602, 0x207fffff, 2),
                pow_limit: Target(U256::MAX.shr_bits(1)),
                pow_target_timespan: 14 * 24 * 60 * 60,
                pow_target_spacing: 10 * 60,
                allow_min_difficulty_blocks: true,
                no_retargeting: true,
                bip34_height: 1,
                bip66_height: 1,
                bip65_height: 1,
                segwit_height: 0,
                csv_height: 1,
                bip34_hash: None,
                subsidy_halving_interval: 150,
                script_flag_exceptions: Vec::new(),
                // Derived from the fields above, below.
                pow_limit_bits: CompactTarget(0),
                retarget_interval: 0,
            },
        };
        p.pow_limit_bits = p.pow_limit.to_compact();
        p.retarget_interval = (p.pow_target_timespan / p.pow_target_spacing) as u32;
        p
    }

    /// Blocks per retarget period (2016).
    pub fn difficulty_adjustment_interval(&self) -> u32 {
        self.retarget_interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genesis_hashes_are_the_known_ones() {
        let want = [
            (BitcoinNetwork::Bitcoin, "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"),
            (BitcoinNetwork::BitcoinTestnet, "000000000933ea01ad0ee984209779baaec3ced90fa3f408719526f8d77f4943"),
            (BitcoinNetwork::BitcoinRegtest, "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"),
        ];
        for (c, h) in want {
            let p = c.params();
            assert_eq!(p.genesis.block_hash().to_string(), h, "{c}");
            assert!(p.genesis.bits.to_target().unwrap() <= p.pow_limit);
            assert_eq!(c.name().parse::<BitcoinNetwork>().unwrap(), c);
        }
        assert_eq!(BitcoinNetwork::Bitcoin.params().difficulty_adjustment_interval(), 2016);
        for c in BitcoinNetwork::ALL {
            let p = c.params();
            assert_eq!(p.pow_limit_bits, p.pow_limit.to_compact(), "{c}");
            assert_eq!(p.retarget_interval as i64, p.pow_target_timespan / p.pow_target_spacing, "{c}");
        }
        assert_eq!(BitcoinNetwork::Bitcoin.params().pow_limit_bits, crate::primitives::CompactTarget(0x1d00ffff));
        assert!("bitcoin-mainnet".parse::<BitcoinNetwork>().is_err());
    }
}
