//! [`Counter`]: the word type of the entries of the sharded tables
//! (`shard`) and of the rings of a limit's
//! [`Window`](crate::limits::Window), below both so that neither imports
//! the other for it.

use std::fmt::Debug;

/// The word entries are made of: for limits, a bucket counter (`u32` for
/// most limits, `u64` for limits whose maximum does not fit in `u32`, e.g.
/// bytes); greylist entries are `u32` words.
pub(crate) trait Counter: Copy + Default + Eq + Debug + Send + 'static {
    /// The largest count a bucket holds.
    const MAX: u64;
    /// Words a `u64` (hash, time) takes.
    const U64_WORDS: usize;
    /// Words before a limit entry's rings: the tag, the hash and the last time.
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
