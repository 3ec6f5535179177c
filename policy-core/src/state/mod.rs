//! The state of a policy's stateful items, apart from the policy, and the
//! seam to where it lives.
//!
//! - [`State`]: the state of a policy's stateful items, apart from the
//!   immutable [`Policy`](crate::Policy): made for a policy, it adopts the
//!   next one on reload (keeping the tables of unchanged items) and is what
//!   the state file saves ([`store`](crate::store)). It holds one
//!   [`LimitTable`] per limit and one [`GreylistTable`] per greylist.
//! - [`Backend`]: the seam between a rule and where its state lives (a
//!   limit's check-and-count and refund, a greylist's step, each with a
//!   deadline and an explicit error); [`LocalBackend`] is the in-memory
//!   tables.
//!
//! The tables themselves are their features': a limit's counters, windows
//! and snapshots in `limits/`, a greylist's triplets and snapshots in
//! `greylist/`, both in the sharded tables of `keyed/`. This module sits
//! above them (it holds their tables) and below the language (whose rules
//! run against a [`State`]).

pub mod backend;
mod local;

pub use backend::{Backend, Item, When};
pub(crate) use local::{GreylistSpec, LimitSpec};
pub use local::{GreylistState, LimitState, LocalBackend, State, DEFAULT_BACKEND_BUDGET_MS};

pub use crate::greylist::rule::GreyCall;
pub use crate::greylist::snapshot::GREYLIST_SNAPSHOT_MAGIC;
pub use crate::greylist::table::{
    GreyCounts, GreyVerdict, GreylistTable, Timers, CLIENTS_PER_TRIPLET_CAPACITY,
    PASS_COUNT_INTERVAL_MS,
};
pub use crate::keyed::{
    BackendError, HashSeeds, OnFailure, KEY_TEXT_BYTES, MAX_SHARDS, MIN_KEYS_PER_SHARD,
};
pub use crate::limits::rule::LimitCall;
pub use crate::limits::{
    Key, Limit, LimitError, LimitTable, Refusal, SnapshotError, TopKey, Verdict, Window, BUCKETS,
    GREYLIST_SNAPSHOT_VERSION, MAX_WINDOWS, MAX_WINDOW_MS, SNAPSHOT_MAGIC, SNAPSHOT_VERSION,
};
