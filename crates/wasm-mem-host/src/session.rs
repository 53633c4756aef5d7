//! Run a module on wasmtime under a page budget and report what its memories
//! really used.
//!
//! A [`Session`] compiles the module with multi-memory, memory64, threads
//! (shared memories) and custom page sizes enabled, links WASI preview 1
//! (`wasmtime-wasi`, stdio inherited, arguments passed through), creates the
//! memories the module imports (from their declared types), instantiates it
//! (calling `_initialize` if the module exports it) and then runs `_start`
//! ([`Session::run_command`]) or any export ([`Session::invoke`]).
//!
//! # Budget enforcement
//! Before instantiation the module is prepared (see [`crate::prepare`]): every
//! budgeted memory's declared maximum becomes min(max, budget). The store's
//! `ResourceLimiter` is then told, for every grow, the growing memory's
//! current and desired byte sizes and its maximum, which is the budget:
//! `memory_growing` returns `Ok(false)` when the desired size passes it, so
//! `memory.grow` returns -1 (and a host `Memory::grow` fails). Because each
//! memory carries its own budget into the callback, the decision never
//! depends on knowing which memory grows. Sizes are bytes; pages are the
//! memory type's own page size, never an assumed 64 KiB.
//!
//! # Which memory grew: the report
//! The callback carries no memory identity, so the limiter keeps a model of
//! every unshared memory's size (initial sizes from the module; wasmtime calls
//! the limiter for every creation, in index order, and every grow, and
//! calls `memory_grow_failed` when an allowed grow fails after all) and
//! attributes each call to the memory whose tracked size and maximum match
//! (`current`, `maximum`). Memories that match alike have the same size and
//! the same maximum and so behave identically from then on; such a tie goes
//! to the lowest index, which can only swap grow/refusal counts between two
//! memories that were indistinguishable at that moment. Final sizes are not
//! taken from the model: they are read from the store after the run, through
//! the exports (every memory has one after preparation), so they are exact.
//! Memories cannot shrink, so the peak size is the final size; the report
//! gives both, and the largest size a refused grow asked for.
//!
//! Shared memories are never reported to the limiter by wasmtime 48: their
//! budget is enforced by the lowered maximum alone, and their report has
//! final sizes but no grow counts (`growth_tracked: false`).

use crate::alloc::{AllocatorNames, GuestAllocator};
use crate::budget::Budget;
use crate::error::{Error, Result};
use crate::prepare::{prepare, Prepared};
use crate::view::GuestMemory;
use serde::Serialize;
use wasmtime::{
    Config, Engine, Instance, Linker, Memory, MemoryTypeBuilder, Module, ResourceLimiter,
    SharedMemory, Store, Val, ValType,
};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::WasiCtxBuilder;

/// How to run a module.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Page budgets per memory.
    pub budget: Budget,
    /// The program's arguments as WASI sees them (`argv[0]` first).
    pub args: Vec<String>,
    /// Inherit the host's stdin, stdout and stderr (else WASI stdio is closed).
    pub inherit_stdio: bool,
    /// Inherit the host's environment variables.
    pub inherit_env: bool,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            budget: Budget::none(),
            args: vec!["main.wasm".into()],
            inherit_stdio: true,
            inherit_env: false,
        }
    }
}

/// How a run ended (a trap is an `Err`).
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The function returned these values.
    Returned(Vec<Val>),
    /// The program called WASI `proc_exit` (or `_start` returned: code 0).
    Exited(i32),
}

/// One memory as the limiter tracks it.
#[derive(Debug, Clone)]
struct Tracked {
    shared: bool,
    /// Maximum in bytes as wasmtime passes it (after the budget cap).
    maximum: Option<usize>,
    /// The module's own maximum in bytes (before the cap; without a declared
    /// maximum, what the index type can address).
    module_max: Option<u128>,
    size: usize,
    peak: usize,
    grows: u64,
    refused_budget: u64,
    refused_max: u64,
    failed: u64,
    largest_refused: Option<usize>,
}

/// The store's resource limiter: enforces budgets and counts grows.
#[derive(Debug, Default)]
struct BudgetLimiter {
    memories: Vec<Tracked>,
    /// Creation calls still expected (imports we create, then definitions).
    creations: usize,
    /// The last grow allowed: (memory, size before), undone by `memory_grow_failed`.
    pending: Option<(usize, usize)>,
    /// Calls that matched no tracked memory.
    unmatched: u64,
}

impl ResourceLimiter for BudgetLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.pending = None;
        if self.creations > 0 && current == 0 {
            // Memory creation: sizes were initialised from the module.
            self.creations -= 1;
            return Ok(maximum.is_none_or(|max| desired <= max));
        }
        let over = maximum.is_some_and(|max| desired > max);
        let Some(index) = self
            .memories
            .iter()
            .position(|m| !m.shared && m.size == current && m.maximum == maximum)
        else {
            self.unmatched += 1;
            return Ok(!over);
        };
        let memory = &mut self.memories[index];
        if over {
            if memory.module_max.is_some_and(|max| desired as u128 > max) {
                memory.refused_max += 1;
            } else {
                memory.refused_budget += 1;
            }
            memory.largest_refused = memory.largest_refused.max(Some(desired));
            return Ok(false);
        }
        memory.size = desired;
        memory.peak = memory.peak.max(desired);
        memory.grows += 1;
        self.pending = Some((index, current));
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        if let Some((index, before)) = self.pending.take() {
            let memory = &mut self.memories[index];
            memory.size = before;
            memory.grows -= 1;
            memory.failed += 1;
        }
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

/// What a session's store holds (WASI context and the budget limiter).
pub struct HostState {
    wasi: WasiP1Ctx,
    limiter: BudgetLimiter,
}

/// One memory in the report.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryReport {
    /// Memory index.
    pub index: u32,
    /// The module's own export name, if any.
    pub export: Option<String>,
    /// `true` when imported (created by the host from the import's type).
    pub imported: bool,
    /// 64-bit addresses.
    pub memory64: bool,
    /// Shared memory.
    pub shared: bool,
    /// Page size in bytes.
    pub page_size: u64,
    /// Size at instantiation, in pages.
    pub initial_pages: u64,
    /// Size after the run, in pages (read from the store).
    pub final_pages: u64,
    /// Largest size during the run, in pages.
    pub peak_pages: u64,
    /// Final size in bytes.
    pub final_bytes: u64,
    /// The module's declared maximum, in pages.
    pub max_pages: Option<u64>,
    /// The budget, in pages.
    pub budget_pages: Option<u64>,
    /// `false` for shared memories: wasmtime does not report their growth.
    pub growth_tracked: bool,
    /// Successful grows.
    pub grows: u64,
    /// Grows refused because they passed the budget (memory.grow gave -1).
    pub refused_by_budget: u64,
    /// Grows refused because they passed the module's own maximum.
    pub refused_by_max: u64,
    /// Grows allowed but failed in the engine (e.g. out of host memory).
    pub failed: u64,
    /// The largest size a refused grow asked for, in pages.
    pub largest_refused_pages: Option<u64>,
}

/// The memory report of a session.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Every memory, by index.
    pub memories: Vec<MemoryReport>,
    /// Grow calls the limiter could not attribute to a memory (expected 0).
    pub unattributed_grows: u64,
}

impl RunReport {
    /// Total grows refused because of a budget.
    pub fn refused_by_budget(&self) -> u64 {
        self.memories.iter().map(|m| m.refused_by_budget).sum()
    }
}

/// The engine configuration sessions use: multi-memory, memory64, threads,
/// shared memory and custom page sizes on.
pub fn engine_config() -> Config {
    let mut config = Config::new();
    config
        .wasm_multi_memory(true)
        .wasm_memory64(true)
        .wasm_threads(true)
        .shared_memory(true)
        .wasm_custom_page_sizes(true);
    config
}

/// A module instantiated under a budget.
pub struct Session {
    store: Store<HostState>,
    instance: Instance,
    prepared: Prepared,
    memories: Vec<GuestMemory>,
    budget: Budget,
}

fn bytes(pages: u64, page_size: u64) -> u128 {
    u128::from(pages) * u128::from(page_size)
}

/// The maximum, in bytes, wasmtime hands the limiter for this memory: the
/// declared maximum, or without one the larger of the minimum and what the
/// index type can address (2^32 bytes for memory32, 2^64 minus one page for
/// memory64), as in `wasmtime_environ::Memory::maximum_byte_size`.
fn engine_maximum(memory: &wasm_mem::model::MemoryInfo) -> Option<u64> {
    match memory.max_pages {
        Some(max) => max.checked_mul(memory.page_size),
        None => {
            let min = memory.min_pages.checked_mul(memory.page_size)?;
            let by_index = if memory.memory64 {
                0u64.wrapping_sub(memory.page_size)
            } else {
                1 << 32
            };
            Some(min.max(by_index))
        }
    }
}

impl Session {
    /// Prepare, compile, link and instantiate `module` (binary or text).
    pub fn new(module: &[u8], config: &RunConfig) -> Result<Session> {
        let binary = wasm_mem::input::to_binary(module)?;
        wasm_mem::input::validate(&binary)?;
        let prepared = prepare(&binary, &config.budget)?;
        let engine = Engine::new(&engine_config())?;
        let compiled = Module::new(&engine, &prepared.module)?;

        let mut wasi = WasiCtxBuilder::new();
        wasi.args(&config.args);
        if config.inherit_stdio {
            wasi.inherit_stdio();
        }
        if config.inherit_env {
            wasi.inherit_env();
        }
        let mut limiter = BudgetLimiter::default();
        for (memory, original) in prepared
            .info
            .memories
            .iter()
            .zip(&prepared.original.memories)
        {
            let maximum = engine_maximum(memory).and_then(|max| usize::try_from(max).ok());
            let size =
                usize::try_from(bytes(memory.min_pages, memory.page_size)).unwrap_or(usize::MAX);
            limiter.memories.push(Tracked {
                shared: memory.shared,
                maximum,
                module_max: engine_maximum(original).map(u128::from),
                size,
                peak: size,
                grows: 0,
                refused_budget: 0,
                refused_max: 0,
                failed: 0,
                largest_refused: None,
            });
        }
        // wasmtime asks the limiter about every memory it creates in the
        // store: the unshared ones we create for imports, then every memory
        // the module defines.
        limiter.creations = prepared
            .info
            .memories
            .iter()
            .filter(|m| m.import.is_none() || !m.shared)
            .count();
        let mut store = Store::new(
            &engine,
            HostState {
                wasi: wasi.build_p1(),
                limiter,
            },
        );
        store.limiter(|state| &mut state.limiter);

        let mut linker: Linker<HostState> = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |state: &mut HostState| {
            &mut state.wasi
        })?;
        for memory in &prepared.info.memories {
            let Some(import) = &memory.import else {
                continue;
            };
            let ty = MemoryTypeBuilder::new()
                .min(memory.min_pages)
                .max(memory.max_pages)
                .memory64(memory.memory64)
                .shared(memory.shared)
                .page_size_log2(memory.page_size.trailing_zeros() as u8)
                .build()?;
            if memory.shared {
                let shared = SharedMemory::new(&engine, ty)?;
                linker.define(&store, &import.module, &import.name, shared)?;
            } else {
                let created = Memory::new(&mut store, ty)?;
                linker.define(&store, &import.module, &import.name, created)?;
            }
        }
        let instance = linker.instantiate(&mut store, &compiled)?;
        store.data_mut().limiter.creations = 0;
        let mut memories = Vec::new();
        for (memory, name) in prepared.info.memories.iter().zip(&prepared.memory_exports) {
            let view = GuestMemory::export(&mut store, &instance, name)?
                .with_label(format!("memory {}", memory.index));
            memories.push(view);
        }
        let mut session = Session {
            store,
            instance,
            prepared,
            memories,
            budget: config.budget.clone(),
        };
        if let Some(init) = session.instance.get_func(&mut session.store, "_initialize") {
            init.call(&mut session.store, &[], &mut [])?;
        }
        Ok(session)
    }

    /// The store.
    pub fn store(&self) -> &Store<HostState> {
        &self.store
    }

    /// The store, mutably.
    pub fn store_mut(&mut self) -> &mut Store<HostState> {
        &mut self.store
    }

    /// The instance.
    pub fn instance(&self) -> Instance {
        self.instance
    }

    /// The prepared module and its model.
    pub fn prepared(&self) -> &Prepared {
        &self.prepared
    }

    /// The view of memory `index` (every memory, exported or not).
    pub fn memory(&self, index: u32) -> Result<GuestMemory> {
        self.memories.get(index as usize).cloned().ok_or_else(|| {
            Error::NoMemory(format!("{index}: the module has {}", self.memories.len()))
        })
    }

    /// The guest's allocator (see [`GuestAllocator::new`]).
    pub fn allocator(&mut self, names: &AllocatorNames) -> Result<GuestAllocator> {
        GuestAllocator::new(&mut self.store, &self.instance, names)
    }

    /// Run the WASI command entry point `_start`. A module without `_start`
    /// has already run (its start function ran at instantiation): the
    /// outcome is `Exited(0)`.
    pub fn run_command(&mut self) -> Result<Outcome> {
        let Some(start) = self.instance.get_func(&mut self.store, "_start") else {
            return Ok(Outcome::Exited(0));
        };
        match start.call(&mut self.store, &[], &mut []) {
            Ok(()) => Ok(Outcome::Exited(0)),
            Err(e) => exit_or_error(e),
        }
    }

    /// Call export `name` with values given as text (`42`, `-1`, `0xff`,
    /// `1.5`), parsed by the parameter types.
    pub fn invoke(&mut self, name: &str, args: &[String]) -> Result<Outcome> {
        let func = self
            .instance
            .get_func(&mut self.store, name)
            .ok_or_else(|| Error::NoFunction(name.to_string()))?;
        let ty = func.ty(&self.store);
        let params: Vec<ValType> = ty.params().collect();
        if params.len() != args.len() {
            return Err(Error::Argument {
                function: name.into(),
                index: args.len().min(params.len()),
                message: format!(
                    "`{name}` takes {} argument(s), {} given",
                    params.len(),
                    args.len()
                ),
            });
        }
        let values = params
            .iter()
            .zip(args)
            .enumerate()
            .map(|(index, (ty, text))| {
                parse_value(ty, text).map_err(|message| Error::Argument {
                    function: name.into(),
                    index,
                    message,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut results: Vec<Val> = ty
            .results()
            .map(|t| Val::default_for_ty(&t).unwrap_or(Val::I32(0)))
            .collect();
        match func.call(&mut self.store, &values, &mut results) {
            Ok(()) => Ok(Outcome::Returned(results)),
            Err(e) => exit_or_error(e),
        }
    }

    /// The memory report: final sizes read from the store now, grow counts
    /// from the limiter.
    pub fn report(&mut self) -> RunReport {
        let limiter = &self.store.data().limiter;
        let unattributed_grows = limiter.unmatched;
        let tracked = limiter.memories.clone();
        let mut memories = Vec::new();
        for ((memory, original), (view, t)) in self
            .prepared
            .info
            .memories
            .iter()
            .zip(&self.prepared.original.memories)
            .zip(self.memories.iter().zip(&tracked))
        {
            let page_size = memory.page_size;
            let final_bytes = view.size(&self.store);
            let peak = final_bytes.max(u64::try_from(t.peak).unwrap_or(u64::MAX));
            memories.push(MemoryReport {
                index: memory.index,
                export: original.exports.first().cloned(),
                imported: memory.import.is_some(),
                memory64: memory.memory64,
                shared: memory.shared,
                page_size,
                initial_pages: memory.min_pages,
                final_pages: final_bytes / page_size,
                peak_pages: peak / page_size,
                final_bytes,
                max_pages: original.max_pages,
                budget_pages: self.budget.get(memory.index),
                growth_tracked: !memory.shared,
                grows: t.grows,
                refused_by_budget: t.refused_budget,
                refused_by_max: t.refused_max,
                failed: t.failed,
                largest_refused_pages: t
                    .largest_refused
                    .map(|b| u64::try_from(b).unwrap_or(u64::MAX) / page_size),
            });
        }
        RunReport {
            memories,
            unattributed_grows,
        }
    }
}

fn exit_or_error(e: wasmtime::Error) -> Result<Outcome> {
    match e.downcast_ref::<wasmtime_wasi::I32Exit>() {
        Some(exit) => Ok(Outcome::Exited(exit.0)),
        None => Err(Error::Wasmtime(e)),
    }
}

fn parse_int(text: &str) -> Option<i128> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let magnitude = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => i128::from_str_radix(hex, 16).ok()?,
        None => digits.parse::<i128>().ok()?,
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// Parse an argument for a parameter of type `ty`. Integers accept signed
/// and unsigned decimal or `0x` hex within the type's width (no wrapping).
pub fn parse_value(ty: &ValType, text: &str) -> std::result::Result<Val, String> {
    let int = |bits: u32| -> std::result::Result<i128, String> {
        let value = parse_int(text).ok_or_else(|| format!("{text:?} is not an integer"))?;
        let min = -(1i128 << (bits - 1));
        let max = (1i128 << bits) - 1;
        if value < min || value > max {
            return Err(format!("{text} does not fit in i{bits}"));
        }
        Ok(value)
    };
    match ty {
        ValType::I32 => Ok(Val::I32(int(32)? as u32 as i32)),
        ValType::I64 => Ok(Val::I64(int(64)? as u64 as i64)),
        ValType::F32 => text
            .parse::<f32>()
            .map(|v| Val::F32(v.to_bits()))
            .map_err(|_| format!("{text:?} is not a number")),
        ValType::F64 => text
            .parse::<f64>()
            .map(|v| Val::F64(v.to_bits()))
            .map_err(|_| format!("{text:?} is not a number")),
        other => Err(format!(
            "parameters of type {other} cannot be given on the command line"
        )),
    }
}

/// Show a result value.
pub fn show_value(value: &Val) -> String {
    match value {
        Val::I32(v) => v.to_string(),
        Val::I64(v) => v.to_string(),
        Val::F32(bits) => f32::from_bits(*bits).to_string(),
        Val::F64(bits) => f64::from_bits(*bits).to_string(),
        Val::V128(v) => format!("0x{:032x}", v.as_u128()),
        other => format!("{other:?}"),
    }
}
