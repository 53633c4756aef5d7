//! Every command on components: inspect, check, pages, pack, lower and
//! raise with and without `--module N`, the refusals, and `run` refusing.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use wasm_mem::component::Component;

const ONE: &str = include_str!("../../wasm-mem/tests/components/one.wat");
const SEVERAL: &str = include_str!("../../wasm-mem/tests/components/several.wat");

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

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, wat::parse_str(text).unwrap()).unwrap();
    path.to_str().unwrap().to_string()
}

fn modules(path: &str) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    let c = Component::parse(&bytes).unwrap();
    c.modules()
        .iter()
        .map(|m| c.module_bytes(m).to_vec())
        .collect()
}

#[test]
fn inspect_lists_every_core_module() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "several.wasm", SEVERAL);
    let o = run(&["inspect", &input]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("component,"), "{text}");
    assert!(text.contains("5 core module(s)"), "{text}");
    for i in 0..5 {
        assert!(
            text.contains(&format!("core module {i} at byte offset")),
            "{text}"
        );
    }
    assert!(text.contains("in a nested component (depth 1)"), "{text}");
    let o = run(&["inspect", "--json", &input]);
    assert_eq!(code(&o), 0);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["kind"], "component");
    assert_eq!(json["module_count"], 5);
    let list = json["core_modules"].as_array().unwrap();
    assert_eq!(list.len(), 5);
    assert_eq!(list[3]["report"]["memories"][0]["memory64"], true);
    assert_eq!(list[4]["report"]["memories"].as_array().unwrap().len(), 2);
    assert_eq!(list[1]["depth"], 1);
    // --module N selects one; out of range is a usage error.
    let o = run(&["inspect", "--json", "--module", "2", &input]);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["core_modules"].as_array().unwrap().len(), 1);
    assert_eq!(json["core_modules"][0]["index"], 2);
    let o = run(&["inspect", "--module", "9", &input]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("core module 9 does not exist"),
        "{}",
        stderr(&o)
    );
    // --svg needs one module when several have memories.
    let svg = dir.path().join("map.svg");
    let svg = svg.to_str().unwrap();
    assert_eq!(code(&run(&["inspect", &input, "--svg", svg])), 2);
    assert!(!Path::new(svg).exists());
    assert_eq!(
        code(&run(&["inspect", &input, "--module", "1", "--svg", svg])),
        0
    );
    assert!(std::fs::read_to_string(svg).unwrap().contains("<svg"));
}

#[test]
fn check_names_each_module() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "several.wasm", SEVERAL);
    let o = run(&["check", &input]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("core module 4 at byte offset"),
        "{}",
        stdout(&o)
    );
    // Module 0 declares 2 pages: a budget of 1 fails (exit 1) and says so.
    let o = run(&[
        "check",
        &input,
        "--module",
        "0",
        "--budget-pages",
        "1",
        "--json",
    ]);
    assert_eq!(code(&o), 1);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["ok"], false);
    assert_eq!(
        json["core_modules"][0]["report"]["memories"][0]["fits"],
        false
    );
    // Without --module the budget applies to memory 0 of every module.
    let o = run(&["check", &input, "--budget-pages", "1"]);
    assert_eq!(code(&o), 1);
    let o = run(&["check", &input, "--memory", "7", "--budget-pages", "1"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
}

#[test]
fn pages_on_one_module_and_byte_identity_without_settings() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "several.wasm", SEVERAL);
    let out = dir.path().join("out.wasm");
    let out = out.to_str().unwrap();
    let o = run(&["pages", &input, "-o", out]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(std::fs::read(out).unwrap(), std::fs::read(&input).unwrap());
    let o = run(&["pages", &input, "--module", "1", "--pages", "3", "-o", out]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("core module 1"), "{}", stderr(&o));
    let (before, after) = (modules(&input), modules(out));
    assert_ne!(before[1], after[1]);
    for i in [0, 2, 3, 4] {
        assert_eq!(before[i], after[i]);
    }
    let info = wasm_mem::ModuleInfo::read(&after[1]).unwrap();
    assert_eq!(info.memories[0].max_pages, Some(3));
    wasm_mem::component::validate(&std::fs::read(out).unwrap()).unwrap();
    // Module 2 imports module 0's 2-page memory: asking it for 3 pages
    // would break the instantiation: refused, no output.
    let refused = dir.path().join("refused.wasm");
    let o = run(&[
        "pages",
        &input,
        "--module",
        "2",
        "--min",
        "3",
        "-o",
        refused.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("core module 2"), "{}", stderr(&o));
    assert!(!refused.exists());
}

#[test]
fn pack_all_modules_or_one() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [("one.wasm", ONE), ("several.wasm", SEVERAL)] {
        let input = write(dir.path(), name, text);
        let out = dir.path().join(format!("packed-{name}"));
        let out = out.to_str().unwrap();
        let o = run(&["pack", &input, "-o", out]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert!(stderr(&o).starts_with("component: "), "{}", stderr(&o));
        let packed = std::fs::read(out).unwrap();
        wasm_mem::component::validate(&packed).unwrap();
        assert!(packed.len() < std::fs::read(&input).unwrap().len());
        for (a, b) in modules(&input).iter().zip(modules(out)) {
            let options = wasm_mem::image::ImageOptions::default();
            let (ia, ib) = (
                wasm_mem::image::initial_images(a, &options).unwrap(),
                wasm_mem::image::initial_images(&b, &options).unwrap(),
            );
            wasm_mem::image::compare(&ia, &ib).unwrap();
        }
    }
    let input = dir.path().join("several.wasm");
    let input = input.to_str().unwrap();
    let out = dir.path().join("one-module.wasm");
    let out = out.to_str().unwrap();
    let o = run(&["pack", input, "--module", "3", "--json", "-o", out]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["core_modules"].as_array().unwrap().len(), 1);
    assert_eq!(json["core_modules"][0]["index"], 3);
    assert!(json["output_size"].as_u64().unwrap() < json["component_size"].as_u64().unwrap());
    let (before, after) = (modules(input), modules(out));
    for i in [0, 1, 2, 4] {
        assert_eq!(before[i], after[i]);
    }
}

#[test]
fn lower_and_raise_on_components() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "several.wasm", SEVERAL);
    let out = dir.path().join("out.wasm");
    let out = out.to_str().unwrap();
    // Every module: lowering memory64 touches module 3 only.
    let o = run(&["lower", "memory64", &input, "-o", out]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let after = modules(out);
    assert!(!wasm_mem::ModuleInfo::read(&after[3]).unwrap().memories[0].memory64);
    // Module 4 has two memories.
    let o = run(&["lower", "multi-memory", &input, "--module", "4", "-o", out]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        wasm_mem::ModuleInfo::read(&modules(out)[4])
            .unwrap()
            .memories
            .len(),
        1
    );
    // Module 1's memory is its own: raised.
    let o = run(&["raise", "memory64", &input, "--module", "1", "-o", out]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        wasm_mem::ModuleInfo::read(&modules(out)[1])
            .unwrap()
            .memories[0]
            .memory64
    );
    // Module 0 exports its memory to module 2: raising it is refused.
    let refused = dir.path().join("refused.wasm");
    let o = run(&["raise", "memory64", &input, "-o", refused.to_str().unwrap()]);
    assert_eq!(code(&o), 2);
    let err = stderr(&o);
    assert!(err.contains("core module 0"), "{err}");
    assert!(err.contains("export \"mem\""), "{err}");
    assert!(!refused.exists());
    // The canonical ABI's memory in ONE: refused too.
    let one = write(dir.path(), "one.wasm", ONE);
    let o = run(&["raise", "memory64", &one, "-o", refused.to_str().unwrap()]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("export \"memory\""), "{}", stderr(&o));
}

#[test]
fn module_selector_on_a_core_module_and_run_refuses_components() {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("m.wasm");
    std::fs::write(&module, wat::parse_str("(module (memory 1))").unwrap()).unwrap();
    let module = module.to_str().unwrap();
    assert_eq!(code(&run(&["inspect", module, "--module", "0"])), 0);
    let o = run(&["inspect", module, "--module", "1"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("is a core module"), "{}", stderr(&o));
    let component = write(dir.path(), "one.wasm", ONE);
    let o = run(&["run", &component]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("component"), "{}", stderr(&o));
}
