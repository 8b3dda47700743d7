//! Undo data: the coins a block spent (Bitcoin Core's `CBlockUndo`, undo.h), kept in an append-only
//! file so that a reorg of any depth reads them from disk, not memory.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{store_err, UtxoError};
use crate::primitives::encoding::{write_compact_size, write_var_bytes, DecodeError, Reader};
use crate::primitives::{sha256d, BlockHash, Coin, TxOut};

/// The coins a block spent: one list per non-coinbase transaction (in block order), each in input
/// order (Core's `CBlockUndo { vtxundo: [CTxUndo { vprevout }] }`, undo.h).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockUndo {
    /// `spent[i][j]`: the coin input `j` of transaction `i + 1` spent.
    pub spent: Vec<Vec<Coin>>,
}

impl BlockUndo {
    /// The encoding: CompactSize transaction count, then per transaction a CompactSize coin count
    /// and per coin `height * 2 + coinbase` (u32 LE), amount (i64 LE), CompactSize-prefixed script.
    pub fn encode(&self, out: &mut Vec<u8>) {
        write_compact_size(out, self.spent.len() as u64);
        for tx in &self.spent {
            write_compact_size(out, tx.len() as u64);
            for c in tx {
                out.extend_from_slice(&((c.height << 1) | u32::from(c.is_coinbase)).to_le_bytes());
                out.extend_from_slice(&c.out.value.to_le_bytes());
                write_var_bytes(out, &c.out.script_pubkey);
            }
        }
    }

    /// Decodes [`BlockUndo::encode`]'s bytes, all of them.
    pub fn decode(bytes: &[u8]) -> Result<BlockUndo, DecodeError> {
        let mut r = Reader::new(bytes);
        let n = r.compact_size("undo transaction count")?;
        // No capacity from a count read from the file: each item consumes bytes.
        let mut spent = Vec::new();
        for _ in 0..n {
            let m = r.compact_size("undo coin count")?;
            let mut coins = Vec::new();
            for _ in 0..m {
                let code = r.u32_le("undo coin height")?;
                let value = r.i64_le("undo coin amount")?;
                let script_pubkey = r.var_bytes("undo coin script")?;
                coins.push(Coin { out: TxOut { value, script_pubkey }, height: code >> 1, is_coinbase: code & 1 == 1 });
            }
            spent.push(coins);
        }
        if r.remaining() > 0 {
            return Err(DecodeError::TrailingBytes { offset: r.offset(), extra: r.remaining() });
        }
        Ok(BlockUndo { spent })
    }
}

/// Bytes of a record's header: block hash (32) and payload length (u32 LE).
const RECORD_HEADER: usize = 36;

/// An append-only file of [`BlockUndo`] records, found by block hash through an index in memory
/// (48 bytes or so per block). Record: block hash (32 bytes), payload length (u32 LE), payload
/// ([`BlockUndo::encode`]), then SHA-256d of hash and payload (32 bytes), checked on every read
/// (as Core's undo files carry a checksum: node/blockstorage.cpp `WriteBlockUndo`).
pub struct UndoStore {
    path: PathBuf,
    file: File,
    end: u64,
    index: HashMap<BlockHash, (u64, u32)>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for UndoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UndoStore").field("path", &self.path).field("blocks", &self.index.len()).finish()
    }
}

impl UndoStore {
    /// Creates (or truncates) the file at `path`: the store starts empty.
    ///
    /// Errors: [`UtxoError::Store`] when the file cannot be created.
    pub fn create(path: &Path) -> Result<UndoStore, UtxoError> {
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| store_err(path, e))?;
        Ok(UndoStore { path: path.to_path_buf(), file, end: 0, index: HashMap::new(), buf: Vec::new() })
    }

    /// Blocks with undo data stored.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no block has undo data stored.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Bytes in the file (records of forgotten blocks included).
    pub fn file_bytes(&self) -> u64 {
        self.end
    }

    /// Appends `undo` for block `hash` (replacing what an earlier `put` for it stored).
    ///
    /// Errors: [`UtxoError::Store`] when the write fails (the block then has no undo data).
    pub fn put(&mut self, hash: &BlockHash, undo: &BlockUndo) -> Result<(), UtxoError> {
        self.buf.clear();
        self.buf.extend_from_slice(&hash.0);
        self.buf.extend_from_slice(&[0; 4]);
        undo.encode(&mut self.buf);
        let len = self.buf.len() - RECORD_HEADER;
        let len32 = u32::try_from(len).map_err(|_| store_err(&self.path, format!("undo data of {len} bytes")))?;
        self.buf[32..36].copy_from_slice(&len32.to_le_bytes());
        let check = sha256d(&self.buf);
        self.buf.extend_from_slice(&check);
        self.index.remove(hash);
        self.file.seek(SeekFrom::Start(self.end)).map_err(|e| store_err(&self.path, e))?;
        if let Err(e) = self.file.write_all(&self.buf) {
            // A partial record stays behind but is unreachable; the next put overwrites it.
            return Err(store_err(&self.path, e));
        }
        self.index.insert(*hash, (self.end, len32));
        self.end += self.buf.len() as u64;
        Ok(())
    }

    /// The undo data of block `hash`, or `None` when none is stored.
    ///
    /// Errors: [`UtxoError::Store`] when the read fails; [`UtxoError::Corrupt`] when the record's
    /// checksum or encoding is wrong (the file changed on disk).
    pub fn get(&mut self, hash: &BlockHash) -> Result<Option<BlockUndo>, UtxoError> {
        let Some(&(offset, len)) = self.index.get(hash) else {
            return Ok(None);
        };
        let total = RECORD_HEADER + len as usize + 32;
        self.buf.clear();
        self.buf.resize(total, 0);
        self.file.seek(SeekFrom::Start(offset)).map_err(|e| store_err(&self.path, e))?;
        self.file.read_exact(&mut self.buf).map_err(|e| store_err(&self.path, e))?;
        let corrupt = |why: String| UtxoError::Corrupt {
            path: self.path.display().to_string(),
            what: format!("undo record of block {hash} at byte {offset}"),
            why,
        };
        let body = &self.buf[..total - 32];
        if body[..32] != hash.0 || sha256d(body)[..] != self.buf[total - 32..] {
            return Err(corrupt("checksum mismatch".to_string()));
        }
        BlockUndo::decode(&body[RECORD_HEADER..]).map(Some).map_err(|e| corrupt(e.to_string()))
    }

    /// Forgets block `hash`'s undo data (its bytes stay in the file); `true` if there was some.
    pub fn forget(&mut self, hash: &BlockHash) -> bool {
        self.index.remove(hash).is_some()
    }
}
