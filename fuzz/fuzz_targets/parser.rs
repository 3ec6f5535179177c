//! Arbitrary bytes as a complete frame into the request parser: it never
//! panics, and every field of a parsed `Request` borrows from the input.
//! The invariants are checked in `policy_core::fuzz_harness::parse_request`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| policy_core::fuzz_harness::parse_request(data));
