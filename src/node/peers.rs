//! The peer table (run on the chain thread): who is connected, the handshake's `version`,
//! misbehaviour scores and bans, inbound eviction, disconnecting, sending, and dialing the wanted
//! addresses; plus the listener and dialer threads that hand new connections to the chain thread.
//! One connection's own threads are [`peer`]; the persisted ban list is [`super::banlist`].

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use serde_json::{json, Value};

use super::banlist::{self, key_of};
use super::rpc::RpcError;
use super::{peer, unix_now, Event, Node};

/// How soon a wanted address whose connection was lost or whose dial failed is dialed again: one
/// second, so a healed partition reconnects within about a second plus the handshake.
const REDIAL_EVERY: Duration = Duration::from_secs(1);

/// How long one dial waits for TCP's handshake: long enough for one SYN retransmission (the first
/// comes after 1 s), short enough that a dial begun during a partition gives way to a fresh one soon
/// after it heals.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(2_500);
use crate::chain::BAN_SCORE;
use crate::net::message::{Message, Version, NODE_NETWORK, PROTOCOL_VERSION};
use crate::primitives::BlockHash;

/// Inbound peers protected from eviction for the lowest ping time (Bitcoin Core's
/// `AttemptToEvictConnection`: 8).
pub const PROTECT_BY_PING: usize = 8;
/// Inbound peers protected for the most recent new transactions relayed (Core: 4).
pub const PROTECT_BY_TX: usize = 4;
/// Inbound peers protected for the most recent new blocks relayed (Core: 4).
pub const PROTECT_BY_BLOCK: usize = 4;

/// What the chain thread knows of one connection.
pub(super) struct Peer {
    pub(super) conn: peer::Conn,
    pub(super) dialed: Option<String>,
    pub(super) version: Option<Version>,
    pub(super) verack: bool,
    pub(super) sent_version: bool,
    pub(super) connected_at: Instant,
    /// The most-work block the peer is known to have (it sent or announced it, or its headers).
    pub(super) best_known: Option<BlockHash>,
    /// The last header we sent it (a `headers` answer or announcement): it has that header and its
    /// ancestors (Bitcoin Core's `pindexBestHeaderSent`).
    pub(super) best_header_sent: Option<BlockHash>,
    /// It sent `sendheaders`: new blocks are announced to it with `headers` when it has the parent.
    pub(super) prefers_headers: bool,
    pub(super) in_flight: HashMap<BlockHash, Instant>,
    pub(super) ping: Option<(u64, Instant)>,
    pub(super) last_ping: Instant,
    pub(super) ping_ms: Option<f64>,
    pub(super) low_work_headers: u64,
    pub(super) unconnecting: u32,
    pub(super) blocks_received: u64,
    /// Blocks it answered `notfound` for, and when: not asked of it again until it announces them
    /// or [`super::NOT_FOUND_RETRY`] has passed.
    pub(super) not_found: HashMap<BlockHash, Instant>,
    /// When our last `getheaders` to it went out, until its `headers` answer.
    pub(super) headers_asked: Option<Instant>,
    /// When the last `getheaders` to it went out (kept after the answer).
    pub(super) headers_last: Option<Instant>,
    /// Another `getheaders` was wanted while one was out: send it after the answer.
    pub(super) headers_wanted: bool,
    /// Misbehaviour score (banned at [`BAN_SCORE`]) and its causes.
    pub(super) score: u32,
    pub(super) causes: Vec<String>,
    /// When it last relayed a block or transaction that was new to us (eviction protection).
    pub(super) last_block_at: Option<Instant>,
    pub(super) last_tx_at: Option<Instant>,
}

impl Peer {
    pub(super) fn ready(&self) -> bool {
        self.version.is_some() && self.verack
    }

    /// The key a ban is recorded under: the IP, except on loopback, where every local node shares
    /// the address and the key is address and port (the dialed port, or the advertised one).
    pub(super) fn ban_key(&self) -> String {
        let ip = self.conn.addr.ip();
        if !ip.is_loopback() {
            return ip.to_string();
        }
        if let Some(d) = self.dialed.as_ref().and_then(|d| d.parse::<SocketAddr>().ok()) {
            return key_of(d);
        }
        match self.version.as_ref().map(|v| v.listen_port).filter(|p| *p != 0) {
            Some(p) => SocketAddr::new(ip, p).to_string(),
            None => self.conn.addr.to_string(),
        }
    }
}

/// The network group of an address for eviction (Bitcoin Core's `GetGroup`, without ASNs): the
/// /16 of an IPv4 address, the /32 of an IPv6 one, one group for every loopback address.
pub(super) fn netgroup(ip: IpAddr) -> Vec<u8> {
    if ip.is_loopback() {
        return vec![0];
    }
    match ip {
        IpAddr::V4(a) => vec![4, a.octets()[0], a.octets()[1]],
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => vec![4, v4.octets()[0], v4.octets()[1]],
            None => [&[6u8][..], &a.octets()[..4]].concat(),
        },
    }
}

/// The inbound connection to close so that a new one fits, or `None` when every one is protected
/// (docs/PROTOCOL.md, "Inbound slots and eviction"). First an inbound connection that has not
/// finished its handshake (the oldest). Otherwise Bitcoin Core's `AttemptToEvictConnection`: among
/// the inbound peers, protect the 8 with the lowest ping, the 4 that most recently relayed a new
/// transaction, the 4 that most recently relayed a new block, then the older half of the rest;
/// from what remains, take the network group with the most connections (ties: the one with the
/// newest connection) and evict its newest connection.
pub(super) fn select_eviction(peers: &HashMap<u64, Peer>) -> Option<u64> {
    let inbound = || peers.iter().filter(|(_, p)| p.dialed.is_none());
    if let Some((id, _)) = inbound().filter(|(_, p)| !p.ready()).min_by_key(|(id, p)| (p.connected_at, **id)) {
        return Some(*id);
    }
    let mut c: Vec<(u64, &Peer)> = inbound().map(|(id, p)| (*id, p)).collect();
    c.sort_by_key(|(id, _)| *id);
    fn protect<K: Ord>(c: &mut Vec<(u64, &Peer)>, n: usize, key: impl Fn(&Peer) -> Option<K>) {
        let mut ranked: Vec<(K, u64)> = c.iter().filter_map(|(id, p)| key(p).map(|k| (k, *id))).collect();
        ranked.sort();
        let keep: HashSet<u64> = ranked.into_iter().take(n).map(|(_, id)| id).collect();
        c.retain(|(id, _)| !keep.contains(id));
    }
    // Lowest ping (microseconds, so it orders); most recent relays (a later Instant sorts last,
    // so order by the reverse).
    protect(&mut c, PROTECT_BY_PING, |p| p.ping_ms.map(|ms| (ms * 1000.0) as u64));
    protect(&mut c, PROTECT_BY_TX, |p| p.last_tx_at.map(std::cmp::Reverse));
    protect(&mut c, PROTECT_BY_BLOCK, |p| p.last_block_at.map(std::cmp::Reverse));
    let half = c.len() / 2;
    protect(&mut c, half, |p| Some(p.connected_at));
    let mut groups: HashMap<Vec<u8>, Vec<(u64, &Peer)>> = HashMap::new();
    for (id, p) in c {
        groups.entry(netgroup(p.conn.addr.ip())).or_default().push((id, p));
    }
    let newest = |g: &Vec<(u64, &Peer)>| g.iter().map(|(id, p)| (p.connected_at, *id)).max();
    let group = groups.values().max_by_key(|g| (g.len(), newest(g)))?;
    newest(group).map(|(_, id)| id)
}

impl Node {
    pub(super) fn connected(&mut self, stream: TcpStream, addr: SocketAddr, dialed: Option<String>) {
        if let Some(d) = &dialed {
            self.dialing.remove(d);
        }
        let now_unix = unix_now();
        // Off loopback the IP decides at once; on loopback the listening port is known only from
        // the peer's `version`, where the check is repeated.
        let banned = match &dialed {
            Some(d) => self.banned.is_banned(d, now_unix),
            None => !addr.ip().is_loopback() && self.banned.get(addr, now_unix).is_some(),
        };
        if banned {
            tracing::debug!(%addr, "connection refused: banned");
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return;
        }
        let inbound = self.peers.values().filter(|p| p.dialed.is_none()).count();
        if dialed.is_none() && inbound >= self.cfg.max_peers {
            match select_eviction(&self.peers) {
                Some(victim) => self.disconnect(victim, "evicted: the inbound slots are full"),
                None => {
                    tracing::debug!(%addr, "connection refused: {inbound} inbound peers, none evictable");
                    let _ = stream.shutdown(std::net::Shutdown::Both);
                    return;
                }
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let conn = match peer::Conn::start(id, stream, addr, self.params.magic, self.events.clone()) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(%addr, "could not start the connection: {e}");
                return;
            }
        };
        let now = Instant::now();
        let mut p = Peer {
            conn,
            dialed,
            version: None,
            verack: false,
            sent_version: false,
            connected_at: now,
            best_known: None,
            best_header_sent: None,
            prefers_headers: false,
            in_flight: HashMap::new(),
            ping: None,
            last_ping: now,
            ping_ms: None,
            low_work_headers: 0,
            unconnecting: 0,
            blocks_received: 0,
            not_found: HashMap::new(),
            headers_asked: None,
            headers_last: None,
            headers_wanted: false,
            score: 0,
            causes: Vec::new(),
            last_block_at: None,
            last_tx_at: None,
        };
        tracing::info!(peer = id, %addr, inbound = p.dialed.is_none(), "connected");
        if p.dialed.is_some() {
            p.conn.send(&self.version_msg());
            p.sent_version = true;
        }
        self.peers.insert(id, p);
    }

    pub(super) fn version_msg(&self) -> Message {
        Message::Version(Version {
            protocol: PROTOCOL_VERSION,
            chain_id: self.params.chain_id,
            genesis: self.params.genesis.header.block_hash(),
            height: self.chain.height(),
            nonce: self.nonce,
            listen_port: self.listen_port,
            user_agent: format!("/powkit:{}/", env!("CARGO_PKG_VERSION")),
            services: NODE_NETWORK,
        })
    }

    pub(super) fn is_banned(&mut self, key: &str) -> bool {
        self.banned.is_banned(key, unix_now())
    }

    pub(super) fn disconnect(&mut self, id: u64, why: &str) {
        if let Some(p) = self.peers.remove(&id) {
            p.conn.close();
            tracing::info!(peer = id, addr = %p.conn.addr, "disconnected: {why}");
            if let Some(d) = &p.dialed {
                self.dialing.insert(d.clone(), Instant::now());
            }
            if !p.in_flight.is_empty() {
                self.request_blocks();
            }
        }
    }

    /// Disconnects and bans a peer that broke the protocol or sent something invalid (a
    /// misbehaviour of score [`BAN_SCORE`]).
    pub(super) fn punish(&mut self, id: u64, why: &str) {
        self.misbehaving(id, BAN_SCORE, why);
    }

    /// Adds `score` to a peer's misbehaviour score with its cause (docs/PROTOCOL.md, "Misbehaviour
    /// and bans", has the table); at [`BAN_SCORE`] the peer is disconnected and its address banned
    /// for `--ban-seconds` with the causes as the reason. Below it, the cause is logged and the
    /// connection kept.
    pub(super) fn misbehaving(&mut self, id: u64, score: u32, cause: &str) {
        let Some(p) = self.peers.get_mut(&id) else { return };
        p.score = p.score.saturating_add(score);
        p.causes.push(format!("{cause} (+{score})"));
        if p.score < BAN_SCORE {
            tracing::warn!(peer = id, addr = %p.conn.addr, score = p.score, "misbehaving: {cause} (+{score})");
            return;
        }
        let reason = p.causes.join("; ");
        if p.dialed.is_none() && !p.ready() {
            // An inbound connection that misbehaves before finishing the handshake is only
            // disconnected: its address is one ephemeral port (loopback) or an address it can
            // change at will, so a ban would protect nothing and every such connection would grow
            // the ban list and rewrite banlist.json on the chain thread.
            tracing::warn!(peer = id, addr = %p.conn.addr, "disconnected before the handshake (not banned): {reason}");
            self.disconnect(id, cause);
            return;
        }
        let key = p.ban_key();
        tracing::warn!(peer = id, addr = %p.conn.addr, ban = %key, "banned for {} s: {reason}", self.cfg.ban_seconds);
        self.banned.ban(key, unix_now().saturating_add(self.cfg.ban_seconds as i64), reason);
        ::metrics::counter!(crate::metrics::NET_BANS).increment(1);
        self.disconnect(id, cause);
    }

    /// `setban ADDR add|remove [SECONDS]` (Bitcoin Core's `setban`): `ADDR` is an IP (every port)
    /// or IP:PORT (on loopback that port only; elsewhere the IP); `add` bans for `SECONDS`
    /// (default `--ban-seconds`) and disconnects the peers it covers, `remove` lifts exactly that
    /// ban. Errors: -30 for an address of neither form or a `remove` of an address not banned,
    /// -32602 for a wrong command or duration.
    pub(super) fn setban(&mut self, params: &Value) -> Result<Value, RpcError> {
        let p = |i: usize| params.as_array().and_then(|a| a.get(i));
        let addr =
            p(0).and_then(Value::as_str).ok_or_else(|| RpcError::params("parameter 1 (address) must be a string"))?;
        let key = banlist::parse_key(addr).map_err(|e| RpcError { code: -30, message: e })?;
        let cmd = p(1)
            .and_then(Value::as_str)
            .ok_or_else(|| RpcError::params("parameter 2 (command) must be add or remove"))?;
        match cmd {
            "add" => {
                let seconds = match p(2) {
                    None | Some(Value::Null) => self.cfg.ban_seconds,
                    Some(v) => v.as_u64().filter(|s| (1..=10 * 365 * 86_400).contains(s)).ok_or_else(|| {
                        RpcError::params("parameter 3 (seconds) must be an integer from 1 to 315360000")
                    })?,
                };
                let until = unix_now().saturating_add(seconds as i64);
                tracing::info!(ban = %key, seconds, "banned by setban");
                self.banned.ban(key.clone(), until, "setban".into());
                let now = unix_now();
                let covered: Vec<u64> = self
                    .peers
                    .iter()
                    .filter(|(_, p)| {
                        self.banned.is_banned(&p.ban_key(), now) || self.banned.get(p.conn.addr, now).is_some()
                    })
                    .map(|(id, _)| *id)
                    .collect();
                for id in covered {
                    self.disconnect(id, "banned by setban");
                }
                Ok(Value::Null)
            }
            "remove" => {
                if self.banned.unban(&key) {
                    Ok(Value::Null)
                } else {
                    Err(RpcError { code: -30, message: format!("{key} is not banned") })
                }
            }
            other => Err(RpcError::params(format!("command {other:?}: expected add or remove"))),
        }
    }

    /// `listbanned`: every ban with its address, end (`until`, unix seconds), seconds left and reason.
    pub(super) fn list_bans(&self) -> Value {
        let now = unix_now();
        Value::Array(
            self.banned
                .iter()
                .filter(|(_, b)| b.until > now)
                .map(
                    |(k, b)| json!({"address": k, "until": b.until, "seconds_left": b.until - now, "reason": b.reason}),
                )
                .collect(),
        )
    }

    pub(super) fn send(&mut self, id: u64, msg: &Message) {
        let ok = self.peers.get(&id).map(|p| p.conn.send(msg)).unwrap_or(true);
        if !ok {
            self.disconnect(id, "send queue full (the peer is not reading)");
        }
    }

    /// Sends `items` as `inv` messages of at most [`MAX_INV`](crate::net::message::MAX_INV) items.
    pub(super) fn send_inv(&mut self, id: u64, items: &[crate::net::message::Inv]) {
        for chunk in items.chunks(crate::net::message::MAX_INV as usize) {
            self.send(id, &Message::Inv(chunk.to_vec()));
        }
    }

    /// Dials every wanted address that is not connected, banned, or dialed in the last 2 s.
    pub(super) fn dial_wanted(&mut self) {
        let now = Instant::now();
        let connected: HashSet<String> = self.peers.values().filter_map(|p| p.dialed.clone()).collect();
        for addr in self.wanted.clone() {
            // The same key rules as the bans themselves (an IP ban covers a wanted IP:PORT).
            if connected.contains(&addr) || self.banned.is_banned(&addr, unix_now()) {
                continue;
            }
            let due = self.dialing.get(&addr).is_none_or(|t| now.duration_since(*t) >= REDIAL_EVERY);
            if !due {
                continue;
            }
            self.dialing.insert(addr.clone(), now + Duration::from_secs(3600));
            let events = self.events.clone();
            let _ = std::thread::Builder::new().name("dial".into()).spawn(move || dial(addr, events));
        }
    }
}

pub(super) fn accept_loop(l: TcpListener, events: Sender<Event>, stop: Arc<AtomicBool>) {
    let _ = l.set_nonblocking(true);
    while !stop.load(Ordering::Relaxed) {
        match l.accept() {
            Ok((stream, addr)) => {
                let _ = stream.set_nonblocking(false);
                if events.send(Event::Connected { stream, addr, dialed: None }).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

pub(super) fn dial(addr: String, events: Sender<Event>) {
    let ev = match addr.parse::<SocketAddr>() {
        Err(_) => Event::DialFailed { addr: addr.clone(), why: "not an IP:PORT address".into() },
        Ok(sa) => match TcpStream::connect_timeout(&sa, CONNECT_TIMEOUT) {
            Ok(stream) => Event::Connected { stream, addr: sa, dialed: Some(addr) },
            Err(e) => Event::DialFailed { addr, why: e.to_string() },
        },
    };
    let _ = events.send(ev);
}
