//! powkit's own chain (docs/CONSENSUS.md, "powkit chains"): blocks are the 80-byte header plus
//! transactions of two kinds, a coinbase and signed transfers between Ed25519 accounts.
//!
//! - [`tx`]: the transactions, their canonical encoding, txids and signing hashes.
//! - [`ids`]: account keys and state roots (txids are [`crate::primitives::Txid`]).
//! - [`block`]: blocks and their merkle root (the block rules are `consensus::ledger`'s).
//! - [`keys`]: key files.
//!
//! The chains' parameters (`powkit`, `powkit-regtest`) are consensus: `consensus::params::ledger`.

pub mod block;
pub mod ids;
pub mod keys;
pub mod tx;

pub use block::LedgerBlock;
pub use ids::{AccountKey, StateRoot};
pub use tx::{Coinbase, LedgerTx, Transfer};
