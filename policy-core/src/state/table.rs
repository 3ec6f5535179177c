//! [`LimitTable`]: the counters of one limit rule, sharded and bounded.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

use parking_lot::Mutex;

use super::window::SLOTS;
use super::{Limit, Window, MAX_WINDOWS};
use crate::engine::Timestamp;

/// The most shards a table is split into: enough that 2-16 worker threads
/// rarely wait on one another, few enough that a snapshot walks them quickly.
pub const MAX_SHARDS: usize = 64;

/// A table is split into more shards only while each keeps at least this many
/// keys of its bound, so that a small bound is not spread over shards that
/// each fill up after a handful of keys.
pub const MIN_KEYS_PER_SHARD: usize = 1024;

/// Bytes of a key's text kept per tracked key, for [`LimitTable::top`]: one
/// length byte and up to `KEY_TEXT_BYTES - 1` = 47 bytes of text. Enough for
/// most addresses, domains and masked IPs whole (a longer text is kept
/// truncated and marked so); small enough that the copy costs less than a
/// cache line per key, made once when a key is first tracked, never per request.
pub const KEY_TEXT_BYTES: usize = 48;

/// The most text bytes kept per key (one of [`KEY_TEXT_BYTES`] holds the length).
const KEY_TEXT_MAX: usize = KEY_TEXT_BYTES - 1;

// The length takes the low 7 bits of the length byte.
const _: () = assert!(KEY_TEXT_MAX < 0x80);

/// Set in the length byte of a stored key text cut to [`KEY_TEXT_MAX`] bytes.
const TEXT_TRUNCATED: u8 = 0x80;

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

/// A key's text as stored: the length byte (with [`TEXT_TRUNCATED`]), then the text.
pub(crate) type KeyText = [u8; KEY_TEXT_BYTES];

/// The stored form of `text`.
pub(crate) fn key_text(text: &[u8]) -> KeyText {
    let mut out = [0u8; KEY_TEXT_BYTES];
    let n = text.len().min(KEY_TEXT_MAX);
    out[1..=n].copy_from_slice(&text[..n]);
    let flag = if text.len() > KEY_TEXT_MAX {
        TEXT_TRUNCATED
    } else {
        0
    };
    // n <= 47 fits in the low 7 bits.
    out[0] = n as u8 | flag;
    out
}

/// The text and truncation flag of a stored key text (a corrupt length byte
/// is clamped, never out of bounds).
pub(crate) fn stored_text(t: &KeyText) -> (&[u8], bool) {
    let n = usize::from(t[0] & !TEXT_TRUNCATED).min(KEY_TEXT_MAX);
    (&t[1..=n], t[0] & TEXT_TRUNCATED != 0)
}

/// The four seeds of the key hash, `ahash::RandomState::with_seeds(s[0], s[1], s[2], s[3])`.
///
/// Keys are client-controlled (sender addresses, client IPs...): with known
/// seeds, a client could make many keys land in one shard or one hash chain.
/// Draw the seeds at random once, keep them secret, and persist them with
/// the snapshot so that hashes stay the same across restarts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HashSeeds(pub [u64; 4]);

impl std::fmt::Debug for HashSeeds {
    // The seeds are a secret: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashSeeds(..)")
    }
}

impl HashSeeds {
    pub(crate) fn state(self) -> ahash::RandomState {
        let [a, b, c, d] = self.0;
        ahash::RandomState::with_seeds(a, b, c, d)
    }
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

/// Hasher for maps keyed by an already seeded 64-bit hash: spreads it with
/// one multiplication (the table picks shards by the top bits, so the map
/// must not rely on them alone).
#[derive(Default)]
pub(crate) struct SpreadHasher(u64);

impl Hasher for SpreadHasher {
    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type SlotMap = HashMap<u64, u32, BuildHasherDefault<SpreadHasher>>;

/// One shard: key hash -> slot; a slot is `stride` words in `slab`:
/// `[last_ms, window 0 ring (SLOTS words), window 1 ring, ...]`, and the key's
/// text at the same index in `texts`.
#[derive(Debug, Default)]
pub(crate) struct Shard {
    pub(crate) map: SlotMap,
    pub(crate) slab: Vec<u64>,
    pub(crate) texts: Vec<KeyText>,
    free: Vec<u32>,
    /// No entry can expire before this millisecond (a sweep found none
    /// earlier), so a full shard does not sweep again until then.
    next_sweep: u64,
}

impl std::fmt::Debug for SpreadHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpreadHasher")
    }
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
/// # Memory
///
/// Per tracked key: `8 * (1 + windows * (BUCKETS + 1))` bytes of counters
/// (144 bytes for one window, 280 for two, 416 for three) plus the map entry
/// (16 bytes and a control byte, at hashbrown's load factor of 7/8 or less),
/// plus the growth slack of both.
/// [`LimitTable::heap_bytes`] accounts for what is allocated; measured on
/// 200,000 keys (`bytes_per_tracked_key` test): 211 bytes per key for one
/// window (floor 161), 568 for three (floor 433).
#[derive(Debug)]
pub struct LimitTable {
    pub(crate) limit: Limit,
    pub(crate) seeds: HashSeeds,
    hasher: ahash::RandomState,
    pub(crate) shards: Box<[Mutex<Shard>]>,
    shard_bits: u32,
    per_shard: usize,
    pub(crate) stride: usize,
}

impl LimitTable {
    /// An empty table for `limit` tracking at most `max_keys` keys, hashing keys
    /// with `seeds` (see [`HashSeeds`]). Allocates the shards' headers only;
    /// counters grow with the keys tracked.
    pub fn new(limit: Limit, max_keys: usize, seeds: HashSeeds) -> Self {
        let mut shards = 1usize;
        while shards < MAX_SHARDS && max_keys / (shards * 2) >= MIN_KEYS_PER_SHARD {
            shards *= 2;
        }
        let stride = 1 + limit.windows().len() * SLOTS;
        Self {
            hasher: seeds.state(),
            seeds,
            shards: (0..shards).map(|_| Mutex::new(Shard::default())).collect(),
            shard_bits: shards.trailing_zeros(),
            per_shard: max_keys / shards,
            stride,
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
        self.per_shard * self.shards.len()
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
        self.shards.iter().map(|s| s.lock().map.len()).sum()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes allocated on the heap by the shards' maps and counters (from
    /// their capacities; the allocator's own overhead is not included).
    pub fn heap_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let s = s.lock();
                let map = if s.map.capacity() == 0 {
                    0
                } else {
                    // hashbrown: buckets are a power of two >= capacity * 8 / 7,
                    // each an entry plus one control byte, plus 16 control bytes.
                    let buckets = (s.map.capacity() * 8 / 7).next_power_of_two();
                    buckets * (size_of::<(u64, u32)>() + 1) + 16
                };
                map + s.slab.capacity() * 8
                    + s.texts.capacity() * KEY_TEXT_BYTES
                    + s.free.capacity() * 4
            })
            .sum::<usize>()
            + self.shards.len() * size_of::<Mutex<Shard>>()
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
        let mut shard = self.shards[self.shard_of(key_hash)].lock();
        let Some(&slot) = shard.map.get(&key_hash) else {
            return;
        };
        let e = &mut shard.slab[slot as usize * self.stride..][..self.stride];
        let last = e[0];
        let at = counted_at.as_unix_millis();
        for (i, w) in self.limit.windows().iter().enumerate() {
            w.refund(last, &mut e[1 + i * SLOTS..][..SLOTS], at, units);
        }
    }

    /// The units each window of the key counts at `now`, into `out` (one per
    /// window, in order; extra elements untouched). Zero for an unknown key.
    pub fn usage(&self, key: u64, now: Timestamp, out: &mut [u64]) {
        let shard = self.shards[self.shard_of(key)].lock();
        let now = now.as_unix_millis();
        for (i, w) in self.limit.windows().iter().enumerate() {
            if let Some(o) = out.get_mut(i) {
                *o = match shard.map.get(&key) {
                    Some(&slot) => {
                        let e = self.entry(&shard.slab, slot);
                        let last = e[0];
                        w.usage(last, &e[1 + i * SLOTS..][..SLOTS], now.max(last))
                    }
                    None => 0,
                };
            }
        }
    }

    pub(crate) fn shard_of(&self, key: u64) -> usize {
        if self.shard_bits == 0 {
            0
        } else {
            (key >> (64 - self.shard_bits)) as usize
        }
    }

    fn entry<'s>(&self, slab: &'s [u64], slot: u32) -> &'s [u64] {
        &slab[slot as usize * self.stride..][..self.stride]
    }

    fn decide(
        &self,
        key: Key<'_>,
        units: u64,
        now: Timestamp,
        count: bool,
        max: &[u64],
    ) -> Verdict {
        let max_of = |i: usize, w: &Window| max.get(i).copied().unwrap_or(w.max());
        if units == 0 {
            return Verdict::Admitted;
        }
        let real_now = now.as_unix_millis();
        let mut shard = self.shards[self.shard_of(key.hash)].lock();
        let Some(&slot) = shard.map.get(&key.hash) else {
            // A new key: nothing counted yet, so only a window's max can refuse.
            if let Some((i, _)) = self
                .limit
                .windows()
                .iter()
                .enumerate()
                .find(|&(i, w)| units > max_of(i, w))
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
            return match self.insert(&mut shard, key.hash, &key_text(key.text), real_now) {
                Some(slot) => {
                    self.add(&mut shard.slab, slot, real_now, units);
                    Verdict::Admitted
                }
                None => Verdict::Untracked,
            };
        };
        let e = self.entry(&shard.slab, slot);
        let last = e[0];
        let now = real_now.max(last);
        let mut refusal: Option<Refusal> = None;
        for (i, w) in self.limit.windows().iter().enumerate() {
            let ring = &e[1 + i * SLOTS..][..SLOTS];
            let counted = w.usage(last, ring, now);
            let max = max_of(i, w);
            if counted.saturating_add(units) > max {
                let retry = w.retry_after(last, ring, now, real_now, units, max);
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
            self.add(&mut shard.slab, slot, now, units);
        }
        Verdict::Admitted
    }

    /// Counts `units` at `now` (`now >=` the entry's last time) in every window.
    fn add(&self, slab: &mut [u64], slot: u32, now: u64, units: u64) {
        let e = &mut slab[slot as usize * self.stride..][..self.stride];
        let last = e[0];
        for (i, w) in self.limit.windows().iter().enumerate() {
            w.add(last, &mut e[1 + i * SLOTS..][..SLOTS], now, units);
        }
        e[0] = now;
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

    /// A zeroed slot for `key` with text `text`, last counted at `now`; `None`
    /// if the shard is full of live keys.
    pub(crate) fn insert(
        &self,
        shard: &mut Shard,
        key: u64,
        text: &KeyText,
        now: u64,
    ) -> Option<u32> {
        if shard.map.len() >= self.per_shard {
            if now < shard.next_sweep {
                return None;
            }
            self.sweep(shard, now);
            if shard.map.len() >= self.per_shard {
                return None;
            }
        }
        let slot = match shard.free.pop() {
            Some(slot) => {
                let e = &mut shard.slab[slot as usize * self.stride..][..self.stride];
                e.fill(0);
                shard.texts[slot as usize] = *text;
                slot
            }
            None => {
                let slot = (shard.slab.len() / self.stride) as u32;
                shard.slab.resize(shard.slab.len() + self.stride, 0);
                shard.texts.push(*text);
                slot
            }
        };
        shard.slab[slot as usize * self.stride] = now;
        shard.map.insert(key, slot);
        // Keeps `next_sweep` a lower bound on every entry's expiry even when
        // the clock went back.
        shard.next_sweep = shard.next_sweep.min(self.expires_at(now));
        Some(slot)
    }

    /// Reclaims the entries empty at `now`, and notes when the next one can be.
    fn sweep(&self, shard: &mut Shard, now: u64) {
        let mut next = u64::MAX;
        let Shard {
            map, slab, free, ..
        } = shard;
        map.retain(|_, &mut slot| {
            let expires = self.expires_at(slab[slot as usize * self.stride]);
            if expires <= now {
                free.push(slot);
                false
            } else {
                next = next.min(expires);
                true
            }
        });
        shard.next_sweep = next;
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
        for shard in self.shards.iter() {
            let shard = shard.lock();
            for (&key, &slot) in &shard.map {
                let e = self.entry(&shard.slab, slot);
                let last = e[0];
                let units = w.usage(last, &e[1 + window * SLOTS..][..SLOTS], now.max(last));
                if units > 0 {
                    best.push((units, key, shard.texts[slot as usize]));
                }
            }
            if best.len() > n.saturating_mul(2) {
                best.select_nth_unstable_by(n - 1, order);
                best.truncate(n);
            }
        }
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

    /// Makes room for about `keys` keys spread evenly over the shards (never
    /// more than the table's bound), so that loading a snapshot does not grow
    /// the storage step by step.
    pub(crate) fn reserve(&self, keys: usize) {
        let per_shard = (keys / self.shards.len())
            .saturating_add(keys / self.shards.len() / 8 + 16)
            .min(self.per_shard);
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            shard.map.reserve(per_shard);
            shard.slab.reserve(per_shard * self.stride);
            shard.texts.reserve(per_shard);
        }
    }

    /// Removes every key (the seeds stay).
    pub fn clear(&self) {
        for s in self.shards.iter() {
            *s.lock() = Shard::default();
        }
    }

    /// Calls `f(entry)` for each tracked key of shard `i` that counts
    /// something at `now`, in increasing hash order (allocates a sorted list
    /// of the shard's keys).
    pub(crate) fn for_each_sorted(&self, i: usize, now: u64, mut f: impl FnMut(&Entry)) {
        let shard = self.shards[i].lock();
        let mut keys: Vec<(u64, u32)> = shard.map.iter().map(|(&k, &s)| (k, s)).collect();
        keys.sort_unstable();
        let mut entry = Entry::default();
        for (k, slot) in keys {
            let e = self.entry(&shard.slab, slot);
            if self.expires_at(e[0]) <= now {
                continue;
            }
            entry.hash = k;
            entry.last = e[0];
            entry.text = shard.texts[slot as usize];
            entry.counts[..self.stride - 1].copy_from_slice(&e[1..]);
            f(&entry);
        }
    }

    /// Tracks `entry` (a key not tracked yet, whose counts were recorded at
    /// `entry.last`); `None` if its shard is full of live keys.
    pub(crate) fn load(&self, entry: &Entry) -> Option<()> {
        let mut shard = self.shards[self.shard_of(entry.hash)].lock();
        let slot = self.insert(&mut shard, entry.hash, &entry.text, entry.last)?;
        let base = slot as usize * self.stride;
        shard.slab[base + 1..base + self.stride].copy_from_slice(&entry.counts[..self.stride - 1]);
        Some(())
    }
}

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
