//! Limit rules, compiled and evaluated: the key of a request, the units it
//! counts, the check against the rule's [`LimitTable`] through the state's
//! backend ([`LimitStore`], [`LimitCall`]), and the per-connection message
//! state that `count messages` and the `at data` / `at end-of-message`
//! modes need. The language compiles `limit` items into [`LimitRule`]s
//! (`lang/compile/limits.rs`) and its evaluator runs their [`LimitRule::step`].
//!
//! # When units are counted
//!
//! - `at rcpt` (the default for `messages` and `recipients`): at RCPT, checked
//!   and counted atomically when the rule is reached. If the final answer to
//!   the request refuses it ([`Action::refuses`](crate::Action::refuses)), every unit counted during
//!   the request is given back ([`LimitTable::refund`]): a refused attempt
//!   never counts.
//! - `at data` / `at end-of-message` (and always for `bytes`): at RCPT the
//!   rule only checks whether the message could still fit (refusing early if
//!   not); at DATA or END-OF-MESSAGE it checks and counts what Postfix
//!   accepted (`recipient_count`, `size`).

use std::hash::Hasher;
use std::net::IpAddr;

use super::table::{Key, LimitTable, Verdict};
use super::Limit;
use crate::base::bytes::{fnv1a, FNV_START};
use crate::base::time::Timestamp;
use crate::keyed::{BackendError, OnFailure};
use crate::request::{ProtocolState, Request};
use crate::template::{FieldType, LimitFacts, TextBuf, Var as Field, Verdict as Answer};

/// The default `capacity` of a limit: the most keys it tracks. About 190 MB
/// when full with one window, 400 MB with three (192 and 395 bytes per key,
/// measured; see [`LimitTable`]); a table
/// this size is filled only by a flood of distinct keys, which then meets the
/// documented fail-open rule rather than evicting live keys.
pub const DEFAULT_LIMIT_CAPACITY: usize = 1_000_000;

/// The largest `capacity` a limit may ask for: 100 million keys, tens of
/// GB of counters when full; a larger number is a typo.
pub const MAX_LIMIT_CAPACITY: usize = 100_000_000;

/// The separator between the parts of a key's text (`joe, 192.0.2.0/24`).
pub(crate) const KEY_SEPARATOR: &[u8] = b", ";

/// The longest key text composed for one request, in bytes: a key part is
/// an attribute value (at most a line, 4 KiB by default), so a few parts fit;
/// longer texts are cut (the hash still covers every byte of every part).
pub(crate) const MAX_KEY_TEXT_BYTES: usize = 1024;

/// A limit's check ([`Backend::limit`](crate::state::Backend::limit)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitCall<'a> {
    /// The key (hashed with the item's seeds) and its text.
    pub key: Key<'a>,
    /// Units this request would count.
    pub units: u64,
    /// The maximum of each window for this key (the rule's, or an
    /// override's).
    pub maxima: &'a [u64],
    /// Count the units if they fit (`false`: only check).
    pub count: bool,
}

/// Where limit rules keep their counters, as a rule's step reaches them:
/// [`State`](crate::State), which sits above this module, implements it.
pub(crate) trait LimitStore {
    /// The table of limit `index`, whose seeds hash its keys.
    fn limit_table(&self, index: usize) -> Option<&LimitTable>;

    /// Limit `index`'s check (and count), through the item's backend.
    fn limit(
        &self,
        index: usize,
        call: LimitCall<'_>,
        now: Timestamp,
    ) -> Result<Verdict, BackendError>;
}

/// One part of a limit's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum KeyPart {
    /// A field's value (lower-cased when the field ignores case).
    Field(Field),
    /// An IP field masked to a prefix: `v4` bits for IPv4, `v6` for IPv6.
    Ip { field: Field, v4: u8, v6: u8 },
}

/// What one unit of a limit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Unit {
    Messages,
    Recipients,
    Bytes {
        times_recipients: bool,
    },
    /// A value of `field` not seen for the key in the window (`count
    /// distinct helo_name`): see [`LimitRule::step_distinct`].
    Distinct {
        field: Field,
    },
}

/// The maxima of a (key, value) pair of a `count distinct` limit: one
/// sighting per window.
const ONCE: [u64; super::MAX_WINDOWS] = [1; super::MAX_WINDOWS];

/// When a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum CountAt {
    Rcpt,
    Data,
    EndOfMessage,
}

/// Maxima per window for one key (`None`: the rule's).
pub(crate) type Maxima = Box<[Option<u64>]>;

/// Per-key maxima: key text (lower-cased where the key ignores case) ->
/// its maxima. ahash's runtime-seeded hasher: looked up with client data.
#[derive(Debug, Clone, Default)]
pub(crate) struct Overrides {
    pub(crate) by_key: std::collections::HashMap<Box<[u8]>, Maxima, ahash::RandomState>,
}

/// A compiled limit rule (the [`Rule`](crate::lang::program::Rule) of the same
/// index holds its conditions, name and `over` action).
#[derive(Debug, Clone)]
pub(crate) struct LimitRule {
    /// Index of the rule in [`Program::rules`](crate::lang::program::Program::rules).
    pub(crate) rule: u32,
    /// What must stay the same for a reload or a restart to keep the counters.
    pub(crate) signature: u64,
    pub(crate) key: Box<[KeyPart]>,
    pub(crate) unit: Unit,
    pub(crate) at: CountAt,
    /// The windows with the rule's maxima.
    pub(crate) limit: Limit,
    /// The rule's maxima, one per window (passed on every check, so that a
    /// table kept across a reload uses the new maxima).
    pub(crate) maxima: Box<[u64]>,
    pub(crate) capacity: usize,
    pub(crate) overrides: Option<Overrides>,
    /// The table's windows: the rule's with the largest maxima any key may
    /// get, overrides included (they decide the counters' width).
    pub(crate) table_limit: Limit,
    /// What the rule does when its state backend fails.
    pub(crate) on_failure: OnFailure,
    /// The rule keeps its counters in the state's remote backend (`backend
    /// redis`).
    pub(crate) remote: bool,
    /// The answer to a request that alone is more than a window's maximum
    /// (it could never be admitted), for a limit without its own `over`
    /// action: a permanent refusal rather than "try again".
    pub(crate) never: Option<Answer>,
}

/// A unit counted while deciding one request, to give back if the final
/// answer refuses the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counted {
    pub(crate) limit: u32,
    pub(crate) hash: u64,
    pub(crate) units: u64,
}

/// What a connection remembers of the message under way. It survives a
/// reload: a message is identified by its `instance` alone, and the limits
/// that counted it by their signatures, which a reload keeping the limit
/// keeps.
#[derive(Debug, Default, Clone)]
pub(crate) struct MessageState {
    /// A hash of the message's `instance` (0 with none).
    pub(crate) instance: u64,
    /// Recipients of this message the policy did not refuse.
    pub(crate) accepted: u64,
    /// The signatures of the `count messages` limits that counted this
    /// message (cleared, never shrunk).
    pub(crate) counted: Vec<u64>,
    /// Whether a greylist's `prepend` header was sent for this message.
    pub(crate) header_sent: bool,
    /// The rules that answered PREPEND for this message ([`Rule::once`]
    /// hashes; cleared, never shrunk).
    ///
    /// [`Rule::once`]: crate::lang::program::Rule::once
    pub(crate) prepended: Vec<u64>,
}

/// The facts of a refusal, kept in the scratch for the `over` action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Refused {
    pub(crate) max: u64,
    pub(crate) window_ms: u64,
    pub(crate) counted: u64,
    pub(crate) retry_after_ms: Option<u64>,
    /// The key text: `Buffers::key[..key_len]`.
    pub(crate) key_len: usize,
}

impl Refused {
    pub(crate) fn facts<'k>(&self, key: &'k [u8]) -> LimitFacts<'k> {
        LimitFacts {
            max: self.max,
            window_ms: self.window_ms,
            counted: self.counted,
            retry_after_ms: self.retry_after_ms,
            key: key.get(..self.key_len).unwrap_or(key),
        }
    }
}

impl MessageState {
    /// Starts over when the request belongs to another message than the
    /// last one seen on this connection.
    pub(crate) fn follow(&mut self, request: &Request<'_>) {
        let instance = if request.instance.is_empty() {
            0
        } else {
            fnv1a(FNV_START, request.instance) | 1
        };
        // Without an instance, each request is its own message.
        if self.instance != instance || instance == 0 {
            self.instance = instance;
            self.accepted = 0;
            self.counted.clear();
            self.header_sent = false;
            self.prepended.clear();
        }
    }

    /// Whether the limit with this signature counted the message.
    pub(crate) fn was_counted(&self, signature: u64) -> bool {
        self.counted.contains(&signature)
    }
}

/// What a limit rule found for a request.
pub(crate) enum Step {
    /// Not over (counted or only checked), or the rule does not apply (an
    /// empty key part, nothing to count): go on with the next rule.
    Pass,
    /// Over: the facts for the `over` action.
    Over(Refused),
    /// The state backend failed: the rule's `on_failure` says what now.
    Failed(BackendError),
}

impl LimitRule {
    /// Whether the limit counts distinct values (two calls for a new value,
    /// the second depending on the first's answer).
    pub(crate) fn is_distinct(&self) -> bool {
        matches!(self.unit, Unit::Distinct { .. })
    }

    /// Run this rule, limit `index` of its policy, on `request` (its
    /// conditions hold), against `tables`. Writes the key text into `key`,
    /// records counted units in `counted`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn step(
        &self,
        index: u32,
        request: &Request<'_>,
        tables: &impl LimitStore,
        now: Timestamp,
        key: &mut Vec<u8>,
        counted: &mut Vec<Counted>,
        message: &MessageState,
        probe: bool,
    ) -> Step {
        let limit = self;
        let state = request.protocol_state;
        let rcpt = matches!(state, Some(ProtocolState::Rcpt));
        let counts_here = match limit.at {
            CountAt::Rcpt => rcpt,
            CountAt::Data => matches!(state, Some(ProtocolState::Data)),
            CountAt::EndOfMessage => matches!(state, Some(ProtocolState::EndOfMessage)),
        };
        if !rcpt && !counts_here {
            return Step::Pass;
        }
        if let Unit::Distinct { field } = limit.unit {
            return self.step_distinct(index, field, request, tables, now, key, counted, probe);
        }
        let recipients_here = |at_rcpt: u64| {
            if rcpt {
                at_rcpt
            } else {
                request.recipient_count.map_or(0, u64::from)
            }
        };
        let units = match limit.unit {
            Unit::Messages => {
                if rcpt && limit.at == CountAt::Rcpt && message.was_counted(limit.signature) {
                    // This message was counted at an earlier recipient.
                    return Step::Pass;
                }
                1
            }
            Unit::Recipients => recipients_here(message.accepted.saturating_add(1)),
            // Handled above.
            Unit::Distinct { .. } => return Step::Pass,
            Unit::Bytes { times_recipients } => {
                let size = request.size.unwrap_or(0);
                if times_recipients {
                    size.saturating_mul(recipients_here(message.accepted.saturating_add(1)))
                } else {
                    size
                }
            }
        };
        let units = if rcpt && limit.at == CountAt::Rcpt && limit.unit == Unit::Recipients {
            1
        } else {
            units
        };
        if units == 0 {
            return Step::Pass;
        }
        let Some(table) = tables.limit_table(index as usize) else {
            return Step::Pass;
        };
        let Some(hash) = compose_key(limit, table, request, key) else {
            return Step::Pass;
        };
        let maxima = override_maxima(limit, key);
        let k = Key {
            hash,
            text: key.as_slice(),
        };
        let maxima = maxima.as_deref().unwrap_or(&limit.maxima);
        let counts_here = counts_here && !probe;
        let call = LimitCall {
            key: k,
            units,
            maxima,
            count: counts_here,
        };
        let verdict = match tables.limit(index as usize, call, now) {
            Ok(verdict) => verdict,
            Err(error) => return Step::Failed(error),
        };
        match verdict {
            Verdict::Admitted => {
                if counts_here {
                    counted.push(Counted {
                        limit: index,
                        hash,
                        units,
                    });
                }
                Step::Pass
            }
            Verdict::Untracked => Step::Pass,
            Verdict::Refused(mut r) => {
                // At RCPT a limit counting later checks the recipients
                // pending in the message too; when those alone make the
                // message too big to ever fit, this recipient still fits in
                // a later delivery of its own: say when, not "never".
                let alone = match limit.unit {
                    Unit::Messages | Unit::Recipients | Unit::Distinct { .. } => 1,
                    Unit::Bytes { .. } => request.size.unwrap_or(0),
                };
                if r.retry_after_ms.is_none() && rcpt && alone < units {
                    let call = LimitCall {
                        units: alone,
                        count: false,
                        ..call
                    };
                    match tables.limit(index as usize, call, now) {
                        // The window that holds this recipient back, with
                        // its own retry time.
                        Ok(Verdict::Refused(own)) => r = own,
                        Ok(Verdict::Admitted | Verdict::Untracked) => r.retry_after_ms = Some(0),
                        // The first answer stands.
                        Err(_) => {}
                    }
                }
                Step::Over(limit.refused(&r, maxima, key.len()))
            }
        }
    }

    /// The facts of refusal `r` for the `over` action.
    fn refused(&self, r: &super::table::Refusal, maxima: &[u64], key_len: usize) -> Refused {
        let window = self.limit.windows().get(r.window);
        Refused {
            max: maxima
                .get(r.window)
                .copied()
                .or(window.map(|w| w.max()))
                .unwrap_or(0),
            window_ms: window.map_or(0, |w| w.per_ms()),
            counted: r.counted,
            retry_after_ms: r.retry_after_ms,
            key_len,
        }
    }

    /// The step of a `count distinct FIELD` limit at RCPT: the key (a
    /// client network) may have at most the maximum of distinct values of
    /// `field` (HELO names) per window.
    ///
    /// Two checks in the limit's own table: the (key, value) pair, counted
    /// once per window (maxima of 1), tells whether the value is new for
    /// the key; only a new value counts one unit for the key. A request
    /// with a value already seen passes; one with a value that would go
    /// over is refused, and its pair is given back with the rest of the
    /// request's units when the answer refuses it (so the value stays new
    /// and is refused again). Both checks go through the backend, so the
    /// history is shared when the state is.
    #[allow(clippy::too_many_arguments)]
    fn step_distinct(
        &self,
        index: u32,
        field: Field,
        request: &Request<'_>,
        tables: &impl LimitStore,
        now: Timestamp,
        key: &mut Vec<u8>,
        counted: &mut Vec<Counted>,
        probe: bool,
    ) -> Step {
        let Some(table) = tables.limit_table(index as usize) else {
            return Step::Pass;
        };
        let Some(hash) = compose_key(self, table, request, key) else {
            return Step::Pass;
        };
        let mut buf = TextBuf::new();
        let value = field.text(request, &mut buf);
        if value.is_empty() {
            return Step::Pass;
        }
        let lower = matches!(
            field.field_type(),
            FieldType::Address | FieldType::Domain | FieldType::TextNoCase
        );
        // The pair: the key's hash, then the value (lower-cased where the
        // field ignores case), hashed with the table's seeds; its text is
        // the key's and the value.
        let mut hasher = table.key_hasher();
        hasher.write_u64(hash);
        hasher.write_usize(value.len());
        let key_len = key.len();
        if key.len() + KEY_SEPARATOR.len() <= MAX_KEY_TEXT_BYTES {
            key.extend_from_slice(KEY_SEPARATOR);
        }
        let room = MAX_KEY_TEXT_BYTES.saturating_sub(key.len());
        for chunk in value.chunks(64) {
            let mut low = [0u8; 64];
            for (d, s) in low.iter_mut().zip(chunk) {
                *d = if lower { s.to_ascii_lowercase() } else { *s };
            }
            let low = &low[..chunk.len()];
            hasher.write(low);
            let shown = key.len() - key_len;
            if shown < room {
                key.extend_from_slice(&low[..low.len().min(room - shown)]);
            }
        }
        let pair_hash = hasher.finish();
        let count = !probe;
        let windows = self.maxima.len().min(ONCE.len());
        let pair = LimitCall {
            key: Key {
                hash: pair_hash,
                text: key.as_slice(),
            },
            units: 1,
            maxima: &ONCE[..windows],
            count,
        };
        let known = match tables.limit(index as usize, pair, now) {
            Ok(Verdict::Admitted) => false,
            Ok(Verdict::Refused(_)) => true,
            // The table is full: fail open, as every limit does.
            Ok(Verdict::Untracked) => return Step::Pass,
            Err(error) => return Step::Failed(error),
        };
        key.truncate(key_len);
        if known {
            return Step::Pass;
        }
        if count {
            counted.push(Counted {
                limit: index,
                hash: pair_hash,
                units: 1,
            });
        }
        let maxima = override_maxima(self, key);
        let maxima = maxima.as_deref().unwrap_or(&self.maxima);
        let call = LimitCall {
            key: Key {
                hash,
                text: key.as_slice(),
            },
            units: 1,
            maxima,
            count,
        };
        match tables.limit(index as usize, call, now) {
            Ok(Verdict::Admitted) => {
                if count {
                    counted.push(Counted {
                        limit: index,
                        hash,
                        units: 1,
                    });
                }
                Step::Pass
            }
            Ok(Verdict::Untracked) => Step::Pass,
            Ok(Verdict::Refused(r)) => Step::Over(self.refused(&r, maxima, key.len())),
            Err(error) => Step::Failed(error),
        }
    }
}

/// The maxima of an override for the key in `key`, if any (copied out, so
/// that the key buffer stays free): at most [`MAX_WINDOWS`](super::MAX_WINDOWS).
fn override_maxima(limit: &LimitRule, key: &[u8]) -> Option<smallvec::SmallVec<[u64; 4]>> {
    let overrides = limit.overrides.as_ref()?;
    let found = overrides.by_key.get(key)?;
    Some(
        limit
            .maxima
            .iter()
            .enumerate()
            .map(|(i, &max)| found.get(i).copied().flatten().unwrap_or(max))
            .collect(),
    )
}

/// Writes the key text of `request` for `limit` into `key` and returns its
/// hash; `None` when a part is empty (the rule does not apply).
fn compose_key(
    limit: &LimitRule,
    table: &LimitTable,
    request: &Request<'_>,
    key: &mut Vec<u8>,
) -> Option<u64> {
    key.clear();
    let mut hasher = table.key_hasher();
    for (i, part) in limit.key.iter().enumerate() {
        if i > 0 && key.len() + KEY_SEPARATOR.len() <= MAX_KEY_TEXT_BYTES {
            key.extend_from_slice(KEY_SEPARATOR);
        }
        match *part {
            KeyPart::Field(field) if field.field_type() == FieldType::Ip => {
                // The whole address; an IPv4-mapped IPv6 address is the IPv4
                // address it maps (as the masked forms count it).
                let ip = mask_ip(field.ip(request)?, 32, 128);
                let mut buf = TextBuf::new();
                let text = buf.write_ip(ip);
                hasher.write_usize(text.len());
                hasher.write(text);
                if key.len() + text.len() <= MAX_KEY_TEXT_BYTES {
                    key.extend_from_slice(text);
                }
            }
            KeyPart::Field(field) => {
                let mut buf = TextBuf::new();
                let value = field.text(request, &mut buf);
                if value.is_empty() {
                    return None;
                }
                hasher.write_usize(value.len());
                let lower = matches!(
                    field.field_type(),
                    FieldType::Address | FieldType::Domain | FieldType::TextNoCase
                );
                let room = MAX_KEY_TEXT_BYTES.saturating_sub(key.len());
                let shown = &value[..value.len().min(room)];
                if lower {
                    key.extend(shown.iter().map(u8::to_ascii_lowercase));
                    // Hash the whole value, lower-cased, a chunk at a time.
                    for chunk in value.chunks(64) {
                        let mut low = [0u8; 64];
                        for (d, s) in low.iter_mut().zip(chunk) {
                            *d = s.to_ascii_lowercase();
                        }
                        hasher.write(&low[..chunk.len()]);
                    }
                } else {
                    key.extend_from_slice(shown);
                    hasher.write(value);
                }
            }
            KeyPart::Ip { field, v4, v6 } => {
                let ip = field.ip(request)?;
                let masked = mask_ip(ip, v4, v6);
                let bits = match masked {
                    IpAddr::V4(_) => v4,
                    IpAddr::V6(_) => v6,
                };
                let mut buf = TextBuf::new();
                let text = buf.write_ip_prefix(masked, bits);
                hasher.write_usize(text.len());
                hasher.write(text);
                if key.len() + text.len() <= MAX_KEY_TEXT_BYTES {
                    key.extend_from_slice(text);
                }
            }
        }
    }
    Some(hasher.finish())
}

/// `ip` with its host bits cleared: `v4` prefix bits for IPv4 (and
/// IPv4-mapped IPv6), `v6` for IPv6.
pub(crate) fn mask_ip(ip: IpAddr, v4: u8, v6: u8) -> IpAddr {
    let ip = match ip {
        IpAddr::V6(v6addr) => match v6addr.to_ipv4_mapped() {
            Some(v4addr) => IpAddr::V4(v4addr),
            None => ip,
        },
        IpAddr::V4(_) => ip,
    };
    match ip {
        IpAddr::V4(a) => {
            let bits = u32::from(v4.min(32));
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let bits = u32::from(v6.min(128));
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            IpAddr::V6((u128::from(a) & mask).into())
        }
    }
}
