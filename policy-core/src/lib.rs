//! `policy-core`: the Postfix SMTP access policy engine, with no I/O.
//!
//! Postfix's smtpd asks a policy server "should I accept this?" by sending a
//! request of `name=value` lines (SMTPD_POLICY_README); the server answers one
//! access(5) action. This crate is everything between those two: it parses a
//! request into a zero-copy [`Request`], decides it with a compiled
//! [`Policy`], and hands back a validated [`Action`] to send.
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
//!  frame: &[u8] ──Request::parse──▶ Request<'frame> ──Policy::decide(&req, now, &mut Scratch)──┐
//!  (from policy-proto's framer)     (borrows the frame)                                          │
//!                                                                                               ▼
//!  out: Vec<u8> ◀──Decision::write_wire── Decision<'a> { action, rule, dry_run }
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
//! - [`Policy`] (immutable, `Send + Sync`), [`Engine`] (the policy in force,
//!   replaceable at run time), [`Scratch`] (per-connection working space),
//!   [`Decision`] (the action and the rule that chose it), [`Timestamp`].
//! - [`Policy::compile`] compiles the policy language ([`lang`]): every error
//!   as a located [`Diagnostic`] in [`CompileErrors`], list files read through
//!   a [`SourceLoader`], [`Explanation`]s of decisions for people.
//! - `limit` rules count per key in [`state`]'s tables ([`Limit`],
//!   [`LimitTable`]) with exact window semantics; a [`Scratch`] remembers the
//!   message under way on its connection (for `count messages` and the
//!   counting points `at data` / `at end-of-message`).
//!   [`Policy::limit_states`] shows every limit's counters, [`Engine::replace`]
//!   keeps those of unchanged limits across a reload, and [`store`] encodes
//!   them all into one checksummed state file and restores them, all or
//!   nothing (the daemon does the file I/O).
//! - `greylist` rules keep their triplets in a [`GreylistTable`] (the same
//!   sharded tables); [`greylist`] has postgrey's sender normalisation and
//!   whitelist file formats.
//!
//! # Example
//!
//! ```
//! use policy_core::{Action, Policy, Request, Scratch, Timestamp};
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
//! let policy = Policy::always(Action::parse("REJECT 5.7.1 Not welcome here")?);
//! let mut scratch = Scratch::new();
//! let decision = policy.decide(&request, Timestamp::from_unix_millis(0), &mut scratch);
//!
//! assert_eq!(decision.action.to_string(), "REJECT 5.7.1 Not welcome here");
//! println!("action={}", decision.action);
//!
//! // What a daemon writes back (policy-proto's encoder adds `action=` and `\n\n`):
//! let mut out = Vec::with_capacity(512);
//! decision.write_wire(&mut out);
//! assert_eq!(out, b"REJECT 5.7.1 Not welcome here");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]

pub mod action;
pub mod base;
pub mod engine;
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
pub use engine::{Decision, Engine, GreylistState, LimitState, Policy, Scratch};
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
    GreyCounts, GreyVerdict, GreylistTable, HashSeeds, Key, Limit, LimitError, LimitTable, Refusal,
    SnapshotError, TopKey, Verdict, Window,
};
pub use template::{
    ActionTemplate, ActionTemplateError, Template, TemplateError, Var, WireOutcome,
};
