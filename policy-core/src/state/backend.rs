//! The state backend seam: the operations a stateful item (a limit, a
//! greylist) performs on its state, as a trait.
//!
//! [`LocalBackend`](super::LocalBackend) (the sharded in-memory tables) is the
//! first implementation; a remote atomic store (Redis) is meant to be the
//! second. The operations are shaped for one:
//!
//! - **One round trip per stateful item.** A limit's check-and-count is one
//!   call ([`Backend::limit`]), which a remote store runs as one server-side
//!   script; so is a greylist's step ([`Backend::greylist`]). A refund
//!   ([`Backend::refund`]) happens only when the final answer refuses a
//!   request that a limit counted.
//! - **A time budget.** Each call gets `now` and a `deadline` on the policy's
//!   clock ([`When`]); a remote backend gives up at the deadline
//!   (`deadline - now` from the moment it is called) and answers
//!   [`BackendError::Timeout`].
//! - **An explicit outcome on failure.** An error never decides by itself:
//!   the item's [`OnFailure`] setting in the policy (`on_failure allow`,
//!   `defer` or `skip`) says what the rule does instead, and the
//!   [`Decision`](crate::Decision) reports the failure for the log.
//!
//! Keys arrive hashed ([`Key::hash`], seeded per item by the state) with their
//! text for display; a backend shared by several hosts must see the same
//! seeds on each of them.

use std::fmt;

use super::greylist::GreyVerdict;
use super::table::{Key, Verdict};
use crate::base::time::Timestamp;

/// Which stateful item a [`Backend`] call is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item<'a> {
    /// The rule's name (a remote backend's key prefix).
    pub name: &'a str,
    /// The item's signature: what must stay the same for its state to apply
    /// (a remote backend puts it in its keys, so a changed rule starts over).
    pub signature: u64,
    /// The item's index among the state's limits, or among its greylists.
    pub index: usize,
}

/// The time of a [`Backend`] call, on the policy's clock: `now`, and when
/// the answer is no longer wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct When {
    /// The request's time.
    pub now: Timestamp,
    /// Past this time the caller has moved on: answer
    /// [`BackendError::Timeout`] rather than wait.
    pub deadline: Timestamp,
}

/// A limit's check ([`Backend::limit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitCall<'a> {
    /// The key (hashed with the item's seeds) and its text.
    pub key: Key<'a>,
    /// Units this request would count.
    pub units: u64,
    /// The maximum of each window for this key (the rule's, or an
    /// override's).
    pub maxima: &'a [u64],
    /// Count the units if they fit (`false`: only check).
    pub count: bool,
}

/// A greylist's step ([`Backend::greylist`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GreyCall {
    /// The hashed client network.
    pub client: u64,
    /// The hashed triplet (client network, sender, recipient).
    pub triplet: u64,
    /// Record the attempt (`false`: only look, for explanations).
    pub update: bool,
}

/// Why a [`Backend`] call failed. Small and `Copy`: deciding never allocates.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendError {
    /// No answer by the deadline.
    Timeout,
    /// The backend cannot be reached (down, refused, no connection).
    Unavailable,
    /// The backend answered with an error or something unexpected.
    Failed,
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Timeout => "no answer from the state backend within the time budget",
            Self::Unavailable => "the state backend is unavailable",
            Self::Failed => "the state backend answered with an error",
        })
    }
}

impl std::error::Error for BackendError {}

/// What a rule does when its backend fails (`on_failure` in the policy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum OnFailure {
    /// The rule lets the request through as if within its limit (or a known
    /// triplet), and the decision reports the failure for the log. The
    /// default: an outage of shared state must not stop mail.
    #[default]
    Allow,
    /// The rule answers with a temporary refusal
    /// ([`BACKEND_DEFER_ACTION`](crate::lang::BACKEND_DEFER_ACTION)): the
    /// client retries later, when the backend may be back.
    Defer,
    /// The rule does not apply, as if its condition were false; the failure
    /// is reported like `allow`'s.
    Skip,
}

impl OnFailure {
    /// The policy language's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Defer => "defer",
            Self::Skip => "skip",
        }
    }
}

/// Where stateful items keep their state: the operations of a limit and of
/// a greylist. See the [module documentation](self) for the contract.
///
/// Implementations must be cheap to call from many threads at once: each
/// connection's thread calls them while deciding. A call may block its
/// thread, but never past `when.deadline`.
pub trait Backend: fmt::Debug + Send + Sync {
    /// Check a limit for `call.key` and, with `call.count`, count
    /// `call.units` if they fit, atomically: concurrent calls for one key
    /// admit exactly the limit.
    fn limit(
        &self,
        item: Item<'_>,
        call: LimitCall<'_>,
        when: When,
    ) -> Result<Verdict, BackendError>;

    /// Give back `units` counted for `key_hash` at `counted_at` (the final
    /// answer refused the request after all).
    fn refund(
        &self,
        item: Item<'_>,
        key_hash: u64,
        units: u64,
        counted_at: Timestamp,
        when: When,
    ) -> Result<(), BackendError>;

    /// One greylisting step for a triplet: whitelisted client, known
    /// triplet, first accepted retry, or defer; recorded with `call.update`.
    fn greylist(
        &self,
        item: Item<'_>,
        call: GreyCall,
        when: When,
    ) -> Result<GreyVerdict, BackendError>;
}
