//! `powkit validate` and `powkit chain generate` end to end, on the real mainnet data in
//! ../shared/data and on generated chains; planted one-byte corruptions are reported with the rule
//! and the location.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn powkit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_powkit")).args(args).output().expect("run powkit")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    })
}

fn data(rel: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/bitcoin").join(rel);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipping: {} not present", p.display());
        None
    }
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("powkit-validate-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// (offset of the record's data, length) for each blk record.
fn records(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut o = 0;
    while o + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[o + 4..o + 8].try_into().unwrap()) as usize;
        out.push((o + 8, len));
        o += 8 + len;
    }
    out
}

fn validate(args: &[&str]) -> (i32, Value) {
    let mut a = vec!["validate", "--json", "--backend", "cpu"];
    a.extend_from_slice(args);
    let out = powkit(&a);
    (out.status.code().unwrap(), json(&out))
}

#[test]
fn real_mainnet_chain_and_single_blocks_validate() {
    let Some(chain) = data("mainnet-000000-000255.blk") else { return };
    let (code, j) = validate(&[chain.to_str().unwrap()]);
    assert_eq!(code, 0, "{j}");
    assert_eq!(j["valid"], true);
    assert_eq!(j["blocks"], 256);
    assert_eq!(j["transactions"], 263);
    assert_eq!(j["best_height"], 255);
    assert_eq!(j["tip"], "00000000d0a75c861fabf9ff7b92022f60e4afeed9331fe5aa073d8e4706fe3c");
    // 256 blocks at difficulty 1, 0x100010001 each.
    assert_eq!(j["chainwork"].as_str().unwrap().trim_start_matches('0'), "10001000100");
    assert!(j["headers_per_second"].as_f64().unwrap() > 0.0);
    assert!(j["not_checked"].as_str().unwrap().contains("scripts"));
    let singles: Vec<String> = ["277647", "540107", "574200"]
        .iter()
        .filter_map(|b| data(&format!("single-blocks/{b}.blk")))
        .map(|p| p.to_str().unwrap().to_string())
        .collect();
    let mut args = vec!["--no-context"];
    args.extend(singles.iter().map(|s| s.as_str()));
    let (code, j) = validate(&args);
    assert_eq!(code, 0, "{j}");
    assert_eq!(j["blocks"], singles.len());
    if singles.len() == 3 {
        assert_eq!(j["transactions"], 213 + 230 + 3315);
    }
}

#[test]
fn out_of_order_records_are_reordered_and_a_missing_parent_is_reported() {
    let Some(chain) = data("mainnet-000000-000255.blk") else { return };
    let bytes = std::fs::read(&chain).unwrap();
    let recs = records(&bytes);
    let frame = |i: usize| {
        let (o, l) = recs[i];
        bytes[o - 8..o + l].to_vec()
    };
    // Reverse blocks 10..60 (Bitcoin Core writes blocks as they arrive, not in height order).
    let mut order: Vec<usize> = (0..recs.len()).collect();
    order[10..60].reverse();
    let shuffled: Vec<u8> = order.iter().flat_map(|&i| frame(i)).collect();
    let d = tmpdir("order");
    let p = d.join("shuffled.blk");
    std::fs::write(&p, &shuffled).unwrap();
    let (code, j) = validate(&[p.to_str().unwrap()]);
    assert_eq!(code, 0, "{j}");
    assert_eq!(j["best_height"], 255);
    // Drop block 50: blocks 51.. wait for a parent that never comes.
    let dropped: Vec<u8> = (0..recs.len()).filter(|&i| i != 50).flat_map(frame).collect();
    let p = d.join("dropped.blk");
    std::fs::write(&p, &dropped).unwrap();
    let (code, j) = validate(&[p.to_str().unwrap()]);
    assert_eq!(code, 1, "{j}");
    assert_eq!(j["invalid"]["rule"], "parent_is_known");
    assert_eq!(j["best_height"], 49);
    // The orphan bound: with room for 10 waiting blocks, the 11th is refused.
    let (code, j) = validate(&["--orphan-limit", "10", p.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(j["invalid"]["message"].as_str().unwrap().contains("orphan limit"), "{j}");
}

#[test]
fn one_byte_corruptions_are_reported_with_rule_and_location() {
    let Some(chain) = data("mainnet-000000-000255.blk") else { return };
    let bytes = std::fs::read(&chain).unwrap();
    let recs = records(&bytes);
    let d = tmpdir("corrupt");
    let (b100, _) = recs[100];
    let (b170, l170) = recs[170];
    // (byte to flip, xor, extra flags, expected rule, expected exit code)
    let cases: Vec<(usize, u8, Vec<&str>, &str, i32)> = vec![
        (b100 + 76, 0x01, vec![], "proof_of_work_is_valid", 1),   // nonce
        (b100 + 4, 0x01, vec![], "proof_of_work_is_valid", 1),    // prev hash byte
        (b100 + 4, 0x01, vec!["--no-pow"], "parent_is_known", 1), // the same, structure only
        (b170 + l170 - 5, 0x01, vec![], "merkle_root_is_valid", 1), // a transaction byte
        (b100 + 72, 0x01, vec!["--no-pow"], "difficulty_matches_retarget", 1), // bits
        (b100 + 71, 0x80, vec!["--no-pow"], "time_is_not_too_far_ahead", 1), // time far ahead
        (b100 + 71, 0x40, vec!["--no-pow"], "time_is_above_median_past", 1), // time, back to 1970s
        (b100, 0x01, vec!["--no-pow", "--no-context"], "", 0),    // version 1 -> 0: no rule at height 100
    ];
    for (i, (at, x, flags, rule, code)) in cases.into_iter().enumerate() {
        let mut c = bytes.clone();
        c[at] ^= x;
        let p = d.join(format!("c{i}.blk"));
        std::fs::write(&p, &c).unwrap();
        let mut args = flags.clone();
        args.push(p.to_str().unwrap());
        let (got, j) = validate(&args);
        assert_eq!(got, code, "case {i}: {j}");
        if code == 1 {
            assert_eq!(j["invalid"]["rule"], rule, "case {i}: {j}");
            assert_eq!(j["invalid"]["file"], p.to_str().unwrap());
            if rule == "proof_of_work_is_valid" && at == b100 + 76 {
                assert_eq!(j["invalid"]["height"], 100, "case {i}: the height of a context-free failure");
            }
            let off = j["invalid"]["offset"].as_u64().unwrap() as usize;
            let rec = recs.iter().find(|(o, l)| (*o..o + l).contains(&at)).unwrap();
            if rule != "parent_is_known" {
                assert_eq!(off, rec.0, "case {i}: the offset of the corrupted record");
            }
        }
    }
    // A length byte (issue 13, fault 3: was exit 2): block 20's length now runs past the end of
    // the file, so Core's reader skips its record as cut off and finds block 21 by scanning on;
    // block 21's parent never comes, reported at block 21 with the skip listed.
    let mut c = bytes.clone();
    c[recs[20].0 - 2] ^= 0x10;
    let p = d.join("length.blk");
    std::fs::write(&p, &c).unwrap();
    let (code, j) = validate(&[p.to_str().unwrap()]);
    assert_eq!(code, 1, "{j}");
    assert_eq!(
        (j["invalid"]["rule"].clone(), j["invalid"]["offset"].clone()),
        ("parent_is_known".into(), recs[21].0.into())
    );
    assert_eq!(j["best_height"], 19);
    let s = &j["skipped"]["first"][0];
    assert_eq!((s["offset"].clone(), s["bytes"].clone()), ((recs[20].0 - 8).into(), (8 + recs[20].1).into()), "{j}");
    // A truncated file (was exit 2 `truncated block`): the cut-off last record is skipped.
    let p = d.join("cut.blk");
    std::fs::write(&p, &bytes[..bytes.len() - 10]).unwrap();
    let (code, j) = validate(&[p.to_str().unwrap()]);
    assert_eq!((code, j["best_height"].clone()), (0, 254.into()), "{j}");
    assert_eq!(j["skipped"]["count"], 1);
}

#[test]
fn generated_regtest_chains_validate_and_corruption_is_caught() {
    let d = tmpdir("gen");
    let h = d.join("headers.bin");
    let out =
        powkit(&["chain", "generate", "--chain", "bitcoin-regtest", "--headers", "5000", "--out", h.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::metadata(&h).unwrap().len(), 5000 * 80);
    let (code, j) = validate(&["--chain", "bitcoin-regtest", "--format", "headers", h.to_str().unwrap()]);
    assert_eq!(code, 0, "{j}");
    assert_eq!(j["best_height"], 4999);
    // The same headers fail on mainnet: regtest's bits are above its limit.
    let (code, j) = validate(&["--format", "headers", "--no-context", h.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(j["invalid"]["rule"], "target_bits_are_valid");
    // Header 3000's bits changed (structure only): the retarget rule reports it at its height.
    let mut bytes = std::fs::read(&h).unwrap();
    bytes[3000 * 80 + 72] ^= 0x01;
    let c = d.join("bad.bin");
    std::fs::write(&c, &bytes).unwrap();
    let (code, j) = validate(&["--chain", "bitcoin-regtest", "--format", "headers", "--no-pow", c.to_str().unwrap()]);
    assert_eq!(code, 1, "{j}");
    assert_eq!(j["invalid"]["rule"], "difficulty_matches_retarget");
    assert_eq!(j["invalid"]["height"], 3000);
    assert_eq!(j["invalid"]["offset"], 3000 * 80);
    // Blocks with transactions, in blk format.
    let b = d.join("blocks.blk");
    let out = powkit(&["chain", "generate", "--blocks", "300", "--txs-per-block", "5", "--out", b.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Their transfers spend made-up outputs: structure only (`--no-utxo`); full validation
    // refuses the first one as Core would.
    let (code, j) = validate(&["--chain", "bitcoin-regtest", "--no-utxo", b.to_str().unwrap()]);
    assert_eq!(code, 0, "{j}");
    assert_eq!(j["transactions"], 1 + 299 * 6);
    let (code, j) = validate(&["--chain", "bitcoin-regtest", b.to_str().unwrap()]);
    assert_eq!((code, j["invalid"]["height"].clone()), (1, 1.into()), "{j}");
    assert_eq!(j["invalid"]["reason"], "bad-txns-inputs-missingorspent", "{j}");
}

/// A chain of many batches: the workers prepare batches in parallel and link them in order, so
/// the result (and a failure deep in the input) is the same for any number of threads.
#[test]
fn many_batches_link_in_order_on_any_number_of_threads() {
    let d = tmpdir("batches");
    let h = d.join("headers.bin");
    let out = powkit(&[
        "chain",
        "generate",
        "--chain",
        "bitcoin-regtest",
        "--headers",
        "60000",
        "--out",
        h.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let hs = h.to_str().unwrap();
    let (code, one) = validate(&["--chain", "bitcoin-regtest", "--format", "headers", "--threads", "1", hs]);
    assert_eq!(code, 0, "{one}");
    assert_eq!(one["best_height"], 59999);
    for t in ["2", "3", "8"] {
        let (code, j) = validate(&["--chain", "bitcoin-regtest", "--format", "headers", "--threads", t, hs]);
        assert_eq!(code, 0, "{j}");
        assert_eq!((&j["tip"], &j["chainwork"], &j["headers"]), (&one["tip"], &one["chainwork"], &one["headers"]));
    }
    // Header 45,000's time set to zero: below the median of the 11 before it.
    let mut bytes = std::fs::read(&h).unwrap();
    bytes[45_000 * 80 + 68..45_000 * 80 + 72].copy_from_slice(&[0; 4]);
    let c = d.join("old.bin");
    std::fs::write(&c, &bytes).unwrap();
    for t in ["1", "2", "3"] {
        let args =
            ["--chain", "bitcoin-regtest", "--format", "headers", "--no-pow", "--threads", t, c.to_str().unwrap()];
        let (code, j) = validate(&args);
        assert_eq!(code, 1, "{j}");
        assert_eq!(j["invalid"]["rule"], "time_is_above_median_past", "{j}");
        assert_eq!(j["invalid"]["height"], 45_000);
        assert_eq!(j["invalid"]["offset"], 45_000 * 80);
        assert_eq!(j["best_height"], 44_999);
    }
}

#[test]
fn validate_on_the_gpu_equals_the_cpu() {
    let Some(chain) = data("mainnet-000000-000255.blk") else { return };
    let list = powkit(&["gpu", "list", "--json"]);
    if json(&list).as_array().is_none_or(|a| a.is_empty()) {
        assert!(std::env::var("POWKIT_REQUIRE_GPU").map_or(true, |v| v != "1"), "POWKIT_REQUIRE_GPU=1 but no adapter");
        eprintln!("skipping: no GPU adapter");
        return;
    }
    let out = powkit(&["validate", "--json", "--backend", "gpu", chain.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let j = json(&out);
    assert_eq!(j["tip"], "00000000d0a75c861fabf9ff7b92022f60e4afeed9331fe5aa073d8e4706fe3c");
    assert!(j["backend"].as_str().unwrap().starts_with("gpu"));
}

/// Two children of one parent that both arrive before it: the first seen connects, the other (and
/// anything built on it) is a stale fork, not stacked on its sibling.
#[test]
fn orphan_siblings_are_not_stacked_on_each_other() {
    use powkit::consensus::BitcoinNetwork;
    use powkit::primitives::{BlockHeader, TxMerkleNode};
    let g = BitcoinNetwork::BitcoinRegtest.params().genesis;
    let mk = |prev: &BlockHeader, tag: u8, dt: u32| BlockHeader {
        version: 4,
        prev_blockhash: prev.block_hash(),
        merkle_root: TxMerkleNode([tag; 32]),
        time: g.time + dt,
        bits: g.bits,
        nonce: 0,
    };
    let h1 = mk(&g, 1, 1);
    let (h2a, h2b) = (mk(&h1, 2, 2), mk(&h1, 3, 2));
    let h3a = mk(&h2a, 4, 3);
    let h3b = mk(&h2b, 5, 3);
    let d = tmpdir("siblings");
    // b: once h1 arrives, h2a connects (first seen), h2b waits on a side branch, and h3b (read
    // before h3a) makes that branch the heaviest: a reorg; h3a only ties it. Most work wins, first
    // seen on ties, as in Bitcoin Core.
    for (name, order, stale, tip) in
        [("a", vec![g, h2a, h2b, h1, h3a], 1, h3a), ("b", vec![g, h2a, h3b, h2b, h1, h3a], 2, h3b)]
    {
        let f = d.join(format!("{name}.bin"));
        std::fs::write(&f, order.iter().flat_map(|h| h.to_bytes()).collect::<Vec<u8>>()).unwrap();
        let args = ["--chain", "bitcoin-regtest", "--format", "headers", "--no-pow", f.to_str().unwrap()];
        let (code, j) = validate(&args);
        assert_eq!(code, 0, "{j}");
        assert_eq!(j["best_height"], 3, "{j}");
        assert_eq!(j["tip"], tip.block_hash().to_string(), "{j}");
        assert_eq!(j["stale_blocks"], stale, "{j}");
    }
}

/// A hex line shorter than a header is malformed input (exit 2), also with many batches after
/// it: no worker panics, nothing waits forever.
#[test]
fn short_hex_records_are_malformed_not_a_hang() {
    use std::time::{Duration, Instant};
    let g = hex::encode(powkit::consensus::BitcoinNetwork::BitcoinRegtest.params().genesis.to_bytes());
    let mut text = format!("{g}\n00\n");
    for _ in 0..30_000 {
        text.push_str(&g);
        text.push('\n');
    }
    let d = tmpdir("shorthex");
    let f = d.join("short.hex");
    std::fs::write(&f, text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_powkit"))
        .args([
            "validate",
            "--chain",
            "bitcoin-regtest",
            "--format",
            "hex",
            "--no-pow",
            "--threads",
            "2",
            f.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("validate hung on a short hex record");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    assert_eq!(status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2: 1 bytes, shorter than an 80-byte header"), "{err}");
}

/// Reorgs at depth across files, back and forth: branch A (heights 1..10) in one file, branch B
/// forking at height 4 and reaching 12 in a second (a reorg 6 deep), A continuing to 14 in a third
/// (a reorg back, 8 deep). The most-work chain wins each time, whatever the order of the files.
/// `n` regtest headers after `from` (the bits of `from`, one second apart, merkle roots of `tag`
/// bytes so branches differ; no proof of work: run with `--no-pow`).
fn grow(from: &powkit::primitives::BlockHeader, n: usize, tag: u8) -> Vec<powkit::primitives::BlockHeader> {
    let mut out = Vec::with_capacity(n);
    let mut prev = *from;
    for i in 0..n {
        let h = powkit::primitives::BlockHeader {
            version: 4,
            prev_blockhash: prev.block_hash(),
            merkle_root: powkit::primitives::TxMerkleNode([tag; 32]),
            time: prev.time + 1,
            bits: from.bits,
            nonce: i as u32,
        };
        out.push(h);
        prev = h;
    }
    out
}

#[test]
fn deep_reorgs_across_files_follow_the_most_work() {
    use powkit::consensus::BitcoinNetwork;
    use powkit::primitives::BlockHeader;
    let g = BitcoinNetwork::BitcoinRegtest.params().genesis;
    let a = grow(&g, 14, 1);
    let b = grow(&a[3], 8, 2); // heights 5..12
    let d = tmpdir("deepreorg");
    let write = |name: &str, hs: &[BlockHeader]| {
        let f = d.join(name);
        std::fs::write(&f, hs.iter().flat_map(|h| h.to_bytes()).collect::<Vec<u8>>()).unwrap();
        f.to_str().unwrap().to_string()
    };
    let mut first = vec![g];
    first.extend_from_slice(&a[..10]);
    let f1 = write("1.bin", &first);
    let f2 = write("2.bin", &b);
    let f3 = write("3.bin", &a[10..]);
    let base = ["--chain", "bitcoin-regtest", "--format", "headers", "--no-pow"];
    let (code, j) = validate(&[&base[..], &[f1.as_str(), f2.as_str()]].concat());
    assert_eq!(code, 0, "{j}");
    assert_eq!(j["best_height"], 12, "{j}");
    assert_eq!(j["tip"], b[7].block_hash().to_string(), "{j}");
    assert_eq!((j["reorgs"].as_u64(), j["max_reorg_depth"].as_u64()), (Some(1), Some(6)), "{j}");
    let (code, j) = validate(&[&base[..], &[f1.as_str(), f2.as_str(), f3.as_str()]].concat());
    assert_eq!(code, 0, "{j}");
    assert_eq!(j["best_height"], 14, "{j}");
    assert_eq!(j["tip"], a[13].block_hash().to_string(), "{j}");
    assert_eq!((j["reorgs"].as_u64(), j["max_reorg_depth"].as_u64()), (Some(2), Some(8)), "{j}");
    assert_eq!(j["stale_blocks"], 8, "{j}");
}

/// Header files keep only a window of recent headers in memory (4,096 or more): a fork 9,000
/// deep, a reorg back 9,500 deep, and a duplicate of a header far below the window are placed
/// exactly by reading older headers back from their files; the same input through a pipe (which
/// cannot be read back, so every header stays in memory) gives the same report.
#[test]
fn reorgs_and_duplicates_far_below_the_header_window_are_exact() {
    use powkit::consensus::BitcoinNetwork;
    use powkit::primitives::BlockHeader;
    let g = BitcoinNetwork::BitcoinRegtest.params().genesis;
    let a = grow(&g, 12_600, 1); // a[i] at height i + 1
    let b = grow(&a[2_999], 9_500, 2); // heights 3,001..=12,500
    let d = tmpdir("windowreorg");
    let write = |name: &str, hs: &[BlockHeader]| {
        let f = d.join(name);
        std::fs::write(&f, hs.iter().flat_map(|h| h.to_bytes()).collect::<Vec<u8>>()).unwrap();
        f.to_str().unwrap().to_string()
    };
    let mut first = vec![g];
    first.extend_from_slice(&a[..12_000]);
    let f1 = write("1.bin", &first);
    let f2 = write("2.bin", &b);
    let f3 = write("3.bin", &[&a[12_000..], &a[9..10]].concat());
    let base = ["--chain", "bitcoin-regtest", "--format", "headers", "--no-pow"];
    let (code, j) = validate(&[&base[..], &[f1.as_str(), f2.as_str()]].concat());
    assert_eq!(code, 0, "{j}");
    assert_eq!(j["best_height"], 12_500, "{j}");
    assert_eq!(j["tip"], b[9_499].block_hash().to_string(), "{j}");
    assert_eq!((j["reorgs"].as_u64(), j["max_reorg_depth"].as_u64()), (Some(1), Some(9_000)), "{j}");
    let (code, j) = validate(&[&base[..], &[f1.as_str(), f2.as_str(), f3.as_str()]].concat());
    assert_eq!(code, 0, "{j}");
    assert_eq!(j["best_height"], 12_600, "{j}");
    assert_eq!(j["tip"], a[12_599].block_hash().to_string(), "{j}");
    assert_eq!((j["reorgs"].as_u64(), j["max_reorg_depth"].as_u64()), (Some(2), Some(9_500)), "{j}");
    assert_eq!((j["stale_blocks"].as_u64(), j["duplicates"].as_u64()), (Some(9_500), Some(1)), "{j}");
    // The same bytes through a pipe: nothing can be read back, everything stays in memory.
    let cat =
        format!("cat {f1} {f2} {f3} | {} validate {} /dev/stdin --json", env!("CARGO_BIN_EXE_powkit"), base.join(" "));
    let out = Command::new("bash").args(["-c", &cat]).output().unwrap();
    let k: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    for field in ["best_height", "tip", "chainwork", "reorgs", "max_reorg_depth", "stale_blocks", "duplicates"] {
        assert_eq!(k[field], j[field], "{field}: {k}");
    }
}

/// The file in `../shared/data/realworld/` (issue 13's failing inputs), or `None` with a reason.
fn realworld(name: &str) -> Option<PathBuf> {
    data(&format!("../realworld/{name}"))
}

/// Issue 13, fault 3: `small-junk-between.blk` (mainnet blocks 0 and 1, `de ad be ef`, blocks 2
/// and 3) is valid to height 3 with the four bytes skipped and reported where they are (exit 2
/// `expected network magic` before). Text output names the skip too.
#[test]
fn junk_between_records_is_skipped_and_reported() {
    let Some(f) = realworld("small-junk-between.blk") else { return };
    let (code, j) = validate(&[f.to_str().unwrap()]);
    assert_eq!(code, 0, "{j}");
    assert_eq!(j["valid"], true);
    assert_eq!(j["best_height"], 3);
    assert_eq!(j["blocks"], 4);
    assert_eq!(j["skipped"]["count"], 1);
    assert_eq!(j["skipped"]["bytes"], 4);
    let s = &j["skipped"]["first"][0];
    assert_eq!(s["offset"], 8 + 285 + 8 + 215, "after blocks 0 (285 bytes) and 1 (215 bytes)");
    assert_eq!(s["bytes"], 4);
    assert_eq!(s["why"], "no network magic");
    assert_eq!(s["file"], f.to_str().unwrap());
    let out = powkit(&["validate", "--backend", "cpu", f.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("skipped 1 run(s) of unframed blk bytes, 4 bytes"), "{text}");
    assert!(text.contains("offset 516: 4 bytes: no network magic"), "{text}");
}

/// Issue 13, fault 3: a blk file cut in the middle of its last record (Core was writing it) is
/// valid up to the record before, the cut-off bytes one skip (exit 2 `truncated block` before);
/// zero padding after the records (Core's pre-allocation) is a skip; junk with false magics
/// (bad lengths, a magic cut short) between records is skipped to the next real record.
#[test]
fn cut_off_records_padding_and_false_magics_are_skipped() {
    let Some(chain) = data("mainnet-000000-000255.blk") else { return };
    let bytes = std::fs::read(&chain).unwrap();
    let recs = records(&bytes);
    let (last, last_len) = recs[255];
    let d = tmpdir("skips");
    let cut = d.join("cut.blk");
    std::fs::write(&cut, &bytes[..last + last_len / 2]).unwrap();
    let (code, j) = validate(&[cut.to_str().unwrap()]);
    assert_eq!(code, 0, "{j}");
    assert_eq!((j["best_height"].clone(), j["blocks"].clone()), (254.into(), 255.into()));
    assert_eq!(j["skipped"]["count"], 1);
    let s = &j["skipped"]["first"][0];
    assert_eq!(s["offset"], last - 8);
    assert_eq!(s["bytes"], 8 + last_len / 2);
    assert_eq!(s["why"], format!("record cut off by the end of the file ({} of {last_len} bytes)", last_len / 2));
    // Zero padding: 1 MiB of zeros after the last record.
    let padded = d.join("padded.blk");
    std::fs::write(&padded, [&bytes[..], &vec![0u8; 1 << 20]].concat()).unwrap();
    let (code, j) = validate(&[padded.to_str().unwrap()]);
    assert_eq!((code, j["best_height"].clone()), (0, 255.into()), "{j}");
    let s = &j["skipped"]["first"][0];
    assert_eq!(
        (s["offset"].clone(), s["bytes"].clone(), s["why"].clone()),
        (bytes.len().into(), (1 << 20).into(), "zero padding".into())
    );
    // Junk holding false magics between blocks 100 and 101.
    let at = recs[101].0 - 8;
    let mut junk = b"\x01\xf9\xbe\xb4\xd9\xff\xff\xff\xff\xf9\xbe\xb4\xf9\xbe\xb4\xd9\x10\x00\x00\x00".to_vec();
    junk.extend_from_slice(&[0xf9, 0xbe, 0xb4, 0xd9, 0x01, 0x09, 0x3d, 0x00]); // 4,000,001 bytes
    let spliced = [&bytes[..at], &junk, &bytes[at..]].concat();
    let f = d.join("false-magic.blk");
    std::fs::write(&f, spliced).unwrap();
    let (code, j) = validate(&[f.to_str().unwrap()]);
    assert_eq!((code, j["best_height"].clone()), (0, 255.into()), "{j}");
    let s = &j["skipped"]["first"][0];
    assert_eq!(
        (s["offset"].clone(), s["bytes"].clone(), s["why"].clone()),
        (at.into(), junk.len().into(), "no network magic".into())
    );
    assert_eq!(j["skipped"]["count"], 1);
}

/// Issue 13, fault 4: a Bitcoin Core 28+ blocks directory (blk files obfuscated with
/// `blocks/xor.dat`; rev files, `index/`) validates with the tip of the plain file, given as the
/// blocks directory or as the data directory; a loose obfuscated file validates with
/// `--xor-key`; without a key or with a wrong one it is a clear error (exit 2), not a panic and
/// not an empty "valid". Before: exit 2 `expected network magic` for all of them.
#[test]
fn obfuscated_core_blocks_directories_validate() {
    let Some(chain) = data("mainnet-000000-000255.blk") else { return };
    let bytes = std::fs::read(&chain).unwrap();
    let recs = records(&bytes);
    let key = [0x3c, 0x91, 0x07, 0xa5, 0xee, 0x42, 0x18, 0xd6];
    let obfuscate = |plain: &[u8]| -> Vec<u8> { plain.iter().enumerate().map(|(i, b)| b ^ key[i % 8]).collect() };
    let datadir = tmpdir("xor-datadir");
    let blocks = datadir.join("blocks");
    std::fs::create_dir_all(blocks.join("index")).unwrap();
    // Two files, as Core rolls over: blocks 0..=99 and 100..=255 (each obfuscated from its offset 0,
    // the second with Core's pre-allocated zeros after its last record, which Core leaves plain).
    let split = recs[100].0 - 8;
    std::fs::write(blocks.join("blk00000.dat"), obfuscate(&bytes[..split])).unwrap();
    std::fs::write(blocks.join("blk00001.dat"), [obfuscate(&bytes[split..]), vec![0u8; 4096]].concat()).unwrap();
    std::fs::write(blocks.join("rev00000.dat"), obfuscate(b"undo data")).unwrap();
    std::fs::write(blocks.join("xor.dat"), key).unwrap();
    let (_, plain) = validate(&[chain.to_str().unwrap()]);
    for given in [&blocks, &datadir] {
        let (code, j) = validate(&[given.to_str().unwrap()]);
        assert_eq!(code, 0, "{j}");
        assert_eq!((j["best_height"].clone(), j["tip"].clone()), (255.into(), plain["tip"].clone()));
        assert_eq!(j["chainwork"], plain["chainwork"]);
        assert_eq!(j["skipped"]["count"], 1, "the zero padding: {j}");
        assert_eq!(j["skipped"]["first"][0]["why"], "zero padding");
        assert_eq!(j["skipped"]["first"][0]["bytes"], 4096);
    }
    let loose = blocks.join("blk00000.dat");
    let copy = tmpdir("xor-loose").join("copy-of-blk00000.dat");
    std::fs::copy(&loose, &copy).unwrap();
    let (code, j) = validate(&["--xor-key", &hex::encode(key), copy.to_str().unwrap()]);
    assert_eq!((code, j["best_height"].clone()), (0, 99.into()), "{j}");
    for args in [vec![], vec!["--xor-key", "0011223344556677"]] {
        let mut a = vec!["validate", "--backend", "cpu"];
        a.extend(args);
        a.push(copy.to_str().unwrap());
        let out = powkit(&a);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no block record in this file's") && err.contains("--xor-key"), "{err}");
    }
    let out = powkit(&["validate", "--xor-key", "abc", copy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--xor-key"), "{}", String::from_utf8_lossy(&out.stderr));
}
