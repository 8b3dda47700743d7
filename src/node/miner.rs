//! The node's miner: one thread that hashes the chain thread's latest block template with the
//! CPU/GPU engine ([`crate::mine::search_with`]) and hands back solved blocks. Every new job (a
//! new tip, new transactions) cancels the one in progress.
//!
//! It never dates a block ahead of the clock: when the median-time-past rule asks for a time still
//! in the future (more than ~6 blocks found within one second), it waits for the clock. When the
//! nonce space of a template runs out it rolls the time forward one second.
//!
//! The chain thread's side is here too: building a template on the tip from the mempool
//! (`Node::template`, also used by the `generate` call) and handing it to the miner as a new job.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::{unix_now, Event, Node};
use crate::backend::{self, Backend, EngineSet};
use crate::ledger::block::LedgerBlock;
use crate::ledger::ids::AccountKey;
use crate::ledger::tx::TRANSFER_SIZE;
use crate::mine::{search_with, CancelToken, SearchOptions, NONCE_SPACE};
use crate::sha256::Job;

/// A template to mine.
pub struct MinerJob {
    /// Sequence number (a solution names the job it solves).
    pub id: u64,
    /// The block, nonce zero.
    pub block: LedgerBlock,
}

/// Shared counters the RPC reads.
#[derive(Default)]
pub struct MinerStats {
    /// Nonces hashed since start.
    pub hashes: AtomicU64,
    /// Blocks found.
    pub found: AtomicU64,
    /// Nanoseconds spent hashing (not waiting for a job or the clock).
    pub busy_ns: AtomicU64,
}

/// The chain thread's handle on the miner thread.
pub struct Miner {
    jobs: Sender<MinerJob>,
    cancel: Arc<Mutex<CancelToken>>,
    /// Counters.
    pub stats: Arc<MinerStats>,
    /// When it started.
    pub started: Instant,
    /// What hashes (`cpu`, `gpu`, `all`).
    pub backend: String,
    /// CPU worker threads.
    pub threads: usize,
}

fn now() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as u32).unwrap_or(0)
}

impl Miner {
    /// Opens the engines (an error when `backend` asks for a GPU there is none of) and starts the
    /// thread.
    pub fn start(backend: Backend, threads: usize, events: Sender<Event>) -> Result<Miner, String> {
        let (jobs_tx, jobs_rx) = crossbeam_channel::unbounded::<MinerJob>();
        let cancel = Arc::new(Mutex::new(CancelToken::new()));
        let stats = Arc::new(MinerStats::default());
        let (ready_tx, ready_rx) = crossbeam_channel::bounded::<Result<String, String>>(1);
        let (c2, s2) = (cancel.clone(), stats.clone());
        std::thread::Builder::new()
            .name("miner".into())
            .spawn(move || {
                let mut set = match backend::open_search(backend, "auto", None, false) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.0));
                        return;
                    }
                };
                for n in &set.notes {
                    tracing::info!("miner: {n}");
                }
                let desc = match set.backend() {
                    Backend::Cpu => "cpu",
                    Backend::Gpu => "gpu",
                    _ => "all",
                };
                let _ = ready_tx.send(Ok(desc.to_string()));
                run(&mut set, threads, jobs_rx, c2, s2, events);
            })
            .map_err(|e| format!("starting the miner thread: {e}"))?;
        let backend = ready_rx.recv().map_err(|_| "the miner thread ended".to_string())??;
        Ok(Miner { jobs: jobs_tx, cancel, stats, started: Instant::now(), backend, threads })
    }

    /// Replaces the current job.
    pub fn set_job(&self, job: MinerJob) {
        let mut c = self.cancel.lock().expect("miner lock");
        c.cancel();
        *c = CancelToken::new();
        let _ = self.jobs.send(job);
    }

    /// Hashes per second while hashing (waits for jobs and for the clock excluded).
    pub fn rate(&self) -> f64 {
        let busy = self.stats.busy_ns.load(Ordering::Relaxed) as f64 / 1e9;
        if busy <= 0.0 {
            return 0.0;
        }
        self.stats.hashes.load(Ordering::Relaxed) as f64 / busy
    }

    /// Stops the thread after its current chunk.
    pub fn stop(&self) {
        self.cancel.lock().expect("miner lock").cancel();
    }
}

fn run(
    set: &mut EngineSet,
    threads: usize,
    jobs: Receiver<MinerJob>,
    cancel: Arc<Mutex<CancelToken>>,
    stats: Arc<MinerStats>,
    events: Sender<Event>,
) {
    let mut pending: Option<MinerJob> = None;
    loop {
        let job = match pending.take() {
            Some(j) => j,
            None => match jobs.recv() {
                Ok(j) => j,
                Err(_) => return,
            },
        };
        // Only the newest job matters.
        let mut job = job;
        while let Ok(j) = jobs.try_recv() {
            job = j;
        }
        let token = cancel.lock().expect("miner lock").clone();
        let mut block = job.block;
        // Wait for the clock rather than date a block ahead of it.
        while block.header.time > now() && !token.is_cancelled() {
            std::thread::sleep(Duration::from_millis(20));
        }
        if token.is_cancelled() {
            continue;
        }
        let target = match block.header.bits.to_target() {
            Ok(t) => t,
            Err(_) => continue,
        };
        let mut solved = false;
        while !token.is_cancelled() {
            let j = Job::new(&block.header, target);
            let opts = SearchOptions {
                threads,
                cancel: token.clone(),
                progress_interval: Duration::from_millis(500),
                ..SearchOptions::default()
            };
            let last = AtomicU64::new(0);
            let progress = |p: &crate::mine::Progress| {
                let before = last.swap(p.hashes, Ordering::Relaxed);
                stats.hashes.fetch_add(p.hashes.saturating_sub(before), Ordering::Relaxed);
            };
            let t = Instant::now();
            let report = match search_with(&mut set.engines(), &j, 0, NONCE_SPACE, &opts, Some(&progress)) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!("miner: the GPU failed: {e}; mining stops");
                    return;
                }
            };
            stats.hashes.fetch_add(report.hashes.saturating_sub(last.load(Ordering::Relaxed)), Ordering::Relaxed);
            stats.busy_ns.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
            if let Some(s) = report.solutions.first() {
                block.header.nonce = s.nonce;
                stats.found.fetch_add(1, Ordering::Relaxed);
                solved = true;
                break;
            }
            if report.interrupted {
                break;
            }
            block.header.time += 1;
        }
        if solved {
            if events.send(Event::Mined { block: Box::new(block), job: job.id }).is_err() {
                return;
            }
            // Wait for the next job (the chain thread sends one for the new tip).
            match jobs.recv() {
                Ok(j) => pending = Some(j),
                Err(_) => return,
            }
        }
    }
}

impl Node {
    /// A block template on the tip: the mempool's best transfers, the coinbase paying `miner`,
    /// time = max(now, median time past + 1).
    pub(super) fn template(&mut self, miner: AccountKey) -> Result<LedgerBlock, String> {
        let max_transfers = (crate::ledger::block::MAX_LEDGER_BLOCK_BYTES - 1000) / TRANSFER_SIZE;
        let transfers = self.mempool.select(max_transfers);
        let time = (unix_now() as u32).max(self.chain.median_time_past() + 1);
        let f = self.chain.follower();
        let (tip, height, bits) = (f.tip, f.height + 1, f.next_bits());
        let params = self.params;
        let state = self.chain.follower_state_mut();
        match crate::mine::template(state, params, tip, height, time, bits, miner, transfers) {
            Ok(b) => Ok(b),
            Err(e) => {
                tracing::error!("template with mempool transfers failed ({e}); mining an empty block");
                crate::mine::template(state, params, tip, height, time, bits, miner, vec![]).map_err(|e| e.to_string())
            }
        }
    }

    pub(super) fn new_job(&mut self) {
        let Some(key) = self.miner_key else { return };
        if self.miner.is_none() && self.stratum.is_none() {
            return;
        }
        match self.template(key) {
            Ok(block) => {
                self.job += 1;
                let id = self.job;
                if let Some((source, _)) = &self.stratum {
                    source.publish(id, block.clone(), self.chain.median_time_past() + 1);
                }
                if let Some(m) = &self.miner {
                    m.set_job(MinerJob { id, block });
                }
            }
            Err(e) => tracing::error!("no block template: {e}"),
        }
    }
}
