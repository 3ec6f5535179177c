//! The variables a template may name: every request attribute, the derived
//! parts of the addresses, the deciding rule and the facts of a stateful
//! rule; their names, samples, and values for a request.

use std::fmt;
use std::net::IpAddr;

use crate::request::{Request, KNOWN_ATTRIBUTES};

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
    /// `score`: the request's score so far, from the score items that ran
    /// (`4.35`, `-1.5`, `0`).
    Score,
    /// `score_reasons`: what added to the score, `REASON=WEIGHT` joined by
    /// `, ` (`in zen=4.35, no fcrdns=1.5`).
    ScoreReasons,
    /// `dnsbl_reason`: why the deciding rule's DNS list test found a
    /// listing: the list's TXT record, or `listed in NAME (ANSWER)`.
    DnsblReason,
    /// `spf_result`: the SPF result of the request (`pass`, `fail`,
    /// `softfail`, `neutral`, `none`, `temperror`, `permerror`), when the
    /// policy tests it; empty otherwise.
    SpfResult,
    /// `spf_explanation`: the explanation of an SPF `fail` (the domain's
    /// `exp=` text), empty when it has none.
    SpfExplanation,
    /// `received_spf`: the value of a `Received-SPF:` header (RFC 7208
    /// section 9.1) for the SPF result, for `PREPEND Received-SPF:
    /// $received_spf` (see [`SpfInput::received_spf`](crate::spf::SpfInput::received_spf)).
    ReceivedSpf,
}

/// Number of [`Var`] variants.
const VAR_COUNT: usize = KNOWN_ATTRIBUTES.len() + 17;

/// Names of the variables that are not request attributes, in variant order.
const DERIVED_NAMES: [&str; 17] = [
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
    "score",
    "score_reasons",
    "dnsbl_reason",
    "spf_result",
    "spf_explanation",
    "received_spf",
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
        Self::Score,
        Self::ScoreReasons,
        Self::DnsblReason,
        Self::SpfResult,
        Self::SpfExplanation,
        Self::ReceivedSpf,
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
            Self::Score => "4.35",
            Self::ScoreReasons => "listed=4.35",
            Self::DnsblReason => "listed",
            Self::SpfResult => "pass",
            Self::SpfExplanation => "not-permitted",
            Self::ReceivedSpf => "pass",
        }
    }

    /// The value of this variable for `request`, decided by rule `rule`.
    ///
    /// Not inlined: inlined into the expansion loop, the compiler hoisted the
    /// loads of every request field out of the loop (about 150 instructions
    /// per expansion, whatever the template).
    #[inline(never)]
    pub(super) fn value<'r>(self, request: &Request<'r>, context: &Context<'r>) -> Value<'r> {
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
            Self::Score => Value::Score(context.decision.score),
            Self::ScoreReasons => Bytes(context.decision.score_reasons),
            Self::DnsblReason => Bytes(context.decision.dnsbl_reason),
            Self::SpfResult => Bytes(context.decision.spf_result),
            Self::SpfExplanation => Bytes(context.decision.spf_explanation),
            Self::ReceivedSpf => Bytes(context.decision.received_spf),
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
    /// seconds (`limit`, `counted`, `retry_after`, `delay`), and the score.
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
                | Self::Score
        )
    }

    /// Whether the variable has a value only in the actions of a stateful
    /// rule (a limit's `over`, a greylist's `then` and `prepend`), not in
    /// conditions or other actions.
    pub fn is_fact(self) -> bool {
        self.is_limit_fact() || self == Self::Delay
    }

    /// Whether the variable's value comes from the decision so far (the
    /// score, the DNS list findings), not from the request: a template
    /// variable, not a field of conditions.
    pub fn is_decision(self) -> bool {
        matches!(
            self,
            Self::Score
                | Self::ScoreReasons
                | Self::DnsblReason
                | Self::SpfResult
                | Self::SpfExplanation
                | Self::ReceivedSpf
        )
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
    /// The score and DNS list findings of the decision so far.
    pub decision: DecisionFacts<'a>,
}

impl<'a> Context<'a> {
    /// A context with the rule's name only.
    pub fn rule(rule: &'a str) -> Self {
        Self {
            rule,
            limit: None,
            greylist: None,
            decision: DecisionFacts::NONE,
        }
    }
}

/// What the decision so far found, as templates show it: `$score`,
/// `$score_reasons`, `$dnsbl_reason`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecisionFacts<'a> {
    /// `$score`: the request's score, in hundredths (shown as `4.35`).
    pub score: i64,
    /// `$score_reasons`.
    pub score_reasons: &'a [u8],
    /// `$dnsbl_reason`.
    pub dnsbl_reason: &'a [u8],
    /// `$spf_result`.
    pub spf_result: &'a [u8],
    /// `$spf_explanation`.
    pub spf_explanation: &'a [u8],
    /// `$received_spf`.
    pub received_spf: &'a [u8],
}

impl DecisionFacts<'_> {
    /// Nothing found: a score of 0, no reasons.
    pub const NONE: DecisionFacts<'static> = DecisionFacts {
        score: 0,
        score_reasons: &[],
        dnsbl_reason: &[],
        spf_result: &[],
        spf_explanation: &[],
        received_spf: &[],
    };
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

impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A variable's value before it is written.
#[derive(Debug, Clone, Copy)]
pub(super) enum Value<'r> {
    Bytes(&'r [u8]),
    Number(u64),
    Ip(IpAddr),
    /// Milliseconds, written as a policy writes durations.
    Duration(u64),
    /// A score in hundredths, written as a decimal (`4.35`, `-1.5`, `0`).
    Score(i64),
}

fn number<'r>(n: Option<u64>) -> Value<'r> {
    n.map_or(Value::Bytes(&[]), Value::Number)
}
