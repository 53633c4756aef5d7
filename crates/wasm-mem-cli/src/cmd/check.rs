//! `wasm-mem check`: the static footprint check against a page budget.

use crate::component::{entry, heading, ComponentReport, ModuleArgs};
use crate::io::{load_manifest, print_json, Input, Wasm};
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use wasm_mem::component::{in_module, Component};
use wasm_mem::footprint::{check, BudgetSource, CheckReport, Severity};
use wasm_mem::manifest::Manifest;
use wasm_mem::ModuleInfo;

/// Check that every memory's start-up footprint fits its page budget.
///
/// The footprint is what the module needs when it starts: the end of its
/// data, its stack top and heap base, plus the manifest's `stack-size` and
/// `heap-size` where the module does not say. The budget is `--budget-pages`,
/// else the manifest's `pages`/`max-pages`, else the memory's declared
/// initial size. Also reports data segments that trap at instantiation
/// (error) and `memory.grow` on a fixed memory (warning).
///
/// Exit status: 0 when everything fits, 1 when something does not, 2 on bad input.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  wasm-mem check app.wasm --budget-pages 16
  wasm-mem check app.wasm --manifest wasm-mem.toml --json
  wasm-mem check app.wasm --memory 1 --budget-pages 2
  wasm-mem check app.component.wasm --module 0 --budget-pages 200   # one core module of a component")]
pub struct Opts {
    /// Input module (binary or text), or `-` for stdin.
    pub input: String,
    /// Budget in pages for the memory chosen with --memory.
    #[arg(long, value_name = "N")]
    pub budget_pages: Option<u64>,
    /// The memory --budget-pages applies to.
    #[arg(long, default_value_t = 0)]
    pub memory: u32,
    /// Manifest to read (default: wasm-mem.toml or Cargo.toml in the current directory).
    #[arg(long, value_name = "PATH")]
    pub manifest: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub modules: ModuleArgs,
}

/// `check --json` on a component: every selected module's check.
#[derive(Serialize)]
struct ComponentCheck {
    /// Every selected module passes.
    ok: bool,
    #[serde(flatten)]
    report: ComponentReport<CheckReport>,
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
        if self.budget_pages.is_some() && self.memory as usize >= info.memories.len() {
            return Err(wasm_mem::Error::Refused(format!(
                "memory {} does not exist: the module has {} memories",
                self.memory,
                info.memories.len()
            ))
            .into());
        }
        let budgets: Vec<(u32, u64)> = self
            .budget_pages
            .map(|p| (self.memory, p))
            .into_iter()
            .collect();
        let report = check(&info, &manifest, &budgets);
        if self.json {
            print_json(&report)?;
        } else {
            print!("{}", render(&report));
        }
        Ok(if report.ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}

impl Opts {
    /// `check` on a component: each selected core module is checked on its
    /// own; `--budget-pages` applies to memory `--memory` of every selected
    /// module that has it.
    fn run_component(&self, input: &Input, bytes: &[u8], manifest: &Manifest) -> Result<ExitCode> {
        let component = Component::parse(bytes)?;
        let mut entries = Vec::new();
        let mut memory_found = false;
        for module in component.select(self.modules.module)? {
            let info = ModuleInfo::read(component.module_bytes(module))
                .map_err(|e| in_module(e, module))
                .with_context(|| input.name())?;
            let has_memory = (self.memory as usize) < info.memories.len();
            memory_found |= has_memory;
            let budgets: Vec<(u32, u64)> = self
                .budget_pages
                .filter(|_| has_memory)
                .map(|p| (self.memory, p))
                .into_iter()
                .collect();
            entries.push(entry(module, check(&info, manifest, &budgets)));
        }
        if self.budget_pages.is_some() && !memory_found {
            return Err(wasm_mem::Error::Refused(format!(
                "{}: memory {} does not exist in any selected core module",
                input.name(),
                self.memory
            ))
            .into());
        }
        let report = ComponentReport::new(&component, entries);
        let ok = report.core_modules.iter().all(|m| m.report.ok);
        if self.json {
            print_json(&ComponentCheck { ok, report })?;
        } else {
            println!(
                "{}: component, {} bytes, {} of {} core module(s) checked",
                input.name(),
                report.component_size,
                report.core_modules.len(),
                report.module_count
            );
            for module in &report.core_modules {
                println!("{}", heading(module));
                for line in render(&module.report).lines() {
                    println!("  {line}");
                }
            }
            println!("{}", if ok { "ok" } else { "FAILED" });
        }
        Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}

/// The text form of a check report.
pub fn render(report: &CheckReport) -> String {
    let mut out = String::new();
    if report.memories.is_empty() {
        out.push_str("the module has no memory: nothing to check\n");
    }
    for m in &report.memories {
        let fp = &m.footprint;
        let source = match m.budget_source {
            BudgetSource::CommandLine => "from --budget-pages",
            BudgetSource::Manifest => "from the manifest",
            BudgetSource::DeclaredMin => "the declared initial size",
        };
        let verdict = if m.fits {
            "fits".to_string()
        } else {
            format!(
                "OVER by {} bytes ({} pages)",
                m.over_by_bytes, m.over_by_pages
            )
        };
        out.push_str(&format!(
            "memory {}: needs {} bytes = {} pages of {} bytes at start-up; budget {} pages ({source}): {verdict}\n",
            m.memory, fp.bytes, m.startup_pages, fp.page_size, m.budget_pages
        ));
        let mut parts = vec![format!("data end {}", fp.data_end)];
        if let Some(v) = fp.stack_top {
            parts.push(format!("stack top {v}"));
        }
        if let Some(v) = fp.data_end_symbol {
            parts.push(format!("__data_end {v}"));
        }
        if let Some(v) = fp.heap_base {
            parts.push(format!("heap base {v}"));
        }
        if let Some(v) = fp.heap_end {
            parts.push(format!("heap end {v}"));
        }
        if fp.stack_reserve > 0 {
            parts.push(format!("+ stack-size {}", fp.stack_reserve));
        }
        if fp.heap_reserve > 0 {
            parts.push(format!("+ heap-size {}", fp.heap_reserve));
        }
        out.push_str(&format!("  {}\n", parts.join(", ")));
        for f in &m.findings {
            let tag = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Note => "note",
            };
            out.push_str(&format!("  {tag}: {}\n", f.message));
        }
    }
    out.push_str(if report.ok { "ok\n" } else { "FAILED\n" });
    out
}
