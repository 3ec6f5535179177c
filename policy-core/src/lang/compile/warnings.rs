//! Warnings: what compiles but probably does not do what its author meant.

use super::Compiler;
use crate::action::{reply_code, Action};
use crate::lang::ast::{RuleDecl, Span};
use crate::lang::program::{END_OF_MESSAGE_BIT, RCPT_BIT};

impl Compiler<'_> {
    /// The warnings about one rule and its action: OK at RCPT, PREPEND at
    /// END-OF-MESSAGE, a whole-message action on a recipient condition.
    pub(super) fn rule_warnings(
        &mut self,
        r: &RuleDecl,
        states: u16,
        action: &Action,
        recipient_level: bool,
    ) {
        self.action_warnings(
            &r.name.text,
            r.dry_run,
            r.action.span,
            states,
            action,
            recipient_level,
        );
    }

    /// The warnings about the action of rule (or limit) `name` at `span`.
    pub(super) fn action_warnings(
        &mut self,
        name: &str,
        dry_run: bool,
        span: Span,
        states: u16,
        action: &Action,
        recipient_level: bool,
    ) {
        if !dry_run && matches!(action, Action::Ok) && (states == 0 || states & RCPT_BIT != 0) {
            self.warning(span, ok_at_rcpt_message(&format!("rule `{name}`")));
        }
        if states & END_OF_MESSAGE_BIT != 0 && matches!(action, Action::Prepend(_)) {
            self.warning(
                span,
                format!(
                    "PREPEND is not allowed at END-OF-MESSAGE, and rule `{name}` applies in that state; \
                     expected PREPEND at an earlier state (RCPT or DATA)"
                ),
            );
        }
        self.code_in_text_warning(span, action);
        if recipient_level && is_whole_message(action) {
            self.warning(
                span,
                format!(
                    "{} acts on the whole message (every recipient of it), but rule `{name}` tests the recipient; \
                     expected a condition on message-level fields (sender, client, ...) for this action",
                    action.verb()
                ),
            );
        }
    }

    /// A warning for `REJECT "550 5.7.1 ..."` (a reply code of the verb's
    /// class at the start of its text; another class is an error): Postfix
    /// sends the verb's own code, and the enhanced code after the number is
    /// text too.
    pub(super) fn code_in_text_warning(&mut self, span: Span, action: &Action) {
        let (Action::Reject(reply)
        | Action::Defer(reply)
        | Action::DeferIfReject(reply)
        | Action::DeferIfPermit(reply)) = action
        else {
            return;
        };
        let Some(text) = reply.text.as_ref().filter(|_| reply.enhanced.is_none()) else {
            return;
        };
        let (first, rest) = text.as_str().split_once(' ').unwrap_or((text.as_str(), ""));
        if let Some(code) = reply_code(first.as_bytes()) {
            let verb = action.verb();
            let rest = if rest.is_empty() { "TEXT" } else { rest };
            self.warning(
                span,
                format!(
                    "{verb}'s text starts with reply code {code}, which Postfix sends as text \
                     after its own code for {verb} (and any enhanced status code after it as \
                     text too); expected the code as the action to answer {code}: \
                     then {code} \"{rest}\""
                ),
            );
        }
    }

    /// Lists and logins maps declared but never used.
    pub(super) fn unused(&mut self) {
        let mut unused: Vec<(Span, String)> = Vec::new();
        for d in self.lists.values().filter(|d| !d.used) {
            unused.push((
                d.name.span,
                format!("list `{}` is declared but never used", d.name.text),
            ));
        }
        for d in self.dns_lists.values().filter(|d| !d.used) {
            unused.push((
                d.name.span,
                format!("DNS list `{}` is declared but never used", d.name.text),
            ));
        }
        for d in self.logins.values().filter(|d| !d.used) {
            unused.push((
                d.name.span,
                format!("logins map `{}` is declared but never used", d.name.text),
            ));
        }
        for (span, message) in unused {
            self.warning(span, message);
        }
    }

    /// Rules after a non-dry-run rule without conditions whose states (none:
    /// all) cover theirs: they can never apply.
    pub(super) fn unreachable(&mut self) {
        let mut always: Vec<(usize, u16)> = Vec::new();
        let mut found = Vec::new();
        for (index, rule) in self.program.rules.iter().enumerate() {
            let covered = always.iter().find(|(_, states)| {
                *states == 0 || (rule.states != 0 && rule.states & !states == 0)
            });
            if let Some(&(by, _)) = covered {
                found.push((index, by));
            } else if !rule.dry_run
                && rule.limit.is_none()
                && rule.greylist.is_none()
                && rule.score.is_none()
                && rule.clauses.is_empty()
            {
                always.push((index, rule.states));
            }
        }
        for (index, by) in found {
            let (Some(rule), Some(by_rule), Some(&span)) = (
                self.program.rules.get(index),
                self.program.rules.get(by),
                self.rule_name_spans.get(index),
            ) else {
                continue;
            };
            let message = format!(
                "rule `{}` can never apply: rule `{}` (line {}) always applies before it in its states; \
                 expected it before `{1}`, or a condition on `{1}`",
                rule.name, by_rule.name, by_rule.source.line
            );
            self.warning(span, message);
        }
    }
}

/// The open-relay warning for `what` (a rule, or the default).
pub(super) fn ok_at_rcpt_message(what: &str) -> String {
    format!(
        "{what} can answer OK at RCPT state: if check_policy_service runs before reject_unauth_destination, \
         this makes an open relay; expected the policy service after reject_unauth_destination, or `state` \
         restricting the rule to other states"
    )
}

/// Whether the action acts on the whole message rather than one recipient.
fn is_whole_message(action: &Action) -> bool {
    matches!(
        action,
        Action::Hold(_)
            | Action::Discard(_)
            | Action::Filter(_)
            | Action::Redirect(_)
            | Action::Bcc(_)
    )
}
