//! What every thread of the daemon shares: the engine in force, the stop
//! flag, the connection count, the command line's settings and the DNS
//! client's cache and list health ([`dns`]). Its own module, below `conn`,
//! `dns`, `statefile` and `server`, so that they can all use it without
//! importing each other (no module cycles, issue 10 point 5).

pub(crate) mod dns;

use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::Duration;

use policy_core::Engine;
use policy_proto::Limits;

use crate::cli::Network;

/// The settings a connection needs, from the command line.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Connections over this are refused.
    pub(crate) max_connections: usize,
    /// An idle connection is closed after this long without a byte.
    pub(crate) idle_timeout: Duration,
    /// A request must be complete this long after its first byte.
    pub(crate) request_timeout: Duration,
    /// Framer limits.
    pub(crate) limits: Limits,
    /// `--allow`: the networks TCP clients may connect from (none: any).
    pub(crate) allow: Vec<Network>,
}

/// State shared by every thread.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The policy in force.
    pub(crate) engine: Engine,
    /// Set once, at SIGTERM or SIGINT.
    pub(crate) stopping: AtomicBool,
    /// Connections being served now.
    pub(crate) active: AtomicUsize,
    /// From the command line.
    pub(crate) settings: Settings,
    /// The DNS clients' cache, list health and servers.
    pub(crate) dns: dns::DnsShared,
}
