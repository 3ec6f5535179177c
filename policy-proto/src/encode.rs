//! Encoding and decoding on both sides of the wire.
//!
//! Server side (what the daemon and [`serve()`](crate::serve()) use):
//!
//! - [`encode()`] appends the reply `action=<action>\n\n` for a validated
//!   [`Action`];
//! - [`encode_text_action`] appends a reply whose text is not validated in
//!   advance (a template expanded with client data), sanitized and bounded;
//! - [`sanitize`] is the sanitizing step on its own.
//!
//! Whatever they are given, these never emit a CR, an LF inside the reply line,
//! a control character or invalid UTF-8: Postfix turns a reply with a CR into a
//! `451 4.3.5` for every message, and a newline inside the text would end the
//! reply early and put the connection out of step.
//!
//! Client side (load generators, tests, embedders talking to a policy server):
//!
//! - [`encode_request`] appends a request from `(name, value)` pairs, refusing
//!   anything the server could not frame back into the same attributes;
//! - [`reply_len`] finds the end of the first reply in a read buffer, and
//!   [`decode_reply`] turns it into an [`Action`].

use std::fmt;

use policy_core::action::MAX_TEXT_BYTES;
use policy_core::{Action, ActionError, Decision};

use crate::frame::is_name_byte;

/// The longest verb [`encode_text_action`] accepts. The longest access(5) verb
/// a policy may reply with, `DEFER_IF_PERMIT`, has 15 bytes.
pub const MAX_VERB_BYTES: usize = 32;

/// Append `action=<action>\n\n` to `out`.
///
/// The wire form comes from [`Action::write_wire`], which promises one line of
/// valid UTF-8 without control characters. This checks that promise on every
/// call (a scan of a few dozen bytes) and, should it ever be broken, sanitizes
/// the line as [`sanitize`] does instead of sending it. Allocates only if `out`
/// lacks capacity.
///
/// ```
/// use policy_core::Action;
/// use policy_proto::encode;
///
/// let mut out = Vec::new();
/// encode(&Action::Dunno, &mut out);
/// assert_eq!(out, b"action=DUNNO\n\n");
/// ```
pub fn encode(action: &Action, out: &mut Vec<u8>) {
    out.extend_from_slice(b"action=");
    let mark = out.len();
    action.write_wire(out);
    if !is_clean(&out[mark..]) {
        // Unreachable while `Action` keeps its promise; allocating here is fine.
        let raw = out.split_off(mark);
        sanitize(&raw, usize::MAX, out);
    }
    out.extend_from_slice(b"\n\n");
}

/// Append `action=<wire>\n\n` to `out` for a [`Decision`] of a compiled
/// policy: its action with templates filled in for this request
/// ([`Decision::wire`]).
///
/// policy-core sanitizes expanded templates; as [`encode`] does, this checks
/// the line again on every call and sanitizes it should the promise ever be
/// broken. Allocates only if `out` lacks capacity.
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
/// policy_proto::encode_decision(&decision, &mut out);
/// assert_eq!(out, b"action=REJECT 5.7.1 No mail from joe@spam.example\n\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn encode_decision(decision: &Decision<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"action=");
    let wire = decision.wire();
    if is_clean(wire) {
        out.extend_from_slice(wire);
    } else {
        sanitize(wire, usize::MAX, out);
    }
    out.extend_from_slice(b"\n\n");
}

/// Append `action=<verb> <text>\n\n` to `out`, for text that was not validated
/// when the policy was compiled (e.g. a template expanded with the sender).
///
/// `verb` must be an access(5) verb in upper case (`REJECT`, `DEFER`, `WARN`,
/// ...) or an SMTP code `4NN`/`5NN`; it is checked for shape only (the policy
/// compiler checks the meaning). `text` is [`sanitize`]d, trimmed of leading and
/// trailing white space, and cut to [`MAX_TEXT_BYTES`] bytes at a character
/// boundary; when nothing is left, only the verb is written. On error nothing is
/// written.
///
/// ```
/// use policy_proto::encode_text_action;
///
/// let mut out = Vec::new();
/// encode_text_action("REJECT", b"5.7.1 Go away <evil\r\n@example.com>", &mut out).unwrap();
/// assert_eq!(out, b"action=REJECT 5.7.1 Go away <evil  @example.com>\n\n");
/// ```
pub fn encode_text_action(verb: &str, text: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if !is_verb(verb.as_bytes()) {
        return Err(EncodeError::InvalidVerb);
    }
    out.extend_from_slice(b"action=");
    out.extend_from_slice(verb.as_bytes());
    let start = text
        .iter()
        .position(|&b| !(b.is_ascii_whitespace() || b.is_ascii_control()))
        .unwrap_or(text.len());
    let text = &text[start..];
    if !text.is_empty() {
        out.push(b' ');
        let mark = out.len();
        sanitize(text, MAX_TEXT_BYTES, out);
        while out.len() > mark && out[out.len() - 1] == b' ' {
            out.pop();
        }
        if out.len() == mark {
            out.pop(); // the separating space
        }
    }
    out.extend_from_slice(b"\n\n");
    Ok(())
}

/// Append `text` to `out` as at most `max_bytes` bytes of valid UTF-8 without
/// control characters: every control character (C0, DEL and C1, CR and LF
/// included) becomes a space, every invalid UTF-8 sequence becomes U+FFFD, and
/// the result is cut at a character boundary so as not to exceed `max_bytes`.
///
/// ```
/// let mut out = Vec::new();
/// policy_proto::sanitize(b"a\r\nb\xffc", 64, &mut out);
/// assert_eq!(out, "a  b\u{fffd}c".as_bytes());
/// ```
pub fn sanitize(text: &[u8], max_bytes: usize, out: &mut Vec<u8>) {
    let mark = out.len();
    let limit = mark.saturating_add(max_bytes);
    'chunks: for chunk in text.utf8_chunks() {
        for c in chunk.valid().chars() {
            let c = if c.is_control() { ' ' } else { c };
            if !push_char(out, c, limit) {
                break 'chunks;
            }
        }
        if !chunk.invalid().is_empty() && !push_char(out, char::REPLACEMENT_CHARACTER, limit) {
            break;
        }
    }
}

/// Push `c` if it fits before `limit`; false when it does not (and nothing
/// more should be pushed).
#[inline]
fn push_char(out: &mut Vec<u8>, c: char, limit: usize) -> bool {
    let len = c.len_utf8();
    if out.len() + len > limit {
        return false;
    }
    if len == 1 {
        out.push(c as u8);
    } else {
        let mut utf8 = [0; 4];
        out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
    }
    true
}

/// Whether `bytes` is valid UTF-8 without control characters.
fn is_clean(bytes: &[u8]) -> bool {
    // Printable ASCII, the common case. A fold without early exit, so that the
    // compiler checks many bytes per instruction.
    if bytes.iter().fold(true, |printable, &b| {
        printable & (b.wrapping_sub(b' ') < 0x5f)
    }) {
        return true;
    }
    std::str::from_utf8(bytes).is_ok_and(|s| !s.chars().any(char::is_control))
}

/// `[A-Z][A-Z_]*` or `[45][0-9][0-9]`, at most [`MAX_VERB_BYTES`].
fn is_verb(verb: &[u8]) -> bool {
    match verb {
        [b'4' | b'5', b'0'..=b'9', b'0'..=b'9'] => true,
        [b'A'..=b'Z', rest @ ..] => {
            verb.len() <= MAX_VERB_BYTES
                && rest.iter().all(|&b| b.is_ascii_uppercase() || b == b'_')
        }
        _ => false,
    }
}

/// Append a request (`name=value` lines and the empty line) to `out`.
///
/// Refuses, writing nothing, what a server could not frame back into the same
/// attributes: no attributes at all, an empty name, a name with a byte outside
/// printable ASCII or with `=`, a value with LF or NUL, or a value ending in CR
/// (the server would take it for a CRLF line ending). Values need not be UTF-8.
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

/// Why [`encode_text_action`] or [`encode_request`] refused its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EncodeError {
    /// The verb is not an upper-case word (`[A-Z][A-Z_]*`, at most
    /// [`MAX_VERB_BYTES`]) nor an SMTP code `4NN`/`5NN`.
    InvalidVerb,
    /// A request without attributes, which a server cannot frame.
    NoAttributes,
    /// The attribute at `index` has an empty name.
    EmptyName {
        /// Position of the attribute, from 0.
        index: usize,
    },
    /// The name of the attribute at `index` has a byte that is not printable
    /// ASCII, or a `=`.
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
            Self::InvalidVerb => f.write_str(
                "invalid verb: expected an upper-case access(5) verb or a 4NN/5NN code",
            ),
            Self::NoAttributes => f.write_str("empty request: expected at least one attribute"),
            Self::EmptyName { index } => {
                write!(f, "attribute {index}: expected a non-empty name")
            }
            Self::InvalidName { index, byte } => write!(
                f,
                "attribute {index}: invalid byte 0x{byte:02x} in name: expected printable ASCII other than `=`"
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
    fn sanitize_table() {
        let rows: &[(&[u8], usize, &str)] = &[
            (b"", 10, ""),
            (b"plain text", 100, "plain text"),
            (b"a\rb\nc\td\0e\x7f", 100, "a b c d e "),
            (b"caf\xc3\xa9", 100, "caf\u{e9}"),
            (b"\xc2\x85next line", 100, " next line"),
            (b"bad\xff\xfe!", 100, "bad\u{fffd}\u{fffd}!"),
            (b"trunc\xe2\x82", 100, "trunc\u{fffd}"),
            (b"abcdef", 3, "abc"),
            (b"ab\xc3\xa9", 3, "ab"),
            (b"ab\xc3\xa9", 4, "ab\u{e9}"),
            (b"\xff", 2, ""),
            (b"\xff", 3, "\u{fffd}"),
        ];
        for (input, max, want) in rows {
            let mut out = b"x".to_vec();
            sanitize(input, *max, &mut out);
            assert_eq!(&out[1..], want.as_bytes(), "{input:?} max {max}");
        }
    }

    #[test]
    fn is_clean_table() {
        let rows: &[(&[u8], bool)] = &[
            (b"", true),
            (b"REJECT 5.7.1 Go away", true),
            (b" ~", true),
            (b"a\tb", false),
            (b"a\x7f", false),
            (b"a\rb", false),
            (b"a\n", false),
            (b"\x1f", false),
            ("caf\u{e9}".as_bytes(), true),
            (b"\xc2\x85", false),
            (b"\xc3", false),
            (b"\xff", false),
        ];
        for (bytes, clean) in rows {
            assert_eq!(is_clean(bytes), *clean, "{bytes:?}");
        }
    }

    #[test]
    fn text_action_table() {
        let long = "x".repeat(MAX_TEXT_BYTES + 10);
        let long_out = format!("action=REJECT {}\n\n", &long[..MAX_TEXT_BYTES]);
        let rows: Vec<(&str, &[u8], Result<String, EncodeError>)> = vec![
            (
                "REJECT",
                b"5.7.1 no",
                Ok("action=REJECT 5.7.1 no\n\n".into()),
            ),
            (
                "DEFER_IF_PERMIT",
                b"",
                Ok("action=DEFER_IF_PERMIT\n\n".into()),
            ),
            ("DUNNO", b"  \r\n ", Ok("action=DUNNO\n\n".into())),
            ("550", b" 5.7.1 x \r\n", Ok("action=550 5.7.1 x\n\n".into())),
            ("WARN", b"a\nb", Ok("action=WARN a b\n\n".into())),
            ("REJECT", long.as_bytes(), Ok(long_out)),
            ("", b"x", Err(EncodeError::InvalidVerb)),
            ("reject", b"x", Err(EncodeError::InvalidVerb)),
            ("REJECT\n", b"x", Err(EncodeError::InvalidVerb)),
            ("_X", b"x", Err(EncodeError::InvalidVerb)),
            ("250", b"x", Err(EncodeError::InvalidVerb)),
            ("55", b"x", Err(EncodeError::InvalidVerb)),
            ("5500", b"x", Err(EncodeError::InvalidVerb)),
            (
                "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG",
                b"x",
                Err(EncodeError::InvalidVerb),
            ),
        ];
        for (verb, text, want) in rows {
            let mut out = Vec::new();
            let got = encode_text_action(verb, text, &mut out)
                .map(|()| String::from_utf8(out.clone()).unwrap());
            assert_eq!(got, want, "{verb:?} {text:?}");
            if want.is_err() {
                assert!(out.is_empty());
            }
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
        assert!(EncodeError::InvalidVerb.to_string().contains("expected"));
        assert!(ReplyError::Incomplete.to_string().contains("expected"));
        assert!(EncodeError::InvalidValue { index: 2, byte: 10 }
            .to_string()
            .starts_with("attribute 2: invalid byte 0x0a"));
    }
}
