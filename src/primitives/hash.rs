//! 32-byte hash types that display byte-reversed, as Bitcoin does.

use std::fmt;
use std::str::FromStr;

use super::encoding::{Decodable, DecodeError, Encodable, Reader};

/// Why a hash could not be parsed from text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashParseError {
    /// Not hexadecimal.
    #[error("not hex: {0}")]
    NotHex(String),
    /// Hex of the wrong length.
    #[error("expected 64 hex digits (32 bytes), got {0} digits")]
    WrongLength(usize),
}

macro_rules! hash_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The all-zero hash (the genesis block's `prev`).
            pub const ZERO: $name = $name([0; 32]);

            /// The bytes in internal (wire) order.
            pub fn to_byte_array(self) -> [u8; 32] {
                self.0
            }

            /// The hex string in display order (byte-reversed), as block explorers show it.
            pub fn to_display_hex(self) -> String {
                let mut b = self.0;
                b.reverse();
                hex::encode(b)
            }

            /// Parses 64 hex digits in display order (byte-reversed).
            pub fn from_display_hex(s: &str) -> Result<$name, HashParseError> {
                let s = s.trim();
                if s.len() != 64 {
                    return Err(HashParseError::WrongLength(s.len()));
                }
                let mut b: [u8; 32] = hex::decode(s)
                    .map_err(|e| HashParseError::NotHex(e.to_string()))?
                    .try_into()
                    .expect("64 hex digits are 32 bytes");
                b.reverse();
                Ok($name(b))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_display_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_display_hex())
            }
        }

        impl FromStr for $name {
            type Err = HashParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::from_display_hex(s)
            }
        }

        impl Encodable for $name {
            fn consensus_encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.0);
            }
        }

        impl Decodable for $name {
            fn consensus_decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                Ok($name(r.array(stringify!($name))?))
            }
        }
    };
}

hash_type!(
    /// A block's hash: double SHA-256 of its 80-byte header.
    BlockHash
);
hash_type!(
    /// A merkle tree node over transaction ids (the header's merkle root is one).
    TxMerkleNode
);
hash_type!(
    /// A transaction id: double SHA-256 of the transaction's encoding (Bitcoin: without witness
    /// data; powkit chains: the canonical encoding of `ledger::tx`).
    Txid
);
hash_type!(
    /// A witness transaction id: double SHA-256 of the full serialization (BIP141).
    Wtxid
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_byte_reversed() {
        let mut b = [0u8; 32];
        b[0] = 0x6f;
        b[31] = 0x00;
        b[30] = 0x01;
        let h = BlockHash(b);
        let s = h.to_string();
        assert!(s.starts_with("0001"));
        assert!(s.ends_with("6f"));
        assert_eq!(s.parse::<BlockHash>().unwrap(), h);
    }

    #[test]
    fn parse_errors() {
        assert_eq!(BlockHash::from_display_hex("00"), Err(HashParseError::WrongLength(2)));
        assert!(matches!(BlockHash::from_display_hex(&"zz".repeat(32)), Err(HashParseError::NotHex(_))));
    }
}
