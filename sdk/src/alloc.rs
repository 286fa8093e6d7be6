//! The node allocator (feature `bump-alloc`, on by default): a bump allocator over linear
//! memory, made for what a node is — a fresh instance per run that lives for milliseconds.
//!
//! Why: Rust's default allocator on wasm32 (dlmalloc) takes every heap byte from
//! `memory.grow`, so each run grows its memory at least once, and the host then changes the
//! protection of the pooled memory slot twice per run (grow now, shrink back before the next
//! instance): two `mprotect` calls and TLB flushes, a large part of a run's cost. This
//! allocator first uses the free part of the initial memory (above `__heap_base`; give the
//! module room with `-C link-arg=--initial-memory=2097152`, as `node new` does) and grows
//! only when that is used up.
//!
//! Freeing reclaims only the most recent allocation (and `realloc` of the most recent one
//! grows in place), which covers the usual build-a-string/vec-then-drop patterns; other
//! frees are kept until the instance ends. A node that churns through more than its memory
//! limit in one run should turn this feature off (`default-features = false, features =
//! ["guest"]`) to get dlmalloc back.

// A global allocator is `unsafe` by nature; each use below says why it holds.
#![allow(unsafe_code)]

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32;
use core::cell::Cell;

unsafe extern "C" {
    /// Where the linker put the start of the heap (after the stack and static data).
    static __heap_base: u8;
}

const PAGE: usize = 65536;

pub struct NodeAllocator {
    /// The first free byte; 0 until the first allocation.
    next: Cell<usize>,
}

// SAFETY: wasm32-unknown-unknown without the atomics feature runs one thread; nothing can
// observe `next` concurrently.
unsafe impl Sync for NodeAllocator {}

impl NodeAllocator {
    pub const fn new() -> NodeAllocator {
        NodeAllocator { next: Cell::new(0) }
    }

    fn top(&self) -> usize {
        match self.next.get() {
            // Only the address of the linker-provided symbol is taken, never its value.
            0 => core::ptr::addr_of!(__heap_base) as usize,
            n => n,
        }
    }

    /// Makes `[.., end)` addressable, growing memory if needed.
    fn ensure(end: usize) -> bool {
        let have = wasm32::memory_size(0) * PAGE;
        if end <= have {
            return true;
        }
        let pages = (end - have).div_ceil(PAGE);
        wasm32::memory_grow(0, pages) != usize::MAX
    }
}

impl Default for NodeAllocator {
    fn default() -> Self {
        NodeAllocator::new()
    }
}

// SAFETY: every block handed out lies in linear memory below the (grown) memory size, is
// aligned as asked, and never overlaps another live block: `next` only moves past a block
// when it is handed out, and moves back only over the most recent block when it is freed.
unsafe impl GlobalAlloc for NodeAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let start = match self.top().checked_next_multiple_of(layout.align()) {
            Some(s) => s,
            None => return core::ptr::null_mut(),
        };
        let Some(end) = start.checked_add(layout.size()) else { return core::ptr::null_mut() };
        if !Self::ensure(end) {
            return core::ptr::null_mut();
        }
        self.next.set(end);
        start as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ptr as usize + layout.size() == self.next.get() {
            self.next.set(ptr as usize);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = ptr as usize;
        if new_size <= layout.size() && p + layout.size() != self.next.get() {
            return ptr;
        }
        if p + layout.size() == self.next.get() {
            let Some(end) = p.checked_add(new_size) else { return core::ptr::null_mut() };
            if !Self::ensure(end) {
                return core::ptr::null_mut();
            }
            self.next.set(end);
            return ptr;
        }
        // SAFETY: forwarded with the caller's guarantees; copies the smaller of the sizes.
        unsafe {
            let new = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
            if !new.is_null() {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            }
            new
        }
    }
}
