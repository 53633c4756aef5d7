//! `wasm-mem pack --objective` end to end: the report's sizes (text and
//! JSON), never larger than the input under the objective, bad values.

use std::process::{Command, Output, Stdio};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasm-mem"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A sparse table: 8-byte records with 24-byte zero gaps, one segment.
fn sparse_wat() -> String {
    let mut bytes = String::new();
    for i in 0..500u32 {
        for b in (i * 7 + 1)
            .to_le_bytes()
            .iter()
            .chain(&(i * 31 + 5).to_le_bytes())
        {
            bytes += &format!("\\{b:02x}");
        }
        bytes += &"\\00".repeat(24);
    }
    format!("(module (memory (export \"m\") 1) (data (i32.const 1024) \"{bytes}\"))")
}

#[test]
fn objectives_report_sizes_and_never_grow() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wat");
    std::fs::write(&input, sparse_wat()).unwrap();
    let input = input.to_str().unwrap();
    for objective in ["gzip", "brotli", "zstd"] {
        let out = dir.path().join(format!("{objective}.wasm"));
        let out = out.to_str().unwrap();
        let o = run(&["pack", input, "--objective", objective, "--json", "-o", out]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let sizes = &report["objective"];
        assert_eq!(sizes["objective"], objective);
        for field in ["raw", "gzip", "brotli"] {
            assert!(sizes["before"][field].as_u64().unwrap() > 0, "{field}");
            assert!(sizes["after"][field].as_u64().unwrap() > 0, "{field}");
        }
        let before = sizes["before"][objective].as_u64().unwrap();
        let after = sizes["after"][objective].as_u64().unwrap();
        assert!(after <= before, "{objective}: {after} > {before}");
        assert_eq!(
            sizes["after"]["raw"].as_u64().unwrap(),
            std::fs::metadata(out).unwrap().len()
        );
        // The text report shows the figures.
        let o = run(&["pack", input, "--objective", objective, "-o", out]);
        let text = String::from_utf8_lossy(&o.stderr);
        assert!(text.contains(&format!("objective {objective}")), "{text}");
        assert!(text.contains("brotli"), "{text}");
    }
    // Raw: no sizes unless asked.
    let out = dir.path().join("raw.wasm");
    let out = out.to_str().unwrap();
    let o = run(&["pack", input, "--json", "-o", out]);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(report["objective"].is_null());
    let o = run(&["pack", input, "--sizes", "--json", "-o", out]);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["objective"]["objective"], "raw");
}

#[test]
fn unknown_objective_is_a_usage_error() {
    let o = run(&["pack", "x.wasm", "--objective", "lzma", "-o", "y.wasm"]);
    assert_eq!(o.status.code(), Some(2));
}
