//! `wasm-mem inspect`: report every memory, data segment and layout symbol.

use crate::component::{entry, heading, ComponentReport, ModuleArgs};
use crate::io::{load_manifest, print_json, write_atomically, Input, Wasm};
use anyhow::{Context, Result};
use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use wasm_mem::component::{in_module, Component};
use wasm_mem::footprint::Severity;
use wasm_mem::inspect::{inspect, InspectReport};
use wasm_mem::manifest::Manifest;
use wasm_mem::model::{MemoryInfo, Offset, SymbolSource};
use wasm_mem::ModuleInfo;

/// Show the memories, data segments, layout symbols and footprint of a module.
///
/// Text by default; `--json` prints the report in the stable schema
/// documented in docs/json-schema.md; `--svg MAP.svg` also writes a memory
/// map (one panel per memory: address bar and page grid).
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  wasm-mem inspect app.wasm
  wasm-mem inspect app.wasm --json | jq '.memories[0].min_pages'
  wasm-mem inspect app.wat --svg map.svg
  wasm-mem inspect app.wasm --segments     # list every data segment
  wasm-mem inspect app.component.wasm      # every core module of a component
  wasm-mem inspect app.component.wasm --module 1 --svg map.svg")]
pub struct Opts {
    /// Input module (binary or text), or `-` for stdin.
    pub input: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write an SVG memory map to this file.
    #[arg(long, value_name = "MAP.svg")]
    pub svg: Option<PathBuf>,
    /// List every data segment in the text report.
    #[arg(long)]
    pub segments: bool,
    /// Manifest to read for stack/heap reservations (default: discovered).
    #[arg(long, value_name = "PATH")]
    pub manifest: Option<PathBuf>,
    #[command(flatten)]
    pub modules: ModuleArgs,
}

impl Opts {
    /// Run the subcommand.
    pub fn run(&self) -> Result<ExitCode> {
        let manifest = load_manifest(self.manifest.as_deref())?;
        let input = Input::read(&self.input)?;
        let module = match input.wasm()? {
            Wasm::Module(module) => module,
            Wasm::Component(component) => return self.run_component(&input, &component, &manifest),
        };
        self.modules.check_core()?;
        let info = ModuleInfo::read(&module)?;
        let report = inspect(&info, module.len(), &manifest);
        if let Some(path) = &self.svg {
            let svg = wasm_mem::svg::memory_map(&info, &module, &manifest);
            write_atomically(path, svg.as_bytes())?;
        }
        if self.json {
            print_json(&report)?;
        } else {
            print!("{}", render(&input.name(), &report, self.segments));
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl Opts {
    /// `inspect` on a component: every selected core module, by index and
    /// position, each with its own report. `--svg` draws the map of the
    /// one selected module, or of the only core module with a memory.
    fn run_component(&self, input: &Input, bytes: &[u8], manifest: &Manifest) -> Result<ExitCode> {
        let component = Component::parse(bytes)?;
        let selected = component.select(self.modules.module)?;
        let mut infos = Vec::new();
        for module in &selected {
            let info = ModuleInfo::read(component.module_bytes(module))
                .map_err(|e| in_module(e, module))
                .with_context(|| input.name())?;
            infos.push(info);
        }
        if let Some(path) = &self.svg {
            let with_memory: Vec<usize> = (0..selected.len())
                .filter(|&i| selected.len() == 1 || !infos[i].memories.is_empty())
                .collect();
            let [i] = with_memory[..] else {
                return Err(wasm_mem::Error::Refused(format!(
                    "--svg draws one core module and {} of the component's core modules have memories: choose one with --module N",
                    with_memory.len()
                ))
                .into());
            };
            let svg =
                wasm_mem::svg::memory_map(&infos[i], component.module_bytes(selected[i]), manifest);
            write_atomically(path, svg.as_bytes())?;
        }
        let entries = selected
            .iter()
            .zip(&infos)
            .map(|(module, info)| entry(module, inspect(info, module.size, manifest)))
            .collect();
        let report = ComponentReport::new(&component, entries);
        if self.json {
            print_json(&report)?;
            return Ok(ExitCode::SUCCESS);
        }
        let mut out = format!(
            "{}: component, {} bytes, {} core module(s)\n",
            input.name(),
            report.component_size,
            report.module_count
        );
        for module in &report.core_modules {
            let name = heading(module);
            let name = name.rsplit_once(": ").map_or(name.as_str(), |(n, _)| n);
            out.push('\n');
            for line in render(name, &module.report, self.segments).lines() {
                if !line.is_empty() {
                    out.push_str("  ");
                }
                out.push_str(line);
                out.push('\n');
            }
        }
        print!("{out}");
        Ok(ExitCode::SUCCESS)
    }
}

fn kind(memory: &MemoryInfo) -> String {
    let mut parts = Vec::new();
    match &memory.import {
        Some(i) => parts.push(format!("import {}.{}", i.module, i.name)),
        None => parts.push("defined".into()),
    }
    for export in &memory.exports {
        parts.push(format!("export {export}"));
    }
    parts.join(", ")
}

fn offset_text(offset: &Offset) -> String {
    match offset {
        Offset::Const { value } => format!("{value}"),
        Offset::Global {
            global,
            addend,
            resolved,
        } => {
            let base = if *addend == 0 {
                format!("global {global}")
            } else {
                format!("global {global} {addend:+}")
            };
            match resolved {
                Some(v) => format!("{base} (= {v})"),
                None => base,
            }
        }
        Offset::Other => "expression".into(),
    }
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "0%".into()
    } else {
        format!("{:.0}%", part as f64 * 100.0 / whole as f64)
    }
}

/// The text form of the report.
pub fn render(name: &str, report: &InspectReport<'_>, list_segments: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{name}: {} bytes", report.module_size);
    let _ = writeln!(out, "\nmemories: {}", report.memories.len());
    if !report.memories.is_empty() {
        let _ = writeln!(
            out,
            "  {:>3}  {:<5} {:<6} {:>7} {:>10} {:>10}  {:>7} {:>7} {:>7} {:>5} {:>5} {:>5}  import/export",
            "idx",
            "addr",
            "shared",
            "page",
            "min",
            "max",
            "loads",
            "stores",
            "atomic",
            "size",
            "grow",
            "bulk",
        );
    }
    for m in report.memories {
        let c = &m.instructions;
        let _ = writeln!(
            out,
            "  {:>3}  {:<5} {:<6} {:>7} {:>10} {:>10}  {:>7} {:>7} {:>7} {:>5} {:>5} {:>5}  {}",
            m.index,
            if m.memory64 { "i64" } else { "i32" },
            if m.shared { "yes" } else { "no" },
            m.page_size,
            m.min_pages,
            m.max_pages.map_or_else(|| "none".into(), |v| v.to_string()),
            c.loads,
            c.stores,
            c.atomics,
            c.size,
            c.grow,
            c.fill + c.copy + c.init + c.discard,
            kind(m)
        );
    }
    let _ = writeln!(out, "\ndata segments: {}", report.data_segments.len());
    for d in &report.data {
        if d.segments == 0 {
            continue;
        }
        let span = match (d.lowest, d.highest) {
            (Some(l), Some(h)) => format!(", span {l}..{h}"),
            _ => String::new(),
        };
        let relocatable = if d.relocatable_segments > 0 {
            format!(", {} at instantiation-time offsets", d.relocatable_segments)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  memory {}: {} active, {} bytes ({} zero, {}){span}{relocatable}",
            d.memory,
            d.segments,
            d.bytes,
            d.zero_bytes,
            percent(d.zero_bytes, d.bytes)
        );
    }
    let p = &report.passive_data;
    if p.segments > 0 {
        let _ = writeln!(
            out,
            "  passive: {} segments, {} bytes ({} zero, {}); {} data.drop",
            p.segments,
            p.bytes,
            p.zero_bytes,
            percent(p.zero_bytes, p.bytes),
            report.data_drops
        );
    }
    if list_segments {
        for s in report.data_segments {
            let place = match (&s.memory, &s.offset) {
                (Some(m), Some(o)) => format!("memory {m} at {}", offset_text(o)),
                _ => "passive".into(),
            };
            let name = s
                .name
                .as_deref()
                .map(|n| format!(" {n}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "    #{:<5} {place}: {} bytes ({} zero){name}",
                s.index, s.len, s.zero_bytes
            );
        }
    }
    let _ = writeln!(out, "\nlayout symbols: {}", report.layout.len());
    for s in report.layout {
        let source = match s.source {
            SymbolSource::Export => "export",
            SymbolSource::Import => "import",
            SymbolSource::NameSection => "name section",
            SymbolSource::Heuristic => "guessed: first mutable global",
        };
        let value = s
            .value
            .map_or_else(|| "unknown".into(), |v| format!("{v} (0x{v:x})"));
        let _ = writeln!(
            out,
            "  {:<16} global {:<4} = {value}  [{source}]",
            s.name, s.global
        );
    }
    let _ = writeln!(out, "\nfootprint:");
    for (fp, m) in report.footprint.iter().zip(report.memories) {
        let _ = writeln!(
            out,
            "  memory {}: {} bytes = {} pages needed at start-up; declared min {} pages{}",
            fp.memory,
            fp.bytes,
            fp.pages,
            m.min_pages,
            if fp.relocatable_data_bytes > 0 {
                format!(
                    " ({} bytes of relocatable data not counted)",
                    fp.relocatable_data_bytes
                )
            } else {
                String::new()
            }
        );
    }
    for f in &report.findings {
        let tag = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        };
        let _ = writeln!(out, "  {tag}: {}", f.message);
    }
    out
}
