#!/usr/bin/env bash
# Size of the C ABI library as shipped to devices: the static library built with the `release-small`
# profile (opt-level "z", fat LTO, one codegen unit, unwinding kept for the panic boundary) and
# `--no-default-features` (chat templates by the built-in renderer, no Jinja engine; only the
# staticlib crate type, since cargo skips LTO when an rlib is built alongside), stripped of unneeded
# symbols; a C program (examples/c/generate.c) linked against it and stripped; and, for the library's
# share of that program, an empty C program `int main(void){return 0;}` built and stripped the same way.
# Prints the sizes and the code size by crate (from the unstripped program's symbols, `nm --size-sort`).
#
#   capi/scripts/size.sh [--max-share BYTES]     # exit 1 when the library's share exceeds BYTES
#   INGOT_SIZE_PROFILE=capi INGOT_SIZE_FEATURES=jinja capi/scripts/size.sh   # another build to compare
set -euo pipefail
cd "$(dirname "$0")/../.."
max_share=
if [[ ${1:-} == --max-share ]]; then max_share=$2; fi
profile=${INGOT_SIZE_PROFILE:-release-small}
features=${INGOT_SIZE_FEATURES:-}
target=${CARGO_TARGET_DIR:-target}
# Symbols kept in the build (strip below) so that nm can attribute code to crates.
cargo rustc --config "profile.$profile.strip=\"none\"" --profile "$profile" -p ingot-capi --no-default-features --features "$features" \
    --lib --crate-type staticlib
work=$target/c-abi-size
rm -rf "$work" && mkdir -p "$work"
cp "$target/$profile/libingot.a" "$work/libingot.a"
strip --strip-unneeded "$work/libingot.a"
cc -std=c11 -O2 -Icapi/include examples/c/generate.c "$work/libingot.a" -lpthread -ldl -lm -o "$work/generate.stripped"
strip "$work/generate.stripped"
# The same program against the unstripped library, for the symbol sizes by crate.
cc -std=c11 -O2 -Icapi/include examples/c/generate.c "$target/$profile/libingot.a" -lpthread -ldl -lm -o "$work/generate"
printf 'int main(void) { return 0; }\n' > "$work/empty.c"
cc -std=c11 -O2 "$work/empty.c" -lpthread -ldl -lm -o "$work/empty" && strip "$work/empty"
lib=$(stat -c %s "$work/libingot.a")
prog=$(stat -c %s "$work/generate.stripped")
base=$(stat -c %s "$work/empty")
share=$((prog - base))
echo "profile $profile, features '${features}'"
echo "libingot.a (strip --strip-unneeded):            $lib bytes"
echo "generate.c linked statically, stripped:          $prog bytes"
echo "int main(){} built the same way, stripped:       $base bytes"
echo "the library's share (generate - empty program):  $share bytes ($((share / 1024)) KiB; limit ${max_share:-none})"
nm --size-sort -S -C "$work/generate" | python3 -c '
import collections, re, sys
kinds = [("minijinja (chat templates)", "minijinja"), ("ingot-kernels", "ingot_kernels"),
         ("ingot-runtime", "ingot_runtime"), ("std backtraces", "gimli|addr2line|backtrace|rustc_demangle|miniz"),
         ("ingot-capi", r"^ingot|ingot::"), ("std/core/alloc", r"std::|core::|alloc::|hashbrown")]
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
if [[ -n $max_share && $share -gt $max_share ]]; then
    echo "FAIL: the library adds $share bytes to a program, over the limit of $max_share" >&2
    exit 1
fi
