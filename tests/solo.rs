//! `powkit mine --node`: solo mining on a real Bitcoin Core's `getblocktemplate` (issue 14, part 2).
//!
//! [`ten_consecutive_blocks_with_mempool_transactions_are_accepted`]: a regtest bitcoind holds 40
//! transactions in its mempool (spends of coinbase outputs paid to known keys, P2PKH and P2WPKH,
//! signed with `signrawtransactionwithkey`, a quarter of them children of unconfirmed parents: no
//! wallet); `powkit mine --node ... --blocks 10` must mine 10 blocks that bitcoind accepts, each
//! paying powkit's payout script (a bech32m P2TR address) the block's subsidy plus its fees
//! (`getblockstats`), and every mempool transaction must end up in powkit's blocks.
//!
//! [`the_gpu_engine_mines_blocks_bitcoind_accepts`]: the same on `--backend gpu` (lavapipe where
//! there is no hardware GPU; skipped without any adapter).
//!
//! These need a `bitcoind` (tests/common/bitcoind.rs says where it is looked for); they skip with a
//! printed reason without one, unless `POWKIT_REQUIRE_BITCOIND=1` (CI).
//!
//! [`hostile_node_answers_are_clear_errors`] needs nothing: a fake node on a local socket answers
//! with missing fields, wrong types, non-JSON and HTTP 401, and powkit must exit with one clear line.

#[path = "common/bitcoind.rs"]
mod bitcoind;
mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

use bitcoind::{btc, find_bitcoind, sats, Bitcoind};
use serde_json::{json, Value};

/// Fixed regtest private keys (WIF, compressed), the same as tests/bitcoind.rs's: no wallet needed.
const WIFS: [&str; 4] = [
    "cW7HYtDzPoRy63gDcasTZMnDntztwVvcuS5ZYtqCVrskwgJwu5sh",
    "cP2vQTisGhpZKLX2myCk2SAzypex51sr6kcYW1HLqZFpCNUaeZ7x",
    "cV6XPsHipKAZMERCR6faRmojgpZ3a4qSriRLyeNiwmgVZVRDU36H",
    "cRZK5M3iCuWyNAkDQr6LLyKX3eaqzU3pTiUwjQvkuMSG4kk9fCoQ",
];

/// Fee of each transaction built here, satoshis.
const FEE: i64 = 10_000;

/// The address of a descriptor with private keys (`getdescriptorinfo` adds the checksum).
fn address(node: &Bitcoind, desc: &str) -> String {
    let public = node.call("getdescriptorinfo", json!([desc]))["descriptor"].as_str().unwrap().to_string();
    node.call("deriveaddresses", json!([public]))[0].as_str().unwrap().to_string()
}

fn spk(node: &Bitcoind, addr: &str) -> String {
    node.call("validateaddress", json!([addr]))["scriptPubKey"].as_str().unwrap().to_string()
}

/// Spends `(txid, vout, value, scriptPubKey)` to two outputs, signed with the known keys; returns
/// the new txid and its first output's value.
fn spend(node: &Bitcoind, prev: (&str, u32, i64, &str), to: [&str; 2]) -> (String, i64) {
    let (txid, vout, value, script) = prev;
    let half = (value - FEE) / 2;
    let raw = node.call(
        "createrawtransaction",
        json!([[{"txid": txid, "vout": vout}], [{to[0]: btc(half)}, {to[1]: btc(value - FEE - half)}]]),
    );
    let prevtxs = json!([{"txid": txid, "vout": vout, "scriptPubKey": script, "amount": btc(value)}]);
    let signed = node.call("signrawtransactionwithkey", json!([raw, WIFS[..2], prevtxs]));
    assert_eq!(signed["complete"], true, "signing {txid}:{vout}: {signed}");
    let id = node.call("sendrawtransaction", json!([signed["hex"]])).as_str().unwrap().to_string();
    (id, half)
}

#[test]
fn ten_consecutive_blocks_with_mempool_transactions_are_accepted() {
    let Some(bin) = find_bitcoind() else { return };
    let dir = common::tmp_dir("solo", "ten-blocks");
    let mut node = Bitcoind::start(&bin, &dir.join("node"), false, &[]);
    let pkh = address(&node, &format!("pkh({})", WIFS[0]));
    let wpkh = address(&node, &format!("wpkh({})", WIFS[1]));
    let payout = address(&node, &format!("tr({})", WIFS[3]));
    let payout_spk = spk(&node, &payout);
    let spks = [spk(&node, &pkh), spk(&node, &wpkh)];

    // Heights 1..=15 pay the P2PKH key, 16..=30 the P2WPKH key; 100 more make them mature.
    node.call("generatetoaddress", json!([15, pkh]));
    node.call("generatetoaddress", json!([15, wpkh]));
    node.call("generatetoaddress", json!([100, pkh]));
    let mut sent = Vec::new();
    for h in 1..=30u32 {
        let hash = node.call("getblockhash", json!([h]));
        let cb = &node.call("getblock", json!([hash, 2]))["tx"][0];
        let txid = cb["txid"].as_str().unwrap().to_string();
        let script = &spks[usize::from(h > 15)];
        let (child, out0) = spend(&node, (&txid, 0, sats(&cb["vout"][0]["value"]), script), [&pkh, &wpkh]);
        sent.push(child.clone());
        // Every third one also gets a child spending its unconfirmed P2PKH output.
        if h % 3 == 0 {
            let (grandchild, _) = spend(&node, (&child, 0, out0, &spks[0]), [&wpkh, &pkh]);
            sent.push(grandchild);
        }
    }
    assert_eq!(node.call("getmempoolinfo", json!([]))["size"], sent.len());
    let start = node.call("getblockcount", json!([])).as_u64().unwrap();

    let url = format!("http://127.0.0.1:{}", node.rpc_port);
    let cookie = dir.join("node/regtest/.cookie");
    let cookie = cookie.to_str().unwrap();
    let out = common::powkit(&[
        "mine",
        "--node",
        &url,
        "--rpc-cookie",
        cookie,
        "--coinbase-address",
        &payout,
        "--blocks",
        "10",
        "--backend",
        "cpu",
        "--threads",
        "1",
        "--json",
    ]);
    let ctx = format!(
        "powkit mine --node: exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    let report: Value = serde_json::from_slice(&out.stdout).expect(&ctx);
    assert_eq!(report["blocks_found"], 10, "{ctx}");
    assert_eq!(report["blocks_accepted"], 10, "{ctx}");
    assert_eq!(report["blocks_rejected"], 0, "{ctx}");

    // bitcoind's chain grew by 10, all of them powkit's blocks, in order.
    assert_eq!(node.call("getblockcount", json!([])).as_u64().unwrap(), start + 10, "{ctx}");
    let mut confirmed = HashSet::new();
    for (i, h) in (start + 1..=start + 10).enumerate() {
        let hash = node.call("getblockhash", json!([h]));
        assert_eq!(report["blocks"][i]["hash"], hash, "block {i} of the report vs getblockhash {h}; {ctx}");
        let block = node.call("getblock", json!([hash, 2]));
        let cb = &block["tx"][0];
        assert_eq!(cb["vout"][0]["scriptPubKey"]["hex"], payout_spk.as_str(), "height {h}: the payout");
        let stats = node.call("getblockstats", json!([h, ["subsidy", "totalfee"]]));
        let want = stats["subsidy"].as_i64().unwrap() + stats["totalfee"].as_i64().unwrap();
        assert_eq!(sats(&cb["vout"][0]["value"]), want, "height {h}: coinbase value = subsidy + fees");
        // The coinbase's scriptSig: BIP34 height push, powkit's extranonce, its tag.
        let sig = cb["vin"][0]["coinbase"].as_str().unwrap();
        assert!(sig.ends_with(&hex::encode("/powkit/")), "height {h}: scriptSig {sig}");
        assert_eq!(&sig[..2], "02", "height {h} (128..=32767) is pushed as two bytes: {sig}");
        for tx in block["tx"].as_array().unwrap().iter().skip(1) {
            confirmed.insert(tx["txid"].as_str().unwrap().to_string());
        }
    }
    for id in &sent {
        assert!(confirmed.contains(id), "mempool transaction {id} is not in powkit's blocks");
    }
    assert_eq!(node.call("getmempoolinfo", json!([]))["size"], 0);

    // A payout address of another network is refused before any mining, with a clear line.
    let out = common::powkit(&[
        "mine",
        "--node",
        &url,
        "--rpc-cookie",
        cookie,
        "--coinbase-address",
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
        "--blocks",
        "1",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("is a mainnet address but the node runs regtest"), "{err}");
    node.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_gpu_engine_mines_blocks_bitcoind_accepts() {
    let Some(bin) = find_bitcoind() else { return };
    if !common::have_gpu() {
        return;
    }
    let dir = common::tmp_dir("solo", "gpu");
    let mut node = Bitcoind::start(&bin, &dir.join("node"), false, &[]);
    let url = format!("http://127.0.0.1:{}", node.rpc_port);
    let cookie = dir.join("node/regtest/.cookie");
    let out = common::powkit(&[
        "mine",
        "--node",
        &url,
        "--rpc-cookie",
        cookie.to_str().unwrap(),
        "--coinbase-script",
        "51",
        "--blocks",
        "3",
        "--backend",
        "gpu",
        "--json",
    ]);
    let ctx = format!(
        "exit {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    let report: Value = serde_json::from_slice(&out.stdout).expect(&ctx);
    assert_eq!(report["backend"], "gpu", "{ctx}");
    assert_eq!(report["blocks_accepted"], 3, "{ctx}");
    assert_eq!(node.call("getblockcount", json!([])), 3);
    let tip = node.call("getblock", json!([node.call("getbestblockhash", json!([])), 2]));
    assert_eq!(tip["tx"][0]["vout"][0]["scriptPubKey"]["hex"], "51");
    node.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// How the fake node answers a method: (HTTP status, body).
type Answer = fn(&str) -> (u16, String);

/// A fake node: answers each HTTP request with `answer(method)`, on its own thread.
fn fake_node(answer: Answer) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn);
                loop {
                    let mut len = 0;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line.trim().is_empty() {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; len];
                    r.read_exact(&mut body).unwrap();
                    let req: Value = serde_json::from_slice(&body).unwrap();
                    let (status, text) = answer(req["method"].as_str().unwrap());
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
                        text.len()
                    );
                    r.get_mut().write_all(resp.as_bytes()).unwrap();
                }
            });
        }
    });
    url
}

fn chain_or(method: &str, gbt: &str) -> (u16, String) {
    match method {
        "getblockchaininfo" => (200, r#"{"result":{"chain":"regtest"},"error":null,"id":1}"#.into()),
        _ => (200, gbt.into()),
    }
}

#[test]
fn hostile_node_answers_are_clear_errors() {
    let cases: [(Answer, &str); 5] = [
        (
            |m| {
                chain_or(
                    m,
                    r#"{"result":{"version":1,"previousblockhash":"00","transactions":[]},"error":null,"id":1}"#,
                )
            },
            "bitcoind getblocktemplate: unexpected answer: missing field",
        ),
        (
            |m| chain_or(m, r#"{"result":{"version":"x"},"error":null,"id":1}"#),
            "bitcoind getblocktemplate: unexpected answer: invalid type: string \"x\", expected i64",
        ),
        (
            |m| chain_or(m, "<html>busy</html>"),
            "bitcoind getblocktemplate: unexpected answer: HTTP 200, body is not JSON",
        ),
        (|_| (401, String::new()), "refused the credentials (HTTP 401): check --rpc-user and --rpc-password"),
        (
            |_| (500, r#"{"result":null,"error":{"code":-32601,"message":"Method not found"},"id":1}"#.into()),
            "bitcoind getblockchaininfo: Method not found (RPC error -32601)",
        ),
    ];
    for (answer, want) in cases {
        let url = fake_node(answer);
        let out = common::powkit(&[
            "mine",
            "--node",
            &url,
            "--rpc-user",
            "u",
            "--rpc-password",
            "p",
            "--coinbase-script",
            "51",
            "--blocks",
            "1",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{want}: {err}");
        assert!(err.contains(want), "wanted {want:?} in {err:?}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
}
