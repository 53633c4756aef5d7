//! Benchmark of `lower memory64` and `raise memory64` on wasmtime.
//!
//! Each kernel in `kernels/*.wat.in` is a template over the address type
//! (`ADDR`). It is instantiated as a memory64 module and as a memory32
//! module, and four variants run in the same process on the same machine:
//!
//! - memory64 native (wasmtime with memory64 on) vs our lowered module (on
//!   an engine with memory64 off),
//! - memory32 native vs our raised module (memory64 on),
//! - and, when `wasm-opt` is on PATH, Binaryen's `--memory64-lowering` as the
//!   anchor (it only wraps addresses and never checks the high bits, so it
//!   is not exact: shown for speed only).
//!
//! Every variant must return the same checksum as its native module. Timing:
//! one warm-up call, then the median of `--samples` calls (default 7).
//!
//! Run: `cargo run --release -p memory64-bench [-- --samples N]`.

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use wasm_mem::lower_memory64::lower_memory64;
use wasm_mem::raise_memory64::{raise_memory64, RaiseOptions};
use wasmtime::{Config, Engine, Instance, Module, Store};

const KERNELS: &[(&str, &str, i32)] = &[
    ("sum_i32", include_str!("../kernels/sum_i32.wat.in"), 20),
    (
        "copy_bytes",
        include_str!("../kernels/copy_bytes.wat.in"),
        20,
    ),
    (
        "matmul_f64",
        include_str!("../kernels/matmul_f64.wat.in"),
        4,
    ),
    (
        "random_access",
        include_str!("../kernels/random_access.wat.in"),
        8,
    ),
    ("bulk", include_str!("../kernels/bulk.wat.in"), 40),
];

/// Instantiate a kernel template for `i64` or `i32` addresses.
fn instantiate(template: &str, addr: &str) -> Result<Vec<u8>> {
    let text = if addr == "i64" {
        template
            .replace("(i32.wrap_ADDR ", "(i32.wrap_i64 ")
            .replace("(ADDR_FROM_I64 ", "(block (result i64) ")
            .replace("(ADDR_TO_I64 ", "(block (result i64) ")
            .replace("ADDR", "i64")
    } else {
        template
            .replace("(i32.wrap_ADDR ", "(block (result i32) ")
            .replace("(ADDR_FROM_I64 ", "(i32.wrap_i64 ")
            .replace("(ADDR_TO_I64 ", "(i64.extend_i32_u ")
            .replace("ADDR", "i32")
    };
    Ok(wat::parse_str(&text)?)
}

/// wasmtime 48 has its own error type.
fn w<T>(result: wasmtime::Result<T>) -> Result<T> {
    result.map_err(|e| anyhow::anyhow!("{e:?}"))
}

fn engine(memory64: bool) -> Result<Engine> {
    let mut config = Config::new();
    config.wasm_memory64(memory64);
    w(Engine::new(&config))
}

/// Median time of one `run(reps)` call, and its checksum.
fn time(engine: &Engine, bytes: &[u8], reps: i32, samples: usize) -> Result<(Duration, i64)> {
    let module = w(Module::new(engine, bytes))?;
    let mut store = Store::new(engine, ());
    let instance = w(Instance::new(&mut store, &module, &[]))?;
    let run = w(instance.get_typed_func::<i32, i64>(&mut store, "run"))?;
    let mut checksum = w(run.call(&mut store, reps))?;
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        // A fresh instance per sample keeps the memory state identical.
        let mut store = Store::new(engine, ());
        let instance = w(Instance::new(&mut store, &module, &[]))?;
        let run = w(instance.get_typed_func::<i32, i64>(&mut store, "run"))?;
        let start = Instant::now();
        let sum = w(run.call(&mut store, reps))?;
        times.push(start.elapsed());
        if sum != checksum {
            bail!("checksum changed between runs: {sum} vs {checksum}");
        }
        checksum = sum;
    }
    times.sort();
    Ok((times[times.len() / 2], checksum))
}

/// Binaryen's lowering of `bytes`, when wasm-opt is installed.
fn binaryen_lowered(bytes: &[u8], name: &str) -> Option<Vec<u8>> {
    let dir = std::env::temp_dir().join(format!("memory64-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let input = dir.join(format!("{name}.wasm"));
    let output = dir.join(format!("{name}.lowered.wasm"));
    std::fs::write(&input, bytes).ok()?;
    let status = Command::new("wasm-opt")
        .args([
            "--enable-memory64",
            "--enable-bulk-memory",
            "--memory64-lowering",
        ])
        .arg(&input)
        .arg("-o")
        .arg(&output)
        .stderr(std::process::Stdio::null())
        .status()
        .ok()?;
    let result = status
        .success()
        .then(|| std::fs::read(&output).ok())
        .flatten();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn ratio(a: Duration, b: Duration) -> String {
    format!("{:.2}", a.as_secs_f64() / b.as_secs_f64())
}

fn main() -> Result<()> {
    let mut samples = 7;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--samples" => {
                samples = args
                    .get(i + 1)
                    .context("--samples needs a number")?
                    .parse()?;
                i += 1;
            }
            other => bail!("unknown argument {other}; usage: memory64-bench [--samples N]"),
        }
        i += 1;
    }
    let on = engine(true)?;
    let off = engine(false)?;
    let has_binaryen = Path::new("/usr/bin/wasm-opt").exists()
        || Command::new("wasm-opt").arg("--version").output().is_ok();
    println!("memory64 benchmark: wasmtime 48, median of {samples} runs, times in ms");
    println!(
        "| kernel | memory64 native | lowered (memory64 off) | lowered / native | binaryen lowered (inexact) | binaryen / native | memory32 native | raised (memory64 on) | raised / native |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut lowered_ratios = Vec::new();
    let mut raised_ratios = Vec::new();
    for (name, template, reps) in KERNELS {
        let m64 = instantiate(template, "i64").with_context(|| format!("{name} (i64)"))?;
        let m32 = instantiate(template, "i32").with_context(|| format!("{name} (i32)"))?;
        for (bits, module) in [("i64", &m64), ("i32", &m32)] {
            wasm_mem::input::validate(module).with_context(|| format!("{name} ({bits})"))?;
        }
        let (lowered, _) = lower_memory64(&m64)?;
        let (raised, _) = raise_memory64(&m32, &RaiseOptions::default())?;
        let (t64, sum64) = time(&on, &m64, *reps, samples)?;
        let (tlow, sumlow) = time(&off, &lowered, *reps, samples)?;
        let (t32, sum32) = time(&off, &m32, *reps, samples)?;
        let (traised, sumraised) = time(&on, &raised, *reps, samples)?;
        if sum64 != sumlow || sum32 != sumraised {
            bail!("{name}: checksums differ: memory64 {sum64} lowered {sumlow}; memory32 {sum32} raised {sumraised}");
        }
        let (tbin, rbin) = match has_binaryen.then(|| binaryen_lowered(&m64, name)).flatten() {
            Some(bin) => {
                let (t, _) = time(&off, &bin, *reps, samples)?;
                (ms(t), ratio(t, t64))
            }
            None => ("n/a".into(), "n/a".into()),
        };
        lowered_ratios.push(tlow.as_secs_f64() / t64.as_secs_f64());
        raised_ratios.push(traised.as_secs_f64() / t32.as_secs_f64());
        println!(
            "| {name} | {} | {} | {} | {tbin} | {rbin} | {} | {} | {} |",
            ms(t64),
            ms(tlow),
            ratio(tlow, t64),
            ms(t32),
            ms(traised),
            ratio(traised, t32)
        );
    }
    let geo = |v: &[f64]| (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp();
    println!(
        "geometric mean: lowered / memory64 native = {:.2}, raised / memory32 native = {:.2}",
        geo(&lowered_ratios),
        geo(&raised_ratios)
    );
    Ok(())
}
