//! Greylist rules, compiled and evaluated: the triplet of a request (client
//! network, normalised sender, recipient), the whitelists, and the check
//! against the rule's [`GreylistTable`].
//!
//! A greylist applies at RCPT. In order: a client or recipient whitelist
//! match passes; otherwise the table decides: an auto-whitelisted client
//! network, a known triplet, or the first accepted retry pass (evaluation
//! goes on with the next rule); a new triplet or a retry that comes too
//! early is answered with the rule's `then` action (DEFER_IF_PERMIT by
//! default). The first accepted retry's `prepend` header is the answer
//! only when no later rule decides and the default is DUNNO.

use std::hash::Hasher;
use std::net::IpAddr;

use super::limit::{mask_ip, KeyPart};
use super::program::{Program, Verdict};
use crate::base::time::Timestamp;
use crate::greylist::{normalize_sender, ClientWhitelist, RecipientWhitelist};
use crate::request::{ProtocolState, Request};
use crate::state::{BackendError, GreyCall, GreyVerdict, OnFailure, State, Timers};
use crate::template::GreylistFacts;

/// The default `capacity` of a greylist: the most triplets it tracks.
pub const DEFAULT_GREYLIST_CAPACITY: usize = 10_000_000;

/// The largest `capacity` a greylist may ask for.
pub const MAX_GREYLIST_CAPACITY: usize = 1_000_000_000;

/// A compiled greylist rule (the [`Rule`](super::program::Rule) of the same
/// index holds its conditions, name and `then` action).
#[derive(Debug, Clone)]
pub(crate) struct GreylistRule {
    /// Index of the rule in [`Program::rules`].
    pub(crate) rule: u32,
    /// What must stay the same for a reload or a restart to keep the state.
    pub(crate) signature: u64,
    /// The client part of the triplet: the whole address or a network.
    pub(crate) client: KeyPart,
    pub(crate) timers: Timers,
    pub(crate) capacity: usize,
    pub(crate) clients: Vec<ClientWhitelist>,
    pub(crate) recipients: Vec<RecipientWhitelist>,
    /// The header of the first accepted retry, a PREPEND action.
    pub(crate) prepend: Option<Verdict>,
    /// What the rule does when its state backend fails.
    pub(crate) on_failure: OnFailure,
}

/// What a greylist found for a request.
pub(crate) enum GreyStep {
    /// Whitelisted, known, or not applicable: go on with the next rule.
    Pass,
    /// The first accepted retry, after waiting this many milliseconds: go
    /// on, and send the `prepend` header if nothing else decides.
    FirstPass { waited_ms: u64 },
    /// Deferred: the facts for the `then` action.
    Defer(GreylistFacts),
    /// The state backend failed: the rule's `on_failure` says what now.
    Failed(BackendError),
}

impl Program {
    /// Run greylist `index` on `request` (its conditions hold); `sender`
    /// is scratch space for the normalised sender. With `probe`, nothing
    /// changes in the table (for explanations).
    pub(crate) fn greylist_step(
        &self,
        index: u32,
        request: &Request<'_>,
        state: &State,
        now: Timestamp,
        sender: &mut Vec<u8>,
        probe: bool,
    ) -> GreyStep {
        let Some(grey) = self.greylists.get(index as usize) else {
            return GreyStep::Pass;
        };
        if !matches!(request.protocol_state, Some(ProtocolState::Rcpt)) {
            return GreyStep::Pass;
        }
        if grey
            .clients
            .iter()
            .any(|w| w.matches(request.client_name, request.client_address))
            || grey
                .recipients
                .iter()
                .any(|w| w.matches(&request.recipient))
        {
            return GreyStep::Pass;
        }
        // Without a client address there is no triplet (not Postfix).
        let Some(address) = request.client_address else {
            return GreyStep::Pass;
        };
        let network = match grey.client {
            KeyPart::Ip { v4, v6, .. } => mask_ip(address, v4, v6),
            KeyPart::Field(_) => mask_ip(address, 32, 128),
        };
        let Some(table) = state.greylist_table(index as usize) else {
            return GreyStep::Pass;
        };
        let mut hasher = table.key_hasher();
        match network {
            IpAddr::V4(a) => {
                hasher.write_u8(4);
                hasher.write(&a.octets());
            }
            IpAddr::V6(a) => {
                hasher.write_u8(6);
                hasher.write(&a.octets());
            }
        }
        let client = hasher.finish();
        sender.clear();
        normalize_sender(request.sender.raw, sender);
        hasher.write_usize(sender.len());
        hasher.write(sender);
        let recipient = request.recipient.raw;
        hasher.write_usize(recipient.len());
        for chunk in recipient.chunks(64) {
            let mut low = [0u8; 64];
            for (d, s) in low.iter_mut().zip(chunk) {
                *d = s.to_ascii_lowercase();
            }
            hasher.write(&low[..chunk.len()]);
        }
        let triplet = hasher.finish();
        let call = GreyCall {
            client,
            triplet,
            update: !probe,
        };
        match state.greylist(index as usize, call, now) {
            Ok(GreyVerdict::ClientWhitelisted | GreyVerdict::Known | GreyVerdict::Untracked) => {
                GreyStep::Pass
            }
            Ok(GreyVerdict::FirstPass { waited_ms }) => GreyStep::FirstPass { waited_ms },
            Ok(GreyVerdict::Defer { retry_after_ms, .. }) => GreyStep::Defer(GreylistFacts {
                retry_after_ms: Some(retry_after_ms),
                delay_ms: None,
            }),
            Err(error) => GreyStep::Failed(error),
        }
    }
}
