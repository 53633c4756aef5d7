//! A WASI reactor for wasm-mem-host's tests: an allocator exported under
//! non-C names (`guest_malloc`, `guest_free`), and functions that read what
//! the host wrote.

use std::alloc::{alloc, dealloc, Layout};

const HEADER: usize = 16;

/// Allocate `size` bytes (16-byte aligned); 0 when out of memory.
#[no_mangle]
pub extern "C" fn guest_malloc(size: usize) -> *mut u8 {
    let Some(total) = size.checked_add(HEADER) else {
        return std::ptr::null_mut();
    };
    let Ok(layout) = Layout::from_size_align(total, 16) else {
        return std::ptr::null_mut();
    };
    // SAFETY: the layout is non-zero sized.
    unsafe {
        let base = alloc(layout);
        if base.is_null() {
            return base;
        }
        (base as *mut usize).write(total);
        base.add(HEADER)
    }
}

/// Free a block from `guest_malloc` (null is ignored).
///
/// # Safety
/// `ptr` is null or a live block from `guest_malloc`.
#[no_mangle]
pub unsafe extern "C" fn guest_free(ptr: *mut u8) {
    if ptr.is_null() {
        return;
    }
    let base = ptr.sub(HEADER);
    let total = (base as *const usize).read();
    dealloc(base, Layout::from_size_align_unchecked(total, 16));
}

/// The sum of `len` bytes at `ptr`.
///
/// # Safety
/// `ptr..ptr+len` is readable.
#[no_mangle]
pub unsafe extern "C" fn byte_sum(ptr: *const u8, len: usize) -> u32 {
    std::slice::from_raw_parts(ptr, len).iter().map(|b| u32::from(*b)).sum()
}

/// The length of the NUL-terminated string at `ptr`.
///
/// # Safety
/// `ptr` points to a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn string_length(ptr: *const std::ffi::c_char) -> u32 {
    std::ffi::CStr::from_ptr(ptr).to_bytes().len() as u32
}
