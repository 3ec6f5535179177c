//! What every keyed, stateful item (a limit, a greylist) builds on, below
//! the items themselves:
//!
//! - `shard`: the sharded, bounded open-addressing tables their entries
//!   live in, with `counter`'s word type;
//! - `key`: the secret seeds keys are hashed with ([`HashSeeds`]) and the
//!   start of a key's text kept to show it ([`KEY_TEXT_BYTES`]);
//! - `failure`: what a failing state backend means to a rule
//!   ([`BackendError`], [`OnFailure`]).
//!
//! The snapshot framing both kinds of table share is the limits'
//! ([`crate::limits`]): its error type names limit and greylist details.

pub(crate) mod counter;
pub(crate) mod failure;
pub(crate) mod key;
pub(crate) mod shard;

pub use failure::{BackendError, OnFailure};
pub use key::{HashSeeds, KEY_TEXT_BYTES};
pub use shard::{MAX_SHARDS, MIN_KEYS_PER_SHARD};
