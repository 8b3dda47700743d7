//! State: powkit's committed account state (the sparse Merkle tree whose root commits to every
//! account's value) and Bitcoin's UTXO set ([`utxo`]).

pub mod accounts;
pub mod smt;
pub mod utxo;
