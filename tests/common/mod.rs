//! Helpers shared by the integration tests.

/// Whether a GPU adapter exists (`powkit gpu list --json`); without one the GPU tests skip with a
/// printed reason, unless POWKIT_REQUIRE_GPU=1 (CI) makes that a failure.
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
