//! `lower multi-memory` on what the spec suite does not check: grown pages
//! read as zero, each memory's own maximum and edges, effective-address
//! overflow, cross-memory and overlapping copies, shared memories, memory64
//! sets, mixed 32/64, `global.get` and failing data segments, and the
//! refusals. Each module runs as the original (multi-memory on) and lowered
//! (multi-memory off, both modes) in wasmtime; every call's result or trap
//! must match the original's, and the tests also pin the expected values so
//! an engine quirk cannot hide a wrong lowering.

use wasm_mem::lower_multi_memory::{lower_multi_memory, LowerOptions, LowerReport, Placement};
use wasmtime::{Config, Engine, Instance, Module, Store, Val};

fn config(multi_memory: bool) -> Config {
    let mut c = Config::new();
    c.wasm_multi_memory(multi_memory)
        .wasm_memory64(true)
        .wasm_threads(true)
        .shared_memory(true)
        .wasm_simd(true)
        .wasm_bulk_memory(true)
        .wasm_extended_const(true)
        .wasm_custom_page_sizes(true);
    c
}

/// A call: export name and i64 arguments (converted to the parameter types).
type Call<'a> = (&'a str, &'a [i64]);

/// Outcome of each call: the results as i64 (floats as bits), "trap" for an
/// out-of-bounds trap or "trap: KIND" for another trap.
fn run(engine: &Engine, bytes: &[u8], calls: &[Call]) -> Result<Vec<String>, String> {
    let module = Module::new(engine, bytes).map_err(|e| format!("compile: {e:#}"))?;
    let mut store = Store::new(engine, ());
    let instance = match Instance::new(&mut store, &module, &[]) {
        Ok(i) => i,
        Err(e) if e.downcast_ref::<wasmtime::Trap>().is_some() => {
            return Ok(vec!["instantiation trap".into()])
        }
        Err(e) => return Err(format!("instantiate: {e:#}")),
    };
    let mut out = Vec::new();
    for (name, args) in calls {
        let func = instance
            .get_func(&mut store, name)
            .ok_or_else(|| format!("no export {name}"))?;
        let ty = func.ty(&store);
        let params: Vec<Val> = ty
            .params()
            .zip(args.iter())
            .map(|(t, a)| match t {
                wasmtime::ValType::I32 => Val::I32(*a as i32),
                wasmtime::ValType::I64 => Val::I64(*a),
                other => panic!("unsupported param type {other}"),
            })
            .collect();
        let mut results = vec![Val::I32(0); ty.results().len()];
        match func.call(&mut store, &params, &mut results) {
            Ok(()) => out.push(
                results
                    .iter()
                    .map(|v| match v {
                        Val::I32(x) => x.to_string(),
                        Val::I64(x) => x.to_string(),
                        Val::F32(x) => x.to_string(),
                        Val::F64(x) => x.to_string(),
                        other => format!("{other:?}"),
                    })
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            Err(e) => match e.downcast_ref::<wasmtime::Trap>() {
                // The pass keeps the trap kind: an out-of-bounds access
                // still traps as one.
                Some(wasmtime::Trap::MemoryOutOfBounds) => out.push("trap".into()),
                Some(other) => out.push(format!("trap: {other}")),
                None => return Err(format!("call {name}: {e:#}")),
            },
        }
    }
    Ok(out)
}

fn lower(bytes: &[u8], checked: bool) -> (Vec<u8>, LowerReport) {
    lower_multi_memory(bytes, &LowerOptions { checked })
        .unwrap_or_else(|e| panic!("lowering failed: {e}"))
}

/// Run original and lowered (exact); they must agree. Returns the outcomes
/// and the report. Also checks that the unchecked mode agrees on every call
/// that does not trap in the original when `unchecked_too`.
fn same(wat: &str, calls: &[Call]) -> (Vec<String>, LowerReport) {
    let original = wat::parse_str(wat).expect("test module parses");
    let expected =
        run(&Engine::new(&config(true)).unwrap(), &original, calls).expect("original runs");
    let (lowered, report) = lower(&original, true);
    assert!(report.lowered);
    let engine = Engine::new(&config(false)).unwrap();
    let got = run(&engine, &lowered, calls).unwrap_or_else(|e| {
        panic!(
            "lowered module fails: {e}\n{}",
            wasmprinter::print_bytes(&lowered).unwrap()
        )
    });
    for (i, (e, g)) in expected.iter().zip(&got).enumerate() {
        // The one trap whose kind the pass cannot keep: a wait on a
        // non-shared memory when the combined memory is shared.
        let wait = e.ends_with("atomic wait on non-shared memory")
            && g.ends_with("wasm `unreachable` instruction executed");
        if wait {
            continue;
        }
        assert_eq!(
            e,
            g,
            "call {i} {:?} differs\nlayout:\n{}\n{}",
            calls.get(i),
            report.to_text(),
            wasmprinter::print_bytes(&lowered).unwrap()
        );
    }
    assert_eq!(expected.len(), got.len());
    (expected, report)
}

/// Like [`same`], then also the unchecked mode: calls that do not trap in
/// the original must give the same results.
fn same_both(wat: &str, calls: &[Call]) -> Vec<String> {
    let (expected, _) = same(wat, calls);
    let original = wat::parse_str(wat).unwrap();
    let (unchecked, report) = lower(&original, false);
    assert!(!report.checked);
    let got =
        run(&Engine::new(&config(false)).unwrap(), &unchecked, calls).expect("unchecked runs");
    if !expected.iter().any(|e| e.contains("trap")) {
        assert_eq!(expected, got, "unchecked differs");
    }
    expected
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

const GROW_ZERO: &str = r#"(module
  (memory $a 1) (memory $b 1) (memory $c 1)
  (func (export "fill") 
    (memory.fill $a (i32.const 0) (i32.const 0xaa) (i32.const 65536))
    (memory.fill $b (i32.const 0) (i32.const 0xbb) (i32.const 65536))
    (memory.fill $c (i32.const 0) (i32.const 0xcc) (i32.const 65536)))
  (func (export "grow_a") (param i32) (result i32) (memory.grow $a (local.get 0)))
  (func (export "grow_b") (param i32) (result i32) (memory.grow $b (local.get 0)))
  (func (export "grow_c") (param i32) (result i32) (memory.grow $c (local.get 0)))
  (func (export "size") (result i32 i32 i32) (memory.size $a) (memory.size $b) (memory.size $c))
  (func (export "a") (param i32) (result i32) (i32.load8_u $a (local.get 0)))
  (func (export "b") (param i32) (result i32) (i32.load8_u $b (local.get 0)))
  (func (export "c") (param i32) (result i32) (i32.load8_u $c (local.get 0)))
  (func (export "use_c") (result i32) (i32.load $c (i32.const 0)) (i32.load $c (i32.const 4)) (i32.add)))"#;

#[test]
fn grown_pages_read_zero_and_data_stays() {
    let out = same_both(
        GROW_ZERO,
        &[
            ("fill", &[]),
            ("grow_a", &[2]),
            ("size", &[]),
            ("a", &[65535]),
            ("a", &[65536]),
            ("a", &[3 * 65536 - 1]),
            ("a", &[3 * 65536]),
            ("b", &[0]),
            ("b", &[65535]),
            ("b", &[65536]),
            ("c", &[65535]),
            ("grow_b", &[1]),
            ("b", &[65536]),
            ("c", &[0]),
            ("c", &[65536]),
            ("grow_c", &[0]),
            ("grow_c", &[1]),
            ("c", &[65536 * 2 - 1]),
            ("size", &[]),
            ("a", &[0]),
        ],
    );
    assert_eq!(
        out,
        s(&[
            "", "1", "3,1,1", "170", "0", "0", "trap", "187", "187", "trap", "204", "1", "0",
            "204", "trap", "1", "1", "0", "3,2,2", "170"
        ])
    );
}

const MAXES: &str = r#"(module
  (memory $a 1 3) (memory $b 0 0) (memory $c 2 2) (memory $d 1)
  (func (export "grow_a") (param i32) (result i32) (memory.grow $a (local.get 0)))
  (func (export "grow_b") (param i32) (result i32) (memory.grow $b (local.get 0)))
  (func (export "grow_c") (param i32) (result i32) (memory.grow $c (local.get 0)))
  (func (export "grow_d") (param i32) (result i32) (memory.grow $d (local.get 0)))
  (func (export "size") (result i32 i32 i32 i32) (memory.size $a) (memory.size $b) (memory.size $c) (memory.size $d))
  (func (export "la") (param i32) (result i32) (i32.load $a (local.get 0)))
  (func (export "lb") (param i32) (result i32) (i32.load $b (local.get 0)))
  (func (export "lc") (param i32) (result i32) (i32.load $c (local.get 0)))
  (func (export "ld") (param i32) (result i32) (i32.load $d (local.get 0)))
  (func (export "sa") (param i32) (i32.store $a (local.get 0) (i32.const -1))))"#;

#[test]
fn each_memory_keeps_its_own_max_and_edges() {
    let (out, report) = same(
        MAXES,
        &[
            ("grow_a", &[3]),
            ("grow_a", &[2]),
            ("grow_a", &[1]),
            ("grow_a", &[0]),
            ("grow_b", &[1]),
            ("grow_b", &[0]),
            ("grow_c", &[1]),
            ("grow_d", &[65536]),
            ("grow_d", &[0x7fff_ffff]),
            ("grow_d", &[-1]),
            ("grow_d", &[1]),
            ("size", &[]),
            ("la", &[3 * 65536 - 4]),
            ("la", &[3 * 65536 - 3]),
            ("lb", &[0]),
            ("lc", &[2 * 65536 - 4]),
            ("lc", &[2 * 65536 - 3]),
            ("ld", &[2 * 65536 - 4]),
            ("ld", &[2 * 65536 - 3]),
            ("ld", &[-1]),
            ("sa", &[3 * 65536 - 4]),
            ("la", &[3 * 65536 - 4]),
            ("lc", &[0]),
        ],
    );
    assert_eq!(
        out,
        s(&[
            "-1", "1", "-1", "3", "-1", "0", "-1", "-1", "-1", "-1", "1", "3,0,2,2", "0", "trap",
            "trap", "0", "trap", "0", "trap", "trap", "", "-1", "0"
        ])
    );
    // $d has no max and is last; the others are reserved, never moving.
    let d = &report.memories[3];
    assert_eq!(d.placement, Placement::Last);
    assert!(report.memories.iter().all(|m| !m.can_move));
}

#[test]
fn effective_address_overflow() {
    let wat = r#"(module
      (memory $a 1) (memory $b i64 1) (memory $c 1 1)
      (func (export "a") (param i32) (result i32) (i32.load8_u $a offset=1 (local.get 0)))
      (func (export "a_far") (param i32) (result i32) (i32.load $a offset=0xffffffff (local.get 0)))
      (func (export "b") (param i64) (result i64) (i64.load $b offset=8 (local.get 0)))
      (func (export "b_far") (param i64) (result i64) (i64.load8_u $b offset=0xffffffffffffffff (local.get 0)))
      (func (export "c") (param i32) (result i32) (i32.load16_u $c offset=0xfffe (local.get 0)))
      (func (export "c_store") (param i32) (i64.store $c offset=0xfff8 (local.get 0) (i64.const 7))))"#;
    let out = same_both(
        wat,
        &[
            ("a", &[-1]),
            ("a", &[65534]),
            ("a", &[65535]),
            ("a_far", &[0]),
            ("a_far", &[1]),
            ("b", &[-8]),
            ("b", &[-16]),
            ("b", &[65536 - 16]),
            ("b", &[65536 - 15]),
            ("b_far", &[1]),
            ("b_far", &[0]),
            ("c", &[0]),
            ("c", &[1]),
            ("c_store", &[0]),
            ("c_store", &[1]),
        ],
    );
    assert_eq!(
        out,
        s(&[
            "trap", "0", "trap", "trap", "trap", "trap", "trap", "0", "trap", "trap", "trap", "0",
            "trap", "", "trap"
        ])
    );
}

const COPIES: &str = r#"(module
  (memory $a 1) (memory $b 1 2) (memory $c i64 1)
  (data (memory $a) (i32.const 0) "abcdefgh")
  (data (memory $b) (i32.const 100) "01234567")
  (func (export "ab") (param i32 i32 i32) (memory.copy $a $b (local.get 0) (local.get 1) (local.get 2)))
  (func (export "aa") (param i32 i32 i32) (memory.copy $a $a (local.get 0) (local.get 1) (local.get 2)))
  (func (export "ca") (param i64 i32 i32) (memory.copy $c $a (local.get 0) (local.get 1) (local.get 2)))
  (func (export "cc") (param i64 i64 i64) (memory.copy $c $c (local.get 0) (local.get 1) (local.get 2)))
  (func (export "fill_c") (param i64 i32 i64) (memory.fill $c (local.get 0) (local.get 1) (local.get 2)))
  (func (export "a") (param i32) (result i64) (i64.load $a (local.get 0)))
  (func (export "b") (param i32) (result i64) (i64.load $b (local.get 0)))
  (func (export "c") (param i64) (result i64) (i64.load $c (local.get 0))))"#;

#[test]
fn cross_memory_and_overlapping_copies() {
    let out = same_both(
        COPIES,
        &[
            ("ab", &[16, 100, 8]),
            ("a", &[16]),
            ("aa", &[2, 0, 8]),
            ("a", &[0]),
            ("aa", &[0, 3, 8]),
            ("a", &[0]),
            ("ca", &[65530, 0, 6]),
            ("c", &[65528]),
            ("ca", &[65531, 0, 6]),
            ("cc", &[0, 65528, 8]),
            ("c", &[0]),
            ("cc", &[-1, 0, 2]),
            ("cc", &[0, -1, 2]),
            ("ab", &[0, 65530, 7]),
            ("a", &[0]),
            ("ab", &[65536, 0, 0]),
            ("ab", &[65537, 0, 0]),
            ("fill_c", &[65535, 1, 1]),
            ("fill_c", &[65535, 1, 2]),
            ("fill_c", &[-1, 1, 2]),
            ("fill_c", &[65536, 1, 0]),
        ],
    );
    assert_eq!(out[1], "3978425819141910832"); // "01234567"
    assert_eq!(out[8], "trap");
    assert_eq!(out[11], "trap");
    assert_eq!(out[13], "trap");
    assert_eq!(out[15], "");
    assert_eq!(out[16], "trap");
    assert_eq!(out[19], "trap");
}

#[test]
fn bulk_ops_trap_before_writing() {
    // A copy whose source range is out of bounds must not write its
    // destination, even partially.
    let wat = r#"(module
      (memory $a 1) (memory $b 1)
      (func (export "fill_a") (memory.fill $a (i32.const 0) (i32.const 0x11) (i32.const 65536)))
      (func (export "ab") (param i32 i32 i32) (memory.copy $a $b (local.get 0) (local.get 1) (local.get 2)))
      (func (export "ba") (param i32 i32 i32) (memory.copy $b $a (local.get 0) (local.get 1) (local.get 2)))
      (func (export "a") (param i32) (result i32) (i32.load8_u $a (local.get 0)))
      (func (export "b") (param i32) (result i32) (i32.load8_u $b (local.get 0))))"#;
    let out = same_both(
        wat,
        &[
            ("fill_a", &[]),
            ("ba", &[0, 65000, 1000]),
            ("b", &[0]),
            ("ba", &[65000, 0, 1000]),
            ("b", &[65000]),
            ("ab", &[0, 0, 65537]),
            ("a", &[0]),
            ("ba", &[0, 0, 65536]),
            ("b", &[65535]),
        ],
    );
    assert_eq!(
        out,
        s(&["", "trap", "0", "trap", "0", "trap", "17", "", "17"])
    );
}

#[test]
fn shared_memories_and_atomics() {
    let wat = r#"(module
      (memory $a 1 4 shared) (memory $b 1) (memory $c 1 2 shared)
      (func (export "add_a") (param i32 i32) (result i32) (i32.atomic.rmw.add $a (local.get 0) (local.get 1)))
      (func (export "add_c") (param i32 i32) (result i32) (i32.atomic.rmw.add $c (local.get 0) (local.get 1)))
      (func (export "cas_b") (param i32 i64 i64) (result i64) (i64.atomic.rmw.cmpxchg $b (local.get 0) (local.get 1) (local.get 2)))
      (func (export "load_b") (param i32) (result i64) (i64.atomic.load $b (local.get 0)))
      (func (export "wait_b") (param i32) (result i32) (memory.atomic.wait32 $b (local.get 0) (i32.const 1) (i64.const 0)))
      (func (export "wait_c") (param i32) (result i32) (memory.atomic.wait32 $c (local.get 0) (i32.const 1) (i64.const 0)))
      (func (export "notify_b") (param i32) (result i32) (memory.atomic.notify $b (local.get 0) (i32.const 1)))
      (func (export "grow_c") (param i32) (result i32) (memory.grow $c (local.get 0)))
      (func (export "size_c") (result i32) (memory.size $c)))"#;
    let (out, report) = same(
        wat,
        &[
            ("add_a", &[0, 5]),
            ("add_a", &[0, 5]),
            ("add_a", &[2, 5]),
            ("add_a", &[65536, 1]),
            ("add_c", &[65532, 3]),
            ("add_c", &[65532, 3]),
            ("add_c", &[65536, 3]),
            ("cas_b", &[8, 0, 9]),
            ("load_b", &[8]),
            ("cas_b", &[65528, 0, 1]),
            ("cas_b", &[65532, 0, 1]),
            ("wait_b", &[0]),
            ("wait_c", &[0]),
            ("wait_c", &[4]),
            ("notify_b", &[0]),
            ("notify_b", &[65536]),
            ("grow_c", &[1]),
            ("add_c", &[65536, 3]),
            ("size_c", &[]),
            ("grow_c", &[1]),
        ],
    );
    assert_eq!(
        out,
        s(&[
            "0",
            "5",
            "trap: wasm trap: unaligned atomic",
            "trap",
            "0",
            "3",
            "trap",
            "0",
            "9",
            "0",
            "trap: wasm trap: unaligned atomic",
            "trap: wasm trap: atomic wait on non-shared memory",
            "1",
            "1",
            "0",
            "trap",
            "1",
            "0",
            "2",
            "-1"
        ])
    );
    // Shared memories never move.
    for m in report.memories.iter().filter(|m| m.shared) {
        assert!(!m.can_move);
    }
    assert!(report.combined.as_ref().unwrap().shared);
}

#[test]
fn memory64_sets_and_mixed() {
    let wat = r#"(module
      (memory $a i64 1) (memory $b i64 1 3) (memory $c i64 2) (memory $d 1)
      (func (export "sa") (param i64 i64) (i64.store $a (local.get 0) (local.get 1)))
      (func (export "la") (param i64) (result i64) (i64.load $a (local.get 0)))
      (func (export "sb") (param i64 i64) (i64.store $b (local.get 0) (local.get 1)))
      (func (export "lb") (param i64) (result i64) (i64.load $b (local.get 0)))
      (func (export "lc") (param i64) (result i64) (i64.load $c (local.get 0)))
      (func (export "ld") (param i32) (result i64) (i64.load $d (local.get 0)))
      (func (export "sd") (param i32 i64) (i64.store $d (local.get 0) (local.get 1)))
      (func (export "grow_a") (param i64) (result i64) (memory.grow $a (local.get 0)))
      (func (export "grow_c") (param i64) (result i64) (memory.grow $c (local.get 0)))
      (func (export "grow_d") (param i32) (result i32) (memory.grow $d (local.get 0)))
      (func (export "size") (result i64 i64 i64 i32) (memory.size $a) (memory.size $b) (memory.size $c) (memory.size $d))
      (func (export "init_d") (param i32 i32 i32) (memory.init $d 0 (local.get 0) (local.get 1) (local.get 2)))
      (func (export "copy_da") (param i32 i64 i32) (memory.copy $d $a (local.get 0) (local.get 1) (local.get 2)))
      (data "hello, memory"))"#;
    let out = same_both(
        wat,
        &[
            ("sa", &[65528, 1]),
            ("sb", &[0, 2]),
            ("sd", &[65528, 4]),
            ("grow_a", &[1]),
            ("la", &[65528]),
            ("la", &[65536]),
            ("lb", &[0]),
            ("ld", &[65528]),
            ("grow_c", &[1]),
            ("lc", &[3 * 65536 - 8]),
            ("grow_d", &[1]),
            ("ld", &[2 * 65536 - 8]),
            ("ld", &[65528]),
            ("la", &[65528]),
            ("size", &[]),
            ("init_d", &[0, 0, 13]),
            ("ld", &[0]),
            ("init_d", &[0, 1, 13]),
            ("init_d", &[2 * 65536 - 12, 0, 13]),
            ("copy_da", &[100, 65528, 8]),
            ("ld", &[100]),
            ("lb", &[-8]),
            ("grow_a", &[-1]),
            ("grow_a", &[0x1_0000_0000_0000]),
        ],
    );
    assert_eq!(
        out,
        s(&[
            "",
            "",
            "",
            "1",
            "1",
            "0",
            "2",
            "4",
            "2",
            "0",
            "1",
            "0",
            "4",
            "1",
            "2,1,3,2",
            "",
            "7863333806460921192",
            "trap",
            "trap",
            "",
            "1",
            "trap",
            "-1",
            "-1"
        ])
    );
}

#[test]
fn data_segment_offsets() {
    // Defined globals (plain and extended-const offsets) are resolved
    // statically; a segment that does not fit its own memory must fail
    // instantiation even though it fits the combined memory.
    let ok = r#"(module
      (global $g i32 (i32.const 16))
      (memory $a 1 1) (memory $b 1)
      (data (memory $a) (global.get $g) "AAAA")
      (data (memory $b) (i32.add (global.get $g) (i32.const 4)) "BBBB")
      (data (memory $a) (i32.const 65532) "CCCC")
      (func (export "a") (param i32) (result i32) (i32.load $a (local.get 0)))
      (func (export "b") (param i32) (result i32) (i32.load $b (local.get 0))))"#;
    let out = same_both(
        ok,
        &[("a", &[16]), ("b", &[20]), ("b", &[16]), ("a", &[65532])],
    );
    assert_eq!(out, s(&["1094795585", "1111638594", "0", "1128481603"]));
    let overflow = r#"(module
      (memory $a 1 1) (memory $b 1)
      (data (memory $a) (i32.const 65533) "CCCC")
      (func (export "b") (param i32) (result i32) (i32.load $b (local.get 0))))"#;
    let (out, report) = same(overflow, &[("b", &[0])]);
    assert_eq!(out, s(&["instantiation trap"]));
    assert_eq!(report.deferred_segments, vec![0]);
}

#[test]
fn imported_global_offsets_use_the_start_function() {
    let wat = r#"(module
      (import "env" "g" (global $g i32))
      (memory $a 1) (memory $b 1)
      (data (memory $b) (global.get $g) "xyz")
      (data (memory $a) (i32.const 0) "first"))"#;
    let original = wat::parse_str(wat).unwrap();
    let (lowered, report) = lower(&original, true);
    assert_eq!(report.deferred_segments, vec![0, 1]);
    let engine = Engine::new(&config(false)).unwrap();
    let module = Module::new(&engine, &lowered).unwrap();
    for (g, expect_trap) in [(10, false), (65533, false), (65534, true)] {
        let mut store = Store::new(&engine, ());
        let global = wasmtime::Global::new(
            &mut store,
            wasmtime::GlobalType::new(wasmtime::ValType::I32, wasmtime::Mutability::Const),
            Val::I32(g),
        )
        .unwrap();
        let result = Instance::new(&mut store, &module, &[global.into()]);
        assert_eq!(result.is_err(), expect_trap, "offset {g}");
    }
}

#[test]
fn exported_memory_zero_stays_at_base_zero() {
    let wat = r#"(module
      (memory $a (export "mem") 1) (memory $b 1)
      (func (export "sb") (param i32 i32) (i32.store $b (local.get 0) (local.get 1)))
      (func (export "sa") (param i32 i32) (i32.store $a (local.get 0) (local.get 1))))"#;
    let original = wat::parse_str(wat).unwrap();
    let (lowered, report) = lower(&original, true);
    assert_eq!(report.memories[0].base, 0);
    let engine = Engine::new(&config(false)).unwrap();
    let module = Module::new(&engine, &lowered).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let sa = instance
        .get_typed_func::<(i32, i32), ()>(&mut store, "sa")
        .unwrap();
    let sb = instance
        .get_typed_func::<(i32, i32), ()>(&mut store, "sb")
        .unwrap();
    sa.call(&mut store, (8, 0x01020304)).unwrap();
    sb.call(&mut store, (8, 0x05060708)).unwrap();
    let mem = instance.get_memory(&mut store, "mem").unwrap();
    assert_eq!(&mem.data(&store)[8..12], &[4, 3, 2, 1]);
    // The host sees a larger buffer, and the report says so.
    assert_eq!(mem.data(&store).len(), 2 * 65536);
    assert!(
        report
            .host_notes
            .iter()
            .any(|n| n.contains("larger buffer") && n.contains("must not grow")),
        "{:?}",
        report.host_notes
    );
}

const IMPORTED: &str = r#"(module
  (import "env" "mem" (memory $a 1))
  (memory $b 1 2) (memory $c 1)
  (data (memory $a) (i32.const 0) "A0")
  (data (memory $b) (i32.const 0) "B0")
  (data (memory $c) (i32.const 65534) "C0")
  (func (export "la") (param i32) (result i32) (i32.load16_u $a (local.get 0)))
  (func (export "lb") (param i32) (result i32) (i32.load16_u $b (local.get 0)))
  (func (export "lc") (param i32) (result i32) (i32.load16_u $c (local.get 0)))
  (func (export "sa") (param i32 i32) (i32.store16 $a (local.get 0) (local.get 1)))
  (func (export "grow_a") (param i32) (result i32) (memory.grow $a (local.get 0)))
  (func (export "grow_b") (param i32) (result i32) (memory.grow $b (local.get 0)))
  (func (export "grow_c") (param i32) (result i32) (memory.grow $c (local.get 0)))
  (func (export "size") (result i32 i32 i32) (memory.size $a) (memory.size $b) (memory.size $c)))"#;

/// Instantiate with a host memory of `pages` (min `pages`, no max), run the
/// calls; returns the outcomes and the host memory's first 4 bytes.
fn run_imported(
    engine: &Engine,
    bytes: &[u8],
    pages: u64,
    calls: &[Call],
) -> Result<(Vec<String>, Vec<u8>), String> {
    let module = Module::new(engine, bytes).map_err(|e| format!("compile: {e:#}"))?;
    let mut store = Store::new(engine, ());
    let memory = wasmtime::Memory::new(&mut store, wasmtime::MemoryType::new(pages as u32, None))
        .map_err(|e| format!("{e:#}"))?;
    let instance = Instance::new(&mut store, &module, &[memory.into()])
        .map_err(|e| format!("instantiate: {e:#}"))?;
    let mut out = Vec::new();
    for (name, args) in calls {
        let func = instance.get_func(&mut store, name).unwrap();
        let params: Vec<Val> = args.iter().map(|a| Val::I32(*a as i32)).collect();
        let mut results = vec![Val::I32(0); func.ty(&store).results().len()];
        out.push(match func.call(&mut store, &params, &mut results) {
            Ok(()) => results
                .iter()
                .map(|v| v.unwrap_i32().to_string())
                .collect::<Vec<_>>()
                .join(","),
            Err(_) => "trap".into(),
        });
    }
    Ok((out, memory.data(&store)[..4].to_vec()))
}

#[test]
fn imported_memory_zero_keeps_its_type_and_grows_the_host_memory() {
    let original = wat::parse_str(IMPORTED).unwrap();
    let (lowered, report) = lower(&original, true);
    // The import keeps memory 0's own type (min 1, no max).
    let c = report.combined.as_ref().unwrap();
    assert!(c.imported);
    assert_eq!((c.min_pages, c.max_pages), (1, None));
    assert_eq!(report.memories[0].base, 0);
    assert_eq!(report.memories[0].placement, Placement::Dynamic);
    assert!(report
        .host_notes
        .iter()
        .any(|n| n.contains("grows the host's memory by 3 pages")));
    let native = Engine::new(&config(true)).unwrap();
    let one = Engine::new(&config(false)).unwrap();
    // Host memories of 1 page (the minimum) and 3 pages (the later
    // memories' bases move at instantiation).
    for pages in [1i64, 3] {
        let end = pages * 65536;
        let calls: &[Call] = &[
            ("size", &[]),
            ("la", &[0]),
            ("lb", &[0]),
            ("lc", &[65534]),
            ("la", &[end - 2]),
            ("la", &[end - 1]),
            ("lb", &[65535]),
            ("sa", &[2, 0x4242]),
            ("grow_b", &[1]),
            ("lb", &[65536]),
            ("grow_b", &[1]),
            ("grow_a", &[1]),
            ("la", &[end]),
            ("la", &[end + 65534]),
            ("la", &[end + 65535]),
            ("lb", &[0]),
            ("lc", &[65534]),
            ("grow_c", &[1]),
            ("lc", &[2 * 65536 - 2]),
            ("size", &[]),
        ];
        let (expected, host_a) = run_imported(&native, &original, pages as u64, calls).unwrap();
        let (got, host_b) = run_imported(&one, &lowered, pages as u64, calls)
            .unwrap_or_else(|e| panic!("{e}\n{}", wasmprinter::print_bytes(&lowered).unwrap()));
        assert_eq!(expected, got, "host memory of {pages} pages");
        // The host sees memory 0's bytes at the same addresses.
        assert_eq!(host_a, host_b);
        assert_eq!(&host_b, b"A0BB");
        let size = format!("{pages},1,1");
        assert_eq!(expected[0], size);
        assert_eq!(expected[4], "0");
        assert_eq!(expected[5], "trap");
        assert_eq!(expected[8], "1");
        assert_eq!(expected[10], "-1");
        assert_eq!(expected[15], "12354"); // "B0" moved up with the grow
        assert_eq!(expected[16], "12355"); // "C0"
    }
    // Linking follows the original's import type: a host memory below
    // memory 0's minimum is rejected by both.
    let original =
        wat::parse_str(r#"(module (import "env" "mem" (memory 2)) (memory 1))"#).unwrap();
    let (lowered, _) = lower(&original, true);
    assert!(run_imported(&native, &original, 1, &[]).is_err());
    assert!(run_imported(&one, &lowered, 1, &[]).is_err());
    assert!(run_imported(&one, &lowered, 2, &[]).is_ok());
}

#[test]
fn simd_accesses_and_lanes_on_every_memory() {
    let wat = r#"(module
      (memory $a 1) (memory $b 1 1) (memory $c i64 1)
      (func (export "sb") (param i32 i64) (v128.store $b (local.get 0) (i64x2.splat (local.get 1))))
      (func (export "lb") (param i32) (result i64) (i64x2.extract_lane 1 (v128.load $b (local.get 0))))
      (func (export "lane_c") (param i64 i32) (result i32)
        (i32x4.extract_lane 2 (v128.load32_lane $c 2 (local.get 0) (i32x4.splat (local.get 1)))))
      (func (export "store_lane_a") (param i32 i64) (v128.store64_lane $a 0 (local.get 0) (i64x2.splat (local.get 1))))
      (func (export "la") (param i32) (result i64) (i64.load $a (local.get 0)))
      (func (export "splat_c") (param i64) (result i32) (i32x4.extract_lane 3 (v128.load32_splat $c offset=4 (local.get 0)))))"#;
    let out = same_both(
        wat,
        &[
            ("sb", &[65520, 7]),
            ("lb", &[65520]),
            ("sb", &[65521, 7]),
            ("lb", &[65521]),
            ("lane_c", &[65532, 9]),
            ("lane_c", &[65533, 9]),
            ("store_lane_a", &[65528, 5]),
            ("la", &[65528]),
            ("store_lane_a", &[65529, 5]),
            ("splat_c", &[65528]),
            ("splat_c", &[65529]),
        ],
    );
    assert_eq!(
        out,
        s(&["", "7", "trap", "trap", "0", "trap", "", "5", "trap", "0", "trap"])
    );
}

#[test]
fn refusals_name_the_memory_and_reason() {
    let cases = [
        (
            r#"(module (memory 1) (memory (export "m1") 1))"#,
            "memory 1 is exported",
        ),
        (
            r#"(module (import "a" "b" (memory 1)) (import "a" "c" (memory 1)))"#,
            "memory 1 is imported",
        ),
        (
            r#"(module (memory 1) (memory 1 (pagesize 1)))"#,
            "different page sizes",
        ),
        (
            r#"(module (import "a" "b" (memory 1 1)) (memory 1))"#,
            "can never fit",
        ),
        (
            r#"(module (import "a" "b" (memory 1)) (memory i64 1))"#,
            "memory 1 is memory64",
        ),
        (
            r#"(module (import "a" "b" (memory 1)) (memory 1 1 shared))"#,
            "another memory is shared",
        ),
    ];
    for (wat, needle) in cases {
        let bytes = wat::parse_str(wat).unwrap();
        match lower_multi_memory(&bytes, &LowerOptions::default()) {
            Err(wasm_mem::Error::Refused(msg)) => assert!(msg.contains(needle), "{msg}"),
            other => panic!("expected a refusal for {wat}: {:?}", other.map(|r| r.1)),
        }
    }
}

#[test]
fn single_memory_is_untouched() {
    let bytes = wat::parse_str(
        r#"(module (memory 1) (func (export "f") (result i32) (i32.load (i32.const 0))))"#,
    )
    .unwrap();
    let (out, report) = lower(&bytes, true);
    assert_eq!(out, bytes);
    assert!(!report.lowered);
}

#[test]
fn output_has_one_memory_and_validates_without_multi_memory() {
    let bytes = wat::parse_str(GROW_ZERO).unwrap();
    let (out, _) = lower(&bytes, true);
    let mut features = wasmparser::WasmFeatures::default();
    features.remove(wasmparser::WasmFeatures::MULTI_MEMORY);
    wasmparser::Validator::new_with_features(features)
        .validate_all(&out)
        .unwrap();
    let info = wasm_mem::ModuleInfo::read(&out).unwrap();
    assert_eq!(info.memories.len(), 1);
}

/// One kind of access probed at a memory's edge: WAT of `(func (param
/// addr) (result i64))` around the address, and the access width.
struct Probe {
    name: &'static str,
    width: u64,
    /// `{m}` is the memory, `{o}` the offset, `{t}` the address type.
    body: &'static str,
}

const PROBES: &[Probe] = &[
    Probe {
        name: "l8",
        width: 1,
        body: "(i64.extend_i32_u (i32.load8_u {m} offset={o} (local.get 0)))",
    },
    Probe {
        name: "l16",
        width: 2,
        body: "(i64.load16_u {m} offset={o} (local.get 0))",
    },
    Probe {
        name: "l32",
        width: 4,
        body: "(i64.extend_i32_u (i32.load {m} offset={o} (local.get 0)))",
    },
    Probe {
        name: "l64",
        width: 8,
        body: "(i64.load {m} offset={o} (local.get 0))",
    },
    Probe {
        name: "l128",
        width: 16,
        body: "(i64x2.extract_lane 1 (v128.load {m} offset={o} (local.get 0)))",
    },
    Probe {
        name: "s8",
        width: 1,
        body: "(i32.store8 {m} offset={o} (local.get 0) (i32.const 0x5a)) (i64.const 0)",
    },
    Probe {
        name: "s64",
        width: 8,
        body: "(i64.store {m} offset={o} (local.get 0) (i64.const 7)) (i64.const 0)",
    },
    Probe {
        name: "s128",
        width: 16,
        body: "(v128.store {m} offset={o} (local.get 0) (v128.const i64x2 1 2)) (i64.const 0)",
    },
];

const EDGE_OFFSETS: &[u64] = &[0, 1, 5, 8, 65535, 65536, 131071];

/// A module over `memories` (WAT declarations, each with a `$mN` name and
/// whether it is memory64), with `extra` functions (hot loops that set
/// which access end the pass favours), a probe export per memory, probe
/// kind and offset, and `grow_N` / `size_N` exports. Each probe is called
/// at the addresses around `size - offset - width` and at the top of the
/// address space, between grows (`grows`: memory, delta); the original
/// must trap exactly when `addr + offset + width > size`, and the lowered
/// module (exact mode) must give the same outcome for every call.
fn edge_sweep(memories: &[(&str, bool)], extra: &str, grows: &[&[(usize, i64)]]) -> LowerReport {
    let mut wat = String::from("(module\n");
    for (decl, _) in memories {
        wat.push_str(&format!("  {decl}\n"));
    }
    wat.push_str(extra);
    for (m, &(_, is64)) in memories.iter().enumerate() {
        let t = if is64 { "i64" } else { "i32" };
        wat.push_str(&format!(
            "  (func (export \"grow_{m}\") (param {t}) (result {t}) (memory.grow $m{m} (local.get 0)))\n  (func (export \"size_{m}\") (result i64) (memory.size $m{m}) {})\n",
            if is64 { "" } else { "(i64.extend_i32_u)" }
        ));
        for p in PROBES {
            for o in EDGE_OFFSETS {
                let body = p
                    .body
                    .replace("{m}", &format!("$m{m}"))
                    .replace("{o}", &o.to_string());
                wat.push_str(&format!(
                    "  (func (export \"{}_{m}_{o}\") (param {t}) (result i64) {body})\n",
                    p.name
                ));
            }
        }
    }
    wat.push(')');
    let original = wat::parse_str(&wat).unwrap_or_else(|e| panic!("{e}\n{wat}"));
    let native = Engine::new(&config(true)).unwrap();
    let sizes = |calls: &mut Vec<(String, Vec<i64>)>| {
        let names: Vec<(String, Vec<i64>)> = (0..memories.len())
            .map(|m| (format!("size_{m}"), vec![]))
            .collect();
        let refs: Vec<Call> = names
            .iter()
            .map(|(n, a)| (n.as_str(), a.as_slice()))
            .collect();
        let out = run(&native, &original, &with_prefix(calls, &refs)).unwrap();
        out[out.len() - memories.len()..]
            .iter()
            .map(|s| s.parse::<u64>().unwrap() * 65536)
            .collect::<Vec<u64>>()
    };
    let mut calls: Vec<(String, Vec<i64>)> = Vec::new();
    let mut predicted: Vec<(usize, bool)> = Vec::new();
    for phase in 0..=grows.len() {
        if phase > 0 {
            for &(m, delta) in grows[phase - 1] {
                calls.push((format!("grow_{m}"), vec![delta]));
            }
        }
        let size = sizes(&mut calls);
        for (m, &(_, is64)) in memories.iter().enumerate() {
            let top: u128 = if is64 { 1 << 64 } else { 1 << 32 };
            for p in PROBES {
                for &o in EDGE_OFFSETS {
                    let end = (o + p.width) as i128;
                    let edge = size[m] as i128 - end;
                    let mut addrs: Vec<i128> = vec![0, edge - 1, edge, edge + 1];
                    addrs.extend([top as i128 - 1, top as i128 - end, top as i128 / 2]);
                    for a in addrs {
                        if a < 0 || a >= top as i128 {
                            continue;
                        }
                        predicted.push((calls.len(), a + end > size[m] as i128));
                        calls.push((format!("{}_{m}_{o}", p.name), vec![a as u64 as i64]));
                    }
                }
            }
        }
    }
    let refs: Vec<Call> = calls
        .iter()
        .map(|(n, a)| (n.as_str(), a.as_slice()))
        .collect();
    let (out, report) = same(&wat, &refs);
    for (i, traps) in predicted {
        assert_eq!(
            out[i] == "trap",
            traps,
            "call {i} {:?} gave {} in the original",
            calls[i],
            out[i]
        );
    }
    report
}

/// `calls` followed by `more`, as borrowed calls.
fn with_prefix<'a>(calls: &'a [(String, Vec<i64>)], more: &[Call<'a>]) -> Vec<Call<'a>> {
    calls
        .iter()
        .map(|(n, a)| (n.as_str(), a.as_slice()))
        .chain(more.iter().copied())
        .collect()
}

/// Every access width at every edge of every slot kind, before and after
/// grows: a reserved slot, a dynamic slot with a fixed base, a dynamic slot
/// that moves and the last slot that moves; hot loops make the pass favour
/// different access ends per memory (the size globals then hold the size
/// minus that end), so the probes' ends are equal to, below and above it.
#[test]
fn access_edges_for_every_width_and_slot_kind() {
    let hot = r#"
  (func $hot (param i32) (result i64)
    (local $i i32) (local $s i64)
    (loop $l
      (local.set $s (i64.add (local.get $s) (i64.load $m0 (local.get $i))))
      (local.set $s (i64.add (local.get $s) (i64.load $m1 offset=8 (local.get $i))))
      (local.set $s (i64.add (local.get $s) (i64.extend_i32_u (i32.load $m2 offset=2 (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 8)))
      (br_if $l (i32.lt_u (local.get $i) (local.get 0))))
    (local.get $s))
  (func (export "uses_3") (param i32) (result i64)
    (i64.load $m3 (local.get 0)) (i64.load $m3 offset=8 (local.get 0)) (i64.add)
    (i64.load $m3 offset=16 (local.get 0)) (i64.add) (i64.load $m3 offset=24 (local.get 0)) (i64.add)
    (i64.load $m3 offset=32 (local.get 0)) (i64.add) (call $hot (local.get 0)) (i64.add))
"#;
    let report = edge_sweep(
        &[
            ("(memory $m0 1)", false),
            ("(memory $m1 1 4)", false),
            ("(memory $m2 1)", false),
            ("(memory $m3 1)", false),
        ],
        hot,
        &[&[(0, 1), (1, 1), (2, 2), (3, 1)], &[(1, 2), (2, 0), (3, 2)]],
    );
    let placement: Vec<(Placement, bool)> = report
        .memories
        .iter()
        .map(|m| (m.placement, m.can_move))
        .collect();
    assert_eq!(
        placement,
        [
            (Placement::Dynamic, false),
            (Placement::Reserved, false),
            (Placement::Dynamic, true),
            (Placement::Last, true)
        ],
        "{}",
        report.to_text()
    );
}

/// The same sweep over memory64 memories (dynamic slots whose favoured end
/// fits their minimum, one whose does not, and a moving last slot) and a
/// mixed set (memory32 slots zero-extended into an i64 combined memory).
#[test]
fn access_edges_memory64_and_mixed() {
    let hot = r#"
  (func $hot (param i64) (result i64)
    (local $i i64) (local $s i64)
    (loop $l
      (local.set $s (i64.add (local.get $s) (i64.load $m0 (local.get $i))))
      (local.set $s (i64.add (local.get $s) (i64.load $m1 offset=131072 (local.get $i))))
      (local.set $i (i64.add (local.get $i) (i64.const 8)))
      (br_if $l (i64.lt_u (local.get $i) (local.get 0))))
    (local.get $s))
  (func (export "uses_2") (param i64) (result i64)
    (i64.load $m2 (local.get 0)) (i64.load $m2 offset=8 (local.get 0)) (i64.add)
    (i64.load $m2 offset=16 (local.get 0)) (i64.add) (i64.load $m2 offset=24 (local.get 0)) (i64.add)
    (call $hot (local.get 0)) (i64.add))
"#;
    let report = edge_sweep(
        &[
            ("(memory $m0 i64 1)", true),
            ("(memory $m1 i64 1)", true),
            ("(memory $m2 i64 1)", true),
        ],
        hot,
        &[&[(0, 1), (1, 2), (2, 1)], &[(1, 1), (2, 0)]],
    );
    assert_eq!(report.memories[2].placement, Placement::Last);
    assert!(report.memories[2].can_move);
    let hot = r#"
  (func $hot (param i32) (result i64)
    (local $i i32) (local $s i64)
    (loop $l
      (local.set $s (i64.add (local.get $s) (i64.load $m0 offset=4 (local.get $i))))
      (local.set $s (i64.add (local.get $s) (i64.load $m1 (i64.extend_i32_u (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 8)))
      (br_if $l (i32.lt_u (local.get $i) (local.get 0))))
    (local.get $s))
  (func (export "uses_2") (param i32) (result i64)
    (i64.load $m2 (local.get 0)) (i64.load $m2 offset=8 (local.get 0)) (i64.add)
    (i64.load $m2 offset=16 (local.get 0)) (i64.add) (i64.load $m2 offset=24 (local.get 0)) (i64.add)
    (call $hot (local.get 0)) (i64.add))
"#;
    let report = edge_sweep(
        &[
            ("(memory $m0 1)", false),
            ("(memory $m1 i64 1)", true),
            ("(memory $m2 1)", false),
        ],
        hot,
        &[&[(0, 2), (1, 1), (2, 1)]],
    );
    assert!(report.combined.as_ref().unwrap().memory64);
    assert_eq!(report.memories[2].placement, Placement::Last);
}
