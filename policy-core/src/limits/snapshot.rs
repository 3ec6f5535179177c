//! The snapshot format of a [`LimitTable`]: bytes in, bytes out, no I/O.
//!
//! All integers little-endian:
//!
//! ```text
//! magic      8 bytes  SNAPSHOT_MAGIC ("PDLIMIT\0")
//! version    u32      SNAPSHOT_VERSION
//! length     u64      of the whole snapshot, checksum included
//! buckets    u32      BUCKETS of the writer
//! counters   u32      bytes per bucket counter of the table written, 4 or 8
//!                     (a table read back keeps wide counters)
//! seeds      4 x u64  the HashSeeds
//! probe      u64      hash of PROBE_KEY with those seeds (detects a hash function that changed)
//! windows    u32      n, 1..=MAX_WINDOWS
//!            n x (per_ms u64, max u64)
//! entries    u64      m
//!            m x entry, in increasing key hash order:
//!              key hash u64, last_ms u64,
//!              text length u8 (bits 0-6: the length, at most
//!                  KEY_TEXT_BYTES - 1; bit 7: the key's text was longer),
//!              the text's bytes,
//!              n x (mask u32: bit i set if bucket slot i is not zero,
//!                   then the non-zero counts, in slot order, each of
//!                   the counter width: u32 or u64)
//! checksum   u64      of every byte before it (see `checksum`: FNV-1a 64
//!                     over 8-byte words in four lanes)
//! ```
//!
//! The format does not depend on the table's layout in memory, only on the
//! width of its counters.
//!
//! Decoding builds a new table and returns it only if everything checked: a
//! truncated, corrupt or mismatched buffer is a [`SnapshotError`] and loads
//! nothing. Version 1 (no key texts) is not read: it was never released.
//!
//! # Framing, shared with greylist snapshots
//!
//! Every state snapshot (limits here, greylists in
//! [`GreylistTable::encode_snapshot`](crate::greylist::GreylistTable::encode_snapshot))
//! is framed the same way: its own magic (8 bytes), its version (u32), the
//! length of the whole snapshot (u64), the body, and the checksum of
//! everything before it (u64). A reader checks magic, version, length and
//! checksum before it believes anything in the body, so that a truncated
//! or corrupt buffer is named as such; a body that then does not parse is
//! a length that lies ([`SnapshotError::BadLength`]), since the checksum
//! matched.

use std::fmt;

use super::table::{Entry, LimitTable};
use super::window::{Window, BUCKETS, MAX_WINDOW_MS, SLOTS};
use super::{Limit, MAX_WINDOWS};
use crate::base::bytes::fnv1a_words;
use crate::base::time::Timestamp;
use crate::keyed::key::{stored_text, HashSeeds, KEY_TEXT_BYTES};

/// The first 8 bytes of a snapshot.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"PDLIMIT\0";

/// The snapshot format version this build writes and reads.
pub const SNAPSHOT_VERSION: u32 = 2;

/// The key hashed into the header's probe, to notice that the hash function
/// (ahash's version or its build's CPU features) is not the one that wrote it.
const PROBE_KEY: &[u8] = b"policyd limit table hash probe";

/// Bytes before the window list: magic, version, length, buckets, counter
/// width, seeds, probe, window count.
const FIXED_HEADER: usize = 8 + 4 + 8 + 4 + 4 + 32 + 8 + 4;

/// Offset of the length field.
const LENGTH_AT: usize = 12;

/// Bytes of the framing before the body: magic, version, length.
const FRAME_HEAD: usize = LENGTH_AT + 8;

/// Why a snapshot could not be loaded. Nothing was loaded.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotError {
    /// The buffer ends before the snapshot does (a partly written file).
    Truncated {
        /// Bytes the snapshot needs, as far as its header tells.
        needed: usize,
        /// Bytes there are.
        found: usize,
    },
    /// The buffer does not start with [`SNAPSHOT_MAGIC`].
    BadMagic,
    /// Written by a version of the format this build does not read.
    UnsupportedVersion {
        /// The version in the buffer.
        found: u32,
    },
    /// The buffer goes on after the checksum.
    TrailingBytes {
        /// The snapshot's length.
        expected: usize,
        /// The buffer's length.
        found: usize,
    },
    /// The checksum does not match the contents (a corrupt file).
    ChecksumMismatch,
    /// The window count is outside 1..=[`MAX_WINDOWS`].
    BadWindowCount {
        /// The count in the buffer.
        found: u32,
    },
    /// A window's length is outside what [`Window::new`] accepts.
    BadWindow {
        /// The length in the buffer, in milliseconds.
        per_ms: u64,
    },
    /// An entry's key text is longer than [`KEY_TEXT_BYTES`]` - 1` bytes.
    BadKeyText {
        /// Index of the entry.
        index: u64,
    },
    /// The length field disagrees with the contents (behind a valid checksum,
    /// so written wrongly rather than damaged).
    BadLength,
    /// An entry's bucket mask names slots that do not exist.
    BadSlotMask {
        /// Index of the entry.
        index: u64,
    },
    /// Written with another number of buckets per window.
    BucketsChanged {
        /// Buckets in the buffer.
        found: u32,
    },
    /// The width of bucket counters is neither 4 nor 8 bytes.
    BadCounterWidth {
        /// The width in the buffer.
        found: u32,
    },
    /// The limit's windows have other lengths than the snapshot's (a changed
    /// rule: its old counters do not apply). A changed `max` alone is accepted.
    WindowsChanged,
    /// The hash function differs from the writer's, so the key hashes mean
    /// nothing here.
    HasherChanged,
    /// Entries are not in strictly increasing hash order (a duplicate key).
    EntriesOutOfOrder {
        /// Index of the first entry out of order.
        index: u64,
    },
    /// More entries than the table's bound allows in one shard.
    TooManyKeys {
        /// The table's capacity.
        capacity: usize,
    },
    /// A greylist entry's times are impossible (a time of 0, a first
    /// attempt after the last time seen, a client network with no pass):
    /// written wrongly, behind a valid checksum.
    BadEntry {
        /// Index of the entry, triplets first, then client networks.
        index: u64,
    },
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated { needed, found } => write!(
                f,
                "truncated snapshot: expected at least {needed} bytes, found {found}"
            ),
            Self::BadMagic => f.write_str(
                "not a snapshot of this kind: expected the magic \"PDLIMIT\\0\" (limit) or \"PDGREY\\0\\0\" (greylist)",
            ),
            Self::UnsupportedVersion { found } => write!(
                f,
                "snapshot version {found} is not supported: expected {SNAPSHOT_VERSION} (limit) or {} (greylist)",
                GREYLIST_SNAPSHOT_VERSION
            ),
            Self::TrailingBytes { expected, found } => write!(
                f,
                "snapshot has trailing bytes: expected {expected} bytes, found {found}"
            ),
            Self::ChecksumMismatch => {
                f.write_str("corrupt snapshot: the checksum does not match the contents")
            }
            Self::BadWindowCount { found } => write!(
                f,
                "corrupt limit snapshot: expected 1 to {MAX_WINDOWS} windows, found {found}"
            ),
            Self::BadWindow { per_ms } => write!(
                f,
                "corrupt limit snapshot: expected windows of 1 ms to {} ms, found {per_ms} ms",
                MAX_WINDOW_MS
            ),
            Self::BadKeyText { index } => write!(
                f,
                "corrupt limit snapshot: expected key texts of at most {} bytes, entry {index}'s is longer",
                KEY_TEXT_BYTES - 1
            ),
            Self::BadLength => f.write_str(
                "corrupt snapshot: expected its length field to match its contents",
            ),
            Self::BadSlotMask { index } => write!(
                f,
                "corrupt limit snapshot: expected at most {SLOTS} buckets in entry {index}'s mask"
            ),
            Self::BucketsChanged { found } => write!(
                f,
                "limit snapshot uses {found} buckets per window: expected {BUCKETS}"
            ),
            Self::BadCounterWidth { found } => write!(
                f,
                "corrupt limit snapshot: expected counters of 4 or 8 bytes, found {found}"
            ),
            Self::WindowsChanged => f.write_str(
                "limit snapshot windows differ from the rule's: expected the same window lengths",
            ),
            Self::HasherChanged => f.write_str(
                "snapshot was written with another key hash function: expected the same build",
            ),
            Self::EntriesOutOfOrder { index } => write!(
                f,
                "corrupt snapshot: expected entries in increasing key order, entry {index} is not"
            ),
            Self::TooManyKeys { capacity } => write!(
                f,
                "snapshot holds more keys than the table's bound of {capacity}"
            ),
            Self::BadEntry { index } => write!(
                f,
                "corrupt greylist snapshot: expected entry {index}'s times to be possible (non-zero, first attempt no later than last seen, at least one pass per client network)"
            ),
        }
    }
}

impl std::error::Error for SnapshotError {}

/// The greylist snapshot format version this build writes and reads (here,
/// beside the limit snapshots' version, so that the snapshot code's errors
/// name both without importing the greylist table).
pub const GREYLIST_SNAPSHOT_VERSION: u32 = 1;

/// The snapshot checksum: [`fnv1a_words`], FNV-1a's step over 8-byte words
/// (a format on disk, not the byte-wise FNV-1a; see there why it is kept).
pub(crate) fn checksum(bytes: &[u8]) -> u64 {
    fnv1a_words(bytes)
}

/// Reads little-endian integers from a buffer whose length was checked.
pub(crate) struct Reader<'b> {
    buf: &'b [u8],
    pos: usize,
}

impl Reader<'_> {
    /// Bytes left.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    /// Fails unless every byte was read.
    pub(crate) fn end(&self) -> Result<(), SnapshotError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(SnapshotError::BadLength)
        }
    }
    fn need(&self, n: usize) -> Result<(), SnapshotError> {
        let needed = self.pos.saturating_add(n);
        if needed > self.buf.len() {
            return Err(SnapshotError::Truncated {
                needed,
                found: self.buf.len(),
            });
        }
        Ok(())
    }
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        self.need(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buf[self.pos..self.pos + N]);
        self.pos += N;
        Ok(out)
    }
    pub(crate) fn u32(&mut self) -> Result<u32, SnapshotError> {
        self.bytes().map(u32::from_le_bytes)
    }
    pub(crate) fn u64(&mut self) -> Result<u64, SnapshotError> {
        self.bytes().map(u64::from_le_bytes)
    }
    fn slice(&mut self, n: usize) -> Result<&[u8], SnapshotError> {
        self.need(n)?;
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }
}

/// Starts a snapshot at the end of `out`: `magic`, `version` and a length
/// that [`finish`] fills in. The snapshot's start, for [`finish`].
pub(crate) fn begin(out: &mut Vec<u8>, magic: [u8; 8], version: u32) -> usize {
    let start = out.len();
    out.extend_from_slice(&magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    start
}

/// Ends the snapshot begun at `start` ([`begin`]): fills in its length
/// and appends the checksum.
pub(crate) fn finish(out: &mut Vec<u8>, start: usize) {
    let total = (out.len() - start + 8) as u64;
    out[start + LENGTH_AT..start + FRAME_HEAD].copy_from_slice(&total.to_le_bytes());
    let sum = checksum(&out[start..]);
    out.extend_from_slice(&sum.to_le_bytes());
}

/// Checks a snapshot's framing: `magic`, `version`, then its length (at
/// least `min_body` bytes of body) and checksum before anything in the body
/// is believed. A reader of the body (the checksum left out), at its start.
pub(crate) fn open(
    bytes: &[u8],
    magic: [u8; 8],
    version: u32,
    min_body: usize,
) -> Result<Reader<'_>, SnapshotError> {
    let mut r = Reader { buf: bytes, pos: 0 };
    if r.bytes::<8>()? != magic {
        return Err(SnapshotError::BadMagic);
    }
    let found = r.u32()?;
    if found != version {
        return Err(SnapshotError::UnsupportedVersion { found });
    }
    // The length and checksum first, so that a truncated or corrupt buffer
    // is named as such before anything in it is believed.
    let total = r.u64()?;
    let total = usize::try_from(total)
        .ok()
        .filter(|&t| t >= FRAME_HEAD + min_body + 8)
        .ok_or(SnapshotError::BadLength)?;
    r.need(total - r.pos)?;
    if bytes.len() > total {
        return Err(SnapshotError::TrailingBytes {
            expected: total,
            found: bytes.len(),
        });
    }
    let (body, sum) = bytes.split_at(total - 8);
    if checksum(body) != u64::from_le_bytes(sum.try_into().map_err(|_| SnapshotError::BadLength)?) {
        return Err(SnapshotError::ChecksumMismatch);
    }
    Ok(Reader {
        buf: body,
        pos: FRAME_HEAD,
    })
}

/// An error found decoding a body whose checksum matched: a short body is a
/// length that lies.
pub(crate) fn in_body(e: SnapshotError) -> SnapshotError {
    match e {
        SnapshotError::Truncated { .. } => SnapshotError::BadLength,
        e => e,
    }
}

/// The header of a snapshot, read from a body whose length and checksum were
/// checked; the reader is left at the first entry.
struct Header {
    wide: bool,
    seeds: HashSeeds,
    probe: u64,
    windows: Vec<Window>,
    entries: u64,
}

impl Header {
    fn read(r: &mut Reader<'_>) -> Result<Self, SnapshotError> {
        let buckets = r.u32()?;
        if buckets as usize != BUCKETS {
            return Err(SnapshotError::BucketsChanged { found: buckets });
        }
        let wide = match r.u32()? {
            4 => false,
            8 => true,
            found => return Err(SnapshotError::BadCounterWidth { found }),
        };
        let seeds = HashSeeds([r.u64()?, r.u64()?, r.u64()?, r.u64()?]);
        let probe = r.u64()?;
        let n = r.u32()?;
        if n == 0 || n as usize > MAX_WINDOWS {
            return Err(SnapshotError::BadWindowCount { found: n });
        }
        let mut windows = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let per_ms = r.u64()?;
            let max = r.u64()?;
            windows
                .push(Window::new(max, per_ms).map_err(|_| SnapshotError::BadWindow { per_ms })?);
        }
        Ok(Self {
            wide,
            seeds,
            probe,
            windows,
            entries: r.u64()?,
        })
    }
}

impl LimitTable {
    /// Appends the snapshot of the table to `out`, leaving out the keys that
    /// are empty at `now`. Shards are locked one at a time, so counts made
    /// meanwhile may be in the snapshot or not, each key whole.
    pub fn encode_snapshot(&self, now: Timestamp, out: &mut Vec<u8>) {
        self.encode_snapshot_as(now, &self.limit, out);
    }

    /// [`encode_snapshot`](Self::encode_snapshot) naming `limit`'s maxima
    /// in the snapshot instead of the table's own: the rule's maxima as the
    /// policy now has them (a table is built for the largest maximum any key
    /// may get, overrides included, and is kept across a reload that changes
    /// `max`). The windows' lengths must be the table's; if they are not,
    /// the table's own limit is written.
    pub fn encode_snapshot_as(&self, now: Timestamp, limit: &Limit, out: &mut Vec<u8>) {
        let same_lengths = limit.windows().len() == self.limit.windows().len()
            && limit
                .windows()
                .iter()
                .zip(self.limit.windows())
                .all(|(a, b)| a.per_ms() == b.per_ms());
        let named = if same_lengths { limit } else { &self.limit };
        let start = begin(out, SNAPSHOT_MAGIC, SNAPSHOT_VERSION);
        let now = now.as_unix_millis();
        out.extend_from_slice(&(BUCKETS as u32).to_le_bytes());
        let wide = self.bucket_max() > u32::MAX.into();
        let width: u32 = if wide { 8 } else { 4 };
        out.extend_from_slice(&width.to_le_bytes());
        for s in self.seeds.0 {
            out.extend_from_slice(&s.to_le_bytes());
        }
        out.extend_from_slice(&self.hash_key(PROBE_KEY).to_le_bytes());
        let windows = named.windows();
        out.extend_from_slice(&(windows.len() as u32).to_le_bytes());
        for w in windows {
            out.extend_from_slice(&w.per_ms().to_le_bytes());
            out.extend_from_slice(&w.max().to_le_bytes());
        }
        let count_at = out.len();
        out.extend_from_slice(&0u64.to_le_bytes());
        let mut entries = 0u64;
        // Shards are the top bits of the hash, so shard order then hash order
        // within a shard is increasing hash order overall.
        for i in 0..self.shard_count() {
            self.for_each_sorted(i, now, |e| {
                entries += 1;
                out.extend_from_slice(&e.hash.to_le_bytes());
                out.extend_from_slice(&e.last.to_le_bytes());
                let (text, _) = stored_text(&e.text);
                out.push(e.text[0]);
                out.extend_from_slice(text);
                for ring in e.counts[..windows.len() * SLOTS].chunks_exact(SLOTS) {
                    let mask = ring
                        .iter()
                        .enumerate()
                        .filter(|(_, &c)| c != 0)
                        .fold(0u32, |m, (i, _)| m | 1 << i);
                    out.extend_from_slice(&mask.to_le_bytes());
                    for &c in ring.iter().filter(|&&c| c != 0) {
                        if wide {
                            out.extend_from_slice(&c.to_le_bytes());
                        } else {
                            // A narrow table's counts are below 2^32.
                            out.extend_from_slice(&(c as u32).to_le_bytes());
                        }
                    }
                }
            });
        }
        out[count_at..count_at + 8].copy_from_slice(&entries.to_le_bytes());
        finish(out, start);
    }

    /// A new table for `limit` with at most `max_keys` keys, loaded from a
    /// snapshot. The seeds are the snapshot's. All or nothing: any error
    /// returns no table. The windows' lengths must be the snapshot's; their
    /// `max` may differ (counters carry over and the new maxima apply).
    pub fn decode_snapshot(
        bytes: &[u8],
        limit: Limit,
        max_keys: usize,
    ) -> Result<Self, SnapshotError> {
        Self::decode_checked(bytes, Some(limit), max_keys)
    }

    /// A new table with at most `max_keys` keys loaded from a snapshot, for
    /// the limit the snapshot was written for (its windows, lengths and
    /// maxima, as written): to read a snapshot without the policy, e.g. to
    /// show what it holds. All or nothing, with the same checks as
    /// [`decode_snapshot`](Self::decode_snapshot).
    pub fn decode_snapshot_as_written(
        bytes: &[u8],
        max_keys: usize,
    ) -> Result<Self, SnapshotError> {
        Self::decode_checked(bytes, None, max_keys)
    }

    /// Checks the magic, version, length and checksum, then decodes the body
    /// for `limit` (the snapshot's own if `None`).
    fn decode_checked(
        bytes: &[u8],
        limit: Option<Limit>,
        max_keys: usize,
    ) -> Result<Self, SnapshotError> {
        let r = open(
            bytes,
            SNAPSHOT_MAGIC,
            SNAPSHOT_VERSION,
            FIXED_HEADER - FRAME_HEAD,
        )?;
        Self::decode_body(r, limit, max_keys).map_err(in_body)
    }

    /// Decodes a body whose length and checksum were checked.
    fn decode_body(
        mut r: Reader<'_>,
        limit: Option<Limit>,
        max_keys: usize,
    ) -> Result<Self, SnapshotError> {
        // The contents are what was written; now check they fit this build and rule.
        let header = Header::read(&mut r)?;
        let limit = match limit {
            Some(limit) => {
                let lengths = |ws: &[Window]| ws.iter().map(|w| w.per_ms()).collect::<Vec<_>>();
                if lengths(limit.windows()) != lengths(&header.windows) {
                    return Err(SnapshotError::WindowsChanged);
                }
                limit
            }
            // 1..=MAX_WINDOWS valid windows, checked by Header::read.
            None => Limit::new(&header.windows).map_err(|_| SnapshotError::BadWindowCount {
                found: header.windows.len() as u32,
            })?,
        };
        let n = header.windows.len();
        // Wide counters stay wide; a limit that needs them gets them.
        let wide = header.wide || limit.windows().iter().any(|w| w.max() > u32::MAX.into());
        let table = Self::with_width(limit, max_keys, header.seeds, wide);
        if table.hash_key(PROBE_KEY) != header.probe {
            return Err(SnapshotError::HasherChanged);
        }
        // Every entry takes at least its hash, last time, text length and
        // one bucket mask per window: a count the bytes left cannot hold is a
        // lie, refused before anything is reserved for it.
        let smallest_entry = (8 + 8 + 1 + 4 * n) as u64;
        if header.entries > (r.remaining() as u64) / smallest_entry {
            return Err(SnapshotError::BadLength);
        }
        table.reserve(usize::try_from(header.entries).unwrap_or(usize::MAX));
        let mut previous: Option<u64> = None;
        let mut entry = Entry::default();
        for index in 0..header.entries {
            entry.hash = r.u64()?;
            if previous.is_some_and(|p| entry.hash <= p) {
                return Err(SnapshotError::EntriesOutOfOrder { index });
            }
            previous = Some(entry.hash);
            entry.last = r.u64()?;
            let [length] = r.bytes::<1>()?;
            let len = usize::from(length & 0x7f);
            if len >= KEY_TEXT_BYTES {
                return Err(SnapshotError::BadKeyText { index });
            }
            entry.text = [0; KEY_TEXT_BYTES];
            entry.text[0] = length;
            entry.text[1..=len].copy_from_slice(r.slice(len)?);
            for ring in entry.counts[..n * SLOTS].chunks_exact_mut(SLOTS) {
                let mask = r.u32()?;
                if mask >> SLOTS != 0 {
                    return Err(SnapshotError::BadSlotMask { index });
                }
                for (i, c) in ring.iter_mut().enumerate() {
                    *c = match (mask & (1 << i) != 0, header.wide) {
                        (false, _) => 0,
                        (true, false) => r.u32()?.into(),
                        (true, true) => r.u64()?,
                    };
                }
            }
            table.load(&entry).ok_or(SnapshotError::TooManyKeys {
                capacity: table.capacity(),
            })?;
        }
        r.end()?;
        Ok(table)
    }
}
