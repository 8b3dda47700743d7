//! The Bitcoin UTXO set: every unspent output with its amount, script, height and coinbase flag
//! ([`Coin`]), as Bitcoin Core keeps it (coins.h/coins.cpp `CCoinsViewCache` over txdb.cpp's
//! `CCoinsViewDB`).
//!
//! - **Cache**: a `HashMap<OutPoint, entry>` in memory, each entry DIRTY (differs from the disk) and
//!   FRESH (the disk does not have it) exactly as Core's `CCoinsCacheEntry`: a coin created and
//!   spent while only in the cache is dropped at the spend and never touches the disk. Its size is
//!   estimated like Core's `DynamicMemoryUsage` ([`UtxoSet::memory_usage`]: the table's slots plus
//!   every script that does not fit in the entry); [`UtxoSet::flush_if_over`] writes and empties it
//!   when that passes the bound given to [`UtxoSet::open`].
//! - **Disk**: one redb table (`DIR/utxo.redb`) keyed `txid (32 bytes, internal order) || vout
//!   (4 bytes big-endian)`, so that key order is Core's cursor order (its leveldb key is
//!   `'C' || txid || VARINT(vout)`, and that VARINT preserves order): [`UtxoSet::stats`] walks it once
//!   and gets Core's `gettxoutsetinfo` figures, `hash_serialized_3` included. Value: `height * 2 +
//!   coinbase` (u32 LE), amount (i64 LE, satoshis), then the script's bytes.
//! - **Undo data**: [`BlockUndo`] (the coins a block spent, Core's `CBlockUndo`) in an append-only
//!   file (`DIR/undo.dat`, [`UndoStore`]), so a reorg of any depth reads it from disk.
//!
//! The set always starts empty: a directory given to [`UtxoSet::open`] has its `utxo.redb` and
//! `undo.dat` replaced (reopening a set is not supported), and without a directory a private
//! temporary one is made and removed on drop. The disk copy is not crash-safe on its own (commits do
//! not wait for `fsync`): it is a spill area for sets larger than memory, not a database to reopen.

mod stats;
mod undo;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{Database, Durability, ReadOnlyTable, ReadableTable, TableDefinition};
use smallvec::SmallVec;

use crate::primitives::{Block, BlockHash, Coin, OutPoint, Transaction, TxOut, Txid};

pub use stats::UtxoStats;
pub use undo::{BlockUndo, UndoStore};

const COINS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("coins");

/// Bitcoin Core's `MAX_SCRIPT_SIZE` (script/script.h): a longer script can never be spent.
pub const MAX_SCRIPT_SIZE: usize = 10_000;

/// `OP_RETURN` (script/script.h): a script starting with it can never be spent.
pub const OP_RETURN: u8 = 0x6a;

/// Scripts up to this many bytes live inside the cache entry (P2PKH 25, P2SH 23, P2WPKH 22,
/// P2WSH and P2TR 34, compressed P2PK 35 bytes; smallvec offers 36); longer ones take one heap
/// allocation.
const INLINE_SCRIPT: usize = 36;

/// Bytes of a disk key: txid (32) and vout (4, big-endian).
pub const KEY_SIZE: usize = 36;

/// Whether an output can never be spent, so the UTXO set does not keep it: Bitcoin Core's
/// `CScript::IsUnspendable` (script/script.h): the script starts with `OP_RETURN` or is longer than
/// [`MAX_SCRIPT_SIZE`] bytes. `CCoinsViewCache::AddCoin` (coins.cpp) skips such outputs.
pub fn is_unspendable(script_pubkey: &[u8]) -> bool {
    script_pubkey.first() == Some(&OP_RETURN) || script_pubkey.len() > MAX_SCRIPT_SIZE
}

/// The disk key of an outpoint: txid (internal byte order) then vout big-endian, so that byte order
/// equals Core's coins-database cursor order (txid bytes, then output index ascending).
pub fn outpoint_key(outpoint: &OutPoint) -> [u8; KEY_SIZE] {
    let mut k = [0u8; KEY_SIZE];
    k[..32].copy_from_slice(&outpoint.txid.0);
    k[32..].copy_from_slice(&outpoint.vout.to_be_bytes());
    k
}

/// The outpoint of a disk key (the inverse of [`outpoint_key`]).
pub fn key_outpoint(key: &[u8; KEY_SIZE]) -> OutPoint {
    let mut txid = [0u8; 32];
    txid.copy_from_slice(&key[..32]);
    OutPoint { txid: Txid(txid), vout: u32::from_be_bytes([key[32], key[33], key[34], key[35]]) }
}

/// A UTXO set failure: what went wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UtxoError {
    /// The on-disk store or undo file could not be created, read or written.
    #[error("{path}: {why}")]
    Store {
        /// The file or directory.
        path: String,
        /// Why (the storage error).
        why: String,
    },
    /// A stored record does not decode (the file was changed behind the set's back, or the disk
    /// failed).
    #[error("{path}: corrupt {what}: {why}")]
    Corrupt {
        /// The file.
        path: String,
        /// Which record.
        what: String,
        /// Why it does not decode.
        why: String,
    },
    /// `add` without `possible_overwrite` found an unspent coin at that outpoint in the cache
    /// (Core: `std::logic_error` "Attempted to overwrite an unspent coin"; the caller's BIP30
    /// check should have refused the block first).
    #[error("output {txid}:{vout} is already unspent in the UTXO set and may not be overwritten")]
    Overwrite {
        /// The transaction (display order).
        txid: Txid,
        /// The output index.
        vout: u32,
    },
    /// An input of a block being connected spends a coin that is not unspent: not in the set, not
    /// created earlier in the block, or spent already (Core's `bad-txns-inputs-missingorspent`).
    #[error("transaction {txid} spends {prevout_txid}:{prevout_vout}, which is missing or spent", prevout_txid = prevout.txid, prevout_vout = prevout.vout)]
    MissingInput {
        /// The spending transaction.
        txid: Txid,
        /// The outpoint it spends.
        prevout: OutPoint,
    },
    /// The number of txids given differs from the block's transactions.
    #[error("{txids} txids given for a block of {transactions} transactions")]
    TxidCount {
        /// Txids given.
        txids: usize,
        /// Transactions in the block.
        transactions: usize,
    },
    /// A coin height does not fit Core's 31-bit `nHeight`.
    #[error("coin height {height} is above 2^31 - 1 (output {txid}:{vout})")]
    Height {
        /// The height given.
        height: u32,
        /// The transaction.
        txid: Txid,
        /// The output index.
        vout: u32,
    },
    /// Undo data that does not fit the block (Core's `DISCONNECT_FAILED`): nothing can be restored.
    #[error("cannot disconnect block {block}: {why}")]
    DisconnectFailed {
        /// The block.
        block: BlockHash,
        /// What does not fit.
        why: String,
    },
    /// The block was disconnected, but the set did not hold what the block had created or already
    /// held a coin the undo data restored (Core's `DISCONNECT_UNCLEAN`, which `DisconnectTip`
    /// treats as a failure). The set now holds the block's parent's coins as far as undo data knows.
    #[error("block {block} disconnected uncleanly: {why}")]
    DisconnectUnclean {
        /// The block.
        block: BlockHash,
        /// The first inconsistency found.
        why: String,
    },
}

/// Cache and disk counters since [`UtxoSet::open`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheCounters {
    /// Look-ups answered by the cache (a coin, or a spent entry not yet written).
    pub hits: u64,
    /// Look-ups that went to disk (found or not), [`UtxoSet::prefetch`] included.
    pub misses: u64,
    /// Write transactions committed (each flush or sync with dirty entries).
    pub flushes: u64,
    /// Coins written to disk (inserts) by those transactions.
    pub coins_written: u64,
    /// Coins deleted from disk by those transactions.
    pub coins_erased: u64,
}

/// A coin as the cache keeps it: amount, Core's `nHeight * 2 + fCoinBase` code, and the script
/// inline when short (no allocation for the common script types).
#[derive(Clone, Debug, PartialEq, Eq)]
struct CachedCoin {
    value: i64,
    code: u32,
    script: SmallVec<[u8; INLINE_SCRIPT]>,
}

impl CachedCoin {
    fn from_coin(coin: &Coin) -> CachedCoin {
        CachedCoin {
            value: coin.out.value,
            code: (coin.height << 1) | u32::from(coin.is_coinbase),
            script: SmallVec::from_slice(&coin.out.script_pubkey),
        }
    }

    fn to_coin(&self) -> Coin {
        Coin {
            out: TxOut { value: self.value, script_pubkey: self.script.to_vec() },
            height: self.code >> 1,
            is_coinbase: self.code & 1 == 1,
        }
    }

    fn into_coin(self) -> Coin {
        Coin {
            out: TxOut { value: self.value, script_pubkey: self.script.into_vec() },
            height: self.code >> 1,
            is_coinbase: self.code & 1 == 1,
        }
    }

    /// Heap bytes beyond the entry, counted as Core's `memusage::MallocUsage` does (glibc's 16-byte
    /// granules plus the chunk header): zero for an inline script.
    fn heap_usage(&self) -> usize {
        if self.script.spilled() {
            malloc_usage(self.script.capacity())
        } else {
            0
        }
    }

    /// The disk value: code (u32 LE), amount (i64 LE), script bytes.
    fn encode_value(&self, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&self.code.to_le_bytes());
        out.extend_from_slice(&self.value.to_le_bytes());
        out.extend_from_slice(&self.script);
    }

    fn decode_value(bytes: &[u8]) -> Option<CachedCoin> {
        if bytes.len() < 12 {
            return None;
        }
        Some(CachedCoin {
            code: u32::from_le_bytes(bytes[..4].try_into().ok()?),
            value: i64::from_le_bytes(bytes[4..12].try_into().ok()?),
            script: SmallVec::from_slice(&bytes[12..]),
        })
    }
}

/// Bytes of a `HashMap<OutPoint, Entry>` allocation of `capacity` (hashbrown: buckets a power of
/// two, at most 7/8 of them used; one control byte per bucket).
fn table_bytes(capacity: usize) -> usize {
    let buckets = match capacity {
        0 => 0,
        c if c < 8 => c + 1,
        c => (c * 8 / 7).next_power_of_two(),
    };
    buckets * (std::mem::size_of::<(OutPoint, Entry)>() + 1)
}

/// Core's `memusage::MallocUsage` on 64-bit: an allocation of `n` bytes occupies
/// `((n + 31) / 16) * 16` (memusage.h).
fn malloc_usage(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        ((n + 31) >> 4) << 4
    }
}

/// One cache entry (Core's `CCoinsCacheEntry`): the coin, or `None` for a spent coin whose
/// deletion has not reached the disk yet; DIRTY: differs from the disk; FRESH: the disk does not
/// have it (so spending it just drops the entry).
#[derive(Clone, Debug)]
struct Entry {
    coin: Option<CachedCoin>,
    dirty: bool,
    fresh: bool,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The UTXO set: a bounded cache in front of a redb table, and the undo file beside it.
pub struct UtxoSet {
    dir: PathBuf,
    /// Whether `dir` is ours (a temporary directory removed on drop).
    temp: bool,
    db_path: PathBuf,
    db: Option<Database>,
    /// A read snapshot for cache misses, dropped at each write so the next miss sees it.
    reader: Option<ReadOnlyTable<&'static [u8], &'static [u8]>>,
    cache: HashMap<OutPoint, Entry>,
    /// Heap bytes of spilled scripts in the cache (Core's `cachedCoinsUsage`).
    heap_usage: usize,
    cache_bytes: usize,
    counters: CacheCounters,
    /// Cache entries at the last [`UtxoSet::flush_if_over`] (to foresee the table's growth).
    len_at_check: usize,
    undo: UndoStore,
}

impl std::fmt::Debug for UtxoSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UtxoSet")
            .field("dir", &self.dir)
            .field("cached", &self.cache.len())
            .field("memory_usage", &self.memory_usage())
            .field("cache_bytes", &self.cache_bytes)
            .finish()
    }
}

impl Drop for UtxoSet {
    fn drop(&mut self) {
        self.reader = None;
        self.db = None;
        if self.temp {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn store_err(path: &Path, e: impl std::fmt::Display) -> UtxoError {
    UtxoError::Store { path: path.display().to_string(), why: e.to_string() }
}

impl UtxoSet {
    /// An empty UTXO set whose cache holds about `cache_bytes` bytes (estimated as
    /// [`UtxoSet::memory_usage`]) before [`UtxoSet::flush_if_over`] writes it out.
    ///
    /// `dir`: where `utxo.redb` and `undo.dat` go; both are replaced if present (the set always
    /// starts empty; reopening is not supported). `None`: a fresh directory under the system's
    /// temporary directory, removed when the set is dropped. redb's own page cache is sized
    /// `cache_bytes / 4` (at least 4 MiB), on top of the bound.
    ///
    /// Errors: [`UtxoError::Store`] when the directory or files cannot be created.
    pub fn open(dir: Option<&Path>, cache_bytes: usize) -> Result<UtxoSet, UtxoError> {
        let (dir, temp) = match dir {
            Some(d) => (d.to_path_buf(), false),
            None => {
                let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.subsec_nanos())
                    .unwrap_or(0);
                (std::env::temp_dir().join(format!("powkit-utxo-{}-{n}-{nanos}", std::process::id())), true)
            }
        };
        std::fs::create_dir_all(&dir).map_err(|e| store_err(&dir, e))?;
        let db_path = dir.join("utxo.redb");
        match std::fs::remove_file(&db_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(store_err(&db_path, e)),
        }
        let db = Database::builder()
            .set_cache_size((cache_bytes / 4).max(4 << 20))
            .create(&db_path)
            .map_err(|e| store_err(&db_path, e))?;
        let txn = db.begin_write().map_err(|e| store_err(&db_path, e))?;
        txn.open_table(COINS).map_err(|e| store_err(&db_path, e))?;
        txn.commit().map_err(|e| store_err(&db_path, e))?;
        let undo = UndoStore::create(&dir.join("undo.dat"))?;
        Ok(UtxoSet {
            dir,
            temp,
            db_path,
            db: Some(db),
            reader: None,
            cache: HashMap::new(),
            heap_usage: 0,
            cache_bytes,
            counters: CacheCounters::default(),
            len_at_check: 0,
            undo,
        })
    }

    /// The directory holding `utxo.redb` and `undo.dat`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The undo data store (`DIR/undo.dat`).
    pub fn undo_store(&mut self) -> &mut UndoStore {
        &mut self.undo
    }

    /// The cache bound given to [`UtxoSet::open`], in bytes.
    pub fn cache_bytes(&self) -> usize {
        self.cache_bytes
    }

    /// Estimated bytes the cache uses, as Core's `CCoinsViewCache::DynamicMemoryUsage`: the hash
    /// table's allocation (slots of key and entry plus one control byte each, for every bucket the
    /// table has allocated, used or not) plus each script too long to sit in its entry
    /// (malloc-rounded).
    pub fn memory_usage(&self) -> usize {
        table_bytes(self.cache.capacity()) + self.heap_usage
    }

    /// Entries in the cache (coins and not-yet-written spends).
    pub fn cached_entries(&self) -> usize {
        self.cache.len()
    }

    /// Cache and disk counters since [`UtxoSet::open`].
    pub fn counters(&self) -> CacheCounters {
        self.counters
    }

    fn db(&self) -> &Database {
        self.db.as_ref().expect("the database is open until drop")
    }

    fn reader(&mut self) -> Result<&ReadOnlyTable<&'static [u8], &'static [u8]>, UtxoError> {
        if self.reader.is_none() {
            let txn = self.db().begin_read().map_err(|e| store_err(&self.db_path, e))?;
            let table = txn.open_table(COINS).map_err(|e| store_err(&self.db_path, e))?;
            self.reader = Some(table);
        }
        Ok(self.reader.as_ref().expect("just set"))
    }

    fn read_disk(&mut self, key: &[u8; KEY_SIZE]) -> Result<Option<CachedCoin>, UtxoError> {
        let path = self.db_path.clone();
        let table = self.reader()?;
        let got = table.get(key.as_slice()).map_err(|e| store_err(&path, e))?;
        match got {
            None => Ok(None),
            Some(v) => CachedCoin::decode_value(v.value()).map(Some).ok_or_else(|| UtxoError::Corrupt {
                path: path.display().to_string(),
                what: format!("coin {}", key_outpoint(key).txid),
                why: format!("value of {} bytes is shorter than 12", v.value().len()),
            }),
        }
    }

    /// Core's `FetchCoin`: the cache entry for `outpoint`, read from disk into the cache (clean,
    /// not fresh) on a miss. `false` when neither has it.
    fn fetch(&mut self, outpoint: &OutPoint) -> Result<bool, UtxoError> {
        if self.cache.contains_key(outpoint) {
            self.counters.hits += 1;
            return Ok(true);
        }
        self.counters.misses += 1;
        match self.read_disk(&outpoint_key(outpoint))? {
            None => Ok(false),
            Some(coin) => {
                self.heap_usage += coin.heap_usage();
                self.cache.insert(*outpoint, Entry { coin: Some(coin), dirty: false, fresh: false });
                Ok(true)
            }
        }
    }

    /// The unspent coin at `outpoint`, if any (Core's `GetCoin`): from the cache, else from disk
    /// (which then caches it).
    ///
    /// Errors: [`UtxoError::Store`] / [`UtxoError::Corrupt`] when the disk read fails.
    pub fn get(&mut self, outpoint: &OutPoint) -> Result<Option<Coin>, UtxoError> {
        if !self.fetch(outpoint)? {
            return Ok(None);
        }
        Ok(self.cache[outpoint].coin.as_ref().map(CachedCoin::to_coin))
    }

    /// Whether `outpoint` is unspent (Core's `HaveCoin`); caches it like [`UtxoSet::get`].
    pub fn contains(&mut self, outpoint: &OutPoint) -> Result<bool, UtxoError> {
        Ok(self.fetch(outpoint)? && self.cache[outpoint].coin.is_some())
    }

    /// Whether `outpoint` is unspent in the cache alone (Core's `HaveCoinInCache`); no disk read.
    pub fn contains_in_cache(&self, outpoint: &OutPoint) -> bool {
        self.cache.get(outpoint).is_some_and(|e| e.coin.is_some())
    }

    /// Loads every outpoint of `outpoints` that the cache lacks from disk, in one read snapshot and
    /// in key order (the engine calls it with a whole block's inputs before connecting the block).
    /// Outpoints not on disk (created in the same block, or missing) are left out; null outpoints
    /// (coinbase inputs) are skipped. Returns how many coins were loaded.
    pub fn prefetch(&mut self, outpoints: &[OutPoint]) -> Result<usize, UtxoError> {
        let mut keys: Vec<[u8; KEY_SIZE]> =
            outpoints.iter().filter(|o| !o.is_null() && !self.cache.contains_key(o)).map(outpoint_key).collect();
        keys.sort_unstable();
        keys.dedup();
        self.counters.misses += keys.len() as u64;
        let mut loaded = 0;
        for key in &keys {
            if let Some(coin) = self.read_disk(key)? {
                self.heap_usage += coin.heap_usage();
                self.cache.insert(key_outpoint(key), Entry { coin: Some(coin), dirty: false, fresh: false });
                loaded += 1;
            }
        }
        Ok(loaded)
    }

    /// Removes the unspent coin at `outpoint` and returns it (for undo data), or `None` when there
    /// is none: Core's `CCoinsViewCache::SpendCoin` (coins.cpp). A FRESH entry is dropped (the disk
    /// never saw it); otherwise the entry stays as a DIRTY spend until the next flush deletes it
    /// from disk.
    pub fn spend(&mut self, outpoint: &OutPoint) -> Result<Option<Coin>, UtxoError> {
        if !self.fetch(outpoint)? {
            return Ok(None);
        }
        let entry = self.cache.get_mut(outpoint).expect("fetched");
        let Some(coin) = entry.coin.take() else {
            return Ok(None);
        };
        self.heap_usage -= coin.heap_usage();
        if entry.fresh {
            self.cache.remove(outpoint);
        } else {
            entry.dirty = true;
        }
        Ok(Some(coin.into_coin()))
    }

    /// Adds `coin` at `outpoint`: Core's `CCoinsViewCache::AddCoin` (coins.cpp). An unspendable
    /// output ([`is_unspendable`]) is skipped. `possible_overwrite`: the outpoint may already hold
    /// an unspent coin (Core passes it for coinbase outputs, whose duplicates before BIP30 overwrote
    /// each other, and when undo data restores over a coin). Without it the new entry is FRESH unless
    /// a not-yet-written spend of the same outpoint sits in the cache (a reorg re-adding a coin), so
    /// spending it before a flush never touches the disk; the caller must know the outpoint is
    /// unspent (Core's BIP30 check), since only the cache is consulted.
    ///
    /// Errors: [`UtxoError::Overwrite`] when `possible_overwrite` is false and the cache holds an
    /// unspent coin there (Core throws); [`UtxoError::Height`] when the height is 2^31 or more.
    /// The set is unchanged on error.
    pub fn add(&mut self, outpoint: OutPoint, coin: &Coin, possible_overwrite: bool) -> Result<(), UtxoError> {
        if is_unspendable(&coin.out.script_pubkey) {
            return Ok(());
        }
        if coin.height > i32::MAX as u32 {
            return Err(UtxoError::Height { height: coin.height, txid: outpoint.txid, vout: outpoint.vout });
        }
        let new = CachedCoin::from_coin(coin);
        let new_heap = new.heap_usage();
        match self.cache.get_mut(&outpoint) {
            None => {
                self.cache.insert(outpoint, Entry { coin: Some(new), dirty: true, fresh: !possible_overwrite });
            }
            Some(entry) => {
                let mut fresh = false;
                if !possible_overwrite {
                    if entry.coin.is_some() {
                        return Err(UtxoError::Overwrite { txid: outpoint.txid, vout: outpoint.vout });
                    }
                    fresh = !entry.dirty;
                }
                if let Some(old) = entry.coin.take() {
                    self.heap_usage -= old.heap_usage();
                }
                entry.coin = Some(new);
                entry.dirty = true;
                // Core's SetFresh only ever sets the flag: an entry already FRESH stays FRESH.
                entry.fresh |= fresh;
            }
        }
        self.heap_usage += new_heap;
        Ok(())
    }

    /// Adds every output of `tx` (created at `height`): Core's `AddCoins` (coins.cpp) with
    /// `check_for_overwrite = false`, as `UpdateCoins` calls it when connecting a block: coinbase
    /// outputs may overwrite (pre-BIP30 duplicate coinbases), others may not. `txid` is `tx`'s.
    ///
    /// Errors: as [`UtxoSet::add`]; outputs before the failing one stay added.
    pub fn add_transaction_outputs(
        &mut self,
        tx: &Transaction,
        txid: Txid,
        height: u32,
        is_coinbase: bool,
    ) -> Result<(), UtxoError> {
        for (vout, out) in tx.outputs.iter().enumerate() {
            if is_unspendable(&out.script_pubkey) {
                continue;
            }
            let coin = Coin { out: out.clone(), height, is_coinbase };
            self.add(OutPoint { txid, vout: vout as u32 }, &coin, is_coinbase)?;
        }
        Ok(())
    }

    /// Connects `block` at `height`: for each transaction in order, spends its inputs (unless it is
    /// the coinbase) and adds its outputs, as Core's `UpdateCoins` (validation.cpp) does inside
    /// `ConnectBlock`. Returns the undo data ([`BlockUndo`], Core's `CBlockUndo`). `txids` are the
    /// block's transaction ids, in order.
    ///
    /// The consensus rules (maturity, amounts, BIP30, scripts...) are the caller's; this checks only
    /// what it needs to leave the set consistent, all before changing anything: every input is
    /// unspent (in the set, or created earlier in the block and not spent yet), no two inputs
    /// spend the same coin, and no non-coinbase output lands on an unspent cached coin.
    ///
    /// Errors: [`UtxoError::MissingInput`] (Core's `bad-txns-inputs-missingorspent`),
    /// [`UtxoError::Overwrite`], [`UtxoError::Height`], storage errors: the set is unchanged
    /// (coins read from disk may have been cached).
    pub fn connect_block(&mut self, block: &Block, txids: &[Txid], height: u32) -> Result<BlockUndo, UtxoError> {
        if txids.len() != block.txdata.len() {
            return Err(UtxoError::TxidCount { txids: txids.len(), transactions: block.txdata.len() });
        }
        if height > i32::MAX as u32 {
            return Err(UtxoError::Height { height, txid: txids.first().copied().unwrap_or_default(), vout: 0 });
        }
        // Inputs created in this block are not on disk: only the others are looked up.
        let in_block: std::collections::HashSet<Txid> = txids.iter().copied().collect();
        let inputs: Vec<OutPoint> = block
            .txdata
            .iter()
            .skip(1)
            .flat_map(|tx| tx.inputs.iter().map(|i| i.prevout))
            .filter(|o| !in_block.contains(&o.txid))
            .collect();
        self.prefetch(&inputs)?;
        // The dry run: outpoints created (spendable) and spent so far in this block.
        let mut created: HashMap<OutPoint, bool> = HashMap::new();
        for (i, tx) in block.txdata.iter().enumerate() {
            let is_coinbase = i == 0 && tx.is_coinbase();
            if !is_coinbase {
                for input in &tx.inputs {
                    let o = input.prevout;
                    let available = match created.get_mut(&o) {
                        Some(unspent) => std::mem::replace(unspent, false),
                        None => {
                            let ok = self.contains_in_cache(&o);
                            created.insert(o, false);
                            ok
                        }
                    };
                    if !available {
                        return Err(UtxoError::MissingInput { txid: txids[i], prevout: o });
                    }
                }
            }
            for (vout, out) in tx.outputs.iter().enumerate() {
                if is_unspendable(&out.script_pubkey) {
                    continue;
                }
                let o = OutPoint { txid: txids[i], vout: vout as u32 };
                let taken = match created.get(&o) {
                    Some(unspent) => *unspent,
                    None => self.contains_in_cache(&o),
                };
                if taken && !is_coinbase {
                    return Err(UtxoError::Overwrite { txid: o.txid, vout: o.vout });
                }
                created.insert(o, true);
            }
        }
        let mut undo = BlockUndo { spent: Vec::with_capacity(block.txdata.len().saturating_sub(1)) };
        for (i, tx) in block.txdata.iter().enumerate() {
            let is_coinbase = i == 0 && tx.is_coinbase();
            if !is_coinbase {
                let mut spent = Vec::with_capacity(tx.inputs.len());
                for input in &tx.inputs {
                    spent.push(self.spend(&input.prevout)?.expect("checked by the dry run"));
                }
                undo.spent.push(spent);
            }
            self.add_transaction_outputs(tx, txids[i], height, is_coinbase)?;
        }
        Ok(undo)
    }

    /// Disconnects `block` (at `height`, hash `hash`, `txids` its transactions' ids) with its undo
    /// data: Bitcoin Core's `Chainstate::DisconnectBlock` and `ApplyTxInUndo` (validation.cpp).
    /// Transactions are undone last first: each spendable output is spent (it must be there,
    /// equal to the block's output, at `height`, with the coinbase flag: else unclean, except for
    /// the coinbases of the two mainnet blocks Core exempts from BIP30 on disconnect, 91722 and
    /// 91812), then each input's coin is restored from undo data, last input first (restoring
    /// over an unspent coin is unclean and overwrites it).
    ///
    /// Errors: [`UtxoError::DisconnectFailed`] when the undo data does not fit the block (counts
    /// differ; Core's "block and undo data inconsistent"): nothing was changed.
    /// [`UtxoError::DisconnectUnclean`] when the whole block was undone but an inconsistency was
    /// seen (Core's `DISCONNECT_UNCLEAN`, a failure for `DisconnectTip`). Storage errors as
    /// [`UtxoSet::get`].
    ///
    /// Core's branch for undo records without a height (written by versions before 0.15) does not
    /// apply: [`BlockUndo`] always carries each coin's height and coinbase flag.
    pub fn disconnect_block(
        &mut self,
        block: &Block,
        txids: &[Txid],
        undo: &BlockUndo,
        height: u32,
        hash: &BlockHash,
    ) -> Result<(), UtxoError> {
        let failed = |why: String| UtxoError::DisconnectFailed { block: *hash, why };
        if txids.len() != block.txdata.len() {
            return Err(failed(format!("{} txids for {} transactions", txids.len(), block.txdata.len())));
        }
        if undo.spent.len() + 1 != block.txdata.len() {
            return Err(failed(format!(
                "block and undo data inconsistent: {} transactions, undo for {}",
                block.txdata.len(),
                undo.spent.len()
            )));
        }
        for (i, tx) in block.txdata.iter().enumerate().skip(1) {
            if undo.spent[i - 1].len() != tx.inputs.len() {
                return Err(failed(format!(
                    "transaction and undo data inconsistent: transaction {i} has {} inputs, undo {}",
                    tx.inputs.len(),
                    undo.spent[i - 1].len()
                )));
            }
        }
        let enforce_bip30 = !is_bip30_disconnect_exception(height, hash);
        let mut unclean: Option<String> = None;
        for (i, tx) in block.txdata.iter().enumerate().rev() {
            let txid = txids[i];
            let is_coinbase = tx.is_coinbase();
            let is_bip30_exception = is_coinbase && !enforce_bip30;
            for (o, out) in tx.outputs.iter().enumerate() {
                if is_unspendable(&out.script_pubkey) {
                    continue;
                }
                let outpoint = OutPoint { txid, vout: o as u32 };
                let matches = match self.spend(&outpoint)? {
                    None => false,
                    Some(c) => c.out == *out && c.height == height && c.is_coinbase == is_coinbase,
                };
                if !matches && !is_bip30_exception && unclean.is_none() {
                    unclean = Some(format!("output {txid}:{o} missing or different from the block's"));
                }
            }
            if i > 0 {
                for (input, coin) in tx.inputs.iter().zip(&undo.spent[i - 1]).rev() {
                    let clean = !self.contains(&input.prevout)?;
                    if !clean && unclean.is_none() {
                        unclean = Some(format!(
                            "restoring {}:{} over an unspent coin",
                            input.prevout.txid, input.prevout.vout
                        ));
                    }
                    self.add(input.prevout, coin, !clean)?;
                }
            }
        }
        match unclean {
            None => Ok(()),
            Some(why) => Err(UtxoError::DisconnectUnclean { block: *hash, why }),
        }
    }

    /// Writes every dirty entry to disk in one write transaction (sorted by key), then empties
    /// the cache (Core's `CCoinsViewCache::Flush`). On error nothing is written and the cache is
    /// unchanged.
    pub fn flush(&mut self) -> Result<(), UtxoError> {
        self.write_dirty()?;
        self.cache = HashMap::new();
        self.heap_usage = 0;
        self.len_at_check = 0;
        Ok(())
    }

    /// Writes every dirty entry to disk like [`UtxoSet::flush`] but keeps the unspent coins cached,
    /// now clean (Core's `CCoinsViewCache::Sync`).
    pub fn sync(&mut self) -> Result<(), UtxoError> {
        self.write_dirty()?;
        self.cache.retain(|_, e| e.coin.is_some());
        for e in self.cache.values_mut() {
            e.dirty = false;
            e.fresh = false;
        }
        Ok(())
    }

    /// Call it between blocks: writes every dirty entry and empties the cache when
    /// [`UtxoSet::memory_usage`] is above the bound, or when the table would have to double during
    /// the next block (assumed to add as many entries as were added since the last call) and the
    /// doubled table would pass the bound; so the cache stays within the bound unless one block
    /// alone adds more than the table holds. The table's allocation is kept for reuse when it fits
    /// the bound (no regrowth after each flush), freed otherwise. `true` if it flushed.
    pub fn flush_if_over(&mut self) -> Result<bool, UtxoError> {
        let len = self.cache.len();
        let added = len.saturating_sub(self.len_at_check);
        self.len_at_check = len;
        let capacity = self.cache.capacity();
        let over = self.memory_usage() > self.cache_bytes;
        let would_grow_over =
            len + added > capacity && table_bytes((len + added).max(capacity + 1)) + self.heap_usage > self.cache_bytes;
        if !over && !would_grow_over {
            return Ok(false);
        }
        self.write_dirty()?;
        if over {
            self.cache = HashMap::new();
        } else {
            self.cache.clear();
        }
        self.heap_usage = 0;
        self.len_at_check = 0;
        Ok(true)
    }

    fn write_dirty(&mut self) -> Result<(), UtxoError> {
        let mut dirty: Vec<([u8; KEY_SIZE], Option<&CachedCoin>)> =
            self.cache.iter().filter(|(_, e)| e.dirty).map(|(o, e)| (outpoint_key(o), e.coin.as_ref())).collect();
        if dirty.is_empty() {
            return Ok(());
        }
        dirty.sort_unstable_by_key(|a| a.0);
        let path = &self.db_path;
        let db = self.db.as_ref().expect("the database is open until drop");
        let mut txn = db.begin_write().map_err(|e| store_err(path, e))?;
        // `Eventual`, not `None`: only such commits let redb reuse freed pages (on Linux it is
        // still one fdatasync per flush, which measured as no cost next to the B-tree updates).
        txn.set_durability(Durability::Eventual);
        let (mut written, mut erased) = (0u64, 0u64);
        {
            let mut table = txn.open_table(COINS).map_err(|e| store_err(path, e))?;
            let mut value = Vec::with_capacity(64);
            for (key, coin) in &dirty {
                match coin {
                    Some(c) => {
                        c.encode_value(&mut value);
                        table.insert(key.as_slice(), value.as_slice()).map_err(|e| store_err(path, e))?;
                        written += 1;
                    }
                    None => {
                        table.remove(key.as_slice()).map_err(|e| store_err(path, e))?;
                        erased += 1;
                    }
                }
            }
        }
        self.reader = None;
        txn.commit().map_err(|e| store_err(path, e))?;
        self.counters.flushes += 1;
        self.counters.coins_written += written;
        self.counters.coins_erased += erased;
        Ok(())
    }

    /// The set's figures as Bitcoin Core's `gettxoutsetinfo` reports them (kernel/coinstats.cpp
    /// `ComputeUTXOStats` with `CoinStatsHashType::HASH_SERIALIZED`): [`UtxoSet::sync`], then one
    /// pass over the disk table in key order (Core's cursor order). See [`UtxoStats`].
    pub fn stats(&mut self) -> Result<UtxoStats, UtxoError> {
        self.sync()?;
        let path = self.db_path.clone();
        let table = self.reader()?;
        let mut acc = stats::Accumulator::default();
        for item in table.iter().map_err(|e| store_err(&path, e))? {
            let (k, v) = item.map_err(|e| store_err(&path, e))?;
            let corrupt = |why: String| UtxoError::Corrupt {
                path: path.display().to_string(),
                what: "coin record".to_string(),
                why,
            };
            let key: &[u8; KEY_SIZE] =
                k.value().try_into().map_err(|_| corrupt(format!("key of {} bytes", k.value().len())))?;
            let coin = CachedCoin::decode_value(v.value())
                .ok_or_else(|| corrupt(format!("value of {} bytes", v.value().len())))?;
            acc.add(key, coin.code, coin.value, &coin.script);
        }
        Ok(acc.finish())
    }
}

/// The two mainnet blocks whose coinbases Core does not check when disconnecting (validation.cpp,
/// `DisconnectBlock`: heights 91722 and 91812, whose coinbases were later duplicated by blocks
/// 91842 and 91880; see bitcoin/bitcoin#22596).
pub fn is_bip30_disconnect_exception(height: u32, hash: &BlockHash) -> bool {
    const EXCEPTIONS: [(u32, &str); 2] = [
        (91722, "00000000000271a2dc26e7667f8419f2e15416dc6955e5a6c6cdf3f2574dd08e"),
        (91812, "00000000000af0aed4792b1acee3d966af36cf5def14935db8de83d6f9306f2f"),
    ];
    EXCEPTIONS.iter().any(|(h, hex)| *h == height && hash.to_display_hex() == *hex)
}
