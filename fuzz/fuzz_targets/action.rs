//! Arbitrary text into `Action::parse`: it never panics, and an accepted
//! action's wire form is one line of UTF-8 that parses back to the same action.
//! The invariants are checked in `policy_core::fuzz_harness::parse_action`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| policy_core::fuzz_harness::parse_action(data));
