//! Shared code of the wasm-mem fuzz targets: the robustness properties
//! (`props.rs`, `smith_props.rs`), which the stable test
//! `crates/wasm-mem-testkit/tests/robustness.rs` includes too.

pub mod props;
pub mod smith_props;

use props::{run_command, Command, Outcome};

/// The bytes target of `command`: the first byte picks the options, the
/// rest is the input file.
pub fn fuzz_bytes(command: Command, data: &[u8]) {
    let (variant, input) = match data.split_first() {
        Some((v, rest)) => (*v, rest),
        None => (0, data),
    };
    if let Err(violation) = run_command(command, input, variant) {
        panic!("{violation}");
    }
}

/// The wasm-smith target of `command`: the data drives the generator
/// configuration, the options and the module; the valid module must be
/// refused or rewritten into a validating module.
pub fn fuzz_smith(command: Command, data: &[u8]) {
    let mut u = arbitrary::Unstructured::new(data);
    let (Ok(kind), Ok(variant)) = (u.arbitrary::<u8>(), u.arbitrary::<u8>()) else {
        return;
    };
    let config = smith_props::smith_config(kind);
    let Ok(module) = wasm_smith::Module::new(config, &mut u) else {
        return;
    };
    let bytes = module.to_bytes();
    match run_command(command, &bytes, variant) {
        Ok(Outcome::Rejected(why)) => panic!("a wasm-smith module was rejected: {why}"),
        Ok(_) => {}
        Err(violation) => panic!("{violation}"),
    }
}
