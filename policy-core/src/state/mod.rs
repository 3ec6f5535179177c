//! Where a [`State`]'s tables live, and what the tables of
//! both kinds of stateful item share.
//!
//! - [`State`] (at the crate root): the state of a policy's
//!   stateful items, apart from the immutable [`Policy`](crate::Policy):
//!   made for a policy, it adopts the next one on reload (keeping the tables
//!   of unchanged items) and is what the state file saves
//!   ([`store`](crate::store)). It holds one
//!   [`LimitTable`](crate::limits::LimitTable) per limit and one
//!   [`GreylistTable`](crate::greylist::GreylistTable) per greylist.
//! - [`Backend`]: the seam between a rule and where its state lives (a
//!   limit's check-and-count and refund, a greylist's step, each with a
//!   deadline and an explicit error, [`BackendError`], and what the rule
//!   does then, [`OnFailure`]); [`LocalBackend`] is the in-memory tables.
//!   [`State::limits`](crate::State::limits) and
//!   [`State::greylists`](crate::State::greylists) show each item's table
//!   ([`LimitState`], [`GreylistState`]).
//! - What both kinds of table share: the secret seeds their keys are hashed
//!   with ([`HashSeeds`]), how many shards they have, and why a snapshot
//!   could not be decoded ([`SnapshotError`]).
//!
//! The tables themselves are their features': a limit's counters, windows
//! and snapshots in [`limits`](crate::limits), a greylist's triplets and
//! snapshots in [`greylist`](crate::greylist). This module sits above them
//! (a `State` holds their tables) and below the policy language (whose
//! rules run against a `State`).

mod backend;
pub(crate) mod local;
pub(crate) mod prefetch;

pub use backend::{Backend, BatchAnswer, Batched, Item, When};
pub(crate) use local::{GreylistSpec, LimitSpec, State};
pub use local::{GreylistState, LimitState, LocalBackend, DEFAULT_BACKEND_BUDGET_MS};

pub use crate::keyed::{
    BackendError, HashSeeds, OnFailure, KEY_TEXT_BYTES, MAX_SHARDS, MIN_KEYS_PER_SHARD,
};
pub use crate::limits::snapshot::SnapshotError;
