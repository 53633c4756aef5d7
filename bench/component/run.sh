#!/usr/bin/env bash
# Components benchmark: build a componentize-js (StarlingMonkey) component
# from app.js + app.wit, then pack it with wasm-mem next to packing its
# unbundled core module (crates/wasm-mem/examples/component_pack.rs), with
# the image oracle on every core module and the CLI's own report.
#
# Needs node and, once: npm install --prefix ~/.cache/wasm-mem/npm \
#   @bytecodealliance/componentize-js @bytecodealliance/preview2-shim
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
work="${WORK:-$(mktemp -d)}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wasm-mem/ci-target}"
node "$here/build.mjs" "$work/app.component.wasm"
cd "$root"
cargo run -q -j 2 -p wasm-mem --example component_pack -- "$work/app.component.wasm"
cargo run -q -j 2 -p wasm-mem-cli -- inspect "$work/app.component.wasm" | grep -E "^(\S|  core module)" || true
cargo run -q -j 2 -p wasm-mem-cli -- pack "$work/app.component.wasm" -o "$work/app.packed.wasm"
ls -l "$work/app.component.wasm" "$work/app.packed.wasm"
