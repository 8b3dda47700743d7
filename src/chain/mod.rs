//! The node's block tree: the block index (every header seen, with its height, chain work and
//! validity), fork choice (the tip is the valid chain with the most work; ties go to the branch
//! seen first) and reorgs (undo to the fork point, connect the heavier branch, commit both in one
//! store transaction). docs/CONSENSUS.md, "Fork choice".
//!
//! [`Chain`] is owned by one thread (the node's chain thread); peers, RPC and the miner talk to it
//! through channels.

use std::collections::{HashMap, HashSet};
use std::path::Path;

pub mod follower;

pub use follower::Follower;

use crate::consensus::ledger::{
    check_block_context_free, check_header_context_free, check_header_contextual, check_signatures_with, next_bits,
    AsertAnchor, ConsensusError, ParentContext, ASERT_ANCHOR_HEIGHT,
};
use crate::consensus::LedgerParams;
use crate::ledger::block::LedgerBlock;
use crate::primitives::{BlockHash, BlockHeader, CompactTarget, U256};
use crate::store::{BlockStatus, Connected, IndexRecord, Store, StoreError};

/// One block index entry.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    /// The header.
    pub header: BlockHeader,
    /// Height.
    pub height: u32,
    /// Work of the chain up to and including this block.
    pub chainwork: U256,
    /// What is known of it.
    pub status: BlockStatus,
    /// Arrival order (fork choice breaks work ties by first seen).
    pub seq: u64,
    /// An earlier ancestor (at [`skip_height`]), so walking back takes O(log n) steps.
    pub skip: Option<BlockHash>,
}

/// Bitcoin Core's `GetSkipHeight` (src/chain.cpp): the height an entry's skip pointer targets.
fn skip_height(height: u32) -> u32 {
    fn invert_lowest_one(n: u32) -> u32 {
        n & n.wrapping_sub(1)
    }
    if height < 2 {
        return 0;
    }
    if height & 1 == 1 {
        invert_lowest_one(invert_lowest_one(height - 1)) + 1
    } else {
        invert_lowest_one(height)
    }
}

impl Entry {
    fn record(&self) -> IndexRecord {
        IndexRecord { header: self.header, height: self.height, chainwork: self.chainwork, status: self.status }
    }
}

/// Why a header was not added to the index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Its parent is not in the index (the sender should be asked for the headers between).
    #[error("its parent {0} is unknown")]
    UnknownParent(BlockHash),
    /// It or an ancestor was found invalid before.
    #[error("it or an ancestor is known to be invalid")]
    KnownInvalid,
    /// It breaks a header rule.
    #[error("invalid header: {0} ({rule})", rule = .0.rule())]
    Invalid(ConsensusError),
}

/// Why a block was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// Its header was not accepted.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// Its transactions do not match the header's merkle root (or repeat a subtree): the header may
    /// still be valid with the right transactions, so only the sender is blamed.
    #[error("mutated block: {0} ({rule})", rule = .0.rule())]
    Mutated(ConsensusError),
    /// It breaks a block rule; it and its descendants are marked invalid.
    #[error("invalid block: {0} ({rule})", rule = .0.rule())]
    Invalid(ConsensusError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The most a peer can score for misbehaviour; at this score it is banned (Bitcoin Core's
/// `DISCOURAGEMENT_THRESHOLD`).
pub const BAN_SCORE: u32 = 100;

impl HeaderError {
    /// How much a peer that sent this header misbehaved (Zebra's `misbehavior_score`, Bitcoin Core's
    /// `Misbehaving` points): 0 when it may be honest (an unknown parent is asked for; a header only
    /// too far ahead of *our* clock may be our clock's fault), [`BAN_SCORE`] for a header that breaks
    /// a rule or builds on one known invalid.
    pub fn misbehavior_score(&self) -> u32 {
        match self {
            HeaderError::UnknownParent(_) => 0,
            HeaderError::Invalid(e) if e.depends_on_local_clock() => 0,
            HeaderError::KnownInvalid | HeaderError::Invalid(_) => BAN_SCORE,
        }
    }
}

impl BlockError {
    /// How much a peer that sent this block misbehaved: its header's score, 0 for our own store's
    /// failure, [`BAN_SCORE`] for a mutated or invalid body.
    pub fn misbehavior_score(&self) -> u32 {
        match self {
            BlockError::Header(h) => h.misbehavior_score(),
            BlockError::Store(_) => 0,
            BlockError::Mutated(_) | BlockError::Invalid(_) => BAN_SCORE,
        }
    }
}

impl BlockError {
    /// The metrics label of the refusal (`powkit_chain_blocks_rejected_total{reason}`): the
    /// consensus rule's function name for a rule broken, else `unknown_parent`, `known_invalid`,
    /// `store`.
    pub fn reason(&self) -> &'static str {
        match self {
            BlockError::Header(HeaderError::UnknownParent(_)) => "unknown_parent",
            BlockError::Header(HeaderError::KnownInvalid) => "known_invalid",
            BlockError::Header(HeaderError::Invalid(e)) | BlockError::Mutated(e) | BlockError::Invalid(e) => e.rule(),
            BlockError::Store(_) => "store",
        }
    }
}

/// Counts a tip move for the metrics: blocks connected, a reorg and its depth, blocks the state
/// rules refused.
fn record_tip_change(change: &TipChange) {
    if !change.connected.is_empty() {
        ::metrics::counter!(crate::metrics::CHAIN_BLOCKS_CONNECTED).increment(change.connected.len() as u64);
    }
    if !change.disconnected.is_empty() {
        ::metrics::counter!(crate::metrics::CHAIN_REORGS).increment(1);
        ::metrics::histogram!(crate::metrics::CHAIN_REORG_DEPTH).record(change.disconnected.len() as f64);
    }
    for (_, e) in &change.invalid {
        ::metrics::counter!(crate::metrics::CHAIN_BLOCKS_REJECTED, "reason" => e.rule()).increment(1);
    }
}

/// What [`Chain::accept_block`] did with a valid-looking block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Stored now.
    New,
    /// Already stored.
    Duplicate,
}

/// How the tip moved in [`Chain::activate`].
#[derive(Debug, Default)]
pub struct TipChange {
    /// Blocks that left the main chain, tip first.
    pub disconnected: Vec<LedgerBlock>,
    /// Blocks that joined it, in order.
    pub connected: Vec<LedgerBlock>,
    /// Blocks found invalid while connecting (state rules), with the rule broken.
    pub invalid: Vec<(BlockHash, ConsensusError)>,
}

impl TipChange {
    /// Whether the tip moved.
    pub fn moved(&self) -> bool {
        !self.connected.is_empty() || !self.disconnected.is_empty()
    }
}

/// The block tree, the main chain and the replicated state at its tip.
pub struct Chain {
    params: &'static LedgerParams,
    store: Store,
    index: HashMap<BlockHash, Entry>,
    children: HashMap<BlockHash, Vec<BlockHash>>,
    main: Vec<BlockHash>,
    follower: Follower,
    best_header: BlockHash,
    candidates: HashSet<BlockHash>,
    pending: TipChange,
    seq: u64,
    /// Where block signatures are verified (CPU threads unless [`Chain::set_sig_verifier`]).
    sig_verifier: Box<dyn crate::sigs::SigVerifier>,
}

impl Chain {
    /// Opens the store in `datadir` (creating it with the genesis block) and loads the index, the
    /// main chain and the state at the stored tip.
    pub fn open(datadir: &Path, params: &'static LedgerParams) -> Result<Chain, StoreError> {
        let store = Store::open(datadir, params)?;
        let follower = Follower::from_stored(params, store.tip_state()?);
        let main = store.main_chain()?;
        let mut records = store.load_index()?;
        // Every tip move writes the index entries of the blocks it connects, so the tip is indexed.
        if !main.last().is_some_and(|t| records.iter().any(|(h, _)| h == t)) {
            return Err(StoreError {
                path: datadir.display().to_string(),
                why: "the tip has no block index entry (a store from an earlier powkit: import its chain again)".into(),
            });
        }
        records.sort_by_key(|(_, r)| r.height);
        let mut chain = Chain {
            params,
            store,
            index: HashMap::with_capacity(records.len()),
            children: HashMap::new(),
            main,
            follower,
            best_header: params.genesis.header.block_hash(),
            candidates: HashSet::new(),
            pending: TipChange::default(),
            seq: 0,
            sig_verifier: Box::new(crate::sigs::CpuSigVerifier::default()),
        };
        for (hash, rec) in records {
            chain.insert(hash, rec);
        }
        let tip_work = chain.follower.chainwork;
        let cands: Vec<BlockHash> = chain
            .index
            .iter()
            .filter(|(h, e)| {
                matches!(e.status, BlockStatus::Data | BlockStatus::Valid)
                    && e.chainwork > tip_work
                    && !chain.on_main(h)
            })
            .map(|(h, _)| *h)
            .collect();
        chain.candidates.extend(cands);
        chain.best_header = chain.compute_best_header();
        Ok(chain)
    }

    fn insert(&mut self, hash: BlockHash, rec: IndexRecord) {
        self.seq += 1;
        let skip =
            if rec.height == 0 { None } else { self.walk_back(&rec.header.prev_blockhash, skip_height(rec.height)) };
        let e = Entry {
            header: rec.header,
            height: rec.height,
            chainwork: rec.chainwork,
            status: rec.status,
            seq: self.seq,
            skip,
        };
        if self.index.insert(hash, e).is_none() && rec.height > 0 {
            self.children.entry(rec.header.prev_blockhash).or_default().push(hash);
        }
    }

    fn compute_best_header(&self) -> BlockHash {
        let mut best = *self.main.last().expect("genesis");
        let mut best_e = self.index[&best];
        for (h, e) in &self.index {
            if e.status != BlockStatus::Invalid
                && (e.chainwork > best_e.chainwork || (e.chainwork == best_e.chainwork && e.seq < best_e.seq))
            {
                best = *h;
                best_e = *e;
            }
        }
        best
    }

    /// Verifies block signatures with `verifier` from now on (a GPU, or CPU and GPU together:
    /// every verifier gives the same verdicts; the default is CPU threads).
    pub fn set_sig_verifier(&mut self, verifier: Box<dyn crate::sigs::SigVerifier>) {
        self.sig_verifier = verifier;
    }

    /// What verifies block signatures (`cpu (N threads)`, `gpu (ADAPTER)`, `all (...)`).
    pub fn sig_verifier(&self) -> String {
        self.sig_verifier.describe()
    }

    /// The chain parameters.
    pub fn params(&self) -> &'static LedgerParams {
        self.params
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The follower at the tip (state, height, chain work).
    pub fn follower(&self) -> &Follower {
        &self.follower
    }

    /// The state at the tip, for building block templates ([`crate::mine::template`]
    /// leaves it as it found it).
    pub fn follower_state_mut(&mut self) -> &mut crate::state::accounts::State {
        &mut self.follower.state
    }

    /// The state root at the tip.
    pub fn state_root(&mut self) -> crate::ledger::StateRoot {
        self.follower.state.root()
    }

    /// The tip's hash.
    pub fn tip(&self) -> BlockHash {
        self.follower.tip
    }

    /// The tip's height.
    pub fn height(&self) -> u32 {
        self.follower.height
    }

    /// The most-work header not known to be invalid (may be ahead of the tip).
    pub fn best_header(&self) -> BlockHash {
        self.best_header
    }

    /// An index entry.
    pub fn entry(&self, hash: &BlockHash) -> Option<&Entry> {
        self.index.get(hash)
    }

    /// Blocks in the index.
    pub fn index_len(&self) -> usize {
        self.index.len()
    }

    /// The main chain's block at `height`.
    pub fn hash_at(&self, height: u32) -> Option<BlockHash> {
        self.main.get(height as usize).copied()
    }

    /// Whether `hash` is on the main chain.
    pub fn on_main(&self, hash: &BlockHash) -> bool {
        self.index.get(hash).is_some_and(|e| self.main.get(e.height as usize) == Some(hash))
    }

    /// A stored block.
    pub fn block(&self, hash: &BlockHash) -> Result<Option<LedgerBlock>, StoreError> {
        self.store.block(hash)
    }

    /// The ancestor of `hash` at `height` (itself when equal), walking the index.
    pub fn ancestor(&self, hash: &BlockHash, height: u32) -> Option<BlockHash> {
        let e = self.index.get(hash)?;
        if e.height < height {
            return None;
        }
        if self.on_main(hash) {
            return self.hash_at(height);
        }
        self.walk_back(hash, height)
    }

    /// The ancestor of `hash` at `height` by skip pointers (Bitcoin Core's
    /// `CBlockIndex::GetAncestor`): O(log n) steps.
    fn walk_back(&self, hash: &BlockHash, height: u32) -> Option<BlockHash> {
        let mut h = *hash;
        let mut e = self.index.get(&h)?;
        if e.height < height {
            return None;
        }
        while e.height > height {
            let (hs, hs_prev) = (skip_height(e.height), skip_height(e.height - 1));
            let use_skip =
                e.skip.is_some() && (hs == height || (hs > height && !(hs_prev + 2 < hs && hs_prev >= height)));
            h = if use_skip { e.skip.expect("checked") } else { e.header.prev_blockhash };
            e = self.index.get(&h)?;
        }
        Some(h)
    }

    /// Whether `anc` is `desc` or one of its ancestors.
    pub fn is_ancestor(&self, anc: &BlockHash, desc: &BlockHash) -> bool {
        match self.index.get(anc) {
            Some(a) => self.ancestor(desc, a.height) == Some(*anc),
            None => false,
        }
    }

    /// The last up-to-11 block times ending with `hash`'s, oldest first.
    pub fn times_ending_at(&self, hash: &BlockHash) -> Vec<u32> {
        let mut out = Vec::with_capacity(11);
        let mut h = *hash;
        while let Some(e) = self.index.get(&h) {
            out.push(e.header.time);
            if out.len() == 11 || e.height == 0 {
                break;
            }
            h = e.header.prev_blockhash;
        }
        out.reverse();
        out
    }

    /// The bits a block on top of `parent` needs (ASERT).
    pub fn bits_after(&self, parent: &BlockHash) -> Option<CompactTarget> {
        let p = self.index.get(parent)?;
        Some(next_bits(self.params, p.height, p.header.time, self.anchor_of(parent)))
    }

    /// The ASERT anchor of the chain ending at `hash` (its block at height 1), `None` for genesis.
    pub fn anchor_of(&self, hash: &BlockHash) -> Option<AsertAnchor> {
        let a = self.ancestor(hash, ASERT_ANCHOR_HEIGHT)?;
        self.index.get(&a).map(|e| AsertAnchor::of(&e.header))
    }

    /// Checks a header against its parent in the index: proof of work, ASERT bits, median time
    /// past, the 2-hour limit (docs/CONSENSUS.md, header rules).
    pub fn check_header(&self, h: &BlockHeader, hash: &BlockHash, now: i64) -> Result<(), HeaderError> {
        let parent = self.index.get(&h.prev_blockhash).ok_or(HeaderError::UnknownParent(h.prev_blockhash))?;
        if parent.status == BlockStatus::Invalid {
            return Err(HeaderError::KnownInvalid);
        }
        check_header_context_free(h, hash, self.params).map_err(HeaderError::Invalid)?;
        let recent_times = self.times_ending_at(&h.prev_blockhash);
        let ctx = ParentContext {
            height: parent.height,
            time: parent.header.time,
            recent_times: &recent_times,
            anchor: self.anchor_of(&h.prev_blockhash),
        };
        check_header_contextual(h, &ctx, self.params, now).map_err(HeaderError::Invalid)?;
        Ok(())
    }

    /// Adds a header to the index after [`Chain::check_header`]; returns its hash and whether it
    /// was new. A header that breaks a rule after passing proof of work is remembered as invalid.
    pub fn accept_header(&mut self, h: &BlockHeader, now: i64) -> Result<(BlockHash, bool), HeaderError> {
        let hash = h.block_hash();
        if let Some(e) = self.index.get(&hash) {
            return if e.status == BlockStatus::Invalid { Err(HeaderError::KnownInvalid) } else { Ok((hash, false)) };
        }
        let checked = self.check_header(h, &hash, now);
        if let Err(HeaderError::UnknownParent(_) | HeaderError::KnownInvalid) = checked {
            return checked.map(|()| (hash, false));
        }
        let p = self.index[&h.prev_blockhash];
        let mut rec = IndexRecord {
            header: *h,
            height: p.height + 1,
            chainwork: p.chainwork.checked_add(h.bits.block_work()).unwrap_or(U256::MAX),
            status: BlockStatus::Header,
        };
        if let Err(HeaderError::Invalid(e)) = checked {
            // Remembered only when it cost proof of work and will not become valid with time.
            if !e.is_proof_of_work_failure() && !e.depends_on_local_clock() {
                rec.status = BlockStatus::Invalid;
                self.insert(hash, rec);
            }
            return Err(HeaderError::Invalid(e));
        }
        self.insert(hash, rec);
        let best = self.index[&self.best_header];
        if rec.chainwork > best.chainwork {
            self.best_header = hash;
        }
        Ok((hash, true))
    }

    /// Checks a block's body (every rule that needs no state: size, coinbase first and only,
    /// merkle root, every signature in one batch) and stores it with its index entry (a block on
    /// the tip is connected at once, in the same commit). The caller then runs
    /// [`Chain::activate`], which reports every tip move. A block that breaks a body rule is marked invalid with its
    /// descendants, except a merkle mismatch (the header may be fine with other transactions).
    pub fn accept_block(&mut self, block: &LedgerBlock, now: i64) -> Result<Accepted, BlockError> {
        let t0 = std::time::Instant::now();
        let r = self.accept_block_timed(block, now);
        match &r {
            Ok(Accepted::New) => {
                ::metrics::histogram!(crate::metrics::CHAIN_BLOCK_VALIDATION).record(t0.elapsed().as_secs_f64());
                let transfers = block.txs.len().saturating_sub(1) as u64;
                ::metrics::counter!(crate::metrics::CHAIN_SIGNATURES_VERIFIED, "backend" => self.sig_verifier.kind())
                    .increment(transfers);
            }
            Ok(Accepted::Duplicate) => {}
            Err(e) => {
                ::metrics::counter!(crate::metrics::CHAIN_BLOCKS_REJECTED, "reason" => e.reason()).increment(1);
            }
        }
        r
    }

    fn accept_block_timed(&mut self, block: &LedgerBlock, now: i64) -> Result<Accepted, BlockError> {
        let hash = block.header.block_hash();
        match self.index.get(&hash).map(|e| e.status) {
            Some(BlockStatus::Invalid) => return Err(HeaderError::KnownInvalid.into()),
            Some(BlockStatus::Data | BlockStatus::Valid) => return Ok(Accepted::Duplicate),
            Some(BlockStatus::Header) => {}
            None => {
                self.accept_header(&block.header, now)?;
            }
        }
        let body = check_block_context_free(block, block.encoded_len())
            .and_then(|()| check_signatures_with(&[block], &*self.sig_verifier).map_err(|(_, e)| e.into()));
        if let Err(e) = body {
            if e.is_mutation() {
                return Err(BlockError::Mutated(e));
            }
            self.mark_invalid(&hash)?;
            return Err(BlockError::Invalid(e));
        }
        if block.header.prev_blockhash == self.follower.tip && self.extends_tip(block, &hash)? {
            return Ok(Accepted::New);
        }
        let e = self.index.get_mut(&hash).expect("accepted header");
        e.status = BlockStatus::Data;
        let rec = e.record();
        // Header-only ancestors are stored with it, so the block keeps its place in the tree
        // across a restart (header-only entries otherwise live in memory).
        let mut ancestors = Vec::new();
        let mut h = rec.header.prev_blockhash;
        while let Some(a) = self.index.get(&h) {
            if a.status != BlockStatus::Header || ancestors.len() >= 100_000 {
                break;
            }
            ancestors.push((h, a.record()));
            h = a.header.prev_blockhash;
        }
        self.store.put_block(&hash, block, rec, &ancestors)?;
        if rec.chainwork > self.follower.chainwork {
            self.candidates.insert(hash);
        }
        Ok(Accepted::New)
    }

    /// The common case, a block on the tip: connected at once, and stored together with the tip
    /// move in one transaction (one commit instead of two). Returns false, changing nothing, when
    /// it breaks a state rule (the caller stores it and `activate` marks it).
    fn extends_tip(&mut self, block: &LedgerBlock, hash: &BlockHash) -> Result<bool, StoreError> {
        let Ok(undo) = self.follower.connect_checked_header(block, hash) else { return Ok(false) };
        let record = IndexRecord { status: BlockStatus::Valid, ..self.index[hash].record() };
        let connected = [Connected { hash: *hash, record, undo: &undo }];
        if let Err(e) =
            self.store.move_tip(&[], &connected, Some(block), &self.follower.stored_tip(), &self.follower.state)
        {
            // Keep memory equal to the store.
            self.disconnect_tip(undo, block);
            return Err(e);
        }
        self.joined_main(hash);
        self.pending.connected.push(block.clone());
        Ok(true)
    }

    /// In-memory bookkeeping once `hash` is connected and committed as the next main-chain block.
    fn joined_main(&mut self, hash: &BlockHash) {
        self.main.push(*hash);
        if let Some(e) = self.index.get_mut(hash) {
            e.status = BlockStatus::Valid;
        }
        self.candidates.remove(hash);
        if self.index[&self.best_header].chainwork < self.follower.chainwork {
            self.best_header = self.follower.tip;
        }
    }

    /// Marks `hash` and every descendant invalid, in memory and in the store.
    fn mark_invalid(&mut self, hash: &BlockHash) -> Result<(), StoreError> {
        let mut stack = vec![*hash];
        let mut records = Vec::new();
        while let Some(h) = stack.pop() {
            if let Some(e) = self.index.get_mut(&h) {
                records.push((h, IndexRecord { status: BlockStatus::Invalid, ..e.record() }));
                e.status = BlockStatus::Invalid;
            }
            self.candidates.remove(&h);
            if let Some(c) = self.children.get(&h) {
                stack.extend(c.iter().copied());
            }
        }
        self.store.put_index(&records)?;
        let best = self.index[&self.best_header];
        if best.status == BlockStatus::Invalid {
            self.best_header = self.compute_best_header();
        }
        Ok(())
    }

    /// The path from the main chain to `hash` (fork point excluded), if every block on it is
    /// stored and none is invalid; `Err(true)` when one is invalid, `Err(false)` when one is missing.
    fn path_to(&self, hash: &BlockHash) -> Result<Vec<BlockHash>, bool> {
        let mut path = Vec::new();
        let mut h = *hash;
        while !self.on_main(&h) {
            let e = self.index.get(&h).ok_or(false)?;
            match e.status {
                BlockStatus::Invalid => return Err(true),
                BlockStatus::Header => return Err(false),
                _ => {}
            }
            path.push(h);
            h = e.header.prev_blockhash;
        }
        path.reverse();
        Ok(path)
    }

    /// Moves the tip to the valid chain with the most work among the stored blocks: for each
    /// heavier candidate, undo to the fork point and connect its branch; a block that breaks a
    /// state rule is marked invalid (with its descendants), the old tip is restored and the next
    /// candidate tried. Each completed move is one store transaction.
    pub fn activate(&mut self) -> Result<TipChange, StoreError> {
        let mut change = std::mem::take(&mut self.pending);
        loop {
            let tip_work = self.follower.chainwork;
            let mut best: Option<(BlockHash, Vec<BlockHash>)> = None;
            let mut drop = Vec::new();
            let mut invalid = Vec::new();
            for c in &self.candidates {
                let e = self.index[c];
                if e.chainwork <= tip_work || self.on_main(c) {
                    drop.push(*c);
                    continue;
                }
                let better = match &best {
                    None => true,
                    Some((b, _)) => {
                        let be = self.index[b];
                        e.chainwork > be.chainwork || (e.chainwork == be.chainwork && e.seq < be.seq)
                    }
                };
                if !better {
                    continue;
                }
                match self.path_to(c) {
                    Ok(path) => best = Some((*c, path)),
                    Err(true) => invalid.push(*c),
                    Err(false) => {}
                }
            }
            for c in drop {
                self.candidates.remove(&c);
            }
            for c in invalid {
                self.mark_invalid(&c)?;
            }
            let Some((_, path)) = best else { break };
            self.reorg_to(&path, &mut change)?;
        }
        record_tip_change(&change);
        if change.moved() {
            // Here as well as in the node's periodic gauges, so a scrape never sees the
            // blocks-connected counter ahead of the height.
            ::metrics::gauge!(crate::metrics::CHAIN_HEIGHT).set(self.height() as f64);
            let headers = self.index.get(&self.best_header).map_or(0, |e| e.height);
            ::metrics::gauge!(crate::metrics::CHAIN_HEADERS).set(headers.max(self.height()) as f64);
        }
        Ok(change)
    }

    fn load(&self, hash: &BlockHash) -> Result<LedgerBlock, StoreError> {
        self.store.block(hash)?.ok_or_else(|| StoreError {
            path: "chain.redb".into(),
            why: format!("block {hash} is indexed as stored but missing"),
        })
    }

    fn disconnect_tip(&mut self, undo: crate::state::accounts::Undo, block: &LedgerBlock) {
        let parent = block.header.prev_blockhash;
        let pw = self.index[&parent].chainwork;
        let times = self.times_ending_at(&parent);
        self.follower.disconnect(block, undo, pw, times);
    }

    fn reorg_to(&mut self, path: &[BlockHash], change: &mut TipChange) -> Result<(), StoreError> {
        let first = self.index[&path[0]];
        let fork_height = first.height - 1;
        // Undo to the fork point.
        let mut gone = Vec::new();
        for height in (fork_height + 1..=self.follower.height).rev() {
            let hash = self.main[height as usize];
            let block = self.load(&hash)?;
            let undo = self.store.undo(&hash)?;
            self.disconnect_tip(undo.clone(), &block);
            gone.push((hash, height, undo, block));
        }
        // Connect the branch.
        let mut added: Vec<(BlockHash, LedgerBlock, crate::state::accounts::Undo)> = Vec::new();
        let mut failed = None;
        for hash in path {
            let block = self.load(hash)?;
            match self.follower.connect_checked_header(&block, hash) {
                Ok(undo) => added.push((*hash, block, undo)),
                Err(e) => {
                    failed = Some((*hash, e));
                    break;
                }
            }
        }
        if let Some((bad, e)) = failed {
            // Back to where we were: undo the branch, reconnect the old blocks.
            for (_, block, undo) in added.into_iter().rev() {
                self.disconnect_tip(undo, &block);
            }
            for (hash, _, _, block) in gone.iter().rev() {
                self.follower.connect_checked_header(block, hash).map_err(|e| StoreError {
                    path: "chain.redb".into(),
                    why: format!("reconnecting main chain block {hash} failed: {e}"),
                })?;
            }
            tracing::warn!(block = %bad, rule = e.rule(), "block breaks a state rule: {e}");
            self.mark_invalid(&bad)?;
            change.invalid.push((bad, e));
            return Ok(());
        }
        let disconnected: Vec<(BlockHash, u32, crate::state::accounts::Undo)> =
            gone.iter().map(|(h, height, u, _)| (*h, *height, u.clone())).collect();
        let connected: Vec<Connected<'_>> =
            added.iter().map(|(h, _, u)| Connected { hash: *h, record: self.index[h].record(), undo: u }).collect();
        self.store.move_tip(&disconnected, &connected, None, &self.follower.stored_tip(), &self.follower.state)?;
        self.main.truncate(fork_height as usize + 1);
        for (h, _, _) in &added {
            self.joined_main(h);
        }
        if !gone.is_empty() {
            tracing::info!(
                disconnected = gone.len(),
                connected = added.len(),
                fork_height,
                "reorganized to the heavier branch"
            );
        }
        change.disconnected.extend(gone.into_iter().map(|(_, _, _, b)| b));
        change.connected.extend(added.into_iter().map(|(_, b, _)| b));
        Ok(())
    }

    /// Block locator from the tip: the last 10 blocks, then exponentially spaced, then genesis.
    pub fn locator(&self) -> Vec<BlockHash> {
        self.locator_from(&self.follower.tip)
    }

    /// Block locator from any indexed block (the best header, when headers run ahead of blocks).
    pub fn locator_from(&self, from: &BlockHash) -> Vec<BlockHash> {
        let Some(e) = self.index.get(from) else { return vec![self.main[0]] };
        let mut out = Vec::new();
        let mut h = e.height as i64;
        let mut step = 1i64;
        while h > 0 {
            if let Some(a) = self.ancestor(from, h as u32) {
                out.push(a);
            }
            if out.len() >= 10 {
                step *= 2;
            }
            h -= step;
        }
        out.push(self.main[0]);
        out
    }

    /// The main chain's headers after the first locator hash on it (genesis if none), up to
    /// `stop` (inclusive) or `max`.
    pub fn headers_after(&self, locator: &[BlockHash], stop: &BlockHash, max: usize) -> Vec<BlockHeader> {
        let start = locator.iter().find(|h| self.on_main(h)).map(|h| self.index[h].height + 1).unwrap_or(1);
        let mut out = Vec::new();
        for height in start..=self.follower.height {
            let hash = self.main[height as usize];
            out.push(self.index[&hash].header);
            if out.len() >= max || hash == *stop {
                break;
            }
        }
        out
    }

    /// Blocks to download: those on the way from the main chain to `target` (default: the best
    /// header) that are not stored, lowest first, at most `max`, skipping `skip`. Stored blocks on
    /// the way are stepped over, so a gap left by a lost request is found again.
    pub fn blocks_to_download(
        &self,
        target: Option<&BlockHash>,
        max: usize,
        skip: &dyn Fn(&BlockHash) -> bool,
    ) -> Vec<BlockHash> {
        let mut missing = Vec::new();
        let mut h = *target.unwrap_or(&self.best_header);
        while let Some(e) = self.index.get(&h) {
            if self.on_main(&h) || e.status == BlockStatus::Invalid {
                break;
            }
            if e.status == BlockStatus::Header {
                missing.push(h);
            }
            h = e.header.prev_blockhash;
        }
        missing.reverse();
        missing.into_iter().filter(|h| !skip(h)).take(max).collect()
    }

    /// The difficulty of `bits` relative to the chain's proof-of-work limit (1.0 at the limit).
    pub fn difficulty(&self, bits: CompactTarget) -> f64 {
        match bits.to_target() {
            Ok(t) => t.difficulty() / self.params.pow_limit.difficulty(),
            Err(_) => 0.0,
        }
    }

    /// The median time past at the tip (a new block's time must be above it).
    pub fn median_time_past(&self) -> u32 {
        let mut t = self.follower.recent_times();
        t.sort_unstable();
        t[t.len() / 2]
    }
}

#[cfg(test)]
mod tests;
