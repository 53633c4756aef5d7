//! wasm-mem-host: embed WebAssembly on wasmtime under a memory budget, and
//! reach guest memory by `u64` address.
//!
//! - [`view::GuestMemory`]: a view over any memory of an instance (memory32 or
//!   memory64, shared or not) with `u64` addresses and lengths everywhere,
//!   checked arithmetic, range validation, copying and little-endian typed
//!   reads and writes, NUL-terminated strings with a length cap, and borrowed
//!   slices for unshared memories only, tied to the store borrow.
//! - [`alloc::GuestAllocator`]: call the module's own allocator (`malloc`/
//!   `free`, names configurable) and get guest addresses back.
//! - [`budget::Budget`] and [`session::Session`]: run a module with per-memory
//!   page budgets enforced through wasmtime's `ResourceLimiter`, and report each
//!   memory's final and peak size and the grows refused.
//! - [`prepare`]: the two module adjustments a session makes before
//!   instantiation (exports for unexported memories, budgeted maximums).
//!
//! Page sizes always come from the memory's type (custom page sizes work);
//! nothing assumes 64 KiB.

#![deny(missing_docs)]

pub mod alloc;
pub mod budget;
pub mod error;
pub mod prepare;
pub mod session;
pub mod view;

pub use alloc::{AllocatorNames, GuestAllocator};
pub use budget::Budget;
pub use error::{Error, Result};
pub use session::{MemoryReport, Outcome, RunConfig, RunReport, Session};
pub use view::{GuestMemory, LittleEndian};
