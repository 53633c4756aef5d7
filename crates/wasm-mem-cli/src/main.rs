//! `wasm-mem`: the command-line tool. Each subcommand lives in `cmd/` as an
//! `Opts` struct with a `run()` method; input and output handling is shared
//! in `io`.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod cmd;
mod component;
mod huge_pages;
mod io;

#[global_allocator]
static ALLOCATOR: huge_pages::HugePagesForLargeBuffers = huge_pages::HugePagesForLargeBuffers;

/// WebAssembly linear memory toolkit.
#[derive(Parser)]
#[command(name = "wasm-mem", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Inspect(cmd::inspect::Opts),
    Pages(cmd::pages::Opts),
    Pack(cmd::pack::Opts),
    Check(cmd::check::Opts),
    Run(cmd::run::Opts),
    Lower(cmd::lower::Opts),
    Raise(cmd::raise::Opts),
}

impl Command {
    fn run(&self) -> anyhow::Result<ExitCode> {
        match self {
            Command::Inspect(opts) => opts.run(),
            Command::Pages(opts) => opts.run(),
            Command::Pack(opts) => opts.run(),
            Command::Check(opts) => opts.run(),
            Command::Run(opts) => opts.run(),
            Command::Lower(opts) => opts.run(),
            Command::Raise(opts) => opts.run(),
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command.run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            let code = e
                .chain()
                .find_map(|c| c.downcast_ref::<wasm_mem::Error>())
                .map_or(2, wasm_mem::Error::exit_code);
            ExitCode::from(code as u8)
        }
    }
}
