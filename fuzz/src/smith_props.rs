//! The wasm-smith side of the robustness properties (see `props.rs`): the
//! generator configurations the fuzz targets and the stable test share.
//!
//! Every configuration turns on what the memory passes work on (several
//! memories, memory64, bulk memory, data segments, custom page sizes) in
//! different mixes, so each pass sees modules it rewrites as well as ones it
//! refuses. A generated module is valid, so [`props::run_command`] on it
//! must end in a refusal or a validating output.

#![allow(dead_code)]

/// The number of configurations [`smith_config`] knows.
pub const CONFIGS: u8 = 4;

/// Configuration `kind % CONFIGS`:
/// 0: up to 4 memories, memory64, bulk memory, many data segments;
/// 1: one 64-bit memory with data and tables (for the memory64 passes);
/// 2: 32-bit memories only, with custom page sizes (for raise and pack);
/// 3: no imports restriction: imported memories and tables too.
pub fn smith_config(kind: u8) -> wasm_smith::Config {
    let mut c = wasm_smith::Config {
        min_types: 1,
        min_funcs: 1,
        max_funcs: 12,
        max_imports: 0,
        export_everything: true,
        gc_enabled: false,
        exceptions_enabled: false,
        threads_enabled: false,
        shared_everything_threads_enabled: false,
        relaxed_simd_enabled: false,
        custom_descriptors_enabled: false,
        bulk_memory_enabled: true,
        reference_types_enabled: true,
        memory64_enabled: true,
        max_memories: 4,
        min_memories: 1,
        min_data_segments: 1,
        max_data_segments: 16,
        max_memory32_bytes: 1 << 20,
        max_memory64_bytes: 1 << 20,
        max_table_elements: 1_000,
        ..wasm_smith::Config::default()
    };
    match kind % CONFIGS {
        0 => {}
        1 => {
            c.max_memories = 1;
            c.max_tables = 2;
        }
        2 => {
            c.memory64_enabled = false;
            c.custom_page_sizes_enabled = true;
            c.max_data_segments = 40;
        }
        _ => {
            c.max_imports = 6;
            c.min_memories = 0;
        }
    }
    c
}
