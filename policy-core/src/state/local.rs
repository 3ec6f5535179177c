//! [`State`]: the state of a policy's stateful items, apart from the policy;
//! and [`LocalBackend`], the in-memory tables that hold it by default.

use std::sync::Arc;

use super::backend::{Backend, Item, When};
use crate::base::time::Timestamp;
use crate::greylist::rule::{GreyCall, GreylistStore};
use crate::greylist::table::{GreyVerdict, GreylistTable, Timers};
use crate::keyed::{BackendError, HashSeeds};
use crate::limits::rule::{LimitCall, LimitStore};
use crate::limits::{Limit, LimitTable, Verdict};

/// The default time budget of a backend call, in milliseconds
/// ([`State::with_budget`]). The local tables never come near it; it bounds
/// how long a remote backend may hold up a request.
pub const DEFAULT_BACKEND_BUDGET_MS: u64 = 250;

/// What a [`State`] needs to know of a limit rule to keep its counters.
#[derive(Debug, Clone)]
pub(crate) struct LimitSpec {
    pub(crate) name: Box<str>,
    pub(crate) signature: u64,
    /// The rule's windows with its own maxima (for display).
    pub(crate) limit: Limit,
    /// The table's windows: the largest maxima any key may get (they decide
    /// the counters' width).
    pub(crate) table_limit: Limit,
    pub(crate) capacity: usize,
    /// The rule keeps its state in the state's remote backend (`backend
    /// redis`), not in the local tables.
    pub(crate) remote: bool,
}

impl LimitSpec {
    /// An empty table for the limit, its keys hashed with `seeds`.
    fn empty_table(&self, seeds: HashSeeds) -> Arc<LimitTable> {
        Arc::new(LimitTable::new(
            self.table_limit.clone(),
            self.capacity,
            seeds,
        ))
    }
}

/// What a [`State`] needs to know of a greylist rule to keep its triplets.
#[derive(Debug, Clone)]
pub(crate) struct GreylistSpec {
    pub(crate) name: Box<str>,
    pub(crate) signature: u64,
    pub(crate) timers: Timers,
    pub(crate) capacity: usize,
    /// As [`LimitSpec::remote`].
    pub(crate) remote: bool,
}

impl GreylistSpec {
    /// An empty table for the greylist, its triplets hashed with `seeds`.
    fn empty_table(&self, seeds: HashSeeds) -> Arc<GreylistTable> {
        Arc::new(GreylistTable::new(self.timers, self.capacity, seeds))
    }
}

/// The in-memory tables of a [`State`]: one [`LimitTable`] per limit and
/// one [`GreylistTable`] per greylist, by index. The first [`Backend`]; it
/// never fails and never blocks (beyond a shard's mutex).
#[derive(Debug, Clone, Default)]
pub struct LocalBackend {
    limits: Box<[Arc<LimitTable>]>,
    greylists: Box<[Arc<GreylistTable>]>,
}

impl LocalBackend {
    /// The counters of limit `index`.
    pub fn limit_table(&self, index: usize) -> Option<&LimitTable> {
        self.limits.get(index).map(|t| &**t)
    }

    /// The triplets of greylist `index`.
    pub fn greylist_table(&self, index: usize) -> Option<&GreylistTable> {
        self.greylists.get(index).map(|t| &**t)
    }
}

impl Backend for LocalBackend {
    #[inline]
    fn limit(
        &self,
        item: Item<'_>,
        call: LimitCall<'_>,
        when: When,
    ) -> Result<Verdict, BackendError> {
        let table = self.limits.get(item.index).ok_or(BackendError::Failed)?;
        Ok(if call.count {
            table.check_and_count_with(call.key, call.units, when.now, call.maxima)
        } else {
            table.check_with(call.key, call.units, when.now, call.maxima)
        })
    }

    fn refund(
        &self,
        item: Item<'_>,
        key_hash: u64,
        units: u64,
        counted_at: Timestamp,
        _when: When,
    ) -> Result<(), BackendError> {
        let table = self.limits.get(item.index).ok_or(BackendError::Failed)?;
        table.refund(key_hash, units, counted_at);
        Ok(())
    }

    #[inline]
    fn greylist(
        &self,
        item: Item<'_>,
        call: GreyCall,
        when: When,
    ) -> Result<GreyVerdict, BackendError> {
        let table = self.greylists.get(item.index).ok_or(BackendError::Failed)?;
        Ok(table.check(call.client, call.triplet, when.now, call.update))
    }
}

/// The state of a policy's stateful items: the counters of its limits and
/// the triplets of its greylists, apart from the (immutable) policy.
///
/// Made for a policy (`State::for_policy`), it follows the policy through
/// reloads (`State::adopt` keeps the tables of unchanged items) and is what
/// the state file saves and restores ([`store`](crate::store)). Deciding
/// changes the tables inside (behind their own locks); the `State` value
/// itself is never changed, so an [`Engine`](crate::Engine) shares it
/// behind an `Arc`.
///
/// Each item keeps its state in a [`Backend`]: the [`LocalBackend`] tables
/// by default, or another one ([`State::with_backend`]) such as a store
/// shared by several hosts.
#[derive(Debug, Clone)]
pub struct State {
    pub(crate) limits: Box<[LimitSpec]>,
    pub(crate) greylists: Box<[GreylistSpec]>,
    pub(crate) local: LocalBackend,
    pub(crate) remote: Option<Arc<dyn Backend>>,
    /// The remote backend's seeds ([`Backend::seeds`]), which the tables of
    /// remote items are made with.
    pub(crate) seeds: Option<HashSeeds>,
    pub(crate) budget_ms: u64,
}

impl Default for State {
    /// The state of a policy without stateful items.
    fn default() -> Self {
        Self {
            limits: Box::new([]),
            greylists: Box::new([]),
            local: LocalBackend::default(),
            remote: None,
            seeds: None,
            budget_ms: DEFAULT_BACKEND_BUDGET_MS,
        }
    }
}

/// A limit's counters, as [`State::limits`] shows them.
#[derive(Debug, Clone, Copy)]
pub struct LimitState<'a> {
    /// The limit's name.
    pub name: &'a str,
    /// What must stay the same for its counters to carry over to another
    /// policy (a reload, a restart): a hash of the name, key, what is
    /// counted, when, the window lengths, the capacity and the backend
    /// (`local` or `redis`). The maxima, conditions, overrides and `over`
    /// action are not part of it.
    pub signature: u64,
    /// The counters, in the local tables.
    pub table: &'a LimitTable,
    /// The rule's windows and maxima as the policy has them (the table's
    /// own [`LimitTable::limit`] may name other maxima: it is built for the
    /// largest any key may get, overrides included, and is kept across a
    /// reload that changes `max`).
    pub limit: &'a Limit,
    /// Whether the limit keeps its counters in the remote backend
    /// (`backend redis`); its local table then stays empty.
    pub remote: bool,
}

/// A greylist's state, as [`State::greylists`] shows it.
#[derive(Debug, Clone, Copy)]
pub struct GreylistState<'a> {
    /// The greylist's name.
    pub name: &'a str,
    /// What must stay the same for its state to carry over to another
    /// policy: a hash of the name, the client part, the timers, the
    /// auto-whitelist threshold, the capacity and the backend.
    pub signature: u64,
    /// The triplets and client networks, in the local tables.
    pub table: &'a GreylistTable,
    /// Whether the greylist keeps its state in the remote backend
    /// (`backend redis`); its local table then stays empty.
    pub remote: bool,
}

impl State {
    /// Empty tables for these items, reusing the tables `keep` returns for
    /// an item (a reload keeping an unchanged item's state).
    /// The tables of remote items are made with `seeds` when given (a
    /// remote backend's, [`Backend::seeds`]).
    pub(crate) fn build(
        limits: Vec<LimitSpec>,
        greylists: Vec<GreylistSpec>,
        seeds: Option<HashSeeds>,
        mut keep_limit: impl FnMut(&LimitSpec) -> Option<Arc<LimitTable>>,
        mut keep_greylist: impl FnMut(&GreylistSpec) -> Option<Arc<GreylistTable>>,
    ) -> Self {
        let seeds_for = |remote: bool| match seeds {
            Some(seeds) if remote => seeds,
            _ => HashSeeds::random(),
        };
        let limit_tables = limits
            .iter()
            .map(|s| keep_limit(s).unwrap_or_else(|| s.empty_table(seeds_for(s.remote))))
            .collect();
        let greylist_tables = greylists
            .iter()
            .map(|s| keep_greylist(s).unwrap_or_else(|| s.empty_table(seeds_for(s.remote))))
            .collect();
        Self {
            limits: limits.into_boxed_slice(),
            greylists: greylists.into_boxed_slice(),
            local: LocalBackend {
                limits: limit_tables,
                greylists: greylist_tables,
            },
            remote: None,
            seeds,
            budget_ms: DEFAULT_BACKEND_BUDGET_MS,
        }
    }

    /// The index of the limit `name` with `signature`, if this state has it.
    pub(crate) fn find_limit(&self, name: &str, signature: u64) -> Option<usize> {
        self.limits
            .iter()
            .position(|s| s.signature == signature && &*s.name == name)
    }

    /// The index of the greylist `name` with `signature`, if this state has it.
    pub(crate) fn find_greylist(&self, name: &str, signature: u64) -> Option<usize> {
        self.greylists
            .iter()
            .position(|s| s.signature == signature && &*s.name == name)
    }

    /// The shared table of limit `index` (to keep it in another state).
    pub(crate) fn limit_arc(&self, index: usize) -> Option<Arc<LimitTable>> {
        self.local.limits.get(index).cloned()
    }

    /// The shared table of greylist `index`.
    pub(crate) fn greylist_arc(&self, index: usize) -> Option<Arc<GreylistTable>> {
        self.local.greylists.get(index).cloned()
    }

    /// This state with its tables replaced where `limits` and `greylists`
    /// name one by index (a restore), the others shared with `self`.
    pub(crate) fn with_tables(
        &self,
        limits: Vec<(usize, LimitTable)>,
        greylists: Vec<(usize, GreylistTable)>,
    ) -> Self {
        let mut next = self.clone();
        let mut limit_tables = next.local.limits.into_vec();
        for (i, table) in limits {
            if let Some(slot) = limit_tables.get_mut(i) {
                *slot = Arc::new(table);
            }
        }
        let mut greylist_tables = next.local.greylists.into_vec();
        for (i, table) in greylists {
            if let Some(slot) = greylist_tables.get_mut(i) {
                *slot = Arc::new(table);
            }
        }
        next.local = LocalBackend {
            limits: limit_tables.into_boxed_slice(),
            greylists: greylist_tables.into_boxed_slice(),
        };
        next
    }

    /// The same state, with the state of its remote items (`backend redis`
    /// in the policy) kept in `backend`. Without one, those items fail
    /// ([`BackendError::Unavailable`]) and their `on_failure` applies; the
    /// other items keep their state in the local tables.
    ///
    /// When the backend has seeds of its own ([`Backend::seeds`]), the
    /// remote items' local tables (which stay, empty, for their seeds and
    /// the state file) are made anew with them, so that every host sharing
    /// the backend hashes a key to the same value.
    pub fn with_backend(mut self, backend: Arc<dyn Backend>) -> Self {
        if let Some(seeds) = backend.seeds() {
            self.seeds = Some(seeds);
            let limits: Vec<Arc<LimitTable>> = self
                .limits
                .iter()
                .zip(self.local.limits.iter())
                .map(|(spec, table)| {
                    if spec.remote {
                        spec.empty_table(seeds)
                    } else {
                        Arc::clone(table)
                    }
                })
                .collect();
            let greylists: Vec<Arc<GreylistTable>> = self
                .greylists
                .iter()
                .zip(self.local.greylists.iter())
                .map(|(spec, table)| {
                    if spec.remote {
                        spec.empty_table(seeds)
                    } else {
                        Arc::clone(table)
                    }
                })
                .collect();
            self.local = LocalBackend {
                limits: limits.into_boxed_slice(),
                greylists: greylists.into_boxed_slice(),
            };
        }
        self.remote = Some(backend);
        self
    }

    /// Whether the state has a remote backend ([`State::with_backend`]).
    pub fn has_backend(&self) -> bool {
        self.remote.is_some()
    }

    /// Whether some item keeps its state in the remote backend (`backend
    /// redis`): the state needs [`State::with_backend`].
    pub fn uses_remote(&self) -> bool {
        self.limits.iter().any(|l| l.remote) || self.greylists.iter().any(|g| g.remote)
    }

    /// The same state, with `budget_ms` for each backend call (the deadline
    /// passed to [`Backend`] is `now + budget_ms`). The default is
    /// [`DEFAULT_BACKEND_BUDGET_MS`].
    pub fn with_budget(mut self, budget_ms: u64) -> Self {
        self.budget_ms = budget_ms;
        self
    }

    /// The local tables.
    pub fn local(&self) -> &LocalBackend {
        &self.local
    }

    /// The limits' counters, in policy order.
    pub fn limits(&self) -> impl Iterator<Item = LimitState<'_>> {
        self.limits
            .iter()
            .zip(self.local.limits.iter())
            .map(|(spec, table)| LimitState {
                name: &spec.name,
                signature: spec.signature,
                table,
                limit: &spec.limit,
                remote: spec.remote,
            })
    }

    /// The greylists' state, in policy order.
    pub fn greylists(&self) -> impl Iterator<Item = GreylistState<'_>> {
        self.greylists
            .iter()
            .zip(self.local.greylists.iter())
            .map(|(spec, table)| GreylistState {
                name: &spec.name,
                signature: spec.signature,
                table,
                remote: spec.remote,
            })
    }

    /// Makes room for about `keys` keys in every local table (a limit's
    /// keys, a greylist's triplets; [`LimitTable::reserve`],
    /// [`GreylistTable::reserve`]), so that deciding does not allocate while
    /// the tables fill up to that. Each table still holds at most its
    /// capacity.
    pub fn reserve(&self, keys: usize) {
        for table in self.local.limits.iter() {
            table.reserve(keys);
        }
        for table in self.local.greylists.iter() {
            table.reserve(keys);
        }
    }

    pub(super) fn when(&self, now: Timestamp) -> When {
        When {
            now,
            deadline: now.saturating_add_millis(self.budget_ms),
        }
    }

    /// Limit `index` as its backend sees it, and whether it is remote.
    #[inline]
    pub(super) fn limit_item(&self, index: usize) -> Result<(Item<'_>, bool), BackendError> {
        let spec = self.limits.get(index).ok_or(BackendError::Failed)?;
        let item = Item {
            name: &spec.name,
            signature: spec.signature,
            index,
            windows: spec.table_limit.windows(),
            timers: None,
        };
        Ok((item, spec.remote))
    }

    /// Greylist `index` as its backend sees it, and whether it is remote.
    #[inline]
    pub(super) fn greylist_item(&self, index: usize) -> Result<(Item<'_>, bool), BackendError> {
        let spec = self.greylists.get(index).ok_or(BackendError::Failed)?;
        let item = Item {
            name: &spec.name,
            signature: spec.signature,
            index,
            windows: &[],
            timers: Some(spec.timers),
        };
        Ok((item, spec.remote))
    }

    /// The backend of an item: the remote one for a remote item (an error
    /// without one), else the local tables.
    #[inline]
    fn backend(&self, remote: bool) -> Result<&dyn Backend, BackendError> {
        match (remote, &self.remote) {
            (false, _) => Ok(&self.local),
            (true, Some(backend)) => Ok(&**backend),
            (true, None) => Err(BackendError::Unavailable),
        }
    }

    /// Give back units limit `index` counted.
    pub(crate) fn refund(
        &self,
        index: usize,
        key_hash: u64,
        units: u64,
        now: Timestamp,
    ) -> Result<(), BackendError> {
        let (item, remote) = self.limit_item(index)?;
        self.backend(remote)?
            .refund(item, key_hash, units, now, self.when(now))
    }
}

impl LimitStore for State {
    /// The table of limit `index`, whose seeds hash its keys.
    #[inline]
    fn limit_table(&self, index: usize) -> Option<&LimitTable> {
        self.local.limit_table(index)
    }

    /// Limit `index`'s check (and count), through the item's backend.
    #[inline]
    fn limit(
        &self,
        index: usize,
        call: LimitCall<'_>,
        now: Timestamp,
    ) -> Result<Verdict, BackendError> {
        let (item, remote) = self.limit_item(index)?;
        if remote {
            self.backend(true)?.limit(item, call, self.when(now))
        } else {
            // The local tables directly: no dynamic call on the hot path.
            self.local.limit(item, call, self.when(now))
        }
    }
}

impl GreylistStore for State {
    /// The table of greylist `index`, whose seeds hash its triplets.
    #[inline]
    fn greylist_table(&self, index: usize) -> Option<&GreylistTable> {
        self.local.greylist_table(index)
    }

    /// Greylist `index`'s step, through the item's backend.
    #[inline]
    fn greylist(
        &self,
        index: usize,
        call: GreyCall,
        now: Timestamp,
    ) -> Result<GreyVerdict, BackendError> {
        let (item, remote) = self.greylist_item(index)?;
        if remote {
            self.backend(true)?.greylist(item, call, self.when(now))
        } else {
            self.local.greylist(item, call, self.when(now))
        }
    }
}
