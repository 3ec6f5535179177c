//! The server: listeners, accept threads, the connection cap, and an orderly
//! stop.
//!
//! Threads:
//!
//! - the main thread binds every listener, then waits for signals
//!   ([`crate::signals`]);
//! - one accept thread per listener;
//! - with `--config`, the reload thread: on SIGHUP it reads and compiles the
//!   policy file again, off the signal-handling thread, and puts the new
//!   policy in force ([`Engine::replace`]) only if it compiles;
//! - one thread per connection ([`crate::conn`]), with a
//!   [`CONNECTION_STACK_BYTES`] stack;
//! - with `--state-file`, the state writer ([`crate::statefile`]): the
//!   limits' counters and the greylists' state to disk every
//!   `--state-interval`, and once more at a clean stop after the
//!   connections have stopped deciding;
//! - the log flusher ([`crate::log`]).
//!
//! A connection over the cap (`--max-connections`) is logged with its peer
//! and closed at once, before any byte is read. On SIGTERM or SIGINT the main
//! thread sets the stop flag and wakes the accept threads (which close their
//! listeners); connections answer what they have in flight and close; the
//! process exits 0 once none is left, or after [`SHUTDOWN_WAIT`] at most.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use policy_core::{Engine, State};

use crate::cli::{self, Config, PolicySource, EX_CANTCREAT, EX_OSERR};
use crate::conn::{self, POLL_INTERVAL, SHUTDOWN_GRACE};
use crate::dns;
use crate::listen::{self, describe, Listener, Stream};
use crate::log::{self, Level, Line};
use crate::policy_file::{self, plural, LoadError, Loaded};
use crate::service::{self, Notice};
use crate::shared::dns::DnsShared;
use crate::shared::{Settings, Shared};
use crate::signals::{Signal, Signals};
use crate::statefile::Writer;

/// Stack size of connection and accept threads: 128 KiB.
///
/// A connection's buffers live on the heap; its stack only holds the serve
/// loop, the parser (nom, not recursive here) and log formatting, a few KiB
/// deep even in debug builds. 128 KiB leaves a wide margin for that, and for the
/// policy evaluation of later versions, while 1000 connections reserve 128 MiB
/// of address space instead of the 2 MiB default's 2 GiB. Only the pages
/// actually touched are backed by memory.
pub(crate) const CONNECTION_STACK_BYTES: usize = 128 * 1024;

/// Stack size of the reload thread: 8 MiB, the main thread's default on
/// Linux. The compiler may recurse (nested conditions); a policy that
/// compiled at start, on the main thread, must compile again on reload.
const RELOAD_STACK_BYTES: usize = 8 * 1024 * 1024;

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

/// A place under the connection cap, given back when dropped (also when the
/// connection thread panics or could not be started).
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Run the daemon with `config` and the policy `loaded` from it until it is
/// told to stop. Returns the exit code. `dns_servers`: the DNS servers, read
/// at start when the policy has DNS tests ([`dns::prepare`]). `activated`:
/// the sockets systemd passed, used instead of `--listen` when there are
/// any ([`service::activated_listeners`]).
pub(crate) fn run(
    config: Config,
    loaded: Loaded,
    state: State,
    dns_servers: Option<Arc<[std::net::SocketAddr]>>,
    activated: Vec<Listener>,
    signals: &mut Signals,
) -> u8 {
    // Sockets systemd passed (socket activation) replace --listen.
    let from_systemd = !activated.is_empty();
    let mut listeners = activated;
    if !from_systemd {
        for addr in &config.listen {
            match listen::bind(addr) {
                Ok(bound) => listeners.extend(bound),
                Err(e) => {
                    cleanup_all(&listeners);
                    eprintln!("policyd: error: {e}");
                    return EX_OSERR;
                }
            }
        }
    }
    let service_args = &config.service;
    let unix_access = [
        service_args.unix_owner.is_some(),
        service_args.unix_group.is_some(),
        service_args.unix_mode.is_some(),
    ];
    if unix_access.contains(&true) && !listeners.iter().any(|l| l.created_unix_path().is_some()) {
        log::warning!(
            "--unix-owner, --unix-group and --unix-mode apply to UNIX sockets of --listen; \
             there is none (a socket from systemd has its unit's SocketUser=, SocketMode=)"
        );
    }
    let access = service::set_socket_access(
        &listeners,
        service_args.unix_owner.as_deref(),
        service_args.unix_group.as_deref(),
        service_args.unix_mode,
    );
    if let Err(e) = access {
        cleanup_all(&listeners);
        eprintln!("policyd: error: {e}");
        return EX_OSERR;
    }
    // Written before privileges are dropped: /run is root's.
    let _pidfile = match service_args.pidfile.as_deref().map(service::Pidfile::write) {
        Some(Err(e)) => {
            cleanup_all(&listeners);
            eprintln!("policyd: error: {e}");
            return EX_CANTCREAT;
        }
        Some(Ok(pidfile)) => Some(pidfile),
        None => None,
    };
    // Every socket is bound and every file kept open is open (the state
    // file's lock, in main): from here on the daemon needs no privilege.
    match service::drop_privileges(service_args.user.as_deref(), service_args.group.as_deref()) {
        Ok(said) if !said.is_empty() => log::notice!("{said}"),
        Ok(_) => {}
        Err(e) => {
            cleanup_all(&listeners);
            eprintln!("policyd: error: {e}");
            return EX_OSERR;
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
        engine: Engine::with_state(loaded.policy, state),
        stopping: AtomicBool::new(false),
        active: AtomicUsize::new(0),
        settings: Settings {
            max_connections: config.max_connections,
            idle_timeout: config.idle_timeout,
            request_timeout: config.request_timeout,
            limits: config.limits,
            allow: config.service.allow.clone(),
        },
        dns: DnsShared::new(config.dns.clone()),
    });
    if let Some(servers) = dns_servers {
        // Read at start, before binding (see `main`).
        let _ = shared.dns.servers.set(servers);
    }

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

    let reloader = match &config.policy {
        PolicySource::File(path) => match spawn_reloader(path.clone(), Arc::clone(&shared)) {
            Ok(reloader) => Some(reloader),
            Err(e) => {
                shared.stopping.store(true, Ordering::Release);
                wake_all(&listeners);
                cleanup_all(&listeners);
                eprintln!(
                    "policyd: error: cannot start the reload thread: {}",
                    describe(&e)
                );
                return EX_OSERR;
            }
        },
        PolicySource::Default | PolicySource::Action(_) => None,
    };

    let writer = match &config.state_file {
        Some(path) => match Writer::spawn(path.clone(), config.state_interval, Arc::clone(&shared))
        {
            Ok(writer) => Some(writer),
            Err(e) => {
                shared.stopping.store(true, Ordering::Release);
                wake_all(&listeners);
                cleanup_all(&listeners);
                eprintln!(
                    "policyd: error: cannot start the state writer thread: {}",
                    describe(&e)
                );
                return EX_OSERR;
            }
        },
        None => None,
    };

    for listener in &listeners {
        let from = if from_systemd {
            " (socket from systemd)"
        } else {
            ""
        };
        log::notice!("listening on {}{from}", listener.local_display());
    }
    // Like `notice!`: logged whatever the level (`Line` does not filter).
    let mut line = Vec::new();
    let mut start = Line::start(&mut line, Level::Info);
    start
        .text("policyd ")
        .text(env!("CARGO_PKG_VERSION"))
        .text(" ready");
    start.field("policy", loaded.name.as_bytes());
    if let PolicySource::Action(action) = &config.policy {
        let mut wire = Vec::new();
        action.write_wire(&mut wire);
        start.field("action", &wire);
    } else {
        start
            .field_display("rules", loaded.rules)
            .field_display("warnings", loaded.warnings.len());
    }
    start
        .field_display("max_connections", config.max_connections)
        .field_display("idle_timeout", config.idle_timeout.as_secs())
        .field_display("request_timeout", config.request_timeout.as_secs());
    start.finish();
    // Tests and supervisors read the `listening on` lines: don't make them wait.
    log::flush();
    service::notify(Notice::Ready(&format!("serving policy {}", loaded.name)));

    let first = loop {
        match signals.wait() {
            Signal::Stop(name) => break name,
            Signal::Reload => match (&reloader, &config.policy) {
                (Some(reloader), PolicySource::File(path)) => {
                    log::notice!("SIGHUP received: reloading policy {}", path.display());
                    // READY=1 follows from the reload thread when it is over.
                    service::notify(Notice::Reloading(&format!(
                        "reloading policy {}",
                        path.display()
                    )));
                    // The reload thread only ends with the process.
                    let _ = reloader.send(());
                }
                (_, PolicySource::Action(_)) => {
                    log::notice!("SIGHUP received: nothing to reload: the policy is --action")
                }
                _ => log::notice!(
                    "SIGHUP received: nothing to reload: the policy is the embedded default \
                     (no --config)"
                ),
            },
        }
    };

    log::notice!(
        "{first} received: stopping; {} connections open",
        shared.active.load(Ordering::Acquire)
    );
    service::notify(Notice::Stopping("stopping"));
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
        // Connections have stopped deciding: these are the final counts.
        if let Some(writer) = writer {
            writer.finish(signals);
        }
        log::notice!("stopped");
    }
    log::flush();
    0
}

/// Start the reload thread for the policy file `path`: each message on the
/// returned channel asks for one reload. Requests that arrive while a reload
/// runs are merged into one more reload, which reads the files as they are
/// then.
fn spawn_reloader(path: PathBuf, shared: Arc<Shared>) -> io::Result<mpsc::Sender<()>> {
    let (tx, rx) = mpsc::channel::<()>();
    thread::Builder::new()
        .name("reload".into())
        .stack_size(RELOAD_STACK_BYTES)
        .spawn(move || {
            while rx.recv().is_ok() {
                while rx.try_recv().is_ok() {}
                reload(&path, &shared);
                // Ready again, with the new policy or the old one.
                service::notify(Notice::Ready(&format!(
                    "serving policy {} (reloaded)",
                    path.display()
                )));
            }
        })?;
    Ok(tx)
}

/// Read and compile the policy file again; put it in force if it compiles,
/// else log why and keep the policy in force.
fn reload(path: &Path, shared: &Shared) {
    let engine = &shared.engine;
    let started = Instant::now();
    match policy_file::load(&PolicySource::File(path.to_owned())) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                policy_file::log_diagnostic(warning);
            }
            // The first policy with DNS tests: its servers, or no reload.
            if let Err(e) = dns::prepare(&shared.dns, &loaded.policy, &loaded.name) {
                log::error!(
                    "reload failed: policy {} has DNS tests but no DNS server: {e};                      keeping the policy in force",
                    loaded.name
                );
                return;
            }
            // Items in Redis need the backend the daemon started with.
            if loaded.policy.uses_remote_state() && !engine.state().has_backend() {
                log::error!(
                    "reload failed: policy {} keeps state in Redis (backend redis) but the \
                     daemon was started without --redis; keeping the policy in force",
                    loaded.name
                );
                return;
            }
            let old = engine.state();
            // Requests being decided finish with the old policy; every
            // connection's next request uses the new one.
            let kept = engine.replace(loaded.policy);
            let new = engine.state();
            let new_limits: Vec<&str> = new.limits().map(|l| l.name).collect();
            let new_greylists: Vec<&str> = new.greylists().map(|g| g.name).collect();
            log::notice!(
                "reloaded policy {} rules={} list_files={} warnings={} millis={}",
                path.display(),
                loaded.rules,
                loaded.files,
                loaded.warnings.len(),
                started.elapsed().as_millis()
            );
            for name in &new_limits {
                if kept.iter().any(|k| k == name) {
                    log::notice!("limit {name}: counters kept across the reload");
                } else if old.limits().any(|l| l.name == *name) {
                    log::notice!(
                        "limit {name}: counters reset: the rule changed (key, count, at, \
                         windows or capacity)"
                    );
                } else {
                    log::notice!("limit {name}: new, counters start empty");
                }
            }
            for gone in old.limits().filter(|l| !new_limits.contains(&l.name)) {
                log::notice!("limit {}: removed, its counters dropped", gone.name);
            }
            for name in &new_greylists {
                if kept.iter().any(|k| k == name) {
                    log::notice!("greylist {name}: state kept across the reload");
                } else if old.greylists().any(|g| g.name == *name) {
                    log::notice!(
                        "greylist {name}: state reset: the rule changed (client, delay, \
                         retry_window, max_age, auto_whitelist or capacity)"
                    );
                } else {
                    log::notice!("greylist {name}: new, starts empty");
                }
            }
            for gone in old.greylists().filter(|g| !new_greylists.contains(&g.name)) {
                log::notice!("greylist {}: removed, its state dropped", gone.name);
            }
        }
        Err(LoadError::Compile { name, errors }) => {
            for diagnostic in errors.errors.iter().chain(&errors.warnings) {
                policy_file::log_diagnostic(diagnostic);
            }
            let n = errors.errors.len();
            // At error level, like its errors: the administrator asked for a
            // policy that is not in force (`--log-level error` must show it).
            log::error!(
                "reload failed: policy {name} does not compile ({n} {}); \
                 keeping the policy in force (details: policyd check {name})",
                plural(n, "error", "errors")
            );
        }
        Err(e @ LoadError::Read { .. }) => {
            log::error!("reload failed: {e}; keeping the policy in force");
        }
    }
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

/// Start a thread for a new connection, or refuse it: a TCP client
/// outside `--allow`, or over the cap.
fn admit(stream: Stream, peer: String, shared: &Arc<Shared>) {
    let allow = &shared.settings.allow;
    if !allow.is_empty() {
        if let Some(ip) = stream.peer_ip() {
            if !allow.iter().any(|network| network.contains(ip)) {
                refuse(&stream, &peer, format_args!("client not in --allow"));
                return;
            }
        }
    }
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
