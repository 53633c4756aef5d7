//! The `lower memory64` pass: turn every 64-bit memory and table into a
//! 32-bit one, with exactly the same behaviour, traps included.
//!
//! Algorithm (the instruction rewrite itself is in
//! [`crate::memory64_common`]):
//!
//! 1. Every memory64 memory gets i32 indices; every table64 table too.
//!    Minimums must fit the 32-bit address space (65536 pages of 64 KiB,
//!    2^32 - 1 pages of 1 byte, 2^32 - 1 table elements): a larger minimum
//!    is refused, since the module could not even start. A larger maximum is
//!    clamped to that limit (the spec lets any grow fail, so this only makes
//!    grows past 4 GiB return -1) and the report says so.
//! 2. Every address, length and index operand of a lowered memory or table
//!    is checked: if its high 32 bits are set the code traps, else it is
//!    wrapped to i32. A 32-bit memory holds at most 2^32 bytes, so such an
//!    access traps in the original as well; below 2^32 the 33-bit effective
//!    address of memory32 is the 65-bit one of memory64. The trap is an
//!    out-of-bounds access, the same kind the original raises. A memarg
//!    offset >= 2^32 always traps: the operands are evaluated, dropped, then
//!    the access traps. `memory.grow`/`table.grow` with a delta >= 2^32 return
//!    -1 without growing; size and grow results are zero-extended (-1 stays
//!    -1). Bulk operations (`memory.fill/copy/init`, `table.fill/copy/init`)
//!    trap before writing anything, in both the original and the output.
//! 3. Active data and element segments of lowered memories and tables get an
//!    `i32.const` offset. Offsets are evaluated statically (constants,
//!    extended-const arithmetic, `global.get` of globals with a known value);
//!    an offset >= 2^32 is out of bounds for any memory the output can have,
//!    so the segment is replaced, at the same position, by one at offset
//!    2^32 - 1 with two bytes (one element) that fails instantiation at the
//!    same point as the original.
//!
//! Function types never change (addresses stay i64 values in the code), so
//! exported functions keep their signatures. Untouched sections and function
//! bodies are copied byte for byte; scratch locals are appended after the
//! existing ones. The output is validated with memory64 turned off.
//!
//! Refused, with the reason: a minimum that does not fit in 32 bits; a
//! segment offset that depends on an imported i64 global (there is no const
//! instruction to wrap it); an empty non-nullable element segment at an
//! offset >= 2^32.
//!
//! Host side: imported memories and tables change type, so the host must
//! provide 32-bit ones (listed in the report); exported ones are 32-bit now.

use crate::error::{Error, Result};
use crate::memory64_common::{
    eval_const, rewrite_code, rewrite_data, rewrite_elements, set_types, Memory64Report, NewOffset,
    Retype, Scan, TypeSetter,
};
use crate::rewrite::Rewrite;
use crate::sections::ids;
use wasm_encoder::reencode::{Reencode, RoundtripReencoder};
use wasmparser::WasmFeatures;

/// Features the output of lowering is validated with: memory64 off.
pub fn output_features() -> WasmFeatures {
    crate::input::features() - WasmFeatures::MEMORY64
}

/// Largest page count of a 32-bit memory with this page size.
pub fn memory32_page_limit(page_size: u64) -> u64 {
    ((1u128 << 32) / page_size as u128).min(u32::MAX as u128) as u64
}

/// Lower every memory64 memory and table64 table of `input` (a valid module).
/// Returns the output module (the input itself when there is nothing to
/// lower) and the report.
pub fn lower_memory64(input: &[u8]) -> Result<(Vec<u8>, Memory64Report)> {
    let scan = Scan::read(input)?;
    let mut notes = Vec::new();
    let mut memories = Vec::new();
    for (i, ty) in scan.memories.iter().enumerate() {
        let mut new = RoundtripReencoder
            .memory_type(*ty)
            .map_err(|e| Error::Internal(e.to_string()))?;
        if ty.memory64 {
            let page_size = 1u64 << ty.page_size_log2.unwrap_or(16);
            let limit = memory32_page_limit(page_size);
            if ty.initial > limit {
                return Err(Error::Refused(format!(
                    "memory {i}: its minimum of {} pages of {page_size} bytes does not fit a 32-bit memory (at most {limit} pages)",
                    ty.initial
                )));
            }
            new.memory64 = false;
            if let Some(max) = ty.maximum.filter(|m| *m > limit) {
                new.maximum = Some(limit);
                notes.push(format!(
                    "memory {i}: maximum clamped from {max} to {limit} pages (the 32-bit limit); grows past it return -1"
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
        if ty.table64 {
            let limit = u32::MAX as u64;
            if ty.initial > limit {
                return Err(Error::Refused(format!(
                    "table {i}: its minimum of {} elements does not fit a 32-bit table (at most {limit})",
                    ty.initial
                )));
            }
            new.table64 = false;
            if let Some(max) = ty.maximum.filter(|m| *m > limit) {
                new.maximum = Some(limit);
                notes.push(format!(
                    "table {i}: maximum clamped from {max} to {limit} elements (the 32-bit limit); grows past it return -1"
                ));
            }
        }
        tables.push(new);
    }
    let retype = Retype::between(&scan, &memories, &tables);
    let mut report = Memory64Report::new("lower memory64", &scan, &memories, &tables);
    report.notes = notes;
    if !retype.changes() {
        report
            .notes
            .push("nothing to lower: the module has no 64-bit memory or table".into());
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

    let mut failing = Vec::new();
    rewrite_data(&mut rewrite, |memory, expr, n| {
        if !retype.memories[memory as usize].changes() {
            return Ok(NewOffset::Keep);
        }
        lowered_offset(
            &scan,
            expr,
            &format!("data segment {n} (memory {memory})"),
            &mut failing,
        )
    })?;
    rewrite_elements(&mut rewrite, |table, expr, n| {
        if !retype.tables[table as usize].changes() {
            return Ok(NewOffset::Keep);
        }
        lowered_offset(
            &scan,
            expr,
            &format!("element segment {n} (table {table})"),
            &mut failing,
        )
    })?;
    report.failing_segments = failing;

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
    let output = rewrite.finish(output_features(), "lower memory64")?;
    Ok((output, report))
}

/// The i32 offset of an active segment of a lowered memory or table.
fn lowered_offset(
    scan: &Scan,
    expr: &wasmparser::ConstExpr,
    what: &str,
    failing: &mut Vec<String>,
) -> Result<NewOffset> {
    let Some(value) = eval_const(expr, &scan.globals) else {
        return Err(Error::Refused(format!(
            "{what}: its offset `{}` is not known statically (it depends on an imported i64 global), and a 32-bit offset cannot be computed from it in a constant expression",
            scan.describe_const(expr)
        )));
    };
    let value = value.unsigned();
    if value > u32::MAX as u64 {
        failing.push(format!(
            "{what}: offset {value} is >= 2^32, past the end of any 32-bit memory or table: kept as a segment that fails instantiation, as the original does"
        ));
        return Ok(NewOffset::Trap);
    }
    Ok(NewOffset::Expr(wasm_encoder::ConstExpr::i32_const(
        value as u32 as i32,
    )))
}
