//! Times `inspect` on real-world modules and prints a table.
//!
//! ```sh
//! ../shared/corpus/fetch.sh ~/.cache/wasm-mem/corpus
//! cargo build --release -p wasm-mem-cli -p bench-inspect
//! cargo run --release -p bench-inspect -- ~/.cache/wasm-mem/corpus
//! ```
//!
//! For each module: in-process time of validation + model + report
//! (median of several runs), the end-to-end time of the release
//! `wasm-mem inspect --json` binary, and, in the same run, `wasm-objdump -x`
//! (wabt, a full header and section dump) and `cp` as anchors when present.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time_command(program: &str, args: &[&str], runs: usize) -> Option<Duration> {
    let mut samples = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let status = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?;
        if !status.success() {
            return None;
        }
        samples.push(start.elapsed());
    }
    Some(median(samples))
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "n/a".into(),
        |d| format!("{:.2}", d.as_secs_f64() * 1000.0),
    )
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/wasm-mem/corpus")
        });
    let exe = std::env::current_exe().unwrap();
    let cli = exe.with_file_name("wasm-mem");
    if !cli.exists() {
        eprintln!("build the CLI first: cargo build --release -p wasm-mem-cli");
        std::process::exit(2);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (run ../shared/corpus/fetch.sh {0})", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    files.sort();
    let tmp = std::env::temp_dir().join("bench-inspect-copy.wasm");
    println!(
        "| module | size (bytes) | memories | segments | in-process ms | `wasm-mem inspect --json` ms | `wasm-objdump -x` ms | `cp` ms |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        let mut samples = Vec::new();
        let mut summary = (0, 0);
        for _ in 0..7 {
            let start = Instant::now();
            wasm_mem::input::validate(&bytes).unwrap();
            let info = wasm_mem::ModuleInfo::read(&bytes).unwrap();
            let report = wasm_mem::inspect::inspect(&info, bytes.len(), &Default::default());
            let json = serde_json::to_string(&report).unwrap();
            samples.push(start.elapsed());
            summary = (info.memories.len(), info.data_segments.len());
            std::hint::black_box(json);
        }
        let p = path.to_str().unwrap();
        let ours = time_command(cli.to_str().unwrap(), &["inspect", "--json", p], 5);
        let objdump = time_command("wasm-objdump", &["-x", p], 5);
        let cp = time_command("cp", &[p, tmp.to_str().unwrap()], 5);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            name(path),
            bytes.len(),
            summary.0,
            summary.1,
            ms(Some(median(samples))),
            ms(ours),
            ms(objdump),
            ms(cp)
        );
    }
    let _ = std::fs::remove_file(tmp);
}

fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}
