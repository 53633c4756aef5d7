//! `wasm-mem run`: a Rust program built for wasm32-wasip1, a module growing
//! past its budget, a trapping module, memory64 and multi-memory modules,
//! with the report's figures checked against what the module did.

#[path = "../../wasm-mem-host/tests/guests/support.rs"]
mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn wasm_mem(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasm-mem"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run wasm-mem")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The JSON report: the last top-level JSON object on stdout (the program's
/// own output comes first).
fn json(out: &Output) -> Value {
    let text = stdout(out);
    let start = text.rfind("\n{").map_or(0, |i| i + 1);
    serde_json::from_str(&text[start..]).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn memory(report: &Value, index: usize) -> &Value {
    &report["memories"][index]
}

const GROW: &str = r#"(module
    (memory (export "memory") 1)
    (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))"#;

#[test]
fn invoke_grow_past_budget() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "grow.wat", GROW);
    let out = wasm_mem(
        dir.path(),
        &[
            "run",
            "grow.wat",
            "--budget-pages",
            "3",
            "--invoke",
            "grow",
            "5",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "-1\n");
    let err = stderr(&out);
    assert!(
        err.contains("memory 0 \"memory\" (i32): 1 -> 1 pages, peak 1, budget 3"),
        "{err}"
    );
    assert!(
        err.contains("1 refused by the budget (largest request 6 pages)"),
        "{err}"
    );

    let out = wasm_mem(
        dir.path(),
        &[
            "run",
            "--json",
            "--budget-pages",
            "3",
            "--invoke",
            "grow",
            "grow.wat",
            "2",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["outcome"], "returned");
    assert_eq!(report["results"][0], "1");
    let m = memory(&report, 0);
    assert_eq!(m["final_pages"], 3);
    assert_eq!(m["peak_pages"], 3);
    assert_eq!(m["grows"], 1);
    assert_eq!(m["refused_by_budget"], 0);
    assert_eq!(m["budget_pages"], 3);
}

#[test]
fn budget_from_a_manifest_and_report_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "grow.wat", GROW);
    write(dir.path(), "limits.toml", "[memory]\nmax-pages = 2\n");
    let out = wasm_mem(
        dir.path(),
        &[
            "run",
            "grow.wat",
            "--manifest",
            "limits.toml",
            "--report",
            "r.json",
            "--invoke",
            "grow",
            "2",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "-1\n");
    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("r.json")).unwrap()).unwrap();
    assert_eq!(memory(&report, 0)["refused_by_budget"], 1);
    assert_eq!(memory(&report, 0)["budget_pages"], 2);
    // The flag beats the manifest.
    let out = wasm_mem(
        dir.path(),
        &[
            "run",
            "grow.wat",
            "--manifest",
            "limits.toml",
            "--budget-pages",
            "5",
            "--invoke",
            "grow",
            "2",
        ],
    );
    assert_eq!(stdout(&out), "1\n");
    // wasm-mem.toml in the current directory is found, as for `pages` and `check`.
    write(dir.path(), "wasm-mem.toml", "[memory]\npages = 1\n");
    let out = wasm_mem(dir.path(), &["run", "grow.wat", "--invoke", "grow", "1"]);
    assert_eq!(stdout(&out), "-1\n");
}

#[test]
fn trap_prints_backtrace_and_exits_134() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "trap.wat",
        r#"(module (memory 1)
            (func $inner (i32.store (i32.const 65534) (i32.const 1)))
            (func (export "outer") (call $inner)))"#,
    );
    let out = wasm_mem(dir.path(), &["run", "trap.wat", "--invoke", "outer"]);
    assert_eq!(out.status.code(), Some(134));
    let err = stderr(&out);
    assert!(err.contains("out of bounds memory access"), "{err}");
    assert!(err.contains("wasm backtrace"), "{err}");
    assert!(err.contains("inner"), "{err}");
    assert!(
        err.contains("memory 0 (i32): 1 -> 1 pages"),
        "the report still follows: {err}"
    );
    let out = wasm_mem(
        dir.path(),
        &["run", "--json", "trap.wat", "--invoke", "outer"],
    );
    assert_eq!(out.status.code(), Some(134));
    assert_eq!(json(&out)["outcome"], "trapped");
}

#[test]
fn memory64_and_multi_memory_reports() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "multi.wat",
        r#"(module
            (memory $a (export "heap") 1)
            (memory $b i64 2 10)
            (memory $c 1 (pagesize 1))
            (func (export "work") (result i32)
              (drop (memory.grow $a (i32.const 2)))
              (drop (memory.grow $b (i64.const 3)))
              (drop (memory.grow $b (i64.const 100)))
              (drop (memory.grow $c (i32.const 99)))
              (i32.const 0)))"#,
    );
    write(
        dir.path(),
        "wasm-mem.toml",
        "[memory.0]\nmax-pages = 2\n[memory.2]\nmax-pages = 50\n",
    );
    let out = wasm_mem(
        dir.path(),
        &["run", "--json", "multi.wat", "--invoke", "work"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report = json(&out);
    let (a, b, c) = (memory(&report, 0), memory(&report, 1), memory(&report, 2));
    assert_eq!(a["export"], "heap");
    assert_eq!(
        (a["final_pages"].as_u64(), a["refused_by_budget"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(b["memory64"], true);
    assert_eq!(b["export"], Value::Null);
    assert_eq!(
        (b["final_pages"].as_u64(), b["grows"].as_u64()),
        (Some(5), Some(1))
    );
    assert_eq!(b["refused_by_max"], 1);
    assert_eq!(b["largest_refused_pages"], 105);
    assert_eq!(c["page_size"], 1);
    assert_eq!(
        (c["final_pages"].as_u64(), c["refused_by_budget"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(c["largest_refused_pages"], 100);
}

#[test]
fn errors_before_the_run_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "grow.wat", GROW);
    write(dir.path(), "bad.wat", "(module (func");
    let out = wasm_mem(dir.path(), &["run", "bad.wat"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = wasm_mem(dir.path(), &["run", "grow.wat", "--budget-pages", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("starts at 1 pages"),
        "{}",
        stderr(&out)
    );
    let out = wasm_mem(dir.path(), &["run", "grow.wat", "--invoke", "missing"]);
    assert_eq!(out.status.code(), Some(2));
    let out = wasm_mem(dir.path(), &["run", "grow.wat", "--invoke", "grow", "x"]);
    assert_eq!(out.status.code(), Some(2));
    write(
        dir.path(),
        "import.wat",
        r#"(module (import "env" "f" (func)))"#,
    );
    let out = wasm_mem(dir.path(), &["run", "import.wat"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("env::f"), "{}", stderr(&out));
}

#[test]
fn rust_wasi_program() {
    let Some(guests) = support::guests() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let program = guests.command.to_str().unwrap();
    // Prints, allocates 3 MiB, exits with the code it is given.
    let out = wasm_mem(dir.path(), &["run", program, "3", "5"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("hello from wasi-guest: 3 argument(s): [\"3\", \"5\"]"),
        "{text}"
    );
    assert!(text.contains("allocated 3 MiB"), "{text}");
    assert!(
        stderr(&out).contains("memory 0 \"memory\" (i32)"),
        "{}",
        stderr(&out)
    );

    // Under a budget the allocation fails inside the program (exit 42), and
    // the report says how far it got.
    let out = wasm_mem(
        dir.path(),
        &["run", "--json", "--budget-pages", "40", program, "8"],
    );
    assert_eq!(out.status.code(), Some(42), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("allocation failed after"),
        "{}",
        stdout(&out)
    );
    let report = json(&out);
    assert_eq!(report["outcome"], "exited");
    assert_eq!(report["exit_code"], 42);
    let m = memory(&report, 0);
    assert!(m["final_pages"].as_u64().unwrap() <= 40);
    assert!(m["refused_by_budget"].as_u64().unwrap() >= 1);
}
