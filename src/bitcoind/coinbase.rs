//! The coinbase transaction of a `getblocktemplate` block, as Bitcoin Core's own miner builds it
//! (`BlockAssembler::CreateNewBlock`, src/node/miner.cpp), with room for an extranonce: one function
//! per rule, then [`build`] which applies them in order and splits the transaction around the
//! extranonce for Stratum (`coinb1 ++ extranonce ++ coinb2`, the non-witness serialization that the
//! txid hashes).
//!
//! Layout of the scriptSig: `<BIP34 height push> <push of extranonce_size bytes> <tag>`.

use crate::consensus::rules::script_push_number;
use crate::primitives::{deserialize, serialize, OutPoint, Transaction, TxIn, TxOut};

/// The tag powkit's coinbases carry after the extranonce (what block explorers show as the miner).
pub const TAG: &[u8] = b"/powkit/";

/// The largest extranonce that fits one direct push (opcodes 0x01..0x4b push that many bytes).
pub const MAX_EXTRANONCE_SIZE: usize = 75;

/// Why a coinbase cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoinbaseError {
    /// The scriptSig would break `CheckTransaction`'s 2..100-byte rule.
    #[error("coinbase scriptSig would be {0} bytes; consensus allows 2 to 100 (bad-cb-length)")]
    ScriptSigLength(usize),
    /// More extranonce than one direct push holds.
    #[error("extranonce of {0} bytes; at most {MAX_EXTRANONCE_SIZE} fit the coinbase's push")]
    ExtranonceSize(usize),
    /// Height 0 has no coinbase to build (the genesis block is fixed).
    #[error("height 0: the genesis block is not mined from a template")]
    Genesis,
    /// The value is out of Bitcoin's money range.
    #[error("coinbase value {0} satoshis is outside 0..=21,000,000 BTC")]
    Value(i64),
    /// A coinbase handed back for submission does not parse or is not this template's.
    #[error("coinbase: {0}")]
    Malformed(String),
}

/// BIP34 ("Block v2, Height in Coinbase"): the scriptSig starts with the height pushed as
/// `CScript() << nHeight`, i.e. `OP_1`..`OP_16` for 1..16, else a minimal little-endian script
/// number (Core's `CScript::push_int64`, checked by `ContextualCheckBlock`'s "bad-cb-height").
pub fn bip34_height_push(height: u32) -> Vec<u8> {
    script_push_number(height as i64)
}

/// The extranonce field: one direct push (opcode = size) of `size` bytes, so any bytes a miner puts
/// there keep the scriptSig a valid sequence of pushes. Returns the opcode.
pub fn extranonce_push_opcode(size: usize) -> Result<u8, CoinbaseError> {
    if size > MAX_EXTRANONCE_SIZE {
        return Err(CoinbaseError::ExtranonceSize(size));
    }
    Ok(size as u8)
}

/// Consensus: a coinbase's scriptSig is 2 to 100 bytes (Core's `CheckTransaction`,
/// src/consensus/tx_check.cpp, "bad-cb-length").
pub fn script_sig_length_is_valid(len: usize) -> Result<(), CoinbaseError> {
    if (2..=100).contains(&len) {
        Ok(())
    } else {
        Err(CoinbaseError::ScriptSigLength(len))
    }
}

/// Core's miner time-locks the coinbase to the block's height: `nLockTime = nHeight - 1` with
/// `nSequence = MAX_SEQUENCE_NONFINAL` (0xfffffffe) so the lock is enforced (src/node/miner.cpp,
/// Core 29 and later; the lock time is below the block's height, so the coinbase is final).
pub fn lock_time_and_sequence(height: u32) -> Result<(u32, u32), CoinbaseError> {
    let lock = height.checked_sub(1).ok_or(CoinbaseError::Genesis)?;
    Ok((lock, 0xffff_fffe))
}

/// Core's `MAX_MONEY` (src/consensus/amount.h): 21 million BTC in satoshis.
pub const MAX_MONEY: i64 = 21_000_000 * 100_000_000;

/// The outputs: the template's `coinbasevalue` (subsidy + fees, satoshis) to the payout script,
/// then, when the template gives one, its `default_witness_commitment` script with value 0 (BIP141:
/// "the commitment is recorded in a scriptPubKey of the coinbase transaction"; Core's
/// `GenerateCoinbaseCommitment` appends it after the payout).
pub fn outputs(value: i64, payout: &[u8], witness_commitment: Option<&[u8]>) -> Result<Vec<TxOut>, CoinbaseError> {
    if !(0..=MAX_MONEY).contains(&value) {
        return Err(CoinbaseError::Value(value));
    }
    let mut out = vec![TxOut { value, script_pubkey: payout.to_vec() }];
    if let Some(c) = witness_commitment {
        out.push(TxOut { value: 0, script_pubkey: c.to_vec() });
    }
    Ok(out)
}

/// BIP141: a block that commits to witnesses has a coinbase witness of exactly one 32-byte item,
/// the witness reserved value (all zeros here; Core checks the size, "bad-witness-nonce-size").
pub fn witness_reserved_value() -> Vec<Vec<u8>> {
    vec![vec![0u8; 32]]
}

/// A coinbase split around its extranonce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoinbaseSplit {
    /// Serialized (non-witness) transaction up to the extranonce.
    pub coinb1: Vec<u8>,
    /// Serialized (non-witness) transaction after the extranonce.
    pub coinb2: Vec<u8>,
    /// Bytes between them.
    pub extranonce_size: usize,
    /// Whether the block needs the coinbase witness (the template had a witness commitment).
    pub witness: bool,
}

impl CoinbaseSplit {
    /// The non-witness coinbase with `extranonce` (which must be `extranonce_size` bytes).
    pub fn with_extranonce(&self, extranonce: &[u8]) -> Vec<u8> {
        assert_eq!(extranonce.len(), self.extranonce_size, "extranonce size");
        [&self.coinb1[..], extranonce, &self.coinb2[..]].concat()
    }

    /// The coinbase as the block carries it: `coinbase` (coinb1 + extranonce + coinb2, what the
    /// txid hashes) with the witness reserved value added when the template committed to witnesses
    /// (BIP144 serialization), else as given.
    ///
    /// # Errors
    /// [`CoinbaseError::Malformed`]: `coinbase` does not start with coinb1 and end with coinb2 with
    /// `extranonce_size` bytes between, or does not parse as a transaction.
    pub fn for_block(&self, coinbase: &[u8]) -> Result<Transaction, CoinbaseError> {
        if coinbase.len() != self.coinb1.len() + self.extranonce_size + self.coinb2.len()
            || !coinbase.starts_with(&self.coinb1)
            || !coinbase.ends_with(&self.coinb2)
        {
            return Err(CoinbaseError::Malformed(format!(
                "{} bytes are not this template's coinb1 + {} extranonce bytes + coinb2",
                coinbase.len(),
                self.extranonce_size
            )));
        }
        let mut tx: Transaction = deserialize(coinbase).map_err(|e| CoinbaseError::Malformed(e.to_string()))?;
        if self.witness {
            tx.inputs[0].witness = witness_reserved_value();
        }
        Ok(tx)
    }
}

/// Builds the coinbase of the block at `height` paying `value` satoshis to `payout`, with the
/// template's witness commitment script if any, split around `extranonce_size` bytes. Transaction
/// version 2 (Core's `CTransaction::CURRENT_VERSION`), one input spending the null outpoint.
///
/// # Errors
/// Height 0, an extranonce over 75 bytes, a scriptSig outside 2..100 bytes, a value out of range.
pub fn build(
    height: u32,
    value: i64,
    payout: &[u8],
    witness_commitment: Option<&[u8]>,
    extranonce_size: usize,
) -> Result<CoinbaseSplit, CoinbaseError> {
    let (lock_time, sequence) = lock_time_and_sequence(height)?;
    let height_push = bip34_height_push(height);
    let opcode = extranonce_push_opcode(extranonce_size)?;
    let mut script_sig = height_push.clone();
    script_sig.push(opcode);
    script_sig.resize(script_sig.len() + extranonce_size, 0);
    script_sig.extend_from_slice(TAG);
    script_sig_length_is_valid(script_sig.len())?;
    let tx = Transaction {
        version: 2,
        inputs: vec![TxIn { prevout: OutPoint::NULL, script_sig: script_sig.clone(), sequence, witness: vec![] }],
        outputs: outputs(value, payout, witness_commitment)?,
        lock_time,
    };
    let bytes = serialize(&tx);
    // version (4), input count (1), prevout (36), scriptSig length, height push, push opcode.
    let script_start = 4 + 1 + 36 + crate::primitives::encoding::compact_size_len(script_sig.len() as u64);
    let en_start = script_start + height_push.len() + 1;
    debug_assert_eq!(&bytes[script_start..script_start + script_sig.len()], &script_sig[..]);
    Ok(CoinbaseSplit {
        coinb1: bytes[..en_start].to_vec(),
        coinb2: bytes[en_start + extranonce_size..].to_vec(),
        extranonce_size,
        witness: witness_commitment.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::params::BitcoinNetwork;
    use crate::consensus::rules;
    use crate::primitives::{Block, BlockHeader, Encodable, TxMerkleNode};

    #[test]
    fn bip34_height_pushes_are_cores() {
        // CScript() << nHeight, as Core serializes it (script.h push_int64, CScriptNum::serialize).
        let cases: &[(u32, &str)] = &[
            (1, "51"),
            (16, "60"),
            (17, "0111"),
            (127, "017f"),
            (128, "028000"),
            (255, "02ff00"),
            (256, "020001"),
            (65535, "03ffff00"),
            (65536, "03000001"),
            (8_388_607, "03ffff7f"),
            (8_388_608, "0400008000"),
        ];
        for &(h, want) in cases {
            assert_eq!(hex::encode(bip34_height_push(h)), want, "height {h}");
        }
    }

    #[test]
    fn a_real_mainnet_coinbase_starts_with_our_height_push() {
        // Block 277647 (BIP34 active since 227931): its coinbase scriptSig begins 03 8f3c04.
        let Some(recs) = crate::validate::read::shared_blk_records("single-blocks/277647.blk") else { return };
        let block = Block::from_bytes(&recs[0]).unwrap();
        let sig = &block.txdata[0].inputs[0].script_sig;
        assert_eq!(hex::encode(&sig[..4]), "038f3c04");
        assert!(sig.starts_with(&bip34_height_push(277_647)));
        // And Core's own rule agrees with a coinbase we build at that height.
        let split = build(277_647, 25 * 100_000_000, &[0x51], None, 8).unwrap();
        let mut b = block.clone();
        b.txdata = vec![split.for_block(&split.with_extranonce(&[7; 8])).unwrap()];
        rules::coinbase_has_height(&b, 277_647, &BitcoinNetwork::Bitcoin.params()).unwrap();
    }

    #[test]
    fn split_is_around_the_extranonce_and_matches_cores_layout() {
        let payout = hex::decode("76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac").unwrap();
        let commitment = hex::decode(format!("6a24aa21a9ed{}", "ab".repeat(32))).unwrap();
        for (h, en) in [(1u32, 8usize), (16, 0), (17, 4), (300_000, 12)] {
            let s = build(h, 5_000_000_000, &payout, Some(&commitment), en).unwrap();
            let en_bytes: Vec<u8> = (0..en as u8).collect();
            let legacy = s.with_extranonce(&en_bytes);
            let tx: Transaction = deserialize(&legacy).unwrap();
            assert!(tx.is_coinbase());
            assert_eq!(tx.version, 2);
            let sig = &tx.inputs[0].script_sig;
            let hp = bip34_height_push(h);
            assert!(sig.starts_with(&hp));
            assert_eq!(sig[hp.len()] as usize, en);
            assert_eq!(&sig[hp.len() + 1..hp.len() + 1 + en], &en_bytes[..]);
            assert!(sig.ends_with(TAG));
            assert_eq!(tx.inputs[0].sequence, 0xffff_fffe);
            assert_eq!(tx.lock_time, h - 1);
            assert_eq!(tx.outputs[0].value, 5_000_000_000);
            assert_eq!(tx.outputs[0].script_pubkey, payout);
            assert_eq!(tx.outputs[1].value, 0);
            assert_eq!(tx.outputs[1].script_pubkey, commitment);
            rules::transaction_is_well_formed(&tx, 0).unwrap();
            // The block's coinbase: same txid, plus one 32-byte zero witness item.
            let full = s.for_block(&legacy).unwrap();
            assert_eq!(full.txid(), tx.txid());
            assert_eq!(full.inputs[0].witness, vec![vec![0u8; 32]]);
            let mut ser = Vec::new();
            full.consensus_encode(&mut ser);
            assert_eq!(&ser[4..6], &[0, 1], "BIP144 marker and flag");
        }
    }

    #[test]
    fn a_block_from_the_split_passes_cores_witness_commitment_rule() {
        // A one-transaction block: the witness root is the coinbase's (zero) wtxid, so the
        // commitment is sha256d(zero || zero reserved value), as Core's GenerateCoinbaseCommitment.
        let root = crate::primitives::sha256d(&[0u8; 64]);
        let commitment = [&hex::decode("6a24aa21a9ed").unwrap()[..], &root[..]].concat();
        let s = build(500, 5_000_000_000, &[0x51], Some(&commitment), 8).unwrap();
        let cb = s.for_block(&s.with_extranonce(&[1; 8])).unwrap();
        let header = BlockHeader {
            version: 0x2000_0000,
            prev_blockhash: crate::primitives::BlockHash([0; 32]),
            merkle_root: TxMerkleNode(cb.txid().0),
            time: 0,
            bits: crate::primitives::CompactTarget(0x207f_ffff),
            nonce: 0,
        };
        let b = Block { header, txdata: vec![cb] };
        let p = BitcoinNetwork::BitcoinRegtest.params();
        rules::witness_commitment_is_valid(&b, 500, &p).unwrap();
        rules::coinbase_has_height(&b, 500, &p).unwrap();
        rules::merkle_root_is_valid(&b).unwrap();
    }

    #[test]
    fn bad_inputs_are_clear_errors() {
        assert_eq!(build(0, 1, &[0x51], None, 4), Err(CoinbaseError::Genesis));
        assert_eq!(build(1, 1, &[0x51], None, 76), Err(CoinbaseError::ExtranonceSize(76)));
        // 4-byte height push + opcode + 75 + tag (8) = 88: fine; the limit is 100.
        assert!(build(8_388_608, 1, &[0x51], None, 75).is_ok());
        assert_eq!(build(1, -1, &[0x51], None, 4), Err(CoinbaseError::Value(-1)));
        assert_eq!(build(1, MAX_MONEY + 1, &[0x51], None, 4), Err(CoinbaseError::Value(MAX_MONEY + 1)));
        assert!(script_sig_length_is_valid(1).is_err() && script_sig_length_is_valid(101).is_err());
        let s = build(5, 1, &[0x51], None, 4).unwrap();
        assert!(matches!(s.for_block(&s.with_extranonce(&[0; 4])[1..]), Err(CoinbaseError::Malformed(_))));
    }
}
