//! One shard of a [`LimitTable`](super::LimitTable): an open-addressing hash
//! table (linear probing, backward-shift deletion) whose buckets hold the
//! entries themselves, so that finding a key and reading its counters is one
//! walk through adjacent memory rather than a map lookup then a second
//! access; and the keys' texts beside it, read only to show them.
//!
//! An entry is `stride` words of the counter type `C` ([`Counter`]):
//!
//! ```text
//! tag      1 word             0: the bucket is empty; else the text's slot + 1
//! hash     C::U64_WORDS words the key's hash
//! last     C::U64_WORDS words the latest millisecond counted at
//! rings    windows x SLOTS words, window 0 first
//! ```

use super::table::{KeyText, KEY_TEXT_BYTES};
use super::window::SLOTS;

/// A bucket counter: `u32` for most limits, `u64` for limits whose maximum
/// does not fit in `u32` (bytes). Entries are made of such words.
pub(crate) trait Counter: Copy + Default + Eq + std::fmt::Debug + Send + 'static {
    /// The largest count a bucket holds.
    const MAX: u64;
    /// Words a `u64` (hash, time) takes.
    const U64_WORDS: usize;
    /// Words before the rings: the tag, the hash and the last time.
    const HEADER: usize = 1 + 2 * Self::U64_WORDS;
    /// The count.
    fn get(self) -> u64;
    /// A word holding `v`, or [`Self::MAX`] if it does not fit.
    fn saturating_from(v: u64) -> Self;
    /// The `u64` stored at the start of `words`.
    fn read_u64(words: &[Self]) -> u64;
    /// Stores `v` at the start of `words`.
    fn write_u64(words: &mut [Self], v: u64);
    /// The sum of the counts, saturating.
    fn sum(slots: &[Self]) -> u64;
}

impl Counter for u32 {
    const MAX: u64 = Self::MAX as u64;
    const U64_WORDS: usize = 2;
    fn get(self) -> u64 {
        u64::from(self)
    }
    fn saturating_from(v: u64) -> Self {
        Self::try_from(v).unwrap_or(Self::MAX)
    }
    fn read_u64(words: &[Self]) -> u64 {
        u64::from(words[0]) | u64::from(words[1]) << 32
    }
    fn write_u64(words: &mut [Self], v: u64) {
        // Truncations intended: the low and the high half.
        words[0] = v as Self;
        words[1] = (v >> 32) as Self;
    }
    fn sum(slots: &[Self]) -> u64 {
        // At most SLOTS (17) counts below 2^32: no overflow in u64.
        slots.iter().map(|&c| u64::from(c)).sum()
    }
}

impl Counter for u64 {
    const MAX: Self = Self::MAX;
    const U64_WORDS: usize = 1;
    fn get(self) -> u64 {
        self
    }
    fn saturating_from(v: u64) -> Self {
        v
    }
    fn read_u64(words: &[Self]) -> u64 {
        words[0]
    }
    fn write_u64(words: &mut [Self], v: u64) {
        words[0] = v;
    }
    fn sum(slots: &[Self]) -> u64 {
        slots.iter().fold(0u64, |s, &c| s.saturating_add(c))
    }
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

/// One shard: the entries, the texts, and when a full shard may next find
/// an expired key to reclaim.
#[derive(Debug)]
pub(crate) struct Shard<C> {
    /// `buckets * stride` words; see the module documentation.
    table: Vec<C>,
    buckets: usize,
    stride: usize,
    /// Top bits of the hash that picked the shard (see [`home`]).
    shift: u32,
    len: usize,
    /// Key texts, by tag - 1.
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

impl<C: Counter> Shard<C> {
    /// An empty shard of entries of `windows` windows, picked by the top
    /// `shift` bits of the hash.
    pub(crate) fn new(windows: usize, shift: u32) -> Self {
        Self {
            table: Vec::new(),
            buckets: 0,
            stride: C::HEADER + windows * SLOTS,
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
        self.table.capacity() * size_of::<C>()
            + self.texts.capacity() * KEY_TEXT_BYTES
            + self.free_texts.capacity() * size_of::<u32>()
    }

    fn tag(&self, i: usize) -> C {
        self.table[i * self.stride]
    }

    fn occupied(&self, i: usize) -> bool {
        self.tag(i) != C::default()
    }

    /// The hash of the entry in bucket `i`.
    pub(crate) fn hash(&self, i: usize) -> u64 {
        C::read_u64(&self.table[i * self.stride + 1..])
    }

    /// The entry in bucket `i`.
    pub(crate) fn entry(&self, i: usize) -> &[C] {
        &self.table[i * self.stride..][..self.stride]
    }

    /// The entry in bucket `i`, to change.
    pub(crate) fn entry_mut(&mut self, i: usize) -> &mut [C] {
        &mut self.table[i * self.stride..][..self.stride]
    }

    /// The text of the entry in bucket `i`.
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

    /// Inserts a new key (not in the shard) with zeroed rings, given where a
    /// probe found no key, growing the table if needed: its bucket. The
    /// caller keeps within the shard's bound, `max_keys`.
    pub(crate) fn insert(
        &mut self,
        hash: u64,
        text: &KeyText,
        last: u64,
        vacant: Option<usize>,
        max_keys: usize,
    ) -> usize {
        let i = match vacant {
            Some(i) if buckets_for(self.len + 1) <= self.buckets => i,
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
        let tag = match self.free_texts.pop() {
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
        };
        let e = self.entry_mut(i);
        e[0] = C::saturating_from(u64::from(tag));
        C::write_u64(&mut e[1..], hash);
        C::write_u64(&mut e[1 + C::U64_WORDS..], last);
        e[C::HEADER..].fill(C::default());
        self.len += 1;
        i
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
        table.resize(buckets * self.stride, C::default());
        self.table = table;
        self.buckets = buckets;
        for e in old.chunks_exact(self.stride).take(old_buckets) {
            if e[0] != C::default() {
                let i = self.vacant_for(C::read_u64(&e[1..]));
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
        self.texts
            .reserve_exact(keys.saturating_sub(self.texts.len()));
    }

    /// Removes the entry in bucket `i`, moving later entries of its cluster
    /// back so that every key stays reachable from its home bucket.
    fn remove(&mut self, i: usize) {
        let slot = self.tag(i).get() as u32 - 1;
        self.free_texts.push(slot);
        self.texts[slot as usize] = [0; KEY_TEXT_BYTES];
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
        self.table[hole * self.stride] = C::default();
    }

    /// Removes every entry for which `keep(entry)` is false, in place.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&[C]) -> bool) {
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
}
