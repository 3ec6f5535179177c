//! The server: listeners, accept threads, the connection cap, and an orderly
//! stop.
//!
//! Threads:
//!
//! - the main thread binds every listener, then waits for signals
//!   ([`crate::signals`]);
//! - one accept thread per listener;
//! - one thread per connection ([`crate::conn`]), with a
//!   [`CONNECTION_STACK_BYTES`] stack;
//! - the log flusher ([`crate::log`]).
//!
//! A connection over the cap (`--max-connections`) is logged with its peer
//! and closed at once, before any byte is read. On SIGTERM or SIGINT the main
//! thread sets the stop flag and wakes the accept threads (which close their
//! listeners); connections answer what they have in flight and close; the
//! process exits 0 once none is left, or after [`SHUTDOWN_WAIT`] at most.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use policy_core::{Engine, Policy};
use policy_proto::Limits;

use crate::cli::{self, Config, EX_OSERR};
use crate::conn::{self, POLL_INTERVAL, SHUTDOWN_GRACE};
use crate::listen::{self, describe, Listener, Stream};
use crate::log::{self, Level, Line};
use crate::signals::{Signal, Signals};

/// Stack size of connection and accept threads: 128 KiB.
///
/// A connection's buffers live on the heap; its stack only holds the serve
/// loop, the parser (nom, not recursive here) and log formatting, a few KiB
/// deep even in debug builds. 128 KiB leaves a wide margin for that, and for the
/// policy evaluation of later versions, while 1000 connections reserve 128 MiB
/// of address space instead of the 2 MiB default's 2 GiB. Only the pages
/// actually touched are backed by memory.
pub(crate) const CONNECTION_STACK_BYTES: usize = 128 * 1024;

/// After an accept error (e.g. out of file descriptors), wait this long before
/// accepting again, so a persistent error cannot spin a core or flood the log.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// A persistent accept error is logged at most this often.
const ACCEPT_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// At shutdown, how long the main thread waits for the accept threads to see
/// the stop flag after waking them.
const ACCEPTOR_STOP_WAIT: Duration = Duration::from_secs(2);

/// At shutdown, the longest the main thread waits for connections to finish:
/// the connections' own grace period plus one polling tick and a margin. A
/// connection still open after that is abandoned (and logged).
pub(crate) const SHUTDOWN_WAIT: Duration =
    SHUTDOWN_GRACE.saturating_add(POLL_INTERVAL.saturating_mul(2));

/// How often the main thread checks the connection count while stopping.
const SHUTDOWN_POLL: Duration = Duration::from_millis(20);

/// The settings a connection needs, from the command line.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Connections over this are refused.
    pub(crate) max_connections: usize,
    /// An idle connection is closed after this long without a byte.
    pub(crate) idle_timeout: Duration,
    /// A request must be complete this long after its first byte.
    pub(crate) request_timeout: Duration,
    /// Framer limits.
    pub(crate) limits: Limits,
}

/// State shared by every thread.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The policy in force.
    pub(crate) engine: Engine,
    /// Set once, at SIGTERM or SIGINT.
    pub(crate) stopping: AtomicBool,
    /// Connections being served now.
    pub(crate) active: AtomicUsize,
    /// From the command line.
    pub(crate) settings: Settings,
}

/// A place under the connection cap, given back when dropped (also when the
/// connection thread panics or could not be started).
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Run the daemon with `config` until it is told to stop. Returns the exit
/// code.
pub(crate) fn run(config: Config, signals: &mut Signals) -> u8 {
    let mut listeners = Vec::new();
    for addr in &config.listen {
        match listen::bind(addr) {
            Ok(bound) => listeners.extend(bound),
            Err(e) => {
                for listener in &listeners {
                    listener.cleanup();
                }
                eprintln!("policyd: error: {e}");
                return EX_OSERR;
            }
        }
    }

    if config.idle_timeout.as_secs() <= cli::POSTFIX_MAX_TTL_SECS {
        log::warning!(
            "--idle-timeout {} s is not above Postfix's smtpd_policy_service_max_ttl \
             (1000 s by default): policyd may close connections Postfix still uses, \
             delaying mail by a retry",
            config.idle_timeout.as_secs()
        );
    }

    let shared = Arc::new(Shared {
        engine: Engine::new(Policy::always(config.action.clone())),
        stopping: AtomicBool::new(false),
        active: AtomicUsize::new(0),
        settings: Settings {
            max_connections: config.max_connections,
            idle_timeout: config.idle_timeout,
            request_timeout: config.request_timeout,
            limits: config.limits,
        },
    });

    let (done_tx, done_rx) = mpsc::channel();
    for listener in &listeners {
        let spawned = listener.try_clone().and_then(|clone| {
            let shared = Arc::clone(&shared);
            let done = done_tx.clone();
            thread::Builder::new()
                .name("accept".into())
                .stack_size(CONNECTION_STACK_BYTES)
                .spawn(move || {
                    accept_loop(&clone, &shared);
                    // The receiver only goes away when main is exiting anyway.
                    let _ = done.send(());
                })
        });
        if let Err(e) = spawned {
            shared.stopping.store(true, Ordering::Release);
            wake_all(&listeners);
            cleanup_all(&listeners);
            eprintln!(
                "policyd: error: cannot start the accept thread for {}: {}",
                listener.local_display(),
                describe(&e)
            );
            return EX_OSERR;
        }
    }
    drop(done_tx);

    for listener in &listeners {
        log::notice!("listening on {}", listener.local_display());
    }
    // Like `notice!`: logged whatever the level (`Line` does not filter).
    let mut line = Vec::new();
    let mut start = Line::start(&mut line, Level::Info);
    start
        .text("policyd ")
        .text(env!("CARGO_PKG_VERSION"))
        .text(" ready");
    let mut action = Vec::new();
    config.action.write_wire(&mut action);
    start
        .field("action", &action)
        .field_display("max_connections", config.max_connections)
        .field_display("idle_timeout", config.idle_timeout.as_secs())
        .field_display("request_timeout", config.request_timeout.as_secs());
    start.finish();
    // Tests and supervisors read the `listening on` lines: don't make them wait.
    log::flush();

    let first = loop {
        match signals.wait() {
            Signal::Stop(name) => break name,
            Signal::Reload => log::notice!(
                "SIGHUP received: reload not supported until policy files exist; nothing to do"
            ),
        }
    };

    log::notice!(
        "{first} received: stopping; {} connections open",
        shared.active.load(Ordering::Acquire)
    );
    shared.stopping.store(true, Ordering::Release);
    wake_all(&listeners);
    let acceptors_deadline = Instant::now() + ACCEPTOR_STOP_WAIT;
    for _ in &listeners {
        let left = acceptors_deadline.saturating_duration_since(Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            log::warning!(
                "an accept thread did not stop in time; new connections are closed at once"
            );
            break;
        }
    }

    // Close the listening sockets (the accept threads dropped their handles)
    // and remove UNIX socket files: from now on connecting fails at once.
    cleanup_all(&listeners);
    drop(listeners);

    let deadline = Instant::now() + SHUTDOWN_WAIT;
    let mut forced = false;
    loop {
        let active = shared.active.load(Ordering::Acquire);
        if active == 0 {
            break;
        }
        if Instant::now() >= deadline {
            log::warning!(
                "{active} connections still open after {} s: exiting anyway",
                SHUTDOWN_WAIT.as_secs()
            );
            break;
        }
        if let Some(name) = signals.poll_stop() {
            log::warning!("{name} received again: exiting now with {active} connections open");
            forced = true;
            break;
        }
        thread::sleep(SHUTDOWN_POLL);
    }
    if !forced {
        log::notice!("stopped");
    }
    log::flush();
    0
}

fn wake_all(listeners: &[Listener]) {
    for listener in listeners {
        listener.wake();
    }
}

fn cleanup_all(listeners: &[Listener]) {
    for listener in listeners {
        listener.cleanup();
    }
}

/// Accept connections until the stop flag is set. A connection accepted after
/// that is closed at once.
fn accept_loop(listener: &Listener, shared: &Arc<Shared>) {
    let mut last_warning: Option<Instant> = None;
    loop {
        let accepted = listener.accept();
        if shared.stopping.load(Ordering::Acquire) {
            return;
        }
        match accepted {
            Ok((stream, peer)) => admit(stream, peer, shared),
            Err(e) => match e.kind() {
                // The client gave up before we accepted: nothing to do.
                io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted => {}
                _ => {
                    // A persistent error (out of file descriptors) repeats
                    // every backoff: warn at most every ACCEPT_WARNING_INTERVAL.
                    if last_warning.map_or(true, |t| t.elapsed() >= ACCEPT_WARNING_INTERVAL) {
                        log::warning!(
                            "cannot accept connections on {}: {}; retrying",
                            listener.local_display(),
                            describe(&e)
                        );
                        last_warning = Some(Instant::now());
                    }
                    thread::sleep(ACCEPT_ERROR_BACKOFF);
                }
            },
        }
    }
}

/// Start a thread for a new connection, or refuse it over the cap.
fn admit(stream: Stream, peer: String, shared: &Arc<Shared>) {
    let max = shared.settings.max_connections;
    let before = shared.active.fetch_add(1, Ordering::AcqRel);
    let slot = Slot(Arc::clone(shared));
    if before >= max {
        drop(slot);
        refuse(
            &stream,
            &peer,
            format_args!("connection limit reached (max {max})"),
        );
        return;
    }
    log::debug!("connection opened peer={peer} active={}", before + 1);
    // The stream moves into the thread; keep a way to name it if spawn fails.
    let spawned = thread::Builder::new()
        .name("conn".into())
        .stack_size(CONNECTION_STACK_BYTES)
        .spawn({
            let shared = Arc::clone(shared);
            let peer = peer.clone();
            move || {
                let _slot = slot;
                conn::serve(stream, &peer, &shared);
            }
        });
    if let Err(e) = spawned {
        // The closure (stream and slot) was dropped: the socket is closed and
        // the slot given back.
        log_refusal(
            &peer,
            format_args!("cannot start a thread: {}", describe(&e)),
        );
    }
}

fn refuse(stream: &Stream, peer: &str, reason: std::fmt::Arguments<'_>) {
    stream.shutdown();
    log_refusal(peer, reason);
}

fn log_refusal(peer: &str, reason: std::fmt::Arguments<'_>) {
    if !log::enabled(Level::Warn) {
        return;
    }
    let mut buf = Vec::with_capacity(160);
    let mut line = Line::start(&mut buf, Level::Warn);
    line.text("refusing connection")
        .field("peer", peer.as_bytes())
        .field_display("reason", reason);
    line.finish();
}
