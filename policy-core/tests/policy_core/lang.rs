//! The policy language through the public API: compile errors (every one,
//! located), evaluation, dry-run, states, explanations and warnings.

use std::collections::HashMap;

use policy_core::{
    CompileErrors, Compiled, Diagnostic, Engine, NoFiles, Policy, Request, Scratch, Severity,
    Timestamp,
};

use crate::common::{compiled, engine, rule_and_wire, NOW};

/// Attribute overrides for [`frame`].
type Pairs<'a> = &'a [(&'a str, &'a str)];

/// A request frame from `name=value` pairs (a Postfix 3.x RCPT request by
/// default, overridden by `pairs`; a value of `-` drops the attribute).
fn frame(pairs: &[(&str, &str)]) -> Vec<u8> {
    let base: &[(&str, &str)] = &[
        ("request", "smtpd_access_policy"),
        ("protocol_state", "RCPT"),
        ("protocol_name", "ESMTP"),
        ("helo_name", "mail.example.org"),
        ("queue_id", ""),
        ("sender", "joe@example.org"),
        ("recipient", "ann@example.com"),
        ("recipient_count", "0"),
        ("client_address", "192.0.2.10"),
        ("client_name", "mail.example.org"),
        ("reverse_client_name", "mail.example.org"),
        ("instance", "123.456.7"),
        ("sasl_method", ""),
        ("sasl_username", ""),
        ("sasl_sender", ""),
        ("size", "12345"),
        ("ccert_subject", ""),
        ("ccert_issuer", ""),
        ("ccert_fingerprint", ""),
        ("ccert_pubkey_fingerprint", ""),
        ("encryption_protocol", "TLSv1.3"),
        ("encryption_cipher", "TLS_AES_256_GCM_SHA384"),
        ("encryption_keysize", "256"),
        ("etrn_domain", ""),
        ("stress", ""),
        ("client_port", "54321"),
        ("policy_context", ""),
        ("server_address", "198.51.100.1"),
        ("server_port", "25"),
        ("compatibility_level", "3.6"),
        ("mail_version", "3.8.1"),
        ("tls_sni", ""),
    ];
    let mut out = Vec::new();
    for (name, value) in base {
        let value = pairs
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map_or(*value, |(_, v)| *v);
        if value != "-" {
            out.extend_from_slice(format!("{name}={value}\n").as_bytes());
        }
    }
    out.push(b'\n');
    out
}

fn compile_with_files(src: &str, files: &[(&str, &str)]) -> Result<Compiled, CompileErrors> {
    let files: HashMap<String, String> = files
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let mut loader = move |path: &str| {
        files
            .get(path)
            .cloned()
            .ok_or_else(|| "no such file or directory".to_owned())
    };
    Policy::compile("policy.conf", src, &mut loader)
}

fn errors(src: &str) -> CompileErrors {
    match Policy::compile("policy.conf", src, &mut NoFiles) {
        Ok(_) => panic!("compiles but should not:\n{src}"),
        Err(e) => e,
    }
}

/// (rule, wire action) for `pairs` under `engine`'s policy.
fn decide(engine: &Engine, pairs: &[(&str, &str)]) -> (String, String) {
    let bytes = frame(pairs);
    let request = Request::parse(&bytes).expect("test request parses");
    let mut scratch = Scratch::new();
    rule_and_wire(&engine.decide(&request, NOW, &mut scratch))
}

#[test]
fn every_compile_error_is_located_and_says_what_was_expected() {
    // (source, line, column, fragment of the message)
    let rows: &[(&str, u32, u32, &str)] = &[
        // Syntax.
        ("bogus", 1, 1, "expected `list`, `logins`, `dnsbl`, `rhsbl`, `rule`, `limit`, `greylist`, `score`, `default` or `backend`, found `bogus`"),
        ("rule", 1, 5, "expected a rule name after `rule`, found end of file"),
        ("rule x if tls then OK }", 1, 8, "expected `{` to open the rule"),
        ("rule x {\n  if then OK }", 2, 6, "expected a condition after `if`, found `then`"),
        ("rule x { if sender blocked then OK }", 1, 20, "expected an operator after the field"),
        ("rule x { if tls OK }", 1, 17, "expected `and`, `or`, `state`, `if`, `unless` or `then`, found `OK`"),
        ("rule x { then OK", 1, 17, "expected `}` to close the rule after its action"),
        ("rule x { then }", 1, 15, "expected an action"),
        ("rule x { if (tls then OK }", 1, 18, "expected `)` to close `(`"),
        ("rule x { if not then OK }", 1, 17, "expected a condition after `not`"),
        ("rule x { if tls and then OK }", 1, 21, "expected a condition after `and`"),
        ("rule x { if tls or then OK }", 1, 20, "expected a condition after `or`"),
        ("rule x { state then OK }", 1, 16, "expected a protocol state after `state`"),
        ("rule x { state RCPT, then OK }", 1, 22, "expected a protocol state after `,`"),
        ("rule x { if size > big then OK }", 1, 20, "expected a number to compare with"),
        ("rule x { if size > 5q then OK }", 1, 21, "size unit"),
        ("rule x { if size > 99999999999999999999 then OK }", 1, 20, "a number below 2^64"),
        ("rule x { if sender == then OK }", 1, 23, "expected a string, a number or a protocol state"),
        ("rule x { if sender starts_with x then OK }", 1, 32, "expected a quoted string"),
        ("rule x { if sender matches \"x\" then OK }", 1, 28, "expected a regular expression"),
        ("rule x { if sender matches /x/g then OK }", 1, 31, "flag `i`"),
        ("rule x { if sender matches /x then OK }", 1, 40, "a closing `/`"),
        ("rule x { if sender like x then OK }", 1, 25, "a quoted glob pattern"),
        ("rule x { if sender is full then OK }", 1, 23, "`empty` or `set` after `is`"),
        ("rule x { if sender in then OK }", 1, 23, "a list name or `{ ... }` after `in`"),
        ("rule x { if sender_login_mismatch then OK }", 1, 35, "the name of a `logins` map"),
        ("rule x { if unauthenticated_local_sender then OK }", 1, 42, "a list name or `{ ... }`"),
        ("list", 1, 5, "expected a list name after `list`"),
        ("list a cidr", 1, 12, "`{` with the list's entries"),
        ("list a file x", 1, 13, "a quoted file name after `file`"),
        ("list a { b", 1, 11, "an entry or `}` to close the list"),
        ("list a {\n b\nrule x { then OK }", 3, 1, "`}` to close the list before the next item"),
        ("list a { \"b }", 1, 10, "a closing `\"` for this string"),
        ("list a { \"b\nc\" }", 1, 12, "a string cannot span lines"),
        ("list a { \"b\\x\" }", 1, 13, "after a backslash"),
        ("logins m { a }", 1, 14, "the logins owning this sender"),
        ("logins m x", 1, 10, "`{` with sender/logins pairs"),
        ("default", 1, 8, "expected an action"),
        ("list a { \"b\u{1}\" }", 1, 12, "no control character in a string"),
        ("rule x { if sender matches /a\\", 1, 31, "a character after `\\` in a regular expression"),
        ("rule x { if sender matches /a\u{1}/ then OK }", 1, 30, "a printable character in a regular expression"),
        ("list a { { }", 1, 10, "an entry or `}`"),
        ("logins", 1, 7, "a map name after `logins`"),
        ("logins m file x", 1, 15, "a quoted file name after `file`"),
        ("logins m { \"a }", 1, 12, "a closing `\"`"),
        ("rule x { foo then OK }", 1, 10, "expected `state`, `if`, `unless` or `then`, found `foo`"),
        ("rule x { unless then OK }", 1, 17, "a condition after `unless`"),
        ("rule x { if ( then OK }", 1, 15, "a condition after `(`"),
        ("rule x { if protocol_state == 5 then OK }", 1, 31, "unknown protocol state `5`"),
        ("logins m { joe@example.com \"\" }\nrule r { if sender_login_mismatch m then OK }", 1, 28, "login"),
        ("logins m { nobody joe }\nrule r { if sender_login_mismatch m then OK }", 1, 12, "expected a sender address"),
        // Names and types.
        ("rule x { if sender in nowhere then OK }", 1, 23, "unknown list `nowhere`; expected a list declared with `list`"),
        ("rule x { if sender_login_mismatch nomap then OK }", 1, 35, "unknown logins map `nomap`"),
        ("rule x { if bogus == \"a\" then OK }", 1, 13, "unknown field `bogus`"),
        ("rule x { if sender > 5 then OK }", 1, 13, "`sender` is not a number"),
        ("rule x { if size starts_with \"1\" then OK }", 1, 13, "`size` is a number; expected a text field"),
        ("rule x { if client_port matches /1/ then OK }", 1, 13, "`client_port` is a number"),
        ("rule x { if recipient_count like \"1*\" then OK }", 1, 13, "`recipient_count` is a number"),
        ("rule x { if size == \"big\" then OK }", 1, 21, "`size` is a number; expected a number"),
        ("rule x { if sender == 5 then OK }", 1, 23, "`sender` is text; expected a quoted string"),
        ("rule x { if sender == RCPT then OK }", 1, 23, "bare words are protocol states"),
        ("rule x { if protocol_state == SEND then OK }", 1, 31, "unknown protocol state `SEND`"),
        ("rule x { state RCTP then OK }", 1, 16, "unknown protocol state `RCTP`; expected CONNECT"),
        ("rule x { if client_port > 1k then OK }", 1, 27, "a size unit on `client_port`"),
        ("rule x { if client_address == \"example.com\" then OK }", 1, 31, "is not an IP address"),
        ("rule x { if client_address == 5 then OK }", 1, 31, "`client_address` is an IP address"),
        ("list d { example.com }\nrule x { if client_address in d then OK }", 2, 31, "type mismatch: this list holds domain entries, none of which can match `client_address`"),
        ("list n { 10.0.0.0/8 }\nrule x { if sender in n then OK }", 2, 23, "none of which can match `sender`"),
        ("list n { 10.0.0.0/8 }\nrule x { if unauthenticated_local_sender n then OK }", 2, 42, "holds no domains"),
        ("rule x { if sender matches /(/ then OK }", 1, 28, "invalid regular expression"),
        ("rule x { if sender like \"[a\" then OK }", 1, 25, "glob"),
        ("list a bogus { x }", 1, 8, "unknown list kind `bogus`"),
        ("list a cidr { example.com }", 1, 15, "expected an IPv4 or IPv6 address"),
        ("list a { 10.1.0.0/8 }", 1, 10, "10.1.0.0/8"),
        ("list a { x }\nlist a { y }\nrule r { if sender in a then OK }", 2, 6, "duplicate list `a`"),
        ("logins m { a@b c }\nlogins m { a@b c }\nrule r { if sender_login_mismatch m then OK }", 2, 8, "duplicate logins map `m`"),
        ("rule a { then OK }\nrule a { then DUNNO }", 2, 6, "duplicate rule name `a`"),
        ("rule default { then DUNNO }", 1, 6, "may not be named `default`"),
        ("default DUNNO\ndefault OK", 2, 1, "a second `default`"),
        ("list a file \"a.list\"\nrule r { if sender in a then OK }", 1, 13, "cannot read file \"a.list\""),
        // Actions.
        ("rule x { then FROB }", 1, 15, "expected OK, DUNNO, REJECT"),
        ("list a cidr { 192.0.2.0/33 }", 1, 15, "prefix length out of range (found /33); expected a prefix length of at most 32 for IPv4 and 128 for IPv6"),
        ("list a { example.com @@@ }", 1, 22, "not a valid address; expected an address"),
        ("list a address { x@example.com\n  @@@ }", 2, 3, "not a valid address; expected an address"),
        ("list a { - }", 1, 10, "not a valid domain"),
        // Unknown words are said to be unknown, with the likely one they misspell.
        ("rule x { if helo_is_random then REJECT }", 1, 13, "unknown field or predicate `helo_is_random`; expected a request attribute"),
        ("rule x { if helo_is_fqnd then REJECT }", 1, 13, "unknown field or predicate `helo_is_fqnd`; expected a request attribute (sender, client_address, helo_name, ...), a derived field (sender_domain, recipient_local, ...) or a predicate (authenticated, tls, helo_is_fqdn, ...); did you mean `helo_is_fqdn`?"),
        ("rule x { if client_adress == \"1\" then OK }", 1, 13, "unknown field `client_adress`; expected a request attribute (sender, recipient, client_address, helo_name, sasl_username, size, ...) or sender_local, sender_domain, recipient_local, recipient_domain; did you mean `client_address`?"),
        ("list trusted_nets { 10.0.0.0/8 }\nrule x { if client_address in trusted_net then DUNNO }", 2, 31, "unknown list `trusted_net`; expected a list declared with `list`; did you mean `trusted_nets`?"),
        ("logins owners { a@b c }\nrule x { if sender_login_mismatch owner then REJECT }", 2, 35, "did you mean `owners`?"),
        ("rule x { then DUNO }", 1, 15, "; did you mean `DUNNO`?"),
        ("rule x { then defer_if_permt }", 1, 15, "; did you mean `DEFER_IF_PERMIT`?"),
        ("list a cdir { 10.0.0.0/8 }", 1, 8, "unknown list kind `cdir`; expected cidr, domain, address, string, glob or regex; did you mean `cidr`?"),
        ("rlue x { then DUNNO }", 1, 1, "found `rlue`; did you mean `rule`?"),
        ("rule x { if tls thn DUNNO }", 1, 17, "found `thn`; did you mean `then`?"),
        ("greylist g { delya 5m }", 1, 14, "found `delya`; did you mean `delay`?"),
        ("limit l { key sender count mesages max 1 per 1h }", 1, 28, "found `mesages`; did you mean `messages`?"),
        ("rule x { then OK \"text\" }", 1, 18, "expected nothing after OK"),
        ("rule x { then REJECT \"4.7.1 no\" }", 1, 22, "expected enhanced status class 5, got 4"),
        ("rule x { then REJECT \"450 4.7.1 Try again\" }", 1, 22, "the text starts with reply code 450, but this action answers 5xx (to answer 450, write the code as the action: 450 TEXT, or use DEFER)"),
        ("rule x { then DEFER \"550 5.7.1 no\" }", 1, 21, "reply code 550, but this action answers 4xx"),
        ("rule x { then DEFER_IF_PERMIT \"554 $sender\" }", 1, 31, "reply code 554"),
        ("rule x { then 650 \"no\" }", 1, 15, "reply code 4NN or 5NN"),
        ("rule x { then 450 }", 1, 15, "expected text after"),
        ("rule x { then PREPEND \"not a header\" }", 1, 23, "expected a header `Name: value`"),
        ("rule x { then REDIRECT \"nobody\" }", 1, 24, "expected an address local@domain"),
        ("rule x { then FILTER \"nocolon\" }", 1, 22, "expected transport:destination"),
        ("rule x { then REJECT \"5.7.1 $nosuchvar\" }", 1, 29, "unknown template variable"),
        ("rule x { then WARN }", 1, 15, "expected text after WARN"),
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
        {
            failures.push(format!(
                "{src:?}: expected {line}:{column} {fragment:?}, got {} error(s):\n{e}",
                e.errors.len()
            ));
        }
        assert_eq!(first.severity, Severity::Error);
        assert_eq!(first.file, "policy.conf");
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

#[test]
fn every_error_of_a_file_is_reported_in_order() {
    let src = "\
list nets cidr { 10.0.0.0/8 example.com }
rule a { if then OK }
rule b { if sender in nowhere then OK }
rule c { if size > \"x\" then OK }
rule d { then FROB }
rule e { if client_address in nets then DUNNO }
default REJECT \"4.7.1 no\"
";
    let e = errors(src);
    let at: Vec<(u32, u32)> = e.errors.iter().map(|d| (d.line, d.column)).collect();
    assert_eq!(
        at,
        vec![(1, 29), (2, 13), (3, 23), (4, 20), (5, 15), (7, 16)],
        "{e}"
    );
    let text = e.to_string();
    assert!(text.contains(
        "policy.conf:3:23: error: unknown list `nowhere`; expected a list declared with `list`\n\
         rule b { if sender in nowhere then OK }\n                      ^\n"
    ), "{text}");
    assert!(text.ends_with("6 errors, 1 warning"), "{text}");
}

#[test]
fn errors_in_list_files_name_the_file_line_and_column() {
    let src = "list nets file \"nets.txt\"\nlist doms domain file \"doms.txt\"\nlogins m file \"logins\"\n\
               rule r { if client_address in nets or sender_domain in doms or sender_login_mismatch m then OK }";
    let e = compile_with_files(
        src,
        &[
            ("nets.txt", "# nets\n10.0.0.0/8\n  192.0.2.300\n"),
            ("doms.txt", "example.com\n\n  /re/\n"),
            ("logins", "joe@example.com joe\nnot-an-address joe\n"),
        ],
    )
    .expect_err("bad list files");
    let located: Vec<(&str, u32, u32, &str)> = e
        .errors
        .iter()
        .map(|d| (d.file.as_str(), d.line, d.column, d.source_line.as_str()))
        .collect();
    assert_eq!(
        located,
        vec![
            ("nets.txt", 3, 3, "  192.0.2.300"),
            ("doms.txt", 3, 3, "  /re/"),
            ("logins", 2, 1, "not-an-address joe"),
        ],
        "{e}"
    );
    assert!(e.to_string().contains("nets.txt:3:3: error: "), "{e}");

    let ok = compile_with_files(
        src,
        &[
            ("nets.txt", "10.0.0.0/8\n"),
            ("doms.txt", "example.com\n"),
            ("logins", "joe@example.com joe\n"),
        ],
    )
    .expect("good list files");
    assert!(ok
        .warnings
        .iter()
        .all(|w| !w.message.contains("never used")));
}

const POLICY: &str = r#"
# A realistic small policy.
list trusted_nets cidr { 127.0.0.0/8 ::1 10.0.0.0/8 }
list local_domains domain { example.com .example.com }
list blocked { spammer@example.net "bad@" .spam.example /^[0-9]+@/i "*.dyn.*" }
logins sender_logins { joe@example.com joe  "@example.com" "admin, root" }

rule trusted { if client_address in trusted_nets then OK }
rule block-senders { state RCPT  if sender in blocked  then REJECT "5.7.1 Sender $sender is blocked" }
rule no-spoofing { state RCPT if unauthenticated_local_sender local_domains then REJECT "5.7.1 Authenticate to send as $sender" }
rule login-mismatch { state RCPT if sender_login_mismatch sender_logins then REJECT "5.7.1 $sasl_username may not send as $sender" }
rule big dry-run { if size > 20MB and not authenticated then DEFER "4.5.3 Too big for now" }
rule helo { state RCPT unless helo_is_fqdn or authenticated then REJECT "5.7.1 HELO must be a FQDN" }
rule eom-size { state END-OF-MESSAGE if size >= 50MiB then 552 "5.3.4 Message too big" }
rule note { state DATA if recipient_count > 10 then WARN "many recipients: $recipient_count" }
default DUNNO
"#;

#[test]
fn evaluation_table() {
    let engine = engine(POLICY);
    // (request overrides, expected rule, expected wire action)
    let rows: &[(Pairs<'_>, &str, &str)] = &[
        (&[], "default", "DUNNO"),
        (&[("client_address", "10.1.2.3")], "trusted", "OK"),
        (&[("client_address", "::1")], "trusted", "OK"),
        (
            &[("sender", "spammer@Example.NET")],
            "block-senders",
            "REJECT 5.7.1 Sender spammer@Example.NET is blocked",
        ),
        (
            &[("sender", "bad@anything.org")],
            "block-senders",
            "REJECT 5.7.1 Sender bad@anything.org is blocked",
        ),
        (
            &[("sender", "x@mx.spam.example")],
            "block-senders",
            "REJECT 5.7.1 Sender x@mx.spam.example is blocked",
        ),
        (
            &[("sender", "12345@example.org")],
            "block-senders",
            "REJECT 5.7.1 Sender 12345@example.org is blocked",
        ),
        (
            &[("sender", "a@host.dyn.example.org")],
            "block-senders",
            "REJECT 5.7.1 Sender a@host.dyn.example.org is blocked",
        ),
        // The state restriction: the same sender at MAIL is not blocked.
        (
            &[
                ("protocol_state", "MAIL"),
                ("sender", "spammer@example.net"),
            ],
            "default",
            "DUNNO",
        ),
        (
            &[("sender", "ann@example.com")],
            "no-spoofing",
            "REJECT 5.7.1 Authenticate to send as ann@example.com",
        ),
        (
            &[("sender", "ann@sub.example.com")],
            "no-spoofing",
            "REJECT 5.7.1 Authenticate to send as ann@sub.example.com",
        ),
        (
            &[("sender", "joe@example.com"), ("sasl_username", "joe")],
            "default",
            "DUNNO",
        ),
        (
            &[("sender", "joe@example.com"), ("sasl_username", "eve")],
            "login-mismatch",
            "REJECT 5.7.1 eve may not send as joe@example.com",
        ),
        (
            &[("sender", "ann@example.com"), ("sasl_username", "root")],
            "default",
            "DUNNO",
        ),
        (
            &[("sender", "eve@example.org"), ("sasl_username", "eve")],
            "login-mismatch",
            "REJECT 5.7.1 eve may not send as eve@example.org",
        ),
        (
            &[("helo_name", "localhost")],
            "helo",
            "REJECT 5.7.1 HELO must be a FQDN",
        ),
        (
            &[("helo_name", "[192.0.2.1]")],
            "helo",
            "REJECT 5.7.1 HELO must be a FQDN",
        ),
        (
            &[("helo_name", "localhost"), ("protocol_state", "MAIL")],
            "default",
            "DUNNO",
        ),
        (
            &[("protocol_state", "END-OF-MESSAGE"), ("size", "52428800")],
            "eom-size",
            "552 5.3.4 Message too big",
        ),
        (
            &[("protocol_state", "END-OF-MESSAGE"), ("size", "52428799")],
            "default",
            "DUNNO",
        ),
        (
            &[("protocol_state", "DATA"), ("recipient_count", "11")],
            "note",
            "WARN many recipients: 11",
        ),
        (
            &[("protocol_state", "DATA"), ("recipient_count", "-")],
            "default",
            "DUNNO",
        ),
        // No protocol_state at all: only rules without `state` apply.
        (
            &[("protocol_state", "-"), ("helo_name", "localhost")],
            "default",
            "DUNNO",
        ),
    ];
    let mut failures = Vec::new();
    for (pairs, rule, action) in rows {
        let got = decide(&engine, pairs);
        if got != ((*rule).to_owned(), (*action).to_owned()) {
            failures.push(format!(
                "{pairs:?}: expected {rule} {action:?}, got {got:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let policy = engine.policy();
    let names: Vec<&str> = policy.rule_names().collect();
    assert_eq!(
        names,
        [
            "trusted",
            "block-senders",
            "no-spoofing",
            "login-mismatch",
            "big",
            "helo",
            "eom-size",
            "note"
        ]
    );
}

#[test]
fn dry_run_rules_record_and_continue() {
    let engine = engine(POLICY);
    let bytes = frame(&[("size", "30000000"), ("helo_name", "localhost")]);
    let request = Request::parse(&bytes).expect("parses");
    let mut scratch = Scratch::new();
    let d = engine.decide(&request, NOW, &mut scratch);
    assert_eq!(d.rule, "helo");
    let hits: Vec<(&str, &[u8])> = d.dry_run.iter().map(|h| (h.rule, h.wire)).collect();
    assert_eq!(hits, vec![("big", &b"DEFER 4.5.3 Too big for now"[..])]);
    assert_eq!(d.dry_run.len(), 1);
    // Authenticated: the dry-run rule does not apply; the scratch is reused and cleared.
    let bytes = frame_auth();
    let request = Request::parse(&bytes).expect("parses");
    let d = engine.decide(&request, NOW, &mut scratch);
    assert!(d.dry_run.is_empty());
    assert_eq!(d.rule, "default");

    // A dry-run rule with a template, then one that decides.
    let engine = self::engine(
        "rule a dry-run { then REJECT \"5.7.1 would block $sender\" }\n\
         rule b dry-run { if tls then HOLD }\n\
         rule c { state RCPT then DEFER \"4.7.1 later\" }",
    );
    let bytes = frame(&[]);
    let request = Request::parse(&bytes).expect("parses");
    let d = engine.decide(&request, NOW, &mut scratch);
    let hits: Vec<(&str, String)> = d
        .dry_run
        .iter()
        .map(|h| (h.rule, String::from_utf8_lossy(h.wire).into_owned()))
        .collect();
    assert_eq!(
        hits,
        vec![
            ("a", "REJECT 5.7.1 would block joe@example.org".to_owned()),
            ("b", "HOLD".to_owned())
        ]
    );
    assert_eq!(d.rule, "c");
    assert_eq!(d.wire(), b"DEFER 4.7.1 later");
}

fn frame_auth() -> Vec<u8> {
    frame(&[
        ("size", "30000000"),
        ("sasl_username", "joe"),
        ("sender", "joe@example.com"),
    ])
}

#[test]
fn conditions_on_every_kind_of_field() {
    // (condition, request overrides, expected truth)
    let rows: &[(&str, Pairs<'_>, bool)] = &[
        ("sender == \"JOE@example.org\"", &[], true),
        ("sender != \"joe@example.org\"", &[], false),
        ("sender_local == \"joe\"", &[], true),
        ("sender_domain == \"EXAMPLE.org\"", &[], true),
        ("recipient_domain ends_with \".com\"", &[], true),
        ("recipient_local starts_with \"an\"", &[], true),
        ("helo_name contains \"EXAMPLE\"", &[], true),
        ("instance == \"123.456.7\"", &[], true),
        (
            "encryption_cipher == \"tls_aes_256_gcm_sha384\"",
            &[],
            false,
        ),
        ("encryption_cipher contains \"AES\"", &[], true),
        ("mail_version starts_with \"3.\"", &[], true),
        (
            "size > 12344 and size < 12346 and size >= 12345 and size <= 12345 and size == 12345",
            &[],
            true,
        ),
        ("size != 12345", &[], false),
        ("size > 10k", &[], true),
        ("size > 1KiB", &[("size", "1024")], false),
        ("size > 0", &[("size", "-")], false),
        ("size != 0", &[("size", "-")], false),
        ("recipient_count == 0", &[], true),
        ("client_port > 1024 and server_port == 25", &[], true),
        ("server_port in { 25 587 }", &[], true),
        ("server_port in { 465 587 }", &[], false),
        ("encryption_keysize >= 128", &[], true),
        ("client_address == \"192.0.2.10\"", &[], true),
        ("client_address != \"192.0.2.11\"", &[], true),
        ("client_address starts_with \"192.0.2.\"", &[], true),
        ("client_address in { 192.0.2.0/24 }", &[], true),
        (
            "client_address in { 2001:db8::/32 }",
            &[("client_address", "2001:db8::5")],
            true,
        ),
        ("server_address in { 198.51.100.0/24 }", &[], true),
        (
            "client_address in { 192.0.2.0/24 }",
            &[("client_address", "unknown")],
            false,
        ),
        ("protocol_state == RCPT", &[], true),
        ("protocol_state == \"DATA\"", &[], false),
        ("protocol_state != MAIL", &[], true),
        ("sender matches /^joe@/", &[], true),
        ("sender matches /^JOE@/", &[], false),
        ("sender matches /^JOE@/i", &[], true),
        ("helo_name like \"mail.*.org\"", &[], true),
        ("helo_name like \"MX.*\"", &[], false),
        ("sender in { @example.org }", &[], true),
        ("sender in { joe@ }", &[], true),
        ("sender in { <> }", &[("sender", "")], true),
        ("client_name in { .example.org }", &[], true),
        (
            "sasl_username in { \"joe\" }",
            &[("sasl_username", "joe")],
            true,
        ),
        ("sasl_method is empty", &[], true),
        ("sasl_method is set", &[("sasl_method", "PLAIN")], true),
        ("size is set", &[], true),
        ("size is empty", &[("size", "-")], true),
        ("client_address is set", &[], true),
        ("authenticated", &[], false),
        ("authenticated", &[("sasl_username", "joe")], true),
        ("tls", &[], true),
        ("tls", &[("encryption_protocol", "")], false),
        ("null_sender", &[("sender", "")], true),
        (
            "null_sender",
            &[("sender", ""), ("protocol_state", "CONNECT")],
            false,
        ),
        ("null_sender", &[], false),
        ("helo_is_fqdn", &[], true),
        ("helo_is_fqdn", &[("helo_name", "localhost")], false),
        (
            "helo_is_address_literal",
            &[("helo_name", "[192.0.2.1]")],
            true,
        ),
        ("helo_is_ip", &[("helo_name", "192.0.2.1")], true),
        ("helo_is_ip", &[], false),
        ("client_unknown", &[("client_name", "unknown")], true),
        ("client_unknown", &[], false),
        (
            "reverse_client_unknown",
            &[("reverse_client_name", "unknown")],
            true,
        ),
        ("not tls", &[], false),
        ("not not tls", &[], true),
        ("tls and authenticated or helo_is_fqdn", &[], true),
        ("tls and (authenticated or helo_is_ip)", &[], false),
        ("(tls or authenticated) and not (size > 100MB)", &[], true),
        ("unauthenticated_local_sender { example.org }", &[], true),
        (
            "unauthenticated_local_sender { example.org }",
            &[("sasl_username", "joe")],
            false,
        ),
        ("unauthenticated_local_sender { example.com }", &[], false),
    ];
    let mut failures = Vec::new();
    for (cond, pairs, expected) in rows {
        let src = format!("rule r {{ if {cond} then REJECT }}");
        let engine = engine(&src);
        let (rule, _) = decide(&engine, pairs);
        if (rule == "r") != *expected {
            failures.push(format!("{cond} with {pairs:?}: expected {expected}"));
        }
        // `unless` is the opposite.
        let engine = self::engine(&format!("rule r {{ unless {cond} then REJECT }}"));
        let (rule, _) = decide(&engine, pairs);
        if (rule == "r") == *expected {
            failures.push(format!(
                "unless {cond} with {pairs:?}: expected {}",
                !expected
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn clauses_and_states_combine() {
    let engine = engine(
        "rule r { state MAIL, RCPT  if tls  unless authenticated  if size > 100 then REJECT }",
    );
    let rows: &[(Pairs<'_>, &str)] = &[
        (&[], "r"),
        (&[("protocol_state", "MAIL")], "r"),
        (&[("protocol_state", "DATA")], "default"),
        (&[("protocol_state", "WEIRD")], "default"),
        (&[("sasl_username", "joe")], "default"),
        (&[("encryption_protocol", "")], "default"),
        (&[("size", "100")], "default"),
    ];
    for (pairs, rule) in rows {
        assert_eq!(decide(&engine, pairs).0, *rule, "{pairs:?}");
    }
}

#[test]
fn default_and_always() {
    assert_eq!(
        decide(&engine("default REJECT \"5.7.1 closed\""), &[]),
        ("default".to_owned(), "REJECT 5.7.1 closed".to_owned())
    );
    assert_eq!(
        decide(&engine("# nothing\n"), &[]),
        ("default".to_owned(), "DUNNO".to_owned())
    );
    let engine = engine("default DEFER \"4.7.1 $client_address later\"");
    assert_eq!(decide(&engine, &[]).1, "DEFER 4.7.1 192.0.2.10 later");
    assert_eq!(decide(&Engine::new(Policy::default()), &[]).1, "DUNNO");
    assert_eq!(decide(&Engine::default(), &[]).1, "DUNNO");
    let always = Policy::always(policy_core::Action::parse("REJECT no").expect("valid"));
    assert_eq!(always.rule_names().count(), 0);
    assert_eq!(
        decide(&Engine::new(always), &[]),
        ("default".to_owned(), "REJECT no".to_owned())
    );
}

#[test]
fn templates_are_sanitized_on_output() {
    let engine = engine("rule r { then REJECT \"5.7.1 go away $helo_name (rule $rule)\" }");
    let (_, wire) = decide(&engine, &[("helo_name", "evil\u{7}\u{1b}[31m\u{fffd}")]);
    assert_eq!(wire, "REJECT 5.7.1 go away evil  [31m\u{fffd} (rule r)");
}

#[test]
fn warnings() {
    let src = "\
list unused_list { a.example }
logins unused_map { a@b.example a }
rule open { if tls then OK }
rule catch-all { state RCPT then REJECT }
rule never { state RCPT if tls then REJECT }
rule also-never { state RCPT, DATA if tls then DUNNO }
rule hold-rcpt { state DATA if recipient_domain == \"example.com\" then HOLD }
rule dry dry-run { then OK }
rule late { state END-OF-MESSAGE if tls then PREPEND \"X-TLS: yes\" }
default OK
";
    let compiled = compiled(src);
    let expect: &[(u32, u32, &str)] = &[
        (1, 6, "list `unused_list` is declared but never used"),
        (2, 8, "logins map `unused_map` is declared but never used"),
        (3, 25, "rule `open` can answer OK at RCPT state"),
        (
            5,
            6,
            "rule `never` can never apply: rule `catch-all` (line 4) always applies",
        ),
        (7, 71, "HOLD acts on the whole message"),
        (9, 46, "PREPEND is not allowed at END-OF-MESSAGE"),
        (10, 9, "the default can answer OK at RCPT state"),
    ];
    assert_warnings(&compiled.warnings, expect);
    assert!(compiled
        .warnings
        .iter()
        .all(|d| d.severity == Severity::Warning));
    // `also-never` is not covered: catch-all only covers RCPT.
    assert!(!compiled
        .warnings
        .iter()
        .any(|d| d.message.contains("also-never")));
    // Warnings come with errors too.
    let e = errors("list u { a.example }\nrule x { then FROB }");
    assert_eq!(e.warnings.len(), 1);
}

/// `warnings` are `expect`: `(line, column, a fragment of the message)`, in order.
fn assert_warnings(warnings: &[Diagnostic], expect: &[(u32, u32, &str)]) {
    let w: Vec<(u32, u32, &str)> = warnings
        .iter()
        .map(|d| (d.line, d.column, d.message.as_str()))
        .collect();
    assert_eq!(w.len(), expect.len(), "{w:#?}");
    for ((line, col, msg), (eline, ecol, efrag)) in w.iter().zip(expect) {
        assert_eq!((line, col), (eline, ecol), "{msg}");
        assert!(msg.contains(efrag), "{msg} does not contain {efrag}");
    }
}

/// `REJECT "550 5.7.1 ..."`: a code of the verb's class in the text compiles
/// (another class is an error), with a warning that Postfix sends it as text.
#[test]
fn a_reply_code_in_a_verbs_text_is_warned_about() {
    let src = "\
rule a { if sender == \"a@example.com\" then REJECT \"550 5.7.1 Go away\" }
rule b { if sender == \"b@example.com\" then DEFER_IF_PERMIT \"451 $sender later\" }
rule c { if sender == \"c@example.com\" then REJECT \"5.7.1 550 is fine after a code\" }
rule d { if sender == \"d@example.com\" then 550 \"5.7.1 Go away\" }
default DEFER \"421 later\"
";
    let compiled = compiled(src);
    let expect: &[(u32, u32, &str)] = &[
        (
            1,
            44,
            "REJECT's text starts with reply code 550, which Postfix sends as text after its own \
             code for REJECT (and any enhanced status code after it as text too); expected the \
             code as the action to answer 550: then 550 \"5.7.1 Go away\"",
        ),
        (2, 44, "DEFER_IF_PERMIT's text starts with reply code 451"),
        (5, 9, "DEFER's text starts with reply code 421"),
    ];
    assert_warnings(&compiled.warnings, expect);
}

#[test]
fn explain_shows_each_rule_test_and_the_verdict() {
    let engine = engine(POLICY);
    let bytes = frame(&[("size", "30000000"), ("helo_name", "localhost")]);
    let request = Request::parse(&bytes).expect("parses");
    let explanation = engine.explain(&request, NOW);
    let text = explanation.to_string();
    let expected = "\
rule trusted (line 8): no match
  if client_address in trusted_nets -> fails
    client_address in trusted_nets = false
rule block-senders (line 9): no match
  if sender in blocked -> fails
    sender in blocked = false
rule no-spoofing (line 10): no match
  if unauthenticated_local_sender local_domains -> fails
    unauthenticated_local_sender local_domains = false
rule login-mismatch (line 11): no match
  if sender_login_mismatch sender_logins -> fails
    sender_login_mismatch sender_logins = false
rule big (line 12, dry-run): matches, dry run: would answer DEFER \"4.5.3 Too big for now\" (continues)
  if size > 20MB and not authenticated -> holds
    size > 20MB = true
    authenticated = false
rule helo (line 13): matches: REJECT \"5.7.1 HELO must be a FQDN\"
  unless helo_is_fqdn or authenticated -> holds
    helo_is_fqdn = false
    authenticated = false
rule eom-size (line 14): not reached
rule note (line 15): not reached
dry-run big: would answer DEFER 4.5.3 Too big for now
action=REJECT 5.7.1 HELO must be a FQDN rule=helo";
    assert_eq!(text, expected);
    assert_eq!(explanation.rule, "helo");

    let bytes = frame(&[("protocol_state", "MAIL")]);
    let request = Request::parse(&bytes).expect("parses");
    let text = engine.explain(&request, NOW).to_string();
    assert!(
        text.contains("rule block-senders (line 9): skipped: state RCPT does not include MAIL\n"),
        "{text}"
    );
    assert!(text.ends_with("action=DUNNO rule=default"), "{text}");
}

#[test]
fn deep_and_hostile_sources_fail_cleanly() {
    let deep = format!(
        "rule x {{ if {}tls{} then OK }}",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    let e = errors(&deep);
    assert!(e.errors[0].message.contains("at most 64 levels"), "{e}");
    let nots = format!("rule x {{ if {}tls then OK }}", "not ".repeat(10_000));
    assert!(errors(&nots).errors[0]
        .message
        .contains("at most 64 levels"));
    for junk in [
        "\u{0}",
        "rule \u{feff}x { then OK }",
        "list a { \"\\",
        "rule x { if a matches /\\",
        "}}}}",
        "rule x { then REJECT \"$",
    ] {
        let _ = Policy::compile("policy.conf", junk, &mut NoFiles);
    }
}

#[test]
fn shared_lookups_give_the_same_answer_in_every_rule() {
    // `sender in l` occurs in four rules (memoized once per request), negated
    // in some; each request must see its own result.
    let engine = engine(
        "list l { @example.org }\n\
         rule a { if not (sender in l) and size > 99999 then REJECT \"5.7.1 a\" }\n\
         rule b { if sender in l and size > 99999 then REJECT \"5.7.1 b\" }\n\
         rule c { unless sender in l then DEFER \"4.7.1 c\" }\n\
         rule d { if sender in l then REJECT \"5.7.1 d\" }",
    );
    let rows: &[(Pairs<'_>, &str)] = &[
        (&[], "d"),
        (&[("sender", "x@example.net")], "c"),
        (&[("size", "100000")], "b"),
        (&[("size", "100000"), ("sender", "x@example.net")], "a"),
        (&[("sender", "y@EXAMPLE.org")], "d"),
    ];
    let mut scratch = Scratch::new();
    for _ in 0..2 {
        for (pairs, rule) in rows {
            let bytes = frame(pairs);
            let request = Request::parse(&bytes).expect("parses");
            assert_eq!(
                engine.decide(&request, NOW, &mut scratch).rule,
                *rule,
                "{pairs:?}"
            );
        }
    }
}

#[test]
fn errors_beyond_the_cap_are_counted_not_listed() {
    let src: String = (0..policy_core::lang::MAX_ERRORS + 50)
        .map(|i| format!("rule x{i} {{ then FROB }}\n"))
        .collect();
    let e = errors(&src);
    assert_eq!(e.errors.len(), policy_core::lang::MAX_ERRORS + 1);
    let last = e.errors.last().expect("a last error");
    assert_eq!(last.line, 0);
    assert!(
        last.message.starts_with("50 more errors not shown"),
        "{last}"
    );
    assert_eq!(e.errors[0].line, 1);
    assert_eq!(e.errors[1].line, 2);
}

#[test]
fn long_lines_show_a_bounded_excerpt() {
    let mut src = String::from("list l { ");
    src.push_str(&"a.example ".repeat(2000));
    src.push_str("10.1.0.0/8 ");
    src.push_str(&"b.example ".repeat(2000));
    src.push_str("}\nrule r { if client_name in l then REJECT }");
    let e = errors(&src);
    assert_eq!(e.errors.len(), 1, "{e}");
    let d = &e.errors[0];
    assert_eq!(d.line, 1);
    assert!(d.source_line.len() <= 2 * policy_core::lang::MAX_COLUMN_SCAN);
    let caret_at = d.column as usize - 1;
    assert_eq!(&d.source_line[caret_at..caret_at + 10], "10.1.0.0/8");
}

#[test]
fn loaders_name_their_files_in_diagnostics() {
    struct Dir;
    impl policy_core::SourceLoader for Dir {
        fn load(&mut self, path: &str) -> Result<String, String> {
            match path {
                "nets" => Ok("10.0.0.0/8\nnot-a-net/99\n".to_owned()),
                _ => Err("no such file or directory".to_owned()),
            }
        }
        fn display_name(&self, path: &str) -> String {
            format!("/etc/policyd/{path}")
        }
    }
    let e = Policy::compile(
        "/etc/policyd/policy.conf",
        "list n cidr file \"nets\"\nlist m file \"missing\"\nrule r { if client_address in n or sender in m then REJECT }",
        &mut Dir,
    )
    .expect_err("bad files");
    let text = e.to_string();
    assert!(text.starts_with("/etc/policyd/nets:2:1: error: "), "{text}");
    assert!(
        text.contains("/etc/policyd/policy.conf:2:13: error: cannot read file \"missing\": no such file or directory"),
        "{text}"
    );
}

#[test]
fn compiled_policies_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Policy>();
    assert_send_sync::<CompileErrors>();
    assert_send_sync::<policy_core::lang::Explanation>();
    let engine = engine("rule r dry-run { then REJECT \"5.7.1 $sender\" }");
    let bytes = frame(&[]);
    let request = Request::parse(&bytes).expect("parses");
    let mut scratch = Scratch::new();
    let d = engine.decide(&request, NOW, &mut scratch);
    assert_eq!(
        format!("{:?}", d.dry_run),
        "[DryRunHit { rule: \"r\", wire: \"REJECT 5.7.1 joe@example.org\" }]"
    );
}

#[test]
fn warnings_stay_right_next_to_errors() {
    let e = errors(
        "rule a { state MAIL then DUNNO }\nrule b { then FROB }\nrule c { state MAIL then REJECT }",
    );
    assert_eq!(e.errors.len(), 1);
    let w: Vec<(u32, u32)> = e.warnings.iter().map(|d| (d.line, d.column)).collect();
    assert_eq!(w, vec![(3, 6)], "{e}");
    assert!(
        e.warnings[0]
            .message
            .contains("rule `c` can never apply: rule `a` (line 1)"),
        "{e}"
    );
}

/// Rules that each require `field == "constant"` in a row are looked up by
/// value; the result must be exactly that of testing every rule in order.
mod equality_runs {
    use super::*;
    use proptest::prelude::*;

    const DOMAINS: [&str; 6] = [
        "a.example",
        "b.example",
        "c.example",
        "d.example",
        "e.example",
        "zz",
    ];

    /// The policy; with `plain`, every rule's condition starts with a test
    /// that is always true, so no equality run forms.
    fn policy(plain: bool) -> Engine {
        let pre = if plain { "(tls or not tls) and " } else { "" };
        let src = format!(
            "rule r0 {{ if {pre}recipient_domain == \"a.example\" and size > 100 then REJECT \"5.7.1 r0\" }}\n\
             rule r1 dry-run {{ if {pre}recipient_domain == \"B.example\" then WARN \"r1 $recipient\" }}\n\
             rule r2 {{ state MAIL if {pre}recipient_domain == \"b.example\" then REJECT \"5.7.1 r2\" }}\n\
             rule r3 {{ if {pre}recipient_domain == \"b.example\" and sender_local == \"x\" then REJECT \"5.7.1 r3\" }}\n\
             rule r4 {{ if {pre}recipient_domain == \"c.example\" then DEFER \"4.7.1 r4\" }}\n\
             rule r5 {{ if {pre}recipient_domain == \"a.example\" then DEFER \"4.7.1 r5\" }}\n\
             rule r6 {{ if {pre}recipient_domain == \"b.example\" then DEFER \"4.7.1 r6\" }}\n\
             rule r7 {{ if sender_domain == \"d.example\" then REJECT \"5.7.1 r7\" }}\n\
             rule r8 {{ if {pre}sasl_username == \"A\" then OK }}\n\
             rule r9 {{ if {pre}sasl_username == \"a\" then OK }}\n\
             rule r10 {{ if {pre}sasl_username == \"b\" then OK }}\n\
             rule r11 {{ if {pre}sasl_username == \"a\" then REJECT }}\n\
             default DEFER \"4.7.1 default\"\n"
        );
        engine(&src)
    }

    fn outcome(engine: &Engine, pairs: Pairs<'_>) -> (String, String, Vec<(String, String)>) {
        let bytes = frame(pairs);
        let request = Request::parse(&bytes).expect("parses");
        let mut scratch = Scratch::new();
        crate::common::outcome_of(&engine.decide(&request, NOW, &mut scratch))
    }

    fn cased(s: &str, mask: u32) -> String {
        s.chars()
            .enumerate()
            .map(|(i, c)| {
                if mask >> (i % 32) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect()
    }

    #[test]
    fn examples() {
        let runs = policy(false);
        let rows: &[(Pairs<'_>, &str)] = &[
            (&[("recipient", "x@A.EXAMPLE"), ("size", "101")], "r0"),
            (&[("recipient", "x@a.example"), ("size", "50")], "r5"),
            (&[("recipient", "x@b.example"), ("sender", "x@q")], "r3"),
            (&[("recipient", "x@b.example")], "r6"),
            (
                &[("recipient", "x@b.example"), ("protocol_state", "MAIL")],
                "r2",
            ),
            (&[("recipient", "x@c.example")], "r4"),
            (
                &[("recipient", "x@nowhere"), ("sender", "y@d.example")],
                "r7",
            ),
            (&[("recipient", "x@nowhere"), ("sasl_username", "a")], "r9"),
            (&[("recipient", "x@nowhere"), ("sasl_username", "A")], "r8"),
            (&[("recipient", "x@nowhere"), ("sasl_username", "b")], "r10"),
            (&[("recipient", "x@nowhere")], "default"),
        ];
        for (pairs, rule) in rows {
            assert_eq!(outcome(&runs, pairs).0, *rule, "{pairs:?}");
        }
        let (_, _, hits) = outcome(&runs, &[("recipient", "x@b.EXAMPLE")]);
        assert_eq!(
            hits,
            vec![("r1".to_owned(), "WARN r1 x@b.EXAMPLE".to_owned())]
        );
    }

    proptest! {
        #[test]
        fn runs_decide_as_rules_tested_one_by_one(
            rcpt in 0..DOMAINS.len(), rcpt_case in any::<u32>(),
            sender in 0..DOMAINS.len(), local in prop_oneof![Just("x"), Just("X"), Just("y")],
            sasl in prop_oneof![Just(""), Just("a"), Just("A"), Just("b")],
            size in prop_oneof![Just("50"), Just("101"), Just("-")],
            state in prop_oneof![Just("RCPT"), Just("MAIL"), Just("DATA")],
        ) {
            let recipient = format!("u@{}", cased(DOMAINS[rcpt], rcpt_case));
            let sender = format!("{local}@{}", DOMAINS[sender]);
            let pairs: &[(&str, &str)] = &[
                ("recipient", &recipient), ("sender", &sender), ("sasl_username", sasl),
                ("size", size), ("protocol_state", state),
            ];
            prop_assert_eq!(outcome(&policy(false), pairs), outcome(&policy(true), pairs));
        }
    }
}

#[test]
fn an_oversized_policy_is_refused_as_a_whole() {
    let src = "#".repeat(policy_core::lang::MAX_POLICY_BYTES + 1);
    let e = errors(&src);
    assert_eq!(e.errors.len(), 1);
    assert_eq!(e.errors[0].line, 0);
    assert!(
        e.errors[0].message.contains("expected at most 16777216"),
        "{e}"
    );
    assert_eq!(
        e.to_string().lines().next(),
        Some(format!("policy.conf: error: {}", e.errors[0].message).as_str())
    );
}

#[test]
fn byte_order_mark_and_crlf_are_accepted() {
    let engine =
        engine("\u{feff}# policy\r\nrule r {\r\n  if tls\r\n  then REJECT \"5.7.1 x\"\r\n}\r\n");
    assert_eq!(decide(&engine, &[]).0, "r");
    let e = errors("\u{feff}rule r {\r\n  if sender in nope then OK }\r\n");
    assert_eq!((e.errors[0].line, e.errors[0].column), (2, 16));
    assert_eq!(e.errors[0].source_line, "  if sender in nope then OK }");
}

#[test]
fn explaining_a_fixed_policy() {
    let always = Policy::always(policy_core::Action::parse("DEFER 4.7.1 later").expect("valid"));
    let bytes = frame(&[]);
    let request = Request::parse(&bytes).expect("parses");
    let explanation = Engine::new(always).explain(&request, NOW);
    assert!(explanation.rules.is_empty());
    assert_eq!(
        explanation.to_string(),
        "action=DEFER 4.7.1 later rule=default"
    );
}

#[test]
fn repeated_regexes_and_globs_agree_across_rules_and_fields() {
    let engine = engine(
        "rule a { if helo_name matches /^MAIL\\./i and size > 99999 then REJECT \"5.7.1 a\" }\n\
         rule b { if client_name matches /^MAIL\\./i and helo_name like \"*.ORG\" and size > 50000 then REJECT \"5.7.1 b\" }\n\
         rule c { if helo_name matches /^MAIL\\./i and helo_name like \"*.org\" then REJECT \"5.7.1 c\" }\n\
         rule d { if helo_name matches /^MAIL\\./ then REJECT \"5.7.1 d\" }",
    );
    let rows: &[(Pairs<'_>, &str)] = &[
        (&[("size", "100000")], "a"),
        (&[("size", "60000")], "b"),
        (&[("size", "60000"), ("client_name", "mx.example.org")], "c"),
        (&[("helo_name", "mail.example.net")], "default"),
        (&[("helo_name", "MAIL.example.net")], "d"),
    ];
    for (pairs, rule) in rows {
        assert_eq!(decide(&engine, pairs).0, *rule, "{pairs:?}");
    }
}

#[test]
fn empty_list_files_compile_and_match_nothing() {
    // A blocklist emptied for the time being (only comments left) must not
    // make the policy, or a reload of it, fail.
    let src = "list nets file \"nets.txt\"\nlist doms domain file \"doms.txt\"\n\
               rule a { if client_address in nets then REJECT }\n\
               rule b { if sender_domain in doms then REJECT }\n\
               rule c { if unauthenticated_local_sender doms then REJECT }\n";
    let compiled = compile_with_files(src, &[("nets.txt", "# none for now\n"), ("doms.txt", "")])
        .expect("empty list files compile");
    let request = Request::parse(
        b"request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=192.0.2.1\n\
          sender=joe@example.com\nrecipient=bob@example.org\n\n",
    )
    .unwrap();
    let mut scratch = Scratch::new();
    let decision =
        Engine::new(compiled.policy).decide(&request, Timestamp::from_unix_millis(0), &mut scratch);
    assert_eq!(decision.rule, "default");

    // A declared kind still type-checks an empty list.
    let src = "list nets cidr file \"nets.txt\"\nrule a { if sender in nets then REJECT }\n";
    let e = compile_with_files(src, &[("nets.txt", "")]).expect_err("cidr list on sender");
    assert!(e.to_string().contains("type mismatch"), "{e}");
}
