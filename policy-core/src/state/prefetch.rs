//! Batching a request's calls to a remote backend: one round trip for the
//! stateful items a walk reaches, rather than one each.
//!
//! Which limits and greylists a walk reaches, and with which calls, depends
//! on the request, its outside facts and the answers of the items before
//! them. When every item passes, the walk reaches the most of them. So the
//! state runs the walk twice:
//!
//! 1. **Plan**: a walk whose stateful calls are recorded and answered "pass"
//!    (admitted, known) without reaching any backend. It ends where a rule
//!    that needs no state decides.
//! 2. The recorded calls of the remote backend, up to the first that cannot
//!    be batched (a local item, a dry-run rule, `count distinct`, whose
//!    second call depends on the first's answer), go to
//!    [`Backend::batch`] in one round trip. The backend stops after the
//!    first refusal or deferral, as the walk would.
//! 3. **Replay**: the real walk. Each stateful call takes the batch's answer
//!    when it is the next one and the same call. Any other call (a limit's
//!    second look at a recipient on its own, a call past the batch) goes to
//!    the backend as usual.
//!
//! The replayed walk makes the same calls in the same order as the plan up
//! to the first answer that is not "pass": everything before it is the
//! same request with the same answers. So the answers it takes are the
//! ones it would have got one by one.

use std::cell::RefCell;
use std::ops::Range;

use super::backend::{BatchAnswer, Batched};
use super::local::State;
use crate::base::time::Timestamp;
use crate::greylist::rule::{GreyCall, GreylistStore};
use crate::greylist::table::{GreyVerdict, GreylistTable};
use crate::keyed::BackendError;
use crate::limits::rule::{LimitCall, LimitStore};
use crate::limits::{Key, LimitTable, Verdict};

/// What the store does with a stateful call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Mode {
    /// Call the backend.
    #[default]
    Off,
    /// Record the call, answer "pass".
    Plan,
    /// Take the batch's answer for the call when it is the next one.
    Replay,
}

/// The most windows a limit has (its maxima are kept inline).
const MAX_MAXIMA: usize = 4;

/// A recorded call.
#[derive(Debug, Clone)]
enum Planned {
    Limit {
        index: usize,
        hash: u64,
        text: Range<usize>,
        units: u64,
        maxima: [u64; MAX_MAXIMA],
        n_maxima: usize,
        count: bool,
        /// Not to be batched, nor anything after it.
        barrier: bool,
    },
    Greylist {
        index: usize,
        call: GreyCall,
        barrier: bool,
    },
}

/// A request's plan and batch, kept in the scratch (cleared, never shrunk).
#[derive(Debug, Default)]
pub(crate) struct Prefetch {
    pub(crate) mode: Mode,
    /// Set by the walk before a stateful step whose calls must not be
    /// batched (a dry-run rule, `count distinct`).
    pub(crate) barrier: bool,
    planned: Vec<Planned>,
    /// The limits' key texts, back to back.
    texts: Vec<u8>,
    answers: Vec<Result<BatchAnswer, BackendError>>,
    next: usize,
}

impl Prefetch {
    /// Start recording a plan.
    pub(crate) fn plan(&mut self) {
        self.mode = Mode::Plan;
        self.barrier = false;
        self.planned.clear();
        self.texts.clear();
        self.answers.clear();
        self.next = 0;
    }

    /// Stop: calls go to the backend again.
    pub(crate) fn off(&mut self) {
        self.mode = Mode::Off;
    }

    /// The next batch answer, if `matches` says it is for this call.
    fn take(
        &mut self,
        matches: impl Fn(&Planned) -> bool,
    ) -> Option<Result<BatchAnswer, BackendError>> {
        let planned = self.planned.get(self.next)?;
        let answer = self.answers.get(self.next)?;
        if !matches(planned) {
            // Off the plan: no later answer applies either.
            self.answers.clear();
            return None;
        }
        self.next += 1;
        Some(*answer)
    }
}

impl State {
    /// Make the batch of `prefetch`'s plan: the remote calls from the
    /// start, up to the first that cannot be batched, in one round trip;
    /// then replay. Fewer than two such calls: no batch (the walk calls as
    /// usual).
    pub(crate) fn prefetch(&self, prefetch: &mut Prefetch, now: Timestamp) {
        prefetch.mode = Mode::Replay;
        prefetch.next = 0;
        prefetch.answers.clear();
        let Some(backend) = &self.remote else {
            return;
        };
        let mut calls: Vec<Batched<'_>> = Vec::new();
        for planned in &prefetch.planned {
            let call = match *planned {
                Planned::Limit {
                    index,
                    hash,
                    ref text,
                    units,
                    ref maxima,
                    n_maxima,
                    count,
                    barrier,
                } => {
                    let Ok((item, true)) = self.limit_item(index) else {
                        break;
                    };
                    if barrier {
                        break;
                    }
                    Batched::Limit {
                        item,
                        call: LimitCall {
                            key: Key {
                                hash,
                                text: prefetch.texts.get(text.clone()).unwrap_or_default(),
                            },
                            units,
                            maxima: maxima.get(..n_maxima).unwrap_or_default(),
                            count,
                        },
                    }
                }
                Planned::Greylist {
                    index,
                    call,
                    barrier,
                } => {
                    let Ok((item, true)) = self.greylist_item(index) else {
                        break;
                    };
                    if barrier {
                        break;
                    }
                    Batched::Greylist { item, call }
                }
            };
            calls.push(call);
        }
        if calls.len() < 2 {
            return;
        }
        let mut answers = std::mem::take(&mut prefetch.answers);
        backend.batch(&calls, self.when(now), &mut answers);
        prefetch.answers = answers;
    }
}

/// The state as a walk's stateful steps reach it, through `prefetch`.
pub(crate) struct Store<'s, 'p> {
    pub(crate) state: &'s State,
    pub(crate) prefetch: RefCell<&'p mut Prefetch>,
}

impl LimitStore for Store<'_, '_> {
    fn limit_table(&self, index: usize) -> Option<&LimitTable> {
        self.state.limit_table(index)
    }

    fn limit(
        &self,
        index: usize,
        call: LimitCall<'_>,
        now: Timestamp,
    ) -> Result<Verdict, BackendError> {
        let mut prefetch = self.prefetch.borrow_mut();
        match prefetch.mode {
            Mode::Off => {}
            Mode::Plan => {
                let start = prefetch.texts.len();
                prefetch.texts.extend_from_slice(call.key.text);
                let end = prefetch.texts.len();
                let mut maxima = [0; MAX_MAXIMA];
                let n_maxima = call.maxima.len().min(MAX_MAXIMA);
                maxima[..n_maxima].copy_from_slice(&call.maxima[..n_maxima]);
                let barrier = prefetch.barrier || call.maxima.len() > MAX_MAXIMA;
                prefetch.planned.push(Planned::Limit {
                    index,
                    hash: call.key.hash,
                    text: start..end,
                    units: call.units,
                    maxima,
                    n_maxima,
                    count: call.count,
                    barrier,
                });
                return Ok(Verdict::Admitted);
            }
            Mode::Replay => {
                let same = |p: &Planned| {
                    matches!(*p, Planned::Limit { index: i, hash, units, count, n_maxima, ref maxima, .. }
                        if i == index && hash == call.key.hash && units == call.units
                            && count == call.count
                            && maxima.get(..n_maxima) == Some(call.maxima))
                };
                match prefetch.take(same) {
                    Some(Ok(BatchAnswer::Limit(verdict))) => return Ok(verdict),
                    Some(Err(e)) => return Err(e),
                    Some(Ok(BatchAnswer::Greylist(_))) | None => {}
                }
            }
        }
        drop(prefetch);
        self.state.limit(index, call, now)
    }
}

impl GreylistStore for Store<'_, '_> {
    fn greylist_table(&self, index: usize) -> Option<&GreylistTable> {
        self.state.greylist_table(index)
    }

    fn greylist(
        &self,
        index: usize,
        call: GreyCall,
        now: Timestamp,
    ) -> Result<GreyVerdict, BackendError> {
        let mut prefetch = self.prefetch.borrow_mut();
        match prefetch.mode {
            Mode::Off => {}
            Mode::Plan => {
                let barrier = prefetch.barrier;
                prefetch.planned.push(Planned::Greylist {
                    index,
                    call,
                    barrier,
                });
                return Ok(GreyVerdict::Known);
            }
            Mode::Replay => {
                let same = |p: &Planned| matches!(*p, Planned::Greylist { index: i, call: c, .. } if i == index && c == call);
                match prefetch.take(same) {
                    Some(Ok(BatchAnswer::Greylist(verdict))) => return Ok(verdict),
                    Some(Err(e)) => return Err(e),
                    Some(Ok(BatchAnswer::Limit(_))) | None => {}
                }
            }
        }
        drop(prefetch);
        self.state.greylist(index, call, now)
    }
}
