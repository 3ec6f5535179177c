//! Rate limits and quotas: `limit` rules, their counters and snapshots.
//!
//! - [`Window`] / [`Limit`]: `max N per T`, one or more windows, all enforced.
//!   A limit of N per T never admits more than N counted units within any
//!   interval of length T; it may refuse up to one bucket (T / [`BUCKETS`])
//!   early. The rounding is described precisely in `window.rs`
//!   ([`Window`]'s module).
//! - [`LimitTable`]: the counters of one limit rule, keyed by a 64-bit hash of
//!   the key ([`Key`]), sharded under `parking_lot` mutexes (the sharded
//!   tables greylists use too). Checking and counting is atomic per key, so
//!   many threads hitting one key admit exactly N; a count can be refunded
//!   ([`LimitTable::refund`]) when the request it was for is refused after
//!   all. The start of each key's text is kept to show the keys counting
//!   most ([`LimitTable::top`]).
//! - Snapshots ([`LimitTable::encode_snapshot`], [`LimitTable::decode_snapshot`],
//!   and [`LimitTable::decode_snapshot_as_written`] to read one without its
//!   rule): bytes in, bytes out, no I/O, key texts included; decoding is all
//!   or nothing. Their framing and
//!   [`SnapshotError`](crate::state::SnapshotError) are shared with greylist
//!   snapshots (`snapshot.rs`).
//! - The rule (`rule.rs`): a compiled `limit` rule, the key and units of a
//!   request, and its step while deciding, which checks and counts through
//!   the state's backend. Compiling a `limit` item stays in the language's
//!   compiler (`lang/compile/limits.rs`): it is a part of the compiler's
//!   own `impl`, and the compiler sits above this module.
//!
//! Nothing here reads the clock: `now` is a [`Timestamp`](crate::Timestamp)
//! argument.
//!
//! # Example
//!
//! ```
//! use policy_core::limits::{Limit, LimitTable, Verdict, Window};
//! use policy_core::state::HashSeeds;
//! use policy_core::Timestamp;
//!
//! // max 2 per 1h, 10 per 1d; at most 100,000 keys. Draw the seeds at random
//! // and keep them with the snapshot.
//! let limit = Limit::new(&[Window::new(2, 3_600_000)?, Window::new(10, 86_400_000)?])?;
//! let table = LimitTable::new(limit.clone(), 100_000, HashSeeds([11, 22, 33, 44]));
//! let key = table.key(b"joe@example.com");
//! let t0 = Timestamp::from_unix_millis(1_700_000_000_000);
//!
//! assert_eq!(table.check_and_count(key, 1, t0), Verdict::Admitted);
//! assert_eq!(table.check_and_count(key, 1, t0), Verdict::Admitted);
//! let Verdict::Refused(refusal) = table.check_and_count(key, 1, t0) else { panic!() };
//! assert_eq!(refusal.window, 0);
//! // Frees up once the bucket (1h / 16 wide) holding the first two units no
//! // longer overlaps the last hour: after at most 1h + one bucket.
//! let after = refusal.retry_after_ms.unwrap();
//! assert!(after > 3_600_000 - 225_000 && after <= 3_600_000 + 225_000);
//!
//! // The final answer refused the request after all: the count is undone.
//! let t1 = Timestamp::from_unix_millis(1_700_000_000_500);
//! let key2 = table.key(b"ann@example.com");
//! assert_eq!(table.check_and_count(key2, 2, t1), Verdict::Admitted);
//! table.refund(key2.hash, 2, t1);
//! let mut usage = [0; 2];
//! table.usage(key2.hash, t1, &mut usage);
//! assert_eq!(usage, [0, 0]);
//!
//! let top = table.top(0, 1, t1);
//! assert_eq!((top[0].text.as_slice(), top[0].units), (&b"joe@example.com"[..], 2));
//!
//! let mut snapshot = Vec::new();
//! table.encode_snapshot(t0, &mut snapshot);
//! let loaded = LimitTable::decode_snapshot(&snapshot, limit, 100_000)?;
//! assert!(matches!(loaded.check_and_count(key, 1, t0), Verdict::Refused(_)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub(crate) mod rule;
pub(crate) mod snapshot;
pub(crate) mod table;
pub(crate) mod window;

#[cfg(test)]
mod tests;

use std::fmt;

pub use rule::{LimitCall, DEFAULT_LIMIT_CAPACITY, MAX_LIMIT_CAPACITY};
pub use snapshot::{SNAPSHOT_MAGIC, SNAPSHOT_VERSION};
pub use table::{Key, LimitTable, Refusal, TopKey, Verdict};
pub use window::{Window, BUCKETS, MAX_WINDOW_MS};

/// The most windows one limit may have. Each costs `(BUCKETS + 1) * 4` bytes
/// per tracked key (`* 8` with wide counters) and a pass over its ring per
/// decision; four covers minute/hour/day/month.
pub const MAX_WINDOWS: usize = 4;

/// Why a [`Window`] or [`Limit`] could not be built.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitError {
    /// A window must last from 1 ms to [`MAX_WINDOW_MS`].
    WindowLength {
        /// The length given.
        per_ms: u64,
    },
    /// A limit needs from 1 to [`MAX_WINDOWS`] windows.
    WindowCount {
        /// The number given.
        found: usize,
    },
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::WindowLength { per_ms } => write!(
                f,
                "expected a window from 1 ms to {MAX_WINDOW_MS} ms (400 days), found {per_ms} ms"
            ),
            Self::WindowCount { found } => write!(
                f,
                "expected 1 to {MAX_WINDOWS} windows in a limit, found {found}"
            ),
        }
    }
}

impl std::error::Error for LimitError {}

/// A limit: one or more [`Window`]s, all enforced (`max 100 per 1h, 1000 per 1d`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Limit {
    windows: Box<[Window]>,
}

impl Limit {
    /// A limit with these windows, in the order given (a [`Refusal`] names a
    /// window by its index in this order).
    pub fn new(windows: &[Window]) -> Result<Self, LimitError> {
        if windows.is_empty() || windows.len() > MAX_WINDOWS {
            return Err(LimitError::WindowCount {
                found: windows.len(),
            });
        }
        Ok(Self {
            windows: windows.into(),
        })
    }

    /// The windows, in the order given to [`Limit::new`].
    pub fn windows(&self) -> &[Window] {
        &self.windows
    }
}
