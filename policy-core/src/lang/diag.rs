//! Compile diagnostics: errors and warnings with file, line, column, the
//! source line and a caret.

use std::fmt;

/// How bad a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Severity {
    /// The policy does not compile.
    Error,
    /// The policy compiles, but probably does not do what its author meant.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Error => "error",
            Self::Warning => "warning",
        })
    }
}

/// One error or warning found while compiling a policy: where, and what was
/// expected.
///
/// `Display` gives the compiler-style form, the source line and a caret:
///
/// ```text
/// policy.conf:12:17: error: unknown list `trusted_net`; expected a list declared with `list`
/// rule trusted { if client_address in trusted_net then OK }
///                                     ^
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The file it is in, as named to [`Policy::compile`](crate::Policy::compile)
    /// or (in a list file) as written in the policy.
    pub file: String,
    /// Line, from 1 (0 when the diagnostic is about the whole file).
    pub line: u32,
    /// Column in characters, from 1 (0 when the diagnostic is about the whole file).
    pub column: u32,
    /// What is wrong, naming what was expected.
    pub message: String,
    /// The source line the diagnostic points into, without its line break
    /// (empty when the diagnostic is about the whole file).
    pub source_line: String,
}

impl Diagnostic {
    /// A diagnostic at byte offset `offset` of `source` (the text of `file`).
    /// An offset past the end, or inside a character, is clamped.
    #[cfg(test)]
    pub(crate) fn at(
        severity: Severity,
        file: &str,
        source: &str,
        offset: usize,
        message: String,
    ) -> Self {
        LineIndex::new(source).diagnostic(severity, file, offset, message)
    }

    /// A diagnostic about a whole file (it could not be read, for example).
    pub(crate) fn whole_file(severity: Severity, file: &str, message: String) -> Self {
        Self {
            severity,
            file: file.to_owned(),
            line: 0,
            column: 0,
            message,
            source_line: String::new(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            return write!(f, "{}: {}: {}", self.file, self.severity, self.message);
        }
        writeln!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.column, self.severity, self.message
        )?;
        // The source line is shown with control characters as spaces (it is
        // the administrator's own file, but a stray escape must not reach the
        // terminal), and the caret lines up under tabs with tabs.
        for c in self.source_line.chars() {
            f.write_str(match c {
                '\t' => "\t",
                c if c.is_control() => " ",
                _ => {
                    write!(f, "{c}")?;
                    continue;
                }
            })?;
        }
        f.write_str("\n")?;
        let before = (self.column as usize).saturating_sub(1);
        for c in self.source_line.chars().take(before) {
            f.write_str(if c == '\t' { "\t" } else { " " })?;
        }
        f.write_str("^")
    }
}

/// The start of every line of a source text, to turn byte offsets into
/// line and column in `O(log lines)` (a file with thousands of errors must
/// not cost thousands of scans of the file).
#[derive(Debug)]
pub(crate) struct LineIndex<'s> {
    source: &'s str,
    /// Byte offset of each line's first byte; `starts[0] == 0`.
    starts: Vec<usize>,
}

impl<'s> LineIndex<'s> {
    pub(crate) fn new(source: &'s str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            source
                .bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Self { source, starts }
    }

    /// The 1-based line of byte `offset`.
    pub(crate) fn line(&self, offset: usize) -> u32 {
        let line = self.starts.partition_point(|&s| s <= offset);
        u32::try_from(line.max(1)).unwrap_or(u32::MAX)
    }

    /// A diagnostic at byte `offset` (clamped to the text and to a character
    /// boundary). The column counts characters from the line's start; on a
    /// very long line it is capped at [`MAX_COLUMN_SCAN`] bytes' worth and
    /// the shown line cut around the caret.
    pub(crate) fn diagnostic(
        &self,
        severity: Severity,
        file: &str,
        offset: usize,
        message: String,
    ) -> Diagnostic {
        let source = self.source;
        let mut offset = offset.min(source.len());
        while !source.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line(offset);
        let mut line_start = self.starts.get(line as usize - 1).copied().unwrap_or(0);
        let mut line_end = self
            .starts
            .get(line as usize)
            .map_or(source.len(), |&next| next - 1);
        // Keep the shown line (and the column count) bounded on huge lines.
        if offset - line_start > MAX_COLUMN_SCAN {
            line_start = offset - MAX_COLUMN_SCAN;
            while !source.is_char_boundary(line_start) {
                line_start += 1;
            }
        }
        if line_end - offset > MAX_COLUMN_SCAN {
            line_end = offset + MAX_COLUMN_SCAN;
            while !source.is_char_boundary(line_end) {
                line_end -= 1;
            }
        }
        let column = source[line_start..offset].chars().count() + 1;
        Diagnostic {
            severity,
            file: file.to_owned(),
            line,
            column: u32::try_from(column).unwrap_or(u32::MAX),
            message,
            source_line: source[line_start..line_end]
                .trim_end_matches('\r')
                .to_owned(),
        }
    }
}

/// How far around an error a diagnostic looks on its line, in bytes. Lines
/// are short in a hand-written policy; on a machine-made one-line file this
/// keeps each diagnostic's cost and size bounded (the column is then counted
/// from the shown part).
pub const MAX_COLUMN_SCAN: usize = 4096;

/// Why a policy did not compile: every error found (not only the first), and
/// the warnings found along the way. `Display` prints them all, errors first,
/// one blank-line-free block each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileErrors {
    /// Every error, in file order (errors of list files where the list is declared).
    pub errors: Vec<Diagnostic>,
    /// Warnings found before the errors stopped the compilation.
    pub warnings: Vec<Diagnostic>,
}

impl fmt::Display for CompileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for d in self.errors.iter().chain(&self.warnings) {
            if !first {
                f.write_str("\n")?;
            }
            first = false;
            write!(f, "{d}")?;
        }
        if !first {
            f.write_str("\n")?;
        }
        let n = self.errors.len();
        write!(
            f,
            "{n} error{}, {} warning{}",
            if n == 1 { "" } else { "s" },
            self.warnings.len(),
            if self.warnings.len() == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for CompileErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_and_caret() {
        let src = "a\n\tbc déf\nx";
        // offset of 'f' in line 2
        let off = src.find('f').unwrap_or(0);
        let d = Diagnostic::at(Severity::Error, "p.conf", src, off, "expected g".into());
        assert_eq!((d.line, d.column), (2, 7));
        assert_eq!(d.source_line, "\tbc déf");
        assert_eq!(
            d.to_string(),
            "p.conf:2:7: error: expected g\n\tbc déf\n\t     ^"
        );
        let end = Diagnostic::at(Severity::Warning, "p", src, 999, "eof".into());
        assert_eq!((end.line, end.column), (3, 2));
        let first = Diagnostic::at(Severity::Error, "p", "", 0, "empty".into());
        assert_eq!((first.line, first.column), (1, 1));
    }
}
