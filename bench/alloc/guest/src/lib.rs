//! Benchmark guest: exports `a(size, align) -> ptr`, `f(ptr, size, align)` and
//! `r(ptr, size, align, new_size) -> ptr`, each one `GlobalAlloc` call on the
//! allocator chosen by the cargo feature. The `empty` feature exports the same
//! functions with no allocator behind them (the code-size baseline).
#![no_std]

#[cfg(not(feature = "empty"))]
use core::alloc::{GlobalAlloc, Layout};

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

#[cfg(feature = "ours")]
#[global_allocator]
static ALLOC: wasm_mem_alloc::WasmAllocator = wasm_mem_alloc::WasmAllocator::wasm();

#[cfg(feature = "talc")]
#[global_allocator]
static ALLOC: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

#[cfg(feature = "rlsf")]
#[global_allocator]
static ALLOC: rlsf::GlobalTlsf = rlsf::GlobalTlsf::new();

#[cfg(feature = "lol_alloc")]
#[global_allocator]
static ALLOC: lol_alloc::AssumeSingleThreaded<lol_alloc::FreeListAllocator> =
    unsafe { lol_alloc::AssumeSingleThreaded::new(lol_alloc::FreeListAllocator::new()) };

#[cfg(feature = "dlmalloc")]
struct Dl;

#[cfg(feature = "dlmalloc")]
static mut DL: dlmalloc::Dlmalloc = dlmalloc::Dlmalloc::new();

#[cfg(feature = "dlmalloc")]
#[allow(static_mut_refs)]
unsafe impl GlobalAlloc for Dl {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        DL.malloc(l.size(), l.align())
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        DL.free(p, l.size(), l.align())
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        DL.realloc(p, l.size(), l.align(), n)
    }
}

#[cfg(feature = "dlmalloc")]
#[global_allocator]
static ALLOC: Dl = Dl;

#[cfg(not(feature = "empty"))]
mod exports {
    use super::*;

    #[no_mangle]
    unsafe extern "C" fn a(size: usize, align: usize) -> *mut u8 {
        ALLOC.alloc(Layout::from_size_align_unchecked(size, align))
    }

    #[no_mangle]
    unsafe extern "C" fn f(ptr: *mut u8, size: usize, align: usize) {
        ALLOC.dealloc(ptr, Layout::from_size_align_unchecked(size, align))
    }

    #[no_mangle]
    unsafe extern "C" fn r(ptr: *mut u8, size: usize, align: usize, new_size: usize) -> *mut u8 {
        ALLOC.realloc(ptr, Layout::from_size_align_unchecked(size, align), new_size)
    }
}

#[cfg(feature = "empty")]
mod exports {
    #[no_mangle]
    extern "C" fn a(_: usize, _: usize) -> *mut u8 {
        core::ptr::null_mut()
    }

    #[no_mangle]
    extern "C" fn f(_: *mut u8, _: usize, _: usize) {}

    #[no_mangle]
    extern "C" fn r(_: *mut u8, _: usize, _: usize, _: usize) -> *mut u8 {
        core::ptr::null_mut()
    }
}
