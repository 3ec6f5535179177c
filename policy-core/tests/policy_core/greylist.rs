//! Greylist rules through the whole pipeline (compile, decide with a
//! simulated clock, reload, explain): the timers, auto-whitelisting, the
//! client network, the whitelists, the `then` and `prepend` actions and
//! dry-run; the compile errors; and a proptest that no triplet is accepted
//! before its delay has passed since its first attempt.

use std::collections::HashMap;

use policy_core::{Engine, NoFiles, Policy, Request, Scratch, Timestamp};
use proptest::prelude::*;

use crate::common::{at, compile, engine, rule_and_wire};

const SEC: u64 = 1000;
const MIN: u64 = 60 * SEC;
const HOUR: u64 = 60 * MIN;
const DAY: u64 = 24 * HOUR;

/// A RCPT request from `client` (address), `sender` to `recipient`.
fn rcpt(client: &str, sender: &str, recipient: &str) -> Vec<u8> {
    format!(
        "request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address={client}\n\
         client_name=mx.example.net\nsender={sender}\nrecipient={recipient}\ninstance=1\n\n"
    )
    .into_bytes()
}

/// The rule and wire answer of `engine`'s policy to `frame` at `now`.
fn decide(engine: &Engine, frame: &[u8], now: Timestamp) -> (String, String) {
    let request = Request::parse(frame).unwrap_or_else(|e| panic!("{e}"));
    let mut scratch = Scratch::new();
    rule_and_wire(&engine.decide(&request, now, &mut scratch))
}

const BASIC: &str =
    "greylist grey {\n  prepend \"X-Greylist: delayed $delay seconds by $rule\"\n}\n";

#[test]
fn first_attempt_too_early_in_time_and_known() {
    let p = engine(BASIC);
    let f = rcpt("192.0.2.10", "alice@example.net", "bob@example.com");
    // First attempt: deferred for the whole delay (5 minutes).
    assert_eq!(
        decide(&p, &f, at(0)),
        (
            "grey".to_owned(),
            "DEFER_IF_PERMIT 4.7.1 Greylisted, try again in 300 seconds".to_owned()
        )
    );
    // Too early: deferred again, and the delay is not reset.
    assert_eq!(
        decide(&p, &f, at(299 * SEC)).1,
        "DEFER_IF_PERMIT 4.7.1 Greylisted, try again in 1 seconds"
    );
    assert_eq!(
        decide(&p, &f, at(300 * SEC - 1)).1,
        "DEFER_IF_PERMIT 4.7.1 Greylisted, try again in 1 seconds"
    );
    // In time: the first accepted retry gets the header (nothing else decides).
    assert_eq!(
        decide(&p, &f, at(300 * SEC)),
        (
            "grey".to_owned(),
            "PREPEND X-Greylist: delayed 300 seconds by grey".to_owned()
        )
    );
    // Known from then on: passes without a header.
    assert_eq!(
        decide(&p, &f, at(301 * SEC)),
        ("default".to_owned(), "DUNNO".to_owned())
    );
    assert_eq!(decide(&p, &f, at(20 * DAY)).1, "DUNNO");
}

#[test]
fn unretried_triplet_starts_over_after_the_retry_window() {
    let p = engine("greylist grey { delay 5m retry_window 2d }");
    let f = rcpt("192.0.2.10", "alice@example.net", "bob@example.com");
    assert!(decide(&p, &f, at(0)).1.starts_with("DEFER_IF_PERMIT"));
    // Past the retry window: a first attempt again, the full delay. (Times
    // are kept in whole seconds, rounded so that a retry never passes early:
    // a first attempt at a fraction of a second counts from the next one.)
    assert_eq!(
        decide(&p, &f, at(2 * DAY + SEC)).1,
        "DEFER_IF_PERMIT 4.7.1 Greylisted, try again in 300 seconds"
    );
    assert!(decide(&p, &f, at(2 * DAY + SEC + 299 * SEC))
        .1
        .starts_with("DEFER"));
    assert_eq!(decide(&p, &f, at(2 * DAY + SEC + 300 * SEC)).1, "DUNNO");
    // A first attempt at a fraction of a second counts from the next
    // second: 300.999 s left, shown rounded up.
    let g = rcpt("192.0.2.10", "dave@example.net", "bob@example.com");
    assert_eq!(
        decide(&p, &g, at(3 * DAY + 1)).1,
        "DEFER_IF_PERMIT 4.7.1 Greylisted, try again in 301 seconds"
    );
    assert!(decide(&p, &g, at(3 * DAY + 300 * SEC))
        .1
        .starts_with("DEFER"));
    assert_eq!(decide(&p, &g, at(3 * DAY + 301 * SEC)).1, "DUNNO");
}

#[test]
fn passed_triplet_silent_past_max_age_starts_over() {
    let p = engine("greylist grey { max_age 35d auto_whitelist 0 }");
    let f = rcpt("192.0.2.10", "alice@example.net", "bob@example.com");
    assert!(decide(&p, &f, at(0)).1.starts_with("DEFER"));
    assert_eq!(decide(&p, &f, at(5 * MIN)).1, "DUNNO");
    // Seen within max_age keeps it known...
    assert_eq!(decide(&p, &f, at(5 * MIN + 30 * DAY)).1, "DUNNO");
    // ...silent for longer than max_age: greylisted again.
    assert!(decide(&p, &f, at(5 * MIN + 30 * DAY + 36 * DAY))
        .1
        .starts_with("DEFER"));
}

#[test]
fn the_client_network_is_a_24_or_a_64_by_default() {
    let p = engine("greylist grey { auto_whitelist 0 }");
    // First attempt from one address, retry from another of the same /24.
    let first = rcpt("192.0.2.10", "alice@example.net", "bob@example.com");
    let retry = rcpt("192.0.2.77", "alice@example.net", "bob@example.com");
    assert!(decide(&p, &first, at(0)).1.starts_with("DEFER"));
    assert_eq!(decide(&p, &retry, at(5 * MIN)).1, "DUNNO");
    // Another /24 is another triplet.
    let other = rcpt("192.0.3.10", "alice@example.net", "bob@example.com");
    assert!(decide(&p, &other, at(5 * MIN)).1.starts_with("DEFER"));
    // IPv6: the /64.
    let v6a = rcpt("2001:db8:1:2::10", "carol@example.net", "bob@example.com");
    let v6b = rcpt(
        "2001:db8:1:2:ffff::1",
        "carol@example.net",
        "bob@example.com",
    );
    let v6c = rcpt("2001:db8:1:3::10", "carol@example.net", "bob@example.com");
    assert!(decide(&p, &v6a, at(0)).1.starts_with("DEFER"));
    assert_eq!(decide(&p, &v6b, at(5 * MIN)).1, "DUNNO");
    assert!(decide(&p, &v6c, at(5 * MIN)).1.starts_with("DEFER"));
    // The exact address when asked.
    let exact = engine("greylist grey { client client_address auto_whitelist 0 }");
    assert!(decide(&exact, &first, at(0)).1.starts_with("DEFER"));
    assert!(decide(&exact, &retry, at(5 * MIN)).1.starts_with("DEFER"));
    assert_eq!(decide(&exact, &first, at(5 * MIN)).1, "DUNNO");
}

#[test]
fn recipients_and_senders_are_compared_ignoring_case() {
    let p = engine("greylist grey { auto_whitelist 0 }");
    let first = rcpt("192.0.2.10", "Alice@Example.NET", "Bob@Example.com");
    let retry = rcpt("192.0.2.10", "alice@example.net", "bob@example.com");
    assert!(decide(&p, &first, at(0)).1.starts_with("DEFER"));
    assert_eq!(decide(&p, &retry, at(5 * MIN)).1, "DUNNO");
}

#[test]
fn a_client_network_that_passed_five_times_an_hour_apart_is_whitelisted() {
    let p = engine("greylist grey { auto_whitelist 5 }");
    let mut now = 0;
    for i in 0..5 {
        let f = rcpt(
            "192.0.2.10",
            &format!("s{i}@example.net"),
            "bob@example.com",
        );
        assert!(decide(&p, &f, at(now)).1.starts_with("DEFER"), "pass {i}");
        assert_eq!(decide(&p, &f, at(now + 5 * MIN)).1, "DUNNO", "pass {i}");
        now += HOUR + 5 * MIN;
    }
    // A new sender from that network is not greylisted any more.
    let new = rcpt("192.0.2.99", "new@example.org", "carol@example.com");
    assert_eq!(decide(&p, &new, at(now)).1, "DUNNO");
    // After the network is silent for longer than max_age, it is again.
    let later = rcpt("192.0.2.99", "later@example.org", "carol@example.com");
    assert!(decide(&p, &later, at(now + 36 * DAY))
        .1
        .starts_with("DEFER"));
}

#[test]
fn passes_within_an_hour_count_once_toward_the_auto_whitelist() {
    let p = engine("greylist grey { auto_whitelist 2 }");
    // Two passes within the same hour: counted once.
    for i in 0..2 {
        let f = rcpt(
            "192.0.2.10",
            &format!("s{i}@example.net"),
            "bob@example.com",
        );
        assert!(decide(&p, &f, at(i * 10 * MIN)).1.starts_with("DEFER"));
        assert_eq!(decide(&p, &f, at(i * 10 * MIN + 5 * MIN)).1, "DUNNO");
    }
    let new = rcpt("192.0.2.10", "new@example.org", "bob@example.com");
    assert!(decide(&p, &new, at(30 * MIN)).1.starts_with("DEFER"));
}

#[test]
fn conditions_and_dry_run() {
    let p = engine(
        "list trusted { 198.51.100.0/24 }\n\
         greylist grey { unless authenticated or client_address in trusted }",
    );
    let trusted = rcpt("198.51.100.7", "a@example.net", "b@example.com");
    assert_eq!(decide(&p, &trusted, at(0)).1, "DUNNO");
    let dry = engine("greylist grey dry-run { auto_whitelist 0 }");
    let f = rcpt("192.0.2.10", "a@example.net", "b@example.com");
    let request = Request::parse(&f).unwrap_or_else(|e| panic!("{e}"));
    let mut scratch = Scratch::new();
    let d = dry.decide(&request, at(0), &mut scratch);
    assert_eq!(d.wire(), b"DUNNO");
    let hits: Vec<String> = d
        .dry_run
        .iter()
        .map(|h| format!("{} {}", h.rule, String::from_utf8_lossy(h.wire)))
        .collect();
    assert_eq!(
        hits,
        ["grey DEFER_IF_PERMIT 4.7.1 Greylisted, try again in 300 seconds"]
    );
    // The state was kept as when enforcing: the retry passes quietly.
    let d = dry.decide(&request, at(5 * MIN), &mut scratch);
    assert_eq!(d.wire(), b"DUNNO");
    assert!(d.dry_run.is_empty());
}

#[test]
fn the_header_is_sent_only_when_nothing_else_decides() {
    let p = engine(
        "greylist grey { prepend \"X-Greylist: delayed $delay seconds\" }\n\
         rule block { if recipient == \"blocked@example.com\" then REJECT \"5.7.1 no\" }\n",
    );
    let f = rcpt("192.0.2.10", "a@example.net", "blocked@example.com");
    assert!(decide(&p, &f, at(0)).1.starts_with("DEFER"));
    assert_eq!(decide(&p, &f, at(6 * MIN)).1, "REJECT 5.7.1 no");
    // Not with a default other than DUNNO.
    let p =
        engine("greylist grey { prepend \"X-Greylist: delayed $delay seconds\" }\ndefault OK\n");
    let f = rcpt("192.0.2.10", "a@example.net", "b@example.com");
    assert!(decide(&p, &f, at(0)).1.starts_with("DEFER"));
    assert_eq!(decide(&p, &f, at(6 * MIN)).1, "OK");
}

#[test]
fn other_states_are_not_greylisted() {
    let p = engine("greylist grey { }");
    let mail = b"request=smtpd_access_policy\nprotocol_state=MAIL\nclient_address=192.0.2.1\nsender=a@b.example\n\n";
    assert_eq!(decide(&p, mail, at(0)).1, "DUNNO");
}

#[test]
fn a_reload_keeps_an_unchanged_greylist_and_resets_a_changed_one() {
    let engine = Engine::new(compile("greylist grey { auto_whitelist 0 }"));
    let f = rcpt("192.0.2.10", "a@example.net", "b@example.com");
    let request = Request::parse(&f).unwrap_or_else(|e| panic!("{e}"));
    let mut scratch = Scratch::new();
    assert!(engine
        .decide(&request, at(0), &mut scratch)
        .wire()
        .starts_with(b"DEFER"));
    // Another `then` text: the state is kept.
    let kept = engine.replace(compile(
        "greylist grey { auto_whitelist 0 then DEFER_IF_PERMIT \"4.7.1 later\" }",
    ));
    assert_eq!(kept, ["grey"]);
    assert_eq!(
        engine.decide(&request, at(5 * MIN), &mut scratch).wire(),
        b"DUNNO"
    );
    // Another delay: the state starts over.
    let kept = engine.replace(compile("greylist grey { auto_whitelist 0 delay 10m }"));
    assert!(kept.is_empty());
    assert!(engine
        .decide(&request, at(6 * MIN), &mut scratch)
        .wire()
        .starts_with(b"DEFER"));
}

#[test]
fn explaining_changes_nothing() {
    let p = engine("greylist grey { auto_whitelist 0 }");
    let f = rcpt("192.0.2.10", "a@example.net", "b@example.com");
    let request = Request::parse(&f).unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..3 {
        let e = p.explain(&request, at(0));
        assert_eq!(e.rule, "grey");
        assert!(e.action.starts_with("DEFER_IF_PERMIT"));
    }
    // The first real attempt is still a first attempt.
    assert_eq!(
        decide(&p, &f, at(0)).1,
        "DEFER_IF_PERMIT 4.7.1 Greylisted, try again in 300 seconds"
    );
    let e = p.explain(&request, at(5 * MIN)).to_string();
    assert!(
        e.contains("rule grey (line 1): passes greylisting (continues)"),
        "{e}"
    );
}

#[test]
fn greylist_errors_are_located() {
    let cases: &[(&str, usize, usize, &str)] = &[
        (
            "greylist g { client client_address/24 }",
            1,
            36,
            "give both prefix lengths",
        ),
        (
            "greylist g { client sender }",
            1,
            21,
            "the client of a triplet is `client_address`",
        ),
        (
            "greylist g { delay 5m retry_window 1m }",
            1,
            36,
            "a retry window shorter than the delay: no retry could ever pass; expected \
             `retry_window` at least `delay` (5m), found 1m",
        ),
        ("greylist g { delay 0s }", 1, 20, "a duration from 1s"),
        (
            "greylist g { then REJECT \"$delay\" }",
            1,
            26,
            "`$delay` has a value only in a greylist's `prepend` header",
        ),
        (
            "greylist g { prepend \"X-G: $retry_after\" }",
            1,
            22,
            "`$retry_after` has a value only in",
        ),
        (
            "greylist g { prepend \"not a header\" }",
            1,
            22,
            "expected a header",
        ),
        (
            "greylist g { whitelist people file \"x\" }",
            1,
            24,
            "unknown whitelist `people`",
        ),
        (
            "greylist g { state RCPT }",
            1,
            20,
            "a greylist has no `state` clause",
        ),
        (
            "greylist g { delay 5m delay 6m }",
            1,
            23,
            "each timer once per greylist",
        ),
        (
            "greylist g { capacity 0 }",
            1,
            23,
            "a capacity from 1 to 1000000000 triplets; found 0",
        ),
        (
            "greylist g { auto_whitelist 1000001 }",
            1,
            29,
            "a number of passes from 0 (off) to 1000000; found 1000001",
        ),
        (
            "greylist g { auto_whitelist 5MB }",
            1,
            29,
            "a number of passes",
        ),
        (
            "greylist g { bogus }",
            1,
            14,
            "expected `if`, `unless`, `client`",
        ),
        (
            "rule r { if sender == \"x\" then REJECT \"$delay\" }",
            1,
            39,
            "`$delay` has a value only",
        ),
        (
            "rule g { if tls then OK }\ngreylist g { }",
            2,
            10,
            "duplicate rule name `g`",
        ),
    ];
    let mut failures = Vec::new();
    for &(src, line, column, fragment) in cases {
        match Policy::compile("policy.conf", src, &mut NoFiles) {
            Ok(_) => failures.push(format!("{src:?}: compiles")),
            Err(e) => {
                let first = &e.errors[0];
                if (first.line as usize, first.column as usize) != (line, column)
                    || !first.message.contains(fragment)
                {
                    failures.push(format!(
                        "{src:?}: expected {line}:{column} {fragment:?}, got\n{e}"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

proptest! {
    /// Random arrivals of a few triplets: a triplet is accepted (answered
    /// without a defer) only once `delay` has passed since the first attempt
    /// of its current cycle, by a naive model of the timers.
    #[test]
    fn never_accepted_before_the_delay(
        steps in proptest::collection::vec((0u64..(3 * MIN), 0usize..4), 1..80),
    ) {
        let delay = 2 * MIN;
        let retry_window = 10 * MIN;
        let p = engine("greylist g { delay 2m retry_window 10m max_age 1d auto_whitelist 0 }");
        let senders = ["a@example.net", "b@example.net", "c@example.net", "d@example.net"];
        // Model: triplet -> (first attempt of the cycle, passed).
        let mut model: HashMap<usize, (u64, bool)> = HashMap::new();
        let mut now = 0u64;
        for (advance, who) in steps {
            now += advance;
            let f = rcpt("192.0.2.10", senders[who], "bob@example.com");
            let (_, wire) = decide(&p, &f, at(now));
            let accepted = wire == "DUNNO";
            // (first attempt, passed); the table keeps times in whole
            // seconds rounded up, which decides when a cycle starts over.
            let entry = model.entry(who).or_insert((now, false));
            let first_kept = entry.0.div_ceil(SEC) * SEC;
            if !entry.1 && now > first_kept + retry_window {
                *entry = (now, false);
            }
            if accepted {
                prop_assert!(
                    entry.1 || now - entry.0 >= delay,
                    "{} accepted {} ms after its first attempt", senders[who], now - entry.0
                );
                entry.1 = true;
            }
        }
    }
}

#[test]
fn a_retried_message_gets_one_header_whatever_its_recipients() {
    let p = engine(BASIC);
    let mut scratch = Scratch::new();
    let frame = |recipient: &str, instance: &str| {
        format!(
            "request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=192.0.2.10\n\
             sender=a@example.net\nrecipient={recipient}\ninstance={instance}\n\n"
        )
    };
    let mut answers = Vec::new();
    for (recipient, instance, now) in [
        ("one@example.com", "first", at(0)),
        ("two@example.com", "first", at(0)),
        ("one@example.com", "retry", at(6 * MIN)),
        ("two@example.com", "retry", at(6 * MIN)),
    ] {
        let f = frame(recipient, instance);
        let request = Request::parse(f.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let d = p.decide(&request, now, &mut scratch);
        answers.push(String::from_utf8_lossy(d.wire()).into_owned());
    }
    assert!(answers[0].starts_with("DEFER_IF_PERMIT"));
    assert!(answers[1].starts_with("DEFER_IF_PERMIT"));
    assert_eq!(
        answers[2],
        "PREPEND X-Greylist: delayed 360 seconds by grey"
    );
    assert_eq!(answers[3], "DUNNO");
}

#[test]
fn a_greylist_without_conditions_does_not_hide_later_rules() {
    let compiled = Policy::compile(
        "policy.conf",
        "greylist grey { }\nrule late { if tls then REJECT \"5.7.1 no\" }\nrule last { then DUNNO }\n",
        &mut NoFiles,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let warnings: Vec<String> = compiled.warnings.iter().map(ToString::to_string).collect();
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn a_whole_address_is_one_client_however_it_is_written() {
    let engine = Engine::new(compile(
        "greylist grey { client client_address auto_whitelist 0 }",
    ));
    let f = rcpt("192.0.2.10", "a@example.net", "b@example.com");
    let request = Request::parse(&f).unwrap_or_else(|e| panic!("{e}"));
    let mut scratch = Scratch::new();
    assert!(engine
        .decide(&request, at(0), &mut scratch)
        .wire()
        .starts_with(b"DEFER"));
    let kept = engine.replace(compile(
        "greylist grey { client client_address/32/128 auto_whitelist 0 }",
    ));
    assert_eq!(kept, ["grey"]);
    assert_eq!(
        engine.decide(&request, at(5 * MIN), &mut scratch).wire(),
        b"DUNNO"
    );
}
