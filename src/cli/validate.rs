//! `powkit validate`: bulk-validate imported chains.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

use super::{Backend, CliError};
use crate::backend::HeaderHasher;
use crate::consensus::Chain;
use crate::sha256::batch::sha256d_headers;
use crate::validate::bitcoin::{prepare_record, Invalid, Malformed, Prepared, Stats, Stop, ValidateOptions, Validator};
use crate::validate::read::{expand_paths, Format, ImportError, Kind, Reader, Record};

/// Records per batch a worker reads, prepares and hands to the linker (batches also end at 1 MB of
/// input: small batches stay in cache and reuse freed memory instead of faulting in fresh pages).
const BATCH: usize = 8192;

/// What `powkit validate` says is not checked.
pub const NOT_CHECKED: &str = "scripts, signatures and UTXO spends of Bitcoin transactions are not checked";

/// Flags of `powkit validate`.
#[derive(Args, Debug, Clone)]
pub struct ValidateArgs {
    /// Files (or directories of blk*.dat files) to validate, in order.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The chain: bitcoin, bitcoin-testnet, bitcoin-regtest, powkit, powkit-regtest.
    #[arg(long, default_value = "bitcoin")]
    pub chain: String,
    /// Input format.
    #[arg(long, value_enum, default_value = "blk")]
    pub format: Format,
    /// Where headers are hashed (auto: a hardware GPU when present, else CPU threads).
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: Backend,
    /// GPU adapter index.
    #[arg(long)]
    pub adapter: Option<usize>,
    /// The clock for the 2-hour future-time limit (Unix seconds; default: now).
    #[arg(long)]
    pub now: Option<i64>,
    /// Check each block or header alone (every rule that needs no earlier block).
    #[arg(long)]
    pub no_context: bool,
    /// Skip the proof-of-work check.
    #[arg(long)]
    pub no_pow: bool,
    /// Hashing threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Most blocks held while waiting for a parent that has not arrived.
    #[arg(long, default_value_t = 100_000)]
    pub orphan_limit: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// The summary.
#[derive(Debug, Clone, Serialize)]
pub struct ValidateReport {
    /// True when everything checked is valid.
    pub valid: bool,
    /// The chain.
    pub chain: String,
    /// Totals and the tip.
    #[serde(flatten)]
    pub stats: Stats,
    /// Bytes read.
    pub bytes: u64,
    /// Wall time.
    pub seconds: f64,
    /// Headers per second.
    pub headers_per_second: f64,
    /// Blocks per second.
    pub blocks_per_second: f64,
    /// Transactions per second.
    pub transactions_per_second: f64,
    /// What hashed the headers.
    pub backend: String,
    /// Whether every record was checked alone.
    pub no_context: bool,
    /// What is not checked.
    pub not_checked: &'static str,
    /// The state root after the last block (powkit chains).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_root: Option<String>,
    /// Accounts in the state (powkit chains).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accounts: Option<usize>,
    /// The first invalid record, if any.
    pub invalid: Option<Invalid>,
    /// The first malformed record, if any.
    pub malformed: Option<Malformed>,
}

fn header_bytes(records: &[Record]) -> Vec<[u8; 80]> {
    records
        .iter()
        .flat_map(|r| r.headers().map(|(_, h)| <[u8; 80]>::try_from(h).expect("records hold at least 80 bytes")))
        .collect()
}

/// Hashes (unless the GPU already has: `gpu` holds this chunk's hashes in header order) and
/// prepares one thread's share of a batch. Runs of raw headers are hashed in place, sixteen at a
/// time; the headers of single records are gathered into one batch first.
fn prepare_chunk(chunk: Vec<Record>, gpu: Option<&[[u8; 32]]>, opts: &ValidateOptions) -> Vec<Prepared> {
    let mut singles = match gpu {
        Some(_) => Vec::new(),
        None => {
            let heads: Vec<[u8; 80]> = chunk
                .iter()
                .filter(|r| r.kind != Kind::Headers)
                .map(|r| r.bytes[..80].try_into().expect("records hold at least 80 bytes"))
                .collect();
            sha256d_headers(&heads)
        }
    }
    .into_iter();
    let mut out = Vec::with_capacity(chunk.len() + 1);
    let mut at = 0;
    for r in chunk {
        let n = r.header_count();
        let hashes = match gpu {
            Some(g) => g[at..at + n].to_vec(),
            None if r.kind == Kind::Headers => sha256d_headers(r.bytes.as_chunks::<80>().0),
            None => vec![singles.next().expect("one hash per single record")],
        };
        at += n;
        prepare_record(r, hashes, opts, &mut out);
    }
    out
}

/// Hashes a batch's headers and runs the context-free rules on this thread (the hashing on the GPU
/// when there is one).
fn prepare(hasher: &HeaderHasher, records: Vec<Record>, opts: &ValidateOptions) -> Result<Vec<Prepared>, String> {
    match hasher {
        HeaderHasher::Cpu(_) => Ok(prepare_chunk(records, None, opts)),
        HeaderHasher::Gpu(dev, h) => {
            let hashes = h.hash_headers(dev, &header_bytes(&records)).map_err(|e| e.to_string())?;
            Ok(prepare_chunk(records, Some(&hashes), opts))
        }
    }
}

/// A batch's place in the ordered stream, once prepared.
enum Item {
    Batch(Vec<Prepared>),
    Failed(String),
}

/// The reader, shared by the workers (each takes the next batch under the lock).
struct Input {
    reader: Reader,
    next_seq: u64,
    finished: bool,
}

/// The in-order part: the validator and the progress line.
struct Linker {
    validator: Validator,
    stop: Option<Stop>,
    failure: Option<String>,
    last_progress: Instant,
}

/// The pipeline: every worker reads a batch, hashes it and checks the context-free rules, then
/// hands it to the linker, which connects batches in input order. Whichever worker finds the
/// linker free does the linking, so each core is always either preparing or linking: no stage
/// waits on another's thread and no batch waits on a barrier.
struct Flow<'a> {
    input: Mutex<Input>,
    /// Signalled when batches are linked (workers wait here when too many are in flight).
    room: Condvar,
    ready: Mutex<BTreeMap<u64, Item>>,
    linker: Mutex<Linker>,
    /// Batches linked so far (the next sequence number to link).
    linked: AtomicU64,
    done: AtomicBool,
    hasher: &'a HeaderHasher,
    opts: &'a ValidateOptions,
    t0: Instant,
    tty: bool,
    max_in_flight: u64,
}

impl Flow<'_> {
    fn worker(&self) {
        while !self.done.load(Ordering::Relaxed) {
            let (seq, batch, failure) = {
                let mut input = self.input.lock().expect("no worker panics");
                while input.next_seq - self.linked.load(Ordering::Acquire) >= self.max_in_flight
                    && !self.done.load(Ordering::Relaxed)
                {
                    input = self.room.wait_timeout(input, Duration::from_millis(5)).expect("no worker panics").0;
                }
                if input.finished || self.done.load(Ordering::Relaxed) {
                    return;
                }
                let (batch, failure) = read_batch(&mut input.reader);
                if failure.is_some() || batch.is_empty() {
                    input.finished = true;
                }
                let seq = input.next_seq;
                input.next_seq += u64::from(!batch.is_empty()) + u64::from(failure.is_some());
                (seq, batch, failure)
            };
            let mut seq = seq;
            if !batch.is_empty() {
                // A panic here is a bug, but it must not leave the other workers waiting for
                // this batch forever: it becomes the batch's failure.
                let prepared =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| prepare(self.hasher, batch, self.opts)));
                let item = match prepared {
                    Ok(Ok(b)) => Item::Batch(b),
                    Ok(Err(e)) => Item::Failed(e),
                    Err(_) => {
                        Item::Failed("internal error: a validation worker panicked (a bug; please report it)".into())
                    }
                };
                self.ready.lock().expect("no worker panics").insert(seq, item);
                seq += 1;
            }
            if let Some(e) = failure {
                self.ready
                    .lock()
                    .expect("no worker panics")
                    .insert(seq, Item::Failed(format!("unreadable input: {e}")));
            }
            self.link_ready();
        }
    }

    /// Links every ready batch that is next in order, if no other worker is linking; one that is
    /// looks again after letting go, so no batch is left waiting.
    fn link_ready(&self) {
        loop {
            let mut l = match self.linker.try_lock() {
                Ok(l) => l,
                Err(std::sync::TryLockError::WouldBlock) => return,
                Err(std::sync::TryLockError::Poisoned(_)) => {
                    // The linker panicked: stop everyone (the panic is reported when joined).
                    self.done.store(true, Ordering::Relaxed);
                    self.room.notify_all();
                    return;
                }
            };
            loop {
                let next = self.linked.load(Ordering::Acquire);
                let Some(item) = self.ready.lock().expect("no worker panics").remove(&next) else { break };
                if l.stop.is_none() && l.failure.is_none() {
                    match item {
                        Item::Batch(b) => {
                            if let Err(e) = l.validator.accept(b) {
                                l.stop = Some(e);
                            }
                        }
                        Item::Failed(e) => l.failure = Some(e),
                    }
                    if l.stop.is_some() || l.failure.is_some() {
                        self.done.store(true, Ordering::Relaxed);
                    }
                }
                let spent = l.validator.take_spent();
                {
                    let mut input = self.input.lock().expect("no worker panics");
                    for buf in spent {
                        input.reader.recycle(buf);
                    }
                    self.linked.store(next + 1, Ordering::Release);
                }
                self.room.notify_all();
                self.progress(&mut l);
            }
            drop(l);
            let next = self.linked.load(Ordering::Acquire);
            if !self.ready.lock().expect("no worker panics").contains_key(&next) {
                return;
            }
        }
    }

    fn progress(&self, l: &mut Linker) {
        if l.last_progress.elapsed() < Duration::from_secs(2) {
            return;
        }
        l.last_progress = Instant::now();
        let st = &l.validator.stats;
        let rate = st.headers as f64 / self.t0.elapsed().as_secs_f64();
        let line = format!("validate: {} headers, {} blocks, {:.0} headers/s", st.headers, st.blocks, rate);
        if self.tty {
            eprint!("\r{line}   ");
        } else {
            eprintln!("{line}");
        }
    }
}

/// The next batch: up to [`BATCH`] records or 1 MB of input, and the read error that ended it, if any.
fn read_batch(r: &mut Reader) -> (Vec<Record>, Option<ImportError>) {
    let mut batch = Vec::with_capacity(64);
    let mut size = 0;
    while batch.len() < BATCH && size < 1 << 20 {
        match r.next_record() {
            Ok(Some(rec)) => {
                size += rec.bytes.len();
                batch.push(rec);
            }
            Ok(None) => break,
            Err(e) => return (batch, Some(e)),
        }
    }
    (batch, None)
}

/// What `powkit validate` says is not checked on powkit chains.
pub const LEDGER_NOT_CHECKED: &str = "nothing: headers, blocks, every signature and every state transition are checked";

/// Validates a powkit chain (blk format): headers, block rules, signatures and state.
fn run_ledger(a: &ValidateArgs, chain: crate::ledger::LedgerChain, now: i64) -> Result<ValidateReport, CliError> {
    let params = chain.params();
    if a.format != Format::Blk {
        return Err(CliError::usage(format!("--chain {}: powkit chains are validated from blk files", params.name)));
    }
    let files = expand_paths(&a.paths).map_err(|e| CliError::usage(e.to_string()))?;
    let t0 = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let mut last = Instant::now();
    let mut progress = |f: &crate::ledger::chain::Follower| {
        if last.elapsed() >= Duration::from_secs(2) {
            last = Instant::now();
            let line = format!(
                "validate: height {}, {} transactions, {:.0} transactions/s",
                f.height,
                f.transactions,
                f.transactions as f64 / t0.elapsed().as_secs_f64()
            );
            if tty {
                eprint!("\r{line}   ");
            } else {
                eprintln!("{line}");
            }
        }
    };
    let (mut f, totals, stop, read_error) = crate::validate::powkit::validate(params, files, now, &mut progress);
    // An invalid block read before a read error is the answer (the error came later in the input).
    let read_error = if stop.is_some() { None } else { read_error };
    if tty && t0.elapsed() >= Duration::from_secs(2) {
        eprintln!();
    }
    if let Some(e) = read_error {
        return Err(CliError::usage(e));
    }
    let secs = t0.elapsed().as_secs_f64().max(1e-9);
    let (invalid, malformed) = match stop {
        Some(Stop::Invalid(i)) => (Some(*i), None),
        Some(Stop::Malformed(m)) => (None, Some(*m)),
        None => (None, None),
    };
    let stats = Stats {
        blocks: totals.blocks,
        headers: totals.blocks,
        transactions: totals.transactions,
        stale_skipped: 0,
        best_height: Some(f.height),
        tip: Some(f.tip.to_string()),
        chainwork: hex::encode(f.chainwork.to_be_bytes()),
    };
    Ok(ValidateReport {
        valid: invalid.is_none() && malformed.is_none(),
        chain: params.name.to_string(),
        headers_per_second: totals.blocks as f64 / secs,
        blocks_per_second: totals.blocks as f64 / secs,
        transactions_per_second: totals.transactions as f64 / secs,
        stats,
        bytes: totals.bytes,
        seconds: secs,
        backend: format!("cpu ({} threads)", rayon::current_num_threads()),
        no_context: false,
        not_checked: LEDGER_NOT_CHECKED,
        state_root: Some(hex::encode(f.state.root())),
        accounts: Some(f.state.len()),
        invalid,
        malformed,
    })
}

/// Runs the validation.
pub fn run(a: &ValidateArgs) -> Result<ValidateReport, CliError> {
    if let Some(lc) = crate::ledger::LedgerChain::from_name(&a.chain) {
        let now = a.now.unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
        });
        return run_ledger(a, lc, now);
    }
    let chain: Chain = a.chain.parse().map_err(CliError::usage)?;
    let params = chain.params();
    let now = a.now.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
    });
    let threads = a.threads.unwrap_or_else(crate::mine::default_threads).clamp(1, 1024);
    let hasher = crate::backend::open_header_hasher(a.backend, a.adapter, threads, &mut Vec::new())?;
    let backend = hasher.describe();
    let files = expand_paths(&a.paths).map_err(|e| CliError::usage(e.to_string()))?;
    let opts = ValidateOptions {
        params: params.clone(),
        no_context: a.no_context,
        no_pow: a.no_pow,
        now,
        orphan_limit: a.orphan_limit,
        files: files.clone(),
    };
    let workers = match &hasher {
        HeaderHasher::Cpu(t) => *t,
        HeaderHasher::Gpu(..) => crate::mine::default_threads(),
    };
    let t0 = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let flow = Flow {
        input: Mutex::new(Input { reader: Reader::new(files, a.format, params.magic), next_seq: 0, finished: false }),
        room: Condvar::new(),
        ready: Mutex::new(BTreeMap::new()),
        linker: Mutex::new(Linker {
            validator: Validator::new(opts.clone()),
            stop: None,
            failure: None,
            last_progress: Instant::now(),
        }),
        linked: AtomicU64::new(0),
        done: AtomicBool::new(false),
        hasher: &hasher,
        opts: &opts,
        t0,
        tty,
        max_in_flight: 2 * workers as u64 + 2,
    };
    std::thread::scope(|s| {
        for _ in 1..workers {
            s.spawn(|| flow.worker());
        }
        flow.worker();
    });
    if tty && t0.elapsed() >= Duration::from_secs(2) {
        eprintln!();
    }
    let bytes = flow.input.into_inner().expect("no worker panics").reader.bytes_read;
    let Linker { mut validator, mut stop, failure, .. } = flow.linker.into_inner().expect("no worker panics");
    if let Some(e) = failure {
        return Err(CliError::usage(e));
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
    let (invalid, malformed) = match stop {
        Some(Stop::Invalid(i)) => (Some(*i), None),
        Some(Stop::Malformed(m)) => (None, Some(*m)),
        None => (None, None),
    };
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
        no_context: a.no_context,
        not_checked: NOT_CHECKED,
        state_root: None,
        accounts: None,
        invalid,
        malformed,
    })
}

/// `powkit validate`: exit 0 valid, 1 invalid, 2 unreadable or malformed input.
pub fn main(a: &ValidateArgs) -> Result<i32, CliError> {
    let r = run(a)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r).expect("serializable"));
    } else {
        let st = &r.stats;
        println!(
            "{}: {} blocks, {} headers, {} transactions, {} bytes in {:.3} s",
            r.chain, st.blocks, st.headers, st.transactions, r.bytes, r.seconds
        );
        println!(
            "rates: {:.0} headers/s, {:.0} blocks/s, {:.0} transactions/s (hashing on {})",
            r.headers_per_second, r.blocks_per_second, r.transactions_per_second, r.backend
        );
        if let (Some(h), Some(tip)) = (st.best_height, &st.tip) {
            println!("best height {h}, tip {tip}, chain work {}", st.chainwork);
        }
        if let (Some(root), Some(n)) = (&r.state_root, r.accounts) {
            println!("state root {root} ({n} accounts)");
        }
        if st.stale_skipped > 0 {
            println!("{} stale-fork block(s) skipped", st.stale_skipped);
        }
        println!("not checked: {}", r.not_checked);
        if let Some(i) = &r.invalid {
            let h = i.height.map_or("?".to_string(), |h| h.to_string());
            println!(
                "INVALID at height {h}, block {}, {} offset {}: rule {}: {}",
                i.hash, i.file, i.offset, i.rule, i.message
            );
        }
        if let Some(m) = &r.malformed {
            println!("MALFORMED input: {} offset {}: {}", m.file, m.offset, m.message);
        }
        if r.valid {
            println!("valid");
        }
    }
    Ok(if r.malformed.is_some() {
        2
    } else if r.invalid.is_some() {
        1
    } else {
        0
    })
}
