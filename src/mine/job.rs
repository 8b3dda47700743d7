//! One `powkit mine` job: search a header's nonce range for hashes that meet a target, on the
//! engines [`crate::backend`] opens, either over one range or (without a count, first solution
//! wanted) to the end of the nonce space and then rolling the time field ([`mine_rolling_time`]).
//! The caller parses and checks the request ([`MineOptions`]) and prints the [`MineReport`].

use serde::Serialize;

use super::{
    mine_rolling_time, search_with, Progress, RollProgress, SearchError, SearchOptions, SearchReport, Solution,
    NONCE_SPACE,
};
use crate::backend::{self, Backend};
use crate::primitives::{BlockHeader, Target};
use crate::sha256::{CpuImpl, Job};

/// What to mine, already parsed and checked by the caller.
#[derive(Debug, Clone)]
pub struct MineOptions {
    /// The header; its nonce field is ignored.
    pub header: BlockHeader,
    /// The target a hash must meet (non-zero).
    pub target: Target,
    /// First nonce to try.
    pub start_nonce: u32,
    /// Nonces to try, at least 1 and at most `NONCE_SPACE - start_nonce`. `None`: to the end of the
    /// nonce space, then (unless `all`) roll the time field, see `max_time_rolls`.
    pub count: Option<u64>,
    /// Report every solution in the range, not only the first (no time rolling).
    pub all: bool,
    /// Where to hash (see [`backend::open_search`]).
    pub backend: Backend,
    /// GPU adapter index (`None`: a discrete GPU first).
    pub adapter: Option<usize>,
    /// CPU implementation name (`auto` or `scalar`, `shani`, `avx2`, `avx512`), checked by
    /// [`backend::cpu_impl`] only when the CPU takes part.
    pub cpu_impl: String,
    /// With `all`/`auto`, let a software GPU adapter (lavapipe) take part too.
    pub allow_software: bool,
    /// CPU worker threads, 1..=1024.
    pub threads: usize,
    /// Without `count` (and without `all`): how many times the time field may be rolled forward one
    /// second after the nonce space runs out.
    pub max_time_rolls: u32,
}

/// What `powkit mine` found.
#[derive(Debug, Clone, Serialize)]
pub struct MineReport {
    /// Whether a solution was found.
    pub found: bool,
    /// The first (lowest) solving nonce.
    pub nonce: Option<u32>,
    /// Its block hash, display order.
    pub hash: Option<String>,
    /// The solved header in hex (its time may have been rolled).
    pub header: Option<String>,
    /// Every solution in the range (with `--all` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub solutions: Option<Vec<Solution>>,
    /// The target, 64 hex digits.
    pub target: String,
    /// Nonces hashed.
    pub hashes: u64,
    /// Wall time.
    pub seconds: f64,
    /// Hashes per second.
    pub hashes_per_second: f64,
    /// Times the time field was rolled.
    pub time_rolls: u32,
    /// What ran: `cpu`, `gpu` or `all`.
    pub backend: Backend,
    /// CPU implementation used (none when the GPU ran alone).
    #[serde(rename = "impl")]
    pub imp: Option<CpuImpl>,
    /// CPU worker threads (0 when the GPU ran alone).
    pub threads: usize,
    /// The GPU adapter, when the GPU took part.
    pub adapter: Option<String>,
    /// Nonces hashed on the GPU.
    pub gpu_hashes: u64,
    /// GPU dispatches whose candidates overflowed their buffer (and were re-run, nothing lost).
    pub gpu_overflows: u64,
    /// Notes on the engines chosen.
    pub notes: Vec<String>,
}

/// Runs the job: opens the engines, searches, and reports. `progress` sees periodic updates (with
/// the time rolls so far; 0 over a fixed range).
///
/// # Errors
/// An unusable CPU implementation or a GPU asked for and not there ([`SearchError::Engines`]), or
/// the GPU failed during the search ([`SearchError::Gpu`]).
pub fn run(opts: &MineOptions, progress: Option<RollProgress<'_>>) -> Result<MineReport, SearchError> {
    let (header, target, start, threads) = (opts.header, opts.target, opts.start_nonce, opts.threads);
    let mut set = backend::open_search(opts.backend, &opts.cpu_impl, opts.adapter, opts.allow_software)?;
    let search = SearchOptions { threads, find_all: opts.all, ..Default::default() };

    let (report, solved, rolls): (SearchReport, Option<BlockHeader>, u32) = match opts.count {
        None if !opts.all => {
            let r =
                mine_rolling_time(&mut set.engines(), &header, target, start, opts.max_time_rolls, &search, progress)?;
            (r.search, r.header, r.time_rolls)
        }
        count => {
            let count = count.unwrap_or(NONCE_SPACE - start as u64);
            let job = Job::new(&header, target);
            let cb = progress.map(|p| move |pr: &Progress| p(pr, 0));
            let r = search_with(
                &mut set.engines(),
                &job,
                start,
                count,
                &search,
                cb.as_ref().map(|c| c as &dyn Fn(&Progress)),
            )?;
            let solved = r.solutions.first().map(|s| BlockHeader { nonce: s.nonce, ..header });
            (r, solved, 0)
        }
    };
    let first = report.solutions.first().copied();
    Ok(MineReport {
        found: first.is_some(),
        nonce: first.map(|s| s.nonce),
        hash: first.map(|s| s.hash.to_string()),
        header: solved.map(|h| hex::encode(h.to_bytes())),
        solutions: opts.all.then(|| report.solutions.clone()),
        target: target.to_be_hex(),
        hashes: report.hashes,
        seconds: report.elapsed.as_secs_f64(),
        hashes_per_second: report.rate(),
        time_rolls: rolls,
        backend: set.backend(),
        imp: set.cpu.as_ref().map(|(i, _)| *i),
        threads: if set.cpu.is_some() { threads } else { 0 },
        adapter: set.adapter(),
        gpu_hashes: report.gpu_hashes,
        gpu_overflows: report.gpu_overflows,
        notes: set.notes.clone(),
    })
}
