//! The one source of policy time: [`now`] is the only place in `policyd`
//! that reads the wall clock for decisions and state (limit windows,
//! greylist delays, the DNS cache's expiry and DNS lists' skips, the state file's `written` time, `policyd state`'s ages,
//! `policyd test`'s default time).
//!
//! # The test clock (for tests only)
//!
//! When the environment variable [`TEST_CLOCK_VAR`] (`POLICYD_TEST_CLOCK`)
//! names a file, the time is read from that file instead of the wall clock:
//! the file holds one decimal number, Unix time in milliseconds, optionally
//! surrounded by white space. It is read again on every call, so a test moves
//! time by rewriting the file (write a temporary file and rename it over the
//! clock, so a reader never sees half a number). It is not documented in
//! `--help` on purpose: it is a test hook, not a setting.
//!
//! Semantics, chosen so that a mistake is loud and a running daemon never
//! fails on it:
//!
//! - [`init`] runs once at start. The variable set but empty, or naming a
//!   file that cannot be read or does not hold a number, is an error, and
//!   `policyd` refuses to start (exit 78, [`crate::cli::EX_CONFIG`]) with a
//!   line naming the variable, the file and the reason.
//! - After that, a read that fails (the file removed, garbled by a writer
//!   that did not rename) keeps the last time read: time never jumps to the
//!   wall clock behind the test's back.
//! - The variable unset: the wall clock; production pays one branch on an
//!   initialised `OnceLock` per call.
//!
//! # What stays on `Instant`
//!
//! Timers about I/O, not policy, keep the monotonic clock and are not under
//! the test clock: a connection's idle timeout and request deadline (`conn`),
//! a request's DNS deadline and its tries, and the DNS warnings' rate limit
//! (`dns`; the DNS cache's TTLs and a DNS list's skip are policy time, on
//! this clock),
//! the accept loop's pauses, the stop's waits for connections and acceptors
//! (`server`), the state writer's interval and the final write's wait
//! (`statefile`), and the log's flush. They bound how long the daemon waits
//! for the outside world, which a test clock file cannot speed up; moving
//! them to the test clock would let a stalled peer hold a thread forever.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use policy_core::Timestamp;

/// The environment variable that names the test clock's file (tests only).
pub(crate) const TEST_CLOCK_VAR: &str = "POLICYD_TEST_CLOCK";

/// The test clock's file, when [`TEST_CLOCK_VAR`] is set; `None` for the
/// wall clock. Set once by [`init`] (or by the first [`now`]).
static TEST_CLOCK: OnceLock<Option<TestClock>> = OnceLock::new();

#[derive(Debug)]
struct TestClock {
    path: PathBuf,
    /// The last time read from the file, in Unix milliseconds.
    last: AtomicU64,
}

/// Reads [`TEST_CLOCK_VAR`] and, when it is set, the file it names once.
/// Call it at start, before anything asks for the time: an error is a line
/// for the administrator (or the test author), and `policyd` should exit.
pub(crate) fn init() -> Result<(), String> {
    let clock = match std::env::var_os(TEST_CLOCK_VAR) {
        None => None,
        Some(path) if path.is_empty() => {
            return Err(format!(
                "{TEST_CLOCK_VAR} is set but empty: expected the path of a file holding Unix milliseconds (tests only)"
            ))
        }
        Some(path) => {
            let path = PathBuf::from(path);
            let millis = read_millis(&path).map_err(|reason| {
                format!(
                    "test clock {TEST_CLOCK_VAR}={}: {reason}",
                    path.display()
                )
            })?;
            Some(TestClock {
                path,
                last: AtomicU64::new(millis),
            })
        }
    };
    // A second init (unit tests) keeps the first: the environment does not change.
    let _ = TEST_CLOCK.set(clock);
    Ok(())
}

/// The time for policy decisions and state: the test clock's file when
/// [`TEST_CLOCK_VAR`] is set, otherwise the wall clock (0 before 1970, which
/// only a broken host has).
pub(crate) fn now() -> Timestamp {
    let clock = TEST_CLOCK.get_or_init(|| {
        // `init` was not called (a unit test): the wall clock, unless the
        // variable is set, in which case read it now and start at 0 if unreadable.
        std::env::var_os(TEST_CLOCK_VAR)
            .filter(|p| !p.is_empty())
            .map(|path| {
                let path = PathBuf::from(path);
                let last = AtomicU64::new(read_millis(&path).unwrap_or(0));
                TestClock { path, last }
            })
    });
    match clock {
        None => wall(),
        Some(test) => {
            let millis = match read_millis(&test.path) {
                Ok(millis) => {
                    test.last.store(millis, Ordering::Relaxed);
                    millis
                }
                Err(_) => test.last.load(Ordering::Relaxed),
            };
            Timestamp::from_unix_millis(millis)
        }
    }
}

/// The wall clock.
fn wall() -> Timestamp {
    Timestamp::from_unix_millis(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    )
}

/// The Unix milliseconds in the file at `path`, or why not.
fn read_millis(path: &Path) -> Result<u64, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    parse_millis(&text)
}

fn parse_millis(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    trimmed.parse::<u64>().map_err(|_| {
        format!(
            "expected Unix time in milliseconds (digits only), found {:?}",
            trimmed.chars().take(40).collect::<String>()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::parse_millis;

    #[test]
    fn parse_millis_table() {
        let rows: &[(&str, Option<u64>)] = &[
            ("0", Some(0)),
            ("1700000000000\n", Some(1_700_000_000_000)),
            ("  42  ", Some(42)),
            ("", None),
            ("-1", None),
            ("1.5", None),
            ("12ab", None),
            ("99999999999999999999999", None),
        ];
        for &(input, expected) in rows {
            assert_eq!(parse_millis(input).ok(), expected, "input {input:?}");
        }
    }
}
