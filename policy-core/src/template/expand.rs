//! Expanding a template for a request into the caller's buffer: each value
//! written in its canonical text and sanitized, without allocating.

use crate::base::bytes::{decimal, dotted_quad};
use std::fmt;
use std::net::IpAddr;

use crate::action::MAX_TEXT_BYTES;
use crate::request::Request;

use super::parse::{Part, Template};
use super::sanitize::Sink;
use super::vars::{Context, Value};

impl Template {
    /// Append the expanded text to `out`: values sanitized, at most
    /// [`MAX_TEXT_BYTES`] bytes appended (cut on a character boundary),
    /// leading and trailing spaces removed (see the [module
    /// documentation](crate::template)). The appended bytes are valid UTF-8 without
    /// control characters. Returns whether the text was cut.
    ///
    /// Allocates only if `out` has less than [`MAX_TEXT_BYTES`] bytes of
    /// spare capacity.
    ///
    /// ```
    /// use policy_core::Request;
    /// use policy_core::template::Template;
    ///
    /// let frame = b"request=smtpd_access_policy\nsender=a\x01b@\xffexample.org\n\n";
    /// let request = Request::parse(frame).unwrap();
    /// let mut out = Vec::new();
    /// Template::parse("$sender_domain says hi").unwrap().expand(&request, "r", &mut out);
    /// assert_eq!(String::from_utf8(out).unwrap(), "\u{fffd}example.org says hi");
    /// ```
    pub fn expand(&self, request: &Request<'_>, rule: &str, out: &mut Vec<u8>) -> bool {
        self.expand_in(request, &Context::rule(rule), out)
    }

    /// [`Template::expand`] with a whole [`Context`] (the limit variables).
    pub fn expand_in(
        &self,
        request: &Request<'_>,
        context: &Context<'_>,
        out: &mut Vec<u8>,
    ) -> bool {
        out.reserve(MAX_TEXT_BYTES);
        let mut sink = Sink::new(out, MAX_TEXT_BYTES);
        for part in &self.parts {
            if sink.full {
                break;
            }
            match part {
                Part::Literal(text) => sink.push_clean(text.as_bytes()),
                Part::Var(var) => match var.value(request, context) {
                    Value::Bytes(bytes) => sink.push_bytes(bytes),
                    Value::Number(n) => sink.push_number(n),
                    Value::Ip(ip) => sink.push_ip(ip),
                    Value::Duration(ms) => {
                        let mut buf = [0u8; 24];
                        sink.push_clean(write_duration(ms, &mut buf));
                    }
                    Value::Score(hundredths) => {
                        let mut buf = [0u8; 24];
                        sink.push_clean(crate::base::bytes::score(hundredths, &mut buf));
                    }
                },
            }
        }
        sink.finish()
    }
}

/// Writes a duration in milliseconds the way a policy writes it: the largest
/// unit of `w`, `d`, `h`, `m`, `s`, `ms` that divides it exactly (`3600000`
/// is `1h`, `5400000` is `90m`).
pub fn write_duration(ms: u64, out: &mut [u8; 24]) -> &[u8] {
    const UNITS: [(u64, u8); 5] = [
        (7 * 86_400_000, b'w'),
        (86_400_000, b'd'),
        (3_600_000, b'h'),
        (60_000, b'm'),
        (1000, b's'),
    ];
    let (value, unit): (u64, &[u8]) =
        match UNITS.iter().find(|&&(size, _)| ms != 0 && ms % size == 0) {
            Some((size, letter)) => (ms / size, std::slice::from_ref(letter)),
            None => (ms, b"ms"),
        };
    let mut digits = [0u8; 20];
    let text = decimal(value, &mut digits);
    let len = text.len() + unit.len();
    out[..text.len()].copy_from_slice(text);
    out[text.len()..len].copy_from_slice(unit);
    &out[..len]
}

impl Sink<'_> {
    fn push_number(&mut self, n: u64) {
        let mut buf = [0u8; 20];
        let digits = decimal(n, &mut buf);
        self.push_clean(digits);
    }

    /// Inlined: since the split of `template.rs` (this impl block is away
    /// from the sanitizer's), the compiler stopped inlining it into
    /// [`Template::expand_in`] on its own: about 8 instructions more per
    /// `$client_address`.
    #[inline]
    fn push_ip(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(v4) => {
                let mut text = [0u8; 15];
                let len = dotted_quad(v4.octets(), &mut text);
                self.push_clean(&text[..len]);
            }
            IpAddr::V6(v6) => {
                // The longest IPv6 text form is 45 bytes.
                let mut buf = StackWriter::<45>::new();
                // Cannot fail: the buffer holds the longest form.
                let _ = fmt::write(&mut buf, format_args!("{v6}"));
                self.push_bytes(buf.as_bytes());
            }
        }
    }
}

/// A `fmt::Write` into a fixed stack buffer; fails when full.
struct StackWriter<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StackWriter<N> {
    fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl<const N: usize> fmt::Write for StackWriter<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let Some(dest) = self.buf.get_mut(self.len..end) else {
            return Err(fmt::Error);
        };
        dest.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
