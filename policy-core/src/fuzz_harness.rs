//! Harness functions for the fuzz targets in `fuzz/`.
//!
//! Each function takes arbitrary bytes, runs one entry point of the crate on
//! them, and panics if an invariant does not hold. A fuzz target is one line
//! calling one of these; a crash found by the fuzzer is a broken invariant.
//!
//! Compiled only for the fuzzer (`--cfg fuzzing`, which cargo-fuzz sets) and
//! for this crate's unit tests, which keep the harnesses compiling on stable
//! and run them on the golden vectors, the scenario policies and proptest's
//! inputs: never in an embedder's build.

use crate::action::Action;
use crate::request::Request;

/// Whether `part` lies inside `whole` (by address), or is empty.
fn is_subslice(whole: &[u8], part: &[u8]) -> bool {
    if part.is_empty() {
        return true;
    }
    let start = whole.as_ptr() as usize;
    let end = start + whole.len();
    let part_start = part.as_ptr() as usize;
    part_start >= start && part_start + part.len() <= end
}

/// Parse `data` as a request. On success check that: every borrowed field is a
/// subslice of `data`; the address parts are the split of `raw` at its last
/// `@`; `attributes()` and `unknown_attributes()` terminate (bounded by the
/// number of lines) and yield subslices of `data` with valid names; `get`
/// agrees with the typed fields' raw text. Never panics unless an invariant
/// is broken.
pub fn parse_request(data: &[u8]) {
    let Ok(request) = Request::parse(data) else {
        return;
    };
    let text_fields: [&[u8]; 22] = [
        request.request,
        request.protocol_name,
        request.helo_name,
        request.queue_id,
        request.client_name,
        request.reverse_client_name,
        request.instance,
        request.sasl_method,
        request.sasl_username,
        request.sasl_sender,
        request.ccert_subject,
        request.ccert_issuer,
        request.ccert_fingerprint,
        request.ccert_pubkey_fingerprint,
        request.encryption_protocol,
        request.encryption_cipher,
        request.etrn_domain,
        request.stress,
        request.policy_context,
        request.compatibility_level,
        request.mail_version,
        request.tls_sni,
    ];
    assert_eq!(request.frame, data);
    for field in text_fields {
        assert!(is_subslice(data, field), "field outside the frame");
        assert!(!field.contains(&b'\n'), "LF inside a value");
    }
    for address in [request.sender, request.recipient] {
        assert!(is_subslice(data, address.raw));
        assert!(is_subslice(address.raw, address.local));
        assert!(is_subslice(address.raw, address.domain));
        assert!(!address.domain.contains(&b'@'), "domain holds an `@`");
        if address.raw.contains(&b'@') {
            assert_eq!(
                address.local.len() + 1 + address.domain.len(),
                address.raw.len()
            );
        } else {
            assert_eq!(address.local, address.raw);
        }
    }
    if let Some(crate::request::ProtocolState::Other(state)) = request.protocol_state {
        assert!(is_subslice(data, state));
    }
    let lines = data.iter().filter(|&&b| b == b'\n').count();
    let mut count = 0;
    for (name, value) in request.attributes() {
        count += 1;
        assert!(count <= lines, "attributes() does not terminate");
        assert!(is_subslice(data, name) && is_subslice(data, value));
        assert!(!name.is_empty());
    }
    let mut unknown = 0;
    for (name, value) in request.unknown_attributes() {
        unknown += 1;
        assert!(unknown <= count, "unknown_attributes() does not terminate");
        assert!(!crate::request::is_known_attribute(name));
        assert!(is_subslice(data, name) && is_subslice(data, value));
    }
    assert_eq!(request.get(b"request"), Some(request.request));
    assert_eq!(
        request.get(b"sender").unwrap_or_default(),
        request.sender.raw
    );
}

/// If `data` is UTF-8 and parses as an [`Action`], check that its wire form
/// is one line of UTF-8 without CR or LF, re-parses to an equal action, passes
/// [`Action::validate`], and equals its `Display` form.
pub fn parse_action(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(action) = Action::parse(text) else {
        return;
    };
    let mut wire = Vec::with_capacity(64);
    action.write_wire(&mut wire);
    assert!(
        !wire.contains(&b'\r') && !wire.contains(&b'\n'),
        "line break in wire form"
    );
    let wire = std::str::from_utf8(&wire).expect("wire form is UTF-8");
    assert_eq!(wire, action.to_string());
    assert_eq!(
        Action::parse(wire).as_ref(),
        Ok(&action),
        "wire form does not re-parse"
    );
    assert_eq!(action.validate(), Ok(()));
}

/// The largest input [`compile_policy`] compiles, in bytes: enough for every
/// construct of the language many times over, small enough that one run stays
/// in the milliseconds (compile time grows with the source).
pub const MAX_FUZZ_POLICY_BYTES: usize = 64 * 1024;

/// Compile `data` (lossy UTF-8) as a policy with no list files available.
/// Never panics; on success checks that every rule name is listed and that
/// deciding an empty request and a typical one is total; on failure checks
/// that there is at least one error and every diagnostic has a position in
/// the source (or none, for whole-file errors) and a non-empty message.
/// Inputs over [`MAX_FUZZ_POLICY_BYTES`] are cut to that size.
pub fn compile_policy(data: &[u8]) {
    let data = &data[..data.len().min(MAX_FUZZ_POLICY_BYTES)];
    let source = String::from_utf8_lossy(data);
    let lines = u32::try_from(source.lines().count().max(1)).unwrap_or(u32::MAX);
    match crate::Policy::compile("fuzz.conf", &source, &mut crate::NoFiles) {
        Ok(compiled) => {
            let engine = crate::Engine::new(compiled.policy);
            let policy = engine.policy();
            for w in &compiled.warnings {
                assert!(w.line <= lines, "warning past the end: {w}");
                assert!(!w.message.is_empty());
            }
            let mut scratch = crate::Scratch::new();
            let now = crate::Timestamp::from_unix_millis(0);
            for frame in [
                &b"request=smtpd_access_policy\n\n"[..],
                b"request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=192.0.2.1\n\
                  helo_name=mail.example.com\nsender=a@example.com\nrecipient=b@example.net\n\
                  sasl_username=a\nsize=1000\nencryption_protocol=TLSv1.3\n\n",
                // Hostile values for the templates: controls (C0, DEL, C1),
                // invalid UTF-8, a CR inside a value.
                b"request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=unknown\n\
                  helo_name=\x7f\xe2\x80\nsender=a\x01\x1b[31m\xff\r\xc2\x85@example.com\n\
                  recipient=\t@\r\n\n",
            ] {
                let Ok(request) = Request::parse(frame) else {
                    continue;
                };
                let check = |decision: &crate::Decision<'_>| {
                    let rule = decision.rule;
                    assert!(rule == "default" || policy.rule_names().any(|n| n == rule));
                    // What policy-proto's encoder sends as is (it only keeps CR
                    // and LF off the wire): one line of UTF-8, no control
                    // character, whatever DNS answered (TXT reasons included).
                    let wire = std::str::from_utf8(decision.wire()).expect("wire text is UTF-8");
                    assert!(
                        !wire.chars().any(char::is_control),
                        "control character in the wire text: {wire:?}"
                    );
                };
                check(&engine.decide(&request, now, &mut scratch));
                if policy.uses_outside_facts() {
                    // Hostile DNS answers, chosen by each query's name.
                    let mut dns = HostileDns::default();
                    check(&engine.decide_with(&request, now, &mut scratch, &mut dns));
                    assert!(dns.asked <= MAX_FUZZ_QUERIES, "{} queries", dns.asked);
                }
                let _ = engine.explain(&request, now).to_string();
            }
        }
        Err(errors) => {
            assert!(!errors.errors.is_empty(), "failed without an error");
            for d in errors.errors.iter().chain(&errors.warnings) {
                assert!(!d.message.is_empty());
                assert!(
                    d.file != "fuzz.conf" || d.line <= lines + 1,
                    "error past the end: {d}"
                );
            }
            let _ = errors.to_string();
        }
    }
}

/// The most queries one request of [`compile_policy`] may ask: bounded by
/// the policy's tests (each asks at most three queries, `fcrdns` ten more),
/// far below this for the policies a fuzzer writes in 64 KiB.
pub const MAX_FUZZ_QUERIES: usize = 100_000;

/// A resolver whose answers are chosen by a hash of the query: listings in
/// and out of the lists' answers, the client's address, names odd and long,
/// a null MX, texts with control characters and invalid UTF-8, not found,
/// unknown.
#[derive(Default)]
struct HostileDns {
    asked: usize,
    addresses: Vec<std::net::IpAddr>,
}

impl crate::facts::Resolver for HostileDns {
    fn resolve(&mut self, query: crate::facts::Query<'_>) -> crate::facts::Answer<'_> {
        use crate::facts::Answer;
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        self.asked += 1;
        const NAMES: &[&[u8]] = &[
            b"mail.example.com",
            b"",
            b"Mail.Example.COM.",
            b"\xff\x00.example\r\n",
            b"unknown",
            b"192.0.2.1",
            &[b'a'; 300],
        ];
        const TEXTS: &[&[u8]] = &[
            b"Listed: see https://bl.example/?192.0.2.1",
            b"\r\n\x1b[31mred\xff\xc2\x85\t",
            &[b'x'; 5000],
            b"",
        ];
        let pick = crate::base::bytes::fnv1a(crate::base::bytes::FNV_START, query.name);
        match pick % 7 {
            0 => Answer::NotFound,
            1 => Answer::Unknown,
            _ => match query.kind {
                crate::facts::QueryKind::A | crate::facts::QueryKind::Aaaa => {
                    self.addresses.clear();
                    self.addresses.extend([
                        IpAddr::V4(Ipv4Addr::new(127, 0, 0, (pick >> 8) as u8)),
                        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                        IpAddr::V4(Ipv4Addr::new(127, 255, 255, 254)),
                        IpAddr::V6(Ipv6Addr::LOCALHOST),
                    ]);
                    let n = (pick >> 16) as usize % (self.addresses.len() + 1);
                    Answer::Addresses(&self.addresses[..n])
                }
                crate::facts::QueryKind::Txt => {
                    let n = (pick >> 16) as usize % (TEXTS.len() + 1);
                    Answer::Texts(&TEXTS[..n])
                }
                _ => {
                    let n = (pick >> 16) as usize % (NAMES.len() + 1);
                    if pick % 5 == 0 {
                        // Names to an A query's kind and the other way about.
                        Answer::Texts(&NAMES[..n])
                    } else {
                        Answer::Names(&NAMES[..n])
                    }
                }
            },
        }
    }
}

/// The most rounds [`spf_check`] allows one evaluation: each round must
/// ask something new, and an evaluation reads at most 10 DNS-querying
/// terms, 10 MX or PTR names each, and its explanation.
pub const MAX_FUZZ_SPF_ROUNDS: usize = 64;

/// `data` as SPF DNS data (one record a line: the first is the TXT of
/// `example.com`, the sender's domain; a line `NAME TEXT` is a TXT of
/// NAME), every other query answered by a hash of its name (addresses,
/// names odd and long, not found, a DNS error), evaluated round by round
/// as the engine drives it: it never panics, ends within
/// [`MAX_FUZZ_SPF_ROUNDS`], gives the same result when run again on the
/// same answers, and keeps its explanation within its bound.
pub fn spf_check(data: &[u8]) {
    use crate::facts::QueryKind;
    use crate::spf::{check_host, Evaluation, MemoryDns, SpfInput};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let mut dns = MemoryDns::new();
    let mut lines = data.split(|&b| b == b'\n');
    let first = lines.next().unwrap_or_default();
    dns.set_strings(QueryKind::Txt, b"example.com", &[first]);
    for line in lines {
        let mut parts = line.splitn(2, |&b| b == b' ');
        if let (Some(name), Some(text)) = (parts.next(), parts.next()) {
            let name = name.to_ascii_lowercase();
            dns.set_strings(QueryKind::Txt, &name, &[text]);
        }
    }
    let client = if data.len() % 2 == 0 {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))
    } else {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))
    };
    let input = SpfInput::mail_from(
        client,
        b"user@example.com",
        b"mail.example.com",
        crate::Timestamp::from_unix_millis(0),
    );
    let mut explanation = Vec::new();
    let mut asked: Vec<(QueryKind, Vec<u8>)> = Vec::new();
    for _ in 0..MAX_FUZZ_SPF_ROUNDS {
        asked.clear();
        let outcome = check_host(
            &input,
            &dns,
            &mut |q| asked.push((q.kind, q.name.to_vec())),
            &mut explanation,
        );
        match outcome {
            Evaluation::Done(result) => {
                let mut again = Vec::new();
                let replay = check_host(&input, &dns, &mut |_| {}, &mut again);
                assert_eq!(replay, Evaluation::Done(result), "a replay differs");
                assert_eq!(again, explanation, "a replay's explanation differs");
                assert!(
                    explanation.len() <= 4096,
                    "explanation of {} bytes",
                    explanation.len()
                );
                return;
            }
            Evaluation::Pending => {
                assert!(!asked.is_empty(), "pending without asking anything");
                for (kind, name) in &asked {
                    let pick = crate::base::bytes::fnv1a(crate::base::bytes::FNV_START, name);
                    match (pick % 5, kind) {
                        (0, _) => dns.set_not_found(*kind, name),
                        (1, _) => dns.set_unknown(*kind, name),
                        (_, QueryKind::A) => {
                            dns.set_addresses(
                                *kind,
                                name,
                                &[IpAddr::V4(Ipv4Addr::new(192, 0, 2, (pick >> 8) as u8))],
                            );
                        }
                        (_, QueryKind::Aaaa) => dns.set_addresses(*kind, name, &[client]),
                        (_, QueryKind::Txt) => {
                            dns.set_strings(
                                *kind,
                                name,
                                &[b"v=spf1 a mx ptr include:example.com -all"],
                            );
                        }
                        _ => dns.set_strings(
                            *kind,
                            name,
                            &[b"mail.example.com", b"", &[b'a'; 300], b"x..y"],
                        ),
                    }
                }
            }
        }
    }
    panic!("no result after {MAX_FUZZ_SPF_ROUNDS} rounds");
}

/// The most keys a table decoded by [`decode_state`] may hold: small, so
/// that a fuzzer's "a billion entries" header fails fast on its length.
pub const MAX_FUZZ_STATE_KEYS: usize = 4096;

/// A policy with two limits and a greylist, for restoring fuzzed state
/// files into.
const FUZZ_STATE_POLICY: &str = "limit a { key sender count messages max 3 per 1h, 10 per 1d }\n\
                                 limit b { key client_address/24/64 count recipients max 5 per 1m }\n\
                                 greylist g { delay 1m auto_whitelist 2 capacity 4096 }\n";

/// Decode `data` as a state file ([`crate::store::decode`]) and, whatever
/// it is, as one limit table snapshot and as one greylist table snapshot.
/// Never panics; an accepted limit table answers
/// [`LimitTable::top`](crate::limits::LimitTable::top) and encodes to a snapshot
/// that decodes to the same top keys; an accepted greylist table answers
/// [`GreylistTable::counts`](crate::greylist::GreylistTable::counts) (live
/// entries no more than it holds) and encodes to a snapshot that decodes to
/// the same timers, counts and verdicts; restoring into a policy is all or
/// nothing (on error the policy's tables are unchanged).
pub fn decode_state(data: &[u8]) {
    let now = crate::Timestamp::from_unix_millis(1_700_000_000_000);
    let check_greylist = |payload: &[u8]| {
        use crate::greylist::GreylistTable;
        let Ok(table) = GreylistTable::decode_snapshot_as_written(payload, MAX_FUZZ_STATE_KEYS)
        else {
            return;
        };
        let counts = table.counts(now);
        assert!(counts.pending + counts.passed <= table.len());
        assert!(counts.whitelisted_clients <= counts.clients);
        assert!(counts.clients <= table.clients_len());
        let mut again = Vec::new();
        table.encode_snapshot(now, &mut again);
        let back = GreylistTable::decode_snapshot_as_written(&again, MAX_FUZZ_STATE_KEYS)
            .unwrap_or_else(|e| panic!("a re-encoded greylist snapshot does not decode: {e}"));
        assert_eq!(back.timers(), table.timers());
        assert_eq!(back.seeds(), table.seeds());
        // Entries expired at `now` are left out of the re-encoding: what is
        // live then is all there is.
        assert_eq!(back.counts(now), counts);
        assert_eq!(back.len(), counts.pending + counts.passed);
        // Both tables answer alike (explaining, nothing updated): the
        // snapshot's own keys are not known here, so probe a few hashes.
        for key in [0u64, 1, u64::MAX, 0x9e37_79b9_7f4a_7c15] {
            assert_eq!(
                back.check(key, key.rotate_left(17), now, false),
                table.check(key, key.rotate_left(17), now, false)
            );
        }
        // And a third encoding is byte for byte the second.
        let mut third = Vec::new();
        back.encode_snapshot(now, &mut third);
        assert_eq!(third, again, "re-encoding is not stable");
    };
    let check_table = |payload: &[u8]| {
        let Ok(table) =
            crate::limits::LimitTable::decode_snapshot_as_written(payload, MAX_FUZZ_STATE_KEYS)
        else {
            return;
        };
        let windows = table.limit().windows().len();
        let top: Vec<_> = (0..windows).map(|w| table.top(w, 8, now)).collect();
        let mut again = Vec::new();
        table.encode_snapshot(now, &mut again);
        let back =
            crate::limits::LimitTable::decode_snapshot_as_written(&again, MAX_FUZZ_STATE_KEYS)
                .unwrap_or_else(|e| panic!("a re-encoded snapshot does not decode: {e}"));
        for (w, expected) in top.iter().enumerate() {
            let got = back.top(w, 8, now);
            assert_eq!(
                got.iter().map(|k| (k.hash, k.units)).collect::<Vec<_>>(),
                expected
                    .iter()
                    .map(|k| (k.hash, k.units))
                    .collect::<Vec<_>>()
            );
        }
    };
    check_table(data);
    check_greylist(data);
    if let Ok(stored) = crate::store::decode(data) {
        for entry in &stored.entries {
            match entry.kind {
                crate::store::TableKind::Greylist => check_greylist(entry.payload),
                _ => check_table(entry.payload),
            }
        }
    }
    let Ok(compiled) = crate::Policy::compile("fuzz.conf", FUZZ_STATE_POLICY, &mut crate::NoFiles)
    else {
        panic!("the fuzz state policy compiles");
    };
    let state = crate::State::for_policy(&compiled.policy);
    match crate::store::restore(&state, data) {
        Err(_) => {}
        Ok((restored_state, report)) => {
            // Every table of the policy is restored, fresh, or neither (its
            // entry in the file was dropped as changed), never both or
            // twice; only the policy's tables are restored.
            let names: Vec<&str> = state
                .limits()
                .map(|l| l.name)
                .chain(state.greylists().map(|g| g.name))
                .collect();
            let restored_names: Vec<&str> = restored_state
                .limits()
                .map(|l| l.name)
                .chain(restored_state.greylists().map(|g| g.name))
                .collect();
            assert_eq!(names, restored_names, "a restore changed the items");
            for name in &names {
                let restored = report.restored.iter().filter(|r| r.name == *name).count();
                let fresh = report.fresh.iter().filter(|f| f == name).count();
                assert!(
                    restored + fresh <= 1,
                    "table {name} restored {restored} times, fresh {fresh}"
                );
            }
            for restored in &report.restored {
                assert!(names.contains(&restored.name.as_str()), "{restored:?}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;
    use crate::request::KNOWN_ATTRIBUTES;

    fn root() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    /// The paths in `dir` that `keep` keeps, sorted.
    fn entries(dir: &Path, keep: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
        let read = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut paths: Vec<PathBuf> = read
            .map(|e| {
                e.unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                    .path()
            })
            .filter(|p| keep(p))
            .collect();
        paths.sort();
        paths
    }

    fn read(path: &Path) -> Vec<u8> {
        std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn request_and_action_harnesses_hold_on_every_vector() {
        let mut requests = 0;
        for kind in ["valid", "malformed"] {
            let dir = root().join("tests/vectors").join(kind);
            for path in entries(&dir, |p| p.extension().is_some_and(|e| e == "req")) {
                parse_request(&read(&path));
                requests += 1;
            }
        }
        assert!(requests >= 20, "only {requests} request vectors ran");
        let mut actions = 0;
        for file in ["valid.txt", "invalid.txt"] {
            let path = root().join("tests/vectors/actions").join(file);
            let text = String::from_utf8(read(&path)).unwrap_or_else(|e| panic!("{file}: {e}"));
            // `<input> TAB <expected>` lines, `#` comments.
            for line in text
                .lines()
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
            {
                let input = line.split('\t').next().unwrap_or_default();
                parse_action(input.as_bytes());
                actions += 1;
            }
        }
        assert!(actions >= 30, "only {actions} action vectors ran");
    }

    #[test]
    fn spf_harness_holds_on_the_seeds_and_hostile_records() {
        let dir = root().join("../fuzz/seeds/spf");
        let seeds = entries(&dir, Path::is_file);
        assert!(!seeds.is_empty(), "no SPF seeds in {}", dir.display());
        for seed in seeds {
            spf_check(&read(&seed));
        }
        for record in [
            &b""[..],
            b"v=spf1",
            b"v=spf1 redirect=example.com",
            b"v=spf1 include:example.com",
            b"v=spf1 exists:%{l}%{l}%{l}%{l}%{l}%{l}.%{d}%{d}%{d}%{d} -all exp=%{d}",
            b"v=spf1 a:%{i}.%{ir}.%{c} mx/0 ptr ip6:::/0 -all",
            b"v=spf1 %{",
        ] {
            spf_check(record);
        }
    }

    proptest! {
        #[test]
        fn spf_harness_holds_on_arbitrary_records(data in vec(any::<u8>(), 0..200)) {
            spf_check(&data);
        }
    }

    #[test]
    fn compile_harness_holds_with_hostile_dns_answers() {
        let policy = br#"
dnsbl zen { zone "zen.example" answer 127.0.0.2-127.0.0.11 txt }
rhsbl dbl { zone "dbl.example" txt }
score s {
    add 4 if client_address in dnsbl zen as "zen"
    add 2 if sender_domain in rhsbl dbl or helo_name in rhsbl dbl
    add 1.5 unless fcrdns
    add -1 if helo_matches_client and helo_resolves
    above 3 REJECT "5.7.1 $score $score_reasons: $dnsbl_reason"
}
rule r { if sender_domain_unknown then REJECT "5.1.8 $dnsbl_reason" on_unknown DEFER "4.1.8 later" }
rule l { if client_address in dnsbl zen then REJECT "5.7.1 $dnsbl_reason" }
rule s { if spf == fail or spf == permerror then REJECT "5.7.23 $spf_result $spf_explanation" }
"#;
        compile_policy(policy);
        // The harness's resolver answers TXT with control characters; the
        // wire check above holds for every pick of answers.
        for zone in [
            "a.example",
            "b.example",
            "c.example",
            "d.example",
            "e.example",
        ] {
            let text = format!(
                "dnsbl z {{ zone \"{zone}\" txt }}\nrule r {{ if client_address in dnsbl z then REJECT \"5.7.1 $dnsbl_reason\" }}\n"
            );
            compile_policy(text.as_bytes());
        }
    }

    #[test]
    fn compile_harness_holds_on_every_scenario_policy() {
        let dir = root().join("tests/scenarios");
        let mut ran = 0;
        for scenario in entries(&dir, Path::is_dir) {
            let policy = scenario.join("policy.conf");
            if policy.exists() {
                compile_policy(&read(&policy));
                ran += 1;
            }
        }
        assert!(ran >= 10, "only {ran} scenario policies ran");
    }

    #[test]
    fn state_harness_holds_on_the_fuzz_seeds() {
        let dir = root().join("../fuzz/seeds/state");
        let seeds = entries(&dir, Path::is_file);
        assert!(!seeds.is_empty(), "no state seeds in {}", dir.display());
        for seed in seeds {
            decode_state(&read(&seed));
        }
    }

    /// Tokens of the language, and some that are not, to build near-policies.
    const TOKENS: &[&str] = &[
        "list",
        "logins",
        "dnsbl",
        "rhsbl",
        "score",
        "zone",
        "answer",
        "mask",
        "txt",
        "add",
        "above",
        "as",
        "on_unknown",
        "fcrdns",
        "helo_resolves",
        "helo_matches_client",
        "sender_domain_unknown",
        "spf",
        "softfail",
        "$spf_result",
        "\"bl.example\"",
        "127.0.0.2-127.0.0.11",
        "-1.5",
        "4.35",
        "$score",
        "$dnsbl_reason",
        "rule",
        "default",
        "file",
        "dry-run",
        "state",
        "if",
        "unless",
        "then",
        "and",
        "or",
        "not",
        "(",
        ")",
        "{",
        "}",
        ",",
        "in",
        "==",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "is",
        "empty",
        "set",
        "like",
        "matches",
        "starts_with",
        "ends_with",
        "contains",
        "authenticated",
        "tls",
        "null_sender",
        "helo_is_fqdn",
        "sender_login_mismatch",
        "unauthenticated_local_sender",
        "sender",
        "client_address",
        "size",
        "protocol_state",
        "recipient_domain",
        "RCPT",
        "DATA",
        "OK",
        "DUNNO",
        "REJECT",
        "DEFER",
        "HOLD",
        "450",
        "550",
        "PREPEND",
        "REDIRECT",
        "a",
        "b",
        "10.0.0.0/8",
        ".example.com",
        "joe@",
        "\"5.7.1 no $sender\"",
        "\"x\"",
        "\"X-A: b\"",
        "\"a@b\"",
        "/^a/i",
        "/(/",
        "20MB",
        "5",
        "#c\n",
        "\n",
        "\"",
        "/",
        "cidr",
        "domain",
        "$",
    ];

    /// A name Postfix does not send, from the name grammar.
    fn unknown_name() -> impl Strategy<Value = String> {
        "x_[a-zA-Z0-9_.-]{0,20}"
    }

    /// A value: any bytes but LF.
    fn value() -> impl Strategy<Value = Vec<u8>> {
        vec(any::<u8>().prop_filter("no LF", |&b| b != b'\n'), 0..40)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn request_harness_holds_on_any_bytes(data in vec(any::<u8>(), 0..1024)) {
            parse_request(&data);
        }

        #[test]
        fn request_harness_holds_on_line_shaped_bytes(
            lines in vec((prop_oneof![
                proptest::sample::select(KNOWN_ATTRIBUTES.to_vec()).prop_map(String::from),
                unknown_name(),
                "[ -~]{0,8}",
            ], value()), 0..12),
        ) {
            let mut frame = b"request=smtpd_access_policy\n".to_vec();
            for (name, value) in &lines {
                frame.extend_from_slice(name.as_bytes());
                frame.push(b'=');
                frame.extend_from_slice(value);
                frame.push(b'\n');
            }
            frame.push(b'\n');
            parse_request(&frame);
        }

        #[test]
        fn action_harness_holds_on_any_text(s in "\\PC{0,80}|[ -~\t\r\n]{0,80}") {
            parse_action(s.as_bytes());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn compile_harness_holds_on_token_soup(picks in vec(0..TOKENS.len(), 0..60)) {
            let source: Vec<&str> = picks.iter().map(|&i| TOKENS[i]).collect();
            let source = source.join(" ");
            compile_policy(source.as_bytes());
        }

        #[test]
        fn compile_harness_holds_on_any_text(source in "\\PC{0,200}") {
            compile_policy(source.as_bytes());
        }
    }

    #[test]
    fn harness_accepts_valid_and_junk_inputs() {
        let inputs: &[&[u8]] = &[
            b"",
            b"\n",
            b"request=smtpd_access_policy\nsender=a@b@c\nx=y\n\n",
            b"request=smtpd_access_policy\r\nprotocol_state=WEIRD\r\n",
            b"\xff\xfe=\n",
            b"REJECT 5.7.1 no",
            b"450 4.7.1 later",
            b"PREPEND X-A: b",
            b"\xff",
            // Junk the compiler once stumbled on.
            b"\0",
            "rule \u{feff}x { then OK }".as_bytes(),
            b"list a { \"\\",
            b"rule x { if a matches /\\",
            b"}}}}",
            b"rule x { then REJECT \"$",
        ];
        for input in inputs {
            parse_request(input);
            parse_action(input);
            compile_policy(input);
            decode_state(input);
        }
    }

    #[test]
    fn state_harness_restores_a_real_state_file() {
        let compiled = crate::Policy::compile("p", FUZZ_STATE_POLICY, &mut crate::NoFiles)
            .unwrap_or_else(|e| panic!("{e}"));
        let engine = crate::Engine::new(compiled.policy);
        let now = crate::Timestamp::from_unix_millis(1_700_000_000_000);
        let mut scratch = crate::Scratch::new();
        let frame = |i: u32| {
            format!(
                "request=smtpd_access_policy\nprotocol_state=RCPT\nsender=s{i}@example.com\n\
                 client_address=192.0.{i}.1\nrecipient=r@example.net\ninstance={i}\n\n"
            )
        };
        // Five triplets greylisted; the first two retried in time (passed).
        for i in 0..5 {
            let frame = frame(i);
            let request = Request::parse(frame.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
            let _ = engine.decide(&request, now, &mut scratch);
        }
        let later = crate::Timestamp::from_unix_millis(now.as_unix_millis() + 61_000);
        for i in 0..2 {
            let frame = frame(i);
            let request = Request::parse(frame.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
            let _ = engine.decide(&request, later, &mut scratch);
        }
        let state = engine.state();
        let grey = state
            .greylists()
            .next()
            .unwrap_or_else(|| panic!("the policy has a greylist"));
        let counts = grey.table.counts(later);
        assert_eq!((counts.pending, counts.passed, counts.clients), (3, 2, 2));
        let mut file = Vec::new();
        assert_eq!(crate::store::encode(&state, later, &mut file), 3);
        let stored = crate::store::decode(&file).unwrap_or_else(|e| panic!("{e}"));
        let kinds: Vec<_> = stored.entries.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                crate::store::TableKind::Limit,
                crate::store::TableKind::Limit,
                crate::store::TableKind::Greylist
            ]
        );
        decode_state(&file);
        decode_state(stored.entries[2].payload);
        for cut in [0, 1, 8, file.len() / 2, file.len() - 1] {
            decode_state(&file[..cut]);
        }
        // A damaged greylist payload behind a valid container checksum is
        // refused whole.
        let grey_payload = stored.entries[2].payload;
        let offset = grey_payload.as_ptr() as usize - file.as_ptr() as usize;
        let mut damaged = file.clone();
        damaged[offset + grey_payload.len() / 2] ^= 0x10;
        let body = damaged.len() - 8;
        let sum = crate::base::bytes::fnv1a(crate::base::bytes::FNV_START, &damaged[..body]);
        damaged[body..].copy_from_slice(&sum.to_le_bytes());
        let fresh = crate::Policy::compile("p", FUZZ_STATE_POLICY, &mut crate::NoFiles)
            .unwrap_or_else(|e| panic!("{e}"))
            .policy;
        assert!(matches!(
            crate::store::restore(&crate::State::for_policy(&fresh), &damaged),
            Err(crate::store::StoreError::Greylist { index: 2, .. })
        ));
        decode_state(&damaged);
    }

    #[test]
    fn subslice_detects_foreign_slices() {
        let whole = b"abcdef".to_vec();
        let other = b"abc".to_vec();
        assert!(is_subslice(&whole, &whole[1..3]));
        assert!(!is_subslice(&whole, &other));
    }
}
