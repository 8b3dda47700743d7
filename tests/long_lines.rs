//! Issue 12, fault 9: hex and JSON-lines input is refused at its line limit while it is read. A
//! 2 GiB file holding one line with no newline (sparse: zero bytes) used to be read whole before its
//! length was checked: 2.1 GB of memory, and an abort with a backtrace under a memory limit. Now
//! `powkit validate --format hex` and `powkit verify-sigs` refuse it after reading the limit plus
//! one byte, with an error naming the file, the line and the limit, quickly and in little memory.
//!
//! Each run is a child process under `ulimit -v` (1 GiB of address space, far below the file) and
//! its peak resident memory is measured with `getrusage(RUSAGE_CHILDREN)`. This file holds one test
//! so that no other child of this process counts in that figure.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Address space allowed to each child, KiB (`ulimit -v`).
const ADDRESS_SPACE_KIB: u64 = 1 << 20;
/// Peak resident memory allowed to each child, KiB.
const MAX_RSS_KIB: i64 = 100 << 10;

/// Runs powkit with `args` under the address-space limit; returns (exit code, stderr, seconds).
fn powkit_limited(args: &[&str]) -> (Option<i32>, String, Duration) {
    let t0 = Instant::now();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {ADDRESS_SPACE_KIB} && exec \"$@\""))
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_powkit"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run powkit under sh");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned(), t0.elapsed())
}

/// Peak resident memory of the largest child waited for so far, KiB.
fn children_max_rss_kib() -> i64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage for the call to fill.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) }, 0);
    ru.ru_maxrss
}

#[test]
fn a_2_gib_line_without_newline_is_refused_quickly_in_little_memory() {
    let dir = std::env::temp_dir().join(format!("powkit-long-lines-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file: PathBuf = dir.join("one-line.txt");
    // Sparse: 2 GiB of zero bytes that take no disk space.
    std::fs::File::create(&file).unwrap().set_len(2 << 30).unwrap();
    let f = file.to_str().unwrap();

    let cases: [(&[&str], &str); 2] = [
        (
            &["validate", "--format", "hex", "--backend", "cpu", f],
            "line 1: line longer than 8000256 bytes (the hex of a largest block, 4000000 bytes, plus whitespace); \
             refused after reading 8000257 bytes of it",
        ),
        (
            &["verify-sigs", f],
            "line 1: longer than 1048576 bytes, the limit of a signature record; refused after reading 1048577 \
             bytes of it",
        ),
    ];
    for (args, want) in cases {
        let (code, stderr, took) = powkit_limited(args);
        assert_eq!(code, Some(2), "{args:?}: exit {code:?}, stderr:\n{stderr}");
        assert!(stderr.contains(&format!("{f}: {want}")), "{args:?}: stderr:\n{stderr}");
        assert!(!stderr.contains("panicked") && !stderr.contains("memory allocation"), "{args:?}:\n{stderr}");
        assert!(took < Duration::from_secs(20), "{args:?} took {took:?}");
        let rss = children_max_rss_kib();
        eprintln!("{args:?}: refused in {took:?}; peak RSS of the children so far {rss} KiB");
        assert!(rss < MAX_RSS_KIB, "{args:?}: peak RSS {rss} KiB");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
