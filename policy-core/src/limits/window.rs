//! Window counting: one limit of `max` units per `per_ms` milliseconds, counted
//! in a ring of [`BUCKETS`]` + 1` buckets of width `ceil(per_ms / BUCKETS)`.
//!
//! # The guarantee and the rounding
//!
//! A unit counted at millisecond `t` goes into bucket `t / width`. The count a
//! decision at `now` compares with `max` is the sum of **every bucket that
//! overlaps `(now - per_ms, now]`**, the partly expired oldest one included.
//! From this:
//!
//! - **Never too many.** Take any interval of length `per_ms` and the last
//!   admission `t` inside it: every earlier admission inside it lies in
//!   `(t - per_ms, t]`, so its bucket was part of the count at `t`, and that
//!   count plus the new units was at most `max`. So no interval of length
//!   `per_ms` ever holds more than `max` admitted units.
//! - **Refusing early by at most one bucket.** The buckets overlapping
//!   `(now - per_ms, now]` lie inside `(now - per_ms - width, now]`, so a request
//!   is refused only if the units admitted in the last `per_ms + width`
//!   milliseconds plus its own exceed `max`. With [`BUCKETS`] = 16, a limit per
//!   hour may refuse up to 225 s (1 h / 16) earlier than an exact log would.
//!
//! The ring needs `BUCKETS + 1` slots: `(now - per_ms, now]` overlaps at most
//! `floor((per_ms - 1) / width) + 1 <= BUCKETS` buckets, and the extra slot
//! keeps the bucket under way apart from the oldest one still counted.

use super::LimitError;
use crate::keyed::counter::Counter;

/// Buckets per window: the count is exact to within one bucket of
/// `per_ms / BUCKETS`, and each window costs `(BUCKETS + 1) * 4` bytes per key
/// (`* 8` with wide counters). 16 keeps a one-hour window's rounding under 4
/// minutes for 68 bytes.
pub const BUCKETS: usize = 16;

/// Slots in a window's ring (see the module documentation).
pub(crate) const SLOTS: usize = BUCKETS + 1;

/// The longest window, 400 days: enough for a yearly quota, and small enough that
/// timestamps plus windows never come near `u64::MAX` milliseconds.
pub const MAX_WINDOW_MS: u64 = 400 * 24 * 3600 * 1000;

/// One window of a limit: at most `max` units in any `per_ms` milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    max: u64,
    per_ms: u64,
}

impl Window {
    /// At most `max` counted units in any interval of `per_ms` milliseconds.
    ///
    /// `max` may be 0 (everything with units is refused). Fails with
    /// [`LimitError::WindowLength`] unless `1 <= per_ms <= MAX_WINDOW_MS`.
    pub const fn new(max: u64, per_ms: u64) -> Result<Self, LimitError> {
        if per_ms == 0 || per_ms > MAX_WINDOW_MS {
            return Err(LimitError::WindowLength { per_ms });
        }
        Ok(Self { max, per_ms })
    }

    /// The most units admitted in any interval of [`Self::per_ms`].
    pub const fn max(self) -> u64 {
        self.max
    }

    /// The window's length in milliseconds.
    pub const fn per_ms(self) -> u64 {
        self.per_ms
    }

    /// The width of one bucket, `ceil(per_ms / BUCKETS)`, in milliseconds: how
    /// much earlier than an exact count this window may refuse.
    pub const fn bucket_ms(self) -> u64 {
        self.per_ms.div_ceil(BUCKETS as u64)
    }

    /// Index of the oldest bucket overlapping `(now - per_ms, now]`.
    fn lowest_counted(self, now: u64) -> u64 {
        now.saturating_add(1).saturating_sub(self.per_ms) / self.bucket_ms()
    }

    /// Units counted at `now` by a ring last advanced at `last` (`last <= now`).
    pub(crate) fn usage<C: Counter>(self, last: u64, slots: &[C], now: u64) -> u64 {
        let head = last / self.bucket_ms();
        let lo = self.lowest_counted(now);
        if head < lo {
            return 0;
        }
        // Buckets from..=head: at most SLOTS of them, so at most two runs of
        // the ring, summed without an index per bucket.
        let from = lo.max(head.saturating_sub(BUCKETS as u64));
        let (a, b) = (slot(from), slot(head));
        if a <= b {
            C::sum(&slots[a..=b])
        } else {
            C::sum(&slots[a..]).saturating_add(C::sum(&slots[..=b]))
        }
    }

    /// Units in the bucket that a count at `now` goes into, in a ring last
    /// advanced at `last` (`last <= now`).
    pub(crate) fn current<C: Counter>(self, last: u64, slots: &[C], now: u64) -> u64 {
        let width = self.bucket_ms();
        if now / width == last / width {
            slots[slot(now / width)].get()
        } else {
            0
        }
    }

    /// The millisecond at which the bucket after `now`'s starts.
    pub(crate) fn next_bucket_at(self, now: u64) -> u64 {
        let width = self.bucket_ms();
        (now / width + 1).saturating_mul(width)
    }

    /// Counts `units` at `now` in a ring last advanced at `last` (`last <= now`).
    pub(crate) fn add<C: Counter>(self, last: u64, slots: &mut [C], now: u64, units: u64) {
        let width = self.bucket_ms();
        let head = last / width;
        let cur = now / width;
        if cur - head >= SLOTS as u64 {
            slots.fill(C::default());
        } else {
            for i in head + 1..=cur {
                slots[slot(i)] = C::default();
            }
        }
        let s = &mut slots[slot(cur)];
        *s = C::saturating_from(s.get().saturating_add(units));
    }

    /// Takes back `units` counted at `at` in a ring last advanced at `last`:
    /// from bucket `at / width` if the ring still holds it, saturating at zero.
    pub(crate) fn refund<C: Counter>(self, last: u64, slots: &mut [C], at: u64, units: u64) {
        let width = self.bucket_ms();
        let (head, bucket) = (last / width, at / width);
        if bucket <= head && head - bucket < SLOTS as u64 {
            let s = &mut slots[slot(bucket)];
            *s = C::saturating_from(s.get().saturating_sub(units));
        }
    }

    /// Milliseconds from `real_now` until `units` more would be admitted under
    /// a maximum of `max`, if nothing else is counted meanwhile; `None` if
    /// `units > max` (never).
    /// `now >= last` is the time the ring is read at (`real_now` or later).
    pub(crate) fn retry_after<C: Counter>(
        self,
        last: u64,
        slots: &[C],
        now: u64,
        real_now: u64,
        units: u64,
        max: u64,
    ) -> Option<u64> {
        if units > max {
            return None;
        }
        let usage = self.usage(last, slots, now);
        let need = (usage.saturating_add(units)).saturating_sub(max);
        if need == 0 {
            return Some(0);
        }
        let width = self.bucket_ms();
        let head = last / width;
        let from = self
            .lowest_counted(now)
            .max(head.saturating_sub(BUCKETS as u64));
        let mut freed = 0u64;
        let mut leaves = head;
        for i in from..=head {
            freed = freed.saturating_add(slots[slot(i)].get());
            leaves = i;
            if freed >= need {
                break;
            }
        }
        // Bucket `i` stops counting once lowest_counted(t) > i, that is at
        // t = (i + 1) * width + per_ms - 1.
        let free_at = (leaves + 1)
            .saturating_mul(width)
            .saturating_add(self.per_ms - 1);
        Some(free_at.saturating_sub(real_now))
    }

    /// The first millisecond at which a ring last advanced at `last` counts nothing.
    pub(crate) fn empty_from(self, last: u64) -> u64 {
        let width = self.bucket_ms();
        (last / width + 1)
            .saturating_mul(width)
            .saturating_add(self.per_ms - 1)
    }
}

/// The ring slot of bucket index `i`.
fn slot(i: u64) -> usize {
    (i % SLOTS as u64) as usize
}
