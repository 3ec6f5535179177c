//! Policy and state apart, and the state backend seam: a clone of a policy
//! has no state, a reload keeps the state of unchanged items, a restored
//! state goes into a running engine, and a backend that fails applies the
//! rule's `on_failure`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use policy_core::greylist::{GreyCall, GreyVerdict};
use policy_core::limits::{LimitCall, Verdict};
use policy_core::state::{Backend, BackendError, Item, LocalBackend, OnFailure, When};
use policy_core::{store, Engine, NoFiles, Policy, Request, Scratch, State, Timestamp};

use crate::common::{compile, NOW};

fn rcpt(sender: &str, instance: u32) -> Vec<u8> {
    format!(
        "request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=192.0.2.7\n\
         sender={sender}\nrecipient=r@example.com\ninstance=i{instance}\n\n"
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
        for item in [
            format!("limit out {{ key sender count messages max 1 per 1h {clause} }}"),
            format!("greylist out {{ {clause} }}"),
        ] {
            let policy = compile(&format!("{item}\nrule after {{ then OK }}\n"));
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
}

impl Backend for Counting {
    fn limit(&self, i: Item<'_>, c: LimitCall<'_>, w: When) -> Result<Verdict, BackendError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
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
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.refund(i, k, u, t, w)
    }
    fn greylist(&self, i: Item<'_>, c: GreyCall, w: When) -> Result<GreyVerdict, BackendError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.greylist(i, c, w)
    }
}

#[test]
fn one_backend_call_per_stateful_item() {
    let policy = compile(
        "limit a { key sender count messages max 10 per 1h }\n\
         limit b { key client_address count recipients max 10 per 1h }\n\
         greylist g { delay 1m }\n",
    );
    let state = State::for_policy(&policy);
    let counting = Arc::new(Counting {
        inner: state.local().clone(),
        calls: AtomicUsize::new(0),
    });
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
