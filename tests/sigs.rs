//! `powkit verify-sigs` end to end: valid files, planted invalid signatures named by line index,
//! malformed lines reported with their line number, and (issue 15) the GPU backends: `verify-sigs
//! --backend all` and `validate --backend gpu|all` of a powkit chain give the CPU's verdicts.

mod common;

use common::have_gpu;
use std::process::{Command, Output};

use ed25519_zebra::{SigningKey, VerificationKeyBytes};
use rand::{Rng, SeedableRng};
use serde_json::Value;

fn powkit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_powkit")).args(args).output().expect("run powkit")
}

fn write(name: &str, text: &str) -> String {
    let d = std::env::temp_dir().join(format!("powkit-sigs-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

/// `n` signature lines (keys shared by groups of 3); the lines in `bad` get a flipped bit in S.
fn lines(n: usize, bad: &[usize]) -> String {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let keys: Vec<SigningKey> = (0..n.div_ceil(3)).map(|_| SigningKey::from(rng.gen::<[u8; 32]>())).collect();
    let mut out = String::new();
    for i in 0..n {
        let k = &keys[i / 3];
        let msg: Vec<u8> = (0..(i % 70)).map(|_| rng.gen()).collect();
        let mut sig = k.sign(&msg).to_bytes();
        if bad.contains(&i) {
            sig[33] ^= 0x02;
        }
        let pk: [u8; 32] = VerificationKeyBytes::from(k).into();
        out += &format!(
            "{{\"pubkey\": \"{}\", \"signature\": \"{}\", \"message\": \"{}\"}}\n",
            hex::encode(pk),
            hex::encode(sig),
            hex::encode(msg)
        );
    }
    out
}

fn run(file: &str) -> (i32, Value) {
    let out = powkit(&["verify-sigs", "--json", file]);
    let j = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap(), j)
}

#[test]
fn valid_files_pass_and_planted_invalid_signatures_are_named() {
    let f = write("ok.jsonl", &lines(1500, &[]));
    let (code, j) = run(&f);
    assert_eq!(code, 0, "{j}");
    assert_eq!((j["total"].as_u64(), j["valid"].as_u64(), j["invalid"].as_u64()), (Some(1500), Some(1500), Some(0)));
    assert!(j["signatures_per_second"].as_f64().unwrap() > 0.0);

    let bad = [0, 511, 512, 513, 777, 1499];
    let f = write("bad.jsonl", &lines(1500, &bad));
    let (code, j) = run(&f);
    assert_eq!(code, 1, "{j}");
    assert_eq!(j["invalid"], bad.len());
    let got: Vec<usize> =
        j["invalid_indexes"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    assert_eq!(got, bad);
    // The same with tiny batches (every bisection path) and the text output.
    let out = powkit(&["verify-sigs", "--batch", "5", &f]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("invalid line indexes (0-based): 0, 511, 512, 513, 777, 1499"), "{text}");
}

#[test]
fn malformed_lines_exit_2_with_the_line_number() {
    let good = lines(3, &[]);
    let first: Vec<&str> = good.lines().collect();
    let cases = [
        ("not json", "line 2: not a signature record"),
        (r#"{"pubkey": "00", "signature": "00", "message": ""}"#, "line 2: pubkey has 2 hex digits, not 64"),
        (&first[0].replace("\"message\": \"", "\"message\": \"zz"), "line 2: message is not hex"),
        (&first[0].replace("pubkey", "key"), "line 2: not a signature record"),
        ("", "line 2: not a signature record"),
    ];
    for (i, (line, want)) in cases.iter().enumerate() {
        let f = write(&format!("m{i}.jsonl"), &format!("{}\n{line}\n{}\n", first[0], first[1]));
        let out = powkit(&["verify-sigs", &f]);
        assert_eq!(out.status.code(), Some(2), "{line}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{line}: {err}");
    }
    let out = powkit(&["verify-sigs", "/nonexistent/sigs.jsonl"]);
    assert_eq!(out.status.code(), Some(2));
    // A GPU adapter that does not exist: one line naming the flag, exit 2.
    let f = write("g.jsonl", &good);
    let out = powkit(&["verify-sigs", "--backend", "gpu", "--adapter", "99", &f]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--backend gpu"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `--backend all` splits the file between the GPU and the CPU threads and names exactly the
/// planted invalid signatures, as the CPU does (a software adapter takes part when `all` names it).
#[test]
fn verify_sigs_on_cpu_and_gpu_together_names_exactly_the_planted_faults() {
    if !have_gpu() {
        return;
    }
    let bad = [0, 1, 63, 64, 700, 1401, 2999];
    let f = write("all.jsonl", &lines(3000, &bad));
    let out = powkit(&["verify-sigs", "--json", "--backend", "all", &f]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(j["backend"].as_str().unwrap().starts_with("all (cpu"), "{j}");
    let got: Vec<usize> =
        j["invalid_indexes"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    assert_eq!(got, bad);
}

/// A generated powkit chain with transfers validates to the same tip and state root with its
/// signatures on the CPU, the GPU, and both.
#[test]
fn validate_of_a_powkit_chain_gives_the_same_state_root_on_cpu_gpu_and_all() {
    if !have_gpu() {
        return;
    }
    let d = std::env::temp_dir().join(format!("powkit-sigs-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let chain = d.join("transfers.blk");
    let out = powkit(&[
        "chain",
        "generate",
        "--chain",
        "powkit-regtest",
        "--blocks",
        "12",
        "--txs-per-block",
        "150",
        "--out",
        chain.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let run = |backend: &str| -> Value {
        let out =
            powkit(&["validate", "--json", "--chain", "powkit-regtest", "--backend", backend, chain.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{backend}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let cpu = run("cpu");
    assert!(cpu["transactions"].as_u64().unwrap() > 1200, "{cpu}");
    for backend in ["gpu", "all"] {
        let j = run(backend);
        assert!(j["backend"].as_str().unwrap().starts_with(backend), "{j}");
        for field in ["valid", "tip", "state_root", "transactions", "chainwork", "accounts"] {
            assert_eq!(j[field], cpu[field], "{backend}: {field}");
        }
    }
}
