//! Helpers shared by the modules of this test binary.
#![allow(unsafe_code)] // the counting global allocator below; the library stays unsafe-free

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

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
