//! The two adjustments a [`crate::Session`] makes to a module before it
//! instantiates it, both through wasm-mem's rewrite core (every section not
//! named below is copied byte for byte, and the result is validated):
//!
//! 1. **Every memory reachable by index.** wasmtime reaches an instance's
//!    memories only through exports, so [`expose_memories`] gives each memory
//!    that has no export one more export, `wasm-mem:memory:N` (a suffix is
//!    added if that name is taken). Only the export section is re-encoded
//!    (its existing entries are kept as they are, in order). Exports are not
//!    observable by the module itself, so its behaviour is unchanged.
//!
//! 2. **Budgets in the memory types.** wasmtime's `ResourceLimiter`
//!    callbacks say how big the growing memory is and what its maximum is, but
//!    not which memory it is; two memories of the same size are
//!    indistinguishable there. [`cap_maximums`] therefore lowers each budgeted
//!    memory's declared maximum to its budget (min(max, budget); wasm-mem's
//!    `pages` pass, so only the memory or import section is re-encoded). The
//!    limiter then receives each memory's own budget as `maximum` and can
//!    refuse exactly the grows that pass it, without knowing which memory
//!    grows: sound for any number of memories. Shared memories, whose growth
//!    wasmtime never reports to the limiter, are bounded by the same declared
//!    maximum. The only observable difference is the one the budget asks
//!    for: `memory.grow` returns -1 past the budget (the spec lets a grow fail
//!    at any time), and the host sees the lowered maximum in the memory type.
//!
//! Refused: a budget for a memory that does not exist, and a budget below a
//! memory's initial size (the module could not even start).

use crate::budget::Budget;
use crate::error::{Error, Result};
use wasm_encoder::reencode::{Reencode, RoundtripReencoder};
use wasm_mem::manifest::{Manifest, MaxPages};
use wasm_mem::pages::{set_pages, PageFlags};
use wasm_mem::rewrite::Rewrite;
use wasm_mem::sections::ids;
use wasm_mem::ModuleInfo;

/// Prefix of the exports [`expose_memories`] adds.
pub const EXPORT_PREFIX: &str = "wasm-mem:memory:";

/// A module ready to instantiate.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The module to instantiate.
    pub module: Vec<u8>,
    /// Its memory model (with the budgeted maximums).
    pub info: ModuleInfo,
    /// The model of the module as given (original maximums).
    pub original: ModuleInfo,
    /// For each memory index, the export name that reaches it.
    pub memory_exports: Vec<String>,
}

/// Prepare `module` (binary, valid) for a run under `budget`.
pub fn prepare(module: &[u8], budget: &Budget) -> Result<Prepared> {
    let original = ModuleInfo::read(module)?;
    let capped = cap_maximums(module, &original, budget)?;
    let (exposed, memory_exports) = expose_memories(&capped)?;
    let info = ModuleInfo::read(&exposed)?;
    Ok(Prepared {
        module: exposed,
        info,
        original,
        memory_exports,
    })
}

/// Lower each budgeted memory's maximum to its budget. Returns the input
/// unchanged when no maximum needs lowering.
pub fn cap_maximums(module: &[u8], info: &ModuleInfo, budget: &Budget) -> Result<Vec<u8>> {
    let mut flags = Vec::new();
    for (index, pages) in budget.iter() {
        let Some(memory) = info.memories.get(index as usize) else {
            return Err(Error::Budget(format!(
                "memory {index} does not exist: the module has {} memor{}",
                info.memories.len(),
                if info.memories.len() == 1 { "y" } else { "ies" }
            )));
        };
        if pages < memory.min_pages {
            return Err(Error::Budget(format!(
                "memory {index} starts at {} pages of {} bytes but the budget is {pages} pages",
                memory.min_pages, memory.page_size
            )));
        }
        if memory.max_pages.is_none_or(|max| pages < max) {
            flags.push((
                index,
                PageFlags {
                    max: Some(MaxPages::Pages(pages)),
                    ..PageFlags::default()
                },
            ));
        }
    }
    if flags.is_empty() {
        return Ok(module.to_vec());
    }
    let (output, _report) = set_pages(module, info, &flags, &Manifest::default())?;
    Ok(output)
}

/// Give every memory without an export one (`wasm-mem:memory:N`), and return
/// the export name that reaches each memory, by index.
pub fn expose_memories(module: &[u8]) -> Result<(Vec<u8>, Vec<String>)> {
    let info = ModuleInfo::read(module)?;
    let mut rewrite = Rewrite::new(module)?;
    let export_section = rewrite.find(ids::EXPORT);
    let parse_err =
        |e: wasmparser::BinaryReaderError| Error::Module(wasm_mem::Error::from_parser(module, &e));
    let mut taken = std::collections::HashSet::new();
    if let Some(index) = export_section {
        let reader =
            wasmparser::ExportSectionReader::new(rewrite.reader(index)).map_err(parse_err)?;
        for export in reader {
            taken.insert(export.map_err(parse_err)?.name.to_string());
        }
    }
    let mut names = Vec::new();
    let mut added = Vec::new();
    for memory in &info.memories {
        if let Some(name) = memory.exports.first() {
            names.push(name.clone());
            continue;
        }
        let mut name = format!("{EXPORT_PREFIX}{}", memory.index);
        let mut suffix = 1;
        while taken.contains(&name) {
            name = format!("{EXPORT_PREFIX}{}.{suffix}", memory.index);
            suffix += 1;
        }
        taken.insert(name.clone());
        added.push((name.clone(), memory.index));
        names.push(name);
    }
    if added.is_empty() {
        return Ok((module.to_vec(), names));
    }
    let mut section = wasm_encoder::ExportSection::new();
    if let Some(index) = export_section {
        let reader =
            wasmparser::ExportSectionReader::new(rewrite.reader(index)).map_err(parse_err)?;
        RoundtripReencoder
            .parse_export_section(&mut section, reader)
            .map_err(|e| {
                Error::Module(wasm_mem::Error::Internal(format!(
                    "re-encoding exports: {e}"
                )))
            })?;
    }
    for (name, index) in &added {
        section.export(name, wasm_encoder::ExportKind::Memory, *index);
    }
    rewrite.set(&section);
    let output = rewrite.finish(wasm_mem::input::features(), "expose-memories")?;
    Ok((output, names))
}
