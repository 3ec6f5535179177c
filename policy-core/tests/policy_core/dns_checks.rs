//! DNS checks through the public API, with a fake resolver: DNS lists
//! (DNSBL, RHSBL) and their answer filters, TXT reasons, forward-confirmed
//! reverse DNS, the HELO name's addresses, the sender domain's mail
//! exchangers; what each asks, in which round, and how unknown answers
//! count.

use std::net::IpAddr;

use policy_core::facts::{Answer, Query, QueryKind, Resolver};
use policy_core::{Request, Scratch, Step};

use crate::common::{engine, NOW};

/// A fake DNS: answers by (kind, name); anything else NXDOMAIN. Records
/// what was asked, in order.
#[derive(Default)]
pub(crate) struct FakeDns {
    pub(crate) records: Vec<(QueryKind, String, Fake)>,
    pub(crate) asked: Vec<String>,
    names: Vec<&'static [u8]>,
    addresses: Vec<IpAddr>,
}

/// One fake answer.
#[derive(Clone)]
pub(crate) enum Fake {
    Addresses(Vec<IpAddr>),
    Names(Vec<&'static str>),
    Unknown,
}

impl FakeDns {
    pub(crate) fn new(records: &[(QueryKind, &str, Fake)]) -> Self {
        Self {
            records: records
                .iter()
                .map(|(k, n, f)| (*k, (*n).to_owned(), f.clone()))
                .collect(),
            ..Self::default()
        }
    }
}

pub(crate) fn ips(list: &[&str]) -> Fake {
    Fake::Addresses(list.iter().map(|s| s.parse().expect("address")).collect())
}

impl Resolver for FakeDns {
    fn resolve(&mut self, query: Query<'_>) -> Answer<'_> {
        let name = String::from_utf8_lossy(query.name).into_owned();
        self.asked.push(format!("{name} {}", query.kind.as_str()));
        let Some((_, _, fake)) = self
            .records
            .iter()
            .find(|(k, n, _)| *k == query.kind && *n == name)
        else {
            return Answer::NotFound;
        };
        match fake.clone() {
            Fake::Addresses(found) => {
                self.addresses = found;
                Answer::Addresses(&self.addresses)
            }
            Fake::Names(found) => {
                self.names = found.iter().map(|n| n.as_bytes()).collect();
                if query.kind == QueryKind::Txt {
                    Answer::Texts(&self.names)
                } else {
                    Answer::Names(&self.names)
                }
            }
            Fake::Unknown => Answer::Unknown,
        }
    }
}

/// DNS records of a case: (kind, name, answer).
type Records<'a> = Vec<(QueryKind, &'a str, Fake)>;

/// A request with these attributes (`name=value` lines) after the usual
/// RCPT ones.
fn request_frame(extra: &str) -> Vec<u8> {
    let mut text = String::from("request=smtpd_access_policy\nprotocol_state=RCPT\n");
    for line in extra.split(';').map(str::trim).filter(|l| !l.is_empty()) {
        text.push_str(line);
        text.push('\n');
    }
    text.push('\n');
    text.into_bytes()
}

/// Decide `attrs` against `policy` with `dns`: the deciding rule, its wire
/// text, and what was asked.
fn decide(
    policy: &str,
    attrs: &str,
    dns: &[(QueryKind, &str, Fake)],
) -> (String, String, Vec<String>) {
    let engine = engine(policy);
    let mut scratch = Scratch::new();
    let frame = request_frame(attrs);
    let request = Request::parse(&frame).unwrap_or_else(|e| panic!("{e}"));
    let mut fake = FakeDns::new(dns);
    let d = engine.decide_with(&request, NOW, &mut scratch, &mut fake);
    (
        d.rule.to_owned(),
        String::from_utf8_lossy(d.wire()).into_owned(),
        fake.asked,
    )
}

const LISTS: &str = r#"
dnsbl zen {
    zone "zen.example"
    answer 127.0.0.2-127.0.0.3 127.0.0.9
}
dnsbl surbl { zone "multi.example"  answer mask 0.0.0.8 }
rhsbl dbl { zone "dbl.example" answer 127.0.1.2-127.0.1.99 }
rule sbl { if client_address in dnsbl zen then REJECT "5.7.1 zen" }
rule bits { if client_address in dnsbl surbl then REJECT "5.7.1 surbl" }
rule domain { if sender_domain in rhsbl dbl then REJECT "5.7.1 dbl" }
rule helo { if helo_name in rhsbl dbl then REJECT "5.7.1 helo dbl" }
default DUNNO
"#;

#[test]
fn dns_lists_with_answer_filters() {
    use QueryKind::A;
    let attrs = "client_address=192.0.2.7; sender=x@Spam.Example; helo_name=[192.0.2.7]";
    // (zen, multi, dbl answers) -> rule
    type Row<'a> = (&'a [&'a str], &'a [&'a str], &'a [&'a str], &'a str);
    let rows: &[Row<'_>] = &[
        (&["127.0.0.2"], &[], &[], "sbl"),
        (&["127.0.0.9"], &[], &[], "sbl"),
        // Outside the list's answers (a PBL listing): not this list.
        (&["127.0.0.10"], &[], &[], "default"),
        (&[], &["127.0.0.24"], &[], "bits"),
        (&[], &["127.0.0.4"], &[], "default"),
        (&[], &[], &["127.0.1.2"], "domain"),
        // Spamhaus's "query refused" code is no listing.
        (&[], &[], &["127.255.255.254"], "default"),
    ];
    for &(zen, multi, dbl, rule) in rows {
        let (got, _, asked) = decide(
            LISTS,
            attrs,
            &[
                (A, "7.2.0.192.zen.example", ips(zen)),
                (A, "7.2.0.192.multi.example", ips(multi)),
                (A, "spam.example.dbl.example", ips(dbl)),
            ],
        );
        assert_eq!(got, rule, "{zen:?} {multi:?} {dbl:?}");
        // The HELO is an address literal: not looked up in an RHSBL.
        assert_eq!(
            asked,
            [
                "7.2.0.192.zen.example A",
                "7.2.0.192.multi.example A",
                "spam.example.dbl.example A"
            ]
        );
    }
}

#[test]
fn rhsbl_reads_domains_only() {
    let policy = "rule r { if client_name in rhsbl \"dbl.example\" or helo_name in rhsbl \"dbl.example\" then REJECT }\n";
    for (attrs, asked) in [
        ("client_name=unknown; helo_name=[192.0.2.1]", vec![]),
        (
            "client_name=mail.example.org; helo_name=localhost",
            vec!["mail.example.org.dbl.example A"],
        ),
        (
            "client_name=192.0.2.1; helo_name=MX.Example.NET.",
            vec!["mx.example.net.dbl.example A"],
        ),
    ] {
        let (_, _, got) = decide(policy, attrs, &[]);
        assert_eq!(got, asked, "{attrs}");
    }
}

#[test]
fn ipv6_clients_are_looked_up_by_nibbles() {
    let policy = "rule r { if client_address in dnsbl \"bl.example\" then REJECT }\n";
    let name = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.example";
    let (rule, _, asked) = decide(
        policy,
        "client_address=2001:db8::1",
        &[(QueryKind::A, name, ips(&["127.0.0.2"]))],
    );
    assert_eq!(rule, "r");
    assert_eq!(asked, [format!("{name} A")]);
}

#[test]
fn txt_is_asked_only_for_a_listing() {
    let policy = r#"
dnsbl bl { zone "bl.example" txt }
rule r { if client_address in dnsbl bl then REJECT }
"#;
    let (rule, _, asked) = decide(
        policy,
        "client_address=192.0.2.1",
        &[
            (QueryKind::A, "1.2.0.192.bl.example", ips(&["127.0.0.2"])),
            (
                QueryKind::Txt,
                "1.2.0.192.bl.example",
                Fake::Names(vec!["see https://bl.example"]),
            ),
        ],
    );
    assert_eq!(rule, "r");
    assert_eq!(
        asked,
        ["1.2.0.192.bl.example A", "1.2.0.192.bl.example TXT"]
    );
    let (rule, _, asked) = decide(policy, "client_address=192.0.2.2", &[]);
    assert_eq!(rule, "default");
    assert_eq!(asked, ["2.2.0.192.bl.example A"]);
}

#[test]
fn forward_confirmed_reverse_dns() {
    use QueryKind::{Aaaa, Ptr, A};
    let policy =
        "rule confirmed { if fcrdns then OK }\nrule unconfirmed { unless fcrdns then REJECT }\n";
    let ptr = "9.2.0.192.in-addr.arpa";
    // (records) -> rule, asked
    let two_names = Fake::Names(vec!["a.example.", "B.example"]);
    let cases: Vec<(Records<'_>, &str, Vec<&str>)> = vec![
        // The second name resolves back.
        (
            vec![
                (Ptr, ptr, two_names.clone()),
                (A, "a.example", ips(&["192.0.2.10"])),
                (A, "b.example", ips(&["192.0.2.9"])),
            ],
            "confirmed",
            vec!["9.2.0.192.in-addr.arpa PTR", "a.example A", "b.example A"],
        ),
        // No name resolves back.
        (
            vec![
                (Ptr, ptr, two_names.clone()),
                (A, "a.example", ips(&["192.0.2.10"])),
            ],
            "unconfirmed",
            vec!["9.2.0.192.in-addr.arpa PTR", "a.example A", "b.example A"],
        ),
        // No reverse DNS at all.
        (vec![], "unconfirmed", vec!["9.2.0.192.in-addr.arpa PTR"]),
        // One name unknown, the other not back: unknown, neither rule.
        (
            vec![
                (Ptr, ptr, two_names.clone()),
                (A, "a.example", Fake::Unknown),
            ],
            "default",
            vec!["9.2.0.192.in-addr.arpa PTR", "a.example A", "b.example A"],
        ),
        // One name unknown, the other back: confirmed.
        (
            vec![
                (Ptr, ptr, two_names),
                (A, "a.example", Fake::Unknown),
                (A, "b.example", ips(&["192.0.2.9"])),
            ],
            "confirmed",
            vec!["9.2.0.192.in-addr.arpa PTR", "a.example A", "b.example A"],
        ),
        // The reverse lookup unknown.
        (
            vec![(Ptr, ptr, Fake::Unknown)],
            "default",
            vec!["9.2.0.192.in-addr.arpa PTR"],
        ),
    ];
    for (records, rule, asked) in cases {
        let (got, _, got_asked) = decide(policy, "client_address=192.0.2.9", &records);
        assert_eq!(
            (got.as_str(), got_asked),
            (rule, asked.iter().map(|s| s.to_string()).collect())
        );
    }
    // IPv6: AAAA of the names.
    let (got, _, asked) = decide(
        policy,
        "client_address=2001:db8::1",
        &[
            (
                Ptr,
                "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
                Fake::Names(vec!["v6.example"]),
            ),
            (Aaaa, "v6.example", ips(&["2001:db8::1"])),
        ],
    );
    assert_eq!(got, "confirmed");
    assert_eq!(asked.last().map(String::as_str), Some("v6.example AAAA"));
}

#[test]
fn fcrdns_looks_up_a_bounded_number_of_names() {
    let names: Vec<&'static str> = (0..30)
        .map(|i| &*Box::leak(format!("n{i}.example").into_boxed_str()))
        .collect();
    let (_, _, asked) = decide(
        "rule r { if fcrdns then OK }\n",
        "client_address=192.0.2.9",
        &[(QueryKind::Ptr, "9.2.0.192.in-addr.arpa", Fake::Names(names))],
    );
    assert_eq!(asked.len(), 1 + policy_core::lang::MAX_FCRDNS_NAMES);
}

#[test]
fn helo_checks() {
    use QueryKind::{Aaaa, A};
    let policy = "rule matches { if helo_matches_client then OK }\n\
                  rule resolves { if helo_resolves then DUNNO }\n\
                  rule bogus { unless helo_resolves then REJECT }\n";
    let rows: Vec<(&str, Records<'_>, &str)> = vec![
        (
            "helo_name=mx.example",
            vec![(A, "mx.example", ips(&["192.0.2.9"]))],
            "matches",
        ),
        (
            "helo_name=mx.example",
            vec![(A, "mx.example", ips(&["192.0.2.1"]))],
            "resolves",
        ),
        (
            "helo_name=mx.example",
            vec![(Aaaa, "mx.example", ips(&["2001:db8::5"]))],
            "resolves",
        ),
        ("helo_name=mx.example", vec![], "bogus"),
        // The A lookup unknown, no AAAA: neither known.
        (
            "helo_name=mx.example",
            vec![(A, "mx.example", Fake::Unknown)],
            "default",
        ),
        // An address literal of the client matches without DNS.
        ("helo_name=[192.0.2.9]", vec![], "matches"),
        ("helo_name=[192.0.2.8]", vec![], "bogus"),
        ("helo_name=localhost", vec![], "bogus"),
    ];
    for (attrs, records, rule) in rows {
        let (got, _, _) = decide(
            policy,
            &format!("client_address=192.0.2.9; {attrs}"),
            &records,
        );
        assert_eq!(got, rule, "{attrs}");
    }
}

#[test]
fn sender_domain_unknown_as_postfix_has_it() {
    use QueryKind::{Aaaa, Mx, A};
    let policy =
        "rule unknown { if sender_domain_unknown then REJECT \"5.1.8 Domain not found\" }\n\
                  rule known { unless sender_domain_unknown then DUNNO }\n";
    let rows: Vec<(&str, Records<'_>, &str)> = vec![
        (
            "sender=a@mx.example",
            vec![(Mx, "mx.example", Fake::Names(vec!["in.mx.example"]))],
            "known",
        ),
        // A null MX (RFC 7505): accepts no mail.
        (
            "sender=a@null.example",
            vec![(Mx, "null.example", Fake::Names(vec![""]))],
            "unknown",
        ),
        (
            "sender=a@a.example",
            vec![(A, "a.example", ips(&["192.0.2.1"]))],
            "known",
        ),
        (
            "sender=a@aaaa.example",
            vec![(Aaaa, "aaaa.example", ips(&["2001:db8::1"]))],
            "known",
        ),
        ("sender=a@gone.example", vec![], "unknown"),
        // A DNS failure: neither rule (a temporary answer is the policy's
        // `on_unknown`, see the scoring tests).
        (
            "sender=a@fail.example",
            vec![(Mx, "fail.example", Fake::Unknown)],
            "default",
        ),
        // The MX unknown but an address found: the domain exists.
        (
            "sender=a@half.example",
            vec![
                (Mx, "half.example", Fake::Unknown),
                (A, "half.example", ips(&["192.0.2.1"])),
            ],
            "known",
        ),
        // The null sender is not checked.
        ("sender=", vec![], "known"),
        // Not a name DNS can hold.
        ("sender=a@[192.0.2.1]", vec![], "unknown"),
    ];
    for (attrs, records, rule) in rows {
        let (got, _, _) = decide(policy, attrs, &records);
        assert_eq!(got, rule, "{attrs}");
    }
}

#[test]
fn lookups_are_asked_in_rounds_all_at_once() {
    let policy = r#"
dnsbl bl { zone "bl.example" txt }
rule a { if client_address in dnsbl bl and fcrdns then REJECT }
rule b { if helo_resolves or sender_domain_unknown then DEFER }
"#;
    let engine = engine(policy);
    let mut scratch = Scratch::new();
    let frame = request_frame("client_address=192.0.2.9; helo_name=mx.example; sender=a@s.example");
    let request = Request::parse(&frame).unwrap_or_else(|e| panic!("{e}"));
    let Step::NeedFacts = engine.start(&request, NOW, &mut scratch) else {
        panic!("facts needed");
    };
    let first: Vec<String> = scratch
        .facts()
        .pending()
        .map(|(_, q)| q.to_string())
        .collect();
    // In the compiled program's order (the last test of an `and` first).
    assert_eq!(
        first,
        [
            "9.2.0.192.in-addr.arpa PTR",
            "9.2.0.192.bl.example A",
            "s.example MX",
            "s.example A",
            "s.example AAAA",
            "mx.example A",
            "mx.example AAAA",
        ]
    );
    let ids: Vec<_> = scratch.facts().pending().map(|(id, _)| id).collect();
    let listed: [IpAddr; 1] = ["127.0.0.2".parse().expect("ip")];
    scratch
        .facts_mut()
        .supply(ids[1], Answer::Addresses(&listed));
    scratch
        .facts_mut()
        .supply(ids[0], Answer::Names(&[b"host.example"]));
    for &id in &ids[2..] {
        scratch.facts_mut().supply(id, Answer::NotFound);
    }
    // The second round: the listing's TXT, the reverse name's address.
    let Step::NeedFacts = engine.resume(&request, NOW, &mut scratch) else {
        panic!("a second round");
    };
    let second: Vec<String> = scratch
        .facts()
        .pending()
        .map(|(_, q)| q.to_string())
        .collect();
    assert_eq!(second, ["host.example A", "9.2.0.192.bl.example TXT"]);
    scratch.facts_mut().expire();
    match engine.resume(&request, NOW, &mut scratch) {
        // `fcrdns` unknown (its A expired): `a` does not apply; `b`'s
        // sender domain is unknown (no MX, no address).
        Step::Decided(d) => {
            assert_eq!(d.rule, "b");
            assert_eq!(d.unknown_facts(), 2);
        }
        Step::NeedFacts => panic!("expired"),
    }
}

#[test]
fn dns_list_errors_are_located() {
    let rows: &[(&str, &str)] = &[
        (
            "dnsbl zen { answer 127.0.0.2 }\nrule r { if client_address in dnsbl zen then REJECT }",
            "policy.conf:1:1: error: `dnsbl zen` has no zone; expected `zone \"...\"`",
        ),
        (
            "dnsbl zen { zone \"zen.example\" answer 127.0.0.300 }\nrule r { if client_address in dnsbl zen then REJECT }",
            "policy.conf:1:39: error: `127.0.0.300` is not an IPv4 address",
        ),
        (
            "dnsbl zen { zone \"zen.example\" answer 127.0.0.9-127.0.0.2 }\nrule r { if client_address in dnsbl zen then REJECT }",
            "policy.conf:1:39: error: the range 127.0.0.9-127.0.0.2 ends before it starts",
        ),
        (
            "dnsbl zen { zone \"zen.example\" answer mask 0 }\nrule r { if client_address in dnsbl zen then REJECT }",
            "policy.conf:1:44: error: a mask of 0 matches no answer",
        ),
        (
            "dnsbl zen { zone \"zen.example\" bogus }",
            "policy.conf:1:32: error: expected `zone`, `answer`, `txt` or `}`, found `bogus`",
        ),
        (
            "rhsbl dbl { zone \"dbl.example\" }\nrule r { if client_address in dnsbl dbl then REJECT }",
            "policy.conf:2:37: error: `dbl` is declared with `rhsbl`; expected a list declared with `dnsbl` after `in dnsbl`",
        ),
        (
            "dnsbl zen { zone \"zen.example\" }\nrule r { if client_address in dnsbl zne then REJECT }",
            "policy.conf:2:37: error: unknown DNS list `zne`; expected a list declared with `dnsbl NAME { zone \"...\" }` or a quoted zone; did you mean `zen`?",
        ),
        (
            "rule r { if client_address in rhsbl \"dbl.example\" then REJECT }",
            "policy.conf:1:13: error: `client_address` is not a domain; expected sender_domain, helo_name, client_name, reverse_client_name or recipient_domain before `in rhsbl` (addresses are looked up with `in dnsbl`)",
        ),
        (
            "rule r { if sender_domain in dnsbl \"bl.example\" then REJECT }",
            "policy.conf:1:13: error: `sender_domain` is not an address; expected an IP field (client_address) before `in dnsbl` (domains are looked up with `in rhsbl`)",
        ),
        (
            "dnsbl a { zone \"a.example\" }\nrhsbl a { zone \"b.example\" }\nrule r { if client_address in dnsbl a then REJECT }",
            "policy.conf:2:7: error: duplicate DNS list `a`",
        ),
    ];
    crate::common::assert_errors_start_with(rows);
    let src = "dnsbl zen { zone \"zen.example\" }\nrule r { if fcrdns then OK }\n";
    let warnings = crate::common::warnings_of(src);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("DNS list `zen` is declared but never used")),
        "{warnings:?}"
    );
    let policy = crate::common::compile(src);
    assert!(policy.uses_outside_facts());
    let zones: Vec<&[u8]> = policy.dns_zones().collect();
    assert_eq!(zones, [&b"zen.example"[..]]);
}

#[test]
fn spf_results_as_conditions() {
    use QueryKind::Txt;
    let policy = r#"
rule spf-fail { if spf == fail then REJECT "5.7.23 SPF fail" }
rule spf-soft { if spf == softfail then DEFER_IF_PERMIT "4.7.24 SPF softfail" }
rule spf-temp { if spf == temperror then DEFER "4.4.3 SPF temperror" }
rule spf-pass { if spf == pass then OK }
rule spf-other { if spf != none then DUNNO }
"#;
    let records = || -> Records<'static> {
        vec![
            (
                Txt,
                "example.org",
                Fake::Names(vec!["v=spf1 ip4:192.0.2.0/24 include:inc.example -all"]),
            ),
            (
                Txt,
                "inc.example",
                Fake::Names(vec!["v=spf1 ip4:203.0.113.0/24 ~all"]),
            ),
            (Txt, "soft.example", Fake::Names(vec!["v=spf1 ~all"])),
            (Txt, "tmp.example", Fake::Unknown),
            (Txt, "bad.example", Fake::Names(vec!["v=spf1 frobnicate"])),
            (Txt, "mail.helo.example", Fake::Names(vec!["v=spf1 +all"])),
        ]
    };
    for (attrs, rule) in [
        ("client_address=192.0.2.9; sender=a@example.org", "spf-pass"),
        (
            "client_address=203.0.113.5; sender=a@example.org",
            "spf-pass",
        ),
        (
            "client_address=198.51.100.1; sender=a@example.org",
            "spf-fail",
        ),
        (
            "client_address=198.51.100.1; sender=a@soft.example",
            "spf-soft",
        ),
        (
            "client_address=198.51.100.1; sender=a@tmp.example",
            "spf-temp",
        ),
        (
            "client_address=198.51.100.1; sender=a@bad.example",
            "spf-other",
        ),
        (
            "client_address=198.51.100.1; sender=a@none.example",
            "default",
        ),
        // The null sender: the HELO identity.
        (
            "client_address=198.51.100.1; sender=; helo_name=mail.helo.example",
            "spf-pass",
        ),
    ] {
        let (got, _, asked) = decide(policy, attrs, &records());
        assert_eq!(got, rule, "{attrs}: asked {asked:?}");
    }
    // The include is asked in a later round, after the sender's record.
    let (_, _, asked) = decide(
        policy,
        "client_address=198.51.100.1; sender=a@example.org",
        &records(),
    );
    assert_eq!(asked[0], "example.org TXT");
    assert!(asked.contains(&"inc.example TXT".to_owned()), "{asked:?}");
    // Without a resolver, the evaluation ends in temperror (its answers
    // unknown), which a policy can defer on.
    let engine = engine(policy);
    let frame = request_frame("client_address=198.51.100.1; sender=a@example.org");
    let request = Request::parse(&frame).unwrap_or_else(|e| panic!("{e}"));
    let mut scratch = Scratch::new();
    assert_eq!(engine.decide(&request, NOW, &mut scratch).rule, "spf-temp");
    crate::common::assert_errors_start_with(&[(
        "rule r { if spf == passs then OK }",
        "policy.conf:1:20: error: unknown SPF result `passs`; expected pass, fail, softfail, neutral, none, temperror or permerror; did you mean `pass`?",
    )]);
}

#[test]
fn spf_result_and_explanation_in_templates() {
    use QueryKind::Txt;
    let policy = r#"
rule spf-fail { if spf == fail then REJECT "5.7.23 SPF $spf_result: $spf_explanation" }
rule tag { if spf != none then PREPEND "X-SPF: $spf_result" }
"#;
    let records: Records<'static> = vec![
        (
            Txt,
            "example.org",
            Fake::Names(vec!["v=spf1 ip4:192.0.2.0/24 -all exp=exp.example.org"]),
        ),
        (
            Txt,
            "exp.example.org",
            Fake::Names(vec!["%{i} is not allowed to send mail for %{d}"]),
        ),
    ];
    let (rule, wire, _) = decide(
        policy,
        "client_address=198.51.100.1; sender=a@example.org",
        &records,
    );
    assert_eq!(rule, "spf-fail");
    assert_eq!(
        wire,
        "REJECT 5.7.23 SPF fail: 198.51.100.1 is not allowed to send mail for example.org"
    );
    let (_, wire, _) = decide(
        policy,
        "client_address=192.0.2.1; sender=a@example.org",
        &records,
    );
    assert_eq!(wire, "PREPEND X-SPF: pass");
}

/// The records of the `Received-SPF:` tests: a pass for 192.0.2.0/24.
fn received_spf_records() -> Records<'static> {
    vec![
        (
            QueryKind::Txt,
            "example.org",
            Fake::Names(vec!["v=spf1 ip4:192.0.2.0/24 -all"]),
        ),
        (
            QueryKind::Txt,
            "mx.helo.example",
            Fake::Names(vec!["v=spf1 ~all"]),
        ),
    ]
}

#[test]
fn received_spf_header_as_a_prepend() {
    // No condition tests SPF: the header alone has it evaluated.
    let policy = r#"rule tag { then PREPEND "Received-SPF: $received_spf" }"#;
    for (attrs, header) in [
        (
            "client_address=192.0.2.1; sender=joe@example.org; helo_name=mx.example.org",
            "pass (domain of joe@example.org designates 192.0.2.1 as permitted sender) \
             client-ip=192.0.2.1; helo=mx.example.org; identity=mailfrom; \
             envelope-from=\"joe@example.org\";",
        ),
        (
            "client_address=198.51.100.7; sender=joe@example.org; helo_name=[198.51.100.7]",
            "fail (domain of joe@example.org does not designate 198.51.100.7 as permitted \
             sender) client-ip=198.51.100.7; helo=\"[198.51.100.7]\"; identity=mailfrom; \
             envelope-from=\"joe@example.org\";",
        ),
        // The null sender: the HELO identity, without `envelope-from=`.
        (
            "client_address=2001:db8::9; sender=; helo_name=mx.helo.example",
            "softfail (domain of transitioning postmaster@mx.helo.example does not \
             designate 2001:db8::9 as permitted sender) client-ip=\"2001:db8::9\"; \
             helo=mx.helo.example; identity=helo;",
        ),
        (
            "client_address=192.0.2.1; sender=\"odd (local)\"@none.example; helo_name=h",
            "none (domain of \"odd \\(local\\)\"@none.example does not designate \
             permitted sender hosts) client-ip=192.0.2.1; helo=h; identity=mailfrom; \
             envelope-from=\"\\\"odd (local)\\\"@none.example\";",
        ),
    ] {
        let (rule, wire, _) = decide(policy, attrs, &received_spf_records());
        assert_eq!(rule, "tag");
        assert_eq!(wire, format!("PREPEND Received-SPF: {header}"), "{attrs}");
    }
    // A sender too long for the comment: the pairs that fit, well formed.
    let long = "x".repeat(300);
    let attrs = format!("client_address=192.0.2.1; sender={long}@example.org; helo_name=h");
    let (_, wire, _) = decide(policy, &attrs, &received_spf_records());
    assert_eq!(
        wire,
        "PREPEND Received-SPF: pass client-ip=192.0.2.1; helo=h; identity=mailfrom;"
    );
}

#[test]
fn received_spf_without_a_resolver_is_a_temperror() {
    let engine = engine(r#"rule tag { then PREPEND "Received-SPF: $received_spf" }"#);
    let mut scratch = Scratch::new();
    let frame = request_frame("client_address=192.0.2.1; sender=joe@example.org; helo_name=h");
    let request = Request::parse(&frame).unwrap_or_else(|e| panic!("{e}"));
    let d = engine.decide(&request, NOW, &mut scratch);
    assert_eq!(
        String::from_utf8_lossy(d.wire()),
        "PREPEND Received-SPF: temperror (temporary error looking up the SPF record of \
         joe@example.org) client-ip=192.0.2.1; helo=h; identity=mailfrom; \
         envelope-from=\"joe@example.org\";"
    );
}

#[test]
fn greylist_whitelist_spf_pass_skips_greylisting_for_a_pass() {
    let policy = r#"
greylist inbound {
    whitelist spf_pass
}
default DUNNO
"#;
    for (attrs, rule) in [
        (
            "client_address=192.0.2.1; sender=joe@example.org; recipient=r@example.com",
            "default",
        ),
        (
            "client_address=198.51.100.7; sender=joe@example.org; recipient=r@example.com",
            "inbound",
        ),
        (
            "client_address=198.51.100.7; sender=joe@none.example; recipient=r@example.com",
            "inbound",
        ),
    ] {
        let (got, _, _) = decide(policy, attrs, &received_spf_records());
        assert_eq!(got, rule, "{attrs}");
    }
}
