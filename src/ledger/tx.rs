//! powkit transactions and their canonical encoding (docs/CONSENSUS.md, "Transactions").
//!
//! Every field has a fixed width, so each transaction has exactly one encoding: decoding rejects
//! an unknown kind byte, a short input and trailing bytes, and re-encoding gives the input back.
//!
//! ```text
//! coinbase: 0x00 | height u32 LE | extranonce [12] | recipient [32] | amount u64 LE
//!                | state_root [32]                                                          (89 bytes)
//! transfer: 0x01 | chain_id u32 LE | from [32] | to [32] | amount u64 LE | fee u64 LE
//!                | nonce u64 LE | signature [64]                                            (157 bytes)
//! ```
//!
//! The coinbase's extranonce (consensus version 3) is free for miners: a Stratum job splits the
//! encoding around it as coinb1 (kind and height, 5 bytes) + extranonce + coinb2 (the other 72
//! bytes), see [`Coinbase::stratum_split`].
//!
//! txid = SHA-256d(encoding). A transfer's signature is Ed25519 (ZIP-215 rules, `crate::sigs`)
//! by `from` over [`Transfer::signing_hash`]: SHA-256d of the domain tag `powkit/transfer/v1` and
//! every other field, so a signature is valid for one chain id and one transaction only.

use super::ids::{AccountKey, StateRoot};
use crate::primitives::encoding::{deserialize, Decodable, DecodeError, Encodable, Reader};
use crate::primitives::{sha256d, Txid};

/// Bytes in an encoded coinbase.
pub const COINBASE_SIZE: usize = 89;
/// Bytes in a coinbase's extranonce field (consensus version 3): room for a Stratum server's 4-byte
/// extranonce1 and a miner's 8-byte extranonce2.
pub const COINBASE_EXTRANONCE_SIZE: usize = 12;
/// Offset of the extranonce field in an encoded coinbase (after the kind byte and the height).
pub const COINBASE_EXTRANONCE_OFFSET: usize = 5;
/// Bytes in an encoded transfer.
pub const TRANSFER_SIZE: usize = 157;
/// The domain tag of transfer signatures.
pub const TRANSFER_DOMAIN: &[u8] = b"powkit/transfer/v1";

/// The first transaction of every block: the block reward and the state commitment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Coinbase {
    /// The block's height (makes every coinbase, and so every txid, unique).
    pub height: u32,
    /// Bytes free for the miner (no rule reads them): they change the txid, so the merkle root,
    /// so the header a miner searches, when the 32-bit nonce is exhausted.
    pub extranonce: [u8; COINBASE_EXTRANONCE_SIZE],
    /// The account credited.
    pub recipient: AccountKey,
    /// At most the subsidy plus the block's fees.
    pub amount: u64,
    /// The state root after the whole block is applied.
    pub state_root: StateRoot,
}

/// A signed payment from one account to another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// The chain it is valid on (no replay across chains).
    pub chain_id: u32,
    /// The payer's Ed25519 public key.
    pub from: AccountKey,
    /// The payee's public key.
    pub to: AccountKey,
    /// Amount moved.
    pub amount: u64,
    /// Fee to the block's miner.
    pub fee: u64,
    /// Must equal the payer's account nonce (no replay within the chain).
    pub nonce: u64,
    /// Ed25519 signature by `from` over [`Transfer::signing_hash`].
    pub signature: [u8; 64],
}

/// A powkit transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LedgerTx {
    /// Kind byte 0.
    Coinbase(Coinbase),
    /// Kind byte 1.
    Transfer(Transfer),
}

impl Transfer {
    /// The 32 bytes the payer signs: SHA-256d(`powkit/transfer/v1` || chain_id || from || to ||
    /// amount || fee || nonce), integers little-endian.
    pub fn signing_hash(&self) -> [u8; 32] {
        let mut m = Vec::with_capacity(TRANSFER_DOMAIN.len() + 4 + 64 + 24);
        m.extend_from_slice(TRANSFER_DOMAIN);
        m.extend_from_slice(&self.chain_id.to_le_bytes());
        m.extend_from_slice(self.from.as_bytes());
        m.extend_from_slice(self.to.as_bytes());
        m.extend_from_slice(&self.amount.to_le_bytes());
        m.extend_from_slice(&self.fee.to_le_bytes());
        m.extend_from_slice(&self.nonce.to_le_bytes());
        sha256d(&m)
    }

    /// Signs with `key` (sets `from` to its public key and fills `signature`).
    pub fn sign(mut self, key: &ed25519_zebra::SigningKey) -> Transfer {
        self.from = AccountKey(ed25519_zebra::VerificationKeyBytes::from(key).into());
        self.signature = key.sign(&self.signing_hash()).to_bytes();
        self
    }
}

impl Encodable for LedgerTx {
    /// The canonical encoding: kind byte 0 (coinbase) or 1 (transfer), then the fixed-width fields.
    fn consensus_encode(&self, out: &mut Vec<u8>) {
        match self {
            LedgerTx::Coinbase(c) => {
                out.push(0);
                out.extend_from_slice(&c.height.to_le_bytes());
                out.extend_from_slice(&c.extranonce);
                c.recipient.consensus_encode(out);
                out.extend_from_slice(&c.amount.to_le_bytes());
                c.state_root.consensus_encode(out);
            }
            LedgerTx::Transfer(t) => {
                out.push(1);
                out.extend_from_slice(&t.chain_id.to_le_bytes());
                t.from.consensus_encode(out);
                t.to.consensus_encode(out);
                out.extend_from_slice(&t.amount.to_le_bytes());
                out.extend_from_slice(&t.fee.to_le_bytes());
                out.extend_from_slice(&t.nonce.to_le_bytes());
                out.extend_from_slice(&t.signature);
            }
        }
    }
}

impl Decodable for LedgerTx {
    fn consensus_decode(r: &mut Reader<'_>) -> Result<LedgerTx, DecodeError> {
        let at = r.offset();
        match r.u8("transaction kind")? {
            0 => Ok(LedgerTx::Coinbase(Coinbase {
                height: r.u32_le("coinbase height")?,
                extranonce: r.array("coinbase extranonce")?,
                recipient: AccountKey(r.array("coinbase recipient")?),
                amount: r.u64_le("coinbase amount")?,
                state_root: StateRoot(r.array("coinbase state root")?),
            })),
            1 => Ok(LedgerTx::Transfer(Transfer {
                chain_id: r.u32_le("transfer chain id")?,
                from: AccountKey(r.array("transfer sender")?),
                to: AccountKey(r.array("transfer recipient")?),
                amount: r.u64_le("transfer amount")?,
                fee: r.u64_le("transfer fee")?,
                nonce: r.u64_le("transfer nonce")?,
                signature: r.array("transfer signature")?,
            })),
            _ => Err(DecodeError::Invalid {
                offset: at,
                what: "transaction kind",
                why: "not 0 (coinbase) or 1 (transfer)",
            }),
        }
    }
}

impl Coinbase {
    /// The encoding split for Stratum around the last `extranonce_size` bytes of the extranonce
    /// field: `(coinb1, coinb2)` with `coinb1 ++ extranonce ++ coinb2` the full encoding (89 bytes)
    /// and its SHA-256d the txid. The first `12 - extranonce_size` extranonce bytes stay in coinb1
    /// as this coinbase has them.
    ///
    /// # Errors
    /// `extranonce_size` is over [`COINBASE_EXTRANONCE_SIZE`] (12).
    pub fn stratum_split(&self, extranonce_size: usize) -> Result<(Vec<u8>, Vec<u8>), String> {
        if extranonce_size > COINBASE_EXTRANONCE_SIZE {
            return Err(format!(
                "an extranonce of {extranonce_size} bytes does not fit a powkit coinbase (at most \
                 {COINBASE_EXTRANONCE_SIZE})"
            ));
        }
        let b = LedgerTx::Coinbase(*self).to_bytes();
        let at = COINBASE_EXTRANONCE_OFFSET + COINBASE_EXTRANONCE_SIZE;
        Ok((b[..at - extranonce_size].to_vec(), b[at..].to_vec()))
    }
}

impl LedgerTx {
    /// The canonical encoding ([`Encodable`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(TRANSFER_SIZE);
        self.consensus_encode(&mut v);
        v
    }

    /// Decodes exactly one transaction (trailing bytes are an error).
    pub fn from_bytes(b: &[u8]) -> Result<LedgerTx, DecodeError> {
        deserialize(b)
    }

    /// SHA-256d of the encoding (displayed byte-reversed, as Bitcoin's txids are).
    pub fn txid(&self) -> Txid {
        Txid(sha256d(&self.to_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transfer() -> Transfer {
        Transfer {
            chain_id: 7,
            from: AccountKey([1; 32]),
            to: AccountKey([2; 32]),
            amount: 5,
            fee: 1,
            nonce: 3,
            signature: [9; 64],
        }
    }

    #[test]
    fn encodings_round_trip_with_fixed_sizes() {
        let c = LedgerTx::Coinbase(Coinbase {
            height: 9,
            extranonce: [5; 12],
            recipient: AccountKey([3; 32]),
            amount: 50,
            state_root: StateRoot([4; 32]),
        });
        let t = LedgerTx::Transfer(transfer());
        assert_eq!(c.to_bytes().len(), COINBASE_SIZE);
        assert_eq!(t.to_bytes().len(), TRANSFER_SIZE);
        for tx in [c, t] {
            assert_eq!(LedgerTx::from_bytes(&tx.to_bytes()), Ok(tx));
        }
    }

    /// The extranonce sits at bytes 5..17 and a Stratum split around its last n bytes gives the
    /// encoding back once a miner's bytes are put in, its SHA-256d the txid of that coinbase.
    #[test]
    fn coinbase_extranonce_layout_and_stratum_split() {
        let c = Coinbase {
            height: 0x0102_0304,
            extranonce: [0xaa; 12],
            recipient: AccountKey([3; 32]),
            amount: 50,
            state_root: StateRoot([4; 32]),
        };
        let b = LedgerTx::Coinbase(c).to_bytes();
        assert_eq!(&b[..17], &[0, 4, 3, 2, 1, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa]);
        assert_eq!(&b[17..49], &[3; 32]);
        for n in [0, 4, 8, 12] {
            let (c1, c2) = c.stratum_split(n).unwrap();
            assert_eq!((c1.len(), c2.len()), (17 - n, 72));
            let mine: Vec<u8> = (0..n as u8).collect();
            let full = [c1.clone(), mine.clone(), c2].concat();
            let mut want = c;
            want.extranonce[12 - n..].copy_from_slice(&mine);
            assert_eq!(LedgerTx::from_bytes(&full), Ok(LedgerTx::Coinbase(want)));
            assert_eq!(crate::primitives::sha256d(&full), LedgerTx::Coinbase(want).txid().0);
        }
        assert!(c.stratum_split(13).unwrap_err().contains("at most 12"));
    }

    #[test]
    fn decoding_rejects_unknown_kinds_short_input_and_trailing_bytes() {
        let t = LedgerTx::Transfer(transfer()).to_bytes();
        let mut bad = t.clone();
        bad[0] = 2;
        assert!(matches!(LedgerTx::from_bytes(&bad), Err(DecodeError::Invalid { offset: 0, .. })));
        assert!(matches!(LedgerTx::from_bytes(&t[..156]), Err(DecodeError::UnexpectedEnd { .. })));
        let mut long = t.clone();
        long.push(0);
        assert_eq!(LedgerTx::from_bytes(&long), Err(DecodeError::TrailingBytes { offset: 157, extra: 1 }));
        assert!(LedgerTx::from_bytes(&[]).is_err());
    }

    #[test]
    fn signing_hash_covers_every_field_but_the_signature() {
        let t = transfer();
        let h = t.signing_hash();
        let changed = [
            Transfer { chain_id: 8, ..t },
            Transfer { from: AccountKey([0; 32]), ..t },
            Transfer { to: AccountKey([0; 32]), ..t },
            Transfer { amount: 6, ..t },
            Transfer { fee: 2, ..t },
            Transfer { nonce: 4, ..t },
        ];
        for c in changed {
            assert_ne!(c.signing_hash(), h, "{c:?}");
        }
        assert_eq!(Transfer { signature: [0; 64], ..t }.signing_hash(), h);
    }

    #[test]
    fn signed_transfers_verify_under_zip215() {
        let key = ed25519_zebra::SigningKey::from([5u8; 32]);
        let t = transfer().sign(&key);
        let msg = t.signing_hash();
        let s = crate::sigs::SigRef { pubkey: t.from.as_bytes(), signature: &t.signature, message: &msg };
        assert!(crate::sigs::verify_one(&s));
        let other = Transfer { amount: 6, ..t }.signing_hash();
        assert!(!crate::sigs::verify_one(&crate::sigs::SigRef { message: &other, ..s }));
    }
}
