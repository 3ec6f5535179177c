//! The policy request: a zero-copy view of one complete frame.
//!
//! [`Request::parse`] takes a complete frame (the `name=value\n` lines of one
//! request, as `policy_proto::Framer` yields them; the terminating empty line may
//! be present or not; a CR before each LF is tolerated) and borrows every value
//! from it. Nothing is allocated.

use std::net::IpAddr;

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

/// One parsed policy request. Attributes Postfix did not send, or sent empty, are
/// `None` (numbers, addresses, states) or empty slices (free text).
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
    /// `client_address=`
    pub client_address: Option<IpAddr>,
    /// `client_name=` (`unknown` when the reverse/forward lookup failed)
    pub client_name: &'a [u8],
    /// `client_port=` (Postfix 2.5+)
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
    /// `encryption_keysize=`
    pub encryption_keysize: Option<u32>,
    /// `etrn_domain=`
    pub etrn_domain: &'a [u8],
    /// `stress=` (`yes` under stress)
    pub stress: &'a [u8],
    /// `policy_context=` (Postfix 3.1+)
    pub policy_context: &'a [u8],
    /// `server_address=` (Postfix 3.2+)
    pub server_address: Option<IpAddr>,
    /// `server_port=` (Postfix 3.2+)
    pub server_port: Option<u16>,
    /// `compatibility_level=` (Postfix 3.6+), e.g. `3.6`
    pub compatibility_level: &'a [u8],
    /// `mail_version=` (Postfix 3.6+), e.g. `3.7.11`
    pub mail_version: &'a [u8],
    /// `tls_sni=` (Postfix 3.12+)
    pub tls_sni: &'a [u8],
    /// The frame the request was parsed from, for [`Request::unknown_attributes`].
    frame: &'a [u8],
}

/// Why a frame is not a valid request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// Placeholder until filled in: replaced by precise variants.
    Invalid(&'static str),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid(what) => write!(f, "invalid request: {what}"),
        }
    }
}

impl std::error::Error for ParseError {}

impl<'a> Request<'a> {
    /// Parse one complete frame. Allocates nothing.
    pub fn parse(frame: &'a [u8]) -> Result<Self, ParseError> {
        let _ = frame;
        todo!("issue 2: nom request parser")
    }

    /// Attributes this version does not know, in the order they were sent.
    pub fn unknown_attributes(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        let _ = self.frame;
        std::iter::empty()
    }
}
