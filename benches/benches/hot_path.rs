//! Criterion benches of the hot path, one group per layer, on warmed buffers.
//!
//! - `frame`: `Framer::feed` + `Framer::next_frame` of one whole request on a
//!   framer that has already carried requests (its buffer is allocated).
//! - `parse`: `Request::parse` of the frame the framer yields, for each request
//!   of the mix (`full-rcpt` is the one the ~0.5 µs target is about).
//! - `decide`: `Engine::decide` (what the daemon calls: one atomic load, then the
//!   policy with its state) on a parsed full request, with a warmed `Scratch`.
//! - `encode`: `policy_proto::encode` of a decision to answer `DUNNO` and of
//!   one to answer a `REJECT` with an enhanced status code and text, into a
//!   reused buffer.
//! - `end_to_end`: frame + parse + decide + encode of one request on a warmed
//!   connection (`policyd_benches::Connection`), for the full request and for the
//!   seeded mix.
//!
//! Run: `cargo bench -p policyd-benches --bench hot_path -- --warm-up-time 1 --measurement-time 3`
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use policy_core::{Action, Engine, Policy, Request, Scratch, Timestamp};
use policy_proto::Limits;
use policyd_benches::{frame_of, warmed_framer, Connection, XorShift64, FULL_RCPT, MIX};

/// A fixed `now`: the engine takes time as an argument, the benches never read the clock.
const NOW: Timestamp = Timestamp::from_unix_millis(1_700_000_000_000);

fn reject_action() -> Action {
    Action::parse("REJECT 5.7.1 Recipient address rejected: access denied by policy")
        .expect("valid action")
}

fn frame(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame");
    group.throughput(Throughput::Bytes(FULL_RCPT.len() as u64));
    let mut framer = warmed_framer(FULL_RCPT);
    group.bench_function("full-rcpt", |b| {
        b.iter(|| {
            framer.feed(black_box(FULL_RCPT));
            let frame = framer.next_frame().expect("frames").expect("complete");
            black_box(frame.len())
        });
    });
    group.finish();
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    for entry in MIX {
        let frame = frame_of(entry.request);
        group.throughput(Throughput::Bytes(entry.request.len() as u64));
        group.bench_function(entry.name, |b| {
            b.iter(|| {
                let request = Request::parse(black_box(&frame)).expect("valid request");
                black_box(request);
            });
        });
    }
    group.finish();
}

fn decide(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    group.throughput(Throughput::Elements(1));
    let frame = frame_of(FULL_RCPT);
    let request = Request::parse(&frame).expect("valid request");

    let engine = Engine::new(Policy::always(reject_action()));
    let mut scratch = Scratch::new();
    let _ = engine.decide(&request, NOW, &mut scratch);
    group.bench_function("engine/full-rcpt", |b| {
        b.iter(|| {
            let decision = engine.decide(black_box(&request), NOW, &mut scratch);
            black_box(decision);
        });
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(1));
    let mut out = Vec::with_capacity(policyd_benches::REPLY_CAPACITY);
    let request = Request::parse(FULL_RCPT).expect("valid request");
    for (name, action) in [("dunno", Action::Dunno), ("reject-text", reject_action())] {
        let engine = Engine::new(Policy::always(action));
        let mut scratch = Scratch::new();
        let decision = engine.decide(&request, NOW, &mut scratch);
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                policy_proto::encode(black_box(&decision), &mut out);
                black_box(out.len())
            });
        });
    }
    group.finish();
}

fn end_to_end(c: &mut Criterion) {
    let mut group = c.benchmark_group("end_to_end");
    let engine = Engine::new(Policy::always(reject_action()));

    let mut conn = Connection::warmed(&engine, NOW, FULL_RCPT);
    group.throughput(Throughput::Bytes(FULL_RCPT.len() as u64));
    group.bench_function("full-rcpt", |b| {
        b.iter(|| {
            conn.clear_reply();
            let answered = conn
                .handle(&engine, NOW, black_box(FULL_RCPT))
                .expect("valid");
            black_box(answered)
        });
    });

    // The seeded mix, pre-drawn so the PRNG is not measured.
    let mut rng = XorShift64::new(0x5EED);
    let sequence: Vec<&[u8]> = (0..256)
        .map(|_| rng.pick(MIX).expect("non-empty mix").request)
        .collect();
    let mut conn = Connection::new(Limits::default());
    for request in &sequence {
        conn.clear_reply();
        conn.handle(&engine, NOW, request).expect("valid request");
    }
    let mut next = sequence.iter().cycle();
    group.throughput(Throughput::Elements(1));
    group.bench_function("mix", |b| {
        b.iter(|| {
            let request = next.next().expect("cycle never ends");
            conn.clear_reply();
            let answered = conn
                .handle(&engine, NOW, black_box(request))
                .expect("valid");
            black_box(answered)
        });
    });
    group.finish();
}

criterion_group!(benches, frame, parse, decide, encode, end_to_end);
criterion_main!(benches);
