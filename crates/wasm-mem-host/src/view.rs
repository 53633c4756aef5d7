//! A view over one guest memory, addressed by `u64`.
//!
//! Every address and length is a `u64`, for memory32 and memory64 alike, and
//! every range is checked before it is touched: `addr + len` is computed with
//! checked arithmetic (a range that wraps past 2^64 is an
//! [`Error::Overflow`], never a short read), and the end must not pass the
//! memory's current size (read from the engine at each call, so a grow by the
//! guest is seen at once). Host-side conversions to `usize` happen only after
//! that check, when the range is known to lie inside a host allocation, so
//! nothing is ever truncated. A range of length 0 is valid at any address up
//! to and including the current size, as for `memory.fill` in wasm.
//!
//! Access kinds:
//! - copying reads and writes ([`GuestMemory::read`], [`GuestMemory::write`],
//!   little-endian typed values with [`GuestMemory::read_le`] /
//!   [`GuestMemory::write_le`], NUL-terminated strings with a length cap);
//!   these work on every memory, shared ones included;
//! - borrowed slices ([`GuestMemory::slice`], [`GuestMemory::slice_mut`]) for
//!   unshared memories only. The slice borrows the store, and growing a memory
//!   needs the store mutably, so a grow cannot leave a slice dangling: the
//!   borrow checker refuses it.
//!
//! ```compile_fail
//! # fn f(store: &mut wasmtime::Store<()>, view: &wasm_mem_host::GuestMemory, m: wasmtime::Memory) {
//! let bytes = view.slice(&*store, 0, 4).unwrap();
//! m.grow(&mut *store, 1).unwrap(); // error: `store` is borrowed by `bytes`
//! println!("{bytes:?}");
//! # }
//! ```
//!
//! Shared memories may be written by other threads at any moment, so handing
//! out `&[u8]` would be unsound; they get copy-only access, done byte by byte
//! with relaxed atomic loads and stores (no data race in the Rust sense).

use crate::error::{Error, Result};
use std::ops::Range;
use std::sync::atomic::{AtomicU8, Ordering};
use wasmtime::{
    AsContext, AsContextMut, Extern, Instance, Memory, SharedMemory, StoreContext, StoreContextMut,
};

/// A guest memory: unshared (`wasmtime::Memory`) or shared.
#[derive(Clone)]
enum Kind {
    Unshared(Memory),
    Shared(SharedMemory),
}

/// A view over one memory of an instance. Cheap to clone; holds no borrow.
#[derive(Clone)]
pub struct GuestMemory {
    kind: Kind,
    label: String,
    memory64: bool,
    page_size: u64,
}

impl std::fmt::Debug for GuestMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestMemory")
            .field("label", &self.label)
            .field("memory64", &self.memory64)
            .field("shared", &self.is_shared())
            .field("page_size", &self.page_size)
            .finish()
    }
}

/// Values read and written in little-endian order: the integer and float
/// primitives.
pub trait LittleEndian: Copy + sealed::Sealed {
    /// Size in bytes.
    const SIZE: usize;
    /// Decode from exactly [`Self::SIZE`] bytes.
    fn from_le(bytes: &[u8]) -> Self;
    /// Encode into exactly [`Self::SIZE`] bytes.
    fn to_le(self, out: &mut [u8]);
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! little_endian {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl LittleEndian for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn from_le(bytes: &[u8]) -> Self {
                let mut raw = [0u8; std::mem::size_of::<$t>()];
                raw.copy_from_slice(bytes);
                <$t>::from_le_bytes(raw)
            }
            fn to_le(self, out: &mut [u8]) {
                out.copy_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
little_endian!(u8, i8, u16, i16, u32, i32, u64, i64, u128, i128, f32, f64);

fn to_u64(n: usize) -> u64 {
    // usize is at most 64 bits on every target wasmtime supports.
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn atomic(cell: &std::cell::UnsafeCell<u8>) -> &AtomicU8 {
    // SAFETY: `AtomicU8` has the size and alignment of `u8`, the cell lives as
    // long as the returned reference, and every host access to shared memory
    // goes through atomics, so there is no non-atomic host access to race with.
    unsafe { AtomicU8::from_ptr(cell.get()) }
}

impl GuestMemory {
    /// A view over an unshared memory.
    pub fn new(store: impl AsContext, memory: Memory) -> GuestMemory {
        let ty = memory.ty(&store);
        GuestMemory {
            kind: Kind::Unshared(memory),
            label: "memory".to_string(),
            memory64: ty.is_64(),
            page_size: ty.page_size(),
        }
    }

    /// A view over a shared memory (copying access only).
    pub fn shared(memory: SharedMemory) -> GuestMemory {
        let ty = memory.ty();
        GuestMemory {
            kind: Kind::Shared(memory),
            label: "shared memory".to_string(),
            memory64: ty.is_64(),
            page_size: ty.page_size(),
        }
    }

    /// The memory an instance exports under `name`, shared or not.
    pub fn export(
        mut store: impl AsContextMut,
        instance: &Instance,
        name: &str,
    ) -> Result<GuestMemory> {
        let view = match instance.get_export(&mut store, name) {
            Some(Extern::Memory(m)) => GuestMemory::new(&store, m),
            Some(Extern::SharedMemory(m)) => GuestMemory::shared(m),
            _ => return Err(Error::NoMemory(format!("exported as {name:?}"))),
        };
        Ok(view.with_label(format!("memory {name:?}")))
    }

    /// The same view with another name in error messages.
    pub fn with_label(mut self, label: impl Into<String>) -> GuestMemory {
        self.label = label.into();
        self
    }

    /// The name used in error messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// `true` for a 64-bit memory.
    pub fn is_64(&self) -> bool {
        self.memory64
    }

    /// `true` for a shared memory.
    pub fn is_shared(&self) -> bool {
        matches!(self.kind, Kind::Shared(_))
    }

    /// Page size in bytes, from the memory's type.
    pub fn page_size(&self) -> u64 {
        self.page_size
    }

    /// The unshared wasmtime memory, if this is one.
    pub fn memory(&self) -> Option<Memory> {
        match &self.kind {
            Kind::Unshared(m) => Some(*m),
            Kind::Shared(_) => None,
        }
    }

    /// The shared wasmtime memory, if this is one.
    pub fn shared_memory(&self) -> Option<&SharedMemory> {
        match &self.kind {
            Kind::Shared(m) => Some(m),
            Kind::Unshared(_) => None,
        }
    }

    /// Current size in bytes.
    pub fn size(&self, store: impl AsContext) -> u64 {
        match &self.kind {
            Kind::Unshared(m) => to_u64(m.data_size(&store)),
            Kind::Shared(m) => to_u64(m.data_size()),
        }
    }

    /// Current size in pages of the memory's own page size.
    pub fn pages(&self, store: impl AsContext) -> u64 {
        self.size(store) / self.page_size
    }

    /// `true` when `[addr, addr + len)` lies inside the memory.
    pub fn contains(&self, store: impl AsContext, addr: u64, len: u64) -> bool {
        self.check(store, addr, len).is_ok()
    }

    /// Check `[addr, addr + len)` and return it as a host range.
    pub fn check(&self, store: impl AsContext, addr: u64, len: u64) -> Result<Range<usize>> {
        self.check_within(self.size(store), addr, len)
    }

    fn check_within(&self, size: u64, addr: u64, len: u64) -> Result<Range<usize>> {
        let end = addr.checked_add(len).ok_or(Error::Overflow { addr, len })?;
        let out_of_bounds = || Error::OutOfBounds {
            memory: self.label.clone(),
            addr,
            len,
            size,
        };
        if end > size {
            return Err(out_of_bounds());
        }
        // `end <= size`, and `size` is the length of a host allocation, so
        // both ends fit in usize; the conversions cannot fail.
        let start = usize::try_from(addr).map_err(|_| out_of_bounds())?;
        let end = usize::try_from(end).map_err(|_| out_of_bounds())?;
        Ok(start..end)
    }

    /// Copy `buf.len()` bytes at `addr` into `buf`.
    pub fn read(&self, store: impl AsContext, addr: u64, buf: &mut [u8]) -> Result<()> {
        let len = to_u64(buf.len());
        match &self.kind {
            Kind::Unshared(m) => {
                let data = m.data(&store);
                let range = self.check_within(to_u64(data.len()), addr, len)?;
                buf.copy_from_slice(&data[range]);
            }
            Kind::Shared(m) => {
                let data = m.data();
                let range = self.check_within(to_u64(data.len()), addr, len)?;
                for (out, cell) in buf.iter_mut().zip(&data[range]) {
                    *out = atomic(cell).load(Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }

    /// Copy `len` bytes at `addr` into a new vector (the range is checked
    /// before anything is allocated).
    pub fn read_vec(&self, store: impl AsContext, addr: u64, len: u64) -> Result<Vec<u8>> {
        let range = self.check(&store, addr, len)?;
        let mut out = vec![0; range.len()];
        self.read(&store, addr, &mut out)?;
        Ok(out)
    }

    /// Copy `bytes` into the memory at `addr`.
    pub fn write(&self, mut store: impl AsContextMut, addr: u64, bytes: &[u8]) -> Result<()> {
        let len = to_u64(bytes.len());
        match &self.kind {
            Kind::Unshared(m) => {
                let data = m.data_mut(&mut store);
                let range = self.check_within(to_u64(data.len()), addr, len)?;
                data[range].copy_from_slice(bytes);
            }
            Kind::Shared(m) => {
                let data = m.data();
                let range = self.check_within(to_u64(data.len()), addr, len)?;
                for (byte, cell) in bytes.iter().zip(&data[range]) {
                    atomic(cell).store(*byte, Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }

    /// Read a little-endian value at `addr` (no alignment needed).
    pub fn read_le<V: LittleEndian>(&self, store: impl AsContext, addr: u64) -> Result<V> {
        let mut raw = [0u8; 16];
        let raw = &mut raw[..V::SIZE];
        self.read(store, addr, raw)?;
        Ok(V::from_le(raw))
    }

    /// Write a little-endian value at `addr` (no alignment needed).
    pub fn write_le<V: LittleEndian>(
        &self,
        store: impl AsContextMut,
        addr: u64,
        value: V,
    ) -> Result<()> {
        let mut raw = [0u8; 16];
        let raw = &mut raw[..V::SIZE];
        value.to_le(raw);
        self.write(store, addr, raw)
    }

    /// The bytes of the NUL-terminated string at `addr`, without the NUL.
    /// At most `cap` bytes are searched; a string with no NUL within `cap`
    /// bytes, or before the end of memory, is an [`Error::Unterminated`].
    pub fn read_cstr(&self, store: impl AsContext, addr: u64, cap: u64) -> Result<Vec<u8>> {
        let size = self.size(&store);
        if addr >= size {
            return Err(Error::OutOfBounds {
                memory: self.label.clone(),
                addr,
                len: 1,
                size,
            });
        }
        let searched = cap.min(size - addr);
        let unterminated = || Error::Unterminated {
            memory: self.label.clone(),
            addr,
            searched,
        };
        match &self.kind {
            Kind::Unshared(m) => {
                let data = m.data(&store);
                let window = &data[self.check_within(to_u64(data.len()), addr, searched)?];
                let nul = memchr::memchr(0, window).ok_or_else(unterminated)?;
                Ok(window[..nul].to_vec())
            }
            Kind::Shared(m) => {
                let data = m.data();
                let range = self.check_within(to_u64(data.len()), addr, searched)?;
                let mut out = Vec::new();
                for cell in &data[range] {
                    match atomic(cell).load(Ordering::Relaxed) {
                        0 => return Ok(out),
                        byte => out.push(byte),
                    }
                }
                Err(unterminated())
            }
        }
    }

    /// The NUL-terminated UTF-8 string at `addr` (see [`Self::read_cstr`]).
    pub fn read_str(&self, store: impl AsContext, addr: u64, cap: u64) -> Result<String> {
        let bytes = self.read_cstr(store, addr, cap)?;
        String::from_utf8(bytes).map_err(|source| Error::Utf8 { addr, source })
    }

    /// Write `text` and a NUL terminator at `addr`. Refuses text with a NUL
    /// inside. Returns the number of bytes written (NUL included).
    pub fn write_cstr(&self, store: impl AsContextMut, addr: u64, text: &[u8]) -> Result<u64> {
        if let Some(position) = memchr::memchr(0, text) {
            return Err(Error::InteriorNul { position });
        }
        let mut bytes = Vec::with_capacity(text.len() + 1);
        bytes.extend_from_slice(text);
        bytes.push(0);
        self.write(store, addr, &bytes)?;
        Ok(to_u64(bytes.len()))
    }

    /// Borrow `[addr, addr + len)` of an unshared memory. The slice borrows
    /// the store, so the memory cannot grow (or move) while it lives.
    pub fn slice<'a, T: 'static>(
        &self,
        store: impl Into<StoreContext<'a, T>>,
        addr: u64,
        len: u64,
    ) -> Result<&'a [u8]> {
        match &self.kind {
            Kind::Unshared(m) => {
                let data = m.data(store);
                Ok(&data[self.check_within(to_u64(data.len()), addr, len)?])
            }
            Kind::Shared(_) => Err(Error::Shared {
                memory: self.label.clone(),
            }),
        }
    }

    /// Mutably borrow `[addr, addr + len)` of an unshared memory; see
    /// [`Self::slice`].
    pub fn slice_mut<'a, T: 'static>(
        &self,
        store: impl Into<StoreContextMut<'a, T>>,
        addr: u64,
        len: u64,
    ) -> Result<&'a mut [u8]> {
        match &self.kind {
            Kind::Unshared(m) => {
                let data = m.data_mut(store);
                let range = self.check_within(to_u64(data.len()), addr, len)?;
                Ok(&mut data[range])
            }
            Kind::Shared(_) => Err(Error::Shared {
                memory: self.label.clone(),
            }),
        }
    }
}
