//! [`LimitTable`]: the counters of one limit rule, sharded and bounded.

use std::hash::{BuildHasher, Hasher};
use std::marker::PhantomData;

use super::window::{BUCKETS, SLOTS};
use super::{Limit, Window, MAX_WINDOWS};
use crate::base::time::Timestamp;
use crate::keyed::counter::Counter;
use crate::keyed::key::{key_text, stored_text, HashSeeds, KeyText, KEY_TEXT_BYTES};
use crate::keyed::shard::{Layout, Probe, ShardTable, Sharded};

/// A key of a [`LimitTable`]: its hash, which is what identifies the key, and
/// its text, kept (the first [`KEY_TEXT_BYTES`]` - 1` bytes) only to show it
/// in [`LimitTable::top`] and snapshots.
///
/// Make one with [`LimitTable::key`] for a key of one part; for a key of
/// several parts hash the parts with [`LimitTable::key_hasher`] (so that no
/// combination collides with another) and pass the text to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key<'a> {
    /// The seeded hash of the key: keys with the same hash share counters.
    pub hash: u64,
    /// The key as people read it (e.g. `joe@example.com, 192.0.2.0/24`).
    pub text: &'a [u8],
}

/// One line of [`LimitTable::top`]: a key and the units it counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopKey {
    /// The key's hash.
    pub hash: u64,
    /// The key's text as stored: its first [`KEY_TEXT_BYTES`]` - 1` bytes.
    pub text: Vec<u8>,
    /// Whether the key's text was longer than what is stored.
    pub truncated: bool,
    /// Units the key counts in the window asked for.
    pub units: u64,
}

/// The outcome of [`LimitTable::check_and_count`] or [`LimitTable::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within every window; counted (by `check_and_count`).
    Admitted,
    /// Over at least one window; nothing was counted.
    Refused(Refusal),
    /// The table is full of keys that have not expired, so this new key is not
    /// tracked: admitted and not counted (fail open). The table never evicts a
    /// live key to make room, since that would let a client reset another
    /// key's counts by flooding the table with new keys.
    Untracked,
}

/// Why a request was refused: the window over its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// Index of the window in [`Limit::windows`]; when several are over, the
    /// one that frees up last.
    pub window: usize,
    /// Units that window counts now (before this request).
    pub counted: u64,
    /// Milliseconds until the same request would be admitted if nothing else
    /// were counted (at most the window's `per_ms + bucket_ms`, exact for this
    /// algorithm: a millisecond earlier is still refused); `None` if it asks
    /// for more units than the window's `max`.
    pub retry_after_ms: Option<u64>,
}

/// A limit's entries, with key texts, `stride` words of the counter type `C`:
///
/// ```text
/// tag      1 word             0: the bucket is empty; else the text's slot + 1
/// hash     C::U64_WORDS words the key's hash
/// last     C::U64_WORDS words the latest millisecond counted at
/// rings    windows x SLOTS words, window 0 first
/// ```
#[derive(Debug)]
pub(crate) struct LimitLayout<C>(PhantomData<C>);

impl<C: Counter> Layout for LimitLayout<C> {
    type Word = C;
    const TAG: usize = 0;
    const HASH: usize = 1;
    const TEXTS: bool = true;
}

/// A shard of a limit table, with `C` counters.
pub(crate) type Shard<C> = ShardTable<LimitLayout<C>>;

impl<C: Counter> Shard<C> {
    /// An empty shard of limit entries of `windows` windows, picked by the
    /// top `shift` bits of the hash.
    #[cfg(test)]
    pub(crate) fn new(windows: usize, shift: u32) -> Self {
        Self::with_stride(C::HEADER + windows * SLOTS, shift)
    }

    /// Inserts a new limit key (not in the shard) with zeroed rings and
    /// `last` as its last time; see [`ShardTable::insert_entry`].
    pub(crate) fn insert(
        &mut self,
        hash: u64,
        text: &KeyText,
        last: u64,
        vacant: Option<usize>,
        max_keys: usize,
    ) -> usize {
        self.insert_entry(hash, text, vacant, max_keys, |e| {
            C::write_u64(&mut e[1 + C::U64_WORDS..], last);
        })
    }
}

/// The shards of a table, with `u32` or `u64` bucket counters.
#[derive(Debug)]
pub(crate) enum Shards {
    /// Counters of at most `u32::MAX` units per bucket.
    Narrow(Sharded<LimitLayout<u32>>),
    /// Counters of at most `u64::MAX` units per bucket.
    Wide(Sharded<LimitLayout<u64>>),
}

/// Runs `$body` with `$s` bound to the table's shards, whichever their
/// counter type (the body is compiled for each).
macro_rules! with_shards {
    ($table:expr, $s:ident => $body:expr) => {
        match &$table.shards {
            Shards::Narrow($s) => $body,
            Shards::Wide($s) => $body,
        }
    };
}

/// The counters of one limit rule: per key, one ring of buckets per window.
///
/// Keyed by a 64-bit hash of the key bytes ([`LimitTable::key`], or
/// [`LimitTable::key_hasher`] for keys made of several parts). Two keys whose
/// hashes collide share counters; with 64 bits and a million keys that happens
/// with probability about 3e-8. The first [`KEY_TEXT_BYTES`]` - 1` bytes of a
/// key's text are stored with it, when it is first tracked, to show it
/// ([`LimitTable::top`]).
///
/// # Bound on keys
///
/// At most `max_keys` keys are tracked (exactly: each of the `S` shards holds at
/// most `max_keys / S`). A key whose windows have all expired is reclaimed when
/// its shard is full and a new key arrives. When a shard is full of live keys,
/// a new key is [`Verdict::Untracked`]: admitted without counting.
///
/// # Counters
///
/// A bucket counts up to `u32::MAX` units ([`LimitTable::bucket_max`]), or up
/// to `u64::MAX` if a window's `max` is above `u32::MAX` (a quota of bytes,
/// say 100 GB a day) or the table was made with
/// [`LimitTable::with_wide_counters`]. The width never costs exactness: every
/// count is compared with `max` in `u64`, and a count that would take one
/// bucket past [`LimitTable::bucket_max`] is refused rather than lost. Within
/// the table's own maxima that cannot happen (a bucket never holds more than
/// `max`); it can only with a per-key `max` above `u32::MAX` given to
/// [`LimitTable::check_and_count_with`] on a narrow table, which then admits
/// at most `u32::MAX` units per bucket (`per_ms / BUCKETS`).
///
/// # Memory
///
/// Each key's counters sit in its hash bucket, so finding a key and reading
/// its counters touch one stretch of memory: per tracked key, an entry of
/// `4 * (5 + windows * (BUCKETS + 1))` bytes (88 for one window, 156 for two,
/// 224 for three; `8 * (3 + windows * (BUCKETS + 1))` with wide counters,
/// 160 for one window), in a table kept between 1/2 and 3/4 full (it grows
/// by half), plus [`KEY_TEXT_BYTES`] for the text, read only to show keys. [`LimitTable::heap_bytes`] accounts for what is allocated;
/// measured on 200,000 keys (`bytes_per_tracked_key` test): 194 bytes per key
/// for one window (floor 136), 395 for three (floor 272); with wide counters
/// 300 and 702. On 1,000,000 keys (`benches/benches/state.rs`): 192 and 395.
#[derive(Debug)]
pub struct LimitTable {
    pub(crate) limit: Limit,
    pub(crate) seeds: HashSeeds,
    hasher: ahash::RandomState,
    pub(crate) shards: Shards,
}

impl LimitTable {
    /// An empty table for `limit` tracking at most `max_keys` keys, hashing keys
    /// with `seeds` (see [`HashSeeds`]). Allocates the shards' headers only;
    /// counters grow with the keys tracked. Bucket counters are `u32` unless
    /// a window's `max` is above `u32::MAX`.
    pub fn new(limit: Limit, max_keys: usize, seeds: HashSeeds) -> Self {
        let wide = limit.windows().iter().any(|w| w.max() > u32::MAX.into());
        Self::with_width(limit, max_keys, seeds, wide)
    }

    /// [`new`](Self::new) with `u64` bucket counters whatever the maxima:
    /// for a limit whose `max` may later be raised above `u32::MAX` while the
    /// table is in use (e.g. a quota of bytes). Ring counters take twice the
    /// memory.
    pub fn with_wide_counters(limit: Limit, max_keys: usize, seeds: HashSeeds) -> Self {
        Self::with_width(limit, max_keys, seeds, true)
    }

    pub(crate) fn with_width(limit: Limit, max_keys: usize, seeds: HashSeeds, wide: bool) -> Self {
        let windows = limit.windows().len();
        Self {
            hasher: seeds.state(),
            seeds,
            shards: if wide {
                Shards::Wide(Sharded::new(max_keys, stride::<u64>(windows)))
            } else {
                Shards::Narrow(Sharded::new(max_keys, stride::<u32>(windows)))
            },
            limit,
        }
    }

    /// The limit this table counts for.
    pub fn limit(&self) -> &Limit {
        &self.limit
    }

    /// The seeds keys are hashed with (persist them with the snapshot).
    pub fn seeds(&self) -> HashSeeds {
        self.seeds
    }

    /// The most keys tracked at once (`max_keys` rounded down to a multiple
    /// of the shard count).
    pub fn capacity(&self) -> usize {
        with_shards!(self, s => s.capacity())
    }

    /// The most units one bucket counts: `u32::MAX`, or `u64::MAX` for a
    /// table with wide counters (see [`LimitTable`]'s Counters section).
    pub fn bucket_max(&self) -> u64 {
        match self.shards {
            Shards::Narrow(_) => u32::MAX.into(),
            Shards::Wide(_) => u64::MAX,
        }
    }

    pub(crate) fn shard_count(&self) -> usize {
        with_shards!(self, s => s.count())
    }

    /// The key whose text is `text` (one part), hashed with the table's seeds.
    pub fn key<'t>(&self, text: &'t [u8]) -> Key<'t> {
        Key {
            hash: self.hash_key(text),
            text,
        }
    }

    /// The hash of a key given as one byte string (the hash of [`Self::key`]).
    pub fn hash_key(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// A hasher for a key made of several parts (write each part with its
    /// length, then `finish()`, and make a [`Key`] of the hash and the text to
    /// show); use the same writes for the same key every time.
    pub fn key_hasher(&self) -> impl Hasher {
        self.hasher.build_hasher()
    }

    /// Keys tracked now, expired ones not yet reclaimed included.
    pub fn len(&self) -> usize {
        with_shards!(self, s => s.len())
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes allocated on the heap by the shards (from their capacities; the
    /// allocator's own overhead is not included).
    pub fn heap_bytes(&self) -> usize {
        with_shards!(self, s => s.heap_bytes())
    }

    /// Checks `units` more for `key` at `now` and, if every window admits
    /// them, counts them, atomically. A refused request counts nothing.
    /// `units == 0` is admitted without touching the table. A key tracked for
    /// the first time keeps a copy of the start of its text.
    ///
    /// Does not allocate for a key already tracked; a new key may grow its
    /// shard's storage. A count can be undone with [`Self::refund`].
    pub fn check_and_count(&self, key: Key<'_>, units: u64, now: Timestamp) -> Verdict {
        self.decide(key, units, now, true, &[])
    }

    /// [`check_and_count`](Self::check_and_count) with other maxima for this
    /// key (a per-key override, e.g. a user allowed 5,000 a day): `max[i]`
    /// replaces window `i`'s `max`; windows past the end of `max` keep theirs.
    /// The key's counters are the same whichever maxima are used.
    pub fn check_and_count_with(
        &self,
        key: Key<'_>,
        units: u64,
        now: Timestamp,
        max: &[u64],
    ) -> Verdict {
        self.decide(key, units, now, true, max)
    }

    /// What [`check_and_count`](Self::check_and_count) would answer, counting
    /// nothing (for dry-run rules and for showing state).
    pub fn check(&self, key: Key<'_>, units: u64, now: Timestamp) -> Verdict {
        self.decide(key, units, now, false, &[])
    }

    /// What [`check_and_count_with`](Self::check_and_count_with) would answer,
    /// counting nothing.
    pub fn check_with(&self, key: Key<'_>, units: u64, now: Timestamp, max: &[u64]) -> Verdict {
        self.decide(key, units, now, false, max)
    }

    /// Undoes a count of `units` that [`Self::check_and_count`] made for the
    /// key with hash `key_hash` at `counted_at` (the `now` it was given): in
    /// every window, subtracts them from the bucket `counted_at` falls in if
    /// that bucket is still in the ring, never below zero. Nothing happens
    /// for an unknown key or a bucket that left the ring. Never panics.
    ///
    /// For a request whose final answer refuses it after a limit counted it:
    /// a refused attempt counts nothing. If the clock went back before the
    /// count, the units went to a later bucket than `counted_at`'s; taking
    /// them from the earlier one instead never lowers a count a later decision
    /// sees below what was admitted and kept (the later bucket counts at least
    /// as long).
    pub fn refund(&self, key_hash: u64, units: u64, counted_at: Timestamp) {
        if units == 0 {
            return;
        }
        with_shards!(self, s => self.refund_in(s, key_hash, units, counted_at.as_unix_millis()))
    }

    /// The units each window of the key counts at `now`, into `out` (one per
    /// window, in order; extra elements untouched). Zero for an unknown key.
    pub fn usage(&self, key: u64, now: Timestamp, out: &mut [u64]) {
        with_shards!(self, s => self.usage_in(s, key, now.as_unix_millis(), out))
    }

    /// The `n` keys that count the most units in window `window` at `now`, most
    /// first (ties in hash order), with their stored texts; keys counting
    /// nothing are left out, and so is everything for a window that does not
    /// exist. For showing who uses a limit. Locks one shard at a time and
    /// allocates the answer; not for the request path.
    pub fn top(&self, window: usize, n: usize, now: Timestamp) -> Vec<TopKey> {
        let Some(&w) = self.limit.windows().get(window) else {
            return Vec::new();
        };
        if n == 0 {
            return Vec::new();
        }
        let now = now.as_unix_millis();
        let order =
            |a: &(u64, u64, KeyText), b: &(u64, u64, KeyText)| b.0.cmp(&a.0).then(a.1.cmp(&b.1));
        // (units, hash, text); cut back to the best `n` whenever it holds
        // more than twice that, so the answer's memory stays O(n + a shard).
        let mut best: Vec<(u64, u64, KeyText)> = Vec::new();
        with_shards!(self, s => {
            for shard in 0..s.count() {
                let shard = s.lock_shard(shard);
                for i in shard.occupied_buckets() {
                    let e = shard.entry(i);
                    let last = read_last(e);
                    let units = w.usage(last, ring(e, window), now.max(last));
                    if units > 0 {
                        best.push((units, shard.hash(i), *shard.text(i)));
                    }
                }
                if best.len() > n.saturating_mul(2) {
                    best.select_nth_unstable_by(n - 1, order);
                    best.truncate(n);
                }
            }
        });
        best.sort_unstable_by(order);
        best.truncate(n);
        best.into_iter()
            .map(|(units, hash, text)| {
                let (text, truncated) = stored_text(&text);
                TopKey {
                    hash,
                    text: text.to_vec(),
                    truncated,
                    units,
                }
            })
            .collect()
    }

    /// Removes every key (the seeds stay).
    pub fn clear(&self) {
        with_shards!(self, s => s.clear());
    }

    fn decide(
        &self,
        key: Key<'_>,
        units: u64,
        now: Timestamp,
        count: bool,
        max: &[u64],
    ) -> Verdict {
        if units == 0 {
            return Verdict::Admitted;
        }
        with_shards!(self, s => self.decide_in(s, key, units, now.as_unix_millis(), count, max))
    }

    fn decide_in<C: Counter>(
        &self,
        shards: &Sharded<LimitLayout<C>>,
        key: Key<'_>,
        units: u64,
        real_now: u64,
        count: bool,
        max: &[u64],
    ) -> Verdict {
        let max_of = |i: usize, w: &Window| max.get(i).copied().unwrap_or(w.max());
        let mut shard = shards.lock(key.hash);
        let i = match shard.probe(key.hash) {
            Probe::Found(i) => i,
            Probe::Vacant(vacant) => {
                // A new key: nothing counted yet, so only a window's max (or,
                // past u32::MAX, a bucket's) can refuse.
                if let Some((i, _)) = self
                    .limit
                    .windows()
                    .iter()
                    .enumerate()
                    .find(|&(i, w)| units > max_of(i, w) || units > C::MAX)
                {
                    return Verdict::Refused(Refusal {
                        window: i,
                        counted: 0,
                        retry_after_ms: None,
                    });
                }
                if !count {
                    return Verdict::Admitted;
                }
                return match self.make_room(&mut shard, shards.per_shard(), real_now) {
                    Some(reclaimed) => {
                        let vacant = if reclaimed { None } else { vacant };
                        let i = shard.insert(
                            key.hash,
                            &key_text(key.text),
                            real_now,
                            vacant,
                            shards.per_shard(),
                        );
                        add(&self.limit, shard.entry_mut(i), real_now, units);
                        Verdict::Admitted
                    }
                    None => Verdict::Untracked,
                };
            }
        };
        let e = shard.entry(i);
        let last = read_last(e);
        let now = real_now.max(last);
        let mut refusal: Option<Refusal> = None;
        for (i, w) in self.limit.windows().iter().enumerate() {
            let ring = ring(e, i);
            let counted = w.usage(last, ring, now);
            let max = max_of(i, w);
            let over = counted.saturating_add(units) > max;
            // The bucket counted into, after the ring advances to `now`.
            let bucket = w.current(last, ring, now);
            let full = bucket.saturating_add(units) > C::MAX;
            if over || full {
                let mut retry = w.retry_after(last, ring, now, real_now, units, max);
                if full {
                    retry = match retry {
                        _ if units > C::MAX => None,
                        Some(r) => Some(r.max(w.next_bucket_at(now) - real_now)),
                        None => None,
                    };
                }
                let later = match (&refusal, retry) {
                    (None, _) => true,
                    (Some(r), Some(t)) => r.retry_after_ms.is_some_and(|p| t > p),
                    (Some(r), None) => r.retry_after_ms.is_some(),
                };
                if later {
                    refusal = Some(Refusal {
                        window: i,
                        counted,
                        retry_after_ms: retry,
                    });
                }
            }
        }
        if let Some(r) = refusal {
            return Verdict::Refused(r);
        }
        if count {
            add(&self.limit, shard.entry_mut(i), now, units);
        }
        Verdict::Admitted
    }

    /// Whether `shard` may take a new key at `now`: `Some(false)` if it has
    /// room, `Some(true)` if it has after reclaiming expired keys (moving
    /// entries), `None` if it is full of live keys.
    fn make_room<C: Counter>(
        &self,
        shard: &mut Shard<C>,
        max_keys: usize,
        now: u64,
    ) -> Option<bool> {
        shard.make_room(max_keys, now, |e| self.expires_at(read_last(e)))
    }

    fn refund_in<C: Counter>(
        &self,
        shards: &Sharded<LimitLayout<C>>,
        key: u64,
        units: u64,
        at: u64,
    ) {
        let mut shard = shards.lock(key);
        let Probe::Found(i) = shard.probe(key) else {
            return;
        };
        let e = shard.entry_mut(i);
        let last = read_last(e);
        for (i, w) in self.limit.windows().iter().enumerate() {
            w.refund(last, ring_mut(e, i), at, units);
        }
    }

    fn usage_in<C: Counter>(
        &self,
        shards: &Sharded<LimitLayout<C>>,
        key: u64,
        now: u64,
        out: &mut [u64],
    ) {
        let shard = shards.lock(key);
        let found = match shard.probe(key) {
            Probe::Found(i) => Some(shard.entry(i)),
            Probe::Vacant(_) => None,
        };
        for (i, (w, o)) in self.limit.windows().iter().zip(out).enumerate() {
            *o = found.map_or(0, |e| {
                let last = read_last(e);
                w.usage(last, ring(e, i), now.max(last))
            });
        }
    }

    /// The first millisecond at which an entry last counted at `last` is empty.
    pub(crate) fn expires_at(&self, last: u64) -> u64 {
        self.limit
            .windows()
            .iter()
            .map(|w| w.empty_from(last))
            .max()
            .unwrap_or(last)
    }

    /// Makes room for about `keys` keys spread evenly over the shards (never
    /// more than the table's bound), so that new keys up to that number are
    /// tracked without allocating (and loading a snapshot does not grow the
    /// storage step by step).
    pub fn reserve(&self, keys: usize) {
        with_shards!(self, s => s.reserve(keys));
    }

    /// Calls `f(entry)` for each tracked key of shard `i` that counts
    /// something at `now`, in increasing hash order (allocates a sorted list
    /// of the shard's keys).
    pub(crate) fn for_each_sorted(&self, i: usize, now: u64, f: impl FnMut(&Entry)) {
        with_shards!(self, s => self.for_each_sorted_in(&s.lock_shard(i), now, f))
    }

    fn for_each_sorted_in<C: Counter>(
        &self,
        shard: &Shard<C>,
        now: u64,
        mut f: impl FnMut(&Entry),
    ) {
        let keys = shard.sorted();
        let rings = self.limit.windows().len() * SLOTS;
        let mut entry = Entry::default();
        for (hash, i) in keys {
            let e = shard.entry(i);
            entry.last = read_last(e);
            if self.expires_at(entry.last) <= now {
                continue;
            }
            entry.hash = hash;
            entry.text = *shard.text(i);
            for (out, &c) in entry.counts[..rings].iter_mut().zip(&e[C::HEADER..]) {
                *out = c.get();
            }
            f(&entry);
        }
    }

    /// Tracks `entry` (a key not tracked yet, whose counts were recorded at
    /// `entry.last`; counts above the table's [`bucket_max`](Self::bucket_max)
    /// are kept as that); `None` if its shard is full of live keys.
    pub(crate) fn load(&self, entry: &Entry) -> Option<()> {
        with_shards!(self, s => self.load_in(s, entry))
    }

    fn load_in<C: Counter>(&self, shards: &Sharded<LimitLayout<C>>, entry: &Entry) -> Option<()> {
        let mut shard = shards.lock(entry.hash);
        let vacant = match shard.probe(entry.hash) {
            // Callers load each key once; a second one would be a bug.
            Probe::Found(_) => return None,
            Probe::Vacant(vacant) => vacant,
        };
        let vacant = if self.make_room(&mut shard, shards.per_shard(), entry.last)? {
            None
        } else {
            vacant
        };
        let i = shard.insert(
            entry.hash,
            &entry.text,
            entry.last,
            vacant,
            shards.per_shard(),
        );
        let rings = self.limit.windows().len() * SLOTS;
        for (w, &c) in shard.entry_mut(i)[C::HEADER..]
            .iter_mut()
            .zip(&entry.counts[..rings])
        {
            *w = C::saturating_from(c);
        }
        Some(())
    }
}

/// Words of a limit entry of `windows` windows with `C` counters.
fn stride<C: Counter>(windows: usize) -> usize {
    C::HEADER + windows * SLOTS
}

/// The latest millisecond an entry counted at.
fn read_last<C: Counter>(e: &[C]) -> u64 {
    C::read_u64(&e[1 + C::U64_WORDS..])
}

/// Window `w`'s ring in an entry.
fn ring<C: Counter>(e: &[C], w: usize) -> &[C] {
    &e[C::HEADER + w * SLOTS..][..SLOTS]
}

/// Window `w`'s ring in an entry, to change.
fn ring_mut<C: Counter>(e: &mut [C], w: usize) -> &mut [C] {
    &mut e[C::HEADER + w * SLOTS..][..SLOTS]
}

/// Counts `units` at `now` (`now >=` the entry's last time) in every window.
fn add<C: Counter>(limit: &Limit, e: &mut [C], now: u64, units: u64) {
    let last = read_last(e);
    for (i, w) in limit.windows().iter().enumerate() {
        w.add(last, ring_mut(e, i), now, units);
    }
    C::write_u64(&mut e[1 + C::U64_WORDS..], now);
}

// BUCKETS is what SLOTS is made of; named here for the docs above.
const _: () = assert!(SLOTS == BUCKETS + 1);

/// One key's state in a form independent of the table's layout, for
/// snapshots: `counts[w * SLOTS + i]` is window `w`'s ring slot `i`.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) hash: u64,
    pub(crate) last: u64,
    pub(crate) text: KeyText,
    pub(crate) counts: [u64; MAX_WINDOWS * SLOTS],
}

impl Default for Entry {
    fn default() -> Self {
        Self {
            hash: 0,
            last: 0,
            text: [0; KEY_TEXT_BYTES],
            counts: [0; MAX_WINDOWS * SLOTS],
        }
    }
}
