//! Counters for rate limits and quotas: windowed counts per key in a sharded,
//! bounded table, and a snapshot format to keep them across restarts.
//!
//! - [`Window`] / [`Limit`]: `max N per T`, one or more windows, all enforced.
//!   A limit of N per T never admits more than N counted units within any
//!   interval of length T; it may refuse up to one bucket (T / [`BUCKETS`])
//!   early. The rounding is described precisely in [`Window`]'s module,
//!   [`window`].
//! - [`LimitTable`]: the counters of one limit rule, keyed by a 64-bit hash of
//!   the key bytes, sharded under `parking_lot` mutexes. Checking and counting
//!   is atomic per key, so many threads hitting one key admit exactly N.
//! - Snapshots ([`LimitTable::encode_snapshot`], [`LimitTable::decode_snapshot`]):
//!   bytes in, bytes out, no I/O; decoding is all or nothing.
//!
//! Nothing here reads the clock: `now` is a [`Timestamp`](crate::Timestamp)
//! argument.

pub mod snapshot;
pub mod table;
pub mod window;

#[cfg(test)]
mod tests;

use std::fmt;

pub use snapshot::{SnapshotError, SNAPSHOT_MAGIC, SNAPSHOT_VERSION};
pub use table::{HashSeeds, LimitTable, Refusal, Verdict, MAX_SHARDS, MIN_KEYS_PER_SHARD};
pub use window::{Window, BUCKETS, MAX_WINDOW_MS};

/// The most windows one limit may have. Each costs `(BUCKETS + 1) * 8` bytes
/// per tracked key and a pass over its ring per decision; four covers
/// minute/hour/day/month.
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
