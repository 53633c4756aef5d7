//! Differential tests of `lower memory64` and `raise memory64` on wasm-smith
//! modules (made terminating with `ensure_termination` before the pass):
//! original and transformed run side by side on wasmtime and every exported
//! function's results and traps (trap codes included), the exported globals
//! and the exported memories must match.
//!
//! Lowering: memory64 and table64 on in the generator, memory64 off on the
//! lowered side. Raising: memory32 modules, raised with tables, run with
//! memory64 on.
//!
//! The test suite runs a bounded number of seeds. The long run:
//! `WASM_MEM_LONG=1 cargo test --release -p wasm-mem-testkit --test memory64_diff -- --nocapture`
//! (`WASM_MEM_SEEDS=N` sets the count).

use wasm_mem::lower_memory64::lower_memory64;
use wasm_mem::raise_memory64::{raise_memory64, RaiseOptions};
use wasm_mem_testkit::diff::{differential, seeds, DiffOutcome, GenOptions};
use wasm_mem_testkit::{Refusal, Transform};

fn seed_count(default: usize) -> usize {
    if let Ok(n) = std::env::var("WASM_MEM_SEEDS") {
        return n.parse().expect("WASM_MEM_SEEDS is a number");
    }
    if std::env::var_os("WASM_MEM_LONG").is_some() {
        return 5000;
    }
    default
}

fn refusal(e: wasm_mem::Error) -> Refusal {
    match e {
        wasm_mem::Error::Refused(reason) => Refusal::new(reason),
        other => panic!("{other}"),
    }
}

#[derive(Default, Debug)]
struct Tally {
    same: usize,
    calls: usize,
    refused: usize,
    inconclusive: usize,
    mismatches: Vec<String>,
}

fn run(
    label: &str,
    n: usize,
    base: u64,
    gen: &GenOptions,
    transform: Transform,
    original: &wasmtime::Config,
    transformed: &wasmtime::Config,
) -> Tally {
    let mut tally = Tally::default();
    for (i, seed) in seeds(n, base).enumerate() {
        match differential(&seed, gen, transform, original, transformed) {
            DiffOutcome::Same { calls } => {
                tally.same += 1;
                tally.calls += calls;
            }
            DiffOutcome::Refused(why) => {
                tally.refused += 1;
                println!("{label} seed {i}: refused: {why}");
            }
            DiffOutcome::Inconclusive(_) => tally.inconclusive += 1,
            DiffOutcome::Mismatch(why) => tally.mismatches.push(format!("seed {i}: {why}")),
        }
    }
    println!(
        "{label}: {n} seeds: {} same ({} calls compared), {} refused, {} inconclusive, {} mismatches",
        tally.same,
        tally.calls,
        tally.refused,
        tally.inconclusive,
        tally.mismatches.len()
    );
    tally
}

fn check(tally: &Tally, n: usize) {
    assert!(tally.mismatches.is_empty(), "{:#?}", tally.mismatches);
    // The comparison must actually run on most seeds.
    assert!(tally.same * 2 >= n, "{tally:?}");
    assert!(tally.calls > 0, "{tally:?}");
}

#[test]
fn lowered_memory64_modules_behave_the_same() {
    let mut gen = GenOptions::default();
    gen.smith.memory64_enabled = true;
    gen.smith.max_memories = 2;
    gen.smith.max_tables = 2;
    gen.smith.bulk_memory_enabled = true;
    gen.smith.reference_types_enabled = true;
    let original = GenOptions::engine_config();
    let mut lowered = GenOptions::engine_config();
    lowered.wasm_memory64(false);
    let lower = |bytes: &[u8]| lower_memory64(bytes).map(|(out, _)| out).map_err(refusal);
    let n = seed_count(150);
    let tally = run(
        "lower memory64",
        n,
        0x6464,
        &gen,
        &lower,
        &original,
        &lowered,
    );
    check(&tally, n);
}

#[test]
fn raised_memory32_modules_behave_the_same() {
    let mut gen = GenOptions::default();
    gen.smith.memory64_enabled = false;
    gen.smith.max_memories = 2;
    gen.smith.max_tables = 2;
    gen.smith.bulk_memory_enabled = true;
    gen.smith.reference_types_enabled = true;
    let original = GenOptions::engine_config();
    let raised = GenOptions::engine_config();
    let raise = |bytes: &[u8]| {
        let options = RaiseOptions {
            memories: None,
            tables: true,
        };
        raise_memory64(bytes, &options)
            .map(|(out, _)| out)
            .map_err(refusal)
    };
    let n = seed_count(150);
    let tally = run(
        "raise memory64",
        n,
        0x3232,
        &gen,
        &raise,
        &original,
        &raised,
    );
    check(&tally, n);
}
