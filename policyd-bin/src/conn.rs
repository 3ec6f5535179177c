//! One policy connection: read requests, decide, reply, until the client
//! closes, a timeout expires, a protocol fault occurs, or the daemon stops.
//!
//! ```text
//! socket --read_from--> Framer --frame--> Request::parse --> Engine::start
//!        <--write_all-- reply buffer <--encode-- Decision
//! ```
//!
//! A policy without DNS tests is decided by `Engine::start` at once. One
//! with DNS tests makes `start` ask for facts: the connection's DNS client
//! ([`crate::dns`]) answers them, from the shared cache or the servers,
//! within `--dns-deadline`, and `Engine::resume` decides.
//!
//! Each connection owns one [`Framer`] (its read buffer), one reply buffer, one
//! [`Scratch`] and one log line buffer, all reused for every request: in steady
//! state serving a request allocates nothing, logging included.
//!
//! The socket's read timeout is [`POLL_INTERVAL`], so a connection blocked in
//! `read` wakes up regularly to check the daemon's stop flag and its own
//! timeouts. A wake-up with nothing read changes nothing else: a persistent
//! connection stays open until [`Settings::idle_timeout`] has passed without a
//! byte from the client.
//!
//! On any protocol fault (a [`FrameError`], a [`policy_core::ParseError`], a
//! request that stalls past [`Settings::request_timeout`]) the connection logs a
//! warning naming the peer and the reason and closes without sending anything:
//! a partial or guessed reply could make Postfix act on the wrong answer, while
//! a closed connection makes it retry and then apply its `default_action`.
//!
//! Each decision is logged at info level as one `decision` line naming the
//! deciding rule. Each dry-run rule that applied to the request first gets
//! its own line, with the action it would have given:
//!
//! ```text
//! info: dry-run rule=big would="DEFER 4.5.3 Too big for now" decided_by=default client=... instance=...
//! info: decision rule=default action=DUNNO client=... instance=...
//! ```
//!
//! When a score item ran, the line also has the request's `score` and its
//! `score_reasons`.

use std::fmt;
use std::io::{self, Write as _};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use policy_core::{Request, Scratch, Step};
use policy_proto::{FrameError, Framer};

use crate::clock;
use crate::dns::{self, Rounds};
use crate::listen::{describe, Stream};
use crate::log::{self, Level, Line};
use crate::shared::{Settings, Shared};

/// The read timeout of every connection socket: how often a connection blocked
/// in `read` wakes to check the stop flag and its timeouts.
///
/// Half a second makes shutdown prompt (idle connections close within it) and
/// timeouts accurate to within it, while an idle connection costs two cheap
/// wake-ups a second (a `read` returning `EAGAIN`, no allocation). Measured:
/// 1000 idle connections (the default cap) use about 1.5% of one core.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// The write timeout of every connection socket. A reply is one small write
/// that fits in the socket buffer, so a write only blocks when a client sends
/// requests without reading the replies; after this long it is cut off.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection that is in the middle of a request when the daemon
/// is asked to stop may take to complete it. Postfix sends a request in one
/// write, so a request in flight completes in microseconds; this only bounds
/// a slow or stalled client so that shutdown never hangs on it.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Initial capacity of the reply buffer: `action=` plus the longest action
/// text (450 bytes) plus the verb and code, rounded up. It never grows.
const REPLY_CAPACITY: usize = 512;

/// Initial capacity of the log line buffer: a decision line with typical
/// values. Long client values grow it once; it is then reused.
const LINE_CAPACITY: usize = 512;

/// Why a connection ended, and how loudly to say so.
enum Close {
    /// The client closed the connection between requests.
    ByClient,
    /// The client closed (or reset) the connection with a request incomplete.
    ByClientMidRequest,
    /// No byte from the client for the idle timeout.
    Idle,
    /// The daemon is stopping and the connection had nothing in flight.
    Shutdown,
    /// A protocol fault, a stalled request, an I/O error: a warning.
    Fault(Fault),
}

/// The reason of a warning-level close.
enum Fault {
    Frame(FrameError),
    Parse(policy_core::ParseError),
    RequestTimeout { secs: u64, buffered: usize },
    ShutdownIncomplete { buffered: usize },
    Read(io::Error),
    Write(io::Error),
    Configure(io::Error),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Frame(e) => write!(f, "{e}"),
            Self::Parse(e) => write!(f, "bad request: {e}"),
            Self::RequestTimeout { secs, buffered } => write!(
                f,
                "request timeout: request still incomplete after {secs} s ({buffered} bytes received)"
            ),
            Self::ShutdownIncomplete { buffered } => write!(
                f,
                "shutting down: request still incomplete after the grace period ({buffered} bytes received)"
            ),
            Self::Read(e) => write!(f, "read error: {}", describe(e)),
            Self::Write(e) => write!(f, "cannot send reply: {}", describe(e)),
            Self::Configure(e) => write!(f, "cannot set socket options: {}", describe(e)),
        }
    }
}

/// A connection's reusable state.
struct Conn<'a> {
    stream: Stream,
    peer: &'a str,
    shared: &'a Shared,
    framer: Framer,
    reply: Vec<u8>,
    scratch: Scratch,
    /// Its DNS client: sockets opened at the first DNS query, none for a
    /// policy without DNS tests.
    dns: dns::Client,
    line: Vec<u8>,
    /// Requests answered so far.
    requests: u64,
}

/// Serve `stream` until it ends; log how it ended.
pub(crate) fn serve(stream: Stream, peer: &str, shared: &Shared) {
    let settings = &shared.settings;
    let mut conn = Conn {
        stream,
        peer,
        shared,
        framer: Framer::new(settings.limits),
        reply: Vec::with_capacity(REPLY_CAPACITY),
        scratch: Scratch::new(),
        dns: dns::Client::new(),
        line: Vec::with_capacity(LINE_CAPACITY),
        requests: 0,
    };
    let close = conn.run(settings);
    conn.log_close(close);
    conn.stream.shutdown();
}

impl Conn<'_> {
    fn run(&mut self, settings: &Settings) -> Close {
        if let Err(e) = self.stream.configure(POLL_INTERVAL, WRITE_TIMEOUT) {
            return Close::Fault(Fault::Configure(e));
        }
        // When the last byte arrived (idle timeout), when the request now
        // buffered started (request timeout), when shutdown was noticed.
        let mut last_byte = Instant::now();
        let mut request_started: Option<Instant> = None;
        let mut stop_deadline: Option<Instant> = None;
        loop {
            let answered = match self.answer_buffered() {
                Ok(answered) => answered,
                Err(close) => return close,
            };
            // Only now is it known whether a partial request is buffered.
            if !self.framer.is_mid_request() {
                request_started = None;
            } else if answered > 0 || request_started.is_none() {
                request_started = Some(last_byte);
            }

            match request_started {
                Some(started) if started.elapsed() >= settings.request_timeout => {
                    return Close::Fault(Fault::RequestTimeout {
                        secs: settings.request_timeout.as_secs(),
                        buffered: self.framer.buffered_len(),
                    });
                }
                None if last_byte.elapsed() >= settings.idle_timeout => return Close::Idle,
                _ => {}
            }

            if self.shared.stopping.load(Ordering::Acquire) {
                let now = Instant::now();
                let deadline = *stop_deadline.get_or_insert(now + SHUTDOWN_GRACE);
                if self.framer.is_mid_request() {
                    if now >= deadline {
                        return Close::Fault(Fault::ShutdownIncomplete {
                            buffered: self.framer.buffered_len(),
                        });
                    }
                } else {
                    // Nothing buffered: answer what the client sent before it
                    // could see us stop, else close now.
                    match self.read_nonblocking() {
                        Ok(0) => return Close::ByClient,
                        Ok(_) if now < deadline => {
                            last_byte = now;
                            continue;
                        }
                        Ok(_) => {
                            return Close::Fault(Fault::ShutdownIncomplete {
                                buffered: self.framer.buffered_len(),
                            })
                        }
                        Err(e) if is_timeout(&e) => return Close::Shutdown,
                        Err(e) => return self.read_error(e),
                    }
                }
            }

            match self.framer.read_from(&mut self.stream) {
                Ok(0) if self.framer.is_mid_request() => return Close::ByClientMidRequest,
                Ok(0) => return Close::ByClient,
                Ok(_) => last_byte = Instant::now(),
                // Nothing arrived this tick: the checks above run again.
                Err(e) if is_timeout(&e) => {}
                Err(e) => return self.read_error(e),
            }
        }
    }

    /// One read that does not wait: `WouldBlock` when nothing is there.
    fn read_nonblocking(&mut self) -> io::Result<usize> {
        self.stream.set_nonblocking(true)?;
        let result = self.framer.read_from(&mut self.stream);
        self.stream.set_nonblocking(false)?;
        result
    }

    /// Classify a read error: a reset by the client is the client closing.
    fn read_error(&self, e: io::Error) -> Close {
        match e.kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
                if self.framer.is_mid_request() {
                    Close::ByClientMidRequest
                } else {
                    Close::ByClient
                }
            }
            _ => Close::Fault(Fault::Read(e)),
        }
    }

    /// Answer every complete request in the framer; returns how many.
    fn answer_buffered(&mut self) -> Result<u32, Close> {
        let mut answered = 0;
        loop {
            let started = Instant::now();
            let frame = match self.framer.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(answered),
                Err(e) => return Err(Close::Fault(Fault::Frame(e))),
            };
            let request = Request::parse(frame).map_err(|e| Close::Fault(Fault::Parse(e)))?;
            let engine = &self.shared.engine;
            let now = clock::now();
            // A policy without DNS tests decides here at once, as
            // `Engine::decide` would.
            let mut step = engine.start(&request, now, &mut self.scratch);
            if let Step::NeedFacts = step {
                let mut rounds = Rounds::new(&self.shared.dns.settings);
                while let Step::NeedFacts = step {
                    let facts = self.scratch.facts_mut();
                    rounds.round(
                        engine,
                        &self.shared.dns,
                        &mut self.dns,
                        facts,
                        now,
                        self.peer,
                    );
                    step = engine.resume(&request, now, &mut self.scratch);
                }
            }
            let decision = match step {
                Step::Decided(decision) => decision,
                // The loop above ends only when decided; should a later
                // policy-core ask again, every fact left is unknown.
                Step::NeedFacts => engine.decide(&request, now, &mut self.scratch),
            };
            self.reply.clear();
            // `action=<wire>\n\n`: templates expanded and sanitized by
            // policy-core; the encoder keeps a CR or LF off the wire.
            policy_proto::encode(&decision, &mut self.reply);
            if let Err(e) = self.stream.write_all(&self.reply) {
                return Err(match e.kind() {
                    io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted => Close::ByClientMidRequest,
                    _ => Close::Fault(Fault::Write(e)),
                });
            }
            let micros = started.elapsed().as_micros();
            self.requests += 1;
            answered += 1;
            if let Some(failure) = decision.backend_failure() {
                // The rule's `on_failure` applied; the administrator must
                // know that its state was not consulted.
                if log::enabled(Level::Warn) {
                    let mut line = Line::start(&mut self.line, Level::Warn);
                    line.text("state backend failed");
                    line.field("rule", failure.rule.as_bytes())
                        .field_display("reason", failure.error)
                        .field("on_failure", failure.outcome.as_str().as_bytes());
                    log_request_fields(&mut line, &request, self.peer);
                    line.finish();
                }
            }
            if log::enabled(Level::Info) {
                for hit in decision.dry_run {
                    let mut line = Line::start(&mut self.line, Level::Info);
                    line.text("dry-run");
                    line.field("rule", hit.rule.as_bytes())
                        .field("would", hit.wire)
                        .field("decided_by", decision.rule.as_bytes());
                    log_request_fields(&mut line, &request, self.peer);
                    line.finish();
                }
                let action = self
                    .reply
                    .strip_prefix(b"action=")
                    .and_then(|r| r.strip_suffix(b"\n\n"))
                    .unwrap_or(&self.reply);
                let mut line = Line::start(&mut self.line, Level::Info);
                line.text("decision");
                line.field("rule", decision.rule.as_bytes())
                    .field("action", action);
                if let Some((score, reasons)) = decision.score() {
                    let mut buf = [0u8; 24];
                    line.field("score", policy_core::base::bytes::score(score, &mut buf))
                        .field("score_reasons", reasons);
                }
                log_request_fields(&mut line, &request, self.peer);
                line.field_display("micros", micros);
                line.finish();
            }
        }
    }

    /// Log how the connection ended, at the level the cause deserves.
    fn log_close(&mut self, close: Close) {
        let (level, text) = match &close {
            Close::ByClient => (Level::Debug, "connection closed by client"),
            Close::ByClientMidRequest => (Level::Info, "connection closed by client mid-request"),
            Close::Idle => (Level::Info, "closing idle connection"),
            Close::Shutdown => (Level::Debug, "closing connection at shutdown"),
            Close::Fault(_) => (Level::Warn, "closing connection"),
        };
        if !log::enabled(level) {
            return;
        }
        let mut line = Line::start(&mut self.line, level);
        line.text(text).field("peer", self.peer.as_bytes());
        match &close {
            Close::Fault(fault) => {
                line.field_display("reason", fault);
            }
            Close::ByClientMidRequest => {
                line.field_display("buffered", self.framer.buffered_len());
            }
            Close::Idle => {
                line.field_display(
                    "reason",
                    format_args!("idle for {} s", self.shared.settings.idle_timeout.as_secs()),
                );
            }
            Close::ByClient | Close::Shutdown => {}
        }
        line.field_display("requests", self.requests);
        line.finish();
    }
}

/// The fields that identify a request in its decision and dry-run lines.
fn log_request_fields(line: &mut Line<'_>, request: &Request<'_>, peer: &str) {
    match request.client_address {
        Some(ip) => line.field_display("client", ip),
        None => line.field("client", b""),
    };
    line.field("peer", peer.as_bytes())
        .field("helo", request.helo_name)
        .field("sender", request.sender.raw)
        .field("recipient", request.recipient.raw)
        .field("instance", request.instance)
        .field(
            "state",
            request.protocol_state.map_or(&b""[..], |s| s.as_bytes()),
        );
    // What mail.log greps by, when Postfix has it: the client's verified
    // name, the login, the queue id (Postfix assigns it after MAIL FROM or
    // at DATA, depending on its settings).
    for (name, value) in [
        ("client_name", request.client_name),
        ("sasl_username", request.sasl_username),
        ("queue_id", request.queue_id),
    ] {
        if !value.is_empty() {
            line.field(name, value);
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    //! The serving path's allocation story, measured: a counting global
    //! allocator (test builds only) counts the allocations of the connection
    //! thread, and nothing else.

    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::thread;
    use std::time::Duration;

    use policy_core::{Action, Engine, NoFiles, Policy};
    use policy_proto::Limits;

    use super::*;
    use crate::shared::{Settings, Shared};

    struct Counting;

    static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

    thread_local! {
        /// Set on the thread whose allocations are counted. Const-initialized
        /// and without destructor, so reading it never allocates.
        static TRACKED: Cell<bool> = const { Cell::new(false) };
    }

    fn count() {
        if TRACKED.try_with(Cell::get).unwrap_or(false) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
    }

    // SAFETY: every method forwards to `System` with the caller's arguments
    // unchanged; counting touches only an atomic and a const thread-local.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            count();
            // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
            unsafe { System.alloc(layout) }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            count();
            // SAFETY: forwarded as is.
            unsafe { System.alloc_zeroed(layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            count();
            // SAFETY: forwarded as is; `ptr` came from `System` via `alloc`.
            unsafe { System.realloc(ptr, layout, new_size) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: forwarded as is; `ptr` came from `System` via `alloc`.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    /// A full Postfix 3.x RCPT request.
    const REQUEST: &[u8] = b"request=smtpd_access_policy\n\
        protocol_state=RCPT\nprotocol_name=ESMTP\nclient_address=192.0.2.17\n\
        client_name=mail.example.net\nclient_port=54321\nreverse_client_name=mail.example.net\n\
        server_address=127.0.0.1\nserver_port=25\nhelo_name=mail.example.net\n\
        sender=alice@example.net\nrecipient=bob@example.com\nrecipient_count=0\nqueue_id=\n\
        instance=1a2b.5f3e4d2c.8a1b.0\nsize=12345\netrn_domain=\nstress=\nsasl_method=\n\
        sasl_username=\nsasl_sender=\nccert_subject=\nccert_issuer=\nccert_fingerprint=\n\
        ccert_pubkey_fingerprint=\nencryption_protocol=TLSv1.3\n\
        encryption_cipher=TLS_AES_256_GCM_SHA384\nencryption_keysize=256\npolicy_context=\n\
        compatibility_level=3.6\nmail_version=3.7.11\n\n";

    const REPLY: &[u8] = b"action=REJECT 5.7.1 Go away \"now\"\n\n";

    fn exchange(client: &mut UnixStream, times: usize, expected: &[u8]) {
        let mut reply = vec![0u8; expected.len()];
        for _ in 0..times {
            client.write_all(REQUEST).unwrap();
            client.read_exact(&mut reply).unwrap();
            assert_eq!(&reply[..], expected);
        }
    }

    /// A policy that decides [`REQUEST`] with a templated action after a
    /// dry-run rule (templated too) applied: the dry-run log line and both
    /// expansions are on the measured path.
    const POLICY: &str = r#"
list nets cidr { 10.0.0.0/8 2001:db8::/32 }
list senders { .example.net "bad@" /^[0-9]+@/ }
rule big dry-run { if size > 10k then DEFER "4.5.3 $sender would wait ($size bytes)" }
rule block {
    state RCPT
    if sender in senders and not client_address in nets and recipient_domain == "example.com"
    then REJECT "5.7.1 Go away $sender"
}
default DUNNO
"#;

    #[test]
    fn steady_state_serving_and_idle_ticks_allocate_nothing() {
        // Real logging (decision and dry-run lines at info), output dropped.
        log::init_discarding(Level::Info).unwrap();
        // One after the other: the allocation counter is global.
        let action = Action::parse("REJECT 5.7.1 Go away \"now\"").unwrap();
        assert_serving_allocates_nothing(Policy::always(action), REPLY);
        let compiled = Policy::compile("alloc.conf", POLICY, &mut NoFiles)
            .unwrap()
            .policy;
        assert_serving_allocates_nothing(
            compiled,
            b"action=REJECT 5.7.1 Go away alice@example.net\n\n",
        );
    }

    fn assert_serving_allocates_nothing(policy: Policy, expected: &[u8]) {
        let shared = Arc::new(Shared {
            engine: Engine::new(policy),
            stopping: AtomicBool::new(false),
            active: AtomicUsize::new(1),
            settings: Settings {
                max_connections: 10,
                idle_timeout: Duration::from_secs(60),
                request_timeout: Duration::from_secs(60),
                limits: Limits::default(),
                allow: Vec::new(),
            },
            dns: crate::shared::dns::DnsShared::new(crate::cli::DnsSettings::default()),
        });
        let (mut client, server) = UnixStream::pair().unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let server_shared = Arc::clone(&shared);
        let server = thread::spawn(move || {
            TRACKED.with(|t| t.set(true));
            serve(Stream::Unix(server), "unix:test", &server_shared);
        });

        // Warm up: buffers reach their working sizes.
        exchange(&mut client, 100, expected);
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        exchange(&mut client, 2000, expected);
        // Idle over a few polling ticks (read timeouts), then serve again.
        thread::sleep(POLL_INTERVAL * 2 + Duration::from_millis(100));
        exchange(&mut client, 10, expected);
        let after = ALLOCATIONS.load(Ordering::Relaxed);

        drop(client);
        server.join().unwrap();
        assert_eq!(
            after - before,
            0,
            "allocations while serving 2010 requests on a warm connection"
        );
        // The counter does count this thread's allocations (no vacuous pass).
        TRACKED.with(|t| t.set(true));
        let boxed = std::hint::black_box(Box::new(7u64));
        TRACKED.with(|t| t.set(false));
        drop(boxed);
        assert!(ALLOCATIONS.load(Ordering::Relaxed) > after);
    }
}
