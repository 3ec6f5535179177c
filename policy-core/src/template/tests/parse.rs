use crate::template::parse::EXPECTED_VARIABLE;
use crate::template::{Part, Template, TemplateError, Var};

#[test]
fn parse_table() {
    use Part::{Literal as L, Var as V};
    let lit = |s: &str| L(s.into());
    // (input, parts, source form)
    let rows: Vec<(&str, Vec<Part>, &str)> = vec![
        ("", vec![], ""),
        ("plain text", vec![lit("plain text")], "plain text"),
        ("$sender", vec![V(Var::Sender)], "${sender}"),
        ("${sender}", vec![V(Var::Sender)], "${sender}"),
        (
            "5.7.1 Sender $sender is blocked",
            vec![lit("5.7.1 Sender "), V(Var::Sender), lit(" is blocked")],
            "5.7.1 Sender ${sender} is blocked",
        ),
        (
            "$sender_local@$sender_domain.",
            vec![
                V(Var::SenderLocal),
                lit("@"),
                V(Var::SenderDomain),
                lit("."),
            ],
            "${sender_local}@${sender_domain}.",
        ),
        (
            "${rule}_x$rule-y",
            vec![V(Var::Rule), lit("_x"), V(Var::Rule), lit("-y")],
            "${rule}_x${rule}-y",
        ),
        ("cost $$5", vec![lit("cost $5")], "cost $$5"),
        (
            "$$$sender$$",
            vec![lit("$"), V(Var::Sender), lit("$")],
            "$$${sender}$$",
        ),
        ("$$$$", vec![lit("$$")], "$$$$"),
        (
            "h\u{e9}llo $helo_name",
            vec![lit("h\u{e9}llo "), V(Var::HeloName)],
            "h\u{e9}llo ${helo_name}",
        ),
        ("${tls_sni}", vec![V(Var::TlsSni)], "${tls_sni}"),
    ];
    for (input, parts, source) in rows {
        let template = Template::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(template.parts(), parts.as_slice(), "{input:?}");
        assert_eq!(template.to_string(), source, "{input:?}");
        assert_eq!(
            Template::parse(source).as_ref(),
            Ok(&template),
            "re-parse {source:?}"
        );
        assert_eq!(
            template.is_constant(),
            template.variables().next().is_none()
        );
    }
    let t = Template::parse("a $sender b $sender ${client_address}").unwrap();
    assert_eq!(
        t.variables().collect::<Vec<_>>(),
        [Var::Sender, Var::Sender, Var::ClientAddress]
    );
    assert_eq!(
        t.sample(),
        "a sender@example.org b sender@example.org 192.0.2.10"
    );
    assert!(!t.is_constant());
    assert!(Template::parse("a $$ b").unwrap().is_constant());
}

#[test]
fn parse_errors_table() {
    use TemplateError::*;
    let rows: &[(&str, TemplateError)] = &[
        ("$", MissingName { offset: 0 }),
        ("cost $ 5", MissingName { offset: 5 }),
        ("$-x", MissingName { offset: 0 }),
        ("$.", MissingName { offset: 0 }),
        ("ok $sender $", MissingName { offset: 11 }),
        ("$\u{e9}", MissingName { offset: 0 }),
        ("$nobody", UnknownVariable { offset: 0, len: 7 }),
        ("x $Sender", UnknownVariable { offset: 2, len: 7 }),
        ("$senderx y", UnknownVariable { offset: 0, len: 8 }),
        ("${nobody} x", UnknownVariable { offset: 0, len: 9 }),
        ("${}", UnknownVariable { offset: 0, len: 3 }),
        ("${ sender}", UnknownVariable { offset: 0, len: 10 }),
        ("${x_extra}", UnknownVariable { offset: 0, len: 10 }),
        ("a ${sender", UnterminatedBrace { offset: 2 }),
        ("${", UnterminatedBrace { offset: 0 }),
        ("a\nb", ControlCharacter { offset: 1 }),
        ("a\rb", ControlCharacter { offset: 1 }),
        ("tab\there", ControlCharacter { offset: 3 }),
        ("nul\0", ControlCharacter { offset: 3 }),
        ("\u{e9}\u{85}", ControlCharacter { offset: 2 }),
        ("del\u{7f}", ControlCharacter { offset: 3 }),
        ("${sen\nder}", UnknownVariable { offset: 0, len: 10 }),
    ];
    for (input, expected) in rows {
        assert_eq!(Template::parse(input), Err(*expected), "input {input:?}");
    }
    assert_eq!(
        UnknownVariable { offset: 0, len: 1 }.to_string(),
        format!("unknown template variable: expected {EXPECTED_VARIABLE}")
    );
    assert!(MissingName { offset: 0 }.to_string().contains("`$$`"));
    assert!(UnterminatedBrace { offset: 0 }.to_string().contains("`}`"));
}
