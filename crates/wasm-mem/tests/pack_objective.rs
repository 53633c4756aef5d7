//! Tests of `pack --objective`: every objective keeps the initial image (the
//! pack oracle), the segment cap and trap behaviour, and the chosen layout is
//! never larger than the input under its own objective; on generated,
//! adversarial and (when present) corpus modules.

mod common;

use wasm_mem::image::{compare, initial_images, ImageOptions};
use wasm_mem::pack::{pack, PackOptions};
use wasm_mem::pack_objective::{pack_for_searching, Objective};
use wasm_mem::ModuleInfo;

const COMPRESSED: [Objective; 3] = [Objective::Gzip, Objective::Brotli, Objective::Zstd];

/// Pack for `objective`, check validity, the oracle, the cap, and that the
/// output is no larger than the input under the objective. Returns the output.
fn check(
    module: &[u8],
    options: &PackOptions,
    objective: Objective,
    image: &ImageOptions,
) -> Vec<u8> {
    check_searching(module, options, objective, image, 8)
}

/// [`check`] with a gap search of at most `search` layouts.
fn check_searching(
    module: &[u8],
    options: &PackOptions,
    objective: Objective,
    image: &ImageOptions,
    search: u64,
) -> Vec<u8> {
    wasm_mem::input::validate(module).expect("input validates");
    let info = ModuleInfo::read(module).unwrap();
    // A short gap search (one batch) keeps these debug-build tests fast; the
    // corpus test runs the default one.
    let (out, report, sizes) =
        pack_for_searching(module, &info, options, objective, true, search).unwrap();
    wasm_mem::input::validate(&out).expect("output validates");
    let before = initial_images(module, image).unwrap();
    let after = initial_images(&out, image).unwrap();
    if let Err(e) = compare(&before, &after) {
        panic!("{objective}: images differ: {e}\nreport: {report:#?}");
    }
    let sizes = sizes.expect("sizes are reported");
    assert_eq!(sizes.objective, objective);
    assert_eq!(sizes.before.raw, module.len() as u64);
    assert_eq!(sizes.after.raw, out.len() as u64);
    // The reported figures are the real ones.
    assert_eq!(sizes.after.get(objective), Some(objective.size(&out)));
    assert_eq!(sizes.before.get(objective), Some(objective.size(module)));
    if info.data_segments.len() as u64 <= options.max_segments as u64 {
        assert!(
            objective.size(&out) <= objective.size(module),
            "{objective}: output larger than the input ({} > {})",
            objective.size(&out),
            objective.size(module)
        );
    }
    assert!(
        report.segments_after <= options.max_segments as u64 || !report.changed,
        "{objective}: cap exceeded"
    );
    if !report.changed {
        assert_eq!(out, module, "an unchanged output is the input");
    }
    out
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

/// A sparse table: `entries` records of 8 bytes, each followed by a zero gap
/// of `gap` bytes, written by `segments` segments (Wizer-like snapshots).
fn sparse_table(rng: &mut Rng, entries: usize, gap: usize, segments: usize) -> Vec<u8> {
    let mut image = Vec::new();
    for i in 0..entries {
        image.extend_from_slice(&(i as u32 * 7 + 1).to_le_bytes());
        image.extend_from_slice(&(rng.below(1 << 16) as u32 + 1).to_le_bytes());
        image.resize(image.len() + gap, 0);
    }
    let chunk = image.len().div_ceil(segments);
    let mut text = String::from("(module (memory (export \"m\") 4)");
    for (k, part) in image.chunks(chunk).enumerate() {
        text += &format!("(data (i32.const {}) \"{}\")", 1024 + k * chunk, hex(part));
    }
    text += ")";
    wat::parse_str(&text).unwrap()
}

/// Adversarial layouts: overlaps, gaps of every length, zero runs, segments
/// at the memory end, out-of-bounds segments (instantiation traps), imported
/// memories, memory64, a second memory, passive segments.
fn adversarial(rng: &mut Rng, round: u64) -> Vec<u8> {
    let memory64 = round % 3 == 1;
    let imported = round % 5 == 4;
    let pages = 1 + rng.below(2);
    let size = pages * 65536;
    let idx = if memory64 { "i64" } else { "" };
    let op = if memory64 { "i64" } else { "i32" };
    let mut text = String::from("(module ");
    if imported {
        text += &format!("(import \"env\" \"m\" (memory {idx} {pages}))");
    } else {
        text += &format!("(memory (export \"m\") {idx} {pages})");
    }
    let second = round % 4 == 2;
    if second {
        text += "(memory (export \"m2\") 1)";
    }
    let mut cursor = rng.below(300);
    for _ in 0..1 + rng.below(60) {
        let len = rng.below(64);
        let dense = rng.below(4);
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                if rng.below(4) < dense {
                    rng.below(256) as u8
                } else {
                    0
                }
            })
            .collect();
        let offset = match rng.below(16) {
            0 => size - len.min(size),
            1 if round.is_multiple_of(7) => size + 1 - len.min(size), // traps
            2 => cursor.saturating_sub(rng.below(20)),
            3 => cursor + 200 + rng.below(3000),
            _ => cursor + rng.below(40),
        };
        cursor = offset + len;
        if second && rng.below(3) == 0 {
            let at = rng.below(60000);
            text += &format!("(data (memory 1) (i32.const {at}) \"{}\")", hex(&bytes));
        } else {
            text += &format!("(data ({op}.const {offset}) \"{}\")", hex(&bytes));
        }
        if rng.below(20) == 0 {
            text += &format!("(data \"{}\")", hex(&bytes));
        }
    }
    text += ")";
    wat::parse_str(&text).unwrap()
}

#[test]
fn every_objective_keeps_the_image_on_adversarial_layouts() {
    let mut rng = Rng(0x2545f4914f6cdd1d);
    for round in 0..12 {
        let module = adversarial(&mut rng, round);
        let capped = PackOptions {
            max_segments: 2 + rng.below(6) as u32,
            ..Default::default()
        };
        for objective in Objective::ALL {
            check(
                &module,
                &PackOptions::default(),
                objective,
                &ImageOptions::default(),
            );
            let info = ModuleInfo::read(&module).unwrap();
            // Under a tight cap the pass may refuse (too many kept segments),
            // as the raw pack does; otherwise the cap holds.
            if pack(&module, &info, &capped).is_ok() {
                check(&module, &capped, objective, &ImageOptions::default());
            }
        }
    }
}

#[test]
fn merging_beats_the_raw_optimum_after_compression() {
    // (zstd -19 finds the raw optimum as good on these tables: for zstd only
    // the never-worse property is checked, in the other tests.)
    // Records with 24-byte zero gaps: the raw optimum splits at every gap
    // (a header costs less than 24 bytes), while the compressors encode the
    // zeros almost for free and the headers' changing offsets as literals.
    let mut rng = Rng(7);
    let module = sparse_table(&mut rng, 2000, 24, 1);
    let info = ModuleInfo::read(&module).unwrap();
    let (raw, raw_report) = pack(&module, &info, &PackOptions::default()).unwrap();
    assert!(raw_report.segments_after > 100, "{raw_report:#?}");
    for objective in [Objective::Gzip, Objective::Brotli] {
        let out = check(
            &module,
            &PackOptions::default(),
            objective,
            &ImageOptions::default(),
        );
        assert!(
            objective.size(&out) < objective.size(&raw),
            "{objective}: {} is not below the raw optimum's {}",
            objective.size(&out),
            objective.size(&raw)
        );
    }
}

#[test]
fn many_input_segments_are_merged_when_that_compresses_better() {
    // The same table written by 500 segments (one per few records).
    let mut rng = Rng(11);
    let module = sparse_table(&mut rng, 2000, 24, 500);
    for objective in [Objective::Gzip, Objective::Brotli] {
        let out = check(
            &module,
            &PackOptions::default(),
            objective,
            &ImageOptions::default(),
        );
        assert!(
            objective.size(&out) < objective.size(&module),
            "{objective}: no gain over 500 segments"
        );
    }
}

#[test]
fn traps_and_global_groups_are_kept() {
    // An out-of-bounds segment after in-bounds ones: the instantiation
    // traps, after the earlier writes; the output must keep that.
    let module = wat::parse_str(
        r#"(module (memory (export "m") 1)
            (data (i32.const 100) "abc\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00def")
            (data (i32.const 65530) "0123456789"))"#,
    )
    .unwrap();
    for objective in Objective::ALL {
        check(
            &module,
            &PackOptions::default(),
            objective,
            &ImageOptions::default(),
        );
    }
    // An Emscripten-style side module: data at global.get $__memory_base.
    let mut text = String::from(
        r#"(module (import "env" "memory" (memory 1)) (import "env" "__memory_base" (global i32))"#,
    );
    let mut rng = Rng(3);
    for k in 0..40u64 {
        let bytes: Vec<u8> = (0..16).map(|_| rng.below(3) as u8).collect();
        text += &format!(
            "(data (offset (i32.add (global.get 0) (i32.const {}))) \"{}\")",
            k * 64,
            hex(&bytes)
        );
    }
    text += ")";
    let module = wat::parse_str(&text).unwrap();
    let image = ImageOptions {
        globals: [(0, 1024)].into_iter().collect(),
        zero_filled_imports: true,
        ..Default::default()
    };
    let options = PackOptions {
        extended_const: true,
        zero_filled_imports: true,
        ..Default::default()
    };
    for objective in Objective::ALL {
        check(&module, &options, objective, &image);
    }
}

#[test]
fn deterministic_across_thread_counts() {
    let mut rng = Rng(5);
    let module = sparse_table(&mut rng, 3000, 40, 50);
    let info = ModuleInfo::read(&module).unwrap();
    for objective in COMPRESSED {
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                pack_for_searching(
                    &module,
                    &info,
                    &PackOptions::default(),
                    objective,
                    false,
                    16,
                )
                .unwrap()
                .0
            })
        };
        assert_eq!(run(1), run(3), "{objective}");
    }
}

#[test]
fn modules_without_data_are_returned_as_they_are() {
    let module = wat::parse_str(r#"(module (memory 1) (func (export "f")))"#).unwrap();
    for objective in Objective::ALL {
        let out = check(
            &module,
            &PackOptions::default(),
            objective,
            &ImageOptions::default(),
        );
        assert_eq!(out, module);
    }
}

/// Real modules: `WASM_MEM_CORPUS` or ~/.cache/wasm-mem/corpus (fetched with
/// `../shared/corpus/fetch.sh DIR`); skipped with a note when absent. Bounded:
/// gzip on modules up to 256 kB, brotli and zstd up to 128 kB (the whole
/// corpus is covered by `bench-pack-objective`).
#[test]
fn corpus_modules_keep_the_image_and_never_grow() {
    let Some(paths) = common::corpus_modules() else {
        return;
    };
    for path in paths {
        let module = std::fs::read(&path).unwrap();
        if wasm_mem::input::validate(&module).is_err() {
            eprintln!("note: {} does not validate, skipped", path.display());
            continue;
        }
        let info = ModuleInfo::read(&module).unwrap();
        let image = ImageOptions {
            globals: (0..info.globals.len() as u32).map(|g| (g, 1024)).collect(),
            zero_filled_imports: true,
            ..Default::default()
        };
        let options = PackOptions {
            extended_const: true,
            zero_filled_imports: true,
            ..Default::default()
        };
        for objective in COMPRESSED {
            let limit = if objective == Objective::Gzip {
                256_000
            } else {
                128_000
            };
            if module.len() > limit {
                continue;
            }
            let out = check_searching(
                &module,
                &options,
                objective,
                &image,
                wasm_mem::pack_objective::SEARCH_LAYOUTS,
            );
            // The gap search's gain on Emscripten's tree-sitter.wasm: below
            // wasm-opt 132's 81,241 bytes (BENCHMARKS.md, "pack --objective"),
            // which no penalty layout reaches.
            if path.file_name().is_some_and(|n| n == "tree-sitter.wasm")
                && objective == Objective::Gzip
            {
                assert!(objective.size(&out) < 81_241, "{}", objective.size(&out));
            }
            eprintln!(
                "{} {objective}: {} -> {}",
                path.display(),
                objective.size(&module),
                objective.size(&out)
            );
        }
    }
}
