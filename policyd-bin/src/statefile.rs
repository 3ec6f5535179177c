//! The state file (`--state-file`): the limits' counters and the greylists'
//! triplets and client networks kept across restarts.
//!
//! - At start ([`load`]), before the policy goes into the engine: the file is
//!   read and restored into the policy with [`store::restore`], all or
//!   nothing. A missing file is a first start. A policyd state file that
//!   cannot be used (damaged or truncated: it starts with
//!   [`store::STORE_MAGIC`]) is logged as an error naming the
//!   file and the reason, moved aside to `PATH.bad-<unix seconds>` (kept for
//!   inspection, never overwritten) and the daemon starts with empty
//!   counters: it never crashes on it and never half-loads.
//! - A file that is not a policyd state file at all (another magic: a
//!   typo'd path, a postgrey database; a directory, a FIFO) is not touched:
//!   the daemon refuses to start ([`EX_CONFIG`]), naming the file and what it
//!   looks like ([`looks_like`]). So does a whole state file (its length
//!   field is the file's) of a format version this policyd cannot read
//!   (written by a newer one, before a downgrade): its counters are still
//!   good to the version that wrote it. An empty file is one of these: policyd
//!   writes its state file whole and renames it into place (see below), so
//!   neither a crash nor a full disk leaves it empty; an empty `PATH` was
//!   made by something else (`touch`, another program), and moving it aside
//!   would hide a wrong `--state-file`. A file that exists but cannot be
//!   read (permission denied) refuses the start too ([`EX_NOINPUT`]):
//!   starting empty would replace its counters at the first write.
//! - Before that ([`lock`]), the daemon takes an exclusive `flock` on
//!   `PATH.lock` beside the state file, held until it exits, and writes its
//!   PID in it: two daemons given the same `--state-file` would overwrite
//!   each other's counters and remove each other's `PATH.tmp`, so a second
//!   one refuses to start ([`EX_TEMPFAIL`]), naming the holder. The lock
//!   file is left in place at exit (removing it would let a third daemon
//!   lock a new file while the second still holds the old one); its PID is
//!   only a hint, the lock is what counts. `policyd state` only reads the
//!   state file and takes no lock.
//! - While running, the writer thread ([`Writer`]) writes the state every
//!   `--state-interval`: it encodes the policy in force into a reused buffer
//!   (each table's shards locked one at a time, briefly: connections go on
//!   deciding), then writes it with [`write_atomic`]: `PATH.tmp` in the same
//!   directory, fsync, rename over `PATH`, fsync of the directory. No lock
//!   a connection needs is held during the I/O, and nothing here runs on the
//!   request path. A failed write is logged with the system's reason and
//!   tried again at the next interval; it never stops the daemon.
//! - At a clean stop, once connections have stopped deciding, the main thread
//!   asks the writer for a final write ([`Writer::finish`]) and waits for it.
//!
//! A `kill -9` therefore loses at most one interval of counting; a clean stop
//! loses nothing.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use policy_core::store::{self, DropReason, StoreError, TableKind};
use policy_core::State;

use crate::cli::{EX_CANTCREAT, EX_CONFIG, EX_NOINPUT, EX_TEMPFAIL};
use crate::clock;
use crate::listen::describe;
use crate::log;
use crate::shared::Shared;
use crate::signals::Signals;

/// Permissions of the state file: the owner only. Keys are sender
/// addresses, user names and client addresses: personal data.
const STATE_FILE_MODE: u32 = 0o600;

/// At a clean stop, the longest the main thread waits for the final write
/// (encoding and an fsync of a few hundred MB take seconds at worst; a
/// stuck file system must not hold the exit forever: systemd's default
/// TimeoutStopSec is 90 s). A second SIGTERM or SIGINT ends the wait at once.
pub(crate) const FINAL_WRITE_WAIT: Duration = Duration::from_secs(60);

/// How often the main thread looks for a second stop signal while waiting
/// for the final write.
const FINAL_WRITE_POLL: Duration = Duration::from_millis(20);

/// Stack of the writer thread: it encodes and writes, nothing recursive.
const WRITER_STACK_BYTES: usize = 256 * 1024;

/// `PATH` with `suffix` appended to its file name (`state` -> `state.tmp`),
/// in the same directory.
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Why a state file could not be read at all.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// There is no such file.
    Missing,
    /// It is not a regular file (a directory, a FIFO, a device): what it is.
    NotAFile(&'static str),
    /// It exists but cannot be read: the reason.
    Unreadable(String),
}

/// Why the daemon refuses to start over its state file. Printed as
/// `policyd: error: {message}`; the exit code is `code`.
#[derive(Debug)]
pub(crate) struct StartError {
    /// The exit code (`sysexits.h`).
    pub(crate) code: u8,
    /// The file, the step and the reason.
    pub(crate) message: String,
}

/// Reads the state file (regular files only: a FIFO or device could block
/// or never end). Its size is bounded by the policy's limits' capacities,
/// since it is our own writing; the whole file is held in memory while it is
/// restored.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, ReadError> {
    // Looked at before it is opened: opening a FIFO for reading blocks
    // until a writer comes.
    let before = fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ReadError::Missing,
        _ => ReadError::Unreadable(describe(&e)),
    })?;
    if before.is_dir() {
        return Err(ReadError::NotAFile("is a directory, expected a file"));
    }
    if !before.is_file() {
        return Err(ReadError::NotAFile("not a regular file"));
    }
    let mut file = File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ReadError::Missing,
        _ => ReadError::Unreadable(describe(&e)),
    })?;
    let meta = file
        .metadata()
        .map_err(|e| ReadError::Unreadable(describe(&e)))?;
    if meta.is_dir() {
        return Err(ReadError::NotAFile("is a directory, expected a file"));
    }
    if !meta.is_file() {
        return Err(ReadError::NotAFile("not a regular file"));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.read_to_end(&mut bytes)
        .map_err(|e| ReadError::Unreadable(describe(&e)))?;
    Ok(bytes)
}

/// A [`StoreError`] in words, naming the limit or greylist when the error is
/// about one.
pub(crate) fn explain(error: StoreError, bytes: &[u8]) -> String {
    let (kind, index, payload_error) = match error {
        StoreError::Limit { index, error } => ("limit", index, error),
        StoreError::Greylist { index, error } => ("greylist", index, error),
        other => return other.to_string(),
    };
    // The container decoded (the error is about one of its payloads).
    if let Some(entry) = store::decode(bytes)
        .ok()
        .and_then(|s| s.entries.get(index as usize).copied())
    {
        return format!("{kind} {} (entry {index}): {payload_error}", entry.name);
    }
    error.to_string()
}

/// What a file that is not a policyd state file looks like, for the
/// message refusing it: empty, text (its first line), or its first bytes and
/// a guess at its format.
pub(crate) fn looks_like(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "it is empty (0 bytes); policyd writes its state file whole and renames it \
                into place, never an empty one"
            .to_owned();
    }
    if let Some(line) = first_text_line(bytes) {
        return format!("it looks like a text file (first line: {line:?})");
    }
    let head: Vec<String> = bytes.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(
        "it starts with bytes {} and looks like {}",
        head.join(" "),
        guess_format(bytes).unwrap_or("data of a format policyd does not know")
    )
}

/// The first line of `bytes` (at most 60 characters) if its start is text:
/// UTF-8 without control characters other than tab, CR and LF.
fn first_text_line(bytes: &[u8]) -> Option<String> {
    let head = &bytes[..bytes.len().min(4096)];
    let text = match std::str::from_utf8(head) {
        Ok(text) => text,
        // Cut inside a character at the end of the sample: still text.
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).ok()?,
        Err(_) => return None,
    };
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\r' | '\n'))
    {
        return None;
    }
    let line = text.split('\n').next().unwrap_or("").trim_end_matches('\r');
    let mut shown: String = line.chars().take(60).collect();
    if shown.len() < line.len() {
        shown.push_str("...");
    }
    Some(shown)
}

/// A guess at the format of a file, by its magic number.
fn guess_format(bytes: &[u8]) -> Option<&'static str> {
    let u32_at = |at: usize, little: bool| {
        let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        Some(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    if bytes.starts_with(b"SQLite format 3\0") {
        return Some("an SQLite database");
    }
    // Berkeley DB keeps its magic at offset 12, in the writer's byte order:
    // btree, hash, queue.
    for little in [true, false] {
        if matches!(
            u32_at(12, little),
            Some(0x0005_3162 | 0x0006_1561 | 0x0004_2253)
        ) {
            return Some("a Berkeley DB database (postgrey's, or a Postfix hash: or btree: map)");
        }
    }
    // LMDB: the meta page's magic after a 16-byte page header.
    if u32_at(16, true) == Some(0xBEEF_C0DE) {
        return Some("an LMDB database (a Postfix lmdb: map?)");
    }
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Some("a gzip-compressed file");
    }
    if bytes.starts_with(b"\x7fELF") {
        return Some("a program (ELF)");
    }
    None
}

/// Restores the counters in the state file `path` into `state` (made for
/// the policy), logging what happened. A missing file is a first start; a
/// damaged or truncated state file is moved aside and `state` keeps its
/// empty counters. A file
/// that is not a state file, or cannot be read, is left alone and refuses
/// the start (see the module docs).
pub(crate) fn load(path: &Path, state: &mut State, interval: Duration) -> Result<(), StartError> {
    let name = path.display();
    let refuse = |code, what: String| StartError {
        code,
        message: format!(
            "state file {name} {what}; refusing to start and leaving it as it is (is \
             --state-file right? a policyd state file starts with \"PDSTATE\\0\"; a missing \
             file is a first start)"
        ),
    };
    let bytes = match read(path) {
        Ok(bytes) => bytes,
        Err(ReadError::Missing) => {
            log::notice!(
                "state file {name} does not exist yet: counters start empty; it is written \
                 every {} s and at a clean stop",
                interval.as_secs()
            );
            return Ok(());
        }
        Err(ReadError::NotAFile(what)) => {
            return Err(refuse(
                EX_CONFIG,
                format!("is not a policyd state file: {what}"),
            ))
        }
        Err(ReadError::Unreadable(reason)) => {
            return Err(StartError {
                code: EX_NOINPUT,
                message: format!(
                    "cannot read state file {name}: {reason}; refusing to start (starting with \
                     empty counters would replace it at the first write)"
                ),
            })
        }
    };
    let foreign = || {
        refuse(
            EX_CONFIG,
            format!("is not a policyd state file: {}", looks_like(&bytes)),
        )
    };
    // To `store`, an empty file is a truncated one (a prefix of the magic);
    // it is no state file of ours (see the module docs).
    if bytes.is_empty() {
        return Err(foreign());
    }
    let report = match store::restore(state, &bytes) {
        Ok((restored, report)) => {
            *state = restored;
            report
        }
        Err(StoreError::BadMagic) => return Err(foreign()),
        // Written by another policyd (a newer one, before a downgrade):
        // whole (its length field says so), and still good to the policyd
        // that wrote it. Garbage after the magic is damage.
        Err(StoreError::UnsupportedVersion { found, whole: true }) => {
            return Err(StartError {
                code: EX_CONFIG,
                message: format!(
                    "state file {name} is of format version {found}, which this policyd cannot \
                     read (it reads version {}): written by another policyd version; refusing \
                     to start and leaving it as it is (run the policyd that wrote it, or move \
                     the file away to start with empty counters)",
                    store::STORE_VERSION
                ),
            })
        }
        Err(e) => {
            move_aside(path, &explain(e, &bytes));
            return Ok(());
        }
    };
    let written = report.written_at.as_unix_millis();
    // Rule names are unique in a policy: a restored name is a limit or a
    // greylist of the policy, whichever it has.
    let is_greylist = |name: &str| state.greylists().any(|g| g.name == name);
    let (mut limits, mut keys, mut greylists, mut triplets) = (0, 0, 0, 0);
    for restored in &report.restored {
        if is_greylist(&restored.name) {
            greylists += 1;
            triplets += restored.keys;
        } else {
            limits += 1;
            keys += restored.keys;
        }
    }
    log::notice!(
        "restored state file {name} written {} ({}): limits={limits} keys={keys} \
         greylists={greylists} triplets={triplets} dropped={}",
        utc(written),
        age(written, clock::now().as_unix_millis()),
        report.dropped.len(),
    );
    for restored in &report.restored {
        if is_greylist(&restored.name) {
            log::notice!(
                "greylist {}: state restored triplets={}",
                restored.name,
                restored.keys
            );
        } else {
            log::notice!(
                "limit {}: counters restored keys={}",
                restored.name,
                restored.keys
            );
        }
    }
    // The kind of each dropped entry, from the file: `restore` reports them
    // in file order (a name may be in the file as both kinds).
    let entries = store::decode(&bytes).map(|s| s.entries).unwrap_or_default();
    let mut cursor = 0;
    for dropped in &report.dropped {
        let kind = match entries[cursor.min(entries.len())..]
            .iter()
            .position(|e| e.name == dropped.name)
        {
            Some(i) => {
                cursor += i + 1;
                entries[cursor - 1].kind
            }
            None => TableKind::Limit,
        };
        match (dropped.reason, kind) {
            (DropReason::Changed, TableKind::Greylist) => log::notice!(
                "greylist {}: state in the state file not restored: the rule changed (client, \
                 delay, retry_window, max_age, auto_whitelist or capacity): state reset",
                dropped.name
            ),
            (DropReason::Gone, TableKind::Greylist) => log::notice!(
                "state file entry {}: not restored: no such greylist in the policy",
                dropped.name
            ),
            (DropReason::Changed, _) => log::notice!(
                "limit {}: counters in the state file not restored: {}",
                dropped.name,
                dropped.reason
            ),
            _ => log::notice!(
                "state file entry {}: not restored: {}",
                dropped.name,
                dropped.reason
            ),
        }
    }
    for fresh in &report.fresh {
        if is_greylist(fresh) {
            log::notice!("greylist {fresh}: not in the state file, starts empty");
        } else {
            log::notice!("limit {fresh}: not in the state file, counters start empty");
        }
    }
    Ok(())
}

/// Logs that the state file cannot be used and why, and renames it to
/// `PATH.bad-<unix seconds>` (another suffix if that exists) so that it is
/// kept for inspection and not overwritten by the next write.
fn move_aside(path: &Path, reason: &str) {
    let secs = clock::now().as_unix_millis() / 1000;
    let mut aside = with_suffix(path, &format!(".bad-{secs}"));
    let mut n = 1;
    while fs::symlink_metadata(&aside).is_ok() && n < 100 {
        n += 1;
        aside = with_suffix(path, &format!(".bad-{secs}-{n}"));
    }
    let name = path.display();
    match fs::rename(path, &aside) {
        Ok(()) => log::error!(
            "state file {name} is unusable: {reason}; moved it to {}; starting with empty \
             counters",
            aside.display()
        ),
        Err(e) => log::error!(
            "state file {name} is unusable: {reason}; cannot move it to {}: {}; starting with \
             empty counters (the next write replaces it)",
            aside.display(),
            describe(&e)
        ),
    }
}

/// The exclusive lock on `PATH.lock` ([`lock`]): held while this value
/// lives (the file stays open), released by the kernel when the process
/// ends, however it ends.
#[derive(Debug)]
pub(crate) struct StateLock {
    _file: File,
}

/// At start, before anything else is done with the state file: takes an
/// exclusive, non-blocking `flock` on `PATH.lock` (created mode 0600 if
/// need be) and writes this process's PID in it. Another holder refuses the
/// start ([`EX_TEMPFAIL`], naming its PID when the file has one); a lock
/// file that cannot be created or locked refuses it too ([`EX_CANTCREAT`]).
pub(crate) fn lock(path: &Path) -> Result<StateLock, StartError> {
    let lock_path = with_suffix(path, ".lock");
    let (name, lock_name) = (path.display(), lock_path.display());
    let cannot = |step: &str, e: &io::Error| StartError {
        code: EX_CANTCREAT,
        message: format!(
            "cannot write state file {name}: {step} {lock_name}: {}; refusing to start (the \
             counters could not be saved)",
            describe(e)
        ),
    };
    // Not truncated on open: the PID in it is the holder's until we hold it.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(STATE_FILE_MODE)
        .open(&lock_path)
        .map_err(|e| cannot("creating", &e))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
            // A PID and a newline; a few bytes more are not a PID either.
            let mut text = String::new();
            let holder = match (&file).take(32).read_to_string(&mut text) {
                Ok(_) => text.trim().parse::<u32>().ok(),
                Err(_) => None,
            };
            let who = match holder {
                Some(pid) => format!("another policyd (PID {pid})"),
                None => "another process".to_owned(),
            };
            return Err(StartError {
                code: EX_TEMPFAIL,
                message: format!(
                    "state file {name} is in use: {who} holds its lock {lock_name}; two daemons \
                     must not share a --state-file (give each its own); refusing to start"
                ),
            });
        }
        Err(e) => return Err(cannot("locking", &io::Error::from(e))),
    }
    // Ours now: say who holds it. Only a hint for the message above, so a
    // failure (a full disk) is logged and the start goes on.
    let pid = format!("{}\n", std::process::id());
    if let Err(e) = file
        .set_len(0)
        .and_then(|()| (&file).write_all(pid.as_bytes()))
    {
        log::warning!(
            "state file {name}: cannot write the PID into its lock {lock_name}: {}",
            describe(&e)
        );
    }
    Ok(StateLock { _file: file })
}

/// At start, before the file is read: checks that `PATH.tmp` can be
/// created, so that a state file directory that does not exist or cannot be
/// written refuses the start ([`EX_CANTCREAT`]) instead of an error repeated
/// at every write while the counters are never saved.
pub(crate) fn probe(path: &Path) -> Result<(), StartError> {
    let tmp = with_suffix(path, ".tmp");
    match create_tmp(&tmp) {
        Ok(_) => {
            let _ = fs::remove_file(&tmp);
            Ok(())
        }
        Err(e) => Err(StartError {
            code: EX_CANTCREAT,
            message: format!(
                "cannot write state file {}: creating {}: {}; refusing to start (the \
                 counters could not be saved)",
                path.display(),
                tmp.display(),
                describe(&e)
            ),
        }),
    }
}

fn create_tmp(tmp: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(STATE_FILE_MODE)
        .open(tmp)
}

/// A failed write: which step, on which file, and the system's error.
#[derive(Debug)]
pub(crate) struct WriteError {
    step: &'static str,
    file: PathBuf,
    error: io::Error,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.step,
            self.file.display(),
            describe(&self.error)
        )
    }
}

/// Writes `bytes` to `path` atomically: `PATH.tmp` in the same directory
/// (mode 0600), fsync, rename over `PATH`, fsync of the directory. A reader
/// (or a restart after a crash at any point) sees the old file or the new
/// one, whole. On failure the temporary file is removed.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let tmp = with_suffix(path, ".tmp");
    let fail = |step: &'static str, file: &Path, error: io::Error| WriteError {
        step,
        file: file.to_owned(),
        error,
    };
    let written = create_tmp(&tmp)
        .map_err(|e| fail("creating", &tmp, e))
        .and_then(|mut f| {
            f.write_all(bytes).map_err(|e| fail("writing", &tmp, e))?;
            f.sync_all().map_err(|e| fail("syncing", &tmp, e))
        })
        .and_then(|()| fs::rename(&tmp, path).map_err(|e| fail("renaming over", path, e)));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // The rename is durable once the directory is synced.
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| fail("syncing the directory", dir, e))
}

/// What one write put on disk.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Written {
    /// Limits stored.
    pub(crate) limits: usize,
    /// Their keys.
    pub(crate) keys: usize,
    /// Greylists stored.
    pub(crate) greylists: usize,
    /// Their triplets (expired ones not yet reclaimed included).
    pub(crate) triplets: usize,
    pub(crate) bytes: usize,
    pub(crate) millis: u128,
}

impl std::fmt::Display for Written {
    /// The fields of the `state file PATH written ...` log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "limits={} keys={} greylists={} triplets={} bytes={} millis={}",
            self.limits, self.keys, self.greylists, self.triplets, self.bytes, self.millis
        )
    }
}

/// Encodes the policy in force into `buf` (cleared, capacity kept) and
/// writes it to `path`. `skipped` is set when a limit could not be stored
/// (a name longer than the format holds), to warn once.
fn write_once(
    path: &Path,
    shared: &Shared,
    buf: &mut Vec<u8>,
    skipped: &mut bool,
) -> Result<Written, WriteError> {
    let started = Instant::now();
    buf.clear();
    let (tables, rules, mut written) = {
        // Only the Arc is held while encoding; the engine's lock is not.
        let state = shared.engine.state();
        let tables = store::encode(&state, clock::now(), buf);
        let fits = |name: &str| name.len() <= store::MAX_NAME_BYTES;
        let mut written = Written {
            limits: 0,
            keys: 0,
            greylists: 0,
            triplets: 0,
            bytes: 0,
            millis: 0,
        };
        for limit in state.limits().filter(|l| fits(l.name)) {
            written.limits += 1;
            written.keys += limit.table.len();
        }
        for greylist in state.greylists().filter(|g| fits(g.name)) {
            written.greylists += 1;
            written.triplets += greylist.table.len();
        }
        let rules = state.limits().count() + state.greylists().count();
        (tables, rules, written)
    };
    if tables < rules && !*skipped {
        *skipped = true;
        log::warning!(
            "state file {}: {} rules have names longer than {} bytes and are not saved",
            path.display(),
            rules - tables,
            store::MAX_NAME_BYTES
        );
    }
    write_atomic(path, buf)?;
    written.bytes = buf.len();
    written.millis = started.elapsed().as_millis();
    Ok(written)
}

enum Msg {
    /// Write once more, answer, and end.
    Final(mpsc::Sender<Result<Written, WriteError>>),
}

/// The writer thread; [`Writer::finish`] at a clean stop.
#[derive(Debug)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Msg>,
    path: PathBuf,
}

impl Writer {
    /// Start the thread writing `shared`'s policy state to `path` every
    /// `interval`.
    pub(crate) fn spawn(
        path: PathBuf,
        interval: Duration,
        shared: Arc<Shared>,
    ) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Msg>();
        let thread_path = path.clone();
        thread::Builder::new()
            .name("state-writer".into())
            .stack_size(WRITER_STACK_BYTES)
            .spawn(move || {
                let path = thread_path;
                let mut buf = Vec::new();
                let mut skipped = false;
                let mut failures = 0u64;
                let mut next = Instant::now() + interval;
                loop {
                    match rx.recv_timeout(next.saturating_duration_since(Instant::now())) {
                        Err(RecvTimeoutError::Timeout) => {
                            next = Instant::now() + interval;
                            match write_once(&path, &shared, &mut buf, &mut skipped) {
                                Ok(w) => {
                                    if failures > 0 {
                                        log::notice!(
                                            "state file {} written again after {failures} failed \
                                             attempts",
                                            path.display()
                                        );
                                        failures = 0;
                                    }
                                    log::debug!("state file {} written {w}", path.display());
                                }
                                Err(e) => {
                                    failures += 1;
                                    log::error!(
                                        "cannot write state file {}: {e}; retrying in {} s",
                                        path.display(),
                                        interval.as_secs()
                                    );
                                }
                            }
                        }
                        Ok(Msg::Final(reply)) => {
                            let _ = reply.send(write_once(&path, &shared, &mut buf, &mut skipped));
                            return;
                        }
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            })?;
        Ok(Self { tx, path })
    }

    /// The final write at a clean stop: asks the writer thread (which may be
    /// in the middle of a periodic write: that one finishes first) and waits
    /// up to [`FINAL_WRITE_WAIT`], or until a second stop signal. Logs the
    /// outcome.
    pub(crate) fn finish(self, signals: &mut Signals) {
        let name = self.path.display();
        let (reply_tx, reply_rx) = mpsc::channel();
        if self.tx.send(Msg::Final(reply_tx)).is_err() {
            log::error!("cannot write state file {name} at stop: the writer thread is gone");
            return;
        }
        let deadline = Instant::now() + FINAL_WRITE_WAIT;
        loop {
            match reply_rx.recv_timeout(FINAL_WRITE_POLL) {
                Ok(Ok(w)) => {
                    log::notice!("state file {name} written {w}");
                    return;
                }
                Ok(Err(e)) => {
                    log::error!(
                        "cannot write state file {name} at stop: {e}; counting since its last \
                         successful write is lost"
                    );
                    return;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    log::error!(
                        "cannot write state file {name} at stop: the writer thread ended; \
                         counting since its last successful write is lost"
                    );
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if let Some(signal) = signals.poll_stop() {
                log::warning!(
                    "{signal} received again: exiting without the final write of state file \
                     {name}; the file keeps its last successful write"
                );
                return;
            }
            if Instant::now() >= deadline {
                log::error!(
                    "state file {name}: the final write did not finish within {} s; exiting \
                     anyway; the file keeps the last complete write",
                    FINAL_WRITE_WAIT.as_secs()
                );
                return;
            }
        }
    }
}

/// `2026-11-28 04:35:12 UTC` for Unix milliseconds.
pub(crate) fn utc(millis: u64) -> String {
    let secs = millis / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days, for days since 1970-01-01 (>= 0).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// How long ago `then` was at `now` (both Unix milliseconds), in words.
pub(crate) fn age(then: u64, now: u64) -> String {
    if then > now {
        return format!(
            "{} s in the future: the clock went back",
            (then - now).div_ceil(1000)
        );
    }
    let secs = (now - then) / 1000;
    match secs {
        0..=119 => format!("{secs} s ago"),
        120..=7199 => format!("{} min ago", secs / 60),
        7200..=172_799 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

/// A window's length as the policy language writes it: `1h`, `90s`, `1d`,
/// `2w` (the largest unit that divides it), or milliseconds.
pub(crate) fn window_text(per_ms: u64) -> String {
    const UNITS: [(u64, &str); 5] = [
        (604_800_000, "w"),
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1000, "s"),
    ];
    for (ms, unit) in UNITS {
        if per_ms >= ms && per_ms % ms == 0 {
            return format!("{}{unit}", per_ms / ms);
        }
    }
    format!("{per_ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("policyd-unit-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn utc_dates() {
        let rows = [
            (0, "1970-01-01 00:00:00 UTC"),
            (951_782_400_000, "2000-02-29 00:00:00 UTC"),
            (1_764_300_912_345, "2025-11-28 03:35:12 UTC"),
            (4_102_444_799_000, "2099-12-31 23:59:59 UTC"),
        ];
        for (ms, text) in rows {
            assert_eq!(utc(ms), text, "{ms}");
        }
    }

    #[test]
    fn ages_and_windows() {
        assert_eq!(age(1000, 13_500), "12 s ago");
        assert_eq!(age(0, 600_000), "10 min ago");
        assert_eq!(age(0, 3 * 3_600_000), "3 h ago");
        assert_eq!(age(0, 3 * 86_400_000), "3 days ago");
        assert_eq!(age(5000, 1000), "4 s in the future: the clock went back");
        for (ms, text) in [
            (3_600_000, "1h"),
            (90_000, "90s"),
            (86_400_000, "1d"),
            (1_209_600_000, "2w"),
            (300_000, "5m"),
            (1500, "1500ms"),
        ] {
            assert_eq!(window_text(ms), text);
        }
    }

    #[test]
    fn atomic_write_replaces_the_file_whole() {
        let dir = temp_dir("atomic");
        let path = dir.join("state");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert!(!with_suffix(&path, ".tmp").exists());
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A directory that does not exist: an error naming the step and file.
        let missing = dir.join("nowhere").join("state");
        let e = write_atomic(&missing, b"x").unwrap_err().to_string();
        assert!(
            e.starts_with("creating ") && e.ends_with("state.tmp: no such file or directory"),
            "{e}"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn what_foreign_files_look_like() {
        let mut bdb = vec![0u8; 64];
        bdb[12..16].copy_from_slice(&0x0005_3162u32.to_le_bytes());
        let mut bdb_be = vec![0u8; 64];
        bdb_be[12..16].copy_from_slice(&0x0006_1561u32.to_be_bytes());
        let mut lmdb = vec![0u8; 64];
        lmdb[16..20].copy_from_slice(&0xBEEF_C0DEu32.to_le_bytes());
        let rows: [(&[u8], &str); 9] = [
            (b"", "it is empty (0 bytes)"),
            (
                b"# postgrey whitelist\nexample.com\n",
                r##"it looks like a text file (first line: "# postgrey whitelist")"##,
            ),
            (
                "caf\u{e9} \t x\r\ny".as_bytes(),
                "it looks like a text file (first line: \"caf\u{e9} \\t x\")",
            ),
            (
                &bdb,
                "it starts with bytes 00 00 00 00 00 00 00 00 00 00 00 00 62 31 05 00 and looks \
                 like a Berkeley DB database (postgrey's",
            ),
            (&bdb_be, "like a Berkeley DB database"),
            (b"SQLite format 3\0\x10\0", "like an SQLite database"),
            (&lmdb, "like an LMDB database"),
            (
                b"\x1f\x8b\x08\0",
                "it starts with bytes 1f 8b 08 00 and looks like a gzip",
            ),
            (
                b"\0\x01\x02PDSTATE",
                "it starts with bytes 00 01 02 50 44 53 54 41 54 45 and looks like data of a \
                 format policyd does not know",
            ),
        ];
        for (bytes, expected) in rows {
            let text = looks_like(bytes);
            assert!(text.contains(expected), "{bytes:?}: {text}");
        }
    }

    /// The state of a policy with one limit.
    fn limit_policy() -> State {
        let src = "limit out { key sender count messages max 3 per 1h }\ndefault DUNNO\n";
        let policy = policy_core::Policy::compile("p.conf", src, &mut policy_core::NoFiles)
            .unwrap()
            .policy;
        State::for_policy(&policy)
    }

    /// Only a policyd state file (its magic) that is damaged is moved
    /// aside; anything else refuses the start and is left as it was.
    #[test]
    fn only_damaged_state_files_are_moved_aside() {
        let dir = temp_dir("foreign");
        let interval = Duration::from_secs(60);
        let path = dir.join("state");
        let foreign: [&[u8]; 3] = [b"", b"postgrey\n", b"\0\0\0\0\0\0\0\0\x01"];
        for bytes in foreign {
            fs::write(&path, bytes).unwrap();
            let e = load(&path, &mut limit_policy(), interval).unwrap_err();
            assert_eq!(e.code, EX_CONFIG, "{bytes:?}");
            assert!(
                e.message.starts_with(&format!(
                    "state file {} is not a policyd state file: it ",
                    path.display()
                )),
                "{}",
                e.message
            );
            assert_eq!(fs::read(&path).unwrap(), bytes, "left as it was");
        }
        let e = load(&dir, &mut limit_policy(), interval).unwrap_err();
        assert_eq!(e.code, EX_CONFIG);
        assert!(e.message.contains("is a directory"), "{}", e.message);
        assert!(dir.exists());
        // A regular file that cannot be read (reading this process's memory
        // at address 0 fails with EIO, even for root): refused, exit 66.
        let mem = Path::new("/proc/self/mem");
        let e = load(mem, &mut limit_policy(), interval).unwrap_err();
        assert_eq!(e.code, EX_NOINPUT, "{}", e.message);
        assert!(
            e.message
                .starts_with("cannot read state file /proc/self/mem: "),
            "{}",
            e.message
        );
        // Whole, but of a format version this policyd cannot read (written
        // by a newer one): left as it is, refused.
        let newer = [
            &b"PDSTATE\0"[..],
            &2u32.to_le_bytes(),
            &44u64.to_le_bytes(),
            &[0; 24],
        ]
        .concat();
        fs::write(&path, &newer).unwrap();
        let e = load(&path, &mut limit_policy(), interval).unwrap_err();
        assert_eq!(e.code, EX_CONFIG, "{}", e.message);
        assert!(
            e.message.starts_with(&format!(
                "state file {} is of format version 2, which this policyd cannot read (it \
                 reads version 1)",
                path.display()
            )),
            "{}",
            e.message
        );
        assert_eq!(fs::read(&path).unwrap(), newer, "left as it was");
        // Damaged, and truncated at any length: moved aside (a version
        // field with its length field wrong is damage too).
        let garbled = [
            &b"PDSTATE\0"[..],
            &2u32.to_le_bytes(),
            &45u64.to_le_bytes(),
            &[0; 24],
        ]
        .concat();
        for bytes in [&b"PDSTATE\0 cut off"[..], b"PDST", &garbled] {
            fs::write(&path, bytes).unwrap();
            load(&path, &mut limit_policy(), interval).unwrap();
            assert!(!path.exists(), "{bytes:?} moved aside");
        }
        let _ = fs::remove_dir_all(&dir);
    }

    /// One holder at a time (flock is per open file, so a second lock in
    /// the same process conflicts too); the holder's PID is named.
    #[test]
    fn the_lock_keeps_a_second_daemon_off() {
        let dir = temp_dir("lock");
        let path = dir.join("state");
        let first = lock(&path).unwrap();
        let pid = std::process::id();
        assert_eq!(
            fs::read_to_string(with_suffix(&path, ".lock")).unwrap(),
            format!("{pid}\n")
        );
        let e = lock(&path).unwrap_err();
        assert_eq!(e.code, EX_TEMPFAIL);
        assert_eq!(
            e.message,
            format!(
                "state file {0} is in use: another policyd (PID {pid}) holds its lock {0}.lock; \
                 two daemons must not share a --state-file (give each its own); refusing to \
                 start",
                path.display()
            )
        );
        // The PID of a holder that died is not believed: the lock counts.
        fs::write(with_suffix(&path, ".lock"), "999999999\n").unwrap();
        assert!(lock(&path).unwrap_err().message.contains("PID 999999999"));
        drop(first);
        let again = lock(&path).unwrap();
        assert_eq!(
            fs::read_to_string(with_suffix(&path, ".lock")).unwrap(),
            format!("{pid}\n")
        );
        drop(again);
        let e = lock(&dir.join("nowhere").join("state")).unwrap_err();
        assert_eq!(e.code, EX_CANTCREAT);
        assert!(
            e.message.ends_with(
                "state.lock: no such file or directory; refusing to start (the counters could \
                 not be saved)"
            ),
            "{}",
            e.message
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn reading() {
        let dir = temp_dir("read");
        assert!(matches!(read(&dir.join("none")), Err(ReadError::Missing)));
        assert!(matches!(read(&dir), Err(ReadError::NotAFile(r)) if r.contains("directory")));
        fs::write(dir.join("s"), b"abc").unwrap();
        assert_eq!(read(&dir.join("s")).unwrap(), b"abc");
        let _ = fs::remove_dir_all(&dir);
    }
}
