//! A throwaway Redis (Debian's `redis-server` package) on a free loopback
//! port, for the tests of state shared in Redis.
//!
//! ```ignore
//! let Some(redis) = RedisServer::start("shared-limit") else { return }; // SKIPPED
//! let daemon = Daemon::start(&["--redis", &redis.url(), ...]);
//! ```
//!
//! It starts `redis-server` with its settings on the command line (no
//! configuration file, no persistence, no protected mode, loopback only) in
//! a temporary directory, waits until it answers `PING` (an event, not a
//! sleep), and stops it when dropped. [`RedisServer::stop`] and
//! [`RedisServer::restart`] (same port, data lost as after a crash without
//! persistence) are for the failure tests.
//!
//! Without `redis-server`, [`RedisServer::start`] prints a loud `SKIPPED`
//! and returns `None` (the test passes), unless `POLICYD_REQUIRE_REDIS=1`
//! is set (as `.ci/run` does): then it panics.
//!
//! Self-contained on purpose: the daemon's unit tests
//! (`src/redis_state/tests.rs`) include this file by path.

// Included by the unit tests and the integration tests, which use
// different parts of it.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs redis-server.
pub(crate) const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// The environment variable that makes a missing redis-server a failure.
pub(crate) const REQUIRE_VAR: &str = "POLICYD_REQUIRE_REDIS";

/// How long redis-server may take to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running redis-server, stopped when dropped.
pub(crate) struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// Start a redis-server; `name` makes its directory unique. `None`
    /// (after printing `SKIPPED`) when it is not installed and not required.
    pub(crate) fn start(name: &str) -> Option<Self> {
        if !Path::new(REDIS_SERVER).exists() {
            if std::env::var_os(REQUIRE_VAR).is_some_and(|v| v == "1") {
                panic!(
                    "redis-server is required ({REQUIRE_VAR}=1) but {REDIS_SERVER} is missing: \
                     apt-get install redis-server"
                );
            }
            let banner = "*".repeat(70);
            let _ = writeln!(
                std::io::stderr().lock(),
                "\n{banner}\nSKIPPED: redis-server not installed ({REDIS_SERVER}): Redis test {name}\n\
                 (apt-get install redis-server; set {REQUIRE_VAR}=1 to make this a failure)\n{banner}"
            );
            return None;
        }
        let mut last = String::new();
        for attempt in 0..5 {
            let dir = std::env::temp_dir().join(format!(
                "policyd-redis-{}-{name}-{attempt}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            if let Err(e) = std::fs::create_dir_all(&dir) {
                last = e.to_string();
                continue;
            }
            let port = match free_port() {
                Ok(port) => port,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            let mut server = Self {
                child: None,
                port,
                dir,
            };
            match server.spawn() {
                Ok(()) => return Some(server),
                Err(e) => last = e,
            }
        }
        panic!("redis-server did not start: {last}");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("redis.log"))
            .map_err(|e| e.to_string())?;
        let child = Command::new(REDIS_SERVER)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--protected-mode", "no"])
            .args(["--daemonize", "no"])
            .args(["--dir", &self.dir.display().to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn {REDIS_SERVER}: {e}"))?;
        self.child = Some(child);
        self.wait_ready()
    }

    /// Wait until redis-server answers `PING` (or exits).
    fn wait_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        while started.elapsed() < START_TIMEOUT {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                return Err(format!("redis-server exited ({status}): {}", self.log()));
            }
            if self.ping() {
                return Ok(());
            }
            // Not listening yet: the connection was refused at once; wait
            // for the process a little (a refused connect does not block).
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(format!(
            "redis-server did not answer within {START_TIMEOUT:?}: {}",
            self.log()
        ))
    }

    /// Whether the server answers `PING` now.
    pub(crate) fn ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200))
        else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        if stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("+PONG")
    }

    /// Where it listens.
    pub(crate) fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Its `redis://` URL.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Its log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }

    /// Stop it now (its port then refuses connections).
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again on the same port, empty (as after a crash without
    /// persistence).
    pub(crate) fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.spawn() {
            panic!("redis-server did not restart: {e}");
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback TCP port free now.
fn free_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}
