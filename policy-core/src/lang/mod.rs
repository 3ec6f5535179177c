//! The policy language: compile a policy file into a [`Policy`](crate::Policy),
//! with every error and warning located in its file, and explain decisions.
//!
//! The language itself is described in the crate's policy language reference;
//! in short:
//!
//! ```text
//! list trusted_nets cidr { 127.0.0.0/8 ::1 10.0.0.0/8 }
//! list local_domains domain file "local_domains"
//! rule trusted     { if client_address in trusted_nets then OK }
//! rule no-spoofing { if unauthenticated_local_sender local_domains
//!                    then REJECT "5.7.1 Authenticate to send as $sender" }
//! rule big dry-run { if size > 20MB and not authenticated then DEFER "4.5.3 Too big for now" }
//! default DUNNO
//! ```
//!
//! Pipeline: the parser (nom, one function per grammar rule, the rule
//! quoted in each doc comment) builds a syntax tree; the compiler resolves
//! names, checks types and actions, loads list files through a
//! [`SourceLoader`] and emits a flat program; the evaluator runs it without
//! allocating. This module does no I/O: list files come through the
//! [`SourceLoader`] the caller passes in. The language reference for policy
//! authors is `docs/policy-language.md` in the repository.
//!
//! # The compiled form
//!
//! - Fields are resolved to an enum at compile time; no name is looked up
//!   while deciding.
//! - A condition is a vector of tests, each with two jump targets (where to
//!   go when it holds and when not): `and`, `or`, `not` and parentheses
//!   become jumps, so a condition runs as a short loop with no recursion.
//!   Targets only point backwards, so a walk ends within as many steps as
//!   there are tests.
//! - Tests that cost something (list lookups, regexes, logins maps) and occur
//!   in several rules are memoized per request.
//! - Runs of rules that each require `FIELD == "constant"` on one field (the
//!   shape of per-domain rules) are indexed by the constant.
//! - Constant actions keep their wire form; templated ones are expanded into
//!   the [`Scratch`](crate::Scratch)'s buffer.
//!
//! # Errors
//!
//! Every error of the file is reported (up to [`MAX_ERRORS`]), not only the
//! first: after a syntax error the parser resumes at the next line that
//! starts an item, and the compiler checks every item it has. Each
//! [`Diagnostic`] names the file, line and column and shows the line with a
//! caret; errors in list files name that file.

mod ast;
mod compile;
mod diag;
mod eval;
mod explain;
mod parse;
pub(crate) mod program;
mod suggest;

pub use compile::MAX_ERRORS;
pub use compile::MAX_REGEX_COMPILED_BYTES;
pub use diag::{CompileErrors, Diagnostic, Severity, MAX_COLUMN_SCAN};
pub use eval::{DryRun, DryRunHit, DryRunIter};
pub use explain::{ClauseExplanation, Explanation, RuleExplanation, RuleOutcome, TestResult};
pub use parse::{MAX_NESTING, MAX_POLICY_BYTES};
pub use program::BACKEND_DEFER_ACTION;
pub use suggest::did_you_mean;

pub use crate::greylist::rule::{DEFAULT_GREYLIST_CAPACITY, MAX_GREYLIST_CAPACITY};
pub use crate::limits::{DEFAULT_LIMIT_CAPACITY, MAX_LIMIT_CAPACITY};

pub(crate) use compile::compile;
pub(crate) use eval::Buffers;
pub(crate) use explain::explain;

/// Where the compiler gets the text of the files a policy names (`list NAME
/// file "path"`, `logins NAME file "path"`).
///
/// `policy-core` does no I/O: the daemon implements this by reading `path`
/// resolved against the policy file's directory; tests use an in-memory map
/// or [`NoFiles`].
pub trait SourceLoader {
    /// The text of the file `path`, as written in the policy, or why it
    /// could not be read (`Err("no such file or directory")`): the compiler
    /// reports the reason at the `file "path"` of the policy.
    fn load(&mut self, path: &str) -> Result<String, String>;

    /// How diagnostics name the file `path` (as written in the policy): by
    /// default `path` itself; the daemon gives the resolved path, so that
    /// an error in a list file names the file to open.
    fn display_name(&self, path: &str) -> String {
        path.to_owned()
    }
}

/// A [`SourceLoader`] refusing every file: for policies without list files,
/// tests and fuzzing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFiles;

impl SourceLoader for NoFiles {
    fn load(&mut self, _path: &str) -> Result<String, String> {
        Err("files are not available here (NoFiles)".to_owned())
    }
}

/// Any closure `FnMut(&str) -> Result<String, String>` is a loader.
impl<F> SourceLoader for F
where
    F: FnMut(&str) -> Result<String, String>,
{
    fn load(&mut self, path: &str) -> Result<String, String> {
        self(path)
    }
}

/// A policy that compiled, and the warnings about it.
#[derive(Debug)]
pub struct Compiled {
    /// The compiled policy.
    pub policy: crate::Policy,
    /// Everything that compiles but probably does not do what was meant, in
    /// file order.
    pub warnings: Vec<Diagnostic>,
}
