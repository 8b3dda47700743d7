//! `powkit node`: keeps, extends and replicates the authoritative chain (docs/ARCHITECTURE.md,
//! "Node"; docs/PROTOCOL.md).
//!
//! One chain thread owns everything that decides: the [`Chain`] (block index, fork choice, state,
//! store), the [`Mempool`] and the peer table. Everything else sends it [`Event`]s over one
//! crossbeam channel: two threads per peer connection ([`peer::Conn`]), the listener, short-lived
//! dialers, the JSON-RPC server ([`rpc`]) and the miner ([`miner::Miner`]). Nothing shares the chain
//! state, so no lock guards it.
//!
//! The chain thread's jobs live in one file each, all `impl Node` blocks: `peers` (the peer table:
//! handshake, misbehaviour scores, bans, eviction, dialing; the persisted ban list is `banlist`),
//! `sync` (headers-first sync, block download, tip changes), `relay` (`inv`/`getdata`, transaction
//! relay, orphan transfers, tip announcements), `rpc::methods` (the JSON-RPC method
//! table) and [`miner`] (block templates and jobs). This file keeps the event loop, the message
//! dispatch, the periodic tick and the mempool's persistence.

mod banlist;
pub mod config;
mod dashboard;
pub mod mempool;
pub mod miner;
pub mod peer;
mod peers;
mod relay;
pub mod rpc;
pub mod stratum;
mod sync;

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use serde_json::{json, Value};

use crate::chain::Chain;
use crate::consensus::LedgerParams;
use crate::ledger::block::LedgerBlock;
use crate::ledger::ids::AccountKey;
use crate::ledger::tx::{LedgerTx, Transfer};
use crate::net::message::{InvKind, Message, MAX_HEADERS, MIN_PROTOCOL_VERSION};
use crate::primitives::{BlockHash, Txid};
pub use config::NodeConfig;
use mempool::{Mempool, MempoolError};
use peers::{accept_loop, Peer};
use rpc::RpcError;

/// Blocks requested from one peer at a time.
pub const MAX_BLOCKS_IN_FLIGHT: usize = 16;
/// A requested block not delivered in this time is asked of another peer.
pub const BLOCK_TIMEOUT: Duration = Duration::from_secs(20);
/// Default for how many new headers with no more work than the tip one peer may send before it
/// counts as spam (`--low-work-headers`).
pub const MAX_LOW_WORK_HEADERS: u64 = 2 * MAX_HEADERS;
/// Blocks answered per `getdata` (the rest get `notfound`); honest peers ask for at most 16.
pub const MAX_BLOCKS_PER_GETDATA: usize = 16;
/// Events queued for the chain thread before senders wait.
pub const EVENT_QUEUE: usize = 4096;
/// Handshake deadline: an inbound slot held by a connection that has not finished its handshake
/// is reclaimed after this (an honest handshake takes a few round trips).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Interval between pings (docs/PROTOCOL.md, "Liveness").
pub const PING_INTERVAL: Duration = Duration::from_secs(5);
/// A peer from which no byte arrived for this long, or whose ping is unanswered this long, is
/// disconnected: four ping intervals, so three lost or slow pongs are tolerated, while a
/// connection that died silently in a partition is noticed within 20 s (not 90 s).
pub const PEER_TIMEOUT: Duration = Duration::from_secs(20);
/// A peer that answered `notfound` for a block is asked for it again after this, or as soon as it
/// announces the block.
pub const NOT_FOUND_RETRY: Duration = Duration::from_secs(30);
/// Transfers held because they arrived before what they depend on (their predecessor by nonce, or
/// the block that funds them): at most this many, each at most [`ORPHAN_EXPIRY`].
pub const MAX_ORPHAN_TXS: usize = 1000;
/// How long an orphan transfer is held.
pub const ORPHAN_EXPIRY: Duration = Duration::from_secs(20 * 60);
/// How often a peer that announced (in `version`) more blocks than we have is asked for headers
/// again while nothing else makes progress with it.
pub const HEADERS_RETRY: Duration = Duration::from_secs(10);

/// What the chain thread hears.
pub enum Event {
    /// A TCP connection is open.
    Connected {
        /// The stream.
        stream: TcpStream,
        /// The remote address.
        addr: SocketAddr,
        /// The address dialed (`None`: inbound).
        dialed: Option<String>,
    },
    /// A dial failed.
    DialFailed {
        /// The address.
        addr: String,
        /// Why.
        why: String,
    },
    /// A peer sent a message.
    Message {
        /// Peer id.
        peer: u64,
        /// The message.
        msg: Message,
        /// Its size on the wire (released from the peer's receive budget once handled).
        size: usize,
    },
    /// A connection ended.
    Closed {
        /// Peer id.
        peer: u64,
        /// Why.
        reason: String,
        /// Whether the peer broke the protocol (it is banned).
        misbehaving: bool,
    },
    /// A JSON-RPC call.
    Rpc {
        /// Method.
        method: String,
        /// Params (array or object).
        params: Value,
        /// Where the answer goes.
        reply: Sender<Result<Value, RpcError>>,
    },
    /// A step of the `generate` call (its nonce search runs on the RPC thread).
    Generate(rpc::Generate),
    /// The miner solved a job.
    Mined {
        /// The block.
        block: Box<LedgerBlock>,
        /// The job id.
        job: u64,
    },
    /// The Stratum job server's miners solved a template: accept it (and answer).
    Stratum(Box<stratum::StratumBlock>),
    /// The dashboard asks for its snapshot (`node::dashboard`).
    Dashboard(Sender<Value>),
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// The running node (chain thread state).
struct Node {
    cfg: NodeConfig,
    params: &'static LedgerParams,
    chain: Chain,
    mempool: Mempool,
    peers: HashMap<u64, Peer>,
    next_id: u64,
    events: Sender<Event>,
    banned: banlist::BanList,
    wanted: Vec<String>,
    dialing: HashMap<String, Instant>,
    nonce: u64,
    listen_port: u16,
    miner: Option<miner::Miner>,
    miner_key: Option<AccountKey>,
    job: u64,
    template_due: Option<Instant>,
    block_source: HashMap<BlockHash, u64>,
    rejected_txs: HashSet<Txid>,
    stop: Arc<AtomicBool>,
    blocks_mined: u64,
    fatal: Option<String>,
    persisted: HashSet<Txid>,
    /// Stored transfers that could not be re-admitted yet (a nonce gap, funds that have not
    /// arrived, a full pool) but that the tip does not make invalid: kept in the store, retried
    /// after every tip move, dropped only when the tip makes them invalid (nonce used, bad
    /// signature or chain id).
    held: HashMap<Txid, Transfer>,
    /// Transfers from peers that arrived before what they depend on (signature checked), retried
    /// after each tip move and each accepted transfer of the same sender; bounded by
    /// [`MAX_ORPHAN_TXS`] and [`ORPHAN_EXPIRY`].
    orphans: HashMap<Txid, (Transfer, Instant)>,
    last_progress: Instant,
    /// `--stratum`: the templates the job server takes, and the server.
    stratum: Option<(Arc<stratum::NodeSource>, crate::stratum::server::Server)>,
    /// What `--dashboard` shows that the rest of the node does not keep.
    dashboard: dashboard::DashboardState,
}

/// Runs a node until SIGINT, SIGTERM or the `stop` call. Returns an error line (exit 2) when it
/// cannot start or its store fails.
pub fn run(cfg: NodeConfig) -> Result<(), String> {
    let params = cfg.chain.params();
    let mut chain = crate::chain::Chain::open(&cfg.datadir, params).map_err(|e| e.to_string())?;
    let mut notes = Vec::new();
    let verifier = crate::backend::open_sig_verifier(cfg.sig_backend, None, false, crate::sigs::BATCH, &mut notes)
        .map_err(|e| e.to_string().replace("--backend", "--sig-backend"))?;
    for n in notes {
        tracing::info!("{n}");
    }
    tracing::info!("block signatures verified on {}", verifier.describe());
    chain.set_sig_verifier(verifier);
    let miner_key = match &cfg.miner_key {
        Some(p) => Some(crate::ledger::keys::public(&crate::ledger::keys::load(p)?)),
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| format!("installing the signal handler: {e}"))?;
    }
    // Bounded: a peer flooding messages blocks its own reader thread (and so TCP pushes back)
    // instead of growing memory.
    let (tx, rx) = crossbeam_channel::bounded::<Event>(EVENT_QUEUE);
    let mut listen_addr = None;
    if let Some(addr) = cfg.listen {
        let l = TcpListener::bind(addr).map_err(|e| format!("listening on {addr}: {e}"))?;
        listen_addr = Some(l.local_addr().map_err(|e| e.to_string())?);
        let (events, stop) = (tx.clone(), stop.clone());
        std::thread::Builder::new()
            .name("listen".into())
            .spawn(move || accept_loop(l, events, stop))
            .map_err(|e| e.to_string())?;
    }
    let rpc_active = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // Holds the cookie until the node returns (a clean shutdown removes it).
    let rpc_server = rpc::start(&cfg, tx.clone(), stop.clone(), rpc_active.clone())?;
    let rpc_addr = rpc_server.as_ref().map(|s| s.addr);
    let miner = if cfg.mine { Some(miner::Miner::start(cfg.backend, cfg.threads, tx.clone())?) } else { None };
    let stratum = match cfg.stratum {
        Some(addr) => {
            let source = Arc::new(stratum::NodeSource::new(tx.clone()));
            let server = crate::stratum::server::Server::start(
                addr,
                source.clone(),
                crate::stratum::server::ServerConfig {
                    initial_difficulty: cfg.stratum_difficulty,
                    share_interval: cfg.stratum_share_interval,
                    ..Default::default()
                },
            )?;
            Some((source, server))
        }
        None => None,
    };
    let dashboard_server = match cfg.dashboard {
        Some(addr) => {
            let events = tx.clone();
            let snapshot: crate::dashboard::Snapshot = Arc::new(move || {
                let (reply, answer) = crossbeam_channel::bounded(1);
                events
                    .send_timeout(Event::Dashboard(reply), Duration::from_secs(2))
                    .map_err(|_| "the node's event queue is full or closed".to_string())?;
                answer
                    .recv_timeout(Duration::from_secs(2))
                    .map_err(|_| "the node did not answer within 2 s".to_string())
            });
            Some(crate::dashboard::serve(addr, snapshot)?)
        }
        None => None,
    };
    let info = json!({
        "pid": std::process::id(),
        "chain": params.name,
        "p2p": listen_addr.map(|a| a.to_string()),
        "rpc": rpc_addr.map(|a| a.to_string()),
        "stratum": stratum.as_ref().map(|(_, s)| s.address().to_string()),
        "dashboard": dashboard_server.as_ref().map(|s| s.address().to_string()),
    });
    let info_path = cfg.datadir.join("node.json");
    std::fs::write(&info_path, format!("{info}\n")).map_err(|e| format!("{}: {e}", info_path.display()))?;
    let mut node = Node {
        params,
        mempool: Mempool::new(params.chain_id, cfg.mempool_bytes),
        chain,
        peers: HashMap::new(),
        next_id: 1,
        events: tx,
        banned: banlist::BanList::load(&cfg.datadir, unix_now()),
        wanted: cfg.peers.clone(),
        dialing: HashMap::new(),
        nonce: rand::random(),
        listen_port: listen_addr.map(|a| a.port()).unwrap_or(0),
        miner,
        miner_key,
        job: 0,
        template_due: Some(Instant::now()),
        block_source: HashMap::new(),
        rejected_txs: HashSet::new(),
        stop,
        blocks_mined: 0,
        fatal: None,
        persisted: HashSet::new(),
        held: HashMap::new(),
        orphans: HashMap::new(),
        last_progress: Instant::now(),
        stratum,
        dashboard: dashboard::DashboardState { started: unix_now(), ..Default::default() },
        cfg,
    };
    node.reload_mempool()?;
    // A block stored just before a crash may not have been connected yet.
    match node.chain.activate() {
        Ok(change) => node.after_tip_change(change),
        Err(e) => return Err(format!("store failure: {e}")),
    }
    let root = node.chain.state_root();
    tracing::info!(
        chain = params.name,
        height = node.chain.height(),
        tip = %node.chain.tip(),
        state_root = %root,
        p2p = ?listen_addr,
        rpc = ?rpc_addr,
        dashboard = ?dashboard_server.as_ref().map(|s| format!("http://{}/", s.address())),
        mining = node.miner.is_some(),
        "node started"
    );
    node.run(rx);
    for p in node.peers.values() {
        p.conn.close();
    }
    if let Some(m) = &node.miner {
        m.stop();
    }
    // Let answers already decided (the `stop` call's own) reach their callers.
    let t = Instant::now();
    while rpc_active.load(Ordering::Relaxed) > 0 && t.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(5));
    }
    match node.fatal {
        Some(e) => Err(e),
        None => {
            tracing::info!(height = node.chain.height(), tip = %node.chain.tip(), "node stopped");
            Ok(())
        }
    }
}

impl Node {
    /// Loads the mempool saved in the store (transactions acknowledged before a restart or a
    /// crash), re-checking each against the state at the tip.
    fn reload_mempool(&mut self) -> Result<(), String> {
        let saved = self.chain.store().load_mempool().map_err(|e| e.to_string())?;
        let mut transfers = Vec::with_capacity(saved.len());
        for bytes in &saved {
            if let Ok(LedgerTx::Transfer(t)) = LedgerTx::from_bytes(bytes) {
                let id = LedgerTx::Transfer(t).txid();
                self.persisted.insert(id);
                transfers.push((id, t));
            }
        }
        // Dependency order: a sender's transfers by nonce, so none is refused for a gap that its
        // predecessor, replayed later, would have filled.
        transfers.sort_by_key(|(_, t)| (t.from, t.nonce));
        self.held.extend(transfers);
        let kept = self.readmit_held();
        if !saved.is_empty() {
            tracing::info!(saved = saved.len(), kept, held = self.held.len(), "mempool reloaded");
        }
        self.persist_mempool(true);
        Ok(())
    }

    /// Offers every held transfer to the pool again, senders' nonces in order; returns how many went
    /// in. Those the tip makes invalid are dropped (and leave the store with the next persist);
    /// the rest stay held.
    fn readmit_held(&mut self) -> usize {
        let mut held: Vec<(Txid, Transfer)> = self.held.drain().collect();
        held.sort_by_key(|(_, t)| (t.from, t.nonce));
        let mut kept = 0;
        for (id, t) in held {
            match self.mempool.add(t, &self.chain.follower().state, true) {
                Ok(_) | Err(MempoolError::Duplicate) => kept += 1,
                Err(MempoolError::NonceUsed { .. } | MempoolError::Invalid(_)) => {
                    tracing::info!(txid = %id, "stored transfer dropped: the tip makes it invalid");
                }
                Err(e) => {
                    tracing::debug!(txid = %id, "stored transfer held: {e}");
                    self.held.insert(id, t);
                }
            }
        }
        kept
    }

    /// Makes the stored mempool equal the pool: `durable` when a caller is about to be told its
    /// transaction was accepted.
    fn persist_mempool(&mut self, durable: bool) {
        let now: HashSet<Txid> = self.mempool.txids().into_iter().collect();
        let add: Vec<(Txid, Vec<u8>)> = now
            .difference(&self.persisted)
            .filter_map(|id| self.mempool.get(id).map(|t| (*id, LedgerTx::Transfer(*t).to_bytes())))
            .collect();
        let remove: Vec<Txid> =
            self.persisted.iter().filter(|id| !now.contains(id) && !self.held.contains_key(id)).copied().collect();
        if add.is_empty() && remove.is_empty() {
            return;
        }
        match self.chain.store().update_mempool(&add, &remove, durable) {
            Ok(()) => self.persisted = now.into_iter().chain(self.held.keys().copied()).collect(),
            Err(e) => self.fatal = Some(format!("store failure: {e}")),
        }
    }

    fn run(&mut self, rx: Receiver<Event>) {
        let mut last_tick = Instant::now() - Duration::from_secs(1);
        while !self.stop.load(Ordering::Relaxed) && self.fatal.is_none() {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(ev) => self.handle(ev),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            }
            if last_tick.elapsed() >= Duration::from_millis(250) {
                last_tick = Instant::now();
                self.tick();
            }
        }
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Connected { stream, addr, dialed } => self.connected(stream, addr, dialed),
            Event::DialFailed { addr, why } => {
                tracing::debug!(%addr, "dial failed: {why}");
                self.dialing.insert(addr, Instant::now());
            }
            Event::Message { peer, msg, size } => {
                let pending = self.peers.get(&peer).map(|p| p.conn.pending.clone());
                if pending.is_some() {
                    self.message(peer, msg);
                }
                if let Some(p) = pending {
                    p.fetch_sub(size, Ordering::Relaxed);
                }
            }
            Event::Closed { peer, reason, misbehaving } => {
                if misbehaving {
                    self.punish(peer, &reason);
                } else {
                    self.disconnect(peer, &reason);
                }
            }
            Event::Rpc { method, params, reply } => {
                let r = self.rpc(&method, &params);
                let _ = reply.send(r);
            }
            Event::Generate(step) => self.generate_step(step),
            Event::Dashboard(reply) => {
                let _ = reply.send(self.dashboard_snapshot());
            }
            Event::Mined { block, job } => {
                if job != self.job {
                    return;
                }
                let hash = block.header.block_hash();
                match self.submit(&block, None) {
                    Ok(_) => {
                        self.blocks_mined += 1;
                        ::metrics::counter!(crate::metrics::MINE_BLOCKS_FOUND).increment(1);
                        tracing::info!(%hash, height = self.chain.height(), txs = block.txs.len(), "mined a block");
                        // The next job at once, not at the next tick.
                        self.template_due = None;
                        self.new_job();
                    }
                    Err(e) => {
                        tracing::warn!(%hash, "mined block rejected: {e}");
                        self.template_due = Some(Instant::now());
                    }
                }
            }
            Event::Stratum(b) => {
                let hash = b.block.header.block_hash();
                let r = match self.submit(&b.block, None) {
                    // Valid but not the tip: another block at this height came first (Bitcoin
                    // Core's submitblock answers "inconclusive"); a pool counts it as stale.
                    Ok(_) if self.chain.tip() != hash => {
                        tracing::info!(%hash, "stratum block stored on a side branch: another block came first");
                        Err("inconclusive: valid, but another block at this height came first".to_string())
                    }
                    Ok(_) => {
                        self.blocks_mined += 1;
                        tracing::info!(%hash, height = self.chain.height(), txs = b.block.txs.len(), "stratum block accepted");
                        Ok(())
                    }
                    Err(e) => {
                        tracing::warn!(%hash, "stratum block rejected: {e}");
                        Err(e.to_string())
                    }
                };
                if r.is_ok() {
                    // The tip moved: the next template is published before the verdict goes back,
                    // so the job server's refresh right after an accepted block finds it (not at
                    // the next tick, a tenth of a second later, with every miner still hashing
                    // the old tip).
                    self.template_due = None;
                    self.new_job();
                } else {
                    self.template_due = Some(Instant::now());
                }
                let _ = b.reply.send(r);
            }
        }
    }

    fn message(&mut self, id: u64, msg: Message) {
        let p = self.peers.get_mut(&id).expect("checked");
        match (&msg, p.ready()) {
            (Message::Version(v), _) => {
                if p.version.is_some() {
                    // Ambiguous (a confused implementation more than an attack): ignored, scored.
                    return self.misbehaving(id, 10, "a second version message");
                }
                if v.chain_id != self.params.chain_id || v.genesis != self.params.genesis.header.block_hash() {
                    return self
                        .disconnect(id, &format!("another chain (chain id {:#x}, genesis {})", v.chain_id, v.genesis));
                }
                if v.protocol < MIN_PROTOCOL_VERSION {
                    return self.disconnect(
                        id,
                        &format!(
                            "protocol version {} is older than the oldest spoken ({MIN_PROTOCOL_VERSION})",
                            v.protocol
                        ),
                    );
                }
                if v.nonce == self.nonce {
                    if let Some(d) = p.dialed.clone() {
                        self.wanted.retain(|w| *w != d);
                    }
                    return self.disconnect(id, "connected to itself");
                }
                p.version = Some(v.clone());
                let key = p.ban_key();
                if self.is_banned(&key) {
                    return self.disconnect(id, &format!("banned ({key})"));
                }
                let p = self.peers.get_mut(&id).expect("checked");
                let send_version = !p.sent_version;
                p.sent_version = true;
                if send_version {
                    let m = self.version_msg();
                    self.send(id, &m);
                }
                // Feature negotiation: our feature messages go after its `version` and before our
                // `verack` (docs/PROTOCOL.md, "Handshake").
                self.send(id, &Message::SendHeaders);
                self.send(id, &Message::Verack);
                self.maybe_start(id);
            }
            (Message::Verack, _) => {
                if p.verack {
                    return self.misbehaving(id, 10, "a second verack");
                }
                p.verack = true;
                self.maybe_start(id);
            }
            (Message::SendHeaders, _) => {
                if p.version.is_some() {
                    p.prefers_headers = true;
                } else {
                    self.misbehaving(id, 10, "sendheaders before version");
                }
            }
            (_, false) => self.misbehaving(id, 10, &format!("{} before the handshake (ignored)", msg.command())),
            (Message::Ping(n), true) => {
                let n = *n;
                self.send(id, &Message::Pong(n));
            }
            (Message::Pong(n), true) => {
                if let Some((want, at)) = p.ping {
                    if want == *n {
                        p.ping_ms = Some(at.elapsed().as_secs_f64() * 1e3);
                        p.ping = None;
                    }
                }
            }
            (Message::GetHeaders { locator, stop }, true) => {
                let hs = self.chain.headers_after(locator, stop, MAX_HEADERS as usize);
                if let Some(last) = hs.last() {
                    p.best_header_sent = Some(last.block_hash());
                }
                self.send(id, &Message::Headers(hs));
            }
            (Message::Headers(_), true) => {
                let Message::Headers(hs) = msg else { unreachable!() };
                self.headers(id, hs);
            }
            (Message::Inv(_), true) => {
                let Message::Inv(items) = msg else { unreachable!() };
                self.inv(id, items);
            }
            (Message::GetData(_), true) => {
                let Message::GetData(items) = msg else { unreachable!() };
                self.getdata(id, items);
            }
            (Message::NotFound(items), true) => {
                for i in items {
                    if i.kind == InvKind::Block {
                        let h = BlockHash(i.hash);
                        // Only blocks we asked it for: anything else cannot grow the set.
                        if p.in_flight.remove(&h).is_some() {
                            p.not_found.insert(h, Instant::now());
                        }
                    }
                }
                self.request_blocks();
            }
            (Message::Block(_), true) => {
                let Message::Block(b) = msg else { unreachable!() };
                self.block(id, *b);
            }
            (Message::Tx(_), true) => {
                let Message::Tx(t) = msg else { unreachable!() };
                self.tx(id, t);
            }
        }
    }

    fn tick(&mut self) {
        let now = Instant::now();
        self.banned.expire(unix_now());
        self.dial_wanted();
        // Timeouts and pings.
        let mut drop = Vec::new();
        let mut rerequest = false;
        let best_height = self.chain.entry(&self.chain.best_header()).map(|e| e.height).unwrap_or(0);
        let mut reask = Vec::new();
        for (id, p) in self.peers.iter_mut() {
            if !p.ready() {
                if now.duration_since(p.connected_at) > HANDSHAKE_TIMEOUT {
                    drop.push((*id, format!("no handshake within {} s", HANDSHAKE_TIMEOUT.as_secs())));
                }
                continue;
            }
            let silent = p.conn.since_last_recv();
            if silent > PEER_TIMEOUT {
                drop.push((*id, format!("timeout: nothing received for {} s", silent.as_secs())));
                continue;
            }
            if let Some((_, at)) = p.ping {
                if now.duration_since(at) > PEER_TIMEOUT {
                    drop.push((*id, format!("ping timeout: no pong in {} s", PEER_TIMEOUT.as_secs())));
                    continue;
                }
            }
            let before = p.in_flight.len();
            p.in_flight.retain(|_, at| now.duration_since(*at) < BLOCK_TIMEOUT);
            rerequest |= p.in_flight.len() != before;
            let nf = p.not_found.len();
            p.not_found.retain(|_, at| now.duration_since(*at) < NOT_FOUND_RETRY);
            rerequest |= p.not_found.len() != nf;
            if p.ping.is_none() && now.duration_since(p.last_ping) >= PING_INTERVAL {
                let n: u64 = rand::random();
                p.ping = Some((n, now));
                p.last_ping = now;
                if !p.conn.send(&Message::Ping(n)) {
                    drop.push((*id, "ping not sent: send queue full or connection closed".to_string()));
                    continue;
                }
            }
            // Sync liveness: a peer that announced more blocks than we have headers for is asked
            // again now and then, so no sync waits for a new announcement.
            let announced = p.version.as_ref().map(|v| v.height).unwrap_or(0);
            if announced > best_height
                && p.in_flight.is_empty()
                && p.headers_last.is_none_or(|t| now.duration_since(t) >= HEADERS_RETRY)
            {
                reask.push(*id);
            }
        }
        for id in reask {
            self.ask_headers(id, None);
        }
        let expired = self.orphans.len();
        self.orphans.retain(|_, (_, at)| now.duration_since(*at) < ORPHAN_EXPIRY);
        if self.orphans.len() != expired {
            tracing::debug!(expired = expired - self.orphans.len(), "orphan transfers expired");
        }
        for (id, why) in drop {
            self.disconnect(id, &why);
        }
        if rerequest {
            self.request_blocks();
        }
        if self.template_due.is_some_and(|t| t <= now) {
            self.template_due = None;
            self.new_job();
        }
        self.record_gauges(best_height);
        self.sample_for_dashboard();
    }

    /// Sets the gauges read from the node's state (crate::metrics): tip, headers, peers, mempool.
    /// Four times a second from `tick`; no-ops without `--metrics`.
    fn record_gauges(&self, best_height: u32) {
        use crate::metrics as m;
        let height = self.chain.height();
        ::metrics::gauge!(m::CHAIN_HEIGHT).set(height as f64);
        ::metrics::gauge!(m::CHAIN_HEADERS).set(best_height as f64);
        if let Some(e) = self.chain.entry(&self.chain.tip()) {
            ::metrics::gauge!(m::CHAIN_TIP_AGE).set((unix_now() - e.header.time as i64) as f64);
            let work = e.chainwork.to_f64();
            ::metrics::gauge!(m::CHAIN_WORK).set(work);
        }
        let sync = if best_height == 0 { 1.0 } else { (height as f64 / best_height as f64).min(1.0) };
        ::metrics::gauge!(m::NET_SYNC_PROGRESS).set(sync);
        let outbound = self.peers.values().filter(|p| p.dialed.is_some()).count();
        ::metrics::gauge!(m::NET_PEERS, "direction" => "outbound").set(outbound as f64);
        ::metrics::gauge!(m::NET_PEERS, "direction" => "inbound").set((self.peers.len() - outbound) as f64);
        ::metrics::gauge!(m::MEMPOOL_TRANSACTIONS).set(self.mempool.len() as f64);
        ::metrics::gauge!(m::MEMPOOL_BYTES).set(self.mempool.bytes() as f64);
    }
}
