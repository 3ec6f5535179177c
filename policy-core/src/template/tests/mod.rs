//! Unit tests of the templates, one file per job.

use proptest::prelude::*;

use crate::request::Request;

use crate::template::Template;

mod action;
mod expand;
mod parse;
mod sanitize;
mod vars;

/// A request frame with `request=smtpd_access_policy` and `lines` after it.
fn frame(lines: &[&[u8]]) -> Vec<u8> {
    let mut frame = b"request=smtpd_access_policy\n".to_vec();
    for line in lines {
        frame.extend_from_slice(line);
        frame.push(b'\n');
    }
    frame.push(b'\n');
    frame
}

/// A full Postfix 3.x request.
const FULL: &[u8] = b"request=smtpd_access_policy\n\
    protocol_state=RCPT\nprotocol_name=ESMTP\nhelo_name=mx.example.net\nqueue_id=\n\
    sender=Joe.User@Example.NET\nrecipient=info@example.com\nrecipient_count=0\n\
    client_address=192.0.2.7\nclient_name=mx.example.net\n\
    reverse_client_name=mx.example.net\ninstance=6a3.5f3e0c1d.4c2d3.0\n\
    sasl_method=PLAIN\nsasl_username=joe\nsasl_sender=\nsize=0010\nccert_subject=\n\
    ccert_issuer=\nccert_fingerprint=\nencryption_protocol=TLSv1.3\n\
    encryption_cipher=TLS_AES_256_GCM_SHA384\nencryption_keysize=256\netrn_domain=\n\
    stress=\nccert_pubkey_fingerprint=\nclient_port=54321\npolicy_context=\n\
    server_address=2001:db8::25\nserver_port=unknown\ncompatibility_level=3.6\n\
    mail_version=3.8.0\ntls_sni=\nx_extra=1\n\n";

fn expand(template: &str, frame: &[u8]) -> (String, bool) {
    let request = Request::parse(frame).unwrap();
    let mut out = b"prefix:".to_vec();
    let cut = Template::parse(template)
        .unwrap()
        .expand(&request, "the-rule", &mut out);
    let out = String::from_utf8(out).expect("valid UTF-8");
    (out["prefix:".len()..].to_owned(), cut)
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..40),
        proptest::collection::vec(
            prop_oneof![
                Just(b' '),
                Just(b'@'),
                Just(b'\r'),
                Just(b'.'),
                Just(b'5'),
                Just(0xc3),
                Just(0xa9),
                Just(b'a'),
                Just(b':')
            ],
            0..20
        ),
        (0usize..600, any::<u8>()).prop_map(|(n, b)| vec![b; n]),
        Just(b"5.7.1".to_vec()),
        Just(b"4.7.1 x".to_vec()),
    ]
    .prop_map(|mut v| {
        v.retain(|&b| b != b'\n');
        v
    })
}
