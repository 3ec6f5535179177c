//! Helpers shared by the modules of this test binary: the tests' times, a
//! policy compiled from source, a decision's rule and wire answer, the folder
//! of the data files, and the counting global allocator.
#![allow(unsafe_code)] // the counting global allocator below; the library stays unsafe-free

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use policy_core::{Compiled, Decision, Engine, NoFiles, Policy, Timestamp};

// ---------------------------------------------------------------------------
// Times.

/// The time of tests that need one time and no other (2023-11-14T22:13:20Z).
pub(crate) const NOW: Timestamp = Timestamp::from_unix_millis(1_700_000_000_000);

/// 2023-11-15T00:00:00Z in Unix milliseconds: a UTC midnight, so a multiple
/// of the bucket width of every window the tests use. Simulated clocks start
/// here (see [`at`]).
pub(crate) const MIDNIGHT_MS: u64 = 1_700_006_400_000;

/// The time `offset_ms` milliseconds after [`MIDNIGHT_MS`].
pub(crate) const fn at(offset_ms: u64) -> Timestamp {
    Timestamp::from_unix_millis(MIDNIGHT_MS + offset_ms)
}

// ---------------------------------------------------------------------------
// Policies and decisions.

/// The policy `src` compiled (no files), with its warnings; panics, showing
/// the source and the errors, if it does not compile.
pub(crate) fn compiled(src: &str) -> Compiled {
    match Policy::compile("policy.conf", src, &mut NoFiles) {
        Ok(c) => c,
        Err(e) => panic!("does not compile:\n{src}\n{e}"),
    }
}

/// The policy `src` (which must compile, see [`compiled`]).
pub(crate) fn compile(src: &str) -> Policy {
    compiled(src).policy
}

/// An engine deciding with the policy `src` (which must compile), its state
/// empty.
pub(crate) fn engine(src: &str) -> Engine {
    Engine::new(compile(src))
}

/// Each policy of `rows` fails to compile (as `policy.conf`), its error
/// text starting with the row's expected text.
pub(crate) fn assert_errors_start_with(rows: &[(&str, &str)]) {
    for (src, expected) in rows {
        let errors = Policy::compile("policy.conf", src, &mut NoFiles).expect_err(src);
        let text = errors.to_string();
        assert!(text.starts_with(expected), "{src}\n{text}");
    }
}

/// The warnings of the policy `src` (which must compile), as text.
pub(crate) fn warnings_of(src: &str) -> Vec<String> {
    compiled(src)
        .warnings
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// The deciding rule, the wire answer and the dry-run hits (rule, wire) of
/// `decision`, as text.
pub(crate) fn outcome_of(decision: &Decision<'_>) -> (String, String, Vec<(String, String)>) {
    let hits = decision
        .dry_run
        .iter()
        .map(|h| {
            (
                h.rule.to_owned(),
                String::from_utf8_lossy(h.wire).into_owned(),
            )
        })
        .collect();
    (
        decision.rule.to_owned(),
        String::from_utf8_lossy(decision.wire()).into_owned(),
        hits,
    )
}

/// The deciding rule and the wire answer of `decision` (which must be UTF-8).
pub(crate) fn rule_and_wire(decision: &Decision<'_>) -> (String, String) {
    (
        decision.rule.to_owned(),
        String::from_utf8(decision.wire().to_vec()).expect("UTF-8 wire"),
    )
}

// ---------------------------------------------------------------------------
// Data files.

/// `policy-core/tests/`, the folder of the data the tests read (`scenarios/`,
/// `vectors/`, `greylist/`).
pub(crate) fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

// ---------------------------------------------------------------------------
// Counting allocator (only the thread that switched counting on is counted):
// the allocator of the whole test binary, used by the zero-allocation tests
// of `lists` and `greylist_compat`.

static HEAP_OPERATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // `const` initialisation: reading it never allocates, so the allocator may consult it.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn counting() -> bool {
    COUNTING.try_with(Cell::get).unwrap_or(false)
}

struct CountingAllocator;

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged; counting only touches an atomic and a const thread-local.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
            HEAP_OPERATIONS.fetch_add(1, Ordering::Relaxed);
        }
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if counting() {
            HEAP_OPERATIONS.fetch_add(1, Ordering::Relaxed);
        }
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counting() {
            HEAP_OPERATIONS.fetch_add(1, Ordering::Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if counting() {
            HEAP_OPERATIONS.fetch_add(1, Ordering::Relaxed);
        }
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Heap operations (allocations, reallocations, deallocations) this thread
/// performed while `f` ran. Other threads are not counted, so tests running in
/// parallel do not disturb it.
pub(crate) fn heap_operations(f: impl FnOnce()) -> u64 {
    let before = HEAP_OPERATIONS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    HEAP_OPERATIONS.load(Ordering::Relaxed) - before
}
