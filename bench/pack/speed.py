#!/usr/bin/env python3
"""Time `cp`, `wasm-mem pack IN -o OUT` and `wasm-opt --memory-packing` on one
module, interleaved, and print medians and ratios (see BENCHMARKS.md, ## pack).

usage: bench/pack/speed.py [RUNS] [MODULE] [WASM_MEM]
"""
import os, statistics, subprocess, sys, tempfile, time

runs = int(sys.argv[1]) if len(sys.argv) > 1 else 21
module = sys.argv[2] if len(sys.argv) > 2 else os.path.expanduser("~/.cache/wasm-mem/corpus/tiktoken.wasm")
wasm_mem = sys.argv[3] if len(sys.argv) > 3 else "target/release/wasm-mem"
out = tempfile.mkdtemp()

def timed(cmd):
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - start) * 1000

times = {"cp": [], "wasm-mem pack": [], "wasm-opt 108": []}
for i in range(runs):
    times["cp"].append(timed(["cp", module, f"{out}/cp.wasm"]))
    times["wasm-mem pack"].append(timed([wasm_mem, "pack", module, "-o", f"{out}/ours.wasm"]))
    if i % 3 == 0:  # wasm-opt is slow: a third as many runs
        times["wasm-opt 108"].append(timed(["wasm-opt", "--memory-packing", "-g", "--all-features",
                                            module, "-o", f"{out}/wo.wasm"]))
median = {k: statistics.median(v) for k, v in times.items()}
for k, v in times.items():
    print(f"{k:<14} median {median[k]:7.1f} ms  min {min(v):7.1f}  ({len(v)} runs)")
print(f"wasm-opt / ours {median['wasm-opt 108'] / median['wasm-mem pack']:.1f}x   "
      f"ours / cp {median['wasm-mem pack'] / median['cp']:.2f}x")
