//! The integration tests of `policy-core`, in one test binary (issue 10,
//! point 6), one module per subject, all through the public API:
//!
//! - [`api`]: golden request and action vectors (`tests/vectors/`),
//!   properties of the parser and the actions, the engine seam;
//! - [`backend`]: policy and state apart, the state backend seam, `on_failure`;
//! - [`facts`]: decisions that wait for outside facts (DNSBL), the
//!   three-valued rule for unknown facts, the blocking form with a resolver;
//! - [`greylist`]: greylist rules through the whole pipeline;
//! - [`greylist_compat`]: postgrey's sender keys and whitelist files
//!   (`tests/greylist/`);
//! - [`lang`]: the policy language: compile errors, evaluation, dry-run,
//!   explanations, warnings;
//! - [`limits`]: limit rules: compile errors, the window guarantee, threads,
//!   reloads;
//! - [`lists`]: `policy_core::list` lookups against a naive scan;
//! - [`scenarios`]: the golden scenarios (`tests/scenarios/`) and the docs'
//!   examples;
//! - [`common`]: helpers shared by the modules (and the binary's counting
//!   global allocator).
//!
//! Run one module with `cargo test -p policy-core --test policy_core MODULE::`.
//! proptest keeps the failing cases it finds in
//! `tests/proptest-regressions/MODULE.txt` (its default,
//! `FileFailurePersistence::SourceParallel`, beside the folder holding this
//! `main.rs`) and replays them first.

mod common;

mod api;
mod backend;
mod facts;
mod greylist;
mod greylist_compat;
mod lang;
mod limits;
mod lists;
mod scenarios;

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
