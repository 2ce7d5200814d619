#!/usr/bin/env python3
"""Markdown tables of the last `cargo bench -p ingot-kernels --bench kernels` run, from criterion's
own records (target/criterion/*/new/{benchmark,estimates}.json), for BENCHMARKS.md.

    python3 kernels/benches/kernels_table.py [TYPE ...]      # default: Q4_0 Q4_1 Q8_0

Rates are computed from criterion's *median* time per iteration (robust to the stalls of a shared
machine; criterion's console line shows the mean or the regression slope instead): matvec and stream
(and calls) in GB/s (10^9 bytes of weights), matmul16, attention and sgemm in GFLOP/s.
"""

import json
import pathlib
import sys

root = pathlib.Path(__file__).resolve().parents[2] / "target" / "criterion"
rate = {}  # full id -> throughput units per second / 1e9
for bench in root.glob("**/new/benchmark.json"):
    meta = json.loads(bench.read_text())
    est = json.loads((bench.parent / "estimates.json").read_text())
    units = next(iter(meta["throughput"].values()))
    rate[meta["full_id"]] = units / est["median"]["point_estimate"]  # per ns = G per s

if not rate:
    sys.exit(f"no criterion results under {root}: run `cargo bench -p ingot-kernels --bench kernels` first")

types = sys.argv[1:] or ["Q4_0", "Q4_1", "Q8_0"]
shapes = ["1536x576", "576x1536"]


def cell(ids):
    vals = [f"{rate[i]:.1f}" if i in rate else "-" for i in ids]
    return " / ".join(vals)


print("| type | path | matvec GB/s, 1536x576 / 576x1536 | matmul16 GFLOP/s, 1536x576 / 576x1536 |")
print("|---|---|---|---|")
for ty in types:
    paths = sorted(
        {i.split("/")[2] for i in rate if i.startswith(f"matvec/{ty}/")},
        key=lambda p: (p.replace("+packed", "") != "scalar", p),
    )
    for p in paths:
        mv = cell([f"matvec/{ty}/{p}/{s}" for s in shapes])
        mm = cell([f"matmul16/{ty}/{p}/{s}" for s in shapes])
        print(f"| {ty} | {p} | {mv} | {mm} |")

print()
print("| calls (packed, one token) | GB/s in 32-row calls / in 256-row calls, 1536x576 | 576x1536 |")
print("|---|---|---|")
for ty in types:
    for p in sorted({i.split("/")[2] for i in rate if i.startswith(f"calls/{ty}/")}):
        cells = [cell([f"calls/{ty}/{p}/{s}/{r}" for r in (32, 256)]) for s in shapes]
        print(f"| {ty} {p} | {cells[0]} | {cells[1]} |")

print()
print("| stream (134 MB, one token) | GB/s | read probe just before, GB/s | fraction |")
print("|---|---|---|---|")
for i in sorted(i for i in rate if i.startswith("stream/") and not i.endswith("/read")):
    read = rate.get(i + "/read")
    frac = f"{100 * rate[i] / read:.0f}%" if read else "-"
    print(f"| `{i}` | {rate[i]:.1f} | {read or 0:.1f} | {frac} |")

print()
print("| benchmark | GFLOP/s |")
print("|---|---|")
for i in sorted(i for i in rate if i.startswith(("attention/", "sgemm/"))):
    print(f"| `{i}` | {rate[i]:.1f} |")
