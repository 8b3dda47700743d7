//! The account state machine of powkit chains (docs/CONSENSUS.md, "State"): every replica applies
//! the authoritative chain's blocks to its own copy, deterministically, and commits to the result
//! with the root of a sparse Merkle tree ([`super::smt`]).
//!
//! An account is a balance and a nonce, keyed by its Ed25519 public key. An account whose balance
//! and nonce are both zero is the same as no account and is not stored, so the state (and its
//! root) depends only on the balances and nonces, never on history. Tree key: SHA-256(public key);
//! value hash: SHA-256(balance u64 LE || nonce u64 LE).
//!
//! [`State::apply_block`] checks every state rule while applying and returns [`Undo`] data;
//! [`State::undo`] puts the state back exactly (`undo(apply(s)) == s`, root included), which the
//! node needs for reorgs. A block that breaks a rule leaves the state as it was.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::smt::SparseMerkleTree;
use crate::consensus::ledger::{self as rules, LedgerError};
use crate::consensus::LedgerParams;
use crate::ledger::block::LedgerBlock;
use crate::ledger::ids::{AccountKey, StateRoot};
use crate::ledger::tx::LedgerTx;
use crate::primitives::encoding::{Decodable, DecodeError, Encodable, Reader};

/// An account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Account {
    /// Spendable units.
    pub balance: u64,
    /// Transfers sent so far (the next transfer must carry this nonce).
    pub nonce: u64,
}

impl Account {
    /// The encoding as an array: 16 bytes, balance u64 LE, nonce u64 LE (stored accounts, undo
    /// data, and the state tree's value hash all use this one encoding; the tree hashes it from the
    /// stack, on the validation hot path).
    pub fn to_array(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.balance.to_le_bytes());
        b[8..].copy_from_slice(&self.nonce.to_le_bytes());
        b
    }
}

impl Encodable for Account {
    /// [`Account::to_array`].
    fn consensus_encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_array());
    }
}

impl Decodable for Account {
    fn consensus_decode(r: &mut Reader<'_>) -> Result<Account, DecodeError> {
        Ok(Account { balance: r.u64_le("account balance")?, nonce: r.u64_le("account nonce")? })
    }
}

/// What [`State::undo`] needs: each touched account's value before the block, first touch first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Undo {
    previous: Vec<(AccountKey, Account)>,
}

impl Undo {
    /// The accounts a block touched (first touch first).
    pub fn touched(&self) -> impl Iterator<Item = &AccountKey> {
        self.previous.iter().map(|(k, _)| k)
    }

    /// Encoding for storage ([`Encodable`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.previous.len() * 48);
        self.consensus_encode(&mut out);
        out
    }
}

impl Encodable for Undo {
    /// Count u32 LE, then (public key, [`Account`] encoding) for each touched account.
    fn consensus_encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.previous.len() as u32).to_le_bytes());
        for (k, a) in &self.previous {
            k.consensus_encode(out);
            a.consensus_encode(out);
        }
    }
}

impl Decodable for Undo {
    fn consensus_decode(r: &mut Reader<'_>) -> Result<Undo, DecodeError> {
        let n = r.u32_le("undo count")? as usize;
        if r.remaining() / 48 < n {
            let needed = n.saturating_mul(48) - r.remaining();
            return Err(DecodeError::UnexpectedEnd { offset: r.offset(), needed, what: "undo records" });
        }
        let mut previous = Vec::with_capacity(n);
        for _ in 0..n {
            previous.push((AccountKey(r.array("undo account key")?), Account::consensus_decode(r)?));
        }
        Ok(Undo { previous })
    }
}

/// The replicated state.
#[derive(Clone, Debug, Default)]
pub struct State {
    accounts: HashMap<AccountKey, Account>,
    tree: SparseMerkleTree,
}

fn tree_key(pubkey: &AccountKey) -> [u8; 32] {
    Sha256::digest(pubkey.as_bytes()).into()
}

fn value_hash(a: &Account) -> [u8; 32] {
    Sha256::digest(a.to_array()).into()
}

impl State {
    /// The empty state (root: 32 zero bytes).
    pub fn new() -> State {
        State::default()
    }

    /// An account (zero when absent).
    pub fn account(&self, pubkey: &AccountKey) -> Account {
        self.accounts.get(pubkey).copied().unwrap_or_default()
    }

    /// Accounts stored (non-zero).
    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    /// Whether no account is stored.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// Sets an account directly (loading a stored state; not a consensus operation).
    pub fn load(&mut self, pubkey: AccountKey, a: Account) {
        self.put(pubkey, a);
    }

    /// The state root; rehashes only what changed since the last call.
    pub fn root(&mut self) -> StateRoot {
        StateRoot(self.tree.root())
    }

    fn put(&mut self, pubkey: AccountKey, a: Account) {
        if a == Account::default() {
            self.accounts.remove(&pubkey);
            self.tree.remove(&tree_key(&pubkey));
        } else {
            self.accounts.insert(pubkey, a);
            self.tree.insert(tree_key(&pubkey), value_hash(&a));
        }
    }

    /// Applies `block` at `height`: every transfer (chain id, nonce, funds, no overflow; the
    /// signatures are checked by the caller, batched: [`crate::consensus::ledger::check_signatures`]), then the coinbase
    /// (height, reward, state root). On success returns the undo data; on failure the state is
    /// unchanged.
    pub fn apply_block(
        &mut self,
        block: &LedgerBlock,
        height: u32,
        params: &LedgerParams,
    ) -> Result<Undo, LedgerError> {
        let mut undo = Undo::default();
        let mut touched: HashMap<AccountKey, ()> = HashMap::new();
        let result = self.apply_inner(block, height, params, &mut undo, &mut touched);
        match result {
            Ok(()) => Ok(undo),
            Err(e) => {
                self.undo(undo);
                Err(e)
            }
        }
    }

    fn apply_inner(
        &mut self,
        block: &LedgerBlock,
        height: u32,
        params: &LedgerParams,
        undo: &mut Undo,
        touched: &mut HashMap<AccountKey, ()>,
    ) -> Result<(), LedgerError> {
        rules::block_has_transactions(block)?;
        let cb = *rules::coinbase_is_first_and_only(block)?;
        rules::coinbase_height_matches(&cb, height)?;
        let mut record = |s: &State, pk: &AccountKey, undo: &mut Undo| {
            if touched.insert(*pk, ()).is_none() {
                undo.previous.push((*pk, s.account(pk)));
            }
        };
        let mut fees: u64 = 0;
        for (i, tx) in block.txs.iter().enumerate().skip(1) {
            let LedgerTx::Transfer(t) = tx else { unreachable!("coinbase_is_first_and_only") };
            rules::transfer_chain_id_matches(t, i, params.chain_id)?;
            let from = self.account(&t.from);
            rules::transfer_nonce_matches(t, i, from.nonce)?;
            let spend = rules::transfer_is_funded(t, i, from.balance)?;
            record(self, &t.from, undo);
            record(self, &t.to, undo);
            let debited = Account { balance: from.balance - spend, nonce: from.nonce + 1 };
            self.put(t.from, debited);
            let to = self.account(&t.to);
            let credited = rules::credit_does_not_overflow(to.balance, t.amount, i)?;
            self.put(t.to, Account { balance: credited, nonce: to.nonce });
            // Fees are bounded by balances, whose sum is bounded by u64 (every credit is checked).
            fees = fees.saturating_add(t.fee);
        }
        rules::coinbase_amount_within_reward(&cb, params.subsidy(height), fees)?;
        record(self, &cb.recipient, undo);
        let r = self.account(&cb.recipient);
        let credited = rules::credit_does_not_overflow(r.balance, cb.amount, 0)?;
        self.put(cb.recipient, Account { balance: credited, nonce: r.nonce });
        let root = self.root();
        rules::coinbase_commits_state_root(&cb, &root)
    }

    /// Puts back the accounts a block touched (the inverse of [`State::apply_block`]).
    pub fn undo(&mut self, undo: Undo) {
        for (pk, a) in undo.previous.into_iter().rev() {
            self.put(pk, a);
        }
    }

    /// The state root after applying `block` at `height`, without keeping the change (what a
    /// miner commits to in its coinbase). The coinbase's own `state_root` is ignored.
    pub fn root_after(
        &mut self,
        block: &LedgerBlock,
        height: u32,
        params: &LedgerParams,
    ) -> Result<StateRoot, LedgerError> {
        let mut b = block.clone();
        if let Some(LedgerTx::Coinbase(cb)) = b.txs.first_mut() {
            cb.state_root = StateRoot::ZERO;
        }
        let mut undo = Undo::default();
        let mut touched = HashMap::new();
        let r = self.apply_inner(&b, height, params, &mut undo, &mut touched);
        let root = self.root();
        self.undo(undo);
        match r {
            Ok(()) => Ok(root),
            Err(LedgerError::StateRoot { .. }) => Ok(root),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests;
