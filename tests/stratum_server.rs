//! The Stratum job server (issue 14, section 3): a scripted client against `stratum::server` over
//! TCP, with a template source whose templates the test controls. Each kind of faulty share gets
//! its standard code; malformed and oversized lines close the connection; a share that meets the
//! network target reaches the source as a block whose header and coinbase are the job's; session
//! resume; per-worker statistics.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use powkit::primitives::{sha256d, BlockHash, BlockHeader, CompactTarget};
use powkit::stratum::job::{JobSource, Template};
use powkit::stratum::server::{Server, ServerConfig};
use powkit::stratum::work;
use serde_json::{json, Value};

const CURTIME: u32 = 1_800_000_000;
/// 2^-32: a share target of the difficulty-1 target x 2^32, met by all but 1 in 65,536 hashes.
const MIN_DIFFICULTY: f64 = 1.0 / 4_294_967_296.0;

struct Mock {
    t: Mutex<Template>,
    blocks: Mutex<Vec<(Template, BlockHeader, Vec<u8>)>>,
}

impl Mock {
    fn new(bits: u32) -> Arc<Mock> {
        Arc::new(Mock {
            t: Mutex::new(Template {
                id: 1,
                height: 5,
                prev_hash: BlockHash([7; 32]),
                version: 0x2000_0000,
                bits: CompactTarget(bits),
                curtime: CURTIME,
                mintime: CURTIME - 600,
                coinb1: vec![1, 2, 3],
                coinb2: vec![4, 5],
                extranonce_size: 12,
                merkle_branch: vec![[9; 32], [8; 32]],
                tx_count: 3,
            }),
            blocks: Mutex::new(Vec::new()),
        })
    }

    /// A new tip: a new parent, a new id.
    fn new_tip(&self) {
        let mut t = self.t.lock().unwrap();
        t.id += 1;
        t.height += 1;
        t.prev_hash = BlockHash([t.id as u8; 32]);
    }
}

impl JobSource for Mock {
    fn name(&self) -> String {
        "mock".into()
    }
    fn template(&self, extranonce_size: usize) -> Result<Template, String> {
        assert_eq!(extranonce_size, 12, "4 bytes of extranonce1 and 8 of extranonce2");
        Ok(self.t.lock().unwrap().clone())
    }
    fn wait_for_change(&self, since: &Template, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.t.lock().unwrap().id != since.id {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
    fn submit_block(&self, template: &Template, header: &BlockHeader, coinbase: &[u8]) -> Result<(), String> {
        self.blocks.lock().unwrap().push((template.clone(), *header, coinbase.to_vec()));
        Ok(())
    }
}

fn server(source: Arc<Mock>, difficulty: f64) -> Server {
    let cfg = ServerConfig {
        initial_difficulty: Some(difficulty),
        poll: Duration::from_millis(50),
        retarget_interval: Duration::from_secs(3600),
        ..ServerConfig::default()
    };
    Server::start("127.0.0.1:0".parse().unwrap(), source, cfg).unwrap()
}

/// A scripted Stratum client.
struct Client {
    w: TcpStream,
    r: BufReader<TcpStream>,
    next_id: u64,
    /// Notifications seen (method, params), in order.
    notes: Vec<(String, Value)>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let w = TcpStream::connect(addr).unwrap();
        w.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let r = BufReader::new(w.try_clone().unwrap());
        Client { w, r, next_id: 1, notes: Vec::new() }
    }

    fn line(&mut self) -> Option<Value> {
        let mut l = String::new();
        match self.r.read_line(&mut l) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(serde_json::from_str(&l).unwrap_or_else(|e| panic!("{l:?}: {e}"))),
        }
    }

    /// Sends a request; returns (result, error) of its response, keeping notifications.
    fn call(&mut self, method: &str, params: Value) -> (Value, Value) {
        let id = self.next_id;
        self.next_id += 1;
        let req = json!({"id": id, "method": method, "params": params});
        self.w.write_all(format!("{req}\n").as_bytes()).unwrap();
        loop {
            let v = self.line().unwrap_or_else(|| panic!("connection closed waiting for {method}"));
            if v["id"] == json!(id) {
                return (v["result"].clone(), v["error"].clone());
            }
            self.notes.push((v["method"].as_str().unwrap_or("").to_string(), v["params"].clone()));
        }
    }

    /// Waits for a notification `method` (seen already or arriving).
    fn note(&mut self, method: &str) -> Value {
        loop {
            if let Some(i) = self.notes.iter().position(|(m, _)| m == method) {
                return self.notes.remove(i).1;
            }
            let v = self.line().unwrap_or_else(|| panic!("connection closed waiting for {method}"));
            self.notes.push((v["method"].as_str().unwrap_or("").to_string(), v["params"].clone()));
        }
    }

    /// The last `mining.notify` received (waiting for one if none is pending).
    fn last_notify(&mut self) -> Value {
        let mut n = self.note("mining.notify");
        while let Some(i) = self.notes.iter().position(|(m, _)| m == "mining.notify") {
            n = self.notes.remove(i).1;
        }
        n
    }

    /// Whether the server closed the connection (within the read timeout).
    fn closed(&mut self) -> bool {
        let mut b = [0u8; 4096];
        loop {
            match self.r.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
            }
        }
    }
}

fn code(e: &Value) -> i64 {
    assert!(e.is_array() && e[2].is_null(), "errors are [code, message, null]: {e}");
    e[0].as_i64().unwrap()
}

/// Subscribes and authorizes `worker`; returns (extranonce1, the job's notify params).
fn ready(c: &mut Client, worker: &str) -> (Vec<u8>, Value) {
    let (r, e) = c.call("mining.subscribe", json!(["test/1"]));
    assert!(e.is_null(), "{e}");
    let en1 = hex(r[1].as_str().unwrap());
    assert_eq!((en1.len(), r[2].as_u64()), (4, Some(8)));
    assert_eq!(c.call("mining.authorize", json!([worker, "x"])).0, json!(true));
    (en1, c.last_notify())
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn submit(
    c: &mut Client,
    worker: &str,
    job: &str,
    en2: &str,
    ntime: u32,
    nonce: u32,
    vb: Option<u32>,
) -> (Value, Value) {
    let mut p =
        vec![json!(worker), json!(job), json!(en2), json!(format!("{ntime:08x}")), json!(format!("{nonce:08x}"))];
    if let Some(v) = vb {
        p.push(json!(format!("{v:08x}")));
    }
    c.call("mining.submit", Value::Array(p))
}

#[test]
fn every_faulty_share_gets_its_code() {
    let mock = Mock::new(0x1d00_ffff);
    let s = server(mock.clone(), 1.0);
    let mut c = Client::connect(s.address());
    // Not subscribed (25).
    let (_, e) = submit(&mut c, "w1", "1", "0000000000000000", CURTIME, 0, None);
    assert_eq!(code(&e), 25, "{e}");
    // BIP310: the granted mask is the server's AND the miner's.
    let (r, _) = c.call("mining.configure", json!([["version-rolling"], {"version-rolling.mask": "ffffffff"}]));
    assert_eq!(r["version-rolling"], json!(true));
    assert_eq!(r["version-rolling.mask"], json!("1fffe000"));
    let (r, _) = c.call("mining.subscribe", json!(["test/1"]));
    assert_eq!(r[0][1][0], json!("mining.notify"));
    assert_eq!(c.note("mining.set_difficulty"), json!([1.0]));
    let n = c.last_notify();
    let job = n[0].as_str().unwrap().to_string();
    assert_eq!(n[8], json!(true), "the first job is clean");
    // Unauthorized worker (24).
    let (_, e) = submit(&mut c, "w1", &job, "0000000000000000", CURTIME, 0, None);
    assert_eq!(code(&e), 24, "{e}");
    assert_eq!(c.call("mining.authorize", json!(["w1", "x"])).0, json!(true));
    assert_eq!(c.call("mining.extranonce.subscribe", json!([])).0, json!(true));
    // Unknown job (21).
    let (_, e) = submit(&mut c, "w1", "nope", "0000000000000000", CURTIME, 0, None);
    assert_eq!(code(&e), 21, "{e}");
    // extranonce2 of the wrong size (20).
    let (_, e) = submit(&mut c, "w1", &job, "00000000", CURTIME, 0, None);
    assert_eq!(code(&e), 20, "{e}");
    assert!(e[1].as_str().unwrap().contains("extranonce2"), "{e}");
    // ntime outside [mintime, curtime + 7200] (20).
    for t in [CURTIME - 601, CURTIME + 7201] {
        let (_, e) = submit(&mut c, "w1", &job, "0000000000000000", t, 0, None);
        assert_eq!(code(&e), 20, "{e}");
        assert!(e[1].as_str().unwrap().contains("ntime"), "{e}");
    }
    // Version bits outside the mask (20).
    let (_, e) = submit(&mut c, "w1", &job, "0000000000000000", CURTIME, 0, Some(1));
    assert_eq!(code(&e), 20, "{e}");
    assert!(e[1].as_str().unwrap().contains("mask"), "{e}");
    // Malformed params (20).
    let (_, e) = c.call("mining.submit", json!(["w1", job, "zz", "00", 5]));
    assert_eq!(code(&e), 20, "{e}");
    // Above the share target at difficulty 1 (23): a nonce meets it once in 2^32.
    let (_, e) = submit(&mut c, "w1", &job, "0000000000000001", CURTIME, 0, Some(0x2000));
    assert_eq!(code(&e), 23, "{e}");
    // Each nonce's hash meets a tiny difficulty: accepted, then a duplicate (22).
    assert_eq!(c.call("mining.suggest_difficulty", json!([MIN_DIFFICULTY])).0, json!(true));
    let (r, e) = submit(&mut c, "w1", &job, "0000000000000002", CURTIME + 1, 7, Some(0x2000));
    assert_eq!((r.clone(), e.clone()), (json!(true), Value::Null), "{e}");
    let (_, e) = submit(&mut c, "w1", &job, "0000000000000002", CURTIME + 1, 7, Some(0x2000));
    assert_eq!(code(&e), 22, "{e}");
    // A rolled version is another header: not a duplicate.
    let (r, _) = submit(&mut c, "w1", &job, "0000000000000002", CURTIME + 1, 7, Some(0x4000));
    assert_eq!(r, json!(true));
    // A new tip: a clean job reaches the client, and the old job is stale (21).
    mock.new_tip();
    let n = c.last_notify();
    assert_eq!(n[8], json!(true), "{n}");
    assert_ne!(n[0].as_str().unwrap(), job);
    let (_, e) = submit(&mut c, "w1", &job, "0000000000000003", CURTIME, 0, None);
    assert_eq!(code(&e), 21, "{e}");
    assert!(e[1].as_str().unwrap().contains("stale"), "{e}");
    // Per-worker statistics, by reason.
    let st = s.stats();
    let w = &st.workers["w1"];
    assert_eq!(w.accepted, 2);
    assert_eq!(w.stale, 1);
    for (k, n) in [("job not found", 1), ("extranonce2 size", 1), ("ntime", 2), ("version bits", 1), ("malformed", 1)] {
        assert_eq!(w.rejected.get(k), Some(&n), "{k}: {:?}", w.rejected);
    }
    assert_eq!(w.rejected.get("low difficulty"), Some(&1));
    assert_eq!(w.rejected.get("duplicate"), Some(&1));
    assert_eq!(w.rejected.get("stale"), Some(&1));
    assert!(mock.blocks.lock().unwrap().is_empty(), "no share met 1d00ffff");
    assert_eq!((st.clients, st.subscribed), (1, 1));
}

#[test]
fn malformed_and_oversized_lines_close_the_connection() {
    let s = server(Mock::new(0x1d00_ffff), 1.0);
    let mut c = Client::connect(s.address());
    c.w.write_all(b"{this is not json\n").unwrap();
    assert!(c.closed(), "a malformed line closes the connection");
    let mut c = Client::connect(s.address());
    c.w.write_all(b"[1,2,3]\n").unwrap();
    assert!(c.closed(), "a JSON array is not a message");
    let mut c = Client::connect(s.address());
    // 100 KiB without a newline: over the 64 KiB line limit.
    let _ = c.w.write_all(&vec![b'a'; 100 * 1024]);
    assert!(c.closed(), "an oversized line closes the connection");
    // JSON nested as deep as a line allows: refused by the parser, on the connection's stack.
    let mut c = Client::connect(s.address());
    let _ = c.w.write_all(format!("{}\n", "[".repeat(60_000)).as_bytes());
    assert!(c.closed(), "deep nesting closes the connection");
    let mut c = Client::connect(s.address());
    let _ = c.w.write_all(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"\xff\xfe\"]}\n");
    assert!(c.closed(), "a line that is not UTF-8 closes the connection");
    // Authorizing worker after worker: at most 64 per connection.
    let mut c = Client::connect(s.address());
    for i in 0..64 {
        assert_eq!(c.call("mining.authorize", json!([format!("w{i}"), "x"])).0, json!(true));
    }
    assert_eq!(code(&c.call("mining.authorize", json!(["w64", "x"])).1), 20);
    // The server still serves.
    let mut c = Client::connect(s.address());
    let (en1, _) = ready(&mut c, "w");
    assert_eq!(en1.len(), 4);
}

/// A share that meets the network target is a block: the source gets the job's header and the
/// coinbase coinb1 + extranonce1 + extranonce2 + coinb2, the header's merkle root that
/// coinbase's txid up the branch.
#[test]
fn a_share_meeting_the_network_target_becomes_a_block() {
    let mock = Mock::new(0x207f_ffff);
    let s = server(mock.clone(), MIN_DIFFICULTY);
    let mut c = Client::connect(s.address());
    let (en1, n) = ready(&mut c, "w");
    let job = n[0].as_str().unwrap().to_string();
    let target = CompactTarget(0x207f_ffff).to_target().unwrap();
    let t = mock.template(12).unwrap();
    let mut found = None;
    for nonce in 0..64u32 {
        let en2 = [0, 0, 0, 0, 0, 0, 0, nonce as u8];
        let cb = work::coinbase(&t.coinb1, &en1, &en2, &t.coinb2);
        let h = BlockHeader {
            version: t.version,
            prev_blockhash: t.prev_hash,
            merkle_root: powkit::primitives::TxMerkleNode(work::merkle_root(sha256d(&cb), &t.merkle_branch)),
            time: CURTIME,
            bits: t.bits,
            nonce,
        };
        if target.is_met_by(&h.block_hash()) {
            let (r, e) = submit(&mut c, "w", &job, &format!("00000000000000{nonce:02x}"), CURTIME, nonce, None);
            assert_eq!(r, json!(true), "{e}");
            found = Some((h, cb));
            break;
        }
    }
    let (h, cb) = found.expect("about half of all hashes meet 207fffff");
    let blocks = mock.blocks.lock().unwrap().clone();
    assert_eq!(blocks.len(), 1);
    assert_eq!((blocks[0].1, blocks[0].2.clone()), (h, cb));
    assert_eq!(s.stats().workers["w"].blocks, 1);
    assert_eq!(s.stats().blocks, 1);
}

/// Each connection has its own extranonce1; a miner that reconnects with its session id gets its
/// extranonce1 back, unless another connection holds it.
#[test]
fn sessions_resume_with_their_extranonce1() {
    let s = server(Mock::new(0x1d00_ffff), 1.0);
    let mut a = Client::connect(s.address());
    let (r, _) = a.call("mining.subscribe", json!(["test/1"]));
    let sid = r[0][0][1].as_str().unwrap().to_string();
    let en1 = r[1].as_str().unwrap().to_string();
    let mut b = Client::connect(s.address());
    let (r, _) = b.call("mining.subscribe", json!(["test/1", sid]));
    assert_ne!(r[1].as_str().unwrap(), en1, "held by a live connection: not shared");
    drop(a);
    std::thread::sleep(Duration::from_millis(200));
    let mut c = Client::connect(s.address());
    let (r, _) = c.call("mining.subscribe", json!(["test/1", sid]));
    assert_eq!(r[1].as_str().unwrap(), en1, "resumed");
    let mut d = Client::connect(s.address());
    let (r, _) = d.call("mining.subscribe", json!(["test/1", "ffffffff"]));
    assert_ne!(r[1].as_str().unwrap(), "ffffffff", "an id never issued is not taken");
}

/// A `powkit node` process on powkit-regtest; killed when dropped.
struct NodeProc {
    dir: std::path::PathBuf,
    child: std::process::Child,
    info: Value,
}

impl NodeProc {
    fn start(dir: &std::path::Path, extra: &[&str]) -> NodeProc {
        std::fs::create_dir_all(dir).unwrap();
        let log = std::fs::File::create(dir.join("node.log")).unwrap();
        let d = dir.to_str().unwrap();
        let mut args = vec!["node", "--chain", "powkit-regtest", "--datadir", d, "--rpc", "127.0.0.1:0"];
        args.extend_from_slice(&["--listen", "127.0.0.1:0", "--log", "debug"]);
        args.extend_from_slice(extra);
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_powkit"))
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut n = NodeProc { dir: dir.to_path_buf(), child, info: Value::Null };
        let t = Instant::now();
        while n.info.is_null() {
            if let Some(v) =
                std::fs::read_to_string(dir.join("node.json")).ok().and_then(|s| serde_json::from_str(&s).ok())
            {
                n.info = v;
            }
            assert!(t.elapsed() < Duration::from_secs(30), "node did not start:\n{}", n.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        n
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default()
    }

    fn rpc(&self, method: &str) -> Value {
        let auth = powkit::node::rpc::RpcAuth::from_datadir(&self.dir).unwrap();
        powkit::node::rpc::call_remote(self.info["rpc"].as_str().unwrap(), &auth, method, json!([]))
            .unwrap_or_else(|e| panic!("{method}: {e}\n{}", self.log()))
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Real Stratum miners no one here wrote, pooler's `minerd` 2.5.1 and cpuminer-opt 26.1, mine
/// powkit-regtest blocks through `powkit node --stratum`: the blocks extend the chain (paying the
/// node's miner key), and reach a second node over P2P.
#[test]
fn real_miners_mine_blocks_through_powkit_node_stratum() {
    let Some(miners) = common::peer_miners() else { return };
    let d = std::env::temp_dir().join(format!("powkit-stratum-real-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let key = d.join("miner.key");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_powkit"))
        .args(["key", "new", "--out", key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success());
    let pk = String::from_utf8(o.stdout).unwrap().trim().to_string();
    let a = NodeProc::start(&d.join("a"), &["--stratum", "127.0.0.1:0", "--miner-key", key.to_str().unwrap()]);
    let stratum = a.info["stratum"].as_str().unwrap().to_string();
    let b = NodeProc::start(&d.join("b"), &["--peer", a.info["p2p"].as_str().unwrap()]);
    for (name, bin) in miners {
        let h0 = a.rpc("getblockcount").as_u64().unwrap();
        let log = std::fs::File::create(d.join(format!("{name}.log"))).unwrap();
        let url = format!("stratum+tcp://{stratum}");
        let mut m = std::process::Command::new(&bin)
            .args(["-a", "sha256d", "-o", &url, "-u", name, "-p", "x", "-t", "1"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let t = Instant::now();
        while a.rpc("getblockcount").as_u64().unwrap() < h0 + 3 {
            if t.elapsed() > Duration::from_secs(90) {
                let _ = m.kill();
                panic!(
                    "{name} found no 3 blocks in 90 s\n{}\n--- node ---\n{}",
                    std::fs::read_to_string(d.join(format!("{name}.log"))).unwrap_or_default(),
                    a.log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = m.kill();
        let _ = m.wait();
        let info = a.rpc("getstratuminfo");
        let w = &info["workers"][name];
        assert!(w["blocks"].as_u64().unwrap() >= 1, "{info}");
        assert!(w["accepted"].as_u64().unwrap() >= w["blocks"].as_u64().unwrap(), "{info}");
        eprintln!("{name}: {w}");
    }
    // The miner account was paid, and the second node has the same tip.
    let t = Instant::now();
    loop {
        let (ia, ib) = (a.rpc("getblockchaininfo"), b.rpc("getblockchaininfo"));
        if ia["bestblockhash"] == ib["bestblockhash"] {
            assert!(ia["height"].as_u64().unwrap() >= 6);
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "the second node did not follow: {ia} {ib}\n{}", b.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let auth = powkit::node::rpc::RpcAuth::from_datadir(&a.dir).unwrap();
    let acct =
        powkit::node::rpc::call_remote(a.info["rpc"].as_str().unwrap(), &auth, "getaccount", json!([pk])).unwrap();
    assert!(acct["balance"].as_u64().unwrap() >= 6 * 5_000_000_000 / 2, "the miner key was paid: {acct}");
    drop((a, b));
    let _ = std::fs::remove_dir_all(&d);
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Scale on one machine (issue 14): 1,000 subscribed clients, 100 of them submitting, without
/// memory growth between two equal rounds of shares; every client gets the new tip's job. Prints
/// the figures for docs/PERFORMANCE.md: notify fan-out time to the last client, shares validated
/// per second (one pipelining client) next to one core's SHA-256d header rate.
#[test]
fn a_thousand_clients_are_held_and_served() {
    let mock = Mock::new(0x1d00_ffff);
    let s = server(mock.clone(), MIN_DIFFICULTY);
    let mut clients: Vec<Client> = (0..1000).map(|_| Client::connect(s.address())).collect();
    let mut en1s = std::collections::HashSet::new();
    let mut jobs = Vec::new();
    for (i, c) in clients.iter_mut().enumerate() {
        let (en1, n) = ready(c, &format!("w{}", i % 100));
        assert!(en1s.insert(en1), "extranonce1 is unique per connection");
        jobs.push(n[0].as_str().unwrap().to_string());
    }
    assert_eq!(s.stats().subscribed, 1000);
    // 100 clients submit 20 shares each, twice; memory after the second round is not above the
    // first's by more than noise. Each round ends with a new tip that every client must get.
    let round = |r: u32, clients: &mut [Client], jobs: &mut [String]| {
        for (i, c) in clients.iter_mut().take(100).enumerate() {
            for k in 0..20u32 {
                let (ok, e) =
                    submit(c, &format!("w{i}"), &jobs[i], &format!("{:016x}", r * 1000 + k), CURTIME, k, None);
                // 1 in 65,536 hashes misses the minimum difficulty.
                assert!(ok == json!(true) || code(&e) == 23, "{e}");
            }
        }
        mock.new_tip();
        let start = Instant::now();
        for (c, j) in clients.iter_mut().zip(jobs.iter_mut()) {
            let n = c.last_notify();
            assert_eq!(n[8], json!(true));
            *j = n[0].as_str().unwrap().to_string();
        }
        start.elapsed()
    };
    round(1, &mut clients, &mut jobs);
    let rss1 = rss_kib();
    let fanout = round(2, &mut clients, &mut jobs);
    let rss2 = rss_kib();
    eprintln!(
        "1000 clients: RSS {rss1} KiB after round 1, {rss2} KiB after round 2; last notify read {:.1} ms after \
         the tip (server fan-out {:.1} ms)",
        fanout.as_secs_f64() * 1e3,
        s.stats().last_fanout_ms
    );
    assert!(rss2 < rss1 + 8 * 1024, "memory grew by {} KiB between equal rounds", rss2 - rss1);
    let st = s.stats();
    assert_eq!(st.clients, 1000);
    assert!(st.workers["w7"].accepted >= 30, "{:?}", st.workers["w7"]);
    drop(clients);

    // Shares validated per second: one client pipelines 20,000 submits.
    let mut c = Client::connect(s.address());
    let (_, note) = ready(&mut c, "bench");
    let j = note[0].as_str().unwrap().to_string();
    let n = 20_000u32;
    let mut buf = String::new();
    for k in 0..n {
        let p = json!(["bench", j, format!("{k:016x}"), format!("{CURTIME:08x}"), format!("{k:08x}")]);
        buf.push_str(&format!("{}\n", json!({"id": k + 100, "method": "mining.submit", "params": p})));
    }
    let w = c.w.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let mut w = w;
        w.write_all(buf.as_bytes()).unwrap();
    });
    let start = Instant::now();
    let mut answered = 0;
    while answered < n {
        let v = c.line().expect("an answer");
        if v["id"].as_u64().is_some_and(|id| id >= 100) {
            answered += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    writer.join().unwrap();
    let header = [7u8; 80];
    let t = Instant::now();
    let mut x = [0u8; 32];
    for i in 0..200_000u32 {
        let mut h = header;
        h[76..].copy_from_slice(&i.to_le_bytes());
        h[0] ^= x[0];
        x = sha256d(&h);
    }
    let header_rate = 200_000.0 / t.elapsed().as_secs_f64();
    eprintln!(
        "shares validated: {:.0}/s (one client, {n} pipelined submits); one core's sha256d header rate \
         (powkit::primitives::sha256d, one at a time): {header_rate:.0}/s",
        n as f64 / secs
    );
    assert_eq!(
        s.stats().workers["bench"].accepted + s.stats().workers["bench"].rejected.values().sum::<u64>(),
        n as u64
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Accepted shares of worker `w` on a node, 0 while the node has none.
fn accepted(n: &NodeProc, w: &str) -> u64 {
    n.rpc("getstratuminfo")["workers"][w]["accepted"].as_u64().unwrap_or(0)
}

fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(t.elapsed() < Duration::from_secs(secs), "{what}: not within {secs} s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Issue 14's "reconnect and failover tested by killing the server mid-run": `powkit mine --pool A
/// --pool B` against two `powkit node --stratum` (B follows A over P2P). A is killed with SIGKILL
/// mid-run: the client fails over to B. A restarts from its store on the same port, then B is
/// killed: the client goes back to A. No share is submitted twice, every rejection is a stale one,
/// and A's chain after the kill still has every block it had accepted.
#[test]
fn killing_the_server_mid_run_fails_over_and_reconnects() {
    let d = common::tmp_dir("stratum", "kill");
    let key = d.join("miner.key");
    common::new_key(&key);
    let key = key.to_str().unwrap();
    let (pa, pb) = (free_port(), free_port());
    let (sa, sb) = (format!("127.0.0.1:{pa}"), format!("127.0.0.1:{pb}"));
    let node = |dir: &str, stratum: &str, peer: Option<&str>| {
        let mut args = vec!["--stratum", stratum, "--miner-key", key, "--stratum-difficulty", "0.001"];
        if let Some(p) = peer {
            args.extend(["--peer", p]);
        }
        NodeProc::start(&d.join(dir), &args)
    };
    let a = node("a", &sa, None);
    let b = node("b", &sb, Some(a.info["p2p"].as_str().unwrap()));
    let client = std::process::Command::new(env!("CARGO_BIN_EXE_powkit"))
        .args(["mine", "--pool", &format!("stratum+tcp://{sa}"), "--pool", &format!("stratum+tcp://{sb}")])
        .args(["--user", "w", "--backend", "cpu", "--threads", "1", "--duration", "40", "--retry-ms", "100"])
        .args(["--attempts-per-pool", "2", "--json", "--log", "debug"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(d.join("client.log")).unwrap())
        .spawn()
        .unwrap();
    wait_for("shares accepted by A", 20, || accepted(&a, "w") >= 3);
    let height_a = a.rpc("getblockcount").as_u64().unwrap();
    let mut a = a;
    a.child.kill().unwrap(); // SIGKILL
    a.child.wait().unwrap();
    wait_for("shares accepted by B after A was killed", 20, || accepted(&b, "w") >= 3);
    // A again, from its store, on the same port; then B goes.
    drop(a);
    // A killed node leaves its node.json behind; the restart writes a new one.
    std::fs::remove_file(d.join("a/node.json")).unwrap();
    let a = node("a", &sa, None);
    assert!(a.rpc("getblockcount").as_u64().unwrap() >= height_a, "A lost blocks it had accepted");
    let mut b = b;
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    wait_for("shares accepted by the restarted A", 25, || accepted(&a, "w") >= 3);
    let out = client.wait_with_output().unwrap();
    let log = std::fs::read_to_string(d.join("client.log")).unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{log}"));
    eprintln!("{r}");
    assert!(r["sessions"].as_u64().unwrap() >= 3, "{r}");
    // Every rejection is a stale share (the kill can leave none unanswered but cannot make one invalid).
    assert!(r["rejected_by_reason"].as_array().unwrap().iter().all(|x| x["code"] == 21), "{r}");
    // No share was submitted twice: each (pool, job, extranonce2, ntime, nonce, version bits) once.
    let mut seen = std::collections::HashSet::new();
    for line in log.lines().filter(|l| l.contains("\"mining.submit\"")) {
        let json = &line[line.find('{').unwrap()..line.rfind('}').unwrap() + 1];
        let m: Value = serde_json::from_str(json).unwrap();
        let pool = line.rsplit("pool=").next().unwrap().trim();
        assert!(seen.insert((pool.to_string(), m["params"].to_string())), "submitted twice: {line}");
    }
    assert!(seen.len() as u64 >= r["submitted"].as_u64().unwrap(), "{} submits logged; {r}", seen.len());
    let _ = std::fs::remove_dir_all(&d);
}
