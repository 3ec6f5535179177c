//! The compiler: syntax tree to [`Program`], with name resolution, type
//! checking, action validation, list loading and warnings. Collects every
//! error instead of stopping at the first.

use std::collections::HashMap;

use super::ast::{
    ActionAst, Clause, CmpOp, Cond, Entry, Item, ListBody, ListDecl, ListRef, LoginsBody,
    LoginsDecl, Name, RuleDecl, Span, Str, StrOp, TestKind, Value,
};
use super::diag::{CompileErrors, Diagnostic, LineIndex, Severity, MAX_COLUMN_SCAN};
use super::parse::{parse_policy, MAX_POLICY_BYTES};
use super::program::{
    Field, Node, NodeSource, NumOp, Predicate, Program, Rule, RuleSource, Test, TextOp, FALSE,
    MEMO_SLOTS, NO_MEMO, STATE_NAMES, TRUE,
};
use super::source::SourceLoader;
use super::suggest;
use warnings::ok_at_rcpt_message;

mod dns;
mod scores;
pub use dns::MAX_DNS_LIST_ANSWERS;
pub use scores::MAX_SCORE_ADDS;
mod greylists;
mod limits;
mod warnings;
use crate::action::Action;
use crate::action::ActionError;
use crate::list::{
    EntryToken, ListBuilder, ListKind, LoginMap, LoginMapBuilder, LoginPart, Lookup,
};
use crate::template::{ActionTemplate, ActionTemplateError, FieldType, Template, Var, Verdict};

/// The compiled size limit of one regular expression in a condition (bytes
/// of the regex crate's program). Bounds compile time and memory for a
/// pathological pattern (`(a{1000}){1000}`); real patterns use a few KiB.
pub const MAX_REGEX_COMPILED_BYTES: usize = 1 << 20;

/// The most errors one compilation reports (the count of the rest is given
/// in a last diagnostic). A file with more is not a policy with typos but a
/// wrong file, and each diagnostic holds a copy of its line: this bounds the
/// memory and output of compiling anything.
pub const MAX_ERRORS: usize = 200;

/// Compile `source` (the text of `file`) into a program, or every error.
pub(crate) fn compile(
    file: &str,
    source: &str,
    loader: &mut dyn SourceLoader,
) -> Result<(Program, Vec<Diagnostic>), CompileErrors> {
    let mut c = Compiler {
        file,
        src: source,
        lines: LineIndex::new(source),
        loader,
        suppressed: 0,
        suppressed_warnings: 0,
        rule_name_spans: Vec::new(),
        regex_cache: HashMap::new(),
        glob_cache: HashMap::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
        program: Program::always(Action::Dunno),
        lists: HashMap::new(),
        logins: HashMap::new(),
        dns_lists: HashMap::new(),
        default_remote: false,
    };
    if source.len() > MAX_POLICY_BYTES {
        c.errors.push((
            0,
            Diagnostic::whole_file(
                Severity::Error,
                file,
                format!(
                    "the policy is {} bytes; expected at most {MAX_POLICY_BYTES} (put large lists in list files)",
                    source.len()
                ),
            ),
        ));
        return Err(c.finish_errors());
    }
    let (items, syntax) = parse_policy(source);
    for e in syntax {
        c.error(Span::new(e.offset, e.offset), e.message);
    }
    c.run(&items);
    if c.errors.is_empty() {
        let Compiler {
            program,
            warnings,
            suppressed_warnings,
            file,
            ..
        } = c;
        Ok((
            program,
            Compiler::sorted_warnings(warnings, suppressed_warnings, file),
        ))
    } else {
        Err(c.finish_errors())
    }
}

/// A declared list or map: where, and what it compiled to (`None` after an
/// error, so that its uses do not add follow-on errors).
struct Declared {
    name: Name,
    index: Option<u32>,
    used: bool,
}

struct Compiler<'c> {
    file: &'c str,
    src: &'c str,
    lines: LineIndex<'c>,
    loader: &'c mut dyn SourceLoader,
    /// Errors found beyond [`MAX_ERRORS`].
    suppressed: usize,
    /// The name of each rule of `program.rules`, in the policy.
    rule_name_spans: Vec<Span>,
    /// Regexes compiled so far: (pattern, `i` flag) -> index.
    regex_cache: HashMap<(String, bool), u32>,
    /// `like` globs compiled so far: glob -> list index.
    glob_cache: HashMap<String, u32>,
    /// Warnings found beyond [`MAX_ERRORS`].
    suppressed_warnings: usize,
    /// (sort key: byte offset in the policy, diagnostic)
    errors: Vec<(usize, Diagnostic)>,
    warnings: Vec<(usize, Diagnostic)>,
    program: Program,
    lists: HashMap<String, Declared>,
    logins: HashMap<String, Declared>,
    /// `dnsbl` and `rhsbl` lists, by name.
    dns_lists: HashMap<String, Declared>,
    /// Whether limits and greylists without a `backend` clause keep their
    /// state remotely: the top-level `backend redis` (`false`, `local`,
    /// without one).
    default_remote: bool,
}

/// A rule's compiled `state`, `if` and `unless` clauses.
#[derive(Default)]
struct Clauses {
    /// States the rule applies in; 0 = every state.
    states: u16,
    /// The `state` clauses as written.
    state_text: Option<Box<str>>,
    /// The entry node of each `if`/`unless` clause.
    entries: Vec<u32>,
    clause_text: Vec<Box<str>>,
    clause_nodes: Vec<(u32, u32)>,
    /// Whether a test reads the recipient.
    recipient_level: bool,
}

/// A test as compiled, before it gets jump targets: the test, and whether
/// its result is inverted (`!=`, `is empty`).
type CompiledTest = (Test, bool);

impl Compiler<'_> {
    fn error(&mut self, span: Span, message: String) {
        if self.full() {
            return;
        }
        let d = self
            .lines
            .diagnostic(Severity::Error, self.file, span.start, message);
        self.errors.push((span.start, d));
    }

    fn warning(&mut self, span: Span, message: String) {
        if self.warnings.len() >= MAX_ERRORS {
            self.suppressed_warnings += 1;
            return;
        }
        let d = self
            .lines
            .diagnostic(Severity::Warning, self.file, span.start, message);
        self.warnings.push((span.start, d));
    }

    /// Whether [`MAX_ERRORS`] errors are recorded; counts the error not recorded.
    fn full(&mut self) -> bool {
        if self.errors.len() < MAX_ERRORS {
            return false;
        }
        self.suppressed += 1;
        true
    }

    /// Record an error located in a list or logins file.
    fn file_errors(&mut self, path: &Str, text: &str, errors: Vec<crate::list::FileEntryError>) {
        let lines: Vec<&str> = text.split('\n').collect();
        let file = self.loader.display_name(&path.value);
        for e in errors {
            if self.full() {
                continue;
            }
            let line = lines
                .get(e.line.saturating_sub(1) as usize)
                .copied()
                .unwrap_or("");
            let line = match line.char_indices().nth(MAX_COLUMN_SCAN) {
                Some((cut, _)) => &line[..cut],
                None => line,
            };
            self.errors.push((
                path.span.start,
                Diagnostic {
                    severity: Severity::Error,
                    file: file.clone(),
                    line: e.line,
                    column: e.column,
                    message: e.error.to_string(),
                    source_line: line.trim_end_matches('\r').to_owned(),
                },
            ));
        }
    }

    /// The warnings in file order, with a last one counting those not kept.
    fn sorted_warnings(
        warnings: Vec<(usize, Diagnostic)>,
        suppressed: usize,
        file: &str,
    ) -> Vec<Diagnostic> {
        let mut warnings = warnings;
        warnings.sort_by_key(|(k, _)| *k);
        let mut out: Vec<Diagnostic> = warnings.into_iter().map(|(_, d)| d).collect();
        if suppressed > 0 {
            out.push(Diagnostic::whole_file(
                Severity::Warning,
                file,
                format!("{suppressed} more warnings not shown (at most {MAX_ERRORS} are reported)"),
            ));
        }
        out
    }

    fn finish_errors(self) -> CompileErrors {
        let mut errors = self.errors;
        if self.suppressed > 0 {
            errors.push((
                usize::MAX,
                Diagnostic::whole_file(
                    Severity::Error,
                    self.file,
                    format!(
                        "{} more errors not shown (at most {MAX_ERRORS} are reported)",
                        self.suppressed
                    ),
                ),
            ));
        }
        errors.sort_by_key(|(k, _)| *k);
        CompileErrors {
            errors: errors.into_iter().map(|(_, d)| d).collect(),
            warnings: Self::sorted_warnings(self.warnings, self.suppressed_warnings, self.file),
        }
    }

    fn line_of(&self, span: Span) -> u32 {
        self.lines.line(span.start)
    }

    fn run(&mut self, items: &[Item]) {
        // Declarations first: lists and maps may be used before they are
        // declared, and the top-level `backend` applies to the limits and
        // greylists before it too.
        let mut backend: Option<Span> = None;
        for item in items {
            match item {
                Item::List(l) => self.declare_list(l),
                Item::Logins(m) => self.declare_logins(m),
                Item::DnsList(d) => self.declare_dns_list(d),
                Item::Backend(word, kw) => {
                    if let Some(first) = backend {
                        let line = self.line_of(first);
                        self.error(
                            *kw,
                            format!(
                                "a second top-level `backend`; expected at most one (the first is \
                                 on line {line}; an item may say its own with a `backend` clause)"
                            ),
                        );
                    } else {
                        backend = Some(*kw);
                        if let Some(remote) = self.backend(Some(word)) {
                            self.default_remote = remote;
                        }
                    }
                }
                _ => {}
            }
        }
        let mut rule_names: HashMap<&str, Span> = HashMap::new();
        let mut default: Option<Span> = None;
        for item in items {
            match item {
                Item::Rule(r) => {
                    self.rule_name(&mut rule_names, &r.name);
                    self.rule(r);
                }
                Item::Limit(l) => {
                    self.rule_name(&mut rule_names, &l.name);
                    self.limit(l);
                }
                Item::Greylist(g) => {
                    self.rule_name(&mut rule_names, &g.name);
                    self.greylist(g);
                }
                Item::Score(d) => {
                    self.rule_name(&mut rule_names, &d.name);
                    self.score(d);
                }
                Item::Default(action, kw) => {
                    if let Some(first) = default {
                        let line = self.line_of(first);
                        self.error(
                            *kw,
                            format!("a second `default`; expected at most one (the first is on line {line})"),
                        );
                    } else {
                        default = Some(*kw);
                        if let Some(v) = self.action(action, &[]) {
                            if matches!(v.action, Action::Ok) {
                                self.warning(action.span, ok_at_rcpt_message("the default"));
                            }
                            self.code_in_text_warning(action.span, &v.action);
                            self.program.default = v;
                        }
                    }
                }
                Item::List(_) | Item::Logins(_) | Item::DnsList(_) | Item::Backend(..) => {}
            }
        }
        self.unused();
        self.unreachable();
        self.assign_memo_slots();
        self.program.pack();
    }

    /// Check a rule's or limit's name: unique, not `default`.
    fn rule_name<'n>(&mut self, names: &mut HashMap<&'n str, Span>, name: &'n Name) {
        if let Some(first) = names.get(name.text.as_str()) {
            let line = self.line_of(*first);
            self.error(
                name.span,
                format!(
                    "duplicate rule name `{}`; expected a name not used before (first used on line {line})",
                    name.text
                ),
            );
        } else if name.text == "default" {
            self.error(
                name.span,
                "a rule may not be named `default`; expected another name (`default` names the default action in logs)".to_owned(),
            );
        } else {
            names.insert(&name.text, name.span);
        }
    }

    /// Give a memo slot to each expensive test that occurs more than once
    /// (a list used by several rules), the most frequent first, up to
    /// [`MEMO_SLOTS`].
    fn assign_memo_slots(&mut self) {
        let mut counts: HashMap<Test, usize> = HashMap::new();
        for node in &self.program.nodes {
            if node.test.is_expensive() {
                *counts.entry(node.test).or_default() += 1;
            }
        }
        let mut shared: Vec<(Test, usize)> = counts.into_iter().filter(|&(_, n)| n > 1).collect();
        shared.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
        let slots: HashMap<Test, u8> = shared
            .into_iter()
            .take(MEMO_SLOTS)
            .enumerate()
            .map(|(slot, (test, _))| (test, u8::try_from(slot).unwrap_or(NO_MEMO)))
            .collect();
        for node in &mut self.program.nodes {
            if let Some(&slot) = slots.get(&node.test) {
                node.memo = slot;
            }
        }
    }

    // ----- lists and maps -------------------------------------------------

    fn declare_list(&mut self, decl: &ListDecl) {
        if let Some(first) = self.lists.get(&decl.name.text) {
            let line = self.line_of(first.name.span);
            self.error(
                decl.name.span,
                format!(
                    "duplicate list `{}`; expected a name not used by another list (first declared on line {line})",
                    decl.name.text
                ),
            );
            return;
        }
        let kind = match &decl.kind {
            None => None,
            Some(k) => match ListKind::from_keyword(&k.text) {
                Some(kind) => Some(kind),
                None => {
                    self.error(
                        k.span,
                        format!(
                            "unknown list kind `{}`; expected cidr, domain, address, string, glob or \
                             regex{}",
                            k.text,
                            suggest::hint(&k.text, ListKind::ALL.map(ListKind::keyword))
                        ),
                    );
                    // Still declare it, so that its uses are not reported too.
                    self.lists.insert(
                        decl.name.text.clone(),
                        Declared {
                            name: decl.name.clone(),
                            index: None,
                            used: false,
                        },
                    );
                    return;
                }
            },
        };
        let index = match &decl.body {
            ListBody::Inline(entries) => self.inline_list(kind, entries),
            ListBody::File(path) => self.file_list(kind, path),
        };
        self.lists.insert(
            decl.name.text.clone(),
            Declared {
                name: decl.name.clone(),
                index,
                used: false,
            },
        );
    }

    /// Build a list from entries written in the policy.
    fn inline_list(&mut self, kind: Option<ListKind>, entries: &[Entry]) -> Option<u32> {
        let mut builder = ListBuilder::new(kind);
        let mut ok = true;
        for entry in entries {
            let token = match entry {
                Entry::Word(s) => EntryToken::Bare(&s.value),
                Entry::Quoted(s) => EntryToken::Quoted(&s.value),
                Entry::Regex(r) => EntryToken::Regex {
                    pattern: &r.pattern,
                    case_insensitive: r.case_insensitive,
                },
            };
            if let Err(e) = builder.add(token) {
                ok = false;
                self.error(entry.span(), format!("{e}"));
            }
        }
        if !ok {
            return None;
        }
        self.push_list(
            builder,
            entries.first().map(Entry::span).unwrap_or_default(),
        )
    }

    /// Build a list from a list file.
    fn file_list(&mut self, kind: Option<ListKind>, path: &Str) -> Option<u32> {
        let text = self.load(path)?;
        let mut builder = ListBuilder::new(kind);
        if let Err(errors) = builder.add_file_text(&text) {
            self.file_errors(path, &text, errors);
            return None;
        }
        self.push_list(builder, path.span)
    }

    fn push_list(&mut self, builder: ListBuilder, span: Span) -> Option<u32> {
        match builder.build() {
            Ok(list) => {
                self.program.lists.push(list);
                u32::try_from(self.program.lists.len() - 1).ok()
            }
            Err(e) => {
                self.error(span, e.to_string());
                None
            }
        }
    }

    /// Load a file through the loader; an error at the path otherwise.
    fn load(&mut self, path: &Str) -> Option<String> {
        match self.loader.load(&path.value) {
            Ok(text) => Some(text),
            Err(reason) => {
                self.error(
                    path.span,
                    format!(
                        "cannot read file \"{}\": {reason}; expected a readable file",
                        path.value
                    ),
                );
                None
            }
        }
    }

    fn declare_logins(&mut self, decl: &LoginsDecl) {
        if let Some(first) = self.logins.get(&decl.name.text) {
            let line = self.line_of(first.name.span);
            self.error(
                decl.name.span,
                format!(
                    "duplicate logins map `{}`; expected a name not used by another map (first declared on line {line})",
                    decl.name.text
                ),
            );
            return;
        }
        let map = match &decl.body {
            LoginsBody::File(path) => {
                self.load(path)
                    .and_then(|text| match LoginMap::parse(&text) {
                        Ok(map) => Some(map),
                        Err(errors) => {
                            self.file_errors(path, &text, errors);
                            None
                        }
                    })
            }
            LoginsBody::Inline(pairs) => {
                let mut builder = LoginMapBuilder::new();
                let mut ok = true;
                for (sender, logins) in pairs {
                    if let Err(e) = builder.insert(&sender.value, &logins.value) {
                        ok = false;
                        let span = match e.part {
                            LoginPart::Logins => logins.span,
                            _ => sender.span,
                        };
                        self.error(span, e.to_string());
                    }
                }
                ok.then(|| builder.build())
            }
        };
        let index = map.and_then(|m| {
            self.program.logins.push(m);
            u32::try_from(self.program.logins.len() - 1).ok()
        });
        self.logins.insert(
            decl.name.text.clone(),
            Declared {
                name: decl.name.clone(),
                index,
                used: false,
            },
        );
    }

    /// The list a condition names or writes in place: its index and kinds,
    /// or `None` after an error (reported here unless already reported).
    ///
    /// An inline list takes `hint` as its kind when none of its entries is a
    /// regex or glob: `sasl_username in { "joe" }` means the string `joe`, not
    /// a domain.
    fn list_ref(&mut self, list: &ListRef, field: Option<Field>) -> Option<(u32, Span)> {
        let hint = match (list, field.map(Field::field_type)) {
            (
                ListRef::Inline(entries, _),
                Some(
                    FieldType::Text | FieldType::TextNoCase | FieldType::Number | FieldType::State,
                ),
            ) if entries.iter().all(|e| match e {
                Entry::Word(s) | Entry::Quoted(s) => !s.value.contains(['*', '?', '[']),
                Entry::Regex(_) => false,
            }) =>
            {
                Some(ListKind::String)
            }
            _ => None,
        };
        match list {
            ListRef::Named(name) => match self.lists.get_mut(&name.text) {
                Some(d) => {
                    d.used = true;
                    d.index.map(|i| (i, name.span))
                }
                None => {
                    let hint = suggest::hint(&name.text, sorted_names(&self.lists));
                    self.error(
                        name.span,
                        format!(
                            "unknown list `{}`; expected a list declared with `list`{hint}",
                            name.text
                        ),
                    );
                    None
                }
            },
            ListRef::Inline(entries, span) => self.inline_list(hint, entries).map(|i| (i, *span)),
        }
    }

    // ----- rules ---------------------------------------------------------

    /// Compile a rule's `state`, `if` and `unless` clauses.
    fn clauses(&mut self, clauses: &[Clause]) -> Clauses {
        let mut c = Clauses::default();
        for clause in clauses {
            match clause {
                Clause::State(names) => {
                    for n in names {
                        match STATE_NAMES.iter().find(|(s, _)| *s == n.text) {
                            Some((_, bit)) => c.states |= bit,
                            None => self.error(n.span, unknown_state(&n.text)),
                        }
                    }
                    if let (Some(first), Some(last)) = (names.first(), names.last()) {
                        let text = first.span.to(last.span).text(self.src);
                        c.state_text = Some(match c.state_text.take() {
                            Some(prev) => format!("{prev}, {text}").into(),
                            None => text.into(),
                        });
                    }
                }
                Clause::If(cond) | Clause::Unless(cond) => {
                    let unless = matches!(clause, Clause::Unless(_));
                    let first = self.program.nodes.len();
                    let entry = if unless {
                        self.emit(cond, FALSE, TRUE)
                    } else {
                        self.emit(cond, TRUE, FALSE)
                    };
                    let end = self.program.nodes.len();
                    c.recipient_level |= self.program.nodes[first..end]
                        .iter()
                        .any(|n| n.test.is_recipient_level());
                    c.entries.push(entry);
                    c.clause_nodes.push((to_u32(first), to_u32(end)));
                    c.clause_text.push(
                        format!(
                            "{} {}",
                            if unless { "unless" } else { "if" },
                            cond.span().text(self.src)
                        )
                        .into_boxed_str(),
                    );
                }
            }
        }
        c
    }

    fn rule(&mut self, r: &RuleDecl) {
        let first_node = self.program.nodes.len();
        let c = self.clauses(&r.clauses);
        let on_unknown = match &r.on_unknown {
            Some(a) => {
                let outside = self.program.nodes[first_node..]
                    .iter()
                    .any(|n| n.test.outside().is_some());
                if !outside {
                    self.warning(
                        a.span,
                        format!(
                            "rule `{}` tests no outside fact (DNS), so its condition is never \
                             unknown and `on_unknown` never answers",
                            r.name.text
                        ),
                    );
                }
                let Some(verdict) = self.action(a, &[]) else {
                    return;
                };
                Some(verdict)
            }
            None => None,
        };
        let Some(verdict) = self.action(&r.action, &[]) else {
            return;
        };
        self.rule_warnings(r, c.states, &verdict.action, c.recipient_level);
        self.rule_name_spans.push(r.name.span);
        let source = RuleSource {
            states: c.state_text,
            clauses: c.clause_text.into_boxed_slice(),
            action: r.action.span.text(self.src).into(),
            clause_nodes: c.clause_nodes.into_boxed_slice(),
            line: self.line_of(r.name.span),
        };
        self.program.rules.push(Rule {
            on_unknown,
            ..Rule::new(
                &r.name.text,
                c.states,
                r.dry_run,
                c.entries.into_boxed_slice(),
                verdict,
                source,
            )
        });
    }

    /// An error, and `false`, if the action's text uses a variable of a
    /// stateful rule (`$limit`, `$retry_after`, `$delay`, ...) that is not in
    /// `allowed` (the ones this action gives a value). Checked before the
    /// action itself, whose samples would make other errors of it.
    fn facts_only(&mut self, a: &ActionAst, allowed: &[Var]) -> bool {
        let Some(text) = &a.text else {
            return true;
        };
        // A text that is no template: the action's own error says why.
        let Ok(t) = Template::parse(&text.value) else {
            return true;
        };
        // The first such variable (one error per action).
        if let Some(var) = t.variables().find(|v| v.is_fact() && !allowed.contains(v)) {
            let valid = match var {
                Var::RetryAfter => "a limit's `over` action or a greylist's `then` action",
                Var::Delay => "a greylist's `prepend` header",
                _ => "a limit's `over` action",
            };
            self.error(
                text.span,
                format!(
                    "`${var}` has a value only in {valid}; expected a request variable \
                     ($sender, $client_address, $rule, ...)"
                ),
            );
            return false;
        }
        true
    }

    /// Emit `cond` as nodes jumping to `t` when it holds and `f` when not;
    /// returns its entry. Children are emitted before their parents' tests
    /// that jump to them, so every jump goes to a smaller index.
    fn emit(&mut self, cond: &Cond, t: u32, f: u32) -> u32 {
        match cond {
            Cond::Or(items, _) => {
                let mut next = f;
                for item in items.iter().rev() {
                    next = self.emit(item, t, next);
                }
                next
            }
            Cond::And(items, _) => {
                let mut next = t;
                for item in items.iter().rev() {
                    next = self.emit(item, next, f);
                }
                next
            }
            Cond::Not(inner, _) => self.emit(inner, f, t),
            Cond::Test(kind, span) => match self.test(kind) {
                Some((test, negated)) => {
                    let (on_true, on_false) = if negated { (f, t) } else { (t, f) };
                    self.program.nodes.push(Node {
                        test,
                        on_true,
                        on_false,
                        memo: NO_MEMO,
                    });
                    self.program.node_source.push(NodeSource {
                        text: span.text(self.src).into(),
                        negated,
                        start: to_u32(span.start),
                    });
                    to_u32(self.program.nodes.len() - 1)
                }
                // An error was reported; the program is not used.
                None => t,
            },
        }
    }

    fn field(&mut self, name: &Name) -> Option<Field> {
        let field = Field::lookup_field(&name.text);
        if field.is_none() {
            self.error(
                name.span,
                format!(
                    "unknown field `{}`; expected a request attribute (sender, recipient, client_address, \
                     helo_name, sasl_username, size, ...) or sender_local, sender_domain, recipient_local, \
                     recipient_domain{}",
                    name.text,
                    suggest::hint(&name.text, Field::field_names())
                ),
            );
        }
        field
    }

    /// A field for a text operator (`starts_with`, `ends_with`, `contains`,
    /// `matches`, `like`): any but the numeric ones, which compare as numbers.
    fn text_field(&mut self, name: &Name) -> Option<Field> {
        let f = self.field(name)?;
        if f.field_type() == FieldType::Number {
            self.error(
                name.span,
                format!(
                    "type mismatch: `{}` is a number; expected a text field before a text operator \
                     (use ==, !=, <, <=, >, >=, `in` or `is empty`/`is set` on numbers)",
                    name.text
                ),
            );
            return None;
        }
        Some(f)
    }

    /// Compile one test, checking its types.
    fn test(&mut self, kind: &TestKind) -> Option<CompiledTest> {
        match kind {
            TestKind::Predicate(name) => match Predicate::lookup(&name.text) {
                Some(p) => Some((Test::Predicate(p), false)),
                None if Self::outside_predicate(name).is_some() => Self::outside_predicate(name),
                None => {
                    self.error(name.span, format!("unknown predicate `{}`", name.text));
                    None
                }
            },
            TestKind::UnauthenticatedLocalSender(list) => {
                let (list, span) = self.list_ref(list, None)?;
                if !self.can_match(list, Lookup::Domain) {
                    self.error(
                        span,
                        "this list holds no domains; expected a list of the local domains for `unauthenticated_local_sender`".to_owned(),
                    );
                    return None;
                }
                Some((Test::UnauthenticatedLocalSender { list }, false))
            }
            TestKind::SenderLoginMismatch(name) => match self.logins.get_mut(&name.text) {
                Some(d) => {
                    d.used = true;
                    Some((Test::SenderLoginMismatch { map: d.index? }, false))
                }
                None => {
                    let hint = suggest::hint(&name.text, sorted_names(&self.logins));
                    self.error(
                        name.span,
                        format!(
                            "unknown logins map `{}`; expected a map declared with `logins`{hint}",
                            name.text
                        ),
                    );
                    None
                }
            },
            TestKind::InDnsList(field, side, list) => self.in_dns_list(field, *side, list),
            TestKind::Spf(equal, name) => {
                let result = crate::spf::SpfResult::ALL
                    .into_iter()
                    .find(|r| r.as_str().eq_ignore_ascii_case(&name.text));
                let Some(result) = result else {
                    self.error(
                        name.span,
                        format!(
                            "unknown SPF result `{}`; expected pass, fail, softfail, neutral, none, \
                             temperror or permerror{}",
                            name.text,
                            suggest::hint(
                                &name.text,
                                crate::spf::SpfResult::ALL.map(crate::spf::SpfResult::as_str)
                            )
                        ),
                    );
                    return None;
                };
                Some((
                    Test::Outside(super::outside::Outside::Spf { result }, 0),
                    !*equal,
                ))
            }
            TestKind::Score(op, value) => Some((
                Test::Score {
                    op: num_op(*op),
                    value: value.hundredths,
                },
                false,
            )),
            TestKind::In(field, list) => {
                let f = self.field(field);
                let (list, span) = self.list_ref(list, f)?;
                let f = f?;
                self.in_list(f, field, list, span)
            }
            TestKind::Compare(field, op, value) => {
                let f = self.field(field)?;
                self.compare(f, field, *op, value)
            }
            TestKind::Str(field, op, s) => {
                let f = self.text_field(field)?;
                let op = match op {
                    StrOp::StartsWith => TextOp::StartsWith,
                    StrOp::EndsWith => TextOp::EndsWith,
                    StrOp::Contains => TextOp::Contains,
                };
                Some((self.text_test(f, op, &s.value), false))
            }
            TestKind::Matches(field, re) => {
                let f = self.text_field(field)?;
                let regex = self.regex(&re.pattern, re.case_insensitive, re.span)?;
                Some((Test::Regex { field: f, regex }, false))
            }
            TestKind::Like(field, glob) => {
                let f = self.text_field(field);
                if let Some(&list) = self.glob_cache.get(&glob.value) {
                    return Some((Test::TextInList { field: f?, list }, false));
                }
                // A one-glob list: the list module owns glob matching.
                let mut builder = ListBuilder::new(Some(ListKind::Glob));
                if let Err(e) = builder.add(EntryToken::Quoted(&glob.value)) {
                    self.error(glob.span, e.to_string());
                    return None;
                }
                let list = self.push_list(builder, glob.span)?;
                self.glob_cache.insert(glob.value.clone(), list);
                Some((Test::TextInList { field: f?, list }, false))
            }
            TestKind::IsEmpty(field) => Some((
                Test::IsSet {
                    field: self.field(field)?,
                },
                true,
            )),
            TestKind::IsSet(field) => Some((
                Test::IsSet {
                    field: self.field(field)?,
                },
                false,
            )),
        }
    }

    fn can_match(&self, list: u32, lookup: Lookup) -> bool {
        self.program
            .lists
            .get(list as usize)
            .is_some_and(|l| l.can_match(lookup))
    }

    /// `FIELD in LIST`, checking that the list can match the field.
    fn in_list(&mut self, f: Field, field: &Name, list: u32, span: Span) -> Option<CompiledTest> {
        let (lookup, test) = match f.field_type() {
            FieldType::Ip => (Lookup::Ip, Test::IpInList { field: f, list }),
            FieldType::Address => (Lookup::Address, Test::AddressInList { field: f, list }),
            FieldType::Domain => (Lookup::Domain, Test::DomainInList { field: f, list }),
            FieldType::Text | FieldType::TextNoCase | FieldType::Number | FieldType::State => {
                (Lookup::Bytes, Test::TextInList { field: f, list })
            }
        };
        if !self.can_match(list, lookup) {
            let kinds = self
                .program
                .lists
                .get(list as usize)
                .map(|l| l.kinds().to_string())
                .unwrap_or_default();
            self.error(
                span,
                format!(
                    "type mismatch: this list holds {kinds} entries, none of which can match `{}`; expected {} entries",
                    field.text,
                    lookup.consults()
                ),
            );
            return None;
        }
        Some((test, false))
    }

    fn compare(
        &mut self,
        f: Field,
        field: &Name,
        op: CmpOp,
        value: &Value,
    ) -> Option<CompiledTest> {
        let ty = f.field_type();
        if !matches!(op, CmpOp::Eq | CmpOp::Ne) && ty != FieldType::Number {
            self.error(
                field.span,
                format!(
                    "type mismatch: `{}` is not a number; expected a numeric field (size, recipient_count, \
                     client_port, server_port, encryption_keysize) before <, <=, > or >=",
                    field.text
                ),
            );
            return None;
        }
        let negated = op == CmpOp::Ne;
        match (ty, value) {
            (FieldType::Number, Value::Number(n)) => {
                if n.has_unit && f != Field::Size {
                    self.error(
                        n.span,
                        format!(
                            "a size unit on `{}`; expected a plain number (units are for `size`)",
                            field.text
                        ),
                    );
                    return None;
                }
                Some((
                    Test::Number {
                        field: f,
                        op: num_op(op),
                        value: n.value,
                    },
                    false,
                ))
            }
            (FieldType::Number, other) => {
                self.error(
                    value_span(other),
                    format!(
                        "type mismatch: `{}` is a number; expected a number to compare with",
                        field.text
                    ),
                );
                None
            }
            (FieldType::State, Value::Word(_) | Value::Str(_)) => {
                let (text, span) = match value {
                    Value::Word(w) => (w.text.as_str(), w.span),
                    Value::Str(s) => (s.value.as_str(), s.span),
                    Value::Number(n) => ("", n.span),
                };
                match STATE_NAMES.iter().find(|(s, _)| *s == text) {
                    Some((_, bit)) => Some((Test::State { mask: *bit }, negated)),
                    None => {
                        self.error(span, unknown_state(text));
                        None
                    }
                }
            }
            (FieldType::Ip, Value::Str(s)) => match s.value.parse() {
                Ok(ip) => Some((Test::IpEquals { field: f, ip }, negated)),
                Err(_) => {
                    self.error(
                        s.span,
                        format!(
                            "`{}` is not an IP address; expected an address such as \"192.0.2.1\" (use `in` for networks)",
                            s.value
                        ),
                    );
                    None
                }
            },
            (_, Value::Str(s)) => Some((self.text_test(f, TextOp::Equals, &s.value), negated)),
            (FieldType::Ip, other) => {
                self.error(
                    value_span(other),
                    format!(
                        "type mismatch: `{}` is an IP address; expected a quoted address",
                        field.text
                    ),
                );
                None
            }
            (FieldType::State, Value::Number(n)) => {
                self.error(n.span, unknown_state(n.span.text(self.src)));
                None
            }
            (_, other) => {
                let hint = if matches!(other, Value::Word(_)) {
                    " (bare words are protocol states, for `protocol_state`)"
                } else {
                    ""
                };
                self.error(
                    value_span(other),
                    format!(
                        "type mismatch: `{}` is text; expected a quoted string to compare with{hint}",
                        field.text
                    ),
                );
                None
            }
        }
    }

    fn text_test(&mut self, f: Field, op: TextOp, value: &str) -> Test {
        let no_case = no_case(f);
        let bytes: Box<[u8]> = if no_case {
            value.to_ascii_lowercase().into_bytes().into()
        } else {
            value.as_bytes().into()
        };
        self.program.texts.push(bytes);
        Test::Text {
            field: f,
            op,
            text: to_u32(self.program.texts.len() - 1),
            no_case,
        }
    }

    /// Compile a `matches` regex; the same pattern and flag written in
    /// several rules is compiled once (and so memoized per request).
    fn regex(&mut self, pattern: &str, case_insensitive: bool, span: Span) -> Option<u32> {
        let key = (pattern.to_owned(), case_insensitive);
        if let Some(&index) = self.regex_cache.get(&key) {
            return Some(index);
        }
        let built = regex::bytes::RegexBuilder::new(pattern)
            .case_insensitive(case_insensitive)
            .size_limit(MAX_REGEX_COMPILED_BYTES)
            .build();
        match built {
            Ok(re) => {
                self.program.regexes.push(re);
                let index = to_u32(self.program.regexes.len() - 1);
                self.regex_cache.insert(key, index);
                Some(index)
            }
            Err(e) => {
                self.error(
                    span,
                    format!("invalid regular expression: {}", regex_error(&e)),
                );
                None
            }
        }
    }

    // ----- actions -------------------------------------------------------

    /// Compile an action whose text may use the variables of a stateful rule
    /// in `allowed` (and those of the request).
    fn action(&mut self, a: &ActionAst, allowed: &[Var]) -> Option<Verdict> {
        if !self.facts_only(a, allowed) {
            return None;
        }
        match ActionTemplate::compile(&a.verb.text, a.text.as_ref().map(|t| t.value.as_str())) {
            Ok(t) => {
                if t.is_constant() {
                    Some(Verdict::constant(t.action().clone()))
                } else {
                    Some(Verdict {
                        action: t.action().clone(),
                        wire: Box::default(),
                        template: Some(t),
                    })
                }
            }
            Err(e) => {
                let at = match (e.offset(), &a.text) {
                    (Some(offset), Some(text)) => Span::new(
                        source_offset(text.span.text(self.src), offset) + text.span.start,
                        0,
                    ),
                    (None, Some(text)) if !verb_error(&e) => text.span,
                    _ => a.verb.span,
                };
                let hint = match e {
                    ActionTemplateError::Action(ActionError::UnknownVerb) => {
                        suggest::hint(&a.verb.text, ACTION_VERBS)
                    }
                    _ => String::new(),
                };
                self.error(at, format!("{e}{hint}"));
                None
            }
        }
    }
}

/// The names of declared lists or maps, sorted (for a hint that does not
/// depend on a hash map's order).
fn sorted_names(declared: &HashMap<String, Declared>) -> Vec<&str> {
    let mut names: Vec<&str> = declared.keys().map(String::as_str).collect();
    names.sort_unstable();
    names
}

/// The access(5) verbs of a policy reply, for "did you mean" hints.
const ACTION_VERBS: [&str; 14] = [
    "OK",
    "DUNNO",
    "REJECT",
    "DEFER",
    "DEFER_IF_REJECT",
    "DEFER_IF_PERMIT",
    "HOLD",
    "DISCARD",
    "FILTER",
    "PREPEND",
    "REDIRECT",
    "BCC",
    "WARN",
    "INFO",
];

/// Whether an action error is about the verb or code rather than the text.
fn verb_error(e: &ActionTemplateError) -> bool {
    matches!(
        e,
        ActionTemplateError::Action(
            ActionError::UnknownVerb | ActionError::InvalidCode | ActionError::Empty
        )
    )
}

fn unknown_state(text: &str) -> String {
    format!(
        "unknown protocol state `{text}`; expected CONNECT, EHLO, HELO, MAIL, RCPT, DATA, END-OF-MESSAGE, VRFY or ETRN"
    )
}

fn num_op(op: CmpOp) -> NumOp {
    match op {
        CmpOp::Eq => NumOp::Eq,
        CmpOp::Ne => NumOp::Ne,
        CmpOp::Lt => NumOp::Lt,
        CmpOp::Le => NumOp::Le,
        CmpOp::Gt => NumOp::Gt,
        CmpOp::Ge => NumOp::Ge,
    }
}

fn no_case(f: Field) -> bool {
    matches!(
        f.field_type(),
        FieldType::Address | FieldType::Domain | FieldType::TextNoCase
    )
}

fn value_span(v: &Value) -> Span {
    match v {
        Value::Str(s) => s.span,
        Value::Number(n) => n.span,
        Value::Word(w) => w.span,
    }
}

/// An index or offset as stored in the program. A policy is at most
/// [`MAX_POLICY_BYTES`] long, so its tests, texts and offsets count far below
/// `u32::MAX`; were one not to fit, it would become an index no vector has
/// (the evaluator reads it as "false"), never a jump target (`TRUE`/`FALSE`).
fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX - 2)
}

/// The one-line reason of a regex error (the crate's message spans lines).
fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .find_map(|l| l.strip_prefix("error: "))
        .map_or_else(|| text.replace('\n', " "), str::to_owned)
}

/// The byte offset in `quoted` (a string literal as written, with its quotes
/// and escapes) of byte `offset` of its unescaped value.
fn source_offset(quoted: &str, offset: usize) -> usize {
    let mut value_len = 0;
    let mut chars = quoted.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        if value_len >= offset {
            return i;
        }
        if c == '\\' {
            if let Some((_, e)) = chars.next() {
                value_len += e.len_utf8();
            }
        } else {
            value_len += c.len_utf8();
        }
    }
    quoted.len().saturating_sub(1)
}
