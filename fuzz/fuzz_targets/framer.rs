//! Arbitrary bytes fed at once to the framer (default and tiny limits): it
//! never panics, and every frame is the input's next whole, well-formed lines
//! within every limit. The invariants are checked in
//! `policy_proto::fuzz_harness::frame`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| policy_proto::fuzz_harness::frame(data));
