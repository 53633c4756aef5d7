#![no_main]
use libfuzzer_sys::fuzz_target;
use wasm_mem_fuzz::props::Command;

fuzz_target!(|data: &[u8]| wasm_mem_fuzz::fuzz_smith(Command::Check, data));
