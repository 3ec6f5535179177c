//! An immutable-after-build hash set of byte strings with a few flag bits per key:
//! the exact-match part of a list (domains, addresses, strings).
//!
//! Open addressing with linear probing over a power-of-two slot table kept at
//! most half full; the keys live back to back in one byte arena, so a key costs
//! its length plus a 16-byte record plus 8 to 16 bytes of slots, with no
//! allocation per key. Lookups hash the caller's slice (already normalised by
//! the caller, e.g. lower-cased into a stack buffer) and allocate nothing.

/// Marks an empty slot in [`KeySet::slots`].
const EMPTY: u32 = u32::MAX;

/// The longest key a [`KeySet`] stores: a key's length is kept in a `u16`.
/// Entries are bounded well below this by [`super::MAX_ENTRY_BYTES`].
pub(crate) const MAX_KEY_BYTES: usize = u16::MAX as usize;

/// One stored key: where its bytes are in the arena, its hash, its flags.
#[derive(Debug, Clone, Copy)]
struct Key {
    /// The full 64-bit hash, compared before the bytes and reused when growing.
    hash: u64,
    /// Offset of the key's bytes in [`KeySet::bytes`].
    start: u32,
    /// Length of the key's bytes.
    len: u16,
    /// What kind of entry (or entries) this key came from; OR-ed on duplicates.
    flags: u8,
}

/// Why a key could not be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeySetFull {
    /// The arena would pass 4 GiB (offsets are `u32`).
    Bytes,
    /// More than `u32::MAX - 1` keys.
    Keys,
    /// A key longer than [`MAX_KEY_BYTES`] (callers bound entries well below).
    KeyTooLong,
}

/// A set of byte strings with flags, see the module docs.
#[derive(Debug, Clone)]
pub(crate) struct KeySet {
    /// Hashes every key and every lookup. Runtime-seeded (`ahash::RandomState::new()`):
    /// lookups hash client-controlled bytes (names, addresses from the SMTP session),
    /// and a fixed seed would let a client choose inputs that collide.
    hasher: ahash::RandomState,
    /// Every key's bytes, back to back.
    bytes: Vec<u8>,
    /// The keys in insertion order (first occurrence).
    keys: Vec<Key>,
    /// Indexes into `keys`, or [`EMPTY`]; a power of two long, at most half full.
    slots: Vec<u32>,
}

impl Default for KeySet {
    fn default() -> Self {
        Self {
            hasher: ahash::RandomState::new(),
            bytes: Vec::new(),
            keys: Vec::new(),
            slots: Vec::new(),
        }
    }
}

impl KeySet {
    /// Number of distinct keys.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key has been stored.
    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Store `key` with `flags` (OR-ed into the flags of an equal key already
    /// stored). Returns the key's index (stable: insertion order of first
    /// occurrence) and whether it was new.
    pub(crate) fn insert(&mut self, key: &[u8], flags: u8) -> Result<(usize, bool), KeySetFull> {
        let len = u16::try_from(key.len()).map_err(|_| KeySetFull::KeyTooLong)?;
        let hash = self.hasher.hash_one(key);
        if let Some(index) = self.find(hash, key) {
            self.keys[index].flags |= flags;
            return Ok((index, false));
        }
        let start = u32::try_from(self.bytes.len()).map_err(|_| KeySetFull::Bytes)?;
        if u32::try_from(self.bytes.len() + key.len()).is_err() {
            return Err(KeySetFull::Bytes);
        }
        let index = u32::try_from(self.keys.len())
            .ok()
            .filter(|&i| i < EMPTY)
            .ok_or(KeySetFull::Keys)?;
        if (self.keys.len() + 1) * 2 > self.slots.len() {
            self.grow();
        }
        self.bytes.extend_from_slice(key);
        self.keys.push(Key {
            hash,
            start,
            len,
            flags,
        });
        self.place(hash, index);
        Ok((index as usize, true))
    }

    /// The flags of `key`, if stored. Allocates nothing.
    #[inline]
    pub(crate) fn flags(&self, key: &[u8]) -> Option<u8> {
        self.index_of(key).map(|i| self.keys[i].flags)
    }

    /// The index of `key` (as returned by [`KeySet::insert`]), if stored.
    #[inline]
    pub(crate) fn index_of(&self, key: &[u8]) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        self.find(self.hasher.hash_one(key), key)
    }

    /// Release spare capacity once building is done.
    pub(crate) fn shrink(&mut self) {
        self.bytes.shrink_to_fit();
        self.keys.shrink_to_fit();
    }

    /// Bytes of heap held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
            + self.keys.capacity() * size_of::<Key>()
            + self.slots.capacity() * size_of::<u32>()
    }

    /// The stored keys' bytes and flags, in insertion order.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], u8)> + '_ {
        self.keys.iter().map(|k| (self.key_bytes(k), k.flags))
    }

    fn key_bytes(&self, key: &Key) -> &[u8] {
        let start = key.start as usize;
        &self.bytes[start..start + usize::from(key.len)]
    }

    #[inline]
    fn find(&self, hash: u64, key: &[u8]) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        // Truncation intended: the low bits pick the first slot.
        let mut slot = hash as usize & mask;
        loop {
            let index = self.slots[slot];
            if index == EMPTY {
                return None;
            }
            let stored = &self.keys[index as usize];
            if stored.hash == hash && self.key_bytes(stored) == key {
                return Some(index as usize);
            }
            slot = (slot + 1) & mask;
        }
    }

    /// Put `index` in the first free slot of its probe sequence (the table is
    /// never full: it is kept at most half full).
    fn place(&mut self, hash: u64, index: u32) {
        let mask = self.slots.len() - 1;
        let mut slot = hash as usize & mask;
        while self.slots[slot] != EMPTY {
            slot = (slot + 1) & mask;
        }
        self.slots[slot] = index;
    }

    fn grow(&mut self) {
        let new_len = (self.slots.len() * 2).max(16);
        self.slots = vec![EMPTY; new_len];
        for i in 0..self.keys.len() {
            // `i` < EMPTY: insert refuses more keys.
            self.place(self.keys[i].hash, i as u32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_find_and_merge_flags() {
        let mut set = KeySet::default();
        assert_eq!(set.flags(b"a"), None);
        assert_eq!(set.insert(b"a", 1), Ok((0, true)));
        assert_eq!(set.insert(b"b", 2), Ok((1, true)));
        assert_eq!(set.insert(b"a", 4), Ok((0, false)));
        assert_eq!(set.flags(b"a"), Some(5));
        assert_eq!(set.flags(b"b"), Some(2));
        assert_eq!(set.flags(b""), None);
        assert_eq!(set.insert(b"", 8), Ok((2, true)));
        assert_eq!(set.flags(b""), Some(8));
        assert_eq!(set.len(), 3);
        let long = vec![b'x'; MAX_KEY_BYTES + 1];
        assert_eq!(set.insert(&long, 1), Err(KeySetFull::KeyTooLong));
        assert_eq!(set.insert(&long[1..], 1), Ok((3, true)));
    }

    #[test]
    fn many_keys_survive_growth() {
        let mut set = KeySet::default();
        for i in 0..10_000u32 {
            set.insert(i.to_string().as_bytes(), 1).unwrap();
        }
        set.shrink();
        for i in 0..10_000u32 {
            assert_eq!(set.index_of(i.to_string().as_bytes()), Some(i as usize));
        }
        assert_eq!(set.flags(b"10000"), None);
        assert!(set.slots.len() >= 2 * set.len());
        assert_eq!(set.iter().count(), 10_000);
    }
}
