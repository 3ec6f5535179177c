//! Action templates: reply texts with `$variables` filled in from the request.
//!
//! A policy writes `then REJECT "5.7.1 Sender $sender is blocked"`. The text is
//! parsed once into a [`Template`] (literal parts and [`Var`]iables), checked at
//! compile time by substituting a plausible sample for every variable and
//! validating the result with [`Action::parse`], and expanded at decide time
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
//! `$$` is a literal `$`. A name is a request attribute ([`KNOWN_ATTRIBUTES`]:
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
//! - **Length**: the expanded text is cut to at most [`MAX_TEXT_BYTES`] bytes,
//!   on a character boundary.
//! - **Spaces** at the start and end of the expanded text are removed (an
//!   action's text may not have them, and an empty value must not leave one).
//! - **Typed attributes** are written in their canonical form (`size=0010`
//!   expands to `10`; an IPv6 zone is dropped); `client_address`,
//!   `server_address` and the ports expand to their raw value when it was not
//!   an address or port (`unknown`). A missing or empty attribute expands to
//!   nothing.
//!
//! # Actions with templates
//!
//! An [`ActionTemplate`] is an action verb plus an optional templated text. Its
//! [`ActionTemplate::write_wire`] always writes one valid action: when an
//! expansion would make the action invalid, it writes a documented fallback
//! instead (see [`ActionTemplate::write_wire`]).

use std::fmt;
use std::net::IpAddr;

use crate::action::{is_blank, reply_code, Action, ActionError, EnhancedStatus, MAX_TEXT_BYTES};
use crate::base::bytes::printable_ascii_prefix;
use crate::request::{Request, KNOWN_ATTRIBUTES};

// ---------------------------------------------------------------------------
// Variables.

/// A variable a template may name: every request attribute, the derived parts
/// of the sender and recipient addresses, and the deciding rule's name.
///
/// The first 32 variants are the attributes in the order of
/// [`KNOWN_ATTRIBUTES`]: [`Var::attribute_index`] is the discriminant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Var {
    /// `request`
    Request,
    /// `protocol_state`
    ProtocolState,
    /// `protocol_name`
    ProtocolName,
    /// `helo_name`
    HeloName,
    /// `queue_id`
    QueueId,
    /// `sender` (empty for the null sender)
    Sender,
    /// `recipient`
    Recipient,
    /// `recipient_count`
    RecipientCount,
    /// `client_address`
    ClientAddress,
    /// `client_name`
    ClientName,
    /// `reverse_client_name`
    ReverseClientName,
    /// `instance`
    Instance,
    /// `sasl_method`
    SaslMethod,
    /// `sasl_username`
    SaslUsername,
    /// `sasl_sender`
    SaslSender,
    /// `size`
    Size,
    /// `ccert_subject`
    CcertSubject,
    /// `ccert_issuer`
    CcertIssuer,
    /// `ccert_fingerprint`
    CcertFingerprint,
    /// `encryption_protocol`
    EncryptionProtocol,
    /// `encryption_cipher`
    EncryptionCipher,
    /// `encryption_keysize`
    EncryptionKeysize,
    /// `etrn_domain`
    EtrnDomain,
    /// `stress`
    Stress,
    /// `ccert_pubkey_fingerprint`
    CcertPubkeyFingerprint,
    /// `client_port`
    ClientPort,
    /// `policy_context`
    PolicyContext,
    /// `server_address`
    ServerAddress,
    /// `server_port`
    ServerPort,
    /// `compatibility_level`
    CompatibilityLevel,
    /// `mail_version`
    MailVersion,
    /// `tls_sni`
    TlsSni,
    /// `sender_local`: the sender's local part (before the last `@`).
    SenderLocal,
    /// `sender_domain`: the sender's domain (after the last `@`).
    SenderDomain,
    /// `recipient_local`: the recipient's local part.
    RecipientLocal,
    /// `recipient_domain`: the recipient's domain.
    RecipientDomain,
    /// `rule`: the name of the rule that decided.
    Rule,
    /// `limit`: in a limit's `over` action, the maximum of the window that
    /// is full (a per-key override applied).
    Limit,
    /// `window`: in a limit's `over` action, that window's length as written
    /// in a policy (`1h`, `90s`, `1d`).
    Window,
    /// `counted`: in a limit's `over` action, the units that window counts
    /// for the key now.
    Counted,
    /// `retry_after`: in a limit's `over` action, the seconds (rounded up)
    /// until the same request would be admitted if nothing else were counted,
    /// or `never` when it asks for more than the window's maximum.
    RetryAfter,
    /// `key`: in a limit's `over` action, the key's text (`joe, 192.0.2.0/24`).
    Key,
    /// `delay`: in a greylist's `prepend` header, the seconds the first
    /// accepted retry waited since the first attempt (rounded down).
    Delay,
}

/// Number of [`Var`] variants.
const VAR_COUNT: usize = KNOWN_ATTRIBUTES.len() + 11;

/// Names of the variables that are not request attributes, in variant order.
const DERIVED_NAMES: [&str; 11] = [
    "sender_local",
    "sender_domain",
    "recipient_local",
    "recipient_domain",
    "rule",
    "limit",
    "window",
    "counted",
    "retry_after",
    "key",
    "delay",
];

impl Var {
    /// Every variable, in discriminant order.
    pub const ALL: [Self; VAR_COUNT] = [
        Self::Request,
        Self::ProtocolState,
        Self::ProtocolName,
        Self::HeloName,
        Self::QueueId,
        Self::Sender,
        Self::Recipient,
        Self::RecipientCount,
        Self::ClientAddress,
        Self::ClientName,
        Self::ReverseClientName,
        Self::Instance,
        Self::SaslMethod,
        Self::SaslUsername,
        Self::SaslSender,
        Self::Size,
        Self::CcertSubject,
        Self::CcertIssuer,
        Self::CcertFingerprint,
        Self::EncryptionProtocol,
        Self::EncryptionCipher,
        Self::EncryptionKeysize,
        Self::EtrnDomain,
        Self::Stress,
        Self::CcertPubkeyFingerprint,
        Self::ClientPort,
        Self::PolicyContext,
        Self::ServerAddress,
        Self::ServerPort,
        Self::CompatibilityLevel,
        Self::MailVersion,
        Self::TlsSni,
        Self::SenderLocal,
        Self::SenderDomain,
        Self::RecipientLocal,
        Self::RecipientDomain,
        Self::Rule,
        Self::Limit,
        Self::Window,
        Self::Counted,
        Self::RetryAfter,
        Self::Key,
        Self::Delay,
    ];

    /// The variable called `name` (exact, case-sensitive), if any.
    pub fn lookup(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|var| var.name() == name)
    }

    /// The variable's name as written after `$`.
    pub fn name(self) -> &'static str {
        let index = self as usize;
        match KNOWN_ATTRIBUTES.get(index) {
            Some(name) => name,
            // Derived variables follow the attributes; the index is in range
            // by construction of the enum.
            None => DERIVED_NAMES[index - KNOWN_ATTRIBUTES.len()],
        }
    }

    /// The index of this variable's attribute in [`KNOWN_ATTRIBUTES`], or
    /// `None` for a derived variable or `rule`.
    pub fn attribute_index(self) -> Option<usize> {
        let index = self as usize;
        (index < KNOWN_ATTRIBUTES.len()).then_some(index)
    }

    /// The variable of the attribute at `index` in [`KNOWN_ATTRIBUTES`].
    pub fn from_attribute_index(index: usize) -> Option<Self> {
        if index < KNOWN_ATTRIBUTES.len() {
            Self::ALL.get(index).copied()
        } else {
            None
        }
    }

    /// A plausible value, used to validate templated actions at compile
    /// time. Samples have no spaces, so they fit addresses and transports, and
    /// none looks like an enhanced status code.
    pub fn sample(self) -> &'static str {
        match self {
            Self::Request => "smtpd_access_policy",
            Self::ProtocolState => "RCPT",
            Self::ProtocolName => "ESMTP",
            Self::HeloName | Self::ClientName | Self::ReverseClientName => "mail.example.org",
            Self::QueueId => "4FZtQm0bQCz9v",
            Self::Sender | Self::SaslSender => "sender@example.org",
            Self::Recipient => "recipient@example.com",
            Self::RecipientCount => "1",
            Self::ClientAddress => "192.0.2.10",
            Self::Instance => "1a2b.5f3e0c1d.4c2d3.0",
            Self::SaslMethod => "PLAIN",
            Self::SaslUsername => "user",
            Self::Size => "12345",
            Self::CcertSubject => "mail.example.org",
            Self::CcertIssuer => "Example-CA",
            Self::CcertFingerprint | Self::CcertPubkeyFingerprint => {
                "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"
            }
            Self::EncryptionProtocol => "TLSv1.3",
            Self::EncryptionCipher => "TLS_AES_256_GCM_SHA384",
            Self::EncryptionKeysize => "256",
            Self::EtrnDomain => "example.org",
            Self::Stress => "yes",
            Self::ClientPort => "54321",
            Self::PolicyContext => "submission",
            Self::ServerAddress => "192.0.2.25",
            Self::ServerPort => "25",
            Self::CompatibilityLevel => "3.6",
            Self::MailVersion => "3.8.0",
            Self::TlsSni => "mx.example.com",
            Self::SenderLocal => "sender",
            Self::SenderDomain => "example.org",
            Self::RecipientLocal => "recipient",
            Self::RecipientDomain => "example.com",
            Self::Rule => "rule-name",
            Self::Limit => "100",
            Self::Window => "1h",
            Self::Counted => "100",
            Self::RetryAfter => "225",
            Self::Key => "user",
            Self::Delay => "300",
        }
    }

    /// The value of this variable for `request`, decided by rule `rule`.
    ///
    /// Not inlined: inlined into the expansion loop, the compiler hoisted the
    /// loads of every request field out of the loop (about 150 instructions
    /// per expansion, whatever the template).
    #[inline(never)]
    fn value<'r>(self, request: &Request<'r>, context: &Context<'r>) -> Value<'r> {
        use Value::{Bytes, Ip, Number};
        let rule = context.rule;
        let or_raw = |typed: Option<Value<'r>>| match typed {
            Some(value) => value,
            // `None`: empty, absent, or `unknown`; only the frame knows which.
            None => Bytes(request.get(self.name().as_bytes()).unwrap_or_default()),
        };
        match self {
            Self::Request => Bytes(request.request),
            Self::ProtocolState => Bytes(
                request
                    .protocol_state
                    .map(|state| state.as_bytes())
                    .unwrap_or_default(),
            ),
            Self::ProtocolName => Bytes(request.protocol_name),
            Self::HeloName => Bytes(request.helo_name),
            Self::QueueId => Bytes(request.queue_id),
            Self::Sender => Bytes(request.sender.raw),
            Self::Recipient => Bytes(request.recipient.raw),
            Self::RecipientCount => number(request.recipient_count.map(u64::from)),
            Self::ClientAddress => or_raw(request.client_address.map(Ip)),
            Self::ClientName => Bytes(request.client_name),
            Self::ReverseClientName => Bytes(request.reverse_client_name),
            Self::Instance => Bytes(request.instance),
            Self::SaslMethod => Bytes(request.sasl_method),
            Self::SaslUsername => Bytes(request.sasl_username),
            Self::SaslSender => Bytes(request.sasl_sender),
            Self::Size => number(request.size),
            Self::CcertSubject => Bytes(request.ccert_subject),
            Self::CcertIssuer => Bytes(request.ccert_issuer),
            Self::CcertFingerprint => Bytes(request.ccert_fingerprint),
            Self::EncryptionProtocol => Bytes(request.encryption_protocol),
            Self::EncryptionCipher => Bytes(request.encryption_cipher),
            Self::EncryptionKeysize => number(request.encryption_keysize.map(u64::from)),
            Self::EtrnDomain => Bytes(request.etrn_domain),
            Self::Stress => Bytes(request.stress),
            Self::CcertPubkeyFingerprint => Bytes(request.ccert_pubkey_fingerprint),
            Self::ClientPort => or_raw(request.client_port.map(|p| Number(u64::from(p)))),
            Self::PolicyContext => Bytes(request.policy_context),
            Self::ServerAddress => or_raw(request.server_address.map(Ip)),
            Self::ServerPort => or_raw(request.server_port.map(|p| Number(u64::from(p)))),
            Self::CompatibilityLevel => Bytes(request.compatibility_level),
            Self::MailVersion => Bytes(request.mail_version),
            Self::TlsSni => Bytes(request.tls_sni),
            Self::SenderLocal => Bytes(request.sender.local),
            Self::SenderDomain => Bytes(request.sender.domain),
            Self::RecipientLocal => Bytes(request.recipient.local),
            Self::RecipientDomain => Bytes(request.recipient.domain),
            Self::Rule => Bytes(rule.as_bytes()),
            Self::Delay => match context.greylist.and_then(|g| g.delay_ms) {
                Some(ms) => Number(ms / 1000),
                None => Bytes(&[]),
            },
            Self::RetryAfter if context.limit.is_none() => {
                match context.greylist.and_then(|g| g.retry_after_ms) {
                    Some(ms) => Number(ms.div_ceil(1000)),
                    None => Bytes(&[]),
                }
            }
            Self::Limit | Self::Window | Self::Counted | Self::RetryAfter | Self::Key => {
                let Some(limit) = context.limit else {
                    return Bytes(&[]);
                };
                match self {
                    Self::Limit => Number(limit.max),
                    Self::Window => Value::Duration(limit.window_ms),
                    Self::Counted => Number(limit.counted),
                    Self::RetryAfter => match limit.retry_after_ms {
                        Some(ms) => Number(ms.div_ceil(1000)),
                        None => Bytes(b"never"),
                    },
                    _ => Bytes(limit.key),
                }
            }
        }
    }

    /// Whether the variable has a value only in a limit's `over` action
    /// (`limit`, `window`, `counted`, `retry_after`, `key`).
    pub fn is_limit_fact(self) -> bool {
        matches!(
            self,
            Self::Limit | Self::Window | Self::Counted | Self::RetryAfter | Self::Key
        )
    }

    /// Whether the variable's values are numbers: `size`, `recipient_count`,
    /// `encryption_keysize`, the ports, and the limit and greylist counts and
    /// seconds (`limit`, `counted`, `retry_after`, `delay`).
    pub fn is_number(self) -> bool {
        matches!(
            self,
            Self::Size
                | Self::RecipientCount
                | Self::EncryptionKeysize
                | Self::ClientPort
                | Self::ServerPort
                | Self::Limit
                | Self::Counted
                | Self::RetryAfter
                | Self::Delay
        )
    }

    /// Whether the variable has a value only in the actions of a stateful
    /// rule (a limit's `over`, a greylist's `then` and `prepend`), not in
    /// conditions or other actions.
    pub fn is_fact(self) -> bool {
        self.is_limit_fact() || self == Self::Delay
    }
}

/// What a template is expanded for besides the request: the deciding rule
/// and, for a limit's `over` action, the facts of the refusal.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The name of the deciding rule (`$rule`).
    pub rule: &'a str,
    /// The refusal, for a limit's `over` action; `None` elsewhere (the limit
    /// variables are then empty).
    pub limit: Option<LimitFacts<'a>>,
    /// The greylisting facts, for a greylist's `then` and `prepend`.
    pub greylist: Option<GreylistFacts>,
}

impl<'a> Context<'a> {
    /// A context with the rule's name only.
    pub fn rule(rule: &'a str) -> Self {
        Self {
            rule,
            limit: None,
            greylist: None,
        }
    }
}

/// What a greylist's actions show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GreylistFacts {
    /// `$retry_after` in `then`: milliseconds until a retry is accepted
    /// (shown in seconds, rounded up).
    pub retry_after_ms: Option<u64>,
    /// `$delay` in `prepend`: milliseconds the first accepted retry waited
    /// (shown in seconds, rounded down).
    pub delay_ms: Option<u64>,
}

/// Why a limit refused, as its `over` action's variables show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitFacts<'a> {
    /// `$limit`: the window's maximum.
    pub max: u64,
    /// `$window`: the window's length in milliseconds (shown as `1h`, `90s`).
    pub window_ms: u64,
    /// `$counted`: units the window counts now.
    pub counted: u64,
    /// `$retry_after`: milliseconds until admitted (shown in seconds, rounded
    /// up), `None` for never.
    pub retry_after_ms: Option<u64>,
    /// `$key`: the key's text.
    pub key: &'a [u8],
}

/// Writes a duration in milliseconds the way a policy writes it: the largest
/// unit of `w`, `d`, `h`, `m`, `s`, `ms` that divides it exactly (`3600000`
/// is `1h`, `5400000` is `90m`).
pub fn write_duration(ms: u64, out: &mut [u8; 24]) -> &[u8] {
    const UNITS: [(u64, u8); 5] = [
        (7 * 86_400_000, b'w'),
        (86_400_000, b'd'),
        (3_600_000, b'h'),
        (60_000, b'm'),
        (1000, b's'),
    ];
    let (value, unit): (u64, &[u8]) =
        match UNITS.iter().find(|&&(size, _)| ms != 0 && ms % size == 0) {
            Some((size, letter)) => (ms / size, std::slice::from_ref(letter)),
            None => (ms, b"ms"),
        };
    let mut digits = [0u8; 20];
    let text = format_decimal(value, &mut digits);
    let len = text.len() + unit.len();
    out[..text.len()].copy_from_slice(text);
    out[text.len()..len].copy_from_slice(unit);
    &out[..len]
}

impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A variable's value before it is written.
#[derive(Debug, Clone, Copy)]
enum Value<'r> {
    Bytes(&'r [u8]),
    Number(u64),
    Ip(IpAddr),
    /// Milliseconds, written as a policy writes durations.
    Duration(u64),
}

fn number<'r>(n: Option<u64>) -> Value<'r> {
    n.map_or(Value::Bytes(&[]), Value::Number)
}

// ---------------------------------------------------------------------------
// Templates.

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
/// [module documentation](self) for the syntax and the expansion rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Template {
    parts: Vec<Part>,
}

/// Why a template text was refused. Offsets are byte offsets into the text
/// given to [`Template::parse`] (or [`ActionTemplate::compile`]), pointing at
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
const EXPECTED_VARIABLE: &str = "a request attribute (sender, recipient, client_address, \
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
    fn constant_text(&self) -> String {
        let mut out = String::new();
        for part in &self.parts {
            if let Part::Literal(text) = part {
                out.push_str(text);
            }
        }
        out
    }

    /// Append the expanded text to `out`: values sanitized, at most
    /// [`MAX_TEXT_BYTES`] bytes appended (cut on a character boundary),
    /// leading and trailing spaces removed (see the [module
    /// documentation](self)). The appended bytes are valid UTF-8 without
    /// control characters. Returns whether the text was cut.
    ///
    /// Allocates only if `out` has less than [`MAX_TEXT_BYTES`] bytes of
    /// spare capacity.
    ///
    /// ```
    /// use policy_core::Request;
    /// use policy_core::template::Template;
    ///
    /// let frame = b"request=smtpd_access_policy\nsender=a\x01b@\xffexample.org\n\n";
    /// let request = Request::parse(frame).unwrap();
    /// let mut out = Vec::new();
    /// Template::parse("$sender_domain says hi").unwrap().expand(&request, "r", &mut out);
    /// assert_eq!(String::from_utf8(out).unwrap(), "\u{fffd}example.org says hi");
    /// ```
    pub fn expand(&self, request: &Request<'_>, rule: &str, out: &mut Vec<u8>) -> bool {
        self.expand_in(request, &Context::rule(rule), out)
    }

    /// [`Template::expand`] with a whole [`Context`] (the limit variables).
    pub fn expand_in(
        &self,
        request: &Request<'_>,
        context: &Context<'_>,
        out: &mut Vec<u8>,
    ) -> bool {
        out.reserve(MAX_TEXT_BYTES);
        let mut sink = Sink::new(out, MAX_TEXT_BYTES);
        for part in &self.parts {
            if sink.full {
                break;
            }
            match part {
                Part::Literal(text) => sink.push_clean(text.as_bytes()),
                Part::Var(var) => match var.value(request, context) {
                    Value::Bytes(bytes) => sink.push_bytes(bytes),
                    Value::Number(n) => sink.push_number(n),
                    Value::Ip(ip) => sink.push_ip(ip),
                    Value::Duration(ms) => {
                        let mut buf = [0u8; 24];
                        sink.push_clean(write_duration(ms, &mut buf));
                    }
                },
            }
        }
        sink.finish()
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

/// Appends sanitized text to a buffer, within a byte budget, without leading
/// or trailing spaces.
struct Sink<'o> {
    out: &'o mut Vec<u8>,
    /// Where this text starts in `out`.
    start: usize,
    /// The length `out` may reach.
    limit: usize,
    /// Whether a non-space character was written (leading spaces are dropped).
    started: bool,
    /// Whether the budget ran out (the text was cut).
    full: bool,
}

impl<'o> Sink<'o> {
    fn new(out: &'o mut Vec<u8>, budget: usize) -> Self {
        let start = out.len();
        Self {
            out,
            start,
            limit: start + budget,
            started: false,
            full: false,
        }
    }

    /// Append `clean`: valid UTF-8 without control characters (a literal, a
    /// sanitized piece of a value). Cut on a character boundary when the
    /// budget runs out.
    fn push_clean(&mut self, mut clean: &[u8]) {
        if !self.started {
            let skip = clean.iter().position(|&b| b != b' ').unwrap_or(clean.len());
            clean = &clean[skip..];
            if clean.is_empty() {
                return;
            }
            self.started = true;
        }
        let room = self.limit - self.out.len();
        if clean.len() <= room {
            self.out.extend_from_slice(clean);
        } else {
            // Back up to a character boundary: not a continuation byte.
            let mut cut = room;
            while cut > 0 && clean[cut] & 0xc0 == 0x80 {
                cut -= 1;
            }
            self.out.extend_from_slice(&clean[..cut]);
            self.full = true;
        }
    }

    /// Append untrusted bytes: control characters as spaces, invalid UTF-8 as
    /// U+FFFD. Printable ASCII (the usual value) is copied in runs; the first
    /// other byte above 0x7f sends the rest through the UTF-8 decoder.
    fn push_bytes(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && !self.full {
            let run = printable_ascii_prefix(bytes);
            self.push_clean(&bytes[..run]);
            let Some(&b) = bytes.get(run) else {
                return;
            };
            if b < 0x80 {
                // C0 control or DEL.
                self.push_clean(b" ");
                bytes = &bytes[run + 1..];
            } else {
                self.push_utf8(&bytes[run..]);
                return;
            }
        }
    }

    /// The slow path of [`Sink::push_bytes`]: decode, replacing invalid
    /// sequences and control characters.
    fn push_utf8(&mut self, bytes: &[u8]) {
        for chunk in bytes.utf8_chunks() {
            for c in chunk.valid().chars() {
                if self.full {
                    return;
                }
                let c = if c.is_control() { ' ' } else { c };
                let mut buf = [0u8; 4];
                self.push_clean(c.encode_utf8(&mut buf).as_bytes());
            }
            if !chunk.invalid().is_empty() {
                self.push_clean("\u{fffd}".as_bytes());
            }
        }
    }

    fn push_number(&mut self, n: u64) {
        let mut buf = [0u8; 20];
        let digits = format_decimal(n, &mut buf);
        self.push_clean(digits);
    }

    fn push_ip(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(v4) => {
                // "255.255.255.255" is the longest dotted quad.
                let mut text = [0u8; 15];
                let mut len = 0;
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        text[len] = b'.';
                        len += 1;
                    }
                    let mut buf = [0u8; 20];
                    let digits = format_decimal(u64::from(octet), &mut buf);
                    text[len..len + digits.len()].copy_from_slice(digits);
                    len += digits.len();
                }
                self.push_clean(&text[..len]);
            }
            IpAddr::V6(v6) => {
                // The longest IPv6 text form is 45 bytes.
                let mut buf = StackWriter::<45>::new();
                // Cannot fail: the buffer holds the longest form.
                let _ = fmt::write(&mut buf, format_args!("{v6}"));
                self.push_bytes(buf.as_bytes());
            }
        }
    }

    /// Drop trailing spaces; return whether the text was cut.
    fn finish(self) -> bool {
        while self.out.len() > self.start && self.out.last() == Some(&b' ') {
            self.out.pop();
        }
        self.full
    }
}

/// Write `n` in decimal at the end of `buf` (u64::MAX has 20 digits) and
/// return the digits.
fn format_decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        // n % 10 < 10: fits in a u8.
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[at..]
}

/// A `fmt::Write` into a fixed stack buffer; fails when full.
struct StackWriter<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StackWriter<N> {
    fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl<const N: usize> fmt::Write for StackWriter<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let Some(dest) = self.buf.get_mut(self.len..end) else {
            return Err(fmt::Error);
        };
        dest.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Action templates.

/// Whether `token` is an enhanced status code as [`Action::parse`] recognises
/// one at the start of a reply text (`class.subject.detail`).
fn is_enhanced_status(token: &[u8]) -> bool {
    token.len() <= LONGEST_ENHANCED_STATUS
        && std::str::from_utf8(token).is_ok_and(|s| EnhancedStatus::parse(s).is_ok())
}

/// The longest enhanced status code text, `5.999.999`: longer tokens need not
/// be parsed.
const LONGEST_ENHANCED_STATUS: usize = 9;

/// The first blank-separated token of `s`.
fn first_token(s: &[u8]) -> &[u8] {
    let end = s.iter().position(|&b| b == b' ').unwrap_or(s.len());
    &s[..end]
}

/// What the expanded text of an [`ActionTemplate`] must satisfy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// REJECT, DEFER, DEFER_IF_*, 4NN/5NN: `[enhanced] [text]`. `code`: the
    /// enhanced status code is constant (part of the prefix), so the text may
    /// start with anything; otherwise its first token must not look like one.
    /// `needs_text`: 4NN/5NN without a code needs text. `class`: 4 or 5, the
    /// class a leading reply code in the text must have (`REJECT` with
    /// `$x` = `450` would read as a 450; [`ActionError::ReplyCodeMismatch`]).
    Reply {
        code: bool,
        needs_text: bool,
        class: u8,
    },
    /// HOLD, DISCARD: any text, or none.
    Optional,
    /// WARN, INFO: any non-empty text.
    Required,
    /// FILTER: `transport:destination`.
    Filter,
    /// PREPEND: `name: value` (the name is constant).
    Header,
    /// REDIRECT, BCC: `local@domain`.
    Address,
}

impl Shape {
    /// Whether `text` (expanded, sanitized, trimmed) fits.
    fn accepts(self, text: &[u8]) -> bool {
        let no_space = || !text.contains(&b' ');
        match self {
            Self::Reply {
                code,
                needs_text,
                class,
            } => {
                if text.is_empty() {
                    return !needs_text;
                }
                if code {
                    return true;
                }
                let first = first_token(text);
                !is_enhanced_status(first)
                    && reply_code(first).map_or(true, |found| found / 100 == u16::from(class))
            }
            Self::Optional => true,
            Self::Required => !text.is_empty(),
            Self::Filter => {
                matches!(text.iter().position(|&b| b == b':'), Some(colon) if colon > 0)
                    && no_space()
            }
            Self::Header => match text.iter().position(|&b| b == b':') {
                Some(colon) if colon > 0 => text[..colon].iter().all(|b| (33..=126).contains(b)),
                _ => false,
            },
            Self::Address => {
                matches!(text.iter().rposition(|&b| b == b'@'),
                    Some(at) if at > 0 && at + 1 < text.len())
                    && no_space()
            }
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
    /// What the expanded text must satisfy.
    shape: Shape,
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
            let reply = matches!(
                parsed,
                Err(ActionError::ReplyCodeMismatch { .. })
                    | Ok(Action::Reject(_)
                        | Action::Defer(_)
                        | Action::DeferIfReject(_)
                        | Action::DeferIfPermit(_)
                        | Action::Status { .. })
            );
            if reply && var.is_number() {
                return Err(ActionTemplateError::LeadingNumber {
                    var: *var,
                    offset: first_variable_offset(text),
                });
            }
        }
        let action = parsed?;
        let shape = match &action {
            Action::Ok | Action::Dunno => {
                // Unreachable: the sample is non-empty and `parse` refused it.
                return Err(ActionError::UnexpectedText {
                    verb: action.verb(),
                }
                .into());
            }
            Action::Reject(_)
            | Action::Defer(_)
            | Action::DeferIfReject(_)
            | Action::DeferIfPermit(_) => Shape::Reply {
                code: false,
                needs_text: false,
                class: if matches!(action, Action::Reject(_)) {
                    5
                } else {
                    4
                },
            },
            Action::Status { code, .. } => Shape::Reply {
                code: false,
                needs_text: true,
                class: if *code >= 500 { 5 } else { 4 },
            },
            Action::Hold(_) | Action::Discard(_) => Shape::Optional,
            Action::Warn(_) | Action::Info(_) => Shape::Required,
            Action::Filter(_) => Shape::Filter,
            Action::Prepend(_) => Shape::Header,
            Action::Redirect(_) | Action::Bcc(_) => Shape::Address,
        };
        let mut prefix = match &action {
            Action::Status { code, .. } => code.to_string(),
            other => other.verb().to_owned(),
        };
        let mut parts = template.parts;
        let shape = match shape {
            Shape::Reply {
                needs_text, class, ..
            } => {
                let code = split_constant_code(&mut parts);
                if let Some(code) = code {
                    prefix.push(' ');
                    prefix.push_str(&code.to_string());
                }
                Shape::Reply {
                    code: code.is_some(),
                    needs_text: needs_text && code.is_none(),
                    class,
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
                Shape::Header
            }
            other => other,
        };
        let fallback = match shape {
            Shape::Reply { code: true, .. } => Action::parse(&prefix)?,
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
        if !self.shape.accepts(&out[text_start..]) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::bytes::is_printable_ascii;
    use proptest::prelude::*;

    /// A request frame with `request=smtpd_access_policy` and `lines` after it.
    fn frame(lines: &[&[u8]]) -> Vec<u8> {
        let mut frame = b"request=smtpd_access_policy\n".to_vec();
        for line in lines {
            frame.extend_from_slice(line);
            frame.push(b'\n');
        }
        frame.push(b'\n');
        frame
    }

    /// A full Postfix 3.x request.
    const FULL: &[u8] = b"request=smtpd_access_policy\n\
        protocol_state=RCPT\nprotocol_name=ESMTP\nhelo_name=mx.example.net\nqueue_id=\n\
        sender=Joe.User@Example.NET\nrecipient=info@example.com\nrecipient_count=0\n\
        client_address=192.0.2.7\nclient_name=mx.example.net\n\
        reverse_client_name=mx.example.net\ninstance=6a3.5f3e0c1d.4c2d3.0\n\
        sasl_method=PLAIN\nsasl_username=joe\nsasl_sender=\nsize=0010\nccert_subject=\n\
        ccert_issuer=\nccert_fingerprint=\nencryption_protocol=TLSv1.3\n\
        encryption_cipher=TLS_AES_256_GCM_SHA384\nencryption_keysize=256\netrn_domain=\n\
        stress=\nccert_pubkey_fingerprint=\nclient_port=54321\npolicy_context=\n\
        server_address=2001:db8::25\nserver_port=unknown\ncompatibility_level=3.6\n\
        mail_version=3.8.0\ntls_sni=\nx_extra=1\n\n";

    fn expand(template: &str, frame: &[u8]) -> (String, bool) {
        let request = Request::parse(frame).unwrap();
        let mut out = b"prefix:".to_vec();
        let cut = Template::parse(template)
            .unwrap()
            .expand(&request, "the-rule", &mut out);
        let out = String::from_utf8(out).expect("valid UTF-8");
        (out["prefix:".len()..].to_owned(), cut)
    }

    #[test]
    fn variable_names() {
        for (index, name) in KNOWN_ATTRIBUTES.iter().enumerate() {
            let var = Var::ALL[index];
            assert_eq!(var.name(), *name);
            assert_eq!(var.attribute_index(), Some(index));
            assert_eq!(Var::from_attribute_index(index), Some(var));
        }
        for var in Var::ALL {
            assert_eq!(Var::lookup(var.name()), Some(var), "{var}");
            assert!(!var.sample().is_empty());
            assert!(!var.sample().contains(' '), "{var}");
            assert!(EnhancedStatus::parse(var.sample()).is_err(), "{var}");
        }
        assert_eq!(Var::from_attribute_index(KNOWN_ATTRIBUTES.len()), None);
        assert_eq!(Var::SenderLocal.attribute_index(), None);
        assert_eq!(Var::Rule.name(), "rule");
        assert_eq!(Var::RecipientDomain.name(), "recipient_domain");
        for name in ["Sender", "", "x_extra", "sender ", "rule_name"] {
            assert_eq!(Var::lookup(name), None, "{name:?}");
        }
    }

    #[test]
    fn parse_table() {
        use Part::{Literal as L, Var as V};
        let lit = |s: &str| L(s.into());
        // (input, parts, source form)
        let rows: Vec<(&str, Vec<Part>, &str)> = vec![
            ("", vec![], ""),
            ("plain text", vec![lit("plain text")], "plain text"),
            ("$sender", vec![V(Var::Sender)], "${sender}"),
            ("${sender}", vec![V(Var::Sender)], "${sender}"),
            (
                "5.7.1 Sender $sender is blocked",
                vec![lit("5.7.1 Sender "), V(Var::Sender), lit(" is blocked")],
                "5.7.1 Sender ${sender} is blocked",
            ),
            (
                "$sender_local@$sender_domain.",
                vec![
                    V(Var::SenderLocal),
                    lit("@"),
                    V(Var::SenderDomain),
                    lit("."),
                ],
                "${sender_local}@${sender_domain}.",
            ),
            (
                "${rule}_x$rule-y",
                vec![V(Var::Rule), lit("_x"), V(Var::Rule), lit("-y")],
                "${rule}_x${rule}-y",
            ),
            ("cost $$5", vec![lit("cost $5")], "cost $$5"),
            (
                "$$$sender$$",
                vec![lit("$"), V(Var::Sender), lit("$")],
                "$$${sender}$$",
            ),
            ("$$$$", vec![lit("$$")], "$$$$"),
            (
                "h\u{e9}llo $helo_name",
                vec![lit("h\u{e9}llo "), V(Var::HeloName)],
                "h\u{e9}llo ${helo_name}",
            ),
            ("${tls_sni}", vec![V(Var::TlsSni)], "${tls_sni}"),
        ];
        for (input, parts, source) in rows {
            let template = Template::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(template.parts(), parts.as_slice(), "{input:?}");
            assert_eq!(template.to_string(), source, "{input:?}");
            assert_eq!(
                Template::parse(source).as_ref(),
                Ok(&template),
                "re-parse {source:?}"
            );
            assert_eq!(
                template.is_constant(),
                template.variables().next().is_none()
            );
        }
        let t = Template::parse("a $sender b $sender ${client_address}").unwrap();
        assert_eq!(
            t.variables().collect::<Vec<_>>(),
            [Var::Sender, Var::Sender, Var::ClientAddress]
        );
        assert_eq!(
            t.sample(),
            "a sender@example.org b sender@example.org 192.0.2.10"
        );
        assert!(!t.is_constant());
        assert!(Template::parse("a $$ b").unwrap().is_constant());
    }

    #[test]
    fn parse_errors_table() {
        use TemplateError::*;
        let rows: &[(&str, TemplateError)] = &[
            ("$", MissingName { offset: 0 }),
            ("cost $ 5", MissingName { offset: 5 }),
            ("$-x", MissingName { offset: 0 }),
            ("$.", MissingName { offset: 0 }),
            ("ok $sender $", MissingName { offset: 11 }),
            ("$\u{e9}", MissingName { offset: 0 }),
            ("$nobody", UnknownVariable { offset: 0, len: 7 }),
            ("x $Sender", UnknownVariable { offset: 2, len: 7 }),
            ("$senderx y", UnknownVariable { offset: 0, len: 8 }),
            ("${nobody} x", UnknownVariable { offset: 0, len: 9 }),
            ("${}", UnknownVariable { offset: 0, len: 3 }),
            ("${ sender}", UnknownVariable { offset: 0, len: 10 }),
            ("${x_extra}", UnknownVariable { offset: 0, len: 10 }),
            ("a ${sender", UnterminatedBrace { offset: 2 }),
            ("${", UnterminatedBrace { offset: 0 }),
            ("a\nb", ControlCharacter { offset: 1 }),
            ("a\rb", ControlCharacter { offset: 1 }),
            ("tab\there", ControlCharacter { offset: 3 }),
            ("nul\0", ControlCharacter { offset: 3 }),
            ("\u{e9}\u{85}", ControlCharacter { offset: 2 }),
            ("del\u{7f}", ControlCharacter { offset: 3 }),
            ("${sen\nder}", UnknownVariable { offset: 0, len: 10 }),
        ];
        for (input, expected) in rows {
            assert_eq!(Template::parse(input), Err(*expected), "input {input:?}");
        }
        assert_eq!(
            UnknownVariable { offset: 0, len: 1 }.to_string(),
            format!("unknown template variable: expected {EXPECTED_VARIABLE}")
        );
        assert!(MissingName { offset: 0 }.to_string().contains("`$$`"));
        assert!(UnterminatedBrace { offset: 0 }.to_string().contains("`}`"));
    }

    #[test]
    fn expand_every_variable() {
        let rows: &[(&str, &str)] = &[
            ("$request", "smtpd_access_policy"),
            ("$protocol_state", "RCPT"),
            ("$protocol_name", "ESMTP"),
            ("$helo_name", "mx.example.net"),
            ("[$queue_id]", "[]"),
            ("$sender", "Joe.User@Example.NET"),
            ("$recipient", "info@example.com"),
            ("$recipient_count", "0"),
            ("$client_address", "192.0.2.7"),
            ("$client_name", "mx.example.net"),
            ("$reverse_client_name", "mx.example.net"),
            ("$instance", "6a3.5f3e0c1d.4c2d3.0"),
            ("$sasl_method", "PLAIN"),
            ("$sasl_username", "joe"),
            ("$size", "10"),
            ("$encryption_protocol", "TLSv1.3"),
            ("$encryption_cipher", "TLS_AES_256_GCM_SHA384"),
            ("$encryption_keysize", "256"),
            ("$client_port", "54321"),
            ("$server_address", "2001:db8::25"),
            ("$server_port", "unknown"),
            ("$compatibility_level", "3.6"),
            ("$mail_version", "3.8.0"),
            ("$sender_local", "Joe.User"),
            ("$sender_domain", "Example.NET"),
            ("$recipient_local", "info"),
            ("$recipient_domain", "example.com"),
            ("$rule", "the-rule"),
            ("<$tls_sni>", "<>"),
            (
                "$sender_local at ${sender_domain}: ${rule}!",
                "Joe.User at Example.NET: the-rule!",
            ),
        ];
        for (template, expected) in rows {
            assert_eq!(
                expand(template, FULL),
                ((*expected).to_owned(), false),
                "{template}"
            );
        }
        // Every variable expands without panicking on an empty request too.
        let empty = Request::parse(b"request=smtpd_access_policy\n\n").unwrap();
        for var in Var::ALL {
            let mut out = Vec::new();
            let t = Template::parse(&format!("<${{{var}}}>")).unwrap();
            assert!(!t.expand(&empty, "", &mut out));
            let expected: &[u8] = if var == Var::Request {
                b"<smtpd_access_policy>"
            } else {
                b"<>"
            };
            assert_eq!(out, expected, "{var}");
        }
    }

    #[test]
    fn expand_hostile_values() {
        let long = "x".repeat(2 * MAX_TEXT_BYTES);
        let long_line = format!("sender={long}");
        // 'é' is two bytes: 449 bytes of ASCII, then 'é' would end at 451.
        let accent_line = format!("helo_name={}\u{e9}\u{e9}", "y".repeat(MAX_TEXT_BYTES - 1));
        let spaced_line = format!("helo_name={} z", "w".repeat(MAX_TEXT_BYTES - 1));
        let rows: Vec<(&str, Vec<&[u8]>, String, bool)> = vec![
            ("<$sender>", vec![b"sender=a\rb@c"], "<a b@c>".into(), false),
            ("<$sender>", vec![b"sender=a\r\r"], "<a >".into(), false),
            (
                "<$helo_name>",
                vec![b"helo_name=a\tb\0c\x1bd\x7fe"],
                "<a b c d e>".into(),
                false,
            ),
            (
                "<$helo_name>",
                vec![b"helo_name=\xc2\x85\xc2\x9f"],
                "<  >".into(),
                false,
            ),
            (
                "<$helo_name>",
                vec![b"helo_name=a\xffb\xe2\x82c"],
                "<a\u{fffd}b\u{fffd}c>".into(),
                false,
            ),
            (
                "<$helo_name>",
                vec![b"helo_name=\xf0\x9f\x92\xa9"],
                "<\u{1f4a9}>".into(),
                false,
            ),
            (
                "<$helo_name>",
                vec![b"helo_name=\xed\xa0\x80"],
                "<\u{fffd}\u{fffd}\u{fffd}>".into(),
                false,
            ),
            // Leading and trailing spaces of the whole text go; inner stay.
            ("$sender blocked", vec![], "blocked".into(), false),
            (
                "$sender blocked",
                vec![b"sender=\r\t x"],
                "x blocked".into(),
                false,
            ),
            (
                "blocked: $sender",
                vec![b"sender="],
                "blocked:".into(),
                false,
            ),
            ("  a  $sender  ", vec![b"sender=\t"], "a".into(), false),
            ("$sender", vec![b"sender=\t\t"], String::new(), false),
            ("a $sender b", vec![], "a  b".into(), false),
            // Length bound, on a character boundary.
            (
                "$sender",
                vec![long_line.as_bytes()],
                "x".repeat(MAX_TEXT_BYTES),
                true,
            ),
            (
                "ab $sender",
                vec![long_line.as_bytes()],
                format!("ab {}", "x".repeat(MAX_TEXT_BYTES - 3)),
                true,
            ),
            (
                "$helo_name",
                vec![accent_line.as_bytes()],
                "y".repeat(MAX_TEXT_BYTES - 1),
                true,
            ),
            (
                "$helo_name$sender",
                vec![accent_line.as_bytes(), b"sender=zz"],
                "y".repeat(MAX_TEXT_BYTES - 1),
                true,
            ),
            // A cut that leaves a trailing space removes it too.
            (
                "$helo_name",
                vec![spaced_line.as_bytes()],
                "w".repeat(MAX_TEXT_BYTES - 1),
                true,
            ),
            // Typed attributes Postfix sent as `unknown`.
            (
                "$client_address:$client_port",
                vec![b"client_address=unknown", b"client_port=unknown"],
                "unknown:unknown".into(),
                false,
            ),
            (
                "[$client_address]",
                vec![b"client_address=fe80::1%eth0"],
                "[fe80::1]".into(),
                false,
            ),
            (
                "[$client_address]",
                vec![b"client_address=::ffff:192.0.2.1"],
                "[::ffff:192.0.2.1]".into(),
                false,
            ),
            (
                "$size",
                vec![b"size=18446744073709551615"],
                "18446744073709551615".into(),
                false,
            ),
            // A template's own `$` survives.
            ("$$$sender", vec![b"sender=$x"], "$$x".into(), false),
        ];
        for (template, lines, expected, cut) in &rows {
            let frame = frame(lines);
            assert_eq!(
                &expand(template, &frame),
                &(expected.clone(), *cut),
                "{template} {lines:?}"
            );
            assert!(expected.len() <= MAX_TEXT_BYTES);
        }
        // Exactly the budget: not cut.
        let exact = format!("sender={}", "e".repeat(MAX_TEXT_BYTES));
        assert_eq!(
            expand("$sender", &frame(&[exact.as_bytes()])),
            ("e".repeat(MAX_TEXT_BYTES), false)
        );
    }

    #[test]
    fn expand_appends_without_allocating_when_capacity_suffices() {
        let request = Request::parse(FULL).unwrap();
        let t = Template::parse("5.7.1 Sender $sender from [$client_address] blocked").unwrap();
        let mut out = Vec::with_capacity(1024);
        out.extend_from_slice(b"REJECT ");
        let before = out.as_ptr();
        assert!(!t.expand(&request, "r", &mut out));
        assert_eq!(out.as_ptr(), before);
        assert_eq!(
            out,
            b"REJECT 5.7.1 Sender Joe.User@Example.NET from [192.0.2.7] blocked"
        );
    }

    #[test]
    fn compile_table() {
        // (verb, text, compiled action, display, constant)
        let rows: &[(&str, Option<&str>, &str, &str, bool)] = &[
            ("OK", None, "OK", "OK", true),
            ("dunno", None, "DUNNO", "DUNNO", true),
            ("ok", Some(""), "OK", "OK", true),
            ("REJECT", None, "REJECT", "REJECT", true),
            (
                "reject",
                Some("5.7.1 Go away"),
                "REJECT 5.7.1 Go away",
                "REJECT 5.7.1 Go away",
                true,
            ),
            (
                "REJECT",
                Some("Costs $$5"),
                "REJECT Costs $5",
                "REJECT Costs $5",
                true,
            ),
            (
                "REJECT",
                Some("5.7.1 Sender $sender blocked"),
                "REJECT 5.7.1 Sender sender@example.org blocked",
                "REJECT 5.7.1 Sender ${sender} blocked",
                false,
            ),
            (
                "REJECT",
                Some("  5.07.001   $sender"),
                "REJECT 5.7.1 sender@example.org",
                "REJECT 5.7.1 ${sender}",
                false,
            ),
            (
                "REJECT",
                Some("$sender blocked"),
                "REJECT sender@example.org blocked",
                "REJECT ${sender} blocked",
                false,
            ),
            (
                "REJECT",
                Some("5.7.1$rule"),
                "REJECT 5.7.1rule-name",
                "REJECT 5.7.1${rule}",
                false,
            ),
            (
                "defer",
                Some("4.7.1 $client_address busy"),
                "DEFER 4.7.1 192.0.2.10 busy",
                "DEFER 4.7.1 ${client_address} busy",
                false,
            ),
            (
                "DEFER_IF_REJECT",
                Some("$rule"),
                "DEFER_IF_REJECT rule-name",
                "DEFER_IF_REJECT ${rule}",
                false,
            ),
            (
                "defer_if_permit",
                Some("4.7.0 $rule"),
                "DEFER_IF_PERMIT 4.7.0 rule-name",
                "DEFER_IF_PERMIT 4.7.0 ${rule}",
                false,
            ),
            (
                "450",
                Some("4.7.1 Try $sender later"),
                "450 4.7.1 Try sender@example.org later",
                "450 4.7.1 Try ${sender} later",
                false,
            ),
            (
                "550",
                Some("Go away $client_name"),
                "550 Go away mail.example.org",
                "550 Go away ${client_name}",
                false,
            ),
            (
                "554",
                Some("$sender"),
                "554 sender@example.org",
                "554 ${sender}",
                false,
            ),
            (
                "HOLD",
                Some("held for $sasl_username"),
                "HOLD held for user",
                "HOLD held for ${sasl_username}",
                false,
            ),
            (
                "discard",
                Some("$rule"),
                "DISCARD rule-name",
                "DISCARD ${rule}",
                false,
            ),
            (
                "FILTER",
                Some("smtp:[$client_address]:10025"),
                "FILTER smtp:[192.0.2.10]:10025",
                "FILTER smtp:[${client_address}]:10025",
                false,
            ),
            (
                "PREPEND",
                Some("X-Policy: $rule for $sender"),
                "PREPEND X-Policy: rule-name for sender@example.org",
                "PREPEND X-Policy: ${rule} for ${sender}",
                false,
            ),
            (
                "REDIRECT",
                Some("$sender"),
                "REDIRECT sender@example.org",
                "REDIRECT ${sender}",
                false,
            ),
            (
                "BCC",
                Some("archive+$recipient_local@example.com"),
                "BCC archive+recipient@example.com",
                "BCC archive+${recipient_local}@example.com",
                false,
            ),
            (
                "WARN",
                Some("$sasl_username as $sender"),
                "WARN user as sender@example.org",
                "WARN ${sasl_username} as ${sender}",
                false,
            ),
            ("info", Some("$size"), "INFO 12345", "INFO ${size}", false),
        ];
        for (verb, text, action, display, constant) in rows {
            let t = ActionTemplate::compile(verb, *text)
                .unwrap_or_else(|e| panic!("{verb} {text:?}: {e}"));
            assert_eq!(t.action().to_string(), *action, "{verb} {text:?}");
            assert_eq!(t.to_string(), *display, "{verb} {text:?}");
            assert_eq!(t.is_constant(), *constant, "{verb} {text:?}");
            assert_eq!(t.template().is_none(), *constant);
            assert_eq!(t.fallback().validate(), Ok(()));
            if *constant {
                assert_eq!(t.fallback(), t.action());
            }
        }
    }

    #[test]
    fn compile_errors_table() {
        use ActionTemplateError::{Action as A, Template as T, TemplatedHeaderName};
        let rows: &[(&str, Option<&str>, ActionTemplateError)] = &[
            ("", None, A(ActionError::Empty)),
            ("REJECT 5.7.1", None, A(ActionError::UnknownVerb)),
            ("ACCEPT", Some("$sender"), A(ActionError::UnknownVerb)),
            (
                "OK",
                Some("$sender"),
                A(ActionError::UnexpectedText { verb: "OK" }),
            ),
            (
                "DUNNO",
                Some("x"),
                A(ActionError::UnexpectedText { verb: "DUNNO" }),
            ),
            (
                "REJECT",
                Some("4.7.1 $sender"),
                A(ActionError::EnhancedClassMismatch {
                    expected: 5,
                    found: 4,
                }),
            ),
            (
                "450",
                Some("5.7.1 $sender"),
                A(ActionError::EnhancedClassMismatch {
                    expected: 4,
                    found: 5,
                }),
            ),
            ("250", Some("$sender"), A(ActionError::InvalidCode)),
            (
                "DEFER",
                Some("$retry_after seconds to wait"),
                ActionTemplateError::LeadingNumber {
                    var: Var::RetryAfter,
                    offset: 0,
                },
            ),
            (
                "DEFER",
                Some("$size bytes is too much for now"),
                ActionTemplateError::LeadingNumber {
                    var: Var::Size,
                    offset: 0,
                },
            ),
            (
                "550",
                Some("$recipient_count recipients"),
                ActionTemplateError::LeadingNumber {
                    var: Var::RecipientCount,
                    offset: 0,
                },
            ),
            (
                "REJECT",
                Some(" $limit reached"),
                ActionTemplateError::LeadingNumber {
                    var: Var::Limit,
                    offset: 1,
                },
            ),
            (
                "REJECT",
                Some("450 4.7.1 Try again, $sender"),
                A(ActionError::ReplyCodeMismatch {
                    expected: 5,
                    found: 450,
                }),
            ),
            (
                "DEFER",
                Some("550 5.7.1 no, $sender"),
                A(ActionError::ReplyCodeMismatch {
                    expected: 4,
                    found: 550,
                }),
            ),
            ("450", None, A(ActionError::MissingText { verb: "4NN/5NN" })),
            (
                "WARN",
                Some(""),
                A(ActionError::MissingText { verb: "WARN" }),
            ),
            (
                "REDIRECT",
                Some("$client_address"),
                A(ActionError::InvalidAddress),
            ),
            (
                "REDIRECT",
                Some("$sender_local"),
                A(ActionError::InvalidAddress),
            ),
            ("BCC", Some("a b $sender"), A(ActionError::InvalidAddress)),
            ("FILTER", Some("$rule"), A(ActionError::InvalidFilter)),
            ("FILTER", Some("smtp: $rule"), A(ActionError::InvalidFilter)),
            (
                "PREPEND",
                Some("$rule: x"),
                TemplatedHeaderName { offset: 0 },
            ),
            (
                "PREPEND",
                Some("X-$$-$rule: x"),
                TemplatedHeaderName { offset: 5 },
            ),
            (
                "PREPEND",
                Some("X Bad: $rule"),
                A(ActionError::InvalidHeader),
            ),
            (
                "PREPEND",
                Some("no colon $rule"),
                A(ActionError::InvalidHeader),
            ),
            (
                "REJECT",
                Some("5.7.1 $nobody"),
                T(TemplateError::UnknownVariable { offset: 6, len: 7 }),
            ),
            (
                "REJECT",
                Some("x ${sender"),
                T(TemplateError::UnterminatedBrace { offset: 2 }),
            ),
            (
                "REJECT",
                Some("x $"),
                T(TemplateError::MissingName { offset: 2 }),
            ),
            (
                "REJECT",
                Some("x\ny"),
                T(TemplateError::ControlCharacter { offset: 1 }),
            ),
        ];
        for (verb, text, expected) in rows {
            assert_eq!(
                ActionTemplate::compile(verb, *text),
                Err(*expected),
                "{verb} {text:?}"
            );
        }
        let long = format!("{} $rule", "x".repeat(MAX_TEXT_BYTES));
        assert!(matches!(
            ActionTemplate::compile("REJECT", Some(&long)),
            Err(A(ActionError::TextTooLong { .. }))
        ));
        assert_eq!(TemplatedHeaderName { offset: 3 }.offset(), Some(3));
        assert_eq!(A(ActionError::Empty).offset(), None);
        assert_eq!(
            T(TemplateError::MissingName { offset: 9 }).offset(),
            Some(9)
        );
        assert!(TemplatedHeaderName { offset: 0 }
            .to_string()
            .contains("constant header name"));
        assert_eq!(
            A(ActionError::Empty).to_string(),
            ActionError::Empty.to_string()
        );
    }

    fn wire(verb: &str, text: Option<&str>, lines: &[&[u8]]) -> (String, WireOutcome) {
        let t =
            ActionTemplate::compile(verb, text).unwrap_or_else(|e| panic!("{verb} {text:?}: {e}"));
        let frame = frame(lines);
        let request = Request::parse(&frame).unwrap();
        let mut out = b"action=".to_vec();
        let outcome = t.write_wire(&request, "r1", &mut out);
        let out = String::from_utf8(out).unwrap();
        let out = out.strip_prefix("action=").unwrap().to_owned();
        let parsed = Action::parse(&out).unwrap_or_else(|e| panic!("{out:?}: {e}"));
        assert_eq!(parsed.to_string(), out, "canonical");
        if outcome == WireOutcome::Fallback {
            assert_eq!(&parsed, t.fallback());
        } else {
            assert_eq!(parsed.verb(), t.action().verb());
        }
        (out, outcome)
    }

    #[test]
    fn write_wire_table() {
        use WireOutcome::{Expanded as E, Fallback as F, Truncated as T};
        let long = format!("sender={}@example.com", "x".repeat(MAX_TEXT_BYTES));
        let long = long.as_bytes();
        type Row<'a> = (&'a str, Option<&'a str>, Vec<&'a [u8]>, String, WireOutcome);
        let rows: Vec<Row<'_>> = vec![
            ("OK", None, vec![], "OK".into(), E),
            (
                "reject",
                Some("5.7.1 Go away"),
                vec![],
                "REJECT 5.7.1 Go away".into(),
                E,
            ),
            (
                "REJECT",
                Some("5.7.1 Sender $sender blocked"),
                vec![b"sender=a@b"],
                "REJECT 5.7.1 Sender a@b blocked".into(),
                E,
            ),
            (
                "REJECT",
                Some("5.7.1 Sender $sender blocked"),
                vec![],
                "REJECT 5.7.1 Sender  blocked".into(),
                E,
            ),
            (
                "REJECT",
                Some("5.7.1 $sender"),
                vec![],
                "REJECT 5.7.1".into(),
                E,
            ),
            (
                "REJECT",
                Some("5.7.1 $sender"),
                vec![b"sender=4.7.1"],
                "REJECT 5.7.1 4.7.1".into(),
                E,
            ),
            (
                "REJECT",
                Some("5.7.1 $sender"),
                vec![b"sender=\r\r\t"],
                "REJECT 5.7.1".into(),
                E,
            ),
            (
                "REJECT",
                Some("5.7.1 $sender"),
                vec![long],
                format!("REJECT 5.7.1 {}", "x".repeat(MAX_TEXT_BYTES)),
                T,
            ),
            ("REJECT", Some("$sender"), vec![], "REJECT".into(), E),
            // A leading reply code of another class than the verb's: the fallback.
            (
                "REJECT",
                Some("$sender_local please"),
                vec![b"sender=450@example.com"],
                "REJECT".into(),
                F,
            ),
            (
                "DEFER",
                Some("$sender_local"),
                vec![b"sender=550@example.com"],
                "DEFER".into(),
                F,
            ),
            (
                "550",
                Some("$sender_local x"),
                vec![b"sender=421@example.com"],
                "550 5.0.0".into(),
                F,
            ),
            // Of the verb's class, or after a constant enhanced code: as written.
            (
                "REJECT",
                Some("$sender_local please"),
                vec![b"sender=550@example.com"],
                "REJECT 550 please".into(),
                E,
            ),
            (
                "REJECT",
                Some("5.7.1 $sender_local please"),
                vec![b"sender=450@example.com"],
                "REJECT 5.7.1 450 please".into(),
                E,
            ),
            (
                "DEFER",
                Some("$sender_local"),
                vec![b"sender=4500@example.com"],
                "DEFER 4500".into(),
                E,
            ),
            (
                "REJECT",
                Some("$sender blocked"),
                vec![b"sender=5.7.1"],
                "REJECT".into(),
                F,
            ),
            (
                "REJECT",
                Some("$sender blocked"),
                vec![b"sender=4.7.1"],
                "REJECT".into(),
                F,
            ),
            (
                "REJECT",
                Some("$sender blocked"),
                vec![b"sender=5.7.1x"],
                "REJECT 5.7.1x blocked".into(),
                E,
            ),
            ("REJECT", Some("5.7.1$sender"), vec![], "REJECT".into(), F),
            (
                "REJECT",
                Some("5.7.1$sender"),
                vec![b"sender=0"],
                "REJECT".into(),
                F,
            ),
            (
                "REJECT",
                Some("5.7.1$sender"),
                vec![b"sender=x"],
                "REJECT 5.7.1x".into(),
                E,
            ),
            (
                "defer",
                Some("4.7.1 $rule"),
                vec![],
                "DEFER 4.7.1 r1".into(),
                E,
            ),
            (
                "DEFER_IF_PERMIT",
                Some("$sender"),
                vec![b"sender=5.1.1 x"],
                "DEFER_IF_PERMIT".into(),
                F,
            ),
            ("550", Some("$sender"), vec![], "550 5.0.0".into(), F),
            (
                "450",
                Some("$sender"),
                vec![b"sender=4.1.1"],
                "450 4.0.0".into(),
                F,
            ),
            (
                "550",
                Some("$sender"),
                vec![b"sender=joe"],
                "550 joe".into(),
                E,
            ),
            ("550", Some("5.7.1 $sender"), vec![], "550 5.7.1".into(), E),
            (
                "421",
                Some("4.3.2 $sender"),
                vec![b"sender=5.7.1"],
                "421 4.3.2 5.7.1".into(),
                E,
            ),
            ("HOLD", Some("$sender"), vec![], "HOLD".into(), E),
            (
                "HOLD",
                Some("$sender"),
                vec![b"sender=5.7.1"],
                "HOLD 5.7.1".into(),
                E,
            ),
            (
                "discard",
                Some("trap $recipient"),
                vec![b"recipient=\x00"],
                "DISCARD trap".into(),
                E,
            ),
            ("WARN", Some("$sasl_username"), vec![], "DUNNO".into(), F),
            (
                "WARN",
                Some("$sasl_username"),
                vec![b"sasl_username=bob"],
                "WARN bob".into(),
                E,
            ),
            ("INFO", Some("seen $sender"), vec![], "INFO seen".into(), E),
            (
                "FILTER",
                Some("smtp:[$client_address]:10025"),
                vec![b"client_address=192.0.2.1"],
                "FILTER smtp:[192.0.2.1]:10025".into(),
                E,
            ),
            ("FILTER", Some("$helo_name:x"), vec![], "DUNNO".into(), F),
            (
                "FILTER",
                Some("scan:$helo_name"),
                vec![b"helo_name=a b"],
                "DUNNO".into(),
                F,
            ),
            (
                "FILTER",
                Some("scan:$helo_name"),
                vec![],
                "FILTER scan:".into(),
                E,
            ),
            (
                "PREPEND",
                Some("X-Policy: $rule $sender"),
                vec![],
                "PREPEND X-Policy: r1".into(),
                E,
            ),
            (
                "PREPEND",
                Some("X-Sender: $sender"),
                vec![b"sender=a\r\tX-Evil: 1"],
                "PREPEND X-Sender: a  X-Evil: 1".into(),
                E,
            ),
            (
                "PREPEND",
                Some("X-Empty:$sender"),
                vec![],
                "PREPEND X-Empty:".into(),
                E,
            ),
            (
                "REDIRECT",
                Some("$sender"),
                vec![b"sender=joe@example.com"],
                "REDIRECT joe@example.com".into(),
                E,
            ),
            ("REDIRECT", Some("$sender"), vec![], "DUNNO".into(), F),
            (
                "REDIRECT",
                Some("$sender"),
                vec![b"sender=joe@"],
                "DUNNO".into(),
                F,
            ),
            (
                "REDIRECT",
                Some("$sender"),
                vec![b"sender=@example.com"],
                "DUNNO".into(),
                F,
            ),
            (
                "REDIRECT",
                Some("$sender"),
                vec![b"sender=a\rb@example.com"],
                "DUNNO".into(),
                F,
            ),
            ("REDIRECT", Some("$sender"), vec![long], "DUNNO".into(), F),
            (
                "BCC",
                Some("$recipient_local@archive.example"),
                vec![b"recipient=joe@example.com"],
                "BCC joe@archive.example".into(),
                E,
            ),
            (
                "BCC",
                Some("$recipient_local@archive.example"),
                vec![],
                "DUNNO".into(),
                F,
            ),
        ];
        for (verb, text, lines, expected, outcome) in &rows {
            assert_eq!(
                wire(verb, *text, lines),
                (expected.clone(), *outcome),
                "{verb} {text:?} {lines:?}"
            );
        }
    }

    #[test]
    fn write_wire_appends_without_allocating_when_capacity_suffices() {
        let request = Request::parse(FULL).unwrap();
        let t = ActionTemplate::compile("REJECT", Some("5.7.1 Sender $sender blocked by $rule"))
            .unwrap();
        let mut out = Vec::with_capacity(1024);
        out.extend_from_slice(b"action=");
        let before = out.as_ptr();
        assert_eq!(t.write_wire(&request, "r", &mut out), WireOutcome::Expanded);
        assert_eq!(out.as_ptr(), before);
        assert_eq!(
            out,
            b"action=REJECT 5.7.1 Sender Joe.User@Example.NET blocked by r".as_slice()
        );
    }

    /// Templates of every kind for the property tests.
    const TEMPLATES: &[(&str, &str)] = &[
        ("REJECT", "5.7.1 Sender $sender via $helo_name blocked"),
        ("REJECT", "$sender $recipient"),
        ("REJECT", "5.7.1$sender"),
        ("DEFER", "4.7.1 $client_name"),
        ("DEFER_IF_REJECT", "$sasl_username"),
        ("DEFER_IF_PERMIT", "4.7.0 $rule $sender"),
        ("550", "$sender"),
        ("450", "4.7.1 ${sender_local}@${sender_domain} $recipient"),
        ("421", "$helo_name $helo_name $helo_name"),
        ("HOLD", "$recipient"),
        ("DISCARD", "$sender_domain $rule"),
        ("WARN", "$ccert_subject"),
        ("INFO", "$sender$recipient$helo_name"),
        ("FILTER", "smtp:[$client_name]:$sasl_username"),
        ("FILTER", "$sasl_username:x"),
        ("PREPEND", "X-Policy: $sender $helo_name"),
        ("REDIRECT", "$sender"),
        ("REDIRECT", "${recipient_local}+q@$recipient_domain"),
        ("BCC", "$sasl_username@$helo_name"),
    ];

    fn value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            proptest::collection::vec(
                prop_oneof![
                    Just(b' '),
                    Just(b'@'),
                    Just(b'\r'),
                    Just(b'.'),
                    Just(b'5'),
                    Just(0xc3),
                    Just(0xa9),
                    Just(b'a'),
                    Just(b':')
                ],
                0..20
            ),
            (0usize..600, any::<u8>()).prop_map(|(n, b)| vec![b; n]),
            Just(b"5.7.1".to_vec()),
            Just(b"4.7.1 x".to_vec()),
        ]
        .prop_map(|mut v| {
            v.retain(|&b| b != b'\n');
            v
        })
    }

    #[test]
    fn printable_prefix_every_byte_in_every_lane() {
        for b in 0..=255u8 {
            for lane in 0..17 {
                let mut bytes = vec![b'a'; 17];
                bytes[lane] = b;
                let expected = if is_printable_ascii(b) { 17 } else { lane };
                assert_eq!(
                    printable_ascii_prefix(&bytes),
                    expected,
                    "byte {b:#x} at {lane}"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn printable_prefix_agrees_with_a_byte_loop(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let naive = bytes.iter().position(|&b| !(0x20..0x7f).contains(&b)).unwrap_or(bytes.len());
            prop_assert_eq!(printable_ascii_prefix(&bytes), naive);
        }

        #[test]
        fn write_wire_is_always_a_valid_action(
            sender in value(),
            recipient in value(),
            helo in value(),
            client_name in value(),
            sasl in value(),
            subject in value(),
            rule in "[ -~\u{80}-\u{10ffff}]{0,20}",
        ) {
            let mut frame = b"request=smtpd_access_policy\n".to_vec();
            for (name, value) in [
                (&b"sender"[..], &sender),
                (b"recipient", &recipient),
                (b"helo_name", &helo),
                (b"client_name", &client_name),
                (b"sasl_username", &sasl),
                (b"ccert_subject", &subject),
            ] {
                frame.extend_from_slice(name);
                frame.push(b'=');
                frame.extend_from_slice(value);
                frame.push(b'\n');
            }
            frame.push(b'\n');
            let request = Request::parse(&frame).unwrap();
            for (verb, text) in TEMPLATES {
                let t = ActionTemplate::compile(verb, Some(text));
                prop_assert!(t.is_ok(), "{} {}", verb, text);
                let t = t.unwrap();
                let mut out = Vec::new();
                let outcome = t.write_wire(&request, &rule, &mut out);
                let out = std::str::from_utf8(&out);
                prop_assert!(out.is_ok());
                let out = out.unwrap();
                prop_assert!(!out.contains(['\r', '\n']));
                prop_assert!(!out.chars().any(char::is_control));
                let parsed = Action::parse(out);
                prop_assert!(parsed.is_ok(), "{} {}: {:?} -> {:?}", verb, text, out, parsed);
                let parsed = parsed.unwrap();
                prop_assert_eq!(parsed.to_string(), out);
                // The longest prefix, a space, and the bounded text (`Action::parse`
                // checked the text's own bound).
                prop_assert!(out.len() <= "DEFER_IF_PERMIT 4.999.999 ".len() + MAX_TEXT_BYTES);
                if outcome == WireOutcome::Fallback {
                    prop_assert_eq!(&parsed, t.fallback());
                } else {
                    prop_assert_eq!(parsed.verb(), t.action().verb());
                }
            }
        }

        #[test]
        fn expand_is_sanitized_and_bounded(sender in value(), helo in value(), literal in "[ -#%-~\u{a0}-\u{10ffff}]{0,300}") {
            let mut frame = b"request=smtpd_access_policy\nsender=".to_vec();
            frame.extend_from_slice(&sender);
            frame.extend_from_slice(b"\nhelo_name=");
            frame.extend_from_slice(&helo);
            frame.extend_from_slice(b"\n\n");
            let request = Request::parse(&frame).unwrap();
            let t = Template::parse(&format!("{literal}${{sender}}{literal}${{helo_name}}")).unwrap();
            let mut out = b"x".to_vec();
            let cut = t.expand(&request, "", &mut out);
            let text = std::str::from_utf8(&out[1..]);
            prop_assert!(text.is_ok());
            let text = text.unwrap();
            prop_assert!(text.len() <= MAX_TEXT_BYTES);
            prop_assert!(!text.chars().any(char::is_control));
            prop_assert!(!text.starts_with(' ') && !text.ends_with(' '));
            // Without a cut, the text is the lossy, sanitized concatenation, trimmed.
            if !cut {
                // The request parser drops a CR right before the LF.
                let crless = |v: &[u8]| v.strip_suffix(b"\r").unwrap_or(v).to_vec();
                let clean = |v: Vec<u8>| String::from_utf8_lossy(&v).chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>();
                let expected = format!("{literal}{}{literal}{}", clean(crless(&sender)), clean(crless(&helo)));
                prop_assert_eq!(text, expected.trim_matches(' '));
            }
        }
    }
}
