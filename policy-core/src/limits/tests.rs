//! Tests of the limit state: windows against a naive exact log, the table's
//! bound and concurrency, snapshots.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use proptest::prelude::*;

use super::snapshot::SnapshotError;
use super::*;
use crate::base::time::Timestamp;
use crate::keyed::{HashSeeds, KEY_TEXT_BYTES};

const SEEDS: HashSeeds = HashSeeds([1, 2, 3, 4]);

fn at(ms: u64) -> Timestamp {
    Timestamp::from_unix_millis(ms)
}

/// A key given by its hash alone (no text to show).
fn k(hash: u64) -> Key<'static> {
    Key { hash, text: b"" }
}

fn limit(windows: &[(u64, u64)]) -> Limit {
    let ws: Vec<Window> = windows
        .iter()
        .map(|&(max, per)| Window::new(max, per).unwrap())
        .collect();
    Limit::new(&ws).unwrap()
}

#[test]
fn config_errors() {
    let rows: [(Result<Window, LimitError>, Result<(), LimitError>); 3] = [
        (
            Window::new(1, 0),
            Err(LimitError::WindowLength { per_ms: 0 }),
        ),
        (
            Window::new(1, MAX_WINDOW_MS + 1),
            Err(LimitError::WindowLength {
                per_ms: MAX_WINDOW_MS + 1,
            }),
        ),
        (Window::new(1, MAX_WINDOW_MS), Ok(())),
    ];
    for (got, want) in rows {
        assert_eq!(got.map(|_| ()), want);
    }
    assert_eq!(Limit::new(&[]), Err(LimitError::WindowCount { found: 0 }));
    let w = Window::new(1, 1000).unwrap();
    assert_eq!(
        Limit::new(&[w; MAX_WINDOWS + 1]),
        Err(LimitError::WindowCount {
            found: MAX_WINDOWS + 1
        })
    );
    assert!(LimitError::WindowCount { found: 9 }
        .to_string()
        .contains("found 9"));
}

#[test]
fn n_per_window_then_refused_then_frees_up() {
    // 3 per 1600 ms: buckets of 100 ms.
    let t = LimitTable::new(limit(&[(3, 1600)]), 100, SEEDS);
    let k = t.key(b"joe@example.com");
    for ms in [0, 10, 250] {
        assert_eq!(t.check_and_count(k, 1, at(ms)), Verdict::Admitted, "{ms}");
    }
    // The first unit (bucket 0, [0, 100)) stops counting once (now - 1600, now]
    // no longer overlaps it: at now = 100 + 1600 - 1 = 1699.
    let Verdict::Refused(r) = t.check_and_count(k, 1, at(300)) else {
        panic!("expected a refusal")
    };
    assert_eq!(r.window, 0);
    assert_eq!(r.counted, 3);
    assert_eq!(r.retry_after_ms, Some(1699 - 300));
    assert!(matches!(t.check(k, 1, at(1698)), Verdict::Refused(_)));
    assert_eq!(t.check(k, 1, at(1699)), Verdict::Admitted);
    // Asking for 2 frees up with bucket 0 (2 units) too; 3 needs the 250 ms
    // unit's bucket 2 ([200, 300)) to leave, at 300 + 1599.
    let Verdict::Refused(r) = t.check(k, 2, at(300)) else {
        panic!("expected a refusal")
    };
    assert_eq!(r.retry_after_ms, Some(1699 - 300));
    let Verdict::Refused(r) = t.check(k, 3, at(300)) else {
        panic!("expected a refusal")
    };
    assert_eq!(r.retry_after_ms, Some(1899 - 300));
    // More than max never fits.
    let Verdict::Refused(r) = t.check(k, 4, at(300)) else {
        panic!("expected a refusal")
    };
    assert_eq!(r.retry_after_ms, None);
    // Refusals counted nothing.
    let mut usage = [0u64];
    t.usage(k.hash, at(300), &mut usage);
    assert_eq!(usage, [3]);
    // Another key is independent.
    assert_eq!(
        t.check_and_count(t.key(b"ann"), 3, at(300)),
        Verdict::Admitted
    );
}

#[test]
fn every_window_enforced_and_the_later_one_reported() {
    // 2 per 160 ms and 3 per 1600 ms.
    let t = LimitTable::new(limit(&[(2, 160), (3, 1600)]), 100, SEEDS);
    let k = t.key(b"k");
    assert_eq!(t.check_and_count(k, 2, at(0)), Verdict::Admitted);
    let Verdict::Refused(r) = t.check_and_count(k, 1, at(5)) else {
        panic!("expected a refusal")
    };
    assert_eq!((r.window, r.retry_after_ms), (0, Some(10 + 159 - 5)));
    assert_eq!(t.check_and_count(k, 1, at(200)), Verdict::Admitted);
    let Verdict::Refused(r) = t.check_and_count(k, 1, at(400)) else {
        panic!("expected a refusal")
    };
    assert_eq!(r.window, 1);
    assert_eq!(r.counted, 3);
    // Both over: the one freeing later is named.
    let Verdict::Refused(r) = t.check_and_count(k, 2, at(210)) else {
        panic!("expected a refusal")
    };
    assert_eq!(r.window, 1);
    assert_eq!(r.retry_after_ms, Some(100 + 1599 - 210));
}

#[test]
fn per_key_maxima_override_the_limit() {
    // 2 per 1600 ms and 3 per 16 s; one key allowed 4 and 5.
    let t = LimitTable::new(limit(&[(2, 1600), (3, 16_000)]), 10, SEEDS);
    let big = [4, 5];
    assert_eq!(
        t.check_and_count_with(k(1), 4, at(0), &big),
        Verdict::Admitted
    );
    let Verdict::Refused(r) = t.check_with(k(1), 1, at(0), &big) else {
        panic!("expected a refusal")
    };
    assert_eq!((r.window, r.counted), (0, 4));
    assert_eq!(
        t.check_with(k(1), 5, at(0), &[9]),
        Verdict::Refused(Refusal {
            window: 1,
            counted: 4,
            retry_after_ms: None,
        })
    );
    // Without the override the same counters are over the limit's own maxima.
    assert!(matches!(t.check(k(1), 1, at(5000)), Verdict::Refused(r) if r.window == 1));
    assert_eq!(
        t.check_and_count_with(k(1), 1, at(5000), &big),
        Verdict::Admitted
    );
    // A new key over an overridden max is refused without being tracked.
    assert!(matches!(
        t.check_and_count_with(k(2), 3, at(0), &[1]),
        Verdict::Refused(_)
    ));
    assert_eq!(t.len(), 1);
}

#[test]
fn units_zero_and_max_zero() {
    let t = LimitTable::new(limit(&[(0, 1000)]), 10, SEEDS);
    assert_eq!(t.check_and_count(k(7), 0, at(0)), Verdict::Admitted);
    assert!(t.is_empty());
    assert_eq!(
        t.check_and_count(k(7), 1, at(0)),
        Verdict::Refused(Refusal {
            window: 0,
            counted: 0,
            retry_after_ms: None
        })
    );
    assert!(t.is_empty(), "a refused new key is not tracked");
}

#[test]
fn clock_going_back_counts_at_the_latest_time_seen() {
    let t = LimitTable::new(limit(&[(2, 1600)]), 10, SEEDS);
    assert_eq!(t.check_and_count(k(1), 2, at(10_000)), Verdict::Admitted);
    assert!(matches!(
        t.check_and_count(k(1), 1, at(0)),
        Verdict::Refused(_)
    ));
    assert!(matches!(
        t.check_and_count(k(1), 1, at(11_000)),
        Verdict::Refused(_)
    ));
    assert_eq!(t.check_and_count(k(1), 1, at(11_699)), Verdict::Admitted);
}

#[test]
fn full_table_reclaims_expired_keys_else_admits_untracked() {
    // One shard of 4 keys, 1 per 1600 ms (entries empty 1699 ms after a count at 0..100).
    let t = LimitTable::new(limit(&[(1, 1600)]), 4, SEEDS);
    assert_eq!(t.capacity(), 4);
    for n in 0..4 {
        assert_eq!(t.check_and_count(k(n), 1, at(0)), Verdict::Admitted);
    }
    assert_eq!(t.check_and_count(k(10), 1, at(50)), Verdict::Untracked);
    assert_eq!(t.check_and_count(k(10), 1, at(60)), Verdict::Untracked);
    assert_eq!(t.len(), 4);
    // Live keys keep their counts: no eviction.
    assert!(matches!(
        t.check_and_count(k(0), 1, at(70)),
        Verdict::Refused(_)
    ));
    // Keys 1..4 expire at 1699; key 0 is refreshed by a count at 1699 first.
    assert_eq!(t.check_and_count(k(0), 1, at(1699)), Verdict::Admitted);
    for n in 10..13 {
        assert_eq!(t.check_and_count(k(n), 1, at(1700)), Verdict::Admitted);
    }
    assert_eq!(t.check_and_count(k(13), 1, at(1700)), Verdict::Untracked);
    assert_eq!(t.len(), 4);
    assert!(matches!(
        t.check_and_count(k(0), 1, at(1700)),
        Verdict::Refused(_)
    ));
    t.clear();
    assert!(t.is_empty());
}

#[test]
fn top_keys_of_a_window() {
    let t = LimitTable::new(limit(&[(100, 1600), (100, 16_000)]), 5000, SEEDS);
    for (name, units, ms) in [("a", 5, 0), ("b", 9, 0), ("c", 7, 2000), ("d", 1, 2000)] {
        let k = t.key(name.as_bytes());
        assert_eq!(t.check_and_count(k, units, at(ms)), Verdict::Admitted);
    }
    let row = |n: &str, units| TopKey {
        hash: t.hash_key(n.as_bytes()),
        text: n.as_bytes().to_vec(),
        truncated: false,
        units,
    };
    assert_eq!(t.top(0, 2, at(2000)), vec![row("c", 7), row("d", 1)]);
    assert_eq!(
        t.top(1, 3, at(2000)),
        vec![row("b", 9), row("c", 7), row("a", 5)]
    );
    assert_eq!(t.top(1, 9, at(2000)).len(), 4);
    assert!(t.top(2, 3, at(2000)).is_empty());
    assert!(t.top(0, 0, at(2000)).is_empty());
}

#[test]
fn key_texts_are_kept_truncated_past_the_limit() {
    let t = LimitTable::new(limit(&[(100, 1600)]), 5000, SEEDS);
    let long = [b'x'; KEY_TEXT_BYTES + 10];
    let exact = [b'y'; KEY_TEXT_BYTES - 1];
    let rows: [(&[u8], &[u8], bool); 4] = [
        (b"", b"", false),
        (b"joe@example.com", b"joe@example.com", false),
        (&exact, &exact, false),
        (&long, &long[..KEY_TEXT_BYTES - 1], true),
    ];
    for (units, (text, kept, truncated)) in (1..).zip(rows) {
        let key = t.key(text);
        assert_eq!(key.hash, t.hash_key(text));
        assert_eq!(t.check_and_count(key, units, at(0)), Verdict::Admitted);
        // The text is the first one seen with the hash; later ones do not replace it.
        assert_eq!(
            t.check_and_count(
                Key {
                    hash: key.hash,
                    text: b"other"
                },
                0,
                at(0)
            ),
            Verdict::Admitted
        );
        let top = t.top(0, 1, at(0));
        assert_eq!(top[0].hash, key.hash);
        assert_eq!(
            (top[0].text.as_slice(), top[0].truncated),
            (kept, truncated)
        );
    }
    // Many shards, more keys than asked for: the same order as a full sort.
    let t = LimitTable::new(limit(&[(1000, 1600)]), 100_000, SEEDS);
    for i in 0..3000u64 {
        let text = i.to_string();
        t.check_and_count(t.key(text.as_bytes()), i % 97 + 1, at(0));
    }
    let all = t.top(0, 3000, at(0));
    assert_eq!(all.len(), 3000);
    assert!(all
        .windows(2)
        .all(|w| (w[0].units, w[1].hash) >= (w[1].units, w[0].hash)));
    assert_eq!(t.top(0, 10, at(0)), all[..10]);
}

#[test]
fn refunds_undo_a_count() {
    // 3 per 1600 ms (buckets of 100 ms), 5 per 16 s (buckets of 1 s).
    let t = LimitTable::new(limit(&[(3, 1600), (5, 16_000)]), 100, SEEDS);
    let key = t.key(b"joe");
    let mut usage = [0u64; 2];
    assert_eq!(t.check_and_count(key, 2, at(50)), Verdict::Admitted);
    assert_eq!(t.check_and_count(key, 1, at(250)), Verdict::Admitted);
    assert!(matches!(t.check(key, 1, at(260)), Verdict::Refused(_)));
    // The refund of the count at 50 takes from its bucket, in every window.
    t.refund(key.hash, 2, at(50));
    t.usage(key.hash, at(260), &mut usage);
    assert_eq!(usage, [1, 1]);
    // Saturating: never below zero. Window 1's bucket 0 (1 s wide) also held
    // the unit counted at 250, so that one goes too.
    t.refund(key.hash, 5, at(50));
    t.usage(key.hash, at(260), &mut usage);
    assert_eq!(usage, [1, 0]);
    assert_eq!(t.check_and_count(key, 2, at(300)), Verdict::Admitted);
    // A time after the last count: nothing.
    t.refund(key.hash, 1, at(10_000));
    t.usage(key.hash, at(300), &mut usage);
    assert_eq!(usage, [3, 2]);
    assert_eq!(t.check_and_count(key, 1, at(1_900)), Verdict::Admitted);
    t.usage(key.hash, at(1_900), &mut usage);
    assert_eq!(usage, [3, 3]);
    // Window 0's ring now holds buckets 3..=19: bucket 0 (ms 99) has left it,
    // window 1's still holds its bucket 0.
    t.refund(key.hash, 1, at(99));
    t.usage(key.hash, at(1_900), &mut usage);
    assert_eq!(usage, [3, 2]);
    t.refund(key.hash, 1, at(300));
    t.usage(key.hash, at(1_900), &mut usage);
    assert_eq!(usage, [2, 1]);
    // Unknown keys and zero units: nothing, no panic.
    t.refund(12345, 1, at(0));
    t.refund(key.hash, 0, at(1_900));
    t.refund(key.hash, u64::MAX, at(u64::MAX));
    assert_eq!(t.len(), 1);
}

#[test]
fn shards_bound_and_capacity() {
    let rows = [
        (0, 1, 0),
        (10, 1, 10),
        (2048, 2, 2048),
        (1_000_001, 64, 1_000_000),
        (100_000, 64, 99_968),
    ];
    for (max_keys, shards, capacity) in rows {
        let t = LimitTable::new(limit(&[(1, 1000)]), max_keys, SEEDS);
        assert_eq!(t.shard_count(), shards, "{max_keys}");
        assert_eq!(t.capacity(), capacity, "{max_keys}");
    }
    let t = LimitTable::new(limit(&[(1, 1000)]), 0, SEEDS);
    assert_eq!(t.check_and_count(k(1), 1, at(0)), Verdict::Untracked);
}

#[test]
fn key_hashes_depend_on_the_seeds_only() {
    let a = LimitTable::new(limit(&[(1, 1000)]), 10, SEEDS);
    let b = LimitTable::new(limit(&[(5, 9000)]), 99, SEEDS);
    let c = LimitTable::new(limit(&[(1, 1000)]), 10, HashSeeds([4, 3, 2, 1]));
    assert_eq!(a.hash_key(b"x@example.com"), b.hash_key(b"x@example.com"));
    assert_ne!(a.hash_key(b"x@example.com"), c.hash_key(b"x@example.com"));
    use std::hash::Hasher;
    let mut h1 = a.key_hasher();
    h1.write(b"joe");
    h1.write(b"192.0.2.0");
    let mut h2 = b.key_hasher();
    h2.write(b"joe");
    h2.write(b"192.0.2.0");
    assert_eq!(h1.finish(), h2.finish());
    assert_eq!(format!("{SEEDS:?}"), "HashSeeds(..)");
}

/// Bytes per tracked key, from sizes and from the table's heap accounting.
#[test]
fn bytes_per_tracked_key() {
    // (windows, max, entry bytes): narrow counters, then wide (a max above u32).
    let narrow = |w: usize| 4 * (5 + w * (BUCKETS + 1));
    let wide = |w: usize| 8 * (3 + w * (BUCKETS + 1));
    let big = u64::from(u32::MAX) + 1;
    let rows = [
        (1usize, 1000, narrow(1)),
        (3, 1000, narrow(3)),
        (1, big, wide(1)),
        (3, big, wide(3)),
    ];
    assert_eq!((narrow(1), narrow(3)), (88, 224));
    for (windows, max, entry) in rows {
        let ws = vec![(max, 3_600_000); windows];
        let t = LimitTable::new(limit(&ws), 1 << 20, SEEDS);
        assert_eq!(t.bucket_max() > u64::from(u32::MAX), max == big);
        let keys = 200_000u64;
        for i in 0..keys {
            let text = i.to_le_bytes();
            assert_eq!(t.check_and_count(t.key(&text), 1, at(0)), Verdict::Admitted);
        }
        assert_eq!(t.len() as u64, keys);
        let per_key = t.heap_bytes() as f64 / keys as f64;
        let floor = (entry + KEY_TEXT_BYTES) as f64;
        println!(
            "{windows} window(s), max {max}: {per_key:.1} bytes per tracked key (floor {floor})"
        );
        // Tables at least half full, texts grown by doubling at most.
        let ceiling = (2 * entry + 2 * KEY_TEXT_BYTES) as f64;
        assert!(
            per_key >= floor && per_key <= ceiling,
            "{windows} windows: {per_key} bytes per key, floor {floor}"
        );
    }
}

#[test]
fn eight_threads_on_one_key_admit_exactly_n() {
    const N: u64 = 1000;
    let t = Arc::new(LimitTable::new(
        limit(&[(N, 3_600_000), (N * 10, 86_400_000)]),
        100,
        SEEDS,
    ));
    let admitted = Arc::new(AtomicU64::new(0));
    let k = t.key(b"hot key");
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (t, admitted) = (Arc::clone(&t), Arc::clone(&admitted));
            std::thread::spawn(move || {
                for j in 0..500u64 {
                    if t.check_and_count(k, 1, at(i * 10 + j)) == Verdict::Admitted {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    assert_eq!(admitted.load(Ordering::Relaxed), N);
    let mut usage = [0; 2];
    t.usage(k.hash, at(10_000), &mut usage);
    assert_eq!(usage, [N, N]);
}

#[test]
fn snapshots_while_counting_decode_whole() {
    let l = limit(&[(50, 60_000)]);
    let t = Arc::new(LimitTable::new(l.clone(), 100_000, SEEDS));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let threads: Vec<_> = (0..4u64)
        .map(|i| {
            let (t, stop) = (Arc::clone(&t), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) && n < 200_000 {
                    let bytes = (n % 5000 + i * 5000).to_le_bytes();
                    let k = t.key(&bytes);
                    t.check_and_count(k, 1, at(n / 10));
                    n += 1;
                }
            })
        })
        .collect();
    let mut buf = Vec::new();
    for _ in 0..5 {
        buf.clear();
        t.encode_snapshot(at(0), &mut buf);
        let d = LimitTable::decode_snapshot(&buf, l.clone(), 100_000).unwrap();
        assert!(d.len() <= 20_000);
    }
    stop.store(true, Ordering::Relaxed);
    for th in threads {
        th.join().unwrap();
    }
    buf.clear();
    t.encode_snapshot(at(0), &mut buf);
    let d = LimitTable::decode_snapshot(&buf, l, 100_000).unwrap();
    assert_eq!(d.len(), t.len());
    for k in 0..20_000u64 {
        let (mut a, mut b) = ([0u64], [0u64]);
        let h = t.hash_key(&k.to_le_bytes());
        t.usage(h, at(30_000), &mut a);
        d.usage(h, at(30_000), &mut b);
        assert_eq!(a, b);
    }
}

/// The exact count of admitted units in `(from, to]`.
fn exact(log: &[(u64, u64)], from_exclusive: i128, to: u64) -> u64 {
    log.iter()
        .filter(|&&(t, _)| i128::from(t) > from_exclusive && t <= to)
        .map(|&(_, u)| u)
        .sum()
}

/// Windows as `(max, per_ms)` and arrivals as `(ms since the previous, units)`.
type Arrivals = (Vec<(u64, u64)>, Vec<(u64, u64)>);

fn arrivals() -> impl Strategy<Value = Arrivals> {
    let windows = prop::collection::vec((0u64..12, 1u64..5000), 1..=3);
    let steps = prop::collection::vec((0u64..400, 1u64..4), 1..300);
    (windows, steps)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Against a naive log of exact timestamps: never more than `max` in any
    /// interval of `per_ms`; a refusal only when the exact count over
    /// `(now - per_ms - bucket, now]` plus the units exceeds `max`; the
    /// conservative count is at least the exact count over `(now - per_ms, now]`;
    /// after `retry_after_ms` the same request is admitted, not a millisecond before.
    #[test]
    fn windows_against_an_exact_log((windows, steps) in arrivals()) {
        let l = limit(&windows);
        let t = LimitTable::new(l.clone(), 10, SEEDS);
        let mut log: Vec<(u64, u64)> = Vec::new();
        let mut now = 1_000_000u64;
        let mut usage = vec![0u64; l.windows().len()];
        for (dt, units) in steps {
            now += dt;
            t.usage(0, at(now), &mut usage);
            for (w, &u) in l.windows().iter().zip(&usage) {
                prop_assert!(u >= exact(&log, i128::from(now) - i128::from(w.per_ms()), now));
                prop_assert!(u <= exact(&log, i128::from(now) - i128::from(w.per_ms() + w.bucket_ms()), now));
            }
            match t.check_and_count(k(0), units, at(now)) {
                Verdict::Admitted => {
                    log.push((now, units));
                    for w in l.windows() {
                        let count = exact(&log, i128::from(now) - i128::from(w.per_ms()), now);
                        prop_assert!(count <= w.max(), "{count} > {} in {} ms", w.max(), w.per_ms());
                    }
                }
                Verdict::Refused(r) => {
                    let w = l.windows()[r.window];
                    let wide = exact(&log, i128::from(now) - i128::from(w.per_ms() + w.bucket_ms()), now);
                    prop_assert!(wide + units > w.max());
                    if let Some(after) = r.retry_after_ms {
                        prop_assert!(after > 0);
                        prop_assert_eq!(t.check(k(0), units, at(now + after)), Verdict::Admitted);
                        prop_assert!(matches!(t.check(k(0), units, at(now + after - 1)), Verdict::Refused(_)));
                    } else {
                        prop_assert!(l.windows().iter().any(|w| units > w.max()));
                    }
                }
                Verdict::Untracked => prop_assert!(false, "one key never fills the table"),
            }
        }
    }

    /// A full table: never more keys than its capacity, and a new key goes
    /// untracked only while every tracked key still counts something.
    #[test]
    fn bound_with_reclaim(
        steps in prop::collection::vec((0u64..30, 0u64..300, 1u64..3), 1..400),
    ) {
        let l = limit(&[(3, 1000), (5, 2500)]);
        let t = LimitTable::new(l, 6, SEEDS);
        let mut now = 0;
        let mut usage = [0u64; 2];
        for (key, dt, units) in steps {
            now += dt;
            let verdict = t.check_and_count(k(key), units, at(now));
            prop_assert!(t.len() <= t.capacity());
            if verdict == Verdict::Untracked {
                prop_assert_eq!(t.len(), t.capacity());
                let mut live = 0;
                for key in 0..30 {
                    t.usage(key, at(now), &mut usage);
                    if usage != [0, 0] {
                        live += 1;
                    }
                }
                // Keys whose counts all left the windows are reclaimable;
                // untracked means none of the tracked ones is.
                prop_assert_eq!(live, t.capacity());
            }
        }
    }

    /// Encoding, decoding and encoding again gives the same bytes, and the
    /// decoded table answers as the original.
    #[test]
    fn snapshot_round_trip(
        seeds in any::<[u64; 4]>(),
        steps in prop::collection::vec((0u64..50, 0u64..3000, 1u64..3), 0..200),
    ) {
        let l = limit(&[(5, 1000), (20, 60_000)]);
        let t = LimitTable::new(l.clone(), 100, HashSeeds(seeds));
        let mut now = 0;
        for &(key, dt, units) in &steps {
            now += dt;
            t.check_and_count(t.key(round_trip_text(key).as_bytes()), units, at(now));
        }
        let mut a = Vec::new();
        t.encode_snapshot(at(now), &mut a);
        let d = LimitTable::decode_snapshot(&a, l.clone(), 100).unwrap();
        prop_assert_eq!(d.seeds(), HashSeeds(seeds));
        let mut b = Vec::new();
        d.encode_snapshot(at(now), &mut b);
        prop_assert_eq!(&a, &b);
        let w = LimitTable::decode_snapshot_as_written(&a, 100).unwrap();
        prop_assert_eq!(w.limit(), &l);
        b.clear();
        w.encode_snapshot(at(now), &mut b);
        prop_assert_eq!(&a, &b);
        for key in 0..50u64 {
            let text = round_trip_text(key);
            let k = t.key(text.as_bytes());
            prop_assert_eq!(t.check(k, 2, at(now + 1)), d.check(k, 2, at(now + 1)));
            prop_assert_eq!(t.check(k, 2, at(now + 1)), w.check(k, 2, at(now + 1)));
        }
        for window in 0..2 {
            prop_assert_eq!(t.top(window, 100, at(now)), d.top(window, 100, at(now)));
        }
    }
}

/// Key texts of 0 to 50 bytes and more: some kept whole, some truncated.
fn round_trip_text(key: u64) -> String {
    format!("{}{key}", "k".repeat(key as usize))
}

/// A snapshot of 20 keys of 2 windows: key `n` has the hash
/// `n * 0x9E37_79B9_7F4A_7C15` and the text `sender{n}@example.com`, the
/// first entry's text is `sender0@example.com` (19 bytes).
fn sample_snapshot() -> (Vec<u8>, Limit) {
    sample_snapshot_of(LimitTable::new)
}

/// The same keys and counts as [`sample_snapshot`] in a table with wide
/// counters (counts written as u64).
fn wide_sample_snapshot() -> (Vec<u8>, Limit) {
    sample_snapshot_of(LimitTable::with_wide_counters)
}

fn sample_snapshot_of(new: fn(Limit, usize, HashSeeds) -> LimitTable) -> (Vec<u8>, Limit) {
    let l = limit(&[(5, 1000), (20, 60_000)]);
    let t = new(l.clone(), 100, SEEDS);
    for key in 0..20u64 {
        let text = format!("sender{key}@example.com");
        let hash = key.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        t.check_and_count(
            Key {
                hash,
                text: text.as_bytes(),
            },
            key % 4 + 1,
            at(key * 10),
        );
    }
    let mut out = Vec::new();
    t.encode_snapshot(at(200), &mut out);
    (out, l)
}

#[test]
fn every_prefix_of_a_snapshot_is_truncated() {
    for (bytes, l) in [sample_snapshot(), wide_sample_snapshot()] {
        every_prefix_is_truncated(&bytes, &l);
    }
}

fn every_prefix_is_truncated(bytes: &[u8], l: &Limit) {
    assert!(LimitTable::decode_snapshot(bytes, l.clone(), 100).is_ok());
    assert!(LimitTable::decode_snapshot_as_written(bytes, 100).is_ok());
    for len in 0..bytes.len() {
        for got in [
            LimitTable::decode_snapshot(&bytes[..len], l.clone(), 100),
            LimitTable::decode_snapshot_as_written(&bytes[..len], 100),
        ] {
            match got {
                Err(SnapshotError::Truncated { needed, found }) => {
                    assert_eq!(found, len);
                    assert!(
                        needed > len && needed <= bytes.len(),
                        "{len}: needed {needed}"
                    );
                }
                other => panic!("prefix of {len} bytes: {other:?}"),
            }
        }
    }
}

#[test]
fn every_changed_byte_of_a_snapshot_is_an_error() {
    let (narrow, l) = sample_snapshot();
    let (wide, _) = wide_sample_snapshot();
    // The same counts take more bytes as u64.
    assert!(wide.len() > narrow.len());
    for bytes in [narrow, wide] {
        every_changed_byte_is_an_error(&bytes, &l);
    }
}

fn every_changed_byte_is_an_error(bytes: &[u8], l: &Limit) {
    for i in 0..bytes.len() {
        for flip in [0x01u8, 0x80] {
            let mut b = bytes.to_vec();
            b[i] ^= flip;
            let err = LimitTable::decode_snapshot(&b, l.clone(), 100).unwrap_err();
            assert!(!err.to_string().is_empty());
            let err = LimitTable::decode_snapshot_as_written(&b, 100).unwrap_err();
            assert!(!err.to_string().is_empty());
        }
    }
}

#[test]
fn snapshot_errors() {
    let (bytes, l) = sample_snapshot();
    let reseal = |mut b: Vec<u8>| {
        let n = b.len() - 8;
        b.truncate(n);
        let sum = snapshot::checksum(&b);
        b.extend_from_slice(&sum.to_le_bytes());
        b
    };
    let mut bad_magic = bytes.clone();
    bad_magic[0] = b'X';
    let mut version = bytes.clone();
    version[8] = 1;
    let mut trailing = bytes.clone();
    trailing.push(0);
    let mut corrupt = bytes.clone();
    let last = corrupt.len() - 9;
    corrupt[last] ^= 1;
    let mut buckets = bytes.clone();
    buckets[20] = 8;
    let mut width = bytes.clone();
    assert_eq!(width[24], 4, "narrow counters");
    width[24] = 2;
    let mut seeds = bytes.clone();
    seeds[28] ^= 1;
    let mut windows = bytes.clone();
    windows[FIRST_WINDOW] ^= 1;
    let mut max_only = bytes.clone();
    max_only[FIRST_WINDOW + 8] = 9;
    let mut count = bytes.clone();
    count[FIRST_WINDOW - 4] = 9;
    let mut zero_windows = bytes.clone();
    zero_windows[FIRST_WINDOW - 4] = 0;
    let first_key = FIRST_WINDOW + 32 + 8;
    let mut keys: Vec<u64> = (0..20u64)
        .map(|k| k.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .collect();
    keys.sort_unstable();
    assert_eq!(bytes[first_key..first_key + 8], keys[0].to_le_bytes());
    let second = bytes
        .windows(8)
        .position(|w| w == keys[1].to_le_bytes())
        .unwrap();
    let mut order = bytes.clone();
    order.copy_within(first_key..first_key + 8, second);
    // The first entry: hash, last, the text's length and its 19 bytes, masks.
    let first_text = first_key + 16;
    assert_eq!(bytes[first_text], 19);
    assert_eq!(
        &bytes[first_text + 1..first_text + 20],
        b"sender0@example.com"
    );
    let mut mask = bytes.clone();
    mask[first_text + 20 + 3] |= 0x80;
    let mut text = bytes.clone();
    text[first_text] = KEY_TEXT_BYTES as u8;
    let mut no_window = bytes.clone();
    no_window[FIRST_WINDOW..FIRST_WINDOW + 8].copy_from_slice(&0u64.to_le_bytes());
    let mut long_window = bytes.clone();
    long_window[FIRST_WINDOW..FIRST_WINDOW + 8].copy_from_slice(&(MAX_WINDOW_MS + 1).to_le_bytes());
    let mut huge = bytes.clone();
    huge[FIRST_WINDOW + 32..FIRST_WINDOW + 40].copy_from_slice(&u64::MAX.to_le_bytes());
    let rows: Vec<(&str, Vec<u8>, Limit, usize, SnapshotError)> = vec![
        ("magic", bad_magic, l.clone(), 100, SnapshotError::BadMagic),
        (
            "version",
            version,
            l.clone(),
            100,
            SnapshotError::UnsupportedVersion { found: 1 },
        ),
        (
            "trailing",
            trailing,
            l.clone(),
            100,
            SnapshotError::TrailingBytes {
                expected: bytes.len(),
                found: bytes.len() + 1,
            },
        ),
        (
            "corrupt",
            corrupt,
            l.clone(),
            100,
            SnapshotError::ChecksumMismatch,
        ),
        (
            "buckets",
            reseal(buckets),
            l.clone(),
            100,
            SnapshotError::BucketsChanged { found: 8 },
        ),
        (
            "counter width",
            reseal(width),
            l.clone(),
            100,
            SnapshotError::BadCounterWidth { found: 2 },
        ),
        (
            "seeds",
            reseal(seeds),
            l.clone(),
            100,
            SnapshotError::HasherChanged,
        ),
        (
            "windows",
            reseal(windows),
            l.clone(),
            100,
            SnapshotError::WindowsChanged,
        ),
        (
            "window count",
            reseal(count),
            l.clone(),
            100,
            SnapshotError::BadWindowCount { found: 9 },
        ),
        (
            "no windows",
            reseal(zero_windows),
            l.clone(),
            100,
            SnapshotError::BadWindowCount { found: 0 },
        ),
        (
            "other rule",
            bytes.clone(),
            limit(&[(5, 1000)]),
            100,
            SnapshotError::WindowsChanged,
        ),
        (
            "order",
            reseal(order),
            l.clone(),
            100,
            SnapshotError::EntriesOutOfOrder { index: 1 },
        ),
        (
            "too many",
            bytes.clone(),
            l.clone(),
            3,
            SnapshotError::TooManyKeys { capacity: 3 },
        ),
        (
            "entry count",
            reseal(huge),
            l.clone(),
            100,
            SnapshotError::BadLength,
        ),
        (
            "mask",
            reseal(mask),
            l.clone(),
            100,
            SnapshotError::BadSlotMask { index: 0 },
        ),
        (
            "text",
            reseal(text),
            l.clone(),
            100,
            SnapshotError::BadKeyText { index: 0 },
        ),
        (
            "window of 0 ms",
            reseal(no_window),
            l.clone(),
            100,
            SnapshotError::BadWindow { per_ms: 0 },
        ),
        (
            "window too long",
            reseal(long_window),
            l.clone(),
            100,
            SnapshotError::BadWindow {
                per_ms: MAX_WINDOW_MS + 1,
            },
        ),
    ];
    for (name, b, l, max_keys, want) in rows {
        assert_eq!(
            LimitTable::decode_snapshot(&b, l, max_keys).unwrap_err(),
            want,
            "{name}"
        );
        assert!(!want.to_string().is_empty());
        // Without a rule to match, the same errors but for the rule's windows.
        match (name, LimitTable::decode_snapshot_as_written(&b, max_keys)) {
            ("windows" | "other rule", Ok(t)) => assert_eq!(t.len(), 20, "{name}"),
            (_, got) => assert_eq!(got.unwrap_err(), want, "{name} as written"),
        }
    }
    // As written: the snapshot's own windows, maxima included.
    let w = LimitTable::decode_snapshot_as_written(&reseal(max_only.clone()), 100).unwrap();
    assert_eq!(w.limit().windows()[0].max(), 9);
    assert_eq!(w.limit().windows()[1], Window::new(20, 60_000).unwrap());
    // A changed max alone keeps the counters.
    let d = LimitTable::decode_snapshot(&reseal(max_only), l, 100).unwrap();
    assert_eq!(d.limit().windows()[0].max(), 5, "the rule's max applies");
    assert!(!d.is_empty());
}

/// Offset of the first window in a snapshot.
const FIRST_WINDOW: usize = 8 + 4 + 8 + 4 + 4 + 32 + 8 + 4;

#[test]
fn the_checksum_sees_every_changed_byte() {
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    for len in 0..100usize {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng as u8
            })
            .collect();
        let sum = snapshot::checksum(&bytes);
        for i in 0..len {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                assert_ne!(
                    snapshot::checksum(&b),
                    sum,
                    "length {len}, byte {i}, bit {bit}"
                );
            }
        }
        // A byte more or less changes it too.
        let mut longer = bytes.clone();
        longer.push(0);
        assert_ne!(snapshot::checksum(&longer), sum, "length {len}");
    }
}

#[test]
fn counters_past_u32_are_wide_or_refused_never_lost() {
    const GB: u64 = 1_000_000_000;
    // 100 GB a day: wide counters, exact.
    let l = limit(&[(100 * GB, 86_400_000)]);
    let t = LimitTable::new(l.clone(), 10, SEEDS);
    assert_eq!(t.bucket_max(), u64::MAX);
    let key = t.key(b"big sender");
    for ms in [0, 1] {
        assert_eq!(t.check_and_count(key, 50 * GB, at(ms)), Verdict::Admitted);
    }
    assert!(matches!(t.check(key, 1, at(2)), Verdict::Refused(r) if r.counted == 100 * GB));
    t.refund(key.hash, 30 * GB, at(1));
    let mut usage = [0];
    t.usage(key.hash, at(2), &mut usage);
    assert_eq!(usage, [70 * GB]);
    // Snapshots keep the counts, and the width even for a smaller max.
    let mut bytes = Vec::new();
    t.encode_snapshot(at(2), &mut bytes);
    let small = limit(&[(GB, 86_400_000)]);
    let d = LimitTable::decode_snapshot(&bytes, small.clone(), 10).unwrap();
    assert_eq!(d.bucket_max(), u64::MAX);
    d.usage(key.hash, at(2), &mut usage);
    assert_eq!(usage, [70 * GB]);
    assert_eq!(
        LimitTable::with_wide_counters(small.clone(), 10, SEEDS).bucket_max(),
        u64::MAX
    );

    // Narrow counters (the rule's max fits in u32): a per-key max above
    // u32::MAX still never loses a unit; a bucket full is a refusal until
    // the next bucket (1 s here) starts.
    let t = LimitTable::new(limit(&[(1000, 16_000)]), 10, SEEDS);
    assert_eq!(t.bucket_max(), u64::from(u32::MAX));
    let key = t.key(b"k");
    let huge = [u64::MAX];
    assert_eq!(
        t.check_and_count_with(key, 3 * GB, at(100), &huge),
        Verdict::Admitted
    );
    let Verdict::Refused(r) = t.check_and_count_with(key, 2 * GB, at(200), &huge) else {
        panic!("expected a refusal")
    };
    assert_eq!(
        (r.window, r.counted, r.retry_after_ms),
        (0, 3 * GB, Some(800))
    );
    assert!(matches!(
        t.check_with(key, 2 * GB, at(999), &huge),
        Verdict::Refused(_)
    ));
    assert_eq!(
        t.check_and_count_with(key, 2 * GB, at(1000), &huge),
        Verdict::Admitted
    );
    t.usage(key.hash, at(1000), &mut usage);
    assert_eq!(usage, [5 * GB]);
    // More than a bucket holds: never, tracked or not.
    for k in [key, t.key(b"new")] {
        assert_eq!(
            t.check_with(k, 5 * GB, at(1000), &huge),
            Verdict::Refused(Refusal {
                window: 0,
                counted: if k == key { 5 * GB } else { 0 },
                retry_after_ms: None,
            })
        );
    }
    // A narrow snapshot read for a limit that needs wide counters gets them.
    let mut bytes = Vec::new();
    t.encode_snapshot(at(1000), &mut bytes);
    let d = LimitTable::decode_snapshot(&bytes, limit(&[(100 * GB, 16_000)]), 10).unwrap();
    assert_eq!(d.bucket_max(), u64::MAX);
    d.usage(key.hash, at(1000), &mut usage);
    assert_eq!(usage, [5 * GB]);
}

/// Many keys coming and going through a small table: every key stays
/// reachable after others are reclaimed (entries move back when one is
/// removed) and counts stay each key's own.
#[test]
fn reclaiming_keeps_every_key_reachable() {
    // 2 shards of 1024 keys; 5 per 1600 ms, so a key expires 1699 ms after
    // its last count. Each round's keys find the previous round's expired,
    // and reclaim them (moving entries back) while tracking their own.
    let t = LimitTable::new(limit(&[(5, 1600)]), 2048, SEEDS);
    let mut usage = [0];
    for round in 0..20u64 {
        let now = round * 2000;
        let texts: Vec<[u8; 8]> = (0..1500u64)
            .map(|i| (round * 1000 + i).to_le_bytes())
            .collect();
        for text in &texts {
            assert_eq!(
                t.check_and_count(t.key(text), 1, at(now)),
                Verdict::Admitted
            );
        }
        assert!(t.len() <= t.capacity());
        for (i, text) in texts.iter().enumerate() {
            let units = 1 + u64::from(i < 100);
            if i < 100 {
                assert_eq!(
                    t.check_and_count(t.key(text), 1, at(now)),
                    Verdict::Admitted
                );
            }
            t.usage(t.hash_key(text), at(now), &mut usage);
            assert_eq!(usage, [units], "round {round}, key {i}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// A shard against a map: after any inserts and removals (which move
    /// entries back) and growth, every key present is found, with its own
    /// text, and no other. Hashes cluster (few distinct high bits) so that
    /// probe runs are long and wrap around the end of the table.
    #[test]
    fn shard_against_a_map(
        ops in prop::collection::vec((0u64..64, any::<bool>(), 0u8..4), 1..300),
        max_keys in 1usize..40,
    ) {
        use super::table::Shard;
        use crate::keyed::key::key_text;
        use crate::keyed::shard::Probe;
        use std::collections::BTreeMap;
        let mut shard: Shard<u32> = Shard::new(1, 0);
        let mut model: BTreeMap<u64, u64> = BTreeMap::new();
        // Keys 0..64 in 8 groups sharing their top bits: 8 keys per home.
        let hash = |k: u64| (k % 8) << 61 | k;
        for (k, insert, remove_mod) in ops {
            if insert {
                if let Probe::Vacant(v) = shard.probe(hash(k)) {
                    if model.len() < max_keys {
                        shard.insert(hash(k), &key_text(&k.to_le_bytes()), k, v, max_keys);
                        model.insert(hash(k), k);
                    }
                } else {
                    prop_assert!(model.contains_key(&hash(k)));
                }
            } else {
                // Remove every key whose number is `remove_mod` mod 4 and above k.
                shard.retain(|e| {
                    let last = u64::from(e[3]) | u64::from(e[4]) << 32;
                    !(last % 4 == u64::from(remove_mod) && last > k)
                });
                model.retain(|_, &mut last| !(last % 4 == u64::from(remove_mod) && last > k));
            }
            prop_assert_eq!(shard.len(), model.len());
            for k in 0..64u64 {
                match shard.probe(hash(k)) {
                    Probe::Found(i) => {
                        prop_assert_eq!(model.get(&hash(k)), Some(&k));
                        prop_assert_eq!(shard.hash(i), hash(k));
                        prop_assert_eq!(shard.text(i), &key_text(&k.to_le_bytes()));
                    }
                    Probe::Vacant(_) => prop_assert!(!model.contains_key(&hash(k))),
                }
            }
        }
    }
}

/// A snapshot whose entry count its bytes cannot hold (a crafted file behind
/// a valid checksum) is refused before anything is reserved for that count.
#[test]
fn an_entry_count_the_bytes_cannot_hold_reserves_nothing() {
    let limit = Limit::new(&[Window::new(10, 60_000).expect("window")]).expect("limit");
    let table = LimitTable::new(limit, 10, SEEDS);
    let mut snap = Vec::new();
    table.encode_snapshot(at(0), &mut snap);
    // The entry count is the u64 just before the checksum (no entries).
    let n = snap.len();
    snap[n - 16..n - 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let sum = snapshot::checksum(&snap[..n - 8]);
    snap[n - 8..].copy_from_slice(&sum.to_le_bytes());
    assert_eq!(
        LimitTable::decode_snapshot_as_written(&snap, 100_000_000).map(|t| t.len()),
        Err(SnapshotError::BadLength)
    );
}
