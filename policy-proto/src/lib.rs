//! policy-proto: the Postfix policy delegation protocol, sans-I/O.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]

pub mod encode;
pub mod frame;

pub use encode::encode;
pub use frame::{FrameError, Framer, Limits};
