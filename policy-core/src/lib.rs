//! `policy-core`: the Postfix SMTP access policy engine, with no I/O.
//!
//! Postfix's smtpd asks a policy server "should I accept this?" by sending a
//! request of `name=value` lines (SMTPD_POLICY_README); the server answers one
//! access(5) action. This crate is everything between those two: it parses a
//! request into a zero-copy [`Request`], decides it with a compiled
//! [`Policy`] and its [`State`] held by an [`Engine`], and hands back a
//! [`Decision`]: the wire text of the action to send (templates filled in
//! for the request, sanitized) and the rule that chose it. `policy-proto`
//! writes it as the reply.
//!
//! # What it does not do
//!
//! - **No I/O**: no sockets, files, DNS, environment. Bytes come in as a
//!   complete frame (framing a byte stream is `policy-proto`'s job) and the
//!   action goes out as bytes into a buffer you own.
//! - **No clock**: time is a [`Timestamp`] argument, so a test can simulate it.
//! - **No logging**: functions return outcomes; the daemon decides what to log.
//! - **No allocation on the hot path**: parsing, deciding and writing an
//!   action's wire form into a buffer with capacity allocate nothing.
//! - **No `unsafe`**.
//!
//! # Data flow
//!
//! ```text
//!  frame: &[u8] ──Request::parse──▶ Request<'frame> ──Engine::decide(&req, now, &mut Scratch)──┐
//!  (from policy-proto's framer)     (borrows the frame)    Policy (rules) + State (tables)       │
//!                                                                                               ▼
//!  out: Vec<u8> ◀──policy_proto::encode(&decision, &mut out)── Decision<'s> { wire(), verb(), rule, dry_run }
//! ```
//!
//! # Main types (at the crate root)
//!
//! - [`Request`]: every attribute Postfix sends up to 3.12, typed where it
//!   helps ([`ProtocolState`], IP addresses, ports, numbers, [`Address`] split
//!   into local part and domain), unknown attributes kept in order.
//!   Errors: [`ParseError`]. Relaxations: [`ParseOptions`].
//! - [`Action`]: every access(5) action valid in a policy reply, validated when
//!   constructed, with a canonical wire form. Errors: [`ActionError`].
//! - [`Policy`] (immutable rules, no state; `Send + Sync`), [`State`] (the
//!   tables of its limits and greylists, behind the [`Backend`](state::Backend)
//!   seam), [`Engine`] (the policy and state in force, replaceable at run
//!   time: the one way to decide), [`Scratch`] (per-connection working
//!   space), [`Decision`] (the wire text and the rule that chose it),
//!   [`Step`] (a decision, or the outside facts it waits for), [`Timestamp`].
//! - [`Policy::compile`] compiles the policy language: every error as a
//!   located [`Diagnostic`] in [`CompileErrors`], list files read through a
//!   [`SourceLoader`] ([`NoFiles`] when there are none), the policy and its
//!   warnings in [`Compiled`].
//!
//! # Modules (the rest, each item in one place)
//!
//! - [`lang`]: the policy language's bounds, [`Explanation`](lang::Explanation)s
//!   of decisions for people, dry-run hits.
//! - [`facts`]: the outside facts a decision may wait for (DNS queries and
//!   their answers), and the [`Resolver`](facts::Resolver) trait of the
//!   blocking form.
//! - [`limits`]: `limit` rules count per key in a
//!   [`LimitTable`](limits::LimitTable) with exact window semantics
//!   ([`Limit`](limits::Limit), [`Window`](limits::Window)); a [`Scratch`]
//!   remembers the message under way on its connection (for `count
//!   messages` and the counting points `at data` / `at end-of-message`).
//!   [`State::limits`] shows every limit's counters, [`Engine::replace`]
//!   keeps those of unchanged limits across a reload, and [`store`] encodes
//!   them all into one checksummed state file and restores them, all or
//!   nothing (the daemon does the file I/O), also into a running engine
//!   ([`Engine::set_state`]).
//! - [`greylist`]: `greylist` rules keep their triplets in a
//!   [`GreylistTable`](greylist::GreylistTable) (the same sharded tables),
//!   with postgrey's sender normalisation and whitelist file formats.
//! - [`state`]: the [`Backend`](state::Backend) seam to where a [`State`]'s
//!   tables live, the in-memory [`LocalBackend`](state::LocalBackend), and
//!   what both kinds of table share (hash seeds, snapshot errors).
//! - [`store`]: the state file. [`list`]: the lists a policy looks up.
//!   [`template`]: `$variables` in reply texts. [`base`]: attribute names
//!   and byte scanners, shared with `policy-proto`'s framer.
//!
//! # Example
//!
//! ```
//! use policy_core::{Action, Engine, Policy, Request, Scratch, Timestamp};
//!
//! let frame = b"request=smtpd_access_policy\n\
//!               protocol_state=RCPT\n\
//!               client_address=192.0.2.10\n\
//!               sender=spammer@example.net\n\
//!               recipient=joe@example.com\n\
//!               \n";
//! let request = Request::parse(frame)?;
//! assert!(request.sender.domain_is(b"EXAMPLE.NET"));
//!
//! let engine = Engine::new(Policy::always(Action::parse("REJECT 5.7.1 Not welcome here")?));
//! let mut scratch = Scratch::new(); // one per connection, reused
//! let decision = engine.decide(&request, Timestamp::from_unix_millis(0), &mut scratch);
//!
//! // What to send back (policy-proto's encoder adds `action=` and `\n\n`):
//! // the wire form, templates filled in for this request.
//! assert_eq!(decision.wire(), b"REJECT 5.7.1 Not welcome here");
//! assert_eq!(decision.verb(), "REJECT");
//! assert_eq!(decision.rule, "default");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]

mod action;
pub mod base;
mod engine;
pub mod facts;
// For the fuzz targets in `fuzz/` and the unit tests only: never in an
// embedder's build.
#[cfg(any(test, fuzzing))]
#[doc(hidden)]
pub mod fuzz_harness;
pub mod greylist;
mod keyed;
pub mod lang;
pub mod limits;
pub mod list;
mod request;
pub mod spf;
pub mod state;
pub mod store;
pub mod template;

// The main types, each here only: their modules are private (or, for
// `lang` and `state`, do not export them).
pub use action::{Action, ActionError, EnhancedStatus, ReplyText, Text, MAX_TEXT_BYTES};
pub use base::time::Timestamp;
pub use engine::{BackendFailure, Compiled, Decision, Engine, Policy, Scratch, Step};
pub use lang::diag::{CompileErrors, Diagnostic, Severity};
pub use lang::source::{NoFiles, SourceLoader};
pub use request::{
    Address, Attributes, ParseError, ParseOptions, ProtocolState, Request, UnknownAttributes,
    SMTPD_ACCESS_POLICY,
};
pub use state::local::State;

/// The module graph is a tree (a DAG): no cycles between the top-level
/// modules, which keep the layers of ARCHITECTURE.md, nor between the
/// files of `state/`, `keyed/`, `limits/` and `greylist/` (issue 10).
#[cfg(test)]
mod module_graph;

#[cfg(test)]
mod module_tree {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    use crate::module_graph::{cycle, folder_graph, segments_after, top_graph, Graph};

    fn src() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
    }

    /// The top-level modules by layer, bottom first (ARCHITECTURE.md's
    /// module tree): a module uses only modules of lower layers.
    const LAYERS: &[&[&str]] = &[
        &["base"],
        &["action", "request"],
        &["list"],
        &["template"],
        &["keyed"],
        &["limits"],
        &["greylist"],
        &["state"],
        &["facts"],
        &["spf"],
        &["lang"],
        &["store"],
        &["engine"],
        &["fuzz_harness", "module_graph"],
    ];

    /// The folders whose files must form a tree too.
    const FOLDERS: &[&str] = &["state", "keyed", "limits", "greylist"];

    #[test]
    fn top_level_modules_form_a_tree() {
        let top = top_graph(&src(), "lib");
        assert!(
            top.contains_key("engine") && top.contains_key("base"),
            "{top:?}"
        );
        if let Some(cycle) = cycle(&top) {
            panic!("module cycle in policy-core: {cycle}\n(graph: {top:?})");
        }
        // The bottom layer uses nothing above it.
        assert_eq!(
            top.get("base"),
            Some(&BTreeSet::new()),
            "base must import nothing"
        );
    }

    #[test]
    fn top_level_modules_keep_their_layers() {
        let top = top_graph(&src(), "lib");
        let layer = |m: &str| LAYERS.iter().position(|l| l.contains(&m));
        for module in top.keys() {
            assert!(
                layer(module).is_some(),
                "module `{module}` is in no layer: add it to LAYERS and to ARCHITECTURE.md"
            );
        }
        for (module, uses) in &top {
            for used in uses {
                assert!(
                    layer(used) < layer(module),
                    "`{module}` uses `{used}`, which is not in a lower layer (see LAYERS)"
                );
            }
        }
    }

    #[test]
    fn folder_files_form_a_tree() {
        for folder in FOLDERS {
            let graph = folder_graph(&src(), folder);
            assert!(graph.len() > 1, "{folder}/: {graph:?}");
            if let Some(cycle) = cycle(&graph) {
                panic!("module cycle in policy-core's {folder}/: {cycle}\n(graph: {graph:?})");
            }
        }
        // The edges are seen: a feature's rule uses its table.
        let limits = folder_graph(&src(), "limits");
        assert!(limits["rule"].contains("table"), "{limits:?}");
        let greylist = folder_graph(&src(), "greylist");
        assert!(greylist["snapshot"].contains("table"), "{greylist:?}");
    }

    #[test]
    fn a_cycle_is_found_and_named() {
        let mut graph = Graph::new();
        graph.entry("a".into()).or_default().insert("b".into());
        graph.entry("b".into()).or_default().insert("c".into());
        graph.entry("c".into()).or_default().insert("b".into());
        assert_eq!(cycle(&graph).as_deref(), Some("b -> c -> b"));
        graph.entry("c".into()).or_default().clear();
        assert_eq!(cycle(&graph), None);
        assert_eq!(
            segments_after(
                "use crate::{a::X, b, c::{d, e}};\nlet x = crate::f::g(); $crate::h; x::crate::i",
                "crate::"
            ),
            ["a", "b", "c", "f"]
        );
    }
}
