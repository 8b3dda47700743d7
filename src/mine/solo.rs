//! Solo mining against a node: take a block template from a [`JobSource`] (a bitcoind's
//! `getblocktemplate`, [`crate::bitcoind::GbtSource`]), search it on the chosen engines, submit
//! what solves it, and move to the new template when the tip moves.
//!
//! # Never the same header twice
//! The extranonce in the coinbase is a run-wide 8-byte counter: every (template, extranonce) pair is
//! a new coinbase, so a new merkle root, and within one the nonce space is searched once. The time
//! field is set once per extranonce (the node's time, at least the template's `mintime`).
//!
//! # Switching templates
//! A watcher thread waits on [`JobSource::wait_for_change`] and cancels the running search when
//! the template changes (bitcoind's long poll answers on a new tip); the loop then takes the new one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::{search_with, CancelToken, Progress, SearchError, SearchOptions, NONCE_SPACE};
use crate::backend::{self, Backend};
use crate::sha256::{CpuImpl, Job};
use crate::stratum::job::{JobSource, Template};

/// Bytes of extranonce the solo miner reserves in the coinbase (a run-wide counter).
pub const EXTRANONCE_SIZE: usize = 8;

/// How a solo run mines.
#[derive(Clone, Debug)]
pub struct SoloOptions {
    /// Where to hash.
    pub backend: Backend,
    /// GPU adapter index.
    pub adapter: Option<usize>,
    /// CPU implementation name (`auto`, `scalar`, `shani`, `avx2`, `avx512`).
    pub cpu_impl: String,
    /// Let a software GPU adapter take part with `all`/`auto`.
    pub allow_software: bool,
    /// CPU worker threads (at least 1).
    pub threads: usize,
    /// Stop after this many blocks found (accepted or not); `None`: until cancelled.
    pub blocks: Option<u64>,
    /// Where to publish cgminer's API snapshot (`--api-listen`), about once a second.
    pub status: Option<std::sync::Arc<crate::mine::api::LiveStatus>>,
}

/// A block found and what the node said.
#[derive(Clone, Debug, Serialize)]
pub struct FoundBlock {
    /// Its height.
    pub height: u32,
    /// Its hash, display order.
    pub hash: String,
    /// Transactions besides the coinbase.
    pub transactions: usize,
    /// Whether the node accepted it.
    pub accepted: bool,
    /// The node's reason when it did not (`high-hash`, `bad-txnmrklroot`, `inconclusive`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a solo run did.
#[derive(Clone, Debug, Serialize)]
pub struct SoloReport {
    /// The template source (`bitcoind http://...`).
    pub source: String,
    /// Blocks found.
    pub blocks_found: u64,
    /// Of those, accepted by the node.
    pub blocks_accepted: u64,
    /// Of those, refused.
    pub blocks_rejected: u64,
    /// Each block found, in order.
    pub blocks: Vec<FoundBlock>,
    /// Templates mined on (distinct ids).
    pub templates: u64,
    /// Extranonces (coinbases) searched.
    pub extranonces: u64,
    /// Nonces hashed.
    pub hashes: u64,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Hashes per second.
    pub hashes_per_second: f64,
    /// What ran: `cpu`, `gpu` or `all`.
    pub backend: Backend,
    /// CPU implementation (none when the GPU ran alone).
    #[serde(rename = "impl")]
    pub imp: Option<CpuImpl>,
    /// CPU worker threads (0 when the GPU ran alone).
    pub threads: usize,
    /// The GPU adapter, when the GPU took part.
    pub adapter: Option<String>,
    /// Notes on the engines chosen.
    pub notes: Vec<String>,
}

/// Progress seen while mining.
#[derive(Clone, Copy, Debug)]
pub struct SoloProgress {
    /// The height being mined.
    pub height: u32,
    /// Blocks found and accepted so far.
    pub found: u64,
    /// Accepted so far.
    pub accepted: u64,
    /// Nonces hashed so far (all templates).
    pub hashes: u64,
    /// Since the start.
    pub elapsed: Duration,
}

/// Why a solo run stopped without a report.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SoloError {
    /// The engines could not open or the GPU failed.
    #[error(transparent)]
    Search(#[from] SearchError),
    /// The source gave no first template.
    #[error("{source_name}: no block template: {why}")]
    Source {
        /// The source.
        source_name: String,
        /// Why.
        why: String,
    },
}

fn unix_now() -> u32 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as u32).unwrap_or(0)
}

/// Mines on `source` until `opts.blocks` blocks are found or `cancel` is set. `progress` runs about
/// once a second while hashing. A template error after the first is retried every second (logged).
///
/// # Errors
/// Engines that cannot open or a GPU failure ([`SoloError::Search`]); no first template
/// ([`SoloError::Source`]).
pub fn run(
    source: &dyn JobSource,
    opts: &SoloOptions,
    cancel: &CancelToken,
    progress: Option<&(dyn Fn(&SoloProgress) + Sync)>,
) -> Result<SoloReport, SoloError> {
    let mut set = backend::open_search(opts.backend, &opts.cpu_impl, opts.adapter, opts.allow_software)
        .map_err(|e| SoloError::Search(e.into()))?;
    let t0 = Instant::now();
    let mut blocks = Vec::new();
    let (mut hashes, mut extranonce, mut templates, mut last_id) = (0u64, 0u64, 0u64, None);
    let want = opts.blocks.unwrap_or(u64::MAX);
    let mut first = true;
    let source_name = source.name();
    let kind = if set.cpu.is_some() { "CPU" } else { "GPU" };
    let device = set.cpu.as_ref().map(|(i, _)| i.name().to_string()).or(set.adapter()).unwrap_or_default();
    let api = std::sync::Mutex::new(ApiState::new(kind, device));
    while (blocks.len() as u64) < want && !cancel.is_cancelled() {
        let t = match source.template(EXTRANONCE_SIZE) {
            Ok(t) => t,
            Err(why) if first => return Err(SoloError::Source { source_name: source.name(), why }),
            Err(why) => {
                tracing::warn!(source = %source.name(), %why, "no template; retrying in 1 s");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        first = false;
        if last_id != Some(t.id) {
            templates += 1;
            last_id = Some(t.id);
            tracing::info!(height = t.height, txs = t.tx_count, id = t.id, "mining on a new template");
        }
        let target =
            t.bits.to_target().map_err(|e| SoloError::Source { source_name: source.name(), why: e.to_string() })?;
        let switch = CancelToken::new();
        let done = AtomicBool::new(false);
        let outcome = std::thread::scope(|s| {
            // The watcher: cancels the search when the template changes or the run is cancelled.
            s.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    if cancel.is_cancelled() || source.wait_for_change(&t, Duration::from_millis(25)) {
                        switch.cancel();
                        return;
                    }
                }
            });
            let r = mine_template(&mut set, &t, target, opts.threads, &switch, &mut extranonce, |h| {
                let accepted = blocks.iter().filter(|b: &&FoundBlock| b.accepted).count() as u64;
                let now = SoloProgress {
                    height: t.height,
                    found: blocks.len() as u64,
                    accepted,
                    hashes: hashes + h,
                    elapsed: t0.elapsed(),
                };
                if let Some(live) = &opts.status {
                    let mut api = api.lock().unwrap_or_else(|e| e.into_inner());
                    api.publish(live, &now, &t, templates, &source_name);
                }
                if let Some(p) = progress {
                    p(&now);
                }
            });
            done.store(true, Ordering::Relaxed);
            r
        })?;
        hashes += outcome.hashes;
        if let Some((header, en)) = outcome.solved {
            let hash = header.block_hash();
            let verdict = source.submit_block(&t, &header, &t.coinbase(&en));
            ::metrics::counter!(crate::metrics::MINE_BLOCKS_FOUND).increment(1);
            match &verdict {
                Ok(()) => tracing::info!(height = t.height, %hash, "block accepted"),
                Err(why) => tracing::warn!(height = t.height, %hash, %why, "block refused"),
            }
            blocks.push(FoundBlock {
                height: t.height,
                hash: hash.to_string(),
                transactions: t.tx_count,
                accepted: verdict.is_ok(),
                reason: verdict.err(),
            });
            if let Some(live) = &opts.status {
                // Blocks come faster than progress reports on an easy chain: the API sees each.
                let accepted = blocks.iter().filter(|b| b.accepted).count() as u64;
                let now = SoloProgress {
                    height: t.height,
                    found: blocks.len() as u64,
                    accepted,
                    hashes,
                    elapsed: t0.elapsed(),
                };
                api.lock().unwrap_or_else(|e| e.into_inner()).publish(live, &now, &t, templates, &source_name);
            }
            // The accepted block moved the tip: wait briefly for the source to see it, so the next
            // template builds on it rather than on the old parent.
            source.wait_for_change(&t, Duration::from_secs(2));
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let accepted = blocks.iter().filter(|b| b.accepted).count() as u64;
    Ok(SoloReport {
        source: source.name(),
        blocks_found: blocks.len() as u64,
        blocks_accepted: accepted,
        blocks_rejected: blocks.len() as u64 - accepted,
        blocks,
        templates,
        extranonces: extranonce,
        hashes,
        seconds: elapsed,
        hashes_per_second: hashes as f64 / elapsed.max(1e-9),
        backend: set.backend(),
        imp: set.cpu.as_ref().map(|(i, _)| *i),
        threads: if set.cpu.is_some() { opts.threads } else { 0 },
        adapter: set.adapter(),
        notes: set.notes.clone(),
    })
}

/// cgminer's API view of a solo run (`--api-listen`): one device (the engines together), one
/// "pool" (the node, getblocktemplate), blocks accepted and refused as its shares.
struct ApiState {
    device: crate::mine::api::DeviceStatus,
    /// (when, hashes) over the last 5 s, for `MHS 5s`.
    samples: std::collections::VecDeque<(Instant, u64)>,
    t0: Instant,
    /// Blocks accepted so far, and their difficulties summed (cgminer's `Difficulty Accepted`).
    accepted: u64,
    difficulty_accepted: f64,
}

impl ApiState {
    fn new(kind: &'static str, name: String) -> ApiState {
        let device = crate::mine::api::DeviceStatus { kind, index: 0, name, ..Default::default() };
        ApiState { device, samples: Default::default(), t0: Instant::now(), accepted: 0, difficulty_accepted: 0.0 }
    }

    fn publish(
        &mut self,
        live: &crate::mine::api::LiveStatus,
        p: &SoloProgress,
        t: &Template,
        templates: u64,
        source: &str,
    ) {
        let now = Instant::now();
        self.samples.push_back((now, p.hashes));
        while self.samples.len() > 2 && now.duration_since(self.samples[1].0) >= Duration::from_secs(5) {
            self.samples.pop_front();
        }
        let (at0, h0) = self.samples.front().copied().unwrap_or((self.t0, 0));
        let window = now.duration_since(at0).as_secs_f64();
        let d = &mut self.device;
        d.hashes = p.hashes;
        d.rate_5s = if window > 0.0 { p.hashes.saturating_sub(h0) as f64 / window } else { 0.0 };
        d.accepted = p.accepted;
        d.rejected = p.found - p.accepted;
        let difficulty = t.bits.to_target().map(|x| x.difficulty()).unwrap_or(0.0);
        // Published after every block, so new acceptances are this template's.
        self.difficulty_accepted += p.accepted.saturating_sub(self.accepted) as f64 * difficulty;
        self.accepted = p.accepted;
        d.difficulty_accepted = self.difficulty_accepted;
        let pool = crate::mine::api::PoolStatus {
            url: crate::httpd::without_userinfo(source),
            user: "solo".into(),
            active: true,
            gbt: true,
            getworks: templates,
            accepted: p.accepted,
            rejected: p.found - p.accepted,
            difficulty,
            difficulty_accepted: self.difficulty_accepted,
            ..Default::default()
        };
        live.publish(crate::mine::api::Snapshot {
            elapsed: self.t0.elapsed().as_secs_f64(),
            devices: vec![self.device.clone()],
            pools: vec![pool],
            found_blocks: p.found,
            discarded: 0,
            last_getwork: unix_now() as u64,
        });
    }
}

/// What searching one template gave.
struct Outcome {
    /// The solved header and its extranonce.
    solved: Option<(crate::primitives::BlockHeader, Vec<u8>)>,
    hashes: u64,
}

/// Searches `t` extranonce after extranonce (from the run-wide counter `extranonce`) until a
/// solution, or `switch` is set.
fn mine_template(
    set: &mut backend::EngineSet,
    t: &Template,
    target: crate::primitives::Target,
    threads: usize,
    switch: &CancelToken,
    extranonce: &mut u64,
    progress: impl Fn(u64),
) -> Result<Outcome, SoloError> {
    let hashes = AtomicU64::new(0);
    let opts = SearchOptions { threads, find_all: false, cancel: switch.clone(), ..Default::default() };
    while !switch.is_cancelled() {
        let en = extranonce.to_le_bytes().to_vec();
        *extranonce += 1;
        let header = t.header(&en, unix_now().max(t.mintime), 0);
        let job = Job::new(&header, target);
        let base = hashes.load(Ordering::Relaxed);
        let cb = |p: &Progress| progress(base + p.hashes);
        let r = search_with(&mut set.engines(), &job, 0, NONCE_SPACE, &opts, Some(&cb)).map_err(SearchError::Gpu)?;
        hashes.fetch_add(r.hashes, Ordering::Relaxed);
        if let Some(s) = r.solutions.first() {
            let solved = crate::primitives::BlockHeader { nonce: s.nonce, ..header };
            return Ok(Outcome { solved: Some((solved, en)), hashes: hashes.into_inner() });
        }
    }
    Ok(Outcome { solved: None, hashes: hashes.into_inner() })
}
