//! The block tree of bulk validation: the active chain, kept per height in flat vectors (hash,
//! time, bits and where the block's bytes are), and the side branches, kept per hash. Bitcoin
//! Core's `-reindex` builds the same tree (`BlockManager::m_block_index`) and activates the valid
//! chain with the most work (`CChainState::ActivateBestChain`), first seen winning a tie
//! (`nSequenceId`).
//!
//! Memory:
//! - Block input: the active chain costs 40 bytes per block (hash, time, bits) and 40 more (where
//!   its bytes are), so a mainnet-sized chain of 900,000 blocks about 72 MB.
//! - Header files: only a window of the most recent headers is held (at least 4,096, and never
//!   fewer than a retarget interval plus the 11 blocks of the median time past); every older
//!   header is remembered by its place in the input alone, run-length coded (one entry per file
//!   and per fork, not per header). The rare fork deeper than the window, or a lookup by hash
//!   below it, reads those headers back from their files and checks that they still hash and
//!   link as they did (a changed file stops validation with an error rather than a wrong
//!   verdict). Input that is not a regular file keeps every header in memory (40 bytes each).
//! - A side-branch block costs about 120 bytes plus its hash-map slot; block bytes are never held
//!   for either: a block that must be connected (or disconnected) again is read back from its
//!   file, as Core reads it from its blk files. At most `side_limit` side-branch blocks are kept;
//!   past that, validation stops with an error naming the limit (exit 2), since dropping one could
//!   change which chain has the most work.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

use super::xor::XorKey;
use crate::consensus::pow::HeaderInfo;
use crate::primitives::{sha256d, Block, BlockHash, BlockHeader, CompactTarget, U256};

/// Headers held in memory at least, when older ones can be read back (see the module docs).
pub const HEADER_WINDOW: usize = 4096;

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

/// The header files a window-only chain reads old headers back from: the input files in reading
/// order, each with its obfuscation key.
#[derive(Clone, Debug)]
pub struct HeaderFiles {
    /// The input files (records name theirs by index).
    pub files: Vec<PathBuf>,
    /// Each file's obfuscation key.
    pub keys: Vec<Option<XorKey>>,
}

/// Run-length coded input places of raw headers by height: a run is a first height and where its
/// header is, each next height 80 bytes further in the same file.
#[derive(Default)]
struct Places {
    /// (first height, file index, byte offset of that header), heights ascending.
    runs: Vec<(u32, u32, u64)>,
}

impl Places {
    fn push(&mut self, height: u32, file: u32, offset: u64) {
        if let Some(&(h0, f, o)) = self.runs.last() {
            if f == file && o + 80 * u64::from(height - h0) == offset {
                return;
            }
        }
        self.runs.push((height, file, offset));
    }

    /// Forgets heights `height..`.
    fn truncate(&mut self, height: u32) {
        while self.runs.last().is_some_and(|r| r.0 >= height) {
            self.runs.pop();
        }
    }

    /// The runs covering `from..=to`, each as (first height, file, offset of that height, count).
    fn spans(&self, from: u32, to: u32) -> Vec<(u32, u32, u64, u32)> {
        let mut out = Vec::new();
        let mut i = self.runs.partition_point(|r| r.0 <= from).saturating_sub(1);
        let mut h = from;
        while h <= to && i < self.runs.len() {
            let (h0, f, o) = self.runs[i];
            let end = self.runs.get(i + 1).map_or(to, |r| (r.0 - 1).min(to));
            if end >= h {
                out.push((h, f, o + 80 * u64::from(h - h0), end - h + 1));
                h = end + 1;
            }
            i += 1;
        }
        out
    }
}

/// The active chain, by height.
#[derive(Default)]
pub struct ActiveChain {
    /// Height of `hashes[0]` (`times`, `bits` alike): heights below it are held as places only.
    base: u32,
    hashes: Vec<BlockHash>,
    times: Vec<u32>,
    bits: Vec<CompactTarget>,
    /// Block input: every height's body and input location.
    bodies: Vec<Body>,
    locs: Vec<(u32, u64)>,
    /// Header input: every height's place in the input.
    places: Places,
    /// Where headers below `base` are read back from; `None`: every header stays in memory.
    source: Option<HeaderFiles>,
    /// Headers kept in memory when trimming.
    window: usize,
    /// Work of the chain up to the tip.
    pub chainwork: U256,
    /// Heights of the hashes of heights `..indexed`, built on demand (a header that does not
    /// extend the tip is rare; the bulk path never touches the map).
    index: HashMap<BlockHash, u32>,
    indexed: usize,
    /// Whether bodies and locations are kept (blocks); header files keep a window only.
    blocks: bool,
}

impl ActiveChain {
    /// An empty chain; `blocks`: the input holds blocks (their file locations are kept, and every
    /// header stays in memory).
    pub fn new(blocks: bool) -> ActiveChain {
        ActiveChain { blocks, window: HEADER_WINDOW, ..ActiveChain::default() }
    }

    /// An empty chain of raw headers read from `source`, holding at least `window` (raised to
    /// [`HEADER_WINDOW`]) of the most recent in memory and reading older ones back on demand.
    pub fn with_header_files(source: HeaderFiles, window: usize) -> ActiveChain {
        ActiveChain { window: window.max(HEADER_WINDOW), source: Some(source), ..ActiveChain::default() }
    }

    /// Makes room for `n` more blocks (header files kept whole: the count is known from the file
    /// sizes, so the vectors never move while growing).
    pub fn reserve(&mut self, n: usize) {
        let n = if self.source.is_some() { n.min(2 * self.window) } else { n };
        self.hashes.reserve(n);
        self.times.reserve(n);
        self.bits.reserve(n);
    }

    /// Number of blocks (the tip's height plus one).
    #[inline]
    pub fn len(&self) -> usize {
        self.base as usize + self.hashes.len()
    }

    /// Whether no block is connected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The tip's hash.
    #[inline]
    pub fn tip(&self) -> Option<&BlockHash> {
        self.hashes.last()
    }

    /// The tip's height.
    pub fn tip_height(&self) -> Option<u32> {
        self.len().checked_sub(1).map(|h| h as u32)
    }

    /// The lowest height held in memory: [`Self::info`], [`Self::hash`] and [`Self::times`] take
    /// heights from here up ([`Self::materialize`] lowers it).
    pub fn base(&self) -> u32 {
        self.base
    }

    #[inline]
    fn at(&self, height: u32) -> usize {
        debug_assert!(height >= self.base, "height {height} below the window at {}", self.base);
        (height - self.base) as usize
    }

    /// The block at `height` (at least [`Self::base`]): height, time, bits.
    #[inline]
    pub fn info(&self, height: u32) -> HeaderInfo {
        let h = self.at(height);
        HeaderInfo { height, time: self.times[h], bits: self.bits[h] }
    }

    /// Hash at `height` (at least [`Self::base`]).
    pub fn hash(&self, height: u32) -> &BlockHash {
        &self.hashes[self.at(height)]
    }

    /// Body at `height` ([`Body::None`] for header input).
    pub fn body(&self, height: u32) -> &Body {
        self.bodies.get(height as usize).unwrap_or(&Body::None)
    }

    /// Input location at `height` (`(0, 0)` for header input).
    pub fn loc(&self, height: u32) -> (u32, u64) {
        self.locs.get(height as usize).copied().unwrap_or((0, 0))
    }

    /// Header times of the blocks at heights `from..=to` (`from` at least [`Self::base`]).
    #[inline]
    pub fn times(&self, from: u32, to: u32) -> &[u32] {
        &self.times[self.at(from)..=self.at(to)]
    }

    /// Bitcoin Core's `GetMedianTimePast` of the block at `height`: the median of its time and the
    /// 10 before it (which must be at least [`Self::base`]).
    pub fn median_time_past(&self, height: u32) -> u32 {
        median(self.times(height.saturating_sub(10).max(self.base), height))
    }

    /// Appends a block as the new tip; `loc` is where it is in the input (file index, offset).
    #[inline]
    pub fn push(&mut self, hash: BlockHash, time: u32, bits: CompactTarget, body: Body, loc: (u32, u64), work: U256) {
        let height = self.len() as u32;
        self.hashes.push(hash);
        self.times.push(time);
        self.bits.push(bits);
        if self.blocks {
            self.bodies.push(body);
            self.locs.push(loc);
        } else if self.source.is_some() {
            self.places.push(height, loc.0, loc.1);
            if self.hashes.len() >= 2 * self.window {
                self.trim();
            }
        }
        self.chainwork = self.chainwork.checked_add(work).unwrap_or(U256::MAX);
    }

    /// Keeps the last `window` headers in memory.
    fn trim(&mut self) {
        let drop = self.hashes.len() - self.window;
        self.hashes.drain(..drop);
        self.times.drain(..drop);
        self.bits.drain(..drop);
        self.base += drop as u32;
    }

    /// Removes the tip (its work is `work`) and returns its side entry. The parent must be in
    /// memory (see [`Self::materialize`]) unless the tip is the genesis block.
    pub fn pop(&mut self, work: U256) -> Option<(BlockHash, SideEntry)> {
        let height = self.tip_height()?;
        let hash = self.hashes.pop()?;
        let time = self.times.pop()?;
        let bits = self.bits.pop()?;
        let body = self.bodies.pop().unwrap_or(Body::None);
        let mut loc = self.locs.pop().unwrap_or((0, 0));
        if self.source.is_some() {
            if let Some((_, f, o, _)) = self.places.spans(height, height).first() {
                loc = (*f, *o);
            }
            self.places.truncate(height);
        }
        let chainwork = self.chainwork;
        self.chainwork = self.chainwork.overflowing_sub(work).0;
        if self.indexed > self.len() {
            self.index.remove(&hash);
            self.indexed = self.len();
        }
        let prev = if height == 0 { BlockHash::ZERO } else { *self.hash(height - 1) };
        Some((hash, SideEntry { prev, height, time, bits, chainwork, body, loc }))
    }

    /// Brings heights `from..` into memory, reading headers below [`Self::base`] back from their
    /// files (header input only; otherwise everything is in memory already).
    ///
    /// # Errors
    /// A file cannot be read back, or its headers no longer hash and link as they did (the file
    /// changed during validation): the message says which file and where.
    pub fn materialize(&mut self, from: u32) -> Result<(), String> {
        if from >= self.base || self.is_empty() {
            return Ok(());
        }
        let read = self.read_back(from, self.base, self.hash(self.base))?;
        let n = read.len() - 1;
        let hashes: Vec<BlockHash> = read[..n].iter().map(|(h, _)| *h).collect();
        let times: Vec<u32> = read[..n].iter().map(|(_, hd)| hd.time).collect();
        let bits: Vec<CompactTarget> = read[..n].iter().map(|(_, hd)| hd.bits).collect();
        self.hashes.splice(0..0, hashes);
        self.times.splice(0..0, times);
        self.bits.splice(0..0, bits);
        self.base = from;
        Ok(())
    }

    /// Headers `from..=to` read back from the input, each with its hash; they must link, and the
    /// one at `to` must hash to `expect` (its hash when it was validated).
    fn read_back(&self, from: u32, to: u32, expect: &BlockHash) -> Result<Vec<(BlockHash, BlockHeader)>, String> {
        let source = self.source.as_ref().ok_or("headers below the window cannot be read back")?;
        let mut out: Vec<(BlockHash, BlockHeader)> = Vec::with_capacity((to - from + 1) as usize);
        for (h, file, offset, count) in self.places.spans(from, to) {
            let path = source.files.get(file as usize).ok_or_else(|| format!("no input file {file}"))?;
            let fail = |e: std::io::Error| format!("{}: reading headers back at byte {offset}: {e}", path.display());
            let mut f = std::fs::File::open(path).map_err(fail)?;
            f.seek(SeekFrom::Start(offset)).map_err(fail)?;
            let mut buf = vec![0u8; 80 * count as usize];
            f.read_exact(&mut buf).map_err(fail)?;
            if let Some(Some(key)) = source.keys.get(file as usize) {
                key.apply(&mut buf, offset);
            }
            for (i, raw) in buf.as_chunks::<80>().0.iter().enumerate() {
                let header = BlockHeader::from_array(raw);
                let hash = BlockHash(sha256d(raw));
                if let Some((prev, _)) = out.last() {
                    if header.prev_blockhash != *prev {
                        return Err(format!(
                            "{}: the header at byte {} (height {}) no longer links to the one before it: \
                             the file changed during validation",
                            path.display(),
                            offset + 80 * i as u64,
                            h + i as u32
                        ));
                    }
                }
                out.push((hash, header));
            }
        }
        if out.len() != (to - from + 1) as usize || out.last().map(|x| &x.0) != Some(expect) {
            return Err(format!(
                "the headers read back for heights {from}..={to} do not match the chain validated: the input changed \
                 during validation"
            ));
        }
        Ok(out)
    }

    /// [`Self::height_of`] without bringing the index up to date (a search of the memory past
    /// it: blocks input, where everything is in memory).
    pub fn height_of_ro(&self, hash: &BlockHash) -> Option<u32> {
        if let Some(h) = self.index.get(hash) {
            return Some(*h);
        }
        let from = self.indexed.max(self.base as usize);
        (from..self.len()).rev().find(|&h| self.hashes[h - self.base as usize] == *hash).map(|h| h as u32)
    }

    /// The height of `hash` if it is on the active chain: the last 16 blocks are searched
    /// directly (where forks start), the rest through an index brought up to date on demand
    /// (reading headers below the window back from their files).
    ///
    /// # Errors
    /// As [`Self::materialize`].
    pub fn height_of(&mut self, hash: &BlockHash) -> Result<Option<u32>, String> {
        let n = self.len();
        let base = self.base as usize;
        for h in (n.saturating_sub(16).max(base)..n).rev() {
            if self.hashes[h - base] == *hash {
                return Ok(Some(h as u32));
            }
        }
        if self.indexed < base {
            // Below the window: read back in slices, the newest first, each checked against the
            // hash at its top (the window's first, then the slice above's first).
            let mut to = base as u32;
            let mut expect = *self.hash(to);
            while to as usize > self.indexed {
                let from = to.saturating_sub(1 << 16).max(self.indexed as u32);
                let slice = self.read_back(from, to, &expect)?;
                for (i, (h, _)) in slice[..slice.len() - 1].iter().enumerate() {
                    self.index.insert(*h, from + i as u32);
                }
                expect = slice[0].0;
                to = from;
            }
            self.indexed = base;
        }
        while self.indexed < n {
            self.index.insert(self.hashes[self.indexed - base], self.indexed as u32);
            self.indexed += 1;
        }
        Ok(self.index.get(hash).copied())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::TxMerkleNode;

    /// `n` linked headers after a made-up genesis (no proof of work: the tree does not check it).
    fn headers(n: usize) -> Vec<BlockHeader> {
        let mut out: Vec<BlockHeader> = Vec::with_capacity(n);
        for i in 0..n {
            let prev = out.last().map_or(BlockHash::ZERO, |h| h.block_hash());
            out.push(BlockHeader {
                version: 4,
                prev_blockhash: prev,
                merkle_root: TxMerkleNode([7; 32]),
                time: 1_000 + i as u32,
                bits: CompactTarget(0x207f_ffff),
                nonce: i as u32,
            });
        }
        out
    }

    fn file(name: &str, hs: &[BlockHeader]) -> PathBuf {
        let d = std::env::temp_dir().join(format!("powkit-tree-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join(name);
        std::fs::write(&p, hs.iter().flat_map(|h| h.to_bytes()).collect::<Vec<u8>>()).unwrap();
        p
    }

    fn chain_of(path: &std::path::Path, hs: &[BlockHeader]) -> ActiveChain {
        let source = HeaderFiles { files: vec![path.to_path_buf()], keys: vec![None] };
        let mut c = ActiveChain::with_header_files(source, 2032);
        for (i, h) in hs.iter().enumerate() {
            c.push(h.block_hash(), h.time, h.bits, Body::None, (0, 80 * i as u64), U256::from_u64(2));
        }
        c
    }

    #[test]
    fn header_chains_keep_a_window_and_read_older_headers_back_exactly() {
        let hs = headers(10_000);
        let p = file("window.bin", &hs);
        let mut c = chain_of(&p, &hs);
        assert_eq!(c.len(), 10_000);
        assert!(c.base() > 0 && c.len() - c.base() as usize <= 2 * HEADER_WINDOW, "base {}", c.base());
        assert!(c.len() - c.base() as usize >= HEADER_WINDOW);
        // Lookups by hash below the window read the file back.
        for h in [0u32, 1, 17, 4_095, 5_000, 9_999] {
            assert_eq!(c.height_of(&hs[h as usize].block_hash()).unwrap(), Some(h), "height {h}");
        }
        assert_eq!(c.height_of(&BlockHash([9; 32])).unwrap(), None);
        // Materializing brings the same hash, time and bits back; popping below the old window works.
        c.materialize(100).unwrap();
        assert_eq!(c.base(), 100);
        for h in [100u32, 101, 2_000, 9_999] {
            assert_eq!(*c.hash(h), hs[h as usize].block_hash());
            assert_eq!(c.info(h).time, hs[h as usize].time);
        }
        assert_eq!(c.median_time_past(5_000), hs[4_995].time);
        while c.len() > 200 {
            let (hash, e) = c.pop(U256::from_u64(2)).unwrap();
            assert_eq!(hash, hs[e.height as usize].block_hash());
            assert_eq!(e.prev, hs[e.height as usize - 1].block_hash());
            assert_eq!(e.loc, (0, 80 * u64::from(e.height)));
        }
        assert_eq!(c.tip(), Some(&hs[199].block_hash()));
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn a_header_file_changed_during_validation_is_an_error_not_a_wrong_answer() {
        let hs = headers(10_000);
        let p = file("changed.bin", &hs);
        let c = chain_of(&p, &hs);
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[80 * 50 + 76] ^= 1; // header 50's nonce: its hash changes, header 51 no longer links
        std::fs::write(&p, &bytes).unwrap();
        let mut c1 = chain_of(&p, &hs);
        drop(c);
        let e = c1.materialize(10).unwrap_err();
        assert!(e.contains("no longer links") || e.contains("changed"), "{e}");
        let e = c1.height_of(&hs[3].block_hash()).unwrap_err();
        assert!(e.contains("changed"), "{e}");
        std::fs::write(&p, &bytes[..80 * 3000]).unwrap();
        let e = c1.materialize(10).unwrap_err();
        assert!(e.contains("reading headers back"), "{e}");
        std::fs::remove_file(&p).unwrap();
    }
}
