//! Multi-threaded nonce search over a CPU backend.
//!
//! Worker threads claim chunks of the nonce range from one atomic cursor, scan them with a
//! [`NonceScanner`], and confirm each early-exit candidate with the full 256-bit check. Between
//! chunks a worker looks at the cancel flag and the deadline. Each worker sizes its chunks from its
//! own measured speed so that one takes about [`CHUNK_TARGET`] (a few milliseconds whether the
//! backend does 2 M or 30 M nonces per second, or shares its core), so a search stops within a few
//! milliseconds of being cancelled.
//!
//! In first-solution mode the search still returns the *lowest* solving nonce of the range, whatever
//! the thread timing: a solution at offset `o` lowers the claim limit to `o`, so no chunk above it is
//! started, while every chunk below it runs to the end. In all-solutions mode (`find_all`, what a
//! pool's share target needs) every chunk is scanned and every solution is returned, sorted.
//!
//! # When the nonce space runs out
//! A header has 2^32 nonces. [`mine_rolling_time`] then **rolls the time field**: it adds one second
//! to the header's time and searches the nonce space again, at most `max_time_rolls` times (default
//! 7,200: Bitcoin rejects a header more than two hours ahead of the network's time, so a miner cannot
//! roll further than that). Each roll is a new job (a new midstate is not needed, as the time is in the
//! second block, but the precomputed rounds change). Rolling an extranonce in the coinbase changes the
//! merkle root instead; that needs a block template and belongs to the node's miner.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::gpu::{GpuError, GpuSearch};
use crate::primitives::{BlockHash, BlockHeader, Target};
use crate::sha256::{Job, NonceScanner};

/// How long one claimed chunk should take: claiming then costs nothing, and cancellation is prompt.
pub const CHUNK_TARGET: Duration = Duration::from_millis(4);

/// The first chunk a worker claims, before it has measured its speed.
pub const FIRST_CHUNK: u64 = 4096;

/// Bounds on a worker's chunk size.
pub const CHUNK_RANGE: (u64, u64) = (1024, 1 << 20);

/// The next chunk size for a worker that just scanned `n` nonces in `took`.
fn next_chunk(n: u64, took: Duration) -> u64 {
    let per_sec = n as f64 / took.as_secs_f64().max(1e-6);
    let want = (per_sec * CHUNK_TARGET.as_secs_f64()) as u64;
    want.clamp(CHUNK_RANGE.0, CHUNK_RANGE.1) & !63
}

/// Number of nonces in the 32-bit nonce space.
pub const NONCE_SPACE: u64 = 1 << 32;

/// A flag that stops a running search; clones share the flag.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A new, unset token.
    pub fn new() -> Self {
        Self::default()
    }
    /// Asks every search holding this token to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    /// Whether cancellation was asked for.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// How to search.
#[derive(Clone, Debug)]
pub struct SearchOptions {
    /// Worker threads (at least 1).
    pub threads: usize,
    /// Report every solution in the range instead of stopping at the first.
    pub find_all: bool,
    /// Stop at this instant even if the range is not done (benchmarks).
    pub deadline: Option<Instant>,
    /// Cancellation flag.
    pub cancel: CancelToken,
    /// How often the progress callback runs.
    pub progress_interval: Duration,
    /// Called with each solution the moment a worker confirms it, before the search returns (a
    /// pool client submits a share as it is found, not when its segment ends). In first-solution
    /// mode it may see more solutions than the one returned.
    pub on_solution: Option<OnSolution>,
}

/// A callback for [`SearchOptions::on_solution`]; runs on the worker thread that found the solution.
#[derive(Clone)]
pub struct OnSolution(pub std::sync::Arc<dyn Fn(Solution) + Send + Sync>);

impl std::fmt::Debug for OnSolution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnSolution(..)")
    }
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            threads: default_threads(),
            find_all: false,
            deadline: None,
            cancel: CancelToken::new(),
            progress_interval: Duration::from_secs(1),
            on_solution: None,
        }
    }
}

/// The number of hardware threads, or 1.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// A nonce whose hash meets the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Solution {
    /// The nonce.
    pub nonce: u32,
    /// The block hash with that nonce (display order when printed).
    #[serde(serialize_with = "ser_display")]
    pub hash: BlockHash,
}

fn ser_display<S: serde::Serializer>(h: &BlockHash, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(h)
}

/// What a search did.
#[derive(Clone, Debug, Default)]
pub struct SearchReport {
    /// Solutions found, sorted by nonce (at most one unless `find_all`).
    pub solutions: Vec<Solution>,
    /// Nonces hashed, counting completed chunks only.
    pub hashes: u64,
    /// Of those, hashed on the GPU.
    pub gpu_hashes: u64,
    /// GPU dispatches whose candidates overflowed their buffer and were re-run.
    pub gpu_overflows: u64,
    /// Early-exit candidates re-checked with the full compare.
    pub candidates: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// True when it stopped on cancellation or the deadline before covering the range.
    pub interrupted: bool,
}

impl SearchReport {
    /// Hashes per second over the whole search.
    pub fn rate(&self) -> f64 {
        self.hashes as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Progress seen by a callback while a search runs.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Nonces hashed so far.
    pub hashes: u64,
    /// Nonces in the range.
    pub total: u64,
    /// Time since the start.
    pub elapsed: Duration,
}

/// What hashes: CPU threads with one implementation, the GPU, or both on the same range.
pub struct Engines<'a> {
    /// The CPU implementation (worker count is `SearchOptions::threads`); `None` for GPU only.
    pub cpu: Option<&'a dyn NonceScanner>,
    /// The GPU search; `None` for CPU only.
    pub gpu: Option<&'a mut GpuSearch>,
}

impl<'a> Engines<'a> {
    /// CPU threads only.
    pub fn cpu(scanner: &'a dyn NonceScanner) -> Self {
        Engines { cpu: Some(scanner), gpu: None }
    }
}

/// Searches the nonces `start .. start + count` (which must not pass 2^32) of `job` on CPU threads.
///
/// `progress`, if given, runs on the calling thread every `progress_interval` while workers run.
pub fn search(
    scanner: &dyn NonceScanner,
    job: &Job,
    start: u32,
    count: u64,
    opts: &SearchOptions,
    progress: Option<&dyn Fn(&Progress)>,
) -> SearchReport {
    search_with(&mut Engines::cpu(scanner), job, start, count, opts, progress).expect("a CPU-only search cannot fail")
}

/// Searches `start .. start + count` with every engine in `engines` at once: they claim chunks of
/// the same range from one cursor (the GPU in dispatch-sized chunks, several in flight), so the
/// nonce space is split between them by their speed and the total rate is the sum of theirs.
/// A GPU failure stops the search with the error rather than losing the GPU's claimed ranges.
pub fn search_with(
    engines: &mut Engines<'_>,
    job: &Job,
    start: u32,
    count: u64,
    opts: &SearchOptions,
    progress: Option<&dyn Fn(&Progress)>,
) -> Result<SearchReport, GpuError> {
    assert!(start as u64 + count <= NONCE_SPACE, "range passes the end of the nonce space");
    let t0 = Instant::now();
    let cursor = AtomicU64::new(0);
    let limit = AtomicU64::new(count);
    let hashes = AtomicU64::new(0);
    let gpu_hashes = AtomicU64::new(0);
    let candidates = AtomicU64::new(0);
    let interrupted = AtomicBool::new(false);
    let cpu_threads = if engines.cpu.is_some() { opts.threads.max(1) } else { 0 };
    let running = AtomicU64::new(cpu_threads as u64 + engines.gpu.is_some() as u64);
    let solutions = Mutex::new(Vec::new());
    let gpu_error = Mutex::new(None);
    let overflows = AtomicU64::new(0);

    // Prometheus counters (crate::metrics), resolved once per search and added to per chunk or
    // dispatch: never per hash. Without a recorder they are no-ops.
    let cpu_counter = engines.cpu.map(
        |s| ::metrics::counter!(crate::metrics::MINE_HASHES, "backend" => "cpu", "implementation" => s.kind().name()),
    );
    let gpu_counters = engines.gpu.is_some().then(|| {
        (
            ::metrics::counter!(crate::metrics::MINE_HASHES, "backend" => "gpu", "implementation" => "wgsl"),
            ::metrics::counter!(crate::metrics::MINE_GPU_OVERFLOW_RERUNS),
        )
    });
    let stop_now = || opts.cancel.is_cancelled() || opts.deadline.is_some_and(|d| Instant::now() >= d);
    // Confirms candidates with the full compare; in first-solution mode a solution lowers the limit.
    let confirm = |found: &[u32]| {
        candidates.fetch_add(found.len() as u64, Ordering::Relaxed);
        for &nonce in found {
            if let Some(hash) = job.check(nonce) {
                solutions.lock().expect("no panics while held").push(Solution { nonce, hash });
                if let Some(f) = &opts.on_solution {
                    (f.0)(Solution { nonce, hash });
                }
                if !opts.find_all {
                    limit.fetch_min(nonce.wrapping_sub(start) as u64, Ordering::Relaxed);
                    break;
                }
            }
        }
    };

    std::thread::scope(|s| {
        if let Some(scanner) = engines.cpu {
            for _ in 0..cpu_threads {
                s.spawn(|| {
                    let counter = cpu_counter.clone().expect("a CPU engine");
                    let mut found = Vec::new();
                    let mut chunk = FIRST_CHUNK;
                    loop {
                        if stop_now() {
                            interrupted.store(true, Ordering::Relaxed);
                            break;
                        }
                        let off = cursor.fetch_add(chunk, Ordering::Relaxed);
                        let lim = limit.load(Ordering::Relaxed);
                        if off >= lim {
                            break;
                        }
                        let n = chunk.min(lim - off) as u32;
                        found.clear();
                        let t = Instant::now();
                        scanner.scan(job, start.wrapping_add(off as u32), n, &mut found);
                        chunk = next_chunk(n as u64, t.elapsed());
                        hashes.fetch_add(n as u64, Ordering::Relaxed);
                        counter.increment(n as u64);
                        confirm(&found);
                    }
                    running.fetch_sub(1, Ordering::Release);
                });
            }
        }
        if let Some(gpu) = engines.gpu.as_deref_mut() {
            let (cursor, limit, hashes, gpu_hashes, interrupted, running, gpu_error, overflows, confirm, stop_now) = (
                &cursor,
                &limit,
                &hashes,
                &gpu_hashes,
                &interrupted,
                &running,
                &gpu_error,
                &overflows,
                &confirm,
                &stop_now,
            );
            s.spawn(move || {
                let result = (|| -> Result<(), GpuError> {
                    gpu.set_job(job);
                    let mut claiming = true;
                    loop {
                        while claiming && gpu.has_free_slot() {
                            if stop_now() {
                                interrupted.store(true, Ordering::Relaxed);
                                claiming = false;
                                break;
                            }
                            let size = gpu.chunk() as u64;
                            let off = cursor.fetch_add(size, Ordering::Relaxed);
                            let lim = limit.load(Ordering::Relaxed);
                            if off >= lim {
                                claiming = false;
                                break;
                            }
                            gpu.submit(start.wrapping_add(off as u32), size.min(lim - off) as u32)?;
                        }
                        if gpu.in_flight() == 0 {
                            return Ok(());
                        }
                        let d = gpu.wait_oldest()?;
                        hashes.fetch_add(d.count as u64, Ordering::Relaxed);
                        gpu_hashes.fetch_add(d.count as u64, Ordering::Relaxed);
                        overflows.fetch_add(d.overflowed as u64, Ordering::Relaxed);
                        if let Some((hashed, reruns)) = &gpu_counters {
                            hashed.increment(d.count as u64);
                            reruns.increment(d.overflowed as u64);
                        }
                        confirm(&d.candidates);
                    }
                })();
                if let Err(e) = result {
                    let _ = gpu.drain();
                    *gpu_error.lock().expect("no panics while held") = Some(e);
                    // Stop everyone: the GPU's claimed ranges are not done.
                    limit.store(0, Ordering::Relaxed);
                }
                running.fetch_sub(1, Ordering::Release);
            });
        }
        if let Some(cb) = progress {
            let mut next = opts.progress_interval;
            let (mut last_at, mut last_hashes) = (t0, 0u64);
            while running.load(Ordering::Acquire) > 0 {
                std::thread::sleep(Duration::from_millis(10));
                if t0.elapsed() >= next {
                    next += opts.progress_interval;
                    let now_hashes = hashes.load(Ordering::Relaxed);
                    let rate =
                        now_hashes.saturating_sub(last_hashes) as f64 / last_at.elapsed().as_secs_f64().max(1e-9);
                    (last_at, last_hashes) = (Instant::now(), now_hashes);
                    ::metrics::gauge!(crate::metrics::MINE_HASH_RATE).set(rate);
                    cb(&Progress { hashes: hashes.load(Ordering::Relaxed), total: count, elapsed: t0.elapsed() });
                }
            }
        }
    });

    if let Some(e) = gpu_error.into_inner().expect("workers finished") {
        return Err(e);
    }
    let mut solutions = solutions.into_inner().expect("workers finished");
    solutions.sort_by_key(|s| s.nonce.wrapping_sub(start));
    if !opts.find_all {
        solutions.truncate(1);
    }
    let interrupted =
        interrupted.load(Ordering::Relaxed) && hashes.load(Ordering::Relaxed) < limit.load(Ordering::Relaxed);
    Ok(SearchReport {
        solutions,
        hashes: hashes.into_inner(),
        gpu_hashes: gpu_hashes.into_inner(),
        gpu_overflows: overflows.into_inner(),
        candidates: candidates.into_inner(),
        elapsed: t0.elapsed(),
        interrupted,
    })
}

/// A progress callback that also sees how many times the time field was rolled.
pub type RollProgress<'a> = &'a dyn Fn(&Progress, u32);

/// The result of [`mine_rolling_time`].
#[derive(Clone, Debug)]
pub struct RollingReport {
    /// The solved header (its time possibly rolled), if a solution was found.
    pub header: Option<BlockHeader>,
    /// Every nonce range searched, summed.
    pub search: SearchReport,
    /// How many times the time field was rolled.
    pub time_rolls: u32,
}

/// Searches `header` from `start_nonce` to the end of the nonce space, then rolls the time field
/// forward one second at a time (at most `max_time_rolls` times), searching the whole nonce space
/// each time, until a solution is found, the rolls run out, the search is cancelled, or the time
/// field reaches `0xffffffff` (it never wraps over to 0, a time decades in the past).
pub fn mine_rolling_time(
    engines: &mut Engines<'_>,
    header: &BlockHeader,
    target: Target,
    start_nonce: u32,
    max_time_rolls: u32,
    opts: &SearchOptions,
    progress: Option<RollProgress<'_>>,
) -> Result<RollingReport, GpuError> {
    let mut h = *header;
    let mut total = SearchReport::default();
    let mut start = start_nonce;
    let t0 = Instant::now();
    for roll in 0..=max_time_rolls {
        let job = Job::new(&h, target);
        let cb = progress.map(|p| move |pr: &Progress| p(pr, roll));
        let r = search_with(
            engines,
            &job,
            start,
            NONCE_SPACE - start as u64,
            opts,
            cb.as_ref().map(|c| c as &dyn Fn(&Progress)),
        )?;
        total.hashes += r.hashes;
        total.gpu_hashes += r.gpu_hashes;
        total.gpu_overflows += r.gpu_overflows;
        total.candidates += r.candidates;
        total.interrupted = r.interrupted;
        if let Some(sol) = r.solutions.first() {
            total.solutions = vec![*sol];
            h.nonce = sol.nonce;
            total.elapsed = t0.elapsed();
            return Ok(RollingReport { header: Some(h), search: total, time_rolls: roll });
        }
        if r.interrupted || roll == max_time_rolls || h.time == u32::MAX {
            total.elapsed = t0.elapsed();
            return Ok(RollingReport { header: None, search: total, time_rolls: roll });
        }
        h.time += 1;
        start = 0;
    }
    unreachable!("the loop returns on its last iteration")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::U256;
    use crate::sha256::CpuImpl;

    fn easy_job(seed: u8, top: u32) -> Job {
        let mut h = [seed; 80];
        h[0] = 7;
        let mut t = [0xffu8; 32];
        t[..4].copy_from_slice(&top.to_be_bytes());
        Job::from_bytes(h, Target(U256::from_be_bytes(t)))
    }

    fn brute_force(job: &Job, start: u32, count: u64) -> Vec<u32> {
        (0..count).map(|i| start + i as u32).filter(|&n| job.check(n).is_some()).collect()
    }

    #[test]
    fn find_all_returns_exactly_the_reference_set_for_any_thread_count() {
        let job = easy_job(3, 0x0010_0000); // about 1 in 4096 nonces
        let (start, count) = (1_000_000u32, 300_000u64);
        let want = brute_force(&job, start, count);
        assert!(want.len() > 30);
        for imp in CpuImpl::available() {
            let sc = imp.scanner().unwrap();
            for threads in [1, 2, 3] {
                let opts = SearchOptions { threads, find_all: true, ..Default::default() };
                let r = search(&*sc, &job, start, count, &opts, None);
                let got: Vec<u32> = r.solutions.iter().map(|s| s.nonce).collect();
                assert_eq!(got, want, "{imp} x{threads}");
                assert_eq!(r.hashes, count);
                assert!(!r.interrupted);
                for s in &r.solutions {
                    assert_eq!(s.hash, job.hash(s.nonce));
                }
            }
        }
    }

    #[test]
    fn first_mode_returns_the_lowest_solution() {
        let job = easy_job(5, 0x0100_0000);
        let want = brute_force(&job, 0, 400_000);
        for threads in [1, 2, 4] {
            let opts = SearchOptions { threads, ..Default::default() };
            let sc = CpuImpl::detect().scanner().unwrap();
            let r = search(&*sc, &job, 0, 400_000, &opts, None);
            assert_eq!(r.solutions.len(), 1);
            assert_eq!(r.solutions[0].nonce, want[0], "x{threads}");
        }
    }

    #[test]
    fn range_ending_at_the_top_of_the_nonce_space() {
        let job = easy_job(9, 0x0200_0000);
        let start = u32::MAX - 199_999;
        let want = brute_force(&job, start, 200_000);
        let sc = CpuImpl::detect().scanner().unwrap();
        let opts = SearchOptions { threads: 2, find_all: true, ..Default::default() };
        let r = search(&*sc, &job, start, 200_000, &opts, None);
        assert_eq!(r.solutions.iter().map(|s| s.nonce).collect::<Vec<_>>(), want);
        assert_eq!(r.hashes, 200_000);
    }

    #[test]
    fn cancellation_is_prompt_on_every_impl() {
        // An impossible target and the whole nonce space: only cancellation ends it.
        let job = Job::from_bytes([1; 80], Target(U256::ZERO));
        for imp in CpuImpl::available() {
            let sc = imp.scanner().unwrap();
            let opts = SearchOptions { threads: 2, ..Default::default() };
            let cancel = opts.cancel.clone();
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::scope(|s| {
                s.spawn(|| {
                    let r = search(&*sc, &job, 0, NONCE_SPACE, &opts, None);
                    tx.send((Instant::now(), r)).unwrap();
                });
                std::thread::sleep(Duration::from_millis(200));
                let at = Instant::now();
                cancel.cancel();
                let (done, r) = rx.recv().unwrap();
                let latency = done.duration_since(at);
                eprintln!("{imp}: stopped {latency:?} after cancel");
                assert!(latency < Duration::from_millis(50), "{imp}: {latency:?}");
                assert!(r.interrupted);
                assert!(r.hashes > 0);
            });
        }
    }

    #[test]
    fn deadline_stops_a_search() {
        let job = Job::from_bytes([2; 80], Target(U256::ZERO));
        let sc = CpuImpl::detect().scanner().unwrap();
        let opts = SearchOptions {
            threads: 1,
            deadline: Some(Instant::now() + Duration::from_millis(100)),
            ..Default::default()
        };
        let r = search(&*sc, &job, 0, NONCE_SPACE, &opts, None);
        assert!(r.interrupted);
        assert!(r.elapsed < Duration::from_millis(200));
    }

    #[test]
    fn time_rolls_when_the_nonce_space_is_exhausted() {
        // Start near the top of the nonce space with a target that no nonce there meets, so the
        // search must roll the time and find the lowest solution of the next second.
        let mut header = BlockHeader::from_bytes(&[4u8; 80]).unwrap();
        header.time = 1_700_000_000;
        let target = Target(U256::ONE.shl_bits(256 - 14).overflowing_sub(U256::ONE).0); // 1 in 2^14
        let start = u32::MAX - 100;
        let first = Job::new(&header, target);
        assert!(brute_force(&first, start, 101).is_empty(), "pick another header");
        let sc = CpuImpl::detect().scanner().unwrap();
        let opts = SearchOptions { threads: 2, ..Default::default() };
        let r = mine_rolling_time(&mut Engines::cpu(&*sc), &header, target, start, 3, &opts, None).unwrap();
        let solved = r.header.expect("found after one roll");
        assert_eq!(r.time_rolls, 1);
        assert_eq!(solved.time, header.time + 1);
        let mut rolled = header;
        rolled.time += 1;
        let want = brute_force(&Job::new(&rolled, target), 0, 100_000)[0];
        assert_eq!(solved.nonce, want);
        assert!(target.is_met_by(&solved.block_hash()));
    }

    #[test]
    fn time_rolling_stops_at_the_last_second_instead_of_wrapping() {
        // Issue 12, fault 9: the time field used to roll from 0xffffffff over to 0.
        let mut header = BlockHeader::from_bytes(&[4u8; 80]).unwrap();
        header.time = u32::MAX;
        let target = Target(U256::ONE.shl_bits(256 - 14).overflowing_sub(U256::ONE).0); // 1 in 2^14
        let start = u32::MAX - 100;
        assert!(brute_force(&Job::new(&header, target), start, 101).is_empty(), "pick another header");
        let sc = CpuImpl::detect().scanner().unwrap();
        let opts = SearchOptions { threads: 2, ..Default::default() };
        let r = mine_rolling_time(&mut Engines::cpu(&*sc), &header, target, start, 3, &opts, None).unwrap();
        assert_eq!(r.time_rolls, 0, "rolled past the last second");
        assert!(r.header.is_none(), "found a header dated after a wrap: {:?}", r.header.map(|h| h.time));
        assert_eq!(r.search.hashes, 101);
    }
}
