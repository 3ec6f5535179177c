//! Unit tests: record syntax, macros with RFC 7208's own examples (section
//! 7.4), the limits, the rounds of a pending evaluation, and hostile
//! records that must neither panic nor loop.

use std::net::IpAddr;

use proptest::prelude::*;

use super::macros::{check_domain_spec, check_macro_string, expand, Name, Values};
use super::parse::{is_spf, term, Kind, Term};
use super::{check_host, Evaluation, MemoryDns, SpfInput, SpfResult};
use crate::base::time::Timestamp;
use crate::facts::QueryKind;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// Section 7.4: sender `strong-bad@email.example.com`, client 192.0.2.3
/// (and 2001:db8::cb01).
fn expand_74(spec: &str, client: &str) -> String {
    let values = Values {
        local: b"strong-bad",
        sender_domain: b"email.example.com",
        domain: b"email.example.com",
        helo: b"mx.example.org",
        ip: ip(client),
        validated: b"unknown",
        receiver: b"",
        now: 0,
    };
    let mut out = Vec::new();
    assert_eq!(
        expand(spec.as_bytes(), &values, true, &mut out),
        Ok(()),
        "{spec}"
    );
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn rfc7208_section_7_4_examples() {
    let v4 = "192.0.2.3";
    let rows = [
        ("%{s}", "strong-bad@email.example.com"),
        ("%{o}", "email.example.com"),
        ("%{d}", "email.example.com"),
        ("%{d4}", "email.example.com"),
        ("%{d3}", "email.example.com"),
        ("%{d2}", "example.com"),
        ("%{d1}", "com"),
        ("%{dr}", "com.example.email"),
        ("%{d2r}", "example.email"),
        ("%{l}", "strong-bad"),
        ("%{l-}", "strong.bad"),
        ("%{lr}", "strong-bad"),
        ("%{lr-}", "bad.strong"),
        ("%{l1r-}", "strong"),
        (
            "%{ir}.%{v}._spf.%{d2}",
            "3.2.0.192.in-addr._spf.example.com",
        ),
        ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
        (
            "%{lr-}.lp.%{ir}.%{v}._spf.%{d2}",
            "bad.strong.lp.3.2.0.192.in-addr._spf.example.com",
        ),
        (
            "%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}",
            "3.2.0.192.in-addr.strong.lp._spf.example.com",
        ),
        (
            "%{d2}.trusted-domains.example.net",
            "example.com.trusted-domains.example.net",
        ),
        ("%%%_%-", "% %20"),
        ("%{L}", "strong-bad"),
        ("%{S}", "strong-bad%40email.example.com"),
        ("%{c} %{v} %{r}", "192.0.2.3 in-addr unknown"),
    ];
    for (spec, expected) in rows {
        assert_eq!(expand_74(spec, v4), expected, "{spec}");
    }
    assert_eq!(
        expand_74("%{ir}.%{v}._spf.%{d2}", "2001:db8::cb01"),
        "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"
    );
    assert_eq!(expand_74("%{c}", "2001:db8::cb01"), "2001:db8::cb01");
}

#[test]
fn macro_syntax() {
    // (macro-string, valid outside an explanation, valid in one)
    let rows: &[(&str, bool, bool)] = &[
        ("%{d}", true, true),
        ("%{d2r+-}", true, true),
        ("%{c}", false, true),
        ("%{r}", false, true),
        ("%{t}", false, true),
        ("%{x}", false, false),
        ("%{d0}", false, false),
        ("%{d", false, false),
        ("%{}", false, false),
        ("%x", false, false),
        ("%", false, false),
        ("a b", false, true),
        ("caf\u{e9}", false, false),
        ("", true, true),
    ];
    for &(s, plain, exp) in rows {
        assert_eq!(
            check_macro_string(s.as_bytes(), false).is_ok(),
            plain,
            "{s}"
        );
        assert_eq!(
            check_macro_string(s.as_bytes(), true).is_ok(),
            exp,
            "{s} (exp)"
        );
    }
    // domain-spec = macro-string domain-end
    for (s, ok) in [
        ("example.com", true),
        ("example.com.", true),
        ("%{d}", true),
        ("_spf.%{d2}", true),
        ("foo.1", false),
        ("example.-com", false),
        ("com", false),
        ("", false),
    ] {
        assert_eq!(check_domain_spec(s.as_bytes()).is_ok(), ok, "{s}");
    }
}

#[test]
fn term_syntax() {
    assert!(is_spf(b"v=spf1"));
    assert!(is_spf(b"V=SPF1 -all"));
    assert!(!is_spf(b"v=spf1-all"));
    assert!(!is_spf(b"v=spf10"));
    let mech = |t: &str| match term(t.as_bytes()) {
        Ok(Term::Mechanism(m)) => Some((
            m.result,
            m.kind,
            m.domain.map(<[u8]>::to_vec),
            m.cidr4,
            m.cidr6,
        )),
        _ => None,
    };
    assert_eq!(
        mech("-all"),
        Some((SpfResult::Fail, Kind::All, None, 32, 128))
    );
    assert_eq!(
        mech("~a:example.com/24//64"),
        Some((
            SpfResult::SoftFail,
            Kind::A,
            Some(b"example.com".to_vec()),
            24,
            64
        ))
    );
    assert_eq!(
        mech("mx//0"),
        Some((SpfResult::Pass, Kind::Mx, None, 32, 0))
    );
    assert_eq!(
        mech("?ip4:192.0.2.0/24"),
        Some((
            SpfResult::Neutral,
            Kind::Ip4([192, 0, 2, 0].into()),
            None,
            24,
            128
        ))
    );
    for bad in [
        "all:x",
        "a/33",
        "a//129",
        "a/024",
        "ip4:192.0.2.01",
        "ip4:1.2.3",
        "ip6:zz::",
        "include",
        "include:",
        "exists:foo.1",
        "foo",
        "-",
        "ptr:",
        "a:",
        "+redirect=x.com",
    ] {
        assert!(term(bad.as_bytes()).is_err(), "{bad}");
    }
    assert!(matches!(
        term(b"redirect=_spf.example.com"),
        Ok(Term::Redirect(_))
    ));
    assert!(matches!(term(b"exp=e.%{d}"), Ok(Term::Exp(_))));
    assert!(matches!(term(b"foo.bar-x=anything"), Ok(Term::Other)));
    assert!(term(b"1foo=x").is_err());
    assert!(term(b"=x").is_err());
}

#[test]
fn a_long_name_is_cut_from_the_left() {
    let mut name = Name::new();
    let label = [b'a'; 60];
    for _ in 0..20 {
        super::macros::Out::push(&mut name, &label);
        super::macros::Out::push(&mut name, b".");
    }
    super::macros::Out::push(&mut name, b"Example.COM.");
    let out = name.finish();
    assert!(out.len() <= 253, "{}", out.len());
    assert!(out.ends_with(b".example.com"));
    assert_eq!(out.first(), Some(&b'a'));
}

fn input<'a>(client: &str, sender: &'a [u8]) -> SpfInput<'a> {
    SpfInput::mail_from(
        ip(client),
        sender,
        b"mx.example.org",
        Timestamp::from_unix_millis(0),
    )
}

/// Run to the end, answering every query from `zone` (TXT records and A
/// addresses; anything else does not exist); the rounds taken.
fn run(zone: &[(&str, QueryKind, &str)], input: &SpfInput<'_>) -> (SpfResult, usize) {
    let mut dns = MemoryDns::new();
    let mut expl = Vec::new();
    for round in 1..=30 {
        let mut asked = Vec::new();
        match check_host(
            input,
            &dns,
            &mut |q| asked.push((q.kind, q.name.to_vec())),
            &mut expl,
        ) {
            Evaluation::Done(r) => return (r, round),
            Evaluation::Pending => {
                for (kind, name) in asked {
                    let found: Vec<&str> = zone
                        .iter()
                        .filter(|(n, k, _)| n.as_bytes() == name.as_slice() && *k == kind)
                        .map(|(_, _, v)| *v)
                        .collect();
                    if found.is_empty() {
                        dns.set_not_found(kind, &name);
                    } else if kind == QueryKind::Txt {
                        let texts: Vec<&[u8]> = found.iter().map(|t| t.as_bytes()).collect();
                        dns.set_strings(kind, &name, &texts);
                    } else {
                        let ips: Vec<IpAddr> = found.iter().map(|t| ip(t)).collect();
                        dns.set_addresses(kind, &name, &ips);
                    }
                }
            }
        }
    }
    (SpfResult::TempError, usize::MAX)
}

#[test]
fn a_record_s_lookups_are_asked_together() {
    let zone = [
        (
            "example.org",
            QueryKind::Txt,
            "v=spf1 a:a.example.org a:b.example.org include:i.example.org -all",
        ),
        ("b.example.org", QueryKind::A, "192.0.2.7"),
        ("i.example.org", QueryKind::Txt, "v=spf1 -all"),
    ];
    let input = input("192.0.2.7", b"x@example.org");
    let mut dns = MemoryDns::new();
    let mut asked = Vec::new();
    let mut expl = Vec::new();
    assert_eq!(
        check_host(
            &input,
            &dns,
            &mut |q| asked.push(q.name.to_vec()),
            &mut expl
        ),
        Evaluation::Pending
    );
    assert_eq!(asked, [b"example.org".to_vec()]);
    dns.set_strings(QueryKind::Txt, b"example.org", &[zone[0].2.as_bytes()]);
    asked.clear();
    assert_eq!(
        check_host(
            &input,
            &dns,
            &mut |q| asked.push(q.name.to_vec()),
            &mut expl
        ),
        Evaluation::Pending
    );
    // The first mechanism's lookup, and those of the rest of the record.
    assert_eq!(
        asked,
        [
            b"a.example.org".to_vec(),
            b"b.example.org".to_vec(),
            b"i.example.org".to_vec()
        ]
    );
    assert_eq!(run(&zone, &input), (SpfResult::Pass, 3));
}

#[test]
fn limits_of_dns_terms_and_void_lookups() {
    let eleven = "v=spf1 a:a1.example.org a:a2.example.org a:a3.example.org a:a4.example.org \
                  a:a5.example.org a:a6.example.org a:a7.example.org a:a8.example.org \
                  a:a9.example.org a:a10.example.org a:a11.example.org -all";
    let mut zone = vec![("example.org", QueryKind::Txt, eleven)];
    let names: Vec<String> = (1..=11).map(|i| format!("a{i}.example.org")).collect();
    for name in &names {
        zone.push((name.as_str(), QueryKind::A, "198.51.100.1"));
    }
    assert_eq!(
        run(&zone, &input("192.0.2.7", b"x@example.org")).0,
        SpfResult::PermError
    );
    // Three lookups that find nothing.
    let voids = [(
        "example.org",
        QueryKind::Txt,
        "v=spf1 a:v1.example.org a:v2.example.org a:v3.example.org -all",
    )];
    assert_eq!(
        run(&voids, &input("192.0.2.7", b"x@example.org")).0,
        SpfResult::PermError
    );
    let two = [(
        "example.org",
        QueryKind::Txt,
        "v=spf1 a:v1.example.org a:v2.example.org -all",
    )];
    assert_eq!(
        run(&two, &input("192.0.2.7", b"x@example.org")).0,
        SpfResult::Fail
    );
    // An include loop ends at the limit.
    let looped = [(
        "example.org",
        QueryKind::Txt,
        "v=spf1 include:example.org -all",
    )];
    assert_eq!(
        run(&looped, &input("192.0.2.7", b"x@example.org")).0,
        SpfResult::PermError
    );
}

#[test]
fn identities_and_domains() {
    // The null sender checks postmaster@HELO; a bad domain is none.
    let zone = [("mx.example.org", QueryKind::Txt, "v=spf1 +all")];
    assert_eq!(run(&zone, &input("192.0.2.7", b"")).0, SpfResult::Pass);
    for sender in [&b"x@localhost"[..], b"x@[192.0.2.7]", b"x@a..example.org"] {
        assert_eq!(run(&zone, &input("192.0.2.7", sender)).0, SpfResult::None);
    }
    // An IPv4-mapped client is an IPv4 client.
    let zone = [(
        "example.org",
        QueryKind::Txt,
        "v=spf1 ip4:192.0.2.0/24 -all",
    )];
    assert_eq!(
        run(&zone, &input("::ffff:192.0.2.7", b"x@example.org")).0,
        SpfResult::Pass
    );
    assert_eq!(
        run(&zone, &input("2001:db8::1", b"x@example.org")).0,
        SpfResult::Fail
    );
}

/// Records made of SPF's own pieces, to reach deep into the evaluator.
fn record() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "a",
        "mx",
        "ptr",
        "all",
        "include:",
        "exists:",
        "ip4:",
        "ip6:",
        "redirect=",
        "exp=",
        "%{",
        "}",
        "%{d}",
        "%{ir}",
        "%{p}",
        "%{l1r-}",
        "%",
        "/",
        "//",
        ":",
        "=",
        ".",
        "-",
        "+",
        "~",
        "?",
        " ",
        "example.org",
        "x.example.org",
        "192.0.2.7",
        "::1",
        "24",
        "128",
        "0",
        "99999999999",
        "%{d99999999999r}",
        "\u{e9}",
        "\t",
    ]);
    prop::collection::vec(piece, 0..40).prop_map(|v| format!("v=spf1 {}", v.concat()))
}

/// Whether `header`'s quoted strings and comments close (escapes
/// honoured), outside-in as RFC 5322 reads them.
fn well_formed(header: &[u8]) -> bool {
    let (mut depth, mut quoted, mut escaped) = (0usize, false, false);
    for &b in header {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted || depth > 0 => escaped = true,
            b'"' if depth == 0 => quoted = !quoted,
            b'(' if !quoted => depth += 1,
            b')' if !quoted => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            _ => {}
        }
    }
    depth == 0 && !quoted && !escaped
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the client sends as sender and HELO name, the header is
    /// within its size, its comment and quoted strings close, and it ends
    /// with a pair (the result first).
    #[test]
    fn received_spf_is_bounded_and_well_formed(
        sender in prop::collection::vec(prop::sample::select(b"a@.()\\\" x[]:".to_vec()), 0..400),
        helo in prop::collection::vec(prop::sample::select(b"a.()\\\" [:]".to_vec()), 0..300),
        v6 in any::<bool>(),
        result in prop::sample::select(SpfResult::ALL.to_vec()),
    ) {
        let client = if v6 { ip("2001:db8:ffff:ffff:ffff:ffff:ffff:1") } else { ip("192.0.2.1") };
        let input = SpfInput::mail_from(client, &sender, &helo, Timestamp::from_unix_millis(0));
        let mut header = b"junk".to_vec();
        input.received_spf(result, &mut header);
        let header = &header[4..];
        prop_assert!(header.len() <= super::RECEIVED_SPF_MAX, "{} bytes", header.len());
        prop_assert!(header.starts_with(result.as_str().as_bytes()));
        prop_assert!(header.ends_with(b";"));
        prop_assert!(well_formed(header), "{}", String::from_utf8_lossy(header));
    }

    /// A hostile record never panics, and the evaluation ends in a few
    /// rounds whatever the records of the names it asks for.
    #[test]
    fn hostile_records_do_not_panic(
        top in record(),
        other in record(),
        bytes in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let raw = String::from_utf8_lossy(&bytes).into_owned();
        let mut dns = MemoryDns::new();
        let input = input("2001:db8::7", b"a.b-c@example.org");
        let mut expl = Vec::new();
        dns.set_strings(QueryKind::Txt, b"example.org", &[top.as_bytes()]);
        let mut rounds = 0;
        loop {
            let mut asked = Vec::new();
            let outcome = check_host(&input, &dns, &mut |q| asked.push((q.kind, q.name.to_vec())), &mut expl);
            if let Evaluation::Done(_) = outcome {
                break;
            }
            prop_assert!(!asked.is_empty());
            rounds += 1;
            prop_assert!(rounds < 60, "too many rounds");
            for (i, (kind, name)) in asked.into_iter().enumerate() {
                match (kind, i % 4) {
                    (QueryKind::Txt, 0) => dns.set_strings(kind, &name, &[other.as_bytes()]),
                    (QueryKind::Txt, 1) => dns.set_strings(kind, &name, &[raw.as_bytes()]),
                    (QueryKind::Mx | QueryKind::Ptr, _) => dns.set_strings(kind, &name, &[b"x.example.org", b""]),
                    (_, 2) => dns.set_unknown(kind, &name),
                    (_, 3) => dns.set_addresses(kind, &name, &[ip("2001:db8::7"), ip("192.0.2.7")]),
                    _ => dns.set_not_found(kind, &name),
                }
            }
        }
    }

    /// Any bytes as a macro-string: checking and expanding end without a
    /// panic, and an expanded name fits a domain name.
    #[test]
    fn any_macro_string(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = check_macro_string(&bytes, true);
        let _ = check_domain_spec(&bytes);
        let _ = term(&bytes);
        let values = Values {
            local: &bytes,
            sender_domain: b"example.org",
            domain: &bytes,
            helo: &bytes,
            ip: ip("2001:db8::7"),
            validated: b"unknown",
            receiver: b"",
            now: u64::MAX,
        };
        let mut name = Name::new();
        let _ = expand(&bytes, &values, false, &mut name);
        prop_assert!(name.finish().len() <= 253);
        let mut out = Vec::new();
        let _ = expand(&bytes, &values, true, &mut out);
        prop_assert!(out.len() <= super::macros::MAX_EXPLANATION);
    }
}
