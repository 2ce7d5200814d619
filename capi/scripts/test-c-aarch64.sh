#!/usr/bin/env bash
# The C ABI on aarch64: cross-builds the static library with Debian's rustc-web and its arm64 std,
# links examples/c/generate.c with aarch64-linux-gnu-gcc and runs it under qemu-aarch64 on two
# emulated cores (the NEON kernels: `max` has dotprod, `cortex-a72` does not). Checks that
#   - on cortex-a72 the text equals what the x86_64 `ingot generate` prints (greedy, 16 tokens),
#   - on each core a session in a caller arena with 2 threads, loaded from memory, prints the same
#     text as the default session (the arena and the threads change nothing on NEON either).
# The toolchain is the one scripts/test-aarch64.sh installs (it runs first in .ci/run); without it
# this script stops with that hint.
#
#   capi/scripts/test-c-aarch64.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in /usr/bin/rustc aarch64-linux-gnu-gcc qemu-aarch64; do
    command -v "$tool" >/dev/null || {
        echo "test-c-aarch64: $tool missing: run scripts/test-aarch64.sh first (it installs the toolchain)" >&2
        exit 1
    }
done
[ -d /usr/lib/rustlib/aarch64-unknown-linux-gnu/lib ] || {
    echo "test-c-aarch64: no aarch64 std: run scripts/test-aarch64.sh first" >&2
    exit 1
}
M=$(scripts/fetch-model.sh)
host_target=${CARGO_TARGET_DIR:-target}
cargo build --release --bin ingot
ingot=$host_target/release/ingot

TARGET=aarch64-unknown-linux-gnu
lib=$(
    export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    export CARGO_TARGET_DIR="${AARCH64_TARGET_DIR:-target/aarch64-debian}"
    cargo build --release --target "$TARGET" -p ingot-capi >&2
    echo "$CARGO_TARGET_DIR/$TARGET/release/libingot.a"
)
work=$host_target/c-abi-aarch64
rm -rf "$work" && mkdir -p "$work"
aarch64-linux-gnu-gcc -std=c11 -O2 -Wall -Wextra -Werror -Icapi/include examples/c/generate.c "$lib" \
    -lpthread -ldl -lm -o "$work/generate"
# No `-L /usr/aarch64-linux-gnu` for qemu: see scripts/test-aarch64.sh (mixed ld.so hangs threads).

p="The capital of France is"
"$ingot" generate -m "$M" -p "$p" -n 16 --temp 0 2>/dev/null >"$work/x86.txt"
for cpu in cortex-a72 max; do
    QEMU_CPU=$cpu qemu-aarch64 "$work/generate" -m "$M" -p "$p" -n 16 --temp 0 >"$work/$cpu.txt"
    QEMU_CPU=$cpu qemu-aarch64 "$work/generate" -m "$M" -p "$p" -n 16 --temp 0 --arena --threads 2 \
        --from-memory --ctx 256 >"$work/$cpu-arena.txt"
    cmp -s "$work/$cpu.txt" "$work/$cpu-arena.txt" || {
        echo "test-c-aarch64: $cpu: arena/threads/memory output differs" >&2
        diff "$work/$cpu.txt" "$work/$cpu-arena.txt" >&2 || true
        exit 1
    }
    echo "aarch64 $cpu: $(head -c 60 "$work/$cpu.txt" | tr '\n' ' ')..."
done
cmp -s "$work/cortex-a72.txt" "$work/x86.txt" || {
    echo "test-c-aarch64: cortex-a72 (NEON) text differs from x86_64 ingot generate" >&2
    diff "$work/cortex-a72.txt" "$work/x86.txt" >&2 || true
    exit 1
}
echo "test-c-aarch64: ok (cortex-a72 identical to x86_64; arena, 2 threads and memory loading identical on both cores)"
