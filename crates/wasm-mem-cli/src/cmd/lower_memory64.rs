//! `wasm-mem lower memory64`: turn 64-bit memories and tables into 32-bit ones.

use crate::component::ModuleArgs;
use crate::io::{rewrite_module, OutputArgs};
use anyhow::Result;
use std::process::ExitCode;
use wasm_mem::lower_memory64::lower_memory64;

/// Lower every memory64 memory and table64 table to 32-bit indices, with
/// exactly the same behaviour: an address, length or index with high bits
/// set traps, a memarg offset >= 2^32 traps, a grow by >= 2^32 returns -1,
/// and segments at offsets >= 2^32 still fail instantiation.
///
/// The output validates with memory64 turned off. Imported memories and
/// tables change type: the report says what the host must provide.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  wasm-mem lower memory64 app64.wasm -o app32.wasm
  wasm-mem lower memory64 app64.wat -t              # print the result as text
  wasm-mem lower memory64 app64.wasm -o app32.wasm --json > report.json")]
pub struct Opts {
    /// Input module (binary or text), or `-` for stdin.
    pub input: String,
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
        rewrite_module(
            &self.input,
            &self.output,
            self.json,
            &self.modules,
            "lower memory64",
            |module| Ok(lower_memory64(module)?),
            |report| report.to_text(),
        )
    }
}
