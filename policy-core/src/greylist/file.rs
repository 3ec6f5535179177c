//! Reading postgrey's whitelist files: one entry a line, as postgrey 1.37's
//! `read_clients_whitelists` / `read_recipients_whitelists` read them.
//!
//! Each line loses everything from its first `#` (a comment, even inside a
//! `/regex/`), then its leading and trailing whitespace (Perl's `\s`: space,
//! tab, CR, LF, VT, FF); a line left empty is skipped. What remains is the
//! entry. An entry with whitespace inside is an error (postgrey warns
//! "doesn't look like a hostname" / "an address" and skips it). An entry of
//! the shape `/pattern/` (at least one character between the slashes) is a
//! regular expression; every other entry is interpreted by the whitelist
//! kind.

use crate::list::{self, EntryError, EntryErrorKind, FileEntryError, MAX_FILE_ERRORS};

/// A postgrey regex as a Rust one on bytes: Unicode off, as Perl on the
/// bytes postgrey reads (`.` is a byte; `\d \w \s \b` and case folding are
/// ASCII).
pub(super) fn posix_pattern(pattern: &str) -> String {
    format!("(?-u){pattern}")
}

/// The outcome of reading a whitelist file: its entry errors, then the
/// error of building its lists (only when its regexes together are too big:
/// reported at line 1).
pub(super) fn finish<T>(
    read: Result<(), Vec<FileEntryError>>,
    built: Result<T, EntryError>,
) -> Result<T, Vec<FileEntryError>> {
    match (read, built) {
        (Ok(()), Ok(whitelist)) => Ok(whitelist),
        (Err(errors), Ok(_)) => Err(errors),
        (read, Err(error)) => {
            let mut errors = read.err().unwrap_or_default();
            errors.push(FileEntryError {
                line: 1,
                column: 1,
                error,
            });
            Err(errors)
        }
    }
}

/// What an entry with whitespace inside should have been.
const EXPECTED_ONE_ENTRY: &str =
    "one entry per line without spaces (a host name, an address, a network or a /regex/), \
     optionally followed by a `#` comment";

/// Perl's `\s` on the bytes postgrey reads: ASCII space, tab, LF, VT, FF, CR.
pub(super) fn is_perl_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r')
}

/// One entry of a whitelist file: where it is and its text.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry<'a> {
    /// 1-based line number.
    pub(super) line: u32,
    /// 1-based column of the entry's first character.
    pub(super) column: u32,
    /// The entry, comment and surrounding whitespace removed; never empty.
    pub(super) text: &'a str,
}

impl Entry<'_> {
    /// The pattern of a `/pattern/` entry, if it is one.
    pub(super) fn regex(&self) -> Option<&str> {
        let inner = self.text.strip_prefix('/')?.strip_suffix('/')?;
        (!inner.is_empty()).then_some(inner)
    }

    /// `error` located at this entry.
    pub(super) fn error(&self, error: EntryError) -> FileEntryError {
        FileEntryError {
            line: self.line,
            column: self.column,
            error,
        }
    }
}

/// 1-based column (in characters) of byte offset `offset` in `line`.
fn column(line: &str, offset: usize) -> u32 {
    let chars = line
        .get(..offset)
        .map_or(offset, |prefix| prefix.chars().count());
    u32::try_from(chars + 1).unwrap_or(u32::MAX)
}

/// Call `add` with every entry of `text`; collect the errors it returns and
/// those of malformed lines, up to [`MAX_FILE_ERRORS`] (then one more saying
/// the rest was not read). An error of kind [`EntryErrorKind::TooMany`] (a
/// list is full) stops reading.
pub(super) fn for_each_entry(
    text: &str,
    mut add: impl FnMut(Entry<'_>) -> Result<(), FileEntryError>,
) -> Result<(), Vec<FileEntryError>> {
    let mut errors = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        if errors.len() == MAX_FILE_ERRORS {
            errors.push(FileEntryError {
                line: line_number,
                column: 1,
                error: list::too_many_errors(),
            });
            break;
        }
        let uncommented = line.find('#').map_or(line, |hash| &line[..hash]);
        let trimmed = uncommented.trim_start_matches(is_perl_space);
        let start = uncommented.len() - trimmed.len();
        let text = trimmed.trim_end_matches(is_perl_space);
        if text.is_empty() {
            continue;
        }
        let entry = Entry {
            line: line_number,
            column: column(line, start),
            text,
        };
        if let Some(space) = text.find(is_perl_space) {
            errors.push(FileEntryError {
                line: line_number,
                column: column(line, start + space),
                error: EntryError::new(
                    EntryErrorKind::Syntax,
                    "whitespace inside the entry",
                    EXPECTED_ONE_ENTRY,
                ),
            });
            continue;
        }
        if let Err(error) = add(entry) {
            let full = error.error.kind() == EntryErrorKind::TooMany;
            errors.push(error);
            if full {
                break;
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Line and column of an entry or an error.
    type At = (u32, u32);

    fn entries(text: &str) -> (Vec<(u32, u32, String)>, Vec<At>) {
        let mut seen = Vec::new();
        let errors = for_each_entry(text, |e| {
            seen.push((e.line, e.column, e.text.to_owned()));
            Ok(())
        })
        .err()
        .unwrap_or_default();
        (seen, errors.iter().map(|e| (e.line, e.column)).collect())
    }

    #[test]
    fn lines_comments_and_whitespace() {
        let text = "# header\n\n  example.com  \r\n\tmail.example.org # trailing\n\
                    /^mx#\\d+/\n /a b/\n\u{b}x\u{c}\n   # only a comment\nä.example x\n";
        let (seen, errors) = entries(text);
        assert_eq!(
            seen,
            vec![
                (3, 3, "example.com".to_owned()),
                (4, 2, "mail.example.org".to_owned()),
                (5, 1, "/^mx".to_owned()),
                (7, 2, "x".to_owned()),
            ]
        );
        assert_eq!(errors, vec![(6, 4), (9, 10)]);
    }

    #[test]
    fn regex_shape() {
        let entry = |text| Entry {
            line: 1,
            column: 1,
            text,
        };
        assert_eq!(entry("/a/").regex(), Some("a"));
        assert_eq!(entry("/a/b/").regex(), Some("a/b"));
        assert_eq!(entry("//").regex(), None);
        assert_eq!(entry("/").regex(), None);
        assert_eq!(entry("/a/i").regex(), None);
        assert_eq!(entry("a/").regex(), None);
    }

    #[test]
    fn too_many_errors_stops() {
        let text = "a b\n".repeat(MAX_FILE_ERRORS + 5);
        let (_, errors) = entries(&text);
        assert_eq!(errors.len(), MAX_FILE_ERRORS + 1);
        assert_eq!(errors.last(), Some(&(MAX_FILE_ERRORS as u32 + 1, 1)));
    }
}
