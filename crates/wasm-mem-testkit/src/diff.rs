//! Differential harness: wasm-smith modules, original against transformed.
//!
//! [`differential`] builds one module from seed bytes with wasm-smith
//! ([`GenOptions::smith`]), makes it terminate with wasm-smith's
//! `ensure_termination` (a fuel global decremented at every function entry
//! and loop head; the module traps when it reaches zero), sends it through the
//! pass, then instantiates the original on one engine and the transformed
//! module on another and compares, in order:
//!
//! 1. instantiation: both succeed, or both fail (a trap in both must be the
//!    same trap code unless [`GenOptions::exact_trap_kinds`] is off; a non-trap failure in both, e.g. a memory over the store
//!    limit, is `Same`);
//! 2. the exported memories right after instantiation (size and bytes);
//! 3. every exported function of the original, called in export order with
//!    arguments derived from the seed (interesting integers such as 0, -1,
//!    page boundaries, and random bits; null references; functions taking a
//!    non-null reference are not called): same results bit for bit, or the
//!    same trap (code);
//! 4. after all calls, every exported global (bits) and every exported memory
//!    (size in bytes and contents; the first differing offset is reported;
//!    with [`GenOptions::exported_memory_prefix`] only the original's bytes).
//!
//! With [`GenOptions::memory_size_probes`] the generated module also exports
//! `memory.size` of every memory, so step 3 compares each memory's size as
//! the module sees it.
//!
//! Exports the original has and the transformed module lacks, or whose kind
//! or function type changed, are a mismatch.
//!
//! Bounds: the engines should come from [`GenOptions::engine_config`] (or
//! enable `consume_fuel`): every call gets [`GenOptions::engine_fuel`] units of
//! wasmtime fuel as a backstop, and each store caps every memory and table at
//! [`GenOptions::memory_limit`] bytes / elements (a failed grow returns -1 on
//! both sides). A call that runs out of wasmtime fuel or stack on one side
//! only says nothing about the pass (the transformed code may be longer), so
//! the seed ends as [`DiffOutcome::Inconclusive`] instead of a mismatch.
//!
//! Floats: results are compared bit for bit. Both engines from
//! [`GenOptions::engine_config`] canonicalize NaNs, so NaN payloads cannot
//! differ by accident; with configs that do not, a pass that leaves float
//! code untouched still gives identical bits on the same host.

use std::panic::{catch_unwind, AssertUnwindSafe};

use arbitrary::Unstructured;
use wasmtime::{
    Engine, Extern, Instance, Linker, Module, Store, StoreLimits, StoreLimitsBuilder, Trap, Val,
    ValType,
};

use crate::{panic_message, Transform};

/// What to generate and how tightly to bound execution.
#[derive(Debug, Clone)]
pub struct GenOptions {
    /// The wasm-smith configuration. [`GenOptions::default`] sets no imports,
    /// at least one function, every item exported, and turns off features
    /// whose results cannot be compared (GC, exceptions, threads, relaxed
    /// SIMD); set `max_memories`, `memory64_enabled`, ... for the pass.
    pub smith: wasm_smith::Config,
    /// The fuel `ensure_termination` gives the module (loop iterations plus
    /// function calls over the instance's whole life).
    pub fuel: u32,
    /// Wasmtime fuel per call (and for instantiation), a backstop against
    /// long straight-line work.
    pub engine_fuel: u64,
    /// Maximum bytes of any memory and elements of any table in both stores.
    pub memory_limit: usize,
    /// Whether a trap must have the same trap code on both sides (default
    /// true). Set it to false for a pass that turns an out-of-bounds access
    /// into an explicit bounds check ending in `unreachable`: then any trap
    /// matches any trap, and trap-versus-no-trap is still compared.
    pub exact_trap_kinds: bool,
    /// Append to every generated module one exported function per memory,
    /// `__memory_size_N` returning `memory.size N` (default false). They are
    /// called after the module's own exports, like every export, so the size
    /// of every memory as the module itself sees it is compared, exported or
    /// not.
    pub memory_size_probes: bool,
    /// Let an exported (non-shared) memory of the transformed module be
    /// larger than the original's (default false): then only the original's
    /// bytes, at the same addresses, are compared, and the transformed one
    /// must be at least as large. For passes that keep a memory's bytes in
    /// place but show the host a larger buffer.
    pub exported_memory_prefix: bool,
}

impl Default for GenOptions {
    fn default() -> Self {
        let smith = wasm_smith::Config {
            max_imports: 0,
            // Without a function type wasm-smith generates no function at all.
            min_types: 1,
            min_funcs: 1,
            max_funcs: 20,
            export_everything: true,
            gc_enabled: false,
            exceptions_enabled: false,
            threads_enabled: false,
            shared_everything_threads_enabled: false,
            relaxed_simd_enabled: false,
            custom_descriptors_enabled: false,
            max_memory32_bytes: 1 << 20,
            max_memory64_bytes: 1 << 20,
            max_table_elements: 1_000,
            ..wasm_smith::Config::default()
        };
        GenOptions {
            smith,
            fuel: 1_000,
            engine_fuel: 500_000_000,
            memory_limit: 64 << 20,
            exact_trap_kinds: true,
            memory_size_probes: false,
            exported_memory_prefix: false,
        }
    }
}

impl GenOptions {
    /// An engine config for either side: wasmtime fuel on, NaN
    /// canonicalization on, and every feature the default generator may use
    /// (multi-memory, memory64, custom page sizes, SIMD, tail calls, wide
    /// arithmetic, ...). Turn off what the transformed side must not need.
    pub fn engine_config() -> wasmtime::Config {
        let mut config = wasmtime::Config::new();
        config
            .consume_fuel(true)
            .cranelift_nan_canonicalization(true)
            .wasm_multi_memory(true)
            .wasm_memory64(true)
            .wasm_custom_page_sizes(true)
            .wasm_simd(true)
            .wasm_relaxed_simd(false)
            .wasm_bulk_memory(true)
            .wasm_reference_types(true)
            .wasm_function_references(true)
            .wasm_tail_call(true)
            .wasm_extended_const(true)
            .wasm_wide_arithmetic(true)
            .wasm_gc(false)
            .wasm_exceptions(false)
            .wasm_threads(false);
        config
    }
}

/// The verdict for one seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffOutcome {
    /// Original and transformed behaved the same; `calls` exported functions
    /// were called and compared (0 when neither instantiated).
    Same {
        /// Number of exported-function calls compared.
        calls: usize,
    },
    /// The pass refused the generated module.
    Refused(String),
    /// Nothing can be concluded: wasm-smith could not build a module from
    /// these bytes, the original does not run on its engine, or one side ran
    /// out of wasmtime fuel or stack where the other did not.
    Inconclusive(String),
    /// The transformed module behaves differently (or the pass panicked, or
    /// its output does not compile): what differs, where.
    Mismatch(String),
}

/// Generates a module from `seed_bytes`, transforms it and compares original
/// and transformed; see the module docs.
pub fn differential(
    seed_bytes: &[u8],
    gen: &GenOptions,
    transform: Transform,
    original_config: &wasmtime::Config,
    transformed_config: &wasmtime::Config,
) -> DiffOutcome {
    let original = match generate(seed_bytes, gen) {
        Ok(bytes) => bytes,
        Err(why) => return DiffOutcome::Inconclusive(why),
    };
    let transformed = match catch_unwind(AssertUnwindSafe(|| transform(&original))) {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(refusal)) => return DiffOutcome::Refused(refusal.reason),
        Err(panic) => {
            return DiffOutcome::Mismatch(format!("transform panicked: {}", panic_message(&*panic)))
        }
    };
    let side_a = match Side::new(original_config, &original, gen) {
        Ok(side) => side,
        Err(e) => return DiffOutcome::Inconclusive(format!("original does not compile: {e}")),
    };
    let side_b = match Side::new(transformed_config, &transformed, gen) {
        Ok(side) => side,
        Err(e) => {
            return DiffOutcome::Mismatch(format!("transformed module does not compile: {e}"))
        }
    };
    match compare(side_a, side_b, seed_bytes, gen) {
        Ok(calls) => DiffOutcome::Same { calls },
        Err(Stop::Mismatch(why)) => DiffOutcome::Mismatch(why),
        Err(Stop::Inconclusive(why)) => DiffOutcome::Inconclusive(why),
    }
}

/// The module [`differential`] would generate from these bytes (after
/// `ensure_termination`), e.g. to save a failing case:
/// `wasmprinter::print_bytes(generate(..)?)`.
pub fn generate(seed_bytes: &[u8], gen: &GenOptions) -> Result<Vec<u8>, String> {
    let mut u = Unstructured::new(seed_bytes);
    let mut module = wasm_smith::Module::new(gen.smith.clone(), &mut u)
        .map_err(|e| format!("wasm-smith: {e}"))?;
    module
        .ensure_termination(gen.fuel)
        .map_err(|e| format!("ensure_termination: {e}"))?;
    let bytes = module.to_bytes();
    if gen.memory_size_probes {
        return add_memory_size_probes(&bytes);
    }
    Ok(bytes)
}

/// The module with one exported `__memory_size_N` function per memory.
fn add_memory_size_probes(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut memory64 = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload.map_err(|e| format!("probes: {e}"))? {
            wasmparser::Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    if let wasmparser::TypeRef::Memory(m) =
                        import.map_err(|e| format!("probes: {e}"))?.ty
                    {
                        memory64.push(m.memory64);
                    }
                }
            }
            wasmparser::Payload::MemorySection(reader) => {
                for m in reader {
                    memory64.push(m.map_err(|e| format!("probes: {e}"))?.memory64);
                }
            }
            _ => {}
        }
    }
    if memory64.is_empty() {
        return Ok(bytes.to_vec());
    }
    let mut text = wasmprinter::print_bytes(bytes).map_err(|e| format!("probes: {e}"))?;
    let end = text.rfind(')').ok_or("probes: no closing parenthesis")?;
    let mut probes = String::new();
    for (i, is64) in memory64.iter().enumerate() {
        probes.push_str(&format!(
            "  (func (export \"__memory_size_{i}\") (result {}) memory.size {i})\n",
            if *is64 { "i64" } else { "i32" }
        ));
    }
    text.insert_str(end, &probes);
    wat::parse_str(&text).map_err(|e| format!("probes: {e}"))
}

/// `n` deterministic seeds of 4 to 16 KiB of xorshift bytes, from `base`.
pub fn seeds(n: usize, base: u64) -> impl Iterator<Item = Vec<u8>> {
    let mut rng = XorShift::new(base);
    (0..n).map(move |_| {
        let len = 4096 + (rng.next() % (12 * 1024 + 1)) as usize;
        let mut bytes = Vec::with_capacity(len + 8);
        while bytes.len() < len {
            bytes.extend_from_slice(&rng.next().to_le_bytes());
        }
        bytes.truncate(len);
        bytes
    })
}

/// xorshift64*: small, deterministic, good enough for test inputs.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        // Never zero; mix the seed so nearby bases differ.
        XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

enum Stop {
    Mismatch(String),
    Inconclusive(String),
}

/// One side: its store and compiled module.
struct Side {
    store: Store<StoreLimits>,
    module: Module,
    engine_fuel: u64,
}

impl Side {
    fn new(config: &wasmtime::Config, bytes: &[u8], gen: &GenOptions) -> Result<Side, String> {
        let engine = Engine::new(config).map_err(|e| format!("engine config: {e}"))?;
        let module = Module::new(&engine, bytes).map_err(|e| format!("{e:#}"))?;
        let limits = StoreLimitsBuilder::new()
            .memory_size(gen.memory_limit)
            .table_elements(gen.memory_limit)
            .build();
        let mut store = Store::new(&engine, limits);
        store.limiter(|limits| limits);
        Ok(Side {
            store,
            module,
            engine_fuel: gen.engine_fuel,
        })
    }

    fn refuel(&mut self) {
        // Fails only when the config does not consume fuel; then there is no
        // backstop, and ensure_termination alone bounds execution.
        let _ = self.store.set_fuel(self.engine_fuel);
    }

    fn instantiate(&mut self) -> Result<Instance, wasmtime::Error> {
        self.refuel();
        let mut linker: Linker<StoreLimits> = Linker::new(self.store.engine());
        linker.define_unknown_imports_as_default_values(&mut self.store, &self.module)?;
        linker.instantiate(&mut self.store, &self.module)
    }
}

/// How a call or an instantiation ended, for comparison.
#[derive(Debug, PartialEq)]
enum Ending {
    Values(Vec<Bits>),
    Trap(Trap),
    /// A non-trap error (resource limit, host error); the text is not compared.
    Error(String),
}

/// A value reduced to what must be equal: numeric bits, or reference
/// null-ness (identities differ between stores).
#[derive(Debug, PartialEq, Eq)]
enum Bits {
    I32(u32),
    I64(u64),
    F32(u32),
    F64(u64),
    V128(u128),
    Ref { null: bool },
}

fn bits(v: &Val) -> Bits {
    match v {
        Val::I32(x) => Bits::I32(*x as u32),
        Val::I64(x) => Bits::I64(*x as u64),
        Val::F32(x) => Bits::F32(*x),
        Val::F64(x) => Bits::F64(*x),
        Val::V128(x) => Bits::V128(x.as_u128()),
        Val::FuncRef(r) => Bits::Ref { null: r.is_none() },
        Val::ExternRef(r) => Bits::Ref { null: r.is_none() },
        Val::AnyRef(r) => Bits::Ref { null: r.is_none() },
        Val::ExnRef(r) => Bits::Ref { null: r.is_none() },
        Val::ContRef(r) => Bits::Ref { null: r.is_none() },
    }
}

fn ending(result: Result<Vec<Val>, wasmtime::Error>) -> Ending {
    match result {
        Ok(values) => Ending::Values(values.iter().map(bits).collect()),
        Err(e) => match e.downcast_ref::<Trap>() {
            Some(trap) => Ending::Trap(*trap),
            None => Ending::Error(format!("{e:#}")),
        },
    }
}

/// Traps that depend on resources (wasmtime fuel, native stack) rather than
/// on the module's meaning.
fn is_resource_trap(e: &Ending) -> bool {
    matches!(e, Ending::Trap(Trap::OutOfFuel | Trap::StackOverflow))
}

fn compare_endings(what: &str, a: &Ending, b: &Ending, exact_traps: bool) -> Result<(), Stop> {
    if a == b {
        return Ok(());
    }
    if !exact_traps && matches!((a, b), (Ending::Trap(_), Ending::Trap(_))) {
        return Ok(());
    }
    if is_resource_trap(a) || is_resource_trap(b) {
        return Err(Stop::Inconclusive(format!(
            "{what}: original {a:?}, transformed {b:?} (resource limit)"
        )));
    }
    if let (Ending::Error(_), Ending::Error(_)) = (a, b) {
        return Ok(());
    }
    Err(Stop::Mismatch(format!(
        "{what}: original {a:?}, transformed {b:?}"
    )))
}

fn compare(mut a: Side, mut b: Side, seed: &[u8], gen: &GenOptions) -> Result<usize, Stop> {
    let ia = a.instantiate();
    let ib = b.instantiate();
    let (ia, ib) = match (ia, ib) {
        (Ok(ia), Ok(ib)) => (ia, ib),
        (ra, rb) => {
            let ea = ending(ra.map(|_| Vec::new()));
            let eb = ending(rb.map(|_| Vec::new()));
            compare_endings("instantiation", &ea, &eb, gen.exact_trap_kinds)?;
            return Ok(0);
        }
    };

    let exports: Vec<(String, wasmtime::ExternType)> = a
        .module
        .exports()
        .map(|e| (e.name().to_string(), e.ty()))
        .collect();
    // Every export must survive with the same kind (and function type).
    for (name, ty) in &exports {
        let other = b.module.get_export(name).ok_or_else(|| {
            Stop::Mismatch(format!(
                "export {name:?} is missing from the transformed module"
            ))
        })?;
        let same_kind = match (ty, &other) {
            (wasmtime::ExternType::Func(fa), wasmtime::ExternType::Func(fb)) => {
                fa.params()
                    .map(|p| p.to_string())
                    .eq(fb.params().map(|p| p.to_string()))
                    && fa
                        .results()
                        .map(|p| p.to_string())
                        .eq(fb.results().map(|p| p.to_string()))
            }
            (wasmtime::ExternType::Global(_), wasmtime::ExternType::Global(_))
            | (wasmtime::ExternType::Memory(_), wasmtime::ExternType::Memory(_))
            | (wasmtime::ExternType::Table(_), wasmtime::ExternType::Table(_))
            | (wasmtime::ExternType::Tag(_), wasmtime::ExternType::Tag(_)) => true,
            _ => false,
        };
        if !same_kind {
            return Err(Stop::Mismatch(format!(
                "export {name:?} changed type: original {ty:?}, transformed {other:?}"
            )));
        }
    }

    compare_state(
        "after instantiation",
        &mut a,
        ia,
        &mut b,
        ib,
        &exports,
        gen.exported_memory_prefix,
    )?;

    let mut rng = XorShift::new(seed_hash(seed));
    let mut calls = 0;
    for (name, ty) in &exports {
        let wasmtime::ExternType::Func(fty) = ty else {
            continue;
        };
        // A non-null reference cannot be made up; such functions are not called.
        if fty
            .params()
            .any(|p| matches!(&p, ValType::Ref(rt) if !rt.is_nullable()))
        {
            continue;
        }
        let args: Vec<Val> = fty.params().map(|p| argument(&p, &mut rng)).collect();
        let fa = ia
            .get_func(&mut a.store, name)
            .expect("export listed by the module");
        let fb = ib
            .get_func(&mut b.store, name)
            .expect("export checked above");
        let ra = call(&mut a, fa, &args);
        let rb = call(&mut b, fb, &args);
        calls += 1;
        compare_endings(
            &format!("call {calls} to {name:?} with {args:?}"),
            &ra,
            &rb,
            gen.exact_trap_kinds,
        )?;
    }

    compare_state(
        "after the calls",
        &mut a,
        ia,
        &mut b,
        ib,
        &exports,
        gen.exported_memory_prefix,
    )?;
    Ok(calls)
}

fn call(side: &mut Side, func: wasmtime::Func, args: &[Val]) -> Ending {
    side.refuel();
    let mut results = vec![Val::I32(0); func.ty(&side.store).results().len()];
    let result = func.call(&mut side.store, args, &mut results);
    ending(result.map(|()| results))
}

/// Compares exported globals and memories.
fn compare_state(
    when: &str,
    a: &mut Side,
    ia: Instance,
    b: &mut Side,
    ib: Instance,
    exports: &[(String, wasmtime::ExternType)],
    exported_memory_prefix: bool,
) -> Result<(), Stop> {
    for (name, _) in exports {
        let ea = ia.get_export(&mut a.store, name);
        let eb = ib.get_export(&mut b.store, name);
        match (ea, eb) {
            (Some(Extern::Global(ga)), Some(Extern::Global(gb))) => {
                let va = bits(&ga.get(&mut a.store));
                let vb = bits(&gb.get(&mut b.store));
                if va != vb {
                    return Err(Stop::Mismatch(format!(
                        "{when}: global {name:?}: original {va:?}, transformed {vb:?}"
                    )));
                }
            }
            (Some(Extern::Memory(ma)), Some(Extern::Memory(mb))) => {
                let da = ma.data(&a.store);
                let mut db = mb.data(&b.store);
                if exported_memory_prefix && db.len() > da.len() {
                    db = &db[..da.len()];
                }
                if da.len() != db.len() {
                    return Err(Stop::Mismatch(format!(
                        "{when}: memory {name:?}: original {} bytes, transformed {} bytes",
                        da.len(),
                        db.len()
                    )));
                }
                if da != db {
                    let at = da.iter().zip(db).position(|(x, y)| x != y).unwrap_or(0);
                    return Err(Stop::Mismatch(format!(
                        "{when}: memory {name:?} differs at byte {at:#x}: original {:#04x}, \
                         transformed {:#04x}",
                        da[at], db[at]
                    )));
                }
            }
            (Some(Extern::SharedMemory(ma)), Some(Extern::SharedMemory(mb)))
                if ma.data_size() != mb.data_size() =>
            {
                return Err(Stop::Mismatch(format!(
                    "{when}: shared memory {name:?}: original {} bytes, transformed {} bytes",
                    ma.data_size(),
                    mb.data_size()
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A deterministic argument: for integers one of a few interesting values
/// (0, 1, -1, extremes, page boundaries) or random bits; random bits for
/// floats and v128; null for references.
fn argument(ty: &ValType, rng: &mut XorShift) -> Val {
    const INTERESTING: [i64; 10] = [
        0,
        1,
        -1,
        8,
        0xffff,
        0x1_0000,
        0x1_0000 - 8,
        i32::MAX as i64,
        i32::MIN as i64,
        i64::MAX,
    ];
    let r = rng.next();
    let pick = |r: u64| {
        if r.is_multiple_of(3) {
            (r >> 8) as i64
        } else {
            INTERESTING[(r >> 8) as usize % INTERESTING.len()]
        }
    };
    match ty {
        ValType::I32 => Val::I32(pick(r) as i32),
        ValType::I64 => Val::I64(pick(r)),
        ValType::F32 => Val::F32(r as u32),
        ValType::F64 => Val::F64(r),
        ValType::V128 => Val::V128((((r as u128) << 64) | rng.next() as u128).into()),
        ValType::Ref(rt) => Val::null_ref(rt.heap_type()),
    }
}

fn seed_hash(seed: &[u8]) -> u64 {
    // FNV-1a.
    seed.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}
