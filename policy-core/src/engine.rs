//! The engine seam: a compiled [`Policy`], its [`State`], the [`Engine`] that
//! holds both, the per-connection [`Scratch`], and the [`Decision`].
//!
//! A [`Policy`] is compiled from the policy language ([`Policy::compile`]) or
//! answers one fixed action ([`Policy::always`]); it is immutable and holds
//! no state (a clone is the same rules). The counters of its limits and the
//! triplets of its greylists are a [`State`] ([`State::for_policy`]).
//! [`Engine::decide`] runs the policy in force on a request with its state
//! and a per-connection [`Scratch`]; the engine swaps the policy on reload
//! ([`Engine::replace`], keeping the state of unchanged items) and the state
//! on restore ([`Engine::set_state`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::action::Action;
use crate::base::time::Timestamp;
use crate::facts::{Facts, Resolver, NO_FACTS};
use crate::lang::diag::CompileErrors;
use crate::lang::diag::Diagnostic;
use crate::lang::program::Program;
use crate::lang::source::SourceLoader;
use crate::lang::{Buffers, DryRun, Explanation};
use crate::request::Request;
use crate::state::{BackendError, GreylistSpec, LimitSpec, OnFailure, State};

/// Per-connection working space that [`Engine::decide`] reuses, so that deciding
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
    policy: Option<(EngineId, u64, Arc<Policy>, Arc<State>)>,
    /// Reused output buffers.
    buffers: Buffers,
    /// The outside facts of the request (queries and answers), made at the
    /// first request of a policy with outside facts: a scratch that never
    /// needs them stays small (it is moved around by value).
    facts: Option<Box<Facts>>,
}

impl Scratch {
    /// An empty scratch space.
    pub fn new() -> Self {
        Self::default()
    }

    /// The outside facts of the request being decided: the queries
    /// [`Engine::start`] asked, to send and answer (see [`facts`](crate::facts)).
    pub fn facts(&self) -> &Facts {
        self.facts.as_deref().unwrap_or(&NO_FACTS)
    }

    /// The facts, to supply answers ([`Facts::supply`]) or to give up on
    /// the rest at the deadline ([`Facts::expire`]).
    pub fn facts_mut(&mut self) -> &mut Facts {
        self.facts.get_or_insert_with(Box::default)
    }
}

/// Where a decision stands ([`Engine::start`], [`Engine::resume`]).
#[derive(Debug)]
pub enum Step<'s> {
    /// Decided: send it.
    Decided(Decision<'s>),
    /// Queries wait in the scratch's [`Facts`]: send them
    /// ([`Facts::pending`]), supply the answers ([`Facts::supply`]), mark
    /// the rest unknown at the deadline ([`Facts::expire`]), then
    /// [`Engine::resume`].
    NeedFacts,
}

/// The outcome of [`Engine::decide`]: the action to send, the rule that chose
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
    /// The outside facts it was decided with.
    facts: &'a Facts,
}

/// A state backend failure while deciding ([`Decision::backend_failure`]):
/// which rule, what went wrong, and what the rule did about it (its
/// `on_failure`). The daemon logs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendFailure<'a> {
    /// The rule whose backend failed.
    pub rule: &'a str,
    /// What went wrong.
    pub error: BackendError,
    /// What the rule did: let the request through (`allow`), answer
    /// [`BACKEND_DEFER_ACTION`](crate::lang::BACKEND_DEFER_ACTION)
    /// (`defer`), or not apply (`skip`).
    pub outcome: OnFailure,
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

    /// The first state backend failure while deciding, if any: the rule
    /// then did what its `on_failure` says. Log it.
    pub fn backend_failure(&self) -> Option<BackendFailure<'a>> {
        // The failure is in the buffers the dry-run hits borrow.
        self.dry_run
            .failure()
            .map(|(rule, error, outcome)| BackendFailure {
                rule: self.dry_run.rule_name(rule),
                error,
                outcome,
            })
    }

    /// The request's score (in hundredths: `435` is 4.35) and its reasons
    /// (`$score_reasons`: `REASON=WEIGHT, ...`), when a score item ran for
    /// it; `None` otherwise. For the log.
    pub fn score(&self) -> Option<(i64, &'a [u8])> {
        self.dry_run.score()
    }

    /// How many outside facts (DNS answers) were unknown when deciding: a
    /// rule whose condition depended on one did not apply (see
    /// [`facts`](crate::facts)). 0 for a policy without outside facts.
    pub fn unknown_facts(&self) -> usize {
        self.facts.unknown()
    }
}

/// A policy that compiled ([`Policy::compile`]), and the warnings about it.
#[derive(Debug)]
pub struct Compiled {
    /// The compiled policy.
    pub policy: Policy,
    /// Everything that compiles but probably does not do what was meant, in
    /// file order.
    pub warnings: Vec<Diagnostic>,
}

/// A compiled, immutable policy: rules, lists, templates, and no state.
/// `Policy: Send + Sync`; a clone is the same rules. Put it in force with
/// an [`Engine`], which keeps its [`State`].
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

    /// Compile the policy `source`, the text of the file `file_name` (used in
    /// diagnostics). List and logins files named in it are read through
    /// `loader` ([`NoFiles`](crate::NoFiles) when there are none).
    ///
    /// On success, the policy and its warnings; otherwise every error found
    /// in the file and its list files (not only the first), with the warnings.
    ///
    /// ```
    /// use policy_core::{Engine, NoFiles, Policy, Request, Scratch, Timestamp};
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
    /// let engine = Engine::new(compiled.policy);
    /// let decision = engine.decide(&request, Timestamp::from_unix_millis(0), &mut scratch);
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
        let (program, warnings) = crate::lang::compile(file_name, source, loader)?;
        Ok(Compiled {
            policy: Self { program },
            warnings,
        })
    }

    /// The names of the rules, in file order (without `"default"`).
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.program.rules.iter().map(|r| &*r.name)
    }

    /// Whether some condition needs outside facts (`in dnsbl`, `in rhsbl`,
    /// `fcrdns`, `helo_resolves`, `helo_matches_client`,
    /// `sender_domain_unknown`, in a rule or a score item's `add`): deciding
    /// then asks queries ([`Engine::start`]), and [`Engine::decide`] takes
    /// them all as unknown.
    #[inline]
    pub fn uses_outside_facts(&self) -> bool {
        self.program.outside
    }

    /// Whether some limit or greylist keeps its state in the remote backend
    /// (`backend redis`, on the item or as the policy's top-level default):
    /// its state needs [`State::with_backend`], without which such an item
    /// fails at every request and its `on_failure` applies. A daemon refuses
    /// to start with such a policy and no store to give it.
    pub fn uses_remote_state(&self) -> bool {
        self.program.limits.iter().any(|l| l.remote)
            || self.program.greylists.iter().any(|g| g.remote)
    }

    /// The zones of the DNS lists the policy's conditions query (`in
    /// dnsbl`, `in rhsbl`), lower case, without a trailing dot. A query's
    /// name ends with its list's zone: a resolver that skips a list which
    /// keeps timing out matches names against these.
    pub fn dns_zones(&self) -> impl Iterator<Item = &[u8]> {
        self.program.dns_lists.iter().map(|list| &*list.zone)
    }
}

impl Policy {
    /// Decide `request` with `facts` and `state`, into `buffers` (see
    /// [`Engine::decide`]).
    fn decide<'a>(
        &'a self,
        request: &Request<'_>,
        facts: &'a Facts,
        state: &State,
        now: Timestamp,
        buffers: &'a mut Buffers,
    ) -> Decision<'a> {
        let outcome = self.program.decide(request, facts, state, now, buffers);
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
            facts,
        }
    }

    /// What the state needs to know of each limit, in `program.limits` order.
    fn limit_specs(&self) -> Vec<LimitSpec> {
        self.program
            .limits
            .iter()
            .map(|l| LimitSpec {
                name: self.rule_name(l.rule),
                signature: l.signature,
                limit: l.limit.clone(),
                table_limit: l.table_limit.clone(),
                capacity: l.capacity,
                remote: l.remote,
            })
            .collect()
    }

    /// What the state needs to know of each greylist, in order.
    fn greylist_specs(&self) -> Vec<GreylistSpec> {
        self.program
            .greylists
            .iter()
            .map(|g| GreylistSpec {
                name: self.rule_name(g.rule),
                signature: g.signature,
                timers: g.timers,
                capacity: g.capacity,
                remote: g.remote,
            })
            .collect()
    }

    fn rule_name(&self, rule: u32) -> Box<str> {
        self.program
            .rules
            .get(rule as usize)
            .map_or_else(|| "".into(), |r| r.name.clone())
    }
}

impl State {
    /// Empty tables for `policy`'s limits and greylists (none for a policy
    /// without them). Allocates the tables' shard headers only; keys are
    /// allocated as they come ([`State::reserve`] sizes them up front).
    pub fn for_policy(policy: &Policy) -> Self {
        Self::build(
            policy.limit_specs(),
            policy.greylist_specs(),
            None,
            |_| None,
            |_| None,
        )
    }

    /// The state for `policy`, a new version of the policy this state is
    /// for (a reload): every limit and greylist that `policy` has unchanged
    /// (same name and [signature](crate::state::LimitState::signature)) keeps its table,
    /// shared with `self`, so counts made through either are seen by both;
    /// the others start empty. The backend and budget carry over.
    pub fn adopt(&self, policy: &Policy) -> Self {
        let mut next = Self::build(
            policy.limit_specs(),
            policy.greylist_specs(),
            self.seeds,
            |spec| {
                self.find_limit(&spec.name, spec.signature)
                    .and_then(|i| self.limit_arc(i))
            },
            |spec| {
                self.find_greylist(&spec.name, spec.signature)
                    .and_then(|i| self.greylist_arc(i))
            },
        );
        next.remote.clone_from(&self.remote);
        next.seeds = self.seeds;
        next.budget_ms = self.budget_ms;
        next
    }

    /// The names of the items of `self` whose state `older` holds too (what
    /// [`State::adopt`] kept), in policy order.
    pub fn kept_from(&self, older: &Self) -> Vec<String> {
        let limits = self
            .limits()
            .filter(|l| older.find_limit(l.name, l.signature).is_some())
            .map(|l| l.name.to_owned());
        let greylists = self
            .greylists()
            .filter(|g| older.find_greylist(g.name, g.signature).is_some())
            .map(|g| g.name.to_owned());
        limits.chain(greylists).collect()
    }
}

impl Default for Policy {
    /// The safe default: `DUNNO` for everything.
    fn default() -> Self {
        Self::always(Action::Dunno)
    }
}

/// A policy and its state, as they are in force together.
#[derive(Debug)]
struct InForce {
    policy: Arc<Policy>,
    state: Arc<State>,
}

/// The policy in force and its state, replaceable at run time (a reload, a
/// restored state file) while connections keep deciding. The one way to
/// decide: [`Engine::decide`].
///
/// Each connection passes its own [`Scratch`]; [`Engine::decide`] notices a
/// new policy or state with one atomic load and switches the connection to
/// it between two requests. A request never sees half of one policy and
/// half of another.
#[derive(Debug)]
pub struct Engine {
    /// Unique in the process: a [`Scratch`] remembers which engine its
    /// policy came from, so a scratch used with two engines never decides
    /// with the other one's policy (their generations both start at 1).
    id: EngineId,
    current: RwLock<Arc<InForce>>,
    generation: AtomicU64,
}

/// An [`Engine`]'s identity: unique among the engines of a process.
type EngineId = u64;

/// The next [`Engine`]'s id. 2^64 engines are never made.
static NEXT_ENGINE_ID: AtomicU64 = AtomicU64::new(1);

impl Engine {
    /// An engine that starts with `policy` and empty state for it
    /// ([`State::for_policy`]).
    pub fn new(policy: Policy) -> Self {
        let state = State::for_policy(&policy);
        Self::with_state(policy, state)
    }

    /// An engine that starts with `policy` and `state` (adopted for
    /// `policy`: see [`State::adopt`]), e.g. a state restored from a file
    /// or one with another [`Backend`](crate::state::Backend).
    pub fn with_state(policy: Policy, state: State) -> Self {
        let state = state.adopt(&policy);
        Self {
            id: NEXT_ENGINE_ID.fetch_add(1, Ordering::Relaxed),
            current: RwLock::new(Arc::new(InForce {
                policy: Arc::new(policy),
                state: Arc::new(state),
            })),
            generation: AtomicU64::new(1),
        }
    }

    /// The policy in force now.
    pub fn policy(&self) -> Arc<Policy> {
        Arc::clone(&self.current.read().policy)
    }

    /// The state in force now (for the state file, `policyd state`).
    pub fn state(&self) -> Arc<State> {
        Arc::clone(&self.current.read().state)
    }

    /// Put `policy` in force. Requests already being decided finish with the old
    /// policy; every later request on every connection uses the new one.
    ///
    /// The state adopts the new policy ([`State::adopt`]): limits and
    /// greylists that it keeps unchanged (same name and
    /// [`signature`](crate::state::LimitState::signature)) keep their state; their names
    /// are returned.
    pub fn replace(&self, policy: Policy) -> Vec<String> {
        let mut current = self.current.write();
        let state = current.state.adopt(&policy);
        let kept = state.kept_from(&current.state);
        *current = Arc::new(InForce {
            policy: Arc::new(policy),
            state: Arc::new(state),
        });
        self.generation.fetch_add(1, Ordering::Release);
        kept
    }

    /// Put `state` in force (a restored state file), adopted for the
    /// policy in force. Counts made meanwhile in the state it replaces are
    /// not carried over.
    pub fn set_state(&self, state: State) {
        let mut current = self.current.write();
        let state = state.adopt(&current.policy);
        *current = Arc::new(InForce {
            policy: Arc::clone(&current.policy),
            state: Arc::new(state),
        });
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The policy and state in force, refreshed into `scratch` when the
    /// engine changed since its last request (or it is another engine's).
    #[inline(always)]
    fn refresh(&self, scratch: &mut Scratch) {
        let generation = self.generation.load(Ordering::Acquire);
        let fresh =
            matches!(&scratch.policy, Some((id, g, ..)) if *id == self.id && *g == generation);
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
            scratch.policy = Some((
                self.id,
                generation,
                Arc::clone(&current.policy),
                Arc::clone(&current.state),
            ));
        }
    }

    /// Decide `request` at `now` with the policy in force, using the
    /// connection's `scratch`.
    ///
    /// Never panics and performs no I/O of its own (a [`Backend`](crate::state::Backend)
    /// other than the local tables may). Allocates nothing in steady state;
    /// it allocates only when a table gets a new key and must grow (see
    /// [`State::reserve`]) and while a new scratch's buffers grow to their
    /// working size (the first requests of a connection).
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
        self.refresh(scratch);
        let Scratch {
            policy,
            buffers,
            facts,
        } = scratch;
        let Some((_, _, policy, state)) = policy else {
            return DUNNO_UNREACHABLE;
        };
        let facts = if policy.uses_outside_facts() {
            // No resolver: every outside fact is unknown.
            unknown_facts(policy, request, now, facts)
        } else {
            &NO_FACTS
        };
        policy.decide(request, facts, state, now, buffers)
    }

    /// Put in `scratch` the outside facts [`Engine::decide`] decides
    /// `request` with when there is no resolver: every query asked and its
    /// answer unknown, and what ends on unknown answers ended (SPF's
    /// `temperror`). For [`Engine::explain_with`] before such a decision,
    /// so that the explanation shows the facts the decision will see.
    pub fn assume_unknown(&self, request: &Request<'_>, now: Timestamp, scratch: &mut Scratch) {
        self.refresh(scratch);
        let Scratch { policy, facts, .. } = scratch;
        if let Some((_, _, policy, _)) = policy {
            if policy.uses_outside_facts() {
                unknown_facts(policy, request, now, facts);
            }
        }
    }

    /// Decide with the policy, state and facts in `scratch` (refreshed).
    #[inline]
    fn decide_now<'s>(
        &self,
        request: &Request<'_>,
        now: Timestamp,
        scratch: &'s mut Scratch,
    ) -> Decision<'s> {
        // Split the borrow: the policy is shared, the buffers are not.
        let Scratch {
            policy,
            buffers,
            facts,
        } = scratch;
        let facts = facts.as_deref().unwrap_or(&NO_FACTS);
        match policy {
            Some((_, _, policy, state)) => policy.decide(request, facts, state, now, buffers),
            None => DUNNO_UNREACHABLE,
        }
    }

    /// Begin deciding `request` at `now`: [`Step::Decided`] when the policy
    /// needs no outside facts (exactly [`Engine::decide`]), else
    /// [`Step::NeedFacts`] with every query the policy may need for this
    /// request in `scratch`'s [`Facts`], to be sent at once.
    pub fn start<'s>(
        &self,
        request: &Request<'_>,
        now: Timestamp,
        scratch: &'s mut Scratch,
    ) -> Step<'s> {
        self.refresh(scratch);
        if let Some(facts) = &mut scratch.facts {
            facts.clear();
        }
        self.resume(request, now, scratch)
    }

    /// Go on with the decision [`Engine::start`] began, once answers were
    /// supplied (or the deadline passed and [`Facts::expire`] was called):
    /// [`Step::NeedFacts`] again if the answers lead to more queries (or
    /// some are still pending), else [`Step::Decided`]. Each rule is tried
    /// once, after every fact is in: a limit never counts twice.
    pub fn resume<'s>(
        &self,
        request: &Request<'_>,
        now: Timestamp,
        scratch: &'s mut Scratch,
    ) -> Step<'s> {
        if scratch.policy.is_none() {
            // Not started: start.
            return self.start(request, now, scratch);
        }
        if self.gather(request, now, scratch, false) {
            return Step::NeedFacts;
        }
        Step::Decided(self.decide_now(request, now, scratch))
    }

    /// Ask, in `scratch`'s facts, the queries `request` needs now (with
    /// `first`: a new request, its first round, as [`Engine::start`]; else
    /// what the answers supplied so far lead to, as [`Engine::resume`]),
    /// without deciding: `true` while some query waits for its answer. For
    /// a tool that explains a request with its facts before deciding it
    /// ([`Engine::explain_with`]): gather with `first`, then supply answers
    /// and gather until `false`, explain, then [`Engine::resume`] decides.
    pub fn gather(
        &self,
        request: &Request<'_>,
        now: Timestamp,
        scratch: &mut Scratch,
        first: bool,
    ) -> bool {
        if first {
            self.refresh(scratch);
            if let Some(facts) = &mut scratch.facts {
                facts.clear();
            }
        }
        let Some((_, _, policy, _)) = &scratch.policy else {
            return false;
        };
        if !policy.uses_outside_facts() {
            return false;
        }
        let facts = scratch.facts.get_or_insert_with(Box::default);
        policy.program.ask(request, now, facts);
        facts.is_waiting()
    }

    /// Decide `request` with the facts `resolver` gives, asking it each
    /// query in turn (a blocking embedder's form of [`Engine::start`] and
    /// [`Engine::resume`]). What it answers [`Answer::Unknown`](crate::facts::Answer::Unknown)
    /// to is unknown.
    pub fn decide_with<'s>(
        &self,
        request: &Request<'_>,
        now: Timestamp,
        scratch: &'s mut Scratch,
        resolver: &mut dyn Resolver,
    ) -> Decision<'s> {
        self.refresh(scratch);
        let facts = scratch.facts.get_or_insert_with(Box::default);
        facts.clear();
        if let Some((_, _, policy, _)) = &scratch.policy {
            let program = &policy.program;
            // A bound on the rounds: each must ask something new.
            while program.ask(request, now, facts) {
                loop {
                    let Some((id, query)) = facts.pending().next() else {
                        break;
                    };
                    let answer = resolver.resolve(query);
                    facts.supply(id, answer);
                }
            }
        }
        self.decide_now(request, now, scratch)
    }

    /// Explain how the policy in force decides `request`: for each rule,
    /// whether its state matched, each condition test in source form with
    /// its value, dry-run hits, and the verdict. Allocates; for `policyd
    /// test --explain`.
    ///
    /// Limits and greylists are checked, never counted. A limit counting
    /// messages sees a new message here; [`Engine::explain_with`] explains
    /// a request in the middle of a connection's message.
    pub fn explain(&self, request: &Request<'_>, now: Timestamp) -> Explanation {
        let current = Arc::clone(&self.current.read());
        crate::lang::explain(
            &current.policy.program,
            &current.state,
            request,
            now,
            None,
            &NO_FACTS,
        )
    }

    /// [`Engine::explain`] for a request of the connection whose [`Scratch`]
    /// this is: limits see the message under way on it (which recipients were
    /// accepted, whether the message was counted) as [`Engine::decide`] with
    /// that scratch would, and outside facts are the scratch's (the answers
    /// of its last decision, by [`Engine::start`]/[`Engine::resume`] or
    /// [`Engine::decide_with`]: call this after deciding `request` on the
    /// scratch, or the facts are another request's). The scratch is not
    /// changed.
    pub fn explain_with(
        &self,
        request: &Request<'_>,
        now: Timestamp,
        scratch: &Scratch,
    ) -> Explanation {
        let current = Arc::clone(&self.current.read());
        // Another engine's scratch: its message is not this engine's (as
        // `decide` would forget it).
        let ours = matches!(&scratch.policy, Some((id, ..)) if *id == self.id);
        let facts = match (&scratch.facts, ours) {
            (Some(facts), true) => facts,
            _ => &NO_FACTS,
        };
        crate::lang::explain(
            &current.policy.program,
            &current.state,
            request,
            now,
            ours.then_some(&scratch.buffers.message),
            facts,
        )
    }
}

/// The answer when a scratch holds no policy, which `Engine::refresh` makes
/// unreachable; answering DUNNO keeps deciding total.
const DUNNO_UNREACHABLE: Decision<'static> = Decision {
    action: &Action::Dunno,
    rule: "default",
    dry_run: DryRun::EMPTY,
    wire: b"DUNNO",
    facts: &NO_FACTS,
};

/// [`Engine::decide`] without a resolver: ask `policy`'s queries for
/// `request` and take every answer as unknown.
#[cold]
fn unknown_facts<'f>(
    policy: &Policy,
    request: &Request<'_>,
    now: Timestamp,
    facts: &'f mut Option<Box<Facts>>,
) -> &'f Facts {
    let facts = facts.get_or_insert_with(Box::default);
    facts.clear();
    policy.program.ask(request, now, facts);
    facts.expire();
    // Once more, closed: what evaluates on the answers it has (SPF, whose
    // unknown answers are its `temperror`) comes to its end.
    policy.program.ask(request, now, facts);
    facts
}

impl Default for Engine {
    fn default() -> Self {
        Self::new(Policy::default())
    }
}
