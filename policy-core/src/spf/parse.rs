//! SPF record syntax (RFC 7208 section 4.6, 5, 6 and 12): terms split by
//! spaces, each a mechanism or a modifier, checked without allocating.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::macros::{check_domain_spec, check_macro_string};
use super::SpfResult;

/// A record is an SPF record when it starts with this (case-insensitive),
/// followed by a space or its end (section 4.5).
const VERSION: &[u8] = b"v=spf1";

/// Whether `record` is an SPF version 1 record.
pub(crate) fn is_spf(record: &[u8]) -> bool {
    record.len() >= VERSION.len()
        && record
            .get(..VERSION.len())
            .is_some_and(|v| v.eq_ignore_ascii_case(VERSION))
        && matches!(record.get(VERSION.len()), None | Some(b' '))
}

/// The terms of an SPF record, after its version.
pub(crate) fn terms(record: &[u8]) -> impl Iterator<Item = &[u8]> {
    record
        .get(VERSION.len()..)
        .unwrap_or_default()
        .split(|&b| b == b' ')
        .filter(|t| !t.is_empty())
}

/// A mechanism's kind (section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    All,
    Include,
    A,
    Mx,
    Ptr,
    Ip4(Ipv4Addr),
    Ip6(Ipv6Addr),
    Exists,
}

impl Kind {
    /// Whether it counts against the limit of DNS-querying terms.
    pub(crate) fn queries_dns(self) -> bool {
        matches!(
            self,
            Self::Include | Self::A | Self::Mx | Self::Ptr | Self::Exists
        )
    }
}

/// One mechanism: `[qualifier] name [":" domain-spec] [cidr]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mechanism<'r> {
    pub(crate) result: SpfResult,
    pub(crate) kind: Kind,
    /// The domain-spec (an unexpanded macro-string), if any.
    pub(crate) domain: Option<&'r [u8]>,
    pub(crate) cidr4: u8,
    pub(crate) cidr6: u8,
}

/// One term of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Term<'r> {
    Mechanism(Mechanism<'r>),
    Redirect(&'r [u8]),
    Exp(&'r [u8]),
    /// An unknown modifier: ignored.
    Other,
}

/// A term that is not valid SPF: the record is a `permerror`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SyntaxError;

/// Parse one term.
pub(crate) fn term(t: &[u8]) -> Result<Term<'_>, SyntaxError> {
    // A modifier: name "=" macro-string, name = ALPHA *( ALPHA / DIGIT /
    // "-" / "_" / "." ).
    let name_len = t
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
        .unwrap_or(t.len());
    if t.get(name_len) == Some(&b'=') {
        let (name, value) = (
            t.get(..name_len).unwrap_or_default(),
            t.get(name_len + 1..).unwrap_or_default(),
        );
        if !name.first().is_some_and(u8::is_ascii_alphabetic) {
            return Err(SyntaxError);
        }
        if name.eq_ignore_ascii_case(b"redirect") {
            check_domain_spec(value)?;
            return Ok(Term::Redirect(value));
        }
        if name.eq_ignore_ascii_case(b"exp") {
            check_domain_spec(value)?;
            return Ok(Term::Exp(value));
        }
        check_macro_string(value, false)?;
        return Ok(Term::Other);
    }
    mechanism(t).map(Term::Mechanism)
}

/// mechanism = ( all / include / a / mx / ptr / ip4 / ip6 / exists ),
/// with an optional qualifier before it.
fn mechanism(t: &[u8]) -> Result<Mechanism<'_>, SyntaxError> {
    let (result, t) = match t.first() {
        Some(b'+') => (SpfResult::Pass, t.get(1..).unwrap_or_default()),
        Some(b'-') => (SpfResult::Fail, t.get(1..).unwrap_or_default()),
        Some(b'~') => (SpfResult::SoftFail, t.get(1..).unwrap_or_default()),
        Some(b'?') => (SpfResult::Neutral, t.get(1..).unwrap_or_default()),
        _ => (SpfResult::Pass, t),
    };
    let name_len = t
        .iter()
        .position(|&b| !b.is_ascii_alphanumeric())
        .unwrap_or(t.len());
    let (name, rest) = t.split_at(name_len);
    let mut m = Mechanism {
        result,
        kind: Kind::All,
        domain: None,
        cidr4: 32,
        cidr6: 128,
    };
    let eq = |s: &[u8]| name.eq_ignore_ascii_case(s);
    if eq(b"all") {
        if !rest.is_empty() {
            return Err(SyntaxError);
        }
    } else if eq(b"include") || eq(b"exists") {
        m.kind = if eq(b"include") {
            Kind::Include
        } else {
            Kind::Exists
        };
        let spec = rest.strip_prefix(b":").ok_or(SyntaxError)?;
        check_domain_spec(spec)?;
        m.domain = Some(spec);
    } else if eq(b"a") || eq(b"mx") {
        m.kind = if eq(b"a") { Kind::A } else { Kind::Mx };
        let (spec, cidr4, cidr6) = dual_cidr(rest)?;
        (m.cidr4, m.cidr6) = (cidr4, cidr6);
        if !spec.is_empty() {
            let spec = spec.strip_prefix(b":").ok_or(SyntaxError)?;
            check_domain_spec(spec)?;
            m.domain = Some(spec);
        }
    } else if eq(b"ptr") {
        m.kind = Kind::Ptr;
        if !rest.is_empty() {
            let spec = rest.strip_prefix(b":").ok_or(SyntaxError)?;
            check_domain_spec(spec)?;
            m.domain = Some(spec);
        }
    } else if eq(b"ip4") {
        let rest = rest.strip_prefix(b":").ok_or(SyntaxError)?;
        let (addr, cidr) = match rest.iter().position(|&b| b == b'/') {
            Some(i) => (
                rest.get(..i).unwrap_or_default(),
                Some(cidr_length(rest.get(i + 1..).unwrap_or_default(), 32)?),
            ),
            None => (rest, None),
        };
        m.kind = Kind::Ip4(ip4(addr)?);
        m.cidr4 = cidr.unwrap_or(32);
    } else if eq(b"ip6") {
        let rest = rest.strip_prefix(b":").ok_or(SyntaxError)?;
        let (addr, cidr) = match rest.iter().position(|&b| b == b'/') {
            Some(i) => (
                rest.get(..i).unwrap_or_default(),
                Some(cidr_length(rest.get(i + 1..).unwrap_or_default(), 128)?),
            ),
            None => (rest, None),
        };
        let addr = std::str::from_utf8(addr)
            .ok()
            .and_then(|s| s.parse::<Ipv6Addr>().ok())
            .ok_or(SyntaxError)?;
        m.kind = Kind::Ip6(addr);
        m.cidr6 = cidr.unwrap_or(128);
    } else {
        return Err(SyntaxError);
    }
    Ok(m)
}

/// Split `[domain-spec] [dual-cidr-length]` from the end:
/// dual-cidr-length = [ ip4-cidr-length ] [ "/" ip6-cidr-length ].
fn dual_cidr(rest: &[u8]) -> Result<(&[u8], u8, u8), SyntaxError> {
    let mut spec = rest;
    let mut cidr4 = 32;
    let mut cidr6 = 128;
    if let Some(i) = find_sub(spec, b"//") {
        cidr6 = cidr_length(spec.get(i + 2..).unwrap_or_default(), 128)?;
        spec = spec.get(..i).unwrap_or_default();
    }
    if let Some(i) = spec.iter().rposition(|&b| b == b'/') {
        let tail = spec.get(i + 1..).unwrap_or_default();
        // A `/` inside a macro-string is a literal; only a final run of
        // digits is a length.
        if tail.iter().all(u8::is_ascii_digit) {
            cidr4 = cidr_length(tail, 32)?;
            spec = spec.get(..i).unwrap_or_default();
        }
    }
    Ok((spec, cidr4, cidr6))
}

fn find_sub(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// ip4-cidr-length = "/" ("0" / %x31-39 0*1DIGIT), at most `max`
/// (likewise the IPv6 one, up to three digits).
fn cidr_length(digits: &[u8], max: u8) -> Result<u8, SyntaxError> {
    if digits.is_empty() || digits.len() > 3 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(SyntaxError);
    }
    if digits.len() > 1 && digits.first() == Some(&b'0') {
        return Err(SyntaxError);
    }
    let n = digits
        .iter()
        .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
    u8::try_from(n)
        .ok()
        .filter(|&n| n <= max)
        .ok_or(SyntaxError)
}

/// ip4-network = qnum "." qnum "." qnum "." qnum, qnum without leading zeros.
fn ip4(addr: &[u8]) -> Result<Ipv4Addr, SyntaxError> {
    let mut octets = [0u8; 4];
    let mut parts = addr.split(|&b| b == b'.');
    for octet in &mut octets {
        let part = parts.next().ok_or(SyntaxError)?;
        *octet = qnum(part)?;
    }
    if parts.next().is_some() {
        return Err(SyntaxError);
    }
    Ok(Ipv4Addr::from(octets))
}

fn qnum(part: &[u8]) -> Result<u8, SyntaxError> {
    if part.is_empty() || part.len() > 3 || !part.iter().all(u8::is_ascii_digit) {
        return Err(SyntaxError);
    }
    if part.len() > 1 && part.first() == Some(&b'0') {
        return Err(SyntaxError);
    }
    let n = part.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
    u8::try_from(n).map_err(|_| SyntaxError)
}
