//! Public-API tests of policy-proto: framing (every prefix, every chunking,
//! golden vectors on disk), replies and requests (round trips), a
//! connection's loop (with a counting allocator proving that framing,
//! deciding and encoding allocate nothing per request), and properties
//! (proptest).
#![allow(unsafe_code)] // the counting global allocator below; the library stays unsafe-free

use std::path::{Path, PathBuf};

use policy_core::{Action, Engine, NoFiles, Policy, Request, Scratch, Timestamp};
use policy_proto::{
    decode_reply, encode, encode_request, reply_len, FrameError, Framer, Limits, ReplyError,
};

/// Counts the heap operations (allocations, reallocations, deallocations) of
/// each thread.
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        // `const` initialisation: reading it never allocates, so the allocator
        // may consult it.
        static HEAP_OPERATIONS: Cell<u64> = const { Cell::new(0) };
    }

    fn count() {
        let _ = HEAP_OPERATIONS.try_with(|n| n.set(n.get() + 1));
    }

    /// Heap operations performed by the current thread so far.
    pub(crate) fn heap_operations() -> u64 {
        HEAP_OPERATIONS.try_with(Cell::get).unwrap_or(0)
    }

    pub(crate) struct Counting;

    // SAFETY: every method forwards to `System` with the caller's arguments
    // unchanged; counting only touches a const thread-local.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            count();
            System.alloc(layout)
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            count();
            System.alloc_zeroed(layout)
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            count();
            System.realloc(ptr, layout, new_size)
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            count();
            System.dealloc(ptr, layout);
        }
    }
}

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

/// What a stream produced: its frames, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    frames: Vec<Vec<u8>>,
    end: End,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// Everything consumed, nothing pending.
    Clean,
    /// No error, but this many bytes of an unfinished request are buffered.
    Incomplete(usize),
    /// The stream is faulty.
    Error(FrameError),
}

/// Feed `data` to `framer` in pieces of `chunk` bytes (0: all at once),
/// draining frames after each piece.
fn feed(mut framer: Framer, data: &[u8], chunk: usize) -> Outcome {
    let chunk = if chunk == 0 { data.len().max(1) } else { chunk };
    let mut frames = Vec::new();
    for piece in data.chunks(chunk) {
        framer.feed(piece);
        loop {
            match framer.next_frame() {
                Ok(Some(frame)) => frames.push(frame.to_vec()),
                Ok(None) => break,
                Err(e) => {
                    return Outcome {
                        frames,
                        end: End::Error(e),
                    }
                }
            }
        }
    }
    let end = if framer.is_mid_request() {
        End::Incomplete(framer.buffered_len())
    } else {
        End::Clean
    };
    Outcome { frames, end }
}

fn frames_of(data: &[u8]) -> Outcome {
    feed(Framer::default(), data, 0)
}

/// The files in `dir` ending in `.ext`, sorted.
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// policy-core's golden requests (complete, valid), with their file names.
fn valid_requests() -> Vec<(String, Vec<u8>)> {
    let dir = manifest_dir().join("../policy-core/tests/vectors/valid");
    files(&dir, "req")
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("readable vector"))
        })
        .collect()
}

/// A few requests as Postfix sends them, for when the vectors are absent.
const BUILT_IN: &[&[u8]] = &[
    b"request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nhelo_name=mail.example.org\nqueue_id=\nsender=alice@example.org\nrecipient=bob@example.net\nrecipient_count=0\nclient_address=192.0.2.17\nclient_name=mail.example.org\nclient_port=51234\nreverse_client_name=mail.example.org\ninstance=1a2b.5f3c4d5e.6f7a8.0\nsize=12345\n\n",
    b"request=smtpd_access_policy\r\nprotocol_state=RCPT\r\nsender=me@example.org\r\nrecipient=you@example.com\r\n\r\n",
    b"request=smtpd_access_policy\nprotocol_state=END-OF-MESSAGE\nqueue_id=4XyZ1k2Lmnz\nrecipient_count=3\nsize=40960\nx_unknown=\xe9t\xe9\n\n",
];

/// A stream of several requests: policy-core's vectors, or the built-in ones.
fn stream() -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut requests: Vec<Vec<u8>> = valid_requests().into_iter().map(|(_, r)| r).collect();
    requests.extend(BUILT_IN.iter().map(|r| r.to_vec()));
    let frames = requests
        .iter()
        .map(|r| strip_terminator(r).to_vec())
        .collect();
    (requests.concat(), frames)
}

/// A request without its terminating empty line: the frame the framer yields.
fn strip_terminator(request: &[u8]) -> &[u8] {
    request
        .strip_suffix(b"\r\n")
        .or_else(|| request.strip_suffix(b"\n"))
        .expect("request ends with an empty line")
}

/// The reply `policy` gives to `frame`, encoded.
fn reply(policy: &Policy, frame: &[u8]) -> Vec<u8> {
    let request = Request::parse(frame).unwrap_or_else(|e| panic!("{frame:?}: {e}"));
    let mut scratch = Scratch::new();
    let engine = Engine::new(policy.clone());
    let decision = engine.decide(&request, Timestamp::from_unix_millis(0), &mut scratch);
    let mut out = Vec::new();
    encode(&decision, &mut out);
    out
}

/// The reply to a fixed `action`: how an embedder answers without a policy
/// file.
fn reply_of(action: &Action) -> Vec<u8> {
    reply(
        &Policy::always(action.clone()),
        b"request=smtpd_access_policy\n\n",
    )
}

/// A policy answering `REJECT "5.7.1 <template>"` to every request.
fn rejecting(template: &str) -> Policy {
    let source = format!("rule r {{ then REJECT \"5.7.1 {template}\" }}");
    Policy::compile("p", &source, &mut NoFiles)
        .unwrap_or_else(|e| panic!("{e}"))
        .policy
}

mod framing {
    use super::*;

    #[test]
    fn every_prefix_yields_the_frames_so_far_and_never_an_error() {
        let (data, frames) = stream();
        // Where each request ends in the stream.
        let mut ends = Vec::new();
        let mut at = 0;
        for frame in &frames {
            at += frame.len();
            at += if data[at..].starts_with(b"\r\n") {
                2
            } else {
                1
            };
            ends.push(at);
        }
        assert_eq!(at, data.len());
        for prefix in 0..=data.len() {
            let mut framer = Framer::default();
            framer.feed(&data[..prefix]);
            let complete = ends.iter().filter(|&&end| end <= prefix).count();
            for (i, frame) in frames.iter().enumerate().take(complete) {
                let got = framer.next_frame();
                assert_eq!(got, Ok(Some(&frame[..])), "prefix {prefix}, frame {i}");
            }
            assert_eq!(framer.next_frame(), Ok(None), "prefix {prefix}");
            let done = if complete == 0 { 0 } else { ends[complete - 1] };
            assert_eq!(framer.buffered_len(), prefix - done, "prefix {prefix}");
            assert_eq!(framer.is_mid_request(), prefix > done, "prefix {prefix}");
            // The rest completes the stream.
            framer.feed(&data[prefix..]);
            for (i, frame) in frames.iter().enumerate().skip(complete) {
                let got = framer.next_frame();
                assert_eq!(got, Ok(Some(&frame[..])), "prefix {prefix}, rest frame {i}");
            }
            assert_eq!(framer.next_frame(), Ok(None), "prefix {prefix}, rest");
            assert!(!framer.is_mid_request());
        }
    }

    #[test]
    fn policy_core_vectors_frame_whole_and_in_every_small_chunking() {
        let vectors = valid_requests();
        if vectors.is_empty() {
            eprintln!("policy-core vectors not found: SKIPPED");
            return;
        }
        for (name, request) in &vectors {
            let want = Outcome {
                frames: vec![strip_terminator(request).to_vec()],
                end: End::Clean,
            };
            for chunk in 0..=7 {
                assert_eq!(
                    feed(Framer::default(), request, chunk),
                    want,
                    "{name}, chunk {chunk}"
                );
            }
            let frame = strip_terminator(request);
            if let Err(e) = Request::parse(frame) {
                panic!("{name}: frame does not parse: {e}");
            }
        }
        // All of them back to back on one connection.
        let all: Vec<u8> = vectors.iter().flat_map(|(_, r)| r.clone()).collect();
        let got = frames_of(&all);
        assert_eq!(got.frames.len(), vectors.len());
        assert_eq!(got.end, End::Clean);
    }

    /// `tests/vectors/NAME.bin` framed with the default limits gives the
    /// outcome written in `NAME.expected`: `frames N` then `error <Debug>` or
    /// `incomplete <bytes>` or `clean`. `POLICY_PROTO_BLESS=1` rewrites them.
    #[test]
    fn golden_malformed_streams() {
        let dir = manifest_dir().join("tests/vectors");
        let bless = std::env::var_os("POLICY_PROTO_BLESS").is_some();
        let mut ran = 0;
        for bin in files(&dir, "bin") {
            let data = std::fs::read(&bin).expect("readable vector");
            let outcome = frames_of(&data);
            let described = format!(
                "frames {}\n{}\n",
                outcome.frames.len(),
                match outcome.end {
                    End::Clean => "clean".to_owned(),
                    End::Incomplete(n) => format!("incomplete {n}"),
                    End::Error(e) => format!("error {e:?}"),
                }
            );
            let expected = bin.with_extension("expected");
            if bless {
                std::fs::write(&expected, &described).expect("writable");
            }
            let want = std::fs::read_to_string(&expected)
                .unwrap_or_else(|e| panic!("{}: {e}", expected.display()));
            assert_eq!(described, want, "{}", bin.display());
            // The same outcome in every small chunking.
            for chunk in 1..=7 {
                assert_eq!(
                    feed(Framer::default(), &data, chunk),
                    outcome,
                    "{}, chunk {chunk}",
                    bin.display()
                );
            }
            ran += 1;
        }
        assert!(ran >= 10, "only {ran} malformed vectors ran");
    }

    #[test]
    fn one_vector_per_error_variant() {
        let dir = manifest_dir().join("tests/vectors");
        let mut seen = std::collections::BTreeSet::new();
        for bin in files(&dir, "bin") {
            if let End::Error(e) = frames_of(&std::fs::read(&bin).unwrap()).end {
                seen.insert(e.kind());
            }
        }
        for kind in [
            "line_too_long",
            "request_too_large",
            "too_many_attributes",
            "nul_byte",
            "missing_equals",
            "empty_name",
            "invalid_name",
            "empty_request",
        ] {
            assert!(seen.contains(kind), "no vector for {kind}");
        }
    }

    #[test]
    fn limits_are_configurable_and_exact() {
        // A 100-byte line and a 200-byte request of 3 attributes: exactly at
        // the limits.
        let mut request = format!("a={}\n", "v".repeat(97));
        request.push_str(&format!("b={}\n", "w".repeat(57)));
        request.push_str(&format!("c={}\n", "x".repeat(36)));
        request.push('\n');
        assert_eq!(request.len(), 200);
        let limits = Limits::default()
            .max_line_bytes(100)
            .max_request_bytes(200)
            .max_attributes(3);
        let got = feed(Framer::new(limits), request.as_bytes(), 0);
        assert_eq!(got.end, End::Clean);
        assert_eq!(got.frames.len(), 1);
        for (limits, want) in [
            (
                limits.max_line_bytes(99),
                FrameError::LineTooLong { limit: 99, line: 1 },
            ),
            (
                limits.max_request_bytes(199),
                FrameError::RequestTooLarge {
                    limit: 199,
                    line: 4,
                },
            ),
            (
                limits.max_attributes(2),
                FrameError::TooManyAttributes { limit: 2, line: 3 },
            ),
        ] {
            for chunk in [0, 1, 3] {
                let got = feed(Framer::new(limits), request.as_bytes(), chunk);
                assert_eq!(got.end, End::Error(want), "{limits:?} chunk {chunk}");
            }
        }
        assert_eq!(Limits::default(), Limits::new());
        assert_eq!(
            Limits::default().max_request_bytes,
            Limits::DEFAULT_MAX_REQUEST_BYTES
        );
    }

    #[test]
    fn memory_stays_bounded_under_an_endless_line() {
        let limits = Limits::default();
        let mut framer = Framer::new(limits);
        framer.feed(b"request=");
        let chunk = [b'x'; 1000];
        let mut fed = 8;
        let error = loop {
            framer.feed(&chunk);
            fed += chunk.len();
            match framer.next_frame() {
                Ok(None) => assert!(framer.buffered_len() <= limits.max_line_bytes + chunk.len()),
                Ok(Some(_)) => panic!("a frame from an endless line"),
                Err(e) => break e,
            }
        };
        assert_eq!(
            error,
            FrameError::LineTooLong {
                limit: limits.max_line_bytes,
                line: 1
            }
        );
        assert!(fed <= limits.max_line_bytes + chunk.len());
        // Poisoned: further input is dropped, not buffered.
        let before = framer.buffered_len();
        framer.feed(&chunk);
        assert_eq!(framer.buffered_len(), before);
    }

    #[test]
    fn empty_lines_policy() {
        let data = b"\na=1\n\n\n";
        assert_eq!(
            frames_of(data).end,
            End::Error(FrameError::EmptyRequest { line: 1 })
        );
        let relaxed = feed(Framer::default().allow_empty_lines(true), data, 0);
        assert_eq!(relaxed.frames, vec![b"a=1\n".to_vec()]);
        assert_eq!(relaxed.end, End::Clean);
    }

    #[test]
    fn read_from_any_reader_in_any_chunking() {
        struct Trickle<'a>(&'a [u8], usize);
        impl std::io::Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(buf.len()).min(self.1);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let (data, frames) = stream();
        for step in [1, 5, 64, 100_000] {
            let mut framer = Framer::default();
            let mut reader = Trickle(&data, step);
            let mut got = Vec::new();
            while framer.read_from(&mut reader).expect("in-memory read") > 0 {
                while let Some(frame) = framer.next_frame().expect("valid stream") {
                    got.push(frame.to_vec());
                }
            }
            assert_eq!(got, frames, "step {step}");
        }
    }

    #[test]
    fn error_display_names_what_was_expected() {
        let rows = [
            (FrameError::LineTooLong { limit: 7, line: 3 }, "line 3: line too long: expected at most 7 bytes up to its newline"),
            (FrameError::RequestTooLarge { limit: 9, line: 1 }, "line 1: request too large: expected at most 9 bytes up to its empty line"),
            (FrameError::TooManyAttributes { limit: 2, line: 3 }, "line 3: too many attributes: expected at most 2 per request"),
            (FrameError::NulByte { line: 4 }, "line 4: NUL byte: expected text lines"),
            (FrameError::MissingEquals { line: 5 }, "line 5: expected `name=value`, found no `=`"),
            (FrameError::EmptyName { line: 6 }, "line 6: expected an attribute name before `=`"),
            (FrameError::InvalidName { byte: b' ', line: 7 }, "line 7: invalid byte 0x20 in attribute name: expected a letter, digit, `_`, `-` or `.`"),
            (FrameError::EmptyRequest { line: 8 }, "line 8: empty request: expected at least one `name=value` line before the empty line"),
        ];
        for (error, text) in rows {
            assert_eq!(error.to_string(), text);
            assert!(text.starts_with(&format!("line {}:", error.line())));
        }
    }
}

mod replies {
    use super::*;

    fn actions() -> Vec<Action> {
        let mut actions = vec![Action::Ok, Action::Dunno];
        for s in [
            "REJECT",
            "REJECT 5.7.1 Authenticate to send as alice@example.org",
            "DEFER 4.7.1 Rate limit reached, try again in 300 seconds",
            "DEFER_IF_REJECT",
            "DEFER_IF_PERMIT 4.7.1 Greylisted",
            "550 5.7.1 No thanks",
            "450 Try later",
            "HOLD",
            "DISCARD spam",
            "FILTER smtp:[127.0.0.1]:10025",
            "PREPEND X-Policy: checked",
            "REDIRECT abuse@example.org",
            "BCC archive@example.org",
            "WARN suspicious client",
            "INFO rate 12/min",
            "REJECT Caf\u{e9} ferm\u{e9}",
        ] {
            actions.push(Action::parse(s).unwrap_or_else(|e| panic!("{s}: {e}")));
        }
        actions
    }

    #[test]
    fn encode_then_decode_gives_the_same_action() {
        for action in actions() {
            let out = reply_of(&action);
            assert!(out.starts_with(b"action=") && out.ends_with(b"\n\n"));
            assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 2, "{action}");
            assert!(!out.contains(&b'\r'));
            assert!(std::str::from_utf8(&out).is_ok());
            assert_eq!(reply_len(&out), Some(out.len()));
            assert_eq!(decode_reply(&out), Ok(action.clone()), "{action}");
        }
    }

    #[test]
    fn only_the_first_action_counts_and_others_are_ignored() {
        let reply = b"foo=bar\naction=REJECT no\naction=OK\nbaz=\n\n";
        assert_eq!(decode_reply(reply), Ok(Action::parse("REJECT no").unwrap()));
        assert!(matches!(
            decode_reply(b"action=NOT_A_VERB\n\n"),
            Err(ReplyError::Action(_))
        ));
    }

    #[test]
    fn replies_from_hostile_client_text_decode_as_valid_actions() {
        let policy = rejecting("Go away $sender");
        let long = [&b"sender="[..], &[b'A'; 2000]].concat();
        let hostile: &[&[u8]] = &[
            b"sender=<evil\r@example.org>\raction=OK\r",
            b"sender=\xff\xfe bad bytes \x01 and SOH",
            b"sender=\x1b[31m terminal escape \x7f",
            &long,
        ];
        for attribute in hostile {
            let frame = [&b"request=smtpd_access_policy\n"[..], attribute, b"\n\n"].concat();
            let out = reply(&policy, &frame);
            assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 2);
            assert!(!out.contains(&b'\r'));
            let s = std::str::from_utf8(&out).expect("valid UTF-8");
            assert!(!s[..s.len() - 2].chars().any(char::is_control), "{s:?}");
            match decode_reply(&out) {
                Ok(Action::Reject(_)) => {}
                other => panic!("{s:?} decodes as {other:?}"),
            }
        }
    }
}

mod requests {
    use super::*;

    #[test]
    fn encoded_requests_frame_and_parse_back() {
        let attributes: &[(&[u8], &[u8])] = &[
            (b"request", b"smtpd_access_policy"),
            (b"protocol_state", b"RCPT"),
            (b"sender", b"alice@Example.ORG"),
            (b"recipient", b"bob@example.net"),
            (b"client_address", b"2001:db8::1"),
            (b"size", b"1024"),
            (b"x_other", b"\xe9t\xe9 with = and \r inside"),
        ];
        let mut out = Vec::new();
        encode_request(attributes.iter().copied(), &mut out).expect("encodable");
        let mut framer = Framer::default();
        framer.feed(&out);
        let frame = framer.next_frame().expect("frames").expect("complete");
        let request = Request::parse(frame).expect("parses");
        assert!(request.sender.domain_is(b"example.org"));
        assert_eq!(request.size, Some(1024));
        assert_eq!(request.client_address, Some("2001:db8::1".parse().unwrap()));
        let back: Vec<(&[u8], &[u8])> = request.attributes().collect();
        assert_eq!(back, attributes);
    }
}

mod allocation {
    use super::*;

    fn request(sender: &str) -> Vec<u8> {
        let mut out = Vec::new();
        encode_request(
            [
                (&b"request"[..], &b"smtpd_access_policy"[..]),
                (b"protocol_state", b"RCPT"),
                (b"sender", sender.as_bytes()),
            ],
            &mut out,
        )
        .unwrap();
        out
    }

    #[test]
    fn a_connections_loop_allocates_nothing_per_request_once_warm() {
        let policy = Policy::compile(
            "p",
            r#"rule known { if sender_domain == "example.org" then REJECT "5.7.1 Go away $sender" }
               default WARN "unknown sender""#,
            &mut NoFiles,
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .policy;
        let engine = Engine::new(policy);
        let mut framer = Framer::new(Limits::default());
        let mut scratch = Scratch::new();
        let mut out = Vec::new();
        let mut replies = Vec::with_capacity(2);
        let mut seen = Vec::with_capacity(2);
        let requests: Vec<Vec<u8>> = (0..240)
            .map(|i| {
                request(if i % 3 == 0 {
                    "a@example.org"
                } else {
                    "b@example.net"
                })
            })
            .collect();
        for (i, req) in requests.iter().enumerate() {
            if i == 20 || i == 220 {
                // `seen` has its capacity: recording allocates nothing.
                seen.push(counting::heap_operations());
            }
            // Split some requests across reads, as a socket may.
            let pieces: &[&[u8]] = if i % 5 == 0 {
                &[&req[..17], &req[17..]]
            } else {
                &[req]
            };
            out.clear();
            for piece in pieces {
                framer.feed(piece);
                while let Some(frame) = framer.next_frame().expect("frames") {
                    let request = Request::parse(frame).expect("parses");
                    let now = Timestamp::from_unix_millis(0);
                    encode(&engine.decide(&request, now, &mut scratch), &mut out);
                }
            }
            if i == 0 || i == 1 {
                replies.push(out.clone());
            }
        }
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[1] - seen[0], 0, "heap operations in 200 requests");
        assert_eq!(replies[0], b"action=REJECT 5.7.1 Go away a@example.org\n\n");
        assert_eq!(replies[1], b"action=WARN unknown sender\n\n");
    }

    #[test]
    fn the_counting_allocator_sees_allocations() {
        let before = counting::heap_operations();
        let v = std::hint::black_box(vec![1u8; 64]);
        drop(v);
        assert!(counting::heap_operations() >= before + 2);
    }
}

mod properties {
    use proptest::prelude::*;
    use proptest::test_runner::FileFailurePersistence;

    use super::*;

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

    fn requests() -> impl Strategy<Value = Vec<Vec<(Vec<u8>, Vec<u8>)>>> {
        proptest::collection::vec(proptest::collection::vec(attribute(), 1..20), 1..6)
    }

    fn encode_all(requests: &[Vec<(Vec<u8>, Vec<u8>)>]) -> Vec<u8> {
        let mut out = Vec::new();
        for attributes in requests {
            encode_request(attributes.iter().map(|(n, v)| (&n[..], &v[..])), &mut out)
                .expect("framable attributes");
        }
        out
    }

    fn action() -> impl Strategy<Value = Action> {
        let text = "[A-Za-z0-9][A-Za-z0-9 .,:;!?()<>@_+-]{0,60}";
        prop_oneof![
            Just("OK".to_owned()),
            Just("DUNNO".to_owned()),
            (
                prop::sample::select(vec![
                    "REJECT",
                    "DEFER",
                    "DEFER_IF_REJECT",
                    "DEFER_IF_PERMIT",
                    "HOLD",
                    "DISCARD",
                    "WARN",
                    "INFO",
                    "550",
                    "450",
                    "421",
                    "554"
                ]),
                proptest::option::of(text)
            )
                .prop_map(|(verb, text)| match text {
                    Some(t) => format!("{verb} {t}"),
                    None => verb.to_owned(),
                }),
            (
                prop::sample::select(vec!["REJECT", "DEFER", "550", "451"]),
                1u16..6,
                0u16..1000,
                0u16..1000,
                text
            )
                .prop_map(|(verb, class, subject, detail, t)| {
                    let class = match (verb, class % 2) {
                        ("REJECT" | "550", _) => 5,
                        ("DEFER" | "451", _) => 4,
                        _ => 4,
                    };
                    format!("{verb} {class}.{subject}.{detail} {t}")
                }),
            "[a-z]{1,10}@[a-z]{1,10}\\.org".prop_map(|a| format!("REDIRECT {a}")),
            "[a-z]{1,10}@[a-z]{1,10}\\.org".prop_map(|a| format!("BCC {a}")),
            "X-[A-Za-z]{1,12}: [a-z ]{1,20}".prop_map(|h| format!("PREPEND {h}")),
            "[a-z]{1,8}:\\[127\\.0\\.0\\.1\\]:[0-9]{2,5}".prop_map(|f| format!("FILTER {f}")),
        ]
        .prop_filter_map("valid action", |s| Action::parse(&s).ok())
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
                "proptest-regressions/api.txt",
            ))),
            ..ProptestConfig::default()
        })]

        #[test]
        fn identical_frames_for_any_read_chunking(
            requests in requests(),
            tail in proptest::collection::vec(any::<u8>(), 0..64),
            chunks in proptest::collection::vec(1usize..40, 1..8),
        ) {
            let mut data = encode_all(&requests);
            data.extend_from_slice(&tail);
            let whole = frames_of(&data);
            prop_assert_eq!(whole.frames.len() >= requests.len(), true);
            // Feed in the chosen chunk sizes, cycled.
            let mut framer = Framer::default();
            let mut frames = Vec::new();
            let mut rest = &data[..];
            let mut sizes = chunks.iter().cycle();
            let mut end = None;
            while !rest.is_empty() && end.is_none() {
                let n = (*sizes.next().unwrap()).min(rest.len());
                framer.feed(&rest[..n]);
                rest = &rest[n..];
                loop {
                    match framer.next_frame() {
                        Ok(Some(f)) => frames.push(f.to_vec()),
                        Ok(None) => break,
                        Err(e) => { end = Some(End::Error(e)); break; }
                    }
                }
            }
            let end = end.unwrap_or(if framer.is_mid_request() {
                End::Incomplete(framer.buffered_len())
            } else {
                End::Clean
            });
            prop_assert_eq!(Outcome { frames, end }, whole);
        }

        #[test]
        fn identical_outcome_for_any_chunking_under_any_limits(
            data in proptest::collection::vec(
                prop_oneof![
                    4 => prop::sample::select(b"ab_=\n\n\r \0\xff".to_vec()),
                    1 => any::<u8>(),
                ],
                0..200,
            ),
            max_request in 0usize..80,
            max_line in 0usize..30,
            max_attributes in 0usize..6,
            allow_empty in any::<bool>(),
            chunks in proptest::collection::vec(1usize..9, 1..5),
        ) {
            let limits = Limits::default()
                .max_request_bytes(max_request)
                .max_line_bytes(max_line)
                .max_attributes(max_attributes);
            let framer = || Framer::new(limits).allow_empty_lines(allow_empty);
            let whole = feed(framer(), &data, 0);
            for &chunk in &chunks {
                prop_assert_eq!(&feed(framer(), &data, chunk), &whole, "chunk {}", chunk);
            }
            for frame in &whole.frames {
                prop_assert!(frame.len() < max_request);
                prop_assert!(frame.split_inclusive(|&b| b == b'\n').all(|l| l.len() <= max_line));
                prop_assert!(frame.split_inclusive(|&b| b == b'\n').count() <= max_attributes);
            }
        }

        #[test]
        fn requests_round_trip(requests in requests()) {
            let data = encode_all(&requests);
            let got = frames_of(&data);
            prop_assert_eq!(&got.end, &End::Clean);
            prop_assert_eq!(got.frames.len(), requests.len());
            for (frame, attributes) in got.frames.iter().zip(&requests) {
                let lines: Vec<(Vec<u8>, Vec<u8>)> = frame
                    .split_inclusive(|&b| b == b'\n')
                    .map(|line| {
                        let line = &line[..line.len() - 1];
                        let eq = line.iter().position(|&b| b == b'=').unwrap();
                        (line[..eq].to_vec(), line[eq + 1..].to_vec())
                    })
                    .collect();
                prop_assert_eq!(&lines, attributes);
            }
        }

        #[test]
        fn replies_round_trip(action in action()) {
            let out = reply_of(&action);
            prop_assert!(!out.contains(&b'\r'));
            prop_assert_eq!(decode_reply(&out), Ok(action));
        }

        #[test]
        fn replies_from_any_client_text_are_one_clean_line(
            verb in prop::sample::select(vec!["REJECT", "DEFER", "WARN"]),
            sender in proptest::collection::vec(
                any::<u8>().prop_filter("framable", |&b| b != b'\n' && b != 0),
                0..600,
            ),
        ) {
            let source = format!("rule r {{ then {verb} \"from $sender\" }}");
            let policy = Policy::compile("p", &source, &mut NoFiles)
                .map_err(|e| TestCaseError::fail(e.to_string()))?
                .policy;
            let frame = [&b"request=smtpd_access_policy\nsender="[..], &sender, b"\n\n"].concat();
            let out = reply(&policy, &frame);
            let s = std::str::from_utf8(&out).expect("valid UTF-8");
            prop_assert!(s.ends_with("\n\n"));
            let line = &s[..s.len() - 2];
            prop_assert!(!line.chars().any(char::is_control));
            prop_assert!(line.len() <= "action=".len() + verb.len() + 1 + policy_core::MAX_TEXT_BYTES);
            let action = decode_reply(&out).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(action.verb(), verb);
        }

        #[test]
        fn no_panic_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            // The framer's invariants on any bytes are the fuzz harness's,
            // run by its unit tests (src/fuzz_harness.rs).
            let _ = frames_of(&data);
            let _ = decode_reply(&data);
        }
    }
}
