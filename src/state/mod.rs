//! Committed ledger state: the sparse Merkle tree whose root commits to every account's value.

pub mod accounts;
pub mod smt;
