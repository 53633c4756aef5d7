//! The static footprint of each memory, and the budget check built on it.
//!
//! The footprint is the number of bytes a memory must hold when the module
//! starts:
//!
//! - the end of the highest active data segment whose offset is known
//!   (a constant, or a `global.get` of a global the module defines);
//! - for memory 0, the layout symbols wasm-ld and Emscripten emit: the
//!   initial `__stack_pointer` (the stack top: the stack grows down from it),
//!   `__data_end`, `__heap_base`, `__stack_high` and `__heap_end`;
//! - plus the manifest's `stack-size` when the module has no stack pointer
//!   (otherwise the stack is already below the stack top), and its
//!   `heap-size` when the module has no `__heap_end` (the heap starts at the
//!   static end; the module does not say how large it gets).
//!
//! Segments at offsets that depend on an imported global (Emscripten side
//! modules at `global.get $__memory_base`) cannot be placed statically; their
//! size is reported as relocatable data and not counted.

use crate::manifest::{Manifest, MaxPages, MemorySettings};
use crate::model::{MemoryInfo, ModuleInfo, SymbolSource, SCHEMA_VERSION};
use serde::Serialize;

/// The footprint of one memory.
#[derive(Debug, Clone, Serialize)]
pub struct Footprint {
    /// Memory index.
    pub memory: u32,
    /// Page size in bytes.
    pub page_size: u64,
    /// End of the highest active data segment at a known offset.
    pub data_end: u128,
    /// Initial `__stack_pointer` (memory 0 only).
    pub stack_top: Option<u64>,
    /// `__data_end` (memory 0 only).
    pub data_end_symbol: Option<u64>,
    /// `__heap_base` (memory 0 only).
    pub heap_base: Option<u64>,
    /// `__heap_end` (memory 0 only).
    pub heap_end: Option<u64>,
    /// Highest of the above: what the module itself says it uses.
    pub static_end: u128,
    /// Stack bytes added from the manifest (0 when the module has a stack pointer).
    pub stack_reserve: u64,
    /// Heap bytes added from the manifest (0 when the module has `__heap_end`).
    pub heap_reserve: u64,
    /// Bytes needed at start-up.
    pub bytes: u128,
    /// Pages needed at start-up (`bytes` rounded up to whole pages).
    pub pages: u128,
    /// Bytes of data at offsets that are only known at instantiation.
    pub relocatable_data_bytes: u64,
}

/// Compute the footprint of `memory` with the manifest's reservations.
pub fn footprint(info: &ModuleInfo, memory: &MemoryInfo, settings: &MemorySettings) -> Footprint {
    let mut data_end = 0u128;
    let mut relocatable = 0u64;
    for segment in &info.data_segments {
        if segment.memory != Some(memory.index) {
            continue;
        }
        match segment.known_extent() {
            Some(extent) => data_end = data_end.max(extent.end),
            None => relocatable += segment.len,
        }
    }
    let symbol = |name: &str| {
        if memory.index != 0 {
            return None;
        }
        info.symbol(name).and_then(|s| s.value)
    };
    let stack_top = symbol("__stack_pointer");
    let data_end_symbol = symbol("__data_end");
    let heap_base = symbol("__heap_base");
    let heap_end = symbol("__heap_end");
    let stack_high = symbol("__stack_high");
    let static_end = [stack_top, data_end_symbol, heap_base, heap_end, stack_high]
        .into_iter()
        .flatten()
        .map(u128::from)
        .fold(data_end, u128::max);
    let stack_reserve = if stack_top.is_some() {
        0
    } else {
        settings.stack_size.unwrap_or(0)
    };
    let heap_reserve = if heap_end.is_some() {
        0
    } else {
        settings.heap_size.unwrap_or(0)
    };
    let bytes = static_end + stack_reserve as u128 + heap_reserve as u128;
    let page = memory.page_size.max(1) as u128;
    Footprint {
        memory: memory.index,
        page_size: memory.page_size,
        data_end,
        stack_top,
        data_end_symbol,
        heap_base,
        heap_end,
        static_end,
        stack_reserve,
        heap_reserve,
        bytes,
        pages: bytes.div_ceil(page),
        relocatable_data_bytes: relocatable,
    }
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Makes the check fail.
    Error,
    /// Worth knowing; the check still passes.
    Warning,
    /// For information.
    Note,
}

/// One thing the check found.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// How serious.
    pub severity: Severity,
    /// What, in a sentence.
    pub message: String,
}

/// Where a budget came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetSource {
    /// `--budget-pages`.
    CommandLine,
    /// The manifest's `pages` or `max-pages`.
    Manifest,
    /// No budget given: the memory's declared initial size.
    DeclaredMin,
}

/// The check of one memory.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryCheck {
    /// Memory index.
    pub memory: u32,
    /// The footprint.
    pub footprint: Footprint,
    /// Budget in pages.
    pub budget_pages: u64,
    /// Where the budget came from.
    pub budget_source: BudgetSource,
    /// Pages the memory takes at start-up: the larger of footprint and declared minimum.
    pub startup_pages: u128,
    /// `true` when the start-up size fits the budget.
    pub fits: bool,
    /// Bytes over the budget (0 when it fits).
    pub over_by_bytes: u128,
    /// Pages over the budget (0 when it fits).
    pub over_by_pages: u128,
    /// Findings for this memory.
    pub findings: Vec<Finding>,
}

/// The whole check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// JSON schema version.
    pub schema_version: u32,
    /// `true` when every memory fits and nothing is an error.
    pub ok: bool,
    /// Per memory.
    pub memories: Vec<MemoryCheck>,
}

/// Budgets given on the command line: `(memory index, pages)`.
pub type CliBudgets = Vec<(u32, u64)>;

/// Run the footprint check on every memory.
pub fn check(info: &ModuleInfo, manifest: &Manifest, cli: &CliBudgets) -> CheckReport {
    let mut memories = Vec::new();
    for memory in &info.memories {
        let settings = manifest.memory(memory.index);
        let fp = footprint(info, memory, &settings);
        let cli_budget = cli
            .iter()
            .find(|(m, _)| *m == memory.index)
            .map(|(_, p)| *p);
        let manifest_budget = match settings.max() {
            Some(MaxPages::Pages(p)) => Some(p),
            _ => None,
        };
        let (budget_pages, budget_source) = match (cli_budget, manifest_budget) {
            (Some(p), _) => (p, BudgetSource::CommandLine),
            (None, Some(p)) => (p, BudgetSource::Manifest),
            (None, None) => (memory.min_pages, BudgetSource::DeclaredMin),
        };
        let page = memory.page_size as u128;
        let budget_bytes = budget_pages as u128 * page;
        let startup_pages = fp.pages.max(memory.min_pages as u128);
        let startup_bytes = fp.bytes.max(memory.min_bytes());
        let fits = startup_pages <= budget_pages as u128;
        let over_by_bytes = startup_bytes.saturating_sub(budget_bytes);
        let over_by_pages = startup_pages.saturating_sub(budget_pages as u128);
        let mut findings = Vec::new();
        if !fits {
            let why = if fp.pages >= memory.min_pages as u128 {
                format!(
                    "needs {} bytes ({} pages of {} bytes) at start-up",
                    fp.bytes, fp.pages, memory.page_size
                )
            } else {
                format!(
                    "declares an initial size of {} pages ({} bytes)",
                    memory.min_pages,
                    memory.min_bytes()
                )
            };
            findings.push(Finding {
                severity: Severity::Error,
                message: format!(
                    "memory {} {why}, over the budget of {budget_pages} pages by {over_by_bytes} bytes ({over_by_pages} pages)",
                    memory.index
                ),
            });
        }
        findings.extend(memory_findings(info, memory));
        memories.push(MemoryCheck {
            memory: memory.index,
            footprint: fp,
            budget_pages,
            budget_source,
            startup_pages,
            fits,
            over_by_bytes,
            over_by_pages,
            findings,
        });
    }
    let ok = memories
        .iter()
        .all(|m| m.fits && m.findings.iter().all(|f| f.severity != Severity::Error));
    CheckReport {
        schema_version: SCHEMA_VERSION,
        ok,
        memories,
    }
}

/// Findings that do not depend on a budget: segments that trap at
/// instantiation, `memory.grow` on a fixed memory, guessed symbols.
pub fn memory_findings(info: &ModuleInfo, memory: &MemoryInfo) -> Vec<Finding> {
    let mut findings = Vec::new();
    let min_bytes = memory.min_bytes();
    for segment in &info.data_segments {
        if segment.memory != Some(memory.index) {
            continue;
        }
        let Some(extent) = segment.known_extent() else {
            continue;
        };
        if extent.end <= min_bytes {
            continue;
        }
        let message = format!(
            "data segment {} ({} bytes at offset {}) ends at byte {}, past the initial size of memory {} ({} bytes)",
            segment.index, segment.len, extent.start, extent.end, memory.index, min_bytes
        );
        if memory.import.is_some() {
            let pages = extent.end.div_ceil(memory.page_size as u128);
            findings.push(Finding {
                severity: Severity::Warning,
                message: format!(
                    "{message}: instantiation traps unless the host provides at least {pages} pages"
                ),
            });
        } else {
            findings.push(Finding {
                severity: Severity::Error,
                message: format!("{message}: instantiation traps"),
            });
        }
    }
    if memory.is_fixed() && memory.instructions.grow > 0 {
        findings.push(Finding {
            severity: Severity::Warning,
            message: format!(
                "memory {} is fixed at {} pages (min = max) but the code has {} memory.grow instruction(s): every grow returns -1",
                memory.index, memory.min_pages, memory.instructions.grow
            ),
        });
    }
    if memory.index == 0 {
        if let Some(sp) = info
            .symbol("__stack_pointer")
            .filter(|s| s.source == SymbolSource::Heuristic)
        {
            findings.push(Finding {
                severity: Severity::Note,
                message: format!(
                    "no name for the stack pointer: global {} was taken for __stack_pointer (first defined mutable global, start value {})",
                    sp.global,
                    sp.value.unwrap_or(0)
                ),
            });
        }
    }
    let relocatable: u64 = info
        .data_segments
        .iter()
        .filter(|s| s.memory == Some(memory.index) && s.known_extent().is_none())
        .map(|s| s.len)
        .sum();
    if relocatable > 0 {
        findings.push(Finding {
            severity: Severity::Note,
            message: format!(
                "{relocatable} bytes of data sit at offsets known only at instantiation (global.get of an imported global) and are not counted"
            ),
        });
    }
    findings
}
