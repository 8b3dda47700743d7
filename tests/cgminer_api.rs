//! cgminer's API on `powkit mine --pool --api-listen` (issue 16, part 3): a running miner against
//! `powkit node --stratum` answers `summary`, `devs`, `pools` and `version` with cgminer's field
//! names and framing (JSON, NUL-terminated, one request per connection); `Accepted` and the hash
//! rates move as shares are accepted; tools/cgminer-api.py, a client written the way farm tools
//! are, reads it; privileged, unknown and malformed requests get cgminer's error codes, and hostile
//! clients do not stop the miner. Solo mining (`powkit mine --node --api-listen`, on a regtest
//! bitcoind) answers too, as cgminer's solo mode: the node as a getblocktemplate "pool", blocks
//! accepted as its shares.

#[path = "common/bitcoind.rs"]
mod bitcoind;
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

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

    /// The address after `prefix` on a line of its log.
    fn address(&mut self, prefix: &str) -> String {
        let t = Instant::now();
        loop {
            if let Some(line) = self.log().lines().find(|l| l.starts_with(prefix)) {
                return line[prefix.len()..].trim().to_string();
            }
            if let Some(st) = self.child.try_wait().unwrap() {
                panic!("exited with {st}:\n{}", self.log());
            }
            assert!(t.elapsed() < Duration::from_secs(30), "no {prefix:?} line:\n{}", self.log());
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

/// One request on its own connection, read to the end; the raw bytes.
fn raw(addr: &str, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    out
}

/// A JSON command: the reply, checked NUL-terminated, decoded.
fn api(addr: &str, command: &str) -> Value {
    let out = raw(addr, json!({ "command": command }).to_string().as_bytes());
    assert_eq!(out.last(), Some(&0), "cgminer ends its reply with a NUL: {:?}", String::from_utf8_lossy(&out));
    serde_json::from_slice(&out[..out.len() - 1]).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)))
}

fn status(v: &Value) -> (&str, i64) {
    let s = &v["STATUS"][0];
    (s["STATUS"].as_str().unwrap(), s["Code"].as_i64().unwrap())
}

fn has_fields(v: &Value, names: &[&str]) {
    for n in names {
        assert!(v.get(n).is_some(), "no {n:?} in {v}");
    }
}

const SUMMARY_FIELDS: &[&str] = &[
    "Elapsed",
    "MHS av",
    "MHS 5s",
    "Found Blocks",
    "Getworks",
    "Accepted",
    "Rejected",
    "Hardware Errors",
    "Utility",
    "Discarded",
    "Stale",
    "Difficulty Accepted",
    "Difficulty Rejected",
    "Difficulty Stale",
    "Best Share",
    "Device Hardware%",
    "Device Rejected%",
    "Pool Rejected%",
    "Pool Stale%",
    "Last getwork",
];
const DEV_FIELDS: &[&str] = &[
    "CPU",
    "Name",
    "ID",
    "Enabled",
    "Status",
    "Temperature",
    "MHS av",
    "MHS 5s",
    "Accepted",
    "Rejected",
    "Hardware Errors",
    "Utility",
    "Last Share Time",
    "Difficulty Accepted",
    "Difficulty Rejected",
    "Device Elapsed",
];
const POOL_FIELDS: &[&str] = &[
    "POOL",
    "URL",
    "Status",
    "Priority",
    "Quota",
    "Getworks",
    "Accepted",
    "Rejected",
    "Stale",
    "User",
    "Last Share Time",
    "Stratum Active",
    "Stratum URL",
    "Difficulty Accepted",
];

fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(t.elapsed() < Duration::from_secs(secs), "{what}: not within {secs} s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_running_miner_answers_cgminer_s_api() {
    let d = common::tmp_dir("cgminer-api", "run");
    let key = d.join("miner.key");
    common::new_key(&key);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let stratum = format!("127.0.0.1:{port}");
    let dir = d.join("n");
    let node_args = [
        "node",
        "--chain",
        "powkit-regtest",
        "--datadir",
        dir.to_str().unwrap(),
        "--rpc",
        "127.0.0.1:0",
        "--listen",
        "127.0.0.1:0",
        "--stratum",
        &stratum,
        "--miner-key",
        key.to_str().unwrap(),
        "--stratum-difficulty",
        "0.001",
    ];
    std::fs::create_dir_all(&dir).unwrap();
    let _node = Proc::start(&node_args, &d.join("node.log"));
    wait_for("the node's Stratum port", 30, || TcpStream::connect(&stratum).is_ok());
    let url = format!("stratum+tcp://{stratum}");
    let args =
        ["mine", "--pool", &url, "--user", "w", "--backend", "cpu", "--threads", "1", "--api-listen", "127.0.0.1:0"];
    let mut miner = Proc::start(&args, &d.join("miner.log"));
    let addr = miner.address("api: cgminer API on ");
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");

    let accepted = |addr: &str| api(addr, "summary")["SUMMARY"][0]["Accepted"].as_u64().unwrap();
    wait_for("a share accepted", 60, || accepted(&addr) >= 1);
    let s0 = api(&addr, "summary");
    assert_eq!(status(&s0), ("S", 11));
    let sum0 = &s0["SUMMARY"][0];
    has_fields(sum0, SUMMARY_FIELDS);
    has_fields(&s0["STATUS"][0], &["STATUS", "When", "Code", "Msg", "Description"]);
    assert_eq!(s0["id"], 1);
    assert!(sum0["MHS av"].as_f64().unwrap() > 0.0, "{sum0}");
    assert!(sum0["Getworks"].as_u64().unwrap() >= 1, "{sum0}");
    let a0 = sum0["Accepted"].as_u64().unwrap();
    let d0 = api(&addr, "devs");
    assert_eq!(status(&d0), ("S", 9));
    let dev0 = &d0["DEVS"][0];
    has_fields(dev0, DEV_FIELDS);
    assert_eq!(dev0["CPU"], 0);
    assert_eq!(dev0["Enabled"], "Y");
    let total0 = dev0["Total MH"].as_f64().unwrap();

    // Hostile clients meanwhile: one silent, one sending more than a request may be, garbage,
    // and cgminer's privileged and unknown commands.
    let _silent = TcpStream::connect(&addr).unwrap();
    let huge = raw(&addr, &[b'{'; 20_000]);
    let huge: Value = serde_json::from_slice(&huge[..huge.len() - 1]).unwrap();
    assert_eq!(status(&huge), ("E", 23));
    for (req, want) in [
        (json!({"command": "restart"}), 45),
        (json!({"command": "quit"}), 45),
        (json!({"command": "switchpool", "parameter": 0}), 45),
        (json!({"command": "addpool", "parameter": "stratum+tcp://x:1,u,p"}), 45),
        (json!({"command": "nosuchcommand"}), 14),
        (json!({"parameter": "x"}), 24),
    ] {
        let out = raw(&addr, req.to_string().as_bytes());
        let v: Value = serde_json::from_slice(&out[..out.len() - 1]).unwrap();
        assert_eq!(status(&v), ("E", want), "{req} -> {v}");
    }
    let garbage = raw(&addr, b"{\"command\":\x00\xff}");
    assert_eq!(garbage.last(), Some(&0));

    wait_for("two more shares accepted", 60, || accepted(&addr) >= a0 + 2);
    let s1 = api(&addr, "summary");
    assert!(s1["SUMMARY"][0]["Accepted"].as_u64().unwrap() >= a0 + 2);
    assert!(s1["SUMMARY"][0]["Difficulty Accepted"].as_f64().unwrap() > sum0["Difficulty Accepted"].as_f64().unwrap());
    let d1 = api(&addr, "devs");
    assert!(d1["DEVS"][0]["Accepted"].as_u64().unwrap() >= a0 + 2);
    assert!(d1["DEVS"][0]["Total MH"].as_f64().unwrap() > total0);
    assert!(d1["DEVS"][0]["MHS 5s"].as_f64().unwrap() > 0.0, "{}", d1["DEVS"][0]);
    let p = api(&addr, "pools");
    assert_eq!(status(&p), ("S", 7));
    has_fields(&p["POOLS"][0], POOL_FIELDS);
    assert_eq!(p["POOLS"][0]["URL"], url.as_str());
    assert_eq!(p["POOLS"][0]["User"], "w");
    assert_eq!(p["POOLS"][0]["Stratum Active"], true);
    let v = api(&addr, "version");
    assert_eq!(status(&v), ("S", 22));
    assert_eq!(v["VERSION"][0]["API"], "3.7");
    let j = api(&addr, "summary+devs");
    assert_eq!(status(&j["summary"][0]), ("S", 11));
    assert_eq!(status(&j["devs"][0]), ("S", 9));

    // The way farm tools read it: tools/cgminer-api.py, one connection per command.
    let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/cgminer-api.py");
    let port = addr.rsplit(':').next().unwrap();
    let out = Command::new("python3")
        .arg(&tool)
        .args(["--port", port, "summary", "devs", "pools", "version", "summary+devs"])
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 5, "{text}");
    has_fields(&lines[0]["reply"]["SUMMARY"][0], SUMMARY_FIELDS);
    assert!(lines[0]["reply"]["SUMMARY"][0]["Accepted"].as_u64().unwrap() >= a0 + 2);
    has_fields(&lines[1]["reply"]["DEVS"][0], DEV_FIELDS);
    has_fields(&lines[2]["reply"]["POOLS"][0], POOL_FIELDS);
    assert_eq!(lines[3]["reply"]["VERSION"][0]["API"], "3.7");
    // The tool says so when a command is refused.
    let out = Command::new("python3").arg(&tool).args(["--port", port, "restart"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    drop(miner);
    let _ = std::fs::remove_dir_all(&d);
}

/// `powkit mine --node URL --api-listen`: the node is the one pool (`Has GBT` true, `Has Stratum`
/// false, user `solo`, its URL without credentials), blocks bitcoind accepted count as `Accepted`
/// and `Found Blocks`, and they move as bitcoind's height does.
#[test]
fn solo_mining_answers_cgminer_s_api_as_a_gbt_pool() {
    let Some(bin) = bitcoind::find_bitcoind() else { return };
    let d = common::tmp_dir("cgminer_api", "solo");
    let node = bitcoind::Bitcoind::start(&bin, &d.join("node"), false, &[]);
    let url = format!("http://127.0.0.1:{}", node.rpc_port);
    let cookie = d.join("node/regtest/.cookie");
    let args = ["mine", "--node", &url, "--rpc-cookie", cookie.to_str().unwrap(), "--coinbase-script", "51"];
    let more = ["--backend", "cpu", "--threads", "1", "--api-listen", "127.0.0.1:0"];
    let mut miner = Proc::start(&[&args[..], &more].concat(), &d.join("miner.log"));
    let addr = miner.address("api: cgminer API on ");
    let accepted = |addr: &str| api(addr, "summary")["SUMMARY"][0]["Accepted"].as_u64().unwrap();
    wait_for("two blocks accepted", 120, || accepted(&addr) >= 2);
    let v = api(&addr, "summary+devs+pools");
    let sum = &v["summary"][0]["SUMMARY"][0];
    has_fields(sum, SUMMARY_FIELDS);
    assert!(sum["MHS av"].as_f64().unwrap() > 0.0, "{sum}");
    assert!(sum["Found Blocks"].as_u64().unwrap() >= sum["Accepted"].as_u64().unwrap(), "{sum}");
    let height = node.call("getblockcount", json!([])).as_u64().unwrap();
    assert!(height >= sum["Accepted"].as_u64().unwrap(), "bitcoind at {height}, the API says {sum}");
    let devs = v["devs"][0]["DEVS"].as_array().unwrap();
    assert_eq!(devs.len(), 1, "{v}");
    assert!(devs[0]["MHS av"].as_f64().unwrap() > 0.0 && devs[0].get("CPU").is_some(), "{v}");
    let pool = &v["pools"][0]["POOLS"][0];
    assert_eq!((pool["Has GBT"].as_bool(), pool["Has Stratum"].as_bool()), (Some(true), Some(false)), "{pool}");
    assert_eq!((pool["Stratum Active"].as_bool(), pool["User"].as_str()), (Some(false), Some("solo")), "{pool}");
    assert!(pool["URL"].as_str().unwrap().contains(&url), "{pool}");
    assert!(pool["Getworks"].as_u64().unwrap() >= 1, "{pool}");
    let before = accepted(&addr);
    wait_for("one more block", 120, || accepted(&addr) > before);
    assert!(node.call("getblockcount", json!([])).as_u64().unwrap() > height);
    drop(miner);
    let _ = std::fs::remove_dir_all(&d);
}
