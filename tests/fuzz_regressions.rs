//! Replays every input the fuzzers ever crashed on (tests/fuzz_regressions/<target>/, put there by
//! tools/fuzz.sh) and every committed seed (fuzz/seeds/<target>/) through the target's own check
//! (fuzz/checks.rs, the very file the cargo-fuzz targets run), on stable Rust: a fixed crash stays
//! fixed in the normal test suite, and the checks' round-trip properties hold on the real data the
//! seeds were cut from.

use std::path::{Path, PathBuf};

#[path = "../fuzz/checks.rs"]
mod checks;

/// A saved input: its target, the target's check, the file.
type Input = (String, checks::Check, PathBuf);

/// The files under `dir/<target>/` for each target directory there, with the target's check.
fn inputs(dir: &Path) -> Vec<Input> {
    let mut out = Vec::new();
    let Ok(targets) = std::fs::read_dir(dir) else { return out };
    for t in targets {
        let t = t.unwrap().path();
        if !t.is_dir() {
            continue;
        }
        let name = t.file_name().unwrap().to_string_lossy().to_string();
        let check = checks::TARGETS
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("{}: no fuzz target named {name} in fuzz/checks.rs", t.display()))
            .1;
        for f in std::fs::read_dir(&t).unwrap() {
            let f = f.unwrap().path();
            if f.is_file() && f.file_name().is_some_and(|n| n != ".gitkeep") {
                out.push((name.clone(), check, f));
            }
        }
    }
    out.sort_by(|a, b| a.2.cmp(&b.2));
    out
}

/// Runs each input through its check; returns the failures (file and panic message).
fn replay(inputs: &[Input]) -> Vec<String> {
    let mut failed = Vec::new();
    for (target, check, file) in inputs {
        let data = std::fs::read(file).unwrap();
        if let Err(e) = std::panic::catch_unwind(|| check(&data)) {
            let why = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("{target}: {}: {why}", file.display()));
        }
    }
    failed
}

#[test]
fn saved_fuzz_crashes_stay_fixed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let inputs = inputs(&dir);
    let failed = replay(&inputs);
    assert!(failed.is_empty(), "{} of {} saved fuzz inputs fail:\n{}", failed.len(), inputs.len(), failed.join("\n"));
}

#[test]
fn every_target_has_seeds_and_its_checks_hold_on_them() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let inputs = inputs(&dir);
    for (name, _) in checks::TARGETS {
        assert!(inputs.iter().any(|(t, _, _)| t == name), "fuzz/seeds/{name} has no seed");
    }
    let failed = replay(&inputs);
    assert!(failed.is_empty(), "{} of {} seeds fail:\n{}", failed.len(), inputs.len(), failed.join("\n"));
}

/// The replay reports a check that panics, with its file and message (so the tests above can fail).
#[test]
fn the_replay_catches_a_failing_check() {
    fn panics(_: &[u8]) {
        panic!("planted");
    }
    let f = std::env::temp_dir().join(format!("powkit-fuzz-replay-{}", std::process::id()));
    std::fs::write(&f, b"x").unwrap();
    let failed = replay(&[("planted".into(), panics, f)]);
    assert_eq!(failed.len(), 1);
    assert!(failed[0].contains("planted"), "{failed:?}");
}
