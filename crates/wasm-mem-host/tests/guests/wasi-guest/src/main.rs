//! A WASI command for wasm-mem-host's tests.
//!
//! `wasi-guest [MIB [EXIT]]`: prints its arguments, allocates MIB mebibytes
//! (default 1) one mebibyte at a time with `try_reserve`, touching every
//! block, then prints how much it got and exits with EXIT (default 0). When
//! an allocation fails (the host refused to grow memory), it prints
//! `allocation failed after N MiB` and exits with 42.

use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    println!("hello from wasi-guest: {} argument(s): {:?}", args.len(), &args[1..]);
    let mib: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let exit: i32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0);
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    for n in 0..mib {
        let mut block: Vec<u8> = Vec::new();
        if block.try_reserve_exact(1 << 20).is_err() {
            println!("allocation failed after {n} MiB");
            std::io::stdout().flush().unwrap();
            std::process::exit(42);
        }
        block.resize(1 << 20, (n % 251) as u8 + 1);
        blocks.push(block);
    }
    let sum: u64 = blocks.iter().map(|b| u64::from(b[b.len() - 1])).sum();
    println!("allocated {mib} MiB (checksum {sum})");
    std::io::stdout().flush().unwrap();
    std::process::exit(exit);
}
