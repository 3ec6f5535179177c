//! The deterministic performance guard: instruction counts of the hot path under
//! valgrind (gungraun, callgrind), on the full Postfix 3.x `RCPT` request.
//!
//! Each benchmark receives warmed state from a setup function (not counted) and
//! returns it, so neither setup nor drop is counted: only the one call measured.
//! `ci-budgets.sh` runs this bench and compares each `Instructions` count with
//! its budget in `budgets.toml`.
//!
//! Needs valgrind and `gungraun-runner` of the same version as the `gungraun`
//! dev-dependency; run it through `benches/ci-budgets.sh`, which checks both.
// gungraun's macros expand to `super::name` paths that this lint flags.
#![allow(unused_qualifications)]

use std::hint::black_box;

use gungraun::{library_benchmark, library_benchmark_group, main};
use policy_core::{Action, Decision, Engine, Policy, Request, Scratch, Timestamp};
use policy_proto::Framer;
use policyd_benches::{
    frame_of, policies, warmed_framer, Connection, FactCache, FULL_RCPT, WARM_UP_REQUESTS,
};

/// A fixed `now`: the engine takes time as an argument.
const NOW: Timestamp = Timestamp::from_unix_millis(1_700_000_000_000);

/// The action the benchmarked policy answers: a reply with an enhanced status
/// code and text, so encoding is not the trivial `DUNNO`.
const REJECT: &str = "REJECT 5.7.1 Recipient address rejected: access denied by policy";

fn engine() -> Engine {
    Engine::new(Policy::always(Action::parse(REJECT).expect("valid action")))
}

fn owned_frame(request: &'static [u8]) -> Vec<u8> {
    let frame = frame_of(request);
    // Parse once unmeasured: one-time work (CPU feature detection in memchr)
    // belongs to the process, not to each request.
    Request::parse(&frame).expect("valid request");
    frame
}

fn warmed_decider(request: &'static [u8]) -> (Engine, Scratch, Request<'static>) {
    let engine = engine();
    let mut scratch = Scratch::new();
    let parsed = Request::parse(request).expect("valid request");
    let _ = engine.decide(&parsed, NOW, &mut scratch);
    (engine, scratch, parsed)
}

/// The realistic policy (`policyd_benches::policies::realistic`: 56 rules,
/// 10,000 CIDRs, 10,000 domains, regexes) in an engine, with a warmed scratch.
fn warmed_realistic_decider(request: &'static [u8]) -> (Engine, Scratch, Request<'static>) {
    let engine = Engine::new(policies::realistic().compile());
    let mut scratch = Scratch::new();
    let parsed = Request::parse(request).expect("valid request");
    for _ in 0..WARM_UP_REQUESTS {
        let _ = engine.decide(&parsed, NOW, &mut scratch);
    }
    (engine, scratch, parsed)
}

/// The realistic policy with a score item of 20 conditions, 12 on DNS
/// answers (`policies::scoring`), in an engine, with the answers in a cache
/// (`policies::scoring_answers`) and a warmed scratch.
fn warmed_scoring_decider(
    request: &'static [u8],
) -> (Engine, FactCache, Scratch, Request<'static>) {
    let engine = Engine::new(policies::scoring().compile());
    let cache = FactCache::new(policies::scoring_answers());
    let mut scratch = Scratch::new();
    let parsed = Request::parse(request).expect("valid request");
    for _ in 0..WARM_UP_REQUESTS {
        cache.decide(&engine, &parsed, NOW, &mut scratch, |d| d.wire().len());
    }
    (engine, cache, scratch, parsed)
}

/// Keys of the warmed limit tables in [`warmed_limits_decider`].
const LIMIT_HOT_KEYS: u64 = 8;

/// The three-limit policy (`policyd_benches::policies::limits`: recipients
/// per login in an hour and a day, messages per client /24, recipients per
/// sender domain, all counted at RCPT) in an engine whose tables already
/// track a few keys, with a warmed scratch; the request measured is a new
/// message of one of those keys, so every limit checks and counts it. The
/// frame is leaked to give the request a `'static` lifetime: one per process.
fn warmed_limits_decider(_request: &'static [u8]) -> (Engine, Scratch, Request<'static>) {
    let engine = Engine::new(policies::limits().compile());
    let mut scratch = Scratch::new();
    let mut instance = 1;
    for _ in 0..WARM_UP_REQUESTS {
        for n in 0..LIMIT_HOT_KEYS {
            let frame = policies::limit_rcpt(n, instance);
            instance += 1;
            let parsed = Request::parse(&frame).expect("valid request");
            let _ = engine.decide(&parsed, NOW, &mut scratch);
        }
    }
    let frame: &'static [u8] = Box::leak(policies::limit_rcpt(3, instance).into_boxed_slice());
    let parsed = Request::parse(frame).expect("valid request");
    (engine, scratch, parsed)
}

/// Triplets of the warmed greylist in [`warmed_greylist_decider`], known and
/// pending each.
const GREYLIST_HOT_TRIPLETS: u64 = 8;
/// First triplet number of the pending ones.
const GREYLIST_PENDING: u64 = 100;

/// The greylist policy (`policyd_benches::policies::greylist`: a condition,
/// postgrey-format client and recipient whitelist files, a `then` template
/// and a header) in an engine whose table holds a few triplets: known ones
/// (first attempt 10 minutes ago, passed 4 minutes ago) and pending ones
/// (first attempt a minute ago), with a warmed scratch. The request measured
/// is the known triplet 3 (`known`: the greylist passes it, the default
/// decides) or the pending triplet `GREYLIST_PENDING + 3` (`too_early`:
/// deferred again, the template expanded). The frame is leaked to give the
/// request a `'static` lifetime: one per process.
fn warmed_greylist_decider(measured: u64) -> (Engine, Scratch, Request<'static>) {
    let engine = Engine::new(policies::greylist().compile());
    let mut scratch = Scratch::new();
    let at =
        |minutes_ago: u64| Timestamp::from_unix_millis(NOW.as_unix_millis() - minutes_ago * 60_000);
    let mut decide = |n: u64, now: Timestamp| {
        let frame = policies::greylist_rcpt(n);
        let parsed = Request::parse(&frame).expect("valid request");
        let _ = engine.decide(&parsed, now, &mut scratch);
    };
    for n in 0..GREYLIST_HOT_TRIPLETS {
        decide(n, at(10));
        decide(n, at(4));
        decide(GREYLIST_PENDING + n, at(1));
    }
    for _ in 0..WARM_UP_REQUESTS {
        for n in 0..GREYLIST_HOT_TRIPLETS {
            decide(n, NOW);
            decide(GREYLIST_PENDING + n, NOW);
        }
    }
    let frame: &'static [u8] = Box::leak(policies::greylist_rcpt(measured).into_boxed_slice());
    let parsed = Request::parse(frame).expect("valid request");
    let decision = engine.decide(&parsed, NOW, &mut scratch);
    let expected = if measured < GREYLIST_PENDING {
        ("default", &b"DUNNO"[..])
    } else {
        ("grey", &b"DEFER_IF_PERMIT 4.7.1 Greylisted"[..])
    };
    assert!(
        decision.rule == expected.0 && decision.wire().starts_with(expected.1),
        "triplet {measured}: rule {} answered {}",
        decision.rule,
        String::from_utf8_lossy(decision.wire())
    );
    (engine, scratch, parsed)
}

/// The benchmarked engine's decision on `request` (its wire text `REJECT`
/// with status code and text) and a reply buffer. A decision borrows its
/// scratch: the scratch is leaked, once per benchmark process.
fn decision_and_reply_buffer(request: &'static [u8]) -> (Decision<'static>, Vec<u8>) {
    let scratch: &'static mut Scratch = Box::leak(Box::new(Scratch::new()));
    let parsed = Request::parse(request).expect("valid request");
    let decision = engine().decide(&parsed, NOW, scratch);
    (
        decision,
        Vec::with_capacity(policyd_benches::REPLY_CAPACITY),
    )
}

fn warmed_connection(request: &'static [u8]) -> (Engine, Connection) {
    let engine = engine();
    let conn = Connection::warmed(&engine, NOW, request);
    (engine, conn)
}

// `Framer::feed` + `Framer::next_frame` of one whole request.
#[library_benchmark]
#[bench::full_rcpt(args = (FULL_RCPT), setup = warmed_framer)]
fn frame(mut framer: Framer) -> Framer {
    framer.feed(black_box(FULL_RCPT));
    let len = framer.next_frame().map_or(0, |f| f.map_or(0, <[u8]>::len));
    black_box(len);
    framer
}

// `Request::parse` of the frame the framer yields.
#[library_benchmark]
#[bench::full_rcpt(args = (FULL_RCPT), setup = owned_frame)]
fn parse(frame: Vec<u8>) -> Vec<u8> {
    let ok = Request::parse(black_box(&frame)).is_ok();
    black_box(ok);
    frame
}

// `Engine::decide` with a warmed `Scratch`, as the daemon calls it.
#[library_benchmark]
#[bench::full_rcpt(args = (FULL_RCPT), setup = warmed_decider)]
fn decide(state: (Engine, Scratch, Request<'static>)) -> (Engine, Scratch, Request<'static>) {
    let (engine, mut scratch, request) = state;
    let decision = engine.decide(black_box(&request), NOW, &mut scratch);
    black_box(decision);
    (engine, scratch, request)
}

// `Engine::decide` against the realistic policy: every rule tried, one dry-run
// hit, a templated `PREPEND` expanded.
#[library_benchmark]
#[bench::full_rcpt(args = (FULL_RCPT), setup = warmed_realistic_decider)]
fn decide_realistic(
    state: (Engine, Scratch, Request<'static>),
) -> (Engine, Scratch, Request<'static>) {
    let (engine, mut scratch, request) = state;
    let decision = engine.decide(black_box(&request), NOW, &mut scratch);
    black_box(decision.wire().len());
    (engine, scratch, request)
}

// The realistic policy with a 20-condition score item, decided by steps
// (start, the answers from a cache, resume) as the daemon decides once its
// DNS cache is warm.
#[library_benchmark]
#[bench::full_rcpt(args = (FULL_RCPT), setup = warmed_scoring_decider)]
fn decide_scoring(
    state: (Engine, FactCache, Scratch, Request<'static>),
) -> (Engine, FactCache, Scratch, Request<'static>) {
    let (engine, cache, mut scratch, request) = state;
    let len = cache.decide(&engine, black_box(&request), NOW, &mut scratch, |d| {
        d.wire().len()
    });
    black_box(len);
    (engine, cache, scratch, request)
}

// `Engine::decide` against three limit rules, keys already tracked: every
// limit checks and counts (five windows in three tables), then the default.
#[library_benchmark]
#[bench::full_rcpt(args = (FULL_RCPT), setup = warmed_limits_decider)]
fn decide_limits(
    state: (Engine, Scratch, Request<'static>),
) -> (Engine, Scratch, Request<'static>) {
    let (engine, mut scratch, request) = state;
    let decision = engine.decide(black_box(&request), NOW, &mut scratch);
    black_box(decision.wire().len());
    (engine, scratch, request)
}

// `Engine::decide` against a greylist with whitelist files and a condition,
// its triplet stored: `known` passes (client network and triplet looked up,
// then the default), `too_early` is deferred again (the template expanded).
#[library_benchmark]
#[bench::known(args = (3), setup = warmed_greylist_decider)]
#[bench::too_early(args = (GREYLIST_PENDING + 3), setup = warmed_greylist_decider)]
fn decide_greylist(
    state: (Engine, Scratch, Request<'static>),
) -> (Engine, Scratch, Request<'static>) {
    let (engine, mut scratch, request) = state;
    let decision = engine.decide(black_box(&request), NOW, &mut scratch);
    black_box(decision.wire().len());
    (engine, scratch, request)
}

// `policy_proto::encode` of a decision to `REJECT` with status code and text.
#[library_benchmark]
#[bench::reject_text(args = (FULL_RCPT), setup = decision_and_reply_buffer)]
fn encode(state: (Decision<'static>, Vec<u8>)) -> (Decision<'static>, Vec<u8>) {
    let (decision, mut out) = state;
    policy_proto::encode(black_box(&decision), &mut out);
    black_box(out.len());
    (decision, out)
}

// Frame + parse + decide + encode of one request on a warmed connection.
#[library_benchmark]
#[bench::full_rcpt(args = (FULL_RCPT), setup = warmed_connection)]
fn end_to_end(state: (Engine, Connection)) -> (Engine, Connection) {
    let (engine, mut conn) = state;
    let answered = conn.handle(&engine, NOW, black_box(FULL_RCPT));
    let _ = black_box(answered);
    (engine, conn)
}

library_benchmark_group!(
    name = hot_path,
    benchmarks = [
        frame,
        parse,
        decide,
        decide_realistic,
        decide_scoring,
        decide_limits,
        decide_greylist,
        encode,
        end_to_end
    ]
);

main!(library_benchmark_groups = hot_path);
