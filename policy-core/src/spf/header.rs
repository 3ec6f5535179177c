//! The `Received-SPF:` header of RFC 7208 section 9.1: the result, a
//! comment in words, and the key-value pairs a later filter reads.

use super::{Identity, SpfInput, SpfResult};
use crate::template::TextBuf;

/// The most bytes [`SpfInput::received_spf`] writes. The header is cut
/// whole pairs at a time to stay within it (a client's long sender or HELO
/// name cannot make a malformed header), leaving room in a reply for
/// `PREPEND Received-SPF: ` and a pair of the policy's own
/// (`receiver=mx.example.com;`).
pub const RECEIVED_SPF_MAX: usize = 360;

impl SpfInput<'_> {
    /// Append the value of a `Received-SPF:` header (RFC 7208 section 9.1)
    /// for `result` to `out`, without the field name:
    ///
    /// ```text
    /// pass (domain of joe@example.org designates 192.0.2.1 as permitted sender)
    ///  client-ip=192.0.2.1; helo=mx.example.org; identity=mailfrom;
    ///  envelope-from="joe@example.org";
    /// ```
    ///
    /// (on one line). `receiver=` follows `identity=` when the input has a
    /// receiver ([`SpfInput::with_receiver`]); `envelope-from=` comes last,
    /// and is left out for the HELO identity. Values that are not a dot-atom are written as
    /// quoted strings (an IPv6 client, a HELO address literal), and
    /// parentheses in the comment are escaped. At most [`RECEIVED_SPF_MAX`]
    /// bytes: the comment is left out when the whole does not fit, and then
    /// every pair that does not.
    ///
    /// ```
    /// use policy_core::spf::{SpfInput, SpfResult};
    /// use policy_core::Timestamp;
    ///
    /// let input = SpfInput::mail_from(
    ///     "2001:db8::25".parse()?,
    ///     b"joe@example.org",
    ///     b"[IPv6:2001:db8::25]",
    ///     Timestamp::from_unix_millis(0),
    /// );
    /// let mut header = Vec::new();
    /// input.received_spf(SpfResult::SoftFail, &mut header);
    /// assert_eq!(
    ///     String::from_utf8(header)?,
    ///     "softfail (domain of transitioning joe@example.org does not designate \
    ///      2001:db8::25 as permitted sender) client-ip=\"2001:db8::25\"; \
    ///      helo=\"[IPv6:2001:db8::25]\"; identity=mailfrom; envelope-from=\"joe@example.org\";"
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn received_spf(&self, result: SpfResult, out: &mut Vec<u8>) {
        let start = out.len();
        let mut ip = TextBuf::new();
        let ip = ip.write_ip(self.client);
        out.extend_from_slice(result.as_str().as_bytes());
        // Writes the pairs that fit; says whether all did.
        let pairs = |out: &mut Vec<u8>| {
            let mut all = true;
            let mut push = |key: &[u8], value: &[u8]| {
                let mark = out.len();
                out.push(b' ');
                out.extend_from_slice(key);
                out.push(b'=');
                push_value(value, out);
                out.push(b';');
                if out.len() - start > RECEIVED_SPF_MAX {
                    out.truncate(mark);
                    all = false;
                }
            };
            push(b"client-ip", ip);
            push(b"helo", self.helo);
            push(b"identity", self.identity.as_str().as_bytes());
            if !self.receiver.is_empty() {
                push(b"receiver", self.receiver);
            }
            // Last: the longest, and the one a client makes as long as it
            // likes.
            if self.identity == Identity::MailFrom {
                push(b"envelope-from", self.mail_from);
            }
            all
        };
        out.extend_from_slice(b" (");
        let who = |out: &mut Vec<u8>| {
            push_comment(self.local, out);
            out.push(b'@');
            push_comment(self.domain, out);
        };
        if !self.receiver.is_empty() {
            push_comment(self.receiver, out);
            out.extend_from_slice(b": ");
        }
        let comment: &[Words] = {
            use Words::{Client, Text as T, Who};
            match result {
                SpfResult::Pass => &[
                    T(b"domain of "),
                    Who,
                    T(b" designates "),
                    Client,
                    T(b" as permitted sender"),
                ],
                SpfResult::Fail => &[
                    T(b"domain of "),
                    Who,
                    T(b" does not designate "),
                    Client,
                    T(b" as permitted sender"),
                ],
                SpfResult::SoftFail => &[
                    T(b"domain of transitioning "),
                    Who,
                    T(b" does not designate "),
                    Client,
                    T(b" as permitted sender"),
                ],
                SpfResult::Neutral => &[
                    Client,
                    T(b" is neither permitted nor denied by domain of "),
                    Who,
                ],
                SpfResult::None => &[
                    T(b"domain of "),
                    Who,
                    T(b" does not designate permitted sender hosts"),
                ],
                SpfResult::TempError => &[T(b"temporary error looking up the SPF record of "), Who],
                SpfResult::PermError => &[T(b"permanent error in the SPF record of "), Who],
            }
        };
        for words in comment {
            match words {
                Words::Text(text) => out.extend_from_slice(text),
                Words::Who => who(out),
                Words::Client => out.extend_from_slice(ip),
            }
        }
        out.push(b')');
        if out.len() - start > RECEIVED_SPF_MAX || !pairs(out) {
            // Without the comment (whose words come from the client), for
            // the pairs a filter reads.
            out.truncate(start + result.as_str().len());
            pairs(out);
        }
    }
}

/// A piece of the header's comment.
enum Words {
    Text(&'static [u8]),
    /// The identity checked, `local@domain`.
    Who,
    /// The client's address.
    Client,
}

/// RFC 5322's `atext`.
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

/// Whether `value` is a `dot-atom-text`: atoms of `atext` joined by single
/// dots.
fn is_dot_atom(value: &[u8]) -> bool {
    !value.is_empty()
        && value
            .split(|&b| b == b'.')
            .all(|atom| !atom.is_empty() && atom.iter().all(|&b| is_atext(b)))
}

/// A pair's value: as it is when a dot-atom, else a quoted string
/// (`"` and `\` escaped).
fn push_value(value: &[u8], out: &mut Vec<u8>) {
    if is_dot_atom(value) {
        out.extend_from_slice(value);
        return;
    }
    out.push(b'"');
    for &b in value {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// Text inside a comment: `(`, `)` and `\` escaped.
fn push_comment(text: &[u8], out: &mut Vec<u8>) {
    for &b in text {
        if matches!(b, b'(' | b')' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
}
