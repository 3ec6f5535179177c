//! Decisions that wait for outside facts: the queries asked up front, the
//! answers supplied, the three-valued rule for unknown facts, the blocking
//! form with a resolver, and a policy without facts deciding as before.

use std::net::IpAddr;

use policy_core::facts::{Answer, Query, QueryKind, Resolver};
use policy_core::{Request, Scratch, Step};

use crate::common::{engine, NOW};

fn rcpt(client: &str) -> Vec<u8> {
    format!(
        "request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address={client}\n\
         sender=a@example.org\nrecipient=b@example.net\n\n"
    )
    .into_bytes()
}

const LISTED: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

/// Answers from a table: (name, answer); anything else NXDOMAIN.
struct Table<'t> {
    answers: &'t [(&'t str, Option<&'t [IpAddr]>)],
    asked: Vec<String>,
}

impl Resolver for Table<'_> {
    fn resolve(&mut self, query: Query<'_>) -> Answer<'_> {
        assert_eq!(query.kind, QueryKind::A);
        let name = String::from_utf8_lossy(query.name).into_owned();
        self.asked.push(name.clone());
        match self.answers.iter().find(|(n, _)| *n == name) {
            Some((_, Some(found))) => Answer::Addresses(found),
            Some((_, None)) => Answer::Unknown,
            None => Answer::NotFound,
        }
    }
}

const POLICY: &str = r#"
rule listed { if client_address in dnsbl "bl.example" then REJECT "5.7.1 listed" }
rule both { if client_address in dnsbl "bl.example" or client_address in dnsbl "other.example" then DEFER "4.7.1 either" }
rule clean { unless client_address in dnsbl "bl.example" then OK }
default DUNNO
"#;

#[test]
fn queries_up_front_then_decided() {
    let engine = engine(POLICY);
    let mut scratch = Scratch::new();
    let frame = rcpt("192.0.2.9");
    let request = Request::parse(&frame).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        engine.start(&request, NOW, &mut scratch),
        Step::NeedFacts
    ));
    // Every query the policy may need, once each, at once.
    let asked: Vec<String> = scratch
        .facts()
        .pending()
        .map(|(_, q)| q.to_string())
        .collect();
    assert_eq!(
        asked,
        ["9.2.0.192.bl.example A", "9.2.0.192.other.example A"]
    );
    let ids: Vec<_> = scratch.facts().pending().map(|(id, _)| id).collect();
    scratch.facts_mut().supply(ids[0], Answer::NotFound);
    // One answer still missing: not decided yet.
    assert!(matches!(
        engine.resume(&request, NOW, &mut scratch),
        Step::NeedFacts
    ));
    scratch
        .facts_mut()
        .supply(ids[1], Answer::Addresses(&[LISTED]));
    match engine.resume(&request, NOW, &mut scratch) {
        Step::Decided(d) => {
            assert_eq!(d.rule, "both");
            assert_eq!(d.wire(), b"DEFER 4.7.1 either");
            assert_eq!(d.unknown_facts(), 0);
        }
        Step::NeedFacts => panic!("all answered"),
    }
}

#[test]
fn unknown_facts_follow_the_three_valued_rule() {
    // (bl.example, other.example) -> deciding rule
    let unknown = None;
    let listed: Option<&[IpAddr]> = Some(&[LISTED]);
    let clean: Option<&[IpAddr]> = Some(&[]);
    // An answer outside 127/8 (a resolver's NXDOMAIN rewriting) is no listing.
    let ad: Option<&[IpAddr]> = Some(&[IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 1))]);
    type Row<'a> = (Option<&'a [IpAddr]>, Option<&'a [IpAddr]>, &'a str, usize);
    let rows: &[Row<'_>] = &[
        (listed, clean, "listed", 0),
        (clean, clean, "clean", 0),
        (ad, clean, "clean", 0),
        // `listed` unknown: skipped; `both` is true whatever it is (the
        // other list says yes); `true or unknown` is true.
        (unknown, listed, "both", 1),
        // Unknown and false: `both` unknown, `clean` (`not unknown`)
        // unknown: nothing applies.
        (unknown, clean, "default", 1),
        (unknown, unknown, "default", 2),
    ];
    for &(bl, other, rule, unknowns) in rows {
        let engine = engine(POLICY);
        let mut scratch = Scratch::new();
        let frame = rcpt("192.0.2.9");
        let request = Request::parse(&frame).unwrap_or_else(|e| panic!("{e}"));
        let Step::NeedFacts = engine.start(&request, NOW, &mut scratch) else {
            panic!("facts needed");
        };
        let ids: Vec<_> = scratch.facts().pending().map(|(id, _)| id).collect();
        for (id, answer) in ids.into_iter().zip([bl, other]) {
            // Unknown ones are left to the deadline.
            if let Some(found) = answer {
                scratch.facts_mut().supply(id, Answer::Addresses(found));
            }
        }
        scratch.facts_mut().expire();
        let Step::Decided(d) = engine.resume(&request, NOW, &mut scratch) else {
            panic!("expired facts decide");
        };
        assert_eq!(
            (d.rule, d.unknown_facts()),
            (rule, unknowns),
            "{bl:?} {other:?}"
        );
    }
}

#[test]
fn false_and_unknown_is_false_and_a_tautology_holds() {
    let engine = engine(
        r#"
rule a { if client_address in dnsbl "bl.example" and sender == "nobody@example.org" then REJECT }
rule b { if client_address in dnsbl "bl.example" or not client_address in dnsbl "bl.example" then OK }
"#,
    );
    let mut scratch = Scratch::new();
    let frame = rcpt("192.0.2.9");
    let request = Request::parse(&frame).unwrap_or_else(|e| panic!("{e}"));
    // No resolver: `decide` takes every fact as unknown.
    let d = engine.decide(&request, NOW, &mut scratch);
    assert_eq!((d.rule, d.unknown_facts()), ("b", 1));
}

#[test]
fn decide_with_a_resolver_asks_each_query_once() {
    let engine = engine(POLICY);
    let mut scratch = Scratch::new();
    let answers: &[(&str, Option<&[IpAddr]>)] = &[("9.2.0.192.bl.example", Some(&[LISTED]))];
    let mut resolver = Table {
        answers,
        asked: Vec::new(),
    };
    let frame = rcpt("192.0.2.9");
    let request = Request::parse(&frame).unwrap_or_else(|e| panic!("{e}"));
    let d = engine.decide_with(&request, NOW, &mut scratch, &mut resolver);
    assert_eq!(d.wire(), b"REJECT 5.7.1 listed");
    assert_eq!(
        resolver.asked,
        ["9.2.0.192.bl.example", "9.2.0.192.other.example"]
    );
    // IPv6 clients: reversed nibbles.
    resolver.asked.clear();
    let frame = rcpt("2001:db8::1");
    let request = Request::parse(&frame).unwrap_or_else(|e| panic!("{e}"));
    let d = engine.decide_with(&request, NOW, &mut scratch, &mut resolver);
    assert_eq!(d.rule, "clean");
    assert!(
        resolver.asked[0].starts_with("1.0.0.0.0.0.0.0"),
        "{:?}",
        resolver.asked
    );
    assert!(resolver.asked[0].ends_with(".8.b.d.0.1.0.0.2.bl.example"));
}

#[test]
fn a_policy_without_facts_decides_at_start() {
    let engine = engine("rule r { if sender_domain == \"example.org\" then REJECT }\n");
    let mut scratch = Scratch::new();
    let frame = rcpt("192.0.2.9");
    let request = Request::parse(&frame).unwrap_or_else(|e| panic!("{e}"));
    match engine.start(&request, NOW, &mut scratch) {
        Step::Decided(d) => assert_eq!(d.rule, "r"),
        Step::NeedFacts => panic!("no facts in this policy"),
    }
    assert_eq!(scratch.facts().pending().count(), 0);
}

#[test]
fn dnsbl_conditions_are_checked() {
    let rows: &[(&str, &str)] = &[
        (
            r#"rule r { if sender in dnsbl "bl.example" then REJECT }"#,
            "policy.conf:1:13: error: `sender` is not an address; expected an IP field \
             (client_address) before `in dnsbl`",
        ),
        (
            r#"rule r { if client_address in dnsbl "bl..example" then REJECT }"#,
            "policy.conf:1:37: error: `bl..example` is not a DNS zone",
        ),
    ];
    crate::common::assert_errors_start_with(rows);
    // A list named `dnsbl` is still a list.
    let src = "list dnsbl { 192.0.2.0/24 }\nrule r { if client_address in dnsbl then REJECT }\n";
    let engine = engine(src);
    let mut scratch = Scratch::new();
    let frame = rcpt("192.0.2.9");
    let request = Request::parse(&frame).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(engine.start(&request, NOW, &mut scratch), Step::Decided(d) if d.rule == "r"));
}
