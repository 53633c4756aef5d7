//! Differential tests of `lower multi-memory`: wasm-smith modules with 2 to
//! 8 memories (some memory64), made terminating with `ensure_termination`,
//! run as the original on wasmtime with multi-memory on and lowered (exact
//! mode) with it off. Results, traps with their trap codes (the pass's own
//! bounds checks end in a real out-of-bounds access, so they trap as the
//! original does), exported globals, memory 0's bytes (an exported memory 0
//! is compared up to the original's size: the host sees a larger buffer)
//! and every memory's size as the module sees it (`memory.size` probes the
//! harness adds to the module) must match.
//!
//! The test suite runs a bounded number of seeds; the long run is
//! `WASM_MEM_LONG=N cargo test -p wasm-mem-testkit --release --test
//! multi_memory_diff -- --nocapture` (N seeds).

use wasm_mem::lower_multi_memory::{lower_multi_memory, LowerOptions};
use wasm_mem_testkit::diff::{differential, generate, seeds, DiffOutcome, GenOptions};
use wasm_mem_testkit::Refusal;

fn lower(bytes: &[u8]) -> Result<Vec<u8>, Refusal> {
    match lower_multi_memory(bytes, &LowerOptions::default()) {
        Ok((out, _)) => Ok(out),
        Err(wasm_mem::Error::Refused(reason)) => Err(Refusal::new(reason)),
        Err(e) => panic!("lower multi-memory failed: {e}"),
    }
}

fn gen() -> GenOptions {
    let mut gen = GenOptions::default();
    gen.smith.min_memories = 2;
    gen.smith.max_memories = 8;
    gen.smith.memory64_enabled = true;
    gen.smith.bulk_memory_enabled = true;
    gen.smith.simd_enabled = true;
    // Only memory 0 may stay exported through the lowering: let wasm-smith
    // choose exports instead of exporting every memory.
    gen.smith.export_everything = false;
    gen.smith.min_exports = 1;
    // An exported memory 0 keeps its bytes at the same addresses but shows
    // the host a larger buffer (the other memories follow it): compare the
    // original's bytes, and every memory's size through memory.size inside
    // the module.
    gen.exported_memory_prefix = true;
    gen.memory_size_probes = true;
    gen
}

fn run(n: usize, base: u64) {
    let gen = gen();
    let original = GenOptions::engine_config();
    let mut lowered = GenOptions::engine_config();
    lowered.wasm_multi_memory(false);
    let (mut same, mut calls, mut refused, mut inconclusive) = (0, 0, Vec::new(), 0);
    let mut mismatches = Vec::new();
    for (i, seed) in seeds(n, base).enumerate() {
        match differential(&seed, &gen, &lower, &original, &lowered) {
            DiffOutcome::Same { calls: c } => {
                same += 1;
                calls += c;
            }
            DiffOutcome::Refused(why) => refused.push(format!("seed {i}: {why}")),
            DiffOutcome::Inconclusive(_) => inconclusive += 1,
            DiffOutcome::Mismatch(why) => {
                let text = generate(&seed, &gen)
                    .ok()
                    .and_then(|b| wasmprinter::print_bytes(b).ok())
                    .unwrap_or_default();
                let path = std::env::temp_dir().join(format!("multi_memory_diff_{base}_{i}.wat"));
                let _ = std::fs::write(&path, text);
                mismatches.push(format!("seed {i} ({}): {why}", path.display()));
            }
        }
    }
    println!(
        "multi-memory differential: {n} seeds, {same} same ({calls} calls compared), {} refused, {inconclusive} inconclusive, {} mismatches",
        refused.len(),
        mismatches.len()
    );
    for r in refused.iter().take(10) {
        println!("  {r}");
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
    assert!(same >= n / 2, "only {same} of {n} seeds compared");
}

/// 150 seeds in the test suite; `WASM_MEM_LONG=N` for a long run.
#[test]
fn lowered_modules_behave_like_the_originals() {
    let n = std::env::var("WASM_MEM_LONG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    run(n, 0x6d756c7469);
}
