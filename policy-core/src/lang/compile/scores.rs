//! Compiling `score` items: their adds (a weight for a condition) and
//! thresholds (an answer above a score).

use super::{to_u32, Compiler};
use crate::action::Action;
use crate::lang::ast::ScoreDecl;
use crate::lang::program::{Rule, RuleSource, ScoreAdd, ScoreItem, FALSE, TRUE};
use crate::template::Verdict;

/// The most `add` lines of one score item.
pub const MAX_SCORE_ADDS: usize = 256;

impl Compiler<'_> {
    /// A `score` item: a rule whose condition says when it runs, whose
    /// adds add to the request's score, and whose thresholds answer.
    pub(super) fn score(&mut self, d: &ScoreDecl) {
        let c = self.clauses(&d.clauses);
        if d.adds.is_empty() {
            self.error(
                d.head,
                format!(
                    "score `{}` has no `add`; expected `add WEIGHT if CONDITION` lines",
                    d.name.text
                ),
            );
            return;
        }
        if d.adds.len() > MAX_SCORE_ADDS {
            self.error(
                d.head,
                format!(
                    "score `{}` has {} adds; expected at most {MAX_SCORE_ADDS}",
                    d.name.text,
                    d.adds.len()
                ),
            );
            return;
        }
        let mut adds = Vec::with_capacity(d.adds.len());
        for add in &d.adds {
            let first = self.program.nodes.len();
            let entry = if add.unless {
                self.emit(&add.cond, FALSE, TRUE)
            } else {
                self.emit(&add.cond, TRUE, FALSE)
            };
            let outside = self.program.nodes[first..]
                .iter()
                .any(|n| n.test.outside().is_some());
            let reason = match &add.reason {
                Some(text) => text.value.clone(),
                None => format!(
                    "{}{}",
                    if add.unless { "not " } else { "" },
                    add.cond.span().text(self.src)
                ),
            };
            if add.weight.hundredths == 0 {
                self.warning(
                    add.weight.span,
                    "a weight of 0 adds nothing; expected a weight such as 1.5 or -2".to_owned(),
                );
            }
            adds.push(ScoreAdd {
                weight: add.weight.hundredths,
                entry,
                outside,
                reason: reason.into_boxed_str(),
            });
        }
        let mut thresholds: Vec<(i64, Verdict)> = Vec::with_capacity(d.thresholds.len());
        let mut ok = true;
        for (limit, action) in &d.thresholds {
            if let Some(&(_, _)) = thresholds.iter().find(|(t, _)| *t == limit.hundredths) {
                self.error(
                    limit.span,
                    format!(
                        "a second `above` at the same score in score `{}`; expected one answer \
                         per threshold",
                        d.name.text
                    ),
                );
                ok = false;
                continue;
            }
            match self.action(action, &[]) {
                Some(verdict) => {
                    self.code_in_text_warning(action.span, &verdict.action);
                    thresholds.push((limit.hundredths, verdict));
                }
                None => ok = false,
            }
        }
        if !ok {
            return;
        }
        // Highest first: the highest threshold the score is above answers.
        thresholds.sort_by_key(|&(t, _)| std::cmp::Reverse(t));
        let action_text = if d.thresholds.is_empty() {
            "(adds to the score)".to_owned()
        } else {
            d.thresholds
                .iter()
                .map(|(limit, action)| {
                    format!(
                        "above {} {}",
                        limit.span.text(self.src),
                        action.span.text(self.src)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let index = to_u32(self.program.scores.len());
        self.program.scores.push(ScoreItem {
            adds: adds.into_boxed_slice(),
            thresholds: thresholds.into_boxed_slice(),
        });
        self.rule_name_spans.push(d.name.span);
        let source = RuleSource {
            states: c.state_text,
            clauses: c.clause_text.into_boxed_slice(),
            action: action_text.into_boxed_str(),
            clause_nodes: c.clause_nodes.into_boxed_slice(),
            line: self.line_of(d.name.span),
        };
        self.program.rules.push(Rule {
            score: Some(index),
            ..Rule::new(
                &d.name.text,
                c.states,
                d.dry_run,
                c.entries.into_boxed_slice(),
                // Unused: a score item answers with its thresholds.
                Verdict::constant(Action::Dunno),
                source,
            )
        });
    }
}
