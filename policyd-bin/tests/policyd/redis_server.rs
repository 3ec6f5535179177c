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
//! [`RedisServer::start_tls`] starts one that speaks TLS only (`--port 0
//! --tls-port PORT`): it first makes, with `openssl`, a throwaway CA and a
//! server certificate signed by it for `127.0.0.1` and `localhost`, and a
//! client certificate, all in its directory ([`RedisServer::ca_file`],
//! [`RedisServer::tls_url`]); with [`ClientAuth::Required`] the server
//! refuses clients without a certificate of that CA.
//!
//! Without `redis-server` (or, for TLS, `openssl`), [`RedisServer::start`]
//! prints a loud `SKIPPED` and returns `None` (the test passes), unless
//! `POLICYD_REQUIRE_REDIS=1` is set (as `.ci/run` does): then it panics.
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

/// Where Debian installs openssl (the TLS mode's certificates).
pub(crate) const OPENSSL: &str = "/usr/bin/openssl";

/// The environment variable that makes a missing redis-server a failure.
pub(crate) const REQUIRE_VAR: &str = "POLICYD_REQUIRE_REDIS";

/// How long redis-server may take to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long openssl may take to make the TLS mode's keys and certificates.
const OPENSSL_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether a TLS server asks clients for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientAuth {
    /// `--tls-auth-clients no`: server authentication only.
    No,
    /// `--tls-auth-clients yes`: a client without a certificate signed by
    /// the test CA is refused.
    Required,
}

/// A running redis-server, stopped when dropped.
pub(crate) struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    /// TLS only, with these client settings.
    tls: Option<ClientAuth>,
}

impl RedisServer {
    /// Start a redis-server; `name` makes its directory unique. `None`
    /// (after printing `SKIPPED`) when it is not installed and not required.
    pub(crate) fn start(name: &str) -> Option<Self> {
        Self::start_with(name, None)
    }

    /// Start a redis-server that speaks TLS only, with certificates of a
    /// CA made for it. `None` (after printing `SKIPPED`) when redis-server
    /// or openssl is not installed and Redis is not required.
    pub(crate) fn start_tls(name: &str, auth: ClientAuth) -> Option<Self> {
        Self::start_with(name, Some(auth))
    }

    fn start_with(name: &str, tls: Option<ClientAuth>) -> Option<Self> {
        let mut needed = vec![(REDIS_SERVER, "redis-server")];
        if tls.is_some() {
            needed.push((OPENSSL, "openssl"));
        }
        for (path, package) in needed {
            if Path::new(path).exists() {
                continue;
            }
            if std::env::var_os(REQUIRE_VAR).is_some_and(|v| v == "1") {
                panic!(
                    "{package} is required ({REQUIRE_VAR}=1) but {path} is missing: \
                     apt-get install {package}"
                );
            }
            let banner = "*".repeat(70);
            let _ = writeln!(
                std::io::stderr().lock(),
                "\n{banner}\nSKIPPED: {package} not installed ({path}): Redis test {name}\n\
                 (apt-get install {package}; set {REQUIRE_VAR}=1 to make this a failure)\n{banner}"
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
                tls,
            };
            if tls.is_some() {
                if let Err(e) = make_certificates(&server.dir) {
                    // Not a port race: trying again would not help.
                    panic!("the test certificates were not made: {e}");
                }
            }
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
        let mut command = Command::new(REDIS_SERVER);
        match self.tls {
            None => command.args(["--port", &self.port.to_string()]),
            Some(auth) => command
                .args(["--port", "0", "--tls-port", &self.port.to_string()])
                .args([
                    "--tls-cert-file",
                    "server.crt",
                    "--tls-key-file",
                    "server.key",
                ])
                .args(["--tls-ca-cert-file", "ca.crt"])
                .args([
                    "--tls-auth-clients",
                    if auth == ClientAuth::Required {
                        "yes"
                    } else {
                        "no"
                    },
                ]),
        };
        let child = command
            .current_dir(&self.dir)
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

    /// Wait until redis-server answers `PING` (or exits); with TLS, which
    /// this harness does not speak, until it accepts connections on its
    /// port and has logged that it is ready.
    fn wait_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        while started.elapsed() < START_TIMEOUT {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                return Err(format!("redis-server exited ({status}): {}", self.log()));
            }
            let ready = match self.tls {
                None => self.ping(),
                Some(_) => {
                    TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_ok()
                        && self.log().contains("Ready to accept connections")
                }
            };
            if ready {
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

    /// Its `redis://` URL (a plain server).
    pub(crate) fn url(&self) -> String {
        assert!(self.tls.is_none(), "a TLS server has a rediss:// URL");
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Its `rediss://` URL (a TLS server).
    pub(crate) fn tls_url(&self) -> String {
        assert!(self.tls.is_some(), "a plain server has a redis:// URL");
        format!("rediss://127.0.0.1:{}/", self.port)
    }

    /// The certificate of the CA that signed the TLS server's certificate
    /// and the client certificate (PEM).
    pub(crate) fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// A client certificate signed by the CA (PEM).
    pub(crate) fn client_cert_file(&self) -> PathBuf {
        self.dir.join("client.crt")
    }

    /// The client certificate's private key (PEM, PKCS#8).
    pub(crate) fn client_key_file(&self) -> PathBuf {
        self.dir.join("client.key")
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

/// The extensions of the test certificates, for `openssl -extfile`: a CA,
/// a server certificate for the loopback address and `localhost`, and a
/// client certificate. Written out in full so that the system's
/// `openssl.cnf` changes nothing.
const OPENSSL_CNF: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = policyd test
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
";

/// Make in `dir` a CA (`ca.crt`, `ca.key`), a server certificate signed by
/// it (`server.crt`, `server.key`) and a client certificate
/// (`client.crt`, `client.key`): P-256 keys, valid for two days.
fn make_certificates(dir: &Path) -> Result<(), String> {
    std::fs::write(dir.join("openssl.cnf"), OPENSSL_CNF).map_err(|e| e.to_string())?;
    // A new P-256 key, unencrypted.
    let new_key = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    openssl(
        dir,
        &format!("req -x509 -config openssl.cnf -extensions ca {new_key} -keyout ca.key -out ca.crt -days 2"),
        "/CN=policyd test CA",
    )?;
    for (name, serial) in [("server", 2), ("client", 3)] {
        openssl(
            dir,
            &format!("req -new -config openssl.cnf {new_key} -keyout {name}.key -out {name}.csr"),
            &format!("/CN=policyd test {name}"),
        )?;
        openssl(
            dir,
            &format!(
                "x509 -req -in {name}.csr -CA ca.crt -CAkey ca.key -set_serial {serial} -days 2 \
                 -extfile openssl.cnf -extensions {name} -out {name}.crt"
            ),
            "",
        )?;
    }
    Ok(())
}

/// Run openssl in `dir` with `args` (words without spaces) and, if not
/// empty, `-subj SUBJECT`, within [`OPENSSL_TIMEOUT`].
fn openssl(dir: &Path, args: &str, subject: &str) -> Result<(), String> {
    let mut command = Command::new(OPENSSL);
    command.args(args.split_whitespace());
    if !subject.is_empty() {
        command.args(["-subj", subject]);
    }
    let mut child = command
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {OPENSSL}: {e}"))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < OPENSSL_TIMEOUT => {
                // std has no wait with a timeout: poll the few milliseconds
                // that a P-256 key and a signature take.
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("openssl {args} took over {OPENSSL_TIMEOUT:?}"));
            }
            Err(e) => return Err(format!("wait for openssl: {e}")),
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    Err(format!("openssl {args} failed ({status}): {stderr}"))
}

/// A loopback TCP port free now.
fn free_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}
