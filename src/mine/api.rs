//! cgminer's miner API for `powkit mine --pool ... --api-listen ADDR` (issue 16, part 3): what
//! mining-farm tools poll, read-only.
//!
//! The protocol is cgminer's `api.c` (API version 3.7): a client opens a TCP connection, sends one
//! request and reads the reply to the end of the connection; the reply ends with a NUL byte, which
//! farm tools strip. A JSON request is `{"command":"summary"}` (an optional `"parameter"` is
//! ignored); commands may be joined with `+` (`"summary+devs"`), each reply then under its command's
//! name. A plain-text request is the command alone (`summary`, or `summary|PARAM`); its reply uses
//! cgminer's text form (`NAME=VALUE,` items, sections ended by `|`).
//!
//! | command | reply section | fields (cgminer's names) |
//! | --- | --- | --- |
//! | `summary` | `SUMMARY` | `Elapsed`, `MHS av`, `MHS 5s`, `Found Blocks`, `Getworks`, `Accepted`, `Rejected`, `Hardware Errors`, `Utility`, `Discarded`, `Stale`, `Difficulty Accepted`, `Difficulty Rejected`, `Difficulty Stale`, `Best Share`, `Device Hardware%`, `Device Rejected%`, `Pool Rejected%`, `Pool Stale%`, `Last getwork`, ... |
//! | `devs` | `DEVS` | `CPU` or `GPU` (the index), `Name`, `ID`, `Enabled`, `Status`, `Temperature`, `MHS av`, `MHS 5s`, `Accepted`, `Rejected`, `Hardware Errors`, `Utility`, `Last Share Time`, `Difficulty Accepted`, `Device Elapsed`, ... |
//! | `pools` | `POOLS` | `POOL`, `URL`, `Status`, `Priority`, `Quota`, `Getworks`, `Accepted`, `Rejected`, `Stale`, `User`, `Last Share Time`, `Stratum Active`, `Stratum URL`, `Difficulty Accepted`, ... |
//! | `version` | `VERSION` | `CGMiner` (powkit's version), `API` (`3.7`) |
//!
//! Every reply starts with `STATUS`: `STATUS` (`S` success, `E` error), `When` (Unix seconds),
//! `Code`, `Msg`, `Description`. Codes are cgminer's: 11 summary, 9 devs, 7 pools, 22 version;
//! 14 invalid command, 23 invalid JSON, 24 missing `command`, 45 access denied (every command
//! cgminer guards as privileged: `restart`, `quit`, `switchpool`, `addpool`, ...; this API changes
//! nothing).
//!
//! A hostile client gets a clear error and never stalls mining: the API runs on its own threads and
//! only copies a snapshot the miner publishes; a request is read for at most [`REQUEST_TIMEOUT`]
//! and [`MAX_REQUEST`] bytes, and at most [`MAX_CONNECTIONS`] are served at once.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// cgminer's API version this speaks.
pub const API_VERSION: &str = "3.7";
/// Most bytes of a request (cgminer reads at most half its 64 KiB buffer; a command is a few dozen).
pub const MAX_REQUEST: usize = 8 * 1024;
/// A request must arrive within this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 16;

/// cgminer's status codes used here.
pub mod code {
    /// `pools`.
    pub const POOL: i64 = 7;
    /// No pools.
    pub const NO_POOL: i64 = 8;
    /// `devs`.
    pub const DEVS: i64 = 9;
    /// No devices.
    pub const NO_DEVS: i64 = 10;
    /// `summary`.
    pub const SUMMARY: i64 = 11;
    /// Unknown command.
    pub const INVALID_COMMAND: i64 = 14;
    /// `version`.
    pub const VERSION: i64 = 22;
    /// The request is not a JSON object.
    pub const INVALID_JSON: i64 = 23;
    /// A JSON request without `command`.
    pub const MISSING_COMMAND: i64 = 24;
    /// A privileged command.
    pub const ACCESS_DENIED: i64 = 45;
}

/// The commands cgminer guards as privileged (they change the miner): refused with 45.
pub const PRIVILEGED: &[&str] = &[
    "switchpool",
    "enablepool",
    "disablepool",
    "poolpriority",
    "poolquota",
    "addpool",
    "removepool",
    "save",
    "quit",
    "restart",
    "privileged",
    "debug",
    "setconfig",
    "zero",
    "hotplug",
    "ascenable",
    "ascdisable",
    "ascidentify",
    "ascset",
    "pgaenable",
    "pgadisable",
    "pgaidentify",
    "pgaset",
    "gpuenable",
    "gpudisable",
    "gpurestart",
    "gpuintensity",
    "gpumem",
    "gpuengine",
    "gpufan",
    "gpuvddc",
    "failover-only",
    "lockstats",
];

/// One engine as `devs` shows it.
#[derive(Debug, Clone, Default)]
pub struct DeviceStatus {
    /// `CPU` or `GPU`: the index field's name.
    pub kind: &'static str,
    /// Index among devices of its kind.
    pub index: usize,
    /// The implementation or adapter (`avx2`, the GPU's name).
    pub name: String,
    /// Nonces hashed.
    pub hashes: u64,
    /// Hashes per second over the last 5 s.
    pub rate_5s: f64,
    /// Shares accepted.
    pub accepted: u64,
    /// Shares rejected.
    pub rejected: u64,
    /// Solutions that did not hash under the target when rebuilt.
    pub hardware_errors: u64,
    /// Difficulty of the accepted shares, summed.
    pub difficulty_accepted: f64,
    /// Difficulty of the rejected shares, summed.
    pub difficulty_rejected: f64,
    /// Unix seconds of its last answered share (0: none).
    pub last_share_time: u64,
    /// Difficulty of that share.
    pub last_share_difficulty: f64,
}

/// One `--pool` as `pools` shows it.
#[derive(Debug, Clone, Default)]
pub struct PoolStatus {
    /// `stratum+tcp://HOST:PORT`.
    pub url: String,
    /// The worker name.
    pub user: String,
    /// A session with it is open and has a job.
    pub active: bool,
    /// Its last dial or session failed.
    pub dead: bool,
    /// Jobs (`mining.notify`) received.
    pub getworks: u64,
    /// Shares accepted.
    pub accepted: u64,
    /// Shares rejected (stale included).
    pub rejected: u64,
    /// Shares rejected as stale.
    pub stale: u64,
    /// Difficulty sums.
    pub difficulty_accepted: f64,
    /// Difficulty of rejected shares.
    pub difficulty_rejected: f64,
    /// Difficulty of stale shares.
    pub difficulty_stale: f64,
    /// Unix seconds of the last answered share (0: none).
    pub last_share_time: u64,
    /// Difficulty of that share.
    pub last_share_difficulty: f64,
    /// The difficulty in force (`mining.set_difficulty`).
    pub difficulty: f64,
    /// The highest difficulty a submitted share reached.
    pub best_share: f64,
    /// Work comes from a node's getblocktemplate (`powkit mine --node`), not Stratum: `Has GBT`
    /// true, `Has Stratum` false (cgminer's solo mode).
    pub gbt: bool,
}

/// What the miner is doing: the miner publishes it (about once a second and after each share
/// answer); the API reads it.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Seconds since the start.
    pub elapsed: f64,
    /// Every engine.
    pub devices: Vec<DeviceStatus>,
    /// Every `--pool`, in failover order.
    pub pools: Vec<PoolStatus>,
    /// Shares that met the network target.
    pub found_blocks: u64,
    /// Solutions for a job already dropped, not sent (cgminer's `Discarded` counts dropped work).
    pub discarded: u64,
    /// Unix seconds of the last job received (0: none).
    pub last_getwork: u64,
}

/// The snapshot the miner and the API share.
#[derive(Debug, Default)]
pub struct LiveStatus {
    snapshot: Mutex<Snapshot>,
}

impl LiveStatus {
    /// Replaces the snapshot.
    pub fn publish(&self, s: Snapshot) {
        *self.snapshot.lock().unwrap_or_else(|e| e.into_inner()) = s;
    }

    /// A copy of the snapshot.
    pub fn get(&self) -> Snapshot {
        self.snapshot.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// One field: its name and its value as cgminer prints it.
enum Item {
    Str(String),
    /// A number already formatted (cgminer prints fixed decimals).
    Num(String),
    Bool(bool),
}

type Section = Vec<(&'static str, Item)>;

fn s(v: impl Into<String>) -> Item {
    Item::Str(v.into())
}
fn int(v: impl std::fmt::Display) -> Item {
    Item::Num(v.to_string())
}
/// MH/s with two decimals.
fn mhs(hashes_per_second: f64) -> Item {
    Item::Num(format!("{:.2}", hashes_per_second / 1e6))
}
fn diff(v: f64) -> Item {
    Item::Num(format!("{v:.8}"))
}
/// A ratio as cgminer's percent (times 100, four decimals).
fn percent(v: f64) -> Item {
    Item::Num(format!("{:.4}", v * 100.0))
}
fn fixed2(v: f64) -> Item {
    Item::Num(format!("{v:.2}"))
}
fn ratio(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        part / whole
    } else {
        0.0
    }
}

fn status_section(ok: bool, code: i64, msg: &str, when: u64) -> Section {
    let mut sec =
        vec![("STATUS", s(if ok { "S" } else { "E" })), ("When", int(when)), ("Code", int(code)), ("Msg", s(msg))];
    // cgminer gives no description to random probes of unknown commands.
    if code != code::INVALID_COMMAND {
        sec.push(("Description", s(format!("powkit {}", env!("CARGO_PKG_VERSION")))));
    }
    sec
}

/// One command's answer: its status, and its data sections under one name.
struct Answer {
    status: Section,
    data: Option<(&'static str, Vec<Section>)>,
}

fn error(code: i64, msg: &str, when: u64) -> Answer {
    Answer { status: status_section(false, code, msg, when), data: None }
}

fn summary(snap: &Snapshot) -> Section {
    let secs = snap.elapsed.max(1e-9);
    let hashes: u64 = snap.devices.iter().map(|d| d.hashes).sum();
    let rate_5s: f64 = snap.devices.iter().map(|d| d.rate_5s).sum();
    let sum = |f: fn(&PoolStatus) -> u64| snap.pools.iter().map(f).sum::<u64>();
    let fsum = |f: fn(&PoolStatus) -> f64| snap.pools.iter().map(f).sum::<f64>();
    let (accepted, rejected, stale) = (sum(|p| p.accepted), sum(|p| p.rejected), sum(|p| p.stale));
    let hw: u64 = snap.devices.iter().map(|d| d.hardware_errors).sum();
    let (da, dr, ds) = (fsum(|p| p.difficulty_accepted), fsum(|p| p.difficulty_rejected), fsum(|p| p.difficulty_stale));
    // cgminer's diff1 work: difficulty-1 shares the hashes represent.
    let diff1 = hashes as f64 / 4_294_967_296.0;
    let best = snap.pools.iter().map(|p| p.best_share).fold(0.0, f64::max);
    vec![
        ("Elapsed", int(snap.elapsed as u64)),
        ("MHS av", mhs(hashes as f64 / secs)),
        ("MHS 5s", mhs(rate_5s)),
        ("Found Blocks", int(snap.found_blocks)),
        ("Getworks", int(sum(|p| p.getworks))),
        ("Accepted", int(accepted)),
        ("Rejected", int(rejected)),
        ("Hardware Errors", int(hw)),
        ("Utility", fixed2(accepted as f64 / secs * 60.0)),
        ("Discarded", int(snap.discarded)),
        ("Stale", int(stale)),
        ("Get Failures", int(0)),
        ("Local Work", int(sum(|p| p.getworks))),
        ("Remote Failures", int(0)),
        ("Network Blocks", int(0)),
        ("Total MH", Item::Num(format!("{:.4}", hashes as f64 / 1e6))),
        ("Work Utility", fixed2(diff1 / secs * 60.0)),
        ("Difficulty Accepted", diff(da)),
        ("Difficulty Rejected", diff(dr)),
        ("Difficulty Stale", diff(ds)),
        ("Best Share", int(best as u64)),
        ("Device Hardware%", percent(ratio(hw as f64, hw as f64 + diff1))),
        ("Device Rejected%", percent(ratio(dr, diff1))),
        ("Pool Rejected%", percent(ratio(dr, da + dr + ds))),
        ("Pool Stale%", percent(ratio(ds, da + dr + ds))),
        ("Last getwork", int(snap.last_getwork)),
    ]
}

fn device(d: &DeviceStatus, elapsed: f64) -> Section {
    let secs = elapsed.max(1e-9);
    let diff1 = d.hashes as f64 / 4_294_967_296.0;
    let hw = d.hardware_errors as f64;
    vec![
        (d.kind, int(d.index)),
        ("Name", s(&d.name)),
        ("ID", int(d.index)),
        ("Enabled", s("Y")),
        ("Status", s("Alive")),
        ("Temperature", fixed2(0.0)),
        ("MHS av", mhs(d.hashes as f64 / secs)),
        ("MHS 5s", mhs(d.rate_5s)),
        ("Accepted", int(d.accepted)),
        ("Rejected", int(d.rejected)),
        ("Hardware Errors", int(d.hardware_errors)),
        ("Utility", fixed2(d.accepted as f64 / secs * 60.0)),
        ("Last Share Pool", int(if d.last_share_time > 0 { 0 } else { -1 })),
        ("Last Share Time", int(d.last_share_time)),
        ("Total MH", Item::Num(format!("{:.4}", d.hashes as f64 / 1e6))),
        ("Diff1 Work", int(diff1 as u64)),
        ("Difficulty Accepted", diff(d.difficulty_accepted)),
        ("Difficulty Rejected", diff(d.difficulty_rejected)),
        ("Last Share Difficulty", diff(d.last_share_difficulty)),
        ("Last Valid Work", int(d.last_share_time)),
        ("Device Hardware%", percent(ratio(hw, hw + diff1))),
        ("Device Rejected%", percent(ratio(d.difficulty_rejected, diff1))),
        ("Device Elapsed", int(elapsed as u64)),
    ]
}

fn pool(i: usize, p: &PoolStatus) -> Section {
    let all = p.difficulty_accepted + p.difficulty_rejected + p.difficulty_stale;
    let status = if p.active || !p.dead { "Alive" } else { "Dead" };
    vec![
        ("POOL", int(i)),
        ("URL", s(&p.url)),
        ("Status", s(status)),
        ("Priority", int(i)),
        ("Quota", int(1)),
        ("Long Poll", s("N")),
        ("Getworks", int(p.getworks)),
        ("Accepted", int(p.accepted)),
        ("Rejected", int(p.rejected)),
        ("Works", int(p.getworks)),
        ("Discarded", int(0)),
        ("Stale", int(p.stale)),
        ("Get Failures", int(0)),
        ("Remote Failures", int(0)),
        ("User", s(&p.user)),
        ("Last Share Time", int(p.last_share_time)),
        ("Diff1 Shares", int(0)),
        ("Proxy Type", s("")),
        ("Proxy", s("")),
        ("Difficulty Accepted", diff(p.difficulty_accepted)),
        ("Difficulty Rejected", diff(p.difficulty_rejected)),
        ("Difficulty Stale", diff(p.difficulty_stale)),
        ("Last Share Difficulty", diff(p.last_share_difficulty)),
        ("Work Difficulty", diff(p.difficulty)),
        ("Has Stratum", Item::Bool(!p.gbt)),
        ("Stratum Active", Item::Bool(p.active && !p.gbt)),
        ("Stratum URL", s(if p.active && !p.gbt { p.url.trim_start_matches("stratum+tcp://") } else { "" })),
        ("Stratum Difficulty", diff(if p.active && !p.gbt { p.difficulty } else { 0.0 })),
        ("Has Vmask", Item::Bool(true)),
        ("Has GBT", Item::Bool(p.gbt)),
        ("Best Share", int(p.best_share as u64)),
        ("Pool Rejected%", percent(ratio(p.difficulty_rejected, all))),
        ("Pool Stale%", percent(ratio(p.difficulty_stale, all))),
        ("Bad Work", int(0)),
    ]
}

/// The answer to one command.
fn command(name: &str, snap: &Snapshot, when: u64) -> Answer {
    match name {
        "summary" => Answer {
            status: status_section(true, code::SUMMARY, "Summary", when),
            data: Some(("SUMMARY", vec![summary(snap)])),
        },
        "devs" if snap.devices.is_empty() => error(code::NO_DEVS, "No devices", when),
        "devs" => {
            let (cpu, gpu) = snap.devices.iter().fold((0, 0), |(c, g), d| match d.kind {
                "GPU" => (c, g + 1),
                _ => (c + 1, g),
            });
            Answer {
                status: status_section(true, code::DEVS, &format!("{gpu} GPU(s) - {cpu} CPU(s)"), when),
                data: Some(("DEVS", snap.devices.iter().map(|d| device(d, snap.elapsed)).collect())),
            }
        }
        "pools" if snap.pools.is_empty() => error(code::NO_POOL, "No pools", when),
        "pools" => Answer {
            status: status_section(true, code::POOL, &format!("{} Pool(s)", snap.pools.len()), when),
            data: Some(("POOLS", snap.pools.iter().enumerate().map(|(i, p)| pool(i, p)).collect())),
        },
        "version" => Answer {
            status: status_section(true, code::VERSION, "CGMiner versions", when),
            data: Some(("VERSION", vec![vec![("CGMiner", s(env!("CARGO_PKG_VERSION"))), ("API", s(API_VERSION))]])),
        },
        n if PRIVILEGED.contains(&n) => error(code::ACCESS_DENIED, &format!("Access denied to '{n}' command"), when),
        _ => error(code::INVALID_COMMAND, "Invalid command", when),
    }
}

fn json_section(out: &mut String, sec: &Section) {
    out.push('{');
    for (i, (k, v)) in sec.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::from(*k).to_string());
        out.push(':');
        match v {
            Item::Str(x) => out.push_str(&Value::from(x.as_str()).to_string()),
            Item::Num(x) => out.push_str(x),
            Item::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        }
    }
    out.push('}');
}

/// `{"STATUS":[...],"NAME":[...],"id":1}`.
fn json_answer(a: &Answer) -> String {
    let mut out = String::from("{\"STATUS\":[");
    json_section(&mut out, &a.status);
    out.push(']');
    if let Some((name, secs)) = &a.data {
        out.push_str(&format!(",\"{name}\":["));
        for (i, sec) in secs.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json_section(&mut out, sec);
        }
        out.push(']');
    }
    out.push_str(",\"id\":1}");
    out
}

/// cgminer's text form: `NAME=VALUE,...|` per section; a data section's name leads it
/// (`SUMMARY,Elapsed=...|`) except for devices and pools, whose index field leads.
fn text_answer(a: &Answer) -> String {
    let item = |v: &Item| match v {
        Item::Str(x) => x.chars().fold(String::new(), |mut o, c| {
            if matches!(c, ',' | '|' | '=' | '\\') {
                o.push('\\');
            }
            o.push(c);
            o
        }),
        Item::Num(x) => x.clone(),
        Item::Bool(b) => b.to_string(),
    };
    let fields = |sec: &Section| sec.iter().map(|(k, v)| format!("{k}={}", item(v))).collect::<Vec<_>>().join(",");
    let mut out = format!("{}|", fields(&a.status));
    if let Some((name, secs)) = &a.data {
        for sec in secs {
            if matches!(*name, "SUMMARY" | "VERSION") {
                out.push_str(&format!("{name},"));
            }
            out.push_str(&fields(sec));
            out.push('|');
        }
    }
    out
}

/// The reply to one request (`request`: the bytes received, without the connection's end),
/// NUL-terminated as cgminer sends it. `when`: Unix seconds for `When`.
pub fn reply(request: &[u8], snap: &Snapshot, when: u64) -> Vec<u8> {
    let text = String::from_utf8_lossy(request);
    let text = text.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    let mut out = if !text.starts_with('{') {
        let cmd = text.split('|').next().unwrap_or("");
        text_answer(&command(cmd, snap, when))
    } else {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(o)) => match o.get("command") {
                None => json_answer(&error(code::MISSING_COMMAND, "Missing JSON 'command'", when)),
                Some(Value::String(cmd)) if cmd.contains('+') => {
                    // Joined commands: each answer under its name, each command once.
                    let mut seen = Vec::new();
                    let mut parts = Vec::new();
                    for c in cmd.split('+').filter(|c| !c.is_empty()) {
                        if seen.contains(&c) || seen.len() >= 8 {
                            continue;
                        }
                        seen.push(c);
                        let a = if PRIVILEGED.contains(&c) {
                            error(code::ACCESS_DENIED, &format!("Access denied to '{c}' command"), when)
                        } else {
                            command(c, snap, when)
                        };
                        parts.push(format!("{}:[{}]", Value::from(c), json_answer(&a)));
                    }
                    format!("{{{},\"id\":1}}", parts.join(","))
                }
                Some(Value::String(cmd)) => json_answer(&command(cmd, snap, when)),
                Some(_) => json_answer(&error(code::INVALID_COMMAND, "Invalid command", when)),
            },
            _ => json_answer(&error(code::INVALID_JSON, "Invalid JSON", when)),
        }
    };
    let mut bytes = std::mem::take(&mut out).into_bytes();
    bytes.push(0);
    bytes
}

/// The API listener: serves until dropped ([`crate::httpd::Listener`]; `address()` gives the
/// bound address).
pub type ApiServer = crate::httpd::Listener;

/// Serves cgminer's API on `addr` from `live`, one request per connection, at most
/// [`MAX_CONNECTIONS`] at once (more are closed at once).
///
/// # Errors
/// `addr` cannot be bound.
pub fn serve(addr: SocketAddr, live: Arc<LiveStatus>, started: std::time::Instant) -> Result<ApiServer, String> {
    let listener = TcpListener::bind(addr).map_err(|e| format!("--api-listen {addr}: {e}"))?;
    let serve: Arc<dyn Fn(TcpStream) + Send + Sync> = Arc::new(move |conn| serve_one(conn, &live, started));
    crate::httpd::accept_loop(listener, "cgminer-api", MAX_CONNECTIONS, |_| {}, serve)
}

/// Reads one request: until it parses as JSON, a plain command's line ends, the client closes its
/// side, [`MAX_REQUEST`] bytes, or [`REQUEST_TIMEOUT`].
fn read_request(conn: &mut TcpStream) -> Vec<u8> {
    let deadline = std::time::Instant::now() + REQUEST_TIMEOUT;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while buf.len() < MAX_REQUEST {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || conn.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n.min(MAX_REQUEST - buf.len())]),
        }
        let t = String::from_utf8_lossy(&buf);
        let t = t.trim_start();
        if t.starts_with('{') {
            if serde_json::from_str::<serde::de::IgnoredAny>(t.trim_end_matches('\0')).is_ok() {
                break;
            }
        } else if t.contains('\n') || t.contains('\0') || (!t.is_empty() && !t.contains('{')) {
            // A plain command: cgminer takes what one read brought.
            break;
        }
    }
    buf
}

fn serve_one(mut conn: TcpStream, live: &LiveStatus, started: std::time::Instant) {
    let _ = conn.set_write_timeout(Some(REQUEST_TIMEOUT));
    let request = read_request(&mut conn);
    let when = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut snap = live.get();
    snap.elapsed = started.elapsed().as_secs_f64();
    let out = reply(&request, &snap, when);
    let _ = conn.write_all(&out);
    let _ = conn.shutdown(std::net::Shutdown::Write);
    // Let the client read the reply before the socket goes (unread bytes would reset it).
    let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 1024];
    let mut left = 64 * 1024usize;
    while left > 0 {
        match conn.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> Snapshot {
        Snapshot {
            elapsed: 10.0,
            devices: vec![DeviceStatus {
                kind: "CPU",
                name: "avx2".into(),
                hashes: 50_000_000,
                rate_5s: 5e6,
                accepted: 3,
                difficulty_accepted: 0.003,
                ..Default::default()
            }],
            pools: vec![PoolStatus {
                url: "stratum+tcp://127.0.0.1:3333".into(),
                user: "w".into(),
                active: true,
                accepted: 3,
                getworks: 2,
                difficulty_accepted: 0.003,
                difficulty: 0.001,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn json(req: &str) -> Value {
        let out = reply(req.as_bytes(), &snap(), 1_700_000_000);
        assert_eq!(out.last(), Some(&0), "NUL-terminated");
        serde_json::from_slice(&out[..out.len() - 1]).unwrap()
    }

    #[test]
    fn summary_devs_pools_version() {
        let v = json(r#"{"command":"summary"}"#);
        assert_eq!(v["STATUS"][0]["STATUS"], "S");
        assert_eq!(v["STATUS"][0]["Code"], 11);
        assert_eq!(v["STATUS"][0]["When"], 1_700_000_000);
        assert_eq!(v["SUMMARY"][0]["Accepted"], 3);
        assert_eq!(v["SUMMARY"][0]["MHS av"], 5.0);
        assert_eq!(v["SUMMARY"][0]["MHS 5s"], 5.0);
        assert_eq!(v["id"], 1);
        let v = json(r#"{"command":"devs"}"#);
        assert_eq!(v["DEVS"][0]["CPU"], 0);
        assert_eq!(v["DEVS"][0]["Name"], "avx2");
        let v = json(r#"{"command":"pools"}"#);
        assert_eq!(v["POOLS"][0]["Stratum Active"], true);
        assert_eq!(v["POOLS"][0]["URL"], "stratum+tcp://127.0.0.1:3333");
        let v = json(r#"{"command":"version"}"#);
        assert_eq!(v["VERSION"][0]["API"], "3.7");
    }

    #[test]
    fn joined_refused_and_garbage() {
        let v = json(r#"{"command":"summary+devs+restart"}"#);
        assert_eq!(v["summary"][0]["SUMMARY"][0]["Accepted"], 3);
        assert_eq!(v["devs"][0]["DEVS"][0]["Accepted"], 3);
        assert_eq!(v["restart"][0]["STATUS"][0]["Code"], 45);
        assert_eq!(json(r#"{"command":"quit"}"#)["STATUS"][0]["Code"], 45);
        assert_eq!(json(r#"{"command":"nosuch"}"#)["STATUS"][0]["Code"], 14);
        assert_eq!(json(r#"{"command":"nosuch"}"#)["STATUS"][0].get("Description"), None);
        assert_eq!(json(r#"{"command":7}"#)["STATUS"][0]["Code"], 14);
        assert_eq!(json(r#"{"parameter":"x"}"#)["STATUS"][0]["Code"], 24);
        assert_eq!(json("{not json")["STATUS"][0]["Code"], 23);
        // Not starting with `{`: a plain-text command, as cgminer reads it.
        let text = String::from_utf8(reply(b"[1]", &snap(), 1)).unwrap();
        assert!(text.starts_with("STATUS=E,When=1,Code=14,Msg=Invalid command|"), "{text}");
        let text = reply(b"summary", &snap(), 1);
        let text = String::from_utf8(text).unwrap();
        assert!(text.starts_with("STATUS=S,When=1,Code=11,Msg=Summary,"), "{text}");
        assert!(text.contains("|SUMMARY,Elapsed=10,MHS av=5.00,"), "{text}");
        assert!(text.ends_with("|\0"), "{text}");
    }
}
