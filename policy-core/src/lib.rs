//! policy-core: the Postfix access policy engine, with no I/O.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]

pub mod action;
pub mod engine;
pub mod request;

pub use action::{Action, ActionError};
pub use engine::{Decision, Engine, Policy, Scratch, Timestamp};
pub use request::{Address, ParseError, ProtocolState, Request};
