//! State shared in Redis by several daemons, as several MX hosts run them:
//! one limit over both (exactly N admitted under concurrent load), one
//! greylist (a triplet first seen on one host passes on the other), and
//! Redis stopped in the middle of the load (the items' `on_failure` holds,
//! no request waits past its budget, and it recovers on its own), Redis
//! over TLS (`rediss://`) with a private CA, and `policyd state --redis`
//! showing what Redis holds.
//!
//! Each test starts its own redis-server ([`crate::redis_server`]); without
//! one it is `SKIPPED`, a failure under `POLICYD_REQUIRE_REDIS=1`.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{
    connect, read_reply, request_with, run, run_env, Daemon, TempDir, TestClock, TEST_CLOCK_VAR,
    TIMEOUT,
};
use crate::redis_server::{ClientAuth, RedisServer};

/// The answer to a request, as text.
fn ask(stream: &mut TcpStream, req: &[u8]) -> String {
    stream.write_all(req).expect("send the request");
    let reply = read_reply(stream).expect("a reply");
    String::from_utf8_lossy(&reply).into_owned()
}

/// A `RCPT` request of message `instance` from `sender` to `recipient`.
fn rcpt(sender: &str, recipient: &str, instance: &str) -> Vec<u8> {
    request_with(&[
        ("sender", sender),
        ("recipient", recipient),
        ("instance", instance),
    ])
}

/// Two daemons, one limit of 50 messages an hour per sender in Redis: 8
/// clients (4 on each daemon) send 20 messages each at once, 160 in all;
/// exactly 50 are admitted, whichever daemon they reached.
#[test]
fn two_daemons_share_one_limit_exactly() {
    let Some(redis) = RedisServer::start("shared-limit") else {
        return;
    };
    let dir = TempDir::new("redis-limit");
    let policy = dir.write(
        "policy.conf",
        "backend redis\n\
         limit shared { key sender count messages max 50 per 1h }\n\
         default DUNNO\n",
    );
    let url = redis.url();
    let args = ["--config", policy.as_str(), "--redis", url.as_str()];
    let (a, b) = (Daemon::start(&args), Daemon::start(&args));
    let admitted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    thread::scope(|s| {
        for client in 0..8u32 {
            let daemon = if client % 2 == 0 { &a } else { &b };
            let addr = daemon.addr();
            let (admitted, refused) = (Arc::clone(&admitted), Arc::clone(&refused));
            s.spawn(move || {
                let mut stream = connect(addr);
                for message in 0..20u32 {
                    let instance = format!("{client}.{message}");
                    let reply = ask(
                        &mut stream,
                        &rcpt("bulk@example.org", "r@example.com", &instance),
                    );
                    if reply == "action=DUNNO\n\n" {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    } else {
                        assert!(
                            reply.starts_with("action=DEFER 4.7.1 Rate limit reached (50 per 1h)"),
                            "{reply:?}"
                        );
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(
        admitted.load(Ordering::Relaxed),
        50,
        "exactly the limit over both hosts"
    );
    assert_eq!(refused.load(Ordering::Relaxed), 110);
    // Both daemons said where their state is.
    for daemon in [&a, &b] {
        daemon.expect_log("the Redis line", |l| {
            l.contains("info: state in Redis at redis://127.0.0.1:")
        });
    }
}

/// One greylist in Redis: a triplet first seen on one daemon is deferred
/// there, and its retry after the delay passes on the other.
#[test]
fn a_triplet_first_seen_on_one_host_passes_on_the_other() {
    let Some(redis) = RedisServer::start("shared-greylist") else {
        return;
    };
    let dir = TempDir::new("redis-greylist");
    let policy = dir.write(
        "policy.conf",
        "greylist grey { backend redis delay 1m }\ndefault DUNNO\n",
    );
    let url = redis.url();
    let args = ["--config", policy.as_str(), "--redis", url.as_str()];
    let mut clock = TestClock::new(dir.path(), "clock");
    let a = Daemon::start_with_clock(&args, &clock);
    let b = Daemon::start_with_clock(&args, &clock);
    let req = rcpt("joe@example.org", "ann@example.com", "1");
    let first = ask(&mut a.connect(), &req);
    assert!(
        first.starts_with("action=DEFER_IF_PERMIT 4.7.1 Greylisted"),
        "{first:?}"
    );
    // Too early on the other host too: the same triplet.
    let early = ask(&mut b.connect(), &req);
    assert!(
        early.starts_with("action=DEFER_IF_PERMIT 4.7.1 Greylisted"),
        "{early:?}"
    );
    clock.advance(Duration::from_secs(62));
    assert_eq!(ask(&mut b.connect(), &req), "action=DUNNO\n\n");
    // And known on the first host from then on.
    assert_eq!(ask(&mut a.connect(), &req), "action=DUNNO\n\n");
}

/// Redis stopped while two clients send: every request is answered within
/// the budget with the limit's `on_failure` (here `defer`); Redis started
/// again: the daemon reconnects on its own and counts again.
#[test]
fn redis_stopped_mid_load_applies_on_failure_and_recovers() {
    let Some(mut redis) = RedisServer::start("outage") else {
        return;
    };
    let dir = TempDir::new("redis-outage");
    let policy = dir.write(
        "policy.conf",
        "limit out { backend redis key sender count messages max 1000 per 1h on_failure defer }\n\
         default DUNNO\n",
    );
    let url = redis.url();
    let daemon = Daemon::start(&[
        "--config",
        &policy,
        "--redis",
        &url,
        "--redis-budget",
        "200ms",
    ]);
    let mut stream = daemon.connect();
    assert_eq!(
        ask(&mut stream, &rcpt("a@example.org", "r@example.com", "0")),
        "action=DUNNO\n\n"
    );
    redis.stop();
    // While Redis is down: deferred, each answer well within a second.
    let deferred =
        "action=DEFER_IF_PERMIT 4.3.0 Policy state temporarily unavailable, try again later\n\n";
    for n in 1..=20 {
        let started = Instant::now();
        let reply = ask(
            &mut stream,
            &rcpt("a@example.org", "r@example.com", &n.to_string()),
        );
        assert_eq!(reply, deferred, "request {n} while Redis is down");
        assert!(
            started.elapsed() < TIMEOUT,
            "request {n} waited {:?}",
            started.elapsed()
        );
    }
    daemon.expect_log("the outage", |l| l.contains("warning: redis: unreachable"));
    daemon.expect_log("the failure", |l| {
        l.contains("state backend failed rule=out") && l.contains("on_failure=defer")
    });
    redis.restart();
    daemon.expect_log("the recovery", |l| {
        l.contains("warning: redis: reachable again after ")
    });
    assert_eq!(
        ask(&mut stream, &rcpt("a@example.org", "r@example.com", "99")),
        "action=DUNNO\n\n",
        "counting again once Redis is back"
    );
}

/// A policy with `backend redis` items and no `--redis`: refused at start,
/// with the reason; an unreachable Redis: refused too (exit 69).
#[test]
fn redis_items_need_a_reachable_redis_at_start() {
    let dir = TempDir::new("redis-start");
    let policy = dir.write(
        "policy.conf",
        "limit out { backend redis key sender count messages max 3 per 1h }\n",
    );
    let Err(failure) = Daemon::try_start(&["--config", &policy]) else {
        panic!("no --redis: the start should be refused");
    };
    assert_eq!(failure.status.code(), Some(78), "{failure:?}");
    assert!(
        failure
            .stderr
            .iter()
            .any(|l| l.contains("keeps state in Redis (backend redis) but no --redis URL")),
        "{failure:?}"
    );
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = closed.local_addr().expect("its address").port();
    drop(closed);
    let url = format!("redis://127.0.0.1:{port}/");
    let Err(failure) = Daemon::try_start(&["--config", &policy, "--redis", &url]) else {
        panic!("unreachable Redis: the start should be refused");
    };
    assert_eq!(failure.status.code(), Some(69), "{failure:?}");
    assert!(
        failure
            .stderr
            .iter()
            .any(|l| l.contains("Redis cannot be reached")),
        "{failure:?}"
    );
}

/// The policy of the `policyd state --redis` tests: a limit and a greylist
/// in Redis, each for senders of its own domain (so that a greylist's
/// deferral does not refund the limit's count), and a limit kept locally.
const VIEW_POLICY: &str = "\
limit out { backend redis key sender count messages max 5 per 1h, 20 per 1d
            if sender_domain == \"example.org\" }
limit here { key sender count messages max 5 per 1h }
greylist grey { backend redis delay 1m auto_whitelist 1 if sender_domain == \"grey.example\" }
default DUNNO
";

/// `policyd state ARGS` on the test clock: its exit code, standard output
/// and standard error.
fn state(args: &[&str], clock: &TestClock) -> (Option<i32>, String, String) {
    let out = run_env(args, &[(TEST_CLOCK_VAR, clock.path())]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The number of keys in `redis` (`DBSIZE`, over a socket of its own).
fn dbsize(redis: &RedisServer) -> u64 {
    use std::io::{BufRead as _, BufReader};
    let mut stream = TcpStream::connect(redis.addr()).expect("connect to redis-server");
    stream.set_read_timeout(Some(TIMEOUT)).expect("a timeout");
    stream.write_all(b"DBSIZE\r\n").expect("send DBSIZE");
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .expect("an answer");
    line.trim()
        .strip_prefix(':')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("DBSIZE answered {line:?}"))
}

/// A daemon counts and greylists in Redis; `policyd state --redis` shows
/// the keys and counts (computed at the time of the test clock), names the
/// limit kept locally, filters with --limit and --window, refuses a name
/// the policy does not have, and writes nothing to Redis (not even the
/// key seeds, when it looks first).
#[test]
fn state_shows_what_redis_holds() {
    let Some(redis) = RedisServer::start("state-view") else {
        return;
    };
    let dir = TempDir::new("redis-state-view");
    let policy = dir.write("policy.conf", VIEW_POLICY);
    let url = redis.url();
    let mut clock = TestClock::new(dir.path(), "clock");
    let view = [
        "state",
        "--redis",
        url.as_str(),
        "--config",
        policy.as_str(),
    ];
    let with = |more: &[&'static str]| -> Vec<&str> { view.iter().chain(more).copied().collect() };
    let header = |at: &str| {
        format!(
            "redis {url} (prefix policyd:), policy {policy}\n\
             read 2026-01-01 {at} UTC; counts as of then\n"
        )
    };

    // Before any daemon: nothing in Redis, and the look leaves it empty.
    let (code, out, err) = state(&view, &clock);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("\nlimit out: 0 keys\n"), "{out}");
    assert!(out.contains("\ngreylist grey: 0 triplets\n"), "{out}");
    assert_eq!(dbsize(&redis), 0, "the view wrote to Redis");

    let daemon = Daemon::start_with_clock(&["--config", &policy, "--redis", &url], &clock);
    let mut stream = daemon.connect();
    for (sender, instance) in [
        ("alice@example.org", "a0"),
        ("alice@example.org", "a1"),
        ("alice@example.org", "a2"),
        ("bob@example.org", "b0"),
    ] {
        let reply = ask(&mut stream, &rcpt(sender, "r@example.com", instance));
        assert_eq!(reply, "action=DUNNO\n\n", "{sender} {instance}");
    }
    for (sender, instance) in [("x@grey.example", "g0"), ("y@grey.example", "g1")] {
        let reply = ask(&mut stream, &rcpt(sender, "r@example.com", instance));
        assert!(
            reply.starts_with("action=DEFER_IF_PERMIT 4.7.1 Greylisted"),
            "{reply:?}"
        );
    }
    // x's retry passes, and with auto_whitelist 1 whitelists the network.
    clock.advance(Duration::from_secs(62));
    let reply = ask(&mut stream, &rcpt("x@grey.example", "r@example.com", "g2"));
    assert_eq!(reply, "action=DUNNO\n\n");
    let keys = dbsize(&redis);

    let (code, out, err) = state(&view, &clock);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        header("00:01:02")
            + "3 items, 2 in Redis\n\
               \n\
               limit out: 2 keys\n\
               \x20 window 1: max 5 per 1h\n\
               \x20   units  key\n\
               \x20       3  alice@example.org\n\
               \x20       1  bob@example.org\n\
               \x20 window 2: max 20 per 1d\n\
               \x20   units  key\n\
               \x20       3  alice@example.org\n\
               \x20       1  bob@example.org\n\
               \n\
               limit here: kept locally (not in Redis)\n\
               \n\
               greylist grey: 2 triplets\n\
               \x20 delay 1m, retry_window 2d, max_age 35d, auto_whitelist 1\n\
               \x20   1  pending triplets (waiting for a retry)\n\
               \x20   1  passed triplets\n\
               \x20   1  auto-whitelisted client networks\n\
               \x20   1  client networks tracked\n"
    );

    // One limit, one window, the best key.
    let (code, out, err) = state(
        &with(&["--limit", "out", "--top", "1", "--window", "2"]),
        &clock,
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        header("00:01:02")
            + "\n\
               limit out: 2 keys\n\
               \x20 window 2: max 20 per 1d\n\
               \x20   units  key\n\
               \x20       3  alice@example.org\n"
    );
    // The greylist alone; the local limit alone.
    let (code, out, _) = state(&with(&["--limit", "grey"]), &clock);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("\ngreylist grey: 2 triplets\n") && !out.contains("limit"),
        "{out}"
    );
    let (code, out, _) = state(&with(&["--limit", "here"]), &clock);
    assert_eq!(
        (code, out),
        (
            Some(0),
            header("00:01:02") + "\nlimit here: kept locally (not in Redis)\n"
        )
    );
    // A name the policy does not have, a window no limit has: as for a
    // state file.
    let (code, out, err) = state(&with(&["--limit", "nope"]), &clock);
    assert_eq!((code, out.as_str()), (Some(1), ""));
    assert_eq!(
        err,
        format!(
            "policyd: error: no limit or greylist \"nope\" in policy {policy} \
             (it has: out, here, grey)\n"
        )
    );
    let (code, _, err) = state(&with(&["--window", "3"]), &clock);
    assert_eq!(code, Some(1));
    assert_eq!(err, "policyd: error: no limit shown has a window 3\n");
    // Another prefix holds nothing.
    let (code, out, _) = state(&with(&["--redis-prefix", "other:"]), &clock);
    assert_eq!(code, Some(0));
    assert!(out.contains("\nlimit out: 0 keys\n"), "{out}");

    // An hour and a bucket (1h / 16) after the counts: the hourly window
    // counts nothing, the daily one the same. (An hour after, the bucket
    // the counts are in still overlaps the window: Window::usage.)
    clock.advance(Duration::from_secs(3600 - 62 + 225));
    let (code, out, err) = state(&with(&["--limit", "out"]), &clock);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        header("01:03:45")
            + "\n\
               limit out: 2 keys\n\
               \x20 window 1: max 5 per 1h\n\
               \x20   (no key counts anything in this window)\n\
               \x20 window 2: max 20 per 1d\n\
               \x20   units  key\n\
               \x20       3  alice@example.org\n\
               \x20       1  bob@example.org\n"
    );
    assert_eq!(dbsize(&redis), keys, "the views wrote to Redis");
}

/// `policyd state --redis`'s refusals: with --state-file, without the
/// policy, with a Redis that does not answer, with a policy that does not
/// compile.
#[test]
fn state_with_redis_refusals() {
    let dir = TempDir::new("redis-state-refusals");
    let policy = dir.write("policy.conf", VIEW_POLICY);
    let broken = dir.write("broken.conf", "limit out { key sender }\n");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = closed.local_addr().expect("its address").port();
    drop(closed);
    let url = format!("redis://127.0.0.1:{port}/");
    // (arguments, exit code, the start of standard error)
    let rows: &[(&[&str], i32, String)] = &[
        (
            &["state", "--state-file", "s", "--redis", &url],
            64,
            "policyd: error: --state-file and --redis exclude each other: give one".into(),
        ),
        (
            &["state", "--redis", &url],
            64,
            "policyd: error: expected --config FILE with --redis".into(),
        ),
        (
            &["state", "--redis", &url, "--config", &policy],
            69,
            format!("policyd: error: --redis {url}: Redis cannot be reached: "),
        ),
        (
            &["state", "--redis", &url, "--config", &broken],
            78,
            format!("{broken}:1:"),
        ),
    ];
    for (args, code, start) in rows {
        let out = run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {err}");
        assert!(err.starts_with(start.as_str()), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

/// `rediss://` with `--redis-ca-file`: the daemon counts a limit in a
/// redis-server that speaks TLS only, with a certificate of a private CA.
/// Without the CA (the system's CAs only) the start is refused as a
/// certificate error (exit 69); a CA file that holds no certificate is a
/// configuration error (exit 78), and a CA file with a `redis://` URL a
/// usage error (exit 64).
#[test]
fn rediss_with_a_private_ca() {
    let Some(redis) = RedisServer::start_tls("tls", ClientAuth::No) else {
        return;
    };
    let dir = TempDir::new("redis-tls");
    let policy = dir.write(
        "policy.conf",
        "limit tls { backend redis key sender count messages max 2 per 1h }\n\
         default DUNNO\n",
    );
    let url = redis.tls_url();
    let ca = redis.ca_file();
    let ca = ca.to_str().expect("a UTF-8 path");
    let daemon = Daemon::start(&["--config", &policy, "--redis", &url, "--redis-ca-file", ca]);
    daemon.expect_log("the Redis line", |l| {
        l.contains("info: state in Redis at rediss://127.0.0.1:")
    });
    let mut stream = daemon.connect();
    for n in 1..=2 {
        assert_eq!(
            ask(
                &mut stream,
                &rcpt("a@example.org", "r@example.com", &n.to_string())
            ),
            "action=DUNNO\n\n",
            "message {n}"
        );
    }
    let third = ask(&mut stream, &rcpt("a@example.org", "r@example.com", "3"));
    assert!(
        third.starts_with("action=DEFER 4.7.1 Rate limit reached (2 per 1h)"),
        "{third:?}"
    );

    // `policyd state` reads the same Redis over TLS with the same CA.
    let out = run(&[
        "state",
        "--redis",
        &url,
        "--redis-ca-file",
        ca,
        "--config",
        &policy,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("limit tls: 1 key"), "{text}");
    assert!(text.contains("        2  a@example.org"), "{text}");

    // The system's CAs do not include the test CA.
    let Err(failure) = Daemon::try_start(&["--config", &policy, "--redis", &url]) else {
        panic!("a certificate of an unknown CA: the start should be refused");
    };
    assert_eq!(failure.status.code(), Some(69), "{failure:?}");
    assert!(
        failure.stderr.iter().any(|l| {
            l.contains(
                "Redis's TLS certificate is refused: invalid peer certificate: UnknownIssuer",
            ) && l.contains("--redis-ca-file")
        }),
        "{failure:?}"
    );

    // A CA file without a certificate: the key, given by mistake.
    let key = redis.client_key_file();
    let key = key.to_str().expect("a UTF-8 path");
    let Err(failure) =
        Daemon::try_start(&["--config", &policy, "--redis", &url, "--redis-ca-file", key])
    else {
        panic!("a CA file without a certificate: the start should be refused");
    };
    assert_eq!(failure.status.code(), Some(78), "{failure:?}");
    assert!(
        failure
            .stderr
            .iter()
            .any(|l| l.contains(&format!("--redis-ca-file {key}: no certificate in it"))),
        "{failure:?}"
    );

    // A CA file and a redis:// URL: not TLS, so the CA would check nothing.
    let plain = url.replacen("rediss://", "redis://", 1);
    let Err(failure) = Daemon::try_start(&[
        "--config",
        &policy,
        "--redis",
        &plain,
        "--redis-ca-file",
        ca,
    ]) else {
        panic!("--redis-ca-file with a redis:// URL: the start should be refused");
    };
    assert_eq!(failure.status.code(), Some(64), "{failure:?}");
    assert!(
        failure
            .stderr
            .iter()
            .any(|l| l.contains("--redis-ca-file needs a rediss:// URL in --redis")),
        "{failure:?}"
    );
}

/// `--redis` with a policy that keeps nothing in Redis: one warning line,
/// and the daemon serves without connecting (nothing listens at the URL).
#[test]
fn redis_without_redis_items_is_a_warning() {
    let daemon = Daemon::start(&["--redis", "redis://127.0.0.1:1/"]);
    daemon.expect_log("the warning", |l| {
        l.ends_with(
            ": warning: --redis is given but no limit or greylist of policy default says \
             `backend redis`: Redis is not used",
        )
    });
    assert_eq!(
        ask(
            &mut daemon.connect(),
            &rcpt("a@example.org", "r@example.com", "1")
        ),
        "action=DUNNO\n\n"
    );
}
