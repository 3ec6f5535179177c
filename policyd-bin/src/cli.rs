//! The command line, parsed by hand.
//!
//! `policyd [serve] [OPTIONS]` runs the daemon; `policyd check FILE...`,
//! `policyd test [--config FILE] [REQUESTS...]`, `policyd state --state-file
//! PATH` (or `--redis URL --config FILE`) and `policyd default-policy` are
//! one-shot tools for the policy file and the state, in a file or in Redis. A hand-written parser is shorter
//! than the glue a parser crate needs, adds no dependency, and keeps every
//! error message in one place. Both `--flag VALUE` and `--flag=VALUE` are
//! accepted. Every error is a [`CliError`], printed as one line, exit code
//! [`EX_USAGE`].
//!
//! Addresses given to `--listen` are classified (TCP or UNIX socket) and
//! checked here ([`parse_tcp`]): a malformed one or a port
//! over 65535 is a usage error found before anything else happens. A port
//! alone (`--listen 10031`, postgrey's habit) means `127.0.0.1:PORT`. Host
//! names are resolved and addresses bound in [`crate::listen`]; a failure
//! there is a bind error (exit code [`EX_OSERR`]), like a port in use. Policy
//! files are only named here; they are read and compiled in
//! [`crate::policy_file`].

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use policy_core::lang::did_you_mean;
use policy_core::{Action, ActionError};
use policy_proto::Limits;

use crate::log::{Facility, Level, LogSettings, SyslogSettings, Timestamps, DEFAULT_SYSLOG_SOCKET};

/// Exit code for a bad command line (BSD `sysexits.h` `EX_USAGE`).
pub(crate) const EX_USAGE: u8 = 64;

/// Exit code when the policy cannot be used: the `--config` file cannot be
/// read, or it does not compile (`sysexits.h` `EX_CONFIG`). Also the exit code
/// of `policyd test` when its policy does not compile.
pub(crate) const EX_CONFIG: u8 = 78;

/// `EX_UNAVAILABLE` (sysexits.h): a service the daemon needs (Redis) does
/// not answer at start.
pub(crate) const EX_UNAVAILABLE: u8 = 69;

/// Exit code when the `--state-file` cannot be written at start (its
/// directory is missing or not writable): `sysexits.h` `EX_CANTCREAT`.
pub(crate) const EX_CANTCREAT: u8 = 73;

/// Exit code when another process holds the `--state-file`'s lock (another
/// policyd given the same file): `sysexits.h` `EX_TEMPFAIL`, since it goes
/// away when that daemon stops (a restart that overlapped the old daemon's
/// final write), so a supervisor may try again.
pub(crate) const EX_TEMPFAIL: u8 = 75;

/// Exit code for a failure of the operating system at start-up: a listener
/// that cannot be bound (port in use, bad address, permission denied), a
/// thread or signal handler that cannot be set up (`sysexits.h` `EX_OSERR`).
pub(crate) const EX_OSERR: u8 = 71;

/// Where to listen when no `--listen` is given: Policyd v2 (cbpolicyd) made
/// 10031 the conventional port of a Postfix policy daemon, and loopback keeps it
/// private to the mail host.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:10031";

/// Default for `--max-connections`.
///
/// Postfix keeps one persistent connection per smtpd process and policy
/// service; `default_process_limit` is 100, so a busy Postfix holds about 100
/// connections. 1000 leaves room for several Postfix instances or hosts and for
/// reconnects, while bounding what a flood of connections can cost: each
/// connection is one thread ([`crate::server::CONNECTION_STACK_BYTES`] of
/// stack reserved) and at most `--max-request-bytes` of buffer.
pub(crate) const DEFAULT_MAX_CONNECTIONS: usize = 1000;

/// Largest accepted `--max-connections`: far beyond any real Postfix
/// deployment, low enough that a typo (an extra zero or two) is caught at start
/// rather than by the kernel's thread limit under load.
pub(crate) const MAX_MAX_CONNECTIONS: usize = 100_000;

/// Default for `--idle-timeout`, in seconds.
///
/// Postfix closes an idle policy connection after
/// `smtpd_policy_service_max_idle` (300 s) and any connection after
/// `smtpd_policy_service_max_ttl` (1000 s). The daemon must never close first:
/// a connection Postfix believes open costs the next message a failed write
/// and a one-second retry. 1200 s is above both defaults, and still reclaims
/// connections of a client that vanished without closing.
pub(crate) const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 1200;

/// Postfix's default `smtpd_policy_service_max_ttl`, in seconds: an idle
/// timeout at or below it earns a start-up warning.
pub(crate) const POSTFIX_MAX_TTL_SECS: u64 = 1000;

/// Default for `--request-timeout`, in seconds: Postfix's own
/// `smtpd_policy_service_timeout` (100 s). A request that has started but is
/// still incomplete after this long comes from a stalled or hostile client:
/// Postfix itself would have given up on the reply by then.
pub(crate) const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 100;

/// Largest accepted timeout, in seconds (one day): longer means "never" in
/// practice, and keeps `Instant` arithmetic far from overflow.
pub(crate) const MAX_TIMEOUT_SECS: u64 = 86_400;

/// Default for `--state-interval`, in seconds: how often the counters are
/// written to the `--state-file`. A `kill -9` or a crash loses at most this
/// much counting; a clean stop loses nothing (a final write). Once a minute
/// costs little even for millions of keys: a snapshot of 1,000,000 keys
/// encodes in about a quarter of a second on the writer thread, off the
/// request path, and its I/O is one sequential file write.
pub(crate) const DEFAULT_STATE_INTERVAL_SECS: u64 = 60;

/// Default for `policyd state --top`: the keys shown per window.
pub(crate) const DEFAULT_TOP: usize = 20;

/// Largest `policyd state --top`: a million lines is more than anyone reads;
/// the cap keeps a typo from building a huge answer.
pub(crate) const MAX_TOP: usize = 1_000_000;

/// Exit code of `policyd state` when the state file cannot be read (missing,
/// permission denied, not a regular file): `sysexits.h` `EX_NOINPUT`.
pub(crate) const EX_NOINPUT: u8 = 66;

/// Exit code of `policyd state` when the state file is damaged, truncated or
/// of a format this build does not read: `sysexits.h` `EX_DATAERR`.
pub(crate) const EX_DATAERR: u8 = 65;

/// Largest accepted framer limit (`--max-request-bytes` and friends): 16 MiB.
/// Postfix's largest real requests are a few KiB; the cap only stops a typo from
/// letting every connection buffer gigabytes.
pub(crate) const MAX_LIMIT: usize = 16 * 1024 * 1024;

/// Default for `--dns-deadline`: 2 seconds.
///
/// The time a request may wait for its DNS answers, all rounds together
/// (every query of a round is in flight at once). A local caching resolver
/// answers a cached name in well under a millisecond and a fresh DNS-list
/// lookup in tens to a few hundred milliseconds; 2 s leaves room for two
/// retransmissions of a lost datagram. A longer wait holds Postfix's smtpd
/// process (and its SMTP client) for every request a dead list cannot
/// answer; a missing answer only makes a test unknown, never a wrong reject.
pub(crate) const DEFAULT_DNS_DEADLINE: Duration = Duration::from_secs(2);

/// Shortest accepted `--dns-deadline`: 10 ms, below which no real resolver
/// answers.
pub(crate) const MIN_DNS_DEADLINE: Duration = Duration::from_millis(10);

/// Longest accepted `--dns-deadline`: 60 s, well below Postfix's
/// `smtpd_policy_service_timeout` (100 s), after which Postfix gives up on
/// the reply.
pub(crate) const MAX_DNS_DEADLINE: Duration = Duration::from_secs(60);

/// Most `--dns-server` options: 8, more than any resolver setup needs (the
/// C library reads 3 `nameserver` lines).
pub(crate) const MAX_DNS_SERVERS: usize = 8;

/// Default for `--dns-cache-bytes`: 32 MiB, a few hundred thousand answers
/// (an A answer of a DNS list costs about 150 bytes), far more than a day of
/// a busy host's distinct clients, while bounded on any host.
pub(crate) const DEFAULT_DNS_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Largest `--dns-cache-bytes`: 4 GiB.
pub(crate) const MAX_DNS_CACHE_BYTES: usize = 1 << 32;

/// Default for `--dns-skip-after`: a DNS list whose queries time out in 10
/// requests in a row is skipped (postfwd's `dns_timeout_max` is 10 too).
/// Few enough that a dead list stops costing every request its deadline
/// within seconds on a busy host; many enough that a burst of lost
/// datagrams does not turn a list off.
pub(crate) const DEFAULT_DNS_SKIP_AFTER: u32 = 10;

/// Largest `--dns-skip-after`.
pub(crate) const MAX_DNS_SKIP_AFTER: u32 = 1_000_000;

/// Default for `--dns-skip-for`, in seconds: a skipped list is asked again
/// after 5 minutes. Short enough that a list back from an outage is used
/// again soon; long enough that a dead one costs one slow request in 5
/// minutes (one more timeout skips it again at once).
pub(crate) const DEFAULT_DNS_SKIP_FOR_SECS: u64 = 300;

/// The DNS client's settings, from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DnsSettings {
    /// `--dns-server`: the servers to ask, in order; empty means the
    /// `nameserver` lines of `/etc/resolv.conf`.
    pub(crate) servers: Vec<SocketAddr>,
    /// `--dns-deadline`: how long a request waits for its answers.
    pub(crate) deadline: Duration,
    /// `--dns-cache-bytes`: the cache's memory budget.
    pub(crate) cache_bytes: usize,
    /// `--dns-skip-after`: timeouts in a row before a list is skipped.
    pub(crate) skip_after: u32,
    /// `--dns-skip-for`: how long a list is skipped.
    pub(crate) skip_for: Duration,
}

impl Default for DnsSettings {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            deadline: DEFAULT_DNS_DEADLINE,
            cache_bytes: DEFAULT_DNS_CACHE_BYTES,
            skip_after: DEFAULT_DNS_SKIP_AFTER,
            skip_for: Duration::from_secs(DEFAULT_DNS_SKIP_FOR_SECS),
        }
    }
}

/// What a `--dns-server` value should look like.
pub(crate) const EXPECTED_DNS_SERVER: &str =
    "an IP address with an optional port: 192.0.2.53, 192.0.2.53:5353, [2001:db8::53]:53";

/// Parse one `--dns-server` value: an IP address, port 53 unless given
/// (IPv6 with a port in brackets).
pub(crate) fn parse_dns_server(text: &str) -> Result<SocketAddr, &'static str> {
    if let Ok(sock) = text.parse::<SocketAddr>() {
        return Ok(sock);
    }
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| EXPECTED_DNS_SERVER)
}

/// What a `--dns-deadline` value should look like.
pub(crate) const EXPECTED_DNS_DEADLINE: &str =
    "a duration from 10ms to 60s: milliseconds with ms (500ms) or seconds with s or alone (2s, 2)";

/// Parse a `--dns-deadline` value: `500ms`, `2s` or `2` (seconds).
pub(crate) fn parse_deadline(text: &str) -> Result<Duration, &'static str> {
    let (digits, millis_per_unit) = match text.strip_suffix("ms") {
        Some(digits) => (digits, 1),
        None => (text.strip_suffix('s').unwrap_or(text), 1000),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EXPECTED_DNS_DEADLINE);
    }
    let n: u64 = digits.parse().map_err(|_| EXPECTED_DNS_DEADLINE)?;
    let deadline = Duration::from_millis(n.saturating_mul(millis_per_unit));
    if (MIN_DNS_DEADLINE..=MAX_DNS_DEADLINE).contains(&deadline) {
        Ok(deadline)
    } else {
        Err(EXPECTED_DNS_DEADLINE)
    }
}

/// A checked `host:port` of `--listen`: what [`parse_tcp`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TcpTarget<'a> {
    /// An IP literal and port (IPv6 in brackets).
    Ip(SocketAddr),
    /// A host name and port, resolved when binding.
    Host(&'a str, u16),
}

/// What a TCP `--listen` value should look like.
pub(crate) const EXPECTED_TCP: &str = "host:port (IPv6 as [::1]:10031), a port alone for \
     127.0.0.1:PORT, or a UNIX socket path containing '/'";

/// What a port should be.
pub(crate) const EXPECTED_PORT: &str = "a port from 0 to 65535";

/// Check the syntax of `host:port` without resolving anything (the command
/// line does this before anything else happens). The error is what was
/// expected: [`EXPECTED_TCP`] or [`EXPECTED_PORT`].
pub(crate) fn parse_tcp(text: &str) -> Result<TcpTarget<'_>, &'static str> {
    if let Ok(sock) = text.parse::<SocketAddr>() {
        return Ok(TcpTarget::Ip(sock));
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(EXPECTED_TCP);
    };
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        // A bracketed IPv6 address that did not parse with its port: the
        // port is out of range, or the address is no address.
        return Err(if v6.parse::<Ipv6Addr>().is_ok() {
            EXPECTED_PORT
        } else {
            EXPECTED_TCP
        });
    }
    if host.is_empty() || host.contains(':') || host.starts_with('[') {
        // An IPv6 literal without brackets, or a malformed bracketed one.
        return Err(EXPECTED_TCP);
    }
    let port: u16 = port.parse().map_err(|_| EXPECTED_PORT)?;
    Ok(TcpTarget::Host(host, port))
}

/// Where the daemon listens, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListenAddr {
    /// `host:port`, its syntax checked, resolved when binding (IPv6 as
    /// `[::1]:10031`; a port alone given on the command line is stored as
    /// `127.0.0.1:PORT`).
    Tcp(String),
    /// A UNIX socket path (anything containing a `/`).
    Unix(PathBuf),
}

impl ListenAddr {
    /// Classify and check one `--listen` value: a path if it contains `/`,
    /// a port alone (digits only) for `127.0.0.1:PORT`, else `host:port`.
    fn from_arg(arg: &OsStr) -> Result<Self, CliError> {
        if arg.as_bytes().contains(&b'/') {
            return Ok(Self::Unix(PathBuf::from(arg)));
        }
        let text = arg.to_str().ok_or(CliError::NotUtf8("--listen"))?;
        let bad = |expected| CliError::BadValue {
            option: "--listen",
            value: text.to_owned(),
            expected,
        };
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            let port: u16 = text.parse().map_err(|_| bad(EXPECTED_PORT))?;
            return Ok(Self::Tcp(format!("{}:{port}", Ipv4Addr::LOCALHOST)));
        }
        parse_tcp(text).map_err(bad)?;
        Ok(Self::Tcp(text.to_owned()))
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(addr) => f.write_str(addr),
            Self::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Where the policy comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PolicySource {
    /// The embedded default policy ([`crate::policy_file::DEFAULT_POLICY`]):
    /// neither `--config` nor `--action` given.
    Default,
    /// A policy file (`--config FILE`), reloaded on SIGHUP.
    File(PathBuf),
    /// `--action ACTION`: one action for every request, a shortcut policy.
    Action(Action),
}

/// A complete daemon configuration, every field validated.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Listeners to bind, at least one.
    pub(crate) listen: Vec<ListenAddr>,
    /// The policy to serve.
    pub(crate) policy: PolicySource,
    /// Most connections served at once; more are refused.
    pub(crate) max_connections: usize,
    /// An idle connection (no partial request) is closed after this long.
    pub(crate) idle_timeout: Duration,
    /// A started request must complete within this long.
    pub(crate) request_timeout: Duration,
    /// Framer limits.
    pub(crate) limits: Limits,
    /// `--log-level`, `--syslog*`, `--log-timestamps`.
    pub(crate) log: LogSettings,
    /// `--user`, `--group`, `--unix-*`, `--allow`, `--pidfile`: how the
    /// daemon fits in the system.
    pub(crate) service: ServiceArgs,
    /// `--state-file`: where the limits' counters are kept across restarts
    /// (none: they are not kept).
    pub(crate) state_file: Option<PathBuf>,
    /// `--state-interval`: how often the counters are written.
    pub(crate) state_interval: Duration,
    /// The DNS client's settings (`--dns-*`).
    pub(crate) dns: DnsSettings,
    /// `--redis-*`: where the items of `backend redis` keep their state.
    pub(crate) redis: RedisArgs,
}

/// The `--redis-*` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RedisArgs {
    /// `--redis URL`; none: a policy with `backend redis` items does not
    /// start.
    pub(crate) url: Option<String>,
    /// `--redis-password-file FILE`: the password, read at start (kept out
    /// of the URL and so of `ps`).
    pub(crate) password_file: Option<PathBuf>,
    /// `--redis-ca-file FILE`: the CA certificates (PEM) that a `rediss://`
    /// server's certificate must chain to, instead of the system's.
    pub(crate) ca_file: Option<PathBuf>,
    /// `--redis-cert-file FILE` and `--redis-key-file FILE`: the client
    /// certificate chain and its private key (PEM) shown to a `rediss://`
    /// server that asks for one (mutual TLS); both or neither.
    pub(crate) client_cert: Option<(PathBuf, PathBuf)>,
    /// `--redis-prefix`.
    pub(crate) prefix: String,
    /// `--redis-pool`.
    pub(crate) pool_size: usize,
    /// `--redis-budget`: each call's time budget.
    pub(crate) budget: Duration,
}

/// The options that fit the daemon into the system: who it runs as, who
/// may use its UNIX sockets, which clients may connect, its pidfile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ServiceArgs {
    /// `--user USER`: the user to run as once the sockets and files are
    /// open (name or number).
    pub(crate) user: Option<String>,
    /// `--group GROUP`: the group to run as (default: the user's).
    pub(crate) group: Option<String>,
    /// `--unix-owner USER`: the owner of every UNIX listening socket.
    pub(crate) unix_owner: Option<String>,
    /// `--unix-group GROUP`: the group of every UNIX listening socket.
    pub(crate) unix_group: Option<String>,
    /// `--unix-mode MODE`: the permissions of every UNIX listening socket.
    pub(crate) unix_mode: Option<u32>,
    /// `--allow NETWORK`: the TCP clients that may connect (none: all).
    pub(crate) allow: Vec<Network>,
    /// `--pidfile PATH`.
    pub(crate) pidfile: Option<PathBuf>,
}

/// An IP network of `--allow`: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Network {
    /// The address, its host bits cleared.
    pub(crate) addr: std::net::IpAddr,
    /// The prefix length: 0 to 32 (IPv4) or 128 (IPv6).
    pub(crate) prefix: u8,
}

impl Network {
    /// Parse `192.0.2.0/24`, `2001:db8::/32` or a single address. Host bits
    /// set (`192.0.2.1/24`) are refused: they usually mean a typo.
    pub(crate) fn parse(text: &str) -> Result<Self, &'static str> {
        const EXPECTED: &str =
            "an IP address or network: 127.0.0.1, 192.0.2.0/24, ::1, 2001:db8::/32";
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: std::net::IpAddr = addr.parse().map_err(|_| EXPECTED)?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| EXPECTED)?
            }
            Some(_) => return Err(EXPECTED),
        };
        if prefix > max {
            return Err("a prefix length of at most 32 (IPv4) or 128 (IPv6)");
        }
        let network = Self { addr, prefix };
        if network.masked(addr) != addr {
            return Err("a network without host bits (e.g. 192.0.2.0/24, not 192.0.2.1/24)");
        }
        Ok(network)
    }

    /// `ip` with the host bits of this network's prefix cleared.
    fn masked(self, ip: std::net::IpAddr) -> std::net::IpAddr {
        use std::net::IpAddr;
        match ip {
            IpAddr::V4(v4) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        }
    }

    /// Whether `ip` is in this network. An IPv4-mapped IPv6 address
    /// (`::ffff:192.0.2.1`, a client of an IPv6 socket that also accepts
    /// IPv4) is taken as the IPv4 address it maps.
    pub(crate) fn contains(self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        ip.is_ipv4() == self.addr.is_ipv4() && self.masked(ip) == self.addr
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// `--redis-prefix`'s default, put before every key in Redis.
pub(crate) const DEFAULT_REDIS_PREFIX: &str = "policyd:";

/// `--redis-pool`'s default: the most connections to Redis.
pub(crate) const DEFAULT_REDIS_POOL: usize = 8;

/// `--redis-budget`'s default: a request waits at most this long for each
/// Redis call.
pub(crate) const DEFAULT_REDIS_BUDGET: Duration = Duration::from_millis(250);

impl Default for RedisArgs {
    fn default() -> Self {
        Self {
            url: None,
            password_file: None,
            ca_file: None,
            client_cert: None,
            prefix: DEFAULT_REDIS_PREFIX.to_owned(),
            pool_size: DEFAULT_REDIS_POOL,
            budget: DEFAULT_REDIS_BUDGET,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: vec![ListenAddr::Tcp(DEFAULT_LISTEN.to_owned())],
            policy: PolicySource::Default,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS),
            request_timeout: Duration::from_secs(DEFAULT_REQUEST_TIMEOUT_SECS),
            limits: Limits::default(),
            log: LogSettings::default(),
            service: ServiceArgs::default(),
            state_file: None,
            state_interval: Duration::from_secs(DEFAULT_STATE_INTERVAL_SECS),
            dns: DnsSettings::default(),
            redis: RedisArgs::default(),
        }
    }
}

/// `policyd state (--state-file PATH | --redis URL --config FILE
/// [--redis-prefix P] [--redis-password-file F]) [--limit NAME] [--top N]
/// [--window I]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StateArgs {
    /// Where the state is read.
    pub(crate) source: StateSource,
    /// Show only this limit or greylist.
    pub(crate) limit: Option<String>,
    /// Keys shown per window.
    pub(crate) top: usize,
    /// Show only this window (1 = the first, as printed).
    pub(crate) window: Option<usize>,
}

/// Where `policyd state` reads the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StateSource {
    /// `--state-file PATH`: a state file.
    File(PathBuf),
    /// `--redis URL --config FILE`: the keys in Redis of the policy's
    /// `backend redis` items (`--redis-prefix`, `--redis-password-file`;
    /// the pool and budget options are the daemon's).
    Redis {
        /// `--redis-*`.
        redis: RedisArgs,
        /// `--config FILE`: the policy whose items are shown.
        policy: PathBuf,
    },
}

/// `policyd check FILE...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckArgs {
    /// The policy files to compile, at least one.
    pub(crate) files: Vec<PathBuf>,
    /// `--deny-warnings`: a file with warnings fails the check.
    pub(crate) deny_warnings: bool,
}

/// `policyd test [--config FILE] [--explain] [--now SECS] [--dns-server ADDR]...
/// [--dns-deadline TIME | --no-dns] [REQUESTS...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TestArgs {
    /// The policy to test: a file, or the embedded default.
    pub(crate) policy: PolicySource,
    /// `--explain`: print how every rule was evaluated.
    pub(crate) explain: bool,
    /// `--now SECS`: the time the requests are decided at, in Unix seconds
    /// (default: the current time).
    pub(crate) now: Option<u64>,
    /// Request files; empty means standard input, and `-` names it too.
    pub(crate) inputs: Vec<PathBuf>,
    /// `--dns-server`, `--dns-deadline`: how the policy's DNS tests are
    /// asked, as the daemon asks them (the other `--dns-*` keep their
    /// defaults).
    pub(crate) dns: DnsSettings,
    /// `--no-dns`: ask nothing; every DNS test is unknown.
    pub(crate) no_dns: bool,
}

/// What the command line asks for.
#[derive(Debug)]
pub(crate) enum Command {
    /// Run the daemon.
    Serve(Box<Config>),
    /// Compile policy files and report.
    Check(CheckArgs),
    /// Decide requests from files with a policy and print the outcome.
    Test(TestArgs),
    /// Show what a state file holds.
    State(StateArgs),
    /// Print the embedded default policy and exit 0.
    PrintDefaultPolicy,
    /// Print [`help`] and exit 0.
    Help,
    /// Print [`version`] and exit 0.
    Version,
}

/// The sub-commands, by the word that names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Serve,
    Check,
    Test,
    State,
}

impl Cmd {
    fn name(self) -> &'static str {
        match self {
            Self::Serve => "serve",
            Self::Check => "check",
            Self::Test => "test",
            Self::State => "state",
        }
    }
}

/// Why the command line was refused. Printed as `policyd: error: {self}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CliError {
    /// An option this version does not know.
    UnknownOption(String),
    /// An option that exists, but not for this sub-command.
    OptionNotFor {
        /// The option, e.g. `--listen`.
        option: &'static str,
        /// The sub-command, e.g. `check`.
        command: &'static str,
    },
    /// A bare word where none is expected (`policyd serve` takes none).
    UnexpectedArgument(String),
    /// A first word that is not a sub-command.
    UnknownCommand(String),
    /// A sub-command without its required argument.
    MissingArgument(&'static str),
    /// An option that needs a value came last.
    MissingValue(&'static str),
    /// A flag that takes no value was given one (`--help=x`).
    UnexpectedValue(&'static str),
    /// A value that must be UTF-8 text was not.
    NotUtf8(&'static str),
    /// Two options that exclude each other were both given.
    Conflict(&'static str, &'static str),
    /// An option given without another that it needs.
    Requires(&'static str, &'static str),
    /// An option given twice where only one makes sense.
    Repeated(&'static str),
    /// A value out of range or of the wrong shape.
    BadValue {
        /// The option, e.g. `--max-connections`.
        option: &'static str,
        /// The value as given.
        value: String,
        /// What was expected instead.
        expected: &'static str,
    },
    /// `--action` is not a valid access(5) action.
    BadAction {
        /// The value as given.
        value: String,
        /// Why [`Action::parse`] refused it.
        error: ActionError,
    },
    /// The framer limits contradict each other.
    BadLimits(&'static str),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownOption(opt) => {
                write!(f, "unknown option {opt:?}")?;
                let names = OPTIONS.iter().flat_map(|o| o.names.iter().copied());
                match did_you_mean(opt, names) {
                    Some(name) => write!(f, "; did you mean {name}?"),
                    None => Ok(()),
                }
            }
            Self::OptionNotFor { option, command } => {
                write!(f, "option {option} does not apply to `policyd {command}`")
            }
            Self::UnexpectedArgument(arg) => {
                write!(f, "unexpected argument {arg:?} (options start with --)")
            }
            Self::UnknownCommand(word) => {
                write!(
                    f,
                    "unknown command {word:?}: expected serve, check, test, state, default-policy, \
                     help or version"
                )?;
                match did_you_mean(word, COMMANDS) {
                    Some(command) => write!(f, "; did you mean {command}?"),
                    None => Ok(()),
                }
            }
            Self::MissingArgument(what) => write!(f, "expected {what}"),
            Self::MissingValue(opt) => write!(f, "option {opt} needs a value"),
            Self::UnexpectedValue(opt) => write!(f, "option {opt} takes no value"),
            Self::NotUtf8(opt) => write!(f, "the value of {opt} is not valid UTF-8"),
            Self::Conflict(a, b) => write!(f, "{a} and {b} exclude each other: give one"),
            Self::Requires(a, b) => write!(f, "{a} needs {b}"),
            Self::Repeated(opt) => write!(f, "option {opt} given twice: expected once"),
            Self::BadValue {
                option,
                value,
                expected,
            } => write!(f, "bad value {value:?} for {option}: expected {expected}"),
            Self::BadAction { value, error } => {
                write!(f, "bad value {value:?} for --action: {error}")
            }
            Self::BadLimits(why) => write!(f, "inconsistent limits: {why}"),
        }
    }
}

/// The `--version` text.
pub(crate) fn version() -> String {
    format!("policyd {}\n", env!("CARGO_PKG_VERSION"))
}

/// The `--help` text: what the daemon does, the sub-commands, every option
/// with its default and reason, the Postfix configuration to use it, signals,
/// logs and exit codes.
pub(crate) fn help() -> String {
    let limits = Limits::default();
    format!(
        "\
policyd {version}: a Postfix SMTP access policy daemon.

Postfix's smtpd asks it about each SMTP command (usually each RCPT TO) over the
policy delegation protocol; policyd decides with the rules of a policy file and
answers one access(5) action.

USAGE:
    policyd [serve] [--config FILE | --action ACTION] [OPTIONS]
    policyd check [--deny-warnings] FILE...
    policyd test [--config FILE] [--explain] [--now SECS]
                 [--dns-server ADDR]... [--dns-deadline TIME | --no-dns]
                 [REQUESTS...]
    policyd state --state-file PATH [--limit NAME] [--top N] [--window I]
    policyd state --redis URL --config FILE [--redis-prefix PREFIX]
                  [--redis-password-file FILE] [--limit NAME] [--top N]
                  [--window I]
    policyd default-policy        (also: policyd --print-default-policy)

COMMANDS:
    serve           Run the daemon (the default when no command is given).
    check FILE...   Compile each policy file; print every error and warning
                    (file:line:column, the line and a caret) and a summary.
                    Exit 0 when every file compiles (warnings allowed), 1 when
                    one does not, or has warnings under --deny-warnings.
    test            Decide requests with a policy and print, for each, the
                    action (templates expanded), the deciding rule and the
                    dry-run rules that applied. REQUESTS are files of requests
                    in Postfix's own format (name=value lines, a blank line
                    after each request; CRLF tolerated; lines starting with #
                    are comments; request=smtpd_access_policy may be left
                    out); none or - reads standard input. A request that does
                    not parse is reported with its file and line, and the next
                    one is decided; an attribute name Postfix never sends (a
                    typo such as client_adress) gets a warning. A policy with
                    DNS tests (DNS lists, fcrdns, ...) asks them live, as the
                    daemon does (--dns-server, else /etc/resolv.conf;
                    --dns-deadline), and each request's report lists the
                    queries and their answers (--explain shows each DNS test
                    with its answer); --no-dns asks nothing and takes every
                    DNS test as unknown (said in the report).
                    Exit 0 when every request parsed, 1 when one did not or
                    a file could not be read, {config} when the policy does
                    not compile or has DNS tests and no DNS server to ask.
    state           Read a state file (see --state-file) offline and print,
                    for each table in it (or the one --limit names), as of
                    the time the file was written: for a limit, how many
                    keys it tracks, its windows, and in each window the keys
                    counting the most units, most first: \"who is sending so
                    much?\"; for a greylist, its timers, its pending and
                    passed triplets, and its client networks tracked and
                    auto-whitelisted. The daemon need not run. Exit 0; 1 when
                    --limit or --window names nothing in the file;
                    {noinput} when the file cannot be read (missing,
                    permission denied); {dataerr} when it is damaged,
                    truncated or not a state file.
                    With --redis URL --config FILE instead: the same views
                    of the policy's backend redis items as Redis holds them
                    now, read with SCAN (never KEYS) and HMGET, changing
                    nothing (no key seeds are made); each item's usage is
                    computed at the current time, and only live keys are
                    counted. Items kept locally are listed as such. The
                    scan of an item stops at 1000000 keys of a kind, and
                    says so. Exit 0; 1 when --limit or --window names
                    nothing in the policy; {config} when the policy, the URL or
                    the password file cannot be used; {unavailable} when Redis does
                    not answer (within 10 s) or fails mid-scan.
    default-policy  Print the embedded default policy (used when neither
                    --config nor --action is given) and exit.

POLICY OPTIONS:
    -c, --config FILE       serve, test, state --redis: the policy file. List
                            and login-map files it names are read relative
                            to its directory. On SIGHUP the daemon reads and
                            compiles them again; the new policy replaces the
                            old one only if it compiles.
                            [default: the embedded default policy, which
                            answers DUNNO to everything; see default-policy]
    --action ACTION         serve only: answer every request with this access(5)
                            action instead of a policy file, e.g. DUNNO,
                            \"REJECT 5.7.1 Go away\", \"450 4.7.1 Greylisted\".
                            Checked at start. Excludes --config.
    --explain               test only: also print, for each request, every
                            rule's conditions and their results.
    --now SECS              test only: decide at this time (Unix seconds)
                            instead of now, for reproducible output.
    --no-dns                test only: send no DNS query; every DNS test of
                            the policy is unknown (its rule does not apply),
                            as when no list answers, and SPF is temperror.
                            Excludes --dns-server and --dns-deadline.
    --deny-warnings         check only: a warning fails the check (exit 1).

STATE OPTIONS:
    --state-file PATH       serve: keep the counters of the policy's limit
                            rules and the triplets and client networks of its
                            greylists in PATH across restarts. Read at start (a
                            missing file is a first start); written every
                            --state-interval and at a clean stop (SIGTERM,
                            SIGINT), atomically: PATH.tmp in the same directory,
                            fsync, rename over PATH, fsync of the directory,
                            mode 0600 (keys are addresses). At start the
                            daemon takes an exclusive lock (flock) on
                            PATH.lock, beside it, and writes its PID there:
                            a second daemon given the same PATH refuses to
                            start (exit {tempfail}), naming the holder's PID
                            (policyd state needs no lock). If PATH.lock or
                            PATH.tmp cannot be created at start, the daemon
                            refuses to start (exit {cantcreat}). A damaged or
                            truncated state file is logged as an error, moved
                            aside to PATH.bad-<unix seconds> and the daemon
                            starts with empty counters; it never half-loads. A
                            file that is not a policyd state file (another
                            format, a text file, an empty file, a directory)
                            is left as it is and the daemon refuses to start
                            (exit {config}); so it does when PATH exists but
                            cannot be read (exit {noinput}). A rule whose name,
                            key, count, at, windows or capacity changed starts
                            empty; a new max keeps the counts. A
                            greylist whose name, client part, delay,
                            retry_window, max_age, auto_whitelist or capacity
                            changed starts empty; new whitelists, conditions
                            or actions keep its state.
                            state: the file to read.
                            [default: none: counters and greylists start empty
                            at every start, and a policy with limits or
                            greylists logs a warning]
    --state-interval SECS   serve: write the state file this often, off the
                            request path; a kill -9 or crash loses at most this
                            much counting. 1 to 86400. [default: {state_interval}]
    --limit NAME            state only: show only this limit or greylist.
    --top N                 state only: keys shown per window. [default: {top}]
    --window I              state only: show only window I (1 = the first, in
                            the order of the rule's max clause).

SERVE OPTIONS:
    --listen ADDR           Where to listen; repeat for several listeners.
                            host:port for TCP (IPv6 as [::1]:10031; port 0 picks
                            a free port; a port alone, as in --listen 10031,
                            means 127.0.0.1:PORT), or a path containing '/'
                            for a UNIX socket (a stale socket file left by a
                            previous run is replaced; the socket is created
                            with the process umask). Checked before anything
                            else: a malformed address exits {usage}. Note: on
                            Linux [::]:PORT also accepts IPv4 unless
                            net.ipv6.bindv6only=1.
                            [default: {listen}]
    --max-connections N     Most connections served at once; one more is logged
                            and closed at once. Each Postfix smtpd process holds
                            one connection. [default: {max_conn}]
    --idle-timeout SECS     Close a connection idle this long. Keep it above
                            Postfix's smtpd_policy_service_max_ttl (1000 s) so
                            policyd never closes first. [default: {idle}]
    --request-timeout SECS  Close a connection whose request is still incomplete
                            this long after it started (a stalled client).
                            [default: {request} = smtpd_policy_service_timeout]
    --max-request-bytes N   Largest request, in bytes. [default: {req_bytes}]
    --max-line-bytes N      Longest name=value line, in bytes. [default: {line_bytes}]
    --max-attributes N      Most name=value lines in one request. [default: {attrs}]
    --log-level LEVEL       error, warn, info or debug. One line per decision is
                            logged at info; start, listening, reload, signal and
                            stop lines are logged at any level. [default: info]
    --log-timestamps WHEN   auto, on or off: start each stderr line with the
                            time (UTC, RFC 3339, milliseconds). auto: unless
                            stderr is the systemd journal (JOURNAL_STREAM
                            names it), which stamps lines itself.
                            [default: auto]
    --syslog                Log to the syslog daemon (RFC 3164 datagrams to
                            --syslog-socket, facility --syslog-facility, tag
                            policyd[PID]) instead of stderr, so the lines land
                            in mail.log beside Postfix's. The syslog daemon
                            stamps them. Start-up errors still go to stderr.
                            A line the socket refuses (the syslog daemon
                            restarting) is sent again once, else written to
                            stderr. A socket that cannot be reached at start
                            refuses the start (exit {oserr}).
    --syslog-facility NAME  mail, daemon, user or local0 to local7.
                            [default: mail]
    --syslog-socket PATH    [default: /dev/log]
    --allow NETWORK         Accept TCP clients from these networks only
                            (cbpolicyd's cidr_allow): an address or
                            address/prefix, IPv4 or IPv6; repeat, or separate
                            with commas. Others are logged (refusing connection
                            ... reason=\"client not in --allow\") and closed
                            before a byte is read. UNIX socket clients are
                            governed by the socket's permissions instead.
                            [default: any client; the default --listen is
                            loopback only]
    --pidfile PATH          Write the daemon's PID to PATH at start (before
                            --user applies; mode 0644) and remove it at exit
                            if it still holds that PID. For hosts without
                            systemd. A PATH that cannot be written refuses
                            the start (exit {cantcreat}). [default: none]
    -u, --user USER         Run as USER (name or number) once every socket is
                            bound and the --state-file's lock is taken: start
                            as root, bind, then drop to USER with USER's
                            groups, for good (checked). The policy file and
                            its lists (read again on SIGHUP) and the
                            --state-file's directory must then be readable,
                            and writable for the state, by USER. Needs root,
                            unless USER is who the daemon runs as already.
                            Under systemd, prefer the unit's User= (see
                            packaging/policyd.service).
                            [default: stay as started]
    -g, --group GROUP       Run as GROUP (name or number).
                            [default: USER's group]
    --unix-owner USER       The owner of the UNIX sockets of --listen, set
                            once bound; with --unix-group and --unix-mode so
                            that Postfix (user postfix) may connect, e.g.
                            --listen /var/spool/postfix/private/policyd
                            --unix-owner postfix --unix-mode 0600.
                            [default: the user the daemon starts as]
    --unix-group GROUP      The group of the UNIX sockets of --listen.
                            [default: the daemon's group]
    --unix-mode MODE        Octal permissions of the UNIX sockets of --listen,
                            e.g. 0660. [default: 0777 less the umask]
    -h, --help              Print this help and exit.
    -V, --version           Print the version and exit.

DNS OPTIONS (serve; --dns-server and --dns-deadline also test; used only by a
policy with DNS tests, such as client_address in dnsbl \"zone\"; a policy
without them opens no DNS socket):
    --dns-server ADDR       A DNS resolver to ask (recursive, or a local cache
                            such as unbound); repeat for several, asked in
                            order, the next one when a try gets no answer. An
                            IP address with an optional port: 192.0.2.53,
                            127.0.0.1:5353, [2001:db8::53]:53. Public DNS
                            lists refuse queries from big public resolvers:
                            use your own. [default: the nameserver lines of
                            /etc/resolv.conf, read when a policy with DNS
                            tests is loaded; none there refuses the start]
    --dns-deadline TIME     How long a request waits for its DNS answers, all
                            queries in flight at once: 500ms, 2s. A test whose
                            answer is missing then is unknown (its rule does
                            not apply), and a warning is logged (at most one
                            a minute, with the count of the others).
                            10ms to 60s. [default: {dns_deadline} s]
    --dns-cache-bytes N     Memory for the answers cache, shared by all
                            connections; answers are kept for their TTL (at
                            most a day), NXDOMAIN and NODATA for the SOA's
                            negative TTL (at most 3 hours); when full, the
                            entries closest to expiry go first. 0: no cache.
                            [default: {dns_cache}]
    --dns-skip-after N      Skip a DNS list whose queries timed out in N
                            requests in a row: its tests are unknown at once,
                            without waiting (logged when it starts and ends).
                            [default: {dns_skip_after}]
    --dns-skip-for SECS     How long a list is skipped; then it is asked again,
                            and one more timeout skips it again.
                            [default: {dns_skip_for}]

REDIS OPTIONS (serve; all but --redis-pool and --redis-budget also state,
which reads what they name and excludes --state-file; used only by a
policy whose limits or greylists say backend redis, state shared by several
MX hosts; see docs/multi-server.md):
    --redis URL             The Redis (or Valkey) server:
                            redis://HOST[:PORT][/DB],
                            redis://[USER]:PASSWORD@HOST/DB,
                            rediss://HOST[:PORT][/DB] (TLS), or
                            unix:///PATH/redis.sock[?db=N]. It must answer
                            at start (within 5 s), else the start is refused
                            (exit {unavailable}), as it is when a rediss:// server's
                            certificate is not trusted. [default: none; a
                            policy with backend redis items refuses to start
                            without it]
    --redis-password-file FILE
                            Read the password from the first line of FILE
                            instead of the URL (keeps it out of ps).
    --redis-ca-file FILE    rediss:// only: trust the CA certificates in FILE
                            (PEM) instead of the system's, for a Redis whose
                            certificate a private CA signed. The certificate
                            must also name the URL's host (DNS name or IP
                            address); the check cannot be turned off (a URL
                            ending in #insecure is refused, exit {config}).
                            [default: the system's CA certificates,
                            /etc/ssl/certs, or SSL_CERT_FILE / SSL_CERT_DIR]
    --redis-cert-file FILE  rediss:// only, with --redis-key-file: the client
                            certificate (PEM, then any intermediate CAs) to
                            show a Redis that asks for one (tls-auth-clients).
                            [default: none]
    --redis-key-file FILE   The private key of --redis-cert-file (PEM: PKCS#8,
                            PKCS#1 or SEC1), not encrypted. These three files
                            are read at start (a restart reads new ones); one
                            that cannot be read or used refuses the start
                            (exit {config}). [default: none]
    --redis-prefix PREFIX   Put before every key, so that several policies or
                            programs can share one Redis. Hosts sharing state
                            must use the same prefix. [default: policyd:]
    --redis-pool N          Most connections to Redis. [default: 8]
    --redis-budget TIME     How long a request waits for each Redis call: 50ms,
                            1s. Past it, or while Redis is down, the item's
                            on_failure applies (allow, defer or skip), and the
                            connection is made again in the background.
                            10ms to 60s. [default: 250ms]

POSTFIX (main.cf), Postfix 3.0 or later:
    smtpd_recipient_restrictions =
        permit_mynetworks,
        reject_unauth_destination,
        check_policy_service {{ inet:127.0.0.1:10031, default_action=DUNNO }}

    Put check_policy_service after reject_unauth_destination, so that an OK
    answer can never make an open relay. default_action=DUNNO lets mail through
    when policyd is down or closes a connection; without it Postfix answers
    \"451 4.3.5 Server configuration problem\" and the client retries later.
    For a UNIX socket inside Postfix's queue directory, use e.g.
    --listen /var/spool/postfix/private/policyd with
    check_policy_service unix:private/policyd.

LOGS (stderr, or syslog with --syslog; one line each, key=value, client
bytes escaped; on stderr each line starts with the time, as
2026-12-06T07:40:01.123Z, unless stderr is the systemd journal):
    policyd[PID]: info: listening on 127.0.0.1:10031
    policyd[PID]: info: decision rule=blocked action=\"REJECT 5.7.1 ...\" ...
        client=... client_name=... sasl_username=... queue_id=...
    policyd[PID]: info: dry-run rule=big would=\"DEFER 4.5.3 ...\" decided_by=...
    policyd[PID]: info: reloaded policy FILE rules=12 list_files=2 warnings=0
    policyd[PID]: info: restored state file PATH written DATE (12 s ago): ...
    policyd[PID]: info: limit out: counters restored keys=310
    policyd[PID]: info: greylist grey: state restored triplets=52013
    policyd[PID]: error: state file PATH is unusable: corrupt state file: ...;
        moved it to PATH.bad-1764300000; starting with empty counters
    policyd[PID]: error: cannot write state file PATH: writing PATH.tmp: no
        space left on device; retrying in 60 s
    policyd[PID]: warning: closing connection peer=127.0.0.1:5555 reason=\"...\"
    policyd[PID]: info: policy FILE has DNS tests: asking 127.0.0.1:53 (deadline
        2000 ms); lists: zen.example
    policyd[PID]: warning: DNS answers missing at the deadline: the tests on them
        are unknown peer=... missing=1 queries=\"2.0.2.192.zen.example A\" ...
    policyd[PID]: warning: DNS list keeps timing out: skipping it, its tests are
        unknown zone=zen.example timeouts=10 for_secs=300
    A rule marked dry-run that applies logs one dry-run line (the action it
    would have given) before the decision line, and changes nothing.
    A protocol fault (oversize request or line, NUL byte, malformed line, bad
    attribute value, stalled request) closes that connection without a reply;
    Postfix retries once, then applies its default_action.

SYSTEMD:
    Type=notify: policyd sends READY=1 once it listens with its policy in
    force, RELOADING=1 when a SIGHUP reload starts and READY=1 when it is
    over (with the new policy or, if it did not compile, the old one), and
    STOPPING=1 at a stop (NOTIFY_SOCKET; nothing is sent without it).
    Socket activation: sockets passed by a .socket unit (LISTEN_FDS) are
    served instead of --listen (TCP or UNIX stream sockets; they are
    systemd's, never removed). See packaging/policyd.service.

SIGNALS:
    SIGTERM, SIGINT  Stop accepting, answer requests in flight, close idle
                     connections, write the --state-file, exit 0. A second
                     signal exits at once (the state file then keeps its last
                     periodic write).
    SIGHUP           Reload the --config file and the list files it names. If
                     the new policy compiles, it replaces the old one for every
                     later request (connections stay open); if not, every error
                     is logged, at error level, and the old policy stays.
                     Ignored (logged) with --action or the embedded default
                     policy. Limits whose name, key, count, at, windows and
                     capacity are unchanged keep their counters, greylists
                     whose name, client part, timers, auto_whitelist and
                     capacity are unchanged keep their triplets; the others
                     start empty (each logged).

EXIT CODES:
    0   clean stop; check: every file compiles; test: every request parsed
    1   check: a file does not compile; test: a request did not parse;
        state: --limit or --window names nothing in the file (or policy)
    {usage}  bad command line, --action or --listen address (checked before
        anything else)
    {dataerr}  state: the state file is damaged, truncated or not a state file
    {noinput}  state: the state file cannot be read (missing, permission denied);
        serve: the --state-file exists but cannot be read
    {unavailable}  serve, state --redis: Redis (--redis) does not answer (serve:
        at start; state: or fails while it is read) or refuses the password,
        or a rediss:// server's certificate is not trusted or the TLS
        handshake fails; the reason is printed
    {oserr}  cannot listen (address in use, address not on this host, host name
        not resolved, permission denied) or other operating system failure
        at start
    {cantcreat}  serve: the --state-file cannot be written or locked (its directory
        is missing or not writable); the file, the step and the reason are
        printed
    {tempfail}  serve: another process (another policyd, its PID printed when
        known) holds the --state-file's lock, PATH.lock
    {config}  the policy cannot be read or does not compile (serve, test,
        state --redis); every error is printed with its file, line and
        column. serve: the --state-file is not a policyd state file, or one
        of a format version this policyd cannot read (it is left as it is);
        a policy with backend redis items but no --redis. serve, state
        --redis: the --redis URL, or a --redis-password-file,
        --redis-ca-file, --redis-cert-file or --redis-key-file, that cannot
        be read or used
",
        version = env!("CARGO_PKG_VERSION"),
        listen = DEFAULT_LISTEN,
        max_conn = DEFAULT_MAX_CONNECTIONS,
        idle = DEFAULT_IDLE_TIMEOUT_SECS,
        request = DEFAULT_REQUEST_TIMEOUT_SECS,
        req_bytes = limits.max_request_bytes,
        line_bytes = limits.max_line_bytes,
        attrs = limits.max_attributes,
        usage = EX_USAGE,
        oserr = EX_OSERR,
        config = EX_CONFIG,
        unavailable = EX_UNAVAILABLE,
        noinput = EX_NOINPUT,
        dataerr = EX_DATAERR,
        cantcreat = EX_CANTCREAT,
        tempfail = EX_TEMPFAIL,
        state_interval = DEFAULT_STATE_INTERVAL_SECS,
        top = DEFAULT_TOP,
        dns_deadline = DEFAULT_DNS_DEADLINE.as_secs(),
        dns_cache = DEFAULT_DNS_CACHE_BYTES,
        dns_skip_after = DEFAULT_DNS_SKIP_AFTER,
        dns_skip_for = DEFAULT_DNS_SKIP_FOR_SECS,
    )
}

/// Everything the command line may say, before it is checked against the
/// sub-command.
#[derive(Debug, Default)]
struct Parsed {
    config: Config,
    listen: Vec<ListenAddr>,
    config_file: Option<PathBuf>,
    action: Option<Action>,
    /// Options given, by identity, in order (for per-command checks).
    seen: Vec<&'static OptSpec>,
    positional: Vec<OsString>,
    explain: bool,
    now: Option<u64>,
    no_dns: bool,
    deny_warnings: bool,
    limit: Option<String>,
    top: Option<usize>,
    window: Option<usize>,
    /// `--redis-cert-file` and `--redis-key-file`, paired at the end.
    redis_cert_file: Option<PathBuf>,
    redis_key_file: Option<PathBuf>,
    /// `--syslog`, `--syslog-facility`, `--syslog-socket`, put together
    /// at the end.
    syslog: bool,
    syslog_facility: Option<Facility>,
    syslog_socket: Option<PathBuf>,
}

/// Parse the arguments after the program name.
pub(crate) fn parse<I>(args: I) -> Result<Command, CliError>
where
    I: IntoIterator<Item = OsString>,
{
    let mut args = args.into_iter().peekable();
    // The first word, if it is not an option, names the sub-command.
    let cmd = match args.peek().map(|a| a.as_bytes().to_vec()) {
        Some(word) if !word.starts_with(b"-") => {
            args.next();
            match &word[..] {
                b"serve" => Cmd::Serve,
                b"check" => Cmd::Check,
                b"test" => Cmd::Test,
                b"state" => Cmd::State,
                b"default-policy" => return no_more(args, Command::PrintDefaultPolicy),
                b"help" => return Ok(Command::Help),
                b"version" => return Ok(Command::Version),
                _ => {
                    return Err(CliError::UnknownCommand(
                        String::from_utf8_lossy(&word).into_owned(),
                    ))
                }
            }
        }
        _ => Cmd::Serve,
    };

    let mut p = Parsed::default();
    while let Some(arg) = args.next() {
        // Split `--name=value`; only long options take the `=` form.
        let bytes = arg.as_bytes();
        let (name, inline) = match bytes.iter().position(|&b| b == b'=') {
            Some(eq) if bytes.starts_with(b"--") => (
                OsStr::from_bytes(&bytes[..eq]),
                Some(OsStr::from_bytes(&bytes[eq + 1..]).to_owned()),
            ),
            _ => (arg.as_os_str(), None),
        };
        let name_str = name.to_string_lossy();
        let option = match OPTIONS.iter().find(|o| o.names.contains(&&*name_str)) {
            Some(option) => option,
            // `-` alone is a file name (standard input) for `test`.
            None if name_str.starts_with('-') && name_str.len() > 1 => {
                return Err(CliError::UnknownOption(name_str.into_owned()));
            }
            None => {
                p.positional.push(arg);
                continue;
            }
        };
        let canonical = option.names[0];
        if !option.commands.contains(&cmd) {
            return Err(CliError::OptionNotFor {
                option: canonical,
                command: cmd.name(),
            });
        }
        let value = if option.takes_value {
            match inline {
                Some(value) => value,
                None => args.next().ok_or(CliError::MissingValue(canonical))?,
            }
        } else {
            if inline.is_some() {
                return Err(CliError::UnexpectedValue(canonical));
            }
            OsString::new()
        };
        if option.once && p.seen.iter().any(|o| o.id == option.id) {
            return Err(CliError::Repeated(canonical));
        }
        p.seen.push(option);
        match option.id {
            Opt::Help => return Ok(Command::Help),
            Opt::Version => return Ok(Command::Version),
            Opt::PrintDefaultPolicy => return Ok(Command::PrintDefaultPolicy),
            Opt::Listen => p.listen.push(ListenAddr::from_arg(&value)?),
            Opt::Config => {
                if value.is_empty() {
                    return Err(CliError::BadValue {
                        option: canonical,
                        value: String::new(),
                        expected: "a file name",
                    });
                }
                p.config_file = Some(PathBuf::from(value));
            }
            Opt::Action => {
                let text = utf8(canonical, &value)?;
                p.action = Some(Action::parse(text).map_err(|error| CliError::BadAction {
                    value: text.to_owned(),
                    error,
                })?);
            }
            Opt::Explain => p.explain = true,
            Opt::NoDns => p.no_dns = true,
            Opt::Now => {
                p.now = Some(number_u64(
                    canonical,
                    &value,
                    0,
                    MAX_NOW_SECS,
                    "Unix seconds from 0 to 253402300799 (year 9999)",
                )?);
            }
            Opt::DenyWarnings => p.deny_warnings = true,
            Opt::StateFile => {
                if value.is_empty() {
                    return Err(CliError::BadValue {
                        option: canonical,
                        value: String::new(),
                        expected: "a file name",
                    });
                }
                p.config.state_file = Some(PathBuf::from(value));
            }
            Opt::StateInterval => {
                p.config.state_interval = Duration::from_secs(number_u64(
                    canonical,
                    &value,
                    1,
                    MAX_TIMEOUT_SECS,
                    "whole seconds from 1 to 86400",
                )?);
            }
            Opt::Limit => {
                let text = utf8(canonical, &value)?;
                if text.is_empty() {
                    return Err(CliError::BadValue {
                        option: canonical,
                        value: String::new(),
                        expected: "a limit's or greylist's name",
                    });
                }
                p.limit = Some(text.to_owned());
            }
            Opt::Top => {
                p.top = Some(number(
                    canonical,
                    &value,
                    1,
                    MAX_TOP,
                    "a whole number from 1 to 1000000",
                )?);
            }
            Opt::Window => {
                p.window = Some(number(
                    canonical,
                    &value,
                    1,
                    policy_core::limits::MAX_WINDOWS,
                    "a window number from 1 to 4 (as policyd state prints them)",
                )?);
            }
            Opt::MaxConnections => {
                p.config.max_connections = number(
                    canonical,
                    &value,
                    1,
                    MAX_MAX_CONNECTIONS,
                    "a whole number from 1 to 100000",
                )?;
            }
            Opt::IdleTimeout => p.config.idle_timeout = seconds(canonical, &value)?,
            Opt::RequestTimeout => p.config.request_timeout = seconds(canonical, &value)?,
            Opt::MaxRequestBytes => {
                p.config.limits.max_request_bytes = limit(canonical, &value)?;
            }
            Opt::MaxLineBytes => p.config.limits.max_line_bytes = limit(canonical, &value)?,
            Opt::MaxAttributes => p.config.limits.max_attributes = limit(canonical, &value)?,
            Opt::DnsServer => {
                let text = utf8(canonical, &value)?;
                let server = parse_dns_server(text).map_err(|expected| CliError::BadValue {
                    option: canonical,
                    value: text.to_owned(),
                    expected,
                })?;
                if p.config.dns.servers.len() == MAX_DNS_SERVERS {
                    return Err(CliError::BadValue {
                        option: canonical,
                        value: text.to_owned(),
                        expected: "at most 8 servers",
                    });
                }
                p.config.dns.servers.push(server);
            }
            Opt::DnsDeadline => {
                let text = utf8(canonical, &value)?;
                p.config.dns.deadline =
                    parse_deadline(text).map_err(|expected| CliError::BadValue {
                        option: canonical,
                        value: text.to_owned(),
                        expected,
                    })?;
            }
            Opt::DnsCacheBytes => {
                p.config.dns.cache_bytes = number(
                    canonical,
                    &value,
                    0,
                    MAX_DNS_CACHE_BYTES,
                    "a whole number of bytes from 0 (no cache) to 4294967296",
                )?;
            }
            Opt::DnsSkipAfter => {
                let n = number_u64(
                    canonical,
                    &value,
                    1,
                    u64::from(MAX_DNS_SKIP_AFTER),
                    "a whole number from 1 to 1000000",
                )?;
                // In range, so it fits.
                p.config.dns.skip_after = u32::try_from(n).unwrap_or(MAX_DNS_SKIP_AFTER);
            }
            Opt::DnsSkipFor => {
                p.config.dns.skip_for = Duration::from_secs(number_u64(
                    canonical,
                    &value,
                    1,
                    MAX_TIMEOUT_SECS,
                    "whole seconds from 1 to 86400",
                )?);
            }
            Opt::Redis => {
                let text = utf8(canonical, &value)?;
                let known = ["redis://", "rediss://", "unix://", "redis+unix://"];
                if !known.iter().any(|scheme| text.starts_with(scheme)) {
                    return Err(CliError::BadValue {
                        option: canonical,
                        value: text.to_owned(),
                        expected: "a redis://HOST[:PORT][/DB], rediss://HOST[:PORT][/DB] or \
                                   unix:///PATH[?db=N] URL",
                    });
                }
                p.config.redis.url = Some(text.to_owned());
            }
            Opt::RedisPasswordFile => {
                p.config.redis.password_file = Some(file_name(canonical, value)?);
            }
            Opt::RedisCaFile => p.config.redis.ca_file = Some(file_name(canonical, value)?),
            Opt::RedisCertFile => p.redis_cert_file = Some(file_name(canonical, value)?),
            Opt::RedisKeyFile => p.redis_key_file = Some(file_name(canonical, value)?),
            Opt::RedisPrefix => {
                let text = utf8(canonical, &value)?;
                if text.len() > 64 || text.bytes().any(|b| !b.is_ascii_graphic()) {
                    return Err(CliError::BadValue {
                        option: canonical,
                        value: text.to_owned(),
                        expected: "at most 64 printable characters without spaces (policyd:)",
                    });
                }
                p.config.redis.prefix = text.to_owned();
            }
            Opt::RedisPool => {
                p.config.redis.pool_size =
                    number(canonical, &value, 1, 256, "a whole number from 1 to 256")?;
            }
            Opt::RedisBudget => {
                let text = utf8(canonical, &value)?;
                p.config.redis.budget =
                    parse_deadline(text).map_err(|expected| CliError::BadValue {
                        option: canonical,
                        value: text.to_owned(),
                        expected,
                    })?;
            }
            Opt::LogLevel => {
                let text = utf8(canonical, &value)?;
                p.config.log.level = Level::from_name(text).ok_or_else(|| CliError::BadValue {
                    option: "--log-level",
                    value: text.to_owned(),
                    expected: "one of error, warn, info, debug",
                })?;
            }
            Opt::Syslog => p.syslog = true,
            Opt::SyslogFacility => {
                let text = utf8(canonical, &value)?;
                p.syslog_facility =
                    Some(Facility::from_name(text).ok_or_else(|| CliError::BadValue {
                        option: canonical,
                        value: text.to_owned(),
                        expected: "one of mail, daemon, user, local0 to local7",
                    })?);
            }
            Opt::SyslogSocket => p.syslog_socket = Some(file_name(canonical, value)?),
            Opt::LogTimestamps => {
                let text = utf8(canonical, &value)?;
                p.config.log.timestamps =
                    Timestamps::from_name(text).ok_or_else(|| CliError::BadValue {
                        option: canonical,
                        value: text.to_owned(),
                        expected: "one of auto, on, off",
                    })?;
            }
            Opt::User => p.config.service.user = Some(account(canonical, &value)?),
            Opt::Group => p.config.service.group = Some(account(canonical, &value)?),
            Opt::UnixOwner => p.config.service.unix_owner = Some(account(canonical, &value)?),
            Opt::UnixGroup => p.config.service.unix_group = Some(account(canonical, &value)?),
            Opt::UnixMode => {
                let text = utf8(canonical, &value)?;
                let mode = (!text.is_empty() && text.len() <= 4)
                    .then(|| u32::from_str_radix(text, 8).ok())
                    .flatten()
                    .filter(|mode| *mode <= 0o777);
                p.config.service.unix_mode = Some(mode.ok_or_else(|| CliError::BadValue {
                    option: canonical,
                    value: text.to_owned(),
                    expected: "octal permissions from 0000 to 0777, e.g. 0660",
                })?);
            }
            Opt::Allow => {
                let text = utf8(canonical, &value)?;
                for item in text.split(',').map(str::trim) {
                    let network = Network::parse(item).map_err(|expected| CliError::BadValue {
                        option: canonical,
                        value: item.to_owned(),
                        expected,
                    })?;
                    p.config.service.allow.push(network);
                }
            }
            Opt::Pidfile => p.config.service.pidfile = Some(file_name(canonical, value)?),
        }
    }

    match cmd {
        Cmd::Serve => serve_command(p),
        Cmd::Check => {
            if p.positional.is_empty() {
                return Err(CliError::MissingArgument(
                    "a policy FILE to check: policyd check FILE...",
                ));
            }
            Ok(Command::Check(CheckArgs {
                files: p.positional.into_iter().map(PathBuf::from).collect(),
                deny_warnings: p.deny_warnings,
            }))
        }
        Cmd::Test => {
            if p.no_dns {
                if let Some(dns) = p
                    .seen
                    .iter()
                    .find(|o| matches!(o.id, Opt::DnsServer | Opt::DnsDeadline))
                {
                    return Err(CliError::Conflict("--no-dns", dns.names[0]));
                }
            }
            Ok(Command::Test(TestArgs {
                policy: p
                    .config_file
                    .map_or(PolicySource::Default, PolicySource::File),
                explain: p.explain,
                now: p.now,
                inputs: p.positional.into_iter().map(PathBuf::from).collect(),
                dns: p.config.dns,
                no_dns: p.no_dns,
            }))
        }
        Cmd::State => state_command(p),
    }
}

/// Finish `policyd state`: a state file, or Redis with the policy naming
/// its items; the options of one exclude the other.
fn state_command(mut p: Parsed) -> Result<Command, CliError> {
    if let Some(arg) = p.positional.into_iter().next() {
        return Err(CliError::UnexpectedArgument(
            arg.to_string_lossy().into_owned(),
        ));
    }
    // The options only Redis uses, as given.
    let redis_only = p
        .seen
        .iter()
        .find(|o| {
            matches!(
                o.id,
                Opt::Config
                    | Opt::RedisPrefix
                    | Opt::RedisPasswordFile
                    | Opt::RedisCaFile
                    | Opt::RedisCertFile
                    | Opt::RedisKeyFile
            )
        })
        .map(|o| o.names[0]);
    redis_tls(&mut p.config.redis, p.redis_cert_file, p.redis_key_file)?;
    let source = match (p.config.state_file, p.config.redis.url.is_some()) {
        (Some(_), true) => return Err(CliError::Conflict("--state-file", "--redis")),
        (Some(path), false) => match redis_only {
            Some(option) => return Err(CliError::Conflict("--state-file", option)),
            None => StateSource::File(path),
        },
        (None, true) => StateSource::Redis {
            redis: p.config.redis,
            policy: p.config_file.ok_or(CliError::MissingArgument(
                "--config FILE with --redis, the policy naming the items to read: \
                 policyd state --redis URL --config FILE",
            ))?,
        },
        (None, false) => {
            return Err(CliError::MissingArgument(
                "--state-file PATH or --redis URL --config FILE: policyd state \
                 --state-file PATH, or policyd state --redis URL --config FILE",
            ))
        }
    };
    Ok(Command::State(StateArgs {
        source,
        limit: p.limit,
        top: p.top.unwrap_or(DEFAULT_TOP),
        window: p.window,
    }))
}

/// Finish `policyd [serve]`: positional words are errors, `--config` and
/// `--action` exclude each other, the limits must agree.
fn serve_command(p: Parsed) -> Result<Command, CliError> {
    let mut config = p.config;
    if let Some(arg) = p.positional.into_iter().next() {
        return Err(CliError::UnexpectedArgument(
            arg.to_string_lossy().into_owned(),
        ));
    }
    config.policy = match (p.config_file, p.action) {
        (Some(_), Some(_)) => return Err(CliError::Conflict("--config", "--action")),
        (Some(file), None) => PolicySource::File(file),
        (None, Some(action)) => PolicySource::Action(action),
        (None, None) => PolicySource::Default,
    };
    if config.limits.max_line_bytes > config.limits.max_request_bytes {
        return Err(CliError::BadLimits(
            "--max-line-bytes must not exceed --max-request-bytes",
        ));
    }
    if !p.listen.is_empty() {
        config.listen = p.listen;
    }
    redis_tls(&mut config.redis, p.redis_cert_file, p.redis_key_file)?;
    if p.syslog {
        config.log.syslog = Some(SyslogSettings {
            socket: p
                .syslog_socket
                .unwrap_or_else(|| PathBuf::from(DEFAULT_SYSLOG_SOCKET)),
            facility: p.syslog_facility.unwrap_or(Facility::MAIL),
        });
    } else if let Some(option) = p
        .seen
        .iter()
        .find(|o| matches!(o.id, Opt::SyslogFacility | Opt::SyslogSocket))
    {
        return Err(CliError::Requires(option.names[0], "--syslog"));
    }
    if let Some(option) = p.seen.iter().find(|o| o.id == Opt::LogTimestamps) {
        if p.syslog {
            return Err(CliError::Conflict("--syslog", option.names[0]));
        }
    }
    Ok(Command::Serve(Box::new(config)))
}

/// The TLS files of `--redis` (`serve`, `state`): the client certificate
/// and its key go together, and every TLS file needs a `rediss://` URL.
fn redis_tls(
    redis: &mut RedisArgs,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
) -> Result<(), CliError> {
    redis.client_cert = match (cert_file, key_file) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        (Some(_), None) => return Err(CliError::Requires("--redis-cert-file", "--redis-key-file")),
        (None, Some(_)) => return Err(CliError::Requires("--redis-key-file", "--redis-cert-file")),
    };
    // The TLS files mean nothing without TLS: a redis:// URL with them is a
    // mistake (the certificate would not be checked as the administrator
    // thinks), so say so rather than ignore them.
    let tls = redis.url.as_deref().is_some_and(is_tls_url);
    if !tls {
        let given = [
            (redis.ca_file.is_some(), "--redis-ca-file"),
            (redis.client_cert.is_some(), "--redis-cert-file"),
        ];
        if let Some((_, option)) = given.iter().find(|(given, _)| *given) {
            return Err(CliError::Requires(option, "a rediss:// URL in --redis"));
        }
    }
    Ok(())
}

/// Whether `url` (one `--redis` accepts) is a Redis URL over TLS.
pub(crate) fn is_tls_url(url: &str) -> bool {
    url.starts_with("rediss://")
}

/// `command` if nothing follows it, else an error about what follows.
fn no_more<I>(mut args: I, command: Command) -> Result<Command, CliError>
where
    I: Iterator<Item = OsString>,
{
    match args.next() {
        None => Ok(command),
        Some(arg) => match arg.to_str() {
            Some("-h" | "--help") => Ok(Command::Help),
            _ => Err(CliError::UnexpectedArgument(
                arg.to_string_lossy().into_owned(),
            )),
        },
    }
}

/// Largest accepted `--now`: the last second of the year 9999, far beyond any
/// real date and still far from overflow when turned into milliseconds.
pub(crate) const MAX_NOW_SECS: u64 = 253_402_300_799;

/// The options, by identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Help,
    Version,
    PrintDefaultPolicy,
    Listen,
    Config,
    Action,
    Explain,
    Now,
    NoDns,
    DenyWarnings,
    MaxConnections,
    IdleTimeout,
    RequestTimeout,
    MaxRequestBytes,
    MaxLineBytes,
    MaxAttributes,
    LogLevel,
    StateFile,
    StateInterval,
    Limit,
    Top,
    Window,
    DnsServer,
    DnsDeadline,
    DnsCacheBytes,
    DnsSkipAfter,
    DnsSkipFor,
    Redis,
    RedisPasswordFile,
    RedisCaFile,
    RedisCertFile,
    RedisKeyFile,
    RedisPrefix,
    RedisPool,
    RedisBudget,
    Syslog,
    SyslogFacility,
    SyslogSocket,
    LogTimestamps,
    User,
    Group,
    UnixOwner,
    UnixGroup,
    UnixMode,
    Allow,
    Pidfile,
}

/// One option: its spellings (the first is the canonical one, used in
/// messages), whether it takes a value, whether it may be repeated, and the
/// sub-commands it applies to.
#[derive(Debug)]
struct OptSpec {
    id: Opt,
    names: &'static [&'static str],
    takes_value: bool,
    /// Given twice is an error (a second `--config` would silently win).
    once: bool,
    commands: &'static [Cmd],
}

const ALL: &[Cmd] = &[Cmd::Serve, Cmd::Check, Cmd::Test, Cmd::State];
const STATE: &[Cmd] = &[Cmd::State];
const SERVE: &[Cmd] = &[Cmd::Serve];
/// `policyd test` asks DNS as the daemon does.
const SERVE_TEST: &[Cmd] = &[Cmd::Serve, Cmd::Test];
/// `policyd state --redis` reads the keys the daemon writes.
const SERVE_STATE: &[Cmd] = &[Cmd::Serve, Cmd::State];

const fn spec(
    id: Opt,
    names: &'static [&'static str],
    takes_value: bool,
    commands: &'static [Cmd],
) -> OptSpec {
    OptSpec {
        id,
        names,
        takes_value,
        once: takes_value,
        commands,
    }
}

/// The sub-commands, for "did you mean" hints.
const COMMANDS: [&str; 7] = [
    "serve",
    "check",
    "test",
    "state",
    "default-policy",
    "help",
    "version",
];

const OPTIONS: &[OptSpec] = &[
    spec(Opt::Help, &["--help", "-h"], false, ALL),
    spec(Opt::Version, &["--version", "-V"], false, ALL),
    spec(
        Opt::PrintDefaultPolicy,
        &["--print-default-policy"],
        false,
        SERVE,
    ),
    OptSpec {
        // Repeatable: one listener each.
        once: false,
        ..spec(Opt::Listen, &["--listen"], true, SERVE)
    },
    spec(
        Opt::Config,
        &["--config", "-c"],
        true,
        &[Cmd::Serve, Cmd::Test, Cmd::State],
    ),
    spec(Opt::Action, &["--action"], true, SERVE),
    spec(Opt::Explain, &["--explain"], false, &[Cmd::Test]),
    spec(Opt::Now, &["--now"], true, &[Cmd::Test]),
    spec(Opt::NoDns, &["--no-dns"], false, &[Cmd::Test]),
    spec(
        Opt::DenyWarnings,
        &["--deny-warnings", "--strict"],
        false,
        &[Cmd::Check],
    ),
    spec(Opt::MaxConnections, &["--max-connections"], true, SERVE),
    spec(Opt::IdleTimeout, &["--idle-timeout"], true, SERVE),
    spec(Opt::RequestTimeout, &["--request-timeout"], true, SERVE),
    spec(Opt::MaxRequestBytes, &["--max-request-bytes"], true, SERVE),
    spec(Opt::MaxLineBytes, &["--max-line-bytes"], true, SERVE),
    spec(Opt::MaxAttributes, &["--max-attributes"], true, SERVE),
    spec(Opt::LogLevel, &["--log-level"], true, SERVE),
    spec(
        Opt::StateFile,
        &["--state-file"],
        true,
        &[Cmd::Serve, Cmd::State],
    ),
    spec(Opt::StateInterval, &["--state-interval"], true, SERVE),
    spec(Opt::Limit, &["--limit"], true, STATE),
    spec(Opt::Top, &["--top"], true, STATE),
    spec(Opt::Window, &["--window"], true, STATE),
    OptSpec {
        // Repeatable: one server each.
        once: false,
        ..spec(Opt::DnsServer, &["--dns-server"], true, SERVE_TEST)
    },
    spec(Opt::DnsDeadline, &["--dns-deadline"], true, SERVE_TEST),
    spec(Opt::DnsCacheBytes, &["--dns-cache-bytes"], true, SERVE),
    spec(Opt::DnsSkipAfter, &["--dns-skip-after"], true, SERVE),
    spec(Opt::DnsSkipFor, &["--dns-skip-for"], true, SERVE),
    spec(Opt::Redis, &["--redis"], true, SERVE_STATE),
    spec(
        Opt::RedisPasswordFile,
        &["--redis-password-file"],
        true,
        SERVE_STATE,
    ),
    spec(Opt::RedisCaFile, &["--redis-ca-file"], true, SERVE_STATE),
    spec(
        Opt::RedisCertFile,
        &["--redis-cert-file"],
        true,
        SERVE_STATE,
    ),
    spec(Opt::RedisKeyFile, &["--redis-key-file"], true, SERVE_STATE),
    spec(Opt::RedisPrefix, &["--redis-prefix"], true, SERVE_STATE),
    spec(Opt::RedisPool, &["--redis-pool"], true, SERVE),
    spec(Opt::RedisBudget, &["--redis-budget"], true, SERVE),
    spec(Opt::Syslog, &["--syslog"], false, SERVE),
    spec(Opt::SyslogFacility, &["--syslog-facility"], true, SERVE),
    spec(Opt::SyslogSocket, &["--syslog-socket"], true, SERVE),
    spec(Opt::LogTimestamps, &["--log-timestamps"], true, SERVE),
    spec(Opt::User, &["--user", "-u"], true, SERVE),
    spec(Opt::Group, &["--group", "-g"], true, SERVE),
    spec(Opt::UnixOwner, &["--unix-owner"], true, SERVE),
    spec(Opt::UnixGroup, &["--unix-group"], true, SERVE),
    spec(Opt::UnixMode, &["--unix-mode"], true, SERVE),
    OptSpec {
        // Repeatable: one network each.
        once: false,
        ..spec(Opt::Allow, &["--allow"], true, SERVE)
    },
    spec(Opt::Pidfile, &["--pidfile"], true, SERVE),
];

/// A user or group name (or number) of `--user` and friends: looked up
/// at start, when the daemon has bound its sockets.
fn account(option: &'static str, value: &OsStr) -> Result<String, CliError> {
    let text = utf8(option, value)?;
    let valid = !text.is_empty()
        && text.len() <= 32
        && !text.starts_with('-')
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !valid {
        return Err(CliError::BadValue {
            option,
            value: text.to_owned(),
            expected: "a user or group name (letters, digits, _ - .) or number",
        });
    }
    Ok(text.to_owned())
}

/// A file name: any bytes but none.
fn file_name(option: &'static str, value: OsString) -> Result<PathBuf, CliError> {
    if value.is_empty() {
        return Err(CliError::BadValue {
            option,
            value: String::new(),
            expected: "a file name",
        });
    }
    Ok(PathBuf::from(value))
}

fn utf8<'v>(option: &'static str, value: &'v OsStr) -> Result<&'v str, CliError> {
    value.to_str().ok_or(CliError::NotUtf8(option))
}

/// A whole number in `min..=max` (decimal digits only: no sign, no spaces).
fn number(
    option: &'static str,
    value: &OsStr,
    min: usize,
    max: usize,
    expected: &'static str,
) -> Result<usize, CliError> {
    let n = number_u64(option, value, min as u64, max as u64, expected)?;
    // In range, so it fits.
    usize::try_from(n).map_err(|_| CliError::BadValue {
        option,
        value: value.to_string_lossy().into_owned(),
        expected,
    })
}

/// [`number`] for values that may not fit a 32-bit `usize`.
fn number_u64(
    option: &'static str,
    value: &OsStr,
    min: u64,
    max: u64,
    expected: &'static str,
) -> Result<u64, CliError> {
    let text = utf8(option, value)?;
    let bad = || CliError::BadValue {
        option,
        value: text.to_owned(),
        expected,
    };
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match text.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(bad()),
    }
}

fn seconds(option: &'static str, value: &OsStr) -> Result<Duration, CliError> {
    let secs = number(
        option,
        value,
        1,
        MAX_TIMEOUT_SECS as usize,
        "whole seconds from 1 to 86400",
    )?;
    Ok(Duration::from_secs(secs as u64))
}

fn limit(option: &'static str, value: &OsStr) -> Result<usize, CliError> {
    number(
        option,
        value,
        1,
        MAX_LIMIT,
        "a whole number from 1 to 16777216",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Command, CliError> {
        parse(args.iter().map(OsString::from))
    }

    fn run(args: &[&str]) -> Result<Config, CliError> {
        match parse_strs(args)? {
            Command::Serve(config) => Ok(*config),
            other => panic!("expected Serve, got {other:?}"),
        }
    }

    fn err(args: &[&str]) -> CliError {
        match parse_strs(args) {
            Err(e) => e,
            Ok(other) => panic!("expected an error for {args:?}, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let config = run(&[]).unwrap();
        assert_eq!(config.listen, [ListenAddr::Tcp("127.0.0.1:10031".into())]);
        assert_eq!(config.policy, PolicySource::Default);
        assert_eq!(config.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert_eq!(config.idle_timeout, Duration::from_secs(1200));
        assert_eq!(config.request_timeout, Duration::from_secs(100));
        assert_eq!(config.limits, Limits::default());
        assert_eq!(config.log.level, Level::Info);
        assert_eq!(run(&["serve"]).unwrap().policy, PolicySource::Default);
        const { assert!(DEFAULT_IDLE_TIMEOUT_SECS > POSTFIX_MAX_TTL_SECS) };
    }

    #[test]
    fn help_and_version() {
        for args in [&["-h"][..], &["--help"], &["help"], &["check", "--help"]] {
            assert!(matches!(parse_strs(args), Ok(Command::Help)), "{args:?}");
        }
        for args in [
            &["-V"][..],
            &["version"],
            &["--max-connections", "5", "--version"],
        ] {
            assert!(matches!(parse_strs(args), Ok(Command::Version)), "{args:?}");
        }
        assert!(help().contains("--listen ADDR"));
        assert!(help().contains("check_policy_service"));
        assert_eq!(
            version(),
            format!("policyd {}\n", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn default_policy_command() {
        for args in [&["default-policy"][..], &["--print-default-policy"]] {
            assert!(
                matches!(parse_strs(args), Ok(Command::PrintDefaultPolicy)),
                "{args:?}"
            );
        }
        assert_eq!(
            err(&["default-policy", "x"]),
            CliError::UnexpectedArgument("x".into())
        );
    }

    #[test]
    fn policy_sources() {
        assert_eq!(
            run(&["--config", "/etc/policyd/policy.conf"])
                .unwrap()
                .policy,
            PolicySource::File("/etc/policyd/policy.conf".into())
        );
        assert_eq!(
            run(&["serve", "-c", "p.conf"]).unwrap().policy,
            PolicySource::File("p.conf".into())
        );
        assert_eq!(
            run(&["--action=REJECT 5.7.1 no"]).unwrap().policy,
            PolicySource::Action(Action::parse("REJECT 5.7.1 no").unwrap())
        );
        assert_eq!(
            err(&["--config", "a", "--action", "OK"]),
            CliError::Conflict("--config", "--action")
        );
        assert_eq!(
            err(&["--config", "a", "--config", "b"]),
            CliError::Repeated("--config")
        );
        assert!(matches!(
            err(&["--config="]),
            CliError::BadValue {
                option: "--config",
                ..
            }
        ));
    }

    #[test]
    fn check_command() {
        match parse_strs(&["check", "a.conf", "--deny-warnings", "b.conf"]).unwrap() {
            Command::Check(args) => assert_eq!(
                args,
                CheckArgs {
                    files: vec!["a.conf".into(), "b.conf".into()],
                    deny_warnings: true
                }
            ),
            other => panic!("{other:?}"),
        }
        match parse_strs(&["check", "a.conf"]).unwrap() {
            Command::Check(args) => assert!(!args.deny_warnings),
            other => panic!("{other:?}"),
        }
        assert!(matches!(err(&["check"]), CliError::MissingArgument(_)));
        assert_eq!(
            err(&["check", "--listen", "x:1", "a"]),
            CliError::OptionNotFor {
                option: "--listen",
                command: "check"
            }
        );
    }

    #[test]
    fn test_command() {
        match parse_strs(&[
            "test",
            "--config",
            "p.conf",
            "--explain",
            "r1",
            "-",
            "--now=1700000000",
        ])
        .unwrap()
        {
            Command::Test(args) => assert_eq!(
                args,
                TestArgs {
                    policy: PolicySource::File("p.conf".into()),
                    explain: true,
                    now: Some(1_700_000_000),
                    inputs: vec!["r1".into(), "-".into()],
                    dns: DnsSettings::default(),
                    no_dns: false,
                }
            ),
            other => panic!("{other:?}"),
        }
        match parse_strs(&["test"]).unwrap() {
            Command::Test(args) => {
                assert_eq!(args.policy, PolicySource::Default);
                assert!(args.inputs.is_empty() && !args.explain && args.now.is_none());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            err(&["test", "--action", "OK"]),
            CliError::OptionNotFor {
                option: "--action",
                command: "test"
            }
        );
        assert_eq!(
            err(&["--explain"]),
            CliError::OptionNotFor {
                option: "--explain",
                command: "serve"
            }
        );
        assert!(matches!(
            err(&["test", "--now", "-5"]),
            CliError::BadValue {
                option: "--now",
                ..
            }
        ));
    }

    #[test]
    fn test_command_dns_options() {
        match parse_strs(&[
            "test",
            "--dns-server",
            "127.0.0.1:5353",
            "--dns-server=[::1]",
            "--dns-deadline",
            "500ms",
        ])
        .unwrap()
        {
            Command::Test(args) => {
                let servers: Vec<String> =
                    args.dns.servers.iter().map(ToString::to_string).collect();
                assert_eq!(servers, ["127.0.0.1:5353", "[::1]:53"]);
                assert_eq!(args.dns.deadline, Duration::from_millis(500));
                assert!(!args.no_dns);
            }
            other => panic!("{other:?}"),
        }
        match parse_strs(&["test", "--no-dns"]).unwrap() {
            Command::Test(args) => {
                assert!(args.no_dns);
                assert_eq!(args.dns, DnsSettings::default());
            }
            other => panic!("{other:?}"),
        }
        for (args, other) in [
            (
                &["test", "--no-dns", "--dns-server", "127.0.0.1"][..],
                "--dns-server",
            ),
            (
                &["test", "--dns-deadline", "1s", "--no-dns"],
                "--dns-deadline",
            ),
        ] {
            assert_eq!(err(args), CliError::Conflict("--no-dns", other), "{args:?}");
        }
        for (args, option, command) in [
            (&["--no-dns"][..], "--no-dns", "serve"),
            (
                &["test", "--dns-cache-bytes", "0"],
                "--dns-cache-bytes",
                "test",
            ),
            (
                &["check", "--dns-server", "127.0.0.1", "p.conf"],
                "--dns-server",
                "check",
            ),
        ] {
            assert_eq!(
                err(args),
                CliError::OptionNotFor { option, command },
                "{args:?}"
            );
        }
        assert!(help().contains("--no-dns"));
    }

    #[test]
    fn listen_addresses() {
        let config = run(&[
            "--listen",
            "[::1]:0",
            "--listen=/run/policyd.sock",
            "--listen",
            "localhost:10031",
            "--listen",
            "./rel",
        ])
        .unwrap();
        assert_eq!(
            config.listen,
            [
                ListenAddr::Tcp("[::1]:0".into()),
                ListenAddr::Unix("/run/policyd.sock".into()),
                ListenAddr::Tcp("localhost:10031".into()),
                ListenAddr::Unix("./rel".into()),
            ]
        );
        // A port alone is loopback (postgrey's `--inet=10023` habit).
        assert_eq!(
            run(&["--listen", "10031", "--listen=0"]).unwrap().listen,
            [
                ListenAddr::Tcp("127.0.0.1:10031".into()),
                ListenAddr::Tcp("127.0.0.1:0".into()),
            ]
        );
        // A bad address is a usage error, found here, before anything else.
        let rows = [
            ("127.0.0.1:99999", EXPECTED_PORT),
            ("99999", EXPECTED_PORT),
            ("localhost:x", EXPECTED_PORT),
            ("nonsense", EXPECTED_TCP),
            ("127.0.0.1", EXPECTED_TCP),
            ("::1:10031", EXPECTED_TCP),
            ("[::1]:99999", EXPECTED_PORT),
            ("[::1]:x", EXPECTED_PORT),
            ("[::g]:10031", EXPECTED_TCP),
            ("[::1:10031", EXPECTED_TCP),
            ("", EXPECTED_TCP),
        ];
        for (value, expected) in rows {
            assert_eq!(
                err(&["--listen", value]),
                CliError::BadValue {
                    option: "--listen",
                    value: value.into(),
                    expected
                },
                "{value:?}"
            );
        }
        assert_eq!(
            err(&["--listen", "127.0.0.1:99999"]).to_string(),
            "bad value \"127.0.0.1:99999\" for --listen: expected a port from 0 to 65535"
        );
    }

    #[test]
    fn values() {
        let config = run(&[
            "--max-connections=7",
            "--idle-timeout",
            "2000",
            "--request-timeout",
            "1",
            "--max-request-bytes",
            "9000",
            "--max-line-bytes=900",
            "--max-attributes",
            "40",
            "--log-level",
            "debug",
        ])
        .unwrap();
        assert_eq!(config.max_connections, 7);
        assert_eq!(config.idle_timeout, Duration::from_secs(2000));
        assert_eq!(config.request_timeout, Duration::from_secs(1));
        assert_eq!(config.limits.max_request_bytes, 9000);
        assert_eq!(config.limits.max_line_bytes, 900);
        assert_eq!(config.limits.max_attributes, 40);
        assert_eq!(config.log.level, Level::Debug);
    }

    #[test]
    fn errors() {
        let rows: &[(&[&str], CliError)] = &[
            (&["--bogus"], CliError::UnknownOption("--bogus".into())),
            (&["-x"], CliError::UnknownOption("-x".into())),
            (&["stray"], CliError::UnknownCommand("stray".into())),
            (
                &["serve", "stray"],
                CliError::UnexpectedArgument("stray".into()),
            ),
            (&["--listen"], CliError::MissingValue("--listen")),
            (&["--help=yes"], CliError::UnexpectedValue("--help")),
            (
                &["--max-connections", "0"],
                CliError::BadValue {
                    option: "--max-connections",
                    value: "0".into(),
                    expected: "a whole number from 1 to 100000",
                },
            ),
            (
                &["--max-connections", "+5"],
                CliError::BadValue {
                    option: "--max-connections",
                    value: "+5".into(),
                    expected: "a whole number from 1 to 100000",
                },
            ),
            (
                &["--idle-timeout", "1.5"],
                CliError::BadValue {
                    option: "--idle-timeout",
                    value: "1.5".into(),
                    expected: "whole seconds from 1 to 86400",
                },
            ),
            (
                &["--request-timeout", "86401"],
                CliError::BadValue {
                    option: "--request-timeout",
                    value: "86401".into(),
                    expected: "whole seconds from 1 to 86400",
                },
            ),
            (
                &["--max-line-bytes", "99999999999999999999999"],
                CliError::BadValue {
                    option: "--max-line-bytes",
                    value: "99999999999999999999999".into(),
                    expected: "a whole number from 1 to 16777216",
                },
            ),
            (
                &["--log-level", "loud"],
                CliError::BadValue {
                    option: "--log-level",
                    value: "loud".into(),
                    expected: "one of error, warn, info, debug",
                },
            ),
            (
                &["--max-request-bytes", "100", "--max-line-bytes", "200"],
                CliError::BadLimits("--max-line-bytes must not exceed --max-request-bytes"),
            ),
            (
                &["--max-connections", "5", "--max-connections", "6"],
                CliError::Repeated("--max-connections"),
            ),
        ];
        for (args, expected) in rows {
            assert_eq!(&err(args), expected, "args {args:?}");
        }
    }

    #[test]
    fn state_options() {
        let config = run(&["--state-file", "/var/lib/policyd/state"]).unwrap();
        assert_eq!(
            config.state_file,
            Some(PathBuf::from("/var/lib/policyd/state"))
        );
        assert_eq!(
            config.state_interval,
            Duration::from_secs(DEFAULT_STATE_INTERVAL_SECS)
        );
        assert_eq!(run(&[]).unwrap().state_file, None);
        assert_eq!(
            run(&["--state-interval=1"]).unwrap().state_interval,
            Duration::from_secs(1)
        );
        for bad in ["0", "86401", "1s", ""] {
            assert!(
                matches!(
                    err(&["--state-interval", bad]),
                    CliError::BadValue {
                        option: "--state-interval",
                        ..
                    }
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            err(&["--state-file="]),
            CliError::BadValue {
                option: "--state-file",
                ..
            }
        ));
        assert_eq!(
            err(&["--state-file", "a", "--state-file", "b"]),
            CliError::Repeated("--state-file")
        );
        assert_eq!(
            err(&["--top", "3"]),
            CliError::OptionNotFor {
                option: "--top",
                command: "serve"
            }
        );
    }

    #[test]
    fn state_command() {
        match parse_strs(&[
            "state",
            "--state-file",
            "s",
            "--limit=out",
            "--top",
            "5",
            "--window",
            "2",
        ])
        .unwrap()
        {
            Command::State(args) => assert_eq!(
                args,
                StateArgs {
                    source: StateSource::File("s".into()),
                    limit: Some("out".into()),
                    top: 5,
                    window: Some(2),
                }
            ),
            other => panic!("{other:?}"),
        }
        match parse_strs(&["state", "--state-file", "s"]).unwrap() {
            Command::State(args) => {
                assert_eq!(
                    (args.limit, args.top, args.window),
                    (None, DEFAULT_TOP, None)
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(err(&["state"]), CliError::MissingArgument(_)));
        assert_eq!(
            err(&["state", "--state-file", "s", "x"]),
            CliError::UnexpectedArgument("x".into())
        );
        assert_eq!(
            err(&["state", "--state-file", "s", "--state-interval", "5"]),
            CliError::OptionNotFor {
                option: "--state-interval",
                command: "state"
            }
        );
        for (option, value) in [("--top", "0"), ("--window", "5"), ("--window", "0")] {
            assert!(
                matches!(
                    err(&["state", "--state-file", "s", option, value]),
                    CliError::BadValue { .. }
                ),
                "{option} {value}"
            );
        }
        assert!(help().contains("--state-file PATH"));
        assert!(help().contains("policyd state"));
    }

    #[test]
    fn state_command_with_redis() {
        let url = "redis://127.0.0.1:6379/2";
        match parse_strs(&[
            "state",
            "--redis",
            url,
            "--config",
            "p.conf",
            "--redis-prefix",
            "mx:",
            "--redis-password-file=pw",
            "--limit",
            "out",
        ])
        .unwrap()
        {
            Command::State(args) => assert_eq!(
                args,
                StateArgs {
                    source: StateSource::Redis {
                        redis: RedisArgs {
                            url: Some(url.into()),
                            password_file: Some("pw".into()),
                            prefix: "mx:".into(),
                            ..RedisArgs::default()
                        },
                        policy: "p.conf".into(),
                    },
                    limit: Some("out".into()),
                    top: DEFAULT_TOP,
                    window: None,
                }
            ),
            other => panic!("{other:?}"),
        }
        // (arguments, error)
        let rows: &[(&[&str], CliError)] = &[
            (
                &["state", "--state-file", "s", "--redis", url],
                CliError::Conflict("--state-file", "--redis"),
            ),
            (
                &[
                    "state",
                    "--redis",
                    url,
                    "--config",
                    "p",
                    "--state-file",
                    "s",
                ],
                CliError::Conflict("--state-file", "--redis"),
            ),
            (
                &["state", "--state-file", "s", "--config", "p"],
                CliError::Conflict("--state-file", "--config"),
            ),
            (
                &["state", "--state-file", "s", "--redis-prefix", "x:"],
                CliError::Conflict("--state-file", "--redis-prefix"),
            ),
            (
                &["state", "--state-file", "s", "--redis-password-file", "pw"],
                CliError::Conflict("--state-file", "--redis-password-file"),
            ),
            (
                &["state", "--redis", url, "--redis-pool", "3"],
                CliError::OptionNotFor {
                    option: "--redis-pool",
                    command: "state",
                },
            ),
            (
                &[
                    "state",
                    "--redis",
                    url,
                    "--config",
                    "p",
                    "--redis-budget",
                    "1s",
                ],
                CliError::OptionNotFor {
                    option: "--redis-budget",
                    command: "state",
                },
            ),
        ];
        for (args, expected) in rows {
            assert_eq!(&err(args), expected, "{args:?}");
        }
        // --redis without the policy naming its items; neither source.
        for args in [
            &["state", "--redis", url][..],
            &["state", "--config", "p"][..],
            &["state"][..],
        ] {
            assert!(
                matches!(err(args), CliError::MissingArgument(_)),
                "{args:?}"
            );
        }
        assert!(err(&["state", "--redis", url])
            .to_string()
            .contains("expected --config FILE with --redis"));
        assert!(help().contains("policyd state --redis URL --config FILE"));
    }

    #[test]
    fn dns_options() {
        let config = run(&[]).unwrap();
        assert_eq!(config.dns, DnsSettings::default());
        assert_eq!(config.dns.deadline, Duration::from_secs(2));
        let config = run(&[
            "--dns-server",
            "127.0.0.1",
            "--dns-server=[2001:db8::53]:5353",
            "--dns-server",
            "192.0.2.53:53",
            "--dns-server",
            "2001:db8::1",
            "--dns-deadline",
            "250ms",
            "--dns-cache-bytes",
            "0",
            "--dns-skip-after",
            "3",
            "--dns-skip-for",
            "30",
        ])
        .unwrap();
        let servers: Vec<String> = config.dns.servers.iter().map(ToString::to_string).collect();
        assert_eq!(
            servers,
            [
                "127.0.0.1:53",
                "[2001:db8::53]:5353",
                "192.0.2.53:53",
                "[2001:db8::1]:53"
            ]
        );
        assert_eq!(config.dns.deadline, Duration::from_millis(250));
        assert_eq!(config.dns.cache_bytes, 0);
        assert_eq!(config.dns.skip_after, 3);
        assert_eq!(config.dns.skip_for, Duration::from_secs(30));
        for (text, millis) in [("2s", 2000), ("2", 2000), ("10ms", 10), ("60s", 60_000)] {
            assert_eq!(
                parse_deadline(text),
                Ok(Duration::from_millis(millis)),
                "{text}"
            );
        }
        for text in [
            "",
            "ms",
            "9ms",
            "61s",
            "1.5s",
            "-1",
            "2m",
            "2 s",
            "99999999999999999999",
        ] {
            assert_eq!(parse_deadline(text), Err(EXPECTED_DNS_DEADLINE), "{text:?}");
        }
        for bad in ["dns.example", "127.0.0.1:99999", "[::1", "::1]:53", ""] {
            assert!(matches!(
                err(&["--dns-server", bad]),
                CliError::BadValue {
                    option: "--dns-server",
                    ..
                }
            ));
        }
        let nine: Vec<String> = (1..=9)
            .map(|n| format!("--dns-server=192.0.2.{n}"))
            .collect();
        let nine: Vec<&str> = nine.iter().map(String::as_str).collect();
        assert!(matches!(
            err(&nine),
            CliError::BadValue {
                expected: "at most 8 servers",
                ..
            }
        ));
        for (args, option) in [
            (&["--dns-skip-after", "0"][..], "--dns-skip-after"),
            (&["--dns-skip-for", "0"], "--dns-skip-for"),
            (&["--dns-cache-bytes", "x"], "--dns-cache-bytes"),
            (&["--dns-deadline", "0ms"], "--dns-deadline"),
        ] {
            assert!(
                matches!(err(args), CliError::BadValue { option: o, .. } if o == option),
                "{args:?}"
            );
        }
        assert_eq!(
            err(&["check", "--dns-server", "127.0.0.1", "x"]),
            CliError::OptionNotFor {
                option: "--dns-server",
                command: "check"
            }
        );
        assert!(help().contains("--dns-server ADDR"));
        assert!(help().contains("--dns-deadline TIME"));
    }

    #[test]
    fn bad_action_is_a_usage_error() {
        assert!(matches!(
            err(&["--action", "FROBNICATE"]),
            CliError::BadAction { value, .. } if value == "FROBNICATE"
        ));
    }

    #[test]
    fn non_utf8_values() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(vec![b'x', 0xff]);
        assert_eq!(
            parse([OsString::from("--action"), bad.clone()]).unwrap_err(),
            CliError::NotUtf8("--action")
        );
        assert_eq!(
            parse([OsString::from("--listen"), bad.clone()]).unwrap_err(),
            CliError::NotUtf8("--listen")
        );
        // A UNIX socket path or a policy file name need not be UTF-8.
        let path = OsString::from_vec(b"/tmp/\xffsock".to_vec());
        let config = match parse([
            OsString::from("--listen"),
            path.clone(),
            OsString::from("--config"),
            bad.clone(),
        ]) {
            Ok(Command::Serve(config)) => config,
            other => panic!("{other:?}"),
        };
        assert_eq!(config.listen, [ListenAddr::Unix(PathBuf::from(path))]);
        assert_eq!(config.policy, PolicySource::File(PathBuf::from(bad)));
    }

    #[test]
    fn error_messages_read_well() {
        assert_eq!(err(&["--bogus"]).to_string(), "unknown option \"--bogus\"");
        // A short option is one edit from the others: no hint.
        assert_eq!(err(&["-x"]).to_string(), "unknown option \"-x\"");
        // Misspellings get the option or command meant.
        assert_eq!(
            err(&["--confg", "x"]).to_string(),
            "unknown option \"--confg\"; did you mean --config?"
        );
        assert_eq!(
            err(&["check", "--deny-warning", "x"]).to_string(),
            "unknown option \"--deny-warning\"; did you mean --deny-warnings?"
        );
        assert_eq!(
            err(&["chek", "x"]).to_string(),
            "unknown command \"chek\": expected serve, check, test, state, default-policy, help or \
             version; did you mean check?"
        );
        assert_eq!(
            err(&["default_policy"]).to_string(),
            "unknown command \"default_policy\": expected serve, check, test, state, \
             default-policy, help or version; did you mean default-policy?"
        );
        assert_eq!(
            err(&["--max-connections", "x"]).to_string(),
            "bad value \"x\" for --max-connections: expected a whole number from 1 to 100000"
        );
        assert_eq!(
            err(&["--config", "a", "--action", "OK"]).to_string(),
            "--config and --action exclude each other: give one"
        );
        assert_eq!(
            err(&["check", "--listen=x:1", "a"]).to_string(),
            "option --listen does not apply to `policyd check`"
        );
    }

    #[test]
    fn redis_options() {
        let config = run(&[]).unwrap();
        assert_eq!(config.redis, RedisArgs::default());
        assert_eq!(config.redis.url, None);
        assert_eq!(config.redis.ca_file, None);
        assert_eq!(config.redis.client_cert, None);
        let tls = "rediss://redis.example:6380/0";
        let config = run(&[
            "--redis",
            tls,
            "--redis-password-file=/etc/policyd/redis.pw",
            "--redis-ca-file",
            "/etc/policyd/ca.pem",
            "--redis-cert-file",
            "c.pem",
            "--redis-key-file",
            "k.pem",
            "--redis-prefix",
            "mx:",
            "--redis-pool",
            "3",
            "--redis-budget",
            "80ms",
        ])
        .unwrap();
        assert_eq!(
            config.redis,
            RedisArgs {
                url: Some(tls.into()),
                password_file: Some("/etc/policyd/redis.pw".into()),
                ca_file: Some("/etc/policyd/ca.pem".into()),
                client_cert: Some(("c.pem".into(), "k.pem".into())),
                prefix: "mx:".into(),
                pool_size: 3,
                budget: Duration::from_millis(80),
            }
        );
        // Each TLS file alone is enough with a rediss:// URL.
        let ca_only = run(&["--redis", tls, "--redis-ca-file", "ca.pem"]).unwrap();
        assert_eq!(ca_only.redis.ca_file, Some("ca.pem".into()));
        assert_eq!(ca_only.redis.client_cert, None);
        let cases: &[(&[&str], &str)] = &[
            (
                &["--redis", tls, "--redis-cert-file", "c.pem"],
                "--redis-cert-file needs --redis-key-file",
            ),
            (
                &["--redis", tls, "--redis-key-file", "k.pem"],
                "--redis-key-file needs --redis-cert-file",
            ),
            (
                &["--redis", "redis://127.0.0.1/", "--redis-ca-file", "ca.pem"],
                "--redis-ca-file needs a rediss:// URL in --redis",
            ),
            (
                &["--redis-ca-file", "ca.pem"],
                "--redis-ca-file needs a rediss:// URL in --redis",
            ),
            (
                &[
                    "--redis",
                    "unix:///run/redis.sock",
                    "--redis-cert-file",
                    "c.pem",
                    "--redis-key-file",
                    "k.pem",
                ],
                "--redis-cert-file needs a rediss:// URL in --redis",
            ),
            (
                &["--redis", tls, "--redis-ca-file", ""],
                "bad value \"\" for --redis-ca-file: expected a file name",
            ),
            (
                &[
                    "--redis",
                    tls,
                    "--redis-ca-file",
                    "a",
                    "--redis-ca-file",
                    "b",
                ],
                "option --redis-ca-file given twice: expected once",
            ),
            (
                &["check", "--redis-ca-file", "a", "x"],
                "option --redis-ca-file does not apply to `policyd check`",
            ),
            (
                &["--redis", "http://x/"],
                "bad value \"http://x/\" for --redis: expected a redis://HOST[:PORT][/DB], \
                 rediss://HOST[:PORT][/DB] or unix:///PATH[?db=N] URL",
            ),
        ];
        for (args, message) in cases {
            assert_eq!(err(args).to_string(), *message, "{args:?}");
        }
    }

    #[test]
    fn service_and_log_options() {
        let config = run(&[
            "--syslog",
            "--syslog-facility",
            "local3",
            "--user",
            "policyd",
            "-g",
            "mail",
            "--unix-owner",
            "postfix",
            "--unix-group=postfix",
            "--unix-mode",
            "0660",
            "--allow",
            "127.0.0.0/8, ::1",
            "--allow",
            "192.0.2.0/24",
            "--pidfile",
            "/run/policyd.pid",
        ])
        .unwrap();
        assert_eq!(
            config.log.syslog,
            Some(SyslogSettings {
                socket: PathBuf::from("/dev/log"),
                facility: Facility::from_name("local3").unwrap(),
            })
        );
        let service = &config.service;
        assert_eq!(service.user.as_deref(), Some("policyd"));
        assert_eq!(service.group.as_deref(), Some("mail"));
        assert_eq!(service.unix_owner.as_deref(), Some("postfix"));
        assert_eq!(service.unix_group.as_deref(), Some("postfix"));
        assert_eq!(service.unix_mode, Some(0o660));
        let allowed: Vec<String> = service.allow.iter().map(ToString::to_string).collect();
        assert_eq!(allowed, ["127.0.0.0/8", "::1/128", "192.0.2.0/24"]);
        assert_eq!(service.pidfile, Some(PathBuf::from("/run/policyd.pid")));
        assert_eq!(run(&[]).unwrap().log.timestamps, Timestamps::Auto);
        assert_eq!(
            run(&["--log-timestamps", "off"]).unwrap().log.timestamps,
            Timestamps::Off
        );
        assert_eq!(
            run(&["--syslog"]).unwrap().log.syslog.map(|s| s.facility),
            Some(Facility::MAIL)
        );

        let cases: &[(&[&str], &str)] = &[
            (
                &["--syslog-facility", "mail"],
                "--syslog-facility needs --syslog",
            ),
            (&["--syslog-socket", "/x"], "--syslog-socket needs --syslog"),
            (
                &["--syslog", "--log-timestamps", "on"],
                "--syslog and --log-timestamps exclude each other: give one",
            ),
            (
                &["--syslog", "--syslog-facility", "kern"],
                "bad value \"kern\" for --syslog-facility: expected one of mail, daemon, \
                 user, local0 to local7",
            ),
            (
                &["--unix-mode", "0999"],
                "bad value \"0999\" for --unix-mode: expected octal permissions from 0000 to \
                 0777, e.g. 0660",
            ),
            (
                &["--unix-mode", "1777"],
                "bad value \"1777\" for --unix-mode: expected octal permissions from 0000 to \
                 0777, e.g. 0660",
            ),
            (
                &["--user", "-x"],
                "bad value \"-x\" for --user: expected a user or group name (letters, digits, \
                 _ - .) or number",
            ),
            (
                &["--allow", "192.0.2.1/24"],
                "bad value \"192.0.2.1/24\" for --allow: expected a network without host bits \
                 (e.g. 192.0.2.0/24, not 192.0.2.1/24)",
            ),
            (
                &["--allow", "10.0.0.0/33"],
                "bad value \"10.0.0.0/33\" for --allow: expected a prefix length of at most 32 \
                 (IPv4) or 128 (IPv6)",
            ),
            (
                &["--allow", "localhost"],
                "bad value \"localhost\" for --allow: expected an IP address or network: \
                 127.0.0.1, 192.0.2.0/24, ::1, 2001:db8::/32",
            ),
            (
                &["check", "--user", "x", "f"],
                "option --user does not apply to `policyd check`",
            ),
        ];
        for (args, message) in cases {
            assert_eq!(err(args).to_string(), *message, "{args:?}");
        }
    }

    #[test]
    fn allow_networks_match() {
        let rows: &[(&str, &str, bool)] = &[
            ("127.0.0.0/8", "127.1.2.3", true),
            ("127.0.0.0/8", "128.0.0.1", false),
            ("192.0.2.0/24", "192.0.2.255", true),
            ("192.0.2.0/24", "192.0.3.0", false),
            ("192.0.2.7", "192.0.2.7", true),
            ("192.0.2.7", "192.0.2.8", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("0.0.0.0/0", "2001:db8::1", false),
            // An IPv4 client of an IPv6 socket is matched as IPv4.
            ("192.0.2.0/24", "::ffff:192.0.2.1", true),
            ("2001:db8::/32", "2001:db8:ffff::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("::1", "::1", true),
            ("::/0", "127.0.0.1", false),
        ];
        for (network, ip, expected) in rows {
            let network = Network::parse(network).unwrap();
            let ip: std::net::IpAddr = ip.parse().unwrap();
            assert_eq!(network.contains(ip), *expected, "{network} {ip}");
        }
    }
}
