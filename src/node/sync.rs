//! Headers-first sync and block download (run on the chain thread): asking peers for headers,
//! indexing them, spreading block requests over the peers that have them, storing and connecting
//! the blocks that arrive, and what follows a tip change.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::{unix_now, Node, MAX_BLOCKS_IN_FLIGHT};
use crate::chain::{Accepted, BlockError, HeaderError, TipChange, BAN_SCORE};
use crate::ledger::block::LedgerBlock;
use crate::net::message::{Inv, InvKind, Message, MAX_HEADERS};
use crate::primitives::BlockHash;

impl Node {
    pub(super) fn maybe_start(&mut self, id: u64) {
        let Some(p) = self.peers.get(&id) else { return };
        if !p.ready() {
            return;
        }
        let v = p.version.as_ref().expect("ready");
        tracing::info!(peer = id, addr = %p.conn.addr, height = v.height, agent = %v.user_agent, "handshake done");
        self.ask_headers(id, None);
        // Offer the mempool in dependency order (each sender's transfers by nonce), so the peer
        // can take each one as it arrives; `inv` of at most 1,000 txids (33 kB) per message, and its
        // `getdata` answers are bounded in bytes by the send queue.
        let items: Vec<Inv> =
            self.mempool.txids_in_order().into_iter().map(|h| Inv { kind: InvKind::Tx, hash: h.0 }).collect();
        self.send_inv(id, &items);
    }

    /// Sends `getheaders` (default locator: from the parent of the best header), one at a time per
    /// peer: while one is out (up to 10 s), another request is remembered and sent after the
    /// answer, so several announcements do not start parallel header streams.
    ///
    /// The locator starts one below the best header so that a peer that has the best header
    /// answers with at least that header: that is how we learn it has the blocks (a node that
    /// held a peer's headers but not its blocks used to get an empty answer from every other peer
    /// and stall until a new block was announced).
    pub(super) fn ask_headers(&mut self, id: u64, locator: Option<Vec<BlockHash>>) {
        let Some(p) = self.peers.get_mut(&id) else { return };
        if p.headers_asked.is_some_and(|at| at.elapsed() < Duration::from_secs(10)) {
            p.headers_wanted = true;
            return;
        }
        let now = Instant::now();
        p.headers_asked = Some(now);
        p.headers_last = Some(now);
        p.headers_wanted = false;
        let locator = locator.unwrap_or_else(|| {
            let best = self.chain.best_header();
            let from = match self.chain.entry(&best) {
                Some(e) if e.height > 0 => e.header.prev_blockhash,
                _ => best,
            };
            self.chain.locator_from(&from)
        });
        self.send(id, &Message::GetHeaders { locator, stop: BlockHash([0; 32]) });
    }

    pub(super) fn headers(&mut self, id: u64, hs: Vec<crate::primitives::BlockHeader>) {
        let (wanted, asked) = match self.peers.get_mut(&id) {
            Some(p) => (std::mem::take(&mut p.headers_wanted), p.headers_asked.take()),
            None => return,
        };
        let full = hs.len() == MAX_HEADERS as usize;
        let last = self.accept_headers(id, &hs, asked);
        let Some(p) = self.peers.get_mut(&id) else { return };
        // Headers that did not connect ask for a fresh locator-based request.
        let wanted = wanted || std::mem::take(&mut p.headers_wanted);
        match last {
            Some(last) if full => self.ask_headers(id, Some(vec![last])),
            _ if wanted => self.ask_headers(id, None),
            _ => {}
        }
        self.request_blocks();
    }

    /// Checks and indexes a `headers` message; returns its last hash (None: empty, refused, or
    /// not connecting). `asked`: when our `getheaders` to this peer went out, if one was
    /// outstanding when the message arrived.
    fn accept_headers(
        &mut self,
        id: u64,
        hs: &[crate::primitives::BlockHeader],
        asked: Option<Instant>,
    ) -> Option<BlockHash> {
        if hs.is_empty() {
            return None;
        }
        for w in hs.windows(2) {
            if w[1].prev_blockhash != w[0].block_hash() {
                self.misbehaving(id, 20, "non-contiguous headers (ignored)");
                return None;
            }
        }
        let now = unix_now();
        let tip_work = self.chain.follower().chainwork;
        let mut last = None;
        let mut low = 0u64;
        for (i, h) in hs.iter().enumerate() {
            match self.chain.accept_header(h, now) {
                Ok((hash, new)) => {
                    if new && self.chain.entry(&hash).is_some_and(|e| e.chainwork <= tip_work) {
                        low += 1;
                    }
                    last = Some(hash);
                }
                Err(HeaderError::UnknownParent(_)) if i == 0 => {
                    let p = self.peers.get_mut(&id).expect("peer");
                    p.headers_wanted = true;
                    if asked.is_some() {
                        // An announcement racing our request (an honest peer that reorganized
                        // announces blocks whose parents our request will bring): not counted, and
                        // the request is still out.
                        p.headers_asked = asked;
                        return None;
                    }
                    p.unconnecting += 1;
                    if p.unconnecting > 8 {
                        p.unconnecting = 0;
                        self.misbehaving(id, 20, "9 headers messages in a row that do not connect, none asked for");
                    }
                    return None;
                }
                Err(HeaderError::Invalid(e)) if e.depends_on_local_clock() => {
                    tracing::info!(peer = id, "header dated more than 2 hours ahead of our clock: ignored");
                    break;
                }
                Err(e) => {
                    let score = e.misbehavior_score();
                    if score > 0 {
                        self.misbehaving(id, score, &format!("header {}: {e}", h.block_hash()));
                    }
                    return None;
                }
            }
        }
        let last = last?;
        let p = self.peers.get_mut(&id).expect("peer");
        p.unconnecting = 0;
        p.low_work_headers += low;
        if p.low_work_headers > self.cfg.low_work_headers {
            let n = p.low_work_headers;
            self.punish(id, &format!("low-work header spam ({n} headers with no more work than our tip)"));
            return None;
        }
        self.peer_has(id, last);
        Some(last)
    }

    /// Records that peer `id` has block `hash` (and its ancestors): it becomes the peer's best
    /// known block when it has more work than the one recorded.
    pub(super) fn peer_has(&mut self, id: u64, hash: BlockHash) {
        let Some(p) = self.peers.get_mut(&id) else { return };
        // It has them now, whatever it answered before.
        if !p.not_found.is_empty() {
            let chain = &self.chain;
            p.not_found.retain(|h, _| !chain.is_ancestor(h, &hash));
        }
        let better = p
            .best_known
            .and_then(|b| self.chain.entry(&b))
            .is_none_or(|b| self.chain.entry(&hash).is_some_and(|e| e.chainwork > b.chainwork));
        if better {
            p.best_known = Some(hash);
        }
    }

    /// Assigns missing blocks to peers that have them, at most [`MAX_BLOCKS_IN_FLIGHT`] per
    /// peer, spread over peers: first those on the way to the best header, then those on the way
    /// to each peer's best known block (a heavier branch than our tip that the best header's
    /// announcer cannot deliver), most work first.
    pub(super) fn request_blocks(&mut self) {
        let in_flight: HashSet<BlockHash> = self.peers.values().flat_map(|p| p.in_flight.keys().copied()).collect();
        let capacity: usize = self
            .peers
            .values()
            .filter(|p| p.ready())
            .map(|p| MAX_BLOCKS_IN_FLIGHT - p.in_flight.len().min(MAX_BLOCKS_IN_FLIGHT))
            .sum();
        if capacity == 0 {
            return;
        }
        let tip_work = self.chain.follower().chainwork;
        let mut targets: Vec<BlockHash> = vec![self.chain.best_header()];
        for p in self.peers.values() {
            if let Some(b) = p.best_known {
                if !targets.contains(&b) && self.chain.entry(&b).is_some_and(|e| e.chainwork > tip_work) {
                    targets.push(b);
                }
            }
        }
        targets.sort_by_key(|t| std::cmp::Reverse(self.chain.entry(t).map(|e| e.chainwork)));
        let mut asks: HashMap<u64, Vec<Inv>> = HashMap::new();
        let mut assigned: HashSet<BlockHash> = HashSet::new();
        let now = Instant::now();
        for target in targets {
            let needed = self.chain.blocks_to_download(Some(&target), capacity.min(1024), &|h| {
                in_flight.contains(h) || assigned.contains(h)
            });
            for h in needed {
                let mut best: Option<(usize, u64)> = None;
                for (id, p) in &self.peers {
                    if !p.ready() || p.in_flight.len() >= MAX_BLOCKS_IN_FLIGHT || p.not_found.contains_key(&h) {
                        continue;
                    }
                    let has = p.best_known.is_some_and(|b| self.chain.is_ancestor(&h, &b));
                    if has && best.is_none_or(|(n, _)| p.in_flight.len() < n) {
                        best = Some((p.in_flight.len(), *id));
                    }
                }
                let Some((_, id)) = best else { continue };
                self.peers.get_mut(&id).expect("peer").in_flight.insert(h, now);
                assigned.insert(h);
                asks.entry(id).or_default().push(Inv { kind: InvKind::Block, hash: h.0 });
            }
        }
        for (id, items) in asks {
            self.send(id, &Message::GetData(items));
        }
    }

    /// Stores and connects a block from a peer (`Some(id)`), the miner or `submitblock` (`None`).
    pub(super) fn submit(&mut self, block: &LedgerBlock, from: Option<u64>) -> Result<Accepted, BlockError> {
        let hash = block.header.block_hash();
        let r = self.chain.accept_block(block, unix_now());
        if let Ok(Accepted::New) = r {
            if let Some(id) = from {
                if self.block_source.len() >= 10_000 {
                    self.block_source.clear();
                }
                self.block_source.insert(hash, id);
            }
            match self.chain.activate() {
                Ok(change) => self.after_tip_change(change),
                Err(e) => {
                    self.fatal = Some(format!("store failure: {e}"));
                }
            }
        }
        if let Err(BlockError::Store(e)) = &r {
            self.fatal = Some(format!("store failure: {e}"));
        }
        r
    }

    pub(super) fn block(&mut self, id: u64, block: LedgerBlock) {
        let hash = block.header.block_hash();
        let mut requested = false;
        if let Some(p) = self.peers.get_mut(&id) {
            requested = p.in_flight.remove(&hash).is_some();
            p.blocks_received += 1;
        }
        if !requested {
            // Unrequested (or requested so long ago that the request was given up): kept only if
            // it would make a heavier chain than the tip, so nobody can fill the disk with cheap
            // side branches (if it is needed after all, the download walk asks for it again).
            let tip_work = self.chain.follower().chainwork;
            let work = block.header.bits.block_work();
            let heavier = self
                .chain
                .entry(&block.header.prev_blockhash)
                .is_some_and(|p| p.chainwork.checked_add(work).is_some_and(|w| w > tip_work));
            if !heavier && self.chain.entry(&block.header.prev_blockhash).is_some() {
                tracing::debug!(peer = id, %hash, "unrequested block with no more work than the tip: ignored");
                return;
            }
        }
        match self.submit(&block, Some(id)) {
            Ok(accepted) => {
                if matches!(accepted, Accepted::New) {
                    if let Some(p) = self.peers.get_mut(&id) {
                        p.last_block_at = Some(Instant::now());
                    }
                }
                self.peer_has(id, hash);
                self.request_blocks();
            }
            Err(BlockError::Header(HeaderError::UnknownParent(_))) => self.ask_headers(id, None),
            Err(e) if e.misbehavior_score() >= BAN_SCORE => self.punish(id, &format!("block {hash}: {e}")),
            Err(BlockError::Header(HeaderError::Invalid(_))) => {
                // Dated too far ahead of our clock, which may be the one that is wrong: ignore, do not blame.
                tracing::info!(peer = id, %hash, "block dated more than 2 hours ahead of our clock: ignored");
            }
            // Our own store failed (logged where it happened): not the peer's doing.
            Err(_) => {}
        }
    }

    pub(super) fn after_tip_change(&mut self, change: TipChange) {
        for (hash, e) in &change.invalid {
            if let Some(id) = self.block_source.remove(hash) {
                self.punish(id, &format!("block {hash} breaks {}: {e}", e.rule()));
            }
        }
        if !change.moved() {
            return;
        }
        self.note_tip_change_for_dashboard(&change);
        for b in &change.connected {
            self.block_source.remove(&b.header.block_hash());
        }
        let readded = self.mempool.update(&change.disconnected, &self.chain.follower().state);
        if !self.held.is_empty() {
            self.readmit_held();
        }
        if !self.orphans.is_empty() {
            self.retry_orphans(None);
        }
        self.persist_mempool(false);
        let tip = self.chain.tip();
        let root = self.chain.state_root();
        let headers = self.chain.entry(&self.chain.best_header()).map(|e| e.height).unwrap_or(0);
        let height = self.chain.height();
        let downloading = self.peers.values().any(|p| !p.in_flight.is_empty());
        if height + 1 >= headers || !downloading {
            tracing::info!(
                height,
                %tip,
                connected = change.connected.len(),
                disconnected = change.disconnected.len(),
                state_root = %root,
                mempool = self.mempool.len(),
                "new tip"
            );
        } else if self.last_progress.elapsed() >= Duration::from_secs(1) {
            // Catching up: one line a second instead of one per block.
            self.last_progress = Instant::now();
            let pct = 100.0 * height as f64 / headers.max(1) as f64;
            tracing::info!(height, headers, progress = %format!("{pct:.1}%"), %tip, "syncing");
        } else {
            tracing::debug!(height, %tip, "new tip");
        }
        self.announce_tip(&change, tip, &readded);
        self.template_due = Some(Instant::now());
    }
}
