//! The syntax tree of a policy file, as the parser builds it. Every node keeps
//! its [`Span`] (byte offsets in the source) for diagnostics and for showing
//! conditions in source form.

use super::outside::ListSide;

/// Byte range `start..end` in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Span {
    pub(crate) start: usize,
    pub(crate) end: usize,
}

impl Span {
    pub(crate) fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }

    /// The span covering both `self` and `other`.
    pub(crate) fn to(self, other: Self) -> Self {
        Self::new(self.start.min(other.start), self.end.max(other.end))
    }

    /// The source text under this span (empty if it does not fit `source`).
    pub(crate) fn text(self, source: &str) -> &str {
        source.get(self.start..self.end).unwrap_or("")
    }
}

/// A name (of a list, map, rule, field, predicate or keyword) and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Name {
    pub(crate) text: String,
    pub(crate) span: Span,
}

/// A quoted string with its escapes resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Str {
    pub(crate) value: String,
    pub(crate) span: Span,
}

/// A `/regex/flags` literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RegexLit {
    /// The pattern with `\/` turned into `/`.
    pub(crate) pattern: String,
    /// The `i` flag.
    pub(crate) case_insensitive: bool,
    pub(crate) span: Span,
}

/// A number with its optional size unit already applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Number {
    pub(crate) value: u64,
    /// Whether a size unit was written (`20MB`).
    pub(crate) has_unit: bool,
    pub(crate) span: Span,
}

/// One entry of a list, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    /// A bare word.
    Word(Str),
    /// A quoted string.
    Quoted(Str),
    /// A regular expression.
    Regex(RegexLit),
}

impl Entry {
    pub(crate) fn span(&self) -> Span {
        match self {
            Self::Word(s) | Self::Quoted(s) => s.span,
            Self::Regex(r) => r.span,
        }
    }
}

/// What a list holds or where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListBody {
    /// `{ ENTRY* }`
    Inline(Vec<Entry>),
    /// `file "path"`
    File(Str),
}

/// `list NAME [KIND] BODY`
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListDecl {
    pub(crate) name: Name,
    pub(crate) kind: Option<Name>,
    pub(crate) body: ListBody,
}

/// What a login map holds or where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LoginsBody {
    /// `{ "sender" "login, login" ... }`
    Inline(Vec<(Str, Str)>),
    /// `file "path"`
    File(Str),
}

/// `logins NAME BODY`
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoginsDecl {
    pub(crate) name: Name,
    pub(crate) body: LoginsBody,
}

/// A reference to a list in a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListRef {
    /// A list declared with `list`.
    Named(Name),
    /// `{ ENTRY* }` written in place.
    Inline(Vec<Entry>, Span),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A string operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StrOp {
    StartsWith,
    EndsWith,
    Contains,
}

/// The right side of `==` / `!=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Str(Str),
    Number(Number),
    /// A bare word: a protocol state (`RCPT`).
    Word(Name),
}

/// One test of a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TestKind {
    In(Name, ListRef),
    /// `score OP NUMBER`: the request's score so far.
    Score(CmpOp, ScoreLit),
    /// `spf == RESULT` (`true`) or `spf != RESULT` (`false`).
    Spf(bool, Name),
    /// `FIELD in dnsbl LIST` or `FIELD in rhsbl LIST`: an outside fact (a
    /// DNS lookup).
    InDnsList(Name, ListSide, DnsListRef),
    Compare(Name, CmpOp, Value),
    Str(Name, StrOp, Str),
    Matches(Name, RegexLit),
    Like(Name, Str),
    IsEmpty(Name),
    IsSet(Name),
    /// `authenticated`, `tls`, ... (validated by the compiler).
    Predicate(Name),
    UnauthenticatedLocalSender(ListRef),
    SenderLoginMismatch(Name),
}

/// A condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cond {
    Or(Vec<Self>, Span),
    And(Vec<Self>, Span),
    Not(Box<Self>, Span),
    Test(TestKind, Span),
}

impl Cond {
    pub(crate) fn span(&self) -> Span {
        match self {
            Self::Or(_, s) | Self::And(_, s) | Self::Not(_, s) | Self::Test(_, s) => *s,
        }
    }
}

/// A clause of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Clause {
    /// `state STATE, ...`
    State(Vec<Name>),
    /// `if COND`
    If(Cond),
    /// `unless COND`
    Unless(Cond),
}

/// An action as written: `VERB [STRING]` or `CODE STRING`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ActionAst {
    /// The verb or the reply code, as written.
    pub(crate) verb: Name,
    pub(crate) text: Option<Str>,
    pub(crate) span: Span,
}

/// `rule NAME [dry-run] { CLAUSE* then ACTION }`
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RuleDecl {
    pub(crate) name: Name,
    pub(crate) dry_run: bool,
    pub(crate) clauses: Vec<Clause>,
    pub(crate) action: ActionAst,
    /// `on_unknown ACTION`: the answer when the condition is unknown (an
    /// outside fact missing).
    pub(crate) on_unknown: Option<ActionAst>,
}

/// A score weight or threshold as written: `4.35`, `-1.5`, `+2`, in
/// hundredths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScoreLit {
    pub(crate) hundredths: i64,
    pub(crate) span: Span,
}

/// `add WEIGHT if COND [as "REASON"]` in a score item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AddAst {
    pub(crate) weight: ScoreLit,
    /// `unless COND` rather than `if COND`.
    pub(crate) unless: bool,
    pub(crate) cond: Cond,
    pub(crate) reason: Option<Str>,
}

/// `score NAME [dry-run] { ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScoreDecl {
    pub(crate) name: Name,
    pub(crate) dry_run: bool,
    /// `state`, `if` and `unless` clauses: when the item runs at all.
    pub(crate) clauses: Vec<Clause>,
    pub(crate) adds: Vec<AddAst>,
    /// `above THRESHOLD ACTION`, as written.
    pub(crate) thresholds: Vec<(ScoreLit, ActionAst)>,
    /// `score NAME [dry-run]`, for errors about a missing clause.
    pub(crate) head: Span,
}

/// A duration as written (`1h`, `90s`), in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DurationLit {
    pub(crate) ms: u64,
    pub(crate) span: Span,
}

/// `N per DURATION`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WindowAst {
    pub(crate) max: Number,
    pub(crate) per: DurationLit,
}

/// One part of a limit's key: a field, with masks for IP fields
/// (`client_address/24/64`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyPartAst {
    pub(crate) field: Name,
    pub(crate) masks: Vec<Number>,
    pub(crate) span: Span,
}

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CountAst {
    Messages,
    Recipients,
    /// `bytes`, or `bytes * recipients`.
    Bytes {
        times_recipients: bool,
    },
    /// `distinct FIELD`: the field's name, where it is written.
    Distinct(Span),
}

/// One override: a key and its own maxima.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OverrideAst {
    pub(crate) key: Str,
    pub(crate) windows: Vec<WindowAst>,
}

/// Where a limit's overrides come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OverridesAst {
    Inline(Vec<OverrideAst>),
    File(Str),
}

/// `limit NAME [dry-run] { ... }`
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LimitDecl {
    pub(crate) name: Name,
    pub(crate) dry_run: bool,
    /// `if` / `unless` clauses (a `state` clause is kept to be refused by
    /// the compiler with a clear message).
    pub(crate) clauses: Vec<Clause>,
    pub(crate) key: Vec<KeyPartAst>,
    pub(crate) count: Option<(CountAst, Span)>,
    /// `at rcpt | data | end-of-message`, as written.
    pub(crate) at: Option<Name>,
    pub(crate) windows: Vec<WindowAst>,
    pub(crate) overrides: Option<OverridesAst>,
    pub(crate) capacity: Option<Number>,
    /// `on_failure allow | defer | skip`, as written.
    pub(crate) on_failure: Option<Name>,
    /// `backend local | redis`, as written.
    pub(crate) backend: Option<Name>,
    pub(crate) over: Option<ActionAst>,
    /// The span of the whole item's head (`limit NAME`), for errors about a
    /// missing clause.
    pub(crate) head: Span,
}

/// `whitelist clients|recipients file "PATH"`
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WhitelistAst {
    /// `clients` or `recipients`, as written.
    pub(crate) kind: Name,
    pub(crate) path: Str,
}

/// `greylist NAME [dry-run] { ... }`
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GreylistDecl {
    pub(crate) name: Name,
    pub(crate) dry_run: bool,
    /// `if` / `unless` clauses (a `state` clause is kept to be refused).
    pub(crate) clauses: Vec<Clause>,
    /// `client FIELD[/V4/V6]`.
    pub(crate) client: Option<KeyPartAst>,
    pub(crate) delay: Option<DurationLit>,
    pub(crate) retry_window: Option<DurationLit>,
    pub(crate) max_age: Option<DurationLit>,
    pub(crate) auto_whitelist: Option<Number>,
    pub(crate) whitelists: Vec<WhitelistAst>,
    pub(crate) capacity: Option<Number>,
    /// `on_failure allow | defer | skip`, as written.
    pub(crate) on_failure: Option<Name>,
    /// `backend local | redis`, as written.
    pub(crate) backend: Option<Name>,
    /// `then ACTION`: the answer when deferred.
    pub(crate) then: Option<ActionAst>,
    /// `prepend "Header: value"`: the header of the first accepted retry.
    pub(crate) prepend: Option<Str>,
    /// `greylist NAME [dry-run]`, for errors about a missing clause.
    pub(crate) head: Span,
}

/// A DNS list named in a test: an inline zone or a declared list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DnsListRef {
    /// `in dnsbl "zen.spamhaus.org"`: any address in 127.0.0.0/8 is a listing.
    Zone(Str),
    /// `in dnsbl zen`: a list declared with `dnsbl zen { ... }`.
    Named(Name),
}

/// One entry of a DNS list's `answer` clause, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AnswerAst {
    /// `127.0.0.2` or `127.0.0.4-127.0.0.7`.
    Range(Str, Option<Str>),
    /// `mask 0.0.0.8` (or `mask 8`).
    Mask(Str),
}

/// `dnsbl NAME { ... }` or `rhsbl NAME { ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DnsListDecl {
    pub(crate) name: Name,
    pub(crate) side: ListSide,
    pub(crate) zone: Option<Str>,
    pub(crate) answers: Vec<AnswerAst>,
    pub(crate) txt: bool,
    /// `dnsbl NAME`, for errors about a missing clause.
    pub(crate) head: Span,
}

/// A top-level item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    DnsList(DnsListDecl),
    Score(ScoreDecl),
    Greylist(GreylistDecl),
    List(ListDecl),
    Logins(LoginsDecl),
    Rule(RuleDecl),
    Limit(LimitDecl),
    /// `default ACTION`, with the span of the keyword.
    Default(ActionAst, Span),
    /// `backend local | redis` at the top level: where the limits and
    /// greylists without a `backend` clause keep their state. The word as
    /// written, and the span of the keyword.
    Backend(Name, Span),
}
