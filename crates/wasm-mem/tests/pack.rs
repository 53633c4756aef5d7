//! Tests of the `pack` pass: the image oracle on hand-written adversarial
//! layouts, generated modules (wasm-smith and our own generator) and the
//! corpus; instantiation equivalence in wasmtime; optimality against a
//! brute-force search over all layouts of small images.

mod common;

use std::collections::HashMap;
use wasm_mem::image::{compare, initial_images, ImageOptions};
use wasm_mem::pack::{pack, PackOptions, PackReport};
use wasm_mem::ModuleInfo;

/// Pack `module` and check the output against the oracle (with the given
/// values of imported globals). Returns the output and the report.
fn pack_checked(
    module: &[u8],
    options: &PackOptions,
    image: &ImageOptions,
) -> (Vec<u8>, PackReport) {
    wasm_mem::input::validate(module).expect("input validates");
    let info = ModuleInfo::read(module).unwrap();
    let (out, report) = pack(module, &info, options).unwrap();
    wasm_mem::input::validate(&out).expect("output validates");
    let before = initial_images(module, image).unwrap();
    let after = initial_images(&out, image).unwrap();
    if let Err(e) = compare(&before, &after) {
        panic!("images differ: {e}\nreport: {report:#?}");
    }
    if !report.changed {
        assert_eq!(out, module, "unchanged output must be the input");
    }
    (out, report)
}

fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).unwrap()
}

fn defaults() -> PackOptions {
    PackOptions::default()
}

/// A store and an instance of `bytes` (a module with no imports) on an
/// engine with `config`.
fn start(bytes: &[u8], config: &wasmtime::Config) -> (wasmtime::Store<()>, wasmtime::Instance) {
    let engine = wasmtime::Engine::new(config).unwrap();
    let module = wasmtime::Module::new(&engine, bytes).unwrap();
    let mut store = wasmtime::Store::new(&engine, ());
    let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
    (store, instance)
}

/// Instantiate a module with no imports; `Ok(memories)` or `Err(trap)`.
fn instantiate(module: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut config = wasmtime::Config::new();
    config.wasm_multi_memory(true);
    config.wasm_memory64(true);
    config.wasm_custom_page_sizes(true);
    config.wasm_extended_const(true);
    config.wasm_threads(true);
    let engine = wasmtime::Engine::new(&config).unwrap();
    let module = wasmtime::Module::new(&engine, module).map_err(|e| format!("compile: {e}"))?;
    let mut store = wasmtime::Store::new(&engine, ());
    let instance = wasmtime::Instance::new(&mut store, &module, &[]).map_err(|e| e.to_string())?;
    let mut memories = Vec::new();
    for export in module.exports() {
        if let Some(memory) = instance.get_memory(&mut store, export.name()) {
            memories.push(memory.data(&store).to_vec());
        }
    }
    Ok(memories)
}

/// Same memories and same trap outcome in wasmtime.
fn assert_same_instantiation(before: &[u8], after: &[u8]) {
    match (instantiate(before), instantiate(after)) {
        (Ok(a), Ok(b)) => assert!(a == b, "memories differ after instantiation"),
        (Err(_), Err(_)) => {}
        (a, b) => panic!(
            "instantiation outcome differs: before {:?}, after {:?}",
            a.map(|_| "ok"),
            b.map(|_| "ok")
        ),
    }
}

#[test]
fn leb_lengths_match_the_encoder() {
    use wasm_mem::pack::{sleb_len, uleb_len};
    for v in [0u64, 1, 127, 128, 16383, 16384, u32::MAX as u64, u64::MAX] {
        if v <= u32::MAX as u64 {
            let mut buf = Vec::new();
            wasm_encoder::Encode::encode(&(v as usize), &mut buf);
            assert_eq!(uleb_len(v), buf.len() as u64, "uleb {v}");
        }
    }
    for v in [
        0i64,
        1,
        -1,
        63,
        64,
        -64,
        -65,
        8191,
        8192,
        i32::MIN as i64,
        i64::MAX,
        i64::MIN,
    ] {
        let expr = wasm_encoder::ConstExpr::i64_const(v);
        let mut buf = Vec::new();
        wasm_encoder::Encode::encode(&expr, &mut buf);
        // opcode + sleb + end
        assert_eq!(sleb_len(v) + 2, buf.len() as u64, "sleb {v}");
    }
}

#[test]
fn zero_runs_are_dropped_and_short_gaps_bridged() {
    let module = wat(r#"(module (memory (export "m") 1)
        (data (i32.const 16) "abc\00\00def\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00ghi\00\00"))"#);
    let (out, report) = pack_checked(&module, &defaults(), &ImageOptions::default());
    assert!(report.changed);
    assert_eq!(report.segments_after, 2, "{report:#?}");
    assert!(report.data_section_after < report.data_section_before);
    assert_same_instantiation(&module, &out);
}

#[test]
fn overlapping_segments_keep_the_last_writer() {
    let module = wat(r#"(module (memory (export "m") 1)
        (data (i32.const 10) "AAAAAAAAAA")
        (data (i32.const 12) "\00\00BB")
        (data (i32.const 8) "cc")
        (data (i32.const 19) "dd\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00e")
        (data (i32.const 14) "\00"))"#);
    let (out, report) = pack_checked(&module, &defaults(), &ImageOptions::default());
    assert!(report.changed);
    assert_same_instantiation(&module, &out);
}

#[test]
fn imported_memory_keeps_every_written_byte() {
    let text = r#"(module (import "env" "m" (memory 1))
        (data (i32.const 0) "a\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00b")
        (data (i32.const 19) "c")
        (data (i32.const 100) "\00\00"))"#;
    let module = wat(text);
    let (out, report) = pack_checked(&module, &defaults(), &ImageOptions::default());
    // The zeros are written bytes of a memory with unknown contents.
    let image = initial_images(&out, &ImageOptions::default()).unwrap();
    let written: usize = image.memories[0].runs.iter().map(|r| r.1.len()).sum();
    assert_eq!(written, 22);
    assert!(report.segments_after <= 2);
    // With --zero-filled-imports the zeros may go.
    let options = PackOptions {
        zero_filled_imports: true,
        ..defaults()
    };
    let image = ImageOptions {
        zero_filled_imports: true,
        ..Default::default()
    };
    let (_, report) = pack_checked(&module, &options, &image);
    assert!(report.data_section_after < 30, "{report:#?}");
}

#[test]
fn out_of_bounds_segments_still_trap() {
    // Defined memory: the third segment is out of bounds.
    let module = wat(r#"(module (memory (export "m") 1)
        (data (i32.const 0) "a\00\00\00\00\00\00\00\00\00\00b")
        (data (i32.const 100) "c\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00d")
        (data (i32.const 65535) "ef")
        (data (i32.const 200) "g"))"#);
    let (out, report) = pack_checked(&module, &defaults(), &ImageOptions::default());
    assert!(report.kept_segments == 2, "{report:#?}");
    assert!(instantiate(&out).is_err());
    assert_same_instantiation(&module, &out);
    // Imported memory: segments beyond the import's minimum may trap, and
    // the writes before the trap are visible.
    let module = wat(r#"(module (import "env" "m" (memory 1))
        (data (i32.const 0) "a\00\00\00\00\00\00\00\00\00\00b")
        (data (i32.const 70000) "late")
        (data (i32.const 5) "x"))"#);
    for size in [65536u128, 131072] {
        let image = ImageOptions {
            memory_sizes: HashMap::from([(0, size)]),
            ..Default::default()
        };
        pack_checked(&module, &defaults(), &image);
    }
    // Empty segment past the end traps too.
    let module = wat(
        r#"(module (memory 1) (data (i32.const 0) "a\00\00\00\00\00\00\00\00b") (data (i32.const 65537) ""))"#,
    );
    let (out, _) = pack_checked(&module, &defaults(), &ImageOptions::default());
    assert!(instantiate(&out).is_err());
}

#[test]
fn segments_at_the_memory_end_and_custom_page_sizes() {
    let module = wat(r#"(module (memory (export "m") 1)
        (data (i32.const 65530) "abc\00\00z"))"#);
    let (out, _) = pack_checked(&module, &defaults(), &ImageOptions::default());
    assert_same_instantiation(&module, &out);
    let module = wat(r#"(module (memory (export "m") 20 (pagesize 1))
        (data (i32.const 0) "a\00\00\00\00\00\00\00\00\00\00b")
        (data (i32.const 19) "z"))"#);
    let (out, _) = pack_checked(&module, &defaults(), &ImageOptions::default());
    assert_same_instantiation(&module, &out);
    let module = wat(r#"(module (memory (export "m") 20 (pagesize 1))
        (data (i32.const 0) "a\00\00\00\00\00\00\00\00\00\00b")
        (data (i32.const 19) "zz"))"#);
    let (out, _) = pack_checked(&module, &defaults(), &ImageOptions::default());
    assert!(instantiate(&out).is_err());
}

#[test]
fn multi_memory_and_memory64() {
    let module = wat(r#"(module
        (memory (export "a") 1)
        (memory (export "b") i64 2)
        (memory (export "c") 1)
        (data (memory 1) (i64.const 70000) "x\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00y")
        (data (memory 2) (i32.const 3) "\00\00\00q\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00r")
        (data (memory 0) (i32.const 1) "m"))"#);
    let (out, report) = pack_checked(&module, &defaults(), &ImageOptions::default());
    assert_eq!(report.memories.len(), 3);
    assert_same_instantiation(&module, &out);
    // memory64 offsets near 2^32 and 2^48 (not instantiated: too large).
    let module = wat(r#"(module
        (memory i64 4294967297)
        (data (i64.const 4294967290) "ab\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00cd")
        (data (i64.const 281474976710600) "\00\00x\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00y\00")
        (data (i64.const 18446744073709551615) ""))"#);
    let (_, report) = pack_checked(&module, &defaults(), &ImageOptions::default());
    assert!(report.kept_segments == 1, "{report:#?}");
}

#[test]
fn passive_segments_and_code_indices_are_kept() {
    let module = wat(r#"(module
        (memory (export "m") 1)
        (data (i32.const 0) "a\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00b")
        (data $p "passive")
        (data (i32.const 100) "c\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00d")
        (data $q "second")
        (func (export "run")
            (memory.init $p (i32.const 200) (i32.const 0) (i32.const 7))
            (memory.init $q (i32.const 300) (i32.const 0) (i32.const 6))
            (data.drop $p)
            (data.drop 0)))"#);
    let (out, report) = pack_checked(&module, &defaults(), &ImageOptions::default());
    assert_eq!(report.passive_segments, 2);
    let run = |bytes: &[u8]| {
        let (mut store, instance) = start(bytes, &wasmtime::Config::new());
        let f = instance
            .get_typed_func::<(), ()>(&mut store, "run")
            .unwrap();
        f.call(&mut store, ()).unwrap();
        let second = f.call(&mut store, ()).is_err(); // use after drop traps
        let memory = instance.get_memory(&mut store, "m").unwrap();
        (memory.data(&store).to_vec(), second)
    };
    assert_eq!(run(&module), run(&out));
    // Nothing to split (every use reads a whole segment without zeros): the
    // code section is untouched.
    assert_eq!(report.passive_segments_split, 0);
    let code = |bytes: &[u8]| {
        wasm_mem::sections::split(bytes)
            .unwrap()
            .into_iter()
            .find(|s| s.id == 10)
            .map(|s| bytes[s.range].to_vec())
    };
    assert_eq!(code(&module), code(&out));
}

#[test]
fn data_names_follow_the_new_indices() {
    let module = wat(r#"(module
        (memory 1)
        (data $zeros (i32.const 0) "\00\00\00\00")
        (data $first (i32.const 10) "a\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00b")
        (data $second (i32.const 100) "c"))"#);
    let (out, report) = pack_checked(&module, &defaults(), &ImageOptions::default());
    assert!(report.changed);
    let text = wasmprinter::print_bytes(&out).unwrap();
    assert!(text.contains("$first"), "{text}");
    assert!(text.contains("$second"), "{text}");
    assert!(!text.contains("$zeros"), "{text}");
}

#[test]
fn global_offsets_need_extended_const() {
    let module = wat(r#"(module
        (import "env" "memory" (memory 1))
        (import "env" "__memory_base" (global $base i32))
        (data (global.get $base) "hello\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00world"))"#);
    let at = |base: u64, size: u128| ImageOptions {
        globals: HashMap::from([(0, base)]),
        memory_sizes: HashMap::from([(0, size)]),
        zero_filled_imports: false,
    };
    let (_, report) = pack_checked(&module, &defaults(), &at(1024, 65536));
    assert!(!report.changed);
    assert!(report.extended_const_would_save.is_some());
    let options = PackOptions {
        extended_const: true,
        zero_filled_imports: true,
        ..defaults()
    };
    for (base, size) in [
        (0, 65536),
        (1024, 65536),
        (65500, 65536),
        (65536, 65536),
        (65490, 65536),
    ] {
        let mut image = at(base, size);
        image.zero_filled_imports = true;
        let (_, report) = pack_checked(&module, &options, &image);
        assert!(report.changed, "{report:#?}");
        assert_eq!(report.segments_after, 2);
    }
}

#[test]
fn global_groups_with_several_chunks_keep_partial_writes() {
    let module = wat(r#"(module
        (import "env" "memory" (memory 1))
        (import "env" "__memory_base" (global $base i32))
        (data (global.get $base) "a\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00b")
        (data (i32.add (global.get $base) (i32.const 4)) "\00\00")
        (data (i32.add (global.get $base) (i32.const 40)) "c\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00d")
        (data (i32.add (global.get $base) (i32.const 30)) "\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00e"))"#);
    for zero in [false, true] {
        let options = PackOptions {
            extended_const: true,
            zero_filled_imports: zero,
            ..defaults()
        };
        for base in [0u64, 100, 65536 - 64, 65536 - 40, 65536 - 20, 65536] {
            let image = ImageOptions {
                globals: HashMap::from([(0, base)]),
                memory_sizes: HashMap::from([(0, 65536)]),
                zero_filled_imports: zero,
            };
            pack_checked(&module, &options, &image);
        }
    }
}

/// Deterministic generator (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Adversarial layouts: overlaps, one-byte gaps, zero runs of every length
/// around the split threshold, segments at the memory end, out-of-bounds.
fn adversarial(rng: &mut Rng, memory64: bool, imported: bool) -> Vec<u8> {
    let pages = 1 + rng.below(2);
    let size = pages * 65536;
    let mut text = String::from("(module ");
    let idx = if memory64 { "i64" } else { "" };
    if imported {
        text += &format!("(import \"env\" \"m\" (memory {idx} {pages}))");
    } else {
        text += &format!("(memory (export \"m\") {idx} {pages})");
    }
    let segments = 1 + rng.below(30);
    let mut cursor = rng.below(300);
    for _ in 0..segments {
        let len = rng.below(40);
        let mut bytes = String::new();
        for _ in 0..len {
            let b = if rng.below(3) == 0 { rng.below(256) } else { 0 };
            bytes += &format!("\\{b:02x}");
        }
        let offset = match rng.below(12) {
            0 => size - len.min(size),                 // at the end
            1 => size + 1 - len.min(size),             // one past: traps
            2 => cursor.saturating_sub(rng.below(20)), // overlap
            _ => cursor + rng.below(12),               // small gaps
        };
        cursor = offset + len;
        let op = if memory64 { "i64" } else { "i32" };
        text += &format!("(data ({op}.const {offset}) \"{bytes}\")");
    }
    text += ")";
    wat(&text)
}

#[test]
fn adversarial_layouts_match_the_oracle_and_wasmtime() {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    for round in 0..300 {
        let memory64 = round % 3 == 1;
        let imported = round % 4 == 3;
        let module = adversarial(&mut rng, memory64, imported);
        let (out, _) = pack_checked(&module, &defaults(), &ImageOptions::default());
        if !imported {
            assert_same_instantiation(&module, &out);
        }
        let capped = PackOptions {
            max_segments: 1 + rng.below(4) as u32,
            ..defaults()
        };
        let info = ModuleInfo::read(&module).unwrap();
        if let Ok((out, report)) = pack(&module, &info, &capped) {
            assert!(report.segments_after <= capped.max_segments as u64 || !report.changed);
            let a = initial_images(&module, &ImageOptions::default()).unwrap();
            let b = initial_images(&out, &ImageOptions::default()).unwrap();
            compare(&a, &b).unwrap();
        }
    }
}

#[test]
fn wasm_smith_modules_match_the_oracle_and_wasmtime() {
    let mut rng = Rng(12345);
    let mut checked = 0;
    for _ in 0..150 {
        let seed: Vec<u8> = (0..4096).map(|_| rng.next() as u8).collect();
        let mut u = arbitrary::Unstructured::new(&seed);
        let config = wasm_smith::Config {
            min_data_segments: 5,
            max_data_segments: 60,
            min_memories: 1,
            max_memories: 3,
            max_imports: 0,
            export_everything: true,
            max_memory32_bytes: 1 << 20,
            max_memory64_bytes: 1 << 20,
            gc_enabled: false,
            exceptions_enabled: false,
            allow_start_export: false,
            ..Default::default()
        };
        let Ok(module) = wasm_smith::Module::new(config, &mut u) else {
            continue;
        };
        let bytes = module.to_bytes();
        if wasm_mem::input::validate(&bytes).is_err() {
            continue;
        }
        let (out, _) = pack_checked(&bytes, &defaults(), &ImageOptions::default());
        assert_same_instantiation(&bytes, &out);
        checked += 1;
    }
    assert!(checked > 50, "only {checked} modules generated");
}

/// Brute force: the smallest data section over every layout of `bytes` at
/// `base` in `memory` (each byte uncovered (zeros only), starting a segment
/// or continuing one).
fn brute_force(bytes: &[u8], base: u64, memory: u32, memory64: bool, cap: usize) -> u64 {
    let n = bytes.len();
    let mut best = u64::MAX;
    let mut labels = vec![0u8; n];
    loop {
        let valid = (0..n).all(|i| {
            (labels[i] != 0 || bytes[i] == 0) && !(labels[i] == 2 && (i == 0 || labels[i - 1] == 0))
        });
        if valid {
            let mut section = wasm_encoder::DataSection::new();
            let mut i = 0;
            let mut count = 0;
            while i < n {
                if labels[i] == 1 {
                    let mut j = i + 1;
                    while j < n && labels[j] == 2 {
                        j += 1;
                    }
                    let offset = base + i as u64;
                    let expr = if memory64 {
                        wasm_encoder::ConstExpr::i64_const(offset as i64)
                    } else {
                        wasm_encoder::ConstExpr::i32_const(offset as u32 as i32)
                    };
                    section.active(memory, &expr, bytes[i..j].iter().copied());
                    count += 1;
                    i = j;
                } else {
                    i += 1;
                }
            }
            if count <= cap {
                let mut out = Vec::new();
                wasm_encoder::Encode::encode(&section, &mut out);
                best = best.min(out.len() as u64 + 1);
            }
        }
        // Next labelling in base 3.
        let mut k = 0;
        while k < n && labels[k] == 2 {
            labels[k] = 0;
            k += 1;
        }
        if k == n {
            return best;
        }
        labels[k] += 1;
    }
}

#[test]
fn hits_the_brute_force_optimum() {
    let mut rng = Rng(777);
    let bases = [
        0u64,
        1,
        57,
        60,
        63,
        120,
        127,
        8185,
        8190,
        16380,
        1 << 20,
        (1 << 31) - 6,
        (1 << 32) - 16,
    ];
    for round in 0..250 {
        let n = 1 + rng.below(9) as usize;
        let bytes: Vec<u8> = (0..n)
            .map(|_| {
                if rng.below(2) == 0 {
                    0
                } else {
                    1 + rng.below(255) as u8
                }
            })
            .collect();
        let base = bases[round % bases.len()];
        let memory64 = round % 5 == 4;
        let memory = (round % 3 == 2) as u32;
        let pages = (base + n as u64).div_ceil(65536).max(1);
        let idx = if memory64 { "i64" } else { "" };
        let op = if memory64 { "i64" } else { "i32" };
        let data: String = bytes.iter().map(|b| format!("\\{b:02x}")).collect();
        let text = format!(
            "(module (memory {idx} {pages}) (memory {idx} {pages}) (data (memory {memory}) ({op}.const {base}) \"{data}\"))"
        );
        let module = wat(&text);
        let cap = if round % 4 == 0 {
            1 + rng.below(3) as usize
        } else {
            100
        };
        let options = PackOptions {
            max_segments: cap as u32,
            ..defaults()
        };
        let (_, report) = pack_checked(&module, &options, &ImageOptions::default());
        let optimum = brute_force(&bytes, base, memory, memory64, cap);
        let got = report.data_section_after;
        match report.cap_gap_bytes {
            Some(gap) => assert!(
                got >= optimum && got <= optimum + gap,
                "{text}: got {got}, optimum {optimum}, gap {gap}"
            ),
            None => assert_eq!(got, optimum, "{text}: {report:#?}"),
        }
    }
}

#[test]
fn deterministic_across_thread_counts() {
    // A large image so the parallel scan splits it into blocks.
    let mut rng = Rng(99);
    let mut data = vec![0u8; 3 << 20];
    for _ in 0..20000 {
        let at = rng.below(data.len() as u64) as usize;
        data[at] = 1 + rng.below(255) as u8;
    }
    let mut section = wasm_encoder::DataSection::new();
    section.active(
        0,
        &wasm_encoder::ConstExpr::i32_const(0),
        data.iter().copied(),
    );
    let mut module = wasm_encoder::Module::new();
    let mut memories = wasm_encoder::MemorySection::new();
    memories.memory(wasm_encoder::MemoryType {
        minimum: 64,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    module.section(&memories);
    module.section(&section);
    let bytes = module.finish();
    let info = ModuleInfo::read(&bytes).unwrap();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| pack(&bytes, &info, &defaults()).unwrap().0)
    };
    let one = run(1);
    assert_eq!(one, run(4));
    let a = initial_images(&bytes, &ImageOptions::default()).unwrap();
    let b = initial_images(&one, &ImageOptions::default()).unwrap();
    compare(&a, &b).unwrap();
}

/// Real modules: `WASM_MEM_CORPUS` or ~/.cache/wasm-mem/corpus (fetched with
/// `../shared/corpus/fetch.sh DIR`); skipped with a note when absent.
#[test]
fn corpus_modules_match_the_oracle() {
    let Some(paths) = common::corpus_modules() else {
        return;
    };
    for path in paths {
        let module = std::fs::read(&path).unwrap();
        if wasm_mem::input::validate(&module).is_err() {
            eprintln!("note: {} does not validate, skipped", path.display());
            continue;
        }
        for extended_const in [false, true] {
            let options = PackOptions {
                extended_const,
                ..defaults()
            };
            // Imported globals (e.g. __memory_base) at a typical value.
            let info = ModuleInfo::read(&module).unwrap();
            let globals = (0..info.globals.len() as u32).map(|g| (g, 1024)).collect();
            let image = ImageOptions {
                globals,
                ..Default::default()
            };
            let (_, report) = pack_checked(&module, &options, &image);
            eprintln!(
                "{}: data section {} -> {} ({} -> {} segments)",
                path.display(),
                report.data_section_before,
                report.data_section_after,
                report.segments_before,
                report.segments_after
            );
        }
    }
}

/// Bytes of a passive segment as a WAT string literal.
fn wat_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

/// Passive segments for the execution tests: zero runs of many lengths,
/// one-byte gaps, long zero runs, leading and trailing zeros, all zeros.
fn passive_payloads(rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut a = b"abc".to_vec();
    a.extend([0; 40]);
    a.extend(b"def\x00g\x00\x00h");
    a.extend([0; 300]);
    a.extend(b"ij");
    out.push(a);
    let mut b = vec![0u8; 50];
    b.extend(b"xyz");
    b.extend([0; 2000]);
    b.push(7);
    b.extend([0; 9]);
    out.push(b);
    out.push(vec![0; 120]);
    let mut c = Vec::new();
    for _ in 0..12 {
        c.extend((0..1 + rng.below(6)).map(|_| 1 + rng.below(255) as u8));
        c.extend(std::iter::repeat_n(0, rng.below(40) as usize));
    }
    out.push(c);
    out
}

/// A module with the segments of [`passive_payloads`] (plus an active
/// segment code refers to), a memory32 (memory 0, 1 page) and a memory64
/// (memory 1, 1 page), and one exported function per `memory.init` site
/// `(memory, segment, src, len)` taking `dst`, one `data.drop` per segment.
/// Returns the module and the list of sites.
/// A `memory.init` site of [`passive_module`]: `(memory, segment, src, len)`.
type PassiveSite = (u32, u32, u32, u32);

fn passive_module(payloads: &[Vec<u8>], rng: &mut Rng) -> (Vec<u8>, Vec<PassiveSite>) {
    let mut text = String::from(
        "(module (memory (export \"m0\") 1) (memory (export \"m1\") i64 1)
         (data $act (i32.const 16) \"active\")\n",
    );
    for (i, p) in payloads.iter().enumerate() {
        text += &format!("(data $p{i} \"{}\")\n", wat_bytes(p));
    }
    let mut sites = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        let len = p.len() as u32;
        let mut ranges = vec![
            (0, len),
            (0, 0),
            (1, 0),
            (len, 0),
            (len + 1, 0),
            (len - 1, 2),
            (len - 1, 1),
            (0, 1),
        ];
        for _ in 0..6 {
            let s = rng.below(len as u64) as u32;
            let n = rng.below((len - s) as u64 + 1) as u32;
            ranges.push((s, n));
        }
        for (s, n) in ranges {
            for memory in [0, 1] {
                sites.push((memory, i as u32 + 1, s, n));
            }
        }
    }
    // The active segment: dropped at instantiation.
    sites.push((0, 0, 0, 0));
    sites.push((0, 0, 0, 1));
    for (k, &(memory, segment, s, n)) in sites.iter().enumerate() {
        let ty = if memory == 1 { "i64" } else { "i32" };
        text += &format!(
            "(func (export \"init{k}\") (param {ty}) local.get 0 i32.const {s} i32.const {n} memory.init {memory} {segment})\n"
        );
    }
    for i in 0..=payloads.len() {
        text += &format!("(func (export \"drop{i}\") data.drop {i})\n");
    }
    // memory.init in unreachable code (validates, never runs).
    text += "(func (export \"dead\") unreachable i32.const 3 i32.const 4 memory.init 0 1 i32.const 1 drop)\n";
    text += ")";
    (wat(&text), sites)
}

/// Run a script on `module`: every site at several destinations (inside,
/// at the end, one past, wrapping), then drop some segments and run every
/// site again. Returns the trap outcome of each call and the final bytes of
/// both memories.
fn run_passive_script(
    module: &[u8],
    sites: &[(u32, u32, u32, u32)],
    drops: &[u32],
) -> (Vec<bool>, Vec<Vec<u8>>) {
    let mut config = wasmtime::Config::new();
    config.wasm_multi_memory(true);
    config.wasm_memory64(true);
    let (mut store, instance) = start(module, &config);
    let size = 65536u64;
    let mut outcomes = Vec::new();
    let pass = |store: &mut wasmtime::Store<()>, outcomes: &mut Vec<bool>, round: u64| {
        for (k, &(memory, _, _, n)) in sites.iter().enumerate() {
            let n = n as u64;
            let dsts = [
                round * 7 + 3 * k as u64 % 5000,
                size - n,
                (size - n).wrapping_add(1),
                size,
                u32::MAX as u64 - 15,
                u64::MAX - 15,
            ];
            let f = instance.get_func(&mut *store, &format!("init{k}")).unwrap();
            for dst in dsts {
                let arg = if memory == 1 {
                    wasmtime::Val::I64(dst as i64)
                } else {
                    wasmtime::Val::I32(dst as u32 as i32)
                };
                outcomes.push(f.call(&mut *store, &[arg], &mut []).is_err());
            }
        }
    };
    pass(&mut store, &mut outcomes, 0);
    for d in drops {
        let f = instance.get_func(&mut store, &format!("drop{d}")).unwrap();
        f.call(&mut store, &[], &mut []).unwrap();
    }
    pass(&mut store, &mut outcomes, 1);
    let memories = ["m0", "m1"]
        .iter()
        .map(|m| {
            instance
                .get_memory(&mut store, m)
                .unwrap()
                .data(&store)
                .to_vec()
        })
        .collect();
    (outcomes, memories)
}

#[test]
fn passive_segments_split_with_the_same_traps_and_bytes() {
    let mut rng = Rng(0x5eed_cafe);
    for round in 0..6 {
        let payloads = passive_payloads(&mut rng);
        let (module, sites) = passive_module(&payloads, &mut rng);
        let (out, report) = pack_checked(&module, &defaults(), &ImageOptions::default());
        assert!(report.changed, "{report:#?}");
        assert!(report.passive_segments_split >= 2, "{report:#?}");
        assert!(report.memory_init_rewritten > 0, "{report:#?}");
        assert!(report.data_drop_rewritten > 0, "{report:#?}");
        assert!(
            report.passive_bytes_after < report.passive_bytes_before,
            "{report:#?}"
        );
        // Drop a different subset each round (the active segment included).
        let drops: Vec<u32> = (0..=payloads.len() as u32)
            .filter(|i| (round >> (i % 3)) & 1 == 1 || *i == round as u32 % 5)
            .collect();
        let before = run_passive_script(&module, &sites, &drops);
        let after = run_passive_script(&out, &sites, &drops);
        assert_eq!(before.0.len(), after.0.len());
        for (i, (a, b)) in before.0.iter().zip(&after.0).enumerate() {
            let site = sites[i / 6 % sites.len()];
            assert_eq!(
                a, b,
                "call {i} (site {site:?}): trap {a} before, {b} after; drops {drops:?}"
            );
        }
        // Not every call traps, not every call succeeds.
        assert!(before.0.iter().any(|t| *t) && before.0.iter().any(|t| !*t));
        for (m, (a, b)) in before.1.iter().zip(&after.1).enumerate() {
            let diff = a.iter().zip(b).position(|(x, y)| x != y);
            assert!(diff.is_none(), "memory {m} differs at byte {diff:?}");
        }
    }
}

#[test]
fn long_zero_runs_in_passive_segments_shrink_the_module() {
    let mut payload = b"head".to_vec();
    payload.extend([0; 5000]);
    payload.extend(b"tail");
    let module = wat(&format!(
        r#"(module (memory (export "m") 1)
            (data $big "{}")
            (data $unused "never read")
            (func (export "init") (param i32)
                (memory.init $big (local.get 0) (i32.const 0) (i32.const 5008)))
            (func (export "drop") (data.drop $big) (data.drop $unused)))"#,
        wat_bytes(&payload)
    ));
    let (out, report) = pack_checked(&module, &defaults(), &ImageOptions::default());
    assert!(
        out.len() + 4900 < module.len(),
        "{} -> {}",
        module.len(),
        out.len()
    );
    assert_eq!(report.passive_segments, 2);
    assert_eq!(report.passive_segments_after, 2, "{report:#?}"); // "head", "tail"; $unused gone
    assert_eq!(report.memory_init_rewritten, 1);
    assert_eq!(report.data_drop_rewritten, 2);
    assert!(report.code_section_after > report.code_section_before);
    let run = |m: &[u8]| {
        let (mut store, instance) = start(m, &wasmtime::Config::new());
        let init = instance
            .get_typed_func::<i32, ()>(&mut store, "init")
            .unwrap();
        let drop = instance
            .get_typed_func::<(), ()>(&mut store, "drop")
            .unwrap();
        let mut log = Vec::new();
        // Pre-fill with non-zero bytes so the zero run is visible.
        let memory = instance.get_memory(&mut store, "m").unwrap();
        memory.data_mut(&mut store).fill(0xAA);
        for dst in [0, 10_000, 65536 - 5008, 65536 - 5007, -16] {
            log.push(init.call(&mut store, dst).is_err());
        }
        drop.call(&mut store, ()).unwrap();
        log.push(init.call(&mut store, 0).is_err());
        (log, memory.data(&store).to_vec())
    };
    assert_eq!(run(&module), run(&out));
    assert_eq!(run(&out).0, [false, false, false, true, true, true]);
}

#[test]
fn data_indices_are_renumbered_when_active_segments_are_kept() {
    // Segment 1 is out of the declared minimum of the imported memory (kept
    // as is: instantiation may trap there); code uses data indices.
    let module = wat(r#"(module
        (import "env" "m" (memory 1))
        (data (i32.const 0) "a\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00b")
        (data (i32.const 70000) "late")
        (data $p "pp\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00qq")
        (func (export "run") (param i32)
            (memory.init $p (local.get 0) (i32.const 0) (i32.const 32))
            (memory.init 1 (local.get 0) (i32.const 0) (i32.const 0))
            (data.drop 0)
            (data.drop $p)))"#);
    let options = PackOptions {
        zero_filled_imports: true,
        ..defaults()
    };
    let image = ImageOptions {
        zero_filled_imports: true,
        ..Default::default()
    };
    let (out, report) = pack_checked(&module, &options, &image);
    assert!(report.changed, "{report:#?}");
    assert_eq!(report.kept_segments, 1);
    let run = |m: &[u8]| {
        let engine = wasmtime::Engine::default();
        let module = wasmtime::Module::new(&engine, m).unwrap();
        let mut store = wasmtime::Store::new(&engine, ());
        let memory = wasmtime::Memory::new(&mut store, wasmtime::MemoryType::new(2, None)).unwrap();
        let instance = wasmtime::Instance::new(&mut store, &module, &[memory.into()]).unwrap();
        let f = instance
            .get_typed_func::<i32, ()>(&mut store, "run")
            .unwrap();
        let log = [
            f.call(&mut store, 100).is_err(),
            f.call(&mut store, 100).is_err(),
            f.call(&mut store, 0).is_err(),
        ];
        (log, memory.data(&store).to_vec())
    };
    let (a, b) = (run(&module), run(&out));
    assert_eq!(a.0, [false, true, true]);
    assert!(a == b, "outcomes {:?} vs {:?}", a.0, b.0);
}

#[test]
fn the_script_catches_a_write_before_the_drop_trap() {
    // A wrong rewrite (memory.fill before checking that the segment is
    // dropped) must be told apart from the original by the script above.
    let data = r#"(data $p "ab\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00cd")"#;
    let original = wat(&format!(
        r#"(module (memory (export "m0") 1) (memory (export "m1") i64 1) {data}
            (func (export "init0") (param i32) local.get 0 i32.const 0 i32.const 22 memory.init $p)
            (func (export "drop0") data.drop $p))"#
    ));
    let wrong = wat(&format!(
        r#"(module (memory (export "m0") 1) (memory (export "m1") i64 1) {data}
            (func (export "init0") (param i32)
                local.get 0 i32.const 0 i32.const 22 memory.fill
                local.get 0 i32.const 0 i32.const 22 memory.init $p)
            (func (export "drop0") data.drop $p))"#
    ));
    let sites = [(0, 0, 0, 22)];
    let a = run_passive_script(&original, &sites, &[0]);
    let b = run_passive_script(&wrong, &sites, &[0]);
    assert_eq!(a.0, b.0, "same traps");
    assert_ne!(a.1, b.1, "the zeros written before the trap are visible");
}

/// `memory.init` and `data.drop` whose sub-opcode LEBs are over-long (valid
/// encodings the scan's byte prefilter must not skip): the passive segment
/// is still seen as read, split, and the rewritten module behaves the same,
/// whether the model counted instructions or not.
#[test]
fn over_long_bulk_memory_opcodes_are_seen() {
    use wasm_encoder::{
        CodeSection, DataCountSection, DataSection, ExportKind, ExportSection, Function,
        FunctionSection, MemorySection, MemoryType, Module, TypeSection,
    };
    let mut payload = b"head".to_vec();
    payload.extend([0; 3000]);
    payload.extend(b"tail");
    let mut module = Module::new();
    let mut types = TypeSection::new();
    types.ty().function([], []);
    module.section(&types);
    let mut functions = FunctionSection::new();
    functions.function(0);
    module.section(&functions);
    let mut memories = MemorySection::new();
    memories.memory(MemoryType {
        minimum: 1,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    module.section(&memories);
    let mut exports = ExportSection::new();
    exports.export("m", ExportKind::Memory, 0);
    exports.export("init", ExportKind::Func, 0);
    module.section(&exports);
    module.section(&DataCountSection { count: 1 });
    let mut code = CodeSection::new();
    let mut body = Function::new([]);
    body.raw([
        0x41, 0x10, // i32.const 16 (destination)
        0x41, 0x00, // i32.const 0 (source offset)
        0x41, 0x88, 0x17, // i32.const 3016 (length)
        0xFC, 0x88, 0x80, 0x00, // memory.init, sub-opcode 8 as a 3-byte LEB
        0x00, 0x00, // data 0, memory 0
        0xFC, 0x89, 0x00, // data.drop, sub-opcode 9 as a 2-byte LEB
        0x00, // data 0
        0x0B,
    ]);
    code.function(&body);
    module.section(&code);
    let mut data = DataSection::new();
    data.passive(payload.iter().copied());
    module.section(&data);
    let module = module.finish();
    wasm_mem::input::validate(&module).expect("the over-long encodings validate");
    let run = |m: &[u8]| {
        let (mut store, instance) = start(m, &wasmtime::Config::new());
        let memory = instance.get_memory(&mut store, "m").unwrap();
        memory.data_mut(&mut store).fill(0xAA);
        let init = instance
            .get_typed_func::<(), ()>(&mut store, "init")
            .unwrap();
        let first = init.call(&mut store, ()).is_err();
        let second = init.call(&mut store, ()).is_err(); // after the drop
        (first, second, memory.data(&store).to_vec())
    };
    let (out, report) = pack_checked(&module, &defaults(), &ImageOptions::default());
    assert_eq!(report.memory_init_rewritten, 1, "{report:#?}");
    assert_eq!(report.data_drop_rewritten, 1, "{report:#?}");
    assert!(out.len() + 2900 < module.len());
    assert_eq!(run(&module), run(&out));
    assert_eq!((run(&out).0, run(&out).1), (false, true));
    let info = ModuleInfo::read_without_code(&module).unwrap();
    let (uncounted, _) = pack(&module, &info, &defaults()).unwrap();
    assert_eq!(uncounted, out);
}

/// GC code reads passive segments with `array.new_data` and
/// `array.init_data`: those segments are kept whole (an array instruction's
/// operands are not rewritten into pieces) and renumbered when active
/// segments merge or passive ones split, while a segment only `memory.init`
/// reads beside them is still split. The packed module behaves the same in
/// wasmtime, traps after `data.drop` included.
#[test]
fn gc_array_instructions_keep_the_segments_they_read() {
    let zeros = "\\00".repeat(300);
    let module = wat(&format!(
        r#"(module
        (type $bytes (array (mut i8)))
        (memory (export "m") 1)
        (data (i32.const 0) "a{zeros}b")
        (data (i32.const 4000) "c")
        (data $p "p{zeros}q")
        (data $q "x{zeros}y")
        (data $r "u{zeros}v")
        (func (export "init")
            (memory.init $p (i32.const 1000) (i32.const 0) (i32.const 302)))
        (func (export "new") (param i32) (result i32)
            (array.get_u $bytes
                (array.new_data $bytes $q (i32.const 0) (i32.const 302))
                (local.get 0)))
        (func (export "fill") (param i32) (result i32) (local $a (ref null $bytes))
            (local.set $a (array.new_default $bytes (i32.const 302)))
            (array.init_data $bytes $r (local.get $a) (i32.const 0) (i32.const 0) (i32.const 302))
            (array.get_u $bytes (local.get $a) (local.get 0)))
        (func (export "drop") (data.drop $q) (data.drop $r)))"#
    ));
    let (out, report) = pack_checked(&module, &defaults(), &ImageOptions::default());
    assert!(report.changed, "{report:#?}");
    assert!(report.memory_init_rewritten > 0, "$p is split: {report:#?}");
    assert!(out.len() < module.len());
    let run = |m: &[u8]| {
        let mut config = wasmtime::Config::new();
        config.wasm_gc(true);
        config.wasm_function_references(true);
        let (mut store, instance) = start(m, &config);
        let init = instance
            .get_typed_func::<(), ()>(&mut store, "init")
            .unwrap();
        let new = instance
            .get_typed_func::<i32, i32>(&mut store, "new")
            .unwrap();
        let fill = instance
            .get_typed_func::<i32, i32>(&mut store, "fill")
            .unwrap();
        let drop = instance
            .get_typed_func::<(), ()>(&mut store, "drop")
            .unwrap();
        let mut log = Vec::new();
        init.call(&mut store, ()).unwrap();
        for at in [0, 150, 301] {
            log.push(new.call(&mut store, at).ok());
            log.push(fill.call(&mut store, at).ok());
        }
        drop.call(&mut store, ()).unwrap();
        log.push(new.call(&mut store, 0).ok());
        log.push(fill.call(&mut store, 0).ok());
        let memory = instance.get_memory(&mut store, "m").unwrap();
        (log, memory.data(&store).to_vec())
    };
    let (a, b) = (run(&module), run(&out));
    assert_eq!(
        a.0,
        [
            Some('x' as i32),
            Some('u' as i32),
            Some(0),
            Some(0),
            Some('y' as i32),
            Some('v' as i32),
            None,
            None
        ]
    );
    assert!(a == b, "outcomes {:?} vs {:?}", a.0, b.0);
}
