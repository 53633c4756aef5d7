//! Size-optimized builds (opt-level "s" or "z") get `cfg(wasm_mem_alloc_small)`:
//! the inlined fast paths (pure shortcuts of the general path, tested to take
//! the same blocks) are left out, so the code is small; the algorithm and the
//! data structures are the same in every build.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(wasm_mem_alloc_small)");
    println!("cargo::rerun-if-changed=build.rs");
    if matches!(std::env::var("OPT_LEVEL").as_deref(), Ok("s" | "z")) {
        println!("cargo::rustc-cfg=wasm_mem_alloc_small");
    }
}
