//! The daemon's DNS: the facts from outside that a policy's DNS tests need
//! (`client_address in dnsbl "zone"`), asked of recursive resolvers.
//!
//! policy-core does no I/O. For a policy with DNS tests, a connection
//! decides in rounds ([`Rounds`]): `Engine::start` names every query it can
//! know of; the connection's [`Client`] answers them from the shared cache
//! ([`crate::shared::dns`]) or sends them all at once over UDP (TCP when an
//! answer is truncated), retrying an unanswered query on the next server
//! after a third of the deadline; `Engine::resume` decides, or asks a later
//! round (PTR, then A of each name). The request's one deadline
//! (`--dns-deadline`) bounds all rounds: what is missing then is unknown,
//! and logged.
//!
//! A policy without DNS tests decides as before (`Engine::decide`): no
//! resolv.conf read, no socket opened.
//!
//! Threads and `std::net` only: each connection thread has its own client
//! and sockets, and blocks (at most until the deadline) like the rest of
//! its request.
//!
//! - [`message`]: queries built and answers checked (id, question, source)
//!   and read with hickory-proto;
//! - [`client`]: a connection's sockets, the round, retries, TCP;
//! - [`resolv_conf`]: the `nameserver` lines of `/etc/resolv.conf`.

pub(crate) mod client;
pub(crate) mod message;
pub(crate) mod resolv_conf;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use policy_core::facts::FactId;
use policy_core::{Engine, Policy, Timestamp};

pub(crate) use client::{Client, Questions};

use crate::cli::DnsSettings;
use crate::shared::dns::DnsShared;

/// The most rounds one request may take: 16. Each round of policy-core asks
/// something new (PTR, then A and AAAA of each name; an SPF record, then
/// what it includes, one level a round: RFC 7208 allows 10 DNS-querying
/// terms, plus the record, the addresses of `mx` and `ptr` names and an
/// `exp=`); past this the rest is left unknown, so a policy can never keep
/// a connection in rounds. Every round shares the request's one deadline.
pub(crate) const MAX_ROUNDS: usize = 16;

/// One round of a decision with outside facts: answer the pending queries
/// of `facts` (see the module docs). The caller loops (a function that
/// returned the decision would hold the scratch for the whole loop):
///
/// ```text
/// let mut step = engine.start(&request, now, &mut scratch);
/// let mut rounds = Rounds::new(&dns.settings);
/// while let Step::NeedFacts = step {
///     rounds.round(engine, dns, client, scratch.facts_mut(), now, peer);
///     step = engine.resume(&request, now, &mut scratch);
/// }
/// ```
#[derive(Debug)]
pub(crate) struct Rounds {
    deadline: Instant,
    done: usize,
}

impl Rounds {
    /// The rounds of a request that starts now: its deadline is
    /// `--dns-deadline` from now.
    pub(crate) fn new(settings: &DnsSettings) -> Self {
        Self {
            deadline: Instant::now() + settings.deadline,
            done: 0,
        }
    }

    /// Answer the pending queries of `facts` (a decision's [`Facts`](policy_core::facts::Facts), or
    /// `policyd test`'s view of them); past [`MAX_ROUNDS`], none (all
    /// unknown). `now` is the request's policy time.
    pub(crate) fn round(
        &mut self,
        engine: &Engine,
        dns: &DnsShared,
        client: &mut Client,
        facts: &mut impl Questions<Id = FactId>,
        now: Timestamp,
        peer: &str,
    ) {
        self.done += 1;
        if self.done > MAX_ROUNDS {
            facts.expire();
            return;
        }
        // The zones of the policy in force, for the lists' health (read
        // only for a query the cache does not answer).
        client.round(
            dns,
            engine,
            facts,
            self.deadline,
            now.as_unix_millis(),
            peer,
        );
    }
}

/// The environment variable that names another file than
/// `/etc/resolv.conf` (tests only, like the test clock: not in `--help`).
pub(crate) const TEST_RESOLV_CONF_VAR: &str = "POLICYD_TEST_RESOLV_CONF";

/// The servers to ask: `--dns-server`, else those of `/etc/resolv.conf`.
/// The error says why there are none.
pub(crate) fn servers(settings: &DnsSettings) -> Result<Vec<SocketAddr>, String> {
    if !settings.servers.is_empty() {
        return Ok(settings.servers.clone());
    }
    let path = std::env::var_os(TEST_RESOLV_CONF_VAR)
        .map_or_else(|| PathBuf::from(resolv_conf::RESOLV_CONF), PathBuf::from);
    resolv_conf::read(&path).map_err(|e| format!("{e}; give one with --dns-server"))
}

/// Make the DNS servers ready for `policy` when it has DNS tests, once:
/// read them ([`servers`]) and log them. `Ok(None)` when nothing was to be
/// done (no DNS tests, or already set up).
pub(crate) fn prepare(
    dns: &DnsShared,
    policy: &Policy,
    name: &str,
) -> Result<Option<Arc<[SocketAddr]>>, String> {
    if !policy.uses_outside_facts() || dns.servers.get().is_some() {
        return Ok(None);
    }
    let list: Arc<[SocketAddr]> = servers(&dns.settings)?.into();
    let list = Arc::clone(dns.servers.get_or_init(|| list));
    let zones: Vec<String> = policy
        .dns_zones()
        .map(|z| String::from_utf8_lossy(z).into_owned())
        .collect();
    let shown: Vec<String> = list.iter().map(ToString::to_string).collect();
    crate::log::notice!(
        "policy {name} has DNS tests: asking {} (deadline {} ms); lists: {}",
        shown.join(" "),
        dns.settings.deadline.as_millis(),
        zones.join(" ")
    );
    Ok(Some(list))
}
