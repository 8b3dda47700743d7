//! Bulk validation of a Bitcoin chain: records from [`super::read`], decoded by `primitives`,
//! hashed in batches, checked by `consensus::rules`, linked into one chain with a bounded window of
//! history; [`run`] drives it through the worker pipeline and builds the report.
//!
//! Memory stays flat as the input grows: the validator keeps the last 2016 headers' heights, times
//! and bits (the retarget window, which also holds the 11 times for the median), not the whole chain,
//! plus at most `orphan_limit` blocks whose parent has not arrived yet (blk files are written out of
//! order). A block whose parent is an older block of the chain (a stale fork) is counted and skipped.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::chainstate::{BlockContext, Chainstate, ConnectError};
use super::read::{expand_paths, Format, Kind, Reader, Record};
use super::tree::{ActiveChain, Body, HeaderFiles, SideEntry};
use super::xor::XorKey;
use super::{
    pipeline, Invalid, Malformed, Progress, Stats, Stop, ValidateError, ValidateOptions, ValidateReport, NOT_CHECKED,
};
use crate::backend::HeaderHasher;
use crate::consensus::pow::{next_work_required, HeaderInfo};
use crate::consensus::rules::{self, sigops, tx as txrules, RuleError};
use crate::consensus::{BitcoinNetwork, BitcoinParams};
use crate::primitives::{Block, BlockHash, BlockHeader, CompactTarget, DecodeError, Target, Txid, Work, U256};

/// How to validate a Bitcoin chain's records (what [`prepare_record`] and [`Validator`] check).
#[derive(Clone, Debug)]
pub struct Options {
    /// The chain's parameters.
    pub params: BitcoinParams,
    /// Check every record alone (Bitcoin Core's `CheckBlock` plus the 2-hour time limit).
    pub no_context: bool,
    /// Skip the proof-of-work check (for structure tests on altered blocks).
    pub no_pow: bool,
    /// The clock for the 2-hour future limit (Unix seconds).
    pub now: i64,
    /// Most blocks held while waiting for their parent.
    pub orphan_limit: usize,
    /// Most blocks kept on side branches (see [`super::tree`]).
    pub side_limit: usize,
    /// The input format (blk records can be read back from their files).
    pub format: Format,
    /// The obfuscation key of each input file (Bitcoin Core 28+ `blocks/xor.dat`, or `--xor-key`),
    /// for reading a block back from its file.
    pub keys: Vec<Option<XorKey>>,
    /// The input files, in reading order (records name theirs by index).
    pub files: Vec<PathBuf>,
}

/// Where a header sits in the input: the file's index and the byte offset (for hex: the line).
#[derive(Clone, Copy, Debug)]
struct Loc {
    file: u32,
    offset: u64,
    /// The record's length where its bytes can be read back from the file (blk input).
    len: Option<u32>,
}

/// A record decoded and through every context-free rule, ready to be linked.
pub struct Pending {
    loc: Loc,
    header: BlockHeader,
    hash: BlockHash,
    block: Option<Arc<Block>>,
    /// The block's txids (empty for a header).
    txids: Vec<Txid>,
}

/// Consecutive raw headers (part of one [`Kind::Headers`] record) through every context-free
/// rule, kept as the bytes they were read in: the bulk path moves one buffer, not a record per header.
pub struct HeaderRun {
    file: u32,
    offset: u64,
    bytes: Vec<u8>,
    hashes: Vec<[u8; 32]>,
}

/// What [`prepare_record`] hands to [`Validator::accept`].
pub enum Prepared {
    /// A block or a single header.
    One(Pending),
    /// Raw headers.
    Run(HeaderRun),
    /// The record (or a header within a run) is malformed or breaks a context-free rule.
    Stop(Stop),
}

/// The validator's state: the block tree (active chain and side branches), the blocks waiting for
/// their parent, and, when blocks are fully validated, the chain state (UTXO set and script checks).
pub struct Validator {
    opts: Options,
    /// The active chain.
    pub chain: ActiveChain,
    side: HashMap<BlockHash, SideEntry>,
    /// Bits of the latest active block that is genesis, at a retarget height, or not at the
    /// limit: what testnet's minimum-difficulty walk back finds (`None`: walk to find it).
    last_regular_bits: Option<CompactTarget>,
    last_work: Option<(CompactTarget, Work)>,
    orphans: HashMap<BlockHash, Vec<Pending>>,
    orphan_count: usize,
    /// Totals so far.
    pub stats: Stats,
    /// Buffers of linked header runs, for the reader to reuse ([`Validator::take_spent`]).
    spent: Vec<Vec<u8>>,
    /// Hash buffers of linked header runs, for the workers to reuse.
    spent_hashes: Vec<Vec<[u8; 32]>>,
    /// Full validation: the UTXO set and the script threads (`None`: headers and block rules only).
    pub state: Option<Chainstate>,
    /// Blocks connected so far (connection order, for the earliest script failure).
    seq: u64,
}

fn malformed(rec: &Record, offset: u64, e: DecodeError) -> Stop {
    Stop::Malformed(Box::new(Malformed { file: rec.file.display().to_string(), offset, message: e.to_string() }))
}

fn invalid(files: &[PathBuf], loc: Loc, hash: &BlockHash, prev: &BlockHash, height: Option<u32>, e: RuleError) -> Stop {
    Stop::Invalid(Box::new(Invalid {
        height,
        hash: hash.to_string(),
        file: files.get(loc.file as usize).map_or_else(|| "?".into(), |f| f.display().to_string()),
        offset: loc.offset,
        rule: e.rule().to_string(),
        reason: e.reason(),
        message: e.to_string(),
        prev: Some(*prev),
    }))
}

/// Decodes a record and runs every context-free rule on it: the part of validation that needs no
/// other block, so it runs on many threads at once. `hashes` holds the record's header hashes in
/// order (one for a block or header, one per header for a [`Kind::Headers`] run). Appends to `out`;
/// after a failure nothing more of the record is appended.
pub fn prepare_record(rec: Record, hashes: Vec<[u8; 32]>, opts: &Options, out: &mut Vec<Prepared>) {
    match rec.kind {
        Kind::Block => {
            let hash = BlockHash(hashes[0]);
            out.push(match Block::from_bytes(&rec.bytes) {
                Err(e) => Prepared::Stop(malformed(&rec, rec.offset, e)),
                Ok(b) => {
                    let len = (opts.format == Format::Blk).then_some(rec.bytes.len() as u32);
                    let loc = Loc { file: rec.file_index, offset: rec.offset, len };
                    match block_context_free(&b, &hash, loc, opts) {
                        Ok(txids) => {
                            Prepared::One(Pending { loc, header: b.header, hash, block: Some(Arc::new(b)), txids })
                        }
                        Err(e) => Prepared::Stop(e),
                    }
                }
            });
        }
        Kind::Header => {
            let hash = BlockHash(hashes[0]);
            let loc = Loc { file: rec.file_index, offset: rec.offset, len: None };
            out.push(match BlockHeader::from_bytes(&rec.bytes) {
                Err(e) => Prepared::Stop(malformed(&rec, rec.offset, e)),
                Ok(header) => match header_context_free(&header, &hash, &mut None, opts) {
                    Ok(()) => Prepared::One(Pending { loc, header, hash, block: None, txids: Vec::new() }),
                    Err(e) => Prepared::Stop(invalid(&opts.files, loc, &hash, &header.prev_blockhash, None, e)),
                },
            });
        }
        Kind::Headers => {
            let (run, rest) = rec.bytes.as_chunks::<80>();
            debug_assert!(rest.is_empty(), "the reader frames whole headers");
            let mut target = None;
            let failed = run.iter().zip(&hashes).enumerate().find_map(|(i, (bytes, h))| {
                let header = BlockHeader::from_array(bytes);
                let hash = BlockHash(*h);
                header_context_free(&header, &hash, &mut target, opts).err().map(|e| {
                    let loc = Loc { file: rec.file_index, offset: rec.offset + 80 * i as u64, len: None };
                    (i, invalid(&opts.files, loc, &hash, &header.prev_blockhash, None, e))
                })
            });
            let (file, offset) = (rec.file_index, rec.offset);
            let (mut bytes, mut hashes) = (rec.bytes, hashes);
            let stop = failed.map(|(i, stop)| {
                bytes.truncate(80 * i);
                hashes.truncate(i);
                stop
            });
            if !hashes.is_empty() {
                out.push(Prepared::Run(HeaderRun { file, offset, bytes, hashes }));
            }
            out.extend(stop.map(Prepared::Stop));
        }
    }
}

/// Every header rule that needs no other block. `target` caches the last bits' decoded target
/// (consecutive headers share their bits for 2016 blocks at a time).
fn header_context_free(
    header: &BlockHeader,
    hash: &BlockHash,
    target: &mut Option<(CompactTarget, Target)>,
    opts: &Options,
) -> Result<(), RuleError> {
    let t = match *target {
        Some((bits, t)) if bits == header.bits => t,
        _ => {
            let t = rules::target_bits_are_valid(header.bits, &opts.params)?;
            *target = Some((header.bits, t));
            t
        }
    };
    if !opts.no_pow {
        rules::hash_meets_target(hash, t)?;
    }
    rules::time_is_not_too_far_ahead(header, opts.now)
}

/// Every rule that needs no other block, for a whole block.
/// Returns the block's txids (the merkle check computes them; full validation needs them).
fn block_context_free(b: &Block, hash: &BlockHash, loc: Loc, opts: &Options) -> Result<Vec<Txid>, Stop> {
    let params = &opts.params;
    let err = |e| invalid(&opts.files, loc, hash, &b.header.prev_blockhash, None, e);
    header_context_free(&b.header, hash, &mut None, opts).map_err(err)?;
    rules::block_is_not_empty(b).map_err(err)?;
    let txids = rules::txids(b);
    rules::merkle_root_matches_txids(b, &txids).map_err(err)?;
    rules::coinbase_is_first_and_only(b).map_err(err)?;
    rules::block_size_is_within_limits(b).map_err(err)?;
    for (i, tx) in b.txdata.iter().enumerate() {
        rules::transaction_is_well_formed(tx, i).map_err(err)?;
    }
    sigops::block_legacy_sigops_are_within_limit(b).map_err(|e| err(e.into()))?;
    if opts.no_context {
        // The height-dependent block rules, at the height the coinbase states (BIP34), if any.
        // Without a stated height the block predates BIP34, so segwit too: witness data is unexpected.
        let h = bip34_height(b);
        let err = |e| invalid(&opts.files, loc, hash, &b.header.prev_blockhash, h, e);
        rules::witness_commitment_is_valid(b, h.unwrap_or(0), params).map_err(err)?;
        rules::block_weight_is_within_limit(b).map_err(err)?;
    }
    Ok(txids.into_iter().map(Txid).collect())
}

impl Validator {
    /// A validator with nothing connected.
    pub fn new(opts: Options) -> Validator {
        Validator {
            state: None,
            seq: 0,
            chain: active_chain(&opts),
            side: HashMap::new(),
            last_regular_bits: None,
            last_work: None,
            orphans: HashMap::new(),
            orphan_count: 0,
            stats: Stats::default(),
            spent: Vec::new(),
            spent_hashes: Vec::new(),
            opts,
        }
    }

    /// Links prepared records (see [`prepare_record`]) in input order; the first failure stops it.
    pub fn accept(&mut self, items: Vec<Prepared>) -> Result<(), Stop> {
        for item in items {
            match item {
                Prepared::One(p) if self.opts.no_context => self.count(p.block.as_deref()),
                Prepared::One(p) => self.offer(p)?,
                Prepared::Run(run) if self.opts.no_context => {
                    self.stats.headers += run.hashes.len() as u64;
                    self.spent.push(run.bytes);
                    self.spent_hashes.push(run.hashes);
                }
                Prepared::Run(run) => self.accept_run(run)?,
                Prepared::Stop(Stop::Invalid(mut i)) => {
                    // A context-free failure: its height is known when its parent is.
                    if i.height.is_none() && !self.opts.no_context {
                        i.height = match i.prev {
                            Some(p) if p == BlockHash::ZERO => Some(0),
                            // The failure is reported either way: a parent that cannot be
                            // read back only leaves its height out.
                            Some(p) => self
                                .chain
                                .height_of(&p)
                                .ok()
                                .flatten()
                                .or_else(|| self.side.get(&p).map(|e| e.height))
                                .map(|h| h + 1),
                            None => None,
                        };
                    }
                    return Err(Stop::Invalid(i));
                }
                Prepared::Stop(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Links a run of raw headers: each one that extends the tip (the usual case) is connected
    /// straight from the bytes; any other becomes a [`Pending`] for [`Self::offer`].
    fn accept_run(&mut self, run: HeaderRun) -> Result<(), Stop> {
        let (headers, _) = run.bytes.as_chunks::<80>();
        for (i, (bytes, h)) in headers.iter().zip(&run.hashes).enumerate() {
            let header = BlockHeader::from_array(bytes);
            let hash = BlockHash(*h);
            let loc = Loc { file: run.file, offset: run.offset + 80 * i as u64, len: None };
            if self.orphan_count == 0 && self.chain.tip() == Some(&header.prev_blockhash) {
                self.count(None);
                self.extend(&header, &hash, None, &[], loc)?;
            } else {
                self.offer(Pending { loc, header, hash, block: None, txids: Vec::new() })?;
            }
        }
        self.spent.push(run.bytes);
        self.spent_hashes.push(run.hashes);
        Ok(())
    }

    /// The buffers of header runs linked since the last call: their bytes and their hashes.
    pub fn take_spent(&mut self) -> (Vec<Vec<u8>>, Vec<Vec<[u8; 32]>>) {
        (std::mem::take(&mut self.spent), std::mem::take(&mut self.spent_hashes))
    }

    /// The height of `hash` on the active chain, read-back failures stopping validation at `loc`.
    fn active_height_of(&mut self, hash: &BlockHash, loc: Loc) -> Result<Option<u32>, Stop> {
        self.chain.height_of(hash).map_err(|e| self.read_back_failed(loc, e))
    }

    /// The stop for headers that cannot be read back from their files to place the record at `loc`.
    fn read_back_failed(&self, loc: Loc, why: String) -> Stop {
        Stop::Malformed(Box::new(Malformed {
            file: self.file_name(loc.file),
            offset: loc.offset,
            message: format!("placing this record needs older headers read back from the input, which failed: {why}"),
        }))
    }

    /// Work of one block with `bits` (remembered for the last bits seen: they change once per
    /// retarget at most).
    fn work(&mut self, bits: CompactTarget) -> U256 {
        match self.last_work {
            Some((b, w)) if b == bits => w.0,
            _ => {
                let w = bits.to_target().map(|t| t.work()).unwrap_or_default();
                self.last_work = Some((bits, w));
                w.0
            }
        }
    }

    /// Takes a block or header whose context-free rules passed: connects it when it extends the
    /// tip, keeps it on a side branch (activating that branch if it now has the most work), or
    /// holds it until its parent arrives; then whatever waited for it follows, in input order.
    fn offer(&mut self, p: Pending) -> Result<(), Stop> {
        let mut queue = std::collections::VecDeque::from([p]);
        while let Some(p) = queue.pop_front() {
            if self.side.contains_key(&p.hash) || self.active_height_of(&p.hash, p.loc)?.is_some() {
                self.stats.duplicates += 1;
                continue;
            }
            let prev = p.header.prev_blockhash;
            let placed = if self.chain.is_empty() {
                if p.hash != self.opts.params.genesis.block_hash() {
                    false
                } else {
                    self.count(p.block.as_deref());
                    self.extend(&p.header, &p.hash, p.block.as_ref(), &p.txids, p.loc)?;
                    true
                }
            } else if self.chain.tip() == Some(&prev) {
                self.count(p.block.as_deref());
                self.extend(&p.header, &p.hash, p.block.as_ref(), &p.txids, p.loc)?;
                true
            } else if self.side.contains_key(&prev) || self.active_height_of(&prev, p.loc)?.is_some() {
                self.count(p.block.as_deref());
                self.add_side(&p)?;
                true
            } else {
                false
            };
            if !placed {
                if self.orphan_count >= self.opts.orphan_limit {
                    let e = RuleError::OrphanLimit { prev, limit: self.opts.orphan_limit };
                    return Err(invalid(&self.opts.files, p.loc, &p.hash, &prev, None, e));
                }
                self.orphan_count += 1;
                self.orphans.entry(prev).or_default().push(p);
                continue;
            }
            if self.orphan_count > 0 {
                if let Some(children) = self.orphans.remove(&p.hash) {
                    self.orphan_count -= children.len();
                    queue.extend(children);
                }
            }
        }
        Ok(())
    }

    /// The contextual header rules (Bitcoin Core `ContextualCheckBlockHeader`) for a header at
    /// `height` whose ancestors `ancestor(h)` returns; `recent_times` are the times of the (up to)
    /// 11 blocks before it, for the median time past.
    fn check_header_in_context(
        &self,
        header: &BlockHeader,
        height: u32,
        ancestor: &impl Fn(u32) -> HeaderInfo,
        last_regular_bits: Option<CompactTarget>,
        recent_times: &[u32],
    ) -> Result<(), RuleError> {
        let params = &self.opts.params;
        if height > 0 {
            let last = ancestor(height - 1);
            let required = next_work_required(params, &last, header.time, ancestor, last_regular_bits);
            rules::difficulty_matches_retarget(header, required)?;
            rules::time_is_above_median_past(header, recent_times)?;
        }
        rules::version_is_not_obsolete(header, height, params)
    }

    /// The contextual block rules that need no UTXO set (Bitcoin Core `ContextualCheckBlock`);
    /// `prev_mtp` is the parent's median time past (BIP113's lock-time cutoff).
    fn check_block_in_context(&self, b: &Block, height: u32, prev_mtp: i64) -> Result<(), RuleError> {
        let params = &self.opts.params;
        let cutoff = txrules::lock_time_cutoff(height, b.header.time, prev_mtp, params);
        for tx in &b.txdata {
            txrules::transaction_is_final(tx, height, cutoff)?;
        }
        rules::coinbase_has_height(b, height, params)?;
        rules::witness_commitment_is_valid(b, height, params)?;
        rules::block_weight_is_within_limit(b)
    }

    /// Connects a header (and block) whose parent is the tip.
    fn extend(
        &mut self,
        header: &BlockHeader,
        hash: &BlockHash,
        block: Option<&Arc<Block>>,
        txids: &[Txid],
        loc: Loc,
    ) -> Result<(), Stop> {
        let height = self.chain.len() as u32;
        let err = |e| invalid(&self.opts.files, loc, hash, &header.prev_blockhash, Some(height), e);
        if height > 0 {
            let chain = &self.chain;
            let ancestor = |h: u32| chain.info(h);
            let recent = chain.times(height.saturating_sub(11), height - 1);
            self.check_header_in_context(header, height, &ancestor, self.last_regular_bits, recent).map_err(err)?;
        } else {
            rules::version_is_not_obsolete(header, height, &self.opts.params).map_err(err)?;
        }
        if let Some(b) = block {
            let prev_mtp = self.chain.tip_height().map_or(0, |t| self.chain.median_time_past(t) as i64);
            self.check_block_in_context(b, height, prev_mtp).map_err(err)?;
            self.connect_state(b, txids, hash, height, loc)?;
        }
        let work = self.work(header.bits);
        let body = match block {
            None => Body::None,
            Some(b) => self.body_of(b, loc),
        };
        // Genesis, a retarget height, or bits off the limit: what testnet's walk back stops at.
        let interval = self.opts.params.retarget_interval;
        if height.is_multiple_of(interval) || header.bits != self.opts.params.pow_limit_bits {
            self.last_regular_bits = Some(header.bits);
        }
        self.chain.push(*hash, header.time, header.bits, body, (loc.file, loc.offset), work);
        Ok(())
    }

    /// Where a block's bytes can be found again: its record in the input file (blk input), else
    /// the block itself.
    fn body_of(&self, b: &Arc<Block>, loc: Loc) -> Body {
        match loc.len {
            Some(len) => Body::File { file: loc.file, offset: loc.offset, len },
            None => Body::Memory(b.clone()),
        }
    }

    /// Checks a block whose parent is a side-branch block or an older block of the active chain,
    /// keeps it on its side branch, and activates the branch when it has more work than the tip.
    fn add_side(&mut self, p: &Pending) -> Result<(), Stop> {
        let prev = p.header.prev_blockhash;
        // The branch from the new block's parent down to the active chain, newest first.
        let mut branch: Vec<HeaderInfo> = Vec::new();
        let mut at = prev;
        while let Some(e) = self.side.get(&at) {
            branch.push(HeaderInfo { height: e.height, time: e.time, bits: e.bits });
            at = e.prev;
        }
        let on_side = self.side.get(&prev).map(|e| (e.height, e.chainwork));
        let fork = match (branch.last(), on_side) {
            (Some(low), Some(_)) => low.height - 1,
            _ => self.active_height_of(&prev, p.loc)?.expect("offer checked the parent is known"),
        };
        // The retarget and the median time past look back at most an interval (plus 11) from the
        // new block: bring that much of the active chain below the fork into memory.
        let back = self.opts.params.retarget_interval + 16;
        self.chain.materialize(fork.saturating_sub(back)).map_err(|e| self.read_back_failed(p.loc, e))?;
        let (parent_height, parent_work) = match on_side {
            Some(hw) => hw,
            None => {
                let mut w = self.chain.chainwork;
                for k in (fork + 1..=self.chain.tip_height().expect("not empty")).rev() {
                    let bits = self.chain.info(k).bits;
                    w = w.overflowing_sub(self.work(bits)).0;
                }
                (fork, w)
            }
        };
        let height = parent_height + 1;
        let err = |e| invalid(&self.opts.files, p.loc, &p.hash, &prev, Some(height), e);
        let prev_mtp = {
            let chain = &self.chain;
            let ancestor = |h: u32| if h > fork { branch[(parent_height - h) as usize] } else { chain.info(h) };
            let recent: Vec<u32> = (height.saturating_sub(11)..height).map(|h| ancestor(h).time).collect();
            self.check_header_in_context(&p.header, height, &ancestor, None, &recent).map_err(err)?;
            super::tree::median(&recent[recent.len().saturating_sub(11)..]) as i64
        };
        if let Some(b) = &p.block {
            self.check_block_in_context(b, height, prev_mtp).map_err(err)?;
        }
        if self.side.len() >= self.opts.side_limit {
            return Err(Stop::Malformed(Box::new(Malformed {
                file: self.file_name(p.loc.file),
                offset: p.loc.offset,
                message: format!(
                    "more than {} blocks on side branches (--side-limit): validation stops rather than drop one \
                     that could later have the most work",
                    self.opts.side_limit
                ),
            })));
        }
        let chainwork = parent_work.checked_add(self.work(p.header.bits)).unwrap_or(U256::MAX);
        let body = match &p.block {
            None => Body::None,
            Some(b) => self.body_of(b, p.loc),
        };
        let entry = SideEntry {
            prev,
            height,
            time: p.header.time,
            bits: p.header.bits,
            chainwork,
            body,
            loc: (p.loc.file, p.loc.offset),
        };
        self.side.insert(p.hash, entry);
        if chainwork > self.chain.chainwork {
            self.activate(p.hash, fork)?;
        }
        Ok(())
    }

    fn file_name(&self, file: u32) -> String {
        self.opts.files.get(file as usize).map_or_else(|| "?".into(), |f| f.display().to_string())
    }

    /// Makes the side branch ending at `tip` the active chain: disconnects the active blocks above
    /// `fork`, then connects the branch's blocks in order (Bitcoin Core `ActivateBestChainStep`).
    fn activate(&mut self, tip: BlockHash, fork: u32) -> Result<(), Stop> {
        let mut branch = vec![tip];
        let mut at = tip;
        while let Some(e) = self.side.get(&at) {
            if e.height == fork + 1 {
                break;
            }
            at = e.prev;
            branch.push(at);
        }
        let depth = self.chain.tip_height().expect("not empty") - fork;
        if self.state.is_some() {
            // Blocks to be disconnected must have passed their script checks first.
            self.check_scripts()?;
        }
        while self.chain.tip_height().expect("not empty") > fork {
            let height = self.chain.tip_height().expect("not empty");
            if self.state.is_some() {
                let hash = *self.chain.hash(height);
                let body = self.chain.body(height).clone();
                let loc = self.chain.loc(height);
                let (block, txids) = self.load(&body, loc)?;
                let file = self.file_name(loc.0);
                if let Some(state) = self.state.as_mut() {
                    state.disconnect(&block, &txids, height, &hash).map_err(|why| {
                        Stop::Malformed(Box::new(Malformed {
                            file,
                            offset: loc.1,
                            message: format!("cannot disconnect block {hash} at height {height} for a reorg: {why}"),
                        }))
                    })?;
                }
            }
            let bits = self.chain.info(height).bits;
            let work = self.work(bits);
            let (hash, entry) = self.chain.pop(work).expect("not empty");
            self.side.insert(hash, entry);
        }
        for hash in branch.into_iter().rev() {
            let e = self.side.remove(&hash).expect("the branch is on the side");
            if self.state.is_some() {
                let (block, txids) = self.load(&e.body, e.loc)?;
                let loc = Loc { file: e.loc.0, offset: e.loc.1, len: None };
                if let Err(stop) = self.connect_state(&block, &txids, &hash, e.height, loc) {
                    self.side.insert(hash, e);
                    return Err(stop);
                }
            }
            let work = self.work(e.bits);
            self.chain.push(hash, e.time, e.bits, e.body, e.loc, work);
        }
        self.last_regular_bits = None;
        self.stats.reorgs += 1;
        self.stats.max_reorg_depth = self.stats.max_reorg_depth.max(depth);
        Ok(())
    }

    /// Full validation of a block whose parent is the tip: Core's `ConnectBlock` on the UTXO set
    /// (see [`Chainstate::connect`]). Without a chain state (header or structure checks only), nothing.
    fn connect_state(
        &mut self,
        block: &Arc<Block>,
        txids: &[Txid],
        hash: &BlockHash,
        height: u32,
        loc: Loc,
    ) -> Result<(), Stop> {
        let Some(state) = self.state.as_mut() else { return Ok(()) };
        let chain = &self.chain;
        let prev_mtp = chain.tip_height().map_or(0, |t| chain.median_time_past(t) as i64);
        let mtp_of = |h: u32| chain.median_time_past(h) as i64;
        let bip34 = self.opts.params.bip34_height;
        let ctx = BlockContext {
            height,
            hash: *hash,
            prev_mtp,
            mtp_of: &mtp_of,
            bip34_ancestor: (chain.len() > bip34 as usize).then(|| *chain.hash(bip34)),
            seq: self.seq,
        };
        self.seq += 1;
        let prev = block.header.prev_blockhash;
        match state.connect(block, txids, &ctx) {
            Ok(()) => Ok(()),
            Err(ConnectError::Rule(e)) => {
                // A script failure in an earlier block comes first (Core would have stopped there).
                let stop = invalid(&self.opts.files, loc, hash, &prev, Some(height), e.into());
                Err(self.earlier_script_failure().unwrap_or(stop))
            }
            Err(ConnectError::Store(e)) => Err(Stop::Malformed(Box::new(Malformed {
                file: self.file_name(loc.file),
                offset: loc.offset,
                message: format!("the UTXO store failed while connecting block {hash}: {e}"),
            }))),
            Err(ConnectError::Internal(e)) => Err(Stop::Malformed(Box::new(Malformed {
                file: self.file_name(loc.file),
                offset: loc.offset,
                message: format!("internal error connecting block {hash}: {e}"),
            }))),
        }
    }

    /// The earliest script failure so far, as a stop at its block (waits for queued checks).
    fn earlier_script_failure(&self) -> Option<Stop> {
        let f = self.state.as_ref()?.first_failure()?;
        let (file, offset, prev) = match self.chain.height_of_ro(&f.hash) {
            Some(h) => {
                let (file, offset) = self.chain.loc(h);
                let prev = if h == 0 { BlockHash::ZERO } else { *self.chain.hash(h - 1) };
                (file, offset, prev)
            }
            None => match self.side.get(&f.hash) {
                Some(e) => (e.loc.0, e.loc.1, e.prev),
                None => (0, 0, BlockHash::ZERO),
            },
        };
        let loc = Loc { file, offset, len: None };
        Some(invalid(&self.opts.files, loc, &f.hash, &prev, Some(f.height), f.error.into()))
    }

    /// Waits for the queued script checks; a failure stops validation at its block.
    pub fn check_scripts(&self) -> Result<(), Stop> {
        match self.earlier_script_failure() {
            Some(stop) => Err(stop),
            None => Ok(()),
        }
    }

    /// A block's bytes again (a reorg connects or disconnects a block read earlier): read back from
    /// its file, through the file's obfuscation key.
    fn load(&self, body: &Body, loc: (u32, u64)) -> Result<(Arc<Block>, Vec<Txid>), Stop> {
        let fail = |why: String| {
            Stop::Malformed(Box::new(Malformed { file: self.file_name(loc.0), offset: loc.1, message: why }))
        };
        let block = match body {
            Body::Memory(b) => b.clone(),
            Body::None => return Err(fail("a header without its block cannot be connected".into())),
            Body::File { file, offset, len } => {
                use std::io::{Read, Seek, SeekFrom};
                let path = self.opts.files.get(*file as usize).ok_or_else(|| fail("no such input file".into()))?;
                let mut f = std::fs::File::open(path).map_err(|e| fail(format!("reading the block back: {e}")))?;
                f.seek(SeekFrom::Start(*offset)).map_err(|e| fail(format!("reading the block back: {e}")))?;
                let mut buf = vec![0u8; *len as usize];
                f.read_exact(&mut buf).map_err(|e| fail(format!("reading the block back: {e}")))?;
                if let Some(Some(key)) = self.opts.keys.get(*file as usize) {
                    key.apply(&mut buf, *offset);
                }
                let b = Block::from_bytes(&buf)
                    .map_err(|e| fail(format!("the block read back no longer decodes (file changed?): {e}")))?;
                Arc::new(b)
            }
        };
        let txids = rules::txids(&block).into_iter().map(Txid).collect();
        Ok((block, txids))
    }

    fn count(&mut self, block: Option<&Block>) {
        self.stats.headers += 1;
        if let Some(b) = block {
            self.stats.blocks += 1;
            self.stats.transactions += b.txdata.len() as u64;
        }
    }

    /// Ends the input: blocks still waiting for a parent make the chain invalid.
    pub fn finish(&mut self) -> Result<(), Stop> {
        self.stats.chainwork = hex::encode(self.chain.chainwork.to_be_bytes());
        self.stats.tip = self.chain.tip().map(|h| h.to_string());
        self.stats.best_height = self.chain.tip_height();
        self.stats.stale_blocks = self.side.len() as u64;
        if let Some(p) = self.orphans.values().flatten().min_by_key(|p| (p.loc.file, p.loc.offset)) {
            let prev = p.header.prev_blockhash;
            return Err(invalid(&self.opts.files, p.loc, &p.hash, &prev, None, RuleError::UnknownParent { prev }));
        }
        Ok(())
    }
}

/// The active chain for `opts`' input: blocks keep every header in memory; raw header files that
/// are all regular files keep a window and read older headers back (see [`super::tree`]).
fn active_chain(opts: &Options) -> ActiveChain {
    let regular = opts.files.iter().all(|f| std::fs::metadata(f).is_ok_and(|m| m.is_file()));
    if opts.format == Format::Headers && regular {
        let source = HeaderFiles { files: opts.files.clone(), keys: opts.keys.clone() };
        ActiveChain::with_header_files(source, opts.params.retarget_interval as usize + 16)
    } else {
        ActiveChain::new(opts.format != Format::Headers)
    }
}

/// The height a coinbase states under BIP34 (a minimal push of 1..=8 bytes), if it states one.
pub fn bip34_height(b: &Block) -> Option<u32> {
    if b.header.version < 2 {
        return None;
    }
    let sig = &b.txdata.first()?.inputs.first()?.script_sig;
    let n = *sig.first()? as usize;
    if !(1..=4).contains(&n) || sig.len() < 1 + n {
        return None;
    }
    let mut v: u64 = 0;
    for (i, &byte) in sig[1..1 + n].iter().enumerate() {
        v |= (byte as u64) << (8 * i);
    }
    let h = u32::try_from(v).ok()?;
    (rules::script_push_number(h as i64) == sig[..1 + n]).then_some(h)
}

/// Validates `opts.files` as the Bitcoin chain `chain`: opens the header hasher `opts.backend`
/// asks for, runs the worker pipeline (one worker per hashing thread, or per core when the GPU
/// hashes) and builds the report. `progress` gets [`Progress::Bitcoin`] counts at most every 2 s,
/// then [`Progress::Done`].
///
/// # Errors
/// The backend cannot open ([`ValidateError::Backend`]), the paths cannot be listed
/// ([`ValidateError::Paths`]), or a batch could not be read or hashed ([`ValidateError::Input`]).
pub fn run(
    opts: &ValidateOptions,
    chain: BitcoinNetwork,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<ValidateReport, ValidateError> {
    let params = chain.params();
    let now = super::now_or_clock(opts.now);
    let threads = opts.threads.unwrap_or_else(crate::mine::default_threads).clamp(1, 1024);
    let hasher = crate::backend::open_header_hasher(opts.backend, opts.adapter, threads, &mut Vec::new())?;
    let backend = hasher.describe();
    let files = expand_paths(&opts.files, params.magic)?;
    let keys = files.iter().map(|f| super::read::file_key(f, opts.xor_key)).collect::<Result<Vec<_>, _>>()?;
    let checks = Options {
        params: params.clone(),
        no_context: opts.no_context,
        no_pow: opts.no_pow,
        now,
        orphan_limit: opts.orphan_limit,
        side_limit: opts.side_limit,
        format: opts.format,
        keys,
        files: files.clone(),
    };
    let workers = match &hasher {
        HeaderHasher::Cpu(t) => *t,
        HeaderHasher::Gpu(..) => crate::mine::default_threads(),
    };
    let t0 = Instant::now();
    let full = !opts.no_context && !opts.no_utxo && opts.format != Format::Headers;
    let mut validator = Validator::new(checks.clone());
    if opts.format == Format::Headers {
        let bytes: u64 = checks.files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
        validator.chain.reserve((bytes / 80).min(1 << 28) as usize);
    }
    let mut assume_note = None;
    if full {
        let av = match opts.assume_valid {
            None => None,
            Some(av) => {
                let set = assume_valid_ancestors(&files, opts.format, params.magic, opts.xor_key, &av)?;
                assume_note = Some(match &set {
                    Some(s) => format!("{av} (found: {} blocks' scripts skipped)", s.len()),
                    None => format!("{av} (not in the input: every script checked)"),
                });
                set
            }
        };
        let cache = opts.dbcache_mib.max(1) << 20;
        let state = Chainstate::new(params.clone(), opts.utxo_dir.as_deref(), cache, threads, av, opts.script_ceiling)
            .map_err(|e| ValidateError::Input(format!("cannot create the UTXO set: {e}")))?;
        validator.state = Some(state);
    }
    let reader = Reader::new(files, opts.format, params.magic).with_xor_key(opts.xor_key);
    let linked = pipeline::link_all(reader, &hasher, &checks, validator, workers, t0, progress);
    let pipeline::Linked { mut validator, mut stop, failure, bytes, skipped } = linked;
    if let Some(e) = failure {
        return Err(ValidateError::Input(e));
    }
    // A script failure in a connected block comes before any later stop (Core would have
    // stopped at that block).
    if !matches!(stop, Some(Stop::Malformed(_))) {
        if let Err(e) = validator.check_scripts() {
            stop = Some(e);
        }
    }
    if stop.is_none() {
        if let Err(e) = validator.finish() {
            stop = Some(e);
        }
    } else {
        let _ = validator.finish();
    }
    progress(Progress::Done { elapsed: t0.elapsed() });
    let secs = t0.elapsed().as_secs_f64().max(1e-9);
    let st = validator.stats.clone();
    let (invalid, malformed) = ValidateReport::split_stop(stop);
    let valid = invalid.is_none() && malformed.is_none();
    let (mut utxo, mut scripts) = (None, None);
    if let Some(state) = validator.state.as_mut() {
        if valid {
            utxo = Some(state.stats().map_err(|e| ValidateError::Input(format!("the UTXO set: {e}")))?);
        }
        let checked = state.inputs_checked();
        let ceiling = if opts.script_ceiling { state.script_ceiling(threads).map(|(_, r)| r) } else { None };
        scripts = Some(super::ScriptReport {
            inputs_checked: checked,
            inputs_assumed_valid: state.inputs_assumed_valid,
            inputs_per_second: checked as f64 / secs,
            assume_valid: assume_note,
            ceiling_inputs_per_second: ceiling,
            blocks_connected: state.connected,
            blocks_disconnected: state.disconnected,
        });
    }
    let not_checked = match (&scripts, opts.assume_valid) {
        (Some(_), Some(_)) => super::ASSUMED_NOT_CHECKED,
        (Some(_), None) => super::FULL_NOT_CHECKED,
        _ if opts.format == Format::Headers => "block contents: the input holds headers only",
        _ => NOT_CHECKED,
    };
    drop(validator);
    Ok(ValidateReport {
        valid,
        chain: chain.name().to_string(),
        headers_per_second: st.headers as f64 / secs,
        blocks_per_second: st.blocks as f64 / secs,
        transactions_per_second: st.transactions as f64 / secs,
        stats: st,
        bytes,
        seconds: secs,
        backend,
        no_context: opts.no_context,
        not_checked,
        state_root: None,
        accounts: None,
        invalid,
        malformed,
        skipped,
        utxo,
        scripts,
        peak_rss_bytes: super::peak_rss_bytes(),
    })
}

/// The hashes of `av` and its ancestors as the input's headers link them (a first pass over the
/// headers: Core knows the headers before it connects blocks), or `None` if `av` is not in the input.
fn assume_valid_ancestors(
    files: &[PathBuf],
    format: Format,
    magic: [u8; 4],
    key: Option<XorKey>,
    av: &BlockHash,
) -> Result<Option<std::collections::HashSet<BlockHash>>, ValidateError> {
    let mut prev: HashMap<BlockHash, BlockHash> = HashMap::new();
    let mut reader = Reader::new(files.to_vec(), format, magic).with_xor_key(key);
    while let Some(rec) = reader.next_record().map_err(|e| ValidateError::Input(e.to_string()))? {
        for (_, h) in rec.headers() {
            let Ok(header) = BlockHeader::from_bytes(h) else { continue };
            prev.insert(header.block_hash(), header.prev_blockhash);
        }
    }
    if !prev.contains_key(av) {
        return Ok(None);
    }
    let mut set = std::collections::HashSet::new();
    let mut at = *av;
    while let Some(p) = prev.get(&at) {
        if !set.insert(at) {
            break;
        }
        at = *p;
    }
    Ok(Some(set))
}
