//! The state backend seam: the operations a stateful item (a limit, a
//! greylist) performs on its state, as a trait, and the types of its
//! calls; the contract is [`Backend`]'s documentation.

use std::fmt;

use crate::base::time::Timestamp;
use crate::greylist::rule::GreyCall;
use crate::greylist::table::{GreyVerdict, Timers};
use crate::keyed::{BackendError, HashSeeds};
use crate::limits::rule::LimitCall;
use crate::limits::{Verdict, Window};

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
    /// For a limit, its windows: their lengths, and the largest maxima any
    /// key may get (a call's [`LimitCall::maxima`] are the key's own). Empty
    /// for a greylist.
    pub windows: &'a [Window],
    /// For a greylist, its timers; `None` for a limit.
    pub timers: Option<Timers>,
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

/// One call of a [`Backend::batch`].
#[derive(Debug, Clone, Copy)]
pub enum Batched<'a> {
    /// A limit's check (and count).
    Limit {
        /// The limit.
        item: Item<'a>,
        /// Its call.
        call: LimitCall<'a>,
    },
    /// A greylist's step.
    Greylist {
        /// The greylist.
        item: Item<'a>,
        /// Its call.
        call: GreyCall,
    },
}

/// The answer to one call of a [`Backend::batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchAnswer {
    /// A limit's verdict.
    Limit(Verdict),
    /// A greylist's verdict.
    Greylist(GreyVerdict),
}

impl BatchAnswer {
    /// Whether a walk ends at this answer (a limit's refusal, a greylist's
    /// deferral), so that the calls after it are not made.
    pub fn stops(&self) -> bool {
        matches!(
            self,
            Self::Limit(Verdict::Refused(_)) | Self::Greylist(GreyVerdict::Defer { .. })
        )
    }
}

/// Where stateful items keep their state: the operations of a limit and of
/// a greylist.
///
/// [`LocalBackend`](super::LocalBackend) (the sharded in-memory tables) is the
/// first implementation; a remote atomic store (Redis) is meant to be the
/// second. The operations are shaped for one:
///
/// - **One round trip per stateful item.** A limit's check-and-count is one
///   call ([`Backend::limit`]), which a remote store runs as one server-side
///   script; so is a greylist's step ([`Backend::greylist`]). A refund
///   ([`Backend::refund`]) happens only when the final answer refuses a
///   request that a limit counted.
/// - **A time budget.** Each call gets `now` and a `deadline` on the policy's
///   clock ([`When`]); a remote backend gives up at the deadline
///   (`deadline - now` from the moment it is called) and answers
///   [`BackendError::Timeout`].
/// - **An explicit outcome on failure.** An error never decides by itself:
///   the item's [`OnFailure`](super::OnFailure) setting in the policy
///   (`on_failure allow`, `defer` or `skip`) says what the rule does
///   instead, and the [`Decision`](crate::Decision) reports the failure for
///   the log.
///
/// Keys arrive hashed ([`Key::hash`](crate::limits::Key::hash), seeded per
/// item by the state) with their text for display; a backend shared by
/// several hosts must see the same seeds on each of them.
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

    /// Run `calls` in order, as one round trip where the backend can,
    /// stopping after the first answer that ends a walk
    /// ([`BatchAnswer::stops`]): `out` gets one result per call made, in
    /// order. An error does not stop the calls that follow (the item's
    /// `on_failure` may let the walk go on).
    ///
    /// The state batches the calls that a request's walk will make, known
    /// before it runs, when they are all this backend's; the default makes
    /// them one by one.
    fn batch(
        &self,
        calls: &[Batched<'_>],
        when: When,
        out: &mut Vec<Result<BatchAnswer, BackendError>>,
    ) {
        for call in calls {
            let answer = match *call {
                Batched::Limit { item, call } => {
                    self.limit(item, call, when).map(BatchAnswer::Limit)
                }
                Batched::Greylist { item, call } => {
                    self.greylist(item, call, when).map(BatchAnswer::Greylist)
                }
            };
            let stops = answer.as_ref().is_ok_and(BatchAnswer::stops);
            out.push(answer);
            if stops {
                return;
            }
        }
    }

    /// The seeds the keys of this backend's items are hashed with, when
    /// they must be the same on every host sharing it (a remote store:
    /// each host's policy must hash a key to the same value). `None` (the
    /// default): the state's own random seeds.
    fn seeds(&self) -> Option<HashSeeds> {
        None
    }
}
