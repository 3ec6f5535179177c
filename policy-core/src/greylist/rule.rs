//! Greylist rules, compiled and evaluated: the triplet of a request (client
//! network, normalised sender, recipient), the whitelists, and the check
//! against the rule's [`GreylistTable`] through the state's backend
//! ([`GreylistStore`], [`GreyCall`]). The language compiles `greylist`
//! items into [`GreylistRule`]s (`lang/compile/greylists.rs`) and its
//! evaluator runs their [`GreylistRule::step`].
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

use super::table::{GreyVerdict, GreylistTable, Timers};
use super::{normalize_sender, ClientWhitelist, RecipientWhitelist};
use crate::base::time::Timestamp;
use crate::keyed::{BackendError, OnFailure};
use crate::limits::rule::{mask_ip, KeyPart};
use crate::request::{ProtocolState, Request};
use crate::template::{GreylistFacts, Verdict};

/// The default `capacity` of a greylist: the most triplets it tracks.
pub const DEFAULT_GREYLIST_CAPACITY: usize = 10_000_000;

/// The largest `capacity` a greylist may ask for.
pub const MAX_GREYLIST_CAPACITY: usize = 1_000_000_000;

/// A greylist's step ([`Backend::greylist`](crate::state::Backend::greylist)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GreyCall {
    /// The hashed client network.
    pub client: u64,
    /// The hashed triplet (client network, sender, recipient).
    pub triplet: u64,
    /// Record the attempt (`false`: only look, for explanations).
    pub update: bool,
}

/// Where greylist rules keep their triplets, as a rule's step reaches them:
/// [`State`](crate::State), which sits above this module, implements it.
pub(crate) trait GreylistStore {
    /// The table of greylist `index`, whose seeds hash its triplets.
    fn greylist_table(&self, index: usize) -> Option<&GreylistTable>;

    /// Greylist `index`'s step, through the item's backend.
    fn greylist(
        &self,
        index: usize,
        call: GreyCall,
        now: Timestamp,
    ) -> Result<GreyVerdict, BackendError>;
}

/// A compiled greylist rule (the [`Rule`](crate::lang::program::Rule) of the same
/// index holds its conditions, name and `then` action).
#[derive(Debug, Clone)]
pub(crate) struct GreylistRule {
    /// Index of the rule in [`Program::rules`](crate::lang::program::Program::rules).
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
    /// The rule keeps its triplets in the state's remote backend (`backend
    /// redis`).
    pub(crate) remote: bool,
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

impl GreylistRule {
    /// Run this rule, greylist `index` of its policy, on `request` (its
    /// conditions hold), against `state`; `sender` is scratch space for the
    /// normalised sender. With `probe`, nothing changes in the table (for
    /// explanations).
    pub(crate) fn step(
        &self,
        index: u32,
        request: &Request<'_>,
        state: &impl GreylistStore,
        now: Timestamp,
        sender: &mut Vec<u8>,
        probe: bool,
    ) -> GreyStep {
        let grey = self;
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
