//! `powkit pool --dashboard ADDR`: the dashboard's pool view for a Stratum server with no powkit node
//! behind it (its templates come from bitcoind). The page ([`crate::dashboard`]) sees `"chain":
//! null` and shows the pool view alone: workers, their hash and share rates, rejections by reason,
//! blocks, and the height the current job builds on.
//!
//! Snapshot: `{"time", "uptime_s", "chain": null, "source", "hashrate": {"network": null, "local":
//! null, "pool"}, "samples": [...], "pool": ServerStats}` (the node's shape, its node parts absent).

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::server::{Server, ServerStats};
use crate::dashboard::{unix_now, Samples, SAMPLE_WORKERS};

/// One hash-rate sample (crate::dashboard::Samples), the node's and the pool's alike: `{"time",
/// "network", "local", "pool", "workers": {name: {"hashrate", "accepted", "accepted_difficulty"}}}`
/// with the network's estimate and the local miner's rate where there are such (H/s), and the
/// Stratum server's workers (the [`SAMPLE_WORKERS`] fastest) where there is one.
pub fn rates_sample(network: Option<f64>, local: Option<f64>, pool: Option<&ServerStats>) -> Value {
    json!({
        "time": unix_now(),
        "network": network,
        "local": local,
        "pool": pool.map(|p| p.hashrate()),
        "workers": pool.map(|p| p.sample_workers(SAMPLE_WORKERS)).unwrap_or_default(),
    })
}

/// A Stratum server's dashboard data: its statistics now and its hash-rate samples.
pub struct PoolDashboard {
    server: Arc<Server>,
    started: i64,
    samples: Mutex<Samples>,
}

impl PoolDashboard {
    /// Watches `server`.
    pub fn new(server: Arc<Server>) -> Arc<PoolDashboard> {
        Arc::new(PoolDashboard { server, started: unix_now(), samples: Mutex::new(Samples::default()) })
    }

    /// Takes a hash-rate sample if one is due (call it often).
    pub fn sample(&self) {
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if samples.due() {
            samples.push(rates_sample(None, None, Some(&self.server.stats())));
        }
    }

    /// The snapshot the page polls (module doc).
    pub fn snapshot(&self) -> Value {
        let mut stats = self.server.stats();
        let samples =
            self.samples.lock().unwrap_or_else(|e| e.into_inner()).with(rates_sample(None, None, Some(&stats)));
        let hashrate = stats.hashrate();
        let workers_total = stats.keep_workers(crate::dashboard::SNAPSHOT_WORKERS);
        let source = stats.source.clone();
        let mut pool = json!(stats);
        pool["workers_total"] = json!(workers_total);
        let now = unix_now();
        json!({
            "time": now,
            "uptime_s": now - self.started,
            "chain": null,
            "source": source,
            "hashrate": {"network": null, "local": null, "pool": hashrate},
            "samples": samples,
            "pool": pool,
        })
    }

    /// Serves the dashboard for this pool on `addr` until the listener is dropped.
    ///
    /// # Errors
    /// `addr` cannot be bound.
    pub fn serve(self: &Arc<Self>, addr: std::net::SocketAddr) -> Result<crate::httpd::Listener, String> {
        let me = self.clone();
        crate::dashboard::serve(addr, Arc::new(move || Ok(me.snapshot())))
    }
}
