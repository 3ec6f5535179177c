//! The integration tests of `policy-core`, in one test binary (issue 10,
//! point 6), one module per subject, all through the public API:
//!
//! - [`api`]: golden request and action vectors (`tests/vectors/`),
//!   properties of the parser and the actions, the engine seam;
//! - [`backend`]: policy and state apart, the state backend seam, `on_failure`;
//! - [`facts`]: decisions that wait for outside facts (DNSBL), the
//!   three-valued rule for unknown facts, the blocking form with a resolver;
//! - [`dns_checks`]: DNS lists (DNSBL, RHSBL) and their answers, TXT
//!   reasons, forward-confirmed reverse DNS, HELO and sender domain checks,
//!   with a fake resolver;
//! - [`greylist`]: greylist rules through the whole pipeline;
//! - [`greylist_compat`]: postgrey's sender keys and whitelist files
//!   (`tests/greylist/`);
//! - [`lang`]: the policy language: compile errors, evaluation, dry-run,
//!   explanations, warnings;
//! - [`limits`]: limit rules: compile errors, the window guarantee, threads,
//!   reloads;
//! - [`lists`]: `policy_core::list` lookups against a naive scan;
//! - [`scoring`]: score items, thresholds, the score in rules and
//!   templates, `on_unknown`, `$dnsbl_reason`;
//! - [`spf`]: the RFC 7208 SPF test suite against `policy_core::spf`;
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
mod dns_checks;
mod facts;
mod greylist;
mod greylist_compat;
mod lang;
mod limits;
mod lists;
mod one_binary;
mod scenarios;
mod scoring;
mod spf;
