//! `policyd state --redis`: what the items of `backend redis` hold in
//! Redis, read without changing anything (no script, no write, no seeds).
//!
//! An item's keys are found with `SCAN MATCH` (never `KEYS`, which holds
//! Redis, and every host using it, for the whole keyspace), [`SCAN_COUNT`]
//! at a time, and each batch is read with pipelined `HMGET`s: one round trip
//! per batch. The scan of one kind of key of one item stops at
//! [`MAX_SCAN_KEYS`], and the view says so.
//!
//! # Usage computed here, not in a script
//!
//! A limit's usage at `now` is computed in Rust from the ring fields
//! ([`ring_usage`]: `Window::usage`'s algorithm, unit-tested against
//! `LimitTable::usage`), not by a read-only Lua script in Redis. A script
//! runs inside Redis, which serves nothing else meanwhile: a view of a
//! million keys would stall every host's requests, while `HMGET` is the
//! cheapest thing the shared server can be asked, and batches of them
//! interleave with the hosts' scripts. (`EVAL_RO` would also need Redis 7;
//! the daemon works with Redis 6.)
//!
//! # Memory
//!
//! One batch of keys and their fields at a time, plus the best `top` keys of
//! each window asked for (cut back to `top` whenever twice that many are
//! held, as `LimitTable::top` does): O(top) per window, whatever the number
//! of keys.
//!
//! # What "live" means
//!
//! A limit's key is counted when its ring counts something in some window
//! at `now`; a greylist's triplets and client networks when they have not
//! expired at `now` (the local table's rules, `triplet_expiry` and
//! `client_expiry` in policy-core). Redis drops a key a second after that
//! by itself (its expiry has a second of slack), so the two agree but for
//! keys about to go. `SCAN` may return a key twice when Redis resizes its
//! table during the scan: the top lists hold each key once, but the counts
//! may then include a key twice.

use std::time::Duration;

use policy_core::greylist::{GreyCounts, Timers};
use policy_core::limits::{TopKey, BUCKETS};
use policy_core::state::Item;

use super::{is_connection_error, key_base, key_pattern};

/// The most keys of one kind read for one item (a limit's keys, a
/// greylist's triplets, its client networks): at about [`SCAN_COUNT`] keys
/// a round trip, a million keys take a thousand round trips, some seconds;
/// past that, the view would hold a terminal for minutes on a shared
/// server, and the counts of a million keys already say what is going on.
pub(crate) const MAX_SCAN_KEYS: usize = 1_000_000;

/// Keys asked of each `SCAN` (its `COUNT`): a batch large enough that round
/// trips do not dominate, small enough that Redis answers each in well under
/// a millisecond.
pub(crate) const SCAN_COUNT: usize = 1000;

/// How long the view waits for Redis to connect, and for each command.
pub(crate) const VIEW_TIMEOUT: Duration = Duration::from_secs(10);

/// Slots of a window's ring (`BUCKETS + 1`; see policy-core's
/// `limits/window.rs`).
const SLOTS: usize = BUCKETS + 1;

/// The most key text bytes kept per key shown (as the local tables keep):
/// long texts are cut and marked, and memory stays O(top).
const TEXT_MAX: usize = policy_core::state::KEY_TEXT_BYTES - 1;

/// What a limit's keys in Redis count at a time.
#[derive(Debug, Default)]
pub(crate) struct LimitView {
    /// Keys that count something in some window.
    pub(crate) keys: usize,
    /// Keys of the item's pattern that are not what policyd writes (not a
    /// hash, no `l` field, no 16-digit hash in the name): left out.
    pub(crate) skipped: usize,
    /// The scan stopped at [`MAX_SCAN_KEYS`] before the end.
    pub(crate) stopped: bool,
    /// Per window, the keys counting the most in it, most first (ties in
    /// hash order); empty for a window not asked for.
    pub(crate) top: Vec<Vec<TopKey>>,
}

/// What a greylist's keys in Redis hold at a time.
#[derive(Debug, Default)]
pub(crate) struct GreylistView {
    /// The live triplets and client networks, as the local table counts them.
    pub(crate) counts: GreyCounts,
    /// Keys of the item's patterns that are not what policyd writes.
    pub(crate) skipped: usize,
    /// A scan stopped at [`MAX_SCAN_KEYS`] before the end.
    pub(crate) stopped: bool,
}

/// Read limit `item` (its name, signature and windows) at `now` (Unix ms):
/// its live keys and the `top` keys counting the most in each window, or
/// in window `only` (from 0). An error of Redis or the connection ends the
/// view.
pub(crate) fn limit(
    con: &mut redis::Connection,
    prefix: &str,
    item: &Item<'_>,
    only: Option<usize>,
    top: usize,
    now: u64,
) -> Result<LimitView, redis::RedisError> {
    let (name, signature, windows) = (item.name, item.signature, item.windows);
    let shown = |w: usize| only.map_or(true, |o| o == w);
    let base = key_base(prefix, 'l', name, signature);
    let pattern = key_pattern(prefix, 'l', name, signature);
    let mut fields = vec!["l".to_owned(), "t".to_owned()];
    for w in 0..windows.len() {
        fields.extend((0..SLOTS).map(|s| format!("{w}.{s}")));
    }
    let mut view = LimitView::default();
    let mut best: Vec<Best> = (0..windows.len()).map(|_| Best::new(top)).collect();
    let mut ring = [0u64; SLOTS];
    view.stopped = scan(con, &pattern, MAX_SCAN_KEYS, |con, keys| {
        let values = read_hashes(con, keys, &fields)?;
        for (key, values) in keys.iter().zip(values) {
            // Not a hash, or (from a server misbehaving) not one value a
            // field: not indexed below.
            let Some(values) = values.filter(|v| v.len() == fields.len()) else {
                view.skipped += 1;
                continue;
            };
            if values.iter().all(Option::is_none) {
                // Expired between the scan and the read.
                continue;
            }
            let (Some(hash), Some(last)) = (key_hash(&base, key), number(&values[0])) else {
                view.skipped += 1;
                continue;
            };
            let text = values[1].as_deref().unwrap_or_default();
            let mut live = false;
            for (w, window) in windows.iter().enumerate() {
                let from = 2 + w * SLOTS;
                for (slot, value) in ring.iter_mut().zip(&values[from..from + SLOTS]) {
                    // As the script reads them: a missing slot counts 0.
                    *slot = number(value).unwrap_or(0);
                }
                let units = ring_usage(window.per_ms(), last, &ring, now);
                live |= units > 0;
                if units > 0 && shown(w) {
                    best[w].push(TopKey {
                        hash,
                        text: text[..text.len().min(TEXT_MAX)].to_vec(),
                        truncated: text.len() > TEXT_MAX,
                        units,
                    });
                }
            }
            view.keys += usize::from(live);
        }
        Ok(())
    })?;
    view.top = best.into_iter().map(Best::finish).collect();
    Ok(view)
}

/// Read greylist `name` (with `signature` and `timers`) at `now` (Unix
/// ms): its live triplets, pending and passed, and client networks, tracked
/// and auto-whitelisted.
pub(crate) fn greylist(
    con: &mut redis::Connection,
    prefix: &str,
    name: &str,
    signature: u64,
    timers: Timers,
    now: u64,
) -> Result<GreylistView, redis::RedisError> {
    let mut view = GreylistView::default();
    let ms = |secs: u64| secs.saturating_mul(1000);
    // Triplets: `f` first attempt (0 once passed), `l` last seen, seconds.
    let base = key_base(prefix, 'g', name, signature);
    let fields = ["f".to_owned(), "l".to_owned()];
    let stopped = scan(
        con,
        &key_pattern(prefix, 'g', name, signature),
        MAX_SCAN_KEYS,
        |con, keys| {
            for (key, values) in keys.iter().zip(read_hashes(con, keys, &fields)?) {
                match values.as_deref() {
                    Some([None, None]) => {} // expired meanwhile
                    Some([first, last]) if key_hash(&base, key).is_some() => {
                        let (Some(first), Some(last)) = (number(first), number(last)) else {
                            view.skipped += 1;
                            continue;
                        };
                        // policy-core's `triplet_expiry`.
                        let expiry = if first == 0 {
                            ms(last).saturating_add(timers.max_age_ms)
                        } else {
                            ms(first).saturating_add(timers.retry_window_ms)
                        };
                        if now < expiry.saturating_add(1) {
                            if first == 0 {
                                view.counts.passed += 1;
                            } else {
                                view.counts.pending += 1;
                            }
                        }
                    }
                    _ => view.skipped += 1,
                }
            }
            Ok(())
        },
    )?;
    // Client networks: `l` last seen (seconds), `n` passes counted.
    let base = key_base(prefix, 'c', name, signature);
    let fields = ["l".to_owned(), "n".to_owned()];
    let stopped_clients = scan(
        con,
        &key_pattern(prefix, 'c', name, signature),
        MAX_SCAN_KEYS,
        |con, keys| {
            for (key, values) in keys.iter().zip(read_hashes(con, keys, &fields)?) {
                match values.as_deref() {
                    Some([None, None]) => {}
                    Some([last, passes]) if key_hash(&base, key).is_some() => {
                        let Some(last) = number(last) else {
                            view.skipped += 1;
                            continue;
                        };
                        let passes = number(passes).unwrap_or(0);
                        // policy-core's `client_expiry`.
                        let expiry = ms(last).saturating_add(timers.max_age_ms);
                        if now < expiry.saturating_add(1) {
                            view.counts.clients += 1;
                            if timers.auto_whitelist > 0
                                && passes >= u64::from(timers.auto_whitelist)
                            {
                                view.counts.whitelisted_clients += 1;
                            }
                        }
                    }
                    _ => view.skipped += 1,
                }
            }
            Ok(())
        },
    )?;
    view.stopped = stopped || stopped_clients;
    Ok(view)
}

/// The units a window of `per_ms` counts at `now` in a ring last advanced
/// at `last` (a limit's `l` field) whose slots (`W.0` to `W.16`) are
/// `ring`: `Window::usage` of policy-core, as `limit.lua` computes it. The
/// sum of the buckets of width `ceil(per_ms / 16)` that overlap
/// `(now - per_ms, now]`, read at `max(now, last)` (a host's clock behind
/// another's).
pub(crate) fn ring_usage(per_ms: u64, last: u64, ring: &[u64; SLOTS], now: u64) -> u64 {
    let width = per_ms.div_ceil(BUCKETS as u64).max(1);
    let now = now.max(last);
    let head = last / width;
    let lowest = now.saturating_add(1).saturating_sub(per_ms) / width;
    if head < lowest {
        return 0;
    }
    let from = lowest.max(head.saturating_sub(BUCKETS as u64));
    (from..=head).fold(0u64, |sum, i| {
        // `i % SLOTS` is below SLOTS.
        sum.saturating_add(ring[(i % SLOTS as u64) as usize])
    })
}

/// A number as the scripts store it: Lua writes integers as decimal digits,
/// and numbers of more than 14 digits in exponent form (`%.14g`:
/// `9.007199254741e+15`), which `tonumber` reads back; so does this. `None`
/// for a missing field or anything else (a negative or fractional number,
/// text).
fn number(value: &Option<Vec<u8>>) -> Option<u64> {
    let text = std::str::from_utf8(value.as_deref()?).ok()?;
    if let Ok(n) = text.parse::<u64>() {
        return Some(n);
    }
    let f = text.parse::<f64>().ok()?;
    // Exact below 2^53, where the scripts keep their numbers; `as`
    // saturates above.
    (f.is_finite() && f >= 0.0 && f.fract() == 0.0).then_some(f as u64)
}

/// The hash a key's name ends with: `base` then 16 lower-case hexadecimal
/// digits, nothing else (anything else matching the pattern is not ours).
fn key_hash(base: &str, key: &[u8]) -> Option<u64> {
    let hex = key.strip_prefix(base.as_bytes())?;
    if hex.len() != 16 || !hex.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
}

/// `SCAN MATCH pattern COUNT SCAN_COUNT` from the start, each batch of keys
/// handed to `batch`, until the end or `max` keys. Whether it stopped at
/// `max` with the scan unfinished.
pub(super) fn scan(
    con: &mut redis::Connection,
    pattern: &str,
    max: usize,
    mut batch: impl FnMut(&mut redis::Connection, &[Vec<u8>]) -> Result<(), redis::RedisError>,
) -> Result<bool, redis::RedisError> {
    let mut cursor = 0u64;
    let mut seen = 0usize;
    loop {
        let (next, mut keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query(con)?;
        let room = max - seen;
        let cut = keys.len() > room;
        keys.truncate(room);
        seen += keys.len();
        if !keys.is_empty() {
            batch(con, &keys)?;
        }
        if next == 0 {
            return Ok(cut);
        }
        if seen >= max {
            return Ok(true);
        }
        cursor = next;
    }
}

/// A key's fields as `HMGET` answers them: `None` for a field it lacks.
type Fields = Vec<Option<Vec<u8>>>;

/// Each key's `fields`, in one pipelined round trip; `None` for a key that
/// is not a hash (Redis answered `WRONGTYPE`).
fn read_hashes(
    con: &mut redis::Connection,
    keys: &[Vec<u8>],
    fields: &[String],
) -> Result<Vec<Option<Fields>>, redis::RedisError> {
    let mut pipe = redis::pipe();
    for key in keys {
        pipe.cmd("HMGET").arg(key).arg(fields);
    }
    match pipe.query::<Vec<Fields>>(con) {
        Ok(all) => Ok(all.into_iter().map(Some).collect()),
        Err(e) if is_connection_error(&e) => Err(e),
        // One key of the batch is not a hash (someone else's key under
        // our prefix): read the batch key by key, leaving such keys out.
        Err(_) => keys
            .iter()
            .map(|key| {
                match redis::cmd("HMGET")
                    .arg(key)
                    .arg(fields)
                    .query::<Fields>(con)
                {
                    Ok(values) => Ok(Some(values)),
                    Err(e) if is_connection_error(&e) => Err(e),
                    Err(_) => Ok(None),
                }
            })
            .collect(),
    }
}

/// The best `n` keys of one window, most first, each key once: cut back to
/// `n` whenever it holds twice that, as `LimitTable::top` does.
struct Best {
    n: usize,
    keys: Vec<TopKey>,
}

impl Best {
    fn new(n: usize) -> Self {
        Self {
            n,
            keys: Vec::new(),
        }
    }

    fn push(&mut self, key: TopKey) {
        if self.n == 0 {
            return;
        }
        self.keys.push(key);
        if self.keys.len() > self.n.saturating_mul(2) {
            self.cut();
        }
    }

    /// Most units first, then by hash (`LimitTable::top`'s order).
    fn order(a: &TopKey, b: &TopKey) -> std::cmp::Ordering {
        b.units.cmp(&a.units).then(a.hash.cmp(&b.hash))
    }

    /// Keep the best `n`, each key once (a key `SCAN` returned twice keeps
    /// its larger count).
    fn cut(&mut self) {
        self.keys
            .sort_unstable_by(|a, b| a.hash.cmp(&b.hash).then(b.units.cmp(&a.units)));
        self.keys.dedup_by_key(|k| k.hash);
        if self.keys.len() > self.n {
            self.keys.select_nth_unstable_by(self.n - 1, Self::order);
            self.keys.truncate(self.n);
        }
    }

    fn finish(mut self) -> Vec<TopKey> {
        self.cut();
        self.keys.sort_unstable_by(Self::order);
        self.keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy_core::limits::{Key, Limit, LimitTable, Verdict, Window};
    use policy_core::state::HashSeeds;
    use policy_core::Timestamp;
    use proptest::prelude::*;

    /// Window lengths of the tests: a bucket of 63 ms (1000 / 16 rounded
    /// up), one that does not divide evenly, one of 45 s.
    const PERS: [u64; 3] = [1_000, 10_001, 45_000];

    const START: u64 = 1_700_006_400_000;

    /// A key's hash as `limit.lua` keeps it: `l` and each window's ring,
    /// counted as the script counts.
    struct ScriptKey {
        last: Option<u64>,
        rings: [[u64; SLOTS]; 3],
    }

    impl ScriptKey {
        /// `limit.lua`'s count of `units` at `real_now`.
        fn count(&mut self, real_now: u64, units: u64) {
            let slot = |i: u64| (i % SLOTS as u64) as usize;
            let Some(last) = self.last else {
                for (ring, per) in self.rings.iter_mut().zip(PERS) {
                    ring[slot(real_now / per.div_ceil(16))] = units;
                }
                self.last = Some(real_now);
                return;
            };
            let now = real_now.max(last);
            for (ring, per) in self.rings.iter_mut().zip(PERS) {
                let width = per.div_ceil(16);
                let (head, cur) = (last / width, now / width);
                if cur - head >= SLOTS as u64 {
                    *ring = [0; SLOTS];
                } else {
                    for i in head + 1..=cur {
                        ring[slot(i)] = 0;
                    }
                }
                ring[slot(cur)] += units;
            }
            self.last = Some(now);
        }
    }

    /// Counts at these steps: (milliseconds forward, or back when
    /// negative, units).
    fn steps() -> impl Strategy<Value = Vec<(i64, u64)>> {
        prop::collection::vec(
            (
                prop_oneof![
                    0..70i64,
                    0..2_000i64,
                    0..50_000i64,
                    -3_000..0i64,
                    Just(100_000i64)
                ],
                1..6u64,
            ),
            1..80,
        )
    }

    proptest! {
        /// The ring read as the view reads it counts what the local table
        /// counts, at the time of the last count and later, and before it
        /// (a host whose clock is behind).
        #[test]
        fn ring_usage_is_the_local_tables_usage(steps in steps()) {
            let windows = PERS.map(|per| Window::new(u64::MAX / 4, per).expect("window"));
            let table = LimitTable::new(
                Limit::new(&windows).expect("limit"),
                100,
                HashSeeds([1, 2, 3, 4]),
            );
            let key = Key { hash: 42, text: b"k" };
            let mut script = ScriptKey { last: None, rings: [[0; SLOTS]; 3] };
            let mut now = START;
            for &(advance, units) in &steps {
                now = now.saturating_add_signed(advance).max(START);
                let verdict = table.check_and_count(key, units, Timestamp::from_unix_millis(now));
                prop_assert_eq!(verdict, Verdict::Admitted);
                script.count(now, units);
            }
            let last = script.last.expect("counted");
            let mut local = [0u64; 3];
            for probe in [
                now.saturating_sub(5_000),
                now,
                now + 1,
                now + 62,
                now + 63,
                now + 999,
                now + 1_000,
                now + 10_000,
                now + 10_001,
                now + 44_999,
                now + 45_000,
                now + 48_000,
                now + 1_000_000,
            ] {
                table.usage(key.hash, Timestamp::from_unix_millis(probe), &mut local);
                for (w, per) in PERS.into_iter().enumerate() {
                    prop_assert_eq!(
                        ring_usage(per, last, &script.rings[w], probe),
                        local[w],
                        "window {} at +{} ms (last +{})", w, probe - START, last - START
                    );
                }
            }
        }
    }

    /// `--help` writes the bounds out (cli.rs does not depend on this
    /// module); they must stay true.
    #[test]
    fn help_states_the_bounds() {
        let help = crate::cli::help();
        for text in [
            format!("scan of an item stops at {MAX_SCAN_KEYS} keys"),
            format!("(within {} s)", VIEW_TIMEOUT.as_secs()),
        ] {
            assert!(help.contains(&text), "--help should say {text:?}");
        }
    }

    #[test]
    fn ring_usage_by_hand() {
        // Window 1 s, buckets of 63 ms; last count at 10_000 ms (bucket
        // 158, slot 158 % 17 = 5), 2 units in it and 3 in bucket 150 (slot
        // 14). Bucket i stops counting at (i + 1) * 63 + 1000 - 1: 150 at
        // 10_512, 158 at 11_016.
        let mut ring = [0u64; SLOTS];
        ring[5] = 2;
        ring[14] = 3;
        // (now, expected)
        let rows = [
            (10_000, 5),
            (9_000, 5), // read at max(now, last)
            (10_511, 5),
            (10_512, 2),
            (11_015, 2),
            (11_016, 0),
            (99_999, 0),
        ];
        for (now, expected) in rows {
            assert_eq!(ring_usage(1_000, 10_000, &ring, now), expected, "at {now}");
        }
    }

    #[test]
    fn numbers_as_lua_writes_them() {
        let rows: [(Option<&[u8]>, Option<u64>); 10] = [
            (Some(b"0"), Some(0)),
            (Some(b"1767225600000"), Some(1_767_225_600_000)),
            (Some(b"9.007199254741e+15"), Some(9_007_199_254_741_000)),
            (Some(b"1e+15"), Some(1_000_000_000_000_000)),
            (Some(b"-1"), None),
            (Some(b"1.5"), None),
            (Some(b"inf"), None),
            (Some(b""), None),
            (Some(b"\xff"), None),
            (None, None),
        ];
        for (value, expected) in rows {
            assert_eq!(number(&value.map(<[u8]>::to_vec)), expected, "{value:?}");
        }
    }

    #[test]
    fn key_hashes_from_names() {
        let base = "p:l:out:00000000000000ff:";
        let rows: [(&[u8], Option<u64>); 6] = [
            (b"p:l:out:00000000000000ff:000000000000002a", Some(42)),
            (b"p:l:out:00000000000000ff:ffffffffffffffff", Some(u64::MAX)),
            (b"p:l:out:00000000000000ff:000000000000002A", None),
            (b"p:l:out:00000000000000ff:2a", None),
            (b"p:l:out:00000000000000ff:000000000000002a0", None),
            (b"p:l:other:00000000000000ff:000000000000002a", None),
        ];
        for (key, expected) in rows {
            assert_eq!(key_hash(base, key), expected, "{key:?}");
        }
    }

    #[test]
    fn patterns_match_the_key_names_only() {
        let item = Item {
            name: "out",
            signature: 0xff,
            index: 0,
            windows: &[],
            timers: None,
        };
        let base = key_base("p:", 'l', "out", 0xff);
        assert_eq!(base, "p:l:out:00000000000000ff:");
        assert!(super::super::key_name("p:", 'l', &item, 42).starts_with(&base));
        assert_eq!(
            key_pattern("p:", 'l', "out", 0xff),
            "p:l:out:00000000000000ff:*"
        );
        // Glob characters of a prefix match themselves.
        assert_eq!(
            key_pattern("a*b?[c]\\:", 'g', "grey", 1),
            "a\\*b\\?\\[c\\]\\\\:g:grey:0000000000000001:*"
        );
    }

    #[test]
    fn the_best_keep_each_key_once() {
        let key = |hash: u64, units: u64| TopKey {
            hash,
            text: format!("k{hash}").into_bytes(),
            truncated: false,
            units,
        };
        let mut best = Best::new(2);
        // Key 7 twice (SCAN returned it twice, counted more the second
        // time); ties in hash order.
        for (hash, units) in [(7, 3), (1, 1), (9, 5), (7, 4), (3, 5), (2, 1), (8, 2)] {
            best.push(key(hash, units));
            assert!(best.keys.len() <= 4, "cut back at twice n");
        }
        assert_eq!(best.finish(), [key(3, 5), key(9, 5)]);
        let mut best = Best::new(3);
        for (hash, units) in [(7, 3), (9, 1), (7, 4)] {
            best.push(key(hash, units));
        }
        assert_eq!(best.finish(), [key(7, 4), key(9, 1)]);
        let mut none = Best::new(0);
        none.push(key(1, 1));
        assert!(none.finish().is_empty());
    }
}
