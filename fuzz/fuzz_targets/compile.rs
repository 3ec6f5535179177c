//! Arbitrary bytes as a policy file into `Policy::compile`: it never panics,
//! finishes in bounded time whatever the input, and every diagnostic points
//! into the source. The invariants are checked in
//! `policy_core::fuzz_harness::compile_policy`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| policy_core::fuzz_harness::compile_policy(data));
