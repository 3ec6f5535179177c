//! Benchmark support for policyd: realistic Postfix policy requests, the hot path
//! of one connection, a seeded request mix and a latency histogram.
//!
//! This crate is not published and holds no product code. It serves four users:
//!
//! - the criterion benches (`benches/hot_path.rs`), one group per layer of the hot
//!   path (frame, parse, decide, encode, end to end), and of compiled policies
//!   (`benches/policy.rs`, with the generated policies of [`policies`]);
//! - the instruction-count guard (`benches/instructions.rs`, gungraun under
//!   valgrind, budgets in `budgets.toml`, checked by `ci-budgets.sh`);
//! - the zero-allocation test (`tests/zero_alloc.rs`);
//! - the loopback load generator (`src/bin/loadgen.rs`) and the no-op reference
//!   server it is compared with (`src/bin/noop-server.rs`).
//!
//! What it does not do: open sockets (the binaries do), read the clock (callers
//! pass `now`), or allocate on the per-request path ([`Connection::handle`] and
//! [`LatencyHistogram::record`] allocate nothing once warmed up).
//!
//! ```
//! use policy_core::{Engine, Timestamp};
//! use policyd_benches::{Connection, FULL_RCPT};
//!
//! let engine = Engine::default();
//! let mut conn = Connection::new(policy_proto::Limits::default());
//! let answered = conn.handle(&engine, Timestamp::from_unix_millis(0), FULL_RCPT)?;
//! assert_eq!(answered, 1);
//! assert_eq!(conn.reply(), b"action=DUNNO\n\n");
//! # Ok::<(), policyd_benches::HotPathError>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]

use std::fmt;

pub mod policies;

use policy_core::facts::{Answer, FactId, Facts, QueryKind};
use policy_core::{Engine, ParseError, Request, Scratch, Step, Timestamp};
use policy_proto::{FrameError, Framer, Limits};

// ---------------------------------------------------------------------------
// Outside facts from a cache
// ---------------------------------------------------------------------------

/// A DNS answer as a resolver's cache keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CachedAnswer {
    /// A or AAAA records.
    Addresses(Vec<std::net::IpAddr>),
    /// PTR or MX names.
    Names(Vec<Box<[u8]>>),
    /// TXT texts.
    Texts(Vec<Box<[u8]>>),
    /// NXDOMAIN or NODATA.
    NotFound,
}

/// Answers by (kind, name), as the daemon's DNS cache holds them once every
/// answer a request needs is cached; a query it does not hold is answered
/// "not found" (a cached negative answer).
#[derive(Debug, Default)]
pub struct FactCache {
    answers: std::collections::HashMap<
        QueryKind,
        std::collections::HashMap<Box<[u8]>, CachedAnswer, ahash::RandomState>,
        ahash::RandomState,
    >,
}

impl FactCache {
    /// A cache holding `answers`.
    pub fn new<'a>(answers: impl IntoIterator<Item = (QueryKind, &'a str, CachedAnswer)>) -> Self {
        let mut cache = Self::default();
        for (kind, name, answer) in answers {
            cache
                .answers
                .entry(kind)
                .or_default()
                .insert(name.as_bytes().into(), answer);
        }
        cache
    }

    /// Decide `request` as the daemon does when every answer is cached:
    /// start, answer each round's queries from the cache, resume; then
    /// `f` of the decision.
    pub fn decide<R>(
        &self,
        engine: &Engine,
        request: &Request<'_>,
        now: Timestamp,
        scratch: &mut Scratch,
        f: impl FnOnce(&policy_core::Decision<'_>) -> R,
    ) -> R {
        let mut step = engine.start(request, now, scratch);
        loop {
            match step {
                Step::Decided(decision) => return f(&decision),
                Step::NeedFacts => {
                    self.supply(scratch.facts_mut());
                    step = engine.resume(request, now, scratch);
                }
            }
        }
    }

    /// Answer every pending query of `facts` from the cache.
    pub fn supply(&self, facts: &mut Facts) {
        let mut found: smallvec::SmallVec<[(FactId, Option<&CachedAnswer>); 32]> =
            smallvec::SmallVec::new();
        for (id, query) in facts.pending() {
            let answer = self
                .answers
                .get(&query.kind)
                .and_then(|names| names.get(query.name));
            found.push((id, answer));
        }
        for (id, answer) in found {
            let mut refs: smallvec::SmallVec<[&[u8]; 8]> = smallvec::SmallVec::new();
            let answer = match answer {
                Some(CachedAnswer::Addresses(ips)) => Answer::Addresses(ips),
                Some(CachedAnswer::Names(names)) => {
                    refs.extend(names.iter().map(|n| &**n));
                    Answer::Names(&refs)
                }
                Some(CachedAnswer::Texts(texts)) => {
                    refs.extend(texts.iter().map(|t| &**t));
                    Answer::Texts(&refs)
                }
                Some(CachedAnswer::NotFound) | None => Answer::NotFound,
            };
            facts.supply(id, answer);
        }
    }
}

// ---------------------------------------------------------------------------
// Realistic requests
// ---------------------------------------------------------------------------

/// A full Postfix 3.x `RCPT` request, byte for byte as smtpd sends it: every
/// attribute Postfix knows (32, in smtpd's own order), unknown ones sent empty,
/// LF line ends, closed by the empty line.
///
/// The shape of the common case on an inbound MX: a TLS 1.3 connection from a
/// mailing-list server with a VERP sender, no SASL, no client certificate, an
/// empty `queue_id` (Postfix assigns it after the first accepted `RCPT`),
/// `recipient_count=0` (non-zero only at `DATA` and `END-OF-MESSAGE`) and the
/// client's `SIZE=` hint. 800 bytes, the middle of the 600-900 bytes that real
/// 3.x requests take.
pub const FULL_RCPT: &[u8] = concat!(
    "request=smtpd_access_policy\n",
    "protocol_state=RCPT\n",
    "protocol_name=ESMTP\n",
    "client_address=203.0.113.47\n",
    "client_name=mail-out-07.lists.example-sender.com\n",
    "client_port=51234\n",
    "reverse_client_name=mail-out-07.lists.example-sender.com\n",
    "server_address=198.51.100.25\n",
    "server_port=25\n",
    "helo_name=mail-out-07.lists.example-sender.com\n",
    "sender=newsletter-bounces+alice.smith=example.org@lists.example-sender.com\n",
    "recipient=alice.smith@example.org\n",
    "recipient_count=0\n",
    "queue_id=\n",
    "instance=3c1f.6565b8a2.a1b2c.0\n",
    "size=48213\n",
    "etrn_domain=\n",
    "stress=\n",
    "sasl_method=\n",
    "sasl_username=\n",
    "sasl_sender=\n",
    "ccert_subject=\n",
    "ccert_issuer=\n",
    "ccert_fingerprint=\n",
    "ccert_pubkey_fingerprint=\n",
    "encryption_protocol=TLSv1.3\n",
    "encryption_cipher=TLS_AES_256_GCM_SHA384\n",
    "encryption_keysize=256\n",
    "policy_context=\n",
    "compatibility_level=3.6\n",
    "mail_version=3.7.11\n",
    "tls_sni=mx1.example.org\n",
    "\n",
)
.as_bytes();

/// A Postfix 2.x-era `RCPT` request, as the 2.1 `SMTPD_POLICY_README` shows it:
/// only the twelve attributes of that time, plain SMTP, no TLS. Old relays and
/// hand-written test clients still send requests of this shape.
pub const SHORT_2X_RCPT: &[u8] = concat!(
    "request=smtpd_access_policy\n",
    "protocol_state=RCPT\n",
    "protocol_name=SMTP\n",
    "helo_name=some.domain.tld\n",
    "queue_id=8045F2AB23\n",
    "sender=foo@bar.tld\n",
    "recipient=bar@foo.tld\n",
    "recipient_count=0\n",
    "client_address=1.2.3.4\n",
    "client_name=another.domain.tld\n",
    "reverse_client_name=another.domain.tld\n",
    "instance=123.456.7\n",
    "\n",
)
.as_bytes();

/// A full Postfix 3.x `RCPT` request over IPv6 without TLS, with the null
/// sender (a bounce: `sender=` empty) and `encryption_keysize=0` as Postfix sends
/// it on a plaintext session.
pub const IPV6_RCPT: &[u8] = concat!(
    "request=smtpd_access_policy\n",
    "protocol_state=RCPT\n",
    "protocol_name=ESMTP\n",
    "client_address=2001:db8:1234:5678::25\n",
    "client_name=mx2.example.net\n",
    "client_port=40622\n",
    "reverse_client_name=mx2.example.net\n",
    "server_address=2001:db8:ffff::10\n",
    "server_port=25\n",
    "helo_name=mx2.example.net\n",
    "sender=\n",
    "recipient=postmaster@example.org\n",
    "recipient_count=0\n",
    "queue_id=\n",
    "instance=5d2e.6565b8a3.b3c4d.0\n",
    "size=0\n",
    "etrn_domain=\n",
    "stress=\n",
    "sasl_method=\n",
    "sasl_username=\n",
    "sasl_sender=\n",
    "ccert_subject=\n",
    "ccert_issuer=\n",
    "ccert_fingerprint=\n",
    "ccert_pubkey_fingerprint=\n",
    "encryption_protocol=\n",
    "encryption_cipher=\n",
    "encryption_keysize=0\n",
    "policy_context=\n",
    "compatibility_level=3.6\n",
    "mail_version=3.7.11\n",
    "tls_sni=\n",
    "\n",
)
.as_bytes();

/// A full Postfix 3.x `RCPT` request on the submission port from an
/// authenticated user (`sasl_method=PLAIN`, `sasl_username=`), from a dynamic
/// address whose forward lookup failed (`client_name=unknown`).
pub const SASL_RCPT: &[u8] = concat!(
    "request=smtpd_access_policy\n",
    "protocol_state=RCPT\n",
    "protocol_name=ESMTP\n",
    "client_address=192.0.2.77\n",
    "client_name=unknown\n",
    "client_port=60111\n",
    "reverse_client_name=dyn-192-0-2-77.pool.isp.example\n",
    "server_address=198.51.100.25\n",
    "server_port=587\n",
    "helo_name=[192.168.1.23]\n",
    "sender=alice.smith@example.org\n",
    "recipient=Bob.Jones@Partner.Example.COM\n",
    "recipient_count=0\n",
    "queue_id=\n",
    "instance=7a3b.6565b8a4.c5d6e.0\n",
    "size=2048\n",
    "etrn_domain=\n",
    "stress=\n",
    "sasl_method=PLAIN\n",
    "sasl_username=alice.smith@example.org\n",
    "sasl_sender=\n",
    "ccert_subject=\n",
    "ccert_issuer=\n",
    "ccert_fingerprint=\n",
    "ccert_pubkey_fingerprint=\n",
    "encryption_protocol=TLSv1.3\n",
    "encryption_cipher=TLS_AES_128_GCM_SHA256\n",
    "encryption_keysize=128\n",
    "policy_context=submission\n",
    "compatibility_level=3.6\n",
    "mail_version=3.7.11\n",
    "tls_sni=smtp.example.org\n",
    "\n",
)
.as_bytes();

/// A full Postfix 3.x `END-OF-MESSAGE` request: the queue id is assigned,
/// `recipient=` is empty and `recipient_count=3` counts the accepted
/// recipients, and `size=` is the exact message size.
pub const END_OF_MESSAGE: &[u8] = concat!(
    "request=smtpd_access_policy\n",
    "protocol_state=END-OF-MESSAGE\n",
    "protocol_name=ESMTP\n",
    "client_address=203.0.113.47\n",
    "client_name=mail-out-07.lists.example-sender.com\n",
    "client_port=51234\n",
    "reverse_client_name=mail-out-07.lists.example-sender.com\n",
    "server_address=198.51.100.25\n",
    "server_port=25\n",
    "helo_name=mail-out-07.lists.example-sender.com\n",
    "sender=newsletter-bounces+alice.smith=example.org@lists.example-sender.com\n",
    "recipient=\n",
    "recipient_count=3\n",
    "queue_id=4Q2Xk81yQWz9sWD\n",
    "instance=3c1f.6565b8a2.a1b2c.0\n",
    "size=48377\n",
    "etrn_domain=\n",
    "stress=\n",
    "sasl_method=\n",
    "sasl_username=\n",
    "sasl_sender=\n",
    "ccert_subject=\n",
    "ccert_issuer=\n",
    "ccert_fingerprint=\n",
    "ccert_pubkey_fingerprint=\n",
    "encryption_protocol=TLSv1.3\n",
    "encryption_cipher=TLS_AES_256_GCM_SHA384\n",
    "encryption_keysize=256\n",
    "policy_context=\n",
    "compatibility_level=3.6\n",
    "mail_version=3.7.11\n",
    "tls_sni=mx1.example.org\n",
    "\n",
)
.as_bytes();

/// One kind of request in the load generator's mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MixEntry {
    /// A short name for reports.
    pub name: &'static str,
    /// The request bytes, closed by the empty line.
    pub request: &'static [u8],
    /// Relative frequency in the mix.
    pub weight: u32,
}

/// The realistic request mix: mostly full `RCPT` requests (one per recipient,
/// the bulk of Postfix's traffic), some submission traffic, some bounces over
/// IPv6, one `END-OF-MESSAGE` per message with a few recipients, and a few
/// old-style short requests. Weights sum to 100.
pub const MIX: &[MixEntry] = &[
    MixEntry {
        name: "full-rcpt",
        request: FULL_RCPT,
        weight: 45,
    },
    MixEntry {
        name: "sasl-rcpt",
        request: SASL_RCPT,
        weight: 25,
    },
    MixEntry {
        name: "ipv6-rcpt",
        request: IPV6_RCPT,
        weight: 15,
    },
    MixEntry {
        name: "end-of-message",
        request: END_OF_MESSAGE,
        weight: 10,
    },
    MixEntry {
        name: "short-2x-rcpt",
        request: SHORT_2X_RCPT,
        weight: 5,
    },
];

// ---------------------------------------------------------------------------
// Seeded choice
// ---------------------------------------------------------------------------

/// A tiny xorshift64* pseudo-random generator: deterministic from its seed, so a
/// load run sends the same request sequence every time. Not for anything that
/// needs unpredictability.
#[derive(Debug, Clone)]
pub struct XorShift64 {
    state: u64,
}

impl XorShift64 {
    /// A generator started from `seed` (a zero seed, which xorshift cannot
    /// leave, is replaced by a fixed non-zero constant).
    pub const fn new(seed: u64) -> Self {
        Self {
            state: if seed == 0 {
                0x9E37_79B9_7F4A_7C15
            } else {
                seed
            },
        }
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Pick an entry of `mix` with probability proportional to its weight.
    /// Returns `None` only for an empty mix or one whose weights are all zero.
    pub fn pick<'m>(&mut self, mix: &'m [MixEntry]) -> Option<&'m MixEntry> {
        let total: u64 = mix.iter().map(|e| u64::from(e.weight)).sum();
        if total == 0 {
            return None;
        }
        let mut r = self.next_u64() % total;
        for entry in mix {
            let w = u64::from(entry.weight);
            if r < w {
                return Some(entry);
            }
            r -= w;
        }
        None
    }
}

// ---------------------------------------------------------------------------
// The hot path of one connection
// ---------------------------------------------------------------------------

/// Bytes reserved up front for a connection's reply buffer. A reply is
/// `action=` + at most `policy_core::MAX_TEXT_BYTES` (450) of text plus a
/// verb and code + `\n\n`; 1 KiB holds the longest with room to spare, so
/// encoding never has to grow the buffer.
pub const REPLY_CAPACITY: usize = 1024;

/// Why [`Connection::handle`] stopped: the same faults on which the daemon logs
/// a warning and closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HotPathError {
    /// The bytes are not a sequence of policy requests.
    Frame(FrameError),
    /// A complete frame is not a valid request.
    Parse(ParseError),
}

impl fmt::Display for HotPathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Frame(e) => write!(f, "framing failed: {e}"),
            Self::Parse(e) => write!(f, "parsing failed: {e}"),
        }
    }
}

impl std::error::Error for HotPathError {}

/// How many requests a benchmark's connection state (framer, scratch, reply
/// buffer) carries before it is measured: enough for every buffer to reach its
/// steady-state size.
pub const WARM_UP_REQUESTS: usize = 16;

/// A framer that has already framed `request` [`WARM_UP_REQUESTS`] times.
///
/// # Panics
///
/// If `request` is not one complete request (a benchmark bug).
pub fn warmed_framer(request: &[u8]) -> Framer {
    let mut framer = Framer::new(Limits::default());
    for _ in 0..WARM_UP_REQUESTS {
        framer.feed(request);
        framer
            .next_frame()
            .expect("benchmark request frames")
            .expect("benchmark request is complete");
    }
    framer
}

/// The frame the framer yields for `request`, owned.
///
/// # Panics
///
/// If `request` is not one complete request (a benchmark bug).
pub fn frame_of(request: &[u8]) -> Vec<u8> {
    let mut framer = Framer::new(Limits::default());
    framer.feed(request);
    framer
        .next_frame()
        .expect("benchmark request frames")
        .expect("benchmark request is complete")
        .to_vec()
}

/// The per-connection state of the hot path, as DESIGN.md lays it out: one
/// framer (the read buffer), one scratch space, one write buffer, all reused for
/// every request on the connection.
#[derive(Debug)]
pub struct Connection {
    framer: Framer,
    scratch: Scratch,
    out: Vec<u8>,
}

impl Connection {
    /// A fresh connection enforcing `limits`, with [`REPLY_CAPACITY`] bytes of
    /// reply buffer reserved.
    pub fn new(limits: Limits) -> Self {
        Self {
            framer: Framer::new(limits),
            scratch: Scratch::new(),
            out: Vec::with_capacity(REPLY_CAPACITY),
        }
    }

    /// Frame `input` (bytes as read from the socket), then parse, decide (with
    /// `engine` at `now`) and encode every complete request in it, appending the
    /// replies to the reply buffer. Returns how many requests were answered; an
    /// incomplete request stays buffered for the next call.
    ///
    /// Allocates nothing once the connection has carried a request of this size.
    pub fn handle(
        &mut self,
        engine: &Engine,
        now: Timestamp,
        input: &[u8],
    ) -> Result<usize, HotPathError> {
        self.framer.feed(input);
        let mut answered = 0;
        while let Some(frame) = self.framer.next_frame().map_err(HotPathError::Frame)? {
            let request = Request::parse(frame).map_err(HotPathError::Parse)?;
            let decision = engine.decide(&request, now, &mut self.scratch);
            policy_proto::encode(&decision, &mut self.out);
            answered += 1;
        }
        Ok(answered)
    }

    /// A connection that has already answered `request` [`WARM_UP_REQUESTS`]
    /// times (deciding with `engine` at `now`), its replies cleared: the
    /// steady state of a live connection, where nothing allocates.
    ///
    /// # Panics
    ///
    /// If `request` is not one valid, complete request (a benchmark bug).
    pub fn warmed(engine: &Engine, now: Timestamp, request: &[u8]) -> Self {
        let mut conn = Self::new(Limits::default());
        for _ in 0..WARM_UP_REQUESTS {
            conn.clear_reply();
            conn.handle(engine, now, request).expect("valid request");
        }
        conn.clear_reply();
        conn
    }

    /// The replies encoded since the last [`Connection::clear_reply`].
    pub fn reply(&self) -> &[u8] {
        &self.out
    }

    /// Forget the replies (after writing them to the socket); keeps the capacity.
    pub fn clear_reply(&mut self) {
        self.out.clear();
    }
}

// ---------------------------------------------------------------------------
// Latency histogram
// ---------------------------------------------------------------------------

/// Sub-buckets per power of two: 2^6 = 64, so a recorded value is reported
/// within 1/64 (1.6 %) of its true value, enough for p99.9 latencies.
const SUB_BITS: u32 = 6;
const SUB_COUNT: usize = 1 << SUB_BITS;
/// Buckets needed to cover every `u64`: values below 64 exactly, then 64
/// sub-buckets for each of the octaves 2^6 .. 2^63.
const BUCKETS: usize = SUB_COUNT + (64 - SUB_BITS as usize) * SUB_COUNT;

/// A log-linear histogram of latencies in nanoseconds (HdrHistogram's layout,
/// fixed size): allocated once, then [`LatencyHistogram::record`] is one index
/// computation and one increment, never an allocation.
#[derive(Clone)]
pub struct LatencyHistogram {
    counts: Box<[u64]>,
    total: u64,
    max: u64,
}

impl fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("total", &self.total)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    /// An empty histogram (about 30 KiB).
    pub fn new() -> Self {
        Self {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            max: 0,
        }
    }

    fn index(value: u64) -> usize {
        if value < SUB_COUNT as u64 {
            // Exact below 64: at most 63, fits.
            return value as usize;
        }
        let msb = 63 - value.leading_zeros(); // >= SUB_BITS
        let shift = msb - SUB_BITS;
        let sub = (value >> shift) as usize - SUB_COUNT; // 0..SUB_COUNT
        SUB_COUNT + shift as usize * SUB_COUNT + sub
    }

    /// The highest value that falls in bucket `index`.
    fn upper_bound(index: usize) -> u64 {
        if index < SUB_COUNT {
            return index as u64;
        }
        let shift = ((index - SUB_COUNT) / SUB_COUNT) as u32;
        let sub = ((index - SUB_COUNT) % SUB_COUNT) as u64;
        let low = (SUB_COUNT as u64 + sub) << shift;
        low + ((1u64 << shift) - 1)
    }

    /// Count one value.
    pub fn record(&mut self, nanos: u64) {
        self.counts[Self::index(nanos)] += 1;
        self.total += 1;
        self.max = self.max.max(nanos);
    }

    /// Add every count of `other` to this histogram.
    pub fn merge(&mut self, other: &Self) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// How many values were recorded.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether no value was recorded.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The largest value recorded (exact), 0 when empty.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value below or at which a fraction `q` (0.0..=1.0) of the recorded
    /// values lie, reported as its bucket's upper bound (never above
    /// [`LatencyHistogram::max`]); 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let q = q.clamp(0.0, 1.0);
        // The rank of the wanted value, 1-based: ceil(q * total), at least 1.
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0u64;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::upper_bound(index).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attribute_names(request: &[u8]) -> Vec<&[u8]> {
        request
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| line.split(|&b| b == b'=').next().unwrap_or_default())
            .collect()
    }

    #[test]
    fn requests_are_well_formed() {
        for entry in MIX {
            let r = entry.request;
            assert!(
                r.ends_with(b"\n\n"),
                "{} ends with the empty line",
                entry.name
            );
            assert!(
                !r[..r.len() - 1].windows(2).any(|w| w == b"\n\n"),
                "{}",
                entry.name
            );
            assert!(!r.contains(&b'\r') && !r.contains(&0), "{}", entry.name);
            for line in r.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                assert!(line.contains(&b'='), "{}: {line:?}", entry.name);
            }
        }
    }

    #[test]
    fn full_rcpt_is_a_full_postfix_3_request() {
        let names = attribute_names(FULL_RCPT);
        assert_eq!(names.len(), 32);
        assert!(
            (700..=900).contains(&FULL_RCPT.len()),
            "{} bytes",
            FULL_RCPT.len()
        );
        // Empty attributes as Postfix sends them.
        assert!(FULL_RCPT.windows(10).any(|w| w == b"\nqueue_id="));
        assert!(FULL_RCPT.windows(14).any(|w| w == b"\nsasl_method=\n"));
        for other in [IPV6_RCPT, SASL_RCPT, END_OF_MESSAGE] {
            assert_eq!(attribute_names(other), names);
        }
        assert_eq!(attribute_names(SHORT_2X_RCPT).len(), 12);
    }

    #[test]
    fn xorshift_is_deterministic_and_follows_weights() {
        let mut a = XorShift64::new(42);
        let mut b = XorShift64::new(42);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(XorShift64::new(0).next_u64(), 0);
        let mut rng = XorShift64::new(7);
        let mut counts = [0u32; 5];
        for _ in 0..100_000 {
            let picked = rng.pick(MIX).expect("non-empty mix");
            let i = MIX
                .iter()
                .position(|e| e.name == picked.name)
                .expect("from MIX");
            counts[i] += 1;
        }
        for (entry, &count) in MIX.iter().zip(&counts) {
            let expected = f64::from(entry.weight) * 1000.0;
            let got = f64::from(count);
            assert!(
                (got - expected).abs() < expected * 0.1 + 100.0,
                "{}: {count}",
                entry.name
            );
        }
        assert_eq!(rng.pick(&[]), None);
    }

    #[test]
    fn histogram_buckets_cover_and_order() {
        let rows: &[(u64, u64)] = &[
            (0, 0),
            (1, 1),
            (63, 63),
            (64, 64),
            (127, 127),
            (128, 129),
            (1000, 1007),
            (u64::MAX, u64::MAX),
        ];
        for &(value, upper) in rows {
            let i = LatencyHistogram::index(value);
            assert!(i < BUCKETS, "{value}");
            assert_eq!(LatencyHistogram::upper_bound(i), upper, "{value}");
            assert!(upper >= value);
        }
        let mut last = 0;
        for v in (0..100_000u64).step_by(7) {
            let i = LatencyHistogram::index(v);
            assert!(i >= last);
            last = i;
        }
    }

    #[test]
    fn histogram_quantiles() {
        let mut h = LatencyHistogram::new();
        assert_eq!(h.quantile(0.5), 0);
        assert!(h.is_empty());
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5);
        assert!((500_000..=508_000).contains(&p50), "{p50}");
        let p99 = h.quantile(0.99);
        assert!((990_000..=1_000_000).contains(&p99), "{p99}");
        assert_eq!(h.quantile(1.0), 1_000_000);
        assert_eq!(h.max(), 1_000_000);
        let mut other = LatencyHistogram::new();
        other.record(5_000_000);
        h.merge(&other);
        assert_eq!(h.len(), 1001);
        assert_eq!(h.quantile(1.0), 5_000_000);
    }
}
