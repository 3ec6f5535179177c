//! One connection's DNS client: the round of a decision's queries, all in
//! flight at once over UDP, TCP for a truncated answer, retries on the
//! next server, the deadline.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::ops::Range;
use std::time::{Duration, Instant};

use policy_core::facts::{Answer, FactId, Facts, QueryKind};
use policy_core::{Engine, Policy};

use crate::dns::message::{self, Reply};
use crate::shared::dns::{DnsShared, Records, ZoneChange};

/// Largest UDP answer read: 4096 bytes. Servers send at most the
/// [`message::EDNS_PAYLOAD`] announced; a larger datagram (a server that
/// ignores EDNS) is still read whole up to this, and cut past it (then it
/// does not parse and is ignored, and the query is retried).
pub(crate) const MAX_UDP_REPLY_BYTES: usize = 4096;

/// Each try of a query waits at most this part of the deadline before the
/// query is sent again, to the next server: a third, so a query gets three
/// tries within the deadline (with one server, the same server thrice).
pub(crate) const TRIES_PER_DEADLINE: u32 = 3;

/// The shortest wait of a try, whatever the deadline: 50 ms, below which a
/// retry would only duplicate an answer on its way.
pub(crate) const MIN_TRY_TIMEOUT: Duration = Duration::from_millis(50);

/// Most answers a connection keeps for itself ([`Client`]'s memo): 16,
/// more than one request of most policies asks (five DNS lists, FCrDNS,
/// the HELO and sender checks). The requests of one SMTP session (one per
/// recipient, all about the same client) then find their answers there,
/// without the shared cache's hashing and locks.
pub(crate) const MEMO_ENTRIES: usize = 16;

/// Most queries named in one "answers missing" log line; the rest are
/// counted.
const MAX_LOGGED_QUERIES: usize = 8;

/// How a query of the round ended, for the log and the list health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Waiting for an answer.
    Open,
    /// Answered by the cache, without sending anything.
    Cached,
    /// Answered by a server (records, not found, or a failure code).
    Answered,
    /// The list is skipped: unknown at once.
    Skipped,
    /// Could not be sent (no server, a name that is no domain name):
    /// unknown.
    Unsent,
}

/// The questions of a round and where their answers go: a decision's
/// [`Facts`], or a test's list.
pub(crate) trait Questions {
    /// What names one question.
    type Id: Copy + std::fmt::Debug;
    /// Call `f` with each question not answered yet.
    fn each_pending(&self, f: impl FnMut(Self::Id, QueryKind, &[u8]));
    /// The answer to question `id`.
    fn supply(&mut self, id: Self::Id, answer: Answer<'_>);
    /// The deadline: every question not answered is unknown.
    fn expire(&mut self);
}

impl Questions for Facts {
    type Id = FactId;

    fn each_pending(&self, mut f: impl FnMut(FactId, QueryKind, &[u8])) {
        for (id, query) in self.pending() {
            f(id, query.kind, query.name);
        }
    }

    fn supply(&mut self, id: FactId, answer: Answer<'_>) {
        Self::supply(self, id, answer);
    }

    fn expire(&mut self) {
        Self::expire(self);
    }
}

/// Where a round finds the DNS lists' zones (for the lists' health): the
/// policy in force. Asked only for a query the cache does not answer, so a
/// request answered from the cache never touches the engine's lock.
pub(crate) trait Zones {
    /// The length of the longest zone of the policy's DNS lists that
    /// `name` is in (at a label boundary); 0 when none.
    fn zone_len(&self, name: &[u8]) -> usize;
}

impl Zones for Policy {
    fn zone_len(&self, name: &[u8]) -> usize {
        self.dns_zones()
            .filter(|zone| in_zone(name, zone))
            .map(<[u8]>::len)
            .max()
            .unwrap_or(0)
    }
}

impl Zones for Engine {
    fn zone_len(&self, name: &[u8]) -> usize {
        self.policy().zone_len(name)
    }
}

/// One query of the round.
#[derive(Debug)]
struct Flight<Id> {
    fact: Id,
    kind: QueryKind,
    /// In `Client::names`.
    name: Range<usize>,
    /// The length of the DNS-list zone the name ends with (0: none).
    zone_len: usize,
    /// The id of every try (the answer to any try is taken).
    id: u16,
    /// The server of the last try (an index of the servers).
    server: usize,
    /// Tries sent.
    tries: u32,
    /// The servers tried, one bit each (for the source check).
    sent_to: u16,
    /// When to try again.
    retry_at: Instant,
    outcome: Outcome,
}

/// An answer a connection keeps for itself: a copy of a shared cache
/// entry, served until the entry's own expiry.
#[derive(Debug)]
struct Memo {
    /// [`memo_tag`] of its kind and name.
    tag: u64,
    kind: QueryKind,
    name: Box<[u8]>,
    records: Records,
    /// Unix milliseconds (policy time), as in the shared cache.
    expires: u64,
}

/// A quick check of a memo entry against a query: its kind, its length
/// and its first and last 8 bytes (the queries of one client differ at the
/// end, by list; those of different clients at the start). The memo scan
/// compares whole names only when the tags are equal: about four times
/// fewer instructions than comparing names (callgrind, 5 lists).
fn memo_tag(kind: QueryKind, name: &[u8]) -> u64 {
    let n = name.len().min(8);
    let mut first = [0u8; 8];
    let mut last = [0u8; 8];
    first[..n].copy_from_slice(&name[..n]);
    last[..n].copy_from_slice(&name[name.len() - n..]);
    let len = u64::try_from(name.len()).unwrap_or(u64::MAX);
    u64::from_le_bytes(first)
        ^ u64::from_le_bytes(last).rotate_left(29)
        ^ len.rotate_left(48)
        ^ u64::from(kind.record_type()).rotate_left(56)
}

/// What one round did, for the tests and the log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct RoundReport {
    /// Answered from the cache.
    pub(crate) cached: usize,
    /// Datagrams sent (every try).
    pub(crate) sent: usize,
    /// Answered by a server.
    pub(crate) answered: usize,
    /// Still unanswered at the deadline.
    pub(crate) timed_out: usize,
    /// Of a skipped list.
    pub(crate) skipped: usize,
}

/// A connection's DNS client: its sockets (opened at its first query,
/// never for a policy without DNS tests) and reusable buffers.
#[derive(Debug)]
pub(crate) struct Client<Id = FactId> {
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
    flights: Vec<Flight<Id>>,
    /// The names of the round's queries, back to back.
    names: Vec<u8>,
    buf: Vec<u8>,
    /// Query ids: SipHash of a counter under random keys, so an off-path
    /// attacker cannot predict the next id (the source port is the
    /// kernel's random ephemeral port, the other half of the defence).
    ids: RandomState,
    counter: u64,
    /// A log line's buffer.
    line: Vec<u8>,
    /// The answers this connection took from the shared cache last (at
    /// most [`MEMO_ENTRIES`], the oldest replaced first), looked up before
    /// it: a hit takes no lock.
    memo: Vec<Memo>,
    /// The memo entry replaced next once the memo is full.
    memo_next: usize,
}

impl<Id: Copy + std::fmt::Debug> Default for Client<Id> {
    fn default() -> Self {
        Self::new()
    }
}

impl<Id: Copy + std::fmt::Debug> Client<Id> {
    pub(crate) fn new() -> Self {
        Self {
            v4: None,
            v6: None,
            flights: Vec::new(),
            names: Vec::new(),
            buf: Vec::new(),
            ids: RandomState::new(),
            counter: 0,
            line: Vec::new(),
            memo: Vec::new(),
            memo_next: 0,
        }
    }

    fn next_id(&mut self) -> u16 {
        self.counter += 1;
        let hash = self.ids.hash_one(self.counter).to_le_bytes();
        u16::from_le_bytes([hash[0], hash[1]])
    }

    /// Answer every pending query of `facts`: from the cache, or from the
    /// servers, all in flight at once, until all are answered or
    /// `deadline`; the rest are unknown (and `facts` closed once the
    /// deadline has passed, so no later round asks more). `policy` names the DNS-list zones
    /// (for the lists' health); `peer` names the connection in the log;
    /// `now` is the policy time in Unix milliseconds (the cache's and the
    /// lists' clock).
    pub(crate) fn round(
        &mut self,
        dns: &DnsShared,
        policy: &impl Zones,
        facts: &mut impl Questions<Id = Id>,
        deadline: Instant,
        now: u64,
        peer: &str,
    ) -> RoundReport {
        let mut report = RoundReport::default();
        self.flights.clear();
        self.names.clear();
        let (flights, names) = (&mut self.flights, &mut self.names);
        facts.each_pending(|fact, kind, name| {
            let start = names.len();
            names.extend_from_slice(name);
            flights.push(Flight {
                fact,
                kind,
                name: start..names.len(),
                // Found below, for the queries the cache does not answer.
                zone_len: 0,
                id: 0,
                server: 0,
                tries: 0,
                sent_to: 0,
                retry_at: deadline,
                outcome: Outcome::Open,
            });
        });

        // The memo, the cache and the skipped lists first: nothing sent
        // for them.
        for flight in &mut self.flights {
            let name = &self.names[flight.name.clone()];
            let tag = memo_tag(flight.kind, name);
            let memo = self.memo.iter().find(|m| {
                m.tag == tag && m.kind == flight.kind && m.expires > now && *m.name == *name
            });
            if let Some(memo) = memo {
                memo.records
                    .answer(|answer| facts.supply(flight.fact, answer));
                flight.outcome = Outcome::Cached;
                report.cached += 1;
                continue;
            }
            let cached = dns.cache.get(flight.kind, name, now, |records, expires| {
                records.answer(|answer| facts.supply(flight.fact, answer));
                Memo {
                    tag,
                    kind: flight.kind,
                    name: name.into(),
                    records: records.clone(),
                    expires,
                }
            });
            if let Some(memo) = cached {
                if self.memo.len() < MEMO_ENTRIES {
                    self.memo.push(memo);
                } else {
                    self.memo[self.memo_next] = memo;
                    self.memo_next = (self.memo_next + 1) % MEMO_ENTRIES;
                }
                flight.outcome = Outcome::Cached;
                report.cached += 1;
                continue;
            }
            flight.zone_len = policy.zone_len(name);
            if flight.zone_len > 0 {
                let zone = &name[name.len() - flight.zone_len..];
                let (skipped, change) = dns.zones.skipped(zone, now);
                if let Some(change) = change {
                    log_zone_change(&mut self.line, zone, change, dns);
                }
                if skipped {
                    facts.supply(flight.fact, Answer::Unknown);
                    flight.outcome = Outcome::Skipped;
                    report.skipped += 1;
                }
            }
        }

        let servers: &[SocketAddr] = dns.servers.get().map_or(&[], |s| &s[..]);
        let try_timeout = (dns.settings.deadline / TRIES_PER_DEADLINE).max(MIN_TRY_TIMEOUT);
        for i in 0..self.flights.len() {
            if self.flights[i].outcome != Outcome::Open {
                continue;
            }
            if servers.is_empty() || Instant::now() >= deadline {
                self.flights[i].outcome = Outcome::Unsent;
                continue;
            }
            self.flights[i].id = self.next_id();
            self.send(i, 0, servers, try_timeout, &mut report);
        }

        self.collect(dns, servers, facts, deadline, try_timeout, now, &mut report);

        // The deadline: what is still open is unknown.
        let mut missing = 0;
        for flight in &self.flights {
            if flight.outcome == Outcome::Open && flight.tries > 0 {
                missing += 1;
            }
        }
        report.timed_out = missing;
        if missing > 0 {
            self.log_missing(dns, peer, missing);
            // Each list's timeouts count once per request.
            let mut counted: Vec<&[u8]> = Vec::new();
            for flight in &self.flights {
                if flight.outcome != Outcome::Open || flight.tries == 0 || flight.zone_len == 0 {
                    continue;
                }
                let name = &self.names[flight.name.clone()];
                let zone = &name[name.len() - flight.zone_len..];
                if counted.contains(&zone) {
                    continue;
                }
                counted.push(zone);
                if let Some(change) = dns.zones.timed_out(zone, now) {
                    log_zone_change(&mut self.line, zone, change, dns);
                }
            }
        }
        // What got no answer (timed out, or never sent) is unknown. The
        // facts are closed only when the deadline has passed: before it, a
        // later round may still ask what these answers lead to (a listing's
        // TXT, the addresses of reverse DNS names).
        // (A round answered in full needs no clock: a later round's
        // sends check the deadline themselves.)
        let mut unanswered = false;
        for flight in &self.flights {
            if matches!(flight.outcome, Outcome::Open | Outcome::Unsent) {
                facts.supply(flight.fact, Answer::Unknown);
                unanswered = true;
            }
        }
        if unanswered && Instant::now() >= deadline {
            facts.expire();
        }
        report
    }

    /// Send try `tries` of flight `i` to the server after its last one
    /// (the first server for the first try). A server that cannot be sent
    /// to (no route, no socket of its family) is passed over; when none
    /// can, the flight is unsent (unknown).
    fn send(
        &mut self,
        i: usize,
        first: usize,
        servers: &[SocketAddr],
        try_timeout: Duration,
        report: &mut RoundReport,
    ) {
        let flight = &self.flights[i];
        let Ok(bytes) = message::query(flight.id, flight.kind, &self.names[flight.name.clone()])
        else {
            self.flights[i].outcome = Outcome::Unsent;
            return;
        };
        for step in 0..servers.len() {
            let index = (first + step) % servers.len();
            let server = servers[index];
            let sent = self
                .socket(server)
                .and_then(|socket| socket.send_to(&bytes, server));
            if sent.is_ok() {
                let flight = &mut self.flights[i];
                flight.server = index;
                flight.tries += 1;
                flight.sent_to |= 1 << (index % 16);
                flight.retry_at = Instant::now() + try_timeout;
                report.sent += 1;
                return;
            }
        }
        let flight = &mut self.flights[i];
        if flight.tries == 0 {
            flight.outcome = Outcome::Unsent;
        } else {
            // Not sent again: the earlier tries may still be answered;
            // try again after another wait, not at once (no busy loop).
            flight.retry_at = Instant::now() + try_timeout;
        }
    }

    /// The UDP socket for `server`'s family, opened on first use (an
    /// ephemeral port the kernel picks at random), non-blocking.
    fn socket(&mut self, server: SocketAddr) -> io::Result<&UdpSocket> {
        let slot = match server {
            SocketAddr::V4(_) => &mut self.v4,
            SocketAddr::V6(_) => &mut self.v6,
        };
        if slot.is_none() {
            let any: IpAddr = match server {
                SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
                SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
            };
            let socket = UdpSocket::bind(SocketAddr::new(any, 0))?;
            socket.set_nonblocking(true)?;
            *slot = Some(socket);
        }
        slot.as_ref().ok_or_else(|| io::Error::other("no socket"))
    }

    /// Wait for answers until every flight is closed or the deadline;
    /// retry the flights whose try timed out on the next server.
    #[allow(clippy::too_many_arguments)] // One round's context, passed down once.
    fn collect(
        &mut self,
        dns: &DnsShared,
        servers: &[SocketAddr],
        facts: &mut impl Questions<Id = Id>,
        deadline: Instant,
        try_timeout: Duration,
        now_millis: u64,
        report: &mut RoundReport,
    ) {
        if self.buf.len() < MAX_UDP_REPLY_BYTES {
            self.buf.resize(MAX_UDP_REPLY_BYTES, 0);
        }
        loop {
            let Some(next_retry) = self
                .flights
                .iter()
                .filter(|f| f.outcome == Outcome::Open && f.tries > 0)
                .map(|f| f.retry_at)
                .min()
            else {
                return;
            };
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            if now >= next_retry {
                for i in 0..self.flights.len() {
                    let f = &self.flights[i];
                    if f.outcome == Outcome::Open && f.tries > 0 && f.retry_at <= now {
                        let next = f.server + 1;
                        self.send(i, next, servers, try_timeout, report);
                    }
                }
                continue;
            }
            let wait = next_retry.min(deadline) - now;
            if !self.poll(wait) {
                continue;
            }
            for v6 in [false, true] {
                loop {
                    let socket = if v6 { &self.v6 } else { &self.v4 };
                    let Some(socket) = socket else { break };
                    // Drained (WouldBlock), or an error reported on the
                    // socket: either way, nothing to read now; an
                    // unanswered try times out.
                    let Ok((len, from)) = socket.recv_from(&mut self.buf) else {
                        break;
                    };
                    let at = Arrival {
                        len,
                        from,
                        deadline,
                        try_timeout,
                        now: now_millis,
                    };
                    self.datagram(dns, servers, facts, at, report);
                }
            }
        }
    }

    /// Wait up to `wait` for a datagram on either socket; whether one may
    /// be there.
    fn poll(&self, wait: Duration) -> bool {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let timeout = Timespec {
            tv_sec: i64::try_from(wait.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(wait.subsec_nanos()),
        };
        let polled = match (&self.v4, &self.v6) {
            (Some(a), Some(b)) => poll(
                &mut [PollFd::new(a, PollFlags::IN), PollFd::new(b, PollFlags::IN)],
                Some(&timeout),
            ),
            (Some(one), None) | (None, Some(one)) => {
                poll(&mut [PollFd::new(one, PollFlags::IN)], Some(&timeout))
            }
            // Nothing to wait on: the flights were all unsent.
            (None, None) => return false,
        };
        // An interrupted or failed poll: look at the sockets anyway.
        !matches!(polled, Ok(0))
    }

    /// Handle one datagram (in `self.buf`).
    fn datagram(
        &mut self,
        dns: &DnsShared,
        servers: &[SocketAddr],
        facts: &mut impl Questions<Id = Id>,
        at: Arrival,
        report: &mut RoundReport,
    ) {
        let Arrival {
            len,
            from,
            deadline,
            try_timeout,
            now,
        } = at;
        let bytes = &self.buf[..len.min(self.buf.len())];
        let Some(id) = message::id_of(bytes) else {
            return;
        };
        // The flight with this id, sent to the server it came from.
        let Some(i) = self.flights.iter().position(|f| {
            f.outcome == Outcome::Open
                && f.tries > 0
                && f.id == id
                && servers
                    .iter()
                    .enumerate()
                    .any(|(n, s)| *s == from && f.sent_to & (1 << (n % 16)) != 0)
        }) else {
            return;
        };
        let flight = &self.flights[i];
        let name = &self.names[flight.name.clone()];
        let reply = match message::parse(bytes, id, flight.kind, name) {
            Ok(Reply::Truncated) => match tcp(from, flight.id, flight.kind, name, deadline) {
                Some(reply) => reply,
                // TCP failed: the try times out and the next server is asked.
                None => return,
            },
            Ok(reply) => reply,
            Err(_) => return,
        };
        if let Reply::Failed(_) = reply {
            // SERVFAIL, REFUSED: another server may do better.
            let tried = flight.sent_to.count_ones() as usize;
            if tried < servers.len() && Instant::now() < deadline {
                let next = flight.server + 1;
                self.send(i, next, servers, try_timeout, report);
                return;
            }
        }
        self.answer(dns, facts, i, reply, now, report);
    }

    /// Supply `reply` to flight `i`, keep it in the cache.
    fn answer(
        &mut self,
        dns: &DnsShared,
        facts: &mut impl Questions<Id = Id>,
        i: usize,
        reply: Reply,
        now: u64,
        report: &mut RoundReport,
    ) {
        let flight = &mut self.flights[i];
        flight.outcome = Outcome::Answered;
        report.answered += 1;
        let name = &self.names[flight.name.clone()];
        let zone = &name[name.len() - flight.zone_len..];
        if flight.zone_len > 0 {
            dns.zones.answered(zone);
        }
        match reply {
            Reply::Found { records, ttl } => {
                if flight.zone_len > 0 && flight.kind == QueryKind::A && is_list_error(&records) {
                    facts.supply(flight.fact, Answer::Unknown);
                    log_list_error(&mut self.line, dns, name, &records);
                    return;
                }
                records.answer(|answer| facts.supply(flight.fact, answer));
                dns.cache.insert(flight.kind, name, records, ttl, now);
            }
            Reply::NotFound { ttl } => {
                facts.supply(flight.fact, Answer::NotFound);
                if let Some(ttl) = ttl {
                    dns.cache
                        .insert(flight.kind, name, Records::NotFound, ttl, now);
                }
            }
            // SERVFAIL, REFUSED and the like: unknown, not cached.
            Reply::Failed(_) | Reply::Truncated => facts.supply(flight.fact, Answer::Unknown),
        }
    }

    /// Log the queries still unanswered at the deadline (rate-limited).
    fn log_missing(&mut self, dns: &DnsShared, peer: &str, missing: usize) {
        use crate::log::{self, Level, Line};
        if !log::enabled(Level::Warn) {
            return;
        }
        let Some(held_back) = dns.late.admit(Instant::now()) else {
            return;
        };
        let mut queries = String::new();
        for flight in self
            .flights
            .iter()
            .filter(|f| f.outcome == Outcome::Open && f.tries > 0)
            .take(MAX_LOGGED_QUERIES)
        {
            if !queries.is_empty() {
                queries.push_str(", ");
            }
            queries.push_str(&String::from_utf8_lossy(&self.names[flight.name.clone()]));
            queries.push(' ');
            queries.push_str(flight.kind.as_str());
        }
        let mut line = Line::start(&mut self.line, Level::Warn);
        line.text("DNS answers missing at the deadline: the tests on them are unknown");
        line.field("peer", peer.as_bytes())
            .field_display("missing", missing)
            .field("queries", queries.as_bytes())
            .field_display("deadline_ms", dns.settings.deadline.as_millis())
            .field_display("held_back", held_back);
        line.finish();
    }
}

/// A datagram that arrived, and the round's clocks.
#[derive(Debug, Clone, Copy)]
struct Arrival {
    /// Its length in the client's buffer.
    len: usize,
    from: SocketAddr,
    deadline: Instant,
    try_timeout: Duration,
    /// Policy time, Unix milliseconds.
    now: u64,
}

/// Whether `name` is `zone` or under it (at a label boundary).
pub(crate) fn in_zone(name: &[u8], zone: &[u8]) -> bool {
    !zone.is_empty()
        && name.ends_with(zone)
        && (name.len() == zone.len() || name[name.len() - zone.len() - 1] == b'.')
}

/// The first address of 127.255.255.0/24: a DNS list's error codes, not
/// a listing (Spamhaus answers 127.255.255.252 for a typo in the query,
/// .254 to a query through a public resolver, .255 to too many queries).
pub(crate) const LIST_ERROR_NET: [u8; 3] = [127, 255, 255];

/// Does an answer of a DNS list hold an error code ([`LIST_ERROR_NET`])?
fn is_list_error(records: &Records) -> bool {
    match records {
        Records::Addresses(addresses) => addresses.iter().any(|ip| match ip {
            IpAddr::V4(v4) => v4.octets()[..3] == LIST_ERROR_NET,
            IpAddr::V6(_) => false,
        }),
        _ => false,
    }
}

/// Log a list's error answer (rate-limited with the other list errors).
fn log_list_error(buf: &mut Vec<u8>, dns: &DnsShared, name: &[u8], records: &Records) {
    use crate::log::{self, Level, Line};
    if !log::enabled(Level::Warn) {
        return;
    }
    let Some(held_back) = dns.list_errors.admit(Instant::now()) else {
        return;
    };
    let answer = match records {
        Records::Addresses(a) => a
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    };
    let mut line = Line::start(buf, Level::Warn);
    line.text(
        "DNS list answered an error code (127.255.255.x), not a listing: the test is unknown; \
         the list may refuse queries from this resolver (see docs/dns-checks.md)",
    );
    line.field("query", name)
        .field("answer", answer.as_bytes())
        .field_display("held_back", held_back);
    line.finish();
}

/// Log the start or end of a list's skip.
fn log_zone_change(buf: &mut Vec<u8>, zone: &[u8], change: ZoneChange, dns: &DnsShared) {
    use crate::log::{Level, Line};
    match change {
        ZoneChange::SkipStarted { timeouts } => {
            let mut line = Line::start(buf, Level::Warn);
            line.text("DNS list keeps timing out: skipping it, its tests are unknown");
            line.field("zone", zone)
                .field_display("timeouts", timeouts)
                .field_display("for_secs", dns.settings.skip_for.as_secs());
            line.finish();
        }
        ZoneChange::SkipEnded => {
            let mut line = Line::start(buf, Level::Info);
            line.text("DNS list skip over: asking it again");
            line.field("zone", zone);
            line.finish();
        }
    }
}

/// Ask `kind` of `name` with `id` again over TCP (RFC 7766), the answer
/// having been truncated over UDP; at most until `deadline`. `None` when
/// TCP fails or the answer is not the one asked for.
fn tcp(
    server: SocketAddr,
    id: u16,
    kind: QueryKind,
    name: &[u8],
    deadline: Instant,
) -> Option<Reply> {
    let left = deadline.checked_duration_since(Instant::now())?;
    if left.is_zero() {
        return None;
    }
    let query = message::query(id, kind, name).ok()?;
    let mut stream = TcpStream::connect_timeout(&server, left).ok()?;
    let left = deadline.checked_duration_since(Instant::now())?;
    stream
        .set_read_timeout(Some(left.max(Duration::from_millis(1))))
        .ok()?;
    stream
        .set_write_timeout(Some(left.max(Duration::from_millis(1))))
        .ok()?;
    let len = u16::try_from(query.len()).ok()?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(&query);
    stream.write_all(&framed).ok()?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut answer).ok()?;
    match message::parse(&answer, id, kind, name).ok()? {
        // Truncated over TCP too: nothing more to ask for.
        Reply::Truncated => None,
        reply => Some(reply),
    }
}
