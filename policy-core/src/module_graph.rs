//! The module graph of a crate, read from its source files: the test
//! helper behind the "no module cycles" tests of policy-core (`lib.rs`) and
//! of policyd (`main.rs`, which includes this file by path). Test code only.
#![allow(dead_code)] // each crate uses the part it needs

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

pub(crate) type Graph = BTreeMap<String, BTreeSet<String>>;

pub(crate) fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
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
pub(crate) fn code(source: &str) -> String {
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

pub(crate) fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The first path segment after each `prefix` (`crate::`, `super::`)
/// in `code`; `prefix{a::b, c}` yields `a` and `c`.
pub(crate) fn segments_after(code: &str, prefix: &str) -> Vec<String> {
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
pub(crate) fn files_by_module(src: &Path) -> Vec<(PathBuf, String)> {
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
pub(crate) fn root_names(src: &Path, root: &str) -> BTreeMap<String, String> {
    let lib = code(&fs::read_to_string(src.join(format!("{root}.rs"))).unwrap_or_default());
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
pub(crate) fn top_graph(src: &Path, root: &str) -> Graph {
    let files = files_by_module(src);
    let modules: BTreeSet<&str> = files
        .iter()
        .map(|(_, m)| m.as_str())
        .filter(|m| *m != root)
        .collect();
    let names = root_names(src, root);
    let mut top = Graph::new();
    for (path, module) in &files {
        if module == root {
            continue;
        }
        let source = code(&fs::read_to_string(path).unwrap_or_default());
        let edges = top.entry(module.clone()).or_default();
        for target in segments_after(&source, "crate::") {
            let target = if modules.contains(target.as_str()) {
                target
            } else {
                match names.get(&target) {
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
pub(crate) fn folder_graph(src: &Path, folder: &str) -> Graph {
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
        let source = code(&fs::read_to_string(dir.join(format!("{file}.rs"))).unwrap_or_default());
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
pub(crate) fn cycle(graph: &Graph) -> Option<String> {
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
