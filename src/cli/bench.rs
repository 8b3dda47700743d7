//! `powkit bench`: nonce-search speed per backend, implementation and thread count.

use std::path::PathBuf;

use clap::Args;

use super::{fmt_rate, CliError, EngineArgs, SearchEngineArgs};
use crate::backend::{self, CpuImpls};
use crate::mine::bench::{bench, BenchOptions, BenchReport, BenchRow};
use crate::mine::SearchError;
use crate::sha256::CpuImpl;

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
    /// Also verify this many Ed25519 signatures (ZIP-215) per verifier --backend stands for (cpu;
    /// gpu; all: cpu, gpu and both together), after the hash rows.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub sigs: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also draw the rates as a bar chart in this SVG file (hashes/s per row; signatures/s in a
    /// second panel with --sigs), written after the table or JSON is printed.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics while benchmarking (IP:PORT, or PORT for
    /// 127.0.0.1:PORT; off by default): powkit_mine_hashes_total by backend and implementation.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
}

/// Checks the flags before any work or output and turns them into [`BenchOptions`].
pub fn options(a: &BenchArgs) -> Result<BenchOptions, CliError> {
    if !(a.seconds > 0.0 && a.seconds <= 3600.0) {
        return Err(CliError::usage(format!("--seconds must be in (0, 3600], got {}", a.seconds)));
    }
    if a.threads.iter().any(|&t| t == 0 || t > 1024) {
        return Err(CliError::usage("--threads must be between 1 and 1024"));
    }
    let cpu_impls: CpuImpls = a.search.cpu_impl.parse().map_err(CliError::usage)?;
    backend::cpu_impls(cpu_impls)?;
    Ok(BenchOptions {
        backend: a.engine.backend,
        adapter: a.engine.adapter,
        allow_software: a.search.gpu_allow_software,
        cpu_impls,
        threads: a.threads.clone(),
        seconds: a.seconds,
        signatures: a.sigs,
    })
}

/// Runs the benchmark; `on_row` sees each row as it completes.
pub fn run(a: &BenchArgs, on_row: &mut dyn FnMut(&BenchRow)) -> Result<BenchReport, CliError> {
    bench(&options(a)?, on_row).map_err(|e| match e {
        SearchError::Engines(e) => e.into(),
        SearchError::Gpu(e) => CliError { code: 3, message: format!("GPU failed: {e}") },
    })
}

/// Draws `report` into `--plot`'s file when one was given.
///
/// # Errors
/// The picture cannot be drawn or the file written: exit code 2.
fn plot(a: &BenchArgs, report: &BenchReport) -> Result<(), CliError> {
    let Some(path) = &a.plot else { return Ok(()) };
    let svg = super::plot::bench_svg(report).map_err(|e| CliError::usage(format!("--plot: cannot draw: {e}")))?;
    super::plot::write(path, &svg)
}

/// `powkit bench`: prints the table or the JSON, then writes `--plot`'s SVG; exit code 0, or 2
/// when the SVG cannot be written (after the table or JSON is printed).
pub fn main(a: &BenchArgs) -> Result<i32, CliError> {
    options(a)?;
    let _metrics = super::start_metrics(a.metrics.as_deref())?;
    if a.json {
        let report = run(a, &mut |_| {})?;
        println!("{}", serde_json::to_string_pretty(&report).expect("serializable"));
        plot(a, &report)?;
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
    if !report.signatures.is_empty() {
        println!("\n{:<8} {:>10} {:>8} {:>16}  verifier", "backend", "signatures", "seconds", "signatures/s");
        for r in &report.signatures {
            println!(
                "{:<8} {:>10} {:>8.3} {:>16.0}  {}",
                r.backend.name(),
                r.signatures,
                r.seconds,
                r.signatures_per_second,
                r.verifier
            );
        }
    }
    for n in &report.notes {
        println!("note: {n}");
    }
    plot(a, &report)?;
    Ok(0)
}
