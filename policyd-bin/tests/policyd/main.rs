//! The integration tests of `policyd-bin`, in one test binary (issue 10,
//! point 6): each module starts the real `policyd` binary and talks to it
//! over sockets, as Postfix would.
//!
//! - [`daemon`]: the daemon on its own: serving, limits, faults, signals,
//!   reloads, the state file, the sub-commands;
//! - [`postfix_e2e`]: a real Postfix instance in front of several daemons
//!   (`SKIPPED` when Postfix or root is missing, a failure instead when
//!   `POLICYD_REQUIRE_POSTFIX=1`); run it alone with
//!   `cargo test -p policyd-bin --test policyd postfix_e2e`;
//! - [`dns`]: the daemon's DNS against a real unbound: DNSBL listings, the
//!   cache, the deadline, a list that keeps timing out;
//! - [`redis`]: state shared in Redis by two daemons (one limit, one
//!   greylist), Redis stopped mid-load, the start without one, Redis over
//!   TLS (`rediss://`) with a private CA, and `policyd state --redis`;
//! - [`redis_server`]: the redis-server harness, plain or TLS (`SKIPPED`
//!   when redis-server, or openssl for TLS, is missing, a failure instead
//!   when `POLICYD_REQUIRE_REDIS=1`);
//! - [`service`]: the daemon as a system service: syslog, timestamps,
//!   systemd readiness and socket activation, `--allow`, `--pidfile`,
//!   `--user`/`--group` and the UNIX socket's owner and mode (`SKIPPED`
//!   without root, a failure instead when `POLICYD_REQUIRE_ROOT=1`);
//! - [`unbound`]: the unbound harness (`SKIPPED` when unbound is missing, a
//!   failure instead when `POLICYD_REQUIRE_UNBOUND=1`), with the test zones
//!   of `dns/zones.conf`;
//! - [`common`]: starting the daemon, its log, its test clock, requests.
//!
//! Time: daemons whose tests depend on policy time run on a test clock
//! ([`common::TestClock`], the daemon's `POLICYD_TEST_CLOCK`), moved by the
//! tests; waits are for events (a log line, a reply, an exit), each bounded by
//! [`common::TIMEOUT`]. The few sleeps left say why in a comment.

mod common;
mod daemon;
mod dns;
mod postfix_e2e;
mod redis;
mod redis_server;
mod service;
mod unbound;
