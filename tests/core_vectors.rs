//! Bitcoin Core's script and transaction test vectors (tests/data/core/, copied from Core's
//! src/test/data/, MIT; see the README there) run through powkit's script stage
//! (`consensus::script::TxScriptCheck`, Bitcoin Core 26's interpreter through libbitcoinconsensus)
//! and, for the context-free failures, `consensus::rules::transaction_is_well_formed`.
//!
//! libbitcoinconsensus accepts only the consensus flags (P2SH, DERSIG, NULLDUMMY,
//! CHECKLOCKTIMEVERIFY, CHECKSEQUENCEVERIFY, WITNESS, TAPROOT); Core's vectors also use policy
//! flags (STRICTENC, MINIMALDATA, CLEANSTACK, DISCOURAGE_*, ...). Each case is run where its verdict
//! follows through the consensus interface, and skipped (counted, with the reason printed) where it
//! does not:
//! - script_tests.json lists the flags *set*. A case whose flags are all consensus flags runs
//!   exactly. A passing case with policy flags runs with its consensus flags only: Core's own test
//!   (`DoTest` in script_tests.cpp) asserts that removing flags from a passing case keeps it
//!   passing. A failing case with policy flags is skipped: the policy flag may be why it fails.
//!   Cases whose taproot output Core builds from its test key (`#TAPROOTOUTPUT#`,
//!   `#CONTROLBLOCK#`) are skipped too.
//! - tx_valid.json lists the flags *excluded* (Core's transaction_tests.cpp runs each case with
//!   `~flags`): every case runs with the consensus flags not excluded, again valid because removing
//!   flags keeps a valid transaction valid (asserted by Core's test).
//! - tx_invalid.json lists the flags *set*, or `BADTX` for a transaction `CheckTransaction` refuses.
//!   BADTX cases go through `transaction_is_well_formed`; the others run when their flags are all
//!   consensus flags (and again with every consensus flag: adding flags keeps an invalid
//!   transaction invalid), and are skipped otherwise.

use std::collections::HashMap;

use powkit::consensus::rules::transaction_is_well_formed;
use powkit::consensus::script::{
    ScriptFailureKind, TxScriptCheck, SCRIPT_VERIFY_ALL_CONSENSUS, SCRIPT_VERIFY_CHECKLOCKTIMEVERIFY,
    SCRIPT_VERIFY_CHECKSEQUENCEVERIFY, SCRIPT_VERIFY_DERSIG, SCRIPT_VERIFY_NULLDUMMY, SCRIPT_VERIFY_P2SH,
    SCRIPT_VERIFY_TAPROOT, SCRIPT_VERIFY_WITNESS,
};
use powkit::primitives::{deserialize, serialize, OutPoint, Transaction, TxIn, TxOut, Txid};
use serde_json::Value;

fn load(name: &str) -> Vec<Value> {
    let path = format!("{}/tests/data/core/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Core's policy flag names (script/interpreter.cpp `ScriptFlagNamesToEnum`, less the consensus ones).
const POLICY_FLAGS: [&str; 14] = [
    "STRICTENC",
    "LOW_S",
    "SIGPUSHONLY",
    "MINIMALDATA",
    "DISCOURAGE_UPGRADABLE_NOPS",
    "CLEANSTACK",
    "DISCOURAGE_UPGRADABLE_WITNESS_PROGRAM",
    "MINIMALIF",
    "NULLFAIL",
    "WITNESS_PUBKEYTYPE",
    "CONST_SCRIPTCODE",
    "DISCOURAGE_UPGRADABLE_TAPROOT_VERSION",
    "DISCOURAGE_OP_SUCCESS",
    "DISCOURAGE_UPGRADABLE_PUBKEYTYPE",
];

/// A flags string: the consensus bits and the policy names in it (Core's `ParseScriptFlags`;
/// "" and "NONE" are no flags; an unknown name fails the test).
fn parse_flags(s: &str) -> (u32, Vec<String>) {
    let mut bits = 0;
    let mut policy = Vec::new();
    if s.is_empty() || s == "NONE" {
        return (0, policy);
    }
    for w in s.split(',') {
        bits |= match w {
            "P2SH" => SCRIPT_VERIFY_P2SH,
            "DERSIG" => SCRIPT_VERIFY_DERSIG,
            "NULLDUMMY" => SCRIPT_VERIFY_NULLDUMMY,
            "CHECKLOCKTIMEVERIFY" => SCRIPT_VERIFY_CHECKLOCKTIMEVERIFY,
            "CHECKSEQUENCEVERIFY" => SCRIPT_VERIFY_CHECKSEQUENCEVERIFY,
            "WITNESS" => SCRIPT_VERIFY_WITNESS,
            "TAPROOT" => SCRIPT_VERIFY_TAPROOT,
            p if POLICY_FLAGS.contains(&p) => {
                policy.push(p.to_string());
                0
            }
            other => panic!("unknown flag '{other}' in '{s}'"),
        };
    }
    (bits, policy)
}

/// Core's `TrimFlags` for the consensus subset: WITNESS needs P2SH.
fn trim(flags: u32) -> u32 {
    if flags & SCRIPT_VERIFY_P2SH == 0 {
        flags & !SCRIPT_VERIFY_WITNESS
    } else {
        flags
    }
}

/// Opcode names Core's `ParseScript` accepts (core_io.cpp: `OP_RESERVED`, then `OP_NOP` (0x61) to
/// `OP_NOP10` (0xb9)), each with and without `OP_`.
const OPCODES_FROM_0X61: [&str; 89] = [
    "NOP",
    "VER",
    "IF",
    "NOTIF",
    "VERIF",
    "VERNOTIF",
    "ELSE",
    "ENDIF",
    "VERIFY",
    "RETURN",
    "TOALTSTACK",
    "FROMALTSTACK",
    "2DROP",
    "2DUP",
    "3DUP",
    "2OVER",
    "2ROT",
    "2SWAP",
    "IFDUP",
    "DEPTH",
    "DROP",
    "DUP",
    "NIP",
    "OVER",
    "PICK",
    "ROLL",
    "ROT",
    "SWAP",
    "TUCK",
    "CAT",
    "SUBSTR",
    "LEFT",
    "RIGHT",
    "SIZE",
    "INVERT",
    "AND",
    "OR",
    "XOR",
    "EQUAL",
    "EQUALVERIFY",
    "RESERVED1",
    "RESERVED2",
    "1ADD",
    "1SUB",
    "2MUL",
    "2DIV",
    "NEGATE",
    "ABS",
    "NOT",
    "0NOTEQUAL",
    "ADD",
    "SUB",
    "MUL",
    "DIV",
    "MOD",
    "LSHIFT",
    "RSHIFT",
    "BOOLAND",
    "BOOLOR",
    "NUMEQUAL",
    "NUMEQUALVERIFY",
    "NUMNOTEQUAL",
    "LESSTHAN",
    "GREATERTHAN",
    "LESSTHANOREQUAL",
    "GREATERTHANOREQUAL",
    "MIN",
    "MAX",
    "WITHIN",
    "RIPEMD160",
    "SHA1",
    "SHA256",
    "HASH160",
    "HASH256",
    "CODESEPARATOR",
    "CHECKSIG",
    "CHECKSIGVERIFY",
    "CHECKMULTISIG",
    "CHECKMULTISIGVERIFY",
    "NOP1",
    "CHECKLOCKTIMEVERIFY",
    "CHECKSEQUENCEVERIFY",
    "NOP4",
    "NOP5",
    "NOP6",
    "NOP7",
    "NOP8",
    "NOP9",
    "NOP10",
];

fn opcode(word: &str) -> Option<u8> {
    let name = word.strip_prefix("OP_").unwrap_or(word);
    if name == "RESERVED" {
        return Some(0x50);
    }
    OPCODES_FROM_0X61.iter().position(|n| *n == name).map(|i| 0x61 + i as u8)
}

/// `CScript << data`: the shortest push opcode for the length (not OP_N: Core's `operator<<`).
fn push_data(out: &mut Vec<u8>, data: &[u8]) {
    match data.len() {
        n if n < 0x4c => out.push(n as u8),
        n if n <= 0xff => out.extend([0x4c, n as u8]),
        n if n <= 0xffff => {
            out.push(0x4d);
            out.extend((n as u16).to_le_bytes());
        }
        n => {
            out.push(0x4e);
            out.extend((n as u32).to_le_bytes());
        }
    }
    out.extend_from_slice(data);
}

/// `CScript << int64`: OP_1NEGATE, OP_0, OP_1..OP_16, or the `CScriptNum` serialization pushed.
fn push_int(out: &mut Vec<u8>, n: i64) {
    if n == -1 || (1..=16).contains(&n) {
        out.push((n + 0x50) as u8);
    } else if n == 0 {
        out.push(0);
    } else {
        let neg = n < 0;
        let mut abs = n.unsigned_abs();
        let mut v = Vec::new();
        while abs > 0 {
            v.push((abs & 0xff) as u8);
            abs >>= 8;
        }
        if v.last().is_some_and(|b| b & 0x80 != 0) {
            v.push(if neg { 0x80 } else { 0 });
        } else if neg {
            *v.last_mut().unwrap() |= 0x80;
        }
        push_data(out, &v);
    }
}

/// Core's `ParseScript` (core_io.cpp): decimal numbers pushed as script numbers, `0x..` raw bytes
/// inserted, `'...'` strings pushed, opcode names with or without `OP_`.
fn parse_script(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for w in s.split([' ', '\t', '\n']).filter(|w| !w.is_empty()) {
        let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
        if digits(w) || (w.starts_with('-') && digits(&w[1..])) {
            let n: i64 = w.parse().unwrap_or_else(|_| panic!("number {w}"));
            assert!((-0xffff_ffff..=0xffff_ffff).contains(&n), "number {w} out of ParseScript's range");
            push_int(&mut out, n);
        } else if let Some(h) = w.strip_prefix("0x").filter(|h| !h.is_empty()) {
            out.extend(hex::decode(h).unwrap_or_else(|e| panic!("hex {w}: {e}")));
        } else if w.len() >= 2 && w.starts_with('\'') && w.ends_with('\'') {
            push_data(&mut out, &w.as_bytes()[1..w.len() - 1]);
        } else {
            out.push(opcode(w).unwrap_or_else(|| panic!("unknown opcode '{w}' in '{s}'")));
        }
    }
    out
}

/// A script check's verdict: `Ok` when every input passes, `Err(i)` for the first failing input
/// (an interface error, which no vector should cause, fails the test).
fn run(tx_bytes: Vec<u8>, spent: Vec<TxOut>, flags: u32, what: &str) -> Result<(), usize> {
    let check = TxScriptCheck::from_bytes(tx_bytes, spent, flags).unwrap_or_else(|e| panic!("{what}: {e}"));
    for i in 0..check.inputs() {
        match check.verify_input(i) {
            Ok(()) => {}
            Err(f) if f.kind == ScriptFailureKind::Evaluation => return Err(i),
            Err(f) => panic!("{what}: {f}"),
        }
    }
    Ok(())
}

#[derive(Default)]
struct Tally {
    ran_exact: usize,
    ran_reduced: usize,
    skipped: HashMap<&'static str, usize>,
    failures: Vec<String>,
}

impl Tally {
    fn skip(&mut self, why: &'static str) {
        *self.skipped.entry(why).or_default() += 1;
    }

    fn report(&self, file: &str) {
        println!(
            "{file}: ran {} ({} with their exact flags, {} with their consensus flags only), skipped {}",
            self.ran_exact + self.ran_reduced,
            self.ran_exact,
            self.ran_reduced,
            self.skipped.values().sum::<usize>()
        );
        let mut why: Vec<_> = self.skipped.iter().collect();
        why.sort();
        for (why, n) in why {
            println!("  skipped {n}: {why}");
        }
        for f in &self.failures {
            println!("  MISMATCH {f}");
        }
    }
}

/// Core's `AmountFromValue` for the witness amount (BTC as a JSON number, 8 decimals).
fn amount(v: &Value) -> i64 {
    (v.as_f64().expect("amount") * 1e8).round() as i64
}

#[test]
fn script_tests_json() {
    let mut t = Tally::default();
    for case in load("script_tests.json") {
        let case = case.as_array().expect("array");
        let (witness, value, pos) = match case.first() {
            Some(Value::Array(w)) => {
                let items: Vec<&str> = w[..w.len() - 1].iter().map(|i| i.as_str().expect("witness item")).collect();
                (items, amount(&w[w.len() - 1]), 1)
            }
            _ => (Vec::new(), 0, 0),
        };
        if case.len() < 4 + pos {
            continue; // a comment
        }
        let s = |i: usize| case[pos + i].as_str().expect("string");
        let (sig, spk, flags, expected) = (s(0), s(1), s(2), s(3));
        let what = format!("{sig} | {spk} | {flags} | {expected}");
        if spk.contains("#TAPROOTOUTPUT#") || witness.iter().any(|w| w.contains('#')) {
            t.skip("taproot case built from Core's test key (#TAPROOTOUTPUT#/#CONTROLBLOCK#/#SCRIPT#)");
            continue;
        }
        let (mut bits, policy) = parse_flags(flags);
        let ok = expected == "OK";
        if policy.iter().any(|p| p == "CLEANSTACK") {
            bits |= SCRIPT_VERIFY_P2SH | SCRIPT_VERIFY_WITNESS; // DoTest's CLEANSTACK rule
        }
        if !policy.is_empty() && !ok {
            t.skip("fails with a policy flag set: the consensus interface cannot run that flag");
            continue;
        }
        let witness: Vec<Vec<u8>> = witness.iter().map(|w| hex::decode(w).expect("witness hex")).collect();
        let spk = parse_script(spk);
        // Core's BuildCreditingTransaction and BuildSpendingTransaction.
        let credit = Transaction {
            version: 1,
            inputs: vec![TxIn { prevout: OutPoint::NULL, script_sig: vec![0, 0], sequence: u32::MAX, witness: vec![] }],
            outputs: vec![TxOut { value, script_pubkey: spk.clone() }],
            lock_time: 0,
        };
        let spend = Transaction {
            version: 1,
            inputs: vec![TxIn {
                prevout: OutPoint { txid: credit.txid(), vout: 0 },
                script_sig: parse_script(sig),
                sequence: u32::MAX,
                witness,
            }],
            outputs: vec![TxOut { value, script_pubkey: vec![] }],
            lock_time: 0,
        };
        let got = run(serialize(&spend), vec![credit.outputs[0].clone()], bits, &what);
        if got.is_ok() != ok {
            t.failures.push(format!("{what}: got {got:?}"));
        }
        if policy.is_empty() {
            t.ran_exact += 1;
            if !ok
                && run(serialize(&spend), vec![credit.outputs[0].clone()], SCRIPT_VERIFY_ALL_CONSENSUS, &what).is_ok()
            {
                t.failures.push(format!("{what}: passes with every consensus flag"));
            }
        } else {
            t.ran_reduced += 1;
        }
    }
    t.report("script_tests.json");
    assert!(t.failures.is_empty(), "{} cases disagree with Bitcoin Core", t.failures.len());
    assert!(t.ran_exact >= 200 && t.ran_exact + t.ran_reduced >= 700, "too few cases ran");
}

/// The prevouts of a tx_valid/tx_invalid case: outpoint -> (scriptPubKey, amount).
fn prevouts(case: &[Value]) -> HashMap<OutPoint, TxOut> {
    case[0]
        .as_array()
        .expect("inputs")
        .iter()
        .map(|i| {
            let i = i.as_array().expect("input");
            let txid = Txid::from_display_hex(i[0].as_str().expect("txid")).expect("txid hex");
            let vout = i[1].as_i64().expect("vout") as u32;
            let script_pubkey = parse_script(i[2].as_str().expect("script"));
            let value = i.get(3).map_or(0, |v| v.as_i64().expect("amount"));
            (OutPoint { txid, vout }, TxOut { value, script_pubkey })
        })
        .collect()
}

fn tx_cases(name: &str) -> Vec<(Vec<Value>, String)> {
    load(name)
        .into_iter()
        .filter_map(|c| {
            let c = c.as_array().expect("array").clone();
            c[0].is_array().then(|| {
                let what = serde_json::to_string(&c).unwrap();
                (c, what)
            })
        })
        .collect()
}

#[test]
fn tx_valid_json() {
    let mut t = Tally::default();
    let mut maximal = 0;
    for (case, what) in tx_cases("tx_valid.json") {
        let map = prevouts(&case);
        let bytes = hex::decode(case[1].as_str().expect("tx hex")).expect("hex");
        let tx: Transaction = deserialize(&bytes).unwrap_or_else(|e| panic!("{what}: powkit cannot decode: {e}"));
        transaction_is_well_formed(&tx, 0).unwrap_or_else(|e| panic!("{what}: {e}"));
        let spent: Vec<TxOut> = tx.inputs.iter().map(|i| map[&i.prevout].clone()).collect();
        let (excluded, policy) = parse_flags(case[2].as_str().expect("flags"));
        let flags = trim(SCRIPT_VERIFY_ALL_CONSENSUS & !excluded);
        if let Err(i) = run(bytes.clone(), spent.clone(), flags, &what) {
            t.failures.push(format!("{what}: input {i} fails with flags 0x{flags:x}"));
        }
        if policy.is_empty() && excluded == 0 {
            t.ran_exact += 1;
        } else {
            t.ran_reduced += 1;
        }
        // Core's maximality check (`ExcludeIndividualFlags`): setting any one excluded consensus
        // flag again makes the transaction fail. Core runs it with the non-excluded policy flags
        // on too; here with the consensus flags only, which still fails in every case.
        for bit in (0..32).map(|b| 1u32 << b).filter(|b| excluded & b != 0) {
            let with = trim(flags | bit);
            maximal += 1;
            if run(bytes.clone(), spent.clone(), with, &what).is_ok() {
                t.failures.push(format!("{what}: still valid with flags 0x{with:x}"));
            }
        }
    }
    t.report("tx_valid.json");
    println!("  and {maximal} maximality checks (an excluded consensus flag set again fails the transaction)");
    assert!(t.failures.is_empty(), "{} cases disagree with Bitcoin Core", t.failures.len());
    assert!(t.ran_exact + t.ran_reduced >= 100 && maximal >= 5, "too few cases ran");
}

#[test]
fn tx_invalid_json() {
    let mut t = Tally::default();
    let (mut badtx, mut undecodable) = (0, 0);
    for (case, what) in tx_cases("tx_invalid.json") {
        let map = prevouts(&case);
        let bytes = hex::decode(case[1].as_str().expect("tx hex")).expect("hex");
        let flags = case[2].as_str().expect("flags");
        let tx: Transaction = match deserialize(&bytes) {
            Ok(tx) => tx,
            Err(e) => {
                assert_eq!(flags, "BADTX", "{what}: powkit cannot decode it: {e}");
                undecodable += 1;
                continue;
            }
        };
        // Core: a case is BADTX exactly when CheckTransaction refuses it.
        let well_formed = transaction_is_well_formed(&tx, 0);
        if flags == "BADTX" {
            assert!(well_formed.is_err(), "{what}: passes transaction_is_well_formed");
            badtx += 1;
            continue;
        }
        well_formed.unwrap_or_else(|e| panic!("{what}: {e}"));
        let (bits, policy) = parse_flags(flags);
        if !policy.is_empty() {
            t.skip("invalid under a policy flag: the consensus interface cannot run that flag");
            continue;
        }
        let Some(spent) = tx.inputs.iter().map(|i| map.get(&i.prevout).cloned()).collect::<Option<Vec<_>>>() else {
            panic!("{what}: an input's prevout is not listed");
        };
        if run(bytes.clone(), spent.clone(), bits, &what).is_ok() {
            t.failures.push(format!("{what}: passes with flags 0x{bits:x}"));
        }
        if run(bytes, spent, SCRIPT_VERIFY_ALL_CONSENSUS, &what).is_ok() {
            t.failures.push(format!("{what}: passes with every consensus flag"));
        }
        t.ran_exact += 1;
    }
    t.report("tx_invalid.json");
    println!(
        "  and {} BADTX cases: {badtx} refused by transaction_is_well_formed, {undecodable} by powkit's decoder",
        badtx + undecodable
    );
    assert!(t.failures.is_empty(), "{} cases disagree with Bitcoin Core", t.failures.len());
    assert!(t.ran_exact >= 50 && badtx + undecodable >= 5, "too few cases ran");
}
