//! Proof that the hot path allocates nothing in steady state.
//!
//! A counting global allocator wraps the system allocator. Counting is switched
//! on per thread (so the test harness and other tests running in parallel are
//! not counted) and only around the measured region. For each request of the
//! realistic mix, and for a `DUNNO` and a `REJECT`-with-text policy, a
//! connection's buffers are warmed up with a few requests, then many iterations
//! of frame -> parse -> decide (`Engine::decide` with the connection's
//! `Scratch`) -> encode must perform zero allocations, reallocations and
//! deallocations: with the bytes given to `Framer::feed` or read by
//! `Framer::read_from` (the daemon's way), in one read, split across two reads,
//! and the whole mix pipelined in one read. The same holds for a compiled
//! policy that uses every kind of condition (every operator, predicate and
//! list kind, a logins map, a dry-run rule) and decides with a templated
//! `REJECT` (`policyd_benches::policies::every_condition`), and for the
//! realistic benchmark policy (56 rules, lists of 10,000 CIDRs and domains).
//! And for a policy of three limit rules in three counting modes
//! (`policyd_benches::policies::limits_every_mode`: recipients at RCPT per
//! login, messages per client /24, bytes times recipients per sender domain at
//! END-OF-MESSAGE with an override file, then a rule refusing some recipients
//! so that their counts are given back), over the RCPT, DATA and
//! END-OF-MESSAGE requests of four messages whose keys recur, with a clock
//! that moves on a second per round so that window buckets rotate; the
//! counters are checked afterwards, so the limits really counted while
//! nothing was allocated.
//! And for a greylist as an inbound MX runs it
//! (`policyd_benches::policies::greylist`: a condition with a CIDR list,
//! postgrey-format client and recipient whitelist files, a templated `then`
//! and `X-Greylist` header): RCPT requests of triplets already stored (known
//! ones passing, pending ones deferred again with the seconds left), of an
//! auto-whitelisted client network, of whitelisted clients (by name and by
//! regex) and recipients, of an authenticated and a trusted client, and a
//! `DATA` request, in one read each and pipelined; and the first accepted
//! retries of stored triplets, each answered with the header.
//! And for a policy with outside facts (two DNSBL tests) decided by steps
//! (start, supply, resume) before a limit whose table was reserved
//! (`State::reserve`): 600 requests, each with a new key, allocate nothing.
//! A sanity test shows that an allocation in the region is counted, so the
//! zero is not a blind spot.
#![allow(unsafe_code)] // the global allocator below; the libraries stay unsafe-free

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use policy_core::{Action, Engine, Policy, Request, Scratch, Timestamp};
use policy_proto::{Framer, Limits};
use policyd_benches::policies;
use policyd_benches::{MixEntry, MIX, REPLY_CAPACITY};

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static REALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static DEALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // `const` initialisation: reading it never allocates, so it is safe to
    // consult from inside the allocator.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn counting() -> bool {
    COUNTING.try_with(Cell::get).unwrap_or(false)
}

struct CountingAllocator;

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged; counting only touches atomics and a const thread-local.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counting() {
            REALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if counting() {
            DEALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Heap operations seen on this thread while `f` ran:
/// (allocations, reallocations, deallocations).
///
/// The counters are global, but only a thread with counting on adds to them,
/// and the tests of this file that count take a lock, so no other test adds to
/// them at the same time.
fn heap_operations_in<R>(f: impl FnOnce() -> R) -> ((u64, u64, u64), R) {
    let read = || {
        (
            ALLOCATIONS.load(Ordering::SeqCst),
            REALLOCATIONS.load(Ordering::SeqCst),
            DEALLOCATIONS.load(Ordering::SeqCst),
        )
    };
    let before = read();
    COUNTING.with(|c| c.set(true));
    let result = f();
    COUNTING.with(|c| c.set(false));
    let after = read();
    (
        (after.0 - before.0, after.1 - before.1, after.2 - before.2),
        result,
    )
}

/// Serialises the counting tests (the counters are shared).
static COUNTING_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A fixed `now`: the engine never reads the clock.
const NOW: Timestamp = Timestamp::from_unix_millis(1_700_000_000_000);
/// Requests a connection carries before measuring (buffers reach capacity).
const WARM_UP_REQUESTS: usize = 8;
/// Measured requests per case: enough that any per-request or periodic
/// allocation (a buffer that grows every few requests) shows up.
const MEASURED_REQUESTS: usize = 2_000;

/// How bytes reach the framer.
#[derive(Debug, Clone, Copy)]
enum Input {
    /// `Framer::feed` of bytes read elsewhere.
    Feed,
    /// `Framer::read_from` a reader, as the daemon reads its socket.
    ReadFrom,
}

/// The time a round decides at: a fixed `now`, or one that moves on by a
/// step every round (for limits, whose windows rotate buckets as time passes).
struct Clock {
    now: Cell<u64>,
    step_ms: u64,
}

impl Clock {
    /// Always [`NOW`].
    fn fixed() -> Self {
        Self::stepping(0)
    }

    /// [`NOW`], then `step_ms` later each round.
    fn stepping(step_ms: u64) -> Self {
        Self {
            now: Cell::new(NOW.as_unix_millis()),
            step_ms,
        }
    }

    /// The time of this round; the next one is a step later.
    fn tick(&self) -> Timestamp {
        let now = self.now.get();
        self.now.set(now + self.step_ms);
        Timestamp::from_unix_millis(now)
    }
}

/// One warmed connection's state, as the daemon keeps it.
struct Conn {
    framer: Framer,
    scratch: Scratch,
    out: Vec<u8>,
}

impl Conn {
    fn new() -> Self {
        Self {
            framer: Framer::new(Limits::default()),
            scratch: Scratch::new(),
            out: Vec::with_capacity(REPLY_CAPACITY),
        }
    }

    /// Feed `chunks` (one read each), answer every complete request; returns
    /// how many were answered. The reply buffer is cleared first, as after a
    /// socket write.
    fn round(&mut self, engine: &Engine, now: Timestamp, input: Input, chunks: &[&[u8]]) -> usize {
        self.out.clear();
        let mut answered = 0;
        for chunk in chunks {
            let mut reader: &[u8] = chunk;
            match input {
                Input::Feed => self.framer.feed(chunk),
                Input::ReadFrom => {
                    // The daemon's way: read straight into the framer's buffer.
                    while !reader.is_empty() {
                        match self.framer.read_from(&mut reader) {
                            Ok(_) => {}
                            Err(e) => panic!("reading failed: {e}"),
                        }
                    }
                }
            }
            loop {
                let frame = match self.framer.next_frame() {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(e) => panic!("framing failed: {e}"),
                };
                let request = match Request::parse(frame) {
                    Ok(request) => request,
                    Err(e) => panic!("parsing failed: {e}"),
                };
                let decision = engine.decide(&request, now, &mut self.scratch);
                policy_proto::encode(&decision, &mut self.out);
                answered += 1;
            }
        }
        answered
    }
}

fn policies() -> Vec<(&'static str, Action)> {
    vec![
        ("DUNNO", Action::Dunno),
        (
            "REJECT text",
            Action::parse("REJECT 5.7.1 Recipient address rejected: access denied by policy")
                .expect("valid action"),
        ),
    ]
}

/// Warm a connection with `chunks`, then count heap operations over many rounds.
///
/// `action`: the action every request is answered with, or `None` for a
/// policy whose replies depend on the request (templates): then the replies
/// of the last warm-up round are the reference every measured round must
/// reproduce.
fn assert_no_heap_operations(
    case: &str,
    engine: &Engine,
    action: Option<&Action>,
    chunks: &[&[u8]],
    per_round: usize,
) {
    assert_no_heap_operations_at(case, engine, &Clock::fixed(), action, chunks, per_round);
}

/// [`assert_no_heap_operations`] with rounds deciding at the times of `clock`.
fn assert_no_heap_operations_at(
    case: &str,
    engine: &Engine,
    clock: &Clock,
    action: Option<&Action>,
    chunks: &[&[u8]],
    per_round: usize,
) {
    for input in [Input::Feed, Input::ReadFrom] {
        let case = format!("{case} / {input:?}");
        assert_no_heap_operations_with(&case, engine, clock, action, input, chunks, per_round);
    }
}

fn assert_no_heap_operations_with(
    case: &str,
    engine: &Engine,
    clock: &Clock,
    action: Option<&Action>,
    input: Input,
    chunks: &[&[u8]],
    per_round: usize,
) {
    let mut conn = Conn::new();
    for _ in 0..WARM_UP_REQUESTS {
        assert_eq!(
            conn.round(engine, clock.tick(), input, chunks),
            per_round,
            "{case}: warm-up"
        );
    }
    let expected_reply = match action {
        // An action's `Display` is its wire form.
        Some(action) => format!("action={action}\n\n")
            .into_bytes()
            .repeat(per_round),
        None => conn.out.clone(),
    };
    let (ops, mismatches) = heap_operations_in(|| {
        let mut mismatches = 0usize;
        for _ in 0..MEASURED_REQUESTS {
            let answered = conn.round(engine, clock.tick(), input, black_box(chunks));
            if answered != per_round || conn.out != expected_reply {
                mismatches += 1;
            }
        }
        mismatches
    });
    assert_eq!(mismatches, 0, "{case}: wrong replies");
    assert_eq!(
        ops,
        (0, 0, 0),
        "{case}: (allocations, reallocations, deallocations) over {MEASURED_REQUESTS} rounds \
         on a warmed connection; expected none"
    );
}

#[test]
fn warmed_hot_path_allocates_nothing_for_each_request_of_the_mix() {
    let _guard = COUNTING_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut cases = 0;
    for (policy_name, action) in policies() {
        let engine = Engine::new(Policy::always(action.clone()));
        for &MixEntry { name, request, .. } in MIX {
            // One read carrying the whole request.
            assert_no_heap_operations(
                &format!("{name} / {policy_name} / one read"),
                &engine,
                Some(&action),
                &[request],
                1,
            );
            // The same request split across two reads, as TCP may deliver it.
            let (head, tail) = request.split_at(request.len() / 2);
            assert_no_heap_operations(
                &format!("{name} / {policy_name} / two reads"),
                &engine,
                Some(&action),
                &[head, tail],
                1,
            );
            cases += 2;
        }
        // Every request of the mix in one read (pipelined), answered in one round.
        let all: Vec<u8> = MIX.iter().flat_map(|e| e.request.iter().copied()).collect();
        assert_no_heap_operations(
            &format!("whole mix / {policy_name} / one read"),
            &engine,
            Some(&action),
            &[&all],
            MIX.len(),
        );
        cases += 1;
    }
    assert_eq!(cases, 2 * (2 * MIX.len() + 1), "every case ran");
}

/// A compiled policy using every kind of condition, deciding with a templated
/// action, and the realistic benchmark policy: warmed connections allocate
/// nothing for any request of the mix.
#[test]
fn warmed_hot_path_with_compiled_policies_allocates_nothing() {
    let _guard = COUNTING_LOCK.lock().unwrap_or_else(|e| e.into_inner());

    // Every request reaches the last rule, a templated REJECT naming the
    // request's sender, recipient and client, after one dry-run hit.
    let every = Engine::new(policies::every_condition().compile());
    let mut scratch = Scratch::new();
    for &MixEntry { name, request, .. } in MIX {
        let parsed = Request::parse(request).expect("valid request");
        let decision = every.decide(&parsed, NOW, &mut scratch);
        assert_eq!(decision.rule, "decide", "{name}: an earlier rule applied");
        assert_eq!(decision.dry_run.len(), 1, "{name}: the dry-run rule");
        let wire = String::from_utf8_lossy(decision.wire()).into_owned();
        let client = parsed
            .client_address
            .map(|ip| ip.to_string())
            .unwrap_or_default();
        assert!(
            wire.starts_with("REJECT 5.7.1 <") && wire.contains(&client),
            "{name}: not the expanded template: {wire}"
        );
    }
    let realistic = Engine::new(policies::realistic().compile());

    let mut cases = 0;
    for (policy_name, engine) in [("every condition", &every), ("realistic", &realistic)] {
        for &MixEntry { name, request, .. } in MIX {
            assert_no_heap_operations(
                &format!("{name} / {policy_name} / one read"),
                engine,
                None,
                &[request],
                1,
            );
            let (head, tail) = request.split_at(request.len() / 2);
            assert_no_heap_operations(
                &format!("{name} / {policy_name} / two reads"),
                engine,
                None,
                &[head, tail],
                1,
            );
            cases += 2;
        }
        let all: Vec<u8> = MIX.iter().flat_map(|e| e.request.iter().copied()).collect();
        assert_no_heap_operations(
            &format!("whole mix / {policy_name} / one read"),
            engine,
            None,
            &[&all],
            MIX.len(),
        );
        cases += 1;
    }
    assert_eq!(cases, 2 * (2 * MIX.len() + 1), "every case ran");
}

/// Seconds the clock moves on per round of the limits test: 8,032 rounds
/// span about 2 h 14 min, so every bucket of the 10-minute and 1-hour
/// windows turns over many times while the 1-day windows keep everything.
const LIMITS_STEP_MS: u64 = 1_000;

/// Three limit rules in three counting modes, with refunds: a warmed
/// connection deciding the requests of four messages allocates nothing.
///
/// A key seen for the first time may grow its table shard's storage (the
/// key map and the counter slab): that is once per key, not per request,
/// and bounded by the limit's `capacity`. The warm-up rounds bring in every
/// key of the mix; the measured rounds only see keys already tracked, as a
/// busy server mostly does.
#[test]
fn warmed_hot_path_with_limits_allocates_nothing() {
    let _guard = COUNTING_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let engine = Engine::new(policies::limits_every_mode().compile());
    let clock = Clock::stepping(LIMITS_STEP_MS);
    let mix = policies::limits_mix();
    let one_read_each: Vec<&[u8]> = mix.iter().map(|(_, r)| r.as_slice()).collect();
    let pipelined: Vec<u8> = one_read_each.concat();
    let mut rounds = 0u64;
    for (shape, chunks) in [
        ("one read per request", one_read_each.clone()),
        ("all in one read", vec![pipelined.as_slice()]),
    ] {
        assert_no_heap_operations_at(
            &format!("limits / four messages / {shape}"),
            &engine,
            &clock,
            None,
            &chunks,
            mix.len(),
        );
        // Two inputs, each warm-up plus measured rounds.
        rounds += 2 * (WARM_UP_REQUESTS + MEASURED_REQUESTS) as u64;
    }

    // The limits counted all along: with the refunds, per round user0 has
    // four accepted recipients, user1 two; example.com 2 * 4342 bytes,
    // example.org 4342. Read in the 1-day windows, which hold every round.
    let now = Timestamp::from_unix_millis(clock.now.get());
    let state = engine.state();
    let units = |limit: &str, window: usize| -> Vec<(String, u64)> {
        let state = state
            .limits()
            .find(|l| l.name == limit)
            .unwrap_or_else(|| panic!("no limit {limit}"));
        let mut keys: Vec<(String, u64)> = state
            .table
            .top(window, 10, now)
            .into_iter()
            .map(|k| (String::from_utf8_lossy(&k.text).into_owned(), k.units))
            .collect();
        keys.sort();
        keys
    };
    assert!(
        rounds * LIMITS_STEP_MS < 23 * 3600 * 1000,
        "the test outlasts a day"
    );
    assert_eq!(
        units("user-recipients", 1),
        [
            ("user0@example.org".to_owned(), 4 * rounds),
            ("user1@example.org".to_owned(), 2 * rounds),
        ]
    );
    assert_eq!(
        units("domain-volume", 0),
        [
            ("example.com".to_owned(), 2 * 4342 * rounds),
            ("example.org".to_owned(), 4342 * rounds),
        ]
    );
    // The 10-minute window of messages per network holds only the last
    // 600-637 rounds (two messages of 192.0.2.0/24 each).
    let recent = units("network-messages", 0);
    let first = recent
        .iter()
        .find(|(k, _)| k == "192.0.2.0/24")
        .map_or(0, |(_, n)| *n);
    assert!(
        (2 * 600..=2 * 640).contains(&first),
        "192.0.2.0/24 counts {first} messages in the last 10 minutes: {recent:?}"
    );
}

/// `NOW` moved by `ms` (negative: earlier).
fn at(ms: i64) -> Timestamp {
    Timestamp::from_unix_millis(NOW.as_unix_millis().saturating_add_signed(ms))
}

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

/// The greylist's answer to a triplet retried 6 minutes after its first
/// attempt, as the connection writes it.
const GREY_HEADER_REPLY: &[u8] =
    b"action=PREPEND X-Greylist: delayed 360 seconds by policyd at mx.example.org\n\n";

/// A greylist with whitelist files, a condition, a `then` template and a
/// header: a warmed connection deciding RCPT requests of triplets it
/// already tracks, and requests the whitelists or the condition let
/// through, allocates nothing; so does the first accepted retry of a
/// stored triplet.
///
/// A triplet seen for the first time may grow its shard of the triplet
/// table (and a client network's first counted pass its shard of the
/// network table): that is once per triplet, not per request, and bounded
/// by the greylist's `capacity`. So every triplet measured here is stored
/// before the measured rounds (its first attempt decided at an earlier
/// time), and the requests recur; the whitelisted and exempt requests never
/// reach the table, which the triplet count before and after shows.
#[test]
fn warmed_hot_path_with_a_greylist_allocates_nothing() {
    let _guard = COUNTING_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let engine = Engine::new(policies::greylist().compile());
    let mut scratch = Scratch::new();
    let mut decide = |frame: &[u8], now: Timestamp| -> (String, String) {
        let request = Request::parse(frame).expect("valid request");
        let d = engine.decide(&request, now, &mut scratch);
        (
            d.rule.to_owned(),
            String::from_utf8_lossy(d.wire()).into_owned(),
        )
    };
    let grey = |rule: &str, wire: &str| (rule.to_owned(), wire.to_owned());
    let dunno = grey("default", "DUNNO");
    let header = |seconds: u32| {
        grey(
            "grey",
            &format!("PREPEND X-Greylist: delayed {seconds} seconds by policyd at mx.example.org"),
        )
    };
    let defer = |seconds: u32| {
        grey(
            "grey",
            &format!(
                "DEFER_IF_PERMIT 4.7.1 Greylisted by mx.example.org for example.org, \
                 try again in {seconds} seconds"
            ),
        )
    };

    // Known triplets: first attempt an hour ago, passed 50 minutes ago.
    let known: Vec<Vec<u8>> = (0..4).map(policies::greylist_rcpt).collect();
    for f in &known {
        assert_eq!(decide(f, at(-HOUR)), defer(300));
        assert_eq!(decide(f, at(-50 * MINUTE)), header(600));
    }
    // Pending triplets: first attempt a minute ago.
    let pending: Vec<Vec<u8>> = (100..104).map(policies::greylist_rcpt).collect();
    for f in &pending {
        assert_eq!(decide(f, at(-MINUTE)), defer(300));
    }
    // Client network 200 (triplets 2000-2009) passed five times, two hours
    // apart: auto-whitelisted.
    for k in 0..5 {
        let f = policies::greylist_rcpt(2000 + k);
        let first = -(5 - k as i64) * 2 * HOUR;
        assert_eq!(decide(&f, at(first)), defer(300));
        assert_eq!(decide(&f, at(first + 6 * MINUTE)), header(360));
    }
    let tracked = engine
        .state()
        .greylists()
        .next()
        .expect("one greylist")
        .table
        .len();
    assert_eq!(tracked, 4 + 4 + 5);

    let with = |n: u64, values: &[(&str, &str)]| {
        policies::with_attributes(&policies::greylist_rcpt(n), values)
    };
    let steady: Vec<(&str, Vec<u8>, (String, String))> = vec![
        ("known triplet", known[0].clone(), dunno.clone()),
        ("known triplet", known[1].clone(), dunno.clone()),
        ("known triplet", known[2].clone(), dunno.clone()),
        ("known triplet", known[3].clone(), dunno.clone()),
        ("pending triplet", pending[0].clone(), defer(240)),
        ("pending triplet", pending[1].clone(), defer(240)),
        ("pending triplet", pending[2].clone(), defer(240)),
        ("pending triplet", pending[3].clone(), defer(240)),
        (
            "auto-whitelisted network",
            policies::greylist_rcpt(2009),
            dunno.clone(),
        ),
        (
            "client whitelisted by name",
            with(
                3000,
                &[(
                    "client_name",
                    &format!("out-1.{}", policies::GREYLIST_WHITELISTED_CLIENT),
                )],
            ),
            dunno.clone(),
        ),
        (
            "client whitelisted by regex",
            with(3010, &[("client_name", policies::GREYLIST_PATTERN_CLIENT)]),
            dunno.clone(),
        ),
        (
            "recipient whitelisted",
            with(
                3020,
                &[("recipient", policies::GREYLIST_WHITELISTED_RECIPIENT)],
            ),
            dunno.clone(),
        ),
        (
            "authenticated",
            with(
                3030,
                &[
                    ("sasl_method", "PLAIN"),
                    ("sasl_username", "user3030@example.org"),
                ],
            ),
            dunno.clone(),
        ),
        (
            "trusted network",
            with(3040, &[("client_address", "10.1.2.3")]),
            dunno.clone(),
        ),
        (
            "DATA",
            with(3050, &[("protocol_state", "DATA"), ("recipient", "")]),
            dunno.clone(),
        ),
    ];
    for (what, frame, expected) in &steady {
        assert_eq!(&decide(frame, NOW), expected, "{what}");
    }
    let one_read_each: Vec<&[u8]> = steady.iter().map(|(_, f, _)| f.as_slice()).collect();
    let pipelined: Vec<u8> = one_read_each.concat();
    for (shape, chunks) in [
        ("one read per request", one_read_each.clone()),
        ("all in one read", vec![pipelined.as_slice()]),
    ] {
        assert_no_heap_operations(
            &format!("greylist / steady mix / {shape}"),
            &engine,
            None,
            &chunks,
            steady.len(),
        );
    }
    let table = || {
        engine
            .state()
            .greylists()
            .next()
            .expect("one greylist")
            .table
            .len()
    };
    assert_eq!(
        table(),
        tracked,
        "whitelisted or exempt requests reached the table"
    );

    // First accepted retries: networks 600-699, each tracked by a triplet
    // that passed two hours ago; nine more triplets of each had their first
    // attempt six minutes ago. Two retries warm the connection, the rest
    // are measured, one request a round.
    let mut retries = Vec::new();
    for network in 600..700u64 {
        let old = policies::greylist_rcpt(network * 10 + 9);
        assert_eq!(decide(&old, at(-2 * HOUR)), defer(300));
        assert_eq!(decide(&old, at(-2 * HOUR + 6 * MINUTE)), header(360));
        for n in network * 10..network * 10 + 9 {
            let f = policies::greylist_rcpt(n);
            assert_eq!(decide(&f, at(-6 * MINUTE)), defer(300));
            retries.push(f);
        }
    }
    let tracked = table();
    let mut conn = Conn::new();
    for _ in 0..WARM_UP_REQUESTS {
        conn.round(&engine, NOW, Input::Feed, &one_read_each);
    }
    let (warm, measured) = retries.split_at(2);
    for f in warm {
        assert_eq!(conn.round(&engine, NOW, Input::Feed, &[f]), 1);
        assert_eq!(conn.out, GREY_HEADER_REPLY);
    }
    let (ops, mismatches) = heap_operations_in(|| {
        let mut mismatches = 0usize;
        for f in measured {
            let answered = conn.round(&engine, NOW, Input::Feed, black_box(&[f.as_slice()]));
            if answered != 1 || conn.out != GREY_HEADER_REPLY {
                mismatches += 1;
            }
        }
        mismatches
    });
    assert_eq!(
        mismatches, 0,
        "greylist / first accepted retries: wrong replies"
    );
    assert_eq!(
        ops,
        (0, 0, 0),
        "greylist / first accepted retries: (allocations, reallocations, deallocations) \
         over {} retries on a warmed connection; expected none",
        measured.len()
    );
    assert_eq!(table(), tracked, "a retry added a triplet");
    // They passed: known now.
    assert_eq!(decide(&retries[0], NOW), dunno);
}

/// A policy with outside facts (two DNSBL tests), decided by steps as a
/// daemon with its own DNS does: start, supply the answers, resume. Once the
/// scratch has held a request's queries, asking and answering allocate
/// nothing; and a limit whose table was reserved takes new keys without
/// allocating.
#[test]
fn warmed_decisions_with_outside_facts_and_reserved_tables_allocate_nothing() {
    use policy_core::facts::Answer;
    use policy_core::{NoFiles, State, Step};
    use std::net::{IpAddr, Ipv4Addr};
    let _guard = COUNTING_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let src = r#"
rule listed { if client_address in dnsbl "bl.example" then REJECT "5.7.1 listed" }
rule other { if client_address in dnsbl "other.example" then DEFER "4.7.1 later" }
limit per_sender { key sender count messages max 1000 per 1h }
default DUNNO
"#;
    let policy = Policy::compile("p.conf", src, &mut NoFiles)
        .unwrap_or_else(|e| panic!("{e}"))
        .policy;
    let state = State::for_policy(&policy);
    state.reserve(1000);
    let engine = Engine::with_state(policy, state);
    let frames: Vec<Vec<u8>> = (0..600)
        .map(|i| {
            format!(
                "request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=192.0.2.{}\n\
                 sender=s{i}@example.org\nrecipient=r@example.net\ninstance={i}\n\n",
                i % 250
            )
            .into_bytes()
        })
        .collect();
    let listed = [IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))];
    let mut scratch = Scratch::new();
    let mut answers = Vec::with_capacity(8);
    let mut decide = |frame: &[u8], scratch: &mut Scratch| -> usize {
        let request = Request::parse(frame).expect("valid request");
        let mut step = engine.start(&request, NOW, scratch);
        while let Step::NeedFacts = step {
            answers.clear();
            answers.extend(
                scratch
                    .facts()
                    .pending()
                    .map(|(id, q)| (id, q.name.starts_with(b"7."))),
            );
            for &(id, is_listed) in &answers {
                let answer = if is_listed {
                    Answer::Addresses(&listed)
                } else {
                    Answer::NotFound
                };
                scratch.facts_mut().supply(id, answer);
            }
            step = engine.resume(&request, NOW, scratch);
        }
        match step {
            Step::Decided(d) => d.wire().len(),
            Step::NeedFacts => 0,
        }
    };
    // Warmed with the longest query names (a three-digit last octet) and a
    // listed client (an answer with an address): the facts' buffers grow to
    // their working size.
    for i in 0..10 {
        let client = if i == 0 { 7 } else { 200 };
        let frame = format!(
            "request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=192.0.2.{client}\n\
             sender=warm{i}@example.org\nrecipient=r@example.net\ninstance=w{i}\n\n"
        );
        decide(frame.as_bytes(), &mut scratch);
    }
    // Every measured request has a new sender: a new key in the reserved
    // limit table.
    let (ops, total) = heap_operations_in(|| {
        frames
            .iter()
            .map(|f| decide(f, &mut scratch))
            .sum::<usize>()
    });
    assert!(total > 0);
    assert_eq!(
        ops,
        (0, 0, 0),
        "outside facts and reserved tables: (allocations, reallocations, deallocations) over {} \
         requests on a warmed connection; expected none",
        frames.len()
    );
    let state = engine.state();
    let keys = state.limits().next().expect("one limit").table.len();
    // Clients 192.0.2.7 (3 of the 600) are listed and refused before the
    // limit: every other sender was counted.
    assert_eq!(
        keys,
        9 + frames.len() - 3,
        "every sender that got to the limit counted"
    );
}

#[test]
fn an_allocation_in_the_measured_region_is_counted() {
    let _guard = COUNTING_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let (ops, v) = heap_operations_in(|| {
        let mut v: Vec<u8> = Vec::with_capacity(black_box(16));
        v.extend_from_slice(black_box(&[1u8; 64]));
        v
    });
    assert!(ops.0 >= 1, "allocation not counted: {ops:?}");
    assert!(ops.1 >= 1, "reallocation not counted: {ops:?}");
    let (ops, ()) = heap_operations_in(|| drop(black_box(v)));
    assert_eq!(ops, (0, 0, 1), "deallocation not counted");
    // A cold connection does allocate (its buffers): the warm-up in the test
    // above is what makes the zero meaningful.
    let engine = Engine::default();
    let (ops, answered) =
        heap_operations_in(|| Conn::new().round(&engine, NOW, Input::Feed, &[MIX[0].request]));
    assert_eq!(answered, 1);
    assert!(
        ops.0 >= 1,
        "a cold connection's buffers must be counted: {ops:?}"
    );
    // Outside the region nothing is counted.
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    black_box(vec![0u8; 32]);
    assert_eq!(ALLOCATIONS.load(Ordering::SeqCst), before);
}

/// The realistic policy with a score item of 20 conditions (12 on DNS
/// answers: five DNSBLs, an RHSBL, reverse DNS, the HELO name, the sender
/// domain), every answer from a cache, decided by steps: once the scratch
/// has held the request's queries and answers, nothing allocates.
#[test]
fn warmed_dns_scoring_allocates_nothing() {
    use policyd_benches::FactCache;
    let _guard = COUNTING_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let engine = Engine::new(policies::scoring().compile());
    let cache = FactCache::new(policies::scoring_answers());
    let request = Request::parse(policyd_benches::FULL_RCPT).expect("valid request");
    let mut scratch = Scratch::new();
    for _ in 0..WARM_UP_REQUESTS {
        cache.decide(&engine, &request, NOW, &mut scratch, |d| d.wire().len());
    }
    let (ops, total) = heap_operations_in(|| {
        (0..200)
            .map(|_| cache.decide(&engine, &request, NOW, &mut scratch, |d| d.wire().len()))
            .sum::<usize>()
    });
    assert!(total > 0);
    assert_eq!(
        ops,
        (0, 0, 0),
        "DNS scoring from a cache: (allocations, reallocations, deallocations) over 200 \
         decisions on a warmed scratch; expected none"
    );
}

/// SPF with an include and an `mx` term (three rounds), a fail's
/// explanation and a `Received-SPF:` header, every answer from a cache:
/// once the scratch has held the request's queries, answers and header,
/// nothing allocates.
#[test]
fn warmed_spf_allocates_nothing() {
    use policyd_benches::FactCache;
    let _guard = COUNTING_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let engine = Engine::new(policies::spf().compile());
    let cache = FactCache::new(policies::spf_answers());
    // Without an `instance`, each request is a message of its own, so the
    // PREPEND rule answers every one (it answers once per message).
    let frame = policies::with_attributes(policyd_benches::FULL_RCPT, &[("instance", "")]);
    let request = Request::parse(&frame).expect("valid request");
    let mut scratch = Scratch::new();
    let wire = cache.decide(&engine, &request, NOW, &mut scratch, |d| {
        String::from_utf8_lossy(d.wire()).into_owned()
    });
    assert!(
        wire.starts_with("PREPEND Received-SPF: pass (domain of "),
        "the client is the included record's MX: a pass, tagged; got {wire}"
    );
    for _ in 0..WARM_UP_REQUESTS {
        cache.decide(&engine, &request, NOW, &mut scratch, |d| d.wire().len());
    }
    let (ops, tagged) = heap_operations_in(|| {
        (0..200)
            .filter(|_| {
                cache.decide(&engine, &request, NOW, &mut scratch, |d| {
                    d.wire().starts_with(b"PREPEND Received-SPF: pass")
                })
            })
            .count()
    });
    assert_eq!(tagged, 200, "every decision tagged");
    assert_eq!(
        ops,
        (0, 0, 0),
        "SPF from a cache: (allocations, reallocations, deallocations) over 200 decisions \
         on a warmed scratch; expected none"
    );
}
