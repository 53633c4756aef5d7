//! A real-time `no_std` allocator for WebAssembly (and anything with a flat
//! arena of memory).
//!
//! # Algorithm
//!
//! Every request is served from two-level segregated free lists (TLSF):
//!
//! * Block sizes are multiples of the granule `G` (two words: 8 bytes on
//!   wasm32). Sizes below `32 * G` (256 bytes on wasm32) have one exact free
//!   list per granule: these are the small size classes, and a request for
//!   them is an exact-fit pop from its class.
//! * Larger sizes are split by their highest set bit (the first level) and the
//!   next five bits (32 second-level lists per power of two), so a list holds
//!   blocks whose sizes differ by at most 1/32.
//! * An allocation first looks at the head of the request's own class (a
//!   bounded best-fit step, always a fit for the small classes); otherwise a
//!   one-word bitmap of non-empty rows plus one 32-bit bitmap per row find
//!   the first non-empty list above it with two `ctz`s. There is no
//!   loop anywhere in `alloc`, `free` or `realloc`: the work per call is
//!   bounded by a constant, whatever the number of live blocks or the heap
//!   size, apart from the `memory.grow` call itself.
//!
//! A small request whose exact class has a block takes a fast path inlined
//! into the caller (pop the head, write the header); everything else goes
//! through one out-of-line function.
//!
//! Each block carries one header word (size and two flag bits) in front of its
//! payload; a free block also keeps its list links and a footer with its
//! size, so `free` merges with both neighbours in O(1). The list heads and
//! bitmaps (3.2 KiB on wasm32) live in the allocator value, not in the heap,
//! and nothing is sized for the whole address space.
//!
//! # Growth
//!
//! When nothing fits, the allocator asks its [`Backend`] for just enough
//! bytes (whole 64 KiB pages on wasm). Memory that arrives right after the
//! current top is merged with the free block at the top (the old end
//! sentinel becomes part of the new block), so a buffer that grows a page at a
//! time keeps growing in place and strands nothing. `realloc` grows in place
//! when the next block is free (or slides down into a free block before it) or when the block is the last one before the
//! top (then it grows memory and absorbs the new pages). Memory that does not
//! continue the top (someone else called `memory.grow`) starts a new region.
//!
//! # Alignment
//!
//! Payloads are naturally aligned to `G`. Larger alignments (any power of two
//! up to a quarter of the address space, so 64 KiB pages and beyond) take a
//! block of `size + align + 2G`, give the unaligned front back to the free
//! lists as its own free block, and trim the tail: still O(1) and nothing is
//! lost.
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
/// Header flag: this block is free.
const FREE: usize = 1;
/// Header flag: the block just before this one is free (its footer is valid).
const PREV_FREE: usize = 2;
const FLAGS: usize = G - 1;
/// Second-level lists per power of two.
const SL_LOG2: u32 = 5;
const SL: usize = 1 << SL_LOG2;
/// Rows of `SL` lists: row 0 holds the exact small classes, row `r > 0` the
/// sizes in `[2^(r + G_LOG2 + SL_LOG2 - 1), 2^(r + G_LOG2 + SL_LOG2))`.
/// (32 lists per row measured 1.7 fuel per action less and 0.3 points more
/// heap efficiency than 16, for about 1.5 KiB more list heads on wasm32.)
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

/// Free-list index of a block of `size` bytes (`size >= MIN_BLOCK`).
#[inline]
fn class_of(size: usize) -> usize {
    if size < SL * G {
        size >> G_LOG2
    } else {
        let fl = usize::BITS - 1 - size.leading_zeros();
        (((fl - G_LOG2 - (SL_LOG2 - 1)) as usize) << SL_LOG2)
            | ((size >> (fl - SL_LOG2)) & (SL - 1))
    }
}

/// A class whose every block holds `size` bytes (`size` a multiple of `G`):
/// adding `size / SL - 1` reaches the next class boundary (the class width is
/// at most `size / SL`) without leaving the exact small classes.
#[inline(always)]
fn search_class(size: usize) -> usize {
    class_of(size + (size >> SL_LOG2) - 1)
}

/// Block size for a payload of `size` bytes.
#[inline(always)]
fn block_size(size: usize) -> usize {
    let s = (size + W + G - 1) & !(G - 1);
    if s < MIN_BLOCK {
        MIN_BLOCK
    } else {
        s
    }
}

/// The allocator state without a lock: use it directly where the caller
/// already has exclusive access (single-threaded embedded code, one heap per
/// thread), or through [`Allocator`] as a `#[global_allocator]`.
pub struct Heap<B> {
    rows: usize,
    row_bits: [u32; ROWS],
    heads: [usize; LISTS],
    /// Address of the end sentinel of the newest region (0 before the first).
    top: usize,
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

    #[inline]
    unsafe fn link(&mut self, block: usize, size: usize) {
        let class = class_of(size);
        let head = self.heads.get_unchecked_mut(class);
        let first = *head;
        wr(block + W, first);
        // The first block's `prev` is its class tagged with the low bit
        // (block addresses are even), so nothing points into the heap value
        // and it may move.
        wr(block + 2 * W, class << 1 | 1);
        *head = block;
        if first != 0 {
            wr(first + 2 * W, block);
        } else {
            // The list was empty: flag it in both bitmap levels.
            *self.row_bits.get_unchecked_mut(class >> SL_LOG2) |= 1 << (class & (SL - 1));
            self.rows |= 1 << (class >> SL_LOG2);
        }
    }

    #[inline]
    unsafe fn unlink(&mut self, block: usize) {
        let next = rd(block + W);
        let prev = rd(block + 2 * W);
        if next != 0 {
            wr(next + 2 * W, prev);
        }
        if prev & 1 == 0 {
            wr(prev + W, next);
        } else {
            let class = prev >> 1;
            *self.heads.get_unchecked_mut(class) = next;
            if next == 0 {
                self.emptied(class);
            }
        }
    }

    /// Clears the bitmap bits of a class whose list just became empty.
    #[inline]
    unsafe fn emptied(&mut self, class: usize) {
        let row = class >> SL_LOG2;
        let bits = self.row_bits.get_unchecked_mut(row);
        *bits &= !(1 << (class & (SL - 1)));
        if *bits == 0 {
            self.rows &= !(1 << row);
        }
    }

    /// Writes a free block's header and footer and links it.
    #[inline]
    unsafe fn free_block(&mut self, block: usize, size: usize) {
        wr(block, size | FREE);
        wr(block + size - W, size);
        self.link(block, size);
    }

    /// Like `free_block`, and flags the successor.
    #[inline]
    unsafe fn put_free(&mut self, block: usize, size: usize) {
        wr(block + size, rd(block + size) | PREV_FREE);
        self.free_block(block, size);
    }

    /// Frees the used block at `block`, merging it with free neighbours.
    unsafe fn release(&mut self, mut block: usize) {
        let header = rd(block);
        let mut end = block + (header & !FLAGS);
        let mut next = rd(end);
        if next & FREE != 0 {
            self.unlink(end);
            end += next & !FLAGS;
            next = rd(end);
        }
        // Flag the successor (read once when there was nothing to merge).
        wr(end, next | PREV_FREE);
        if header & PREV_FREE != 0 {
            block -= rd(block - W);
            self.unlink(block);
        }
        self.free_block(block, end - block);
    }

    /// Marks `block` (holding `have` bytes, taken off the free lists, so its
    /// successor is used and flagged `PREV_FREE`) used with `size` bytes and
    /// frees the rest when it is big enough to be a block.
    #[inline]
    unsafe fn carve(&mut self, block: usize, have: usize, size: usize, prev_flag: usize) {
        if have - size >= MIN_BLOCK {
            wr(block, size | prev_flag);
            self.free_block(block + size, have - size);
        } else {
            wr(block, have | prev_flag);
            wr(block + have, rd(block + have) & !PREV_FREE);
        }
    }

    /// Asks the backend for memory so that a free block of at least `need`
    /// bytes exists; returns that block (still linked) or 0.
    #[inline]
    unsafe fn extend(&mut self, need: usize) -> usize {
        let top = self.top;
        let tail = if top != 0 && rd(top) & PREV_FREE != 0 {
            rd(top - W)
        } else {
            0
        };
        if tail >= need {
            return top - tail;
        }
        // Enough to continue the top with `need` bytes, and never so little
        // that a region apart from the top could not hold one block.
        let want = (need + G - tail).max(MIN_BLOCK + G);
        let Some((start, len)) = self.backend.grow(want) else {
            return 0;
        };
        let start = start.expose_provenance();
        let (mut block, mut size) = (start + W, len - G);
        if top != 0 && start == top + W {
            // The new memory continues the top: the old sentinel and the free
            // tail before it join the new block.
            block = top;
            size = len;
            if tail != 0 {
                block -= tail;
                self.unlink(block);
                size += tail;
            }
        }
        self.top = block + size;
        wr(self.top, 0);
        self.put_free(block, size);
        block
    }

    /// Takes a free block of at least `need` bytes off its list; 0 if none.
    #[inline]
    unsafe fn take(&mut self, need: usize) -> usize {
        // Best fit first: the head of the request's own class often holds
        // enough (always for the exact small classes).
        let mut block = *self.heads.get_unchecked(class_of(need));
        if block == 0 || rd(block) < need {
            // Good fit: the first non-empty class whose every block fits.
            let class = search_class(need);
            let row = class >> SL_LOG2;
            let bits = *self.row_bits.get_unchecked(row) & (u32::MAX << (class & (SL - 1)));
            let rows = self.rows & (usize::MAX << (row + 1));
            block = if bits != 0 {
                *self
                    .heads
                    .get_unchecked((row << SL_LOG2) | bits.trailing_zeros() as usize)
            } else if rows != 0 {
                let row = rows.trailing_zeros() as usize;
                *self.heads.get_unchecked(
                    (row << SL_LOG2) | self.row_bits.get_unchecked(row).trailing_zeros() as usize,
                )
            } else {
                self.extend(need)
            };
            if block != 0 && rd(block) < need {
                // The backend returned memory apart from the top; the new
                // region's tail is now the top, try once more.
                block = self.extend(need);
            }
            if block == 0 || rd(block) < need {
                return 0;
            }
        }
        self.unlink(block);
        block
    }

    /// Allocates `size` bytes aligned to `align` (a power of two); null when
    /// out of memory or the request is too large.
    ///
    /// # Safety
    ///
    /// `align` must be a power of two.
    #[inline(always)]
    pub unsafe fn alloc(&mut self, size: usize, align: usize) -> *mut u8 {
        // Fast path, inlined into the caller: a small size whose exact class
        // has a block. `size < SL * G - W` keeps the block size at most
        // `SL * G`, whose class (the first of row 1, `G` wide) is exact too,
        // so the class is `size / G` and its head fits exactly.
        if size < SL * G - W && align <= G {
            let size = block_size(size);
            let class = size >> G_LOG2;
            let block = *self.heads.get_unchecked(class);
            if block != 0 {
                let next = rd(block + W);
                *self.heads.get_unchecked_mut(class) = next;
                if next != 0 {
                    wr(next + 2 * W, class << 1 | 1);
                } else {
                    self.emptied(class);
                }
                // Exact fit: a free block's predecessor is never free.
                wr(block, size);
                wr(block + size, rd(block + size) & !PREV_FREE);
                return ptr::with_exposed_provenance_mut(block + W);
            }
        }
        self.alloc_slow(size, align)
    }

    /// Everything but the fast path: the fit search, growth and alignment.
    #[inline(never)]
    unsafe fn alloc_slow(&mut self, size: usize, align: usize) -> *mut u8 {
        if size > MAX_SIZE || align > MAX_ALIGN {
            return null_mut();
        }
        let size = block_size(size);
        let big = align > G;
        let block = self.take(if big { size + align + MIN_BLOCK } else { size });
        if block == 0 {
            return null_mut();
        }
        let mut block = block;
        let mut have = rd(block) & !FLAGS;
        let mut prev_flag = 0;
        if big && (block + W) & (align - 1) != 0 {
            let gap = ((block + W + MIN_BLOCK + align - 1) & !(align - 1)) - (block + W);
            self.put_free(block, gap);
            block += gap;
            have -= gap;
            prev_flag = PREV_FREE;
        }
        self.carve(block, have, size, prev_flag);
        ptr::with_exposed_provenance_mut(block + W)
    }

    /// Frees a block returned by this heap.
    ///
    /// # Safety
    ///
    /// `ptr` must come from this heap and not be freed yet.
    pub unsafe fn free(&mut self, ptr: *mut u8) {
        self.release(ptr.expose_provenance() - W);
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
    /// alignment and a size of at least `layout.size()`.
    pub unsafe fn realloc(&mut self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > MAX_SIZE {
            return null_mut();
        }
        let size = block_size(new_size);
        let block = ptr.expose_provenance() - W;
        let header = rd(block);
        let have = header & !FLAGS;
        if size > have {
            let next = block + have;
            let mut next_header = rd(next);
            let mut avail = have + (next_header & FREE) * (next_header & !FLAGS);
            if avail < size && (next == self.top || next + (next_header & !FLAGS) == self.top) {
                self.extend(size - have);
                next_header = rd(next);
                avail = have + (next_header & FREE) * (next_header & !FLAGS);
            }
            if avail < size {
                // Readable even when the block before is used (its last word)
                // or absent (the padding word at the start of a region).
                let prev_size = rd(block - W);
                if header & PREV_FREE != 0 && avail + prev_size >= size && layout.align() <= G {
                    // The free block before (with the free one after, if
                    // any) makes room: slide the contents down into it.
                    let start = block - prev_size;
                    self.unlink(start);
                    if avail > have {
                        self.unlink(next);
                    }
                    let end = block + avail;
                    wr(end, rd(end) | PREV_FREE);
                    let moved = start + W;
                    ptr::copy(
                        ptr,
                        ptr::with_exposed_provenance_mut(moved),
                        layout.size().min(new_size),
                    );
                    self.carve(start, avail + prev_size, size, 0);
                    return ptr::with_exposed_provenance_mut(moved);
                }
                let moved = self.alloc(new_size, layout.align());
                if !moved.is_null() {
                    ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                    self.release(block);
                }
                return moved;
            }
            // `avail > have`: the next block is free; absorb it.
            self.unlink(next);
            self.carve(block, avail, size, header & PREV_FREE);
        } else if have - size >= MIN_BLOCK {
            // Shrink: the tail merges with a free successor.
            wr(block, size | (header & PREV_FREE));
            let next = block + have;
            let next_header = rd(next);
            let mut tail = have - size;
            if next_header & FREE != 0 {
                self.unlink(next);
                tail += next_header & !FLAGS;
            } else {
                wr(next, next_header | PREV_FREE);
            }
            self.free_block(block + size, tail);
        }
        ptr
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

/// A [`Heap`] behind a lock, for `#[global_allocator]`.
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
