//! Benchmark of `wasm-mem lower multi-memory`.
//!
//! Each kernel (WAT in `kernels/`) stresses accesses to two or more memories.
//! It runs three ways on wasmtime 48 with the same `Config` (Cranelift,
//! default optimisation), except that the original needs multi-memory:
//!
//! - `native`: the original module, native multi-memory;
//! - `exact`: lowered by `lower multi-memory` (default, exact mode);
//! - `unchecked`: lowered with `--unchecked`.
//!
//! Every variant is compiled and instantiated once per repetition and its
//! `run(iterations)` export is timed (wall clock, instantiation excluded);
//! all three must return the same checksum. The table gives the median of
//! the repetitions and the ratio of each lowered variant's median to the
//! native one. Targets: exact <= 1.5x, unchecked <= 1.05x.
//!
//! Usage: `cargo run --release -p multi-memory-bench -- [REPS] [KERNEL]`
//! (default 7 repetitions; `KERNEL` runs only the kernels whose name
//! contains it). With `MULTI_MEMORY_BENCH_DUMP=DIR` set, the compiled code of
//! every variant is also written to `DIR/<kernel>-<variant>.cwasm` (an ELF
//! file: `objdump -d` shows the machine code that is timed).

use anyhow::{bail, Context, Result};
use std::time::{Duration, Instant};
use wasm_mem::lower_multi_memory::{lower_multi_memory, LowerOptions};
use wasmtime::{Config, Engine, Instance, Module, Store};

const KERNELS: &[(&str, &str, i32)] = &[
    ("copy (3 memories)", include_str!("../kernels/copy.wat"), 60),
    (
        "crc32 (data + table)",
        include_str!("../kernels/hash.wat"),
        60,
    ),
    (
        "interpreter (heap + stack)",
        include_str!("../kernels/interp.wat"),
        3000,
    ),
];

fn engine(multi_memory: bool) -> Result<Engine> {
    let mut config = Config::new();
    config.wasm_multi_memory(multi_memory);
    Engine::new(&config).map_err(|e| anyhow::anyhow!("{e}"))
}

/// One timed run: compile, instantiate, time `run(iters)`.
fn time(engine: &Engine, bytes: &[u8], iters: i32) -> Result<(Duration, i64)> {
    let module = Module::new(engine, bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut store = Store::new(engine, ());
    let instance = Instance::new(&mut store, &module, &[]).map_err(|e| anyhow::anyhow!("{e}"))?;
    let run = instance
        .get_typed_func::<i32, i64>(&mut store, "run")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let start = Instant::now();
    let sum = run
        .call(&mut store, iters)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((start.elapsed(), sum))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let reps: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().context("REPS must be a number"))
        .transpose()?
        .unwrap_or(7);
    let filter = std::env::args().nth(2).unwrap_or_default();
    let dump = std::env::var_os("MULTI_MEMORY_BENCH_DUMP").map(std::path::PathBuf::from);
    let native_engine = engine(true)?;
    let lowered_engine = engine(false)?;
    println!("lower multi-memory benchmark: wasmtime 48, median of {reps} runs (wall time of run(), instantiation excluded)");
    println!(
        "{:<28} {:>11} {:>11} {:>11} {:>8} {:>10}",
        "kernel", "native ms", "exact ms", "unchk ms", "exact x", "unchk x"
    );
    let mut worst = (0f64, 0f64);
    for (name, wat, iters) in KERNELS.iter().filter(|k| k.0.contains(&filter)) {
        let original = wat::parse_str(wat)?;
        let (exact, _) = lower_multi_memory(&original, &LowerOptions::default())?;
        let (unchecked, _) = lower_multi_memory(&original, &LowerOptions { checked: false })?;
        let variants: [(&Engine, &[u8]); 3] = [
            (&native_engine, &original),
            (&lowered_engine, &exact),
            (&lowered_engine, &unchecked),
        ];
        if let Some(dir) = &dump {
            let short = name.split(' ').next().unwrap_or(name);
            for (label, (engine, bytes)) in ["native", "exact", "unchecked"].iter().zip(&variants) {
                let code = engine
                    .precompile_module(bytes)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let path = dir.join(format!("{short}-{label}.cwasm"));
                std::fs::write(&path, code)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        let mut times = vec![Vec::new(), Vec::new(), Vec::new()];
        let mut sums = [None; 3];
        // Warm up once, then interleave the variants so drift hits all alike.
        for _ in 0..=reps {
            for (k, (engine, bytes)) in variants.iter().enumerate() {
                let (t, sum) = time(engine, bytes, *iters)?;
                match sums[k] {
                    None => sums[k] = Some(sum),
                    Some(s) if s != sum => bail!("{name}: variant {k} gave {sum}, then {s}"),
                    _ => {}
                }
                times[k].push(t);
            }
        }
        if sums[1] != sums[0] || sums[2] != sums[0] {
            bail!("{name}: checksums differ: {sums:?}");
        }
        let m: Vec<Duration> = times
            .into_iter()
            .map(|mut t| {
                t.remove(0); // warm-up
                median(t)
            })
            .collect();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let rx = ms(m[1]) / ms(m[0]);
        let ru = ms(m[2]) / ms(m[0]);
        worst = (worst.0.max(rx), worst.1.max(ru));
        println!(
            "{:<28} {:>11.2} {:>11.2} {:>11.2} {:>7.2}x {:>9.2}x",
            name,
            ms(m[0]),
            ms(m[1]),
            ms(m[2]),
            rx,
            ru
        );
    }
    println!(
        "worst ratio: exact {:.2}x (target <= 1.5x: {}), unchecked {:.2}x (target <= 1.05x: {})",
        worst.0,
        if worst.0 <= 1.5 { "met" } else { "MISSED" },
        worst.1,
        if worst.1 <= 1.05 { "met" } else { "MISSED" }
    );
    Ok(())
}
