//! The engine seam: a compiled [`Policy`], the per-connection [`Scratch`], and the
//! [`Decision`] it returns.
//!
//! Until the policy language lands (issue 3) a policy answers one configured
//! [`Action`] for every request. The signature of [`Policy::decide`] is the one the
//! daemon and embedders call, and stays when the language fills it in.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::action::Action;
use crate::request::Request;

/// A point in time, in milliseconds since the Unix epoch, passed in by the caller.
///
/// `policy-core` never reads the clock: the daemon (or a test with a simulated
/// clock) supplies `now` to every call that needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// A timestamp `millis` milliseconds after the Unix epoch.
    pub const fn from_unix_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_unix_millis(self) -> u64 {
        self.0
    }
}

/// Per-connection working space that [`Policy::decide`] reuses, so that deciding
/// allocates nothing in steady state. Create one per connection and keep it.
#[derive(Debug, Default)]
pub struct Scratch {
    /// The policy this connection decided with last, and the [`Engine`] generation
    /// it came from; refreshed (an `Arc` clone, no allocation) after a reload.
    policy: Option<(u64, Arc<Policy>)>,
}

impl Scratch {
    /// An empty scratch space.
    pub fn new() -> Self {
        Self::default()
    }
}

/// The outcome of [`Policy::decide`]: the action to send and the rule that chose it.
/// It borrows the compiled policy, so producing it allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'p> {
    /// The access(5) action to reply with.
    pub action: &'p Action,
    /// The name of the rule that decided (`"default"` when no rule matched).
    pub rule: &'p str,
}

/// A compiled, immutable policy. `Policy: Send + Sync`; share it behind an `Arc`.
#[derive(Debug, Clone)]
pub struct Policy {
    default: Action,
}

impl Policy {
    /// A policy that answers `action` to every request.
    pub fn always(action: Action) -> Self {
        Self { default: action }
    }

    /// Decide `request` at time `now`, using the caller's `scratch`.
    ///
    /// Never allocates, never panics, never performs I/O.
    pub fn decide<'p>(
        &'p self,
        request: &Request<'_>,
        now: Timestamp,
        scratch: &mut Scratch,
    ) -> Decision<'p> {
        let _ = scratch;
        self.decide_inner(request, now)
    }

    fn decide_inner<'p>(&'p self, request: &Request<'_>, now: Timestamp) -> Decision<'p> {
        let _ = (request, now);
        Decision {
            action: &self.default,
            rule: "default",
        }
    }
}

impl Default for Policy {
    /// The safe default: `DUNNO` for everything.
    fn default() -> Self {
        Self::always(Action::Dunno)
    }
}

/// The policy currently in force, replaceable at run time (a reload) while
/// connections keep deciding.
///
/// Each connection passes its own [`Scratch`]; [`Engine::decide`] notices a new
/// policy with one atomic load and switches the connection to it between two
/// requests. A request never sees half of one policy and half of another.
#[derive(Debug)]
pub struct Engine {
    current: RwLock<Arc<Policy>>,
    generation: AtomicU64,
}

impl Engine {
    /// An engine that starts with `policy`.
    pub fn new(policy: Policy) -> Self {
        Self {
            current: RwLock::new(Arc::new(policy)),
            generation: AtomicU64::new(1),
        }
    }

    /// The policy in force now.
    pub fn policy(&self) -> Arc<Policy> {
        Arc::clone(&self.current.read())
    }

    /// Put `policy` in force. Requests already being decided finish with the old
    /// policy; every later request on every connection uses the new one.
    pub fn replace(&self, policy: Policy) {
        let mut current = self.current.write();
        *current = Arc::new(policy);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Decide `request` at `now` with the policy in force, using the
    /// connection's `scratch`. Allocates nothing in steady state.
    pub fn decide<'s>(
        &self,
        request: &Request<'_>,
        now: Timestamp,
        scratch: &'s mut Scratch,
    ) -> Decision<'s> {
        let generation = self.generation.load(Ordering::Acquire);
        let stale = !matches!(&scratch.policy, Some((g, _)) if *g == generation);
        if stale {
            let current = self.current.read();
            // Read the generation again under the lock: `replace` bumps it while
            // holding the write lock, so this pair is consistent.
            let generation = self.generation.load(Ordering::Acquire);
            scratch.policy = Some((generation, Arc::clone(&current)));
        }
        // Split the borrow: the policy is shared, the rest of the scratch is not.
        let Scratch { policy } = scratch;
        match policy {
            Some((_, policy)) => policy.decide_inner(request, now),
            // Unreachable: filled just above. Answering DUNNO keeps this total.
            None => Decision {
                action: &Action::Dunno,
                rule: "default",
            },
        }
    }
}

impl Default for Engine {
    fn default() -> Self {
        Self::new(Policy::default())
    }
}
