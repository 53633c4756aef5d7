//! The differential harness on the identity transform must find nothing; on
//! a transform that corrupts data segments it must find mismatches.

use wasm_mem_testkit::diff::{differential, generate, seeds, DiffOutcome, GenOptions};
use wasm_mem_testkit::Refusal;

/// Seeds per run; `WASM_MEM_DIFF_SEEDS=N` runs a longer campaign.
fn seed_count() -> usize {
    std::env::var("WASM_MEM_DIFF_SEEDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200)
}

/// (memories, of which 64-bit) declared by a module.
fn memories(module: &[u8]) -> (usize, usize) {
    let (mut all, mut wide) = (0, 0);
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        if let Ok(wasmparser::Payload::MemorySection(reader)) = payload {
            for memory in reader.into_iter().flatten() {
                all += 1;
                wide += usize::from(memory.memory64);
            }
        }
    }
    (all, wide)
}

fn identity(bytes: &[u8]) -> Result<Vec<u8>, Refusal> {
    Ok(bytes.to_vec())
}

/// Multi-memory and memory64 modules, as the lowering passes will use.
fn gen() -> GenOptions {
    let mut gen = GenOptions::default();
    gen.smith.max_memories = 4;
    gen.smith.memory64_enabled = true;
    gen
}

#[test]
fn identity_is_always_same() {
    let gen = gen();
    let config = GenOptions::engine_config();
    let seed_total = seed_count();
    let (mut same, mut called, mut calls, mut inconclusive) = (0, 0, 0, Vec::new());
    let (mut multi, mut wide) = (0, 0);
    for (i, seed) in seeds(seed_total, 1).enumerate() {
        if let Ok(module) = generate(&seed, &gen) {
            let (all, w) = memories(&module);
            multi += usize::from(all > 1);
            wide += usize::from(w > 0);
        }
        match differential(&seed, &gen, &identity, &config, &config) {
            DiffOutcome::Same { calls: n } => {
                same += 1;
                calls += n;
                if n > 0 {
                    called += 1;
                }
            }
            DiffOutcome::Inconclusive(why) => inconclusive.push(format!("seed {i}: {why}")),
            other => panic!("seed {i}: {other:?}"),
        }
    }
    println!(
        "identity: {same}/{seed_total} same, {called} called at least one function, {calls} calls, \
         {} inconclusive; {multi} modules with 2+ memories, {wide} with a 64-bit memory",
        inconclusive.len()
    );
    for line in &inconclusive {
        println!("  {line}");
    }
    assert_eq!(same, seed_total, "{inconclusive:?}");
    assert!(
        called >= seed_total / 2,
        "only {called} seeds called a function"
    );
}

/// Flips the last byte of every data segment: instances whose segments land
/// in an exported memory must differ.
fn corrupt_data(bytes: &[u8]) -> Result<Vec<u8>, Refusal> {
    let mut out = bytes.to_vec();
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        if let Ok(wasmparser::Payload::DataSection(reader)) = payload {
            for data in reader {
                let data = data.expect("wasm-smith output parses");
                if !data.data.is_empty() {
                    out[data.range.end - 1] ^= 0x5a;
                }
            }
        }
    }
    Ok(out)
}

#[test]
fn corrupted_data_is_a_mismatch() {
    let gen = gen();
    let config = GenOptions::engine_config();
    let mut mismatches = 0;
    let mut with_data = 0;
    for seed in seeds(60, 7) {
        let module = generate(&seed, &gen).expect("wasm-smith builds from 4 KiB");
        if corrupt_data(&module).unwrap() != module {
            with_data += 1;
        }
        if let DiffOutcome::Mismatch(why) =
            differential(&seed, &gen, &corrupt_data, &config, &config)
        {
            assert!(why.contains("memory") || why.contains("call"), "{why}");
            mismatches += 1;
        }
    }
    println!("corrupt data: {mismatches} mismatches among {with_data} modules with data");
    assert!(mismatches > 0);
}

#[test]
fn refusals_and_panics() {
    let gen = gen();
    let config = GenOptions::engine_config();
    let seed = seeds(1, 3).next().unwrap();
    let refuse = |_: &[u8]| -> Result<Vec<u8>, Refusal> { Err(Refusal::new("no")) };
    assert_eq!(
        differential(&seed, &gen, &refuse, &config, &config),
        DiffOutcome::Refused("no".into())
    );
    let panics = |_: &[u8]| -> Result<Vec<u8>, Refusal> { panic!("boom") };
    match differential(&seed, &gen, &panics, &config, &config) {
        DiffOutcome::Mismatch(why) => assert!(why.contains("boom")),
        other => panic!("{other:?}"),
    }
    // A transformed side that lacks a feature the module needs is caught.
    let mut no_multi = GenOptions::engine_config();
    no_multi.wasm_multi_memory(false).wasm_memory64(false);
    let mut rejected = 0;
    for seed in seeds(30, 11) {
        if let DiffOutcome::Mismatch(why) = differential(&seed, &gen, &identity, &config, &no_multi)
        {
            assert!(why.contains("does not compile"), "{why}");
            rejected += 1;
        }
    }
    assert!(rejected > 0);
}

#[test]
fn seeds_are_deterministic() {
    let a: Vec<_> = seeds(5, 42).collect();
    let b: Vec<_> = seeds(5, 42).collect();
    assert_eq!(a, b);
    assert!(a.iter().all(|s| (4096..=16384).contains(&s.len())));
    assert_ne!(a[0], a[1]);
    assert_ne!(seeds(1, 43).next(), seeds(1, 42).next());
}
