//! Allocator benchmark driver: runs one guest module per allocator in
//! wasmtime and counts fuel (executed wasm operators, deterministic) per
//! allocator call.
//!
//! Usage: `alloc-bench-driver DIR` where DIR holds, for each allocator NAME,
//! `NAME.wasm` (the speed build, opt-level 3) and `NAME-size.wasm` (opt-level
//! "z" then `wasm-opt -Oz`), plus `empty-size.wasm`; `bench/alloc/run.sh`
//! builds them. Every guest exports `a(size, align) -> ptr`,
//! `f(ptr, size, align)` and `r(ptr, size, align, new_size) -> ptr`.
//!
//! All workloads use the same seeded action sequence for every allocator.
//! The host writes a tag into the first and last byte of every block and
//! checks it on free, so a broken allocator shows up as an error rather than a
//! good number.
//!
//! `ALLOC_BENCH_TRACE=DIR` also writes `DIR/NAME.trace`, one line per call of
//! the fuel/action workload (format at `random_actions`), to see where an
//! allocator's fuel goes (e.g. bytes copied by reallocs that move).
//! `ALLOC_BENCH_SEEDS=N` runs the heap-efficiency workload over N more seeds
//! and prints the mean and range per allocator.

use std::path::{Path, PathBuf};
use wasmtime::error::{Context, Result};
use wasmtime::{bail, ensure};
use wasmtime::{
    Config, Engine, Instance, Memory, Module, Store, StoreLimits, StoreLimitsBuilder, TypedFunc,
};

const ALLOCATORS: [&str; 5] = ["ours", "talc", "rlsf", "dlmalloc", "lol_alloc"];
const PAGE: u64 = 65536;

/// xorshift64*: the same sequence on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Object sizes skewed small, as in typical Rust programs.
    fn size(&mut self) -> u32 {
        (match self.below(100) {
            0..=59 => 1 + self.below(128),
            60..=89 => 129 + self.below(896),
            90..=98 => 1025 + self.below(15 * 1024),
            _ => 16 * 1024 + self.below(112 * 1024),
        }) as u32
    }
    fn align(&mut self) -> u32 {
        1 << self.below(4)
    }
}

struct Block {
    ptr: u32,
    size: u32,
    align: u32,
    tag: u8,
}

struct Guest {
    store: Store<StoreLimits>,
    memory: Memory,
    alloc: TypedFunc<(u32, u32), u32>,
    free: TypedFunc<(u32, u32, u32), ()>,
    realloc: TypedFunc<(u32, u32, u32, u32), u32>,
    initial_pages: u64,
}

const FUEL: u64 = u64::MAX / 4;
/// Seed of the heap-efficiency workload in the table.
const EFFICIENCY_SEED: u64 = 0xeff1_c1e7;

impl Guest {
    fn new(engine: &Engine, module: &Module, max_bytes: Option<usize>) -> Result<Guest> {
        let mut limits = StoreLimitsBuilder::new();
        if let Some(bytes) = max_bytes {
            limits = limits.memory_size(bytes);
        }
        let mut store = Store::new(engine, limits.build());
        store.limiter(|limits| limits);
        store.set_fuel(FUEL)?;
        let instance = Instance::new(&mut store, module, &[])?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .context("guest exports no memory")?;
        let initial_pages = memory.size(&store);
        Ok(Guest {
            alloc: instance.get_typed_func(&mut store, "a")?,
            free: instance.get_typed_func(&mut store, "f")?,
            realloc: instance.get_typed_func(&mut store, "r")?,
            store,
            memory,
            initial_pages,
        })
    }

    fn used(&self) -> u64 {
        FUEL - self.store.get_fuel().unwrap()
    }

    /// Runs `call` and returns its result with the fuel it consumed.
    fn metered<T>(&mut self, call: impl FnOnce(&mut Self) -> Result<T>) -> Result<(T, u64)> {
        self.store.set_fuel(FUEL)?;
        let result = call(self)?;
        Ok((result, self.used()))
    }

    fn alloc(&mut self, size: u32, align: u32) -> Result<(Option<Block>, u64)> {
        let (ptr, fuel) = self.metered(|g| g.alloc.call(&mut g.store, (size, align)))?;
        if ptr == 0 {
            return Ok((None, fuel));
        }
        ensure!(
            ptr % align == 0,
            "misaligned block {ptr:#x} for align {align}"
        );
        let block = Block {
            ptr,
            size,
            align,
            tag: (ptr >> 3) as u8 ^ size as u8,
        };
        self.mark(&block)?;
        Ok((Some(block), fuel))
    }

    fn mark(&mut self, block: &Block) -> Result<()> {
        if block.size > 0 {
            let data = self.memory.data_mut(&mut self.store);
            let end = block.ptr as usize + block.size as usize;
            ensure!(end <= data.len(), "block past the end of memory");
            data[block.ptr as usize] = block.tag;
            data[end - 1] = block.tag;
        }
        Ok(())
    }

    fn check(&self, block: &Block) -> Result<()> {
        if block.size > 0 {
            let data = self.memory.data(&self.store);
            let end = block.ptr as usize + block.size as usize;
            ensure!(
                data[block.ptr as usize] == block.tag && data[end - 1] == block.tag,
                "block {:#x}+{} was overwritten",
                block.ptr,
                block.size
            );
        }
        Ok(())
    }

    fn free(&mut self, block: Block) -> Result<u64> {
        self.check(&block)?;
        let ((), fuel) = self.metered(|g| {
            g.free
                .call(&mut g.store, (block.ptr, block.size, block.align))
        })?;
        Ok(fuel)
    }

    /// Reallocates; on failure the old block stays live and is returned.
    fn realloc(&mut self, block: Block, new_size: u32) -> Result<(Block, bool, u64)> {
        self.check(&block)?;
        let (ptr, fuel) = self.metered(|g| {
            g.realloc
                .call(&mut g.store, (block.ptr, block.size, block.align, new_size))
        })?;
        if ptr == 0 {
            return Ok((block, false, fuel));
        }
        let kept = Block {
            ptr,
            size: block.size.min(new_size),
            ..block
        };
        if kept.size > 0 {
            let data = self.memory.data(&self.store);
            ensure!(
                data[ptr as usize] == block.tag,
                "realloc lost the contents of {:#x}",
                block.ptr
            );
        }
        let moved = Block {
            ptr,
            size: new_size,
            align: block.align,
            tag: block.tag.wrapping_add(1),
        };
        self.mark(&moved)?;
        Ok((moved, true, fuel))
    }

    fn pages_grown(&self) -> u64 {
        self.memory.size(&self.store) - self.initial_pages
    }
}

/// Mean fuel per action over random allocate / free / reallocate actions.
struct Actions {
    per_action: f64,
    per_alloc: f64,
    per_free: f64,
    per_realloc: f64,
}

/// With `trace`, writes one line per call of the workload to that file:
/// `a SIZE ALIGN PTR FUEL`, `f SIZE ALIGN PTR FUEL` and
/// `r OLD_SIZE ALIGN OLD_PTR NEW_SIZE NEW_PTR FUEL` (a realloc moved when the
/// pointers differ and then copied `min(OLD_SIZE, NEW_SIZE)` bytes, which
/// `memory.copy` charges one fuel each).
fn random_actions(
    engine: &Engine,
    module: &Module,
    actions: usize,
    trace: Option<&Path>,
) -> Result<Actions> {
    use std::io::Write;
    let mut guest = Guest::new(engine, module, None)?;
    let mut rng = Rng(0xac71_0a11);
    let mut live: Vec<Block> = Vec::new();
    let mut fuel = [0u64; 3];
    let mut count = [0u64; 3];
    let mut target = 1000;
    let mut trace = match trace {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => None,
    };
    for i in 0..actions {
        if i % 10_000 == 0 {
            target = 100 + rng.below(4000) as usize;
        }
        let choice = rng.below(100);
        if live.is_empty() || choice < 40 && live.len() < target {
            let (size, align) = (rng.size(), rng.align());
            let (block, f) = guest.alloc(size, align)?;
            let block = block.context("allocation failed without a memory cap")?;
            if let Some(t) = trace.as_mut() {
                writeln!(t, "a {size} {align} {} {f}", block.ptr)?;
            }
            live.push(block);
            fuel[0] += f;
            count[0] += 1;
        } else if choice < 80 {
            let i = rng.below(live.len() as u64) as usize;
            let block = live.swap_remove(i);
            let (size, align, ptr) = (block.size, block.align, block.ptr);
            let f = guest.free(block)?;
            if let Some(t) = trace.as_mut() {
                writeln!(t, "f {size} {align} {ptr} {f}")?;
            }
            fuel[1] += f;
            count[1] += 1;
        } else {
            let i = rng.below(live.len() as u64) as usize;
            let new_size = match rng.below(3) {
                0 => live[i].size / 2 + 1,
                1 => live[i].size + 1 + rng.below(live[i].size as u64 + 16) as u32,
                _ => rng.size(),
            };
            let block = live.swap_remove(i);
            let (old_size, align, old_ptr) = (block.size, block.align, block.ptr);
            let (block, ok, f) = guest.realloc(block, new_size)?;
            ensure!(ok, "reallocation failed without a memory cap");
            if let Some(t) = trace.as_mut() {
                let new_ptr = block.ptr;
                writeln!(t, "r {old_size} {align} {old_ptr} {new_size} {new_ptr} {f}")?;
            }
            live.push(block);
            fuel[2] += f;
            count[2] += 1;
        }
    }
    if let Some(t) = trace.as_mut() {
        t.flush()?;
    }
    let total: u64 = fuel.iter().sum();
    Ok(Actions {
        per_action: total as f64 / actions as f64,
        per_alloc: fuel[0] as f64 / count[0] as f64,
        per_free: fuel[1] as f64 / count[1] as f64,
        per_realloc: fuel[2] as f64 / count[2] as f64,
    })
}

/// Heap efficiency with memory capped: allocate until an allocation fails,
/// record live bytes / bytes the allocator could have grown into, free a
/// random half, repeat.
fn heap_efficiency(
    engine: &Engine,
    module: &Module,
    cap_pages: u64,
    rounds: usize,
    seed: u64,
) -> Result<f64> {
    let mut guest = Guest::new(engine, module, Some((cap_pages * PAGE) as usize))?;
    let available = ((cap_pages - guest.initial_pages) * PAGE) as f64;
    let mut rng = Rng(seed);
    let mut live: Vec<Block> = Vec::new();
    let mut live_bytes = 0u64;
    let mut sum = 0.0;
    for _ in 0..rounds {
        loop {
            let (size, align) = (rng.size(), rng.align());
            match guest.alloc(size, align)?.0 {
                Some(block) => {
                    live_bytes += block.size as u64;
                    live.push(block);
                }
                None => break,
            }
            // Some churn while filling, so the heap fragments.
            if rng.below(4) == 0 && !live.is_empty() {
                let i = rng.below(live.len() as u64) as usize;
                let block = live.swap_remove(i);
                live_bytes -= block.size as u64;
                guest.free(block)?;
            }
        }
        sum += live_bytes as f64 / available;
        for _ in 0..live.len() / 2 {
            let i = rng.below(live.len() as u64) as usize;
            let block = live.swap_remove(i);
            live_bytes -= block.size as u64;
            guest.free(block)?;
        }
    }
    Ok(sum / rounds as f64)
}

/// Worst and mean fuel per allocation (and worst per free) with `live`
/// objects in a fragmented heap.
fn max_fuel(
    engine: &Engine,
    module: &Module,
    live_target: usize,
    rounds: usize,
) -> Result<[u64; 3]> {
    let mut guest = Guest::new(engine, module, None)?;
    let mut rng = Rng(0x3a7_f0e1 ^ live_target as u64);
    let small = |rng: &mut Rng| 1 + rng.below(512) as u32;
    let mut live: Vec<Block> = Vec::new();
    // Allocate twice the target, then free a random half: a fragmented heap.
    for _ in 0..2 * live_target {
        live.push(
            guest
                .alloc(small(&mut rng), 8)?
                .0
                .context("setup allocation failed")?,
        );
    }
    for _ in 0..live_target {
        let i = rng.below(live.len() as u64) as usize;
        guest.free(live.swap_remove(i))?;
    }
    let (mut max_alloc, mut sum_alloc, mut max_free) = (0, 0, 0);
    for _ in 0..rounds {
        let i = rng.below(live.len() as u64) as usize;
        max_free = max_free.max(guest.free(live.swap_remove(i))?);
        let (block, fuel) = guest.alloc(small(&mut rng), 8)?;
        live.push(block.context("allocation failed")?);
        max_alloc = max_alloc.max(fuel);
        sum_alloc += fuel;
    }
    Ok([max_alloc, sum_alloc / rounds as u64, max_free])
}

/// Pages grown for a buffer grown by one page per step to `steps` pages.
fn growing_buffer(engine: &Engine, module: &Module, steps: u32) -> Result<u64> {
    let mut guest = Guest::new(engine, module, None)?;
    let mut buffer = guest
        .alloc(PAGE as u32, 8)?
        .0
        .context("allocation failed")?;
    for step in 2..=steps {
        let (grown, ok, _) = guest.realloc(buffer, step * PAGE as u32)?;
        ensure!(ok, "realloc to {step} pages failed");
        buffer = grown;
    }
    Ok(guest.pages_grown())
}

/// 4 KiB-aligned allocations of 1..8 KiB with about 200 live: mean and worst
/// fuel per allocation, pages grown and the peak of live bytes.
fn aligned_4k(engine: &Engine, module: &Module, ops: usize) -> Result<(f64, u64, u64, u64)> {
    let mut guest = Guest::new(engine, module, None)?;
    let mut rng = Rng(0x4096_4096);
    let mut live: Vec<Block> = Vec::new();
    let (mut live_bytes, mut peak) = (0u64, 0u64);
    let (mut sum, mut max, mut allocs) = (0u64, 0u64, 0u64);
    for _ in 0..ops {
        if live.len() < 200 && rng.below(2) == 0 || live.is_empty() {
            let size = 1 + rng.below(8192) as u32;
            let (block, fuel) = guest.alloc(size, 4096)?;
            let block = block.context("aligned allocation failed")?;
            live_bytes += size as u64;
            peak = peak.max(live_bytes);
            live.push(block);
            sum += fuel;
            max = max.max(fuel);
            allocs += 1;
        } else {
            let i = rng.below(live.len() as u64) as usize;
            let block = live.swap_remove(i);
            live_bytes -= block.size as u64;
            guest.free(block)?;
        }
    }
    Ok((sum as f64 / allocs as f64, max, guest.pages_grown(), peak))
}

fn file_size(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len())
}

fn main() -> Result<()> {
    let dir: PathBuf = match std::env::args_os().nth(1) {
        Some(dir) => dir.into(),
        None => bail!("usage: alloc-bench-driver DIR (see bench/alloc/run.sh)"),
    };
    let quick = std::env::var_os("ALLOC_BENCH_QUICK").is_some();
    let scale = if quick { 10 } else { 1 };
    let mut config = Config::new();
    config.consume_fuel(true);
    let engine = Engine::new(&config)?;
    let empty = file_size(&dir.join("empty-size.wasm"))?;

    let actions = 200_000 / scale;
    let rounds = 5_000 / scale;
    println!(
        "| allocator | fuel/action | alloc | free | realloc | max fuel/alloc 1k live (mean) | max fuel/alloc 30k live (mean) | max fuel/free 1k / 30k | growing buffer pages (600 ideal) | heap efficiency | 4K-aligned fuel/alloc mean / max | 4K-aligned pages (peak live KiB) | code size (bytes) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let only = std::env::var("ALLOC_BENCH_ONLY").ok();
    let trace_dir = std::env::var_os("ALLOC_BENCH_TRACE").map(PathBuf::from);
    for name in ALLOCATORS {
        if only
            .as_deref()
            .is_some_and(|only| !only.split(',').any(|n| n == name))
        {
            continue;
        }
        let module = Module::from_file(&engine, dir.join(format!("{name}.wasm")))?;
        let code = file_size(&dir.join(format!("{name}-size.wasm")))? - empty;
        let trace = trace_dir
            .as_ref()
            .map(|dir| dir.join(format!("{name}.trace")));
        let a = random_actions(&engine, &module, actions, trace.as_deref())?;
        let small = max_fuel(&engine, &module, 1_000, rounds)?;
        let large = max_fuel(&engine, &module, 30_000, rounds)?;
        let pages = growing_buffer(&engine, &module, 600)?;
        let efficiency = heap_efficiency(&engine, &module, 256, 50 / scale, EFFICIENCY_SEED)?;
        let (mean4k, max4k, pages4k, peak4k) = aligned_4k(&engine, &module, 20_000 / scale)?;
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | {} ({}) | {} ({}) | {} / {} | {pages} | {:.1}% | {mean4k:.1} / {max4k} | {pages4k} ({}) | {code} |",
            a.per_action,
            a.per_alloc,
            a.per_free,
            a.per_realloc,
            small[0],
            small[1],
            large[0],
            large[1],
            small[2],
            large[2],
            efficiency * 100.0,
            peak4k / 1024,
        );
    }
    // `ALLOC_BENCH_SEEDS=N`: the heap-efficiency workload again over N more
    // seeds (the table's seed plus 1..=N), mean and range per allocator.
    let seeds: u64 = match std::env::var("ALLOC_BENCH_SEEDS") {
        Ok(n) => n
            .parse::<u64>()
            .ok()
            .context("ALLOC_BENCH_SEEDS is not a number")?,
        Err(_) => 0,
    };
    if seeds > 0 {
        println!();
        println!("| allocator | heap efficiency over {seeds} seeds: mean | min | max |");
        println!("|---|---|---|---|");
        for name in ALLOCATORS {
            if only
                .as_deref()
                .is_some_and(|only| !only.split(',').any(|n| n == name))
            {
                continue;
            }
            let module = Module::from_file(&engine, dir.join(format!("{name}.wasm")))?;
            let mut all: Vec<f64> = Vec::new();
            for seed in 1..=seeds {
                all.push(heap_efficiency(
                    &engine,
                    &module,
                    256,
                    50 / scale,
                    EFFICIENCY_SEED + seed,
                )?);
            }
            let mean = all.iter().sum::<f64>() / all.len() as f64;
            let (min, max) = all
                .iter()
                .fold((f64::MAX, f64::MIN), |(lo, hi), &e| (lo.min(e), hi.max(e)));
            println!(
                "| {name} | {:.1}% | {:.1}% | {:.1}% |",
                mean * 100.0,
                min * 100.0,
                max * 100.0
            );
        }
    }
    Ok(())
}
