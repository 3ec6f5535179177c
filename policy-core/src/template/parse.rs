//! Parsing a template text into literal parts and variables.

use std::fmt;

use super::vars::Var;

/// One piece of a [`Template`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Part {
    /// Text written as is (`$$` already turned into `$`). Never contains a
    /// control character.
    Literal(Box<str>),
    /// A variable, replaced by its sanitized value.
    Var(Var),
}

/// A parsed text template: literal text and variables. See the
/// [module documentation](crate::template) for the syntax and the expansion rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Template {
    pub(super) parts: Vec<Part>,
}

/// Why a template text was refused. Offsets are byte offsets into the text
/// given to [`Template::parse`] (or [`ActionTemplate::compile`](super::ActionTemplate::compile)), pointing at
/// the `$` of the faulty variable or at the faulty character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TemplateError {
    /// `$name` or `${name}` names no variable.
    UnknownVariable {
        /// Offset of the `$`.
        offset: usize,
        /// Length in bytes of the whole reference (`$name` or `${name}`).
        len: usize,
    },
    /// `${` without a closing `}`.
    UnterminatedBrace {
        /// Offset of the `$`.
        offset: usize,
    },
    /// `$` followed by neither a name, `{name}` nor another `$`.
    MissingName {
        /// Offset of the `$`.
        offset: usize,
    },
    /// A control character (CR, LF, TAB, NUL, DEL, ...) in the text.
    ControlCharacter {
        /// Offset of the character.
        offset: usize,
    },
}

impl TemplateError {
    /// The byte offset of the error in the template text.
    pub fn offset(&self) -> usize {
        match *self {
            Self::UnknownVariable { offset, .. }
            | Self::UnterminatedBrace { offset }
            | Self::MissingName { offset }
            | Self::ControlCharacter { offset } => offset,
        }
    }
}

/// What a variable name may be; shown in errors.
pub(super) const EXPECTED_VARIABLE: &str =
    "a request attribute (sender, recipient, client_address, \
     client_name, helo_name, sasl_username, ...), sender_local, sender_domain, recipient_local, \
     recipient_domain or rule";

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownVariable { .. } => {
                write!(f, "unknown template variable: expected {EXPECTED_VARIABLE}")
            }
            Self::UnterminatedBrace { .. } => {
                f.write_str("unterminated `${`: expected a variable name and `}`")
            }
            Self::MissingName { .. } => f.write_str(
                "expected a variable name, `{name}` or `$` after `$` (write `$$` for a literal `$`)",
            ),
            Self::ControlCharacter { .. } => {
                f.write_str("expected text without control characters")
            }
        }
    }
}

impl std::error::Error for TemplateError {}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl Template {
    /// Parse `text`: `$name`, `${name}`, `$$` for `$`, anything else literal.
    ///
    /// ```
    /// use policy_core::template::{Template, Var};
    ///
    /// let t = Template::parse("5.7.1 Sender $sender (${sasl_username}) costs $$5").unwrap();
    /// assert_eq!(t.variables().collect::<Vec<_>>(), [Var::Sender, Var::SaslUsername]);
    /// assert_eq!(t.sample(), "5.7.1 Sender sender@example.org (user) costs $5");
    /// assert!(Template::parse("Hello $nobody").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let bytes = text.as_bytes();
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut at = 0;
        while at < bytes.len() {
            let Some(dollar) = text[at..].find(|c: char| c == '$' || c.is_control()) else {
                literal.push_str(&text[at..]);
                break;
            };
            let dollar = at + dollar;
            literal.push_str(&text[at..dollar]);
            if bytes[dollar] != b'$' {
                return Err(TemplateError::ControlCharacter { offset: dollar });
            }
            let after = dollar + 1;
            let (name, next) = match bytes.get(after) {
                Some(b'$') => {
                    literal.push('$');
                    at = after + 1;
                    continue;
                }
                Some(b'{') => {
                    let Some(close) = text[after + 1..].find('}') else {
                        return Err(TemplateError::UnterminatedBrace { offset: dollar });
                    };
                    let end = after + 1 + close;
                    (&text[after + 1..end], end + 1)
                }
                Some(&b) if is_name_byte(b) => {
                    let len = bytes[after..]
                        .iter()
                        .position(|&b| !is_name_byte(b))
                        .unwrap_or(bytes.len() - after);
                    (&text[after..after + len], after + len)
                }
                _ => return Err(TemplateError::MissingName { offset: dollar }),
            };
            let Some(var) = Var::lookup(name) else {
                return Err(TemplateError::UnknownVariable {
                    offset: dollar,
                    len: next - dollar,
                });
            };
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal).into()));
            }
            parts.push(Part::Var(var));
            at = next;
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal.into()));
        }
        Ok(Self { parts })
    }

    /// The parts, in order. Adjacent literals are merged; no literal is empty.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// Whether the template has no variable.
    pub fn is_constant(&self) -> bool {
        self.variables().next().is_none()
    }

    /// The variables the template uses, in order (repeats included).
    pub fn variables(&self) -> impl Iterator<Item = Var> + '_ {
        self.parts.iter().filter_map(|part| match part {
            Part::Var(var) => Some(*var),
            Part::Literal(_) => None,
        })
    }

    /// The text with every variable replaced by its [`Var::sample`]; for
    /// validating at compile time. Allocates.
    pub fn sample(&self) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Var(var) => out.push_str(var.sample()),
            }
        }
        out
    }

    /// The literal text with every variable replaced by nothing.
    pub(super) fn constant_text(&self) -> String {
        let mut out = String::new();
        for part in &self.parts {
            if let Part::Literal(text) = part {
                out.push_str(text);
            }
        }
        out
    }
}

impl fmt::Display for Template {
    /// The source form: `$` as `$$`, variables as `${name}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Literal(text) => {
                    for (i, piece) in text.split('$').enumerate() {
                        if i > 0 {
                            f.write_str("$$")?;
                        }
                        f.write_str(piece)?;
                    }
                }
                Part::Var(var) => write!(f, "${{{var}}}")?,
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for Template {
    type Err = TemplateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}
