//! The integration tests of `policy-proto`, in one test binary (issue 10,
//! point 6), through the public API:
//!
//! - [`api`]: framing (every prefix, every chunking, the golden malformed
//!   streams of `tests/vectors/`), replies and requests (round trips), a
//!   connection's loop without allocation (the binary's counting global
//!   allocator), properties (proptest).
//!
//! Run one module with `cargo test -p policy-proto --test policy_proto MODULE::`.

mod api;

// The one-binary guard, shared with policy-core's test binary.
#[path = "../../../policy-core/tests/policy_core/one_binary.rs"]
mod one_binary;
