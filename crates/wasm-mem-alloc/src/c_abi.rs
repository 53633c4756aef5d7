//! The C allocation functions (`malloc`, `free`, `calloc`, `realloc`,
//! `aligned_alloc`) over an [`Allocator`].
//!
//! The `*_in` functions work on any allocator and every target (the tests run
//! them natively). With the `c-abi` feature on a wasm target, the crate also
//! exports the plain C names over one shared heap, `HEAP`, so C code linked
//! into the module and hosts that call into the guest to allocate use the
//! same memory as Rust code that installs `SharedHeap` as its
//! `#[global_allocator]`.
//!
//! C semantics: `malloc` returns memory aligned to 16 bytes (the alignment
//! of `max_align_t` on wasm32 and x86-64); `free(NULL)` does nothing;
//! `realloc(NULL, n)` is `malloc(n)`; `realloc(p, 0)` frees `p` and returns
//! NULL; `calloc` returns NULL when `n * size` overflows; `aligned_alloc`
//! returns NULL unless the alignment is a power of two.

use crate::{Allocator, Backend};

/// Alignment of every `malloc` result.
pub const MALLOC_ALIGN: usize = 16;

/// `malloc(size)` on `heap`.
///
/// # Safety
///
/// Same contract as C `malloc`.
pub unsafe fn malloc_in<B: Backend>(heap: &Allocator<B>, size: usize) -> *mut u8 {
    heap.with(|h| h.alloc(size, MALLOC_ALIGN))
}

/// `free(ptr)` on `heap`.
///
/// # Safety
///
/// `ptr` is null or a live block from `heap`.
pub unsafe fn free_in<B: Backend>(heap: &Allocator<B>, ptr: *mut u8) {
    if !ptr.is_null() {
        heap.with(|h| h.free(ptr))
    }
}

/// `calloc(count, size)` on `heap`: zeroed memory, null on overflow.
///
/// # Safety
///
/// Same contract as C `calloc`.
pub unsafe fn calloc_in<B: Backend>(heap: &Allocator<B>, count: usize, size: usize) -> *mut u8 {
    let Some(bytes) = count.checked_mul(size) else {
        return core::ptr::null_mut();
    };
    let ptr = malloc_in(heap, bytes);
    if !ptr.is_null() {
        ptr.write_bytes(0, bytes);
    }
    ptr
}

/// `realloc(ptr, size)` on `heap`.
///
/// # Safety
///
/// `ptr` is null or a live block from `heap`.
pub unsafe fn realloc_in<B: Backend>(heap: &Allocator<B>, ptr: *mut u8, size: usize) -> *mut u8 {
    if ptr.is_null() {
        return malloc_in(heap, size);
    }
    if size == 0 {
        free_in(heap, ptr);
        return core::ptr::null_mut();
    }
    heap.with(|h| {
        // The C caller does not say how many bytes it uses: copy them all.
        let layout =
            core::alloc::Layout::from_size_align_unchecked(h.usable_size(ptr), MALLOC_ALIGN);
        h.realloc(ptr, layout, size)
    })
}

/// `aligned_alloc(align, size)` on `heap`; null unless `align` is a power of two.
///
/// # Safety
///
/// Same contract as C `aligned_alloc`.
pub unsafe fn aligned_alloc_in<B: Backend>(
    heap: &Allocator<B>,
    align: usize,
    size: usize,
) -> *mut u8 {
    if !align.is_power_of_two() {
        return core::ptr::null_mut();
    }
    heap.with(|h| h.alloc(size, align.max(MALLOC_ALIGN)))
}

/// The heap behind the exported C functions (wasm only).
#[cfg(target_family = "wasm")]
pub static HEAP: crate::WasmAllocator = crate::WasmAllocator::wasm();

/// A `#[global_allocator]` that shares [`HEAP`] with the C functions.
#[cfg(target_family = "wasm")]
#[derive(Debug, Default, Clone, Copy)]
pub struct SharedHeap;

#[cfg(target_family = "wasm")]
unsafe impl core::alloc::GlobalAlloc for SharedHeap {
    #[inline]
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        HEAP.alloc(layout)
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: core::alloc::Layout) {
        HEAP.dealloc(ptr, layout)
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: core::alloc::Layout, size: usize) -> *mut u8 {
        HEAP.realloc(ptr, layout, size)
    }
}

#[cfg(all(feature = "c-abi", target_family = "wasm"))]
mod exports {
    use super::*;

    #[no_mangle]
    unsafe extern "C" fn malloc(size: usize) -> *mut u8 {
        malloc_in(&HEAP, size)
    }

    #[no_mangle]
    unsafe extern "C" fn free(ptr: *mut u8) {
        free_in(&HEAP, ptr)
    }

    #[no_mangle]
    unsafe extern "C" fn calloc(count: usize, size: usize) -> *mut u8 {
        calloc_in(&HEAP, count, size)
    }

    #[no_mangle]
    unsafe extern "C" fn realloc(ptr: *mut u8, size: usize) -> *mut u8 {
        realloc_in(&HEAP, ptr, size)
    }

    #[no_mangle]
    unsafe extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut u8 {
        aligned_alloc_in(&HEAP, align, size)
    }
}
