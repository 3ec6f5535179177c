//! Facts from outside: what a decision may need that is neither in the
//! request nor in local state (DNS answers), asked for as [`Query`]s and
//! supplied as [`Answer`]s.
//!
//! The core does no I/O. A policy with a condition on an outside fact
//! (`client_address in dnsbl "zone"`, `fcrdns`, ...) makes the decision a small state
//! machine, in the sans-I/O manner of quinn-proto:
//!
//! 1. [`Engine::start`](crate::Engine::start) names every query it can know
//!    of for the request, all at once ([`Step::NeedFacts`](crate::Step::NeedFacts)): the caller sends
//!    them in parallel.
//! 2. The caller supplies each answer ([`Facts::supply`]), and at its
//!    deadline marks the rest unknown ([`Facts::expire`]).
//! 3. [`Engine::resume`](crate::Engine::resume) asks again if an answer
//!    leads to more queries, or decides ([`Step::Decided`](crate::Step::Decided)).
//!
//! [`Engine::decide_with`](crate::Engine::decide_with) runs this loop with a
//! blocking [`Resolver`]. [`Engine::decide`](crate::Engine::decide) decides
//! at once, every outside fact unknown.
//!
//! # Unknown facts
//!
//! A fact with no answer by the deadline (a timeout, SERVFAIL) is
//! *unknown*. A test on an unknown fact is unknown, and a condition is
//! unknown when its value depends on an unknown test: `not unknown` is
//! unknown, `false and unknown` is false, `true or unknown` is true. A rule
//! whose condition is unknown does not apply, and the walk goes on with the
//! next rule. The decision counts the unknown facts it met
//! ([`Decision::unknown_facts`](crate::Decision::unknown_facts)) for the log.
//!
//! # Allocation
//!
//! The facts of a request live in the connection's [`Scratch`](crate::Scratch),
//! in buffers that are cleared, never shrunk: once a connection has had a
//! request with as many queries, as long names and as many answered
//! addresses as any later one, asking and answering allocate nothing
//! (`benches/tests/zero_alloc.rs` proves it). A policy without outside facts
//! never touches them.

use std::fmt;
use std::net::IpAddr;
use std::ops::Range;

use crate::base::bytes::fnv1a_words;

/// The kind of a DNS query.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueryKind {
    /// IPv4 addresses of a name (a DNSBL lookup asks this). Answered with
    /// [`Answer::Addresses`].
    A,
    /// IPv6 addresses of a name. Answered with [`Answer::Addresses`].
    Aaaa,
    /// The texts of a name (a DNSBL's reason for a listing). Answered with
    /// [`Answer::Texts`].
    Txt,
    /// The names of an address (`2.0.0.127.in-addr.arpa`; reverse DNS).
    /// Answered with [`Answer::Names`].
    Ptr,
    /// The mail exchangers of a domain. Answered with [`Answer::Names`]: the
    /// exchangers' names, a null MX (RFC 7505, `0 .`) as the empty name.
    Mx,
}

impl QueryKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 5] = [Self::A, Self::Aaaa, Self::Txt, Self::Ptr, Self::Mx];

    /// The record type's name (`A`, `AAAA`, `TXT`, `PTR`, `MX`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::Aaaa => "AAAA",
            Self::Txt => "TXT",
            Self::Ptr => "PTR",
            Self::Mx => "MX",
        }
    }

    /// The record type's number in DNS messages (RFC 1035, RFC 3596).
    pub fn record_type(self) -> u16 {
        match self {
            Self::A => 1,
            Self::Aaaa => 28,
            Self::Txt => 16,
            Self::Ptr => 12,
            Self::Mx => 15,
        }
    }
}

/// One question a decision needs answered: a kind and a domain name (lower
/// case ASCII, no trailing dot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Query<'a> {
    /// What is asked.
    pub kind: QueryKind,
    /// Of which name, e.g. `2.0.0.127.zen.spamhaus.org`.
    pub name: &'a [u8],
}

impl fmt::Display for Query<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            String::from_utf8_lossy(self.name),
            self.kind.as_str()
        )
    }
}

/// The answer to a [`Query`].
///
/// A query answered with records of another shape than its kind's (names
/// to an `A` query) counts as [`Answer::NotFound`]; records of the right
/// shape but the other family (IPv6 addresses to an `A` query) are left
/// out.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer<'a> {
    /// The addresses found, for `A` and `AAAA`.
    Addresses(&'a [IpAddr]),
    /// The names found, for `PTR` and `MX`: lower case ASCII, no trailing
    /// dot; a null MX (RFC 7505) is the empty name.
    Names(&'a [&'a [u8]]),
    /// The texts found, for `TXT`: each record's strings joined.
    Texts(&'a [&'a [u8]]),
    /// The name does not exist or has no record of the kind (NXDOMAIN,
    /// NODATA): a definite "no".
    NotFound,
    /// No usable answer (timeout, SERVFAIL, refused): the fact is unknown.
    Unknown,
}

/// A query's place among the facts of the request in progress, to supply
/// its answer with ([`Facts::supply`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FactId(u32);

/// What is known of one query.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Pending,
    /// `Facts::addresses[range]`.
    Addresses(Range<u32>),
    /// Names or texts: `Facts::spans[range]`, each a range of `Facts::data`.
    Strings(Range<u32>),
    NotFound,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Fact {
    kind: QueryKind,
    /// A hash of the name, to find a query without comparing names.
    hash: u64,
    name: Range<u32>,
    state: State,
}

/// No fact: a slot entry not used, a query not asked.
pub(crate) const NONE: u32 = u32::MAX;

/// What one outside test asked for the request being decided: up to three
/// facts (their indices, [`NONE`] for none), and a list of linked facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    pub(crate) facts: [u32; 3],
    /// A range of [`Facts::links`]: the forward lookups of reverse DNS
    /// names; `(NONE, NONE)` until they were asked.
    pub(crate) links: (u32, u32),
}

impl Slot {
    const EMPTY: Self = Self {
        facts: [NONE; 3],
        links: (NONE, NONE),
    };
}

/// What a fact is for a test: known (the addresses or strings, maybe
/// none), or unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Known<'a> {
    Addresses(&'a [IpAddr]),
    Strings(Strings<'a>),
    Unknown,
}

/// The names or texts of an answered query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Strings<'a> {
    spans: &'a [Range<u32>],
    data: &'a [u8],
}

impl<'a> Strings<'a> {
    pub(crate) const NONE: Self = Self {
        spans: &[],
        data: &[],
    };

    pub(crate) fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The spans and the buffer they index (for a view that reads them
    /// the same way, SPF's).
    pub(crate) fn parts(&self) -> (&'a [Range<u32>], &'a [u8]) {
        (self.spans, self.data)
    }

    /// The `i`th name or text.
    pub(crate) fn get(&self, i: usize) -> Option<&'a [u8]> {
        let r = self.spans.get(i)?;
        self.data.get(r.start as usize..r.end as usize)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let data = self.data;
        self.spans.iter().map(move |r| {
            data.get(r.start as usize..r.end as usize)
                .unwrap_or_default()
        })
    }
}

/// The facts of the request being decided on one connection: the queries
/// asked and the answers supplied. Lives in the [`Scratch`](crate::Scratch);
/// reach it with [`Scratch::facts`](crate::Scratch::facts).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Facts {
    /// The deadline passed ([`Facts::expire`]): nothing more is asked.
    closed: bool,
    /// What each outside test of the policy asked (by its slot), so that
    /// evaluating it reads its facts without rebuilding names.
    slots: Vec<Slot>,
    /// Lists of facts a slot links to (forward lookups of reverse names).
    links: Vec<u32>,
    /// The SPF evaluation's result (`pass`, ...; empty before it has one)
    /// and explanation (`exp=`), for `$spf_result` and `$spf_explanation`.
    pub(crate) spf_result: &'static str,
    pub(crate) spf_explanation: Vec<u8>,
    /// The `Received-SPF:` header value of the result, for `$received_spf`.
    pub(crate) received_spf: Vec<u8>,
    /// The queries an SPF evaluation needs, between its run and asking
    /// them: kinds and name ranges of `spf_names`.
    pub(crate) spf_needs: Vec<(QueryKind, Range<u32>)>,
    pub(crate) spf_names: Vec<u8>,
    facts: Vec<Fact>,
    /// The query names, back to back.
    names: Vec<u8>,
    addresses: Vec<IpAddr>,
    /// The names and texts of answers, back to back.
    data: Vec<u8>,
    /// Each answered name or text: its range of `data`.
    spans: Vec<Range<u32>>,
}

/// The facts of a scratch that never needed any (a policy without outside
/// facts): empty.
pub(crate) static NO_FACTS: Facts = Facts::new();

impl Facts {
    pub(crate) const fn new() -> Self {
        Self {
            closed: false,
            slots: Vec::new(),
            links: Vec::new(),
            spf_result: "",
            spf_explanation: Vec::new(),
            received_spf: Vec::new(),
            spf_needs: Vec::new(),
            spf_names: Vec::new(),
            facts: Vec::new(),
            names: Vec::new(),
            addresses: Vec::new(),
            data: Vec::new(),
            spans: Vec::new(),
        }
    }

    /// Whether no query was asked yet (the first round of a request).
    pub(crate) fn is_empty(&self) -> bool {
        self.facts.is_empty()
    }

    /// Forget every query (a new request).
    pub(crate) fn clear(&mut self) {
        self.closed = false;
        self.slots.clear();
        self.links.clear();
        self.spf_result = "";
        self.spf_explanation.clear();
        self.received_spf.clear();
        self.facts.clear();
        self.names.clear();
        self.addresses.clear();
        self.data.clear();
        self.spans.clear();
    }

    /// Ask `kind` of `name` unless already asked; returns whether it was new.
    #[cfg(test)]
    pub(crate) fn ask(&mut self, kind: QueryKind, name: &[u8]) -> bool {
        self.ask_at(kind, name).1
    }

    /// Ask `kind` of `name` unless already asked (or the deadline passed:
    /// `None`); returns the fact's index and whether it was new.
    pub(crate) fn ask_at(&mut self, kind: QueryKind, name: &[u8]) -> (u32, bool) {
        let hash = fnv1a_words(name);
        if let Some(i) = self.find_hashed(kind, hash, name) {
            return (to_u32(i), false);
        }
        if self.closed {
            return (NONE, false);
        }
        let start = self.names.len();
        self.names.extend_from_slice(name);
        self.facts.push(Fact {
            kind,
            hash,
            name: to_u32(start)..to_u32(self.names.len()),
            state: State::Pending,
        });
        (to_u32(self.facts.len() - 1), true)
    }

    /// Make room for `n` slots, all empty (the first round of a request).
    pub(crate) fn open_slots(&mut self, n: usize) {
        self.slots.clear();
        self.slots.resize(n, Slot::EMPTY);
    }

    /// The facts outside test `slot` asked: `None` when it was never asked
    /// (no resolver was consulted, as in an explanation).
    pub(crate) fn slot(&self, slot: usize) -> Option<&Slot> {
        self.slots.get(slot)
    }

    pub(crate) fn slot_mut(&mut self, slot: usize) -> Option<&mut Slot> {
        self.slots.get_mut(slot)
    }

    /// Link `fact` to the list being built (see [`Slot::links`]).
    pub(crate) fn link(&mut self, fact: u32) {
        self.links.push(fact);
    }

    /// How many links there are (where a slot's list starts or ends).
    pub(crate) fn links_len(&self) -> u32 {
        to_u32(self.links.len())
    }

    /// The facts linked by `range` (see [`Slot::links`]).
    pub(crate) fn links(&self, range: (u32, u32)) -> &[u32] {
        self.links
            .get(range.0 as usize..range.1 as usize)
            .unwrap_or_default()
    }

    /// What is known of `kind` of `name` for an evaluation that reads
    /// answers by name (SPF): `None` while it is pending or was never
    /// asked, unless the deadline passed ([`Facts::expire`]): then
    /// [`Known::Unknown`].
    pub(crate) fn known_named(&self, kind: QueryKind, name: &[u8]) -> Option<Known<'_>> {
        let found = self
            .find_hashed(kind, fnv1a_words(name), name)
            .and_then(|i| self.facts.get(i))
            .and_then(|fact| self.known_fact(fact));
        match found {
            None if self.closed => Some(Known::Unknown),
            other => other,
        }
    }

    /// What is known of fact `index` (from [`Facts::ask_at`]): `None` while
    /// it is pending, or for [`NONE`].
    pub(crate) fn known_at(&self, index: u32) -> Option<Known<'_>> {
        let fact = self.facts.get(index as usize)?;
        self.known_fact(fact)
    }

    fn name(&self, fact: &Fact) -> &[u8] {
        self.names
            .get(fact.name.start as usize..fact.name.end as usize)
            .unwrap_or_default()
    }

    #[cfg(test)]
    fn find(&self, kind: QueryKind, name: &[u8]) -> Option<usize> {
        self.find_hashed(kind, fnv1a_words(name), name)
    }

    fn find_hashed(&self, kind: QueryKind, hash: u64, name: &[u8]) -> Option<usize> {
        self.facts
            .iter()
            .position(|f| f.hash == hash && f.kind == kind && self.name(f) == name)
    }

    /// What is known of `kind` of `name`: `None` when it was never asked
    /// or is still pending.
    #[cfg(test)]
    pub(crate) fn known(&self, kind: QueryKind, name: &[u8]) -> Option<Known<'_>> {
        let fact = self.facts.get(self.find(kind, name)?)?;
        self.known_fact(fact)
    }

    fn known_fact(&self, fact: &Fact) -> Option<Known<'_>> {
        let kind = fact.kind;
        Some(match &fact.state {
            State::Pending => return None,
            State::Addresses(range) => Known::Addresses(
                self.addresses
                    .get(range.start as usize..range.end as usize)
                    .unwrap_or_default(),
            ),
            State::Strings(range) => Known::Strings(Strings {
                spans: self
                    .spans
                    .get(range.start as usize..range.end as usize)
                    .unwrap_or_default(),
                data: &self.data,
            }),
            State::NotFound => match kind {
                QueryKind::A | QueryKind::Aaaa => Known::Addresses(&[]),
                QueryKind::Txt | QueryKind::Ptr | QueryKind::Mx => Known::Strings(Strings::NONE),
            },
            State::Unknown => Known::Unknown,
        })
    }

    /// The queries not answered yet, with the id to answer each with.
    pub fn pending(&self) -> impl Iterator<Item = (FactId, Query<'_>)> {
        self.facts
            .iter()
            .enumerate()
            .filter(|(_, f)| f.state == State::Pending)
            .map(|(i, f)| {
                (
                    FactId(to_u32(i)),
                    Query {
                        kind: f.kind,
                        name: self.name(f),
                    },
                )
            })
    }

    /// Whether some query is still waiting for its answer.
    pub fn is_waiting(&self) -> bool {
        self.facts.iter().any(|f| f.state == State::Pending)
    }

    /// Supply the answer to query `id` (from [`Facts::pending`]). An id
    /// from another request, or a query already answered, is ignored.
    pub fn supply(&mut self, id: FactId, answer: Answer<'_>) {
        let Some(fact) = self.facts.get_mut(id.0 as usize) else {
            return;
        };
        if fact.state != State::Pending {
            return;
        }
        fact.state = match answer {
            Answer::Addresses(found) if matches!(fact.kind, QueryKind::A | QueryKind::Aaaa) => {
                let start = self.addresses.len();
                // Only what the query asked for: an AAAA answer holds IPv6.
                self.addresses
                    .extend(found.iter().filter(|ip| match fact.kind {
                        QueryKind::A => ip.is_ipv4(),
                        _ => ip.is_ipv6(),
                    }));
                State::Addresses(to_u32(start)..to_u32(self.addresses.len()))
            }
            Answer::Names(found) if matches!(fact.kind, QueryKind::Ptr | QueryKind::Mx) => {
                store_strings(&mut self.data, &mut self.spans, found, true)
            }
            Answer::Texts(found) if fact.kind == QueryKind::Txt => {
                store_strings(&mut self.data, &mut self.spans, found, false)
            }
            // Records of another shape than the query's kind: nothing of
            // what was asked.
            Answer::Addresses(_) | Answer::Names(_) | Answer::Texts(_) => State::NotFound,
            Answer::NotFound => State::NotFound,
            Answer::Unknown => State::Unknown,
        };
    }

    /// The deadline passed: every query still pending is unknown, and no
    /// more are asked for this request.
    pub fn expire(&mut self) {
        self.closed = true;
        for fact in &mut self.facts {
            if fact.state == State::Pending {
                fact.state = State::Unknown;
            }
        }
    }

    /// How many queries ended unknown.
    pub(crate) fn unknown(&self) -> usize {
        self.facts
            .iter()
            .filter(|f| f.state == State::Unknown)
            .count()
    }
}

/// Store `found` (names: lower-cased, without a trailing dot) and return
/// the state that points at them.
fn store_strings(
    data: &mut Vec<u8>,
    spans: &mut Vec<Range<u32>>,
    found: &[&[u8]],
    names: bool,
) -> State {
    let first = spans.len();
    for item in found {
        let start = data.len();
        if names {
            let item = item.strip_suffix(b".").unwrap_or(item);
            let item = item.get(..MAX_NAME_BYTES).unwrap_or(item);
            data.extend(item.iter().map(u8::to_ascii_lowercase));
        } else {
            data.extend_from_slice(item);
        }
        spans.push(to_u32(start)..to_u32(data.len()));
    }
    State::Strings(to_u32(first)..to_u32(spans.len()))
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A blocking source of facts, for [`Engine::decide_with`](crate::Engine::decide_with):
/// a DNS resolver, a cache, or a test's fixed answers.
pub trait Resolver {
    /// The answer to `query`. Blocks at most until the caller's deadline;
    /// past it, answer [`Answer::Unknown`]. The answer is copied out before
    /// the next call.
    fn resolve(&mut self, query: Query<'_>) -> Answer<'_>;
}

/// The longest domain name, in bytes (RFC 1035: 255 on the wire, 253 as
/// text without the trailing dot).
pub const MAX_NAME_BYTES: usize = 253;

/// A query name built on the stack (no allocation): at most
/// [`MAX_NAME_BYTES`]; longer names are cut (and then match nothing).
#[derive(Clone, Copy)]
pub(crate) struct QueryName {
    buf: [u8; MAX_NAME_BYTES],
    len: usize,
    /// The address whose reversed form starts `buf` (its first
    /// `reversed_len` bytes), so that the next DNSBL name of the same
    /// address only changes the zone.
    reversed: Option<IpAddr>,
    reversed_len: usize,
}

impl QueryName {
    /// The empty name.
    pub(crate) const EMPTY: Self = Self {
        buf: [0; MAX_NAME_BYTES],
        len: 0,
        reversed: None,
        reversed_len: 0,
    };

    #[cfg(test)]
    fn new() -> Self {
        Self::EMPTY
    }

    fn push(&mut self, bytes: &[u8]) {
        let room = MAX_NAME_BYTES - self.len;
        let n = bytes.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// `name`, lower-cased, without a trailing dot.
    #[cfg(test)]
    pub(crate) fn of(name: &[u8]) -> Self {
        let mut out = Self::new();
        out.set_of(name);
        out
    }

    /// Make this the empty name.
    pub(crate) fn len_zero(&mut self) {
        self.len = 0;
        self.reversed = None;
    }

    /// Make this `name`, lower-cased, without a trailing dot.
    pub(crate) fn set_of(&mut self, name: &[u8]) {
        let name = name.strip_suffix(b".").unwrap_or(name);
        self.len = 0;
        self.reversed = None;
        self.push(name);
        self.buf[..self.len].make_ascii_lowercase();
    }

    /// The RHSBL query name of `domain` in `zone` (`domain.zone`, lower
    /// case; RFC 5782 section 2.3).
    #[cfg(test)]
    pub(crate) fn rhsbl(domain: &[u8], zone: &[u8]) -> Self {
        let mut out = Self::new();
        out.set_rhsbl(domain, zone);
        out
    }

    /// Make this the RHSBL query name of `domain` in `zone`.
    pub(crate) fn set_rhsbl(&mut self, domain: &[u8], zone: &[u8]) {
        self.set_of(domain);
        self.push(b".");
        self.push(zone);
    }

    /// The reverse DNS (PTR) query name of `ip`: under `in-addr.arpa` or
    /// `ip6.arpa` (RFC 1035 section 3.5, RFC 3596 section 2.5).
    #[cfg(test)]
    pub(crate) fn reverse(ip: IpAddr) -> Self {
        let mut out = Self::new();
        out.set_reverse(ip);
        out
    }

    /// Make this the reverse DNS (PTR) query name of `ip`.
    pub(crate) fn set_reverse(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(_) => self.set_dnsbl(ip, b"in-addr.arpa"),
            IpAddr::V6(_) => self.set_dnsbl(ip, b"ip6.arpa"),
        }
    }

    /// The DNSBL query name of `ip` in `zone`: IPv4 as its octets
    /// reversed (`2.0.0.127.zone`), IPv6 as its 32 nibbles reversed
    /// (RFC 5782 section 2.4).
    #[cfg(test)]
    pub(crate) fn dnsbl(ip: IpAddr, zone: &[u8]) -> Self {
        let mut out = Self::new();
        out.set_dnsbl(ip, zone);
        out
    }

    /// Make this the DNSBL query name of `ip` in `zone`.
    pub(crate) fn set_dnsbl(&mut self, ip: IpAddr, zone: &[u8]) {
        if self.reversed == Some(ip) {
            self.len = self.reversed_len;
            self.push(zone);
            return;
        }
        match ip {
            IpAddr::V4(v4) => {
                // At most 16 bytes: no bound to check.
                let mut len = 0;
                for &octet in v4.octets().iter().rev() {
                    if octet >= 100 {
                        self.buf[len] = b'0' + octet / 100;
                        len += 1;
                    }
                    if octet >= 10 {
                        self.buf[len] = b'0' + octet / 10 % 10;
                        len += 1;
                    }
                    self.buf[len] = b'0' + octet % 10;
                    self.buf[len + 1] = b'.';
                    len += 2;
                }
                self.len = len;
            }
            IpAddr::V6(v6) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                self.len = 0;
                for byte in v6.octets().iter().rev() {
                    self.push(&[
                        HEX[usize::from(byte & 0x0f)],
                        b'.',
                        HEX[usize::from(byte >> 4)],
                        b'.',
                    ]);
                }
            }
        }
        self.reversed = Some(ip);
        self.reversed_len = self.len;
        self.push(zone);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dnsbl_names_per_rfc_5782() {
        let name = |ip: &str, zone: &[u8]| {
            QueryName::dnsbl(ip.parse().unwrap(), zone)
                .as_bytes()
                .to_vec()
        };
        assert_eq!(name("192.0.2.99", b"bl.example"), b"99.2.0.192.bl.example");
        assert_eq!(name("127.0.0.2", b"zen.example"), b"2.0.0.127.zen.example");
        assert_eq!(name("10.100.255.0", b"z"), b"0.255.100.10.z");
        // RFC 5782 section 2.4's example.
        let out = name("2001:db8:1:2:3:4:567:89ab", b"ugly.example.com");
        assert_eq!(
            out,
            &b"b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ugly.example.com"[..]
        );
    }

    #[test]
    fn dnsbl_names_of_one_address_share_its_reversed_form() {
        let ip: IpAddr = "192.0.2.99".parse().unwrap();
        let mut name = QueryName::EMPTY;
        name.set_dnsbl(ip, b"zen.example");
        assert_eq!(name.as_bytes(), b"99.2.0.192.zen.example");
        name.set_dnsbl(ip, b"b.example");
        assert_eq!(name.as_bytes(), b"99.2.0.192.b.example");
        name.set_of(b"x.example");
        name.set_dnsbl(ip, b"c.example");
        assert_eq!(name.as_bytes(), b"99.2.0.192.c.example");
        name.set_dnsbl("2001:db8::1".parse().unwrap(), b"d");
        assert!(name.as_bytes().ends_with(b".8.b.d.0.1.0.0.2.d"));
        name.set_dnsbl(ip, b"e.example");
        assert_eq!(name.as_bytes(), b"99.2.0.192.e.example");
    }

    #[test]
    fn rhsbl_and_reverse_names() {
        let rhs = QueryName::rhsbl(b"Spam.Example.", b"dbl.example");
        assert_eq!(rhs.as_bytes(), b"spam.example.dbl.example");
        let rev = QueryName::reverse("192.0.2.1".parse().unwrap());
        assert_eq!(rev.as_bytes(), b"1.2.0.192.in-addr.arpa");
        let rev6 = QueryName::reverse("2001:db8::1".parse().unwrap());
        assert!(rev6.as_bytes().ends_with(b".8.b.d.0.1.0.0.2.ip6.arpa"));
        assert!(rev6.as_bytes().starts_with(b"1.0.0.0.0.0.0.0."));
        // Too long names are cut, never overflow.
        let long = [b'a'; 400];
        assert_eq!(QueryName::of(&long).as_bytes().len(), MAX_NAME_BYTES);
    }

    #[test]
    fn names_and_texts_are_stored_by_kind() {
        let mut facts = Facts::default();
        facts.ask(QueryKind::Ptr, b"1.2.0.192.in-addr.arpa");
        facts.ask(QueryKind::Txt, b"1.2.0.192.bl.example");
        facts.ask(QueryKind::Mx, b"example.org");
        facts.ask(QueryKind::A, b"mx.example.org");
        let ids: Vec<FactId> = facts.pending().map(|(id, _)| id).collect();
        facts.supply(
            ids[0],
            Answer::Names(&[b"Mail.Example.ORG.", b"other.example"]),
        );
        facts.supply(
            ids[1],
            Answer::Texts(&[b"Listed: see https://bl.example/?192.0.2.1"]),
        );
        facts.supply(ids[2], Answer::Names(&[b""]));
        // Names to an A query: the wrong shape, nothing of what was asked.
        facts.supply(ids[3], Answer::Names(&[b"x.example"]));
        let strings = |kind, name: &[u8]| match facts.known(kind, name) {
            Some(Known::Strings(s)) => s.iter().map(<[u8]>::to_vec).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            strings(QueryKind::Ptr, b"1.2.0.192.in-addr.arpa"),
            vec![b"mail.example.org".to_vec(), b"other.example".to_vec()]
        );
        assert_eq!(
            strings(QueryKind::Txt, b"1.2.0.192.bl.example"),
            vec![b"Listed: see https://bl.example/?192.0.2.1".to_vec()]
        );
        assert_eq!(
            strings(QueryKind::Mx, b"example.org"),
            vec![Vec::<u8>::new()]
        );
        assert_eq!(
            facts.known(QueryKind::A, b"mx.example.org"),
            Some(Known::Addresses(&[][..]))
        );
        for kind in QueryKind::ALL {
            assert!(!kind.as_str().is_empty());
            assert!(kind.record_type() > 0);
        }
    }

    #[test]
    fn facts_are_asked_once_answered_once_and_expire() {
        let mut facts = Facts::default();
        assert!(facts.ask(QueryKind::A, b"a.example"));
        assert!(!facts.ask(QueryKind::A, b"a.example"));
        assert!(facts.ask(QueryKind::Aaaa, b"a.example"));
        assert!(facts.ask(QueryKind::A, b"b.example"));
        let pending: Vec<(FactId, String)> =
            facts.pending().map(|(id, q)| (id, q.to_string())).collect();
        assert_eq!(pending.len(), 3);
        assert_eq!(pending[0].1, "a.example A");
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        let v6: IpAddr = "::1".parse().unwrap();
        facts.supply(pending[0].0, Answer::Addresses(&[ip, v6]));
        // A second answer to the same query is ignored.
        facts.supply(pending[0].0, Answer::NotFound);
        facts.supply(pending[1].0, Answer::NotFound);
        assert!(facts.is_waiting());
        assert_eq!(facts.known(QueryKind::A, b"b.example"), None);
        facts.expire();
        assert!(!facts.is_waiting());
        assert_eq!(
            facts.known(QueryKind::A, b"a.example"),
            Some(Known::Addresses(&[ip][..]))
        );
        assert_eq!(
            facts.known(QueryKind::Aaaa, b"a.example"),
            Some(Known::Addresses(&[][..]))
        );
        assert_eq!(
            facts.known(QueryKind::A, b"b.example"),
            Some(Known::Unknown)
        );
        assert_eq!(facts.known(QueryKind::A, b"never.example"), None);
        assert_eq!(facts.unknown(), 1);
        facts.clear();
        assert_eq!(facts.pending().count(), 0);
    }
}
