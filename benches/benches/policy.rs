//! Criterion benches of compiled policies (`policyd_benches::policies`).
//!
//! - `policy_decide`: `Policy::decide` and `Engine::decide` of the full Postfix
//!   3.x `RCPT` request (`FULL_RCPT`, parsed once) against the realistic policy
//!   (56 rules, 10,000 CIDRs, 10,000 domains, regexes; every rule is tried,
//!   one dry-run hit, a templated `PREPEND` decides), with a warmed `Scratch`;
//!   and frame + parse + decide + encode of that request on a warmed
//!   connection (`end-to-end`). The target: about 1 µs median.
//! - `policy_compile`: `Policy::compile` of the realistic policy (its list
//!   files held in memory) and of a policy with one 100,000-entry list of
//!   domains or of CIDRs. These take tens of milliseconds: 10 samples each.
//! - `limits`: `Policy::decide` of a full `RCPT` request (a submission
//!   request from an authenticated user) against three limit rules counting
//!   at `RCPT` (`policyd_benches::policies::limits`: recipients per login in
//!   an hour and a day, messages per client /24, recipients per sender
//!   domain), every request admitted, so each is checked and counted in
//!   every window of the three tables. `1m-keys/random`: the tables first
//!   hold 1,000,000 keys each (filled by deciding one request per key,
//!   before anything is measured), then each measured request has a key drawn
//!   at random from them; `8-keys/in-cache`: the same keys again and again.
//!   The requests are parsed in advance (each with its own `instance`, so
//!   each is a new message that `count messages` counts): only `decide` is
//!   measured. The target: about 2 µs median with 1,000,000 keys.
//!   Filling the tables takes a few seconds and about 0.7 GB; the bench
//!   prints the bytes per tracked key of each table.
//!
//! Run: `cargo bench -p policyd-benches --bench policy -- --warm-up-time 1 --measurement-time 3`
//! (only the limits: `... --bench policy -- limits --warm-up-time 1 --measurement-time 3`)
use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use policy_core::{Engine, Policy, Request, Scratch, Timestamp};
use policyd_benches::policies::{big_list, limit_rcpt, limits, realistic, ListKind};
use policyd_benches::{Connection, XorShift64, FULL_RCPT};

/// A fixed `now`: the engine takes time as an argument.
const NOW: Timestamp = Timestamp::from_unix_millis(1_700_000_000_000);

/// Entries of the big list whose compile time is measured.
const BIG_LIST_ENTRIES: usize = 100_000;

/// Distinct keys each limit table holds in the `limits` benches.
const LIMIT_KEYS: u64 = 1_000_000;
/// Requests prepared (framed and parsed) for the 1,000,000-key case, keys
/// drawn at random: a power of two, many more than the caches hold, so the
/// tables are read as a server with this many active keys reads them.
const PREPARED_REQUESTS: usize = 1 << 16;
/// Keys of the in-cache case.
const HOT_KEYS: u64 = 8;
/// Requests prepared for the in-cache case (each key in turn).
const HOT_REQUESTS: usize = 64;

fn policy_decide(c: &mut Criterion) {
    let policy = realistic().compile();
    let request = Request::parse(FULL_RCPT).expect("valid request");
    let mut scratch = Scratch::new();
    {
        let decision = policy.decide(&request, NOW, &mut scratch);
        assert_eq!(
            decision.rule, "tls-header",
            "the realistic policy must try every rule for FULL_RCPT"
        );
        assert_eq!(decision.dry_run.len(), 1, "one dry-run hit expected");
        println!(
            "realistic policy, FULL_RCPT: rule={} action={} dry-run hits={}",
            decision.rule,
            String::from_utf8_lossy(decision.wire()),
            decision.dry_run.len()
        );
    }

    let mut group = c.benchmark_group("policy_decide");
    group.throughput(Throughput::Elements(1));
    group.bench_function("policy/realistic/full-rcpt", |b| {
        b.iter(|| {
            let decision = policy.decide(black_box(&request), NOW, &mut scratch);
            black_box(decision.wire().len())
        });
    });

    let engine = Engine::new(realistic().compile());
    let mut scratch = Scratch::new();
    let _ = engine.decide(&request, NOW, &mut scratch);
    group.bench_function("engine/realistic/full-rcpt", |b| {
        b.iter(|| {
            let decision = engine.decide(black_box(&request), NOW, &mut scratch);
            black_box(decision.wire().len())
        });
    });

    let mut conn = Connection::warmed(&engine, NOW, FULL_RCPT);
    group.throughput(Throughput::Bytes(FULL_RCPT.len() as u64));
    group.bench_function("end-to-end/realistic/full-rcpt", |b| {
        b.iter(|| {
            conn.clear_reply();
            let answered = conn
                .handle(&engine, NOW, black_box(FULL_RCPT))
                .expect("valid");
            black_box(answered)
        });
    });
    group.finish();
}

fn policy_compile(c: &mut Criterion) {
    let mut group = c.benchmark_group("policy_compile");
    group.sample_size(10);
    let cases = [
        ("realistic", realistic()),
        ("100k-domains", big_list(ListKind::Domain, BIG_LIST_ENTRIES)),
        ("100k-cidrs", big_list(ListKind::Cidr, BIG_LIST_ENTRIES)),
    ];
    for (name, source) in &cases {
        group.bench_function(*name, |b| {
            b.iter(|| black_box(source.compile()));
        });
    }
    group.finish();
}

/// Requests for `keys` (key numbers of `policies::limit_rcpt`), each a new
/// message: instances from `first_instance` on.
fn limit_frames(keys: impl Iterator<Item = u64>, first_instance: u64) -> Vec<Vec<u8>> {
    keys.zip(first_instance..)
        .map(|(n, instance)| limit_rcpt(n, instance))
        .collect()
}

/// Decides every request of `requests` in turn, forever: the measured loop.
fn bench_limit_decide(
    b: &mut criterion::Bencher<'_>,
    policy: &Policy,
    requests: &[Request<'_>],
    scratch: &mut Scratch,
) {
    let mut next = 0;
    b.iter(|| {
        let request = &requests[next];
        next = (next + 1) % requests.len();
        let decision = policy.decide(black_box(request), NOW, scratch);
        black_box(decision.wire().len())
    });
}

fn limits_decide(c: &mut Criterion) {
    let policy = limits().compile();
    let mut scratch = Scratch::new();

    // Fill every table with LIMIT_KEYS keys: one message per key.
    let started = Instant::now();
    for n in 0..LIMIT_KEYS {
        let frame = limit_rcpt(n, n + 1);
        let request = Request::parse(&frame).expect("valid request");
        let decision = policy.decide(&request, NOW, &mut scratch);
        assert_eq!(decision.rule, "default", "key {n} was refused");
    }
    println!(
        "limits: filled 3 tables with {LIMIT_KEYS} keys each in {:.1?}",
        started.elapsed()
    );
    for state in policy.limit_states() {
        let keys = state.table.len();
        assert_eq!(keys as u64, LIMIT_KEYS, "{}: every key tracked", state.name);
        println!(
            "limits: {} ({} window(s)): {keys} keys, {} bytes per tracked key",
            state.name,
            state.table.limit().windows().len(),
            state.table.heap_bytes() / keys
        );
    }

    let mut rng = XorShift64::new(0x11_4175_0001);
    let frames = limit_frames(
        (0..PREPARED_REQUESTS).map(|_| rng.next_u64() % LIMIT_KEYS),
        LIMIT_KEYS + 1,
    );
    let random: Vec<Request<'_>> = frames
        .iter()
        .map(|f| Request::parse(f).expect("valid request"))
        .collect();
    let hot_frames = limit_frames(
        (0..HOT_REQUESTS as u64).map(|i| i % HOT_KEYS),
        LIMIT_KEYS + 1 + PREPARED_REQUESTS as u64,
    );
    let hot: Vec<Request<'_>> = hot_frames
        .iter()
        .map(|f| Request::parse(f).expect("valid request"))
        .collect();
    for request in random.iter().chain(&hot) {
        assert_eq!(policy.decide(request, NOW, &mut scratch).rule, "default");
    }

    let mut group = c.benchmark_group("limits");
    group.throughput(Throughput::Elements(1));
    group.bench_function("decide/3-limits/1m-keys/random", |b| {
        bench_limit_decide(b, &policy, &random, &mut scratch);
    });
    group.bench_function("decide/3-limits/8-keys/in-cache", |b| {
        bench_limit_decide(b, &policy, &hot, &mut scratch);
    });
    group.finish();
    // Nothing measured was refused (a refusal takes another path).
    for request in random.iter().chain(&hot).take(1000) {
        assert_eq!(policy.decide(request, NOW, &mut scratch).rule, "default");
    }
}

criterion_group!(benches, policy_decide, policy_compile, limits_decide);
criterion_main!(benches);
