//! Glob and regex entries: validation, translation of globs to regexes, and
//! the one [`RegexSet`] that matches all of a list's patterns in one pass.
//!
//! # Globs
//!
//! A glob matches the whole value, ignoring case: `*` is any run of bytes
//! (dots and `@` included), `?` is one character, `[abc]`, `[a-z]`, `[!a-z]`
//! (or `[^a-z]`) a character class, and `\` makes the next character literal.
//!
//! # Regexes
//!
//! `/pattern/` in the syntax of the `regex` crate (no look-around, no
//! backreferences: matching time is linear in the input, whatever the pattern),
//! searched anywhere in the value (anchor with `^` and `$`), case-sensitive
//! unless written `/pattern/i`. Matching is on bytes, so a value that is not
//! valid UTF-8 is still matched.

use regex::bytes::{RegexBuilder, RegexSet, RegexSetBuilder};

use super::{EntryError, EntryErrorKind};

/// The most memory one compiled pattern may take, in bytes: the `regex`
/// crate's own default (10 MiB), stated here so that the bound is ours. A
/// pattern like `a{1000}{1000}` hits it and is refused when the list is built.
pub const MAX_PATTERN_COMPILED_BYTES: usize = 10 * (1 << 20);

/// The most memory the combined pattern set of one list may take, in bytes.
/// A list of thousands of globs fits easily; the bound keeps a runaway list
/// file from taking the daemon's memory.
pub const MAX_PATTERN_SET_COMPILED_BYTES: usize = 64 * (1 << 20);

const EXPECTED_GLOB: &str =
    "a glob: `*` for any run of characters, `?` for one, `[a-z]` or `[!a-z]` for a class, `\\` before a literal";

const EXPECTED_REGEX: &str = "a regular expression in the syntax of Rust's `regex` crate \
     (no look-around or backreferences)";

/// Whether `text` contains a glob metacharacter (`*`, `?`, `[`).
pub(crate) fn is_glob(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

/// The most globs of one list matched by [`SimpleGlob`] comparisons instead of
/// the list's regex set: each costs a comparison per lookup, while the set
/// matches all its patterns in one pass, so past a handful the set is cheaper.
pub(crate) const MAX_SIMPLE_GLOBS: usize = 16;

/// Where a [`SimpleGlob`]'s literal must be found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// `literal`: the whole value.
    Exact,
    /// `literal*`: the start of the value.
    Prefix,
    /// `*literal`: the end of the value.
    Suffix,
}

/// A glob of one of the shapes `literal`, `literal*` or `*literal` whose
/// literal is ASCII without `?`, `[` or `\`: matched by comparing bytes, with
/// exactly the result of its regex (`(?i)` there folds `k` and `s` also to
/// U+212A KELVIN SIGN and U+017F LATIN SMALL LETTER LONG S, which
/// [`SimpleGlob::is_match`] accepts too), at a fraction of the cost of a
/// regex search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SimpleGlob {
    shape: Shape,
    /// Lower-case ASCII.
    literal: Box<[u8]>,
}

/// The non-ASCII characters that `(?i)` (Unicode simple case folding) makes
/// equal to an ASCII letter, as UTF-8: K (U+212A) for `k`, ſ (U+017F) for `s`.
fn unicode_fold(c: u8) -> Option<&'static [u8]> {
    match c {
        b'k' => Some("\u{212A}".as_bytes()),
        b's' => Some("\u{17F}".as_bytes()),
        _ => None,
    }
}

impl SimpleGlob {
    /// `glob` as a simple glob, if it has one of the simple shapes.
    pub(crate) fn new(glob: &str) -> Option<Self> {
        if !glob.is_ascii() || glob.contains(['?', '[', '\\']) {
            return None;
        }
        let (shape, literal) = if let Some(rest) = glob.strip_prefix('*') {
            (Shape::Suffix, rest)
        } else if let Some(rest) = glob.strip_suffix('*') {
            (Shape::Prefix, rest)
        } else {
            (Shape::Exact, glob)
        };
        if literal.contains('*') {
            return None;
        }
        Some(Self {
            shape,
            literal: literal.bytes().map(|b| b.to_ascii_lowercase()).collect(),
        })
    }

    /// Bytes of heap held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.literal.len()
    }

    /// Whether the glob matches the whole of `value` (as its regex would).
    #[inline]
    pub(crate) fn is_match(&self, value: &[u8]) -> bool {
        match self.shape {
            Shape::Exact => self.match_start(value) == Some(value.len()),
            Shape::Prefix => self.match_start(value).is_some(),
            Shape::Suffix => self.match_end(value),
        }
    }

    /// Whether `value` starts with the literal (ignoring case as `(?i)`
    /// does); the length of the matched start. Each literal byte matches one
    /// value byte or one folded character (whose UTF-8 starts with a
    /// non-ASCII byte, so at most one of the two can match: no backtracking).
    fn match_start(&self, value: &[u8]) -> Option<usize> {
        let mut at = 0;
        for &c in self.literal.iter() {
            let b = *value.get(at)?;
            if b.to_ascii_lowercase() == c {
                at += 1;
            } else {
                let fold = unicode_fold(c)?;
                if !value.get(at..)?.starts_with(fold) {
                    return None;
                }
                at += fold.len();
            }
        }
        Some(at)
    }

    /// Whether `value` ends with the literal (ignoring case as `(?i)` does).
    fn match_end(&self, value: &[u8]) -> bool {
        let mut end = value.len();
        for &c in self.literal.iter().rev() {
            let Some(&b) = end.checked_sub(1).and_then(|i| value.get(i)) else {
                return false;
            };
            if b.to_ascii_lowercase() == c {
                end -= 1;
            } else {
                match unicode_fold(c) {
                    Some(fold) if value[..end].ends_with(fold) => end -= fold.len(),
                    _ => return false,
                }
            }
        }
        true
    }
}

/// The regex (anchored at both ends, case-insensitive) equivalent to `glob`.
pub(crate) fn glob_to_regex(glob: &str) -> Result<String, EntryError> {
    let bad = |problem| EntryError::new(EntryErrorKind::Pattern, problem, EXPECTED_GLOB);
    let mut out = String::with_capacity(glob.len() * 2 + 12);
    out.push_str(r"(?i)\A");
    let mut chars = glob.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push_str("(?s-u:.)*"),
            '?' => out.push_str("(?s:.)"),
            '\\' => match chars.next() {
                Some(literal) => push_literal(&mut out, literal),
                None => return Err(bad("the glob ends with `\\`")),
            },
            '[' => {
                out.push('[');
                let mut rest = chars.as_str();
                if let Some(after) = rest.strip_prefix(['!', '^']) {
                    out.push('^');
                    rest = after;
                }
                // The class's characters, each with whether it was escaped.
                let mut items: Vec<(char, bool)> = Vec::new();
                let mut inner = rest.chars();
                let mut closed = false;
                while let Some(c) = inner.next() {
                    match c {
                        ']' if !items.is_empty() => {
                            closed = true;
                            break;
                        }
                        '\\' => match inner.next() {
                            Some(literal) => items.push((literal, true)),
                            None => return Err(bad("the glob ends with `\\`")),
                        },
                        c => items.push((c, false)),
                    }
                }
                if !closed {
                    return Err(bad("a `[` character class is not closed with `]`"));
                }
                for (i, &(c, escaped)) in items.iter().enumerate() {
                    if c == '-' && !escaped && i > 0 && i + 1 < items.len() {
                        out.push('-');
                    } else {
                        push_class_char(&mut out, c);
                    }
                }
                out.push(']');
                chars = inner;
            }
            c => push_literal(&mut out, c),
        }
    }
    out.push_str(r"\z");
    Ok(out)
}

fn push_literal(out: &mut String, c: char) {
    let mut buf = [0; 4];
    out.push_str(&regex::escape(c.encode_utf8(&mut buf)));
}

fn push_class_char(out: &mut String, c: char) {
    use std::fmt::Write as _;
    // `\x{..}` is a literal in any position of a class: no set-operator or
    // range surprises from `-`, `&`, `~`, `[`.
    let _ = write!(out, "\\x{{{:X}}}", u32::from(c));
}

/// The set-ready source of `/pattern/` (with `(?i)` in front for `/pattern/i`),
/// after checking that it compiles on its own within the size bound.
pub(crate) fn regex_source(pattern: &str, case_insensitive: bool) -> Result<String, EntryError> {
    if pattern.is_empty() {
        return Err(EntryError::new(
            EntryErrorKind::Pattern,
            "the regex is empty (it would match everything)",
            "a non-empty regular expression",
        ));
    }
    let source = if case_insensitive {
        format!("(?i){pattern}")
    } else {
        pattern.to_owned()
    };
    check_compiles(&source).map_err(|detail| {
        EntryError::new(
            EntryErrorKind::Pattern,
            "invalid regular expression",
            EXPECTED_REGEX,
        )
        .with_detail(detail)
    })?;
    Ok(if starts_with_class(pattern) {
        // Same matches (a search is unanchored anyway); see `starts_with_class`.
        format!("{UNANCHORED}(?:{source})")
    } else {
        source
    })
}

/// What an unanchored search skips before a match, written out: any bytes,
/// as few as possible. Put before a pattern, it changes no match of a search
/// (which is unanchored anyway) but leaves the pattern without a literal
/// prefix, so the `regex` crate searches with its DFA alone, no prefilter.
const UNANCHORED: &str = "(?s-u:.)*?";

/// Whether `pattern` starts with a character class (`[0-9]+-...`, `\d+`,
/// `\w`): then the regex crate's literal prefilter looks for any of the
/// class's bytes, and on names and addresses (digits, letters everywhere)
/// it stops at nearly every byte and restarts the DFA there, which costs
/// several times one DFA pass (about 1,000 against 400 instructions for
/// `[0-9]+-[0-9]+-[0-9]+-[0-9]+\.` on a 36-byte host name). Such patterns
/// are searched without the prefilter (see [`UNANCHORED`]). A pattern with
/// a `#` is left alone (in `(?x)` mode it could comment out the closing
/// parenthesis).
fn starts_with_class(pattern: &str) -> bool {
    !pattern.contains('#')
        && (pattern.starts_with('[')
            || ["\\d", "\\w", "\\s", "\\p", "\\D", "\\W", "\\S", "\\P"]
                .iter()
                .any(|class| pattern.starts_with(class)))
}

/// Check that a glob's regex compiles (a class range like `[z-a]` does not).
pub(crate) fn check_glob(source: &str) -> Result<(), EntryError> {
    check_compiles(source).map_err(|detail| {
        EntryError::new(EntryErrorKind::Pattern, "invalid glob", EXPECTED_GLOB).with_detail(detail)
    })
}

fn check_compiles(source: &str) -> Result<(), String> {
    RegexBuilder::new(source)
        .size_limit(MAX_PATTERN_COMPILED_BYTES)
        .build()
        .map(drop)
        .map_err(|e| summary(&e))
}

/// The one-line reason in a `regex::Error` (its Display spans several lines
/// with a copy of the pattern and a caret; the last line says what is wrong).
fn summary(error: &regex::Error) -> String {
    match error {
        regex::Error::CompiledTooBig(_) => "the compiled pattern is too big".to_owned(),
        _ => {
            let text = error.to_string();
            let last = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            last.trim().trim_start_matches("error: ").to_owned()
        }
    }
}

/// Compile all of a list's pattern sources into one set; `None` for none.
pub(crate) fn compile_set(sources: &[String]) -> Result<Option<RegexSet>, EntryError> {
    if sources.is_empty() {
        return Ok(None);
    }
    RegexSetBuilder::new(sources)
        .size_limit(MAX_PATTERN_SET_COMPILED_BYTES)
        .build()
        .map(Some)
        .map_err(|e| {
            EntryError::new(
                EntryErrorKind::TooComplex,
                "the list's globs and regexes together are too big to compile",
                "fewer or simpler globs and regexes (at most 64 MiB compiled per list)",
            )
            .with_detail(summary(&e))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob_matches(glob: &str, value: &[u8]) -> bool {
        let source = glob_to_regex(glob).unwrap();
        regex::bytes::Regex::new(&source).unwrap().is_match(value)
    }

    #[test]
    fn glob_table() {
        let rows: &[(&str, &[u8], bool)] = &[
            ("*.example.com", b"mail.example.com", true),
            ("*.example.com", b"a.b.EXAMPLE.com", true),
            ("*.example.com", b"example.com", false),
            ("*.example.com", b"mail.example.com.evil", false),
            ("*.dyn.*", b"host-1.dyn.example.net", true),
            ("*.dyn.*", b"dyn.example.net", false),
            ("mail?.example.com", b"mail1.example.com", true),
            ("mail?.example.com", b"mail.example.com", false),
            ("mail?.example.com", b"mail12.example.com", false),
            ("?", "ü".as_bytes(), true),
            ("*", b"", true),
            ("*", b"\xff\xfe", true),
            ("a*", b"a\xff", true),
            ("[abc]x", b"bx", true),
            ("[abc]x", b"dx", false),
            ("[!abc]x", b"dx", true),
            ("[!abc]x", b"ax", false),
            ("[^abc]x", b"ax", false),
            ("[a-c]x", b"bx", true),
            ("[a-c]x", b"-x", false),
            ("[a-]x", b"-x", true),
            ("[-a]x", b"-x", true),
            ("[]a]x", b"]x", true),
            ("[!]a]x", b"]x", false),
            ("[&&]", b"&", true),
            ("[~~]", b"~", true),
            ("[[]", b"[", true),
            ("\\*", b"*", true),
            ("\\*", b"a", false),
            ("a.b", b"a.b", true),
            ("a.b", b"axb", false),
            ("(a)+|b$", b"(a)+|b$", true),
            ("joe@*", b"Joe@example.com", true),
        ];
        for (glob, value, expected) in rows {
            assert_eq!(
                glob_matches(glob, value),
                *expected,
                "{glob} {:?}",
                String::from_utf8_lossy(value)
            );
        }
    }

    #[test]
    fn glob_errors() {
        for glob in ["[abc", "a\\", "[a\\"] {
            assert_eq!(
                glob_to_regex(glob).map_err(|e| e.kind()),
                Err(EntryErrorKind::Pattern),
                "{glob}"
            );
        }
        let source = glob_to_regex("[z-a]").unwrap();
        assert_eq!(
            check_glob(&source).map_err(|e| e.kind()),
            Err(EntryErrorKind::Pattern)
        );
    }

    #[test]
    fn regex_errors_carry_a_one_line_reason() {
        let e = regex_source("a(b", false).unwrap_err();
        assert_eq!(e.kind(), EntryErrorKind::Pattern);
        assert_eq!(e.detail(), Some("unclosed group"));
        assert!(regex_source("", false).is_err());
        assert!(
            regex_source("(?<=a)b", false).is_err(),
            "look-behind is not supported"
        );
        let big = regex_source("\\w{1000}{1000}", false).unwrap_err();
        assert_eq!(big.detail(), Some("the compiled pattern is too big"));
        assert_eq!(regex_source("x", true).unwrap(), "(?i)x");
        assert!(compile_set(&[]).unwrap().is_none());
    }

    #[test]
    fn simple_glob_shapes() {
        let simple = |g: &str| SimpleGlob::new(g).map(|s| s.shape);
        assert_eq!(simple("*.example"), Some(Shape::Suffix));
        assert_eq!(simple("host*"), Some(Shape::Prefix));
        assert_eq!(simple("ylmf-pc"), Some(Shape::Exact));
        assert_eq!(simple("*"), Some(Shape::Suffix));
        for g in ["*a*", "a*b", "**", "a?", "[ab]", "a\\*", "bü*"] {
            assert_eq!(simple(g), None, "{g}");
        }
        // `(?i)` folds `k` and `s` to non-ASCII characters too: so must they.
        for (glob, value, expected) in [
            ("*.LOCAL", &b"mail.Local"[..], true),
            ("localhost*", "LOCALHO\u{17F}T.x".as_bytes(), true),
            ("*kit", "\u{212A}IT".as_bytes(), true),
            ("*kit", b"\xAAit", false),
            ("*s", b"\xBF", false),
            ("kit", b"kitt", false),
            ("kit", b"ki", false),
            ("*", b"", true),
        ] {
            let g = SimpleGlob::new(glob).unwrap();
            assert_eq!(g.is_match(value), expected, "{glob} {value:?}");
            assert_eq!(glob_matches(glob, value), expected, "{glob} {value:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn simple_globs_agree_with_their_regex(
            glob in "\\*?[aksKS.\\-]{0,4}\\*?",
            value in proptest::collection::vec(
                proptest::sample::select(vec![
                    &b"a"[..], b"A", b"k", b"K", b"s", b"S", b".", b"-",
                    "\u{212A}".as_bytes(), "\u{17F}".as_bytes(), b"\xE2", b"\x84", b"\xAA", b"\xC5", b"\xBF",
                ]),
                0..8,
            ),
        ) {
            let value = value.concat();
            if let Some(simple) = SimpleGlob::new(&glob) {
                proptest::prop_assert_eq!(simple.is_match(&value), glob_matches(&glob, &value), "{} {:?}", glob, value);
            }
        }
    }

    #[test]
    fn class_led_regexes_match_the_same_without_a_prefilter() {
        let cases: &[(&str, bool, &[&[u8]])] = &[
            (
                r"[0-9]+-[0-9]+-[0-9]+-[0-9]+\.",
                false,
                &[
                    b"1-2-3-4.example",
                    b"mail-out-07.lists.example.com",
                    b"x1-22-3-4.y",
                    b"1-2-3-4",
                    b"",
                ],
            ),
            (r"\d{3}$", false, &[b"a123", b"123a", b"12"]),
            (r"[A-Z]x", true, &[b"ax", b"AX", b"x", b"\xff\xfeaX"]),
            (r"\w+@", false, &[b"joe@", b"@", b"\xff@"]),
        ];
        for &(pattern, no_case, values) in cases {
            assert!(starts_with_class(pattern), "{pattern}");
            let source = regex_source(pattern, no_case).unwrap();
            assert!(source.starts_with(UNANCHORED), "{source}");
            let plain = if no_case {
                format!("(?i){pattern}")
            } else {
                pattern.to_owned()
            };
            let set = compile_set(std::slice::from_ref(&source)).unwrap().unwrap();
            let reference = regex::bytes::Regex::new(&plain).unwrap();
            for value in values {
                assert_eq!(
                    set.is_match(value),
                    reference.is_match(value),
                    "{source} {value:?}"
                );
            }
        }
        for pattern in ["^[a-z]", "x[0-9]", "(?x)[a-z] # a comment", "(a)"] {
            assert!(!starts_with_class(pattern), "{pattern}");
        }
        assert_eq!(
            regex_source("(?x)[a-z] # c", false).unwrap(),
            "(?x)[a-z] # c"
        );
    }
}
