//! Helpers shared by the integration tests.

/// Whether a GPU adapter exists (`powkit gpu list --json`); without one the GPU tests skip with a
/// printed reason, unless POWKIT_REQUIRE_GPU=1 (CI) makes that a failure.
#[allow(dead_code)] // each test binary uses its own subset of these helpers
pub fn have_gpu() -> bool {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_powkit"))
        .args(["gpu", "list", "--json"])
        .output()
        .expect("run powkit");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    let n = v.as_array().map_or(0, |a| a.len());
    if n == 0 {
        assert!(
            std::env::var("POWKIT_REQUIRE_GPU").map_or(true, |v| v != "1"),
            "POWKIT_REQUIRE_GPU=1 but no GPU adapter"
        );
        eprintln!("skipping: no GPU adapter (install mesa-vulkan-drivers for lavapipe)");
    }
    n > 0
}

/// A fresh, empty directory `powkit-SUITE-NAME-PID` under the system's temporary directory.
#[allow(dead_code)]
pub fn tmp_dir(suite: &str, name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("powkit-{suite}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the `powkit` binary under test with `args` and returns its output.
#[allow(dead_code)]
pub fn powkit(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_powkit")).args(args).output().expect("run powkit")
}

/// `powkit key new --out PATH`: writes a key and returns its public key (hex).
#[allow(dead_code)]
pub fn new_key(path: &std::path::Path) -> String {
    let out = powkit(&["key", "new", "--out", path.to_str().unwrap()]);
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[allow(dead_code)]
/// The built peer miners (`../shared/peers/build.sh`), or why not: skipped with a printed reason,
/// unless POWKIT_REQUIRE_PEERS=1 makes their absence a failure.
pub fn peer_miners() -> Option<[(&'static str, std::path::PathBuf); 2]> {
    let cache = std::env::var_os("POWKIT_PEERS")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cache/powkit-peers")))?;
    let bins =
        [("minerd", cache.join("pooler-cpuminer/minerd")), ("cpuminer-opt", cache.join("cpuminer-opt-26.1/cpuminer"))];
    if bins.iter().all(|(_, p)| p.is_file()) {
        return Some(bins);
    }
    assert!(
        std::env::var("POWKIT_REQUIRE_PEERS").map_or(true, |v| v != "1"),
        "POWKIT_REQUIRE_PEERS=1 but the peer miners are not built in {}",
        cache.display()
    );
    eprintln!("skipping: the peer miners are not built in {} (run ../shared/peers/build.sh)", cache.display());
    None
}
