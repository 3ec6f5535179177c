//! `check_host()` (RFC 7208 section 4): the evaluation of one identity,
//! replayed from the start in each round until every answer it needs is in.

use std::net::IpAddr;

use super::dns::{DnsAnswer, SpfDns};
use super::macros::{expand, nibbles, uses_p, Name, Out, Values, MAX_NAME};
use super::parse::{is_spf, term, terms, Kind, Mechanism, Term};
use super::{Evaluation, SpfInput, SpfResult};
use crate::facts::{Query, QueryKind};

/// At most this many terms that query DNS (`include`, `a`, `mx`, `ptr`,
/// `exists`, `redirect`) per evaluation (section 4.6.4): past it, `permerror`.
pub(crate) const MAX_DNS_TERMS: u32 = 10;

/// At most this many lookups that find nothing (section 4.6.4, "void
/// lookups"): past it, `permerror`.
pub(crate) const MAX_VOID_LOOKUPS: u32 = 2;

/// At most this many exchangers of an `mx` mechanism are looked up; more is
/// a `permerror` (section 4.6.4).
pub(crate) const MAX_MX_NAMES: usize = 10;

/// At most this many names of a PTR answer are looked up; the rest are
/// ignored (section 4.6.4).
pub(crate) const MAX_PTR_NAMES: usize = 10;

/// Why evaluation stopped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// A result is known (an error, or the end of an `include`).
    Result(SpfResult),
    /// An answer is not known yet; the queries were asked.
    Pending,
}

type Step<T> = Result<T, Stop>;

const PERM: Stop = Stop::Result(SpfResult::PermError);
const TEMP: Stop = Stop::Result(SpfResult::TempError);

/// Evaluate SPF for `input` (RFC 7208 `check_host()`), reading DNS from
/// `dns`.
///
/// Returns [`Evaluation::Done`] with the result, or [`Evaluation::Pending`]
/// when an answer it needs is not known yet: it has then told `needs` every
/// query it can know of at this point (the lookup it stopped at and, for
/// the records already read, the direct lookups of their other terms,
/// within the limits), so that the caller can send them in parallel, add
/// the answers to its view and call again. Evaluation never blocks, and a
/// call with the same answers gives the same outcome.
///
/// For a `fail` whose record names an explanation (`exp=`), the expanded
/// explanation is written into `explanation` (cleared first; empty when
/// there is none, and then a default explanation is the caller's).
pub fn check_host<D: SpfDns + ?Sized>(
    input: &SpfInput<'_>,
    dns: &D,
    needs: &mut dyn FnMut(Query<'_>),
    explanation: &mut Vec<u8>,
) -> Evaluation {
    explanation.clear();
    if !valid_domain(input.domain) {
        return Evaluation::Done(SpfResult::None);
    }
    let mut eval = Eval {
        input,
        dns,
        needs,
        ip: input.client,
        terms: 0,
        voids: 0,
        prefetched: 0,
    };
    // Names are asked lower case, as the core's facts keep them.
    let mut domain = Name::new();
    domain.push(input.domain);
    let outcome = match eval.check(domain.finish(), false, explanation) {
        Ok(result) | Err(Stop::Result(result)) => Evaluation::Done(result),
        Err(Stop::Pending) => Evaluation::Pending,
    };
    if outcome != Evaluation::Done(SpfResult::Fail) {
        explanation.clear();
    }
    outcome
}

/// Whether `name` is a domain SPF checks (section 4.3): a fully qualified
/// name of labels of 1 to 63 bytes, at most 253 bytes (a trailing dot
/// aside), not a domain literal.
pub(crate) fn valid_domain(name: &[u8]) -> bool {
    let name = name.strip_suffix(b".").unwrap_or(name);
    name.len() <= MAX_NAME
        && name.contains(&b'.')
        && name.first() != Some(&b'[')
        && name
            .split(|&b| b == b'.')
            .all(|label| !label.is_empty() && label.len() <= 63)
}

struct Eval<'i, 'n, D: ?Sized> {
    input: &'i SpfInput<'i>,
    dns: &'i D,
    needs: &'n mut dyn FnMut(Query<'_>),
    /// The client address, an IPv4-mapped IPv6 address as IPv4 (section 5).
    ip: IpAddr,
    /// DNS-querying terms met so far.
    terms: u32,
    /// Lookups that found nothing so far.
    voids: u32,
    /// Terms whose lookups were asked ahead after a pending answer.
    prefetched: u32,
}

impl<'i, D: SpfDns + ?Sized> Eval<'i, '_, D> {
    /// The answer to `kind` of `name`, or ask for it.
    fn lookup(&mut self, kind: QueryKind, name: &[u8]) -> Step<DnsAnswer<'i>> {
        match self.dns.answer(kind, name) {
            Some(answer) => Ok(answer),
            None => {
                (self.needs)(Query { kind, name });
                Err(Stop::Pending)
            }
        }
    }

    /// Ask for `kind` of `name` if it is not known.
    fn ask_ahead(&mut self, kind: QueryKind, name: &[u8]) {
        if self.dns.answer(kind, name).is_none() {
            (self.needs)(Query { kind, name });
        }
    }

    fn address_kind(&self) -> QueryKind {
        match self.ip {
            IpAddr::V4(_) => QueryKind::A,
            IpAddr::V6(_) => QueryKind::Aaaa,
        }
    }

    fn count_term(&mut self) -> Step<()> {
        self.terms += 1;
        if self.terms > MAX_DNS_TERMS {
            return Err(PERM);
        }
        Ok(())
    }

    fn count_void(&mut self) -> Step<()> {
        self.voids += 1;
        if self.voids > MAX_VOID_LOOKUPS {
            return Err(PERM);
        }
        Ok(())
    }

    /// `check_host()` of `domain`: fetch its record, check its syntax,
    /// evaluate its terms.
    fn check(&mut self, domain: &[u8], in_include: bool, expl: &mut Vec<u8>) -> Step<SpfResult> {
        let records = match self.lookup(QueryKind::Txt, domain)? {
            DnsAnswer::Strings(list) => list,
            DnsAnswer::Unknown => return Err(TEMP),
            DnsAnswer::Addresses(_) | DnsAnswer::NotFound => return Ok(SpfResult::None),
        };
        let mut record = None;
        for r in records.iter().filter(|r| is_spf(r)) {
            if record.is_some() {
                return Err(PERM);
            }
            record = Some(r);
        }
        let Some(record) = record else {
            return Ok(SpfResult::None);
        };
        // Section 4.6: a syntax error anywhere is a permerror before any
        // term is evaluated; so is a second redirect= or exp=.
        let (mut redirect, mut exp) = (None, None);
        for t in terms(record) {
            match term(t).map_err(|_| PERM)? {
                Term::Redirect(spec) if redirect.replace(spec).is_some() => return Err(PERM),
                Term::Exp(spec) if exp.replace(spec).is_some() => return Err(PERM),
                _ => {}
            }
        }
        for (i, t) in terms(record).enumerate() {
            let Ok(Term::Mechanism(m)) = term(t) else {
                continue;
            };
            match self.mechanism(&m, domain, expl) {
                Ok(true) => {
                    if m.result == SpfResult::Fail && !in_include {
                        if let Some(spec) = exp {
                            self.explain(spec, domain, expl)?;
                        }
                    }
                    return Ok(m.result);
                }
                Ok(false) => {}
                Err(Stop::Pending) => {
                    self.ask_rest(record, i + 1, domain, redirect);
                    return Err(Stop::Pending);
                }
                Err(stop) => return Err(stop),
            }
        }
        let Some(spec) = redirect else {
            return Ok(SpfResult::Neutral);
        };
        self.count_term()?;
        let mut name = self.expand_domain(spec, domain)?;
        let target = name.finish();
        if !valid_domain(target) {
            return Err(PERM);
        }
        match self.check(target, in_include, expl)? {
            SpfResult::None => Err(PERM),
            result => Ok(result),
        }
    }

    /// After a pending answer: ask the direct lookups of the terms of
    /// `record` from `from` on (and of its redirect), within the limit of
    /// DNS-querying terms.
    fn ask_rest(&mut self, record: &[u8], from: usize, domain: &[u8], redirect: Option<&[u8]>) {
        let mechanisms = terms(record).skip(from).filter_map(|t| match term(t) {
            Ok(Term::Mechanism(m)) if m.kind.queries_dns() => Some(m),
            _ => None,
        });
        let redirect = redirect.map(|spec| Mechanism {
            result: SpfResult::Neutral,
            kind: Kind::Include,
            domain: Some(spec),
            cidr4: 32,
            cidr6: 128,
        });
        for m in mechanisms.chain(redirect) {
            if self.terms + self.prefetched >= MAX_DNS_TERMS {
                return;
            }
            self.prefetched += 1;
            if m.kind == Kind::Ptr {
                let mut name = Name::new();
                reverse_name(self.ip, &mut name);
                self.ask_ahead(QueryKind::Ptr, name.finish());
                continue;
            }
            let spec = m.domain.unwrap_or(domain);
            if m.domain.is_some() && uses_p(spec, false) {
                continue;
            }
            let mut name = Name::new();
            if expand(spec, &self.values(domain, b""), false, &mut name).is_err() {
                continue;
            }
            let kind = match m.kind {
                Kind::Include => QueryKind::Txt,
                Kind::Mx => QueryKind::Mx,
                Kind::Exists => QueryKind::A,
                _ => self.address_kind(),
            };
            let target = name.finish();
            if valid_domain(target) {
                self.ask_ahead(kind, target);
            }
        }
    }

    fn values<'v>(&'v self, domain: &'v [u8], validated: &'v [u8]) -> Values<'v> {
        Values {
            local: self.input.local,
            sender_domain: self.input.domain,
            domain,
            helo: self.input.helo,
            ip: self.ip,
            validated,
            receiver: self.input.receiver,
            now: self.input.now.as_unix_millis() / 1000,
        }
    }

    /// Expand a domain-spec (checked when the record was parsed), looking
    /// up the validated name first if it uses `%{p}`.
    fn expand_domain(&mut self, spec: &[u8], domain: &[u8]) -> Step<Name> {
        let mut out = Name::new();
        if uses_p(spec, false) {
            let mut validated = self.validated(domain)?;
            let validated = validated.finish();
            expand(spec, &self.values(domain, validated), false, &mut out).map_err(|_| PERM)?;
        } else {
            expand(spec, &self.values(domain, b""), false, &mut out).map_err(|_| PERM)?;
        }
        Ok(out)
    }

    /// The target of a mechanism: its domain-spec expanded, or the domain.
    fn target(&mut self, m: &Mechanism<'_>, domain: &[u8]) -> Step<Name> {
        match m.domain {
            Some(spec) => self.expand_domain(spec, domain),
            None => {
                let mut name = Name::new();
                name.push(domain);
                Ok(name)
            }
        }
    }

    /// Whether mechanism `m` matches (section 5).
    fn mechanism(&mut self, m: &Mechanism<'_>, domain: &[u8], expl: &mut Vec<u8>) -> Step<bool> {
        if m.kind.queries_dns() {
            self.count_term()?;
        }
        match m.kind {
            Kind::All => Ok(true),
            Kind::Ip4(net) => Ok(in_network(self.ip, IpAddr::V4(net), m.cidr4)),
            Kind::Ip6(net) => Ok(in_network(self.ip, IpAddr::V6(net), m.cidr6)),
            Kind::Include => {
                let mut name = self.target(m, domain)?;
                let target = name.finish();
                if !valid_domain(target) {
                    return Err(PERM);
                }
                match self.check(target, true, expl)? {
                    SpfResult::Pass => Ok(true),
                    SpfResult::Fail | SpfResult::SoftFail | SpfResult::Neutral => Ok(false),
                    SpfResult::TempError => Err(TEMP),
                    SpfResult::None | SpfResult::PermError => Err(PERM),
                }
            }
            Kind::A => {
                let mut name = self.target(m, domain)?;
                let target = name.finish();
                if !valid_domain(target) {
                    return Ok(false);
                }
                let kind = self.address_kind();
                match self.lookup(kind, target)? {
                    DnsAnswer::Addresses(found) if !found.is_empty() => {
                        Ok(found.iter().any(|&a| self.matches(a, m)))
                    }
                    DnsAnswer::Unknown => Err(TEMP),
                    _ => self.count_void().map(|()| false),
                }
            }
            Kind::Exists => {
                let mut name = self.target(m, domain)?;
                let target = name.finish();
                if !valid_domain(target) {
                    return Ok(false);
                }
                match self.lookup(QueryKind::A, target)? {
                    DnsAnswer::Addresses(found) if !found.is_empty() => Ok(true),
                    DnsAnswer::Unknown => Err(TEMP),
                    _ => self.count_void().map(|()| false),
                }
            }
            Kind::Mx => {
                let mut name = self.target(m, domain)?;
                let target = name.finish();
                if !valid_domain(target) {
                    return Ok(false);
                }
                let names = match self.lookup(QueryKind::Mx, target)? {
                    DnsAnswer::Strings(names) if !names.is_empty() => names,
                    DnsAnswer::Unknown => return Err(TEMP),
                    _ => return self.count_void().map(|()| false),
                };
                if names.len() > MAX_MX_NAMES {
                    return Err(PERM);
                }
                let kind = self.address_kind();
                let mut pending = false;
                for exchanger in names.iter().filter(|n| !n.is_empty()) {
                    match self.dns.answer(kind, exchanger) {
                        None => {
                            (self.needs)(Query {
                                kind,
                                name: exchanger,
                            });
                            pending = true;
                        }
                        Some(DnsAnswer::Addresses(found)) => {
                            if found.iter().any(|&a| self.matches(a, m)) {
                                return Ok(true);
                            }
                        }
                        Some(DnsAnswer::Unknown) => return Err(TEMP),
                        Some(_) => {}
                    }
                }
                if pending {
                    return Err(Stop::Pending);
                }
                Ok(false)
            }
            Kind::Ptr => {
                let mut name = self.target(m, domain)?;
                let target = name.finish();
                let mut reverse = Name::new();
                reverse_name(self.ip, &mut reverse);
                let names = match self.lookup(QueryKind::Ptr, reverse.finish())? {
                    DnsAnswer::Strings(names) if !names.is_empty() => names,
                    DnsAnswer::Unknown => return Ok(false),
                    _ => return self.count_void().map(|()| false),
                };
                let kind = self.address_kind();
                let mut pending = false;
                for candidate in names.iter().take(MAX_PTR_NAMES) {
                    if !is_within(candidate, target) {
                        continue;
                    }
                    match self.dns.answer(kind, candidate) {
                        None => {
                            (self.needs)(Query {
                                kind,
                                name: candidate,
                            });
                            pending = true;
                        }
                        Some(DnsAnswer::Addresses(found)) => {
                            if found.contains(&self.ip) {
                                return Ok(true);
                            }
                        }
                        Some(_) => {}
                    }
                }
                if pending {
                    return Err(Stop::Pending);
                }
                Ok(false)
            }
        }
    }

    /// Whether `addr` (an answer's) is in the client's network of the
    /// mechanism's CIDR length.
    fn matches(&self, addr: IpAddr, m: &Mechanism<'_>) -> bool {
        let len = if addr.is_ipv4() { m.cidr4 } else { m.cidr6 };
        in_network(self.ip, addr, len)
    }

    /// The validated domain name of the client (section 5.5, for `%{p}`):
    /// a PTR name whose addresses include the client's, the domain itself
    /// or a subdomain of it first; `unknown` when there is none.
    fn validated(&mut self, domain: &[u8]) -> Step<Name> {
        let mut reverse = Name::new();
        reverse_name(self.ip, &mut reverse);
        let mut out = Name::new();
        let DnsAnswer::Strings(names) = self.lookup(QueryKind::Ptr, reverse.finish())? else {
            out.push(b"unknown");
            return Ok(out);
        };
        let kind = self.address_kind();
        let mut pending = false;
        let mut best: Option<(u8, &[u8])> = None;
        for candidate in names.iter().take(MAX_PTR_NAMES) {
            let rank = if candidate.eq_ignore_ascii_case(domain) {
                0
            } else if is_within(candidate, domain) {
                1
            } else {
                2
            };
            if best.is_some_and(|(r, _)| r <= rank) {
                continue;
            }
            match self.dns.answer(kind, candidate) {
                None => {
                    (self.needs)(Query {
                        kind,
                        name: candidate,
                    });
                    pending = true;
                }
                Some(DnsAnswer::Addresses(found)) if found.contains(&self.ip) => {
                    best = Some((rank, candidate));
                }
                Some(_) => {}
            }
        }
        if pending {
            return Err(Stop::Pending);
        }
        out.push(best.map_or(&b"unknown"[..], |(_, name)| name));
        Ok(out)
    }

    /// Write the explanation of a `fail` (section 6.2): the TXT record at
    /// the expanded `exp=` domain, macro-expanded. Any error leaves none.
    fn explain(&mut self, spec: &[u8], domain: &[u8], expl: &mut Vec<u8>) -> Step<()> {
        expl.clear();
        let mut name = match self.expand_domain(spec, domain) {
            Ok(name) => name,
            Err(Stop::Pending) => return Err(Stop::Pending),
            Err(Stop::Result(_)) => return Ok(()),
        };
        let target = name.finish();
        if !valid_domain(target) {
            return Ok(());
        }
        let text = match self.lookup(QueryKind::Txt, target)? {
            DnsAnswer::Strings(texts) if texts.len() == 1 => texts.get(0).unwrap_or_default(),
            _ => return Ok(()),
        };
        let result = if uses_p(text, true) {
            let mut validated = self.validated(domain)?;
            let validated = validated.finish();
            expand(text, &self.values(domain, validated), true, expl)
        } else {
            expand(text, &self.values(domain, b""), true, expl)
        };
        if result.is_err() {
            expl.clear();
        }
        Ok(())
    }
}

/// Whether `name` is `domain` or a subdomain of it (ASCII case aside).
fn is_within(name: &[u8], domain: &[u8]) -> bool {
    let name = name.strip_suffix(b".").unwrap_or(name);
    if name.eq_ignore_ascii_case(domain) {
        return true;
    }
    name.len() > domain.len()
        && name
            .get(name.len() - domain.len()..)
            .is_some_and(|tail| tail.eq_ignore_ascii_case(domain))
        && name.get(name.len() - domain.len() - 1) == Some(&b'.')
}

/// The reverse DNS name of `ip` (`4.3.2.1.in-addr.arpa`, the nibbles of an
/// IPv6 address under `ip6.arpa`).
fn reverse_name(ip: IpAddr, out: &mut Name) {
    match ip {
        IpAddr::V4(ip) => {
            for (i, octet) in ip.octets().iter().rev().enumerate() {
                if i > 0 {
                    out.push(b".");
                }
                let mut digits = [0u8; 3];
                let mut n = *octet;
                let mut len = 0;
                loop {
                    if let Some(d) = digits.get_mut(len) {
                        *d = b'0' + n % 10;
                    }
                    len += 1;
                    n /= 10;
                    if n == 0 {
                        break;
                    }
                }
                for d in digits.iter().take(len).rev() {
                    out.push(&[*d]);
                }
            }
            out.push(b".in-addr.arpa");
        }
        IpAddr::V6(ip) => {
            nibbles(&ip.octets(), true, out);
            out.push(b".ip6.arpa");
        }
    }
}

/// Whether `client` is in `net`/`len` (of the same family).
fn in_network(client: IpAddr, net: IpAddr, len: u8) -> bool {
    match (client, net) {
        (IpAddr::V4(c), IpAddr::V4(n)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            u32::from(c) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(c), IpAddr::V6(n)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            u128::from(c) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}
