//! The Redis scripts against the local tables: the same operations, the
//! same answers; and the backend over TLS (a private CA, a client
//! certificate) with the checks of the PEM files. Each test starts its own redis-server (the harness of the
//! integration tests, included by path), and skips loudly without one
//! unless `POLICYD_REQUIRE_REDIS=1`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use policy_core::greylist::{GreyCall, GreylistTable, Timers};
use policy_core::limits::{Key, Limit, LimitCall, LimitTable, Window};
use policy_core::state::{Backend, HashSeeds, Item, When};
use policy_core::Timestamp;
use proptest::prelude::*;

use super::{
    connect_read_only, view, ClientCert, RedisBackend, RedisSettings, StartError, TlsSettings,
};

#[path = "../../tests/policyd/redis_server.rs"]
mod redis_server;

use redis_server::{ClientAuth, RedisServer};

/// The model tests' start: a UTC midnight, 2023-11-15.
const START_MS: u64 = 1_700_006_400_000;

/// A backend on `server` whose keys start with a prefix of their own.
fn backend(server: &RedisServer) -> RedisBackend {
    static CASE: AtomicU64 = AtomicU64::new(0);
    let case = CASE.fetch_add(1, Ordering::Relaxed);
    backend_with_prefix(server, &format!("model{case}:"))
}

fn backend_with_prefix(server: &RedisServer, prefix: &str) -> RedisBackend {
    let settings = RedisSettings {
        url: server.url(),
        password: None,
        prefix: prefix.to_owned(),
        pool_size: 2,
        tls: TlsSettings::default(),
    };
    RedisBackend::start(&settings, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("the backend starts: {e}"))
}

fn when(now: u64) -> When {
    When {
        now: Timestamp::from_unix_millis(now),
        deadline: Timestamp::from_unix_millis(now + 2_000),
    }
}

/// One step of a limit's model run.
#[derive(Debug, Clone)]
enum LimitOp {
    /// Advance the clock by this many milliseconds, then check (and count)
    /// `units` for key `key`, with an override of the maxima if given.
    Check {
        advance: u64,
        key: u8,
        units: u64,
        count: bool,
        overrides: bool,
    },
    /// Give back `units` of the `nth` earlier count.
    Refund { nth: usize, units: u64 },
    /// The clock goes back this many milliseconds.
    Back { ms: u64 },
}

fn limit_op() -> impl Strategy<Value = LimitOp> {
    prop_oneof![
        8 => (
            prop_oneof![0..50u64, 0..2_000u64, 0..30_000u64, Just(60_000u64)],
            0..3u8,
            1..6u64,
            prop::bool::weighted(0.85),
            prop::bool::weighted(0.2),
        )
            .prop_map(|(advance, key, units, count, overrides)| LimitOp::Check {
                advance,
                key,
                units,
                count,
                overrides,
            }),
        1 => (0..8usize, 1..4u64).prop_map(|(nth, units)| LimitOp::Refund { nth, units }),
        1 => (0..3_000u64).prop_map(|ms| LimitOp::Back { ms }),
    ]
}

/// Run `ops` through a local table and the Redis script; every answer
/// must be the same.
fn limit_model(server: &RedisServer, ops: &[LimitOp]) -> Result<(), TestCaseError> {
    let windows = [
        Window::new(5, 1_000).expect("window"),
        Window::new(12, 10_000).expect("window"),
        Window::new(30, 45_000).expect("window"),
    ];
    let limit = Limit::new(&windows).expect("limit");
    let table = LimitTable::new(limit, 1_000, HashSeeds([1, 2, 3, 4]));
    let redis = backend(server);
    let item = Item {
        name: "model",
        signature: 7,
        index: 0,
        windows: &windows,
        timers: None,
    };
    let overrides = [9u64, 20, 40];
    let mut now = START_MS;
    let mut counted: Vec<(u64, u64)> = Vec::new();
    for (step, op) in ops.iter().enumerate() {
        match *op {
            LimitOp::Check {
                advance,
                key,
                units,
                count,
                overrides: with_overrides,
            } => {
                now += advance;
                let text = [b'k', b'0' + key];
                let key = Key {
                    hash: u64::from(key) * 0x9e37_79b9,
                    text: &text,
                };
                let maxima: &[u64] = if with_overrides { &overrides } else { &[] };
                let t = Timestamp::from_unix_millis(now);
                let local = if count {
                    table.check_and_count_with(key, units, t, maxima)
                } else {
                    table.check_with(key, units, t, maxima)
                };
                let call = LimitCall {
                    key,
                    units,
                    maxima,
                    count,
                };
                let remote = redis.limit(item, call, when(now));
                prop_assert_eq!(
                    Ok(local),
                    remote,
                    "step {}: {:?} at +{} ms",
                    step,
                    op,
                    now - START_MS
                );
                if count && local == policy_core::limits::Verdict::Admitted {
                    counted.push((key.hash, now));
                }
            }
            LimitOp::Refund { nth, units } => {
                if let Some(&(hash, at)) = counted.get(nth) {
                    table.refund(hash, units, Timestamp::from_unix_millis(at));
                    let done = redis.refund(
                        item,
                        hash,
                        units,
                        Timestamp::from_unix_millis(at),
                        when(now),
                    );
                    prop_assert_eq!(done, Ok(()));
                }
            }
            LimitOp::Back { ms } => now = now.saturating_sub(ms).max(START_MS),
        }
    }
    let keys: Vec<u64> = (0..3u64).map(|k| k * 0x9e37_79b9).collect();
    limit_view_matches(server, &redis.prefix, &item, &table, &keys, now)
}

/// A read-only connection for the views.
fn view_connection(server: &RedisServer) -> Result<redis::Connection, TestCaseError> {
    connect_read_only(
        &server.url(),
        None,
        &TlsSettings::default(),
        Duration::from_secs(5),
    )
    .map_err(|e| TestCaseError::fail(e.to_string()))
}

/// What `policyd state --redis` reads of the keys the script wrote is what
/// the local table holds: its live keys and top keys in each window, at
/// `now` and later.
fn limit_view_matches(
    server: &RedisServer,
    prefix: &str,
    item: &Item<'_>,
    table: &LimitTable,
    keys: &[u64],
    now: u64,
) -> Result<(), TestCaseError> {
    let mut con = view_connection(server)?;
    let failed = |e: redis::RedisError| TestCaseError::fail(e.to_string());
    for at in [now, now + 700, now + 9_000, now + 46_000] {
        let t = Timestamp::from_unix_millis(at);
        let found = view::limit(&mut con, prefix, item, None, 10, at).map_err(failed)?;
        let mut usage = [0u64; 3];
        let live = keys
            .iter()
            .filter(|&&k| {
                table.usage(k, t, &mut usage);
                usage.iter().any(|&u| u > 0)
            })
            .count();
        prop_assert_eq!(found.keys, live, "live keys at +{} ms", at - START_MS);
        prop_assert_eq!((found.skipped, found.stopped), (0, false));
        for w in 0..item.windows.len() {
            prop_assert_eq!(
                &found.top[w],
                &table.top(w, 10, t),
                "window {} at +{} ms",
                w,
                at - START_MS
            );
        }
        // One window, the best key only.
        let one = view::limit(&mut con, prefix, item, Some(1), 1, at).map_err(failed)?;
        prop_assert!(one.top[0].is_empty() && one.top[2].is_empty());
        prop_assert_eq!(&one.top[1], &table.top(1, 1, t));
    }
    Ok(())
}

/// One step of a greylist's model run.
#[derive(Debug, Clone)]
struct GreyOp {
    advance: u64,
    client: u8,
    triplet: u8,
    update: bool,
}

fn grey_op() -> impl Strategy<Value = GreyOp> {
    (
        prop_oneof![
            0..1_500u64,
            4_000..6_500u64,
            0..70_000u64,
            Just(1_000_000u64),
            Just(3_600_000u64),
            Just(5_000_000u64)
        ],
        0..2u8,
        0..4u8,
        prop::bool::weighted(0.9),
    )
        .prop_map(|(advance, client, triplet, update)| GreyOp {
            advance,
            client,
            triplet,
            update,
        })
}

fn grey_model(server: &RedisServer, ops: &[GreyOp]) -> Result<(), TestCaseError> {
    let timers = Timers {
        delay_ms: 5_000,
        retry_window_ms: 60_000,
        // Longer than an hour: a client network counts several passes.
        max_age_ms: 4_000_000,
        auto_whitelist: 2,
    };
    let table = GreylistTable::new(timers, 1_000, HashSeeds([5, 6, 7, 8]));
    let redis = backend(server);
    let item = Item {
        name: "grey",
        signature: 9,
        index: 0,
        windows: &[],
        timers: Some(timers),
    };
    // Between 0 and 999 ms past a second: the rounding of kept times.
    let mut now = START_MS + 400;
    for (step, op) in ops.iter().enumerate() {
        now += op.advance;
        let client = 0xc000 + u64::from(op.client);
        // A triplet belongs to one client network.
        let triplet = 0x7000 + u64::from(op.client) * 16 + u64::from(op.triplet);
        let local = table.check(client, triplet, Timestamp::from_unix_millis(now), op.update);
        let call = GreyCall {
            client,
            triplet,
            update: op.update,
        };
        let remote = redis.greylist(item, call, when(now));
        prop_assert_eq!(
            Ok(local),
            remote,
            "step {}: {:?} at +{} ms",
            step,
            op,
            now - START_MS
        );
    }
    // What `policyd state --redis` reads: the local table's counts, now,
    // past the retry window and past max_age.
    let mut con = view_connection(server)?;
    for at in [now, now + 61_000, now + 4_000_001] {
        let found = view::greylist(&mut con, &redis.prefix, "grey", 9, timers, at)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(
            found.counts,
            table.counts(Timestamp::from_unix_millis(at)),
            "counts at +{} ms",
            at - START_MS
        );
        prop_assert_eq!((found.skipped, found.stopped), (0, false));
    }
    Ok(())
}

/// Run `model` on 128 random sequences of up to 60 operations of `op`
/// against a redis-server of its own (`name`).
fn run_model<O: Strategy>(
    name: &str,
    op: O,
    model: impl Fn(&RedisServer, &[O::Value]) -> Result<(), TestCaseError>,
) where
    O::Value: std::fmt::Debug,
{
    let Some(server) = RedisServer::start(name) else {
        return;
    };
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 128,
        ..ProptestConfig::default()
    });
    let result = runner.run(&prop::collection::vec(op, 1..60), |ops| {
        model(&server, &ops)
    });
    if let Err(e) = result {
        panic!("{e}\nredis log:\n{}", server.log());
    }
}

#[test]
fn limit_script_answers_as_the_local_table() {
    run_model("limit-model", limit_op(), limit_model);
}

#[test]
fn greylist_script_answers_as_the_local_table() {
    run_model("greylist-model", grey_op(), grey_model);
}

#[test]
fn hosts_share_the_seeds_kept_in_redis() {
    let Some(server) = RedisServer::start("seeds") else {
        return;
    };
    let settings = RedisSettings {
        url: server.url(),
        password: None,
        prefix: "shared:".into(),
        pool_size: 1,
        tls: TlsSettings::default(),
    };
    let a = RedisBackend::start(&settings, Duration::from_secs(5)).expect("first host");
    let b = RedisBackend::start(&settings, Duration::from_secs(5)).expect("second host");
    assert_eq!(
        a.seeds(),
        b.seeds(),
        "both hosts read the seeds the first stored"
    );
    let other = RedisSettings {
        prefix: "other:".into(),
        ..settings
    };
    let c = RedisBackend::start(&other, Duration::from_secs(5)).expect("another prefix");
    assert_ne!(a.seeds(), c.seeds(), "another prefix has seeds of its own");
}

/// Auto-whitelisting, step by step: two first accepted retries of one
/// client network, less and then more than an hour apart (one pass counted
/// an hour), then the network whitelisted, then forgotten after max_age.
#[test]
fn greylist_script_counts_passes_as_the_local_table() {
    let Some(server) = RedisServer::start("greylist-passes") else {
        return;
    };
    let op = |advance: u64, triplet: u8| GreyOp {
        advance,
        client: 0,
        triplet,
        update: true,
    };
    let ops = [
        op(0, 0),
        op(6_000, 0),     // first accepted retry: a pass
        op(1_000_000, 1), // a new triplet 17 minutes later
        op(6_000, 1),     // its first accepted retry: under an hour, not counted
        op(0, 2),         // so the network is not whitelisted: deferred
        op(3_000_000, 3), // past the hour
        op(6_000, 3),     // counted: two passes
        op(0, 2),         // whitelisted
        op(4_000_001, 2), // silent past max_age: forgotten
        op(0, 2),
    ];
    if let Err(e) = grey_model(&server, &ops) {
        panic!("{e}");
    }
}

/// Redis stopped: calls answer `Unavailable` at once, without waiting for
/// their budget; started again: the pool reconnects on its own, and calls
/// work again without anyone asking.
#[test]
fn a_stopped_redis_fails_fast_and_is_reconnected() {
    let Some(mut server) = RedisServer::start("outage") else {
        return;
    };
    let redis = backend(&server);
    let windows = [Window::new(100, 60_000).expect("window")];
    let item = Item {
        name: "out",
        signature: 1,
        index: 0,
        windows: &windows,
        timers: None,
    };
    let call = LimitCall {
        key: Key {
            hash: 1,
            text: b"k",
        },
        units: 1,
        maxima: &[],
        count: true,
    };
    let admitted = Ok(policy_core::limits::Verdict::Admitted);
    assert_eq!(redis.limit(item, call, when(START_MS)), admitted);
    server.stop();
    // The first call finds the connection broken; the pool goes down.
    let failed = redis.limit(item, call, when(START_MS));
    assert!(
        matches!(
            failed,
            Err(policy_core::state::BackendError::Unavailable
                | policy_core::state::BackendError::Timeout)
        ),
        "{failed:?}"
    );
    assert!(
        redis.pool().is_down(),
        "the pool is down after a broken connection"
    );
    assert_eq!(redis.pool().outages(), 1);
    // While down, a call with a long budget answers at once.
    let started = std::time::Instant::now();
    let long = When {
        now: Timestamp::from_unix_millis(START_MS),
        deadline: Timestamp::from_unix_millis(START_MS + 60_000),
    };
    assert_eq!(
        redis.limit(item, call, long),
        Err(policy_core::state::BackendError::Unavailable)
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a call while Redis is down must not wait for its budget"
    );
    server.restart();
    // The background thread reconnects (backoff from 100 ms): wait for that
    // event, bounded.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while redis.pool().is_down() {
        assert!(
            std::time::Instant::now() < deadline,
            "the pool did not reconnect within 20 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Redis lost everything (no persistence): the scripts are loaded again
    // (NOSCRIPT, then SCRIPT LOAD) and the key starts over.
    assert_eq!(redis.limit(item, call, when(START_MS)), admitted);
    assert_eq!(redis.pool().outages(), 1);
    // The seeds were stored again on reconnecting: a host starting now
    // reads this one's.
    let later = backend_with_prefix(&server, &redis.prefix);
    assert_eq!(later.seeds(), redis.seeds());
}

/// The view writes nothing (not even the seeds, on a Redis without them);
/// its scan stops at its bound and says so; keys under an item's names
/// that policyd did not write are left out and counted, the others read.
#[test]
fn the_view_writes_nothing_is_bounded_and_skips_foreign_keys() {
    let Some(server) = RedisServer::start("view-scan") else {
        return;
    };
    let windows = [Window::new(100, 60_000).expect("window")];
    let item = Item {
        name: "out",
        signature: 3,
        index: 0,
        windows: &windows,
        timers: None,
    };
    let prefix = "view:";
    let mut con = connect_read_only(
        &server.url(),
        None,
        &TlsSettings::default(),
        Duration::from_secs(5),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let dbsize =
        |con: &mut redis::Connection| -> u64 { redis::cmd("DBSIZE").query(con).expect("DBSIZE") };
    let empty = view::limit(&mut con, prefix, &item, None, 5, START_MS).expect("a view");
    assert_eq!((empty.keys, empty.top[0].len()), (0, 0));
    assert_eq!(
        dbsize(&mut con),
        0,
        "a view of an empty Redis leaves it empty"
    );

    let redis = backend_with_prefix(&server, prefix);
    for k in 0..25u64 {
        let text = format!("k{k}");
        let call = LimitCall {
            key: Key {
                hash: k + 1,
                text: text.as_bytes(),
            },
            units: k + 1,
            maxima: &[],
            count: true,
        };
        assert_eq!(
            redis.limit(item, call, when(START_MS)),
            Ok(policy_core::limits::Verdict::Admitted)
        );
    }
    // Not policyd's: a string, a hash without `l`, a name without a hash.
    let base = super::key_base(prefix, 'l', "out", 3);
    let _: () = redis::cmd("SET")
        .arg(format!("{base}00000000000000aa"))
        .arg("x")
        .query(&mut con)
        .expect("SET");
    let _: () = redis::cmd("HSET")
        .arg(format!("{base}00000000000000bb"))
        .arg("t")
        .arg("junk")
        .query(&mut con)
        .expect("HSET");
    let _: () = redis::cmd("HSET")
        .arg(format!("{base}nothex"))
        .arg("l")
        .arg(START_MS)
        .query(&mut con)
        .expect("HSET");
    let before = dbsize(&mut con);

    let found = view::limit(&mut con, prefix, &item, None, 2, START_MS + 1).expect("a view");
    assert_eq!((found.keys, found.skipped, found.stopped), (25, 3, false));
    let top: Vec<(u64, &[u8])> = found.top[0]
        .iter()
        .map(|k| (k.units, &k.text[..]))
        .collect();
    assert_eq!(top, [(25, &b"k24"[..]), (24, b"k23")]);
    assert_eq!(dbsize(&mut con), before, "the view wrote nothing");

    // The scan's bound: 28 keys match, 10 are read, and it says so; a
    // bound it does not reach is not reported.
    let pattern = super::key_pattern(prefix, 'l', "out", 3);
    let mut seen = 0;
    let stopped = view::scan(&mut con, &pattern, 10, |_, keys| {
        seen += keys.len();
        Ok(())
    })
    .expect("a scan");
    assert_eq!((stopped, seen), (true, 10));
    seen = 0;
    let stopped = view::scan(&mut con, &pattern, 28, |_, keys| {
        seen += keys.len();
        Ok(())
    })
    .expect("a scan");
    assert_eq!((stopped, seen), (false, 28));
}

/// A limit of 2 over `redis`: two calls admitted, the third refused (the
/// counting is in Redis).
fn counts_a_limit_of_two(redis: &RedisBackend) {
    let windows = [Window::new(2, 60_000).expect("window")];
    let item = Item {
        name: "tls",
        signature: 1,
        index: 0,
        windows: &windows,
        timers: None,
    };
    let call = LimitCall {
        key: Key {
            hash: 7,
            text: b"k",
        },
        units: 1,
        maxima: &[],
        count: true,
    };
    use policy_core::limits::Verdict;
    for n in 1..=2 {
        assert_eq!(
            redis.limit(item, call, when(START_MS + n)),
            Ok(Verdict::Admitted),
            "call {n}"
        );
    }
    let third = redis.limit(item, call, when(START_MS + 3));
    assert!(matches!(third, Ok(Verdict::Refused(_))), "{third:?}");
}

/// Settings for `server`'s `rediss://` URL with these certificates.
fn tls_settings(server: &RedisServer, tls: TlsSettings) -> RedisSettings {
    RedisSettings {
        url: server.tls_url(),
        password: None,
        prefix: "tls:".into(),
        pool_size: 2,
        tls,
    }
}

fn read(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `rediss://`: with the test CA given, the backend counts over TLS; with
/// the system's CAs only, which do not include it, the start is refused as
/// a certificate error (not as an unreachable server).
#[test]
fn tls_with_a_private_ca() {
    let Some(server) = RedisServer::start_tls("tls", ClientAuth::No) else {
        return;
    };
    let ca = TlsSettings {
        ca_pem: Some(read(&server.ca_file())),
        client: None,
    };
    let redis = RedisBackend::start(&tls_settings(&server, ca), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("the backend starts over TLS: {e}\n{}", server.log()));
    counts_a_limit_of_two(&redis);
    match RedisBackend::start(
        &tls_settings(&server, TlsSettings::default()),
        Duration::from_secs(5),
    ) {
        Err(StartError::Certificate(e)) => {
            assert!(e.contains("UnknownIssuer"), "{e}");
        }
        Err(other) => panic!("expected a certificate error, got {other}"),
        Ok(_) => panic!("a server signed by an unknown CA was trusted"),
    }
}

/// A server that requires client certificates: refused without one (a TLS
/// error, as the server says so), counts with the test CA's client
/// certificate.
#[test]
fn tls_with_a_client_certificate() {
    let Some(server) = RedisServer::start_tls("mtls", ClientAuth::Required) else {
        return;
    };
    let ca_pem = Some(read(&server.ca_file()));
    let no_cert = TlsSettings {
        ca_pem: ca_pem.clone(),
        client: None,
    };
    match RedisBackend::start(&tls_settings(&server, no_cert), Duration::from_secs(5)) {
        Err(StartError::Tls(e)) => assert!(e.contains("alert"), "{e}"),
        Err(other) => panic!("expected a TLS error, got {other}"),
        Ok(_) => panic!("a server that requires a client certificate accepted none"),
    }
    let with_cert = TlsSettings {
        ca_pem,
        client: Some(ClientCert {
            cert_pem: read(&server.client_cert_file()),
            key_pem: read(&server.client_key_file()),
        }),
    };
    let redis = RedisBackend::start(&tls_settings(&server, with_cert), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("the backend starts with mutual TLS: {e}\n{}", server.log()));
    counts_a_limit_of_two(&redis);
}

/// `#insecure` (no certificate check) is refused before any connection.
#[test]
fn insecure_tls_is_refused() {
    let settings = RedisSettings {
        url: "rediss://127.0.0.1:1/#insecure".into(),
        password: None,
        prefix: "x:".into(),
        pool_size: 1,
        tls: TlsSettings::default(),
    };
    match RedisBackend::start(&settings, Duration::from_secs(1)) {
        Err(StartError::Url(e)) => assert!(e.starts_with("#insecure is not supported"), "{e}"),
        Err(other) => panic!("expected a URL error, got {other}"),
        Ok(_) => panic!("#insecure was accepted"),
    }
}

/// The checks of the PEM files: what each accepts and refuses, with the
/// reason.
#[test]
fn pem_checks() {
    use super::{check_ca_pem, check_client_cert, ClientCertError};
    let Some(server) = RedisServer::start_tls("pem", ClientAuth::No) else {
        return;
    };
    let ca = read(&server.ca_file());
    let cert = read(&server.client_cert_file());
    let key = read(&server.client_key_file());
    let mut two = ca.clone();
    two.extend_from_slice(&cert);
    assert_eq!(check_ca_pem(&ca), Ok(()));
    assert_eq!(check_ca_pem(&two), Ok(()));
    assert_eq!(check_client_cert(&cert, &key), Ok(()));
    // The chain may go on with the CA.
    assert_eq!(check_client_cert(&two[ca.len()..], &key), Ok(()));
    let no_cert = "no certificate in it (-----BEGIN CERTIFICATE-----)".to_owned();
    let broken = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
    for (pem, why) in [
        (&b""[..], &no_cert[..]),
        (b"not pem at all\n", &no_cert),
        (&key, &no_cert),
        (broken, "not PEM certificates: "),
    ] {
        let e = check_ca_pem(pem).expect_err("no CA");
        assert!(e.starts_with(why), "{e}");
        match check_client_cert(pem, &key) {
            Err(ClientCertError::Cert(e)) => assert!(e.starts_with(why), "{e}"),
            other => panic!("{other:?}"),
        }
    }
    for pem in [&b""[..], &ca, &cert] {
        match check_client_cert(&cert, pem) {
            Err(ClientCertError::Key(e)) => {
                assert!(e.starts_with("no usable private key in it"), "{e}");
            }
            other => panic!("{other:?}"),
        }
    }
    // The CA's key is not the client certificate's.
    let ca_key = read(&server.ca_file().with_file_name("ca.key"));
    match check_client_cert(&cert, &ca_key) {
        Err(ClientCertError::Mismatch(e)) => assert!(e.contains("KeyMismatch"), "{e}"),
        other => panic!("{other:?}"),
    }
}

/// One call of a batch in the batch model.
#[derive(Debug, Clone)]
enum BatchOp {
    Limit {
        key: u8,
        units: u64,
        count: bool,
    },
    Grey {
        client: u8,
        triplet: u8,
        update: bool,
    },
}

fn batch_op() -> impl Strategy<Value = BatchOp> {
    prop_oneof![
        (0..3u8, 1..4u64, prop::bool::weighted(0.9))
            .prop_map(|(key, units, count)| BatchOp::Limit { key, units, count }),
        (0..2u8, 0..3u8, prop::bool::weighted(0.9)).prop_map(|(client, triplet, update)| {
            BatchOp::Grey {
                client,
                triplet,
                update,
            }
        }),
    ]
}

/// Batches (with the clock moving between them) through `batch.lua` and
/// through the local tables one call after the other, stopping after the
/// first refusal or deferral: the same answers, and as many.
fn batch_model(server: &RedisServer, batches: &[(u64, Vec<BatchOp>)]) -> Result<(), TestCaseError> {
    use policy_core::state::{BatchAnswer, Batched};
    let windows = [
        Window::new(4, 2_000).expect("window"),
        Window::new(9, 20_000).expect("window"),
    ];
    let timers = Timers {
        delay_ms: 3_000,
        retry_window_ms: 30_000,
        max_age_ms: 4_000_000,
        auto_whitelist: 2,
    };
    let table = LimitTable::new(
        Limit::new(&windows).expect("limit"),
        1_000,
        HashSeeds([1, 2, 3, 4]),
    );
    let grey = GreylistTable::new(timers, 1_000, HashSeeds([5, 6, 7, 8]));
    let redis = backend(server);
    let limit_item = Item {
        name: "bl",
        signature: 1,
        index: 0,
        windows: &windows,
        timers: None,
    };
    let grey_item = Item {
        name: "bg",
        signature: 2,
        index: 0,
        windows: &[],
        timers: Some(timers),
    };
    let texts: Vec<[u8; 2]> = (0..3u8).map(|k| [b'k', b'0' + k]).collect();
    let mut now = START_MS + 300;
    for (step, (advance, ops)) in batches.iter().enumerate() {
        now += advance;
        let t = Timestamp::from_unix_millis(now);
        let calls: Vec<Batched<'_>> = ops
            .iter()
            .map(|op| match *op {
                BatchOp::Limit { key, units, count } => Batched::Limit {
                    item: limit_item,
                    call: LimitCall {
                        key: Key {
                            hash: u64::from(key) + 1,
                            text: &texts[usize::from(key)],
                        },
                        units,
                        maxima: &[],
                        count,
                    },
                },
                BatchOp::Grey {
                    client,
                    triplet,
                    update,
                } => Batched::Greylist {
                    item: grey_item,
                    call: GreyCall {
                        client: 0xc0 + u64::from(client),
                        triplet: 0x700 + u64::from(client) * 16 + u64::from(triplet),
                        update,
                    },
                },
            })
            .collect();
        let mut local = Vec::new();
        for call in &calls {
            let answer = match *call {
                Batched::Limit { call, .. } => BatchAnswer::Limit(if call.count {
                    table.check_and_count_with(call.key, call.units, t, call.maxima)
                } else {
                    table.check_with(call.key, call.units, t, call.maxima)
                }),
                Batched::Greylist { call, .. } => {
                    BatchAnswer::Greylist(grey.check(call.client, call.triplet, t, call.update))
                }
            };
            local.push(Ok(answer));
            if answer.stops() {
                break;
            }
        }
        let mut remote = Vec::new();
        redis.batch(&calls, when(now), &mut remote);
        prop_assert_eq!(
            local,
            remote,
            "batch {}: {:?} at +{} ms",
            step,
            ops,
            now - START_MS
        );
    }
    Ok(())
}

#[test]
fn batch_script_answers_as_the_local_tables_one_by_one() {
    let Some(server) = RedisServer::start("batch-model") else {
        return;
    };
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 128,
        ..ProptestConfig::default()
    });
    let batches = prop::collection::vec(
        (
            prop_oneof![0..500u64, 0..5_000u64, Just(40_000u64)],
            prop::collection::vec(batch_op(), 1..5),
        ),
        1..30,
    );
    if let Err(e) = runner.run(&batches, |b| batch_model(&server, &b)) {
        panic!("{e}\nredis log:\n{}", server.log());
    }
}
