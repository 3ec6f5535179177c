//! Encoding and decoding on both sides of the wire.
//!
//! Server side: [`encode()`] appends the reply `action=<wire>\n\n` for a
//! [`Decision`] of policy-core, its wire text ([`Decision::wire`]) with every
//! template filled in for the request and sanitized by policy-core. It is the
//! one way this crate writes a reply. To answer a fixed action without a
//! policy file, decide with [`Policy::always`](policy_core::Policy::always).
//!
//! Client side (load generators, tests, embedders talking to a policy server):
//!
//! - [`encode_request`] appends a request from `(name, value)` pairs, refusing
//!   anything the server could not frame back into the same attributes;
//! - [`reply_len`] finds the end of the first reply in a read buffer, and
//!   [`decode_reply`] turns it into an [`Action`].

use std::fmt;

use policy_core::base::bytes::printable_ascii_prefix;
use policy_core::{Action, ActionError, Decision};

use crate::frame::is_name_byte;

/// Append the reply `action=<wire>\n\n` for `decision` to `out`, where
/// `<wire>` is [`Decision::wire`]: the action with its templates filled in for
/// this request. Allocates only if `out` lacks capacity.
///
/// policy-core promises that the wire text is one line of valid UTF-8 without
/// control characters (its template expansion sanitizes every value taken
/// from the client). The encoder does not sanitize again; it only guards what
/// would break the protocol itself, should that promise ever be broken: a CR
/// (Postfix would answer `451 4.3.5` for every message) or an LF (it would end
/// the reply early and put the connection out of step) is written as a space.
///
/// ```
/// use policy_core::{Engine, NoFiles, Policy, Request, Scratch, Timestamp};
///
/// let policy = Policy::compile(
///     "example.conf",
///     r#"rule spam { if sender_domain == "spam.example" then REJECT "5.7.1 No mail from $sender" }"#,
///     &mut NoFiles,
/// )?
/// .policy;
/// let request = Request::parse(b"request=smtpd_access_policy\nsender=joe@spam.example\n\n")?;
/// let mut scratch = Scratch::new();
/// let engine = Engine::new(policy);
/// let decision = engine.decide(&request, Timestamp::from_unix_millis(0), &mut scratch);
///
/// let mut out = Vec::new();
/// policy_proto::encode(&decision, &mut out);
/// assert_eq!(out, b"action=REJECT 5.7.1 No mail from joe@spam.example\n\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn encode(decision: &Decision<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"action=");
    push_line(decision.wire(), out);
    out.extend_from_slice(b"\n\n");
}

/// Append `line` to `out` with every CR and LF written as a space.
#[inline]
fn push_line(line: &[u8], out: &mut Vec<u8>) {
    // Printable ASCII, the common case, is copied whole.
    if printable_ascii_prefix(line) == line.len() {
        out.extend_from_slice(line);
    } else {
        out.extend(line.iter().map(|&b| match b {
            b'\r' | b'\n' => b' ',
            b => b,
        }));
    }
}

/// Append a request (`name=value` lines and the empty line) to `out`.
///
/// Refuses, writing nothing, what a server could not frame back into the same
/// attributes: no attributes at all, an empty name, a name with a byte other
/// than an ASCII letter, digit, `_`, `-` or `.` (the name rule the framer and
/// the parser apply), a value with LF or NUL, or a value ending in CR (the
/// server would take it for a CRLF line ending). Values need not be UTF-8.
/// Size limits are the server's business and are not checked here.
///
/// ```
/// let mut out = Vec::new();
/// policy_proto::encode_request(
///     [(&b"request"[..], &b"smtpd_access_policy"[..]), (b"protocol_state", b"RCPT")],
///     &mut out,
/// )
/// .unwrap();
/// assert_eq!(out, b"request=smtpd_access_policy\nprotocol_state=RCPT\n\n");
/// ```
pub fn encode_request<'a, I>(attributes: I, out: &mut Vec<u8>) -> Result<(), EncodeError>
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
{
    let mark = out.len();
    let result = encode_request_inner(attributes, out);
    if result.is_err() {
        out.truncate(mark);
    }
    result
}

fn encode_request_inner<'a, I>(attributes: I, out: &mut Vec<u8>) -> Result<(), EncodeError>
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
{
    let mut count = 0;
    for (index, (name, value)) in attributes.into_iter().enumerate() {
        if name.is_empty() {
            return Err(EncodeError::EmptyName { index });
        }
        if let Some(&byte) = name.iter().find(|&&b| !is_name_byte(b)) {
            return Err(EncodeError::InvalidName { index, byte });
        }
        if let Some(&byte) = value.iter().find(|&&b| b == b'\n' || b == 0) {
            return Err(EncodeError::InvalidValue { index, byte });
        }
        if value.last() == Some(&b'\r') {
            return Err(EncodeError::InvalidValue { index, byte: b'\r' });
        }
        out.extend_from_slice(name);
        out.push(b'=');
        out.extend_from_slice(value);
        out.push(b'\n');
        count += 1;
    }
    if count == 0 {
        return Err(EncodeError::NoAttributes);
    }
    out.push(b'\n');
    Ok(())
}

/// Why [`encode_request`] refused its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EncodeError {
    /// A request without attributes, which a server cannot frame.
    NoAttributes,
    /// The attribute at `index` has an empty name.
    EmptyName {
        /// Position of the attribute, from 0.
        index: usize,
    },
    /// The name of the attribute at `index` has a byte other than an ASCII
    /// letter, digit, `_`, `-` or `.` (policy-core's name rule,
    /// [`policy_core::base::attr::is_name_byte`], which the framer and the
    /// parser apply too).
    InvalidName {
        /// Position of the attribute, from 0.
        index: usize,
        /// The offending byte.
        byte: u8,
    },
    /// The value of the attribute at `index` has an LF or NUL, or ends in CR.
    InvalidValue {
        /// Position of the attribute, from 0.
        index: usize,
        /// The offending byte.
        byte: u8,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NoAttributes => f.write_str("empty request: expected at least one attribute"),
            Self::EmptyName { index } => {
                write!(f, "attribute {index}: expected a non-empty name")
            }
            Self::InvalidName { index, byte } => write!(
                f,
                "attribute {index}: invalid byte 0x{byte:02x} in name: expected a letter, digit, `_`, `-` or `.`"
            ),
            Self::InvalidValue { index, byte } => write!(
                f,
                "attribute {index}: invalid byte 0x{byte:02x} in value: expected no LF or NUL, and no CR at the end"
            ),
        }
    }
}

impl std::error::Error for EncodeError {}

/// The length of the first complete reply at the start of `buf` (up to and
/// including the empty line that ends it), or `None` if it is not complete yet.
///
/// ```
/// assert_eq!(policy_proto::reply_len(b"action=DUNNO\n\naction="), Some(14));
/// assert_eq!(policy_proto::reply_len(b"action=DUNNO\n"), None);
/// ```
pub fn reply_len(buf: &[u8]) -> Option<usize> {
    if buf.first() == Some(&b'\n') {
        return Some(1);
    }
    buf.windows(2).position(|w| w == b"\n\n").map(|p| p + 2)
}

/// Decode one complete reply, `action=...\n\n`, as a policy client does.
///
/// As in Postfix, attributes other than `action` are ignored and only the first
/// `action=` counts. Stricter than Postfix in two ways that catch server bugs:
/// a CR anywhere is an error (Postfix would make it part of the action and
/// answer 451), and so are bytes after the empty line (use [`reply_len`] to split
/// a read buffer into replies).
///
/// ```
/// use policy_core::Action;
///
/// assert_eq!(policy_proto::decode_reply(b"action=DUNNO\n\n"), Ok(Action::Dunno));
/// ```
pub fn decode_reply(reply: &[u8]) -> Result<Action, ReplyError> {
    let mut rest = reply;
    let mut action = None;
    loop {
        let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
            return Err(ReplyError::Incomplete);
        };
        let line = &rest[..lf];
        rest = &rest[lf + 1..];
        if line.contains(&b'\r') {
            return Err(ReplyError::CarriageReturn);
        }
        if line.is_empty() {
            break;
        }
        let Some(eq) = line.iter().position(|&b| b == b'=') else {
            return Err(ReplyError::MissingEquals);
        };
        if action.is_none() && &line[..eq] == b"action" {
            action = Some(&line[eq + 1..]);
        }
    }
    if !rest.is_empty() {
        return Err(ReplyError::TrailingData);
    }
    let value = action.ok_or(ReplyError::MissingAction)?;
    let value = std::str::from_utf8(value).map_err(|_| ReplyError::NotUtf8)?;
    Action::parse(value).map_err(ReplyError::Action)
}

/// Why [`decode_reply`] refused a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplyError {
    /// No empty line ends the reply.
    Incomplete,
    /// Bytes follow the empty line that ends the reply.
    TrailingData,
    /// A CR in the reply: Postfix would take it as part of the action.
    CarriageReturn,
    /// A non-empty line without `=`.
    MissingEquals,
    /// No `action=` attribute.
    MissingAction,
    /// The action is not valid UTF-8.
    NotUtf8,
    /// The action is not a valid access(5) action.
    Action(ActionError),
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Incomplete => f.write_str("incomplete reply: expected an empty line at its end"),
            Self::TrailingData => {
                f.write_str("trailing data: expected nothing after the reply's empty line")
            }
            Self::CarriageReturn => f.write_str("CR in reply: expected LF-only lines"),
            Self::MissingEquals => f.write_str("expected `name=value` lines, found no `=`"),
            Self::MissingAction => f.write_str("expected an `action=` attribute"),
            Self::NotUtf8 => f.write_str("expected a UTF-8 action"),
            Self::Action(e) => write!(f, "invalid action: {e}"),
        }
    }
}

impl std::error::Error for ReplyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Action(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_line_table() {
        let rows: &[(&[u8], &[u8])] = &[
            (b"", b""),
            (b"REJECT 5.7.1 Go away", b"REJECT 5.7.1 Go away"),
            ("REJECT Caf\u{e9}".as_bytes(), "REJECT Caf\u{e9}".as_bytes()),
            (b"a\rb\nc", b"a b c"),
            (b"a\r\n", b"a  "),
            (b"\n\n", b"  "),
            // Not the encoder's to judge (policy-core's sanitizer is): kept.
            (b"a\tb\xff", b"a\tb\xff"),
        ];
        for (line, want) in rows {
            let mut out = b"x".to_vec();
            push_line(line, &mut out);
            assert_eq!(&out[1..], *want, "{line:?}");
        }
    }

    #[test]
    fn encode_writes_the_decisions_wire_text() {
        use policy_core::{Engine, NoFiles, Policy, Request, Scratch, Timestamp};

        let policy = Policy::compile(
            "p",
            r#"rule r { if sender_domain == "b.example" then WARN "from $sender" }"#,
            &mut NoFiles,
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .policy;
        let engine = Engine::new(policy);
        let mut scratch = Scratch::new();
        let now = Timestamp::from_unix_millis(0);
        let rows: &[(&[u8], &[u8])] = &[
            (b"sender=a@a.example", b"action=DUNNO\n\n"),
            (b"sender=a@b.example", b"action=WARN from a@b.example\n\n"),
            (
                b"sender=\xffa\x01@b.example",
                "action=WARN from \u{fffd}a @b.example\n\n".as_bytes(),
            ),
        ];
        for (attribute, want) in rows {
            let frame = [&b"request=smtpd_access_policy\n"[..], attribute, b"\n\n"].concat();
            let request = Request::parse(&frame).unwrap_or_else(|e| panic!("{e}"));
            let decision = engine.decide(&request, now, &mut scratch);
            let mut out = b"keep".to_vec();
            encode(&decision, &mut out);
            assert_eq!(&out[..4], b"keep");
            assert_eq!(&out[4..], *want, "{attribute:?}");
        }
    }

    #[test]
    fn encode_request_table() {
        type Row = (
            &'static [(&'static [u8], &'static [u8])],
            Result<&'static [u8], EncodeError>,
        );
        let rows: &[Row] = &[
            (&[(b"a", b"1")], Ok(b"a=1\n\n")),
            (&[(b"a", b""), (b"b", b"x=y\rz")], Ok(b"a=\nb=x=y\rz\n\n")),
            (&[(b"a", b"\xff")], Ok(b"a=\xff\n\n")),
            (&[], Err(EncodeError::NoAttributes)),
            (
                &[(b"a", b"1"), (b"", b"1")],
                Err(EncodeError::EmptyName { index: 1 }),
            ),
            (
                &[(b"a=b", b"1")],
                Err(EncodeError::InvalidName {
                    index: 0,
                    byte: b'=',
                }),
            ),
            (
                &[(b"a b", b"1")],
                Err(EncodeError::InvalidName {
                    index: 0,
                    byte: b' ',
                }),
            ),
            (
                &[(b"\xc3\xa9", b"1")],
                Err(EncodeError::InvalidName {
                    index: 0,
                    byte: 0xc3,
                }),
            ),
            (
                &[(b"a", b"1\n")],
                Err(EncodeError::InvalidValue {
                    index: 0,
                    byte: b'\n',
                }),
            ),
            (
                &[(b"a", b"1\0")],
                Err(EncodeError::InvalidValue { index: 0, byte: 0 }),
            ),
            (
                &[(b"a", b"1\r")],
                Err(EncodeError::InvalidValue {
                    index: 0,
                    byte: b'\r',
                }),
            ),
        ];
        for (attrs, want) in rows {
            let mut out = b"keep".to_vec();
            let got = encode_request(attrs.iter().copied(), &mut out);
            match want {
                Ok(bytes) => {
                    assert_eq!(got, Ok(()), "{attrs:?}");
                    assert_eq!(&out[4..], *bytes, "{attrs:?}");
                }
                Err(e) => {
                    assert_eq!(got, Err(*e), "{attrs:?}");
                    assert_eq!(out, b"keep", "{attrs:?}: partial output left");
                }
            }
        }
    }

    #[test]
    fn reply_len_table() {
        let rows: &[(&[u8], Option<usize>)] = &[
            (b"", None),
            (b"\n", Some(1)),
            (b"action=OK\n", None),
            (b"action=OK\n\n", Some(11)),
            (b"a=1\nb=2\n\nc", Some(9)),
        ];
        for (input, want) in rows {
            assert_eq!(reply_len(input), *want, "{input:?}");
        }
    }

    #[test]
    fn decode_reply_errors() {
        let rows: &[(&[u8], ReplyError)] = &[
            (b"", ReplyError::Incomplete),
            (b"action=DUNNO\n", ReplyError::Incomplete),
            (b"action=DUNNO", ReplyError::Incomplete),
            (b"action=DUNNO\n\nx", ReplyError::TrailingData),
            (b"action=DUNNO\r\n\r\n", ReplyError::CarriageReturn),
            (b"junk\n\n", ReplyError::MissingEquals),
            (b"\n", ReplyError::MissingAction),
            (b"other=1\n\n", ReplyError::MissingAction),
            (b"Action=DUNNO\n\n", ReplyError::MissingAction),
            (b"action=\xff\n\n", ReplyError::NotUtf8),
        ];
        for (input, want) in rows {
            assert_eq!(decode_reply(input), Err(*want), "{input:?}");
        }
    }

    #[test]
    fn errors_display_what_was_expected() {
        assert!(EncodeError::NoAttributes.to_string().contains("expected"));
        assert!(EncodeError::InvalidName {
            index: 0,
            byte: b'!'
        }
        .to_string()
        .ends_with("expected a letter, digit, `_`, `-` or `.`"));
        assert!(ReplyError::Incomplete.to_string().contains("expected"));
        assert!(EncodeError::InvalidValue { index: 2, byte: 10 }
            .to_string()
            .starts_with("attribute 2: invalid byte 0x0a"));
    }
}
