//! The peer table (run on the chain thread): who is connected, the handshake's `version`, bans,
//! disconnecting, sending, and dialing the wanted addresses; plus the listener and dialer threads
//! that hand new connections to the chain thread. One connection's own threads are [`peer`].

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::{peer, Event, Node};
use crate::net::message::{Message, Version, PROTOCOL_VERSION};
use crate::primitives::BlockHash;

/// What the chain thread knows of one connection.
pub(super) struct Peer {
    pub(super) conn: peer::Conn,
    pub(super) dialed: Option<String>,
    pub(super) version: Option<Version>,
    pub(super) verack: bool,
    pub(super) sent_version: bool,
    pub(super) connected_at: Instant,
    pub(super) best_known: Option<BlockHash>,
    pub(super) in_flight: HashMap<BlockHash, Instant>,
    pub(super) ping: Option<(u64, Instant)>,
    pub(super) last_ping: Instant,
    pub(super) ping_ms: Option<f64>,
    pub(super) low_work_headers: u64,
    pub(super) unconnecting: u32,
    pub(super) blocks_received: u64,
    pub(super) not_found: HashSet<BlockHash>,
    /// When our last `getheaders` to it went out, until its `headers` answer.
    pub(super) headers_asked: Option<Instant>,
    /// Another `getheaders` was wanted while one was out: send it after the answer.
    pub(super) headers_wanted: bool,
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
        if let Some(d) = &self.dialed {
            return d.clone();
        }
        match self.version.as_ref().map(|v| v.listen_port).filter(|p| *p != 0) {
            Some(p) => SocketAddr::new(ip, p).to_string(),
            None => self.conn.addr.to_string(),
        }
    }
}

impl Node {
    pub(super) fn connected(&mut self, stream: TcpStream, addr: SocketAddr, dialed: Option<String>) {
        if let Some(d) = &dialed {
            self.dialing.remove(d);
        }
        let inbound = self.peers.values().filter(|p| p.dialed.is_none()).count();
        if dialed.is_none() && inbound >= self.cfg.max_peers {
            tracing::debug!(%addr, "connection refused: {} peers already", self.peers.len());
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return;
        }
        let key = match &dialed {
            Some(d) => d.clone(),
            None if addr.ip().is_loopback() => String::new(),
            None => addr.ip().to_string(),
        };
        if !key.is_empty() && self.is_banned(&key) {
            tracing::debug!(%addr, "connection refused: banned");
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return;
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
            in_flight: HashMap::new(),
            ping: None,
            last_ping: now,
            ping_ms: None,
            low_work_headers: 0,
            unconnecting: 0,
            blocks_received: 0,
            not_found: HashSet::new(),
            headers_asked: None,
            headers_wanted: false,
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
        })
    }

    pub(super) fn is_banned(&mut self, key: &str) -> bool {
        match self.banned.get(key) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                self.banned.remove(key);
                false
            }
            None => false,
        }
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

    /// Disconnects and bans a peer that broke the protocol or sent something invalid.
    pub(super) fn punish(&mut self, id: u64, why: &str) {
        if let Some(p) = self.peers.get(&id) {
            let key = p.ban_key();
            tracing::warn!(peer = id, addr = %p.conn.addr, ban = %key, "banned for {} s: {why}", self.cfg.ban_seconds);
            self.banned.insert(key, Instant::now() + Duration::from_secs(self.cfg.ban_seconds));
        }
        self.disconnect(id, why);
    }

    pub(super) fn send(&mut self, id: u64, msg: &Message) {
        let ok = self.peers.get(&id).map(|p| p.conn.send(msg)).unwrap_or(true);
        if !ok {
            self.disconnect(id, "send queue full (the peer is not reading)");
        }
    }

    /// Dials every wanted address that is not connected, banned, or dialed in the last 2 s.
    pub(super) fn dial_wanted(&mut self) {
        let now = Instant::now();
        let connected: HashSet<String> = self.peers.values().filter_map(|p| p.dialed.clone()).collect();
        for addr in self.wanted.clone() {
            if connected.contains(&addr) || self.banned.contains_key(&addr) {
                continue;
            }
            let due = self.dialing.get(&addr).is_none_or(|t| now.duration_since(*t) >= Duration::from_secs(2));
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
        Ok(sa) => match TcpStream::connect_timeout(&sa, Duration::from_secs(3)) {
            Ok(stream) => Event::Connected { stream, addr: sa, dialed: Some(addr) },
            Err(e) => Event::DialFailed { addr, why: e.to_string() },
        },
    };
    let _ = events.send(ev);
}
