//! Action templates: reply texts with `$variables` filled in from the request.
//!
//! A policy writes `then REJECT "5.7.1 Sender $sender is blocked"`. The text is
//! parsed once into a [`Template`] (literal parts and [`Var`]iables), checked at
//! compile time by substituting a plausible sample for every variable and
//! validating the result with [`Action::parse`](crate::Action::parse), and expanded at decide time
//! into the connection's output buffer, without allocating.
//!
//! # Template syntax
//!
//! ```text
//! template = *( literal / "$$" / "$" name / "${" name "}" )
//! name     = 1*( ALPHA / DIGIT / "_" )     ; after a bare `$`, the longest such run
//! literal  = any character but "$" and control characters
//! ```
//!
//! `$$` is a literal `$`. A name is a request attribute ([`KNOWN_ATTRIBUTES`](crate::base::attr::KNOWN_ATTRIBUTES):
//! `sender`, `client_address`, `sasl_username`, ...), a derived field
//! (`sender_local`, `sender_domain`, `recipient_local`, `recipient_domain`) or
//! `rule` (the deciding rule's name). Names are case-sensitive, like the
//! attributes. Use `${name}` when letters, digits or `_` follow the variable:
//! `${sender_local}_x`.
//!
//! # Expansion
//!
//! Values come from a client and are treated as hostile:
//!
//! - **Control characters** (C0 including CR, LF, TAB and NUL; DEL; C1) become
//!   a space: the reply stays one line.
//! - **Invalid UTF-8** becomes U+FFFD, one per maximal invalid sequence (as
//!   [`String::from_utf8_lossy`] does).
//! - **Length**: the expanded text is cut to at most [`MAX_TEXT_BYTES`](crate::MAX_TEXT_BYTES) bytes,
//!   on a character boundary.
//! - **Spaces** at the start and end of the expanded text are removed (an
//!   action's text may not have them, and an empty value must not leave one).
//! - **Typed attributes** are written in their canonical form (`size=0010`
//!   expands to `10`; an IPv6 zone is dropped); `client_address`,
//!   `server_address` and the ports expand to their raw value when it was not
//!   an address or port (`unknown`). A missing or empty attribute expands to
//!   nothing.
//!
//! [`sanitize`] is the same sanitizing (without the trimming) on its own, for a
//! reply text that is not a template.
//!
//! # Actions with templates
//!
//! An [`ActionTemplate`] is an action verb plus an optional templated text. Its
//! [`ActionTemplate::write_wire`] always writes one valid action: when an
//! expansion would make the action invalid, it writes a documented fallback
//! instead (see [`ActionTemplate::write_wire`]).
//!
//! # Inside the crate
//!
//! The same variables are what conditions and limit keys read: `field.rs`
//! types a [`Var`] read as a field and writes its value without allocating,
//! and `action.rs` also has a rule's compiled answer (an action, its wire
//! form, its template). Both are here, below the policy language, because
//! the limit and greylist rules use them too.

mod action;
mod expand;
mod field;
mod parse;
mod sanitize;
#[cfg(test)]
mod tests;
mod vars;

pub use action::{ActionTemplate, ActionTemplateError, WireOutcome};
pub use expand::write_duration;
pub use parse::{Part, Template, TemplateError};
pub use sanitize::sanitize;
pub use vars::{Context, DecisionFacts, GreylistFacts, LimitFacts, Var};

pub(crate) use action::Verdict;
pub(crate) use field::{FieldType, TextBuf};
