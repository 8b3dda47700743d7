//! A real Bitcoin Core `bitcoind` for differential tests (issue 13): found, started on regtest in a
//! fresh data directory, spoken to over JSON-RPC with its cookie, stopped with the `stop` RPC (which
//! flushes the blk files) and killed if a test panics first.
//!
//! The binary is `$POWKIT_BITCOIND`, else `~/.cache/powkit-bitcoind/build/bin/bitcoind`, where
//! `../shared/tools/build-bitcoind.sh` (and CI) build it. When it is missing the tests skip with a
//! printed reason, unless `POWKIT_REQUIRE_BITCOIND=1` (CI) makes that a failure.
//!
//! Included with `#[path]` by tests/bitcoind.rs and examples/regtest_bench_chain.rs, so it depends on
//! std, serde_json and base64 (HTTP Basic credentials) only.
#![allow(dead_code)] // each includer uses its own subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

/// Where `build-bitcoind.sh` leaves the binaries by default.
pub fn default_bin_dir() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/powkit-bitcoind/build/bin"))
}

/// The `bitcoind` to test against: `$POWKIT_BITCOIND`, else the build script's cache. `None` (after
/// printing why) when there is none; a panic instead when `POWKIT_REQUIRE_BITCOIND=1`.
pub fn find_bitcoind() -> Option<PathBuf> {
    let path = match std::env::var_os("POWKIT_BITCOIND") {
        Some(p) => PathBuf::from(p),
        None => default_bin_dir().map(|d| d.join("bitcoind")).unwrap_or_default(),
    };
    if path.is_file() {
        return Some(path);
    }
    let why = format!(
        "no bitcoind at {} (set POWKIT_BITCOIND, or build it with ../shared/tools/build-bitcoind.sh)",
        path.display()
    );
    assert!(std::env::var("POWKIT_REQUIRE_BITCOIND").map_or(true, |v| v != "1"), "POWKIT_REQUIRE_BITCOIND=1 but {why}");
    eprintln!("skipping: {why}");
    None
}

/// A JSON-RPC error from bitcoind: its code and message.
#[derive(Debug, Clone)]
pub struct RpcError {
    /// Bitcoin Core's error code (`RPC_VERIFY_REJECTED` is -26, ...); 0 for transport failures.
    pub code: i64,
    /// The message.
    pub message: String,
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

/// A running regtest `bitcoind`. Dropping it kills the process (a test that panicked); [`Self::stop`]
/// shuts it down cleanly.
pub struct Bitcoind {
    child: Option<Child>,
    /// The `-datadir`; the chain is in `datadir/regtest`.
    pub datadir: PathBuf,
    /// The RPC port on 127.0.0.1.
    pub rpc_port: u16,
    auth: String,
    /// The kept-alive HTTP connection (a fresh connection per call costs bitcoind's libevent about
    /// 50 ms to close; a kept one answers in about 1 ms).
    conn: Mutex<Option<BufReader<TcpStream>>>,
}

/// A TCP port free on 127.0.0.1 now (the OS picks it; a race with another process is unlikely).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

impl Bitcoind {
    /// Starts `bin -regtest` in `datadir` (created; must be empty or new) with `extra` options on top of
    /// the defaults (no P2P listening, RPC on a free port with cookie auth, `-blocksxor` as given), and
    /// waits until RPC answers.
    ///
    /// # Panics
    /// When the process cannot start or RPC does not answer within 120 s, three times (a port taken
    /// between choosing it and bitcoind binding it is the retried case); the tail of its debug.log is
    /// in the message.
    pub fn start(bin: &Path, datadir: &Path, blocksxor: bool, extra: &[&str]) -> Bitcoind {
        let mut why = String::new();
        for attempt in 1..=3 {
            match Bitcoind::try_start(bin, datadir, blocksxor, extra) {
                Ok(d) => return d,
                Err(e) => {
                    eprintln!("bitcoind start, attempt {attempt} of 3: {e}");
                    why = e;
                }
            }
        }
        panic!("bitcoind did not start: {why}");
    }

    fn try_start(bin: &Path, datadir: &Path, blocksxor: bool, extra: &[&str]) -> Result<Bitcoind, String> {
        std::fs::create_dir_all(datadir).map_err(|e| format!("creating {}: {e}", datadir.display()))?;
        let rpc_port = free_port();
        let mut args = vec![
            "-regtest".to_string(),
            format!("-datadir={}", datadir.display()),
            format!("-rpcport={rpc_port}"),
            "-rpcbind=127.0.0.1".into(),
            "-rpcallowip=127.0.0.1".into(),
            "-listen=0".into(),
            "-server=1".into(),
            "-printtoconsole=0".into(),
            "-persistmempool=0".into(),
            "-rpcthreads=4".into(),
            "-rpcworkqueue=64".into(),
            format!("-blocksxor={}", u8::from(blocksxor)),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new(bin)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        let mut d = Bitcoind {
            child: Some(child),
            datadir: datadir.to_path_buf(),
            rpc_port,
            auth: String::new(),
            conn: Mutex::new(None),
        };
        let cookie = datadir.join("regtest/.cookie");
        let start = Instant::now();
        loop {
            if let Some(status) = d.child.as_mut().unwrap().try_wait().expect("try_wait") {
                let mut err = String::new();
                d.child.take().unwrap().stderr.take().map(|mut s| s.read_to_string(&mut err));
                return Err(format!("bitcoind exited at start ({status}): {err}{}", d.log_tail()));
            }
            if let Ok(text) = std::fs::read_to_string(&cookie) {
                d.auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(text.trim()));
                match d.rpc("getblockchaininfo", json!([])) {
                    Ok(_) => return Ok(d),
                    Err(e) if e.code == -28 || e.code == 0 => {} // warming up, or not listening yet
                    Err(e) => return Err(format!("bitcoind RPC: {e}")),
                }
            }
            if start.elapsed() > Duration::from_secs(120) {
                return Err(format!("bitcoind RPC did not answer in 120 s{}", d.log_tail()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last lines of `regtest/debug.log`, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.datadir.join("regtest/debug.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        format!("\n--- debug.log tail ---\n{}", lines[lines.len().saturating_sub(30)..].join("\n"))
    }

    /// The `regtest/blocks` directory (blk?????.dat, xor.dat).
    pub fn blocks_dir(&self) -> PathBuf {
        self.datadir.join("regtest/blocks")
    }

    /// One JSON-RPC call (HTTP/1.1 on a kept-alive connection, cookie auth).
    ///
    /// # Errors
    /// bitcoind's error (code and message), or a transport failure (code 0).
    pub fn rpc(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let transport = |e: String| RpcError { code: 0, message: format!("{method}: {e}") };
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
        let req = format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.auth,
            body.len()
        );
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut attempt = 0;
        let (status, body) = loop {
            if conn.is_none() {
                let s = TcpStream::connect(("127.0.0.1", self.rpc_port)).map_err(|e| transport(e.to_string()))?;
                s.set_nodelay(true).ok();
                s.set_read_timeout(Some(Duration::from_secs(600))).ok();
                *conn = Some(BufReader::new(s));
            }
            match exchange(conn.as_mut().unwrap(), req.as_bytes()) {
                Ok((status, body, keep)) => {
                    if !keep {
                        *conn = None;
                    }
                    break (status, body);
                }
                // The node closed an idle connection (-rpcservertimeout) before reading the request:
                // nothing of a response came, so sending it again on a new one is safe.
                Err((e, nothing_read)) => {
                    *conn = None;
                    attempt += 1;
                    if !nothing_read || attempt == 2 {
                        return Err(transport(e.to_string()));
                    }
                }
            }
        };
        drop(conn);
        let v: Value = serde_json::from_str(&body)
            .map_err(|e| transport(format!("HTTP {status}, not JSON ({e}): {}", &body[..body.len().min(200)])))?;
        if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
            return Err(RpcError {
                code: e["code"].as_i64().unwrap_or(0),
                message: e["message"].as_str().unwrap_or("?").to_string(),
            });
        }
        Ok(v["result"].clone())
    }

    /// [`Self::rpc`], panicking with the method, parameters and error on failure.
    pub fn call(&self, method: &str, params: Value) -> Value {
        self.rpc(method, params.clone()).unwrap_or_else(|e| panic!("bitcoind {method} {params}: {e}"))
    }

    /// Stops the node with the `stop` RPC (Core flushes its blk files and chain state) and waits up to
    /// 60 s for it to exit, then kills it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let _ = self.rpc("stop", json!([]));
        *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("bitcoind did not stop in 60 s; killing it{}", self.log_tail());
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Bitcoind {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends one HTTP request on `conn` and reads the response: (status, body, whether the connection
/// stays open). The error says whether no byte of a response was read.
fn exchange(conn: &mut BufReader<TcpStream>, req: &[u8]) -> Result<(u16, String, bool), (std::io::Error, bool)> {
    conn.get_mut().write_all(req).map_err(|e| (e, true))?;
    let mut line = String::new();
    if conn.read_line(&mut line).map_err(|e| (e, true))? == 0 {
        return Err((std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"), true));
    }
    let bad = |what: &str| (std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string()), false);
    let status: u16 = line.split(' ').nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| bad("no HTTP status line"))?;
    let (mut length, mut keep) = (None, true);
    loop {
        line.clear();
        conn.read_line(&mut line).map_err(|e| (e, false))?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap_or((l, ""));
        if k.eq_ignore_ascii_case("content-length") {
            length = v.trim().parse::<usize>().ok();
        } else if k.eq_ignore_ascii_case("connection") && v.trim().eq_ignore_ascii_case("close") {
            keep = false;
        }
    }
    let mut body = vec![0; length.ok_or_else(|| bad("no Content-Length"))?];
    conn.read_exact(&mut body).map_err(|e| (e, false))?;
    Ok((status, String::from_utf8(body).map_err(|_| bad("body not UTF-8"))?, keep))
}

/// Satoshis in a bitcoind amount (BTC as a JSON number with at most 8 decimals).
pub fn sats(btc: &Value) -> i64 {
    (btc.as_f64().unwrap_or_else(|| panic!("not an amount: {btc}")) * 1e8).round() as i64
}

/// A bitcoind amount (BTC, 8 decimals) for `sats` satoshis, as a JSON string bitcoind accepts.
pub fn btc(sats: i64) -> Value {
    Value::String(format!("{}.{:08}", sats / 100_000_000, sats % 100_000_000))
}
