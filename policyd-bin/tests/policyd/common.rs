//! Helpers shared by the daemon's integration tests: start the real `policyd`
//! binary on an ephemeral loopback port, talk to it as Postfix would, read its
//! log, signal it. Every wait is bounded by [`TIMEOUT`] (or a given timeout).
//!
//! ```ignore
//! let daemon = Daemon::start(&["--action", "REJECT 5.7.1 no"]);
//! // or: Daemon::start(&["--config", &dir.write("policy.conf", POLICY)]);
//! let mut conn = daemon.connect();
//! assert_eq!(request(&mut conn, &rcpt_request(1)), b"action=REJECT 5.7.1 no\n\n");
//! ```

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Upper bound for any single wait in these tests (a reply, a log line, an exit).
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

/// The path of the daemon binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_policyd");

/// The daemon's stderr, line by line, as it arrives.
#[derive(Default)]
struct LogState {
    lines: Vec<String>,
    closed: bool,
}

type SharedLog = Arc<(Mutex<LogState>, Condvar)>;

/// A running `policyd`, killed (if still running) when dropped.
pub(crate) struct Daemon {
    child: Child,
    log: SharedLog,
    /// Every `listening on X` address, in order.
    listeners: Vec<String>,
}

/// A daemon that exited during start-up.
#[derive(Debug)]
pub(crate) struct StartFailure {
    /// How it exited.
    pub(crate) status: ExitStatus,
    /// Everything it wrote to stderr.
    pub(crate) stderr: Vec<String>,
}

impl Daemon {
    /// Start `policyd` with `args`, plus `--listen 127.0.0.1:0` unless `args`
    /// has a `--listen`, and wait until it is ready. Panics (with its log) if
    /// it does not start.
    pub(crate) fn start(args: &[&str]) -> Self {
        match Self::try_start(args) {
            Ok(daemon) => daemon,
            Err(failure) => panic!("policyd {args:?} failed to start: {failure:?}"),
        }
    }

    /// Like [`Daemon::start`], with policy time read from `clock` (the
    /// daemon's `POLICYD_TEST_CLOCK`) instead of the wall clock.
    pub(crate) fn start_with_clock(args: &[&str], clock: &TestClock) -> Self {
        match Self::try_start_env(args, &[(TEST_CLOCK_VAR, clock.path())]) {
            Ok(daemon) => daemon,
            Err(failure) => panic!("policyd {args:?} failed to start: {failure:?}"),
        }
    }

    /// Like [`Daemon::start`], returning how it failed instead of panicking.
    pub(crate) fn try_start(args: &[&str]) -> Result<Self, StartFailure> {
        Self::try_start_env(args, &[])
    }

    /// Like [`Daemon::try_start`], with environment variables added.
    pub(crate) fn try_start_env(
        args: &[&str],
        env: &[(&str, &Path)],
    ) -> Result<Self, StartFailure> {
        let mut command = Command::new(BIN);
        command.envs(env.iter().copied());
        if !args
            .iter()
            .any(|a| *a == "--listen" || a.starts_with("--listen="))
        {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        command.args(args);
        Self::try_spawn(command)
    }

    /// Start `command` (the daemon, or a shell that execs it) with its
    /// stderr piped to the log, and wait until it is ready, as
    /// [`Daemon::try_start`] does.
    pub(crate) fn try_spawn(mut command: Command) -> Result<Self, StartFailure> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn policyd");
        let stderr = child.stderr.take().expect("piped stderr");
        let log: SharedLog = Arc::default();
        spawn_log_reader(stderr, Arc::clone(&log));
        let mut daemon = Self {
            child,
            log,
            listeners: Vec::new(),
        };
        let ready = daemon.wait_for_log(|l| l.contains(": info: policyd ") && l.contains(" ready"));
        if ready.is_none() {
            let status = match daemon.wait_exit(TIMEOUT) {
                Some(status) => status,
                None => {
                    let _ = daemon.child.kill();
                    daemon.child.wait().expect("wait for policyd")
                }
            };
            daemon.wait_log_closed();
            return Err(StartFailure {
                status,
                stderr: daemon.log(),
            });
        }
        daemon.listeners = daemon
            .log()
            .iter()
            .filter_map(|l| {
                // `ADDR`, or `ADDR (socket from systemd)`.
                l.split_once(": info: listening on ")
                    .map(|(_, a)| a.split(" (").next().unwrap_or(a).to_owned())
            })
            .collect();
        Ok(daemon)
    }

    /// The daemon's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every address the daemon listens on, as logged.
    pub(crate) fn listeners(&self) -> &[String] {
        &self.listeners
    }

    /// The first TCP listener's address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.listeners
            .iter()
            .find_map(|a| a.parse().ok())
            .expect("the daemon has a TCP listener")
    }

    /// Connect to [`Daemon::addr`], with read and write timeouts.
    pub(crate) fn connect(&self) -> TcpStream {
        connect(self.addr())
    }

    /// Send a signal by name (`TERM`, `INT`, `HUP`) with kill(1).
    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {name} failed");
    }

    /// Wait up to `timeout` for the daemon to exit: for the event of its
    /// stderr closing (the daemon spawns no children, so that is its exit),
    /// then for its status.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.wait_log(timeout, |state| state.closed.then_some(()))?;
        // Closed stderr: the process is exiting or has exited.
        Some(self.child.wait().expect("wait for policyd"))
    }

    /// Is the daemon still running?
    pub(crate) fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Every log line so far.
    pub(crate) fn log(&self) -> Vec<String> {
        self.log.0.lock().unwrap().lines.clone()
    }

    /// Wait up to [`TIMEOUT`] for a log line matching `pred`; returns it.
    pub(crate) fn wait_for_log(&self, pred: impl Fn(&str) -> bool) -> Option<String> {
        self.wait_for_log_within(TIMEOUT, pred)
    }

    /// Wait up to `timeout` for a log line matching `pred`; returns it.
    pub(crate) fn wait_for_log_within(
        &self,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        self.wait_log(timeout, |state| {
            state.lines.iter().find(|l| pred(l)).cloned()
        })
    }

    /// Wait up to [`TIMEOUT`] until `count` log lines match `pred`; false
    /// if they do not.
    pub(crate) fn wait_for_log_count(&self, count: usize, pred: impl Fn(&str) -> bool) -> bool {
        self.wait_log(TIMEOUT, |state| {
            (state.lines.iter().filter(|l| pred(l)).count() >= count).then_some(())
        })
        .is_some()
    }

    /// Like [`Daemon::wait_for_log`], panicking with the whole log on timeout.
    pub(crate) fn expect_log(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        match self.wait_for_log(pred) {
            Some(line) => line,
            None => panic!("no log line {what}; log:\n{}", self.log().join("\n")),
        }
    }

    /// Wait (bounded) until the daemon's stderr is closed, i.e. all of it read.
    pub(crate) fn wait_log_closed(&self) {
        let _ = self.wait_log(TIMEOUT, |state| state.closed.then_some(()));
    }

    /// Wait up to `timeout` for `check` to find something in the log as it
    /// grows (woken at each line and at its end); `None` when the time is up
    /// or the log ended without it.
    fn wait_log<T>(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&LogState) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.log;
        let mut state = lock.lock().unwrap();
        loop {
            if let Some(found) = check(&state) {
                return Some(found);
            }
            let now = Instant::now();
            if state.closed || now >= deadline {
                return None;
            }
            state = cv.wait_timeout(state, deadline - now).unwrap().0;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn spawn_log_reader(stderr: ChildStderr, log: SharedLog) {
    thread::spawn(move || {
        let mut reader = BufReader::new(stderr);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let done = !matches!(reader.read_until(b'\n', &mut buf), Ok(n) if n > 0);
            let (lock, cv) = &*log;
            let mut state = lock.lock().unwrap();
            if done {
                state.closed = true;
            } else {
                let line = String::from_utf8_lossy(&buf);
                state.lines.push(line.trim_end_matches('\n').to_owned());
            }
            cv.notify_all();
            if done {
                return;
            }
        }
    });
}

/// Connect to `addr` with [`TIMEOUT`] on connect, reads and writes.
pub(crate) fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect to policyd");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream
}

/// Send `req` and read one reply (up to and including its empty line).
pub(crate) fn request<S: Read + Write>(stream: &mut S, req: &[u8]) -> Vec<u8> {
    stream.write_all(req).expect("send request");
    read_reply(stream).expect("read reply")
}

/// Read one reply: bytes up to and including the first `\n\n`. An error if the
/// connection closes first or a read times out.
pub(crate) fn read_reply<S: Read>(stream: &mut S) -> io::Result<Vec<u8>> {
    let mut reply = Vec::with_capacity(64);
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\n\n") {
        match stream.read(&mut byte)? {
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("closed after {:?}", String::from_utf8_lossy(&reply)),
                ))
            }
            _ => reply.push(byte[0]),
        }
    }
    Ok(reply)
}

/// Read until the peer closes; returns what arrived. A reset counts as a
/// close (the daemon resets when it closes with our bytes unread). Panics if
/// the connection is still open after [`TIMEOUT`].
pub(crate) fn read_until_closed<S: Read>(stream: &mut S) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return got,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("connection not closed by the daemon: {e}"),
        }
    }
}

/// A full Postfix 3.x request at RCPT, as smtpd sends it; `n` varies the
/// recipient, the instance and the client port.
pub(crate) fn rcpt_request(n: u32) -> Vec<u8> {
    format!(
        "request=smtpd_access_policy\n\
         protocol_state=RCPT\n\
         protocol_name=ESMTP\n\
         client_address=192.0.2.{octet}\n\
         client_name=mail.example.net\n\
         client_port={port}\n\
         reverse_client_name=mail.example.net\n\
         server_address=127.0.0.1\n\
         server_port=25\n\
         helo_name=mail.example.net\n\
         sender=alice@example.net\n\
         recipient=user{n}@example.com\n\
         recipient_count=0\n\
         queue_id=\n\
         instance=1a2b.{n:x}.0\n\
         size=12345\n\
         etrn_domain=\n\
         stress=\n\
         sasl_method=\n\
         sasl_username=\n\
         sasl_sender=\n\
         ccert_subject=\n\
         ccert_issuer=\n\
         ccert_fingerprint=\n\
         ccert_pubkey_fingerprint=\n\
         encryption_protocol=TLSv1.3\n\
         encryption_cipher=TLS_AES_256_GCM_SHA384\n\
         encryption_keysize=256\n\
         policy_context=\n\
         compatibility_level=3.6\n\
         mail_version=3.7.11\n\
         \n",
        octet = n % 250 + 1,
        port = 1024 + n % 60000,
    )
    .into_bytes()
}

/// Run `policyd` with `args` to completion (for `--help`, bad flags, bind
/// errors), killing it after [`TIMEOUT`].
pub(crate) fn run(args: &[&str]) -> Output {
    run_env(args, &[])
}

/// [`run`] with environment variables set.
pub(crate) fn run_env(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let child = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn policyd");
    wait_output(child, args)
}

/// Wait up to [`TIMEOUT`] for `child` to exit (the event: `wait_with_output`
/// returning on a helper thread) and return its output; kill it and panic
/// with its stderr after that.
fn wait_output(child: Child, args: &[&str]) -> Output {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let _ = tx.send(child.wait_with_output().expect("collect output"));
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok(out) => {
            let _ = waiter.join();
            out
        }
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-s", "KILL", &pid.to_string()])
                .status();
            let out = rx.recv().expect("the killed policyd's output");
            panic!(
                "policyd {args:?} still running after {TIMEOUT:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Run `policyd` with `args` and `stdin` as its standard input, to completion,
/// killing it after [`TIMEOUT`].
pub(crate) fn run_with_stdin(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn policyd");
    let mut input = child.stdin.take().expect("piped stdin");
    let stdin = stdin.to_vec();
    // A writer thread: the child may fill its stdout pipe before reading all
    // of its input.
    let writer = thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let out = wait_output(child, args);
    let _ = writer.join();
    out
}

/// [`rcpt_request`]`(1)` with some attributes replaced (or added, if the
/// request has no such attribute).
pub(crate) fn request_with(changes: &[(&str, &str)]) -> Vec<u8> {
    let base = String::from_utf8(rcpt_request(1)).expect("ASCII request");
    let mut lines: Vec<String> = base
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    for (name, value) in changes {
        let prefix = format!("{name}=");
        match lines.iter_mut().find(|l| l.starts_with(&prefix)) {
            Some(line) => *line = format!("{name}={value}"),
            None => lines.push(format!("{name}={value}")),
        }
    }
    let mut out = lines.join("\n");
    out.push_str("\n\n");
    out.into_bytes()
}

/// A directory under the system temp dir, unique to this process and `name`,
/// created empty and removed when dropped.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("policyd-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        Self(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// Write `contents` to `name` in the directory; returns its path as text.
    pub(crate) fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write a test file");
        path.to_str().expect("UTF-8 temp path").to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The daemon's test clock variable (see `policyd-bin/src/clock.rs`): it
/// names a file holding Unix milliseconds, read on every decision.
pub(crate) const TEST_CLOCK_VAR: &str = "POLICYD_TEST_CLOCK";

/// The daemon's resolv.conf variable (see `policyd-bin/src/dns/mod.rs`): it
/// names the file read instead of `/etc/resolv.conf`.
pub(crate) const TEST_RESOLV_CONF_VAR: &str = "POLICYD_TEST_RESOLV_CONF";

/// A test clock file for [`Daemon::start_with_clock`]: time stands still
/// until the test moves it, so nothing waits for real time to pass.
pub(crate) struct TestClock {
    path: PathBuf,
    millis: u64,
}

impl TestClock {
    /// A clock file `name` in `dir`, set to 2026-01-01T00:00:00Z.
    pub(crate) fn new(dir: &Path, name: &str) -> Self {
        let clock = Self {
            path: dir.join(name),
            millis: 1_767_225_600_000,
        };
        clock.write();
        clock
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Move the clock forward by `by`.
    pub(crate) fn advance(&mut self, by: Duration) {
        self.millis += u64::try_from(by.as_millis()).expect("a test-sized duration");
        self.write();
    }

    /// Write the time to a temporary file and rename it over the clock, so
    /// the daemon never reads half a number.
    fn write(&self) {
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, format!("{}\n", self.millis)).expect("write the test clock");
        std::fs::rename(&tmp, &self.path).expect("rename the test clock");
    }
}
