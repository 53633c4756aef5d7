//! Edge cases of `lower memory64` and `raise memory64` that the spec suites
//! miss: addresses and lengths with high bits set, memarg offsets >= 2^32,
//! grow deltas >= 2^32, segments at offsets >= 2^32, table64, mixed modules,
//! and the 33-bit effective address of memory32. Every case runs the
//! original and the transformed module on wasmtime (memory64 off for the
//! lowered one) and compares each call's result or trap kind; the key
//! outcomes are also checked against the values the spec prescribes.

use wasm_mem::lower_memory64::{lower_memory64, output_features};
use wasm_mem::raise_memory64::{raise_memory64, RaiseOptions};
use wasmtime::{Config, Engine, Instance, Module, Store, Trap, Val};

/// A call: export name and i32/i64 arguments.
type Call<'a> = (&'a str, &'a [Val]);

fn engine(memory64: bool) -> Engine {
    let mut config = Config::new();
    config.wasm_memory64(memory64);
    config.wasm_threads(true);
    config.shared_memory(true);
    config.wasm_simd(true);
    Engine::new(&config).unwrap()
}

fn show(val: &Val) -> String {
    match val {
        Val::I32(v) => format!("i32:{v}"),
        Val::I64(v) => format!("i64:{v}"),
        other => format!("{other:?}"),
    }
}

fn show_error(e: &wasmtime::Error) -> String {
    match e.downcast_ref::<Trap>() {
        Some(trap) => format!("trap:{trap:?}"),
        None => format!("error:{e}"),
    }
}

/// Instantiate `bytes` and run `calls` in order, one line per call.
fn run(bytes: &[u8], memory64: bool, calls: &[Call]) -> Vec<String> {
    let engine = engine(memory64);
    let module = Module::new(&engine, bytes).expect("module compiles");
    let mut store = Store::new(&engine, ());
    let instance = match Instance::new(&mut store, &module, &[]) {
        Ok(i) => i,
        Err(e) => return vec![format!("instantiate {}", show_error(&e))],
    };
    calls
        .iter()
        .map(|(name, args)| {
            let func = instance
                .get_func(&mut store, name)
                .unwrap_or_else(|| panic!("no export {name}"));
            let mut results = vec![Val::I32(0); func.ty(&store).results().len()];
            match func.call(&mut store, args, &mut results) {
                Ok(()) => format!(
                    "{name}: {}",
                    results.iter().map(show).collect::<Vec<_>>().join(",")
                ),
                Err(e) => format!("{name}: {}", show_error(&e)),
            }
        })
        .collect()
}

fn lower(wat: &str) -> (Vec<u8>, Vec<u8>) {
    let original = wat::parse_str(wat).unwrap();
    let (lowered, _) = lower_memory64(&original).expect("lowering succeeds");
    wasmparser::Validator::new_with_features(output_features())
        .validate_all(&lowered)
        .expect("lowered output validates without memory64");
    (original, lowered)
}

/// Lower `wat`, run both, compare, and return the original's outcomes.
fn same_after_lowering(wat: &str, calls: &[Call]) -> Vec<String> {
    let (original, lowered) = lower(wat);
    let expected = run(&original, true, calls);
    let got = run(&lowered, false, calls);
    assert_eq!(expected, got, "lowered module behaves differently");
    expected
}

fn same_after_raising(wat: &str, options: &RaiseOptions, calls: &[Call]) -> Vec<String> {
    let original = wat::parse_str(wat).unwrap();
    let (raised, _) = raise_memory64(&original, options).expect("raising succeeds");
    let expected = run(&original, false, calls);
    let got = run(&raised, true, calls);
    assert_eq!(expected, got, "raised module behaves differently");
    expected
}

const I64S: fn(i64) -> Val = Val::I64;
const I32S: fn(i32) -> Val = Val::I32;

fn has(outcomes: &[String], line: &str) {
    assert!(
        outcomes.iter().any(|o| o == line),
        "expected {line:?} in {outcomes:#?}"
    );
}

const OOB: &str = "trap:MemoryOutOfBounds";

const MEMORY64: &str = r#"(module
  (memory i64 1 3)
  (global $side (mut i32) (i32.const 0))
  (func (export "side") (result i32) global.get $side)
  (func $bump (result i64)
    (global.set $side (i32.add (global.get $side) (i32.const 1)))
    (i64.const 7))
  (func (export "load") (param i64) (result i32) (i32.load (local.get 0)))
  (func (export "load_off1") (param i64) (result i32) (i32.load offset=1 (local.get 0)))
  (func (export "load_off_max32") (param i64) (result i32)
    (i32.load8_u offset=0xffffffff (local.get 0)))
  (func (export "load_off_4g") (param i64) (result i32)
    (i32.load8_u offset=0x100000000 (local.get 0)))
  (func (export "load_off_max64") (param i64) (result i64)
    (i64.load offset=0xffffffffffffffff (local.get 0)))
  (func (export "store") (param i64 i64) (i64.store (local.get 0) (local.get 1)))
  (func (export "store_off_4g_side") (param i64)
    (i64.store offset=0x100000010 (local.get 0) (call $bump)))
  (func (export "load64") (param i64) (result i64) (i64.load (local.get 0)))
  (func (export "lane") (param i64) (result i64)
    (i64x2.extract_lane 1 (v128.load64_lane 1 (local.get 0) (v128.const i64x2 0 0))))
  (func (export "size") (result i64) memory.size)
  (func (export "grow") (param i64) (result i64) (memory.grow (local.get 0)))
  (func (export "fill") (param i64 i32 i64) (memory.fill (local.get 0) (local.get 1) (local.get 2)))
  (func (export "copy") (param i64 i64 i64) (memory.copy (local.get 0) (local.get 1) (local.get 2)))
  (func (export "init") (param i64 i32 i32) (memory.init $d (local.get 0) (local.get 1) (local.get 2)))
  (data $d "hello world")
  (data (i64.const 8) "abcdefgh")
)"#;

#[test]
fn lowered_loads_and_stores_trap_where_the_original_does() {
    let high = 0x1_0000_0010i64;
    let out = same_after_lowering(
        MEMORY64,
        &[
            ("load", &[I64S(8)]),
            ("load", &[I64S(65532)]),
            ("load", &[I64S(65533)]),
            ("load", &[I64S(high)]),
            ("load", &[I64S(0x1_0000_0000)]),
            ("load", &[I64S(-1)]),
            ("load", &[I64S(i64::MIN)]),
            ("load_off1", &[I64S(65531)]),
            ("load_off1", &[I64S(65532)]),
            ("load_off1", &[I64S(high)]),
            ("load_off_max32", &[I64S(0)]),
            ("load_off_4g", &[I64S(0)]),
            ("load_off_max64", &[I64S(1)]),
            ("store", &[I64S(high), I64S(5)]),
            ("store", &[I64S(16), I64S(0x0102030405060708)]),
            ("load64", &[I64S(16)]),
            ("lane", &[I64S(16)]),
            ("lane", &[I64S(high)]),
            ("lane", &[I64S(65529)]),
            ("side", &[]),
            ("store_off_4g_side", &[I64S(0)]),
            ("side", &[]),
        ],
    );
    has(&out, "load: i32:1684234849");
    has(&out, &format!("load: {OOB}"));
    has(&out, "load_off1: i32:0");
    has(&out, &format!("load_off1: {OOB}"));
    has(&out, &format!("load_off_4g: {OOB}"));
    has(&out, "load64: i64:72623859790382856");
    has(&out, "side: i32:1");
    // The operand of the always-trapping store was evaluated first.
    assert_eq!(out.last().unwrap(), "side: i32:1");
    assert_eq!(out.iter().filter(|o| o.ends_with(OOB)).count(), 14);
}

#[test]
fn lowered_grow_and_size() {
    let out = same_after_lowering(
        MEMORY64,
        &[
            ("size", &[]),
            ("grow", &[I64S(0x1_0000_0001)]),
            ("grow", &[I64S(0x1_0000_0000)]),
            ("grow", &[I64S(-1)]),
            ("size", &[]),
            ("grow", &[I64S(1)]),
            ("grow", &[I64S(0)]),
            ("grow", &[I64S(2)]),
            ("size", &[]),
            ("load", &[I64S(131068)]),
        ],
    );
    assert_eq!(
        out,
        [
            "size: i64:1",
            "grow: i64:-1",
            "grow: i64:-1",
            "grow: i64:-1",
            "size: i64:1",
            "grow: i64:1",
            "grow: i64:2",
            "grow: i64:-1",
            "size: i64:2",
            "load: i32:0",
        ]
    );
}

#[test]
fn lowered_bulk_operations() {
    let big = 0x1_0000_0000i64;
    let out = same_after_lowering(
        MEMORY64,
        &[
            ("fill", &[I64S(big), I32S(1), I64S(0)]),
            ("fill", &[I64S(0), I32S(1), I64S(big)]),
            ("fill", &[I64S(1), I32S(1), I64S(-1)]),
            ("fill", &[I64S(65536), I32S(1), I64S(0)]),
            ("fill", &[I64S(65537), I32S(1), I64S(0)]),
            ("fill", &[I64S(65530), I32S(9), I64S(7)]),
            ("fill", &[I64S(32), I32S(9), I64S(8)]),
            ("load64", &[I64S(32)]),
            ("copy", &[I64S(big), I64S(0), I64S(0)]),
            ("copy", &[I64S(0), I64S(big + 8), I64S(0)]),
            ("copy", &[I64S(40), I64S(8), I64S(big + 8)]),
            ("copy", &[I64S(65536), I64S(0), I64S(0)]),
            ("copy", &[I64S(40), I64S(8), I64S(8)]),
            ("load64", &[I64S(40)]),
            ("init", &[I64S(big), I32S(0), I32S(0)]),
            ("init", &[I64S(65536), I32S(0), I32S(0)]),
            ("init", &[I64S(65530), I32S(0), I32S(11)]),
            ("init", &[I64S(48), I32S(0), I32S(8)]),
            ("load64", &[I64S(48)]),
            ("load64", &[I64S(65528)]),
        ],
    );
    has(&out, "load64: i64:651061555542690057");
    has(&out, "load64: i64:7523094288207667809");
    has(&out, "load64: i64:8031924123371070824");
    // 65530..65536 stayed untouched: the partial fill and init trapped first.
    assert_eq!(out.last().unwrap(), "load64: i64:0");
    assert_eq!(out.iter().filter(|o| o.ends_with(OOB)).count(), 10);
}

#[test]
fn lowered_segments_past_4gib_fail_instantiation() {
    for segment in [
        r#"(data (i64.const 0x100000000))"#,
        r#"(data (i64.const 0x100000010) "abcd")"#,
        r#"(data (i64.const 0xffffffffffffffff) "a")"#,
        r#"(data (i64.add (i64.const 0xfffffff0) (i64.const 0x20)) "a")"#,
        r#"(elem (table $t) (i64.const 0x100000000) func $f)"#,
        r#"(elem (table $t) (i64.const 0x100000000) funcref)"#,
    ] {
        let wat = format!(
            r#"(module (memory i64 1) (table $t i64 1 funcref) (func $f)
                 (data (i64.const 0) "first") {segment}
                 (func (export "nop")))"#
        );
        let out = same_after_lowering(&wat, &[("nop", &[])]);
        assert!(
            out[0].starts_with("instantiate trap:"),
            "{segment}: {out:?}"
        );
    }
    // In bounds stays in bounds, including empty segments at the end.
    let out = same_after_lowering(
        r#"(module (memory i64 1) (data (i64.const 65536)) (data (i64.const 65535) "z")
             (func (export "last") (result i32) (i32.load8_u (i64.const 65535))))"#,
        &[("last", &[])],
    );
    assert_eq!(out, ["last: i32:122"]);
}

const TABLE64: &str = r#"(module
  (type $t (func (result i32)))
  (table $tab i64 3 10 funcref)
  (func $a (result i32) i32.const 11)
  (func $b (result i32) i32.const 22)
  (elem (table $tab) (i64.const 0) func $a $b)
  (elem $e func $b $a)
  (func (export "call") (param i64) (result i32) (call_indirect $tab (type $t) (local.get 0)))
  (func (export "size") (result i64) (table.size $tab))
  (func (export "grow") (param i64) (result i64) (table.grow $tab (ref.null func) (local.get 0)))
  (func (export "is_null") (param i64) (result i32) (ref.is_null (table.get $tab (local.get 0))))
  (func (export "set") (param i64) (table.set $tab (local.get 0) (ref.func $a)))
  (func (export "fill") (param i64 i64) (table.fill $tab (local.get 0) (ref.func $b) (local.get 1)))
  (func (export "copy") (param i64 i64 i64) (table.copy $tab $tab (local.get 0) (local.get 1) (local.get 2)))
  (func (export "init") (param i64 i32 i32) (table.init $tab $e (local.get 0) (local.get 1) (local.get 2)))
)"#;

#[test]
fn lowered_table64() {
    let big = 0x1_0000_0000i64;
    let out = same_after_lowering(
        TABLE64,
        &[
            ("call", &[I64S(1)]),
            ("call", &[I64S(2)]),
            ("call", &[I64S(big)]),
            ("call", &[I64S(big + 1)]),
            ("is_null", &[I64S(big)]),
            ("is_null", &[I64S(2)]),
            ("set", &[I64S(big + 2)]),
            ("set", &[I64S(2)]),
            ("call", &[I64S(2)]),
            ("size", &[]),
            ("grow", &[I64S(big + 1)]),
            ("grow", &[I64S(2)]),
            ("grow", &[I64S(100)]),
            ("size", &[]),
            ("fill", &[I64S(big), I64S(0)]),
            ("fill", &[I64S(3), I64S(big)]),
            ("fill", &[I64S(3), I64S(2)]),
            ("call", &[I64S(4)]),
            ("copy", &[I64S(big), I64S(0), I64S(1)]),
            ("copy", &[I64S(0), I64S(3), I64S(1)]),
            ("call", &[I64S(0)]),
            ("init", &[I64S(big), I32S(0), I32S(0)]),
            ("init", &[I64S(1), I32S(0), I32S(1)]),
            ("call", &[I64S(1)]),
        ],
    );
    assert_eq!(
        out,
        [
            "call: i32:22",
            "call: trap:IndirectCallToNull",
            "call: trap:TableOutOfBounds",
            "call: trap:TableOutOfBounds",
            "is_null: trap:TableOutOfBounds",
            "is_null: i32:1",
            "set: trap:TableOutOfBounds",
            "set: ",
            "call: i32:11",
            "size: i64:3",
            "grow: i64:-1",
            "grow: i64:3",
            "grow: i64:-1",
            "size: i64:5",
            "fill: trap:TableOutOfBounds",
            "fill: trap:TableOutOfBounds",
            "fill: ",
            "call: i32:22",
            "copy: trap:TableOutOfBounds",
            "copy: ",
            "call: i32:22",
            "init: trap:TableOutOfBounds",
            "init: ",
            "call: i32:22",
        ]
    );
}

#[test]
fn lowered_mixed_module_keeps_memory32_as_is() {
    let out = same_after_lowering(
        r#"(module
          (memory $m32 1)
          (memory $m64 i64 1)
          (data (memory $m32) (i32.const 0) "thirty-two")
          (data (memory $m64) (i64.const 0) "sixty-four")
          (func (export "to64") (param i64 i32 i32) (memory.copy $m64 $m32 (local.get 0) (local.get 1) (local.get 2)))
          (func (export "to32") (param i32 i64 i32) (memory.copy $m32 $m64 (local.get 0) (local.get 1) (local.get 2)))
          (func (export "get32") (param i32) (result i64) (i64.load $m32 (local.get 0)))
          (func (export "get64") (param i64) (result i64) (i64.load $m64 (local.get 0)))
          (func (export "size32") (result i32) (memory.size $m32))
          (func (export "size64") (result i64) (memory.size $m64)))"#,
        &[
            ("to64", &[I64S(0x1_0000_0000), I32S(0), I32S(0)]),
            ("to64", &[I64S(100), I32S(0), I32S(8)]),
            ("get64", &[I64S(100)]),
            ("to32", &[I32S(200), I64S(-8), I32S(8)]),
            ("to32", &[I32S(200), I64S(0), I32S(8)]),
            ("get32", &[I32S(200)]),
            ("size32", &[]),
            ("size64", &[]),
        ],
    );
    has(&out, "to64: trap:MemoryOutOfBounds");
    has(&out, "size64: i64:1");
}

#[test]
fn lowered_shared_memory_atomics() {
    let out = same_after_lowering(
        r#"(module
          (memory i64 1 1 shared)
          (func (export "add") (param i64 i32) (result i32) (i32.atomic.rmw.add (local.get 0) (local.get 1)))
          (func (export "cas") (param i64 i64 i64) (result i64) (i64.atomic.rmw.cmpxchg (local.get 0) (local.get 1) (local.get 2)))
          (func (export "notify") (param i64) (result i32) (memory.atomic.notify (local.get 0) (i32.const 1))))"#,
        &[
            ("add", &[I64S(8), I32S(5)]),
            ("add", &[I64S(8), I32S(5)]),
            ("add", &[I64S(0x1_0000_0008), I32S(5)]),
            ("cas", &[I64S(16), I64S(0), I64S(9)]),
            ("cas", &[I64S(16), I64S(9), I64S(1)]),
            ("cas", &[I64S(-16), I64S(9), I64S(1)]),
            ("notify", &[I64S(8)]),
            ("notify", &[I64S(0x1_0000_0008)]),
        ],
    );
    has(&out, "add: i32:5");
    has(&out, "cas: i64:9");
}

#[test]
fn lowering_refuses_and_clamps_clearly() {
    let refused = |wat: &str| {
        let bytes = wat::parse_str(wat).unwrap();
        match lower_memory64(&bytes) {
            Err(wasm_mem::Error::Refused(reason)) => reason,
            other => panic!("expected a refusal, got {:?}", other.map(|(_, r)| r)),
        }
    };
    let reason = refused("(module (memory i64 65537))");
    assert!(reason.contains("65537"), "{reason}");
    let reason = refused(
        r#"(module (import "env" "base" (global i64)) (memory i64 1) (data (global.get 0) "x"))"#,
    );
    assert!(reason.contains("env.base"), "{reason}");

    let bytes = wat::parse_str(r#"(module (import "env" "mem" (memory i64 1 100000)))"#).unwrap();
    let (out, report) = lower_memory64(&bytes).unwrap();
    assert_eq!(report.memories[0].max_after, Some(65536));
    assert!(report.notes.iter().any(|n| n.contains("clamped")));
    assert!(report.host.iter().any(|h| h.contains("env.mem")));
    let text = wasmprinter::print_bytes(&out).unwrap();
    assert!(text.contains("(memory (;0;) 1 65536)"), "{text}");

    // Nothing to lower: byte for byte the input.
    let bytes = wat::parse_str("(module (memory 1) (func (export \"f\")))").unwrap();
    assert_eq!(lower_memory64(&bytes).unwrap().0, bytes);
}

const MEMORY32: &str = r#"(module
  (memory 1)
  (global $side (mut i32) (i32.const 0))
  (func (export "load") (param i32) (result i32) (i32.load (local.get 0)))
  (func (export "load_far") (param i32) (result i32) (i32.load8_u offset=0xffffffff (local.get 0)))
  (func (export "store") (param i32 i64) (i64.store offset=4 (local.get 0) (local.get 1)))
  (func (export "load64") (param i32) (result i64) (i64.load (local.get 0)))
  (func (export "size") (result i32) memory.size)
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func (export "fill") (param i32 i32 i32) (memory.fill (local.get 0) (local.get 1) (local.get 2)))
  (func (export "copy") (param i32 i32 i32) (memory.copy (local.get 0) (local.get 1) (local.get 2)))
  (func (export "init") (param i32 i32 i32) (memory.init $d (local.get 0) (local.get 1) (local.get 2)))
  (func (export "add") (param i32 i32) (result i32)
    (i32.add (i32.load (local.get 0)) (i32.load (local.get 1))))
  (data $d "hello world")
  (data (i32.add (i32.const 4) (i32.const 4)) "abcdefgh")
)"#;

#[test]
fn raised_memory_traps_where_memory32_does() {
    let out = same_after_raising(
        MEMORY32,
        &RaiseOptions::default(),
        &[
            ("load", &[I32S(8)]),
            ("load", &[I32S(65532)]),
            ("load", &[I32S(65533)]),
            ("load", &[I32S(-1)]),
            ("load_far", &[I32S(0)]),
            ("load_far", &[I32S(-1)]),
            ("store", &[I32S(-4), I64S(1)]),
            ("store", &[I32S(12), I64S(0x0102030405060708)]),
            ("load64", &[I32S(16)]),
            ("add", &[I32S(8), I32S(12)]),
            ("size", &[]),
            ("grow", &[I32S(-1)]),
            ("grow", &[I32S(65536)]),
            ("grow", &[I32S(1)]),
            ("grow", &[I32S(0)]),
            ("size", &[]),
            ("fill", &[I32S(-1), I32S(1), I32S(2)]),
            ("fill", &[I32S(131072), I32S(1), I32S(0)]),
            ("fill", &[I32S(131073), I32S(1), I32S(0)]),
            ("fill", &[I32S(1), I32S(1), I32S(-1)]),
            ("copy", &[I32S(0), I32S(-1), I32S(1)]),
            ("copy", &[I32S(100), I32S(8), I32S(8)]),
            ("load64", &[I32S(100)]),
            ("init", &[I32S(-1), I32S(0), I32S(1)]),
            ("init", &[I32S(200), I32S(0), I32S(8)]),
            ("load64", &[I32S(200)]),
        ],
    );
    has(&out, "load: i32:1684234849");
    has(&out, &format!("load_far: {OOB}"));
    has(&out, "grow: i32:-1");
    has(&out, "size: i32:2");
    assert_eq!(out.iter().filter(|o| o.ends_with(OOB)).count(), 10);
}

#[test]
fn raised_memory_keeps_memory32_growth_limit_and_signatures() {
    let wat = r#"(module (memory (export "mem") 65535)
        (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
        (func (export "size") (result i32) memory.size))"#;
    let original = wat::parse_str(wat).unwrap();
    let (raised, report) = raise_memory64(&original, &RaiseOptions::default()).unwrap();
    assert_eq!(report.memories[0].max_after, Some(65536));
    assert!(report.host.iter().any(|h| h.contains("\"mem\"")));
    // Exported function types are unchanged.
    let text = wasmprinter::print_bytes(&raised).unwrap();
    assert!(
        text.contains("(func (;0;) (type 0) (param i32) (result i32)"),
        "{text}"
    );
    assert!(text.contains("(memory (;0;) i64 65535 65536)"), "{text}");
}

const TABLE32: &str = r#"(module
  (type $t (func (result i32)))
  (table $tab 3 10 funcref)
  (func $a (result i32) i32.const 11)
  (func $b (result i32) i32.const 22)
  (elem (table $tab) (i32.const 0) func $a $b)
  (elem $e func $b $a)
  (func (export "call") (param i32) (result i32) (call_indirect $tab (type $t) (local.get 0)))
  (func (export "size") (result i32) (table.size $tab))
  (func (export "grow") (param i32) (result i32) (table.grow $tab (ref.null func) (local.get 0)))
  (func (export "is_null") (param i32) (result i32) (ref.is_null (table.get $tab (local.get 0))))
  (func (export "set") (param i32) (table.set $tab (local.get 0) (ref.func $a)))
  (func (export "fill") (param i32 i32) (table.fill $tab (local.get 0) (ref.func $b) (local.get 1)))
  (func (export "copy") (param i32 i32 i32) (table.copy $tab $tab (local.get 0) (local.get 1) (local.get 2)))
  (func (export "init") (param i32 i32 i32) (table.init $tab $e (local.get 0) (local.get 1) (local.get 2)))
)"#;

#[test]
fn raised_segments_and_tables() {
    // A data segment past the end fails in both.
    for wat in [
        r#"(module (memory 1) (data (i32.const -1) "ab") (func (export "nop")))"#,
        r#"(module (memory 1) (data (i32.const 65536) "a") (func (export "nop")))"#,
        r#"(module (memory 1) (table 1 funcref) (func $f) (elem (i32.const -1) $f) (func (export "nop")))"#,
    ] {
        let options = RaiseOptions {
            tables: true,
            ..RaiseOptions::default()
        };
        let out = same_after_raising(wat, &options, &[("nop", &[])]);
        assert!(out[0].starts_with("instantiate trap:"), "{wat}: {out:?}");
    }
    let options = RaiseOptions {
        tables: true,
        ..RaiseOptions::default()
    };
    let out = same_after_raising(
        TABLE32,
        &options,
        &[
            ("call", &[I32S(1)]),
            ("call", &[I32S(-1)]),
            ("is_null", &[I32S(-1)]),
            ("set", &[I32S(2)]),
            ("grow", &[I32S(-1)]),
            ("grow", &[I32S(2)]),
            ("size", &[]),
            ("fill", &[I32S(3), I32S(-1)]),
            ("fill", &[I32S(3), I32S(2)]),
            ("copy", &[I32S(0), I32S(3), I32S(1)]),
            ("init", &[I32S(-1), I32S(0), I32S(1)]),
            ("init", &[I32S(1), I32S(0), I32S(1)]),
            ("call", &[I32S(0)]),
            ("call", &[I32S(1)]),
        ],
    );
    has(&out, "grow: i32:-1");
    has(&out, "size: i32:5");
    has(&out, "call: trap:TableOutOfBounds");
}

#[test]
fn raising_only_the_chosen_memory_and_refusals() {
    let wat = r#"(module (memory $a 1) (memory $b 1)
        (data (memory $b) (i32.const 0) "b")
        (func (export "copy") (param i32 i32 i32) (memory.copy $a $b (local.get 0) (local.get 1) (local.get 2)))
        (func (export "get") (param i32) (result i32) (i32.load8_u $a (local.get 0))))"#;
    let options = RaiseOptions {
        memories: Some(vec![1]),
        tables: false,
    };
    let out = same_after_raising(
        wat,
        &options,
        &[
            ("copy", &[I32S(5), I32S(0), I32S(1)]),
            ("get", &[I32S(5)]),
            ("copy", &[I32S(5), I32S(-1), I32S(1)]),
        ],
    );
    assert_eq!(out[1], "get: i32:98");
    let bytes = wat::parse_str(wat).unwrap();
    let (_, report) = raise_memory64(&bytes, &options).unwrap();
    assert_eq!(report.memories[0].to, "i32");
    assert_eq!(report.memories[1].to, "i64");
    let missing = RaiseOptions {
        memories: Some(vec![7]),
        tables: false,
    };
    assert!(matches!(
        raise_memory64(&bytes, &missing),
        Err(wasm_mem::Error::Refused(_))
    ));
    let imported = wat::parse_str(
        r#"(module (import "env" "base" (global i32)) (memory 1) (data (global.get 0) "x"))"#,
    )
    .unwrap();
    assert!(matches!(
        raise_memory64(&imported, &RaiseOptions::default()),
        Err(wasm_mem::Error::Refused(r)) if r.contains("env.base")
    ));
}

#[test]
fn lower_then_raise_round_trip_keeps_behaviour() {
    let (original, lowered) = lower(MEMORY64);
    let (raised, _) = raise_memory64(&lowered, &RaiseOptions::default()).unwrap();
    let calls: &[Call] = &[
        ("load", &[I64S(8)]),
        ("load", &[I64S(0x1_0000_0008)]),
        ("grow", &[I64S(1)]),
        ("fill", &[I64S(0), I32S(3), I64S(0x1_0000_0000)]),
    ];
    // The raised module takes i64 addresses again through the lowered checks.
    assert_eq!(run(&original, true, calls), run(&raised, true, calls));
}
