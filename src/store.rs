//! The node's store (`DATADIR/chain.redb`): blocks (main chain and side branches), the block index
//! (header, height, chain work, validity), the main chain by height, the account state, undo data
//! and the tip, in redb (embedded, copy-on-write B-trees, durable atomic commits).
//!
//! Every change is one write transaction: storing a received block writes the block and its index
//! entry together; moving the tip (one block, or a reorg that disconnects some blocks and connects
//! others) writes the height entries, undo data, every touched account, the validity marks and the
//! new tip together or not at all. After `kill -9` at any moment the store opens on the last
//! committed tip with the state that belongs to it, and every block it had stored is still there.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableTable, TableDefinition};

use crate::consensus::ledger::{AsertAnchor, ASERT_ANCHOR_HEIGHT};
use crate::consensus::LedgerParams;
use crate::ledger::block::LedgerBlock;
use crate::ledger::ids::AccountKey;
use crate::primitives::encoding::{deserialize, serialize, Decodable, DecodeError, Encodable, Reader};
use crate::primitives::{BlockHash, BlockHeader, Txid, U256};
use crate::state::accounts::{Account, State, Undo};

const BLOCKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("blocks");
const MAIN: TableDefinition<u32, &[u8]> = TableDefinition::new("main");
const ACCOUNTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("accounts");
const UNDO: TableDefinition<&[u8], &[u8]> = TableDefinition::new("undo");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const INDEX: TableDefinition<&[u8], &[u8]> = TableDefinition::new("index");
const MEMPOOL: TableDefinition<&[u8], &[u8]> = TableDefinition::new("mempool");

/// What is known of a block in the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockStatus {
    /// Only the header (checked with its context); the block itself is not stored.
    Header,
    /// The block is stored and passed the checks that need no state; not yet connected.
    Data,
    /// The block was connected (its state transition is valid on top of its parent).
    Valid,
    /// The block, or one of its ancestors, breaks a rule; never fetched or connected again.
    Invalid,
}

impl BlockStatus {
    fn byte(self) -> u8 {
        match self {
            BlockStatus::Header => 0,
            BlockStatus::Data => 1,
            BlockStatus::Valid => 2,
            BlockStatus::Invalid => 3,
        }
    }

    fn from_byte(b: u8) -> Option<BlockStatus> {
        Some(match b {
            0 => BlockStatus::Header,
            1 => BlockStatus::Data,
            2 => BlockStatus::Valid,
            3 => BlockStatus::Invalid,
            _ => return None,
        })
    }
}

/// One block index entry as stored: header, height, chain work up to and including it, status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexRecord {
    /// The header.
    pub header: crate::primitives::BlockHeader,
    /// Its height.
    pub height: u32,
    /// Work of the chain up to and including it.
    pub chainwork: U256,
    /// Validity.
    pub status: BlockStatus,
}

impl Encodable for IndexRecord {
    /// 117 bytes: header, height u32 LE, chain work (big-endian), status byte.
    fn consensus_encode(&self, out: &mut Vec<u8>) {
        self.header.consensus_encode(out);
        out.extend_from_slice(&self.height.to_le_bytes());
        out.extend_from_slice(&self.chainwork.to_be_bytes());
        out.push(self.status.byte());
    }
}

impl Decodable for IndexRecord {
    fn consensus_decode(r: &mut Reader<'_>) -> Result<IndexRecord, DecodeError> {
        let header = BlockHeader::consensus_decode(r)?;
        let height = r.u32_le("index height")?;
        let chainwork = U256::from_be_bytes(r.array("index chain work")?);
        let at = r.offset();
        let status = BlockStatus::from_byte(r.u8("index status")?).ok_or(DecodeError::Invalid {
            offset: at,
            what: "index status",
            why: "not 0..=3",
        })?;
        Ok(IndexRecord { header, height, chainwork, status })
    }
}

/// A block to connect in [`Store::move_tip`]: its hash, height, index record and undo data.
pub struct Connected<'a> {
    /// Hash.
    pub hash: BlockHash,
    /// The index record (status is written as `Valid`).
    pub record: IndexRecord,
    /// Undo data from connecting it.
    pub undo: &'a Undo,
}

/// A store failure: what and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {why}")]
pub struct StoreError {
    /// The database file.
    pub path: String,
    /// Why.
    pub why: String,
}

/// The tip as stored: 76 bytes, height (u32 LE), hash, chain work (big-endian), transactions (u64 LE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredTip {
    /// Height of the tip.
    pub height: u32,
    /// Hash of the tip.
    pub hash: BlockHash,
    /// Work of the chain up to and including the tip.
    pub chainwork: U256,
    /// Transactions connected (coinbases included), genesis excluded.
    pub transactions: u64,
}

impl Encodable for StoredTip {
    fn consensus_encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.height.to_le_bytes());
        self.hash.consensus_encode(out);
        out.extend_from_slice(&self.chainwork.to_be_bytes());
        out.extend_from_slice(&self.transactions.to_le_bytes());
    }
}

impl Decodable for StoredTip {
    fn consensus_decode(r: &mut Reader<'_>) -> Result<StoredTip, DecodeError> {
        Ok(StoredTip {
            height: r.u32_le("tip height")?,
            hash: BlockHash::consensus_decode(r)?,
            chainwork: U256::from_be_bytes(r.array("tip chain work")?),
            transactions: r.u64_le("tip transactions")?,
        })
    }
}

/// What a store holds at its tip, read back whole: the tip, the state after it, and the last
/// up-to-11 main-chain block times ending with the tip's (oldest first).
pub struct StoredState {
    /// The tip.
    pub tip: StoredTip,
    /// The account state after the tip.
    pub state: State,
    /// The last up-to-11 block times, oldest first.
    pub times: Vec<u32>,
    /// The main chain's ASERT anchor (its block at height 1), `None` at genesis.
    pub anchor: Option<AsertAnchor>,
}

/// An open store.
pub struct Store {
    db: Database,
    path: PathBuf,
    params: &'static LedgerParams,
}

impl Store {
    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError { path: self.path.display().to_string(), why: e.to_string() }
    }

    /// Opens (or creates, with the genesis block) the store of `params`' chain in `datadir`.
    ///
    /// A new store is built as `chain.redb.new`, its genesis committed, then renamed into place, so a
    /// process killed while creating it leaves no half-made `chain.redb` behind.
    pub fn open(datadir: &Path, params: &'static LedgerParams) -> Result<Store, StoreError> {
        let path = datadir.join("chain.redb");
        let fail = |why: String| StoreError { path: path.display().to_string(), why };
        std::fs::create_dir_all(datadir).map_err(|e| fail(format!("creating the data directory: {e}")))?;
        if !path.exists() {
            let fresh = datadir.join("chain.redb.new");
            let _ = std::fs::remove_file(&fresh);
            let db = Database::create(&fresh).map_err(|e| fail(format!("creating: {e}")))?;
            let store = Store { db, path: fresh.clone(), params };
            store.init()?;
            drop(store);
            std::fs::rename(&fresh, &path).map_err(|e| fail(format!("renaming the new store into place: {e}")))?;
            if let Ok(dir) = std::fs::File::open(datadir) {
                let _ = dir.sync_all();
            }
        }
        let db = Database::create(&path).map_err(|e| fail(format!("opening: {e}")))?;
        let store = Store { db, path, params };
        let chain = {
            let rtx = store.db.begin_read().map_err(|e| store.err(e))?;
            match rtx.open_table(META) {
                Ok(t) => t.get("chain").map_err(|e| store.err(e))?.map(|v| v.value().to_vec()),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(store.err(e)),
            }
        };
        match chain {
            Some(name) if name == params.name.as_bytes() => {
                store.genesis_is_this_chains()?;
                Ok(store)
            }
            Some(name) => {
                Err(store.err(format!("holds chain {:?}, not {}", String::from_utf8_lossy(&name), params.name)))
            }
            None => Err(store.err("not a powkit store (no chain recorded)")),
        }
    }

    /// Refuses a store whose genesis is not `params`' (consensus rule `genesis_matches_chain`): one
    /// made by a powkit before consensus version 3, or for another chain spec of the same name.
    fn genesis_is_this_chains(&self) -> Result<(), StoreError> {
        let rtx = self.db.begin_read().map_err(|e| self.err(e))?;
        let main = rtx.open_table(MAIN).map_err(|e| self.err(e))?;
        let g = main.get(0).map_err(|e| self.err(e))?.ok_or_else(|| self.err("no genesis recorded"))?;
        let got = BlockHash(g.value().try_into().map_err(|_| self.err("a corrupt genesis record"))?);
        crate::consensus::ledger::genesis_matches_chain(&got, self.params).map_err(|e| self.err(e))
    }

    fn init(&self) -> Result<(), StoreError> {
        let g = &self.params.genesis;
        let hash = g.header.block_hash();
        let work = g.header.bits.block_work();
        let tip = StoredTip { height: 0, hash, chainwork: work, transactions: 0 };
        let wtx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut blocks = wtx.open_table(BLOCKS).map_err(|x| self.err(x))?;
            blocks.insert(&hash.0[..], &g.to_bytes()[..]).map_err(|x| self.err(x))?;
            wtx.open_table(MAIN).map_err(|x| self.err(x))?.insert(0, &hash.0[..]).map_err(|x| self.err(x))?;
            let rec = IndexRecord { header: g.header, height: 0, chainwork: work, status: BlockStatus::Valid };
            wtx.open_table(INDEX)
                .map_err(|x| self.err(x))?
                .insert(&hash.0[..], &serialize(&rec)[..])
                .map_err(|x| self.err(x))?;
            let mut accounts = wtx.open_table(ACCOUNTS).map_err(|x| self.err(x))?;
            // The state after genesis: a chain spec's initial allocations.
            for &(key, balance) in &self.params.allocations {
                let a = Account { balance, nonce: 0 };
                accounts.insert(&key.0[..], &serialize(&a)[..]).map_err(|x| self.err(x))?;
            }
            drop(accounts);
            wtx.open_table(UNDO).map_err(|x| self.err(x))?;
            let mut meta = wtx.open_table(META).map_err(|x| self.err(x))?;
            meta.insert("chain", self.params.name.as_bytes()).map_err(|x| self.err(x))?;
            meta.insert("tip", &serialize(&tip)[..]).map_err(|x| self.err(x))?;
        }
        wtx.commit().map_err(|e| self.err(e))
    }

    fn tip(&self) -> Result<StoredTip, StoreError> {
        let rtx = self.db.begin_read().map_err(|e| self.err(e))?;
        let meta = rtx.open_table(META).map_err(|e| self.err(e))?;
        let v = meta.get("tip").map_err(|e| self.err(e))?.ok_or_else(|| self.err("no tip recorded"))?;
        deserialize::<StoredTip>(v.value()).map_err(|e| self.err(format!("the tip record is corrupt: {e}")))
    }

    /// Whether a block with this hash is stored.
    pub fn contains(&self, hash: &BlockHash) -> Result<bool, StoreError> {
        let rtx = self.db.begin_read().map_err(|e| self.err(e))?;
        let blocks = rtx.open_table(BLOCKS).map_err(|e| self.err(e))?;
        Ok(blocks.get(&hash.0[..]).map_err(|e| self.err(e))?.is_some())
    }

    /// The block at `height` on the main chain.
    pub fn block_at(&self, height: u32) -> Result<Option<LedgerBlock>, StoreError> {
        let rtx = self.db.begin_read().map_err(|e| self.err(e))?;
        let main = rtx.open_table(MAIN).map_err(|e| self.err(e))?;
        let Some(hash) = main.get(height).map_err(|e| self.err(e))? else { return Ok(None) };
        let blocks = rtx.open_table(BLOCKS).map_err(|e| self.err(e))?;
        let bytes =
            blocks.get(hash.value()).map_err(|e| self.err(e))?.ok_or_else(|| self.err("main chain block missing"))?;
        LedgerBlock::from_bytes(bytes.value()).map(Some).map_err(|e| self.err(format!("stored block {height}: {e}")))
    }

    /// The stored tip with its state read back from the accounts table and the last 11 times from
    /// the main chain's last blocks.
    pub fn tip_state(&self) -> Result<StoredState, StoreError> {
        let tip = self.tip()?;
        let mut state = State::new();
        {
            let rtx = self.db.begin_read().map_err(|e| self.err(e))?;
            let accounts = rtx.open_table(ACCOUNTS).map_err(|e| self.err(e))?;
            for row in accounts.iter().map_err(|e| self.err(e))? {
                let (k, v) = row.map_err(|e| self.err(e))?;
                let (k, v) = (k.value(), v.value());
                let key: [u8; 32] = k.try_into().map_err(|_| self.err("a corrupt account key"))?;
                let a = deserialize::<Account>(v).map_err(|e| self.err(format!("a corrupt account record: {e}")))?;
                state.load(AccountKey(key), a);
            }
        }
        let mut times = Vec::new();
        for h in tip.height.saturating_sub(10)..=tip.height {
            let b = self.block_at(h)?.ok_or_else(|| self.err(format!("main chain block {h} missing")))?;
            times.push(b.header.time);
        }
        let anchor = match tip.height {
            0 => None,
            _ => Some(AsertAnchor::of(
                &self.block_at(ASERT_ANCHOR_HEIGHT)?.ok_or_else(|| self.err("main chain block 1 missing"))?.header,
            )),
        };
        Ok(StoredState { tip, state, times, anchor })
    }

    /// Commits a block just connected on the tip (`undo` from that connect; `tip` and `state` after
    /// it): block, index entry, height entry, undo data, touched accounts and tip, in one durable
    /// transaction.
    pub fn connect(&self, block: &LedgerBlock, undo: &Undo, tip: &StoredTip, state: &State) -> Result<(), StoreError> {
        let record = IndexRecord {
            header: block.header,
            height: tip.height,
            chainwork: tip.chainwork,
            status: BlockStatus::Valid,
        };
        self.move_tip(&[], &[Connected { hash: tip.hash, record, undo }], Some(block), tip, state)
    }

    /// Moves the tip in one durable transaction: `disconnected` (hash, height) leave the main chain
    /// (their undo data is kept), `connected` join it in order (index entry marked valid, height
    /// entry, undo data), every account either touched is written from `state` (the state after
    /// `tip`), and the tip becomes `tip`. `block`, when given, is stored too (a block connected as it
    /// arrives).
    pub fn move_tip(
        &self,
        disconnected: &[(BlockHash, u32, Undo)],
        connected: &[Connected<'_>],
        block: Option<&LedgerBlock>,
        tip: &StoredTip,
        state: &State,
    ) -> Result<(), StoreError> {
        let wtx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            if let Some(b) = block {
                wtx.open_table(BLOCKS)
                    .map_err(|x| self.err(x))?
                    .insert(&b.header.block_hash().0[..], &b.to_bytes()[..])
                    .map_err(|x| self.err(x))?;
            }
            let mut main = wtx.open_table(MAIN).map_err(|x| self.err(x))?;
            for (_, height, _) in disconnected {
                main.remove(*height).map_err(|x| self.err(x))?;
            }
            let mut undos = wtx.open_table(UNDO).map_err(|x| self.err(x))?;
            let mut index = wtx.open_table(INDEX).map_err(|x| self.err(x))?;
            for c in connected {
                main.insert(c.record.height, &c.hash.0[..]).map_err(|x| self.err(x))?;
                undos.insert(&c.hash.0[..], &c.undo.to_bytes()[..]).map_err(|x| self.err(x))?;
                let rec = IndexRecord { status: BlockStatus::Valid, ..c.record };
                index.insert(&c.hash.0[..], &serialize(&rec)[..]).map_err(|x| self.err(x))?;
            }
            let mut accounts = wtx.open_table(ACCOUNTS).map_err(|x| self.err(x))?;
            let touched = disconnected
                .iter()
                .flat_map(|(_, _, u)| u.touched())
                .chain(connected.iter().flat_map(|c| c.undo.touched()));
            for pk in touched {
                let a = state.account(pk);
                if a == Account::default() {
                    accounts.remove(&pk.0[..]).map_err(|x| self.err(x))?;
                } else {
                    accounts.insert(&pk.0[..], &serialize(&a)[..]).map_err(|x| self.err(x))?;
                }
            }
            wtx.open_table(META)
                .map_err(|x| self.err(x))?
                .insert("tip", &serialize(tip)[..])
                .map_err(|x| self.err(x))?;
        }
        wtx.commit().map_err(|e| self.err(e))
    }

    /// Stores a received block and its index entry (status `Data`), and `headers` (index records
    /// of its header-only ancestors), in one durable transaction.
    pub fn put_block(
        &self,
        hash: &BlockHash,
        block: &LedgerBlock,
        record: IndexRecord,
        headers: &[(BlockHash, IndexRecord)],
    ) -> Result<(), StoreError> {
        let wtx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            wtx.open_table(BLOCKS)
                .map_err(|x| self.err(x))?
                .insert(&hash.0[..], &block.to_bytes()[..])
                .map_err(|x| self.err(x))?;
            let mut index = wtx.open_table(INDEX).map_err(|x| self.err(x))?;
            index.insert(&hash.0[..], &serialize(&record)[..]).map_err(|x| self.err(x))?;
            for (h, r) in headers {
                index.insert(&h.0[..], &serialize(r)[..]).map_err(|x| self.err(x))?;
            }
        }
        wtx.commit().map_err(|e| self.err(e))
    }

    /// Writes index records (validity marks, headers of invalid blocks) in one transaction.
    pub fn put_index(&self, records: &[(BlockHash, IndexRecord)]) -> Result<(), StoreError> {
        let wtx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut index = wtx.open_table(INDEX).map_err(|x| self.err(x))?;
            for (h, r) in records {
                index.insert(&h.0[..], &serialize(r)[..]).map_err(|x| self.err(x))?;
            }
        }
        wtx.commit().map_err(|e| self.err(e))
    }

    /// Every stored index record.
    pub fn load_index(&self) -> Result<Vec<(BlockHash, IndexRecord)>, StoreError> {
        let rtx = self.db.begin_read().map_err(|e| self.err(e))?;
        let index = match rtx.open_table(INDEX) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.err(e)),
        };
        let mut out = Vec::new();
        for row in index.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            let hash: [u8; 32] = k.value().try_into().map_err(|_| self.err("a corrupt index key"))?;
            let rec =
                deserialize::<IndexRecord>(v.value()).map_err(|e| self.err(format!("a corrupt index record: {e}")))?;
            out.push((BlockHash(hash), rec));
        }
        Ok(out)
    }

    /// The main chain's hashes by height, genesis first.
    pub fn main_chain(&self) -> Result<Vec<BlockHash>, StoreError> {
        let tip = self.tip()?;
        let rtx = self.db.begin_read().map_err(|e| self.err(e))?;
        let main = rtx.open_table(MAIN).map_err(|e| self.err(e))?;
        let mut out = Vec::with_capacity(tip.height as usize + 1);
        for h in 0..=tip.height {
            let v = main
                .get(h)
                .map_err(|e| self.err(e))?
                .ok_or_else(|| self.err(format!("main chain entry {h} missing")))?;
            out.push(BlockHash(v.value().try_into().map_err(|_| self.err("a corrupt main chain entry"))?));
        }
        Ok(out)
    }

    /// A stored block by hash.
    pub fn block(&self, hash: &BlockHash) -> Result<Option<LedgerBlock>, StoreError> {
        let rtx = self.db.begin_read().map_err(|e| self.err(e))?;
        let blocks = rtx.open_table(BLOCKS).map_err(|e| self.err(e))?;
        let Some(bytes) = blocks.get(&hash.0[..]).map_err(|e| self.err(e))? else { return Ok(None) };
        LedgerBlock::from_bytes(bytes.value()).map(Some).map_err(|e| self.err(format!("stored block {hash}: {e}")))
    }

    /// A stored block's encoding by hash.
    pub fn block_bytes(&self, hash: &BlockHash) -> Result<Option<Vec<u8>>, StoreError> {
        let rtx = self.db.begin_read().map_err(|e| self.err(e))?;
        let blocks = rtx.open_table(BLOCKS).map_err(|e| self.err(e))?;
        Ok(blocks.get(&hash.0[..]).map_err(|e| self.err(e))?.map(|v| v.value().to_vec()))
    }

    /// The undo data of a connected block.
    pub fn undo(&self, hash: &BlockHash) -> Result<Undo, StoreError> {
        let rtx = self.db.begin_read().map_err(|e| self.err(e))?;
        let undos = rtx.open_table(UNDO).map_err(|e| self.err(e))?;
        let v = undos
            .get(&hash.0[..])
            .map_err(|e| self.err(e))?
            .ok_or_else(|| self.err(format!("undo data of {hash} missing")))?;
        deserialize::<Undo>(v.value()).map_err(|e| self.err(format!("undo data of {hash} is corrupt: {e}")))
    }

    /// Adds and removes mempool transactions (txid, encoding). `durable`: committed with an fsync
    /// before returning (a transaction acknowledged over RPC); otherwise it becomes durable with
    /// the next durable commit.
    pub fn update_mempool(&self, add: &[(Txid, Vec<u8>)], remove: &[Txid], durable: bool) -> Result<(), StoreError> {
        let mut wtx = self.db.begin_write().map_err(|e| self.err(e))?;
        if !durable {
            wtx.set_durability(redb::Durability::Eventual);
        }
        {
            let mut t = wtx.open_table(MEMPOOL).map_err(|x| self.err(x))?;
            for id in remove {
                t.remove(&id.0[..]).map_err(|x| self.err(x))?;
            }
            for (id, bytes) in add {
                t.insert(&id.0[..], &bytes[..]).map_err(|x| self.err(x))?;
            }
        }
        wtx.commit().map_err(|e| self.err(e))
    }

    /// The stored mempool transactions' encodings.
    pub fn load_mempool(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let rtx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = match rtx.open_table(MEMPOOL) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.err(e)),
        };
        let mut out = Vec::new();
        for row in t.iter().map_err(|e| self.err(e))? {
            let (_, v) = row.map_err(|e| self.err(e))?;
            out.push(v.value().to_vec());
        }
        Ok(out)
    }
}
