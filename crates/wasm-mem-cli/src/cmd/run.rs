//! `wasm-mem run`: run a module on wasmtime under a page budget and report
//! what its memories used.

use crate::io::{load_manifest, print_json, write_atomically, Input};
use anyhow::Result;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use wasm_mem_host::session::show_value;
use wasm_mem_host::{Budget, Error, MemoryReport, Outcome, RunConfig, RunReport, Session};

/// Exit status after a trap (as wasmtime's own CLI: 128 + SIGABRT).
pub const TRAP_EXIT: u8 = 134;

/// Run a module under a memory budget and report each memory's size.
///
/// The module runs on wasmtime with multi-memory, memory64, threads and
/// custom page sizes on, and WASI preview 1 (stdio inherited, ARGS passed to
/// the program). Budgets come from `--budget-pages` (memory 0, or
/// `--memory N`) over the manifest's `max-pages`/`pages` (wasm-mem.toml in the
/// current directory, or `--manifest PATH`). A grow past a budget returns -1
/// to the module and is counted in the report, printed on stderr after the
/// run (`--json`: on stdout; `--report FILE`: JSON into FILE).
///
/// Exit status: the program's own exit code (WASI `proc_exit`, 0 when
/// `_start` or the invoked function returns); 134 after a trap (the trap and
/// its wasm backtrace are printed); 2 when the module cannot be run at all
/// (bad input, unknown import, budget below the initial size).
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  wasm-mem run app.wasm arg1 arg2                # WASI command, report on stderr
  wasm-mem run app.wasm --budget-pages 16        # memory 0 may not pass 16 pages
  wasm-mem run app.wasm --manifest wasm-mem.toml --json
  wasm-mem run lib.wasm --invoke add 1 2         # call an export, print its results")]
pub struct Opts {
    /// Module to run (binary or text), or `-` for stdin.
    pub input: String,
    /// Arguments: of the invoked function with --invoke, else of the WASI program.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    pub args: Vec<String>,
    /// Call this export (arguments parsed by its parameter types) instead of `_start`.
    #[arg(long, value_name = "NAME")]
    pub invoke: Option<String>,
    /// Page budget (in the memory's own page size) for memory 0, or --memory N.
    #[arg(long, value_name = "N")]
    pub budget_pages: Option<u64>,
    /// The memory --budget-pages applies to.
    #[arg(long, default_value_t = 0, requires = "budget_pages")]
    pub memory: u32,
    /// Manifest to read budgets from (default: wasm-mem.toml or Cargo.toml in the current directory).
    #[arg(long, value_name = "PATH")]
    pub manifest: Option<PathBuf>,
    /// Print the report as JSON on stdout (after the program's own output).
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON report to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Pass the host's environment variables to the program.
    #[arg(long)]
    pub env: bool,
}

/// The JSON document `--json` prints.
#[derive(Serialize)]
struct JsonReport<'a> {
    /// `exited`, `returned` or `trapped`.
    outcome: &'static str,
    /// Exit code (for `exited`).
    exit_code: Option<i32>,
    /// Results of the invoked function (for `returned`).
    results: Vec<String>,
    /// The trap message (for `trapped`).
    trap: Option<String>,
    memories: &'a [MemoryReport],
    unattributed_grows: u64,
}

fn host_error(e: Error) -> anyhow::Error {
    match e {
        // Keep the library's error type so main maps it to its exit code.
        Error::Module(inner) => anyhow::Error::new(inner),
        other => anyhow::Error::new(other),
    }
}

fn pages(n: u64, page_size: u64) -> String {
    if page_size == 65536 {
        format!("{n} pages")
    } else {
        format!("{n} pages of {page_size} bytes")
    }
}

fn describe(m: &MemoryReport) -> String {
    let mut kind = vec![if m.memory64 { "i64" } else { "i32" }];
    if m.shared {
        kind.push("shared");
    }
    if m.imported {
        kind.push("imported");
    }
    let name = m
        .export
        .as_deref()
        .map(|e| format!(" {e:?}"))
        .unwrap_or_default();
    let mut line = format!(
        "memory {}{name} ({}): {} -> {}, peak {}",
        m.index,
        kind.join(", "),
        m.initial_pages,
        pages(m.final_pages, m.page_size),
        m.peak_pages
    );
    match m.budget_pages {
        Some(b) => line.push_str(&format!(", budget {b}")),
        None => line.push_str(", no budget"),
    }
    if let Some(max) = m.max_pages {
        line.push_str(&format!(", max {max}"));
    }
    if m.growth_tracked {
        line.push_str(&format!(", {} grow(s)", m.grows));
        if m.refused_by_budget > 0 {
            line.push_str(&format!(", {} refused by the budget", m.refused_by_budget));
        }
        if m.refused_by_max > 0 {
            line.push_str(&format!(", {} refused by the maximum", m.refused_by_max));
        }
        if m.failed > 0 {
            line.push_str(&format!(", {} failed", m.failed));
        }
        if let Some(largest) = m.largest_refused_pages {
            line.push_str(&format!(" (largest request {largest} pages)"));
        }
    } else {
        line.push_str(", grows not tracked (shared)");
    }
    line
}

impl Opts {
    /// Run the subcommand.
    pub fn run(&self) -> Result<ExitCode> {
        let manifest = load_manifest(self.manifest.as_deref())?;
        let mut budget = Budget::from_manifest(&manifest);
        if let Some(pages) = self.budget_pages {
            budget.set(self.memory, pages);
        }
        let input = Input::read(&self.input)?;
        let module = input.module()?;
        let program = input
            .path
            .as_ref()
            .map_or_else(|| "stdin.wasm".to_string(), |p| p.display().to_string());
        let mut args = vec![program];
        if self.invoke.is_none() {
            args.extend(self.args.iter().cloned());
        }
        let config = RunConfig {
            budget,
            args,
            inherit_stdio: true,
            inherit_env: self.env,
        };
        let mut session = match Session::new(&module, &config) {
            Ok(session) => session,
            Err(e) if e.trap().is_some() => {
                if let Error::Wasmtime(inner) = &e {
                    eprintln!("error: the module trapped while starting: {inner:?}");
                }
                return Ok(ExitCode::from(TRAP_EXIT));
            }
            Err(e) => return Err(host_error(e).context(input.name())),
        };
        let outcome = match &self.invoke {
            Some(name) => session.invoke(name, &self.args),
            None => session.run_command(),
        };
        // Flush what the program printed before the report follows it.
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let report = session.report();
        let (code, json) = match outcome {
            Ok(Outcome::Exited(code)) => (
                ExitCode::from((code & 0xff) as u8),
                JsonReport::new("exited", &report).exit(code),
            ),
            Ok(Outcome::Returned(values)) => {
                let shown: Vec<String> = values.iter().map(show_value).collect();
                if !self.json {
                    for value in &shown {
                        println!("{value}");
                    }
                }
                (
                    ExitCode::SUCCESS,
                    JsonReport::new("returned", &report).results(shown),
                )
            }
            Err(e) if e.trap().is_some() => {
                let Error::Wasmtime(inner) = e else {
                    unreachable!("trap() is only set for engine errors")
                };
                eprintln!("error: {inner:?}");
                let trap = format!("{inner:#}");
                (
                    ExitCode::from(TRAP_EXIT),
                    JsonReport::new("trapped", &report).trap(trap),
                )
            }
            Err(e) => return Err(host_error(e).context(input.name())),
        };
        self.print(&report, &json)?;
        Ok(code)
    }

    fn print(&self, report: &RunReport, json: &JsonReport<'_>) -> Result<()> {
        if let Some(path) = &self.report {
            let mut text = serde_json::to_vec_pretty(json)?;
            text.push(b'\n');
            write_atomically(path, &text)?;
        }
        if self.json {
            print_json(json)?;
        } else {
            for memory in &report.memories {
                eprintln!("{}", describe(memory));
            }
            if report.unattributed_grows > 0 {
                eprintln!(
                    "warning: {} grow(s) could not be attributed to a memory",
                    report.unattributed_grows
                );
            }
        }
        Ok(())
    }
}

impl<'a> JsonReport<'a> {
    fn new(outcome: &'static str, report: &'a RunReport) -> Self {
        JsonReport {
            outcome,
            exit_code: None,
            results: Vec::new(),
            trap: None,
            memories: &report.memories,
            unattributed_grows: report.unattributed_grows,
        }
    }

    fn exit(mut self, code: i32) -> Self {
        self.exit_code = Some(code);
        self
    }

    fn results(mut self, results: Vec<String>) -> Self {
        self.results = results;
        self
    }

    fn trap(mut self, trap: String) -> Self {
        self.trap = Some(trap);
        self
    }
}
