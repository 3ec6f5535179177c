//! The engine seam: a compiled [`Policy`], the per-connection [`Scratch`], and the
//! [`Decision`] it returns.
//!
//! A [`Policy`] is compiled from the policy language ([`Policy::compile`]) or
//! answers one fixed action ([`Policy::always`]). [`Policy::decide`] runs it on
//! a request with a per-connection [`Scratch`]; [`Engine`] holds the policy in
//! force and swaps it on reload.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::action::Action;
pub use crate::base::time::Timestamp;
use crate::lang::greylist::GreylistRule;
use crate::lang::limit::LimitRule;
use crate::lang::program::Program;
use crate::lang::{Buffers, CompileErrors, Compiled, DryRun, Explanation, SourceLoader};
use crate::request::Request;
use crate::state::{GreylistTable, Limit, LimitTable, SnapshotError};

/// Per-connection working space that [`Policy::decide`] reuses, so that deciding
/// allocates nothing in steady state. Create one per connection and keep it.
///
/// It holds the buffers a decision borrows: the deciding action's wire text
/// when it has template variables, and the dry-run rules that applied. They
/// are cleared, never shrunk: after the first few requests they have the
/// capacity they need (a templated text is at most
/// [`MAX_TEXT_BYTES`](crate::MAX_TEXT_BYTES) plus the verb).
#[derive(Debug, Default)]
pub struct Scratch {
    /// The policy this connection decided with last: the [`Engine`] it came
    /// from (its unique id), that engine's generation, and the policy;
    /// refreshed (an `Arc` clone, no allocation) after a reload or when the
    /// scratch is used with another engine.
    policy: Option<(EngineId, u64, Arc<Policy>)>,
    /// Reused output buffers.
    buffers: Buffers,
}

impl Scratch {
    /// An empty scratch space.
    pub fn new() -> Self {
        Self::default()
    }
}

/// The outcome of [`Policy::decide`]: the action to send, the rule that chose
/// it, and the dry-run rules that applied on the way. It borrows the compiled
/// policy and the scratch, so producing it allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'a> {
    /// The action as compiled: for an action with template variables
    /// (`REJECT "5.7.1 $sender is blocked"`) its variables hold their
    /// samples. Private so that it is not sent by mistake: what goes on the
    /// wire is [`Decision::wire`]. [`Decision::compiled_action`] gives it.
    action: &'a Action,
    /// The name of the rule that decided (`"default"` when no rule matched).
    pub rule: &'a str,
    /// The `dry-run` rules that applied, in order, with the action each would
    /// have given (for the log).
    pub dry_run: DryRun<'a>,
    /// The wire form for this request (templates filled in, sanitized).
    wire: &'a [u8],
}

impl<'a> Decision<'a> {
    /// The verb of the action as [`Action::verb`] names it (`REJECT`,
    /// `DEFER`, `DUNNO`, `4NN` for a reply code...): the kind of the
    /// answer, for logs and metrics.
    pub fn verb(&self) -> &'static str {
        self.action.verb()
    }

    /// The action as the policy compiled it, **not what to send**: a
    /// templated text shows its variables' samples here (`REJECT 5.7.1
    /// sender@example.org is blocked`). Use it for the kind of action
    /// ([`Action::refuses`], matching on the variant); send
    /// [`Decision::wire`] (with `policy_proto::encode`).
    pub fn compiled_action(&self) -> &'a Action {
        self.action
    }

    /// The action's wire form for this request (what follows `action=`):
    /// templates filled in and sanitized, one line of UTF-8.
    pub fn wire(&self) -> &'a [u8] {
        self.wire
    }

    /// Append [`Decision::wire`] to `out`. Allocates only if `out` lacks capacity.
    pub fn write_wire(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.wire);
    }
}

/// A compiled, immutable policy. `Policy: Send + Sync`; share it behind an `Arc`.
///
/// Build one with [`Policy::compile`] from the policy language (see
/// [`lang`](crate::lang)), or [`Policy::always`] for a fixed answer.
#[derive(Debug, Clone)]
pub struct Policy {
    pub(crate) program: Program,
}

impl Policy {
    /// A policy that answers `action` to every request.
    pub fn always(action: Action) -> Self {
        Self {
            program: Program::always(action),
        }
    }

    pub(crate) fn from_program(program: Program) -> Self {
        Self { program }
    }

    /// Compile the policy `source`, the text of the file `file_name` (used in
    /// diagnostics). List and logins files named in it are read through
    /// `loader` ([`NoFiles`](crate::NoFiles) when there are none).
    ///
    /// On success, the policy and its warnings; otherwise every error found
    /// in the file and its list files (not only the first), with the warnings.
    ///
    /// ```
    /// use policy_core::{NoFiles, Policy, Request, Scratch, Timestamp};
    ///
    /// let source = r#"
    ///     list blocked { spammer@example.net .spam.example }
    ///     rule block { state RCPT  if sender in blocked  then REJECT "5.7.1 $sender is blocked" }
    /// "#;
    /// let compiled = Policy::compile("policy.conf", source, &mut NoFiles)?;
    /// assert!(compiled.warnings.is_empty());
    ///
    /// let request = Request::parse(b"request=smtpd_access_policy\nprotocol_state=RCPT\nsender=a@mx.spam.example\n\n")?;
    /// let mut scratch = Scratch::new();
    /// let decision = compiled.policy.decide(&request, Timestamp::from_unix_millis(0), &mut scratch);
    /// assert_eq!(decision.rule, "block");
    /// assert_eq!(decision.wire(), b"REJECT 5.7.1 a@mx.spam.example is blocked");
    ///
    /// let errors = Policy::compile("policy.conf", "rule x { if sender in nowhere then OK }", &mut NoFiles)
    ///     .unwrap_err();
    /// assert!(errors.to_string().starts_with("policy.conf:1:23: error: unknown list `nowhere`"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn compile(
        file_name: &str,
        source: &str,
        loader: &mut dyn SourceLoader,
    ) -> Result<Compiled, CompileErrors> {
        crate::lang::compile(file_name, source, loader)
    }

    /// The names of the rules, in file order (without `"default"`).
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.program.rules.iter().map(|r| &*r.name)
    }

    /// Explain how this policy decides `request`: for each rule, whether its
    /// state matched, each condition test in source form with its value,
    /// dry-run hits, and the verdict. Allocates; for `policyd test --explain`.
    ///
    /// Limits are checked, never counted. A limit counting messages sees a
    /// new message here; [`Policy::explain_with`] explains a request in the
    /// middle of a connection's message.
    pub fn explain(&self, request: &Request<'_>, now: Timestamp) -> Explanation {
        crate::lang::explain(&self.program, request, now, None)
    }

    /// [`Policy::explain`] for a request of the connection whose [`Scratch`]
    /// this is: limits see the message under way on it (which recipients were
    /// accepted, whether the message was counted) as [`Policy::decide`] with
    /// that scratch would. The scratch is not changed.
    pub fn explain_with(
        &self,
        request: &Request<'_>,
        now: Timestamp,
        scratch: &Scratch,
    ) -> Explanation {
        crate::lang::explain(&self.program, request, now, Some(&scratch.buffers.message))
    }

    /// Decide `request` at time `now`, using the caller's `scratch`.
    ///
    /// Never allocates (in steady state: the scratch's buffers grow to their
    /// working size once), never panics, never performs I/O.
    pub fn decide<'a>(
        &'a self,
        request: &Request<'_>,
        now: Timestamp,
        scratch: &'a mut Scratch,
    ) -> Decision<'a> {
        self.decide_inner(request, now, &mut scratch.buffers)
    }

    fn decide_inner<'a>(
        &'a self,
        request: &Request<'_>,
        now: Timestamp,
        buffers: &'a mut Buffers,
    ) -> Decision<'a> {
        let outcome = self.program.decide(request, now, buffers);
        let buffers: &'a Buffers = buffers;
        let (rule, verdict) = match (outcome.rule, outcome.instead) {
            (Some(rule), Some(prepend)) => (&*rule.name, prepend),
            (Some(rule), None) => (&*rule.name, &rule.verdict),
            (None, _) => ("default", &self.program.default),
        };
        let wire = if verdict.template.is_some() {
            &buffers.wire[..]
        } else {
            &verdict.wire[..]
        };
        Decision {
            action: &verdict.action,
            rule,
            dry_run: self.program.dry_run(buffers),
            wire,
        }
    }
}

/// A limit rule's counters, as [`Policy::limit_states`] shows them.
#[derive(Debug, Clone, Copy)]
pub struct LimitState<'a> {
    /// The limit's name.
    pub name: &'a str,
    /// What must stay the same for its counters to carry over to another
    /// policy (a reload, a restart): a hash of the name, key, what is
    /// counted, when, the window lengths and the capacity. The maxima,
    /// conditions, overrides and `over` action are not part of it.
    pub signature: u64,
    /// The counters.
    pub table: &'a LimitTable,
    /// The rule's windows and maxima as this policy has them (the table's
    /// own [`LimitTable::limit`] may name other maxima: it is built for the
    /// largest any key may get, overrides included, and is kept across a
    /// reload that changes `max`).
    pub limit: &'a Limit,
}

/// A greylist's state, as [`Policy::greylist_states`] shows it.
#[derive(Debug, Clone, Copy)]
pub struct GreylistState<'a> {
    /// The greylist's name.
    pub name: &'a str,
    /// What must stay the same for its state to carry over to another
    /// policy: a hash of the name, the client part, the timers, the
    /// auto-whitelist threshold and the capacity.
    pub signature: u64,
    /// The triplets and client networks.
    pub table: &'a GreylistTable,
}

impl Policy {
    /// The limit rules' counters, in policy order.
    pub fn limit_states(&self) -> impl Iterator<Item = LimitState<'_>> {
        self.program.limits.iter().filter_map(|l| {
            Some(LimitState {
                name: &self.program.rules.get(l.rule as usize)?.name,
                signature: l.signature,
                table: &l.table,
                limit: &l.limit,
            })
        })
    }

    /// Decodes a snapshot of limit `name`'s counters
    /// ([`LimitTable::encode_snapshot`]) for this policy: `Ok(None)` when the
    /// policy has no limit of that name and `signature` (the rule is gone or
    /// changed, so the counters do not apply). Installs nothing: see
    /// [`Policy::install_limit`], so that a caller restoring several tables
    /// can install all of them or none.
    pub fn decode_limit(
        &self,
        name: &str,
        signature: u64,
        snapshot: &[u8],
    ) -> Result<Option<LimitTable>, SnapshotError> {
        let Some(limit) = self.find_limit(name, signature) else {
            return Ok(None);
        };
        // The table's own limit: the rule's windows with the largest maxima
        // any key may get (which decide the counters' width).
        LimitTable::decode_snapshot(snapshot, limit.table.limit().clone(), limit.capacity).map(Some)
    }

    /// Makes `table` the counters of limit `name` (a table from
    /// [`Policy::decode_limit`]). `false` if there is no such limit or the
    /// table is for other windows; nothing changes then.
    pub fn install_limit(&mut self, name: &str, table: LimitTable) -> bool {
        let rules = &self.program.rules;
        let Some(limit) = self
            .program
            .limits
            .iter_mut()
            .find(|l| rules.get(l.rule as usize).is_some_and(|r| &*r.name == name))
        else {
            return false;
        };
        let same_windows = limit.limit.windows().len() == table.limit().windows().len()
            && limit
                .limit
                .windows()
                .iter()
                .zip(table.limit().windows())
                .all(|(a, b)| a.per_ms() == b.per_ms());
        if !same_windows {
            return false;
        }
        limit.table = Arc::new(table);
        true
    }

    /// Takes over the counters of `old`'s limits and the state of its
    /// greylists that this policy has unchanged (same name and signature): a
    /// reload keeps them. Returns the names of the rules that kept their
    /// state.
    pub fn keep_limits_of(&mut self, old: &Self) -> Vec<String> {
        let mut kept = Vec::new();
        for i in 0..self.program.limits.len() {
            let (name, signature) = {
                let l = &self.program.limits[i];
                let Some(rule) = self.program.rules.get(l.rule as usize) else {
                    continue;
                };
                (rule.name.clone(), l.signature)
            };
            if let Some(previous) = old.find_limit(&name, signature) {
                self.program.limits[i].table = Arc::clone(&previous.table);
                kept.push(name.into_string());
            }
        }
        for i in 0..self.program.greylists.len() {
            let (name, signature) = {
                let g = &self.program.greylists[i];
                let Some(rule) = self.program.rules.get(g.rule as usize) else {
                    continue;
                };
                (rule.name.clone(), g.signature)
            };
            if let Some(previous) = old.find_greylist(&name, signature) {
                self.program.greylists[i].table = Arc::clone(&previous.table);
                kept.push(name.into_string());
            }
        }
        kept
    }

    /// The greylists' state, in policy order.
    pub fn greylist_states(&self) -> impl Iterator<Item = GreylistState<'_>> {
        self.program.greylists.iter().filter_map(|g| {
            Some(GreylistState {
                name: &self.program.rules.get(g.rule as usize)?.name,
                signature: g.signature,
                table: &g.table,
            })
        })
    }

    /// Decodes a snapshot of greylist `name`'s state
    /// ([`GreylistTable::encode_snapshot`]) for this policy: `Ok(None)` when
    /// the policy has no greylist of that name and `signature`. Installs
    /// nothing (see [`Policy::install_greylist`]).
    pub fn decode_greylist(
        &self,
        name: &str,
        signature: u64,
        snapshot: &[u8],
    ) -> Result<Option<GreylistTable>, SnapshotError> {
        let Some(grey) = self.find_greylist(name, signature) else {
            return Ok(None);
        };
        GreylistTable::decode_snapshot(snapshot, grey.timers, grey.capacity).map(Some)
    }

    /// Makes `table` the state of greylist `name` (a table from
    /// [`Policy::decode_greylist`]). `false` if there is no such greylist.
    pub fn install_greylist(&mut self, name: &str, table: GreylistTable) -> bool {
        let rules = &self.program.rules;
        let Some(grey) = self
            .program
            .greylists
            .iter_mut()
            .find(|g| rules.get(g.rule as usize).is_some_and(|r| &*r.name == name))
        else {
            return false;
        };
        grey.table = Arc::new(table);
        true
    }

    fn find_greylist(&self, name: &str, signature: u64) -> Option<&GreylistRule> {
        self.program.greylists.iter().find(|g| {
            g.signature == signature
                && self
                    .program
                    .rules
                    .get(g.rule as usize)
                    .is_some_and(|r| &*r.name == name)
        })
    }

    fn find_limit(&self, name: &str, signature: u64) -> Option<&LimitRule> {
        self.program.limits.iter().find(|l| {
            l.signature == signature
                && self
                    .program
                    .rules
                    .get(l.rule as usize)
                    .is_some_and(|r| &*r.name == name)
        })
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
    /// Unique in the process: a [`Scratch`] remembers which engine its
    /// policy came from, so a scratch used with two engines never decides
    /// with the other one's policy (their generations both start at 1).
    id: EngineId,
    current: RwLock<Arc<Policy>>,
    generation: AtomicU64,
}

/// An [`Engine`]'s identity: unique among the engines of a process.
type EngineId = u64;

/// The next [`Engine`]'s id. 2^64 engines are never made.
static NEXT_ENGINE_ID: AtomicU64 = AtomicU64::new(1);

impl Engine {
    /// An engine that starts with `policy`.
    pub fn new(policy: Policy) -> Self {
        Self {
            id: NEXT_ENGINE_ID.fetch_add(1, Ordering::Relaxed),
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
    ///
    /// Limits that the new policy keeps unchanged (same name and
    /// [`signature`](LimitState::signature)) keep their counters; the names
    /// of those are returned.
    pub fn replace(&self, mut policy: Policy) -> Vec<String> {
        let mut current = self.current.write();
        let kept = policy.keep_limits_of(&current);
        *current = Arc::new(policy);
        self.generation.fetch_add(1, Ordering::Release);
        kept
    }

    /// Decide `request` at `now` with the policy in force, using the
    /// connection's `scratch`. Allocates nothing in steady state.
    ///
    /// A scratch is bound to the engine it is used with: given to another
    /// engine, it takes that engine's policy and forgets the message under
    /// way (whose counts belong to the first engine's tables).
    pub fn decide<'s>(
        &self,
        request: &Request<'_>,
        now: Timestamp,
        scratch: &'s mut Scratch,
    ) -> Decision<'s> {
        let generation = self.generation.load(Ordering::Acquire);
        let fresh =
            matches!(&scratch.policy, Some((id, g, _)) if *id == self.id && *g == generation);
        if !fresh {
            if !matches!(&scratch.policy, Some((id, ..)) if *id == self.id) {
                // Another engine's scratch (or a new one): its message state
                // names that engine's limits.
                scratch.buffers.forget_message();
            }
            let current = self.current.read();
            // Read the generation again under the lock: `replace` bumps it while
            // holding the write lock, so this pair is consistent.
            let generation = self.generation.load(Ordering::Acquire);
            scratch.policy = Some((self.id, generation, Arc::clone(&current)));
        }
        // Split the borrow: the policy is shared, the buffers are not.
        let Scratch { policy, buffers } = scratch;
        match policy {
            Some((_, _, policy)) => policy.decide_inner(request, now, buffers),
            // Unreachable: filled just above. Answering DUNNO keeps this total.
            None => Decision {
                action: &Action::Dunno,
                rule: "default",
                dry_run: DryRun::EMPTY,
                wire: b"DUNNO",
            },
        }
    }
}

impl Default for Engine {
    fn default() -> Self {
        Self::new(Policy::default())
    }
}
