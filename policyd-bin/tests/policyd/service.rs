//! The daemon as a system service (issue 14): syslog, log timestamps,
//! systemd's readiness protocol and socket activation, the client
//! allow-list, the pidfile, dropping privileges and the UNIX socket's
//! owner and mode.
//!
//! The tests of `--user` and the socket's owner need root (to change
//! users); they print `SKIPPED` without it, and fail instead when
//! `POLICYD_REQUIRE_ROOT=1` (as `.ci/run` sets).

use std::fs::{self, File};
use std::io::{ErrorKind, Read as _, Write as _};
use std::net::TcpListener;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::common::{
    connect, rcpt_request, read_reply, read_until_closed, request, Daemon, TempDir, BIN, TIMEOUT,
};

/// A datagram socket standing in for `/dev/log` or systemd's
/// `NOTIFY_SOCKET`.
struct Datagrams {
    socket: UnixDatagram,
    path: std::path::PathBuf,
}

impl Datagrams {
    fn bind(dir: &TempDir, name: &str) -> Self {
        let path = dir.path().join(name);
        let socket = UnixDatagram::bind(&path).expect("bind a datagram socket");
        socket
            .set_read_timeout(Some(TIMEOUT))
            .expect("set a read timeout");
        Self { socket, path }
    }

    /// The next datagram, or `None` after [`TIMEOUT`].
    fn next(&self) -> Option<String> {
        let mut buf = vec![0; 65536];
        match self.socket.recv(&mut buf) {
            Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
            Err(e) => panic!("recv: {e}"),
        }
    }

    /// Datagrams until one matches `pred` (returned), panicking with those
    /// seen after [`TIMEOUT`].
    fn expect(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            match self.next() {
                Some(message) if pred(&message) => return message,
                Some(message) => seen.push(message),
                None => break,
            }
        }
        panic!("no datagram {what}; got:\n{}", seen.join("\n"));
    }
}

#[test]
fn syslog_gets_every_line_with_the_mail_facility() {
    let dir = TempDir::new("syslog");
    let syslog = Datagrams::bind(&dir, "log");
    let socket = syslog.path.to_str().expect("UTF-8 path").to_owned();
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--action", "DUNNO", "--syslog"])
        .args(["--syslog-socket", &socket])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn policyd");
    let pid = child.id();
    // RFC 3164 without a timestamp (the syslog daemon stamps it): mail is
    // facility 2, info severity 6, so <22>.
    let listening = syslog.expect("listening on", |m| m.contains("listening on"));
    let prefix = format!("<22>policyd[{pid}]: info: listening on ");
    assert!(listening.starts_with(&prefix), "{listening}");
    let addr = listening[prefix.len()..]
        .parse()
        .expect("a TCP address after listening on");
    let ready = syslog.expect("ready", |m| m.contains(" ready "));
    assert!(ready.starts_with(&format!("<22>policyd[{pid}]: info: policyd ")));

    let mut conn = connect(addr);
    assert_eq!(request(&mut conn, &rcpt_request(1)), b"action=DUNNO\n\n");
    let decision = syslog.expect("decision", |m| m.contains(" decision "));
    assert!(
        decision.starts_with(&format!("<22>policyd[{pid}]: info: decision rule=")),
        "{decision}"
    );
    assert!(
        !decision.contains('\n'),
        "one line per datagram: {decision:?}"
    );
    // A warning: severity 4, <20>.
    conn.write_all(b"no equals sign\n\n").expect("write");
    read_until_closed(&mut conn);
    let warning = syslog.expect("warning", |m| m.contains("closing connection"));
    assert!(
        warning.starts_with(&format!("<20>policyd[{pid}]: warning: closing connection ")),
        "{warning}"
    );

    let status = Command::new("kill")
        .args(["-s", "TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    syslog.expect("stopped", |m| m.ends_with(": info: stopped"));
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("piped stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    assert!(child.wait().expect("wait").success());
    assert_eq!(stderr, "", "with --syslog, nothing on stderr");
}

#[test]
fn syslog_socket_missing_refuses_the_start() {
    let dir = TempDir::new("syslog-missing");
    let missing = dir.path().join("no-log");
    let output = Command::new(BIN)
        .args(["--action", "DUNNO", "--syslog", "--syslog-socket"])
        .arg(&missing)
        .output()
        .expect("run policyd");
    assert_eq!(output.status.code(), Some(71));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!(
            "policyd: error: cannot log to syslog at {}: no such file or directory (is a \
             syslog daemon running? see --syslog-socket)\n",
            missing.display()
        )
    );
}

/// `2026-12-06T07:40:01.123Z policyd[PID]: ...`
fn is_timestamped(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 25
        && b[..24].iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'.',
            23 => c == b'Z',
            _ => c.is_ascii_digit(),
        })
        && line[24..].starts_with(" policyd[")
}

#[test]
fn stderr_lines_are_timestamped_unless_the_journal_takes_them() {
    // A pipe is not the journal: timestamps.
    let daemon = Daemon::start(&["--action", "DUNNO"]);
    let log = daemon.log();
    assert!(log.iter().all(|l| is_timestamped(l)), "{log:#?}");
    drop(daemon);

    let daemon = Daemon::start(&["--action", "DUNNO", "--log-timestamps", "off"]);
    let log = daemon.log();
    assert!(log.iter().all(|l| l.starts_with("policyd[")), "{log:#?}");
    drop(daemon);

    // stderr is the stream JOURNAL_STREAM names (device:inode): no
    // timestamps, journald adds its own.
    let dir = TempDir::new("journal-stream");
    let path = dir.path().join("stderr");
    let file = File::create(&path).expect("create the stderr file");
    let meta = file.metadata().expect("stat");
    let mut child = Command::new(BIN)
        .args(["--action", "DUNNO", "--listen", "127.0.0.1:0"])
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::options().append(true).open(&path).expect("open"))
        .spawn()
        .expect("spawn");
    // The log is a file here: wait for its ready line by reading the file
    // as it grows (polled every 10 ms, bounded), then stop the daemon.
    let deadline = Instant::now() + TIMEOUT;
    let text = loop {
        let text = fs::read_to_string(&path).expect("read the stderr file");
        if text.contains(" ready ") || Instant::now() >= deadline {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let _ = child.kill();
    let _ = child.wait();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(": info: ")).collect();
    assert!(!lines.is_empty(), "{text}");
    assert!(lines.iter().all(|l| l.starts_with("policyd[")), "{text}");
}

#[test]
fn systemd_hears_ready_reloading_and_stopping() {
    let dir = TempDir::new("notify");
    let notify = Datagrams::bind(&dir, "notify");
    let policy = dir.write(
        "policy.conf",
        "rule big { if size > 1MB then DEFER \"4.5.3 Too big\" }\n",
    );
    let mut daemon = Daemon::try_start_env(
        &["--config", &policy],
        &[("NOTIFY_SOCKET", notify.path.as_path())],
    )
    .expect("start");
    let ready = notify.expect("READY=1", |m| m.starts_with("READY=1\n"));
    assert!(
        ready.contains(&format!("STATUS=serving policy {policy}")),
        "{ready:?}"
    );

    daemon.signal("HUP");
    let reloading = notify.expect("RELOADING=1", |m| m.starts_with("RELOADING=1\n"));
    let usec = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {reloading:?}"));
    assert!(usec.parse::<u64>().is_ok_and(|n| n > 0), "{reloading:?}");
    let again = notify.expect("READY=1 after the reload", |m| m.starts_with("READY=1\n"));
    assert!(again.contains("(reloaded)"), "{again:?}");
    daemon.expect_log("reloaded", |l| l.contains("reloaded policy"));

    daemon.signal("TERM");
    notify.expect("STOPPING=1", |m| m.starts_with("STOPPING=1\n"));
    assert!(daemon.wait_exit(TIMEOUT).expect("exit").success());
}

#[test]
fn systemd_passes_the_listening_socket() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local addr");
    // The child must inherit it: not close-on-exec.
    rustix::io::fcntl_setfd(&listener, rustix::io::FdFlags::empty()).expect("clear CLOEXEC");
    let fd = listener.as_raw_fd();
    // As systemd does it: the socket is fd 3, LISTEN_PID is the daemon's
    // PID (the shell's, which exec keeps), LISTEN_FDS=1.
    // Moved to 3 unless it is there already. bash: dash takes one-digit
    // descriptors only.
    let move_fd = if fd == 3 {
        String::new()
    } else {
        format!("exec 3<&{fd} {fd}<&-; ")
    };
    let mut command = Command::new("bash");
    command.args([
        "-c",
        &format!("{move_fd}LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\""),
        BIN,
        "--action",
        "REJECT 5.7.1 activated",
    ]);
    let daemon = Daemon::try_spawn(command).expect("start");
    drop(listener);
    assert_eq!(daemon.listeners(), [addr.to_string()]);
    daemon.expect_log("the socket from systemd", |l| {
        l.ends_with(&format!("listening on {addr} (socket from systemd)"))
    });
    let mut conn = connect(addr);
    assert_eq!(
        request(&mut conn, &rcpt_request(1)),
        b"action=REJECT 5.7.1 activated\n\n"
    );
}

#[test]
fn clients_outside_allow_are_logged_and_closed() {
    let daemon = Daemon::start(&["--action", "DUNNO", "--allow", "192.0.2.0/24,::1"]);
    let mut conn = daemon.connect();
    conn.write_all(&rcpt_request(1)).expect("write");
    assert_eq!(read_until_closed(&mut conn), b"", "closed without a reply");
    let line = daemon.expect_log("refusal", |l| l.contains("refusing connection"));
    assert!(
        line.contains("peer=127.0.0.1:") && line.ends_with("reason=\"client not in --allow\""),
        "{line}"
    );
    drop(daemon);

    let daemon = Daemon::start(&[
        "--action",
        "DUNNO",
        "--allow",
        "10.0.0.0/8",
        "--allow",
        "127.0.0.0/8",
    ]);
    let mut conn = daemon.connect();
    assert_eq!(request(&mut conn, &rcpt_request(1)), b"action=DUNNO\n\n");
}

#[test]
fn pidfile_holds_the_pid_while_running() {
    let dir = TempDir::new("pidfile");
    let path = dir.path().join("policyd.pid");
    let path_text = path.to_str().expect("UTF-8 path");
    let mut daemon = Daemon::start(&["--action", "DUNNO", "--pidfile", path_text]);
    assert_eq!(
        fs::read_to_string(&path).expect("the pidfile"),
        format!("{}\n", daemon.pid())
    );
    assert_eq!(
        fs::metadata(&path).expect("stat").permissions().mode() & 0o777,
        0o644
    );
    daemon.signal("TERM");
    assert!(daemon.wait_exit(TIMEOUT).expect("exit").success());
    assert!(!path.exists(), "removed at a clean stop");

    let failure = Daemon::try_start(&[
        "--action",
        "DUNNO",
        "--pidfile",
        &format!("{}/missing/policyd.pid", dir.path().display()),
    ])
    .err()
    .expect("refused");
    assert_eq!(failure.status.code(), Some(73), "{failure:?}");
    assert!(
        failure.stderr.iter().any(
            |l| l.starts_with("policyd: error: cannot write the pidfile ")
                && l.ends_with("missing/policyd.pid: no such file or directory")
        ),
        "{failure:?}"
    );
}

/// Whether this process is root; prints SKIPPED (or fails under
/// `POLICYD_REQUIRE_ROOT=1`) when it is not.
fn root_or_skip(test: &str) -> bool {
    if nix::unistd::Uid::effective().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("POLICYD_REQUIRE_ROOT").is_none(),
        "{test} needs root and POLICYD_REQUIRE_ROOT is set"
    );
    eprintln!("SKIPPED: {test}: needs root (to change users); set POLICYD_REQUIRE_ROOT=1 to fail");
    false
}

/// `Uid:` or `Gid:` of /proc/PID/status: real, effective, saved, fs.
fn proc_ids(pid: u32, key: &str) -> Vec<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in {status}"))
        .split_whitespace()
        .map(|n| n.parse().expect("a number"))
        .collect()
}

#[test]
fn user_and_group_are_dropped_to_after_binding() {
    if !root_or_skip("user_and_group_are_dropped_to_after_binding") {
        return;
    }
    let dir = TempDir::new("privileges");
    // The socket's directory is root's; the daemon creates the socket
    // before it drops to nobody, who could not have.
    let socket = dir.path().join("policyd.sock");
    let socket_text = socket.to_str().expect("UTF-8 path");
    let daemon = Daemon::start(&[
        "--action",
        "DUNNO",
        "--listen",
        "127.0.0.1:0",
        "--listen",
        socket_text,
        "--user",
        "nobody",
        "--group",
        "65534",
        "--unix-owner",
        "nobody",
        "--unix-group",
        "0",
        "--unix-mode",
        "0660",
    ]);
    let nobody = nix::unistd::User::from_name("nobody")
        .expect("look up nobody")
        .expect("user nobody");
    let uid = nobody.uid.as_raw();
    assert_eq!(proc_ids(daemon.pid(), "Uid:"), [uid; 4]);
    assert_eq!(proc_ids(daemon.pid(), "Gid:"), [65534; 4]);
    daemon.expect_log("running as", |l| {
        l.contains(&format!("info: running as uid {uid} (nobody) gid 65534"))
    });
    let meta = fs::metadata(&socket).expect("stat the socket");
    assert_eq!((meta.uid(), meta.gid()), (uid, 0));
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    // Both listeners serve, as nobody.
    let mut conn = daemon.connect();
    assert_eq!(request(&mut conn, &rcpt_request(1)), b"action=DUNNO\n\n");
    let mut unix = UnixStream::connect(&socket).expect("connect to the UNIX socket");
    unix.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    unix.write_all(&rcpt_request(2)).expect("write");
    assert_eq!(read_reply(&mut unix).expect("reply"), b"action=DUNNO\n\n");

    let failure = Daemon::try_start(&["--action", "DUNNO", "--user", "no-such-user-here"])
        .err()
        .expect("refused");
    assert_eq!(failure.status.code(), Some(71));
    assert_eq!(
        failure.stderr.last().map(String::as_str),
        Some("policyd: error: no user \"no-such-user-here\" on this host")
    );
}
