//! Components on the command line: the `--module N` selector, and the
//! reports of commands that work on each core module of a component.
//!
//! Core modules are numbered in depth-first order (see
//! `wasm_mem::component`). A report on a component names each core module
//! by that index and its byte offset; `--json` reports on components have
//! the shape documented in docs/json-schema.md ("Components").

use anyhow::Result;
use serde::Serialize;
use wasm_mem::component::{Component, CoreModule, ModuleReport};
use wasm_mem::model::SCHEMA_VERSION;

/// The `--module N` flag.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ModuleArgs {
    /// In a component, work on core module N only (numbered from 0 in
    /// depth-first order, as `inspect` lists them; default: every core
    /// module). On a core module only 0 is accepted.
    #[arg(long = "module", value_name = "N")]
    pub module: Option<u32>,
}

impl ModuleArgs {
    /// Refuse a selection other than 0 for a core-module input.
    pub fn check_core(&self) -> Result<()> {
        match self.module {
            Some(n) if n != 0 => Err(wasm_mem::Error::Refused(format!(
                "--module {n}: the input is a core module (only --module 0 names it)"
            ))
            .into()),
            _ => Ok(()),
        }
    }
}

/// A report about the core modules of a component.
#[derive(Debug, Serialize)]
pub struct ComponentReport<R> {
    /// JSON schema version.
    pub schema_version: u32,
    /// Always `"component"`.
    pub kind: &'static str,
    /// Size of the input component in bytes.
    pub component_size: usize,
    /// Size of the output component (commands that write one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_size: Option<usize>,
    /// How many core modules the component has (selected or not).
    pub module_count: usize,
    /// One entry per selected core module.
    pub core_modules: Vec<ModuleReport<R>>,
}

impl<R> ComponentReport<R> {
    /// A report over `component` with one entry per module report.
    pub fn new(component: &Component<'_>, core_modules: Vec<ModuleReport<R>>) -> Self {
        ComponentReport {
            schema_version: SCHEMA_VERSION,
            kind: "component",
            component_size: component.input().len(),
            output_size: None,
            module_count: component.modules().len(),
            core_modules,
        }
    }
}

/// One module's entry for commands that do not change it.
pub fn entry<R>(module: &CoreModule, report: R) -> ModuleReport<R> {
    ModuleReport {
        index: module.index,
        offset: module.offset,
        depth: module.depth,
        size_before: module.size,
        size_after: module.size,
        report,
    }
}

/// The heading of one core module in a text report.
pub fn heading(module: &ModuleReport<impl Sized>) -> String {
    let nested = if module.depth > 0 {
        format!(", in a nested component (depth {})", module.depth)
    } else {
        String::new()
    };
    let size = if module.size_after != module.size_before {
        format!("{} -> {} bytes", module.size_before, module.size_after)
    } else {
        format!("{} bytes", module.size_before)
    };
    format!(
        "core module {} at byte offset {}{nested}: {size}",
        module.index, module.offset
    )
}

/// Text report of a rewriting command on a component: a line for the
/// component, then each module's heading and its own report, indented.
pub fn render_rewrite<R>(report: &ComponentReport<R>, text: impl Fn(&R) -> String) -> String {
    let mut out = format!(
        "component: {} -> {} bytes, {} of {} core module(s)\n",
        report.component_size,
        report.output_size.unwrap_or(report.component_size),
        report.core_modules.len(),
        report.module_count
    );
    for module in &report.core_modules {
        out.push_str(&heading(module));
        out.push('\n');
        for line in text(&module.report).lines() {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Run a core-module pass over the selected modules of a validated
/// component and build the report.
pub fn rewrite<R>(
    bytes: &[u8],
    selection: Option<u32>,
    pass_name: &str,
    mut pass: impl FnMut(&[u8]) -> Result<(Vec<u8>, R)>,
) -> Result<(Vec<u8>, ComponentReport<R>)> {
    let component = Component::parse(bytes)?;
    // The passes return anyhow errors wrapping wasm-mem's own error: keep
    // it (its exit code, and the module is named by `rewrite_modules`).
    let (output, modules) =
        wasm_mem::component::rewrite_modules(bytes, selection, pass_name, |_, b| {
            pass(b).map_err(|e| match e.downcast::<wasm_mem::Error>() {
                Ok(e) => e,
                Err(other) => wasm_mem::Error::Refused(format!("{other:#}")),
            })
        })?;
    let mut report = ComponentReport::new(&component, modules);
    report.output_size = Some(output.len());
    Ok((output, report))
}
