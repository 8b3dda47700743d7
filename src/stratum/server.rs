//! The Stratum v1 job server (issue 14, section 3): miners connect over TCP, take jobs cut from a
//! [`JobSource`]'s templates, and submit shares; a share that meets the network target becomes a
//! block ([`JobSource::submit_block`]).
//!
//! The protocol as the field uses it (docs/PROTOCOL.md, "Stratum server"):
//! - `mining.configure` (BIP310): `version-rolling` is granted with mask = server mask AND the
//!   miner's mask; other extensions are answered `false`.
//! - `mining.subscribe` `[agent, session?]` → `[[["mining.set_difficulty", S], ["mining.notify",
//!   S]], extranonce1 hex, extranonce2_size]`: each connection gets its own 4-byte extranonce1 and
//!   the session id S (extranonce1's hex). A miner that sends S back on a new connection, while no
//!   other connection holds it, resumes with the same extranonce1.
//! - `mining.authorize` `[worker, password]`: any worker name is accepted (per-worker statistics).
//! - `mining.extranonce.subscribe`: accepted (the extranonce of a connection never changes).
//! - Server to miner: `mining.set_difficulty` `[d]` (variable difficulty aiming at one share every
//!   [`ServerConfig::share_interval`]), `mining.notify` (the nine standard params, `clean_jobs`
//!   true when the tip moved).
//! - `mining.submit` `[worker, job_id, extranonce2, ntime, nonce, version_bits?]`: checked in this
//!   order, errors as `[code, message, null]`: not subscribed (25), unauthorized worker (24),
//!   malformed params (20), unknown or stale job (21), extranonce2 size (20), ntime outside
//!   `[mintime, curtime + 7200]` (20), version bits outside the mask (20), hash above the share
//!   target (23), duplicate of an accepted share (22).
//!
//! Malformed lines (not JSON, not a request), lines over [`message::MAX_LINE`] and non-UTF-8 lines
//! close the connection with a log line; nothing a client sends can panic the server.
//!
//! Design: one thread per connection (256 KiB stacks reserved, a few pages used; a 4 KiB read
//! buffer), one job thread polling the source ([`JobSource::wait_for_change`]) that
//! fans a new job out to every subscribed connection. Connections over
//! [`ServerConfig::max_clients`] are refused.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

use super::job::{JobSource, Template};
use super::message::{
    self, Message, StratumError, ERR_DUPLICATE, ERR_JOB_NOT_FOUND, ERR_LOW_DIFFICULTY, ERR_NOT_SUBSCRIBED, ERR_OTHER,
    ERR_UNAUTHORIZED,
};
use super::work::{self, Notify};

/// Bytes of extranonce1 (per connection).
pub const EXTRANONCE1_SIZE: usize = 4;
/// Seconds a share's ntime may be ahead of the template's time (Bitcoin's two-hour rule).
pub const MAX_NTIME_AHEAD: u32 = 7200;
/// Jobs kept for late shares (older ones answer "job not found").
const JOBS_KEPT: usize = 8;
/// A connection thread's stack: room for serde_json's 128 levels of nesting (only the pages
/// touched are resident; an idle connection touches a few).
const CONN_STACK: usize = 256 * 1024;
/// Workers one connection may authorize.
const MAX_WORKERS_PER_CONN: usize = 64;
/// Workers the statistics keep (a flood of names is refused, not stored).
const MAX_WORKERS: usize = 100_000;

/// How the server runs.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Bytes of extranonce2 the miners roll (8 by default; extranonce1 is 4).
    pub extranonce2_size: usize,
    /// The difficulty a new connection starts at (`None`: the network difficulty of the first
    /// template, at most 1).
    pub initial_difficulty: Option<f64>,
    /// The lowest difficulty variable difficulty goes to.
    pub min_difficulty: f64,
    /// The share interval variable difficulty aims at, per connection.
    pub share_interval: Duration,
    /// Variable difficulty retargets a connection at most this often.
    pub retarget_interval: Duration,
    /// BIP310 version bits the server lets miners roll (BIP320's `1fffe000`).
    pub version_mask: u32,
    /// Connections held at most; more are closed at accept.
    pub max_clients: usize,
    /// How long the job thread waits for a template change before asking again.
    pub poll: Duration,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            extranonce2_size: 8,
            initial_difficulty: None,
            min_difficulty: 1.0 / 4_294_967_296.0,
            share_interval: Duration::from_secs(5),
            retarget_interval: Duration::from_secs(20),
            version_mask: 0x1fff_e000,
            max_clients: 10_000,
            poll: Duration::from_secs(1),
        }
    }
}

/// One worker's statistics (workers are named by `mining.authorize`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct WorkerStats {
    /// Shares accepted.
    pub accepted: u64,
    /// Sum of the difficulties of accepted shares.
    pub accepted_difficulty: f64,
    /// Shares rejected, by reason (`stale`, `job not found`, `duplicate`, `low difficulty`,
    /// `unauthorized`, `not subscribed`, `ntime`, `version bits`, `extranonce2 size`, `malformed`).
    pub rejected: BTreeMap<String, u64>,
    /// Shares for a job made stale by a new tip (also counted under `rejected.stale`).
    pub stale: u64,
    /// Blocks found (shares that met the network target and the source accepted).
    pub blocks: u64,
    /// Blocks the source refused.
    pub blocks_refused: u64,
    /// Hashes per second implied by accepted shares: accepted_difficulty x 2^32 / seconds since
    /// the worker's first share.
    pub hashrate: f64,
    /// Unix seconds of the last accepted share (0: none).
    pub last_share: u64,
    #[serde(skip)]
    first_share: Option<Instant>,
}

/// The server's statistics ([`Server::stats`], the node's `getstratuminfo`).
#[derive(Clone, Debug, Serialize)]
pub struct ServerStats {
    /// The listening address.
    pub address: String,
    /// The template source.
    pub source: String,
    /// Connections now open.
    pub clients: usize,
    /// Connections that subscribed.
    pub subscribed: usize,
    /// The current job's id and height (null before the first template).
    pub job: Option<String>,
    /// Height of the current job's block.
    pub height: Option<u32>,
    /// Jobs sent since start.
    pub jobs: u64,
    /// Blocks found since start.
    pub blocks: u64,
    /// Milliseconds the last job took to reach every subscribed connection.
    pub last_fanout_ms: f64,
    /// Per worker.
    pub workers: BTreeMap<String, WorkerStats>,
}

impl ServerStats {
    /// The workers' hash rates summed (hashes per second, from accepted share difficulty).
    pub fn hashrate(&self) -> f64 {
        self.workers.values().fold(0.0, |acc, w| acc + w.hashrate)
    }

    /// Keeps the `n` workers with the most recent accepted shares (ties by name) and returns how
    /// many there were: a page or snapshot shows a bounded list however many names clients made up.
    pub fn keep_workers(&mut self, n: usize) -> usize {
        let total = self.workers.len();
        if total > n {
            let mut by_recent: Vec<(u64, String)> =
                self.workers.iter().map(|(name, w)| (w.last_share, name.clone())).collect();
            by_recent.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            let keep: std::collections::HashSet<String> = by_recent.into_iter().take(n).map(|(_, name)| name).collect();
            self.workers.retain(|name, _| keep.contains(name));
        }
        total
    }

    /// The `n` fastest workers as the dashboard's samples carry them (`crate::dashboard`):
    /// `{name: {"hashrate": H/s, "accepted": shares, "accepted_difficulty": sum}}`.
    pub fn sample_workers(&self, n: usize) -> serde_json::Map<String, serde_json::Value> {
        let mut workers: Vec<(&String, &WorkerStats)> = self.workers.iter().collect();
        workers.sort_by(|a, b| b.1.hashrate.total_cmp(&a.1.hashrate));
        workers
            .into_iter()
            .take(n)
            .map(|(name, w)| {
                let v = serde_json::json!({
                    "hashrate": w.hashrate,
                    "accepted": w.accepted,
                    "accepted_difficulty": w.accepted_difficulty,
                });
                (name.clone(), v)
            })
            .collect()
    }
}

/// What makes two shares the same header: (extranonce1, extranonce2, ntime, nonce, version bits).
type ShareKey = (u32, Vec<u8>, u32, u32, u32);

/// A job as sent: the template and the notify params.
struct Job {
    template: Template,
    notify: Notify,
    /// The job's place in sending order (stale = from before the latest clean job).
    seq: u64,
    /// Shares seen: (extranonce1, extranonce2, ntime, nonce, version bits).
    seen: Mutex<HashSet<ShareKey>>,
}

#[derive(Default)]
struct Jobs {
    list: VecDeque<Arc<Job>>,
    /// The seq of the latest job with clean_jobs set.
    clean_seq: u64,
    next_seq: u64,
}

/// One connection's state.
struct Conn {
    peer: SocketAddr,
    extranonce1: u32,
    subscribed: bool,
    workers: HashSet<String>,
    mask: u32,
    difficulty: f64,
    /// The difficulty before the last change and until when it is still honoured (a miner
    /// applies a new difficulty from its next job).
    previous: Option<(f64, Instant)>,
    window_start: Instant,
    window_shares: u64,
}

struct Client {
    writer: Mutex<TcpStream>,
    state: Mutex<Conn>,
}

struct Shared {
    cfg: ServerConfig,
    source: Arc<dyn JobSource>,
    address: SocketAddr,
    jobs: Mutex<Jobs>,
    clients: Mutex<HashMap<u64, Arc<Client>>>,
    /// extranonce1 values in use by open connections (sessions that may not be resumed now).
    live: Mutex<HashSet<u32>>,
    /// extranonce1 values ever handed out (sessions that may be resumed).
    issued: Mutex<HashSet<u32>>,
    workers: Mutex<BTreeMap<String, WorkerStats>>,
    next_conn: AtomicU64,
    next_extranonce1: AtomicU32,
    jobs_sent: AtomicU64,
    blocks: AtomicU64,
    last_fanout_us: AtomicU64,
    network_difficulty: Mutex<f64>,
    stop: AtomicBool,
}

/// A running job server; stops when dropped.
pub struct Server {
    shared: Arc<Shared>,
}

/// Why a share was refused: the Stratum error and the statistics key.
struct Reject {
    code: i64,
    key: &'static str,
    message: String,
}

fn reject(code: i64, key: &'static str, message: impl Into<String>) -> Reject {
    Reject { code, key, message: message.into() }
}

impl Server {
    /// Binds `addr` and starts the accept and job threads.
    ///
    /// # Errors
    /// The address cannot be bound, or the source gives no first template (its reason).
    pub fn start(addr: SocketAddr, source: Arc<dyn JobSource>, cfg: ServerConfig) -> Result<Server, String> {
        let listener = TcpListener::bind(addr).map_err(|e| format!("stratum: cannot listen on {addr}: {e}"))?;
        let address = listener.local_addr().map_err(|e| format!("stratum: {e}"))?;
        let shared = Arc::new(Shared {
            cfg,
            source,
            address,
            jobs: Mutex::new(Jobs::default()),
            clients: Mutex::new(HashMap::new()),
            live: Mutex::new(HashSet::new()),
            issued: Mutex::new(HashSet::new()),
            workers: Mutex::new(BTreeMap::new()),
            next_conn: AtomicU64::new(1),
            next_extranonce1: AtomicU32::new(rand_seed()),
            jobs_sent: AtomicU64::new(0),
            blocks: AtomicU64::new(0),
            last_fanout_us: AtomicU64::new(0),
            network_difficulty: Mutex::new(1.0),
            stop: AtomicBool::new(false),
        });
        // The source may have no template yet (a node builds its first on its first loop): the
        // job thread keeps asking.
        if let Err(e) = shared.refresh(true) {
            tracing::info!("stratum: no template yet from {}: {e}", shared.source.name());
        }
        let s = shared.clone();
        std::thread::Builder::new()
            .name("stratum-jobs".into())
            .spawn(move || s.job_loop())
            .map_err(|e| format!("stratum: {e}"))?;
        let s = shared.clone();
        std::thread::Builder::new()
            .name("stratum-accept".into())
            .spawn(move || s.accept_loop(listener))
            .map_err(|e| format!("stratum: {e}"))?;
        tracing::info!(address = %address, source = %shared.source.name(), "stratum server listening");
        Ok(Server { shared })
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.shared.address
    }

    /// Connections, jobs, blocks and per-worker statistics now.
    pub fn stats(&self) -> ServerStats {
        self.shared.stats()
    }

    /// Asks the source for a template now and sends a job if it changed (the node calls this
    /// when its tip moves, so miners need not wait for the poll).
    pub fn poke(&self) {
        if let Err(e) = self.shared.refresh(false) {
            tracing::warn!("stratum: no template: {e}");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.shared.address, Duration::from_millis(200));
        for c in self.shared.clients.lock().unwrap().values() {
            let _ = c.writer.lock().unwrap().shutdown(std::net::Shutdown::Both);
        }
    }
}

fn rand_seed() -> u32 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    (t.as_nanos() as u32).wrapping_mul(0x9e37_79b9) ^ std::process::id()
}

fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Shared {
    fn extranonce_size(&self) -> usize {
        EXTRANONCE1_SIZE + self.cfg.extranonce2_size
    }

    /// Takes the source's template; a new one becomes a job sent to every subscribed connection.
    fn refresh(&self, first: bool) -> Result<(), String> {
        let t = self.source.template(self.extranonce_size())?;
        let (job, clean) = {
            let mut jobs = self.jobs.lock().unwrap();
            if jobs.list.back().is_some_and(|j| j.template.id == t.id) {
                return Ok(());
            }
            let clean = jobs.list.back().is_none_or(|j| j.template.prev_hash != t.prev_hash);
            jobs.next_seq += 1;
            let seq = jobs.next_seq;
            if clean {
                jobs.clean_seq = seq;
            }
            let notify = Notify {
                job_id: format!("{seq:x}"),
                prev_hash: t.prev_hash,
                coinb1: t.coinb1.clone(),
                coinb2: t.coinb2.clone(),
                merkle_branch: t.merkle_branch.clone(),
                version: t.version as u32,
                bits: t.bits,
                time: t.curtime,
                clean_jobs: clean,
            };
            if let Ok(target) = t.bits.to_target() {
                *self.network_difficulty.lock().unwrap() = target.difficulty();
            }
            let job = Arc::new(Job { template: t, notify, seq, seen: Mutex::new(HashSet::new()) });
            jobs.list.push_back(job.clone());
            while jobs.list.len() > JOBS_KEPT {
                jobs.list.pop_front();
            }
            (job, clean)
        };
        self.jobs_sent.fetch_add(1, Ordering::Relaxed);
        if !first {
            self.fan_out(&job);
        }
        tracing::info!(
            job = %job.notify.job_id,
            height = job.template.height,
            txs = job.template.tx_count,
            clean_jobs = clean,
            "stratum: new job"
        );
        Ok(())
    }

    /// Sends `job` to every subscribed connection; records how long the last write took.
    fn fan_out(&self, job: &Job) {
        let start = Instant::now();
        let line = Message::notification("mining.notify", job.notify.to_params()).to_line();
        let clients: Vec<Arc<Client>> = self.clients.lock().unwrap().values().cloned().collect();
        for c in clients {
            if !c.state.lock().unwrap().subscribed {
                continue;
            }
            let _ = c.writer.lock().unwrap().write_all(line.as_bytes());
        }
        self.last_fanout_us.store(start.elapsed().as_micros() as u64, Ordering::Relaxed);
    }

    fn job_loop(self: Arc<Self>) {
        while !self.stop.load(Ordering::SeqCst) {
            let current = self.jobs.lock().unwrap().list.back().map(|j| j.template.clone());
            match current {
                Some(t) => {
                    self.source.wait_for_change(&t, self.cfg.poll);
                }
                None => std::thread::sleep(self.cfg.poll),
            }
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            if let Err(e) = self.refresh(false) {
                tracing::warn!("stratum: no template from {}: {e}", self.source.name());
                std::thread::sleep(self.cfg.poll);
            }
            self.retarget_idle();
        }
    }

    fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        // Connections wait in the backlog until there is a job: a miner served before the first
        // template would get no job and a difficulty not fitted to the network's.
        while self.jobs.lock().unwrap().list.is_empty() && !self.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
        for stream in listener.incoming() {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let stream = match stream {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("stratum: accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            let peer = match stream.peer_addr() {
                Ok(p) => p,
                Err(_) => continue,
            };
            if self.clients.lock().unwrap().len() >= self.cfg.max_clients {
                tracing::warn!(%peer, max = self.cfg.max_clients, "stratum: connection refused: client limit reached");
                continue;
            }
            let s = self.clone();
            let spawned = std::thread::Builder::new()
                .name("stratum-conn".into())
                .stack_size(CONN_STACK)
                .spawn(move || s.serve(stream, peer));
            if let Err(e) = spawned {
                tracing::warn!(%peer, "stratum: connection dropped, no thread: {e}");
            }
        }
    }

    fn serve(self: Arc<Self>, stream: TcpStream, peer: SocketAddr) {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let Ok(writer) = stream.try_clone() else { return };
        let _ = writer.set_write_timeout(Some(Duration::from_secs(5)));
        let _ = stream.set_nodelay(true);
        let difficulty = self
            .cfg
            .initial_difficulty
            .unwrap_or_else(|| self.network_difficulty.lock().unwrap().min(1.0))
            .max(self.cfg.min_difficulty);
        let client = Arc::new(Client {
            writer: Mutex::new(writer),
            state: Mutex::new(Conn {
                peer,
                extranonce1: 0,
                subscribed: false,
                workers: HashSet::new(),
                mask: 0,
                difficulty,
                previous: None,
                window_start: Instant::now(),
                window_shares: 0,
            }),
        });
        {
            let mut clients = self.clients.lock().unwrap();
            clients.insert(id, client.clone());
            ::metrics::gauge!(crate::metrics::STRATUM_CLIENTS).set(clients.len() as f64);
        }
        tracing::debug!(%peer, "stratum: connected");
        let mut reader = BufReader::with_capacity(4096, stream);
        let mut line = String::new();
        let why = loop {
            match message::read_line(&mut reader, &mut line, message::MAX_LINE) {
                Ok(false) => break "closed by the client".to_string(),
                Ok(true) => {}
                Err(e) => break format!("{e}"),
            }
            if line.trim().is_empty() {
                continue;
            }
            let msg = match Message::parse(&line) {
                Ok(m) => m,
                Err(e) => break format!("malformed line: {e}"),
            };
            let Message::Request { id: rid, method, params } = msg else { continue };
            let out = self.handle(&client, &method, &params, rid);
            let mut w = client.writer.lock().unwrap();
            if out.iter().try_for_each(|m| w.write_all(m.to_line().as_bytes())).is_err() {
                break "write failed".to_string();
            }
        };
        {
            let mut clients = self.clients.lock().unwrap();
            clients.remove(&id);
            ::metrics::gauge!(crate::metrics::STRATUM_CLIENTS).set(clients.len() as f64);
        }
        let en1 = client.state.lock().unwrap().extranonce1;
        self.live.lock().unwrap().remove(&en1);
        let _ = client.writer.lock().unwrap().shutdown(std::net::Shutdown::Both);
        tracing::info!(%peer, "stratum: connection closed: {why}");
    }

    /// Answers one request; returns the lines to send (the response first).
    fn handle(&self, client: &Client, method: &str, params: &Value, id: Value) -> Vec<Message> {
        let p = params.as_array().map(Vec::as_slice).unwrap_or(&[]);
        match method {
            "mining.configure" => vec![Message::ok(id, self.configure(client, p))],
            "mining.subscribe" => self.subscribe(client, p, id),
            "mining.authorize" => {
                let Some(worker) = p.first().and_then(Value::as_str).filter(|w| !w.is_empty() && w.len() <= 256) else {
                    return vec![Message::err(id, StratumError::new(ERR_OTHER, "authorize: worker name missing"))];
                };
                {
                    let mut st = client.state.lock().unwrap();
                    if !st.workers.contains(worker) && st.workers.len() >= MAX_WORKERS_PER_CONN {
                        let m = format!("authorize: at most {MAX_WORKERS_PER_CONN} workers per connection");
                        return vec![Message::err(id, StratumError::new(ERR_OTHER, m))];
                    }
                    let mut all = self.workers.lock().unwrap();
                    if !all.contains_key(worker) && all.len() >= MAX_WORKERS {
                        let m = format!("authorize: the server keeps at most {MAX_WORKERS} workers");
                        return vec![Message::err(id, StratumError::new(ERR_OTHER, m))];
                    }
                    all.entry(worker.to_string()).or_default();
                    st.workers.insert(worker.to_string());
                }
                tracing::info!(worker, peer = %client.state.lock().unwrap().peer, "stratum: authorized");
                vec![Message::ok(id, json!(true))]
            }
            "mining.extranonce.subscribe" => vec![Message::ok(id, json!(true))],
            "mining.submit" => {
                let worker = p.first().and_then(Value::as_str).unwrap_or("").to_string();
                match self.submit(client, p) {
                    Ok(retarget) => {
                        let mut out = vec![Message::ok(id, json!(true))];
                        out.extend(retarget);
                        out
                    }
                    Err(r) => {
                        ::metrics::counter!(crate::metrics::STRATUM_SHARES_REJECTED, "reason" => r.key.replace(' ', "_"))
                            .increment(1);
                        if r.key == "stale" {
                            ::metrics::counter!(crate::metrics::STRATUM_SHARES_STALE).increment(1);
                        }
                        let mut w = self.workers.lock().unwrap();
                        if let Some(s) = w.get_mut(&worker) {
                            *s.rejected.entry(r.key.to_string()).or_default() += 1;
                            if r.key == "stale" {
                                s.stale += 1;
                            }
                        }
                        tracing::debug!(worker, code = r.code, "stratum: share rejected: {}", r.message);
                        vec![Message::err(id, StratumError::new(r.code, r.message))]
                    }
                }
            }
            "mining.get_transactions" => vec![Message::ok(id, json!([]))],
            "mining.suggest_difficulty" => {
                if let Some(d) = p.first().and_then(Value::as_f64).filter(|d| d.is_finite() && *d > 0.0) {
                    client.state.lock().unwrap().difficulty = d.max(self.cfg.min_difficulty);
                }
                vec![Message::ok(id, json!(true))]
            }
            other => vec![Message::err(id, StratumError::new(ERR_OTHER, format!("unknown method {other}")))],
        }
    }

    /// BIP310 `mining.configure`: `version-rolling` granted with the masks' AND.
    fn configure(&self, client: &Client, p: &[Value]) -> Value {
        let exts: Vec<&str> = p
            .first()
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let opts = p.get(1).cloned().unwrap_or(Value::Null);
        let mut out = serde_json::Map::new();
        for e in exts {
            if e == "version-rolling" {
                let asked = opts
                    .get("version-rolling.mask")
                    .and_then(Value::as_str)
                    .and_then(|m| u32::from_str_radix(m, 16).ok())
                    .unwrap_or(u32::MAX);
                let mask = asked & self.cfg.version_mask;
                client.state.lock().unwrap().mask = mask;
                out.insert("version-rolling".into(), json!(true));
                out.insert("version-rolling.mask".into(), json!(format!("{mask:08x}")));
            } else {
                out.insert(e.to_string(), json!(false));
            }
        }
        Value::Object(out)
    }

    fn subscribe(&self, client: &Client, p: &[Value], id: Value) -> Vec<Message> {
        let resume = p
            .get(1)
            .and_then(Value::as_str)
            .filter(|s| s.len() == 8)
            .and_then(|s| u32::from_str_radix(s, 16).ok())
            .filter(|en1| self.issued.lock().unwrap().contains(en1) && self.live.lock().unwrap().insert(*en1));
        let mut st = client.state.lock().unwrap();
        if st.subscribed {
            return vec![Message::err(id, StratumError::new(ERR_OTHER, "already subscribed"))];
        }
        let en1 = match resume {
            Some(e) => e,
            None => loop {
                let e = self.next_extranonce1.fetch_add(1, Ordering::Relaxed);
                if self.issued.lock().unwrap().insert(e) {
                    self.live.lock().unwrap().insert(e);
                    break e;
                }
            },
        };
        st.extranonce1 = en1;
        st.subscribed = true;
        let sid = format!("{en1:08x}");
        let difficulty = st.difficulty;
        drop(st);
        let mut out = vec![Message::ok(
            id,
            json!([[["mining.set_difficulty", sid], ["mining.notify", sid]], sid, self.cfg.extranonce2_size]),
        )];
        out.push(Message::notification("mining.set_difficulty", json!([difficulty])));
        if let Some(j) = self.jobs.lock().unwrap().list.back() {
            let mut n = j.notify.clone();
            n.clean_jobs = true;
            out.push(Message::notification("mining.notify", n.to_params()));
        }
        out
    }

    /// Checks one `mining.submit`; Ok with the messages to send after the `true` (a difficulty
    /// change and the job again).
    fn submit(&self, client: &Client, p: &[Value]) -> Result<Vec<Message>, Reject> {
        let (en1, mask, difficulty, previous) = {
            let st = client.state.lock().unwrap();
            if !st.subscribed {
                return Err(reject(ERR_NOT_SUBSCRIBED, "not subscribed", "not subscribed"));
            }
            let worker = p.first().and_then(Value::as_str).unwrap_or("");
            if !st.workers.contains(worker) {
                return Err(reject(ERR_UNAUTHORIZED, "unauthorized", format!("worker {worker:?} is not authorized")));
            }
            (st.extranonce1, st.mask, st.difficulty, st.previous)
        };
        let field = |i: usize, name: &str| {
            p.get(i).and_then(Value::as_str).ok_or_else(|| {
                reject(ERR_OTHER, "malformed", format!("submit: param {i} ({name}) missing or not a string"))
            })
        };
        let job_id = field(1, "job_id")?;
        let en2 = work::bytes_from_hex("extranonce2", field(2, "extranonce2")?, 64)
            .map_err(|e| reject(ERR_OTHER, "malformed", e.to_string()))?;
        let ntime = work::u32_from_hex("ntime", field(3, "ntime")?)
            .map_err(|e| reject(ERR_OTHER, "malformed", e.to_string()))?;
        let nonce = work::u32_from_hex("nonce", field(4, "nonce")?)
            .map_err(|e| reject(ERR_OTHER, "malformed", e.to_string()))?;
        let version_bits = match p.get(5) {
            None | Some(Value::Null) => None,
            Some(_) => Some(
                work::u32_from_hex("version_bits", field(5, "version_bits")?)
                    .map_err(|e| reject(ERR_OTHER, "malformed", e.to_string()))?,
            ),
        };
        let job = {
            let jobs = self.jobs.lock().unwrap();
            let Some(job) = jobs.list.iter().find(|j| j.notify.job_id == job_id).cloned() else {
                return Err(reject(ERR_JOB_NOT_FOUND, "job not found", format!("job {job_id} not found")));
            };
            if job.seq < jobs.clean_seq {
                return Err(reject(ERR_JOB_NOT_FOUND, "stale", format!("job {job_id} is stale (the tip moved)")));
            }
            job
        };
        if en2.len() != self.cfg.extranonce2_size {
            return Err(reject(
                ERR_OTHER,
                "extranonce2 size",
                format!("extranonce2 is {} bytes, must be {}", en2.len(), self.cfg.extranonce2_size),
            ));
        }
        let t = &job.template;
        let latest = t.curtime.saturating_add(MAX_NTIME_AHEAD);
        if ntime < t.mintime || ntime > latest {
            return Err(reject(
                ERR_OTHER,
                "ntime",
                format!("ntime {ntime} is outside [{}, {latest}] (mintime, template time + 7200)", t.mintime),
            ));
        }
        let vb = version_bits.unwrap_or(0);
        if !work::version_bits_within_mask(vb, mask) {
            return Err(reject(
                ERR_OTHER,
                "version bits",
                format!("version bits {vb:08x} outside the negotiated mask {mask:08x}"),
            ));
        }
        let version = work::rolled_version(job.notify.version, vb, mask);
        let en1b = en1.to_be_bytes();
        let header = job.notify.header(&en1b, &en2, ntime, nonce, version);
        let hash = header.block_hash();
        let achieved = work::hash_difficulty(&hash);
        let needed = match previous {
            Some((d, until)) if Instant::now() < until => d.min(difficulty),
            _ => difficulty,
        };
        let share_target = work::share_target(needed).map_err(|e| reject(ERR_OTHER, "malformed", e.to_string()))?;
        if !share_target.is_met_by(&hash) {
            return Err(reject(
                ERR_LOW_DIFFICULTY,
                "low difficulty",
                format!("low difficulty share: {achieved:.4e} < {needed:.4e}"),
            ));
        }
        // Only shares that met the target are remembered: the set grows with work done, not with
        // what a client sends.
        if !job.seen.lock().unwrap().insert((en1, en2.clone(), ntime, nonce, vb)) {
            return Err(reject(ERR_DUPLICATE, "duplicate", "duplicate share"));
        }
        let worker = p[0].as_str().unwrap_or("").to_string();
        let mut block = None;
        if t.bits.to_target().is_ok_and(|target| target.is_met_by(&hash)) {
            let coinbase = job.notify.coinbase(&en1b, &en2);
            let r = self.source.submit_block(t, &header, &coinbase);
            match &r {
                Ok(()) => {
                    self.blocks.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%hash, height = t.height, worker, "stratum: block found and accepted");
                }
                Err(e) => tracing::warn!(%hash, height = t.height, worker, "stratum: block refused by the source: {e}"),
            }
            block = Some(r.is_ok());
            let outcome = if r.is_ok() { "accepted" } else { "rejected" };
            ::metrics::counter!(crate::metrics::STRATUM_BLOCKS, "outcome" => outcome).increment(1);
        }
        ::metrics::counter!(crate::metrics::STRATUM_SHARES_ACCEPTED, "worker" => crate::metrics::worker_label(&worker))
            .increment(1);
        {
            let mut w = self.workers.lock().unwrap();
            let s = w.entry(worker.clone()).or_default();
            s.accepted += 1;
            s.accepted_difficulty += needed;
            s.last_share = now_unix();
            let first = *s.first_share.get_or_insert_with(Instant::now);
            let secs = first.elapsed().as_secs_f64().max(1.0);
            s.hashrate = s.accepted_difficulty * 4_294_967_296.0 / secs;
            match block {
                Some(true) => s.blocks += 1,
                Some(false) => s.blocks_refused += 1,
                None => {}
            }
        }
        if block == Some(true) {
            // The tip moved: a new job now rather than at the next poll.
            let _ = self.refresh(false);
        }
        tracing::debug!(worker, difficulty = needed, achieved, "stratum: share accepted");
        Ok(self.retarget(client, true))
    }

    /// Variable difficulty: once per retarget interval, scale the connection's difficulty by the
    /// observed share rate over the aimed one (at most 4x either way); returns the messages that
    /// announce a change (`mining.set_difficulty`, then the current job again so that the miner
    /// applies it).
    fn retarget(&self, client: &Client, share: bool) -> Vec<Message> {
        let mut st = client.state.lock().unwrap();
        if share {
            st.window_shares += 1;
        }
        let elapsed = st.window_start.elapsed();
        if elapsed < self.cfg.retarget_interval || !st.subscribed {
            return Vec::new();
        }
        let aimed = elapsed.as_secs_f64() / self.cfg.share_interval.as_secs_f64();
        let factor = (st.window_shares.max(1) as f64 / aimed).clamp(0.25, 4.0);
        st.window_start = Instant::now();
        st.window_shares = 0;
        let new = (st.difficulty * factor).max(self.cfg.min_difficulty);
        if (new / st.difficulty - 1.0).abs() < 0.2 {
            return Vec::new();
        }
        st.previous = Some((st.difficulty, Instant::now() + self.cfg.share_interval.max(Duration::from_secs(5))));
        st.difficulty = new;
        tracing::debug!(peer = %st.peer, difficulty = new, "stratum: difficulty retargeted");
        drop(st);
        let mut out = vec![Message::notification("mining.set_difficulty", json!([new]))];
        if let Some(j) = self.jobs.lock().unwrap().list.back() {
            out.push(Message::notification("mining.notify", j.notify.to_params()));
        }
        out
    }

    /// Retargets connections that sent no share for a while (their difficulty may be too high).
    fn retarget_idle(&self) {
        let clients: Vec<Arc<Client>> = self.clients.lock().unwrap().values().cloned().collect();
        for c in clients {
            let due = {
                let st = c.state.lock().unwrap();
                st.subscribed && !st.workers.is_empty() && st.window_start.elapsed() >= self.cfg.retarget_interval * 2
            };
            if due {
                let msgs = self.retarget(&c, false);
                let mut w = c.writer.lock().unwrap();
                for m in msgs {
                    let _ = w.write_all(m.to_line().as_bytes());
                }
            }
        }
    }

    fn stats(&self) -> ServerStats {
        let clients: Vec<Arc<Client>> = self.clients.lock().unwrap().values().cloned().collect();
        let subscribed = clients.iter().filter(|c| c.state.lock().unwrap().subscribed).count();
        let (job, height) = match self.jobs.lock().unwrap().list.back() {
            Some(j) => (Some(j.notify.job_id.clone()), Some(j.template.height)),
            None => (None, None),
        };
        ServerStats {
            address: self.address.to_string(),
            // Shown to clients (the dashboard): a URL's user:password@ left out.
            source: crate::httpd::without_userinfo(&self.source.name()),
            clients: clients.len(),
            subscribed,
            job,
            height,
            jobs: self.jobs_sent.load(Ordering::Relaxed),
            blocks: self.blocks.load(Ordering::Relaxed),
            last_fanout_ms: self.last_fanout_us.load(Ordering::Relaxed) as f64 / 1000.0,
            workers: self.workers.lock().unwrap().clone(),
        }
    }
}
