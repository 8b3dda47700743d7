//! `powkit pool --dashboard ADDR`: the dashboard's pool view for a Stratum server with no powkit node
//! behind it (its templates come from bitcoind). The page ([`crate::dashboard`]) sees `"chain":
//! null` and shows the pool view alone: workers, their hash and share rates, rejections by reason,
//! blocks, and the height the current job builds on.
//!
//! Snapshot: `{"time", "uptime_s", "chain": null, "source", "hashrate": {"network": null, "local":
//! null, "pool"}, "samples": [...], "pool": ServerStats}` (the node's shape, its node parts absent).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{json, Value};

use super::server::Server;
use crate::dashboard::{unix_now, SAMPLES, SAMPLE_EVERY, SAMPLE_WORKERS};

/// A Stratum server's dashboard data: its statistics now and its hash-rate samples.
pub struct PoolDashboard {
    server: Arc<Server>,
    started: i64,
    samples: Mutex<(VecDeque<Value>, Option<Instant>)>,
}

impl PoolDashboard {
    /// Watches `server`.
    pub fn new(server: Arc<Server>) -> Arc<PoolDashboard> {
        Arc::new(PoolDashboard { server, started: unix_now(), samples: Mutex::new((VecDeque::new(), None)) })
    }

    fn sample_now(&self) -> Value {
        let stats = self.server.stats();
        json!({
            "time": unix_now(),
            "network": null,
            "local": null,
            "pool": stats.hashrate(),
            "workers": stats.sample_workers(SAMPLE_WORKERS),
        })
    }

    /// Takes a hash-rate sample if [`SAMPLE_EVERY`] has passed since the last (call it often).
    pub fn sample(&self) {
        let mut g = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if g.1.is_some_and(|t| t.elapsed() < SAMPLE_EVERY) {
            return;
        }
        g.1 = Some(Instant::now());
        let s = self.sample_now();
        g.0.push_back(s);
        while g.0.len() > SAMPLES {
            g.0.pop_front();
        }
    }

    /// The snapshot the page polls (module doc).
    pub fn snapshot(&self) -> Value {
        let mut stats = self.server.stats();
        let hashrate = stats.hashrate();
        let workers_total = stats.keep_workers(crate::dashboard::SNAPSHOT_WORKERS);
        let source = stats.source.clone();
        let mut pool = json!(stats);
        pool["workers_total"] = json!(workers_total);
        let samples: Vec<Value> = {
            let g = self.samples.lock().unwrap_or_else(|e| e.into_inner());
            g.0.iter().cloned().chain([self.sample_now()]).collect()
        };
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
