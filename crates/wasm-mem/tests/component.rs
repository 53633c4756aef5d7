//! Components: the walker, the rebuild and every pass applied to the core
//! modules of components built here (component WAT, and `wit-component`).

use wasm_mem::component::{self, Component};
use wasm_mem::image::{compare, initial_images, ImageOptions};
use wasm_mem::ModuleInfo;

/// One core module, a string-returning export lifted through the module's
/// exported memory (the canonical ABI uses it), a custom section.
const ONE_MODULE: &str = include_str!("components/one.wat");

/// Several core modules, one of them in a nested component, one importing
/// another's memory, one with a 64-bit memory of its own and one with two
/// memories.
const SEVERAL: &str = include_str!("components/several.wat");

fn component(text: &str) -> Vec<u8> {
    let bytes = wat::parse_str(text).expect("test component parses");
    component::validate(&bytes).expect("test component validates");
    bytes
}

/// Every byte of a component that is not inside a core module: the
/// preambles and every other section, recursively, with core module
/// sections reduced to their ids.
fn skeleton(bytes: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&bytes[..8]);
    let mut reader = wasmparser::BinaryReader::new(&bytes[8..], 8);
    while !reader.eof() {
        let start = reader.original_position();
        let id = reader.read_u8().unwrap();
        let size = reader.read_var_u32().unwrap() as usize;
        let payload_start = reader.original_position();
        let payload = reader.read_bytes(size).unwrap();
        match id {
            1 => out.push(1),
            4 => {
                out.push(4);
                skeleton(payload, out);
            }
            _ => out.extend_from_slice(&bytes[start..payload_start + size]),
        }
    }
}

fn skeleton_of(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    skeleton(bytes, &mut out);
    out
}

fn modules_of(bytes: &[u8]) -> Vec<Vec<u8>> {
    let c = Component::parse(bytes).unwrap();
    c.modules()
        .iter()
        .map(|m| c.module_bytes(m).to_vec())
        .collect()
}

#[test]
fn walker_finds_every_core_module_in_depth_first_order() {
    let bytes = component(SEVERAL);
    let c = Component::parse(&bytes).unwrap();
    let modules = c.modules();
    assert_eq!(modules.len(), 5);
    let depths: Vec<u32> = modules.iter().map(|m| m.depth).collect();
    assert_eq!(
        depths,
        [0, 1, 0, 0, 0],
        "module 1 is inside the nested component"
    );
    for (i, m) in modules.iter().enumerate() {
        assert_eq!(m.index as usize, i);
        let module = c.module_bytes(m);
        assert_eq!(&module[..4], b"\0asm");
        assert_eq!(&bytes[m.offset..m.offset + 8], &module[..8]);
        assert_eq!(bytes[m.section_offset], 1, "section id of a core module");
        assert!(m.section_offset < m.offset);
        wasm_mem::input::validate(module).unwrap();
    }
    // Offsets increase: the numbering is the order in the file.
    assert!(modules.windows(2).all(|w| w[0].offset < w[1].offset));
    // The memories are where the text put them.
    let info: Vec<ModuleInfo> = modules
        .iter()
        .map(|m| ModuleInfo::read(c.module_bytes(m)).unwrap())
        .collect();
    assert_eq!(info[0].memories[0].exports, ["mem"]);
    assert_eq!(info[1].data_segments.len(), 2);
    assert!(info[2].memories[0].import.is_some());
    assert!(info[3].memories[0].memory64);
    assert_eq!(info[4].memories.len(), 2);
}

#[test]
fn a_core_module_is_not_a_component() {
    let module = wat::parse_str("(module (memory 1))").unwrap();
    assert!(!component::is_component(&module));
    assert!(Component::parse(&module).is_err());
    assert!(component::is_component(&component(ONE_MODULE)));
}

#[test]
fn truncated_component_is_a_clean_error() {
    let bytes = component(SEVERAL);
    for cut in [9, 12, bytes.len() / 2, bytes.len() - 1] {
        let truncated = &bytes[..cut];
        // The framing walk or the validator must say no, with an error (no panic).
        let framing = Component::parse(truncated).map(|_| ());
        let validation = component::validate(truncated);
        assert!(framing.is_err() || validation.is_err(), "cut at {cut}");
        if let Err(e) = framing {
            assert_eq!(e.exit_code(), 2, "cut at {cut}: {e}");
        }
    }
}

#[test]
fn rebuild_without_changes_is_byte_identical() {
    for text in [ONE_MODULE, SEVERAL] {
        let bytes = component(text);
        let c = Component::parse(&bytes).unwrap();
        assert_eq!(c.rebuild(|_, _| Ok(None)).unwrap(), bytes);
        assert_eq!(
            c.rebuild(|_, m| Ok(Some(m.to_vec()))).unwrap(),
            bytes,
            "the same bytes back count as unchanged"
        );
    }
}

#[test]
fn rebuild_changes_only_the_rewritten_module_and_its_size_fields() {
    let bytes = component(SEVERAL);
    let c = Component::parse(&bytes).unwrap();
    // Grow module 1 (inside the nested component) past a size-LEB boundary
    // with a custom section: its section and the nested component's size
    // fields both change width.
    let filler = vec![7u8; 300];
    let out = c
        .rebuild(|m, module| {
            if m.index != 1 {
                return Ok(None);
            }
            let mut new = module.to_vec();
            wasm_encoder::Section::append_to(
                &wasm_encoder::CustomSection {
                    name: "filler".into(),
                    data: filler.as_slice().into(),
                },
                &mut new,
            );
            Ok(Some(new))
        })
        .unwrap();
    component::validate(&out).unwrap();
    assert_eq!(skeleton_of(&out), skeleton_of(&bytes));
    let before = modules_of(&bytes);
    let after = modules_of(&out);
    for i in [0, 2, 3, 4] {
        assert_eq!(before[i], after[i], "module {i} untouched");
    }
    assert_eq!(&after[1][..before[1].len()], before[1].as_slice());
    // id, two-byte size, name length, "filler", the data.
    assert_eq!(after[1].len(), before[1].len() + 1 + 2 + 1 + 6 + 300);
}

fn assert_same_images(before: &[u8], after: &[u8]) {
    let options = ImageOptions::default();
    let a = initial_images(before, &options).unwrap();
    let b = initial_images(after, &options).unwrap();
    compare(&a, &b).unwrap();
}

#[test]
fn pack_every_module_keeps_images_and_everything_else() {
    for text in [ONE_MODULE, SEVERAL] {
        let bytes = component(text);
        let (out, reports) = component::rewrite_modules(&bytes, None, "pack", |_, module| {
            let info = ModuleInfo::read(module)?;
            wasm_mem::pack::pack(module, &info, &Default::default())
        })
        .unwrap();
        component::validate(&out).unwrap();
        assert!(out.len() < bytes.len(), "adjacent segments merge");
        assert_eq!(skeleton_of(&out), skeleton_of(&bytes));
        let before = modules_of(&bytes);
        let after = modules_of(&out);
        assert_eq!(reports.len(), before.len());
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            assert_same_images(b, a);
            assert_eq!(reports[i].size_before, b.len());
            assert_eq!(reports[i].size_after, a.len());
        }
    }
}

#[test]
fn pack_one_selected_module() {
    let bytes = component(SEVERAL);
    let (out, reports) = component::rewrite_modules(&bytes, Some(1), "pack", |_, module| {
        let info = ModuleInfo::read(module)?;
        wasm_mem::pack::pack(module, &info, &Default::default())
    })
    .unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].index, 1);
    let before = modules_of(&bytes);
    let after = modules_of(&out);
    assert_ne!(before[1], after[1]);
    for i in [0, 2, 3, 4] {
        assert_eq!(before[i], after[i]);
    }
    let err = component::rewrite_modules(&bytes, Some(5), "pack", |_, m| Ok((m.to_vec(), ())))
        .unwrap_err();
    assert!(
        err.to_string().contains("core module 5 does not exist"),
        "{err}"
    );
    assert_eq!(err.exit_code(), 2);
}

#[test]
fn lower_memory64_of_an_internal_memory_and_refusal_of_an_exported_one() {
    let bytes = component(SEVERAL);
    let (out, reports) = component::rewrite_modules(&bytes, Some(3), "lower memory64", |_, m| {
        wasm_mem::lower_memory64::lower_memory64(m)
    })
    .unwrap();
    assert_eq!(reports.len(), 1);
    let lowered = &modules_of(&out)[3];
    assert!(!ModuleInfo::read(lowered).unwrap().memories[0].memory64);
    assert_eq!(skeleton_of(&out), skeleton_of(&bytes));

    // The canonical ABI uses an exported 64-bit memory: refused, naming it.
    let exported = component(
        r#"(component
          (core module $m (memory (export "memory") i64 1) (data (i64.const 0) "x"))
          (core instance $i (instantiate $m))
          (core module $n (import "m" "memory" (memory i64 1)))
          (core instance (instantiate $n (with "m" (instance $i)))))"#,
    );
    let err = component::rewrite_modules(&exported, None, "lower memory64", |_, m| {
        wasm_mem::lower_memory64::lower_memory64(m)
    })
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("core module 0"), "{text}");
    assert!(text.contains("export \"memory\": memory i64"), "{text}");
    assert_eq!(err.exit_code(), 2);
}

#[test]
fn raise_memory64_refuses_the_memory_the_canonical_abi_uses() {
    let bytes = component(ONE_MODULE);
    let err = component::rewrite_modules(&bytes, None, "raise memory64", |_, m| {
        wasm_mem::raise_memory64::raise_memory64(m, &Default::default())
    })
    .unwrap_err();
    assert!(err.to_string().contains("export \"memory\""), "{err}");
    // Module 1 of SEVERAL has an internal memory: raised, still valid.
    let bytes = component(SEVERAL);
    let (out, _) = component::rewrite_modules(&bytes, Some(1), "raise memory64", |_, m| {
        wasm_mem::raise_memory64::raise_memory64(m, &Default::default())
    })
    .unwrap();
    assert!(ModuleInfo::read(&modules_of(&out)[1]).unwrap().memories[0].memory64);
}

#[test]
fn lower_multi_memory_of_one_module() {
    let bytes = component(SEVERAL);
    let (out, _) = component::rewrite_modules(&bytes, Some(4), "lower multi-memory", |_, m| {
        wasm_mem::lower_multi_memory::lower_multi_memory(m, &Default::default())
    })
    .unwrap();
    let lowered = ModuleInfo::read(&modules_of(&out)[4]).unwrap();
    assert_eq!(lowered.memories.len(), 1);
    assert_eq!(skeleton_of(&out), skeleton_of(&bytes));
}

#[test]
fn pages_limit_change_that_breaks_an_importer_is_refused() {
    let bytes = component(SEVERAL);
    let set = |module: &[u8], min: u64| {
        let info = ModuleInfo::read(module)?;
        let flags = wasm_mem::pages::PageFlags {
            min: Some(min),
            ..Default::default()
        };
        wasm_mem::pages::set_pages(module, &info, &[(0, flags)], &Default::default())
    };
    // Module 0 exports its memory (2 pages) to module 2, which imports it
    // with a minimum of 1: 3 pages is fine ...
    let (out, _) = component::rewrite_modules(&bytes, Some(0), "pages", |_, m| set(m, 3)).unwrap();
    assert_eq!(
        ModuleInfo::read(&modules_of(&out)[0]).unwrap().memories[0].min_pages,
        3
    );
    // ... and raising the importer's minimum above what module 0 provides
    // makes the instantiation fail: refused, naming the module.
    let err = component::rewrite_modules(&bytes, Some(2), "pages", |_, m| set(m, 3)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("core module 2"), "{text}");
    assert!(text.contains("would not validate"), "{text}");
    assert_eq!(err.exit_code(), 2);
}

#[test]
fn errors_in_a_module_name_the_module_and_the_input_offset() {
    let bytes = component(SEVERAL);
    let c = Component::parse(&bytes).unwrap();
    let m = &c.modules()[3];
    let err = component::in_module(
        wasm_mem::Error::Invalid {
            message: "x".into(),
            location: wasm_mem::error::Location {
                section: "data section".into(),
                offset: 10,
            },
        },
        m,
    );
    let text = err.to_string();
    assert!(text.contains("core module 3, data section"), "{text}");
    assert!(
        text.contains(&format!("byte offset {}", m.offset + 10)),
        "{text}"
    );
    assert!(c
        .locate(m.offset + 9)
        .section
        .starts_with("core module 3, "));
}

/// A component made by wit-component from a core module of our own: the
/// world imports a function taking a string, so wit-component adds its
/// shim and fixup core modules around ours.
fn wit_component_component() -> Vec<u8> {
    let mut resolve = wit_parser::Resolve::default();
    let package = resolve
        .push_str(
            "test.wit",
            r#"package test:app;
               world app {
                 import log: func(msg: string);
                 export greet: func(name: string) -> string;
               }"#,
        )
        .unwrap();
    let world = resolve.select_world(&[package], Some("app")).unwrap();
    let mut module = wat::parse_str(
        r#"(module
            (import "$root" "log" (func $log (param i32 i32)))
            (memory (export "memory") 2)
            (global $heap (mut i32) (i32.const 4096))
            (data (i32.const 16) "hello, ")
            (data (i32.const 23) "world")
            (data (i32.const 1024) "\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\01")
            (func (export "greet") (param i32 i32) (result i32)
              (call $log (i32.const 16) (i32.const 12))
              (i32.store (i32.const 64) (i32.const 16))
              (i32.store (i32.const 68) (i32.const 12))
              i32.const 64)
            (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
              (local $p i32)
              (local.set $p (global.get $heap))
              (global.set $heap (i32.add (local.get $p) (local.get 3)))
              local.get $p))"#,
    )
    .unwrap();
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .unwrap();
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(&module)
        .unwrap()
        .encode()
        .unwrap()
}

#[test]
fn wit_component_component_pack_and_refusals() {
    let bytes = wit_component_component();
    component::validate(&bytes).unwrap();
    let c = Component::parse(&bytes).unwrap();
    assert!(
        c.modules().len() >= 2,
        "main module plus wit-component's shims"
    );
    let main = c
        .modules()
        .iter()
        .position(|m| {
            ModuleInfo::read(c.module_bytes(m))
                .unwrap()
                .memories
                .iter()
                .any(|mem| mem.exports == ["memory"])
        })
        .expect("our module is in there");
    let (out, reports) = component::rewrite_modules(&bytes, None, "pack", |_, module| {
        let info = ModuleInfo::read(module)?;
        wasm_mem::pack::pack(module, &info, &Default::default())
    })
    .unwrap();
    component::validate(&out).unwrap();
    assert!(reports[main].size_after < reports[main].size_before);
    assert_eq!(skeleton_of(&out), skeleton_of(&bytes));
    let before = modules_of(&bytes);
    let after = modules_of(&out);
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        assert_same_images(b, a);
        if i != main {
            assert_eq!(b, a, "modules without data stay as they are");
        }
    }
    // The memory the canonical ABI uses cannot become 64-bit.
    let err = component::rewrite_modules(&bytes, Some(main as u32), "raise memory64", |_, m| {
        wasm_mem::raise_memory64::raise_memory64(m, &Default::default())
    })
    .unwrap_err();
    assert!(
        err.to_string().contains(&format!("core module {main}")),
        "{err}"
    );
}
