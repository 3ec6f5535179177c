//! Time as the core sees it: a [`Timestamp`] passed in by the caller.

use std::time::{SystemTime, UNIX_EPOCH};

/// A point in time, in milliseconds since the Unix epoch, passed in by the caller.
///
/// `policy-core` never reads the clock: the daemon (or a test with a simulated
/// clock) supplies `now` to every call that needs it, for instance
/// `Timestamp::from(SystemTime::now())`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// A timestamp `millis` milliseconds after the Unix epoch.
    pub const fn from_unix_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_unix_millis(self) -> u64 {
        self.0
    }

    /// `millis` later, saturating at the end of time.
    pub const fn saturating_add_millis(self, millis: u64) -> Self {
        Self(self.0.saturating_add(millis))
    }
}

impl From<SystemTime> for Timestamp {
    /// The whole milliseconds since the Unix epoch, saturating: a time before
    /// 1970 is 0, and one more than `u64::MAX` milliseconds after it (some
    /// 584 million years) is `u64::MAX`. Reading the clock is the caller's
    /// job; this only converts.
    fn from(time: SystemTime) -> Self {
        let millis = time.duration_since(UNIX_EPOCH).map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        });
        Self(millis)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn from_system_time_saturates() {
        let cases: [(SystemTime, u64); 5] = [
            (UNIX_EPOCH, 0),
            (
                UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
                1_700_000_000_123,
            ),
            // Sub-millisecond parts are dropped, never rounded up.
            (UNIX_EPOCH + Duration::from_micros(1_999), 1),
            (UNIX_EPOCH - Duration::from_secs(1), 0),
            (UNIX_EPOCH - Duration::from_nanos(1), 0),
        ];
        for (time, millis) in cases {
            assert_eq!(Timestamp::from(time).as_unix_millis(), millis, "{time:?}");
        }
    }
}
