//! Where a job server (or a solo miner) gets block templates and sends solved blocks: the
//! [`JobSource`] trait, with one implementation per source (a powkit node's own chain, a bitcoind's
//! `getblocktemplate`), and [`Template`], a template already split for Stratum.

use std::time::Duration;

use crate::primitives::{sha256d, BlockHash, BlockHeader, CompactTarget};

/// A block template split for Stratum: the coinbase (its serialization without witness, what the
/// txid hashes) is `coinb1 ++ extranonce (extranonce_size bytes) ++ coinb2`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    /// Changes whenever the source's template changes (a new tip or new transactions).
    pub id: u64,
    /// The new block's height.
    pub height: u32,
    /// The parent, internal byte order (as in a header).
    pub prev_hash: BlockHash,
    /// The header version the source asks for.
    pub version: i32,
    /// The header bits (the network target).
    pub bits: CompactTarget,
    /// The template's time (Unix seconds).
    pub curtime: u32,
    /// The earliest valid header time (the median time past plus one).
    pub mintime: u32,
    /// The coinbase before the extranonce.
    pub coinb1: Vec<u8>,
    /// The coinbase after the extranonce.
    pub coinb2: Vec<u8>,
    /// Bytes reserved for the extranonce (extranonce1 and extranonce2 together).
    pub extranonce_size: usize,
    /// The coinbase's merkle branch ([`super::work::merkle_branch`] of the other txids), internal
    /// byte order.
    pub merkle_branch: Vec<[u8; 32]>,
    /// Transactions besides the coinbase (for reports).
    pub tx_count: usize,
}

impl Template {
    /// The coinbase with `extranonce` (exactly `extranonce_size` bytes) in its gap.
    pub fn coinbase(&self, extranonce: &[u8]) -> Vec<u8> {
        super::work::coinbase(&self.coinb1, extranonce, &[], &self.coinb2)
    }

    /// The header for `extranonce`, `time` and `nonce`, with the template's version.
    pub fn header(&self, extranonce: &[u8], time: u32, nonce: u32) -> BlockHeader {
        let root = super::work::merkle_root(sha256d(&self.coinbase(extranonce)), &self.merkle_branch);
        BlockHeader {
            version: self.version,
            prev_blockhash: self.prev_hash,
            merkle_root: crate::primitives::TxMerkleNode(root),
            time,
            bits: self.bits,
            nonce,
        }
    }
}

/// Where a job server (or a solo miner) gets block templates and sends solved blocks.
pub trait JobSource: Send + Sync {
    /// A short description for logs (`bitcoind http://127.0.0.1:18443`, `powkit node`).
    fn name(&self) -> String;

    /// The current template with `extranonce_size` bytes reserved in the coinbase.
    ///
    /// # Errors
    /// The source cannot give one (unreachable, still starting, a malformed answer): why.
    fn template(&self, extranonce_size: usize) -> Result<Template, String>;

    /// Waits up to `timeout` for the template to change (long polling where the source offers it);
    /// true when it may have.
    fn wait_for_change(&self, since: &Template, timeout: Duration) -> bool;

    /// Submits a block solved on `template`: the solved header and the full coinbase (`coinb1 ++
    /// extranonce ++ coinb2`). When the block is accepted, the next template (on the new tip) is
    /// available from [`JobSource::template`] by the time this returns: the job server takes it at
    /// once, so a later share on the old tip is refused as stale instead of becoming a second block
    /// at the same height.
    ///
    /// # Errors
    /// The node refused the block (its reason) or could not be reached.
    fn submit_block(&self, template: &Template, header: &BlockHeader, coinbase: &[u8]) -> Result<(), String>;
}
