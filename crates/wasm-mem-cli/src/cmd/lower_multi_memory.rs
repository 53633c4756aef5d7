//! `wasm-mem lower multi-memory`: combine all memories into one.

use crate::component::ModuleArgs;
use crate::io::{rewrite_module, OutputArgs};
use anyhow::Result;
use std::process::ExitCode;
use wasm_mem::lower_multi_memory::{lower_multi_memory, LowerOptions};

/// Combine all memories of a module into one, with exactly the same
/// behaviour: every access traps exactly when it would have trapped on its
/// own memory, bulk operations trap before writing anything, memory.size and
/// memory.grow are exact per memory (own maximum, -1 results, grown pages
/// read as zero).
///
/// The output validates with multi-memory turned off. The report shows the
/// layout: each memory's base, reserved size and whether it can move. Only
/// memory 0 may be imported or exported; memories with different page sizes
/// are refused.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  wasm-mem lower multi-memory app.wasm -o one.wasm
  wasm-mem lower multi-memory app.wat -t                  # print the result as text
  wasm-mem lower multi-memory app.wasm -o one.wasm --json > layout.json
  wasm-mem lower multi-memory app.wasm --unchecked -o fast.wasm   # trusted code only")]
pub struct Opts {
    /// Input module (binary or text), or `-` for stdin.
    pub input: String,
    /// Leave out the per-memory bounds checks of accesses and bulk
    /// operations (faster; an out-of-bounds access may touch another memory:
    /// unsafe for untrusted code). memory.size and memory.grow stay exact.
    #[arg(long)]
    pub unchecked: bool,
    /// Print the report as JSON on stdout (needs -o).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub modules: ModuleArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

impl Opts {
    /// Run the subcommand.
    pub fn run(&self) -> Result<ExitCode> {
        let options = LowerOptions {
            checked: !self.unchecked,
        };
        rewrite_module(
            &self.input,
            &self.output,
            self.json,
            &self.modules,
            "lower multi-memory",
            |module| Ok(lower_multi_memory(module, &options)?),
            |report| report.to_text(),
        )
    }
}
