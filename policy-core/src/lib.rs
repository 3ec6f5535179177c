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
//! # Main types
//!
//! - [`Request`]: every attribute Postfix sends up to 3.12, typed where it
//!   helps ([`ProtocolState`], IP addresses, ports, numbers, [`Address`] split
//!   into local part and domain), unknown attributes kept in order.
//!   Errors: [`ParseError`]. Relaxations: [`ParseOptions`].
//! - [`Action`]: every access(5) action valid in a policy reply, validated when
//!   constructed, with a canonical wire form. Errors: [`ActionError`].
//! - [`Policy`] (immutable rules, no state; `Send + Sync`), [`State`] (the
//!   tables of its limits and greylists, behind the [`Backend`] seam),
//!   [`Engine`] (the policy and state in force, replaceable at run time:
//!   the one way to decide), [`Scratch`] (per-connection working space),
//!   [`Decision`] (the wire text and the rule that chose it), [`Timestamp`].
//! - [`Policy::compile`] compiles the policy language ([`lang`]): every error
//!   as a located [`Diagnostic`] in [`CompileErrors`], list files read through
//!   a [`SourceLoader`], [`Explanation`]s of decisions for people.
//! - `limit` rules count per key in [`state`]'s tables ([`Limit`],
//!   [`LimitTable`]) with exact window semantics; a [`Scratch`] remembers the
//!   message under way on its connection (for `count messages` and the
//!   counting points `at data` / `at end-of-message`).
//!   [`State::limits`] shows every limit's counters, [`Engine::replace`]
//!   keeps those of unchanged limits across a reload, and [`store`] encodes
//!   them all into one checksummed state file and restores them, all or
//!   nothing (the daemon does the file I/O), also into a running engine
//!   ([`Engine::set_state`]).
//! - `greylist` rules keep their triplets in a [`GreylistTable`] (the same
//!   sharded tables); [`greylist`] has postgrey's sender normalisation and
//!   whitelist file formats.
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

pub mod action;
pub mod base;
pub mod engine;
pub mod facts;
// For the fuzz targets in `fuzz/` and the unit tests only: never in an
// embedder's build.
#[cfg(any(test, fuzzing))]
#[doc(hidden)]
pub mod fuzz_harness;
pub mod greylist;
pub mod lang;
pub mod list;
pub mod request;
pub mod state;
pub mod store;
pub mod template;

pub use action::{Action, ActionError, EnhancedStatus, ReplyText, Text, MAX_TEXT_BYTES};
pub use base::time::Timestamp;
pub use engine::{BackendFailure, Decision, Engine, Policy, Scratch, Step};
pub use facts::{Answer, FactId, Facts, Query, QueryKind, Resolver};
pub use lang::{
    CompileErrors, Compiled, Diagnostic, DryRun, DryRunHit, Explanation, NoFiles, Severity,
    SourceLoader,
};
pub use list::{
    EntryError, EntryToken, FileEntryError, KindSet, List, ListBuilder, ListKind, LoginMap, Lookup,
};
pub use request::{
    Address, Attributes, ParseError, ParseOptions, ProtocolState, Request, UnknownAttributes,
    KNOWN_ATTRIBUTES,
};
pub use state::{
    Backend, BackendError, GreyCounts, GreyVerdict, GreylistState, GreylistTable, HashSeeds, Key,
    Limit, LimitError, LimitState, LimitTable, LocalBackend, OnFailure, Refusal, SnapshotError,
    State, TopKey, Verdict, Window,
};
pub use template::{
    ActionTemplate, ActionTemplateError, Template, TemplateError, Var, WireOutcome,
};

/// The module graph is a tree (a DAG): no cycles between the top-level
/// modules, nor between the files of `state/` (ARCHITECTURE.md, issue 10).
#[cfg(test)]
mod module_tree {
    use std::collections::{BTreeMap, BTreeSet};
    use std::fs;
    use std::path::{Path, PathBuf};

    type Graph = BTreeMap<String, BTreeSet<String>>;

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|x| x == "rs") {
                out.push(path);
            }
        }
    }

    /// The code of `source` without its comments (`//` to the end of the
    /// line, doc comments included: a doc link is not a dependency).
    fn code(source: &str) -> String {
        source
            .lines()
            .map(|line| line.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn is_ident(c: char) -> bool {
        c.is_ascii_alphanumeric() || c == '_'
    }

    /// The first path segment after each `prefix` (`crate::`, `super::`)
    /// in `code`; `prefix{a::b, c}` yields `a` and `c`.
    fn segments_after(code: &str, prefix: &str) -> Vec<String> {
        let mut found = Vec::new();
        for (at, _) in code.match_indices(prefix) {
            if code[..at]
                .chars()
                .next_back()
                .is_some_and(|c| is_ident(c) || c == '$' || c == ':')
            {
                continue;
            }
            let rest = code[at + prefix.len()..].trim_start();
            if let Some(group) = rest.strip_prefix('{') {
                // Split the group's top level at commas.
                let mut depth = 0;
                let mut item = String::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            found.push(std::mem::take(&mut item));
                            continue;
                        }
                        _ => {}
                    }
                    item.push(c);
                }
                found.push(item);
            } else {
                found.push(rest.to_owned());
            }
        }
        found
            .iter()
            .map(|s| {
                s.trim_start()
                    .chars()
                    .take_while(|&c| is_ident(c))
                    .collect()
            })
            .filter(|s: &String| !s.is_empty())
            .collect()
    }

    /// The graph between top-level modules (edges from `crate::X` paths),
    /// and the graph between the files of `state/` (edges from `super::X`
    /// and `crate::state::X`, a name re-exported by `state/mod.rs` counting
    /// as the file it comes from; `mod.rs`, the facade, is not a node).
    fn graphs(src: &Path) -> (Graph, Graph) {
        let mut files = Vec::new();
        rust_files(src, &mut files);
        files.sort();
        let rel = |p: &Path| {
            p.strip_prefix(src)
                .map(Path::to_path_buf)
                .unwrap_or_default()
        };
        let top_of = |p: &Path| {
            let first = rel(p)
                .iter()
                .next()
                .map(|s| s.to_string_lossy().into_owned());
            first.unwrap_or_default().trim_end_matches(".rs").to_owned()
        };
        let modules: BTreeSet<String> = files
            .iter()
            .map(|p| top_of(p))
            .filter(|m| m != "lib")
            .collect();

        let state_dir = src.join("state");
        let state_mod = code(&fs::read_to_string(state_dir.join("mod.rs")).unwrap_or_default());
        let state_files: BTreeSet<String> = files
            .iter()
            .filter(|p| p.parent() == Some(state_dir.as_path()))
            .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .filter(|s| s != "mod")
            .collect();
        // Names `state/mod.rs` re-exports from each file: `pub use f::{A, B}`.
        let mut reexported: BTreeMap<String, String> = BTreeMap::new();
        for statement in state_mod.split(';') {
            let Some(rest) = statement.trim().strip_prefix("pub use ") else {
                continue;
            };
            let Some((file, names)) = rest.split_once("::") else {
                continue;
            };
            for name in names
                .split(|c: char| !is_ident(c))
                .filter(|n| !n.is_empty())
            {
                reexported.insert(name.to_owned(), file.trim().to_owned());
            }
        }

        let mut top = Graph::new();
        let mut state = Graph::new();
        for path in &files {
            let module = top_of(path);
            if module == "lib" {
                continue;
            }
            let source = code(&fs::read_to_string(path).unwrap_or_default());
            let edges = top.entry(module.clone()).or_default();
            for target in segments_after(&source, "crate::") {
                if target != module && modules.contains(&target) {
                    edges.insert(target);
                }
            }
            if path.parent() != Some(state_dir.as_path()) {
                continue;
            }
            let Some(file) = path.file_stem().map(|s| s.to_string_lossy().into_owned()) else {
                continue;
            };
            if file == "mod" {
                continue;
            }
            let edges = state.entry(file.clone()).or_default();
            let named = segments_after(&source, "super::")
                .into_iter()
                .chain(segments_after(&source, "crate::state::"));
            for name in named {
                let target = if state_files.contains(&name) {
                    Some(name)
                } else {
                    reexported.get(&name).cloned()
                };
                if let Some(target) = target.filter(|t| *t != file) {
                    edges.insert(target);
                }
            }
        }
        (top, state)
    }

    /// A cycle in `graph`, as the path `a -> b -> a`, if there is one.
    fn cycle(graph: &Graph) -> Option<String> {
        fn visit<'g>(
            node: &'g str,
            graph: &'g Graph,
            path: &mut Vec<&'g str>,
            done: &mut BTreeSet<&'g str>,
        ) -> Option<String> {
            if let Some(at) = path.iter().position(|&n| n == node) {
                let mut cycle = path[at..].to_vec();
                cycle.push(node);
                return Some(cycle.join(" -> "));
            }
            if !done.insert(node) {
                return None;
            }
            path.push(node);
            for next in graph.get(node).into_iter().flatten() {
                if let Some(found) = visit(next, graph, path, done) {
                    return Some(found);
                }
            }
            path.pop();
            None
        }
        let mut done = BTreeSet::new();
        graph
            .keys()
            .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
    }

    fn src() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
    }

    #[test]
    fn top_level_modules_form_a_tree() {
        let (top, _) = graphs(&src());
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
    fn state_files_form_a_tree() {
        let (_, state) = graphs(&src());
        assert!(
            state.contains_key("shard") && state.contains_key("table"),
            "{state:?}"
        );
        if let Some(cycle) = cycle(&state) {
            panic!("module cycle in policy-core's state/: {cycle}\n(graph: {state:?})");
        }
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
