//! Limit rules through the public API: every compile error of a `limit` item
//! (located, naming what was expected), the window guarantee against a naive
//! log on random arrival sequences, exactness under threads, and counters
//! across `Engine::replace`.
//!
//! The counting semantics request by request are in the golden scenarios
//! (`tests/scenarios/limits-*`); zero allocation is tested by
//! `benches/tests/zero_alloc.rs`.

use std::collections::HashMap;
use std::sync::Arc;

use policy_core::{Engine, NoFiles, Policy, Request, Scratch, Severity, State, Timestamp};
use proptest::prelude::*;

use crate::common::{at, compile, compiled, engine, rule_and_wire};

/// A request frame of `name=value` pairs.
fn frame(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::from(&b"request=smtpd_access_policy\n"[..]);
    for (name, value) in pairs {
        out.extend_from_slice(format!("{name}={value}\n").as_bytes());
    }
    out.push(b'\n');
    out
}

/// (rule, wire action) of `pairs` decided by `engine` at `now` on `scratch`.
fn decide(
    engine: &Engine,
    pairs: &[(&str, &str)],
    now: Timestamp,
    scratch: &mut Scratch,
) -> (String, String) {
    let bytes = frame(pairs);
    let request = Request::parse(&bytes).expect("test request parses");
    rule_and_wire(&engine.decide(&request, now, scratch))
}

// ---------------------------------------------------------------------------
// Compile errors.

#[test]
fn every_limit_error_is_located_and_says_what_was_expected() {
    // (policy, line, column, fragment of the message): exactly one error.
    let rows: &[(&str, u32, u32, &str)] = &[
        // Required clauses: reported at the limit's head.
        (
            "limit l {\n  count recipients\n  max 1 per 1h\n}",
            1,
            1,
            "limit `l` has no key; expected `key FIELD`",
        ),
        (
            "limit l {\n  key sender\n  max 1 per 1h\n}",
            1,
            1,
            "limit `l` does not say what it counts; expected `count messages`, `count recipients`, `count bytes` or `count distinct FIELD`",
        ),
        (
            "limit l {\n  key sender\n  count messages\n}",
            1,
            1,
            "limit `l` has no maximum; expected `max N per DURATION`",
        ),
        // Keys.
        (
            "limit l {\n  key client_address/24\n  count messages\n  max 1 per 1h\n}",
            2,
            22,
            "give both prefix lengths, IPv4 then IPv6: `client_address/24/64`",
        ),
        (
            "limit l {\n  key client_address/24/64/8\n  count messages\n  max 1 per 1h\n}",
            2,
            7,
            "too many prefix lengths",
        ),
        (
            "limit l {\n  key client_address/33/64\n  count messages\n  max 1 per 1h\n}",
            2,
            22,
            "an IPv4 prefix length from 0 to 32; found 33",
        ),
        (
            "limit l {\n  key server_address/24/129\n  count messages\n  max 1 per 1h\n}",
            2,
            25,
            "an IPv6 prefix length from 0 to 128; found 129",
        ),
        (
            "limit l {\n  key sender/24/64\n  count messages\n  max 1 per 1h\n}",
            2,
            7,
            "`sender` is not an IP address field; expected prefix lengths only on client_address or server_address",
        ),
        (
            "limit l {\n  key sasl_username, sender_domian\n  count messages\n  max 1 per 1h\n}",
            2,
            22,
            "unknown field `sender_domian`",
        ),
        (
            "limit l {\n  key sender\n  key sasl_username\n  count messages\n  max 1 per 1h\n}",
            3,
            3,
            "one `key` clause per limit",
        ),
        // No `state` clause.
        (
            "limit l {\n  state RCPT\n  key sender\n  count messages\n  max 1 per 1h\n}",
            2,
            9,
            "a limit has no `state` clause",
        ),
        // What is counted, and when.
        (
            "limit l {\n  key sender\n  count letters\n  max 1 per 1h\n}",
            3,
            9,
            "what to count: `messages`, `recipients`, `bytes` or `distinct FIELD`",
        ),
        (
            "limit l {\n  key sender\n  count messages\n  max 10k per 1h\n}",
            4,
            7,
            "a size unit on a count of messages or recipients",
        ),
        (
            "limit l {\n  key sender\n  count recipients\n  max 1MB per 1h\n}",
            4,
            7,
            "a size unit on a count of messages or recipients",
        ),
        (
            "limit l {\n  key sender\n  count bytes\n  at rcpt\n  max 10MB per 1h\n}",
            4,
            6,
            "bytes are counted at END-OF-MESSAGE, where `size` is exact; expected `at end-of-message` or no `at`",
        ),
        (
            "limit l {\n  key sender\n  count bytes * recipients\n  at data\n  max 10MB per 1h\n}",
            4,
            6,
            "bytes are counted at END-OF-MESSAGE",
        ),
        (
            "limit l {\n  key sender\n  count messages\n  at queue\n  max 1 per 1h\n}",
            4,
            6,
            "unknown counting point `queue`; expected `rcpt`, `data` or `end-of-message`",
        ),
        (
            "limit l {\n  if recipient_domain == \"example.com\"\n  key sender\n  count recipients\n  at data\n  max 1 per 1h\n}",
            5,
            6,
            "limit `l` counts at DATA, where a request has no recipient",
        ),
        (
            "limit l {\n  key recipient\n  count recipients\n  at end-of-message\n  max 1 per 1h\n}",
            4,
            6,
            "limit `l` counts at END-OF-MESSAGE, where a request has no recipient",
        ),
        (
            "limit l {\n  key sender, recipient_domain\n  count messages\n  max 1 per 1h\n}",
            2,
            15,
            "`count messages` counts a message once, but `recipient_domain` differs",
        ),
        (
            "limit l {\n  key sender\n  count messages\n  max 1 per 1h\n  overrides { a@example.org 2 per 1h  A@Example.ORG 3 per 1h }\n}",
            5,
            39,
            "a second override for the key \"A@Example.ORG\"",
        ),
        (
            "limit l {\n  key sender\n  count messages\n  max 1 per 1h\n  overrides { a@example.org 2 per 1h, 3 per 1h }\n}",
            5,
            45,
            "a second maximum for the same window in one override",
        ),
        (
            "limit l {\n  unless recipient_local is empty\n  key sender\n  count bytes\n  max 1MB per 1h\n}",
            1,
            1,
            "counts at END-OF-MESSAGE, where a request has no recipient",
        ),
        // Windows.
        (
            "limit l {\n  key sender\n  count messages\n  max 1 per 1s, 2 per 1m, 3 per 1h, 4 per 1d, 5 per 2d\n}",
            4,
            47,
            "too many windows; expected at most 4 in one limit, found 5",
        ),
        (
            "limit l {\n  key sender\n  count messages\n  max 10 per 1h, 20 per 60m\n}",
            4,
            25,
            "a second window of the same length",
        ),
        (
            "limit l {\n  key sender\n  count messages\n  max 1 per 0s\n}",
            4,
            13,
            "a window from 1s to 400d",
        ),
        (
            "limit l {\n  key sender\n  count messages\n  max 1 per 401d\n}",
            4,
            13,
            "a window from 1s to 400d",
        ),
        (
            "limit l {\n  key sender\n  count messages\n  max 1 per 1y\n}",
            4,
            14,
            "a duration: a number and a unit s, m, h, d or w",
        ),
        (
            "limit l {\n  key sender\n  count messages\n  max 1 in 1h\n}",
            4,
            9,
            "`per` after the maximum",
        ),
        // Overrides.
        (
            "limit l {\n  key sasl_username, client_address/24/64\n  count messages\n  max 1 per 1h\n  overrides { \"joe\" 5 per 1h }\n}",
            5,
            15,
            "override key \"joe\" does not fit the limit's key; expected 2 part(s)",
        ),
        (
            "limit l {\n  key client_address/24/64\n  count messages\n  max 1 per 1h\n  overrides { \"mail.example.com\" 5 per 1h }\n}",
            5,
            15,
            "does not fit the limit's key",
        ),
        (
            "limit l {\n  key client_address/24/64\n  count messages\n  max 1 per 1h\n  overrides { \"192.0.2.0/16\" 5 per 1h }\n}",
            5,
            15,
            "does not fit the limit's key",
        ),
        (
            "limit l {\n  key sasl_username\n  count messages\n  max 1 per 1h, 10 per 1d\n  overrides { joe 5 per 2h }\n}",
            5,
            25,
            "an override for a window the limit does not have; expected one of 1h, 1d",
        ),
        (
            "limit l {\n  key sasl_username\n  count messages\n  max 1 per 1h\n  overrides { joe }\n}",
            5,
            19,
            "a maximum, as in `max 100 per 1h`",
        ),
        // The `over` action and the limit variables.
        (
            "rule r { if authenticated then DEFER \"4.7.1 try again in $retry_after seconds\" }",
            1,
            38,
            "`$retry_after` has a value only in a limit's `over` action",
        ),
        (
            "rule r { if authenticated then REJECT \"5.7.1 ${limit} per $window\" }",
            1,
            39,
            "`$limit` has a value only in a limit's `over` action",
        ),
        ("default DEFER \"4.7.1 $key\"", 1, 15, "`$key` has a value only in a limit's `over` action"),
        (
            "limit l {\n  key sender\n  count messages\n  max 1 per 1h\n  over REJECT \"4.7.1 no\"\n}",
            5,
            15,
            "expected enhanced status class 5, got 4",
        ),
        (
            "limit l {\n  key sender\n  count messages\n  max 1 per 1h\n  over DEFER \"$retry_after seconds to wait\"\n}",
            5,
            15,
            "the text starts with `$retry_after`, a number, which reads as a reply code when it has three digits",
        ),
        (
            "limit l {\n  key sender\n  count messages\n  max 1 per 1h\n  over DEFER \"4.7.1 $bogus\"\n}",
            5,
            21,
            "unknown template variable",
        ),
        // Capacity.
        (
            "limit l {\n  key sender\n  count messages\n  max 1 per 1h\n  capacity 0\n}",
            5,
            12,
            "a capacity from 1 to 100000000 keys; found 0",
        ),
        (
            "limit l {\n  key sender\n  count messages\n  max 1 per 1h\n  capacity 100000001\n}",
            5,
            12,
            "a capacity from 1 to 100000000 keys; found 100000001",
        ),
        (
            "limit l {\n  key sender\n  count messages\n  max 1 per 1h\n  capacity 1k\n}",
            5,
            12,
            "a capacity from 1 to 100000000 keys; found 1k",
        ),
        // Names.
        (
            "rule l { then DUNNO }\nlimit l {\n  key sender\n  count messages\n  max 1 per 1h\n}",
            2,
            7,
            "duplicate rule name `l`",
        ),
        (
            "limit l {\n  key sender\n  count messages\n  max 1 per 1h\n  bogus\n}",
            5,
            3,
            "expected `if`, `unless`, `key`, `count`, `at`, `max`, `overrides`, `capacity`, `on_failure`, `backend`, `over` or `}`",
        ),
    ];
    let mut failures = Vec::new();
    for &(src, line, column, fragment) in rows {
        let Err(e) = Policy::compile("policy.conf", src, &mut NoFiles) else {
            failures.push(format!("{src:?}: compiles"));
            continue;
        };
        let Some(first) = e.errors.first() else {
            failures.push(format!("{src:?}: no error"));
            continue;
        };
        if e.errors.len() != 1
            || (first.line, first.column) != (line, column)
            || !first.message.contains(fragment)
            || first.severity != Severity::Error
            || first.file != "policy.conf"
        {
            failures.push(format!(
                "{src:?}: expected {line}:{column} {fragment:?}, got {} error(s):\n{e}",
                e.errors.len()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

/// Errors in an overrides file name the file, its line and column.
#[test]
fn errors_in_an_overrides_file_name_the_file() {
    let src = "limit l {\n  key sender\n  count messages\n  max 1 per 1h, 5 per 1d\n  overrides file \"over.txt\"\n}";
    let cases: &[(&str, u32, u32, &str)] = &[
        (
            "# ok\njoe@example.com 2 per 1h\nann@example.com 2 per 1w\n",
            3,
            23,
            "an override for a window the limit does not have",
        ),
        (
            "joe@example.com 2 per 1h\nann@example.com 3 per 1x\n",
            2,
            24,
            "a duration",
        ),
        (
            "joe@example.com 2 per 1h\nann@example.com two per 1d\n",
            2,
            17,
            "a maximum",
        ),
    ];
    for &(file, line, column, fragment) in cases {
        let mut loader = |path: &str| {
            if path == "over.txt" {
                Ok(file.to_owned())
            } else {
                Err("no such file".to_owned())
            }
        };
        let Err(e) = Policy::compile("policy.conf", src, &mut loader) else {
            panic!("{file:?}: compiles")
        };
        let got: Vec<(&str, u32, u32, &str)> = e
            .errors
            .iter()
            .map(|d| (d.file.as_str(), d.line, d.column, d.message.as_str()))
            .collect();
        assert!(
            got.len() == 1
                && got[0].0 == "over.txt"
                && (got[0].1, got[0].2) == (line, column)
                && got[0].3.contains(fragment),
            "{file:?}: expected over.txt:{line}:{column} {fragment:?}, got {got:?}"
        );
    }
    let mut missing = |_: &str| Err("no such file or directory".to_owned());
    let e = Policy::compile("policy.conf", src, &mut missing).expect_err("a missing file");
    assert_eq!((e.errors.len(), e.errors[0].line), (1, 5), "{e}");
    assert!(e.errors[0].message.contains("over.txt"), "{e}");
}

/// Well-formed limits compile without errors or warnings.
#[test]
fn every_form_of_a_limit_compiles() {
    let sources = [
        "limit l { key sender count messages max 1 per 1s }",
        "limit l dry-run { if authenticated unless sender_domain == \"example.com\" key sasl_username, client_address/24/64 count recipients at rcpt max 100 per 1h, 1000 per 1d, 5000 per 1w, 20000 per 400d overrides { \"joe, 192.0.2.0/24\" 5 per 1h  \"ann, 2001:db8::/64\" 1 per 1d, 9 per 1h } capacity 10 over 450 \"4.7.1 $key: $counted of $limit per $window, $retry_after s\" }",
        "limit l { key sender count messages at data max 5 per 1h }",
        "limit l { key sender_domain count recipients at end-of-message max 5 per 1h }",
        "limit l { key client_address count bytes max 10MB per 1h }",
        "limit l { key client_address/0/0 count bytes * recipients at end-of-message max 1GiB per 1d }",
        "limit l { key server_address/32/128 count messages max 0 per 1h }",
        "limit l { key sender count messages max 1 per 1h over WARN \"$key over $limit\" }",
    ];
    for src in sources {
        let mut loader = |_: &str| Err("no files".to_owned());
        match Policy::compile("policy.conf", src, &mut loader) {
            Ok(c) => assert!(
                c.warnings.is_empty(),
                "{src}: {:?}",
                c.warnings
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            ),
            Err(e) => panic!("{src}\n{e}"),
        }
    }
}

// ---------------------------------------------------------------------------
// The window guarantee against a naive log.

/// One request of a random arrival sequence.
#[derive(Debug, Clone)]
enum Step {
    /// A RCPT from `sender`; `refused_later`: to a recipient a later rule
    /// rejects (what the limits counted is given back).
    Rcpt { sender: usize, refused_later: bool },
    /// DATA of the message under way, with `recipients` accepted by Postfix.
    Data { sender: usize, recipients: u64 },
}

/// A request `advance` (a fraction of the window) after the previous one.
#[derive(Debug, Clone)]
struct Arrival {
    advance: u64,
    long: bool,
    step: Step,
}

fn arrival() -> impl Strategy<Value = Arrival> {
    let step = prop_oneof![
        6 => (0..3usize, prop::bool::weighted(0.15))
            .prop_map(|(sender, refused_later)| Step::Rcpt { sender, refused_later }),
        1 => (0..3usize, 1..4u64).prop_map(|(sender, recipients)| Step::Data { sender, recipients }),
    ];
    (any::<u64>(), prop::bool::weighted(0.05), step).prop_map(|(advance, long, step)| Arrival {
        advance,
        long,
        step,
    })
}

/// Units admitted per sender: (time, units).
type Log = HashMap<usize, Vec<(u64, u64)>>;

fn units_in(log: &Log, sender: usize, after: i128, upto: u64) -> u64 {
    log.get(&sender).map_or(0, |entries| {
        entries
            .iter()
            .filter(|&&(t, _)| i128::from(t) > after && t <= upto)
            .map(|&(_, u)| u)
            .sum()
    })
}

/// `now - ms` as a bound that may lie before the first request.
fn before(now: u64, ms: u64) -> i128 {
    i128::from(now) - i128::from(ms)
}

/// The most units admitted for one sender in any interval `(a, a + per]`:
/// (sender, end of the interval, units). The maximum is reached by an
/// interval ending at an admission.
fn busiest(log: &Log, per: u64) -> Option<(usize, u64, u64)> {
    log.iter()
        .flat_map(|(&sender, entries)| {
            entries
                .iter()
                .map(move |&(t, _)| (sender, t, units_in(log, sender, before(t, per), t)))
        })
        .max_by_key(|&(_, _, units)| units)
}

const SENDERS: [&str; 3] = ["a@example.org", "b@example.org", "c@example.org"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    /// `max N per T` through `Engine::decide`: counted at RCPT (`rcpt`) and
    /// at DATA (`data`, which checks pending recipients at RCPT). Never more
    /// than N units in any interval of length T; never a refusal when the
    /// units admitted in the last T + W (W = ceil(T / 16), the bucket width,
    /// the documented rounding) plus the request's own would fit.
    #[test]
    fn a_limit_never_admits_more_than_max_per_window(
        max in 1u64..6,
        per_s in prop::sample::select(vec![1u64, 7, 16, 60, 90, 3600]),
        arrivals in prop::collection::vec(arrival(), 1..120),
    ) {
        let per = per_s * 1000;
        let width = per.div_ceil(16);
        let engine = engine(&format!(
            "limit rcpt {{ key sender count recipients max {max} per {per_s}s }}\n\
             limit data {{ key sender count recipients at data max {max} per {per_s}s }}\n\
             rule no-such-user {{ if recipient_local == \"nobody\" then REJECT \"5.1.1 no\" }}"
        ));
        let mut scratch = Scratch::new();
        let (mut rcpt_log, mut data_log) = (Log::new(), Log::new());
        // The message under way on the one connection: its instance and the
        // recipients the policy accepted.
        let (mut instance, mut pending) = (0u64, 0u64);
        let mut now = 0u64;
        for (i, a) in arrivals.iter().enumerate() {
            now += if a.long { a.advance % (2 * per) } else { a.advance % (per / 8 + 1) };
            let inst = instance.to_string();
            let (rule, wire) = match a.step {
                Step::Rcpt { sender, refused_later } => {
                    let to = if refused_later { "nobody@example.net" } else { "x@example.net" };
                    let answer = decide(
                        &engine,
                        &[("protocol_state", "RCPT"), ("sender", SENDERS[sender]), ("recipient", to), ("instance", &inst)],
                        at(now),
                        &mut scratch,
                    );
                    let recent = units_in(&rcpt_log, sender, before(now, per + width), now);
                    let recent_data = units_in(&data_log, sender, before(now, per + width), now);
                    match answer.0.as_str() {
                        "default" => {
                            rcpt_log.entry(sender).or_default().push((now, 1));
                            pending += 1;
                        }
                        "no-such-user" => prop_assert!(refused_later, "#{i}: {answer:?}"),
                        "rcpt" => prop_assert!(
                            recent + 1 > max,
                            "#{i} at {now}: refused with {recent} admitted in the last T + W: {answer:?}"
                        ),
                        "data" => prop_assert!(
                            recent_data + pending + 1 > max,
                            "#{i} at {now}: refused early with {recent_data} counted and {pending} pending: {answer:?}"
                        ),
                        other => prop_assert!(false, "#{i}: unexpected rule {other}"),
                    }
                    answer
                }
                Step::Data { sender, recipients } => {
                    let count = recipients.to_string();
                    let answer = decide(
                        &engine,
                        &[("protocol_state", "DATA"), ("sender", SENDERS[sender]), ("recipient_count", &count), ("instance", &inst)],
                        at(now),
                        &mut scratch,
                    );
                    let recent = units_in(&data_log, sender, before(now, per + width), now);
                    match answer.0.as_str() {
                        "default" => data_log.entry(sender).or_default().push((now, recipients)),
                        "data" => prop_assert!(
                            recent + recipients > max,
                            "#{i} at {now}: DATA refused with {recent} admitted in the last T + W: {answer:?}"
                        ),
                        other => prop_assert!(false, "#{i}: unexpected rule {other} at DATA"),
                    }
                    instance += 1;
                    pending = 0;
                    answer
                }
            };
            prop_assert!(!wire.is_empty(), "#{i}: {rule}");
        }
        for (name, log) in [("rcpt", &rcpt_log), ("data", &data_log)] {
            if let Some((sender, end, units)) = busiest(log, per) {
                prop_assert!(
                    units <= max,
                    "limit {name}: {units} units for sender {sender} in ({}, {end}] (max {max} per {per} ms)",
                    before(end, per)
                );
            }
        }
    }
}

/// The window lengths of the two-window test, in seconds.
const LENGTHS: [u64; 6] = [1, 7, 16, 60, 90, 3600];

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    /// Two windows (both enforced) and a per-key override for sender 1:
    /// each window keeps the guarantee with its own maximum (the override's
    /// for sender 1), a refusal names a window that is full within its own
    /// rounding, and `$limit` / `$window` show that window.
    #[test]
    fn every_window_is_enforced_with_its_own_maximum(
        maxima in (1u64..6, 1u64..12, 1u64..6, 1u64..12),
        lengths in (0..LENGTHS.len(), 1..LENGTHS.len()),
        // (advance, a long advance, sender, to a recipient a later rule rejects)
        rcpts in prop::collection::vec(
            (any::<u64>(), prop::bool::weighted(0.05), 0..3usize, prop::bool::weighted(0.1)),
            1..150,
        ),
    ) {
        let (max_a, max_b, over_a, over_b) = maxima;
        let t_a = LENGTHS[lengths.0];
        let t_b = LENGTHS[(lengths.0 + lengths.1) % LENGTHS.len()];
        let engine = engine(&format!(
            "limit l {{ key sender count recipients max {max_a} per {t_a}s, {max_b} per {t_b}s \
                 overrides {{ \"{}\" {over_a} per {t_a}s, {over_b} per {t_b}s }} \
                 over DEFER \"4.7.1 $limit per $window\" }}\n\
             rule no-such-user {{ if recipient_local == \"nobody\" then REJECT \"5.1.1 no\" }}",
            SENDERS[1]
        ));
        // (length ms, maximum for sender 0 and 2, for sender 1)
        let windows = [(t_a * 1000, max_a, over_a), (t_b * 1000, max_b, over_b)];
        let max_for = |w: &(u64, u64, u64), sender: usize| if sender == 1 { w.2 } else { w.1 };
        let shortest = t_a.min(t_b) * 1000;
        let mut scratch = Scratch::new();
        let mut log = Log::new();
        let mut now = 0u64;
        for (i, &(advance, long, sender, refused_later)) in rcpts.iter().enumerate() {
            now += if long { advance % (2 * t_a.max(t_b) * 1000) } else { advance % (shortest / 8 + 1) };
            let to = if refused_later { "nobody@example.net" } else { "x@example.net" };
            let (rule, wire) = decide(
                &engine,
                &[("protocol_state", "RCPT"), ("sender", SENDERS[sender]), ("recipient", to)],
                at(now),
                &mut scratch,
            );
            match rule.as_str() {
                "default" => log.entry(sender).or_default().push((now, 1)),
                "no-such-user" => prop_assert!(refused_later, "#{i}: {wire}"),
                "l" => {
                    // Which windows may refuse: full within their rounding.
                    let full: Vec<String> = windows
                        .iter()
                        .filter(|w| {
                            let width = w.0.div_ceil(16);
                            units_in(&log, sender, before(now, w.0 + width), now) + 1 > max_for(w, sender)
                        })
                        .map(|w| format!("DEFER 4.7.1 {} per {}s", max_for(w, sender), w.0 / 1000))
                        .collect();
                    // `$window` shows the largest unit: 60s is `1m`, 3600s `1h`.
                    let wire = wire.replace("per 1m", "per 60s").replace("per 1h", "per 3600s");
                    prop_assert!(
                        full.contains(&wire),
                        "#{i} at {now}: refused with `{wire}`, full windows: {full:?}"
                    );
                }
                other => prop_assert!(false, "#{i}: unexpected rule {other}"),
            }
        }
        for w in &windows {
            for sender in 0..SENDERS.len() {
                let mut one = Log::new();
                one.extend(log.get(&sender).map(|entries| (sender, entries.clone())));
                if let Some((_, end, units)) = busiest(&one, w.0) {
                    prop_assert!(
                        units <= max_for(w, sender),
                        "sender {sender}: {units} units in ({}, {end}] (max {} per {} ms)",
                        before(end, w.0),
                        max_for(w, sender),
                        w.0
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Concurrency.

/// Eight threads deciding for one key through one shared engine admit
/// exactly N between them.
#[test]
fn eight_threads_on_one_key_admit_exactly_max() {
    const MAX: usize = 1000;
    const THREADS: usize = 8;
    const PER_THREAD: usize = 400;
    let engine = Arc::new(engine(&format!(
        "limit l {{ key sender count recipients max {MAX} per 1h }}"
    )));
    let bytes = frame(&[
        ("protocol_state", "RCPT"),
        ("sender", "joe@example.org"),
        ("recipient", "x@example.net"),
    ]);
    let bytes = Arc::new(bytes);
    let handles: Vec<_> = (0..THREADS)
        .map(|thread| {
            let engine = Arc::clone(&engine);
            let bytes = Arc::clone(&bytes);
            std::thread::spawn(move || {
                let request = Request::parse(&bytes).expect("parses");
                let mut scratch = Scratch::new();
                let mut admitted = 0;
                for i in 0..PER_THREAD {
                    // Times spread over a few seconds, interleaved between threads.
                    let now = at((i * THREADS + thread) as u64);
                    let d = engine.decide(&request, now, &mut scratch);
                    match d.rule {
                        "default" => admitted += 1,
                        "l" => {}
                        other => panic!("unexpected rule {other}"),
                    }
                }
                admitted
            })
        })
        .collect();
    let admitted: usize = handles.into_iter().map(|h| h.join().expect("thread")).sum();
    assert_eq!(admitted, MAX);
    let mut scratch = Scratch::new();
    let (rule, _) = decide(
        &engine,
        &[("protocol_state", "RCPT"), ("sender", "joe@example.org")],
        at(10_000),
        &mut scratch,
    );
    assert_eq!(rule, "l");
}

// ---------------------------------------------------------------------------
// Reloads.

/// Sends RCPTs for `sender` until the limit refuses (at most 20); the number
/// admitted.
fn admitted_until_refused(engine: &Engine, sender: &str, now: Timestamp) -> usize {
    let mut scratch = Scratch::new();
    let bytes = frame(&[
        ("protocol_state", "RCPT"),
        ("sender", sender),
        ("recipient", "x@example.net"),
    ]);
    let request = Request::parse(&bytes).expect("parses");
    for n in 0..20 {
        if engine.decide(&request, now, &mut scratch).rule != "default" {
            return n;
        }
    }
    20
}

#[test]
fn replace_keeps_the_counters_of_unchanged_limits_only() {
    let base = |max: u32, per: &str, extra: &str| {
        compile(&format!(
            "limit l {{ key sender count recipients max {max} per {per} {extra} }}\n\
             limit other {{ key sasl_username count recipients max 5 per 1h }}"
        ))
    };
    let engine = Engine::new(base(2, "1h", ""));
    let now = at(0);
    assert_eq!(admitted_until_refused(&engine, "joe@example.org", now), 2);

    // The maximum, the conditions, overrides and the over action may change:
    // the counters stay (2 counted, 3 allowed now: one more).
    let kept = engine.replace(base(
        3,
        "1h",
        "if sender_domain == \"example.org\" overrides { ann@example.org 9 per 1h } over DEFER \"4.7.1 slow down\"",
    ));
    assert_eq!(kept, ["l", "other"]);
    assert_eq!(admitted_until_refused(&engine, "joe@example.org", now), 1);
    let mut scratch = Scratch::new();
    let (rule, wire) = decide(
        &engine,
        &[("protocol_state", "RCPT"), ("sender", "joe@example.org")],
        now,
        &mut scratch,
    );
    assert_eq!(
        (rule.as_str(), wire.as_str()),
        ("l", "DEFER 4.7.1 slow down")
    );

    // A changed window length: fresh counters.
    let kept = engine.replace(base(3, "2h", ""));
    assert_eq!(kept, ["other"]);
    assert_eq!(admitted_until_refused(&engine, "joe@example.org", now), 3);

    // Each part of the signature gives fresh counters when it changes.
    let table_of = |s: &State, name: &str| {
        s.limits()
            .find(|s| s.name == name)
            .map(|s| std::ptr::from_ref(s.table))
            .expect("limit present")
    };
    for (changed, src) in [
        (
            "key",
            "limit l { key sender_domain count recipients max 3 per 2h }",
        ),
        (
            "count",
            "limit l { key sender count messages max 3 per 2h }",
        ),
        (
            "at",
            "limit l { key sender count recipients at data max 3 per 2h }",
        ),
        (
            "capacity",
            "limit l { key sender count recipients max 3 per 2h capacity 1000 }",
        ),
        (
            "windows",
            "limit l { key sender count recipients max 3 per 2h, 10 per 1d }",
        ),
        (
            "masks",
            "limit l { key client_address/24/64 count recipients max 3 per 2h }",
        ),
        (
            "mask lengths",
            "limit l { key client_address/16/64 count recipients max 3 per 2h }",
        ),
        (
            "name",
            "limit l2 { key sender count recipients max 3 per 2h }",
        ),
    ] {
        let old = engine.state();
        let name = old.limits().next().expect("one limit").name.to_owned();
        let kept = engine.replace(compile(src));
        assert!(kept.is_empty(), "{changed}: kept {kept:?}");
        let new = engine.state();
        let state = new.limits().next().expect("one limit");
        assert!(state.table.is_empty(), "{changed}: counters carried over");
        assert_ne!(
            std::ptr::from_ref(state.table),
            table_of(&old, &name),
            "{changed}: the old table"
        );
    }
    assert_eq!(admitted_until_refused(&engine, "fill@example.org", now), 3);

    // An identical policy keeps them (3 counted: nothing more), and the
    // very same table.
    let old = engine.state();
    let kept = engine.replace(compile(
        "limit l2 { key sender count recipients max 3 per 2h }",
    ));
    assert_eq!(kept, ["l2"]);
    assert_eq!(table_of(&engine.state(), "l2"), table_of(&old, "l2"));
    assert_eq!(admitted_until_refused(&engine, "fill@example.org", now), 0);
}

/// A reload that keeps a `count messages` limit does not count the message
/// under way again: its next recipients pass (limits.md: "once per message";
/// "Counters survive a reload when the limit keeps its ... signature"). Nor
/// does it forget the recipients an `at data` limit has seen pending.
#[test]
fn a_reload_in_the_middle_of_a_message_does_not_count_it_again() {
    let src = "limit msgs { key sender count messages max 1 per 1h }\n\
               limit rcpts { key sasl_username count recipients at data max 2 per 1h }";
    let engine = Engine::new(compile(src));
    let mut scratch = Scratch::new();
    let rcpt = |to: &str| {
        frame(&[
            ("protocol_state", "RCPT"),
            ("sender", "joe@example.org"),
            ("sasl_username", "joe"),
            ("instance", "A"),
            ("recipient", to),
        ])
    };
    let mut answers = Vec::new();
    for (to, reload) in [
        ("a@example.net", false),
        ("b@example.net", true),
        ("c@example.net", false),
    ] {
        if reload {
            assert_eq!(engine.replace(compile(src)), ["msgs", "rcpts"]);
        }
        let bytes = rcpt(to);
        let request = Request::parse(&bytes).expect("parses");
        let d = engine.decide(&request, at(0), &mut scratch);
        answers.push(format!("{} {}", d.rule, String::from_utf8_lossy(d.wire())));
    }
    // a: counted once for msgs, pending 1 for rcpts; b: the same message,
    // pending 2 (0 counted + 1 + 1 <= 2); c: 0 + 2 + 1 > 2: refused early
    // by rcpts, and only by it.
    assert_eq!(
        answers,
        [
            "default DUNNO",
            "default DUNNO",
            // (The recipient alone fits in a delivery of its own: now.)
            "rcpts DEFER 4.7.1 Rate limit reached (2 per 1h), try again in 0 seconds",
        ]
    );
}

/// `State::limits` lists the limits in policy order with their
/// signatures: equal for an unchanged limit, different for a changed one.
#[test]
fn limit_states_name_each_limit_and_its_signature() {
    let a = compile(
        "limit one { key sender count messages max 1 per 1h }\n\
         rule r { then DUNNO }\n\
         limit two { key sender count recipients max 1 per 1h }",
    );
    let b = compile(
        "limit two { key sender count recipients max 7 per 1h over WARN \"x\" }\n\
         limit one { key sender count messages max 1 per 2h }",
    );
    let names = |p: &Policy| {
        State::for_policy(p)
            .limits()
            .map(|s| s.name.to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&a), ["one", "two"]);
    assert_eq!(names(&b), ["two", "one"]);
    let signature = |p: &Policy, name: &str| {
        State::for_policy(p)
            .limits()
            .find(|s| s.name == name)
            .map(|s| s.signature)
            .expect("limit present")
    };
    assert_eq!(signature(&a, "two"), signature(&b, "two"));
    assert_ne!(signature(&a, "one"), signature(&b, "one"));
}

// ---------------------------------------------------------------------------
// Deviations from /work/notes/limits.md reported to the lead: each of these
// tests fails until the deviation is fixed (or the design changed).

/// `$window` shows the window's length in the largest unit that divides it
/// (as the rate-limiting chapter documents): `per 60m` shows `1h`.
#[test]
fn window_variable_shows_the_length_in_its_largest_whole_unit() {
    let mut wrong = Vec::new();
    for (written, shown) in [
        ("90s", "90s"),
        ("60m", "1h"),
        ("24h", "1d"),
        ("7d", "1w"),
        ("3600s", "1h"),
        ("1h", "1h"),
        ("2w", "2w"),
        ("36h", "36h"),
    ] {
        let engine = engine(&format!(
            "limit l {{ key sender count recipients max 0 per {written} over DEFER \"4.7.1 per $window\" }}"
        ));
        let (rule, wire) = decide(
            &engine,
            &[("protocol_state", "RCPT"), ("sender", "a@example.org")],
            at(0),
            &mut Scratch::new(),
        );
        assert_eq!(rule, "l");
        if wire != format!("DEFER 4.7.1 per {shown}") {
            wrong.push(format!("per {written}: {wire}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:?}");
}

/// An override's maxima follow the rules of `max`: a size unit only on a
/// count of bytes.
#[test]
fn override_maxima_take_a_size_unit_only_on_bytes() {
    for (src, line, column) in [
        (
            "limit l {\n  key sender\n  count messages\n  max 1 per 1h\n  overrides { a@example.org 5k per 1h }\n}",
            5,
            29,
        ),
        (
            "limit l {\n  key sender\n  count recipients\n  max 1 per 1h\n  overrides { a@example.org 1MB per 1h }\n}",
            5,
            29,
        ),
    ] {
        match Policy::compile("policy.conf", src, &mut NoFiles) {
            Ok(_) => panic!("{src:?}: compiles"),
            Err(e) => assert!(
                e.errors.len() == 1
                    && (e.errors[0].line, e.errors[0].column) == (line, column)
                    && e.errors[0].message.contains("size unit"),
                "{src:?}: {e}"
            ),
        }
    }
    compile(
        "limit l { key sender count bytes max 1MB per 1h overrides { a@example.org 5MB per 1h } }",
    );
}

/// An overrides file has one entry a line (limits.md: "In a file: one entry
/// a line, `#` comments").
#[test]
fn an_overrides_file_has_one_entry_a_line() {
    let src = "limit l {\n  key sender\n  count messages\n  max 1 per 1h\n  overrides file \"over.txt\"\n}";
    for file in [
        "a@example.org 2 per\n1h\n",
        "a@example.org 2 per 1h b@example.org 3 per 1h\n",
    ] {
        let mut loader = |_: &str| Ok(file.to_owned());
        match Policy::compile("policy.conf", src, &mut loader) {
            Ok(_) => panic!("{file:?}: compiles"),
            Err(e) => assert!(
                e.errors.len() == 1 && e.errors[0].file == "over.txt",
                "{file:?}: {e}"
            ),
        }
    }
}

/// A limit's `over` action gets the warnings a rule's action gets: OK at
/// RCPT (DESIGN.md: "OK at RCPT before reject_unauth_destination can make an
/// open relay: the policy checker must warn about it"), PREPEND where the
/// limit decides at END-OF-MESSAGE.
#[test]
fn over_actions_get_the_warnings_of_rule_actions() {
    for (src, fragment) in [
        (
            "limit l { key sender count recipients max 5 per 1h over OK }",
            "OK",
        ),
        (
            "limit l { key sender count bytes max 5MB per 1h over PREPEND \"X-Over: yes\" }",
            "PREPEND is not allowed at END-OF-MESSAGE",
        ),
    ] {
        let compiled = compiled(src);
        assert!(
            compiled.warnings.len() == 1 && compiled.warnings[0].message.contains(fragment),
            "{src}: {:?}",
            compiled
                .warnings
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        );
    }
}

/// A request that alone is more than a window's maximum can never be
/// admitted: a limit without its own `over` action rejects it for good; one
/// with an `over` action answers with it, `$retry_after` reading `never`.
#[test]
fn a_request_that_can_never_fit_is_rejected_by_default() {
    let eom = |size: &str| {
        frame(&[
            ("protocol_state", "END-OF-MESSAGE"),
            ("sender", "joe@example.org"),
            ("recipient_count", "1"),
            ("size", size),
        ])
    };
    let default = engine("limit vol { key sender count bytes max 1MB per 1d }");
    let own = engine(
        "limit vol { key sender count bytes max 1MB per 1d over DEFER \"4.7.1 over, retry in $retry_after\" }",
    );
    let mut answers = Vec::new();
    for engine in [&default, &own] {
        for size in ["2000000", "1000"] {
            let bytes = eom(size);
            let request = Request::parse(&bytes).expect("parses");
            let mut scratch = Scratch::new();
            let d = engine.decide(&request, at(0), &mut scratch);
            answers.push(String::from_utf8_lossy(d.wire()).into_owned());
        }
    }
    assert_eq!(
        answers,
        [
            "REJECT 5.7.1 Rate limit: this request alone is more than 1000000 per 1d",
            "DUNNO",
            "DEFER 4.7.1 over, retry in never",
            "DUNNO",
        ]
    );
}

/// The state file names each limit's maxima as the policy has them, not the
/// largest a key may get (which its table is built for): `policyd state`
/// shows `max 10`, not the override's 1000.
#[test]
fn the_state_file_names_the_rules_maxima() {
    let engine = engine(
        "limit l { key sender count messages max 10 per 1h overrides { \"vip@example.org\" 1000 per 1h } }",
    );
    let mut file = Vec::new();
    policy_core::store::encode(&engine.state(), at(0), &mut file);
    let stored = policy_core::store::decode(&file).expect("decodes");
    let table =
        policy_core::limits::LimitTable::decode_snapshot_as_written(stored.entries[0].payload, 100)
            .expect("payload decodes");
    assert_eq!(table.limit().windows()[0].max(), 10);
    // And it restores into the policy, the override still in force.
    let again = self::engine(
        "limit l { key sender count messages max 10 per 1h overrides { \"vip@example.org\" 1000 per 1h } }",
    );
    let (state, report) = policy_core::store::restore(&again.state(), &file).expect("restores");
    again.set_state(state);
    assert_eq!(report.restored.len(), 1);
}

// ---------------------------------------------------------------------------
// `count distinct`: HELO randomisation.

const RANDOM_HELO: &str = r#"
limit random_helo {
    key client_address/24/64
    count distinct helo_name
    max 3 per 1h
    over REJECT "5.7.1 $counted HELO names from $key in $window"
}
default OK
"#;

fn helo(
    engine: &Engine,
    client: &str,
    name: &str,
    now: Timestamp,
    scratch: &mut Scratch,
) -> String {
    let (rule, _) = decide(
        engine,
        &[
            ("protocol_state", "RCPT"),
            ("client_address", client),
            ("helo_name", name),
            ("sender", "a@example.org"),
            ("recipient", "b@example.net"),
        ],
        now,
        scratch,
    );
    rule
}

#[test]
fn distinct_helo_names_per_network_are_limited() {
    let engine = engine(RANDOM_HELO);
    let mut scratch = Scratch::new();
    let mut t = 0;
    let mut step = |client: &str, name: &str, scratch: &mut Scratch| {
        t += 1000;
        helo(&engine, client, name, at(t), scratch)
    };
    // Three names from three hosts of one /24: within the limit; the same
    // names again (in any case) add nothing.
    assert_eq!(step("192.0.2.1", "a.example", &mut scratch), "default");
    assert_eq!(step("192.0.2.2", "b.example", &mut scratch), "default");
    assert_eq!(step("192.0.2.3", "c.example", &mut scratch), "default");
    assert_eq!(step("192.0.2.1", "A.EXAMPLE", &mut scratch), "default");
    assert_eq!(step("192.0.2.9", "c.example", &mut scratch), "default");
    // A fourth name: refused, and again (a refused name is not counted).
    assert_eq!(step("192.0.2.4", "d.example", &mut scratch), "random_helo");
    assert_eq!(step("192.0.2.4", "d.example", &mut scratch), "random_helo");
    // Known names still pass; another network has its own count.
    assert_eq!(step("192.0.2.4", "b.example", &mut scratch), "default");
    assert_eq!(step("198.51.100.1", "d.example", &mut scratch), "default");
    // The over action's facts.
    let bytes = frame(&[
        ("protocol_state", "RCPT"),
        ("client_address", "192.0.2.7"),
        ("helo_name", "e.example"),
    ]);
    let request = Request::parse(&bytes).expect("parses");
    let (_, wire) = rule_and_wire(&engine.decide(&request, at(20_000), &mut scratch));
    assert_eq!(wire, "REJECT 5.7.1 3 HELO names from 192.0.2.0/24 in 1h");
    // Once the window has passed the names have expired: a new one fits
    // (the window slides by buckets: an hour and a bucket at most).
    assert_eq!(
        helo(
            &engine,
            "192.0.2.4",
            "d.example",
            at(2 * 3_600_000),
            &mut scratch
        ),
        "default"
    );
}

#[test]
fn distinct_counts_are_checked() {
    crate::common::assert_errors_start_with(&[
        (
            "limit l { key client_address count distinct helo_nme max 3 per 1h }",
            "policy.conf:1:45: error: unknown field `helo_nme` after `count distinct`",
        ),
        (
            "limit l { key client_address count distinct helo_name at data max 3 per 1h }",
            "policy.conf:1:58: error: distinct values are counted at RCPT",
        ),
        (
            "limit l { key client_address count distinct max 3 per 1h }",
            "policy.conf:1:45: error: expected the field whose distinct values are counted",
        ),
    ]);
}
