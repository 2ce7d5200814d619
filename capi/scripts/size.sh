#!/usr/bin/env bash
# Size of the C ABI library as shipped: static library built with the `capi` profile (release, fat
# LTO, one codegen unit; only the staticlib crate type, since cargo skips LTO when an rlib is built
# alongside), stripped of unneeded symbols, and a stripped C program (examples/c/generate.c) linked
# against it. Prints the sizes and the code size by crate (from the unstripped program's symbols).
#
#   capi/scripts/size.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${CARGO_TARGET_DIR:-target}
cargo rustc --profile capi -p ingot-capi --lib --crate-type staticlib
work=$target/c-abi-size
rm -rf "$work" && mkdir -p "$work"
cp "$target/capi/libingot.a" "$work/libingot.a"
strip --strip-unneeded "$work/libingot.a"
cc -std=c11 -O2 -Icapi/include examples/c/generate.c "$work/libingot.a" -lpthread -ldl -lm -o "$work/generate"
cp "$work/generate" "$work/generate.stripped" && strip "$work/generate.stripped"
echo "libingot.a (capi profile, strip --strip-unneeded): $(stat -c %s "$work/libingot.a") bytes"
echo "generate.c linked statically, stripped:           $(stat -c %s "$work/generate.stripped") bytes"
nm --size-sort -S -C "$work/generate" | python3 -c '
import collections, re, sys
kinds = [("minijinja (chat templates)", "minijinja"), ("ingot-kernels", "ingot_kernels"),
         ("ingot-runtime", "ingot_runtime"), ("std backtraces", "gimli|addr2line|backtrace|rustc_demangle|miniz"),
         ("ingot-capi", r"^ingot|ingot::"), ("std/core/alloc", r"std::|core::|alloc::")]
t = collections.Counter()
for line in sys.stdin:
    p = line.split(None, 3)
    if len(p) < 4:
        continue
    k = next((k for k, pat in kinds if re.search(pat, p[3])), "other")
    t[k] += int(p[1], 16)
for k, v in t.most_common():
    print(f"  {v / 1024:7.0f} KiB  {k}")
'
