//! The pages pass: precedence, every memory kind, refusals, byte identity.

use wasm_mem::manifest::{Manifest, MaxPages};
use wasm_mem::pages::{set_pages, LimitSource, PageFlags};
use wasm_mem::rewrite::Rewrite;
use wasm_mem::{Error, ModuleInfo};

fn module(wat: &str) -> Vec<u8> {
    wat::parse_str(wat).unwrap()
}

fn fixture(name: &str) -> Vec<u8> {
    wat::parse_file(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn run(bytes: &[u8], flags: &[(u32, PageFlags)], manifest: &Manifest) -> Result<Vec<u8>, Error> {
    let info = ModuleInfo::read(bytes).unwrap();
    set_pages(bytes, &info, flags, manifest).map(|(out, _)| out)
}

fn limits(bytes: &[u8], memory: usize) -> (u64, Option<u64>) {
    let info = ModuleInfo::read(bytes).unwrap();
    let m = &info.memories[memory];
    (m.min_pages, m.max_pages)
}

fn pages(n: u64) -> PageFlags {
    PageFlags {
        pages: Some(n),
        ..Default::default()
    }
}

fn refused(result: Result<Vec<u8>, Error>) -> String {
    match result {
        Err(Error::Refused(message)) => message,
        other => panic!("expected a refusal, got {:?}", other.map(|b| b.len())),
    }
}

#[test]
fn no_setting_gives_identical_bytes() {
    for name in [
        "multi.wat",
        "memory64.wat",
        "shared.wat",
        "custom_page.wat",
        "side_module.wat",
    ] {
        let bytes = fixture(name);
        assert_eq!(
            run(&bytes, &[], &Manifest::default()).unwrap(),
            bytes,
            "{name}"
        );
        // setting the values the module already has is no change either
        let info = ModuleInfo::read(&bytes).unwrap();
        let same = PageFlags {
            min: Some(info.memories[0].min_pages),
            max: Some(
                info.memories[0]
                    .max_pages
                    .map_or(MaxPages::Unbounded, MaxPages::Pages),
            ),
            ..Default::default()
        };
        assert_eq!(
            run(&bytes, &[(0, same)], &Manifest::default()).unwrap(),
            bytes,
            "{name}"
        );
    }
}

#[test]
fn fixed_and_growable() {
    let bytes = module("(module (memory 1 10) (func (drop (memory.grow (i32.const 1)))))");
    let out = run(&bytes, &[(0, pages(4))], &Manifest::default()).unwrap();
    assert_eq!(limits(&out, 0), (4, Some(4)));
    let out = run(
        &bytes,
        &[(
            0,
            PageFlags {
                min: Some(2),
                max: Some(MaxPages::Unbounded),
                ..Default::default()
            },
        )],
        &Manifest::default(),
    )
    .unwrap();
    assert_eq!(limits(&out, 0), (2, None));
    let out = run(
        &bytes,
        &[(
            0,
            PageFlags {
                min: Some(3),
                fixed: true,
                ..Default::default()
            },
        )],
        &Manifest::default(),
    )
    .unwrap();
    assert_eq!(limits(&out, 0), (3, Some(3)));
}

#[test]
fn fixing_a_growing_memory_warns() {
    let bytes = module("(module (memory 1 10) (func (drop (memory.grow (i32.const 1)))))");
    let info = ModuleInfo::read(&bytes).unwrap();
    let (_, report) = set_pages(&bytes, &info, &[(0, pages(4))], &Manifest::default()).unwrap();
    assert!(report.warnings.iter().any(|w| w.contains("memory.grow")));
}

#[test]
fn command_line_beats_manifest_beats_module() {
    let bytes = module("(module (memory 1 10))");
    let manifest = Manifest::parse("[memory]\nmin-pages = 3\nmax-pages = 7\n", false).unwrap();
    let info = ModuleInfo::read(&bytes).unwrap();
    let (out, report) = set_pages(&bytes, &info, &[], &manifest).unwrap();
    assert_eq!(limits(&out, 0), (3, Some(7)));
    assert_eq!(report.memories[0].min_source, LimitSource::Manifest);
    let flags = PageFlags {
        min: Some(5),
        ..Default::default()
    };
    let (out, report) = set_pages(&bytes, &info, &[(0, flags)], &manifest).unwrap();
    assert_eq!(limits(&out, 0), (5, Some(7)));
    assert_eq!(report.memories[0].min_source, LimitSource::CommandLine);
    assert_eq!(report.memories[0].max_source, LimitSource::Manifest);
    // the module's own max survives when nobody sets one
    let manifest = Manifest::parse("[memory]\nmin-pages = 2\n", false).unwrap();
    let out = run(&bytes, &[], &manifest).unwrap();
    assert_eq!(limits(&out, 0), (2, Some(10)));
}

#[test]
fn every_memory_of_a_multi_memory_module() {
    let bytes = fixture("multi.wat");
    // memory 0 is imported: the import's type changes
    let out = run(
        &bytes,
        &[(
            0,
            PageFlags {
                min: Some(2),
                max: Some(MaxPages::Pages(8)),
                ..Default::default()
            },
        )],
        &Manifest::default(),
    )
    .unwrap();
    assert_eq!(limits(&out, 0), (2, Some(8)));
    assert_eq!(limits(&out, 1), (2, Some(16)));
    // memory 2 is a memory64 and memory 3 a fixed one, set from the manifest
    let manifest = Manifest::parse(
        "[memory.2]\npages = 100000\n[memory.3]\nmax-pages = 3\n",
        false,
    )
    .unwrap();
    let out = run(&bytes, &[], &manifest).unwrap();
    assert_eq!(limits(&out, 2), (100000, Some(100000)));
    assert!(ModuleInfo::read(&out).unwrap().memories[2].memory64);
    assert_eq!(limits(&out, 3), (1, Some(3)));
    assert_eq!(limits(&out, 0), (1, Some(4)));
}

#[test]
fn untouched_sections_are_copied_byte_for_byte() {
    let bytes = fixture("multi.wat");
    let out = run(&bytes, &[(1, pages(9))], &Manifest::default()).unwrap();
    let a = Rewrite::new(&bytes).unwrap();
    let b = Rewrite::new(&out).unwrap();
    assert_eq!(a.sections().len(), b.sections().len());
    for (x, y) in a.sections().iter().zip(b.sections()) {
        let same = bytes[x.range.clone()] == out[y.range.clone()];
        assert_eq!(
            same,
            x.id != 5,
            "section {} changed: {}",
            x.describe(),
            !same
        );
    }
}

#[test]
fn custom_page_sizes_and_memory64_limits() {
    let bytes = fixture("custom_page.wat");
    let out = run(
        &bytes,
        &[(
            0,
            PageFlags {
                max: Some(MaxPages::Pages(u32::MAX as u64)),
                ..Default::default()
            },
        )],
        &Manifest::default(),
    )
    .unwrap();
    assert_eq!(limits(&out, 0), (300, Some(u32::MAX as u64)));
    assert!(ModuleInfo::read(&out).unwrap().memories[0].page_size == 1);
    let message = refused(run(
        &bytes,
        &[(
            0,
            PageFlags {
                max: Some(MaxPages::Pages(1 << 32)),
                ..Default::default()
            },
        )],
        &Manifest::default(),
    ));
    assert!(
        message.contains("address-space limit of 4294967295 pages of 1 bytes"),
        "{message}"
    );

    let bytes = fixture("memory64.wat");
    let out = run(
        &bytes,
        &[(
            0,
            PageFlags {
                max: Some(MaxPages::Pages(1 << 48)),
                ..Default::default()
            },
        )],
        &Manifest::default(),
    )
    .unwrap();
    assert_eq!(limits(&out, 0), (65538, Some(1 << 48)));
    let message = refused(run(
        &bytes,
        &[(0, pages((1 << 48) + 1))],
        &Manifest::default(),
    ));
    assert!(message.contains("281474976710656 pages"), "{message}");
}

#[test]
fn refusals() {
    let bytes = module("(module (memory 1 10))");
    // max below min
    let message = refused(run(
        &bytes,
        &[(
            0,
            PageFlags {
                min: Some(20),
                ..Default::default()
            },
        )],
        &Manifest::default(),
    ));
    assert!(message.contains("maximum of 10 pages (from the module) is below the minimum of 20 pages (from the command line)"), "{message}");
    // above the memory32 address space
    let message = refused(run(&bytes, &[(0, pages(65537))], &Manifest::default()));
    assert!(
        message.contains("address-space limit of 65536 pages"),
        "{message}"
    );
    // a memory that does not exist
    let message = refused(run(&bytes, &[(1, pages(2))], &Manifest::default()));
    assert!(message.contains("memory 1 does not exist"), "{message}");
    // shared memories keep a maximum
    let shared = fixture("shared.wat");
    let message = refused(run(
        &shared,
        &[(
            0,
            PageFlags {
                max: Some(MaxPages::Unbounded),
                ..Default::default()
            },
        )],
        &Manifest::default(),
    ));
    assert!(message.contains("shared"), "{message}");
}

#[test]
fn refuses_to_go_below_the_footprint() {
    let bytes = module(
        "(module (memory 4) (global $__stack_pointer (mut i32) (i32.const 131072)) (data (i32.const 1024) \"x\"))",
    );
    let message = refused(run(&bytes, &[(0, pages(1))], &Manifest::default()));
    assert!(
        message.contains("needs 131072 bytes (2 pages of 65536 bytes)"),
        "{message}"
    );
    assert_eq!(
        limits(
            &run(&bytes, &[(0, pages(2))], &Manifest::default()).unwrap(),
            0
        ),
        (2, Some(2))
    );
    // the manifest's reservations count too
    let bytes = module("(module (memory 4) (data (i32.const 0) \"x\"))");
    let manifest = Manifest::parse("[memory]\nstack-size = \"128KiB\"\n", false).unwrap();
    let message = refused(run(&bytes, &[(0, pages(2))], &manifest));
    assert!(message.contains("needs 131073 bytes (3 pages"), "{message}");
}
