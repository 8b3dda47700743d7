//! Every rule: real blocks pass it, and an input that breaks only that rule fails it with its variant.

use super::*;
use crate::consensus::params::BitcoinNetwork;
use crate::primitives::{OutPoint, TxIn, TxOut, Txid};

fn read_blocks(path: &str) -> Option<Vec<Block>> {
    Some(crate::validate::read::shared_blk_records(path)?.iter().map(|b| Block::from_bytes(b).unwrap()).collect())
}

fn single(path: &str) -> Option<Block> {
    read_blocks(path).map(|mut v| v.remove(0))
}

fn main() -> BitcoinParams {
    BitcoinNetwork::Bitcoin.params()
}

fn context_free(b: &Block, p: &BitcoinParams) -> Result<(), RuleError> {
    proof_of_work_is_valid(&b.header, p)?;
    block_is_not_empty(b)?;
    merkle_root_is_valid(b)?;
    coinbase_is_first_and_only(b)?;
    block_size_is_within_limits(b)?;
    for (i, tx) in b.txdata.iter().enumerate() {
        transaction_is_well_formed(tx, i)?;
    }
    Ok(())
}

#[test]
fn real_mainnet_blocks_pass_every_rule() {
    let p = main();
    if let Some(chain) = read_blocks("mainnet-000000-000255.blk") {
        let mut times: Vec<u32> = Vec::new();
        for (h, b) in chain.iter().enumerate() {
            let h = h as u32;
            context_free(b, &p).unwrap();
            if h > 0 {
                assert_eq!(b.header.prev_blockhash, chain[h as usize - 1].header.block_hash());
                time_is_above_median_past(&b.header, &times).unwrap();
                difficulty_matches_retarget(&b.header, CompactTarget(0x1d00ffff)).unwrap();
            }
            version_is_not_obsolete(&b.header, h, &p).unwrap();
            coinbase_has_height(b, h, &p).unwrap();
            witness_commitment_is_valid(b, h, &p).unwrap();
            time_is_not_too_far_ahead(&b.header, 1_800_000_000).unwrap();
            times.push(b.header.time);
        }
    }
    for (path, height) in [
        ("single-blocks/277647.blk", 277_647),
        ("single-blocks/540107.blk", 540_107),
        ("single-blocks/574200.blk", 574_200),
    ] {
        let Some(b) = single(path) else { continue };
        context_free(&b, &p).unwrap_or_else(|e| panic!("{path}: {e}"));
        block_weight_is_within_limit(&b).unwrap();
        version_is_not_obsolete(&b.header, height, &p).unwrap();
        coinbase_has_height(&b, height, &p).unwrap();
        witness_commitment_is_valid(&b, height, &p).unwrap();
    }
}

#[test]
fn proof_of_work_rules() {
    let p = main();
    let Some(b) = single("mainnet-000000-000255.blk") else { return };
    let mut h = b.header;
    h.nonce ^= 1;
    assert!(matches!(proof_of_work_is_valid(&h, &p), Err(RuleError::ProofOfWork { .. })));
    // Regtest's easy bits are above mainnet's limit.
    assert!(matches!(
        target_bits_are_valid(CompactTarget(0x207fffff), &p),
        Err(RuleError::BadTargetBits { why: "easier than the chain's proof-of-work limit", .. })
    ));
    assert!(matches!(
        target_bits_are_valid(CompactTarget(0x04923456), &p),
        Err(RuleError::BadTargetBits { why: "negative", .. })
    ));
    assert!(matches!(
        target_bits_are_valid(CompactTarget(0xff123456), &p),
        Err(RuleError::BadTargetBits { why: "overflow", .. })
    ));
    assert!(matches!(
        target_bits_are_valid(CompactTarget(0x01003456), &p),
        Err(RuleError::BadTargetBits { why: "zero", .. })
    ));
    assert!(target_bits_are_valid(CompactTarget(0x207fffff), &BitcoinNetwork::BitcoinRegtest.params()).is_ok());
}

#[test]
fn header_context_rules() {
    let p = main();
    let Some(b) = single("mainnet-000000-000255.blk") else { return };
    let h = b.header;
    assert!(time_is_not_too_far_ahead(&h, h.time as i64 - 7200).is_ok());
    assert_eq!(
        time_is_not_too_far_ahead(&h, h.time as i64 - 7201),
        Err(RuleError::TimeTooNew { time: h.time, now: h.time as i64 - 7201 })
    );
    // Median of the 11 previous: equal to it is too old, one above is fine.
    let prev: Vec<u32> = (0..11).map(|i| h.time - 5 + i).collect(); // median = h.time
    assert_eq!(time_is_above_median_past(&h, &prev), Err(RuleError::TimeTooOld { time: h.time, median: h.time }));
    let prev: Vec<u32> = (0..11).map(|i| h.time - 6 + i).collect();
    assert!(time_is_above_median_past(&h, &prev).is_ok());
    assert!(matches!(
        difficulty_matches_retarget(&h, CompactTarget(0x1d00fffe)),
        Err(RuleError::BadDifficultyBits { .. })
    ));
    let mut v = h;
    v.version = 1;
    assert!(version_is_not_obsolete(&v, p.bip34_height - 1, &p).is_ok());
    assert!(matches!(version_is_not_obsolete(&v, p.bip34_height, &p), Err(RuleError::ObsoleteVersion { min: 2, .. })));
    v.version = 3;
    assert!(matches!(version_is_not_obsolete(&v, p.bip65_height, &p), Err(RuleError::ObsoleteVersion { min: 4, .. })));
}

#[test]
fn merkle_rules_and_the_duplicate_transaction_mutation() {
    let Some(b) = single("single-blocks/277647.blk") else { return };
    assert_eq!(b.txdata.len() % 2, 1, "an odd count, so the last transaction is paired with itself");
    let mut changed = b.clone();
    changed.txdata[5].lock_time ^= 1;
    assert!(matches!(merkle_root_is_valid(&changed), Err(RuleError::MerkleRootMismatch { .. })));
    // CVE-2012-2459: appending a copy of the last transaction leaves the root unchanged.
    let mut dup = b.clone();
    dup.txdata.push(b.txdata.last().unwrap().clone());
    let txids: Vec<[u8; 32]> = dup.txdata.iter().map(|t| t.txid().0).collect();
    assert_eq!(merkle::root_and_mutation(&txids).0, b.header.merkle_root.0);
    assert_eq!(merkle_root_is_valid(&dup), Err(RuleError::MerkleMutation));
    assert!(merkle_root_is_valid(&b).is_ok());
}

#[test]
fn coinbase_placement_and_empty_block() {
    let Some(b) = single("single-blocks/277647.blk") else { return };
    let mut e = b.clone();
    e.txdata.clear();
    assert_eq!(block_is_not_empty(&e), Err(RuleError::EmptyBlock));
    let mut swapped = b.clone();
    swapped.txdata.swap(0, 1);
    assert_eq!(coinbase_is_first_and_only(&swapped), Err(RuleError::FirstNotCoinbase));
    let mut two = b.clone();
    two.txdata[7] = b.txdata[0].clone();
    assert_eq!(coinbase_is_first_and_only(&two), Err(RuleError::MultipleCoinbase { index: 7 }));
}

#[test]
fn size_and_weight_limits() {
    let Some(b) = single("single-blocks/540107.blk") else { return };
    assert!(block_weight_is_within_limit(&b).is_ok());
    let mut heavy = b.clone();
    let i = heavy.txdata.iter().position(|t| t.has_witness()).unwrap();
    heavy.txdata[i].inputs[0].witness.push(vec![0u8; 2_000_000]);
    assert!(matches!(block_weight_is_within_limit(&heavy), Err(RuleError::TooLarge { reason: "bad-blk-weight", .. })));
    assert!(block_size_is_within_limits(&heavy).is_ok(), "witness bytes do not count toward the base size");
    let mut big = b.clone();
    big.txdata[1].outputs[0].script_pubkey = vec![0x6a; 1_000_001];
    assert!(matches!(block_size_is_within_limits(&big), Err(RuleError::TooLarge { reason: "bad-blk-length", .. })));
}

#[test]
fn check_transaction_rules() {
    let spend = |txid: u8, vout: u32| TxIn {
        prevout: OutPoint { txid: Txid([txid; 32]), vout },
        script_sig: vec![],
        sequence: 0,
        witness: vec![],
    };
    let ok = Transaction {
        version: 1,
        inputs: vec![spend(1, 0), spend(1, 1)],
        outputs: vec![TxOut { value: 10, script_pubkey: vec![] }],
        lock_time: 0,
    };
    assert!(transaction_is_well_formed(&ok, 1).is_ok());
    let reason = |tx: &Transaction| match transaction_is_well_formed(tx, 1) {
        Err(RuleError::BadTransaction { reason, .. }) => reason,
        other => panic!("{other:?}"),
    };
    let mut t = ok.clone();
    t.inputs.clear();
    assert_eq!(reason(&t), "bad-txns-vin-empty");
    let mut t = ok.clone();
    t.outputs.clear();
    assert_eq!(reason(&t), "bad-txns-vout-empty");
    let mut t = ok.clone();
    t.outputs[0].value = -1;
    assert_eq!(reason(&t), "bad-txns-vout-negative");
    let mut t = ok.clone();
    t.outputs[0].value = MAX_MONEY + 1;
    assert_eq!(reason(&t), "bad-txns-vout-toolarge");
    let mut t = ok.clone();
    t.outputs = vec![TxOut { value: MAX_MONEY, script_pubkey: vec![] }, TxOut { value: 1, script_pubkey: vec![] }];
    assert_eq!(reason(&t), "bad-txns-txouttotal-toolarge");
    let mut t = ok.clone();
    t.inputs[1] = spend(1, 0);
    assert_eq!(reason(&t), "bad-txns-inputs-duplicate");
    let mut t = ok.clone();
    t.inputs[1].prevout = OutPoint::NULL;
    assert_eq!(reason(&t), "bad-txns-prevout-null");
    let mut cb = ok.clone();
    cb.inputs = vec![TxIn { prevout: OutPoint::NULL, script_sig: vec![1], sequence: 0, witness: vec![] }];
    assert_eq!(reason(&cb), "bad-cb-length");
    cb.inputs[0].script_sig = vec![1; 101];
    assert_eq!(reason(&cb), "bad-cb-length");
    cb.inputs[0].script_sig = vec![1; 100];
    assert!(transaction_is_well_formed(&cb, 0).is_ok());
    let mut t = ok.clone();
    t.outputs[0].script_pubkey = vec![0; 1_000_001];
    assert_eq!(reason(&t), "bad-txns-oversize");
}

#[test]
fn bip34_coinbase_height() {
    let p = main();
    assert_eq!(script_push_number(277_647), vec![3, 0x8f, 0x3c, 0x04]);
    assert_eq!(script_push_number(128), vec![2, 0x80, 0x00]);
    assert_eq!(script_push_number(16), vec![0x60]);
    assert_eq!(script_push_number(-1), vec![1, 0x81]);
    let Some(b) = single("single-blocks/277647.blk") else { return };
    assert!(coinbase_has_height(&b, 277_647, &p).is_ok());
    assert_eq!(coinbase_has_height(&b, 277_648, &p), Err(RuleError::CoinbaseHeight { height: 277_648 }));
    assert!(coinbase_has_height(&b, p.bip34_height - 1, &p).is_ok(), "not required before activation");
}

#[test]
fn witness_commitment_rules() {
    let p = main();
    let Some(b) = single("single-blocks/574200.blk") else { return };
    assert!(witness_commitment_is_valid(&b, 574_200, &p).is_ok());
    let i = b.txdata.iter().position(|t| t.has_witness()).unwrap();
    let mut w = b.clone();
    w.txdata[i].inputs[0].witness[0][0] ^= 1;
    assert_eq!(
        witness_commitment_is_valid(&w, 574_200, &p),
        Err(RuleError::WitnessCommitment { reason: "bad-witness-merkle-match" })
    );
    assert!(merkle_root_is_valid(&w).is_ok(), "witness bytes are outside the txid merkle tree");
    let mut n = b.clone();
    n.txdata[0].inputs[0].witness.clear();
    assert_eq!(
        witness_commitment_is_valid(&n, 574_200, &p),
        Err(RuleError::WitnessCommitment { reason: "bad-witness-nonce-size" })
    );
    let mut u = b.clone();
    u.txdata[0].outputs.retain(|o| !o.script_pubkey.starts_with(&[0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed]));
    assert_eq!(
        witness_commitment_is_valid(&u, 574_200, &p),
        Err(RuleError::WitnessCommitment { reason: "unexpected-witness" })
    );
    // Before segwit no commitment applies, so witness data is unexpected at any height (Core's
    // CheckWitnessMalleation); the same block with its witnesses stripped is fine there.
    for height in [0, 170, p.segwit_height - 1] {
        assert_eq!(
            witness_commitment_is_valid(&u, height, &p),
            Err(RuleError::WitnessCommitment { reason: "unexpected-witness" }),
            "height {height}"
        );
        assert_eq!(witness_commitment_is_valid(&b, height, &p), witness_data_is_committed(&b));
    }
    let mut stripped = u.clone();
    stripped.txdata.iter_mut().flat_map(|t| &mut t.inputs).for_each(|i| i.witness.clear());
    assert!(witness_commitment_is_valid(&stripped, p.segwit_height - 1, &p).is_ok());
    assert!(witness_data_is_committed(&stripped).is_ok());
}

/// The counting median check agrees with sorting and comparing (Bitcoin Core's `GetMedianTimePast`)
/// on random times with many ties, for every window length up to 15 and any order.
#[test]
fn median_time_by_counting_equals_sorting() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut h = crate::consensus::BitcoinNetwork::BitcoinRegtest.params().genesis;
    for _ in 0..20_000 {
        let n = rng.gen_range(0..=15);
        let prev: Vec<u32> = (0..n).map(|_| rng.gen_range(100..110)).collect();
        h.time = rng.gen_range(98..112);
        let last: Vec<u32> = prev[n - n.min(11)..].to_vec();
        let want = if last.is_empty() {
            Ok(())
        } else {
            let mut s = last.clone();
            s.sort();
            let median = s[s.len() / 2];
            if h.time > median {
                Ok(())
            } else {
                Err(RuleError::TimeTooOld { time: h.time, median })
            }
        };
        assert_eq!(time_is_above_median_past(&h, &prev), want, "{prev:?} {}", h.time);
    }
}
