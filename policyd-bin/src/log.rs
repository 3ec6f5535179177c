//! A tiny logger: one `key=value` line per event on stderr, built for decision
//! rates of 100,000+ lines a second.
//!
//! Line format (see `policyd --help`):
//!
//! ```text
//! policyd[PID]: info: decision rule=default action=DUNNO client=192.0.2.1 peer=127.0.0.1:5555 ...
//! policyd[PID]: warning: closing connection peer=127.0.0.1:5555 reason="line too long ..."
//! ```
//!
//! # Escaping
//!
//! Values may come from the client, so [`Line::field`] escapes them: printable
//! ASCII stays as is, `"` and `\` become `\"` and `\\`, every other byte
//! (controls, DEL, anything non-ASCII) becomes `\xNN`. A value that is empty or
//! contains a space or a `"` is wrapped in double quotes. A log line therefore
//! never contains a newline, a control character or invalid UTF-8 that came from
//! a client, and splits unambiguously into `key=value` fields.
//!
//! Free text ([`Line::text_fmt`], the `warning!`-style macros) is the
//! daemon's own words, which may quote a value already (`{:?}`, or an error's
//! Display such as `magic "PDSTATE\0"`): it is escaped once more only where
//! it would break the line (controls, DEL, non-ASCII become `\xNN`); its
//! quotes and backslashes are kept as written, so nothing is escaped twice.
//! Client bytes go in fields, escaped once, here.
//!
//! # Buffering
//!
//! Writing each line with its own `write(2)` would cost a system call per
//! decision. Instead a line is formatted into the caller's reusable buffer
//! ([`Line`] borrows it), then appended to one shared pending buffer under a
//! short lock. A background thread writes the pending buffer to stderr
//! [`FLUSH_INTERVAL`] after its first line arrives, or as soon as it holds
//! [`FLUSH_BYTES`]. The flusher swaps the pending buffer with a spare one and
//! writes outside the lock, so loggers never wait for stderr. If stderr is
//! slower than the logging rate and the pending buffer reaches
//! [`MAX_PENDING_BYTES`], the logging thread flushes by itself: memory stays
//! bounded and logs are never dropped (the daemon slows down instead).
//!
//! Warnings and errors are written at once, after everything pending, so
//! they keep their order and reach the log even if the process dies next.
//! [`flush`] is called before exit.
//!
//! In steady state nothing here allocates: the caller's line buffer and both
//! shared buffers keep their capacity.

use std::fmt::{self, Write as _};
use std::io::{self, Write as _};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex};

/// How long a line may wait in the pending buffer before the flusher writes it.
/// Short enough that a human tailing the log sees no lag, long enough to turn
/// thousands of decision lines into one `write(2)`.
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// The flusher writes early once this many bytes are pending (a few hundred
/// decision lines): one large write is cheap; waiting longer only grows memory.
pub(crate) const FLUSH_BYTES: usize = 64 * 1024;

/// Hard cap on pending bytes. Past it, the thread that logs writes to stderr
/// itself, so a stalled stderr (a blocked pipe, a slow journald) slows the
/// daemon down instead of growing its memory without bound.
pub(crate) const MAX_PENDING_BYTES: usize = 1024 * 1024;

/// Initial capacity of the shared buffers: the flush threshold plus room for
/// the lines that arrive while the flusher wakes up.
const BUFFER_CAPACITY: usize = 2 * FLUSH_BYTES;

/// Severity of a log line, least verbose first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    /// The daemon cannot do what it was asked (start-up failures, internal bugs).
    Error,
    /// A connection was refused or closed because of a fault.
    Warn,
    /// Decisions, start and stop, listeners.
    Info,
    /// Connection opened and closed, and other detail.
    Debug,
}

impl Level {
    /// Parse a `--log-level` name.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match name {
            "error" => Some(Self::Error),
            "warn" | "warning" => Some(Self::Warn),
            "info" => Some(Self::Info),
            "debug" => Some(Self::Debug),
            _ => None,
        }
    }

    /// The syslog severity (RFC 5424 section 6.2.1): err, warning, info,
    /// debug.
    fn severity(self) -> u8 {
        match self {
            Self::Error => 3,
            Self::Warn => 4,
            Self::Info => 6,
            Self::Debug => 7,
        }
    }

    /// The word written in the line, in Postfix's style.
    fn label(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warning",
            Self::Info => "info",
            Self::Debug => "debug",
        }
    }
}

/// Where the lines go and how they start, from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogSettings {
    /// `--log-level`: the least severe level logged.
    pub(crate) level: Level,
    /// `--syslog`: to the syslog socket instead of stderr.
    pub(crate) syslog: Option<SyslogSettings>,
    /// `--log-timestamps`: whether stderr lines start with the time.
    pub(crate) timestamps: Timestamps,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: Level::Info,
            syslog: None,
            timestamps: Timestamps::Auto,
        }
    }
}

/// `--syslog`: lines go to a local syslog socket as RFC 3164 messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyslogSettings {
    /// `--syslog-socket`: the datagram socket of the syslog daemon.
    pub(crate) socket: PathBuf,
    /// `--syslog-facility`: the facility code (mail is 2).
    pub(crate) facility: Facility,
}

/// The syslog socket every syslog daemon (rsyslog, syslog-ng, journald)
/// listens on.
pub(crate) const DEFAULT_SYSLOG_SOCKET: &str = "/dev/log";

/// A syslog facility a mail service may log under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Facility(u8);

impl Facility {
    /// `mail` (2), where Postfix logs, so policyd's lines land in mail.log
    /// beside the smtpd lines they explain.
    pub(crate) const MAIL: Self = Self(2);

    /// The facilities `--syslog-facility` accepts, by name.
    pub(crate) const NAMES: [(&'static str, u8); 11] = [
        ("mail", 2),
        ("daemon", 3),
        ("user", 1),
        ("local0", 16),
        ("local1", 17),
        ("local2", 18),
        ("local3", 19),
        ("local4", 20),
        ("local5", 21),
        ("local6", 22),
        ("local7", 23),
    ];

    /// Parse a `--syslog-facility` name.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, code)| Self(code))
    }
}

/// `--log-timestamps`: whether stderr lines start with the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timestamps {
    /// Unless stderr is the systemd journal (which stamps every line
    /// itself): `JOURNAL_STREAM` names stderr's device and inode.
    Auto,
    /// Always.
    On,
    /// Never (a supervisor such as runit's svlogd stamps lines itself).
    Off,
}

impl Timestamps {
    /// Parse a `--log-timestamps` value.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match name {
            "auto" => Some(Self::Auto),
            "on" | "yes" => Some(Self::On),
            "off" | "no" => Some(Self::Off),
            _ => None,
        }
    }
}

/// The process-wide logger.
struct Logger {
    level: Level,
    /// `policyd[PID]: `, written at the start of every line (after the
    /// syslog priority or the time, when there is one).
    prefix: String,
    /// Start stderr lines with the time (UTC, RFC 3339, milliseconds).
    timestamps: bool,
    /// `--syslog`: the socket and facility; the lines go there, not to
    /// stderr. Locked only under `spare`'s lock, by the one writer.
    syslog: Option<Mutex<Syslog>>,
    /// The facility of `syslog`, read by every line without its lock.
    facility: Option<Facility>,
    /// Lines waiting for the flusher.
    pending: Mutex<Vec<u8>>,
    /// The spare buffer, swapped with `pending` and written to stderr. Its lock
    /// also serializes writers, so lines reach stderr in the order they were
    /// appended. Lock order: `spare`, then `pending`.
    spare: Mutex<Vec<u8>>,
    /// Wakes the flusher when the first line arrives or `FLUSH_BYTES` is reached.
    wake: Condvar,
    /// Drop the output instead of writing it (unit tests of the serving path,
    /// which want the logging work without the noise).
    discard: bool,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Why the logger could not start.
#[derive(Debug)]
pub(crate) enum InitError {
    /// The `--syslog-socket` could not be reached.
    Syslog {
        /// Its path.
        socket: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// The flusher thread could not be started.
    Thread(io::Error),
}

/// Set up the logger and start its flusher thread. Lines logged before this
/// (or in unit tests, where it is never called) go straight to stderr.
pub(crate) fn init(settings: &LogSettings) -> Result<(), InitError> {
    init_inner(settings, false)
}

/// Like [`init`], but everything logged is dropped instead of written.
#[cfg(test)]
pub(crate) fn init_discarding(level: Level) -> Result<(), InitError> {
    let settings = LogSettings {
        level,
        syslog: None,
        timestamps: Timestamps::Off,
    };
    init_inner(&settings, true)
}

fn init_inner(settings: &LogSettings, discard: bool) -> Result<(), InitError> {
    let syslog = match &settings.syslog {
        Some(s) => {
            Some(
                Syslog::connect(&s.socket, s.facility).map_err(|error| InitError::Syslog {
                    socket: s.socket.clone(),
                    error,
                })?,
            )
        }
        None => None,
    };
    let timestamps = syslog.is_none()
        && match settings.timestamps {
            Timestamps::On => true,
            Timestamps::Off => false,
            Timestamps::Auto => !stderr_is_journal(),
        };
    let logger = Logger {
        level: settings.level,
        prefix: format!("policyd[{}]: ", std::process::id()),
        timestamps,
        facility: syslog.as_ref().map(|s| s.facility),
        syslog: syslog.map(Mutex::new),
        pending: Mutex::new(Vec::with_capacity(BUFFER_CAPACITY)),
        spare: Mutex::new(Vec::with_capacity(BUFFER_CAPACITY)),
        wake: Condvar::new(),
        discard,
    };
    if LOGGER.set(logger).is_err() {
        return Ok(());
    }
    thread::Builder::new()
        .name("log-flusher".into())
        .stack_size(64 * 1024)
        .spawn(flusher)
        .map_err(InitError::Thread)?;
    Ok(())
}

/// Is stderr the systemd journal? systemd sets `JOURNAL_STREAM` to
/// `DEVICE:INODE` of the stream it connects to stdout and stderr; a
/// redirection (`2>>file`) leaves the variable but changes the file, so the
/// two are compared (as sd_journal_stream_fd(3) advises).
fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    rustix::fs::fstat(io::stderr()).is_ok_and(|st| st.st_dev == dev && st.st_ino == ino)
}

/// The syslog socket, connected.
struct Syslog {
    socket: UnixDatagram,
    path: PathBuf,
    facility: Facility,
}

impl Syslog {
    fn connect(path: &Path, facility: Facility) -> io::Result<Self> {
        let socket = UnixDatagram::unbound()?;
        socket.connect(path)?;
        Ok(Self {
            socket,
            path: path.to_owned(),
            facility,
        })
    }

    /// Send each line of `lines` (newline-terminated) as one datagram,
    /// without its newline. A syslog daemon that restarted is connected to
    /// again; lines it cannot take are written to stderr instead, so nothing
    /// is lost.
    fn send_lines(&mut self, lines: &[u8]) {
        for line in lines.split_inclusive(|&b| b == b'\n') {
            let message = line.strip_suffix(b"\n").unwrap_or(line);
            if message.is_empty() {
                continue;
            }
            if self.socket.send(message).is_err() {
                // The syslog daemon restarted (a new socket at the path):
                // connect again once, then give up on this line.
                let resent = Self::connect(&self.path, self.facility).and_then(|again| {
                    again.socket.send(message)?;
                    *self = again;
                    Ok(())
                });
                if resent.is_err() {
                    let mut stderr = io::stderr().lock();
                    let _ = stderr.write_all(line);
                }
            }
        }
    }
}

thread_local! {
    /// The last second a line of this thread was stamped with, and its
    /// text up to the seconds (`2026-12-06T07:40:01`): a busy thread
    /// formats the date once a second, then only the milliseconds.
    static LAST_SECOND: std::cell::Cell<(u64, [u8; 19])> =
        const { std::cell::Cell::new((u64::MAX, [0; 19])) };
}

/// Append the time `at` as RFC 3339 in UTC with milliseconds and a space,
/// `2026-12-06T07:40:01.123Z `.
fn push_timestamp(out: &mut Vec<u8>, at: SystemTime) {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (last, text) = LAST_SECOND.get();
    let text = if last == secs {
        text
    } else {
        let text = datetime(secs);
        LAST_SECOND.set((secs, text));
        text
    };
    out.extend_from_slice(&text);
    let millis = since.subsec_millis();
    let digit = |n: u32| b'0' + (n % 10) as u8;
    out.extend_from_slice(&[
        b'.',
        digit(millis / 100),
        digit(millis / 10),
        digit(millis),
        b'Z',
        b' ',
    ]);
}

/// `secs` since the epoch as `YYYY-MM-DDTHH:MM:SS` (UTC; the year's
/// last four digits past 9999).
fn datetime(secs: u64) -> [u8; 19] {
    let (year, month, day) = civil_from_days(secs / 86_400);
    let day_secs = secs % 86_400;
    let mut text = *b"0000-00-00T00:00:00";
    // Each number's last digit's position and its width.
    let parts = [
        (3, year, 4),
        (6, month, 2),
        (9, day, 2),
        (12, day_secs / 3600, 2),
        (15, day_secs / 60 % 60, 2),
        (18, day_secs % 60, 2),
    ];
    for (last, value, width) in parts {
        let mut n = value;
        for slot in text[last + 1 - width..=last].iter_mut().rev() {
            // A digit: n % 10 < 10.
            *slot = b'0' + (n % 10) as u8;
            n /= 10;
        }
    }
    text
}

/// The proleptic Gregorian date of `days` since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`, for days after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Is `level` logged? Check before formatting anything expensive.
pub(crate) fn enabled(level: Level) -> bool {
    match LOGGER.get() {
        Some(logger) => level <= logger.level,
        None => level <= Level::Info,
    }
}

/// Write everything pending to stderr now.
pub(crate) fn flush() {
    if let Some(logger) = LOGGER.get() {
        logger.flush_with(&[]);
    }
}

/// Log a one-off message (start-up, shutdown, signals). Allocates; not for the
/// per-request path, which uses [`Line`] with a reused buffer.
pub(crate) fn message(level: Level, args: fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let mut buf = Vec::with_capacity(128);
    let mut line = Line::start(&mut buf, level);
    line.text_fmt(args);
    line.finish();
}

/// Log a start, stop or signal line: at info level, but whatever the
/// `--log-level` (an administrator always wants to know when the daemon started,
/// where it listens and why it stopped; tests read the `listening on` lines).
pub(crate) fn notice_args(args: fmt::Arguments<'_>) {
    let mut buf = Vec::with_capacity(128);
    let mut line = Line::start(&mut buf, Level::Info);
    line.text_fmt(args);
    line.finish();
}

/// Log with `format!` syntax whatever the level; see [`notice_args`].
macro_rules! notice {
    ($($arg:tt)*) => { $crate::log::notice_args(format_args!($($arg)*)) };
}
/// Log at warning level with `format!` syntax; see [`message`].
macro_rules! warning {
    ($($arg:tt)*) => { $crate::log::message($crate::log::Level::Warn, format_args!($($arg)*)) };
}
/// Log at error level with `format!` syntax; see [`message`].
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::message($crate::log::Level::Error, format_args!($($arg)*)) };
}
/// Log at debug level with `format!` syntax; see [`message`].
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::message($crate::log::Level::Debug, format_args!($($arg)*)) };
}
pub(crate) use {debug, error, notice, warning};

/// One log line being built in a caller's reusable buffer.
///
/// ```text
/// let mut line = Line::start(&mut buf, Level::Info);
/// line.text("decision");
/// line.field("sender", request.sender.raw);
/// line.finish();
/// ```
pub(crate) struct Line<'b> {
    buf: &'b mut Vec<u8>,
    level: Level,
}

impl<'b> Line<'b> {
    /// Clear `buf` and write the line prefix: `policyd[PID]: LEVEL: `,
    /// after the time (`--log-timestamps`) or the syslog priority
    /// (`<PRI>`, with `--syslog`).
    pub(crate) fn start(buf: &'b mut Vec<u8>, level: Level) -> Self {
        buf.clear();
        match LOGGER.get() {
            Some(logger) => {
                if let Some(facility) = logger.facility {
                    let _ = write!(
                        Escaper { out: buf },
                        "<{}>",
                        u16::from(facility.0) * 8 + u16::from(level.severity())
                    );
                } else if logger.timestamps {
                    push_timestamp(buf, SystemTime::now());
                }
                buf.extend_from_slice(logger.prefix.as_bytes());
            }
            None => buf.extend_from_slice(b"policyd: "),
        }
        buf.extend_from_slice(level.label().as_bytes());
        buf.extend_from_slice(b": ");
        Self { buf, level }
    }

    /// Append trusted text (written by the daemon, not by a client) as is.
    pub(crate) fn text(&mut self, text: &str) -> &mut Self {
        self.buf.extend_from_slice(text.as_bytes());
        self
    }

    /// Append formatted trusted text. Newlines, control characters and
    /// non-ASCII bytes in it are escaped (`\xNN`), so a line stays one ASCII
    /// line whatever it says; quotes and backslashes are kept, since the text
    /// may quote something already (see the module docs).
    pub(crate) fn text_fmt(&mut self, args: fmt::Arguments<'_>) -> &mut Self {
        // The escaper never fails; formatting errors can only come from a
        // Display impl and leave a truncated text, which is all we could do
        // anyway.
        let _ = TextEscaper { out: self.buf }.write_fmt(args);
        self
    }

    /// Append ` key=value`, escaping the value (see the module docs).
    pub(crate) fn field(&mut self, key: &str, value: &[u8]) -> &mut Self {
        self.buf.push(b' ');
        self.buf.extend_from_slice(key.as_bytes());
        self.buf.push(b'=');
        push_value(self.buf, value);
        self
    }

    /// Append ` key=value` with a value that implements `Display`, escaped and
    /// quoted like [`Line::field`]. Allocates nothing.
    pub(crate) fn field_display(&mut self, key: &str, value: impl fmt::Display) -> &mut Self {
        self.buf.push(b' ');
        self.buf.extend_from_slice(key.as_bytes());
        self.buf.push(b'=');
        let start = self.buf.len();
        let _ = write!(Escaper { out: self.buf }, "{value}");
        let written = &self.buf[start..];
        if written.is_empty() || written.iter().any(|&b| b == b' ' || b == b'"') {
            self.buf.insert(start, b'"');
            self.buf.push(b'"');
        }
        self
    }

    /// End the line and hand it to the logger: buffered at info and debug,
    /// written at once (after everything pending) at warning and error.
    pub(crate) fn finish(self) {
        self.buf.push(b'\n');
        match LOGGER.get() {
            Some(logger) if self.level <= Level::Warn => logger.flush_with(self.buf),
            Some(logger) => logger.append(self.buf),
            None => {
                let _ = io::stderr().write_all(self.buf);
            }
        }
    }
}

impl Logger {
    /// Append a complete line to the pending buffer, waking the flusher when
    /// needed.
    fn append(&self, line: &[u8]) {
        let mut pending = self.pending.lock();
        let was_empty = pending.is_empty();
        pending.extend_from_slice(line);
        let len = pending.len();
        drop(pending);
        if len >= MAX_PENDING_BYTES {
            self.flush_with(&[]);
        } else if was_empty || len >= FLUSH_BYTES {
            self.wake.notify_one();
        }
    }

    /// Write everything pending, then `extra`, to stderr.
    fn flush_with(&self, extra: &[u8]) {
        let mut out = self.spare.lock();
        std::mem::swap(&mut *out, &mut *self.pending.lock());
        out.extend_from_slice(extra);
        if let (Some(syslog), false) = (&self.syslog, self.discard) {
            syslog.lock().send_lines(&out);
        } else if !out.is_empty() && !self.discard {
            // Nothing sensible to do when stderr fails (closed, full disk):
            // the daemon keeps serving mail.
            let mut stderr = io::stderr().lock();
            let _ = stderr.write_all(&out);
            let _ = stderr.flush();
        }
        out.clear();
    }
}

/// The flusher thread: sleeps until a line is pending, gives others
/// [`FLUSH_INTERVAL`] to add theirs (or until [`FLUSH_BYTES`]), writes. An
/// idle daemon's flusher is asleep, not polling.
fn flusher() {
    let Some(logger) = LOGGER.get() else {
        return;
    };
    loop {
        {
            let mut pending = logger.pending.lock();
            while pending.is_empty() {
                logger.wake.wait(&mut pending);
            }
            if pending.len() < FLUSH_BYTES {
                logger.wake.wait_for(&mut pending, FLUSH_INTERVAL);
            }
        }
        logger.flush_with(&[]);
    }
}

/// Does `value` need double quotes around it?
fn needs_quotes(value: &[u8]) -> bool {
    value.is_empty() || value.iter().any(|&b| b == b' ' || b == b'"')
}

/// Append `value` escaped, quoted when it is empty or has a space or a `"`.
pub(crate) fn push_value(out: &mut Vec<u8>, value: &[u8]) {
    let quote = needs_quotes(value);
    if quote {
        out.push(b'"');
    }
    push_escaped(out, value);
    if quote {
        out.push(b'"');
    }
}

/// Append `value` escaped (see the module docs), without quotes.
pub(crate) fn push_escaped(out: &mut Vec<u8>, value: &[u8]) {
    // Runs of bytes that stay as they are (most values are all one run)
    // are copied at once; a decision line is a few hundred such bytes.
    let mut rest = value;
    while let Some(i) = rest.iter().position(|&b| !is_plain(b)) {
        out.extend_from_slice(&rest[..i]);
        match rest[i] {
            b @ (b'"' | b'\\') => out.extend_from_slice(&[b'\\', b]),
            b => push_hex(out, b),
        }
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
}

/// A byte a field's value keeps as is: printable ASCII but `"` and `\`.
fn is_plain(b: u8) -> bool {
    matches!(b, b' '..=b'~') && b != b'"' && b != b'\\'
}

/// Append trusted `text` with only what would break a line escaped:
/// controls, DEL and non-ASCII bytes become `\xNN`; `"` and `\` stay.
fn push_text(out: &mut Vec<u8>, text: &[u8]) {
    for &b in text {
        match b {
            b' '..=b'~' => out.push(b),
            _ => push_hex(out, b),
        }
    }
}

fn push_hex(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(&[
        b'\\',
        b'x',
        HEX[usize::from(b >> 4)],
        HEX[usize::from(b & 0xf)],
    ]);
}

/// A `fmt::Write` that escapes trusted text ([`push_text`]) into a byte
/// buffer.
struct TextEscaper<'a> {
    out: &'a mut Vec<u8>,
}

impl fmt::Write for TextEscaper<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        push_text(self.out, s.as_bytes());
        Ok(())
    }
}

/// A `fmt::Write` that escapes a field's value ([`push_escaped`]) into a
/// byte buffer.
struct Escaper<'a> {
    out: &'a mut Vec<u8>,
}

impl fmt::Write for Escaper<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        push_escaped(self.out, s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        let rows: &[(&[u8], &str)] = &[
            (b"", "\"\""),
            (b"a@b.example", "a@b.example"),
            (b"with space", "\"with space\""),
            (b"q\"uote", "\"q\\\"uote\""),
            (b"back\\slash", "back\\\\slash"),
            (b"nl\nx", "nl\\x0ax"),
            (b"cr\rnul\0", "cr\\x0dnul\\x00"),
            (b"del\x7f", "del\\x7f"),
            ("é".as_bytes(), "\\xc3\\xa9"),
            (b"\xff", "\\xff"),
            (b"a=b", "a=b"),
        ];
        for (input, expected) in rows {
            let mut out = Vec::new();
            push_value(&mut out, input);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                *expected,
                "input {input:?}"
            );
        }
    }

    #[test]
    fn line_format() {
        let mut buf = Vec::new();
        let mut line = Line::start(&mut buf, Level::Warn);
        line.text("closing connection")
            .field("peer", b"127.0.0.1:5")
            .field_display(
                "reason",
                format_args!("line too long (limit {} bytes)", 4096),
            )
            .field_display("micros", 17u64)
            .field_display("empty", "")
            .field_display("nl", "a\nb");
        // The prefix is `policyd[PID]: ` once another test has set up the
        // logger, `policyd: ` before.
        let text = String::from_utf8_lossy(line.buf);
        assert!(text.starts_with("policyd"), "{text}");
        assert_eq!(
            text.split_once(": ").unwrap().1,
            "warning: closing connection peer=127.0.0.1:5 \
             reason=\"line too long (limit 4096 bytes)\" micros=17 empty=\"\" nl=a\\x0ab"
        );
    }

    /// Free text is the daemon's own: what it quotes (`{:?}`, an error's
    /// Display) is not escaped again; only what would break the line is.
    #[test]
    fn text_is_escaped_once() {
        let rows: [(String, &str); 5] = [
            (
                format!("cannot read file {:?}: denied", "x"),
                r#"cannot read file "x": denied"#,
            ),
            (
                policy_core::store::StoreError::BadMagic.to_string(),
                r#"not a policyd state file: expected the magic "PDSTATE\0""#,
            ),
            (format!("{:?}", "a\"b\\c"), r#""a\"b\\c""#),
            ("two\nlines\t\x7f".to_owned(), r"two\x0alines\x09\x7f"),
            ("caf\u{e9}".to_owned(), r"caf\xc3\xa9"),
        ];
        for (input, expected) in rows {
            let mut buf = Vec::new();
            let mut line = Line::start(&mut buf, Level::Warn);
            line.text_fmt(format_args!("{input}"));
            let text = String::from_utf8_lossy(line.buf).into_owned();
            assert_eq!(
                text.split_once(": warning: ").map(|(_, t)| t),
                Some(expected),
                "{text}"
            );
        }
    }

    #[test]
    fn levels() {
        assert!(Level::Error < Level::Warn && Level::Warn < Level::Info);
        assert!(Level::Info < Level::Debug);
        for (name, level) in [
            ("error", Level::Error),
            ("warn", Level::Warn),
            ("warning", Level::Warn),
            ("info", Level::Info),
            ("debug", Level::Debug),
        ] {
            assert_eq!(Level::from_name(name), Some(level));
        }
        assert_eq!(Level::from_name("INFO"), None);
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let rows: &[(u64, u32, &str)] = &[
            (0, 0, "1970-01-01T00:00:00.000Z "),
            (951_782_400, 5_000_000, "2000-02-29T00:00:00.005Z "),
            (1_796_542_801, 123_456_789, "2026-12-06T07:40:01.123Z "),
            (4_107_542_399, 999_999_999, "2100-02-28T23:59:59.999Z "),
            (4_107_542_400, 0, "2100-03-01T00:00:00.000Z "),
            // The same second again (the thread's cached text), later.
            (4_107_542_400, 987_000_000, "2100-03-01T00:00:00.987Z "),
            (253_402_300_799, 0, "9999-12-31T23:59:59.000Z "),
        ];
        for &(secs, nanos, expected) in rows {
            let mut out = Vec::new();
            push_timestamp(&mut out, UNIX_EPOCH + Duration::new(secs, nanos));
            assert_eq!(String::from_utf8(out).unwrap(), expected, "{secs}");
        }
    }

    #[test]
    fn syslog_priorities() {
        let mail = Facility::MAIL.0;
        let pri = |level: Level| u16::from(mail) * 8 + u16::from(level.severity());
        assert_eq!(
            [Level::Error, Level::Warn, Level::Info, Level::Debug].map(pri),
            [19, 20, 22, 23]
        );
        assert_eq!(Facility::from_name("local7").map(|f| f.0), Some(23));
        assert_eq!(Facility::from_name("kern"), None);
    }

    #[test]
    fn reused_buffer_keeps_capacity() {
        let mut buf = Vec::with_capacity(256);
        let ptr = buf.as_ptr();
        for _ in 0..3 {
            let mut line = Line::start(&mut buf, Level::Debug);
            line.field("k", b"v").field_display("n", 12345u32);
        }
        assert_eq!(buf.as_ptr(), ptr, "no reallocation");
    }
}
