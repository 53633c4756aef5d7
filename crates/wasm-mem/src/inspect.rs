//! The `inspect` report: the model plus per-memory data summaries and
//! footprints, in the stable JSON schema of `docs/json-schema.md`.

use crate::footprint::{footprint, memory_findings, Finding, Footprint};
use crate::manifest::Manifest;
use crate::model::{DataSegment, LayoutSymbol, MemoryInfo, ModuleInfo, SCHEMA_VERSION};
use serde::Serialize;

/// Data segments of one memory, summed up.
#[derive(Debug, Clone, Serialize)]
pub struct DataSummary {
    /// Memory index.
    pub memory: u32,
    /// Active segments.
    pub segments: u64,
    /// Payload bytes.
    pub bytes: u64,
    /// Zero bytes among them.
    pub zero_bytes: u64,
    /// Lowest start of a segment at a known offset.
    pub lowest: Option<u128>,
    /// Highest end of a segment at a known offset.
    pub highest: Option<u128>,
    /// Segments whose offset is only known at instantiation.
    pub relocatable_segments: u64,
}

/// Passive segments, summed up.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PassiveSummary {
    /// Passive segments.
    pub segments: u64,
    /// Payload bytes.
    pub bytes: u64,
    /// Zero bytes among them.
    pub zero_bytes: u64,
}

/// Everything `inspect` reports.
#[derive(Debug, Clone, Serialize)]
pub struct InspectReport<'a> {
    /// JSON schema version.
    pub schema_version: u32,
    /// Input size in bytes.
    pub module_size: usize,
    /// Memories.
    pub memories: &'a [MemoryInfo],
    /// Active data per memory.
    pub data: Vec<DataSummary>,
    /// Passive data.
    pub passive_data: PassiveSummary,
    /// Every data segment.
    pub data_segments: &'a [DataSegment],
    /// The data count section's value.
    pub data_count: Option<u32>,
    /// `data.drop` instructions.
    pub data_drops: u64,
    /// Layout symbols.
    pub layout: &'a [LayoutSymbol],
    /// Footprint per memory.
    pub footprint: Vec<Footprint>,
    /// Findings per memory (segments that trap at instantiation, ...).
    pub findings: Vec<Finding>,
}

/// Build the report.
pub fn inspect<'a>(
    info: &'a ModuleInfo,
    module_size: usize,
    manifest: &Manifest,
) -> InspectReport<'a> {
    let mut data = Vec::new();
    for memory in &info.memories {
        let mut summary = DataSummary {
            memory: memory.index,
            segments: 0,
            bytes: 0,
            zero_bytes: 0,
            lowest: None,
            highest: None,
            relocatable_segments: 0,
        };
        for segment in info
            .data_segments
            .iter()
            .filter(|s| s.memory == Some(memory.index))
        {
            summary.segments += 1;
            summary.bytes += segment.len;
            summary.zero_bytes += segment.zero_bytes;
            match segment.known_extent() {
                Some(extent) => {
                    summary.lowest =
                        Some(summary.lowest.map_or(extent.start, |l| l.min(extent.start)));
                    summary.highest =
                        Some(summary.highest.map_or(extent.end, |h| h.max(extent.end)));
                }
                None => summary.relocatable_segments += 1,
            }
        }
        data.push(summary);
    }
    let mut passive_data = PassiveSummary::default();
    for segment in info.data_segments.iter().filter(|s| s.passive) {
        passive_data.segments += 1;
        passive_data.bytes += segment.len;
        passive_data.zero_bytes += segment.zero_bytes;
    }
    let footprint = info
        .memories
        .iter()
        .map(|m| footprint(info, m, &manifest.memory(m.index)))
        .collect();
    let findings = info
        .memories
        .iter()
        .flat_map(|m| memory_findings(info, m))
        .collect();
    InspectReport {
        schema_version: SCHEMA_VERSION,
        module_size,
        memories: &info.memories,
        data,
        passive_data,
        data_segments: &info.data_segments,
        data_count: info.data_count,
        data_drops: info.data_drops,
        layout: &info.layout,
        footprint,
        findings,
    }
}
