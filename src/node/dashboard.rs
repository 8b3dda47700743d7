//! What `--dashboard` shows (issue 16; the page and its server: [`crate::dashboard`]): the chain
//! thread answers [`Event::Dashboard`](super::Event::Dashboard) with one JSON snapshot of its own
//! state, so the dashboard reads the node the way RPC does (through the event queue, never a lock
//! on the chain) and changes nothing.
//!
//! The snapshot's shape (docs/METRICS.md, "The dashboard's data"):
//! `{"time", "uptime_s", "chain": {...}, "hashrate": {"network", "local", "pool"}, "samples": [...],
//! "blocks": [...],
//! "peers": [...], "mempool": {...}, "reorgs": [...], "bans": [...], "mining": {...}, "pool":
//! {...} | null}`. Times are unix seconds, rates hashes per second, sizes bytes.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use super::{unix_now, Node};
use crate::chain::TipChange;
use crate::primitives::BlockHash;
use crate::stratum::dashboard::rates_sample;

/// Blocks in the snapshot's `blocks` (the charts of block intervals and difficulty).
pub const DASHBOARD_BLOCKS: u32 = 300;
/// Reorg events kept (newest first).
pub const DASHBOARD_REORGS: usize = 50;
/// Blocks over which the network hash rate is estimated (Bitcoin Core's `getnetworkhashps`
/// default, 120).
pub const HASHRATE_WINDOW: u32 = 120;

/// What the node keeps for its dashboard between snapshots.
#[derive(Default)]
pub(super) struct DashboardState {
    /// Reorg events, newest first, at most [`DASHBOARD_REORGS`].
    pub(super) reorgs: VecDeque<Value>,
    /// Transaction counts of recent blocks, filled as blocks connect (or read from the store once).
    pub(super) tx_counts: HashMap<BlockHash, usize>,
    /// When the node started.
    pub(super) started: i64,
    /// Hash-rate samples (`stratum::dashboard::rates_sample`), the last hour.
    pub(super) samples: crate::dashboard::Samples,
}

impl Node {
    /// Notes a tip change for the dashboard: the connected blocks' transaction counts, and a reorg
    /// event when blocks were disconnected.
    pub(super) fn note_tip_change_for_dashboard(&mut self, change: &TipChange) {
        for b in &change.connected {
            self.dashboard.tx_counts.insert(b.header.block_hash(), b.txs.len());
        }
        if !change.disconnected.is_empty() {
            let old_tip = change.disconnected.first().map(|b| b.header.block_hash().to_string());
            self.dashboard.reorgs.push_front(json!({
                "time": unix_now(),
                "height": self.chain.height(),
                "fork_height": (self.chain.height() as usize).saturating_sub(change.connected.len()),
                "depth": change.disconnected.len(),
                "connected": change.connected.len(),
                "old_tip": old_tip,
                "new_tip": self.chain.tip().to_string(),
            }));
            self.dashboard.reorgs.truncate(DASHBOARD_REORGS);
        }
        // Bounded: only the blocks a snapshot can show are worth keeping.
        if self.dashboard.tx_counts.len() > 4 * DASHBOARD_BLOCKS as usize {
            let low = self.chain.height().saturating_sub(DASHBOARD_BLOCKS);
            let keep: std::collections::HashSet<BlockHash> =
                (low..=self.chain.height()).filter_map(|h| self.chain.hash_at(h)).collect();
            self.dashboard.tx_counts.retain(|h, _| keep.contains(h));
        }
    }

    /// Takes a hash-rate sample when one is due (from `tick`; only with `--dashboard`).
    pub(super) fn sample_for_dashboard(&mut self) {
        if self.cfg.dashboard.is_none() || !self.dashboard.samples.due() {
            return;
        }
        let pool = self.stratum.as_ref().map(|(_, s)| s.stats());
        let sample = rates_sample(self.network_hashrate().0, self.miner.as_ref().map(|m| m.rate()), pool.as_ref());
        self.dashboard.samples.push(sample);
    }

    /// The network's estimated hash rate over the last [`HASHRATE_WINDOW`] blocks, as Bitcoin
    /// Core's `getnetworkhashps` estimates it (work between the window's ends over the time between
    /// them), except that the window never starts at genesis: a genesis block dated long before the
    /// chain started would make the span, and so the estimate, meaningless. `None` below two blocks
    /// or when the times do not increase; with the number of blocks spanned.
    fn network_hashrate(&self) -> (Option<f64>, u32) {
        let height = self.chain.height();
        let start = height.saturating_sub(HASHRATE_WINDOW).max(1).min(height);
        let entry = |h: u32| self.chain.hash_at(h).and_then(|h| self.chain.entry(&h).copied());
        let rate = entry(start).zip(entry(height)).and_then(|(a, b)| {
            let span = b.header.time as i64 - a.header.time as i64;
            (height > start && span > 0).then(|| (b.chainwork.to_f64() - a.chainwork.to_f64()) / span as f64)
        });
        (rate, height - start)
    }

    /// The transaction count of main-chain block `hash`: remembered, else read from the store once
    /// (`None` if the store cannot give it).
    fn tx_count(&mut self, hash: &BlockHash) -> Option<usize> {
        if let Some(n) = self.dashboard.tx_counts.get(hash) {
            return Some(*n);
        }
        let n = self.chain.block(hash).ok().flatten()?.txs.len();
        self.dashboard.tx_counts.insert(*hash, n);
        Some(n)
    }

    /// The dashboard's snapshot now (the module doc gives its shape).
    pub(super) fn dashboard_snapshot(&mut self) -> Value {
        let now = unix_now();
        let height = self.chain.height();
        let tip = self.chain.tip();
        let tip_entry = *self.chain.entry(&tip).expect("tip indexed");
        let headers = self.chain.entry(&self.chain.best_header()).map(|e| e.height).unwrap_or(height);
        // The last blocks, oldest first, with the interval from each block's parent.
        let low = height.saturating_sub(DASHBOARD_BLOCKS - 1);
        let mut blocks = Vec::with_capacity((height - low + 1) as usize);
        let mut prev_time = low
            .checked_sub(1)
            .and_then(|h| self.chain.hash_at(h))
            .and_then(|h| self.chain.entry(&h))
            .map(|e| e.header.time);
        for h in low..=height {
            let Some(hash) = self.chain.hash_at(h) else { continue };
            let Some(e) = self.chain.entry(&hash).copied() else { continue };
            let txs = self.tx_count(&hash);
            blocks.push(json!({
                "height": h,
                "hash": hash.to_string(),
                "time": e.header.time,
                "interval": prev_time.map(|t| e.header.time as i64 - t as i64),
                "difficulty": self.chain.difficulty(e.header.bits),
                "txs": txs,
            }));
            prev_time = Some(e.header.time);
        }
        let (network_hashrate, window_blocks) = self.network_hashrate();
        let mut peers: Vec<(u64, Value)> = self
            .peers
            .iter()
            .map(|(id, p)| {
                // The best block it is known to have (it announced or sent it, or its headers),
                // else the height it said it had when it connected.
                let height = p
                    .best_known
                    .and_then(|b| self.chain.entry(&b))
                    .map(|e| e.height)
                    .or(p.version.as_ref().map(|v| v.height));
                (
                    *id,
                    json!({
                        "id": id,
                        "addr": p.conn.addr.to_string(),
                        "direction": if p.dialed.is_some() { "outbound" } else { "inbound" },
                        "handshake": p.ready(),
                        "subver": p.version.as_ref().map(|v| v.user_agent.clone()),
                        "height": height,
                        "ping_ms": p.ping_ms,
                        "bytes_sent": p.conn.bytes_sent(),
                        "bytes_received": p.conn.bytes_received(),
                        "conntime_s": p.connected_at.elapsed().as_secs(),
                        "score": p.score,
                    }),
                )
            })
            .collect();
        peers.sort_by_key(|(id, _)| *id);
        let local = self.miner.as_ref().map(|m| m.rate());
        let mut pool = self.stratum.as_ref().map(|(_, s)| s.stats());
        let pool_rate = pool.as_ref().map(|p| p.hashrate());
        let samples = self.dashboard.samples.with(rates_sample(network_hashrate, local, pool.as_ref()));
        let workers_total = pool.as_mut().map(|p| p.keep_workers(crate::dashboard::SNAPSHOT_WORKERS));
        json!({
            "time": now,
            "uptime_s": now - self.dashboard.started,
            "chain": {
                "name": self.params.name,
                "height": height,
                "headers": headers,
                "tip": tip.to_string(),
                "tip_time": tip_entry.header.time,
                "tip_age_s": now - tip_entry.header.time as i64,
                "chainwork": hex::encode(tip_entry.chainwork.to_be_bytes()),
                "difficulty": self.chain.difficulty(tip_entry.header.bits),
                "bits": tip_entry.header.bits.to_string(),
                "mediantime": self.chain.median_time_past(),
                "state_root": self.chain.state_root().to_string(),
                "transactions": self.chain.follower().transactions,
                "accounts": self.chain.follower().state.len(),
                "sync_progress": if headers == 0 { 1.0 } else { (height as f64 / headers as f64).min(1.0) },
                "sig_verifier": self.chain.sig_verifier(),
            },
            "hashrate": {"network": network_hashrate, "window_blocks": window_blocks, "local": local, "pool": pool_rate},
            "samples": samples,
            "blocks": blocks,
            "peers": peers.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
            "mempool": {
                "size": self.mempool.len(),
                "bytes": self.mempool.bytes(),
                "max_bytes": self.cfg.mempool_bytes,
                "held": self.held.len(),
                "orphans": self.orphans.len(),
            },
            "reorgs": self.dashboard.reorgs.iter().cloned().collect::<Vec<_>>(),
            "bans": self.list_bans(),
            "mining": {
                "mining": self.miner.is_some(),
                "backend": self.miner.as_ref().map(|m| m.backend.clone()),
                "threads": self.miner.as_ref().map(|m| m.threads),
                "hashrate": local,
                "blocks_found": self.miner.as_ref().map(|m| m.stats.found.load(Ordering::Relaxed)),
                "blocks_mined": self.blocks_mined,
            },
            "pool": pool.map(|p| {
                let mut v = json!(p);
                v["workers_total"] = json!(workers_total);
                v
            }),
        })
    }
}
