//! `powkit pool --bitcoind`: a solo pool for Bitcoin (issue 14, section 3), checked with real
//! Stratum miners no one here wrote and a real Bitcoin Core.
//!
//! [`real_miners_and_powkit_mine_regtest_blocks_through_the_pool`]: a regtest bitcoind feeds
//! `powkit pool`; pooler's `minerd`, cpuminer-opt and `powkit mine --pool` each mine through it,
//! and bitcoind must accept their blocks (`getblockcount` grows, each block's coinbase pays the
//! pool's payout script with powkit's extranonce gap in its scriptSig); the pool's statistics count
//! each worker's accepted shares and blocks.
//!
//! Needs `bitcoind` (tests/common/bitcoind.rs) and the peer miners (`../shared/peers/build.sh`, in
//! ~/.cache/powkit-peers or POWKIT_PEERS); skips with a printed reason without them, unless
//! POWKIT_REQUIRE_BITCOIND=1 / POWKIT_REQUIRE_PEERS=1 (CI).

#[path = "common/bitcoind.rs"]
mod bitcoind;
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bitcoind::{find_bitcoind, Bitcoind};
use serde_json::{json, Value};

/// A running `powkit pool`: its process, the Stratum port it bound, and its stdout (JSON stats).
struct Pool {
    child: Child,
    port: u16,
}

impl Pool {
    fn start(args: &[&str]) -> Pool {
        let mut child = Command::new(env!("CARGO_BIN_EXE_powkit"))
            .arg("pool")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run powkit pool");
        let err = BufReader::new(child.stderr.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                eprintln!("[pool] {line}");
                if let Some(at) = line.find("stratum+tcp://") {
                    let addr = line[at..].split_whitespace().next().unwrap_or("");
                    let _ = tx.send(addr.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()));
                }
            }
        });
        let port = rx.recv_timeout(Duration::from_secs(60)).ok().flatten().expect("powkit pool printed its address");
        Pool { child, port }
    }

    /// Stops the pool (SIGTERM) and returns its last statistics line.
    fn stop(self) -> Value {
        terminate(self.child.id());
        let out = self.child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let last = text.lines().last().unwrap_or("").to_string();
        serde_json::from_str(&last).unwrap_or_else(|e| panic!("{e}: {text}"))
    }
}

/// SIGTERM, as an operator stops the pool (it prints its last statistics and exits).
fn terminate(pid: u32) {
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
}

/// Runs `cmd` until bitcoind's height reaches `target` (or `limit` passes), then kills it.
fn mine_until(node: &Bitcoind, mut cmd: Command, target: u64, limit: Duration) -> u64 {
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("run the miner");
    let t0 = Instant::now();
    let mut height = 0;
    while t0.elapsed() < limit {
        height = node.call("getblockcount", json!([])).as_u64().unwrap();
        if height >= target {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    height
}

#[test]
fn real_miners_and_powkit_mine_regtest_blocks_through_the_pool() {
    let Some(bin) = find_bitcoind() else { return };
    let Some([(_, minerd), (_, cpuminer)]) = common::peer_miners() else { return };
    let dir = common::tmp_dir("pool", "real-miners");
    let node = Bitcoind::start(&bin, &dir.join("node"), false, &[]);
    // Out of initial block download (getblocktemplate refuses before).
    let payout = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
    node.call("generatetoaddress", json!([1, payout]));
    let payout_spk = node.call("validateaddress", json!([payout]))["scriptPubKey"].as_str().unwrap().to_string();
    let url = format!("http://127.0.0.1:{}", node.rpc_port);
    let cookie = dir.join("node/regtest/.cookie");
    let pool = Pool::start(&[
        "--bitcoind",
        &url,
        "--rpc-cookie",
        cookie.to_str().unwrap(),
        "--coinbase-address",
        payout,
        "--stratum",
        "127.0.0.1:0",
        "--difficulty",
        "0.001",
        "--poll-seconds",
        "0.2",
        "--stats-interval",
        "0",
        "--json",
    ]);
    let stratum = format!("stratum+tcp://127.0.0.1:{}", pool.port);
    let mut heights = vec![node.call("getblockcount", json!([])).as_u64().unwrap()];
    let miners: [(&str, Command); 3] = [
        ("minerd", {
            let mut c = Command::new(&minerd);
            c.args(["-a", "sha256d", "-o", &stratum, "-u", "minerd", "-p", "x", "-t", "1"]);
            c
        }),
        ("cpuminer-opt", {
            let mut c = Command::new(&cpuminer);
            c.args(["-a", "sha256d", "-o", &stratum, "-u", "cpuminer", "-p", "x", "-t", "1"]);
            c
        }),
        ("powkit", {
            let mut c = Command::new(env!("CARGO_BIN_EXE_powkit"));
            c.args(["mine", "--pool", &stratum, "--user", "powkit", "--backend", "cpu", "--threads", "1"]);
            c
        }),
    ];
    for (name, cmd) in miners {
        let before = *heights.last().unwrap();
        let now = mine_until(&node, cmd, before + 3, Duration::from_secs(120));
        assert!(now >= before + 3, "{name}: bitcoind's height went from {before} to {now} in 120 s");
        heights.push(now);
    }
    // Every block after the first pays the pool's payout and was accepted in order.
    let tip = *heights.last().unwrap();
    for h in 2..=tip {
        let hash = node.call("getblockhash", json!([h]));
        let block = node.call("getblock", json!([hash, 2]));
        let cb = &block["tx"][0];
        assert_eq!(cb["vout"][0]["scriptPubKey"]["hex"], payout_spk.as_str(), "height {h}");
    }
    let stats = pool.stop();
    for worker in ["minerd", "cpuminer", "powkit"] {
        let w = &stats["workers"][worker];
        assert!(w["accepted"].as_u64().unwrap_or(0) >= 3, "{worker}: {stats}");
        assert!(w["blocks"].as_u64().unwrap_or(0) >= 3, "{worker}: {stats}");
        // After each accepted block the pool's next job replaces the tip before another share is
        // checked: a later share on the old tip is stale, never a second block at that height.
        assert_eq!(w["blocks_refused"].as_u64().unwrap_or(0), 0, "{worker}: {stats}");
    }
    assert!(stats["blocks"].as_u64().unwrap() >= tip - 1, "{stats}");
}
