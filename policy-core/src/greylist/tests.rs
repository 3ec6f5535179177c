//! Tests of the greylist state: scenarios with a simulated clock, proptests
//! against a naive model, bounds, concurrency, snapshots.

use std::collections::HashMap;
use std::sync::Arc;

use proptest::prelude::*;

use super::snapshot::GREYLIST_SNAPSHOT_MAGIC;
use super::table::{GreyCounts, GreyVerdict, GreylistTable, Timers, PASS_COUNT_INTERVAL_MS};
use crate::base::time::Timestamp;
use crate::keyed::HashSeeds;
use crate::limits::snapshot;
use crate::limits::snapshot::SnapshotError;
use crate::limits::LimitTable;

const SEEDS: HashSeeds = HashSeeds([5, 6, 7, 8]);

const SECOND: u64 = 1000;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// A start on a whole second.
const T0: u64 = 1_700_000_000_000;

fn at(ms: u64) -> Timestamp {
    Timestamp::from_unix_millis(ms)
}

fn defer(retry_after_ms: u64, first: bool) -> GreyVerdict {
    GreyVerdict::Defer {
        retry_after_ms,
        first,
    }
}

fn first_pass(waited_ms: u64) -> GreyVerdict {
    GreyVerdict::FirstPass { waited_ms }
}

use GreyVerdict::{ClientWhitelisted as Whitelisted, Known};

/// One attempt of a scenario: milliseconds after T0, client network,
/// triplet, the verdict expected.
type Step = (u64, u64, u64, GreyVerdict);

fn run(table: &GreylistTable, name: &str, steps: &[Step]) {
    for (n, &(dt, client, triplet, want)) in steps.iter().enumerate() {
        // Explaining first answers the same and changes nothing.
        let explained = table.check(client, triplet, at(T0 + dt), false);
        let got = table.check(client, triplet, at(T0 + dt), true);
        assert_eq!(got, want, "{name}, step {n} (+{dt} ms)");
        assert_eq!(explained, want, "{name}, step {n} explained");
    }
}

#[test]
fn scenarios_with_postgrey_defaults() {
    let (a, b, c) = (11, 12, 13);
    let rows: &[(&str, &[Step])] = &[
        (
            "first attempt, too early (not reset), in time, known",
            &[
                (0, 1, a, defer(5 * MINUTE, true)),
                (MINUTE, 1, a, defer(4 * MINUTE, false)),
                (5 * MINUTE - 1, 1, a, defer(1, false)),
                (5 * MINUTE, 1, a, first_pass(5 * MINUTE)),
                (5 * MINUTE + 1, 1, a, Known),
                (DAY, 1, a, Known),
            ],
        ),
        (
            "too late: starts over, then passes in its new cycle",
            &[
                (0, 2, b, defer(5 * MINUTE, true)),
                (2 * DAY, 2, b, first_pass(2 * DAY)),
                (0, 2, c, defer(5 * MINUTE, true)),
                (2 * DAY + SECOND, 2, c, defer(5 * MINUTE, true)),
                (2 * DAY + SECOND + MINUTE, 2, c, defer(4 * MINUTE, false)),
                (2 * DAY + SECOND + 5 * MINUTE, 2, c, first_pass(5 * MINUTE)),
            ],
        ),
        (
            "after max age a passed triplet starts over",
            &[
                (2 * DAY + 35 * DAY, 2, b, Known),
                (2 * DAY + 70 * DAY + SECOND, 2, b, defer(5 * MINUTE, true)),
                (
                    2 * DAY + 70 * DAY + SECOND + 5 * MINUTE,
                    2,
                    b,
                    first_pass(5 * MINUTE),
                ),
            ],
        ),
    ];
    let table = GreylistTable::new(Timers::default(), 1000, SEEDS);
    for (name, steps) in rows {
        run(&table, name, steps);
    }
}

#[test]
fn auto_whitelist_after_n_passes_at_most_one_an_hour() {
    let t = GreylistTable::new(Timers::default(), 1000, SEEDS);
    let c = 7;
    let steps: &[Step] = &[
        (0, c, 1, defer(5 * MINUTE, true)),
        (5 * MINUTE, c, 1, first_pass(5 * MINUTE)), // pass 1
        (10 * MINUTE, c, 1, Known),                 // known: never counted
        (0, c, 2, defer(5 * MINUTE, true)),
        (30 * MINUTE, c, 2, first_pass(30 * MINUTE)), // within the hour: not counted
        (HOUR, c, 3, defer(5 * MINUTE, true)),
        (HOUR + 5 * MINUTE, c, 3, first_pass(5 * MINUTE)), // pass 2
        (2 * HOUR + 5 * MINUTE, c, 1, Known),              // known: not counted
        (2 * HOUR, c, 4, defer(5 * MINUTE, true)),
        (2 * HOUR + 5 * MINUTE, c, 4, first_pass(5 * MINUTE)), // pass 3
        (3 * HOUR, c, 5, defer(5 * MINUTE, true)),
        (3 * HOUR + 5 * MINUTE, c, 5, first_pass(5 * MINUTE)), // pass 4
        (4 * HOUR - MINUTE, c, 6, defer(5 * MINUTE, true)),
        (4 * HOUR + 4 * MINUTE, c, 6, first_pass(5 * MINUTE)), // 59 minutes: not counted
        (4 * HOUR, c, 7, defer(5 * MINUTE, true)),
        (4 * HOUR + 5 * MINUTE, c, 7, first_pass(5 * MINUTE)), // pass 5: whitelisted from now
        (4 * HOUR + 6 * MINUTE, c, 3, Whitelisted),            // a new triplet skips greylisting
        (4 * HOUR + 6 * MINUTE, 8, 20, defer(5 * MINUTE, true)), // another network does not
        // Silent for 35 days: still whitelisted on the last millisecond...
        (4 * HOUR + 6 * MINUTE + 35 * DAY, c, 4, Whitelisted),
        // ...and gone a second after the last touch's 35 days: from no passes.
        (
            4 * HOUR + 6 * MINUTE + 70 * DAY + SECOND,
            c,
            15,
            defer(5 * MINUTE, true),
        ),
        (
            4 * HOUR + 11 * MINUTE + 70 * DAY + SECOND,
            c,
            15,
            first_pass(5 * MINUTE),
        ),
        (
            4 * HOUR + 12 * MINUTE + 70 * DAY + SECOND,
            c,
            6,
            defer(5 * MINUTE, true),
        ),
    ];
    run(&t, "auto-whitelist", steps);
    let now = at(T0 + 4 * HOUR + 12 * MINUTE + 70 * DAY + SECOND);
    assert_eq!(
        t.counts(now),
        GreyCounts {
            pending: 1,
            passed: 1,
            whitelisted_clients: 0,
            clients: 1,
        }
    );
}

#[test]
fn auto_whitelist_off_tracks_no_networks() {
    let timers = Timers {
        auto_whitelist: 0,
        ..Timers::default()
    };
    let t = GreylistTable::new(timers, 1000, SEEDS);
    for h in 0..10 {
        let dt = h * HOUR;
        let want = if h == 0 {
            defer(5 * MINUTE, true)
        } else {
            Known
        };
        if h == 1 {
            assert_eq!(
                t.check(1, 1, at(T0 + 5 * MINUTE), true),
                first_pass(5 * MINUTE)
            );
        }
        assert_eq!(t.check(1, 1, at(T0 + dt), true), want, "hour {h}");
    }
    assert_eq!(t.clients_len(), 0);
    assert_eq!(t.counts(at(T0 + 10 * HOUR)).whitelisted_clients, 0);
}

/// Times are kept in seconds rounded up: a retry exactly `delay` after a
/// first attempt in the middle of a second is deferred until the rounded
/// first attempt's delay is up, never accepted early.
#[test]
fn sub_second_times_round_the_safe_way() {
    let t = GreylistTable::new(Timers::default(), 1000, SEEDS);
    let steps: &[Step] = &[
        (400, 1, 1, defer(5 * MINUTE + 600, true)),
        (5 * MINUTE + 400, 1, 1, defer(600, false)),
        (5 * MINUTE + 999, 1, 1, defer(1, false)),
        (5 * MINUTE + 1000, 1, 1, first_pass(5 * MINUTE)),
    ];
    run(&t, "sub-second", steps);
    // The clock going back: never accepted before the delay, never a panic.
    let t = GreylistTable::new(Timers::default(), 1000, SEEDS);
    assert_eq!(t.check(1, 1, at(T0 + DAY), true), defer(5 * MINUTE, true));
    assert_eq!(t.check(1, 1, at(T0), true), defer(DAY + 5 * MINUTE, false));
    assert_eq!(
        t.check(1, 1, at(T0 + DAY + 5 * MINUTE), true),
        first_pass(5 * MINUTE)
    );
    assert_eq!(t.check(1, 1, at(0), true), Known);
    // Times at the ends of the range.
    let t = GreylistTable::new(Timers::default(), 1000, SEEDS);
    assert_eq!(t.check(1, 1, at(0), true), defer(5 * MINUTE + 1000, true));
    assert!(matches!(
        t.check(1, 2, at(u64::MAX), true),
        GreyVerdict::Defer { .. }
    ));
    assert!(matches!(
        t.check(1, 2, at(u64::MAX), true),
        GreyVerdict::Defer { .. }
    ));
}

#[test]
fn explaining_changes_nothing() {
    let t = GreylistTable::new(Timers::default(), 1000, SEEDS);
    assert_eq!(t.check(1, 1, at(T0), false), defer(5 * MINUTE, true));
    assert!(t.is_empty());
    assert_eq!(t.check(1, 1, at(T0), true), defer(5 * MINUTE, true));
    assert_eq!(
        t.check(1, 1, at(T0 + 5 * MINUTE), false),
        first_pass(5 * MINUTE)
    );
    assert_eq!(
        t.check(1, 1, at(T0 + 6 * MINUTE), false),
        first_pass(6 * MINUTE)
    );
    assert_eq!(t.counts(at(T0 + 6 * MINUTE)).pending, 1);
    assert_eq!(t.clients_len(), 0);
}

#[test]
fn full_table_reclaims_expired_triplets_else_untracked() {
    let timers = Timers {
        delay_ms: 10 * SECOND,
        retry_window_ms: MINUTE,
        max_age_ms: HOUR,
        auto_whitelist: 2,
    };
    // One shard of 16 triplets and 2 client networks.
    let t = GreylistTable::new(timers, 16, SEEDS);
    assert_eq!((t.capacity(), t.client_capacity()), (16, 2));
    for k in 0..16 {
        assert_eq!(t.check(k % 4, k, at(T0), true), defer(10 * SECOND, true));
    }
    // Full of live triplets: a new one is not tracked, explained as such.
    assert_eq!(
        t.check(9, 100, at(T0 + SECOND), false),
        GreyVerdict::Untracked
    );
    assert_eq!(
        t.check(9, 100, at(T0 + SECOND), true),
        GreyVerdict::Untracked
    );
    assert_eq!(t.len(), 16);
    // Triplets 0..4 pass (networks 0..4: only two of them get tracked).
    for k in 0..4 {
        assert_eq!(
            t.check(k, k, at(T0 + 20 * SECOND), true),
            first_pass(20 * SECOND)
        );
    }
    assert_eq!(t.clients_len(), 2);
    // The 12 pending ones expire after the retry window; the passed ones live.
    let later = T0 + MINUTE + SECOND;
    assert_eq!(t.check(9, 100, at(later), false), defer(10 * SECOND, true));
    assert_eq!(t.check(9, 100, at(later), true), defer(10 * SECOND, true));
    assert_eq!(t.len(), 5);
    for k in 0..4 {
        assert_eq!(t.check(k, k, at(later), true), Known);
    }
    assert_eq!(
        t.counts(at(later)),
        GreyCounts {
            pending: 1,
            passed: 4,
            whitelisted_clients: 0,
            clients: 2,
        }
    );
    // A table of no capacity tracks nothing and fails open.
    let t = GreylistTable::new(timers, 0, SEEDS);
    assert_eq!(t.check(1, 1, at(T0), true), GreyVerdict::Untracked);
}

#[test]
fn a_full_client_table_counts_no_new_network() {
    let timers = Timers {
        delay_ms: SECOND,
        retry_window_ms: MINUTE,
        max_age_ms: DAY,
        auto_whitelist: 1,
    };
    // 16 triplets, 2 networks.
    let t = GreylistTable::new(timers, 16, SEEDS);
    for c in 0..3 {
        t.check(c, c, at(T0), true);
        assert_eq!(t.check(c, c, at(T0 + SECOND), true), first_pass(SECOND));
    }
    // Networks 0 and 1 are whitelisted after one pass; 2 found no room.
    assert_eq!(t.check(0, 50, at(T0 + 2 * SECOND), true), Whitelisted);
    assert_eq!(t.check(1, 51, at(T0 + 2 * SECOND), true), Whitelisted);
    assert_eq!(
        t.check(2, 52, at(T0 + 2 * SECOND), true),
        defer(SECOND, true)
    );
    assert_eq!(t.check(2, 2, at(T0 + 2 * SECOND), true), Known);
    // Once network 1 has been silent a day, network 2's pass takes its place.
    assert_eq!(t.check(0, 50, at(T0 + DAY / 2), true), Whitelisted);
    assert_eq!(t.check(2, 2, at(T0 + DAY / 2), true), Known);
    // (A known triplet's delivery counts no pass; a first accepted retry does.)
    assert_eq!(
        t.check(2, 60, at(T0 + DAY + 2 * SECOND), true),
        defer(SECOND, true)
    );
    assert_eq!(
        t.check(2, 60, at(T0 + DAY + 3 * SECOND), true),
        first_pass(SECOND)
    );
    assert_eq!(t.check(2, 53, at(T0 + DAY + 4 * SECOND), true), Whitelisted);
    assert_eq!(
        t.check(1, 54, at(T0 + DAY + 4 * SECOND), true),
        defer(SECOND, true)
    );
}

#[test]
fn threads_on_one_triplet_pass_it_once() {
    let t = Arc::new(GreylistTable::new(Timers::default(), 1000, SEEDS));
    let run = |now: u64| {
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let t = Arc::clone(&t);
                std::thread::spawn(move || {
                    (0..100)
                        .map(|_| t.check(1, 1, at(now), true))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all = Vec::new();
        for th in threads {
            all.extend(th.join().unwrap());
        }
        all
    };
    let first = run(T0);
    assert_eq!(
        first
            .iter()
            .filter(|v| **v == defer(5 * MINUTE, true))
            .count(),
        1
    );
    assert_eq!(
        first
            .iter()
            .filter(|v| **v == defer(5 * MINUTE, false))
            .count(),
        799
    );
    let retry = run(T0 + 5 * MINUTE);
    assert_eq!(
        retry
            .iter()
            .filter(|v| **v == first_pass(5 * MINUTE))
            .count(),
        1
    );
    assert_eq!(retry.iter().filter(|v| **v == Known).count(), 799);
}

/// Threads passing different triplets of one network at once count one
/// pass for it, not one each.
#[test]
fn threads_passing_one_network_count_one_pass() {
    let timers = Timers {
        auto_whitelist: 2,
        ..Timers::default()
    };
    let t = Arc::new(GreylistTable::new(timers, 1000, SEEDS));
    for k in 0..8 {
        t.check(1, k, at(T0), true);
    }
    let threads: Vec<_> = (0..8)
        .map(|k| {
            let t = Arc::clone(&t);
            std::thread::spawn(move || t.check(1, k, at(T0 + 5 * MINUTE), true))
        })
        .collect();
    for th in threads {
        assert_eq!(th.join().unwrap(), first_pass(5 * MINUTE));
    }
    assert_eq!(t.counts(at(T0 + 5 * MINUTE)).whitelisted_clients, 0);
    assert_eq!(
        t.check(1, 100, at(T0 + 6 * MINUTE), true),
        defer(5 * MINUTE, true)
    );
    // A known triplet's deliveries do not count; a second triplet's first
    // accepted retry an hour later does, and whitelists the network.
    assert_eq!(t.check(1, 0, at(T0 + HOUR + 5 * MINUTE), true), Known);
    assert_eq!(
        t.check(1, 101, at(T0 + HOUR + 5 * MINUTE), true),
        defer(5 * MINUTE, true)
    );
    assert_eq!(t.counts(at(T0 + HOUR + 5 * MINUTE)).whitelisted_clients, 0);
    assert_eq!(
        t.check(1, 101, at(T0 + HOUR + 10 * MINUTE), true),
        first_pass(5 * MINUTE)
    );
    assert_eq!(
        t.check(1, 102, at(T0 + HOUR + 10 * MINUTE), true),
        Whitelisted
    );
}

#[test]
fn bytes_per_triplet() {
    let t = GreylistTable::new(Timers::default(), 1 << 20, SEEDS);
    let triplets = 200_000u64;
    for k in 0..triplets {
        let client = t.hash_key(&(k / 10).to_le_bytes());
        let triplet = t.hash_key(&k.to_le_bytes());
        assert_eq!(
            t.check(client, triplet, at(T0), true),
            defer(5 * MINUTE, true)
        );
        if k % 10 == 0 {
            assert_eq!(
                t.check(client, triplet, at(T0 + 5 * MINUTE), true),
                first_pass(5 * MINUTE)
            );
        }
    }
    assert_eq!(t.len() as u64, triplets);
    assert_eq!(t.clients_len() as u64, triplets / 10);
    let per = t.heap_bytes() as f64 / triplets as f64;
    println!("{per:.1} heap bytes per triplet (one network per 10 triplets)");
    // Triplets: 16 bytes at 1/2 to 3/4 load; networks: 20 bytes, 1/10 as many.
    assert!((21.0..=32.0 + 4.0 + 1.0).contains(&per), "{per}");
}

// ---------------------------------------------------------------------------
// Against a naive model

/// postgrey's rules written plainly, in exact milliseconds, with maps.
#[derive(Default)]
struct Model {
    timers: Timers,
    /// Triplet: (first attempt, or None once passed; last seen).
    triplets: HashMap<u64, (Option<u64>, u64)>,
    /// Network: (passes, last counted pass, last seen).
    clients: HashMap<u64, (u32, u64, u64)>,
}

impl Model {
    fn check(&mut self, client: u64, triplet: u64, now: u64, update: bool) -> GreyVerdict {
        let t = self.timers;
        if t.auto_whitelist > 0 {
            if let Some(c) = self.clients.get_mut(&client) {
                if c.0 >= t.auto_whitelist && now.saturating_sub(c.2) <= t.max_age_ms {
                    if update {
                        c.2 = c.2.max(now);
                    }
                    return Whitelisted;
                }
            }
        }
        let restart = defer(t.delay_ms, true);
        let verdict = match self.triplets.get(&triplet) {
            None => restart,
            Some(&(None, last)) if now.saturating_sub(last) <= t.max_age_ms => Known,
            Some(&(Some(first), _)) => {
                let age = now.saturating_sub(first);
                if age < t.delay_ms {
                    defer(first + t.delay_ms - now, false)
                } else if age <= t.retry_window_ms {
                    first_pass(age)
                } else {
                    restart
                }
            }
            Some(_) => restart,
        };
        if update {
            let e = self.triplets.entry(triplet).or_insert((Some(now), now));
            e.1 = e.1.max(now);
            match verdict {
                GreyVerdict::FirstPass { .. } => e.0 = None,
                GreyVerdict::Defer { first: true, .. } => e.0 = Some(now),
                _ => {}
            }
            if t.auto_whitelist > 0 && matches!(verdict, GreyVerdict::FirstPass { .. }) {
                let c = self.clients.entry(client).or_insert((0, 0, now));
                if now.saturating_sub(c.2) > t.max_age_ms {
                    *c = (0, 0, now);
                }
                if c.0 == 0 || now >= c.1 + PASS_COUNT_INTERVAL_MS {
                    c.0 += 1;
                    c.1 = now;
                }
                c.2 = c.2.max(now);
            }
        }
        verdict
    }
}

fn timers() -> impl Strategy<Value = Timers> {
    (1u64..900, 0u64..7200, 1u64..30_000, 0u32..4).prop_map(|(d, w, a, n)| Timers {
        delay_ms: d * SECOND,
        retry_window_ms: (d + w) * SECOND,
        max_age_ms: a * SECOND,
        auto_whitelist: n,
    })
}

/// Attempts: (seconds since the previous one, network, triplet, update).
fn attempts() -> impl Strategy<Value = Vec<(u64, u64, u64, bool)>> {
    let gap = prop_oneof![0u64..5, 0u64..1000, 3000u64..4000, 0u64..40_000];
    prop::collection::vec((gap, 0u64..3, 0u64..5, prop::bool::weighted(0.9)), 1..200)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// With times on whole seconds (no rounding), the table answers exactly
    /// as the naive model, explaining and deciding, on random arrivals.
    #[test]
    fn whole_seconds_against_the_model(timers in timers(), steps in attempts()) {
        let table = GreylistTable::new(timers, 10_000, SEEDS);
        let mut model = Model { timers, ..Model::default() };
        let mut now = T0;
        for (n, (gap, client, triplet, update)) in steps.into_iter().enumerate() {
            now += gap * SECOND;
            let want = model.check(client, triplet, now, update);
            prop_assert_eq!(table.check(client, triplet, at(now), update), want, "step {}", n);
        }
    }

    /// With times anywhere in a millisecond range, no triplet is ever
    /// accepted before `delay` has passed since the first attempt of its
    /// current cycle (the attempt answered `Defer { first: true }`), a
    /// known triplet passed in its cycle, and the answers agree with the
    /// model's wherever rounding to seconds cannot matter.
    #[test]
    fn never_accepted_before_the_delay(
        timers in timers(),
        steps in prop::collection::vec(
            (0u8..3, 0u64..2_000_000, 0u64..3, 0u64..5, prop::bool::weighted(0.9)), 1..200),
    ) {
        let table = GreylistTable::new(timers, 10_000, SEEDS);
        // Per triplet: the start of its cycle, and whether it passed in it.
        let mut cycles: HashMap<u64, (u64, bool)> = HashMap::new();
        let mut now = T0;
        for (kind, gap, client, triplet, update) in steps {
            // Any gap, a short one, or one landing within 1.5 s of the
            // triplet's delay being up (where rounding could go wrong).
            now = match (kind, cycles.get(&triplet)) {
                (0, _) => now + gap,
                (1, _) => now + gap % 2000,
                (_, Some(&(start, _))) => now.max(start + timers.delay_ms + gap % 3000 - 1500),
                (_, None) => now + gap,
            };
            let v = table.check(client, triplet, at(now), update);
            let cycle = cycles.get(&triplet).copied();
            match v {
                GreyVerdict::FirstPass { waited_ms } => {
                    let (start, _) = cycle.expect("a first attempt before a pass");
                    prop_assert!(now - start >= timers.delay_ms, "passed early");
                    prop_assert!(waited_ms >= timers.delay_ms && waited_ms <= now - start);
                }
                Known => prop_assert!(cycle.is_some_and(|(_, passed)| passed)),
                GreyVerdict::Defer { retry_after_ms, first } => {
                    prop_assert!(retry_after_ms >= timers.delay_ms.min(retry_after_ms));
                    if first {
                        prop_assert!(retry_after_ms >= timers.delay_ms);
                        prop_assert!(retry_after_ms < timers.delay_ms + SECOND);
                    } else {
                        let (start, _) = cycle.expect("a first attempt before a retry");
                        prop_assert_eq!(cycle.map(|c| c.1), Some(false));
                        // Accepted no earlier than delay after the cycle's start.
                        prop_assert!(now + retry_after_ms >= start + timers.delay_ms);
                        prop_assert!(now + retry_after_ms < start + timers.delay_ms + SECOND);
                    }
                }
                Whitelisted => prop_assert!(timers.auto_whitelist > 0),
                GreyVerdict::Untracked => prop_assert!(false, "the table has room"),
            }
            if update {
                match v {
                    GreyVerdict::Defer { first: true, .. } => {
                        cycles.insert(triplet, (now, false));
                    }
                    GreyVerdict::FirstPass { .. } => {
                        cycles.get_mut(&triplet).expect("a cycle").1 = true;
                    }
                    _ => {}
                }
            }
        }
    }

    /// Snapshots of random states decode to tables that answer every
    /// question as the original does.
    #[test]
    fn snapshot_round_trip(timers in timers(), steps in attempts()) {
        let table = GreylistTable::new(timers, 10_000, SEEDS);
        let mut now = T0;
        for (gap, client, triplet, update) in steps {
            now += gap * SECOND;
            table.check(client, triplet, at(now), update);
        }
        let mut bytes = Vec::new();
        table.encode_snapshot(at(now), &mut bytes);
        let back = GreylistTable::decode_snapshot(&bytes, timers, 10_000).unwrap();
        let written = GreylistTable::decode_snapshot_as_written(&bytes, 10_000).unwrap();
        prop_assert_eq!(written.timers(), timers);
        prop_assert_eq!(back.seeds(), SEEDS);
        for later in [0, SECOND, HOUR, DAY, 40 * DAY] {
            prop_assert_eq!(back.counts(at(now + later)), table.counts(at(now + later)));
            for client in 0..3 {
                for triplet in 0..5 {
                    let when = at(now + later);
                    prop_assert_eq!(
                        back.check(client, triplet, when, false),
                        table.check(client, triplet, when, false)
                    );
                }
            }
        }
        let mut again = Vec::new();
        back.encode_snapshot(at(now), &mut again);
        prop_assert_eq!(again, bytes);
    }
}

// ---------------------------------------------------------------------------
// Snapshots

/// A table with pending and passed triplets and whitelisted and plain
/// networks, its snapshot, and the time it was written at.
fn sample() -> (GreylistTable, Vec<u8>, u64) {
    let timers = Timers {
        auto_whitelist: 2,
        ..Timers::default()
    };
    let t = GreylistTable::new(timers, 1000, SEEDS);
    for k in 0..6 {
        t.check(k % 3, k, at(T0), true);
    }
    for k in 0..3 {
        t.check(k % 3, k, at(T0 + 5 * MINUTE), true);
    }
    // Network 0's second counted pass: triplet 3's first accepted retry.
    t.check(0, 3, at(T0 + 2 * HOUR), true);
    let now = T0 + 2 * HOUR;
    let mut bytes = Vec::new();
    t.encode_snapshot(at(now), &mut bytes);
    (t, bytes, now)
}

#[test]
fn sample_snapshot_holds_every_kind() {
    let (t, bytes, now) = sample();
    let counts = t.counts(at(now));
    assert_eq!(
        counts,
        GreyCounts {
            pending: 2,
            passed: 4,
            whitelisted_clients: 1,
            clients: 3,
        }
    );
    assert_eq!(&bytes[..8], &GREYLIST_SNAPSHOT_MAGIC);
    let back = GreylistTable::decode_snapshot(&bytes, t.timers(), 1000).unwrap();
    assert_eq!(back.counts(at(now)), counts);
    assert_eq!(back.check(0, 99, at(now), true), Whitelisted);
    // Other timers apply to the same entries.
    let strict = Timers {
        auto_whitelist: 3,
        ..t.timers()
    };
    let back = GreylistTable::decode_snapshot(&bytes, strict, 1000).unwrap();
    assert_eq!(back.timers(), strict);
    assert_eq!(back.counts(at(now)).whitelisted_clients, 0);
    // Expired entries are left out: after 2 days the pending ones.
    let mut later = Vec::new();
    t.encode_snapshot(at(T0 + 3 * DAY), &mut later);
    let back = GreylistTable::decode_snapshot_as_written(&later, 1000).unwrap();
    assert_eq!((back.len(), back.clients_len()), (4, 3));
    // A bound too small for the snapshot: nothing loaded.
    assert_eq!(
        GreylistTable::decode_snapshot(&bytes, t.timers(), 5).unwrap_err(),
        SnapshotError::TooManyKeys { capacity: 5 }
    );
    assert_eq!(
        GreylistTable::decode_snapshot(&bytes, t.timers(), 16).unwrap_err(),
        SnapshotError::TooManyKeys { capacity: 2 }
    );
    // A limit snapshot is not a greylist snapshot, nor the reverse.
    assert_eq!(
        GreylistTable::decode_snapshot_as_written(b"PDLIMIT\0\x02\0\0\0", 10).unwrap_err(),
        SnapshotError::BadMagic
    );
    assert_eq!(
        LimitTable::decode_snapshot_as_written(&bytes, 10).unwrap_err(),
        SnapshotError::BadMagic
    );
}

#[test]
fn every_prefix_of_a_snapshot_fails_cleanly() {
    let (t, bytes, _) = sample();
    for n in 0..bytes.len() {
        let err = GreylistTable::decode_snapshot(&bytes[..n], t.timers(), 1000).unwrap_err();
        assert!(
            matches!(
                err,
                SnapshotError::Truncated { .. } | SnapshotError::BadMagic
            ),
            "prefix of {n} bytes: {err:?}"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        GreylistTable::decode_snapshot(&longer, t.timers(), 1000),
        Err(SnapshotError::TrailingBytes { .. })
    ));
}

#[test]
fn every_changed_byte_of_a_snapshot_is_an_error() {
    let (t, bytes, _) = sample();
    for i in 0..bytes.len() {
        for flip in [0x01, 0x80, 0xff] {
            let mut bad = bytes.clone();
            bad[i] ^= flip;
            let err = GreylistTable::decode_snapshot(&bad, t.timers(), 1000).unwrap_err();
            assert!(!err.to_string().is_empty(), "byte {i}");
        }
    }
}

/// Snapshots valid but for one field (re-checksummed): each is named.
#[test]
fn snapshot_errors_behind_a_valid_checksum() {
    let (t, bytes, _) = sample();
    let body = bytes.len() - 8;
    let reseal = |mut b: Vec<u8>| {
        b.truncate(b.len() - 8);
        let sum = snapshot::checksum(&b);
        b.extend_from_slice(&sum.to_le_bytes());
        b
    };
    let decode = |b: &[u8]| GreylistTable::decode_snapshot(b, t.timers(), 1000).unwrap_err();
    // Header: magic 8, version 4, length 8, seeds 32, probe 8, timers 28.
    let triplets_at = 8 + 4 + 8 + 32 + 8 + 28;
    let first_entry = triplets_at + 8;
    let mut version = bytes.clone();
    version[8] = 9;
    assert_eq!(
        decode(&version),
        SnapshotError::UnsupportedVersion { found: 9 }
    );
    let mut probe = bytes.clone();
    probe[52] ^= 1;
    assert_eq!(decode(&reseal(probe)), SnapshotError::HasherChanged);
    // An entry's last time of 0, a first attempt after the last time.
    let mut zero = bytes.clone();
    zero[first_entry + 8..first_entry + 12].fill(0);
    assert_eq!(decode(&reseal(zero)), SnapshotError::BadEntry { index: 0 });
    let mut order = bytes.clone();
    order[first_entry + 12..first_entry + 16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(decode(&reseal(order)), SnapshotError::BadEntry { index: 0 });
    // Two entries swapped: out of order.
    let mut swapped = bytes.clone();
    let (a, b) = (first_entry, first_entry + 16);
    let first: Vec<u8> = swapped[a..b].to_vec();
    swapped.copy_within(b..b + 16, a);
    swapped[b..b + 16].copy_from_slice(&first);
    assert_eq!(
        decode(&reseal(swapped)),
        SnapshotError::EntriesOutOfOrder { index: 1 }
    );
    // A count that promises more than the body holds.
    let mut count = bytes.clone();
    count[triplets_at..triplets_at + 8].copy_from_slice(&1000u64.to_le_bytes());
    assert_eq!(decode(&reseal(count)), SnapshotError::BadLength);
    // A client network with no pass (the last field of the last entry).
    let mut passes = bytes.clone();
    passes[body - 4..body].fill(0);
    assert_eq!(
        decode(&reseal(passes)),
        SnapshotError::BadEntry { index: 8 }
    );
}

#[test]
fn a_full_shard_reclaims_an_entry_that_expires_before_the_last_sweeps_earliest() {
    // One shard (capacity < 2 * MIN_KEYS_PER_SHARD), two triplets at most.
    let timers = Timers {
        delay_ms: SECOND,
        retry_window_ms: 10 * SECOND,
        max_age_ms: 1000 * SECOND,
        auto_whitelist: 0,
    };
    let t = GreylistTable::new(timers, 2, SEEDS);
    assert_eq!(t.capacity(), 2);
    // A passes (expires at +1001s); B pending (expires at +10s).
    assert!(matches!(
        t.check(1, 100, at(T0), true),
        GreyVerdict::Defer { first: true, .. }
    ));
    assert!(matches!(
        t.check(1, 100, at(T0 + SECOND), true),
        GreyVerdict::FirstPass { .. }
    ));
    assert!(matches!(
        t.check(1, 200, at(T0), true),
        GreyVerdict::Defer { first: true, .. }
    ));
    // +11s: C new, the shard is full: B (expired) is reclaimed; next_sweep := A's expiry.
    assert!(matches!(
        t.check(1, 300, at(T0 + 11 * SECOND), true),
        GreyVerdict::Defer { first: true, .. }
    ));
    // +30s: C expired at +21s, so D should get C's place.
    let got = t.check(1, 400, at(T0 + 30 * SECOND), true);
    assert!(
        matches!(got, GreyVerdict::Defer { first: true, .. }),
        "got {got:?}"
    );
}
