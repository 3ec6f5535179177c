//! Policy and state apart, and the state backend seam: a clone of a policy
//! has no state, a reload keeps the state of unchanged items, a restored
//! state goes into a running engine, a backend that fails applies the
//! rule's `on_failure`, and the language's `backend local | redis` says
//! which items go to the remote backend.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use policy_core::greylist::{GreyCall, GreyVerdict};
use policy_core::limits::{LimitCall, Verdict};
use policy_core::state::{Backend, BackendError, Item, LocalBackend, OnFailure, When};
use policy_core::{store, Engine, NoFiles, Policy, Request, Scratch, State, Timestamp};

use crate::common::{assert_errors_start_with, compile, NOW};

fn rcpt(sender: &str, instance: u32) -> Vec<u8> {
    rcpt_helo(sender, "mx.example.org", instance)
}

fn rcpt_helo(sender: &str, helo: &str, instance: u32) -> Vec<u8> {
    format!(
        "request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=192.0.2.7\n\
         helo_name={helo}\nsender={sender}\nrecipient=r@example.com\ninstance=i{instance}\n\n"
    )
    .into_bytes()
}

/// The wire answer of `engine` to one message from `sender`.
fn answer(engine: &Engine, scratch: &mut Scratch, sender: &str, instance: u32) -> String {
    let frame = rcpt(sender, instance);
    let request = Request::parse(&frame).unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8_lossy(engine.decide(&request, NOW, scratch).wire()).into_owned()
}

const ONE_PER_HOUR: &str = "limit out { key sender count messages max 1 per 1h }\n";

#[test]
fn a_cloned_policy_shares_no_state() {
    let policy = compile(ONE_PER_HOUR);
    let (a, b) = (Engine::new(policy.clone()), Engine::new(policy));
    let (mut sa, mut sb) = (Scratch::new(), Scratch::new());
    assert_eq!(answer(&a, &mut sa, "x@example.org", 1), "DUNNO");
    assert!(answer(&a, &mut sa, "x@example.org", 2).starts_with("DEFER "));
    // The clone's engine has counted nothing.
    assert_eq!(answer(&b, &mut sb, "x@example.org", 3), "DUNNO");
}

#[test]
fn adopting_a_policy_keeps_the_tables_of_unchanged_items() {
    let old = compile(
        "limit same { key sender count messages max 1 per 1h }\n\
         limit changed { key sender count messages max 1 per 1h }\n\
         greylist grey { delay 1m }\n",
    );
    let state = State::for_policy(&old);
    let new = compile(
        "limit same { key sender count messages max 5 per 1h }\n\
         limit changed { key sender count messages max 1 per 2h }\n\
         greylist grey { delay 1m }\n\
         limit added { key sender count recipients max 1 per 1h }\n",
    );
    let adopted = state.adopt(&new);
    assert_eq!(adopted.kept_from(&state), ["same", "grey"]);
    let same_table = |s: &State, name: &str| {
        s.limits()
            .find(|l| l.name == name)
            .map(|l| std::ptr::from_ref(l.table))
    };
    assert_eq!(same_table(&adopted, "same"), same_table(&state, "same"));
    assert_ne!(
        same_table(&adopted, "changed"),
        same_table(&state, "changed")
    );
    // The new maxima are the policy's; the table is shared.
    let same = adopted.limits().find(|l| l.name == "same").expect("same");
    assert_eq!(same.limit.windows()[0].max(), 5);
    let names: Vec<&str> = adopted.limits().map(|l| l.name).collect();
    assert_eq!(names, ["same", "changed", "added"]);
}

#[test]
fn a_restored_state_goes_into_a_running_engine() {
    let engine = Engine::new(compile(ONE_PER_HOUR));
    let mut scratch = Scratch::new();
    assert_eq!(answer(&engine, &mut scratch, "a@example.org", 1), "DUNNO");
    let mut file = Vec::new();
    assert_eq!(store::encode(&engine.state(), NOW, &mut file), 1);

    // A second engine, already deciding, restores the file.
    let running = Engine::new(compile(ONE_PER_HOUR));
    let mut other = Scratch::new();
    assert_eq!(answer(&running, &mut other, "b@example.org", 1), "DUNNO");
    let (state, report) = store::restore(&running.state(), &file).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.restored.len(), 1);
    running.set_state(state);
    // The same scratch sees the restored counters at its next request.
    assert!(answer(&running, &mut other, "a@example.org", 2).starts_with("DEFER "));
    // What was counted before the restore is not in the file.
    assert_eq!(answer(&running, &mut other, "b@example.org", 3), "DUNNO");
}

/// A backend that fails every call, counting them.
#[derive(Debug, Default)]
struct Failing {
    calls: AtomicUsize,
}

impl Backend for Failing {
    fn limit(&self, _: Item<'_>, _: LimitCall<'_>, _: When) -> Result<Verdict, BackendError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Err(BackendError::Timeout)
    }
    fn refund(
        &self,
        _: Item<'_>,
        _: u64,
        _: u64,
        _: Timestamp,
        _: When,
    ) -> Result<(), BackendError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Err(BackendError::Unavailable)
    }
    fn greylist(&self, _: Item<'_>, _: GreyCall, _: When) -> Result<GreyVerdict, BackendError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Err(BackendError::Unavailable)
    }
}

#[test]
fn a_failing_backend_applies_on_failure() {
    // (clause, answer to the first request, the deciding rule)
    let rows: &[(&str, &str, &str)] = &[
        ("", "OK", "after"),
        ("on_failure allow", "OK", "after"),
        ("on_failure skip", "OK", "after"),
        (
            "on_failure defer",
            policy_core::lang::BACKEND_DEFER_ACTION,
            "out",
        ),
    ];
    for &(clause, wire, rule) in rows {
        // Remote by the item's own clause, or by the policy's default.
        for item in [
            format!("limit out {{ key sender count messages max 1 per 1h backend redis {clause} }}"),
            format!("backend redis\nlimit out {{ key sender count messages max 1 per 1h {clause} }}"),
            format!("limit out {{ key sender count distinct helo_name max 1 per 1h backend redis {clause} }}"),
            format!("greylist out {{ backend redis {clause} }}"),
            format!("greylist out {{ {clause} }}\nbackend redis"),
        ] {
            let policy = compile(&format!("{item}\nrule after {{ then OK }}\n"));
            assert!(policy.uses_remote_state(), "{item}");
            let failing = Arc::new(Failing::default());
            let state = State::for_policy(&policy).with_backend(failing.clone());
            let engine = Engine::with_state(policy, state);
            let mut scratch = Scratch::new();
            let frame = rcpt("a@example.org", 1);
            let request = Request::parse(&frame).unwrap_or_else(|e| panic!("{e}"));
            let decision = engine.decide(&request, NOW, &mut scratch);
            assert_eq!(decision.wire(), wire.as_bytes(), "{item}");
            assert_eq!(decision.rule, rule, "{item}");
            let failure = decision.backend_failure().expect("the failure is reported");
            assert_eq!(failure.rule, "out");
            let expected = match clause {
                "on_failure defer" => OnFailure::Defer,
                "on_failure skip" => OnFailure::Skip,
                _ => OnFailure::Allow,
            };
            assert_eq!(failure.outcome, expected, "{item}");
            // One round trip for the one stateful item; no refund for a
            // request that was not counted.
            assert_eq!(failing.calls.load(Ordering::Relaxed), 1, "{item}");
        }
    }
}

/// A backend that forwards to the local tables and counts each call: what a
/// remote store sees.
#[derive(Debug)]
struct Counting {
    inner: LocalBackend,
    calls: AtomicUsize,
    /// The name of the item of each call, in order.
    items: Mutex<Vec<String>>,
}

impl Counting {
    /// A backend over the local tables of `state`.
    fn over(state: &State) -> Arc<Self> {
        Arc::new(Self {
            inner: state.local().clone(),
            calls: AtomicUsize::new(0),
            items: Mutex::new(Vec::new()),
        })
    }

    fn call(&self, item: Item<'_>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut items) = self.items.lock() {
            items.push(item.name.to_owned());
        }
    }

    /// The names of the items called so far, each once, in order.
    fn items(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for name in self.items.lock().map(|i| i.clone()).unwrap_or_default() {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }
}

impl Backend for Counting {
    fn limit(&self, i: Item<'_>, c: LimitCall<'_>, w: When) -> Result<Verdict, BackendError> {
        self.call(i);
        assert!(w.deadline > w.now, "a deadline after now");
        self.inner.limit(i, c, w)
    }
    fn refund(
        &self,
        i: Item<'_>,
        k: u64,
        u: u64,
        t: Timestamp,
        w: When,
    ) -> Result<(), BackendError> {
        self.call(i);
        self.inner.refund(i, k, u, t, w)
    }
    fn greylist(&self, i: Item<'_>, c: GreyCall, w: When) -> Result<GreyVerdict, BackendError> {
        self.call(i);
        self.inner.greylist(i, c, w)
    }
}

#[test]
fn one_backend_call_per_stateful_item() {
    let policy = compile(
        "backend redis\n\
         limit a { key sender count messages max 10 per 1h }\n\
         limit b { key client_address count recipients max 10 per 1h }\n\
         greylist g { delay 1m }\n",
    );
    let state = State::for_policy(&policy);
    let counting = Counting::over(&state);
    let engine = Engine::with_state(
        policy,
        state.with_backend(counting.clone()).with_budget(100),
    );
    let mut scratch = Scratch::new();
    // Greylisted: two limits counted, one greylist step, then two refunds
    // (a refused request never counts).
    let first = answer(&engine, &mut scratch, "a@example.org", 1);
    assert!(first.starts_with("DEFER_IF_PERMIT "), "{first}");
    assert_eq!(counting.calls.load(Ordering::Relaxed), 5);
    // The local tables behind it saw the counts given back.
    let usage = |name: &str| {
        engine
            .state()
            .limits()
            .find(|l| l.name == name)
            .map(|l| l.table.len())
    };
    assert_eq!(
        usage("a"),
        Some(1),
        "the key is tracked, with nothing counted"
    );
}

#[test]
fn on_failure_words_are_checked() {
    let errors = Policy::compile(
        "policy.conf",
        "limit out { key sender count messages max 1 per 1h on_failure dfer }\n",
        &mut NoFiles,
    )
    .expect_err("an unknown word");
    let text = errors.to_string();
    assert!(
        text.starts_with(
            "policy.conf:1:63: error: unknown failure outcome `dfer`; expected `allow`, \
             `defer` or `skip`; did you mean `defer`?"
        ),
        "{text}"
    );
    let errors = Policy::compile(
        "policy.conf",
        "greylist g { on_failure skip on_failure allow }\n",
        &mut NoFiles,
    )
    .expect_err("twice");
    assert!(
        errors
            .to_string()
            .contains("one `on_failure` clause per greylist"),
        "{errors}"
    );
}

#[test]
fn reserved_tables_take_new_keys() {
    let policy = compile(ONE_PER_HOUR);
    let state = State::for_policy(&policy);
    state.reserve(1000);
    let engine = Engine::with_state(policy, state);
    let mut scratch = Scratch::new();
    for i in 0..1000 {
        assert_eq!(
            answer(&engine, &mut scratch, &format!("s{i}@example.org"), i),
            "DUNNO"
        );
    }
    let state = engine.state();
    let table = state.limits().next().expect("one limit").table;
    assert_eq!(table.len(), 1000);
}

/// The items of the policy `src` that reach the remote backend when it
/// decides one request from a@example.org (every item applies to it).
fn remote_items(src: &str) -> Vec<String> {
    let policy = compile(src);
    let state = State::for_policy(&policy);
    let counting = Counting::over(&state);
    let engine = Engine::with_state(policy, state.with_backend(counting.clone()));
    let mut scratch = Scratch::new();
    answer(&engine, &mut scratch, "a@example.org", 1);
    counting.items()
}

#[test]
fn only_redis_items_reach_the_backend() {
    const A: &str = "limit a { key sender count messages max 10 per 1h";
    const B: &str = "limit b { key client_address count recipients max 10 per 1h";
    const D: &str = "limit d { key client_address count distinct helo_name max 10 per 1h";
    // (policy, the items the remote backend sees)
    let rows: &[(String, &[&str])] = &[
        (format!("{A} }}\n{B} }}\n{D} }}\ngreylist g {{ }}\n"), &[]),
        (
            format!("backend redis\n{A} }}\n{B} backend local }}\n{D} }}\ngreylist g {{ }}\n"),
            &["a", "d", "g"],
        ),
        (
            format!("backend redis\n{A} }}\n{B} }}\n{D} backend local }}\ngreylist g {{ backend local }}\n"),
            &["a", "b"],
        ),
        // The statement applies to the items before it too.
        (
            format!("{A} }}\n{B} backend local }}\n{D} }}\ngreylist g {{ }}\nbackend redis\n"),
            &["a", "d", "g"],
        ),
        (
            format!("backend local\n{A} }}\n{B} backend redis }}\n{D} }}\ngreylist g {{ backend redis }}\n"),
            &["b", "g"],
        ),
        (
            format!("{A} }}\n{B} }}\n{D} backend redis }}\ngreylist g {{ }}\n"),
            &["d"],
        ),
    ];
    for (src, expected) in rows {
        assert_eq!(remote_items(src), *expected, "{src}");
        assert_eq!(
            compile(src).uses_remote_state(),
            !expected.is_empty(),
            "{src}"
        );
        let policy = compile(src);
        let state = State::for_policy(&policy);
        assert_eq!(state.uses_remote(), !expected.is_empty());
        // The state says which items are remote, as `policyd state --redis`
        // reads them: the same ones, in policy order (limits, greylists).
        let marked: Vec<&str> = state
            .limits()
            .filter(|l| l.remote)
            .map(|l| l.name)
            .chain(state.greylists().filter(|g| g.remote).map(|g| g.name))
            .collect();
        assert_eq!(marked, *expected, "{src}");
    }
    // No stateful item, nothing remote.
    assert!(!compile("backend redis\nrule r { then OK }\n").uses_remote_state());
}

#[test]
fn a_remote_item_without_a_backend_applies_its_on_failure() {
    let policy = compile(
        "backend redis\n\
         limit there { key sender count messages max 1 per 1h on_failure skip }\n\
         limit here { key sender count messages max 1 per 1h backend local }\n\
         rule after { then OK }\n",
    );
    assert!(policy.uses_remote_state());
    let engine = Engine::new(policy);
    let mut scratch = Scratch::new();
    for (instance, wire, rule) in [(1, "OK", "after"), (2, "DEFER ", "here")] {
        let frame = rcpt("a@example.org", instance);
        let request = Request::parse(&frame).unwrap_or_else(|e| panic!("{e}"));
        let decision = engine.decide(&request, NOW, &mut scratch);
        // The local limit counts (the second message is over it); the
        // remote one fails, and is skipped.
        assert!(decision.wire().starts_with(wire.as_bytes()), "{instance}");
        assert_eq!(decision.rule, rule);
        let failure = decision.backend_failure().expect("the failure is reported");
        assert_eq!(
            (failure.rule, failure.error, failure.outcome),
            ("there", BackendError::Unavailable, OnFailure::Skip)
        );
    }
}

#[test]
fn count_distinct_follows_its_item_backend() {
    let src = "backend redis\n\
               limit there { key client_address count distinct helo_name max 1 per 1h \
                 on_failure skip over REJECT \"5.7.1 there\" }\n\
               limit here { key client_address count distinct helo_name max 1 per 1h \
                 backend local over REJECT \"5.7.1 here\" }\n";
    let decide = |engine: &Engine, scratch: &mut Scratch, helo: &str, instance: u32| {
        let frame = rcpt_helo("a@example.org", helo, instance);
        let request = Request::parse(&frame).unwrap_or_else(|e| panic!("{e}"));
        let decision = engine.decide(&request, NOW, scratch);
        let failed = decision.backend_failure().map(|f| f.rule.to_owned());
        (
            String::from_utf8_lossy(decision.wire()).into_owned(),
            failed,
        )
    };
    // With the backend: the remote limit's history is in it, and a second
    // HELO name is over its maximum.
    let policy = compile(src);
    let state = State::for_policy(&policy);
    let counting = Counting::over(&state);
    let engine = Engine::with_state(policy, state.with_backend(counting.clone()));
    let mut scratch = Scratch::new();
    assert_eq!(
        decide(&engine, &mut scratch, "one.example", 1),
        ("DUNNO".into(), None)
    );
    assert_eq!(
        decide(&engine, &mut scratch, "two.example", 2),
        ("REJECT 5.7.1 there".into(), None)
    );
    assert_eq!(counting.items(), ["there"]);
    // Without it: the remote limit fails and is skipped, the local one
    // still counts its distinct names.
    let engine = Engine::new(compile(src));
    let mut scratch = Scratch::new();
    let failed = Some("there".to_owned());
    assert_eq!(
        decide(&engine, &mut scratch, "one.example", 1),
        ("DUNNO".into(), failed.clone())
    );
    assert_eq!(
        decide(&engine, &mut scratch, "two.example", 2),
        ("REJECT 5.7.1 here".into(), failed)
    );
}

#[test]
fn a_reload_that_switches_backend_starts_over() {
    let old = compile(
        "limit a { key sender count messages max 1 per 1h }\n\
         limit b { key sender count messages max 1 per 1h backend redis }\n\
         limit c { key sender count messages max 1 per 1h }\n\
         limit d { key sender count messages max 1 per 1h backend redis }\n\
         greylist g { delay 1m }\n\
         greylist h { delay 1m backend redis }\n\
         greylist k { delay 1m }\n",
    );
    let state = State::for_policy(&old);
    let new = compile(
        "backend redis\n\
         limit a { key sender count messages max 1 per 1h }\n\
         limit b { key sender count messages max 1 per 1h backend local }\n\
         limit c { key sender count messages max 1 per 1h backend local }\n\
         limit d { key sender count messages max 1 per 1h }\n\
         greylist g { delay 1m }\n\
         greylist h { delay 1m backend local }\n\
         greylist k { delay 1m backend local }\n",
    );
    let adopted = state.adopt(&new);
    // Only the items that stayed where they were keep their tables.
    assert_eq!(adopted.kept_from(&state), ["c", "d", "k"]);
    let limit_table = |s: &State, name: &str| {
        s.limits()
            .find(|l| l.name == name)
            .map(|l| std::ptr::from_ref(l.table))
    };
    let greylist_table = |s: &State, name: &str| {
        s.greylists()
            .find(|g| g.name == name)
            .map(|g| std::ptr::from_ref(g.table))
    };
    for name in ["a", "b"] {
        assert_ne!(limit_table(&adopted, name), limit_table(&state, name));
    }
    assert_eq!(limit_table(&adopted, "c"), limit_table(&state, "c"));
    assert_ne!(greylist_table(&adopted, "g"), greylist_table(&state, "g"));
    assert_eq!(greylist_table(&adopted, "k"), greylist_table(&state, "k"));
    // Switching back starts over too: not the table from before the switch.
    let back = adopted.adopt(&old);
    assert_eq!(back.kept_from(&adopted), ["c", "d", "k"]);
    assert_ne!(limit_table(&back, "a"), limit_table(&state, "a"));
    assert_ne!(greylist_table(&back, "g"), greylist_table(&state, "g"));
}

#[test]
fn backend_words_are_checked() {
    const LIMIT: &str = "limit out { key sender count messages max 1 per 1h";
    assert_errors_start_with(&[
        (
            &format!("{LIMIT} backend rediss }}\n"),
            "policy.conf:1:60: error: unknown state backend `rediss`; expected `local` or \
             `redis`; did you mean `redis`?",
        ),
        (
            "greylist g { backend memory }\n",
            "policy.conf:1:22: error: unknown state backend `memory`; expected `local` or `redis`\n",
        ),
        (
            "rule r { then OK }\nbackend lcoal\n",
            "policy.conf:2:9: error: unknown state backend `lcoal`; expected `local` or \
             `redis`; did you mean `local`?",
        ),
        (
            &format!("backend redis\n{LIMIT} }}\nbackend local\n"),
            "policy.conf:3:1: error: a second top-level `backend`; expected at most one (the \
             first is on line 1; an item may say its own with a `backend` clause)",
        ),
        (
            &format!("{LIMIT}\n  backend local\n  backend redis\n}}\n"),
            "policy.conf:3:3: error: expected one `backend` clause per limit, found `backend`",
        ),
        (
            "greylist g { backend redis backend redis }\n",
            "policy.conf:1:28: error: expected one `backend` clause per greylist, found `backend`",
        ),
        (
            "backend\nrule r { then OK }\n",
            "policy.conf:2:1: error: expected where the state is kept after `backend`: `local` \
             or `redis`, found `rule`",
        ),
        // The clauses a `state` clause is refused with name `backend`.
        (
            &format!("{LIMIT} state RCPT }}\n"),
            "policy.conf:1:58: error: a limit has no `state` clause: it checks at RCPT and \
             counts at the state its `count` and `at` give; expected `if`, `unless`, `key`, \
             `count`, `at`, `max`, `overrides`, `capacity`, `on_failure`, `backend` or `over`\n",
        ),
        (
            "greylist g { state RCPT }\n",
            "policy.conf:1:20: error: a greylist has no `state` clause: it applies at RCPT; \
             expected `if`, `unless`, `client`, `delay`, `retry_window`, `max_age`, \
             `auto_whitelist`, `whitelist`, `capacity`, `on_failure`, `backend`, `then` or \
             `prepend`\n",
        ),
    ]);
}

/// A backend that records its batches (the number of calls in each) and
/// its single calls, over the local tables.
#[derive(Debug)]
struct Batching {
    inner: LocalBackend,
    batches: Mutex<Vec<usize>>,
    singles: AtomicUsize,
    refunds: AtomicUsize,
}

impl Batching {
    fn over(state: &State) -> Arc<Self> {
        Arc::new(Self {
            inner: state.local().clone(),
            batches: Mutex::new(Vec::new()),
            singles: AtomicUsize::new(0),
            refunds: AtomicUsize::new(0),
        })
    }

    /// The batches so far (their sizes), the single calls and refunds,
    /// and start counting again.
    fn take(&self) -> (Vec<usize>, usize, usize) {
        let batches = std::mem::take(&mut *self.batches.lock().expect("lock"));
        (
            batches,
            self.singles.swap(0, Ordering::Relaxed),
            self.refunds.swap(0, Ordering::Relaxed),
        )
    }
}

impl Backend for Batching {
    fn limit(&self, i: Item<'_>, c: LimitCall<'_>, w: When) -> Result<Verdict, BackendError> {
        self.singles.fetch_add(1, Ordering::Relaxed);
        self.inner.limit(i, c, w)
    }
    fn refund(
        &self,
        i: Item<'_>,
        k: u64,
        u: u64,
        t: Timestamp,
        w: When,
    ) -> Result<(), BackendError> {
        self.refunds.fetch_add(1, Ordering::Relaxed);
        self.inner.refund(i, k, u, t, w)
    }
    fn greylist(&self, i: Item<'_>, c: GreyCall, w: When) -> Result<GreyVerdict, BackendError> {
        self.singles.fetch_add(1, Ordering::Relaxed);
        self.inner.greylist(i, c, w)
    }
    fn batch(
        &self,
        calls: &[policy_core::state::Batched<'_>],
        when: When,
        out: &mut Vec<Result<policy_core::state::BatchAnswer, BackendError>>,
    ) {
        self.batches.lock().expect("lock").push(calls.len());
        // The local tables' own batch: one call after the other.
        self.inner.batch(calls, when, out);
    }
}

/// The policy of the batching tests, kept in `backend`.
fn batching_policy(backend: &str) -> Policy {
    compile(&format!(
        "backend {backend}\n\
         limit a {{ key sender count messages max 2 per 1h }}\n\
         rule stop {{ if sender == \"stop@example.org\" then REJECT \"5.7.1 stop\" }}\n\
         limit b {{ key client_address count recipients max 5 per 1h }}\n\
         greylist g {{ delay 1m }}\n"
    ))
}

#[test]
fn a_requests_remote_calls_are_batched() {
    let policy = batching_policy("redis");
    let state = State::for_policy(&policy);
    let batching = Batching::over(&state);
    let engine = Engine::with_state(policy, state.with_backend(batching.clone()));
    let mut scratch = Scratch::new();
    // Three items reached: one batch of three (the greylist defers), then
    // the two limits' counts given back one by one.
    let first = answer(&engine, &mut scratch, "a@example.org", 1);
    assert!(
        first.starts_with("DEFER_IF_PERMIT 4.7.1 Greylisted"),
        "{first}"
    );
    assert_eq!(batching.take(), (vec![3], 0, 2));
    // A rule that needs no state decides after the first limit: one call,
    // no batch.
    let stop = answer(&engine, &mut scratch, "stop@example.org", 2);
    assert_eq!(stop, "REJECT 5.7.1 stop");
    assert_eq!(batching.take(), (vec![], 1, 1));
}

#[test]
fn batched_decisions_are_the_local_ones() {
    // The same requests, 37 s apart, against the policy kept locally and
    // kept in a batching backend: the same answers, one by one (greylisted,
    // too early, passing, limited, stopped).
    let remote = batching_policy("redis");
    let state = State::for_policy(&remote);
    let batching = Batching::over(&state);
    let batched = Engine::with_state(remote, state.with_backend(batching.clone()));
    let local = Engine::new(batching_policy("local"));
    let (mut sb, mut sl) = (Scratch::new(), Scratch::new());
    let senders = [
        "a@example.org",
        "b@example.org",
        "stop@example.org",
        "a@example.org",
    ];
    let mut seen = Vec::new();
    for n in 0..40u32 {
        let sender = senders[n as usize % senders.len()];
        let frame = rcpt(sender, n);
        let request = Request::parse(&frame).unwrap_or_else(|e| panic!("{e}"));
        let at = Timestamp::from_unix_millis(NOW.as_unix_millis() + u64::from(n) * 37_000);
        let b = String::from_utf8_lossy(batched.decide(&request, at, &mut sb).wire()).into_owned();
        let l = String::from_utf8_lossy(local.decide(&request, at, &mut sl).wire()).into_owned();
        assert_eq!(b, l, "request {n} from {sender}");
        seen.push(l);
    }
    for kind in [
        "DEFER_IF_PERMIT 4.7.1 Greylisted",
        "DEFER 4.7.1 Rate limit reached",
        "DUNNO",
        "REJECT",
    ] {
        assert!(
            seen.iter().any(|a| a.starts_with(kind)),
            "no {kind:?} among {seen:#?}"
        );
    }
    let (batches, _, _) = batching.take();
    assert!(
        batches.iter().any(|&n| n >= 2),
        "some requests were batched: {batches:?}"
    );
}
