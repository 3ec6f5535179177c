//! Arbitrary bytes into the framer in one piece: it never panics, every frame
//! it yields respects the limits, and the bytes it consumes add up.
//! The invariants are checked in `policy_proto::fuzz_harness::frame`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| policy_proto::fuzz_harness::frame(data));
