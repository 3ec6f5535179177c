//! The bottom layer: types and helpers that every other module (and the
//! framer in `policy-proto`) uses, and that use nothing else of the crate.
//!
//! - `time`: [`Timestamp`](crate::Timestamp), the caller's `now` (at the
//!   crate root);
//! - [`bytes`]: the word-at-a-time byte scanners (and the crate's FNV-1a);
//! - [`attr`]: attribute names: which bytes a name may hold, and the names
//!   this version knows.
//!
//! A module here imports nothing from the rest of the crate (the module tree
//! test in `lib.rs` checks it).

pub mod attr;
pub mod bytes;
pub(crate) mod time;
