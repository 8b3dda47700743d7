//! The node's store (`DATADIR/chain.redb`): blocks, the main chain by height, the account state,
//! undo data and the tip, in redb (embedded, copy-on-write B-trees, durable atomic commits).
//!
//! Connecting a block is one write transaction: the block, its height entry, its undo data, every
//! account it touched and the new tip are committed together or not at all, so after `kill -9` at
//! any moment the store opens on the last committed tip with the state that belongs to it.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableTable, TableDefinition};

use crate::ledger::block::LedgerBlock;
use crate::ledger::chain::Follower;
use crate::ledger::params::LedgerParams;
use crate::primitives::{BlockHash, U256};
use crate::state::accounts::{Account, State, Undo};

const BLOCKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("blocks");
const MAIN: TableDefinition<u32, &[u8]> = TableDefinition::new("main");
const ACCOUNTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("accounts");
const UNDO: TableDefinition<&[u8], &[u8]> = TableDefinition::new("undo");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// A store failure: what and where.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {why}")]
pub struct StoreError {
    /// The database file.
    pub path: String,
    /// Why.
    pub why: String,
}

/// The tip as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Tip {
    height: u32,
    hash: [u8; 32],
    chainwork: [u8; 32],
    transactions: u64,
}

impl Tip {
    fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(76);
        v.extend_from_slice(&self.height.to_le_bytes());
        v.extend_from_slice(&self.hash);
        v.extend_from_slice(&self.chainwork);
        v.extend_from_slice(&self.transactions.to_le_bytes());
        v
    }

    fn from_bytes(b: &[u8]) -> Option<Tip> {
        if b.len() != 76 {
            return None;
        }
        Some(Tip {
            height: u32::from_le_bytes(b[..4].try_into().ok()?),
            hash: b[4..36].try_into().ok()?,
            chainwork: b[36..68].try_into().ok()?,
            transactions: u64::from_le_bytes(b[68..76].try_into().ok()?),
        })
    }
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
            Some(name) if name == params.name.as_bytes() => Ok(store),
            Some(name) => {
                Err(store.err(format!("holds chain {:?}, not {}", String::from_utf8_lossy(&name), params.name)))
            }
            None => Err(store.err("not a powkit store (no chain recorded)")),
        }
    }

    fn init(&self) -> Result<(), StoreError> {
        let g = &self.params.genesis;
        let hash = g.header.block_hash();
        let work = g.header.bits.to_target().map(|t| t.work().0).unwrap_or(U256::ZERO);
        let tip = Tip { height: 0, hash: hash.0, chainwork: work.to_be_bytes(), transactions: 0 };
        let wtx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut blocks = wtx.open_table(BLOCKS).map_err(|x| self.err(x))?;
            blocks.insert(&hash.0[..], &g.to_bytes()[..]).map_err(|x| self.err(x))?;
            wtx.open_table(MAIN).map_err(|x| self.err(x))?.insert(0, &hash.0[..]).map_err(|x| self.err(x))?;
            wtx.open_table(ACCOUNTS).map_err(|x| self.err(x))?;
            wtx.open_table(UNDO).map_err(|x| self.err(x))?;
            let mut meta = wtx.open_table(META).map_err(|x| self.err(x))?;
            meta.insert("chain", self.params.name.as_bytes()).map_err(|x| self.err(x))?;
            meta.insert("tip", &tip.to_bytes()[..]).map_err(|x| self.err(x))?;
        }
        wtx.commit().map_err(|e| self.err(e))
    }

    fn tip(&self) -> Result<Tip, StoreError> {
        let rtx = self.db.begin_read().map_err(|e| self.err(e))?;
        let meta = rtx.open_table(META).map_err(|e| self.err(e))?;
        let v = meta.get("tip").map_err(|e| self.err(e))?.ok_or_else(|| self.err("no tip recorded"))?;
        Tip::from_bytes(v.value()).ok_or_else(|| self.err("the tip record is corrupt"))
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

    /// A follower at the stored tip: the state read back from the accounts table, the last 11
    /// times from the main chain's last blocks.
    pub fn follower(&self) -> Result<Follower, StoreError> {
        let tip = self.tip()?;
        let mut state = State::new();
        {
            let rtx = self.db.begin_read().map_err(|e| self.err(e))?;
            let accounts = rtx.open_table(ACCOUNTS).map_err(|e| self.err(e))?;
            for row in accounts.iter().map_err(|e| self.err(e))? {
                let (k, v) = row.map_err(|e| self.err(e))?;
                let (k, v) = (k.value(), v.value());
                if k.len() != 32 || v.len() != 16 {
                    return Err(self.err("a corrupt account record"));
                }
                let a = Account {
                    balance: u64::from_le_bytes(v[..8].try_into().expect("8 bytes")),
                    nonce: u64::from_le_bytes(v[8..].try_into().expect("8 bytes")),
                };
                state.load(k.try_into().expect("32 bytes"), a);
            }
        }
        let mut times = Vec::new();
        for h in tip.height.saturating_sub(10)..=tip.height {
            let b = self.block_at(h)?.ok_or_else(|| self.err(format!("main chain block {h} missing")))?;
            times.push(b.header.time);
        }
        Ok(Follower::restore(
            self.params,
            state,
            tip.height,
            BlockHash(tip.hash),
            times,
            U256::from_be_bytes(tip.chainwork),
            tip.transactions,
        ))
    }

    /// Commits a block the follower has just connected (`undo` from that connect): block, height
    /// entry, undo data, touched accounts and tip, in one durable transaction.
    pub fn connect(&self, block: &LedgerBlock, f: &Follower, undo: &Undo) -> Result<(), StoreError> {
        let tip =
            Tip { height: f.height, hash: f.tip.0, chainwork: f.chainwork.to_be_bytes(), transactions: f.transactions };
        let wtx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            wtx.open_table(BLOCKS)
                .map_err(|x| self.err(x))?
                .insert(&f.tip.0[..], &block.to_bytes()[..])
                .map_err(|x| self.err(x))?;
            wtx.open_table(MAIN).map_err(|x| self.err(x))?.insert(f.height, &f.tip.0[..]).map_err(|x| self.err(x))?;
            wtx.open_table(UNDO)
                .map_err(|x| self.err(x))?
                .insert(&f.tip.0[..], &undo.to_bytes()[..])
                .map_err(|x| self.err(x))?;
            let mut accounts = wtx.open_table(ACCOUNTS).map_err(|x| self.err(x))?;
            for pk in undo.touched() {
                let a = f.state.account(pk);
                if a == Account::default() {
                    accounts.remove(&pk[..]).map_err(|x| self.err(x))?;
                } else {
                    let mut v = [0u8; 16];
                    v[..8].copy_from_slice(&a.balance.to_le_bytes());
                    v[8..].copy_from_slice(&a.nonce.to_le_bytes());
                    accounts.insert(&pk[..], &v[..]).map_err(|x| self.err(x))?;
                }
            }
            wtx.open_table(META)
                .map_err(|x| self.err(x))?
                .insert("tip", &tip.to_bytes()[..])
                .map_err(|x| self.err(x))?;
        }
        wtx.commit().map_err(|e| self.err(e))
    }
}
