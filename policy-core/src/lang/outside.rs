//! Tests on outside facts (DNS answers): DNS lists (DNSBL, RHSBL),
//! forward-confirmed reverse DNS, the HELO name's addresses, the sender
//! domain's mail exchangers. What each asks ([`Program::ask`]) and how each
//! reads the answers ([`Program::outside`]).
//!
//! Every test here is three-valued: `Some(true)`, `Some(false)`, or `None`
//! when it depends on a fact that is unknown (or not asked yet). The rule
//! walk evaluates rules with such tests by [`Program::holds3`].

use std::net::{IpAddr, Ipv4Addr};

use crate::base::time::Timestamp;
use crate::facts::{Facts, Known, QueryKind, QueryName, Slot, NONE};
use crate::request::Request;
use crate::spf::{check_host, Evaluation, SpfInput, SpfResult};
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

    /// Write the query name of `field` of `request` in this list into
    /// `name`; `false` if the field has no value to look up. `domains` are
    /// the request's domains already checked.
    pub(crate) fn query_name(
        &self,
        field: Field,
        request: &Request<'_>,
        domains: &Domains<'_>,
        name: &mut QueryName,
    ) -> bool {
        match self.side {
            ListSide::Dnsbl => match field.ip(request) {
                Some(ip) => {
                    name.set_dnsbl(ip, &self.zone);
                    true
                }
                None => false,
            },
            ListSide::Rhsbl => {
                let domain = match field {
                    Field::HeloName => domains.helo,
                    Field::SenderDomain => domains.sender,
                    _ => {
                        let mut buf = TextBuf::new();
                        let value = field.text(request, &mut buf);
                        return match lookup_domain(value) {
                            Some(domain) => {
                                name.set_rhsbl(domain, &self.zone);
                                true
                            }
                            None => false,
                        };
                    }
                };
                match domain {
                    Some(domain) => {
                        name.set_rhsbl(domain, &self.zone);
                        true
                    }
                    None => false,
                }
            }
        }
    }
}

/// The request's domains that several tests look up, checked once
/// ([`lookup_domain`]).
pub(crate) struct Domains<'r> {
    pub(crate) helo: Option<&'r [u8]>,
    pub(crate) sender: Option<&'r [u8]>,
}

impl<'r> Domains<'r> {
    /// The domains of `request` that `program`'s tests look up (the others
    /// `None`, never read).
    fn of(request: &Request<'r>, program: &Program) -> Self {
        Self {
            helo: if program.reads_helo {
                lookup_domain(request.helo_name)
            } else {
                None
            },
            sender: if program.reads_sender {
                lookup_domain(request.sender.domain)
            } else {
                None
            },
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
    // One branch-free pass over a byte-class table: every byte a letter,
    // digit, `-`, `_` or a dot between non-empty labels.
    let mut bad = 0u8;
    let mut previous = DOT;
    for &b in value {
        let class = NAME_CLASS[usize::from(b)];
        bad |= class & INVALID | class & previous & DOT;
        previous = class;
    }
    // At least one dot, not at the end, and a last label not all digits
    // (an IPv4 address).
    let last_dot = value.iter().rposition(|&b| b == b'.')?;
    let last = value.get(last_dot + 1..)?;
    (bad == 0 && !last.is_empty() && !last.iter().all(u8::is_ascii_digit)).then_some(value)
}

/// Byte classes of [`lookup_domain`], as bits: a byte no name holds, a dot.
const INVALID: u8 = 1;
const DOT: u8 = 2;

/// The class of every byte in a domain name: 0 for a letter, digit, `-` or
/// `_`.
const NAME_CLASS: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = if c.is_ascii_alphanumeric() || c == b'-' || c == b'_' {
            0
        } else if c == b'.' {
            DOT
        } else {
            INVALID
        };
        b += 1;
    }
    table
};

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
    /// `spf == RESULT`: the SPF result of the MAIL FROM identity (the HELO
    /// identity for the null sender) is `result`. Every `spf` test shares
    /// one slot, one evaluation ([`Outside::slot_key`]).
    Spf { result: SpfResult },
}

impl Outside {
    /// What decides the test's slot: the test itself, but for `spf`, whose
    /// tests all read one evaluation.
    pub(crate) fn slot_key(self) -> Self {
        match self {
            Self::Spf { .. } => Self::Spf {
                result: SpfResult::None,
            },
            other => other,
        }
    }

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

/// The address in a HELO address literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`).
fn helo_literal(request: &Request<'_>) -> Option<IpAddr> {
    let inner = request.helo_name.strip_prefix(b"[")?.strip_suffix(b"]")?;
    let inner = match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case(b"IPv6:") => inner.get(5..)?,
        _ => inner,
    };
    std::str::from_utf8(inner).ok()?.parse().ok()
}

/// Whether the addresses of fact `index` contain `ip`: three values.
fn resolves_to(facts: &Facts, index: u32, ip: IpAddr) -> Option<bool> {
    match facts.known_at(index)? {
        Known::Addresses(found) => Some(found.contains(&ip)),
        Known::Strings(_) => Some(false),
        Known::Unknown => None,
    }
}

/// Whether fact `index` has records: three values.
fn has_records(facts: &Facts, index: u32) -> Option<bool> {
    match facts.known_at(index)? {
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
    /// The value of outside test `test` (slot `slot`) for `request` with
    /// `facts`: `None` when it depends on a fact that is unknown, pending,
    /// or was never asked (no resolver was consulted).
    #[cold]
    #[inline(never)]
    pub(crate) fn outside(
        &self,
        test: Outside,
        slot: u16,
        request: &Request<'_>,
        facts: &Facts,
    ) -> Option<bool> {
        let &Slot {
            facts: [first, second, third],
            links,
        } = facts.slot(usize::from(slot))?;
        match test {
            Outside::List { list, .. } => {
                if first == NONE {
                    // Nothing to look up: not listed.
                    return Some(false);
                }
                let list = self.dns_lists.get(list as usize)?;
                match facts.known_at(first)? {
                    Known::Addresses(found) => Some(found.iter().any(|&a| list.accepts(a))),
                    Known::Strings(_) => Some(false),
                    Known::Unknown => None,
                }
            }
            Outside::Fcrdns => {
                let (Some(ip), false) = (request.client_address, first == NONE) else {
                    return Some(false);
                };
                match facts.known_at(first)? {
                    Known::Strings(names) if names.is_empty() => Some(false),
                    Known::Strings(_) => {
                        if links.0 == NONE {
                            // The forward lookups were never asked.
                            return None;
                        }
                        any3(
                            facts
                                .links(links)
                                .iter()
                                .map(|&fact| resolves_to(facts, fact, ip)),
                        )
                    }
                    Known::Addresses(_) => Some(false),
                    Known::Unknown => None,
                }
            }
            Outside::HeloResolves => {
                if first == NONE {
                    return Some(false);
                }
                any3([has_records(facts, first), has_records(facts, second)])
            }
            Outside::HeloMatchesClient => {
                let Some(ip) = request.client_address else {
                    return Some(false);
                };
                if let Some(literal) = helo_literal(request) {
                    return Some(literal == ip);
                }
                if first == NONE {
                    return Some(false);
                }
                resolves_to(facts, first, ip)
            }
            Outside::Spf { result } => {
                // The result's code, once the evaluation has one.
                let code = first;
                if code == NONE {
                    return if request.client_address.is_none() {
                        Some(false)
                    } else {
                        None
                    };
                }
                Some(code == spf_code(result))
            }
            Outside::SenderDomainUnknown => {
                if request.sender.domain.is_empty() {
                    // The null sender, or no sender yet: nothing to check.
                    return Some(false);
                }
                if first == NONE {
                    // Not a name that can exist in DNS.
                    return Some(true);
                }
                sender_domain_unknown(facts, [first, second, third])
            }
        }
    }

    /// Ask, in `facts`, every query the policy may need for `request` now:
    /// in the first round, the lookups of every outside test; later, the
    /// lookups that answers lead to (the addresses of reverse DNS names,
    /// the TXT of a listing). Returns whether a new query was asked.
    pub(crate) fn ask(&self, request: &Request<'_>, now: Timestamp, facts: &mut Facts) -> bool {
        let first = facts.is_empty();
        let mut asked = false;
        if first {
            facts.open_slots(self.outside_tests.len());
            let domains = Domains::of(request, self);
            let mut name = QueryName::EMPTY;
            for (slot, &test) in self.outside_tests.iter().enumerate() {
                asked |= self.ask_first(test, slot, request, &domains, &mut name, facts);
            }
        }
        if !first || self.chained_spf {
            for &slot in &self.chained {
                let slot = usize::from(slot);
                if let Some(&test) = self.outside_tests.get(slot) {
                    asked |= match test {
                        Outside::Spf { .. } => ask_spf(slot, request, now, facts),
                        _ if first => false,
                        _ => self.ask_later(test, slot, request, facts),
                    };
                }
            }
        }
        asked
    }

    /// The first round of [`Program::ask`] for one test, in its slot;
    /// `name` is a buffer to build query names in.
    fn ask_first(
        &self,
        test: Outside,
        slot: usize,
        request: &Request<'_>,
        domains: &Domains<'_>,
        name: &mut QueryName,
        facts: &mut Facts,
    ) -> bool {
        let mut asked = false;
        let mut ask = |facts: &mut Facts, i: usize, kind: QueryKind, name: &[u8]| {
            let (index, new) = facts.ask_at(kind, name);
            asked |= new;
            if let Some(entry) = facts.slot_mut(slot).and_then(|s| s.facts.get_mut(i)) {
                *entry = index;
            }
        };
        match test {
            Outside::List { field, list } => {
                if let Some(list) = self.dns_lists.get(list as usize) {
                    if list.query_name(field, request, domains, name) {
                        ask(facts, 0, QueryKind::A, name.as_bytes());
                    }
                }
            }
            Outside::Fcrdns => {
                if let Some(ip) = request.client_address {
                    name.set_reverse(ip);
                    ask(facts, 0, QueryKind::Ptr, name.as_bytes());
                }
            }
            Outside::HeloResolves => {
                if let Some(helo) = domains.helo {
                    name.set_of(helo);
                    ask(facts, 0, QueryKind::A, name.as_bytes());
                    ask(facts, 1, QueryKind::Aaaa, name.as_bytes());
                }
            }
            Outside::HeloMatchesClient => {
                if let (Some(ip), Some(helo), None) =
                    (request.client_address, domains.helo, helo_literal(request))
                {
                    name.set_of(helo);
                    ask(facts, 0, address_kind(ip), name.as_bytes());
                }
            }
            // Asked by `ask_spf`, every round.
            Outside::Spf { .. } => {}
            Outside::SenderDomainUnknown => {
                if let Some(domain) = domains.sender {
                    name.set_of(domain);
                    ask(facts, 0, QueryKind::Mx, name.as_bytes());
                    ask(facts, 1, QueryKind::A, name.as_bytes());
                    ask(facts, 2, QueryKind::Aaaa, name.as_bytes());
                }
            }
        }
        asked
    }

    /// A later round of [`Program::ask`] for one test: what its answers
    /// lead to (a listing's TXT, the addresses of reverse DNS names).
    fn ask_later(
        &self,
        test: Outside,
        slot: usize,
        request: &Request<'_>,
        facts: &mut Facts,
    ) -> bool {
        let Some(&Slot {
            facts: [first, second, _],
            links,
        }) = facts.slot(slot)
        else {
            return false;
        };
        match test {
            Outside::List { field, list } => {
                let Some(list) = self.dns_lists.get(list as usize) else {
                    return false;
                };
                if !list.txt || second != NONE {
                    return false;
                }
                let listed = matches!(
                    facts.known_at(first),
                    Some(Known::Addresses(found)) if found.iter().any(|&ip| list.accepts(ip))
                );
                if !listed {
                    return false;
                }
                let mut name = QueryName::EMPTY;
                let domains = Domains::of(request, self);
                if !list.query_name(field, request, &domains, &mut name) {
                    return false;
                }
                let (index, new) = facts.ask_at(QueryKind::Txt, name.as_bytes());
                if let Some(s) = facts.slot_mut(slot) {
                    s.facts[1] = index;
                }
                new
            }
            Outside::Fcrdns => {
                let Some(ip) = request.client_address else {
                    return false;
                };
                if links.0 != NONE || !matches!(facts.known_at(first), Some(Known::Strings(_))) {
                    // Asked already, or no names (yet).
                    return false;
                }
                // The addresses of each name, one at a time (asking grows
                // the buffers the names are in).
                let mut asked = false;
                let mut linked = [NONE; MAX_FCRDNS_NAMES];
                let mut name = QueryName::EMPTY;
                // The names come from DNS, lower-cased and without a
                // trailing dot (`Facts::supply`): only empty ones are left
                // out; a junk name's lookup fails as any other.
                let mut i = 0;
                for entry in &mut linked {
                    name.len_zero();
                    while let Some(Known::Strings(found)) = facts.known_at(first) {
                        match found.get(i) {
                            Some([]) => i += 1,
                            Some(n) => {
                                name.set_of(n);
                                break;
                            }
                            None => break,
                        }
                    }
                    if name.as_bytes().is_empty() {
                        break;
                    }
                    i += 1;
                    let (index, new) = facts.ask_at(address_kind(ip), name.as_bytes());
                    asked |= new;
                    *entry = index;
                }
                let start = facts.links_len();
                for &fact in linked.iter().take_while(|&&f| f != NONE) {
                    facts.link(fact);
                }
                let end = facts.links_len();
                if let Some(s) = facts.slot_mut(slot) {
                    s.links = (start, end);
                }
                asked
            }
            Outside::HeloResolves
            | Outside::HeloMatchesClient
            | Outside::SenderDomainUnknown
            | Outside::Spf { .. } => false,
        }
    }

    /// `$dnsbl_reason` for a listing found by the DNS list test of slot
    /// `slot`: the list's TXT record for it if asked and found, else
    /// `listed in NAME (ADDRESS)`, written into `out`.
    pub(crate) fn dnsbl_reason(&self, slot: u16, facts: &Facts, out: &mut Vec<u8>) {
        let Some(Outside::List { list, .. }) = self.outside_tests.get(usize::from(slot)) else {
            return;
        };
        let (
            Some(list),
            Some(&Slot {
                facts: [a, txt, _], ..
            }),
        ) = (
            self.dns_lists.get(*list as usize),
            facts.slot(usize::from(slot)),
        )
        else {
            return;
        };
        if let Some(Known::Strings(texts)) = facts.known_at(txt) {
            if let Some(text) = texts.iter().next() {
                out.extend_from_slice(text);
                return;
            }
        }
        out.extend_from_slice(b"listed in ");
        out.extend_from_slice(list.name.as_bytes());
        if let Some(Known::Addresses(found)) = facts.known_at(a) {
            if let Some(IpAddr::V4(answer)) = found.iter().copied().find(|&ip| list.accepts(ip)) {
                let mut quad = [0u8; 15];
                let len = crate::base::bytes::dotted_quad(answer.octets(), &mut quad);
                out.push(b' ');
                out.push(b'(');
                out.extend_from_slice(quad.get(..len).unwrap_or_default());
                out.push(b')');
            }
        }
    }
}

/// An SPF result as a slot keeps it.
fn spf_code(result: SpfResult) -> u32 {
    match result {
        SpfResult::None => 0,
        SpfResult::Neutral => 1,
        SpfResult::Pass => 2,
        SpfResult::Fail => 3,
        SpfResult::SoftFail => 4,
        SpfResult::TempError => 5,
        SpfResult::PermError => 6,
    }
}

/// Run the SPF evaluation of `request` (slot `slot`) on the answers in
/// `facts`, from the start (it is replayable): ask what it needs, or keep
/// its result in the slot (and its explanation in `facts`). Returns
/// whether a new query was asked.
fn ask_spf(slot: usize, request: &Request<'_>, now: Timestamp, facts: &mut Facts) -> bool {
    let Some(client) = request.client_address else {
        return false;
    };
    if facts.slot(slot).is_some_and(|s| s.facts[0] != NONE) {
        // Evaluated already.
        return false;
    }
    let input = SpfInput::mail_from(client, request.sender.raw, request.helo_name, now);
    // The buffers move out while the facts are read, and back: no
    // allocation once they have grown.
    let mut needs = std::mem::take(&mut facts.spf_needs);
    let mut names = std::mem::take(&mut facts.spf_names);
    let mut explanation = std::mem::take(&mut facts.spf_explanation);
    needs.clear();
    names.clear();
    let outcome = check_host(
        &input,
        &*facts,
        &mut |q| {
            let start = names.len();
            names.extend_from_slice(q.name);
            let end = names.len();
            needs.push((
                q.kind,
                u32::try_from(start).unwrap_or(u32::MAX)..u32::try_from(end).unwrap_or(u32::MAX),
            ));
        },
        &mut explanation,
    );
    let mut asked = false;
    match outcome {
        Evaluation::Done(result) => {
            if let Some(s) = facts.slot_mut(slot) {
                s.facts[0] = spf_code(result);
            }
            facts.spf_result = result.as_str();
            facts.received_spf.clear();
            input.received_spf(result, &mut facts.received_spf);
        }
        Evaluation::Pending => {
            for (kind, range) in &needs {
                let name = names
                    .get(range.start as usize..range.end as usize)
                    .unwrap_or_default();
                asked |= facts.ask_at(*kind, name).1;
            }
        }
    }
    facts.spf_needs = needs;
    facts.spf_names = names;
    facts.spf_explanation = explanation;
    asked
}

/// `sender_domain_unknown` from the facts of the domain's MX, A and AAAA:
/// a null MX, or no MX and no address.
fn sender_domain_unknown(facts: &Facts, [mx, a, aaaa]: [u32; 3]) -> Option<bool> {
    let mx = match facts.known_at(mx) {
        Some(Known::Strings(names)) if !names.is_empty() => {
            // A null MX (RFC 7505): the domain accepts no mail.
            return Some(names.iter().all(<[u8]>::is_empty));
        }
        Some(Known::Unknown) | None => None,
        Some(_) => Some(false),
    };
    let addresses = any3([has_records(facts, a), has_records(facts, aaaa)]);
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
            Self::Outside(test, _) => Some(test),
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
