//! The node's pool of unconfirmed transfers (docs/ARCHITECTURE.md, "Mempool").
//!
//! Entry checks against the state at the tip: chain id, signature (ZIP-215), nonce sequence (each
//! sender's pending transfers carry consecutive nonces starting at the account's nonce: no gaps, no
//! duplicates) and balance (the account covers every pending amount plus fee; pending incoming
//! transfers are not counted, so anything the pool holds can be mined in nonce order). A size limit
//! in bytes and a minimum relay fee; when full, the lowest-fee transfer that ends its sender's sequence is evicted if the
//! newcomer pays more, else the newcomer is refused. Templates take transfers by fee, highest first,
//! each sender's in nonce order.

use std::collections::{BTreeMap, BinaryHeap, HashMap};

use crate::consensus::ledger as lrules;
use crate::ledger::block::LedgerBlock;
use crate::ledger::ids::AccountKey;
use crate::ledger::tx::{LedgerTx, Transfer, TRANSFER_SIZE};
use crate::primitives::Txid;
use crate::state::accounts::State;

/// Why a transfer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// Already in the pool.
    #[error("already in the mempool")]
    Duplicate,
    /// Breaks a consensus rule that no later state can fix (chain id, signature): the sender is
    /// misbehaving.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The nonce is below the account's: already used.
    #[error("nonce {got} already used (the account's next nonce is {next})")]
    NonceUsed {
        /// The transfer's nonce.
        got: u64,
        /// The account's nonce.
        next: u64,
    },
    /// A pending transfer of the same sender has this nonce.
    #[error("nonce {0} is already taken by a pending transfer of this sender")]
    NonceConflict(u64),
    /// The nonce leaves a gap after the sender's pending transfers.
    #[error("nonce {got} leaves a gap (the next acceptable nonce is {next})")]
    NonceGap {
        /// The transfer's nonce.
        got: u64,
        /// The nonce it should carry.
        next: u64,
    },
    /// The account cannot pay for it after its pending transfers.
    #[error("insufficient funds: balance {balance}, pending spends {pending}, this transfer {spend}")]
    Funds {
        /// The account's balance.
        balance: u64,
        /// Amount plus fee of its pending transfers.
        pending: u64,
        /// Amount plus fee of this one.
        spend: u64,
    },
    /// Below the minimum relay fee (policy, not consensus: free transfers would let anyone fill
    /// the pool and the state for nothing).
    #[error("fee {0} is below the minimum relay fee of {MIN_RELAY_FEE}")]
    FeeTooLow(u64),
    /// The pool is full and the fee is too low to evict anything.
    #[error("mempool full: fee {fee} does not beat the lowest evictable fee {lowest}")]
    Full {
        /// Its fee.
        fee: u64,
        /// The fee it would have to beat.
        lowest: u64,
    },
}

impl MempoolError {
    /// The metrics label (`powkit_mempool_refused_total{reason}`): `duplicate`, `invalid`,
    /// `nonce_used`, `nonce_conflict`, `nonce_gap`, `funds`, `fee_too_low` or `full`.
    pub fn reason(&self) -> &'static str {
        match self {
            MempoolError::Duplicate => "duplicate",
            MempoolError::Invalid(_) => "invalid",
            MempoolError::NonceUsed { .. } => "nonce_used",
            MempoolError::NonceConflict(_) => "nonce_conflict",
            MempoolError::NonceGap { .. } => "nonce_gap",
            MempoolError::Funds { .. } => "funds",
            MempoolError::FeeTooLow(_) => "fee_too_low",
            MempoolError::Full { .. } => "full",
        }
    }
}

/// The lowest fee a transfer needs to enter the pool (blocks may still carry lower fees).
pub const MIN_RELAY_FEE: u64 = 1;

/// The pool.
#[derive(Debug)]
pub struct Mempool {
    by_id: HashMap<Txid, Transfer>,
    by_sender: HashMap<AccountKey, BTreeMap<u64, Txid>>,
    max_bytes: usize,
    chain_id: u32,
}

fn spend(t: &Transfer) -> u64 {
    t.amount.saturating_add(t.fee)
}

impl Mempool {
    /// An empty pool holding at most `max_bytes` of transfers.
    pub fn new(chain_id: u32, max_bytes: usize) -> Mempool {
        Mempool { by_id: HashMap::new(), by_sender: HashMap::new(), max_bytes, chain_id }
    }

    /// Transfers held.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.by_id.len() * TRANSFER_SIZE
    }

    /// Whether it holds this txid.
    pub fn contains(&self, txid: &Txid) -> bool {
        self.by_id.contains_key(txid)
    }

    /// A transfer by txid.
    pub fn get(&self, txid: &Txid) -> Option<&Transfer> {
        self.by_id.get(txid)
    }

    /// Every txid.
    pub fn txids(&self) -> Vec<Txid> {
        let mut v: Vec<_> = self.by_id.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Every txid in dependency order: by sender, each sender's by nonce (so a receiver taking
    /// them in this order never meets a nonce gap).
    pub fn txids_in_order(&self) -> Vec<Txid> {
        let mut senders: Vec<&AccountKey> = self.by_sender.keys().collect();
        senders.sort_unstable();
        senders.into_iter().flat_map(|s| self.by_sender[s].values().copied()).collect()
    }

    fn pending_spend(&self, sender: &AccountKey) -> u64 {
        self.by_sender
            .get(sender)
            .map(|m| m.values().fold(0u64, |s, id| s.saturating_add(spend(&self.by_id[id]))))
            .unwrap_or(0)
    }

    /// Checks and adds a transfer; returns its txid. `verify_signature: false` skips the signature
    /// (transfers from blocks that were connected, whose signatures were checked then).
    pub fn add(&mut self, t: Transfer, state: &State, verify_signature: bool) -> Result<Txid, MempoolError> {
        let r = self.admit(t, state, verify_signature);
        if let Err(e) = &r {
            ::metrics::counter!(crate::metrics::MEMPOOL_REFUSED, "reason" => e.reason()).increment(1);
        }
        r
    }

    fn admit(&mut self, t: Transfer, state: &State, verify_signature: bool) -> Result<Txid, MempoolError> {
        let txid = LedgerTx::Transfer(t).txid();
        if self.by_id.contains_key(&txid) {
            return Err(MempoolError::Duplicate);
        }
        lrules::transfer_chain_id_matches(&t, 0, self.chain_id).map_err(|e| MempoolError::Invalid(e.to_string()))?;
        if t.fee < MIN_RELAY_FEE {
            return Err(MempoolError::FeeTooLow(t.fee));
        }
        let account = state.account(&t.from);
        if t.nonce < account.nonce {
            return Err(MempoolError::NonceUsed { got: t.nonce, next: account.nonce });
        }
        let pending = self.by_sender.get(&t.from).map(|m| m.len() as u64).unwrap_or(0);
        let next = account.nonce + pending;
        if t.nonce < next {
            return Err(MempoolError::NonceConflict(t.nonce));
        }
        if t.nonce > next {
            return Err(MempoolError::NonceGap { got: t.nonce, next });
        }
        let pending_spend = self.pending_spend(&t.from);
        if t.amount
            .checked_add(t.fee)
            .and_then(|s| s.checked_add(pending_spend))
            .is_none_or(|total| total > account.balance)
        {
            return Err(MempoolError::Funds { balance: account.balance, pending: pending_spend, spend: spend(&t) });
        }
        // The signature last: the checks above are cheap, so a flood of stale transfers costs
        // little.
        if verify_signature {
            lrules::transfer_signature_is_valid(&t, 0).map_err(|e| MempoolError::Invalid(e.to_string()))?;
        }
        if self.bytes() + TRANSFER_SIZE > self.max_bytes {
            // Evict the cheapest transfer that ends its sender's sequence, if this one pays more.
            let lowest = self
                .by_sender
                .iter()
                .filter(|(s, _)| **s != t.from)
                .filter_map(|(_, m)| m.iter().next_back().map(|(_, id)| (self.by_id[id].fee, *id)))
                .min();
            match lowest {
                Some((fee, id)) if fee < t.fee => {
                    self.remove(&id);
                    ::metrics::counter!(crate::metrics::MEMPOOL_EVICTIONS).increment(1);
                }
                Some((fee, _)) => return Err(MempoolError::Full { fee: t.fee, lowest: fee }),
                None => return Err(MempoolError::Full { fee: t.fee, lowest: 0 }),
            }
        }
        self.by_sender.entry(t.from).or_default().insert(t.nonce, txid);
        self.by_id.insert(txid, t);
        Ok(txid)
    }

    fn remove(&mut self, txid: &Txid) {
        if let Some(t) = self.by_id.remove(txid) {
            if let Some(m) = self.by_sender.get_mut(&t.from) {
                m.remove(&t.nonce);
                if m.is_empty() {
                    self.by_sender.remove(&t.from);
                }
            }
        }
    }

    /// Up to `max` transfers for a block template: highest fee first among each sender's next
    /// transfer, so every sender's transfers stay in nonce order.
    pub fn select(&self, max: usize) -> Vec<Transfer> {
        let mut heap = BinaryHeap::new();
        let mut iters: HashMap<AccountKey, std::collections::btree_map::Iter<'_, u64, Txid>> = HashMap::new();
        for (s, m) in &self.by_sender {
            let mut it = m.iter();
            if let Some((_, id)) = it.next() {
                heap.push((self.by_id[id].fee, std::cmp::Reverse(*id)));
            }
            iters.insert(*s, it);
        }
        let mut out = Vec::new();
        while out.len() < max {
            let Some((_, std::cmp::Reverse(id))) = heap.pop() else { break };
            let t = self.by_id[&id];
            out.push(t);
            if let Some((_, next)) = iters.get_mut(&t.from).and_then(|it| it.next()) {
                heap.push((self.by_id[next].fee, std::cmp::Reverse(*next)));
            }
        }
        out
    }

    /// After the tip moved: re-adds the transfers of `disconnected` blocks (oldest block first is
    /// not needed: each sender's run is re-checked in nonce order), then drops everything that no
    /// longer fits the new state (mined, nonce used, gap, funds). Returns the txids re-added from
    /// disconnected blocks that are still pending (to be announced again).
    pub fn update(&mut self, disconnected: &[LedgerBlock], state: &State) -> Vec<Txid> {
        let mut all: Vec<Transfer> = self.by_id.values().copied().collect();
        let mut from_blocks = std::collections::HashSet::new();
        for b in disconnected {
            for tx in &b.txs {
                if let LedgerTx::Transfer(t) = tx {
                    from_blocks.insert(LedgerTx::Transfer(*t).txid());
                    all.push(*t);
                }
            }
        }
        all.sort_by_key(|t| (t.from, t.nonce));
        all.dedup_by_key(|t| (t.from, t.nonce, t.signature));
        self.by_id.clear();
        self.by_sender.clear();
        let mut readded = Vec::new();
        for t in all {
            let was_disconnected = from_blocks.contains(&LedgerTx::Transfer(t).txid());
            if let Ok(id) = self.add(t, state, false) {
                if was_disconnected {
                    readded.push(id);
                }
            }
        }
        readded
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::LedgerNetwork;
    use crate::state::accounts::Account;
    use ed25519_zebra::SigningKey;

    fn key(i: u8) -> SigningKey {
        SigningKey::from([i; 32])
    }

    fn transfer(k: &SigningKey, to: AccountKey, amount: u64, fee: u64, nonce: u64) -> Transfer {
        let chain_id = LedgerNetwork::PowkitRegtest.params().chain_id;
        Transfer { chain_id, from: crate::ledger::keys::public(k), to, amount, fee, nonce, signature: [0; 64] }.sign(k)
    }

    fn funded(keys: &[&SigningKey], balance: u64) -> State {
        let mut s = State::new();
        for k in keys {
            s.load(crate::ledger::keys::public(k), Account { balance, nonce: 0 });
        }
        s
    }

    fn pool(max: usize) -> Mempool {
        Mempool::new(LedgerNetwork::PowkitRegtest.params().chain_id, max)
    }

    #[test]
    fn entry_checks_name_each_failure() {
        let (a, b) = (key(1), key(2));
        let to = crate::ledger::keys::public(&b);
        let state = funded(&[&a], 1000);
        let mut p = pool(1 << 20);
        let t0 = transfer(&a, to, 100, 1, 0);
        p.add(t0, &state, true).unwrap();
        assert_eq!(p.add(t0, &state, true), Err(MempoolError::Duplicate));
        assert_eq!(p.add(transfer(&a, to, 5, 1, 0), &state, true), Err(MempoolError::NonceConflict(0)));
        assert_eq!(p.add(transfer(&a, to, 5, 1, 2), &state, true), Err(MempoolError::NonceGap { got: 2, next: 1 }));
        assert!(matches!(p.add(transfer(&a, to, 900, 1, 1), &state, true), Err(MempoolError::Funds { .. })));
        let mut bad = transfer(&a, to, 5, 1, 1);
        bad.amount = 6;
        assert!(matches!(p.add(bad, &state, true), Err(MempoolError::Invalid(_))));
        let mut wrong_chain = transfer(&a, to, 5, 1, 1);
        wrong_chain.chain_id ^= 1;
        assert!(matches!(p.add(wrong_chain, &state, true), Err(MempoolError::Invalid(_))));
        assert_eq!(p.add(transfer(&a, to, 5, 0, 1), &state, true), Err(MempoolError::FeeTooLow(0)));
        let mut used = funded(&[&a], 1000);
        used.load(crate::ledger::keys::public(&a), Account { balance: 1000, nonce: 3 });
        let mut q = pool(1 << 20);
        assert_eq!(q.add(transfer(&a, to, 5, 1, 1), &used, true), Err(MempoolError::NonceUsed { got: 1, next: 3 }));
        p.add(transfer(&a, to, 800, 1, 1), &state, true).unwrap();
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn select_orders_by_fee_and_keeps_nonce_order() {
        let (a, b, c) = (key(1), key(2), key(3));
        let to = AccountKey([9u8; 32]);
        let state = funded(&[&a, &b, &c], 10_000);
        let mut p = pool(1 << 20);
        p.add(transfer(&a, to, 1, 1, 0), &state, true).unwrap();
        p.add(transfer(&a, to, 1, 50, 1), &state, true).unwrap();
        p.add(transfer(&b, to, 1, 10, 0), &state, true).unwrap();
        p.add(transfer(&c, to, 1, 5, 0), &state, true).unwrap();
        let fees: Vec<u64> = p.select(10).iter().map(|t| t.fee).collect();
        assert_eq!(fees, vec![10, 5, 1, 50]);
        assert_eq!(p.select(2).len(), 2);
    }

    #[test]
    fn full_pool_evicts_the_cheapest_tail_or_refuses() {
        let keys: Vec<SigningKey> = (1..=4).map(key).collect();
        let refs: Vec<&SigningKey> = keys.iter().collect();
        let state = funded(&refs, 10_000);
        let mut p = pool(3 * TRANSFER_SIZE);
        for (i, k) in keys.iter().take(3).enumerate() {
            p.add(transfer(k, AccountKey([9; 32]), 1, 10 + i as u64, 0), &state, true).unwrap();
        }
        assert_eq!(
            p.add(transfer(&keys[3], AccountKey([9; 32]), 1, 5, 0), &state, true),
            Err(MempoolError::Full { fee: 5, lowest: 10 })
        );
        let id = p.add(transfer(&keys[3], AccountKey([9; 32]), 1, 20, 0), &state, true).unwrap();
        assert!(p.contains(&id));
        assert_eq!(p.len(), 3);
        let mut fees: Vec<u64> = p.select(10).iter().map(|t| t.fee).collect();
        fees.sort();
        assert_eq!(fees, vec![11, 12, 20]);
    }

    #[test]
    fn update_drops_mined_and_readds_disconnected() {
        let a = key(1);
        let to = AccountKey([9u8; 32]);
        let state0 = funded(&[&a], 1000);
        let mut p = pool(1 << 20);
        let t0 = transfer(&a, to, 10, 1, 0);
        let t1 = transfer(&a, to, 10, 1, 1);
        p.add(t0, &state0, true).unwrap();
        p.add(t1, &state0, true).unwrap();
        // t0 mined: the account's nonce is 1.
        let mut state1 = State::new();
        state1.load(crate::ledger::keys::public(&a), Account { balance: 989, nonce: 1 });
        assert!(p.update(&[], &state1).is_empty());
        assert_eq!(p.len(), 1);
        assert!(p.contains(&LedgerTx::Transfer(t1).txid()));
        // The block with t0 is disconnected: t0 comes back, before t1.
        let b = LedgerBlock {
            header: crate::consensus::LedgerNetwork::PowkitRegtest.params().genesis.header,
            txs: vec![LedgerTx::Transfer(t0)],
        };
        let readded = p.update(&[b], &state0);
        assert_eq!(readded, vec![LedgerTx::Transfer(t0).txid()]);
        assert_eq!(p.len(), 2);
    }
}
