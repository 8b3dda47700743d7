//! State machine tests: `undo(apply(s)) == s` on random blocks, every state rule broken by an
//! input that breaks only it (the state left unchanged), and roots equal to the from-scratch tree.

use super::*;
use crate::consensus::ledger::check_signatures;
use crate::consensus::LedgerNetwork;
use crate::ledger::tx::Transfer;
use crate::mine::template;
use crate::primitives::{BlockHash, CompactTarget};
use ed25519_zebra::SigningKey;
use rand::{Rng, SeedableRng};

fn params() -> &'static LedgerParams {
    LedgerNetwork::PowkitRegtest.params()
}

fn pk(k: &SigningKey) -> AccountKey {
    crate::ledger::keys::public(k)
}

fn block(state: &mut State, height: u32, miner: AccountKey, transfers: Vec<Transfer>) -> LedgerBlock {
    template(state, params(), BlockHash::ZERO, height, 1, CompactTarget(0x207fffff), miner, transfers).unwrap()
}

fn snapshot(s: &mut State) -> (Vec<(AccountKey, Account)>, StateRoot) {
    let mut v: Vec<_> = s.accounts.iter().map(|(k, a)| (*k, *a)).collect();
    v.sort_by_key(|(k, _)| *k);
    (v, s.root())
}

/// The root from scratch: `smt::root_of` over every stored account.
fn root_from_scratch(s: &State) -> StateRoot {
    let pairs: Vec<_> = s.accounts.iter().map(|(k, a)| (tree_key(k), value_hash(a))).collect();
    StateRoot(crate::state::smt::root_of(&pairs))
}

fn transfer(key: &SigningKey, to: AccountKey, amount: u64, fee: u64, nonce: u64) -> Transfer {
    Transfer { chain_id: params().chain_id, from: AccountKey([0; 32]), to, amount, fee, nonce, signature: [0; 64] }
        .sign(key)
}

#[test]
fn apply_then_undo_restores_the_state_exactly() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    let keys: Vec<SigningKey> = (0..12).map(|_| SigningKey::from(rng.gen::<[u8; 32]>())).collect();
    let mut s = State::new();
    let mut history = vec![];
    for height in 1..=60u32 {
        let before = snapshot(&mut s);
        // Random valid transfers from a model of balances and nonces.
        let mut model: HashMap<AccountKey, Account> = keys.iter().map(|k| (pk(k), s.account(&pk(k)))).collect();
        let mut txs = vec![];
        for _ in 0..rng.gen_range(0..15) {
            let from = &keys[rng.gen_range(0..keys.len())];
            let to = if rng.gen_bool(0.2) {
                AccountKey(rng.gen::<[u8; 32]>())
            } else {
                pk(&keys[rng.gen_range(0..keys.len())])
            };
            let a = model[&pk(from)];
            if a.balance == 0 {
                continue;
            }
            let amount = rng.gen_range(0..=a.balance);
            let fee = rng.gen_range(0..=a.balance - amount);
            txs.push(transfer(from, to, amount, fee, a.nonce));
            model.insert(pk(from), Account { balance: a.balance - amount - fee, nonce: a.nonce + 1 });
            if let Some(t) = model.get_mut(&to) {
                t.balance += amount;
            }
        }
        let miner = pk(&keys[height as usize % keys.len()]);
        let b = block(&mut s, height, miner, txs);
        assert!(check_signatures(&[&b]).is_ok());
        let undo = s.apply_block(&b, height, params()).unwrap();
        assert_eq!(s.root(), root_from_scratch(&s));
        // Undo now and re-apply: exactly the state before, then exactly the state after.
        let after = snapshot(&mut s);
        s.undo(undo.clone());
        assert_eq!(snapshot(&mut s), before, "height {height}");
        let undo = s.apply_block(&b, height, params()).unwrap();
        assert_eq!(snapshot(&mut s), after);
        history.push((before, undo));
    }
    // Unwind the whole chain block by block (a reorg back to genesis).
    while let Some((before, undo)) = history.pop() {
        s.undo(undo);
        assert_eq!(snapshot(&mut s), before);
    }
    assert!(s.is_empty());
    assert_eq!(s.root(), StateRoot([0; 32]));
}

#[test]
fn each_state_rule_is_broken_by_an_input_that_breaks_only_it() {
    let alice = SigningKey::from([1u8; 32]);
    let bob = pk(&SigningKey::from([2u8; 32]));
    let mut s = State::new();
    let b1 = block(&mut s, 1, pk(&alice), vec![]);
    s.apply_block(&b1, 1, params()).unwrap();
    let funds = params().subsidy(1);
    let good = transfer(&alice, bob, 10, 1, 0);
    let base = block(&mut s, 2, bob, vec![good]);
    let before = snapshot(&mut s);
    let expect = |s: &mut State, b: &LedgerBlock, rule: &str| {
        let e = s.apply_block(b, 2, params()).unwrap_err();
        assert_eq!(e.rule(), rule, "{e}");
        assert_eq!(snapshot(s), before, "state unchanged after {rule}");
    };
    // A block with a mutated coinbase or transaction, re-templated so only that rule breaks.
    let retemplate = |s: &mut State, txs: Vec<Transfer>, height: u32| block(s, height, bob, txs);
    // Wrong chain id (re-signed, so the signature is valid).
    let t = Transfer { chain_id: 1, ..good }.sign(&alice);
    let mut b = base.clone();
    b.txs[1] = LedgerTx::Transfer(t);
    expect(&mut s, &b, "transfer_chain_id_matches");
    // Replayed nonce, and a nonce from the future.
    for nonce in [1, 5] {
        let mut b = base.clone();
        b.txs[1] = LedgerTx::Transfer(transfer(&alice, bob, 10, 1, nonce));
        expect(&mut s, &b, "transfer_nonce_matches");
    }
    // The same transfer twice in one block: the second is a replay.
    let b = LedgerBlock { txs: vec![base.txs[0], base.txs[1], base.txs[1]], ..base.clone() };
    expect(&mut s, &b, "transfer_nonce_matches");
    // Overspend by one, and amount + fee overflowing u64.
    for (amount, fee) in [(funds, 1), (u64::MAX, 2)] {
        let mut b = base.clone();
        b.txs[1] = LedgerTx::Transfer(transfer(&alice, bob, amount, fee, 0));
        expect(&mut s, &b, "transfer_is_funded");
    }
    // Coinbase claims one more than subsidy plus fees.
    let mut b = base.clone();
    if let LedgerTx::Coinbase(cb) = &mut b.txs[0] {
        cb.amount += 1;
    }
    expect(&mut s, &b, "coinbase_amount_within_reward");
    // Wrong state root.
    let mut b = base.clone();
    if let LedgerTx::Coinbase(cb) = &mut b.txs[0] {
        cb.state_root.0[0] ^= 1;
    }
    expect(&mut s, &b, "coinbase_commits_state_root");
    // Wrong height in the coinbase.
    let b3 = retemplate(&mut s, vec![good], 3);
    expect(&mut s, &b3, "coinbase_height_matches");
    // Coinbase missing, and a second coinbase.
    let b = LedgerBlock { txs: vec![base.txs[1]], ..base.clone() };
    expect(&mut s, &b, "coinbase_is_first_and_only");
    let b = LedgerBlock { txs: vec![base.txs[0], base.txs[0]], ..base.clone() };
    expect(&mut s, &b, "coinbase_is_first_and_only");
    let b = LedgerBlock { txs: vec![], ..base.clone() };
    expect(&mut s, &b, "block_has_transactions");
    // A bad signature is caught by the batch check (the state machine trusts its caller's check).
    let mut bad = good;
    bad.signature[40] ^= 1;
    let mut b = base.clone();
    b.txs[1] = LedgerTx::Transfer(bad);
    assert_eq!(check_signatures(&[&base, &b]).unwrap_err().0, 1);
    assert_eq!(check_signatures(&[&b]).unwrap_err().1.rule(), "transfer_signature_is_valid");
    assert_eq!(
        crate::consensus::ledger::transfer_signature_is_valid(&bad, 1).unwrap_err().rule(),
        "transfer_signature_is_valid"
    );
    // And the untouched block applies.
    s.apply_block(&base, 2, params()).unwrap();
    assert_eq!(s.account(&pk(&alice)), Account { balance: funds - 11, nonce: 1 });
    assert_eq!(s.account(&bob), Account { balance: 10 + params().subsidy(2) + 1, nonce: 0 });
}

#[test]
fn credits_that_overflow_are_rejected() {
    // Two miners' rewards cannot overflow, so the rule is exercised on the function itself.
    assert_eq!(crate::consensus::ledger::credit_does_not_overflow(u64::MAX - 1, 1, 3), Ok(u64::MAX));
    let e = crate::consensus::ledger::credit_does_not_overflow(u64::MAX, 1, 3).unwrap_err();
    assert_eq!(e.rule(), "credit_does_not_overflow");
}

#[test]
fn roots_do_not_depend_on_history_or_replica() {
    // Two replicas reach the same balances by different blocks: same root.
    let a = SigningKey::from([7u8; 32]);
    let b = pk(&SigningKey::from([8u8; 32]));
    let mut s1 = State::new();
    let mut s2 = State::new();
    let x = block(&mut s1, 1, pk(&a), vec![]);
    s1.apply_block(&x, 1, params()).unwrap();
    s2.apply_block(&x, 1, params()).unwrap();
    assert_eq!(s1.root(), s2.root());
    assert_eq!(s1.root(), root_from_scratch(&s1));
    // A zero-balance, zero-nonce account is absent: paying 0 to a new key changes nothing but the payer.
    let t = transfer(&a, b, 0, 0, 0);
    let y = block(&mut s1, 2, AccountKey([0; 32]), vec![t]);
    s1.apply_block(&y, 2, params()).unwrap();
    assert_eq!(s1.account(&b), Account::default());
    assert!(!s1.accounts.contains_key(&b));
}
