//! The memory model of a core module: memories, data segments, layout
//! symbols and per-memory instruction counts, read with `wasmparser`.
//!
//! [`ModuleInfo::read`] expects a module that validates (see
//! [`crate::input::validate`]); on anything else it still returns a clean
//! error rather than panicking. The model is plain data and serialises to the
//! JSON schema documented in `docs/json-schema.md` (see [`SCHEMA_VERSION`]).

use crate::error::{Error, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::ops::Range;
use wasmparser::{
    ConstExpr, DataKind, ExternalKind, KnownCustom, Name, Operator, Parser, Payload, TypeRef,
    ValType, VisitOperator,
};

/// Version of the JSON schema produced by `inspect --json` and friends.
pub const SCHEMA_VERSION: u32 = 1;

/// Default page size: 64 KiB.
pub const DEFAULT_PAGE_SIZE: u64 = 65536;

/// Everything memory-related in a core module.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleInfo {
    /// All memories, imported ones first, in index order.
    pub memories: Vec<MemoryInfo>,
    /// All data segments, in index order.
    pub data_segments: Vec<DataSegment>,
    /// All globals, imported ones first, in index order (only their
    /// memory-relevant facts).
    pub globals: Vec<GlobalInfo>,
    /// Layout symbols found in the module (`__stack_pointer`, `__heap_base`, ...).
    pub layout: Vec<LayoutSymbol>,
    /// The count in the data count section, if the module has one.
    pub data_count: Option<u32>,
    /// Number of `data.drop` instructions.
    pub data_drops: u64,
    /// `false` when read by [`ModuleInfo::read_without_code`]: the
    /// instruction counts, `data_drops` and the segments' `zero_bytes` are
    /// then zero, not counted.
    #[serde(skip)]
    pub instructions_counted: bool,
}

/// Where an imported item comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportName {
    /// Module name of the import.
    pub module: String,
    /// Field name of the import.
    pub name: String,
}

/// One linear memory.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryInfo {
    /// Memory index.
    pub index: u32,
    /// Set when the memory is imported.
    pub import: Option<ImportName>,
    /// Export names of this memory.
    pub exports: Vec<String>,
    /// Name from the name section, if any.
    pub name: Option<String>,
    /// `true` for memory64 (i64 addresses).
    pub memory64: bool,
    /// `true` for a shared memory.
    pub shared: bool,
    /// Page size in bytes (65536 unless the custom-page-sizes proposal is used).
    pub page_size: u64,
    /// Declared minimum (initial) size in pages.
    pub min_pages: u64,
    /// Declared maximum size in pages.
    pub max_pages: Option<u64>,
    /// Instructions that use this memory.
    pub instructions: InstructionCounts,
}

impl MemoryInfo {
    /// Initial size in bytes.
    pub fn min_bytes(&self) -> u128 {
        self.min_pages as u128 * self.page_size as u128
    }

    /// Largest page count the address space allows for this memory.
    pub fn address_space_pages(&self) -> u128 {
        address_space_pages(self.memory64, self.page_size)
    }

    /// `true` when min = max: the memory can never grow.
    pub fn is_fixed(&self) -> bool {
        self.max_pages == Some(self.min_pages)
    }
}

/// Largest page count of a memory: 2^32 bytes for memory32, 2^64 for
/// memory64, and never more than the limits' encoding allows (u32 page
/// counts for memory32, u64 for memory64: with one-byte pages that is one
/// page less than the address space).
pub fn address_space_pages(memory64: bool, page_size: u64) -> u128 {
    let (bytes, encodable): (u128, u128) = if memory64 {
        (1 << 64, u64::MAX as u128)
    } else {
        (1 << 32, u32::MAX as u128)
    };
    (bytes / page_size.max(1) as u128).min(encodable)
}

/// Counts of instructions that use one memory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InstructionCounts {
    /// Plain and SIMD loads (incl. lane loads).
    pub loads: u64,
    /// Plain and SIMD stores (incl. lane stores).
    pub stores: u64,
    /// Atomic loads, stores, rmw, cmpxchg, wait and notify.
    pub atomics: u64,
    /// `memory.size`.
    pub size: u64,
    /// `memory.grow`.
    pub grow: u64,
    /// `memory.fill`.
    pub fill: u64,
    /// `memory.copy` with this memory as source or destination (counted once
    /// per instruction and memory).
    pub copy: u64,
    /// `memory.init` into this memory.
    pub init: u64,
    /// `memory.discard`.
    pub discard: u64,
}

impl InstructionCounts {
    /// All instructions counted.
    pub fn total(&self) -> u64 {
        self.loads
            + self.stores
            + self.atomics
            + self.size
            + self.grow
            + self.fill
            + self.copy
            + self.init
            + self.discard
    }
}

/// The offset expression of an active data segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Offset {
    /// A constant (`i32.const`, `i64.const`, or an extended-const expression
    /// of constants), already wrapped to the memory's address width.
    Const {
        /// The offset.
        value: u64,
    },
    /// `global.get $g`, optionally plus a constant (extended-const).
    Global {
        /// The global's index.
        global: u32,
        /// The constant added to the global (0 for a plain `global.get`).
        addend: i64,
        /// The value at instantiation when the global is defined in the module
        /// with a constant initialiser; `None` for imported globals.
        resolved: Option<u64>,
    },
    /// Any other constant expression (e.g. a product of globals).
    Other,
}

impl Offset {
    /// The offset when it is known without running the module.
    pub fn known_value(&self) -> Option<u64> {
        match self {
            Offset::Const { value } => Some(*value),
            Offset::Global { resolved, .. } => *resolved,
            Offset::Other => None,
        }
    }
}

/// One data segment.
#[derive(Debug, Clone, Serialize)]
pub struct DataSegment {
    /// Segment index.
    pub index: u32,
    /// Name from the name section, if any.
    pub name: Option<String>,
    /// `true` for a passive segment.
    pub passive: bool,
    /// Memory index of an active segment.
    pub memory: Option<u32>,
    /// Offset of an active segment.
    pub offset: Option<Offset>,
    /// Length of the payload in bytes.
    pub len: u64,
    /// Number of zero bytes in the payload (0, not counted, after
    /// [`ModuleInfo::read_without_code`]).
    pub zero_bytes: u64,
    /// Byte range of the payload in the input.
    #[serde(skip)]
    pub payload: Range<usize>,
    /// Byte range of the whole segment (header and payload) in the input.
    #[serde(skip)]
    pub range: Range<usize>,
}

impl DataSegment {
    /// `offset..offset+len` of an active segment whose offset is known.
    pub fn known_extent(&self) -> Option<Range<u128>> {
        let start = self.offset.as_ref()?.known_value()? as u128;
        Some(start..start + self.len as u128)
    }
}

/// The value type of a global, as far as memory layout cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GlobalKind {
    /// `i32`.
    I32,
    /// `i64`.
    I64,
    /// Anything else.
    Other,
}

/// A global, with what the layout needs to know.
#[derive(Debug, Clone, Serialize)]
pub struct GlobalInfo {
    /// Global index.
    pub index: u32,
    /// Value type.
    pub kind: GlobalKind,
    /// `true` when mutable.
    pub mutable: bool,
    /// Set when imported.
    pub import: Option<ImportName>,
    /// Export names.
    pub exports: Vec<String>,
    /// Name from the name section.
    pub name: Option<String>,
    /// Initial value when it is a constant known without running the module.
    pub init: Option<u64>,
}

/// How a layout symbol was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SymbolSource {
    /// An exported global of that name.
    Export,
    /// An imported global of that name.
    Import,
    /// The name section names the global so.
    NameSection,
    /// No name: the first defined global is a mutable integer whose start
    /// value looks like a stack top (wasm-ld's `__stack_pointer` convention).
    Heuristic,
}

/// A global that describes the memory layout.
#[derive(Debug, Clone, Serialize)]
pub struct LayoutSymbol {
    /// Symbol name (e.g. `__heap_base`).
    pub name: String,
    /// Global index.
    pub global: u32,
    /// Initial value, when known.
    pub value: Option<u64>,
    /// How the symbol was identified.
    pub source: SymbolSource,
}

/// The layout symbol names wasm-mem knows.
pub const LAYOUT_SYMBOLS: &[&str] = &[
    "__stack_pointer",
    "__stack_low",
    "__stack_high",
    "__data_end",
    "__heap_base",
    "__heap_end",
    "__global_base",
    "__memory_base",
];

impl ModuleInfo {
    /// Read the model of a core module.
    pub fn read(bytes: &[u8]) -> Result<ModuleInfo> {
        Self::read_with(bytes, true)
    }

    /// Read the model without walking the code or the data bytes: every
    /// instruction count, `data_drops` and every segment's `zero_bytes` stay
    /// zero and `instructions_counted` is `false`. For passes that need only
    /// memories, segments and globals (`pack`), on modules where the walk
    /// over every instruction and the count of zero bytes (4.9 MB of data on
    /// tiktoken.wasm) are most of the reading.
    pub fn read_without_code(bytes: &[u8]) -> Result<ModuleInfo> {
        Self::read_with(bytes, false)
    }

    /// `full`: count instructions, `data.drop`s and zero bytes too.
    fn read_with(bytes: &[u8], full: bool) -> Result<ModuleInfo> {
        let err = |e: wasmparser::BinaryReaderError| Error::from_parser(bytes, &e);
        let mut info = ModuleInfo {
            memories: Vec::new(),
            data_segments: Vec::new(),
            globals: Vec::new(),
            layout: Vec::new(),
            data_count: None,
            data_drops: 0,
            instructions_counted: full,
        };
        let mut global_inits: Vec<Option<ConstExpr<'_>>> = Vec::new();
        let mut data_offsets: Vec<Option<ConstExpr<'_>>> = Vec::new();
        let mut memory_names = BTreeMap::new();
        let mut global_names = BTreeMap::new();
        let mut data_names = BTreeMap::new();
        let mut bodies = Vec::new();
        let mut code_bytes = 0;

        for payload in Parser::new(0).parse_all(bytes) {
            match payload.map_err(err)? {
                Payload::Version {
                    encoding: wasmparser::Encoding::Component,
                    ..
                } => {
                    return Err(Error::Refused(
                        "the input is a WebAssembly component; wasm-mem works on core modules"
                            .into(),
                    ))
                }
                Payload::ImportSection(reader) => {
                    for import in reader.into_imports() {
                        let import = import.map_err(err)?;
                        let name = ImportName {
                            module: import.module.to_string(),
                            name: import.name.to_string(),
                        };
                        match import.ty {
                            TypeRef::Memory(ty) => {
                                info.memories.push(memory_info(
                                    info.memories.len() as u32,
                                    ty,
                                    Some(name),
                                ));
                            }
                            TypeRef::Global(ty) => {
                                info.globals.push(GlobalInfo {
                                    index: info.globals.len() as u32,
                                    kind: global_kind(ty.content_type),
                                    mutable: ty.mutable,
                                    import: Some(name),
                                    exports: Vec::new(),
                                    name: None,
                                    init: None,
                                });
                                global_inits.push(None);
                            }
                            _ => {}
                        }
                    }
                }
                Payload::MemorySection(reader) => {
                    for ty in reader {
                        let ty = ty.map_err(err)?;
                        info.memories
                            .push(memory_info(info.memories.len() as u32, ty, None));
                    }
                }
                Payload::GlobalSection(reader) => {
                    for global in reader {
                        let global = global.map_err(err)?;
                        info.globals.push(GlobalInfo {
                            index: info.globals.len() as u32,
                            kind: global_kind(global.ty.content_type),
                            mutable: global.ty.mutable,
                            import: None,
                            exports: Vec::new(),
                            name: None,
                            init: None,
                        });
                        global_inits.push(Some(global.init_expr));
                    }
                }
                Payload::ExportSection(reader) => {
                    for export in reader {
                        let export = export.map_err(err)?;
                        let list = match export.kind {
                            ExternalKind::Memory => info
                                .memories
                                .get_mut(export.index as usize)
                                .map(|m| &mut m.exports),
                            ExternalKind::Global => info
                                .globals
                                .get_mut(export.index as usize)
                                .map(|g| &mut g.exports),
                            _ => None,
                        };
                        if let Some(list) = list {
                            list.push(export.name.to_string());
                        }
                    }
                }
                Payload::DataCountSection { count, .. } => info.data_count = Some(count),
                Payload::DataSection(reader) => {
                    // Every segment takes at least 2 bytes, so a count that
                    // lies cannot reserve more than the section could hold.
                    let room = (reader.count() as usize).min(reader.range().len() / 2);
                    info.data_segments.reserve(room);
                    data_offsets.reserve(room);
                    for data in reader {
                        let data = data.map_err(err)?;
                        let index = info.data_segments.len() as u32;
                        let payload_start = data.range.end - data.data.len();
                        let zero_bytes = if full { count_zeros(data.data) } else { 0 };
                        let (passive, memory, expr) = match data.kind {
                            DataKind::Passive => (true, None, None),
                            DataKind::Active {
                                memory_index,
                                offset_expr,
                            } => (false, Some(memory_index), Some(offset_expr)),
                        };
                        data_offsets.push(expr);
                        info.data_segments.push(DataSegment {
                            index,
                            name: None,
                            passive,
                            memory,
                            offset: None,
                            len: data.data.len() as u64,
                            zero_bytes,
                            payload: payload_start..data.range.end,
                            range: data.range.clone(),
                        });
                    }
                }
                Payload::CodeSectionEntry(body) if full => {
                    code_bytes += body.range().len();
                    bodies.push(body);
                }
                Payload::CustomSection(reader) => {
                    if let KnownCustom::Name(names) = reader.as_known() {
                        // A malformed name section is ignored, as engines do.
                        for name in names.into_iter().flatten() {
                            let target = match name {
                                Name::Memory(map) => Some((map, &mut memory_names)),
                                Name::Global(map) => Some((map, &mut global_names)),
                                Name::Data(map) => Some((map, &mut data_names)),
                                _ => None,
                            };
                            if let Some((map, target)) = target {
                                for naming in map.into_iter().flatten() {
                                    target.insert(naming.index, naming.name.to_string());
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }

        // Global initial values: constants, possibly through earlier globals.
        for (i, expr) in global_inits.iter().enumerate() {
            let Some(expr) = expr else { continue };
            let wide = info.globals[i].kind == GlobalKind::I64;
            if let Some(Value::Const(v)) = eval_const(expr, &info.globals, wide) {
                info.globals[i].init = Some(v);
            }
        }
        for (index, name) in global_names {
            if let Some(g) = info.globals.get_mut(index as usize) {
                g.name = Some(name);
            }
        }
        for (index, name) in memory_names {
            if let Some(m) = info.memories.get_mut(index as usize) {
                m.name = Some(name);
            }
        }
        for (segment, expr) in info.data_segments.iter_mut().zip(&data_offsets) {
            segment.name = data_names.remove(&segment.index);
            if let (Some(expr), Some(memory)) = (expr, segment.memory) {
                let wide = info
                    .memories
                    .get(memory as usize)
                    .is_some_and(|m| m.memory64);
                segment.offset = Some(match eval_const(expr, &info.globals, wide) {
                    Some(Value::Const(value)) => Offset::Const { value },
                    Some(Value::Global(global, addend)) => Offset::Global {
                        global,
                        addend,
                        resolved: None,
                    },
                    None => Offset::Other,
                });
            }
        }
        // A `global.get` of a defined constant global already folded to a
        // constant in eval_const; keep the global visible to the user instead.
        for (segment, expr) in info.data_segments.iter_mut().zip(&data_offsets) {
            if let (Some(expr), Some(memory)) = (expr, segment.memory) {
                if let Some((global, addend)) = single_global_get(expr) {
                    // Indices are unchecked here (the validator checks
                    // them): an out-of-range one resolves to nothing.
                    let wide = info
                        .memories
                        .get(memory as usize)
                        .is_some_and(|m| m.memory64);
                    let resolved = info
                        .globals
                        .get(global as usize)
                        .and_then(|g| g.init)
                        .map(|v| wrap(v.wrapping_add(addend as u64), wide));
                    segment.offset = Some(Offset::Global {
                        global,
                        addend,
                        resolved,
                    });
                }
            }
        }

        let counter = Counter::count(&bodies, code_bytes).map_err(err)?;
        for (memory, counts) in counter.per_memory {
            if let Some(m) = info.memories.get_mut(memory as usize) {
                m.instructions = counts;
            }
        }
        info.data_drops = counter.data_drops;
        info.layout = find_layout_symbols(&info);
        Ok(info)
    }

    /// The layout symbol of that name, if the module has it.
    pub fn symbol(&self, name: &str) -> Option<&LayoutSymbol> {
        self.layout.iter().find(|s| s.name == name)
    }
}

fn memory_info(index: u32, ty: wasmparser::MemoryType, import: Option<ImportName>) -> MemoryInfo {
    MemoryInfo {
        index,
        import,
        exports: Vec::new(),
        name: None,
        memory64: ty.memory64,
        shared: ty.shared,
        page_size: ty
            .page_size_log2
            .map_or(DEFAULT_PAGE_SIZE, |log2| 1u64 << log2),
        min_pages: ty.initial,
        max_pages: ty.maximum,
        instructions: InstructionCounts::default(),
    }
}

fn global_kind(ty: ValType) -> GlobalKind {
    match ty {
        ValType::I32 => GlobalKind::I32,
        ValType::I64 => GlobalKind::I64,
        _ => GlobalKind::Other,
    }
}

/// Count zero bytes. Byte-wide counters over chunks of at most 255 bytes
/// vectorise to one compare and one subtract per vector of bytes; a count
/// into a `usize` widens every lane and runs several times slower.
pub fn count_zeros(bytes: &[u8]) -> u64 {
    bytes
        .chunks(255)
        .map(|chunk| chunk.iter().fold(0u8, |n, &b| n + u8::from(b == 0)) as u64)
        .sum()
}

fn wrap(v: u64, wide: bool) -> u64 {
    if wide {
        v
    } else {
        v & 0xffff_ffff
    }
}

/// Symbolic value of a constant expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value {
    Const(u64),
    Global(u32, i64),
}

/// Evaluate an integer constant expression (incl. extended-const) to a
/// constant, or to `global + k` when it depends on one unknown global.
fn eval_const(expr: &ConstExpr<'_>, globals: &[GlobalInfo], wide: bool) -> Option<Value> {
    let mut stack: Vec<Value> = Vec::new();
    let mut reader = expr.get_operators_reader();
    loop {
        let op = reader.read().ok()?;
        let value = match op {
            Operator::I32Const { value } => Value::Const(value as u32 as u64),
            Operator::I64Const { value } => Value::Const(value as u64),
            Operator::GlobalGet { global_index } => {
                match globals.get(global_index as usize)?.init {
                    Some(v) => Value::Const(v),
                    None => Value::Global(global_index, 0),
                }
            }
            Operator::I32Add | Operator::I64Add => {
                let (a, b) = (stack.pop()?, stack.pop()?);
                match (b, a) {
                    (Value::Const(x), Value::Const(y)) => Value::Const(x.wrapping_add(y)),
                    (Value::Global(g, k), Value::Const(c))
                    | (Value::Const(c), Value::Global(g, k)) => {
                        Value::Global(g, k.wrapping_add(c as i64))
                    }
                    _ => return None,
                }
            }
            Operator::I32Sub | Operator::I64Sub => {
                let (a, b) = (stack.pop()?, stack.pop()?);
                match (b, a) {
                    (Value::Const(x), Value::Const(y)) => Value::Const(x.wrapping_sub(y)),
                    (Value::Global(g, k), Value::Const(c)) => {
                        Value::Global(g, k.wrapping_sub(c as i64))
                    }
                    _ => return None,
                }
            }
            Operator::I32Mul | Operator::I64Mul => {
                let (a, b) = (stack.pop()?, stack.pop()?);
                match (b, a) {
                    (Value::Const(x), Value::Const(y)) => Value::Const(x.wrapping_mul(y)),
                    _ => return None,
                }
            }
            Operator::End => break,
            _ => return None,
        };
        let value = match value {
            Value::Const(v) => Value::Const(wrap(v, wide)),
            Value::Global(g, k) if !wide => Value::Global(g, k as i32 as i64),
            other => other,
        };
        stack.push(value);
    }
    if stack.len() == 1 {
        stack.pop()
    } else {
        None
    }
}

/// `global.get $g` or `global.get $g; iNN.const k; iNN.add` (either order).
fn single_global_get(expr: &ConstExpr<'_>) -> Option<(u32, i64)> {
    let mut reader = expr.get_operators_reader();
    let mut ops = Vec::new();
    loop {
        match reader.read().ok()? {
            Operator::End => break,
            op => ops.push(op),
        }
        if ops.len() > 3 {
            return None;
        }
    }
    let konst = |op: &Operator<'_>| match op {
        Operator::I32Const { value } => Some(*value as i64),
        Operator::I64Const { value } => Some(*value),
        _ => None,
    };
    match ops.as_slice() {
        [Operator::GlobalGet { global_index }] => Some((*global_index, 0)),
        [Operator::GlobalGet { global_index }, k, Operator::I32Add | Operator::I64Add]
        | [k, Operator::GlobalGet { global_index }, Operator::I32Add | Operator::I64Add] => {
            Some((*global_index, konst(k)?))
        }
        [Operator::GlobalGet { global_index }, k, Operator::I32Sub | Operator::I64Sub] => {
            Some((*global_index, konst(k)?.wrapping_neg()))
        }
        _ => None,
    }
}

fn find_layout_symbols(info: &ModuleInfo) -> Vec<LayoutSymbol> {
    let mut found = Vec::new();
    for &symbol in LAYOUT_SYMBOLS {
        let by = |g: &GlobalInfo| -> Option<SymbolSource> {
            if g.exports.iter().any(|e| e == symbol) {
                Some(SymbolSource::Export)
            } else if g.import.as_ref().is_some_and(|i| i.name == symbol) {
                Some(SymbolSource::Import)
            } else if g.name.as_deref() == Some(symbol) {
                Some(SymbolSource::NameSection)
            } else {
                None
            }
        };
        if let Some((g, source)) = info.globals.iter().find_map(|g| by(g).map(|s| (g, s))) {
            found.push(LayoutSymbol {
                name: symbol.to_string(),
                global: g.index,
                value: g.init,
                source,
            });
        }
    }
    if !found.iter().any(|s| s.name == "__stack_pointer") {
        if let Some(symbol) = guess_stack_pointer(info) {
            found.insert(0, symbol);
        }
    }
    found
}

/// wasm-ld makes `__stack_pointer` the first defined global: a mutable
/// integer of memory 0's address width whose start value is 16-aligned and
/// lies inside memory 0's initial size. Only used when nothing names it.
fn guess_stack_pointer(info: &ModuleInfo) -> Option<LayoutSymbol> {
    let memory = info.memories.first()?;
    if memory.import.is_some() {
        return None;
    }
    let first_defined = info.globals.iter().find(|g| g.import.is_none())?;
    let want = if memory.memory64 {
        GlobalKind::I64
    } else {
        GlobalKind::I32
    };
    let value = first_defined.init?;
    let plausible = first_defined.mutable
        && first_defined.kind == want
        && first_defined.exports.is_empty()
        && first_defined.name.is_none()
        && value > 0
        && value % 16 == 0
        && (value as u128) <= memory.min_bytes();
    plausible.then(|| LayoutSymbol {
        name: "__stack_pointer".into(),
        global: first_defined.index,
        value: Some(value),
        source: SymbolSource::Heuristic,
    })
}

/// Counts memory instructions per memory index.
#[derive(Default)]
struct Counter {
    per_memory: BTreeMap<u32, InstructionCounts>,
    data_drops: u64,
}

/// Below this many bytes of function bodies the instructions are counted on
/// one thread (the rayon pool costs more than it saves).
const PARALLEL_CODE_BYTES: usize = 256 * 1024;

impl Counter {
    /// Count the memory instructions of all `bodies` (`code_bytes` long in
    /// all), in parallel for large modules. Sums do not depend on the order,
    /// and the error reported is the first one in function order, so the
    /// result is the same whatever the thread count.
    fn count(
        bodies: &[wasmparser::FunctionBody<'_>],
        code_bytes: usize,
    ) -> std::result::Result<Counter, wasmparser::BinaryReaderError> {
        let one = |body: &wasmparser::FunctionBody<'_>| {
            let mut counter = Counter::default();
            let mut reader = body.get_operators_reader()?;
            while !reader.eof() {
                reader.visit_operator(&mut counter)?;
            }
            reader.finish()?;
            Ok(counter)
        };
        let counters: Vec<_> = if code_bytes < PARALLEL_CODE_BYTES {
            bodies.iter().map(one).collect()
        } else {
            use rayon::prelude::*;
            bodies.par_iter().map(one).collect()
        };
        let mut total = Counter::default();
        for counter in counters {
            total.merge(counter?);
        }
        Ok(total)
    }

    fn merge(&mut self, other: Counter) {
        for (memory, c) in other.per_memory {
            let t = self.counts(memory);
            t.loads += c.loads;
            t.stores += c.stores;
            t.atomics += c.atomics;
            t.size += c.size;
            t.grow += c.grow;
            t.fill += c.fill;
            t.copy += c.copy;
            t.init += c.init;
            t.discard += c.discard;
        }
        self.data_drops += other.data_drops;
    }

    fn counts(&mut self, memory: u32) -> &mut InstructionCounts {
        self.per_memory.entry(memory).or_default()
    }

    /// An instruction with a memarg: classified by its name.
    fn access(&mut self, op: &str, memory: u32) {
        let counts = self.counts(memory);
        if op.contains("Atomic") {
            counts.atomics += 1;
        } else if op.contains("Store") {
            counts.stores += 1;
        } else {
            counts.loads += 1;
        }
    }

    /// An instruction with a plain memory index immediate.
    fn memory_op(&mut self, op: &str, memory: u32) {
        let counts = self.counts(memory);
        match op {
            "MemorySize" => counts.size += 1,
            "MemoryGrow" => counts.grow += 1,
            "MemoryFill" => counts.fill += 1,
            "MemoryInit" => counts.init += 1,
            "MemoryDiscard" => counts.discard += 1,
            _ => {}
        }
    }

    fn copy(&mut self, dst: u32, src: u32) {
        self.counts(dst).copy += 1;
        if src != dst {
            self.counts(src).copy += 1;
        }
    }
}

macro_rules! count_immediate {
    ($self:ident, $op:ident, memarg, $value:ident) => {
        $self.access(stringify!($op), $value.memory)
    };
    ($self:ident, $op:ident, mem, $value:ident) => {
        $self.memory_op(stringify!($op), $value)
    };
    ($self:ident, $op:ident, $other:ident, $value:ident) => {{
        let _ = $value;
    }};
}

macro_rules! define_counting_visitor {
    ($(@$proposal:ident $op:ident $({ $($arg:ident: $argty:ty),* })? => $visit:ident ($($ann:tt)*))*) => {
        $(
            define_counting_visitor!(@one $op $visit $({ $($arg: $argty),* })?);
        )*
    };
    (@one MemoryCopy $visit:ident { $dst:ident: $dst_ty:ty, $src:ident: $src_ty:ty }) => {
        fn $visit(&mut self, $dst: $dst_ty, $src: $src_ty) {
            self.copy($dst, $src);
        }
    };
    (@one DataDrop $visit:ident { $data:ident: $data_ty:ty }) => {
        fn $visit(&mut self, $data: $data_ty) {
            let _ = $data;
            self.data_drops += 1;
        }
    };
    (@one $op:ident $visit:ident $({ $($arg:ident: $argty:ty),* })?) => {
        fn $visit(&mut self $($(, $arg: $argty)*)?) {
            $($(count_immediate!(self, $op, $arg, $arg);)*)?
        }
    };
}

impl<'a> VisitOperator<'a> for Counter {
    type Output = ();

    fn simd_visitor(
        &mut self,
    ) -> Option<&mut dyn wasmparser::VisitSimdOperator<'a, Output = Self::Output>> {
        Some(self)
    }

    wasmparser::for_each_visit_operator!(define_counting_visitor);
}

impl wasmparser::VisitSimdOperator<'_> for Counter {
    wasmparser::for_each_visit_simd_operator!(define_counting_visitor);
}
