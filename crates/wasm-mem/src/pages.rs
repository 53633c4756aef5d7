//! The `pages` pass: set the minimum and maximum page counts of memories.
//!
//! Algorithm: for every memory, each limit is taken from the highest source
//! that sets it: command line, then manifest, then the module's own value
//! ([`resolve`]). `fixed` makes the maximum equal the resolved minimum. Only
//! the section that declares a changed memory is re-encoded: the memory
//! section for defined memories, the import section for imported ones (the
//! import's type changes). Every other section is copied byte for byte; when
//! no limit changes, the output is the input, byte for byte.
//!
//! Refuses (with the numbers): a maximum below the minimum; a minimum or
//! maximum above the address space (2^32 bytes for memory32, 2^64 for
//! memory64, counted in the memory's own page size: 65536 and 2^48 pages of
//! 64 KiB); removing the maximum of a shared memory; and a minimum below the
//! static footprint (see [`crate::footprint`]), since the module would trap
//! or overwrite its data at start-up.

use crate::error::{Error, Result};
use crate::footprint::footprint;
use crate::manifest::{Manifest, MaxPages};
use crate::model::{MemoryInfo, ModuleInfo};
use crate::rewrite::Rewrite;
use crate::sections::ids;
use serde::Serialize;
use wasm_encoder::reencode::{Reencode, RoundtripReencoder};

/// Limits asked for one memory on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageFlags {
    /// `--pages N`: min = max = N.
    pub pages: Option<u64>,
    /// `--min N`.
    pub min: Option<u64>,
    /// `--max N` or `--max none`.
    pub max: Option<MaxPages>,
    /// `--fixed`: max = min.
    pub fixed: bool,
}

impl PageFlags {
    /// `true` when no flag is set.
    pub fn is_empty(&self) -> bool {
        *self == PageFlags::default()
    }
}

/// Where a resolved limit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitSource {
    /// A command-line flag.
    CommandLine,
    /// The manifest.
    Manifest,
    /// The module's own value.
    Module,
}

impl std::fmt::Display for LimitSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LimitSource::CommandLine => "the command line",
            LimitSource::Manifest => "the manifest",
            LimitSource::Module => "the module",
        })
    }
}

/// The limits of one memory before and after.
#[derive(Debug, Clone, Serialize)]
pub struct LimitChange {
    /// Memory index.
    pub memory: u32,
    /// `true` when the memory is imported (its import type changes).
    pub imported: bool,
    /// Minimum before.
    pub min_before: u64,
    /// Maximum before.
    pub max_before: Option<u64>,
    /// Minimum after.
    pub min_after: u64,
    /// Maximum after.
    pub max_after: Option<u64>,
    /// Where the new minimum came from.
    pub min_source: LimitSource,
    /// Where the new maximum came from.
    pub max_source: LimitSource,
}

impl LimitChange {
    /// `true` when min or max differ from the module's.
    pub fn changes(&self) -> bool {
        self.min_before != self.min_after || self.max_before != self.max_after
    }
}

/// Result of the pass.
#[derive(Debug, Clone, Serialize)]
pub struct PagesReport {
    /// One entry per memory.
    pub memories: Vec<LimitChange>,
    /// Warnings (e.g. a fixed memory whose code still grows it).
    pub warnings: Vec<String>,
}

/// Resolve the limits of `memory`: command line beats manifest beats module.
pub fn resolve(memory: &MemoryInfo, flags: &PageFlags, manifest: &Manifest) -> Result<LimitChange> {
    let settings = manifest.memory(memory.index);
    let (min, min_source) = if let Some(p) = flags.pages.or(flags.min) {
        (p, LimitSource::CommandLine)
    } else if let Some(p) = settings.min() {
        (p, LimitSource::Manifest)
    } else {
        (memory.min_pages, LimitSource::Module)
    };
    let (max, max_source) = if flags.fixed {
        (Some(min), LimitSource::CommandLine)
    } else if let Some(p) = flags.pages {
        (Some(p), LimitSource::CommandLine)
    } else if let Some(m) = flags.max {
        (max_value(m), LimitSource::CommandLine)
    } else if let Some(m) = settings.max() {
        (max_value(m), LimitSource::Manifest)
    } else {
        (memory.max_pages, LimitSource::Module)
    };
    let change = LimitChange {
        memory: memory.index,
        imported: memory.import.is_some(),
        min_before: memory.min_pages,
        max_before: memory.max_pages,
        min_after: min,
        max_after: max,
        min_source,
        max_source,
    };
    let limit = memory.address_space_pages();
    let space = if memory.memory64 { "2^64" } else { "2^32" };
    let check_space = |pages: u64, what: &str, source: LimitSource| {
        if pages as u128 > limit {
            Err(Error::Refused(format!(
                "memory {}: {what} of {pages} pages (from {source}) is above the address-space limit of {limit} pages of {} bytes ({space} bytes)",
                memory.index, memory.page_size
            )))
        } else {
            Ok(())
        }
    };
    check_space(min, "a minimum", min_source)?;
    if let Some(max) = max {
        check_space(max, "a maximum", max_source)?;
        if max < min {
            return Err(Error::Refused(format!(
                "memory {}: the maximum of {max} pages (from {max_source}) is below the minimum of {min} pages (from {min_source})",
                memory.index
            )));
        }
    } else if memory.shared {
        return Err(Error::Refused(format!(
            "memory {} is shared and must keep a maximum (from {max_source})",
            memory.index
        )));
    }
    Ok(change)
}

fn max_value(max: MaxPages) -> Option<u64> {
    match max {
        MaxPages::Pages(p) => Some(p),
        MaxPages::Unbounded => None,
    }
}

/// Set page counts. `flags` holds command-line limits per memory index.
/// Returns the output module (the input itself when nothing changes).
pub fn set_pages(
    input: &[u8],
    info: &ModuleInfo,
    flags: &[(u32, PageFlags)],
    manifest: &Manifest,
) -> Result<(Vec<u8>, PagesReport)> {
    for (index, _) in flags {
        if *index as usize >= info.memories.len() {
            return Err(Error::Refused(format!(
                "memory {index} does not exist: the module has {} memor{}",
                info.memories.len(),
                if info.memories.len() == 1 { "y" } else { "ies" }
            )));
        }
    }
    let mut changes = Vec::new();
    let mut warnings = Vec::new();
    for memory in &info.memories {
        let own = flags
            .iter()
            .find(|(i, _)| *i == memory.index)
            .map(|(_, f)| f.clone())
            .unwrap_or_default();
        let change = resolve(memory, &own, manifest)?;
        if change.changes() {
            let fp = footprint(info, memory, &manifest.memory(memory.index));
            // Only a minimum someone asks for is held to the footprint; a
            // module's own minimum is left as the module has it.
            if change.min_source != LimitSource::Module && (change.min_after as u128) < fp.pages {
                return Err(Error::Refused(format!(
                    "memory {}: a minimum of {} pages (from {}) is below the static footprint: the module needs {} bytes ({} pages of {} bytes) at start-up",
                    memory.index, change.min_after, change.min_source, fp.bytes, fp.pages, memory.page_size
                )));
            }
            if change.max_after == Some(change.min_after) && memory.instructions.grow > 0 {
                warnings.push(format!(
                    "memory {} is now fixed at {} pages but the code has {} memory.grow instruction(s): every grow will return -1",
                    memory.index, change.min_after, memory.instructions.grow
                ));
            }
        }
        changes.push(change);
    }
    let report = PagesReport {
        memories: changes,
        warnings,
    };
    if !report.memories.iter().any(LimitChange::changes) {
        return Ok((input.to_vec(), report));
    }
    let mut rewrite = Rewrite::new(input)?;
    let mut reencoder = LimitsReencoder {
        changes: &report.memories,
        next_memory: 0,
    };
    let imported_changed = report.memories.iter().any(|c| c.imported && c.changes());
    let defined_changed = report.memories.iter().any(|c| !c.imported && c.changes());
    let err = |e: wasm_encoder::reencode::Error<std::convert::Infallible>| {
        Error::Internal(format!("re-encoding failed: {e}"))
    };
    let parse_err = |e: wasmparser::BinaryReaderError| Error::from_parser(input, &e);
    if imported_changed {
        let index = rewrite
            .find(ids::IMPORT)
            .expect("imported memory without import section");
        let reader =
            wasmparser::ImportSectionReader::new(rewrite.reader(index)).map_err(parse_err)?;
        let mut section = wasm_encoder::ImportSection::new();
        reencoder.next_memory = 0;
        reencoder
            .parse_import_section(&mut section, reader)
            .map_err(err)?;
        rewrite.replace(index, &section);
    }
    if defined_changed {
        let index = rewrite
            .find(ids::MEMORY)
            .expect("defined memory without memory section");
        let reader =
            wasmparser::MemorySectionReader::new(rewrite.reader(index)).map_err(parse_err)?;
        let mut section = wasm_encoder::MemorySection::new();
        reencoder.next_memory = info.memories.iter().filter(|m| m.import.is_some()).count() as u32;
        reencoder
            .parse_memory_section(&mut section, reader)
            .map_err(err)?;
        rewrite.replace(index, &section);
    }
    let output = rewrite.finish(crate::input::features(), "pages")?;
    Ok((output, report))
}

/// Re-encodes memory types in index order, applying new limits.
struct LimitsReencoder<'a> {
    changes: &'a [LimitChange],
    next_memory: u32,
}

impl Reencode for LimitsReencoder<'_> {
    type Error = std::convert::Infallible;

    fn memory_type(
        &mut self,
        ty: wasmparser::MemoryType,
    ) -> std::result::Result<wasm_encoder::MemoryType, wasm_encoder::reencode::Error<Self::Error>>
    {
        let index = self.next_memory;
        self.next_memory += 1;
        let mut encoded = RoundtripReencoder.memory_type(ty)?;
        if let Some(change) = self.changes.iter().find(|c| c.memory == index) {
            encoded.minimum = change.min_after;
            encoded.maximum = change.max_after;
        }
        Ok(encoded)
    }
}
