//! Prometheus metrics (issue 16, part 1): `/metrics` scraped from a running `powkit node`, a
//! running `powkit mine --pool` and a running `powkit pool` (and `node --stratum`, the same job
//! server), checked for values that move as work happens, and for text that parses as Prometheus's
//! format with the right types: every line is a comment or a sample (`prometheus-parse`'s line
//! parser), names ending `_total` are counters, the three histograms histograms, the rest gauges.
//!
//! `powkit pool` needs bitcoind (tests/common/bitcoind.rs): skipped with a printed reason without
//! it, unless POWKIT_REQUIRE_BITCOIND=1.

#[path = "common/bitcoind.rs"]
mod bitcoind;
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prometheus_parse::{LineInfo, Scrape, Value as PValue};
use serde_json::{json, Value};

/// A powkit process whose stderr goes to a file; killed when dropped.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn start(args: &[&str], log: &Path) -> Proc {
        let child = Command::new(env!("CARGO_BIN_EXE_powkit"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        Proc { child, log: log.to_path_buf() }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The address its `metrics: http://ADDR/metrics` line names.
    fn metrics_addr(&mut self) -> String {
        let t = Instant::now();
        loop {
            if let Some(line) = self.log().lines().find(|l| l.starts_with("metrics: http://")) {
                return line["metrics: http://".len()..].trim_end_matches("/metrics").to_string();
            }
            if let Some(st) = self.child.try_wait().unwrap() {
                panic!("exited with {st} before serving metrics:\n{}", self.log());
            }
            assert!(t.elapsed() < Duration::from_secs(30), "no metrics line:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One raw HTTP exchange: the status code and the body.
fn http(addr: &str, request: &[u8]) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no head in {text:?}"));
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// Scrapes `/metrics`, checks it line by line and by type, and parses it.
fn scrape(addr: &str) -> Scrape {
    let (status, head, body) = http(addr, b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    check_text(&body);
    Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("parses")
}

/// The histograms (docs/METRICS.md); `_total` names are counters, the rest gauges.
const HISTOGRAMS: &[&str] =
    &["powkit_chain_block_validation_seconds", "powkit_chain_reorg_depth", "powkit_rpc_call_seconds"];

/// The type a metric must have, from its name.
fn expected_type(name: &str) -> &'static str {
    if name.ends_with("_total") {
        "counter"
    } else if HISTOGRAMS.contains(&name) {
        "histogram"
    } else {
        "gauge"
    }
}

/// Every line is a comment, a `# HELP`/`# TYPE` or a sample with a number; every metric is
/// `powkit_`, typed once, with the type its name calls for.
fn check_text(body: &str) {
    let mut types = std::collections::HashMap::new();
    let mut samples = 0usize;
    for line in body.lines() {
        match LineInfo::parse(line) {
            LineInfo::Empty | LineInfo::Doc { .. } => {}
            LineInfo::Type { metric_name, metric_alias, sample_type } => {
                let name = metric_alias.unwrap_or(metric_name);
                let t = format!("{sample_type:?}").to_lowercase();
                assert_eq!(t, expected_type(&name), "{line}");
                assert!(types.insert(name.clone(), t).is_none(), "typed twice: {name}");
            }
            LineInfo::Sample { metric_name, value, .. } => {
                samples += 1;
                assert!(metric_name.starts_with("powkit_"), "{line}");
                let v: f64 = value.parse().unwrap_or_else(|_| panic!("not a number: {line}"));
                assert!(!v.is_nan(), "{line}");
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| {
                        metric_name.strip_suffix(s).filter(|b| types.get(*b).is_some_and(|t| t == "histogram"))
                    })
                    .unwrap_or(metric_name);
                assert!(types.contains_key(base), "sample before its TYPE line: {line}");
            }
            LineInfo::Ignored => panic!("a line that is not Prometheus text: {line:?}"),
        }
    }
    // An empty scrape (nothing recorded yet) is valid text too.
    let _ = samples;
}

/// A sample's value (a counter or gauge; a histogram's count), `None` when absent.
fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    s.samples
        .iter()
        .filter(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            PValue::Counter(v) | PValue::Gauge(v) => {
                assert_eq!(
                    matches!(x.value, PValue::Counter(_)),
                    name.ends_with("_total"),
                    "{name} parsed as {:?}",
                    x.value
                );
                *v
            }
            PValue::Histogram(b) => b.iter().map(|c| c.count).fold(0.0, f64::max),
            other => panic!("{name}: unexpected {other:?}"),
        })
        .reduce(|a, b| a + b)
}

fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(t.elapsed() < Duration::from_secs(secs), "{what}: not within {secs} s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `node.json`, once the node wrote it.
fn node_info(dir: &Path, p: &mut Proc) -> Value {
    let t = Instant::now();
    loop {
        if let Some(v) = std::fs::read_to_string(dir.join("node.json")).ok().and_then(|s| serde_json::from_str(&s).ok())
        {
            return v;
        }
        if let Some(st) = p.child.try_wait().unwrap() {
            panic!("node exited with {st}:\n{}", p.log());
        }
        assert!(t.elapsed() < Duration::from_secs(30), "node did not start:\n{}", p.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn node_args<'a>(dir: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["node", "--chain", "powkit-regtest", "--datadir", dir, "--rpc", "127.0.0.1:0"];
    a.extend(["--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0"]);
    a.extend_from_slice(extra);
    a
}

/// A mining node: height and blocks connected rise together, hashes are counted by backend and
/// implementation, blocks are timed, RPC calls are counted by method and outcome; the listener
/// answers garbage with an error and keeps serving.
#[test]
fn a_mining_node_s_metrics_move_as_blocks_are_mined() {
    let d = common::tmp_dir("metrics", "node");
    let key = d.join("miner.key");
    common::new_key(&key);
    let dir = d.join("n");
    std::fs::create_dir_all(&dir).unwrap();
    let args = node_args(dir.to_str().unwrap(), &["--mine", "--miner-key", key.to_str().unwrap(), "--threads", "1"]);
    let mut node = Proc::start(&args, &d.join("node.log"));
    let addr = node.metrics_addr();
    let info = node_info(&dir, &mut node);
    let rpc = |method: &str| {
        let auth = powkit::node::rpc::RpcAuth::from_datadir(&dir).unwrap();
        powkit::node::rpc::call_remote(info["rpc"].as_str().unwrap(), &auth, method, json!([]))
    };
    let height = |s: &Scrape| value(s, "powkit_chain_height", &[]).unwrap_or(0.0);
    wait_for("a first block", 60, || height(&scrape(&addr)) >= 1.0);
    let a = scrape(&addr);
    let h0 = height(&a);
    let connected0 = value(&a, "powkit_chain_blocks_connected_total", &[]).expect("blocks connected");
    let hashes0 = value(&a, "powkit_mine_hashes_total", &[("backend", "cpu")]).expect("cpu hashes");
    let timed0 = value(&a, "powkit_chain_block_validation_seconds", &[]).expect("validation histogram");
    let found0 = value(&a, "powkit_mine_blocks_found_total", &[]).expect("blocks found");
    assert!(connected0 >= h0, "connected {connected0} < height {h0}");
    wait_for("three more blocks", 60, || height(&scrape(&addr)) >= h0 + 3.0);
    let b = scrape(&addr);
    let h1 = height(&b);
    let connected1 = value(&b, "powkit_chain_blocks_connected_total", &[]).unwrap();
    assert!(connected1 - connected0 >= h1 - h0, "height {h0} -> {h1}, connected {connected0} -> {connected1}");
    assert!(value(&b, "powkit_mine_hashes_total", &[("backend", "cpu")]).unwrap() > hashes0);
    assert!(value(&b, "powkit_chain_block_validation_seconds", &[]).unwrap() >= timed0 + 3.0);
    assert!(value(&b, "powkit_mine_blocks_found_total", &[]).unwrap() >= found0 + 3.0);
    let imp = b
        .samples
        .iter()
        .find(|x| x.metric == "powkit_mine_hashes_total")
        .and_then(|x| x.labels.get("implementation").map(str::to_string))
        .unwrap();
    assert!(["scalar", "avx2", "avx512", "shani"].contains(&imp.as_str()), "{imp}");
    // Gauges read from the node.
    assert!(value(&b, "powkit_chain_headers", &[]).unwrap() >= h1);
    assert!(value(&b, "powkit_chain_work", &[]).unwrap() > 0.0);
    assert!(value(&b, "powkit_chain_tip_age_seconds", &[]).is_some());
    assert_eq!(value(&b, "powkit_net_peers", &[("direction", "inbound")]), Some(0.0));
    // RPC: an answered call and a refused one.
    let ok = |s: &Scrape| value(s, "powkit_rpc_calls_total", &[("method", "getblockcount"), ("outcome", "ok")]);
    let before = ok(&b).unwrap_or(0.0);
    rpc("getblockcount").unwrap();
    assert!(rpc("nosuchmethod").is_err());
    let c = scrape(&addr);
    assert_eq!(ok(&c), Some(before + 1.0));
    assert!(value(&c, "powkit_rpc_calls_total", &[("method", "other"), ("outcome", "error")]).unwrap() >= 1.0);
    assert!(value(&c, "powkit_rpc_call_seconds", &[("method", "getblockcount")]).unwrap() >= 1.0);

    // A hostile scraper gets an error and the listener keeps serving.
    assert_eq!(http(&addr, b"GET / HTTP/1.1\r\n\r\n").0, 404);
    assert_eq!(http(&addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").0, 405);
    assert_eq!(http(&addr, b"garbage\r\n\r\n").0, 400);
    let mut huge = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 20_000));
    huge.extend(b"\r\n\r\n");
    assert_eq!(http(&addr, &huge).0, 431);
    let silent = TcpStream::connect(&addr).unwrap(); // holds a slot until its timeout
    scrape(&addr);
    drop(silent);
    let _ = std::fs::remove_dir_all(&d);
}

/// `powkit mine --pool` against `powkit node --stratum`, both with `--metrics`: the miner's hashes
/// and accepted shares grow; the server counts the worker's accepted shares and its client, and a
/// share for a job it never issued raises `powkit_stratum_shares_rejected_total{reason="job_not_found"}`.
/// A node in `d/n` with `--metrics` and a Stratum server (difficulty 0.001) paying a new key, started
/// and answering: the process and the Stratum address.
fn stratum_node(d: &Path) -> (Proc, String) {
    let key = d.join("miner.key");
    common::new_key(&key);
    let dir = d.join("n");
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let stratum = format!("127.0.0.1:{port}");
    let extra = ["--stratum", &stratum, "--miner-key", key.to_str().unwrap(), "--stratum-difficulty", "0.001"];
    let mut node = Proc::start(&node_args(dir.to_str().unwrap(), &extra), &d.join("node.log"));
    node_info(&dir, &mut node);
    (node, stratum)
}

#[test]
fn miner_and_stratum_server_metrics_move_with_shares() {
    let d = common::tmp_dir("metrics", "miner");
    let (mut node, stratum) = stratum_node(&d);
    let node_addr = node.metrics_addr();
    let url = format!("stratum+tcp://{stratum}");
    let miner_args = ["mine", "--pool", &url, "--user", "w1", "--backend", "cpu", "--threads", "1"];
    let mut miner = Proc::start(&[&miner_args[..], &["--metrics", "127.0.0.1:0"]].concat(), &d.join("miner.log"));
    let miner_addr = miner.metrics_addr();

    let accepted = |s: &Scrape| value(s, "powkit_mine_shares_accepted_total", &[]).unwrap_or(0.0);
    wait_for("a share accepted", 60, || accepted(&scrape(&miner_addr)) >= 1.0);
    let m0 = scrape(&miner_addr);
    let hashes0 = value(&m0, "powkit_mine_hashes_total", &[("backend", "cpu")]).unwrap();
    let a0 = accepted(&m0);
    wait_for("two more shares accepted", 60, || accepted(&scrape(&miner_addr)) >= a0 + 2.0);
    let m1 = scrape(&miner_addr);
    assert!(value(&m1, "powkit_mine_hashes_total", &[("backend", "cpu")]).unwrap() > hashes0);
    assert!(value(&m1, "powkit_mine_hash_rate", &[]).unwrap() > 0.0);

    let n0 = scrape(&node_addr);
    assert_eq!(value(&n0, "powkit_stratum_clients", &[]), Some(1.0));
    assert!(value(&n0, "powkit_stratum_shares_accepted_total", &[("worker", "w1")]).unwrap() >= 1.0);
    let rejected = |s: &Scrape| value(s, "powkit_stratum_shares_rejected_total", &[("reason", "job_not_found")]);
    let r0 = rejected(&n0).unwrap_or(0.0);

    // A scripted client: subscribe, authorize, and a share for a job id never issued.
    let mut s = TcpStream::connect(&stratum).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut call = |id: u64, method: &str, params: Value| -> Value {
        writeln!(s, "{}", json!({"id": id, "method": method, "params": params})).unwrap();
        loop {
            let mut line = String::new();
            assert!(r.read_line(&mut line).unwrap() > 0, "closed");
            let v: Value = serde_json::from_str(&line).unwrap();
            if v["id"] == json!(id) {
                return v;
            }
        }
    };
    call(1, "mining.subscribe", json!(["test"]));
    assert_eq!(call(2, "mining.authorize", json!(["bad", "x"]))["result"], json!(true));
    let v = call(3, "mining.submit", json!(["bad", "nosuchjob", "0000000000000000", "00000000", "00000000"]));
    assert_eq!(v["error"][0], json!(21), "{v}");
    let n1 = scrape(&node_addr);
    assert_eq!(rejected(&n1), Some(r0 + 1.0), "job_not_found did not move");
    assert_eq!(value(&n1, "powkit_stratum_clients", &[]), Some(2.0));
    let _ = std::fs::remove_dir_all(&d);
}

/// `powkit pool` on a regtest bitcoind with `--metrics`: a rejected share raises its reason's
/// counter, `powkit mine --pool` makes accepted shares and blocks move, and the client gauge counts
/// the connections.
#[test]
fn powkit_pool_metrics_move_with_shares_and_blocks() {
    let Some(bin) = bitcoind::find_bitcoind() else { return };
    let d = common::tmp_dir("metrics", "pool");
    let node = bitcoind::Bitcoind::start(&bin, &d.join("node"), false, &[]);
    let payout = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
    node.call("generatetoaddress", json!([1, payout]));
    let url = format!("http://127.0.0.1:{}", node.rpc_port);
    let cookie = d.join("node/regtest/.cookie");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let stratum = format!("127.0.0.1:{port}");
    let args = [
        "pool",
        "--bitcoind",
        &url,
        "--rpc-cookie",
        cookie.to_str().unwrap(),
        "--coinbase-address",
        payout,
        "--stratum",
        &stratum,
        "--difficulty",
        "0.001",
        "--poll-seconds",
        "0.2",
        "--stats-interval",
        "0",
        "--metrics",
        "127.0.0.1:0",
    ];
    let mut pool = Proc::start(&args, &d.join("pool.log"));
    let addr = pool.metrics_addr();
    wait_for("the pool's Stratum port", 60, || TcpStream::connect(&stratum).is_ok());
    let rejected = |s: &Scrape, reason: &str| {
        value(s, "powkit_stratum_shares_rejected_total", &[("reason", reason)]).unwrap_or(0.0)
    };
    let p0 = scrape(&addr);
    let (nf0, uw0) = (rejected(&p0, "job_not_found"), rejected(&p0, "unauthorized"));

    let mut s = TcpStream::connect(&stratum).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut call = |id: u64, method: &str, params: Value| -> Value {
        writeln!(s, "{}", json!({"id": id, "method": method, "params": params})).unwrap();
        loop {
            let mut line = String::new();
            assert!(r.read_line(&mut line).unwrap() > 0, "closed");
            let v: Value = serde_json::from_str(&line).unwrap();
            if v["id"] == json!(id) {
                return v;
            }
        }
    };
    call(1, "mining.subscribe", json!(["test"]));
    // A worker that never authorized, then a job never issued.
    let v = call(2, "mining.submit", json!(["ghost", "nosuchjob", "0000000000000000", "00000000", "00000000"]));
    assert_eq!(v["error"][0], json!(24), "{v}");
    call(3, "mining.authorize", json!(["bad", "x"]));
    let v = call(4, "mining.submit", json!(["bad", "nosuchjob", "0000000000000000", "00000000", "00000000"]));
    assert_eq!(v["error"][0], json!(21), "{v}");
    let p1 = scrape(&addr);
    assert_eq!(rejected(&p1, "unauthorized"), uw0 + 1.0);
    assert_eq!(rejected(&p1, "job_not_found"), nf0 + 1.0);
    assert_eq!(value(&p1, "powkit_stratum_clients", &[]), Some(1.0));

    let height0 = node.call("getblockcount", json!([])).as_u64().unwrap();
    let miner_args = ["mine", "--pool", &format!("stratum+tcp://{stratum}"), "--user", "m", "--backend", "cpu"];
    let _miner = Proc::start(&[&miner_args[..], &["--threads", "1"]].concat(), &d.join("miner.log"));
    let blocks = |s: &Scrape| value(s, "powkit_stratum_blocks_total", &[("outcome", "accepted")]).unwrap_or(0.0);
    wait_for("a block through the pool", 120, || blocks(&scrape(&addr)) >= 1.0);
    let p2 = scrape(&addr);
    assert!(value(&p2, "powkit_stratum_shares_accepted_total", &[("worker", "m")]).unwrap() >= 1.0);
    assert_eq!(value(&p2, "powkit_stratum_clients", &[]), Some(2.0));
    assert!(node.call("getblockcount", json!([])).as_u64().unwrap() > height0);
    let _ = std::fs::remove_dir_all(&d);
}

/// The text checks themselves fail on what is not Prometheus text or carries the wrong type.
#[test]
#[should_panic(expected = "not Prometheus text")]
fn the_text_check_refuses_a_broken_line() {
    check_text("# TYPE powkit_x_total counter\npowkit_x_total{a=\"1\" 2\n");
}

#[test]
#[should_panic(expected = "assertion `left == right` failed")]
fn the_text_check_refuses_a_counter_typed_as_a_gauge() {
    check_text("# TYPE powkit_x_total gauge\npowkit_x_total 2\n");
}

/// A scripted pool that rejects every share as low difficulty (code 23): serves one job at a tiny
/// share difficulty, on a network target no share meets (so none is a block). Returns its port.
fn rejecting_pool() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut w = conn.try_clone().unwrap();
                let r = BufReader::new(conn);
                let mut send = |v: Value| writeln!(w, "{v}").is_ok();
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
                for line in r.lines().map_while(Result::ok) {
                    let Ok(m) = serde_json::from_str::<Value>(&line) else { return };
                    let id = m["id"].clone();
                    let ok = match m["method"].as_str().unwrap_or("") {
                        "mining.configure" => {
                            send(json!({"id": id, "result": {"version-rolling": false}, "error": null}))
                        }
                        "mining.subscribe" => {
                            send(json!({"id": id, "result": [[["mining.notify", "s1"]], "01020304", 4], "error": null}))
                        }
                        "mining.authorize" => {
                            send(json!({"id": id, "result": true, "error": null}))
                                && send(json!({"id": null, "method": "mining.set_difficulty", "params": [0.0001]}))
                                && send(json!({"id": null, "method": "mining.notify", "params": [
                                    "j1", "00".repeat(32), "01000000", "ffffffff", [], "20000000", "1d00ffff",
                                    format!("{now:08x}"), true
                                ]}))
                        }
                        "mining.submit" => {
                            send(json!({"id": id, "result": null, "error": [23, "low difficulty share", null]}))
                        }
                        _ => send(json!({"id": id, "result": true, "error": null})),
                    };
                    if !ok {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// The miner's side of a rejection: against a pool that rejects every share with 23,
/// `powkit_mine_shares_rejected_total{reason="low_difficulty"}` rises, nothing is counted
/// accepted, and cgminer's API (`--api-listen`) shows the same `Rejected` and `Difficulty Rejected`.
#[test]
fn a_share_the_pool_rejects_raises_the_miner_s_reason_counter() {
    let d = common::tmp_dir("metrics", "rejected");
    let url = format!("stratum+tcp://127.0.0.1:{}", rejecting_pool());
    let args = ["mine", "--pool", &url, "--user", "w", "--backend", "cpu", "--threads", "1"];
    let extra = ["--metrics", "127.0.0.1:0", "--api-listen", "127.0.0.1:0"];
    let mut miner = Proc::start(&[&args[..], &extra].concat(), &d.join("miner.log"));
    let addr = miner.metrics_addr();
    let rejected = |s: &Scrape| value(s, "powkit_mine_shares_rejected_total", &[("reason", "low_difficulty")]);
    wait_for("two rejected shares", 60, || rejected(&scrape(&addr)).unwrap_or(0.0) >= 2.0);
    let s = scrape(&addr);
    assert_eq!(value(&s, "powkit_mine_shares_accepted_total", &[]), None);
    assert_eq!(value(&s, "powkit_mine_blocks_found_total", &[]), None);
    let api_addr = {
        let log = miner.log();
        let line = log.lines().find(|l| l.starts_with("api: cgminer API on ")).expect("api line").to_string();
        line["api: cgminer API on ".len()..].trim().to_string()
    };
    let mut c = TcpStream::connect(&api_addr).unwrap();
    c.write_all(br#"{"command":"summary"}"#).unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).unwrap();
    let v: Value = serde_json::from_slice(&out[..out.len() - 1]).unwrap();
    let sum = &v["SUMMARY"][0];
    assert!(sum["Rejected"].as_u64().unwrap() >= 2, "{sum}");
    assert_eq!(sum["Accepted"], 0, "{sum}");
    assert!(sum["Difficulty Rejected"].as_f64().unwrap() > 0.0, "{sum}");
    assert!(sum["Pool Rejected%"].as_f64().unwrap() > 99.0, "{sum}");
    drop(miner);
    let _ = std::fs::remove_dir_all(&d);
}

/// The GPU engine's labels: `powkit mine --pool --backend gpu` (lavapipe in CI) counts its hashes as
/// `powkit_mine_hashes_total{backend="gpu",implementation="wgsl"}`, never as the CPU's, and they move
/// with accepted shares.
#[test]
fn gpu_mining_is_labelled_gpu_and_wgsl() {
    if !common::have_gpu() {
        return;
    }
    let d = common::tmp_dir("metrics", "gpu");
    let (_node, stratum) = stratum_node(&d);
    let url = format!("stratum+tcp://{stratum}");
    let miner_args = ["mine", "--pool", &url, "--user", "g1", "--backend", "gpu", "--gpu-allow-software"];
    let mut miner = Proc::start(&[&miner_args[..], &["--metrics", "127.0.0.1:0"]].concat(), &d.join("miner.log"));
    let addr = miner.metrics_addr();
    let gpu = |s: &Scrape| value(s, "powkit_mine_hashes_total", &[("backend", "gpu"), ("implementation", "wgsl")]);
    let accepted = |s: &Scrape| value(s, "powkit_mine_shares_accepted_total", &[]).unwrap_or(0.0);
    // The shader compiles first (seconds on lavapipe).
    wait_for("GPU hashes and a share", 300, || {
        let s = scrape(&addr);
        gpu(&s).unwrap_or(0.0) > 0.0 && accepted(&s) >= 1.0
    });
    let s0 = scrape(&addr);
    let (h0, a0) = (gpu(&s0).unwrap(), accepted(&s0));
    wait_for("more GPU hashes and shares", 120, || {
        let s = scrape(&addr);
        gpu(&s).unwrap_or(0.0) > h0 && accepted(&s) > a0
    });
    let s1 = scrape(&addr);
    assert_eq!(value(&s1, "powkit_mine_hashes_total", &[("backend", "cpu")]), None, "CPU hashes on --backend gpu");
    assert!(s1
        .samples
        .iter()
        .filter(|x| x.metric == "powkit_mine_hashes_total")
        .all(|x| x.labels.get("backend") == Some("gpu") && x.labels.get("implementation") == Some("wgsl")));
    assert!(value(&s1, "powkit_mine_hash_rate", &[]).unwrap() > 0.0);
    let _ = std::fs::remove_dir_all(&d);
}
