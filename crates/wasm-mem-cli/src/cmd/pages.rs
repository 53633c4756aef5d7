//! `wasm-mem pages`: set the page counts of memories.

use crate::component::{render_rewrite, ModuleArgs};
use crate::io::{load_manifest, print_json, Input, OutputArgs, Wasm};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;
use wasm_mem::manifest::{Manifest, MaxPages};
use wasm_mem::pages::{set_pages, LimitChange, PageFlags};
use wasm_mem::ModuleInfo;

/// Set the minimum and maximum page counts of a memory.
///
/// Limits come from, highest first: these flags, the manifest
/// (`wasm-mem.toml` in the current directory, `--manifest PATH`, or
/// `[package.metadata.wasm-mem]` in a Cargo.toml), and the module itself.
/// With no setting at all, the output is byte-identical to the input.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  wasm-mem pages app.wasm --pages 16 -o app.wasm        # fixed: min = max = 16
  wasm-mem pages app.wasm --min 2 --max 64 -o out.wasm   # growable from 2 to 64 pages
  wasm-mem pages app.wasm --memory 1 --max none -o out.wasm
  wasm-mem pages app.wasm --manifest wasm-mem.toml -o out.wasm
  wasm-mem pages app.component.wasm --module 2 --min 40 -o out.wasm   # core module 2 of a component")]
pub struct Opts {
    /// Input module (binary or text), or `-` for stdin.
    pub input: String,
    /// The memory the flags apply to.
    #[arg(long, default_value_t = 0)]
    pub memory: u32,
    /// Fixed size: min = max = N pages.
    #[arg(long, value_name = "N", conflicts_with_all = ["min", "max", "fixed"])]
    pub pages: Option<u64>,
    /// Minimum (initial) pages.
    #[arg(long, value_name = "N")]
    pub min: Option<u64>,
    /// Maximum pages, or `none` for no maximum.
    #[arg(long, value_name = "N|none", value_parser = parse_max)]
    pub max: Option<MaxPages>,
    /// Make the memory fixed: max = min.
    #[arg(long, conflicts_with = "max")]
    pub fixed: bool,
    /// Manifest to read (default: wasm-mem.toml or Cargo.toml in the current directory).
    #[arg(long, value_name = "PATH")]
    pub manifest: Option<PathBuf>,
    /// Print the report as JSON on stdout (needs -o).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub modules: ModuleArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

fn parse_max(text: &str) -> std::result::Result<MaxPages, String> {
    if text == "none" {
        return Ok(MaxPages::Unbounded);
    }
    text.parse()
        .map(MaxPages::Pages)
        .map_err(|_| format!("expected a page count or `none`, got {text:?}"))
}

impl Opts {
    /// Run the subcommand.
    pub fn run(&self) -> Result<ExitCode> {
        if self.json && self.output.to_stdout() {
            bail!("--json prints the report on stdout, so the module needs -o FILE");
        }
        self.output.check_destination()?;
        let manifest = load_manifest(self.manifest.as_deref())?;
        let input = Input::read(&self.input)?;
        let flags = PageFlags {
            pages: self.pages,
            min: self.min,
            max: self.max,
            fixed: self.fixed,
        };
        let module = match input.wasm()? {
            Wasm::Module(module) => module,
            Wasm::Component(component) => {
                return self.run_component(&input, &component, &flags, &manifest)
            }
        };
        self.modules.check_core()?;
        let info = ModuleInfo::read(&module)?;
        let flags = if flags.is_empty() {
            Vec::new()
        } else {
            vec![(self.memory, flags)]
        };
        let (output, report) = set_pages(&module, &info, &flags, &manifest)?;
        // Byte-identical means byte-identical: text input with no change is
        // written back as the input's own binary.
        self.output.write(&output)?;
        if self.json {
            print_json(&report)?;
        } else {
            for change in &report.memories {
                eprintln!("{}", describe(change));
            }
        }
        for warning in &report.warnings {
            eprintln!("warning: {warning}");
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl Opts {
    /// `pages` on a component: the flags apply to memory `--memory` of
    /// every selected core module that has it, the manifest to every
    /// selected module's memories.
    fn run_component(
        &self,
        input: &Input,
        component: &[u8],
        flags: &PageFlags,
        manifest: &Manifest,
    ) -> Result<ExitCode> {
        let mut memory_found = false;
        let (output, report) =
            crate::component::rewrite(component, self.modules.module, "pages", |module| {
                let info = ModuleInfo::read(module)?;
                let has_memory = (self.memory as usize) < info.memories.len();
                memory_found |= has_memory;
                let flags = if flags.is_empty() || !has_memory {
                    Vec::new()
                } else {
                    vec![(self.memory, flags.clone())]
                };
                Ok(set_pages(module, &info, &flags, manifest)?)
            })
            .with_context(|| input.name())?;
        if !flags.is_empty() && !memory_found {
            return Err(wasm_mem::Error::Refused(format!(
                "{}: memory {} does not exist in any selected core module",
                input.name(),
                self.memory
            ))
            .into());
        }
        self.output.write(&output)?;
        if self.json {
            print_json(&report)?;
        } else {
            eprint!(
                "{}",
                render_rewrite(&report, |r| {
                    r.memories
                        .iter()
                        .map(|c| describe(c) + "\n")
                        .collect::<String>()
                })
            );
        }
        for module in &report.core_modules {
            for warning in &module.report.warnings {
                eprintln!("warning: core module {}: {warning}", module.index);
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn limits(min: u64, max: Option<u64>) -> String {
    match max {
        Some(max) if max == min => format!("{min} pages (fixed)"),
        Some(max) => format!("min {min}, max {max} pages"),
        None => format!("min {min} pages, no max"),
    }
}

fn describe(change: &LimitChange) -> String {
    let before = limits(change.min_before, change.max_before);
    if !change.changes() {
        return format!("memory {}: unchanged, {before}", change.memory);
    }
    let after = limits(change.min_after, change.max_after);
    let import = if change.imported {
        " (imported: the import's type changes)"
    } else {
        ""
    };
    format!("memory {}: {before} -> {after}{import}", change.memory)
}
