//! wasm-mem: a toolkit for WebAssembly linear memory.
//!
//! The library holds the memory model of a module ([`model`]), the shared
//! rewrite core every pass uses ([`rewrite`]) and the passes themselves. The
//! `wasm-mem` command-line tool is a thin layer over it.

#![deny(missing_docs)]

pub mod component;
pub mod error;
pub mod footprint;
pub mod image;
pub mod input;
pub mod inspect;
pub mod lower_memory64;
pub mod lower_multi_memory;
pub mod manifest;
pub mod memory64_common;
pub mod model;
pub mod pack;
pub mod pack_objective;
mod pack_passive;
pub mod pages;
pub mod raise_memory64;
pub mod rewrite;
pub mod sections;
pub mod svg;

pub use error::{Error, Result};
pub use model::ModuleInfo;
