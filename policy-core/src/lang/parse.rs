//! The parser: policy text to [`Item`]s, with nom, one method per grammar
//! rule, the rule quoted in its doc comment.
//!
//! Lexical conventions: whitespace and newlines only separate tokens; `#`
//! starts a comment to the end of the line (outside strings and regexes).
//! Every token parser skips the whitespace and comments before it.
//!
//! Error handling: inside an item, a mismatch after the item's keyword is a
//! [`nom::Err::Failure`] naming what was expected there; the driver
//! ([`parse_policy`]) records it and resumes at the next line that starts
//! with an item keyword (`list`, `logins`, `rule`, `default`, ...), so every
//! broken item of a file is reported, not only the first.

use std::borrow::Cow;
use std::cell::Cell;

use nom::bytes::complete::{tag, take_while, take_while1};
use nom::character::complete::{char, satisfy};
use nom::combinator::{opt, peek, recognize};
use nom::error::{ErrorKind, ParseError};
use nom::sequence::pair;
use nom::IResult;

use super::ast::{
    ActionAst, AddAst, AnswerAst, Clause, CmpOp, Cond, CountAst, DnsListDecl, DnsListRef,
    DurationLit, Entry, GreylistDecl, Item, KeyPartAst, LimitDecl, ListBody, ListDecl, ListRef,
    LoginsBody, LoginsDecl, Name, Number, OverrideAst, OverridesAst, RegexLit, RuleDecl, ScoreDecl,
    ScoreLit, Span, Str, StrOp, TestKind, Value, WhitelistAst, WindowAst,
};
use super::outside::ListSide;
use super::program::Field;
use super::suggest;

/// How deeply `not` and parentheses may nest in one condition. The parser and
/// the compiler recurse once per level, so this bounds their stack use on any
/// input (a fuzzer's `((((...` included); real policies need a handful.
pub const MAX_NESTING: usize = 64;

/// The largest policy text [`Policy::compile`](crate::Policy::compile) accepts,
/// in bytes. Far above any hand-written policy (large lists belong in list
/// files, which are limited separately); it bounds compile time and memory on
/// a wrong file (a log, a binary) given by mistake.
pub const MAX_POLICY_BYTES: usize = 16 * 1024 * 1024;

/// The largest score weight or threshold either way (1,000,000, in whole
/// points): a request's score stays far inside an `i64` of hundredths.
pub const MAX_SCORE: i64 = 1_000_000;

/// The item keywords, where error recovery resumes. The top-level `backend`
/// statement is not one: it is also a clause of limits and greylists, and
/// resuming at that clause inside a broken item would report the rest of
/// the item (its `}`) as a second, misleading error.
const ITEM_KEYWORDS: [&str; 9] = [
    "list", "logins", "dnsbl", "rhsbl", "rule", "limit", "greylist", "score", "default",
];

/// Names of the predicates (tests without a field).
pub(crate) const PREDICATES: [&str; 14] = [
    "authenticated",
    "fcrdns",
    "helo_resolves",
    "helo_matches_client",
    "sender_domain_unknown",
    "tls",
    "null_sender",
    "helo_is_fqdn",
    "helo_is_address_literal",
    "helo_is_ip",
    "client_unknown",
    "reverse_client_unknown",
    "unauthenticated_local_sender",
    "sender_login_mismatch",
];

/// Words that end or join a condition and so cannot start a test.
const CONDITION_STOP_WORDS: [&str; 20] = [
    "then",
    "on_unknown",
    "add",
    "above",
    "as",
    "and",
    "or",
    "if",
    "unless",
    "state",
    "not",
    "key",
    "count",
    "at",
    "max",
    "overrides",
    "capacity",
    "on_failure",
    "backend",
    "over",
];

/// A parse error: where (the remaining input) and what was expected there.
#[derive(Debug)]
pub(crate) struct PError<'a> {
    pub(crate) input: &'a str,
    pub(crate) expected: Cow<'static, str>,
    /// `expected` is the whole message, not what was expected (an unknown
    /// word, said as such).
    pub(crate) whole: bool,
}

impl PError<'_> {
    /// The error's message: `expected X, found Y`, or the whole message.
    fn message(&self) -> String {
        if self.whole {
            self.expected.to_string()
        } else {
            let found = skip_ws(self.input);
            let word = &found[..found.find(|c| !is_name_char(c)).unwrap_or(found.len())];
            // The keywords the message names in backquotes, for a misspelt one.
            let keywords = self
                .expected
                .split('`')
                .skip(1)
                .step_by(2)
                .filter(|k| !k.is_empty() && k.chars().all(is_name_char));
            format!(
                "expected {}, found {}{}",
                self.expected,
                describe_found(self.input),
                suggest::hint(word, keywords)
            )
        }
    }
}

impl<'a> ParseError<&'a str> for PError<'a> {
    fn from_error_kind(input: &'a str, _kind: ErrorKind) -> Self {
        Self {
            input,
            expected: Cow::Borrowed("valid syntax"),
            whole: false,
        }
    }

    fn append(_input: &'a str, _kind: ErrorKind, other: Self) -> Self {
        other
    }

    /// Of two failed alternatives, the one that got further is the better
    /// explanation.
    fn or(self, other: Self) -> Self {
        if other.input.len() < self.input.len() {
            other
        } else {
            self
        }
    }
}

type PResult<'a, T> = IResult<&'a str, T, PError<'a>>;

/// A recoverable "this is not it" error at `input`.
fn error<T>(input: &str, expected: impl Into<Cow<'static, str>>) -> PResult<'_, T> {
    Err(nom::Err::Error(PError {
        input,
        expected: expected.into(),
        whole: false,
    }))
}

/// A committed "this is wrong" error at `input`.
fn failure<T>(input: &str, expected: impl Into<Cow<'static, str>>) -> PResult<'_, T> {
    Err(nom::Err::Failure(PError {
        input,
        expected: expected.into(),
        whole: false,
    }))
}

/// A committed error at `input` whose message is `message` as it is.
fn failure_saying<T>(input: &str, message: String) -> PResult<'_, T> {
    Err(nom::Err::Failure(PError {
        input,
        expected: message.into(),
        whole: true,
    }))
}

/// Turn a recoverable error into a committed one with the message `expected`
/// (at the position where the parser was called); failures pass unchanged.
fn expect<'a, T>(result: PResult<'a, T>, at: &'a str, expected: &'static str) -> PResult<'a, T> {
    match result {
        Err(nom::Err::Error(_)) => failure(skip_ws(at), expected),
        other => other,
    }
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

fn is_word_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, '{' | '}' | '"' | '#')
}

/// Skip whitespace and comments.
///
/// `ws = { WHITESPACE | "#" { any char but newline } }`
fn skip_ws(mut i: &str) -> &str {
    loop {
        let t = i.trim_start();
        match t.strip_prefix('#') {
            Some(comment) => i = comment.find('\n').map_or("", |n| &comment[n..]),
            None => return t,
        }
    }
}

/// A short description of the token at the start of `rest`, for "found ...".
pub(crate) fn describe_found(rest: &str) -> String {
    let rest = skip_ws(rest);
    let Some(first) = rest.chars().next() else {
        return "end of file".to_owned();
    };
    if first == '"' {
        return "a string".to_owned();
    }
    let token: String = if is_name_char(first) {
        rest.chars()
            .take_while(|&c| is_name_char(c))
            .take(24)
            .collect()
    } else if is_word_char(first) {
        rest.chars()
            .take_while(|&c| is_word_char(c) && !is_name_char(c))
            .take(3)
            .collect()
    } else {
        first.to_string()
    };
    format!("`{token}`")
}

/// The parser over one source text; positions are byte offsets into it.
pub(crate) struct Parser<'s> {
    src: &'s str,
    /// Current nesting of `not` and `(` in the condition being parsed.
    depth: Cell<usize>,
}

impl<'s> Parser<'s> {
    pub(crate) fn new(src: &'s str) -> Self {
        Self {
            src,
            depth: Cell::new(0),
        }
    }

    /// The byte offset of `rest` (a suffix of the source) in the source.
    pub(crate) fn offset(&self, rest: &str) -> usize {
        self.src.len().saturating_sub(rest.len())
    }

    fn span(&self, from: &str, to: &str) -> Span {
        Span::new(self.offset(from), self.offset(to))
    }

    /// `keyword = WORD` where WORD is `kw` exactly, not followed by a name character.
    fn keyword<'a>(&self, kw: &'static str, i: &'a str) -> PResult<'a, Span> {
        let start = skip_ws(i);
        let (rest, _) = tag(kw)(start)?;
        if rest.starts_with(is_name_char) {
            return error(start, kw);
        }
        Ok((rest, self.span(start, rest)))
    }

    /// `on_failure WORD`: what a stateful rule does when its state backend
    /// fails (the word is checked by the compiler).
    fn on_failure<'a>(&self, i: &'a str) -> PResult<'a, Name> {
        let (rest, _) = self.keyword("on_failure", i)?;
        expect(
            self.name(rest),
            rest,
            "what to do when the state backend fails: `allow`, `defer` or `skip`",
        )
    }

    /// `backend WORD`: where a stateful item keeps its state, as a clause
    /// of a limit or greylist or at the top level (the word is checked by
    /// the compiler). The word, and the span of the keyword.
    ///
    /// A keyword after it (an item's, or a clause's) is not taken for the
    /// word: the word is missing.
    fn backend<'a>(&self, i: &'a str) -> PResult<'a, (Name, Span)> {
        const EXPECTED: &str = "where the state is kept after `backend`: `local` or `redis`";
        let (rest, kw) = self.keyword("backend", i)?;
        let (after, word) = expect(self.name(rest), rest, EXPECTED)?;
        let text = word.text.as_str();
        if ITEM_KEYWORDS.contains(&text) || CONDITION_STOP_WORDS.contains(&text) {
            return failure(skip_ws(rest), EXPECTED);
        }
        Ok((after, (word, kw)))
    }

    /// `NAME = [A-Za-z_] { [A-Za-z0-9_.-] }`
    fn name<'a>(&self, i: &'a str) -> PResult<'a, Name> {
        let start = skip_ws(i);
        let (rest, text) = recognize(pair(satisfy(is_name_start), take_while(is_name_char)))(start)
            .or_else(|_: nom::Err<PError<'a>>| error(start, "a name"))?;
        Ok((
            rest,
            Name {
                text: text.to_owned(),
                span: self.span(start, rest),
            },
        ))
    }

    /// `STRING = '"' { CHAR | '\"' | '\\' } '"'` — no raw newline or control
    /// character inside.
    fn string<'a>(&self, i: &'a str) -> PResult<'a, Str> {
        let start = skip_ws(i);
        let (mut rest, _) = char('"')(start)?;
        let mut value = String::new();
        loop {
            let mut chars = rest.chars();
            match chars.next() {
                None => return failure(start, "a closing `\"` for this string"),
                Some('"') => {
                    rest = chars.as_str();
                    break;
                }
                Some('\\') => match chars.next() {
                    Some(c @ ('"' | '\\')) => {
                        value.push(c);
                        rest = chars.as_str();
                    }
                    _ => return failure(&rest[1..], "`\"` or `\\` after a backslash in a string"),
                },
                Some('\n' | '\r') => {
                    return failure(
                        rest,
                        "a closing `\"` on the same line (a string cannot span lines)",
                    )
                }
                Some(c) if c.is_control() => {
                    return failure(
                        rest,
                        "a printable character (no control character in a string)",
                    )
                }
                Some(c) => {
                    value.push(c);
                    rest = chars.as_str();
                }
            }
        }
        Ok((
            rest,
            Str {
                value,
                span: self.span(start, rest),
            },
        ))
    }

    /// `REGEX = "/" { CHAR | "\/" } "/" [ "i" ]`
    fn regex<'a>(&self, i: &'a str) -> PResult<'a, RegexLit> {
        let start = skip_ws(i);
        let (mut rest, _) = char('/')(start)?;
        let mut pattern = String::new();
        loop {
            let mut chars = rest.chars();
            match chars.next() {
                None | Some('\n' | '\r') => {
                    return failure(
                        rest,
                        "a closing `/` for this regular expression (on its line)",
                    )
                }
                Some('/') => {
                    rest = chars.as_str();
                    break;
                }
                Some('\\') => match chars.next() {
                    Some('/') => {
                        pattern.push('/');
                        rest = chars.as_str();
                    }
                    Some(c) if c != '\n' && c != '\r' => {
                        pattern.push('\\');
                        pattern.push(c);
                        rest = chars.as_str();
                    }
                    _ => {
                        return failure(
                            &rest[1..],
                            "a character after `\\` in a regular expression",
                        )
                    }
                },
                Some(c) if c.is_control() && c != '\t' => {
                    return failure(rest, "a printable character in a regular expression")
                }
                Some(c) => {
                    pattern.push(c);
                    rest = chars.as_str();
                }
            }
        }
        let (after, flags) = take_while(|c: char| c.is_ascii_alphanumeric())(rest)?;
        let case_insensitive = match flags {
            "" => false,
            "i" => true,
            _ => return failure(rest, "the regular expression flag `i` (or none)"),
        };
        Ok((
            after,
            RegexLit {
                pattern,
                case_insensitive,
                span: self.span(start, after),
            },
        ))
    }

    /// `NUMBER = DIGIT { DIGIT } [ "k" | "kB" | "KiB" | "M" | "MB" | "MiB" | "G" | "GB" | "GiB" ]`
    fn number<'a>(&self, i: &'a str) -> PResult<'a, Number> {
        let start = skip_ws(i);
        let (rest, digits) = take_while1(|c: char| c.is_ascii_digit())(start)
            .or_else(|_: nom::Err<PError<'a>>| error(start, "a number"))?;
        let (after, unit) = take_while(is_name_char)(rest)?;
        let multiplier: u64 =
            match unit {
                "" => 1,
                "k" | "kB" => 1000,
                "KiB" => 1024,
                "M" | "MB" => 1000 * 1000,
                "MiB" => 1024 * 1024,
                "G" | "GB" => 1000 * 1000 * 1000,
                "GiB" => 1024 * 1024 * 1024,
                _ => return failure(
                    rest,
                    "a size unit k, kB, KiB, M, MB, MiB, G, GB or GiB (or none) after the number",
                ),
            };
        let value = digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(multiplier));
        let Some(value) = value else {
            return failure(start, "a number below 2^64");
        };
        Ok((
            after,
            Number {
                value,
                has_unit: !unit.is_empty(),
                span: self.span(start, after),
            },
        ))
    }

    /// `WORD = { any char but whitespace, "{", "}", '"', "#" }` (at least one)
    fn word<'a>(&self, i: &'a str) -> PResult<'a, Str> {
        let start = skip_ws(i);
        let (rest, text) = take_while1(is_word_char)(start)
            .or_else(|_: nom::Err<PError<'a>>| error(start, "a word"))?;
        Ok((
            rest,
            Str {
                value: text.to_owned(),
                span: self.span(start, rest),
            },
        ))
    }

    /// `ENTRY = REGEX | STRING | WORD`
    fn entry<'a>(&self, i: &'a str) -> PResult<'a, Entry> {
        let start = skip_ws(i);
        if start.starts_with('/') {
            let (rest, r) = self.regex(start)?;
            return Ok((rest, Entry::Regex(r)));
        }
        if start.starts_with('"') {
            let (rest, s) = self.string(start)?;
            return Ok((rest, Entry::Quoted(s)));
        }
        let (rest, w) = self.word(start)?;
        Ok((rest, Entry::Word(w)))
    }

    /// `entries = "{" { ENTRY } "}"`
    fn entries<'a>(&self, i: &'a str) -> PResult<'a, (Vec<Entry>, Span)> {
        let start = skip_ws(i);
        let (mut rest, _) = char('{')(start)?;
        let mut entries = Vec::new();
        loop {
            let next = skip_ws(rest);
            if let Some(after) = next.strip_prefix('}') {
                return Ok((after, (entries, self.span(start, after))));
            }
            if next.is_empty() {
                return failure(next, "an entry or `}` to close the list");
            }
            // Only a token after a line break can start a line: checking
            // just those keeps a long one-line list linear.
            let skipped = &rest[..rest.len() - next.len()];
            if skipped.contains('\n') && starts_item_line(self.src, self.offset(next)) {
                return failure(next, "`}` to close the list before the next item");
            }
            let (after, entry) = expect(self.entry(next), next, "an entry or `}`")?;
            entries.push(entry);
            rest = after;
        }
    }

    /// `list_item = "list" NAME [ KIND ] ( "{" { ENTRY } "}" | "file" STRING )`
    /// with `KIND = "cidr" | "domain" | "address" | "string" | "glob" | "regex"`
    /// (checked by the compiler).
    fn list_item<'a>(&self, i: &'a str) -> PResult<'a, ListDecl> {
        let (i, _) = self.keyword("list", i)?;
        let (i, name) = expect(self.name(i), i, "a list name after `list`")?;
        let (i, kind) = match self.keyword("file", i) {
            Ok(_) => (i, None),
            Err(_) => opt(|i| self.name(i))(i)?,
        };
        let (i, body) = self.list_body(i)?;
        Ok((i, ListDecl { name, kind, body }))
    }

    /// `list_body = "{" { ENTRY } "}" | "file" STRING`
    fn list_body<'a>(&self, i: &'a str) -> PResult<'a, ListBody> {
        if let Ok((i, _)) = self.keyword("file", i) {
            let (i, path) = expect(self.string(i), i, "a quoted file name after `file`")?;
            return Ok((i, ListBody::File(path)));
        }
        let (i, (entries, _)) = expect(
            self.entries(i),
            i,
            "`{` with the list's entries, or `file \"name\"` (after an optional kind: cidr, domain, address, string, glob or regex)",
        )?;
        Ok((i, ListBody::Inline(entries)))
    }

    /// `logins_item = "logins" NAME ( "file" STRING | "{" { LOGIN_ENTRY LOGIN_ENTRY } "}" )`
    /// with `LOGIN_ENTRY = STRING | WORD` (a sender or `@domain`, then its logins).
    fn logins_item<'a>(&self, i: &'a str) -> PResult<'a, LoginsDecl> {
        let (i, _) = self.keyword("logins", i)?;
        let (i, name) = expect(self.name(i), i, "a map name after `logins`")?;
        if let Ok((i, _)) = self.keyword("file", i) {
            let (i, path) = expect(self.string(i), i, "a quoted file name after `file`")?;
            return Ok((
                i,
                LoginsDecl {
                    name,
                    body: LoginsBody::File(path),
                },
            ));
        }
        let brace = skip_ws(i);
        let Some(mut rest) = brace.strip_prefix('{') else {
            return failure(brace, "`{` with sender/logins pairs, or `file \"name\"`");
        };
        let mut pairs = Vec::new();
        loop {
            let next = skip_ws(rest);
            if let Some(after) = next.strip_prefix('}') {
                return Ok((
                    after,
                    LoginsDecl {
                        name,
                        body: LoginsBody::Inline(pairs),
                    },
                ));
            }
            let (after, sender) = expect(
                self.login_entry(next),
                next,
                "a sender address or `@domain`, or `}`",
            )?;
            let (after, logins) = expect(
                self.login_entry(after),
                after,
                "the logins owning this sender (`\"login1, login2\"`)",
            )?;
            pairs.push((sender, logins));
            rest = after;
        }
    }

    /// `LOGIN_ENTRY = STRING | WORD`
    fn login_entry<'a>(&self, i: &'a str) -> PResult<'a, Str> {
        let start = skip_ws(i);
        if start.starts_with('"') {
            self.string(start)
        } else {
            self.word(start)
        }
    }

    /// `KEYWORD NAME [ "dry-run" ] "{"`: the head of a rule, limit or
    /// greylist. Returns the rest after the `{`, the name, whether it is
    /// dry-run, and the span of `KEYWORD NAME [dry-run]` (for errors about a
    /// missing clause).
    fn item_head<'a>(
        &self,
        i: &'a str,
        keyword: &'static str,
        name_expected: &'static str,
        open_expected: &'static str,
    ) -> PResult<'a, (Name, bool, Span)> {
        let head_start = skip_ws(i);
        let (i, _) = self.keyword(keyword, i)?;
        let (i, name) = expect(self.name(i), i, name_expected)?;
        let (i, dry_run) = match self.keyword("dry-run", i) {
            Ok((i, _)) => (i, true),
            Err(_) => (i, false),
        };
        let head = self.span(head_start, i);
        let open = skip_ws(i);
        let Some(rest) = open.strip_prefix('{') else {
            return failure(open, open_expected);
        };
        Ok((rest, (name, dry_run, head)))
    }

    /// `rule_item = "rule" NAME [ "dry-run" ] "{" { clause } "then" action [ "on_unknown" action ] "}"`
    fn rule_item<'a>(&self, i: &'a str) -> PResult<'a, RuleDecl> {
        let (mut i, (name, dry_run, _)) = self.item_head(
            i,
            "rule",
            "a rule name after `rule`",
            "`{` to open the rule (or `dry-run`)",
        )?;
        let mut clauses = Vec::new();
        let mut after_condition = false;
        loop {
            if let Ok((rest, _)) = self.keyword("then", i) {
                let (rest, action) = self.action(rest)?;
                let (rest, on_unknown) = match self.keyword("on_unknown", rest) {
                    Ok((rest, _)) => {
                        let (rest, action) = self.action(rest)?;
                        (rest, Some(action))
                    }
                    Err(_) => (rest, None),
                };
                let close = skip_ws(rest);
                let Some(rest) = close.strip_prefix('}') else {
                    return failure(
                        close,
                        if on_unknown.is_some() {
                            "`}` to close the rule after its `on_unknown` action"
                        } else {
                            "`}` to close the rule after its action (or `on_unknown`)"
                        },
                    );
                };
                return Ok((
                    rest,
                    RuleDecl {
                        name,
                        dry_run,
                        clauses,
                        action,
                        on_unknown,
                    },
                ));
            }
            let (rest, clause) = match self.clause(i) {
                Err(nom::Err::Error(e)) => {
                    return failure(
                        e.input,
                        if after_condition {
                            "`and`, `or`, `state`, `if`, `unless` or `then`"
                        } else {
                            "`state`, `if`, `unless` or `then`"
                        },
                    )
                }
                other => other?,
            };
            after_condition = !matches!(clause, Clause::State(_));
            clauses.push(clause);
            i = rest;
        }
    }

    /// `clause = "state" STATE { "," STATE } | "if" cond | "unless" cond`
    fn clause<'a>(&self, i: &'a str) -> PResult<'a, Clause> {
        if let Ok((i, _)) = self.keyword("state", i) {
            let (mut i, first) = expect(self.state_name(i), i, "a protocol state after `state` (CONNECT, EHLO, HELO, MAIL, RCPT, DATA, END-OF-MESSAGE, VRFY or ETRN)")?;
            let mut states = vec![first];
            loop {
                let comma = skip_ws(i);
                let Some(rest) = comma.strip_prefix(',') else {
                    break;
                };
                let (rest, s) = expect(self.state_name(rest), rest, "a protocol state after `,`")?;
                states.push(s);
                i = rest;
            }
            return Ok((i, Clause::State(states)));
        }
        if let Ok((i, _)) = self.keyword("if", i) {
            let (i, c) = self.condition_after(i, "a condition after `if`")?;
            return Ok((i, Clause::If(c)));
        }
        if let Ok((i, _)) = self.keyword("unless", i) {
            let (i, c) = self.condition_after(i, "a condition after `unless`")?;
            return Ok((i, Clause::Unless(c)));
        }
        error(skip_ws(i), "a clause")
    }

    /// `REF = NAME` that is not a keyword of conditions (`then`, `and`, ...):
    /// the name of a list or map, or a protocol state.
    fn ref_name<'a>(&self, i: &'a str) -> PResult<'a, Name> {
        let (rest, name) = self.name(i)?;
        if CONDITION_STOP_WORDS.contains(&name.text.as_str()) {
            return error(skip_ws(i), "a name");
        }
        Ok((rest, name))
    }

    /// `STATE = NAME` (the name is checked by the compiler)
    fn state_name<'a>(&self, i: &'a str) -> PResult<'a, Name> {
        self.ref_name(i)
    }

    fn condition_after<'a>(&self, i: &'a str, expected: &'static str) -> PResult<'a, Cond> {
        self.depth.set(0);
        expect(self.cond(i), i, expected)
    }

    /// `cond = and { "or" and }`
    pub(crate) fn cond<'a>(&self, i: &'a str) -> PResult<'a, Cond> {
        let (mut i, first) = self.and(i)?;
        let mut items = vec![first];
        while let Ok((rest, _)) = self.keyword("or", i) {
            let (rest, next) = expect(self.and(rest), rest, "a condition after `or`")?;
            items.push(next);
            i = rest;
        }
        Ok((i, fold(items, Cond::Or)))
    }

    /// `and = unary { "and" unary }`
    fn and<'a>(&self, i: &'a str) -> PResult<'a, Cond> {
        let (mut i, first) = self.unary(i)?;
        let mut items = vec![first];
        while let Ok((rest, _)) = self.keyword("and", i) {
            let (rest, next) = expect(self.unary(rest), rest, "a condition after `and`")?;
            items.push(next);
            i = rest;
        }
        Ok((i, fold(items, Cond::And)))
    }

    /// `unary = "not" unary | "(" cond ")" | test`
    fn unary<'a>(&self, i: &'a str) -> PResult<'a, Cond> {
        let start = skip_ws(i);
        if let Ok((rest, kw)) = self.keyword("not", start) {
            let (rest, inner) = self.nested(rest, |i| {
                expect(self.unary(i), i, "a condition after `not`")
            })?;
            let span = kw.to(Span::new(kw.start, self.offset(rest)));
            return Ok((rest, Cond::Not(Box::new(inner), span)));
        }
        if let Some(rest) = start.strip_prefix('(') {
            let (rest, inner) =
                self.nested(rest, |i| expect(self.cond(i), i, "a condition after `(`"))?;
            let close = skip_ws(rest);
            let Some(rest) = close.strip_prefix(')') else {
                return failure(close, "`)` to close `(`, or `and`/`or`");
            };
            // Parentheses only group: the inner condition keeps its own span,
            // widened to show the parentheses in explanations.
            let span = self.span(start, rest);
            let inner = match inner {
                Cond::Or(v, _) => Cond::Or(v, span),
                Cond::And(v, _) => Cond::And(v, span),
                other => other,
            };
            return Ok((rest, inner));
        }
        self.test(start)
    }

    /// Run `f` one nesting level deeper, refusing more than [`MAX_NESTING`].
    fn nested<'a, T>(
        &self,
        i: &'a str,
        f: impl FnOnce(&'a str) -> PResult<'a, T>,
    ) -> PResult<'a, T> {
        let depth = self.depth.get() + 1;
        if depth > MAX_NESTING {
            return failure(
                skip_ws(i),
                "at most 64 levels of `not` and parentheses (MAX_NESTING)",
            );
        }
        self.depth.set(depth);
        let result = f(i);
        self.depth.set(depth - 1);
        result
    }

    /// ```text
    /// test = FIELD "in" list_ref
    ///      | FIELD "in" ( "dnsbl" | "rhsbl" ) ( STRING | NAME )
    ///      | FIELD ( "==" | "!=" ) ( STRING | NUMBER | STATE )
    ///      | FIELD ( "<" | "<=" | ">" | ">=" ) NUMBER
    ///      | FIELD ( "starts_with" | "ends_with" | "contains" ) STRING
    ///      | FIELD "matches" REGEX | FIELD "like" STRING
    ///      | FIELD "is" ( "empty" | "set" )
    ///      | PREDICATE
    ///      | "unauthenticated_local_sender" list_ref
    ///      | "sender_login_mismatch" NAME
    /// ```
    fn test<'a>(&self, i: &'a str) -> PResult<'a, Cond> {
        let start = skip_ws(i);
        let (rest, name) =
            match self.name(start) {
                Ok(ok) if !CONDITION_STOP_WORDS.contains(&ok.1.text.as_str()) => ok,
                _ => return error(
                    start,
                    "a condition: a field test, a predicate such as `authenticated`, `not` or `(`",
                ),
            };
        let (rest, kind) = match name.text.as_str() {
            "unauthenticated_local_sender" => {
                let (rest, list) = expect(
                    self.list_ref(rest),
                    rest,
                    "a list name or `{ ... }` after `unauthenticated_local_sender`",
                )?;
                (rest, TestKind::UnauthenticatedLocalSender(list))
            }
            "sender_login_mismatch" => {
                let (rest, map) = expect(
                    self.ref_name(rest),
                    rest,
                    "the name of a `logins` map after `sender_login_mismatch`",
                )?;
                (rest, TestKind::SenderLoginMismatch(map))
            }
            "spf"
                if matches!(
                    self.score_operator(skip_ws(rest)),
                    Ok((_, CmpOp::Eq | CmpOp::Ne))
                ) =>
            {
                let (rest, op) = self.score_operator(skip_ws(rest))?;
                let (rest, result) = expect(
                    self.ref_name(rest),
                    rest,
                    "an SPF result after the comparison: pass, fail, softfail, neutral, none, temperror or permerror",
                )?;
                (rest, TestKind::Spf(op == CmpOp::Eq, result))
            }
            "score" if self.score_operator(skip_ws(rest)).is_ok() => {
                let (rest, op) = self.score_operator(skip_ws(rest))?;
                let (rest, value) = expect(
                    self.score_lit(rest),
                    rest,
                    "a score to compare with (such as 5, 4.5 or -1.25)",
                )?;
                (rest, TestKind::Score(op, value))
            }
            p if PREDICATES.contains(&p) => (rest, TestKind::Predicate(name)),
            word if Field::lookup_field(word).is_none()
                && self.operator(skip_ws(rest)).is_err() =>
            {
                // Neither a field nor a predicate, and no operator follows
                // to say it was meant as a field.
                return failure_saying(
                    start,
                    format!(
                        "unknown field or predicate `{word}`; expected a request attribute \
                         (sender, client_address, helo_name, ...), a derived field (sender_domain, \
                         recipient_local, ...) or a predicate (authenticated, tls, helo_is_fqdn, \
                         ...){}",
                        suggest::hint(word, Field::field_names().chain(PREDICATES))
                    ),
                );
            }
            _ => self.field_test(name, rest)?,
        };
        Ok((rest, Cond::Test(kind, self.span(start, rest))))
    }

    /// The operator and operand after a FIELD (see [`Parser::test`]).
    fn field_test<'a>(&self, field: Name, i: &'a str) -> PResult<'a, TestKind> {
        let op_start = skip_ws(i);
        let (rest, op) = self.operator(op_start).or_else(|_| {
            failure(
                op_start,
                "an operator after the field: in, ==, !=, <, <=, >, >=, starts_with, ends_with, contains, matches, like or is",
            )
        })?;
        match op {
            "in" => {
                for (keyword, side) in [("dnsbl", ListSide::Dnsbl), ("rhsbl", ListSide::Rhsbl)] {
                    let Ok((after, _)) = self.keyword(keyword, rest) else {
                        continue;
                    };
                    if let Ok((after, zone)) = self.string(after) {
                        return Ok((
                            after,
                            TestKind::InDnsList(field, side, DnsListRef::Zone(zone)),
                        ));
                    }
                    if let Ok((after, name)) = self.ref_name(after) {
                        return Ok((
                            after,
                            TestKind::InDnsList(field, side, DnsListRef::Named(name)),
                        ));
                    }
                    // `in dnsbl` alone: a list named `dnsbl`.
                }
                let (rest, list) = expect(
                    self.list_ref(rest),
                    rest,
                    "a list name or `{ ... }` after `in`",
                )?;
                Ok((rest, TestKind::In(field, list)))
            }
            "==" | "!=" => {
                let (rest, value) = expect(
                    self.value(rest),
                    rest,
                    "a string, a number or a protocol state to compare with",
                )?;
                let op = if op == "==" { CmpOp::Eq } else { CmpOp::Ne };
                Ok((rest, TestKind::Compare(field, op, value)))
            }
            "<" | "<=" | ">" | ">=" => {
                let (rest, n) = expect(self.number(rest), rest, "a number to compare with")?;
                let op = match op {
                    "<" => CmpOp::Lt,
                    "<=" => CmpOp::Le,
                    ">" => CmpOp::Gt,
                    _ => CmpOp::Ge,
                };
                Ok((rest, TestKind::Compare(field, op, Value::Number(n))))
            }
            "starts_with" | "ends_with" | "contains" => {
                let (rest, s) = expect(self.string(rest), rest, "a quoted string")?;
                let op = match op {
                    "starts_with" => StrOp::StartsWith,
                    "ends_with" => StrOp::EndsWith,
                    _ => StrOp::Contains,
                };
                Ok((rest, TestKind::Str(field, op, s)))
            }
            "matches" => {
                let (rest, r) = expect(
                    self.regex(rest),
                    rest,
                    "a regular expression `/.../` after `matches`",
                )?;
                Ok((rest, TestKind::Matches(field, r)))
            }
            "like" => {
                let (rest, s) = expect(
                    self.string(rest),
                    rest,
                    "a quoted glob pattern after `like`",
                )?;
                Ok((rest, TestKind::Like(field, s)))
            }
            _ => {
                if let Ok((rest, _)) = self.keyword("empty", rest) {
                    return Ok((rest, TestKind::IsEmpty(field)));
                }
                if let Ok((rest, _)) = self.keyword("set", rest) {
                    return Ok((rest, TestKind::IsSet(field)));
                }
                failure(skip_ws(rest), "`empty` or `set` after `is`")
            }
        }
    }

    /// `score_operator = "==" | "!=" | "<=" | ">=" | "<" | ">"`
    fn score_operator<'a>(&self, i: &'a str) -> PResult<'a, CmpOp> {
        for (text, op) in [
            ("==", CmpOp::Eq),
            ("!=", CmpOp::Ne),
            ("<=", CmpOp::Le),
            (">=", CmpOp::Ge),
            ("<", CmpOp::Lt),
            (">", CmpOp::Gt),
        ] {
            if let Some(rest) = i.strip_prefix(text) {
                return Ok((rest, op));
            }
        }
        error(i, "a comparison")
    }

    /// `SCORE = [ "+" | "-" ] DIGITS [ "." DIGIT [ DIGIT ] ]`, in hundredths,
    /// at most [`MAX_SCORE`] either way.
    fn score_lit<'a>(&self, i: &'a str) -> PResult<'a, ScoreLit> {
        let start = skip_ws(i);
        let (after_sign, negative) = match start.as_bytes().first() {
            Some(b'-') => (&start[1..], true),
            Some(b'+') => (&start[1..], false),
            _ => (start, false),
        };
        let (rest, whole) =
            take_while1::<_, _, PError<'a>>(|c: char| c.is_ascii_digit())(after_sign)
                .or_else(|_| error(start, "a score"))?;
        let (rest, fraction) = match rest.strip_prefix('.') {
            Some(after_dot) => {
                let (rest, digits) =
                    take_while1::<_, _, PError<'a>>(|c: char| c.is_ascii_digit())(after_dot)
                        .or_else(|_| failure(after_dot, "digits after the decimal point"))?;
                if digits.len() > 2 {
                    return failure(
                        after_dot,
                        "at most two digits after the decimal point (scores count in hundredths)",
                    );
                }
                (rest, digits)
            }
            None => (rest, ""),
        };
        let hundredths = whole
            .parse::<i64>()
            .ok()
            .filter(|&w| w <= MAX_SCORE)
            .map(|w| {
                let frac = match fraction.len() {
                    0 => 0,
                    1 => fraction.parse::<i64>().unwrap_or(0) * 10,
                    _ => fraction.parse::<i64>().unwrap_or(0),
                };
                w * 100 + frac
            })
            .filter(|&h| h <= MAX_SCORE * 100);
        let Some(hundredths) = hundredths else {
            return failure(start, "a score of at most 1000000 either way (MAX_SCORE)");
        };
        Ok((
            rest,
            ScoreLit {
                hundredths: if negative { -hundredths } else { hundredths },
                span: self.span(start, rest),
            },
        ))
    }

    /// ```text
    /// score_item = "score" NAME [ "dry-run" ] "{" { score_clause } "}"
    /// score_clause = clause
    ///              | "add" SCORE ( "if" | "unless" ) cond [ "as" STRING ]
    ///              | "above" SCORE action
    /// ```
    fn score_item<'a>(&self, i: &'a str) -> PResult<'a, ScoreDecl> {
        let (mut i, (name, dry_run, head)) = self.item_head(
            i,
            "score",
            "a score name after `score`",
            "`{` to open the score (or `dry-run`)",
        )?;
        let mut decl = ScoreDecl {
            name,
            dry_run,
            clauses: Vec::new(),
            adds: Vec::new(),
            thresholds: Vec::new(),
            head,
        };
        loop {
            let at = skip_ws(i);
            if let Some(rest) = at.strip_prefix('}') {
                return Ok((rest, decl));
            }
            if let Ok((rest, _)) = self.keyword("add", at) {
                let (rest, weight) = expect(
                    self.score_lit(rest),
                    rest,
                    "a weight after `add` (such as 4.35 or -1.5)",
                )?;
                let (rest, unless) = if let Ok((rest, _)) = self.keyword("if", rest) {
                    (rest, false)
                } else if let Ok((rest, _)) = self.keyword("unless", rest) {
                    (rest, true)
                } else {
                    return failure(skip_ws(rest), "`if` or `unless` after the weight");
                };
                let (rest, cond) = self.condition_after(rest, "a condition after `if`/`unless`")?;
                let (rest, reason) = match self.keyword("as", rest) {
                    Ok((rest, _)) => {
                        let (rest, reason) =
                            expect(self.string(rest), rest, "a quoted reason after `as`")?;
                        (rest, Some(reason))
                    }
                    Err(_) => (rest, None),
                };
                decl.adds.push(AddAst {
                    weight,
                    unless,
                    cond,
                    reason,
                });
                i = rest;
            } else if let Ok((rest, _)) = self.keyword("above", at) {
                let (rest, threshold) = expect(
                    self.score_lit(rest),
                    rest,
                    "a threshold after `above` (such as 5 or 4.5)",
                )?;
                let (rest, action) = self.action(rest)?;
                decl.thresholds.push((threshold, action));
                i = rest;
            } else {
                match self.clause(at) {
                    Ok((rest, clause)) => {
                        decl.clauses.push(clause);
                        i = rest;
                    }
                    Err(nom::Err::Error(_)) => {
                        return failure(at, "`add`, `above`, `state`, `if`, `unless` or `}`")
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// `operator = "in" | "==" | "!=" | "<=" | ">=" | "<" | ">" | "starts_with"
    ///            | "ends_with" | "contains" | "matches" | "like" | "is"`
    fn operator<'a>(&self, i: &'a str) -> PResult<'a, &'static str> {
        for op in ["==", "!=", "<=", ">=", "<", ">"] {
            if let Some(rest) = i.strip_prefix(op) {
                return Ok((rest, op));
            }
        }
        for op in [
            "in",
            "starts_with",
            "ends_with",
            "contains",
            "matches",
            "like",
            "is",
        ] {
            if let Ok((rest, _)) = self.keyword(op, i) {
                return Ok((rest, op));
            }
        }
        error(i, "an operator")
    }

    /// `value = STRING | NUMBER | STATE`
    fn value<'a>(&self, i: &'a str) -> PResult<'a, Value> {
        let start = skip_ws(i);
        if start.starts_with('"') {
            let (rest, s) = self.string(start)?;
            return Ok((rest, Value::Str(s)));
        }
        if start.starts_with(|c: char| c.is_ascii_digit()) {
            let (rest, n) = self.number(start)?;
            return Ok((rest, Value::Number(n)));
        }
        let (rest, w) = self.ref_name(start)?;
        Ok((rest, Value::Word(w)))
    }

    /// `list_ref = NAME | "{" { ENTRY } "}"`
    fn list_ref<'a>(&self, i: &'a str) -> PResult<'a, ListRef> {
        let start = skip_ws(i);
        if start.starts_with('{') {
            let (rest, (entries, span)) = self.entries(start)?;
            return Ok((rest, ListRef::Inline(entries, span)));
        }
        let (rest, name) = self.ref_name(start)?;
        Ok((rest, ListRef::Named(name)))
    }

    /// `action = ( VERB | CODE ) [ STRING ]` with `VERB = [A-Za-z_]+`,
    /// `CODE = DIGIT DIGIT DIGIT` (checked by the compiler).
    fn action<'a>(&self, i: &'a str) -> PResult<'a, ActionAst> {
        let start = skip_ws(i);
        let (rest, verb) = take_while1(|c: char| c.is_ascii_alphanumeric() || c == '_')(start)
            .or_else(|_: nom::Err<PError<'a>>| {
                failure(
                    start,
                    "an action: OK, DUNNO, REJECT, DEFER, DEFER_IF_REJECT, DEFER_IF_PERMIT, 4NN, 5NN, HOLD, DISCARD, FILTER, PREPEND, REDIRECT, BCC, WARN or INFO",
                )
            })?;
        let verb = Name {
            text: verb.to_owned(),
            span: self.span(start, rest),
        };
        let (rest, text) = if peek(|i| char::<_, PError<'a>>('"')(skip_ws(i)))(rest).is_ok() {
            let (rest, s) = self.string(rest)?;
            (rest, Some(s))
        } else {
            (rest, None)
        };
        Ok((
            rest,
            ActionAst {
                verb,
                text,
                span: self.span(start, rest),
            },
        ))
    }

    /// ```text
    /// limit_item = "limit" NAME [ "dry-run" ] "{" { limit_clause } "}"
    /// limit_clause = "if" cond | "unless" cond | "state" ...  (refused by the compiler)
    ///              | "key" key_part { "," key_part }
    ///              | "count" ( "messages" | "recipients" | "bytes" [ "*" "recipients" ] | "distinct" FIELD )
    ///              | "at" ( "rcpt" | "data" | "end-of-message" )
    ///              | "max" window { "," window }
    ///              | "overrides" ( "file" STRING | "{" { override } "}" )
    ///              | "capacity" NUMBER
    ///              | "on_failure" ( "allow" | "defer" | "skip" )
    ///              | "backend" ( "local" | "redis" )
    ///              | "over" action
    /// key_part = NAME { "/" NUMBER }
    /// window = NUMBER "per" DURATION
    /// override = ( STRING | WORD ) window { "," window }
    /// ```
    fn limit_item<'a>(&self, i: &'a str) -> PResult<'a, LimitDecl> {
        let (mut i, (name, dry_run, head)) = self.item_head(
            i,
            "limit",
            "a limit name after `limit`",
            "`{` to open the limit (or `dry-run`)",
        )?;
        let mut decl = LimitDecl {
            name,
            dry_run,
            clauses: Vec::new(),
            key: Vec::new(),
            count: None,
            at: None,
            windows: Vec::new(),
            overrides: None,
            capacity: None,
            on_failure: None,
            backend: None,
            over: None,
            head,
        };
        const EXPECTED: &str = "`if`, `unless`, `key`, `count`, `at`, `max`, `overrides`, \
             `capacity`, `on_failure`, `backend`, `over` or `}`";
        loop {
            let next = skip_ws(i);
            if let Some(rest) = next.strip_prefix('}') {
                return Ok((rest, decl));
            }
            let word: &str = take_while::<_, _, PError<'a>>(is_name_char)(next)
                .map(|(_, w)| w)
                .unwrap_or("");
            let repeated = |what: &'static str| failure::<LimitDecl>(next, what);
            i = match word {
                "if" | "unless" | "state" => {
                    let (rest, clause) = self.clause(next)?;
                    decl.clauses.push(clause);
                    rest
                }
                "key" => {
                    if !decl.key.is_empty() {
                        return repeated("one `key` clause per limit (list the parts after one `key`, separated by `,`)");
                    }
                    let (mut rest, _) = self.keyword("key", next)?;
                    loop {
                        let (after, part) = expect(
                            self.key_part(rest),
                            rest,
                            "a field for the key (`sasl_username`, `sender`, `client_address/24/64`, ...)",
                        )?;
                        decl.key.push(part);
                        let comma = skip_ws(after);
                        match comma.strip_prefix(',') {
                            Some(after) => rest = after,
                            None => break after,
                        }
                    }
                }
                "count" => {
                    if decl.count.is_some() {
                        return repeated("one `count` clause per limit");
                    }
                    let (rest, _) = self.keyword("count", next)?;
                    let (rest, what) = expect(
                        self.name(rest),
                        rest,
                        "what to count: `messages`, `recipients`, `bytes` or `distinct FIELD`",
                    )?;
                    let (rest, count) = match what.text.as_str() {
                        "distinct" => {
                            let (rest, field) = expect(
                                self.ref_name(rest),
                                rest,
                                "the field whose distinct values are counted after `distinct` (such as helo_name)",
                            )?;
                            (rest, CountAst::Distinct(field.span))
                        }
                        "messages" => (rest, CountAst::Messages),
                        "recipients" => (rest, CountAst::Recipients),
                        "bytes" => {
                            let star = skip_ws(rest);
                            match star.strip_prefix('*') {
                                Some(after) => {
                                    let (after, r) = expect(
                                        self.keyword("recipients", after),
                                        after,
                                        "`recipients` after `bytes *`",
                                    )?;
                                    let _ = r;
                                    (
                                        after,
                                        CountAst::Bytes {
                                            times_recipients: true,
                                        },
                                    )
                                }
                                None => (
                                    rest,
                                    CountAst::Bytes {
                                        times_recipients: false,
                                    },
                                ),
                            }
                        }
                        _ => return failure(
                            skip_ws(&next[5..]),
                            "what to count: `messages`, `recipients`, `bytes` or `distinct FIELD`",
                        ),
                    };
                    decl.count = Some((count, self.span(next, rest)));
                    rest
                }
                "at" => {
                    if decl.at.is_some() {
                        return repeated("one `at` clause per limit");
                    }
                    let (rest, _) = self.keyword("at", next)?;
                    let (rest, state) = expect(
                        self.name(rest),
                        rest,
                        "when to count: `rcpt`, `data` or `end-of-message`",
                    )?;
                    decl.at = Some(state);
                    rest
                }
                "max" => {
                    if !decl.windows.is_empty() {
                        return repeated("one `max` clause per limit (list the windows after one `max`, separated by `,`)");
                    }
                    let (rest, _) = self.keyword("max", next)?;
                    let (rest, windows) = self.windows(rest)?;
                    decl.windows = windows;
                    rest
                }
                "overrides" => {
                    if decl.overrides.is_some() {
                        return repeated("one `overrides` clause per limit");
                    }
                    let (rest, _) = self.keyword("overrides", next)?;
                    let (rest, overrides) = self.overrides(rest)?;
                    decl.overrides = Some(overrides);
                    rest
                }
                "capacity" => {
                    if decl.capacity.is_some() {
                        return repeated("one `capacity` clause per limit");
                    }
                    let (rest, _) = self.keyword("capacity", next)?;
                    let (rest, n) = expect(
                        self.number(rest),
                        rest,
                        "the most keys to track after `capacity` (a number)",
                    )?;
                    decl.capacity = Some(n);
                    rest
                }
                "on_failure" => {
                    if decl.on_failure.is_some() {
                        return repeated("one `on_failure` clause per limit");
                    }
                    let (rest, outcome) = self.on_failure(next)?;
                    decl.on_failure = Some(outcome);
                    rest
                }
                "backend" => {
                    if decl.backend.is_some() {
                        return repeated("one `backend` clause per limit");
                    }
                    let (rest, (word, _)) = self.backend(next)?;
                    decl.backend = Some(word);
                    rest
                }
                "over" => {
                    if decl.over.is_some() {
                        return repeated("one `over` clause per limit");
                    }
                    let (rest, _) = self.keyword("over", next)?;
                    let (rest, action) = self.action(rest)?;
                    decl.over = Some(action);
                    rest
                }
                _ => return failure(next, EXPECTED),
            };
        }
    }

    /// ```text
    /// greylist_item = "greylist" NAME [ "dry-run" ] "{" { greylist_clause } "}"
    /// greylist_clause = "if" cond | "unless" cond | "state" ...  (refused by the compiler)
    ///                 | "client" key_part
    ///                 | "delay" DURATION | "retry_window" DURATION | "max_age" DURATION
    ///                 | "auto_whitelist" NUMBER
    ///                 | "whitelist" ( "clients" | "recipients" ) "file" STRING
    ///                 | "capacity" NUMBER
    ///                 | "on_failure" ( "allow" | "defer" | "skip" )
    ///                 | "backend" ( "local" | "redis" )
    ///                 | "then" action
    ///                 | "prepend" STRING
    /// ```
    fn greylist_item<'a>(&self, i: &'a str) -> PResult<'a, GreylistDecl> {
        const EXPECTED: &str = "`if`, `unless`, `client`, `delay`, `retry_window`, `max_age`, \
             `auto_whitelist`, `whitelist`, `capacity`, `on_failure`, `backend`, `then`, \
             `prepend` or `}`";
        let (mut i, (name, dry_run, head)) = self.item_head(
            i,
            "greylist",
            "a greylist name after `greylist`",
            "`{` to open the greylist (or `dry-run`)",
        )?;
        let mut decl = GreylistDecl {
            name,
            dry_run,
            clauses: Vec::new(),
            client: None,
            delay: None,
            retry_window: None,
            max_age: None,
            auto_whitelist: None,
            whitelists: Vec::new(),
            capacity: None,
            on_failure: None,
            backend: None,
            then: None,
            prepend: None,
            head,
        };
        loop {
            let next = skip_ws(i);
            if let Some(rest) = next.strip_prefix('}') {
                return Ok((rest, decl));
            }
            let word: &str = take_while::<_, _, PError<'a>>(is_name_char)(next)
                .map(|(_, w)| w)
                .unwrap_or("");
            let repeated = |seen: bool, what: &'static str| -> PResult<'a, ()> {
                if seen {
                    failure(next, what)
                } else {
                    Ok((next, ()))
                }
            };
            i = match word {
                "if" | "unless" | "state" => {
                    let (rest, clause) = self.clause(next)?;
                    decl.clauses.push(clause);
                    rest
                }
                "client" => {
                    repeated(decl.client.is_some(), "one `client` clause per greylist")?;
                    let (rest, _) = self.keyword("client", next)?;
                    let (rest, part) = expect(
                        self.key_part(rest),
                        rest,
                        "the client's address field after `client` (`client_address/24/64` or `client_address`)",
                    )?;
                    decl.client = Some(part);
                    rest
                }
                "delay" | "retry_window" | "max_age" => {
                    let (keyword, slot) = match word {
                        "delay" => ("delay", &mut decl.delay),
                        "retry_window" => ("retry_window", &mut decl.retry_window),
                        _ => ("max_age", &mut decl.max_age),
                    };
                    if slot.is_some() {
                        return failure(next, "each timer once per greylist");
                    }
                    let (rest, _) = self.keyword(keyword, next)?;
                    let (rest, d) = self.duration(rest)?;
                    *slot = Some(d);
                    rest
                }
                "auto_whitelist" => {
                    repeated(
                        decl.auto_whitelist.is_some(),
                        "one `auto_whitelist` clause per greylist",
                    )?;
                    let (rest, _) = self.keyword("auto_whitelist", next)?;
                    let (rest, n) = expect(
                        self.number(rest),
                        rest,
                        "the passes after which a client network skips greylisting (a number; 0 turns it off)",
                    )?;
                    decl.auto_whitelist = Some(n);
                    rest
                }
                "whitelist" => {
                    let (rest, _) = self.keyword("whitelist", next)?;
                    let (rest, kind) = expect(
                        self.name(rest),
                        rest,
                        "`clients`, `recipients` or `spf_pass` after `whitelist`",
                    )?;
                    if kind.text == "spf_pass" {
                        // `unless spf == pass`, under its own name.
                        let span = self.span(next, rest);
                        let pass = Name {
                            text: "pass".into(),
                            span: kind.span,
                        };
                        decl.clauses
                            .push(Clause::Unless(Cond::Test(TestKind::Spf(true, pass), span)));
                        i = rest;
                        continue;
                    }
                    let (rest, _) = expect(
                        self.keyword("file", rest),
                        rest,
                        "`file \"PATH\"` after the whitelist's kind (a file in postgrey's format)",
                    )?;
                    let (rest, path) =
                        expect(self.string(rest), rest, "a quoted file name after `file`")?;
                    decl.whitelists.push(WhitelistAst { kind, path });
                    rest
                }
                "capacity" => {
                    repeated(
                        decl.capacity.is_some(),
                        "one `capacity` clause per greylist",
                    )?;
                    let (rest, _) = self.keyword("capacity", next)?;
                    let (rest, n) = expect(
                        self.number(rest),
                        rest,
                        "the most triplets to track after `capacity` (a number)",
                    )?;
                    decl.capacity = Some(n);
                    rest
                }
                "on_failure" => {
                    repeated(
                        decl.on_failure.is_some(),
                        "one `on_failure` clause per greylist",
                    )?;
                    let (rest, outcome) = self.on_failure(next)?;
                    decl.on_failure = Some(outcome);
                    rest
                }
                "backend" => {
                    repeated(decl.backend.is_some(), "one `backend` clause per greylist")?;
                    let (rest, (word, _)) = self.backend(next)?;
                    decl.backend = Some(word);
                    rest
                }
                "then" => {
                    repeated(decl.then.is_some(), "one `then` clause per greylist")?;
                    let (rest, _) = self.keyword("then", next)?;
                    let (rest, action) = self.action(rest)?;
                    decl.then = Some(action);
                    rest
                }
                "prepend" => {
                    repeated(decl.prepend.is_some(), "one `prepend` clause per greylist")?;
                    let (rest, _) = self.keyword("prepend", next)?;
                    let (rest, header) = expect(
                        self.string(rest),
                        rest,
                        "a quoted header after `prepend` (`\"X-Greylist: delayed $delay seconds\"`)",
                    )?;
                    decl.prepend = Some(header);
                    rest
                }
                _ => return failure(next, EXPECTED),
            };
        }
    }

    /// `key_part = NAME { "/" NUMBER }`
    fn key_part<'a>(&self, i: &'a str) -> PResult<'a, KeyPartAst> {
        let start = skip_ws(i);
        let (mut rest, field) = self.ref_name(start)?;
        let mut masks = Vec::new();
        while let Some(after) = rest.strip_prefix('/') {
            let (after, n) = expect(self.number(after), after, "a prefix length after `/`")?;
            masks.push(n);
            rest = after;
        }
        Ok((
            rest,
            KeyPartAst {
                field,
                masks,
                span: self.span(start, rest),
            },
        ))
    }

    /// `windows = window { "," window }`
    fn windows<'a>(&self, i: &'a str) -> PResult<'a, Vec<WindowAst>> {
        let (mut i, first) = self.window(i)?;
        let mut windows = vec![first];
        loop {
            let comma = skip_ws(i);
            let Some(rest) = comma.strip_prefix(',') else {
                return Ok((i, windows));
            };
            let (rest, w) = self.window(rest)?;
            windows.push(w);
            i = rest;
        }
    }

    /// `window = NUMBER "per" DURATION`
    fn window<'a>(&self, i: &'a str) -> PResult<'a, WindowAst> {
        let (i, max) = expect(self.number(i), i, "a maximum, as in `max 100 per 1h`")?;
        let (i, _) = expect(
            self.keyword("per", i),
            i,
            "`per` after the maximum, as in `100 per 1h`",
        )?;
        let (i, per) = self.duration(i)?;
        Ok((i, WindowAst { max, per }))
    }

    /// `DURATION = DIGIT { DIGIT } ( "s" | "m" | "h" | "d" | "w" )`
    fn duration<'a>(&self, i: &'a str) -> PResult<'a, DurationLit> {
        const EXPECTED: &str =
            "a duration: a number and a unit s, m, h, d or w (`30s`, `1h`, `1d`)";
        let start = skip_ws(i);
        let (rest, digits) = take_while1(|c: char| c.is_ascii_digit())(start)
            .or_else(|_: nom::Err<PError<'a>>| failure(start, EXPECTED))?;
        let (after, unit) = take_while(is_name_char)(rest)?;
        let ms: u64 = match unit {
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            _ => return failure(if unit.is_empty() { start } else { rest }, EXPECTED),
        };
        let Some(ms) = digits.parse::<u64>().ok().and_then(|n| n.checked_mul(ms)) else {
            return failure(start, "a shorter duration");
        };
        Ok((
            after,
            DurationLit {
                ms,
                span: self.span(start, after),
            },
        ))
    }

    /// `overrides = "file" STRING | "{" { override } "}"`
    fn overrides<'a>(&self, i: &'a str) -> PResult<'a, OverridesAst> {
        if let Ok((i, _)) = self.keyword("file", i) {
            let (i, path) = expect(self.string(i), i, "a quoted file name after `file`")?;
            return Ok((i, OverridesAst::File(path)));
        }
        let brace = skip_ws(i);
        let Some(mut rest) = brace.strip_prefix('{') else {
            return failure(brace, "`{` with the overrides, or `file \"name\"`");
        };
        let mut entries = Vec::new();
        loop {
            let next = skip_ws(rest);
            if let Some(after) = next.strip_prefix('}') {
                return Ok((after, OverridesAst::Inline(entries)));
            }
            let (after, entry) = self.override_entry(next)?;
            entries.push(entry);
            rest = after;
        }
    }

    /// `override = ( STRING | WORD ) window { "," window }`
    pub(crate) fn override_entry<'a>(&self, i: &'a str) -> PResult<'a, OverrideAst> {
        let (i, key) = expect(
            self.login_entry(i),
            i,
            "a key (as `$key` shows it) and its maxima, or `}`",
        )?;
        let (i, windows) = self.windows(i)?;
        Ok((i, OverrideAst { key, windows }))
    }

    /// `default_item = "default" action`
    fn default_item<'a>(&self, i: &'a str) -> PResult<'a, (ActionAst, Span)> {
        let (i, kw) = self.keyword("default", i)?;
        let (i, action) = self.action(i)?;
        Ok((i, (action, kw)))
    }

    /// ```text
    /// dns_list_item = ( "dnsbl" | "rhsbl" ) NAME "{" { dns_list_clause } "}"
    /// dns_list_clause = "zone" STRING
    ///                 | "answer" answer { answer }
    ///                 | "txt"
    /// answer = ADDRESS [ "-" ADDRESS ] | "mask" ADDRESS
    /// ADDRESS = [0-9.]+   (a dotted quad, or a number after "mask"; checked by the compiler)
    /// ```
    fn dns_list_item<'a>(&self, i: &'a str, side: ListSide) -> PResult<'a, DnsListDecl> {
        let keyword = match side {
            ListSide::Dnsbl => "dnsbl",
            ListSide::Rhsbl => "rhsbl",
        };
        let head_start = skip_ws(i);
        let (i, _) = self.keyword(keyword, i)?;
        let (i, name) = expect(self.name(i), i, "a list name after the keyword")?;
        let head = self.span(head_start, i);
        let open = skip_ws(i);
        let Some(mut i) = open.strip_prefix('{') else {
            return failure(open, "`{` to open the list");
        };
        let mut decl = DnsListDecl {
            name,
            side,
            zone: None,
            answers: Vec::new(),
            txt: false,
            head,
        };
        loop {
            let at = skip_ws(i);
            if let Some(rest) = at.strip_prefix('}') {
                return Ok((rest, decl));
            }
            if let Ok((rest, _)) = self.keyword("zone", at) {
                let (rest, zone) =
                    expect(self.string(rest), rest, "a quoted DNS zone after `zone`")?;
                decl.zone = Some(zone);
                i = rest;
            } else if let Ok((rest, _)) = self.keyword("answer", at) {
                let (rest, first) = expect(
                    self.answer(rest),
                    rest,
                    "an address (127.0.0.2), a range (127.0.0.2-127.0.0.11) or `mask ADDRESS` after `answer`",
                )?;
                decl.answers.push(first);
                i = rest;
                while let Ok((rest, more)) = self.answer(i) {
                    decl.answers.push(more);
                    i = rest;
                }
            } else if let Ok((rest, _)) = self.keyword("txt", at) {
                decl.txt = true;
                i = rest;
            } else {
                return failure(at, "`zone`, `answer`, `txt` or `}`");
            }
        }
    }

    /// `answer = ADDRESS [ "-" ADDRESS ] | "mask" ADDRESS`
    fn answer<'a>(&self, i: &'a str) -> PResult<'a, AnswerAst> {
        if let Ok((rest, _)) = self.keyword("mask", i) {
            let (rest, mask) = expect(
                self.address_word(rest),
                rest,
                "a bit mask after `mask` (0.0.0.8 or 8)",
            )?;
            return Ok((rest, AnswerAst::Mask(mask)));
        }
        let (rest, first) = self.address_word(i)?;
        if let Some(after) = rest.strip_prefix('-') {
            let (rest, last) = expect(
                self.address_word(after),
                after,
                "the last address of the range after `-`",
            )?;
            return Ok((rest, AnswerAst::Range(first, Some(last))));
        }
        Ok((rest, AnswerAst::Range(first, None)))
    }

    /// `ADDRESS = [0-9.]+`
    fn address_word<'a>(&self, i: &'a str) -> PResult<'a, Str> {
        let start = skip_ws(i);
        let (rest, word) =
            take_while1::<_, _, PError<'a>>(|c: char| c.is_ascii_digit() || c == '.')(start)
                .or_else(|_| error(start, "an address"))?;
        Ok((
            rest,
            Str {
                value: word.to_owned(),
                span: self.span(start, rest),
            },
        ))
    }

    /// ```text
    /// item = list_item | logins_item | dns_list_item | rule_item | limit_item | greylist_item
    ///      | score_item | default_item | backend_item
    /// backend_item = "backend" ( "local" | "redis" )
    /// ```
    fn item<'a>(&self, i: &'a str) -> PResult<'a, Item> {
        let start = skip_ws(i);
        let word: &str = take_while::<_, _, PError<'a>>(is_name_char)(start)
            .map(|(_, w)| w)
            .unwrap_or("");
        match word {
            "list" => self.list_item(start).map(|(r, d)| (r, Item::List(d))),
            "logins" => self.logins_item(start).map(|(r, d)| (r, Item::Logins(d))),
            "dnsbl" => self
                .dns_list_item(start, ListSide::Dnsbl)
                .map(|(r, d)| (r, Item::DnsList(d))),
            "rhsbl" => self
                .dns_list_item(start, ListSide::Rhsbl)
                .map(|(r, d)| (r, Item::DnsList(d))),
            "rule" => self.rule_item(start).map(|(r, d)| (r, Item::Rule(d))),
            "limit" => self.limit_item(start).map(|(r, d)| (r, Item::Limit(d))),
            "greylist" => self
                .greylist_item(start)
                .map(|(r, d)| (r, Item::Greylist(d))),
            "score" => self.score_item(start).map(|(r, d)| (r, Item::Score(d))),
            "default" => self
                .default_item(start)
                .map(|(r, (a, s))| (r, Item::Default(a, s))),
            "backend" => self
                .backend(start)
                .map(|(r, (word, kw))| (r, Item::Backend(word, kw))),
            _ => failure(
                start,
                "`list`, `logins`, `dnsbl`, `rhsbl`, `rule`, `limit`, `greylist`, `score`, \
                 `default` or `backend`",
            ),
        }
    }
}

/// One item of a list, or the list itself when there is only one.
fn fold(mut items: Vec<Cond>, make: fn(Vec<Cond>, Span) -> Cond) -> Cond {
    if items.len() == 1 {
        if let Some(only) = items.pop() {
            return only;
        }
    }
    let span = match (items.first(), items.last()) {
        (Some(a), Some(b)) => a.span().to(b.span()),
        _ => Span::default(),
    };
    make(items, span)
}

/// A syntax error: byte offset and the message (what was expected, what was found).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub(crate) offset: usize,
    pub(crate) message: String,
}

/// `policy = { item } EOF`
///
/// Parses every item it can; after a broken item, resumes at the next line
/// starting with an item keyword. Returns the items and every syntax error.
pub(crate) fn parse_policy(src: &str) -> (Vec<Item>, Vec<SyntaxError>) {
    let parser = Parser::new(src);
    let mut items = Vec::new();
    let mut errors = Vec::new();
    // A byte order mark, as some editors write, is not part of the policy.
    let mut rest = src.strip_prefix('\u{feff}').unwrap_or(src);
    loop {
        rest = skip_ws(rest);
        if rest.is_empty() {
            break;
        }
        let item_start = parser.offset(rest);
        match parser.item(rest) {
            Ok((after, item)) => {
                items.push(item);
                rest = after;
            }
            Err(nom::Err::Error(e) | nom::Err::Failure(e)) => {
                let offset = parser.offset(e.input);
                errors.push(SyntaxError {
                    offset,
                    message: e.message(),
                });
                rest = &src[resume_point(src, item_start, offset)..];
            }
            // Only streaming parsers return `Incomplete`; these are complete.
            Err(nom::Err::Incomplete(_)) => break,
        }
    }
    (items, errors)
}

/// The entries of an overrides file: `override` items (see
/// [`Parser::override_entry`]) separated by whitespace and `#` comments.
/// Every broken line is reported (the parser resumes at the next line).
pub(crate) fn parse_overrides_file(src: &str) -> (Vec<OverrideAst>, Vec<SyntaxError>) {
    let parser = Parser::new(src);
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    let mut rest = src.strip_prefix('\u{feff}').unwrap_or(src);
    loop {
        rest = skip_ws(rest);
        if rest.is_empty() {
            break;
        }
        let entry_at = parser.offset(rest);
        let parsed = parser.override_entry(rest).and_then(|(after, entry)| {
            // One entry a line: the entry does not span lines, and only
            // blanks or a comment follow it on its line.
            let text = &src[entry_at..parser.offset(after)];
            if let Some(nl) = text.find('\n') {
                // Reported where the entry goes on, so that parsing
                // resumes after it.
                let more = text[nl..].trim_start();
                return failure(
                    &src[parser.offset(after) - more.len()..],
                    "the entry's windows on the same line as its key (one entry a line)",
                );
            }
            let tail = after.trim_start_matches([' ', '\t', '\r']);
            if !(tail.is_empty() || tail.starts_with('\n') || tail.starts_with('#')) {
                return failure(
                    tail,
                    "the end of the line after an entry (one entry a line)",
                );
            }
            Ok((after, entry))
        });
        match parsed {
            Ok((after, entry)) => {
                entries.push(entry);
                rest = after;
            }
            Err(nom::Err::Error(e) | nom::Err::Failure(e)) => {
                let offset = parser.offset(e.input);
                errors.push(SyntaxError {
                    offset,
                    message: e.message(),
                });
                let next_line = src[offset..]
                    .find('\n')
                    .map_or(src.len(), |n| offset + n + 1);
                rest = &src[next_line..];
            }
            Err(nom::Err::Incomplete(_)) => break,
        }
    }
    (entries, errors)
}

/// Whether byte `at` of `src` is the first token of its line and an item
/// keyword (`list`, `logins`, `rule`, `default`) followed by a space: where an
/// unclosed list most likely ended.
fn starts_item_line(src: &str, at: usize) -> bool {
    let line_start = src[..at.min(src.len())].rfind('\n').map_or(0, |n| n + 1);
    let before = &src[line_start..at.min(src.len())];
    let rest = &src[at.min(src.len())..];
    before.trim().is_empty()
        && ITEM_KEYWORDS.iter().any(|kw| {
            rest.strip_prefix(kw)
                .is_some_and(|r| r.starts_with([' ', '\t']))
        })
}

/// Where to resume after an item starting at `item_start` failed at
/// `error_at`: the first line at or after the error's line (and after the
/// item's start) whose first token is an item keyword; the end otherwise.
fn resume_point(src: &str, item_start: usize, error_at: usize) -> usize {
    let error_at = error_at.min(src.len());
    let mut line_start = src[..error_at].rfind('\n').map_or(0, |n| n + 1);
    while line_start < src.len() {
        let line = &src[line_start..];
        let trimmed = line.trim_start_matches([' ', '\t', '\r']);
        let at = line_start + (line.len() - trimmed.len());
        if at > item_start
            && ITEM_KEYWORDS.iter().any(|kw| {
                trimmed
                    .strip_prefix(kw)
                    .is_some_and(|r| !r.starts_with(is_name_char))
            })
        {
            return at;
        }
        match line.find('\n') {
            Some(n) => line_start += n + 1,
            None => break,
        }
    }
    src.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only_error(src: &str) -> SyntaxError {
        let (_, errors) = parse_policy(src);
        assert_eq!(errors.len(), 1, "{src}: {errors:?}");
        errors.into_iter().next().unwrap_or(SyntaxError {
            offset: 0,
            message: String::new(),
        })
    }

    #[test]
    fn parses_the_spec_example() {
        let src = r#"
# comment
list trusted_nets cidr { 127.0.0.0/8 ::1 10.0.0.0/8 }     # kind given
list local_domains domain file "local_domains"
list blocked { spammer@example.net "bad@" .spam.example /^[0-9]+@/i "*.dyn.*" }
logins sender_logins file "sender_logins"
logins inline { joe@example.com joe "@example.org" "admin, root" }
rule trusted { if client_address in trusted_nets then OK }
rule block-senders { state RCPT  if sender in blocked  then REJECT "5.7.1 Sender $sender is blocked" }
rule no-spoofing { if unauthenticated_local_sender local_domains then REJECT "5.7.1 Authenticate" }
rule login-mismatch { if sender_login_mismatch sender_logins then REJECT "5.7.1 no" }
rule big dry-run { if size > 20MB and not authenticated then DEFER "4.5.3 Too big for now" }
rule helo { unless helo_is_fqdn or authenticated then REJECT "5.7.1 HELO must be a FQDN" }
rule s { state RCPT, DATA if (a == "x" or b != 3) and protocol_state == RCPT then 450 "4.7.1 x" }
default DUNNO
"#;
        let (items, errors) = parse_policy(src);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(items.len(), 13);
        let Item::List(l) = &items[2] else {
            panic!("not a list: {:?}", items[2]);
        };
        let ListBody::Inline(entries) = &l.body else {
            panic!("not inline");
        };
        assert_eq!(entries.len(), 5);
        assert!(
            matches!(&entries[3], Entry::Regex(r) if r.pattern == "^[0-9]+@" && r.case_insensitive)
        );
        let Item::Rule(r) = &items[9] else {
            panic!("not a rule");
        };
        assert!(r.dry_run);
        let Clause::If(Cond::And(parts, _)) = &r.clauses[0] else {
            panic!("not an and: {:?}", r.clauses);
        };
        assert!(
            matches!(&parts[0], Cond::Test(TestKind::Compare(f, CmpOp::Gt, Value::Number(n)), _) if f.text == "size" && n.value == 20_000_000)
        );
        assert!(matches!(&parts[1], Cond::Not(..)));
    }

    #[test]
    fn strings_regexes_numbers() {
        let p = Parser::new("");
        assert_eq!(
            p.string(r#" "a\"b\\c" x"#).map(|(r, s)| (r, s.value)).ok(),
            Some((" x", "a\"b\\c".to_owned()))
        );
        assert_eq!(
            p.regex(r"/a\/b\d/i")
                .map(|(_, r)| (r.pattern, r.case_insensitive))
                .ok(),
            Some(("a/b\\d".to_owned(), true))
        );
        for (text, value) in [
            ("5", 5),
            ("2k", 2000),
            ("2kB", 2000),
            ("1KiB", 1024),
            ("3M", 3_000_000),
            ("1MiB", 1 << 20),
            ("1G", 1_000_000_000),
            ("2GiB", 2 << 30),
        ] {
            assert_eq!(
                p.number(text).map(|(_, n)| n.value).ok(),
                Some(value),
                "{text}"
            );
        }
        assert!(matches!(p.number("5x"), Err(nom::Err::Failure(_))));
        assert!(matches!(
            p.number("99999999999999999999"),
            Err(nom::Err::Failure(_))
        ));
    }

    #[test]
    fn syntax_errors_name_what_was_expected() {
        // (source, offset of the error, fragment of the message)
        let rows: &[(&str, usize, &str)] = &[
            (
                "rule",
                4,
                "expected a rule name after `rule`, found end of file",
            ),
            ("rule x if", 7, "expected `{` to open the rule"),
            (
                "rule x { if then OK }",
                12,
                "expected a condition after `if`, found `then`",
            ),
            (
                "rule x { if sender b }",
                19,
                "expected an operator after the field",
            ),
            (
                "rule x { if a b }",
                12,
                "unknown field or predicate `a`",
            ),
            (
                "rule x { if tls OK }",
                16,
                "expected `and`, `or`, `state`, `if`, `unless` or `then`, found `OK`",
            ),
            ("rule x { then OK", 16, "expected `}` to close the rule"),
            ("rule x { then }", 14, "expected an action"),
            (
                "bogus",
                0,
                "expected `list`, `logins`, `dnsbl`, `rhsbl`, `rule`, `limit`, `greylist`, `score`, \
                 `default` or `backend`, found `bogus`",
            ),
            ("list a { b", 10, "an entry or `}` to close the list"),
            ("list a { \"b }", 9, "a closing `\"` for this string"),
            ("list a { \"b\nc\" }", 11, "a string cannot span lines"),
            ("rule x { if a matches /x/g then OK }", 25, "flag `i`"),
            ("rule x { if (tls then OK }", 17, "`)` to close `(`"),
            ("rule x { if size > 5q then OK }", 20, "size unit"),
            (
                "rule x { if a is full then OK }",
                17,
                "`empty` or `set` after `is`",
            ),
            (
                "rule x { state then OK }",
                15,
                "a protocol state after `state`",
            ),
            ("logins m { a }", 13, "the logins owning this sender"),
            ("list", 4, "a list name"),
            ("list a cidr", 11, "`{` with the list's entries"),
            (
                "backend",
                7,
                "expected where the state is kept after `backend`: `local` or `redis`, found end of file",
            ),
            (
                "backend \"redis\"",
                8,
                "expected where the state is kept after `backend`: `local` or `redis`, found a string",
            ),
            (
                "limit l { backend over DEFER }",
                18,
                "expected where the state is kept after `backend`: `local` or `redis`, found `over`",
            ),
            (
                "limit l { backend redis backend local }",
                24,
                "expected one `backend` clause per limit, found `backend`",
            ),
            (
                "greylist g { backend local\n backend local }",
                28,
                "expected one `backend` clause per greylist, found `backend`",
            ),
            (
                "limit l { key sender backnd redis }",
                21,
                "expected `if`, `unless`, `key`, `count`, `at`, `max`, `overrides`, `capacity`, \
                 `on_failure`, `backend`, `over` or `}`, found `backnd`; did you mean `backend`?",
            ),
            (
                "greylist g { bakend redis }",
                13,
                "`on_failure`, `backend`, `then`, `prepend` or `}`, found `bakend`; did you mean `backend`?",
            ),
        ];
        for &(src, offset, fragment) in rows {
            let e = only_error(src);
            assert!(e.message.contains(fragment), "{src}: {}", e.message);
            assert_eq!(e.offset, offset, "{src}: {}", e.message);
        }
    }

    #[test]
    fn backend_as_a_clause_and_as_a_statement() {
        let src = "backend redis\n\
                   limit l { key sender count messages max 1 per 1h backend local }\n\
                   greylist g { if tls backend redis on_failure skip }\n\
                   limit m { key sender count messages max 1 per 1h }\n";
        let (items, errors) = parse_policy(src);
        assert!(errors.is_empty(), "{errors:?}");
        let [Item::Backend(top, kw), Item::Limit(l), Item::Greylist(g), Item::Limit(m)] =
            items.as_slice()
        else {
            panic!("{items:?}");
        };
        assert_eq!((top.text.as_str(), kw.text(src)), ("redis", "backend"));
        assert_eq!(top.span.text(src), "redis");
        assert_eq!(l.backend.as_ref().map(|n| n.text.as_str()), Some("local"));
        // `backend` ends the greylist's condition.
        assert_eq!(g.clauses.len(), 1);
        assert_eq!(g.backend.as_ref().map(|n| n.text.as_str()), Some("redis"));
        assert!(g.on_failure.is_some());
        assert_eq!(m.backend, None);
    }

    #[test]
    fn a_backend_clause_is_not_where_recovery_resumes() {
        // The broken limit is one error: parsing does not resume at its
        // `backend` clause (which would report its `}` as a second one).
        let src = "limit l {\n  count mesages\n  backend redis\n}\nrule r { then OK }\n";
        let (items, errors) = parse_policy(src);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(matches!(items.as_slice(), [Item::Rule(_)]), "{items:?}");
    }

    #[test]
    fn recovery_reports_every_broken_item() {
        let src = "rule a { if then OK }\nrule b { then OK }\nrule c { then }\n  list d {\ndefault DUNNO\n";
        let (items, errors) = parse_policy(src);
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert_eq!(items.len(), 2, "{items:?}");
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!(
            "rule x {{ if {}tls then OK }}",
            "not ".repeat(MAX_NESTING + 1)
        );
        let e = only_error(&deep);
        assert!(e.message.contains("at most 64 levels"), "{}", e.message);
        let ok = format!(
            "rule x {{ if {}tls{} then OK }}",
            "(".repeat(MAX_NESTING),
            ")".repeat(MAX_NESTING)
        );
        assert!(parse_policy(&ok).1.is_empty());
        let too_deep = format!(
            "rule x {{ if {}tls{} then OK }}",
            "(".repeat(MAX_NESTING + 1),
            ")".repeat(MAX_NESTING + 1)
        );
        assert_eq!(parse_policy(&too_deep).1.len(), 1);
    }
}
