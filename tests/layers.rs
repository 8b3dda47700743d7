//! The layering rule of docs/ARCHITECTURE.md, checked on the source: a module may use only modules
//! on its own floor or below, so data flows one way (bytes -> primitives -> engines -> ledger types ->
//! consensus -> state -> mining -> store -> chain -> validate -> node, with the CLI on top), and
//! nothing outside `cli/` and `main.rs` uses `crate::cli`.
//!
//! Unit tests (`tests.rs` files and everything after a file's first `#[cfg(test)]`) may reach up:
//! they build inputs with whatever the crate offers.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each top-level module of `src/` and its floor (a module may use its own floor and those below).
const FLOORS: &[(&str, u32)] = &[
    ("primitives", 0),
    ("httpd", 0),
    ("sha256", 1),
    ("gpu", 1),
    ("sigs", 1),
    ("metrics", 1),
    ("dashboard", 1),
    ("ledger", 2),
    ("consensus", 3),
    ("net", 3),
    ("stratum", 3),
    ("bitcoind", 3),
    ("state", 4),
    ("mine", 5),
    ("backend", 5),
    ("store", 6),
    ("chain", 7),
    ("generate", 8),
    ("validate", 8),
    ("node", 9),
    ("cli", 10),
];

fn floor(module: &str) -> Option<u32> {
    FLOORS.iter().find(|(m, _)| *m == module).map(|(_, f)| *f)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level modules named as `crate::NAME` in `code`.
fn crate_uses(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        // `powkit::crate::` never occurs; skip `$crate::` in macros.
        if i > 0 && code.as_bytes()[i - 1] == b'$' {
            continue;
        }
        let rest = &code[i + 7..];
        let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    // `use crate::{a, b}` groups.
    for (i, _) in code.match_indices("crate::{") {
        let rest = &code[i + 8..];
        let group = &rest[..rest.find('}').unwrap_or(rest.len())];
        for part in group.split(',') {
            let name: String = part.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

#[test]
fn modules_use_only_their_floor_and_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut broken = Vec::new();
    let mut unknown = BTreeSet::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
        if top == "lib" || top == "main" || f.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let Some(own) = floor(&top) else {
            unknown.insert(top);
            continue;
        };
        let text = std::fs::read_to_string(f).unwrap();
        // Code only: comments (doc links included) may name any module.
        let code: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for used in crate_uses(&code) {
            match floor(&used) {
                Some(theirs) if theirs > own => {
                    broken.push(format!("{} (floor {own}) uses crate::{used} (floor {theirs})", rel.display()))
                }
                Some(_) => {}
                None => {
                    unknown.insert(used);
                }
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "modules without a floor in FLOORS (add them, and to docs/ARCHITECTURE.md): {unknown:?}"
    );
    assert!(broken.is_empty(), "uses that reach up a floor:\n{}", broken.join("\n"));
}

#[test]
fn the_checker_sees_plain_and_grouped_uses() {
    let uses = crate_uses("use crate::state::State;\nuse crate::{ledger::x, store};\n fn f() { crate::mine::go() }");
    assert_eq!(uses, ["ledger", "mine", "state", "store"].map(String::from).into_iter().collect());
}
