//! The command line, parsed by hand.
//!
//! The daemon has a dozen flags and no sub-commands, so a hand-written parser is
//! shorter than the glue a parser crate needs, adds no dependency, and keeps every
//! error message in one place. Both `--flag VALUE` and `--flag=VALUE` are
//! accepted. Every error is a [`CliError`], printed as one line, exit code
//! [`EX_USAGE`].
//!
//! Addresses given to `--listen` are only classified here (TCP or UNIX socket);
//! they are resolved and bound in [`crate::listen`], and a bad one is a bind
//! error (exit code [`EX_OSERR`]), like a port in use.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use policy_core::{Action, ActionError};
use policy_proto::Limits;

use crate::log::Level;

/// Exit code for a bad command line (BSD `sysexits.h` `EX_USAGE`).
pub(crate) const EX_USAGE: u8 = 64;

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

/// Largest accepted framer limit (`--max-request-bytes` and friends): 16 MiB.
/// Postfix's largest real requests are a few KiB; the cap only stops a typo from
/// letting every connection buffer gigabytes.
pub(crate) const MAX_LIMIT: usize = 16 * 1024 * 1024;

/// Where the daemon listens, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListenAddr {
    /// `host:port`, resolved when binding (IPv6 as `[::1]:10031`).
    Tcp(String),
    /// A UNIX socket path (anything containing a `/`).
    Unix(PathBuf),
}

impl ListenAddr {
    /// Classify one `--listen` value: a path if it contains `/`, else `host:port`.
    fn from_arg(arg: &OsStr) -> Result<Self, CliError> {
        if arg.as_bytes().contains(&b'/') {
            return Ok(Self::Unix(PathBuf::from(arg)));
        }
        match arg.to_str() {
            Some(s) => Ok(Self::Tcp(s.to_owned())),
            None => Err(CliError::NotUtf8("--listen")),
        }
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

/// A complete daemon configuration, every field validated.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Listeners to bind, at least one.
    pub(crate) listen: Vec<ListenAddr>,
    /// The action every request is answered with (until policy files exist).
    pub(crate) action: Action,
    /// Most connections served at once; more are refused.
    pub(crate) max_connections: usize,
    /// An idle connection (no partial request) is closed after this long.
    pub(crate) idle_timeout: Duration,
    /// A started request must complete within this long.
    pub(crate) request_timeout: Duration,
    /// Framer limits.
    pub(crate) limits: Limits,
    /// Least severe level logged.
    pub(crate) log_level: Level,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: vec![ListenAddr::Tcp(DEFAULT_LISTEN.to_owned())],
            action: Action::Dunno,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS),
            request_timeout: Duration::from_secs(DEFAULT_REQUEST_TIMEOUT_SECS),
            limits: Limits::default(),
            log_level: Level::Info,
        }
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub(crate) enum Command {
    /// Run the daemon.
    Run(Box<Config>),
    /// Print [`help`] and exit 0.
    Help,
    /// Print [`version`] and exit 0.
    Version,
}

/// Why the command line was refused. Printed as `policyd: error: {self}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CliError {
    /// An option this version does not know.
    UnknownOption(String),
    /// A bare word; the daemon takes no positional arguments.
    UnexpectedArgument(String),
    /// An option that needs a value came last.
    MissingValue(&'static str),
    /// A flag that takes no value was given one (`--help=x`).
    UnexpectedValue(&'static str),
    /// A value that must be UTF-8 text was not.
    NotUtf8(&'static str),
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
            Self::UnknownOption(opt) => write!(f, "unknown option {opt:?}"),
            Self::UnexpectedArgument(arg) => {
                write!(f, "unexpected argument {arg:?} (options start with --)")
            }
            Self::MissingValue(opt) => write!(f, "option {opt} needs a value"),
            Self::UnexpectedValue(opt) => write!(f, "option {opt} takes no value"),
            Self::NotUtf8(opt) => write!(f, "the value of {opt} is not valid UTF-8"),
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

/// The `--help` text: what the daemon does, every option with its default and
/// reason, the Postfix configuration to use it, signals, logs and exit codes.
pub(crate) fn help() -> String {
    let limits = Limits::default();
    format!(
        "\
policyd {version}: a Postfix SMTP access policy daemon.

Postfix's smtpd asks it about each SMTP command (usually each RCPT TO) over the
policy delegation protocol; policyd answers with one access(5) action. Until
policy files exist, it answers every request with the --action you configure.

USAGE:
    policyd [OPTIONS]

OPTIONS:
    --listen ADDR           Where to listen; repeat for several listeners.
                            host:port for TCP (IPv6 as [::1]:10031; port 0 picks
                            a free port), or a path containing '/' for a UNIX
                            socket (a stale socket file left by a previous run is
                            replaced; the socket is created with the process
                            umask). Note: on Linux [::]:PORT also accepts IPv4
                            unless net.ipv6.bindv6only=1.
                            [default: {listen}]
    --action ACTION         The access(5) action for every request, e.g. DUNNO,
                            OK, \"REJECT 5.7.1 Go away\", \"DEFER 4.7.1 Try later\",
                            \"450 4.7.1 Greylisted\". Checked at start.
                            [default: DUNNO]
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
                            logged at info; start, listening, signal and stop
                            lines are logged at any level. [default: info]
    -h, --help              Print this help and exit.
    -V, --version           Print the version and exit.

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

LOGS (stderr: run under systemd for the journal, or redirect to a file or
logger(1); one line each, key=value, client bytes escaped):
    policyd[PID]: info: listening on 127.0.0.1:10031
    policyd[PID]: info: decision rule=default action=DUNNO client=192.0.2.1 ...
    policyd[PID]: warning: closing connection peer=127.0.0.1:5555 reason=\"...\"
    A protocol fault (oversize request or line, NUL byte, malformed line, bad
    attribute value, stalled request) closes that connection without a reply;
    Postfix retries once, then applies its default_action.

SIGNALS:
    SIGTERM, SIGINT  Stop accepting, answer requests in flight, close idle
                     connections, exit 0. A second signal exits at once.
    SIGHUP           Logged and ignored (nothing to reload yet).

EXIT CODES:
    0   clean stop
    {usage}  bad command line or --action
    {oserr}  cannot listen (address in use, bad address, permission denied) or
        other operating system failure at start
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
    )
}

/// Parse the arguments after the program name.
pub(crate) fn parse<I>(args: I) -> Result<Command, CliError>
where
    I: IntoIterator<Item = OsString>,
{
    let mut config = Config::default();
    let mut listen = Vec::new();
    let mut args = args.into_iter();
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
            None if name_str.starts_with('-') && name_str.len() > 1 => {
                return Err(CliError::UnknownOption(name_str.into_owned()));
            }
            None => return Err(CliError::UnexpectedArgument(name_str.into_owned())),
        };
        let value = if option.takes_value {
            match inline {
                Some(value) => value,
                None => args.next().ok_or(CliError::MissingValue(option.names[0]))?,
            }
        } else {
            if inline.is_some() {
                return Err(CliError::UnexpectedValue(option.names[0]));
            }
            OsString::new()
        };
        match option.id {
            Opt::Help => return Ok(Command::Help),
            Opt::Version => return Ok(Command::Version),
            Opt::Listen => listen.push(ListenAddr::from_arg(&value)?),
            Opt::Action => {
                let text = utf8(option.names[0], &value)?;
                config.action = Action::parse(text).map_err(|error| CliError::BadAction {
                    value: text.to_owned(),
                    error,
                })?;
            }
            Opt::MaxConnections => {
                config.max_connections = number(
                    option.names[0],
                    &value,
                    1,
                    MAX_MAX_CONNECTIONS,
                    "a whole number from 1 to 100000",
                )?;
            }
            Opt::IdleTimeout => config.idle_timeout = seconds(option.names[0], &value)?,
            Opt::RequestTimeout => config.request_timeout = seconds(option.names[0], &value)?,
            Opt::MaxRequestBytes => {
                config.limits.max_request_bytes = limit(option.names[0], &value)?;
            }
            Opt::MaxLineBytes => config.limits.max_line_bytes = limit(option.names[0], &value)?,
            Opt::MaxAttributes => config.limits.max_attributes = limit(option.names[0], &value)?,
            Opt::LogLevel => {
                let text = utf8(option.names[0], &value)?;
                config.log_level = Level::from_name(text).ok_or_else(|| CliError::BadValue {
                    option: "--log-level",
                    value: text.to_owned(),
                    expected: "one of error, warn, info, debug",
                })?;
            }
        }
    }
    if config.limits.max_line_bytes > config.limits.max_request_bytes {
        return Err(CliError::BadLimits(
            "--max-line-bytes must not exceed --max-request-bytes",
        ));
    }
    if !listen.is_empty() {
        config.listen = listen;
    }
    Ok(Command::Run(Box::new(config)))
}

/// The options, by identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Help,
    Version,
    Listen,
    Action,
    MaxConnections,
    IdleTimeout,
    RequestTimeout,
    MaxRequestBytes,
    MaxLineBytes,
    MaxAttributes,
    LogLevel,
}

/// One option: its spellings (the first is the canonical one, used in
/// messages) and whether it takes a value.
struct OptSpec {
    id: Opt,
    names: &'static [&'static str],
    takes_value: bool,
}

const OPTIONS: &[OptSpec] = &[
    OptSpec {
        id: Opt::Help,
        names: &["--help", "-h"],
        takes_value: false,
    },
    OptSpec {
        id: Opt::Version,
        names: &["--version", "-V"],
        takes_value: false,
    },
    OptSpec {
        id: Opt::Listen,
        names: &["--listen"],
        takes_value: true,
    },
    OptSpec {
        id: Opt::Action,
        names: &["--action"],
        takes_value: true,
    },
    OptSpec {
        id: Opt::MaxConnections,
        names: &["--max-connections"],
        takes_value: true,
    },
    OptSpec {
        id: Opt::IdleTimeout,
        names: &["--idle-timeout"],
        takes_value: true,
    },
    OptSpec {
        id: Opt::RequestTimeout,
        names: &["--request-timeout"],
        takes_value: true,
    },
    OptSpec {
        id: Opt::MaxRequestBytes,
        names: &["--max-request-bytes"],
        takes_value: true,
    },
    OptSpec {
        id: Opt::MaxLineBytes,
        names: &["--max-line-bytes"],
        takes_value: true,
    },
    OptSpec {
        id: Opt::MaxAttributes,
        names: &["--max-attributes"],
        takes_value: true,
    },
    OptSpec {
        id: Opt::LogLevel,
        names: &["--log-level"],
        takes_value: true,
    },
];

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
    let text = utf8(option, value)?;
    let bad = || CliError::BadValue {
        option,
        value: text.to_owned(),
        expected,
    };
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match text.parse::<usize>() {
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

    fn run(args: &[&str]) -> Result<Config, CliError> {
        match parse(args.iter().map(OsString::from))? {
            Command::Run(config) => Ok(*config),
            other => panic!("expected Run, got {other:?}"),
        }
    }

    fn err(args: &[&str]) -> CliError {
        match parse(args.iter().map(OsString::from)) {
            Err(e) => e,
            Ok(other) => panic!("expected an error for {args:?}, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let config = run(&[]).unwrap();
        assert_eq!(config.listen, [ListenAddr::Tcp("127.0.0.1:10031".into())]);
        assert_eq!(config.action, Action::Dunno);
        assert_eq!(config.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert_eq!(config.idle_timeout, Duration::from_secs(1200));
        assert_eq!(config.request_timeout, Duration::from_secs(100));
        assert_eq!(config.limits, Limits::default());
        assert_eq!(config.log_level, Level::Info);
        const { assert!(DEFAULT_IDLE_TIMEOUT_SECS > POSTFIX_MAX_TTL_SECS) };
    }

    #[test]
    fn help_and_version() {
        assert!(matches!(parse([OsString::from("-h")]), Ok(Command::Help)));
        assert!(matches!(
            parse([OsString::from("--help")]),
            Ok(Command::Help)
        ));
        assert!(matches!(
            parse([OsString::from("-V")]),
            Ok(Command::Version)
        ));
        assert!(matches!(
            parse(["--max-connections", "5", "--version"].map(OsString::from)),
            Ok(Command::Version)
        ));
        assert!(help().contains("--listen ADDR"));
        assert!(help().contains("check_policy_service"));
        assert_eq!(
            version(),
            format!("policyd {}\n", env!("CARGO_PKG_VERSION"))
        );
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
        assert_eq!(config.log_level, Level::Debug);
    }

    #[test]
    fn errors() {
        let rows: &[(&[&str], CliError)] = &[
            (&["--bogus"], CliError::UnknownOption("--bogus".into())),
            (&["-x"], CliError::UnknownOption("-x".into())),
            (&["stray"], CliError::UnexpectedArgument("stray".into())),
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
        ];
        for (args, expected) in rows {
            assert_eq!(&err(args), expected, "args {args:?}");
        }
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
            parse([OsString::from("--listen"), bad]).unwrap_err(),
            CliError::NotUtf8("--listen")
        );
        // A UNIX socket path need not be UTF-8.
        let path = OsString::from_vec(b"/tmp/\xffsock".to_vec());
        let config = match parse([OsString::from("--listen"), path.clone()]) {
            Ok(Command::Run(config)) => config,
            other => panic!("{other:?}"),
        };
        assert_eq!(config.listen, [ListenAddr::Unix(PathBuf::from(path))]);
    }

    #[test]
    fn error_messages_read_well() {
        assert_eq!(err(&["--bogus"]).to_string(), "unknown option \"--bogus\"");
        assert_eq!(
            err(&["--max-connections", "x"]).to_string(),
            "bad value \"x\" for --max-connections: expected a whole number from 1 to 100000"
        );
    }
}
