//! `wasm-mem pack`: the smallest data section that gives the same memory.

use crate::component::ModuleArgs;
use crate::io::{rewrite_module, OutputArgs};
use anyhow::Result;
use clap::builder::TypedValueParser as _;
use std::process::ExitCode;
use wasm_mem::pack::{PackOptions, PackReport, DEFAULT_MAX_SEGMENTS};
use wasm_mem::pack_objective::{pack_for, Objective, ObjectiveReport, Sizes};
use wasm_mem::ModuleInfo;

/// Shrink the data section to the exact minimum that reproduces the same
/// initial memory image.
///
/// The active segments are rebuilt from the image they write, per memory:
/// zero bytes of zero-filled memories are dropped, gaps are bridged or split
/// by an exact dynamic program over the real encoding cost of every
/// segment. Instantiation traps, overlapping writes, imported memories (whose
/// unwritten bytes stay unwritten), multi-memory, memory64 and custom page
/// sizes are handled exactly; passive segments whose `memory.init` uses are
/// constant are split at zero runs where it pays (with `memory.init` and
/// `data.drop` rewritten to trap exactly as before); every other section is
/// copied byte for byte. The report (stderr, or `--json` on stdout) gives
/// bytes and segment counts before and after, per memory.
///
/// `--objective gzip|brotli|zstd` picks, among exact layouts of the same
/// image, the one whose whole module is smallest after that compressor at its
/// serving level (`gzip -9n`, `brotli -q 11`, `zstd -19`), checked by
/// compressing the real output; the output is never larger than the input
/// under that objective. The report then also gives raw, gzip and brotli
/// sizes before and after.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  wasm-mem pack app.wasm -o app.packed.wasm
  wasm-mem pack app.wasm --max-segments 1000 --json -o out.wasm
  wasm-mem pack side.wasm --extended-const -o side.packed.wasm   # split data at global.get $__memory_base
  wasm-mem pack lib.wasm --zero-filled-imports -o out.wasm       # the host gives a fresh zeroed memory
  wasm-mem pack app.wasm --objective brotli -o app.wasm          # smallest after brotli -q 11")]
pub struct Opts {
    /// Input module (binary or text), or `-` for stdin.
    pub input: String,
    /// At most N data segments in the output (Web engines reject more than 100,000).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_SEGMENTS)]
    pub max_segments: u32,
    /// Split segments at `global.get` offsets into pieces at
    /// `global.get g; i32.const k; i32.add` (needs extended-const in the engine).
    #[arg(long)]
    pub extended_const: bool,
    /// Imported memories are zero-filled at instantiation: their zero bytes may be dropped.
    #[arg(long)]
    pub zero_filled_imports: bool,
    /// What to minimise: the module's bytes (`raw`), or its size after
    /// `gzip -9n`, `brotli -q 11` or `zstd -19`.
    #[arg(long, value_name = "OBJECTIVE", default_value_t = Objective::Raw,
          value_parser = clap::builder::PossibleValuesParser::new(["raw", "gzip", "brotli", "zstd"])
              .map(|s| s.parse::<Objective>().unwrap()))]
    pub objective: Objective,
    /// Also report gzip and brotli sizes under `--objective raw` (the other
    /// objectives always do).
    #[arg(long)]
    pub sizes: bool,
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
        let options = PackOptions {
            max_segments: self.max_segments,
            extended_const: self.extended_const,
            zero_filled_imports: self.zero_filled_imports,
        };
        rewrite_module(
            &self.input,
            &self.output,
            self.json,
            &self.modules,
            "pack",
            |module| {
                let info = ModuleInfo::read_without_code(module)?;
                let (out, pack, objective) =
                    pack_for(module, &info, &options, self.objective, self.sizes)?;
                Ok((out, Report { pack, objective }))
            },
            describe,
        )
    }
}

/// The `--json` report: the pack report's fields, plus `objective` (the
/// compressed sizes, `null` under `--objective raw` without `--sizes`).
#[derive(serde::Serialize)]
struct Report {
    #[serde(flatten)]
    pack: PackReport,
    objective: Option<ObjectiveReport>,
}

fn describe(report: &Report) -> String {
    let mut text = describe_pack(&report.pack);
    if let Some(o) = &report.objective {
        text += &format!(
            "objective {}: {}\n",
            o.objective,
            match o.penalty {
                Some(p) if o.toggled > 0 => format!(
                    "layout at segment penalty {p} with {} gap(s) toggled by the local search ({} layouts scored)",
                    o.toggled, o.candidates
                ),
                Some(p) => format!(
                    "layout at segment penalty {p} ({} layouts scored)",
                    o.candidates
                ),
                None => format!("the input's layout ({} layouts scored)", o.candidates),
            }
        );
        let line = |label: &str, get: fn(&Sizes) -> Option<u64>| -> String {
            match (get(&o.before), get(&o.after)) {
                (Some(a), Some(b)) => format!(
                    "  {label:<7} {a:>10} -> {b:>10} bytes ({:+})\n",
                    b as i64 - a as i64
                ),
                _ => String::new(),
            }
        };
        text += &line("raw", |s| Some(s.raw));
        text += &line("gzip", |s| Some(s.gzip));
        text += &line("brotli", |s| Some(s.brotli));
        text += &line("zstd", |s| s.zstd);
    }
    text
}

fn describe_pack(report: &PackReport) -> String {
    let mut text = format!(
        "data section: {} -> {} bytes, {} -> {} segments{}\n",
        report.data_section_before,
        report.data_section_after,
        report.segments_before,
        report.segments_after,
        if report.changed { "" } else { " (unchanged)" }
    );
    for m in &report.memories {
        text += &format!(
            "memory {}{}: {} -> {} bytes in {} -> {} active segments\n",
            m.memory,
            if m.imported { " (imported)" } else { "" },
            m.bytes_before,
            m.bytes_after,
            m.segments_before,
            m.segments_after
        );
    }
    if report.passive_segments > 0 {
        text += &format!(
            "passive: {} -> {} bytes, {} -> {} segments ({} split, {} memory.init and {} data.drop rewritten; code section {} -> {} bytes)\n",
            report.passive_bytes_before,
            report.passive_bytes_after,
            report.passive_segments,
            report.passive_segments_after,
            report.passive_segments_split,
            report.memory_init_rewritten,
            report.data_drop_rewritten,
            report.code_section_before,
            report.code_section_after
        );
    }
    if let Some(gap) = report.cap_gap_bytes {
        text +=
            &format!("segment cap reached: at most {gap} bytes above the optimum under the cap\n");
    }
    if let Some(save) = report.extended_const_would_save {
        text += &format!("--extended-const would save {save} more bytes\n");
    }
    for note in &report.notes {
        text += &format!("note: {note}\n");
    }
    text
}
