//! Bulk validation of an imported chain: records from `import`, decoded by `primitives`, hashed in
//! batches, checked by `consensus::rules`, linked into one chain with a bounded window of history.
//!
//! Memory stays flat as the input grows: the validator keeps the last 2016 headers' heights, times
//! and bits (the retarget window, which also holds the 11 times for the median), not the whole chain,
//! plus at most `orphan_limit` blocks whose parent has not arrived yet (blk files are written out of
//! order). A block whose parent is an older block of the chain (a stale fork) is counted and skipped.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;

use crate::consensus::pow::{next_work_required, HeaderInfo};
use crate::consensus::rules::{self, RuleError};
use crate::consensus::ChainParams;
use crate::import::{Kind, Record};
use crate::primitives::{Block, BlockHash, BlockHeader, CompactTarget, DecodeError, Work, U256};

/// How to validate.
#[derive(Clone, Debug)]
pub struct ValidateOptions {
    /// The chain's parameters.
    pub params: ChainParams,
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

/// A record that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Invalid {
    /// Its height, when known.
    pub height: Option<u32>,
    /// Its block hash (display order).
    pub hash: String,
    /// The file.
    pub file: String,
    /// Byte offset of the record in the file (for hex input: the line).
    pub offset: u64,
    /// The rule function that failed.
    pub rule: String,
    /// What is wrong, in a sentence (with Bitcoin Core's reject reason first).
    pub message: String,
    /// The record's parent, to place a context-free failure at its height when it extends the tip.
    #[serde(skip)]
    pub prev: Option<BlockHash>,
}

/// Input that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Malformed {
    /// The file.
    pub file: String,
    /// Offset of the record.
    pub offset: u64,
    /// Why (the decode error names the byte within the record).
    pub message: String,
}

/// Why validation stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// A rule failed.
    Invalid(Box<Invalid>),
    /// The input is not a block or header.
    Malformed(Box<Malformed>),
}

/// Running totals.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Stats {
    /// Blocks checked.
    pub blocks: u64,
    /// Headers checked (every block has one; header-only records too).
    pub headers: u64,
    /// Transactions checked.
    pub transactions: u64,
    /// Stale-fork blocks skipped (their parent is an older block of the chain).
    pub stale_skipped: u64,
    /// Height of the tip (contextual mode).
    pub best_height: Option<u32>,
    /// The tip's hash.
    pub tip: Option<String>,
    /// Chain work up to the tip, 64 hex digits.
    pub chainwork: String,
}

/// A record decoded and through every context-free rule, ready to be linked.
pub struct Pending {
    file: u32,
    offset: u64,
    header: BlockHeader,
    hash: BlockHash,
    block: Option<Box<Block>>,
}

/// The validator's state.
pub struct Validator {
    opts: ValidateOptions,
    /// Last 2016 connected headers (oldest first), with their hashes.
    window: VecDeque<(HeaderInfo, BlockHash)>,
    chainwork: U256,
    last_work: Option<(CompactTarget, Work)>,
    limit_bits: CompactTarget,
    orphans: HashMap<BlockHash, Vec<Pending>>,
    orphan_count: usize,
    /// Bits of the latest connected block that is genesis, at a retarget height, or not at the
    /// limit: what testnet's minimum-difficulty walk back finds.
    last_regular_bits: Option<CompactTarget>,
    /// Totals so far.
    pub stats: Stats,
}

fn malformed(rec: &Record, e: DecodeError) -> Stop {
    Stop::Malformed(Box::new(Malformed {
        file: rec.file.display().to_string(),
        offset: rec.offset,
        message: e.to_string(),
    }))
}

/// Decodes records and runs every context-free rule on them: the part of validation that needs no
/// other block, so it runs on many threads at once. `hashes[i]` is record i's header hash.
/// `hashes` holds one hash per header, in order (a [`Kind::Headers`] run has many).
pub fn prepare(records: Vec<Record>, hashes: &[BlockHash], opts: &ValidateOptions) -> Vec<Result<Pending, Stop>> {
    let mut out = Vec::with_capacity(hashes.len());
    let mut hashes = hashes.iter();
    for rec in records {
        match rec.kind {
            Kind::Block => {
                let hash = *hashes.next().expect("one hash per header");
                out.push(Block::from_bytes(&rec.bytes).map_err(|e| malformed(&rec, e)).and_then(|b| {
                    let p = Pending {
                        file: rec.file_index,
                        offset: rec.offset,
                        header: b.header,
                        hash,
                        block: Some(Box::new(b)),
                    };
                    context_free(&p, opts)?;
                    Ok(p)
                }));
            }
            Kind::Header | Kind::Headers => {
                for (offset, bytes) in rec.headers() {
                    let hash = *hashes.next().expect("one hash per header");
                    let decoded = BlockHeader::from_bytes(bytes).map_err(|e| {
                        Stop::Malformed(Box::new(Malformed {
                            file: rec.file.display().to_string(),
                            offset,
                            message: e.to_string(),
                        }))
                    });
                    out.push(decoded.and_then(|header| {
                        let p = Pending { file: rec.file_index, offset, header, hash, block: None };
                        context_free(&p, opts)?;
                        Ok(p)
                    }));
                }
            }
        }
    }
    out
}

fn invalid(files: &[PathBuf], p: &Pending, height: Option<u32>, e: RuleError) -> Stop {
    Stop::Invalid(Box::new(Invalid {
        height,
        hash: p.hash.to_string(),
        file: files.get(p.file as usize).map_or_else(|| "?".into(), |f| f.display().to_string()),
        offset: p.offset,
        rule: e.rule().to_string(),
        message: e.to_string(),
        prev: Some(p.header.prev_blockhash),
    }))
}

/// Every rule that needs no other block.
fn context_free(p: &Pending, opts: &ValidateOptions) -> Result<(), Stop> {
    let params = &opts.params;
    let err = |e| invalid(&opts.files, p, None, e);
    let target = rules::target_bits_are_valid(p.header.bits, params).map_err(err)?;
    if !opts.no_pow && !target.is_met_by(&p.hash) {
        return Err(err(RuleError::ProofOfWork { hash: p.hash, target: target.to_be_hex() }));
    }
    rules::time_is_not_too_far_ahead(&p.header, opts.now).map_err(err)?;
    if let Some(b) = &p.block {
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
                rules::witness_commitment_is_valid(b, h, params).map_err(|e| invalid(&opts.files, p, Some(h), e))?;
                rules::block_weight_is_within_limit(b).map_err(|e| invalid(&opts.files, p, Some(h), e))?;
            }
        }
    }
    Ok(())
}

impl Validator {
    /// A validator with nothing connected.
    pub fn new(opts: ValidateOptions) -> Validator {
        Validator {
            window: VecDeque::new(),
            chainwork: U256::ZERO,
            last_work: None,
            limit_bits: opts.params.pow_limit.to_compact(),
            orphans: HashMap::new(),
            orphan_count: 0,
            last_regular_bits: None,
            stats: Stats::default(),
            opts,
        }
    }

    /// Links prepared records (see [`prepare`]) in input order; the first failure stops it.
    pub fn accept(&mut self, items: Vec<Result<Pending, Stop>>) -> Result<(), Stop> {
        for item in items {
            let p = match item {
                Ok(p) => p,
                Err(Stop::Invalid(mut i)) => {
                    // A context-free failure: its height is known when it extends the tip.
                    if i.height.is_none() && !self.opts.no_context {
                        i.height = match self.tip() {
                            Some((t, h)) if i.prev == Some(*h) => Some(t.height + 1),
                            None if i.prev == Some(BlockHash::ZERO) => Some(0),
                            _ => None,
                        };
                    }
                    return Err(Stop::Invalid(i));
                }
                Err(e) => return Err(e),
            };
            if self.opts.no_context {
                self.count(&p);
                continue;
            }
            self.offer(p)?;
        }
        Ok(())
    }

    /// [`prepare`] and [`Validator::accept`] on one thread.
    pub fn process_batch(&mut self, records: Vec<Record>, hashes: &[BlockHash]) -> Result<(), Stop> {
        let items = prepare(records, hashes, &self.opts);
        self.accept(items)
    }

    fn count(&mut self, p: &Pending) {
        self.stats.headers += 1;
        if let Some(b) = &p.block {
            self.stats.blocks += 1;
            self.stats.transactions += b.txdata.len() as u64;
        }
    }

    fn tip(&self) -> Option<&(HeaderInfo, BlockHash)> {
        self.window.back()
    }

    /// Connects `p` if its parent is the tip (then any orphans waiting for it), else holds it.
    fn offer(&mut self, p: Pending) -> Result<(), Stop> {
        let connects = match self.tip() {
            None => p.hash == self.opts.params.genesis.block_hash(),
            Some((_, tip)) => p.header.prev_blockhash == *tip,
        };
        if !connects {
            if self.window.iter().any(|(_, h)| *h == p.header.prev_blockhash || *h == p.hash) {
                self.stats.stale_skipped += 1;
                return Ok(());
            }
            if self.orphan_count >= self.opts.orphan_limit {
                let e = RuleError::OrphanLimit { prev: p.header.prev_blockhash, limit: self.opts.orphan_limit };
                return Err(invalid(&self.opts.files, &p, None, e));
            }
            self.orphan_count += 1;
            self.orphans.entry(p.header.prev_blockhash).or_default().push(p);
            return Ok(());
        }
        if self.orphan_count == 0 {
            // The common case, in order: no queue (and no allocation) needed.
            return self.connect(p);
        }
        let mut queue = vec![p];
        while let Some(p) = queue.pop() {
            let hash = p.hash;
            self.connect(p)?;
            if self.orphan_count > 0 {
                if let Some(children) = self.orphans.remove(&hash) {
                    self.orphan_count -= children.len();
                    queue.extend(children);
                }
            }
        }
        Ok(())
    }

    fn connect(&mut self, p: Pending) -> Result<(), Stop> {
        let params = &self.opts.params;
        let height = self.tip().map_or(0, |(t, _)| t.height + 1);
        let err = |e| invalid(&self.opts.files, &p, Some(height), e);
        if let Some((last, _)) = self.tip() {
            let last = *last;
            let window = &self.window;
            let base = window.front().expect("non-empty").0.height;
            let required = next_work_required(
                params,
                &last,
                p.header.time,
                |h| window[(h - base) as usize].0,
                self.last_regular_bits,
            );
            rules::difficulty_matches_retarget(&p.header, required).map_err(err)?;
            let mut times = [0u32; 11];
            let n = window.len().min(11);
            for (t, (i, _)) in times.iter_mut().zip(window.iter().rev()) {
                *t = i.time;
            }
            rules::time_is_above_median_past(&p.header, &times[..n]).map_err(err)?;
        }
        rules::version_is_not_obsolete(&p.header, height, params).map_err(err)?;
        if let Some(b) = &p.block {
            rules::coinbase_has_height(b, height, params).map_err(err)?;
            rules::witness_commitment_is_valid(b, height, params).map_err(err)?;
            rules::block_weight_is_within_limit(b).map_err(err)?;
        }
        // Work per bits, remembered for the last bits seen (they change once per retarget at most).
        let work = match self.last_work {
            Some((bits, w)) if bits == p.header.bits => w,
            _ => {
                let w = p.header.bits.to_target().map(|t| t.work()).unwrap_or_default();
                self.last_work = Some((p.header.bits, w));
                w
            }
        };
        self.chainwork = self.chainwork.checked_add(work.0).unwrap_or(U256::MAX);
        if height == 0
            || height.is_multiple_of(params.difficulty_adjustment_interval())
            || p.header.bits != self.limit_bits
        {
            self.last_regular_bits = Some(p.header.bits);
        }
        self.window.push_back((HeaderInfo { height, time: p.header.time, bits: p.header.bits }, p.hash));
        if self.window.len() > params.difficulty_adjustment_interval() as usize {
            self.window.pop_front();
        }
        self.count(&p);
        self.stats.best_height = Some(height);
        Ok(())
    }

    /// Ends the input: blocks still waiting for a parent make the chain invalid.
    pub fn finish(&mut self) -> Result<(), Stop> {
        self.stats.chainwork = hex::encode(self.chainwork.to_be_bytes());
        self.stats.tip = self.tip().map(|(_, h)| h.to_string());
        if let Some(p) = self.orphans.values().flatten().min_by_key(|p| (p.file, p.offset)) {
            return Err(invalid(&self.opts.files, p, None, RuleError::UnknownParent { prev: p.header.prev_blockhash }));
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
