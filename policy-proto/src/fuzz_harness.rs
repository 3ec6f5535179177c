//! Harness functions for the fuzz targets in `fuzz/`.
//!
//! Each function takes arbitrary bytes, runs the framer (and the parser and
//! the request encoder) on them, and panics if an invariant does not hold. A
//! fuzz target is one line calling one of these; a crash found by the fuzzer
//! is a broken invariant.
//!
//! Compiled only for the fuzzer (`--cfg fuzzing`, which cargo-fuzz sets) and
//! for this crate's unit tests, which keep the harnesses compiling on stable
//! and run them on every vector and on proptest's inputs: never in an
//! embedder's build.

use policy_core::Request;

use crate::encode::{encode_request, EncodeError};
use crate::frame::{FrameError, Framer, Limits};

/// Small limits, so that the fuzzer reaches every limit with short inputs.
const SMALL: Limits = Limits::new()
    .max_request_bytes(96)
    .max_line_bytes(40)
    .max_attributes(5);

/// What feeding a stream produced: the frames in order, and the error that
/// stopped it, if any.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    frames: Vec<Vec<u8>>,
    error: Option<FrameError>,
}

/// Feed `data` to a framer with `limits` in pieces of the sizes `chunks` gives
/// (cycled; all at once when empty), draining frames after each piece.
fn run(data: &[u8], limits: Limits, chunks: &[usize]) -> Outcome {
    let mut framer = Framer::new(limits);
    let mut frames = Vec::new();
    let mut rest = data;
    let mut sizes = chunks.iter().copied().cycle();
    loop {
        let n = if chunks.is_empty() {
            rest.len()
        } else {
            sizes.next().unwrap_or(1).clamp(1, rest.len().max(1))
        };
        let (piece, tail) = rest.split_at(n.min(rest.len()));
        rest = tail;
        framer.feed(piece);
        loop {
            match framer.next_frame() {
                Ok(Some(frame)) => frames.push(frame.to_vec()),
                Ok(None) => break,
                Err(error) => {
                    // Poisoned: the same error again, and input is ignored.
                    assert_eq!(framer.next_frame(), Err(error), "not poisoned");
                    framer.feed(b"a=1\n\n");
                    assert_eq!(framer.next_frame(), Err(error), "not poisoned");
                    return Outcome {
                        frames,
                        error: Some(error),
                    };
                }
            }
        }
        if rest.is_empty() {
            return Outcome {
                frames,
                error: None,
            };
        }
    }
}

/// Check the frames of `data` against the input and the limits: they are the
/// input's bytes in order, each followed by an empty line, each line within
/// the limits and well formed; and each parses (or fails) without panicking.
fn check_frames(data: &[u8], limits: Limits, outcome: &Outcome) {
    let mut offset = 0;
    for frame in &outcome.frames {
        assert!(
            data[offset..].starts_with(frame),
            "frame is not the input's next bytes"
        );
        offset += frame.len();
        let terminator = if data[offset..].starts_with(b"\n") {
            1
        } else {
            assert!(
                data[offset..].starts_with(b"\r\n"),
                "no empty line after frame"
            );
            2
        };
        offset += terminator;
        assert!(
            frame.len() + terminator <= limits.max_request_bytes,
            "frame over max_request_bytes"
        );
        assert!(
            !frame.is_empty() && frame.ends_with(b"\n"),
            "frame not whole lines"
        );
        let mut attributes = 0;
        for line in frame.split_inclusive(|&b| b == b'\n') {
            assert!(
                line.len() <= limits.max_line_bytes,
                "line over max_line_bytes"
            );
            assert!(!line.contains(&0), "NUL in a frame");
            let eq = line
                .iter()
                .position(|&b| b == b'=')
                .expect("line without =");
            assert!(eq > 0, "empty name in a frame");
            assert!(
                line[..eq].iter().all(|&b| b.is_ascii_graphic()),
                "invalid name in a frame"
            );
            attributes += 1;
        }
        assert!(attributes <= limits.max_attributes, "too many attributes");
        let _ = Request::parse(frame);
    }
    if let Some(error) = outcome.error {
        assert!(error.line() >= 1, "error without a line number");
        assert!(!error.to_string().is_empty());
    }
}

/// Feed all of `data` at once to framers with the default and with small
/// limits, drain the frames, check each against the input and the limits
/// (whole lines, in order, within every limit, well formed), parse each with
/// `policy-core`, and check that an error poisons the framer.
pub fn frame(data: &[u8]) {
    for limits in [Limits::default(), SMALL] {
        let outcome = run(data, limits, &[]);
        check_frames(data, limits, &outcome);
    }
}

/// Use the first bytes of `data` to pick the limits (first byte) and a cycle of
/// chunk sizes (the next four bytes, each 1..=64), feed the rest in those
/// chunks, and check that the frames and the final error are exactly those of
/// feeding it all at once. Then, for each frame that parses, re-encode its
/// attributes with [`encode_request`], frame and parse that again, and check
/// that the request is the same.
pub fn chunked_stream(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let limits = if pick & 1 == 0 {
        Limits::default()
    } else {
        SMALL
    };
    let (sizes, stream) = rest.split_at(rest.len().min(4));
    let chunks: Vec<usize> = sizes.iter().map(|&b| usize::from(b % 64) + 1).collect();
    let whole = run(stream, limits, &[]);
    let chunked = run(stream, limits, &chunks);
    assert_eq!(whole, chunked, "chunking changed the outcome");
    check_frames(stream, limits, &whole);
    for frame in &whole.frames {
        round_trip(frame, limits);
    }
}

/// Re-encode the attributes of `frame` (if it parses) and check that framing
/// and parsing the result gives the same request.
fn round_trip(frame: &[u8], limits: Limits) {
    let Ok(request) = Request::parse(frame) else {
        return;
    };
    let mut encoded = Vec::new();
    match encode_request(request.attributes(), &mut encoded) {
        Ok(()) => {}
        // `a=x\r\r\n`: the value is `x\r`, which no encoder can send unambiguously.
        Err(EncodeError::InvalidValue { byte: b'\r', .. }) => return,
        Err(e) => panic!("a parsed request does not encode: {e}"),
    }
    let mut framer = Framer::new(limits);
    framer.feed(&encoded);
    let again = framer
        .next_frame()
        .expect("re-encoded request frames")
        .expect("re-encoded request is complete")
        .to_vec();
    assert_eq!(
        framer.buffered_len(),
        0,
        "re-encoded request has trailing bytes"
    );
    let reparsed = Request::parse(&again).expect("re-encoded request parses");
    assert!(
        same_request(&request, &reparsed),
        "round trip changed the request:\n{request:?}\n{reparsed:?}"
    );
}

/// Whether two requests have the same attributes (ignoring the frames they
/// borrow from, which differ in CRs).
fn same_request(a: &Request<'_>, b: &Request<'_>) -> bool {
    a.attributes().eq(b.attributes())
        && a.request == b.request
        && a.protocol_state == b.protocol_state
        && a.protocol_name == b.protocol_name
        && a.helo_name == b.helo_name
        && a.queue_id == b.queue_id
        && a.sender == b.sender
        && a.recipient == b.recipient
        && a.recipient_count == b.recipient_count
        && a.client_address == b.client_address
        && a.client_name == b.client_name
        && a.client_port == b.client_port
        && a.reverse_client_name == b.reverse_client_name
        && a.instance == b.instance
        && a.sasl_method == b.sasl_method
        && a.sasl_username == b.sasl_username
        && a.sasl_sender == b.sasl_sender
        && a.size == b.size
        && a.ccert_subject == b.ccert_subject
        && a.ccert_issuer == b.ccert_issuer
        && a.ccert_fingerprint == b.ccert_fingerprint
        && a.ccert_pubkey_fingerprint == b.ccert_pubkey_fingerprint
        && a.encryption_protocol == b.encryption_protocol
        && a.encryption_cipher == b.encryption_cipher
        && a.encryption_keysize == b.encryption_keysize
        && a.etrn_domain == b.etrn_domain
        && a.stress == b.stress
        && a.policy_context == b.policy_context
        && a.server_address == b.server_address
        && a.server_port == b.server_port
        && a.compatibility_level == b.compatibility_level
        && a.mail_version == b.mail_version
        && a.tls_sni == b.tls_sni
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use proptest::prelude::*;

    use super::*;

    const REQ: &[u8] = b"request=smtpd_access_policy\r\nprotocol_state=RCPT\nsender=a@b\n\n";

    #[test]
    fn harness_accepts_valid_and_invalid_streams() {
        let inputs: &[&[u8]] = &[
            b"",
            REQ,
            b"a=1\n\nb=2\n\n",
            b"junk\n",
            b"a=1\0",
            b"\n",
            b"=x\n",
            b"a b=1\n\n",
        ];
        for input in inputs {
            frame(input);
            for pick in [0u8, 1] {
                for sizes in [[0u8, 0, 0, 0], [1, 2, 3, 4], [63, 5, 0, 9]] {
                    let data = [&[pick][..], &sizes, input].concat();
                    chunked_stream(&data);
                }
            }
        }
    }

    /// The files in `dir` ending in `.ext`, sorted.
    fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut files: Vec<PathBuf> = entries
            .map(|e| {
                e.unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                    .path()
            })
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .collect();
        files.sort();
        files
    }

    #[test]
    fn harness_holds_on_every_vector() {
        // This crate's malformed streams, and policy-core's requests (valid
        // and malformed), as they are and behind chunked_stream's settings.
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let vectors = files(&root.join("tests/vectors"), "bin")
            .into_iter()
            .chain(files(
                &root.join("../policy-core/tests/vectors/valid"),
                "req",
            ))
            .chain(files(
                &root.join("../policy-core/tests/vectors/malformed"),
                "req",
            ));
        let mut ran = 0;
        for path in vectors {
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            frame(&data);
            chunked_stream(&data);
            for settings in [[0u8, 0, 0, 0, 0], [1, 0, 6, 15, 62]] {
                chunked_stream(&[&settings[..], &data].concat());
            }
            ran += 1;
        }
        assert!(ran >= 30, "only {ran} vectors ran");
    }

    fn attribute() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
        (
            "[a-z_][a-z0-9_.-]{0,23}",
            proptest::collection::vec(
                any::<u8>().prop_filter("framable", |&b| b != b'\n' && b != 0),
                0..80,
            ),
        )
            .prop_map(|(name, mut value)| {
                // A trailing CR would read as a CRLF line end.
                while value.last() == Some(&b'\r') {
                    value.pop();
                }
                (name.into_bytes(), value)
            })
    }

    /// Several well-formed requests, encoded one after the other.
    fn stream() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(proptest::collection::vec(attribute(), 1..20), 1..6).prop_map(
            |requests| {
                let mut out = Vec::new();
                for attributes in &requests {
                    let pairs = attributes.iter().map(|(n, v)| (&n[..], &v[..]));
                    encode_request(pairs, &mut out)
                        .unwrap_or_else(|e| panic!("generated request does not encode: {e}"));
                }
                out
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn harness_holds_on_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            frame(&data);
            chunked_stream(&data);
        }

        #[test]
        fn harness_round_trips_valid_streams(
            pick in any::<u8>(),
            sizes in any::<[u8; 4]>(),
            stream in stream(),
        ) {
            frame(&stream);
            let mut data = vec![pick];
            data.extend_from_slice(&sizes);
            data.extend_from_slice(&stream);
            chunked_stream(&data);
        }
    }

    #[test]
    fn same_request_sees_differences() {
        let a = Request::parse(b"request=smtpd_access_policy\nsender=a@b\n").unwrap();
        let b = Request::parse(b"request=smtpd_access_policy\r\nsender=a@b\r\n").unwrap();
        let c = Request::parse(b"request=smtpd_access_policy\nsender=a@c\n").unwrap();
        assert!(same_request(&a, &b));
        assert!(!same_request(&a, &c));
    }
}
