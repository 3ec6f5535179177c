//! postgrey compatibility (`policy_core::greylist`): the sender as postgrey
//! keys it, and postgrey's whitelist files, against tables of cases, sample
//! files in postgrey's format (`tests/greylist/`), and a reference built from
//! postgrey 1.37's own regular expressions (proptest). Lookups allocate
//! nothing once warm (a counting global allocator).

use std::net::IpAddr;

use policy_core::greylist::{normalize_sender, ClientWhitelist, RecipientWhitelist};
use policy_core::Address;
use proptest::prelude::*;

use crate::common::{heap_operations, tests_dir};
use regex::bytes::Regex;

// ---------------------------------------------------------------------------
// Helpers.

fn sample(name: &str) -> String {
    let path = tests_dir().join("greylist").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn clients(text: &str) -> ClientWhitelist {
    ClientWhitelist::parse(text).unwrap_or_else(|errors| {
        panic!(
            "{}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

fn recipients(text: &str) -> RecipientWhitelist {
    RecipientWhitelist::parse(text).unwrap_or_else(|errors| {
        panic!(
            "{}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

fn normalized(sender: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    normalize_sender(sender, &mut out);
    out
}

fn ip(text: &str) -> Option<IpAddr> {
    Some(text.parse().expect(text))
}

// ---------------------------------------------------------------------------
// The sender.

#[test]
fn sender_table() {
    let rows: &[(&[u8], &[u8])] = &[
        // The null sender and senders without `@`: lower-cased only.
        (b"", b""),
        (b"MAILER-DAEMON", b"mailer-daemon"),
        (b"Joe+x", b"joe+x"),
        (b"12345", b"12345"),
        (b"prvs=0123456789=joe", b"prvs=0123456789=joe"),
        // Case.
        (b"Joe@Example.COM", b"joe@example.com"),
        // Extensions: from the first `+` to the `@`.
        (b"joe+list@example.com", b"joe@example.com"),
        (b"joe+a+b@example.com", b"joe@example.com"),
        (b"joe+@example.com", b"joe@example.com"),
        (b"+tag@example.com", b"@example.com"),
        (b"joe-list@example.com", b"joe-list@example.com"),
        // VERP numbers: whole-word digit runs become `#`.
        (
            b"bounce-123-4567@lists.example.org",
            b"bounce-#-#@lists.example.org",
        ),
        (b"1.2@x.example", b"#.#@x.example"),
        (b"123@x.example", b"#@x.example"),
        (b"user123@x.example", b"user123@x.example"),
        (b"123user@x.example", b"123user@x.example"),
        (b"12_34@x.example", b"12_34@x.example"),
        (b"a-1b-2@x.example", b"a-1b-#@x.example"),
        (b"a#1@x.example", b"a##@x.example"),
        (b"x=1=22=333@x.example", b"x=#=#=#@x.example"),
        (b"123+456@x.example", b"#@x.example"),
        (b"list-42@123.example", b"list-#@123.example"),
        // BATV: `prvs=TAG=user` and `prvs=user=TAG`.
        (b"prvs=0123456789=joe@example.com", b"joe@example.com"),
        (b"prvs=joe=0123456789@example.com", b"joe@example.com"),
        (b"prvs=1234abcdef=Joe+x@Example.com", b"joe@example.com"),
        (
            b"prvs=0123456789=bounce-7@example.com",
            b"bounce-#@example.com",
        ),
        (b"prvs=0123456789=0123456789@example.com", b"#@example.com"),
        (b"prvs=joe=ann@example.com", b"ann@example.com"),
        (b"prvs=ABCDEFGHIJ=joe@example.com", b"joe@example.com"),
        (
            b"PRVS=0123456789=joe@example.com",
            b"prvs=#=joe@example.com",
        ),
        (b"prvs=a=b=c@example.com", b"prvs=a=b=c@example.com"),
        (b"prvs=joe=@example.com", b"prvs=joe=@example.com"),
        (b"prvs=a=b=@example.com", b"b@example.com"),
        // Several `@`: split at the first; the rest is the domain, as is.
        (b"a+b@c@d.example", b"a@c@d.example"),
        (b"\"x@y\"@d.example", b"\"x@y\"@d.example"),
        (b"@", b"@"),
        (b"joe@", b"joe@"),
        (b"@@", b"@@"),
        // SRS is not unwrapped (postgrey does not); its numbers fold.
        (
            b"SRS0=HHH=12=example.org=joe@fwd.example",
            b"srs0=hhh=#=example.org=joe@fwd.example",
        ),
        // Bytes outside ASCII: kept, never lower-cased; non-word for `\b`.
        (b"\xc3\x89mile@example.com", b"\xc3\x89mile@example.com"),
        (b"\xff12\xfe@X", b"\xff#\xfe@x"),
        (b"a+b\nc@x", b"a\nc@x"),
        (b"a+b\n12@x", b"a\n#@x"),
    ];
    for (sender, expected) in rows {
        assert_eq!(
            normalized(sender),
            *expected,
            "{:?}",
            String::from_utf8_lossy(sender)
        );
    }
}

#[test]
fn sender_normalisation_allocates_nothing_with_capacity() {
    let mut out = Vec::with_capacity(512);
    let senders: [&[u8]; 3] = [
        b"prvs=0123456789=Bounce+List-42@Lists.Example.ORG",
        b"",
        b"joe@example.com",
    ];
    let operations = heap_operations(|| {
        for sender in senders {
            out.clear();
            normalize_sender(sender, &mut out);
        }
    });
    assert_eq!(operations, 0);
}

// ---------------------------------------------------------------------------
// Client whitelist.

#[test]
fn client_sample_file() {
    let whitelist = clients(&sample("whitelist_clients"));
    assert_eq!(whitelist.len(), 13);
    let rows: &[(&str, Option<IpAddr>, bool)] = &[
        // Host names: the name and its subdomains, any case.
        ("example.com", None, true),
        ("MX1.Example.Com", None, true),
        ("a.b.c.example.com", None, true),
        ("badexample.com", None, false),
        ("example.com.evil.example", None, false),
        ("relay.example.org", None, true),
        ("smtp.relay.example.org", None, true),
        ("example.org", None, false),
        ("mail.example.net", None, true),
        ("example.net", None, false),
        // Trailing dot: postgrey's suffix does not ignore it.
        ("example.com.", None, false),
        // Regexes.
        ("smtp12.example.info", None, true),
        ("SMTP12.EXAMPLE.INFO", None, true),
        ("smtp.example.info", None, false),
        ("mail-out-abc.example.biz", None, true),
        ("mail-out-123.example.biz", None, false),
        // `unknown` and empty names match no name entry.
        ("unknown", None, false),
        ("", None, false),
        // IPv4.
        ("unknown", ip("192.0.2.10"), true),
        ("unknown", ip("192.0.2.11"), false),
        ("unknown", ip("198.51.100.0"), true),
        ("unknown", ip("198.51.100.127"), true),
        ("unknown", ip("198.51.100.128"), false),
        ("unknown", ip("203.0.113.0"), true),
        ("unknown", ip("203.0.113.255"), true),
        ("unknown", ip("203.0.114.1"), false),
        ("unknown", ip("10.20.0.1"), true),
        ("unknown", ip("10.20.255.255"), true),
        ("unknown", ip("10.21.0.1"), false),
        ("unknown", ip("::ffff:192.0.2.10"), true),
        // IPv6.
        ("unknown", ip("2001:db8::25"), true),
        ("unknown", ip("2001:db8::26"), false),
        ("unknown", ip("2001:db8:1:ffff::1"), true),
        ("unknown", ip("2001:db8:2::1"), false),
        // A name entry that is not a domain, by postgrey's suffix regex.
        ("MX_1.example.edu", None, true),
        ("a.mx_1.example.edu", None, true),
        ("xmx_1.example.edu", None, false),
        // `10`: a name suffix in postgrey 1.37, not the network 10/8.
        ("host.10", None, true),
        ("unknown", ip("10.1.2.3"), false),
        // Either part may match.
        ("mail.example.com", ip("203.0.114.1"), true),
        ("mail.example.biz", ip("192.0.2.10"), true),
    ];
    for (name, address, expected) in rows {
        assert_eq!(
            whitelist.matches(name.as_bytes(), *address),
            *expected,
            "{name} {address:?}"
        );
    }
    assert!(whitelist.heap_bytes() > 0);
}

#[test]
fn client_errors_are_located() {
    let errors = ClientWhitelist::parse(&sample("bad_clients")).unwrap_err();
    let located: Vec<(u32, u32, &str)> = errors
        .iter()
        .map(|e| (e.line, e.column, e.error.problem()))
        .collect();
    assert_eq!(
        located,
        vec![
            (2, 5, "whitespace inside the entry"),
            (3, 1, "an IPv4 address with a number above 255"),
            (4, 1, "prefix length out of range"),
            (5, 1, "invalid prefix length"),
            (6, 1, "not an IPv6 address"),
            (7, 1, "neither a host name nor an IP address or network"),
            (8, 1, "invalid regular expression"),
            (9, 1, "invalid regular expression"),
        ]
    );
    assert_eq!(errors[7].error.detail(), Some("unclosed group"));
    assert_eq!(
        errors[0].to_string(),
        "line 2, column 5: whitespace inside the entry; expected one entry per line without \
         spaces (a host name, an address, a network or a /regex/), optionally followed by a \
         `#` comment"
    );
}

#[test]
fn empty_files_match_nothing() {
    let c = clients("# nothing yet\n\n");
    assert!(c.is_empty());
    assert!(!c.matches(b"example.com", ip("192.0.2.1")));
    let r = recipients("");
    assert!(r.is_empty());
    assert!(!r.matches(&Address::new(b"postmaster@example.com")));
}

// ---------------------------------------------------------------------------
// Recipient whitelist.

#[test]
fn recipient_sample_file() {
    let whitelist = recipients(&sample("whitelist_recipients"));
    assert_eq!(whitelist.len(), 8);
    let rows: &[(&[u8], bool)] = &[
        // `postmaster@`: any domain, with or without a non-empty extension.
        (b"postmaster@example.com", true),
        (b"PostMaster@Example.NET", true),
        (b"postmaster+spam@example.com", true),
        (b"postmaster+@example.com", false),
        (b"postmasters@example.com", false),
        (b"xpostmaster@example.com", false),
        (b"postmaster", false),
        (b"postmaster@", true),
        (b"postmaster@a@b", true),
        // `abuse@example.com`: that address and its extensions, not subdomains.
        (b"abuse@example.com", true),
        (b"ABUSE+x+y@EXAMPLE.COM", true),
        (b"abuse@mail.example.com", false),
        (b"abuse@example.com.", false),
        (b"abuse@example.org", false),
        (b"abuse-x@example.com", false),
        // A domain: it and its subdomains, after `@` or `.`.
        (b"joe@lists.example.org", true),
        (b"joe@dev.Lists.Example.org", true),
        (b"joe@xlists.example.org", false),
        (b"joe@lists.example.org.", false),
        (b"joe@example.org", false),
        (b"joe.lists.example.org", true),
        (b"lists.example.org", false),
        (b"lists.example.org@example.net", false),
        // A regex on the whole address, case-insensitive.
        (b"noreply-42@example.com", true),
        (b"NoReply-42@example.com", true),
        (b"noreply-x@example.com", false),
        // A user containing `+`.
        (b"j+x@example.net", true),
        (b"j+x+y@example.net", true),
        (b"j@example.net", false),
        (b"j+y@example.net", false),
        // Odd shapes, with postgrey's meaning.
        (b"@example.info", true),
        (b"+x@example.info", true),
        (b"joe@example.info", false),
        (b"ops@[192.0.2.1]", true),
        (b"ops+x@[192.0.2.1]", true),
        (b"ops@[192.0.2.10]", false),
        (b"joe@.example.edu", true),
        (b"joe@example.edu", false),
        // Null and odd recipients.
        (b"", false),
        (b"\xff\xfe@\x00", false),
    ];
    for (recipient, expected) in rows {
        assert_eq!(
            whitelist.matches(&Address::new(recipient)),
            *expected,
            "{:?}",
            String::from_utf8_lossy(recipient)
        );
    }
}

#[test]
fn recipient_errors_are_located() {
    let errors = RecipientWhitelist::parse(&sample("bad_recipients")).unwrap_err();
    let located: Vec<(u32, u32, &str)> = errors
        .iter()
        .map(|e| (e.line, e.column, e.error.problem()))
        .collect();
    assert_eq!(
        located,
        vec![
            (1, 12, "whitespace inside the entry"),
            (2, 1, "invalid regular expression"),
            (3, 1, "invalid regular expression"),
        ]
    );
}

#[test]
fn lookups_allocate_nothing() {
    let client_list = clients(&sample("whitelist_clients"));
    let recipient_list = recipients(&sample("whitelist_recipients"));
    let names: [&[u8]; 4] = [
        b"mx.example.com",
        b"smtp7.example.info",
        b"host.example.biz",
        b"unknown",
    ];
    let addresses = [ip("192.0.2.10"), ip("2001:db8::1"), None];
    let recipients: [&[u8]; 4] = [
        b"postmaster+x@example.com",
        b"j+x+y@example.net",
        b"joe@dev.lists.example.org",
        b"nobody@example.com",
    ];
    let run = || {
        let mut hits = 0;
        for name in names {
            for address in addresses {
                hits += usize::from(client_list.matches(name, address));
            }
        }
        for recipient in recipients {
            hits += usize::from(recipient_list.matches(&Address::new(recipient)));
        }
        hits
    };
    let warm = run(); // fills the regex sets' per-thread caches
    let mut hits = 0;
    let operations = heap_operations(|| hits = run());
    assert_eq!(hits, warm);
    assert_eq!(operations, 0);
}

// ---------------------------------------------------------------------------
// The reference: postgrey 1.37's own regexes, on bytes, ASCII case folded.

fn postgrey_regex(source: &str) -> Regex {
    Regex::new(&format!("(?i-u){source}")).expect(source)
}

/// postgrey's regex for a client name entry (not an IP shape).
fn postgrey_client_name(entry: &str) -> Regex {
    postgrey_regex(&format!(r"(?:^|\.){}$", regex::escape(entry)))
}

/// postgrey's regex for a recipient entry.
fn postgrey_recipient(entry: &str) -> Regex {
    if let Some(inner) = entry
        .strip_prefix('/')
        .and_then(|e| e.strip_suffix('/'))
        .filter(|inner| !inner.is_empty())
    {
        return postgrey_regex(inner);
    }
    match entry.split_once('@') {
        Some((user, "")) => postgrey_regex(&format!(r"^{}(?:\+[^@]+)?@", regex::escape(user))),
        Some((user, domain)) => postgrey_regex(&format!(
            r"^{}(?:\+[^@]+)?@{}$",
            regex::escape(user),
            regex::escape(domain)
        )),
        None => postgrey_regex(&format!(r"(?:@|\.){}$", regex::escape(entry))),
    }
}

/// Host names and domains made of a few labels (so that entries and lookups
/// collide), any case, sometimes with an odd label or dot.
fn name() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            "a", "B", "ex", "Ex", "com", "COM", "mx_1", "x-y", "9", "", "é",
        ]),
        1..4,
    )
    .prop_map(|labels| labels.join("."))
}

fn user() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec!["joe", "JOE", "j", "+", "x", "1", "\"", "-"]),
        0..4,
    )
    .prop_map(|parts| parts.concat())
}

fn recipient_entry() -> impl Strategy<Value = String> {
    prop_oneof![
        (user(), name()).prop_map(|(u, d)| format!("{u}@{d}")),
        user().prop_map(|u| format!("{u}@")),
        name(),
        name().prop_map(|d| format!("/{}$/", regex::escape(&d))),
    ]
    .prop_filter("no whitespace, not empty", |e| {
        !e.is_empty() && !e.contains(char::is_whitespace) && !e.contains('#')
    })
}

fn recipient_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (user(), name()).prop_map(|(u, d)| format!("{u}@{d}").into_bytes()),
        (user(), name(), name()).prop_map(|(u, a, b)| format!("{u}@{a}@{b}").into_bytes()),
        name().prop_map(String::into_bytes),
        (user(), name()).prop_map(|(u, d)| format!("{u}@{d}.").into_bytes()),
    ]
}

/// A value derived from one of `entries` (so that hits are common): as is,
/// upper case, with a `+extension` after the user, under a subdomain, with a
/// user in front, or a value unrelated to them.
fn derived(entries: &[String], index: usize, how: u8, extra: &str, other: &[u8]) -> Vec<u8> {
    let Some(entry) = entries.get(index % entries.len().max(1)) else {
        return other.to_vec();
    };
    match how % 6 {
        0 => entry.clone().into_bytes(),
        1 => entry.to_uppercase().into_bytes(),
        2 => match entry.split_once('@') {
            Some((user, domain)) => format!("{user}+{extra}@{domain}").into_bytes(),
            None => format!("{extra}@{entry}").into_bytes(),
        },
        3 => format!("{extra}.{entry}").into_bytes(),
        4 => format!("{extra}@{extra}.{entry}").into_bytes(),
        _ => other.to_vec(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn client_names_match_as_postgrey(
        entries in prop::collection::vec(name(), 0..6),
        (index, how, extra, other) in (any::<usize>(), any::<u8>(), name(), name()),
    ) {
        // Entries that are IP shapes or carry `/` are not names.
        let entries: Vec<String> = entries
            .into_iter()
            .filter(|e| !e.is_empty() && !e.contains('/'))
            .filter(|e| !e.split('.').all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit())))
            .collect();
        let client_name = String::from_utf8(derived(&entries, index, how, &extra, other.as_bytes()))
            .unwrap_or_default();
        let whitelist = clients(&entries.join("\n"));
        let expected = client_name != "unknown"
            && !client_name.is_empty()
            && entries.iter().any(|e| postgrey_client_name(e).is_match(client_name.as_bytes()));
        prop_assert_eq!(whitelist.matches(client_name.as_bytes(), None), expected, "{:?} {:?}", entries, client_name);
    }

    #[test]
    fn client_addresses_match_as_postgrey(
        networks in prop::collection::vec((any::<u32>(), 0u32..=32, 0usize..4), 0..6),
        probe in any::<u32>(),
        near in any::<bool>(),
    ) {
        // Each network written as postgrey accepts it: `a.b.c.d/m`, `a.b.c.d`, `a.b.c`, `a.b`.
        let mut entries = Vec::new();
        let mut reference = Vec::new();
        for (address, prefix, form) in &networks {
            let o = address.to_be_bytes();
            let (text, prefix) = match form {
                0 => (format!("{}.{}.{}.{}/{prefix}", o[0], o[1], o[2], o[3]), *prefix),
                1 => (format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3]), 32),
                2 => (format!("{}.{}.{}", o[0], o[1], o[2]), 24),
                _ => (format!("{}.{}", o[0], o[1]), 16),
            };
            entries.push(text);
            reference.push((*address, prefix));
        }
        let whitelist = clients(&entries.join("\n"));
        // Probe near an entry half of the time, so that hits are common.
        let probe = match (near, networks.first()) {
            (true, Some((address, _, _))) => address ^ (probe & 0x1ff),
            _ => probe,
        };
        let mask = |prefix: u32| u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
        let expected = reference.iter().any(|&(a, p)| a & mask(p) == probe & mask(p));
        let v4 = std::net::Ipv4Addr::from(probe);
        prop_assert_eq!(whitelist.matches(b"unknown", Some(IpAddr::V4(v4))), expected);
        prop_assert_eq!(whitelist.matches(b"unknown", Some(IpAddr::V6(v4.to_ipv6_mapped()))), expected);
    }

    #[test]
    fn recipients_match_as_postgrey(
        entries in prop::collection::vec(recipient_entry(), 0..6),
        (index, how, extra, other) in (any::<usize>(), any::<u8>(), user(), recipient_value()),
    ) {
        let recipient = derived(&entries, index, how, &extra, &other);
        let whitelist = recipients(&entries.join("\n"));
        let expected = entries.iter().any(|e| postgrey_recipient(e).is_match(&recipient));
        prop_assert_eq!(
            whitelist.matches(&Address::new(&recipient)),
            expected,
            "{:?} {:?}",
            entries,
            String::from_utf8_lossy(&recipient)
        );
    }

    #[test]
    fn parsing_never_panics(text in "(?s).{0,400}") {
        let _ = ClientWhitelist::parse(&text);
        let _ = RecipientWhitelist::parse(&text);
    }

    #[test]
    fn parsing_whitelist_like_text_never_panics(
        lines in prop::collection::vec("[0-9a-f./:@+#\\\\ ^$()\\[\\]*?{}=-]{0,24}", 0..12),
    ) {
        let text = lines.join("\n");
        let _ = ClientWhitelist::parse(&text);
        let _ = RecipientWhitelist::parse(&text);
    }

    #[test]
    fn lookups_and_normalisation_never_panic(
        value in prop::collection::vec(any::<u8>(), 0..300),
        v6 in any::<u128>(),
    ) {
        let client_list = clients(&sample("whitelist_clients"));
        let recipient_list = recipients(&sample("whitelist_recipients"));
        let _ = client_list.matches(&value, Some(IpAddr::V6(v6.into())));
        let _ = client_list.matches(&value, None);
        let _ = recipient_list.matches(&Address::new(&value));
        let mut out = Vec::new();
        normalize_sender(&value, &mut out);
        prop_assert!(out.len() <= value.len());
        let mut again = Vec::new();
        normalize_sender(&value, &mut again);
        prop_assert_eq!(out, again);
    }
}
