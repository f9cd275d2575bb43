//! The one counting allocator of the workspace's tests and benchmarks: it hands every call to
//! the system allocator unchanged and counts allocations and live heap bytes on the way.
//!
//! Included with `#[path]` by the targets that install it as their global allocator
//! (`tests/alloc.rs`, `tests/alloc_async.rs`, `benches/parse.rs`, `benches/idle_memory.rs`). It is the only unsafe
//! code in the workspace: `GlobalAlloc` can only be implemented with it.

#![allow(unsafe_code)]
// Each target reads the counter it needs.
#![allow(dead_code)]

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::atomic::{AtomicIsize, AtomicU64, Ordering},
};

/// Allocations and reallocations since the process started.
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
/// Heap bytes allocated and not yet freed.
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

/// Allocations (reallocations included) since the process started.
pub(crate) fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Heap bytes allocated and not yet freed.
pub(crate) fn live_bytes() -> isize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// The system allocator, counted. Install with
/// `#[global_allocator] static GLOBAL: Counting = Counting;`.
pub(crate) struct Counting;

fn counted(grow: isize) {
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    LIVE_BYTES.fetch_add(grow, Ordering::Relaxed);
}

// SAFETY: every method passes its arguments on unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the counters touch no memory the allocator hands out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        counted(layout.size() as isize);
        // SAFETY: the caller's obligations for `alloc` are those of `System.alloc`.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        counted(layout.size() as isize);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        counted(new_size as isize - layout.size() as isize);
        // SAFETY: `ptr` came from this allocator, which is `System`, with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from this allocator, which is `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}
