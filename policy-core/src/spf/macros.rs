//! SPF macros (RFC 7208 section 7): checking a macro-string's syntax and
//! expanding it, into stack buffers.

use std::fmt::{self, Write as _};
use std::net::IpAddr;

use super::parse::SyntaxError;

/// The longest text a domain-spec expands to that is kept: longer ones keep
/// their right end (a domain name is cut from the left, section 4.8), so
/// this only needs room for one name of [`MAX_NAME`] and the cut label.
const NAME_BUF: usize = 512;

/// The longest domain name (RFC 1035: 253 bytes as text without the dot).
pub(crate) const MAX_NAME: usize = 253;

/// The longest value of one macro letter that is kept (a local-part may be
/// long; what is past this is left out).
const VALUE_BUF: usize = 1024;

/// The longest explanation kept, in bytes; the rest is cut off.
pub(crate) const MAX_EXPLANATION: usize = 1024;

/// Where an expansion writes.
pub(crate) trait Out {
    fn push(&mut self, bytes: &[u8]);
}

/// A domain name being expanded, on the stack; past [`NAME_BUF`] bytes it
/// keeps the right end.
#[derive(Clone, Copy)]
pub(crate) struct Name {
    buf: [u8; NAME_BUF],
    len: usize,
    /// Bytes were dropped from the left.
    cut: bool,
}

impl Name {
    pub(crate) const fn new() -> Self {
        Self {
            buf: [0; NAME_BUF],
            len: 0,
            cut: false,
        }
    }

    /// The name to query (section 4.8 and 7.3): lower-cased, without a
    /// trailing dot, cut from the left label by label to at most
    /// [`MAX_NAME`] bytes.
    pub(crate) fn finish(&mut self) -> &[u8] {
        self.buf.make_ascii_lowercase();
        let mut name = self.buf.get(..self.len).unwrap_or_default();
        name = name.strip_suffix(b".").unwrap_or(name);
        let mut cut = self.cut;
        while cut || name.len() > MAX_NAME {
            match name.iter().position(|&b| b == b'.') {
                Some(i) => name = name.get(i + 1..).unwrap_or_default(),
                None => name = &[],
            }
            cut = false;
        }
        name
    }
}

impl Out for Name {
    fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.len == NAME_BUF {
                // Keep the right end: drop the older half.
                let half = NAME_BUF / 2;
                self.buf.copy_within(half.., 0);
                self.len -= half;
                self.cut = true;
            }
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
    }
}

impl Out for Vec<u8> {
    fn push(&mut self, bytes: &[u8]) {
        let room = MAX_EXPLANATION.saturating_sub(self.len());
        self.extend_from_slice(bytes.get(..room.min(bytes.len())).unwrap_or_default());
    }
}

/// A value being built on the stack; what is past [`VALUE_BUF`] is left out.
struct Value {
    buf: [u8; VALUE_BUF],
    len: usize,
}

impl Value {
    fn new() -> Self {
        Self {
            buf: [0; VALUE_BUF],
            len: 0,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

impl Out for Value {
    fn push(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(VALUE_BUF - self.len);
        if let (Some(dst), Some(src)) = (self.buf.get_mut(self.len..self.len + n), bytes.get(..n)) {
            dst.copy_from_slice(src);
            self.len += n;
        }
    }
}

impl fmt::Write for Value {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

/// One piece of a macro-string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'s> {
    Literal(&'s [u8]),
    /// `%{letter digits r delimiters}`; an upper-case letter URL-escapes.
    Macro {
        letter: u8,
        upper: bool,
        keep: Option<u32>,
        reverse: bool,
        delimiters: &'s [u8],
    },
}

/// The next token of `s` and what follows it.
/// macro-expand = ( "%{" macro-letter transformers *delimiter "}" )
///                / "%%" / "%_" / "%-"
/// macro-literal = %x21-24 / %x26-7E (and SP in an explanation)
fn next_token(s: &[u8], exp: bool) -> Result<Option<(Token<'_>, &[u8])>, SyntaxError> {
    let Some(&first) = s.first() else {
        return Ok(None);
    };
    if first != b'%' {
        let n = s
            .iter()
            .position(|&b| !(matches!(b, 0x21..=0x24 | 0x26..=0x7e) || (exp && b == b' ')))
            .unwrap_or(s.len());
        if n == 0 {
            return Err(SyntaxError);
        }
        let (lit, rest) = s.split_at(n);
        return Ok(Some((Token::Literal(lit), rest)));
    }
    let rest = s.get(2..).unwrap_or_default();
    match s.get(1) {
        Some(b'%') => Ok(Some((Token::Literal(b"%"), rest))),
        Some(b'_') => Ok(Some((Token::Literal(b" "), rest))),
        Some(b'-') => Ok(Some((Token::Literal(b"%20"), rest))),
        Some(b'{') => {
            let end = rest.iter().position(|&b| b == b'}').ok_or(SyntaxError)?;
            let body = rest.get(..end).unwrap_or_default();
            let after = rest.get(end + 1..).unwrap_or_default();
            let (&letter, mut body) = body.split_first().ok_or(SyntaxError)?;
            let lower = letter.to_ascii_lowercase();
            let allowed: &[u8] = if exp { b"slodiphvcrt" } else { b"slodiphv" };
            if !allowed.contains(&lower) {
                return Err(SyntaxError);
            }
            let digits = body.iter().take_while(|b| b.is_ascii_digit()).count();
            let keep = if digits == 0 {
                None
            } else {
                let n = body
                    .get(..digits)
                    .unwrap_or_default()
                    .iter()
                    .fold(0u32, |n, &d| {
                        n.saturating_mul(10).saturating_add(u32::from(d - b'0'))
                    });
                if n == 0 {
                    return Err(SyntaxError);
                }
                Some(n)
            };
            body = body.get(digits..).unwrap_or_default();
            let reverse = matches!(body.first(), Some(b'r' | b'R'));
            if reverse {
                body = body.get(1..).unwrap_or_default();
            }
            if !body.iter().all(|b| b".-+,/_=".contains(b)) {
                return Err(SyntaxError);
            }
            Ok(Some((
                Token::Macro {
                    letter: lower,
                    upper: letter.is_ascii_uppercase(),
                    keep,
                    reverse,
                    delimiters: body,
                },
                after,
            )))
        }
        _ => Err(SyntaxError),
    }
}

/// Check a macro-string (an explanation's when `exp`: letters `c`, `r`,
/// `t` and spaces are allowed there).
pub(crate) fn check_macro_string(mut s: &[u8], exp: bool) -> Result<(), SyntaxError> {
    while let Some((_, rest)) = next_token(s, exp)? {
        s = rest;
    }
    Ok(())
}

/// Check a domain-spec: domain-spec = macro-string domain-end,
/// domain-end = ( "." toplabel [ "." ] ) / macro-expand.
pub(crate) fn check_domain_spec(s: &[u8]) -> Result<(), SyntaxError> {
    let mut last = None;
    let mut rest = s;
    while let Some((token, next)) = next_token(rest, false)? {
        last = Some((token, rest.len()));
        rest = next;
    }
    match last {
        None => Err(SyntaxError),
        Some((Token::Macro { .. }, _)) => Ok(()),
        // `%%`, `%_`, `%-` are macro-expands too.
        Some((Token::Literal(_), at)) if s.len() - at == 2 && s.get(s.len() - 2) == Some(&b'%') => {
            Ok(())
        }
        Some(_) => {
            let name = s.strip_suffix(b".").unwrap_or(s);
            let dot = name.iter().rposition(|&b| b == b'.').ok_or(SyntaxError)?;
            if toplabel(name.get(dot + 1..).unwrap_or_default()) {
                Ok(())
            } else {
                Err(SyntaxError)
            }
        }
    }
}

/// toplabel = ( *alphanum ALPHA *alphanum ) /
///            ( 1*alphanum "-" *( alphanum / "-" ) alphanum )
fn toplabel(label: &[u8]) -> bool {
    !label.is_empty()
        && label
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-')
        && label.first() != Some(&b'-')
        && label.last() != Some(&b'-')
        && !label.iter().all(u8::is_ascii_digit)
}

/// Whether `s` uses the `p` macro (which needs DNS lookups to expand).
pub(crate) fn uses_p(mut s: &[u8], exp: bool) -> bool {
    while let Ok(Some((token, rest))) = next_token(s, exp) {
        if matches!(token, Token::Macro { letter: b'p', .. }) {
            return true;
        }
        s = rest;
    }
    false
}

/// The values of the macro letters for one expansion.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Values<'a> {
    /// The local-part of the sender (`l`).
    pub(crate) local: &'a [u8],
    /// The domain of the sender (`o`).
    pub(crate) sender_domain: &'a [u8],
    /// The domain being checked (`d`).
    pub(crate) domain: &'a [u8],
    /// The HELO name (`h`).
    pub(crate) helo: &'a [u8],
    /// The client address (`i`, `c`, `v`).
    pub(crate) ip: IpAddr,
    /// The validated domain name of the client (`p`).
    pub(crate) validated: &'a [u8],
    /// The receiving host's name (`r`).
    pub(crate) receiver: &'a [u8],
    /// Seconds since the epoch (`t`).
    pub(crate) now: u64,
}

/// Expand the macro-string `s` into `out`.
pub(crate) fn expand(
    mut s: &[u8],
    values: &Values<'_>,
    exp: bool,
    out: &mut impl Out,
) -> Result<(), SyntaxError> {
    while let Some((token, rest)) = next_token(s, exp)? {
        s = rest;
        match token {
            Token::Literal(lit) => out.push(lit),
            Token::Macro {
                letter,
                upper,
                keep,
                reverse,
                delimiters,
            } => {
                let mut value = Value::new();
                letter_value(letter, values, &mut value);
                transform(value.as_bytes(), keep, reverse, delimiters, upper, out);
            }
        }
    }
    Ok(())
}

/// The raw value of a macro letter (section 7.2).
fn letter_value(letter: u8, v: &Values<'_>, out: &mut Value) {
    match letter {
        b's' => {
            out.push(v.local);
            out.push(b"@");
            out.push(v.sender_domain);
        }
        b'l' => out.push(v.local),
        b'o' => out.push(v.sender_domain),
        b'd' => out.push(v.domain),
        b'h' => out.push(v.helo),
        b'p' => out.push(v.validated),
        b'r' => out.push(if v.receiver.is_empty() {
            b"unknown"
        } else {
            v.receiver
        }),
        b'v' => out.push(if v.ip.is_ipv4() { b"in-addr" } else { b"ip6" }),
        b't' => {
            let _ = write!(out, "{}", v.now);
        }
        b'c' => {
            let _ = write!(out, "{}", v.ip);
        }
        b'i' => match v.ip {
            IpAddr::V4(ip) => {
                let _ = write!(out, "{ip}");
            }
            IpAddr::V6(ip) => nibbles(&ip.octets(), false, out),
        },
        _ => {}
    }
}

/// The nibbles of an address, dot-separated, lower-case hex (section 7.3:
/// `%{i}` of an IPv6 address), in order or reversed (a reverse DNS name).
pub(crate) fn nibbles(octets: &[u8], reversed: bool, out: &mut impl Out) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut first = true;
    let mut put = |n: u8, out: &mut dyn FnMut(&[u8])| {
        if !first {
            out(b".");
        }
        first = false;
        out(&[HEX.get(usize::from(n & 15)).copied().unwrap_or(b'0')]);
    };
    let mut sink = |b: &[u8]| out.push(b);
    if reversed {
        for &o in octets.iter().rev() {
            put(o & 15, &mut sink);
            put(o >> 4, &mut sink);
        }
    } else {
        for &o in octets {
            put(o >> 4, &mut sink);
            put(o & 15, &mut sink);
        }
    }
}

/// Apply the transformers (section 7.3): split on the delimiters (`.` by
/// default), reverse, keep the right-most `keep` parts, join with `.`;
/// URL-escape when the letter was upper case.
fn transform(
    value: &[u8],
    keep: Option<u32>,
    reverse: bool,
    delimiters: &[u8],
    upper: bool,
    out: &mut impl Out,
) {
    if keep.is_none() && !reverse && delimiters.is_empty() && !upper {
        out.push(value);
        return;
    }
    let delimiters: &[u8] = if delimiters.is_empty() {
        b"."
    } else {
        delimiters
    };
    let is_delimiter = |b: &u8| delimiters.contains(b);
    let count = value.split(is_delimiter).count();
    let keep = keep.map_or(count, |k| {
        usize::try_from(k).unwrap_or(usize::MAX).min(count)
    });
    let skip = count - keep;
    let mut emit = |part: &[u8], first: bool| {
        if !first {
            out.push(b".");
        }
        if upper {
            escape(part, out);
        } else {
            out.push(part);
        }
    };
    if reverse {
        for (i, part) in value.split(is_delimiter).rev().skip(skip).enumerate() {
            emit(part, i == 0);
        }
    } else {
        for (i, part) in value.split(is_delimiter).skip(skip).enumerate() {
            emit(part, i == 0);
        }
    }
}

/// URL-escape: every byte but unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~".
fn escape(part: &[u8], out: &mut impl Out) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in part {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(&[b]);
        } else {
            let hi = HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0');
            let lo = HEX.get(usize::from(b & 15)).copied().unwrap_or(b'0');
            out.push(&[b'%', hi, lo]);
        }
    }
}
