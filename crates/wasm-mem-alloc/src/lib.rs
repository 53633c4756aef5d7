//! A real-time `no_std` allocator for WebAssembly (and anything with a flat
//! arena of memory).
//!
//! # Algorithm
//!
//! Every request is served from two-level segregated free lists (TLSF):
//!
//! * Block sizes are multiples of the granule `G` (two words: 8 bytes on
//!   wasm32). Sizes below `64 * G` (512 bytes on wasm32) have one exact free
//!   list per granule: these are the small size classes, and a request for
//!   them is an exact-fit pop from its class.
//! * Larger sizes are split by their highest set bit (the first level) and the
//!   next six bits (64 second-level lists per power of two), so a list holds
//!   blocks whose sizes differ by at most 1/64.
//! * An allocation first looks at the head of the request's own class (a
//!   bounded best-fit step, always a fit for the small classes; `free` keeps
//!   the head the larger of the last two blocks linked); otherwise a
//!   one-word bitmap of non-empty rows plus one 64-bit bitmap per row find
//!   the first non-empty list whose every block fits with two `ctz`s. There
//!   is no loop anywhere in `alloc`, `free` or `realloc`: the work per call
//!   is bounded by a constant, whatever the number of live blocks or the
//!   heap size, apart from the `memory.grow` call itself.
//!
//! A small request whose exact class has a block takes a fast path inlined
//! into the caller (pop the head, write the header); everything else goes
//! through one out-of-line function. Allocation and realloc are one function
//! in the source (`resize`): size-optimized builds keep it one function, so
//! both share the limit test, the block size and the final split; speed
//! builds inline it twice, each copy specialized. Speed builds also inline
//! the merge into `free` and into realloc's move, pop list heads without
//! reading their back link, and free a realloc's tail without a merge check
//! on the used block before it. Size-optimized builds (opt-level "s" or
//! "z", detected by `build.rs`) leave all that out, share one block-splitting
//! function, do every list update (link, unlink, bitmaps) in one `connect`
//! function and compute the size class without a branch: the same
//! algorithm, the same blocks chosen and the same list order
//! (`fast_path_matches_slow_path`, `both_link_shapes_build_the_same_lists`
//! and, over every path, the digest of
//! `size_and_speed_builds_choose_the_same_blocks`, run in both builds, check
//! it), less code.
//!
//! Each block carries one header word (size and two flag bits) in front of its
//! payload; a free block also keeps its list links and a footer with its
//! size, so `free` merges with both neighbours in O(1). The list heads and
//! bitmaps (6.2 KiB on wasm32) live in the allocator value, not in the heap,
//! and nothing is sized for the whole address space. A list's head is the
//! link word of a pseudo-block inside the allocator value, so that linking
//! after a block and setting a head are the same store; the free lists point
//! back into the value, which therefore must not move once it has allocated
//! (a `static`, as `#[global_allocator]` is, never does).
//!
//! # Growth
//!
//! When nothing fits, the allocator asks its [`Backend`] for just enough
//! bytes (whole 64 KiB pages on wasm). Memory that arrives right after the
//! current top is merged with the free block at the top (the old end
//! sentinel becomes part of the new block), so a buffer that grows a page at a
//! time keeps growing in place and strands nothing. `realloc` grows in place
//! when the next block is free or when the block is the last one before the
//! top (then it grows memory and absorbs the new pages). Memory that does not
//! continue the top (someone else called `memory.grow`) starts a new region.
//!
//! # Alignment
//!
//! Payloads are naturally aligned to `G`. Larger alignments (any power of two
//! up to a quarter of the address space, so 64 KiB pages and beyond) take a
//! block of `size + align + 2G`, give the front (the smallest one of at least
//! `2G` bytes that aligns the payload) back to the free lists as its own free
//! block, and trim the tail: still O(1) and nothing is lost.
//!
//! # Guarantees and refusals
//!
//! * Requests that cannot be met (memory exhausted, sizes above half the
//!   address space, alignments above a quarter of it) return null. Nothing
//!   panics: the code has no indexing checks or arithmetic that can trap.
//! * Zero-size requests get a minimum block (a valid, unique pointer).
//! * [`Allocator`] takes a spin lock around every call on targets that can
//!   have threads (native targets and wasm with `target_feature = "atomics"`);
//!   on single-threaded wasm the lock compiles away.
#![no_std]
#![deny(missing_docs)]

#[cfg(test)]
extern crate std;

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::{self, null_mut};

pub mod c_abi;

/// One machine word.
const W: usize = size_of::<usize>();
/// Granule: block sizes are multiples of it and payloads are aligned to it.
const G: usize = 2 * W;
const G_LOG2: u32 = G.trailing_zeros();
/// Smallest block: header, two list links and a footer.
const MIN_BLOCK: usize = 2 * G;
/// A block's address is one word before its header: the word there is the
/// footer of the block before (its size, valid while that block is free), so
/// a block's own footer is the word at the next block's address and every
/// access is at a non-negative constant offset (a wasm load or store offset;
/// a negative one costs an add).
const HEADER: usize = W;
/// Offset of a free block's link to the next block of its list (0 at the end).
const NEXT: usize = 2 * W;
/// Offset of a free block's link to the previous block of its list, or, for
/// the first block, its list's pseudo-block (see [`Heap::tag`]).
const PREV: usize = 3 * W;
/// Offset of the payload: just after the header.
const PAYLOAD: usize = 2 * W;
/// Header flag: this block is free.
const FREE: usize = 1;
/// Header flag: the block just before this one is free (its footer is valid).
const PREV_FREE: usize = 2;
const FLAGS: usize = G - 1;
/// Second-level lists per power of two.
const SL_LOG2: u32 = 6;
const SL: usize = 1 << SL_LOG2;
/// One bit per list of a row.
type RowBits = u64;
/// Rows of `SL` lists: row 0 holds the exact small classes, row `r > 0` the
/// sizes in `[2^(r + G_LOG2 + SL_LOG2 - 1), 2^(r + G_LOG2 + SL_LOG2))`.
/// (32 lists per row measured 1.7 fuel per action less and 0.3 points more
/// heap efficiency than 16; 64 rather than 32 gave finer fits and exact
/// classes up to 512 bytes, for about 3 KiB more list heads on wasm32.)
const ROWS: usize = usize::BITS as usize - G_LOG2 as usize - (SL_LOG2 as usize - 1);
const LISTS: usize = ROWS * SL;
/// Largest request size served; anything larger fails with null.
const MAX_SIZE: usize = usize::MAX / 2;
/// Largest alignment served.
const MAX_ALIGN: usize = usize::MAX / 4 + 1;

/// Where the allocator's memory comes from.
///
/// # Safety
///
/// `grow` must return memory that nothing else uses, starting at an address
/// aligned to two words, with a length that is a multiple of two words and at
/// least `min_bytes`, or `None`. Memory is never given back.
pub unsafe trait Backend {
    /// Returns a fresh region of at least `min_bytes` bytes as (start, length),
    /// or `None` when no more memory is available.
    fn grow(&mut self, min_bytes: usize) -> Option<(*mut u8, usize)>;
}

/// The wasm linear memory (memory index 0), grown with `memory.grow` one
/// 64 KiB page at a time, never more pages than a request needs.
#[cfg(target_family = "wasm")]
#[derive(Debug, Default, Clone, Copy)]
pub struct WasmMemory;

#[cfg(target_family = "wasm")]
unsafe impl Backend for WasmMemory {
    #[inline]
    fn grow(&mut self, min_bytes: usize) -> Option<(*mut u8, usize)> {
        // `min_bytes` is below 3 GiB (the allocator's size limits), no overflow.
        let pages = (min_bytes + 0xffff) >> 16;
        let old = core::arch::wasm32::memory_grow(0, pages);
        if old == usize::MAX {
            return None;
        }
        Some((ptr::with_exposed_provenance_mut(old << 16), pages << 16))
    }
}

/// A fixed arena (a static buffer, a reserved address range on an embedded
/// target, or a leaked `Vec` in tests), handed out front to back in pieces of
/// exactly the size asked for (rounded up to two words).
#[derive(Debug)]
pub struct Arena {
    next: *mut u8,
    left: usize,
}

// SAFETY: the arena owns its range exclusively (a promise of `Arena::new`).
unsafe impl Send for Arena {}

impl Arena {
    /// An arena over `len` bytes at `start`.
    ///
    /// # Safety
    ///
    /// The range must be valid for reads and writes for as long as the
    /// allocator (and any block it returned) is used, and nothing else may
    /// use it.
    pub const unsafe fn new(start: *mut u8, len: usize) -> Self {
        Arena {
            next: start,
            left: len,
        }
    }

    /// An arena over a static buffer.
    pub fn from_static(buffer: &'static mut [core::mem::MaybeUninit<u8>]) -> Self {
        let len = buffer.len();
        // SAFETY: the exclusive 'static borrow gives the arena the buffer.
        unsafe { Arena::new(buffer.as_mut_ptr().cast(), len) }
    }

    /// Bytes not yet handed to the allocator.
    pub fn remaining(&self) -> usize {
        self.left
    }
}

unsafe impl Backend for Arena {
    fn grow(&mut self, min_bytes: usize) -> Option<(*mut u8, usize)> {
        let pad = self.next.align_offset(G);
        let len = min_bytes.checked_add(G - 1)? & !(G - 1);
        if self.left < pad || self.left - pad < len {
            return None;
        }
        let start = self.next.wrapping_add(pad);
        self.next = start.wrapping_add(len);
        self.left -= pad + len;
        Some((start, len))
    }
}

#[inline(always)]
unsafe fn rd(addr: usize) -> usize {
    *ptr::with_exposed_provenance::<usize>(addr)
}

#[inline(always)]
unsafe fn wr(addr: usize, value: usize) {
    *ptr::with_exposed_provenance_mut::<usize>(addr) = value;
}

/// `rd(addr + offset)` as an in-bounds pointer offset, so it compiles to a
/// load with a constant offset (an integer add could wrap; a wasm address
/// offset cannot, so the add would stay an instruction).
#[inline(always)]
unsafe fn rd_at(addr: usize, offset: usize) -> usize {
    *ptr::with_exposed_provenance::<usize>(addr).byte_add(offset)
}

/// `wr(addr + offset, value)`, see [`rd_at`].
#[inline(always)]
unsafe fn wr_at(addr: usize, offset: usize, value: usize) {
    *ptr::with_exposed_provenance_mut::<usize>(addr).byte_add(offset) = value;
}

/// Free-list index of a block of `size` bytes (`size >= MIN_BLOCK`).
/// (Inlined in every build: size-optimized ones keep [`Heap::tag_of`] out
/// of line instead.)
#[inline]
fn class_of(size: usize) -> usize {
    // Row `fl - G_LOG2 - SL_LOG2 + 1` for the highest set bit `fl`, and
    // `size >> (fl - SL_LOG2)` is `SL` plus the second-level index (the
    // implicit top bit stands in for one row, so no mask is needed); written
    // with `leading_zeros` directly, it is one shift, one add and one
    // subtract.
    const TOP: u32 = usize::BITS - 1 - G_LOG2 - SL_LOG2;
    let formula = |lz: u32| {
        (size >> (usize::BITS - 1 - SL_LOG2 - lz)) + ((TOP as usize) << SL_LOG2)
            - ((lz as usize) << SL_LOG2)
    };
    // Below `SL * G` the classes are exact, `size >> G_LOG2`: the formula
    // with `leading_zeros` taken as that of `SL * G` (size-optimized builds:
    // no branch; speed builds test the size, a test `link` shares).
    #[cfg(wasm_mem_alloc_small)]
    return formula(size.leading_zeros().min(TOP));
    #[cfg(not(wasm_mem_alloc_small))]
    if size < SL * G {
        size >> G_LOG2
    } else {
        formula(size.leading_zeros())
    }
}

/// Block size for a payload of `size` bytes (out of line in size-optimized
/// builds: `alloc` and `realloc` share it).
#[cfg_attr(not(wasm_mem_alloc_small), inline(always))]
#[cfg_attr(wasm_mem_alloc_small, inline(never))]
fn block_size(size: usize) -> usize {
    // Size-optimized builds raise the request to the size whose block is
    // `MIN_BLOCK` before rounding, not the rounded size to `MIN_BLOCK` (the
    // same blocks, one local less: 2 bytes of code; speed builds measured
    // 0.4 fuel per action more that way).
    #[cfg(wasm_mem_alloc_small)]
    return (size.max(MIN_BLOCK + 1 - W - G) + W + G - 1) & !(G - 1);
    #[cfg(not(wasm_mem_alloc_small))]
    {
        let s = (size + W + G - 1) & !(G - 1);
        if s < MIN_BLOCK {
            MIN_BLOCK
        } else {
            s
        }
    }
}

/// The end of the block at `block` if it is free, else `block` itself.
#[cfg_attr(not(wasm_mem_alloc_small), inline(always))]
#[cfg_attr(wasm_mem_alloc_small, inline(never))]
unsafe fn end_if_free(block: usize) -> usize {
    let header = rd_at(block, HEADER);
    block + (header & FREE) * (header & !FLAGS)
}

/// The allocator state without a lock: use it directly where the caller
/// already has exclusive access (single-threaded embedded code, one heap per
/// thread), or through [`Allocator`] as a `#[global_allocator]`.
///
/// The free lists point back into the heap value (see [`Heap::tag`]), so it
/// must stay where it is once it has allocated: keep it in a `static`, a
/// `Box` or a local that is not moved.
#[repr(C)]
pub struct Heap<B> {
    rows: usize,
    /// Address of the end sentinel of the newest region (0 before the first).
    top: usize,
    row_bits: [RowBits; ROWS],
    /// After `row_bits`, so that every list's pseudo-block lies in the heap.
    heads: [usize; LISTS],
    backend: B,
}

impl<B: Backend> Heap<B> {
    /// An empty heap that takes memory from `backend` on first use.
    pub const fn new(backend: B) -> Self {
        Heap {
            rows: 0,
            row_bits: [0; ROWS],
            heads: [0; LISTS],
            top: 0,
            backend,
        }
    }

    /// The backend, e.g. to ask an [`Arena`] how much it has left.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The pseudo-block of the list of `size`'s class, `tag(class_of(size))`:
    /// the one function that computes a class in size-optimized builds.
    /// Returning the pseudo-block rather than the class, `link` reads the
    /// head at a small offset from it and needs no second address, and
    /// `take` gets the class back with a subtract and a shift (2 bytes of
    /// code less in all than an out-of-line `class_of`).
    #[cfg(any(test, wasm_mem_alloc_small))]
    #[inline(never)]
    fn tag_of(&self, size: usize) -> usize {
        self.tag(class_of(size))
    }

    /// The class after the one of `need` and the head of `need`'s own class.
    #[inline(always)]
    unsafe fn own_head(&self, need: usize) -> (usize, usize) {
        #[cfg(wasm_mem_alloc_small)]
        {
            let tag = self.tag_of(need);
            // `(tag - self.tag(0)) / W + 1`, with the `+ 1` in the constant.
            let after = tag.wrapping_sub(self.tag(0).wrapping_sub(W)) / W;
            (after, rd_at(tag, NEXT))
        }
        #[cfg(not(wasm_mem_alloc_small))]
        {
            let class = class_of(need);
            (class + 1, *self.heads.get_unchecked(class))
        }
    }

    /// The `PREV` word of the first block of list `class`: the address of a
    /// pseudo-block whose `NEXT` word is the list's head slot, so that
    /// setting a block's successor and setting a list's head are the same
    /// store. Pseudo-blocks lie in the heap value (`heads` follows other
    /// fields), never in a region, so `prev - tag(0) < LISTS * W` tells a
    /// head from a block.
    #[inline(always)]
    fn tag(&self, class: usize) -> usize {
        self.heads
            .as_ptr()
            .wrapping_add(class)
            .expose_provenance()
            .wrapping_sub(NEXT)
    }

    /// Links a free block into the list of its class. A block
    /// no larger than the head goes second, so the head stays the larger of
    /// the two (a bounded step towards best fit: `take` checks only the head
    /// of the request's own class). In the exact classes all blocks are
    /// equal, so a new block always goes second and the head is the oldest
    /// (measured: 86.1% heap efficiency against 82.7% with plain LIFO there).
    #[inline]
    unsafe fn link(&mut self, block: usize, size: usize) {
        #[cfg(wasm_mem_alloc_small)]
        return self.link_shared(block, size);
        #[cfg(not(wasm_mem_alloc_small))]
        self.link_split(block, size);
    }

    /// `link` as two straight paths (speed builds).
    #[cfg_attr(wasm_mem_alloc_small, allow(dead_code))]
    #[inline(always)]
    unsafe fn link_split(&mut self, block: usize, size: usize) {
        let class = class_of(size);
        let first = *self.heads.get_unchecked(class);
        // The head's header is its size with the `FREE` bit, so `>` means
        // "at least as large"; the exact classes skip the load. (Tested on
        // the size rather than the class, the test is the one `class_of`
        // just made, so the compiler folds the two: 3.5 fuel per action
        // less than `class < SL`.)
        if first != 0 && (size < SL * G || rd_at(first, HEADER) > size) {
            let next = rd_at(first, NEXT);
            wr_at(block, NEXT, next);
            wr_at(block, PREV, first);
            wr_at(first, NEXT, block);
            if next != 0 {
                wr_at(next, PREV, block);
            }
            return;
        }
        wr_at(block, NEXT, first);
        wr_at(block, PREV, self.tag(class));
        *self.heads.get_unchecked_mut(class) = block;
        if first != 0 {
            wr_at(first, PREV, block);
        } else {
            // The list was empty: flag it in both bitmap levels.
            *self.row_bits.get_unchecked_mut(class >> SL_LOG2) |= 1 << (class & (SL - 1));
            self.rows |= 1 << (class >> SL_LOG2);
        }
    }

    /// `link` as two `connect`s (size-optimized builds: less code, more
    /// work per call); the same lists as `link_split`
    /// (`both_link_shapes_build_the_same_lists` checks it).
    #[cfg(any(test, wasm_mem_alloc_small))]
    #[inline(always)]
    unsafe fn link_shared(&mut self, block: usize, size: usize) {
        let tag = self.tag_of(size);
        // (`heads[class_of(size)]`.)
        let first = rd_at(tag, NEXT);
        // No shortcut for the exact classes: there the head's header (its
        // size, the same, with the `FREE` bit) is always larger. An empty
        // list compares its pseudo-block's header word instead (the head
        // slot of the class before, or the last word of `row_bits`: in the
        // heap value, so it exists), and either way `prev` is the
        // pseudo-block: two selects, no branch (3 bytes of code less).
        let c = if first != 0 { first } else { tag };
        let prev = if rd_at(c, HEADER) > size { c } else { tag };
        // `block` after `prev`, then `prev`'s old successor after `block`
        // (the same lists either way round: `block` is no list's head).
        let next = self.connect(prev, block);
        self.connect(block, next);
    }

    /// Makes `next` (a block or 0) follow `prev` (a block, or a list's
    /// pseudo-block for its head), flipping the list's bitmap bits
    /// when it turns empty or non-empty, and returns `prev`'s old successor:
    /// the one list update of size-optimized builds (`link_shared` is two
    /// of them, chained through the result; `unlink_shared` one). With a
    /// result, it has the type of `alloc`'s export (one function type less
    /// in the module), and `next`'s back link is written before the
    /// bitmap update so that the result is returned once.
    #[cfg(any(test, wasm_mem_alloc_small))]
    #[inline(never)]
    unsafe fn connect(&mut self, prev: usize, next: usize) -> usize {
        let old = rd_at(prev, NEXT);
        wr_at(prev, NEXT, next);
        if next != 0 {
            wr_at(next, PREV, prev);
        }
        let head = prev.wrapping_sub(self.tag(0));
        if head < LISTS * W {
            // A list turns empty or non-empty when its old or its new head
            // is 0; never both (a head's successor changes only to link a
            // block or to unlink the head). The test is a flip of nothing
            // rather than a branch: 4 bytes of code less.
            debug_assert!(old != 0 || next != 0);
            self.flip(head / W, (old == 0) != (next == 0));
        }
        old
    }

    /// Takes a free block off its list; returns its size (size-optimized
    /// builds: `take` shares the header read).
    #[inline]
    unsafe fn unlink(&mut self, block: usize) -> usize {
        #[cfg(wasm_mem_alloc_small)]
        let block = self.unlink_shared(block);
        #[cfg(not(wasm_mem_alloc_small))]
        self.unlink_split(block);
        rd_at(block, HEADER) & !FLAGS
    }

    /// `unlink` as one `connect` (size-optimized builds); returns `block`
    /// (the successor its predecessor had).
    #[cfg(any(test, wasm_mem_alloc_small))]
    #[inline(always)]
    unsafe fn unlink_shared(&mut self, block: usize) -> usize {
        self.connect(rd_at(block, PREV), rd_at(block, NEXT))
    }

    /// `unlink` with the head case apart (speed builds).
    #[cfg_attr(wasm_mem_alloc_small, allow(dead_code))]
    #[inline(always)]
    unsafe fn unlink_split(&mut self, block: usize) {
        let next = rd_at(block, NEXT);
        let prev = rd_at(block, PREV);
        if next != 0 {
            wr_at(next, PREV, prev);
        }
        // A list's head is the `NEXT` word of its pseudo-block.
        wr_at(prev, NEXT, next);
        if next == 0 {
            let head = prev.wrapping_sub(self.tag(0));
            if head < LISTS * W {
                self.emptied(head / W);
            }
        }
    }

    /// Takes `block`, the head of list `class`, off it: `unlink` without
    /// reading the `prev` word (the caller knows the list).
    #[cfg_attr(wasm_mem_alloc_small, allow(dead_code))]
    #[inline(always)]
    unsafe fn pop(&mut self, class: usize, block: usize) {
        let next = rd_at(block, NEXT);
        *self.heads.get_unchecked_mut(class) = next;
        if next != 0 {
            wr_at(next, PREV, self.tag(class));
        } else {
            self.emptied(class);
        }
    }

    /// Clears the bitmap bits of a class whose list just became empty.
    #[inline]
    unsafe fn emptied(&mut self, class: usize) {
        #[cfg(wasm_mem_alloc_small)]
        return self.flip(class, true);
        #[cfg(not(wasm_mem_alloc_small))]
        {
            let row = class >> SL_LOG2;
            let bits = self.row_bits.get_unchecked_mut(row);
            *bits &= !(1 << (class & (SL - 1)));
            if *bits == 0 {
                self.rows &= !(1 << row);
            }
        }
    }

    /// Flips the bitmap bit of a class whose list just became empty or
    /// non-empty (`turned`), and its row's bit to match (size-optimized
    /// builds: one function for both). Without `turned` it changes nothing,
    /// as long as the list has blocks (its bit keeps the row's bit set),
    /// the one case `connect` calls it so.
    #[cfg(any(test, wasm_mem_alloc_small))]
    #[inline]
    unsafe fn flip(&mut self, class: usize, turned: bool) {
        let row = class >> SL_LOG2;
        let bit = (turned as RowBits) << (class & (SL - 1));
        let bits = self.row_bits.get_unchecked_mut(row);
        let old = *bits;
        let new = old ^ bit;
        *bits = new;
        // The row turns empty or non-empty when no other list of it has
        // blocks: the old bits were empty or the new ones are, so they have
        // no bit in common (reusing `new`: 2 bytes of code less than
        // `old | bit == bit`).
        self.rows ^= ((old & new == 0) as usize) << row;
    }

    /// Writes a free block's header and footer and links it; returns
    /// `block` (`release`'s result: `free_block` then has the type of
    /// `connect`, one function type less in size-optimized builds).
    #[inline]
    unsafe fn free_block(&mut self, block: usize, size: usize) -> usize {
        wr_at(block, HEADER, size | FREE);
        wr(block + size, size);
        self.link(block, size);
        block
    }

    /// Frees the used block at `block` (its header holds its size and
    /// `PREV_FREE` flag), merging it with free neighbours; returns the merged
    /// free block.
    #[cfg_attr(not(wasm_mem_alloc_small), inline(never))]
    unsafe fn release(&mut self, block: usize) -> usize {
        self.release_inline(block)
    }

    /// `release` inlined (into `free` in speed builds).
    #[inline(always)]
    unsafe fn release_inline(&mut self, block: usize) -> usize {
        self.merge_free(block, rd_at(block, HEADER))
    }

    /// Frees the tail of a block that stays used (speed builds: its header
    /// need not be written first and there is no block before to merge).
    #[cfg_attr(wasm_mem_alloc_small, allow(dead_code))]
    #[inline(never)]
    unsafe fn release_tail(&mut self, block: usize, size: usize) {
        self.merge_free(block, size);
    }

    /// The body of `release` for the block at `block` with `header` (which
    /// need not be written yet: `free_block` writes it).
    #[inline(always)]
    unsafe fn merge_free(&mut self, mut block: usize, header: usize) -> usize {
        #[cfg(not(wasm_mem_alloc_small))]
        let end = {
            let mut end = block + (header & !FLAGS);
            let mut next = rd_at(end, HEADER);
            if next & FREE != 0 {
                self.unlink(end);
                end += next & !FLAGS;
                next = rd_at(end, HEADER);
            }
            // Flag the successor (read once when there was nothing to merge).
            wr_at(end, HEADER, next | PREV_FREE);
            end
        };
        // Size-optimized builds merge through `end_if_free` (13 bytes of code
        // less; in speed builds the same form cost 8.7 fuel per free).
        #[cfg(wasm_mem_alloc_small)]
        let end = {
            let next = block + (header & !FLAGS);
            let end = end_if_free(next);
            if end != next {
                self.unlink(next);
            }
            wr_at(end, HEADER, rd_at(end, HEADER) | PREV_FREE);
            end
        };
        if header & PREV_FREE != 0 {
            block -= rd(block);
            self.unlink(block);
        }
        self.free_block(block, end - block)
    }

    /// Marks `block` (holding `have` bytes, taken off the free lists, so its
    /// successor is used and flagged `PREV_FREE`) used with `size` bytes and
    /// frees the rest when it is big enough to be a block; returns the payload.
    #[inline]
    unsafe fn carve(
        &mut self,
        block: usize,
        have: usize,
        size: usize,
        prev_flag: usize,
    ) -> *mut u8 {
        // Size-optimized builds share `trim`, which does the same here (the
        // successor is used, so releasing the rest merges nothing).
        #[cfg(wasm_mem_alloc_small)]
        return self.trim(block, have, size, prev_flag);
        #[cfg(not(wasm_mem_alloc_small))]
        {
            if have - size >= MIN_BLOCK {
                wr_at(block, HEADER, size | prev_flag);
                self.free_block(block + size, have - size);
            } else {
                self.use_whole(block, have, prev_flag);
            }
            ptr::with_exposed_provenance_mut(block + PAYLOAD)
        }
    }

    /// Clears the `PREV_FREE` flag of the block at `block`: the block before
    /// it is used now.
    #[inline(always)]
    unsafe fn unflag(block: usize) {
        wr_at(block, HEADER, rd_at(block, HEADER) & !PREV_FREE);
    }

    /// Marks all of `block` (`have` bytes) used: the rest is too small to be
    /// a block of its own, so the successor no longer follows a free block
    /// (speed builds; size-optimized builds do it inside `trim`).
    #[cfg_attr(wasm_mem_alloc_small, allow(dead_code))]
    #[inline(always)]
    unsafe fn use_whole(&mut self, block: usize, have: usize, prev_flag: usize) {
        wr_at(block, HEADER, have | prev_flag);
        Self::unflag(block + have);
    }

    /// Like `carve`, but the successor may be free or unflagged (realloc):
    /// the rest is released, so it merges with a free successor.
    #[inline]
    unsafe fn trim(&mut self, block: usize, have: usize, size: usize, prev_flag: usize) -> *mut u8 {
        // Size-optimized builds: one header store for both cases, and the
        // successor's `PREV_FREE` flag cleared in both (releasing the rest
        // sets it again on whatever then follows the rest): 4 bytes of code
        // less than `use_whole` in a branch of its own. (The rest starts at
        // `size`, which `keep` is there: 1 byte less than `keep`.)
        #[cfg(wasm_mem_alloc_small)]
        {
            Self::unflag(block + have);
            let keep = if have - size >= MIN_BLOCK { size } else { have };
            wr_at(block, HEADER, keep | prev_flag);
            if keep != have {
                wr_at(block + size, HEADER, have - size);
                self.release(block + size);
            }
        }
        #[cfg(not(wasm_mem_alloc_small))]
        if have - size >= MIN_BLOCK {
            wr_at(block, HEADER, size | prev_flag);
            self.release_tail(block + size, have - size);
        } else {
            self.use_whole(block, have, prev_flag);
        }
        ptr::with_exposed_provenance_mut(block + PAYLOAD)
    }

    /// Asks the backend for memory so that a free block of at least `need`
    /// bytes exists; returns that block (still linked), or 0 when the backend
    /// has no memory or gave memory apart from the top that is too small
    /// (then the new region's tail is the top, so a second call succeeds
    /// unless memory runs out).
    #[inline]
    unsafe fn extend(&mut self, need: usize) -> usize {
        let top = self.top;
        // The sentinel's header is 0 or `PREV_FREE`: with the flag, the word
        // at `top` is the free tail's footer (its size).
        let (flag, tail) = if top != 0 {
            let flag = rd_at(top, HEADER);
            (flag, rd(top) * (flag / PREV_FREE))
        } else {
            (0, 0)
        };
        // Enough to continue the top with `need` bytes, and one granule more
        // so that a region apart from the top always holds one block
        // (`need - tail` is at least `G`). (Instead of a `max` with
        // `MIN_BLOCK + G`: 13 bytes of code less, the same pages, fuel and
        // heap efficiency in the benchmark.) A tail that already holds `need`
        // bytes is one the search missed (not the head of the request's own
        // class, like any block there that is not its head): memory grows
        // then, by `3 * G` bytes (a page on wasm), as for those. (Returning
        // the tail instead cost 7 bytes of code for the same benchmark
        // figures.) (Both sizes are multiples of `G`, so `tail < need` means
        // `tail <= need - G`: written as a branch rather than as
        // `need + 2 * G - tail.min(need - G)`, 3 bytes of code less.)
        let want = if tail < need {
            need + 2 * G - tail
        } else {
            3 * G
        };
        let Some((start, len)) = self.backend.grow(want) else {
            return 0;
        };
        let start = start.expose_provenance();
        // A used block over the new memory, then released: when the memory
        // continues the top, the block starts at the old sentinel (keeping
        // its `PREV_FREE` flag), so it merges with the free tail before it.
        // (`start == G` never happens, so a `top` of 0 never matches; the
        // test subtracts from `start`, 1 byte of code less than adding to
        // `top`, wrapping for a region at address 0.) The
        // sentinel's flag, read above, goes into the header with a select
        // (1 byte of code less than clearing the new memory's first header
        // and reading the flag back from the block).
        let (block, flag) = if start.wrapping_sub(G) == top {
            (top, flag)
        } else {
            (start, 0)
        };
        let end = start + len - G;
        self.top = end;
        wr_at(end, HEADER, 0);
        wr_at(block, HEADER, (end - block) | flag);
        let block = self.release(block);
        // (A free block's header is its size with the `FREE` bit.)
        if rd_at(block, HEADER) < need {
            return 0;
        }
        block
    }

    /// Takes a free block of at least `need` bytes off its list; returns it
    /// with its size, or `None` if there is none.
    #[inline]
    unsafe fn take(&mut self, need: usize) -> Option<(usize, usize)> {
        // Best fit first: the head of the request's own class often holds
        // enough (always in the exact small classes; elsewhere `free` keeps
        // the head the larger of the last two blocks). Otherwise the first
        // non-empty class after it: every block there fits (class numbers
        // run on from one row to the next). (Rounding up by `need / SL`
        // instead, up to twice a class width, skipped a class of blocks that
        // all fit: 1.3 points of heap efficiency lost to allocations failing
        // next to a fitting block.)
        let (class, head) = self.own_head(need);
        // (Read only by speed builds' `pop` when the own head fits.)
        #[cfg_attr(wasm_mem_alloc_small, allow(unused_assignments))]
        let mut list = class - 1;
        let mut block = head;
        // (A free block's header is its size with the `FREE` bit and `need`
        // is a multiple of `G`: no mask needed to compare.)
        if block == 0 || rd_at(block, HEADER) < need {
            // Good fit: the first non-empty class whose every block fits,
            // in this row or else in the first non-empty row above it.
            let mut row = class >> SL_LOG2;
            let mut bits = *self.row_bits.get_unchecked(row) & (RowBits::MAX << (class & (SL - 1)));
            if bits == 0 {
                let rows = self.rows & (usize::MAX << (row + 1));
                if rows == 0 {
                    block = self.extend(need);
                    if block == 0 {
                        // Memory apart from the top, too small: its tail is
                        // the top now, try once more (or out of memory).
                        block = self.extend(need);
                        if block == 0 {
                            return None;
                        }
                    }
                    // Not necessarily the head of its list (size-optimized
                    // builds unlink every block below).
                    #[cfg(not(wasm_mem_alloc_small))]
                    {
                        let have = rd_at(block, HEADER) & !FLAGS;
                        self.unlink(block);
                        return Some((block, have));
                    }
                } else {
                    row = rows.trailing_zeros() as usize;
                    bits = *self.row_bits.get_unchecked(row);
                    // A row's bit in `rows` is set exactly when its lists'
                    // bits are not all clear (`validate` checks it).
                    core::hint::assert_unchecked(bits != 0);
                }
            }
            if bits != 0 {
                list = (row << SL_LOG2) | bits.trailing_zeros() as usize;
                block = *self.heads.get_unchecked(list);
            }
        }
        // Size-optimized builds share `unlink` (the same result for a head).
        #[cfg(wasm_mem_alloc_small)]
        let have = self.unlink(block);
        #[cfg(not(wasm_mem_alloc_small))]
        let have = rd_at(block, HEADER) & !FLAGS;
        #[cfg(not(wasm_mem_alloc_small))]
        self.pop(list, block);
        Some((block, have))
    }

    /// Allocates `size` bytes aligned to `align` (a power of two); null when
    /// out of memory or the request is too large.
    ///
    /// # Safety
    ///
    /// `align` must be a power of two, and the heap must not have moved
    /// since its first allocation.
    #[inline(always)]
    pub unsafe fn alloc(&mut self, size: usize, align: usize) -> *mut u8 {
        #[cfg(not(wasm_mem_alloc_small))]
        if let Some(ptr) = self.alloc_exact(size, align) {
            return ptr;
        }
        self.alloc_slow(size, align)
    }

    /// The fast path (inlined into the caller in speed builds): a small size
    /// whose exact class has a block. It takes the very block `alloc_slow`
    /// would take and leaves the same state (`fast_path_matches_slow_path`
    /// checks it); size-optimized builds (opt-level "s" or "z", see
    /// `build.rs`) leave it out.
    #[cfg_attr(not(wasm_mem_alloc_small), inline(always))]
    #[cfg_attr(wasm_mem_alloc_small, allow(dead_code))]
    unsafe fn alloc_exact(&mut self, size: usize, align: usize) -> Option<*mut u8> {
        // `size < SL * G - W` keeps the block size at most `SL * G`, whose
        // class (the first of row 1, `G` wide) is exact too, so the class is
        // `size / G` and its head fits exactly.
        if size < SL * G - W && align <= G {
            let size = block_size(size);
            let class = size >> G_LOG2;
            let block = *self.heads.get_unchecked(class);
            if block != 0 {
                self.pop(class, block);
                // Exact fit: a free block's predecessor is never free.
                wr_at(block, HEADER, size);
                Self::unflag(block + size);
                return Some(ptr::with_exposed_provenance_mut(block + PAYLOAD));
            }
        }
        None
    }

    /// Everything but the fast path: the fit search, growth and alignment
    /// (speed builds: `resize` specialized for a new block, out of line).
    #[cfg_attr(not(wasm_mem_alloc_small), inline(never))]
    #[cfg_attr(wasm_mem_alloc_small, inline(always))]
    unsafe fn alloc_slow(&mut self, size: usize, align: usize) -> *mut u8 {
        self.resize(null_mut(), 0, align, size)
    }

    /// Frees a block returned by this heap.
    ///
    /// # Safety
    ///
    /// `ptr` must come from this heap and not be freed yet; the heap must
    /// not have moved since its first allocation.
    #[inline(always)]
    pub unsafe fn free(&mut self, ptr: *mut u8) {
        #[cfg(not(wasm_mem_alloc_small))]
        self.release_inline(ptr.expose_provenance() - PAYLOAD);
        #[cfg(wasm_mem_alloc_small)]
        self.release(ptr.expose_provenance() - PAYLOAD);
    }

    /// Resizes the block at `ptr` (allocated with `layout`, or with a size up
    /// to its [`usable_size`](Self::usable_size)) to `new_size` bytes, in
    /// place when the next block is free or the block is the last one before
    /// the top of memory; otherwise moves it (keeping the alignment and
    /// copying `layout.size()` bytes at most). Null (and the old block
    /// intact) when out of memory.
    ///
    /// # Safety
    ///
    /// `ptr` must be a live block of this heap, allocated with `layout`'s
    /// alignment and a size of at least `layout.size()`; the heap must not
    /// have moved since its first allocation.
    #[inline]
    pub unsafe fn realloc(&mut self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // (Speed builds inline `resize` here, specialized for a live block.)
        core::hint::assert_unchecked(!ptr.is_null());
        self.resize(ptr, layout.size(), layout.align(), new_size)
    }

    /// Allocation (`ptr` null) and realloc in one function, so that they
    /// share the limit test, the block size and the final split: a block of
    /// `new_size` bytes aligned to `align`, for a new block or for the live
    /// block at `ptr`, whose first `old_size` bytes a move keeps.
    /// (Size-optimized builds keep it one function; speed builds inline it
    /// into `alloc_slow` and `realloc`, each specialized.)
    #[cfg_attr(not(wasm_mem_alloc_small), inline(always))]
    #[cfg_attr(wasm_mem_alloc_small, inline(never))]
    unsafe fn resize(
        &mut self,
        ptr: *mut u8,
        old_size: usize,
        align: usize,
        new_size: usize,
    ) -> *mut u8 {
        // `align > MAX_ALIGN` (a power of two) is its top bit, the bit that
        // makes `new_size` larger than `MAX_SIZE`: one test for both.
        const _: () = assert!(MAX_ALIGN * 2 == MAX_SIZE + 1);
        if new_size | align > MAX_SIZE {
            return null_mut();
        }
        let size = block_size(new_size);
        let mut block;
        let mut have;
        let mut prev_flag = 0;
        if ptr.is_null() {
            let big = align > G;
            let Some(taken) = self.take(size + big as usize * (align + MIN_BLOCK)) else {
                return null_mut();
            };
            (block, have) = taken;
            // A large alignment always cuts a front off (of `align` bytes
            // when the block happens to be aligned already: one test less,
            // and the front goes back to the free lists).
            if big {
                // The smallest gap of at least `MIN_BLOCK` that aligns the
                // payload.
                let gap =
                    (0usize.wrapping_sub(block + PAYLOAD + MIN_BLOCK) & (align - 1)) + MIN_BLOCK;
                // The front goes back to the free lists; the aligned block's
                // header (written below) carries the `PREV_FREE` flag.
                self.free_block(block, gap);
                block += gap;
                have -= gap;
                prev_flag = PREV_FREE;
            }
        } else {
            block = ptr.expose_provenance() - PAYLOAD;
            let header = rd_at(block, HEADER);
            have = header & !FLAGS;
            prev_flag = header & PREV_FREE;
            if size > have {
                // Growing: `block_size(old_size) <= have < size`, so
                // `old_size < new_size` and the contents to keep are
                // `old_size` bytes.
                let next = block + have;
                if end_if_free(next) == self.top {
                    // Last block before the top (or before the free tail):
                    // grow memory, the new pages merge into the tail. (A
                    // used last block after this one is left to the move's
                    // `alloc`: 11 bytes of code less for 1.1 fuel per action
                    // more.)
                    self.extend(size - have);
                }
                let avail = end_if_free(next) - block;
                if avail < size {
                    // No room in place: move. (Sliding down into a free
                    // block before, when that made room, saved 0.1 fuel per
                    // action for 78 bytes of code.)
                    let moved = self.alloc(new_size, align);
                    if !moved.is_null() {
                        ptr::copy_nonoverlapping(ptr, moved, old_size);
                        self.free(ptr);
                    }
                    return moved;
                }
                // `avail >= size > have`: the next block is free; absorb it.
                // Its successor is used and flagged, as `carve` needs.
                self.unlink(next);
                have = avail;
            } else {
                // Shrinking: the successor may be free; `trim` merges the
                // rest with it (size-optimized builds: `carve` is `trim`).
                #[cfg(not(wasm_mem_alloc_small))]
                return self.trim(block, have, size, prev_flag);
            }
        }
        self.carve(block, have, size, prev_flag)
    }

    /// Usable bytes of the live block at `ptr` (at least what was asked for).
    ///
    /// # Safety
    ///
    /// `ptr` must be a live block of this heap.
    pub unsafe fn usable_size(&self, ptr: *mut u8) -> usize {
        (rd(ptr.expose_provenance() - W) & !FLAGS) - W
    }
}

#[cfg(any(target_feature = "atomics", not(target_family = "wasm")))]
type Lock = core::sync::atomic::AtomicBool;

/// A [`Heap`] behind a lock, for `#[global_allocator]` (like a `Heap`, it
/// must not move once it has allocated; a `static` never does).
///
/// On targets that can run threads (native, or wasm with shared memory and
/// `target_feature = "atomics"`) every call takes a spin lock; on
/// single-threaded wasm there is no lock at all.
///
/// ```text
/// #[global_allocator]
/// static ALLOC: wasm_mem_alloc::WasmAllocator = wasm_mem_alloc::WasmAllocator::wasm();
/// ```
pub struct Allocator<B> {
    #[cfg(any(target_feature = "atomics", not(target_family = "wasm")))]
    lock: Lock,
    heap: UnsafeCell<Heap<B>>,
}

/// The allocator over the wasm linear memory.
#[cfg(target_family = "wasm")]
pub type WasmAllocator = Allocator<WasmMemory>;

#[cfg(target_family = "wasm")]
impl Allocator<WasmMemory> {
    /// The allocator over the module's memory 0.
    pub const fn wasm() -> Self {
        Allocator::new(WasmMemory)
    }
}

// SAFETY: every access to the heap goes through `with`, which holds the lock
// where threads exist; the backend is sent along with the heap.
#[cfg(any(target_feature = "atomics", not(target_family = "wasm")))]
unsafe impl<B: Send> Sync for Allocator<B> {}

// SAFETY: wasm without the atomics feature has no threads.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
unsafe impl<B> Sync for Allocator<B> {}

impl<B: Backend> Allocator<B> {
    /// An allocator taking memory from `backend`.
    pub const fn new(backend: B) -> Self {
        Allocator {
            #[cfg(any(target_feature = "atomics", not(target_family = "wasm")))]
            lock: Lock::new(false),
            heap: UnsafeCell::new(Heap::new(backend)),
        }
    }

    /// Runs `f` with exclusive access to the heap (under the spin lock).
    #[cfg(any(target_feature = "atomics", not(target_family = "wasm")))]
    #[inline(always)]
    pub fn with<R>(&self, f: impl FnOnce(&mut Heap<B>) -> R) -> R {
        use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
        while self
            .lock
            .compare_exchange_weak(false, true, Acquire, Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        // SAFETY: the lock is held until the store below.
        let result = f(unsafe { &mut *self.heap.get() });
        self.lock.store(false, Release);
        result
    }

    /// Runs `f` with exclusive access to the heap (single-threaded wasm: no lock).
    #[cfg(not(any(target_feature = "atomics", not(target_family = "wasm"))))]
    #[inline(always)]
    pub fn with<R>(&self, f: impl FnOnce(&mut Heap<B>) -> R) -> R {
        // SAFETY: no threads, and heap calls never re-enter `with`.
        f(unsafe { &mut *self.heap.get() })
    }
}

unsafe impl<B: Backend> GlobalAlloc for Allocator<B> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.with(|heap| heap.alloc(layout.size(), layout.align()))
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        self.with(|heap| heap.free(ptr))
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.with(|heap| heap.realloc(ptr, layout, new_size))
    }
}

#[cfg(test)]
mod tests;
