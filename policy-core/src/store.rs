//! The state file: one container holding the snapshots of every stateful
//! table of a [`State`] (its limits and greylists), so that a daemon keeps its
//! counters across restarts. Bytes in, bytes out: no I/O here. Writing the
//! bytes to disk atomically (temporary file, fsync, rename) is the caller's
//! job.
//!
//! - [`encode`] appends the container for a state's tables to a buffer.
//! - [`decode`] checks a container (magic, version, length, checksum, then
//!   the entry list) and returns its entries, borrowing the bytes.
//! - [`restore`] decodes every table of a container for a state and returns
//!   that state with all of them in place, or an error and nothing: a
//!   truncated or corrupt file never half-loads. Tables of rules that are
//!   gone or changed are dropped and reported, not an error. Put the
//!   restored state in force with [`Engine::set_state`](crate::Engine::set_state)
//!   (also while the engine decides).
//!
//! # Format
//!
//! All integers little-endian:
//!
//! ```text
//! magic       8 bytes  STORE_MAGIC ("PDSTATE\0")
//! version     u32      STORE_VERSION
//! length      u64      of the whole container, checksum included
//! written at  u64      Unix milliseconds
//! entries     u32      n
//!             n x entry:
//!               kind       u8   KIND_LIMIT (1) = a limit rule's counters,
//!                               KIND_GREYLIST (2) = a greylist's triplets
//!               name       u16 length, then that many bytes of UTF-8
//!               signature  u64  LimitState::signature / GreylistState::signature
//!                               of the rule that wrote it
//!               payload    u64 length, then that many bytes
//!                               (LimitTable::encode_snapshot or
//!                               GreylistTable::encode_snapshot)
//! checksum    u64      FNV-1a 64 of every byte before it
//! ```
//!
//! The length and the checksum are verified before anything else in the
//! container is believed, so a partly written file reads as
//! [`StoreError::Truncated`] and a damaged one as
//! [`StoreError::ChecksumMismatch`]. Each payload carries its own checksum
//! as well (see [`LimitTable::encode_snapshot`](crate::limits::LimitTable::encode_snapshot)
//! and [`GreylistTable::encode_snapshot`](crate::greylist::GreylistTable::encode_snapshot)).
//!
//! # Example
//!
//! ```
//! use policy_core::{store, Engine, NoFiles, Policy, Timestamp};
//!
//! let src = "limit out { key sender count messages max 3 per 1h }\ndefault DUNNO\n";
//! let engine = Engine::new(Policy::compile("policy.conf", src, &mut NoFiles)?.policy);
//! let now = Timestamp::from_unix_millis(1_700_000_000_000);
//!
//! let mut file = Vec::new();
//! store::encode(&engine.state(), now, &mut file);
//!
//! // At the next start: the same rule gets its counters back.
//! let fresh = Engine::new(Policy::compile("policy.conf", src, &mut NoFiles)?.policy);
//! let (state, report) = store::restore(&fresh.state(), &file)?;
//! assert_eq!(report.restored[0].name, "out");
//! assert!(report.dropped.is_empty());
//! fresh.set_state(state);
//!
//! // A damaged file loads nothing and says why.
//! file[30] ^= 1;
//! assert_eq!(
//!     store::restore(&fresh.state(), &file).err(),
//!     Some(store::StoreError::ChecksumMismatch)
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use crate::base::bytes::{fnv1a, FNV_START};
use crate::base::time::Timestamp;
use crate::greylist::GreylistTable;
use crate::limits::LimitTable;
use crate::state::{SnapshotError, State};

/// The first 8 bytes of a state file.
pub const STORE_MAGIC: [u8; 8] = *b"PDSTATE\0";

/// The container format version this build writes and reads.
pub const STORE_VERSION: u32 = 1;

/// Entry kind: the counters of a limit rule.
pub const KIND_LIMIT: u8 = 1;

/// Entry kind: the triplets and client networks of a greylist.
pub const KIND_GREYLIST: u8 = 2;

/// The longest table name the format holds: its length is a `u16`. A limit
/// whose name is longer is left out by [`encode`] (rule names are
/// identifiers; 64 KiB of name is not a real policy).
pub const MAX_NAME_BYTES: usize = u16::MAX as usize;

/// Bytes of the fixed header: magic, version, length, written at, entry count.
const HEADER: usize = 8 + 4 + 8 + 8 + 4;

/// Offset of the length field.
const LENGTH_AT: usize = 12;

/// Bytes of the trailing checksum.
const CHECKSUM: usize = 8;

/// Why a state file could not be read. Nothing was loaded.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// The bytes end before the container does (a partly written file).
    Truncated {
        /// Bytes the container needs, as far as its header tells.
        needed: u64,
        /// Bytes there are.
        found: u64,
    },
    /// The bytes do not start with [`STORE_MAGIC`]: not a state file.
    BadMagic,
    /// Written by a version of the format this build does not read.
    UnsupportedVersion {
        /// The version in the file.
        found: u32,
        /// Whether the length field that follows the version (where
        /// version 1 has it) is the length of the bytes given: a whole file
        /// written by another version of the format, rather than damage.
        whole: bool,
    },
    /// The bytes go on after the checksum.
    TrailingBytes {
        /// The container's length, from its header.
        expected: u64,
        /// The number of bytes given.
        found: u64,
    },
    /// The checksum does not match the contents (a damaged file).
    ChecksumMismatch,
    /// The length field or an entry's lengths disagree with the contents
    /// (behind a valid checksum, so written wrongly rather than damaged).
    BadLength,
    /// An entry's name is not UTF-8.
    BadName {
        /// Index of the entry.
        index: u32,
    },
    /// Two entries of the same kind have the same name.
    DuplicateName {
        /// Index of the second one.
        index: u32,
    },
    /// A limit's snapshot could not be decoded for the policy (for example,
    /// written by a build with another key hash function). Its name is
    /// `decode(bytes)?.entries[index].name`.
    Limit {
        /// Index of the entry.
        index: u32,
        /// Why its snapshot was refused.
        error: SnapshotError,
    },
    /// A greylist's snapshot could not be decoded for the policy.
    Greylist {
        /// Index of the entry.
        index: u32,
        /// Why its snapshot was refused.
        error: SnapshotError,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated { needed, found } => write!(
                f,
                "truncated state file: expected {needed} bytes, found {found}"
            ),
            Self::BadMagic => {
                f.write_str("not a policyd state file: expected the magic \"PDSTATE\\0\"")
            }
            Self::UnsupportedVersion { found, .. } => write!(
                f,
                "state file format version {found} is not supported: expected {STORE_VERSION}"
            ),
            Self::TrailingBytes { expected, found } => write!(
                f,
                "state file has trailing bytes: expected {expected} bytes, found {found}"
            ),
            Self::ChecksumMismatch => {
                f.write_str("corrupt state file: the checksum does not match the contents")
            }
            Self::BadLength => {
                f.write_str("corrupt state file: expected its length fields to match its contents")
            }
            Self::BadName { index } => write!(
                f,
                "corrupt state file: expected a UTF-8 name in entry {index}"
            ),
            Self::DuplicateName { index } => write!(
                f,
                "corrupt state file: expected unique names, entry {index} repeats one"
            ),
            Self::Limit { index, error } => {
                write!(
                    f,
                    "state file entry {index} (a limit) cannot be loaded: {error}"
                )
            }
            Self::Greylist { index, error } => {
                write!(
                    f,
                    "state file entry {index} (a greylist) cannot be loaded: {error}"
                )
            }
        }
    }
}

impl std::error::Error for StoreError {}

/// What an entry of a state file holds.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// A limit rule's counters ([`KIND_LIMIT`]); the payload is a
    /// [`LimitTable`] snapshot.
    Limit,
    /// A greylist's state ([`KIND_GREYLIST`]); the payload is a
    /// [`GreylistTable`] snapshot.
    Greylist,
    /// A kind this build does not know (written by a later version);
    /// [`restore`] drops it.
    Unknown(u8),
}

impl TableKind {
    fn from_byte(b: u8) -> Self {
        match b {
            KIND_LIMIT => Self::Limit,
            KIND_GREYLIST => Self::Greylist,
            other => Self::Unknown(other),
        }
    }
}

/// One table in a state file, borrowing the file's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredTable<'a> {
    /// What the table is.
    pub kind: TableKind,
    /// The rule's name.
    pub name: &'a str,
    /// The signature of the rule that wrote it
    /// ([`LimitState::signature`](crate::state::LimitState::signature)).
    pub signature: u64,
    /// The table's snapshot.
    pub payload: &'a [u8],
}

/// A decoded state file ([`decode`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored<'a> {
    /// When it was written (the writer's clock).
    pub written_at: Timestamp,
    /// Its tables, in the order written (policy order).
    pub entries: Vec<StoredTable<'a>>,
}

/// A table [`restore`] put in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The limit's or greylist's name.
    pub name: String,
    /// Keys it tracks now.
    pub keys: usize,
}

/// Why a table in the file was not restored.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The policy has no limit of that name.
    Gone,
    /// The policy's limit of that name has another signature: its key,
    /// what it counts, when, its windows or its capacity changed, so the old
    /// counters do not apply.
    Changed,
    /// A kind of table this build does not know.
    UnknownKind(u8),
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Gone => f.write_str("no such limit in the policy"),
            Self::Changed => f.write_str(
                "the rule changed (key, count, at, windows or capacity): counters reset",
            ),
            Self::UnknownKind(kind) => write!(f, "unknown table kind {kind}"),
        }
    }
}

/// A table in the file that [`restore`] left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// The name in the file.
    pub name: String,
    /// Why it was left out.
    pub reason: DropReason,
}

/// What [`restore`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// When the file was written.
    pub written_at: Timestamp,
    /// Limits and greylists whose state was restored, in file order.
    pub restored: Vec<Restored>,
    /// Tables in the file that were not restored, in file order.
    pub dropped: Vec<Dropped>,
    /// The policy's limits the file had nothing for (they start empty).
    pub fresh: Vec<String>,
}

/// FNV-1a 64 over `bytes`: the state file's checksum. (Not the snapshots'
/// word-wise [`fnv1a_words`](crate::base::bytes::fnv1a_words), a different
/// function: each format keeps its own.)
fn fnv1a64(bytes: &[u8]) -> u64 {
    fnv1a(FNV_START, bytes)
}

/// Appends the state file of `state`'s tables at `now` to `out`, and
/// returns how many tables it holds. Each table is encoded under its own
/// shard locks, one shard at a time (see
/// [`LimitTable::encode_snapshot`]): deciding goes on meanwhile. A limit
/// whose name is longer than [`MAX_NAME_BYTES`] is left out (the count then
/// falls short of the policy's limits).
pub fn encode(state: &State, now: Timestamp, out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&STORE_MAGIC);
    out.extend_from_slice(&STORE_VERSION.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(&now.as_unix_millis().to_le_bytes());
    let count_at = out.len();
    out.extend_from_slice(&0u32.to_le_bytes());
    let mut count = 0u32;
    for limit in state.limits() {
        let Ok(name_len) = u16::try_from(limit.name.len()) else {
            continue;
        };
        out.push(KIND_LIMIT);
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(limit.name.as_bytes());
        out.extend_from_slice(&limit.signature.to_le_bytes());
        let len_at = out.len();
        out.extend_from_slice(&0u64.to_le_bytes());
        // The rule's maxima, as `policyd state` should show them.
        limit.table.encode_snapshot_as(now, limit.limit, out);
        let payload = (out.len() - len_at - 8) as u64;
        out[len_at..len_at + 8].copy_from_slice(&payload.to_le_bytes());
        count += 1;
    }
    for greylist in state.greylists() {
        let Ok(name_len) = u16::try_from(greylist.name.len()) else {
            continue;
        };
        out.push(KIND_GREYLIST);
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(greylist.name.as_bytes());
        out.extend_from_slice(&greylist.signature.to_le_bytes());
        let len_at = out.len();
        out.extend_from_slice(&0u64.to_le_bytes());
        greylist.table.encode_snapshot(now, out);
        let payload = (out.len() - len_at - 8) as u64;
        out[len_at..len_at + 8].copy_from_slice(&payload.to_le_bytes());
        count += 1;
    }
    out[count_at..count_at + 4].copy_from_slice(&count.to_le_bytes());
    let total = (out.len() - start + CHECKSUM) as u64;
    out[start + LENGTH_AT..start + LENGTH_AT + 8].copy_from_slice(&total.to_le_bytes());
    let sum = fnv1a64(&out[start..]);
    out.extend_from_slice(&sum.to_le_bytes());
    count as usize
}

/// Reads integers and slices from a body whose length and checksum were
/// checked; running out is [`StoreError::BadLength`] (the length lied).
struct Reader<'b> {
    buf: &'b [u8],
    pos: usize,
}

impl<'b> Reader<'b> {
    fn take(&mut self, n: usize) -> Result<&'b [u8], StoreError> {
        let end = self.pos.checked_add(n).ok_or(StoreError::BadLength)?;
        let slice = self.buf.get(self.pos..end).ok_or(StoreError::BadLength)?;
        self.pos = end;
        Ok(slice)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, StoreError> {
        self.array::<1>().map(|[b]| b)
    }
    fn u16(&mut self) -> Result<u16, StoreError> {
        self.array().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Result<u32, StoreError> {
        self.array().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Result<u64, StoreError> {
        self.array().map(u64::from_le_bytes)
    }
}

fn truncated(needed: usize, found: usize) -> StoreError {
    StoreError::Truncated {
        needed: needed as u64,
        found: found as u64,
    }
}

/// Checks a state file and returns its entries (borrowing `bytes`). The
/// magic, version, length and whole-file checksum are checked before
/// anything else is read; then the entry list must account for every byte.
/// The payloads are not decoded here (see [`restore`]).
pub fn decode(bytes: &[u8]) -> Result<Stored<'_>, StoreError> {
    if bytes.len() < 8 {
        // Not even the magic: a file cut short, or not a state file at all.
        return Err(if STORE_MAGIC.starts_with(bytes) {
            truncated(HEADER + CHECKSUM, bytes.len())
        } else {
            StoreError::BadMagic
        });
    }
    if bytes[..8] != STORE_MAGIC {
        return Err(StoreError::BadMagic);
    }
    if bytes.len() < LENGTH_AT + 8 {
        return Err(truncated(HEADER + CHECKSUM, bytes.len()));
    }
    let mut header = Reader { buf: bytes, pos: 8 };
    // In range: the length was checked just above.
    let version = header.u32()?;
    let total = header.u64()?;
    if version != STORE_VERSION {
        return Err(StoreError::UnsupportedVersion {
            found: version,
            whole: total == bytes.len() as u64,
        });
    }
    let Some(total) = usize::try_from(total)
        .ok()
        .filter(|&t| t >= HEADER + CHECKSUM)
    else {
        // A length no file of ours has: it cannot be believed, and the
        // checksum cannot be found without it. Tell a cut-off file from
        // damage where possible.
        return Err(if bytes.len() < HEADER + CHECKSUM {
            truncated(HEADER + CHECKSUM, bytes.len())
        } else {
            StoreError::ChecksumMismatch
        });
    };
    if bytes.len() < total {
        return Err(truncated(total, bytes.len()));
    }
    if bytes.len() > total {
        return Err(StoreError::TrailingBytes {
            expected: total as u64,
            found: bytes.len() as u64,
        });
    }
    let (body, sum) = bytes.split_at(total - CHECKSUM);
    let mut sum_bytes = [0u8; CHECKSUM];
    sum_bytes.copy_from_slice(sum);
    if fnv1a64(body) != u64::from_le_bytes(sum_bytes) {
        return Err(StoreError::ChecksumMismatch);
    }

    // The contents are what was written: now read them.
    let mut r = Reader {
        buf: body,
        pos: LENGTH_AT + 8,
    };
    let written_at = Timestamp::from_unix_millis(r.u64()?);
    let n = r.u32()?;
    // Each entry takes at least 19 bytes: never reserve more than the body holds.
    let mut entries = Vec::with_capacity((n as usize).min(body.len() / 19));
    // Names seen, by kind: a crafted file of many entries is checked in
    // linear time.
    let mut seen: std::collections::HashSet<(u8, &str)> =
        std::collections::HashSet::with_capacity(entries.capacity());
    for index in 0..n {
        let kind = TableKind::from_byte(r.u8()?);
        let name_len = usize::from(r.u16()?);
        let name =
            std::str::from_utf8(r.take(name_len)?).map_err(|_| StoreError::BadName { index })?;
        let signature = r.u64()?;
        let payload_len = usize::try_from(r.u64()?).map_err(|_| StoreError::BadLength)?;
        let payload = r.take(payload_len)?;
        let kind_byte = match kind {
            TableKind::Limit => KIND_LIMIT,
            TableKind::Greylist => KIND_GREYLIST,
            TableKind::Unknown(b) => b,
        };
        if !seen.insert((kind_byte, name)) {
            return Err(StoreError::DuplicateName { index });
        }
        entries.push(StoredTable {
            kind,
            name,
            signature,
            payload,
        });
    }
    if r.pos != body.len() {
        return Err(StoreError::BadLength);
    }
    Ok(Stored {
        written_at,
        entries,
    })
}

/// Restores `state`'s tables from the state file `bytes`: all or nothing.
///
/// Every table in the file is decoded first, for the item of `state` with
/// its name and signature; only when all decoded is the restored state
/// made: `state` with those tables in place of its own (the others
/// shared). On any error nothing is made. A table whose rule is gone or
/// changed (another [signature](crate::state::LimitState::signature)) is dropped
/// and reported, not an error: its state does not apply to the new rule.
/// Put the result in force with [`Engine::set_state`](crate::Engine::set_state).
pub fn restore(state: &State, bytes: &[u8]) -> Result<(State, RestoreReport), StoreError> {
    let stored = decode(bytes)?;
    let mut limits: Vec<(usize, LimitTable)> = Vec::new();
    let mut greylists: Vec<(usize, GreylistTable)> = Vec::new();
    let mut restored = Vec::new();
    let mut dropped = Vec::new();
    // Not restored: the state has an item of that name with another
    // signature (changed), or none (gone).
    let not_restored = |name: &str, changed: bool| Dropped {
        name: name.to_owned(),
        reason: if changed {
            DropReason::Changed
        } else {
            DropReason::Gone
        },
    };
    for (index, entry) in stored.entries.iter().enumerate() {
        // In range: `decode` counted the entries with a u32.
        let index = index as u32;
        match entry.kind {
            TableKind::Limit => match state.find_limit(entry.name, entry.signature) {
                Some(i) => {
                    let Some(spec) = state.limits.get(i) else {
                        continue;
                    };
                    let table = LimitTable::decode_snapshot(
                        entry.payload,
                        spec.table_limit.clone(),
                        spec.capacity,
                    )
                    .map_err(|error| StoreError::Limit { index, error })?;
                    restored.push(Restored {
                        name: entry.name.to_owned(),
                        keys: table.len(),
                    });
                    limits.push((i, table));
                }
                None => dropped.push(not_restored(
                    entry.name,
                    state.limits().any(|l| l.name == entry.name),
                )),
            },
            TableKind::Greylist => match state.find_greylist(entry.name, entry.signature) {
                Some(i) => {
                    let Some(spec) = state.greylists.get(i) else {
                        continue;
                    };
                    let table =
                        GreylistTable::decode_snapshot(entry.payload, spec.timers, spec.capacity)
                            .map_err(|error| StoreError::Greylist { index, error })?;
                    restored.push(Restored {
                        name: entry.name.to_owned(),
                        keys: table.len(),
                    });
                    greylists.push((i, table));
                }
                None => dropped.push(not_restored(
                    entry.name,
                    state.greylists().any(|g| g.name == entry.name),
                )),
            },
            TableKind::Unknown(kind) => dropped.push(Dropped {
                name: entry.name.to_owned(),
                reason: DropReason::UnknownKind(kind),
            }),
        }
    }
    let in_file = |kind: TableKind, name: &str| {
        stored
            .entries
            .iter()
            .any(|e| e.kind == kind && e.name == name)
    };
    let fresh: Vec<String> = state
        .limits()
        .filter(|l| !in_file(TableKind::Limit, l.name))
        .map(|l| l.name.to_owned())
        .chain(
            state
                .greylists()
                .filter(|g| !in_file(TableKind::Greylist, g.name))
                .map(|g| g.name.to_owned()),
        )
        .collect();
    let report = RestoreReport {
        written_at: stored.written_at,
        restored,
        dropped,
        fresh,
    };
    Ok((state.with_tables(limits, greylists), report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoFiles;
    use crate::{Engine, Policy, Request};

    const POLICY: &str = "\
limit out { key sender count messages max 3 per 1h }
limit rcpts { key client_address/24/64 count recipients max 100 per 1m, 1000 per 1d }
default DUNNO
";

    fn compile(src: &str) -> Engine {
        match Policy::compile("policy.conf", src, &mut NoFiles) {
            Ok(compiled) => Engine::new(compiled.policy),
            Err(e) => panic!("{e:?}"),
        }
    }

    /// [`restore`] into `engine`'s state, put in force on success.
    fn restore_into(engine: &Engine, bytes: &[u8]) -> Result<RestoreReport, StoreError> {
        let (state, report) = restore(&engine.state(), bytes)?;
        engine.set_state(state);
        Ok(report)
    }

    const NOW: Timestamp = Timestamp::from_unix_millis(1_700_000_000_000);

    fn rcpt(sender: &str, instance: u32) -> Vec<u8> {
        format!(
            "request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=192.0.2.{}\n\
             sender={sender}\nrecipient=r{instance}@example.com\ninstance=i{instance}\n\n",
            instance % 200
        )
        .into_bytes()
    }

    /// Decide one request per (sender, message) pair; returns the actions.
    fn send(policy: &Engine, messages: &[(&str, u32)]) -> Vec<String> {
        let mut scratch = crate::Scratch::new();
        messages
            .iter()
            .map(|&(sender, instance)| {
                let frame = rcpt(sender, instance);
                let request = Request::parse(&frame).expect("request");
                String::from_utf8_lossy(policy.decide(&request, NOW, &mut scratch).wire())
                    .into_owned()
            })
            .collect()
    }

    fn counted(policy: &Engine) -> Vec<(String, usize)> {
        policy
            .state()
            .limits()
            .map(|l| (l.name.to_owned(), l.table.len()))
            .collect()
    }

    /// A state file of [`POLICY`] with some counts in it.
    fn sample() -> (Engine, Vec<u8>) {
        let policy = compile(POLICY);
        send(&policy, &[("a@x.org", 1), ("a@x.org", 2), ("b@y.org", 3)]);
        let mut file = Vec::new();
        assert_eq!(encode(&policy.state(), NOW, &mut file), 2);
        (policy, file)
    }

    #[test]
    fn round_trip_keeps_every_counter() {
        let (policy, file) = sample();
        let stored = decode(&file).unwrap();
        assert_eq!(stored.written_at, NOW);
        let names: Vec<_> = stored.entries.iter().map(|e| e.name).collect();
        assert_eq!(names, ["out", "rcpts"]);
        for (entry, state) in stored.entries.iter().zip(policy.state().limits()) {
            assert_eq!(entry.kind, TableKind::Limit);
            assert_eq!(entry.signature, state.signature);
            let mut alone = Vec::new();
            state.table.encode_snapshot(NOW, &mut alone);
            assert_eq!(entry.payload, &alone[..]);
        }

        let fresh = compile(POLICY);
        let report = restore_into(&fresh, &file).unwrap();
        assert_eq!(report.written_at, NOW);
        assert_eq!(
            report.restored,
            [
                Restored {
                    name: "out".into(),
                    keys: 2
                },
                Restored {
                    name: "rcpts".into(),
                    keys: 1
                }
            ]
        );
        assert!(report.dropped.is_empty() && report.fresh.is_empty());
        assert_eq!(counted(&fresh), counted(&policy));
        // Encoding the restored policy gives the same file.
        let mut again = Vec::new();
        encode(&fresh.state(), NOW, &mut again);
        assert_eq!(again, file);
        // The counts carry on: a@x.org has sent 2 of 3 messages.
        let answers = send(&fresh, &[("a@x.org", 10), ("a@x.org", 11)]);
        assert_eq!(answers[0], "DUNNO");
        assert!(answers[1].starts_with("DEFER 4.7.1 "), "{answers:?}");
    }

    #[test]
    fn a_policy_without_limits_writes_an_empty_file() {
        let policy = compile("default DUNNO\n");
        let mut file = vec![7, 7];
        assert_eq!(encode(&policy.state(), NOW, &mut file), 0);
        // Appended after what was there.
        assert_eq!(&file[..2], [7, 7]);
        let stored = decode(&file[2..]).unwrap();
        assert!(stored.entries.is_empty());
        assert_eq!(file.len() - 2, HEADER + CHECKSUM);
    }

    #[test]
    fn a_name_too_long_for_the_format_is_left_out() {
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        let src = format!(
            "limit {long} {{ key sender count messages max 1 per 1h }}\n\
             limit short {{ key sender count messages max 1 per 1h }}\n"
        );
        let policy = compile(&src);
        let mut file = Vec::new();
        assert_eq!(encode(&policy.state(), NOW, &mut file), 1);
        let stored = decode(&file).unwrap();
        assert_eq!(stored.entries.len(), 1);
        assert_eq!(stored.entries[0].name, "short");
        let fresh = compile(&src);
        assert_eq!(restore_into(&fresh, &file).unwrap().fresh, [long]);
    }

    #[test]
    fn every_prefix_fails_cleanly() {
        let (_, file) = sample();
        for n in 0..file.len() {
            let err = decode(&file[..n]).unwrap_err();
            assert!(
                matches!(err, StoreError::Truncated { found, .. } if found == n as u64),
                "prefix {n}: {err:?}"
            );
            let policy = compile(POLICY);
            let before = counted(&policy);
            assert_eq!(restore_into(&policy, &file[..n]).unwrap_err(), err);
            assert_eq!(counted(&policy), before);
        }
    }

    #[test]
    fn every_flipped_byte_fails_cleanly() {
        let (_, file) = sample();
        for i in 0..file.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = file.clone();
                bad[i] ^= bit;
                let err = decode(&bad).expect_err("a changed byte is noticed");
                match i {
                    0..=7 => assert_eq!(err, StoreError::BadMagic, "byte {i}"),
                    8..=11 => assert!(
                        matches!(err, StoreError::UnsupportedVersion { .. }),
                        "byte {i}: {err:?}"
                    ),
                    12..=19 => assert!(
                        matches!(
                            err,
                            StoreError::Truncated { .. }
                                | StoreError::TrailingBytes { .. }
                                | StoreError::ChecksumMismatch
                        ),
                        "byte {i}: {err:?}"
                    ),
                    _ => assert_eq!(err, StoreError::ChecksumMismatch, "byte {i}"),
                }
                let policy = compile(POLICY);
                assert!(restore_into(&policy, &bad).is_err());
                assert!(policy.state().limits().all(|l| l.table.is_empty()));
            }
        }
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let (_, mut file) = sample();
        let len = file.len() as u64;
        file.push(0);
        assert_eq!(
            decode(&file).unwrap_err(),
            StoreError::TrailingBytes {
                expected: len,
                found: len + 1
            }
        );
    }

    #[test]
    fn a_changed_rule_is_dropped_not_an_error() {
        let (_, file) = sample();
        // `out` gets another window length (new signature); `rcpts` only a
        // new max (same signature); `fresh` is new; nothing is named `gone`.
        let changed = "\
limit out { key sender count messages max 3 per 2h }
limit rcpts { key client_address/24/64 count recipients max 5 per 1m, 1000 per 1d }
limit fresh { key sender count recipients max 9 per 1h }
default DUNNO
";
        let policy = compile(changed);
        let report = restore_into(&policy, &file).unwrap();
        assert_eq!(
            report.restored,
            [Restored {
                name: "rcpts".into(),
                keys: 1
            }]
        );
        assert_eq!(
            report.dropped,
            [Dropped {
                name: "out".into(),
                reason: DropReason::Changed
            }]
        );
        assert_eq!(report.fresh, ["fresh"]);
        assert_eq!(
            counted(&policy),
            [("out".into(), 0), ("rcpts".into(), 1), ("fresh".into(), 0)]
        );

        let without = compile("limit other { key sender count messages max 1 per 1h }\n");
        let report = restore_into(&without, &file).unwrap();
        assert!(report.restored.is_empty());
        assert_eq!(
            report.dropped,
            [
                Dropped {
                    name: "out".into(),
                    reason: DropReason::Gone
                },
                Dropped {
                    name: "rcpts".into(),
                    reason: DropReason::Gone
                }
            ]
        );
        assert_eq!(report.fresh, ["other"]);
    }

    /// Rebuilds a container from entries (a valid header and checksum), to
    /// test what lies behind the checksum.
    fn container(entries: &[(u8, &[u8], u64, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&STORE_MAGIC);
        out.extend_from_slice(&STORE_VERSION.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
        out.extend_from_slice(&NOW.as_unix_millis().to_le_bytes());
        out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        for (kind, name, signature, payload) in entries {
            out.push(*kind);
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(name);
            out.extend_from_slice(&signature.to_le_bytes());
            out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
            out.extend_from_slice(payload);
        }
        let total = (out.len() + CHECKSUM) as u64;
        out[LENGTH_AT..LENGTH_AT + 8].copy_from_slice(&total.to_le_bytes());
        let sum = fnv1a64(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    #[test]
    fn all_or_nothing_when_one_table_is_bad() {
        let (policy, file) = sample();
        let stored = decode(&file).unwrap();
        let (out, rcpts) = (stored.entries[0], stored.entries[1]);
        // A valid container whose second limit snapshot is damaged inside
        // (its own checksum catches it): the first is not installed either.
        let mut bad_payload = rcpts.payload.to_vec();
        let last = bad_payload.len() - 9;
        bad_payload[last] ^= 0x10;
        let bad = container(&[
            (KIND_LIMIT, out.name.as_bytes(), out.signature, out.payload),
            (
                KIND_LIMIT,
                rcpts.name.as_bytes(),
                rcpts.signature,
                &bad_payload,
            ),
        ]);
        let fresh = compile(POLICY);
        let err = restore_into(&fresh, &bad).unwrap_err();
        assert_eq!(
            err,
            StoreError::Limit {
                index: 1,
                error: SnapshotError::ChecksumMismatch
            }
        );
        assert!(err.to_string().contains("entry 1"), "{err}");
        assert!(fresh.state().limits().all(|l| l.table.is_empty()));
        // The intact file restores both.
        restore_into(&fresh, &file).unwrap();
        assert_eq!(counted(&fresh), counted(&policy));
    }

    #[test]
    fn contents_behind_a_valid_checksum_are_checked() {
        let (_, file) = sample();
        let e = decode(&file).unwrap().entries[0];
        let rows: &[(Vec<u8>, StoreError)] = &[
            (
                container(&[(KIND_LIMIT, b"o\xffut", e.signature, e.payload)]),
                StoreError::BadName { index: 0 },
            ),
            (
                container(&[
                    (KIND_LIMIT, b"out", e.signature, e.payload),
                    (KIND_LIMIT, b"out", e.signature, e.payload),
                ]),
                StoreError::DuplicateName { index: 1 },
            ),
        ];
        for (bytes, expected) in rows {
            assert_eq!(&decode(bytes).unwrap_err(), expected);
        }
        // An entry count larger than the entries: the lengths lie.
        let mut lying = container(&[(KIND_LIMIT, b"out", e.signature, e.payload)]);
        lying[HEADER - 4] = 2;
        let body = lying.len() - CHECKSUM;
        let sum = fnv1a64(&lying[..body]);
        lying[body..].copy_from_slice(&sum.to_le_bytes());
        assert_eq!(decode(&lying).unwrap_err(), StoreError::BadLength);
    }

    #[test]
    fn unknown_kinds_are_dropped() {
        let (policy, file) = sample();
        let e = decode(&file).unwrap().entries[0];
        let bytes = container(&[
            (9, b"greylist", 1, b"whatever"),
            (KIND_LIMIT, b"out", e.signature, e.payload),
        ]);
        let fresh = compile(POLICY);
        let report = restore_into(&fresh, &bytes).unwrap();
        assert_eq!(
            report.dropped,
            [Dropped {
                name: "greylist".into(),
                reason: DropReason::UnknownKind(9)
            }]
        );
        assert_eq!(report.restored.len(), 1);
        assert_eq!(report.fresh, ["rcpts"]);
        assert_eq!(counted(&fresh)[0], counted(&policy)[0]);
    }

    #[test]
    fn errors_read_well() {
        assert_eq!(
            decode(b"PDSTA").unwrap_err().to_string(),
            "truncated state file: expected 40 bytes, found 5"
        );
        assert_eq!(
            decode(b"hello, world").unwrap_err().to_string(),
            "not a policyd state file: expected the magic \"PDSTATE\\0\""
        );
        let mut v2 = container(&[]);
        v2[8] = 2;
        assert_eq!(
            decode(&v2).unwrap_err().to_string(),
            "state file format version 2 is not supported: expected 1"
        );
        // Whole: the length field after the version is the file's length.
        assert_eq!(
            decode(&v2).unwrap_err(),
            StoreError::UnsupportedVersion {
                found: 2,
                whole: true
            }
        );
        v2.push(0);
        assert_eq!(
            decode(&v2).unwrap_err(),
            StoreError::UnsupportedVersion {
                found: 2,
                whole: false
            }
        );
        assert_eq!(
            DropReason::Changed.to_string(),
            "the rule changed (key, count, at, windows or capacity): counters reset"
        );
    }
}
