//! A byte stream fed to the framer in fuzzer-chosen chunks: the frames and
//! errors are the same as when the stream is fed in one piece, and frames
//! that parse survive an encode/decode round trip.
//! The invariants are checked in `policy_proto::fuzz_harness::chunked_stream`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| policy_proto::fuzz_harness::chunked_stream(data));
