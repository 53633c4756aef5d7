#!/bin/sh
# Builds one benchmark guest per allocator for wasm32-unknown-unknown and runs
# the wasmtime driver, which prints the figures as a Markdown table.
#
#   bench/alloc/run.sh            # full run
#   ALLOC_BENCH_QUICK=1 bench/alloc/run.sh   # a tenth of the work, for a smoke test
#
# Needs: rustup target add wasm32-unknown-unknown; wasm-opt (Debian binaryen).
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
out=$target/alloc-bench
mkdir -p "$out"
command -v wasm-opt >/dev/null || { echo "wasm-opt not found (apt-get install binaryen)" >&2; exit 2; }

guest_target=$target/alloc-bench-guest
for name in empty ours talc rlsf dlmalloc lol_alloc; do
    for profile in release size; do
        CARGO_TARGET_DIR=$guest_target cargo build --quiet --locked \
            --manifest-path "$root/bench/alloc/guest/Cargo.toml" \
            --target wasm32-unknown-unknown --profile "$profile" --features "$name"
        built=$guest_target/wasm32-unknown-unknown/$profile/alloc_bench_guest.wasm
        if [ "$profile" = release ]; then
            cp "$built" "$out/$name.wasm"
        else
            # Code size: opt-level "z", then wasm-opt -Oz.
            wasm-opt -Oz "$built" -o "$out/$name-size.wasm"
        fi
    done
done

cd "$root"
cargo run --quiet --release -p alloc-bench-driver -- "$out"
