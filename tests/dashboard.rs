//! `powkit node --dashboard` (issue 16) in a real browser: Debian's chromium, headless, driven by
//! npm's playwright-core through `tools/dashboard-browser/check.mjs`, against real node processes.
//!
//! The browser tests need `node`, chromium (`POWKIT_CHROMIUM`, default /usr/bin/chromium) and
//! playwright-core (`POWKIT_BROWSER_MODULES`, a node_modules directory: `.ci/run` installs both);
//! without them they print why and pass, unless `POWKIT_REQUIRE_BROWSER=1` (set in `.ci/run`), which
//! makes a missing browser a failure. The read-only test needs no browser. `powkit pool --dashboard`
//! needs bitcoind too (tests/common/bitcoind.rs: skipped with a printed reason, unless
//! `POWKIT_REQUIRE_BITCOIND=1`).
//!
//! `POWKIT_SCREENSHOT_DIR=docs cargo test --release --test dashboard` rewrites the screenshots the
//! README shows (docs/dashboard.png, docs/dashboard-pool.png) from the three-node run.

#[path = "common/bitcoind.rs"]
mod bitcoind;
mod common;
use common::new_key;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use powkit::node::rpc::{call_remote, RpcAuth};
use serde_json::{json, Value};

fn tmp(name: &str) -> PathBuf {
    common::tmp_dir("dashboard", name)
}

/// A node process; killed when dropped.
struct Node {
    dir: PathBuf,
    child: Child,
    p2p: String,
    rpc: String,
    dashboard: Option<String>,
    stratum: Option<String>,
}

impl Node {
    fn start(dir: &Path, extra: &[&str]) -> Node {
        std::fs::create_dir_all(dir).unwrap();
        let info = dir.join("node.json");
        let _ = std::fs::remove_file(&info);
        let log = std::fs::File::create(dir.join("node.log")).unwrap();
        let mut args = vec!["node", "--chain", "powkit-regtest", "--datadir", dir.to_str().unwrap()];
        args.extend(["--rpc", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--log", "debug"]);
        args.extend(extra);
        let mut child = Command::new(env!("CARGO_BIN_EXE_powkit"))
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let t = Instant::now();
        loop {
            if let Some(v) = std::fs::read_to_string(&info).ok().and_then(|s| serde_json::from_str::<Value>(&s).ok()) {
                let s = |k: &str| v[k].as_str().map(str::to_string);
                return Node {
                    dir: dir.to_path_buf(),
                    child,
                    p2p: s("p2p").unwrap(),
                    rpc: s("rpc").unwrap(),
                    dashboard: s("dashboard"),
                    stratum: s("stratum"),
                };
            }
            if let Some(st) = child.try_wait().unwrap() {
                panic!("node exited with {st}:\n{}", std::fs::read_to_string(dir.join("node.log")).unwrap_or_default());
            }
            assert!(t.elapsed() < Duration::from_secs(30), "node did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default()
    }

    fn rpc(&self, method: &str, params: Value) -> Value {
        let auth = RpcAuth::from_datadir(&self.dir).unwrap();
        call_remote(&self.rpc, &auth, method, params.clone())
            .unwrap_or_else(|e| panic!("{method} {params}: {e}\nlog:\n{}", self.log()))
    }

    fn height(&self) -> u64 {
        self.rpc("getblockcount", json!([])).as_u64().unwrap()
    }

    fn tip(&self) -> Value {
        self.rpc("getbestblockhash", json!([]))
    }

    /// `GET path` on the dashboard's listener: (status line, head, body).
    fn get(&self, request: &str) -> (String, String, String) {
        let mut s = TcpStream::connect(self.dashboard.as_ref().expect("--dashboard")).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
        (head.lines().next().unwrap_or("").to_string(), head.to_string(), body.to_string())
    }

    fn snapshot(&self) -> Value {
        let (status, _, body) = self.get("GET /api/dashboard HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        assert!(status.contains(" 200 "), "{status}: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool, nodes: &[&Node]) {
    let t = Instant::now();
    while !f() {
        if t.elapsed() > timeout {
            let logs: Vec<String> = nodes.iter().map(|n| format!("--- {} ---\n{}", n.dir.display(), n.log())).collect();
            panic!("timed out waiting for {what}\n{}", logs.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Where the browser harness's parts are, or why they are missing.
struct Browser {
    modules: PathBuf,
}

fn browser() -> Option<Browser> {
    let required = std::env::var("POWKIT_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    let missing = |why: String| -> Option<Browser> {
        assert!(!required, "POWKIT_REQUIRE_BROWSER=1 but {why}");
        eprintln!("skipped: {why} (.ci/run installs chromium and playwright-core)");
        None
    };
    let Some(modules) = std::env::var_os("POWKIT_BROWSER_MODULES").map(PathBuf::from) else {
        return missing("POWKIT_BROWSER_MODULES (playwright-core's node_modules) is not set".into());
    };
    if !modules.join("playwright-core").is_dir() {
        return missing(format!("{} has no playwright-core", modules.display()));
    }
    let chromium = std::env::var("POWKIT_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return missing(format!("no chromium at {chromium}"));
    }
    if Command::new("node").arg("--version").output().map(|o| !o.status.success()).unwrap_or(true) {
        return missing("no `node` on PATH".into());
    }
    Some(Browser { modules })
}

impl Browser {
    /// Runs check.mjs against `node`'s dashboard with `args`; its JSON report.
    fn check(&self, node: &Node, args: &[&str]) -> Value {
        let url = format!("http://{}/", node.dashboard.as_ref().expect("--dashboard"));
        let rpc = format!("http://{}/", node.rpc);
        self.check_at(&url, &rpc, &node.dir.join(".cookie"), args, &node.log())
    }

    /// Runs check.mjs against the dashboard at `url`, with `rpc` and its `cookie` for getblockcount.
    fn check_at(&self, url: &str, rpc: &str, cookie: &Path, args: &[&str], log: &str) -> Value {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/dashboard-browser/check.mjs");
        let out = Command::new("node")
            .arg(&script)
            .args(["--modules", self.modules.to_str().unwrap(), "--url", url, "--rpc", rpc])
            .args(["--cookie", cookie.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "check.mjs failed ({}): {stderr}\nlog:\n{log}", out.status);
        let stdout = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("check.mjs printed {stdout:?}: {e}; {stderr}"))
    }
}

/// The screenshot path for `name` when POWKIT_SCREENSHOT_DIR is set (the docs' pictures), else a
/// temporary one (still taken: a screenshot that fails is a failure).
fn screenshot_path(d: &Path, name: &str) -> String {
    match std::env::var_os("POWKIT_SCREENSHOT_DIR") {
        Some(dir) => Path::new(&dir).join(name).to_str().unwrap().to_string(),
        None => d.join(name).to_str().unwrap().to_string(),
    }
}

fn texts(report: &Value, selector: &str) -> Vec<String> {
    report["read"][selector].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

#[test]
fn the_page_shows_the_nodes_height_and_a_new_block_within_two_seconds() {
    let Some(browser) = browser() else { return };
    let d = tmp("follow");
    std::fs::create_dir_all(&d).unwrap();
    let key = d.join("k.key");
    new_key(&key);
    // check.mjs's `generate [1]` pays the node's --miner-key.
    let node = Node::start(&d.join("a"), &["--dashboard", "127.0.0.1:0", "--miner-key", key.to_str().unwrap()]);
    node.rpc("generate", json!([3]));
    let r = browser.check(&node, &["--mine", "--screenshot", d.join("node.png").to_str().unwrap()]);
    assert_eq!(r["errors"], json!([]), "the page made errors: {r}");
    assert_eq!(r["rpc_height"], 3, "{r}");
    assert_eq!(r["page_height_settled"], r["rpc_height"], "the page's height is not getblockcount's: {r}");
    assert_eq!(r["rpc_height_after"], 4, "{r}");
    assert_eq!(r["page_height_after"], r["rpc_height_after"], "{r}");
    let ms = r["update_ms"].as_f64().unwrap_or_else(|| panic!("the page never showed the new block: {r}"));
    assert!(ms <= 2000.0, "the page showed the new block after {ms} ms (at most 2000): {r}");
    assert!(std::fs::metadata(d.join("node.png")).unwrap().len() > 10_000, "no screenshot");
    let _ = std::fs::remove_dir_all(&d);
}

/// Three nodes, a partition and a heavier branch: node A reorganizes. Its dashboard shows the reorg,
/// both peers with the bytes exchanged, and, with a Stratum miner on it, the pool's worker; the
/// browser sees no error on either view. With POWKIT_SCREENSHOT_DIR the screenshots are the docs'.
#[test]
fn three_nodes_with_a_reorg_and_a_stratum_worker_on_both_views() {
    let Some(browser) = browser() else { return };
    let d = tmp("reorg");
    let key = d.join("a.key");
    std::fs::create_dir_all(&d).unwrap();
    new_key(&key);
    let c_pk = new_key(&d.join("c.key"));
    let a_args = ["--dashboard", "127.0.0.1:0", "--stratum", "127.0.0.1:0", "--miner-key", key.to_str().unwrap()];
    let a = Node::start(&d.join("a"), &a_args);
    let b = Node::start(&d.join("b"), &["--peer", &a.p2p]);
    let c = Node::start(&d.join("c"), &["--peer", &a.p2p]);
    let all = [&a, &b, &c];
    let same = |n: u64| all.iter().all(|x| x.height() == n && x.tip() == a.tip());
    a.rpc("generate", json!([20]));
    wait_until("shared history", Duration::from_secs(60), || same(20), &all);
    // Partition C; A mines two blocks, C three: C's branch has more work.
    c.rpc("addnode", json!([a.p2p, "remove"]));
    wait_until("C alone", Duration::from_secs(20), || c.rpc("getconnectioncount", json!([])) == 0, &all);
    a.rpc("generate", json!([2]));
    c.rpc("generate", json!([3, c_pk]));
    wait_until("B follows A", Duration::from_secs(30), || b.height() == 22 && b.tip() == a.tip(), &all);
    let a_branch_tip = a.tip();
    // Heal: A and B reorganize to C's branch.
    c.rpc("addnode", json!([a.p2p]));
    wait_until("A and B on C's branch", Duration::from_secs(60), || same(23) && a.tip() == c.tip(), &all);
    assert_ne!(a.tip(), a_branch_tip);

    // A Stratum worker on A for a few seconds: shares, blocks, a hash rate.
    let stratum = format!("stratum+tcp://{}", a.stratum.as_ref().unwrap());
    let miner_args =
        ["mine", "--pool", &stratum, "--user", "rig1", "--backend", "cpu", "--threads", "1", "--duration", "6"];
    let miner = Command::new(env!("CARGO_BIN_EXE_powkit")).args(miner_args).output().unwrap();
    assert!(miner.status.success(), "{}", String::from_utf8_lossy(&miner.stderr));
    wait_until("B and C follow the pool's blocks", Duration::from_secs(60), || same(a.height()), &all);

    // The data: the reorg, both peers with bytes both ways, the worker.
    let s = a.snapshot();
    assert_eq!(s["chain"]["height"], a.height());
    let reorgs = s["reorgs"].as_array().unwrap();
    assert_eq!(reorgs.len(), 1, "{}", s["reorgs"]);
    assert_eq!((reorgs[0]["depth"].as_u64(), reorgs[0]["fork_height"].as_u64()), (Some(2), Some(20)));
    assert_eq!(reorgs[0]["old_tip"], a_branch_tip);
    let peers = s["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 2, "{}", s["peers"]);
    for p in peers {
        assert_eq!(p["direction"], "inbound");
        assert!(p["bytes_sent"].as_u64().unwrap() > 0 && p["bytes_received"].as_u64().unwrap() > 0, "{p}");
    }
    let w = &s["pool"]["workers"]["rig1"];
    assert!(w["accepted"].as_u64().unwrap() > 0, "{}", s["pool"]);
    assert!(s["blocks"].as_array().unwrap().len() as u64 == a.height() + 1);

    // The page, both views.
    let shot = screenshot_path(&d, "dashboard.png");
    let node_view = browser.check(
        &a,
        &["--screenshot", &shot, "--width", "1400", "--height", "1000", "--settle-ms", "2500"]
            .iter()
            .copied()
            .chain(["--read", "#reorgs tbody tr", "--read", "#peers tbody tr"])
            .collect::<Vec<_>>(),
    );
    assert_eq!(node_view["errors"], json!([]), "{node_view}");
    assert_eq!(node_view["page_height_settled"], node_view["rpc_height"], "{node_view}");
    let reorg_rows = texts(&node_view, "#reorgs tbody tr");
    assert_eq!(reorg_rows.len(), 1, "{node_view}");
    let cells: Vec<&str> = reorg_rows[0].split('\t').map(str::trim).collect();
    assert_eq!(&cells[1..4], &["2", "20", "23"], "depth, fork height, new height: {reorg_rows:?}");
    assert_eq!(texts(&node_view, "#peers tbody tr").len(), 2, "{node_view}");
    // The pool view with the worker hashing while the page watches.
    let miner_args =
        ["mine", "--pool", &stratum, "--user", "rig1", "--backend", "cpu", "--threads", "1", "--duration", "30"];
    let mut miner = Command::new(env!("CARGO_BIN_EXE_powkit"))
        .args(miner_args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let accepted0 = s["pool"]["workers"]["rig1"]["accepted"].as_u64().unwrap();
    let more_shares = || a.snapshot()["pool"]["workers"]["rig1"]["accepted"].as_u64().unwrap() > accepted0 + 3;
    wait_until("the worker's shares again", Duration::from_secs(30), more_shares, &all);
    let shot = screenshot_path(&d, "dashboard-pool.png");
    let pool_view = browser.check(
        &a,
        &["--view", "pool", "--screenshot", &shot, "--width", "1400", "--height", "700", "--settle-ms", "4000"]
            .iter()
            .copied()
            .chain(["--read", "#workers tbody tr", "--read", "#pool-clients"])
            .collect::<Vec<_>>(),
    );
    let _ = miner.kill();
    let _ = miner.wait();
    assert_eq!(pool_view["errors"], json!([]), "{pool_view}");
    assert_eq!(pool_view["view_visible"], true, "{pool_view}");
    let rows = texts(&pool_view, "#workers tbody tr");
    assert!(rows.len() == 1 && rows[0].starts_with("rig1"), "{rows:?}");
    assert!(texts(&pool_view, "#pool-clients")[0].starts_with("1 connection, 1 subscribed"), "{pool_view}");
    drop((b, c));
    let _ = std::fs::remove_dir_all(&d);
}

/// The dashboard changes nothing: every method but GET and HEAD is refused, no path but the page,
/// its assets and the snapshot exists, a request naming another host is refused, and the snapshot
/// carries no credential.
#[test]
fn the_dashboard_is_read_only_and_serves_only_its_own_files() {
    let d = tmp("readonly");
    let node = Node::start(&d.join("a"), &["--dashboard", "127.0.0.1:0"]);
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let (status, head, _) = node.get(&format!("{method} /api/dashboard HTTP/1.1\r\nContent-Length: 0\r\n\r\n"));
        assert!(status.contains(" 405 ") && head.contains("Allow: GET, HEAD"), "{method}: {head}");
    }
    // A JSON-RPC call sent to the dashboard does nothing.
    let body = r#"{"method":"stop","params":[]}"#;
    let (status, _, _) = node.get(&format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}", body.len()));
    assert!(status.contains(" 405 "), "{status}");
    for path in ["/metrics", "/api/stop", "/../node.json", "/.cookie", "/vendor/", "/api/dashboard/x"] {
        let (status, _, _) = node.get(&format!("GET {path} HTTP/1.1\r\n\r\n"));
        assert!(status.contains(" 404 "), "{path}: {status}");
    }
    // Bound to loopback, it answers no page that reached it through another name (DNS rebinding).
    let (status, _, _) = node.get("GET /api/dashboard HTTP/1.1\r\nHost: attacker.example:8080\r\n\r\n");
    assert!(status.contains(" 421 "), "{status}");
    let (status, head, page) = node.get("GET / HTTP/1.1\r\n\r\n");
    assert!(status.contains(" 200 ") && head.contains("Content-Security-Policy: default-src 'self'"), "{head}");
    assert!(page.contains("id=\"height\""));
    let s = node.snapshot();
    let cookie = std::fs::read_to_string(node.dir.join(".cookie")).unwrap();
    let password = cookie.split(':').nth(1).unwrap().trim();
    assert!(!s.to_string().contains(password), "the snapshot leaks the RPC cookie");
    assert_eq!(s["chain"]["height"], 0);
    // Still running, still at its tip.
    assert_eq!(node.height(), 0);
    let _ = std::fs::remove_dir_all(&d);
}

/// `powkit pool --dashboard` on a regtest bitcoind: the page is the pool view alone; the height its
/// job builds on equals bitcoind's getblockcount; a `powkit mine --pool` worker appears with its
/// shares; no errors; the bitcoind credentials appear nowhere in the snapshot.
#[test]
fn powkit_pool_serves_the_pool_view_alone() {
    let Some(bin) = bitcoind::find_bitcoind() else { return };
    let Some(browser) = browser() else { return };
    let d = tmp("pool");
    let node = bitcoind::Bitcoind::start(&bin, &d.join("bitcoind"), false, &[]);
    let payout = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
    node.call("generatetoaddress", json!([1, payout]));
    let url = format!("http://127.0.0.1:{}", node.rpc_port);
    let cookie = d.join("bitcoind/regtest/.cookie");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let stratum = format!("127.0.0.1:{port}");
    let log = d.join("pool.log");
    let args = ["pool", "--bitcoind", &url, "--rpc-cookie", cookie.to_str().unwrap(), "--coinbase-address", payout];
    let more = ["--stratum", &stratum, "--difficulty", "0.001", "--poll-seconds", "0.2", "--stats-interval", "0"];
    let mut pool = Command::new(env!("CARGO_BIN_EXE_powkit"))
        .args(args)
        .args(more)
        .args(["--dashboard", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let t = Instant::now();
    let dash = loop {
        if let Some(l) = read_log().lines().find(|l| l.starts_with("dashboard: http://")) {
            break l["dashboard: ".len()..].to_string();
        }
        assert!(t.elapsed() < Duration::from_secs(60), "no dashboard line:\n{}", read_log());
        std::thread::sleep(Duration::from_millis(50));
    };
    let miner_args = ["mine", "--pool", &format!("stratum+tcp://{stratum}"), "--user", "rig7", "--backend", "cpu"];
    let mut miner = Command::new(env!("CARGO_BIN_EXE_powkit"))
        .args(miner_args)
        .args(["--threads", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let snapshot = || -> Value {
        let mut s = TcpStream::connect(dash.trim_start_matches("http://").trim_end_matches('/')).unwrap();
        s.write_all(b"GET /api/dashboard HTTP/1.1\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        serde_json::from_str(out.split_once("\r\n\r\n").unwrap().1).unwrap()
    };
    let accepted = |s: &Value| s["pool"]["workers"]["rig7"]["accepted"].as_u64().unwrap_or(0);
    let t = Instant::now();
    while accepted(&snapshot()) < 3 {
        assert!(t.elapsed() < Duration::from_secs(120), "no shares:\n{}", read_log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let s = snapshot();
    assert_eq!(s["chain"], Value::Null);
    let password = std::fs::read_to_string(&cookie).unwrap();
    let password = password.split(':').nth(1).unwrap().trim();
    assert!(!s.to_string().contains(password), "the snapshot leaks bitcoind's cookie");
    let _ = miner.kill();
    let _ = miner.wait();
    let shot = PathBuf::from(screenshot_path(&d, "dashboard-pool-only.png"));
    let r = browser.check_at(
        &dash,
        &url,
        &cookie,
        &[
            "--height-selector",
            "#pool-tip",
            "--read",
            "#workers tbody tr",
            "--read",
            "#tab-node:visible",
            "--settle-ms",
            "1500",
        ]
        .into_iter()
        .chain(["--screenshot", shot.to_str().unwrap()])
        .collect::<Vec<_>>(),
        &read_log(),
    );
    let _ = pool.kill();
    let _ = pool.wait();
    assert_eq!(r["errors"], json!([]), "{r}");
    assert_eq!(r["page_height_settled"], r["rpc_height"], "the pool's job is not on bitcoind's tip: {r}");
    let rows = texts(&r, "#workers tbody tr");
    assert!(rows.len() == 1 && rows[0].starts_with("rig7"), "{rows:?}");
    assert_eq!(texts(&r, "#tab-node:visible"), Vec::<String>::new(), "the node tab shows without a node: {r}");
    let _ = std::fs::remove_dir_all(&d);
}
