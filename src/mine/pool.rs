//! Pool mining: a Stratum v1 client (`powkit mine --pool stratum+tcp://HOST:PORT --user W`) that
//! takes jobs from a pool, hashes them on the CPU and GPU engines ([`crate::backend`],
//! [`super::search_with`]) and submits shares.
//!
//! Threads:
//! - the **session** thread (the caller's: [`run`]) dials the pools in order, speaks the protocol
//!   (`mining.configure` with BIP310 version rolling, `mining.subscribe` with session resume,
//!   `mining.authorize`, `mining.extranonce.subscribe`; then `mining.set_difficulty`,
//!   `mining.notify`, `mining.set_extranonce`, `mining.set_version_mask`, `client.reconnect`,
//!   `client.get_version`, `client.show_message`), checks each share locally and submits it once;
//! - a **reader** thread per connection turns lines into events (a line over
//!   [`MAX_LINE`] or one that is not a Stratum message ends the connection with a logged reason);
//! - one **device** thread per engine (`cpu`: the CPU worker threads of one search; `gpu`: the GPU
//!   search) hashes headers in segments of the nonce space and hands each share to the session
//!   the moment a worker confirms it ([`SearchOptions::on_solution`]).
//!
//! # No header is hashed twice
//! Every header a device takes is numbered from one session-wide counter (a *unit*). With a
//! version-rolling mask of `k` bits, unit `u` is version bits `version_bits_nth(mask, u mod 2^k)`
//! and extranonce2 `u >> k`; without a mask, extranonce2 is `u`. Within a unit the CPU threads or
//! GPU dispatches split the nonce space through one cursor ([`super::search_with`]). When the
//! nonce space of a unit is used up, the device takes the next unit.
//!
//! # Jobs, difficulty, stale shares
//! A job is hashed at the difficulty last set before its `mining.notify` (as cpuminer applies
//! `mining.set_difficulty`), with the extranonce1 and extranonce2 size in force at its notify
//! (`mining.set_extranonce` applies from the next job). A `clean_jobs` notify drops every older job
//! and cancels the running searches at once; the time from reading the notify to each device
//! hashing the new job is measured ([`PoolReport::job_switch_ms`]). A solution found for a dropped
//! job is counted stale and not sent; a share is sent at most once (a set of submitted
//! `(job, extranonce2, ntime, nonce, version)` per job), and only after its header, rebuilt from
//! the job, hashes under the share target with the scalar reference ([`BlockHeader::block_hash`]).
//!
//! # Failover
//! Pools are tried in the order given. A lost or refused connection is redialed after a backoff
//! that doubles from [`PoolOptions::backoff_initial`] up to [`BACKOFF_CAP`]; after
//! [`PoolOptions::attempts_per_pool`] failed dials in a row the next pool is tried (and after the
//! last, the first again). A session that received a job resets the backoff.

use std::collections::{HashMap, HashSet};
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use serde::Serialize;
use serde_json::{json, Value};
use tracing::{debug, info, warn};

use super::{search_with, CancelToken, Engines, OnSolution, SearchError, SearchOptions, Solution, NONCE_SPACE};
use crate::backend::{self, Backend};
use crate::primitives::{BlockHash, BlockHeader, Target};
use crate::sha256::Job;
use crate::stratum::message::{error_name, read_line, Message, StratumError, MAX_LINE};
use crate::stratum::work::{rolled_version, u32_to_hex, version_bits_nth};
use crate::stratum::{share_target, Notify};

/// The version-rolling mask asked for in `mining.configure` (BIP310's example and what ASICs ask
/// for: bits 13..28, leaving the top three bits and the low BIP9 signalling bits alone).
pub const VERSION_MASK_REQUEST: u32 = 0x1fff_e000;

/// The longest wait between two dials.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// How long the end of a run waits for the answers to shares already submitted.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a dial may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The user agent sent in `mining.subscribe`: `powkit/<version>`.
pub fn user_agent() -> String {
    format!("powkit/{}", env!("CARGO_PKG_VERSION"))
}

/// One pool: where, and the worker's credentials there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolConfig {
    /// `HOST:PORT`.
    pub address: String,
    /// The worker name (`mining.authorize`'s first param, and every share's).
    pub user: String,
    /// The password (`mining.authorize`'s second param).
    #[serde(skip)]
    pub pass: String,
}

/// Parses `stratum+tcp://HOST:PORT` (or a bare `HOST:PORT`) into `HOST:PORT`.
///
/// # Errors
/// Another scheme (`stratum+ssl` is not supported: no TLS stack in this build), or no port.
pub fn parse_pool_url(url: &str) -> Result<String, String> {
    let rest = match url.split_once("://") {
        Some(("stratum+tcp" | "stratum" | "tcp", rest)) => rest,
        Some((scheme, _)) => {
            return Err(format!("{url}: scheme '{scheme}' is not supported (stratum+tcp://HOST:PORT; no TLS)"))
        }
        None => url,
    };
    let rest = rest.trim_end_matches('/');
    match rest.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => Ok(rest.to_string()),
        _ => Err(format!("{url}: expected stratum+tcp://HOST:PORT")),
    }
}

/// What to mine and when to stop.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// The pools, in failover order (at least one).
    pub pools: Vec<PoolConfig>,
    /// Where to hash (see [`backend::open_search`]).
    pub backend: Backend,
    /// GPU adapter index.
    pub adapter: Option<usize>,
    /// CPU implementation name.
    pub cpu_impl: String,
    /// Let a software GPU adapter take part with `all`/`auto`.
    pub allow_software: bool,
    /// CPU worker threads.
    pub threads: usize,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Stop once this many shares have been answered by the pool (accepted or rejected).
    pub max_shares: Option<u64>,
    /// The first backoff before a redial (doubles up to [`BACKOFF_CAP`]).
    pub backoff_initial: Duration,
    /// Failed dials in a row before the next pool is tried.
    pub attempts_per_pool: u32,
    /// Stop when this is set (Ctrl-C).
    pub stop: Arc<AtomicBool>,
    /// Where to publish what the run is doing for cgminer's API ([`crate::mine::api`]), about once
    /// a second and after each share's answer; `None`: not published.
    pub status: Option<Arc<crate::mine::api::LiveStatus>>,
}

/// Shares rejected for one reason.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Rejection {
    /// The pool's error code (21 job not found, 22 duplicate, 23 low difficulty, …).
    pub code: i64,
    /// The pool's message.
    pub message: String,
    /// How many.
    pub count: u64,
}

/// One engine's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeviceReport {
    /// `cpu` or `gpu`.
    pub device: String,
    /// Nonces hashed.
    pub hashes: u64,
    /// Local hash rate (hashes / run seconds).
    pub hashes_per_second: f64,
    /// Shares the pool accepted.
    pub accepted: u64,
    /// Shares the pool rejected (stale included).
    pub rejected: u64,
    /// Stale shares: rejected with 21, or found for a dropped job and not sent.
    pub stale: u64,
    /// Sum of the difficulty of the accepted shares.
    pub accepted_difficulty: f64,
    /// The hash rate the accepted shares imply: `accepted_difficulty * 2^32 / seconds`.
    pub implied_hashes_per_second: f64,
}

/// Job-switch latency: from reading a `clean_jobs` notify to each device hashing the new job.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    /// Samples (one per device per clean job).
    pub samples: usize,
    /// Median, milliseconds.
    pub median: f64,
    /// Maximum, milliseconds.
    pub max: f64,
}

/// What a pool-mining run did: what users compare with their pool's page.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PoolReport {
    /// The pool of the last session (`HOST:PORT`).
    pub pool: Option<String>,
    /// Sessions opened (subscribed).
    pub sessions: u64,
    /// Sessions resumed with the pool's session id.
    pub resumed: u64,
    /// Failed dials.
    pub failed_dials: u64,
    /// Shares submitted.
    pub submitted: u64,
    /// Shares accepted.
    pub accepted: u64,
    /// Shares rejected (stale ones included).
    pub rejected: u64,
    /// Rejections by code and message.
    pub rejected_by_reason: Vec<Rejection>,
    /// Stale shares: rejected with 21, plus `stale_unsent`.
    pub stale: u64,
    /// Solutions for a job already dropped (a clean_jobs notify, a new session), or held behind
    /// one of our blocks when its tip was replaced or the run ended: not sent.
    pub stale_unsent: u64,
    /// Shares submitted and never answered (connection lost).
    pub unanswered: u64,
    /// Solutions whose header did not hash under the share target when rebuilt (an engine fault):
    /// not sent.
    pub invalid_local: u64,
    /// Sum of the difficulty of the accepted shares.
    pub accepted_difficulty: f64,
    /// Run time, seconds.
    pub seconds: f64,
    /// Nonces hashed on every engine.
    pub hashes: u64,
    /// Local hash rate.
    pub hashes_per_second: f64,
    /// The hash rate the accepted shares imply (`accepted_difficulty * 2^32 / seconds`).
    pub implied_hashes_per_second: f64,
    /// Per engine.
    pub devices: Vec<DeviceReport>,
    /// Job-switch latency.
    pub job_switch_ms: Latency,
    /// The version-rolling mask of the last session (`0` without a grant), 8 hex digits.
    pub version_mask: String,
    /// The last difficulty set.
    pub difficulty: f64,
    /// Notes on the engines chosen.
    pub notes: Vec<String>,
}

/// A job as the devices hash it: the notify, and the session state in force when it came.
#[derive(Debug)]
struct Work {
    /// Increases with every job (never reused across sessions).
    generation: u64,
    job: Notify,
    extranonce1: Vec<u8>,
    extranonce2_size: usize,
    difficulty: f64,
    target: Target,
    /// When its notify line was read.
    received: Instant,
    /// Whether it dropped the jobs before it (measured for the switch latency).
    clean: bool,
}

/// A solution a device found.
#[derive(Debug)]
struct Found {
    device: usize,
    generation: u64,
    extranonce2: Vec<u8>,
    version: u32,
    nonce: u32,
}

/// What the devices share with the session thread.
struct Shared {
    /// The job to hash and the token that cancels searches of it.
    current: Mutex<(Option<Arc<Work>>, CancelToken)>,
    /// The version-rolling mask in force (0: no rolling).
    mask: AtomicU32,
    /// The unit counter (see the module docs).
    units: AtomicU64,
    /// Set when the run ends.
    stop: AtomicBool,
    /// Nonces hashed, per device.
    hashes: Vec<AtomicU64>,
    /// Job-switch latencies, milliseconds.
    latencies: Mutex<Vec<f64>>,
}

impl Shared {
    fn set_work(&self, work: Option<Arc<Work>>, cancel_running: bool) {
        let mut cur = self.current.lock().expect("no panics while held");
        if cancel_running {
            cur.1.cancel();
            cur.1 = CancelToken::new();
        }
        cur.0 = work;
    }
}

/// Extranonce2 `value` as `size` bytes, little-endian (the order cpuminer increments it in).
fn extranonce2_bytes(value: u64, size: usize) -> Vec<u8> {
    let mut v = value.to_le_bytes().to_vec();
    v.resize(size, 0);
    v
}

/// The extranonce2 value and version bits of unit `unit` under `mask` (see the module docs).
fn unit_parts(unit: u64, mask: u32) -> (u64, u32) {
    let k = mask.count_ones();
    if k == 0 {
        (unit, 0)
    } else {
        (unit >> k, version_bits_nth(mask, (unit & ((1u64 << k) - 1)) as u32))
    }
}

/// How many nonces a device hashes between looks at its job (its shares go to the session as they
/// are found): about a tenth of a second at its rate.
fn segment_size(rate: f64) -> u64 {
    ((rate * 0.1) as u64).clamp(1 << 16, 1 << 30) & !63
}

/// One device thread: hashes units of the current job until the run stops.
fn device_loop(
    device: usize,
    mut engines: Engines<'_>,
    threads: usize,
    shared: &Shared,
    found: &Sender<Found>,
) -> Result<(), crate::gpu::GpuError> {
    let mut last_generation = 0u64;
    let mut rate = 0.0f64;
    while !shared.stop.load(Ordering::Relaxed) {
        let (work, cancel) = {
            let cur = shared.current.lock().expect("no panics while held");
            (cur.0.clone(), cur.1.clone())
        };
        let Some(work) = work else {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        };
        if cancel.is_cancelled() {
            continue;
        }
        let mask = shared.mask.load(Ordering::Relaxed);
        let unit = shared.units.fetch_add(1, Ordering::Relaxed);
        let (en2_value, version_bits) = unit_parts(unit, mask);
        let capacity = if work.extranonce2_size >= 8 { u64::MAX } else { 1u64 << (8 * work.extranonce2_size) };
        if en2_value >= capacity {
            warn!(size = work.extranonce2_size, "extranonce2 space used up; waiting for a new job");
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let extranonce2 = extranonce2_bytes(en2_value, work.extranonce2_size);
        let version = rolled_version(work.job.version, version_bits, mask);
        let header = work.job.header(&work.extranonce1, &extranonce2, work.job.time, 0, version);
        let job = Job::new(&header, work.target);
        // Each share goes to the session the moment it is found: one held to the end of its
        // segment (a tenth of a second) would reach the pool late, and a block among them would
        // leave the device hashing a tip that has already moved.
        let on_solution = {
            let (found, generation, extranonce2) = (found.clone(), work.generation, extranonce2.clone());
            OnSolution(Arc::new(move |s: Solution| {
                let _ =
                    found.send(Found { device, generation, extranonce2: extranonce2.clone(), version, nonce: s.nonce });
            }))
        };
        let mut start = 0u64;
        while start < NONCE_SPACE {
            if work.generation != last_generation {
                last_generation = work.generation;
                if work.clean {
                    let ms = work.received.elapsed().as_secs_f64() * 1e3;
                    debug!(device, job = %work.job.job_id, ms, "hashing the new job");
                    shared.latencies.lock().expect("no panics while held").push(ms);
                }
            }
            let count = segment_size(rate).min(NONCE_SPACE - start);
            let opts = SearchOptions {
                threads,
                find_all: true,
                cancel: cancel.clone(),
                on_solution: Some(on_solution.clone()),
                ..Default::default()
            };
            let r = search_with(&mut engines, &job, start as u32, count, &opts, None)?;
            shared.hashes[device].fetch_add(r.hashes, Ordering::Relaxed);
            if r.hashes > 0 {
                rate = r.rate();
            }
            start += count;
            let moved_on = {
                let cur = shared.current.lock().expect("no panics while held");
                cur.0.as_ref().is_none_or(|w| w.generation != work.generation)
            };
            if r.interrupted || moved_on || shared.stop.load(Ordering::Relaxed) {
                break;
            }
        }
    }
    Ok(())
}

/// An event for the session thread.
enum Event {
    /// A message, and when its line was read.
    Line(Message, Instant),
    /// The connection ended, and why.
    Closed(String),
}

/// Reads lines until the connection ends; every line is one event.
fn reader_loop(stream: TcpStream, conn: u64, tx: Sender<(u64, Event)>) {
    let mut r = BufReader::new(stream);
    let mut buf = String::new();
    loop {
        let why = match read_line(&mut r, &mut buf, MAX_LINE) {
            Ok(false) => "the pool closed the connection".to_string(),
            Ok(true) if buf.trim().is_empty() => continue,
            Ok(true) => match Message::parse(&buf) {
                Ok(m) => {
                    if tx.send((conn, Event::Line(m, Instant::now()))).is_err() {
                        return;
                    }
                    continue;
                }
                Err(e) => {
                    let shown: String = buf.chars().take(120).collect();
                    format!("malformed line from the pool ({e}): {shown}")
                }
            },
            Err(e) => format!("bad line from the pool: {e}"),
        };
        let _ = tx.send((conn, Event::Closed(why)));
        return;
    }
}

/// What a request id was for.
enum Pending {
    Configure,
    Subscribe,
    Authorize,
    ExtranonceSubscribe,
    /// `block`: the tip the share replaces when it meets its job's network target.
    Submit {
        device: usize,
        difficulty: f64,
        block: Option<BlockHash>,
    },
}

/// What makes a share unique within a job: extranonce2, ntime, nonce, version.
type ShareKey = (Vec<u8>, u32, u32, u32);

/// One connection's protocol state.
struct Session {
    conn: u64,
    pool: usize,
    address: String,
    stream: TcpStream,
    next_id: u64,
    pending: HashMap<u64, Pending>,
    extranonce1: Option<Vec<u8>>,
    extranonce2_size: usize,
    difficulty: f64,
    authorized: bool,
    got_job: bool,
    /// Live jobs by id (a clean_jobs notify clears it).
    jobs: HashMap<String, Arc<Work>>,
    /// Submitted shares per job id.
    submitted: HashMap<String, HashSet<ShareKey>>,
    /// The session id sent in `mining.subscribe` (a resume), if any.
    sent_session: Option<String>,
    /// `client.reconnect`: where to dial next, and after how long.
    redirect: Option<(String, Duration)>,
    /// The tip that a submitted share meeting its job's network target (a block), not yet
    /// answered, builds on.
    block_pending: Option<BlockHash>,
    /// Shares on that tip found while the block's answer is awaited (see [`Client::share`]).
    held: Vec<Found>,
}

impl Session {
    fn send(&mut self, method: &str, params: Value, what: Pending) -> std::io::Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        let line = Message::request(id, method, params).to_line();
        debug!(pool = %self.address, "> {}", line.trim_end());
        self.stream.write_all(line.as_bytes())?;
        self.pending.insert(id, what);
        Ok(id)
    }

    fn reply(&mut self, m: Message) -> std::io::Result<()> {
        self.stream.write_all(m.to_line().as_bytes())
    }
}

/// The whole run's state on the session thread.
struct Client<'a> {
    opts: &'a PoolOptions,
    shared: &'a Shared,
    report: PoolReport,
    devices: Vec<DeviceReport>,
    rejections: Vec<Rejection>,
    generation: u64,
    /// The pool's session id (the `mining.notify` subscription id) per pool, for resume.
    session_ids: HashMap<usize, String>,
    answered: u64,
    /// When the run started.
    t0: Instant,
    /// What cgminer's API shows (published to `opts.status`).
    api: ApiTrack,
}

/// The figures cgminer's API shows that the report does not keep.
#[derive(Default)]
struct ApiTrack {
    pools: Vec<crate::mine::api::PoolStatus>,
    devices: Vec<crate::mine::api::DeviceStatus>,
    /// (when, hashes per device): the last ~6 s, for `MHS 5s`.
    samples: std::collections::VecDeque<(Instant, Vec<u64>)>,
    last_getwork: u64,
    found_blocks: u64,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Why a session ended.
enum End {
    /// The connection is gone (the reason is logged).
    Lost,
    /// The run is over.
    Stop,
}

impl Client<'_> {
    /// Publishes the API snapshot (a no-op without `opts.status`).
    fn publish(&mut self) {
        let t0 = self.t0;
        let Some(live) = &self.opts.status else { return };
        let now = Instant::now();
        let hashes: Vec<u64> = self.shared.hashes.iter().map(|h| h.load(Ordering::Relaxed)).collect();
        let t = &mut self.api;
        if t.samples.back().is_none_or(|(at, _)| now.duration_since(*at) >= Duration::from_millis(500)) {
            t.samples.push_back((now, hashes.clone()));
        }
        while t.samples.len() > 2 && now.duration_since(t.samples[1].0) >= Duration::from_secs(5) {
            t.samples.pop_front();
        }
        let (at0, h0) = t.samples.front().cloned().unwrap_or((t0, vec![0; hashes.len()]));
        let window = now.duration_since(at0).as_secs_f64();
        for (i, d) in t.devices.iter_mut().enumerate() {
            d.hashes = hashes[i];
            d.rate_5s = if window > 0.0 { hashes[i].saturating_sub(h0[i]) as f64 / window } else { 0.0 };
            d.accepted = self.devices[i].accepted;
            d.rejected = self.devices[i].rejected;
            d.difficulty_accepted = self.devices[i].accepted_difficulty;
        }
        if let Some(d) = t.devices.first_mut() {
            // Rebuilt solutions that missed the target: an engine fault, cgminer's hardware error.
            d.hardware_errors = self.report.invalid_local;
        }
        live.publish(crate::mine::api::Snapshot {
            elapsed: t0.elapsed().as_secs_f64(),
            devices: t.devices.clone(),
            pools: t.pools.clone(),
            found_blocks: t.found_blocks,
            discarded: self.report.stale_unsent,
            last_getwork: t.last_getwork,
        });
    }

    fn finished(&self, t0: Instant) -> bool {
        self.opts.stop.load(Ordering::Relaxed)
            || self.opts.duration.is_some_and(|d| t0.elapsed() >= d)
            || self.opts.max_shares.is_some_and(|n| self.answered >= n)
    }

    /// Handles one message of the session.
    fn message(&mut self, s: &mut Session, m: Message, at: Instant, resume: &mut Option<String>) -> Result<(), String> {
        debug!(pool = %s.address, "< {}", m.to_line().trim_end());
        match m {
            Message::Response { id, result, error } => {
                let Some(pending) = id.as_u64().and_then(|i| s.pending.remove(&i)) else {
                    debug!(pool = %s.address, "a response to no request of ours: {id}");
                    return Ok(());
                };
                let submit = matches!(pending, Pending::Submit { .. });
                let r = self.response(s, pending, result, error, resume);
                if submit {
                    self.publish();
                }
                r
            }
            Message::Request { id, method, params } => self.request(s, id, &method, &params, at),
        }
    }

    fn response(
        &mut self,
        s: &mut Session,
        pending: Pending,
        result: Value,
        error: Option<StratumError>,
        resume: &mut Option<String>,
    ) -> Result<(), String> {
        let io = |e: std::io::Error| format!("sending failed: {e}");
        match pending {
            Pending::Configure => {
                let granted = error.is_none() && result.get("version-rolling").and_then(Value::as_bool) == Some(true);
                let mask = result
                    .get("version-rolling.mask")
                    .and_then(Value::as_str)
                    .and_then(|m| u32::from_str_radix(m, 16).ok())
                    .filter(|_| granted)
                    .map_or(0, |m| m & VERSION_MASK_REQUEST);
                self.shared.mask.store(mask, Ordering::Relaxed);
                self.report.version_mask = u32_to_hex(mask);
                match (&error, mask) {
                    (Some(e), _) => info!(pool = %s.address, "mining.configure refused ({e}): no version rolling"),
                    (None, 0) => info!(pool = %s.address, "no version-rolling grant: the version is not rolled"),
                    (None, m) => info!(pool = %s.address, mask = %u32_to_hex(m), "version rolling granted"),
                }
            }
            Pending::Subscribe => {
                if let Some(e) = error {
                    return Err(format!("mining.subscribe refused: {e}"));
                }
                let a = result.as_array().ok_or("mining.subscribe: the result is not an array")?;
                let en1 = a
                    .get(1)
                    .and_then(Value::as_str)
                    .and_then(|h| hex::decode(h).ok())
                    .filter(|b| b.len() <= 32)
                    .ok_or("mining.subscribe: extranonce1 is not hex of at most 32 bytes")?;
                let size = a
                    .get(2)
                    .and_then(Value::as_u64)
                    .filter(|&n| (1..=16).contains(&n))
                    .ok_or("mining.subscribe: extranonce2_size is not 1..16")?;
                // The session id: the subscription id of mining.notify (what cpuminer sends back).
                let sid = a.first().and_then(Value::as_array).and_then(|subs| {
                    subs.iter().find_map(|p| {
                        let p = p.as_array()?;
                        (p.first()?.as_str()? == "mining.notify").then(|| p.get(1)?.as_str().map(String::from))?
                    })
                });
                let resumed = resume.is_some() && resume == &sid;
                self.report.sessions += 1;
                if resumed {
                    self.report.resumed += 1;
                }
                info!(
                    pool = %s.address,
                    extranonce1 = %hex::encode(&en1),
                    extranonce2_size = size,
                    session = sid.as_deref().unwrap_or("-"),
                    resumed,
                    "subscribed"
                );
                if let Some(sid) = sid {
                    self.session_ids.insert(s.pool, sid);
                }
                *resume = None;
                s.extranonce1 = Some(en1);
                s.extranonce2_size = size as usize;
                let cfg = &self.opts.pools[s.pool];
                s.send("mining.authorize", json!([cfg.user, cfg.pass]), Pending::Authorize).map_err(io)?;
            }
            Pending::Authorize => {
                if let Some(e) = error.filter(|_| result != Value::Bool(true)) {
                    return Err(format!("mining.authorize refused for '{}': {e}", self.opts.pools[s.pool].user));
                }
                if result == Value::Bool(false) {
                    return Err(format!("mining.authorize refused for '{}'", self.opts.pools[s.pool].user));
                }
                s.authorized = true;
                info!(pool = %s.address, user = %self.opts.pools[s.pool].user, "authorized");
                s.send("mining.extranonce.subscribe", json!([]), Pending::ExtranonceSubscribe).map_err(io)?;
            }
            Pending::ExtranonceSubscribe => match error {
                Some(e) => debug!(pool = %s.address, "mining.extranonce.subscribe refused ({e}); fine"),
                None => debug!(pool = %s.address, "mining.extranonce.subscribe: {result}"),
            },
            Pending::Submit { device, difficulty, block } => {
                self.answered += 1;
                let now = unix_now();
                self.api.pools[s.pool].last_share_time = now;
                self.api.pools[s.pool].last_share_difficulty = difficulty;
                self.api.devices[device].last_share_time = now;
                self.api.devices[device].last_share_difficulty = difficulty;
                if block.is_some() && block == s.block_pending {
                    // The block's answer came: the shares held behind it go now, or count as
                    // stale when its tip has been replaced (the notify came first).
                    s.block_pending = None;
                    for f in std::mem::take(&mut s.held) {
                        self.share(s, f).map_err(io)?;
                    }
                }
                let accepted = result == Value::Bool(true) && error.is_none();
                if accepted {
                    self.report.accepted += 1;
                    self.report.accepted_difficulty += difficulty;
                    self.devices[device].accepted += 1;
                    self.devices[device].accepted_difficulty += difficulty;
                    ::metrics::counter!(crate::metrics::MINE_SHARES_ACCEPTED).increment(1);
                    let p = &mut self.api.pools[s.pool];
                    p.accepted += 1;
                    p.difficulty_accepted += difficulty;
                    debug!(pool = %s.address, difficulty, "share accepted");
                } else {
                    let e = error.unwrap_or_else(|| StratumError::new(20, format!("result {result}")));
                    warn!(pool = %s.address, code = e.code, "share rejected: {} ({})", e.message, error_name(e.code));
                    self.report.rejected += 1;
                    self.devices[device].rejected += 1;
                    let p = &mut self.api.pools[s.pool];
                    p.rejected += 1;
                    p.difficulty_rejected += difficulty;
                    if e.code == crate::stratum::message::ERR_JOB_NOT_FOUND {
                        p.stale += 1;
                        p.difficulty_stale += difficulty;
                    }
                    self.api.devices[device].difficulty_rejected += difficulty;
                    let reason = crate::stratum::message::error_label(e.code);
                    ::metrics::counter!(crate::metrics::MINE_SHARES_REJECTED, "reason" => reason).increment(1);
                    if e.code == crate::stratum::message::ERR_JOB_NOT_FOUND {
                        self.report.stale += 1;
                        self.devices[device].stale += 1;
                        ::metrics::counter!(crate::metrics::MINE_SHARES_STALE).increment(1);
                    }
                    match self.rejections.iter_mut().find(|r| r.code == e.code && r.message == e.message) {
                        Some(r) => r.count += 1,
                        None => self.rejections.push(Rejection { code: e.code, message: e.message, count: 1 }),
                    }
                }
            }
        }
        Ok(())
    }

    fn request(&mut self, s: &mut Session, id: Value, method: &str, params: &Value, at: Instant) -> Result<(), String> {
        let io = |e: std::io::Error| format!("sending failed: {e}");
        let p = params.as_array().map(Vec::as_slice).unwrap_or(&[]);
        match method {
            "mining.set_difficulty" => {
                let d = p.first().and_then(Value::as_f64).filter(|d| d.is_finite() && *d > 0.0);
                match d {
                    Some(d) => {
                        info!(pool = %s.address, difficulty = d, "difficulty set (for the next job)");
                        s.difficulty = d;
                        self.report.difficulty = d;
                    }
                    None => warn!(pool = %s.address, "mining.set_difficulty with a bad difficulty: {params}; ignored"),
                }
            }
            "mining.notify" => {
                let job = Notify::from_params(params).map_err(|e| format!("malformed mining.notify: {e}"))?;
                let Some(en1) = s.extranonce1.clone() else {
                    return Err("mining.notify before the subscription was answered".into());
                };
                let target = share_target(s.difficulty).map_err(|e| format!("difficulty: {e}"))?;
                self.generation += 1;
                let clean = job.clean_jobs;
                let work = Arc::new(Work {
                    generation: self.generation,
                    extranonce1: en1,
                    extranonce2_size: s.extranonce2_size,
                    difficulty: s.difficulty,
                    target,
                    received: at,
                    clean,
                    job,
                });
                info!(pool = %s.address, job = %work.job.job_id, clean, difficulty = work.difficulty, "new job");
                if clean {
                    s.jobs.clear();
                    s.submitted.clear();
                }
                s.jobs.insert(work.job.job_id.clone(), work.clone());
                s.got_job = true;
                self.shared.set_work(Some(work), clean);
                self.api.last_getwork = unix_now();
                let p = &mut self.api.pools[s.pool];
                p.getworks += 1;
                p.active = true;
                p.dead = false;
                p.difficulty = s.difficulty;
            }
            "mining.set_extranonce" => {
                let en1 = p.first().and_then(Value::as_str).and_then(|h| hex::decode(h).ok()).filter(|b| b.len() <= 32);
                let size = p.get(1).and_then(Value::as_u64).filter(|&n| (1..=16).contains(&n));
                match (en1, size) {
                    (Some(en1), Some(size)) => {
                        info!(pool = %s.address, extranonce1 = %hex::encode(&en1), extranonce2_size = size,
                              "extranonce set (from the next job)");
                        s.extranonce1 = Some(en1);
                        s.extranonce2_size = size as usize;
                    }
                    _ => return Err(format!("malformed mining.set_extranonce: {params}")),
                }
            }
            "mining.set_version_mask" => {
                let m =
                    p.first().and_then(Value::as_str).and_then(|m| crate::stratum::work::u32_from_hex("mask", m).ok());
                match m {
                    Some(m) if self.report.version_mask != u32_to_hex(0) || m == 0 => {
                        let mask = m & VERSION_MASK_REQUEST;
                        info!(pool = %s.address, mask = %u32_to_hex(mask), "version mask set");
                        self.shared.mask.store(mask, Ordering::Relaxed);
                        self.report.version_mask = u32_to_hex(mask);
                    }
                    Some(_) => {
                        info!(pool = %s.address, "mining.set_version_mask without a version-rolling grant; ignored")
                    }
                    None => warn!(pool = %s.address, "malformed mining.set_version_mask: {params}; ignored"),
                }
            }
            "client.reconnect" => {
                let host = p.first().and_then(Value::as_str).filter(|h| !h.is_empty());
                let port = p.get(1).and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()));
                let wait = p.get(2).and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok())).unwrap_or(0);
                let (cur_host, cur_port) = s.address.rsplit_once(':').unwrap_or((&s.address, ""));
                let address = format!(
                    "{}:{}",
                    host.unwrap_or(cur_host),
                    port.map_or_else(|| cur_port.to_string(), |p| p.to_string())
                );
                info!(pool = %s.address, to = %address, wait, "client.reconnect");
                s.redirect = Some((address, Duration::from_secs(wait.min(600))));
            }
            "client.get_version" => {
                if !id.is_null() {
                    s.reply(Message::ok(id, json!(user_agent()))).map_err(io)?;
                }
            }
            "client.show_message" => {
                let text = p.first().and_then(|v| v.as_str()).unwrap_or("");
                info!(pool = %s.address, "message from the pool: {text}");
            }
            other => debug!(pool = %s.address, method = other, "unknown method; ignored"),
        }
        Ok(())
    }

    /// Checks a solution and submits it once, or counts it stale.
    fn share(&mut self, s: &mut Session, f: Found) -> std::io::Result<()> {
        let Some(work) = s.jobs.values().find(|w| w.generation == f.generation).cloned() else {
            debug!(device = f.device, "solution for a dropped job; not sent");
            self.count_unsent(f.device);
            return Ok(());
        };
        let mask = self.shared.mask.load(Ordering::Relaxed);
        if f.version & !mask != work.job.version & !mask {
            debug!(device = f.device, "version bits outside the mask now in force; not sent");
            self.count_unsent(f.device);
            return Ok(());
        }
        let time = work.job.time;
        let header: BlockHeader = work.job.header(&work.extranonce1, &f.extranonce2, time, f.nonce, f.version);
        let hash = header.block_hash();
        if !work.target.is_met_by(&hash) {
            warn!(
                device = f.device,
                nonce = f.nonce,
                "a solution does not meet the share target when rebuilt; not sent"
            );
            self.report.invalid_local += 1;
            return Ok(());
        }
        let best = &mut self.api.pools[s.pool].best_share;
        *best = best.max(crate::stratum::work::hash_difficulty(&hash));
        // A share on a tip that one of our blocks, still unanswered, is about to replace would
        // be stale the moment the pool takes that block: it waits for the block's answer (as
        // cgminer drops shares it knows are stale rather than submit them).
        if s.block_pending == Some(work.job.prev_hash) {
            debug!(device = f.device, "a share on the tip our block replaces; held until the block's answer");
            s.held.push(f);
            return Ok(());
        }
        let key = (f.extranonce2.clone(), time, f.nonce, f.version);
        if !s.submitted.entry(work.job.job_id.clone()).or_default().insert(key) {
            debug!(device = f.device, "a share already sent; not sent again");
            return Ok(());
        }
        let user = self.opts.pools[s.pool].user.clone();
        let mut params = vec![
            json!(user),
            json!(work.job.job_id),
            json!(hex::encode(&f.extranonce2)),
            json!(u32_to_hex(time)),
            json!(u32_to_hex(f.nonce)),
        ];
        if mask != 0 {
            params.push(json!(u32_to_hex(f.version & mask)));
        }
        self.report.submitted += 1;
        let block = work.job.bits.to_target().is_ok_and(|t| t.is_met_by(&hash)).then_some(work.job.prev_hash);
        s.send(
            "mining.submit",
            Value::Array(params),
            Pending::Submit { device: f.device, difficulty: work.difficulty, block },
        )?;
        if block.is_some() {
            info!(pool = %s.address, job = %work.job.job_id, %hash, "share meets the network target: a block");
            ::metrics::counter!(crate::metrics::MINE_BLOCKS_FOUND).increment(1);
            self.api.found_blocks += 1;
            s.block_pending = block;
        }
        Ok(())
    }
}

/// Opens a connection with the timeouts.
fn dial(address: &str) -> std::io::Result<TcpStream> {
    let addrs: Vec<SocketAddr> = address.to_socket_addrs()?.collect();
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
            Ok(s) => {
                s.set_nodelay(true)?;
                s.set_write_timeout(Some(CONNECT_TIMEOUT))?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// What a periodic progress report sees.
#[derive(Debug, Clone, Copy)]
pub struct PoolProgress {
    /// Seconds since the start.
    pub seconds: f64,
    /// Local hash rate over the run.
    pub hashes_per_second: f64,
    /// Accepted shares.
    pub accepted: u64,
    /// Rejected shares.
    pub rejected: u64,
    /// Stale shares.
    pub stale: u64,
    /// The implied hash rate.
    pub implied_hashes_per_second: f64,
    /// The difficulty in force.
    pub difficulty: f64,
}

/// Mines for the pools until `duration`, `max_shares` or `stop` ends the run.
///
/// # Errors
/// The engines cannot be opened ([`SearchError::Engines`]) or the GPU failed
/// ([`SearchError::Gpu`]). Pools that cannot be reached are not errors: they are redialed until
/// the run ends, and the report says what happened.
pub fn run(opts: &PoolOptions, progress: Option<&dyn Fn(&PoolProgress)>) -> Result<PoolReport, SearchError> {
    assert!(!opts.pools.is_empty(), "at least one pool");
    let mut set = backend::open_search(opts.backend, &opts.cpu_impl, opts.adapter, opts.allow_software)?;
    let mut names = Vec::new();
    let mut device_names: Vec<(&'static str, String)> = Vec::new();
    if let Some((_, scanner)) = &set.cpu {
        names.push("cpu");
        device_names.push(("CPU", scanner.kind().name().to_string()));
    }
    if let Some(gpu) = &set.gpu {
        names.push("gpu");
        device_names.push(("GPU", gpu.device().adapter.name.clone()));
    }
    let shared = Shared {
        current: Mutex::new((None, CancelToken::new())),
        mask: AtomicU32::new(0),
        units: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        hashes: names.iter().map(|_| AtomicU64::new(0)).collect(),
        latencies: Mutex::new(Vec::new()),
    };
    let (found_tx, found_rx) = crossbeam_channel::unbounded::<Found>();
    let t0 = Instant::now();
    let notes = set.notes.clone();
    let cpu = set.cpu.as_ref().map(|(_, s)| &**s);
    let gpu = set.gpu.as_mut();
    let threads = opts.threads;

    let mut client = Client {
        opts,
        shared: &shared,
        report: PoolReport { version_mask: u32_to_hex(0), notes, ..Default::default() },
        devices: names.iter().map(|n| DeviceReport { device: n.to_string(), ..Default::default() }).collect(),
        rejections: Vec::new(),
        generation: 0,
        session_ids: HashMap::new(),
        answered: 0,
        t0,
        api: ApiTrack {
            pools: opts
                .pools
                .iter()
                .map(|p| crate::mine::api::PoolStatus {
                    url: format!("stratum+tcp://{}", p.address),
                    user: p.user.clone(),
                    ..Default::default()
                })
                .collect(),
            devices: device_names
                .iter()
                .enumerate()
                .map(|(i, (kind, name))| crate::mine::api::DeviceStatus {
                    kind,
                    index: i - device_names[..i].iter().filter(|(k, _)| k != kind).count(),
                    name: name.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        },
    };
    let gpu_error = std::thread::scope(|scope| {
        let mut handles = Vec::new();
        let mut device = 0;
        if let Some(cpu) = cpu {
            let (sh, tx) = (&shared, found_tx.clone());
            handles.push(
                scope.spawn(move || device_loop(device, Engines { cpu: Some(cpu), gpu: None }, threads, sh, &tx)),
            );
            device += 1;
        }
        if let Some(gpu) = gpu {
            let (sh, tx) = (&shared, found_tx.clone());
            handles.push(scope.spawn(move || device_loop(device, Engines { cpu: None, gpu: Some(gpu) }, 1, sh, &tx)));
        }
        drop(found_tx);
        client.sessions(&found_rx, t0, progress);
        shared.stop.store(true, Ordering::Relaxed);
        shared.set_work(None, true);
        let mut err = None;
        for h in handles {
            if let Err(e) = h.join().expect("device threads do not panic") {
                err = Some(e);
            }
        }
        err
    });
    if let Some(e) = gpu_error {
        return Err(SearchError::Gpu(e));
    }
    let secs = t0.elapsed().as_secs_f64();
    let mut r = client.report;
    r.seconds = secs;
    r.rejected_by_reason = client.rejections;
    for (d, h) in client.devices.iter_mut().zip(&shared.hashes) {
        d.hashes = h.load(Ordering::Relaxed);
        d.hashes_per_second = d.hashes as f64 / secs.max(1e-9);
        d.implied_hashes_per_second = d.accepted_difficulty * 4_294_967_296.0 / secs.max(1e-9);
    }
    r.hashes = client.devices.iter().map(|d| d.hashes).sum();
    r.hashes_per_second = r.hashes as f64 / secs.max(1e-9);
    r.implied_hashes_per_second = r.accepted_difficulty * 4_294_967_296.0 / secs.max(1e-9);
    r.devices = client.devices;
    let mut lat = shared.latencies.into_inner().expect("threads finished");
    lat.sort_by(f64::total_cmp);
    r.job_switch_ms = Latency {
        samples: lat.len(),
        median: lat.get(lat.len() / 2).copied().unwrap_or(0.0),
        max: lat.last().copied().unwrap_or(0.0),
    };
    Ok(r)
}

impl Client<'_> {
    /// Dials pools in order with backoff until the run ends.
    fn sessions(&mut self, found: &Receiver<Found>, t0: Instant, progress: Option<&dyn Fn(&PoolProgress)>) {
        let (tx, rx) = crossbeam_channel::unbounded::<(u64, Event)>();
        let mut pool = 0usize;
        let mut failures = 0u32;
        let mut backoff = self.opts.backoff_initial;
        let mut conn = 0u64;
        let mut redirect: Option<String> = None;
        let mut last_progress = Instant::now();
        let mut last_hashes = 0u64;
        let mut progress_tick = |c: &Client<'_>| {
            if last_progress.elapsed() >= Duration::from_secs(1) {
                let interval = last_progress.elapsed().as_secs_f64();
                last_progress = Instant::now();
                let secs = t0.elapsed().as_secs_f64().max(1e-9);
                let hashes: u64 = c.shared.hashes.iter().map(|h| h.load(Ordering::Relaxed)).sum();
                let rate = hashes.saturating_sub(last_hashes) as f64 / interval;
                last_hashes = hashes;
                ::metrics::gauge!(crate::metrics::MINE_HASH_RATE).set(rate);
                if let Some(p) = progress {
                    p(&PoolProgress {
                        seconds: secs,
                        hashes_per_second: hashes as f64 / secs,
                        accepted: c.report.accepted,
                        rejected: c.report.rejected,
                        stale: c.report.stale,
                        implied_hashes_per_second: c.report.accepted_difficulty * 4_294_967_296.0 / secs,
                        difficulty: c.report.difficulty,
                    });
                }
            }
        };
        while !self.finished(t0) {
            let address = redirect.take().unwrap_or_else(|| self.opts.pools[pool].address.clone());
            conn += 1;
            let stream = match dial(&address) {
                Ok(s) => s,
                Err(e) => {
                    self.report.failed_dials += 1;
                    self.api.pools[pool].dead = true;
                    failures += 1;
                    warn!(pool = %address, "cannot connect: {e}");
                    if failures >= self.opts.attempts_per_pool && self.opts.pools.len() > 1 {
                        pool = (pool + 1) % self.opts.pools.len();
                        failures = 0;
                        backoff = self.opts.backoff_initial;
                        info!(pool = %self.opts.pools[pool].address, "failing over to the next pool");
                        continue;
                    }
                    self.wait(backoff, t0, found, &mut progress_tick);
                    backoff = (backoff * 2).min(BACKOFF_CAP);
                    continue;
                }
            };
            info!(pool = %address, "connected");
            self.report.pool = Some(address.clone());
            let reader = match stream.try_clone() {
                Ok(r) => r,
                Err(e) => {
                    warn!(pool = %address, "cannot clone the socket: {e}");
                    continue;
                }
            };
            let txc = tx.clone();
            std::thread::spawn(move || reader_loop(reader, conn, txc));
            let mut s = Session {
                conn,
                pool,
                address: address.clone(),
                stream,
                next_id: 1,
                pending: HashMap::new(),
                extranonce1: None,
                extranonce2_size: 4,
                difficulty: 1.0,
                authorized: false,
                got_job: false,
                jobs: HashMap::new(),
                submitted: HashMap::new(),
                redirect: None,
                sent_session: None,
                block_pending: None,
                held: Vec::new(),
            };
            let end = loop {
                // Sessions run in slices so the progress line keeps coming.
                match self.session_slice(&mut s, &rx, found, t0) {
                    Some(end) => break end,
                    None => {
                        progress_tick(self);
                        self.publish();
                    }
                }
            };
            // Every job of this connection is dropped with it.
            self.shared.set_work(None, true);
            self.api.pools[s.pool].active = false;
            self.api.pools[s.pool].dead = !s.got_job;
            self.publish();
            if matches!(end, End::Stop) {
                self.drain(&mut s, &rx);
            }
            let unanswered = s.pending.values().filter(|p| matches!(p, Pending::Submit { .. })).count() as u64;
            self.report.unanswered += unanswered;
            for f in s.held.drain(..) {
                self.count_unsent(f.device);
            }
            let _ = s.stream.shutdown(std::net::Shutdown::Both);
            if matches!(end, End::Stop) {
                break;
            }
            if s.got_job {
                failures = 0;
                backoff = self.opts.backoff_initial;
            } else {
                failures += 1;
            }
            if let Some((to, wait)) = s.redirect.take() {
                redirect = Some(to);
                self.wait(wait, t0, found, &mut progress_tick);
                continue;
            }
            if failures >= self.opts.attempts_per_pool && self.opts.pools.len() > 1 {
                pool = (pool + 1) % self.opts.pools.len();
                failures = 0;
                backoff = self.opts.backoff_initial;
                info!(pool = %self.opts.pools[pool].address, "failing over to the next pool");
                continue;
            }
            self.wait(backoff, t0, found, &mut progress_tick);
            backoff = (backoff * 2).min(BACKOFF_CAP);
        }
    }

    /// Runs the session for up to a second; `Some` when it ended.
    fn session_slice(
        &mut self,
        s: &mut Session,
        rx: &Receiver<(u64, Event)>,
        found: &Receiver<Found>,
        t0: Instant,
    ) -> Option<End> {
        if !s.pending.is_empty() || s.next_id > 1 {
            // Continuing an open session.
            let until = Instant::now() + Duration::from_secs(1);
            while Instant::now() < until {
                if self.finished(t0) {
                    return Some(End::Stop);
                }
                match self.step(s, rx, found) {
                    Ok(()) => {}
                    Err(()) => return Some(End::Lost),
                }
                if s.redirect.is_some() {
                    return Some(End::Lost);
                }
            }
            None
        } else {
            self.open(s, t0)
        }
    }

    /// Sends the opening requests.
    fn open(&mut self, s: &mut Session, _t0: Instant) -> Option<End> {
        let agent = user_agent();
        s.sent_session = self.session_ids.get(&s.pool).cloned();
        let subscribe_params = match &s.sent_session {
            Some(sid) => json!([agent, sid]),
            None => json!([agent]),
        };
        let configure = json!([["version-rolling"], {
            "version-rolling.mask": u32_to_hex(VERSION_MASK_REQUEST),
            "version-rolling.min-bit-count": 2
        }]);
        self.shared.mask.store(0, Ordering::Relaxed);
        self.report.version_mask = u32_to_hex(0);
        match s
            .send("mining.configure", configure, Pending::Configure)
            .and_then(|_| s.send("mining.subscribe", subscribe_params, Pending::Subscribe))
        {
            Ok(_) => None,
            Err(e) => {
                warn!(pool = %s.address, "sending failed: {e}; reconnecting");
                Some(End::Lost)
            }
        }
    }

    /// Handles one event or solution (or waits up to 50 ms for one).
    fn step(&mut self, s: &mut Session, rx: &Receiver<(u64, Event)>, found: &Receiver<Found>) -> Result<(), ()> {
        crossbeam_channel::select! {
            recv(rx) -> ev => match ev {
                Ok((conn, _)) if conn != s.conn => Ok(()),
                Ok((_, Event::Closed(why))) => {
                    warn!(pool = %s.address, "{why}; reconnecting");
                    Err(())
                }
                Ok((_, Event::Line(m, at))) => {
                    let mut resume = s.sent_session.clone();
                    self.message(s, m, at, &mut resume).map_err(|e| {
                        warn!(pool = %s.address, "{e}; reconnecting");
                    })
                }
                Err(_) => Err(()),
            },
            recv(found) -> f => match f {
                Ok(f) => self.share(s, f).map_err(|e| warn!(pool = %s.address, "sending a share failed: {e}; reconnecting")),
                Err(_) => Err(()),
            },
            default(Duration::from_millis(50)) => Ok(()),
        }
    }

    /// Counts a solution that is stale and not sent.
    fn count_unsent(&mut self, device: usize) {
        self.report.stale_unsent += 1;
        self.report.stale += 1;
        self.devices[device].stale += 1;
        ::metrics::counter!(crate::metrics::MINE_SHARES_STALE).increment(1);
    }

    /// At the end of a run: waits up to [`DRAIN_TIMEOUT`] for the answers to shares already
    /// submitted, so the accounting matches the pool's.
    fn drain(&mut self, s: &mut Session, rx: &Receiver<(u64, Event)>) {
        let until = Instant::now() + DRAIN_TIMEOUT;
        // Shares held behind a block stay unsent: the jobs that would replace their tip are not
        // read any more.
        for f in s.held.drain(..) {
            self.count_unsent(f.device);
        }
        let submits = |s: &Session| s.pending.values().filter(|p| matches!(p, Pending::Submit { .. })).count();
        while submits(s) > 0 && Instant::now() < until {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok((conn, Event::Line(m @ Message::Response { .. }, at))) if conn == s.conn => {
                    let mut resume = None;
                    if self.message(s, m, at, &mut resume).is_err() {
                        return;
                    }
                }
                Ok((conn, Event::Closed(_))) if conn == s.conn => return,
                _ => {}
            }
        }
    }

    /// Waits `d` (or until the run ends), counting solutions that arrive meanwhile as stale.
    fn wait(&mut self, d: Duration, t0: Instant, found: &Receiver<Found>, tick: &mut dyn FnMut(&Client<'_>)) {
        let until = Instant::now() + d;
        while Instant::now() < until && !self.finished(t0) {
            if let Ok(f) = found.recv_timeout(Duration::from_millis(50)) {
                self.count_unsent(f.device);
            }
            tick(self);
            self.publish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_never_repeat_a_header_and_keep_to_the_mask() {
        for mask in [0u32, 0x1fff_e000, 0x1ffe_0000, 0x0000_6000] {
            let mut seen = HashSet::new();
            for unit in 0..(1u64 << 12) {
                let (en2, bits) = unit_parts(unit, mask);
                assert_eq!(bits & !mask, 0, "mask {mask:08x} unit {unit}");
                assert!(seen.insert((en2, bits)), "mask {mask:08x}: unit {unit} repeats");
            }
        }
        // Without a mask the version never changes and extranonce2 counts the units.
        assert_eq!(unit_parts(7, 0), (7, 0));
        // Two mask bits: four versions per extranonce2.
        assert_eq!(unit_parts(5, 0x0000_6000), (1, 0x2000));
        assert_eq!(extranonce2_bytes(0x0102, 4), [2, 1, 0, 0]);
        assert_eq!(extranonce2_bytes(0x0102, 2), [2, 1]);
    }

    #[test]
    fn pool_urls() {
        assert_eq!(parse_pool_url("stratum+tcp://pool.example:3333").unwrap(), "pool.example:3333");
        assert_eq!(parse_pool_url("127.0.0.1:3333/").unwrap(), "127.0.0.1:3333");
        for bad in
            ["stratum+ssl://pool.example:443", "stratum+tcp://pool.example", "http://x:1", "stratum+tcp://:3333", "x:0"]
        {
            assert!(parse_pool_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn segments_are_whole_lanes_and_bounded() {
        assert_eq!(segment_size(0.0), 1 << 16);
        assert_eq!(segment_size(1e12), 1 << 30);
        assert_eq!(segment_size(10e6) % 64, 0);
    }
}
