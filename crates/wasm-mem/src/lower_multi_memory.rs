//! The `lower multi-memory` pass: combine all memories of a module into one,
//! with exactly the same behaviour.
//!
//! # Layout
//!
//! Every original memory gets a *slot*, a byte range of the combined memory.
//! Slots are laid out one after the other in this order:
//!
//! 1. **Memory 0 when it is imported or exported** (the host sees the
//!    combined memory, so memory 0 must stay at base 0; an imported memory
//!    0 is always dynamic, see below).
//! 2. **Reserved slots**: memories with a declared maximum get a region of
//!    `max` pages, shared memories first. A reserved memory never moves and
//!    never needs the combined memory to grow: its pages beyond its current
//!    size are part of the combined memory from the start, are never written
//!    (every access is checked against the memory's own size) and so still
//!    read as zero when the memory grows. Reservations are taken greedily
//!    while everything (reservations plus the initial size of every other
//!    memory) fits in the combined address space, counted as at most 4 GiB.
//! 3. **Dynamic slots**: memories that cannot be reserved (no maximum, or a
//!    maximum too large to reserve). A dynamic slot holds exactly the
//!    memory's current size, so growing it *moves* every later slot: the
//!    combined memory grows by `delta` pages, the bytes of all later slots
//!    are copied up by `delta` pages with `memory.copy` (memmove semantics),
//!    the freed gap (the grown pages) is zero-filled and the bases of the
//!    later slots are bumped.
//! 4. **The last slot**: the memory with no maximum that is used most (or,
//!    when every memory has a maximum, the most-used memory). It grows by
//!    growing the combined memory, so it never moves anything, and its size
//!    is the combined size minus its base. When its base is constant (all
//!    earlier slots are reserved), its accesses need no check of our own:
//!    the base is folded into the static offset, and the engine's own bounds
//!    check of the combined memory is exactly the memory's own check.
//!
//! A slot's base is a constant when every earlier slot is reserved,
//! otherwise it lives in a mutable global of the combined index type. The
//! current size of each memory, in bytes, lives in a mutable `i64` global,
//! except for memories that can never grow (`min == max`: a constant) and the
//! last slot (derived from `memory.size`). The global holds the size minus
//! the memory's *bias*: the access end (`offset + width`) used most on the
//! memory, each access weighted by `8^loop depth` (depth counted up to 5;
//! see the checks below). Functions that use a memory cache its base and
//! size globals in locals, loaded at entry and after every call (only the
//! grow helpers write them); bodies with exception handlers read the
//! globals directly. Shared memories always have a maximum and always get a
//! reserved slot with a constant base, so their layout never depends on
//! per-instance state; a shared memory that cannot be reserved is refused.
//! The combined memory is shared when any memory is.
//!
//! The combined memory's index type is `i64` when any memory is memory64,
//! otherwise `i32`; memory32 addresses are zero-extended into an `i64`
//! combined memory. Its page size is the memories' common page size (the
//! pass refuses memories with different page sizes).
//!
//! # Instructions
//!
//! Exact mode (the default): an access of `width` bytes at `addr` with static
//! offset `offset` traps exactly when `addr + end > size` computed without
//! wrap-around, `end = offset + width`. The check is inlined before the
//! access and traps with the engine's own out-of-bounds trap (a 4-byte load
//! at address 0 with the largest static offset, which ends beyond any
//! memory), the original's trap kind; operands pushed after the address
//! are parked in scratch locals meanwhile. Its form depends on the slot:
//!
//! - **Last slot, constant base**: no check of our own (the base is folded
//!   into the static offset, see the layout).
//! - **Last slot, moving base**: the combined memory ends where the slot
//!   ends, so the engine's bounds check of `base + addr` (plus the static
//!   offset, which stays in the instruction) is exactly the memory's own
//!   check, provided `base + addr` does not wrap around the combined index
//!   type; the pass checks only that (`base + addr < base` traps: then
//!   `addr` is beyond the memory, whose size is at most the combined space
//!   minus the base). The check is left out when no wrap is possible (a
//!   zero-extended memory32 address and a largest possible base, every
//!   earlier slot at its largest size, at most `2^64 - 2^32`).
//! - **Other slots, memory32 address**: `i64(addr) + (end - bias) > g`
//!   compared as signed `i64`, `g` being the size global (size minus bias).
//!   The address is zero-extended, `size <= 2^32` and `end <= 2^33`, so no
//!   side wraps, and a negative `g - end + bias` (`size < end`) traps every
//!   address. For the accesses whose end is the bias, the check is a single
//!   compare of the address with the (cached) global: no addition, and no
//!   `size - end` that the engine would recompute at every access (Cranelift
//!   rematerialises an addition of a constant at each use, even in loops).
//! - **Other slots, memory64 address** (65-bit arithmetic): `size < end` or
//!   `addr > size - end`, unsigned; the first half is left out when `end`
//!   is at most the memory's minimum size (the size never shrinks), and
//!   then, when `end` is the bias, `size - end` is the global itself.
//!
//! Accesses that can never be in bounds (static offset beyond the memory's
//! largest possible size) become that out-of-bounds trap.
//! Atomics keep their alignment semantics because every base is a multiple
//! of 16 (the pass refuses atomics with page sizes below 16 bytes); an
//! atomic access that is both misaligned and out of bounds traps as out of
//! bounds where the pass checks the bounds itself (wasmtime reports the
//! misalignment first);
//! `memory.atomic.wait` on a non-shared memory still traps when the combined
//! memory is shared (with `unreachable`, after the access's own checks: the
//! engine's trap for a wait on a non-shared memory cannot be reproduced on
//! a shared one; the only trap whose kind differs from the original's).
//!
//! `memory.fill`, `memory.copy` (across memories and overlapping alike, via
//! the combined memory's memmove) and `memory.init` check every range the
//! original checks before writing anything. `memory.size` is exact per
//! memory; `memory.grow` calls a helper per memory that enforces the
//! memory's own maximum (or the address-space limit), returns the old size
//! or -1 exactly as the original, and grows, reserves or moves as described
//! above (a grow the combined memory cannot satisfy returns -1, which the
//! specification allows for any grow).
//!
//! `--unchecked` mode leaves out the per-memory bounds checks of accesses and
//! bulk operations (an out-of-bounds access may then touch another memory,
//! as with Binaryen's default lowering): unsafe for untrusted code. Sizes,
//! `memory.size` and `memory.grow` stay exact.
//!
//! # Data segments
//!
//! Active segments whose offset is known statically (constants, extended
//! constants and `global.get` of a defined global with a constant
//! initialiser) and that fit the memory's initial size stay active, at the
//! offset plus the memory's initial base. From the first segment that does
//! not (an offset from an imported global, or a segment that would fail
//! instantiation), that segment and every later active segment become
//! passive and are applied in order, with the same checks, by a generated
//! start function that then drops them and calls the original start
//! function. Instantiation thus fails exactly when the original's does.
//!
//! # Imports and exports
//!
//! Only memory 0 may be imported or exported (only it can stay at base 0):
//! any other imported or exported memory is refused, naming it. Memories
//! with different page sizes are refused.
//!
//! What the host sees of memory 0 is kept where it can be: memory 0 is slot
//! 0 at base 0, so the host reads and writes memory 0's bytes at the same
//! addresses as in the original. The host's buffer is larger, though: the
//! other memories' slots follow memory 0's bytes. The report says so and
//! what the host must do: not write beyond memory 0's size, not grow the
//! memory itself, and take memory 0's size from the module (its
//! `memory.size` is exact) rather than from the buffer's length.
//!
//! - **Exported memory 0**: the combined memory is exported under memory
//!   0's names.
//! - **Imported memory 0**: the import keeps memory 0's declared type, so
//!   linking succeeds or fails exactly as the original's. Memory 0 is a
//!   dynamic slot whose size is the host memory's size at instantiation; the
//!   generated start function grows the host's memory by the other
//!   memories' initial pages (instantiation traps if the host's memory
//!   cannot grow that far), sets memory 0's size and moves the later slots'
//!   bases up by how much larger than its minimum the host's memory is. Data
//!   segments of memory 0 that fit its minimum stay active; from the first
//!   segment of another memory on, segments are applied by the start
//!   function in order. Refused: an imported memory 0 whose maximum cannot
//!   hold the other memories, an imported memory32 beside a memory64 (the
//!   combined memory would be memory64), and an imported memory 0 beside a
//!   shared memory (the combined memory would have to be shared).
//! - An imported or exported *shared* memory 0 beside other memories is
//!   refused: other threads could grow it behind the module's back.
//!
//! Sections the pass does not touch (names, custom sections, tables,
//! elements, tags, ...) are copied byte for byte; the output is validated
//! with multi-memory disabled.

use crate::error::{Error, Result};
use crate::model::{ModuleInfo, Offset};
use crate::rewrite::Rewrite;
use crate::sections::ids;
use serde::Serialize;
use std::convert::Infallible;
use wasm_encoder::reencode::{Reencode, RoundtripReencoder};
use wasm_encoder::{BlockType, ConstExpr, Instruction as I, ValType};
use wasmparser::{Operator, WasmFeatures};

/// Options of the pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LowerOptions {
    /// Check every access against its own memory's bounds (exact). `false`
    /// is the `--unchecked` mode.
    pub checked: bool,
}

impl Default for LowerOptions {
    fn default() -> Self {
        LowerOptions { checked: true }
    }
}

/// Where a memory's slot is and how it behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// A region of `max` pages: never moves.
    Reserved,
    /// Exactly the current size: later slots move when it grows.
    Dynamic,
    /// The end of the combined memory: grows the combined memory.
    Last,
}

/// The layout of one original memory in the combined memory.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryLayout {
    /// Original memory index.
    pub memory: u32,
    /// `true` for memory64.
    pub memory64: bool,
    /// `true` for a shared memory.
    pub shared: bool,
    /// Declared minimum pages.
    pub min_pages: u64,
    /// Declared maximum pages.
    pub max_pages: Option<u64>,
    /// Slot kind.
    pub placement: Placement,
    /// Byte offset of the memory in the combined memory at instantiation.
    pub base: u64,
    /// Bytes reserved for the memory (reserved slots only).
    pub reserved_bytes: Option<u64>,
    /// `true` when the base can change at run time (an earlier slot is
    /// dynamic).
    pub can_move: bool,
    /// Static count of instructions using the memory.
    pub instructions: u64,
}

/// The combined memory.
#[derive(Debug, Clone, Serialize)]
pub struct CombinedMemory {
    /// `true` when the combined memory is memory64.
    pub memory64: bool,
    /// `true` when it is shared.
    pub shared: bool,
    /// Page size in bytes.
    pub page_size: u64,
    /// Minimum pages.
    pub min_pages: u64,
    /// Maximum pages.
    pub max_pages: Option<u64>,
    /// `true` when it is imported (memory 0 was imported).
    pub imported: bool,
    /// Export names (memory 0's).
    pub exports: Vec<String>,
}

/// What the pass did.
#[derive(Debug, Clone, Serialize)]
pub struct LowerReport {
    /// `false` when the module had at most one memory (output = input).
    pub lowered: bool,
    /// `true` in exact mode, `false` with `--unchecked`.
    pub checked: bool,
    /// The combined memory (absent when nothing was lowered).
    pub combined: Option<CombinedMemory>,
    /// One entry per original memory, in index order.
    pub memories: Vec<MemoryLayout>,
    /// Active data segments applied by the generated start function.
    pub deferred_segments: Vec<u32>,
    /// What the host must know or provide.
    pub host_notes: Vec<String>,
}

impl LowerReport {
    /// The report as text, one line per memory.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        let Some(c) = &self.combined else {
            for note in &self.host_notes {
                text.push_str(&format!("{note}\n"));
            }
            return text;
        };
        let limits = |min: u64, max: Option<u64>| match max {
            Some(max) => format!("min {min}, max {max} pages"),
            None => format!("min {min} pages, no max"),
        };
        text.push_str(&format!(
            "combined memory: {}{}{}, {} (pages of {} bytes){}\n",
            if c.memory64 { "memory64" } else { "memory32" },
            if c.shared { ", shared" } else { "" },
            if c.imported { ", imported" } else { "" },
            limits(c.min_pages, c.max_pages),
            c.page_size,
            if self.checked { "" } else { ", UNCHECKED" }
        ));
        for m in &self.memories {
            let placement = match m.placement {
                Placement::Reserved => format!("reserved {} bytes", m.reserved_bytes.unwrap_or(0)),
                Placement::Dynamic => "dynamic (later memories move when it grows)".to_string(),
                Placement::Last => "last (grows the combined memory)".to_string(),
            };
            text.push_str(&format!(
                "memory {}: {}{}, {} -> base {}{}, {placement}, {} instruction(s)\n",
                m.memory,
                if m.memory64 { "memory64" } else { "memory32" },
                if m.shared { ", shared" } else { "" },
                limits(m.min_pages, m.max_pages),
                m.base,
                if m.can_move {
                    " (can move)"
                } else {
                    " (fixed)"
                },
                m.instructions
            ));
        }
        if !self.deferred_segments.is_empty() {
            text.push_str(&format!(
                "data segments {:?} are applied by a generated start function\n",
                self.deferred_segments
            ));
        }
        for note in &self.host_notes {
            text.push_str(&format!("note: {note}\n"));
        }
        text
    }
}

/// Features the output must validate with: wasm-mem's, minus multi-memory.
pub fn output_features() -> WasmFeatures {
    let mut features = crate::input::features();
    features.remove(WasmFeatures::MULTI_MEMORY);
    features
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    Const(u64),
    /// Global index and initial value.
    Global(u32, u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Size {
    Const(u64),
    /// A mutable `i64` global holding the size in bytes minus `bias`: the
    /// access end (`offset + width`) most used on the memory, so that its
    /// bounds check compares the address against the global directly.
    Global {
        global: u32,
        bias: u64,
    },
    /// Combined size minus the base (last slot).
    Derived,
}

/// Everything the rewrite needs to know about one memory.
#[derive(Debug, Clone)]
struct Plan {
    index: u32,
    memory64: bool,
    shared: bool,
    min: u64,
    max: Option<u64>,
    /// Own page limit: max or the address-space limit.
    limit_pages: u64,
    placement: Placement,
    slot: usize,
    base: Base,
    size: Size,
    /// Largest byte size the memory can have in the combined memory.
    limit_bytes: u128,
    grow_fn: Option<u32>,
    uses: u64,
}

/// The whole layout.
struct Layout {
    plans: Vec<Plan>,
    /// Memory index per slot.
    slots: Vec<u32>,
    c64: bool,
    shared: bool,
    page_size: u64,
    page_log2: u32,
    min_pages: u64,
    max_pages: Option<u64>,
    checked: bool,
    /// Memory 0 is imported: the start function grows the host's memory by
    /// these pages (the other memories' initial sizes) and moves the later
    /// slots' bases up by however much larger than its minimum memory 0 is.
    import_grow_pages: Option<u64>,
}

impl Layout {
    fn plan(&self, memory: u32) -> &Plan {
        &self.plans[memory as usize]
    }
}

/// Lower a multi-memory module to one memory. `input` must be a valid
/// binary module; returns the output and the report. Modules with at most
/// one memory are returned unchanged.
pub fn lower_multi_memory(input: &[u8], options: &LowerOptions) -> Result<(Vec<u8>, LowerReport)> {
    let info = ModuleInfo::read(input)?;
    if info.memories.len() <= 1 {
        return Ok((
            input.to_vec(),
            LowerReport {
                lowered: false,
                checked: options.checked,
                combined: None,
                memories: Vec::new(),
                deferred_segments: Vec::new(),
                host_notes: vec![format!(
                    "the module has {} memor{}: nothing to lower",
                    info.memories.len(),
                    if info.memories.is_empty() { "ies" } else { "y" }
                )],
            },
        ));
    }
    let mut layout = plan_layout(&info, options)?;
    let module = ModuleParts::read(input)?;
    let mut next_global = info.globals.len() as u32;
    let mut new_globals: Vec<(ValType, u64)> = Vec::new();
    let c_ty = if layout.c64 {
        ValType::I64
    } else {
        ValType::I32
    };
    // Bases and sizes.
    let biases = access_biases(input, &layout)?;
    let mut base_bytes = 0u64;
    let mut variable = false;
    for slot in 0..layout.slots.len() {
        let m = layout.slots[slot] as usize;
        let plan = &mut layout.plans[m];
        plan.base = if variable {
            new_globals.push((c_ty, base_bytes));
            next_global += 1;
            Base::Global(next_global - 1, base_bytes)
        } else {
            Base::Const(base_bytes)
        };
        plan.size = if plan.placement == Placement::Last {
            Size::Derived
        } else if plan.max == Some(plan.min) {
            Size::Const(plan.min * layout.page_size)
        } else {
            let bias = biases[m];
            new_globals.push((
                ValType::I64,
                (plan.min * layout.page_size).wrapping_sub(bias),
            ));
            next_global += 1;
            Size::Global {
                global: next_global - 1,
                bias,
            }
        };
        let extent = match plan.placement {
            Placement::Reserved => plan.max.expect("reserved memories have a max"),
            _ => plan.min,
        };
        if plan.placement == Placement::Dynamic {
            variable = true;
        }
        base_bytes += extent * layout.page_size;
    }
    let combined_limit: u128 = if layout.c64 { 1 << 64 } else { 1 << 32 };
    for plan in &mut layout.plans {
        let own = plan.limit_pages as u128 * layout.page_size as u128;
        let base = match plan.base {
            Base::Const(b) | Base::Global(_, b) => b,
        };
        // No memory reaches 2^64 bytes, so an access ending there traps.
        plan.limit_bytes = own.min(combined_limit - base as u128).min(u64::MAX as u128);
    }
    for plan in &layout.plans {
        if plan.shared && !matches!(plan.base, Base::Const(_)) {
            return Err(Error::Refused(format!(
                "memory {} is shared but its slot would move when an earlier memory grows",
                plan.index
            )));
        }
    }

    // New functions: one grow helper per memory that is grown, then the
    // start function when segments are deferred.
    let mut next_func = module.func_count();
    let mut new_types: Vec<(Vec<ValType>, Vec<ValType>)> = Vec::new();
    let mut new_funcs: Vec<u32> = Vec::new(); // type index per new function
    let mut helper_order = Vec::new();
    for plan in &mut layout.plans {
        if info.memories[plan.index as usize].instructions.grow > 0 {
            let a = if plan.memory64 {
                ValType::I64
            } else {
                ValType::I32
            };
            let ty = module.type_count + type_slot(&mut new_types, vec![a], vec![a]);
            new_funcs.push(ty);
            plan.grow_fn = Some(next_func);
            helper_order.push(plan.index);
            next_func += 1;
        }
    }
    // Data segments.
    let deferred = plan_segments(&info, &layout);
    let start_fn = if deferred.is_empty() && layout.import_grow_pages.is_none() {
        None
    } else {
        let ty = module.type_count + type_slot(&mut new_types, vec![], vec![]);
        new_funcs.push(ty);
        next_func += 1;
        Some(next_func - 1)
    };

    let mut rewrite = Rewrite::new(input)?;
    let perr = |e: wasmparser::BinaryReaderError| Error::from_parser(input, &e);
    let eerr = |e: wasm_encoder::reencode::Error<Infallible>| {
        Error::Internal(format!("re-encoding failed: {e}"))
    };

    // Types.
    if !new_types.is_empty() {
        let mut section = wasm_encoder::TypeSection::new();
        if let Some(index) = rewrite.find(ids::TYPE) {
            let reader = wasmparser::TypeSectionReader::new(rewrite.reader(index)).map_err(perr)?;
            RoundtripReencoder
                .parse_type_section(&mut section, reader)
                .map_err(eerr)?;
        }
        for (params, results) in &new_types {
            section
                .ty()
                .function(params.iter().copied(), results.iter().copied());
        }
        rewrite.set(&section);
    }
    // Imports (memory 0 becomes the combined memory's import).
    let combined_type = wasm_encoder::MemoryType {
        minimum: layout.min_pages,
        maximum: layout.max_pages,
        memory64: layout.c64,
        shared: layout.shared,
        page_size_log2: if layout.page_size == 65536 {
            None
        } else {
            Some(layout.page_log2)
        },
    };
    let memory0_imported = info.memories[0].import.is_some();
    if memory0_imported {
        let index = rewrite
            .find(ids::IMPORT)
            .expect("imported memory without import section");
        let reader = wasmparser::ImportSectionReader::new(rewrite.reader(index)).map_err(perr)?;
        let mut section = wasm_encoder::ImportSection::new();
        CombinedTypeReencoder(combined_type)
            .parse_import_section(&mut section, reader)
            .map_err(eerr)?;
        rewrite.replace(index, &section);
    }
    // Functions.
    if !new_funcs.is_empty() {
        let mut section = wasm_encoder::FunctionSection::new();
        for ty in &module.func_types {
            section.function(*ty);
        }
        for ty in &new_funcs {
            section.function(*ty);
        }
        rewrite.set(&section);
    }
    // Memory section: the combined memory, unless it is imported.
    if let Some(index) = rewrite.find(ids::MEMORY) {
        if memory0_imported {
            rewrite.remove(index);
        } else {
            let mut section = wasm_encoder::MemorySection::new();
            section.memory(combined_type);
            rewrite.replace(index, &section);
        }
    }
    // Globals.
    if !new_globals.is_empty() {
        let mut section = wasm_encoder::GlobalSection::new();
        if let Some(index) = rewrite.find(ids::GLOBAL) {
            let reader =
                wasmparser::GlobalSectionReader::new(rewrite.reader(index)).map_err(perr)?;
            RoundtripReencoder
                .parse_global_section(&mut section, reader)
                .map_err(eerr)?;
        }
        for (ty, value) in &new_globals {
            let init = match ty {
                ValType::I32 => ConstExpr::i32_const(*value as u32 as i32),
                _ => ConstExpr::i64_const(*value as i64),
            };
            section.global(
                wasm_encoder::GlobalType {
                    val_type: *ty,
                    mutable: true,
                    shared: false,
                },
                &init,
            );
        }
        rewrite.set(&section);
    }
    // Exports: memory exports all name memory 0 (others were refused).
    // Nothing to re-encode: memory 0 keeps index 0.

    // Start.
    if let Some(start) = start_fn {
        rewrite.set(&wasm_encoder::StartSection {
            function_index: start,
        });
    }
    // Data count: needed once segments are initialised by code.
    if start_fn.is_some() && rewrite.find(ids::DATA_COUNT).is_none() {
        rewrite.set(&wasm_encoder::DataCountSection {
            count: info.data_segments.len() as u32,
        });
    }
    // Code.
    let code_index = rewrite.find(ids::CODE);
    if code_index.is_some() || !new_funcs.is_empty() {
        let mut section = wasm_encoder::CodeSection::new();
        if let Some(index) = code_index {
            let reader = wasmparser::CodeSectionReader::new(rewrite.reader(index)).map_err(perr)?;
            for (i, body) in reader.into_iter().enumerate() {
                let body = body.map_err(perr)?;
                let ty = module.func_types[i];
                let params = module
                    .types
                    .get(ty as usize)
                    .cloned()
                    .flatten()
                    .unwrap_or(0);
                let f = rewrite_body(&layout, body, params).map_err(|e| match e {
                    BodyError::Parse(e) => perr(e),
                    BodyError::Other(e) => e,
                })?;
                section.function(&f);
            }
        }
        for m in &helper_order {
            section.function(&grow_helper(&layout, *m));
        }
        if let Some(_start) = start_fn {
            section.function(&start_function(
                &layout,
                &info,
                &deferred,
                module.start,
                input,
            )?);
        }
        rewrite.set(&section);
    }
    // Data.
    if let Some(index) = rewrite.find(ids::DATA) {
        let reader = wasmparser::DataSectionReader::new(rewrite.reader(index)).map_err(perr)?;
        let mut section = wasm_encoder::DataSection::new();
        for (i, data) in reader.into_iter().enumerate() {
            let data = data.map_err(perr)?;
            let segment = &info.data_segments[i];
            match data.kind {
                wasmparser::DataKind::Passive => {
                    section.passive(data.data.iter().copied());
                }
                wasmparser::DataKind::Active { memory_index, .. } => {
                    if deferred.contains(&(i as u32)) {
                        section.passive(data.data.iter().copied());
                    } else {
                        let plan = layout.plan(memory_index);
                        let value = segment
                            .offset
                            .as_ref()
                            .and_then(Offset::known_value)
                            .expect("kept segments have a known offset");
                        let base = match plan.base {
                            Base::Const(b) | Base::Global(_, b) => b,
                        };
                        let at = value + base;
                        let offset = if layout.c64 {
                            ConstExpr::i64_const(at as i64)
                        } else {
                            ConstExpr::i32_const(at as u32 as i32)
                        };
                        section.active(0, &offset, data.data.iter().copied());
                    }
                }
            }
        }
        rewrite.replace(index, &section);
    }
    let output = rewrite.finish(output_features(), "lower multi-memory")?;

    let mut notes = Vec::new();
    let m0 = &info.memories[0];
    let others_bytes: u64 = layout
        .plans
        .iter()
        .skip(1)
        .map(|p| match p.placement {
            Placement::Reserved => p.max.unwrap_or(p.min),
            _ => p.min,
        })
        .sum::<u64>()
        * layout.page_size;
    if !m0.exports.is_empty() {
        let size0 = if memory0_imported {
            "its current size".to_string()
        } else {
            format!("{} bytes at start", m0.min_pages * layout.page_size)
        };
        notes.push(format!(
            "memory 0 is exported as the combined memory: the host sees memory 0's bytes at the same addresses (0 to memory 0's size, {size0}), but a larger buffer: the other memories follow ({others_bytes} bytes at start); the host must not write beyond memory 0's size, must not grow the memory, and must take memory 0's size from the module (memory.size inside it is exact), not from the buffer's length"
        ));
    }
    if let Some(pages) = layout.import_grow_pages {
        notes.push(format!(
            "memory 0 is imported with its own type ({}): the module grows the host's memory by {pages} pages at instantiation to hold the other memories after memory 0's bytes (instantiation traps if it cannot); the host sees memory 0's bytes at the same addresses, must let the memory grow, must not grow it itself, and must not share it with another instance that uses the same addresses",
            match m0.max_pages {
                Some(max) => format!("min {} max {max} pages", m0.min_pages),
                None => format!("min {} pages", m0.min_pages),
            }
        ));
    }
    if !layout.checked {
        notes.push(
            "unchecked: out-of-bounds accesses may read or write other memories; do not use on untrusted code"
                .into(),
        );
    }
    let report = LowerReport {
        lowered: true,
        checked: layout.checked,
        combined: Some(CombinedMemory {
            memory64: layout.c64,
            shared: layout.shared,
            page_size: layout.page_size,
            min_pages: layout.min_pages,
            max_pages: layout.max_pages,
            imported: memory0_imported,
            exports: info.memories[0].exports.clone(),
        }),
        memories: layout
            .plans
            .iter()
            .map(|p| MemoryLayout {
                memory: p.index,
                memory64: p.memory64,
                shared: p.shared,
                min_pages: p.min,
                max_pages: p.max,
                placement: p.placement,
                base: match p.base {
                    Base::Const(b) | Base::Global(_, b) => b,
                },
                reserved_bytes: (p.placement == Placement::Reserved)
                    .then(|| p.max.unwrap_or(0) * layout.page_size),
                can_move: matches!(p.base, Base::Global(..)),
                instructions: p.uses,
            })
            .collect(),
        deferred_segments: deferred,
        host_notes: notes,
    };
    Ok((output, report))
}

fn type_slot(
    types: &mut Vec<(Vec<ValType>, Vec<ValType>)>,
    params: Vec<ValType>,
    results: Vec<ValType>,
) -> u32 {
    let key = (params, results);
    if let Some(i) = types.iter().position(|t| *t == key) {
        return i as u32;
    }
    types.push(key);
    types.len() as u32 - 1
}

/// Choose each memory's slot, or refuse.
fn plan_layout(info: &ModuleInfo, options: &LowerOptions) -> Result<Layout> {
    let memories = &info.memories;
    let page_size = memories[0].page_size;
    if let Some(m) = memories.iter().find(|m| m.page_size != page_size) {
        return Err(Error::Refused(format!(
            "memory {} has a page size of {} bytes but memory 0 has {} bytes: memories with different page sizes cannot share one memory",
            m.index, m.page_size, page_size
        )));
    }
    for m in memories.iter().skip(1) {
        if let Some(import) = &m.import {
            return Err(Error::Refused(format!(
                "memory {} is imported (\"{}\" \"{}\"): only memory 0 can stay at the same addresses for the host, so only memory 0 may be imported",
                m.index, import.module, import.name
            )));
        }
        if let Some(name) = m.exports.first() {
            return Err(Error::Refused(format!(
                "memory {} is exported as \"{}\": only memory 0 can stay at the same addresses for the host, so only memory 0 may be exported",
                m.index, name
            )));
        }
    }
    if let Some(m) = memories.iter().find(|m| m.instructions.discard > 0) {
        return Err(Error::Refused(format!(
            "memory {} uses memory.discard, which the pass does not lower",
            m.index
        )));
    }
    let atomics = memories.iter().any(|m| m.instructions.atomics > 0);
    if atomics && page_size < 16 {
        return Err(Error::Refused(format!(
            "the module uses atomics and a page size of {page_size} bytes: memory bases could break the alignment checks of atomics"
        )));
    }
    let c64 = memories.iter().any(|m| m.memory64);
    let shared = memories.iter().any(|m| m.shared);
    let m0 = &memories[0];
    let pinned = m0.import.is_some() || !m0.exports.is_empty();
    if pinned && m0.shared {
        return Err(Error::Refused(format!(
            "memory 0 is a shared memory that is {}: other instances could grow it behind the module's back, and its size in the combined memory could not follow",
            if m0.import.is_some() { "imported" } else { "exported" }
        )));
    }
    if pinned && shared && m0.import.is_some() {
        return Err(Error::Refused(
            "memory 0 is imported and another memory is shared: the combined memory would have to be imported as shared".into(),
        ));
    }
    if let Some(import) = &m0.import {
        if c64 && !m0.memory64 {
            let other = memories.iter().find(|m| m.memory64).expect("c64");
            return Err(Error::Refused(format!(
                "memory 0 is an imported memory32 (\"{}\" \"{}\") but memory {} is memory64: the combined memory would be memory64, which the host's memory32 cannot be",
                import.module, import.name, other.index
            )));
        }
        let others: u128 = memories.iter().skip(1).map(|m| m.min_pages as u128).sum();
        if let Some(max) = m0.max_pages {
            if m0.min_pages as u128 + others > max as u128 {
                return Err(Error::Refused(format!(
                    "memory 0 is imported (\"{}\" \"{}\") with a maximum of {max} pages: the other memories need {others} pages in it beyond memory 0's {} pages, which can never fit",
                    import.module, import.name, m0.min_pages
                )));
            }
        }
    }
    let page_log2 = page_size.trailing_zeros();
    let c_space: u128 = if c64 { 1 << 64 } else { 1 << 32 };
    let budget: u128 = c_space.min(1 << 32);
    let uses = |i: usize| memories[i].instructions.total();

    let mut plans: Vec<Plan> = memories
        .iter()
        .map(|m| Plan {
            index: m.index,
            memory64: m.memory64,
            shared: m.shared,
            min: m.min_pages,
            max: m.max_pages,
            limit_pages: m
                .max_pages
                .unwrap_or_else(|| m.address_space_pages().min(u64::MAX as u128) as u64),
            placement: Placement::Dynamic,
            slot: 0,
            base: Base::Const(0),
            size: Size::Const(0),
            limit_bytes: 0,
            grow_fn: None,
            uses: uses(m.index as usize),
        })
        .collect();

    let mut rest: Vec<usize> = (0..memories.len())
        .filter(|&i| !(pinned && i == 0))
        .collect();
    // The last slot: the most-used memory among those without a maximum,
    // else the most-used memory (ties: the lowest index).
    let unbounded: Vec<usize> = rest
        .iter()
        .copied()
        .filter(|&i| memories[i].max_pages.is_none())
        .collect();
    let pool = if unbounded.is_empty() {
        rest.clone()
    } else {
        unbounded
    };
    let last = *pool
        .iter()
        .max_by(|&&a, &&b| uses(a).cmp(&uses(b)).then(b.cmp(&a)))
        .expect("at least two memories");
    rest.retain(|&i| i != last);
    // Shared first, then by index.
    rest.sort_by_key(|&i| (!memories[i].shared, i));
    let min_bytes = |i: usize| memories[i].min_pages as u128 * page_size as u128;
    let mut order: Vec<usize> = Vec::new();
    let mut committed: u128 = 0;
    // Bytes still needed by memories not decided yet (their minimum).
    let mut pending: u128 = (0..memories.len()).map(min_bytes).sum();
    let imported0 = m0.import.is_some();
    let mut decide = |i: usize, plans: &mut Vec<Plan>, order: &mut Vec<usize>| {
        pending -= min_bytes(i);
        let reserve = memories[i].max_pages.map(|m| m as u128 * page_size as u128);
        match reserve {
            // An imported memory 0's size is the host's, known at
            // instantiation only: it cannot be reserved.
            Some(r) if !(i == 0 && imported0) && committed + r + pending <= budget => {
                plans[i].placement = Placement::Reserved;
                committed += r;
            }
            _ => {
                plans[i].placement = Placement::Dynamic;
                committed += min_bytes(i);
            }
        }
        order.push(i);
    };
    if pinned {
        decide(0, &mut plans, &mut order);
    }
    let mut reserved = Vec::new();
    let mut dynamic = Vec::new();
    for &i in &rest {
        let mut one = Vec::new();
        decide(i, &mut plans, &mut one);
        if plans[i].placement == Placement::Reserved {
            reserved.push(i);
        } else {
            dynamic.push(i);
        }
    }
    order.extend(reserved);
    order.extend(dynamic);
    order.push(last);
    plans[last].placement = Placement::Last;
    let total = committed + min_bytes(last);
    if total > c_space || total / page_size as u128 > u64::MAX as u128 {
        return Err(Error::Refused(format!(
            "the memories' initial sizes ({total} bytes) do not fit in one {} memory",
            if c64 { "memory64" } else { "memory32" }
        )));
    }
    for (slot, &i) in order.iter().enumerate() {
        plans[i].slot = slot;
    }
    let space_pages = c_space / page_size as u128;
    let min_pages = (total / page_size as u128) as u64;
    let all_bounded = memories.iter().all(|m| m.max_pages.is_some());
    let max_pages = if all_bounded {
        let sum: u128 = memories.iter().map(|m| m.max_pages.unwrap() as u128).sum();
        Some(sum.min(space_pages).max(min_pages as u128) as u64)
    } else if shared {
        Some(space_pages.min(65536).max(min_pages as u128) as u64)
    } else {
        None
    };
    let (min_pages, max_pages) = if m0.import.is_some() {
        // The import keeps memory 0's declared type, so linking succeeds
        // exactly when the original's does; the generated start function
        // grows it by the other memories' pages.
        (m0.min_pages, m0.max_pages)
    } else {
        (min_pages, max_pages)
    };
    Ok(Layout {
        plans,
        slots: order.iter().map(|&i| i as u32).collect(),
        import_grow_pages: m0
            .import
            .is_some()
            .then(|| (total / page_size as u128) as u64 - m0.min_pages),
        c64,
        shared,
        page_size,
        page_log2,
        min_pages,
        max_pages,
        checked: options.checked,
    })
}

/// Per memory, the access end (`offset + width`) that the memory's bounds
/// checks use most, weighted by loop nesting (an access inside `d` loops
/// counts `8^d`, up to depth 5), or 0 when the memory has no access. A
/// memory whose size lives in a global keeps its size minus this bias, so
/// that these accesses compare the address with the global unchanged.
fn access_biases(input: &[u8], layout: &Layout) -> Result<Vec<u64>> {
    let perr = |e: wasmparser::BinaryReaderError| Error::from_parser(input, &e);
    let mut weights: Vec<std::collections::HashMap<u64, u64>> =
        vec![Default::default(); layout.plans.len()];
    // Only memories whose size lives in a global need a bias.
    let sized = |p: &Plan| p.placement != Placement::Last && p.max != Some(p.min);
    if !layout.plans.iter().any(sized) {
        return Ok(vec![0; layout.plans.len()]);
    }
    for payload in wasmparser::Parser::new(0).parse_all(input) {
        let wasmparser::Payload::CodeSectionEntry(body) = payload.map_err(perr)? else {
            continue;
        };
        // Innermost first: true for a loop.
        let mut blocks: Vec<bool> = Vec::new();
        let mut loops = 0u32;
        let mut reader = body.get_operators_reader().map_err(perr)?;
        while !reader.eof() {
            let op = reader.read().map_err(perr)?;
            match op {
                Operator::Block { .. }
                | Operator::If { .. }
                | Operator::Try { .. }
                | Operator::TryTable { .. } => blocks.push(false),
                Operator::Loop { .. } => {
                    blocks.push(true);
                    loops += 1;
                }
                Operator::End => {
                    if blocks.pop() == Some(true) {
                        loops -= 1;
                    }
                }
                ref op => {
                    if let Some((memarg, _)) = access_operands(op) {
                        let end = memarg.offset as u128 + (1u128 << memarg.max_align);
                        let plan = layout.plan(memarg.memory);
                        if end <= plan.limit_pages as u128 * layout.page_size as u128 {
                            *weights[memarg.memory as usize]
                                .entry(end as u64)
                                .or_default() += 1u64 << (3 * loops.min(5));
                        }
                    }
                }
            }
        }
    }
    Ok(weights
        .into_iter()
        .map(|w| {
            w.into_iter()
                .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
                .map_or(0, |(end, _)| end)
        })
        .collect())
}

/// Active segments that the start function must apply: from the first one
/// whose offset is unknown or that does not fit, all later active ones.
fn plan_segments(info: &ModuleInfo, layout: &Layout) -> Vec<u32> {
    let mut deferred = Vec::new();
    let mut deferring = false;
    for segment in &info.data_segments {
        let Some(memory) = segment.memory else {
            continue;
        };
        // With an imported memory 0, the other memories' bases are known
        // only once the start function has grown the host's memory.
        if layout.import_grow_pages.is_some() && memory != 0 {
            deferring = true;
        }
        if !deferring {
            let plan = layout.plan(memory);
            let fits = segment
                .offset
                .as_ref()
                .and_then(Offset::known_value)
                .is_some_and(|v| {
                    v as u128 + segment.len as u128 <= plan.min as u128 * layout.page_size as u128
                });
            deferring = !fits;
        }
        if deferring {
            deferred.push(segment.index);
        }
    }
    deferred
}

/// Facts about the module's functions and types.
struct ModuleParts {
    /// Parameter count per type index (`None` for non-function types).
    types: Vec<Option<u32>>,
    type_count: u32,
    imported_funcs: u32,
    func_types: Vec<u32>,
    start: Option<u32>,
}

impl ModuleParts {
    fn read(input: &[u8]) -> Result<ModuleParts> {
        let err = |e: wasmparser::BinaryReaderError| Error::from_parser(input, &e);
        let mut parts = ModuleParts {
            types: Vec::new(),
            type_count: 0,
            imported_funcs: 0,
            func_types: Vec::new(),
            start: None,
        };
        for payload in wasmparser::Parser::new(0).parse_all(input) {
            match payload.map_err(err)? {
                wasmparser::Payload::TypeSection(reader) => {
                    for group in reader {
                        for ty in group.map_err(err)?.into_types() {
                            parts.types.push(match &ty.composite_type.inner {
                                wasmparser::CompositeInnerType::Func(f) => {
                                    Some(f.params().len() as u32)
                                }
                                _ => None,
                            });
                        }
                    }
                }
                wasmparser::Payload::ImportSection(reader) => {
                    for import in reader.into_imports() {
                        if matches!(
                            import.map_err(err)?.ty,
                            wasmparser::TypeRef::Func(_) | wasmparser::TypeRef::FuncExact(_)
                        ) {
                            parts.imported_funcs += 1;
                        }
                    }
                }
                wasmparser::Payload::FunctionSection(reader) => {
                    for ty in reader {
                        parts.func_types.push(ty.map_err(err)?);
                    }
                }
                wasmparser::Payload::StartSection { func, .. } => parts.start = Some(func),
                _ => {}
            }
        }
        parts.type_count = parts.types.len() as u32;
        Ok(parts)
    }

    fn func_count(&self) -> u32 {
        self.imported_funcs + self.func_types.len() as u32
    }
}

/// Re-encodes every memory type as the combined memory's type.
struct CombinedTypeReencoder(wasm_encoder::MemoryType);

impl Reencode for CombinedTypeReencoder {
    type Error = Infallible;

    fn memory_type(
        &mut self,
        _ty: wasmparser::MemoryType,
    ) -> std::result::Result<wasm_encoder::MemoryType, wasm_encoder::reencode::Error<Self::Error>>
    {
        Ok(self.0)
    }
}

/// Re-encodes instructions for the combined memory: memory index 0 and,
/// when set, a new static offset.
struct InstrReencoder {
    offset: Option<u64>,
}

impl Reencode for InstrReencoder {
    type Error = Infallible;

    fn memory_index(
        &mut self,
        _memory: u32,
    ) -> std::result::Result<u32, wasm_encoder::reencode::Error<Self::Error>> {
        Ok(0)
    }

    fn mem_arg(
        &mut self,
        arg: wasmparser::MemArg,
    ) -> std::result::Result<wasm_encoder::MemArg, wasm_encoder::reencode::Error<Self::Error>> {
        Ok(wasm_encoder::MemArg {
            offset: self.offset.unwrap_or(arg.offset),
            align: arg.align.into(),
            memory_index: 0,
        })
    }
}

enum BodyError {
    Parse(wasmparser::BinaryReaderError),
    Other(Error),
}

impl From<wasmparser::BinaryReaderError> for BodyError {
    fn from(e: wasmparser::BinaryReaderError) -> Self {
        BodyError::Parse(e)
    }
}

/// The operand types an access pushes after its address, in push order.
fn access_operands(op: &Operator<'_>) -> Option<(wasmparser::MemArg, &'static [ValType])> {
    use Operator::*;
    use ValType::{F32, F64, I32, I64, V128};
    Some(match *op {
        I32Load { memarg }
        | I64Load { memarg }
        | F32Load { memarg }
        | F64Load { memarg }
        | I32Load8S { memarg }
        | I32Load8U { memarg }
        | I32Load16S { memarg }
        | I32Load16U { memarg }
        | I64Load8S { memarg }
        | I64Load8U { memarg }
        | I64Load16S { memarg }
        | I64Load16U { memarg }
        | I64Load32S { memarg }
        | I64Load32U { memarg }
        | I32AtomicLoad { memarg }
        | I64AtomicLoad { memarg }
        | I32AtomicLoad8U { memarg }
        | I32AtomicLoad16U { memarg }
        | I64AtomicLoad8U { memarg }
        | I64AtomicLoad16U { memarg }
        | I64AtomicLoad32U { memarg }
        | V128Load { memarg }
        | V128Load8x8S { memarg }
        | V128Load8x8U { memarg }
        | V128Load16x4S { memarg }
        | V128Load16x4U { memarg }
        | V128Load32x2S { memarg }
        | V128Load32x2U { memarg }
        | V128Load8Splat { memarg }
        | V128Load16Splat { memarg }
        | V128Load32Splat { memarg }
        | V128Load64Splat { memarg }
        | V128Load32Zero { memarg }
        | V128Load64Zero { memarg } => (memarg, &[]),
        I32Store { memarg }
        | I32Store8 { memarg }
        | I32Store16 { memarg }
        | I32AtomicStore { memarg }
        | I32AtomicStore8 { memarg }
        | I32AtomicStore16 { memarg }
        | I32AtomicRmwAdd { memarg }
        | I32AtomicRmw8AddU { memarg }
        | I32AtomicRmw16AddU { memarg }
        | I32AtomicRmwSub { memarg }
        | I32AtomicRmw8SubU { memarg }
        | I32AtomicRmw16SubU { memarg }
        | I32AtomicRmwAnd { memarg }
        | I32AtomicRmw8AndU { memarg }
        | I32AtomicRmw16AndU { memarg }
        | I32AtomicRmwOr { memarg }
        | I32AtomicRmw8OrU { memarg }
        | I32AtomicRmw16OrU { memarg }
        | I32AtomicRmwXor { memarg }
        | I32AtomicRmw8XorU { memarg }
        | I32AtomicRmw16XorU { memarg }
        | I32AtomicRmwXchg { memarg }
        | I32AtomicRmw8XchgU { memarg }
        | I32AtomicRmw16XchgU { memarg }
        | MemoryAtomicNotify { memarg } => (memarg, &[I32]),
        I64Store { memarg }
        | I64Store8 { memarg }
        | I64Store16 { memarg }
        | I64Store32 { memarg }
        | I64AtomicStore { memarg }
        | I64AtomicStore8 { memarg }
        | I64AtomicStore16 { memarg }
        | I64AtomicStore32 { memarg }
        | I64AtomicRmwAdd { memarg }
        | I64AtomicRmw8AddU { memarg }
        | I64AtomicRmw16AddU { memarg }
        | I64AtomicRmw32AddU { memarg }
        | I64AtomicRmwSub { memarg }
        | I64AtomicRmw8SubU { memarg }
        | I64AtomicRmw16SubU { memarg }
        | I64AtomicRmw32SubU { memarg }
        | I64AtomicRmwAnd { memarg }
        | I64AtomicRmw8AndU { memarg }
        | I64AtomicRmw16AndU { memarg }
        | I64AtomicRmw32AndU { memarg }
        | I64AtomicRmwOr { memarg }
        | I64AtomicRmw8OrU { memarg }
        | I64AtomicRmw16OrU { memarg }
        | I64AtomicRmw32OrU { memarg }
        | I64AtomicRmwXor { memarg }
        | I64AtomicRmw8XorU { memarg }
        | I64AtomicRmw16XorU { memarg }
        | I64AtomicRmw32XorU { memarg }
        | I64AtomicRmwXchg { memarg }
        | I64AtomicRmw8XchgU { memarg }
        | I64AtomicRmw16XchgU { memarg }
        | I64AtomicRmw32XchgU { memarg } => (memarg, &[I64]),
        F32Store { memarg } => (memarg, &[F32]),
        F64Store { memarg } => (memarg, &[F64]),
        V128Store { memarg }
        | V128Load8Lane { memarg, .. }
        | V128Load16Lane { memarg, .. }
        | V128Load32Lane { memarg, .. }
        | V128Load64Lane { memarg, .. }
        | V128Store8Lane { memarg, .. }
        | V128Store16Lane { memarg, .. }
        | V128Store32Lane { memarg, .. }
        | V128Store64Lane { memarg, .. } => (memarg, &[V128]),
        I32AtomicRmwCmpxchg { memarg }
        | I32AtomicRmw8CmpxchgU { memarg }
        | I32AtomicRmw16CmpxchgU { memarg } => (memarg, &[I32, I32]),
        I64AtomicRmwCmpxchg { memarg }
        | I64AtomicRmw8CmpxchgU { memarg }
        | I64AtomicRmw16CmpxchgU { memarg }
        | I64AtomicRmw32CmpxchgU { memarg } => (memarg, &[I64, I64]),
        MemoryAtomicWait32 { memarg } => (memarg, &[I32, I64]),
        MemoryAtomicWait64 { memarg } => (memarg, &[I64, I64]),
        _ => return None,
    })
}

/// Instruction emitter for one function body, with scratch locals.
struct Emitter<'l, 'a> {
    layout: &'l Layout,
    out: Vec<I<'a>>,
    /// Index of the first scratch local.
    scratch_base: u32,
    /// Types of the scratch locals so far.
    scratch: Vec<ValType>,
    /// Scratch locals in use by the current instruction.
    in_use: Vec<bool>,
    /// Scratch locals that hold a value for the whole function.
    fixed: Vec<bool>,
    /// Layout globals cached in fixed locals: (global, local).
    cache: Vec<(u32, u32)>,
}

impl<'a> Emitter<'_, 'a> {
    fn new(layout: &Layout, scratch_base: u32) -> Emitter<'_, 'a> {
        Emitter {
            layout,
            out: Vec::new(),
            scratch_base,
            scratch: Vec::new(),
            in_use: Vec::new(),
            fixed: Vec::new(),
            cache: Vec::new(),
        }
    }

    fn c64(&self) -> bool {
        self.layout.c64
    }

    fn emit(&mut self, i: I<'a>) {
        self.out.push(i);
    }

    /// A scratch local of `ty` not used yet by the current instruction.
    fn local(&mut self, ty: ValType) -> u32 {
        for (i, t) in self.scratch.iter().enumerate() {
            if *t == ty && !self.in_use[i] {
                self.in_use[i] = true;
                return self.scratch_base + i as u32;
            }
        }
        self.scratch.push(ty);
        self.in_use.push(true);
        self.fixed.push(false);
        self.scratch_base + self.scratch.len() as u32 - 1
    }

    fn release_all(&mut self) {
        for (u, f) in self.in_use.iter_mut().zip(&self.fixed) {
            *u = *f;
        }
    }

    /// Cache the layout globals `globals` (of the types given) in locals:
    /// load them now (the function's entry) and after every call, so
    /// that accesses read a local instead of the global. Only the grow
    /// helpers write these globals, and they run only inside calls.
    fn cache_globals(&mut self, globals: &[(u32, ValType)]) {
        for &(g, ty) in globals {
            self.scratch.push(ty);
            self.in_use.push(true);
            self.fixed.push(true);
            let l = self.scratch_base + self.scratch.len() as u32 - 1;
            self.cache.push((g, l));
        }
        self.reload_cache();
    }

    fn reload_cache(&mut self) {
        for i in 0..self.cache.len() {
            let (g, l) = self.cache[i];
            self.emit(I::GlobalGet(g));
            self.emit(I::LocalSet(l));
        }
    }

    /// Read a layout global, from its cache local when it has one.
    fn global_get(&mut self, g: u32) {
        match self.cache.iter().find(|(cg, _)| *cg == g) {
            Some(&(_, l)) => self.emit(I::LocalGet(l)),
            None => self.emit(I::GlobalGet(g)),
        }
    }

    /// Push the memory's current size in bytes as `i64`.
    fn size_bytes(&mut self, plan: &Plan) {
        match plan.size {
            Size::Const(b) => self.emit(I::I64Const(b as i64)),
            Size::Global { global, bias } => {
                self.global_get(global);
                if bias != 0 {
                    self.emit(I::I64Const(bias as i64));
                    self.emit(I::I64Add);
                }
            }
            Size::Derived => {
                self.emit(I::MemorySize(0));
                if !self.c64() {
                    self.emit(I::I64ExtendI32U);
                }
                self.emit(I::I64Const(self.layout.page_log2 as i64));
                self.emit(I::I64Shl);
                match plan.base {
                    Base::Const(0) => {}
                    Base::Const(b) => {
                        self.emit(I::I64Const(b as i64));
                        self.emit(I::I64Sub);
                    }
                    Base::Global(g, _) => {
                        self.global_get(g);
                        if !self.c64() {
                            self.emit(I::I64ExtendI32U);
                        }
                        self.emit(I::I64Sub);
                    }
                }
            }
        }
    }

    /// Push local `a` (the memory's index type) widened to `i64`.
    fn get_i64(&mut self, local: u32, is64: bool) {
        self.emit(I::LocalGet(local));
        if !is64 {
            self.emit(I::I64ExtendI32U);
        }
    }

    /// Trap unless `addr + len <= size` in exact arithmetic. `addr` and
    /// `len` are locals of width `addr64` / `len64`, or `len` a constant.
    fn range_check(&mut self, plan: &Plan, addr: u32, addr64: bool, len: Len) {
        let no_overflow = !addr64
            && match len {
                Len::Const(_) => true,
                Len::Local(_, l64) => !l64,
            };
        if let (false, Len::Const(end)) = (addr64, len) {
            // A memory32 access: trap when `addr > size - end`, compared
            // as signed i64 (`addr` < 2^32 zero-extended, `size` <= 2^32,
            // `end` <= 2^33, so neither side wraps and a negative limit,
            // `size < end`, traps every address). With a size global
            // holding `size - bias`: `addr + (end - bias) > global`, a
            // single compare for the accesses whose end is the bias.
            self.get_i64(addr, addr64);
            match plan.size {
                Size::Const(s) => self.emit(I::I64Const(s as i64 - end as i64)),
                Size::Global { global, bias } => {
                    // addr + (end - bias) > size - bias, the global.
                    if end != bias {
                        self.emit(I::I64Const(end.wrapping_sub(bias) as i64));
                        self.emit(I::I64Add);
                    }
                    self.global_get(global);
                }
                Size::Derived => {
                    self.size_bytes(plan);
                    self.emit(I::I64Const(end as i64));
                    self.emit(I::I64Sub);
                }
            }
            self.emit(I::I64GtS);
        } else if no_overflow {
            // Both fit in 33 bits: the sum cannot wrap in i64.
            self.get_i64(addr, addr64);
            self.push_len(len);
            self.emit(I::I64Add);
            self.size_bytes(plan);
            self.emit(I::I64GtU);
        } else {
            // size < len || addr > size - len
            let len_small = matches!(len, Len::Const(c) if (c as u128) <= plan.min as u128 * self.layout.page_size as u128);
            self.get_i64(addr, addr64);
            match (plan.size, len) {
                // size - c = global + (bias - c) modulo 2^64: the global
                // itself when c is the bias (a wrapped value when size < c
                // is caught by the `size < len` half below).
                (Size::Global { global, bias }, Len::Const(c)) => {
                    self.global_get(global);
                    if bias != c {
                        self.emit(I::I64Const(bias.wrapping_sub(c) as i64));
                        self.emit(I::I64Add);
                    }
                }
                _ => {
                    self.size_bytes(plan);
                    self.push_len(len);
                    self.emit(I::I64Sub);
                }
            }
            self.emit(I::I64GtU);
            if !len_small {
                self.size_bytes(plan);
                self.push_len(len);
                self.emit(I::I64LtU);
                self.emit(I::I32Or);
            }
        }
        self.trap_if();
    }

    fn push_len(&mut self, len: Len) {
        match len {
            Len::Const(c) => self.emit(I::I64Const(c as i64)),
            Len::Local(l, l64) => self.get_i64(l, l64),
        }
    }

    /// Push the combined address of local `addr` of the memory: base +
    /// addr in the combined index type. Returns the constant to fold into
    /// the static offset instead (a constant base).
    fn combined_address(&mut self, plan: &Plan, addr: u32) -> u64 {
        self.emit(I::LocalGet(addr));
        if self.c64() && !plan.memory64 {
            self.emit(I::I64ExtendI32U);
        }
        match plan.base {
            Base::Const(b) => b,
            Base::Global(g, _) => {
                self.global_get(g);
                self.emit(if self.c64() { I::I64Add } else { I::I32Add });
                0
            }
        }
    }

    /// Push the combined address of an access to the last slot, trapping
    /// when `base + addr` wraps around the combined index type (then `addr`
    /// is beyond the memory's size, which is at most the combined size
    /// minus the base). Returns the constant base to fold into the static
    /// offset. Without a wrap, the combined access `base + addr + offset`
    /// is in bounds of the combined memory exactly when `addr + offset +
    /// width <= combined size - base`, the memory's own size.
    fn last_slot_address(&mut self, plan: &Plan, addr: u32) -> u64 {
        let Base::Global(g, _) = plan.base else {
            return self.combined_address(plan, addr);
        };
        // The largest base: every earlier slot at its largest size.
        let max_base: u128 = self.layout.slots[..plan.slot]
            .iter()
            .map(|&m| {
                let p = self.layout.plan(m);
                p.limit_pages as u128 * self.layout.page_size as u128
            })
            .sum();
        let max_addr: u128 = if plan.memory64 {
            u64::MAX as u128
        } else {
            u32::MAX as u128
        };
        let space: u128 = if self.c64() { 1 << 64 } else { 1 << 32 };
        self.combined_address(plan, addr);
        if max_base + max_addr >= space {
            let c_ty = addr_ty(self.c64());
            let sum = self.local(c_ty);
            self.emit(I::LocalTee(sum));
            self.global_get(g);
            self.emit(if self.c64() { I::I64LtU } else { I::I32LtU });
            self.trap_if();
            self.emit(I::LocalGet(sum));
        }
        0
    }

    /// Trap (out of bounds) when the `i32` on the stack is not zero.
    fn trap_if(&mut self) {
        self.emit(I::If(BlockType::Empty));
        self.trap_oob();
        // Never reached; it ends the block in a trap, so the engine keeps
        // the block out of the hot path (and knows control stops there).
        self.emit(I::Unreachable);
        self.emit(I::End);
    }

    /// Trap with the engine's own out-of-bounds trap, the original's trap
    /// kind: a 4-byte load at address 0 with the largest static offset, so
    /// it ends beyond any memory of the combined index type (effective
    /// addresses do not wrap). Its offset alone exceeds the largest memory,
    /// so an engine can compile it to an unconditional trap.
    fn trap_oob(&mut self) {
        let (address, offset) = if self.c64() {
            (I::I64Const(0), u64::MAX)
        } else {
            (I::I32Const(0), u32::MAX as u64)
        };
        self.emit(address);
        self.emit(I::I32Load(wasm_encoder::MemArg {
            offset,
            align: 0,
            memory_index: 0,
        }));
        self.emit(I::Drop);
    }

    /// Push the combined address with a constant base added too.
    fn combined_address_full(&mut self, plan: &Plan, addr: u32) {
        let b = self.combined_address(plan, addr);
        if b != 0 {
            if self.c64() {
                self.emit(I::I64Const(b as i64));
                self.emit(I::I64Add);
            } else {
                self.emit(I::I32Const(b as u32 as i32));
                self.emit(I::I32Add);
            }
        }
    }

    /// Convert local `l` (width `is64`) to the combined index type.
    fn widen_to_combined(&mut self, l: u32, is64: bool) {
        self.emit(I::LocalGet(l));
        if self.c64() && !is64 {
            self.emit(I::I64ExtendI32U);
        }
    }

    /// A load, store, atomic or SIMD access.
    fn access(
        &mut self,
        op: Operator<'a>,
        memarg: wasmparser::MemArg,
        extra: &[ValType],
    ) -> Result<()> {
        let plan = self.layout.plan(memarg.memory).clone();
        let width = 1u64 << memarg.max_align;
        let end = memarg.offset as u128 + width as u128;
        if end > plan.limit_bytes {
            // Never in bounds: the original always traps here.
            self.trap_oob();
            self.emit(I::Unreachable);
            return Ok(());
        }
        let wait = matches!(
            op,
            Operator::MemoryAtomicWait32 { .. } | Operator::MemoryAtomicWait64 { .. }
        );
        let trap_after = wait && !plan.shared && self.layout.shared;
        let free = matches!(plan.base, Base::Const(_)) && plan.placement == Placement::Last;
        let widen = self.c64() && !plan.memory64;
        if free && !widen && !trap_after {
            // The engine's bounds check of the combined memory is exact.
            let b = match plan.base {
                Base::Const(b) => b,
                Base::Global(..) => unreachable!(),
            };
            self.reencode(op, memarg.offset + b)?;
            return Ok(());
        }
        // Park the operands pushed after the address.
        let parked: Vec<(u32, ValType)> = extra.iter().map(|&t| (self.local(t), t)).collect();
        for &(l, _) in parked.iter().rev() {
            self.emit(I::LocalSet(l));
        }
        let a_ty = if plan.memory64 {
            ValType::I64
        } else {
            ValType::I32
        };
        let addr = self.local(a_ty);
        self.emit(I::LocalSet(addr));
        let folded = if self.layout.checked && plan.placement == Placement::Last {
            // The last slot ends where the combined memory ends, so the
            // engine's bounds check of the combined memory is the memory's
            // own upper bound, provided `base + addr` does not wrap.
            self.last_slot_address(&plan, addr)
        } else {
            if self.layout.checked && !free {
                self.range_check(&plan, addr, plan.memory64, Len::Const(end as u64));
            }
            self.combined_address(&plan, addr)
        };
        for &(l, _) in &parked {
            self.emit(I::LocalGet(l));
        }
        if trap_after {
            // The original traps: wait on a non-shared memory (after its
            // bounds and alignment checks, which the access below does).
            self.reencode(op, memarg.offset + folded)?;
            self.emit(I::Unreachable);
            return Ok(());
        }
        let offset = memarg.offset + folded;
        if !self.c64() && offset > u32::MAX as u64 {
            // Unchecked mode only: the combined access is out of bounds.
            self.trap_oob();
            self.emit(I::Unreachable);
            return Ok(());
        }
        self.reencode(op, offset)
    }

    fn reencode(&mut self, op: Operator<'a>, offset: u64) -> Result<()> {
        let i = InstrReencoder {
            offset: Some(offset),
        }
        .instruction(op)
        .map_err(|e| Error::Internal(format!("re-encoding failed: {e}")))?;
        self.emit(i);
        Ok(())
    }

    fn memory_size(&mut self, memory: u32) {
        let plan = self.layout.plan(memory).clone();
        self.size_bytes(&plan);
        self.emit(I::I64Const(self.layout.page_log2 as i64));
        self.emit(I::I64ShrU);
        if !plan.memory64 {
            self.emit(I::I32WrapI64);
        }
    }

    fn memory_fill(&mut self, memory: u32) {
        let plan = self.layout.plan(memory).clone();
        let t = addr_ty(plan.memory64);
        let n = self.local(t);
        let v = self.local(ValType::I32);
        let d = self.local(t);
        self.emit(I::LocalSet(n));
        self.emit(I::LocalSet(v));
        self.emit(I::LocalSet(d));
        if self.layout.checked {
            self.range_check(&plan, d, plan.memory64, Len::Local(n, plan.memory64));
        }
        self.combined_address_full(&plan, d);
        self.emit(I::LocalGet(v));
        self.widen_to_combined(n, plan.memory64);
        self.emit(I::MemoryFill(0));
    }

    fn memory_copy(&mut self, dst: u32, src: u32) {
        let dp = self.layout.plan(dst).clone();
        let sp = self.layout.plan(src).clone();
        let n64 = dp.memory64 && sp.memory64;
        let n = self.local(addr_ty(n64));
        let s = self.local(addr_ty(sp.memory64));
        let d = self.local(addr_ty(dp.memory64));
        self.emit(I::LocalSet(n));
        self.emit(I::LocalSet(s));
        self.emit(I::LocalSet(d));
        if self.layout.checked {
            self.range_check(&dp, d, dp.memory64, Len::Local(n, n64));
            self.range_check(&sp, s, sp.memory64, Len::Local(n, n64));
        }
        self.combined_address_full(&dp, d);
        self.combined_address_full(&sp, s);
        self.widen_to_combined(n, n64);
        self.emit(I::MemoryCopy {
            src_mem: 0,
            dst_mem: 0,
        });
    }

    fn memory_init(&mut self, memory: u32, data: u32) {
        let plan = self.layout.plan(memory).clone();
        let n = self.local(ValType::I32);
        let s = self.local(ValType::I32);
        let d = self.local(addr_ty(plan.memory64));
        self.emit(I::LocalSet(n));
        self.emit(I::LocalSet(s));
        self.emit(I::LocalSet(d));
        if self.layout.checked {
            self.range_check(&plan, d, plan.memory64, Len::Local(n, false));
        }
        self.combined_address_full(&plan, d);
        self.emit(I::LocalGet(s));
        self.emit(I::LocalGet(n));
        self.emit(I::MemoryInit {
            mem: 0,
            data_index: data,
        });
    }

    /// Rewrite one instruction.
    fn instruction(&mut self, op: Operator<'a>) -> Result<()> {
        self.release_all();
        if let Some((memarg, extra)) = access_operands(&op) {
            return self.access(op, memarg, extra);
        }
        match op {
            Operator::MemorySize { mem } => self.memory_size(mem),
            Operator::MemoryGrow { mem } => {
                let f = self.layout.plan(mem).grow_fn.expect("grow helper planned");
                self.emit(I::Call(f));
                self.reload_cache();
            }
            Operator::MemoryFill { mem } => self.memory_fill(mem),
            Operator::MemoryCopy { dst_mem, src_mem } => self.memory_copy(dst_mem, src_mem),
            Operator::MemoryInit { mem, data_index } => self.memory_init(mem, data_index),
            Operator::MemoryDiscard { mem } => {
                return Err(Error::Refused(format!(
                    "memory {mem} uses memory.discard, which the pass does not lower"
                )))
            }
            op => {
                let call = matches!(
                    op,
                    Operator::Call { .. }
                        | Operator::CallIndirect { .. }
                        | Operator::CallRef { .. }
                );
                let i = RoundtripReencoder
                    .instruction(op)
                    .map_err(|e| Error::Internal(format!("re-encoding failed: {e}")))?;
                self.emit(i);
                if call {
                    self.reload_cache();
                }
            }
        }
        Ok(())
    }

    fn finish(self, mut locals: Vec<(u32, ValType)>) -> wasm_encoder::Function {
        for t in &self.scratch {
            locals.push((1, *t));
        }
        let mut f = wasm_encoder::Function::new(locals);
        for i in &self.out {
            f.instruction(i);
        }
        f
    }
}

#[derive(Debug, Clone, Copy)]
enum Len {
    Const(u64),
    /// A local and whether it is an `i64`.
    Local(u32, bool),
}

fn addr_ty(is64: bool) -> ValType {
    if is64 {
        ValType::I64
    } else {
        ValType::I32
    }
}

fn rewrite_body(
    layout: &Layout,
    body: wasmparser::FunctionBody<'_>,
    params: u32,
) -> std::result::Result<wasm_encoder::Function, BodyError> {
    let mut locals = Vec::new();
    let mut count = params;
    for pair in body.get_locals_reader()? {
        let (n, ty) = pair?;
        count += n;
        let ty = RoundtripReencoder
            .val_type(ty)
            .map_err(|e| BodyError::Other(Error::Internal(format!("re-encoding failed: {e}"))))?;
        locals.push((n, ty));
    }
    let mut emitter = Emitter::new(layout, count);
    let globals = cacheable_globals(layout, &body)?;
    if !globals.is_empty() {
        emitter.cache_globals(&globals);
    }
    let mut reader = body.get_operators_reader()?;
    while !reader.eof() {
        let op = reader.read()?;
        emitter.instruction(op).map_err(BodyError::Other)?;
    }
    Ok(emitter.finish(locals))
}

/// The layout globals (bases and sizes) of the memories a function body
/// uses, with their types, when it pays and is safe to cache them in
/// locals: empty for bodies without memory instructions, and for bodies
/// that catch exceptions (a callee could grow a memory and then throw, and
/// the handler would see stale locals).
fn cacheable_globals(
    layout: &Layout,
    body: &wasmparser::FunctionBody<'_>,
) -> std::result::Result<Vec<(u32, ValType)>, BodyError> {
    let mut used = vec![false; layout.plans.len()];
    let mut reader = body.get_operators_reader()?;
    while !reader.eof() {
        match reader.read()? {
            Operator::TryTable { .. }
            | Operator::Try { .. }
            | Operator::Catch { .. }
            | Operator::CatchAll
            | Operator::Delegate { .. } => return Ok(Vec::new()),
            Operator::MemorySize { mem }
            | Operator::MemoryFill { mem }
            | Operator::MemoryInit { mem, .. } => used[mem as usize] = true,
            Operator::MemoryCopy { dst_mem, src_mem } => {
                used[dst_mem as usize] = true;
                used[src_mem as usize] = true;
            }
            op => {
                if let Some((memarg, _)) = access_operands(&op) {
                    used[memarg.memory as usize] = true;
                }
            }
        }
    }
    let memories = (0..used.len() as u32).filter(|&m| used[m as usize]);
    let c_ty = if layout.c64 {
        ValType::I64
    } else {
        ValType::I32
    };
    let mut globals = Vec::new();
    for m in memories {
        let plan = layout.plan(m);
        if let Base::Global(g, _) = plan.base {
            globals.push((g, c_ty));
        }
        if let Size::Global { global, .. } = plan.size {
            globals.push((global, ValType::I64));
        }
    }
    Ok(globals)
}

/// `memory.grow` of one memory: `(delta) -> old size or -1`.
fn grow_helper(layout: &Layout, memory: u32) -> wasm_encoder::Function {
    let plan = layout.plan(memory).clone();
    let a64 = plan.memory64;
    // Param 0: delta. Locals: 1 delta64, 2 old pages (i64).
    let mut e = Emitter::new(layout, 1);
    let delta = 0;
    let delta64 = e.local(ValType::I64);
    let old = e.local(ValType::I64);
    let log2 = layout.page_log2 as i64;
    let minus_one = |e: &mut Emitter<'_, '_>| {
        e.emit(if a64 {
            I::I64Const(-1)
        } else {
            I::I32Const(-1)
        });
        e.emit(I::Return);
    };
    e.get_i64(delta, a64);
    e.emit(I::LocalSet(delta64));
    e.size_bytes(&plan);
    e.emit(I::I64Const(log2));
    e.emit(I::I64ShrU);
    e.emit(I::LocalSet(old));
    // delta > limit - old: -1
    e.emit(I::LocalGet(delta64));
    e.emit(I::I64Const(plan.limit_pages as i64));
    e.emit(I::LocalGet(old));
    e.emit(I::I64Sub);
    e.emit(I::I64GtU);
    e.emit(I::If(BlockType::Empty));
    minus_one(&mut e);
    e.emit(I::End);
    let return_old = |e: &mut Emitter<'_, '_>| {
        e.emit(I::LocalGet(old));
        if !a64 {
            e.emit(I::I32WrapI64);
        }
    };
    match plan.placement {
        Placement::Reserved => {
            if let Size::Global { global: g, .. } = plan.size {
                // The global holds size - bias: growing adds the same.
                e.emit(I::GlobalGet(g));
                e.emit(I::LocalGet(delta64));
                e.emit(I::I64Const(log2));
                e.emit(I::I64Shl);
                e.emit(I::I64Add);
                e.emit(I::GlobalSet(g));
            }
            return_old(&mut e);
        }
        Placement::Last => {
            e.emit(I::LocalGet(delta64));
            if !layout.c64 {
                e.emit(I::I32WrapI64);
            }
            e.emit(I::MemoryGrow(0));
            e.emit(if layout.c64 {
                I::I64Const(-1)
            } else {
                I::I32Const(-1)
            });
            e.emit(if layout.c64 { I::I64Eq } else { I::I32Eq });
            e.emit(I::If(BlockType::Empty));
            minus_one(&mut e);
            e.emit(I::End);
            return_old(&mut e);
        }
        Placement::Dynamic => {
            // delta == 0: nothing moves.
            e.emit(I::LocalGet(delta64));
            e.emit(I::I64Eqz);
            e.emit(I::If(BlockType::Empty));
            return_old(&mut e);
            e.emit(I::Return);
            e.emit(I::End);
            let total = e.local(ValType::I64); // old combined size in bytes
            let bytes = e.local(ValType::I64); // delta in bytes
            let tail = e.local(ValType::I64); // base of the next slot
            e.emit(I::LocalGet(delta64));
            if !layout.c64 {
                e.emit(I::I32WrapI64);
            }
            e.emit(I::MemoryGrow(0));
            if !layout.c64 {
                // -1 as i32 becomes 0xffffffff: no real size has that many pages.
                e.emit(I::I64ExtendI32U);
                e.emit(I::LocalTee(total));
                e.emit(I::I64Const(0xffff_ffff));
            } else {
                e.emit(I::LocalTee(total));
                e.emit(I::I64Const(-1));
            }
            e.emit(I::I64Eq);
            e.emit(I::If(BlockType::Empty));
            minus_one(&mut e);
            e.emit(I::End);
            e.emit(I::LocalGet(total));
            e.emit(I::I64Const(log2));
            e.emit(I::I64Shl);
            e.emit(I::LocalSet(total));
            e.emit(I::LocalGet(delta64));
            e.emit(I::I64Const(log2));
            e.emit(I::I64Shl);
            e.emit(I::LocalSet(bytes));
            let next = layout.slots[plan.slot + 1];
            let next_base = match layout.plan(next).base {
                Base::Global(g, _) => g,
                Base::Const(_) => unreachable!("slots after a dynamic slot move"),
            };
            e.emit(I::GlobalGet(next_base));
            if !layout.c64 {
                e.emit(I::I64ExtendI32U);
            }
            e.emit(I::LocalSet(tail));
            // memory.copy(tail + bytes, tail, total - tail)
            let push = |e: &mut Emitter<'_, '_>, l: u32| {
                e.emit(I::LocalGet(l));
                if !layout.c64 {
                    e.emit(I::I32WrapI64);
                }
            };
            e.emit(I::LocalGet(tail));
            e.emit(I::LocalGet(bytes));
            e.emit(I::I64Add);
            if !layout.c64 {
                e.emit(I::I32WrapI64);
            }
            push(&mut e, tail);
            e.emit(I::LocalGet(total));
            e.emit(I::LocalGet(tail));
            e.emit(I::I64Sub);
            if !layout.c64 {
                e.emit(I::I32WrapI64);
            }
            e.emit(I::MemoryCopy {
                src_mem: 0,
                dst_mem: 0,
            });
            // memory.fill(tail, 0, bytes): the grown pages read as zero.
            push(&mut e, tail);
            e.emit(I::I32Const(0));
            push(&mut e, bytes);
            e.emit(I::MemoryFill(0));
            for &later in &layout.slots[plan.slot + 1..] {
                if let Base::Global(g, _) = layout.plan(later).base {
                    e.emit(I::GlobalGet(g));
                    push(&mut e, bytes);
                    e.emit(if layout.c64 { I::I64Add } else { I::I32Add });
                    e.emit(I::GlobalSet(g));
                }
            }
            if let Size::Global { global: g, .. } = plan.size {
                // The global holds size - bias: growing adds the same.
                e.emit(I::GlobalGet(g));
                e.emit(I::LocalGet(bytes));
                e.emit(I::I64Add);
                e.emit(I::GlobalSet(g));
            }
            return_old(&mut e);
        }
    }
    e.emit(I::End);
    e.finish(Vec::new())
}

/// Start of the generated start function when memory 0 is imported: grow
/// the host's memory by `pages` (trap when it cannot), set memory 0's size
/// to the host memory's size `s0` and move every later base up by `s0`
/// minus memory 0's minimum (the bases were planned for the minimum).
fn import_grow(e: &mut Emitter<'_, '_>, layout: &Layout, pages: u64) {
    let plan0 = layout.plan(0).clone();
    let old = e.local(ValType::I64);
    e.emit(if layout.c64 {
        I::I64Const(pages as i64)
    } else {
        I::I32Const(pages as u32 as i32)
    });
    e.emit(I::MemoryGrow(0));
    if layout.c64 {
        e.emit(I::LocalTee(old));
        e.emit(I::I64Const(-1));
    } else {
        // -1 as i32 becomes 0xffffffff: no real size has that many pages.
        e.emit(I::I64ExtendI32U);
        e.emit(I::LocalTee(old));
        e.emit(I::I64Const(0xffff_ffff));
    }
    e.emit(I::I64Eq);
    e.emit(I::If(BlockType::Empty));
    e.emit(I::Unreachable);
    e.emit(I::End);
    e.emit(I::LocalGet(old));
    e.emit(I::I64Const(layout.page_log2 as i64));
    e.emit(I::I64Shl);
    e.emit(I::LocalSet(old));
    if let Size::Global { global, bias } = plan0.size {
        e.emit(I::LocalGet(old));
        if bias != 0 {
            e.emit(I::I64Const(bias as i64));
            e.emit(I::I64Sub);
        }
        e.emit(I::GlobalSet(global));
    }
    let moved = e.local(ValType::I64);
    e.emit(I::LocalGet(old));
    e.emit(I::I64Const((plan0.min * layout.page_size) as i64));
    e.emit(I::I64Sub);
    e.emit(I::LocalSet(moved));
    for &later in &layout.slots[1..] {
        if let Base::Global(g, _) = layout.plan(later).base {
            e.emit(I::GlobalGet(g));
            e.emit(I::LocalGet(moved));
            if !layout.c64 {
                e.emit(I::I32WrapI64);
            }
            e.emit(if layout.c64 { I::I64Add } else { I::I32Add });
            e.emit(I::GlobalSet(g));
        }
    }
    e.release_all();
}

/// The generated start function: apply the deferred segments in order with
/// the original's checks, drop them, then call the original start function.
fn start_function(
    layout: &Layout,
    info: &ModuleInfo,
    deferred: &[u32],
    original_start: Option<u32>,
    input: &[u8],
) -> Result<wasm_encoder::Function> {
    let perr = |e: wasmparser::BinaryReaderError| Error::from_parser(input, &e);
    let mut e = Emitter::new(layout, 0);
    if let Some(pages) = layout.import_grow_pages {
        import_grow(&mut e, layout, pages);
    }
    // Re-read the offset expressions of the deferred segments.
    let mut offsets = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(input) {
        if let wasmparser::Payload::DataSection(reader) = payload.map_err(perr)? {
            for (i, data) in reader.into_iter().enumerate() {
                let data = data.map_err(perr)?;
                if let wasmparser::DataKind::Active {
                    memory_index,
                    offset_expr,
                } = data.kind
                {
                    if deferred.contains(&(i as u32)) {
                        offsets.push((i as u32, memory_index, offset_expr));
                    }
                }
            }
        }
    }
    for (index, memory, expr) in offsets {
        let mut reader = expr.get_operators_reader();
        while !reader.is_end_then_eof() {
            let op = reader.read().map_err(perr)?;
            let i = RoundtripReencoder
                .instruction(op)
                .map_err(|e| Error::Internal(format!("re-encoding failed: {e}")))?;
            e.emit(i);
        }
        let len = info.data_segments[index as usize].len;
        e.emit(I::I32Const(0));
        e.emit(I::I32Const(len as u32 as i32));
        e.release_all();
        e.memory_init(memory, index);
        e.emit(I::DataDrop(index));
    }
    if let Some(start) = original_start {
        e.emit(I::Call(start));
    }
    e.emit(I::End);
    Ok(e.finish(Vec::new()))
}
