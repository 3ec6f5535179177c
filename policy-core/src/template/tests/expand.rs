use proptest::prelude::*;

use crate::action::MAX_TEXT_BYTES;
use crate::request::Request;

use super::{expand, frame, value, FULL};
use crate::template::{Template, Var};

#[test]
fn expand_every_variable() {
    let rows: &[(&str, &str)] = &[
        ("$request", "smtpd_access_policy"),
        ("$protocol_state", "RCPT"),
        ("$protocol_name", "ESMTP"),
        ("$helo_name", "mx.example.net"),
        ("[$queue_id]", "[]"),
        ("$sender", "Joe.User@Example.NET"),
        ("$recipient", "info@example.com"),
        ("$recipient_count", "0"),
        ("$client_address", "192.0.2.7"),
        ("$client_name", "mx.example.net"),
        ("$reverse_client_name", "mx.example.net"),
        ("$instance", "6a3.5f3e0c1d.4c2d3.0"),
        ("$sasl_method", "PLAIN"),
        ("$sasl_username", "joe"),
        ("$size", "10"),
        ("$encryption_protocol", "TLSv1.3"),
        ("$encryption_cipher", "TLS_AES_256_GCM_SHA384"),
        ("$encryption_keysize", "256"),
        ("$client_port", "54321"),
        ("$server_address", "2001:db8::25"),
        ("$server_port", "unknown"),
        ("$compatibility_level", "3.6"),
        ("$mail_version", "3.8.0"),
        ("$sender_local", "Joe.User"),
        ("$sender_domain", "Example.NET"),
        ("$recipient_local", "info"),
        ("$recipient_domain", "example.com"),
        ("$rule", "the-rule"),
        ("<$tls_sni>", "<>"),
        (
            "$sender_local at ${sender_domain}: ${rule}!",
            "Joe.User at Example.NET: the-rule!",
        ),
    ];
    for (template, expected) in rows {
        assert_eq!(
            expand(template, FULL),
            ((*expected).to_owned(), false),
            "{template}"
        );
    }
    // Every variable expands without panicking on an empty request too.
    let empty = Request::parse(b"request=smtpd_access_policy\n\n").unwrap();
    for var in Var::ALL {
        let mut out = Vec::new();
        let t = Template::parse(&format!("<${{{var}}}>")).unwrap();
        assert!(!t.expand(&empty, "", &mut out));
        let expected: &[u8] = if var == Var::Request {
            b"<smtpd_access_policy>"
        } else if var == Var::Score {
            // No score item ran: a score of 0.
            b"<0>"
        } else {
            b"<>"
        };
        assert_eq!(out, expected, "{var}");
    }
}

#[test]
fn expand_hostile_values() {
    let long = "x".repeat(2 * MAX_TEXT_BYTES);
    let long_line = format!("sender={long}");
    // 'é' is two bytes: 449 bytes of ASCII, then 'é' would end at 451.
    let accent_line = format!("helo_name={}\u{e9}\u{e9}", "y".repeat(MAX_TEXT_BYTES - 1));
    let spaced_line = format!("helo_name={} z", "w".repeat(MAX_TEXT_BYTES - 1));
    let rows: Vec<(&str, Vec<&[u8]>, String, bool)> = vec![
        ("<$sender>", vec![b"sender=a\rb@c"], "<a b@c>".into(), false),
        ("<$sender>", vec![b"sender=a\r\r"], "<a >".into(), false),
        (
            "<$helo_name>",
            vec![b"helo_name=a\tb\0c\x1bd\x7fe"],
            "<a b c d e>".into(),
            false,
        ),
        (
            "<$helo_name>",
            vec![b"helo_name=\xc2\x85\xc2\x9f"],
            "<  >".into(),
            false,
        ),
        (
            "<$helo_name>",
            vec![b"helo_name=a\xffb\xe2\x82c"],
            "<a\u{fffd}b\u{fffd}c>".into(),
            false,
        ),
        (
            "<$helo_name>",
            vec![b"helo_name=\xf0\x9f\x92\xa9"],
            "<\u{1f4a9}>".into(),
            false,
        ),
        (
            "<$helo_name>",
            vec![b"helo_name=\xed\xa0\x80"],
            "<\u{fffd}\u{fffd}\u{fffd}>".into(),
            false,
        ),
        // Leading and trailing spaces of the whole text go; inner stay.
        ("$sender blocked", vec![], "blocked".into(), false),
        (
            "$sender blocked",
            vec![b"sender=\r\t x"],
            "x blocked".into(),
            false,
        ),
        (
            "blocked: $sender",
            vec![b"sender="],
            "blocked:".into(),
            false,
        ),
        ("  a  $sender  ", vec![b"sender=\t"], "a".into(), false),
        ("$sender", vec![b"sender=\t\t"], String::new(), false),
        ("a $sender b", vec![], "a  b".into(), false),
        // Length bound, on a character boundary.
        (
            "$sender",
            vec![long_line.as_bytes()],
            "x".repeat(MAX_TEXT_BYTES),
            true,
        ),
        (
            "ab $sender",
            vec![long_line.as_bytes()],
            format!("ab {}", "x".repeat(MAX_TEXT_BYTES - 3)),
            true,
        ),
        (
            "$helo_name",
            vec![accent_line.as_bytes()],
            "y".repeat(MAX_TEXT_BYTES - 1),
            true,
        ),
        (
            "$helo_name$sender",
            vec![accent_line.as_bytes(), b"sender=zz"],
            "y".repeat(MAX_TEXT_BYTES - 1),
            true,
        ),
        // A cut that leaves a trailing space removes it too.
        (
            "$helo_name",
            vec![spaced_line.as_bytes()],
            "w".repeat(MAX_TEXT_BYTES - 1),
            true,
        ),
        // Typed attributes Postfix sent as `unknown`.
        (
            "$client_address:$client_port",
            vec![b"client_address=unknown", b"client_port=unknown"],
            "unknown:unknown".into(),
            false,
        ),
        (
            "[$client_address]",
            vec![b"client_address=fe80::1%eth0"],
            "[fe80::1]".into(),
            false,
        ),
        (
            "[$client_address]",
            vec![b"client_address=::ffff:192.0.2.1"],
            "[::ffff:192.0.2.1]".into(),
            false,
        ),
        (
            "$size",
            vec![b"size=18446744073709551615"],
            "18446744073709551615".into(),
            false,
        ),
        // A template's own `$` survives.
        ("$$$sender", vec![b"sender=$x"], "$$x".into(), false),
    ];
    for (template, lines, expected, cut) in &rows {
        let frame = frame(lines);
        assert_eq!(
            &expand(template, &frame),
            &(expected.clone(), *cut),
            "{template} {lines:?}"
        );
        assert!(expected.len() <= MAX_TEXT_BYTES);
    }
    // Exactly the budget: not cut.
    let exact = format!("sender={}", "e".repeat(MAX_TEXT_BYTES));
    assert_eq!(
        expand("$sender", &frame(&[exact.as_bytes()])),
        ("e".repeat(MAX_TEXT_BYTES), false)
    );
}

#[test]
fn a_character_that_does_not_fit_ends_the_text() {
    // 447 bytes, then a 4-byte character (3 bytes of room left), then an
    // invalid byte: its 3-byte U+FFFD would fit, but the text ended before.
    let mut line = format!("sender={}", "x".repeat(MAX_TEXT_BYTES - 3)).into_bytes();
    line.extend_from_slice(b"\xf0\xab\xa9\x9f\x82 more");
    assert_eq!(
        expand("$sender", &frame(&[&line])),
        ("x".repeat(MAX_TEXT_BYTES - 3), true)
    );
    // With room for them, the character and the U+FFFD are both written.
    line.drain("sender=".len().."sender=".len() + 4);
    assert_eq!(
        expand("$sender", &frame(&[&line])),
        (
            format!("{}\u{2ba5f}\u{fffd}", "x".repeat(MAX_TEXT_BYTES - 7)),
            true
        )
    );
}

#[test]
fn expand_appends_without_allocating_when_capacity_suffices() {
    let request = Request::parse(FULL).unwrap();
    let t = Template::parse("5.7.1 Sender $sender from [$client_address] blocked").unwrap();
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(b"REJECT ");
    let before = out.as_ptr();
    assert!(!t.expand(&request, "r", &mut out));
    assert_eq!(out.as_ptr(), before);
    assert_eq!(
        out,
        b"REJECT 5.7.1 Sender Joe.User@Example.NET from [192.0.2.7] blocked"
    );
}

proptest! {
    #[test]
    fn expand_is_sanitized_and_bounded(sender in value(), helo in value(), literal in "[ -#%-~\u{a0}-\u{10ffff}]{0,300}") {
        let mut frame = b"request=smtpd_access_policy\nsender=".to_vec();
        frame.extend_from_slice(&sender);
        frame.extend_from_slice(b"\nhelo_name=");
        frame.extend_from_slice(&helo);
        frame.extend_from_slice(b"\n\n");
        let request = Request::parse(&frame).unwrap();
        let t = Template::parse(&format!("{literal}${{sender}}{literal}${{helo_name}}")).unwrap();
        let mut out = b"x".to_vec();
        let cut = t.expand(&request, "", &mut out);
        let text = std::str::from_utf8(&out[1..]);
        prop_assert!(text.is_ok());
        let text = text.unwrap();
        prop_assert!(text.len() <= MAX_TEXT_BYTES);
        prop_assert!(!text.chars().any(char::is_control));
        prop_assert!(!text.starts_with(' ') && !text.ends_with(' '));
        // Without a cut, the text is the lossy, sanitized concatenation, trimmed.
        if !cut {
            // The request parser drops a CR right before the LF.
            let crless = |v: &[u8]| v.strip_suffix(b"\r").unwrap_or(v).to_vec();
            let clean = |v: Vec<u8>| String::from_utf8_lossy(&v).chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>();
            let expected = format!("{literal}{}{literal}{}", clean(crless(&sender)), clean(crless(&helo)));
            prop_assert_eq!(text, expected.trim_matches(' '));
        }
    }
}
