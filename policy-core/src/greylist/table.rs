//! [`GreylistTable`]: the state of one greylist rule (postgrey's semantics),
//! in the same sharded, seeded, bounded tables as the rate limits
//! (`keyed/shard.rs`): triplets and client networks. Its snapshots are in
//! `snapshot.rs`.
//!
//! # What is kept
//!
//! Per triplet (client network, sender, recipient), hashed to 64 bits by the
//! caller with [`GreylistTable::key_hasher`]: the time of the first attempt
//! of its current cycle, the time it was last seen, and whether it passed.
//! Per client network (for auto-whitelisting): the passes counted (at most
//! one an hour), the time of the last one counted, and when it was last
//! seen.
//!
//! # Times in whole seconds, rounded so that no retry is early
//!
//! Times are kept as `u32` seconds since the Unix epoch (enough until 2106;
//! later times are kept as `u32::MAX` seconds), **rounded up**: a first
//! attempt at 12:00:00.400 is kept as 12:00:01. A retry is accepted once
//! `now >= first + delay` with that rounded `first`, so never before `delay`
//! has passed since the real first attempt, and at most 999 ms after it
//! could have been; [`GreyVerdict::Defer`]'s `retry_after_ms` is exact for
//! the rounded time (from `delay` to `delay + 999` ms for a new triplet).
//! The other rounded comparisons err on the lenient side by under a second:
//! a retry up to 999 ms past `retry_window` may still pass, an entry lives
//! up to 999 ms past `max_age`, and two counted passes of a client network
//! are always at least an hour apart.
//!
//! # Memory
//!
//! A triplet entry is 16 bytes (the hash, last seen, first attempt; a
//! passed triplet has no first attempt left, its first-attempt word is 0),
//! a client network's 20 (the hash, last seen, last counted pass, passes),
//! in open-addressing tables kept between 1/2 and 3/4 full: 21 to 32 bytes
//! per triplet, plus a client table of at most `capacity / 8` networks (see
//! [`CLIENTS_PER_TRIPLET_CAPACITY`]), and no key texts. Measured: 27.2
//! bytes per triplet on 200,000, 29.7 on 10,000,000 (networks included;
//! see [`GreylistTable`]).

use std::fmt;
use std::hash::{BuildHasher, Hasher};

use crate::base::time::Timestamp;
use crate::keyed::counter::Counter;
use crate::keyed::key::{HashSeeds, KEY_TEXT_BYTES};
use crate::keyed::shard::{Layout, Probe, Sharded};

/// The greylisting timers of a rule (postgrey's `--delay`, `--retry-window`,
/// `--max-age`, `--auto-whitelist-clients`). `delay_ms` should not exceed
/// `retry_window_ms`, or no retry ever passes (a triplet starts over before
/// its delay is up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timers {
    /// A retry is accepted this long after the first attempt (postgrey: 300 s).
    pub delay_ms: u64,
    /// A triplet not retried in time for this long after its first attempt
    /// starts over (postgrey: 2 days).
    pub retry_window_ms: u64,
    /// A passed triplet, or a client network, silent for this long starts
    /// over (postgrey: 35 days).
    pub max_age_ms: u64,
    /// Passes (at most one counted an hour) after which a client network
    /// skips greylisting; 0 turns auto-whitelisting off (postgrey: 5).
    pub auto_whitelist: u32,
}

impl Default for Timers {
    /// postgrey's defaults: 5 minutes, 2 days, 35 days, 5 passes.
    fn default() -> Self {
        Self {
            delay_ms: 300_000,
            retry_window_ms: 2 * DAY_MS,
            max_age_ms: 35 * DAY_MS,
            auto_whitelist: 5,
        }
    }
}

const DAY_MS: u64 = 24 * 3_600_000;

/// A client network's passes are counted at most once in this long
/// (postgrey's rule: an hour), so that one burst of mail does not whitelist
/// a network at once.
pub const PASS_COUNT_INTERVAL_MS: u64 = 3_600_000;

/// The client-network table holds at most `capacity / CLIENTS_PER_TRIPLET_CAPACITY`
/// networks. A network is only tracked once it passed, and it passes with
/// at least one triplet; most networks send many triplets, so an eighth of
/// the triplets' bound leaves room to spare for 1/8 of the memory (at 20
/// bytes an entry, about 3-4 bytes per triplet of capacity).
pub const CLIENTS_PER_TRIPLET_CAPACITY: usize = 8;

/// What [`GreylistTable::check`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GreyVerdict {
    /// The client network is auto-whitelisted: pass (it was touched).
    ClientWhitelisted,
    /// The triplet passed before and was seen within `max_age`: pass (it was
    /// touched; no pass is counted for the client network: only first
    /// accepted retries count, as in postgrey).
    Known,
    /// The first accepted retry: the triplet is now passed, and a pass was
    /// counted for the client network.
    FirstPass {
        /// Milliseconds since the first attempt (as kept, rounded up to a
        /// second): at least `delay_ms`.
        waited_ms: u64,
    },
    /// Defer: a new triplet or one that started over (`first`), or a retry
    /// too early (the first attempt stays as it was).
    Defer {
        /// Milliseconds until a retry is accepted: exact for the first
        /// attempt as kept (see the module documentation).
        retry_after_ms: u64,
        /// Whether this attempt is the first of the triplet's cycle.
        first: bool,
    },
    /// The triplet table is full of live triplets, so this new triplet is
    /// not tracked: pass (fail open). Greylisting is a heuristic against
    /// senders that do not retry; deferring untracked mail would defer it
    /// forever (its retries would never be recognised), and evicting live
    /// triplets would let a flood of new triplets undo the passes of real
    /// senders. Nothing was recorded.
    Untracked,
}

/// Live entries of a [`GreylistTable`] at a time ([`GreylistTable::counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GreyCounts {
    /// Triplets waiting for a retry, within the retry window.
    pub pending: usize,
    /// Triplets that passed, seen within the maximum age.
    pub passed: usize,
    /// Client networks auto-whitelisted now.
    pub whitelisted_clients: usize,
    /// Client networks tracked and seen within the maximum age, whitelisted
    /// or not.
    pub clients: usize,
}

/// Entries of `u32` words: the hash, then the last time seen (never 0: the
/// table's tag), then the table's own words.
#[derive(Debug)]
pub(crate) struct TimedLayout;

impl Layout for TimedLayout {
    type Word = u32;
    const TAG: usize = LAST;
    const HASH: usize = 0;
    const TEXTS: bool = false;
}

/// Word of the last time seen, in seconds (both kinds of entry).
pub(super) const LAST: usize = 2;
/// Triplet word: the first attempt of the cycle in seconds; 0 once passed.
pub(super) const FIRST: usize = 3;
/// Client word: the time of the last counted pass, in seconds.
pub(super) const PASS_AT: usize = 3;
/// Client word: passes counted.
pub(super) const PASSES: usize = 4;
/// Words of a triplet entry.
pub(super) const TRIPLET_WORDS: usize = 4;
/// Words of a client entry.
pub(super) const CLIENT_WORDS: usize = 5;

/// `ms` as kept: whole seconds rounded up, at least 1 (0 marks an empty
/// bucket or a passed triplet), at most `u32::MAX`.
fn secs_up(ms: u64) -> u32 {
    u32::try_from(ms.div_ceil(1000)).unwrap_or(u32::MAX).max(1)
}

/// A kept time in milliseconds.
fn ms(secs: u32) -> u64 {
    u64::from(secs) * 1000
}

/// The state of one greylist rule: triplets and client networks, each in a
/// sharded, bounded open-addressing table keyed by 64-bit seeded hashes.
///
/// # Semantics ([`check`](Self::check))
///
/// 1. The client network is auto-whitelisted (`auto_whitelist > 0` passes
///    counted and seen within `max_age`): [`GreyVerdict::ClientWhitelisted`],
///    the network is touched; the triplet is not looked at.
/// 2. The triplet passed and was seen within `max_age`:
///    [`GreyVerdict::Known`], touched. No pass is counted: as in postgrey,
///    only a triplet's first accepted retry counts toward auto-whitelisting,
///    so one correspondent writing every hour does not whitelist its
///    network.
/// 3. The triplet is pending, `age` since its first attempt: under `delay`,
///    [`GreyVerdict::Defer`] (not reset); from `delay` to `retry_window`,
///    [`GreyVerdict::FirstPass`] (passed, a pass counted).
/// 4. Otherwise (new, pending past `retry_window`, passed but silent past
///    `max_age`): the cycle starts now, [`GreyVerdict::Defer`] with `first`.
///
/// A pass is counted for a network at most once per
/// [`PASS_COUNT_INTERVAL_MS`]; a network silent past `max_age` starts over
/// from no passes. Client networks are tracked only when auto-whitelisting
/// is on.
///
/// # Bounds
///
/// At most `capacity` triplets and `capacity / 8` client networks
/// ([`CLIENTS_PER_TRIPLET_CAPACITY`]), each exactly (per shard). Expired
/// entries (pending past `retry_window`, passed triplets and networks silent
/// past `max_age`) are reclaimed when a full shard needs room. A new triplet
/// finding its shard full of live ones is [`GreyVerdict::Untracked`] (fail
/// open, see there); a pass for a network whose shard is full of live ones
/// is not counted (the network is greylisted as before).
///
/// # Concurrency
///
/// Each triplet's decision is made under its shard's lock, each network's
/// pass count under its own: exact per key, however many threads. The two
/// locks are never held together.
///
/// # Memory
///
/// 16 bytes per triplet entry and 20 per network, tables 1/2 to 3/4 full:
/// 21-32 bytes per triplet (plus networks). Measured with
/// [`heap_bytes`](Self::heap_bytes): 27.2 bytes per triplet on 200,000
/// triplets (test `bytes_per_triplet`, one network per 10 triplets), 29.7
/// on 10,000,000 triplets from 1,000,000 networks with a bound of
/// 12,500,000 (`benches/benches/state.rs`). A snapshot takes 16 bytes per
/// triplet and 20 per network.
#[derive(Debug)]
pub struct GreylistTable {
    pub(super) timers: Timers,
    pub(super) seeds: HashSeeds,
    hasher: ahash::RandomState,
    pub(super) triplets: Sharded<TimedLayout>,
    pub(super) clients: Sharded<TimedLayout>,
}

impl GreylistTable {
    /// An empty table with `timers` for at most `capacity` triplets (and
    /// `capacity / 8` client networks), hashing with `seeds` (see
    /// [`HashSeeds`]). Allocates the shards' headers only.
    pub fn new(timers: Timers, capacity: usize, seeds: HashSeeds) -> Self {
        Self {
            timers,
            seeds,
            hasher: seeds.state(),
            triplets: Sharded::new(capacity, TRIPLET_WORDS),
            clients: Sharded::new(capacity / CLIENTS_PER_TRIPLET_CAPACITY, CLIENT_WORDS),
        }
    }

    /// The timers.
    pub fn timers(&self) -> Timers {
        self.timers
    }

    /// The seeds hashes are made with (persist them with the snapshot).
    pub fn seeds(&self) -> HashSeeds {
        self.seeds
    }

    /// A hasher seeded with the table's seeds, for the client network's and
    /// the triplet's hashes (write each part with its length, then
    /// `finish()`; use the same writes for the same key every time).
    pub fn key_hasher(&self) -> impl Hasher {
        self.hasher.build_hasher()
    }

    /// The hash of a key given as one byte string, with the table's seeds.
    pub fn hash_key(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Makes room for about `triplets` triplets (and an eighth as many client
    /// networks), spread evenly over the shards and never more than the
    /// bounds, so that new triplets up to that number are tracked without
    /// allocating.
    pub fn reserve(&self, triplets: usize) {
        self.triplets.reserve(triplets);
        self.clients
            .reserve(triplets / CLIENTS_PER_TRIPLET_CAPACITY);
    }

    /// Triplets tracked now, expired ones not yet reclaimed included.
    pub fn len(&self) -> usize {
        self.triplets.len()
    }

    /// Whether no triplet is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Client networks tracked now, expired ones not yet reclaimed included.
    pub fn clients_len(&self) -> usize {
        self.clients.len()
    }

    /// The most triplets tracked at once (`capacity` rounded down to a
    /// multiple of the shard count).
    pub fn capacity(&self) -> usize {
        self.triplets.capacity()
    }

    /// The most client networks tracked at once.
    pub fn client_capacity(&self) -> usize {
        self.clients.capacity()
    }

    /// Bytes allocated on the heap by both tables (from their capacities;
    /// the allocator's own overhead is not included).
    pub fn heap_bytes(&self) -> usize {
        self.triplets.heap_bytes() + self.clients.heap_bytes()
    }

    /// Forgets every triplet and client network (the timers and seeds stay).
    pub fn clear(&self) {
        self.triplets.clear();
        self.clients.clear();
    }

    /// Decides the attempt of triplet `triplet` from client network `client`
    /// (both hashed with [`key_hasher`](Self::key_hasher)) at `now`, and, if
    /// `update`, records it (see [`GreylistTable`]'s Semantics). With
    /// `update == false` nothing changes: the answer is what `update` would
    /// answer (for explaining). Never allocates for a tracked triplet; a new
    /// one may grow its shard.
    pub fn check(&self, client: u64, triplet: u64, now: Timestamp, update: bool) -> GreyVerdict {
        let now = now.as_unix_millis();
        let whitelisting = self.timers.auto_whitelist > 0;
        if whitelisting && self.client_whitelisted(client, now, update) {
            return GreyVerdict::ClientWhitelisted;
        }
        let verdict = self.triplet(triplet, now, update);
        if whitelisting && update && matches!(verdict, GreyVerdict::FirstPass { .. }) {
            self.count_pass(client, now);
        }
        verdict
    }

    /// Whether `client` is whitelisted at `now` (touching it if `update`).
    fn client_whitelisted(&self, client: u64, now: u64, update: bool) -> bool {
        let mut shard = self.clients.lock(client);
        let Probe::Found(i) = shard.probe(client) else {
            return false;
        };
        let e = shard.entry(i);
        let whitelisted = e[PASSES] >= self.timers.auto_whitelist && now < self.client_expiry(e);
        if whitelisted && update {
            let e = shard.entry_mut(i);
            e[LAST] = e[LAST].max(secs_up(now));
        }
        whitelisted
    }

    /// Counts a pass for `client` at `now` (at most one an hour; from none
    /// again after `max_age` of silence), touching it.
    fn count_pass(&self, client: u64, now: u64) {
        let now_s = secs_up(now);
        let mut shard = self.clients.lock(client);
        match shard.probe(client) {
            Probe::Found(i) => {
                let expired = now >= self.client_expiry(shard.entry(i));
                let e = shard.entry_mut(i);
                if expired {
                    e[PASSES] = 1;
                    e[PASS_AT] = now_s;
                } else if now >= ms(e[PASS_AT]).saturating_add(PASS_COUNT_INTERVAL_MS) {
                    e[PASSES] = e[PASSES].saturating_add(1);
                    e[PASS_AT] = now_s;
                }
                e[LAST] = e[LAST].max(now_s);
            }
            Probe::Vacant(vacant) => {
                let max_age = self.timers.max_age_ms;
                let per_shard = self.clients.per_shard();
                let Some(reclaimed) =
                    shard.make_room(per_shard, now, |e| client_expiry(max_age, e))
                else {
                    return;
                };
                let vacant = if reclaimed { None } else { vacant };
                shard.insert_entry(client, &NO_TEXT, vacant, per_shard, |e| {
                    e[LAST] = now_s;
                    e[PASS_AT] = now_s;
                    e[PASSES] = 1;
                });
            }
        }
    }

    /// The triplet part of [`check`](Self::check).
    fn triplet(&self, triplet: u64, now: u64, update: bool) -> GreyVerdict {
        let t = self.timers;
        let now_s = secs_up(now);
        let restart = GreyVerdict::Defer {
            // ms(now_s) >= now (rounded up) but past the range of kept times.
            retry_after_ms: ms(now_s).saturating_add(t.delay_ms).saturating_sub(now),
            first: true,
        };
        let mut shard = self.triplets.lock(triplet);
        let i = match shard.probe(triplet) {
            Probe::Found(i) => i,
            Probe::Vacant(vacant) => {
                let per_shard = self.triplets.per_shard();
                let expiry = |e: &[u32]| triplet_expiry(&t, e);
                if !update {
                    return if shard.has_room(per_shard, now, expiry) {
                        restart
                    } else {
                        GreyVerdict::Untracked
                    };
                }
                let Some(reclaimed) = shard.make_room(per_shard, now, expiry) else {
                    return GreyVerdict::Untracked;
                };
                let vacant = if reclaimed { None } else { vacant };
                let i = shard.insert_entry(triplet, &NO_TEXT, vacant, per_shard, |e| {
                    e[LAST] = now_s;
                    e[FIRST] = now_s;
                });
                let expiry = triplet_expiry(&t, shard.entry(i));
                shard.next_sweep = shard.next_sweep.min(expiry);
                return restart;
            }
        };
        let e = shard.entry(i);
        let verdict = if e[FIRST] == 0 {
            // Passed: known while seen within max_age.
            (now < triplet_expiry(&t, e)).then_some(GreyVerdict::Known)
        } else {
            let first = ms(e[FIRST]);
            let age = now.saturating_sub(first);
            if age < t.delay_ms {
                Some(GreyVerdict::Defer {
                    retry_after_ms: first.saturating_add(t.delay_ms) - now,
                    first: false,
                })
            } else if age <= t.retry_window_ms {
                Some(GreyVerdict::FirstPass { waited_ms: age })
            } else {
                None
            }
        };
        if update {
            let e = shard.entry_mut(i);
            e[LAST] = e[LAST].max(now_s);
            match verdict {
                Some(GreyVerdict::FirstPass { .. }) => e[FIRST] = 0,
                None => e[FIRST] = now_s,
                Some(_) => {}
            }
            let expiry = triplet_expiry(&t, shard.entry(i));
            shard.next_sweep = shard.next_sweep.min(expiry);
        }
        verdict.unwrap_or(restart)
    }

    /// The first millisecond at which a client entry is expired.
    fn client_expiry(&self, e: &[u32]) -> u64 {
        client_expiry(self.timers.max_age_ms, e)
    }

    /// The triplets and client networks live at `now`, by state. Locks one
    /// shard at a time and walks every entry: for showing state, not for the
    /// request path.
    pub fn counts(&self, now: Timestamp) -> GreyCounts {
        let now = now.as_unix_millis();
        let t = self.timers;
        let mut counts = GreyCounts::default();
        for n in 0..self.triplets.count() {
            let shard = self.triplets.lock_shard(n);
            for i in shard.occupied_buckets() {
                let e = shard.entry(i);
                if now < triplet_expiry(&t, e) {
                    if e[FIRST] == 0 {
                        counts.passed += 1;
                    } else {
                        counts.pending += 1;
                    }
                }
            }
        }
        for n in 0..self.clients.count() {
            let shard = self.clients.lock_shard(n);
            for i in shard.occupied_buckets() {
                let e = shard.entry(i);
                if now < self.client_expiry(e) {
                    counts.clients += 1;
                    if t.auto_whitelist > 0 && e[PASSES] >= t.auto_whitelist {
                        counts.whitelisted_clients += 1;
                    }
                }
            }
        }
        counts
    }
}

/// Layouts without texts ignore the text given to `insert_entry`.
pub(super) const NO_TEXT: [u8; KEY_TEXT_BYTES] = [0; KEY_TEXT_BYTES];

/// The first millisecond at which a triplet entry is expired: a pending one
/// past `retry_window` after its first attempt, a passed one `max_age`
/// after it was last seen.
pub(super) fn triplet_expiry(t: &Timers, e: &[u32]) -> u64 {
    let (from, span) = if e[FIRST] == 0 {
        (e[LAST], t.max_age_ms)
    } else {
        (e[FIRST], t.retry_window_ms)
    };
    ms(from).saturating_add(span).saturating_add(1)
}

/// The first millisecond at which a client entry is expired: `max_age`
/// after it was last seen.
pub(super) fn client_expiry(max_age_ms: u64, e: &[u32]) -> u64 {
    ms(e[LAST]).saturating_add(max_age_ms).saturating_add(1)
}

impl fmt::Display for GreyVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::ClientWhitelisted => f.write_str("client network auto-whitelisted"),
            Self::Known => f.write_str("triplet passed before"),
            Self::FirstPass { waited_ms } => {
                write!(f, "first accepted retry, after {waited_ms} ms")
            }
            Self::Defer {
                retry_after_ms,
                first: true,
            } => write!(f, "first attempt, retry in {retry_after_ms} ms"),
            Self::Defer {
                retry_after_ms,
                first: false,
            } => write!(f, "retry too early, retry in {retry_after_ms} ms"),
            Self::Untracked => f.write_str("triplet table full: not tracked, passed"),
        }
    }
}

// u32 words: a hash takes two, at the start of the entry.
const _: () = assert!(<u32 as Counter>::U64_WORDS == LAST);
