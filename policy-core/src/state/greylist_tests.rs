//! Tests of the greylist state: scenarios with a simulated clock, a proptest
//! against a naive model, bounds, snapshots.

use super::*;
use crate::engine::Timestamp;

const SEEDS: HashSeeds = HashSeeds([5, 6, 7, 8]);

fn at(ms: u64) -> Timestamp {
    Timestamp::from_unix_millis(ms)
}

#[test]
fn smoke() {
    let t = GreylistTable::new(Timers::default(), 1000, SEEDS);
    let t0 = 1_700_000_000_000;
    assert_eq!(
        t.check(1, 2, at(t0), true),
        GreyVerdict::Defer {
            retry_after_ms: 300_000,
            first: true
        }
    );
    assert_eq!(
        t.check(1, 2, at(t0 + 300_000), true),
        GreyVerdict::FirstPass { waited_ms: 300_000 }
    );
    assert_eq!(t.check(1, 2, at(t0 + 400_000), true), GreyVerdict::Known);
}
