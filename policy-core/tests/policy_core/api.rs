//! Public-API tests of policy-core: golden vectors on disk, properties, and the
//! engine seam as an embedder uses it.

use std::fmt::Write as _;
use std::path::PathBuf;

use policy_core::base::attr::KNOWN_ATTRIBUTES;
use policy_core::{Action, ProtocolState, Request};

use crate::common::tests_dir;

/// `\xNN` for bytes outside printable ASCII and for `\` (vectors/README.md).
fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// The text form of a parsed request described in vectors/README.md.
fn dump(request: &Request<'_>) -> String {
    let mut out = String::new();
    let mut line = |name: &str, value: String| {
        let _ = writeln!(out, "{name}={value}");
    };
    for name in KNOWN_ATTRIBUTES {
        match name {
            "protocol_state" => {
                if let Some(state) = request.protocol_state {
                    let text = match state {
                        ProtocolState::Other(raw) => format!("other:{}", escape(raw)),
                        known => escape(known.as_bytes()),
                    };
                    line(name, text);
                }
            }
            "sender" | "recipient" => {
                let address = if name == "sender" {
                    request.sender
                } else {
                    request.recipient
                };
                if !address.is_null() {
                    line(name, escape(address.raw));
                    if !address.local.is_empty() {
                        line(&format!("{name}.local"), escape(address.local));
                    }
                    if address.has_domain() {
                        line(&format!("{name}.domain"), escape(address.domain));
                    }
                }
            }
            "recipient_count" => {
                if let Some(n) = request.recipient_count {
                    line(name, n.to_string());
                }
            }
            "size" => {
                if let Some(n) = request.size {
                    line(name, n.to_string());
                }
            }
            "encryption_keysize" => {
                if let Some(n) = request.encryption_keysize {
                    line(name, n.to_string());
                }
            }
            "client_address" | "server_address" => {
                let ip = if name == "client_address" {
                    request.client_address
                } else {
                    request.server_address
                };
                if let Some(ip) = ip {
                    line(name, ip.to_string());
                }
            }
            "client_port" | "server_port" => {
                let port = if name == "client_port" {
                    request.client_port
                } else {
                    request.server_port
                };
                if let Some(port) = port {
                    line(name, port.to_string());
                }
            }
            _ => {
                let value = text_field(request, name);
                if !value.is_empty() {
                    line(name, escape(value));
                }
            }
        }
    }
    for (name, value) in request.unknown_attributes() {
        line(&format!("unknown.{}", escape(name)), escape(value));
    }
    line("attributes", request.attributes().count().to_string());
    out
}

/// The text field called `name`; panics on a name that is not a text field,
/// which would be a bug in `dump`.
fn text_field<'a>(r: &Request<'a>, name: &str) -> &'a [u8] {
    match name {
        "request" => r.request,
        "protocol_name" => r.protocol_name,
        "helo_name" => r.helo_name,
        "queue_id" => r.queue_id,
        "client_name" => r.client_name,
        "reverse_client_name" => r.reverse_client_name,
        "instance" => r.instance,
        "sasl_method" => r.sasl_method,
        "sasl_username" => r.sasl_username,
        "sasl_sender" => r.sasl_sender,
        "ccert_subject" => r.ccert_subject,
        "ccert_issuer" => r.ccert_issuer,
        "ccert_fingerprint" => r.ccert_fingerprint,
        "ccert_pubkey_fingerprint" => r.ccert_pubkey_fingerprint,
        "encryption_protocol" => r.encryption_protocol,
        "encryption_cipher" => r.encryption_cipher,
        "etrn_domain" => r.etrn_domain,
        "stress" => r.stress,
        "policy_context" => r.policy_context,
        "compatibility_level" => r.compatibility_level,
        "mail_version" => r.mail_version,
        "tls_sni" => r.tls_sni,
        other => panic!("dump: {other} is not a text field"),
    }
}

fn vectors_dir(sub: &str) -> PathBuf {
    tests_dir().join("vectors").join(sub)
}

/// Every `*.req` file in `sub`, sorted, with its `.expected` text.
fn request_vectors(sub: &str) -> Vec<(PathBuf, Vec<u8>, String)> {
    let dir = vectors_dir(sub);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "req"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let expected_path = path.with_extension("expected");
            let expected = std::fs::read_to_string(&expected_path)
                .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
            (path, data, expected)
        })
        .collect()
}

/// `(input, expected)` pairs of a TAB-separated action vector file.
fn action_vectors(file: &str) -> Vec<(usize, String, String)> {
    let path = vectors_dir("actions").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.starts_with('#') && !line.is_empty())
        .map(|(i, line)| {
            let (input, expected) = line
                .split_once('\t')
                .unwrap_or_else(|| panic!("{file}:{}: no TAB", i + 1));
            (i + 1, input.to_owned(), expected.to_owned())
        })
        .collect()
}

mod vectors {
    use super::*;

    #[test]
    fn valid_requests_parse_to_their_expected_dump() {
        let vectors = request_vectors("valid");
        assert!(
            vectors.len() >= 10,
            "too few valid vectors: {}",
            vectors.len()
        );
        for (path, data, expected) in &vectors {
            let request =
                Request::parse(data).unwrap_or_else(|e| panic!("{}: refused: {e}", path.display()));
            assert_eq!(
                dump(&request),
                *expected,
                "{}: dump differs",
                path.display()
            );
        }
    }

    #[test]
    fn valid_requests_are_raw_postfix_frames() {
        // Other parts of the workspace read these files as wire bytes.
        for (path, data, _) in request_vectors("valid") {
            let crlf = path.ends_with("crlf-hand-typed.req");
            let end: &[u8] = if crlf { b"\r\n\r\n" } else { b"\n\n" };
            assert!(
                data.ends_with(end),
                "{}: must end with the empty line",
                path.display()
            );
            assert!(!data.contains(&0), "{}: NUL byte", path.display());
            assert_eq!(
                data.windows(2).any(|w| w == b"\r\n"),
                crlf,
                "{}: line ends",
                path.display()
            );
        }
    }

    #[test]
    fn full_request_has_every_known_attribute() {
        let data = std::fs::read(vectors_dir("valid").join("postfix-3.x-rcpt-full.req"))
            .expect("full request vector");
        let request = Request::parse(&data).expect("full request parses");
        let names: Vec<String> = request.attributes().map(|(name, _)| escape(name)).collect();
        assert_eq!(
            names, KNOWN_ATTRIBUTES,
            "KNOWN_ATTRIBUTES is in Postfix's order"
        );
    }

    #[test]
    fn malformed_requests_fail_with_their_expected_error() {
        let vectors = request_vectors("malformed");
        assert!(
            vectors.len() >= 10,
            "too few malformed vectors: {}",
            vectors.len()
        );
        for (path, data, expected) in &vectors {
            match Request::parse(data) {
                Ok(request) => panic!("{}: accepted: {request:?}", path.display()),
                Err(error) => assert_eq!(
                    error.to_string(),
                    expected.trim_end(),
                    "{}: wrong error",
                    path.display()
                ),
            }
        }
    }

    #[test]
    fn valid_actions_parse_to_their_canonical_form() {
        let vectors = action_vectors("valid.txt");
        assert!(vectors.len() >= 15);
        for (line, input, canonical) in &vectors {
            let action = Action::parse(input)
                .unwrap_or_else(|e| panic!("actions/valid.txt:{line}: {input:?}: {e}"));
            assert_eq!(action.to_string(), *canonical, "actions/valid.txt:{line}");
            let mut wire = Vec::with_capacity(128);
            action.write_wire(&mut wire);
            assert_eq!(wire, canonical.as_bytes(), "actions/valid.txt:{line}");
            assert_eq!(
                Action::parse(canonical).as_ref(),
                Ok(&action),
                "actions/valid.txt:{line}: canonical form does not re-parse"
            );
        }
    }

    #[test]
    fn invalid_actions_fail_with_their_expected_error() {
        let vectors = action_vectors("invalid.txt");
        assert!(vectors.len() >= 15);
        for (line, input, expected) in &vectors {
            match Action::parse(input) {
                Ok(action) => panic!("actions/invalid.txt:{line}: accepted as {action}"),
                Err(error) => {
                    assert_eq!(
                        format!("{error:?}"),
                        *expected,
                        "actions/invalid.txt:{line}"
                    )
                }
            }
        }
    }
}

mod properties {
    use super::*;
    use policy_core::{Address, EnhancedStatus, ParseError};
    use proptest::collection::vec;
    use proptest::prelude::*;

    /// A name Postfix does not send, from the name grammar.
    fn unknown_name() -> impl Strategy<Value = String> {
        "x_[a-zA-Z0-9_.-]{0,20}"
    }

    /// A value: any bytes but LF, not ending in CR (which would be stripped).
    fn value() -> impl Strategy<Value = Vec<u8>> {
        vec(any::<u8>().prop_filter("no LF", |&b| b != b'\n'), 0..40)
            .prop_filter("no final CR", |v| v.last() != Some(&b'\r'))
    }

    /// Text an action may carry (not starting with what reads as an
    /// enhanced status code, which `reply` generates separately).
    fn text() -> impl Strategy<Value = String> {
        "[!-~\u{e0}-\u{ff}]([ -~\u{e0}-\u{ff}]{0,60}[!-~\u{e0}-\u{ff}])?"
            .prop_filter("starts with a status code", |t| {
                EnhancedStatus::parse(t.split(' ').next().unwrap_or_default()).is_err()
            })
    }

    fn enhanced(class: u8) -> impl Strategy<Value = Option<String>> {
        proptest::option::of(
            (0u16..=999, 0u16..=999).prop_map(move |(s, d)| format!("{class}.{s}.{d}")),
        )
    }

    /// `[enhanced] [text]` of class `class`, possibly empty.
    fn reply(class: u8) -> impl Strategy<Value = String> {
        (enhanced(class), proptest::option::of(text()))
            .prop_map(|(e, t)| [e, t].into_iter().flatten().collect::<Vec<_>>().join(" "))
    }

    /// Valid actions, built through the constructors.
    fn action() -> impl Strategy<Value = Action> {
        prop_oneof![
            Just(Ok(Action::Ok)),
            Just(Ok(Action::Dunno)),
            reply(5).prop_map(|r| Action::reject(&r)),
            reply(4).prop_map(|r| Action::defer(&r)),
            reply(4).prop_map(|r| Action::defer_if_reject(&r)),
            reply(4).prop_map(|r| Action::defer_if_permit(&r)),
            (4u16..=5, 0u16..=5, 0u16..=9).prop_flat_map(|(c, t, u)| {
                let code = c * 100 + t * 10 + u;
                let class = u8::try_from(c).expect("4 or 5");
                (enhanced(class), text()).prop_map(move |(e, t)| {
                    let reply = [e, Some(t)]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" ");
                    Action::status(code, &reply)
                })
            }),
            proptest::option::of(text()).prop_map(|t| Action::hold(t.as_deref().unwrap_or(""))),
            proptest::option::of(text()).prop_map(|t| Action::discard(t.as_deref().unwrap_or(""))),
            ("[a-z][a-z0-9-]{0,10}", "[!-~&&[^ ]]{0,30}").prop_map(|(t, d)| Action::filter(&t, &d)),
            ("[!-9;-~]{1,20}", proptest::option::of(text())).prop_map(|(n, v)| Action::prepend(
                &format!("{n}:{}", v.map(|v| format!(" {v}")).unwrap_or_default())
            )),
            ("[!-?A-~]{1,20}", "[a-z0-9.-]{1,30}")
                .prop_map(|(l, d)| Action::redirect(&format!("{l}@{d}"))),
            ("[!-?A-~]{1,20}", "[a-z0-9.-]{1,30}")
                .prop_map(|(l, d)| Action::bcc(&format!("{l}@{d}"))),
            text().prop_map(|t| Action::warn(&t)),
            text().prop_map(|t| Action::info(&t)),
        ]
        .prop_map(|built| built.expect("generated parts are valid"))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        // Request::parse never panicking on any bytes, or on line-shaped
        // ones, is the request fuzz harness's property test
        // (src/fuzz_harness.rs, which checks more than not panicking).

        #[test]
        fn unknown_attributes_come_back_in_order(
            attrs in vec((unknown_name(), value()), 0..16),
            crlf in any::<bool>(),
            terminated in any::<bool>(),
        ) {
            let eol: &[u8] = if crlf { b"\r\n" } else { b"\n" };
            let mut frame = Vec::new();
            frame.extend_from_slice(b"request=smtpd_access_policy");
            frame.extend_from_slice(eol);
            for (name, value) in &attrs {
                frame.extend_from_slice(name.as_bytes());
                frame.push(b'=');
                frame.extend_from_slice(value);
                frame.extend_from_slice(eol);
            }
            if terminated {
                frame.extend_from_slice(eol);
            }
            let request = Request::parse(&frame).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let got: Vec<(&[u8], &[u8])> = request.unknown_attributes().collect();
            let want: Vec<(&[u8], &[u8])> =
                attrs.iter().map(|(n, v)| (n.as_bytes(), v.as_slice())).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn numbers_parse_exactly(n in any::<u64>(), m in any::<u32>(), p in any::<u16>()) {
            let frame = format!(
                "request=smtpd_access_policy\nsize={n}\nrecipient_count={m}\nclient_port={p}\n\n"
            );
            let request = Request::parse(frame.as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(request.size, Some(n));
            prop_assert_eq!(request.recipient_count, Some(m));
            prop_assert_eq!(request.client_port, Some(p));
            let too_big = u64::from(u32::MAX) + 1 + u64::from(m);
            let frame = format!("request=smtpd_access_policy\nrecipient_count={too_big}\n");
            prop_assert!(
                matches!(Request::parse(frame.as_bytes()), Err(ParseError::InvalidValue { attribute: "recipient_count", .. })),
                "overflow accepted"
            );
        }

        #[test]
        fn ip_addresses_round_trip(ip in any::<std::net::IpAddr>()) {
            let frame = format!("request=smtpd_access_policy\nclient_address={ip}\nserver_address={ip}\n");
            let request = Request::parse(frame.as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(request.client_address, Some(ip));
            prop_assert_eq!(request.server_address, Some(ip));
        }

        #[test]
        fn address_split_invariants(raw in vec(any::<u8>(), 0..64)) {
            let a = Address::new(&raw);
            prop_assert_eq!(a.raw, raw.as_slice());
            prop_assert!(!a.domain.contains(&b'@'));
            if raw.contains(&b'@') {
                let joined = [a.local, b"@", a.domain].concat();
                prop_assert_eq!(joined.as_slice(), raw.as_slice());
            } else {
                prop_assert_eq!(a.local, raw.as_slice());
                prop_assert!(a.domain.is_empty());
            }
            prop_assert_eq!(a.is_null(), raw.is_empty());
            let upper = a.domain.to_ascii_uppercase();
            prop_assert!(a.domain_is(&upper));
            prop_assert_eq!(a.domain_is_within(&upper), !a.domain.is_empty());
            let sub = [b"mx.".as_slice(), a.domain].concat();
            let sub_address = [b"u@".as_slice(), &sub].concat();
            let s = Address::new(&sub_address);
            prop_assert_eq!(s.domain_is_within(a.domain), !a.domain.is_empty());
            prop_assert!(!s.domain_is(a.domain));
        }

        #[test]
        fn generated_actions_round_trip(action in action()) {
            let mut wire = Vec::with_capacity(600);
            action.write_wire(&mut wire);
            prop_assert!(!wire.contains(&b'\r') && !wire.contains(&b'\n'));
            let text = std::str::from_utf8(&wire).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(text, action.to_string());
            prop_assert_eq!(Action::parse(text), Ok(action.clone()));
            prop_assert_eq!(action.validate(), Ok(()));
            // Case-insensitive verbs: the lower-cased verb parses to the same action.
            let (verb, rest) = text.split_once(' ').unwrap_or((text, ""));
            let lowered = format!("{} {rest}", verb.to_ascii_lowercase());
            prop_assert_eq!(Action::parse(&lowered), Ok(action));
        }

        #[test]
        fn action_parse_never_panics(s in "\\PC{0,80}|[ -~\t\r\n]{0,80}") {
            let _ = Action::parse(&s);
        }

        #[test]
        fn enhanced_status_round_trips(class in prop_oneof![Just(2u8), Just(4), Just(5)], s in 0u16..=999, d in 0u16..=999) {
            let status = EnhancedStatus::new(class, s, d).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(EnhancedStatus::parse(&status.to_string()), Ok(status));
        }
    }
}

mod engine_seam {
    use super::*;
    use policy_core::{Engine, Policy, Scratch};

    use crate::common::NOW;

    #[test]
    fn engine_answers_the_configured_action_for_every_vector() {
        let engine = Engine::new(Policy::always(
            Action::parse("DEFER 4.7.1 Try later").expect("valid action"),
        ));
        let mut scratch = Scratch::new();
        let mut ran = 0;
        for (path, data, _) in request_vectors("valid") {
            let request =
                Request::parse(&data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let decision = engine.decide(&request, NOW, &mut scratch);
            assert_eq!(decision.wire(), b"DEFER 4.7.1 Try later");
            assert_eq!(decision.verb(), "DEFER");
            assert_eq!(decision.rule, "default");
            ran += 1;
        }
        assert!(ran > 0);
        engine.replace(Policy::default());
        let request = Request::parse(b"request=smtpd_access_policy\n\n").expect("minimal request");
        assert_eq!(
            engine.decide(&request, NOW, &mut scratch).compiled_action(),
            &Action::Dunno
        );
    }

    /// Two engines start at the same generation: a scratch used with both
    /// must still answer each one's policy (it is bound to its engine by a
    /// unique id), and a message's counts on one engine do not mark it as
    /// counted on the other.
    #[test]
    fn one_scratch_with_two_engines_answers_each_ones_policy() {
        let reject = Engine::new(Policy::always(
            Action::parse("REJECT 5.7.1 first").expect("valid action"),
        ));
        let defer = Engine::new(Policy::always(
            Action::parse("DEFER 4.7.1 second").expect("valid action"),
        ));
        let mut scratch = Scratch::new();
        let request = Request::parse(b"request=smtpd_access_policy\n\n").expect("minimal request");
        for _ in 0..3 {
            assert_eq!(
                reject.decide(&request, NOW, &mut scratch).wire(),
                b"REJECT 5.7.1 first"
            );
            assert_eq!(
                defer.decide(&request, NOW, &mut scratch).wire(),
                b"DEFER 4.7.1 second"
            );
        }
        // A message counted by one engine's limit is counted by the other's
        // too: each engine has its own tables.
        let src = "limit per-sender { key sender count messages max 1 per 1h }";
        let compile = || {
            Policy::compile("p.conf", src, &mut policy_core::NoFiles)
                .expect("compiles")
                .policy
        };
        let (a, b) = (Engine::new(compile()), Engine::new(compile()));
        let rcpt = |n: u32| {
            format!(
                "request=smtpd_access_policy\nprotocol_state=RCPT\ninstance=m1\n\
                 sender=s@example.com\nrecipient=r{n}@example.com\n\n"
            )
        };
        let mut scratch = Scratch::new();
        let first = rcpt(1);
        let request = Request::parse(first.as_bytes()).expect("request");
        assert_eq!(a.decide(&request, NOW, &mut scratch).wire(), b"DUNNO");
        assert_eq!(b.decide(&request, NOW, &mut scratch).wire(), b"DUNNO");
        // The message is now counted once on each engine: a second message
        // from the sender is over the limit on both.
        let second = rcpt(2).replace("instance=m1", "instance=m2");
        let request = Request::parse(second.as_bytes()).expect("request");
        assert!(a
            .decide(&request, NOW, &mut scratch)
            .wire()
            .starts_with(b"DEFER"));
        assert!(b
            .decide(&request, NOW, &mut scratch)
            .wire()
            .starts_with(b"DEFER"));
    }

    /// A mail server builds a `Request` from its own SMTP state, without
    /// bytes: it decides exactly as the parsed request with the same values.
    #[test]
    fn a_built_request_decides_as_the_parsed_one() {
        use policy_core::SMTPD_ACCESS_POLICY;
        use policy_core::{Address, NoFiles};

        let source = r#"
            list trusted_nets cidr { 127.0.0.0/8 ::1 10.0.0.0/8 }
            list blocked { spammer@example.net .spam.example }
            rule trusted { if client_address in trusted_nets then OK }
            rule blocked { state RCPT  if sender in blocked
                           then REJECT "5.7.1 $sender is blocked for $recipient from $client_address" }
            rule big     { if size > 10MB and not authenticated then DEFER "4.5.3 Too big: $size" }
            rule helo    { unless helo_is_fqdn or authenticated then REJECT "5.7.1 HELO $helo_name" }
            default WARN "seen $sender via $helo_name at $protocol_state"
        "#;
        let engine = Engine::new(
            Policy::compile("p.conf", source, &mut NoFiles)
                .unwrap_or_else(|e| panic!("{e}"))
                .policy,
        );
        /// (client, helo, sasl_username, sender, size, expected rule)
        type Case = (
            &'static str,
            &'static str,
            &'static str,
            &'static str,
            Option<u64>,
            &'static str,
        );
        let cases: &[Case] = &[
            ("10.1.2.3", "x", "", "a@spam.example", None, "trusted"),
            (
                "192.0.2.7",
                "mx.example.org",
                "",
                "a@mx.spam.example",
                None,
                "blocked",
            ),
            (
                "192.0.2.7",
                "mx.example.org",
                "",
                "a@example.org",
                Some(20 << 20),
                "big",
            ),
            (
                "192.0.2.7",
                "mx.example.org",
                "joe",
                "a@example.org",
                Some(20 << 20),
                "default",
            ),
            (
                "2001:db8::1",
                "localhost",
                "",
                "a@example.org",
                None,
                "helo",
            ),
            ("2001:db8::1", "mx.example.org", "", "", Some(10), "default"),
        ];
        for &(client, helo, login, sender, size, rule) in cases {
            let mut frame = format!(
                "request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address={client}\n\
                 helo_name={helo}\nsasl_username={login}\nsender={sender}\n\
                 recipient=bob@example.com\n"
            );
            if let Some(size) = size {
                let _ = writeln!(frame, "size={size}");
            }
            frame.push('\n');
            let parsed = Request::parse(frame.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
            let built = Request {
                request: SMTPD_ACCESS_POLICY,
                protocol_state: Some(ProtocolState::Rcpt),
                client_address: Some(client.parse().unwrap_or_else(|e| panic!("{e}"))),
                helo_name: helo.as_bytes(),
                sasl_username: login.as_bytes(),
                sender: Address::new(sender.as_bytes()),
                recipient: Address::new(b"bob@example.com"),
                size,
                ..Request::default()
            };
            // The same values; only the frame differs.
            assert_eq!(
                Request {
                    frame: &[],
                    ..parsed.clone()
                },
                built
            );

            let (mut one, mut two) = (Scratch::new(), Scratch::new());
            let from_bytes = engine.decide(&parsed, NOW, &mut one);
            let from_state = engine.decide(&built, NOW, &mut two);
            assert_eq!(from_bytes.rule, rule, "{frame}");
            assert_eq!(from_state.rule, from_bytes.rule, "{frame}");
            assert_eq!(
                String::from_utf8_lossy(from_state.wire()),
                String::from_utf8_lossy(from_bytes.wire()),
                "{frame}"
            );
        }
    }
}
