//! The spec runner on the identity transform: the multi-memory suite, the
//! memory64 suite and the core memory-related scripts must pass with zero
//! failures. This proves the runner before passes rely on it; the broken and
//! refusing transforms below prove it can fail and that refusals are skipped.

use wasm_mem_testkit::spec::{identity, print_table, run_files, run_wast, FileReport, SpecOptions};
use wasm_mem_testkit::{suite_files, Refusal};
use wasmparser::WasmFeatures;

/// The core scripts about linear memory (from the wasm-v2 suite, which has
/// the bulk-memory scripts).
const CORE_MEMORY_FILES: &[&str] = &[
    "address.wast",
    "align.wast",
    "bulk.wast",
    "data.wast",
    "endianness.wast",
    "load.wast",
    "memory.wast",
    "memory_copy.wast",
    "memory_fill.wast",
    "memory_grow.wast",
    "memory_init.wast",
    "memory_size.wast",
    "memory_trap.wast",
    "store.wast",
];

fn config() -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.wasm_multi_memory(true).wasm_memory64(true);
    config
}

fn core_memory_files() -> Vec<(String, String)> {
    let files: Vec<_> = suite_files("wasm-v2")
        .into_iter()
        .filter(|(name, _)| CORE_MEMORY_FILES.contains(&name.as_str()))
        .collect();
    assert_eq!(files.len(), CORE_MEMORY_FILES.len(), "core files missing");
    files
}

fn check(label: &str, reports: &[FileReport], min_passed: usize) {
    println!("== {label}");
    print_table(reports);
    let failures: Vec<String> = reports.iter().flat_map(|r| r.failure_messages()).collect();
    assert!(failures.is_empty(), "{label}: {} failures", failures.len());
    let passed: usize = reports.iter().map(|r| r.passed).sum();
    assert!(
        passed >= min_passed,
        "{label}: only {passed} commands passed"
    );
    assert!(reports.iter().all(|r| r.refused.is_empty()));
}

#[test]
fn multi_memory_suite_identity() {
    let opts = SpecOptions {
        config: config(),
        features: WasmFeatures::WASM2 | WasmFeatures::MULTI_MEMORY,
        transform: &identity,
    };
    let files = suite_files("multi-memory");
    assert!(files.len() >= 40);
    check("multi-memory", &run_files(&files, &opts), 900);
}

#[test]
fn memory64_suite_identity() {
    let opts = SpecOptions {
        config: config(),
        features: WasmFeatures::WASM2 | WasmFeatures::MEMORY64,
        transform: &identity,
    };
    let files = suite_files("memory64");
    assert!(files.len() >= 10);
    check("memory64", &run_files(&files, &opts), 1000);
}

#[test]
fn core_memory_files_identity() {
    let opts = SpecOptions {
        config: config(),
        features: WasmFeatures::WASM2,
        transform: &identity,
    };
    check("core memory", &run_files(&core_memory_files(), &opts), 1000);
}

/// A transform that swaps every module for an empty one: everything the
/// scripts invoke is gone, so the runner must report failures.
#[test]
fn broken_transform_fails() {
    let empty = wat::parse_str("(module)").unwrap();
    let replace = move |_: &[u8]| -> Result<Vec<u8>, Refusal> { Ok(empty.clone()) };
    let opts = SpecOptions {
        config: config(),
        features: WasmFeatures::WASM2,
        transform: &replace,
    };
    let (name, source) = core_memory_files()
        .into_iter()
        .find(|(n, _)| n == "memory_trap.wast")
        .unwrap();
    let report = run_wast(&name, &source, &opts);
    assert!(report.failed.len() > 10, "{report:?}");
    assert!(report.failure_messages()[0].starts_with("memory_trap.wast:"));
}

/// Wrong expectations fail: a trap expected where a value comes back, and a
/// NaN expected where an integer pattern is stored.
#[test]
fn wrong_expectations_fail() {
    let source = r#"
        (module
          (memory 1)
          (func (export "f") (result i32) (i32.store (i32.const 8) (i32.const 0x1234)) (i32.load (i32.const 8))))
        (assert_return (invoke "f") (i32.const 0x1234))
        (assert_trap (invoke "f") "unreachable")
        (assert_return (invoke "f") (f32.const nan:canonical))
    "#;
    let opts = SpecOptions {
        config: config(),
        features: WasmFeatures::WASM2,
        transform: &identity,
    };
    let report = run_wast("inline.wast", source, &opts);
    assert_eq!(report.passed, 2, "{report:?}");
    assert_eq!(report.failed.len(), 2, "{report:?}");
    assert_eq!(report.failed[0].line, 6);
    assert!(
        report.failed[0].text.contains("expected trap"),
        "{report:?}"
    );
}

/// Non-trap errors never satisfy assert_trap; unlinkable and invalid
/// modules are checked on the original.
#[test]
fn traps_links_and_invalid_modules() {
    let source = r#"
        (module $m (memory (export "mem") 1) (func (export "oob") (result i32) (i32.load (i32.const 65536))))
        (register "m" $m)
        (assert_trap (invoke "oob") "out of bounds memory access")
        (assert_unlinkable (module (import "m" "nope" (memory 1))) "unknown import")
        (assert_unlinkable (module (import "m" "mem" (memory 2))) "incompatible import type")
        (assert_trap (module (memory 1) (data (i32.const 65536) "x")) "out of bounds memory access")
        (assert_invalid (module (func (result i32))) "type mismatch")
        (assert_malformed (module quote "(func (i32.const))") "unexpected token")
        (assert_return (get $m "nope") (i32.const 0))
    "#;
    let opts = SpecOptions {
        config: config(),
        features: WasmFeatures::WASM2,
        transform: &identity,
    };
    let report = run_wast("inline.wast", source, &opts);
    assert_eq!(report.passed, 8, "{report:?}");
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(report.failed[0].text.contains("no exported global"));
}

/// A refusing transform: modules are listed as refused, the commands on them
/// are skipped, and nothing fails.
#[test]
fn refusals_are_skipped_not_failed() {
    let refuse = |_: &[u8]| -> Result<Vec<u8>, Refusal> { Err(Refusal::new("not supported")) };
    let opts = SpecOptions {
        config: config(),
        features: WasmFeatures::WASM2 | WasmFeatures::MULTI_MEMORY,
        transform: &refuse,
    };
    let files: Vec<_> = suite_files("multi-memory")
        .into_iter()
        .filter(|(n, _)| n == "linking0.wast" || n == "memory_trap1.wast")
        .collect();
    let reports = run_files(&files, &opts);
    print_table(&reports);
    for r in &reports {
        assert!(r.failed.is_empty(), "{r:?}");
        assert!(!r.refused.is_empty(), "{r:?}");
        assert!(!r.skipped.is_empty(), "{r:?}");
        assert!(r.refused[0].text.contains("not supported"));
    }
}

/// A transform that panics is a failure, not a crash of the runner.
#[test]
fn panicking_transform_fails() {
    let panics = |_: &[u8]| -> Result<Vec<u8>, Refusal> { panic!("internal error in pass") };
    let opts = SpecOptions {
        config: config(),
        features: WasmFeatures::WASM2,
        transform: &panics,
    };
    let report = run_wast(
        "inline.wast",
        "(module (func (export \"f\")))\n(invoke \"f\")",
        &opts,
    );
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(report.failed[0].text.contains("internal error in pass"));
    assert_eq!(report.skipped.len(), 1);
}
