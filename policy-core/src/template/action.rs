//! Actions whose text holds variables: validated once at compile time,
//! expanded per request into one valid action, or a documented fallback.

use std::fmt;

use crate::action::{is_blank, Action, ActionError, EnhancedStatus, Shape, MAX_TEXT_BYTES};
use crate::request::Request;

use super::parse::{Part, Template, TemplateError};
use super::vars::{Context, Var};

/// An action, ready to send: what a rule answers (a rule's action, a
/// limit's answer to a request that can never fit, a greylist's header).
/// The policy language compiles it; the limit and greylist rules hold some.
#[derive(Debug, Clone)]
pub(crate) struct Verdict {
    /// The compiled action (templates filled with samples).
    pub(crate) action: Action,
    /// The wire form of a constant action, written once at compile time.
    pub(crate) wire: Box<[u8]>,
    /// The templated action, `None` when constant.
    pub(crate) template: Option<ActionTemplate>,
}

impl Verdict {
    /// Whether the action's text shows `var`.
    pub(crate) fn uses(&self, var: Var) -> bool {
        self.template
            .as_ref()
            .is_some_and(|t| t.variables().any(|v| v == var))
    }

    pub(crate) fn constant(action: Action) -> Self {
        let mut wire = Vec::new();
        action.write_wire(&mut wire);
        Self {
            action,
            wire: wire.into_boxed_slice(),
            template: None,
        }
    }
}

/// What [`ActionTemplate::write_wire`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireOutcome {
    /// The action as written, variables filled in (or a constant action).
    Expanded,
    /// The action as written, its text cut to [`MAX_TEXT_BYTES`].
    Truncated,
    /// The expansion would not have been a valid action; the documented
    /// fallback ([`ActionTemplate::fallback`]) was written instead.
    Fallback,
}

/// An action whose text may hold template variables, compiled and validated
/// once, expanded per request by [`ActionTemplate::write_wire`].
///
/// ```
/// use policy_core::Request;
/// use policy_core::template::ActionTemplate;
///
/// let action = ActionTemplate::compile("reject", Some("5.7.1 Sender $sender is blocked")).unwrap();
/// assert_eq!(action.action().to_string(), "REJECT 5.7.1 Sender sender@example.org is blocked");
///
/// let frame = b"request=smtpd_access_policy\nsender=spam\r\r@example.net\n\n";
/// let request = Request::parse(frame).unwrap();
/// let mut out = Vec::with_capacity(512);
/// action.write_wire(&request, "block-senders", &mut out);
/// assert_eq!(out, b"REJECT 5.7.1 Sender spam  @example.net is blocked");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionTemplate {
    /// The action as compiled: verbatim if constant, else sample-substituted.
    action: Action,
    /// What to write when an expansion is not a valid action.
    fallback: Action,
    /// The wire form of `fallback` (for a constant action, of the action),
    /// written as is: one copy instead of formatting.
    fallback_wire: Box<str>,
    /// The canonical wire text before the templated text: the verb or code,
    /// and a constant enhanced status code (`REJECT 5.7.1`, `550`, `PREPEND`).
    prefix: Box<str>,
    /// The templated text after the prefix; `None` for a constant action.
    text: Option<Template>,
    /// What the expanded text must satisfy (checked by [`Shape::check`], the
    /// same check as [`Action::parse`]'s).
    shape: Shape,
    /// Whether the prefix holds a constant enhanced status code (then the
    /// expanded text of a reply may start with anything).
    constant_code: bool,
}

/// Why an action template was refused. [`ActionTemplateError::offset`] gives
/// the byte offset in the text, where there is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActionTemplateError {
    /// The text is not a valid template.
    Template(TemplateError),
    /// The action (with samples for the variables) is not a valid action.
    Action(ActionError),
    /// A `PREPEND` header name holds a variable, or the text starts with one:
    /// the name must be constant.
    TemplatedHeaderName {
        /// Offset of the first variable's `$`.
        offset: usize,
    },
    /// A rejecting or deferring text starts with a variable whose values are
    /// numbers (`$retry_after`, `$limit`, ...): they would read as a reply
    /// code of another class than the verb's (see
    /// [`ActionError::ReplyCodeMismatch`]).
    LeadingNumber {
        /// The variable.
        var: Var,
        /// Offset of its `$`.
        offset: usize,
    },
}

impl ActionTemplateError {
    /// The byte offset in the action's text, for errors that have one.
    pub fn offset(&self) -> Option<usize> {
        match self {
            Self::Template(error) => Some(error.offset()),
            Self::Action(_) => None,
            Self::TemplatedHeaderName { offset } | Self::LeadingNumber { offset, .. } => {
                Some(*offset)
            }
        }
    }
}

impl fmt::Display for ActionTemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Template(error) => error.fmt(f),
            Self::Action(error) => error.fmt(f),
            Self::TemplatedHeaderName { .. } => f.write_str(
                "invalid action: expected a constant header name before `:` in PREPEND \
                 (variables may only appear in the value)",
            ),
            Self::LeadingNumber { var, .. } => write!(
                f,
                "invalid action: the text starts with `${var}`, a number, which reads as a \
                 reply code when it has three digits (`450 ...`); start the text with words or \
                 with an enhanced status code"
            ),
        }
    }
}

impl std::error::Error for ActionTemplateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Template(error) => Some(error),
            Self::Action(error) => Some(error),
            Self::TemplatedHeaderName { .. } | Self::LeadingNumber { .. } => None,
        }
    }
}

impl From<TemplateError> for ActionTemplateError {
    fn from(error: TemplateError) -> Self {
        Self::Template(error)
    }
}

impl From<ActionError> for ActionTemplateError {
    fn from(error: ActionError) -> Self {
        Self::Action(error)
    }
}

/// The offset of the first `$` that starts a variable in `text` (skipping `$$`).
fn first_variable_offset(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'$' {
            if bytes.get(at + 1) == Some(&b'$') {
                at += 2;
                continue;
            }
            return at;
        }
        at += 1;
    }
    0
}

impl ActionTemplate {
    /// Compile `verb` (as written: `OK`, `reject`, `450`, ...) and its
    /// optional text, which may hold template variables.
    ///
    /// A constant text is validated verbatim with [`Action::parse`]. A
    /// templated one is validated with every variable replaced by its
    /// [`Var::sample`] (so `REDIRECT "$client_address"` is refused: a sample
    /// address has no `@`), plus:
    ///
    /// - `PREPEND`: the header name (before the first `:`) must be constant
    ///   ([`ActionTemplateError::TemplatedHeaderName`]).
    /// - `OK` and `DUNNO` take no text.
    pub fn compile(verb: &str, text: Option<&str>) -> Result<Self, ActionTemplateError> {
        if verb.is_empty() {
            return Err(ActionError::Empty.into());
        }
        if verb.contains([' ', '\t']) {
            return Err(ActionError::UnknownVerb.into());
        }
        let Some(text) = text else {
            return Ok(Self::constant(Action::parse(verb)?));
        };
        let template = Template::parse(text)?;
        if template.is_constant() {
            let wire = format!("{verb} {}", template.constant_text());
            return Ok(Self::constant(Action::parse(&wire)?));
        }
        let parsed = Action::parse(&format!("{verb} {}", template.sample()));
        let first = template
            .parts
            .iter()
            .find(|p| !matches!(p, Part::Literal(l) if l.trim_matches(is_blank).is_empty()));
        if let Some(Part::Var(var)) = first {
            // A reply text that starts with a number reads as a reply code
            // (whatever the sample: `$size` = `550`).
            let reply = match &parsed {
                Err(error) => matches!(error, ActionError::ReplyCodeMismatch { .. }),
                Ok(action) => matches!(action.shape(), Some(Shape::Reply { .. })),
            };
            if reply && var.is_number() {
                return Err(ActionTemplateError::LeadingNumber {
                    var: *var,
                    offset: first_variable_offset(text),
                });
            }
        }
        let action = parsed?;
        let Some(shape) = action.shape() else {
            // Unreachable: the sample is non-empty and `parse` refused it.
            return Err(ActionError::UnexpectedText {
                verb: action.verb(),
            }
            .into());
        };
        let mut prefix = match &action {
            Action::Status { code, .. } => code.to_string(),
            other => other.verb().to_owned(),
        };
        let mut parts = template.parts;
        let mut constant_code = false;
        match shape {
            Shape::Reply { .. } => {
                if let Some(code) = split_constant_code(&mut parts) {
                    prefix.push(' ');
                    prefix.push_str(&code.to_string());
                    constant_code = true;
                }
            }
            Shape::Header => {
                let constant_name = match parts.first() {
                    Some(Part::Literal(first)) => first.contains(':'),
                    _ => false,
                };
                if !constant_name {
                    return Err(ActionTemplateError::TemplatedHeaderName {
                        offset: first_variable_offset(text),
                    });
                }
            }
            Shape::Optional | Shape::Required | Shape::Filter | Shape::Address => {}
        }
        let fallback = match shape {
            Shape::Reply { .. } if constant_code => Action::parse(&prefix)?,
            Shape::Reply { .. } => match &action {
                Action::Status { code, .. } => {
                    Action::parse(&format!("{code} {}.0.0", code / 100))?
                }
                _ => Action::parse(&prefix)?,
            },
            Shape::Optional => Action::parse(&prefix)?,
            Shape::Required | Shape::Filter | Shape::Header | Shape::Address => Action::Dunno,
        };
        Ok(Self {
            action,
            fallback_wire: fallback.to_string().into(),
            fallback,
            prefix: prefix.into(),
            text: Some(Template { parts }),
            shape,
            constant_code,
        })
    }

    fn constant(action: Action) -> Self {
        Self {
            fallback: action.clone(),
            fallback_wire: action.to_string().into(),
            action,
            prefix: Box::from(""),
            text: None,
            shape: Shape::Optional,
            constant_code: false,
        }
    }

    /// The action as compiled: verbatim if constant, else with every variable
    /// replaced by its [`Var::sample`]. Its kind ([`Action::verb`]) is the
    /// kind of every expansion, except a [`WireOutcome::Fallback`] to `DUNNO`.
    pub fn action(&self) -> &Action {
        &self.action
    }

    /// What [`ActionTemplate::write_wire`] writes when the expansion would not
    /// be a valid action (see there). For a constant action, the action.
    pub fn fallback(&self) -> &Action {
        &self.fallback
    }

    /// Whether the action has no variable (its wire form never changes).
    pub fn is_constant(&self) -> bool {
        self.text.is_none()
    }

    /// The templated text after the verb (and after a constant enhanced
    /// status code of a rejecting or deferring action); `None` if constant.
    pub fn template(&self) -> Option<&Template> {
        self.text.as_ref()
    }

    /// The variables used, in order.
    pub fn variables(&self) -> impl Iterator<Item = Var> + '_ {
        self.text.iter().flat_map(Template::variables)
    }

    /// Append the wire form (what follows `action=`) for `request`, decided by
    /// rule `rule`, to `out`: always one valid action ([`Action::parse`]
    /// accepts it), one line of UTF-8 without control characters, its text at
    /// most [`MAX_TEXT_BYTES`] bytes.
    ///
    /// The text is expanded as [`Template::expand`] does. If the result would
    /// not be a valid action, the [`fallback`](Self::fallback) is written:
    ///
    /// | action | invalid when | fallback |
    /// |---|---|---|
    /// | `REJECT`, `DEFER`, `DEFER_IF_*` | text without a constant enhanced code starts with one (`$sender` = `4.7.1`), or with a reply code of another class (`REJECT` and `$sender` = `450`) | the verb and its constant enhanced code, if any (Postfix adds its default text) |
    /// | `4NN`/`5NN` | as above (the code's class), or empty text without enhanced code | the code and its constant enhanced code, else `C.0.0` (`550 5.0.0`) |
    /// | `HOLD`, `DISCARD` | never | the bare verb |
    /// | `WARN`, `INFO` | empty text | `DUNNO` |
    /// | `FILTER` | not `transport:destination` without spaces | `DUNNO` |
    /// | `PREPEND` | never (the name is constant) | `DUNNO` |
    /// | `REDIRECT`, `BCC` | not `local@domain` without spaces | `DUNNO` (better no redirect than a wrong one) |
    ///
    /// Allocates only if `out` lacks capacity (prefix and [`MAX_TEXT_BYTES`]).
    pub fn write_wire(&self, request: &Request<'_>, rule: &str, out: &mut Vec<u8>) -> WireOutcome {
        self.write_wire_in(request, &Context::rule(rule), out)
    }

    /// [`ActionTemplate::write_wire`] with a whole [`Context`] (the limit
    /// variables of a limit's `over` action).
    pub fn write_wire_in(
        &self,
        request: &Request<'_>,
        context: &Context<'_>,
        out: &mut Vec<u8>,
    ) -> WireOutcome {
        let Some(text) = &self.text else {
            out.extend_from_slice(self.fallback_wire.as_bytes());
            return WireOutcome::Expanded;
        };
        let start = out.len();
        out.reserve(self.prefix.len() + 1 + MAX_TEXT_BYTES);
        out.extend_from_slice(self.prefix.as_bytes());
        out.push(b' ');
        let text_start = out.len();
        let truncated = text.expand_in(request, context, out);
        if self
            .shape
            .check(self.constant_code, &out[text_start..])
            .is_err()
        {
            out.truncate(start);
            out.extend_from_slice(self.fallback_wire.as_bytes());
            return WireOutcome::Fallback;
        }
        if out.len() == text_start {
            // No text: drop the separator.
            out.pop();
        }
        if truncated {
            WireOutcome::Truncated
        } else {
            WireOutcome::Expanded
        }
    }
}

/// If the template's text starts with a constant enhanced status code followed
/// by a space (`5.7.1 Sender $sender ...`), remove it from `parts` and return
/// it. A code directly followed by a variable (`5.7.1$x`) is not constant.
fn split_constant_code(parts: &mut Vec<Part>) -> Option<EnhancedStatus> {
    let Some(Part::Literal(first)) = parts.first() else {
        return None;
    };
    let trimmed = first.trim_start_matches(' ');
    let space = trimmed.find(' ')?;
    let code = EnhancedStatus::parse(&trimmed[..space]).ok()?;
    let rest = trimmed[space..].trim_start_matches(' ');
    if rest.is_empty() {
        parts.remove(0);
    } else {
        parts[0] = Part::Literal(rest.into());
    }
    Some(code)
}

impl fmt::Display for ActionTemplate {
    /// The wire form with variables shown as `${name}` (constant actions as
    /// their wire form). For logs and `policyd test --explain`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.text {
            None => self.action.fmt(f),
            Some(text) => write!(f, "{} {text}", self.prefix),
        }
    }
}
