//! Announcements and transaction relay (run on the chain thread): answering `inv` and `getdata`,
//! taking transactions from peers and RPC into the mempool and announcing them, and announcing new
//! tips.

use std::time::{Duration, Instant};

use super::mempool::MempoolError;
use super::peers::Peer;
use super::{Node, MAX_BLOCKS_PER_GETDATA, MAX_ORPHAN_TXS};
use crate::chain::TipChange;
use crate::ledger::ids::AccountKey;
use crate::ledger::tx::{LedgerTx, Transfer};
use crate::net::message::{Inv, InvKind, Message};
use crate::primitives::{BlockHash, BlockHeader, Txid};

/// Most blocks announced with `headers` at once; more (or a reorg deeper than that) go by `inv`
/// (Bitcoin Core's `MAX_BLOCKS_TO_ANNOUNCE`).
pub const MAX_BLOCKS_TO_ANNOUNCE: usize = 8;
use crate::store::BlockStatus;

impl Node {
    pub(super) fn inv(&mut self, id: u64, items: Vec<Inv>) {
        let mut unknown_block = false;
        let mut want_txs = Vec::new();
        for i in &items {
            match i.kind {
                InvKind::Block => {
                    let h = BlockHash(i.hash);
                    match self.chain.entry(&h) {
                        None => unknown_block = true,
                        Some(e) if e.status == BlockStatus::Invalid => {}
                        Some(_) => self.peer_has(id, h),
                    }
                }
                InvKind::Tx => {
                    let txid = Txid(i.hash);
                    if !self.mempool.contains(&txid) && !self.rejected_txs.contains(&txid) {
                        want_txs.push(*i);
                    }
                }
            }
        }
        if unknown_block {
            self.ask_headers(id, None);
        }
        if !want_txs.is_empty() {
            self.send(id, &Message::GetData(want_txs));
        }
        self.request_blocks();
    }

    pub(super) fn getdata(&mut self, id: u64, items: Vec<Inv>) {
        let mut missing = Vec::new();
        let mut blocks = 0;
        for i in items {
            match i.kind {
                InvKind::Block => {
                    let h = BlockHash(i.hash);
                    let stored =
                        matches!(self.chain.entry(&h).map(|e| e.status), Some(BlockStatus::Data | BlockStatus::Valid));
                    let bytes = if stored && blocks < MAX_BLOCKS_PER_GETDATA {
                        match self.chain.store().block_bytes(&h) {
                            Ok(b) => b,
                            Err(e) => {
                                self.fatal = Some(e.to_string());
                                return;
                            }
                        }
                    } else {
                        None
                    };
                    match bytes {
                        Some(b) => {
                            blocks += 1;
                            let ok = self.peers.get(&id).is_some_and(|p| p.conn.send_raw("block", &b));
                            if !ok {
                                return self.disconnect(id, "send queue full (the peer is not reading)");
                            }
                        }
                        None => missing.push(i),
                    }
                }
                InvKind::Tx => match self.mempool.get(&Txid(i.hash)) {
                    Some(t) => {
                        let m = Message::Tx(LedgerTx::Transfer(*t));
                        self.send(id, &m);
                    }
                    None => missing.push(i),
                },
            }
        }
        if !missing.is_empty() {
            self.send(id, &Message::NotFound(missing));
        }
    }

    /// Whether peer `p` is known to have header `h`: it is an ancestor of (or is) the best block
    /// it is known to have, or of the last header we sent it; everyone has genesis.
    pub(super) fn peer_has_header(&self, p: &Peer, h: &BlockHash) -> bool {
        self.chain.entry(h).is_some_and(|e| e.height == 0)
            || [p.best_known, p.best_header_sent].iter().flatten().any(|b| self.chain.is_ancestor(h, b))
    }

    /// The headers to announce `tip` to `p` with (Bitcoin Core's `SendMessages` headers
    /// announcement): the blocks on the way to `tip` that the peer is not known to have, oldest
    /// first, when the first one's parent is known to it and they are at most
    /// [`MAX_BLOCKS_TO_ANNOUNCE`]; `None` when headers would not connect for it (then `inv`).
    fn headers_to_announce(&self, p: &Peer, tip: BlockHash) -> Option<Vec<BlockHeader>> {
        let mut out = Vec::new();
        let mut h = tip;
        while !self.peer_has_header(p, &h) {
            if out.len() == MAX_BLOCKS_TO_ANNOUNCE {
                return None;
            }
            let e = self.chain.entry(&h)?;
            out.push(e.header);
            h = e.header.prev_blockhash;
        }
        out.reverse();
        Some(out)
    }

    /// Announces a tip change to the ready peers (called by `after_tip_change`), safely for each
    /// receiver: `headers` only to a peer that asked for them (`sendheaders`) and is known to have
    /// the first one's parent, `inv` of the tip otherwise (the peer answers with `getheaders`).
    pub(super) fn announce_tip(&mut self, _change: &TipChange, tip: BlockHash, readded: &[Txid]) {
        let ids: Vec<u64> = self.peers.iter().filter(|(_, p)| p.ready()).map(|(id, _)| *id).collect();
        let readded: Vec<Inv> = readded.iter().map(|h| Inv { kind: InvKind::Tx, hash: h.0 }).collect();
        for id in ids {
            if !readded.is_empty() {
                // Transactions of disconnected blocks are pending again: offer them to everyone.
                self.send_inv(id, &readded);
            }
            let Some(p) = self.peers.get(&id) else { continue };
            if self.peer_has_header(p, &tip) {
                continue;
            }
            let m = match self.headers_to_announce(p, tip) {
                Some(hs) if p.prefers_headers => Message::Headers(hs),
                _ => Message::Inv(vec![Inv { kind: InvKind::Block, hash: tip.0 }]),
            };
            if matches!(m, Message::Headers(_)) {
                if let Some(p) = self.peers.get_mut(&id) {
                    p.best_header_sent = Some(tip);
                }
            }
            self.send(id, &m);
        }
    }

    pub(super) fn tx(&mut self, id: u64, tx: LedgerTx) {
        let LedgerTx::Transfer(t) = tx else {
            return self.punish(id, "a coinbase relayed as a transaction");
        };
        let txid = tx.txid();
        if self.mempool.contains(&txid) || self.rejected_txs.contains(&txid) || self.orphans.contains_key(&txid) {
            return;
        }
        match self.accept_tx(t, Some(id)) {
            Ok(_) => {
                if let Some(p) = self.peers.get_mut(&id) {
                    p.last_tx_at = Some(Instant::now());
                }
            }
            Err(MempoolError::Invalid(why)) => self.punish(id, &format!("transaction: {why}")),
            Err(e @ (MempoolError::NonceGap { .. } | MempoolError::Funds { .. })) => {
                // It may depend on what has not arrived yet (its predecessor, or the block that
                // funds it): kept as an orphan if its signature holds, retried later.
                if let Err(e) = crate::consensus::ledger::transfer_signature_is_valid(&t, 0) {
                    return self.punish(id, &format!("transaction: {e}"));
                }
                tracing::debug!(peer = id, %txid, "transaction held as an orphan: {e}");
                self.add_orphan(txid, t);
            }
            Err(e) => tracing::debug!(peer = id, "transaction not accepted: {e}"),
        }
    }

    /// Holds an orphan transfer, evicting the oldest when [`MAX_ORPHAN_TXS`] are held.
    fn add_orphan(&mut self, txid: Txid, t: Transfer) {
        if self.orphans.len() >= MAX_ORPHAN_TXS {
            if let Some(oldest) = self.orphans.iter().min_by_key(|(id, (_, at))| (*at, **id)).map(|(id, _)| *id) {
                self.orphans.remove(&oldest);
            }
        }
        self.orphans.insert(txid, (t, Instant::now()));
    }

    /// Offers the orphan transfers (of `sender` only, or all) to the pool again, senders' nonces
    /// in order, until none goes in; those that went in are relayed, those that still lack what
    /// they depend on stay, the rest are dropped.
    pub(super) fn retry_orphans(&mut self, sender: Option<AccountKey>) {
        loop {
            let mut batch: Vec<(Txid, Transfer)> = self
                .orphans
                .iter()
                .filter(|(_, (t, _))| sender.is_none_or(|s| t.from == s))
                .map(|(id, (t, _))| (*id, *t))
                .collect();
            batch.sort_by_key(|(_, t)| (t.from, t.nonce));
            let mut progress = false;
            for (id, t) in batch {
                // Signatures were checked when they arrived; not durable: nobody waits on them.
                match self.admit(t, None, false, false) {
                    Ok(_) => {
                        self.orphans.remove(&id);
                        progress = true;
                    }
                    Err(MempoolError::NonceGap { .. } | MempoolError::Funds { .. }) => {}
                    Err(e) => {
                        tracing::debug!(txid = %id, "orphan transfer dropped: {e}");
                        self.orphans.remove(&id);
                    }
                }
            }
            if !progress {
                return;
            }
        }
    }

    /// Takes a transfer into the mempool and relays it: from RPC (`from: None`, made durable
    /// before the caller is answered) or from peer `from`.
    pub(super) fn accept_tx(&mut self, t: Transfer, from: Option<u64>) -> Result<Txid, MempoolError> {
        let r = self.admit(t, from, true, from.is_none());
        if r.is_ok() && !self.orphans.is_empty() {
            self.retry_orphans(Some(t.from));
        }
        r
    }

    /// [`Mempool::add`](super::mempool::Mempool::add), then persistence (`durable`: synced before
    /// returning, for an RPC caller about to be told it was accepted) and relay to every ready peer
    /// but `from`.
    fn admit(
        &mut self,
        t: Transfer,
        from: Option<u64>,
        verify_signature: bool,
        durable: bool,
    ) -> Result<Txid, MempoolError> {
        let r = self.mempool.add(t, &self.chain.follower().state, verify_signature);
        match &r {
            Ok(txid) => {
                tracing::debug!(txid = %txid, "transaction accepted");
                self.persist_mempool(durable);
                let ids: Vec<u64> =
                    self.peers.iter().filter(|(i, p)| p.ready() && Some(**i) != from).map(|(i, _)| *i).collect();
                for i in ids {
                    self.send(i, &Message::Inv(vec![Inv { kind: InvKind::Tx, hash: txid.0 }]));
                }
                if self.template_due.is_none() {
                    self.template_due = Some(Instant::now() + Duration::from_millis(500));
                }
            }
            Err(MempoolError::Duplicate) => {}
            Err(MempoolError::Invalid(_)) => {
                if self.rejected_txs.len() > 50_000 {
                    self.rejected_txs.clear();
                }
                self.rejected_txs.insert(LedgerTx::Transfer(t).txid());
            }
            Err(_) => {}
        }
        r
    }
}
