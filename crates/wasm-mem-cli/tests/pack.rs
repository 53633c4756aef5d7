//! `wasm-mem pack` end to end: output, report, flags, exit codes and bad input.

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasm-mem"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("killed by a signal")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `wasm-mem pack INPUT -o OUTPUT FLAGS...`.
fn pack(input: &Path, output: &Path, flags: &[&str]) -> Output {
    let mut args = vec![
        "pack",
        input.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
    ];
    args.extend_from_slice(flags);
    run(&args)
}

/// The report of a `--json` run, which must have succeeded.
fn json_report(o: &Output) -> serde_json::Value {
    assert_eq!(code(o), 0, "{}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap()
}

const SPARSE: &str = r#"(module (memory (export "m") 1)
  (data (i32.const 16) "abc\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00def")
  (data (i32.const 1000) "\00\00\00\00ghi\00\00\00\00"))"#;

#[test]
fn packs_a_text_module_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wat");
    let output = dir.path().join("out.wasm");
    std::fs::write(&input, SPARSE).unwrap();
    let o = pack(&input, &output, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("data section:"), "{}", stderr(&o));
    let packed = std::fs::read(&output).unwrap();
    assert!(packed.len() < wat::parse_str(SPARSE).unwrap().len());

    let o = pack(&input, &output, &["--json"]);
    let report = json_report(&o);
    assert_eq!(report["segments_before"], 2);
    assert_eq!(report["segments_after"], 3);
    assert_eq!(report["memories"][0]["memory"], 0);
    assert!(report["data_section_after"].as_u64() < report["data_section_before"].as_u64());
}

#[test]
fn segment_cap_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wat");
    let output = dir.path().join("out.wasm");
    std::fs::write(&input, SPARSE).unwrap();
    let o = pack(&input, &output, &["--max-segments", "1", "--json"]);
    let report = json_report(&o);
    assert_eq!(report["segments_after"], 1);
    // Zero segments cannot hold a non-zero image: refused, no output file.
    let refused = dir.path().join("refused.wasm");
    let o = pack(&input, &refused, &["--max-segments", "0"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("max-segments"), "{}", stderr(&o));
    assert!(!refused.exists());
}

#[test]
fn bad_input_exits_2_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bad.wasm");
    let output = dir.path().join("out.wasm");
    std::fs::write(&input, b"\0asm\x01\0\0\0\x0b\x05\x01\x00").unwrap();
    let o = pack(&input, &output, &[]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("invalid"), "{}", stderr(&o));
    assert!(!output.exists());
    let o = run(&["pack", "/nonexistent.wasm", "-o", output.to_str().unwrap()]);
    assert_eq!(code(&o), 2);
}

#[test]
fn global_offsets_report_the_extended_const_saving() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("side.wat");
    let output = dir.path().join("out.wasm");
    std::fs::write(
        &input,
        r#"(module (import "env" "memory" (memory 1)) (import "env" "__memory_base" (global i32))
           (data (global.get 0) "abc\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00def"))"#,
    )
    .unwrap();
    let o = pack(&input, &output, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--extended-const would save"),
        "{}",
        stderr(&o)
    );
    let o = pack(
        &input,
        &output,
        &["--extended-const", "--zero-filled-imports", "--json"],
    );
    let report = json_report(&o);
    assert_eq!(report["segments_after"], 2);
}

#[test]
fn splits_passive_segments_and_reports_them() {
    let zeros = "\\00".repeat(600);
    let text = format!(
        r#"(module (memory (export "m") 1)
  (data $p "abc{zeros}def")
  (func (export "init") (param i32)
    (memory.init $p (local.get 0) (i32.const 0) (i32.const 606)))
  (func (export "drop") (data.drop $p)))"#
    );
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wat");
    let output = dir.path().join("out.wasm");
    std::fs::write(&input, &text).unwrap();
    let (i, o) = (input.to_str().unwrap(), output.to_str().unwrap());
    let r = run(&["pack", i, "-o", o]);
    assert_eq!(code(&r), 0, "{}", stderr(&r));
    assert!(
        stderr(&r).contains("passive: 609 -> 10 bytes, 1 -> 2 segments (1 split, 1 memory.init and 1 data.drop rewritten"),
        "{}",
        stderr(&r)
    );
    let r = run(&["pack", i, "-o", o, "--json"]);
    let report = json_report(&r);
    assert_eq!(report["passive_segments"], 1);
    assert_eq!(report["passive_segments_after"], 2);
    assert_eq!(report["passive_bytes_before"], 609);
    assert_eq!(report["passive_bytes_after"], 10);
    assert_eq!(report["memory_init_rewritten"], 1);
    assert_eq!(report["data_drop_rewritten"], 1);
    assert!(report["code_section_after"].as_u64() > report["code_section_before"].as_u64());
    let packed = std::fs::read(&output).unwrap();
    assert!(packed.len() + 500 < wat::parse_str(&text).unwrap().len());
}
