//! The compiled form of a policy: flat vectors, fields resolved to an enum,
//! conditions as tests with jump targets. Built by the compiler, run by the
//! evaluator, shown by explain.

use crate::facts::Facts;
use std::net::IpAddr;

pub(crate) use super::outside::{DnsList, Outside};

use crate::action::Action;
use crate::greylist::rule::GreylistRule;
use crate::limits::rule::LimitRule;
use crate::list::{List, LoginMap};
use crate::request::{ProtocolState, Request};
use crate::template::{TextBuf, Verdict};

/// A field a condition can test: every request attribute and the derived
/// parts of the sender and recipient. It is the template variable type
/// ([`Var`]), so one enum names every value a policy can read; `rule` is a
/// template variable only, refused in conditions by the compiler.
pub(crate) use crate::template::Var as Field;

impl Field {
    /// The field named `name` as written in a condition, if any (every
    /// template variable but `rule`).
    pub(crate) fn lookup_field(name: &str) -> Option<Self> {
        Self::lookup(name).filter(|&var| var.is_field())
    }

    /// The names of every field, for "did you mean" hints.
    pub(crate) fn field_names() -> impl Iterator<Item = &'static str> {
        Self::ALL
            .into_iter()
            .filter(|&var| var.is_field())
            .map(Self::name)
    }

    /// Whether the variable is a field of conditions: a value of the
    /// request (not `rule`, a stateful rule's facts, or the decision's).
    pub(crate) fn is_field(self) -> bool {
        self != Self::Rule && !self.is_fact() && !self.is_decision()
    }

    /// Whether the field reads the recipient (a recipient-level condition).
    pub(crate) fn is_recipient_level(self) -> bool {
        matches!(
            self,
            Self::Recipient | Self::RecipientLocal | Self::RecipientDomain
        )
    }
}

/// A test without a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Predicate {
    /// A SASL login is present.
    Authenticated,
    /// The client uses TLS (`encryption_protocol` is set).
    Tls,
    /// The sender is `<>` at MAIL or later.
    NullSender,
    /// `helo_name` is a fully qualified domain name.
    HeloIsFqdn,
    /// `helo_name` is an address literal `[...]`.
    HeloIsAddressLiteral,
    /// `helo_name` is a bare IP address.
    HeloIsIp,
    /// `client_name` is `unknown`.
    ClientUnknown,
    /// `reverse_client_name` is `unknown`.
    ReverseClientUnknown,
}

impl Predicate {
    pub(crate) fn lookup(name: &str) -> Option<Self> {
        Some(match name {
            "authenticated" => Self::Authenticated,
            "tls" => Self::Tls,
            "null_sender" => Self::NullSender,
            "helo_is_fqdn" => Self::HeloIsFqdn,
            "helo_is_address_literal" => Self::HeloIsAddressLiteral,
            "helo_is_ip" => Self::HeloIsIp,
            "client_unknown" => Self::ClientUnknown,
            "reverse_client_unknown" => Self::ReverseClientUnknown,
            _ => return None,
        })
    }
}

/// A numeric comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum NumOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A string operation against a constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum TextOp {
    Equals,
    StartsWith,
    EndsWith,
    Contains,
}

/// One compiled test. Indices point into the [`Program`]'s vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Test {
    /// An address field in a list (address, domain, string, glob, regex entries).
    AddressInList { field: Field, list: u32 },
    /// A domain field in a list.
    DomainInList { field: Field, list: u32 },
    /// Any other text field in a list (string, glob, regex entries).
    TextInList { field: Field, list: u32 },
    /// An IP field in a list of networks.
    IpInList { field: Field, list: u32 },
    /// `field OP "text"`; `no_case`: the constant is lower case and the field
    /// compares ignoring ASCII case.
    Text {
        field: Field,
        op: TextOp,
        text: u32,
        no_case: bool,
    },
    /// A test on outside facts (DNS lists, reverse DNS, ...): see
    /// [`Outside`]; evaluated by [`Program::outside`]. The number is its
    /// slot: its index in [`Program::outside_tests`], set by
    /// [`Program::pack`].
    Outside(Outside, u16),
    /// `field matches /re/` (the regex carries its own flags).
    Regex { field: Field, regex: u32 },
    /// A numeric comparison; false when the value is missing.
    Number { field: Field, op: NumOp, value: u64 },
    /// `score OP VALUE`: the request's score so far ([`Memo::score`]), in
    /// hundredths.
    Score { op: NumOp, value: i64 },
    /// An IP field equal to an address.
    IpEquals { field: Field, ip: IpAddr },
    /// The protocol state is one of a set (bit mask of [`state_bit`]).
    State { mask: u16 },
    /// The field has a value.
    IsSet { field: Field },
    /// A predicate.
    Predicate(Predicate),
    /// The sender's domain is in the list and there is no SASL login.
    UnauthenticatedLocalSender { list: u32 },
    /// The SASL login does not own the sender per the map.
    SenderLoginMismatch { map: u32 },
}

impl Test {
    /// Whether the test costs enough (a list lookup, a regex, a map) to be
    /// worth memoizing when it occurs in several rules.
    pub(crate) fn is_expensive(&self) -> bool {
        matches!(
            self,
            Self::AddressInList { .. }
                | Self::DomainInList { .. }
                | Self::TextInList { .. }
                | Self::IpInList { .. }
                | Self::Regex { .. }
                | Self::UnauthenticatedLocalSender { .. }
                | Self::SenderLoginMismatch { .. }
        )
    }

    /// Whether the test reads a recipient field.
    pub(crate) fn is_recipient_level(&self) -> bool {
        match *self {
            Self::AddressInList { field, .. }
            | Self::DomainInList { field, .. }
            | Self::TextInList { field, .. }
            | Self::Text { field, .. }
            | Self::Regex { field, .. }
            | Self::IsSet { field } => field.is_recipient_level(),
            _ => false,
        }
    }
}

/// Jump target: the condition holds.
pub(crate) const TRUE: u32 = u32::MAX;
/// Jump target: the condition does not hold.
pub(crate) const FALSE: u32 = u32::MAX - 1;

/// One test and where to go next. The compiler emits the targets of a node
/// before the node, so every target is [`TRUE`], [`FALSE`] or a smaller
/// index: evaluation always ends, in at most as many steps as there are
/// nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Node {
    pub(crate) test: Test,
    pub(crate) on_true: u32,
    pub(crate) on_false: u32,
    /// The memo slot of an expensive test that occurs more than once in the
    /// policy (a list lookup shared by many rules), so that one request looks
    /// it up once; [`NO_MEMO`] otherwise.
    pub(crate) memo: u8,
}

/// [`Node::memo`] of a test that is not memoized.
pub(crate) const NO_MEMO: u8 = u8::MAX;

/// How many distinct tests one request memoizes: the bits of a `u64`, so the
/// memo lives in two registers and costs nothing to clear.
pub(crate) const MEMO_SLOTS: usize = 64;

/// How many `FIELD in LIST` domain lookups one request remembers by value
/// (see [`Memo::domains`]): the realistic policies look up two or three
/// fields in a few lists; a small array scanned linearly beats a hash here.
pub(crate) const DOMAIN_MEMO_SLOTS: usize = 8;

/// One remembered domain lookup: `field`'s value was looked up in list
/// `list` and gave `result`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DomainLookup {
    pub(crate) list: u32,
    pub(crate) field: Field,
    pub(crate) result: bool,
}

impl DomainLookup {
    /// An unfilled slot (beyond [`Memo::domain_count`]).
    const NONE: Self = Self {
        list: u32::MAX,
        field: Field::Sender,
        result: false,
    };
}

/// Results of memoized tests for one request: bit `slot` of `known` says the
/// test ran, the same bit of `value` holds its result.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Memo<'f> {
    /// The outside facts of the request (none for a policy without them):
    /// here, rather than an argument, so that evaluating a condition costs
    /// a policy without outside facts nothing more.
    pub(crate) facts: &'f Facts,
    pub(crate) known: u64,
    pub(crate) value: u64,
    /// Domain lookups done for this request, by list and field, so that a
    /// lookup of the same value in the same list through another field
    /// (`helo_name` and `client_name` are often the same name) reuses the
    /// result instead of lower-casing, hashing and pattern-matching again.
    /// Only the first `domain_count` are filled.
    pub(crate) domains: [DomainLookup; DOMAIN_MEMO_SLOTS],
    /// How many of `domains` are filled.
    pub(crate) domain_count: u8,
    /// The request's score so far (hundredths), from the score items that
    /// ran: `score > 5` reads it.
    pub(crate) score: i64,
    /// The slot of the last DNS list test that found a listing while the
    /// current rule's condition was evaluated (for `$dnsbl_reason`).
    pub(crate) listed: Option<u16>,
    /// The rule just found to hold holds because its condition is unknown
    /// and it has an `on_unknown` answer.
    pub(crate) unknown: bool,
}

impl<'f> Memo<'f> {
    /// Nothing known yet, with these facts.
    pub(crate) fn new(facts: &'f Facts) -> Self {
        Self {
            facts,
            known: 0,
            value: 0,
            domains: [DomainLookup::NONE; DOMAIN_MEMO_SLOTS],
            domain_count: 0,
            score: 0,
            listed: None,
            unknown: false,
        }
    }
}

/// The bit of protocol state `state` in a rule's state mask; unknown states
/// have a bit no `state` clause can name.
#[inline]
pub(crate) fn state_bit(state: Option<ProtocolState<'_>>) -> u16 {
    match state {
        Some(ProtocolState::Connect) => 1,
        Some(ProtocolState::Ehlo) => 1 << 1,
        Some(ProtocolState::Helo) => 1 << 2,
        Some(ProtocolState::Mail) => 1 << 3,
        Some(ProtocolState::Rcpt) => 1 << 4,
        Some(ProtocolState::Data) => 1 << 5,
        Some(ProtocolState::EndOfMessage) => 1 << 6,
        Some(ProtocolState::Vrfy) => 1 << 7,
        Some(ProtocolState::Etrn) => 1 << 8,
        _ => 1 << 15,
    }
}

/// The states a `state` clause may name, with their bits.
pub(crate) const STATE_NAMES: [(&str, u16); 9] = [
    ("CONNECT", 1),
    ("EHLO", 1 << 1),
    ("HELO", 1 << 2),
    ("MAIL", 1 << 3),
    ("RCPT", 1 << 4),
    ("DATA", 1 << 5),
    ("END-OF-MESSAGE", 1 << 6),
    ("VRFY", 1 << 7),
    ("ETRN", 1 << 8),
];

/// The bit of [`STATE_NAMES`] `END-OF-MESSAGE`.
pub(crate) const END_OF_MESSAGE_BIT: u16 = 1 << 6;

/// The bit of [`STATE_NAMES`] `DATA`.
pub(crate) const DATA_BIT: u16 = 1 << 5;

/// The bit of [`STATE_NAMES`] `RCPT`.
pub(crate) const RCPT_BIT: u16 = 1 << 4;

/// The states from MAIL on, where a sender is known (for `null_sender`).
pub(crate) const SENDER_KNOWN: u16 = (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6);

/// Cold data about a rule, for explanations and warnings.
#[derive(Debug, Clone)]
pub(crate) struct RuleSource {
    /// The `state` clause as written, if any.
    pub(crate) states: Option<Box<str>>,
    /// Each `if`/`unless` clause: keyword and condition in source form.
    pub(crate) clauses: Box<[Box<str>]>,
    /// The action as written.
    pub(crate) action: Box<str>,
    /// The nodes of each clause's tests (`nodes[first..end]`), in order.
    pub(crate) clause_nodes: Box<[(u32, u32)]>,
    /// The line of the rule's name.
    pub(crate) line: u32,
}

/// A node's test in source form, for explanations.
#[derive(Debug, Clone)]
pub(crate) struct NodeSource {
    /// The test as written (`size > 20MB`, `sender != "x"`).
    pub(crate) text: Box<str>,
    /// Whether the node's test is the opposite of the text (`!=`, `is empty`).
    pub(crate) negated: bool,
    /// Byte offset in the policy, to show tests in source order.
    pub(crate) start: u32,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) name: Box<str>,
    /// States the rule applies in; 0 = every state.
    pub(crate) states: u16,
    pub(crate) dry_run: bool,
    /// The first node of each `if`/`unless` clause; the rule's condition
    /// holds when every clause does (no clause: always).
    pub(crate) clauses: Box<[u32]>,
    pub(crate) verdict: Verdict,
    pub(crate) source: RuleSource,
    /// For a limit rule, its index in [`Program::limits`]; its verdict is
    /// the `over` action.
    pub(crate) limit: Option<u32>,
    /// For a greylist, its index in [`Program::greylists`]; its verdict is
    /// the `then` action.
    pub(crate) greylist: Option<u32>,
    /// For a score item, its index in [`Program::scores`]; its verdict is
    /// unused (the thresholds answer).
    pub(crate) score: Option<u32>,
    /// `on_unknown ACTION`: the answer when the condition is unknown.
    pub(crate) on_unknown: Option<Verdict>,
    /// Some answer of the rule shows `$dnsbl_reason` (set by
    /// [`Program::pack`]): only then is the reason written.
    pub(crate) shows_listing: bool,
    /// For a plain rule answering PREPEND, a hash of its name (set by
    /// [`Program::pack`]): it answers once per message, and the message
    /// state remembers it by this hash, which a reload keeping the rule
    /// keeps. 0 for other rules.
    pub(crate) once: u64,
}

impl Rule {
    /// A rule of `verdict`, without a limit, greylist, score item or
    /// `on_unknown`; what [`Program::pack`] sets not set yet.
    pub(crate) fn new(
        name: &str,
        states: u16,
        dry_run: bool,
        clauses: Box<[u32]>,
        verdict: Verdict,
        source: RuleSource,
    ) -> Self {
        Self {
            name: name.into(),
            states,
            dry_run,
            clauses,
            verdict,
            source,
            limit: None,
            greylist: None,
            score: None,
            on_unknown: None,
            shows_listing: false,
            once: 0,
        }
    }
}

/// One `add` of a score item.
#[derive(Debug, Clone)]
pub(crate) struct ScoreAdd {
    /// Hundredths.
    pub(crate) weight: i64,
    /// The condition's entry node.
    pub(crate) entry: u32,
    /// The condition tests an outside fact (three values).
    pub(crate) outside: bool,
    /// What `$score_reasons` says of it: the `as` text, or the condition
    /// as written.
    pub(crate) reason: Box<str>,
}

/// A compiled score item: its adds, and its thresholds from the highest.
#[derive(Debug, Clone)]
pub(crate) struct ScoreItem {
    pub(crate) adds: Box<[ScoreAdd]>,
    /// (threshold in hundredths, answer when the score is above it),
    /// highest first.
    pub(crate) thresholds: Box<[(i64, Verdict)]>,
}

/// What the evaluator reads of each rule on every request, packed so that
/// skipping a rule touches a few bytes, not the rule's action and sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RuleHot {
    /// As [`Rule::states`].
    pub(crate) states: u16,
    /// The rule's clause entries: `Program::entries[start..start + len]`.
    pub(crate) start: u32,
    pub(crate) len: u32,
    /// For the first rule of an equality run, the run's index in
    /// [`Program::runs`]; [`NO_RUN`] otherwise.
    pub(crate) run: u32,
    /// The rule's condition tests an outside fact ([`Test::outside`]): it is
    /// evaluated in three values ([`Program::holds3`]). In the padding of
    /// `states`, so rules without outside facts pay one test of a byte
    /// already loaded.
    pub(crate) outside: bool,
}

/// [`RuleHot::run`] of a rule that does not start a run.
pub(crate) const NO_RUN: u32 = u32::MAX;

/// The fewest consecutive rules worth an equality run: below this, testing
/// each rule's `field == "constant"` costs no more than one hash lookup.
pub(crate) const MIN_RUN_RULES: usize = 4;

/// The longest constant an equality run indexes, in bytes; a request value
/// is lower-cased into a stack buffer this long (case-insensitive fields).
/// Longer constants (rare) leave their rule out of runs.
pub(crate) const MAX_RUN_KEY_BYTES: usize = 256;

/// Consecutive rules that each apply only when the same field equals a
/// constant of the rule's own (`recipient_domain == "customer7.example"`,
/// the shape of per-domain policies): the request's value is looked up once
/// instead of compared by every rule.
#[derive(Debug, Clone)]
pub(crate) struct EqualityRun {
    field: Field,
    /// The constants are lower case and the field compares ignoring case.
    no_case: bool,
    /// Constant -> the rules (absolute indices, ascending) requiring it.
    /// ahash's runtime-seeded hasher: keys are looked up with client data.
    rules_by_value: std::collections::HashMap<Box<[u8]>, Box<[u32]>, ahash::RandomState>,
    /// One past the run's last rule.
    pub(crate) end: u32,
}

impl EqualityRun {
    /// The rules of the run that may apply to `request`, in order.
    #[inline]
    pub(crate) fn candidates(&self, request: &Request<'_>) -> &[u32] {
        let mut buf = TextBuf::new();
        let value = self.field.text(request, &mut buf);
        let found = if self.no_case {
            let mut lower = [0u8; MAX_RUN_KEY_BYTES];
            let Some(lower) = lower.get_mut(..value.len()) else {
                return &[];
            };
            for (l, v) in lower.iter_mut().zip(value) {
                *l = v.to_ascii_lowercase();
            }
            self.rules_by_value.get(&*lower)
        } else {
            self.rules_by_value.get(value)
        };
        found.map_or(&[], |rules| &rules[..])
    }
}

/// A compiled policy program. Empty (no rules) for `Policy::always`.
#[derive(Debug, Clone)]
pub(crate) struct Program {
    /// The limit rules, in rule order.
    pub(crate) limits: Vec<LimitRule>,
    /// The greylists, in rule order.
    pub(crate) greylists: Vec<GreylistRule>,
    /// One per rule, in order: the evaluator's view (see [`RuleHot`]).
    pub(crate) hot: Vec<RuleHot>,
    /// The clause entries of every rule, back to back.
    pub(crate) entries: Vec<u32>,
    /// Equality runs (see [`EqualityRun`]), started by [`RuleHot::run`].
    pub(crate) runs: Vec<EqualityRun>,
    pub(crate) rules: Vec<Rule>,
    pub(crate) nodes: Vec<Node>,
    /// Each node's test in source form (`size > 20MB`), for explanations.
    pub(crate) node_source: Vec<NodeSource>,
    pub(crate) lists: Vec<List>,
    pub(crate) logins: Vec<LoginMap>,
    pub(crate) regexes: Vec<regex::bytes::Regex>,
    pub(crate) texts: Vec<Box<[u8]>>,
    /// The DNS lists of `in dnsbl` and `in rhsbl` tests.
    pub(crate) dns_lists: Vec<DnsList>,
    /// The score items, in rule order.
    pub(crate) scores: Vec<ScoreItem>,
    /// The distinct tests on outside facts, each at its slot (see
    /// [`Test::Outside`]): what a request asks.
    pub(crate) outside_tests: Vec<Outside>,
    /// Some outside test looks up the HELO name, or the sender's domain
    /// (set by [`Program::pack`]): only then are they checked per request.
    pub(crate) reads_helo: bool,
    pub(crate) reads_sender: bool,
    /// Some test reads the SPF evaluation: asked in every round, the first
    /// too.
    pub(crate) chained_spf: bool,
    /// The slots of the tests whose answers may lead to more queries (a
    /// DNS list with `txt`, `fcrdns`): the later rounds ask only these.
    pub(crate) chained: Vec<u16>,
    /// Some condition tests an outside fact: deciding asks queries.
    pub(crate) outside: bool,
    /// Some rule answers once per message ([`Rule::once`]).
    pub(crate) once_rules: bool,
    /// Some limit or greylist keeps its state in the remote backend: its
    /// calls may be batched ([`crate::state::prefetch`]).
    pub(crate) remote_stateful: bool,
    pub(crate) default: Verdict,
    /// The answer of a rule with `on_failure defer` whose backend failed
    /// ([`BACKEND_DEFER_ACTION`]).
    pub(crate) backend_defer: Verdict,
}

/// What a limit or greylist with `on_failure defer` answers when its state
/// backend fails (a timeout, an outage): a temporary refusal that a later
/// Postfix restriction may still turn into a rejection.
pub const BACKEND_DEFER_ACTION: &str =
    "DEFER_IF_PERMIT 4.3.0 Policy state temporarily unavailable, try again later";

impl Program {
    pub(crate) fn always(action: Action) -> Self {
        Self {
            limits: Vec::new(),
            greylists: Vec::new(),
            hot: Vec::new(),
            entries: Vec::new(),
            runs: Vec::new(),
            rules: Vec::new(),
            nodes: Vec::new(),
            node_source: Vec::new(),
            lists: Vec::new(),
            logins: Vec::new(),
            regexes: Vec::new(),
            texts: Vec::new(),
            dns_lists: Vec::new(),
            scores: Vec::new(),
            outside_tests: Vec::new(),
            chained: Vec::new(),
            reads_helo: false,
            reads_sender: false,
            chained_spf: false,
            outside: false,
            once_rules: false,
            remote_stateful: false,
            default: Verdict::constant(action),
            // A constant that parses (test `backend_defer_action_parses`).
            backend_defer: Verdict::constant(
                Action::parse(BACKEND_DEFER_ACTION).unwrap_or(Action::Dunno),
            ),
        }
    }
}

impl Program {
    /// Whether some answer of the policy shows the SPF result
    /// (`$spf_result`, `$spf_explanation`, `$received_spf`).
    fn shows_spf(&self) -> bool {
        use crate::template::Var;
        let shows = |v: &Verdict| {
            [Var::SpfResult, Var::SpfExplanation, Var::ReceivedSpf]
                .into_iter()
                .any(|var| v.uses(var))
        };
        self.rules
            .iter()
            .any(|rule| shows(&rule.verdict) || rule.on_unknown.as_ref().is_some_and(shows))
            || self
                .scores
                .iter()
                .any(|item| item.thresholds.iter().any(|(_, v)| shows(v)))
            || self
                .greylists
                .iter()
                .any(|g| g.prepend.as_ref().is_some_and(shows))
    }

    /// Build the evaluator's packed view of the rules ([`Program::hot`])
    /// and its equality runs; called once the rules are final.
    pub(crate) fn pack(&mut self) {
        self.outside_tests.clear();
        for node in &mut self.nodes {
            if let Test::Outside(test, slot) = &mut node.test {
                let key = test.slot_key();
                let at = match self.outside_tests.iter().position(|t| *t == key) {
                    Some(at) => at,
                    None => {
                        self.outside_tests.push(key);
                        self.outside_tests.len() - 1
                    }
                };
                *slot = u16::try_from(at).unwrap_or(u16::MAX);
            }
        }
        let spf = Outside::Spf {
            result: crate::spf::SpfResult::None,
        };
        if !self.outside_tests.contains(&spf) && self.shows_spf() {
            // No condition tests SPF, but an answer shows it: evaluated all
            // the same, in a slot no node reads.
            self.outside_tests.push(spf);
        }
        self.outside = !self.outside_tests.is_empty();
        self.reads_helo = self.outside_tests.iter().any(|t| {
            matches!(
                t,
                Outside::HeloResolves
                    | Outside::HeloMatchesClient
                    | Outside::List {
                        field: Field::HeloName,
                        ..
                    }
            )
        });
        self.reads_sender = self.outside_tests.iter().any(|t| {
            matches!(
                t,
                Outside::SenderDomainUnknown
                    | Outside::List {
                        field: Field::SenderDomain,
                        ..
                    }
            )
        });
        self.chained_spf = self
            .outside_tests
            .iter()
            .any(|t| matches!(t, Outside::Spf { .. }));
        self.chained.clear();
        for (slot, test) in self.outside_tests.iter().enumerate() {
            let chained = match *test {
                Outside::Fcrdns | Outside::Spf { .. } => true,
                Outside::List { list, .. } => {
                    self.dns_lists.get(list as usize).is_some_and(|l| l.txt)
                }
                _ => false,
            };
            if chained {
                self.chained.push(u16::try_from(slot).unwrap_or(u16::MAX));
            }
        }
        self.remote_stateful =
            self.limits.iter().any(|l| l.remote) || self.greylists.iter().any(|g| g.remote);
        let scores = &self.scores;
        self.once_rules = false;
        for rule in &mut self.rules {
            let plain = rule.limit.is_none() && rule.greylist.is_none() && rule.score.is_none();
            rule.once = if plain && matches!(rule.verdict.action, Action::Prepend(_)) {
                // Never 0, which means "not once".
                crate::base::bytes::fnv1a(crate::base::bytes::FNV_START, rule.name.as_bytes()) | 1
            } else {
                0
            };
            self.once_rules |= rule.once != 0;
            let shows = |v: &Verdict| v.uses(crate::template::Var::DnsblReason);
            rule.shows_listing = shows(&rule.verdict)
                || rule.on_unknown.as_ref().is_some_and(shows)
                || rule
                    .score
                    .and_then(|s| scores.get(s as usize))
                    .is_some_and(|item| item.thresholds.iter().any(|(_, v)| shows(v)));
        }
        self.hot.clear();
        self.entries.clear();
        self.runs.clear();
        for rule in &self.rules {
            let start = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
            self.entries.extend_from_slice(&rule.clauses);
            self.hot.push(RuleHot {
                states: rule.states,
                start,
                len: u32::try_from(rule.clauses.len()).unwrap_or(0),
                run: NO_RUN,
                outside: rule.source.clause_nodes.iter().any(|&(first, end)| {
                    self.nodes
                        .get(first as usize..end as usize)
                        .unwrap_or_default()
                        .iter()
                        .any(|node| node.test.outside().is_some())
                }),
            });
        }
        let guards: Vec<Option<(Field, bool, u32)>> =
            self.rules.iter().map(|r| self.guard(r)).collect();
        let mut first = 0;
        while first < guards.len() {
            let Some((field, no_case, _)) = guards[first] else {
                first += 1;
                continue;
            };
            let mut end = first + 1;
            while end < guards.len()
                && matches!(guards[end], Some((f, n, _)) if f == field && n == no_case)
            {
                end += 1;
            }
            if end - first >= MIN_RUN_RULES {
                let mut rules_by_value: std::collections::HashMap<
                    Box<[u8]>,
                    Vec<u32>,
                    ahash::RandomState,
                > = std::collections::HashMap::default();
                for (index, guard) in guards.iter().enumerate().take(end).skip(first) {
                    let Some((_, _, text)) = guard else { continue };
                    let Some(key) = self.texts.get(*text as usize) else {
                        continue;
                    };
                    rules_by_value
                        .entry(key.clone())
                        .or_default()
                        .push(u32::try_from(index).unwrap_or(u32::MAX));
                }
                if let Some(hot) = self.hot.get_mut(first) {
                    hot.run = u32::try_from(self.runs.len()).unwrap_or(NO_RUN);
                }
                self.runs.push(EqualityRun {
                    field,
                    no_case,
                    rules_by_value: rules_by_value
                        .into_iter()
                        .map(|(k, v)| (k, v.into_boxed_slice()))
                        .collect(),
                    end: u32::try_from(end).unwrap_or(u32::MAX),
                });
            }
            first = end;
        }
    }

    /// The equality a rule requires, if any: its first clause starts with
    /// `field == "constant"` that fails the whole clause when false.
    fn guard(&self, rule: &Rule) -> Option<(Field, bool, u32)> {
        let &entry = rule.clauses.first()?;
        let node = self.nodes.get(entry as usize)?;
        match node.test {
            Test::Text {
                field,
                op: TextOp::Equals,
                text,
                no_case,
            } if node.on_false == FALSE
                && node.on_true != FALSE
                && self
                    .texts
                    .get(text as usize)
                    .is_some_and(|t| t.len() <= MAX_RUN_KEY_BYTES) =>
            {
                Some((field, no_case, text))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_defer_action_parses() {
        let action = Action::parse(BACKEND_DEFER_ACTION).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(action.verb(), "DEFER_IF_PERMIT");
        assert_eq!(
            &*Program::always(Action::Dunno).backend_defer.wire,
            BACKEND_DEFER_ACTION.as_bytes()
        );
    }

    #[test]
    fn equality_runs_form_where_rules_require_one_field_value() {
        let rule = |i: usize, cond: &str| format!("rule r{i} {{ if {cond} then REJECT }}\n");
        let mut src = String::new();
        for i in 0..5 {
            src.push_str(&rule(
                i,
                &format!("recipient_domain == \"d{i}.example\" and tls"),
            ));
        }
        // Breaks the run: another field.
        src.push_str(&rule(5, "sender_domain == \"x\""));
        // Too short a run (3 rules), then one not guarded (`or`).
        for i in 6..9 {
            src.push_str(&rule(i, &format!("sasl_username == \"u{i}\"")));
        }
        src.push_str(&rule(9, "sasl_username == \"u\" or tls"));
        let compiled = crate::lang::compile("p", &src, &mut crate::NoFiles);
        let Ok(compiled) = compiled else {
            panic!("does not compile");
        };
        let program = &compiled.0;
        assert_eq!(program.runs.len(), 1);
        assert_eq!(program.runs[0].end, 5);
        assert!(program.runs[0].no_case);
        assert_eq!(program.hot[0].run, 0);
        assert!(program.hot[1..].iter().all(|h| h.run == NO_RUN));
    }

    #[test]
    fn fields_round_trip() {
        for f in Field::ALL {
            let expected = (f != Field::Rule && !f.is_fact() && !f.is_decision()).then_some(f);
            assert_eq!(Field::lookup_field(f.name()), expected);
        }
        assert_eq!(Field::lookup_field("nope"), None);
        assert_eq!(Field::lookup_field("rule"), None);
    }
}
