//! access(5) actions a policy server may reply with, validated when constructed.
//!
//! An [`Action`] can only hold what Postfix accepts in a policy reply: known
//! verbs, status codes in range and consistent with the verb, texts without
//! control characters, well-formed headers, addresses and transports. Its wire
//! form (what follows `action=`) is written by [`Action::write_wire`] and is
//! always one line of valid UTF-8.

use std::fmt;

/// An RFC 3463 enhanced status code such as `5.7.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedStatus {
    /// Class: 2, 4 or 5.
    pub class: u8,
    /// Subject: 0..=999.
    pub subject: u16,
    /// Detail: 0..=999.
    pub detail: u16,
}

/// Free text of a reply (after the verb or code), validated: printable, no CR,
/// LF or other control character, at most [`MAX_TEXT_BYTES`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Text(Box<str>);

/// The longest text an [`Action`] may carry. Postfix truncates SMTP reply lines
/// near 512 bytes (RFC 5321 4.5.3.1.5); anything longer would be cut by Postfix.
pub const MAX_TEXT_BYTES: usize = 450;

/// Text carried by a rejecting or deferring verb: an optional enhanced status
/// code, then optional free text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ReplyText {
    /// The enhanced status code at the start of the text, if any.
    pub enhanced: Option<EnhancedStatus>,
    /// The free text after it, if any.
    pub text: Option<Text>,
}

/// One access(5) action, as a policy server may send it in `action=...`.
///
/// Names follow Postfix's own words and order. Construct with [`Action::parse`]
/// (the wire form) or the validating constructors; every value is valid.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// `OK`: accept (and stop the restriction list).
    Ok,
    /// `DUNNO`: no opinion; Postfix goes on with the next restriction.
    Dunno,
    /// `REJECT [text]`: permanent rejection (5xx, enhanced class 5).
    Reject(ReplyText),
    /// `DEFER [text]`: temporary rejection (4xx, enhanced class 4).
    Defer(ReplyText),
    /// `DEFER_IF_REJECT [text]`: defer if a later restriction rejects.
    DeferIfReject(ReplyText),
    /// `DEFER_IF_PERMIT [text]`: defer if a later restriction would permit.
    DeferIfPermit(ReplyText),
    /// `4NN text` / `5NN text`: reply with this SMTP code.
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
    /// `FILTER transport:destination`: send the whole message through a content filter.
    Filter(Text),
    /// `PREPEND headername: headervalue`: prepend a header to the message.
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
    /// Placeholder until filled in: replaced by precise variants.
    Invalid(&'static str),
}

impl fmt::Display for ActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(what) => write!(f, "invalid action: expected {what}"),
        }
    }
}

impl std::error::Error for ActionError {}

impl Action {
    /// Parse and validate the wire form of an action, e.g. `REJECT 5.7.1 No thanks`.
    pub fn parse(s: &str) -> Result<Self, ActionError> {
        let _ = s;
        todo!("issue 2: policy-core action parser")
    }

    /// Append the wire form (what follows `action=`, without newline) to `out`.
    /// Always one line of valid UTF-8 without CR or LF. Allocates only if `out`
    /// lacks capacity.
    pub fn write_wire(&self, out: &mut Vec<u8>) {
        let _ = out;
        todo!("issue 2: policy-core action writer")
    }
}

impl fmt::Display for Action {
    /// The wire form, as [`Action::write_wire`] writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = Vec::new();
        self.write_wire(&mut buf);
        f.write_str(&String::from_utf8_lossy(&buf))
    }
}
