//! Explanations: why a policy decided what it did, rule by rule, for
//! `policyd test --explain`. Allocates freely; not for the hot path.

use std::fmt;

use super::eval::Buffers;
use super::program::Program;
use super::program::Test;
use crate::base::time::Timestamp;
use crate::facts::Facts;
use crate::limits::rule::MessageState;
use crate::request::Request;
use crate::state::State;

/// Why a policy decided a request as it did: every rule up to the deciding
/// one, with each condition test in source form and its value, then the
/// verdict. `Display` prints it for people; the fields are for tests and tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The request's `protocol_state` as sent (empty when missing).
    pub protocol_state: String,
    /// Every rule of the policy, in order.
    pub rules: Vec<RuleExplanation>,
    /// The deciding rule's name, `"default"` when no rule decided.
    pub rule: String,
    /// The action sent, in wire form, templates filled in.
    pub action: String,
    /// The dry-run rules that applied: name and the action they would have sent.
    pub dry_run: Vec<(String, String)>,
}

/// What became of one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RuleOutcome {
    /// The rule's `state` does not include the request's protocol state.
    SkippedState,
    /// The rule's conditions do not hold.
    NoMatch,
    /// A dry-run rule that applied: its action was recorded, and evaluation went on.
    DryRunHit,
    /// The rule applied and decided.
    Decided,
    /// An earlier rule decided; this one was not evaluated.
    NotReached,
    /// A limit whose conditions hold and that is not over for this request
    /// (or does not count it): evaluation went on. Explaining checks limits
    /// without counting anything.
    WithinLimit,
    /// A greylist whose conditions hold and that lets the request pass
    /// (whitelisted, known, or the first accepted retry): evaluation went
    /// on. Explaining changes no greylist state.
    PassesGreylist,
    /// A score item whose conditions hold and whose thresholds the score
    /// is not above: it added `added` (hundredths) to the request's score,
    /// making it `total`, and evaluation went on.
    Scored {
        /// What the item added, in hundredths.
        added: i64,
        /// The request's score after it, in hundredths.
        total: i64,
    },
}

/// One rule of an [`Explanation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleExplanation {
    /// The rule's name.
    pub name: String,
    /// The line of the rule in the policy file.
    pub line: u32,
    /// Whether the rule is marked `dry-run`.
    pub dry_run: bool,
    /// The rule's `state` clause as written, if any.
    pub states: Option<String>,
    /// What became of it.
    pub outcome: RuleOutcome,
    /// Each `if`/`unless` clause, when the rule was evaluated.
    pub clauses: Vec<ClauseExplanation>,
    /// The rule's action as written.
    pub action: String,
}

/// One `if`/`unless` clause of a rule, with its tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClauseExplanation {
    /// `if COND` or `unless COND` as written.
    pub source: String,
    /// Whether the clause lets the rule apply (for `unless`: the condition is false).
    pub holds: bool,
    /// The clause's value depends on an outside fact that is unknown (no
    /// resolver was asked, or it did not answer): it does not let the rule
    /// apply.
    pub unknown: bool,
    /// Every test of the clause in source order, each evaluated on its own.
    pub tests: Vec<TestResult>,
}

/// One test of a condition and its value for the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    /// The test as written: `size > 20MB`, `sender in blocked`, `authenticated`.
    pub source: String,
    /// Its value (`false` when unknown).
    pub value: bool,
    /// A test on an outside fact whose answer is unknown.
    pub unknown: bool,
}

/// Explain how `program` decides `request`.
pub(crate) fn explain(
    program: &Program,
    state: &State,
    request: &Request<'_>,
    now: Timestamp,
    message: Option<&MessageState>,
    facts: &Facts,
) -> Explanation {
    let mut buffers = Buffers {
        probe: true,
        message: message.cloned().unwrap_or_default(),
        ..Buffers::default()
    };
    let outcome = program.decide(request, facts, state, now, &mut buffers);
    let deciding = outcome.rule.map(std::ptr::from_ref);
    let state = super::program::state_bit(request.protocol_state);
    let mut decided = false;
    // The request's score before each rule, as the walk had it.
    let mut score: i64 = 0;
    let mut rules = Vec::with_capacity(program.rules.len());
    for (index, rule) in program.rules.iter().enumerate() {
        let dry_run_hit = buffers.hits.iter().any(|h| h.rule as usize == index);
        let mut clauses = Vec::new();
        let result = if decided {
            RuleOutcome::NotReached
        } else if rule.states != 0 && rule.states & state == 0 {
            RuleOutcome::SkippedState
        } else {
            let mut all = true;
            for ((&entry, &(first, end)), text) in rule
                .clauses
                .iter()
                .zip(rule.source.clause_nodes.iter())
                .zip(rule.source.clauses.iter())
            {
                let (holds, unknown) =
                    match program.holds3_at(entry, request, &mut memo_at(score, facts)) {
                        Some(holds) => (holds, false),
                        None => (false, true),
                    };
                all &= holds;
                let mut tests: Vec<(u32, TestResult)> = (first..end)
                    .filter_map(|i| {
                        let node = program.nodes.get(i as usize)?;
                        let source = program.node_source.get(i as usize)?;
                        let value = match node.test {
                            Test::Outside(test, slot) => {
                                program.outside(test, slot, request, facts)
                            }
                            _ => {
                                Some(program.test(&node.test, request, &mut memo_at(score, facts)))
                            }
                        };
                        Some((
                            source.start,
                            TestResult {
                                source: source.text.to_string(),
                                value: value.is_some_and(|v| v != source.negated),
                                unknown: value.is_none(),
                            },
                        ))
                    })
                    .collect();
                tests.sort_by_key(|(start, _)| *start);
                clauses.push(ClauseExplanation {
                    source: text.to_string(),
                    holds,
                    unknown,
                    tests: tests.into_iter().map(|(_, t)| t).collect(),
                });
            }
            let scored = match rule.score.and_then(|s| program.scores.get(s as usize)) {
                Some(item) if all => {
                    let mut memo = memo_at(score, facts);
                    let (added, _) = program.add_up(item, request, &mut memo, &mut Vec::new());
                    Some(added)
                }
                _ => None,
            };
            if !all {
                RuleOutcome::NoMatch
            } else if let (Some(added), false) = (
                scored,
                deciding == Some(std::ptr::from_ref(rule)) && !rule.dry_run,
            ) {
                let total = score.saturating_add(added);
                let hit = rule.dry_run && dry_run_hit;
                if !rule.dry_run {
                    score = total;
                }
                if hit {
                    RuleOutcome::DryRunHit
                } else {
                    RuleOutcome::Scored { added, total }
                }
            } else if (rule.limit.is_some() || rule.greylist.is_some()) && rule.dry_run {
                if dry_run_hit {
                    RuleOutcome::DryRunHit
                } else {
                    RuleOutcome::WithinLimit
                }
            } else if rule.dry_run {
                RuleOutcome::DryRunHit
            } else if rule.limit.is_some() && deciding != Some(std::ptr::from_ref(rule)) {
                RuleOutcome::WithinLimit
            } else if rule.greylist.is_some()
                && (outcome.instead.is_some() || deciding != Some(std::ptr::from_ref(rule)))
            {
                if dry_run_hit {
                    RuleOutcome::DryRunHit
                } else {
                    RuleOutcome::PassesGreylist
                }
            } else {
                decided = deciding == Some(std::ptr::from_ref(rule));
                if decided {
                    RuleOutcome::Decided
                } else {
                    // Unreachable: the evaluator decides at the first applying
                    // rule; shown as what it is rather than asserted.
                    RuleOutcome::NoMatch
                }
            }
        };
        rules.push(RuleExplanation {
            name: rule.name.to_string(),
            line: rule.source.line,
            dry_run: rule.dry_run,
            states: rule.source.states.as_ref().map(ToString::to_string),
            outcome: result,
            clauses,
            action: rule.source.action.to_string(),
        });
    }
    let (rule, verdict) = match (outcome.rule, outcome.instead) {
        (Some(r), Some(prepend)) => (r.name.to_string(), prepend),
        (Some(r), None) => (r.name.to_string(), &r.verdict),
        (None, _) => ("default".to_owned(), &program.default),
    };
    let action = if verdict.template.is_some() {
        String::from_utf8_lossy(&buffers.wire).into_owned()
    } else {
        String::from_utf8_lossy(&verdict.wire).into_owned()
    };
    let dry_run = program
        .dry_run(&buffers)
        .iter()
        .map(|hit| {
            (
                hit.rule.to_owned(),
                String::from_utf8_lossy(hit.wire).into_owned(),
            )
        })
        .collect();
    Explanation {
        protocol_state: request
            .protocol_state
            .map(|s| String::from_utf8_lossy(s.as_bytes()).into_owned())
            .unwrap_or_default(),
        rules,
        rule,
        action,
        dry_run,
    }
}

/// A memo with `facts` and the request's score so far.
fn memo_at(score: i64, facts: &Facts) -> super::program::Memo<'_> {
    let mut memo = super::program::Memo::new(facts);
    memo.score = score;
    memo
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for rule in &self.rules {
            write!(f, "rule {} (line {}", rule.name, rule.line)?;
            if rule.dry_run {
                f.write_str(", dry-run")?;
            }
            f.write_str("): ")?;
            match rule.outcome {
                RuleOutcome::SkippedState => {
                    let state = if self.protocol_state.is_empty() {
                        "no protocol_state"
                    } else {
                        &self.protocol_state
                    };
                    writeln!(
                        f,
                        "skipped: state {} does not include {state}",
                        rule.states.as_deref().unwrap_or("")
                    )?;
                }
                RuleOutcome::NoMatch => writeln!(f, "no match")?,
                RuleOutcome::DryRunHit => {
                    writeln!(
                        f,
                        "matches, dry run: would answer {} (continues)",
                        rule.action
                    )?;
                }
                RuleOutcome::Decided => writeln!(f, "matches: {}", rule.action)?,
                RuleOutcome::NotReached => writeln!(f, "not reached")?,
                RuleOutcome::WithinLimit => writeln!(f, "within the limit (continues)")?,
                RuleOutcome::PassesGreylist => writeln!(f, "passes greylisting (continues)")?,
                RuleOutcome::Scored { added, total } => {
                    let mut a = [0u8; 24];
                    let mut t = [0u8; 24];
                    writeln!(
                        f,
                        "scored {} (total {}, continues)",
                        String::from_utf8_lossy(crate::base::bytes::score(added, &mut a)),
                        String::from_utf8_lossy(crate::base::bytes::score(total, &mut t))
                    )?;
                }
            }
            for clause in &rule.clauses {
                writeln!(
                    f,
                    "  {} -> {}",
                    clause.source,
                    if clause.unknown {
                        "unknown"
                    } else if clause.holds {
                        "holds"
                    } else {
                        "fails"
                    }
                )?;
                for test in &clause.tests {
                    if test.unknown {
                        writeln!(f, "    {} = unknown", test.source)?;
                    } else {
                        writeln!(f, "    {} = {}", test.source, test.value)?;
                    }
                }
            }
        }
        for (rule, action) in &self.dry_run {
            writeln!(f, "dry-run {rule}: would answer {action}")?;
        }
        write!(f, "action={} rule={}", self.action, self.rule)
    }
}
