#!/usr/bin/env bash
# Runs the ingot-kernels tests under qemu-user CPU models that lack AVX-512 (Haswell: AVX2 + FMA +
# F16C) and AVX altogether (Nehalem), so the AVX2 and scalar fallbacks run on an AVX-512 host.
# TCG has no AVX-512, so the AVX-512 path is only tested natively (`cargo test -p ingot-kernels`).
# TCG has no AVX-VNNI either: under Haswell the AVX-VNNI kernel bodies run with `vpdpbusd` emulated
# (`Kernels::avxvnni_emulated`, tests/avxvnni.rs); the instruction itself only on CPUs that have it.
#
#   kernels/scripts/test-emulated.sh [extra cargo test args]     (from anywhere in the workspace)
#
# Installs qemu-user with apt-get if qemu-x86_64 is missing. Uses its own target dir so the
# emulated builds (same target triple, but run by qemu) do not disturb the native one.
set -euo pipefail

cd "$(dirname "$0")/../.."

if ! command -v qemu-x86_64 >/dev/null 2>&1; then
    echo "qemu-x86_64 not found; installing qemu-user" >&2
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
    $SUDO apt-get install -y qemu-user || { $SUDO apt-get update && $SUDO apt-get install -y qemu-user; }
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/qemu-x86_64}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for cpu in Haswell Nehalem; do
    echo "=== qemu-x86_64 -cpu $cpu ===" >&2
    if ! CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="qemu-x86_64 -cpu $cpu" \
        cargo test -p ingot-kernels --release --target x86_64-unknown-linux-gnu "$@" \
        -- --nocapture >"$log" 2>&1; then
        cat "$log" >&2
        echo "=== $cpu: FAILED ===" >&2
        exit 1
    fi
    # Which ISAs the SIMD conformance suite ran, and the per-binary results.
    grep -E "^test result|: ran \[" "$log" | sort | uniq -c >&2
    echo "=== $cpu: ok ===" >&2
done
