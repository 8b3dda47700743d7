//! `powkit bench`: nonce-search speed per backend, implementation and thread count.

use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

use super::{fmt_rate, CliError, EngineArgs, SearchEngineArgs};
use crate::backend::{self, Backend};
use crate::gpu::GpuSearch;
use crate::mine::{search, search_with, Engines, SearchOptions, NONCE_SPACE};
use crate::primitives::BlockHeader;
use crate::sha256::{CpuImpl, Job};

/// Bitcoin block 1's header: a real header, searched at its real target (difficulty 1).
const BENCH_HEADER: &str = "010000006fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000982051fd1e4ba744bbbe680e1fee14677ba1a3c3540bf7b1cdb606e857233e0e61bc6649ffff001d01e36299";

/// Flags of `powkit bench`. `--backend` means rows here, and `--cpu-impl` also takes `all` (a row
/// per implementation), so their help is bench's own.
#[derive(Args, Debug, Clone)]
#[command(mut_arg("backend", |a| a.help(
    "Where to hash: cpu rows, a gpu row, or (all) both plus a row of the two together; auto is all \
     when a hardware GPU is present, else cpu"
)))]
#[command(mut_arg("cpu_impl", |a| a.help(
    "CPU implementation: auto (the fastest this CPU has), all (every one it has), scalar, shani, avx2, avx512"
)))]
pub struct BenchArgs {
    /// `--backend`, `--adapter`.
    #[command(flatten)]
    pub engine: EngineArgs,
    /// `--cpu-impl` (here also `all`), `--gpu-allow-software`.
    #[command(flatten)]
    pub search: SearchEngineArgs,
    /// Worker threads; a comma-separated list gives one row per count (default: all cores).
    #[arg(long, value_delimiter = ',')]
    pub threads: Vec<usize>,
    /// Seconds per row.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
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
}

fn choose_impls(choice: &str) -> Result<Vec<CpuImpl>, CliError> {
    match choice {
        "auto" => Ok(vec![CpuImpl::detect()]),
        "all" => Ok(CpuImpl::available()),
        other => {
            let imp: CpuImpl = other.parse().map_err(CliError::usage)?;
            if !imp.is_available() {
                return Err(CliError::usage(crate::sha256::UnsupportedImpl(imp).to_string()));
            }
            Ok(vec![imp])
        }
    }
}

/// Measures one CPU configuration for `seconds`.
pub fn bench_cpu(imp: CpuImpl, threads: usize, seconds: f64) -> Result<BenchRow, CliError> {
    let scanner = imp.scanner().map_err(|e| CliError::usage(e.to_string()))?;
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

/// Measures the GPU alone, or (with `cpu`) the GPU and CPU threads together, for `seconds`.
pub fn bench_gpu(
    gpu: &mut GpuSearch,
    cpu: Option<(CpuImpl, &dyn crate::sha256::NonceScanner, usize)>,
    seconds: f64,
) -> Result<BenchRow, CliError> {
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
    let gpu_err = |e: crate::gpu::GpuError| CliError { code: 3, message: format!("GPU failed: {e}") };
    search_with(&mut engines, &job, 0, NONCE_SPACE, &warm, None).map_err(gpu_err)?;
    let opts = SearchOptions {
        threads: threads.max(1),
        find_all: true,
        deadline: Some(Instant::now() + Duration::from_secs_f64(seconds)),
        ..Default::default()
    };
    let r = search_with(&mut engines, &job, 0, NONCE_SPACE, &opts, None).map_err(gpu_err)?;
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

/// Checks the flags before any work or output.
pub fn validate(a: &BenchArgs) -> Result<(), CliError> {
    if !(a.seconds > 0.0 && a.seconds <= 3600.0) {
        return Err(CliError::usage(format!("--seconds must be in (0, 3600], got {}", a.seconds)));
    }
    if a.threads.iter().any(|&t| t == 0 || t > 1024) {
        return Err(CliError::usage("--threads must be between 1 and 1024"));
    }
    choose_impls(&a.search.cpu_impl).map(|_| ())
}

/// Runs the benchmark; `on_row` sees each row as it completes.
pub fn run(a: &BenchArgs, on_row: &mut dyn FnMut(&BenchRow)) -> Result<BenchReport, CliError> {
    validate(a)?;
    let mut report = BenchReport {
        results: Vec::new(),
        cpu_impls_available: CpuImpl::available(),
        hardware_threads: crate::mine::default_threads(),
        notes: Vec::new(),
    };
    // The cpu+gpu row uses the fastest implementation when every one is benchmarked.
    let engine_impl = if a.search.cpu_impl == "all" { "auto" } else { a.search.cpu_impl.as_str() };
    let mut set = backend::open_search(a.engine.backend, engine_impl, a.engine.adapter, a.search.gpu_allow_software)?;
    report.notes.append(&mut set.notes);
    let threads = if a.threads.is_empty() { vec![report.hardware_threads] } else { a.threads.clone() };
    if set.cpu.is_some() {
        for imp in choose_impls(&a.search.cpu_impl)? {
            for &t in &threads {
                let row = bench_cpu(imp, t, a.seconds)?;
                on_row(&row);
                report.results.push(row);
            }
        }
    }
    if let Some(gpu) = set.gpu.as_mut() {
        let row = bench_gpu(gpu, None, a.seconds)?;
        on_row(&row);
        report.results.push(row);
        if let Some((imp, sc)) = set.cpu.as_ref() {
            let t = *threads.iter().max().expect("non-empty");
            let row = bench_gpu(gpu, Some((*imp, &**sc, t)), a.seconds)?;
            on_row(&row);
            report.results.push(row);
        }
    }
    Ok(report)
}

/// `powkit bench`: prints the table or the JSON; exit code 0.
pub fn main(a: &BenchArgs) -> Result<i32, CliError> {
    validate(a)?;
    if a.json {
        let report = run(a, &mut |_| {})?;
        println!("{}", serde_json::to_string_pretty(&report).expect("serializable"));
        return Ok(0);
    }
    println!(
        "cpu implementations available: {} ({} hardware threads)",
        CpuImpl::available().iter().map(|i| i.name()).collect::<Vec<_>>().join(", "),
        crate::mine::default_threads()
    );
    println!(
        "{:<8} {:<8} {:>7} {:>14} {:>8} {:>14} {:>14}",
        "backend", "impl", "threads", "hashes", "seconds", "rate", "per thread"
    );
    let report = run(a, &mut |r| {
        println!(
            "{:<8} {:<8} {:>7} {:>14} {:>8.2} {:>14} {:>14}{}",
            format!("{:?}", r.backend).to_lowercase(),
            r.imp,
            r.threads,
            r.hashes,
            r.seconds,
            fmt_rate(r.hashes_per_second),
            fmt_rate(r.hashes_per_second_per_thread),
            r.adapter.as_deref().map(|a| format!("  {a}")).unwrap_or_default()
        )
    })?;
    for n in &report.notes {
        println!("note: {n}");
    }
    Ok(0)
}
