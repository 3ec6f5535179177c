//! Arbitrary bytes as SPF records (and other DNS answers chosen by the
//! query's name) into the RFC 7208 evaluator, round by round: it never
//! panics, ends, and replays the same. The invariants are checked in
//! `policy_core::fuzz_harness::spf_check`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| policy_core::fuzz_harness::spf_check(data));
