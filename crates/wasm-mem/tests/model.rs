//! The memory model, footprint and check on hand-written modules.

use wasm_mem::footprint::{check, footprint, BudgetSource, Severity};
use wasm_mem::manifest::Manifest;
use wasm_mem::model::{Offset, SymbolSource};
use wasm_mem::ModuleInfo;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = wat::parse_file(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    wasm_mem::input::validate(&bytes).unwrap();
    bytes
}

fn read(name: &str) -> (Vec<u8>, ModuleInfo) {
    let bytes = fixture(name);
    let info = ModuleInfo::read(&bytes).unwrap();
    (bytes, info)
}

#[test]
fn multi_memory_model() {
    let (_, info) = read("multi.wat");
    assert_eq!(info.memories.len(), 4);
    let imported = &info.memories[0];
    assert_eq!(imported.import.as_ref().unwrap().name, "shared_mem");
    assert_eq!((imported.min_pages, imported.max_pages), (1, Some(4)));
    let main = &info.memories[1];
    assert_eq!(main.exports, vec!["memory".to_string()]);
    assert_eq!((main.min_pages, main.max_pages), (2, Some(16)));
    assert!(info.memories[2].memory64);
    assert!(!info.memories[1].memory64);
    assert!(info.memories[3].is_fixed());

    // instruction counts per memory
    let c = &info.memories[1].instructions;
    assert_eq!((c.stores, c.grow, c.copy, c.init, c.size), (1, 1, 1, 1, 1));
    let c = &info.memories[0].instructions;
    assert_eq!((c.loads, c.copy, c.size, c.stores), (1, 1, 1, 0));
    let c = &info.memories[2].instructions;
    assert_eq!((c.loads, c.total()), (1, 1));
    let c = &info.memories[3].instructions;
    assert_eq!((c.stores, c.grow, c.fill), (1, 1, 1));
    assert_eq!(info.data_drops, 1);

    // data segments
    let d = &info.data_segments;
    assert_eq!(d.len(), 6);
    assert_eq!(d[0].offset, Some(Offset::Const { value: 16 }));
    assert_eq!(d[1].memory, Some(1));
    assert_eq!(
        d[2].offset,
        Some(Offset::Global {
            global: 0,
            addend: 0,
            resolved: None
        })
    );
    assert_eq!(d[3].zero_bytes, 3);
    assert_eq!(d[4].offset, Some(Offset::Const { value: 4096 }));
    assert!(d[5].passive && d[5].memory.is_none());
    assert_eq!(d[5].name.as_deref(), Some("passive"));
    assert_eq!(d[5].len, 16);

    // layout symbols: one from the name section, one exported
    let sp = info.symbol("__stack_pointer").unwrap();
    assert_eq!(
        (sp.value, sp.source),
        (Some(65536), SymbolSource::NameSection)
    );
    let hb = info.symbol("__heap_base").unwrap();
    assert_eq!((hb.value, hb.source), (Some(70000), SymbolSource::Export));
}

#[test]
fn segment_payload_ranges_point_into_the_input() {
    let (bytes, info) = read("multi.wat");
    let seg = &info.data_segments[0];
    assert_eq!(&bytes[seg.payload.clone()], b"abcdefgh");
    assert!(seg.range.start < seg.payload.start && seg.range.end == seg.payload.end);
}

#[test]
fn memory64_model_and_footprint() {
    let (_, info) = read("memory64.wat");
    let m = &info.memories[0];
    assert!(m.memory64);
    assert_eq!(m.min_pages, 65538);
    assert_eq!(
        info.data_segments[0].offset,
        Some(Offset::Const { value: 1 << 32 })
    );
    let fp = footprint(&info, m, &Default::default());
    // heap base is the highest symbol
    assert_eq!(fp.static_end, 4295098368);
    assert_eq!(fp.pages, 4295098368u128.div_ceil(65536));
    assert_eq!(m.address_space_pages(), 1 << 48);
}

#[test]
fn shared_and_custom_page_sizes() {
    let (_, info) = read("shared.wat");
    assert!(info.memories[0].shared);
    assert_eq!(info.memories[0].instructions.atomics, 2);
    let (_, info) = read("custom_page.wat");
    let m = &info.memories[0];
    assert_eq!(m.page_size, 1);
    assert_eq!(m.address_space_pages(), u32::MAX as u128);
    let fp = footprint(&info, m, &Default::default());
    assert_eq!((fp.bytes, fp.pages), (272, 272));
}

#[test]
fn side_module_offsets_are_relocatable() {
    let (_, info) = read("side_module.wat");
    assert_eq!(
        info.data_segments[1].offset,
        Some(Offset::Global {
            global: 0,
            addend: 64,
            resolved: None
        })
    );
    let m = &info.memories[0];
    let fp = footprint(&info, m, &Default::default());
    assert_eq!(fp.relocatable_data_bytes, 36);
    assert_eq!(fp.data_end, 0);
    // the imported stack pointer has no known value
    assert_eq!(info.symbol("__stack_pointer").unwrap().value, None);
}

#[test]
fn stack_pointer_heuristic_needs_no_names() {
    // wasm-ld's layout with the names stripped.
    let bytes = wat::parse_str(
        "(module (memory 17) (global (mut i32) (i32.const 1048576)) (global i32 (i32.const 7))
          (data (i32.const 1024) \"x\"))",
    )
    .unwrap();
    let info = ModuleInfo::read(&bytes).unwrap();
    let sp = info.symbol("__stack_pointer").unwrap();
    assert_eq!(sp.source, SymbolSource::Heuristic);
    assert_eq!(sp.value, Some(1048576));
    // an immutable first global is not a stack pointer
    let bytes = wat::parse_str("(module (memory 17) (global i32 (i32.const 1048576)))").unwrap();
    assert!(ModuleInfo::read(&bytes)
        .unwrap()
        .symbol("__stack_pointer")
        .is_none());
    // a value beyond the initial memory is not either
    let bytes =
        wat::parse_str("(module (memory 1) (global (mut i32) (i32.const 1048576)))").unwrap();
    assert!(ModuleInfo::read(&bytes)
        .unwrap()
        .symbol("__stack_pointer")
        .is_none());
}

#[test]
fn extended_const_and_defined_global_offsets() {
    let bytes = wat::parse_str(
        "(module (memory 1) (global $g i32 (i32.const 100))
          (data (offset (i32.add (i32.const 8) (i32.mul (i32.const 2) (i32.const 4)))) \"a\")
          (data (global.get $g) \"b\")
          (data (offset (i32.sub (global.get $g) (i32.const 1))) \"c\")
          (data (i32.const -1) \"\"))",
    )
    .unwrap();
    let info = ModuleInfo::read(&bytes).unwrap();
    let d = &info.data_segments;
    assert_eq!(d[0].offset, Some(Offset::Const { value: 16 }));
    assert_eq!(
        d[1].offset,
        Some(Offset::Global {
            global: 0,
            addend: 0,
            resolved: Some(100)
        })
    );
    assert_eq!(d[2].offset.as_ref().unwrap().known_value(), Some(99));
    // i32 offsets are unsigned addresses
    assert_eq!(d[3].offset, Some(Offset::Const { value: 0xffff_ffff }));
}

#[test]
fn check_budgets_and_findings() {
    let (_, info) = read("fixed_grow.wat");
    let report = check(&info, &Manifest::default(), &vec![]);
    assert!(!report.ok);
    let m = &report.memories[0];
    assert_eq!(m.budget_source, BudgetSource::DeclaredMin);
    assert!(!m.fits);
    assert_eq!(m.footprint.bytes, 65540);
    assert_eq!(m.over_by_bytes, 4);
    assert_eq!(m.over_by_pages, 1);
    assert!(m
        .findings
        .iter()
        .any(|f| f.severity == Severity::Error && f.message.contains("instantiation traps")));
    assert!(m
        .findings
        .iter()
        .any(|f| f.severity == Severity::Warning && f.message.contains("memory.grow")));

    let (_, info) = read("multi.wat");
    // memory 1: heap base 70000 -> 2 pages; budget 1 page fails, 2 pages fits
    let report = check(&info, &Manifest::default(), &vec![(1, 1)]);
    assert!(!report.ok);
    assert_eq!(report.memories[1].budget_source, BudgetSource::CommandLine);
    let report = check(&info, &Manifest::default(), &vec![(1, 2)]);
    // memory 0's layout symbols make it need 70000 bytes, over its 1-page min
    assert!(!report.memories[0].fits);
    assert!(report.memories[1].fits);
}

#[test]
fn manifest_reservations_count_where_the_module_is_silent() {
    let bytes = wat::parse_str("(module (memory 4) (data (i32.const 0) \"abc\"))").unwrap();
    let info = ModuleInfo::read(&bytes).unwrap();
    let manifest = Manifest::parse(
        "[memory]\nmax-pages = 2\nstack-size = 65536\nheap-size = 65536\n",
        false,
    )
    .unwrap();
    let report = check(&info, &manifest, &vec![]);
    let m = &report.memories[0];
    assert_eq!(m.footprint.bytes, 3 + 65536 * 2);
    assert_eq!(m.footprint.pages, 3);
    assert_eq!(m.budget_source, BudgetSource::Manifest);
    assert_eq!(m.budget_pages, 2);
    // declared min 4 pages is what the module takes at start-up
    assert_eq!(m.startup_pages, 4);
    assert!(!report.ok);

    // with a stack pointer, stack-size is not added again
    let bytes =
        wat::parse_str("(module (memory 4) (global $__stack_pointer (mut i32) (i32.const 65536)))")
            .unwrap();
    let info = ModuleInfo::read(&bytes).unwrap();
    let fp = footprint(&info, &info.memories[0], &manifest.memory(0));
    assert_eq!(fp.stack_reserve, 0);
    assert_eq!(fp.bytes, 65536 * 2);
}

#[test]
fn no_memory_is_fine() {
    let (_, info) = read("no_memory.wat");
    assert!(info.memories.is_empty());
    assert!(check(&info, &Manifest::default(), &vec![]).ok);
}

#[test]
fn count_zeros_counts_every_zero() {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for len in [0usize, 1, 254, 255, 256, 510, 511, 4096, 70_001] {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                if state.is_multiple_of(3) {
                    0
                } else {
                    state as u8 | 1
                }
            })
            .collect();
        let naive = bytes.iter().filter(|&&b| b == 0).count() as u64;
        assert_eq!(wasm_mem::model::count_zeros(&bytes), naive, "length {len}");
    }
    assert_eq!(wasm_mem::model::count_zeros(&[0; 1000]), 1000);
}
