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
    /// line, doc comments included: a doc link is not a dependency) and
    /// without its unit tests (a `#[cfg(test)]` module, at the end of the
    /// file by the crate's convention): a test may drive a module through
    /// the engine above it.
    fn code(source: &str) -> String {
        let lines: Vec<&str> = source
            .lines()
            .map(|line| line.split("//").next().unwrap_or(""))
            .collect();
        // A test module in the file (`#[cfg(test)]` then `mod x {`) ends the
        // code; a test module declared in its own file (`mod x;`) is left out.
        let mut kept = Vec::with_capacity(lines.len());
        let mut i = 0;
        while let Some(line) = lines.get(i) {
            if line.trim() == "#[cfg(test)]" {
                let next = lines.get(i + 1).map_or("", |l| l.trim());
                if next.starts_with("mod ") && next.ends_with(';') {
                    i += 2;
                    continue;
                }
                if next.starts_with("mod ") {
                    break;
                }
            }
            kept.push(*line);
            i += 1;
        }
        kept.join("\n")
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

    /// The crate's source files, sorted, and the top-level module of each
    /// (`lib` for `lib.rs`).
    fn files_by_module(src: &Path) -> Vec<(PathBuf, String)> {
        let mut files = Vec::new();
        rust_files(src, &mut files);
        files.sort();
        files
            .into_iter()
            .map(|p| {
                let first = p
                    .strip_prefix(src)
                    .ok()
                    .and_then(|r| r.iter().next())
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let module = first.trim_end_matches(".rs").to_owned();
                (p, module)
            })
            .collect()
    }

    /// The names `lib.rs` re-exports at the crate root, each with the
    /// top-level module it comes from (`Policy` -> `engine`): `crate::Policy`
    /// is a use of `engine`.
    fn root_names(src: &Path) -> BTreeMap<String, String> {
        let lib = code(&fs::read_to_string(src.join("lib.rs")).unwrap_or_default());
        let mut names = BTreeMap::new();
        for (at, _) in lib.match_indices("pub use ") {
            let statement = lib[at + "pub use ".len()..].split(';').next().unwrap_or("");
            let Some((module, rest)) = statement.trim().split_once("::") else {
                continue;
            };
            for name in rest.split(|c: char| !is_ident(c)).filter(|n| !n.is_empty()) {
                names.insert(name.to_owned(), module.trim().to_owned());
            }
        }
        names
    }

    /// The graph between top-level modules: an edge for each `crate::X`
    /// path in one module's code naming another, directly or through a
    /// name re-exported at the root.
    fn top_graph(src: &Path) -> Graph {
        let files = files_by_module(src);
        let modules: BTreeSet<&str> = files
            .iter()
            .map(|(_, m)| m.as_str())
            .filter(|m| *m != "lib")
            .collect();
        let root = root_names(src);
        let mut top = Graph::new();
        for (path, module) in &files {
            if module == "lib" {
                continue;
            }
            let source = code(&fs::read_to_string(path).unwrap_or_default());
            let edges = top.entry(module.clone()).or_default();
            for target in segments_after(&source, "crate::") {
                let target = if modules.contains(target.as_str()) {
                    target
                } else {
                    match root.get(&target) {
                        Some(module) => module.clone(),
                        None => continue,
                    }
                };
                if target != *module {
                    edges.insert(target);
                }
            }
        }
        top
    }

    /// The graph between the files of the folder module `folder` (`state`,
    /// `limits`...): an edge for each `super::X` and `crate::folder::X` path
    /// naming another file of the folder, a name re-exported by its
    /// `mod.rs` (`pub use f::{A, B}`) counting as the file it comes from.
    /// `mod.rs`, the facade, is not a node; nor are files in subfolders.
    fn folder_graph(src: &Path, folder: &str) -> Graph {
        let dir = src.join(folder);
        let facade = code(&fs::read_to_string(dir.join("mod.rs")).unwrap_or_default());
        let files: BTreeSet<String> = files_by_module(src)
            .iter()
            .filter(|(p, _)| p.parent() == Some(dir.as_path()))
            .filter_map(|(p, _)| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .filter(|s| s != "mod")
            .collect();
        // Names the facade re-exports from each file: `pub use f::{A, B}`.
        let mut reexported: BTreeMap<String, String> = BTreeMap::new();
        for statement in facade.split(';') {
            let Some(rest) = statement
                .trim()
                .strip_prefix("pub use ")
                .or_else(|| statement.trim().strip_prefix("pub(crate) use "))
            else {
                continue;
            };
            let Some((file, names)) = rest.split_once("::") else {
                continue;
            };
            if !files.contains(file.trim()) {
                continue;
            }
            for name in names
                .split(|c: char| !is_ident(c))
                .filter(|n| !n.is_empty())
            {
                reexported.insert(name.to_owned(), file.trim().to_owned());
            }
        }
        let in_folder = format!("crate::{folder}::");
        let mut graph = Graph::new();
        for file in &files {
            let source =
                code(&fs::read_to_string(dir.join(format!("{file}.rs"))).unwrap_or_default());
            let edges = graph.entry(file.clone()).or_default();
            let named = segments_after(&source, "super::")
                .into_iter()
                .chain(segments_after(&source, &in_folder));
            for name in named {
                let target = if files.contains(&name) {
                    Some(name)
                } else {
                    reexported.get(&name).cloned()
                };
                if let Some(target) = target.filter(|t| t != file) {
                    edges.insert(target);
                }
            }
        }
        graph
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
        &["lang"],
        &["store"],
        &["engine"],
        &["fuzz_harness"],
    ];

    /// The folders whose files must form a tree too.
    const FOLDERS: &[&str] = &["state", "keyed", "limits", "greylist"];

    #[test]
    fn top_level_modules_form_a_tree() {
        let top = top_graph(&src());
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
        let top = top_graph(&src());
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
