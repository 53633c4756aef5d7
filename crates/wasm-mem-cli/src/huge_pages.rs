//! The process allocator: the system allocator, with large buffers advised
//! onto transparent huge pages.
//!
//! A pass over a multi-megabyte module holds a few buffers of the module's
//! size (the input as read, the output as assembled). With 4 KiB pages the
//! kernel takes one page fault per 4 KiB the first time each is written: on
//! a 5.6 MB module about 2,700 faults, a third of `wasm-mem pack`'s run time.
//! Advising such a buffer with `MADV_HUGEPAGE` lets the kernel back its
//! aligned 2 MiB extents with huge pages where the system allows it
//! (`/sys/kernel/mm/transparent_hugepage/enabled` set to `madvise` or
//! `always`), one fault per 2 MiB instead of 512. The advice changes where
//! the bytes live, never what they are; where it is refused or unsupported
//! nothing changes. (glibc's `glibc.malloc.hugetlb=1` tunable does the same
//! for every mmapped chunk, but only when set in the environment.)

use std::alloc::{GlobalAlloc, Layout, System};

/// Buffers at least this large are advised (smaller ones cannot hold an
/// aligned huge page often enough to be worth a system call).
const LARGE: usize = 2 << 20;

/// The system allocator with large buffers on transparent huge pages.
pub struct HugePagesForLargeBuffers;

// SAFETY: every call is forwarded to `System`; the advice only changes how
// the returned memory is backed, not its contents or ownership.
unsafe impl GlobalAlloc for HugePagesForLargeBuffers {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        advise(unsafe { System.alloc(layout) }, layout.size())
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        advise(unsafe { System.alloc_zeroed(layout) }, layout.size())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        advise(unsafe { System.realloc(ptr, layout, new_size) }, new_size)
    }
}

/// Advise the huge-page-aligned part of `[ptr, ptr + size)`; returns `ptr`.
#[inline]
fn advise(ptr: *mut u8, size: usize) -> *mut u8 {
    #[cfg(target_os = "linux")]
    if size >= LARGE && !ptr.is_null() {
        const HUGE: usize = 2 << 20;
        let start = (ptr as usize).next_multiple_of(HUGE);
        let end = (ptr as usize + size) & !(HUGE - 1);
        if start < end {
            // SAFETY: the range lies inside the allocation just returned;
            // MADV_HUGEPAGE changes no contents and its failure is harmless.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = size;
    ptr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_buffers_keep_their_contents_through_realloc() {
        let allocator = HugePagesForLargeBuffers;
        let layout = Layout::from_size_align(5 << 20, 8).unwrap();
        // SAFETY: the layout is non-zero; every pointer is checked and freed once.
        unsafe {
            let zeroed = allocator.alloc_zeroed(layout);
            assert!(!zeroed.is_null());
            assert!(std::slice::from_raw_parts(zeroed, layout.size())
                .iter()
                .all(|&b| b == 0));
            allocator.dealloc(zeroed, layout);

            let p = allocator.alloc(layout);
            assert!(!p.is_null());
            for i in 0..layout.size() {
                *p.add(i) = (i % 251) as u8;
            }
            let q = allocator.realloc(p, layout, 9 << 20);
            assert!(!q.is_null());
            for i in 0..layout.size() {
                assert_eq!(*q.add(i), (i % 251) as u8, "byte {i}");
            }
            allocator.dealloc(q, Layout::from_size_align(9 << 20, 8).unwrap());
        }
    }

    /// The advice reaches the kernel: the mapping holding a large buffer is
    /// marked for huge pages (`hg` in its `VmFlags`).
    #[cfg(target_os = "linux")]
    #[test]
    fn large_buffers_are_advised_onto_huge_pages() {
        if !std::path::Path::new("/sys/kernel/mm/transparent_hugepage/enabled").exists() {
            return; // a kernel without transparent huge pages: nothing to check
        }
        let buffer: Vec<u8> = vec![1; 6 << 20];
        let inside = buffer.as_ptr() as usize + (3 << 20);
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut in_range = false;
        let mut flags = None;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((lo, hi)) = range.split_once('-') {
                    if let (Ok(lo), Ok(hi)) =
                        (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                    {
                        in_range = (lo..hi).contains(&inside);
                        continue;
                    }
                }
            }
            if in_range {
                if let Some(f) = line.strip_prefix("VmFlags:") {
                    flags = Some(f.to_string());
                }
            }
        }
        let flags = flags.expect("the buffer's mapping is in /proc/self/smaps");
        assert!(
            flags.split_whitespace().any(|f| f == "hg"),
            "VmFlags:{flags}"
        );
        drop(buffer);
    }
}
