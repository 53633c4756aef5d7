//! `wasm-mem lower`: narrow what a module uses, for engines and tools that
//! lack a feature.

use anyhow::Result;
use std::process::ExitCode;

/// Lower a module: memory64 to memory32.
#[derive(clap::Args, Debug)]
pub struct Opts {
    /// What to lower.
    #[command(subcommand)]
    pub pass: LowerPass,
}

/// The lowering passes.
#[derive(clap::Subcommand, Debug)]
pub enum LowerPass {
    /// 64-bit memories and tables to 32-bit ones.
    #[command(name = "memory64")]
    Memory64(super::lower_memory64::Opts),
    /// All memories into one memory.
    #[command(name = "multi-memory")]
    MultiMemory(super::lower_multi_memory::Opts),
}

impl Opts {
    /// Run the chosen pass.
    pub fn run(&self) -> Result<ExitCode> {
        match &self.pass {
            LowerPass::Memory64(opts) => opts.run(),
            LowerPass::MultiMemory(opts) => opts.run(),
        }
    }
}
