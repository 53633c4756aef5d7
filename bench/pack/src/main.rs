//! Benchmark of `wasm-mem pack` against `wasm-opt --memory-packing` and `cp`.
//!
//! For every module of the corpus (`../shared/corpus/fetch.sh DIR`) plus a
//! Wizer snapshot made here from `bench/pack/snapshot.wat`, it prints: input
//! size, data section bytes and segment counts before and after for
//! `wasm-mem pack`, native `wasm-opt` (Debian, 108) and npm `wasm-opt` (132,
//! on node), each with `-g` so names are kept and sizes compare, and the
//! median wall time of each tool run as a process (and of `cp`), measured in
//! the same run. It also checks every `wasm-mem pack` output against the
//! image oracle, and prints whether the targets hold.
//!
//! Usage: `cargo run --release -p wasm-mem-bench-pack -- [CORPUS_DIR]`
//! (default `~/.cache/wasm-mem/corpus`). Tools: `WASM_MEM` (default: the
//! `wasm-mem` binary next to this one), `WASM_OPT_NATIVE` (default
//! `/usr/bin/wasm-opt`), `WASM_OPT_NPM` and `WIZER` (default under
//! `~/.cache/wasm-mem/npm/node_modules`, see the README), `RUNS` (default 5).

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use wasm_mem::image::{compare, initial_images, ImageOptions};
use wasm_mem_bench_pack::{bench_modules, home, npm_modules, time, tool, wasm_opt_command, yes};

/// Data section size (header included) and segment count.
fn data_section(module: &[u8]) -> Result<(u64, u64)> {
    let mut size = 0;
    let mut count = 0;
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        if let wasmparser::Payload::DataSection(reader) = payload? {
            let range = reader.range();
            // id byte + size LEB + payload
            let payload_len = (range.end - range.start) as u64;
            size = 1 + wasm_mem::pack::uleb_len(payload_len) + payload_len;
            count = reader.count() as u64;
        }
    }
    Ok((size, count))
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("fail".into(), |d| {
        format!("{:.1}", d.as_secs_f64() * 1000.0)
    })
}

struct Row {
    name: String,
    input: u64,
    before: (u64, u64),
    ours: (u64, u64),
    opt108: Option<(u64, u64)>,
    opt132: Option<(u64, u64)>,
    t_ours: Option<Duration>,
    t_108: Option<Duration>,
    t_132: Option<Duration>,
    t_cp: Option<Duration>,
    oracle: String,
}

fn run_wasm_opt(
    bin: &Path,
    node: bool,
    input: &Path,
    out: &Path,
    runs: usize,
) -> (Option<(u64, u64)>, Option<Duration>) {
    let t = time(runs, || wasm_opt_command(bin, node, input, out));
    let sizes = t
        .and_then(|_| std::fs::read(out).ok())
        .and_then(|m| data_section(&m).ok());
    (sizes, t)
}

fn main() -> Result<()> {
    let corpus = std::env::args()
        .nth(1)
        .filter(|a| a != "--pack-process")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache/wasm-mem/corpus"));
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("--pack-process") {
        // The measured process: what `wasm-mem pack IN -o OUT` does.
        let (input, output) = (args.next().unwrap(), args.next().unwrap());
        let flags: Vec<String> = args.collect();
        return pack_process(&input, &output, &flags);
    }
    // `WASM_MEM`: a `wasm-mem` binary to time instead of this program's own
    // `--pack-process` mode (the same library calls as the CLI, without
    // building the CLI's wasmtime dependency in release mode).
    let ours: Option<PathBuf> = std::env::var_os("WASM_MEM").map(PathBuf::from);
    let me = std::env::current_exe()?;
    let npm = npm_modules();
    let opt108 = tool("WASM_OPT_NATIVE", PathBuf::from("/usr/bin/wasm-opt"));
    let opt132 = tool("WASM_OPT_NPM", npm.join("binaryen/bin/wasm-opt"));
    let work = tempfile::tempdir()?;

    let modules = bench_modules(&corpus, work.path())?;

    let mut rows = Vec::new();
    let mut jobs: Vec<(&PathBuf, Vec<&str>)> = Vec::new();
    for path in &modules {
        let module = std::fs::read(path)?;
        let info = wasm_mem::ModuleInfo::read(&module)?;
        let at_global = info.data_segments.iter().any(|s| {
            matches!(
                s.offset,
                Some(wasm_mem::model::Offset::Global { resolved: None, .. })
            )
        });
        if at_global {
            // Data at global.get $__memory_base in an imported memory: with
            // the flag alone every written byte is kept (the memory's
            // contents are unknown); a loader that hands out zeroed memory
            // allows --zero-filled-imports.
            jobs.push((path, vec!["--extended-const"]));
            jobs.push((path, vec!["--extended-const", "--zero-filled-imports"]));
        } else {
            jobs.push((path, vec![]));
        }
    }
    for (path, flags) in jobs {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let module = std::fs::read(path)?;
        let out = work.path().join("ours.wasm");
        let make = || {
            let mut c = match &ours {
                Some(bin) => {
                    let mut c = Command::new(bin);
                    c.arg("pack").arg(path).arg("-o").arg(&out);
                    c
                }
                None => {
                    let mut c = Command::new(&me);
                    c.arg("--pack-process").arg(path).arg(&out);
                    c
                }
            };
            c.args(&flags);
            c
        };
        let t_ours = time(runs, make);
        let packed =
            std::fs::read(&out).with_context(|| format!("wasm-mem pack failed on {name}"))?;
        // The oracle (imported globals at 1024, e.g. __memory_base).
        let info = wasm_mem::ModuleInfo::read(&module)?;
        let image = ImageOptions {
            globals: (0..info.globals.len() as u32).map(|g| (g, 1024)).collect(),
            zero_filled_imports: flags.contains(&"--zero-filled-imports"),
            ..Default::default()
        };
        let oracle = match (
            initial_images(&module, &image),
            initial_images(&packed, &image),
        ) {
            (Ok(a), Ok(b)) => match compare(&a, &b) {
                Ok(()) => "same".to_string(),
                Err(e) => format!("DIFFERENT: {e}"),
            },
            (Err(e), _) | (_, Err(e)) => format!("error: {e}"),
        };
        let cp_out = work.path().join("copy.wasm");
        let t_cp = time(runs, || {
            let mut c = Command::new("cp");
            c.arg(path).arg(&cp_out);
            c
        });
        let (o108, t_108) = match &opt108 {
            Some(bin) => run_wasm_opt(bin, false, path, &work.path().join("o108.wasm"), runs),
            None => (None, None),
        };
        let (o132, t_132) = match &opt132 {
            Some(bin) => run_wasm_opt(bin, true, path, &work.path().join("o132.wasm"), runs),
            None => (None, None),
        };
        rows.push(Row {
            name: if flags.is_empty() {
                name
            } else {
                format!("{name} ({})", flags.join(" "))
            },
            input: module.len() as u64,
            before: data_section(&module)?,
            ours: data_section(&packed)?,
            opt108: o108,
            opt132: o132,
            t_ours,
            t_108,
            t_132,
            t_cp,
            oracle,
        });
    }

    let pair = |p: Option<(u64, u64)>| p.map_or("fail".into(), |(b, s)| format!("{b} / {s}"));
    println!("| module | input bytes | data bytes / segments before | wasm-mem pack | wasm-opt 108 | wasm-opt 132 | time wasm-mem ms | wasm-opt 108 ms | wasm-opt 132 ms | cp ms | oracle |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            r.input,
            pair(Some(r.before)),
            pair(Some(r.ours)),
            pair(r.opt108),
            pair(r.opt132),
            ms(r.t_ours),
            ms(r.t_108),
            ms(r.t_132),
            ms(r.t_cp),
            r.oracle
        );
    }
    println!();
    let mut all_ok = true;
    for r in &rows {
        let mut verdicts = Vec::new();
        for (label, other) in [("wasm-opt 108", r.opt108), ("wasm-opt 132", r.opt132)] {
            if let Some((b, _)) = other {
                let ok = r.ours.0 <= b;
                all_ok &= ok;
                verdicts.push(format!(
                    "data <= {label}: {} ({} vs {b})",
                    yes(ok),
                    r.ours.0
                ));
            }
        }
        if let (Some(ours), Some(t108)) = (r.t_ours, r.t_108) {
            let ratio = t108.as_secs_f64() / ours.as_secs_f64();
            if r.input > 1_000_000 {
                all_ok &= ratio >= 50.0;
                verdicts.push(format!(
                    "speed-up vs 108 >= 50x: {} ({ratio:.1}x)",
                    yes(ratio >= 50.0)
                ));
            } else {
                verdicts.push(format!("speed-up vs 108: {ratio:.1}x"));
            }
        }
        if let (Some(ours), Some(cp)) = (r.t_ours, r.t_cp) {
            let ratio = ours.as_secs_f64() / cp.as_secs_f64();
            all_ok &= ratio <= 3.0;
            verdicts.push(format!(
                "time <= 3x cp: {} ({ratio:.2}x)",
                yes(ratio <= 3.0)
            ));
        }
        all_ok &= r.oracle == "same";
        println!("{}: {}", r.name, verdicts.join("; "));
    }
    println!("\nall targets met: {}", yes(all_ok));
    Ok(())
}

/// Read, validate, model, pack (the output is validated inside), write
/// atomically: the work of `wasm-mem pack IN -o OUT`.
fn pack_process(input: &str, output: &str, flags: &[String]) -> Result<()> {
    let phases = std::env::var_os("PACK_PHASES").is_some();
    let t = Instant::now();
    let lap = |what: &str| {
        if phases {
            eprintln!("{what}: {:.1} ms", t.elapsed().as_secs_f64() * 1000.0);
        }
    };
    let raw = std::fs::read(input)?;
    let module = wasm_mem::input::to_binary(&raw)?;
    lap("read");
    wasm_mem::input::validate(&module)?;
    lap("validate");
    let info = wasm_mem::ModuleInfo::read_without_code(&module)?;
    lap("model");
    let options = wasm_mem::pack::PackOptions {
        extended_const: flags.iter().any(|f| f == "--extended-const"),
        zero_filled_imports: flags.iter().any(|f| f == "--zero-filled-imports"),
        ..Default::default()
    };
    let (packed, _report) = wasm_mem::pack::pack(&module, &info, &options)?;
    lap("pack (with output validation)");
    let dir = Path::new(output).parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut temp, &packed)?;
    temp.persist(output)?;
    Ok(())
}
