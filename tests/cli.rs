//! End-to-end tests of the `powkit` binary: real Bitcoin headers, exit codes, JSON shapes, errors.

mod common;
use common::have_gpu;

use std::process::{Command, Output};

use serde_json::Value;

const GENESIS: &str = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";
const GENESIS_NONCE: u64 = 2083236893;
const GENESIS_HASH: &str = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f";
const BLOCK1_HASH: &str = "00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048";
const BLOCK1_NONCE: u64 = 2573394689;

fn powkit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_powkit")).args(args).output().expect("run powkit")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Block 1's header, read from the real mainnet data in ../shared/data when it is there, otherwise
/// the same 80 bytes as published.
fn block1_header() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/bitcoin/mainnet-000000-000255.blk");
    match std::fs::read(path) {
        Ok(d) => {
            let len0 = u32::from_le_bytes(d[4..8].try_into().unwrap()) as usize;
            let rec1 = 8 + len0;
            assert_eq!(&d[rec1..rec1 + 4], &[0xf9, 0xbe, 0xb4, 0xd9], "blk magic");
            hex::encode(&d[rec1 + 8..rec1 + 88])
        }
        Err(_) => {
            eprintln!("note: {path} not found; using block 1's published header");
            "010000006fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000982051fd1e4ba744bbbe680e1fee14677ba1a3c3540bf7b1cdb606e857233e0e61bc6649ffff001d01e36299".into()
        }
    }
}

fn impls() -> Vec<String> {
    let out = powkit(&["bench", "--json", "--seconds", "0.05", "--threads", "1"]);
    assert!(out.status.success());
    json(&out)["cpu_impls_available"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

fn mine_window(header: &str, nonce: u64, imp: &str) -> Value {
    // A window of three million nonces around the real one, with the nonce field zeroed.
    let mut h = header.to_string();
    h.replace_range(152..160, "00000000");
    let start = (nonce - 1_700_000).to_string();
    let out =
        powkit(&["mine", "--header", &h, "--start-nonce", &start, "--count", "3000000", "--cpu-impl", imp, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{imp}: {}", String::from_utf8_lossy(&out.stderr));
    json(&out)
}

#[test]
fn mine_refinds_genesis_and_block1_on_every_cpu_impl() {
    let all = impls();
    assert!(all.contains(&"scalar".to_string()));
    for imp in &all {
        let g = mine_window(GENESIS, GENESIS_NONCE, imp);
        assert_eq!(g["nonce"].as_u64(), Some(GENESIS_NONCE), "{imp}");
        assert_eq!(g["hash"].as_str(), Some(GENESIS_HASH), "{imp}");
        assert_eq!(g["header"].as_str(), Some(GENESIS), "{imp}");
        assert_eq!(g["impl"].as_str(), Some(imp.as_str()));
        let b = mine_window(&block1_header(), BLOCK1_NONCE, imp);
        assert_eq!(b["nonce"].as_u64(), Some(BLOCK1_NONCE), "{imp}");
        assert_eq!(b["hash"].as_str(), Some(BLOCK1_HASH), "{imp}");
        // It stops soon after the solution: the nonces before it, plus at most the chunks that
        // other threads were in (at most 2^20 nonces each).
        let hashes = b["hashes"].as_u64().unwrap();
        assert!((1_700_001..1_700_001 + 2 * (1 << 20)).contains(&hashes), "{imp}: {hashes}");
    }
}

#[test]
fn mine_text_output_and_exit_code_1_when_the_range_has_none() {
    let out = powkit(&["mine", "--header", GENESIS, "--start-nonce", "2083236800", "--count", "200", "--threads", "2"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("found nonce {GENESIS_NONCE} hash {GENESIS_HASH}")), "{text}");
    let out = powkit(&["mine", "--header", GENESIS, "--start-nonce", "0", "--count", "100000", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let j = json(&out);
    assert_eq!(j["found"], Value::Bool(false));
    assert!(j["nonce"].is_null());
    assert_eq!(j["hashes"].as_u64(), Some(100000));
}

#[test]
fn mine_all_reports_every_solution_like_a_brute_force() {
    // An easy target: about one nonce in 256 qualifies.
    let target = format!("00{}", "f".repeat(62));
    let out = powkit(&["mine", "--header", GENESIS, "--target", &target, "--count", "20000", "--all", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let j = json(&out);
    let got: Vec<u64> = j["solutions"].as_array().unwrap().iter().map(|s| s["nonce"].as_u64().unwrap()).collect();
    // Brute force with the sha2 crate.
    use sha2::{Digest, Sha256};
    let mut header = hex::decode(GENESIS).unwrap();
    let want: Vec<u64> = (0u32..20000)
        .filter(|&n| {
            header[76..].copy_from_slice(&n.to_le_bytes());
            Sha256::digest(Sha256::digest(&header))[31] == 0
        })
        .map(u64::from)
        .collect();
    assert!(want.len() > 40);
    assert_eq!(got, want);
    assert_eq!(j["nonce"].as_u64(), Some(want[0]));
    for s in j["solutions"].as_array().unwrap() {
        assert!(s["hash"].as_str().unwrap().starts_with("00"));
    }
}

#[test]
fn mine_rolls_the_time_field_when_the_nonce_space_runs_out() {
    // Start 50 nonces below the top of the space with a target that needs ~1 in 2^10.
    let target = format!("003f{}", "f".repeat(60));
    let out = powkit(&["mine", "--header", GENESIS, "--target", &target, "--start-nonce", "4294967246", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let j = json(&out);
    let rolls = j["time_rolls"].as_u64().unwrap();
    let header = hex::decode(j["header"].as_str().unwrap()).unwrap();
    let time = u32::from_le_bytes(header[68..72].try_into().unwrap());
    assert_eq!(time as u64, 1231006505 + rolls);
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::digest(Sha256::digest(&header)).to_vec();
    hash.reverse();
    assert_eq!(hex::encode(&hash), j["hash"].as_str().unwrap());
    assert!(hash[0] == 0 && hash[1] <= 0x3f);
}

#[test]
fn bad_input_exits_2_with_a_clear_message() {
    let cases: &[(&[&str], &str)] = &[
        (&["mine", "--header", "zz"], "not hex"),
        (&["mine", "--header", "00"], "must be 80 bytes"),
        (&["mine", "--header", &GENESIS[..158]], "must be 80 bytes"),
        (&["mine", "--header", &GENESIS[..159]], "not hex"),
        (&["mine", "--header", GENESIS, "--bits", "04923456"], "negative"),
        (&["mine", "--header", GENESIS, "--bits", "ff123456"], "overflows"),
        (&["mine", "--header", GENESIS, "--bits", "01003456"], "zero"),
        (&["mine", "--header", GENESIS, "--bits", "1d00ff"], "8 hex digits"),
        (&["mine", "--header", GENESIS, "--target", "12"], "64 hex digits"),
        (&["mine", "--header", GENESIS, "--count", "0"], "empty"),
        (&["mine", "--header", GENESIS, "--start-nonce", "4294967295", "--count", "2"], "passes the end"),
        (&["mine", "--header", GENESIS, "--start-nonce", "4294967296"], "does not fit"),
        (&["mine", "--header", GENESIS, "--cpu-impl", "sse9"], "unknown CPU implementation"),
        (&["mine", "--header", GENESIS, "--backend", "gpu", "--adapter", "99"], "adapter"),
        (&["bench", "--seconds", "0"], "--seconds"),
    ];
    for (args, needle) in cases {
        let out = powkit(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: expected '{needle}' in: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn bench_json_has_a_row_per_impl_and_thread_count() {
    let out =
        powkit(&["bench", "--json", "--cpu-impl", "all", "--threads", "1,2", "--seconds", "0.2", "--backend", "all"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j = json(&out);
    let rows = j["results"].as_array().unwrap();
    let n_impls = j["cpu_impls_available"].as_array().unwrap().len();
    assert_eq!(rows.len(), 2 * n_impls);
    for r in rows {
        assert_eq!(r["backend"], "cpu");
        for k in ["impl", "threads", "hashes", "seconds", "hashes_per_second"] {
            assert!(!r[k].is_null(), "row lacks {k}: {r}");
        }
        let (h, s) = (r["hashes"].as_f64().unwrap(), r["seconds"].as_f64().unwrap());
        assert!(h > 0.0);
        assert!((r["hashes_per_second"].as_f64().unwrap() - h / s).abs() < 1e-6 * h / s);
    }
    let text = powkit(&["bench", "--seconds", "0.1", "--threads", "1"]);
    let t = String::from_utf8_lossy(&text.stdout);
    assert!(t.contains("impl") && t.contains("H/s"), "{t}");
}

#[test]
fn mine_backend_gpu_refinds_block1() {
    if !have_gpu() {
        return;
    }
    let mut h = block1_header();
    h.replace_range(152..160, "00000000");
    let start = (BLOCK1_NONCE - 600_000).to_string();
    let out =
        powkit(&["mine", "--backend", "gpu", "--header", &h, "--start-nonce", &start, "--count", "1000000", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let j = json(&out);
    assert_eq!(j["nonce"].as_u64(), Some(BLOCK1_NONCE));
    assert_eq!(j["hash"].as_str(), Some(BLOCK1_HASH));
    assert_eq!(j["backend"], "gpu");
    assert!(j["adapter"].as_str().is_some());
    assert_eq!(j["gpu_hashes"], j["hashes"]);
}

#[test]
fn mine_all_on_gpu_and_cpu_plus_gpu_equals_the_cpu_set_even_when_dispatches_overflow() {
    if !have_gpu() {
        return;
    }
    // One nonce in 16 qualifies: a dispatch holds more candidates than its 4,096-slot buffer.
    let target = format!("0{}", "f".repeat(63));
    let args = |backend: &'static str| -> Vec<String> {
        let a = ["mine", "--header", GENESIS, "--target", &target, "--start-nonce", "1000", "--count", "300000"];
        let b = ["--all", "--json", "--backend", backend, "--gpu-allow-software"];
        a.iter().chain(b.iter()).map(|s| s.to_string()).collect()
    };
    let run = |backend: &'static str| {
        let a = args(backend);
        powkit(&a.iter().map(|s| s.as_str()).collect::<Vec<_>>())
    };
    let cpu = json(&run("cpu"));
    let want = &cpu["solutions"];
    assert!(want.as_array().unwrap().len() > 15_000);
    for backend in ["gpu", "all"] {
        let out = run(backend);
        assert_eq!(out.status.code(), Some(0), "{backend}: {}", String::from_utf8_lossy(&out.stderr));
        let j = json(&out);
        assert_eq!(&j["solutions"], want, "{backend}");
        assert_eq!(j["hashes"].as_u64(), Some(300_000));
        assert_eq!(j["backend"], backend);
        if backend == "gpu" {
            assert!(j["gpu_overflows"].as_u64().unwrap() > 0, "the test must exercise overflow");
        }
    }
}

#[test]
fn gpu_list_and_bench_gpu_rows() {
    if !have_gpu() {
        return;
    }
    let out = powkit(&["gpu", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("index"));
    let out = powkit(&[
        "bench",
        "--backend",
        "all",
        "--gpu-allow-software",
        "--threads",
        "1",
        "--seconds",
        "0.5",
        "--sigs",
        "300",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j = json(&out);
    let rows = j["results"].as_array().unwrap();
    let kinds: Vec<&str> = rows.iter().map(|r| r["backend"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["cpu", "gpu", "all"]);
    for r in &rows[1..] {
        assert!(r["adapter"].as_str().is_some());
        assert!(r["hashes_per_second"].as_f64().unwrap() > 0.0);
    }
    // Signature rows (issue 15): every verifier, each having called all 300 valid signatures valid.
    let sigs = j["signatures"].as_array().unwrap();
    let kinds: Vec<&str> = sigs.iter().map(|r| r["backend"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["cpu", "gpu", "all"], "{j}");
    for r in sigs {
        assert_eq!(r["signatures"], 300);
        assert!(r["signatures_per_second"].as_f64().unwrap() > 0.0);
    }
    assert!(sigs[1]["verifier"].as_str().unwrap().starts_with("gpu ("));
}

/// A password may begin with '-' (`powkit rpc-auth`, like Core's rpcauth.py, draws base64url
/// passwords, and one in 32 begins with '-'): it is taken as the value of --rpc-password, not refused
/// as an unknown flag.
#[test]
fn a_password_that_begins_with_a_dash_is_a_value() {
    let out = powkit(&["rpc", "--rpc", "127.0.0.1:1", "--rpc-user", "u", "--rpc-password", "-y", "getblockcount"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("unexpected argument"), "{err}");
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("127.0.0.1:1"), "the error should be the connection's: {err}");
}
