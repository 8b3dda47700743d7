//! Typed primitives and their one canonical encoding: headers, hashes, targets, work.
//!
//! As in rust-bitcoin, a block hash, a merkle node, a compact target and a target are distinct types,
//! and only this module turns bytes into them.

pub mod encoding;
pub mod hash;
pub mod header;
pub mod lines;
pub mod target;
pub mod tx;
pub mod uint;

pub use encoding::{deserialize, serialize, Decodable, DecodeError, Encodable};
pub use hash::{BlockHash, TxMerkleNode, Txid, Wtxid};
pub use header::{sha256d, BlockHeader, HEADER_SIZE};
pub use target::{BitsError, CompactTarget, Target, Work};
pub use tx::{Block, Coin, OutPoint, Transaction, TxIn, TxOut};
pub use uint::U256;
