//! Typed 32-byte values of powkit chains that display as plain (not reversed) lowercase hex:
//! [`AccountKey`] and [`StateRoot`]. A powkit txid is [`crate::primitives::Txid`], shared with
//! Bitcoin (SHA-256d of the encoding, displayed byte-reversed).
//!
//! Each encodes as its 32 bytes as they are ([`Encodable`]/[`Decodable`]), prints and parses as
//! 64 hex digits in that same order ([`fmt::Display`]/[`FromStr`]; parsing trims surrounding
//! whitespace and accepts either case) and serializes (serde) as that hex string.

use std::fmt;
use std::str::FromStr;

use crate::primitives::encoding::{Decodable, DecodeError, Encodable, Reader};

macro_rules! plain_hex_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// 32 zero bytes.
            pub const ZERO: $name = $name([0; 32]);

            /// The 32 bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// Parses 64 hex digits (surrounding whitespace trimmed), bytes in the order written.
            pub fn from_hex(s: &str) -> Result<$name, hex::FromHexError> {
                let mut b = [0u8; 32];
                hex::decode_to_slice(s.trim(), &mut b)?;
                Ok($name(b))
            }
        }

        impl fmt::Display for $name {
            /// 64 lowercase hex digits, bytes in order (not reversed).
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), hex::encode(self.0))
            }
        }

        impl FromStr for $name {
            type Err = hex::FromHexError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::from_hex(s)
            }
        }

        impl Encodable for $name {
            /// The 32 bytes as they are.
            fn consensus_encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.0);
            }
        }

        impl Decodable for $name {
            fn consensus_decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                Ok($name(r.array(stringify!($name))?))
            }
        }

        impl serde::Serialize for $name {
            /// The hex string of [`fmt::Display`].
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}

plain_hex_id!(
    /// An account's key: an Ed25519 public key in its 32-byte encoding (from
    /// [`crate::ledger::keys::public`] or a transfer's `from`/`to`, a coinbase's `recipient`).
    /// Accounts are keyed by it in the state, the store and the mempool. Displayed as 64 plain
    /// (not reversed) lowercase hex digits, as `powkit key new` prints it and the RPC takes it.
    AccountKey
);
plain_hex_id!(
    /// The state root: the 32-byte root of the sparse Merkle tree over every account
    /// ([`crate::state::accounts::State::root`]), committed to by each block's coinbase. The
    /// empty state's root is [`StateRoot::ZERO`]. Displayed as 64 plain (not reversed) lowercase
    /// hex digits, as `validate`, the RPC and the node's logs print it.
    StateRoot
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_plain_hex_and_parses_back() {
        let mut b = [0u8; 32];
        b[0] = 0xab;
        b[31] = 0x01;
        let k = AccountKey(b);
        let s = k.to_string();
        assert_eq!(s, hex::encode(b));
        assert!(s.starts_with("ab") && s.ends_with("01"));
        assert_eq!(s.parse::<AccountKey>(), Ok(k));
        assert_eq!(format!(" {} \n", s.to_uppercase()).parse::<AccountKey>(), Ok(k));
        assert_eq!(format!("{k:?}"), format!("AccountKey({s})"));
        assert_eq!(serde_json::to_value(StateRoot(b)).unwrap(), serde_json::json!(s));
        assert!("00".parse::<StateRoot>().is_err());
        assert!("zz".repeat(32).parse::<StateRoot>().is_err());
    }

    #[test]
    fn encodes_as_the_32_bytes() {
        let r = StateRoot([7; 32]);
        assert_eq!(crate::primitives::serialize(&r), vec![7; 32]);
        assert_eq!(crate::primitives::deserialize::<StateRoot>(&[7; 32]), Ok(r));
        assert!(crate::primitives::deserialize::<AccountKey>(&[7; 31]).is_err());
    }
}
