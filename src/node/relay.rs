//! Announcements and transaction relay (run on the chain thread): answering `inv` and `getdata`,
//! taking transactions from peers and RPC into the mempool and announcing them, and announcing new
//! tips.

use std::time::{Duration, Instant};

use super::mempool::MempoolError;
use super::{Node, MAX_BLOCKS_PER_GETDATA};
use crate::chain::TipChange;
use crate::ledger::tx::LedgerTx;
use crate::net::message::{Inv, InvKind, Message};
use crate::primitives::{BlockHash, Txid};
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

    /// Announces a tip change to the ready peers (called by `after_tip_change`).
    pub(super) fn announce_tip(&mut self, change: &TipChange, tip: BlockHash, readded: &[Txid]) {
        // Announce: the new blocks' headers (at most 8), or the tip by inv.
        let headers: Vec<_> = change.connected.iter().map(|b| b.header).collect();
        let ids: Vec<u64> = self.peers.iter().filter(|(_, p)| p.ready()).map(|(id, _)| *id).collect();
        for id in ids {
            if !readded.is_empty() {
                // Transactions of disconnected blocks are pending again: offer them to everyone.
                let items: Vec<Inv> = readded.iter().take(1000).map(|h| Inv { kind: InvKind::Tx, hash: h.0 }).collect();
                self.send(id, &Message::Inv(items));
            }
            let knows =
                self.peers.get(&id).and_then(|p| p.best_known).is_some_and(|b| self.chain.is_ancestor(&tip, &b));
            if knows {
                continue;
            }
            let m = if headers.len() <= 8 && change.disconnected.is_empty() {
                Message::Headers(headers.clone())
            } else {
                Message::Inv(vec![Inv { kind: InvKind::Block, hash: tip.0 }])
            };
            self.send(id, &m);
        }
    }

    pub(super) fn tx(&mut self, id: u64, tx: LedgerTx) {
        let LedgerTx::Transfer(t) = tx else {
            return self.punish(id, "a coinbase relayed as a transaction");
        };
        let txid = tx.txid();
        if self.mempool.contains(&txid) || self.rejected_txs.contains(&txid) {
            return;
        }
        match self.accept_tx(t, Some(id)) {
            Ok(_) => {}
            Err(MempoolError::Invalid(why)) => self.punish(id, &format!("transaction: {why}")),
            Err(e) => tracing::debug!(peer = id, "transaction not accepted: {e}"),
        }
    }

    pub(super) fn accept_tx(
        &mut self,
        t: crate::ledger::tx::Transfer,
        from: Option<u64>,
    ) -> Result<Txid, MempoolError> {
        let r = self.mempool.add(t, &self.chain.follower().state, true);
        match &r {
            Ok(txid) => {
                tracing::debug!(txid = %txid, "transaction accepted");
                self.persist_mempool(from.is_none());
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
