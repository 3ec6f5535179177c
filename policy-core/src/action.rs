//! access(5) actions a policy server may reply with, validated when constructed.
//!
//! An [`Action`] can only hold what Postfix accepts in a policy reply: known
//! verbs, status codes in range and consistent with the verb, texts without
//! control characters, well-formed headers, addresses and transports. Its wire
//! form (what follows `action=`) is written by [`Action::write_wire`] and is
//! always one line of valid UTF-8.
//!
//! # Input and canonical form
//!
//! [`Action::parse`] accepts what Postfix accepts: the verb in any case
//! (`reject`, `Reject`), separated from its argument by spaces or tabs, with
//! spaces or tabs around the whole ignored. Output is canonical: the verb in
//! upper case, one space between verb, enhanced status code and text. Parsing
//! the canonical form gives the same action back.
//!
//! ```text
//! action     = verb-only / reply-verb / status / hold-like / argument-verb
//! verb-only  = "OK" / "DUNNO"
//! reply-verb = ( "REJECT" / "DEFER" / "DEFER_IF_REJECT" / "DEFER_IF_PERMIT" ) [ SP reply ]
//! status     = code SP reply                 ; code = ( "4" / "5" ) %x30-35 DIGIT
//! reply      = enhanced [ SP text ] / text   ; enhanced = class "." 1*3DIGIT "." 1*3DIGIT
//! hold-like  = ( "HOLD" / "DISCARD" ) [ SP text ]
//! argument-verb = "FILTER" SP transport ":" destination
//!            / "PREPEND" SP header-name ":" header-value
//!            / ( "REDIRECT" / "BCC" ) SP local "@" domain
//!            / ( "WARN" / "INFO" ) SP text
//! ```
//!
//! # Decisions
//!
//! - **Reply codes**: `4NN` or `5NN` with a second digit 0-5 (RFC 5321 4.2.1).
//!   `421` and `521` are allowed; Postfix (2.6+) then disconnects the client.
//!   A code needs text after it: a bare number is an all-numerical result,
//!   which Postfix treats as `OK`, so `450` alone is refused rather than sent.
//! - **Enhanced status codes** (RFC 3463) are recognised at the start of the
//!   text as Postfix does (a token `class.subject.detail` with class 2, 4 or
//!   5). Their class must match the verb: 5 for `REJECT` and `5NN`, 4 for
//!   `DEFER`, `DEFER_IF_REJECT`, `DEFER_IF_PERMIT` and `4NN`. Postfix would
//!   silently rewrite a mismatch; we refuse it so the author sees the mistake.
//! - **Reply codes in a verb's text**: a text that starts with a three-digit
//!   reply code (`REJECT 450 4.7.1 Try again`) is read by people as that
//!   code, but Postfix sends the verb's own code (554 for `REJECT`) with the
//!   digits as text. A leading code of another class than the verb's (a
//!   first digit 1 to 5 other than 5 for `REJECT` and `5NN`, 4 for `DEFER`,
//!   `DEFER_IF_REJECT`, `DEFER_IF_PERMIT` and `4NN`) is refused
//!   ([`ActionError::ReplyCodeMismatch`]); to send a code, write it as the
//!   action (`450 4.7.1 Try again`).
//! - **Text** is printable: no control character (CR, LF, TAB, DEL, C1...),
//!   at most [`MAX_TEXT_BYTES`] bytes, not starting or ending with a space.
//!   Non-ASCII UTF-8 is allowed (SMTPUTF8 replies).
//! - **`OK` and `DUNNO`** take no text: Postfix would ignore it, and text there
//!   is more likely a typo than intent.

use std::fmt;
use std::str::FromStr;

/// An RFC 3463 enhanced status code such as `5.7.1`.
///
/// Build it with [`EnhancedStatus::new`] or [`EnhancedStatus::parse`]; the
/// fields are public for matching, and [`Action::validate`] checks a value
/// built by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedStatus {
    /// Class: 2, 4 or 5.
    pub class: u8,
    /// Subject: 0..=999.
    pub subject: u16,
    /// Detail: 0..=999.
    pub detail: u16,
}

/// The largest subject and detail of an enhanced status code: RFC 3463 allows
/// at most three digits for each.
const MAX_STATUS_PART: u16 = 999;

impl EnhancedStatus {
    /// An enhanced status code, checked: class 2, 4 or 5, subject and detail
    /// at most 999.
    pub const fn new(class: u8, subject: u16, detail: u16) -> Result<Self, ActionError> {
        if matches!(class, 2 | 4 | 5) && subject <= MAX_STATUS_PART && detail <= MAX_STATUS_PART {
            Ok(Self {
                class,
                subject,
                detail,
            })
        } else {
            Err(ActionError::InvalidEnhancedStatus)
        }
    }

    /// Parse `class.subject.detail` (e.g. `4.7.1`): class 2, 4 or 5, then one
    /// to three digits for each of subject and detail, nothing else.
    pub fn parse(s: &str) -> Result<Self, ActionError> {
        Self::from_token(s).ok_or(ActionError::InvalidEnhancedStatus)
    }

    /// `enhanced = ( "2" / "4" / "5" ) "." 1*3DIGIT "." 1*3DIGIT`
    fn from_token(s: &str) -> Option<Self> {
        fn part(s: &str) -> Option<u16> {
            if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        }
        let mut parts = s.splitn(3, '.');
        let class = match parts.next()? {
            "2" => 2,
            "4" => 4,
            "5" => 5,
            _ => return None,
        };
        let subject = part(parts.next()?)?;
        let detail = part(parts.next()?)?;
        Some(Self {
            class,
            subject,
            detail,
        })
    }

    fn check(&self) -> Result<(), ActionError> {
        Self::new(self.class, self.subject, self.detail).map(|_| ())
    }
}

impl fmt::Display for EnhancedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

impl FromStr for EnhancedStatus {
    type Err = ActionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Free text of a reply (after the verb or code), validated: printable, no CR,
/// LF or other control character, at most [`MAX_TEXT_BYTES`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Text(Box<str>);

/// The longest text an [`Action`] may carry. Postfix truncates SMTP reply lines
/// near 512 bytes (RFC 5321 4.5.3.1.5); anything longer would be cut by Postfix.
pub const MAX_TEXT_BYTES: usize = 450;

/// Check the rules of [`Text`] without allocating.
fn check_text(s: &str) -> Result<(), ActionError> {
    if s.is_empty() {
        return Err(ActionError::EmptyText);
    }
    if s.len() > MAX_TEXT_BYTES {
        return Err(ActionError::TextTooLong { len: s.len() });
    }
    if s.chars().any(char::is_control) {
        return Err(ActionError::ControlCharacter);
    }
    if s.starts_with(' ') || s.ends_with(' ') {
        return Err(ActionError::SurroundingSpace);
    }
    Ok(())
}

impl Text {
    /// Validated text: not empty, at most [`MAX_TEXT_BYTES`] bytes, no control
    /// character (CR, LF, TAB, DEL, C1...), no leading or trailing space.
    pub fn new(s: &str) -> Result<Self, ActionError> {
        check_text(s)?;
        Ok(Self(s.into()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Text {
    type Err = ActionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// Text carried by a rejecting or deferring verb: an optional enhanced status
/// code, then optional free text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ReplyText {
    /// The enhanced status code at the start of the text, if any.
    pub enhanced: Option<EnhancedStatus>,
    /// The free text after it, if any.
    pub text: Option<Text>,
}

/// Separators between verb, enhanced status code and text on input.
pub(crate) fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Split `s` at its first run of blanks: `(first token, rest)`.
fn split_token(s: &str) -> (&str, &str) {
    match s.find(is_blank) {
        Some(at) => (&s[..at], s[at..].trim_start_matches(is_blank)),
        None => (s, ""),
    }
}

impl ReplyText {
    /// Parse `[enhanced] [text]`: an enhanced status code is recognised when
    /// the first word is one (`5.7.1`). The empty string gives no code and no
    /// text. The class is not checked here (the verb decides it).
    pub fn parse(s: &str) -> Result<Self, ActionError> {
        let s = s.trim_matches(is_blank);
        if s.is_empty() {
            return Ok(Self::default());
        }
        let (first, rest) = split_token(s);
        let (enhanced, text) = match EnhancedStatus::from_token(first) {
            Some(status) => (Some(status), rest),
            None => (None, s),
        };
        let text = if text.is_empty() {
            None
        } else {
            Some(Text::new(text)?)
        };
        Ok(Self { enhanced, text })
    }

    /// Whether there is neither an enhanced status code nor text.
    pub fn is_empty(&self) -> bool {
        self.enhanced.is_none() && self.text.is_none()
    }

    /// Check the parts against `shape`, the [`Shape::Reply`] of their verb:
    /// an enhanced code of the verb's class; text without a code that does
    /// not itself start with one (Postfix would read it as the code) nor with
    /// a reply code of another class; text or a code where the verb needs it.
    fn check(&self, shape: Shape) -> Result<(), ActionError> {
        if let Some(status) = &self.enhanced {
            status.check()?;
            if let Shape::Reply { class, .. } = shape {
                if status.class != class {
                    return Err(ActionError::EnhancedClassMismatch {
                        expected: class,
                        found: status.class,
                    });
                }
            }
        }
        let text = match &self.text {
            Some(text) => {
                check_text(text.as_str())?;
                text.as_str()
            }
            None => "",
        };
        shape.check(self.enhanced.is_some(), text.as_bytes())
    }

    /// [`ReplyText::parse`], then [`ReplyText::check`] against `shape`.
    fn parse_as(s: &str, shape: Shape) -> Result<Self, ActionError> {
        let reply = Self::parse(s)?;
        reply.check(shape)?;
        Ok(reply)
    }

    fn write_to(&self, w: &mut impl fmt::Write) -> fmt::Result {
        if let Some(status) = &self.enhanced {
            write!(w, " {status}")?;
        }
        if let Some(text) = &self.text {
            w.write_char(' ')?;
            w.write_str(text.as_str())?;
        }
        Ok(())
    }
}

/// One access(5) action, as a policy server may send it in `action=...`.
///
/// Names follow Postfix's own words and order. Construct with [`Action::parse`]
/// (the wire form) or the validating constructors; every value so built is
/// valid. The payloads are public for matching; a value assembled by hand can
/// be checked with [`Action::validate`] (its wire form is one safe line either
/// way, since [`Text`] cannot hold a line break).
///
/// Postfix versions: every action works in a policy reply since Postfix 2.1
/// unless its documentation says otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// `OK`: accept (and stop the restriction list).
    Ok,
    /// `DUNNO`: no opinion; Postfix goes on with the next restriction.
    Dunno,
    /// `REJECT [text]`: permanent rejection (5xx, enhanced class 5).
    Reject(ReplyText),
    /// `DEFER [text]`: temporary rejection (4xx, enhanced class 4). Postfix 2.6+.
    Defer(ReplyText),
    /// `DEFER_IF_REJECT [text]`: defer if a later restriction rejects (class 4).
    DeferIfReject(ReplyText),
    /// `DEFER_IF_PERMIT [text]`: defer if a later restriction would permit (class 4).
    DeferIfPermit(ReplyText),
    /// `4NN text` / `5NN text`: reply with this SMTP code. `421` and `521`
    /// also disconnect (Postfix 2.6+).
    Status {
        /// SMTP reply code, 400..=599.
        code: u16,
        /// Enhanced code and text; the enhanced class matches `code / 100`.
        reply: ReplyText,
    },
    /// `HOLD [text]`: place the whole message on the hold queue.
    Hold(Option<Text>),
    /// `DISCARD [text]`: accept and silently discard the whole message.
    Discard(Option<Text>),
    /// `FILTER transport:destination`: send the whole message through a content
    /// filter. The destination may be empty (`transport:`), as in transport(5).
    Filter(Text),
    /// `PREPEND headername: headervalue`: prepend a header to the message.
    /// Not allowed at END-OF-MESSAGE.
    Prepend(Text),
    /// `REDIRECT user@domain`: send the whole message to this address instead.
    Redirect(Text),
    /// `BCC user@domain`: send a blind copy of the whole message (Postfix 3.0+).
    Bcc(Text),
    /// `WARN text`: log a warning and go on.
    Warn(Text),
    /// `INFO text`: log an informational line and go on (Postfix 3.0+).
    Info(Text),
}

/// Why an action was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActionError {
    /// The action is empty.
    Empty,
    /// The first word is no access(5) action valid in a policy reply.
    UnknownVerb,
    /// `OK` or `DUNNO` followed by text.
    UnexpectedText {
        /// The verb.
        verb: &'static str,
    },
    /// A verb or code that needs an argument has none.
    MissingText {
        /// The verb (`"4NN/5NN"` for a reply code).
        verb: &'static str,
    },
    /// A reply code outside 4NN/5NN with second digit 0-5.
    InvalidCode,
    /// Not an enhanced status code `class.subject.detail`.
    InvalidEnhancedStatus,
    /// The enhanced status code's class does not match the verb or code.
    EnhancedClassMismatch {
        /// The class the verb or code requires.
        expected: u8,
        /// The class given.
        found: u8,
    },
    /// The text (without an enhanced status code) starts with a reply code
    /// of another class than the verb's: `REJECT 450 4.7.1 ...`.
    ReplyCodeMismatch {
        /// The class the verb or code requires (4 or 5).
        expected: u8,
        /// The reply code at the start of the text.
        found: u16,
    },
    /// Text is empty where text is required.
    EmptyText,
    /// Text is longer than [`MAX_TEXT_BYTES`].
    TextTooLong {
        /// The text's length in bytes.
        len: usize,
    },
    /// Text contains a control character (CR, LF, TAB, NUL, DEL, ...).
    ControlCharacter,
    /// Text starts or ends with a space.
    SurroundingSpace,
    /// Text without an enhanced status code starts with one anyway (hand-built
    /// [`ReplyText`]); Postfix would read it as the code.
    StatusInText,
    /// `PREPEND` argument is not `name: value`.
    InvalidHeader,
    /// `REDIRECT`/`BCC` argument is not `local@domain`.
    InvalidAddress,
    /// `FILTER` argument is not `transport:destination`.
    InvalidFilter,
}

impl fmt::Display for ActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("invalid action: expected an action, got nothing"),
            Self::UnknownVerb => f.write_str(
                "invalid action: expected OK, DUNNO, REJECT, DEFER, DEFER_IF_REJECT, \
                 DEFER_IF_PERMIT, 4NN/5NN, HOLD, DISCARD, FILTER, PREPEND, REDIRECT, BCC, \
                 WARN or INFO",
            ),
            Self::UnexpectedText { verb } => {
                write!(f, "invalid action: expected nothing after {verb}")
            }
            Self::MissingText { verb } => write!(f, "invalid action: expected text after {verb}"),
            Self::InvalidCode => f.write_str(
                "invalid action: expected a reply code 4NN or 5NN with second digit 0-5",
            ),
            Self::InvalidEnhancedStatus => f.write_str(
                "invalid action: expected an enhanced status code class.subject.detail \
                 (class 2, 4 or 5; subject and detail 1 to 3 digits)",
            ),
            Self::EnhancedClassMismatch { expected, found } => write!(
                f,
                "invalid action: expected enhanced status class {expected}, got {found}"
            ),
            Self::ReplyCodeMismatch { expected, found } => {
                write!(
                    f,
                    "invalid action: the text starts with reply code {found}, but this action \
                     answers {expected}xx"
                )?;
                if matches!(found / 100, 4 | 5) {
                    write!(
                        f,
                        " (to answer {found}, write the code as the action: {found} TEXT{})",
                        if found / 100 == 4 {
                            ", or use DEFER"
                        } else {
                            ", or use REJECT"
                        }
                    )?;
                }
                Ok(())
            }
            Self::EmptyText => f.write_str("invalid action: expected non-empty text"),
            Self::TextTooLong { len } => write!(
                f,
                "invalid action: expected text of at most {MAX_TEXT_BYTES} bytes, got {len}"
            ),
            Self::ControlCharacter => {
                f.write_str("invalid action: expected text without control characters")
            }
            Self::SurroundingSpace => {
                f.write_str("invalid action: expected text without leading or trailing space")
            }
            Self::StatusInText => f.write_str(
                "invalid action: expected text not starting with an enhanced status code \
                 (give it as the code)",
            ),
            Self::InvalidHeader => f.write_str(
                "invalid action: expected a header `Name: value` (name of printable ASCII \
                 without spaces or colon)",
            ),
            Self::InvalidAddress => {
                f.write_str("invalid action: expected an address local@domain without spaces")
            }
            Self::InvalidFilter => f.write_str(
                "invalid action: expected transport:destination (transport non-empty, no spaces)",
            ),
        }
    }
}

impl std::error::Error for ActionError {}

// ---------------------------------------------------------------------------
// The one action-shape check.

/// What may follow an action's verb or reply code, one shape per family of
/// verbs (see the grammar in the [module documentation](self)).
///
/// This is the one place where the shape of an action's text is checked:
/// [`Action::parse`], the constructors and [`Action::validate`] check here,
/// and so does an action whose text holds template variables
/// (`template::ActionTemplate`), on every expansion. [`Action::shape`] is the
/// one table from an action to its shape. Do not write another check:
/// change this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// `REJECT`, `DEFER`, `DEFER_IF_REJECT`, `DEFER_IF_PERMIT`, `4NN`/`5NN`:
    /// `[enhanced] [text]`. `class`: 4 or 5, the class the enhanced status
    /// code and a leading reply code in the text must have (`REJECT 450 ...`
    /// reads as a 450; [`ActionError::ReplyCodeMismatch`]). `needs_text`:
    /// `4NN`/`5NN` need an enhanced code or text.
    Reply {
        /// 4 or 5.
        class: u8,
        /// Whether an empty reply is refused.
        needs_text: bool,
    },
    /// `HOLD`, `DISCARD`: any text, or none.
    Optional,
    /// `WARN`, `INFO`: any text, not empty.
    Required,
    /// `FILTER`: `transport:destination`.
    Filter,
    /// `PREPEND`: `name: value`.
    Header,
    /// `REDIRECT`, `BCC`: `local@domain`.
    Address,
}

impl Shape {
    /// `REJECT`: class 5, text optional.
    pub(crate) const REJECT: Self = Self::Reply {
        class: 5,
        needs_text: false,
    };

    /// `DEFER`, `DEFER_IF_REJECT`, `DEFER_IF_PERMIT`: class 4, text optional.
    pub(crate) const DEFER: Self = Self::Reply {
        class: 4,
        needs_text: false,
    };

    /// `4NN`/`5NN`: the code's class, an enhanced code or text required.
    /// For a code that [`check_code`] refuses the class means nothing;
    /// check the code first.
    pub(crate) fn status(code: u16) -> Self {
        Self::Reply {
            class: u8::try_from(code / 100).unwrap_or(u8::MAX),
            needs_text: true,
        }
    }

    /// Check `arg`, what follows the verb or code, which is empty or else
    /// printable text without surrounding spaces (a [`Text`], or an expanded
    /// template). For a reply, `arg` is the text after the enhanced status
    /// code, and `enhanced` says whether there is one (then the text may
    /// start with anything).
    ///
    /// Inlined: it runs on every expansion of a templated action, where the
    /// caller only asks whether it passed.
    #[inline]
    pub(crate) fn check(self, enhanced: bool, arg: &[u8]) -> Result<(), ActionError> {
        // Only FILTER and REDIRECT/BCC look for spaces: a closure, so that
        // the other shapes do not scan the text.
        let no_space = || !arg.contains(&b' ');
        match self {
            Self::Reply { class, needs_text } => {
                if arg.is_empty() {
                    return if needs_text && !enhanced {
                        Err(ActionError::MissingText { verb: "4NN/5NN" })
                    } else {
                        Ok(())
                    };
                }
                if enhanced {
                    return Ok(());
                }
                let first = first_token(arg);
                if is_enhanced_status(first) {
                    return Err(ActionError::StatusInText);
                }
                match reply_code(first) {
                    Some(found) if found / 100 != u16::from(class) => {
                        Err(ActionError::ReplyCodeMismatch {
                            expected: class,
                            found,
                        })
                    }
                    _ => Ok(()),
                }
            }
            Self::Optional => Ok(()),
            Self::Required if arg.is_empty() => Err(ActionError::EmptyText),
            Self::Required => Ok(()),
            // `filter = transport ":" destination`, transport non-empty, no
            // space anywhere.
            Self::Filter => match arg.iter().position(|&b| b == b':') {
                Some(colon) if colon > 0 && no_space() => Ok(()),
                _ => Err(ActionError::InvalidFilter),
            },
            // `header = 1*ftext ":" value`, ftext = %d33-57 / %d59-126
            // (RFC 5322 2.2).
            Self::Header => match arg.iter().position(|&b| b == b':') {
                Some(colon) if colon > 0 && arg[..colon].iter().all(|b| (33..=126).contains(b)) => {
                    Ok(())
                }
                _ => Err(ActionError::InvalidHeader),
            },
            // `address = local "@" domain`, split at the last `@`, both
            // non-empty, no space.
            Self::Address => match arg.iter().rposition(|&b| b == b'@') {
                Some(at) if at > 0 && at + 1 < arg.len() && no_space() => Ok(()),
                _ => Err(ActionError::InvalidAddress),
            },
        }
    }
}

/// The first word of `text`: up to its first space (a [`Text`] has no other
/// blank).
fn first_token(text: &[u8]) -> &[u8] {
    let end = text.iter().position(|&b| b == b' ').unwrap_or(text.len());
    &text[..end]
}

/// Whether `token` is an enhanced status code as [`Action::parse`] recognises
/// one at the start of a reply text (`class.subject.detail`).
fn is_enhanced_status(token: &[u8]) -> bool {
    token.len() <= LONGEST_ENHANCED_STATUS
        && std::str::from_utf8(token).is_ok_and(|s| EnhancedStatus::from_token(s).is_some())
}

/// The longest enhanced status code text, `5.999.999`: longer tokens need not
/// be parsed.
const LONGEST_ENHANCED_STATUS: usize = 9;

/// Text for a verb that requires an argument, checked against `shape`.
fn required(rest: &str, verb: &'static str, shape: Shape) -> Result<Text, ActionError> {
    if rest.is_empty() {
        return Err(ActionError::MissingText { verb });
    }
    let text = Text::new(rest)?;
    shape.check(false, text.as_str().as_bytes())?;
    Ok(text)
}

/// Text for `HOLD` and `DISCARD` ([`Shape::Optional`]): any, or none.
fn optional(rest: &str) -> Result<Option<Text>, ActionError> {
    if rest.is_empty() {
        Ok(None)
    } else {
        Text::new(rest).map(Some)
    }
}

/// The reply code a text's first word reads as: exactly three digits, the
/// first 1 to 5 (RFC 5321 4.2's reply classes). People read `REJECT 450 ...`
/// as a 450; see the module docs.
pub(crate) fn reply_code(token: &[u8]) -> Option<u16> {
    match token {
        &[a @ b'1'..=b'5', b @ b'0'..=b'9', c @ b'0'..=b'9'] => {
            Some(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => None,
    }
}

/// A reply code `4NN`/`5NN` with second digit 0-5 (RFC 5321 4.2.1).
fn check_code(code: u16) -> Result<(), ActionError> {
    if (400..=599).contains(&code) && (code / 10) % 10 <= 5 {
        Ok(())
    } else {
        Err(ActionError::InvalidCode)
    }
}

/// `fmt::Write` into a `Vec<u8>`; never fails.
struct VecWriter<'v>(&'v mut Vec<u8>);

impl fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

impl Action {
    /// Parse and validate the wire form of an action, e.g. `REJECT 5.7.1 No thanks`.
    ///
    /// Verbs are case-insensitive; blanks (spaces, tabs) around the action and
    /// between its parts are ignored.
    ///
    /// ```
    /// use policy_core::Action;
    ///
    /// let action = Action::parse("reject 5.7.1 Go away").unwrap();
    /// assert_eq!(action.to_string(), "REJECT 5.7.1 Go away");
    /// assert!(Action::parse("REJECT 4.7.1 wrong class").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<Self, ActionError> {
        let s = s.trim_matches(is_blank);
        if s.is_empty() {
            return Err(ActionError::Empty);
        }
        let (verb, rest) = split_token(s);
        let is = |name: &str| verb.eq_ignore_ascii_case(name);
        let action = if is("OK") || is("DUNNO") {
            let name = if is("OK") { "OK" } else { "DUNNO" };
            if !rest.is_empty() {
                return Err(ActionError::UnexpectedText { verb: name });
            }
            if is("OK") {
                Self::Ok
            } else {
                Self::Dunno
            }
        } else if is("REJECT") {
            Self::reject(rest)?
        } else if is("DEFER") {
            Self::defer(rest)?
        } else if is("DEFER_IF_REJECT") {
            Self::defer_if_reject(rest)?
        } else if is("DEFER_IF_PERMIT") {
            Self::defer_if_permit(rest)?
        } else if verb.bytes().all(|b| b.is_ascii_digit()) {
            let code = if verb.len() == 3 {
                verb.parse::<u16>().map_err(|_| ActionError::InvalidCode)?
            } else {
                return Err(ActionError::InvalidCode);
            };
            Self::status_parts(code, rest)?
        } else if is("HOLD") {
            Self::hold(rest)?
        } else if is("DISCARD") {
            Self::discard(rest)?
        } else if is("FILTER") {
            Self::Filter(required(rest, "FILTER", Shape::Filter)?)
        } else if is("PREPEND") {
            Self::prepend(rest)?
        } else if is("REDIRECT") {
            Self::redirect(rest)?
        } else if is("BCC") {
            Self::bcc(rest)?
        } else if is("WARN") {
            Self::warn(rest)?
        } else if is("INFO") {
            Self::info(rest)?
        } else {
            return Err(ActionError::UnknownVerb);
        };
        Ok(action)
    }

    fn status_parts(code: u16, rest: &str) -> Result<Self, ActionError> {
        check_code(code)?;
        let reply = ReplyText::parse_as(rest, Shape::status(code))?;
        Ok(Self::Status { code, reply })
    }

    /// `REJECT [enhanced] [text]`: `text` may start with an enhanced status
    /// code of class 5 and may be empty (Postfix then uses its own text).
    pub fn reject(text: &str) -> Result<Self, ActionError> {
        ReplyText::parse_as(text, Shape::REJECT).map(Self::Reject)
    }

    /// `DEFER [enhanced] [text]`: class 4, `text` may be empty.
    pub fn defer(text: &str) -> Result<Self, ActionError> {
        ReplyText::parse_as(text, Shape::DEFER).map(Self::Defer)
    }

    /// `DEFER_IF_REJECT [enhanced] [text]`: class 4, `text` may be empty.
    pub fn defer_if_reject(text: &str) -> Result<Self, ActionError> {
        ReplyText::parse_as(text, Shape::DEFER).map(Self::DeferIfReject)
    }

    /// `DEFER_IF_PERMIT [enhanced] [text]`: class 4, `text` may be empty.
    pub fn defer_if_permit(text: &str) -> Result<Self, ActionError> {
        ReplyText::parse_as(text, Shape::DEFER).map(Self::DeferIfPermit)
    }

    /// `4NN/5NN [enhanced] text`: the enhanced class must be `code / 100`;
    /// `text` must not be empty.
    pub fn status(code: u16, text: &str) -> Result<Self, ActionError> {
        Self::status_parts(code, text.trim_matches(is_blank))
    }

    /// `HOLD [text]`; an empty `text` means none.
    pub fn hold(text: &str) -> Result<Self, ActionError> {
        optional(text).map(Self::Hold)
    }

    /// `DISCARD [text]`; an empty `text` means none.
    pub fn discard(text: &str) -> Result<Self, ActionError> {
        optional(text).map(Self::Discard)
    }

    /// `FILTER transport:destination`; `destination` may be empty.
    pub fn filter(transport: &str, destination: &str) -> Result<Self, ActionError> {
        if transport.is_empty() || transport.contains(':') {
            return Err(ActionError::InvalidFilter);
        }
        let text = Text::new(&format!("{transport}:{destination}"))?;
        Shape::Filter.check(false, text.as_str().as_bytes())?;
        Ok(Self::Filter(text))
    }

    /// `PREPEND name: value`, `header` being the whole header line.
    pub fn prepend(header: &str) -> Result<Self, ActionError> {
        required(header, "PREPEND", Shape::Header).map(Self::Prepend)
    }

    /// `REDIRECT user@domain`.
    pub fn redirect(address: &str) -> Result<Self, ActionError> {
        required(address, "REDIRECT", Shape::Address).map(Self::Redirect)
    }

    /// `BCC user@domain` (Postfix 3.0+).
    pub fn bcc(address: &str) -> Result<Self, ActionError> {
        required(address, "BCC", Shape::Address).map(Self::Bcc)
    }

    /// `WARN text`.
    pub fn warn(text: &str) -> Result<Self, ActionError> {
        required(text, "WARN", Shape::Required).map(Self::Warn)
    }

    /// `INFO text` (Postfix 3.0+).
    pub fn info(text: &str) -> Result<Self, ActionError> {
        required(text, "INFO", Shape::Required).map(Self::Info)
    }

    /// Check every rule [`Action::parse`] enforces, for a value assembled by
    /// hand from the public payloads. Values from `parse` or the constructors
    /// always pass.
    pub fn validate(&self) -> Result<(), ActionError> {
        if let Self::Status { code, .. } = self {
            check_code(*code)?;
        }
        let Some(shape) = self.shape() else {
            // OK and DUNNO: nothing follows them.
            return Ok(());
        };
        match self {
            Self::Ok | Self::Dunno | Self::Hold(None) | Self::Discard(None) => Ok(()),
            Self::Reject(reply)
            | Self::Defer(reply)
            | Self::DeferIfReject(reply)
            | Self::DeferIfPermit(reply)
            | Self::Status { reply, .. } => reply.check(shape),
            Self::Hold(Some(text))
            | Self::Discard(Some(text))
            | Self::Filter(text)
            | Self::Prepend(text)
            | Self::Redirect(text)
            | Self::Bcc(text)
            | Self::Warn(text)
            | Self::Info(text) => {
                check_text(text.as_str())?;
                shape.check(false, text.as_str().as_bytes())
            }
        }
    }

    /// What may follow this action's verb or code: the one table from an
    /// action to its [`Shape`], for [`Action::validate`] and for templated
    /// actions. `None` for `OK` and `DUNNO`, which take nothing.
    pub(crate) fn shape(&self) -> Option<Shape> {
        Some(match self {
            Self::Ok | Self::Dunno => return None,
            Self::Reject(_) => Shape::REJECT,
            Self::Defer(_) | Self::DeferIfReject(_) | Self::DeferIfPermit(_) => Shape::DEFER,
            Self::Status { code, .. } => Shape::status(*code),
            Self::Hold(_) | Self::Discard(_) => Shape::Optional,
            Self::Warn(_) | Self::Info(_) => Shape::Required,
            Self::Filter(_) => Shape::Filter,
            Self::Prepend(_) => Shape::Header,
            Self::Redirect(_) | Self::Bcc(_) => Shape::Address,
        })
    }

    /// Whether this answer refuses the request now: `REJECT`, `DEFER`,
    /// `DEFER_IF_PERMIT` (which refuses unless a later restriction rejects
    /// anyway) and `4NN`/`5NN` replies. `DEFER_IF_REJECT` is not: it refuses
    /// only if something else does. A limit gives back what it counted for a
    /// request whose final answer refuses it.
    pub fn refuses(&self) -> bool {
        matches!(
            self,
            Self::Reject(_) | Self::Defer(_) | Self::DeferIfPermit(_) | Self::Status { .. }
        )
    }

    /// The verb in canonical upper case (`"REJECT"`, `"DEFER_IF_PERMIT"`, ...);
    /// `"4NN"` or `"5NN"` for [`Action::Status`]. For logs and metrics.
    pub fn verb(&self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Dunno => "DUNNO",
            Self::Reject(_) => "REJECT",
            Self::Defer(_) => "DEFER",
            Self::DeferIfReject(_) => "DEFER_IF_REJECT",
            Self::DeferIfPermit(_) => "DEFER_IF_PERMIT",
            Self::Status { code, .. } if *code < 500 => "4NN",
            Self::Status { .. } => "5NN",
            Self::Hold(_) => "HOLD",
            Self::Discard(_) => "DISCARD",
            Self::Filter(_) => "FILTER",
            Self::Prepend(_) => "PREPEND",
            Self::Redirect(_) => "REDIRECT",
            Self::Bcc(_) => "BCC",
            Self::Warn(_) => "WARN",
            Self::Info(_) => "INFO",
        }
    }

    /// Write the canonical wire form to `w`. Allocates nothing.
    fn write_canonical(&self, w: &mut impl fmt::Write) -> fmt::Result {
        match self {
            Self::Status { code, reply } => {
                write!(w, "{code}")?;
                reply.write_to(w)
            }
            Self::Ok | Self::Dunno => w.write_str(self.verb()),
            Self::Reject(reply)
            | Self::Defer(reply)
            | Self::DeferIfReject(reply)
            | Self::DeferIfPermit(reply) => {
                w.write_str(self.verb())?;
                reply.write_to(w)
            }
            Self::Hold(text) | Self::Discard(text) => {
                w.write_str(self.verb())?;
                match text {
                    Some(text) => write!(w, " {text}"),
                    None => Ok(()),
                }
            }
            Self::Filter(text)
            | Self::Prepend(text)
            | Self::Redirect(text)
            | Self::Bcc(text)
            | Self::Warn(text)
            | Self::Info(text) => write!(w, "{} {text}", self.verb()),
        }
    }

    /// Append the wire form (what follows `action=`, without newline) to `out`.
    /// Always one line of valid UTF-8 without CR or LF. Allocates only if `out`
    /// lacks capacity.
    pub fn write_wire(&self, out: &mut Vec<u8>) {
        // `VecWriter` never fails, and formatting integers and strings into it
        // cannot fail either, so there is no error to report.
        let _ = self.write_canonical(&mut VecWriter(out));
    }
}

impl fmt::Display for Action {
    /// The wire form, as [`Action::write_wire`] writes it. Allocates nothing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_canonical(f)
    }
}

impl FromStr for Action {
    type Err = ActionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_actions_table() {
        // (input, canonical wire form)
        let rows: &[(&str, &str)] = &[
            ("OK", "OK"),
            ("ok", "OK"),
            ("  Dunno\t", "DUNNO"),
            ("REJECT", "REJECT"),
            ("reject No thanks", "REJECT No thanks"),
            ("REJECT 5.7.1", "REJECT 5.7.1"),
            ("REJECT\t5.7.1   Go  away", "REJECT 5.7.1 Go  away"),
            ("REJECT 5.7.1, not a code", "REJECT 5.7.1, not a code"),
            ("REJECT 1.2.3 not a class", "REJECT 1.2.3 not a class"),
            ("REJECT 5.1234.1 too long", "REJECT 5.1234.1 too long"),
            ("DEFER", "DEFER"),
            ("defer 4.7.1 Try later", "DEFER 4.7.1 Try later"),
            ("DEFER_IF_REJECT", "DEFER_IF_REJECT"),
            ("defer_if_permit 4.7.0 maybe", "DEFER_IF_PERMIT 4.7.0 maybe"),
            ("450 Try later", "450 Try later"),
            ("450 4.7.1 Try later", "450 4.7.1 Try later"),
            ("550 5.7.1", "550 5.7.1"),
            ("421 4.3.2 Shutting down", "421 4.3.2 Shutting down"),
            ("554 5.7.1 Sp\u{e4}m", "554 5.7.1 Sp\u{e4}m"),
            ("HOLD", "HOLD"),
            ("hold suspicious", "HOLD suspicious"),
            ("DISCARD", "DISCARD"),
            ("discard spam trap", "DISCARD spam trap"),
            (
                "FILTER smtp:[127.0.0.1]:10025",
                "FILTER smtp:[127.0.0.1]:10025",
            ),
            ("filter scan:", "FILTER scan:"),
            ("PREPEND X-Policy: checked", "PREPEND X-Policy: checked"),
            ("prepend X-Empty:", "PREPEND X-Empty:"),
            (
                "REDIRECT quarantine@example.com",
                "REDIRECT quarantine@example.com",
            ),
            ("bcc archive@example.com", "BCC archive@example.com"),
            ("WARN odd client", "WARN odd client"),
            // A leading code of the verb's class, or words that are no code.
            ("REJECT 550 5.7.1 no", "REJECT 550 5.7.1 no"),
            ("DEFER 421 later", "DEFER 421 later"),
            ("REJECT 5.7.1 450 is here", "REJECT 5.7.1 450 is here"),
            ("REJECT 4500 recipients", "REJECT 4500 recipients"),
            ("REJECT 45 recipients", "REJECT 45 recipients"),
            ("REJECT 650 is no class", "REJECT 650 is no class"),
            ("DEFER 450abc", "DEFER 450abc"),
            ("HOLD 550 held", "HOLD 550 held"),
            ("info seen", "INFO seen"),
        ];
        for (input, wire) in rows {
            let action = Action::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(action.to_string(), *wire, "input {input:?}");
            let mut out = Vec::with_capacity(64);
            action.write_wire(&mut out);
            assert_eq!(out, wire.as_bytes());
            assert_eq!(
                Action::parse(wire).as_ref(),
                Ok(&action),
                "re-parse {wire:?}"
            );
            assert_eq!(action.validate(), Ok(()), "{input:?}");
            assert_eq!(input.parse::<Action>().as_ref(), Ok(&action));
        }
    }

    #[test]
    fn invalid_actions_table() {
        let long = format!("REJECT {}", "x".repeat(MAX_TEXT_BYTES + 1));
        let rows: &[(&str, ActionError)] = &[
            ("", ActionError::Empty),
            (" \t ", ActionError::Empty),
            ("ACCEPT", ActionError::UnknownVerb),
            ("PERMIT", ActionError::UnknownVerb),
            ("reject_unauth_destination", ActionError::UnknownVerb),
            ("OK fine", ActionError::UnexpectedText { verb: "OK" }),
            ("dunno x", ActionError::UnexpectedText { verb: "DUNNO" }),
            (
                "REJECT 4.7.1 wrong",
                ActionError::EnhancedClassMismatch {
                    expected: 5,
                    found: 4,
                },
            ),
            (
                "REJECT 2.0.0",
                ActionError::EnhancedClassMismatch {
                    expected: 5,
                    found: 2,
                },
            ),
            (
                "DEFER 5.7.1 x",
                ActionError::EnhancedClassMismatch {
                    expected: 4,
                    found: 5,
                },
            ),
            (
                "DEFER_IF_PERMIT 5.7.1",
                ActionError::EnhancedClassMismatch {
                    expected: 4,
                    found: 5,
                },
            ),
            (
                "450 5.7.1 x",
                ActionError::EnhancedClassMismatch {
                    expected: 4,
                    found: 5,
                },
            ),
            (
                "550 4.7.1 x",
                ActionError::EnhancedClassMismatch {
                    expected: 5,
                    found: 4,
                },
            ),
            // A leading reply code of another class than the verb's.
            (
                "REJECT 450 4.7.1 Try again",
                ActionError::ReplyCodeMismatch {
                    expected: 5,
                    found: 450,
                },
            ),
            (
                "REJECT 250 ok",
                ActionError::ReplyCodeMismatch {
                    expected: 5,
                    found: 250,
                },
            ),
            (
                "DEFER 550 5.7.1 no",
                ActionError::ReplyCodeMismatch {
                    expected: 4,
                    found: 550,
                },
            ),
            (
                "DEFER_IF_PERMIT 554",
                ActionError::ReplyCodeMismatch {
                    expected: 4,
                    found: 554,
                },
            ),
            (
                "defer_if_reject 521 bye",
                ActionError::ReplyCodeMismatch {
                    expected: 4,
                    found: 521,
                },
            ),
            (
                "550 450 x",
                ActionError::ReplyCodeMismatch {
                    expected: 5,
                    found: 450,
                },
            ),
            (
                "451 550 x",
                ActionError::ReplyCodeMismatch {
                    expected: 4,
                    found: 550,
                },
            ),
            ("450", ActionError::MissingText { verb: "4NN/5NN" }),
            ("250 ok", ActionError::InvalidCode),
            ("350 go on", ActionError::InvalidCode),
            ("600 x", ActionError::InvalidCode),
            ("460 x", ActionError::InvalidCode),
            ("4500 x", ActionError::InvalidCode),
            ("45 x", ActionError::InvalidCode),
            ("REJECT bad\u{7f}", ActionError::ControlCharacter),
            ("REJECT a\tb", ActionError::ControlCharacter),
            ("REJECT a\r\nb", ActionError::ControlCharacter),
            ("REJECT a\u{85}b", ActionError::ControlCharacter),
            ("REJECT a\0", ActionError::ControlCharacter),
            (
                &long,
                ActionError::TextTooLong {
                    len: MAX_TEXT_BYTES + 1,
                },
            ),
            ("FILTER", ActionError::MissingText { verb: "FILTER" }),
            ("FILTER smtp", ActionError::InvalidFilter),
            ("FILTER :dest", ActionError::InvalidFilter),
            ("FILTER smtp: x", ActionError::InvalidFilter),
            ("PREPEND", ActionError::MissingText { verb: "PREPEND" }),
            ("PREPEND no colon", ActionError::InvalidHeader),
            ("PREPEND X Bad: v", ActionError::InvalidHeader),
            ("PREPEND : v", ActionError::InvalidHeader),
            ("PREPEND X-\u{e9}: v", ActionError::InvalidHeader),
            ("REDIRECT", ActionError::MissingText { verb: "REDIRECT" }),
            ("REDIRECT user", ActionError::InvalidAddress),
            ("REDIRECT @example.com", ActionError::InvalidAddress),
            ("REDIRECT user@", ActionError::InvalidAddress),
            ("BCC a b@example.com", ActionError::InvalidAddress),
            ("WARN", ActionError::MissingText { verb: "WARN" }),
            ("INFO", ActionError::MissingText { verb: "INFO" }),
        ];
        for (input, expected) in rows {
            assert_eq!(Action::parse(input), Err(*expected), "input {input:?}");
        }
    }

    #[test]
    fn enhanced_status_table() {
        type Parts = Option<(u8, u16, u16)>;
        let rows: &[(&str, Parts)] = &[
            ("5.7.1", Some((5, 7, 1))),
            ("4.999.999", Some((4, 999, 999))),
            ("2.0.0", Some((2, 0, 0))),
            ("5.07.001", Some((5, 7, 1))),
            ("3.7.1", None),
            ("5.7", None),
            ("5.7.1.1", None),
            ("5..1", None),
            ("5.1000.1", None),
            ("5.a.1", None),
            ("+5.7.1", None),
            ("", None),
        ];
        for (input, expected) in rows {
            let got = EnhancedStatus::parse(input)
                .ok()
                .map(|s| (s.class, s.subject, s.detail));
            assert_eq!(got, *expected, "input {input:?}");
        }
        assert_eq!(
            EnhancedStatus::new(5, 7, 1).map(|s| s.to_string()),
            Ok("5.7.1".into())
        );
        assert_eq!(
            EnhancedStatus::new(3, 0, 0),
            Err(ActionError::InvalidEnhancedStatus)
        );
        assert_eq!(
            EnhancedStatus::new(5, 1000, 0),
            Err(ActionError::InvalidEnhancedStatus)
        );
    }

    #[test]
    fn text_table() {
        let rows: &[(&str, Result<(), ActionError>)] = &[
            ("hello", Ok(())),
            ("h\u{e9}llo w\u{f6}rld", Ok(())),
            ("", Err(ActionError::EmptyText)),
            (" x", Err(ActionError::SurroundingSpace)),
            ("x ", Err(ActionError::SurroundingSpace)),
            ("a\nb", Err(ActionError::ControlCharacter)),
            ("a\u{1b}[0m", Err(ActionError::ControlCharacter)),
        ];
        for (input, expected) in rows {
            assert_eq!(Text::new(input).map(|_| ()), *expected, "input {input:?}");
        }
        let max = "y".repeat(MAX_TEXT_BYTES);
        assert!(Text::new(&max).is_ok());
    }

    #[test]
    fn constructors_table() {
        type Row = (
            Result<Action, ActionError>,
            Result<&'static str, ActionError>,
        );
        let rows: &[Row] = &[
            (Action::reject("5.7.1 No"), Ok("REJECT 5.7.1 No")),
            (Action::reject(""), Ok("REJECT")),
            (
                Action::reject("4.7.1 No"),
                Err(ActionError::EnhancedClassMismatch {
                    expected: 5,
                    found: 4,
                }),
            ),
            (Action::defer("Later"), Ok("DEFER Later")),
            (Action::defer_if_reject(""), Ok("DEFER_IF_REJECT")),
            (
                Action::defer_if_permit("4.7.0 x"),
                Ok("DEFER_IF_PERMIT 4.7.0 x"),
            ),
            (Action::status(451, "4.3.0 Busy"), Ok("451 4.3.0 Busy")),
            (
                Action::status(451, ""),
                Err(ActionError::MissingText { verb: "4NN/5NN" }),
            ),
            (Action::status(200, "x"), Err(ActionError::InvalidCode)),
            (Action::hold(""), Ok("HOLD")),
            (Action::discard("bye"), Ok("DISCARD bye")),
            (
                Action::filter("smtp", "[::1]:10025"),
                Ok("FILTER smtp:[::1]:10025"),
            ),
            (Action::filter("", "x"), Err(ActionError::InvalidFilter)),
            (Action::filter("a:b", "x"), Err(ActionError::InvalidFilter)),
            (Action::prepend("X-A: b"), Ok("PREPEND X-A: b")),
            (Action::redirect("a@b"), Ok("REDIRECT a@b")),
            (Action::bcc("a"), Err(ActionError::InvalidAddress)),
            (Action::warn("w"), Ok("WARN w")),
            (
                Action::info(""),
                Err(ActionError::MissingText { verb: "INFO" }),
            ),
        ];
        for (i, (got, expected)) in rows.iter().enumerate() {
            let got = got.as_ref().map(ToString::to_string).map_err(|e| *e);
            assert_eq!(got.as_deref().map_err(|e| *e), *expected, "row {i}");
        }
    }

    #[test]
    fn validate_catches_hand_built_values() {
        let text = |s: &str| Text::new(s).ok();
        let status = |c, s, d| EnhancedStatus {
            class: c,
            subject: s,
            detail: d,
        };
        let rows: &[(Action, Result<(), ActionError>)] = &[
            (
                Action::Reject(ReplyText {
                    enhanced: Some(status(4, 7, 1)),
                    text: None,
                }),
                Err(ActionError::EnhancedClassMismatch {
                    expected: 5,
                    found: 4,
                }),
            ),
            (
                Action::Reject(ReplyText {
                    enhanced: Some(status(5, 1000, 1)),
                    text: None,
                }),
                Err(ActionError::InvalidEnhancedStatus),
            ),
            (
                Action::Reject(ReplyText {
                    enhanced: None,
                    text: text("5.7.1 sneaky"),
                }),
                Err(ActionError::StatusInText),
            ),
            (
                Action::Status {
                    code: 250,
                    reply: ReplyText {
                        enhanced: None,
                        text: text("x"),
                    },
                },
                Err(ActionError::InvalidCode),
            ),
            (
                Action::Status {
                    code: 450,
                    reply: ReplyText::default(),
                },
                Err(ActionError::MissingText { verb: "4NN/5NN" }),
            ),
            (
                Action::Filter(Text::new("nocolon").unwrap()),
                Err(ActionError::InvalidFilter),
            ),
            (
                Action::Prepend(Text::new("nocolon").unwrap()),
                Err(ActionError::InvalidHeader),
            ),
            (
                Action::Bcc(Text::new("x").unwrap()),
                Err(ActionError::InvalidAddress),
            ),
            (Action::Warn(Text::new("fine").unwrap()), Ok(())),
        ];
        for (action, expected) in rows {
            assert_eq!(action.validate(), *expected, "{action:?}");
        }
    }

    #[test]
    fn display_names_what_was_expected() {
        let rows: &[(ActionError, &str)] = &[
            (
                ActionError::Empty,
                "invalid action: expected an action, got nothing",
            ),
            (
                ActionError::UnexpectedText { verb: "OK" },
                "invalid action: expected nothing after OK",
            ),
            (
                ActionError::MissingText { verb: "WARN" },
                "invalid action: expected text after WARN",
            ),
            (
                ActionError::EnhancedClassMismatch {
                    expected: 5,
                    found: 4,
                },
                "invalid action: expected enhanced status class 5, got 4",
            ),
            (
                ActionError::TextTooLong { len: 451 },
                "invalid action: expected text of at most 450 bytes, got 451",
            ),
        ];
        for (error, text) in rows {
            assert_eq!(error.to_string(), *text);
        }
    }

    #[test]
    fn verbs() {
        assert_eq!(Action::status(450, "x").map(|a| a.verb()), Ok("4NN"));
        assert_eq!(Action::status(554, "x").map(|a| a.verb()), Ok("5NN"));
        assert_eq!(Action::Dunno.verb(), "DUNNO");
    }
}
