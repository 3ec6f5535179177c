//! The table code every keyed state shares: an open-addressing hash table per
//! shard (linear probing, backward-shift deletion) whose buckets hold the
//! entries themselves, so that finding a key and reading its state is one
//! walk through adjacent memory rather than a map lookup then a second
//! access; growth by half up to a bound; reclaiming expired entries when a
//! full shard needs room; and the split into shards under `parking_lot`
//! mutexes ([`Sharded`]). Used by [`LimitTable`](crate::limits::LimitTable)
//! (entries with key texts beside them, read only to show them) and
//! [`GreylistTable`](crate::greylist::GreylistTable) (triplets and client
//! networks).
//!
//! An entry is `stride` words of a word type ([`Counter`]: `u32` or `u64`).
//! Where its hash and its tag (zero: the bucket is empty) are is the
//! [`Layout`]'s; the rest is the table's own.

use std::fmt::Debug;

use parking_lot::{Mutex, MutexGuard};

use super::counter::Counter;
use super::key::{KeyText, KEY_TEXT_BYTES};

/// The most shards a table is split into: enough that 2-16 worker threads
/// rarely wait on one another, few enough that a snapshot walks them quickly.
pub const MAX_SHARDS: usize = 64;

/// A table is split into more shards only while each keeps at least this many
/// keys of its bound, so that a small bound is not spread over shards that
/// each fill up after a handful of keys.
pub const MIN_KEYS_PER_SHARD: usize = 1024;

/// Where an entry keeps what the shared table code reads: its tag (zero
/// marks an empty bucket) and its hash; and whether entries have a key text
/// beside them (then the tag is the text's slot + 1, set by
/// [`ShardTable::insert_entry`]; otherwise it is one of the entry's own
/// words, which the table keeps non-zero while the entry lives).
pub(crate) trait Layout: Debug + Send + 'static {
    /// The word entries are made of.
    type Word: Counter;
    /// Index of the tag word.
    const TAG: usize;
    /// Index of the hash's first word.
    const HASH: usize;
    /// Whether entries have a key text ([`KeyText`]).
    const TEXTS: bool;
}

/// Buckets of a shard's table when its first key arrives.
const FIRST_BUCKETS: usize = 16;

/// The most keys one shard holds: texts are numbered by `u32` tags, 0 meaning
/// an empty bucket; far above any memory a table could get.
pub(crate) const MAX_KEYS_PER_SHARD: usize = (u32::MAX / 2) as usize;

/// Buckets needed to hold `keys` keys at a load of at most 3/4, with at
/// least one bucket always empty so that a probe ends. With linear probing a
/// key is found after looking at `(1 + 1 / (1 - load)) / 2` buckets on
/// average, 2.5 at 3/4, and a new key's free bucket after
/// `(1 + 1 / (1 - load)^2) / 2`, 8.5. A shard grows by half when one more key
/// would pass 3/4, so it stays between 1/2 and 3/4 full.
pub(crate) fn buckets_for(keys: usize) -> usize {
    keys.saturating_add(keys / 3).saturating_add(1)
}

/// The bucket a hash starts probing at, of `n`: the hash's bits below the
/// `shift` that picked the shard, scaled to `n` (any `n`, not only powers of
/// two). Monotone in the hash, so keys in hash order sit in bucket order
/// (but for probing): a snapshot is written and read walking memory in
/// order. Keys' hashes are seeded ([`HashSeeds`](super::HashSeeds)), hence
/// spread evenly and not chosen by clients.
fn home(hash: u64, shift: u32, n: usize) -> usize {
    ((u128::from(hash << shift) * n as u128) >> 64) as usize
}

/// One shard: the entries, the texts (if the layout has them), and when a
/// full shard may next find an expired key to reclaim.
#[derive(Debug)]
pub(crate) struct ShardTable<L: Layout> {
    /// `buckets * stride` words; see the module documentation.
    table: Vec<L::Word>,
    buckets: usize,
    stride: usize,
    /// Top bits of the hash that picked the shard (see [`home`]).
    shift: u32,
    len: usize,
    /// Key texts, by tag - 1 (empty unless `L::TEXTS`).
    texts: Vec<KeyText>,
    /// Text slots of keys reclaimed, to reuse.
    free_texts: Vec<u32>,
    /// No entry can expire before this millisecond (a sweep found none
    /// earlier), so a full shard does not sweep again until then.
    pub(crate) next_sweep: u64,
}

/// Where a key is, or where it would go.
pub(crate) enum Probe {
    /// The key's bucket.
    Found(usize),
    /// The first empty bucket on the key's probe path (`None`: no table yet).
    Vacant(Option<usize>),
}

impl<L: Layout> ShardTable<L> {
    /// An empty shard of entries of `stride` words (the layout's tag and
    /// hash among them), picked by the top `shift` bits of the hash.
    pub(crate) fn with_stride(stride: usize, shift: u32) -> Self {
        debug_assert!(L::TAG < stride && L::HASH + L::Word::U64_WORDS <= stride);
        Self {
            table: Vec::new(),
            buckets: 0,
            stride,
            shift,
            len: 0,
            texts: Vec::new(),
            free_texts: Vec::new(),
            next_sweep: 0,
        }
    }

    /// Keys tracked.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes allocated on the heap.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.table.capacity() * size_of::<L::Word>()
            + self.texts.capacity() * KEY_TEXT_BYTES
            + self.free_texts.capacity() * size_of::<u32>()
    }

    fn tag(&self, i: usize) -> L::Word {
        self.table[i * self.stride + L::TAG]
    }

    fn occupied(&self, i: usize) -> bool {
        self.tag(i) != L::Word::default()
    }

    /// The hash of the entry in bucket `i`.
    pub(crate) fn hash(&self, i: usize) -> u64 {
        L::Word::read_u64(&self.table[i * self.stride + L::HASH..])
    }

    /// The entry in bucket `i`.
    pub(crate) fn entry(&self, i: usize) -> &[L::Word] {
        &self.table[i * self.stride..][..self.stride]
    }

    /// The entry in bucket `i`, to change. For a layout without texts, the
    /// tag word must stay non-zero.
    pub(crate) fn entry_mut(&mut self, i: usize) -> &mut [L::Word] {
        &mut self.table[i * self.stride..][..self.stride]
    }

    /// The text of the entry in bucket `i` (a layout with texts).
    pub(crate) fn text(&self, i: usize) -> &KeyText {
        // Occupied entries' tags are text slots + 1, below MAX_KEYS_PER_SHARD.
        &self.texts[self.tag(i).get() as usize - 1]
    }

    /// The buckets holding an entry.
    pub(crate) fn occupied_buckets(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.buckets).filter(|&i| self.occupied(i))
    }

    /// Finds `hash`.
    pub(crate) fn probe(&self, hash: u64) -> Probe {
        if self.buckets == 0 {
            return Probe::Vacant(None);
        }
        let mut i = home(hash, self.shift, self.buckets);
        // Ends: at most 3/4 of the buckets are occupied.
        loop {
            if !self.occupied(i) {
                return Probe::Vacant(Some(i));
            }
            if self.hash(i) == hash {
                return Probe::Found(i);
            }
            i += 1;
            if i == self.buckets {
                i = 0;
            }
        }
    }

    /// Inserts a new key (not in the shard), given where a probe found no
    /// key, growing the table if needed: its bucket. The entry is zeroed but
    /// for its hash and, with texts, its tag (`text`'s slot + 1; `text` is
    /// ignored without); then `init` fills it in. Without texts `init` must
    /// make the tag word non-zero. The caller keeps within the shard's
    /// bound, `max_keys`.
    pub(crate) fn insert_entry(
        &mut self,
        hash: u64,
        text: &KeyText,
        vacant: Option<usize>,
        max_keys: usize,
        init: impl FnOnce(&mut [L::Word]),
    ) -> usize {
        let fits = buckets_for(self.len + 1) <= self.buckets;
        let i = match vacant {
            Some(i) if fits => i,
            // The probe's bucket is not known (a reclaim moved entries):
            // find one, without growing a table that has room.
            None if fits => self.vacant_for(hash),
            _ => {
                // Half as many again (between 1/2 and 3/4 full: memory over
                // speed of growing), up to what the bound needs, at least
                // what one more key needs.
                let grown = (self.buckets / 2)
                    .saturating_add(self.buckets)
                    .max(FIRST_BUCKETS)
                    .min(buckets_for(max_keys))
                    .max(buckets_for(self.len + 1));
                self.resize(grown);
                self.vacant_for(hash)
            }
        };
        let tag = if L::TEXTS {
            self.store_text(text, max_keys)
        } else {
            0
        };
        let e = self.entry_mut(i);
        e.fill(L::Word::default());
        L::Word::write_u64(&mut e[L::HASH..], hash);
        if L::TEXTS {
            e[L::TAG] = L::Word::saturating_from(u64::from(tag));
        }
        init(e);
        debug_assert!(e[L::TAG] != L::Word::default(), "an entry's tag is set");
        self.len += 1;
        i
    }

    /// Keeps `text` in a free slot: the slot + 1.
    fn store_text(&mut self, text: &KeyText, max_keys: usize) -> u32 {
        match self.free_texts.pop() {
            Some(slot) => {
                self.texts[slot as usize] = *text;
                slot + 1
            }
            None => {
                if self.texts.len() == self.texts.capacity() {
                    // Grow by half, as the table, never past the shard's bound.
                    let more = (self.texts.len() / 2).max(FIRST_BUCKETS);
                    let room = max_keys.saturating_sub(self.texts.len()).max(1);
                    self.texts.reserve_exact(more.min(room));
                }
                self.texts.push(*text);
                // Below MAX_KEYS_PER_SHARD + 1: fits in u32.
                self.texts.len() as u32
            }
        }
    }

    /// The first empty bucket on `hash`'s path (the table has one).
    fn vacant_for(&self, hash: u64) -> usize {
        let mut i = home(hash, self.shift, self.buckets);
        while self.occupied(i) {
            i += 1;
            if i == self.buckets {
                i = 0;
            }
        }
        i
    }

    /// Moves every entry to a table of `buckets` buckets (more than `len`).
    fn resize(&mut self, buckets: usize) {
        let old = std::mem::take(&mut self.table);
        let old_buckets = self.buckets;
        let mut table = Vec::new();
        table.resize(buckets * self.stride, L::Word::default());
        self.table = table;
        self.buckets = buckets;
        for e in old.chunks_exact(self.stride).take(old_buckets) {
            if e[L::TAG] != L::Word::default() {
                let i = self.vacant_for(L::Word::read_u64(&e[L::HASH..]));
                self.entry_mut(i).copy_from_slice(e);
            }
        }
    }

    /// Makes room for `keys` keys in all (at most `max_keys`) without growing
    /// step by step.
    pub(crate) fn reserve(&mut self, keys: usize, max_keys: usize) {
        let keys = keys.min(max_keys);
        let buckets = buckets_for(keys);
        if buckets > self.buckets {
            self.resize(buckets);
        }
        if L::TEXTS {
            self.texts
                .reserve_exact(keys.saturating_sub(self.texts.len()));
        }
    }

    /// Removes the entry in bucket `i`, moving later entries of its cluster
    /// back so that every key stays reachable from its home bucket.
    fn remove(&mut self, i: usize) {
        if L::TEXTS {
            let slot = self.tag(i).get() as u32 - 1;
            self.free_texts.push(slot);
            self.texts[slot as usize] = [0; KEY_TEXT_BYTES];
        }
        self.len -= 1;
        let n = self.buckets;
        let mut hole = i;
        let mut j = i;
        loop {
            j = if j + 1 == n { 0 } else { j + 1 };
            if !self.occupied(j) {
                break;
            }
            let h = home(self.hash(j), self.shift, n);
            // The entry in j may fill the hole if the hole lies on its path,
            // cyclically in [h, j).
            let (from_home, from_hole) = ((j + n - h) % n, (j + n - hole) % n);
            if from_home >= from_hole {
                self.table
                    .copy_within(j * self.stride..(j + 1) * self.stride, hole * self.stride);
                hole = j;
            }
        }
        self.table[hole * self.stride + L::TAG] = L::Word::default();
    }

    /// Removes every entry for which `keep(entry)` is false, in place.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&[L::Word]) -> bool) {
        if self.len == 0 {
            return;
        }
        let n = self.buckets;
        // Start after an empty bucket (there is one): no cluster wraps past
        // the end of the walk, so entries moved back by a removal are always
        // ones not looked at yet.
        let Some(empty) = (0..n).find(|&i| !self.occupied(i)) else {
            return;
        };
        let mut k = 1;
        while k < n {
            let i = (empty + k) % n;
            if self.occupied(i) && !keep(self.entry(i)) {
                // Look at bucket i again: a later entry may have moved in.
                self.remove(i);
            } else {
                k += 1;
            }
        }
    }

    /// Whether the shard may take a new key at `now` within `max_keys`:
    /// `Some(false)` if it has room, `Some(true)` if it has after reclaiming
    /// the entries whose `expires_at(entry)` is `now` or earlier (moving
    /// entries: a bucket found by an earlier probe is stale), `None` if it
    /// is full of live keys. A sweep that finds nothing to reclaim is not
    /// tried again before the earliest expiry it saw (a sweep that makes
    /// room leaves no such bound: the keys inserted after it were not seen).
    pub(crate) fn make_room(
        &mut self,
        max_keys: usize,
        now: u64,
        mut expires_at: impl FnMut(&[L::Word]) -> u64,
    ) -> Option<bool> {
        if self.len < max_keys {
            return Some(false);
        }
        if now < self.next_sweep {
            return None;
        }
        let mut next = u64::MAX;
        self.retain(|e| {
            let expires = expires_at(e);
            if expires <= now {
                false
            } else {
                next = next.min(expires);
                true
            }
        });
        if self.len < max_keys {
            // Room made: keys inserted from now on have expiries this sweep
            // did not see, so the next full shard sweeps at once.
            self.next_sweep = 0;
            Some(true)
        } else {
            // Full of live keys: nothing can be inserted before a sweep
            // frees room, and the keys kept only expire later when counted
            // again, so none expires before `next`.
            self.next_sweep = next;
            None
        }
    }

    /// Whether [`make_room`](Self::make_room) would find room at `now`,
    /// changing nothing (walks the shard when it is full).
    pub(crate) fn has_room(
        &self,
        max_keys: usize,
        now: u64,
        mut expires_at: impl FnMut(&[L::Word]) -> u64,
    ) -> bool {
        self.len < max_keys
            || (now >= self.next_sweep
                && self
                    .occupied_buckets()
                    .any(|i| expires_at(self.entry(i)) <= now))
    }

    /// The occupied buckets sorted by hash: `(hash, bucket)` (allocates).
    /// Buckets are in hash order but for probing: runs that a stable sort
    /// merges in about linear time.
    pub(crate) fn sorted(&self) -> Vec<(u64, usize)> {
        let mut keys: Vec<(u64, usize)> =
            self.occupied_buckets().map(|i| (self.hash(i), i)).collect();
        keys.sort();
        keys
    }
}

/// A shard on its own pair of cache lines, so that threads locking
/// neighbouring shards do not contend for one line.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

/// The shards of one table: a power of two of them, picked by the top bits
/// of a key's hash, each bounded to `per_shard` keys (so that the table's
/// bound is exact without a shared counter).
#[derive(Debug)]
pub(crate) struct Sharded<L: Layout> {
    shards: Box<[Padded<Mutex<ShardTable<L>>>]>,
    bits: u32,
    per_shard: usize,
    stride: usize,
}

impl<L: Layout> Sharded<L> {
    /// Shards of entries of `stride` words for at most `max_keys` keys: as
    /// many as [`MAX_SHARDS`] while each keeps [`MIN_KEYS_PER_SHARD`] of the
    /// bound.
    pub(crate) fn new(max_keys: usize, stride: usize) -> Self {
        let mut n = 1usize;
        while n < MAX_SHARDS && max_keys / (n * 2) >= MIN_KEYS_PER_SHARD {
            n *= 2;
        }
        let bits = n.trailing_zeros();
        Self {
            shards: (0..n)
                .map(|_| Padded(Mutex::new(ShardTable::with_stride(stride, bits))))
                .collect(),
            bits,
            per_shard: (max_keys / n).min(MAX_KEYS_PER_SHARD),
            stride,
        }
    }

    /// Number of shards.
    pub(crate) fn count(&self) -> usize {
        self.shards.len()
    }

    /// The most keys one shard holds.
    pub(crate) fn per_shard(&self) -> usize {
        self.per_shard
    }

    /// The most keys tracked at once.
    pub(crate) fn capacity(&self) -> usize {
        self.per_shard * self.count()
    }

    /// The shard of `hash`.
    pub(crate) fn shard_of(&self, hash: u64) -> usize {
        if self.bits == 0 {
            0
        } else {
            (hash >> (64 - self.bits)) as usize
        }
    }

    /// Locks the shard of `hash`.
    pub(crate) fn lock(&self, hash: u64) -> MutexGuard<'_, ShardTable<L>> {
        self.shards[self.shard_of(hash)].0.lock()
    }

    /// Locks shard `i`.
    pub(crate) fn lock_shard(&self, i: usize) -> MutexGuard<'_, ShardTable<L>> {
        self.shards[i].0.lock()
    }

    /// Keys tracked now, expired ones not yet reclaimed included (locks one
    /// shard at a time).
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.0.lock().len()).sum()
    }

    /// Bytes allocated on the heap, the shards' headers included.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.0.lock().heap_bytes())
            .sum::<usize>()
            + size_of_val(&*self.shards)
    }

    /// Removes every key.
    pub(crate) fn clear(&self) {
        for s in self.shards.iter() {
            *s.0.lock() = ShardTable::with_stride(self.stride, self.bits);
        }
    }

    /// Makes room for about `keys` keys spread evenly over the shards (never
    /// more than the bound), so that loading a snapshot does not grow the
    /// storage step by step.
    pub(crate) fn reserve(&self, keys: usize) {
        let n = self.count();
        let per_shard = (keys / n).saturating_add(keys / n / 8 + 16);
        for s in self.shards.iter() {
            s.0.lock().reserve(per_shard, self.per_shard);
        }
    }
}
