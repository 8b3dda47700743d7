//! The UTXO set's figures as Bitcoin Core's `gettxoutsetinfo` reports them
//! (kernel/coinstats.cpp, `ComputeUTXOStats` with `CoinStatsHashType::HASH_SERIALIZED`).

use sha2::{Digest, Sha256};

use super::KEY_SIZE;

/// The UTXO set's figures, equal to Bitcoin Core's `gettxoutsetinfo` (default hash type
/// `hash_serialized_3`) for the same set.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct UtxoStats {
    /// Unspent outputs (`txouts`).
    pub txouts: u64,
    /// Distinct transactions with at least one unspent output (`transactions`).
    pub transactions: u64,
    /// Sum of the outputs' amounts in satoshis (`total_amount`, which the RPC shows in BTC);
    /// `None` when the sum overflows an `i64`, as Core's `CheckedAdd` makes it.
    pub total_amount: Option<i64>,
    /// Core's database-independent size metric (`bogosize`): per output 32 + 4 + 4 + 8 + 2 bytes
    /// plus the script's length (`GetBogoSize`).
    pub bogosize: u64,
    /// `hash_serialized_3` in display order (byte-reversed hex), as the RPC prints it.
    pub hash_serialized_3: String,
}

/// The streaming form of Core's `ComputeUTXOStats`: coins must come in key order (txid bytes,
/// then output index), as Core's cursor yields them, so the per-txid `std::map<uint32_t, Coin>`
/// Core builds is simply the run of equal txids.
#[derive(Default)]
pub(super) struct Accumulator {
    hasher: Sha256,
    prev_txid: Option<[u8; 32]>,
    txouts: u64,
    transactions: u64,
    total: Option<i64>,
    overflowed: bool,
    bogosize: u64,
    buf: Vec<u8>,
}

impl Accumulator {
    /// Adds one coin: `key` its [`super::outpoint_key`], `code` = height * 2 + coinbase.
    pub(super) fn add(&mut self, key: &[u8; KEY_SIZE], code: u32, value: i64, script: &[u8]) {
        let txid: [u8; 32] = key[..32].try_into().expect("32 bytes");
        if self.prev_txid != Some(txid) {
            // `ApplyStats` once per txid group.
            self.transactions += 1;
            self.prev_txid = Some(txid);
        }
        self.txouts += 1;
        if !self.overflowed {
            self.total = self.total.unwrap_or(0).checked_add(value);
            self.overflowed = self.total.is_none();
        }
        // GetBogoSize: txid, vout, height and coinbase, amount, script length, script.
        self.bogosize += 32 + 4 + 4 + 8 + 2 + script.len() as u64;
        // TxOutSer: COutPoint (txid, n u32 LE), u32 LE (height << 1 | coinbase), CTxOut (amount i64
        // LE, script with its CompactSize length).
        self.buf.clear();
        self.buf.extend_from_slice(&txid);
        self.buf.extend_from_slice(&u32::from_be_bytes(key[32..].try_into().expect("4 bytes")).to_le_bytes());
        self.buf.extend_from_slice(&code.to_le_bytes());
        self.buf.extend_from_slice(&value.to_le_bytes());
        crate::primitives::encoding::write_compact_size(&mut self.buf, script.len() as u64);
        self.hasher.update(&self.buf);
        self.hasher.update(script);
    }

    /// The figures: `HashWriter::GetHash` is SHA-256 of the SHA-256 of the stream, shown reversed.
    pub(super) fn finish(self) -> UtxoStats {
        let first = self.hasher.finalize();
        let mut hash: [u8; 32] = Sha256::digest(first).into();
        hash.reverse();
        UtxoStats {
            txouts: self.txouts,
            transactions: self.transactions,
            total_amount: if self.overflowed { None } else { Some(self.total.unwrap_or(0)) },
            bogosize: self.bogosize,
            hash_serialized_3: hex::encode(hash),
        }
    }
}
