//! Allocate inside the guest with the module's own allocator.
//!
//! Like WAMR's `module_malloc`, but for memory32 and memory64 alike: the
//! module exports C-style functions (`malloc`/`free`/`calloc`/`realloc`/
//! `aligned_alloc` by default, or names the caller gives, e.g. those of
//! wasm-mem-alloc's C ABI) taking and returning `i32` addresses and sizes on a
//! 32-bit guest and `i64` on a 64-bit one. [`GuestAllocator::new`] checks their
//! types once; every call converts sizes with checks (a size that does not fit
//! a 32-bit guest is an error, never truncated) and reads results as unsigned
//! addresses. A NULL result is an [`Error::OutOfGuestMemory`].

use crate::error::{Error, Result};
use crate::view::GuestMemory;
use wasmtime::{AsContextMut, Func, Instance, Val, ValType};

/// Names of the allocator functions the module exports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocatorNames {
    /// `malloc(size) -> addr` (required).
    pub malloc: String,
    /// `free(addr)`.
    pub free: Option<String>,
    /// `calloc(count, size) -> addr`.
    pub calloc: Option<String>,
    /// `realloc(addr, size) -> addr`.
    pub realloc: Option<String>,
    /// `aligned_alloc(align, size) -> addr`.
    pub aligned_alloc: Option<String>,
}

impl Default for AllocatorNames {
    /// The C names: functions the module does not export are simply absent.
    fn default() -> Self {
        AllocatorNames {
            malloc: "malloc".into(),
            free: Some("free".into()),
            calloc: Some("calloc".into()),
            realloc: Some("realloc".into()),
            aligned_alloc: Some("aligned_alloc".into()),
        }
    }
}

/// One checked allocator function.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    func: Func,
}

/// The guest's allocator, ready to call.
#[derive(Debug, Clone)]
pub struct GuestAllocator {
    malloc: Entry,
    free: Option<Entry>,
    calloc: Option<Entry>,
    realloc: Option<Entry>,
    aligned_alloc: Option<Entry>,
    wide: bool,
}

fn type_name(params: &[ValType], results: &[ValType]) -> String {
    let list = |v: &[ValType]| {
        v.iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!("[{}] -> [{}]", list(params), list(results))
}

impl GuestAllocator {
    /// Look up and type-check the allocator functions. `malloc` is required;
    /// the other names are used when the module exports them (a missing
    /// optional function is an error only when it is called). The address
    /// width (i32 or i64) is taken from `malloc`'s type, and every other
    /// function must agree with it.
    pub fn new(
        mut store: impl AsContextMut,
        instance: &Instance,
        names: &AllocatorNames,
    ) -> Result<GuestAllocator> {
        let malloc_func = instance
            .get_func(&mut store, &names.malloc)
            .ok_or_else(|| Error::NoFunction(names.malloc.clone()))?;
        let ty = malloc_func.ty(&store);
        let params: Vec<_> = ty.params().collect();
        let results: Vec<_> = ty.results().collect();
        let wide = match (params.as_slice(), results.as_slice()) {
            ([ValType::I32], [ValType::I32]) => false,
            ([ValType::I64], [ValType::I64]) => true,
            _ => {
                return Err(Error::Signature {
                    name: names.malloc.clone(),
                    expected: "[i32] -> [i32] or [i64] -> [i64]".into(),
                    found: type_name(&params, &results),
                })
            }
        };
        let addr = if wide { ValType::I64 } else { ValType::I32 };
        let mut lookup =
            |name: &Option<String>, arity: usize, returns: bool| -> Result<Option<Entry>> {
                let Some(name) = name else { return Ok(None) };
                let Some(func) = instance.get_func(&mut store, name) else {
                    return Ok(None);
                };
                let ty = func.ty(&store);
                let params: Vec<_> = ty.params().collect();
                let results: Vec<_> = ty.results().collect();
                let want_params = vec![addr.clone(); arity];
                let want_results = if returns { vec![addr.clone()] } else { vec![] };
                let same = |a: &[ValType], b: &[ValType]| {
                    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| ValType::eq(x, y))
                };
                if !same(&params, &want_params) || !same(&results, &want_results) {
                    return Err(Error::Signature {
                        name: name.clone(),
                        expected: type_name(&want_params, &want_results),
                        found: type_name(&params, &results),
                    });
                }
                Ok(Some(Entry {
                    name: name.clone(),
                    func,
                }))
            };
        let free = lookup(&names.free, 1, false)?;
        let calloc = lookup(&names.calloc, 2, true)?;
        let realloc = lookup(&names.realloc, 2, true)?;
        let aligned_alloc = lookup(&names.aligned_alloc, 2, true)?;
        Ok(GuestAllocator {
            malloc: Entry {
                name: names.malloc.clone(),
                func: malloc_func,
            },
            free,
            calloc,
            realloc,
            aligned_alloc,
            wide,
        })
    }

    /// `true` when the allocator takes and returns 64-bit addresses.
    pub fn is_64(&self) -> bool {
        self.wide
    }

    fn arg(&self, what: &'static str, value: u64) -> Result<Val> {
        if self.wide {
            Ok(Val::I64(value as i64))
        } else {
            let narrow = u32::try_from(value).map_err(|_| Error::TooWide { what, value })?;
            Ok(Val::I32(narrow as i32))
        }
    }

    fn call(
        &self,
        mut store: impl AsContextMut,
        entry: &Entry,
        args: &[Val],
        returns: bool,
    ) -> Result<Option<u64>> {
        let mut results = if returns { vec![Val::I32(0)] } else { vec![] };
        entry.func.call(&mut store, args, &mut results)?;
        Ok(results.first().map(|v| match v {
            Val::I32(x) => u64::from(*x as u32),
            Val::I64(x) => *x as u64,
            // The type was checked in `new`.
            _ => 0,
        }))
    }

    fn allocation(
        &self,
        store: impl AsContextMut,
        entry: &Entry,
        args: &[Val],
        size: u64,
    ) -> Result<u64> {
        match self.call(store, entry, args, true)? {
            Some(0) | None => Err(Error::OutOfGuestMemory {
                function: entry.name.clone(),
                size,
            }),
            Some(addr) => Ok(addr),
        }
    }

    fn optional<'a>(&self, entry: &'a Option<Entry>, default: &str) -> Result<&'a Entry> {
        entry
            .as_ref()
            .ok_or_else(|| Error::NoFunction(default.to_string()))
    }

    /// `malloc(size)`: the guest address of `size` new bytes.
    pub fn malloc(&self, store: impl AsContextMut, size: u64) -> Result<u64> {
        let args = [self.arg("size", size)?];
        self.allocation(store, &self.malloc, &args, size)
    }

    /// `calloc(count, size)`: zeroed memory for `count` elements of `size` bytes.
    pub fn calloc(&self, store: impl AsContextMut, count: u64, size: u64) -> Result<u64> {
        let entry = self.optional(&self.calloc, "calloc")?;
        let args = [self.arg("count", count)?, self.arg("size", size)?];
        self.allocation(store, entry, &args, count.saturating_mul(size))
    }

    /// `realloc(addr, size)`: the new address of the block.
    pub fn realloc(&self, store: impl AsContextMut, addr: u64, size: u64) -> Result<u64> {
        let entry = self.optional(&self.realloc, "realloc")?;
        let args = [self.arg("address", addr)?, self.arg("size", size)?];
        self.allocation(store, entry, &args, size)
    }

    /// `aligned_alloc(align, size)`: `size` bytes aligned to `align`.
    pub fn aligned_alloc(&self, store: impl AsContextMut, align: u64, size: u64) -> Result<u64> {
        let entry = self.optional(&self.aligned_alloc, "aligned_alloc")?;
        let args = [self.arg("alignment", align)?, self.arg("size", size)?];
        self.allocation(store, entry, &args, size)
    }

    /// `free(addr)`.
    pub fn free(&self, store: impl AsContextMut, addr: u64) -> Result<()> {
        let entry = self.optional(&self.free, "free")?;
        let args = [self.arg("address", addr)?];
        self.call(store, entry, &args, false)?;
        Ok(())
    }

    /// Allocate `bytes.len()` bytes and copy `bytes` there. If the copy
    /// fails (the allocator returned a block outside `memory`), the block is
    /// freed when `free` exists and the error is returned.
    pub fn alloc_bytes(
        &self,
        mut store: impl AsContextMut,
        memory: &GuestMemory,
        bytes: &[u8],
    ) -> Result<u64> {
        let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        let addr = self.malloc(&mut store, size)?;
        if let Err(e) = memory.write(&mut store, addr, bytes) {
            if self.free.is_some() {
                self.free(&mut store, addr)?;
            }
            return Err(e);
        }
        Ok(addr)
    }

    /// Allocate and write `text` as a NUL-terminated string.
    pub fn alloc_cstr(
        &self,
        store: impl AsContextMut,
        memory: &GuestMemory,
        text: &[u8],
    ) -> Result<u64> {
        if let Some(position) = memchr::memchr(0, text) {
            return Err(Error::InteriorNul { position });
        }
        let mut bytes = text.to_vec();
        bytes.push(0);
        self.alloc_bytes(store, memory, &bytes)
    }
}
