//! SPF, the Sender Policy Framework (RFC 7208): is the client allowed to
//! send mail for the domain of the MAIL FROM address (or of the HELO name)?
//!
//! [`check_host`] evaluates RFC 7208's `check_host()` for an [`SpfInput`]
//! and gives one of the seven [`SpfResult`]s, and for a `fail` the
//! explanation of the domain's `exp=` modifier. It implements the whole of
//! section 4 to 7: record selection, every mechanism and modifier with
//! their CIDR lengths and qualifiers, the macros, and the limits (10
//! DNS-querying terms, 2 void lookups, 10 MX and 10 PTR names).
//!
//! # What it does not do
//!
//! - **No I/O.** It reads DNS through an [`SpfDns`] view that knows an
//!   answer or not yet. At the first answer it lacks, it stops, names every
//!   query it can know of then (the lookup it stopped at, and the direct
//!   lookups of the other terms of the records it has read, within the
//!   limits) and returns [`Evaluation::Pending`]. The caller sends the
//!   queries in parallel, adds the answers to the view, and calls again:
//!   evaluation starts over and goes further (a record has at most 10
//!   DNS-querying terms, so replaying is cheap).
//! - **No clock.** The time of `%{t}` is the input's.
//! - **No default explanation.** Without `exp=` the explanation is empty,
//!   and the caller says what it wants.
//!
//! ```text
//!  SpfInput ──check_host(&input, &dns, needs, &mut explanation)──▶ Evaluation
//!                 ▲ reads answers                │ Pending: queries told to `needs`
//!                 └── the caller's SpfDns ◀──────┘ (answers added, then call again)
//! ```
//!
//! # Why not a crate
//!
//! Looked at: `viaspf` (GPL, and async), `mail-auth` and `mailrs-spf` (an
//! async resolver trait that does the lookups itself, and edition 2024
//! above our rust-version), `decon-spf` (parses records, does not evaluate).
//! None can be driven by answers a caller supplies, so this is written
//! here, sans I/O.
//!
//! # Example
//!
//! ```
//! use policy_core::facts::QueryKind;
//! use policy_core::spf::{check_host, Evaluation, MemoryDns, SpfInput, SpfResult};
//! use policy_core::Timestamp;
//!
//! let input = SpfInput::mail_from(
//!     "192.0.2.10".parse()?,
//!     b"alice@example.org",
//!     b"mail.example.org",
//!     Timestamp::from_unix_millis(0),
//! );
//! let mut dns = MemoryDns::new();
//! let mut explanation = Vec::new();
//! // First round: the record is not known yet, and is asked for.
//! let mut asked = Vec::new();
//! let first = check_host(&input, &dns, &mut |q| asked.push(q.to_string()), &mut explanation);
//! assert_eq!(first, Evaluation::Pending);
//! assert_eq!(asked, ["example.org TXT"]);
//! dns.set_strings(QueryKind::Txt, b"example.org", &[b"v=spf1 ip4:192.0.2.0/24 -all"]);
//! let second = check_host(&input, &dns, &mut |_| {}, &mut explanation);
//! assert_eq!(second, Evaluation::Done(SpfResult::Pass));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::net::IpAddr;

use crate::base::time::Timestamp;

mod dns;
mod eval;
mod header;
mod macros;
mod parse;
#[cfg(test)]
mod tests;

pub use dns::{DnsAnswer, MemoryDns, SpfDns, StringList};
pub use eval::check_host;
pub use header::RECEIVED_SPF_MAX;

/// The result of an SPF check (RFC 7208 section 2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpfResult {
    /// No SPF record, or no valid domain to check.
    None,
    /// The domain's record states nothing about the client.
    Neutral,
    /// The client is authorized.
    Pass,
    /// The client is not authorized.
    Fail,
    /// The client is probably not authorized.
    SoftFail,
    /// A transient DNS error: try again later.
    TempError,
    /// The domain's records are wrong and need a person to fix them.
    PermError,
}

impl SpfResult {
    /// Every result, in declaration order.
    pub const ALL: [Self; 7] = [
        Self::None,
        Self::Neutral,
        Self::Pass,
        Self::Fail,
        Self::SoftFail,
        Self::TempError,
        Self::PermError,
    ];

    /// The result's name in RFC 7208's words (`pass`, `softfail`, ...), as in
    /// a `Received-SPF:` header.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Neutral => "neutral",
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::SoftFail => "softfail",
            Self::TempError => "temperror",
            Self::PermError => "permerror",
        }
    }
}

impl fmt::Display for SpfResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an evaluation got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evaluation {
    /// The result.
    Done(SpfResult),
    /// It waits for answers: the queries were told to `needs`.
    Pending,
}

/// What one SPF check is about: the client address, the identity checked
/// (its local-part and domain), the HELO name, and the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpfInput<'a> {
    client: IpAddr,
    identity: Identity,
    /// The MAIL FROM address as given (empty for the HELO identity).
    mail_from: &'a [u8],
    local: &'a [u8],
    domain: &'a [u8],
    helo: &'a [u8],
    receiver: &'a [u8],
    now: Timestamp,
}

impl<'a> SpfInput<'a> {
    /// Check the MAIL FROM identity (RFC 7208 section 2.4): `mail_from` is
    /// the address without angle brackets. The null sender (empty) checks
    /// `postmaster@` the HELO name instead; an address without a local-part
    /// has `postmaster` as its local-part (section 4.3).
    pub fn mail_from(client: IpAddr, mail_from: &'a [u8], helo: &'a [u8], now: Timestamp) -> Self {
        if mail_from.is_empty() {
            return Self::helo(client, helo, now);
        }
        let (local, domain) = match mail_from.iter().rposition(|&b| b == b'@') {
            Some(at) => (
                mail_from.get(..at).unwrap_or_default(),
                mail_from.get(at + 1..).unwrap_or_default(),
            ),
            None => (&b""[..], mail_from),
        };
        let local = if local.is_empty() {
            b"postmaster"
        } else {
            local
        };
        Self {
            identity: Identity::MailFrom,
            mail_from,
            ..Self::new(client, local, domain, helo, now)
        }
    }

    /// Check the HELO identity (section 2.3): `postmaster@` the HELO name.
    pub fn helo(client: IpAddr, helo: &'a [u8], now: Timestamp) -> Self {
        Self::new(client, b"postmaster", helo, helo, now)
    }

    /// A HELO identity check; [`SpfInput::mail_from`] makes it a MAIL FROM
    /// one.
    fn new(
        client: IpAddr,
        local: &'a [u8],
        domain: &'a [u8],
        helo: &'a [u8],
        now: Timestamp,
    ) -> Self {
        // Section 5: an IPv4-mapped IPv6 client is an IPv4 client.
        let client = match client {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(client, IpAddr::V4),
            IpAddr::V4(_) => client,
        };
        let domain = domain.strip_suffix(b".").unwrap_or(domain);
        Self {
            client,
            identity: Identity::Helo,
            mail_from: b"",
            local,
            domain,
            helo,
            receiver: b"",
            now,
        }
    }

    /// The receiving host's name, for `%{r}` in explanations (`unknown`
    /// when not set).
    #[must_use]
    pub fn with_receiver(mut self, receiver: &'a [u8]) -> Self {
        self.receiver = receiver;
        self
    }

    /// The domain checked (`%{o}`).
    pub fn domain(&self) -> &'a [u8] {
        self.domain
    }

    /// The identity checked: MAIL FROM, or HELO (also for the null sender).
    pub fn identity(&self) -> Identity {
        self.identity
    }
}

/// The identity an SPF check is of (RFC 7208 section 2.3 and 2.4), as a
/// `Received-SPF:` header's `identity=` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Identity {
    /// The MAIL FROM address (`mailfrom`).
    MailFrom,
    /// The HELO name (`helo`): checked for the null sender.
    Helo,
}

impl Identity {
    /// The name a `Received-SPF:` header gives it: `mailfrom` or `helo`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MailFrom => "mailfrom",
            Self::Helo => "helo",
        }
    }
}
