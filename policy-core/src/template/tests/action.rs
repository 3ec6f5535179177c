use proptest::prelude::*;

use crate::action::{Action, ActionError, MAX_TEXT_BYTES};
use crate::request::Request;

use super::{frame, value, FULL};
use crate::template::{ActionTemplate, ActionTemplateError, TemplateError, Var, WireOutcome};

#[test]
fn compile_table() {
    // (verb, text, compiled action, display, constant)
    let rows: &[(&str, Option<&str>, &str, &str, bool)] = &[
        ("OK", None, "OK", "OK", true),
        ("dunno", None, "DUNNO", "DUNNO", true),
        ("ok", Some(""), "OK", "OK", true),
        ("REJECT", None, "REJECT", "REJECT", true),
        (
            "reject",
            Some("5.7.1 Go away"),
            "REJECT 5.7.1 Go away",
            "REJECT 5.7.1 Go away",
            true,
        ),
        (
            "REJECT",
            Some("Costs $$5"),
            "REJECT Costs $5",
            "REJECT Costs $5",
            true,
        ),
        (
            "REJECT",
            Some("5.7.1 Sender $sender blocked"),
            "REJECT 5.7.1 Sender sender@example.org blocked",
            "REJECT 5.7.1 Sender ${sender} blocked",
            false,
        ),
        (
            "REJECT",
            Some("  5.07.001   $sender"),
            "REJECT 5.7.1 sender@example.org",
            "REJECT 5.7.1 ${sender}",
            false,
        ),
        (
            "REJECT",
            Some("$sender blocked"),
            "REJECT sender@example.org blocked",
            "REJECT ${sender} blocked",
            false,
        ),
        (
            "REJECT",
            Some("5.7.1$rule"),
            "REJECT 5.7.1rule-name",
            "REJECT 5.7.1${rule}",
            false,
        ),
        (
            "defer",
            Some("4.7.1 $client_address busy"),
            "DEFER 4.7.1 192.0.2.10 busy",
            "DEFER 4.7.1 ${client_address} busy",
            false,
        ),
        (
            "DEFER_IF_REJECT",
            Some("$rule"),
            "DEFER_IF_REJECT rule-name",
            "DEFER_IF_REJECT ${rule}",
            false,
        ),
        (
            "defer_if_permit",
            Some("4.7.0 $rule"),
            "DEFER_IF_PERMIT 4.7.0 rule-name",
            "DEFER_IF_PERMIT 4.7.0 ${rule}",
            false,
        ),
        (
            "450",
            Some("4.7.1 Try $sender later"),
            "450 4.7.1 Try sender@example.org later",
            "450 4.7.1 Try ${sender} later",
            false,
        ),
        (
            "550",
            Some("Go away $client_name"),
            "550 Go away mail.example.org",
            "550 Go away ${client_name}",
            false,
        ),
        (
            "554",
            Some("$sender"),
            "554 sender@example.org",
            "554 ${sender}",
            false,
        ),
        (
            "HOLD",
            Some("held for $sasl_username"),
            "HOLD held for user",
            "HOLD held for ${sasl_username}",
            false,
        ),
        (
            "discard",
            Some("$rule"),
            "DISCARD rule-name",
            "DISCARD ${rule}",
            false,
        ),
        (
            "FILTER",
            Some("smtp:[$client_address]:10025"),
            "FILTER smtp:[192.0.2.10]:10025",
            "FILTER smtp:[${client_address}]:10025",
            false,
        ),
        (
            "PREPEND",
            Some("X-Policy: $rule for $sender"),
            "PREPEND X-Policy: rule-name for sender@example.org",
            "PREPEND X-Policy: ${rule} for ${sender}",
            false,
        ),
        (
            "REDIRECT",
            Some("$sender"),
            "REDIRECT sender@example.org",
            "REDIRECT ${sender}",
            false,
        ),
        (
            "BCC",
            Some("archive+$recipient_local@example.com"),
            "BCC archive+recipient@example.com",
            "BCC archive+${recipient_local}@example.com",
            false,
        ),
        (
            "WARN",
            Some("$sasl_username as $sender"),
            "WARN user as sender@example.org",
            "WARN ${sasl_username} as ${sender}",
            false,
        ),
        ("info", Some("$size"), "INFO 12345", "INFO ${size}", false),
    ];
    for (verb, text, action, display, constant) in rows {
        let t =
            ActionTemplate::compile(verb, *text).unwrap_or_else(|e| panic!("{verb} {text:?}: {e}"));
        assert_eq!(t.action().to_string(), *action, "{verb} {text:?}");
        assert_eq!(t.to_string(), *display, "{verb} {text:?}");
        assert_eq!(t.is_constant(), *constant, "{verb} {text:?}");
        assert_eq!(t.template().is_none(), *constant);
        assert_eq!(t.fallback().validate(), Ok(()));
        if *constant {
            assert_eq!(t.fallback(), t.action());
        }
    }
}

#[test]
fn compile_errors_table() {
    use ActionTemplateError::{Action as A, Template as T, TemplatedHeaderName};
    let rows: &[(&str, Option<&str>, ActionTemplateError)] = &[
        ("", None, A(ActionError::Empty)),
        ("REJECT 5.7.1", None, A(ActionError::UnknownVerb)),
        ("ACCEPT", Some("$sender"), A(ActionError::UnknownVerb)),
        (
            "OK",
            Some("$sender"),
            A(ActionError::UnexpectedText { verb: "OK" }),
        ),
        (
            "DUNNO",
            Some("x"),
            A(ActionError::UnexpectedText { verb: "DUNNO" }),
        ),
        (
            "REJECT",
            Some("4.7.1 $sender"),
            A(ActionError::EnhancedClassMismatch {
                expected: 5,
                found: 4,
            }),
        ),
        (
            "450",
            Some("5.7.1 $sender"),
            A(ActionError::EnhancedClassMismatch {
                expected: 4,
                found: 5,
            }),
        ),
        ("250", Some("$sender"), A(ActionError::InvalidCode)),
        (
            "DEFER",
            Some("$retry_after seconds to wait"),
            ActionTemplateError::LeadingNumber {
                var: Var::RetryAfter,
                offset: 0,
            },
        ),
        (
            "DEFER",
            Some("$size bytes is too much for now"),
            ActionTemplateError::LeadingNumber {
                var: Var::Size,
                offset: 0,
            },
        ),
        (
            "550",
            Some("$recipient_count recipients"),
            ActionTemplateError::LeadingNumber {
                var: Var::RecipientCount,
                offset: 0,
            },
        ),
        (
            "REJECT",
            Some(" $limit reached"),
            ActionTemplateError::LeadingNumber {
                var: Var::Limit,
                offset: 1,
            },
        ),
        (
            "REJECT",
            Some("450 4.7.1 Try again, $sender"),
            A(ActionError::ReplyCodeMismatch {
                expected: 5,
                found: 450,
            }),
        ),
        (
            "DEFER",
            Some("550 5.7.1 no, $sender"),
            A(ActionError::ReplyCodeMismatch {
                expected: 4,
                found: 550,
            }),
        ),
        ("450", None, A(ActionError::MissingText { verb: "4NN/5NN" })),
        (
            "WARN",
            Some(""),
            A(ActionError::MissingText { verb: "WARN" }),
        ),
        (
            "REDIRECT",
            Some("$client_address"),
            A(ActionError::InvalidAddress),
        ),
        (
            "REDIRECT",
            Some("$sender_local"),
            A(ActionError::InvalidAddress),
        ),
        ("BCC", Some("a b $sender"), A(ActionError::InvalidAddress)),
        ("FILTER", Some("$rule"), A(ActionError::InvalidFilter)),
        ("FILTER", Some("smtp: $rule"), A(ActionError::InvalidFilter)),
        (
            "PREPEND",
            Some("$rule: x"),
            TemplatedHeaderName { offset: 0 },
        ),
        (
            "PREPEND",
            Some("X-$$-$rule: x"),
            TemplatedHeaderName { offset: 5 },
        ),
        (
            "PREPEND",
            Some("X Bad: $rule"),
            A(ActionError::InvalidHeader),
        ),
        (
            "PREPEND",
            Some("no colon $rule"),
            A(ActionError::InvalidHeader),
        ),
        (
            "REJECT",
            Some("5.7.1 $nobody"),
            T(TemplateError::UnknownVariable { offset: 6, len: 7 }),
        ),
        (
            "REJECT",
            Some("x ${sender"),
            T(TemplateError::UnterminatedBrace { offset: 2 }),
        ),
        (
            "REJECT",
            Some("x $"),
            T(TemplateError::MissingName { offset: 2 }),
        ),
        (
            "REJECT",
            Some("x\ny"),
            T(TemplateError::ControlCharacter { offset: 1 }),
        ),
    ];
    for (verb, text, expected) in rows {
        assert_eq!(
            ActionTemplate::compile(verb, *text),
            Err(*expected),
            "{verb} {text:?}"
        );
    }
    let long = format!("{} $rule", "x".repeat(MAX_TEXT_BYTES));
    assert!(matches!(
        ActionTemplate::compile("REJECT", Some(&long)),
        Err(A(ActionError::TextTooLong { .. }))
    ));
    assert_eq!(TemplatedHeaderName { offset: 3 }.offset(), Some(3));
    assert_eq!(A(ActionError::Empty).offset(), None);
    assert_eq!(
        T(TemplateError::MissingName { offset: 9 }).offset(),
        Some(9)
    );
    assert!(TemplatedHeaderName { offset: 0 }
        .to_string()
        .contains("constant header name"));
    assert_eq!(
        A(ActionError::Empty).to_string(),
        ActionError::Empty.to_string()
    );
}

fn wire(verb: &str, text: Option<&str>, lines: &[&[u8]]) -> (String, WireOutcome) {
    let t = ActionTemplate::compile(verb, text).unwrap_or_else(|e| panic!("{verb} {text:?}: {e}"));
    let frame = frame(lines);
    let request = Request::parse(&frame).unwrap();
    let mut out = b"action=".to_vec();
    let outcome = t.write_wire(&request, "r1", &mut out);
    let out = String::from_utf8(out).unwrap();
    let out = out.strip_prefix("action=").unwrap().to_owned();
    let parsed = Action::parse(&out).unwrap_or_else(|e| panic!("{out:?}: {e}"));
    assert_eq!(parsed.to_string(), out, "canonical");
    if outcome == WireOutcome::Fallback {
        assert_eq!(&parsed, t.fallback());
    } else {
        assert_eq!(parsed.verb(), t.action().verb());
    }
    (out, outcome)
}

#[test]
fn write_wire_table() {
    use WireOutcome::{Expanded as E, Fallback as F, Truncated as T};
    let long = format!("sender={}@example.com", "x".repeat(MAX_TEXT_BYTES));
    let long = long.as_bytes();
    type Row<'a> = (&'a str, Option<&'a str>, Vec<&'a [u8]>, String, WireOutcome);
    let rows: Vec<Row<'_>> = vec![
        ("OK", None, vec![], "OK".into(), E),
        (
            "reject",
            Some("5.7.1 Go away"),
            vec![],
            "REJECT 5.7.1 Go away".into(),
            E,
        ),
        (
            "REJECT",
            Some("5.7.1 Sender $sender blocked"),
            vec![b"sender=a@b"],
            "REJECT 5.7.1 Sender a@b blocked".into(),
            E,
        ),
        (
            "REJECT",
            Some("5.7.1 Sender $sender blocked"),
            vec![],
            "REJECT 5.7.1 Sender  blocked".into(),
            E,
        ),
        (
            "REJECT",
            Some("5.7.1 $sender"),
            vec![],
            "REJECT 5.7.1".into(),
            E,
        ),
        (
            "REJECT",
            Some("5.7.1 $sender"),
            vec![b"sender=4.7.1"],
            "REJECT 5.7.1 4.7.1".into(),
            E,
        ),
        (
            "REJECT",
            Some("5.7.1 $sender"),
            vec![b"sender=\r\r\t"],
            "REJECT 5.7.1".into(),
            E,
        ),
        (
            "REJECT",
            Some("5.7.1 $sender"),
            vec![long],
            format!("REJECT 5.7.1 {}", "x".repeat(MAX_TEXT_BYTES)),
            T,
        ),
        ("REJECT", Some("$sender"), vec![], "REJECT".into(), E),
        // A leading reply code of another class than the verb's: the fallback.
        (
            "REJECT",
            Some("$sender_local please"),
            vec![b"sender=450@example.com"],
            "REJECT".into(),
            F,
        ),
        (
            "DEFER",
            Some("$sender_local"),
            vec![b"sender=550@example.com"],
            "DEFER".into(),
            F,
        ),
        (
            "550",
            Some("$sender_local x"),
            vec![b"sender=421@example.com"],
            "550 5.0.0".into(),
            F,
        ),
        // Of the verb's class, or after a constant enhanced code: as written.
        (
            "REJECT",
            Some("$sender_local please"),
            vec![b"sender=550@example.com"],
            "REJECT 550 please".into(),
            E,
        ),
        (
            "REJECT",
            Some("5.7.1 $sender_local please"),
            vec![b"sender=450@example.com"],
            "REJECT 5.7.1 450 please".into(),
            E,
        ),
        (
            "DEFER",
            Some("$sender_local"),
            vec![b"sender=4500@example.com"],
            "DEFER 4500".into(),
            E,
        ),
        (
            "REJECT",
            Some("$sender blocked"),
            vec![b"sender=5.7.1"],
            "REJECT".into(),
            F,
        ),
        (
            "REJECT",
            Some("$sender blocked"),
            vec![b"sender=4.7.1"],
            "REJECT".into(),
            F,
        ),
        (
            "REJECT",
            Some("$sender blocked"),
            vec![b"sender=5.7.1x"],
            "REJECT 5.7.1x blocked".into(),
            E,
        ),
        ("REJECT", Some("5.7.1$sender"), vec![], "REJECT".into(), F),
        (
            "REJECT",
            Some("5.7.1$sender"),
            vec![b"sender=0"],
            "REJECT".into(),
            F,
        ),
        (
            "REJECT",
            Some("5.7.1$sender"),
            vec![b"sender=x"],
            "REJECT 5.7.1x".into(),
            E,
        ),
        (
            "defer",
            Some("4.7.1 $rule"),
            vec![],
            "DEFER 4.7.1 r1".into(),
            E,
        ),
        (
            "DEFER_IF_PERMIT",
            Some("$sender"),
            vec![b"sender=5.1.1 x"],
            "DEFER_IF_PERMIT".into(),
            F,
        ),
        ("550", Some("$sender"), vec![], "550 5.0.0".into(), F),
        (
            "450",
            Some("$sender"),
            vec![b"sender=4.1.1"],
            "450 4.0.0".into(),
            F,
        ),
        (
            "550",
            Some("$sender"),
            vec![b"sender=joe"],
            "550 joe".into(),
            E,
        ),
        ("550", Some("5.7.1 $sender"), vec![], "550 5.7.1".into(), E),
        (
            "421",
            Some("4.3.2 $sender"),
            vec![b"sender=5.7.1"],
            "421 4.3.2 5.7.1".into(),
            E,
        ),
        ("HOLD", Some("$sender"), vec![], "HOLD".into(), E),
        (
            "HOLD",
            Some("$sender"),
            vec![b"sender=5.7.1"],
            "HOLD 5.7.1".into(),
            E,
        ),
        (
            "discard",
            Some("trap $recipient"),
            vec![b"recipient=\x00"],
            "DISCARD trap".into(),
            E,
        ),
        ("WARN", Some("$sasl_username"), vec![], "DUNNO".into(), F),
        (
            "WARN",
            Some("$sasl_username"),
            vec![b"sasl_username=bob"],
            "WARN bob".into(),
            E,
        ),
        ("INFO", Some("seen $sender"), vec![], "INFO seen".into(), E),
        (
            "FILTER",
            Some("smtp:[$client_address]:10025"),
            vec![b"client_address=192.0.2.1"],
            "FILTER smtp:[192.0.2.1]:10025".into(),
            E,
        ),
        ("FILTER", Some("$helo_name:x"), vec![], "DUNNO".into(), F),
        (
            "FILTER",
            Some("scan:$helo_name"),
            vec![b"helo_name=a b"],
            "DUNNO".into(),
            F,
        ),
        (
            "FILTER",
            Some("scan:$helo_name"),
            vec![],
            "FILTER scan:".into(),
            E,
        ),
        (
            "PREPEND",
            Some("X-Policy: $rule $sender"),
            vec![],
            "PREPEND X-Policy: r1".into(),
            E,
        ),
        (
            "PREPEND",
            Some("X-Sender: $sender"),
            vec![b"sender=a\r\tX-Evil: 1"],
            "PREPEND X-Sender: a  X-Evil: 1".into(),
            E,
        ),
        (
            "PREPEND",
            Some("X-Empty:$sender"),
            vec![],
            "PREPEND X-Empty:".into(),
            E,
        ),
        (
            "REDIRECT",
            Some("$sender"),
            vec![b"sender=joe@example.com"],
            "REDIRECT joe@example.com".into(),
            E,
        ),
        ("REDIRECT", Some("$sender"), vec![], "DUNNO".into(), F),
        (
            "REDIRECT",
            Some("$sender"),
            vec![b"sender=joe@"],
            "DUNNO".into(),
            F,
        ),
        (
            "REDIRECT",
            Some("$sender"),
            vec![b"sender=@example.com"],
            "DUNNO".into(),
            F,
        ),
        (
            "REDIRECT",
            Some("$sender"),
            vec![b"sender=a\rb@example.com"],
            "DUNNO".into(),
            F,
        ),
        ("REDIRECT", Some("$sender"), vec![long], "DUNNO".into(), F),
        (
            "BCC",
            Some("$recipient_local@archive.example"),
            vec![b"recipient=joe@example.com"],
            "BCC joe@archive.example".into(),
            E,
        ),
        (
            "BCC",
            Some("$recipient_local@archive.example"),
            vec![],
            "DUNNO".into(),
            F,
        ),
    ];
    for (verb, text, lines, expected, outcome) in &rows {
        assert_eq!(
            wire(verb, *text, lines),
            (expected.clone(), *outcome),
            "{verb} {text:?} {lines:?}"
        );
    }
}

#[test]
fn write_wire_appends_without_allocating_when_capacity_suffices() {
    let request = Request::parse(FULL).unwrap();
    let t =
        ActionTemplate::compile("REJECT", Some("5.7.1 Sender $sender blocked by $rule")).unwrap();
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(b"action=");
    let before = out.as_ptr();
    assert_eq!(t.write_wire(&request, "r", &mut out), WireOutcome::Expanded);
    assert_eq!(out.as_ptr(), before);
    assert_eq!(
        out,
        b"action=REJECT 5.7.1 Sender Joe.User@Example.NET blocked by r".as_slice()
    );
}

/// Templates of every kind for the property tests.
const TEMPLATES: &[(&str, &str)] = &[
    ("REJECT", "5.7.1 Sender $sender via $helo_name blocked"),
    ("REJECT", "$sender $recipient"),
    ("REJECT", "5.7.1$sender"),
    ("DEFER", "4.7.1 $client_name"),
    ("DEFER_IF_REJECT", "$sasl_username"),
    ("DEFER_IF_PERMIT", "4.7.0 $rule $sender"),
    ("550", "$sender"),
    ("450", "4.7.1 ${sender_local}@${sender_domain} $recipient"),
    ("421", "$helo_name $helo_name $helo_name"),
    ("HOLD", "$recipient"),
    ("DISCARD", "$sender_domain $rule"),
    ("WARN", "$ccert_subject"),
    ("INFO", "$sender$recipient$helo_name"),
    ("FILTER", "smtp:[$client_name]:$sasl_username"),
    ("FILTER", "$sasl_username:x"),
    ("PREPEND", "X-Policy: $sender $helo_name"),
    ("REDIRECT", "$sender"),
    ("REDIRECT", "${recipient_local}+q@$recipient_domain"),
    ("BCC", "$sasl_username@$helo_name"),
];

proptest! {
    #[test]
    fn write_wire_is_always_a_valid_action(
        sender in value(),
        recipient in value(),
        helo in value(),
        client_name in value(),
        sasl in value(),
        subject in value(),
        rule in "[ -~\u{80}-\u{10ffff}]{0,20}",
    ) {
        let mut frame = b"request=smtpd_access_policy\n".to_vec();
        for (name, value) in [
            (&b"sender"[..], &sender),
            (b"recipient", &recipient),
            (b"helo_name", &helo),
            (b"client_name", &client_name),
            (b"sasl_username", &sasl),
            (b"ccert_subject", &subject),
        ] {
            frame.extend_from_slice(name);
            frame.push(b'=');
            frame.extend_from_slice(value);
            frame.push(b'\n');
        }
        frame.push(b'\n');
        let request = Request::parse(&frame).unwrap();
        for (verb, text) in TEMPLATES {
            let t = ActionTemplate::compile(verb, Some(text));
            prop_assert!(t.is_ok(), "{} {}", verb, text);
            let t = t.unwrap();
            let mut out = Vec::new();
            let outcome = t.write_wire(&request, &rule, &mut out);
            let out = std::str::from_utf8(&out);
            prop_assert!(out.is_ok());
            let out = out.unwrap();
            prop_assert!(!out.contains(['\r', '\n']));
            prop_assert!(!out.chars().any(char::is_control));
            let parsed = Action::parse(out);
            prop_assert!(parsed.is_ok(), "{} {}: {:?} -> {:?}", verb, text, out, parsed);
            let parsed = parsed.unwrap();
            prop_assert_eq!(parsed.to_string(), out);
            // The longest prefix, a space, and the bounded text (`Action::parse`
            // checked the text's own bound).
            prop_assert!(out.len() <= "DEFER_IF_PERMIT 4.999.999 ".len() + MAX_TEXT_BYTES);
            if outcome == WireOutcome::Fallback {
                prop_assert_eq!(&parsed, t.fallback());
            } else {
                prop_assert_eq!(parsed.verb(), t.action().verb());
            }
        }
    }
}
