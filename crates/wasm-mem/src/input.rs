//! Reading input (binary or text) and validating modules.

use crate::error::{Error, Result};
use std::borrow::Cow;
use wasmparser::{Validator, WasmFeatures};

/// The features wasm-mem accepts: everything wasmparser validates by default
/// (Wasm 3.0: multi-memory, memory64, bulk memory, extended-const, SIMD,
/// threads, GC, ...) plus the custom-page-sizes proposal.
pub fn features() -> WasmFeatures {
    WasmFeatures::default() | WasmFeatures::CUSTOM_PAGE_SIZES
}

/// Turn input bytes into a binary module: binary input is borrowed as is;
/// anything else is parsed as WebAssembly text.
pub fn to_binary(bytes: &[u8]) -> Result<Cow<'_, [u8]>> {
    if bytes.starts_with(b"\0asm") {
        return Ok(Cow::Borrowed(bytes));
    }
    let looks_textual = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'(' || *b == b';');
    if !looks_textual {
        // Reuse the binary path's clear message about the missing magic.
        crate::sections::check_preamble(bytes)?;
    }
    wat::parse_bytes(bytes).map_err(|e| Error::Text(e.to_string()))
}

/// Validate a core module with [`features`].
pub fn validate(bytes: &[u8]) -> Result<()> {
    validate_with(bytes, features())
}

/// Validate a core module with the given features.
pub fn validate_with(bytes: &[u8], features: WasmFeatures) -> Result<()> {
    Validator::new_with_features(features)
        .validate_all(bytes)
        .map(|_| ())
        .map_err(|e| Error::from_parser(bytes, &e))
}

/// Validate the output of a pass: failure is an internal error, never a file.
pub fn validate_output(bytes: &[u8], features: WasmFeatures, pass: &str) -> Result<()> {
    Validator::new_with_features(features)
        .validate_all(bytes)
        .map(|_| ())
        .map_err(|e| {
            Error::Internal(format!(
                "{pass} produced an invalid module: {} at byte offset {}",
                e.message(),
                e.offset()
            ))
        })
}
