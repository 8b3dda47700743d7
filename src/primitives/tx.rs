//! Bitcoin transactions and blocks, legacy and segwit (BIP144) serialization.

use super::encoding::{
    compact_size_len, deserialize, var_bytes_len, write_compact_size, write_var_bytes, Decodable, DecodeError,
    Encodable, Reader, MAX_COMPACT_SIZE,
};
use super::hash::{Txid, Wtxid};
use super::header::{sha256d, BlockHeader};

/// A reference to an output of an earlier transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OutPoint {
    /// The transaction.
    pub txid: Txid,
    /// The output's index.
    pub vout: u32,
}

impl OutPoint {
    /// The null outpoint a coinbase input spends (zero txid, index `0xffffffff`).
    pub const NULL: OutPoint = OutPoint { txid: Txid::ZERO, vout: u32::MAX };

    /// Whether this is the null outpoint.
    pub fn is_null(&self) -> bool {
        *self == OutPoint::NULL
    }
}

/// A transaction input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxIn {
    /// The output it spends.
    pub prevout: OutPoint,
    /// The unlocking script (for a coinbase: arbitrary data, BIP34 height first).
    pub script_sig: Vec<u8>,
    /// The sequence number.
    pub sequence: u32,
    /// The witness stack (empty when none).
    pub witness: Vec<Vec<u8>>,
}

/// A transaction output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxOut {
    /// Value in satoshis (signed on the wire, as in Bitcoin).
    pub value: i64,
    /// The locking script.
    pub script_pubkey: Vec<u8>,
}

/// An unspent transaction output as the UTXO set keeps it (Bitcoin Core's `Coin`, coins.h): the
/// output, the height of the block that created it and whether a coinbase did (coinbase maturity).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coin {
    /// The output: value (satoshis) and locking script.
    pub out: TxOut,
    /// Height of the block whose transaction created it.
    pub height: u32,
    /// Whether that transaction is the block's coinbase.
    pub is_coinbase: bool,
}

/// A transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    /// Version.
    pub version: i32,
    /// Inputs.
    pub inputs: Vec<TxIn>,
    /// Outputs.
    pub outputs: Vec<TxOut>,
    /// Lock time.
    pub lock_time: u32,
}

fn read_vec<T>(
    r: &mut Reader<'_>,
    what: &'static str,
    mut item: impl FnMut(&mut Reader<'_>) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let n = r.compact_size(what)?;
    // No capacity from an untrusted count: each item consumes bytes, so a lying count ends at EOF.
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(item(r)?);
    }
    Ok(v)
}

impl Transaction {
    /// Whether any input carries witness data.
    pub fn has_witness(&self) -> bool {
        self.inputs.iter().any(|i| !i.witness.is_empty())
    }

    /// Whether this is a coinbase: exactly one input, spending the null outpoint.
    pub fn is_coinbase(&self) -> bool {
        self.inputs.len() == 1 && self.inputs[0].prevout.is_null()
    }

    fn encode_with(&self, out: &mut Vec<u8>, witness: bool) {
        out.extend_from_slice(&self.version.to_le_bytes());
        if witness {
            out.extend_from_slice(&[0x00, 0x01]);
        }
        write_compact_size(out, self.inputs.len() as u64);
        for i in &self.inputs {
            out.extend_from_slice(&i.prevout.txid.0);
            out.extend_from_slice(&i.prevout.vout.to_le_bytes());
            write_var_bytes(out, &i.script_sig);
            out.extend_from_slice(&i.sequence.to_le_bytes());
        }
        write_compact_size(out, self.outputs.len() as u64);
        for o in &self.outputs {
            out.extend_from_slice(&o.value.to_le_bytes());
            write_var_bytes(out, &o.script_pubkey);
        }
        if witness {
            for i in &self.inputs {
                write_compact_size(out, i.witness.len() as u64);
                for item in &i.witness {
                    write_var_bytes(out, item);
                }
            }
        }
        out.extend_from_slice(&self.lock_time.to_le_bytes());
    }

    /// The serialization without witness data (what the txid hashes).
    pub fn legacy_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_with(&mut out, false);
        out
    }

    /// The transaction id.
    pub fn txid(&self) -> Txid {
        Txid(sha256d(&self.legacy_bytes()))
    }

    /// The transaction id, serializing into `buf` (cleared first) instead of a fresh vector: bulk
    /// paths hash thousands of transactions with one buffer.
    pub fn txid_with(&self, buf: &mut Vec<u8>) -> Txid {
        buf.clear();
        self.encode_with(buf, false);
        Txid(sha256d(buf))
    }

    /// The witness transaction id (equal to the txid's bytes when there is no witness).
    pub fn wtxid(&self) -> Wtxid {
        let mut out = Vec::new();
        self.consensus_encode(&mut out);
        Wtxid(sha256d(&out))
    }

    /// Size without witness data (BIP141 "base size"), counted without serializing.
    pub fn base_size(&self) -> usize {
        8 + compact_size_len(self.inputs.len() as u64)
            + self.inputs.iter().map(|i| 40 + var_bytes_len(i.script_sig.len())).sum::<usize>()
            + compact_size_len(self.outputs.len() as u64)
            + self.outputs.iter().map(|o| 8 + var_bytes_len(o.script_pubkey.len())).sum::<usize>()
    }

    /// Size with witness data ("total size"): the base size, plus the marker, flag and witness
    /// stacks when any input has one.
    pub fn total_size(&self) -> usize {
        if !self.has_witness() {
            return self.base_size();
        }
        let witness: usize = self
            .inputs
            .iter()
            .map(|i| {
                compact_size_len(i.witness.len() as u64)
                    + i.witness.iter().map(|w| var_bytes_len(w.len())).sum::<usize>()
            })
            .sum();
        self.base_size() + 2 + witness
    }

    /// BIP141 weight: base size x 3 + total size.
    pub fn weight(&self) -> usize {
        self.base_size() * 3 + self.total_size()
    }
}

impl Encodable for Transaction {
    fn consensus_encode(&self, out: &mut Vec<u8>) {
        self.encode_with(out, self.has_witness());
    }
}

impl Decodable for Transaction {
    /// Bitcoin Core's `UnserializeTransaction` (src/primitives/transaction.h), witness allowed.
    fn consensus_decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = r.i32_le("tx version")?;
        let read_in = |r: &mut Reader<'_>| -> Result<TxIn, DecodeError> {
            Ok(TxIn {
                prevout: OutPoint { txid: Txid(r.array("prevout txid")?), vout: r.u32_le("prevout index")? },
                script_sig: r.var_bytes("scriptSig")?,
                sequence: r.u32_le("sequence")?,
                witness: Vec::new(),
            })
        };
        let read_out = |r: &mut Reader<'_>| -> Result<TxOut, DecodeError> {
            Ok(TxOut { value: r.i64_le("output value")?, script_pubkey: r.var_bytes("scriptPubKey")? })
        };
        let mut inputs = read_vec(r, "input count", read_in)?;
        let mut flags = 0u8;
        let outputs;
        if inputs.is_empty() {
            // An empty input list is the segwit marker; the next byte is the flag.
            flags = r.u8("segwit flag")?;
            if flags != 0 {
                inputs = read_vec(r, "input count", read_in)?;
                outputs = read_vec(r, "output count", read_out)?;
            } else {
                outputs = Vec::new();
            }
        } else {
            outputs = read_vec(r, "output count", read_out)?;
        }
        if flags & 1 != 0 {
            flags ^= 1;
            for i in inputs.iter_mut() {
                i.witness = read_vec(r, "witness item count", |r| r.var_bytes("witness item"))?;
            }
            if !inputs.iter().any(|i| !i.witness.is_empty()) {
                return Err(DecodeError::Invalid {
                    offset: r.offset(),
                    what: "transaction",
                    why: "superfluous witness record (segwit flag with no witness data)",
                });
            }
        }
        if flags != 0 {
            return Err(DecodeError::Invalid {
                offset: r.offset(),
                what: "transaction",
                why: "unknown optional data flag",
            });
        }
        let lock_time = r.u32_le("lock time")?;
        Ok(Transaction { version, inputs, outputs, lock_time })
    }
}

/// A block: a header and its transactions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// The transactions, coinbase first.
    pub txdata: Vec<Transaction>,
}

impl Block {
    /// Decodes exactly one block from `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Block, DecodeError> {
        deserialize(bytes)
    }

    /// The serialized size with witness data.
    pub fn total_size(&self) -> usize {
        let mut out = Vec::new();
        self.consensus_encode(&mut out);
        out.len()
    }
}

impl Encodable for Block {
    fn consensus_encode(&self, out: &mut Vec<u8>) {
        self.header.consensus_encode(out);
        write_compact_size(out, self.txdata.len() as u64);
        for tx in &self.txdata {
            tx.consensus_encode(out);
        }
    }
}

impl Decodable for Block {
    fn consensus_decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let header = BlockHeader::consensus_decode(r)?;
        let n = r.compact_size("transaction count")?;
        debug_assert!(n <= MAX_COMPACT_SIZE);
        let mut txdata = Vec::new();
        for _ in 0..n {
            txdata.push(Transaction::consensus_decode(r)?);
        }
        Ok(Block { header, txdata })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::encoding::serialize;

    use crate::validate::read::shared_blk_records as blk_records;

    #[test]
    fn real_blocks_round_trip_and_merkle_roots_match() {
        let mut files = vec![];
        for f in [
            "mainnet-000000-000255.blk",
            "single-blocks/277647.blk",
            "single-blocks/574200.blk",
            "single-blocks/540107.blk",
        ] {
            if let Some(r) = blk_records(f) {
                files.push((f, r));
            }
        }
        for (f, records) in files {
            for raw in records {
                let b = Block::from_bytes(&raw).unwrap_or_else(|e| panic!("{f}: {e}"));
                assert_eq!(serialize(&b), raw, "{f}: re-encoding is byte-identical");
                for t in &b.txdata {
                    assert_eq!(t.base_size(), t.legacy_bytes().len(), "{f}: counted base size");
                    assert_eq!(t.total_size(), serialize(t).len(), "{f}: counted total size");
                }
                let txids: Vec<[u8; 32]> = b.txdata.iter().map(|t| t.txid().0).collect();
                let root = crate::sha256::merkle::root(&txids).unwrap();
                assert_eq!(root, b.header.merkle_root.0, "{f}: merkle root");
                assert!(b.txdata[0].is_coinbase());
            }
        }
    }

    #[test]
    fn segwit_block_has_witness_transactions() {
        let Some(r) = blk_records("single-blocks/574200.blk") else { return };
        let b = Block::from_bytes(&r[0]).unwrap();
        assert_eq!(b.txdata.len(), 3315);
        assert_eq!(b.txdata.iter().filter(|t| t.has_witness()).count(), 1341);
        assert_eq!(
            b.header.block_hash().to_string(),
            "0000000000000000001602407ac49862a7bca9d00f7f402db20b7be2f5de59d2"
        );
    }

    #[test]
    fn non_canonical_and_malformed_transactions_are_rejected() {
        // A minimal legacy tx: 1 input, 1 output.
        let tx = Transaction {
            version: 1,
            inputs: vec![TxIn {
                prevout: OutPoint::NULL,
                script_sig: vec![1, 2],
                sequence: 0xffff_ffff,
                witness: vec![],
            }],
            outputs: vec![TxOut { value: 50, script_pubkey: vec![0x51] }],
            lock_time: 0,
        };
        let raw = serialize(&tx);
        assert_eq!(deserialize::<Transaction>(&raw).unwrap(), tx);
        // Input count 1 written as 0xfd 0x01 0x00: non-canonical.
        let mut bad = raw[..4].to_vec();
        bad.extend_from_slice(&[0xfd, 0x01, 0x00]);
        bad.extend_from_slice(&raw[5..]);
        assert!(matches!(
            deserialize::<Transaction>(&bad),
            Err(DecodeError::NonCanonicalCompactSize { offset: 4, .. })
        ));
        // Trailing byte.
        let mut long = raw.clone();
        long.push(0);
        assert!(matches!(deserialize::<Transaction>(&long), Err(DecodeError::TrailingBytes { .. })));
        // Segwit flag with no witness data.
        let mut sw = tx.clone();
        sw.inputs[0].witness = vec![vec![7]];
        let mut raw_sw = serialize(&sw);
        assert_eq!(deserialize::<Transaction>(&raw_sw).unwrap(), sw);
        let n = raw_sw.len();
        // Replace the witness (count 1, item len 1, byte 7) with an empty stack (count 0).
        raw_sw.splice(n - 7..n - 4, [0u8]);
        assert!(matches!(deserialize::<Transaction>(&raw_sw), Err(DecodeError::Invalid { .. })));
        // A count above Bitcoin Core's MAX_SIZE is refused at once.
        let mut huge = raw[..4].to_vec();
        huge.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0x02]);
        assert!(matches!(deserialize::<Transaction>(&huge), Err(DecodeError::TooLong { offset: 4, .. })));
        // A count just under it that the input cannot back ends at EOF, without allocating for it.
        let mut lying = raw[..4].to_vec();
        lying.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0x01]);
        assert!(matches!(deserialize::<Transaction>(&lying), Err(DecodeError::UnexpectedEnd { .. })));
    }
}
