//! Hostile input against the `wasm-mem` binary (issue 8): mutants of the
//! real-world corpus, resource bounds under a memory limit, and the output
//! safety rules, for every command. `cli.rs` has the basic bad-input cases
//! (empty, garbage, truncation per section, size lies); this file goes
//! further.
//!
//! Corpus: `WASM_MEM_CORPUS` or ~/.cache/wasm-mem/corpus (fetched with
//! `../shared/corpus/fetch.sh DIR`); the corpus test is skipped with a note
//! when it is absent.

#[path = "../../../fuzz/src/props.rs"]
mod props;

/// The library crate's corpus lister.
#[path = "../../wasm-mem/tests/common/mod.rs"]
mod common;

use props::{Command as Cmd, COMMANDS};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wasm-mem"))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The CLI arguments of `command` on `input`, writing to `out` when it
/// writes a module. `run` is not in [`COMMANDS`] (it executes the module)
/// and is added by the callers that check bad input.
fn args(command: Cmd, input: &Path, out: &Path) -> Vec<String> {
    let (before, after) = command.cli_args();
    let mut a: Vec<String> = before.iter().map(|s| s.to_string()).collect();
    a.push(input.display().to_string());
    a.extend(after.iter().map(|s| s.to_string()));
    if command.writes_module() {
        a.push("-o".into());
        a.push(out.display().to_string());
    }
    a
}

fn run_args(a: &[String]) -> Output {
    bin().args(a).stdin(Stdio::null()).output().unwrap()
}

/// Every entry of `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Run every command (and `run`) on the invalid module `bytes`: exit 2, an
/// error naming where (`byte offset`), no output file, the input untouched,
/// nothing else left in the directory. Returns the number of runs.
fn assert_rejected_by_every_command(dir: &Path, what: &str, bytes: &[u8]) -> usize {
    let input = dir.join("in.wasm");
    std::fs::write(&input, bytes).unwrap();
    let out = dir.join("out.wasm");
    let mut runs: Vec<Vec<String>> = COMMANDS.iter().map(|c| args(*c, &input, &out)).collect();
    runs.push(vec!["run".into(), input.display().to_string()]);
    for a in &runs {
        let o = run_args(a);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{what}: {a:?}: {err}");
        assert!(err.starts_with("error: "), "{what}: {a:?}: {err}");
        assert!(
            err.contains("byte offset") || err.contains("invalid text input"),
            "{what}: {a:?}: no location in {err}"
        );
        assert!(!out.exists(), "{what}: {a:?} wrote an output file");
        assert_eq!(
            std::fs::read(&input).unwrap(),
            bytes,
            "{what}: input changed"
        );
        assert_eq!(listing(dir), ["in.wasm"], "{what}: {a:?} left files behind");
    }
    runs.len()
}

/// The corpus modules that validate, by file name.
fn corpus() -> Option<Vec<(String, Vec<u8>)>> {
    let mut modules = Vec::new();
    for path in common::corpus_modules()? {
        let bytes = std::fs::read(&path).unwrap();
        if wasm_mem::input::validate(&bytes).is_err() {
            eprintln!("note: {} does not validate, skipped", path.display());
            continue;
        }
        modules.push((
            path.file_name().unwrap().to_string_lossy().into_owned(),
            bytes,
        ));
    }
    Some(modules)
}

/// Mutants of every corpus module: truncations at every section boundary
/// and at sampled byte positions, bit flips, overlong and overflowing
/// LEB128 section sizes and counts, size lies, duplicated sections, counts
/// of 2^32-1. The library path of every command runs on every mutant (an
/// invalid mutant is rejected by the validation all commands share, so it
/// runs once; a valid one through all seven); the binary runs every
/// command on a sample of the invalid ones.
#[test]
fn corpus_mutants_are_rejected_cleanly_by_every_command() {
    let Some(modules) = corpus() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (mut invalid, mut valid, mut cli_runs) = (0, 0, 0);
    let mut cli_sample = Vec::new();
    for (m, (name, module)) in modules.iter().enumerate() {
        let large = module.len() > 1_000_000;
        let sampled = if large { 4 } else { 16 };
        let mutants = props::mutants(module, sampled, m as u64);
        for (i, mutant) in mutants.iter().enumerate() {
            let what = format!("{name}: {}", mutant.what);
            match wasm_mem::input::validate(&mutant.bytes) {
                Err(_) => {
                    invalid += 1;
                    match props::run_command(Cmd::Inspect, &mutant.bytes, 0) {
                        Ok(props::Outcome::Rejected(_)) => {}
                        other => panic!("{what}: {other:?}"),
                    }
                    // The binary on a spread-out sample of the small modules.
                    if module.len() < 500_000 && i % 23 == 0 {
                        cli_sample.push((what, mutant.bytes.clone()));
                    }
                }
                Ok(()) => {
                    valid += 1;
                    if large {
                        // Keep the test in seconds: the passes on a large
                        // valid mutant are the corpus tests' job.
                        props::run_command(Cmd::Inspect, &mutant.bytes, 0)
                            .unwrap_or_else(|v| panic!("{what}: {v}"));
                        continue;
                    }
                    props::run_all(&mutant.bytes, i as u8)
                        .unwrap_or_else(|v| panic!("{what}: {v}"));
                }
            }
        }
    }
    for (what, bytes) in &cli_sample {
        cli_runs += assert_rejected_by_every_command(dir.path(), what, bytes);
    }
    println!(
        "corpus mutants: {} modules, {invalid} invalid (rejected), {valid} still valid (all 7 commands ran, inspect only above 1 MB); binary: {} mutants, {cli_runs} runs, all exit 2",
        modules.len(),
        cli_sample.len()
    );
    assert!(invalid > 0 && !cli_sample.is_empty());
}

/// Bad input `run` sees like every other command (it never gets to execute).
#[test]
fn run_rejects_bad_input_like_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let module = wat::parse_str(props::SEED_MODULES[1]).unwrap();
    let mut total = 0;
    for mutant in props::mutants(&module, 0, 1) {
        if wasm_mem::input::validate(&mutant.bytes).is_err() {
            total += assert_rejected_by_every_command(dir.path(), &mutant.what, &mutant.bytes);
        }
    }
    println!("structural mutants of a small module: {total} runs, all exit 2");
}

// ---------------------------------------------------------------------------
// Resource bounds: declared sizes must not drive allocation.
// ---------------------------------------------------------------------------

/// The writable private memory (heap, anonymous mappings, thread stacks)
/// each command may use on these tiny inputs: `prlimit --data`, so an
/// allocation driven by a declared size fails (and the binary aborts)
/// instead of succeeding on a machine with enough memory.
const DATA_LIMIT: u64 = 96 << 20;

/// `prlimit`, when the system has it (util-linux).
fn prlimit() -> Option<&'static str> {
    let found = Command::new("prlimit")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!("note: no prlimit (util-linux): resource-bound test skipped");
    }
    found.then_some("prlimit")
}

/// Run `a` under the data limit.
fn run_limited(prlimit: &str, limit: u64, a: &[String]) -> Output {
    Command::new(prlimit)
        .arg(format!("--data={limit}"))
        .arg(env!("CARGO_BIN_EXE_wasm-mem"))
        .args(a)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Every command (and, for invalid input, `run`) on `bytes` under the
/// limit: no abort, no signal, exit `expect` (or 2 for a refusal when
/// `expect` is 0), and a located error when it fails.
fn bounded(what: &str, bytes: &[u8], invalid: bool) {
    let Some(prlimit) = prlimit() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wasm");
    std::fs::write(&input, bytes).unwrap();
    let out = dir.path().join("out.wasm");
    let mut runs: Vec<Vec<String>> = COMMANDS.iter().map(|c| args(*c, &input, &out)).collect();
    if invalid {
        runs.push(vec!["run".into(), input.display().to_string()]);
    }
    let svg = dir.path().join("map.svg");
    runs.push(vec![
        "inspect".into(),
        input.display().to_string(),
        "--svg".into(),
        svg.display().to_string(),
    ]);
    for a in &runs {
        let o = run_limited(prlimit, DATA_LIMIT, a);
        let err = stderr(&o);
        assert!(
            !err.contains("memory allocation") && !err.contains("panicked"),
            "{what}: {a:?}: {err}"
        );
        let code = o.status.code();
        assert!(code.is_some(), "{what}: {a:?} killed by a signal: {err}");
        if invalid {
            assert_eq!(code, Some(2), "{what}: {a:?}: {err}");
            assert!(err.contains("byte offset"), "{what}: {a:?}: {err}");
        } else {
            assert!(
                code == Some(0) || code == Some(1) || (code == Some(2) && err.contains("refused")),
                "{what}: {a:?}: {code:?} {err}"
            );
        }
        let _ = std::fs::remove_file(&out);
    }
    if svg.exists() {
        assert!(std::fs::metadata(&svg).unwrap().len() < 1 << 20);
    }
}

/// The limit is real: the same commands on an ordinary module fit, and a
/// run that has to hold a large module does not (so the bounds below are
/// not vacuous).
#[test]
fn resource_limit_is_effective() {
    let Some(prlimit) = prlimit() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wasm");
    std::fs::write(&input, wat::parse_str(props::SEED_MODULES[1]).unwrap()).unwrap();
    let out = dir.path().join("out.wasm");
    for c in COMMANDS {
        let o = run_limited(prlimit, DATA_LIMIT, &args(c, &input, &out));
        assert!(
            matches!(o.status.code(), Some(0..=2)),
            "{}: {}",
            c.name(),
            stderr(&o)
        );
    }
    // 200 MB of data to pack cannot fit in 96 MiB.
    let mut module =
        wat::parse_str("(module (memory 4000) (data (i32.const 0) \"\\01\"))").unwrap();
    // Grow the one segment to 200 MB by hand: data section is last.
    let size = 200_000_000usize;
    let frames = props::frames(&module);
    let data = frames.last().unwrap().clone();
    module.truncate(data.start);
    let mut payload = vec![1, 0, 0x41, 0, 0x0b];
    payload.extend(props::padded_leb(size as u64, 5));
    payload.resize(payload.len() + size, 1);
    module.push(11);
    module.extend(props::padded_leb(payload.len() as u64, 5));
    module.extend(payload);
    wasm_mem::input::validate(&module).unwrap();
    std::fs::write(&input, &module).unwrap();
    drop(module);
    let o = run_limited(prlimit, DATA_LIMIT, &args(Cmd::Pack, &input, &out));
    assert_ne!(o.status.code(), Some(0), "200 MB held in 96 MiB?");
}

fn module_with(sections: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    for (id, payload) in sections {
        m.push(*id);
        m.extend(props::padded_leb(payload.len() as u64, 5));
        m.extend(payload);
    }
    m
}

#[test]
fn bound_memory64_of_2_pow_48_pages() {
    let bytes = wat::parse_str(
        "(module (memory i64 281474976710656) (data (i64.const 281474976710000) \"x\")
          (func (export \"f\") (result i64) memory.size))",
    )
    .unwrap();
    bounded("memory64 of 2^48 pages", &bytes, false);
    let bytes = wat::parse_str(
        "(module (memory i64 1 281474976710656) (memory 65536) (data (memory 1) (i32.const 65535) \"y\"))",
    )
    .unwrap();
    bounded("2^48-page maximum with a full 4 GiB memory", &bytes, false);
}

#[test]
fn bound_one_byte_pages_at_the_32_bit_limit() {
    let bytes = wat::parse_str(
        "(module (memory 4294967295 (pagesize 1)) (data (i32.const 4294967294) \"x\"))",
    )
    .unwrap();
    bounded("2^32-1 one-byte pages", &bytes, false);
}

#[test]
fn bound_data_count_2_pow_32_minus_1() {
    let bytes = module_with(&[(12, props::padded_leb(u32::MAX.into(), 5))]);
    bounded("data count 2^32-1", &bytes, true);
    // With a data section that claims as many segments.
    let bytes = module_with(&[
        (5, vec![1, 0, 1]),
        (12, props::padded_leb(u32::MAX.into(), 5)),
        (11, props::padded_leb(u32::MAX.into(), 5)),
    ]);
    bounded(
        "data count and data section claiming 2^32-1 segments",
        &bytes,
        true,
    );
}

#[test]
fn bound_segment_claiming_4_gib() {
    let mut data = vec![1, 0, 0x41, 0, 0x0b];
    data.extend(props::padded_leb(u32::MAX.into(), 5));
    data.extend_from_slice(b"only a few bytes");
    let bytes = module_with(&[(5, vec![1, 0, 1]), (11, data)]);
    bounded("active segment claiming 4 GiB", &bytes, true);
    let mut data = vec![1, 1];
    data.extend(props::padded_leb(u32::MAX.into(), 5));
    let bytes = module_with(&[(5, vec![1, 0, 1]), (11, data)]);
    bounded("passive segment claiming 4 GiB", &bytes, true);
}

#[test]
fn bound_huge_function_count() {
    // type section: one type () -> (); function section: 2^32-1 functions.
    let types = vec![1, 0x60, 0, 0];
    let mut funcs = props::padded_leb(u32::MAX.into(), 5);
    funcs.extend([0; 8]);
    bounded(
        "function count 2^32-1",
        &module_with(&[(1, types.clone()), (3, funcs)]),
        true,
    );
    let code = props::padded_leb(u32::MAX.into(), 5);
    bounded(
        "code count 2^32-1",
        &module_with(&[(1, types.clone()), (3, vec![1, 0]), (10, code)]),
        true,
    );
    let mut body = vec![1];
    body.extend(props::padded_leb(u32::MAX.into(), 5));
    body.extend([0x7f, 0x0b]);
    let mut code = vec![1];
    code.extend(props::padded_leb(body.len() as u64, 5));
    code.extend(body);
    bounded(
        "2^32-1 locals",
        &module_with(&[(1, types), (3, vec![1, 0]), (10, code)]),
        true,
    );
}

#[test]
fn bound_huge_element_count() {
    let table = vec![1, 0x70, 0, 1];
    let mut elems = props::padded_leb(u32::MAX.into(), 5);
    elems.extend([0, 0x41, 0, 0x0b, 0]);
    bounded(
        "element segment count 2^32-1",
        &module_with(&[(4, table.clone()), (9, elems)]),
        true,
    );
    // One segment claiming 2^32-1 function indices.
    let mut elems = vec![1, 0, 0x41, 0, 0x0b];
    elems.extend(props::padded_leb(u32::MAX.into(), 5));
    elems.extend([0; 4]);
    bounded(
        "element segment of 2^32-1 items",
        &module_with(&[(4, table), (9, elems)]),
        true,
    );
}

#[test]
fn bound_huge_type_import_global_export_counts() {
    for (id, name) in [
        (1u8, "types"),
        (2, "imports"),
        (6, "globals"),
        (7, "exports"),
        (4, "tables"),
        (5, "memories"),
    ] {
        let mut payload = props::padded_leb(u32::MAX.into(), 5);
        payload.extend([0; 6]);
        bounded(
            &format!("{name} count 2^32-1"),
            &module_with(&[(id, payload)]),
            true,
        );
    }
}

// ---------------------------------------------------------------------------
// Output safety, one test per rule, for every command that writes a file.
// ---------------------------------------------------------------------------

/// A module every writing command rewrites (or at least writes): two
/// memories, one 64-bit, data to pack.
fn writable_module() -> Vec<u8> {
    wat::parse_str(
        r#"(module (memory 1 4) (memory i64 1 4)
            (data (i32.const 16) "a\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00b")
            (data (memory 1) (i64.const 32) "c")
            (func (export "f") (param i32) (result i32) local.get 0 i32.load))"#,
    )
    .unwrap()
}

/// The writers, with `--svg` of inspect.
fn writers(input: &Path, out: &Path) -> Vec<Vec<String>> {
    let mut all: Vec<Vec<String>> = COMMANDS
        .iter()
        .filter(|c| c.writes_module())
        .map(|c| args(*c, input, out))
        .collect();
    all.push(vec![
        "inspect".into(),
        input.display().to_string(),
        "--svg".into(),
        out.display().to_string(),
    ]);
    all
}

/// Atomic: the output replaces the target's directory entry (temp file and
/// rename), never writes into the existing file: a hard link to the old
/// target keeps the old bytes.
#[test]
fn outputs_are_replaced_atomically_not_written_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wasm");
    std::fs::write(&input, writable_module()).unwrap();
    let out = dir.path().join("out.wasm");
    let link = dir.path().join("old-link");
    for a in writers(&input, &out) {
        std::fs::write(&out, b"old contents").unwrap();
        std::fs::hard_link(&out, &link).unwrap();
        let o = run_args(&a);
        assert_eq!(o.status.code(), Some(0), "{a:?}: {}", stderr(&o));
        assert_eq!(
            std::fs::read(&link).unwrap(),
            b"old contents",
            "{a:?} wrote in place"
        );
        assert_ne!(std::fs::read(&out).unwrap(), b"old contents", "{a:?}");
        std::fs::remove_file(&link).unwrap();
        assert_eq!(listing(dir.path()), ["in.wasm", "out.wasm"], "{a:?}");
    }
}

/// `-o` naming the input works, and replaces it with a valid module.
#[test]
fn output_over_the_input_replaces_it_on_success() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wasm");
    for c in COMMANDS.iter().filter(|c| c.writes_module()) {
        let original = writable_module();
        std::fs::write(&input, &original).unwrap();
        let o = run_args(&args(*c, &input, &input));
        assert_eq!(o.status.code(), Some(0), "{}: {}", c.name(), stderr(&o));
        let after = std::fs::read(&input).unwrap();
        wasm_mem::input::validate(&after).unwrap();
        if *c != Cmd::Pages {
            // every pass changes this module (pages --pages 2 too: min 1 -> 2)
            assert_ne!(after, original, "{}", c.name());
        }
        assert_eq!(listing(dir.path()), ["in.wasm"], "{}", c.name());
    }
}

/// A failed run leaves no temporary file: here the write itself fails (the
/// target is a directory), after the pass succeeded.
#[test]
fn failed_write_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wasm");
    std::fs::write(&input, writable_module()).unwrap();
    let out = dir.path().join("taken");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep"), b"k").unwrap();
    for a in writers(&input, &out) {
        let o = run_args(&a);
        assert_eq!(o.status.code(), Some(2), "{a:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("cannot write"), "{a:?}: {}", stderr(&o));
        assert_eq!(listing(dir.path()), ["in.wasm", "taken"], "{a:?}");
        assert_eq!(listing(&out), ["keep"], "{a:?}");
    }
}

/// On failure the input is untouched, even when `-o` names it: bad input,
/// a refusal, and a failed check.
#[test]
fn input_is_untouched_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wasm");
    let mut bad = writable_module();
    let last = bad.len() - 3;
    bad.truncate(last);
    // Refused by each writer: pages below the footprint, lower memory64 of
    // a memory too large for 32 bits, raise of a memory that is 64-bit,
    // lower multi-memory of two exported memories, pack with a cap of 0.
    let refusals: [(&str, &[&str]); 5] = [
        (
            "(module (memory 2) (data (i32.const 65536) \"x\"))",
            &["pages", "IN", "--pages", "1", "-o", "IN"],
        ),
        (
            "(module (memory i64 70000))",
            &["lower", "memory64", "IN", "-o", "IN"],
        ),
        (
            "(module (memory i64 1))",
            &["raise", "memory64", "IN", "--memory", "0", "-o", "IN"],
        ),
        (
            "(module (memory (export \"a\") 1) (memory (export \"b\") 1))",
            &["lower", "multi-memory", "IN", "-o", "IN"],
        ),
        (
            "(module (memory 1) (data (i32.const 0) \"x\"))",
            &["pack", "IN", "--max-segments", "0", "-o", "IN"],
        ),
    ];
    let mut cases: Vec<(Vec<u8>, Vec<String>)> = Vec::new();
    for c in COMMANDS {
        cases.push((bad.clone(), args(c, &input, &input)));
    }
    for (text, a) in refusals {
        let a = a
            .iter()
            .map(|s| {
                if *s == "IN" {
                    input.display().to_string()
                } else {
                    s.to_string()
                }
            })
            .collect();
        cases.push((wat::parse_str(text).unwrap(), a));
    }
    for (bytes, a) in cases {
        std::fs::write(&input, &bytes).unwrap();
        let before = std::fs::metadata(&input).unwrap().modified().unwrap();
        let o = run_args(&a);
        assert_eq!(o.status.code(), Some(2), "{a:?}: {}", stderr(&o));
        assert_eq!(std::fs::read(&input).unwrap(), bytes, "{a:?}");
        assert_eq!(
            std::fs::metadata(&input).unwrap().modified().unwrap(),
            before,
            "{a:?}"
        );
        assert_eq!(listing(dir.path()), ["in.wasm"], "{a:?}");
    }
}
