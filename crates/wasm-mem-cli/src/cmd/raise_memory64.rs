//! `wasm-mem raise memory64`: turn 32-bit memories (and tables) into 64-bit ones.

use crate::component::ModuleArgs;
use crate::io::{rewrite_module, OutputArgs};
use anyhow::Result;
use std::process::ExitCode;
use wasm_mem::raise_memory64::{raise_memory64, RaiseOptions};

/// Raise 32-bit memories to memory64 (and with --tables, tables to table64),
/// with exactly the same behaviour, traps included: addresses are
/// zero-extended, memory.size/grow results wrapped back to i32, segment
/// offsets become i64 constants. Exported function signatures do not change.
///
/// A memory without a maximum gets the 32-bit limit as maximum, so it grows
/// exactly as far as before. Imported memories and tables change type: the
/// report says what the host must provide.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  wasm-mem raise memory64 app.wasm -o app64.wasm
  wasm-mem raise memory64 app.wasm --memory 1 -o out.wasm   # only memory 1
  wasm-mem raise memory64 app.wasm --tables -o out.wasm     # tables become table64 too")]
pub struct Opts {
    /// Input module (binary or text), or `-` for stdin.
    pub input: String,
    /// Raise only this memory (repeatable; default: every 32-bit memory).
    #[arg(long, value_name = "N")]
    pub memory: Vec<u32>,
    /// Raise 32-bit tables to table64 too.
    #[arg(long)]
    pub tables: bool,
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
        let options = RaiseOptions {
            memories: (!self.memory.is_empty()).then(|| self.memory.clone()),
            tables: self.tables,
        };
        rewrite_module(
            &self.input,
            &self.output,
            self.json,
            &self.modules,
            "raise memory64",
            |module| Ok(raise_memory64(module, &options)?),
            |report| report.to_text(),
        )
    }
}
