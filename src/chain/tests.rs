use super::*;
use crate::consensus::ledger::CLOCK_PAST_EVERY_HEADER;
use crate::consensus::LedgerNetwork;
use crate::ledger::ids::AccountKey;
use crate::ledger::tx::{LedgerTx, Transfer};
use crate::mine::template;
use crate::primitives::TxMerkleNode;
use ed25519_zebra::SigningKey;

const NOW: i64 = 4_000_000_000;

fn params() -> &'static LedgerParams {
    LedgerNetwork::PowkitRegtest.params()
}

fn key(i: u8) -> SigningKey {
    SigningKey::from([i; 32])
}

fn pk(k: &SigningKey) -> AccountKey {
    crate::ledger::keys::public(k)
}

fn mine(mut b: LedgerBlock) -> LedgerBlock {
    b.header.merkle_root = TxMerkleNode(b.merkle_root().0);
    let scanner = crate::sha256::CpuImpl::Scalar.scanner().unwrap();
    b.header = crate::mine::mine_header(b.header, scanner.as_ref()).unwrap();
    b
}

/// A block on top of `f`'s tip, connected to `f`.
fn next(f: &mut Follower, miner: &SigningKey, transfers: Vec<Transfer>, time: u32) -> LedgerBlock {
    let p = params();
    let (h, tip, bits) = (f.height + 1, f.tip, f.next_bits());
    let b = mine(template(&mut f.state, p, tip, h, time, bits, pk(miner), transfers).unwrap());
    f.connect(&b, &b.header.block_hash(), CLOCK_PAST_EVERY_HEADER).unwrap();
    b
}

fn pay(from: &SigningKey, to: AccountKey, amount: u64, nonce: u64) -> Transfer {
    Transfer { chain_id: params().chain_id, from: pk(from), to, amount, fee: 1, nonce, signature: [0; 64] }.sign(from)
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("powkit-chain-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn feed(c: &mut Chain, b: &LedgerBlock) -> TipChange {
    c.accept_block(b, NOW).unwrap();
    c.activate().unwrap()
}

#[test]
fn heavier_fork_reorgs_atomically_and_survives_reopen() {
    let p = params();
    let t0 = p.genesis.header.time;
    let (a, b, x) = (key(1), key(2), key(3));
    // Branch A: 3 blocks, the second pays x.
    let mut fa = Follower::new(p);
    let a1 = next(&mut fa, &a, vec![], t0 + 1);
    let a2 = next(&mut fa, &a, vec![pay(&a, pk(&x), 500, 0)], t0 + 2);
    let a3 = next(&mut fa, &a, vec![], t0 + 3);
    // Branch B: 4 blocks by another miner.
    let mut fb = Follower::new(p);
    let bs: Vec<LedgerBlock> = (1..=4).map(|i| next(&mut fb, &b, vec![], t0 + 10 + i)).collect();

    let dir = tmp("reorg");
    let mut c = Chain::open(&dir, p).unwrap();
    for blk in [&a1, &a2, &a3] {
        assert_eq!(feed(&mut c, blk).connected.len(), 1);
    }
    assert_eq!(c.tip(), fa.tip);
    assert_eq!(c.state_root(), fa.state.root());
    // Three B blocks tie at most: no reorg (first seen wins ties).
    for blk in &bs[..3] {
        assert!(!feed(&mut c, blk).moved());
    }
    assert_eq!(c.tip(), fa.tip);
    let change = feed(&mut c, &bs[3]);
    assert_eq!(change.disconnected.len(), 3);
    assert_eq!(change.connected.len(), 4);
    assert_eq!(change.disconnected[0], a3);
    assert_eq!(c.tip(), fb.tip);
    assert_eq!(c.height(), 4);
    assert_eq!(c.state_root(), fb.state.root());
    assert_eq!(c.follower().chainwork, fb.chainwork);
    assert!(c.on_main(&bs[0].header.block_hash()) && !c.on_main(&a1.header.block_hash()));
    drop(c);
    let mut c = Chain::open(&dir, p).unwrap();
    assert_eq!(c.tip(), fb.tip);
    assert_eq!(c.state_root(), fb.state.root());
    assert_eq!(c.entry(&a2.header.block_hash()).unwrap().status, BlockStatus::Valid);
    // Branch A grows back past B: reorg back, x's payment applies again.
    let a4 = next(&mut fa, &a, vec![], t0 + 20);
    let a5 = next(&mut fa, &a, vec![], t0 + 21);
    feed(&mut c, &a4);
    assert_eq!(c.tip(), fb.tip, "A at 4 blocks ties B: B stays");
    let change = feed(&mut c, &a5);
    assert_eq!((change.disconnected.len(), change.connected.len()), (4, 5));
    assert_eq!(c.state_root(), fa.state.root());
    assert_eq!(c.follower().state.account(&pk(&x)).balance, 500);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn block_breaking_a_state_rule_is_marked_with_descendants_and_the_tip_restored() {
    let p = params();
    let t0 = p.genesis.header.time;
    let (a, b) = (key(1), key(2));
    let mut fa = Follower::new(p);
    let a1 = next(&mut fa, &a, vec![], t0 + 1);
    let a2 = next(&mut fa, &a, vec![], t0 + 2);
    let mut fb = Follower::new(p);
    let b1 = next(&mut fb, &b, vec![], t0 + 5);
    // b2 pays its miner one unit more than the reward (coinbase_amount_within_reward).
    let (tip, bits) = (fb.tip, fb.next_bits());
    let mut t = template(&mut fb.state, p, tip, 2, t0 + 6, bits, pk(&b), vec![]).unwrap();
    if let LedgerTx::Coinbase(cb) = &mut t.txs[0] {
        cb.amount += 1;
    }
    let b2 = mine(t);
    let b2h = b2.header.block_hash();
    let b3_bits = next_bits(p, 2, b2.header.time, fb.anchor());
    let b3 = mine(template(&mut fb.state, p, b2h, 3, t0 + 7, b3_bits, pk(&b), vec![]).unwrap());
    let dir = tmp("invalid");
    let mut c = Chain::open(&dir, p).unwrap();
    feed(&mut c, &a1);
    feed(&mut c, &a2);
    let root = c.state_root();
    feed(&mut c, &b1);
    feed(&mut c, &b2);
    let change = feed(&mut c, &b3);
    assert!(!change.moved());
    assert_eq!(change.invalid.len(), 1);
    assert_eq!(change.invalid[0].0, b2h);
    assert_eq!(change.invalid[0].1.rule(), "coinbase_amount_within_reward");
    assert_eq!(c.tip(), fa.tip);
    assert_eq!(c.state_root(), root);
    assert_eq!(c.entry(&b2h).unwrap().status, BlockStatus::Invalid);
    assert_eq!(c.entry(&b3.header.block_hash()).unwrap().status, BlockStatus::Invalid);
    assert_eq!(c.entry(&b1.header.block_hash()).unwrap().status, BlockStatus::Data);
    assert_eq!(c.accept_block(&b3, NOW), Err(BlockError::Header(HeaderError::KnownInvalid)));
    assert_eq!(c.best_header(), fa.tip);
    drop(c);
    // Remembered across restarts.
    let c = Chain::open(&dir, p).unwrap();
    assert_eq!(c.entry(&b2h).unwrap().status, BlockStatus::Invalid);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn body_and_header_failures() {
    let p = params();
    let t0 = p.genesis.header.time;
    let (a, x) = (key(1), key(3));
    let mut f = Follower::new(p);
    let a1 = next(&mut f, &a, vec![], t0 + 1);
    let a2 = next(&mut f, &a, vec![pay(&a, pk(&x), 7, 0)], t0 + 2);
    let dir = tmp("body");
    let mut c = Chain::open(&dir, p).unwrap();
    feed(&mut c, &a1);
    // Transactions that do not match the header: the sender is blamed, the block is not marked.
    let mut stripped = a2.clone();
    stripped.txs.truncate(1);
    assert!(matches!(c.accept_block(&stripped, NOW), Err(BlockError::Mutated(_))));
    assert_eq!(c.entry(&a2.header.block_hash()).unwrap().status, BlockStatus::Header);
    assert_eq!(feed(&mut c, &a2).connected.len(), 1);
    // A bad signature (header and merkle root consistent): invalid.
    let mut t = pay(&x, pk(&a), 1, 0);
    t.signature[0] ^= 1;
    let mut f2 = Follower::new(p);
    next(&mut f2, &a, vec![], t0 + 1);
    let mut bad = template(&mut f.state.clone(), p, f.tip, 3, t0 + 3, f.next_bits(), pk(&a), vec![]).unwrap();
    bad.txs.push(LedgerTx::Transfer(t));
    let bad = mine(bad);
    match c.accept_block(&bad, NOW) {
        Err(BlockError::Invalid(e)) => assert_eq!(e.rule(), "transfer_signature_is_valid"),
        other => panic!("{other:?}"),
    }
    // Headers: unknown parent, bad proof of work, wrong bits.
    let mut h = a2.header;
    h.prev_blockhash = BlockHash([7; 32]);
    assert_eq!(c.accept_header(&h, NOW), Err(HeaderError::UnknownParent(BlockHash([7; 32]))));
    let (tip, bits) = (f.tip, f.next_bits());
    let good = mine(template(&mut f.state, p, tip, 3, t0 + 3, bits, pk(&a), vec![]).unwrap());
    let mut h = good.header;
    while h.block_hash().0[31] < 0x80 {
        h.nonce = h.nonce.wrapping_add(1);
    }
    match c.accept_header(&h, NOW) {
        Err(HeaderError::Invalid(e)) => assert_eq!(e.rule(), "proof_of_work_is_valid"),
        other => panic!("{other:?}"),
    }
    let mut h = good.header;
    h.bits = CompactTarget(0x1e3fffff);
    let h = mine(LedgerBlock { header: h, txs: good.txs.clone() }).header;
    match c.accept_header(&h, NOW) {
        Err(HeaderError::Invalid(e)) => assert_eq!(e.rule(), "difficulty_matches_asert"),
        other => panic!("{other:?}"),
    }
    assert!(c.accept_header(&good.header, NOW).unwrap().1);
    assert_eq!(c.blocks_to_download(None, 10, &|_| false), vec![good.header.block_hash()]);
    // Locators and headers_after.
    assert_eq!(c.locator().len(), 3);
    let hs = c.headers_after(&[a1.header.block_hash()], &BlockHash([0; 32]), 2000);
    assert_eq!(hs, vec![a2.header]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_gap_left_by_a_lost_request_is_found_again_and_survives_a_restart() {
    let p = params();
    let t0 = p.genesis.header.time;
    let a = key(1);
    let mut f = Follower::new(p);
    let bs: Vec<LedgerBlock> = (1..=4).map(|i| next(&mut f, &a, vec![], t0 + i)).collect();
    let dir = tmp("gap");
    let mut c = Chain::open(&dir, p).unwrap();
    for b in &bs {
        c.accept_header(&b.header, NOW).unwrap();
    }
    // Blocks 2 and 3 arrive; block 1's request was lost.
    for b in &bs[1..3] {
        assert!(!feed(&mut c, b).moved());
    }
    let hashes: Vec<BlockHash> = bs.iter().map(|b| b.header.block_hash()).collect();
    assert_eq!(c.blocks_to_download(None, 10, &|_| false), vec![hashes[0], hashes[3]]);
    drop(c);
    // After a restart the stored blocks keep their header-only parent, so the gap is still known.
    let mut c = Chain::open(&dir, p).unwrap();
    assert_eq!(c.entry(&hashes[0]).unwrap().status, BlockStatus::Header);
    assert_eq!(c.blocks_to_download(Some(&hashes[2]), 10, &|_| false), vec![hashes[0]]);
    let change = feed(&mut c, &bs[0]);
    assert_eq!(change.connected.len(), 3);
    assert_eq!(c.tip(), hashes[2]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn skip_pointers_find_the_same_ancestors_as_walking_back() {
    let p = params();
    let t0 = p.genesis.header.time;
    let a = key(1);
    let scanner = crate::sha256::CpuImpl::detect().scanner().unwrap();
    let mut f = Follower::new(p);
    let mut hashes = vec![p.genesis.header.block_hash()];
    let dir = tmp("skip");
    let mut c = Chain::open(&dir, p).unwrap();
    for i in 1..=300u32 {
        let (h, tip, bits) = (f.height + 1, f.tip, f.next_bits());
        let mut b = template(&mut f.state, p, tip, h, t0 + i, bits, pk(&a), vec![]).unwrap();
        b.header = crate::mine::mine_header(b.header, scanner.as_ref()).unwrap();
        f.connect(&b, &b.header.block_hash(), CLOCK_PAST_EVERY_HEADER).unwrap();
        c.accept_header(&b.header, NOW).unwrap();
        hashes.push(b.header.block_hash());
    }
    // Header-only: off the main chain, so every lookup goes through the skip pointers.
    let tip = *hashes.last().unwrap();
    assert!(!c.on_main(&tip));
    for height in 0..=300u32 {
        assert_eq!(c.ancestor(&tip, height), Some(hashes[height as usize]), "height {height}");
        assert!(c.is_ancestor(&hashes[height as usize], &tip));
    }
    for from in [7usize, 64, 129, 255] {
        for height in 0..=from as u32 {
            assert_eq!(c.ancestor(&hashes[from], height), Some(hashes[height as usize]));
        }
        assert_eq!(c.ancestor(&hashes[from], from as u32 + 1), None);
    }
    assert!(!c.is_ancestor(&tip, &hashes[10]));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn misbehavior_scores_blame_only_what_a_peer_could_avoid() {
    use crate::consensus::ledger::{ConsensusError, LedgerError};
    use crate::consensus::rules::RuleError;
    let unknown = HeaderError::UnknownParent(BlockHash::ZERO);
    assert_eq!(unknown.misbehavior_score(), 0);
    let ahead = HeaderError::Invalid(ConsensusError::Header(RuleError::TimeTooNew { time: 9, now: 0 }));
    assert_eq!(ahead.misbehavior_score(), 0);
    let bad_bits = HeaderError::Invalid(ConsensusError::Ledger(LedgerError::Difficulty {
        got: CompactTarget(1),
        want: CompactTarget(2),
    }));
    assert_eq!(bad_bits.misbehavior_score(), BAN_SCORE);
    assert_eq!(HeaderError::KnownInvalid.misbehavior_score(), BAN_SCORE);
    let store = BlockError::Store(StoreError { path: "x".into(), why: "disk".into() });
    assert_eq!(store.misbehavior_score(), 0);
    assert_eq!(BlockError::Header(unknown).misbehavior_score(), 0);
    let mutated = BlockError::Mutated(ConsensusError::Ledger(LedgerError::MerkleMutation));
    assert!(mutated.to_string().contains("mutated"));
    assert_eq!(mutated.misbehavior_score(), BAN_SCORE);
}
