//! A throwaway unbound (Debian's `unbound` package) answering the test
//! zones of [`ZONES`] on a free loopback port, for the DNS tests.
//!
//! ```ignore
//! let Some(unbound) = Unbound::start("dnsbl") else { return }; // SKIPPED
//! let daemon = Daemon::start(&["--dns-server", &unbound.addr().to_string(), ...]);
//! ```
//!
//! It writes an `unbound.conf` into a temporary directory (no chroot, no
//! user change, no syslog, the iterator module alone, the zones of
//! `dns/zones.conf` beside this file as `local-zone`/`local-data`) and a
//! forward zone [`SLOW_ZONE`] to a UDP socket the harness binds and never
//! reads: a query there never gets an answer (the deadline case). It starts
//! `unbound -d -c unbound.conf`, waits until unbound answers a query (an
//! event, not a sleep), and stops it when dropped.
//!
//! Without `/usr/sbin/unbound`, [`Unbound::start`] prints a loud
//! `SKIPPED: unbound not installed` and returns `None` (the test passes),
//! unless `POLICYD_REQUIRE_UNBOUND=1` is set (as `.ci/run` does): then it
//! panics.
//!
//! Self-contained on purpose: the daemon's unit tests (`src/dns/tests.rs`)
//! include this file by path to test the DNS client itself.

// Included by the unit tests and the integration tests, which use
// different parts of it.
#![allow(dead_code)]

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs unbound.
pub(crate) const UNBOUND: &str = "/usr/sbin/unbound";

/// The test zones, included in the configuration.
pub(crate) const ZONES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/policyd/dns/zones.conf");

/// A zone forwarded to a server that never answers.
pub(crate) const SLOW_ZONE: &str = "slow.test";

/// The environment variable that makes a missing unbound a failure.
pub(crate) const REQUIRE_VAR: &str = "POLICYD_REQUIRE_UNBOUND";

/// How long unbound may take to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running unbound, stopped when dropped.
pub(crate) struct Unbound {
    child: Option<Child>,
    addr: SocketAddr,
    dir: PathBuf,
    /// The never-answering server of [`SLOW_ZONE`].
    black_hole: UdpSocket,
}

impl Unbound {
    /// Start an unbound with the test zones; `name` makes its directory
    /// unique. `None` (after printing `SKIPPED`) when unbound is not
    /// installed and not required.
    pub(crate) fn start(name: &str) -> Option<Self> {
        if !Path::new(UNBOUND).exists() {
            if std::env::var_os(REQUIRE_VAR).is_some_and(|v| v == "1") {
                panic!("unbound is required ({REQUIRE_VAR}=1) but {UNBOUND} is missing: apt-get install unbound");
            }
            let banner = "*".repeat(70);
            let _ = writeln!(
                std::io::stderr().lock(),
                "\n{banner}\nSKIPPED: unbound not installed ({UNBOUND}): DNS test {name}\n\
                 (apt-get install unbound; set {REQUIRE_VAR}=1 to make this a failure)\n{banner}"
            );
            return None;
        }
        // A free port can be taken by someone else before unbound binds it:
        // try a few.
        let mut last = String::new();
        for attempt in 0..5 {
            match Self::try_start(name, attempt) {
                Ok(unbound) => return Some(unbound),
                Err(e) => last = e,
            }
        }
        panic!("unbound did not start: {last}");
    }

    fn try_start(name: &str, attempt: u32) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!(
            "policyd-unbound-{}-{name}-{attempt}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let port = free_port()?;
        let black_hole =
            UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("black hole: {e}"))?;
        let hole = black_hole.local_addr().map_err(|e| e.to_string())?.port();
        let conf = dir.join("unbound.conf");
        let text = format!(
            "server:\n\
             \x20   interface: 127.0.0.1@{port}\n\
             \x20   port: {port}\n\
             \x20   do-ip6: no\n\
             \x20   do-daemonize: no\n\
             \x20   chroot: \"\"\n\
             \x20   username: \"\"\n\
             \x20   directory: \"{dir}\"\n\
             \x20   pidfile: \"{dir}/unbound.pid\"\n\
             \x20   use-syslog: no\n\
             \x20   logfile: \"\"\n\
             \x20   verbosity: 1\n\
             \x20   num-threads: 1\n\
             \x20   so-reuseport: no\n\
             \x20   module-config: \"iterator\"\n\
             \x20   do-not-query-localhost: no\n\
             \x20   access-control: 127.0.0.0/8 allow\n\
             \x20   # Keep asking the black hole: each query must time out, not\n\
             \x20   # end in a quick SERVFAIL once unbound thinks it is down.\n\
             \x20   infra-keep-probing: yes\n\
             \x20   # test. is one of unbound's default (empty) local zones: let\n\
             \x20   # the slow zone through to its forwarder.\n\
             \x20   local-zone: \"{SLOW_ZONE}.\" transparent\n\
             \x20   include: \"{zones}\"\n\
             forward-zone:\n\
             \x20   name: \"{SLOW_ZONE}.\"\n\
             \x20   forward-addr: 127.0.0.1@{hole}\n",
            dir = dir.display(),
            zones = ZONES,
        );
        std::fs::write(&conf, text).map_err(|e| e.to_string())?;
        let child = Command::new(UNBOUND)
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("unbound.log")).map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| format!("spawn {UNBOUND}: {e}"))?;
        let mut unbound = Self {
            child: Some(child),
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            dir,
            black_hole,
        };
        unbound.wait_ready()?;
        Ok(unbound)
    }

    /// Wait until unbound answers the test entry of `bl.test`: each try
    /// sends a query and waits up to 100 ms for the answer; the event that
    /// ends the wait is the answer (or unbound's exit).
    fn wait_ready(&mut self) -> Result<(), String> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(|e| e.to_string())?;
        let query = raw_query(0x5eed, "2.0.0.127.bl.test", 1);
        let started = Instant::now();
        let mut buf = [0u8; 512];
        while started.elapsed() < START_TIMEOUT {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                return Err(format!("unbound exited ({status}): {}", self.log()));
            }
            let _ = socket.send_to(&query, self.addr);
            if let Ok((n, _)) = socket.recv_from(&mut buf) {
                if n >= 2 && buf[..2] == [0x5e, 0xed] {
                    return Ok(());
                }
            }
        }
        Err(format!(
            "unbound did not answer within {START_TIMEOUT:?}: {}",
            self.log()
        ))
    }

    /// Where unbound answers.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the server that never answers ([`SLOW_ZONE`]'s).
    pub(crate) fn black_hole(&self) -> SocketAddr {
        self.black_hole
            .local_addr()
            .expect("the black hole's address")
    }

    /// unbound's log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("unbound.log")).unwrap_or_default()
    }

    /// Stop unbound now (its port then answers nothing).
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port free for both UDP and TCP (unbound binds both).
fn free_port() -> Result<u16, String> {
    let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    let port = udp.local_addr().map_err(|e| e.to_string())?.port();
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).map_err(|e| format!("port {port}: {e}"))?;
    Ok(port)
}

/// A DNS query for `name` of type `rtype` with `id`, recursion desired,
/// written by hand (RFC 1035 section 4.1).
pub(crate) fn raw_query(id: u16, name: &str, rtype: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(u8::try_from(label.len()).expect("a short label"));
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&rtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}
