//! Old paths of items that moved to [`crate::chain::follower`] and [`crate::consensus::ledger`]; kept
//! only while the validate and import code moves, then removed.

pub use crate::chain::Follower;
pub use crate::consensus::ledger::{next_bits, ConsensusError as ChainError};
use crate::ledger::block::LedgerBlock;
use crate::ledger::params::LedgerParams;
use crate::primitives::BlockHash;

/// Stages 1 and 3 of [`crate::consensus::ledger`] (every rule that needs no other block).
pub fn check_context_free(
    b: &LedgerBlock,
    hash: &BlockHash,
    size: usize,
    params: &LedgerParams,
    now: i64,
) -> Result<(), ChainError> {
    crate::consensus::ledger::check_header_context_free(&b.header, hash, params, now)?;
    crate::consensus::ledger::check_block_context_free(b, size)
}
