//! What a failing state backend means to a rule: the error
//! ([`BackendError`]) and what the rule does then ([`OnFailure`], the
//! policy's `on_failure`). Here, below the rules and the
//! [`Backend`](crate::state::Backend) trait, because both speak of them.

use std::fmt;

/// Why a [`Backend`](crate::state::Backend) call failed. Small and `Copy`: deciding never allocates.
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
