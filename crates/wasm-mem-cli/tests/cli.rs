//! The `inspect`, `pages` and `check` commands end to end: exit codes,
//! output handling, manifests and every class of bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wasm-mem"))
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../wasm-mem/tests/fixtures")
        .join(name)
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/app.wat")
}

fn run(args: &[&str]) -> Output {
    bin().args(args).stdin(Stdio::null()).output().unwrap()
}

fn run_in(dir: &Path, args: &[&str]) -> Output {
    bin()
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("killed by a signal")
}

fn binary(name: &str) -> Vec<u8> {
    wat::parse_file(fixture(name)).unwrap()
}

/// `wasm-mem pages INPUT --memory 1 --pages 5 -o OUT`.
fn fix_memory_1_at_5_pages(input: &Path, out: &Path) -> Output {
    run(&[
        "pages",
        input.to_str().unwrap(),
        "--memory",
        "1",
        "--pages",
        "5",
        "-o",
        out.to_str().unwrap(),
    ])
}

const FIXTURES: &[&str] = &[
    "multi.wat",
    "memory64.wat",
    "shared.wat",
    "custom_page.wat",
    "side_module.wat",
    "fixed_grow.wat",
    "no_memory.wat",
];

#[test]
fn inspect_every_fixture_as_text_and_json() {
    for name in FIXTURES {
        let path = fixture(name);
        let o = run(&["inspect", path.to_str().unwrap()]);
        assert_eq!(code(&o), 0, "{name}: {}", stderr(&o));
        assert!(stdout(&o).contains("memories:"), "{name}");
        let o = run(&["inspect", "--json", path.to_str().unwrap()]);
        assert_eq!(code(&o), 0, "{name}: {}", stderr(&o));
        let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(json["schema_version"], 1);
        for key in [
            "memories",
            "data",
            "data_segments",
            "layout",
            "footprint",
            "findings",
            "passive_data",
        ] {
            assert!(json.get(key).is_some(), "{name}: no {key}");
        }
    }
}

#[test]
fn inspect_json_schema_fields() {
    let o = run(&["inspect", "--json", fixture("multi.wat").to_str().unwrap()]);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let m = &json["memories"];
    assert_eq!(m.as_array().unwrap().len(), 4);
    assert_eq!(m[0]["import"]["module"], "env");
    assert_eq!(m[1]["exports"][0], "memory");
    assert_eq!(m[2]["memory64"], true);
    assert_eq!(m[1]["max_pages"], 16);
    assert_eq!(m[2]["max_pages"], serde_json::Value::Null);
    assert_eq!(m[1]["instructions"]["grow"], 1);
    assert_eq!(m[0]["page_size"], 65536);
    let seg = &json["data_segments"][2];
    assert_eq!(seg["offset"]["kind"], "global");
    assert_eq!(seg["offset"]["global"], 0);
    assert_eq!(json["data_segments"][5]["passive"], true);
    assert_eq!(json["layout"][0]["name"], "__stack_pointer");
    assert_eq!(json["layout"][0]["source"], "name_section");
    // layout symbols describe memory 0; memory 1 needs its data only
    assert_eq!(json["footprint"][0]["bytes"], 70000);
    assert_eq!(json["footprint"][1]["bytes"], 24);
}

#[test]
fn inspect_svg_and_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("map.svg");
    let o = run(&[
        "inspect",
        example().to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"));

    let mut child = bin()
        .args(["inspect", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&binary("shared.wat"))
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).starts_with("<stdin>:"));
    assert!(stdout(&o).contains("yes"), "shared column");
}

#[test]
fn pages_writes_atomically_and_keeps_bytes_without_settings() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wasm");
    std::fs::write(&input, binary("multi.wat")).unwrap();
    let out = dir.path().join("out.wasm");
    // no setting: byte-identical
    let o = run(&[
        "pages",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&input).unwrap());
    // -o pointing at the input replaces it on success
    let o = fix_memory_1_at_5_pages(&input, &input);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("memory 1: min 2, max 16 pages -> 5 pages (fixed)"),
        "{}",
        stderr(&o)
    );
    let o = run(&["inspect", "--json", input.to_str().unwrap()]);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["memories"][1]["min_pages"], 5);
    assert_eq!(json["memories"][1]["max_pages"], 5);
    // no temporary files left behind
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

/// A new output file gets the mode any new file gets (0666 less the
/// umask), like `cp`'s, not the owner-only mode of the temporary file it
/// was written through; a replaced file keeps its own mode.
#[cfg(unix)]
#[test]
fn written_files_get_the_usual_modes() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let reference = dir.path().join("reference");
    std::fs::File::create(&reference).unwrap();
    let input = dir.path().join("in.wasm");
    std::fs::write(&input, binary("multi.wat")).unwrap();
    let fresh = dir.path().join("fresh.wasm");
    let o = fix_memory_1_at_5_pages(&input, &fresh);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(mode(&fresh), mode(&reference));
    let kept = dir.path().join("kept.wasm");
    std::fs::write(&kept, b"old").unwrap();
    std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o640)).unwrap();
    let o = fix_memory_1_at_5_pages(&input, &kept);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(mode(&kept), 0o640);
}

#[test]
fn pages_refusals_exit_2_and_leave_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wasm");
    let original = binary("fixed_grow.wat");
    std::fs::write(&input, &original).unwrap();
    let out = dir.path().join("out.wasm");
    for args in [
        vec!["--min", "3", "--max", "2"],
        vec!["--pages", "70000"],
        vec!["--memory", "4", "--pages", "2"],
    ] {
        let mut all = vec![
            "pages",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ];
        all.extend(args.iter());
        let o = run(&all);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).starts_with("error: "), "{}", stderr(&o));
        assert!(!out.exists(), "{args:?} left an output file");
        assert_eq!(std::fs::read(&input).unwrap(), original);
    }
    // the footprint: data reaches 65540 bytes, so 1 page is too small
    let o = run(&[
        "pages",
        input.to_str().unwrap(),
        "--max",
        "none",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = run(&[
        "pages",
        input.to_str().unwrap(),
        "--pages",
        "1",
        "--memory",
        "0",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "already 1 page: no change: {}", stderr(&o));
    let tiny = dir.path().join("tiny.wasm");
    std::fs::write(
        &tiny,
        wat::parse_str("(module (memory 2) (data (i32.const 65536) \"x\"))").unwrap(),
    )
    .unwrap();
    let o = run(&[
        "pages",
        tiny.to_str().unwrap(),
        "--pages",
        "1",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("needs 65537 bytes (2 pages of 65536 bytes)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn pages_text_output_and_json_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.wasm");
    let o = run(&["pages", example().to_str().unwrap(), "--pages", "4", "-t"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("(memory $memory (;0;) 4 4)"),
        "{}",
        stdout(&o)
    );
    let o = run(&[
        "pages",
        example().to_str().unwrap(),
        "--pages",
        "4",
        "--json",
    ]);
    assert_eq!(code(&o), 2, "--json without -o is a usage error");
    let o = run(&[
        "pages",
        example().to_str().unwrap(),
        "--pages",
        "4",
        "--json",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["memories"][0]["min_after"], 4);
    assert_eq!(json["memories"][0]["min_source"], "command_line");
}

#[test]
fn manifests_are_discovered_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("app.wasm");
    std::fs::write(&input, wat::parse_file(example()).unwrap()).unwrap();
    std::fs::write(
        dir.path().join("wasm-mem.toml"),
        "[memory]\nmin-pages = 5\nmax-pages = 9\n",
    )
    .unwrap();
    let o = run_in(dir.path(), &["pages", "app.wasm", "-o", "a.wasm"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("-> min 5, max 9 pages"),
        "{}",
        stderr(&o)
    );
    let o = run_in(
        dir.path(),
        &["pages", "app.wasm", "--max", "12", "-o", "b.wasm"],
    );
    assert!(
        stderr(&o).contains("-> min 5, max 12 pages"),
        "{}",
        stderr(&o)
    );
    // the check uses the manifest's max as the budget
    let o = run_in(dir.path(), &["check", "app.wasm"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("budget 9 pages (from the manifest)"),
        "{}",
        stdout(&o)
    );

    // Cargo.toml metadata, given explicitly
    let cargo = dir.path().join("Cargo.toml");
    std::fs::write(
        &cargo,
        "[package]\nname = \"app\"\n[package.metadata.wasm-mem.memory]\npages = 2\n",
    )
    .unwrap();
    let o = run(&[
        "check",
        input.to_str().unwrap(),
        "--manifest",
        cargo.to_str().unwrap(),
    ]);
    assert_eq!(
        code(&o),
        1,
        "3 declared pages do not fit a 2-page budget: {}",
        stdout(&o)
    );
    // a broken manifest is bad input
    std::fs::write(dir.path().join("bad.toml"), "[memory]\npages = \"many\"\n").unwrap();
    let o = run_in(dir.path(), &["check", "app.wasm", "--manifest", "bad.toml"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("bad.toml"), "{}", stderr(&o));
}

#[test]
fn check_exit_codes_and_json() {
    let path = example();
    let o = run(&["check", path.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    let o = run(&["check", path.to_str().unwrap(), "--budget-pages", "1"]);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains("OVER by"), "{}", stdout(&o));
    let o = run(&[
        "check",
        path.to_str().unwrap(),
        "--budget-pages",
        "1",
        "--json",
    ]);
    assert_eq!(code(&o), 1);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["ok"], false);
    assert_eq!(json["memories"][0]["over_by_pages"], 2);
    assert_eq!(json["memories"][0]["footprint"]["stack_top"], 70800);
    let o = run(&[
        "check",
        fixture("fixed_grow.wat").to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code(&o), 1);
    let o = run(&[
        "check",
        fixture("multi.wat").to_str().unwrap(),
        "--memory",
        "9",
        "--budget-pages",
        "1",
    ]);
    assert_eq!(code(&o), 2);
}

#[test]
fn help_has_an_example_for_every_subcommand() {
    for sub in ["inspect", "pages", "check"] {
        let o = run(&[sub, "--help"]);
        assert_eq!(code(&o), 0);
        assert!(stdout(&o).contains("Examples:"), "{sub}");
        assert!(stdout(&o).contains(&format!("wasm-mem {sub} ")), "{sub}");
    }
    let o = run(&["frobnicate"]);
    assert_eq!(code(&o), 2);
    let o = run(&["pages", "x.wasm", "--pages", "1", "--min", "2"]);
    assert_eq!(code(&o), 2, "conflicting flags");
}

/// Every kind of bad input: exit 2, a message naming the problem and where,
/// no panic.
#[test]
fn bad_input_is_a_clean_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = binary("multi.wat");
    let mut cases: Vec<(String, Vec<u8>, &str)> = vec![
        ("empty".into(), vec![], "magic"),
        (
            "garbage".into(),
            b"\x7fELF\x02\x01\x01\x00garbage".to_vec(),
            "magic",
        ),
        (
            "bad version".into(),
            b"\0asm\x02\0\0\0".to_vec(),
            "module header",
        ),
        (
            "bad text".into(),
            b"(module (memory 1) (oops))".to_vec(),
            "text",
        ),
        (
            "unknown section".into(),
            [&good[..8], &[0x7f, 0x01, 0x00][..]].concat(),
            "malformed section id: 127 (in unknown section at byte offset",
        ),
    ];
    // truncated at every section boundary and in the middle of each section
    let sections = wasm_mem::sections::split(&good).unwrap();
    for s in &sections {
        cases.push((
            format!("cut in {}", s.describe()),
            good[..(s.range.start + s.range.end) / 2].to_vec(),
            "offset",
        ));
        if s.range.end < good.len() {
            // a section that claims more bytes than remain
            let mut lie = good[..s.range.end].to_vec();
            lie.extend_from_slice(&[11, 0x80, 0x80, 0x04]);
            cases.push((format!("size lie after {}", s.describe()), lie, "offset"));
        }
    }
    // huge declared counts and sizes
    cases.push((
        "data count 2^32-1".into(),
        [
            &b"\0asm\x01\0\0\0"[..],
            &[12, 5, 0xff, 0xff, 0xff, 0xff, 0x0f][..],
        ]
        .concat(),
        "offset",
    ));
    cases.push((
        "segment claiming 4 GiB".into(),
        [
            &b"\0asm\x01\0\0\0"[..],
            &[
                5, 3, 1, 0, 1, 11, 10, 1, 0, 0x41, 0, 0x0b, 0xff, 0xff, 0xff, 0xff, 0x0f,
            ][..],
        ]
        .concat(),
        "data section",
    ));
    for (what, bytes, expect) in &cases {
        let path = dir.path().join("bad.wasm");
        std::fs::write(&path, bytes).unwrap();
        for sub in [
            vec!["inspect"],
            vec!["check"],
            vec!["pages", "--pages", "1", "-o", "out.wasm"],
        ] {
            let mut args = vec![sub[0], path.to_str().unwrap()];
            args.extend(&sub[1..]);
            let o = run_in(dir.path(), &args);
            let err = stderr(&o);
            assert_eq!(code(&o), 2, "{what} / {}: {err}", sub[0]);
            assert!(!err.contains("panicked"), "{what}: {err}");
            assert!(
                err.to_lowercase().contains(expect),
                "{what} / {}: expected {expect:?} in {err}",
                sub[0]
            );
            assert!(!dir.path().join("out.wasm").exists());
        }
    }
    let o = run(&["inspect", "/nonexistent/file.wasm"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("cannot read /nonexistent/file.wasm"));
}

#[test]
fn huge_declared_memories_do_not_allocate() {
    // 2^48 pages of memory64 and 2^32 one-byte pages: valid types, reported
    // without touching the address space.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.wat");
    std::fs::write(
        &path,
        "(module (memory i64 281474976710656) (memory 4294967295 (pagesize 1)) (data (memory 0) (i64.const 281474976710000) \"x\"))",
    )
    .unwrap();
    let svg = dir.path().join("huge.svg");
    let o = run(&[
        "inspect",
        path.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("281474976710656"));
    assert!(std::fs::metadata(&svg).unwrap().len() < 2_000_000);
    let o = run(&["check", path.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
}
