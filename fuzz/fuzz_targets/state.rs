//! Arbitrary bytes as a state file (`policy_core::store::decode`/`restore`)
//! and as a limit table snapshot: never a panic, a decoded table re-encodes
//! to the same counts, a failed restore changes nothing. The invariants are
//! checked in `policy_core::fuzz_harness::decode_state`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| policy_core::fuzz_harness::decode_state(data));
