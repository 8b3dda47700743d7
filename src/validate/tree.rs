//! The block tree of bulk validation: the active chain, kept per height in flat vectors (hash,
//! time, bits and where the block's bytes are), and the side branches, kept per hash. Bitcoin
//! Core's `-reindex` builds the same tree (`BlockManager::m_block_index`) and activates the valid
//! chain with the most work (`CChainState::ActivateBestChain`), first seen winning a tie
//! (`nSequenceId`).
//!
//! Memory: the active chain costs 40 bytes per header (hash, time, bits) and, for blocks, 40 more
//! (where its bytes are), so a mainnet-sized chain of 900,000 blocks about 72 MB. A side-branch block costs about 120 bytes plus
//! its hash-map slot; block bytes are never held for either: a block that must be connected (or
//! disconnected) again is read back from its file, as Core reads it from its blk files. At most
//! `side_limit` side-branch blocks are kept; past that, validation stops with an error naming the
//! limit (exit 2), since dropping one could change which chain has the most work.

use std::collections::HashMap;
use std::sync::Arc;

use crate::consensus::pow::HeaderInfo;
use crate::primitives::{Block, BlockHash, CompactTarget, U256};

/// Where a block's bytes are: a blk record in an input file (read back on demand), or, for input
/// that cannot be read back (hex lines), the decoded block itself.
#[derive(Clone, Debug)]
pub enum Body {
    /// No block, only a header (header files).
    None,
    /// A blk record: file index, byte offset of the block's data, length.
    File {
        /// Index in the input file list.
        file: u32,
        /// Byte offset of the block (after magic and length).
        offset: u64,
        /// Length in bytes.
        len: u32,
    },
    /// Held in memory.
    Memory(Arc<Block>),
}

/// A block on a side branch (or disconnected from the active chain by a reorg).
#[derive(Clone, Debug)]
pub struct SideEntry {
    /// The parent's hash.
    pub prev: BlockHash,
    /// Height.
    pub height: u32,
    /// Header time.
    pub time: u32,
    /// Header bits.
    pub bits: CompactTarget,
    /// Work of the chain ending here.
    pub chainwork: U256,
    /// Where its bytes are.
    pub body: Body,
    /// Where it sits in the input, for reports: file index and offset.
    pub loc: (u32, u64),
}

/// The active chain, by height.
#[derive(Default)]
pub struct ActiveChain {
    hashes: Vec<BlockHash>,
    times: Vec<u32>,
    bits: Vec<CompactTarget>,
    bodies: Vec<Body>,
    /// Input location of each block (file index, offset), for reports.
    locs: Vec<(u32, u64)>,
    /// Work of the chain up to the tip.
    pub chainwork: U256,
    /// Heights of the hashes `hashes[..indexed]`, built on demand (a header that does not extend
    /// the tip is rare; the bulk path never touches the map).
    index: HashMap<BlockHash, u32>,
    indexed: usize,
    /// Whether bodies and locations are kept (blocks); header files keep 40 bytes per header only.
    blocks: bool,
}

impl ActiveChain {
    /// An empty chain; `blocks`: the input holds blocks (their file locations are kept).
    pub fn new(blocks: bool) -> ActiveChain {
        ActiveChain { blocks, ..ActiveChain::default() }
    }

    /// Makes room for `n` more blocks (header files: the count is known from the file sizes, so
    /// the vectors never move while growing).
    pub fn reserve(&mut self, n: usize) {
        self.hashes.reserve(n);
        self.times.reserve(n);
        self.bits.reserve(n);
    }

    /// Number of blocks (the tip's height plus one).
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether no block is connected.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The tip's hash.
    pub fn tip(&self) -> Option<&BlockHash> {
        self.hashes.last()
    }

    /// The tip's height.
    pub fn tip_height(&self) -> Option<u32> {
        self.hashes.len().checked_sub(1).map(|h| h as u32)
    }

    /// The block at `height`: height, time, bits.
    pub fn info(&self, height: u32) -> HeaderInfo {
        let h = height as usize;
        HeaderInfo { height, time: self.times[h], bits: self.bits[h] }
    }

    /// Hash at `height`.
    pub fn hash(&self, height: u32) -> &BlockHash {
        &self.hashes[height as usize]
    }

    /// Body at `height` ([`Body::None`] for header input).
    pub fn body(&self, height: u32) -> &Body {
        self.bodies.get(height as usize).unwrap_or(&Body::None)
    }

    /// Input location at `height` (`(0, 0)` for header input).
    pub fn loc(&self, height: u32) -> (u32, u64) {
        self.locs.get(height as usize).copied().unwrap_or((0, 0))
    }

    /// Header times of the blocks at heights `from..=to`.
    pub fn times(&self, from: u32, to: u32) -> &[u32] {
        &self.times[from as usize..=to as usize]
    }

    /// Bitcoin Core's `GetMedianTimePast` of the block at `height`: the median of its time and the
    /// 10 before it.
    pub fn median_time_past(&self, height: u32) -> u32 {
        median(self.times(height.saturating_sub(10), height))
    }

    /// Appends a block as the new tip.
    pub fn push(&mut self, hash: BlockHash, time: u32, bits: CompactTarget, body: Body, loc: (u32, u64), work: U256) {
        self.hashes.push(hash);
        self.times.push(time);
        self.bits.push(bits);
        if self.blocks {
            self.bodies.push(body);
            self.locs.push(loc);
        }
        self.chainwork = self.chainwork.checked_add(work).unwrap_or(U256::MAX);
    }

    /// Removes the tip (its work is `work`) and returns its side entry.
    pub fn pop(&mut self, work: U256) -> Option<(BlockHash, SideEntry)> {
        let height = self.tip_height()?;
        let hash = self.hashes.pop()?;
        let time = self.times.pop()?;
        let bits = self.bits.pop()?;
        let body = self.bodies.pop().unwrap_or(Body::None);
        let loc = self.locs.pop().unwrap_or((0, 0));
        let chainwork = self.chainwork;
        self.chainwork = self.chainwork.overflowing_sub(work).0;
        if self.indexed > self.hashes.len() {
            self.index.remove(&hash);
            self.indexed = self.hashes.len();
        }
        let prev = if height == 0 { BlockHash::ZERO } else { self.hashes[height as usize - 1] };
        Some((hash, SideEntry { prev, height, time, bits, chainwork, body, loc }))
    }

    /// [`Self::height_of`] without bringing the index up to date (a linear search past it).
    pub fn height_of_ro(&self, hash: &BlockHash) -> Option<u32> {
        if let Some(h) = self.index.get(hash) {
            return Some(*h);
        }
        (self.indexed..self.hashes.len()).rev().find(|&h| self.hashes[h] == *hash).map(|h| h as u32)
    }

    /// The height of `hash` if it is on the active chain: the last 16 blocks are searched
    /// directly (where forks start), the rest through an index brought up to date on demand.
    pub fn height_of(&mut self, hash: &BlockHash) -> Option<u32> {
        let n = self.hashes.len();
        for h in (n.saturating_sub(16)..n).rev() {
            if self.hashes[h] == *hash {
                return Some(h as u32);
            }
        }
        while self.indexed < n {
            self.index.insert(self.hashes[self.indexed], self.indexed as u32);
            self.indexed += 1;
        }
        self.index.get(hash).copied()
    }
}

/// The median of up to 11 times (the upper middle for an even count, as Core sorts and takes
/// `size / 2`).
pub fn median(times: &[u32]) -> u32 {
    let mut t = [0u32; 11];
    let n = times.len().min(11);
    t[..n].copy_from_slice(&times[times.len() - n..]);
    t[..n].sort_unstable();
    t[n / 2]
}
