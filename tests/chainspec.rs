//! Difficulty anchored at launch and user chain specs (issue 12, fault 8): `powkit chain new`,
//! `--chain FILE` on every command, data and files of consensus version 1 refused by name, and the
//! acceptance bars measured on real mining nodes.

mod common;
use common::powkit;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use powkit::consensus::{ChainSpec, LedgerNetwork, LedgerParams};
use powkit::primitives::{BlockHeader, CompactTarget};
use powkit::store::Store;
use serde_json::{json, Value};

fn tmp(name: &str) -> PathBuf {
    common::tmp_dir("chainspec", name)
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `powkit chain new` with `extra` flags, into `dir/NAME.json`; returns the path.
fn new_spec(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let f = dir.join(format!("{name}.json"));
    let mut args = vec!["chain", "new", "--name", name, "--out", s(&f)];
    args.extend_from_slice(extra);
    let o = powkit(&args);
    assert!(o.status.success(), "{}", text(&o));
    f
}

#[test]
fn chain_new_writes_a_spec_that_every_command_takes() {
    let d = tmp("new");
    let f = d.join("alpha.json");
    let o = powkit(&[
        "chain",
        "new",
        "--name",
        "alpha",
        "--spacing",
        "2",
        "--launch-time",
        "1795900000",
        "--out",
        s(&f),
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let printed: Value = serde_json::from_slice(&o.stdout).unwrap();
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
    assert_eq!(printed, written);
    assert_eq!(written["name"], "alpha");
    assert_eq!(written["target_spacing"], 2);
    assert_eq!(written["half_life"], 16, "8 spacings by default");
    assert_eq!(written["pow_limit"], "1e7fffff");
    assert_eq!(written["launch_time"], 1_795_900_000u32);
    assert_eq!(written["consensus_version"], 3);
    // The recorded genesis is the one the fields give, and it meets the limit.
    let p = ChainSpec::load(&f).unwrap();
    assert_eq!(p.genesis.header.block_hash().to_string(), written["genesis_hash"].as_str().unwrap());
    assert_eq!(p.genesis.header.time, 1_795_900_000);
    assert!(p.pow_limit.is_met_by(&p.genesis.header.block_hash()));
    // An existing file is not overwritten; a bad field is named.
    let o = powkit(&["chain", "new", "--name", "alpha", "--out", s(&f)]);
    assert!(!o.status.success() && text(&o).contains("alpha.json"), "{}", text(&o));
    let o = powkit(&["chain", "new", "--name", "beta", "--spacing", "0", "--out", s(&d.join("b.json"))]);
    assert!(!o.status.success() && text(&o).contains("target_spacing"), "{}", text(&o));
    let o = powkit(&["chain", "new", "--name", "powkit", "--out", s(&d.join("c.json"))]);
    assert!(!o.status.success() && text(&o).contains("built-in chain's name"), "{}", text(&o));

    // generate, validate, import, export, tx and node all take --chain FILE.
    let blk = d.join("alpha.blk");
    let o =
        powkit(&["chain", "generate", "--chain", s(&f), "--blocks", "30", "--txs-per-block", "2", "--out", s(&blk)]);
    assert!(o.status.success(), "{}", text(&o));
    let o = powkit(&["validate", "--chain", s(&f), "--json", s(&blk)]);
    assert!(o.status.success(), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["chain"], "alpha", "{v}");
    let data = d.join("data");
    let o = powkit(&["chain", "import", "--chain", s(&f), "--datadir", s(&data), s(&blk)]);
    assert!(o.status.success(), "{}", text(&o));
    let back = d.join("back.blk");
    let o = powkit(&["chain", "export", "--chain", s(&f), "--datadir", s(&data), "--out", s(&back)]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(&blk).unwrap(), std::fs::read(&back).unwrap());
    let key = d.join("k.key");
    assert!(powkit(&["key", "new", "--out", s(&key)]).status.success());
    let to = "11".repeat(32);
    let o = powkit(&[
        "tx",
        "transfer",
        "--chain",
        s(&f),
        "--key",
        s(&key),
        "--to",
        &to,
        "--amount",
        "1",
        "--fee",
        "1",
        "--nonce",
        "0",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let hex = serde_json::from_slice::<Value>(&o.stdout).unwrap()["hex"].as_str().unwrap().to_string();
    let bytes = hex::decode(hex).unwrap();
    assert_eq!(u32::from_le_bytes(bytes[1..5].try_into().unwrap()), p.chain_id, "the spec's chain id is signed in");

    // A datadir of the spec is refused under another spec with the same name.
    let g = new_spec(&d.join(""), "alpha2", &["--launch-time", "1795900001"]);
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&g).unwrap()).unwrap();
    v["name"] = json!("alpha");
    let same_name = d.join("alpha-again.json");
    std::fs::write(&same_name, v.to_string()).unwrap();
    let o = powkit(&["chain", "export", "--chain", s(&same_name), "--datadir", s(&data), "--out", s(&d.join("x.blk"))]);
    assert!(!o.status.success() && text(&o).contains("genesis"), "{}", text(&o));
    // An edited spec is refused, naming the file and the field.
    let mut v = written.clone();
    v["half_life"] = json!(40);
    let edited = d.join("edited.json");
    std::fs::write(&edited, v.to_string()).unwrap();
    let o = powkit(&["validate", "--chain", s(&edited), s(&blk)]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("edited.json") && t.contains("edited after `powkit chain new`"), "{t}");
    // A missing file is named too.
    let o = powkit(&["node", "--chain", s(&d.join("nope.json")), "--datadir", s(&d.join("n")), "--rpc", "127.0.0.1:0"]);
    assert!(!o.status.success() && text(&o).contains("nope.json"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&d);
}

/// The 77-byte coinbase of consensus versions 1 and 2 (no extranonce): kind 0, height, recipient,
/// amount, state root; the genesis one is all zeros after the kind byte.
const OLD_GENESIS_COINBASE: [u8; 77] = [0; 77];

/// powkit-regtest's genesis header as a powkit of consensus version 1 or 2 made it: merkle root
/// the txid of the 77-byte coinbase, `time`, the limit bits, `nonce`.
fn old_regtest_genesis(time: u32, nonce: u32) -> BlockHeader {
    BlockHeader {
        version: 1,
        prev_blockhash: powkit::primitives::BlockHash::ZERO,
        merkle_root: powkit::primitives::TxMerkleNode(powkit::primitives::sha256d(&OLD_GENESIS_COINBASE)),
        time,
        bits: CompactTarget(0x1e7f_ffff),
        nonce,
    }
}

/// powkit-regtest's parameters with an old genesis header (the header is all that an old store's
/// or blk file's refusal looks at; its block carries today's coinbase so that it can be written).
fn old_regtest(time: u32, nonce: u32) -> &'static LedgerParams {
    let mut p = LedgerParams::new(
        "powkit-regtest",
        0x706f_77ff,
        [0x70, 0x6b, 0x77, 0xff],
        CompactTarget(0x1e7f_ffff),
        1,
        60,
        time,
        nonce,
    )
    .unwrap();
    p.genesis.header = old_regtest_genesis(time, nonce);
    Box::leak(Box::new(p))
}

/// The powkit-regtest parameters of consensus version 1: genesis dated 1,700,000,000, ASERT
/// anchored at genesis (the genesis is all that matters here).
fn v1_regtest() -> &'static LedgerParams {
    old_regtest(1_700_000_000, 208_754)
}

/// A data directory or blk file made with the consensus version 1 genesis is refused with a
/// message that says so, not mixed with the new chain nor reported as an unknown parent.
#[test]
fn version_1_data_and_files_are_refused_by_name() {
    let d = tmp("v1");
    let old = v1_regtest();
    assert_eq!(
        old.genesis.header.block_hash().to_string(),
        "00003ba6c42146d5644b81e524d597a5365aad37bf9e5a62aa8a8ca2fd1b4d96",
        "version 1's genesis as it was"
    );
    drop(Store::open(&d.join("data"), old).unwrap());
    let e = Store::open(&d.join("data"), LedgerNetwork::PowkitRegtest.params()).err().unwrap().to_string();
    assert!(e.contains("00003ba6c421") && e.contains("consensus version 3"), "{e}");
    let data = d.join("data");
    let o = powkit(&[
        "node",
        "--chain",
        "powkit-regtest",
        "--datadir",
        s(&data),
        "--listen",
        "none",
        "--rpc",
        "127.0.0.1:0",
    ]);
    assert!(!o.status.success() && text(&o).contains("consensus version 3"), "{}", text(&o));

    // A blk file as version 1 wrote it: one record, magic | length | header | 01 | 77-byte coinbase.
    let blk = d.join("v1.blk");
    let block: Vec<u8> = [&old.genesis.header.to_bytes()[..], &[1], &OLD_GENESIS_COINBASE[..]].concat();
    let rec = [&old.magic[..], &(block.len() as u32).to_le_bytes(), &block].concat();
    std::fs::write(&blk, rec).unwrap();
    let o = powkit(&["validate", "--chain", "powkit-regtest", s(&blk)]);
    assert!(!o.status.success());
    assert!(text(&o).contains("genesis_matches_chain") && text(&o).contains("consensus version 3"), "{}", text(&o));
    let o = powkit(&["chain", "import", "--chain", "powkit-regtest", "--datadir", s(&d.join("fresh")), s(&blk)]);
    assert!(text(&o).contains("genesis_matches_chain"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&d);
}

/// A data directory written by consensus version 2 (coinbases without extranonce: its genesis block
/// stored as the 158 bytes header | 01 | 77-byte coinbase) is refused at open, by the store and by
/// `powkit node`, naming the file, the genesis found, the version and what to do; its blocks are
/// never decoded with the new layout.
#[test]
fn version_2_stores_without_extranonce_are_refused_by_name() {
    let d = tmp("v2");
    let v2 = old_regtest(powkit::consensus::params::ledger::GENESIS_TIME, 7302);
    let g = v2.genesis.header;
    assert_eq!(
        g.block_hash().to_string(),
        "0000705a4fde7160f64e7c47d4af656f546e8f57b20deb82fdcfbb2baeee006d",
        "version 2's genesis as it was (docs/CONSENSUS.md of version 2)"
    );
    let data = d.join("data");
    drop(Store::open(&data, v2).unwrap());
    // Put the genesis block's bytes as version 2 wrote them.
    {
        let old: Vec<u8> = [&g.to_bytes()[..], &[1], &OLD_GENESIS_COINBASE[..]].concat();
        assert!(powkit::ledger::LedgerBlock::from_bytes(&old).is_err(), "a version 2 block does not decode");
        let db = redb::Database::create(data.join("chain.redb")).unwrap();
        let t: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("blocks");
        let w = db.begin_write().unwrap();
        w.open_table(t).unwrap().insert(&g.block_hash().0[..], &old[..]).unwrap();
        w.commit().unwrap();
    }
    let e = Store::open(&data, LedgerNetwork::PowkitRegtest.params()).err().unwrap().to_string();
    for want in ["chain.redb", "0000705a4fde", "consensus version 3", "extranonce", "start a new data directory"] {
        assert!(e.contains(want), "{want:?} missing from: {e}");
    }
    let o = powkit(&[
        "node",
        "--chain",
        "powkit-regtest",
        "--datadir",
        s(&data),
        "--listen",
        "none",
        "--rpc",
        "127.0.0.1:0",
    ]);
    assert!(!o.status.success() && text(&o).contains("consensus version 3"), "{}", text(&o));
    assert!(text(&o).contains("chain.redb"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&d);
}

/// A node process mining with one CPU thread; killed when dropped.
struct Miner(Child);

impl Drop for Miner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Mines `blocks` blocks on a fresh `powkit node --chain CHAIN --mine --threads 1` and returns the
/// main chain's headers, genesis first.
fn mine_chain(
    dir: &Path,
    chain: &str,
    params: &'static LedgerParams,
    blocks: u32,
    limit: Duration,
) -> Vec<BlockHeader> {
    let key = dir.join("miner.key");
    assert!(powkit(&["key", "new", "--out", s(&key)]).status.success());
    let data = dir.join("data");
    let log = std::fs::File::create(dir.join("node.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_powkit"))
        .args(["node", "--chain", chain, "--datadir", s(&data), "--listen", "none", "--rpc", "127.0.0.1:0"])
        .args(["--mine", "--miner-key", s(&key), "--threads", "1", "--log", "info"])
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let mut node = Miner(child);
    let t0 = Instant::now();
    let rpc = loop {
        if let Some(v) =
            std::fs::read_to_string(data.join("node.json")).ok().and_then(|t| serde_json::from_str::<Value>(&t).ok())
        {
            break v["rpc"].as_str().unwrap().to_string();
        }
        assert!(
            node.0.try_wait().unwrap().is_none(),
            "the node exited: {}",
            std::fs::read_to_string(dir.join("node.log")).unwrap()
        );
        assert!(t0.elapsed() < Duration::from_secs(30), "the node did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    // The cookie is written before node.json (the RPC server starts first).
    let auth = powkit::node::rpc::RpcAuth::from_datadir(&data).expect("the node's cookie");
    loop {
        let h = powkit::node::rpc::call_remote(&rpc, &auth, "getblockcount", json!([]))
            .ok()
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        if h >= blocks as u64 {
            break;
        }
        assert!(t0.elapsed() < limit, "{chain}: only {h} of {blocks} blocks in {limit:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(node);
    let store = Store::open(&data, params).unwrap();
    (0..=blocks).map(|h| store.block_at(h).unwrap().unwrap().header).collect()
}

/// Checks the acceptance bars on a mined chain: the limit left within the first 100 blocks, and
/// the mean spacing over blocks 101..=`last` within 20% of the target spacing. Returns (the first
/// block below the limit, the ratio) for the message.
fn bars(headers: &[BlockHeader], params: &LedgerParams, last: usize) -> (usize, f64) {
    let limit = params.genesis.header.bits;
    let left = (1..headers.len()).find(|&h| headers[h].bits != limit).expect("never left the limit");
    let mean = (headers[last].time - headers[100].time) as f64 / (last - 100) as f64;
    let ratio = mean / params.target_spacing as f64;
    assert!(left <= 100, "{}: left the limit only at block {left}", params.name);
    assert!(
        (0.8..=1.2).contains(&ratio),
        "{}: mean spacing {mean:.3} s over blocks 101..={last}, ratio {ratio:.3}",
        params.name
    );
    (left, ratio)
}

/// Issue 12 acceptance: a new powkit-regtest network mined by one CPU thread leaves the limit
/// within its first 100 blocks and holds its 1 s spacing within 20% over 300 blocks (101..=400).
/// Before consensus version 2 it never left the limit (a run gave blocks 5.5 times too fast).
/// About 6 minutes.
#[test]
fn regtest_mined_by_one_thread_leaves_the_limit_and_holds_its_spacing() {
    let d = tmp("regtest");
    let p = LedgerNetwork::PowkitRegtest.params();
    let headers = mine_chain(&d, "powkit-regtest", p, 400, Duration::from_secs(900));
    let (left, ratio) = bars(&headers, p, 400);
    eprintln!("powkit-regtest: left the limit at block {left}; spacing ratio over 101..=400: {ratio:.3}");
    let _ = std::fs::remove_dir_all(&d);
}

/// The same for a chain spec with a 2 s spacing, over the 150 blocks 101..=250 (5 minutes of
/// them; running beside the regtest test, the whole file stays near 7 minutes).
#[test]
fn a_spec_with_another_spacing_leaves_the_limit_and_holds_it() {
    let d = tmp("spec2");
    let f = new_spec(&d, "two-seconds", &["--spacing", "2"]);
    let p = ChainSpec::load(&f).unwrap();
    let headers = mine_chain(&d, s(&f), p, 250, Duration::from_secs(900));
    let (left, ratio) = bars(&headers, p, 250);
    eprintln!("two-seconds: left the limit at block {left}; spacing ratio over 101..=250: {ratio:.3}");
    let _ = std::fs::remove_dir_all(&d);
}

/// A spec's initial allocations are the state after genesis: a node on the spec reports the
/// balance and accepts a transfer spending it; a validated chain of the spec starts from it.
#[test]
fn initial_allocations_fund_keys_at_genesis() {
    let d = tmp("alloc");
    let key = d.join("rich.key");
    let o = powkit(&["key", "new", "--out", s(&key)]);
    assert!(o.status.success());
    let pk = String::from_utf8(o.stdout).unwrap().trim().to_string();
    let f = new_spec(&d, "funded", &["--allocate", &format!("{pk}:5000")]);
    let spec: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
    assert_eq!(spec["allocations"], json!([{"key": pk, "amount": 5000}]));
    let bad = powkit(&["chain", "new", "--name", "x", "--allocate", "nothex:1", "--out", s(&d.join("x.json"))]);
    assert!(!bad.status.success() && text(&bad).contains("allocations"), "{}", text(&bad));

    let data = d.join("data");
    let log = std::fs::File::create(d.join("node.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_powkit"))
        .args(["node", "--chain", s(&f), "--datadir", s(&data), "--listen", "none", "--rpc", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let node = Miner(child);
    let t0 = Instant::now();
    let rpc = loop {
        if let Some(v) =
            std::fs::read_to_string(data.join("node.json")).ok().and_then(|t| serde_json::from_str::<Value>(&t).ok())
        {
            break v["rpc"].as_str().unwrap().to_string();
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "the node did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    let auth = powkit::node::rpc::RpcAuth::from_datadir(&data).expect("the node's cookie");
    let call = |m: &str, p: Value| powkit::node::rpc::call_remote(&rpc, &auth, m, p);
    let acct = call("getaccount", json!([pk])).unwrap();
    assert_eq!(acct["balance"], 5000, "{acct}");
    let to = "22".repeat(32);
    let o = powkit(&[
        "tx",
        "transfer",
        "--chain",
        s(&f),
        "--key",
        s(&key),
        "--to",
        &to,
        "--amount",
        "4000",
        "--fee",
        "1",
        "--nonce",
        "0",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let hex = String::from_utf8(o.stdout).unwrap().trim().to_string();
    call("sendrawtransaction", json!([hex])).expect("a transfer funded by the allocation is accepted");
    drop(node);
    // Generated and validated from the allocated state.
    let blk = d.join("funded.blk");
    let o = powkit(&["chain", "generate", "--chain", s(&f), "--blocks", "5", "--out", s(&blk)]);
    assert!(o.status.success(), "{}", text(&o));
    let o = powkit(&["validate", "--chain", s(&f), s(&blk)]);
    assert!(o.status.success(), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&d);
}
