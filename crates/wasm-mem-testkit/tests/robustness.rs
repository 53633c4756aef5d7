//! The fuzz properties of `fuzz/` for a fixed, bounded set of seeds, on the
//! stable toolchain, so CI keeps them (issue 8). Same property code as the
//! fuzz targets (`fuzz/src/props.rs`, `fuzz/src/smith_props.rs`):
//!
//! 1. arbitrary bytes, and arbitrary mutations of small valid modules, into
//!    every command's library path: a located error or a validating output,
//!    never a panic or an internal error;
//! 2. wasm-smith modules (multi-memory, memory64, bulk memory, data
//!    segments) into every pass: a refusal or a validating output; and for
//!    the semantic passes (pack, the lowerings, raise) a few seeds run in
//!    wasmtime through the differential harness ([`differential`]).
//!
//! Counts are printed (`-- --nocapture`). `WASM_MEM_ROBUST_SCALE=N`
//! multiplies every seed count, for longer runs.
//!
//! Regression cases found by the fuzz targets are at the end.

#[path = "../../../fuzz/src/props.rs"]
mod props;
#[path = "../../../fuzz/src/smith_props.rs"]
mod smith_props;

use props::{run_all, run_command, XorShift, COMMANDS, SEED_MODULES};
use wasm_mem_testkit::diff::{differential, seeds, DiffOutcome, GenOptions};
use wasm_mem_testkit::Refusal;

fn scale() -> usize {
    std::env::var("WASM_MEM_ROBUST_SCALE").map_or(1, |s| s.parse().expect("a number"))
}

/// Names the failing input when a property panics.
struct Case<'a>(&'a str, &'a [u8]);

impl Drop for Case<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "failing case: {} ({} bytes): {:02x?}",
                self.0,
                self.1.len(),
                self.1
            );
        }
    }
}

/// One random edit of `bytes`, like a fuzzer's mutator: flip a bit, set a
/// byte to an interesting value, insert or delete a run, truncate, or copy a
/// range elsewhere.
fn mutate(bytes: &mut Vec<u8>, rng: &mut XorShift) {
    let len = bytes.len().max(1);
    let pos = (rng.next() % len as u64) as usize;
    let last = bytes.len().saturating_sub(1);
    match rng.next() % 7 {
        0 if !bytes.is_empty() => bytes[pos.min(last)] ^= 1 << (rng.next() % 8),
        1 if !bytes.is_empty() => {
            const INTERESTING: [u8; 8] = [0, 1, 0x7f, 0x80, 0xff, 0x40, 0x0b, 0x41];
            bytes[pos.min(last)] = INTERESTING[(rng.next() % 8) as usize];
        }
        2 => {
            let n = 1 + (rng.next() % 6) as usize;
            let at = pos.min(bytes.len());
            for _ in 0..n {
                bytes.insert(at, rng.next() as u8);
            }
        }
        3 if !bytes.is_empty() => {
            let at = pos.min(bytes.len() - 1);
            let n = (1 + (rng.next() % 8) as usize).min(bytes.len() - at);
            bytes.drain(at..at + n);
        }
        4 => bytes.truncate(pos),
        5 if bytes.len() > 2 => {
            let from = (rng.next() % bytes.len() as u64) as usize;
            let n = (1 + (rng.next() % 16) as usize).min(bytes.len() - from);
            let chunk = bytes[from..from + n].to_vec();
            let at = pos.min(bytes.len());
            bytes.splice(at..at, chunk);
        }
        _ => bytes.push(rng.next() as u8),
    }
}

#[test]
fn arbitrary_bytes_and_mutated_modules_never_panic() {
    let mut rng = XorShift(0x5eed_0008);
    let mut counts = [0usize; 3];
    let mut inputs = 0;
    // Pure noise, with and without a module header.
    for i in 0..2000 * scale() {
        let len = (rng.next() % 200) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if i % 2 == 0 {
            bytes.splice(0..0, *b"\0asm\x01\0\0\0");
        }
        let _case = Case("noise", &bytes);
        let c = run_all(&bytes, i as u8).unwrap_or_else(|v| panic!("noise {i}: {v}"));
        (0..3).for_each(|k| counts[k] += c[k]);
        inputs += 1;
    }
    // Random edits (1 to 4 at a time) of small valid modules.
    for (m, text) in SEED_MODULES.iter().enumerate() {
        let module = wat::parse_str(text).unwrap();
        let _case = Case("seed module", &module);
        let c = run_all(&module, 0).unwrap_or_else(|v| panic!("seed {m}: {v}"));
        assert_eq!(c[0], 0, "seed module {m} is valid");
        for i in 0..1500 * scale() {
            let mut bytes = module.clone();
            for _ in 0..1 + rng.next() % 4 {
                mutate(&mut bytes, &mut rng);
            }
            let _case = Case("mutant", &bytes);
            let c = run_all(&bytes, i as u8).unwrap_or_else(|v| panic!("seed {m} edit {i}: {v}"));
            (0..3).for_each(|k| counts[k] += c[k]);
            inputs += 1;
        }
        // The structural mutants of the corpus test, on the small modules.
        for mutant in props::mutants(&module, 20, m as u64) {
            let _case = Case(&mutant.what, &mutant.bytes);
            let c = run_all(&mutant.bytes, 0)
                .unwrap_or_else(|v| panic!("seed {m}, {}: {v}", mutant.what));
            (0..3).for_each(|k| counts[k] += c[k]);
            inputs += 1;
        }
    }
    println!(
        "bytes: {inputs} inputs x {} commands: {} rejected, {} refused, {} done",
        COMMANDS.len(),
        counts[0],
        counts[1],
        counts[2]
    );
    assert!(counts[0] > 0 && counts[2] > 0, "both kinds of outcome seen");
}

#[test]
fn smith_modules_are_refused_or_rewritten_into_valid_modules() {
    let mut per_command = [[0usize; 3]; COMMANDS.len()];
    let mut modules = 0;
    for kind in 0..smith_props::CONFIGS {
        let config = smith_props::smith_config(kind);
        for (i, seed) in seeds(25 * scale(), 0x8000 + u64::from(kind)).enumerate() {
            let mut u = arbitrary::Unstructured::new(&seed);
            let Ok(module) = wasm_smith::Module::new(config.clone(), &mut u) else {
                continue;
            };
            let bytes = module.to_bytes();
            let _case = Case("smith module", &bytes);
            modules += 1;
            for (c, command) in COMMANDS.iter().enumerate() {
                let outcome = run_command(*command, &bytes, i as u8)
                    .unwrap_or_else(|v| panic!("config {kind} seed {i}: {v}"));
                let k = match outcome {
                    props::Outcome::Rejected(why) => {
                        panic!("config {kind} seed {i}: a wasm-smith module rejected: {why}")
                    }
                    props::Outcome::Refused(_) => 1,
                    props::Outcome::Done => 2,
                };
                per_command[c][k] += 1;
            }
        }
    }
    println!("smith: {modules} modules");
    for (c, command) in COMMANDS.iter().enumerate() {
        println!(
            "  {:<20} {} refused, {} done",
            command.name(),
            per_command[c][1],
            per_command[c][2]
        );
    }
    assert!(modules >= 50, "wasm-smith built {modules} modules");
    for (c, command) in COMMANDS.iter().enumerate() {
        assert!(
            per_command[c][2] > 0,
            "{} never produced output",
            command.name()
        );
    }
}

fn refusal(e: wasm_mem::Error) -> Refusal {
    match e {
        wasm_mem::Error::Refused(reason) => Refusal::new(reason),
        other => panic!("{other}"),
    }
}

fn pack(bytes: &[u8]) -> Result<Vec<u8>, Refusal> {
    let info = wasm_mem::ModuleInfo::read(bytes).map_err(refusal)?;
    wasm_mem::pack::pack(bytes, &info, &Default::default())
        .map(|(out, _)| out)
        .map_err(refusal)
}

fn pack_extended_const(bytes: &[u8]) -> Result<Vec<u8>, Refusal> {
    let info = wasm_mem::ModuleInfo::read(bytes).map_err(refusal)?;
    let options = wasm_mem::pack::PackOptions {
        extended_const: true,
        max_segments: 3,
        ..Default::default()
    };
    wasm_mem::pack::pack(bytes, &info, &options)
        .map(|(out, _)| out)
        .map_err(refusal)
}

fn lower_multi_memory(bytes: &[u8]) -> Result<Vec<u8>, Refusal> {
    wasm_mem::lower_multi_memory::lower_multi_memory(bytes, &Default::default())
        .map(|(out, _)| out)
        .map_err(refusal)
}

fn lower_memory64(bytes: &[u8]) -> Result<Vec<u8>, Refusal> {
    wasm_mem::lower_memory64::lower_memory64(bytes)
        .map(|(out, _)| out)
        .map_err(refusal)
}

fn raise_memory64(bytes: &[u8]) -> Result<Vec<u8>, Refusal> {
    let options = wasm_mem::raise_memory64::RaiseOptions {
        memories: None,
        tables: true,
    };
    wasm_mem::raise_memory64::raise_memory64(bytes, &options)
        .map(|(out, _)| out)
        .map_err(refusal)
}

/// A few seeds per semantic pass through the differential harness, on the
/// mixed configuration (several memories, memory64, bulk memory, data).
#[test]
fn semantic_passes_behave_the_same_in_wasmtime() {
    let original = GenOptions::engine_config();
    let mut no_multi_memory = GenOptions::engine_config();
    no_multi_memory.wasm_multi_memory(false);
    let mut no_memory64 = GenOptions::engine_config();
    no_memory64.wasm_memory64(false);
    type Case<'a> = (
        &'a str,
        wasm_mem_testkit::Transform<'a>,
        &'a wasmtime::Config,
        u8,
    );
    let cases: [Case; 5] = [
        ("pack", &pack, &original, 0),
        (
            "pack --extended-const --max-segments 3",
            &pack_extended_const,
            &original,
            2,
        ),
        (
            "lower multi-memory",
            &lower_multi_memory,
            &no_multi_memory,
            0,
        ),
        ("lower memory64", &lower_memory64, &no_memory64, 1),
        ("raise memory64 --tables", &raise_memory64, &original, 2),
    ];
    let mut mismatches = Vec::new();
    for (c, (label, transform, transformed, kind)) in cases.iter().enumerate() {
        let mut gen = GenOptions {
            smith: smith_props::smith_config(*kind),
            ..GenOptions::default()
        };
        gen.smith.max_imports = 0;
        if label.starts_with("lower multi") {
            // Explicit bounds checks trap with `unreachable`; the grown
            // combined memory is larger than any one exported memory.
            gen.exact_trap_kinds = false;
            gen.exported_memory_prefix = true;
            gen.memory_size_probes = true;
        }
        let (mut same, mut calls, mut refused, mut inconclusive) = (0, 0, 0, 0);
        for (i, seed) in seeds(6 * scale(), 0x8800 + c as u64).enumerate() {
            match differential(&seed, &gen, *transform, &original, transformed) {
                DiffOutcome::Same { calls: n } => {
                    same += 1;
                    calls += n;
                }
                DiffOutcome::Refused(_) => refused += 1,
                DiffOutcome::Inconclusive(_) => inconclusive += 1,
                DiffOutcome::Mismatch(why) => mismatches.push(format!("{label} seed {i}: {why}")),
            }
        }
        println!(
            "differential {label}: {same} same ({calls} calls), {refused} refused, {inconclusive} inconclusive"
        );
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

/// Inputs the fuzz targets found, kept as regression cases: each must be a
/// located error or a validating output on every command.
#[test]
fn fuzz_findings_stay_fixed() {
    let findings: &[(&str, &[u8])] = &[
        (
            // sections::split sliced past the end of a truncated code section
            "code section claiming more bytes than remain",
            &[
                0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x06, 0x01, 0x60, 0x01, 0x7f,
                0x01, 0x7f, 0x03, 0x02, 0x01, 0x00, 0x05, 0x04, 0x01, 0x01, 0x01, 0x02, 0x07, 0x05,
                0x01, 0x01, 0x66, 0x00, 0x00, 0x0a, 0x09, 0x01, 0x07, 0x00, 0x20,
            ],
        ),
        (
            // ModuleInfo::read indexed the globals with an unvalidated global.get
            "data offset global.get of a missing global",
            &[
                0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x06, 0x01, 0x60, 0x02, 0x7f,
                0x7f, 0x00, 0x02, 0x0f, 0x01, 0x03, 0x65, 0x6e, 0x76, 0x06, 0x6d, 0x65, 0x6d, 0x6f,
                0x72, 0x79, 0x02, 0x00, 0x01, 0x03, 0x02, 0x01, 0x00, 0x05, 0x04, 0x01, 0x08, 0x02,
                0x00, 0x06, 0x07, 0x01, 0x7f, 0x00, 0x41, 0x80, 0x08, 0x0b, 0x07, 0x05, 0x01, 0x01,
                0x73, 0x00, 0x00, 0x0a, 0x0c, 0x01, 0x0a, 0x00, 0x20, 0x00, 0x20, 0x01, 0x3a, 0x40,
                0x01, 0x00, 0x0b, 0x0b, 0x13, 0x02, 0x00, 0x23, 0x08, 0x0b, 0x06, 0x00, 0x00, 0x00,
                0x01, 0x00, 0x00, 0x02, 0x01, 0x41, 0x00, 0x0b, 0x01, 0x7a, 0x00, 0x0e, 0x04, 0x6e,
                0x61, 0x6d, 0x65, 0x07, 0x07, 0x01, 0x00, 0x04, 0x62, 0x61, 0x73, 0x65,
            ],
        ),
        (
            // input::validate accepted an empty component (the validator
            // takes components), and ModuleInfo::read then refused it
            "empty component (preamble of layer 1)",
            &[0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00],
        ),
    ];
    for (what, bytes) in findings {
        let _case = Case(what, bytes);
        for variant in 0..8 {
            run_all(bytes, variant).unwrap_or_else(|v| panic!("{what}: {v}"));
        }
    }
    println!("fuzz findings: {} regression cases", findings.len());
}
