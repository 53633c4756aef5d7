//! The guest-memory view and the guest allocator: memory32, memory64 (above
//! 4 GiB in a sparse memory), multi-memory, shared memory, custom page
//! sizes, and every boundary.

#[path = "guests/support.rs"]
mod support;

use wasm_mem_host::{AllocatorNames, Error, GuestMemory, Outcome, RunConfig, Session};
use wasmtime::Val;

fn session(wat: &str) -> Session {
    let config = RunConfig {
        inherit_stdio: false,
        ..RunConfig::default()
    };
    Session::new(wat.as_bytes(), &config).expect("instantiate")
}

fn returned(outcome: Outcome) -> Vec<i64> {
    match outcome {
        Outcome::Returned(values) => values
            .iter()
            .map(|v| match v {
                Val::I32(x) => i64::from(*x),
                Val::I64(x) => *x,
                other => panic!("unexpected {other:?}"),
            })
            .collect(),
        Outcome::Exited(code) => panic!("exited {code}"),
    }
}

/// Every boundary of a memory of `size` bytes.
fn check_boundaries(s: &mut Session, view: &GuestMemory, size: u64) {
    assert_eq!(view.size(s.store()), size);
    // Last byte: in; one past: out; zero length at the end: in; past it: out.
    assert!(view.contains(s.store(), size - 1, 1));
    assert!(!view.contains(s.store(), size, 1));
    assert!(view.contains(s.store(), size, 0));
    assert!(!view.contains(s.store(), size + 1, 0));
    assert!(view.contains(s.store(), 0, size));
    assert!(!view.contains(s.store(), 0, size + 1));
    assert!(!view.contains(s.store(), 1, size));
    // Overflow at 2^64: an error of its own, never a wrapped short range.
    assert!(matches!(
        view.check(s.store(), u64::MAX, 1),
        Err(Error::Overflow { .. })
    ));
    assert!(matches!(
        view.check(s.store(), 1, u64::MAX),
        Err(Error::Overflow { .. })
    ));
    assert!(matches!(
        view.check(s.store(), u64::MAX, 0),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        view.check(s.store(), 0, u64::MAX),
        Err(Error::OutOfBounds { .. })
    ));
    // 32-bit truncation would turn these into small in-bounds addresses.
    if size < 1 << 32 {
        assert!(!view.contains(s.store(), (1 << 32) + 1, 1));
    }
    assert!(!view.contains(s.store(), 1u64 << 63, 1));

    view.write(s.store_mut(), size - 1, &[0xab]).unwrap();
    assert_eq!(view.read_vec(s.store(), size - 1, 1).unwrap(), [0xab]);
    assert!(view.write(s.store_mut(), size, &[1]).is_err());
    assert!(view.write(s.store_mut(), size - 1, &[1, 2]).is_err());
    assert_eq!(
        view.read_vec(s.store(), size - 1, 1).unwrap(),
        [0xab],
        "a failed write writes nothing"
    );
    assert!(view.read_vec(s.store(), size - 1, 2).is_err());

    view.write_le(s.store_mut(), size - 4, 0xdead_beef_u32)
        .unwrap();
    assert_eq!(
        view.read_le::<u32>(s.store(), size - 4).unwrap(),
        0xdead_beef
    );
    assert_eq!(
        view.read_vec(s.store(), size - 4, 4).unwrap(),
        [0xef, 0xbe, 0xad, 0xde]
    );
    assert!(view.read_le::<u32>(s.store(), size - 3).is_err());
    assert!(view.write_le(s.store_mut(), size - 7, 1u64).is_err());
    view.write_le(s.store_mut(), size - 8, -2.5f64).unwrap();
    assert_eq!(view.read_le::<f64>(s.store(), size - 8).unwrap(), -2.5);
    view.write_le(s.store_mut(), size - 16, u128::MAX - 1)
        .unwrap();
    assert_eq!(
        view.read_le::<u128>(s.store(), size - 16).unwrap(),
        u128::MAX - 1
    );
    view.write_le(s.store_mut(), size - 2, -3i16).unwrap();
    assert_eq!(view.read_le::<i16>(s.store(), size - 2).unwrap(), -3);

    // C strings: the cap and the end of memory both bound the search.
    view.write_cstr(s.store_mut(), size - 6, b"hello").unwrap();
    assert_eq!(view.read_str(s.store(), size - 6, 100).unwrap(), "hello");
    assert_eq!(view.read_cstr(s.store(), size - 6, 6).unwrap(), b"hello");
    assert!(matches!(
        view.read_cstr(s.store(), size - 6, 5),
        Err(Error::Unterminated { searched: 5, .. })
    ));
    view.write(s.store_mut(), size - 3, b"abc").unwrap();
    assert!(matches!(
        view.read_cstr(s.store(), size - 3, 1000),
        Err(Error::Unterminated { searched: 3, .. })
    ));
    assert!(matches!(
        view.read_cstr(s.store(), size, 10),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        view.write_cstr(s.store_mut(), 0, b"a\0b"),
        Err(Error::InteriorNul { position: 1 })
    ));
    assert!(
        view.write_cstr(s.store_mut(), size - 3, b"abc").is_err(),
        "no room for the NUL"
    );
    view.write(s.store_mut(), size - 2, &[0xff, 0]).unwrap();
    assert!(matches!(
        view.read_str(s.store(), size - 2, 10),
        Err(Error::Utf8 { .. })
    ));
}

#[test]
fn memory32_boundaries_and_slices() {
    let mut s = session(
        r#"(module
            (memory (export "memory") 1 4)
            (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
            (func (export "load") (param i32) (result i32) (i32.load (local.get 0))))"#,
    );
    let view = s.memory(0).unwrap();
    assert!(!view.is_64() && !view.is_shared());
    assert_eq!(view.page_size(), 65536);
    check_boundaries(&mut s, &view, 65536);

    // What the host writes, the guest reads, and the reverse.
    view.write_le(s.store_mut(), 100, 0x0102_0304u32).unwrap();
    assert_eq!(
        returned(s.invoke("load", &["100".into()]).unwrap()),
        [0x0102_0304]
    );

    // Borrowed slices see the same bytes and write through.
    assert_eq!(view.slice(s.store(), 100, 4).unwrap(), [4, 3, 2, 1]);
    view.slice_mut(s.store_mut(), 100, 2)
        .unwrap()
        .copy_from_slice(&[9, 9]);
    assert_eq!(view.read_le::<u32>(s.store(), 100).unwrap(), 0x0102_0909);
    assert!(view.slice(s.store(), 65535, 2).is_err());
    assert!(view.slice(s.store(), u64::MAX, 1).is_err());

    // After a grow by the guest, the view sees the new size at once.
    assert_eq!(returned(s.invoke("grow", &["1".into()]).unwrap()), [1]);
    check_boundaries(&mut s, &view, 2 * 65536);
    assert_eq!(view.pages(s.store()), 2);
}

#[test]
fn memory64_above_4gib_in_a_sparse_memory() {
    // 65537 pages: 4 GiB + 64 KiB, reserved but never touched except where
    // the test writes, so the host commits a few pages only.
    let mut s = session(
        r#"(module
            (memory (export "memory") i64 65537)
            (func (export "load") (param i64) (result i64) (i64.load (local.get 0)))
            (func (export "store") (param i64 i64) (i64.store (local.get 0) (local.get 1))))"#,
    );
    let view = s.memory(0).unwrap();
    assert!(view.is_64());
    let size = 65537u64 * 65536;
    check_boundaries(&mut s, &view, size);

    let high = (1u64 << 32) + 12;
    view.write_le(s.store_mut(), high, 0x1122_3344_5566_7788u64)
        .unwrap();
    assert_eq!(
        returned(s.invoke("load", &[high.to_string()]).unwrap()),
        [0x1122_3344_5566_7788]
    );
    // The same offset truncated to 32 bits is another place, still zero.
    assert_eq!(view.read_le::<u64>(s.store(), 12).unwrap(), 0);
    s.invoke("store", &[(size - 8).to_string(), "-1".into()])
        .unwrap();
    assert_eq!(view.read_le::<i64>(s.store(), size - 8).unwrap(), -1);
    assert_eq!(
        view.slice(s.store(), high, 8).unwrap(),
        0x1122_3344_5566_7788u64.to_le_bytes()
    );
}

#[test]
fn multi_memory_every_memory_by_index() {
    // Memory 1 is not exported: the session exports it under a hidden name.
    let mut s = session(
        r#"(module
            (memory $a (export "a") 1)
            (memory $b 2)
            (memory $c (export "c") i64 1)
            (func (export "load_b") (param i32) (result i32) (i32.load $b (local.get 0)))
            (func (export "load_c") (param i64) (result i32) (i32.load $c (local.get 0))))"#,
    );
    let (a, b, c) = (
        s.memory(0).unwrap(),
        s.memory(1).unwrap(),
        s.memory(2).unwrap(),
    );
    assert!(s.memory(3).is_err());
    assert_eq!(a.size(s.store()), 65536);
    assert_eq!(b.size(s.store()), 2 * 65536);
    assert!(c.is_64());
    check_boundaries(&mut s, &b, 2 * 65536);
    b.write_le(s.store_mut(), 8, 77u32).unwrap();
    c.write_le(s.store_mut(), 8, 88u32).unwrap();
    assert_eq!(returned(s.invoke("load_b", &["8".into()]).unwrap()), [77]);
    assert_eq!(returned(s.invoke("load_c", &["8".into()]).unwrap()), [88]);
    assert_eq!(
        a.read_le::<u32>(s.store(), 8).unwrap(),
        0,
        "memories are separate"
    );
    // By export name too.
    let instance = s.instance();
    let by_name = GuestMemory::export(s.store_mut(), &instance, "c").unwrap();
    assert_eq!(by_name.read_le::<u32>(s.store(), 8).unwrap(), 88);
    assert!(GuestMemory::export(s.store_mut(), &instance, "load_b").is_err());
    // The original module's exports are kept, and the hidden one is added.
    assert_eq!(s.prepared().memory_exports, ["a", "wasm-mem:memory:1", "c"]);
}

#[test]
fn shared_memory_is_copy_only() {
    let mut s = session(
        r#"(module
            (memory (export "memory") 1 4 shared)
            (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
            (func (export "load") (param i32) (result i32) (i32.atomic.load (local.get 0))))"#,
    );
    let view = s.memory(0).unwrap();
    assert!(view.is_shared());
    check_boundaries(&mut s, &view, 65536);
    view.write_le(s.store_mut(), 64, 5u32).unwrap();
    assert_eq!(returned(s.invoke("load", &["64".into()]).unwrap()), [5]);
    assert!(matches!(
        view.slice(s.store(), 0, 1),
        Err(Error::Shared { .. })
    ));
    assert!(matches!(
        view.slice_mut(s.store_mut(), 0, 1),
        Err(Error::Shared { .. })
    ));
    assert_eq!(returned(s.invoke("grow", &["2".into()]).unwrap()), [1]);
    check_boundaries(&mut s, &view, 3 * 65536);
}

#[test]
fn custom_page_size_from_the_type() {
    let mut s = session(
        r#"(module
            (memory (export "memory") 100 (pagesize 1))
            (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))"#,
    );
    let view = s.memory(0).unwrap();
    assert_eq!(view.page_size(), 1);
    check_boundaries(&mut s, &view, 100);
    assert_eq!(returned(s.invoke("grow", &["7".into()]).unwrap()), [100]);
    assert_eq!(view.size(s.store()), 107);
    assert_eq!(view.pages(s.store()), 107);
}

/// A bump allocator with a one-block free list, 32- or 64-bit.
fn bump_allocator(wide: bool) -> String {
    let (t, mem) = if wide { ("i64", "i64 1") } else { ("i32", "1") };
    format!(
        r#"(module
            (memory (export "memory") {mem})
            (global $next (mut {t}) ({t}.const 1024))
            (global $freed (mut {t}) ({t}.const 0))
            (func (export "malloc") (param $n {t}) (result {t}) (local $p {t})
              ;; sizes over 60000 bytes fail: NULL
              (if (result {t}) ({t}.gt_u (local.get $n) ({t}.const 60000))
                (then ({t}.const 0))
                (else
                  (local.set $p (global.get $next))
                  (global.set $next ({t}.add (global.get $next)
                    ({t}.and ({t}.add (local.get $n) ({t}.const 15)) ({t}.const -16))))
                  (local.get $p))))
            (func (export "free") (param $p {t}) (global.set $freed (local.get $p)))
            (func (export "last_freed") (result {t}) (global.get $freed))
            (func (export "bad_calloc") (param {t}) (result {t}) (local.get 0)))"#
    )
}

#[test]
fn guest_allocator_memory32_and_memory64() {
    for wide in [false, true] {
        let mut s = session(&bump_allocator(wide));
        let memory = s.memory(0).unwrap();
        let alloc = s.allocator(&AllocatorNames::default()).unwrap();
        assert_eq!(alloc.is_64(), wide);
        let a = alloc.malloc(s.store_mut(), 10).unwrap();
        let b = alloc.malloc(s.store_mut(), 10).unwrap();
        assert_eq!((a, b), (1024, 1040));
        let c = alloc
            .alloc_bytes(s.store_mut(), &memory, b"payload")
            .unwrap();
        assert_eq!(memory.read_vec(s.store(), c, 7).unwrap(), b"payload");
        let d = alloc.alloc_cstr(s.store_mut(), &memory, b"text").unwrap();
        assert_eq!(memory.read_str(s.store(), d, 100).unwrap(), "text");
        alloc.free(s.store_mut(), b).unwrap();
        assert_eq!(returned(s.invoke("last_freed", &[]).unwrap()), [1040]);
        assert!(matches!(
            alloc.malloc(s.store_mut(), 70000),
            Err(Error::OutOfGuestMemory { size: 70000, .. })
        ));
        // No truncation: 2^32 + 16 bytes on a 32-bit guest is an error, not 16.
        let huge = alloc.malloc(s.store_mut(), (1 << 32) + 16);
        if wide {
            assert!(matches!(huge, Err(Error::OutOfGuestMemory { .. })));
        } else {
            assert!(matches!(huge, Err(Error::TooWide { .. })));
        }
        // calloc is not exported: an error only when called.
        assert!(matches!(
            alloc.calloc(s.store_mut(), 1, 1),
            Err(Error::NoFunction(_))
        ));
        // A function of the wrong type under an allocator name is refused.
        let names = AllocatorNames {
            calloc: Some("bad_calloc".into()),
            ..AllocatorNames::default()
        };
        assert!(matches!(s.allocator(&names), Err(Error::Signature { .. })));
        let names = AllocatorNames {
            malloc: "nope".into(),
            ..AllocatorNames::default()
        };
        assert!(matches!(s.allocator(&names), Err(Error::NoFunction(_))));
    }
}

#[test]
fn guest_allocator_of_a_rust_wasi_reactor() {
    let Some(guests) = support::guests() else {
        return;
    };
    let module = std::fs::read(&guests.reactor).unwrap();
    let config = RunConfig {
        inherit_stdio: false,
        ..RunConfig::default()
    };
    let mut s = Session::new(&module, &config).unwrap();
    let memory = s.memory(0).unwrap();
    let names = AllocatorNames {
        malloc: "guest_malloc".into(),
        free: Some("guest_free".into()),
        calloc: None,
        realloc: None,
        aligned_alloc: None,
    };
    let alloc = s.allocator(&names).unwrap();
    let data: Vec<u8> = (1..=200u8).collect();
    let addr = alloc.alloc_bytes(s.store_mut(), &memory, &data).unwrap();
    assert_eq!(addr % 16, 0);
    let sum: i64 = data.iter().map(|b| i64::from(*b)).sum();
    assert_eq!(
        returned(
            s.invoke("byte_sum", &[addr.to_string(), "200".into()])
                .unwrap()
        ),
        [sum]
    );
    let text = alloc
        .alloc_cstr(s.store_mut(), &memory, b"wasm-mem")
        .unwrap();
    assert_eq!(
        returned(s.invoke("string_length", &[text.to_string()]).unwrap()),
        [8]
    );
    alloc.free(s.store_mut(), addr).unwrap();
    alloc.free(s.store_mut(), text).unwrap();
    // A big allocation grows the guest's memory; the view sees it.
    let before = memory.size(s.store());
    let big = alloc.malloc(s.store_mut(), 4 << 20).unwrap();
    assert!(memory.size(s.store()) >= before + (4 << 20));
    memory
        .write(s.store_mut(), big + (4 << 20) - 1, &[1])
        .unwrap();
}
