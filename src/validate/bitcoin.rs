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
use std::time::Instant;

use super::read::{expand_paths, Kind, Reader, Record};
use super::{
    pipeline, Invalid, Malformed, Progress, Stats, Stop, ValidateError, ValidateOptions, ValidateReport, NOT_CHECKED,
};
use crate::backend::HeaderHasher;
use crate::consensus::pow::{next_work_required, HeaderInfo};
use crate::consensus::rules::{self, RuleError};
use crate::consensus::{BitcoinNetwork, BitcoinParams};
use crate::primitives::{Block, BlockHash, BlockHeader, CompactTarget, DecodeError, Target, Work, U256};

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
    /// The input files, in reading order (records name theirs by index).
    pub files: Vec<PathBuf>,
}

/// Where a header sits in the input: the file's index and the byte offset (for hex: the line).
#[derive(Clone, Copy, Debug)]
struct Loc {
    file: u32,
    offset: u64,
}

/// A record decoded and through every context-free rule, ready to be linked.
pub struct Pending {
    loc: Loc,
    header: BlockHeader,
    hash: BlockHash,
    block: Option<Box<Block>>,
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

/// The validator's state.
pub struct Validator {
    opts: Options,
    /// The tip: height, time, bits and hash.
    tip: Option<(HeaderInfo, BlockHash)>,
    /// The last `interval` connected headers, the one at height `h` in slot `h % interval` (the
    /// retarget's first block and the stale-fork check look here).
    ring: Vec<(HeaderInfo, BlockHash)>,
    /// The tip's slot in `ring` (kept as a cursor: no division per header).
    slot: usize,
    /// The last 11 times, the one at height `h` in slot `h % 11` (the median time past).
    times: [u32; 11],
    chainwork: U256,
    last_work: Option<(CompactTarget, Work)>,
    orphans: HashMap<BlockHash, Vec<Pending>>,
    orphan_count: usize,
    /// Bits of the latest connected block that is genesis, at a retarget height, or not at the
    /// limit: what testnet's minimum-difficulty walk back finds.
    last_regular_bits: Option<CompactTarget>,
    /// Totals so far.
    pub stats: Stats,
    /// Buffers of linked header runs, for the reader to reuse ([`Validator::take_spent`]).
    spent: Vec<Vec<u8>>,
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
                    let loc = Loc { file: rec.file_index, offset: rec.offset };
                    match block_context_free(&b, &hash, loc, opts) {
                        Ok(()) => Prepared::One(Pending { loc, header: b.header, hash, block: Some(Box::new(b)) }),
                        Err(e) => Prepared::Stop(e),
                    }
                }
            });
        }
        Kind::Header => {
            let hash = BlockHash(hashes[0]);
            let loc = Loc { file: rec.file_index, offset: rec.offset };
            out.push(match BlockHeader::from_bytes(&rec.bytes) {
                Err(e) => Prepared::Stop(malformed(&rec, rec.offset, e)),
                Ok(header) => match header_context_free(&header, &hash, &mut None, opts) {
                    Ok(()) => Prepared::One(Pending { loc, header, hash, block: None }),
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
                    let loc = Loc { file: rec.file_index, offset: rec.offset + 80 * i as u64 };
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
fn block_context_free(b: &Block, hash: &BlockHash, loc: Loc, opts: &Options) -> Result<(), Stop> {
    let params = &opts.params;
    let err = |e| invalid(&opts.files, loc, hash, &b.header.prev_blockhash, None, e);
    header_context_free(&b.header, hash, &mut None, opts).map_err(err)?;
    rules::block_is_not_empty(b).map_err(err)?;
    rules::merkle_root_is_valid(b).map_err(err)?;
    rules::coinbase_is_first_and_only(b).map_err(err)?;
    rules::block_size_is_within_limits(b).map_err(err)?;
    for (i, tx) in b.txdata.iter().enumerate() {
        rules::transaction_is_well_formed(tx, i).map_err(err)?;
    }
    if opts.no_context {
        // The height-dependent block rules, at the height the coinbase states (BIP34), if any.
        if let Some(h) = bip34_height(b) {
            let err = |e| invalid(&opts.files, loc, hash, &b.header.prev_blockhash, Some(h), e);
            rules::witness_commitment_is_valid(b, h, params).map_err(err)?;
            rules::block_weight_is_within_limit(b).map_err(err)?;
        }
    }
    Ok(())
}

impl Validator {
    /// A validator with nothing connected.
    pub fn new(opts: Options) -> Validator {
        let interval = opts.params.difficulty_adjustment_interval();
        Validator {
            tip: None,
            ring: Vec::with_capacity(interval as usize),
            slot: 0,
            times: [0; 11],
            chainwork: U256::ZERO,
            last_work: None,
            orphans: HashMap::new(),
            orphan_count: 0,
            last_regular_bits: None,
            stats: Stats::default(),
            spent: Vec::new(),
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
                }
                Prepared::Run(run) => self.accept_run(run)?,
                Prepared::Stop(Stop::Invalid(mut i)) => {
                    // A context-free failure: its height is known when it extends the tip.
                    if i.height.is_none() && !self.opts.no_context {
                        i.height = match &self.tip {
                            Some((t, h)) if i.prev == Some(*h) => Some(t.height + 1),
                            None if i.prev == Some(BlockHash::ZERO) => Some(0),
                            _ => None,
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
            let loc = Loc { file: run.file, offset: run.offset + 80 * i as u64 };
            let extends = match &self.tip {
                Some((_, tip)) => header.prev_blockhash == *tip,
                None => false,
            };
            if extends && self.orphan_count == 0 {
                self.connect(&header, &hash, None, loc)?;
            } else {
                self.offer(Pending { loc, header, hash, block: None })?;
            }
        }
        self.spent.push(run.bytes);
        Ok(())
    }

    /// The buffers of header runs linked since the last call.
    pub fn take_spent(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.spent)
    }

    /// The hashes of the connected headers still in the ring.
    fn recent_hashes(&self) -> impl Iterator<Item = &BlockHash> {
        self.ring.iter().map(|(_, h)| h)
    }

    /// Connects `p` if its parent is the tip (then any orphans waiting for it), else holds it.
    fn offer(&mut self, p: Pending) -> Result<(), Stop> {
        let connects = match &self.tip {
            None => p.hash == self.opts.params.genesis.block_hash(),
            Some((_, tip)) => p.header.prev_blockhash == *tip,
        };
        if !connects {
            let prev = p.header.prev_blockhash;
            if self.recent_hashes().any(|h| *h == prev || *h == p.hash) {
                self.stats.stale_skipped += 1;
                return Ok(());
            }
            if self.orphan_count >= self.opts.orphan_limit {
                let e = RuleError::OrphanLimit { prev, limit: self.opts.orphan_limit };
                return Err(invalid(&self.opts.files, p.loc, &p.hash, &prev, None, e));
            }
            self.orphan_count += 1;
            self.orphans.entry(prev).or_default().push(p);
            return Ok(());
        }
        // Children waiting for a connected block follow it, first seen first; a sibling of a block
        // that connected no longer extends the tip: it and everything waiting on it are a stale fork.
        let mut queue = std::collections::VecDeque::from([p]);
        while let Some(p) = queue.pop_front() {
            let extends = match &self.tip {
                None => true,
                Some((_, tip)) => p.header.prev_blockhash == *tip,
            };
            if !extends {
                self.skip_stale(p.hash);
                continue;
            }
            self.connect(&p.header, &p.hash, p.block.as_deref(), p.loc)?;
            if self.orphan_count > 0 {
                if let Some(children) = self.orphans.remove(&p.hash) {
                    self.orphan_count -= children.len();
                    queue.extend(children);
                }
            }
        }
        Ok(())
    }

    /// Counts a stale-fork block and every held block that descends from it as skipped.
    fn skip_stale(&mut self, hash: BlockHash) {
        let mut stack = vec![hash];
        while let Some(h) = stack.pop() {
            self.stats.stale_skipped += 1;
            if let Some(children) = self.orphans.remove(&h) {
                self.orphan_count -= children.len();
                stack.extend(children.iter().map(|c| c.hash));
            }
        }
    }

    /// Checks the contextual rules of a header (and block) whose parent is the tip, then makes it the tip.
    fn connect(&mut self, header: &BlockHeader, hash: &BlockHash, block: Option<&Block>, loc: Loc) -> Result<(), Stop> {
        let params = &self.opts.params;
        let height = self.tip.as_ref().map_or(0, |(t, _)| t.height + 1);
        let err = |e| invalid(&self.opts.files, loc, hash, &header.prev_blockhash, Some(height), e);
        if let Some((last, _)) = &self.tip {
            let (ring, slot) = (&self.ring, self.slot);
            // The block at height `h` (within the ring) sits `last.height - h` slots before the tip's.
            let ancestor = |h: u32| ring[(slot + ring.len() - (last.height - h) as usize) % ring.len()].0;
            let required = next_work_required(params, last, header.time, ancestor, self.last_regular_bits);
            rules::difficulty_matches_retarget(header, required).map_err(err)?;
            let n = (height as usize).min(11);
            rules::time_is_above_median_past(header, &self.times[..n]).map_err(err)?;
        }
        rules::version_is_not_obsolete(header, height, params).map_err(err)?;
        if let Some(b) = block {
            rules::coinbase_has_height(b, height, params).map_err(err)?;
            rules::witness_commitment_is_valid(b, height, params).map_err(err)?;
            rules::block_weight_is_within_limit(b).map_err(err)?;
        }
        // Work per bits, remembered for the last bits seen (they change once per retarget at most).
        let work = match self.last_work {
            Some((bits, w)) if bits == header.bits => w,
            _ => {
                let w = header.bits.to_target().map(|t| t.work()).unwrap_or_default();
                self.last_work = Some((header.bits, w));
                w
            }
        };
        self.chainwork = self.chainwork.checked_add(work.0).unwrap_or(U256::MAX);
        let slot = match &self.tip {
            None => 0,
            Some(_) if self.slot + 1 == params.retarget_interval as usize => 0,
            Some(_) => self.slot + 1,
        };
        // `slot` is `height % interval`: zero at genesis and at every retarget height.
        if slot == 0 || header.bits != params.pow_limit_bits {
            self.last_regular_bits = Some(header.bits);
        }
        let info = HeaderInfo { height, time: header.time, bits: header.bits };
        self.slot = slot;
        if slot == self.ring.len() {
            self.ring.push((info, *hash));
        } else {
            self.ring[slot] = (info, *hash);
        }
        // With fewer than 11 blocks the slots fill in order, so `times[..n]` holds them all.
        self.times[height as usize % 11] = header.time;
        self.tip = Some((info, *hash));
        self.count(block);
        self.stats.best_height = Some(height);
        Ok(())
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
        self.stats.chainwork = hex::encode(self.chainwork.to_be_bytes());
        self.stats.tip = self.tip.as_ref().map(|(_, h)| h.to_string());
        if let Some(p) = self.orphans.values().flatten().min_by_key(|p| (p.loc.file, p.loc.offset)) {
            let prev = p.header.prev_blockhash;
            return Err(invalid(&self.opts.files, p.loc, &p.hash, &prev, None, RuleError::UnknownParent { prev }));
        }
        Ok(())
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
    let checks = Options {
        params: params.clone(),
        no_context: opts.no_context,
        no_pow: opts.no_pow,
        now,
        orphan_limit: opts.orphan_limit,
        files: files.clone(),
    };
    let workers = match &hasher {
        HeaderHasher::Cpu(t) => *t,
        HeaderHasher::Gpu(..) => crate::mine::default_threads(),
    };
    let t0 = Instant::now();
    let reader = Reader::new(files, opts.format, params.magic).with_xor_key(opts.xor_key);
    let linked = pipeline::link_all(reader, &hasher, &checks, workers, t0, progress);
    progress(Progress::Done { elapsed: t0.elapsed() });
    let pipeline::Linked { mut validator, mut stop, failure, bytes, skipped } = linked;
    if let Some(e) = failure {
        return Err(ValidateError::Input(e));
    }
    if stop.is_none() {
        if let Err(e) = validator.finish() {
            stop = Some(e);
        }
    } else {
        let _ = validator.finish();
    }
    let secs = t0.elapsed().as_secs_f64().max(1e-9);
    let st = validator.stats.clone();
    let (invalid, malformed) = ValidateReport::split_stop(stop);
    Ok(ValidateReport {
        valid: invalid.is_none() && malformed.is_none(),
        chain: chain.name().to_string(),
        headers_per_second: st.headers as f64 / secs,
        blocks_per_second: st.blocks as f64 / secs,
        transactions_per_second: st.transactions as f64 / secs,
        stats: st,
        bytes,
        seconds: secs,
        backend,
        no_context: opts.no_context,
        not_checked: NOT_CHECKED,
        state_root: None,
        accounts: None,
        invalid,
        malformed,
        skipped,
    })
}
