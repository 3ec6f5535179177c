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
//!
//! Run: `cargo bench -p policyd-benches --bench policy -- --warm-up-time 1 --measurement-time 3`
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use policy_core::{Engine, Request, Scratch, Timestamp};
use policyd_benches::policies::{big_list, realistic, ListKind};
use policyd_benches::{Connection, FULL_RCPT};

/// A fixed `now`: the engine takes time as an argument.
const NOW: Timestamp = Timestamp::from_unix_millis(1_700_000_000_000);

/// Entries of the big list whose compile time is measured.
const BIG_LIST_ENTRIES: usize = 100_000;

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

criterion_group!(benches, policy_decide, policy_compile);
criterion_main!(benches);
