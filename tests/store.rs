//! The store survives `kill -9` at any moment: `powkit chain import` is killed ten times at random
//! points; each time the data directory opens, its main chain is an exact prefix of the input that
//! validates on its own, and importing again resumes and ends on the generator's state root.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn powkit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_powkit")).args(args).output().expect("run powkit")
}

#[test]
fn import_killed_ten_times_reopens_on_a_consistent_tip_and_resumes() {
    let d = std::env::temp_dir().join(format!("powkit-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let chain = d.join("chain.blk");
    let out = powkit(&[
        "chain",
        "generate",
        "--chain",
        "powkit-regtest",
        "--blocks",
        "1500",
        "--txs-per-block",
        "4",
        "--out",
        chain.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8(out.stdout).unwrap();
    let want_root = said.rsplit("state root ").next().unwrap().trim().to_string();
    let original = std::fs::read(&chain).unwrap();
    let datadir = d.join("node");
    let dd = datadir.to_str().unwrap();
    let mut heights = vec![];
    for i in 0..10u64 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_powkit"))
            .args(["chain", "import", "--chain", "powkit-regtest", "--datadir", dd, chain.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(100 + (i * 29) % 150));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Killed before the store was created (process start-up): nothing to check yet.
        if !datadir.join("chain.redb").exists() {
            heights.push(None);
            continue;
        }
        // The store opens, and its main chain is a prefix of the input that validates by itself.
        let exported = d.join(format!("export-{i}.blk"));
        let out = powkit(&[
            "chain",
            "export",
            "--chain",
            "powkit-regtest",
            "--datadir",
            dd,
            "--out",
            exported.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "kill {i}: {}", String::from_utf8_lossy(&out.stderr));
        let bytes = std::fs::read(&exported).unwrap();
        assert!(original.starts_with(&bytes), "kill {i}: the stored chain is not a prefix of the input");
        let out = powkit(&["validate", "--chain", "powkit-regtest", "--json", exported.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "kill {i}: {}", String::from_utf8_lossy(&out.stdout));
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        heights.push(j["best_height"].as_u64());
    }
    eprintln!("heights after each kill: {heights:?}");
    assert!(heights.iter().filter(|h| h.is_some()).count() >= 5, "too few kills after the store existed: {heights:?}");
    let out = powkit(&["chain", "import", "--chain", "powkit-regtest", "--datadir", dd, chain.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("-> 1499, "), "{text}");
    assert!(text.trim_end().ends_with(&want_root), "{text} vs {want_root}");
    // A data directory of one chain refuses another.
    let out = powkit(&["chain", "import", "--chain", "powkit", "--datadir", dd, chain.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds chain"));
}
