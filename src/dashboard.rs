//! The live dashboard's web server (issue 16; docs/ARCHITECTURE.md, "Dashboard"): one page at `/`
//! with its script, style and the vendored chart library (uPlot 1.6.32, MIT,
//! `assets/dashboard/vendor/`), all embedded in the binary, and the data it polls at
//! `/api/dashboard`.
//!
//! Read-only by construction: the listener ([`crate::httpd`]) answers `GET` and `HEAD` only and
//! calls nothing but the [`Snapshot`] function the owner gives it; there is no path that changes
//! anything. Loopback by default (`--dashboard PORT` binds 127.0.0.1).
//!
//! The page asks for `/api/dashboard` once a second (polling: a browser tab costs one small request
//! a second, no long-held connection or thread), and renders what the JSON carries: the node's
//! view (`chain`, `blocks`, `peers`, `mempool`, `reorgs`, `bans`, `mining`) and, when there is a
//! Stratum server, the pool's (`pool`: workers, share rates and rejections). The snapshot's shape
//! is documented in docs/METRICS.md, "The dashboard's data".

use std::net::SocketAddr;
use std::sync::Arc;

use crate::httpd::{Handler, Listener, Reply};

/// How often hash rates are sampled for the charts (the node's chain thread and `powkit pool`'s
/// loop take the samples).
pub const SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// Samples kept: one hour at [`SAMPLE_EVERY`].
pub const SAMPLES: usize = 720;
/// Stratum workers per sample (the fastest ones).
pub const SAMPLE_WORKERS: usize = 16;
/// Stratum workers listed in a snapshot's `pool.workers` (the most recently active; the snapshot
/// says how many there are in `pool.workers_total`).
pub const SNAPSHOT_WORKERS: usize = 200;
/// A snapshot is reused for this long: however many tabs poll, the owner builds at most a few a
/// second.
pub const SNAPSHOT_REUSE: std::time::Duration = std::time::Duration::from_millis(500);

/// Hash-rate samples for the charts, as the node and `powkit pool` keep them: one every
/// [`SAMPLE_EVERY`], the last [`SAMPLES`] (an hour), oldest first.
#[derive(Default)]
pub struct Samples {
    kept: std::collections::VecDeque<serde_json::Value>,
    last: Option<std::time::Instant>,
}

impl Samples {
    /// Whether [`SAMPLE_EVERY`] has passed since the last sample (or none was taken).
    pub fn due(&self) -> bool {
        self.last.is_none_or(|t| t.elapsed() >= SAMPLE_EVERY)
    }

    /// Keeps `sample`, taken now, dropping the oldest past [`SAMPLES`].
    pub fn push(&mut self, sample: serde_json::Value) {
        self.last = Some(std::time::Instant::now());
        self.kept.push_back(sample);
        while self.kept.len() > SAMPLES {
            self.kept.pop_front();
        }
    }

    /// The kept samples, oldest first, then `now` (the snapshot's `samples`).
    pub fn with(&self, now: serde_json::Value) -> Vec<serde_json::Value> {
        self.kept.iter().cloned().chain([now]).collect()
    }
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// The dashboard's data now, as JSON (`Err`: why there is none, answered as `503`).
pub type Snapshot = Arc<dyn Fn() -> Result<serde_json::Value, String> + Send + Sync>;

/// The files served, `(path, content type, bytes)`: the page, its script and style, and uPlot.
pub const ASSETS: &[(&str, &str, &[u8])] = &[
    ("/", "text/html; charset=utf-8", include_bytes!("../assets/dashboard/index.html")),
    ("/app.js", "text/javascript; charset=utf-8", include_bytes!("../assets/dashboard/app.js")),
    ("/style.css", "text/css; charset=utf-8", include_bytes!("../assets/dashboard/style.css")),
    (
        "/vendor/uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/dashboard/vendor/uPlot.iife.min.js"),
    ),
    ("/vendor/uPlot.min.css", "text/css; charset=utf-8", include_bytes!("../assets/dashboard/vendor/uPlot.min.css")),
    ("/vendor/uPlot.LICENSE", "text/plain; charset=utf-8", include_bytes!("../assets/dashboard/vendor/uPlot.LICENSE")),
];

/// The page's Content-Security-Policy: everything from this origin only (no network access
/// needed, and none allowed), no frames.
pub const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
                       connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The answer to `GET path`: an embedded file, the snapshot at `/api/dashboard`, else `404`.
pub fn route(path: &str, snapshot: &dyn Fn() -> Result<serde_json::Value, String>) -> Reply {
    let reply = if path == "/api/dashboard" {
        match snapshot() {
            Ok(v) => Reply::ok("application/json", v.to_string().into_bytes()),
            Err(e) => Reply::ok("application/json", serde_json::json!({ "error": e }).to_string().into_bytes())
                .with_status(503),
        }
    } else {
        let path = if path == "/index.html" { "/" } else { path };
        match ASSETS.iter().find(|(p, _, _)| *p == path) {
            Some((_, kind, body)) => Reply::ok(kind, *body),
            None => Reply::text(404, format!("not found: {path} (the dashboard is at /)\n")),
        }
    };
    reply
        .with_header("Cache-Control", "no-cache")
        .with_header("Content-Security-Policy", CSP)
        .with_header("X-Content-Type-Options", "nosniff")
        .with_header("Referrer-Policy", "no-referrer")
}

/// Serves the dashboard on `addr` until the returned listener is dropped. A snapshot is built at
/// most once per [`SNAPSHOT_REUSE`] and shared by the requests meanwhile. Bound to a loopback
/// address, it answers only requests whose `Host` is an IP address or `localhost` (a web page
/// elsewhere cannot read it through a name re-pointed at 127.0.0.1: DNS rebinding).
///
/// # Errors
/// `addr` cannot be bound: `"--dashboard ADDR: why"`.
pub fn serve(addr: SocketAddr, snapshot: Snapshot) -> Result<Listener, String> {
    type Cached = Option<(std::time::Instant, Result<serde_json::Value, String>)>;
    let cache: std::sync::Mutex<Cached> = std::sync::Mutex::new(None);
    let cached = move || {
        let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, v)) = c.as_ref() {
            if at.elapsed() < SNAPSHOT_REUSE {
                return v.clone();
            }
        }
        let v = snapshot();
        *c = Some((std::time::Instant::now(), v.clone()));
        v
    };
    let handler: Handler = Arc::new(move |path: &str| route(path, &cached));
    let hosts = if addr.ip().is_loopback() { crate::httpd::Hosts::Local } else { crate::httpd::Hosts::Any };
    crate::httpd::serve_hosts(addr, "dashboard", hosts, handler).map_err(|e| format!("--dashboard {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_the_embedded_files_and_the_snapshot_and_nothing_else() {
        let snap = || Ok(serde_json::json!({"chain": {"height": 7}}));
        let r = route("/", &snap);
        assert_eq!(r.status, 200);
        let page = String::from_utf8(r.body.to_vec()).unwrap();
        // Every asset the page names is served, and the page names nothing off this origin.
        for (path, _, _) in &ASSETS[1..5] {
            assert!(page.contains(&path[1..]), "the page does not load {path}");
            assert_eq!(route(path, &snap).status, 200);
        }
        assert!(!page.contains("http://") && !page.contains("https://"), "the page must need no network");
        assert!(r.headers.iter().any(|(n, v)| *n == "Content-Security-Policy" && v.contains("default-src 'self'")));
        let api = route("/api/dashboard", &snap);
        assert_eq!((api.status, api.content_type), (200, "application/json"));
        assert_eq!(api.body.as_ref(), br#"{"chain":{"height":7}}"#);
        let down = route("/api/dashboard", &|| Err("the node is busy".to_string()));
        assert_eq!(down.status, 503);
        assert!(String::from_utf8_lossy(&down.body).contains("the node is busy"));
        assert_eq!(route("/api/other", &snap).status, 404);
        assert_eq!(route("/../Cargo.toml", &snap).status, 404);
    }
}
