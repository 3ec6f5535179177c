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
//! [`SourceLoader`](crate::SourceLoader) and emits a flat program; the
//! evaluator runs it without allocating. This module does no I/O: list
//! files come through the [`SourceLoader`](crate::SourceLoader) the caller
//! passes in. The language reference for policy authors is
//! `docs/policy-language.md` in the repository.
//!
//! What compiling takes and gives is at the crate root, beside
//! [`Policy::compile`](crate::Policy::compile): [`SourceLoader`](crate::SourceLoader)
//! and [`NoFiles`](crate::NoFiles), [`Compiled`](crate::Compiled),
//! [`CompileErrors`](crate::CompileErrors), [`Diagnostic`](crate::Diagnostic)
//! and [`Severity`](crate::Severity). This module has the rest: the
//! language's bounds ([`MAX_POLICY_BYTES`], [`MAX_ERRORS`]...), explanations
//! ([`Explanation`]), dry-run hits ([`DryRun`]), and the defer answer of a
//! failing state backend ([`BACKEND_DEFER_ACTION`]).
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
//! [`Diagnostic`](crate::Diagnostic) names the file, line and column and shows the line with a
//! caret; errors in list files name that file.

mod ast;
mod compile;
pub(crate) mod diag;
mod eval;
mod explain;
mod outside;
mod parse;
pub(crate) mod program;
pub(crate) mod source;
mod suggest;

pub use compile::MAX_DNS_LIST_ANSWERS;
pub use compile::MAX_ERRORS;
pub use compile::MAX_REGEX_COMPILED_BYTES;
pub use compile::MAX_SCORE_ADDS;
pub use diag::MAX_COLUMN_SCAN;
pub use eval::{DryRun, DryRunHit, DryRunIter};
pub use explain::{ClauseExplanation, Explanation, RuleExplanation, RuleOutcome, TestResult};
pub use outside::MAX_FCRDNS_NAMES;
pub use parse::{MAX_NESTING, MAX_POLICY_BYTES, MAX_SCORE};
pub use program::BACKEND_DEFER_ACTION;
pub use suggest::did_you_mean;

pub(crate) use compile::compile;
pub(crate) use eval::Buffers;
pub(crate) use explain::explain;
