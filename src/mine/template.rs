//! Block templates for powkit chains: the next block on a tip, paying a miner, committing to the
//! state root after it; the nonce is left for the search.

use crate::consensus::ledger::LedgerError;
use crate::consensus::LedgerParams;
use crate::ledger::block::LedgerBlock;
use crate::ledger::ids::{AccountKey, StateRoot};
use crate::ledger::tx::LedgerTx;
use crate::state::accounts::State;

/// A block template on top of `state` at `height`: the coinbase pays `miner` the subsidy plus the
/// fees and commits to the state root after the block; the merkle root is set; the nonce is zero
/// (the caller mines). Fails if a transfer breaks a state rule.
#[allow(clippy::too_many_arguments)]
pub fn template(
    state: &mut State,
    params: &LedgerParams,
    prev: crate::primitives::BlockHash,
    height: u32,
    time: u32,
    bits: crate::primitives::CompactTarget,
    miner: AccountKey,
    transfers: Vec<crate::ledger::tx::Transfer>,
) -> Result<LedgerBlock, LedgerError> {
    use crate::ledger::tx::Coinbase;
    let fees = transfers.iter().fold(0u64, |f, t| f.saturating_add(t.fee));
    let cb = Coinbase {
        height,
        extranonce: [0; crate::ledger::tx::COINBASE_EXTRANONCE_SIZE],
        recipient: miner,
        amount: params.subsidy(height).saturating_add(fees),
        state_root: StateRoot::ZERO,
    };
    let mut txs = vec![LedgerTx::Coinbase(cb)];
    txs.extend(transfers.into_iter().map(LedgerTx::Transfer));
    let header = crate::primitives::BlockHeader {
        version: 1,
        prev_blockhash: prev,
        merkle_root: crate::primitives::TxMerkleNode([0; 32]),
        time,
        bits,
        nonce: 0,
    };
    let mut block = LedgerBlock { header, txs };
    let root = state.root_after(&block, height, params)?;
    if let Some(LedgerTx::Coinbase(cb)) = block.txs.first_mut() {
        cb.state_root = root;
    }
    block.header.merkle_root = crate::primitives::TxMerkleNode(block.merkle_root().0);
    Ok(block)
}
