//! `wasm-mem raise`: widen what a module uses.

use anyhow::Result;
use std::process::ExitCode;

/// Raise a module: memory32 to memory64.
#[derive(clap::Args, Debug)]
pub struct Opts {
    /// What to raise.
    #[command(subcommand)]
    pub pass: RaisePass,
}

/// The raising passes.
#[derive(clap::Subcommand, Debug)]
pub enum RaisePass {
    /// 32-bit memories (and with --tables, tables) to 64-bit ones.
    #[command(name = "memory64")]
    Memory64(super::raise_memory64::Opts),
}

impl Opts {
    /// Run the chosen pass.
    pub fn run(&self) -> Result<ExitCode> {
        match &self.pass {
            RaisePass::Memory64(opts) => opts.run(),
        }
    }
}
