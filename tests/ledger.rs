//! powkit chains end to end: keys and signed transfers from the CLI, generated chains that
//! validate to the generator's state root, and planted bad blocks reported with the rule, height,
//! file and offset (bad signature, replayed nonce, overspend, wrong chain id, bad proof of work,
//! malformed transaction).

use std::path::PathBuf;
use std::process::{Command, Output};

use powkit::consensus::LedgerNetwork;
use powkit::ledger::tx::{LedgerTx, Transfer};
use powkit::ledger::{AccountKey, LedgerBlock};
use serde_json::Value;

fn powkit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_powkit")).args(args).output().expect("run powkit")
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("powkit-ledger-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn validate(file: &str) -> (i32, Value) {
    let out = powkit(&["validate", "--chain", "powkit-regtest", "--json", file]);
    let j = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&out.stderr).into_owned()));
    (out.status.code().unwrap(), j)
}

/// The blk records of a file: (offset of the block's bytes, bytes).
fn records(bytes: &[u8]) -> Vec<(usize, Vec<u8>)> {
    let mut out = vec![];
    let mut o = 0;
    while o + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[o + 4..o + 8].try_into().unwrap()) as usize;
        out.push((o + 8, bytes[o + 8..o + 8 + len].to_vec()));
        o += 8 + len;
    }
    out
}

fn write_chain(path: &PathBuf, blocks: &[Vec<u8>]) {
    let magic = LedgerNetwork::PowkitRegtest.params().magic;
    let mut out = vec![];
    for b in blocks {
        out.extend_from_slice(&magic);
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
    }
    std::fs::write(path, out).unwrap();
}

/// Re-seals an altered block: merkle root recomputed and the header mined again, so only the
/// altered rule can fail.
fn reseal(mut b: LedgerBlock) -> Vec<u8> {
    b.header.merkle_root = powkit::primitives::TxMerkleNode(b.merkle_root().0);
    let scanner = powkit::sha256::CpuImpl::Scalar.scanner().unwrap();
    b.header = powkit::mine::mine_header(b.header, scanner.as_ref()).unwrap();
    b.to_bytes()
}

#[test]
fn keys_and_transfers_from_the_cli() {
    let d = dir("keys");
    let k = d.join("alice.key");
    let out = powkit(&["key", "new", "--out", k.to_str().unwrap()]);
    assert!(out.status.success());
    let pk = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(pk.len(), 64);
    // Never overwritten.
    assert_eq!(powkit(&["key", "new", "--out", k.to_str().unwrap()]).status.code(), Some(2));
    let to = "11".repeat(32);
    let args =
        ["tx", "transfer", "--key", k.to_str().unwrap(), "--to", &to, "--amount", "7", "--fee", "2", "--nonce", "3"];
    let out = powkit(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let hex_tx = String::from_utf8(out.stdout).unwrap();
    let LedgerTx::Transfer(t) = LedgerTx::from_bytes(&hex::decode(hex_tx.trim()).unwrap()).unwrap() else {
        panic!("not a transfer")
    };
    assert_eq!(hex::encode(t.from.0), pk);
    assert_eq!((t.amount, t.fee, t.nonce, t.to), (7, 2, 3, AccountKey([0x11; 32])));
    assert_eq!(t.chain_id, LedgerNetwork::Powkit.params().chain_id);
    assert!(powkit::consensus::ledger::transfer_signature_is_valid(&t, 1).is_ok());
    // Bad flags: a bad public key, a missing key file, a Bitcoin chain.
    let bad =
        ["tx", "transfer", "--key", k.to_str().unwrap(), "--to", "zz", "--amount", "1", "--fee", "0", "--nonce", "0"];
    assert_eq!(powkit(&bad).status.code(), Some(2));
    let missing =
        ["tx", "transfer", "--key", "/nonexistent", "--to", &to, "--amount", "1", "--fee", "0", "--nonce", "0"];
    assert_eq!(powkit(&missing).status.code(), Some(2));
}

#[test]
fn generated_chains_validate_and_planted_bad_blocks_are_reported() {
    let d = dir("chain");
    let f = d.join("chain.blk");
    let out = powkit(&[
        "chain",
        "generate",
        "--chain",
        "powkit-regtest",
        "--blocks",
        "25",
        "--txs-per-block",
        "40",
        "--out",
        f.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8(out.stdout).unwrap();
    let (code, j) = validate(f.to_str().unwrap());
    assert_eq!(code, 0, "{j}");
    assert_eq!(j["best_height"], 24);
    assert!(said.contains(j["state_root"].as_str().unwrap()), "{said} vs {j}");
    assert_eq!(j["transactions"], 1 + 24 + 23 * 40);
    // The same root on one thread (signature batches and decoding are spread over the pool; the
    // state is applied in order, so the thread count cannot change it).
    let one = Command::new(env!("CARGO_BIN_EXE_powkit"))
        .args(["validate", "--chain", "powkit-regtest", "--json", f.to_str().unwrap()])
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap();
    let one: Value = serde_json::from_slice(&one.stdout).unwrap();
    assert_eq!(one["state_root"], j["state_root"]);
    assert_eq!(one["backend"], "cpu (1 threads)");

    let bytes = std::fs::read(&f).unwrap();
    let recs = records(&bytes);
    let blocks: Vec<Vec<u8>> = recs.iter().map(|(_, b)| b.clone()).collect();
    let k = 10;
    let block = LedgerBlock::from_bytes(&blocks[k]).unwrap();
    let keys = powkit::generate::ledger::keys();
    let key_of = |pk: &AccountKey| *keys.iter().find(|s| powkit::ledger::keys::public(s) == *pk).unwrap();
    let LedgerTx::Transfer(t) = block.txs[3] else { panic!() };
    let planted: Vec<(&str, Vec<u8>)> = vec![
        ("transfer_signature_is_valid", {
            let mut b = block.clone();
            let mut bad = t;
            bad.signature[40] ^= 1;
            b.txs[3] = LedgerTx::Transfer(bad);
            reseal(b)
        }),
        ("transfer_nonce_matches", {
            let mut b = block.clone();
            b.txs.insert(4, b.txs[3]);
            reseal(b)
        }),
        ("transfer_is_funded", {
            let mut b = block.clone();
            b.txs[3] = LedgerTx::Transfer(Transfer { amount: u64::MAX / 2, ..t }.sign(&key_of(&t.from)));
            reseal(b)
        }),
        ("transfer_chain_id_matches", {
            let mut b = block.clone();
            let main = LedgerNetwork::Powkit.params().chain_id;
            b.txs[3] = LedgerTx::Transfer(Transfer { chain_id: main, ..t }.sign(&key_of(&t.from)));
            reseal(b)
        }),
        ("proof_of_work_is_valid", {
            let mut b = block.clone();
            let target = b.header.bits.to_target().unwrap();
            while target.is_met_by(&b.header.block_hash()) {
                b.header.nonce = b.header.nonce.wrapping_add(1);
            }
            b.to_bytes()
        }),
        ("coinbase_commits_state_root", {
            let mut b = block.clone();
            if let LedgerTx::Coinbase(cb) = &mut b.txs[0] {
                cb.state_root.0[9] ^= 1;
            }
            reseal(b)
        }),
    ];
    for (rule, altered) in planted {
        let mut chain = blocks.clone();
        chain[k] = altered;
        let p = d.join(format!("{rule}.blk"));
        write_chain(&p, &chain);
        let (code, j) = validate(p.to_str().unwrap());
        assert_eq!(code, 1, "{rule}: {j}");
        assert_eq!(j["invalid"]["rule"], rule, "{j}");
        assert_eq!(j["invalid"]["height"], k, "{j}");
        assert_eq!(j["invalid"]["offset"], recs[k].0, "{j}");
        assert_eq!(j["best_height"], k - 1, "{j}");
    }
    // A malformed transaction (kind byte 7): exit 2 with the offset.
    let mut chain = blocks.clone();
    let at = 80 + 1 + powkit::ledger::tx::COINBASE_SIZE;
    chain[k][at] = 7;
    let p = d.join("malformed.blk");
    write_chain(&p, &chain);
    let (code, j) = validate(p.to_str().unwrap());
    assert_eq!(code, 2, "{j}");
    assert_eq!(j["malformed"]["offset"], recs[k].0, "{j}");
    assert!(j["malformed"]["message"].as_str().unwrap().contains("transaction kind"), "{j}");
    // An invalid block followed later by unreadable bytes: the invalid block is the answer.
    let mut chain = blocks.clone();
    let mut b = LedgerBlock::from_bytes(&chain[k]).unwrap();
    if let LedgerTx::Transfer(t) = &mut b.txs[2] {
        t.signature[40] ^= 1;
    }
    chain[k] = reseal(b);
    let p = d.join("bad-then-garbage.blk");
    write_chain(&p, &chain);
    let mut bytes = std::fs::read(&p).unwrap();
    bytes.extend_from_slice(b"garbage!");
    std::fs::write(&p, bytes).unwrap();
    let (code, j) = validate(p.to_str().unwrap());
    assert_eq!(code, 1, "{j}");
    assert_eq!(j["invalid"]["rule"], "transfer_signature_is_valid", "{j}");
    // A missing block: the next one's parent is unknown.
    let mut chain = blocks.clone();
    chain.remove(k);
    let p = d.join("gap.blk");
    write_chain(&p, &chain);
    let (code, j) = validate(p.to_str().unwrap());
    assert_eq!(code, 1, "{j}");
    assert_eq!(j["invalid"]["rule"], "parent_is_known", "{j}");
}
