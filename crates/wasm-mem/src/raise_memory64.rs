//! The `raise memory64` pass: turn 32-bit memories (all, or the chosen ones)
//! and optionally 32-bit tables into 64-bit ones, with exactly the same
//! behaviour, traps included. Useful to run memory32 programs and test
//! suites on a runtime's memory64 path (A/B testing).
//!
//! Algorithm (the instruction rewrite itself is in
//! [`crate::memory64_common`]):
//!
//! 1. Each raised memory gets i64 indices. Its maximum stays; a memory
//!    without a maximum gets the 32-bit limit (65536 pages of 64 KiB) as its
//!    maximum, so it grows exactly as far as before and `memory.size` always
//!    fits the i32 the code expects. With `--tables`, tables become table64
//!    the same way (a missing maximum becomes 2^32 - 1 elements).
//! 2. Address, length and index operands are zero-extended with
//!    `i64.extend_i32_u` (memory32 reads them as unsigned). Memarg offsets of
//!    memory32 are below 2^32, so the 65-bit effective address of the output
//!    equals the 33-bit one of the input: every access traps exactly where
//!    it did. `memory.grow` deltas are zero-extended and the results of
//!    `memory.size`/`memory.grow` (and the table ones) are wrapped back to
//!    i32: -1 stays -1 and sizes are below 2^32.
//! 3. Active segment offsets become `i64.const` of the (zero-extended) i32
//!    offset, evaluated statically (constants, extended-const arithmetic in
//!    32-bit wrapping arithmetic, `global.get` of globals with a known
//!    value).
//!
//! Function types never change, so exported functions keep their
//! signatures. Untouched sections and function bodies are copied byte for
//! byte; scratch locals are appended after the existing ones.
//!
//! Refused, with the reason: a chosen memory that is already 64-bit or does
//! not exist; a segment offset that depends on an imported i32 global (a
//! constant expression cannot zero-extend it).
//!
//! Host side: imported memories and tables change type, so the host must
//! provide 64-bit ones (listed in the report); exported ones are 64-bit now.

use crate::error::{Error, Result};
use crate::lower_memory64::memory32_page_limit;
use crate::memory64_common::{
    eval_const, rewrite_code, rewrite_data, rewrite_elements, set_types, Memory64Report, NewOffset,
    Retype, Scan, TypeSetter,
};
use crate::rewrite::Rewrite;
use crate::sections::ids;
use wasm_encoder::reencode::{Reencode, RoundtripReencoder};

/// What to raise.
#[derive(Debug, Clone, Default)]
pub struct RaiseOptions {
    /// Memories to raise; `None` means every 32-bit memory.
    pub memories: Option<Vec<u32>>,
    /// Raise 32-bit tables to table64 too.
    pub tables: bool,
}

/// Raise memories (and with `options.tables`, tables) of `input` (a valid
/// module) to 64-bit indices. Returns the output module (the input itself
/// when there is nothing to raise) and the report.
pub fn raise_memory64(input: &[u8], options: &RaiseOptions) -> Result<(Vec<u8>, Memory64Report)> {
    let scan = Scan::read(input)?;
    for index in options.memories.iter().flatten() {
        match scan.memories.get(*index as usize) {
            None => {
                return Err(Error::Refused(format!(
                    "memory {index} does not exist: the module has {} memor{}",
                    scan.memories.len(),
                    if scan.memories.len() == 1 { "y" } else { "ies" }
                )))
            }
            Some(m) if m.memory64 => {
                return Err(Error::Refused(format!(
                    "memory {index} is already a 64-bit memory"
                )))
            }
            Some(_) => {}
        }
    }
    let chosen = |i: usize| {
        !scan.memories[i].memory64
            && options
                .memories
                .as_ref()
                .is_none_or(|list| list.contains(&(i as u32)))
    };
    let mut notes = Vec::new();
    let mut memories = Vec::new();
    for (i, ty) in scan.memories.iter().enumerate() {
        let mut new = RoundtripReencoder
            .memory_type(*ty)
            .map_err(|e| Error::Internal(e.to_string()))?;
        if chosen(i) {
            new.memory64 = true;
            if ty.maximum.is_none() {
                let limit = memory32_page_limit(1u64 << ty.page_size_log2.unwrap_or(16));
                new.maximum = Some(limit);
                notes.push(format!(
                    "memory {i}: had no maximum; it gets the 32-bit limit of {limit} pages as maximum, so it grows exactly as far as before"
                ));
            }
        }
        memories.push(new);
    }
    let mut tables = Vec::new();
    for (i, ty) in scan.tables.iter().enumerate() {
        let mut new = RoundtripReencoder
            .table_type(*ty)
            .map_err(|e| Error::Internal(e.to_string()))?;
        if options.tables && !ty.table64 {
            new.table64 = true;
            if ty.maximum.is_none() {
                new.maximum = Some(u32::MAX as u64);
                notes.push(format!(
                    "table {i}: had no maximum; it gets the 32-bit limit of {} elements as maximum",
                    u32::MAX
                ));
            }
        }
        tables.push(new);
    }
    let retype = Retype::between(&scan, &memories, &tables);
    let mut report = Memory64Report::new("raise memory64", &scan, &memories, &tables);
    report.notes = notes;
    if !retype.changes() {
        report.notes.push(
            "nothing to raise: the module has no 32-bit memory (or table, with --tables)".into(),
        );
        return Ok((input.to_vec(), report));
    }
    let mut rewrite = Rewrite::new(input)?;
    let mut setter = TypeSetter {
        memories: memories.clone(),
        tables,
        next_memory: 0,
        next_table: 0,
    };
    set_types(&mut rewrite, &scan, &retype, &mut setter)?;
    rewrite_data(&mut rewrite, |memory, expr, n| {
        if !retype.memories[memory as usize].changes() {
            return Ok(NewOffset::Keep);
        }
        raised_offset(&scan, expr, &format!("data segment {n} (memory {memory})"))
    })?;
    rewrite_elements(&mut rewrite, |table, expr, n| {
        if !retype.tables[table as usize].changes() {
            return Ok(NewOffset::Keep);
        }
        raised_offset(&scan, expr, &format!("element segment {n} (table {table})"))
    })?;
    if let Some(index) = rewrite.find(ids::CODE) {
        let (code, stats) = rewrite_code(input, &scan, &retype, rewrite.reader(index))?;
        if stats.functions_rewritten > 0 {
            rewrite.replace(index, &code);
        }
        report.code = stats;
    }
    report.describe_host(&memories);
    if scan.has_dwarf && report.code.functions_rewritten > 0 {
        report.notes.push(
            "DWARF sections are copied as they are; code offsets in them are now stale".into(),
        );
    }
    let output = rewrite.finish(crate::input::features(), "raise memory64")?;
    Ok((output, report))
}

/// The i64 offset of an active segment of a raised memory or table.
fn raised_offset(scan: &Scan, expr: &wasmparser::ConstExpr, what: &str) -> Result<NewOffset> {
    let Some(value) = eval_const(expr, &scan.globals) else {
        return Err(Error::Refused(format!(
            "{what}: its offset `{}` is not known statically (it depends on an imported i32 global), and a constant expression cannot zero-extend it to i64",
            scan.describe_const(expr)
        )));
    };
    Ok(NewOffset::Expr(wasm_encoder::ConstExpr::i64_const(
        value.unsigned() as i64,
    )))
}
