//! The JSON-RPC method table: what each call asks of the chain thread and what it answers (run on
//! the chain thread, so it reads and changes the node directly). The transport is the parent
//! module.
//!
//! Every parameter is typed and range-checked: a wrong type, a value out of range, an unknown
//! named parameter or one too many is -32602, never replaced by a default (issue 12, fault 6).
//! Parameters go by position or by name ([`METHODS`]); `null` is the same as leaving an optional
//! parameter out, as in Bitcoin Core.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::{json, Value};

use super::{Generate, RpcError};
use crate::chain::Accepted;
use crate::consensus::LedgerNetwork;
use crate::ledger::block::LedgerBlock;
use crate::ledger::ids::AccountKey;
use crate::ledger::tx::LedgerTx;
use crate::node::mempool::MempoolError;
use crate::node::Node;
use crate::primitives::{BlockHash, Txid};
use crate::store::BlockStatus;

/// Most nodes `addnode add` keeps (each is redialed whenever lost).
pub const MAX_ADDED_NODES: usize = 64;

/// Every method and its parameters' names in order (`params` by position or by name).
pub const METHODS: &[(&str, &[&str])] = &[
    ("getblockchaininfo", &[]),
    ("getbestblockhash", &[]),
    ("getblockcount", &[]),
    ("getblockhash", &["height"]),
    ("getblock", &["blockhash", "verbose"]),
    ("getblockheader", &["blockhash", "verbose"]),
    ("getaccount", &["pubkey"]),
    ("sendrawtransaction", &["hexstring"]),
    ("getrawmempool", &[]),
    ("getmempoolentry", &["txid"]),
    ("getmempoolinfo", &[]),
    ("getpeerinfo", &[]),
    ("getconnectioncount", &[]),
    ("addnode", &["node", "command"]),
    ("listbanned", &[]),
    ("setban", &["subnet", "command", "bantime"]),
    ("clearbanned", &[]),
    ("getmininginfo", &[]),
    ("getstratuminfo", &[]),
    ("submitblock", &["hexdata"]),
    ("generate", &["nblocks", "pubkey"]),
    ("stop", &[]),
];

/// `params` as positions for a method of [`METHODS`]: an array as it is, an object by the
/// method's names; `null` entries dropped from the end (left out). Methods not in the table pass
/// through unchanged.
///
/// # Errors
/// -32602: more parameters than the method takes, or a name it does not take.
pub(in crate::node) fn positional(method: &str, params: &Value) -> Result<Value, RpcError> {
    let Some((_, names)) = METHODS.iter().find(|(m, _)| *m == method) else { return Ok(params.clone()) };
    let mut v = match params {
        Value::Object(o) => {
            let mut v = vec![Value::Null; names.len()];
            for (k, x) in o {
                let i = names.iter().position(|n| n == k).ok_or_else(|| {
                    RpcError::params(format!("{method} has no parameter {k:?} (it takes: {})", names.join(", ")))
                })?;
                v[i] = x.clone();
            }
            v
        }
        Value::Array(a) => a.clone(),
        _ => return Err(RpcError::params("params must be an array or an object")),
    };
    while v.last().is_some_and(Value::is_null) {
        v.pop();
    }
    if v.len() > names.len() {
        return Err(RpcError::params(format!(
            "{method} takes {} parameter{}{}, got {}",
            names.len(),
            if names.len() == 1 { "" } else { "s" },
            if names.is_empty() { String::new() } else { format!(" ({})", names.join(", ")) },
            v.len()
        )));
    }
    Ok(Value::Array(v))
}

/// `getblock`'s and `getblockheader`'s `verbose`: a boolean, or 0/1 (absent: true).
fn verbose_param(v: Option<&Value>) -> Result<bool, RpcError> {
    match v {
        None | Some(Value::Null) => Ok(true),
        Some(Value::Bool(b)) => Ok(*b),
        Some(n) if n.as_u64() == Some(0) => Ok(false),
        Some(n) if n.as_u64() == Some(1) => Ok(true),
        Some(other) => Err(RpcError::params(format!("parameter 2 (verbose) must be a boolean or 0/1, got {other}"))),
    }
}

/// `addnode`'s `node`: an IP:PORT a peer could listen on (not port 0, not an unspecified,
/// multicast or broadcast address). Host names are not resolved.
fn addnode_address(s: &str) -> Result<SocketAddr, RpcError> {
    let a: SocketAddr = s.parse().map_err(|_| RpcError::params(format!("address {s:?}: expected IP:PORT")))?;
    let ip = a.ip();
    let broadcast = matches!(ip, std::net::IpAddr::V4(v4) if v4.is_broadcast());
    if a.port() == 0 || ip.is_unspecified() || ip.is_multicast() || broadcast {
        return Err(RpcError::params(format!(
            "address {s:?}: not a peer's address (port 0, unspecified, multicast or broadcast)"
        )));
    }
    Ok(a)
}

impl Node {
    /// Answers one JSON-RPC call.
    pub(in crate::node) fn rpc(&mut self, method: &str, params: &Value) -> Result<Value, RpcError> {
        let params = &positional(method, params)?;
        let p = |i: usize| -> Option<&Value> {
            match params {
                Value::Array(a) => a.get(i),
                _ => None,
            }
        };
        let str_param = |i: usize, what: &str| -> Result<String, RpcError> {
            p(i).and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| RpcError::params(format!("parameter {} ({what}) must be a string", i + 1)))
        };
        let hash_param = |i: usize| -> Result<BlockHash, RpcError> {
            let s = str_param(i, "block hash")?;
            BlockHash::from_display_hex(&s).map_err(|e| RpcError::params(format!("block hash {s:?}: {e}")))
        };
        match method {
            "getblockchaininfo" => {
                let tip = self.chain.tip();
                let e = *self.chain.entry(&tip).expect("tip indexed");
                let root = self.chain.state_root();
                let best = self.chain.best_header();
                Ok(json!({
                    "chain": self.params.name,
                    "height": self.chain.height(),
                    "headers": self.chain.entry(&best).map(|e| e.height),
                    "bestblockhash": tip.to_string(),
                    "chainwork": hex::encode(self.chain.follower().chainwork.to_be_bytes()),
                    "state_root": root.to_string(),
                    "difficulty": self.chain.difficulty(e.header.bits),
                    "bits": e.header.bits.to_string(),
                    "mediantime": self.chain.median_time_past(),
                    "transactions": self.chain.follower().transactions,
                    "accounts": self.chain.follower().state.len(),
                }))
            }
            "getbestblockhash" => Ok(json!(self.chain.tip().to_string())),
            "getblockcount" => Ok(json!(self.chain.height())),
            "getblockhash" => {
                let h = p(0)
                    .and_then(Value::as_u64)
                    .and_then(|h| u32::try_from(h).ok())
                    .ok_or_else(|| RpcError::params("parameter 1 (height) must be a whole number 0..=4294967295"))?;
                match self.chain.hash_at(h) {
                    Some(hash) => Ok(json!(hash.to_string())),
                    None => Err(RpcError {
                        code: -8,
                        message: format!("block height {h} out of range (tip {})", self.chain.height()),
                    }),
                }
            }
            "getblock" | "getblockheader" => {
                let hash = hash_param(0)?;
                let verbose = verbose_param(p(1))?;
                let e =
                    *self.chain.entry(&hash).ok_or_else(|| RpcError::not_found(format!("block {hash} not found")))?;
                let confirmations =
                    if self.chain.on_main(&hash) { self.chain.height() as i64 - e.height as i64 + 1 } else { -1 };
                let mut v = json!({
                    "hash": hash.to_string(),
                    "height": e.height,
                    "confirmations": confirmations,
                    "status": e.status,
                    "version": e.header.version,
                    "previousblockhash": e.header.prev_blockhash.to_string(),
                    "merkleroot": e.header.merkle_root.to_string(),
                    "time": e.header.time,
                    "bits": e.header.bits.to_string(),
                    "nonce": e.header.nonce,
                    "difficulty": self.chain.difficulty(e.header.bits),
                    "chainwork": hex::encode(e.chainwork.to_be_bytes()),
                });
                if method == "getblockheader" {
                    return Ok(if verbose { v } else { json!(hex::encode(e.header.to_bytes())) });
                }
                let block = self
                    .chain
                    .block(&hash)
                    .map_err(|e| RpcError::internal(e.to_string()))?
                    .ok_or_else(|| RpcError::not_found(format!("block {hash} is not stored (header only)")))?;
                if !verbose {
                    return Ok(json!(hex::encode(block.to_bytes())));
                }
                v["size"] = json!(block.encoded_len());
                v["tx"] = Value::Array(block.txs.iter().map(tx_json).collect());
                Ok(v)
            }
            "getaccount" => {
                let s = str_param(0, "public key")?;
                let pk = crate::ledger::keys::parse_public(&s).map_err(RpcError::params)?;
                let a = self.chain.follower().state.account(&pk);
                let pending =
                    self.mempool.txids().iter().filter(|id| self.mempool.get(id).is_some_and(|t| t.from == pk)).count()
                        as u64;
                Ok(
                    json!({"pubkey": pk.to_string(), "balance": a.balance, "nonce": a.nonce, "pending": pending, "next_nonce": a.nonce + pending}),
                )
            }
            "sendrawtransaction" => {
                let s = str_param(0, "transaction hex")?;
                let bytes = hex::decode(s.trim())
                    .map_err(|e| RpcError { code: -22, message: format!("transaction hex: {e}") })?;
                let tx = LedgerTx::from_bytes(&bytes)
                    .map_err(|e| RpcError { code: -22, message: format!("transaction: {e}") })?;
                let LedgerTx::Transfer(t) = tx else {
                    return Err(RpcError { code: -26, message: "a coinbase cannot be sent".into() });
                };
                match self.accept_tx(t, None) {
                    Ok(txid) => Ok(json!(txid.to_string())),
                    Err(MempoolError::Duplicate) => Ok(json!(tx.txid().to_string())),
                    Err(e) => Err(RpcError { code: -26, message: e.to_string() }),
                }
            }
            "getrawmempool" => Ok(Value::Array(self.mempool.txids().iter().map(|t| json!(t.to_string())).collect())),
            "getmempoolentry" => {
                let s = str_param(0, "txid")?;
                // Exactly 64 digits: parsing trims surrounding whitespace, which this method refuses.
                let id = s
                    .parse::<Txid>()
                    .ok()
                    .filter(|_| s.len() == 64)
                    .ok_or_else(|| RpcError::params(format!("txid {s:?}: expected 64 hex digits")))?;
                let t = self.mempool.get(&id).ok_or_else(|| RpcError::not_found("transaction not in the mempool"))?;
                Ok(tx_json(&LedgerTx::Transfer(*t)))
            }
            "getmempoolinfo" => Ok(
                json!({"size": self.mempool.len(), "bytes": self.mempool.bytes(), "max_bytes": self.cfg.mempool_bytes}),
            ),
            "getpeerinfo" => {
                let mut v: Vec<(u64, Value)> = self
                    .peers
                    .iter()
                    .map(|(id, p)| {
                        (
                            *id,
                            json!({
                                "id": id,
                                "addr": p.conn.addr.to_string(),
                                "inbound": p.dialed.is_none(),
                                "handshake": p.ready(),
                                "version": p.version.as_ref().map(|v| v.protocol),
                                "subver": p.version.as_ref().map(|v| v.user_agent.clone()),
                                "startingheight": p.version.as_ref().map(|v| v.height),
                                "best_known": p.best_known.map(|b| b.to_string()),
                                "synced_height": p.best_known.and_then(|b| self.chain.entry(&b)).map(|e| e.height),
                                "blocks_in_flight": p.in_flight.len(),
                                "blocks_received": p.blocks_received,
                                "pingtime_ms": p.ping_ms,
                                "conntime_s": p.connected_at.elapsed().as_secs(),
                            }),
                        )
                    })
                    .collect();
                v.sort_by_key(|(id, _)| *id);
                Ok(Value::Array(v.into_iter().map(|(_, v)| v).collect()))
            }
            "getconnectioncount" => Ok(json!(self.peers.values().filter(|p| p.ready()).count())),
            "addnode" => {
                let addr = str_param(0, "address")?;
                let cmd = match p(1) {
                    None => "add",
                    Some(Value::String(c)) if ["add", "remove", "onetry"].contains(&c.as_str()) => c.as_str(),
                    Some(other) => {
                        return Err(RpcError::params(format!(
                            "parameter 2 (command) must be add, remove or onetry, got {other}"
                        )))
                    }
                };
                let addr = addnode_address(&addr)?.to_string();
                // Forget failed-dial times of addresses no longer wanted (a onetry's), so the
                // table stays as small as the list.
                self.dialing.retain(|a, _| self.wanted.contains(a));
                match cmd {
                    "add" => {
                        if self.wanted.contains(&addr) {
                            return Err(RpcError { code: -23, message: format!("node {addr} already added") });
                        }
                        if self.wanted.len() >= MAX_ADDED_NODES {
                            return Err(RpcError {
                                code: -8,
                                message: format!("{MAX_ADDED_NODES} nodes already added: remove one first"),
                            });
                        }
                        self.wanted.push(addr.clone());
                        self.banned.remove(&addr);
                        self.dial_wanted();
                        Ok(Value::Null)
                    }
                    "onetry" => {
                        // One dial, not kept: a lost connection is not redialed.
                        let connected = self.peers.values().any(|p| p.dialed.as_deref() == Some(&addr));
                        if !connected {
                            self.banned.remove(&addr);
                            let events = self.events.clone();
                            std::thread::Builder::new()
                                .name("dial".into())
                                .spawn(move || super::super::peers::dial(addr, events))
                                .map_err(|e| RpcError::internal(format!("starting a dial: {e}")))?;
                        }
                        Ok(Value::Null)
                    }
                    _ => {
                        if !self.wanted.contains(&addr) {
                            return Err(RpcError { code: -24, message: format!("node {addr} has not been added") });
                        }
                        self.wanted.retain(|w| *w != addr);
                        let ids: Vec<u64> = self
                            .peers
                            .iter()
                            .filter(|(_, p)| p.dialed.as_deref() == Some(&addr))
                            .map(|(i, _)| *i)
                            .collect();
                        for id in ids {
                            self.disconnect(id, "removed by addnode");
                        }
                        Ok(Value::Null)
                    }
                }
            }
            // Bans (the P2P layer's, src/node/peers.rs): address, until (unix time), reason.
            "listbanned" => Ok(self.list_bans()),
            "setban" => self.setban(params),
            "clearbanned" => {
                self.banned.clear();
                Ok(Value::Null)
            }
            "getstratuminfo" => match &self.stratum {
                Some((_, server)) => {
                    serde_json::to_value(server.stats()).map_err(|e| RpcError::internal(e.to_string()))
                }
                None => Err(RpcError::not_found("no Stratum server: start the node with --stratum ADDR")),
            },
            "getmininginfo" => {
                let tip = self.chain.tip();
                let bits = self.chain.entry(&tip).expect("tip").header.bits;
                let next = self.chain.follower().next_bits();
                Ok(json!({
                    "mining": self.miner.is_some(),
                    "blocks": self.chain.height(),
                    "difficulty": self.chain.difficulty(bits),
                    "next_bits": next.to_string(),
                    "hashrate": self.miner.as_ref().map(|m| m.rate()).unwrap_or(0.0),
                    "backend": self.miner.as_ref().map(|m| m.backend.clone()),
                    "threads": self.miner.as_ref().map(|m| m.threads),
                    "blocks_found": self.miner.as_ref().map(|m| m.stats.found.load(Ordering::Relaxed)).unwrap_or(0),
                    "blocks_mined": self.blocks_mined,
                    "mempool": self.mempool.len(),
                }))
            }
            "submitblock" => {
                let s = str_param(0, "block hex")?;
                let bytes =
                    hex::decode(s.trim()).map_err(|e| RpcError { code: -22, message: format!("block hex: {e}") })?;
                let block = LedgerBlock::from_bytes(&bytes)
                    .map_err(|e| RpcError { code: -22, message: format!("block: {e}") })?;
                let hash = block.header.block_hash();
                match self.submit(&block, None) {
                    Ok(Accepted::New) => match self.chain.entry(&hash).map(|e| e.status) {
                        Some(BlockStatus::Invalid) => {
                            Err(RpcError { code: -25, message: "invalid: it breaks a state rule (see the log)".into() })
                        }
                        _ => Ok(Value::Null),
                    },
                    Ok(Accepted::Duplicate) => Ok(json!("duplicate")),
                    Err(e) => Err(RpcError { code: -25, message: e.to_string() }),
                }
            }
            "stop" => {
                self.stop.store(true, Ordering::Relaxed);
                Ok(json!("powkit node stopping"))
            }
            other => Err(RpcError { code: -32601, message: format!("method {other:?} not found") }),
        }
    }

    /// One step of `generate` (the nonce search between steps runs on the RPC thread: see
    /// [`Generate`]).
    pub(in crate::node) fn generate_step(&mut self, step: Generate) {
        match step {
            Generate::Start { params, reply } => {
                let _ = reply.send(self.generate_start(&params));
            }
            Generate::Template { key, reply } => {
                let _ = reply.send(self.template(key).map_err(RpcError::internal));
            }
            Generate::Submit { block, reply } => {
                // The tip moved while the block was mined (a peer's block): mine on the new one.
                if block.header.prev_blockhash != self.chain.tip() {
                    let _ = reply.send(Ok(false));
                    return;
                }
                let r = match self.submit(&block, None) {
                    Err(e) => Err(RpcError::internal(format!("generated block rejected: {e}"))),
                    Ok(_) if self.fatal.is_some() => Err(RpcError::internal("store failure")),
                    Ok(_) => {
                        self.blocks_mined += 1;
                        self.template_due = Some(Instant::now());
                        Ok(true)
                    }
                };
                let _ = reply.send(r);
            }
        }
    }

    /// `generate [nblocks [pubkey]]`'s checks: regtest only; `nblocks` 1..=10000 (default 1);
    /// `pubkey` a public key (default the node's `--miner-key`).
    fn generate_start(&mut self, params: &Value) -> Result<(u64, AccountKey), RpcError> {
        // The built-in regtest only: a spec chain (`--chain FILE`) may be someone's public network.
        if !std::ptr::eq(self.params, LedgerNetwork::PowkitRegtest.params()) {
            return Err(RpcError {
                code: -32601,
                message: format!("generate is for powkit-regtest only; this node runs {}", self.params.name),
            });
        }
        let params = positional("generate", params)?;
        let p = |i: usize| params.as_array().and_then(|a| a.get(i));
        let n = match p(0) {
            None => 1,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=10_000).contains(n))
                .ok_or_else(|| RpcError::params(format!("parameter 1 (nblocks) must be 1..=10000, got {v}")))?,
        };
        let key = match p(1) {
            Some(Value::String(s)) => crate::ledger::keys::parse_public(s).map_err(RpcError::params)?,
            None => self
                .miner_key
                .ok_or_else(|| RpcError::params("no miner key: start with --miner-key or pass a public key"))?,
            Some(other) => return Err(RpcError::params(format!("parameter 2 (pubkey) must be a string, got {other}"))),
        };
        Ok((n, key))
    }
}

fn tx_json(tx: &LedgerTx) -> Value {
    let id = tx.txid().to_string();
    match tx {
        LedgerTx::Coinbase(c) => {
            json!({"txid": id, "type": "coinbase", "height": c.height, "recipient": c.recipient.to_string(), "amount": c.amount, "state_root": c.state_root.to_string()})
        }
        LedgerTx::Transfer(t) => json!({
            "txid": id, "type": "transfer", "from": t.from.to_string(), "to": t.to.to_string(),
            "amount": t.amount, "fee": t.fee, "nonce": t.nonce,
        }),
    }
}
