//! The policy request: a zero-copy view of one complete frame.
//!
//! [`Request::parse`] takes a complete frame (the `name=value` lines of one
//! request, as `policy_proto::Framer` yields them) and borrows every value from
//! it. Nothing is allocated, and nothing is copied. A mail server embedding
//! the engine can instead build a [`Request`] from its own SMTP state, field by
//! field (see [`Request`]).
//!
//! # Grammar
//!
//! The frame is parsed with nom, one function per rule below (ABNF, RFC 5234).
//! `request` is the loop of [`Request::parse_with`], which also counts lines
//! so that errors can name the one at fault.
//!
//! ```text
//! request   = *attribute [ end ]           ; nothing may follow `end`
//! attribute = name "=" value [ CR ] LF     ; a CR directly before LF is not part of value
//! end       = [ CR ] LF                    ; the empty line; optional in a frame
//! name      = 1*( ALPHA / DIGIT / "_" / "-" / "." )
//! value     = *( %x00-09 / %x0B-FF )       ; any byte but LF; need not be UTF-8
//! ```
//!
//! Postfix writes names in lower case with `_`; `-` and `.` are allowed for
//! other clients' extension attributes. Known names are matched exactly
//! (case-sensitively): `Sender=` is an unknown attribute, not `sender=`.
//!
//! # Decisions (strict by default, relaxed through [`ParseOptions`])
//!
//! - **Missing `request=`** is [`ParseError::MissingRequest`]. A `request=`
//!   other than `smtpd_access_policy` is [`ParseError::UnsupportedRequest`]: it
//!   is another protocol, not ours ([`ParseOptions::allow_any_request_type`]
//!   relaxes this).
//! - **A known attribute sent twice** is [`ParseError::DuplicateAttribute`]:
//!   Postfix never does it, so a duplicate means a confused or hostile client,
//!   and picking either copy silently could make two components disagree about
//!   one request. [`ParseOptions::allow_duplicates`] makes the last one win.
//!   Unknown attributes may repeat; all copies are kept, in order.
//! - **Empty values** are absent: `None` for typed fields, an empty slice for
//!   text fields. Postfix 3.x sends every attribute it knows, empty when it has
//!   no value.
//! - **Numbers** are unsigned decimal digits only (no sign, no spaces); a value
//!   that is not one, or overflows, is [`ParseError::InvalidValue`] naming the
//!   attribute.
//! - **IP addresses** (`client_address`, `server_address`) are in the form
//!   Postfix prints: dotted quad or RFC 4291 text, without brackets and without
//!   the `IPv6:` tag (that tag belongs to SMTP address literals, never to these
//!   attributes, so a value carrying it is refused rather than guessed at). An
//!   IPv6 zone (`fe80::1%eth0`) is dropped from the typed value (the raw bytes
//!   stay available through [`Request::get`]). The value `unknown`, which
//!   Postfix sends when the peer address could not be determined (a client gone
//!   before smtpd looked, or `XCLIENT ADDR=[UNAVAILABLE]`), is `None`, as is
//!   `unknown` for the ports.
//! - **`protocol_state`** is matched case-sensitively against the upper-case
//!   names Postfix sends; anything else is kept as [`ProtocolState::Other`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use nom::character::complete::char;
use nom::error::{Error as NomError, ErrorKind};
use nom::sequence::terminated;
use nom::IResult;

use crate::base::attr::is_name_byte;
use crate::base::bytes::find_byte;

/// The only `request=` value Postfix sends on a policy connection.
pub const SMTPD_ACCESS_POLICY: &[u8] = b"smtpd_access_policy";

pub(crate) use crate::base::attr::{is_known_attribute, KNOWN_ATTRIBUTES};

/// A known attribute; the discriminant is its index in [`KNOWN_ATTRIBUTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Request,
    ProtocolState,
    ProtocolName,
    HeloName,
    QueueId,
    Sender,
    Recipient,
    RecipientCount,
    ClientAddress,
    ClientName,
    ReverseClientName,
    Instance,
    SaslMethod,
    SaslUsername,
    SaslSender,
    Size,
    CcertSubject,
    CcertIssuer,
    CcertFingerprint,
    EncryptionProtocol,
    EncryptionCipher,
    EncryptionKeysize,
    EtrnDomain,
    Stress,
    CcertPubkeyFingerprint,
    ClientPort,
    PolicyContext,
    ServerAddress,
    ServerPort,
    CompatibilityLevel,
    MailVersion,
    TlsSni,
}

impl Known {
    /// The known attribute called `name`. Dispatches on the length first, then
    /// compares against the few names of that length: no chain of 32 compares.
    fn lookup(name: &[u8]) -> Option<Self> {
        let known = match name.len() {
            4 => match name {
                b"size" => Self::Size,
                _ => return None,
            },
            6 => match name {
                b"sender" => Self::Sender,
                b"stress" => Self::Stress,
                _ => return None,
            },
            7 => match name {
                b"request" => Self::Request,
                b"tls_sni" => Self::TlsSni,
                _ => return None,
            },
            8 => match name {
                b"queue_id" => Self::QueueId,
                b"instance" => Self::Instance,
                _ => return None,
            },
            9 => match name {
                b"helo_name" => Self::HeloName,
                b"recipient" => Self::Recipient,
                _ => return None,
            },
            11 => match name {
                b"client_name" => Self::ClientName,
                b"sasl_method" => Self::SaslMethod,
                b"sasl_sender" => Self::SaslSender,
                b"etrn_domain" => Self::EtrnDomain,
                b"client_port" => Self::ClientPort,
                b"server_port" => Self::ServerPort,
                _ => return None,
            },
            12 => match name {
                b"ccert_issuer" => Self::CcertIssuer,
                b"mail_version" => Self::MailVersion,
                _ => return None,
            },
            13 => match name {
                b"protocol_name" => Self::ProtocolName,
                b"sasl_username" => Self::SaslUsername,
                b"ccert_subject" => Self::CcertSubject,
                _ => return None,
            },
            14 => match name {
                b"protocol_state" => Self::ProtocolState,
                b"client_address" => Self::ClientAddress,
                b"policy_context" => Self::PolicyContext,
                b"server_address" => Self::ServerAddress,
                _ => return None,
            },
            15 => match name {
                b"recipient_count" => Self::RecipientCount,
                _ => return None,
            },
            17 => match name {
                b"ccert_fingerprint" => Self::CcertFingerprint,
                b"encryption_cipher" => Self::EncryptionCipher,
                _ => return None,
            },
            18 => match name {
                b"encryption_keysize" => Self::EncryptionKeysize,
                _ => return None,
            },
            19 => match name {
                b"reverse_client_name" => Self::ReverseClientName,
                b"encryption_protocol" => Self::EncryptionProtocol,
                b"compatibility_level" => Self::CompatibilityLevel,
                _ => return None,
            },
            24 => match name {
                b"ccert_pubkey_fingerprint" => Self::CcertPubkeyFingerprint,
                _ => return None,
            },
            _ => return None,
        };
        Some(known)
    }

    /// The attribute's name, from [`KNOWN_ATTRIBUTES`].
    fn name(self) -> &'static str {
        KNOWN_ATTRIBUTES[self as usize]
    }
}

/// SMTP protocol state Postfix is in when it asks (`protocol_state=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProtocolState<'a> {
    /// `CONNECT`
    Connect,
    /// `EHLO`
    Ehlo,
    /// `HELO`
    Helo,
    /// `MAIL`
    Mail,
    /// `RCPT`
    Rcpt,
    /// `DATA`
    Data,
    /// `END-OF-MESSAGE`
    EndOfMessage,
    /// `VRFY`
    Vrfy,
    /// `ETRN`
    Etrn,
    /// A state this version does not know, kept verbatim.
    Other(&'a [u8]),
}

impl<'a> ProtocolState<'a> {
    /// The state named by `value`, matched case-sensitively against the
    /// upper-case names Postfix sends; anything else is [`ProtocolState::Other`].
    pub fn from_bytes(value: &'a [u8]) -> Self {
        match value {
            b"RCPT" => Self::Rcpt,
            b"CONNECT" => Self::Connect,
            b"EHLO" => Self::Ehlo,
            b"HELO" => Self::Helo,
            b"MAIL" => Self::Mail,
            b"DATA" => Self::Data,
            b"END-OF-MESSAGE" => Self::EndOfMessage,
            b"VRFY" => Self::Vrfy,
            b"ETRN" => Self::Etrn,
            other => Self::Other(other),
        }
    }

    /// The name as Postfix sends it (`RCPT`, `END-OF-MESSAGE`, ...), or the
    /// verbatim bytes of [`ProtocolState::Other`].
    pub fn as_bytes(&self) -> &'a [u8] {
        match self {
            Self::Connect => b"CONNECT",
            Self::Ehlo => b"EHLO",
            Self::Helo => b"HELO",
            Self::Mail => b"MAIL",
            Self::Rcpt => b"RCPT",
            Self::Data => b"DATA",
            Self::EndOfMessage => b"END-OF-MESSAGE",
            Self::Vrfy => b"VRFY",
            Self::Etrn => b"ETRN",
            Self::Other(other) => other,
        }
    }
}

/// An envelope address split at its last `@`. The domain compares
/// case-insensitively ([`Address::domain_is`]) without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Address<'a> {
    /// The whole address as sent (empty for the null sender `<>`).
    pub raw: &'a [u8],
    /// The part before the last `@` (the whole address when there is no `@`).
    pub local: &'a [u8],
    /// The part after the last `@`, empty when there is none.
    pub domain: &'a [u8],
}

impl<'a> Address<'a> {
    /// Split `raw` at its last `@` (a quoted local part may itself contain
    /// `@`, a domain never does). Without `@`, the whole is the local part.
    pub fn new(raw: &'a [u8]) -> Self {
        match raw.iter().rposition(|&b| b == b'@') {
            Some(at) => Self {
                raw,
                local: &raw[..at],
                domain: &raw[at + 1..],
            },
            None => Self {
                raw,
                local: raw,
                domain: &[],
            },
        }
    }

    /// Whether this is the null address (the empty sender of bounces, `<>`).
    pub fn is_null(&self) -> bool {
        self.raw.is_empty()
    }

    /// Whether the address has a non-empty domain part.
    pub fn has_domain(&self) -> bool {
        !self.domain.is_empty()
    }

    /// Whether the domain is `domain`, ignoring ASCII case. Allocates nothing.
    ///
    /// `Address::new(b"joe@Example.COM").domain_is(b"example.com")` is true.
    pub fn domain_is(&self, domain: &[u8]) -> bool {
        self.domain.eq_ignore_ascii_case(domain)
    }

    /// Whether the domain is `parent` or a subdomain of it, ignoring ASCII
    /// case and respecting label boundaries: `mail.example.com` is within
    /// `example.com`, `badexample.com` is not. An empty `parent` matches
    /// nothing. Allocates nothing.
    pub fn domain_is_within(&self, parent: &[u8]) -> bool {
        let domain = self.domain;
        if parent.is_empty() || domain.len() < parent.len() {
            return false;
        }
        let split = domain.len() - parent.len();
        domain[split..].eq_ignore_ascii_case(parent) && (split == 0 || domain[split - 1] == b'.')
    }
}

/// Relaxations of the strict default parse. `ParseOptions::default()` is strict.
///
/// Each `allow_*` setter removes a check that protects against confused or
/// hostile clients; none of them changes memory or time costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ParseOptions {
    allow_duplicates: bool,
    allow_any_request_type: bool,
}

impl ParseOptions {
    /// The strict defaults: duplicates refused, only `request=smtpd_access_policy`.
    pub const fn new() -> Self {
        Self {
            allow_duplicates: false,
            allow_any_request_type: false,
        }
    }

    /// Accept a known attribute sent more than once; the last one wins.
    /// Postfix never sends duplicates, so this only helps hand-written clients.
    #[must_use]
    pub const fn allow_duplicates(mut self, allow: bool) -> Self {
        self.allow_duplicates = allow;
        self
    }

    /// Accept any non-empty `request=` value, not just `smtpd_access_policy`
    /// (it stays in [`Request::request`] for the caller to inspect).
    #[must_use]
    pub const fn allow_any_request_type(mut self, allow: bool) -> Self {
        self.allow_any_request_type = allow;
        self
    }
}

/// One policy request. Attributes Postfix did not send, or sent empty, are
/// `None` (numbers, addresses, states) or empty slices (free text).
///
/// [`Request::parse`] fills it from a frame and borrows that frame (kept in
/// [`Request::frame`] for [`Request::attributes`],
/// [`Request::unknown_attributes`] and [`Request::get`]); equality compares
/// that frame too, so two parsed requests are equal only if their bytes were.
///
/// A mail server that embeds the engine can also build one directly from its
/// own SMTP state, with no bytes to encode and parse again: set the fields it
/// knows and take the rest from [`Request::default`]. Always end the literal
/// with `..Request::default()`: a later version adds a field for each new
/// attribute Postfix sends. A built request decides as the parsed request
/// with the same field values does; only a template that shows the raw text
/// of a typed value left `None` (`$client_address` for `unknown`) reads
/// [`Request::frame`] instead, and finds it empty.
///
/// ```
/// use policy_core::SMTPD_ACCESS_POLICY;
/// use policy_core::{Address, ProtocolState, Request};
///
/// // The SMTP session at `RCPT TO`, from the server's own state.
/// let request = Request {
///     request: SMTPD_ACCESS_POLICY,
///     protocol_state: Some(ProtocolState::Rcpt),
///     client_address: Some([192, 0, 2, 7].into()),
///     helo_name: b"mail.example.org",
///     sender: Address::new(b"joe@example.org"),
///     recipient: Address::new(b"bob@example.net"),
///     ..Request::default()
/// };
/// assert!(request.sender.domain_is(b"EXAMPLE.org"));
/// // No frame: the attribute iterators and `get` have nothing to read.
/// assert_eq!(request.get(b"sender"), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request<'a> {
    /// `request=`: always `smtpd_access_policy` from Postfix.
    pub request: &'a [u8],
    /// `protocol_state=`
    pub protocol_state: Option<ProtocolState<'a>>,
    /// `protocol_name=`: `SMTP`, `ESMTP`, `LMTP`...
    pub protocol_name: &'a [u8],
    /// `helo_name=`
    pub helo_name: &'a [u8],
    /// `queue_id=` (usually empty at RCPT)
    pub queue_id: &'a [u8],
    /// `sender=` (the null sender is an empty address)
    pub sender: Address<'a>,
    /// `recipient=`
    pub recipient: Address<'a>,
    /// `recipient_count=` (non-zero only at DATA and END-OF-MESSAGE)
    pub recipient_count: Option<u32>,
    /// `client_address=` (`None` when empty or `unknown`)
    pub client_address: Option<IpAddr>,
    /// `client_name=` (`unknown` when the reverse/forward lookup failed)
    pub client_name: &'a [u8],
    /// `client_port=` (Postfix 3.0+; `None` when empty or `unknown`)
    pub client_port: Option<u16>,
    /// `reverse_client_name=`
    pub reverse_client_name: &'a [u8],
    /// `instance=`: identifies the message within the SMTP session
    pub instance: &'a [u8],
    /// `sasl_method=`
    pub sasl_method: &'a [u8],
    /// `sasl_username=`
    pub sasl_username: &'a [u8],
    /// `sasl_sender=`
    pub sasl_sender: &'a [u8],
    /// `size=`: the SIZE= hint, exact at END-OF-MESSAGE
    pub size: Option<u64>,
    /// `ccert_subject=`
    pub ccert_subject: &'a [u8],
    /// `ccert_issuer=`
    pub ccert_issuer: &'a [u8],
    /// `ccert_fingerprint=`
    pub ccert_fingerprint: &'a [u8],
    /// `ccert_pubkey_fingerprint=` (Postfix 2.9+)
    pub ccert_pubkey_fingerprint: &'a [u8],
    /// `encryption_protocol=`
    pub encryption_protocol: &'a [u8],
    /// `encryption_cipher=`
    pub encryption_cipher: &'a [u8],
    /// `encryption_keysize=` (`0` without TLS)
    pub encryption_keysize: Option<u32>,
    /// `etrn_domain=`
    pub etrn_domain: &'a [u8],
    /// `stress=` (`yes` under stress)
    pub stress: &'a [u8],
    /// `policy_context=` (Postfix 3.1+)
    pub policy_context: &'a [u8],
    /// `server_address=` (Postfix 3.2+; `None` when empty or `unknown`)
    pub server_address: Option<IpAddr>,
    /// `server_port=` (Postfix 3.2+; `None` when empty or `unknown`)
    pub server_port: Option<u16>,
    /// `compatibility_level=` (Postfix 3.8+), e.g. `3.6`
    pub compatibility_level: &'a [u8],
    /// `mail_version=` (Postfix 3.8+), e.g. `3.8.0`
    pub mail_version: &'a [u8],
    /// `tls_sni=` (Postfix 3.12+)
    pub tls_sni: &'a [u8],
    /// The frame the request was parsed from, as the framer yielded it:
    /// where [`Request::attributes`], [`Request::unknown_attributes`] and
    /// [`Request::get`] look, so that attributes without a field here (an
    /// extension's, a newer Postfix's) stay available, and the raw text of a
    /// typed value (`unknown` for an address) too. The typed fields are never
    /// read from it after parsing.
    ///
    /// Empty for a request built field by field (`..Request::default()`).
    /// Such a request may give a policy attributes that have no field here by
    /// setting it to their `name=value` lines, each ended by LF.
    pub frame: &'a [u8],
}

/// Why a frame is not a valid request. Line numbers count from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// The last line of the frame does not end with LF.
    UnterminatedLine {
        /// The line without LF.
        line: usize,
    },
    /// Bytes follow the empty line that ends the request.
    TrailingData {
        /// The first line after the empty line.
        line: usize,
    },
    /// A line has no `=` between name and value.
    MissingEquals {
        /// The offending line.
        line: usize,
    },
    /// A line starts with `=`: the attribute has no name.
    EmptyName {
        /// The offending line.
        line: usize,
    },
    /// An attribute name has a byte other than ASCII letters, digits, `_`,
    /// `-` and `.`.
    InvalidName {
        /// The offending line.
        line: usize,
    },
    /// The frame has no `request=` attribute.
    MissingRequest,
    /// `request=` is not `smtpd_access_policy` (see
    /// [`ParseOptions::allow_any_request_type`]).
    UnsupportedRequest,
    /// A known attribute was sent twice (see [`ParseOptions::allow_duplicates`]).
    DuplicateAttribute(&'static str),
    /// A known attribute's value does not have the expected form.
    InvalidValue {
        /// The attribute's name.
        attribute: &'static str,
        /// What its value should have been.
        expected: &'static str,
    },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnterminatedLine { line } => {
                write!(f, "line {line}: expected LF at the end of the line")
            }
            Self::TrailingData { line } => {
                write!(f, "line {line}: expected nothing after the empty line")
            }
            Self::MissingEquals { line } => write!(f, "line {line}: expected `name=value`"),
            Self::EmptyName { line } => {
                write!(f, "line {line}: expected an attribute name before `=`")
            }
            Self::InvalidName { line } => write!(
                f,
                "line {line}: expected an attribute name of ASCII letters, digits, `_`, `-` or `.`"
            ),
            Self::MissingRequest => f.write_str("expected a `request=` attribute"),
            Self::UnsupportedRequest => f.write_str("expected `request=smtpd_access_policy`"),
            Self::DuplicateAttribute(name) => {
                write!(f, "attribute `{name}` sent twice, expected once")
            }
            Self::InvalidValue {
                attribute,
                expected,
            } => write!(f, "attribute `{attribute}`: expected {expected}"),
        }
    }
}

impl std::error::Error for ParseError {}

// ---------------------------------------------------------------------------
// Grammar rules, one function each.

fn fail<T>(input: &[u8], kind: ErrorKind) -> IResult<&[u8], T> {
    Err(nom::Err::Error(NomError::new(input, kind)))
}

/// `name = 1*( ALPHA / DIGIT / "_" / "-" / "." )`, with the [`Known`]
/// attribute it names, if any.
///
/// Takes the bytes before the next `=` and checks them: a known name is valid
/// by construction (it was compared in full), any other is checked byte by
/// byte. Accepts exactly what `take_while1(is_name_byte)` followed by `=`
/// accepts, without a per-byte predicate for the names Postfix sends. (On a
/// line without `=` the scan runs on into later lines; the name then holds an
/// LF, fails the check, and the error path names the line.)
fn name(input: &[u8]) -> IResult<&[u8], (&[u8], Option<Known>)> {
    let end = find_byte(input, b'=').unwrap_or(input.len());
    let (name, rest) = input.split_at(end);
    if name.is_empty() {
        return fail(input, ErrorKind::TakeWhile1);
    }
    let known = Known::lookup(name);
    if known.is_none() && !name.iter().all(|&b| is_name_byte(b)) {
        return fail(input, ErrorKind::TakeWhile1);
    }
    Ok((rest, (name, known)))
}

/// `value = *( %x00-09 / %x0B-FF )`: every byte up to the LF. A CR directly
/// before the LF is part of `[ CR ] LF`, and [`attribute`] removes it.
fn value(input: &[u8]) -> IResult<&[u8], &[u8]> {
    match find_byte(input, b'\n') {
        Some(lf) => Ok((&input[lf..], &input[..lf])),
        None => fail(input, ErrorKind::TakeUntil),
    }
}

/// One attribute line, parsed.
#[derive(Debug, Clone, Copy)]
struct Attribute<'a> {
    name: &'a [u8],
    value: &'a [u8],
    known: Option<Known>,
}

/// `attribute = name "=" value [ CR ] LF`
fn attribute(input: &[u8]) -> IResult<&[u8], Attribute<'_>> {
    let (input, (name, known)) = terminated(name, char('='))(input)?;
    let (input, value) = terminated(value, char('\n'))(input)?;
    let value = value.strip_suffix(b"\r").unwrap_or(value);
    Ok((input, Attribute { name, value, known }))
}

/// `end = [ CR ] LF`: the empty line that closes a request; what follows
/// it. Tried before every line, so written out rather than combined from
/// nom parsers (whose inlining the compiler may decline).
#[inline]
fn end(input: &[u8]) -> Option<&[u8]> {
    input
        .strip_prefix(b"\r\n")
        .or_else(|| input.strip_prefix(b"\n"))
}

/// Why `input` (starting at line `number`) matches neither [`end`] nor
/// [`attribute`]; only called on the error path.
fn diagnose(input: &[u8], number: usize) -> ParseError {
    let Some(lf) = input.iter().position(|&b| b == b'\n') else {
        return ParseError::UnterminatedLine { line: number };
    };
    let line = &input[..lf];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match line.iter().position(|&b| b == b'=') {
        Some(0) => ParseError::EmptyName { line: number },
        Some(_) => ParseError::InvalidName { line: number },
        None if line.iter().copied().all(is_name_byte) => {
            ParseError::MissingEquals { line: number }
        }
        None => ParseError::InvalidName { line: number },
    }
}

// ---------------------------------------------------------------------------
// Typed values.

const EXPECTED_U32: &str = "a decimal number from 0 to 4294967295";
const EXPECTED_U64: &str = "a decimal number from 0 to 18446744073709551615";
const EXPECTED_PORT: &str = "a port number from 0 to 65535, or `unknown`";
const EXPECTED_IP: &str = "an IPv4 or IPv6 address without brackets, or `unknown`";

/// Postfix's word for a client attribute it could not determine.
const UNKNOWN: &[u8] = b"unknown";

/// The most digits a number attribute may have: `u64::MAX` has 20. Longer
/// values cannot fit (leading zeros aside, which Postfix never sends), so
/// refusing them early bounds the work a hostile value can cause.
const MAX_DECIMAL_DIGITS: usize = 20;

/// The longest IP address text accepted: 45 bytes is the longest IPv6 text
/// form (eight groups, or six plus an embedded IPv4 address).
const MAX_IP_TEXT_BYTES: usize = 45;

/// Unsigned decimal digits up to `max`; `None` if not that.
fn decimal(value: &[u8], max: u64) -> Option<u64> {
    if value.is_empty() || value.len() > MAX_DECIMAL_DIGITS {
        return None;
    }
    let mut n: u64 = 0;
    for &b in value {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(digit))?;
    }
    (n <= max).then_some(n)
}

fn number_u32(value: &[u8], attribute: &'static str) -> Result<Option<u32>, ParseError> {
    if value.is_empty() {
        return Ok(None);
    }
    decimal(value, u64::from(u32::MAX))
        .and_then(|n| u32::try_from(n).ok())
        .map(Some)
        .ok_or(ParseError::InvalidValue {
            attribute,
            expected: EXPECTED_U32,
        })
}

fn number_u64(value: &[u8], attribute: &'static str) -> Result<Option<u64>, ParseError> {
    if value.is_empty() {
        return Ok(None);
    }
    decimal(value, u64::MAX)
        .map(Some)
        .ok_or(ParseError::InvalidValue {
            attribute,
            expected: EXPECTED_U64,
        })
}

fn port(value: &[u8], attribute: &'static str) -> Result<Option<u16>, ParseError> {
    if value.is_empty() || value == UNKNOWN {
        return Ok(None);
    }
    decimal(value, u64::from(u16::MAX))
        .and_then(|n| u16::try_from(n).ok())
        .map(Some)
        .ok_or(ParseError::InvalidValue {
            attribute,
            expected: EXPECTED_PORT,
        })
}

fn ip_address(value: &[u8], attribute: &'static str) -> Result<Option<IpAddr>, ParseError> {
    if value.is_empty() || value == UNKNOWN {
        return Ok(None);
    }
    if let Some(v4) = dotted_quad(value) {
        return Ok(Some(IpAddr::V4(v4)));
    }
    let invalid = ParseError::InvalidValue {
        attribute,
        expected: EXPECTED_IP,
    };
    // Drop an IPv6 zone (`fe80::1%eth0`): `IpAddr` cannot hold it. A `%` in
    // anything that is not IPv6 text stays and fails the parse below.
    let text = match value.iter().position(|&b| b == b'%') {
        Some(percent) if value[..percent].contains(&b':') && percent + 1 < value.len() => {
            &value[..percent]
        }
        _ => value,
    };
    if text.len() > MAX_IP_TEXT_BYTES {
        return Err(invalid);
    }
    let text = std::str::from_utf8(text).map_err(|_| invalid)?;
    text.parse::<IpAddr>().map(Some).map_err(|_| invalid)
}

/// Fast path for the common case, a plain dotted quad: four decimal octets
/// 0-255 without leading zeros. Accepts only what `Ipv4Addr::from_str`
/// accepts (anything else, valid or not, is left to it), at a tenth of the
/// cost of UTF-8 validation plus the general parser.
fn dotted_quad(value: &[u8]) -> Option<Ipv4Addr> {
    // "255.255.255.255" is the longest dotted quad.
    if value.len() > 15 {
        return None;
    }
    let mut octets = [0u8; 4];
    let mut index = 0;
    // At most three digits, so at most 999: fits.
    let mut octet: u16 = 0;
    let mut digits = 0;
    for &b in value {
        if b == b'.' {
            if digits == 0 || index == 3 {
                return None;
            }
            octets[index] = u8::try_from(octet).ok()?;
            index += 1;
            octet = 0;
            digits = 0;
        } else {
            let digit = b.wrapping_sub(b'0');
            // Not a digit, a fourth digit, or a digit after a leading zero.
            if digit > 9 || digits == 3 || (digits == 1 && octet == 0) {
                return None;
            }
            octet = octet * 10 + u16::from(digit);
            digits += 1;
        }
    }
    if digits == 0 || index != 3 {
        return None;
    }
    octets[3] = u8::try_from(octet).ok()?;
    Some(Ipv4Addr::from(octets))
}

fn non_empty(value: &[u8]) -> Option<&[u8]> {
    (!value.is_empty()).then_some(value)
}

// ---------------------------------------------------------------------------
// The request.

impl<'a> Request<'a> {
    /// Parse one complete frame with the strict defaults. Allocates nothing.
    ///
    /// ```
    /// use policy_core::{ProtocolState, Request};
    ///
    /// let frame = b"request=smtpd_access_policy\nprotocol_state=RCPT\n\
    ///               sender=joe@Example.ORG\nclient_address=192.0.2.7\n\n";
    /// let request = Request::parse(frame).unwrap();
    /// assert_eq!(request.protocol_state, Some(ProtocolState::Rcpt));
    /// assert!(request.sender.domain_is(b"example.org"));
    /// assert_eq!(request.client_address, Some([192, 0, 2, 7].into()));
    /// ```
    pub fn parse(frame: &'a [u8]) -> Result<Self, ParseError> {
        Self::parse_with(frame, ParseOptions::new())
    }

    /// Parse one complete frame with `options`. Allocates nothing.
    pub fn parse_with(frame: &'a [u8], options: ParseOptions) -> Result<Self, ParseError> {
        let mut request = Self {
            frame,
            ..Self::default()
        };
        let mut seen: u64 = 0;
        let mut input = frame;
        let mut number = 0;
        while !input.is_empty() {
            number += 1;
            if let Some(rest) = end(input) {
                if !rest.is_empty() {
                    return Err(ParseError::TrailingData { line: number + 1 });
                }
                break;
            }
            let Ok((rest, attribute)) = attribute(input) else {
                return Err(diagnose(input, number));
            };
            if let Some(known) = attribute.known {
                request.set(known, attribute.value, &mut seen, options)?;
            }
            input = rest;
        }
        if seen & (1 << Known::Request as u32) == 0 {
            return Err(ParseError::MissingRequest);
        }
        let accepted = if options.allow_any_request_type {
            !request.request.is_empty()
        } else {
            request.request == SMTPD_ACCESS_POLICY
        };
        if !accepted {
            return Err(ParseError::UnsupportedRequest);
        }
        request.frame = frame;
        Ok(request)
    }

    /// Store one known attribute. `seen` has one bit per known attribute, set
    /// once it was stored (to refuse duplicates). Unknown attributes are not
    /// stored: they stay in the frame, and `unknown_attributes` finds them
    /// again when asked.
    fn set(
        &mut self,
        known: Known,
        value: &'a [u8],
        seen: &mut u64,
        options: ParseOptions,
    ) -> Result<(), ParseError> {
        let bit = 1u64 << (known as u32);
        if *seen & bit != 0 && !options.allow_duplicates {
            return Err(ParseError::DuplicateAttribute(known.name()));
        }
        *seen |= bit;
        let attribute = known.name();
        match known {
            Known::Request => self.request = value,
            Known::ProtocolState => {
                self.protocol_state = non_empty(value).map(ProtocolState::from_bytes);
            }
            Known::ProtocolName => self.protocol_name = value,
            Known::HeloName => self.helo_name = value,
            Known::QueueId => self.queue_id = value,
            Known::Sender => self.sender = Address::new(value),
            Known::Recipient => self.recipient = Address::new(value),
            Known::RecipientCount => self.recipient_count = number_u32(value, attribute)?,
            Known::ClientAddress => self.client_address = ip_address(value, attribute)?,
            Known::ClientName => self.client_name = value,
            Known::ReverseClientName => self.reverse_client_name = value,
            Known::Instance => self.instance = value,
            Known::SaslMethod => self.sasl_method = value,
            Known::SaslUsername => self.sasl_username = value,
            Known::SaslSender => self.sasl_sender = value,
            Known::Size => self.size = number_u64(value, attribute)?,
            Known::CcertSubject => self.ccert_subject = value,
            Known::CcertIssuer => self.ccert_issuer = value,
            Known::CcertFingerprint => self.ccert_fingerprint = value,
            Known::EncryptionProtocol => self.encryption_protocol = value,
            Known::EncryptionCipher => self.encryption_cipher = value,
            Known::EncryptionKeysize => self.encryption_keysize = number_u32(value, attribute)?,
            Known::EtrnDomain => self.etrn_domain = value,
            Known::Stress => self.stress = value,
            Known::CcertPubkeyFingerprint => self.ccert_pubkey_fingerprint = value,
            Known::ClientPort => self.client_port = port(value, attribute)?,
            Known::PolicyContext => self.policy_context = value,
            Known::ServerAddress => self.server_address = ip_address(value, attribute)?,
            Known::ServerPort => self.server_port = port(value, attribute)?,
            Known::CompatibilityLevel => self.compatibility_level = value,
            Known::MailVersion => self.mail_version = value,
            Known::TlsSni => self.tls_sni = value,
        }
        Ok(())
    }

    /// Every attribute of the frame, known or not, in the order sent, as
    /// `(name, value)` with the value's trailing CR removed. Re-scans the
    /// frame; allocates nothing.
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes { rest: self.frame }
    }

    /// Attributes this version does not know (not in [`KNOWN_ATTRIBUTES`]), in
    /// the order they were sent, repeats included. Re-scans the frame lazily;
    /// allocates nothing.
    pub fn unknown_attributes(&self) -> UnknownAttributes<'a> {
        UnknownAttributes {
            inner: self.attributes(),
        }
    }

    /// The raw value of the attribute `name` (known or unknown), as sent; the
    /// last occurrence if it was sent more than once. `None` if it was not
    /// sent. Re-scans the frame; allocates nothing.
    ///
    /// For known attributes this is the text before typing: `get(b"size")`
    /// gives `Some(b"1024")` where [`Request::size`] gives `Some(1024)`.
    pub fn get(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.attributes()
            .filter(|&(n, _)| n == name)
            .last()
            .map(|(_, v)| v)
    }
}

/// Iterator over every `(name, value)` of a request, from [`Request::attributes`].
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Attributes<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        match attribute(self.rest) {
            Ok((rest, attribute)) => {
                self.rest = rest;
                Some((attribute.name, attribute.value))
            }
            // The end line, the end of the frame, or (never for a parsed
            // frame) a malformed line: stop, and stay stopped.
            Err(_) => {
                self.rest = &[];
                None
            }
        }
    }
}

impl std::iter::FusedIterator for Attributes<'_> {}

/// Iterator over unknown `(name, value)` pairs, from [`Request::unknown_attributes`].
#[derive(Debug, Clone)]
pub struct UnknownAttributes<'a> {
    inner: Attributes<'a>,
}

impl<'a> Iterator for UnknownAttributes<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        self.inner
            .by_ref()
            .find(|(name, _)| !is_known_attribute(name))
    }
}

impl std::iter::FusedIterator for UnknownAttributes<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const REQ: &str = "request=smtpd_access_policy\n";

    fn frame(body: &str) -> Vec<u8> {
        format!("{REQ}{body}").into_bytes()
    }

    #[test]
    fn grammar_errors_table() {
        let rows: &[(&[u8], ParseError)] = &[
            (b"", ParseError::MissingRequest),
            (b"\n", ParseError::MissingRequest),
            (b"sender=a@b\n\n", ParseError::MissingRequest),
            (
                b"request=smtpd_access_policy",
                ParseError::UnterminatedLine { line: 1 },
            ),
            (
                b"request=smtpd_access_policy\nsender=x",
                ParseError::UnterminatedLine { line: 2 },
            ),
            (
                b"request=smtpd_access_policy\n\nsender=x\n",
                ParseError::TrailingData { line: 3 },
            ),
            (
                b"request=smtpd_access_policy\n\n\n",
                ParseError::TrailingData { line: 3 },
            ),
            (b"request\n", ParseError::MissingEquals { line: 1 }),
            (
                b"request=smtpd_access_policy\nsender\n",
                ParseError::MissingEquals { line: 2 },
            ),
            (b"=x\n", ParseError::EmptyName { line: 1 }),
            (b"send er=x\n", ParseError::InvalidName { line: 1 }),
            (b"s\xc3\xa9nder=x\n", ParseError::InvalidName { line: 1 }),
            (b"name with space\n", ParseError::InvalidName { line: 1 }),
            (b"a\rb=c\n", ParseError::InvalidName { line: 1 }),
            (b"request=other\n", ParseError::UnsupportedRequest),
            (b"request=\n", ParseError::UnsupportedRequest),
            (
                b"request=smtpd_access_policy\nrequest=smtpd_access_policy\n",
                ParseError::DuplicateAttribute("request"),
            ),
        ];
        for (input, expected) in rows {
            assert_eq!(
                Request::parse(input),
                Err(*expected),
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn invalid_values_table() {
        let rows: &[(&str, &str, &str)] = &[
            ("recipient_count=x", "recipient_count", EXPECTED_U32),
            ("recipient_count=-1", "recipient_count", EXPECTED_U32),
            (
                "recipient_count=4294967296",
                "recipient_count",
                EXPECTED_U32,
            ),
            ("recipient_count= 1", "recipient_count", EXPECTED_U32),
            ("size=1.5", "size", EXPECTED_U64),
            ("size=18446744073709551616", "size", EXPECTED_U64),
            ("size=+1", "size", EXPECTED_U64),
            ("encryption_keysize=abc", "encryption_keysize", EXPECTED_U32),
            ("client_port=65536", "client_port", EXPECTED_PORT),
            ("client_port=-", "client_port", EXPECTED_PORT),
            ("server_port=http", "server_port", EXPECTED_PORT),
            ("client_address=999.1.1.1", "client_address", EXPECTED_IP),
            ("client_address=[192.0.2.1]", "client_address", EXPECTED_IP),
            (
                "client_address=IPv6:2001:db8::1",
                "client_address",
                EXPECTED_IP,
            ),
            ("client_address=2001:db8::1%", "client_address", EXPECTED_IP),
            (
                "client_address=192.0.2.1%eth0",
                "client_address",
                EXPECTED_IP,
            ),
            ("client_address=localhost", "client_address", EXPECTED_IP),
            ("server_address=1.2.3", "server_address", EXPECTED_IP),
        ];
        for (line, attribute, expected) in rows {
            let input = frame(&format!("{line}\n"));
            assert_eq!(
                Request::parse(&input),
                Err(ParseError::InvalidValue {
                    attribute,
                    expected
                }),
                "line {line:?}"
            );
        }
    }

    #[test]
    fn typed_values_table() {
        type Check = fn(&Request<'_>) -> bool;
        let rows: &[(&str, Check)] = &[
            ("client_address=192.0.2.1", |r| {
                r.client_address == Some(Ipv4Addr::new(192, 0, 2, 1).into())
            }),
            ("client_address=2001:db8::1", |r| {
                r.client_address == Some(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).into())
            }),
            ("client_address=fe80::1%eth0", |r| {
                r.client_address == Some(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1).into())
            }),
            ("client_address=unknown", |r| r.client_address.is_none()),
            ("client_address=", |r| r.client_address.is_none()),
            ("client_port=unknown", |r| r.client_port.is_none()),
            ("client_port=0", |r| r.client_port == Some(0)),
            ("client_port=65535", |r| r.client_port == Some(65535)),
            ("server_port=25", |r| r.server_port == Some(25)),
            ("server_address=::1", |r| {
                r.server_address == Some(Ipv6Addr::LOCALHOST.into())
            }),
            ("size=", |r| r.size.is_none()),
            ("size=0", |r| r.size == Some(0)),
            ("size=18446744073709551615", |r| r.size == Some(u64::MAX)),
            ("recipient_count=4294967295", |r| {
                r.recipient_count == Some(u32::MAX)
            }),
            ("encryption_keysize=256", |r| {
                r.encryption_keysize == Some(256)
            }),
            ("protocol_state=RCPT", |r| {
                r.protocol_state == Some(ProtocolState::Rcpt)
            }),
            ("protocol_state=END-OF-MESSAGE", |r| {
                r.protocol_state == Some(ProtocolState::EndOfMessage)
            }),
            ("protocol_state=rcpt", |r| {
                r.protocol_state == Some(ProtocolState::Other(b"rcpt"))
            }),
            ("protocol_state=", |r| r.protocol_state.is_none()),
            ("sender=", |r| r.sender.is_null() && !r.sender.has_domain()),
            ("helo_name=h\u{e9}lo", |r| {
                r.helo_name == "h\u{e9}lo".as_bytes()
            }),
            ("stress=yes\r", |r| r.stress == b"yes"),
            ("instance=a\rb", |r| r.instance == b"a\rb"),
            ("tls_sni=mx.example.net", |r| r.tls_sni == b"mx.example.net"),
        ];
        for (line, check) in rows {
            let input = frame(&format!("{line}\n\n"));
            let request = Request::parse(&input).unwrap_or_else(|e| panic!("{line:?}: {e}"));
            assert!(check(&request), "line {line:?}: {request:?}");
        }
    }

    #[test]
    fn find_byte_agrees_with_position() {
        // Neighbours that trip naive word-at-a-time tricks: the needle plus or
        // minus one, the needle with the high bit set, zero and 0xff.
        for needle in [b'\n', b'=', 0u8, 0x80, 0xff] {
            let fillers = [
                needle.wrapping_add(1),
                needle.wrapping_sub(1),
                needle ^ 0x80,
                0,
                0xff,
                b'a',
            ];
            for len in 0..=25 {
                for filler in fillers {
                    for first in 0..=len {
                        // `first == len`: no needle at all.
                        for second in first..=len {
                            let mut hay = vec![filler; len];
                            for at in [first, second] {
                                if at < len {
                                    hay[at] = needle;
                                }
                            }
                            let expected = hay.iter().position(|&b| b == needle);
                            assert_eq!(find_byte(&hay, needle), expected, "{hay:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn dotted_quad_accepts_only_what_std_accepts() {
        let rows = [
            "0.0.0.0",
            "255.255.255.255",
            "192.0.2.1",
            "256.0.0.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "1..2.3",
            "1.2.3.",
            ".1.2.3",
            "1.2.3.4 ",
            "+1.2.3.4",
            "1.2.3.0000",
            "00.0.0.0",
            "1.2.3.a",
        ];
        for text in rows {
            let fast = dotted_quad(text.as_bytes());
            let std = text.parse::<Ipv4Addr>().ok();
            assert!(fast.is_none() || fast == std, "{text}: {fast:?} vs {std:?}");
            if std.is_some() {
                assert_eq!(fast, std, "{text}: fast path missed a plain quad");
            }
        }
        // Every octet value, and every three-character octet spelling.
        for n in 0..=999u32 {
            for text in [
                format!("{n}.1.2.3"),
                format!("{n:03}.1.2.3"),
                format!("1.2.3.{n:02}"),
            ] {
                let fast = dotted_quad(text.as_bytes());
                let std = text.parse::<Ipv4Addr>().ok();
                assert_eq!(fast, std, "{text}");
            }
        }
    }

    #[test]
    fn address_split_table() {
        let rows: &[(&[u8], &[u8], &[u8])] = &[
            (b"", b"", b""),
            (b"joe@example.com", b"joe", b"example.com"),
            (b"\"a@b\"@example.com", b"\"a@b\"", b"example.com"),
            (b"postmaster", b"postmaster", b""),
            (b"joe@", b"joe", b""),
            (b"@example.com", b"", b"example.com"),
        ];
        for (raw, local, domain) in rows {
            let a = Address::new(raw);
            assert_eq!((a.raw, a.local, a.domain), (*raw, *local, *domain));
        }
    }

    #[test]
    fn domain_comparisons_table() {
        let rows: &[(&[u8], &[u8], bool, bool)] = &[
            (b"joe@Example.COM", b"example.com", true, true),
            (b"joe@mail.example.com", b"example.com", false, true),
            (b"joe@MAIL.EXAMPLE.COM", b"Example.Com", false, true),
            (b"joe@badexample.com", b"example.com", false, false),
            (b"joe@example.com", b"", false, false),
            (b"joe", b"", true, false),
            (b"joe@com", b"example.com", false, false),
        ];
        for (raw, domain, is, within) in rows {
            let a = Address::new(raw);
            assert_eq!(a.domain_is(domain), *is, "{raw:?} is {domain:?}");
            assert_eq!(
                a.domain_is_within(domain),
                *within,
                "{raw:?} within {domain:?}"
            );
        }
    }

    #[test]
    fn end_line_optional_and_crlf() {
        let with = Request::parse(b"request=smtpd_access_policy\nsender=a@b\n\n").unwrap();
        let without = Request::parse(b"request=smtpd_access_policy\nsender=a@b\n").unwrap();
        let crlf = Request::parse(b"request=smtpd_access_policy\r\nsender=a@b\r\n\r\n").unwrap();
        assert_eq!(with.sender, without.sender);
        assert_eq!(with.sender, crlf.sender);
        assert_eq!(crlf.request, SMTPD_ACCESS_POLICY);
    }

    #[test]
    fn duplicates_and_request_type_options() {
        let dup = b"request=smtpd_access_policy\nsize=1\nsize=2\n";
        assert_eq!(
            Request::parse(dup),
            Err(ParseError::DuplicateAttribute("size"))
        );
        let relaxed = ParseOptions::new().allow_duplicates(true);
        let r = Request::parse_with(dup, relaxed).unwrap();
        assert_eq!(r.size, Some(2));
        assert_eq!(r.get(b"size"), Some(&b"2"[..]));

        let other = b"request=junk_policy\n";
        let relaxed = ParseOptions::new().allow_any_request_type(true);
        assert_eq!(
            Request::parse_with(other, relaxed).unwrap().request,
            b"junk_policy"
        );
        assert_eq!(
            Request::parse_with(b"request=\n", relaxed),
            Err(ParseError::UnsupportedRequest)
        );
    }

    #[test]
    fn every_known_attribute_is_dispatched_and_checked_once() {
        for name in KNOWN_ATTRIBUTES {
            assert!(is_known_attribute(name.as_bytes()), "{name}");
            let once = frame(&format!("{name}=\n"));
            let once = if name == "request" {
                b"request=smtpd_access_policy\n".to_vec()
            } else {
                once
            };
            let r = Request::parse(&once).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(r.unknown_attributes().count(), 0, "{name}");
            let twice = [once.as_slice(), format!("{name}=\n").as_bytes()].concat();
            assert_eq!(
                Request::parse(&twice),
                Err(ParseError::DuplicateAttribute(name)),
                "{name}"
            );
        }
        let mut sorted = KNOWN_ATTRIBUTES;
        sorted.sort_unstable();
        assert!(sorted.windows(2).all(|w| w[0] != w[1]));
    }

    #[test]
    fn unknown_attributes_in_order_with_repeats() {
        let input = [
            frame("x_one=1\nsender=a@b\nx-two=\nx_one=3\n").as_slice(),
            b"foo.bar=\xff\n\n",
        ]
        .concat();
        let r = Request::parse(&input).unwrap();
        let unknown: Vec<_> = r.unknown_attributes().collect();
        assert_eq!(
            unknown,
            vec![
                (&b"x_one"[..], &b"1"[..]),
                (b"x-two", b""),
                (b"x_one", b"3"),
                (b"foo.bar", b"\xff"),
            ]
        );
        assert_eq!(r.get(b"x_one"), Some(&b"3"[..]));
        assert_eq!(r.get(b"sender"), Some(&b"a@b"[..]));
        assert_eq!(r.get(b"absent"), None);
        assert_eq!(r.attributes().count(), 6);
        assert_eq!(Request::default().unknown_attributes().count(), 0);
    }

    #[test]
    fn protocol_state_round_trips() {
        for name in [
            "CONNECT",
            "EHLO",
            "HELO",
            "MAIL",
            "RCPT",
            "DATA",
            "END-OF-MESSAGE",
            "VRFY",
            "ETRN",
            "BDAT",
        ] {
            let state = ProtocolState::from_bytes(name.as_bytes());
            assert_eq!(state.as_bytes(), name.as_bytes());
            assert_eq!(matches!(state, ProtocolState::Other(_)), name == "BDAT");
        }
    }

    #[test]
    fn display_names_what_was_expected() {
        let rows: &[(ParseError, &str)] = &[
            (
                ParseError::UnterminatedLine { line: 3 },
                "line 3: expected LF at the end of the line",
            ),
            (
                ParseError::TrailingData { line: 4 },
                "line 4: expected nothing after the empty line",
            ),
            (
                ParseError::MissingEquals { line: 1 },
                "line 1: expected `name=value`",
            ),
            (
                ParseError::EmptyName { line: 2 },
                "line 2: expected an attribute name before `=`",
            ),
            (
                ParseError::MissingRequest,
                "expected a `request=` attribute",
            ),
            (
                ParseError::UnsupportedRequest,
                "expected `request=smtpd_access_policy`",
            ),
            (
                ParseError::DuplicateAttribute("size"),
                "attribute `size` sent twice, expected once",
            ),
            (
                ParseError::InvalidValue {
                    attribute: "size",
                    expected: EXPECTED_U64,
                },
                "attribute `size`: expected a decimal number from 0 to 18446744073709551615",
            ),
        ];
        for (error, text) in rows {
            assert_eq!(error.to_string(), *text);
        }
    }
}
