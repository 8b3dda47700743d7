//! The nonce-search benchmark behind `powkit bench`: hashes per second per backend, CPU
//! implementation and thread count, on a real header at its real target. Which engines and
//! implementations run is decided by [`crate::backend`]; this module runs and times the rows.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::{search, search_with, Engines, SearchError, SearchOptions, NONCE_SPACE};
use crate::backend::{self, Backend, CpuImpls};
use crate::gpu::GpuSearch;
use crate::primitives::BlockHeader;
use crate::sha256::{CpuImpl, Job};

/// Bitcoin block 1's header: a real header, searched at its real target (difficulty 1).
const BENCH_HEADER: &str = "010000006fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000982051fd1e4ba744bbbe680e1fee14677ba1a3c3540bf7b1cdb606e857233e0e61bc6649ffff001d01e36299";

/// What to benchmark.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Which rows: `cpu` rows, a `gpu` row, or (`all`) both plus a row of the two together; `auto` is
    /// `all` when a hardware GPU is present, else `cpu` (decided by [`backend::open_gpu`]).
    pub backend: Backend,
    /// GPU adapter index (`None`: a discrete GPU first).
    pub adapter: Option<usize>,
    /// With `all`/`auto`, let a software GPU adapter (lavapipe) take part too.
    pub allow_software: bool,
    /// CPU implementations measured, one set of rows each; the cpu+gpu row uses the one a search
    /// would (`all`: the fastest).
    pub cpu_impls: CpuImpls,
    /// Worker thread counts, one CPU row per count (each 1..=1024); empty: one row at all hardware
    /// threads. The cpu+gpu row uses the largest.
    pub threads: Vec<usize>,
    /// Seconds per row, in (0, 3600].
    pub seconds: f64,
    /// Ed25519 signatures (distinct keys and messages) to verify per signature row; 0: no
    /// signature rows ([`bench_signatures`]).
    pub signatures: usize,
}

/// One measured configuration.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    /// `cpu` or `gpu`.
    pub backend: Backend,
    /// Implementation name (`shani`, `avx2`, `scalar`).
    #[serde(rename = "impl")]
    pub imp: String,
    /// Worker threads.
    pub threads: usize,
    /// Nonces hashed (completed chunks only).
    pub hashes: u64,
    /// Wall time of the row.
    pub seconds: f64,
    /// `hashes / seconds`.
    pub hashes_per_second: f64,
    /// `hashes_per_second / threads`.
    pub hashes_per_second_per_thread: f64,
    /// The GPU adapter, for `gpu` and `all` rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
}

/// The whole benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// One row per configuration.
    pub results: Vec<BenchRow>,
    /// CPU implementations this machine can run, fastest first.
    pub cpu_impls_available: Vec<CpuImpl>,
    /// Hardware threads.
    pub hardware_threads: usize,
    /// Plain-language notes (a backend not available, say).
    pub notes: Vec<String>,
    /// Ed25519 (ZIP-215) verification rows, when asked for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<SigBenchRow>,
}

/// One signature verifier measured.
#[derive(Debug, Clone, Serialize)]
pub struct SigBenchRow {
    /// `cpu`, `gpu` or `all`.
    pub backend: Backend,
    /// What verified (`cpu (N threads)`, `gpu (ADAPTER)`, `all (...)`).
    pub verifier: String,
    /// Signatures verified in the measured pass.
    pub signatures: usize,
    /// Wall time of the measured pass.
    pub seconds: f64,
    /// `signatures / seconds`.
    pub signatures_per_second: f64,
}

/// Verifies `count` valid signatures (each with its own key and message, made here) on each
/// verifier `backend` stands for (`cpu`; `gpu`; `all`: cpu, gpu and the two together; `auto`: all
/// with a hardware GPU, or a software one when `allow_software`, else cpu), twice each: the first
/// pass warms up (and lets the split measure its rates), the second is the row. A verifier that
/// calls a valid signature invalid is a bug and fails the benchmark.
///
/// # Errors
/// `gpu` or `all` and no adapter; a wrong verdict ([`SearchError::Engines`] with the reason).
pub fn bench_signatures(
    backend: Backend,
    adapter: Option<usize>,
    allow_software: bool,
    count: usize,
    notes: &mut Vec<String>,
) -> Result<Vec<SigBenchRow>, SearchError> {
    use ed25519_zebra::{SigningKey, VerificationKeyBytes};
    use rayon::prelude::*;
    let made: Vec<([u8; 32], [u8; 64], [u8; 32])> = (0..count as u64)
        .into_par_iter()
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&i.to_le_bytes());
            seed[8] = 0xb5;
            let key = SigningKey::from(seed);
            let msg: [u8; 32] = crate::sha256::reference::sha256d(&seed);
            (VerificationKeyBytes::from(&key).into(), key.sign(&msg).to_bytes(), msg)
        })
        .collect();
    let refs: Vec<crate::sigs::SigRef> =
        made.iter().map(|(pk, sig, m)| crate::sigs::SigRef { pubkey: pk, signature: sig, message: m }).collect();
    let kinds: Vec<Backend> = match backend {
        Backend::Cpu => vec![Backend::Cpu],
        Backend::Gpu => vec![Backend::Gpu],
        Backend::All => vec![Backend::Cpu, Backend::Gpu, Backend::All],
        Backend::Auto => match backend::open_gpu(Backend::Auto, adapter, allow_software, notes)? {
            Some(_) => vec![Backend::Cpu, Backend::Gpu, Backend::All],
            None => vec![Backend::Cpu],
        },
    };
    let mut rows = Vec::new();
    for kind in kinds {
        let v = backend::open_sig_verifier(kind, adapter, true, crate::sigs::BATCH, &mut Vec::new())?;
        let pass = || {
            let t0 = Instant::now();
            let bad = v.invalid(&refs);
            (bad, t0.elapsed().as_secs_f64().max(1e-9))
        };
        pass();
        let (bad, secs) = pass();
        if !bad.is_empty() {
            return Err(SearchError::Engines(backend::BackendError(format!(
                "{}: {} of {count} valid signatures called invalid (first: {})",
                v.describe(),
                bad.len(),
                bad[0]
            ))));
        }
        rows.push(SigBenchRow {
            backend: kind,
            verifier: v.describe(),
            signatures: count,
            seconds: secs,
            signatures_per_second: count as f64 / secs,
        });
    }
    Ok(rows)
}

/// Measures one CPU configuration for `seconds`.
///
/// # Errors
/// `imp` is not available on this CPU ([`SearchError::Engines`]).
pub fn bench_cpu(imp: CpuImpl, threads: usize, seconds: f64) -> Result<BenchRow, SearchError> {
    let scanner = imp.scanner().map_err(|e| backend::BackendError(e.to_string()))?;
    let job = bench_job();
    let opts = SearchOptions {
        threads,
        find_all: true,
        deadline: Some(Instant::now() + Duration::from_secs_f64(seconds)),
        ..Default::default()
    };
    let r = search(&*scanner, &job, 0, NONCE_SPACE, &opts, None);
    let secs = r.elapsed.as_secs_f64();
    Ok(BenchRow {
        backend: Backend::Cpu,
        imp: imp.name().to_string(),
        threads,
        hashes: r.hashes,
        seconds: secs,
        hashes_per_second: r.rate(),
        hashes_per_second_per_thread: r.rate() / threads as f64,
        adapter: None,
    })
}

fn bench_job() -> Job {
    let header = BlockHeader::from_bytes(&hex::decode(BENCH_HEADER).expect("hex")).expect("80 bytes");
    Job::new(&header, header.bits.to_target().expect("valid bits"))
}

/// Measures the GPU alone, or (with `cpu`: the implementation, its scanner and a thread count) the
/// GPU and CPU threads together, for `seconds` after a short warm-up.
///
/// # Errors
/// The GPU failed ([`SearchError::Gpu`]).
pub fn bench_gpu(
    gpu: &mut GpuSearch,
    cpu: Option<(CpuImpl, &dyn crate::sha256::NonceScanner, usize)>,
    seconds: f64,
) -> Result<BenchRow, SearchError> {
    let job = bench_job();
    let adapter = gpu.device().adapter.name.clone();
    let threads = cpu.map_or(0, |c| c.2);
    let mut engines = Engines { cpu: cpu.map(|c| c.1), gpu: Some(gpu) };
    // A short warm-up tunes the dispatch size before the measured run.
    let warm = SearchOptions {
        threads: threads.max(1),
        find_all: true,
        deadline: Some(Instant::now() + Duration::from_secs_f64((seconds / 5.0).min(1.0))),
        ..Default::default()
    };
    search_with(&mut engines, &job, 0, NONCE_SPACE, &warm, None)?;
    let opts = SearchOptions {
        threads: threads.max(1),
        find_all: true,
        deadline: Some(Instant::now() + Duration::from_secs_f64(seconds)),
        ..Default::default()
    };
    let r = search_with(&mut engines, &job, 0, NONCE_SPACE, &opts, None)?;
    let (backend, imp) = match cpu {
        Some((i, _, _)) => (Backend::All, format!("{}+wgsl", i.name())),
        None => (Backend::Gpu, "wgsl".to_string()),
    };
    Ok(BenchRow {
        backend,
        imp,
        threads,
        hashes: r.hashes,
        seconds: r.elapsed.as_secs_f64(),
        hashes_per_second: r.rate(),
        hashes_per_second_per_thread: r.rate() / threads.max(1) as f64,
        adapter: Some(adapter),
    })
}

/// Runs the benchmark: when the CPU takes part, a row per implementation and thread count; when the
/// GPU does, a `gpu` row, and with the CPU too an `all` row (both together). `on_row` sees each row
/// as it completes. About `seconds` per row (plus a GPU warm-up).
///
/// # Errors
/// A selected implementation this CPU lacks or a GPU asked for and not there
/// ([`SearchError::Engines`]), or the GPU failed ([`SearchError::Gpu`]).
pub fn bench(opts: &BenchOptions, on_row: &mut dyn FnMut(&BenchRow)) -> Result<BenchReport, SearchError> {
    let imps = backend::cpu_impls(opts.cpu_impls)?;
    let mut report = BenchReport {
        results: Vec::new(),
        cpu_impls_available: CpuImpl::available(),
        hardware_threads: super::default_threads(),
        notes: Vec::new(),
        signatures: Vec::new(),
    };
    let mut set = backend::open_search_with(opts.backend, opts.cpu_impls, opts.adapter, opts.allow_software)?;
    report.notes.append(&mut set.notes);
    let threads = if opts.threads.is_empty() { vec![report.hardware_threads] } else { opts.threads.clone() };
    if set.cpu.is_some() {
        for &imp in &imps {
            for &t in &threads {
                let row = bench_cpu(imp, t, opts.seconds)?;
                on_row(&row);
                report.results.push(row);
            }
        }
    }
    if let Some(gpu) = set.gpu.as_mut() {
        let row = bench_gpu(gpu, None, opts.seconds)?;
        on_row(&row);
        report.results.push(row);
        if let Some((imp, sc)) = set.cpu.as_ref() {
            let t = *threads.iter().max().expect("non-empty");
            let row = bench_gpu(gpu, Some((*imp, &**sc, t)), opts.seconds)?;
            on_row(&row);
            report.results.push(row);
        }
    }
    if opts.signatures > 0 {
        report.signatures =
            bench_signatures(opts.backend, opts.adapter, opts.allow_software, opts.signatures, &mut report.notes)?;
    }
    Ok(report)
}
