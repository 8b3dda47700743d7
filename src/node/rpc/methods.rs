//! The JSON-RPC method table: what each call asks of the chain thread and what it answers (run on
//! the chain thread, so it reads and changes the node directly). The transport is the parent
//! module.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use super::RpcError;
use crate::chain::Accepted;
use crate::ledger::block::LedgerBlock;
use crate::ledger::tx::LedgerTx;
use crate::node::mempool::MempoolError;
use crate::node::Node;
use crate::primitives::{BlockHash, Txid};
use crate::store::BlockStatus;

impl Node {
    /// Answers one JSON-RPC call.
    pub(in crate::node) fn rpc(&mut self, method: &str, params: &Value) -> Result<Value, RpcError> {
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
                    .ok_or_else(|| RpcError::params("parameter 1 (height) must be a whole number"))?;
                match u32::try_from(h).ok().and_then(|h| self.chain.hash_at(h)) {
                    Some(hash) => Ok(json!(hash.to_string())),
                    None => Err(RpcError {
                        code: -8,
                        message: format!("block height {h} out of range (tip {})", self.chain.height()),
                    }),
                }
            }
            "getblock" | "getblockheader" => {
                let hash = hash_param(0)?;
                let verbose = match p(1) {
                    None => true,
                    Some(Value::Bool(b)) => *b,
                    Some(Value::Number(n)) => n.as_u64() != Some(0),
                    Some(_) => return Err(RpcError::params("parameter 2 (verbose) must be a boolean or 0/1")),
                };
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
                    Some(Value::String(c)) => c.as_str(),
                    Some(_) => return Err(RpcError::params("parameter 2 (command) must be add, remove or onetry")),
                };
                let parsed: SocketAddr =
                    addr.parse().map_err(|_| RpcError::params(format!("address {addr:?}: expected IP:PORT")))?;
                let addr = parsed.to_string();
                match cmd {
                    "add" | "onetry" => {
                        if !self.wanted.contains(&addr) {
                            self.wanted.push(addr.clone());
                        }
                        self.dialing.remove(&addr);
                        self.banned.remove(&addr);
                        self.dial_wanted();
                        Ok(Value::Null)
                    }
                    "remove" => {
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
                    other => Err(RpcError::params(format!("command {other:?}: expected add, remove or onetry"))),
                }
            }
            // Bans (the P2P layer's, src/node/peers.rs): address, until (unix time), reason.
            "listbanned" => Ok(self.list_bans()),
            "setban" => self.setban(params),
            "clearbanned" => {
                self.banned.clear();
                Ok(Value::Null)
            }
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
            "generate" => {
                // Every parameter typed and range-checked: a wrong one is -32602, never a default.
                let n = match p(0) {
                    None => 1,
                    Some(v) => v
                        .as_u64()
                        .filter(|n| (1..=10_000).contains(n))
                        .ok_or_else(|| RpcError::params("parameter 1 (blocks) must be 1..=10000"))?,
                };
                let key = match p(1) {
                    Some(Value::String(s)) => crate::ledger::keys::parse_public(s).map_err(RpcError::params)?,
                    None => self
                        .miner_key
                        .ok_or_else(|| RpcError::params("no miner key: start with --miner-key or pass a public key"))?,
                    Some(_) => return Err(RpcError::params("parameter 2 (public key) must be a string")),
                };
                let scanner =
                    crate::sha256::CpuImpl::detect().scanner().map_err(|e| RpcError::internal(e.to_string()))?;
                let mut hashes = Vec::new();
                for _ in 0..n {
                    let mut b = self.template(key).map_err(RpcError::internal)?;
                    b.header = crate::mine::mine_header(b.header, scanner.as_ref())
                        .ok_or_else(|| RpcError::internal("no nonce meets the target at this time"))?;
                    let hash = b.header.block_hash();
                    self.submit(&b, None).map_err(|e| RpcError::internal(format!("generated block rejected: {e}")))?;
                    if self.fatal.is_some() {
                        return Err(RpcError::internal("store failure"));
                    }
                    self.blocks_mined += 1;
                    hashes.push(json!(hash.to_string()));
                }
                Ok(Value::Array(hashes))
            }
            "stop" => {
                self.stop.store(true, Ordering::Relaxed);
                Ok(json!("powkit node stopping"))
            }
            other => Err(RpcError { code: -32601, message: format!("method {other:?} not found") }),
        }
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
