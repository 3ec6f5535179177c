//! Listening sockets: TCP (IPv4 and IPv6) and UNIX, behind one type.
//!
//! [`bind`] turns one `--listen` value into bound listeners (a host name may
//! resolve to several addresses); failures are a [`BindError`] naming the
//! address and a reason a mail administrator can act on. [`Listener::wake`]
//! unblocks a thread blocked in [`Listener::accept`] at shutdown by connecting
//! to the listener.

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{parse_tcp, ListenAddr, TcpTarget};

/// How long [`Listener::wake`] waits for its own connection to be accepted.
/// Loopback connects complete in microseconds; this only bounds a pathological
/// case (a firewall dropping loopback SYNs) so shutdown never hangs on it.
const WAKE_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A bound listener.
#[derive(Debug)]
pub(crate) enum Listener {
    /// A TCP listener.
    Tcp(TcpListener),
    /// A UNIX stream socket listener and its path.
    Unix {
        /// The socket.
        listener: UnixListener,
        /// Its path, for logs, waking and removal at exit.
        path: PathBuf,
        /// Device and inode of the socket file we created, so that at exit we
        /// remove it only if it is still ours; none for a socket systemd
        /// passed (socket activation), which is never ours to remove.
        id: Option<(u64, u64)>,
    },
}

/// A connection accepted by a [`Listener`].
#[derive(Debug)]
pub(crate) enum Stream {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A UNIX socket connection.
    Unix(UnixStream),
}

/// Why a listener could not be bound. Printed as
/// `policyd: error: cannot listen on ADDR: REASON`.
#[derive(Debug)]
pub(crate) struct BindError {
    /// The address as given on the command line.
    pub(crate) addr: String,
    /// What went wrong, in words.
    pub(crate) reason: String,
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot listen on {}: {}", self.addr, self.reason)
    }
}

/// Bind every listener `addr` stands for.
pub(crate) fn bind(addr: &ListenAddr) -> Result<Vec<Listener>, BindError> {
    let fail = |reason: String| BindError {
        addr: addr.to_string(),
        reason,
    };
    match addr {
        ListenAddr::Tcp(text) => {
            let addrs = resolve(text).map_err(fail)?;
            let mut listeners = Vec::with_capacity(addrs.len());
            for sock in addrs {
                let listener = TcpListener::bind(sock).map_err(|e| {
                    let mut err = fail(describe_bind(&e, PORT_HINT));
                    if addrs_differ(text, sock) {
                        err.addr = format!("{text} ({sock})");
                    }
                    err
                })?;
                listeners.push(Listener::Tcp(listener));
            }
            Ok(listeners)
        }
        ListenAddr::Unix(path) => bind_unix(path).map(|l| vec![l]).map_err(fail),
    }
}

/// Was `text` a host name (so the resolved address is worth showing)?
fn addrs_differ(text: &str, sock: SocketAddr) -> bool {
    text.parse::<SocketAddr>().ok() != Some(sock)
}

/// Resolve `host:port`: IP literals directly, host names through the system
/// resolver (every address it returns, without duplicates).
fn resolve(text: &str) -> Result<Vec<SocketAddr>, String> {
    let (host, port) = match parse_tcp(text).map_err(|e| format!("expected {e}"))? {
        TcpTarget::Ip(sock) => return Ok(vec![sock]),
        TcpTarget::Host(host, port) => (host, port),
    };
    let resolved = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .map_err(|e| format!("cannot resolve host {host:?}: {e}"))?;
    let mut seen = HashSet::new();
    let addrs: Vec<SocketAddr> = resolved.filter(|a| seen.insert(*a)).collect();
    if addrs.is_empty() {
        return Err(format!("host {host:?} has no address"));
    }
    Ok(addrs)
}

/// Bind a UNIX socket at `path`, replacing a stale socket file (one nobody
/// listens on) but never a live socket or a file of another type.
fn bind_unix(path: &Path) -> Result<Listener, String> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => match UnixStream::connect(path) {
            Ok(_) => return Err("address already in use (another process listens on it)".into()),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                fs::remove_file(path)
                    .map_err(|e| format!("cannot remove stale socket: {}", describe(&e)))?;
            }
            Err(e) => return Err(format!("cannot check existing socket: {}", describe(&e))),
        },
        Ok(_) => return Err("the path exists and is not a socket; refusing to replace it".into()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(describe(&e)),
    }
    let listener = UnixListener::bind(path).map_err(|e| describe_bind(&e, SOCKET_DIR_HINT))?;
    let meta = fs::symlink_metadata(path).map_err(|e| describe(&e))?;
    Ok(Listener::Unix {
        listener,
        path: path.to_owned(),
        id: Some((meta.dev(), meta.ino())),
    })
}

/// What to check when binding a TCP port is denied.
const PORT_HINT: &str = "ports below 1024 need privileges";

/// What to check when creating a UNIX socket is denied.
const SOCKET_DIR_HINT: &str = "check the permissions of the socket's directory";

/// An error of binding a listener in words: [`describe`], with `hint` (what
/// to check) after a permission error.
fn describe_bind(e: &io::Error, hint: &str) -> String {
    match e.kind() {
        io::ErrorKind::PermissionDenied => format!("permission denied ({hint})"),
        _ => describe(e),
    }
}

/// An I/O error in words for a mail administrator: the common cases spelled
/// out, the rest as the system says it. No hint about what to check: the
/// same error means different things for a file and a socket (binding adds
/// its own, [`describe_bind`]), and the caller names the file and the step.
pub(crate) fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::AddrInUse => "address already in use".into(),
        io::ErrorKind::AddrNotAvailable => "address not available on this host".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        io::ErrorKind::NotFound => "no such file or directory".into(),
        // A socket timeout surfaces as EAGAIN ("resource temporarily unavailable").
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timed out".into(),
        _ => {
            let text = e.to_string();
            // Drop std's " (os error N)" suffix: the words say it already.
            match text.find(" (os error ") {
                Some(i) => text[..i].to_lowercase(),
                None => text,
            }
        }
    }
}

impl Listener {
    /// A UNIX listener systemd passed (socket activation): named by its
    /// path for the logs, never removed at exit (systemd owns the file).
    pub(crate) fn activated_unix(listener: UnixListener) -> Self {
        let path = listener
            .local_addr()
            .ok()
            .and_then(|addr| addr.as_pathname().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("(an unnamed socket from systemd)"));
        Self::Unix {
            listener,
            path,
            id: None,
        }
    }

    /// The path of a UNIX listener this daemon created (not one systemd
    /// passed), for `--unix-owner` and friends.
    pub(crate) fn created_unix_path(&self) -> Option<&Path> {
        match self {
            Self::Unix {
                path, id: Some(_), ..
            } => Some(path),
            _ => None,
        }
    }

    /// Accept one connection. The peer is rendered once, here, for the logs.
    pub(crate) fn accept(&self) -> io::Result<(Stream, String)> {
        match self {
            Self::Tcp(listener) => {
                let (stream, peer) = listener.accept()?;
                Ok((Stream::Tcp(stream), peer.to_string()))
            }
            Self::Unix { listener, path, .. } => {
                let (stream, _) = listener.accept()?;
                // UNIX clients are normally unnamed: name the socket instead.
                Ok((Stream::Unix(stream), format!("unix:{}", path.display())))
            }
        }
    }

    /// The bound address, for the `listening on` line (the real port when 0
    /// was asked for).
    pub(crate) fn local_display(&self) -> String {
        match self {
            Self::Tcp(listener) => match listener.local_addr() {
                Ok(addr) => addr.to_string(),
                Err(_) => "an unknown TCP address".into(),
            },
            Self::Unix { path, .. } => path.display().to_string(),
        }
    }

    /// Unblock a thread blocked in [`Listener::accept`] by connecting to the
    /// listener (its loopback equivalent for a wildcard address). Best effort:
    /// the accept loop also re-checks the stop flag after every accept.
    pub(crate) fn wake(&self) {
        let result = match self {
            Self::Tcp(listener) => listener.local_addr().and_then(|mut addr| {
                match addr.ip() {
                    IpAddr::V4(ip) if ip.is_unspecified() => {
                        addr.set_ip(Ipv4Addr::LOCALHOST.into())
                    }
                    IpAddr::V6(ip) if ip.is_unspecified() => {
                        addr.set_ip(Ipv6Addr::LOCALHOST.into())
                    }
                    _ => {}
                }
                TcpStream::connect_timeout(&addr, WAKE_CONNECT_TIMEOUT).map(drop)
            }),
            Self::Unix { path, .. } => UnixStream::connect(path).map(drop),
        };
        if let Err(e) = result {
            crate::log::debug!(
                "cannot wake listener {} for shutdown: {}",
                self.local_display(),
                describe(&e)
            );
        }
    }

    /// Remove the socket file of a UNIX listener, if it is still the one we
    /// created. Called at exit.
    pub(crate) fn cleanup(&self) {
        if let Self::Unix {
            path, id: Some(id), ..
        } = self
        {
            if let Ok(meta) = fs::symlink_metadata(path) {
                if (meta.dev(), meta.ino()) == *id {
                    let _ = fs::remove_file(path);
                }
            }
        }
    }

    /// An independent handle to the same socket, for the accept thread.
    pub(crate) fn try_clone(&self) -> io::Result<Self> {
        Ok(match self {
            Self::Tcp(listener) => Self::Tcp(listener.try_clone()?),
            Self::Unix { listener, path, id } => Self::Unix {
                listener: listener.try_clone()?,
                path: path.clone(),
                id: *id,
            },
        })
    }
}

impl Stream {
    /// The client's IP address (TCP); none for a UNIX socket client.
    pub(crate) fn peer_ip(&self) -> Option<IpAddr> {
        match self {
            Self::Tcp(s) => s.peer_addr().ok().map(|addr| addr.ip()),
            Self::Unix(_) => None,
        }
    }

    /// Set socket options for a policy connection: read timeout (the
    /// connection's polling tick), write timeout, and no Nagle delay (each
    /// reply is one small write that Postfix waits for).
    pub(crate) fn configure(&self, read: Duration, write: Duration) -> io::Result<()> {
        match self {
            Self::Tcp(s) => {
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(read))?;
                s.set_write_timeout(Some(write))
            }
            Self::Unix(s) => {
                s.set_read_timeout(Some(read))?;
                s.set_write_timeout(Some(write))
            }
        }
    }

    /// Switch between blocking (with the configured timeouts) and
    /// non-blocking reads.
    pub(crate) fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.set_nonblocking(nonblocking),
            Self::Unix(s) => s.set_nonblocking(nonblocking),
        }
    }

    /// Close both directions now.
    pub(crate) fn shutdown(&self) {
        let _ = match self {
            Self::Tcp(s) => s.shutdown(Shutdown::Both),
            Self::Unix(s) => s.shutdown(Shutdown::Both),
        };
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.read(buf),
            Self::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.write(buf),
            Self::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{EXPECTED_PORT, EXPECTED_TCP};

    #[test]
    fn resolve_literals_and_errors() {
        assert_eq!(
            resolve("127.0.0.1:10031").unwrap(),
            ["127.0.0.1:10031".parse().unwrap()]
        );
        assert_eq!(resolve("[::1]:0").unwrap(), ["[::1]:0".parse().unwrap()]);
        for bad in ["nonsense", "::1:10031", "[::1:10031", ":10031", "[::1]"] {
            let err = resolve(bad).unwrap_err();
            assert!(err.starts_with("expected host:port"), "{bad}: {err}");
            assert_eq!(parse_tcp(bad), Err(EXPECTED_TCP), "{bad}");
        }
        for bad in ["127.0.0.1:99999", "localhost:x", "localhost:"] {
            assert_eq!(parse_tcp(bad), Err(EXPECTED_PORT), "{bad}");
        }
        assert_eq!(
            parse_tcp("mail.example:10031"),
            Ok(TcpTarget::Host("mail.example", 10031))
        );
    }

    /// A permission error gets the hint that fits what failed: the port
    /// for a TCP bind, the directory for a UNIX socket, none for a file.
    #[test]
    fn hints_fit_the_operation() {
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        assert_eq!(describe(&denied), "permission denied");
        assert_eq!(
            describe_bind(&denied, PORT_HINT),
            "permission denied (ports below 1024 need privileges)"
        );
        assert_eq!(
            describe_bind(&denied, SOCKET_DIR_HINT),
            "permission denied (check the permissions of the socket's directory)"
        );
        let in_use = io::Error::from(io::ErrorKind::AddrInUse);
        assert_eq!(describe_bind(&in_use, PORT_HINT), "address already in use");
    }

    #[test]
    fn bind_error_reads_well() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let Err(err) = bind(&ListenAddr::Tcp(addr.clone())) else {
            panic!("bound a port already in use");
        };
        assert_eq!(
            err.to_string(),
            format!("cannot listen on {addr}: address already in use")
        );
    }

    #[test]
    fn unix_socket_replaces_only_stale_sockets() {
        let dir = std::env::temp_dir().join(format!("policyd-listen-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");

        // A stale socket file (its listener closed) is replaced.
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let live = bind_unix(&path).unwrap();
        // A live one is not.
        assert!(bind_unix(&path).unwrap_err().contains("already in use"));
        live.cleanup();
        assert!(!path.exists(), "cleanup removes our socket");

        // A regular file is never replaced.
        fs::write(&path, b"data").unwrap();
        assert!(bind_unix(&path).unwrap_err().contains("not a socket"));
        assert_eq!(fs::read(&path).unwrap(), b"data");
        fs::remove_dir_all(&dir).unwrap();
    }
}
