//! Benchmark of `wasm-mem pack --objective` against `wasm-opt --memory-packing`.
//!
//! For every module of the corpus (`../shared/corpus/fetch.sh DIR`) plus the
//! Wizer snapshot of `bench/pack/snapshot.wat`, in one run: the raw, gzip
//! (`gzip -9n`) and brotli (`brotli -q 11`) sizes of the whole module for the
//! input, for native `wasm-opt --memory-packing -g` (Debian, 108) and npm
//! `wasm-opt` (132, on node), and for our pack under each objective (`raw`,
//! `gzip`, `brotli`, `zstd`; the zstd row adds the `zstd -19` size), with the
//! wall time of each run as a process (the median of `RUNS`, default 1: a
//! brotli objective on a 5 MB module takes seconds). Every output of ours is
//! checked against the image oracle. Then the targets: under `--objective
//! gzip` the gzip size is never larger than the input's and smaller than both
//! wasm-opt outputs'; likewise brotli.
//!
//! Sizes come from the library's compressors (`wasm_mem::pack_objective`:
//! flate2/zlib-rs level 9, the `brotli` crate at quality 11 with a 16 MiB
//! window); with `CHECK_CLI=1` the gzip and brotli figures of our outputs
//! are also measured with the `gzip -9n` and `brotli -q 11` commands.
//!
//! Usage: `cargo build --release -p wasm-mem-bench-pack && target/release/bench-pack-objective [CORPUS_DIR]`
//! (default `~/.cache/wasm-mem/corpus`). Tools as for `bench-pack`:
//! `WASM_OPT_NATIVE` (default `/usr/bin/wasm-opt`), `WASM_OPT_NPM` and
//! `WIZER` (default under `~/.cache/wasm-mem/npm/node_modules`).

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use wasm_mem::image::{compare, initial_images, ImageOptions};
use wasm_mem::pack_objective::Objective;
use wasm_mem_bench_pack::{bench_modules, home, npm_modules, time, tool, wasm_opt_command, yes};

/// Whole-module sizes: raw, gzip, brotli, and zstd when asked.
#[derive(Clone, Copy)]
struct Sizes {
    raw: u64,
    gzip: u64,
    brotli: u64,
    zstd: Option<u64>,
}

fn sizes(module: &[u8], with_zstd: bool) -> Sizes {
    let s = wasm_mem::pack_objective::Sizes::of(module, with_zstd);
    Sizes {
        raw: s.raw,
        gzip: s.gzip,
        brotli: s.brotli,
        zstd: s.zstd,
    }
}

/// Size of `file` after an external compressor command (stdout counted).
fn cli_size(program: &str, args: &[&str], file: &Path) -> Option<u64> {
    let out = Command::new(program).args(args).arg(file).output().ok()?;
    out.status.success().then_some(out.stdout.len() as u64)
}

struct Cell {
    label: String,
    sizes: Option<Sizes>,
    time: Option<Duration>,
    oracle: Option<String>,
    cli: Option<(Option<u64>, Option<u64>)>,
}

fn wasm_opt(bin: &Path, node: bool, input: &Path, out: &Path, runs: usize) -> Cell {
    let t = time(runs, || wasm_opt_command(bin, node, input, out));
    let sizes = t
        .and_then(|_| std::fs::read(out).ok())
        .map(|m| sizes(&m, false));
    Cell {
        label: format!("wasm-opt {}", if node { "132" } else { "108" }),
        sizes,
        time: t,
        oracle: None,
        cli: None,
    }
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let first = args.next();
    if first.as_deref() == Some("--pack-process") {
        let (input, output, objective) = (
            args.next().context("input")?,
            args.next().context("output")?,
            args.next().context("objective")?,
        );
        let flags: Vec<String> = args.collect();
        return pack_process(&input, &output, &objective, &flags);
    }
    let corpus = first
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache/wasm-mem/corpus"));
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    let check_cli = std::env::var_os("CHECK_CLI").is_some();
    let me = std::env::current_exe()?;
    let npm = npm_modules();
    let opt108 = tool("WASM_OPT_NATIVE", PathBuf::from("/usr/bin/wasm-opt"));
    let opt132 = tool("WASM_OPT_NPM", npm.join("binaryen/bin/wasm-opt"));
    let work = tempfile::tempdir()?;

    let modules = bench_modules(&corpus, work.path())?;

    let mut all_ok = true;
    let mut verdicts = Vec::new();
    println!("| module | layout | raw | gzip | brotli | zstd | time ms | oracle |");
    println!("|---|---|---:|---:|---:|---:|---:|---|");
    for path in &modules {
        let module = std::fs::read(path)?;
        let info = wasm_mem::ModuleInfo::read(&module)?;
        let at_global = info.data_segments.iter().any(|s| {
            matches!(
                s.offset,
                Some(wasm_mem::model::Offset::Global { resolved: None, .. })
            )
        });
        // Side modules (data at global.get of an imported global, imported
        // memory): only a loader that zero-fills the memory lets any layout
        // change, so both flags are passed.
        let flags: Vec<&str> = if at_global {
            vec!["--extended-const", "--zero-filled-imports"]
        } else {
            vec![]
        };
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let name = if flags.is_empty() {
            name
        } else {
            format!("{name} ({})", flags.join(" "))
        };
        let mut cells = vec![Cell {
            label: "input".into(),
            sizes: Some(sizes(&module, true)),
            time: None,
            oracle: None,
            cli: None,
        }];
        for (bin, node) in [(&opt108, false), (&opt132, true)] {
            if let Some(bin) = bin {
                let out = work.path().join("wasm-opt.wasm");
                cells.push(wasm_opt(bin, node, path, &out, runs));
            }
        }
        let image = ImageOptions {
            globals: (0..info.globals.len() as u32).map(|g| (g, 1024)).collect(),
            zero_filled_imports: flags.contains(&"--zero-filled-imports"),
            ..Default::default()
        };
        let before_image = initial_images(&module, &image)?;
        for objective in Objective::ALL {
            let out = work.path().join(format!("ours-{objective}.wasm"));
            let t = time(runs, || {
                let mut c = Command::new(&me);
                c.arg("--pack-process")
                    .arg(path)
                    .arg(&out)
                    .arg(objective.name())
                    .args(&flags);
                c
            });
            let packed = std::fs::read(&out)
                .with_context(|| format!("pack --objective {objective} failed on {name}"))?;
            let oracle = match initial_images(&packed, &image) {
                Ok(after) => match compare(&before_image, &after) {
                    Ok(()) => "same".to_string(),
                    Err(e) => format!("DIFFERENT: {e}"),
                },
                Err(e) => format!("error: {e}"),
            };
            all_ok &= oracle == "same";
            let cli = check_cli.then(|| {
                (
                    cli_size("gzip", &["-9n", "-c"], &out),
                    cli_size("brotli", &["-q", "11", "-c"], &out),
                )
            });
            cells.push(Cell {
                label: format!("pack --objective {objective}"),
                sizes: Some(sizes(&packed, objective == Objective::Zstd)),
                time: t,
                oracle: Some(oracle),
                cli,
            });
        }
        for cell in &cells {
            let s = cell.sizes;
            let num = |f: fn(&Sizes) -> Option<u64>| {
                s.and_then(|s| f(&s))
                    .map_or("".to_string(), |v| v.to_string())
            };
            let mut gzip = num(|s| Some(s.gzip));
            let mut brotli = num(|s| Some(s.brotli));
            if let Some((g, b)) = cell.cli {
                gzip += &format!(" (cli {})", g.map_or("fail".into(), |v| v.to_string()));
                brotli += &format!(" (cli {})", b.map_or("fail".into(), |v| v.to_string()));
            }
            println!(
                "| {name} | {} | {} | {gzip} | {brotli} | {} | {} | {} |",
                cell.label,
                if s.is_none() {
                    "fail".into()
                } else {
                    num(|s| Some(s.raw))
                },
                num(|s| s.zstd),
                cell.time
                    .map_or("".into(), |d| format!("{:.0}", d.as_secs_f64() * 1000.0)),
                cell.oracle.as_deref().unwrap_or(""),
            );
        }
        // Targets.
        let input = cells[0].sizes.unwrap();
        for (objective, get) in [
            (Objective::Gzip, (|s: &Sizes| s.gzip) as fn(&Sizes) -> u64),
            (Objective::Brotli, |s: &Sizes| s.brotli),
        ] {
            let ours = cells
                .iter()
                .find(|c| c.label == format!("pack --objective {objective}"))
                .and_then(|c| c.sizes)
                .map(|s| get(&s))
                .unwrap();
            let mut parts = Vec::new();
            let ok_input = ours <= get(&input);
            all_ok &= ok_input;
            parts.push(format!(
                "<= input: {} ({ours} vs {})",
                yes(ok_input),
                get(&input)
            ));
            for cell in cells.iter().filter(|c| c.label.starts_with("wasm-opt")) {
                match cell.sizes {
                    Some(s) => {
                        let ok = ours < get(&s);
                        all_ok &= ok;
                        parts.push(format!("< {}: {} (vs {})", cell.label, yes(ok), get(&s)));
                    }
                    None => parts.push(format!("{}: failed", cell.label)),
                }
            }
            verdicts.push(format!(
                "{name} --objective {objective}: {}",
                parts.join("; ")
            ));
        }
    }
    println!();
    for v in verdicts {
        println!("{v}");
    }
    println!("\nall targets met: {}", yes(all_ok));
    Ok(())
}

/// What `wasm-mem pack IN -o OUT --objective O` does: read, validate, model,
/// pack for the objective (output validated inside, report sizes measured),
/// write atomically.
fn pack_process(input: &str, output: &str, objective: &str, flags: &[String]) -> Result<()> {
    let objective: Objective = objective.parse().map_err(anyhow::Error::msg)?;
    let raw = std::fs::read(input)?;
    let module = wasm_mem::input::to_binary(&raw)?;
    wasm_mem::input::validate(&module)?;
    let info = wasm_mem::ModuleInfo::read(&module)?;
    let options = wasm_mem::pack::PackOptions {
        extended_const: flags.iter().any(|f| f == "--extended-const"),
        zero_filled_imports: flags.iter().any(|f| f == "--zero-filled-imports"),
        ..Default::default()
    };
    let (packed, _report, _sizes) =
        wasm_mem::pack_objective::pack_for(&module, &info, &options, objective, false)?;
    let dir = Path::new(output).parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut temp, &packed)?;
    temp.persist(output)?;
    Ok(())
}
