//! The snapshot format of a [`GreylistTable`]: bytes in, bytes out, no I/O.
//! It is framed as limit snapshots are, with their code and their error
//! type ([`SnapshotError`]; `limits/snapshot.rs`); the format is in
//! [`GreylistTable::encode_snapshot`].

use super::table::{
    client_expiry, triplet_expiry, GreylistTable, TimedLayout, Timers, CLIENT_WORDS, FIRST, LAST,
    NO_TEXT, PASSES, PASS_AT, TRIPLET_WORDS,
};
use crate::base::time::Timestamp;
use crate::keyed::key::HashSeeds;
use crate::keyed::shard::{Probe, Sharded};
use crate::limits::snapshot::{self, Reader, SnapshotError, GREYLIST_SNAPSHOT_VERSION};

/// The first 8 bytes of a greylist snapshot.
pub const GREYLIST_SNAPSHOT_MAGIC: [u8; 8] = *b"PDGREY\0\0";

/// The key hashed into the header's probe, to notice that the hash function
/// is not the one that wrote the snapshot.
const PROBE_KEY: &[u8] = b"policyd greylist table hash probe";

/// Bytes of the header after the framing (magic, version, length): seeds,
/// probe, timers.
const HEADER: usize = 32 + 8 + 3 * 8 + 4;

impl GreylistTable {
    /// Appends the snapshot of the table to `out`, leaving out the entries
    /// expired at `now`. Shards are locked one at a time, so decisions made
    /// meanwhile may be in the snapshot or not, each entry whole.
    ///
    /// The format (integers little-endian), framed as limit snapshots are
    /// (see [`LimitTable::encode_snapshot`](crate::limits::LimitTable::encode_snapshot)):
    ///
    /// ```text
    /// magic      8 bytes  GREYLIST_SNAPSHOT_MAGIC ("PDGREY\0\0")
    /// version    u32      GREYLIST_SNAPSHOT_VERSION
    /// length     u64      of the whole snapshot, checksum included
    /// seeds      4 x u64  the HashSeeds
    /// probe      u64      hash of a fixed key with those seeds
    /// timers     delay_ms u64, retry_window_ms u64, max_age_ms u64, auto_whitelist u32
    /// triplets   u64      m, then m x (hash u64, last u32, first u32 (0: passed))
    ///                     in increasing hash order; times in seconds
    /// clients    u64      c, then c x (hash u64, last u32, last pass u32, passes u32)
    ///                     in increasing hash order
    /// checksum   u64      as for limit snapshots
    /// ```
    pub fn encode_snapshot(&self, now: Timestamp, out: &mut Vec<u8>) {
        let now = now.as_unix_millis();
        let t = self.timers;
        let start = snapshot::begin(out, GREYLIST_SNAPSHOT_MAGIC, GREYLIST_SNAPSHOT_VERSION);
        for s in self.seeds.0 {
            out.extend_from_slice(&s.to_le_bytes());
        }
        out.extend_from_slice(&self.hash_key(PROBE_KEY).to_le_bytes());
        out.extend_from_slice(&t.delay_ms.to_le_bytes());
        out.extend_from_slice(&t.retry_window_ms.to_le_bytes());
        out.extend_from_slice(&t.max_age_ms.to_le_bytes());
        out.extend_from_slice(&t.auto_whitelist.to_le_bytes());
        write_entries(out, &self.triplets, TRIPLET_WORDS, |e| {
            now < triplet_expiry(&t, e)
        });
        write_entries(out, &self.clients, CLIENT_WORDS, |e| {
            now < client_expiry(t.max_age_ms, e)
        });
        snapshot::finish(out, start);
    }

    /// A new table with `timers` for at most `capacity` triplets, loaded
    /// from a snapshot; the seeds are the snapshot's. All or nothing: any
    /// error returns no table. The timers may differ from the snapshot's:
    /// entries are times, and the timers given apply to them.
    pub fn decode_snapshot(
        bytes: &[u8],
        timers: Timers,
        capacity: usize,
    ) -> Result<Self, SnapshotError> {
        Self::decode_checked(bytes, Some(timers), capacity)
    }

    /// [`decode_snapshot`](Self::decode_snapshot) with the timers the
    /// snapshot was written with: to read one without the policy.
    pub fn decode_snapshot_as_written(
        bytes: &[u8],
        capacity: usize,
    ) -> Result<Self, SnapshotError> {
        Self::decode_checked(bytes, None, capacity)
    }

    fn decode_checked(
        bytes: &[u8],
        timers: Option<Timers>,
        capacity: usize,
    ) -> Result<Self, SnapshotError> {
        let mut r = snapshot::open(
            bytes,
            GREYLIST_SNAPSHOT_MAGIC,
            GREYLIST_SNAPSHOT_VERSION,
            HEADER + 16,
        )?;
        Self::decode_body(&mut r, timers, capacity).map_err(snapshot::in_body)
    }

    fn decode_body(
        r: &mut Reader<'_>,
        timers: Option<Timers>,
        capacity: usize,
    ) -> Result<Self, SnapshotError> {
        let seeds = HashSeeds([r.u64()?, r.u64()?, r.u64()?, r.u64()?]);
        let probe = r.u64()?;
        let written = Timers {
            delay_ms: r.u64()?,
            retry_window_ms: r.u64()?,
            max_age_ms: r.u64()?,
            auto_whitelist: r.u32()?,
        };
        let table = Self::new(timers.unwrap_or(written), capacity, seeds);
        if table.hash_key(PROBE_KEY) != probe {
            return Err(SnapshotError::HasherChanged);
        }
        let triplets = read_entries(r, &table.triplets, TRIPLET_WORDS, 0, |r, e| {
            e[LAST] = r.u32()?;
            e[FIRST] = r.u32()?;
            // Kept times are never 0; a pending triplet was last seen at or
            // after its first attempt.
            Ok(e[LAST] != 0 && (e[FIRST] == 0 || e[FIRST] <= e[LAST]))
        })
        .map_err(|e| too_many(e, table.capacity()))?;
        read_entries(r, &table.clients, CLIENT_WORDS, triplets, |r, e| {
            e[LAST] = r.u32()?;
            e[PASS_AT] = r.u32()?;
            e[PASSES] = r.u32()?;
            // A network is kept from its first counted pass on.
            Ok(e[PASS_AT] != 0 && e[PASS_AT] <= e[LAST] && e[PASSES] != 0)
        })
        .map_err(|e| too_many(e, table.client_capacity()))?;
        r.end()?;
        Ok(table)
    }
}

/// A [`SnapshotError::TooManyKeys`] from [`read_entries`] (which does not
/// know which bound) names `capacity`.
fn too_many(e: SnapshotError, capacity: usize) -> SnapshotError {
    match e {
        SnapshotError::TooManyKeys { .. } => SnapshotError::TooManyKeys { capacity },
        e => e,
    }
}

/// Writes the count, then the entries of `table` for which `live` holds,
/// shard by shard in increasing hash order: hash u64, then the entry's words
/// from [`LAST`] on (`words` in all), u32 each.
fn write_entries(
    out: &mut Vec<u8>,
    table: &Sharded<TimedLayout>,
    words: usize,
    live: impl Fn(&[u32]) -> bool,
) {
    let count_at = out.len();
    out.extend_from_slice(&0u64.to_le_bytes());
    let mut n = 0u64;
    // Shards are the top bits of the hash: shard order then hash order
    // within a shard is increasing hash order overall.
    for s in 0..table.count() {
        let shard = table.lock_shard(s);
        for (hash, i) in shard.sorted() {
            let e = shard.entry(i);
            if !live(e) {
                continue;
            }
            n += 1;
            out.extend_from_slice(&hash.to_le_bytes());
            for w in &e[LAST..words] {
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
    }
    out[count_at..count_at + 8].copy_from_slice(&n.to_le_bytes());
}

/// Reads a count then that many entries of `words` words into `table`
/// (`read` fills in an entry's words from [`LAST`] on and says whether they
/// are valid): the count. Hashes must increase strictly. Entries are
/// numbered in errors from `first_index` (triplets first, then networks).
fn read_entries(
    r: &mut Reader<'_>,
    table: &Sharded<TimedLayout>,
    words: usize,
    first_index: u64,
    mut read: impl FnMut(&mut Reader<'_>, &mut [u32]) -> Result<bool, SnapshotError>,
) -> Result<u64, SnapshotError> {
    // The hash (8 bytes) and the words from LAST on (4 bytes each).
    let bytes = 8 + 4 * (words - LAST);
    let count = r.u64()?;
    // Every entry takes `bytes` bytes: a count beyond what is left is a
    // length that lies, found before reserving memory for it.
    if count > (r.remaining() / bytes) as u64 {
        return Err(SnapshotError::BadLength);
    }
    table.reserve(count as usize);
    let mut previous: Option<u64> = None;
    let mut entry = [0u32; CLIENT_WORDS];
    for index in first_index..first_index + count {
        let hash = r.u64()?;
        if previous.is_some_and(|p| hash <= p) {
            return Err(SnapshotError::EntriesOutOfOrder { index });
        }
        previous = Some(hash);
        if !read(r, &mut entry)? {
            return Err(SnapshotError::BadEntry { index });
        }
        let mut shard = table.lock(hash);
        let Probe::Vacant(vacant) = shard.probe(hash) else {
            // Hashes increase strictly: a second entry is a bug.
            return Err(SnapshotError::EntriesOutOfOrder { index });
        };
        if shard.len() >= table.per_shard() {
            return Err(SnapshotError::TooManyKeys {
                capacity: table.capacity(),
            });
        }
        shard.insert_entry(hash, &NO_TEXT, vacant, table.per_shard(), |e| {
            e[LAST..].copy_from_slice(&entry[LAST..words]);
        });
    }
    Ok(count)
}

// The client entry is the widest; the words buffer holds either.
const _: () = assert!(TRIPLET_WORDS <= CLIENT_WORDS);
