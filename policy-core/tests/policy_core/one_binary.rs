//! The guard that keeps each crate's integration tests in one binary. Also
//! a module of policy-proto's test binary (included there by path): one
//! copy for both crates.

/// One test binary per crate (issue 10, point 6). Cargo builds a test binary
/// of every `tests/*.rs` and every `tests/*/main.rs` (and of every `[[test]]`
/// in `Cargo.toml`): this folder must be the only one. A new test goes in a
/// module of this binary; data goes in a folder of `tests/` (a folder
/// without a `main.rs`), never in a file of `tests/` itself.
#[test]
fn one_test_binary_per_crate() {
    let crate_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let tests = crate_dir.join("tests");
    // The test target's crate name: this binary's folder.
    let own = env!("CARGO_CRATE_NAME");
    let mut strays = Vec::new();
    for entry in std::fs::read_dir(&tests).expect("tests/ is readable") {
        let path = entry.expect("readable directory entry").path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        if !path.is_dir() {
            strays.push(format!("tests/{name} (a file, not in a folder)"));
        } else if name != own && path.join("main.rs").exists() {
            strays.push(format!("tests/{name}/main.rs (another test binary)"));
        }
    }
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).expect("Cargo.toml");
    if manifest.lines().any(|line| line.trim() == "[[test]]") {
        strays.push("a [[test]] target in Cargo.toml".to_owned());
    }
    strays.sort();
    assert!(
        strays.is_empty(),
        "the integration tests are one binary, tests/{own}/: move these into it \
         (a module of tests/{own}/main.rs) or into a data folder:\n{}",
        strays.join("\n")
    );
}
