//! policy-proto: the Postfix SMTP access policy delegation protocol, sans-I/O.
//!
//! Postfix's smtpd asks a policy server about each SMTP command it is
//! configured to check, over a persistent connection, one request at a time
//! (Postfix's `SMTPD_POLICY_README`). A request is `name=value` lines ended by
//! an empty line; the reply is `action=<access(5) action>` and an empty line.
//! This crate turns bytes from such a connection into complete request
//! frames, and decisions into reply bytes. It is what a policy server needs
//! between its socket and its policy; [`policy_core`] parses the frames and
//! decides.
//!
//! # What it does not do
//!
//! - **No sockets, no threads, no clock, no server loop.** You read the bytes
//!   and hand them in ([`Framer::feed`], or [`Framer::read_from`] with any
//!   [`std::io::Read`]); you write the bytes it produces. Timeouts,
//!   connection caps and shutdown are the caller's (the `policyd` daemon does
//!   them).
//! - **No parsing of values.** A frame is checked for shape (limits, NUL, `=`,
//!   attribute names) and handed on as bytes; `policy_core::Request::parse`
//!   gives it meaning.
//! - **No sanitizing.** The reply's text comes sanitized from policy-core
//!   ([`policy_core::Decision::wire`]); the encoder only keeps a CR or LF from
//!   breaking the protocol.
//! - **No logging.** Faults come back as small `Copy` errors that say what was
//!   expected and on which line; the caller decides what to log.
//!
//! # Data flow
//!
//! ```text
//!   socket bytes, any chunking
//!          │  Framer::feed / Framer::read_from
//!          ▼
//!   ┌──────────────┐  limits checked as bytes arrive;
//!   │    Framer    │  FrameError on a fault (then poisoned)
//!   └──────────────┘
//!          │  Framer::next_frame -> Ok(Some(&[u8]))  (one request's lines)
//!          ▼
//!   policy_core::Request::parse (zero-copy)  ->  Engine::decide  ->  Decision
//!          │
//!          ▼
//!   encode(&decision, &mut Vec<u8>)  ->  b"action=<decision.wire()>\n\n"  ->  socket
//! ```
//!
//! # Main types
//!
//! Every public item is at the crate root, and only there (the modules are
//! private).
//!
//! - [`Framer`]: bytes in, complete request frames out, without rescanning;
//!   memory bounded by [`Limits`], buffer reused (no allocation per request
//!   once grown).
//! - [`Limits`]: request bytes, line bytes and attribute count, with defaults
//!   derived from what Postfix really sends.
//! - [`FrameError`]: the precise protocol faults (line too long, NUL byte, line
//!   without `=`, ...).
//! - [`encode()`]: the one reply encoder, for a [`policy_core::Decision`].
//!   To answer a fixed action without a policy file, decide with
//!   [`policy_core::Policy::always`].
//! - [`encode_request`], [`reply_len`], [`decode_reply`]: the client side, for
//!   load generators, tests and embedders that ask a policy server.
//!
//! # Example
//!
//! A connection's loop, minus the socket: bytes in, replies out.
//!
//! ```
//! use policy_core::{Engine, NoFiles, Policy, Request, Scratch, Timestamp};
//! use policy_proto::{encode, Framer, Limits};
//!
//! let policy = Policy::compile(
//!     "example.conf",
//!     r#"rule strangers { unless sender_domain == "example.org" then REJECT "5.7.1 Unknown sender $sender" }"#,
//!     &mut NoFiles,
//! )?
//! .policy;
//! let engine = Engine::new(policy); // the policy in force and its state
//! let mut framer = Framer::new(Limits::default());
//! let mut scratch = Scratch::new(); // one per connection, reused
//! let mut out = Vec::new();
//!
//! // Bytes arrive in arbitrary pieces.
//! framer.feed(b"request=smtpd_access_policy\nprotocol_state=RCPT\nsen");
//! assert_eq!(framer.next_frame()?, None); // not complete yet
//! framer.feed(b"der=alice@EXAMPLE.org\nrecipient=bob@example.net\n\n");
//! framer.feed(b"request=smtpd_access_policy\nprotocol_state=RCPT\nsender=eve@example.net\n\n");
//!
//! while let Some(frame) = framer.next_frame()? {
//!     let request = Request::parse(frame)?;
//!     let decision = engine.decide(&request, Timestamp::from_unix_millis(0), &mut scratch);
//!     encode(&decision, &mut out);
//! }
//! assert_eq!(
//!     out,
//!     b"action=DUNNO\n\naction=REJECT 5.7.1 Unknown sender eve@example.net\n\n"
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]

mod encode;
mod frame;
// For the fuzz targets in `fuzz/` and the unit tests only: never in an
// embedder's build.
#[cfg(any(test, fuzzing))]
#[doc(hidden)]
pub mod fuzz_harness;

pub use encode::{decode_reply, encode, encode_request, reply_len, EncodeError, ReplyError};
pub use frame::{FrameError, Framer, Limits, MIN_READ_BYTES, READ_CHUNK_BYTES};
