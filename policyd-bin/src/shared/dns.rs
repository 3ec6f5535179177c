//! What every connection's DNS client shares: the answer cache, the health
//! of each DNS list (a list that keeps timing out is skipped for a while),
//! the rate limit of the DNS warnings, and the servers in use.
//!
//! Plain data structures with the time passed in (Unix milliseconds of the
//! daemon's one clock, [`crate::clock`], so tests expire entries and end
//! skips by moving the test clock); the sockets are in [`crate::dns`].
//!
//! # The cache
//!
//! Keyed by the query (kind and name), holding the records of the answer
//! or "not found". It honours the answer's TTL, capped at
//! [`MAX_CACHE_TTL_SECS`]; a negative answer (NXDOMAIN, NODATA) is kept for
//! its negative TTL (RFC 2308: the SOA record's TTL or its MINIMUM field,
//! whichever is lower), capped at [`MAX_NEGATIVE_TTL_SECS`], and not at all
//! when the answer carries no SOA record. Unknown answers (timeouts,
//! SERVFAIL) are never kept. Memory is bounded by a byte budget
//! (`--dns-cache-bytes`): every entry counts its key, its records and
//! [`ENTRY_OVERHEAD_BYTES`] of bookkeeping, and a full shard first drops its
//! expired entries (at most once a second, [`SWEEP_INTERVAL_MILLIS`]),
//! then the entry closest to expiry among [`EVICTION_SAMPLE`] it looks at. A cached answer is supplied to the
//! decision straight from the cache (copied into the connection's scratch
//! under the shard's lock), without sending anything.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use ahash::RandomState;
use parking_lot::Mutex;
use policy_core::facts::{Answer, QueryKind, MAX_NAME_BYTES};

use crate::cli::DnsSettings;

/// The longest an answer is cached, whatever its TTL says: one day. A list
/// that delists an address within its TTL is then believed again within a
/// day even when a zone publishes absurd TTLs (a week is not rare).
pub(crate) const MAX_CACHE_TTL_SECS: u32 = 86_400;

/// The longest a negative answer (NXDOMAIN, NODATA) is cached: three
/// hours, the ceiling RFC 2308 section 5 recommends for negative caching.
pub(crate) const MAX_NEGATIVE_TTL_SECS: u32 = 3 * 3600;

/// Bytes counted for each cache entry on top of its key and records: the
/// hash table slot, the entry's header and the allocator's rounding. An
/// estimate on the high side, so the budget is an upper bound.
pub(crate) const ENTRY_OVERHEAD_BYTES: usize = 96;

/// Independent locks of the cache, so connections rarely wait for each
/// other: 16 is several times the cores of a typical mail host.
pub(crate) const CACHE_SHARDS: usize = 16;

/// When a shard is full and has no expired entry, this many entries are
/// looked at and the one closest to expiry is dropped (an approximation of
/// "oldest first" at a constant cost, as Redis evicts).
pub(crate) const EVICTION_SAMPLE: usize = 8;

/// A full shard drops its expired entries at most once a second (policy
/// time); in between, eviction samples ([`EVICTION_SAMPLE`]).
pub(crate) const SWEEP_INTERVAL_MILLIS: u64 = 1000;

/// The records of an answer, as the cache keeps them and as the resolver
/// supplies them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Records {
    /// A or AAAA.
    Addresses(Box<[IpAddr]>),
    /// PTR or MX: lower-case names without the trailing dot; a null MX is
    /// the empty name.
    Names(Box<[Box<[u8]>]>),
    /// TXT: each record's strings joined.
    Texts(Box<[Box<[u8]>]>),
    /// NXDOMAIN or NODATA.
    NotFound,
}

impl Records {
    /// Heap bytes held.
    fn bytes(&self) -> usize {
        match self {
            Self::Addresses(a) => size_of_val(&**a),
            Self::Names(s) | Self::Texts(s) => {
                s.iter().map(|x| x.len() + size_of::<Box<[u8]>>()).sum()
            }
            Self::NotFound => 0,
        }
    }

    /// Call `f` with these records as an [`Answer`] (borrowed: names and
    /// texts need a slice of slices, built here).
    pub(crate) fn answer<R>(&self, f: impl FnOnce(Answer<'_>) -> R) -> R {
        match self {
            Self::Addresses(a) => f(Answer::Addresses(a)),
            Self::Names(s) => {
                let names: Vec<&[u8]> = s.iter().map(|x| &**x).collect();
                f(Answer::Names(&names))
            }
            Self::Texts(s) => {
                let texts: Vec<&[u8]> = s.iter().map(|x| &**x).collect();
                f(Answer::Texts(&texts))
            }
            Self::NotFound => f(Answer::NotFound),
        }
    }
}

#[derive(Debug)]
struct Entry {
    records: Records,
    /// Unix milliseconds at which it stops being served.
    expires: u64,
    /// What it counts against the budget.
    bytes: usize,
}

#[derive(Debug, Default)]
struct Shard {
    /// When a full shard may next drop its expired entries (Unix
    /// milliseconds): a sweep reads the whole shard, so a shard full of
    /// live entries is swept at most every [`SWEEP_INTERVAL_MILLIS`].
    next_sweep: u64,
    /// Keyed by the query ([`key`]), which a client (through its
    /// addresses and names) chooses: ahash's `RandomState`, seeded at run
    /// time (as the house style asks of maps keyed by client data), keeps
    /// collisions out of its reach. ahash, not std's SipHash: a cached
    /// request hashes each of its queries' names twice (shard, then map),
    /// and SipHash made that about a tenth of a cached request's
    /// instructions.
    map: HashMap<Box<[u8]>, Entry, RandomState>,
    bytes: usize,
}

/// The answers of every connection's DNS queries (see the module docs).
#[derive(Debug)]
pub(crate) struct DnsCache {
    shards: Box<[Mutex<Shard>]>,
    /// Each shard's share of the byte budget.
    shard_budget: usize,
    /// Picks a key's shard; runtime-seeded (see [`Shard::map`]).
    hasher: RandomState,
}

/// The longest key: the kind byte and a name.
const KEY_BYTES: usize = 1 + MAX_NAME_BYTES;

/// The cache key of `kind` of `name` in `buf`: the record type's low byte,
/// then the name (every kind policyd asks has a type below 256).
fn key<'b>(kind: QueryKind, name: &[u8], buf: &'b mut [u8; KEY_BYTES]) -> &'b [u8] {
    let name = name.get(..MAX_NAME_BYTES).unwrap_or(name);
    buf[0] = kind.record_type().to_le_bytes()[0];
    buf[1..=name.len()].copy_from_slice(name);
    &buf[..=name.len()]
}

impl DnsCache {
    /// An empty cache of at most `budget` bytes.
    pub(crate) fn new(budget: usize) -> Self {
        Self {
            shards: (0..CACHE_SHARDS).map(|_| Mutex::default()).collect(),
            shard_budget: budget / CACHE_SHARDS,
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, key: &[u8]) -> &Mutex<Shard> {
        let hash = self.hasher.hash_one(key);
        // The shard count is small: the remainder fits any usize.
        &self.shards[(hash % CACHE_SHARDS as u64) as usize]
    }

    /// Call `f` with the cached answer of `kind` of `name`, if there is one
    /// that has not expired at `now` (Unix milliseconds), and the time it
    /// expires at (Unix milliseconds), under the shard's lock (no copy: `f`
    /// copies what it keeps).
    pub(crate) fn get<R>(
        &self,
        kind: QueryKind,
        name: &[u8],
        now: u64,
        f: impl FnOnce(&Records, u64) -> R,
    ) -> Option<R> {
        let mut buf = [0; KEY_BYTES];
        let key = key(kind, name, &mut buf);
        let shard = self.shard(key).lock();
        match shard.map.get(key) {
            Some(entry) if entry.expires > now => Some(f(&entry.records, entry.expires)),
            _ => None,
        }
    }

    /// Keep `records` as the answer to `kind` of `name` for `ttl` seconds
    /// from `now` (capped; see the module docs). A TTL of 0 keeps nothing.
    pub(crate) fn insert(
        &self,
        kind: QueryKind,
        name: &[u8],
        records: Records,
        ttl: u32,
        now: u64,
    ) {
        let cap = match records {
            Records::NotFound => MAX_NEGATIVE_TTL_SECS,
            _ => MAX_CACHE_TTL_SECS,
        };
        let ttl = ttl.min(cap);
        if ttl == 0 {
            return;
        }
        let mut buf = [0; KEY_BYTES];
        let key = key(kind, name, &mut buf);
        let bytes = key.len() + records.bytes() + ENTRY_OVERHEAD_BYTES;
        if bytes > self.shard_budget {
            return;
        }
        let entry = Entry {
            records,
            expires: now.saturating_add(u64::from(ttl) * 1000),
            bytes,
        };
        let mut shard = self.shard(key).lock();
        if let Some(old) = shard.map.remove(key) {
            shard.bytes -= old.bytes;
        }
        if shard.bytes + bytes > self.shard_budget && now >= shard.next_sweep {
            shard.map.retain(|_, e| e.expires > now);
            shard.bytes = shard.map.values().map(|e| e.bytes).sum();
            shard.next_sweep = now.saturating_add(SWEEP_INTERVAL_MILLIS);
        }
        while shard.bytes + bytes > self.shard_budget {
            let victim = shard
                .map
                .iter()
                .take(EVICTION_SAMPLE)
                .min_by_key(|(_, e)| e.expires)
                .map(|(k, _)| k.clone());
            let Some(victim) = victim else { break };
            if let Some(old) = shard.map.remove(&victim) {
                shard.bytes -= old.bytes;
            }
        }
        shard.bytes += bytes;
        shard.map.insert(key.into(), entry);
    }

    /// Entries held (expired ones included until they are dropped).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().map.len()).sum()
    }

    /// Bytes counted against the budget.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.shards.iter().map(|s| s.lock().bytes).sum()
    }
}

/// How one DNS list is doing.
#[derive(Debug, Default, Clone, Copy)]
struct ZoneState {
    /// Requests in a row whose queries of this list timed out.
    timeouts: u32,
    /// Skipped until then (Unix milliseconds).
    skip_until: Option<u64>,
}

/// A change in a list's skipping, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ZoneChange {
    /// The list timed out too often and is skipped until this time (Unix
    /// milliseconds).
    SkipStarted {
        /// Consecutive timeouts seen.
        timeouts: u32,
    },
    /// The skip is over: the list is asked again.
    SkipEnded,
}

/// The health of the policy's DNS lists: a list whose queries time out in
/// `skip_after` requests in a row is skipped for `skip_for` (its queries
/// answered unknown at once, without waiting for the deadline). After the
/// skip the list is asked again; one more timeout skips it again at once,
/// one answer makes it healthy.
#[derive(Debug)]
pub(crate) struct ZoneHealth {
    /// Keyed by zone names from the policy (bounded by the zones of the
    /// policies loaded).
    zones: Mutex<HashMap<Box<[u8]>, ZoneState>>,
    skip_after: u32,
    skip_for_millis: u64,
}

impl ZoneHealth {
    pub(crate) fn new(skip_after: u32, skip_for: Duration) -> Self {
        Self {
            zones: Mutex::default(),
            skip_after: skip_after.max(1),
            skip_for_millis: u64::try_from(skip_for.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// Is `zone` skipped at `now`? A skip that ends here is reported once.
    pub(crate) fn skipped(&self, zone: &[u8], now: u64) -> (bool, Option<ZoneChange>) {
        let mut zones = self.zones.lock();
        let Some(state) = zones.get_mut(zone) else {
            return (false, None);
        };
        match state.skip_until {
            Some(until) if now < until => (true, None),
            Some(_) => {
                state.skip_until = None;
                // On probation: the next timeout skips it again.
                state.timeouts = self.skip_after - 1;
                (false, Some(ZoneChange::SkipEnded))
            }
            None => (false, None),
        }
    }

    /// `zone` answered: it is healthy.
    pub(crate) fn answered(&self, zone: &[u8]) {
        let mut zones = self.zones.lock();
        if let Some(state) = zones.get_mut(zone) {
            state.timeouts = 0;
        }
    }

    /// `zone`'s queries of one request timed out at `now`; a skip that
    /// starts here is reported.
    pub(crate) fn timed_out(&self, zone: &[u8], now: u64) -> Option<ZoneChange> {
        let mut zones = self.zones.lock();
        let state = match zones.get_mut(zone) {
            Some(state) => state,
            None => zones.entry(zone.into()).or_default(),
        };
        if state.skip_until.is_some() {
            return None;
        }
        state.timeouts += 1;
        if state.timeouts >= self.skip_after {
            state.skip_until = Some(now.saturating_add(self.skip_for_millis));
            return Some(ZoneChange::SkipStarted {
                timeouts: state.timeouts,
            });
        }
        None
    }
}

/// At most one line per interval; counts the ones it held back.
#[derive(Debug)]
pub(crate) struct RateLimit {
    interval: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl RateLimit {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            interval,
            state: Mutex::new((None, 0)),
        }
    }

    /// May a line be logged at `now`? `Some(held back since the last
    /// line)` if so; `None` (and one more held back) if not.
    pub(crate) fn admit(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock();
        match state.0 {
            Some(last) if now.saturating_duration_since(last) < self.interval => {
                state.1 += 1;
                None
            }
            _ => {
                let held = state.1;
                *state = (Some(now), 0);
                Some(held)
            }
        }
    }
}

/// How often a warning about DNS answers missing at the deadline is logged
/// at most: once a minute, with the count of the ones held back. A dead
/// resolver under load would otherwise write a line per request.
pub(crate) const DNS_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// What the connections' DNS clients share.
#[derive(Debug)]
pub(crate) struct DnsShared {
    /// From the command line.
    pub(crate) settings: DnsSettings,
    /// The servers asked, in order: `--dns-server`, else the `nameserver`
    /// lines of `/etc/resolv.conf`. Set when a policy with outside facts is
    /// first loaded (at start or at a reload); unset, nothing is asked.
    pub(crate) servers: OnceLock<Arc<[SocketAddr]>>,
    pub(crate) cache: DnsCache,
    pub(crate) zones: ZoneHealth,
    /// Answers missing at the deadline.
    pub(crate) late: RateLimit,
    /// A list answered an error code (127.255.255.x).
    pub(crate) list_errors: RateLimit,
}

impl DnsShared {
    pub(crate) fn new(settings: DnsSettings) -> Self {
        Self {
            cache: DnsCache::new(settings.cache_bytes),
            zones: ZoneHealth::new(settings.skip_after, settings.skip_for),
            late: RateLimit::new(DNS_WARNING_INTERVAL),
            list_errors: RateLimit::new(DNS_WARNING_INTERVAL),
            servers: OnceLock::new(),
            settings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the cache answers `kind` of `name` at `now` (supplied to
    /// the pending query of a real decision: `Facts` are filled by the
    /// engine only).
    fn served(cache: &DnsCache, kind: QueryKind, name: &[u8], now: u64) -> bool {
        let (engine, request, mut scratch) = engine_facts(name);
        let _ = engine.start(
            &request,
            policy_core::Timestamp::from_unix_millis(0),
            &mut scratch,
        );
        let (id, _) = scratch.facts().pending().next().expect("a pending query");
        let facts = scratch.facts_mut();
        let served = cache
            .get(kind, name, now, |r, _| r.answer(|a| facts.supply(id, a)))
            .is_some();
        assert_eq!(served, scratch.facts().pending().next().is_none());
        served
    }

    /// An engine whose policy asks `A` of `2.0.0.127.<zone>` for the
    /// request's client 127.0.0.2, where `name` is that query name.
    fn engine_facts(
        name: &[u8],
    ) -> (
        policy_core::Engine,
        policy_core::Request<'static>,
        policy_core::Scratch,
    ) {
        let text = String::from_utf8_lossy(name);
        let zone = text
            .strip_prefix("2.0.0.127.")
            .unwrap_or("bl.test")
            .to_owned();
        let policy = format!("rule r {{ if client_address in dnsbl \"{zone}\" then REJECT }}\n");
        let policy = policy_core::Policy::compile("t.conf", &policy, &mut policy_core::NoFiles)
            .unwrap()
            .policy;
        let request = policy_core::Request {
            client_address: Some("127.0.0.2".parse().unwrap()),
            ..policy_core::Request::default()
        };
        (
            policy_core::Engine::new(policy),
            request,
            policy_core::Scratch::new(),
        )
    }

    const NAME: &[u8] = b"2.0.0.127.bl.test";

    #[test]
    fn answers_are_served_until_their_ttl_passes() {
        let cache = DnsCache::new(1 << 20);
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(!served(&cache, QueryKind::A, NAME, 0));
        cache.insert(
            QueryKind::A,
            NAME,
            Records::Addresses(Box::new([ip])),
            300,
            1_000,
        );
        // Answered: nothing left pending.
        assert!(served(&cache, QueryKind::A, NAME, 1_000));
        assert!(served(&cache, QueryKind::A, NAME, 300_999));
        assert!(!served(&cache, QueryKind::A, NAME, 301_000));
        // Another kind of the same name is another entry.
        assert!(!served(&cache, QueryKind::Txt, NAME, 1_000));
        // A TTL of 0 keeps nothing; a huge TTL is capped at a day.
        cache.insert(
            QueryKind::A,
            b"2.0.0.127.zero.test",
            Records::NotFound,
            0,
            0,
        );
        assert!(!served(&cache, QueryKind::A, b"2.0.0.127.zero.test", 0));
        let day = u64::from(MAX_CACHE_TTL_SECS) * 1000;
        cache.insert(
            QueryKind::A,
            b"2.0.0.127.week.test",
            Records::Addresses(Box::new([ip])),
            604_800,
            0,
        );
        assert!(served(
            &cache,
            QueryKind::A,
            b"2.0.0.127.week.test",
            day - 1
        ));
        assert!(!served(&cache, QueryKind::A, b"2.0.0.127.week.test", day));
    }

    #[test]
    fn negative_answers_are_capped_at_three_hours() {
        let cache = DnsCache::new(1 << 20);
        cache.insert(QueryKind::A, NAME, Records::NotFound, 86_400, 0);
        let cap = u64::from(MAX_NEGATIVE_TTL_SECS) * 1000;
        assert!(served(&cache, QueryKind::A, NAME, cap - 1));
        assert!(!served(&cache, QueryKind::A, NAME, cap));
    }

    #[test]
    fn memory_stays_within_the_budget() {
        let budget = 64 * 1024;
        let cache = DnsCache::new(budget);
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        for n in 0..10_000u32 {
            let name = format!("{n}.0.0.127.bl.test");
            cache.insert(
                QueryKind::A,
                name.as_bytes(),
                Records::Addresses(Box::new([ip])),
                3600,
                u64::from(n),
            );
            assert!(cache.bytes() <= budget, "{} bytes after {n}", cache.bytes());
        }
        let per_entry = ENTRY_OVERHEAD_BYTES + 20 + size_of::<IpAddr>();
        assert!(cache.len() <= budget / per_entry + 1, "{}", cache.len());
        assert!(cache.len() > budget / per_entry / 2, "{}", cache.len());
        // The newest entry is there: eviction makes room for it.
        assert!(served(
            &cache,
            QueryKind::A,
            b"9999.0.0.127.bl.test",
            10_000
        ));
        // Expired entries go first, whatever the sample.
        let cache = DnsCache::new(CACHE_SHARDS * 400);
        for n in 0..50 {
            let name = format!("{n}.old.test");
            cache.insert(QueryKind::A, name.as_bytes(), Records::NotFound, 1, 0);
        }
        let old = cache.len();
        for n in 0..old {
            let name = format!("{n}.new.test");
            cache.insert(QueryKind::A, name.as_bytes(), Records::NotFound, 60, 5_000);
            assert!(cache.bytes() <= CACHE_SHARDS * 400);
        }
        for n in 0..50 {
            let name = format!("{n}.old.test");
            assert!(!served(&cache, QueryKind::A, name.as_bytes(), 5_000));
        }
    }

    #[test]
    fn a_zone_is_skipped_after_timeouts_in_a_row() {
        let zones = ZoneHealth::new(3, Duration::from_secs(60));
        let z = b"bl.test";
        assert_eq!(zones.timed_out(z, 0), None);
        assert_eq!(zones.timed_out(z, 0), None);
        // An answer in between starts the count again.
        zones.answered(z);
        assert_eq!(zones.timed_out(z, 0), None);
        assert_eq!(zones.timed_out(z, 0), None);
        assert_eq!(zones.skipped(z, 0), (false, None));
        assert_eq!(
            zones.timed_out(z, 1_000),
            Some(ZoneChange::SkipStarted { timeouts: 3 })
        );
        assert_eq!(zones.skipped(z, 60_999), (true, None));
        assert_eq!(zones.skipped(b"other.test", 2_000), (false, None));
        assert_eq!(
            zones.skipped(z, 61_000),
            (false, Some(ZoneChange::SkipEnded))
        );
        assert_eq!(zones.skipped(z, 61_001), (false, None));
        // On probation: one more timeout skips it again.
        assert_eq!(
            zones.timed_out(z, 62_000),
            Some(ZoneChange::SkipStarted { timeouts: 3 })
        );
    }

    #[test]
    fn the_rate_limit_counts_what_it_holds_back() {
        let limit = RateLimit::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(limit.admit(t0), Some(0));
        assert_eq!(limit.admit(t0 + Duration::from_secs(1)), None);
        assert_eq!(limit.admit(t0 + Duration::from_secs(59)), None);
        assert_eq!(limit.admit(t0 + Duration::from_secs(60)), Some(2));
        assert_eq!(limit.admit(t0 + Duration::from_secs(61)), None);
    }
}
