//! An SVG memory map: one panel per memory.
//!
//! Each panel has an address bar (initial memory, data segments with their
//! zero bytes shown lighter, the stack below the initial stack pointer, the
//! heap from `__heap_base`, the declared minimum and maximum) and a page grid
//! (one cell per page, or per group of pages for large memories) coloured by
//! what the page holds. Everything is drawn from the model; the SVG is
//! self-contained and needs no script or font beyond the generic sans-serif.
//!
//! Size is bounded whatever the module declares: the grid cells are shared
//! out among the memories (at least [`MIN_CELLS`] each, [`MAX_CELLS`] in
//! all for up to that many memories), and at most [`MAX_PANELS`] memories get
//! a panel; the rest are named in one line (`inspect` lists every memory).

use crate::footprint::footprint;
use crate::manifest::Manifest;
use crate::model::{MemoryInfo, ModuleInfo};
use std::fmt::Write;

const WIDTH: f64 = 960.0;
const MARGIN: f64 = 20.0;
const BAR_HEIGHT: f64 = 36.0;
const GRID_COLUMNS: u64 = 64;
/// Grid cells in all panels together (a lone memory gets them all).
const MAX_CELLS: u64 = 2048;
/// Grid cells of each panel at least.
const MIN_CELLS: u64 = 32;
/// Memories drawn with a panel.
const MAX_PANELS: usize = 64;
const CELL: f64 = (WIDTH - 2.0 * MARGIN) / GRID_COLUMNS as f64;

const COLOR_DATA: &str = "#1f4e9c";
const COLOR_ZERO: &str = "#9cc3f0";
const COLOR_STACK: &str = "#f29d38";
const COLOR_HEAP: &str = "#8fd18f";
const COLOR_FREE: &str = "#e6e6e6";
const COLOR_BEYOND: &str = "#ffffff";

/// What a range of memory holds, in bytes.
#[derive(Debug, Clone, Copy, Default)]
struct Content {
    data: u64,
    zeros: u64,
    stack: u64,
    heap: u64,
}

/// Layout regions of one memory, in bytes.
struct Regions {
    stack: Option<(u128, u128)>,
    heap: Option<(u128, u128)>,
}

fn regions(info: &ModuleInfo, memory: &MemoryInfo) -> Regions {
    if memory.index != 0 {
        return Regions {
            stack: None,
            heap: None,
        };
    }
    let value = |name: &str| info.symbol(name).and_then(|s| s.value).map(u128::from);
    let stack = match (value("__stack_low"), value("__stack_high")) {
        (Some(low), Some(high)) if low < high => Some((low, high)),
        _ => value("__stack_pointer").map(|top| {
            // The stack grows down from its top to the end of whatever lies
            // below it (data, or address 0 with --stack-first).
            let below = info
                .data_segments
                .iter()
                .filter(|s| s.memory == Some(0))
                .filter_map(|s| s.known_extent())
                .map(|e| e.end)
                .filter(|end| *end <= top)
                .chain(value("__data_end").filter(|v| *v <= top))
                .max()
                .unwrap_or(0);
            (below, top)
        }),
    };
    let heap = value("__heap_base").map(|base| {
        let end = value("__heap_end").unwrap_or_else(|| memory.min_bytes().max(base));
        (base, end)
    });
    Regions { stack, heap }
}

/// Per-bucket contents for `buckets` equal buckets of `bucket` bytes.
fn contents(
    info: &ModuleInfo,
    module: &[u8],
    memory: &MemoryInfo,
    regions: &Regions,
    bucket: u128,
    buckets: usize,
) -> Vec<Content> {
    let mut out = vec![Content::default(); buckets];
    let limit = bucket * buckets as u128;
    for segment in &info.data_segments {
        if segment.memory != Some(memory.index) {
            continue;
        }
        let Some(extent) = segment.known_extent() else {
            continue;
        };
        let payload = &module[segment.payload.clone()];
        let mut at = extent.start;
        while at < extent.end && at < limit {
            let b = (at / bucket) as usize;
            let bucket_end = (b as u128 + 1) * bucket;
            let end = bucket_end.min(extent.end);
            let slice = &payload[(at - extent.start) as usize..(end - extent.start) as usize];
            let zeros = crate::model::count_zeros(slice);
            out[b].zeros += zeros;
            out[b].data += slice.len() as u64 - zeros;
            at = end;
        }
    }
    let mut add_region = |range: Option<(u128, u128)>, stack: bool| {
        let Some((start, end)) = range else { return };
        let end = end.min(limit);
        let mut at = start;
        while at < end {
            let b = (at / bucket) as usize;
            let stop = ((b as u128 + 1) * bucket).min(end);
            if stack {
                out[b].stack += (stop - at) as u64;
            } else {
                out[b].heap += (stop - at) as u64;
            }
            at = stop;
        }
    };
    add_region(regions.stack, true);
    add_region(regions.heap, false);
    out
}

/// The colour that best describes a bucket.
fn color(content: &Content, in_initial: bool) -> &'static str {
    if content.data > 0 {
        COLOR_DATA
    } else if content.zeros > 0 {
        COLOR_ZERO
    } else if content.stack > 0 {
        COLOR_STACK
    } else if content.heap > 0 {
        COLOR_HEAP
    } else if in_initial {
        COLOR_FREE
    } else {
        COLOR_BEYOND
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn human(bytes: u128) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Render the memory map of every memory of the module.
pub fn memory_map(info: &ModuleInfo, module: &[u8], manifest: &Manifest) -> String {
    let mut body = String::new();
    let mut y = MARGIN;
    let _ = writeln!(
        body,
        r#"<text x="{MARGIN}" y="{}" font-size="18" font-weight="bold">wasm-mem memory map</text>"#,
        y + 14.0
    );
    y += 30.0;
    if info.memories.is_empty() {
        let _ = writeln!(
            body,
            r#"<text x="{MARGIN}" y="{}" font-size="14">This module has no memory.</text>"#,
            y + 14.0
        );
        y += 30.0;
    }
    let panels = info.memories.len().min(MAX_PANELS);
    let cells = (MAX_CELLS / panels.max(1) as u64).max(MIN_CELLS);
    for memory in &info.memories[..panels] {
        y = panel(&mut body, info, module, memory, manifest, cells, y);
    }
    if info.memories.len() > panels {
        let _ = writeln!(
            body,
            r#"<text x="{MARGIN}" y="{}" font-size="14">... and {} more memories, not drawn (wasm-mem inspect lists them all)</text>"#,
            y + 14.0,
            info.memories.len() - panels
        );
        y += 30.0;
    }
    y = legend(&mut body, y);
    let height = y + MARGIN;
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="Helvetica, Arial, 'DejaVu Sans', sans-serif">
<rect width="100%" height="100%" fill="#ffffff"/>
{body}</svg>
"##
    )
}

fn panel(
    out: &mut String,
    info: &ModuleInfo,
    module: &[u8],
    memory: &MemoryInfo,
    manifest: &Manifest,
    max_cells: u64,
    mut y: f64,
) -> f64 {
    let fp = footprint(info, memory, &manifest.memory(memory.index));
    let regions = regions(info, memory);
    let page = memory.page_size as u128;
    let min_bytes = memory.min_bytes();
    // Show the initial memory and anything the footprint or data need beyond it.
    let data_end = fp.data_end.max(fp.bytes);
    let shown_pages = memory.min_pages.max(1) as u128;
    let shown_pages = shown_pages.max(data_end.div_ceil(page));
    let shown = shown_pages * page;

    let mut title = format!(
        "memory {}: {}{}, {} pages, min {}, max {}",
        memory.index,
        if memory.memory64 { "i64" } else { "i32" },
        if memory.shared { " shared" } else { "" },
        human(page),
        memory.min_pages,
        memory
            .max_pages
            .map_or_else(|| "none".to_string(), |m| m.to_string()),
    );
    if let Some(import) = &memory.import {
        title.push_str(&format!(", imported {}.{}", import.module, import.name));
    }
    if !memory.exports.is_empty() {
        title.push_str(&format!(", exported as {}", memory.exports.join(", ")));
    }
    let _ = writeln!(
        out,
        r#"<text x="{MARGIN}" y="{}" font-size="14" font-weight="bold">{}</text>"#,
        y + 12.0,
        escape(&title)
    );
    y += 34.0;

    // Address bar, one bucket per pixel column (the last one may be partial).
    let bar_width = WIDTH - 2.0 * MARGIN;
    let bucket = shown.div_ceil(bar_width as u128).max(1);
    let columns = shown.div_ceil(bucket) as usize;
    let cols = contents(info, module, memory, &regions, bucket, columns);
    let _ = writeln!(
        out,
        r##"<rect x="{MARGIN}" y="{y}" width="{bar_width}" height="{BAR_HEIGHT}" fill="{COLOR_BEYOND}" stroke="#888"/>"##
    );
    let x_at = |addr: u128| MARGIN + (addr.min(shown) as f64 / shown as f64) * bar_width;
    let mut run_start = 0usize;
    for i in 1..=columns {
        let colour_of = |c: usize| color(&cols[c], (c as u128) * bucket < min_bytes);
        if i == columns || colour_of(i) != colour_of(run_start) {
            let fill = colour_of(run_start);
            if fill != COLOR_BEYOND {
                let x = x_at(run_start as u128 * bucket);
                let _ = writeln!(
                    out,
                    r#"<rect x="{x:.1}" y="{y}" width="{:.1}" height="{BAR_HEIGHT}" fill="{fill}"/>"#,
                    (x_at(i as u128 * bucket) - x).max(1.0)
                );
            }
            run_start = i;
        }
    }
    let x_of = |addr: u128| MARGIN + (addr as f64 / shown as f64) * bar_width;
    let mut marker = |addr: u128, label: &str, colour: &str, row: f64| {
        let x = x_of(addr);
        let _ = writeln!(
            out,
            r#"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="{colour}" stroke-width="2"/>"#,
            y - 2.0,
            y + BAR_HEIGHT + 2.0 + row
        );
        let anchor = if x > WIDTH - 160.0 { "end" } else { "start" };
        let _ = writeln!(
            out,
            r#"<text x="{x:.1}" y="{}" font-size="11" fill="{colour}" text-anchor="{anchor}">{}</text>"#,
            y + BAR_HEIGHT + 12.0 + row,
            escape(label)
        );
    };
    if min_bytes > 0 && min_bytes < shown {
        marker(min_bytes, &format!("min {}", human(min_bytes)), "#000", 0.0);
    }
    if let Some((_, top)) = regions.stack {
        marker(top, &format!("stack top {top}"), "#b35c00", 14.0);
    }
    if let Some((base, _)) = regions.heap {
        marker(base, &format!("heap base {base}"), "#2a7a2a", 28.0);
    }
    let max_text = match memory.max_pages {
        Some(max) => format!("max {} = {}", max, human(max as u128 * page)),
        None => "no max".to_string(),
    };
    let _ = writeln!(
        out,
        r#"<text x="{MARGIN}" y="{}" font-size="11">0</text><text x="{}" y="{}" font-size="11" text-anchor="end">{} shown; {}</text>"#,
        y - 4.0,
        WIDTH - MARGIN,
        y - 4.0,
        human(shown),
        escape(&max_text)
    );
    y += BAR_HEIGHT + 48.0;

    // Page grid.
    let per_cell = shown_pages.div_ceil(max_cells as u128).max(1);
    let cells = shown_pages.div_ceil(per_cell) as usize;
    let cell_bytes = per_cell * page;
    let grid = contents(info, module, memory, &regions, cell_bytes, cells);
    let caption = if per_cell == 1 {
        format!("page grid: {cells} pages, one cell per page")
    } else {
        format!("page grid: {shown_pages} pages, {per_cell} pages per cell")
    };
    let _ = writeln!(
        out,
        r##"<text x="{MARGIN}" y="{}" font-size="11" fill="#444">{}</text>"##,
        y,
        escape(&caption)
    );
    y += 6.0;
    for (i, content) in grid.iter().enumerate() {
        let col = (i as u64 % GRID_COLUMNS) as f64;
        let row = (i as u64 / GRID_COLUMNS) as f64;
        let in_initial = (i as u128) * cell_bytes < min_bytes;
        let fill = color(content, in_initial);
        let dash = if in_initial {
            ""
        } else {
            r#" stroke-dasharray="2,2""#
        };
        let _ = writeln!(
            out,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{fill}" stroke="#999" stroke-width="0.5"{dash}><title>{}</title></rect>"##,
            MARGIN + col * CELL,
            y + row * CELL,
            CELL - 1.0,
            CELL - 1.0,
            cell_title(i as u128 * per_cell, per_cell, content),
        );
    }
    let rows = cells.div_ceil(GRID_COLUMNS as usize) as f64;
    y += rows * CELL + 24.0;
    y
}

fn cell_title(first_page: u128, pages: u128, c: &Content) -> String {
    let which = if pages == 1 {
        format!("page {first_page}")
    } else {
        format!("pages {}-{}", first_page, first_page + pages - 1)
    };
    format!(
        "{which}: {} data bytes, {} zero data bytes, {} stack bytes, {} heap bytes",
        c.data, c.zeros, c.stack, c.heap
    )
}

fn legend(out: &mut String, y: f64) -> f64 {
    let items = [
        (COLOR_DATA, "data"),
        (COLOR_ZERO, "zero bytes in data"),
        (COLOR_STACK, "stack"),
        (COLOR_HEAP, "heap"),
        (COLOR_FREE, "initial memory, unused"),
        (COLOR_BEYOND, "beyond the initial size"),
    ];
    let mut x = MARGIN;
    for (colour, label) in items {
        let _ = writeln!(
            out,
            r##"<rect x="{x}" y="{y}" width="12" height="12" fill="{colour}" stroke="#999"/><text x="{}" y="{}" font-size="12">{label}</text>"##,
            x + 16.0,
            y + 10.0
        );
        x += 30.0 + label.len() as f64 * 6.5;
    }
    y + 20.0
}
