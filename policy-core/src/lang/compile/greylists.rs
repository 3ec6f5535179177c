//! Compiling `greylist` items: the client part of the triplet, the timers,
//! the whitelist files, the `then` and `prepend` actions, and a fresh table.

use std::fmt::Write as _;

use super::{to_u32, Compiler};
use crate::base::bytes::{fnv1a, FNV_START};
use crate::greylist::rule::{GreylistRule, DEFAULT_GREYLIST_CAPACITY, MAX_GREYLIST_CAPACITY};
use crate::greylist::table::Timers;
use crate::greylist::{ClientWhitelist, RecipientWhitelist};
use crate::lang::ast::{DurationLit, GreylistDecl};
use crate::lang::program::{Field, Rule, RuleSource, RCPT_BIT};
use crate::limits::rule::KeyPart;
use crate::limits::MAX_WINDOW_MS;
use crate::template::{write_duration, Var};

/// postgrey's default delay: 5 minutes.
pub(crate) const DEFAULT_DELAY_MS: u64 = 5 * 60 * 1000;
/// postgrey's default retry window: 2 days.
pub(crate) const DEFAULT_RETRY_WINDOW_MS: u64 = 2 * 86_400_000;
/// postgrey's default maximum age: 35 days.
pub(crate) const DEFAULT_MAX_AGE_MS: u64 = 35 * 86_400_000;
/// postgrey's default auto-whitelist threshold: 5 passes.
pub(crate) const DEFAULT_AUTO_WHITELIST: u32 = 5;
/// The most passes `auto_whitelist` may ask for.
const MAX_AUTO_WHITELIST: u64 = 1_000_000;

/// The `then` action of a greylist without one.
const DEFAULT_THEN_VERB: &str = "DEFER_IF_PERMIT";
/// The text of the default `then` action.
const DEFAULT_THEN_TEXT: &str = "4.7.1 Greylisted, try again in $retry_after seconds";

impl Compiler<'_> {
    pub(super) fn greylist(&mut self, g: &GreylistDecl) {
        let errors_before = self.errors.len() + self.suppressed;
        let c = self.clauses_without_state(
            &g.clauses,
            g.head,
            "a greylist has no `state` clause: it applies at RCPT; expected `if`, `unless`, \
             `client`, `delay`, `retry_window`, `max_age`, `auto_whitelist`, `whitelist`, \
             `capacity`, `on_failure`, `backend`, `then` or `prepend`",
        );
        let client = match &g.client {
            None => Some(KeyPart::Ip {
                field: Field::ClientAddress,
                v4: 24,
                v6: 64,
            }),
            Some(part) => match self.key_part(part) {
                Some(KeyPart::Field(f)) if f == Field::ClientAddress => Some(KeyPart::Field(f)),
                Some(KeyPart::Ip { field, v4, v6 }) if field == Field::ClientAddress => {
                    Some(KeyPart::Ip { field, v4, v6 })
                }
                Some(_) => {
                    self.error(
                        part.span,
                        format!(
                            "`client {}`: the client of a triplet is `client_address`, whole or masked \
                             (`client_address/24/64`)",
                            part.field.text
                        ),
                    );
                    None
                }
                None => None,
            },
        };
        let delay = self.timer(g.delay, DEFAULT_DELAY_MS);
        let retry_window = self.timer(g.retry_window, DEFAULT_RETRY_WINDOW_MS);
        let max_age = self.timer(g.max_age, DEFAULT_MAX_AGE_MS);
        if let (Some(d), Some(r)) = (delay, retry_window) {
            if r < d {
                let span = g.retry_window.map_or(g.head, |t| t.span);
                let (mut rbuf, mut dbuf) = ([0; 24], [0; 24]);
                let found = String::from_utf8_lossy(write_duration(r, &mut rbuf)).into_owned();
                let delay = String::from_utf8_lossy(write_duration(d, &mut dbuf)).into_owned();
                self.error(
                    span,
                    format!(
                        "a retry window shorter than the delay: no retry could ever pass; \
                         expected `retry_window` at least `delay` ({delay}), found {found}"
                    ),
                );
            }
        }
        let auto_whitelist = match g.auto_whitelist {
            None => Some(DEFAULT_AUTO_WHITELIST),
            Some(n) if n.value <= MAX_AUTO_WHITELIST && !n.has_unit => u32::try_from(n.value).ok(),
            Some(n) => {
                self.error(
                    n.span,
                    format!(
                        "a number of passes from 0 (off) to {MAX_AUTO_WHITELIST}; found {}",
                        n.span.text(self.src)
                    ),
                );
                None
            }
        };
        let capacity = match g.capacity {
            None => Some(DEFAULT_GREYLIST_CAPACITY),
            Some(n) => match usize::try_from(n.value) {
                Ok(v) if (1..=MAX_GREYLIST_CAPACITY).contains(&v) && !n.has_unit => Some(v),
                _ => {
                    self.error(
                        n.span,
                        format!(
                            "a capacity from 1 to {MAX_GREYLIST_CAPACITY} triplets; found {}",
                            n.span.text(self.src)
                        ),
                    );
                    None
                }
            },
        };
        let (clients, recipients) = self.whitelists(g);
        let then = match &g.then {
            Some(a) => self.action(a, &[Var::RetryAfter]),
            None => self.written_action(
                DEFAULT_THEN_VERB,
                DEFAULT_THEN_TEXT,
                g.head,
                &[Var::RetryAfter],
            ),
        };
        if let Some(v) = &then {
            if let Some(a) = &g.then {
                self.action_warnings(&g.name.text, g.dry_run, a.span, RCPT_BIT, &v.action, false);
            }
        }
        let prepend = g.prepend.as_ref().map(|header| {
            self.written_action("PREPEND", &header.value, header.span, &[Var::Delay])
        });
        let (
            Some(client),
            Some(delay_ms),
            Some(retry_window_ms),
            Some(max_age_ms),
            Some(auto_whitelist),
            Some(capacity),
            Some(on_failure),
            Some(remote),
            Some(then),
        ) = (
            client,
            delay,
            retry_window,
            max_age,
            auto_whitelist,
            capacity,
            self.on_failure(g.on_failure.as_ref()),
            self.backend(g.backend.as_ref()),
            then,
        )
        else {
            return;
        };
        let prepend = match prepend {
            Some(None) => return,
            Some(Some(v)) => Some(v),
            None => None,
        };
        if self.errors.len() + self.suppressed > errors_before {
            return;
        }
        let timers = Timers {
            delay_ms,
            retry_window_ms,
            max_age_ms,
            auto_whitelist,
        };
        let index = to_u32(self.program.greylists.len());
        self.program.greylists.push(GreylistRule {
            rule: to_u32(self.program.rules.len()),
            signature: signature(&g.name.text, client, timers, capacity, remote),
            client,
            timers,
            capacity,
            clients,
            recipients,
            prepend,
            on_failure,
            remote,
        });
        let then_text = match &g.then {
            Some(a) => a.span.text(self.src).into(),
            None => format!("{DEFAULT_THEN_VERB} \"{DEFAULT_THEN_TEXT}\"").into(),
        };
        self.rule_name_spans.push(g.name.span);
        let source = RuleSource {
            states: None,
            clauses: c.clause_text.into_boxed_slice(),
            action: then_text,
            clause_nodes: c.clause_nodes.into_boxed_slice(),
            line: self.line_of(g.name.span),
        };
        self.program.rules.push(Rule {
            greylist: Some(index),
            ..Rule::new(
                &g.name.text,
                RCPT_BIT,
                g.dry_run,
                c.entries.into_boxed_slice(),
                then,
                source,
            )
        });
    }

    /// A timer's milliseconds (`default` when not written), from 1s to 400d.
    fn timer(&mut self, written: Option<DurationLit>, default: u64) -> Option<u64> {
        let Some(d) = written else {
            return Some(default);
        };
        if d.ms < 1000 || d.ms > MAX_WINDOW_MS {
            self.error(
                d.span,
                format!(
                    "a duration from 1s to {}d; found {}",
                    MAX_WINDOW_MS / 86_400_000,
                    d.span.text(self.src)
                ),
            );
            return None;
        }
        Some(d.ms)
    }

    /// The whitelist files, loaded and parsed (errors reported).
    fn whitelists(&mut self, g: &GreylistDecl) -> (Vec<ClientWhitelist>, Vec<RecipientWhitelist>) {
        let mut clients = Vec::new();
        let mut recipients = Vec::new();
        for w in &g.whitelists {
            let kind = w.kind.text.as_str();
            if kind != "clients" && kind != "recipients" {
                self.error(
                    w.kind.span,
                    format!(
                        "unknown whitelist `{kind}`; expected `clients` or `recipients` \
                         (with a file), or `spf_pass`"
                    ),
                );
                continue;
            }
            let Some(text) = self.load(&w.path) else {
                continue;
            };
            if kind == "clients" {
                match ClientWhitelist::parse(&text) {
                    Ok(list) => clients.push(list),
                    Err(errors) => self.file_errors(&w.path, &text, errors),
                }
            } else {
                match RecipientWhitelist::parse(&text) {
                    Ok(list) => recipients.push(list),
                    Err(errors) => self.file_errors(&w.path, &text, errors),
                }
            }
        }
        (clients, recipients)
    }
}

/// What must stay the same for a greylist's state to carry over: name,
/// client part, timers, auto-whitelist threshold, capacity and backend
/// (written only for `redis`, as for a limit's signature: a switch of
/// backend starts afresh, and a local greylist keeps the signature it had
/// before the language had `backend`).
fn signature(name: &str, client: KeyPart, timers: Timers, capacity: usize, remote: bool) -> u64 {
    let mut d = format!("greylist {name}; client");
    match client {
        KeyPart::Field(f) => {
            let _ = write!(d, " {}", f.name());
        }
        KeyPart::Ip { field, v4, v6 } => {
            let _ = write!(d, " {}/{v4}/{v6}", field.name());
        }
    }
    let _ = write!(
        d,
        "; delay {}; retry_window {}; max_age {}; auto_whitelist {}; capacity {capacity}",
        timers.delay_ms, timers.retry_window_ms, timers.max_age_ms, timers.auto_whitelist
    );
    if remote {
        d.push_str("; backend redis");
    }
    fnv1a(FNV_START, d.as_bytes())
}
