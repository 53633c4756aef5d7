//! Benchmark/demo: `pack` a real component next to its unbundled core
//! module, and check that nothing but the data sections changed.
//!
//! Usage: `cargo run -p wasm-mem --example component_pack -- COMPONENT.wasm`
//! (bench/component/run.sh builds a componentize-js component and runs
//! this). Prints, per core module and for the whole component, the sizes
//! before and after, the time taken, and the result of the image oracle
//! (`wasm_mem::image`) on every core module.

use std::time::Instant;
use wasm_mem::component::{self, Component};
use wasm_mem::image::{compare, initial_images, ImageOptions};
use wasm_mem::pack::{pack, PackOptions};
use wasm_mem::ModuleInfo;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: component_pack COMPONENT.wasm")?;
    let input = std::fs::read(&path)?;
    component::validate(&input)?;
    let parsed = Component::parse(&input)?;
    println!("{path}: component, {} bytes", input.len());
    for m in parsed.modules() {
        let info = ModuleInfo::read(parsed.module_bytes(m))?;
        let data: u64 = info.data_segments.iter().map(|s| s.len).sum();
        println!(
            "  core module {} at byte offset {} (depth {}): {} bytes, {} memories, {} data segments, {} data bytes",
            m.index,
            m.offset,
            m.depth,
            m.size,
            info.memories.len(),
            info.data_segments.len(),
            data
        );
    }
    let options = PackOptions::default();

    // The whole component, every core module.
    let start = Instant::now();
    let (packed, reports) = component::rewrite_modules(&input, None, "pack", |_, module| {
        let info = ModuleInfo::read(module)?;
        pack(module, &info, &options)
    })?;
    let component_time = start.elapsed();
    component::validate(&packed)?;
    let after = Component::parse(&packed)?;
    for (before, now) in parsed.modules().iter().zip(after.modules()) {
        let a = initial_images(parsed.module_bytes(before), &ImageOptions::default())?;
        let b = initial_images(after.module_bytes(now), &ImageOptions::default())?;
        compare(&a, &b).map_err(|e| format!("core module {}: {e}", before.index))?;
    }
    println!(
        "pack component: {} -> {} bytes ({:.1}% smaller) in {:.2} s; output validates; all {} core module images identical",
        input.len(),
        packed.len(),
        100.0 * (input.len() - packed.len()) as f64 / input.len() as f64,
        component_time.as_secs_f64(),
        parsed.modules().len()
    );
    for r in &reports {
        if r.size_before != r.size_after {
            println!(
                "  core module {}: {} -> {} bytes ({} -> {} data segments)",
                r.index,
                r.size_before,
                r.size_after,
                r.report.segments_before,
                r.report.segments_after
            );
        }
    }

    // The largest core module on its own, unbundled with the walker.
    let largest = parsed
        .modules()
        .iter()
        .max_by_key(|m| m.size)
        .ok_or("the component has no core module")?;
    let module = parsed.module_bytes(largest);
    let start = Instant::now();
    let info = ModuleInfo::read(module)?;
    let (alone, _) = pack(module, &info, &options)?;
    let module_time = start.elapsed();
    wasm_mem::input::validate(&alone)?;
    let a = initial_images(module, &ImageOptions::default())?;
    let b = initial_images(&alone, &ImageOptions::default())?;
    compare(&a, &b).map_err(|e| format!("unbundled module: {e}"))?;
    println!(
        "pack unbundled core module {}: {} -> {} bytes ({:.1}% smaller) in {:.2} s; images identical",
        largest.index,
        module.len(),
        alone.len(),
        100.0 * (module.len() - alone.len()) as f64 / module.len() as f64,
        module_time.as_secs_f64()
    );
    let inside = after.module_bytes(&after.modules()[largest.index as usize]);
    println!(
        "the packed module inside the component {} the unbundled packed module",
        if inside == alone.as_slice() {
            "is byte-identical to"
        } else {
            "DIFFERS from"
        }
    );
    Ok(())
}
