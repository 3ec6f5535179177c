//! The evaluator: run a compiled [`Program`] on a request. Allocates nothing
//! and cannot panic: every index is checked (a wrong one reads as "false"),
//! and every condition walk is bounded by the number of nodes.

use std::cell::RefCell;
use std::fmt;

use super::program::{
    state_bit, DomainLookup, Field, Memo, NumOp, Outside, Predicate, Program, Rule, ScoreItem,
    Test, TextOp, DOMAIN_MEMO_SLOTS, FALSE, MEMO_SLOTS, SENDER_KNOWN, TRUE,
};
use crate::action::Action;
use crate::base::time::Timestamp;
use crate::facts::Facts;
use crate::greylist::rule::GreyStep;
use crate::keyed::{BackendError, OnFailure};
use crate::limits::rule::{Counted, MessageState, Step, Unit};
use crate::request::{ProtocolState, Request};
use crate::state::prefetch::{Mode, Prefetch, Store};
use crate::state::State;
use crate::template::{Context, DecisionFacts, GreylistFacts, TextBuf, Verdict};

/// How many unknown facts one condition explores both ways before it is
/// unknown as a whole (each doubles the work of that condition).
const MAX_UNKNOWN_DEPTH: usize = 6;

/// The values assumed for unknown facts along one path of a condition
/// ([`Program::holds3`]), on the stack.
#[derive(Debug, Default)]
pub(crate) struct Assumptions {
    facts: [Option<(u16, bool)>; MAX_UNKNOWN_DEPTH],
    len: usize,
}

impl Assumptions {
    fn get(&self, test: u16) -> Option<bool> {
        self.facts[..self.len]
            .iter()
            .flatten()
            .find(|(t, _)| *t == test)
            .map(|&(_, value)| value)
    }

    fn is_full(&self) -> bool {
        self.len == MAX_UNKNOWN_DEPTH
    }

    fn push(&mut self, test: u16, value: bool) {
        if let Some(slot) = self.facts.get_mut(self.len) {
            *slot = Some((test, value));
            self.len += 1;
        }
    }
}

/// The state and time a rule is tried with.
#[derive(Clone, Copy)]
struct At<'s> {
    tables: &'s State,
    now: Timestamp,
}

/// One dry-run hit as the scratch stores it: the rule's index and the range
/// of its expanded wire text in the scratch's dry-run buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HitRecord {
    pub(crate) rule: u32,
    pub(crate) start: u32,
    pub(crate) end: u32,
}

/// The reusable buffers of a [`Scratch`](crate::Scratch): cleared, never
/// shrunk, so steady-state decisions allocate nothing.
#[derive(Debug, Default)]
pub(crate) struct Buffers {
    /// The key text of the limit being checked (and of the deciding limit's
    /// refusal, for `$key`).
    pub(crate) key: Vec<u8>,
    /// Units counted by limits during this request (given back if the final
    /// answer refuses it).
    pub(crate) counted: Vec<Counted>,
    /// The message under way on this connection.
    pub(crate) message: MessageState,
    /// Check limits without counting anything (for explanations).
    pub(crate) probe: bool,
    /// The normalised sender of a greylist's triplet.
    pub(crate) sender: Vec<u8>,
    /// A greylist whose first accepted retry this request is (its index in
    /// `Program::greylists`), and how long the retry waited.
    pub(crate) first_pass: Option<(u32, u64)>,
    /// The deciding action's expanded wire text (templated actions only).
    pub(crate) wire: Vec<u8>,
    /// The first state backend failure of this request: the rule's index,
    /// the error and what the rule did about it.
    pub(crate) failure: Option<(u32, BackendError, OnFailure)>,
    /// Dry-run rules that applied, in rule order.
    pub(crate) hits: Vec<HitRecord>,
    /// The expanded wire texts of the dry-run hits, back to back.
    pub(crate) hit_wire: Vec<u8>,
    /// `$score_reasons`: what added to the request's score.
    pub(crate) score_reasons: Vec<u8>,
    /// The request's score at the end of the walk, and whether a score
    /// item ran (`score`).
    pub(crate) score: i64,
    pub(crate) scored: bool,
    /// `$dnsbl_reason` of the rule being fired.
    pub(crate) dnsbl_reason: Vec<u8>,
    /// The plan and batch of the request's remote calls (boxed: made for
    /// the first request of a policy with remote items, and out of the way
    /// of the others).
    pub(crate) prefetch: Option<Box<Prefetch>>,
}

/// Where a rule's answer is written: the parts of the [`Buffers`] that an
/// answer writes, apart from the ones its template reads ([`Found`]).
pub(crate) struct Out<'b> {
    wire: &'b mut Vec<u8>,
    hits: &'b mut Vec<HitRecord>,
    hit_wire: &'b mut Vec<u8>,
}

/// What a rule's answer may show: the parts of the [`Buffers`] its
/// template reads.
pub(crate) struct Found<'b> {
    key: &'b [u8],
    score_reasons: &'b [u8],
    dnsbl_reason: &'b [u8],
}

impl<'b> Found<'b> {
    /// What the templates show of the decision so far: the score, the DNS
    /// list reason, and the SPF result of `facts`.
    fn decision<'x>(&self, score: i64, facts: &'x Facts) -> DecisionFacts<'x>
    where
        'b: 'x,
    {
        DecisionFacts {
            score,
            score_reasons: self.score_reasons,
            dnsbl_reason: self.dnsbl_reason,
            spf_result: facts.spf_result.as_bytes(),
            spf_explanation: &facts.spf_explanation,
            received_spf: &facts.received_spf,
        }
    }
}

impl Buffers {
    /// Split into what an answer writes and what its template reads.
    fn split(&mut self) -> (Out<'_>, Found<'_>) {
        let Self {
            key,
            wire,
            hits,
            hit_wire,
            score_reasons,
            dnsbl_reason,
            ..
        } = self;
        (
            Out {
                wire,
                hits,
                hit_wire,
            },
            Found {
                key,
                score_reasons,
                dnsbl_reason,
            },
        )
    }

    /// Forget the message under way (the scratch moves to another engine).
    pub(crate) fn forget_message(&mut self) {
        // The list's capacity is kept: no allocation on the next message.
        let mut counted = std::mem::take(&mut self.message.counted);
        counted.clear();
        self.message = MessageState {
            counted,
            ..MessageState::default()
        };
    }
}

/// The dry-run rules that applied to a request, in rule order: what each
/// would have answered. Borrowed from the policy and the scratch.
#[derive(Clone, Copy)]
pub struct DryRun<'a> {
    rules: &'a [Rule],
    /// The buffers of the decision (`None` for no hits): one pointer
    /// rather than slices of the hits and their texts (and a copy of the
    /// backend failure) keeps a `Decision` small; it is returned by value
    /// for every request.
    buffers: Option<&'a Buffers>,
}

impl<'a> DryRun<'a> {
    /// No hits.
    pub(crate) const EMPTY: DryRun<'static> = DryRun {
        rules: &[],
        buffers: None,
    };

    fn hits(&self) -> &'a [HitRecord] {
        self.buffers.map_or(&[], |b| &b.hits[..])
    }

    fn wire(&self) -> &'a [u8] {
        self.buffers.map_or(&[], |b| &b.hit_wire[..])
    }

    /// The request's score and what added to it, if a score item ran (see
    /// [`Decision::score`](crate::Decision::score)).
    pub(crate) fn score(&self) -> Option<(i64, &'a [u8])> {
        let b = self.buffers?;
        b.scored.then_some((b.score, &b.score_reasons[..]))
    }

    /// The decision's first state backend failure (see
    /// [`Decision::backend_failure`](crate::Decision::backend_failure)).
    pub(crate) fn failure(&self) -> Option<(u32, BackendError, OnFailure)> {
        self.buffers.and_then(|b| b.failure)
    }

    /// The name of rule `index` of the policy (`""` if there is none).
    pub(crate) fn rule_name(&self, index: u32) -> &'a str {
        self.rules.get(index as usize).map_or("", |r| &*r.name)
    }

    /// How many dry-run rules applied.
    pub fn len(&self) -> usize {
        self.hits().len()
    }

    /// Whether no dry-run rule applied.
    pub fn is_empty(&self) -> bool {
        self.hits().is_empty()
    }

    /// The hits, in rule order.
    pub fn iter(&self) -> DryRunIter<'a> {
        DryRunIter {
            dry_run: *self,
            next: 0,
        }
    }
}

impl fmt::Debug for DryRun<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl PartialEq for DryRun<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for DryRun<'_> {}

impl<'a> IntoIterator for DryRun<'a> {
    type Item = DryRunHit<'a>;
    type IntoIter = DryRunIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over the hits of a [`DryRun`].
#[derive(Debug, Clone)]
pub struct DryRunIter<'a> {
    dry_run: DryRun<'a>,
    next: usize,
}

impl<'a> Iterator for DryRunIter<'a> {
    type Item = DryRunHit<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let d = self.dry_run;
        let hit = d.hits().get(self.next)?;
        self.next += 1;
        let rule = d.rules.get(hit.rule as usize)?;
        let wire = d
            .wire()
            .get(hit.start as usize..hit.end as usize)
            .unwrap_or_default();
        Some(DryRunHit {
            rule: &rule.name,
            action: &rule.verdict.action,
            wire,
        })
    }
}

/// A dry-run rule that applied: its name and the action it would have given.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DryRunHit<'a> {
    /// The rule's name.
    pub rule: &'a str,
    /// The rule's compiled action (template variables shown as samples).
    pub action: &'a Action,
    /// The action's wire form for this request (templates filled in), as it
    /// would have been sent.
    pub wire: &'a [u8],
}

impl fmt::Debug for DryRunHit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DryRunHit")
            .field("rule", &self.rule)
            .field("wire", &String::from_utf8_lossy(self.wire))
            .finish()
    }
}

/// What [`Program::decide`] found: the deciding rule (`None` = the default).
pub(crate) struct Outcome<'a> {
    pub(crate) rule: Option<&'a Rule>,
    /// Instead of the rule's action: a greylist's `prepend` header for its
    /// first accepted retry, when nothing else decided (`rule` is then the
    /// greylist), or a limit's answer to a request that could never fit.
    /// Its wire text is in the buffers when templated.
    pub(crate) instead: Option<&'a Verdict>,
}

impl<'a> Outcome<'a> {
    fn rule(rule: Option<&'a Rule>) -> Self {
        Self {
            rule,
            instead: None,
        }
    }
}

impl Program {
    /// Run the rules in order on `request` with its outside `facts`,
    /// recording dry-run hits and the deciding action's wire text in
    /// `buffers`.
    pub(crate) fn decide<'a>(
        &'a self,
        request: &Request<'_>,
        facts: &Facts,
        state: &State,
        now: Timestamp,
        buffers: &mut Buffers,
    ) -> Outcome<'a> {
        self.start_walk(buffers);
        if !self.limits.is_empty() || !self.greylists.is_empty() || self.once_rules {
            buffers.message.follow(request);
        }
        if self.remote_stateful && state.has_backend() && !buffers.probe {
            // Plan the walk's remote calls, and make them in one batch.
            buffers.prefetch.get_or_insert_with(Box::default).plan();
            let _ = self.walk(request, facts, state, now, buffers);
            if let Some(prefetch) = &mut buffers.prefetch {
                state.prefetch(prefetch, now);
            }
            self.start_walk(buffers);
            buffers.wire.clear();
        }
        let mut outcome = self.walk(request, facts, state, now, buffers);
        if let Some(prefetch) = &mut buffers.prefetch {
            prefetch.off();
        }
        if let (None, Some((grey, waited_ms))) = (outcome.rule, buffers.first_pass) {
            outcome = self.first_pass_header(grey, waited_ms, request, buffers, outcome);
        }
        if !self.limits.is_empty() {
            self.settle(&outcome, request, state, now, buffers);
        }
        outcome
    }

    /// Clear what a walk leaves in `buffers` (but the wire text, which the
    /// deciding answer writes).
    #[inline]
    fn start_walk(&self, buffers: &mut Buffers) {
        buffers.hits.clear();
        buffers.hit_wire.clear();
        buffers.failure = None;
        if !self.scores.is_empty() {
            buffers.score_reasons.clear();
            buffers.scored = false;
        }
        if !self.limits.is_empty() || !self.greylists.is_empty() {
            buffers.counted.clear();
        }
        buffers.first_pass = None;
    }

    /// The answer to the first accepted retry of greylist `grey` when no rule
    /// decided: its `prepend` header if it has one, the default is DUNNO and
    /// the message (`instance`) did not get the header yet.
    fn first_pass_header<'a>(
        &'a self,
        grey: u32,
        waited_ms: u64,
        request: &Request<'_>,
        buffers: &mut Buffers,
        outcome: Outcome<'a>,
    ) -> Outcome<'a> {
        let Some(g) = self.greylists.get(grey as usize) else {
            return outcome;
        };
        let (Some(prepend), Some(rule)) = (&g.prepend, self.rules.get(g.rule as usize)) else {
            return outcome;
        };
        // Once per message (as postgrey does): a retried message with
        // several recipients gets one header, with its first recipient.
        if !matches!(self.default.action, Action::Dunno) || buffers.message.header_sent {
            return outcome;
        }
        if !buffers.probe {
            buffers.message.header_sent = true;
        }
        if let Some(t) = &prepend.template {
            let context = Context {
                rule: &rule.name,
                limit: None,
                greylist: Some(GreylistFacts {
                    retry_after_ms: None,
                    delay_ms: Some(waited_ms),
                }),
                decision: DecisionFacts::NONE,
            };
            buffers.wire.clear();
            t.write_wire_in(request, &context, &mut buffers.wire);
        }
        Outcome {
            rule: Some(rule),
            instead: Some(prepend),
        }
    }

    /// Run the rules in order; the first that decides wins.
    fn walk<'a>(
        &'a self,
        request: &Request<'_>,
        facts: &Facts,
        tables: &State,
        now: Timestamp,
        buffers: &mut Buffers,
    ) -> Outcome<'a> {
        // No rules (`Policy::always`): no memo to set up.
        let mut score = 0;
        let outcome = if self.hot.is_empty() {
            Outcome::rule(None)
        } else {
            let state = state_bit(request.protocol_state);
            let at = At { tables, now };
            let mut memo = Memo::new(facts);
            let outcome = self.walk_rules(request, state, at, &mut memo, buffers);
            score = memo.score;
            if !self.scores.is_empty() {
                buffers.score = score;
            }
            outcome
        };
        if outcome.rule.is_none() {
            if let Some(t) = &self.default.template {
                let (out, found) = buffers.split();
                let context = Context {
                    decision: DecisionFacts {
                        dnsbl_reason: &[],
                        ..found.decision(score, facts)
                    },
                    ..Context::rule("default")
                };
                out.wire.clear();
                t.write_wire_in(request, &context, out.wire);
            }
        }
        outcome
    }

    /// The walk of [`Program::walk`] over the rules.
    #[inline]
    fn walk_rules<'a>(
        &'a self,
        request: &Request<'_>,
        state: u16,
        at: At<'_>,
        memo: &mut Memo<'_>,
        buffers: &mut Buffers,
    ) -> Outcome<'a> {
        let mut index = 0;
        while let Some(hot) = self.hot.get(index) {
            if let Some(run) = self.runs.get(hot.run as usize) {
                // A run of rules that each require `field == "constant"`:
                // look the request's value up once and try only the rules
                // that require that value (in order); the others cannot apply.
                for &candidate in run.candidates(request) {
                    if let Some(outcome) =
                        self.apply(candidate as usize, state, request, at, memo, buffers)
                    {
                        return outcome;
                    }
                }
                index = (run.end as usize).max(index + 1);
                continue;
            }
            if let Some(outcome) = self.apply(index, state, request, at, memo, buffers) {
                return outcome;
            }
            index += 1;
        }
        Outcome::rule(None)
    }

    /// After the final answer: give back what limits counted if it refuses
    /// the request; otherwise note the accepted recipient (and the messages
    /// counted) in the connection's message state.
    fn settle(
        &self,
        outcome: &Outcome<'_>,
        request: &Request<'_>,
        state: &State,
        now: Timestamp,
        buffers: &mut Buffers,
    ) {
        let action = match (outcome.instead, outcome.rule) {
            (Some(instead), _) => &instead.action,
            (None, Some(rule)) => &rule.verdict.action,
            (None, None) => &self.default.action,
        };
        if action.refuses() {
            self.refund(state, &buffers.counted, now);
            return;
        }
        if matches!(request.protocol_state, Some(ProtocolState::Rcpt)) {
            let message = &mut buffers.message;
            message.accepted = message.accepted.saturating_add(1);
            for c in &buffers.counted {
                if let Some(limit) = self.limits.get(c.limit as usize) {
                    if limit.unit == Unit::Messages && !message.was_counted(limit.signature) {
                        message.counted.push(limit.signature);
                    }
                }
            }
        }
    }

    /// Gives back the units of `counted` (the final answer refused the
    /// request). A backend that fails to take them back keeps them: the
    /// units expire with their window.
    fn refund(&self, state: &State, counted: &[Counted], now: Timestamp) {
        for c in counted {
            // Best effort, on purpose: see above.
            let _ = state.refund(c.limit as usize, c.hash, c.units, now);
        }
    }

    /// Try rule `index`: `Some(rule)` if it applies and decides (its wire
    /// text written when templated); a dry-run rule that applies is recorded
    /// in `buffers` and gives `None`, as does a rule that does not apply.
    /// The test of its state and condition is [`Program::rule_holds`], out
    /// of line and small (few registers to save per rule); what a rule
    /// whose condition holds does is in [`Program::fire`].
    #[inline]
    fn apply<'a>(
        &'a self,
        index: usize,
        state: u16,
        request: &Request<'_>,
        at: At<'_>,
        memo: &mut Memo<'_>,
        buffers: &mut Buffers,
    ) -> Option<Outcome<'a>> {
        if self.rule_holds(index, state, request, memo) {
            self.fire(index, request, at, memo, buffers)
        } else {
            None
        }
    }

    /// Whether rule `index` applies in protocol state `state` (its bit) and
    /// its condition holds.
    #[inline(never)]
    fn rule_holds(
        &self,
        index: usize,
        state: u16,
        request: &Request<'_>,
        memo: &mut Memo<'_>,
    ) -> bool {
        let Some(hot) = self.hot.get(index) else {
            return false;
        };
        if hot.states != 0 && hot.states & state == 0 {
            return false;
        }
        let start = hot.start as usize;
        let entries = self
            .entries
            .get(start..start.saturating_add(hot.len as usize))
            .unwrap_or_default();
        if hot.outside {
            // Off the hot path: only rules that test an outside fact.
            self.outside_rule_holds(index, entries, request, memo)
        } else {
            entries
                .iter()
                .all(|&entry| self.holds(entry, request, memo))
        }
    }

    /// Rule `index`'s state and condition hold: run its limit or greylist
    /// step, and record or write its answer (see [`Program::apply`]).
    #[inline(never)]
    fn fire<'a>(
        &'a self,
        index: usize,
        request: &Request<'_>,
        at: At<'_>,
        memo: &mut Memo<'_>,
        buffers: &mut Buffers,
    ) -> Option<Outcome<'a>> {
        let At { tables, now } = at;
        let rule = self.rules.get(index)?;
        if rule.shows_listing {
            self.note_listing(memo, buffers);
        }
        if memo.unknown {
            // The condition is unknown and the rule answers that.
            memo.unknown = false;
            let verdict = rule.on_unknown.as_ref()?;
            let (out, facts) = buffers.split();
            let context = Context {
                decision: facts.decision(memo.score, memo.facts),
                ..Context::rule(&rule.name)
            };
            return self.answer(index, rule, Some(verdict), request, &context, out);
        }
        if let Some(score) = rule.score {
            return self.fire_score(index, rule, score, request, memo, buffers);
        }
        let mut refused = None;
        // The answer of a rule whose state backend failed, if it defers.
        let mut failed = None;
        if let Some(limit) = rule.limit {
            let Buffers {
                key,
                counted,
                message,
                probe,
                prefetch,
                ..
            } = buffers;
            let step = match self.limits.get(limit as usize) {
                Some(l) if self.remote_stateful => {
                    let prefetch = prefetch.get_or_insert_with(Box::default);
                    prefetch.barrier = rule.dry_run || l.is_distinct();
                    remote_limit_step(
                        l, limit, request, tables, now, prefetch, key, counted, message, *probe,
                    )
                }
                Some(l) => l.step(limit, request, tables, now, key, counted, message, *probe),
                None => Step::Pass,
            };
            match step {
                Step::Pass => return None,
                Step::Over(r) => refused = Some(r),
                Step::Failed(error) => {
                    let on_failure = self
                        .limits
                        .get(limit as usize)
                        .map_or(OnFailure::Allow, |l| l.on_failure);
                    failed = Some(self.backend_failed(index, error, on_failure, buffers)?);
                }
            }
        }
        let mut grey_facts = None;
        if let Some(grey) = rule.greylist {
            let Buffers {
                sender,
                probe,
                prefetch,
                ..
            } = buffers;
            let step = match self.greylists.get(grey as usize) {
                Some(g) if self.remote_stateful => {
                    let prefetch = prefetch.get_or_insert_with(Box::default);
                    prefetch.barrier = rule.dry_run;
                    remote_grey_step(g, grey, request, tables, now, prefetch, sender, *probe)
                }
                Some(g) => g.step(grey, request, tables, now, sender, *probe),
                None => GreyStep::Pass,
            };
            match step {
                GreyStep::Pass => return None,
                GreyStep::Failed(error) => {
                    let on_failure = self
                        .greylists
                        .get(grey as usize)
                        .map_or(OnFailure::Allow, |g| g.on_failure);
                    failed = Some(self.backend_failed(index, error, on_failure, buffers)?);
                }
                GreyStep::FirstPass { waited_ms } => {
                    // A dry-run greylist defers nothing, so no retry of it
                    // is "accepted": no header either.
                    if !rule.dry_run && buffers.first_pass.is_none() {
                        buffers.first_pass = Some((grey, waited_ms));
                    }
                    return None;
                }
                GreyStep::Defer(facts) => grey_facts = Some(facts),
            }
        }
        if rule.once != 0 && !rule.dry_run && buffers.message.instance != 0 {
            // A header once per message: the message's later recipients
            // go on to the next rules.
            if buffers.message.prepended.contains(&rule.once) {
                return None;
            }
            let planning = buffers
                .prefetch
                .as_ref()
                .is_some_and(|p| p.mode == Mode::Plan);
            if !buffers.probe && !planning {
                buffers.message.prepended.push(rule.once);
            }
        }
        let (out, facts) = buffers.split();
        let context = Context {
            rule: &rule.name,
            limit: refused.map(|r| r.facts(facts.key)),
            greylist: grey_facts,
            decision: facts.decision(memo.score, memo.facts),
        };
        // A limit's default answer to a request that could never fit (more
        // units than the window's maximum): not "try again later".
        let instead = match (refused, rule.limit) {
            (Some(r), Some(limit)) if r.retry_after_ms.is_none() => self
                .limits
                .get(limit as usize)
                .and_then(|l| l.never.as_ref()),
            _ => failed,
        };
        self.answer(index, rule, instead, request, &context, out)
    }

    /// Rule `index` (`rule`) answers `instead`, or its own verdict:
    /// recorded as a hit if it is a dry-run rule (`None`: the walk goes
    /// on), else its wire text written if templated.
    fn answer<'a>(
        &'a self,
        index: usize,
        rule: &'a Rule,
        instead: Option<&'a Verdict>,
        request: &Request<'_>,
        context: &Context<'_>,
        out: Out<'_>,
    ) -> Option<Outcome<'a>> {
        let verdict = instead.unwrap_or(&rule.verdict);
        if rule.dry_run {
            let start = out.hit_wire.len();
            match &verdict.template {
                Some(t) => {
                    t.write_wire_in(request, context, out.hit_wire);
                }
                None => out.hit_wire.extend_from_slice(&verdict.wire),
            }
            out.hits.push(HitRecord {
                rule: u32::try_from(index).unwrap_or(u32::MAX),
                start: u32::try_from(start).unwrap_or(u32::MAX),
                end: u32::try_from(out.hit_wire.len()).unwrap_or(u32::MAX),
            });
            return None;
        }
        if let Some(t) = &verdict.template {
            out.wire.clear();
            t.write_wire_in(request, context, out.wire);
        }
        Some(Outcome {
            rule: Some(rule),
            instead,
        })
    }

    /// Rule `index`'s state backend failed with `error`: note it (the
    /// first of the request) and say what the rule answers: the backend
    /// defer action with `on_failure defer`, nothing (the rule does not
    /// decide) with `allow` or `skip`.
    #[cold]
    fn backend_failed(
        &self,
        index: usize,
        error: BackendError,
        on_failure: OnFailure,
        buffers: &mut Buffers,
    ) -> Option<&Verdict> {
        if buffers.failure.is_none() {
            buffers.failure = Some((u32::try_from(index).unwrap_or(u32::MAX), error, on_failure));
        }
        match on_failure {
            OnFailure::Defer => Some(&self.backend_defer),
            OnFailure::Allow | OnFailure::Skip => None,
        }
    }

    /// Whether rule `index`, whose condition (`entries`) tests an outside
    /// fact, applies: its condition holds whatever the unknown facts are
    /// (three values; see [`Program::holds3`]), or it is unknown and the
    /// rule has an `on_unknown` answer (noted in `memo.unknown`).
    #[cold]
    fn outside_rule_holds(
        &self,
        index: usize,
        entries: &[u32],
        request: &Request<'_>,
        memo: &mut Memo<'_>,
    ) -> bool {
        memo.listed = None;
        let applies = match self.holds_all3(entries, request, memo) {
            Some(holds) => holds,
            None => {
                memo.unknown = self
                    .rules
                    .get(index)
                    .is_some_and(|rule| rule.on_unknown.is_some());
                memo.unknown
            }
        };
        if !applies {
            memo.listed = None;
        }
        applies
    }

    /// Whether every clause of `entries` holds, in three values: false if
    /// one surely fails, true if all surely hold, else unknown.
    fn holds_all3(
        &self,
        entries: &[u32],
        request: &Request<'_>,
        memo: &mut Memo<'_>,
    ) -> Option<bool> {
        let mut all = Some(true);
        for &entry in entries {
            match self.holds3_at(entry, request, memo) {
                Some(true) => {}
                Some(false) => return Some(false),
                None => all = None,
            }
        }
        all
    }

    /// [`Program::holds3`] of the condition starting at `entry`, with no
    /// assumptions yet; a condition of one outside test (the common `add 2
    /// if client_address in dnsbl zen`) is evaluated directly.
    #[inline]
    pub(crate) fn holds3_at(
        &self,
        entry: u32,
        request: &Request<'_>,
        memo: &mut Memo<'_>,
    ) -> Option<bool> {
        if let Some(node) = self.nodes.get(entry as usize) {
            if let (Test::Outside(test, slot), TRUE | FALSE, TRUE | FALSE) =
                (node.test, node.on_true, node.on_false)
            {
                let value = self.outside_noted(test, slot, request, memo)?;
                return Some(if value { node.on_true } else { node.on_false } == TRUE);
            }
        }
        let mut assumed = Assumptions::default();
        self.holds3(entry, request, memo, &mut assumed)
    }

    /// [`Program::outside`], noting in `memo` the first DNS list test
    /// found listed (for `$dnsbl_reason`).
    fn outside_noted(
        &self,
        test: Outside,
        slot: u16,
        request: &Request<'_>,
        memo: &mut Memo<'_>,
    ) -> Option<bool> {
        let value = self.outside(test, slot, request, memo.facts)?;
        if value && memo.listed.is_none() && matches!(test, Outside::List { .. }) {
            memo.listed = Some(slot);
        }
        Some(value)
    }

    /// Write the `$dnsbl_reason` of the rule about to fire (which shows
    /// it): of the listing that made its condition hold, if one did.
    #[cold]
    fn note_listing(&self, memo: &mut Memo<'_>, buffers: &mut Buffers) {
        buffers.dnsbl_reason.clear();
        if let Some(slot) = memo.listed.take() {
            self.dnsbl_reason(slot, memo.facts, &mut buffers.dnsbl_reason);
        }
    }

    /// Score item `score` (rule `index`) runs: add the weights of its adds
    /// whose conditions hold (surely: an unknown condition adds nothing),
    /// then answer with the highest threshold the score is above, if any.
    /// A dry-run item changes nothing: it records what it would answer.
    #[inline(never)]
    fn fire_score<'a>(
        &'a self,
        index: usize,
        rule: &'a Rule,
        score: u32,
        request: &Request<'_>,
        memo: &mut Memo<'_>,
        buffers: &mut Buffers,
    ) -> Option<Outcome<'a>> {
        let item = self.scores.get(score as usize)?;
        if !rule.dry_run {
            buffers.scored = true;
        }
        let before = memo.score;
        let reasons_before = buffers.score_reasons.len();
        let (added, listed) = self.add_up(item, request, memo, &mut buffers.score_reasons);
        memo.score = memo.score.saturating_add(added);
        if rule.shows_listing {
            memo.listed = listed;
            self.note_listing(memo, buffers);
        }
        let total = memo.score;
        if rule.dry_run {
            // No effect on the decision: the score and reasons as before.
            memo.score = before;
        }
        let above = item
            .thresholds
            .iter()
            .find(|(threshold, _)| total > *threshold)
            .map(|(_, verdict)| verdict);
        let outcome = match above {
            Some(verdict) => {
                let (out, facts) = buffers.split();
                let context = Context {
                    decision: facts.decision(total, memo.facts),
                    ..Context::rule(&rule.name)
                };
                self.answer(index, rule, Some(verdict), request, &context, out)
            }
            None => None,
        };
        if rule.dry_run {
            buffers.score_reasons.truncate(reasons_before);
        }
        outcome
    }

    /// What score item `item` adds for `request`: the sum of the weights
    /// of its adds whose conditions surely hold, each written to `reasons`
    /// (`REASON=WEIGHT`, after `, ` if not the first), and the first DNS
    /// list listing that made one hold.
    pub(crate) fn add_up(
        &self,
        item: &ScoreItem,
        request: &Request<'_>,
        memo: &mut Memo<'_>,
        reasons: &mut Vec<u8>,
    ) -> (i64, Option<u16>) {
        let mut added: i64 = 0;
        let mut listed = None;
        for add in &*item.adds {
            memo.listed = None;
            let holds = if add.outside {
                self.holds3_at(add.entry, request, memo) == Some(true)
            } else {
                self.holds(add.entry, request, memo)
            };
            if !holds {
                continue;
            }
            if listed.is_none() {
                listed = memo.listed;
            }
            added = added.saturating_add(add.weight);
            if !reasons.is_empty() {
                reasons.extend_from_slice(b", ");
            }
            reasons.extend_from_slice(add.reason.as_bytes());
            reasons.push(b'=');
            let mut buf = [0u8; 24];
            reasons.extend_from_slice(crate::base::bytes::score(add.weight, &mut buf));
        }
        memo.listed = None;
        (added, listed)
    }

    /// The dry-run hits recorded in `buffers` by the last [`Program::decide`].
    pub(crate) fn dry_run<'a>(&'a self, buffers: &'a Buffers) -> DryRun<'a> {
        DryRun {
            rules: &self.rules,
            buffers: Some(buffers),
        }
    }

    /// Whether the condition starting at node `entry` holds. Memoized tests
    /// read and fill `memo`.
    /// A test on an outside fact that is not known counts as false here;
    /// the walk evaluates rules with outside facts by [`Program::holds3`].
    #[inline]
    pub(crate) fn holds(&self, entry: u32, request: &Request<'_>, memo: &mut Memo<'_>) -> bool {
        let mut pc = entry;
        // Targets only point backwards, so this ends within `nodes.len()`
        // steps; the bound makes that true even for a malformed program.
        for _ in 0..=self.nodes.len() {
            match pc {
                TRUE => return true,
                FALSE => return false,
                _ => {}
            }
            let Some(node) = self.nodes.get(pc as usize) else {
                return false;
            };
            let result = if (node.memo as usize) < MEMO_SLOTS {
                let bit = 1u64 << node.memo;
                if memo.known & bit != 0 {
                    memo.value & bit != 0
                } else {
                    let result = self.test_memo(&node.test, request, memo);
                    memo.known |= bit;
                    if result {
                        memo.value |= bit;
                    }
                    result
                }
            } else {
                self.test_memo(&node.test, request, memo)
            };
            pc = if result { node.on_true } else { node.on_false };
        }
        false
    }

    /// Whether the condition starting at node `entry` holds, in three
    /// values (`None`: unknown): the condition is unknown when its value
    /// depends on an unknown fact, i.e. assuming the fact true and assuming
    /// it false (the same assumption wherever the fact is tested) lead to
    /// different ends. Off the hot path: only for rules that test an
    /// outside fact. `assumed` holds the assumptions made so far.
    pub(crate) fn holds3(
        &self,
        entry: u32,
        request: &Request<'_>,
        memo: &mut Memo<'_>,
        assumed: &mut Assumptions,
    ) -> Option<bool> {
        let mut pc = entry;
        for _ in 0..=self.nodes.len() {
            match pc {
                TRUE => return Some(true),
                FALSE => return Some(false),
                _ => {}
            }
            let node = self.nodes.get(pc as usize)?;
            let result = match node.test {
                Test::Outside(test, slot) => match self.outside_noted(test, slot, request, memo) {
                    Some(known) => known,
                    None => match assumed.get(slot) {
                        Some(value) => value,
                        // Past the bound: unknown.
                        None if assumed.is_full() => return None,
                        None => {
                            // Both ways, each with its assumption.
                            let mark = assumed.len;
                            assumed.push(slot, true);
                            let yes = self.holds3(node.on_true, request, memo, assumed);
                            assumed.len = mark;
                            assumed.push(slot, false);
                            let no = self.holds3(node.on_false, request, memo, assumed);
                            assumed.len = mark;
                            return if yes? == no? { yes } else { None };
                        }
                    },
                },
                _ => self.test_memo(&node.test, request, memo),
            };
            pc = if result { node.on_true } else { node.on_false };
        }
        Some(false)
    }

    /// Evaluate one test, reusing the result of a domain lookup of the same
    /// value in the same list made through another field for this request
    /// (same result as [`Program::test`]: the lookup depends only on the
    /// list and the value's bytes).
    #[inline]
    fn test_memo(&self, test: &Test, r: &Request<'_>, memo: &mut Memo<'_>) -> bool {
        let Test::DomainInList { field, list } = *test else {
            return self.test(test, r, memo);
        };
        let Some(found) = self.lists.get(list as usize) else {
            return false;
        };
        let mut buf = TextBuf::new();
        let value = field.text(r, &mut buf);
        let count = usize::from(memo.domain_count).min(DOMAIN_MEMO_SLOTS);
        for done in memo.domains.get(..count).unwrap_or_default() {
            if done.list == list {
                let mut other_buf = TextBuf::new();
                if done.field == field || done.field.text(r, &mut other_buf) == value {
                    return done.result;
                }
            }
        }
        let result = found.contains_domain(value);
        if let Some(slot) = memo.domains.get_mut(count) {
            *slot = DomainLookup {
                list,
                field,
                result,
            };
            memo.domain_count += 1;
        }
        result
    }

    /// Evaluate one test; a test on an outside fact reads `memo.facts`.
    #[inline]
    pub(crate) fn test(&self, test: &Test, r: &Request<'_>, memo: &mut Memo<'_>) -> bool {
        match *test {
            // An unknown fact counts as false here (rules with outside
            // facts are decided by `Program::holds3`).
            Test::Outside(test, slot) => self.outside(test, slot, r, memo.facts).unwrap_or(false),
            Test::AddressInList { field, list } => {
                let Some(list) = self.lists.get(list as usize) else {
                    return false;
                };
                let address = match field {
                    Field::Sender => r.sender,
                    Field::Recipient => r.recipient,
                    _ => crate::request::Address::new(r.sasl_sender),
                };
                list.contains_address(&address)
            }
            Test::DomainInList { field, list } => {
                let Some(list) = self.lists.get(list as usize) else {
                    return false;
                };
                let mut buf = TextBuf::new();
                let value = field.text(r, &mut buf);
                list.contains_domain(value)
            }
            Test::TextInList { field, list } => {
                let Some(list) = self.lists.get(list as usize) else {
                    return false;
                };
                let mut buf = TextBuf::new();
                list.contains_bytes(field.text(r, &mut buf))
            }
            Test::IpInList { field, list } => match (field.ip(r), self.lists.get(list as usize)) {
                (Some(ip), Some(list)) => list.contains_ip(ip),
                _ => false,
            },
            Test::Text {
                field,
                op,
                text,
                no_case,
            } => {
                let Some(needle) = self.texts.get(text as usize) else {
                    return false;
                };
                let mut buf = TextBuf::new();
                text_op(field.text(r, &mut buf), op, needle, no_case)
            }
            Test::Regex { field, regex } => {
                let Some(regex) = self.regexes.get(regex as usize) else {
                    return false;
                };
                let mut buf = TextBuf::new();
                regex.is_match(field.text(r, &mut buf))
            }
            Test::Number { field, op, value } => match field.number(r) {
                Some(n) => compare(n, op, value),
                None => false,
            },
            Test::IpEquals { field, ip } => field.ip(r) == Some(ip),
            Test::Score { op, value } => compare(memo.score, op, value),
            Test::State { mask } => {
                r.protocol_state.is_some() && state_bit(r.protocol_state) & mask != 0
            }
            Test::IsSet { field } => field.is_set(r),
            Test::Predicate(p) => predicate(p, r),
            Test::UnauthenticatedLocalSender { list } => {
                r.sasl_username.is_empty()
                    && r.sender.has_domain()
                    && self
                        .lists
                        .get(list as usize)
                        .is_some_and(|l| l.contains_domain(r.sender.domain))
            }
            Test::SenderLoginMismatch { map } => self
                .logins
                .get(map as usize)
                .is_some_and(|m| login_mismatch(m, r)),
        }
    }
}

/// `value OP limit`.
#[inline]
fn compare<T: Ord>(value: T, op: NumOp, limit: T) -> bool {
    match op {
        NumOp::Eq => value == limit,
        NumOp::Ne => value != limit,
        NumOp::Lt => value < limit,
        NumOp::Le => value <= limit,
        NumOp::Gt => value > limit,
        NumOp::Ge => value >= limit,
    }
}

/// Postfix's `reject_sender_login_mismatch`: with a SASL login, the sender
/// must be owned by that login; without one, the sender must have no owner.
/// The null sender never mismatches (Postfix skips it too).
fn login_mismatch(map: &crate::list::LoginMap, r: &Request<'_>) -> bool {
    map.login_mismatch(r.sasl_username, &r.sender)
}

/// `value OP needle`. With `no_case`, `needle` is lower case and `value` is
/// compared ignoring ASCII case.
#[inline]
fn text_op(value: &[u8], op: TextOp, needle: &[u8], no_case: bool) -> bool {
    let eq = |a: &[u8], b: &[u8]| {
        if no_case {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    match op {
        TextOp::Equals => eq(value, needle),
        TextOp::StartsWith => value.len() >= needle.len() && eq(&value[..needle.len()], needle),
        TextOp::EndsWith => {
            value.len() >= needle.len() && eq(&value[value.len() - needle.len()..], needle)
        }
        TextOp::Contains => contains(value, needle, no_case),
    }
}

fn predicate(p: Predicate, r: &Request<'_>) -> bool {
    match p {
        Predicate::Authenticated => !r.sasl_username.is_empty(),
        Predicate::Tls => !r.encryption_protocol.is_empty(),
        Predicate::NullSender => {
            r.sender.is_null() && state_bit(r.protocol_state) & SENDER_KNOWN != 0
        }
        Predicate::HeloIsFqdn => helo_is_fqdn(r.helo_name),
        Predicate::HeloIsAddressLiteral => is_address_literal(r.helo_name),
        Predicate::HeloIsIp => is_ip(r.helo_name),
        Predicate::ClientUnknown => r.client_name == b"unknown",
        Predicate::ReverseClientUnknown => r.reverse_client_name == b"unknown",
    }
}

/// Whether `name` parses as a bare IPv4 or IPv6 address. Names with a byte
/// no address has (most host names: `m`, `-`, ...) are refused without
/// parsing.
fn is_ip(name: &[u8]) -> bool {
    if name.is_empty()
        || name.len() > 45
        || !name
            .iter()
            .all(|b| b.is_ascii_hexdigit() || matches!(b, b'.' | b':'))
    {
        return false;
    }
    std::str::from_utf8(name).is_ok_and(|s| s.parse::<std::net::IpAddr>().is_ok())
}

/// An RFC 5321 (4.1.3) address literal: `[` IPv4 `]`, each of the four
/// numbers one to three digits and at most 255, or `[IPv6:` IPv6 `]` (the tag
/// in any case) with a valid IPv6 address, compressed or with a dotted IPv4
/// tail. General address literals (`[tag:content]` with another tag) and
/// anything else in brackets (`[foo]`, `[1.2.3]`, `[300.1.1.1]`,
/// `[IPv6:zzz]`) are not: Postfix's `reject_invalid_helo_hostname` refuses
/// them too.
fn is_address_literal(name: &[u8]) -> bool {
    let Some(inner) = name.strip_prefix(b"[").and_then(|n| n.strip_suffix(b"]")) else {
        return false;
    };
    if inner.len() > 5 && inner[..5].eq_ignore_ascii_case(b"IPv6:") {
        let v6 = &inner[5..];
        return v6.len() <= 45
            && v6
                .iter()
                .all(|b| b.is_ascii_hexdigit() || matches!(b, b'.' | b':'))
            && std::str::from_utf8(v6).is_ok_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok());
    }
    is_ipv4_literal(inner)
}

/// RFC 5321's `IPv4-address-literal`: `Snum 3("." Snum)`, an `Snum` being one
/// to three digits of value 0-255 (leading zeros allowed, as the grammar does).
fn is_ipv4_literal(text: &[u8]) -> bool {
    let mut parts = 0;
    for part in text.split(|&b| b == b'.') {
        parts += 1;
        if parts > 4 || part.is_empty() || part.len() > 3 || !part.iter().all(u8::is_ascii_digit) {
            return false;
        }
        let value = part.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
        if value > 255 {
            return false;
        }
    }
    parts == 4
}

/// Byte classes for [`helo_is_fqdn`]: not allowed in a host name, a digit,
/// a letter, `-`, `.`.
const INVALID: u8 = 0;
const DIGIT: u8 = 1;
const LETTER: u8 = 2;
const HYPHEN: u8 = 3;
const DOT: u8 = 4;

/// The class of every byte, for a one-lookup-per-byte scan.
const HOST_CLASS: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = match b as u8 {
            b'0'..=b'9' => DIGIT,
            b'a'..=b'z' | b'A'..=b'Z' => LETTER,
            b'-' => HYPHEN,
            b'.' => DOT,
            _ => INVALID,
        };
        b += 1;
    }
    table
};

/// A fully qualified domain name, as Postfix's `reject_non_fqdn_helo_hostname`
/// sees it: at least two labels, each 1-63 letters, digits or hyphens not at
/// either end, a top label that is not all digits, at most 253 bytes (one
/// trailing dot allowed); not an address literal and not a bare IP address.
/// Two tight passes: a table lookup per byte refuses any other byte, then the
/// labels are split at the dots (a byte search) and checked at their ends.
fn helo_is_fqdn(name: &[u8]) -> bool {
    let name = name.strip_suffix(b".").unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    if name.iter().any(|&b| HOST_CLASS[usize::from(b)] == INVALID) {
        return false;
    }
    let mut labels = 0usize;
    let mut last: &[u8] = &[];
    for label in name.split(|&b| b == b'.') {
        match (label.first(), label.last()) {
            (Some(&first), Some(&end)) if first != b'-' && end != b'-' && label.len() <= 63 => {}
            _ => return false,
        }
        labels += 1;
        last = label;
    }
    labels >= 2 && !last.iter().all(u8::is_ascii_digit)
}

/// Whether `value` contains `needle` (lower case when `no_case`, and then
/// `value` compared ignoring ASCII case): a scan for the needle's first byte,
/// then a comparison of the rest.
#[inline]
fn contains(value: &[u8], needle: &[u8], no_case: bool) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    let Some(last_start) = value.len().checked_sub(needle.len()) else {
        return false;
    };
    (0..=last_start).any(|i| {
        let b = value[i];
        let b = if no_case { b.to_ascii_lowercase() } else { b };
        b == first && {
            let candidate = &value[i + 1..i + needle.len()];
            if no_case {
                candidate.eq_ignore_ascii_case(rest)
            } else {
                candidate == rest
            }
        }
    })
}

/// A limit's step through the prefetching store (a policy with remote
/// items): apart, so that the walk of other policies stays as it was.
#[cold]
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn remote_limit_step(
    l: &crate::limits::rule::LimitRule,
    limit: u32,
    request: &Request<'_>,
    tables: &State,
    now: Timestamp,
    prefetch: &mut Prefetch,
    key: &mut Vec<u8>,
    counted: &mut Vec<Counted>,
    message: &MessageState,
    probe: bool,
) -> Step {
    let store = Store {
        state: tables,
        prefetch: RefCell::new(prefetch),
    };
    l.step(limit, request, &store, now, key, counted, message, probe)
}

/// A greylist's step through the prefetching store; see
/// [`remote_limit_step`].
#[cold]
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn remote_grey_step(
    g: &crate::greylist::rule::GreylistRule,
    grey: u32,
    request: &Request<'_>,
    tables: &State,
    now: Timestamp,
    prefetch: &mut Prefetch,
    sender: &mut Vec<u8>,
    probe: bool,
) -> GreyStep {
    let store = Store {
        state: tables,
        prefetch: RefCell::new(prefetch),
    };
    g.step(grey, request, &store, now, sender, probe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_ops_table() {
        // (value, op, needle, no_case, expected)
        type Row<'a> = (&'a [u8], TextOp, &'a [u8], bool, bool);
        let rows: &[Row<'_>] = &[
            (
                b"Joe@Example.COM",
                TextOp::Equals,
                b"joe@example.com",
                true,
                true,
            ),
            (
                b"Joe@Example.COM",
                TextOp::Equals,
                b"joe@example.com",
                false,
                false,
            ),
            (
                b"mail.example.com",
                TextOp::StartsWith,
                b"mail.",
                false,
                true,
            ),
            (b"mail", TextOp::StartsWith, b"mail.", false, false),
            (b"MAIL.example.com", TextOp::EndsWith, b".com", true, true),
            (b"om", TextOp::EndsWith, b".com", true, false),
            (b"adsl-1-2-3", TextOp::Contains, b"dsl", false, true),
            (b"ADSL", TextOp::Contains, b"dsl", true, true),
            (b"ADSL", TextOp::Contains, b"dsl", false, false),
            (b"", TextOp::Contains, b"", false, true),
            (b"", TextOp::Contains, b"a", false, false),
            (b"ab", TextOp::Contains, b"abc", false, false),
            (b"xxABC", TextOp::Contains, b"abc", true, true),
            (b"xxabd", TextOp::Contains, b"abc", true, false),
            (b"abc", TextOp::Contains, b"abc", false, true),
            (b"aab", TextOp::Contains, b"ab", false, true),
        ];
        for &(value, op, needle, no_case, expected) in rows {
            assert_eq!(
                text_op(value, op, needle, no_case),
                expected,
                "{value:?} {op:?} {needle:?}"
            );
        }
    }

    #[test]
    fn label_and_name_lengths() {
        let label63 = format!("{}.example", "a".repeat(63));
        let label64 = format!("{}.example", "a".repeat(64));
        assert!(helo_is_fqdn(label63.as_bytes()));
        assert!(!helo_is_fqdn(label64.as_bytes()));
        let long = format!("{}example", "a.".repeat(124));
        assert_eq!(long.len(), 255);
        assert!(!helo_is_fqdn(long.as_bytes()));
        assert!(
            helo_is_fqdn(&long.as_bytes()[2..253 + 2])
                == fqdn_reference(&long.as_bytes()[2..253 + 2])
        );
    }

    #[test]
    fn address_literals() {
        let rows: &[(&[u8], bool)] = &[
            (b"[192.0.2.1]", true),
            (b"[0.0.0.0]", true),
            (b"[255.255.255.255]", true),
            (b"[010.001.2.3]", true),
            (b"[IPv6:2001:db8::1]", true),
            (b"[ipv6:2001:DB8::1]", true),
            (b"[IPv6:::1]", true),
            (b"[IPv6:::ffff:192.0.2.1]", true),
            (b"[IPv6:2001:db8:0:0:0:0:0:1]", true),
            // The field trial's bypasses.
            (b"[foo]", false),
            (b"[IPv6:zzz]", false),
            (b"[1.2.3]", false),
            (b"[300.1.1.1]", false),
            // Other shapes that are no address literal.
            (b"[]", false),
            (b"[1.2.3.4.5]", false),
            (b"[1.2.3.]", false),
            (b"[.1.2.3]", false),
            (b"[1..2.3]", false),
            (b"[1.2.3.0004]", false),
            (b"[256.1.1.1]", false),
            (b"[+1.2.3.4]", false),
            (b"[ 1.2.3.4]", false),
            (b"[1.2.3.4", false),
            (b"1.2.3.4]", false),
            (b"192.0.2.1", false),
            (b"[2001:db8::1]", false),
            (b"[IPv6:]", false),
            (b"[IPv6:1.2.3.4]", false),
            (b"[IPv6:2001:db8::1%eth0]", false),
            (b"[IPv4:1.2.3.4]", false),
            (b"[x-tag:content]", false),
            (b"[[1.2.3.4]]", false),
            (b"[1.2.3.4]]", false),
        ];
        for &(helo, expected) in rows {
            assert_eq!(
                is_address_literal(helo),
                expected,
                "{}",
                String::from_utf8_lossy(helo)
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn ipv4_literals_agree_with_parsing(a in 0u16..400, b in 0u16..300, c in 0u16..300, d in 0u16..300) {
            let literal = format!("[{a}.{b}.{c}.{d}]");
            let valid = [a, b, c, d].iter().all(|&n| n <= 255);
            proptest::prop_assert_eq!(is_address_literal(literal.as_bytes()), valid);
        }
    }

    #[test]
    fn helo_shapes() {
        for (helo, fqdn, ip) in [
            (&b"mail.example.com"[..], true, false),
            (b"mail.example.com.", true, false),
            (b"localhost", false, false),
            (b"192.0.2.1", false, true),
            (b"[192.0.2.1]", false, false),
            (b"2001:db8::1", false, true),
            (b"-a.example", false, false),
            (b"a..example", false, false),
            (b"a_b.example", false, false),
            (b"a-.example", false, false),
            (b"a.example-", false, false),
            (b"a.123", false, false),
            (b"1.a23", true, false),
            (b"a.", false, false),
            (b".a.example", false, false),
            (b"::ffff:192.0.2.1", false, true),
            (b"deadbeef", false, false),
            (b"", false, false),
        ] {
            assert_eq!(helo_is_fqdn(helo), fqdn, "{helo:?}");
            assert_eq!(is_ip(helo), ip, "{helo:?}");
        }
    }

    /// The obvious definition of a FQDN, label by label.
    fn fqdn_reference(name: &[u8]) -> bool {
        let name = name.strip_suffix(b".").unwrap_or(name);
        if name.is_empty() || name.len() > 253 {
            return false;
        }
        let labels: Vec<&[u8]> = name.split(|&b| b == b'.').collect();
        labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
                    && l[0] != b'-'
                    && l[l.len() - 1] != b'-'
            })
            && !labels[labels.len() - 1].iter().all(u8::is_ascii_digit)
    }

    proptest::proptest! {
        #[test]
        fn fqdn_agrees_with_the_reference(name in "[a-c0-9.\\-_]{0,12}") {
            proptest::prop_assert_eq!(helo_is_fqdn(name.as_bytes()), fqdn_reference(name.as_bytes()));
        }

        #[test]
        fn contains_agrees_with_windows(value in "[abAB]{0,10}", needle in "[ab]{0,4}", no_case in proptest::bool::ANY) {
            let (value, needle) = (value.as_bytes(), needle.as_bytes());
            let naive = needle.is_empty()
                || value.windows(needle.len()).any(|w| if no_case { w.eq_ignore_ascii_case(needle) } else { w == needle });
            proptest::prop_assert_eq!(contains(value, needle, no_case), naive);
        }

        #[test]
        fn is_ip_agrees_with_parsing(name in "[0-9a-f:.]{0,20}|[0-9.]{0,16}") {
            proptest::prop_assert_eq!(is_ip(name.as_bytes()), name.parse::<std::net::IpAddr>().is_ok());
        }
    }

    #[test]
    fn domain_lookups_are_shared_only_between_equal_values() {
        // `helo_name` and `client_name` in the same list: the second lookup
        // reuses the first only when the two values are equal; another list
        // or another value is looked up on its own.
        let source = "list l domain { .bad.example }\n\
                      list m domain { good.example }\n\
                      rule h { if helo_name in l and size > 100 then REJECT \"5.7.1 h\" }\n\
                      rule c { if client_name in l then REJECT \"5.7.1 c\" }\n\
                      rule r { if reverse_client_name in m then REJECT \"5.7.1 r\" }\n\
                      rule g { if client_name in m then DEFER \"4.7.1 g\" }";
        let policy = crate::Policy::compile("t.conf", source, &mut crate::NoFiles)
            .map(|c| crate::Engine::new(c.policy))
            .unwrap_or_else(|e| panic!("{e}"));
        let rows: &[(&str, &str, &str, &str, &str)] = &[
            // (helo, client, reverse, size, rule)
            ("a.bad.example", "a.bad.example", "x", "1", "c"),
            ("a.bad.example", "ok.example", "x", "1", "default"),
            ("ok.example", "a.BAD.example", "x", "1", "c"),
            ("ok.example", "good.example", "x", "1", "g"),
            ("good.example", "good.example", "good.example", "1", "r"),
            ("a.bad.example", "a.bad.example", "x", "500", "h"),
            ("x.bad.example", "good.example", "good.example", "500", "h"),
        ];
        let mut scratch = crate::Scratch::new();
        for &(helo, client, reverse, size, rule) in rows {
            let frame = format!(
                "request=smtpd_access_policy\nprotocol_state=RCPT\nhelo_name={helo}\n\
                 client_name={client}\nreverse_client_name={reverse}\nsize={size}\n\n"
            );
            let request = Request::parse(frame.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
            let now = Timestamp::from_unix_millis(0);
            assert_eq!(
                policy.decide(&request, now, &mut scratch).rule,
                rule,
                "{helo} {client} {reverse} {size}"
            );
        }
    }
}
