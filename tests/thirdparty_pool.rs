//! `powkit mine --pool` against a Stratum v1 pool no one here wrote: the npm package
//! `stratum-pool-sha256` 2.1.3 (a node-stratum-pool derivative), driven by
//! tools/thirdparty-pool/pool.js, taking its jobs from a regtest bitcoind over getblocktemplate
//! (issue 14, section 3). The pool's own share check (coinbase from its coinb1/extranonce1/
//! extranonce2/coinb2, merkle root, header, sha256d, difficulty) is the judge: each verdict is a
//! JSON line on its stdout.
//!
//! Shares only: the package's block path throws a ReferenceError that ends the process (see
//! pool.js); on regtest every valid share would take it, so the driver gives each job a zero network
//! target and no share is a block candidate. The pool never submits a block.
//!
//! Needs `bitcoind` (tests/common/bitcoind.rs), `node`, and the pool's node_modules installed from
//! tools/thirdparty-pool/package-lock.json into `$POWKIT_NPM_CACHE` (default
//! ~/.cache/powkit-npm/thirdparty-pool; `.ci/run` installs it); skips with a printed reason without
//! them, unless POWKIT_REQUIRE_BITCOIND=1 / POWKIT_REQUIRE_PEERS=1 (CI).

#[path = "common/bitcoind.rs"]
mod bitcoind;
mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use bitcoind::{find_bitcoind, Bitcoind};
use serde_json::{json, Value};

/// The pool's share difficulty: about 2.1 M hashes a share, so a CPU thread at a few MH/s finds
/// several a second, and a share made of junk passes with odds of about 5e-7.
const DIFFICULTY: &str = "0.0005";
const PAYOUT: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";

/// The pool's node_modules (`npm ci` from the committed lockfile), or why not: skipped with a
/// printed reason, unless POWKIT_REQUIRE_PEERS=1 makes its absence a failure.
fn pool_modules() -> Option<PathBuf> {
    let cache = std::env::var_os("POWKIT_NPM_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/powkit-npm/thirdparty-pool")))?;
    let modules = cache.join("node_modules");
    let node = Command::new("node").arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    let why = if !node {
        "node is not installed".to_string()
    } else if !modules.join("stratum-pool-sha256/package.json").is_file() {
        format!(
            "stratum-pool-sha256 is not installed in {} (cp tools/thirdparty-pool/package*.json there; npm ci --prefix it)",
            cache.display()
        )
    } else {
        return Some(modules);
    };
    assert!(std::env::var("POWKIT_REQUIRE_PEERS").map_or(true, |v| v != "1"), "POWKIT_REQUIRE_PEERS=1 but {why}");
    eprintln!("skipping: {why}");
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// The running node pool: its process, its verdict lines as they come, and its log file.
struct NodePool {
    child: Child,
    lines: Receiver<Value>,
    log: PathBuf,
    seen: Vec<Value>,
}

impl NodePool {
    fn start(modules: &Path, node: &Bitcoind, port: u16, log: PathBuf) -> NodePool {
        let cookie = node.datadir.join("regtest/.cookie");
        let mut child = Command::new("node")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/thirdparty-pool/pool.js"))
            .args(["--node-modules", modules.to_str().unwrap()])
            .args(["--port", &port.to_string(), "--rpc-port", &node.rpc_port.to_string()])
            .args(["--rpc-cookie", cookie.to_str().unwrap(), "--address", PAYOUT, "--difficulty", DIFFICULTY])
            .args(["--poll-ms", "200"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("run node tools/thirdparty-pool/pool.js");
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("pool.js stdout: {e}: {line}"));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let mut pool = NodePool { child, lines, log, seen: Vec::new() };
        let started = pool.wait_for(Duration::from_secs(60), |v| v["event"] == "started");
        assert_eq!(started["package"], "stratum-pool-sha256@2.1.3", "{started}");
        assert_eq!(started["block_path"], false, "{started}");
        pool
    }

    /// Reads lines until one matches `f` (panics with the pool's log after `limit`, or on a crash).
    fn wait_for(&mut self, limit: Duration, f: impl Fn(&Value) -> bool) -> Value {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if let Ok(v) = self.lines.recv_timeout(Duration::from_millis(100)) {
                self.seen.push(v.clone());
                assert_ne!(v["event"], "crash", "the pool crashed: {}\n{}", v["message"], self.log_tail());
                if f(&v) {
                    return v;
                }
            }
        }
        panic!("no such line from the pool in {limit:?}: {:?}\n{}", self.seen, self.log_tail());
    }

    /// Everything the pool printed so far.
    fn drain(&mut self) -> &[Value] {
        while let Ok(v) = self.lines.recv_timeout(Duration::from_millis(300)) {
            self.seen.push(v);
        }
        &self.seen
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.contains("DEBUG")).collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for NodePool {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw Stratum session that submits `nonces` on the pool's first job with a fixed extranonce2,
/// and returns each submit's error code (None when accepted).
fn junk_shares(port: u16, nonces: &[&str]) -> Vec<Option<i64>> {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let mut send = |v: Value| writeln!(w, "{v}").unwrap();
    send(json!({"id": 1, "method": "mining.subscribe", "params": ["junk/1"]}));
    send(json!({"id": 2, "method": "mining.authorize", "params": ["junk", "x"]}));
    let mut notify = None;
    let mut line = String::new();
    while notify.is_none() {
        line.clear();
        assert!(r.read_line(&mut line).unwrap() > 0, "the pool closed the junk session");
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["method"] == "mining.notify" {
            notify = Some(v["params"].clone());
        }
    }
    let n = notify.unwrap();
    let mut codes = Vec::new();
    for (i, nonce) in nonces.iter().enumerate() {
        let id = 10 + i as u64;
        send(json!({"id": id, "method": "mining.submit", "params": ["junk", n[0], "00000000", n[7], nonce]}));
        loop {
            line.clear();
            assert!(r.read_line(&mut line).unwrap() > 0, "the pool closed the junk session");
            let v: Value = serde_json::from_str(&line).unwrap();
            if v["id"] == id {
                codes.push(v["error"].get(0).and_then(Value::as_i64));
                break;
            }
        }
    }
    codes
}

#[test]
fn powkit_shares_are_accepted_by_stratum_pool_sha256() {
    let Some(bin) = find_bitcoind() else { return };
    let Some(modules) = pool_modules() else { return };
    let dir = common::tmp_dir("thirdparty-pool", "shares");
    let node = Bitcoind::start(&bin, &dir.join("node"), false, &[]);
    // Out of initial block download (getblocktemplate refuses before).
    node.call("generatetoaddress", json!([1, PAYOUT]));
    let port = free_port();
    let mut pool = NodePool::start(&modules, &node, port, dir.join("pool.log"));

    // The judge can fail: shares of junk (a fixed extranonce2 and nonce, not searched) are refused
    // by the pool's difficulty check.
    let junk = junk_shares(port, &["00000000", "00000001"]);
    assert_eq!(junk, [Some(23), Some(23)], "junk shares: {junk:?}");

    let stratum = format!("stratum+tcp://127.0.0.1:{port}");
    let miner = Command::new(env!("CARGO_BIN_EXE_powkit"))
        .args(["mine", "--pool", &stratum, "--user", PAYOUT, "--backend", "cpu", "--threads", "1"])
        .args(["--duration", "15", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run powkit mine --pool");
    // A new tip mid-run: the pool sends a clean job (its block polling), and drops the old ones.
    pool.wait_for(Duration::from_secs(60), |v| v["event"] == "share" && v["worker"] == PAYOUT);
    std::thread::sleep(Duration::from_secs(4));
    node.call("generatetoaddress", json!([1, PAYOUT]));
    let out = miner.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "powkit mine --pool: {}\n{err}", out.status);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {err}"));

    let seen = pool.drain().to_vec();
    let clean: Vec<&Value> = seen.iter().filter(|v| v["event"] == "job" && v["clean"] == true).collect();
    assert!(clean.iter().any(|v| v["height"] == 3), "no clean job for the new tip: {seen:?}");
    // Each verdict with the pool's newest clean job at that moment; `None` before the first.
    let mut current: Option<&Value> = None;
    let (mut accepted, mut stale, mut after_switch) = (0u64, 0u64, 0u64);
    for v in &seen {
        if v["event"] == "job" && v["clean"] == true {
            current = Some(&v["job"]);
        }
        if v["event"] != "share" || v["worker"] != PAYOUT {
            continue;
        }
        if v["accepted"] == true {
            assert_eq!(v["block"], false, "{v}");
            accepted += 1;
            after_switch += u64::from(current.is_some_and(|j| *j == v["job"]));
        } else {
            // Only stale at a job switch: "job not found" for a job older than the newest clean one.
            assert_eq!(v["code"], 21, "the pool refused a share of powkit's: {v}\n{err}");
            assert!(current.is_some_and(|j| *j != v["job"]), "refused for a job the pool still had: {v}");
            stale += 1;
        }
    }
    eprintln!(
        "stratum-pool-sha256 judged powkit's shares: {accepted} accepted, {stale} stale (job not found at the switch), \
         {after_switch} accepted on the new tip's job; powkit: {} accepted, {} rejected, {:.2} MH/s local",
        report["accepted"],
        report["rejected"],
        report["hashes_per_second"].as_f64().unwrap_or(0.0) / 1e6
    );
    assert!(accepted >= 10, "the pool accepted {accepted} of powkit's shares\n{report}");
    assert!(after_switch >= 1, "no share accepted on the new tip's job\n{report}");
    assert!(stale <= 5, "{stale} stale shares at one job switch\n{report}");
    // powkit's own report agrees with the pool's verdicts.
    assert_eq!(report["accepted"].as_u64(), Some(accepted), "{report}");
    assert_eq!(report["rejected"].as_u64(), Some(stale), "{report}");
    for r in report["rejected_by_reason"].as_array().unwrap() {
        assert_eq!(r["code"], 21, "{report}");
    }
    assert_eq!(report["unanswered"], 0, "{report}");
    assert_eq!(report["invalid_local"], 0, "{report}");
    // The pool answers mining.configure with {}: no version-rolling grant, so the version is not rolled
    // (the pool checks every share with the job's version).
    assert_eq!(report["version_mask"], "00000000", "{report}");
    assert_eq!(report["difficulty"].as_f64(), DIFFICULTY.parse().ok(), "{report}");
}
