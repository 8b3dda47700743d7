//! Differential tests against a real Bitcoin Core `bitcoind` (issue 13): powkit's verdict and UTXO set
//! must be Bitcoin Core's.
//!
//! - [`regtest_chain_with_every_script_type_and_a_reorg_matches_core`]: bitcoind makes a regtest chain
//!   with over 1,000 transactions spending P2PK, P2PKH, P2SH multisig, P2SH-P2WPKH, P2WPKH, P2WSH
//!   multisig and P2TR outputs (no wallet: known keys, descriptors, `descriptorprocesspsbt`), chains of
//!   spends inside one block, and a reorg made with `invalidateblock`; a second bitcoind gets the same
//!   blocks in the same order with `-blocksxor=0`. powkit, run on each `regtest/blocks` directory
//!   (obfuscated and plain) and on a loose blk file, must report Core's best block, height and
//!   `gettxoutsetinfo` figures.
//! - [`altered_blocks_are_refused_at_the_same_block_for_the_same_reason`]: blocks built here with one
//!   defect each are refused by `submitblock`; powkit must call the same block INVALID with Core's
//!   reject reason, and call each defect-free twin valid (Core's `getblocktemplate` proposal accepts it).
//!
//! Needs a `bitcoind` (tests/common/bitcoind.rs says where it is looked for); skips with a printed
//! reason without one, unless `POWKIT_REQUIRE_BITCOIND=1` (CI).

#[path = "common/bitcoind.rs"]
mod bitcoind;
mod common;

use std::collections::VecDeque;
use std::path::Path;

use bitcoind::{find_bitcoind, sats, Bitcoind};
use powkit::primitives::{
    serialize, sha256d, Block, BlockHash, BlockHeader, CompactTarget, OutPoint, Transaction, TxIn, TxMerkleNode, TxOut,
    Txid,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Fixed regtest private keys (WIF, compressed), so runs are reproducible and need no wallet.
const WIFS: [&str; 4] = [
    "cW7HYtDzPoRy63gDcasTZMnDntztwVvcuS5ZYtqCVrskwgJwu5sh",
    "cP2vQTisGhpZKLX2myCk2SAzypex51sr6kcYW1HLqZFpCNUaeZ7x",
    "cV6XPsHipKAZMERCR6faRmojgpZ3a4qSriRLyeNiwmgVZVRDU36H",
    "cRZK5M3iCuWyNAkDQr6LLyKX3eaqzU3pTiUwjQvkuMSG4kk9fCoQ",
];

/// Regtest's network magic, which starts each blk record.
const REGTEST_MAGIC: [u8; 4] = [0xfa, 0xbf, 0xb5, 0xda];

/// The fee each generated transaction pays (satoshis; about 20 sat/vB for the largest).
const FEE: i64 = 20_000;

/// An output type: its name, its descriptor with private keys (for signing) and its scriptPubKey.
struct ScriptType {
    name: &'static str,
    private_desc: String,
    public_desc: String,
    spk: Vec<u8>,
}

/// The seven script types of the issue, with their scriptPubKeys as bitcoind derives them.
fn script_types(node: &Bitcoind) -> Vec<ScriptType> {
    let [k0, k1, k2, k3] = WIFS;
    let descs = [
        ("p2pk", format!("pk({k0})")),
        ("p2pkh", format!("pkh({k0})")),
        ("p2sh-multisig", format!("sh(multi(2,{k0},{k1},{k2}))")),
        ("p2sh-p2wpkh", format!("sh(wpkh({k1}))")),
        ("p2wpkh", format!("wpkh({k2})")),
        ("p2wsh-multisig", format!("wsh(multi(2,{k0},{k1},{k2}))")),
        ("p2tr", format!("tr({k3})")),
    ];
    descs
        .into_iter()
        .map(|(name, private_desc)| {
            let public_desc = node.call("getdescriptorinfo", json!([private_desc]))["descriptor"]
                .as_str()
                .expect("a descriptor")
                .to_string();
            let spk = if name == "p2pk" {
                // P2PK has no address: <33-byte pubkey> OP_CHECKSIG, the key from the public descriptor.
                let key = &public_desc[3..public_desc.find(')').unwrap()];
                let mut s = vec![0x21];
                s.extend(hex::decode(key).unwrap());
                s.push(0xac);
                s
            } else {
                let addr = node.call("deriveaddresses", json!([public_desc]))[0].clone();
                hex::decode(node.call("validateaddress", json!([addr]))["scriptPubKey"].as_str().unwrap()).unwrap()
            };
            ScriptType { name, private_desc, public_desc, spk }
        })
        .collect()
}

/// An output the generator may spend.
#[derive(Clone, Copy, Debug)]
struct Utxo {
    outpoint: OutPoint,
    value: i64,
    kind: usize,
    /// Unconfirmed transactions in its chain of ancestors (0: confirmed).
    depth: u32,
}

fn txid(v: &Value) -> Txid {
    Txid::from_display_hex(v.as_str().expect("a txid")).unwrap()
}

/// Builds a transaction spending `inputs` to `outputs` (type, satoshis), signs it with
/// `converttopsbt` + `descriptorprocesspsbt` (the private-key descriptors; bitcoind finalizes) and
/// sends it with `sendrawtransaction`. Returns the new outputs.
fn send(node: &Bitcoind, types: &[ScriptType], inputs: &[Utxo], outputs: &[(usize, i64)]) -> Vec<Utxo> {
    let tx = Transaction {
        version: 2,
        inputs: inputs
            .iter()
            .map(|u| TxIn { prevout: u.outpoint, script_sig: vec![], sequence: 0xffff_fffd, witness: vec![] })
            .collect(),
        outputs: outputs.iter().map(|&(k, value)| TxOut { value, script_pubkey: types[k].spk.clone() }).collect(),
        lock_time: 0,
    };
    let psbt = node.call("converttopsbt", json!([hex::encode(serialize(&tx))]));
    let descs: Vec<&str> = types.iter().map(|t| t.private_desc.as_str()).collect();
    let signed = node.call("descriptorprocesspsbt", json!([psbt, descs]));
    assert_eq!(signed["complete"], true, "descriptorprocesspsbt could not sign all inputs of {inputs:?}: {signed}");
    let id = txid(&node.call("sendrawtransaction", json!([signed["hex"], 0])));
    let depth = inputs.iter().map(|u| u.depth).max().unwrap_or(0) + 1;
    outputs
        .iter()
        .enumerate()
        .map(|(i, &(kind, value))| Utxo { outpoint: OutPoint { txid: id, vout: i as u32 }, value, kind, depth })
        .collect()
}

/// `(txid, value of output 0)` of the coinbase of block `hash`.
fn coinbase_of(node: &Bitcoind, hash: &Value) -> (Txid, i64) {
    let b = node.call("getblock", json!([hash, 2]));
    (txid(&b["tx"][0]["txid"]), sats(&b["tx"][0]["vout"][0]["value"]))
}

/// The raw block `hash` (hex from `getblock HASH 0`) as bytes.
fn raw_block(node: &Bitcoind, hash: &str) -> Vec<u8> {
    hex::decode(node.call("getblock", json!([hash, 0])).as_str().unwrap()).unwrap()
}

/// Appends `block` to `out` as a blk record: magic, length (little-endian u32), the block.
fn push_record(out: &mut Vec<u8>, block: &[u8]) {
    out.extend_from_slice(&REGTEST_MAGIC);
    out.extend_from_slice(&(block.len() as u32).to_le_bytes());
    out.extend_from_slice(block);
}

/// Core's figures for the chain it holds: best block, height, and `gettxoutsetinfo`.
struct CoreView {
    best: String,
    height: u64,
    utxo: Value,
}

fn core_view(node: &Bitcoind) -> CoreView {
    CoreView {
        best: node.call("getbestblockhash", json!([])).as_str().unwrap().to_string(),
        height: node.call("getblockcount", json!([])).as_u64().unwrap(),
        utxo: node.call("gettxoutsetinfo", json!([])),
    }
}

/// `powkit validate PATH --chain bitcoin-regtest --json`: (exit code, report, text for messages).
fn powkit_validate(path: &Path) -> (Option<i32>, Value, String) {
    let p = path.to_str().unwrap();
    let out = common::powkit(&["validate", p, "--chain", "bitcoin-regtest", "--json", "--backend", "cpu"]);
    let j: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let ctx = format!(
        "powkit validate {p} --chain bitcoin-regtest --json: exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), j, ctx)
}

/// A figure of powkit's report's `stats` (`--json` flattens them into the top level today; the
/// contract names them `stats.NAME`: either is read).
fn stat<'a>(j: &'a Value, name: &str) -> &'a Value {
    j.get("stats").and_then(|s| s.get(name)).unwrap_or(&j[name])
}

/// powkit on `path` must say valid, with Core's tip, height and UTXO set figures.
fn assert_powkit_matches(path: &Path, core: &CoreView) {
    let (code, j, ctx) = powkit_validate(path);
    assert_eq!(code, Some(0), "{ctx}");
    assert_eq!(j["valid"], true, "{ctx}");
    assert_eq!(stat(&j, "tip"), core.best.as_str(), "best block vs getbestblockhash; {ctx}");
    assert_eq!(stat(&j, "best_height"), core.height, "height vs getblockcount; {ctx}");
    let u = &core.utxo;
    assert_eq!(j["utxo"]["txouts"], u["txouts"], "txouts vs gettxoutsetinfo; {ctx}");
    assert_eq!(j["utxo"]["total_amount"], sats(&u["total_amount"]), "total_amount (satoshis); {ctx}");
    assert_eq!(j["utxo"]["hash_serialized_3"], u["hash_serialized_3"], "hash_serialized_3; {ctx}");
    assert_eq!(j["utxo"]["transactions"], u["transactions"], "transactions with unspent outputs; {ctx}");
}

/// The chain generator's state: the script types, the outputs it may spend, and counts.
struct Generator {
    types: Vec<ScriptType>,
    pool: VecDeque<Utxo>,
    /// Blocks mined so far by [`Self::mine`] (their coinbases rotate over the types).
    mined: usize,
    txs: usize,
    /// Inputs spent, per type.
    spent: Vec<usize>,
}

impl Generator {
    /// Mines `count` blocks (coinbase to the next type in turn); every mempool transaction is mined.
    fn mine(&mut self, node: &Bitcoind, count: u32) {
        let t = &self.types[self.mined % self.types.len()];
        self.mined += 1;
        node.call("generatetodescriptor", json!([count, t.public_desc]));
        assert_eq!(node.call("getmempoolinfo", json!([]))["size"], 0, "every transaction was mined");
        for u in self.pool.iter_mut() {
            u.depth = 0;
        }
    }

    /// `count` transactions: one to three inputs of mixed types, two outputs (six on every tenth: more
    /// fan-out); every third spends an output of an unconfirmed one (a chain inside one block). A
    /// block every 40 transactions keeps mempool clusters within Core's limits; one at the end.
    fn spend_round(&mut self, node: &Bitcoind, count: usize) {
        let n = self.types.len();
        for i in 0..count {
            let mut inputs = vec![];
            if i % 3 == 2 && self.pool.back().is_some_and(|u| u.depth > 0 && u.depth < 20) {
                inputs.push(self.pool.pop_back().unwrap());
            }
            while inputs.len() < 1 + i % 3 && self.pool.front().is_some_and(|u| u.depth == 0) {
                inputs.push(self.pool.pop_front().unwrap());
            }
            assert!(!inputs.is_empty(), "the generator ran out of confirmed outputs");
            let total: i64 = inputs.iter().map(|u| u.value).sum();
            let outs_n = if i % 10 == 0 { 6 } else { 2 };
            let each = (total - FEE) / outs_n as i64;
            let outs: Vec<(usize, i64)> = (0..outs_n).map(|j| ((self.txs + j) % n, each)).collect();
            for u in &inputs {
                self.spent[u.kind] += 1;
            }
            let new = send(node, &self.types, &inputs, &outs);
            self.pool.extend(new);
            self.txs += 1;
            if (i + 1) % 40 == 0 {
                self.mine(node, 1);
            }
        }
        self.mine(node, 1);
    }
}

#[test]
fn regtest_chain_with_every_script_type_and_a_reorg_matches_core() {
    let Some(bin) = find_bitcoind() else { return };
    let dir = common::tmp_dir("bitcoind", "chain");
    // -txindex=1 lets descriptorprocesspsbt find the whole previous transaction that legacy (non-segwit)
    // inputs must be signed with (Core's ProcessPSBT looks in the txindex, then the mempool).
    let t0 = std::time::Instant::now();
    let phase = |what: &str| eprintln!("{:7.1} s  {what}", t0.elapsed().as_secs_f64());
    let mut a = Bitcoind::start(&bin, &dir.join("xor"), true, &["-txindex=1"]);
    phase("bitcoind started");
    let types = script_types(&a);
    let n = types.len();
    let mut g = Generator { types, pool: VecDeque::new(), mined: 0, txs: 0, spent: vec![0; n] };

    // Four coinbases to each type, then 101 blocks so they mature.
    let mut coinbases = vec![];
    for _ in 0..4 {
        for kind in 0..n {
            let h = a.call("generatetodescriptor", json!([1, g.types[kind].public_desc]))[0].clone();
            let (id, value) = coinbase_of(&a, &h);
            coinbases.push(Utxo { outpoint: OutPoint { txid: id, vout: 0 }, value, kind, depth: 0 });
        }
    }
    g.mine(&a, 101);
    phase("coinbases mined");

    // Fan-out: each coinbase to 20 outputs of every type.
    for (i, cb) in coinbases.iter().enumerate() {
        let each = (cb.value - FEE) / 20;
        let outs: Vec<(usize, i64)> = (0..20).map(|j| ((i + j) % n, each)).collect();
        let new = send(&a, &g.types, std::slice::from_ref(cb), &outs);
        g.pool.extend(new);
        g.spent[cb.kind] += 1;
        g.txs += 1;
    }
    g.mine(&a, 1);
    phase("fan-out");
    g.spend_round(&a, 1000);
    phase("1,000 spends");

    // A reorg four blocks deep: the stale branch stays in the blk files, before the winning one.
    let tip = a.call("getblockcount", json!([])).as_u64().unwrap();
    let hash_at = |node: &Bitcoind, h: u64| node.call("getblockhash", json!([h])).as_str().unwrap().to_string();
    let stale: Vec<String> = (tip - 3..=tip).map(|h| hash_at(&a, h)).collect();
    a.call("invalidateblock", json!([stale[0]]));
    assert_eq!(a.call("getblockcount", json!([])), tip - 4);
    g.mine(&a, 5);
    assert_eq!(a.call("getblockcount", json!([])), tip + 1, "the replacement branch is longer");
    // More spends on the winning branch, of outputs the reorg moved to new blocks.
    g.spend_round(&a, 40);

    eprintln!("generated {} transactions; inputs spent per type: {:?}", g.txs, g.spent);
    assert!(g.txs >= 1000);
    for (t, s) in g.types.iter().zip(&g.spent) {
        assert!(*s >= 100, "{} outputs spent only {s} times", t.name);
    }
    let core = core_view(&a);

    // The same blocks, in the same order (stale branch first), into a node writing plain blk files.
    let mut order: Vec<String> = (1..=tip - 4).map(|h| hash_at(&a, h)).collect();
    order.extend(stale.iter().cloned());
    order.extend((tip - 3..=core.height).map(|h| hash_at(&a, h)));
    let mut b = Bitcoind::start(&bin, &dir.join("plain"), false, &[]);
    for h in &order {
        let r = b.call("submitblock", json!([hex::encode(raw_block(&a, h))]));
        assert!(r.is_null() || r == "inconclusive", "plain node refused block {h}: {r}");
    }
    phase("plain node fed");
    let core_b = core_view(&b);
    assert_eq!((&core_b.best, core_b.height), (&core.best, core.height));
    assert_eq!(core_b.utxo["hash_serialized_3"], core.utxo["hash_serialized_3"]);

    a.stop();
    b.stop();
    let xor_key = std::fs::read(a.blocks_dir().join("xor.dat")).unwrap();
    assert!(xor_key.iter().any(|&x| x != 0), "the first node obfuscates its blk files");
    assert!(std::fs::read(b.blocks_dir().join("xor.dat")).unwrap().iter().all(|&x| x == 0));

    phase("both nodes stopped");
    assert_powkit_matches(&a.blocks_dir(), &core);
    assert_powkit_matches(&b.blocks_dir(), &core);
    assert_powkit_matches(&b.blocks_dir().join("blk00000.dat"), &core);
}

/// The P2WSH scriptPubKey of `witness_script` (BIP141: OP_0 <SHA-256 of the script>).
fn p2wsh(witness_script: &[u8]) -> Vec<u8> {
    let mut s = vec![0x00, 0x20];
    s.extend_from_slice(&Sha256::digest(witness_script));
    s
}

/// The anyone-can-spend output the altered blocks spend: P2WSH of `OP_TRUE`, spent with the witness
/// `[51]` and no signature.
const OP_TRUE: [u8; 1] = [0x51];
/// `OP_1 OP_EQUAL`: spent with the witness item `01`; `02` makes a script failure.
const ONE_EQUAL: [u8; 2] = [0x51, 0x87];

/// BIP34's height push: `CScript() << height` (a minimal CScriptNum; heights here are above 16).
fn height_push(height: u32) -> Vec<u8> {
    let mut n = height.to_le_bytes().to_vec();
    while n.len() > 1 && n[n.len() - 1] == 0 && n[n.len() - 2] & 0x80 == 0 {
        n.pop();
    }
    if n[n.len() - 1] & 0x80 != 0 {
        n.push(0);
    }
    let mut s = vec![n.len() as u8];
    s.extend(n);
    s
}

/// What the altered block's coinbase gets wrong, if anything.
#[derive(Clone, Copy, Default)]
struct CoinbaseFlaws {
    /// The height BIP34 pushes, when not the block's.
    height: Option<u32>,
    /// No witness commitment even when a transaction has a witness.
    no_commitment: bool,
}

/// The block on `prev` (height `prev_height`, time `prev_time`) with a coinbase paying `cb_value` to
/// P2WSH(OP_TRUE) and then `txs`: BIP34 height, witness commitment (BIP141) when a transaction has a
/// witness, merkle root, regtest bits and a nonce that meets them.
fn make_block(
    prev: BlockHash,
    prev_height: u32,
    prev_time: u32,
    cb_value: i64,
    txs: Vec<Transaction>,
    flaw: CoinbaseFlaws,
) -> Block {
    let height = prev_height + 1;
    let mut script_sig = height_push(flaw.height.unwrap_or(height));
    script_sig.extend_from_slice(&[0x04, b'p', b'o', b'w', b'k']);
    let mut cb = Transaction {
        version: 2,
        inputs: vec![TxIn { prevout: OutPoint::NULL, script_sig, sequence: u32::MAX, witness: vec![] }],
        outputs: vec![TxOut { value: cb_value, script_pubkey: p2wsh(&OP_TRUE) }],
        lock_time: 0,
    };
    if txs.iter().any(|t| t.has_witness()) && !flaw.no_commitment {
        let mut wtxids = vec![[0u8; 32]]; // the coinbase's wtxid counts as zero
        wtxids.extend(txs.iter().map(|t| t.wtxid().0));
        let root = powkit::sha256::merkle::root(&wtxids).unwrap();
        let reserved = [0u8; 32];
        let commitment = sha256d(&[root, reserved].concat());
        let mut spk = vec![0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
        spk.extend_from_slice(&commitment);
        cb.outputs.push(TxOut { value: 0, script_pubkey: spk });
        cb.inputs[0].witness = vec![reserved.to_vec()];
    }
    let mut txdata = vec![cb];
    txdata.extend(txs);
    let txids: Vec<[u8; 32]> = txdata.iter().map(|t| t.txid().0).collect();
    let mut header = BlockHeader {
        version: 0x2000_0000,
        prev_blockhash: prev,
        merkle_root: TxMerkleNode(powkit::sha256::merkle::root(&txids).unwrap()),
        time: prev_time + 1,
        bits: CompactTarget(0x207f_ffff),
        nonce: 0,
    };
    let target = header.bits.to_target().unwrap();
    while !target.is_met_by(&header.block_hash()) {
        header.nonce += 1;
    }
    Block { header, txdata }
}

/// A transaction spending `prev` with `witness` to one P2WSH(OP_TRUE) output of `value`.
fn spend(prev: OutPoint, witness: Vec<Vec<u8>>, value: i64) -> Transaction {
    Transaction {
        version: 2,
        inputs: vec![TxIn { prevout: prev, script_sig: vec![], sequence: u32::MAX, witness }],
        outputs: vec![TxOut { value, script_pubkey: p2wsh(&OP_TRUE) }],
        lock_time: 0,
    }
}

fn op_true_witness() -> Vec<Vec<u8>> {
    vec![OP_TRUE.to_vec()]
}

/// One kind of altered block: the block with the defect, its twin without it, and the reject reason
/// Core is expected to give (checked, so each block breaks the rule it is meant to).
struct Case {
    name: &'static str,
    reason: &'static str,
    defect: Block,
    twin: Block,
}

#[test]
fn altered_blocks_are_refused_at_the_same_block_for_the_same_reason() {
    let Some(bin) = find_bitcoind() else { return };
    let dir = common::tmp_dir("bitcoind", "altered");
    let mut node = Bitcoind::start(&bin, &dir.join("node"), true, &[]);
    let anyone = format!("raw({})", hex::encode(p2wsh(&OP_TRUE)));
    let hashes = node.call("generatetodescriptor", json!([110, anyone]));
    let cb: Vec<(Txid, i64)> = std::iter::once((Txid::ZERO, 0))
        .chain(hashes.as_array().unwrap().iter().map(|h| coinbase_of(&node, h)))
        .collect();
    let outpoint = |txid: Txid, vout: u32| OutPoint { txid, vout };
    let tip_info = |node: &Bitcoind| {
        let h = node.call("getbestblockhash", json!([]));
        let hdr = node.call("getblockheader", json!([h]));
        (
            BlockHash::from_display_hex(h.as_str().unwrap()).unwrap(),
            hdr["height"].as_u64().unwrap() as u32,
            hdr["time"].as_u64().unwrap() as u32,
        )
    };

    // A valid block of our own at 111: spends coinbase 1 into ten P2WSH(OP_TRUE) outputs of 4 BTC
    // (S0..S9) and one P2WSH(OP_1 OP_EQUAL) of about 10 BTC (S10).
    let (prev, height, time) = tip_info(&node);
    assert_eq!(height, 110);
    let mut setup = spend(outpoint(cb[1].0, 0), op_true_witness(), 400_000_000);
    setup.outputs = vec![TxOut { value: 400_000_000, script_pubkey: p2wsh(&OP_TRUE) }; 10];
    setup.outputs.push(TxOut { value: 1_000_000_000 - 10_000, script_pubkey: p2wsh(&ONE_EQUAL) });
    let setup_id = setup.txid();
    let subsidy = 5_000_000_000i64; // 50 BTC below regtest's first halving (150)
    let setup_block = make_block(prev, height, time, subsidy + 10_000, vec![setup], CoinbaseFlaws::default());
    let r = node.call("submitblock", json!([hex::encode(serialize(&setup_block))]));
    assert!(r.is_null(), "bitcoind refused the setup block: {r}");

    // The chain 0..=111 as blk records, for powkit.
    let (prev, height, time) = tip_info(&node);
    assert_eq!(prev, setup_block.header.block_hash());
    let mut chain = Vec::new();
    for h in 0..=height {
        let hash = node.call("getblockhash", json!([h]));
        push_record(&mut chain, &raw_block(&node, hash.as_str().unwrap()));
    }

    let s = |i: u32| outpoint(setup_id, i);
    let four = 400_000_000i64;
    let ok = CoinbaseFlaws::default();
    let block = |cb_fees: i64, txs: Vec<Transaction>, flaw: CoinbaseFlaws| {
        make_block(prev, height, time, subsidy + cb_fees, txs, flaw)
    };
    let one = |prev: OutPoint, value: i64| spend(prev, op_true_witness(), value);
    let mut cases = vec![];
    // Script failure: OP_1 OP_EQUAL given 02 (the twin gives 01).
    let s10 = 1_000_000_000 - 10_000;
    cases.push(Case {
        name: "script failure",
        reason: "block-script-verify-flag-failed",
        defect: block(1000, vec![spend(s(10), vec![vec![2], ONE_EQUAL.to_vec()], s10 - 1000)], ok),
        twin: block(1000, vec![spend(s(10), vec![vec![1], ONE_EQUAL.to_vec()], s10 - 1000)], ok),
    });
    cases.push(Case {
        name: "missing input",
        reason: "bad-txns-inputs-missingorspent",
        defect: block(1000, vec![one(outpoint(Txid([0x42; 32]), 0), four - 1000)], ok),
        twin: block(1000, vec![one(s(1), four - 1000)], ok),
    });
    cases.push(Case {
        name: "input spent in an earlier block",
        reason: "bad-txns-inputs-missingorspent",
        defect: block(1000, vec![one(outpoint(cb[1].0, 0), cb[1].1 - 1000)], ok),
        twin: block(1000, vec![one(outpoint(cb[2].0, 0), cb[2].1 - 1000)], ok),
    });
    cases.push(Case {
        name: "double spend inside the block",
        reason: "bad-txns-inputs-missingorspent",
        defect: block(3000, vec![one(s(2), four - 1000), one(s(2), four - 2000)], ok),
        twin: block(3000, vec![one(s(2), four - 1000), one(s(3), four - 2000)], ok),
    });
    let mut dup = one(s(3), four - 1000);
    dup.inputs.push(dup.inputs[0].clone());
    cases.push(Case {
        name: "one input twice in a transaction",
        reason: "bad-txns-inputs-duplicate",
        defect: block(1000, vec![dup], ok),
        twin: block(1000, vec![one(s(3), four - 1000)], ok),
    });
    // Coinbase maturity: at height 112, coinbase 13 is 99 blocks deep, coinbase 12 exactly 100.
    cases.push(Case {
        name: "premature coinbase spend",
        reason: "bad-txns-premature-spend-of-coinbase",
        defect: block(1000, vec![one(outpoint(cb[13].0, 0), cb[13].1 - 1000)], ok),
        twin: block(1000, vec![one(outpoint(cb[12].0, 0), cb[12].1 - 1000)], ok),
    });
    cases.push(Case {
        name: "outputs above inputs",
        reason: "bad-txns-in-belowout",
        defect: block(0, vec![one(s(4), four + 1)], ok),
        twin: block(1000, vec![one(s(4), four - 1000)], ok),
    });
    cases.push(Case {
        name: "coinbase above subsidy plus fees",
        reason: "bad-cb-amount",
        defect: block(1001, vec![one(s(5), four - 1000)], ok),
        twin: block(1000, vec![one(s(5), four - 1000)], ok),
    });
    // Lock time by height: final only when below the block's height (112).
    let locked = |lock_time: u32| {
        let mut t = one(s(6), four - 1000);
        t.lock_time = lock_time;
        t.inputs[0].sequence = 0xffff_fffe;
        t
    };
    cases.push(Case {
        name: "non-final lock time",
        reason: "bad-txns-nonfinal",
        defect: block(1000, vec![locked(height + 1)], ok),
        twin: block(1000, vec![locked(height)], ok),
    });
    // Legacy sigops: each OP_CHECKSIG in an output counts 4 of the block's 80,000.
    let stuffed = |n: usize| {
        let mut t = one(s(7), four - 1000);
        t.outputs.push(TxOut { value: 0, script_pubkey: vec![0xac; n] });
        t
    };
    cases.push(Case {
        name: "sigop cost over the limit",
        reason: "bad-blk-sigops",
        defect: block(1000, vec![stuffed(20_001)], ok),
        twin: block(1000, vec![stuffed(20_000)], ok),
    });
    cases.push(Case {
        name: "witness without a commitment",
        reason: "unexpected-witness",
        defect: block(1000, vec![one(s(8), four - 1000)], CoinbaseFlaws { no_commitment: true, ..ok }),
        twin: block(1000, vec![one(s(8), four - 1000)], ok),
    });
    cases.push(Case {
        name: "BIP34 height mismatch",
        reason: "bad-cb-height",
        defect: block(1000, vec![one(s(9), four - 1000)], CoinbaseFlaws { height: Some(height + 2), ..ok }),
        twin: block(1000, vec![one(s(9), four - 1000)], ok),
    });

    let mut failures = vec![];
    for (i, c) in cases.iter().enumerate() {
        let defect_hash = c.defect.header.block_hash().to_string();
        let core_reason = node.call("submitblock", json!([hex::encode(serialize(&c.defect))]));
        let core_reason =
            core_reason.as_str().unwrap_or_else(|| panic!("{}: bitcoind accepted the defect: {core_reason}", c.name));
        let prefix = core_reason.split(" (").next().unwrap();
        assert_eq!(prefix, c.reason, "{}: Core refused it for another reason: {core_reason}", c.name);
        let proposal =
            node.call("getblocktemplate", json!([{"mode": "proposal", "data": hex::encode(serialize(&c.twin))}]));
        assert!(proposal.is_null(), "{}: Core refused the twin without the defect: {proposal}", c.name);

        let mut file = chain.clone();
        push_record(&mut file, &serialize(&c.defect));
        let p = dir.join(format!("defect-{i}.blk"));
        std::fs::write(&p, &file).unwrap();
        let (code, j, ctx) = powkit_validate(&p);
        let want = (Some(1), json!(height + 1), json!(defect_hash), json!(prefix));
        let reason = j["invalid"]["reason"].as_str().map(|r| json!(r.split(" (").next().unwrap()));
        let got = (code, j["invalid"]["height"].clone(), j["invalid"]["hash"].clone(), reason.unwrap_or(Value::Null));
        if got != want {
            failures.push(format!("{}: Core says {core_reason:?}; want {want:?}, got {got:?}\n{ctx}", c.name));
        }

        let mut file = chain.clone();
        push_record(&mut file, &serialize(&c.twin));
        let p = dir.join(format!("twin-{i}.blk"));
        std::fs::write(&p, &file).unwrap();
        let (code, j, ctx) = powkit_validate(&p);
        let twin_hash = c.twin.header.block_hash().to_string();
        if code != Some(0) || j["valid"] != true || *stat(&j, "tip") != twin_hash.as_str() {
            failures.push(format!("{} (twin without the defect): want valid at {twin_hash}\n{ctx}", c.name));
        }
    }
    assert!(cases.len() >= 8);
    // Core connects a twin for real: the sigop count exactly at the limit.
    let at_limit = &cases.iter().find(|c| c.reason == "bad-blk-sigops").unwrap().twin;
    assert!(node.call("submitblock", json!([hex::encode(serialize(at_limit))])).is_null());
    assert_eq!(node.call("getbestblockhash", json!([])), at_limit.header.block_hash().to_string());
    node.stop();
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from Core:\n{}",
        failures.len(),
        cases.len() * 2,
        failures.join("\n\n")
    );
}
