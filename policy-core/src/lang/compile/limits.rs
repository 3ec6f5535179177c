//! Compiling `limit` items: key, count, windows, overrides, the `over`
//! action, and a fresh counter table per limit.

use std::fmt::Write as _;

use super::{to_u32, Compiler};
use crate::base::bytes::{fnv1a, FNV_START};
use crate::keyed::OnFailure;
use crate::lang::ast::{
    ActionAst, Clause, CountAst, KeyPartAst, LimitDecl, Name, OverrideAst, OverridesAst, Span, Str,
    WindowAst,
};
use crate::lang::diag::{Diagnostic, Severity};
use crate::lang::parse::parse_overrides_file;
use crate::lang::program::{Field, Rule, RuleSource, DATA_BIT, END_OF_MESSAGE_BIT, RCPT_BIT};
use crate::lang::suggest::hint;
use crate::limits::rule::{
    mask_ip, CountAt, KeyPart, LimitRule, Overrides, Unit, DEFAULT_LIMIT_CAPACITY, KEY_SEPARATOR,
    MAX_LIMIT_CAPACITY,
};
use crate::limits::{Limit, Window, MAX_WINDOWS, MAX_WINDOW_MS};
use crate::template::{FieldType, Var, Verdict};

/// The variables a limit's `over` actions give a value.
const LIMIT_FACTS: &[Var] = &[
    Var::Limit,
    Var::Window,
    Var::Counted,
    Var::RetryAfter,
    Var::Key,
];

/// The `over` action of a limit without one.
pub(crate) const DEFAULT_OVER_VERB: &str = "DEFER";
/// The text of the default `over` action.
pub(crate) const DEFAULT_OVER_TEXT: &str =
    "4.7.1 Rate limit reached ($limit per $window), try again in $retry_after seconds";

/// The default answer when a request alone is more than a window's maximum
/// (a message bigger than a whole bytes quota, or `max 0`): it can never be
/// admitted, so it is refused for good rather than asked to try again.
pub(crate) const DEFAULT_NEVER_VERB: &str = "REJECT";
/// The text of that answer.
pub(crate) const DEFAULT_NEVER_TEXT: &str =
    "5.7.1 Rate limit: this request alone is more than $limit per $window";

impl Compiler<'_> {
    /// The `if`/`unless` clauses of a limit or greylist, compiled; each
    /// `state` clause is an error (`message`): such items choose their own
    /// states.
    pub(super) fn clauses_without_state(
        &mut self,
        clauses: &[Clause],
        head: Span,
        message: &str,
    ) -> super::Clauses {
        for clause in clauses {
            if let Clause::State(names) = clause {
                let span = names.first().map_or(head, |n| n.span);
                self.error(span, message.to_owned());
            }
        }
        let conditions: Vec<Clause> = clauses
            .iter()
            .filter(|c| !matches!(c, Clause::State(_)))
            .cloned()
            .collect();
        self.clauses(&conditions)
    }

    /// `VERB "TEXT"` compiled as if written at `span`: a default action of
    /// a limit or greylist, or a greylist's `prepend` header.
    pub(super) fn written_action(
        &mut self,
        verb: &str,
        text: &str,
        span: Span,
        allowed: &[Var],
    ) -> Option<Verdict> {
        self.action(
            &ActionAst {
                verb: Name {
                    text: verb.to_owned(),
                    span,
                },
                text: Some(Str {
                    value: text.to_owned(),
                    span,
                }),
                span,
            },
            allowed,
        )
    }

    pub(super) fn limit(&mut self, l: &LimitDecl) {
        let errors_before = self.errors.len() + self.suppressed;
        let c = self.clauses_without_state(
            &l.clauses,
            l.head,
            "a limit has no `state` clause: it checks at RCPT and counts at the state its \
             `count` and `at` give; expected `if`, `unless`, `key`, `count`, `at`, `max`, \
             `overrides`, `capacity`, `on_failure`, `backend` or `over`",
        );
        let key = self.limit_key(l);
        let unit = self.limit_unit(l);
        let at = unit.and_then(|u| self.limit_at(l, u));
        let windows = self.limit_windows(l, unit);
        let capacity = self.limit_capacity(l);
        let on_failure = self.on_failure(l.on_failure.as_ref());
        let remote = self.backend(l.backend.as_ref());
        if let (Some(Unit::Messages), Some(parts)) = (unit, &key) {
            if let Some(part) = l
                .key
                .iter()
                .zip(parts.iter())
                .find(|(_, p)| matches!(p, KeyPart::Field(f) if f.is_recipient_level()))
                .map(|(ast, _)| ast)
            {
                self.error(
                    part.span,
                    format!(
                        "`count messages` counts a message once, but `{}` differs from one recipient \
                         to the next; expected `count recipients` for a key on the recipient",
                        part.field.text
                    ),
                );
            }
        }
        if let (Some(at), true) = (at, l.key.is_empty() || key.is_some()) {
            if at != CountAt::Rcpt {
                let recipient_key = key
                    .iter()
                    .flatten()
                    .any(|p| matches!(p, KeyPart::Field(f) if f.is_recipient_level()));
                if c.recipient_level || recipient_key {
                    let at_span = l.at.as_ref().map_or(l.head, |n| n.span);
                    self.error(
                        at_span,
                        format!(
                            "limit `{}` counts at {}, where a request has no recipient; expected no \
                             recipient, recipient_local or recipient_domain in its conditions and key \
                             (or `at rcpt`)",
                            l.name.text,
                            match at {
                                CountAt::Data => "DATA",
                                _ => "END-OF-MESSAGE",
                            }
                        ),
                    );
                }
            }
        }
        let over = match &l.over {
            Some(a) => self.action(a, LIMIT_FACTS),
            None => self.written_action(DEFAULT_OVER_VERB, DEFAULT_OVER_TEXT, l.head, LIMIT_FACTS),
        };
        let (
            Some(key),
            Some(unit),
            Some(at),
            Some(windows),
            Some(capacity),
            Some(on_failure),
            Some(remote),
            Some(over),
        ) = (key, unit, at, windows, capacity, on_failure, remote, over)
        else {
            return;
        };
        let overrides = self.limit_overrides(l, &key, &windows);
        let never = if l.over.is_none() {
            self.written_action(DEFAULT_NEVER_VERB, DEFAULT_NEVER_TEXT, l.head, LIMIT_FACTS)
        } else {
            None
        };
        if self.errors.len() + self.suppressed > errors_before {
            return;
        }
        let Ok(limit) = Limit::new(&windows) else {
            return;
        };
        // Counters are 32 bits unless some maximum (the rule's or an
        // override's) needs more: the table is built for the largest.
        let largest: Vec<Window> = windows
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let top = overrides
                    .iter()
                    .flat_map(|o| o.by_key.values())
                    .filter_map(|m| m.get(i).copied().flatten())
                    .fold(w.max(), u64::max);
                Window::new(top, w.per_ms()).unwrap_or(*w)
            })
            .collect();
        let wide = largest.iter().any(|w| w.max() > u64::from(u32::MAX));
        let Ok(table_limit) = Limit::new(&largest) else {
            return;
        };
        let signature = signature(
            &l.name.text,
            &key,
            unit,
            at,
            &windows,
            capacity,
            wide,
            remote,
        );
        let states = match at {
            CountAt::Rcpt => RCPT_BIT,
            CountAt::Data => RCPT_BIT | DATA_BIT,
            CountAt::EndOfMessage => RCPT_BIT | END_OF_MESSAGE_BIT,
        };
        let index = to_u32(self.program.limits.len());
        self.program.limits.push(LimitRule {
            rule: to_u32(self.program.rules.len()),
            signature,
            key: key.into_boxed_slice(),
            unit,
            at,
            maxima: windows.iter().map(|w| w.max()).collect(),
            table_limit,
            on_failure,
            remote,
            limit,
            capacity,
            overrides,
            never,
        });
        if let Some(a) = &l.over {
            self.action_warnings(&l.name.text, l.dry_run, a.span, states, &over.action, false);
        }
        let over_text = match &l.over {
            Some(a) => a.span.text(self.src).into(),
            None => format!("{DEFAULT_OVER_VERB} \"{DEFAULT_OVER_TEXT}\"").into(),
        };
        self.rule_name_spans.push(l.name.span);
        let source = RuleSource {
            states: None,
            clauses: c.clause_text.into_boxed_slice(),
            action: over_text,
            clause_nodes: c.clause_nodes.into_boxed_slice(),
            line: self.line_of(l.name.span),
        };
        self.program.rules.push(Rule {
            limit: Some(index),
            ..Rule::new(
                &l.name.text,
                states,
                l.dry_run,
                c.entries.into_boxed_slice(),
                over,
                source,
            )
        });
    }

    fn limit_key(&mut self, l: &LimitDecl) -> Option<Vec<KeyPart>> {
        if l.key.is_empty() {
            self.error(
                l.head,
                format!(
                    "limit `{}` has no key; expected `key FIELD` (e.g. `key sasl_username` or \
                     `key client_address/24/64`)",
                    l.name.text
                ),
            );
            return None;
        }
        let mut parts = Vec::new();
        let mut ok = true;
        for part in &l.key {
            match self.key_part(part) {
                Some(p) => parts.push(p),
                None => ok = false,
            }
        }
        ok.then_some(parts)
    }

    pub(super) fn key_part(&mut self, part: &KeyPartAst) -> Option<KeyPart> {
        let field = self.field(&part.field)?;
        let is_ip = field.field_type() == FieldType::Ip;
        match (is_ip, part.masks.as_slice()) {
            (_, []) => Some(KeyPart::Field(field)),
            (true, [v4, v6]) => {
                let mut ok = true;
                if v4.value > 32 || v4.has_unit {
                    let found = v4.span.text(self.src);
                    self.error(
                        v4.span,
                        format!("an IPv4 prefix length from 0 to 32; found {found}"),
                    );
                    ok = false;
                }
                if v6.value > 128 || v6.has_unit {
                    let found = v6.span.text(self.src);
                    self.error(
                        v6.span,
                        format!("an IPv6 prefix length from 0 to 128; found {found}"),
                    );
                    ok = false;
                }
                let (v4, v6) = (
                    u8::try_from(v4.value).unwrap_or(32),
                    u8::try_from(v6.value).unwrap_or(128),
                );
                // `/32/128` is the whole address: one spelling, one key
                // (and one signature).
                ok.then_some(if (v4, v6) == (32, 128) {
                    KeyPart::Field(field)
                } else {
                    KeyPart::Ip { field, v4, v6 }
                })
            }
            (true, [one]) => {
                self.error(
                    one.span,
                    format!(
                        "give both prefix lengths, IPv4 then IPv6: `{0}/{1}/64` (or `{0}` for whole addresses)",
                        part.field.text, one.value
                    ),
                );
                None
            }
            (true, _) => {
                self.error(
                    part.span,
                    format!(
                        "too many prefix lengths; expected `{}/V4/V6` (e.g. /24/64)",
                        part.field.text
                    ),
                );
                None
            }
            (false, _) => {
                self.error(
                    part.span,
                    format!(
                        "`{}` is not an IP address field; expected prefix lengths only on client_address or server_address",
                        part.field.text
                    ),
                );
                None
            }
        }
    }

    fn limit_unit(&mut self, l: &LimitDecl) -> Option<Unit> {
        match l.count {
            Some((CountAst::Messages, _)) => Some(Unit::Messages),
            Some((CountAst::Recipients, _)) => Some(Unit::Recipients),
            Some((CountAst::Bytes { times_recipients }, _)) => {
                Some(Unit::Bytes { times_recipients })
            }
            Some((CountAst::Distinct(span), _)) => {
                let text = span.text(self.src);
                match Field::lookup_field(text) {
                    Some(field) => Some(Unit::Distinct { field }),
                    None => {
                        self.error(
                            span,
                            format!(
                                "unknown field `{text}` after `count distinct`; expected a request \
                                 field such as helo_name or sender{}",
                                hint(text, Field::field_names())
                            ),
                        );
                        None
                    }
                }
            }
            None => {
                self.error(
                    l.head,
                    format!(
                        "limit `{}` does not say what it counts; expected `count messages`, \
                         `count recipients`, `count bytes` or `count distinct FIELD`",
                        l.name.text
                    ),
                );
                None
            }
        }
    }

    /// `on_failure WORD` of a limit or greylist (the default: `allow`).
    pub(super) fn on_failure(&mut self, word: Option<&Name>) -> Option<OnFailure> {
        const WORDS: [OnFailure; 3] = [OnFailure::Allow, OnFailure::Defer, OnFailure::Skip];
        let Some(name) = word else {
            return Some(OnFailure::default());
        };
        let found = WORDS
            .into_iter()
            .find(|w| name.text.eq_ignore_ascii_case(w.as_str()));
        if found.is_none() {
            self.error(
                name.span,
                format!(
                    "unknown failure outcome `{}`; expected `allow`, `defer` or `skip`{}",
                    name.text,
                    hint(&name.text, WORDS.map(OnFailure::as_str))
                ),
            );
        }
        found
    }

    /// `backend WORD` of a limit or greylist, or the word of a top-level
    /// `backend` statement: whether the state is remote (`redis`) rather
    /// than in the local tables (`local`). Without a word, the policy's
    /// default ([`Compiler::default_remote`], `local` unless a top-level
    /// `backend` says otherwise).
    pub(super) fn backend(&mut self, word: Option<&Name>) -> Option<bool> {
        const WORDS: [(&str, bool); 2] = [("local", false), ("redis", true)];
        let Some(name) = word else {
            return Some(self.default_remote);
        };
        let found = WORDS
            .into_iter()
            .find(|(w, _)| name.text.eq_ignore_ascii_case(w))
            .map(|(_, remote)| remote);
        if found.is_none() {
            self.error(
                name.span,
                format!(
                    "unknown state backend `{}`; expected `local` or `redis`{}",
                    name.text,
                    hint(&name.text, WORDS.map(|(w, _)| w))
                ),
            );
        }
        found
    }

    fn limit_at(&mut self, l: &LimitDecl, unit: Unit) -> Option<CountAt> {
        let at = match &l.at {
            None => {
                return Some(match unit {
                    Unit::Bytes { .. } => CountAt::EndOfMessage,
                    _ => CountAt::Rcpt,
                })
            }
            Some(name) => match name.text.to_ascii_lowercase().as_str() {
                "rcpt" => CountAt::Rcpt,
                "data" => CountAt::Data,
                "end-of-message" => CountAt::EndOfMessage,
                _ => {
                    self.error(
                        name.span,
                        format!(
                            "unknown counting point `{}`; expected `rcpt`, `data` or `end-of-message`",
                            name.text
                        ),
                    );
                    return None;
                }
            },
        };
        if matches!(unit, Unit::Distinct { .. }) && at != CountAt::Rcpt {
            if let Some(name) = &l.at {
                self.error(
                    name.span,
                    "distinct values are counted at RCPT; expected `at rcpt` or no `at`".to_owned(),
                );
            }
            return None;
        }
        if matches!(unit, Unit::Bytes { .. }) && at != CountAt::EndOfMessage {
            if let Some(name) = &l.at {
                self.error(
                    name.span,
                    "bytes are counted at END-OF-MESSAGE, where `size` is exact; expected \
                     `at end-of-message` or no `at`"
                        .to_owned(),
                );
            }
            return None;
        }
        Some(at)
    }

    fn limit_windows(&mut self, l: &LimitDecl, unit: Option<Unit>) -> Option<Vec<Window>> {
        if l.windows.is_empty() {
            self.error(
                l.head,
                format!(
                    "limit `{}` has no maximum; expected `max N per DURATION` (e.g. `max 100 per 1h, 1000 per 1d`)",
                    l.name.text
                ),
            );
            return None;
        }
        if l.windows.len() > MAX_WINDOWS {
            self.error(
                l.windows[MAX_WINDOWS].max.span,
                format!(
                    "too many windows; expected at most {MAX_WINDOWS} in one limit, found {}",
                    l.windows.len()
                ),
            );
            return None;
        }
        let mut out: Vec<Window> = Vec::new();
        let mut ok = true;
        for w in &l.windows {
            match self.window(w, unit) {
                Some(window) => {
                    if out.iter().any(|o| o.per_ms() == window.per_ms()) {
                        self.error(
                            w.per.span,
                            "a second window of the same length; expected each window once"
                                .to_owned(),
                        );
                        ok = false;
                    }
                    out.push(window);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn window(&mut self, w: &WindowAst, unit: Option<Unit>) -> Option<Window> {
        if w.max.has_unit && !matches!(unit, Some(Unit::Bytes { .. })) {
            self.error(
                w.max.span,
                "a size unit on a count of messages or recipients; expected a plain number (size units are for `count bytes`)".to_owned(),
            );
            return None;
        }
        if w.per.ms < 1000 || w.per.ms > MAX_WINDOW_MS {
            self.error(
                w.per.span,
                format!(
                    "a window from 1s to {}d; found {}",
                    MAX_WINDOW_MS / 86_400_000,
                    w.per.span.text(self.src)
                ),
            );
            return None;
        }
        Window::new(w.max.value, w.per.ms).ok()
    }

    fn limit_capacity(&mut self, l: &LimitDecl) -> Option<usize> {
        let Some(n) = l.capacity else {
            return Some(DEFAULT_LIMIT_CAPACITY);
        };
        match usize::try_from(n.value) {
            Ok(v) if (1..=MAX_LIMIT_CAPACITY).contains(&v) && !n.has_unit => Some(v),
            _ => {
                self.error(
                    n.span,
                    format!(
                        "a capacity from 1 to {MAX_LIMIT_CAPACITY} keys; found {}",
                        n.span.text(self.src)
                    ),
                );
                None
            }
        }
    }

    /// The limit's overrides; errors are reported (and make the limit fail
    /// through the error count).
    fn limit_overrides(
        &mut self,
        l: &LimitDecl,
        key: &[KeyPart],
        windows: &[Window],
    ) -> Option<Overrides> {
        let entries: Vec<(OverrideAst, Option<(String, String)>)> = match l.overrides.as_ref()? {
            OverridesAst::Inline(entries) => entries.iter().map(|e| (e.clone(), None)).collect(),
            OverridesAst::File(path) => {
                let text = self.load(path)?;
                let (entries, errors) = parse_overrides_file(&text);
                let file = self.loader.display_name(&path.value);
                if !errors.is_empty() {
                    let index = crate::lang::diag::LineIndex::new(&text);
                    for e in errors {
                        if self.full() {
                            continue;
                        }
                        let d = index.diagnostic(Severity::Error, &file, e.offset, e.message);
                        self.errors.push((path.span.start, d));
                    }
                    return None;
                }
                entries
                    .into_iter()
                    .map(|e| (e, Some((file.clone(), text.clone()))))
                    .collect()
            }
        };
        let mut out = Overrides::default();
        for (entry, in_file) in entries {
            let problem = |c: &mut Self, span: Span, message: String| match &in_file {
                None => c.error(span, message),
                Some((file, text)) => {
                    if c.full() {
                        return;
                    }
                    let index = crate::lang::diag::LineIndex::new(text);
                    let d: Diagnostic =
                        index.diagnostic(Severity::Error, file, span.start, message);
                    let at = match &l.overrides {
                        Some(OverridesAst::File(p)) => p.span.start,
                        _ => 0,
                    };
                    c.errors.push((at, d));
                }
            };
            let Some(text) = normalize_override_key(&entry.key.value, key) else {
                problem(
                    self,
                    entry.key.span,
                    format!(
                        "override key \"{}\" does not fit the limit's key; expected {} part(s) separated by `, ` \
                         (as `$key` shows it{})",
                        entry.key.value,
                        key.len(),
                        if key.iter().any(|p| matches!(p, KeyPart::Ip { .. })) {
                            ", networks as `192.0.2.0/24`"
                        } else {
                            ""
                        }
                    ),
                );
                continue;
            };
            let mut maxima: Vec<Option<u64>> = vec![None; windows.len()];
            for w in &entry.windows {
                if w.max.has_unit && !matches!(l.count, Some((CountAst::Bytes { .. }, _))) {
                    problem(
                        self,
                        w.max.span,
                        "a size unit on a count of messages or recipients; expected a plain number \
                         (size units are for `count bytes`)"
                            .to_owned(),
                    );
                    continue;
                }
                match windows.iter().position(|rw| rw.per_ms() == w.per.ms) {
                    Some(i) if maxima[i].is_some() => problem(
                        self,
                        w.per.span,
                        "a second maximum for the same window in one override; expected each window once"
                            .to_owned(),
                    ),
                    Some(i) => maxima[i] = Some(w.max.value),
                    None => {
                        let mut listed = String::new();
                        for (i, rw) in windows.iter().enumerate() {
                            let mut buf = [0u8; 24];
                            let shown = crate::template::write_duration(rw.per_ms(), &mut buf);
                            let _ = write!(
                                listed,
                                "{}{}",
                                if i > 0 { ", " } else { "" },
                                String::from_utf8_lossy(shown)
                            );
                        }
                        problem(
                            self,
                            w.per.span,
                            format!("an override for a window the limit does not have; expected one of {listed}"),
                        );
                    }
                }
            }
            let text = text.into_bytes().into_boxed_slice();
            if out.by_key.contains_key(&text) {
                problem(
                    self,
                    entry.key.span,
                    format!(
                        "a second override for the key \"{}\"; expected each key once (keys ignore \
                         case where the key's fields do)",
                        entry.key.value
                    ),
                );
                continue;
            }
            out.by_key.insert(text, maxima.into_boxed_slice());
        }
        Some(out)
    }
}

/// The key text an override names, as `$key` would show it: parts split at
/// `, `, lower-cased where the key ignores case, networks in canonical form.
/// `None` if it does not have the key's shape.
fn normalize_override_key(written: &str, key: &[KeyPart]) -> Option<String> {
    let sep = std::str::from_utf8(KEY_SEPARATOR).unwrap_or(", ");
    let parts: Vec<&str> = if key.len() == 1 {
        vec![written]
    } else {
        written.split(sep).collect()
    };
    if parts.len() != key.len() {
        return None;
    }
    let mut out = String::new();
    for (i, (text, part)) in parts.iter().zip(key).enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        match *part {
            KeyPart::Field(field) => match field.field_type() {
                FieldType::Address | FieldType::Domain | FieldType::TextNoCase => {
                    out.push_str(&text.to_ascii_lowercase());
                }
                FieldType::Ip => {
                    let ip: std::net::IpAddr = text.parse().ok()?;
                    let ip = mask_ip(ip, 32, 128);
                    let _ = write!(out, "{ip}");
                }
                _ => out.push_str(text),
            },
            KeyPart::Ip { v4, v6, .. } => {
                let (addr, bits) = match text.split_once('/') {
                    Some((a, b)) => (a, Some(b.parse::<u8>().ok()?)),
                    None => (text, None),
                };
                let ip: std::net::IpAddr = addr.parse().ok()?;
                let masked = mask_ip(ip, v4, v6);
                let want = if masked.is_ipv4() { v4 } else { v6 };
                if bits.is_some_and(|b| b != want) {
                    return None;
                }
                let _ = write!(out, "{masked}/{want}");
            }
        }
    }
    Some(out)
}

/// What must stay the same for counters to carry over: name, key, unit,
/// counting point, window lengths, capacity, whether counters must be 64
/// bits (a maximum above `u32::MAX`), and the backend (FNV-1a of a
/// canonical description, stable across builds).
///
/// The backend is part of it so that a reload moving a limit to `backend
/// redis` does not keep its local table as if it were the limit's state
/// (the counters are in Redis now), and moving it back starts afresh
/// rather than reviving counters from before the move. It is written only
/// for `redis`, so that a local limit's signature is the one it had before
/// the language had `backend` (state files written then still restore).
#[allow(clippy::too_many_arguments)]
fn signature(
    name: &str,
    key: &[KeyPart],
    unit: Unit,
    at: CountAt,
    windows: &[Window],
    capacity: usize,
    wide: bool,
    remote: bool,
) -> u64 {
    let mut d = format!("limit {name}; key");
    for part in key {
        match *part {
            KeyPart::Field(f) => {
                let _ = write!(d, " {}", f.name());
            }
            KeyPart::Ip { field, v4, v6 } => {
                let _ = write!(d, " {}/{v4}/{v6}", field.name());
            }
        }
    }
    let _ = write!(d, "; count {unit:?}; at {at:?}; windows");
    for w in windows {
        let _ = write!(d, " {}", w.per_ms());
    }
    let _ = write!(d, "; capacity {capacity}");
    if wide {
        d.push_str("; 64-bit counters");
    }
    if remote {
        d.push_str("; backend redis");
    }
    fnv1a(FNV_START, d.as_bytes())
}
