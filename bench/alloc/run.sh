#!/bin/sh
# Builds one benchmark guest per allocator for wasm32-unknown-unknown and runs
# the wasmtime driver, which prints the figures as a Markdown table.
#
#   bench/alloc/run.sh            # full run
#   ALLOC_BENCH_QUICK=1 bench/alloc/run.sh   # a tenth of the work, for a smoke test
#   ALLOC_BENCH_ONLY=ours bench/alloc/run.sh  # only the named allocators (comma-separated)
#   ALLOC_BENCH_TRACE=DIR bench/alloc/run.sh  # also write DIR/NAME.trace: one line per
#                                             # call of the fuel/action workload (see the driver)
#   ALLOC_BENCH_SEEDS=40 bench/alloc/run.sh   # also heap efficiency over 40 more seeds
#
# The guests build under $CARGO_TARGET_DIR/alloc-bench-guest. The host driver
# (wasmtime) builds in $ALLOC_BENCH_DRIVER_TARGET_DIR (default: $CARGO_TARGET_DIR)
# with profile $ALLOC_BENCH_DRIVER_PROFILE (default: release), so an already
# built wasmtime can be reused, e.g. the workspace's dev build:
#   ALLOC_BENCH_DRIVER_TARGET_DIR=$HOME/.cache/wasm-mem/ci-target ALLOC_BENCH_DRIVER_PROFILE=dev bench/alloc/run.sh
# Fuel counts executed wasm operators, so the figures do not depend on the
# driver's profile (only the run time does).
#
# Needs: rustup target add wasm32-unknown-unknown; wasm-opt (Debian binaryen).
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
out=$target/alloc-bench
mkdir -p "$out"
command -v wasm-opt >/dev/null || { echo "wasm-opt not found (apt-get install binaryen)" >&2; exit 2; }

guest_target=$target/alloc-bench-guest
names="ours talc rlsf dlmalloc lol_alloc"
[ -n "${ALLOC_BENCH_ONLY:-}" ] && names=$(echo "$ALLOC_BENCH_ONLY" | tr , ' ')
for name in empty $names; do
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
CARGO_TARGET_DIR=${ALLOC_BENCH_DRIVER_TARGET_DIR:-$target} cargo run --quiet \
    --profile "${ALLOC_BENCH_DRIVER_PROFILE:-release}" -p alloc-bench-driver -- "$out"
