//! Tests on outside facts (DNS answers): DNS lists (DNSBL, RHSBL),
//! forward-confirmed reverse DNS, the HELO name's addresses, the sender
//! domain's mail exchangers. What each asks ([`Program::ask`]) and how each
//! reads the answers ([`Program::outside`]).
//!
//! Every test here is three-valued: `Some(true)`, `Some(false)`, or `None`
//! when it depends on a fact that is unknown (or not asked yet). The rule
//! walk evaluates rules with such tests by [`Program::holds3`].

use std::net::{IpAddr, Ipv4Addr};

use crate::facts::{Facts, Known, QueryKind, QueryName};
use crate::request::Request;
use crate::template::TextBuf;

use super::program::{Field, Program, Test};

/// How many names of a client's reverse DNS (PTR) forward-confirmed
/// reverse DNS looks up: Postfix and most resolvers stop at a few; a
/// client with more names is misconfigured or hostile (each name costs a
/// query).
pub const MAX_FCRDNS_NAMES: usize = 10;

/// Which side of a DNS list a test looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ListSide {
    /// An address list (`in dnsbl`): the reversed address under the zone.
    Dnsbl,
    /// A domain list (`in rhsbl`): the domain under the zone.
    Rhsbl,
}

/// One range of answers a DNS list's listing may have: an address from
/// `first` to `last`, or, as a bit mask, an address in `127.0.0.0/8` with
/// some bit of `mask` set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AnswerMatch {
    Range { first: u32, last: u32 },
    Mask(u32),
}

impl AnswerMatch {
    fn accepts(self, answer: u32) -> bool {
        match self {
            Self::Range { first, last } => (first..=last).contains(&answer),
            Self::Mask(mask) => answer >> 24 == 127 && answer & mask != 0,
        }
    }
}

/// A compiled DNS list: `dnsbl NAME { ... }`, `rhsbl NAME { ... }`, or an
/// inline `in dnsbl "zone"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DnsList {
    /// The declared name, or the zone of an inline list (for logs).
    pub(crate) name: Box<str>,
    pub(crate) side: ListSide,
    /// Lower case, no trailing dot.
    pub(crate) zone: Box<[u8]>,
    /// The answers that are listings; empty: any address in `127.0.0.0/8`
    /// (RFC 5782 section 2.1), except the `127.255.255.0/24` error codes
    /// (Spamhaus's "query refused", "typing error").
    pub(crate) answers: Box<[AnswerMatch]>,
    /// Also look up the TXT record of a listing (`$dnsbl_reason`).
    pub(crate) txt: bool,
}

impl DnsList {
    /// Whether `answer` (an `A` record of a listing's name) is a listing.
    pub(crate) fn accepts(&self, answer: IpAddr) -> bool {
        let IpAddr::V4(v4) = answer else {
            return false;
        };
        let bits = u32::from(v4);
        if self.answers.is_empty() {
            let [a, b, c, _] = v4.octets();
            return a == 127 && !(b == 255 && c == 255);
        }
        self.answers.iter().any(|m| m.accepts(bits))
    }

    /// The query name of `field` of `request` in this list, if the field
    /// has a value to look up.
    pub(crate) fn query_name(&self, field: Field, request: &Request<'_>) -> Option<QueryName> {
        match self.side {
            ListSide::Dnsbl => Some(QueryName::dnsbl(field.ip(request)?, &self.zone)),
            ListSide::Rhsbl => {
                let mut buf = TextBuf::new();
                let value = field.text(request, &mut buf);
                lookup_domain(value).map(|domain| QueryName::rhsbl(domain, &self.zone))
            }
        }
    }
}

/// `value` as a domain worth looking up in DNS: a name with a dot, not an
/// address or address literal, not Postfix's `unknown`; without a trailing
/// dot.
pub(crate) fn lookup_domain(value: &[u8]) -> Option<&[u8]> {
    let value = value.strip_suffix(b".").unwrap_or(value);
    if value.len() > crate::facts::MAX_NAME_BYTES || value.eq_ignore_ascii_case(b"unknown") {
        return None;
    }
    // One pass: every byte a letter, digit, `-`, `_` or a dot between
    // non-empty labels, at least one dot, and a last label not all digits.
    let mut label_len = 0usize;
    let mut label_digits = true;
    let mut dots = 0usize;
    for &b in value {
        if b == b'.' {
            if label_len == 0 {
                return None;
            }
            dots += 1;
            label_len = 0;
            label_digits = true;
        } else if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            label_len += 1;
            label_digits &= b.is_ascii_digit();
        } else {
            return None;
        }
    }
    (dots > 0 && label_len > 0 && !label_digits).then_some(value)
}

/// A test on outside facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Outside {
    /// `FIELD in dnsbl LIST` / `FIELD in rhsbl LIST`: `list` indexes
    /// [`Program::dns_lists`].
    List { field: Field, list: u32 },
    /// `fcrdns`: a name of the client address's reverse DNS resolves back
    /// to the address.
    Fcrdns,
    /// `helo_resolves`: the HELO name has an address (A or AAAA).
    HeloResolves,
    /// `helo_matches_client`: the HELO name resolves to the client address.
    HeloMatchesClient,
    /// `sender_domain_unknown`: the sender's domain has a null MX, or no MX
    /// and no address (Postfix's `reject_unknown_sender_domain`).
    SenderDomainUnknown,
}

impl Outside {
    /// The predicate named `name`, if it is one of the outside ones.
    pub(crate) fn predicate(name: &str) -> Option<Self> {
        Some(match name {
            "fcrdns" => Self::Fcrdns,
            "helo_resolves" => Self::HeloResolves,
            "helo_matches_client" => Self::HeloMatchesClient,
            "sender_domain_unknown" => Self::SenderDomainUnknown,
            _ => return None,
        })
    }
}

/// The kind of address record that holds addresses of `ip`'s family.
fn address_kind(ip: IpAddr) -> QueryKind {
    match ip {
        IpAddr::V4(_) => QueryKind::A,
        IpAddr::V6(_) => QueryKind::Aaaa,
    }
}

/// The HELO name as a domain to look up.
fn helo<'r>(request: &Request<'r>) -> Option<&'r [u8]> {
    lookup_domain(request.helo_name)
}

/// The address in a HELO address literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`).
fn helo_literal(request: &Request<'_>) -> Option<IpAddr> {
    let inner = request.helo_name.strip_prefix(b"[")?.strip_suffix(b"]")?;
    let inner = match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case(b"IPv6:") => inner.get(5..)?,
        _ => inner,
    };
    std::str::from_utf8(inner).ok()?.parse().ok()
}

/// What is known of `kind` of `name`: `None` if not known yet.
fn known<'f>(facts: &'f Facts, kind: QueryKind, name: &[u8]) -> Option<Known<'f>> {
    facts.known(kind, QueryName::of(name).as_bytes())
}

/// Whether the addresses of `kind` of `name` contain `ip`: three values.
fn resolves_to(facts: &Facts, kind: QueryKind, name: &[u8], ip: IpAddr) -> Option<bool> {
    match known(facts, kind, name)? {
        Known::Addresses(found) => Some(found.contains(&ip)),
        Known::Strings(_) => Some(false),
        Known::Unknown => None,
    }
}

/// Whether `kind` of `name` has records: three values.
fn has_records(facts: &Facts, kind: QueryKind, name: &[u8]) -> Option<bool> {
    match known(facts, kind, name)? {
        Known::Addresses(found) => Some(!found.is_empty()),
        Known::Strings(found) => Some(!found.is_empty()),
        Known::Unknown => None,
    }
}

/// Three-valued `or` of an iterator.
fn any3(values: impl IntoIterator<Item = Option<bool>>) -> Option<bool> {
    let mut unknown = false;
    for v in values {
        match v {
            Some(true) => return Some(true),
            Some(false) => {}
            None => unknown = true,
        }
    }
    if unknown {
        None
    } else {
        Some(false)
    }
}

impl Program {
    /// The value of outside test `test` for `request` with `facts`: `None`
    /// when it depends on a fact that is unknown or not asked.
    #[cold]
    #[inline(never)]
    pub(crate) fn outside(
        &self,
        test: Outside,
        request: &Request<'_>,
        facts: &Facts,
    ) -> Option<bool> {
        match test {
            Outside::List { field, list } => {
                let list = self.dns_lists.get(list as usize)?;
                let Some(name) = list.query_name(field, request) else {
                    // Nothing to look up: not listed.
                    return Some(false);
                };
                match facts.known(QueryKind::A, name.as_bytes())? {
                    Known::Addresses(found) => Some(found.iter().any(|&a| list.accepts(a))),
                    Known::Strings(_) => Some(false),
                    Known::Unknown => None,
                }
            }
            Outside::Fcrdns => {
                let Some(ip) = request.client_address else {
                    return Some(false);
                };
                let reverse = QueryName::reverse(ip);
                match facts.known(QueryKind::Ptr, reverse.as_bytes())? {
                    Known::Strings(names) => any3(
                        names
                            .iter()
                            .take(MAX_FCRDNS_NAMES)
                            .filter_map(lookup_domain)
                            .map(|name| resolves_to(facts, address_kind(ip), name, ip)),
                    ),
                    Known::Addresses(_) => Some(false),
                    Known::Unknown => None,
                }
            }
            Outside::HeloResolves => {
                let Some(name) = helo(request) else {
                    return Some(false);
                };
                any3([
                    has_records(facts, QueryKind::A, name),
                    has_records(facts, QueryKind::Aaaa, name),
                ])
            }
            Outside::HeloMatchesClient => {
                let Some(ip) = request.client_address else {
                    return Some(false);
                };
                if let Some(literal) = helo_literal(request) {
                    return Some(literal == ip);
                }
                let Some(name) = helo(request) else {
                    return Some(false);
                };
                resolves_to(facts, address_kind(ip), name, ip)
            }
            Outside::SenderDomainUnknown => {
                if request.sender.domain.is_empty() {
                    // The null sender, or no sender yet: nothing to check.
                    return Some(false);
                }
                let Some(domain) = lookup_domain(request.sender.domain) else {
                    // Not a name that can exist in DNS.
                    return Some(true);
                };
                sender_domain_unknown(facts, domain)
            }
        }
    }

    /// Ask, in `facts`, every query the policy may need for `request` now:
    /// the first lookups of every outside test, and the lookups that
    /// answers already in `facts` lead to (the addresses of reverse DNS
    /// names, the TXT of a listing). Returns whether a new query was asked.
    pub(crate) fn ask(&self, request: &Request<'_>, facts: &mut Facts) -> bool {
        // Later rounds ask only what answers lead to: the tests of one
        // round have asked all they will.
        let first = facts.is_empty();
        let mut asked = false;
        for node in &self.nodes {
            if let Some(test) = node.test.outside() {
                asked |= self.ask_for(test, request, facts, first);
            }
        }
        asked
    }

    /// [`Program::ask`] for one test; `first`: the first round.
    fn ask_for(&self, test: Outside, request: &Request<'_>, facts: &mut Facts, first: bool) -> bool {
        match test {
            Outside::List { field, list } => {
                let Some(list) = self.dns_lists.get(list as usize) else {
                    return false;
                };
                if !first && !list.txt {
                    return false;
                }
                let Some(name) = list.query_name(field, request) else {
                    return false;
                };
                let mut asked = facts.ask(QueryKind::A, name.as_bytes());
                if list.txt {
                    let listed = matches!(
                        facts.known(QueryKind::A, name.as_bytes()),
                        Some(Known::Addresses(found)) if found.iter().any(|&a| list.accepts(a))
                    );
                    if listed {
                        asked |= facts.ask(QueryKind::Txt, name.as_bytes());
                    }
                }
                asked
            }
            Outside::Fcrdns => {
                let Some(ip) = request.client_address else {
                    return false;
                };
                let reverse = QueryName::reverse(ip);
                let mut asked = facts.ask(QueryKind::Ptr, reverse.as_bytes());
                // The second round: the addresses of each name. The names
                // are copied out first (asking grows the buffers they are in).
                let mut names = [QueryName::EMPTY; MAX_FCRDNS_NAMES];
                let mut count = 0;
                if let Some(Known::Strings(found)) = facts.known(QueryKind::Ptr, reverse.as_bytes())
                {
                    for name in found
                        .iter()
                        .filter_map(lookup_domain)
                        .take(MAX_FCRDNS_NAMES)
                    {
                        if let Some(slot) = names.get_mut(count) {
                            *slot = QueryName::of(name);
                            count += 1;
                        }
                    }
                }
                for name in names.iter().take(count) {
                    asked |= facts.ask(address_kind(ip), name.as_bytes());
                }
                asked
            }
            // One round each.
            _ if !first => false,
            Outside::HeloResolves => match helo(request) {
                Some(name) => {
                    let name = QueryName::of(name);
                    let a = facts.ask(QueryKind::A, name.as_bytes());
                    facts.ask(QueryKind::Aaaa, name.as_bytes()) | a
                }
                None => false,
            },
            Outside::HeloMatchesClient => {
                match (request.client_address, helo(request), helo_literal(request)) {
                    (Some(ip), Some(name), None) => {
                        facts.ask(address_kind(ip), QueryName::of(name).as_bytes())
                    }
                    _ => false,
                }
            }
            Outside::SenderDomainUnknown => match lookup_domain(request.sender.domain) {
                Some(domain) => {
                    let name = QueryName::of(domain);
                    let mx = facts.ask(QueryKind::Mx, name.as_bytes());
                    let a = facts.ask(QueryKind::A, name.as_bytes());
                    facts.ask(QueryKind::Aaaa, name.as_bytes()) | a | mx
                }
                None => false,
            },
        }
    }

    /// `$dnsbl_reason` for a listing found by `test` (an `Outside::List`):
    /// the list's TXT record for it if asked and found, else `listed in
    /// NAME (ADDRESS)` written into `out`.
    pub(crate) fn dnsbl_reason(
        &self,
        test: Outside,
        request: &Request<'_>,
        facts: &Facts,
        out: &mut Vec<u8>,
    ) {
        let Outside::List { field, list } = test else {
            return;
        };
        let Some(list) = self.dns_lists.get(list as usize) else {
            return;
        };
        let Some(name) = list.query_name(field, request) else {
            return;
        };
        if let Some(Known::Strings(texts)) = facts.known(QueryKind::Txt, name.as_bytes()) {
            if let Some(text) = texts.iter().next() {
                out.extend_from_slice(text);
                return;
            }
        }
        out.extend_from_slice(b"listed in ");
        out.extend_from_slice(list.name.as_bytes());
        if let Some(Known::Addresses(found)) = facts.known(QueryKind::A, name.as_bytes()) {
            if let Some(IpAddr::V4(answer)) = found.iter().copied().find(|&a| list.accepts(a)) {
                out.extend_from_slice(b" (");
                let mut quad = [0u8; 15];
                let len = crate::base::bytes::dotted_quad(answer.octets(), &mut quad);
                out.extend_from_slice(quad.get(..len).unwrap_or_default());
                out.push(b')');
            }
        }
    }
}

/// `sender_domain_unknown` of `domain`: a null MX, or no MX and no address.
fn sender_domain_unknown(facts: &Facts, domain: &[u8]) -> Option<bool> {
    let mx = match known(facts, QueryKind::Mx, domain) {
        Some(Known::Strings(names)) if !names.is_empty() => {
            // A null MX (RFC 7505): the domain accepts no mail.
            return Some(names.iter().all(<[u8]>::is_empty));
        }
        Some(Known::Unknown) | None => None,
        Some(_) => Some(false),
    };
    let addresses = any3([
        has_records(facts, QueryKind::A, domain),
        has_records(facts, QueryKind::Aaaa, domain),
    ]);
    match (mx, addresses) {
        // An address: the domain exists (a null MX hidden by an unknown MX
        // answer is not assumed).
        (_, Some(true)) => Some(false),
        (Some(false), Some(false)) => Some(true),
        _ => None,
    }
}

impl Test {
    /// The outside test this is, if it is one: the one place that says
    /// which tests need outside facts.
    #[inline]
    pub(crate) fn outside(&self) -> Option<Outside> {
        match *self {
            Self::Outside(test) => Some(test),
            _ => None,
        }
    }
}

/// An IPv4 address as a `u32`, for answer ranges.
pub(crate) fn ipv4_bits(ip: Ipv4Addr) -> u32 {
    u32::from(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_domains() {
        assert_eq!(
            lookup_domain(b"mail.example.org."),
            Some(&b"mail.example.org"[..])
        );
        assert_eq!(lookup_domain(b"Example.ORG"), Some(&b"Example.ORG"[..]));
        for bad in [
            &b""[..],
            b"localhost",
            b"unknown",
            b"[192.0.2.1]",
            b"192.0.2.1",
            b"a..b",
            b".example",
            b"ex ample.org",
            b"2001:db8::1",
        ] {
            assert_eq!(lookup_domain(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn answers_accepted() {
        let list = |answers: Vec<AnswerMatch>| DnsList {
            name: "l".into(),
            side: ListSide::Dnsbl,
            zone: b"bl.example".to_vec().into(),
            answers: answers.into(),
            txt: false,
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let any = list(vec![]);
        assert!(any.accepts(ip("127.0.0.2")));
        assert!(any.accepts(ip("127.0.1.99")));
        assert!(!any.accepts(ip("127.255.255.254")));
        assert!(!any.accepts(ip("192.0.2.1")));
        assert!(!any.accepts(ip("::1")));
        let spamhaus = list(vec![
            AnswerMatch::Range {
                first: ipv4_bits("127.0.0.2".parse().unwrap()),
                last: ipv4_bits("127.0.0.3".parse().unwrap()),
            },
            AnswerMatch::Range {
                first: ipv4_bits("127.0.0.9".parse().unwrap()),
                last: ipv4_bits("127.0.0.9".parse().unwrap()),
            },
        ]);
        assert!(spamhaus.accepts(ip("127.0.0.3")));
        assert!(spamhaus.accepts(ip("127.0.0.9")));
        assert!(!spamhaus.accepts(ip("127.0.0.10")));
        let surbl = list(vec![AnswerMatch::Mask(0b1000)]);
        assert!(surbl.accepts(ip("127.0.0.8")));
        assert!(surbl.accepts(ip("127.0.0.24")));
        assert!(!surbl.accepts(ip("127.0.0.4")));
        assert!(!surbl.accepts(ip("10.0.0.8")));
    }

    #[test]
    fn helo_literals() {
        let r = |helo: &'static [u8]| Request {
            helo_name: helo,
            ..Request::default()
        };
        assert_eq!(
            helo_literal(&r(b"[192.0.2.1]")),
            Some("192.0.2.1".parse().unwrap())
        );
        assert_eq!(
            helo_literal(&r(b"[IPv6:2001:db8::1]")),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(helo_literal(&r(b"mail.example")), None);
        assert_eq!(helo_literal(&r(b"[nonsense]")), None);
    }
}
