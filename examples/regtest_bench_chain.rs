//! Makes the benchmark chain of issue 13 with a real bitcoind: a regtest chain with at least INPUTS
//! (default 100,000) script-checked inputs, mostly P2WPKH and P2TR key-path, some P2PKH.
//!
//! Usage: `cargo run --release --example regtest_bench_chain -- [OUT_DIR] [INPUTS]`
//! (OUT_DIR default: `$TMPDIR/powkit-bench-chain`, emptied first). bitcoind is `$POWKIT_BITCOIND`, else
//! `~/.cache/powkit-bitcoind/build/bin/bitcoind` (`../shared/tools/build-bitcoind.sh` builds it).
//!
//! How: 70 coinbases mature; fan-out transactions split each into 1,500 outputs (45% P2WPKH, 45% P2TR,
//! 10% P2PKH); then transactions of 400 inputs each spend them all: P2WPKH and P2TR mixed, signed by
//! `descriptorprocesspsbt` with private-key descriptors; P2PKH ones by `signrawtransactionwithkey`
//! (without a txindex, Core's PSBT signer cannot fetch the whole previous transaction a legacy input
//! is signed against; with one, every PSBT input would carry a whole 60 kB fan-out transaction).
//! Blocks are mined until the mempool is empty; bitcoind is stopped so its blk files are flushed.
//!
//! Leaves `OUT_DIR/node/regtest/blocks` (obfuscated, Core's default) and prints its path, and writes
//! `OUT_DIR/expected.json`: Core's `gettxoutsetinfo` (plus `total_amount_sat`), `bestblockhash`,
//! `blockcount`, the inputs spent by type and the seconds each phase took.

#[path = "../tests/common/bitcoind.rs"]
mod bitcoind;

use std::path::PathBuf;
use std::time::Instant;

use bitcoind::{btc, find_bitcoind, sats, Bitcoind};
use powkit::primitives::{serialize, OutPoint, Transaction, TxIn, TxOut, Txid};
use serde_json::{json, Value};

/// Fixed regtest keys (WIF): P2PKH, P2WPKH, P2TR.
const WIFS: [&str; 3] = [
    "cW7HYtDzPoRy63gDcasTZMnDntztwVvcuS5ZYtqCVrskwgJwu5sh",
    "cV6XPsHipKAZMERCR6faRmojgpZ3a4qSriRLyeNiwmgVZVRDU36H",
    "cRZK5M3iCuWyNAkDQr6LLyKX3eaqzU3pTiUwjQvkuMSG4kk9fCoQ",
];
const OUTPUTS_PER_FANOUT: usize = 1_500;
const INPUTS_PER_SPEND: usize = 400;
/// Fee per transaction (satoshis): above 1 sat/vB for the largest (400 P2PKH inputs, about 60 kvB).
const FEE: i64 = 100_000;

struct Type {
    private_desc: String,
    public_desc: String,
    spk: Vec<u8>,
}

#[derive(Clone, Copy)]
struct Utxo {
    outpoint: OutPoint,
    value: i64,
    kind: usize,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let out = args.next().map(PathBuf::from).unwrap_or_else(|| std::env::temp_dir().join("powkit-bench-chain"));
    let want: usize = args.next().map(|s| s.parse().expect("INPUTS: a number")).unwrap_or(100_000);
    let Some(bin) = find_bitcoind() else { std::process::exit(1) };
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let started = Instant::now();
    let mut node = Bitcoind::start(&bin, &out.join("node"), true, &["-maxmempool=1000"]);

    let types: Vec<Type> = [format!("pkh({})", WIFS[0]), format!("wpkh({})", WIFS[1]), format!("tr({})", WIFS[2])]
        .into_iter()
        .map(|private_desc| {
            let public_desc =
                node.call("getdescriptorinfo", json!([private_desc]))["descriptor"].as_str().unwrap().to_string();
            let addr = node.call("deriveaddresses", json!([public_desc]))[0].clone();
            let spk =
                hex::decode(node.call("validateaddress", json!([addr]))["scriptPubKey"].as_str().unwrap()).unwrap();
            Type { private_desc, public_desc, spk }
        })
        .collect();
    // Type of the j-th output: 10% P2PKH, 45% P2WPKH, 45% P2TR.
    let kind_of = |j: usize| match j % 20 {
        0 | 1 => 0,
        x if x % 2 == 0 => 1,
        _ => 2,
    };

    let fanouts = want.div_ceil(OUTPUTS_PER_FANOUT);
    let hashes = node.call("generatetodescriptor", json!([fanouts, types[1].public_desc]));
    node.call("generatetodescriptor", json!([101, types[1].public_desc]));
    let coinbases: Vec<Utxo> = hashes
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let b = node.call("getblock", json!([h, 2]));
            let txid = Txid::from_display_hex(b["tx"][0]["txid"].as_str().unwrap()).unwrap();
            Utxo { outpoint: OutPoint { txid, vout: 0 }, value: sats(&b["tx"][0]["vout"][0]["value"]), kind: 1 }
        })
        .collect();
    let t_setup = started.elapsed().as_secs_f64();

    let descs: Vec<&str> = types.iter().map(|t| t.private_desc.as_str()).collect();
    let unsigned = |inputs: &[Utxo], outputs: Vec<TxOut>| Transaction {
        version: 2,
        inputs: inputs
            .iter()
            .map(|u| TxIn { prevout: u.outpoint, script_sig: vec![], sequence: 0xffff_fffd, witness: vec![] })
            .collect(),
        outputs,
        lock_time: 0,
    };
    let send_psbt = |node: &Bitcoind, tx: &Transaction| -> Txid {
        let psbt = node.call("converttopsbt", json!([hex::encode(serialize(tx))]));
        let signed = node.call("descriptorprocesspsbt", json!([psbt, descs]));
        assert_eq!(signed["complete"], true, "descriptorprocesspsbt left inputs unsigned");
        Txid::from_display_hex(node.call("sendrawtransaction", json!([signed["hex"], 0])).as_str().unwrap()).unwrap()
    };
    let mine_all = |node: &Bitcoind| {
        while node.call("getmempoolinfo", json!([]))["size"].as_u64().unwrap() > 0 {
            node.call("generatetodescriptor", json!([1, types[1].public_desc]));
        }
    };

    // Fan-out.
    let t = Instant::now();
    let mut pool = Vec::new();
    for cb in &coinbases {
        let each = (cb.value - FEE) / OUTPUTS_PER_FANOUT as i64;
        let outputs: Vec<TxOut> = (0..OUTPUTS_PER_FANOUT)
            .map(|j| TxOut { value: each, script_pubkey: types[kind_of(j)].spk.clone() })
            .collect();
        let txid = send_psbt(&node, &unsigned(std::slice::from_ref(cb), outputs));
        pool.extend((0..OUTPUTS_PER_FANOUT).map(|j| Utxo {
            outpoint: OutPoint { txid, vout: j as u32 },
            value: each,
            kind: kind_of(j),
        }));
    }
    mine_all(&node);
    let t_fanout = t.elapsed().as_secs_f64();

    // Spends: P2WPKH and P2TR mixed (PSBT), P2PKH alone (signrawtransactionwithkey).
    let t = Instant::now();
    let sink = types[1].spk.clone();
    let mut spent = [0usize; 3];
    let (legacy, segwit): (Vec<Utxo>, Vec<Utxo>) = pool.iter().partition(|u| u.kind == 0);
    for chunk in segwit.chunks(INPUTS_PER_SPEND) {
        let total: i64 = chunk.iter().map(|u| u.value).sum();
        send_psbt(&node, &unsigned(chunk, vec![TxOut { value: total - FEE, script_pubkey: sink.clone() }]));
        for u in chunk {
            spent[u.kind] += 1;
        }
        if node.call("getmempoolinfo", json!([]))["bytes"].as_u64().unwrap() > 3_000_000 {
            mine_all(&node);
        }
    }
    for chunk in legacy.chunks(INPUTS_PER_SPEND) {
        let total: i64 = chunk.iter().map(|u| u.value).sum();
        let tx = unsigned(chunk, vec![TxOut { value: total - FEE, script_pubkey: sink.clone() }]);
        let prevtxs: Vec<Value> = chunk
            .iter()
            .map(|u| {
                json!({"txid": u.outpoint.txid.to_string(), "vout": u.outpoint.vout,
                       "scriptPubKey": hex::encode(&types[0].spk), "amount": btc(u.value)})
            })
            .collect();
        let signed = node.call("signrawtransactionwithkey", json!([hex::encode(serialize(&tx)), [WIFS[0]], prevtxs]));
        assert_eq!(signed["complete"], true, "signrawtransactionwithkey: {}", signed["errors"]);
        node.call("sendrawtransaction", json!([signed["hex"], 0]));
        spent[0] += chunk.len();
    }
    mine_all(&node);
    let t_spend = t.elapsed().as_secs_f64();

    let utxo = node.call("gettxoutsetinfo", json!([]));
    let mut expected = json!({
        "bestblockhash": node.call("getbestblockhash", json!([])),
        "blockcount": node.call("getblockcount", json!([])),
        "gettxoutsetinfo": utxo,
        "total_amount_sat": sats(&utxo["total_amount"]),
        "inputs_spent": {"p2pkh": spent[0], "p2wpkh": spent[1], "p2tr": spent[2],
                         "fanout_coinbase_inputs": coinbases.len()},
    });
    node.stop();
    let total = started.elapsed().as_secs_f64();
    expected["seconds"] = json!({"setup": t_setup, "fanout": t_fanout, "spend": t_spend, "total": total});
    std::fs::write(out.join("expected.json"), serde_json::to_string_pretty(&expected).unwrap()).unwrap();
    eprintln!(
        "regtest_bench_chain: {} script-checked inputs ({} P2PKH, {} P2WPKH, {} P2TR, {} coinbase) in {} blocks, {total:.1} s",
        spent.iter().sum::<usize>() + coinbases.len(),
        spent[0],
        spent[1],
        spent[2],
        coinbases.len(),
        expected["blockcount"]
    );
    eprintln!("expected figures: {}", out.join("expected.json").display());
    println!("{}", node.blocks_dir().display());
}
