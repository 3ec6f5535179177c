//! policy-proto: the Postfix SMTP access policy delegation protocol, sans-I/O.
//!
//! Postfix's smtpd asks a policy server about each SMTP command it is
//! configured to check, over a persistent connection, one request at a time
//! (Postfix's `SMTPD_POLICY_README`). A request is `name=value` lines ended by
//! an empty line; the reply is `action=<access(5) action>` and an empty line.
//! This crate turns bytes from such a connection into complete request
//! frames, and actions into reply bytes. It is what a policy server needs
//! between its socket and its policy; [`policy_core`] parses the frames and
//! decides.
//!
//! # What it does not do
//!
//! - **No sockets, no threads, no clock.** You read the bytes and hand them in
//!   ([`Framer::feed`], or [`Framer::read_from`] with any [`std::io::Read`]);
//!   you write the bytes it produces. Timeouts, connection caps and shutdown
//!   are the caller's (the `policyd` daemon does them). The one convenience
//!   that touches a stream, [`serve()`], blocks on the `Read + Write` you pass
//!   and spawns nothing.
//! - **No parsing of values.** A frame is checked for shape (limits, NUL, `=`,
//!   attribute names) and handed on as bytes; `policy_core::Request::parse`
//!   gives it meaning.
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
//!   policy_core::Request::parse (zero-copy)  ->  Engine::decide  ->  &Action
//!          │
//!          ▼
//!   encode(&Action, &mut Vec<u8>)  ->  b"action=...\n\n"  ->  socket
//! ```
//!
//! # Main types
//!
//! - [`Framer`]: bytes in, complete request frames out, without rescanning;
//!   memory bounded by [`Limits`], buffer reused (no allocation per request
//!   once grown).
//! - [`Limits`]: request bytes, line bytes and attribute count, with defaults
//!   derived from what Postfix really sends.
//! - [`FrameError`]: the precise protocol faults (line too long, NUL byte, line
//!   without `=`, ...).
//! - [`encode()`], [`encode_text_action`], [`sanitize`]: replies that can never
//!   contain a CR, a newline inside the text, or invalid UTF-8.
//! - [`encode_request`], [`reply_len`], [`decode_reply`]: the client side, for
//!   load generators, tests and embedders that ask a policy server.
//! - [`serve()`] / [`Server`]: a blocking loop serving one stream with a
//!   decision function, for embedders.
//!
//! # Example
//!
//! ```
//! use policy_core::{Action, Request};
//! use policy_proto::{encode, Framer, Limits};
//!
//! let mut framer = Framer::new(Limits::default());
//! let mut out = Vec::new();
//!
//! // Bytes arrive in arbitrary pieces.
//! framer.feed(b"request=smtpd_access_policy\nprotocol_state=RCPT\nsen");
//! assert_eq!(framer.next_frame()?, None); // not complete yet
//! framer.feed(b"der=alice@example.org\nrecipient=bob@example.net\n\n");
//!
//! while let Some(frame) = framer.next_frame()? {
//!     let request = Request::parse(frame)?;
//!     let action = if request.sender.domain_is(b"EXAMPLE.org") {
//!         Action::Dunno
//!     } else {
//!         Action::reject("5.7.1 Unknown sender")?
//!     };
//!     encode(&action, &mut out);
//! }
//! assert_eq!(out, b"action=DUNNO\n\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]

pub mod encode;
pub mod frame;
#[doc(hidden)]
pub mod fuzz_harness;
pub mod serve;

pub use encode::{
    decode_reply, encode, encode_decision, encode_request, encode_text_action, reply_len, sanitize,
    EncodeError, ReplyError, MAX_VERB_BYTES,
};
pub use frame::{FrameError, Framer, Limits, MIN_READ_BYTES, READ_CHUNK_BYTES};
pub use serve::{serve, Responder, ServeError, Server};
