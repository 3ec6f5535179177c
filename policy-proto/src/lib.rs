//! policy-proto: the Postfix policy delegation protocol, sans-I/O.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]

pub mod encode;
pub mod frame;

pub use encode::{
    decode_reply, encode, encode_request, encode_text_action, reply_len, sanitize, EncodeError,
    ReplyError,
};
pub use frame::{FrameError, Framer, Limits, READ_CHUNK_BYTES};
