//! Score items: weights for conditions (outside facts among them),
//! thresholds, the score in later rules and in templates, dry-run score
//! items, `on_unknown`, `$dnsbl_reason`, and their compile errors.

use policy_core::facts::QueryKind;
use policy_core::{Request, Scratch};

use crate::common::{engine, NOW};
use crate::dns_checks::{ips, Fake, FakeDns};

/// Decide `attrs` (`name=value; ...`) against `policy` with `dns`: the
/// deciding rule, its wire text, and the dry-run hits.
fn decide(
    policy: &str,
    attrs: &str,
    dns: &[(QueryKind, &str, Fake)],
) -> (String, String, Vec<(String, String)>) {
    let engine = engine(policy);
    let mut scratch = Scratch::new();
    let mut text = String::from("request=smtpd_access_policy\nprotocol_state=RCPT\n");
    for line in attrs.split(';').map(str::trim).filter(|l| !l.is_empty()) {
        text.push_str(line);
        text.push('\n');
    }
    text.push('\n');
    let request = Request::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let mut fake = FakeDns::new(dns);
    crate::common::outcome_of(&engine.decide_with(&request, NOW, &mut scratch, &mut fake))
}

const WEIGHTS: &str = r#"
dnsbl zen { zone "zen.example" answer 127.0.0.2-127.0.0.11 txt }
score spam {
    state RCPT
    unless authenticated
    add 4.35 if client_address in dnsbl zen as "in_zen"
    add 1.5 unless fcrdns as "no_fcrdns"
    add 0.75 if helo_is_ip
    add -2 if tls as "tls"
    above 6 REJECT "5.7.1 Spam score $score ($score_reasons): $dnsbl_reason"
    above 4 DEFER_IF_PERMIT "4.7.1 Spam score $score, try again later"
}
rule suspicious { if score >= 1.5 then PREPEND "X-Policy-Score: $score ($score_reasons)" }
default DUNNO
"#;

const CLIENT: &str = "client_address=192.0.2.9";

fn zen_listed() -> (QueryKind, &'static str, Fake) {
    (QueryKind::A, "9.2.0.192.zen.example", ips(&["127.0.0.2"]))
}

fn confirmed() -> Vec<(QueryKind, &'static str, Fake)> {
    vec![
        (
            QueryKind::Ptr,
            "9.2.0.192.in-addr.arpa",
            Fake::Names(vec!["mx.example"]),
        ),
        (QueryKind::A, "mx.example", ips(&["192.0.2.9"])),
    ]
}

#[test]
fn weights_add_up_and_thresholds_answer() {
    // Listed (4.35) + no reverse DNS (1.5) + bare IP HELO (0.75) = 6.6.
    let (rule, wire, _) = decide(
        WEIGHTS,
        &format!("{CLIENT}; helo_name=192.0.2.9"),
        &[
            zen_listed(),
            (
                QueryKind::Txt,
                "9.2.0.192.zen.example",
                Fake::Names(vec!["Listed: see https://zen.example/9"]),
            ),
        ],
    );
    assert_eq!(rule, "spam");
    assert_eq!(
        wire,
        "REJECT 5.7.1 Spam score 6.6 (in_zen=4.35, no_fcrdns=1.5, helo_is_ip=0.75): Listed: see https://zen.example/9"
    );
    // Listed and no reverse DNS: 5.85, above 4 only.
    let (rule, wire, _) = decide(WEIGHTS, CLIENT, &[zen_listed()]);
    assert_eq!(
        (rule.as_str(), wire.as_str()),
        (
            "spam",
            "DEFER_IF_PERMIT 4.7.1 Spam score 5.85, try again later"
        )
    );
    // TLS takes 2 off: 3.85, below both; the later rule reads the score.
    let (rule, wire, _) = decide(
        WEIGHTS,
        &format!("{CLIENT}; encryption_protocol=TLSv1.3"),
        &[zen_listed()],
    );
    assert_eq!(rule, "suspicious");
    assert_eq!(
        wire,
        "PREPEND X-Policy-Score: 3.85 (in_zen=4.35, no_fcrdns=1.5, tls=-2)"
    );
    // The decision tells the log the score.
    {
        let engine = engine(WEIGHTS);
        let frame = format!(
            "request=smtpd_access_policy\nprotocol_state=RCPT\n{CLIENT}\nsasl_username=joe\n\n"
        );
        let request = Request::parse(frame.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let mut scratch = Scratch::new();
        let mut fake = FakeDns::new(&[zen_listed()]);
        // Authenticated: the score item does not run.
        assert_eq!(
            engine
                .decide_with(&request, NOW, &mut scratch, &mut fake)
                .score(),
            None
        );
        let frame = format!("request=smtpd_access_policy\nprotocol_state=RCPT\n{CLIENT}\n\n");
        let request = Request::parse(frame.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let d = engine.decide_with(&request, NOW, &mut scratch, &mut fake);
        assert_eq!(d.score(), Some((585, &b"in_zen=4.35, no_fcrdns=1.5"[..])));
    }
    // Clean and confirmed: 0, nothing applies.
    let (rule, wire, _) = decide(WEIGHTS, CLIENT, &confirmed());
    assert_eq!((rule.as_str(), wire.as_str()), ("default", "DUNNO"));
    // The item's own condition: an authenticated client is not scored.
    let (rule, _, _) = decide(
        WEIGHTS,
        &format!("{CLIENT}; sasl_username=joe; helo_name=192.0.2.9"),
        &[zen_listed()],
    );
    assert_eq!(rule, "default");
}

#[test]
fn an_unknown_condition_adds_nothing() {
    // The DNSBL unknown: only `no_fcrdns` (1.5) counts.
    let (rule, wire, _) = decide(
        WEIGHTS,
        CLIENT,
        &[(QueryKind::A, "9.2.0.192.zen.example", Fake::Unknown)],
    );
    assert_eq!(rule, "suspicious");
    assert_eq!(wire, "PREPEND X-Policy-Score: 1.5 (no_fcrdns=1.5)");
    // Reverse DNS unknown too: 0.
    let (rule, _, _) = decide(
        WEIGHTS,
        CLIENT,
        &[
            (QueryKind::A, "9.2.0.192.zen.example", Fake::Unknown),
            (QueryKind::Ptr, "9.2.0.192.in-addr.arpa", Fake::Unknown),
        ],
    );
    assert_eq!(rule, "default");
}

#[test]
fn scores_of_several_items_add_up_and_dry_run_items_change_nothing() {
    let policy = r#"
score a { add 2 if helo_is_ip as "ip_helo" }
score b dry-run { add 10 unless fcrdns as "no_rdns"  above 5 REJECT "would reject at $score ($score_reasons)" }
score c { add 1 if null_sender as "null"  above 2.5 DEFER "4.7.1 $score: $score_reasons" }
rule tagged { if score > 0 then PREPEND "X-Score: $score" }
"#;
    let (rule, wire, hits) = decide(
        policy,
        &format!("{CLIENT}; helo_name=192.0.2.9; sender="),
        &[],
    );
    assert_eq!(rule, "c");
    assert_eq!(wire, "DEFER 4.7.1 3: ip_helo=2, null=1");
    assert_eq!(
        hits,
        [(
            "b".to_owned(),
            "REJECT would reject at 12 (ip_helo=2, no_rdns=10)".to_owned()
        )]
    );
    let (rule, wire, _) = decide(
        policy,
        &format!("{CLIENT}; helo_name=192.0.2.9; sender=a@b.example"),
        &[],
    );
    assert_eq!(
        (rule.as_str(), wire.as_str()),
        ("tagged", "PREPEND X-Score: 2")
    );
}

#[test]
fn on_unknown_answers_when_a_condition_is_unknown() {
    let policy = r#"
rule unknown_sender_domain {
    if sender_domain_unknown
    then REJECT "5.1.8 <$sender>: Sender address rejected: Domain not found"
    on_unknown DEFER_IF_PERMIT "4.1.8 <$sender>: Sender address rejected: Domain not found"
}
"#;
    let (_, wire, _) = decide(policy, "sender=a@gone.example", &[]);
    assert_eq!(
        wire,
        "REJECT 5.1.8 <a@gone.example>: Sender address rejected: Domain not found"
    );
    let (_, wire, _) = decide(
        policy,
        "sender=a@fail.example",
        &[(QueryKind::Mx, "fail.example", Fake::Unknown)],
    );
    assert_eq!(
        wire,
        "DEFER_IF_PERMIT 4.1.8 <a@fail.example>: Sender address rejected: Domain not found"
    );
    let (rule, _, _) = decide(
        policy,
        "sender=a@ok.example",
        &[(
            QueryKind::Mx,
            "ok.example",
            Fake::Names(vec!["mx.ok.example"]),
        )],
    );
    assert_eq!(rule, "default");
}

#[test]
fn dnsbl_reason_without_txt_names_the_list_and_answer() {
    let policy = r#"
dnsbl zen { zone "zen.example" }
rule listed { if tls or client_address in dnsbl zen then REJECT "5.7.1 $client_address $dnsbl_reason" }
"#;
    let (_, wire, _) = decide(policy, CLIENT, &[zen_listed()]);
    assert_eq!(wire, "REJECT 5.7.1 192.0.2.9 listed in zen (127.0.0.2)");
    // Decided by another test: no listing to give a reason for.
    let (_, wire, _) = decide(
        policy,
        &format!("{CLIENT}; encryption_protocol=TLSv1.3"),
        &[],
    );
    assert_eq!(wire, "REJECT 5.7.1 192.0.2.9");
}

#[test]
fn explain_shows_score_items() {
    let engine = engine(WEIGHTS);
    let frame = format!(
        "request=smtpd_access_policy\nprotocol_state=RCPT\n{CLIENT}\nhelo_name=192.0.2.9\n\n"
    );
    let request = Request::parse(frame.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let text = engine.explain(&request, NOW).to_string();
    // Without a resolver the outside facts are unknown: only the HELO counts.
    assert!(
        text.contains("rule spam (line 3): scored 0.75 (total 0.75, continues)"),
        "{text}"
    );
    assert!(
        text.contains("rule suspicious (line 13): no match"),
        "{text}"
    );
}

#[test]
fn score_errors_are_located() {
    let rows: &[(&str, &str)] = &[
        (
            "score s { above 5 REJECT }",
            "policy.conf:1:1: error: score `s` has no `add`; expected `add WEIGHT if CONDITION` lines",
        ),
        (
            "score s { add 1.234 if tls }",
            "policy.conf:1:17: error: expected at most two digits after the decimal point",
        ),
        (
            "score s { add 2000000 if tls }",
            "policy.conf:1:15: error: expected a score of at most 1000000 either way",
        ),
        (
            "score s { add 1000000.01 if tls }",
            "policy.conf:1:15: error: expected a score of at most 1000000 either way",
        ),
        (
            "score s { add 1 if tls  above 0.5 REJECT \"$score is too much\" }",
            "policy.conf:1:43: error: invalid action: the text starts with `$score`, a number",
        ),
        (
            "score s { add 1 when tls }",
            "policy.conf:1:17: error: expected `if` or `unless` after the weight",
        ),
        (
            "score s { add 1 if tls  above 2 REJECT  above 2 DEFER }",
            "policy.conf:1:47: error: a second `above` at the same score",
        ),
        (
            "score s { add 1 if tls  frobnicate }",
            "policy.conf:1:25: error: expected `add`, `above`, `state`, `if`, `unless` or `}`",
        ),
        (
            "rule r { if score > 1.5.5 then REJECT }",
            "policy.conf:1:24: error: expected `and`, `or`, `state`, `if`, `unless` or `then`, found `.5`",
        ),
        (
            "rule r { if tls then REJECT on_unknown BOGUS }",
            "policy.conf:1:40: error: invalid action: expected OK, DUNNO, REJECT",
        ),
    ];
    crate::common::assert_errors_start_with(rows);
    let warnings = crate::common::warnings_of(
        "rule r { if tls then REJECT on_unknown DEFER }\nscore s { add 0 if tls }\n",
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("tests no outside fact (DNS), so its condition is never unknown")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("a weight of 0 adds nothing")),
        "{warnings:?}"
    );
}

#[test]
fn dnsbl_reasons_from_dns_are_sanitized() {
    let policy = r#"
dnsbl zen { zone "zen.example" txt }
rule listed { if client_address in dnsbl zen then REJECT "5.7.1 $dnsbl_reason" }
"#;
    let (_, wire, _) = decide(
        policy,
        CLIENT,
        &[
            zen_listed(),
            (
                QueryKind::Txt,
                "9.2.0.192.zen.example",
                Fake::Names(vec!["see\r\naction=OK\x1b[31m\there"]),
            ),
        ],
    );
    assert!(!wire.chars().any(char::is_control), "{wire:?}");
    assert!(wire.starts_with("REJECT 5.7.1 see"), "{wire:?}");
}

#[test]
fn explanations_show_the_dns_answers_of_the_decision() {
    let policy = r#"
dnsbl zen { zone "zen.example" }
rule listed { if client_address in dnsbl zen and not fcrdns then REJECT "5.7.1 listed" }
"#;
    let engine = engine(policy);
    let frame = format!("request=smtpd_access_policy\nprotocol_state=RCPT\n{CLIENT}\n\n");
    let request = Request::parse(frame.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    // Without a resolver: unknown.
    let text = engine.explain(&request, NOW).to_string();
    assert!(
        text.contains("  if client_address in dnsbl zen and not fcrdns -> unknown"),
        "{text}"
    );
    assert!(
        text.contains("    client_address in dnsbl zen = unknown"),
        "{text}"
    );
    // With the answers of the scratch's decision.
    let mut scratch = Scratch::new();
    let mut fake = FakeDns::new(&[zen_listed()]);
    let d = engine.decide_with(&request, NOW, &mut scratch, &mut fake);
    assert_eq!(d.rule, "listed");
    let text = engine.explain_with(&request, NOW, &scratch).to_string();
    assert!(
        text.contains("  if client_address in dnsbl zen and not fcrdns -> holds"),
        "{text}"
    );
    assert!(
        text.contains("    client_address in dnsbl zen = true"),
        "{text}"
    );
    assert!(text.contains("    fcrdns = false"), "{text}");
    assert!(
        text.contains("rule listed (line 3): matches: REJECT"),
        "{text}"
    );
}

#[test]
fn a_score_item_without_conditions_does_not_hide_later_rules() {
    let warnings = crate::common::warnings_of(
        "score s { add 1 if tls }\nrule r { if score > 0 then PREPEND \"X-Score: $score\" }\n",
    );
    assert!(warnings.is_empty(), "{warnings:?}");
}
