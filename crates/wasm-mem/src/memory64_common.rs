//! The machinery shared by `lower memory64` and `raise memory64`: changing
//! the index type (i32 or i64) of memories and tables, and rewriting every
//! instruction that takes or returns an address, a length or a size of them.
//!
//! A [`Retype`] says, for every memory and table, which index type it has in
//! the input and which one it gets. [`rewrite_code`] then walks each function
//! body with wasmparser and re-emits it with wasm-encoder:
//!
//! * An operand whose type goes from i64 to i32 is *checked*: if its high 32
//!   bits are set the code traps, else it is wrapped. The trap is an access
//!   that is out of bounds for any 32-bit memory or table (`i32.const -1;
//!   i32.load8_u offset=2^32-1`, or `table.get` at 2^32 - 1), so it is the
//!   same kind of trap the original raises, not a bare `unreachable`. Since a
//!   32-bit memory or table never holds more than 2^32 bytes or elements,
//!   such an address, length or index is always out of bounds in the
//!   original too, so it trapped there as well. Only the delta of
//!   `memory.grow` / `table.grow` is different: there a delta >= 2^32 makes
//!   the instruction return -1 without growing, as the original does.
//! * An operand whose type goes from i32 to i64 is zero-extended (memory32
//!   reads addresses and lengths as unsigned), so the 33-bit effective
//!   address of memory32 equals the 65-bit one of memory64.
//! * A memarg offset >= 2^32 on a lowered memory always traps: the operands
//!   are evaluated (their side effects kept), dropped, then the
//!   out-of-bounds access above traps (an `unreachable` after it keeps the
//!   stack typed).
//! * Results of `memory.size`, `memory.grow`, `table.size` and `table.grow`
//!   are converted back to the type the code expects: zero-extended when
//!   lowering (a -1 from grow stays -1), wrapped when raising (sizes are below
//!   2^32 because raised memories and tables keep a 32-bit maximum).
//!
//! Operands below the top of the stack are reached by saving the ones above
//! them in scratch locals appended after the function's own locals (existing
//! local indices do not move, so the name section stays right). Function
//! bodies with nothing to rewrite are copied byte for byte.

use crate::error::{Error, Result};
use std::collections::HashMap;
use wasm_encoder::reencode::{Reencode, RoundtripReencoder};
use wasm_encoder::{BlockType, Encode, Instruction};
use wasmparser::{BinaryReader, FuncType, MemArg, Operator, Payload, ValType};

/// Section ids this module needs beyond [`crate::sections::ids`].
const TABLE_SECTION: u8 = 4;
const ELEMENT_SECTION: u8 = 9;

/// Index type of one memory or table before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexChange {
    /// `true` when the input uses i64 indices.
    pub from64: bool,
    /// `true` when the output uses i64 indices.
    pub to64: bool,
}

impl IndexChange {
    fn ty(is64: bool) -> ValType {
        if is64 {
            ValType::I64
        } else {
            ValType::I32
        }
    }
    fn from(self) -> ValType {
        Self::ty(self.from64)
    }
    fn to(self) -> ValType {
        Self::ty(self.to64)
    }
    /// `true` when the index type changes.
    pub fn changes(self) -> bool {
        self.from64 != self.to64
    }
}

/// What a module declares, as the rewriting needs it.
#[derive(Debug, Default)]
pub struct Scan {
    /// Function types by type index (`None` for GC struct/array types).
    pub types: Vec<Option<FuncType>>,
    /// Type index of every function (imports first).
    pub func_types: Vec<u32>,
    /// Number of imported functions.
    pub imported_funcs: u32,
    /// Every memory type (imports first).
    pub memories: Vec<wasmparser::MemoryType>,
    /// Every table type (imports first).
    pub tables: Vec<wasmparser::TableType>,
    /// Number of imported memories.
    pub imported_memories: u32,
    /// Number of imported tables.
    pub imported_tables: u32,
    /// Every global: its type and, when known statically, its value.
    pub globals: Vec<(wasmparser::GlobalType, Option<ConstValue>)>,
    /// Import names of imported globals, by global index.
    pub global_imports: HashMap<u32, String>,
    /// Import names of imported memories, by memory index.
    pub memory_imports: HashMap<u32, String>,
    /// Import names of imported tables, by table index.
    pub table_imports: HashMap<u32, String>,
    /// Export names of memories, by memory index.
    pub memory_exports: HashMap<u32, Vec<String>>,
    /// Export names of tables, by table index.
    pub table_exports: HashMap<u32, Vec<String>>,
    /// `true` when the module has DWARF sections (their code offsets go stale).
    pub has_dwarf: bool,
}

/// A statically known constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConstValue {
    /// An i32.
    I32(i32),
    /// An i64.
    I64(i64),
}

impl ConstValue {
    /// The value as an unsigned 64-bit number (i32 zero-extended).
    pub fn unsigned(self) -> u64 {
        match self {
            ConstValue::I32(v) => v as u32 as u64,
            ConstValue::I64(v) => v as u64,
        }
    }
}

fn parse_err(input: &[u8]) -> impl Fn(wasmparser::BinaryReaderError) -> Error + '_ {
    move |e| Error::from_parser(input, &e)
}

impl Scan {
    /// Scan a (valid) module.
    pub fn read(input: &[u8]) -> Result<Scan> {
        let err = parse_err(input);
        let mut scan = Scan::default();
        for payload in wasmparser::Parser::new(0).parse_all(input) {
            match payload.map_err(&err)? {
                Payload::TypeSection(reader) => {
                    for group in reader {
                        for sub in group.map_err(&err)?.into_types() {
                            scan.types.push(match &sub.composite_type.inner {
                                wasmparser::CompositeInnerType::Func(f) => Some(f.clone()),
                                _ => None,
                            });
                        }
                    }
                }
                Payload::ImportSection(reader) => {
                    for import in reader.into_imports() {
                        let import = import.map_err(&err)?;
                        let name = format!("{}.{}", import.module, import.name);
                        match import.ty {
                            wasmparser::TypeRef::Func(t) | wasmparser::TypeRef::FuncExact(t) => {
                                scan.func_types.push(t);
                                scan.imported_funcs += 1;
                            }
                            wasmparser::TypeRef::Memory(m) => {
                                scan.memory_imports.insert(scan.memories.len() as u32, name);
                                scan.memories.push(m);
                                scan.imported_memories += 1;
                            }
                            wasmparser::TypeRef::Table(t) => {
                                scan.table_imports.insert(scan.tables.len() as u32, name);
                                scan.tables.push(t);
                                scan.imported_tables += 1;
                            }
                            wasmparser::TypeRef::Global(g) => {
                                scan.global_imports.insert(scan.globals.len() as u32, name);
                                scan.globals.push((g, None));
                            }
                            wasmparser::TypeRef::Tag(_) => {}
                        }
                    }
                }
                Payload::FunctionSection(reader) => {
                    for t in reader {
                        scan.func_types.push(t.map_err(&err)?);
                    }
                }
                Payload::TableSection(reader) => {
                    for t in reader {
                        scan.tables.push(t.map_err(&err)?.ty);
                    }
                }
                Payload::MemorySection(reader) => {
                    for m in reader {
                        scan.memories.push(m.map_err(&err)?);
                    }
                }
                Payload::GlobalSection(reader) => {
                    for g in reader {
                        let g = g.map_err(&err)?;
                        let value = eval_const(&g.init_expr, &scan.globals);
                        scan.globals.push((g.ty, value));
                    }
                }
                Payload::ExportSection(reader) => {
                    for e in reader {
                        let e = e.map_err(&err)?;
                        match e.kind {
                            wasmparser::ExternalKind::Memory => scan
                                .memory_exports
                                .entry(e.index)
                                .or_default()
                                .push(e.name.to_string()),
                            wasmparser::ExternalKind::Table => scan
                                .table_exports
                                .entry(e.index)
                                .or_default()
                                .push(e.name.to_string()),
                            _ => {}
                        }
                    }
                }
                Payload::CustomSection(c) if c.name().starts_with(".debug_") => {
                    scan.has_dwarf = true;
                }
                _ => {}
            }
        }
        Ok(scan)
    }

    /// Describe a constant expression for messages.
    pub fn describe_const(&self, expr: &wasmparser::ConstExpr) -> String {
        let mut parts = Vec::new();
        let mut reader = expr.get_operators_reader();
        while let Ok(op) = reader.read() {
            match op {
                Operator::End => break,
                Operator::GlobalGet { global_index } => {
                    match self.global_imports.get(&global_index) {
                        Some(name) => {
                            parts.push(format!("global.get {global_index} (imported {name})"))
                        }
                        None => parts.push(format!("global.get {global_index}")),
                    }
                }
                other => parts.push(format!("{other:?}")),
            }
        }
        parts.join(" ")
    }
}

/// Evaluate a constant expression made of integer constants, integer
/// add/sub/mul (extended-const) and `global.get` of globals whose value is
/// known. `None` when the value depends on an import or on anything else.
pub fn eval_const(
    expr: &wasmparser::ConstExpr,
    globals: &[(wasmparser::GlobalType, Option<ConstValue>)],
) -> Option<ConstValue> {
    use ConstValue::{I32, I64};
    let mut stack = Vec::new();
    let mut reader = expr.get_operators_reader();
    loop {
        let op = reader.read().ok()?;
        match op {
            Operator::I32Const { value } => stack.push(I32(value)),
            Operator::I64Const { value } => stack.push(I64(value)),
            Operator::GlobalGet { global_index } => {
                stack.push(globals.get(global_index as usize)?.1?);
            }
            Operator::I32Add | Operator::I32Sub | Operator::I32Mul => {
                let (Some(I32(b)), Some(I32(a))) = (stack.pop(), stack.pop()) else {
                    return None;
                };
                stack.push(I32(match op {
                    Operator::I32Add => a.wrapping_add(b),
                    Operator::I32Sub => a.wrapping_sub(b),
                    _ => a.wrapping_mul(b),
                }));
            }
            Operator::I64Add | Operator::I64Sub | Operator::I64Mul => {
                let (Some(I64(b)), Some(I64(a))) = (stack.pop(), stack.pop()) else {
                    return None;
                };
                stack.push(I64(match op {
                    Operator::I64Add => a.wrapping_add(b),
                    Operator::I64Sub => a.wrapping_sub(b),
                    _ => a.wrapping_mul(b),
                }));
            }
            Operator::End => break,
            _ => return None,
        }
    }
    if stack.len() == 1 {
        stack.pop()
    } else {
        None
    }
}

/// How every memory and table changes.
#[derive(Debug, Clone)]
pub struct Retype {
    /// One entry per memory index.
    pub memories: Vec<IndexChange>,
    /// One entry per table index.
    pub tables: Vec<IndexChange>,
    /// Element type of every table (for scratch locals).
    pub table_elements: Vec<ValType>,
    /// Page size of every memory (grow results of 1-byte-page memories need
    /// the exact -1 test).
    pub page_sizes: Vec<u64>,
}

impl Retype {
    /// The change from the scanned module's memories and tables to the new
    /// types `memories` and `tables` (one per index, in order).
    pub fn between(
        scan: &Scan,
        memories: &[wasm_encoder::MemoryType],
        tables: &[wasm_encoder::TableType],
    ) -> Retype {
        Retype {
            memories: scan
                .memories
                .iter()
                .zip(memories)
                .map(|(before, after)| IndexChange {
                    from64: before.memory64,
                    to64: after.memory64,
                })
                .collect(),
            tables: scan
                .tables
                .iter()
                .zip(tables)
                .map(|(before, after)| IndexChange {
                    from64: before.table64,
                    to64: after.table64,
                })
                .collect(),
            table_elements: scan
                .tables
                .iter()
                .map(|t| ValType::Ref(t.element_type))
                .collect(),
            page_sizes: scan
                .memories
                .iter()
                .map(|m| 1u64 << m.page_size_log2.unwrap_or(16))
                .collect(),
        }
    }

    /// `true` when anything changes.
    pub fn changes(&self) -> bool {
        self.memories
            .iter()
            .chain(&self.tables)
            .any(|c| c.changes())
    }
}

/// Counts of what the code rewrite did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CodeStats {
    /// Function bodies re-encoded (others were copied byte for byte).
    pub functions_rewritten: u32,
    /// Memory or table instructions whose operands or results were converted.
    pub instructions_rewritten: u64,
    /// Operands checked (trap when the high 32 bits are set) and wrapped.
    pub operands_checked: u64,
    /// Operands zero-extended to i64.
    pub operands_extended: u64,
    /// Accesses with a memarg offset >= 2^32, replaced by a trap after their
    /// operands are evaluated.
    pub always_trapping_accesses: u64,
    /// Scratch locals added.
    pub scratch_locals: u64,
}

/// How a checked operand with high bits set traps: through an access that
/// is out of bounds for any 32-bit memory or table, so the trap is the one
/// the original raises (out-of-bounds memory or table access), not a bare
/// `unreachable`.
#[derive(Debug, Clone, Copy)]
enum Via {
    /// `i32.const -1; i32.load8_u offset=2^32-1` on this memory: the
    /// effective address is 2^33 - 2, past any 32-bit memory.
    Memory(u32),
    /// `i32.const -1; table.get` on this table: index 2^32 - 1 is past any
    /// 32-bit table (at most 2^32 - 1 elements).
    Table(u32),
}

/// What one instruction needs.
enum Shape {
    /// Operands (deepest first; only the top ones that matter) to convert,
    /// and how a checked operand traps.
    Operands(Vec<(ValType, ValType)>, Via),
    /// `memory.size` / `table.size` of a changed memory or table.
    Size { from64: bool },
    /// `memory.grow` / `table.grow`: operands below the delta (the table's
    /// init value), and the change.
    Grow {
        below: Option<ValType>,
        change: IndexChange,
        exact_minus_one: bool,
    },
    /// A memarg offset that does not fit in 32 bits on a lowered memory:
    /// drop this many operands and trap.
    AlwaysTraps(usize, u32),
}

/// Non-address operand types of a memarg instruction.
fn memarg_operands(op: &Operator) -> Option<(MemArg, &'static [ValType])> {
    use Operator as O;
    use ValType::{F32, F64, I32, I64, V128};
    Some(match *op {
        O::I32Load { memarg }
        | O::I64Load { memarg }
        | O::F32Load { memarg }
        | O::F64Load { memarg }
        | O::I32Load8S { memarg }
        | O::I32Load8U { memarg }
        | O::I32Load16S { memarg }
        | O::I32Load16U { memarg }
        | O::I64Load8S { memarg }
        | O::I64Load8U { memarg }
        | O::I64Load16S { memarg }
        | O::I64Load16U { memarg }
        | O::I64Load32S { memarg }
        | O::I64Load32U { memarg }
        | O::V128Load { memarg }
        | O::V128Load8x8S { memarg }
        | O::V128Load8x8U { memarg }
        | O::V128Load16x4S { memarg }
        | O::V128Load16x4U { memarg }
        | O::V128Load32x2S { memarg }
        | O::V128Load32x2U { memarg }
        | O::V128Load8Splat { memarg }
        | O::V128Load16Splat { memarg }
        | O::V128Load32Splat { memarg }
        | O::V128Load64Splat { memarg }
        | O::V128Load32Zero { memarg }
        | O::V128Load64Zero { memarg }
        | O::I32AtomicLoad { memarg }
        | O::I64AtomicLoad { memarg }
        | O::I32AtomicLoad8U { memarg }
        | O::I32AtomicLoad16U { memarg }
        | O::I64AtomicLoad8U { memarg }
        | O::I64AtomicLoad16U { memarg }
        | O::I64AtomicLoad32U { memarg } => (memarg, &[]),
        O::I32Store { memarg }
        | O::I32Store8 { memarg }
        | O::I32Store16 { memarg }
        | O::I32AtomicStore { memarg }
        | O::I32AtomicStore8 { memarg }
        | O::I32AtomicStore16 { memarg }
        | O::MemoryAtomicNotify { memarg }
        | O::I32AtomicRmwAdd { memarg }
        | O::I32AtomicRmw8AddU { memarg }
        | O::I32AtomicRmw16AddU { memarg }
        | O::I32AtomicRmwSub { memarg }
        | O::I32AtomicRmw8SubU { memarg }
        | O::I32AtomicRmw16SubU { memarg }
        | O::I32AtomicRmwAnd { memarg }
        | O::I32AtomicRmw8AndU { memarg }
        | O::I32AtomicRmw16AndU { memarg }
        | O::I32AtomicRmwOr { memarg }
        | O::I32AtomicRmw8OrU { memarg }
        | O::I32AtomicRmw16OrU { memarg }
        | O::I32AtomicRmwXor { memarg }
        | O::I32AtomicRmw8XorU { memarg }
        | O::I32AtomicRmw16XorU { memarg }
        | O::I32AtomicRmwXchg { memarg }
        | O::I32AtomicRmw8XchgU { memarg }
        | O::I32AtomicRmw16XchgU { memarg } => (memarg, &[I32]),
        O::I64Store { memarg }
        | O::I64Store8 { memarg }
        | O::I64Store16 { memarg }
        | O::I64Store32 { memarg }
        | O::I64AtomicStore { memarg }
        | O::I64AtomicStore8 { memarg }
        | O::I64AtomicStore16 { memarg }
        | O::I64AtomicStore32 { memarg }
        | O::I64AtomicRmwAdd { memarg }
        | O::I64AtomicRmw8AddU { memarg }
        | O::I64AtomicRmw16AddU { memarg }
        | O::I64AtomicRmw32AddU { memarg }
        | O::I64AtomicRmwSub { memarg }
        | O::I64AtomicRmw8SubU { memarg }
        | O::I64AtomicRmw16SubU { memarg }
        | O::I64AtomicRmw32SubU { memarg }
        | O::I64AtomicRmwAnd { memarg }
        | O::I64AtomicRmw8AndU { memarg }
        | O::I64AtomicRmw16AndU { memarg }
        | O::I64AtomicRmw32AndU { memarg }
        | O::I64AtomicRmwOr { memarg }
        | O::I64AtomicRmw8OrU { memarg }
        | O::I64AtomicRmw16OrU { memarg }
        | O::I64AtomicRmw32OrU { memarg }
        | O::I64AtomicRmwXor { memarg }
        | O::I64AtomicRmw8XorU { memarg }
        | O::I64AtomicRmw16XorU { memarg }
        | O::I64AtomicRmw32XorU { memarg }
        | O::I64AtomicRmwXchg { memarg }
        | O::I64AtomicRmw8XchgU { memarg }
        | O::I64AtomicRmw16XchgU { memarg }
        | O::I64AtomicRmw32XchgU { memarg } => (memarg, &[I64]),
        O::F32Store { memarg } => (memarg, &[F32]),
        O::F64Store { memarg } => (memarg, &[F64]),
        O::V128Store { memarg }
        | O::V128Load8Lane { memarg, .. }
        | O::V128Load16Lane { memarg, .. }
        | O::V128Load32Lane { memarg, .. }
        | O::V128Load64Lane { memarg, .. }
        | O::V128Store8Lane { memarg, .. }
        | O::V128Store16Lane { memarg, .. }
        | O::V128Store32Lane { memarg, .. }
        | O::V128Store64Lane { memarg, .. } => (memarg, &[V128]),
        O::I32AtomicRmwCmpxchg { memarg }
        | O::I32AtomicRmw8CmpxchgU { memarg }
        | O::I32AtomicRmw16CmpxchgU { memarg } => (memarg, &[I32, I32]),
        O::I64AtomicRmwCmpxchg { memarg }
        | O::I64AtomicRmw8CmpxchgU { memarg }
        | O::I64AtomicRmw16CmpxchgU { memarg }
        | O::I64AtomicRmw32CmpxchgU { memarg } => (memarg, &[I64, I64]),
        O::MemoryAtomicWait32 { memarg } => (memarg, &[I32, I64]),
        O::MemoryAtomicWait64 { memarg } => (memarg, &[I64, I64]),
        _ => return None,
    })
}

impl Retype {
    fn mem(&self, index: u32) -> IndexChange {
        self.memories[index as usize]
    }
    fn table(&self, index: u32) -> IndexChange {
        self.tables[index as usize]
    }

    /// Operands of a copy: destination, source, length (i64 only when both are).
    fn copy_shape(dst: IndexChange, src: IndexChange) -> Vec<(ValType, ValType)> {
        let len_from = IndexChange::ty(dst.from64 && src.from64);
        let len_to = IndexChange::ty(dst.to64 && src.to64);
        vec![
            (dst.from(), dst.to()),
            (src.from(), src.to()),
            (len_from, len_to),
        ]
    }

    /// What `op` needs, or `None` when it stays as it is.
    fn shape(&self, op: &Operator) -> Option<Shape> {
        use Operator as O;
        if let Some((memarg, rest)) = memarg_operands(op) {
            let change = self.mem(memarg.memory);
            if !change.changes() {
                return None;
            }
            if change.from64 && !change.to64 && memarg.offset > u32::MAX as u64 {
                return Some(Shape::AlwaysTraps(1 + rest.len(), memarg.memory));
            }
            let mut operands = vec![(change.from(), change.to())];
            operands.extend(rest.iter().map(|t| (*t, *t)));
            return Some(Shape::Operands(operands, Via::Memory(memarg.memory)));
        }
        let shape = match *op {
            O::MemorySize { mem } => {
                let c = self.mem(mem);
                c.changes().then_some(Shape::Size { from64: c.from64 })?
            }
            O::TableSize { table } => {
                let c = self.table(table);
                c.changes().then_some(Shape::Size { from64: c.from64 })?
            }
            O::MemoryGrow { mem } => {
                let change = self.mem(mem);
                change.changes().then_some(Shape::Grow {
                    below: None,
                    change,
                    exact_minus_one: self.page_sizes[mem as usize] != 65536,
                })?
            }
            O::TableGrow { table } => {
                let change = self.table(table);
                change.changes().then_some(Shape::Grow {
                    below: Some(self.table_elements[table as usize]),
                    change,
                    exact_minus_one: true,
                })?
            }
            O::MemoryFill { mem } => {
                let c = self.mem(mem);
                if !c.changes() {
                    return None;
                }
                Shape::Operands(
                    vec![
                        (c.from(), c.to()),
                        (ValType::I32, ValType::I32),
                        (c.from(), c.to()),
                    ],
                    Via::Memory(mem),
                )
            }
            O::TableFill { table } => {
                let c = self.table(table);
                if !c.changes() {
                    return None;
                }
                let elem = self.table_elements[table as usize];
                Shape::Operands(
                    vec![(c.from(), c.to()), (elem, elem), (c.from(), c.to())],
                    Via::Table(table),
                )
            }
            O::MemoryCopy { dst_mem, src_mem } => {
                let (d, s) = (self.mem(dst_mem), self.mem(src_mem));
                if !d.changes() && !s.changes() {
                    return None;
                }
                Shape::Operands(Self::copy_shape(d, s), Via::Memory(dst_mem))
            }
            O::TableCopy {
                dst_table,
                src_table,
            } => {
                let (d, s) = (self.table(dst_table), self.table(src_table));
                if !d.changes() && !s.changes() {
                    return None;
                }
                Shape::Operands(Self::copy_shape(d, s), Via::Table(dst_table))
            }
            O::MemoryInit { mem, .. } => {
                let c = self.mem(mem);
                if !c.changes() {
                    return None;
                }
                Shape::Operands(vec![(c.from(), c.to())], Via::Memory(mem))
                    .with_fixed(&[ValType::I32, ValType::I32])
            }
            O::TableInit { table, .. } => {
                let c = self.table(table);
                if !c.changes() {
                    return None;
                }
                Shape::Operands(vec![(c.from(), c.to())], Via::Table(table))
                    .with_fixed(&[ValType::I32, ValType::I32])
            }
            O::TableGet { table } => {
                let c = self.table(table);
                c.changes()
                    .then(|| Shape::Operands(vec![(c.from(), c.to())], Via::Table(table)))?
            }
            O::TableSet { table } => {
                let c = self.table(table);
                if !c.changes() {
                    return None;
                }
                let elem = self.table_elements[table as usize];
                Shape::Operands(vec![(c.from(), c.to()), (elem, elem)], Via::Table(table))
            }
            O::CallIndirect { table_index, .. } | O::ReturnCallIndirect { table_index, .. } => {
                let c = self.table(table_index);
                c.changes()
                    .then(|| Shape::Operands(vec![(c.from(), c.to())], Via::Table(table_index)))?
            }
            _ => return None,
        };
        Some(shape)
    }
}

impl Shape {
    fn with_fixed(self, rest: &[ValType]) -> Shape {
        match self {
            Shape::Operands(mut v, via) => {
                v.extend(rest.iter().map(|t| (*t, *t)));
                Shape::Operands(v, via)
            }
            other => other,
        }
    }
}

/// Emits a function body into bytes, allocating scratch locals on demand.
struct BodyWriter {
    bytes: Vec<u8>,
    next_local: u32,
    scratch: HashMap<(ValType, usize), u32>,
    added: Vec<ValType>,
}

/// Slot used for the i64 scratch of a checked wrap (kept apart from the
/// slots that save operands).
const CHECK_SLOT: usize = usize::MAX;
/// Slot for the i32 result of a grow whose -1 must be told apart.
const RESULT_SLOT: usize = usize::MAX - 1;

impl BodyWriter {
    fn emit(&mut self, instruction: Instruction) {
        instruction.encode(&mut self.bytes);
    }

    fn local(&mut self, ty: ValType, slot: usize) -> u32 {
        if let Some(index) = self.scratch.get(&(ty, slot)) {
            return *index;
        }
        let index = self.next_local;
        self.next_local += 1;
        self.added.push(ty);
        self.scratch.insert((ty, slot), index);
        index
    }

    /// Convert the value on top of the stack from `from` to `to`.
    /// An instruction sequence that always traps as an out-of-bounds access
    /// of `via` and leaves the stack as it found it.
    fn trap(&mut self, via: Via) {
        self.emit(Instruction::I32Const(-1));
        match via {
            Via::Memory(memory) => {
                self.emit(Instruction::I32Load8U(wasm_encoder::MemArg {
                    offset: u32::MAX as u64,
                    align: 0,
                    memory_index: memory,
                }));
            }
            Via::Table(table) => self.emit(Instruction::TableGet(table)),
        }
        self.emit(Instruction::Drop);
    }

    fn convert(&mut self, from: ValType, to: ValType, via: Via, stats: &mut CodeStats) {
        match (from, to) {
            (ValType::I64, ValType::I32) => {
                stats.operands_checked += 1;
                let scratch = self.local(ValType::I64, CHECK_SLOT);
                self.emit(Instruction::LocalTee(scratch));
                self.emit(Instruction::I64Const(u32::MAX as i64));
                self.emit(Instruction::I64GtU);
                self.emit(Instruction::If(BlockType::Empty));
                self.trap(via);
                self.emit(Instruction::End);
                self.emit(Instruction::LocalGet(scratch));
                self.emit(Instruction::I32WrapI64);
            }
            (ValType::I32, ValType::I64) => {
                stats.operands_extended += 1;
                self.emit(Instruction::I64ExtendI32U);
            }
            _ => {}
        }
    }

    /// Convert the operands of an instruction, deepest first.
    fn operands(&mut self, operands: &[(ValType, ValType)], via: Via, stats: &mut CodeStats) {
        let Some(deepest) = operands.iter().position(|(f, t)| f != t) else {
            return;
        };
        for (slot, (from, _)) in operands.iter().enumerate().skip(deepest + 1).rev() {
            let local = self.local(*from, slot);
            self.emit(Instruction::LocalSet(local));
        }
        let (from, to) = operands[deepest];
        self.convert(from, to, via, stats);
        for (slot, (from, to)) in operands.iter().enumerate().skip(deepest + 1) {
            let local = self.local(*from, slot);
            self.emit(Instruction::LocalGet(local));
            self.convert(*from, *to, via, stats);
        }
    }

    /// A grow whose delta goes from i64 to i32: a delta >= 2^32 returns -1.
    fn lowered_grow(
        &mut self,
        below: Option<ValType>,
        grow: Instruction,
        exact_minus_one: bool,
        stats: &mut CodeStats,
    ) {
        stats.operands_checked += 1;
        let delta = self.local(ValType::I64, 1);
        self.emit(Instruction::LocalSet(delta));
        let init = below.map(|ty| {
            let local = self.local(ty, 0);
            self.emit(Instruction::LocalSet(local));
            local
        });
        self.emit(Instruction::LocalGet(delta));
        self.emit(Instruction::I64Const(u32::MAX as i64));
        self.emit(Instruction::I64GtU);
        self.emit(Instruction::If(BlockType::Result(
            wasm_encoder::ValType::I64,
        )));
        self.emit(Instruction::I64Const(-1));
        self.emit(Instruction::Else);
        if let Some(init) = init {
            self.emit(Instruction::LocalGet(init));
        }
        self.emit(Instruction::LocalGet(delta));
        self.emit(Instruction::I32WrapI64);
        self.emit(grow);
        self.extend_result(exact_minus_one);
        self.emit(Instruction::End);
    }

    /// Zero-extend an i32 size/grow result, keeping -1 as -1.
    fn extend_result(&mut self, exact_minus_one: bool) {
        if !exact_minus_one {
            // Sizes of 64 KiB-page memories are at most 65536 pages, so the
            // sign extension only changes -1, which must stay -1.
            self.emit(Instruction::I64ExtendI32S);
            return;
        }
        let result = self.local(ValType::I32, RESULT_SLOT);
        self.emit(Instruction::LocalTee(result));
        self.emit(Instruction::I32Const(-1));
        self.emit(Instruction::I32Eq);
        self.emit(Instruction::If(BlockType::Result(
            wasm_encoder::ValType::I64,
        )));
        self.emit(Instruction::I64Const(-1));
        self.emit(Instruction::Else);
        self.emit(Instruction::LocalGet(result));
        self.emit(Instruction::I64ExtendI32U);
        self.emit(Instruction::End);
    }
}

fn encoder_val_type(ty: ValType) -> Result<wasm_encoder::ValType> {
    RoundtripReencoder
        .val_type(ty)
        .map_err(|e| Error::Internal(format!("re-encoding a value type failed: {e}")))
}

fn reencode_err(e: wasm_encoder::reencode::Error<std::convert::Infallible>) -> Error {
    Error::Internal(format!("re-encoding failed: {e}"))
}

/// Rewrite the code section (`reader` over its payload) for `retype`.
/// Function bodies that need no change are copied byte for byte.
pub fn rewrite_code(
    input: &[u8],
    scan: &Scan,
    retype: &Retype,
    reader: BinaryReader<'_>,
) -> Result<(wasm_encoder::CodeSection, CodeStats)> {
    let err = parse_err(input);
    let mut stats = CodeStats::default();
    let mut code = wasm_encoder::CodeSection::new();
    let section = wasmparser::CodeSectionReader::new(reader).map_err(&err)?;
    for (i, body) in section.into_iter().enumerate() {
        let body = body.map_err(&err)?;
        // First pass: anything to do?
        let mut ops = body.get_operators_reader().map_err(&err)?;
        let mut needed = false;
        while !ops.eof() {
            if retype.shape(&ops.read().map_err(&err)?).is_some() {
                needed = true;
                break;
            }
        }
        if !needed {
            code.raw(body.as_bytes());
            continue;
        }
        stats.functions_rewritten += 1;
        let func_index = scan.imported_funcs as usize + i;
        let type_index = scan.func_types[func_index] as usize;
        let params = scan.types[type_index]
            .as_ref()
            .map_or(0, |f| f.params().len() as u32);
        let mut locals = Vec::new();
        let mut declared = 0u32;
        for pair in body.get_locals_reader().map_err(&err)? {
            let (count, ty) = pair.map_err(&err)?;
            declared += count;
            locals.push((count, encoder_val_type(ty)?));
        }
        let mut writer = BodyWriter {
            bytes: Vec::with_capacity(body.as_bytes().len() * 2),
            next_local: params + declared,
            scratch: HashMap::new(),
            added: Vec::new(),
        };
        let mut ops = body.get_operators_reader().map_err(&err)?;
        while !ops.eof() {
            let op = ops.read().map_err(&err)?;
            let shape = retype.shape(&op);
            let instruction = RoundtripReencoder.instruction(op).map_err(reencode_err)?;
            let Some(shape) = shape else {
                writer.emit(instruction);
                continue;
            };
            stats.instructions_rewritten += 1;
            match shape {
                Shape::Operands(operands, via) => {
                    writer.operands(&operands, via, &mut stats);
                    writer.emit(instruction);
                }
                Shape::Size { from64 } => {
                    writer.emit(instruction);
                    if from64 {
                        writer.emit(Instruction::I64ExtendI32U);
                    } else {
                        writer.emit(Instruction::I32WrapI64);
                    }
                }
                Shape::Grow {
                    below,
                    change,
                    exact_minus_one,
                } => {
                    if change.from64 {
                        writer.lowered_grow(below, instruction, exact_minus_one, &mut stats);
                    } else {
                        // Extending never traps; `via` is unused.
                        writer.operands(
                            &[(change.from(), change.to())],
                            Via::Memory(0),
                            &mut stats,
                        );
                        writer.emit(instruction);
                        // -1 (failure) wraps to -1; sizes stay below 2^32.
                        writer.emit(Instruction::I32WrapI64);
                    }
                }
                Shape::AlwaysTraps(count, memory) => {
                    stats.always_trapping_accesses += 1;
                    for _ in 0..count {
                        writer.emit(Instruction::Drop);
                    }
                    // Trap as the out-of-bounds access it is; `unreachable`
                    // after it keeps the stack typed as the access left it.
                    writer.trap(Via::Memory(memory));
                    writer.emit(Instruction::Unreachable);
                }
            }
        }
        stats.scratch_locals += writer.added.len() as u64;
        for ty in &writer.added {
            let ty = encoder_val_type(*ty)?;
            match locals.last_mut() {
                Some((count, last)) if *last == ty => *count += 1,
                _ => locals.push((1, ty)),
            }
        }
        let mut function = wasm_encoder::Function::new(locals);
        function.raw(writer.bytes);
        code.function(&function);
    }
    Ok((code, stats))
}

/// Re-encodes memory and table types in index order with the given types.
pub struct TypeSetter {
    /// New type of every memory (imports first).
    pub memories: Vec<wasm_encoder::MemoryType>,
    /// New type of every table (imports first).
    pub tables: Vec<wasm_encoder::TableType>,
    /// Next memory index to hand out.
    pub next_memory: usize,
    /// Next table index to hand out.
    pub next_table: usize,
}

impl Reencode for TypeSetter {
    type Error = std::convert::Infallible;

    fn memory_type(
        &mut self,
        _ty: wasmparser::MemoryType,
    ) -> std::result::Result<wasm_encoder::MemoryType, wasm_encoder::reencode::Error<Self::Error>>
    {
        let ty = self.memories[self.next_memory];
        self.next_memory += 1;
        Ok(ty)
    }

    fn table_type(
        &mut self,
        _ty: wasmparser::TableType,
    ) -> std::result::Result<wasm_encoder::TableType, wasm_encoder::reencode::Error<Self::Error>>
    {
        let ty = self.tables[self.next_table];
        self.next_table += 1;
        Ok(ty)
    }
}

/// Re-encode the import, table and memory sections with the types of
/// `setter` (only those sections that declare a memory or table whose type
/// changes).
pub fn set_types(
    rewrite: &mut crate::rewrite::Rewrite<'_>,
    scan: &Scan,
    retype: &Retype,
    setter: &mut TypeSetter,
) -> Result<()> {
    use crate::sections::ids;
    let input = rewrite.input();
    let err = parse_err(input);
    let imported_change = retype.memories[..scan.imported_memories as usize]
        .iter()
        .chain(&retype.tables[..scan.imported_tables as usize])
        .any(|c| c.changes());
    if imported_change {
        let index = rewrite
            .find(ids::IMPORT)
            .expect("imports without import section");
        let reader = wasmparser::ImportSectionReader::new(rewrite.reader(index)).map_err(&err)?;
        let mut section = wasm_encoder::ImportSection::new();
        setter.next_memory = 0;
        setter.next_table = 0;
        setter
            .parse_import_section(&mut section, reader)
            .map_err(reencode_err)?;
        rewrite.replace(index, &section);
    }
    if retype.tables[scan.imported_tables as usize..]
        .iter()
        .any(|c| c.changes())
    {
        let index = rewrite
            .find(TABLE_SECTION)
            .expect("tables without table section");
        let reader = wasmparser::TableSectionReader::new(rewrite.reader(index)).map_err(&err)?;
        let mut section = wasm_encoder::TableSection::new();
        setter.next_table = scan.imported_tables as usize;
        setter
            .parse_table_section(&mut section, reader)
            .map_err(reencode_err)?;
        rewrite.replace(index, &section);
    }
    if retype.memories[scan.imported_memories as usize..]
        .iter()
        .any(|c| c.changes())
    {
        let index = rewrite
            .find(ids::MEMORY)
            .expect("memories without memory section");
        let reader = wasmparser::MemorySectionReader::new(rewrite.reader(index)).map_err(&err)?;
        let mut section = wasm_encoder::MemorySection::new();
        setter.next_memory = scan.imported_memories as usize;
        setter
            .parse_memory_section(&mut section, reader)
            .map_err(reencode_err)?;
        rewrite.replace(index, &section);
    }
    Ok(())
}

/// The offset of an active segment in the output.
pub enum NewOffset {
    /// Keep the input's expression.
    Keep,
    /// A new constant expression.
    Expr(wasm_encoder::ConstExpr),
    /// The segment is out of bounds whatever the memory or table size: make
    /// it one that fails instantiation at the same point.
    Trap,
}

/// Offset used for segments that must fail instantiation: with at least one
/// element (two bytes for data) it is past the end of any 32-bit memory or
/// table.
pub const TRAP_OFFSET: u32 = u32::MAX;

/// Re-encode the data section, mapping each active segment's offset.
/// `offset(memory, expr, segment)` decides; other segments are copied.
pub fn rewrite_data(
    rewrite: &mut crate::rewrite::Rewrite<'_>,
    mut offset: impl FnMut(u32, &wasmparser::ConstExpr, u32) -> Result<NewOffset>,
) -> Result<()> {
    use crate::sections::ids;
    let Some(index) = rewrite.find(ids::DATA) else {
        return Ok(());
    };
    let input = rewrite.input();
    let err = parse_err(input);
    let reader = wasmparser::DataSectionReader::new(rewrite.reader(index)).map_err(&err)?;
    let mut section = wasm_encoder::DataSection::new();
    let mut touched = false;
    for (n, data) in reader.into_iter().enumerate() {
        let data = data.map_err(&err)?;
        match data.kind {
            wasmparser::DataKind::Passive => {
                section.passive(data.data.iter().copied());
            }
            wasmparser::DataKind::Active {
                memory_index,
                offset_expr,
            } => match offset(memory_index, &offset_expr, n as u32)? {
                NewOffset::Keep => {
                    let expr = RoundtripReencoder
                        .const_expr(offset_expr)
                        .map_err(reencode_err)?;
                    section.active(memory_index, &expr, data.data.iter().copied());
                }
                NewOffset::Expr(expr) => {
                    touched = true;
                    section.active(memory_index, &expr, data.data.iter().copied());
                }
                NewOffset::Trap => {
                    touched = true;
                    let expr = wasm_encoder::ConstExpr::i32_const(TRAP_OFFSET as i32);
                    section.active(memory_index, &expr, [0u8, 0u8]);
                }
            },
        }
    }
    if touched {
        rewrite.replace(index, &section);
    }
    Ok(())
}

/// Re-encode the element section, mapping each active segment's offset
/// (`offset(table, expr, segment)`). Other segments are re-encoded as they are.
pub fn rewrite_elements(
    rewrite: &mut crate::rewrite::Rewrite<'_>,
    mut offset: impl FnMut(u32, &wasmparser::ConstExpr, u32) -> Result<NewOffset>,
) -> Result<()> {
    let Some(index) = rewrite.find(ELEMENT_SECTION) else {
        return Ok(());
    };
    let input = rewrite.input();
    let err = parse_err(input);
    let reader = wasmparser::ElementSectionReader::new(rewrite.reader(index)).map_err(&err)?;
    let mut section = wasm_encoder::ElementSection::new();
    let mut touched = false;
    for (n, element) in reader.into_iter().enumerate() {
        let element = element.map_err(&err)?;
        let wasmparser::ElementKind::Active {
            table_index,
            offset_expr,
        } = element.kind.clone()
        else {
            RoundtripReencoder
                .parse_element(&mut section, element)
                .map_err(reencode_err)?;
            continue;
        };
        let table = table_index.unwrap_or(0);
        let new = offset(table, &offset_expr, n as u32)?;
        let trap = matches!(new, NewOffset::Trap);
        let count = match &element.items {
            wasmparser::ElementItems::Functions(r) => r.count(),
            wasmparser::ElementItems::Expressions(_, r) => r.count(),
        };
        let expr = match new {
            NewOffset::Keep => {
                RoundtripReencoder
                    .parse_element(&mut section, element)
                    .map_err(reencode_err)?;
                continue;
            }
            NewOffset::Expr(expr) => expr,
            NewOffset::Trap => wasm_encoder::ConstExpr::i32_const(TRAP_OFFSET as i32),
        };
        touched = true;
        let items = if trap && count == 0 {
            // An empty segment at an offset past the table still fails; at
            // TRAP_OFFSET it needs one element to do so.
            let ty = match &element.items {
                wasmparser::ElementItems::Functions(_) => wasmparser::RefType::FUNCREF,
                wasmparser::ElementItems::Expressions(ty, _) => *ty,
            };
            if !ty.is_nullable() {
                return Err(Error::Refused(format!(
                    "element segment {n}: an empty segment of non-nullable type at an offset >= 2^32 cannot be kept failing instantiation"
                )));
            }
            let heap = RoundtripReencoder
                .heap_type(ty.heap_type())
                .map_err(reencode_err)?;
            let ref_ty = RoundtripReencoder.ref_type(ty).map_err(reencode_err)?;
            wasm_encoder::Elements::Expressions(
                ref_ty,
                vec![wasm_encoder::ConstExpr::ref_null(heap)].into(),
            )
        } else {
            RoundtripReencoder
                .element_items(element.items.clone())
                .map_err(reencode_err)?
        };
        section.active(table_index, &expr, items);
    }
    if touched {
        rewrite.replace(index, &section);
    }
    Ok(())
}

/// One memory or table, before and after.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ResourceChange {
    /// `"memory"` or `"table"`.
    pub kind: &'static str,
    /// Its index.
    pub index: u32,
    /// `"module.name"` when imported.
    pub import: Option<String>,
    /// Its export names.
    pub exports: Vec<String>,
    /// Index type before: `"i32"` or `"i64"`.
    pub from: &'static str,
    /// Index type after.
    pub to: &'static str,
    /// Minimum (pages or elements) before.
    pub min_before: u64,
    /// Maximum before.
    pub max_before: Option<u64>,
    /// Minimum after.
    pub min_after: u64,
    /// Maximum after.
    pub max_after: Option<u64>,
}

impl ResourceChange {
    /// `true` when the index type changes.
    pub fn changes(&self) -> bool {
        self.from != self.to
    }
}

/// What `lower memory64` or `raise memory64` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Memory64Report {
    /// `"lower memory64"` or `"raise memory64"`.
    pub pass: &'static str,
    /// Every memory of the module.
    pub memories: Vec<ResourceChange>,
    /// Every table of the module.
    pub tables: Vec<ResourceChange>,
    /// Active segments whose offset is past any 32-bit memory or table: they
    /// are kept as segments that fail instantiation, as the original does.
    pub failing_segments: Vec<String>,
    /// What a host must now provide or expect (imports and exports whose
    /// type changed).
    pub host: Vec<String>,
    /// Limits that were clamped or added, and other things worth knowing.
    pub notes: Vec<String>,
    /// What the code rewrite did.
    pub code: CodeStats,
}

fn width(is64: bool) -> &'static str {
    if is64 {
        "i64"
    } else {
        "i32"
    }
}

impl Memory64Report {
    /// Start a report listing every memory and table with its new type.
    pub fn new(
        pass: &'static str,
        scan: &Scan,
        memories: &[wasm_encoder::MemoryType],
        tables: &[wasm_encoder::TableType],
    ) -> Memory64Report {
        let memories = scan
            .memories
            .iter()
            .zip(memories)
            .enumerate()
            .map(|(i, (before, after))| ResourceChange {
                kind: "memory",
                index: i as u32,
                import: scan.memory_imports.get(&(i as u32)).cloned(),
                exports: scan
                    .memory_exports
                    .get(&(i as u32))
                    .cloned()
                    .unwrap_or_default(),
                from: width(before.memory64),
                to: width(after.memory64),
                min_before: before.initial,
                max_before: before.maximum,
                min_after: after.minimum,
                max_after: after.maximum,
            })
            .collect();
        let tables = scan
            .tables
            .iter()
            .zip(tables)
            .enumerate()
            .map(|(i, (before, after))| ResourceChange {
                kind: "table",
                index: i as u32,
                import: scan.table_imports.get(&(i as u32)).cloned(),
                exports: scan
                    .table_exports
                    .get(&(i as u32))
                    .cloned()
                    .unwrap_or_default(),
                from: width(before.table64),
                to: width(after.table64),
                min_before: before.initial,
                max_before: before.maximum,
                min_after: after.minimum,
                max_after: after.maximum,
            })
            .collect();
        Memory64Report {
            pass,
            memories,
            tables,
            failing_segments: Vec::new(),
            host: Vec::new(),
            notes: Vec::new(),
            code: CodeStats::default(),
        }
    }

    /// Fill [`Memory64Report::host`] from the changed imports and exports.
    pub fn describe_host(&mut self, memories: &[wasm_encoder::MemoryType]) {
        for change in self.memories.iter().chain(&self.tables) {
            if !change.changes() {
                continue;
            }
            let bits = if change.to == "i64" { "64" } else { "32" };
            let unit = if change.kind == "memory" {
                "pages"
            } else {
                "elements"
            };
            let shared = change.kind == "memory" && memories[change.index as usize].shared;
            if let Some(import) = &change.import {
                let max = change
                    .max_after
                    .map_or_else(|| "no maximum".to_string(), |m| format!("max {m} {unit}"));
                self.host.push(format!(
                    "import {import}: the host must provide a {}{}-bit {} ({} indices) with at least {} {unit} and {max}",
                    if shared { "shared " } else { "" },
                    bits,
                    change.kind,
                    change.to,
                    change.min_after,
                ));
            }
            for name in &change.exports {
                self.host.push(format!(
                    "export \"{name}\": now a {bits}-bit {} ({} indices); its contents are unchanged",
                    change.kind, change.to
                ));
            }
        }
    }

    /// The report as lines of text.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let limits = |min: u64, max: Option<u64>| match max {
            Some(max) => format!("min {min}, max {max}"),
            None => format!("min {min}, no max"),
        };
        for c in self.memories.iter().chain(&self.tables) {
            let what = if c.import.is_some() {
                " (imported)"
            } else {
                ""
            };
            if c.changes() {
                out.push_str(&format!(
                    "{} {}{what}: {} -> {}, {} -> {}\n",
                    c.kind,
                    c.index,
                    c.from,
                    c.to,
                    limits(c.min_before, c.max_before),
                    limits(c.min_after, c.max_after)
                ));
            } else {
                out.push_str(&format!(
                    "{} {}{what}: unchanged ({})\n",
                    c.kind, c.index, c.from
                ));
            }
        }
        let s = &self.code;
        out.push_str(&format!(
            "code: {} function(s) rewritten, {} instruction(s); {} operand(s) checked, {} extended, {} access(es) with offsets >= 2^32 trap; {} scratch local(s)\n",
            s.functions_rewritten,
            s.instructions_rewritten,
            s.operands_checked,
            s.operands_extended,
            s.always_trapping_accesses,
            s.scratch_locals
        ));
        for line in &self.failing_segments {
            out.push_str(&format!("segment: {line}\n"));
        }
        for line in &self.host {
            out.push_str(&format!("host: {line}\n"));
        }
        for line in &self.notes {
            out.push_str(&format!("note: {line}\n"));
        }
        out
    }
}
