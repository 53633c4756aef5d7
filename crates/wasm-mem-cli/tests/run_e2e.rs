//! The README's end-to-end path with the `wasm-mem` binary: set pages from a
//! manifest, check the footprint, pack, lower, and run the result under the
//! same budget.
//!
//! ```sh
//! cat > wasm-mem.toml <<'EOF'
//! [memory]
//! min-pages = 2
//! max-pages = 4
//! EOF
//! wasm-mem pages app.wasm -o app.sized.wasm                 # limits from wasm-mem.toml
//! wasm-mem check app.sized.wasm                             # footprint fits the budget?
//! wasm-mem pack app.sized.wasm -o app.packed.wasm           # minimal data section
//! wasm-mem lower multi-memory app.packed.wasm -o app.one.wasm
//! wasm-mem run app.one.wasm --invoke main                   # same budget, enforced
//! ```
//!
//! `pack` and `lower multi-memory` are separate subcommands; the steps this
//! build of the binary does not have are skipped with a printed note.

use std::path::Path;
use std::process::{Command, Output};

fn wasm_mem(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasm-mem"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run wasm-mem")
}

fn ok(out: &Output, step: &str) {
    assert!(
        out.status.success(),
        "{step} failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `true` when the binary has the subcommand (`help` succeeds).
fn has(dir: &Path, words: &[&str]) -> bool {
    let mut args = words.to_vec();
    args.push("--help");
    let present = wasm_mem(dir, &args).status.success();
    if !present {
        eprintln!(
            "note: `wasm-mem {}` is not in this build: step skipped",
            words.join(" ")
        );
    }
    present
}

/// Two memories; data in both (with zero runs `pack` can drop); `main`
/// grows memory 0 step by step until memory.grow fails, and returns the
/// number of pages it ends with, times 100, plus a checksum of the data.
const APP: &str = r#"(module
    (memory $heap (export "memory") 1)
    (memory $aux 1)
    (data (memory $heap) (i32.const 16) "abc\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00xyz")
    (data (memory $aux) (i32.const 8) "\05")
    (func (export "main") (result i32)
      (block $full
        (loop $more
          (br_if $full (i32.eq (memory.grow $heap (i32.const 1)) (i32.const -1)))
          (br $more)))
      (i32.add
        (i32.mul (memory.size $heap) (i32.const 100))
        (i32.add
          (i32.add (i32.load8_u $heap (i32.const 16)) (i32.load8_u $heap (i32.const 36)))
          (i32.load8_u $aux (i32.const 8))))))"#;

#[test]
fn pages_check_pack_lower_run_under_one_budget() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("app.wat"), APP).unwrap();
    std::fs::write(
        d.join("wasm-mem.toml"),
        "[memory]\nmin-pages = 2\nmax-pages = 4\n",
    )
    .unwrap();

    // 1. Limits from the manifest.
    ok(
        &wasm_mem(d, &["pages", "app.wat", "-o", "app.wasm"]),
        "pages",
    );
    // 2. The footprint fits.
    ok(&wasm_mem(d, &["check", "app.wasm"]), "check");
    let mut current = "app.wasm".to_string();
    // 3. Pack the data section.
    if has(d, &["pack"]) {
        ok(
            &wasm_mem(d, &["pack", &current, "-o", "app.packed.wasm"]),
            "pack",
        );
        current = "app.packed.wasm".into();
        ok(&wasm_mem(d, &["check", &current]), "check after pack");
    }
    // 4. Lower the two memories to one.
    // The lowered module has one memory holding both, so memory 0's budget
    // of 4 no longer describes it: the budget is restated for the combined
    // memory (7 pages), and the program must see the same data.
    let lowered = false;
    if has(d, &["lower", "multi-memory"]) {
        ok(
            &wasm_mem(
                d,
                &["lower", "multi-memory", &current, "-o", "app.one.wasm"],
            ),
            "lower multi-memory",
        );
        let out = wasm_mem(
            d,
            &[
                "run",
                "--manifest",
                "/dev/null",
                "--budget-pages",
                "7",
                "app.one.wasm",
                "--invoke",
                "main",
            ],
        );
        ok(&out, "run lowered");
        let result: i64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let heap_pages = (result - 224) / 100;
        assert_eq!((result - 224) % 100, 0, "checksum of the data: {result}");
        assert!(
            (2..=6).contains(&heap_pages),
            "memory 0 ended with {heap_pages} pages"
        );
    }
    // 5. Run under the same manifest: memory 0 stops at its 4 pages, and
    // the program sees its data intact ('a' + 'z' + 5 = 224).
    let out = wasm_mem(d, &["run", "--json", &current, "--invoke", "main"]);
    ok(&out, "run");
    let text = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let result: i64 = report["results"][0].as_str().unwrap().parse().unwrap();
    let heap = &report["memories"][0];
    assert_eq!(heap["budget_pages"], 4);
    assert_eq!(heap["initial_pages"], 2);
    assert!(heap["final_pages"].as_u64().unwrap() <= 4);
    let refused =
        heap["refused_by_budget"].as_u64().unwrap() + heap["refused_by_max"].as_u64().unwrap();
    assert_eq!(refused, 1, "{heap}");
    if !lowered {
        assert_eq!(heap["final_pages"], 4);
        assert_eq!(result, 4 * 100 + 224);
        assert_eq!(report["memories"].as_array().unwrap().len(), 2);
    } else {
        // The lowered module's one memory holds both; its size in pages is
        // still bounded by the budget of memory 0.
        assert_eq!(result % 100, 224);
    }
}
