//! Criterion benches of compiled policies (`policyd_benches::policies`).
//!
//! - `policy_decide`: `Engine::decide` of the full Postfix
//!   3.x `RCPT` request (`FULL_RCPT`, parsed once) against the realistic policy
//!   (56 rules, 10,000 CIDRs, 10,000 domains, regexes; every rule is tried,
//!   one dry-run hit, a templated `PREPEND` decides), with a warmed `Scratch`;
//!   and frame + parse + decide + encode of that request on a warmed
//!   connection (`end-to-end`). The target: about 1 µs median.
//! - `policy_compile`: `Policy::compile` of the realistic policy (its list
//!   files held in memory) and of a policy with one 100,000-entry list of
//!   domains or of CIDRs. These take tens of milliseconds: 10 samples each.
//! - `limits`: `Engine::decide` of a full `RCPT` request (a submission
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
//! - `greylist`: `Engine::decide` of a full `RCPT` request (`FULL_RCPT`
//!   reshaped, `policies::greylist_rcpt`) against a greylist as an inbound
//!   MX runs it (`policyd_benches::policies::greylist`: a condition, client
//!   and recipient whitelist files in postgrey's formats, none matching, so
//!   each request is looked up in all of them; a `then` template and an
//!   `X-Greylist` header). `10m-triplets/random`: the table first holds
//!   10,000,000 triplets (filled by deciding one request per triplet, each a
//!   first attempt, before anything is measured; ten triplets per client
//!   /24), then each measured request is a triplet drawn at random from
//!   them; `8-triplets/in-cache`: the same few triplets again and again.
//!   `too-early`: a minute after the first attempts, every request is
//!   deferred again (the `then` template expanded); `known`: the measured
//!   triplets passed (their first accepted retry was decided between the
//!   two), every request passes the greylist and the default decides
//!   (auto-whitelisting on: the client network is looked up too). The
//!   requests are parsed in advance: only `decide` is measured. The issue's
//!   figure: decide with greylisting over 10,000,000 stored triplets.
//!   Filling takes about half a minute and about 0.4 GB; the bench prints
//!   the time, the table's heap bytes per triplet and in all, and the
//!   process's resident memory.
//!
//! Run: `cargo bench -p policyd-benches --bench policy -- --warm-up-time 1 --measurement-time 3`
//! (only the limits: `... --bench policy -- limits --warm-up-time 1 --measurement-time 3`;
//! only greylisting: `... --bench policy -- greylist --warm-up-time 1 --measurement-time 3`)
use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use policy_core::greylist::GreylistTable;
use policy_core::{Engine, Request, Scratch, State, Timestamp};
use policyd_benches::policies::{
    big_list, greylist, greylist_rcpt, greylist_rcpt_into, limit_rcpt, limits, realistic, ListKind,
};
use policyd_benches::{policies, Connection, FactCache, XorShift64, FULL_RCPT};

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

/// Triplets the greylist holds in the `greylist` benches: the figure.
const GREYLIST_TRIPLETS: u64 = 10_000_000;
/// Triplets of the greylist's in-cache case.
const GREYLIST_HOT: u64 = 8;
/// When every triplet's first attempt is decided (the fill).
const GREY_FIRST_MS: u64 = 1_700_000_000_000;
/// A minute later: every triplet is still too early (the delay is 5 minutes).
const GREY_TOO_EARLY: Timestamp = Timestamp::from_unix_millis(GREY_FIRST_MS + 60_000);
/// Six minutes after the first attempts: the measured triplets' first
/// accepted retry, decided before the `known` benches.
const GREY_RETRY: Timestamp = Timestamp::from_unix_millis(GREY_FIRST_MS + 6 * 60_000);
/// Ten minutes after the first attempts: the measured triplets are known.
const GREY_KNOWN: Timestamp = Timestamp::from_unix_millis(GREY_FIRST_MS + 10 * 60_000);

fn policy_decide(c: &mut Criterion) {
    let engine = Engine::new(realistic().compile());
    let request = Request::parse(FULL_RCPT).expect("valid request");
    let mut scratch = Scratch::new();
    {
        let decision = engine.decide(&request, NOW, &mut scratch);
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
    group.bench_function("engine/realistic/full-rcpt", |b| {
        b.iter(|| {
            let decision = engine.decide(black_box(&request), NOW, &mut scratch);
            black_box(decision.wire().len())
        });
    });

    // The realistic policy with a score item of 20 conditions, 12 of them on
    // DNS answers, every answer in a cache (as the daemon's once warm).
    let scoring = Engine::new(policies::scoring().compile());
    let cache = FactCache::new(policies::scoring_answers());
    let mut scoring_scratch = Scratch::new();
    let (rule, wire) = cache.decide(&scoring, &request, NOW, &mut scoring_scratch, |d| {
        (
            d.rule.to_owned(),
            String::from_utf8_lossy(d.wire()).into_owned(),
        )
    });
    assert_eq!(rule, "tls-header", "the score stays below the thresholds");
    println!("realistic policy with a 20-condition score item, answers cached: rule={rule} action={wire}");
    group.bench_function("engine/scoring-20-cached/full-rcpt", |b| {
        b.iter(|| {
            cache.decide(
                &scoring,
                black_box(&request),
                NOW,
                &mut scoring_scratch,
                |d| black_box(d.wire().len()),
            )
        });
    });

    // The score item alone: what DNS scoring costs by itself.
    let score_only = Engine::new(policies::score_only().compile());
    let mut score_scratch = Scratch::new();
    let rule = cache.decide(&score_only, &request, NOW, &mut score_scratch, |d| {
        d.rule.to_owned()
    });
    assert_eq!(rule, "default", "the score stays below the thresholds");
    group.bench_function("engine/score-20-cached/full-rcpt", |b| {
        b.iter(|| {
            cache.decide(
                &score_only,
                black_box(&request),
                NOW,
                &mut score_scratch,
                |d| black_box(d.wire().len()),
            )
        });
    });

    // SPF through an include and an `mx` term, tagged with Received-SPF;
    // without an instance, so that every decision is a message's first
    // recipient and gets the header.
    let spf = Engine::new(policies::spf().compile());
    let spf_cache = FactCache::new(policies::spf_answers());
    let spf_frame = policies::with_attributes(FULL_RCPT, &[("instance", "")]);
    let spf_request = Request::parse(&spf_frame).expect("valid request");
    let mut spf_scratch = Scratch::new();
    let wire = spf_cache.decide(&spf, &spf_request, NOW, &mut spf_scratch, |d| {
        String::from_utf8_lossy(d.wire()).into_owned()
    });
    assert!(wire.starts_with("PREPEND Received-SPF: pass "), "{wire}");
    group.bench_function("engine/spf-include-cached/full-rcpt", |b| {
        b.iter(|| {
            spf_cache.decide(&spf, black_box(&spf_request), NOW, &mut spf_scratch, |d| {
                black_box(d.wire().len())
            })
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

fn limits_decide(c: &mut Criterion) {
    let engine = Engine::new(limits().compile());
    let mut scratch = Scratch::new();

    // Fill every table with LIMIT_KEYS keys: one message per key.
    let started = Instant::now();
    for n in 0..LIMIT_KEYS {
        let frame = limit_rcpt(n, n + 1);
        let request = Request::parse(&frame).expect("valid request");
        let decision = engine.decide(&request, NOW, &mut scratch);
        assert_eq!(decision.rule, "default", "key {n} was refused");
    }
    println!(
        "limits: filled 3 tables with {LIMIT_KEYS} keys each in {:.1?}",
        started.elapsed()
    );
    for state in engine.state().limits() {
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
        assert_eq!(engine.decide(request, NOW, &mut scratch).rule, "default");
    }

    let mut group = c.benchmark_group("limits");
    group.throughput(Throughput::Elements(1));
    group.bench_function("decide/3-limits/1m-keys/random", |b| {
        bench_decide_at(b, &engine, &random, NOW, &mut scratch);
    });
    group.bench_function("decide/3-limits/8-keys/in-cache", |b| {
        bench_decide_at(b, &engine, &hot, NOW, &mut scratch);
    });
    group.finish();
    // Nothing measured was refused (a refusal takes another path).
    for request in random.iter().chain(&hot).take(1000) {
        assert_eq!(engine.decide(request, NOW, &mut scratch).rule, "default");
    }
}

/// The process's resident memory in bytes (`VmRSS` of `/proc/self/status`),
/// if the system shows it.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The `greylist` benches' state, built when the first of them runs (a
/// filter that leaves them all out costs no fill).
struct GreyFixture {
    engine: Engine,
    scratch: Scratch,
    /// Requests of [`PREPARED_REQUESTS`] triplets drawn at random.
    random: Vec<Request<'static>>,
    /// Requests of [`GREYLIST_HOT`] triplets, each in turn.
    hot: Vec<Request<'static>>,
    /// Whether the measured triplets had their first accepted retry.
    passed: bool,
}

/// A parsed request of a frame that lives as long as the process (the
/// fixture is built once per process).
fn leaked_request(frame: Vec<u8>) -> Request<'static> {
    let frame: &'static [u8] = Box::leak(frame.into_boxed_slice());
    Request::parse(frame).expect("valid request")
}

impl GreyFixture {
    /// The greylist filled with [`GREYLIST_TRIPLETS`] first attempts, and
    /// the measured requests.
    fn new() -> Self {
        let engine = Engine::new(greylist().compile());
        let mut scratch = Scratch::new();
        // One buffer reused for the frames: the fill is dominated by
        // deciding (a new triplet may grow its shard), not by building
        // requests.
        let started = Instant::now();
        let first = Timestamp::from_unix_millis(GREY_FIRST_MS);
        let mut frame = Vec::new();
        for n in 0..GREYLIST_TRIPLETS {
            greylist_rcpt_into(n, &mut frame);
            let request = Request::parse(&frame).expect("valid request");
            let decision = engine.decide(&request, first, &mut scratch);
            assert_eq!(decision.rule, "grey", "triplet {n} was not greylisted");
        }
        let fill = started.elapsed();
        let state = engine.state();
        let table = Self::table(&state);
        assert_eq!(
            table.len() as u64,
            GREYLIST_TRIPLETS,
            "every triplet tracked"
        );
        println!(
            "greylist: {GREYLIST_TRIPLETS} triplets stored in {fill:.1?} ({:.2} µs per first attempt, \
             request built and parsed)",
            fill.as_secs_f64() * 1e6 / GREYLIST_TRIPLETS as f64
        );
        let mut rng = XorShift64::new(0x6e3_1157_0001);
        let random = (0..PREPARED_REQUESTS)
            .map(|_| leaked_request(greylist_rcpt(rng.next_u64() % GREYLIST_TRIPLETS)))
            .collect();
        let hot = (0..HOT_REQUESTS as u64)
            .map(|i| leaked_request(greylist_rcpt(i % GREYLIST_HOT)))
            .collect();
        let fixture = Self {
            engine,
            scratch,
            random,
            hot,
            passed: false,
        };
        fixture.print_memory();
        fixture
    }

    fn table(state: &State) -> &GreylistTable {
        state.greylists().next().expect("one greylist").table
    }

    fn print_memory(&self) {
        let state = self.engine.state();
        let table = Self::table(&state);
        let heap = table.heap_bytes();
        let triplets = table.len();
        println!(
            "greylist: {triplets} triplets, {} client networks: {heap} heap bytes ({:.1} MB), \
             {:.1} bytes per triplet; process resident {}",
            table.clients_len(),
            heap as f64 / 1e6,
            heap as f64 / triplets as f64,
            resident_bytes().map_or_else(
                || "unknown".to_owned(),
                |b| format!("{:.1} MB", b as f64 / 1e6)
            )
        );
    }

    /// Decides every measured request at `now`: each must be answered by
    /// `rule` with a reply starting with `wire`.
    fn expect_all(&mut self, now: Timestamp, rule: &str, wire: &str) {
        for (i, request) in self.random.iter().chain(&self.hot).enumerate() {
            let decision = self.engine.decide(request, now, &mut self.scratch);
            assert!(
                decision.rule == rule && decision.wire().starts_with(wire.as_bytes()),
                "request {i}: expected rule {rule} answering {wire}..., got rule {} answering {}",
                decision.rule,
                String::from_utf8_lossy(decision.wire())
            );
        }
    }

    /// The first accepted retry of every measured triplet (a triplet drawn
    /// twice passes once, then is known), then a check that all are known.
    fn pass(&mut self) {
        if self.passed {
            return;
        }
        for request in self.random.iter().chain(&self.hot) {
            let decision = self.engine.decide(request, GREY_RETRY, &mut self.scratch);
            let wire = decision.wire();
            assert!(
                (decision.rule, wire) == ("default", &b"DUNNO"[..])
                    || (decision.rule == "grey"
                        && wire.starts_with(b"PREPEND X-Greylist: delayed 360 seconds")),
                "the first retry: rule {} answered {}",
                decision.rule,
                String::from_utf8_lossy(wire)
            );
        }
        self.passed = true;
        self.expect_all(GREY_KNOWN, "default", "DUNNO");
    }
}

/// The deferral of the measured triplets at [`GREY_TOO_EARLY`].
const GREY_DEFER: &str = "DEFER_IF_PERMIT 4.7.1 Greylisted by mx.example.org for example.org, \
                          try again in 240 seconds";

fn greylist_decide(c: &mut Criterion) {
    let mut fixture: Option<GreyFixture> = None;
    let mut group = c.benchmark_group("greylist");
    group.throughput(Throughput::Elements(1));
    // Too early: deferred again; nothing changes but the time last seen.
    for (name, hot) in [
        ("decide/greylist/10m-triplets/random/too-early", false),
        ("decide/greylist/8-triplets/in-cache/too-early", true),
    ] {
        group.bench_function(name, |b| {
            let f = fixture.get_or_insert_with(|| {
                let mut f = GreyFixture::new();
                f.expect_all(GREY_TOO_EARLY, "grey", GREY_DEFER);
                f
            });
            assert!(!f.passed, "the too-early benches run first");
            let requests = if hot { &f.hot } else { &f.random };
            bench_decide_at(b, &f.engine, requests, GREY_TOO_EARLY, &mut f.scratch);
        });
    }
    // Known: the greylist passes, the default decides.
    for (name, hot) in [
        ("decide/greylist/10m-triplets/random/known", false),
        ("decide/greylist/8-triplets/in-cache/known", true),
    ] {
        group.bench_function(name, |b| {
            let f = fixture.get_or_insert_with(GreyFixture::new);
            f.pass();
            let requests = if hot { &f.hot } else { &f.random };
            bench_decide_at(b, &f.engine, requests, GREY_KNOWN, &mut f.scratch);
        });
    }
    group.finish();
    if let Some(mut f) = fixture {
        f.print_memory();
        // Nothing measured changed its path.
        let expected = if f.passed {
            ("default", "DUNNO")
        } else {
            ("grey", GREY_DEFER)
        };
        let now = if f.passed { GREY_KNOWN } else { GREY_TOO_EARLY };
        f.expect_all(now, expected.0, expected.1);
    }
}

/// Decides every request of `requests` in turn at `now`, forever: the
/// measured loop.
fn bench_decide_at(
    b: &mut criterion::Bencher<'_>,
    engine: &Engine,
    requests: &[Request<'_>],
    now: Timestamp,
    scratch: &mut Scratch,
) {
    let mut next = 0;
    b.iter(|| {
        let request = &requests[next];
        next = (next + 1) % requests.len();
        let decision = engine.decide(black_box(request), now, scratch);
        black_box(decision.wire().len())
    });
}

criterion_group!(
    benches,
    policy_decide,
    policy_compile,
    limits_decide,
    greylist_decide
);
criterion_main!(benches);
