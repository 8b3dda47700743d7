//! `powkit validate`: bulk-validate imported chains.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

use super::{Backend, CliError};
use crate::consensus::Chain;
use crate::gpu::{GpuDevice, GpuHasher};
use crate::import::{expand_paths, Format, ImportError, Kind, Reader, Record};
use crate::primitives::BlockHash;
use crate::sha256::batch::sha256d_headers;
use crate::validate::{prepare, Invalid, Malformed, Pending, Stats, Stop, ValidateOptions, Validator};

/// Records per batch handed from the reader to the hasher to the validator (batches also end at
/// 1 MB of input: small batches stay in cache and reuse freed memory instead of faulting in fresh pages).
const BATCH: usize = 8192;

/// What `powkit validate` says is not checked.
pub const NOT_CHECKED: &str = "scripts, signatures and UTXO spends of Bitcoin transactions are not checked";

/// Flags of `powkit validate`.
#[derive(Args, Debug, Clone)]
pub struct ValidateArgs {
    /// Files (or directories of blk*.dat files) to validate, in order.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The chain: bitcoin, bitcoin-testnet, bitcoin-regtest.
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
    /// The first invalid record, if any.
    pub invalid: Option<Invalid>,
    /// The first malformed record, if any.
    pub malformed: Option<Malformed>,
}

enum Hasher {
    Cpu(usize),
    Gpu(Box<GpuDevice>, GpuHasher),
}

fn header_bytes(records: &[Record]) -> Vec<[u8; 80]> {
    records
        .iter()
        .flat_map(|r| r.headers().map(|(_, h)| <[u8; 80]>::try_from(h).expect("records hold at least 80 bytes")))
        .collect()
}

/// Hashes every header of `records` on this thread: runs of raw headers in place (no copy), the
/// headers of single records gathered into one batch.
fn hash_cpu(records: &[Record], n: usize) -> Vec<BlockHash> {
    let mut out = Vec::with_capacity(n);
    let mut singles: Vec<[u8; 80]> = Vec::new();
    let flush = |singles: &mut Vec<[u8; 80]>, out: &mut Vec<BlockHash>| {
        out.extend(sha256d_headers(singles).into_iter().map(BlockHash));
        singles.clear();
    };
    for r in records {
        if r.kind == Kind::Headers {
            flush(&mut singles, &mut out);
            let (run, _) = r.bytes.as_chunks::<80>();
            out.extend(sha256d_headers(run).into_iter().map(BlockHash));
        } else {
            singles.push(r.bytes[..80].try_into().expect("records hold at least 80 bytes"));
        }
    }
    flush(&mut singles, &mut out);
    out
}

impl Hasher {
    /// Hashes the headers and runs the context-free rules: on `threads` CPU threads (each hashing
    /// and checking its share), or hashing on the GPU and checking on the CPU threads.
    fn prepare(&self, records: Vec<Record>, opts: &ValidateOptions) -> Result<Vec<Result<Pending, Stop>>, String> {
        let (threads, gpu_hashes) = match self {
            Hasher::Cpu(t) => (*t, None),
            Hasher::Gpu(dev, h) => {
                let hashes = h.hash_headers(dev, &header_bytes(&records)).map_err(|e| e.to_string())?;
                (crate::mine::default_threads(), Some(hashes))
            }
        };
        // Split by headers, not records (a run of raw headers is one record of thousands).
        let total: usize = records.iter().map(Record::header_count).sum();
        let per = total.div_ceil(threads.max(1)).max(1);
        let mut chunks: Vec<Vec<Record>> = vec![Vec::new()];
        let mut in_chunk = 0;
        for r in records {
            if in_chunk >= per {
                chunks.push(Vec::new());
                in_chunk = 0;
            }
            in_chunk += r.header_count();
            chunks.last_mut().expect("non-empty").push(r);
        }
        let gpu_hashes = gpu_hashes.as_deref();
        Ok(std::thread::scope(|s| {
            let mut offset = 0;
            let parts: Vec<_> = chunks
                .into_iter()
                .map(|chunk| {
                    let start = offset;
                    let n: usize = chunk.iter().map(Record::header_count).sum();
                    offset += n;
                    s.spawn(move || {
                        let hashes: Vec<BlockHash> = match gpu_hashes {
                            Some(h) => h[start..start + n].iter().map(|&x| BlockHash(x)).collect(),
                            None => hash_cpu(&chunk, n),
                        };
                        prepare(chunk, &hashes, opts)
                    })
                })
                .collect();
            let mut all = Vec::with_capacity(total);
            for p in parts {
                all.extend(p.join().expect("validation threads do not panic"));
            }
            all
        }))
    }
}

/// Runs the validation.
pub fn run(a: &ValidateArgs) -> Result<ValidateReport, CliError> {
    let chain: Chain = a.chain.parse().map_err(CliError::usage)?;
    let params = chain.params();
    let now = a.now.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
    });
    let threads = a.threads.unwrap_or_else(crate::mine::default_threads).clamp(1, 1024);
    let hasher = match a.backend {
        Backend::Cpu => Hasher::Cpu(threads),
        Backend::Gpu | Backend::All => {
            let dev = GpuDevice::open(a.adapter).map_err(|e| CliError::usage(format!("--backend gpu: {e}")))?;
            let h = GpuHasher::new(&dev);
            Hasher::Gpu(Box::new(dev), h)
        }
        Backend::Auto => match GpuDevice::open(a.adapter) {
            Ok(dev) if !dev.adapter.is_software() => {
                let h = GpuHasher::new(&dev);
                Hasher::Gpu(Box::new(dev), h)
            }
            _ => Hasher::Cpu(threads),
        },
    };
    let backend = match &hasher {
        Hasher::Cpu(t) => format!("cpu ({t} threads)"),
        Hasher::Gpu(d, _) => format!("gpu ({})", d.adapter.name),
    };
    let files = expand_paths(&a.paths).map_err(|e| CliError::usage(e.to_string()))?;
    let opts = ValidateOptions {
        params: params.clone(),
        no_context: a.no_context,
        no_pow: a.no_pow,
        now,
        orphan_limit: a.orphan_limit,
        files: files.clone(),
    };
    let mut validator = Validator::new(opts.clone());
    let t0 = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let mut last_progress = Instant::now();

    // Three stages overlap: reading; hashing and the context-free rules (batched, on all cores, the
    // hashing optionally on the GPU); and linking with the contextual rules, in input order.
    let (raw_tx, raw_rx) = sync_channel::<Result<Vec<Record>, ImportError>>(2);
    let (hashed_tx, hashed_rx) = sync_channel::<Result<Vec<Result<Pending, Stop>>, String>>(2);
    let mut stop: Option<Stop> = None;
    let mut read_error: Option<String> = None;
    let mut bytes = 0u64;
    std::thread::scope(|s| {
        let reader = s.spawn(move || {
            let mut r = Reader::new(files, a.format, params.magic);
            loop {
                let mut batch = Vec::with_capacity(BATCH);
                let mut size = 0;
                let mut failure = None;
                while batch.len() < BATCH && size < 1 << 20 {
                    match r.next_record() {
                        Ok(Some(rec)) => {
                            size += rec.bytes.len();
                            batch.push(rec);
                        }
                        Ok(None) => break,
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
                let end = batch.len() < BATCH && size < 1 << 20;
                if !batch.is_empty() && raw_tx.send(Ok(batch)).is_err() {
                    break;
                }
                if let Some(e) = failure {
                    let _ = raw_tx.send(Err(e));
                    break;
                }
                if end {
                    break;
                }
            }
            r.bytes_read
        });
        let (hasher, opts) = (&hasher, &opts);
        s.spawn(move || {
            for item in raw_rx {
                let out = match item {
                    Ok(recs) => hasher.prepare(recs, opts),
                    Err(e) => Err(format!("unreadable input: {e}")),
                };
                let failed = out.is_err();
                if hashed_tx.send(out).is_err() || failed {
                    break;
                }
            }
        });
        for item in hashed_rx {
            match item {
                Ok(items) => {
                    if let Err(e) = validator.accept(items) {
                        stop = Some(e);
                        break;
                    }
                }
                Err(e) => {
                    read_error = Some(e);
                    break;
                }
            }
            if last_progress.elapsed() >= Duration::from_secs(2) {
                last_progress = Instant::now();
                let st = &validator.stats;
                let rate = st.headers as f64 / t0.elapsed().as_secs_f64();
                let line = format!("validate: {} headers, {} blocks, {:.0} headers/s", st.headers, st.blocks, rate);
                if tty {
                    eprint!("\r{line}   ");
                } else {
                    eprintln!("{line}");
                }
            }
        }
        // Dropping the receiver ends the other stages early on a stop.
        bytes = reader.join().unwrap_or(0);
    });
    if tty && t0.elapsed() >= Duration::from_secs(2) {
        eprintln!();
    }
    if let Some(e) = read_error {
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
