//! What the two pack benchmarks (`bench-pack`, `bench-pack-objective`)
//! share: tool lookup, process timing and the module set (the corpus plus a
//! Wizer snapshot made from `snapshot.wat`).

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// `$HOME`.
pub fn home() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
}

/// The tool named by environment variable `var`, else `default`, if it exists.
pub fn tool(var: &str, default: PathBuf) -> Option<PathBuf> {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or(default);
    path.exists().then_some(path)
}

/// Where `npm install --prefix ~/.cache/wasm-mem/npm ...` puts packages.
pub fn npm_modules() -> PathBuf {
    home().join(".cache/wasm-mem/npm/node_modules")
}

/// Median wall time of `runs` runs of a command; `None` if it fails.
pub fn time(runs: usize, mut make: impl FnMut() -> Command) -> Option<Duration> {
    let mut times = Vec::new();
    for _ in 0..runs {
        let mut command = make();
        command.stdout(std::process::Stdio::null());
        command.stderr(std::process::Stdio::null());
        let start = Instant::now();
        let status = command.status().ok()?;
        let elapsed = start.elapsed();
        if !status.success() {
            return None;
        }
        times.push(elapsed);
    }
    times.sort();
    Some(times[times.len() / 2])
}

/// `wasm-opt --memory-packing -g --all-features INPUT -o OUT`: `bin` itself,
/// or run by `node` for npm's binaryen.
pub fn wasm_opt_command(bin: &Path, node: bool, input: &Path, out: &Path) -> Command {
    let mut c = if node {
        let mut c = Command::new("node");
        c.arg(bin);
        c
    } else {
        Command::new(bin)
    };
    c.args(["--memory-packing", "-g", "--all-features"])
        .arg(input)
        .arg("-o")
        .arg(out);
    c
}

/// "yes" or "NO", for target verdicts.
pub fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "NO"
    }
}

/// The `.wasm` files of `corpus` (sorted; a note and none when it is
/// missing), plus a snapshot that Wizer (`WIZER`, default: npm's
/// `@bytecodealliance/wizer`) makes in `work` from `snapshot.wat` (a note and
/// no snapshot when Wizer is missing).
pub fn bench_modules(corpus: &Path, work: &Path) -> Result<Vec<PathBuf>> {
    let mut modules: Vec<PathBuf> = match std::fs::read_dir(corpus) {
        Ok(dir) => dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
            .collect(),
        Err(_) => {
            eprintln!(
                "note: no corpus at {}: run ../shared/corpus/fetch.sh {0}",
                corpus.display()
            );
            Vec::new()
        }
    };
    modules.sort();
    let wizer = tool(
        "WIZER",
        npm_modules().join("@bytecodealliance/wizer-linux-x64/wizer"),
    );
    match &wizer {
        Some(wizer) => {
            let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshot.wat");
            let program = work.join("snapshot-program.wasm");
            std::fs::write(&program, wat::parse_file(&source)?)?;
            let snapshot = work.join("wizer-snapshot.wasm");
            let status = Command::new(wizer)
                .args(["-f", "wizer.initialize"])
                .arg(&program)
                .arg("-o")
                .arg(&snapshot)
                .status()?;
            if !status.success() {
                bail!("wizer failed on {}", source.display());
            }
            modules.push(snapshot);
        }
        None => eprintln!("note: wizer not found (npm @bytecodealliance/wizer): no snapshot row"),
    }
    Ok(modules)
}
