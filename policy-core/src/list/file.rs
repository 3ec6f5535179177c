//! The list file format: one entry a line.
//!
//! ```text
//! # office networks              <- a comment line
//! 192.0.2.0/24                   <- a bare entry
//! 2001:db8::/32   # trailing     <- a comment after the entry
//! "Quoted \"string\" with \\"    <- a quoted entry: escapes \" and \\
//! /^[0-9]+@/i                    <- a regex: \/ for a slash, flag i
//!                                <- blank lines are ignored
//! ```
//!
//! Leading and trailing whitespace is ignored. A bare entry runs to the first
//! whitespace or `#`. After the entry only whitespace and a `#` comment may
//! follow. Lines end with `\n` or `\r\n`.

use std::borrow::Cow;

use super::{EntryError, EntryErrorKind, EntryToken};

/// One entry read from a line: the token, with escapes resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LineEntry<'a> {
    Bare(&'a str),
    Quoted(Cow<'a, str>),
    Regex {
        pattern: Cow<'a, str>,
        case_insensitive: bool,
    },
}

impl LineEntry<'_> {
    pub(crate) fn token(&self) -> EntryToken<'_> {
        match self {
            Self::Bare(text) => EntryToken::Bare(text),
            Self::Quoted(text) => EntryToken::Quoted(text),
            Self::Regex {
                pattern,
                case_insensitive,
            } => EntryToken::Regex {
                pattern,
                case_insensitive: *case_insensitive,
            },
        }
    }
}

/// 1-based column (in characters) of byte offset `offset` in `line`.
pub(crate) fn column(line: &str, offset: usize) -> u32 {
    let chars = line
        .get(..offset)
        .map_or(offset, |prefix| prefix.chars().count());
    u32::try_from(chars + 1).unwrap_or(u32::MAX)
}

/// Whether `c` ends a bare word.
fn ends_bare(c: char) -> bool {
    c.is_whitespace() || c == '#'
}

/// Read the entry of one line (without its line terminator). `Ok(None)` for a
/// blank or comment line; otherwise the entry and the byte offset where it
/// starts; an error carries the byte offset it points at.
pub(crate) fn scan_line(line: &str) -> Result<Option<(usize, LineEntry<'_>)>, (usize, EntryError)> {
    let trimmed = line.trim_start();
    let start = line.len() - trimmed.len();
    let (entry, rest) = match trimmed.chars().next() {
        None | Some('#') => return Ok(None),
        Some('"') => {
            let (text, rest) = quoted(&trimmed[1..]).map_err(|e| (start, e))?;
            (LineEntry::Quoted(text), rest)
        }
        Some('/') => {
            let (pattern, case_insensitive, rest) = regex(&trimmed[1..]).map_err(|e| (start, e))?;
            (
                LineEntry::Regex {
                    pattern,
                    case_insensitive,
                },
                rest,
            )
        }
        Some(_) => {
            let end = trimmed.find(ends_bare).unwrap_or(trimmed.len());
            (LineEntry::Bare(&trimmed[..end]), &trimmed[end..])
        }
    };
    let after = rest.trim_start();
    if !after.is_empty() && !after.starts_with('#') {
        return Err((
            line.len() - after.len(),
            EntryError::new(
                EntryErrorKind::Syntax,
                "more text after the entry",
                "one entry per line, optionally followed by a `#` comment (quote an entry that contains spaces)",
            ),
        ));
    }
    Ok(Some((start, entry)))
}

/// A quoted string's value after the opening `"`, and the text after the closing `"`.
pub(crate) fn quoted(text: &str) -> Result<(Cow<'_, str>, &str), EntryError> {
    let unterminated = || {
        EntryError::new(
            EntryErrorKind::Syntax,
            "the string is not closed",
            "a closing `\"` on the same line",
        )
    };
    let mut owned: Option<String> = None;
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                let value = match owned {
                    Some(s) => Cow::Owned(s),
                    None => Cow::Borrowed(&text[..i]),
                };
                return Ok((value, &text[i + 1..]));
            }
            '\\' => {
                let escaped = match chars.next() {
                    Some((_, e @ ('"' | '\\'))) => e,
                    Some(_) => {
                        return Err(EntryError::new(
                            EntryErrorKind::Syntax,
                            "unknown escape in a string",
                            "`\\\"` or `\\\\` after a backslash",
                        ))
                    }
                    None => return Err(unterminated()),
                };
                owned
                    .get_or_insert_with(|| text[..i].to_owned())
                    .push(escaped);
            }
            c if c.is_control() => {
                return Err(EntryError::new(
                    EntryErrorKind::Syntax,
                    "a control character in a string",
                    "printable characters in a string",
                ))
            }
            c => {
                if let Some(s) = owned.as_mut() {
                    s.push(c);
                }
            }
        }
    }
    Err(unterminated())
}

/// A regex's pattern after the opening `/` (with `\/` turned into `/`), its
/// `i` flag, and the text after the flags.
pub(crate) fn regex(text: &str) -> Result<(Cow<'_, str>, bool, &str), EntryError> {
    let mut owned: Option<String> = None;
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '/' => {
                let pattern = match owned {
                    Some(s) => Cow::Owned(s),
                    None => Cow::Borrowed(&text[..i]),
                };
                let after = &text[i + 1..];
                let flags_end = after.find(ends_bare).unwrap_or(after.len());
                let case_insensitive = match &after[..flags_end] {
                    "" => false,
                    "i" => true,
                    _ => {
                        return Err(EntryError::new(
                            EntryErrorKind::Syntax,
                            "unknown regex flags",
                            "no flag or `i` (case-insensitive) after the closing `/`",
                        ))
                    }
                };
                return Ok((pattern, case_insensitive, &after[flags_end..]));
            }
            '\\' => match chars.next() {
                Some((_, '/')) => owned.get_or_insert_with(|| text[..i].to_owned()).push('/'),
                Some((_, other)) => {
                    if let Some(s) = owned.as_mut() {
                        s.push('\\');
                        s.push(other);
                    }
                }
                None => break,
            },
            c => {
                if let Some(s) = owned.as_mut() {
                    s.push(c);
                }
            }
        }
    }
    Err(EntryError::new(
        EntryErrorKind::Syntax,
        "the regex is not closed",
        "a closing `/` on the same line (write `\\/` for a slash inside)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Option<(usize, LineEntry<'_>)> {
        scan_line(line).unwrap()
    }

    #[test]
    fn scan_table() {
        assert_eq!(ok(""), None);
        assert_eq!(ok("   \t"), None);
        assert_eq!(ok("# comment"), None);
        assert_eq!(ok("   # comment"), None);
        assert_eq!(ok("example.com"), Some((0, LineEntry::Bare("example.com"))));
        assert_eq!(
            ok("  example.com  "),
            Some((2, LineEntry::Bare("example.com")))
        );
        assert_eq!(
            ok("example.com# c"),
            Some((0, LineEntry::Bare("example.com")))
        );
        assert_eq!(
            ok("10.0.0.0/8 # office"),
            Some((0, LineEntry::Bare("10.0.0.0/8")))
        );
        assert_eq!(
            ok("\"a b\""),
            Some((0, LineEntry::Quoted(Cow::Borrowed("a b"))))
        );
        assert_eq!(
            ok(r#""a \"b\" \\ c" # x"#),
            Some((0, LineEntry::Quoted(Cow::Owned(r#"a "b" \ c"#.to_owned()))))
        );
        assert_eq!(ok("\"\""), Some((0, LineEntry::Quoted(Cow::Borrowed("")))));
        assert_eq!(
            ok(r"/^a\/b\d$/i"),
            Some((
                0,
                LineEntry::Regex {
                    pattern: Cow::Owned(r"^a/b\d$".to_owned()),
                    case_insensitive: true
                }
            ))
        );
        assert_eq!(
            ok(r"/a\\/ #c"),
            Some((
                0,
                LineEntry::Regex {
                    pattern: Cow::Borrowed(r"a\\"),
                    case_insensitive: false
                }
            ))
        );
    }

    #[test]
    fn scan_errors() {
        let rows: &[(&str, usize, &str)] = &[
            ("a b", 2, "more text after the entry"),
            ("  \"a\" b", 6, "more text after the entry"),
            ("\"abc", 0, "the string is not closed"),
            ("  \"a\\nb\"", 2, "unknown escape in a string"),
            ("\"a\tb\"", 0, "a control character in a string"),
            ("/abc", 0, "the regex is not closed"),
            ("/abc\\/", 0, "the regex is not closed"),
            ("/abc/x", 0, "unknown regex flags"),
            ("/abc/ii", 0, "unknown regex flags"),
            ("/a/ b", 4, "more text after the entry"),
        ];
        for (line, offset, problem) in rows {
            let (at, error) = scan_line(line).unwrap_err();
            assert_eq!((at, error.problem()), (*offset, *problem), "{line}");
        }
    }

    #[test]
    fn columns_count_characters() {
        assert_eq!(column("abc", 0), 1);
        assert_eq!(column("äbc", 2), 2);
        assert_eq!(column("  x", 2), 3);
    }
}
