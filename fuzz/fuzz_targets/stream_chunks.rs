//! A byte stream fed to the framer in fuzzer-chosen chunks (the first input
//! bytes choose the limits and the chunk sizes): the frames and the final
//! error are those of feeding it in one piece, and parsed frames survive an
//! encode/frame/parse round trip. The invariants are checked in
//! `policy_proto::fuzz_harness::chunked_stream`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| policy_proto::fuzz_harness::chunked_stream(data));
