#!/usr/bin/env bash
# Cross-builds ingot-kernels for aarch64 and runs its tests under qemu-user on emulated cores with
# and without the dotprod extension, so both NEON paths (`neon`, `dotprod`) and the scalar path run
# on an x86_64 host. Also lints the aarch64 build with clippy (the host's clippy never compiles the
# `cfg(target_arch = "aarch64")` code), checks that the conformance suite ran the ISAs each core
# has, and that the release test binary contains `sdot`.
#
#   scripts/test-aarch64.sh [extra cargo test args]       (from anywhere in the workspace)
#
# Env: AARCH64_CPUS="max cortex-a72" (qemu -cpu names), SKIP_SETUP=1 (toolchain already there),
#      AARCH64_CLIPPY=0 (skip the lint step), AARCH64_TARGET_DIR (default target/aarch64-debian).
#
# Toolchain (Debian 12 bookworm x86_64; needs root or sudo, apt, ~1.2 GB on disk): rustup has no
# aarch64 std here, so this uses Debian's `rustc-web` plus its arm64 std (`libstd-rust-web-dev:arm64`,
# same version, Multi-Arch: same; plus the matching `rust-web-clippy`), `aarch64-linux-gnu-gcc` as
# linker and `qemu-aarch64` as runner; rustup's cargo drives Debian's rustc through RUSTC=.
# Installing is idempotent (a second run only checks). Pitfalls handled below: apt can keep a stale per-arch index after a half-failed update
# (mismatched rustc/std versions), RUSTDOC must point at Debian's rustdoc as well, and qemu must
# NOT be given `-L /usr/aarch64-linux-gnu` (mixing the cross ld.so with libc6:arm64 hangs in the
# first pthread_create).
set -euo pipefail

cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
PKGS_HOST=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user binutils-aarch64-linux-gnu)

installed_ver() {
    dpkg-query -W -f='${db:Status-Abbrev}|${Version}' "$1" 2>/dev/null | awk -F'|' '$1 ~ /^ii/ {print $2}'
}

toolchain_ready() {
    local a b p
    a=$(installed_ver rustc-web)
    b=$(installed_ver libstd-rust-web-dev:arm64)
    [ -n "$a" ] && [ "$a" = "$b" ] && [ "$a" = "$(installed_ver rust-web-clippy)" ] || return 1
    for p in "${PKGS_HOST[@]}"; do [ -n "$(installed_ver "$p")" ] || return 1; done
    [ -x /usr/bin/rustc ] && [ -d /usr/lib/rustlib/aarch64-unknown-linux-gnu/lib ] &&
        command -v aarch64-linux-gnu-gcc >/dev/null && command -v qemu-aarch64 >/dev/null
}

install_toolchain() {
    dpkg --print-foreign-architectures | grep -qx arm64 || $SUDO dpkg --add-architecture arm64
    local log i v V=""
    log="$(mktemp)"
    # A half-failed update ("File has unexpected size ... Mirror sync in progress?") leaves an old
    # index for one architecture behind: retry until it is clean.
    for i in 1 2 3; do
        if $SUDO apt-get update -q >"$log" 2>&1 && ! grep -qE '^(E|W): ' "$log"; then break; fi
        echo "test-aarch64: apt-get update attempt $i had errors:" >&2
        grep -E '^(E|W|Err)' "$log" | head -5 >&2 || true
        sleep $((i * 5))
    done
    rm -f "$log"
    # The newest version that both rustc-web (amd64) and libstd-rust-web-dev:arm64 offer.
    for v in $(apt-cache madison rustc-web | awk -F'|' '{gsub(/ /,"",$2); print $2}'); do
        if apt-cache madison libstd-rust-web-dev:arm64 | awk -F'|' '{gsub(/ /,"",$2); print $2}' | grep -qxF "$v"; then
            V=$v
            break
        fi
    done
    [ -n "$V" ] || { echo "test-aarch64: no rustc-web version offered for both amd64 and arm64" >&2; exit 1; }
    echo "test-aarch64: installing rustc-web=$V and its arm64 std" >&2
    $SUDO apt-get install -y -q --no-install-recommends --allow-downgrades \
        "rustc-web=$V" "libstd-rust-web-dev=$V" "libstd-rust-web-dev:arm64=$V" "rust-web-clippy=$V" \
        "${PKGS_HOST[@]}"
    toolchain_ready || { echo "test-aarch64: toolchain check failed after install" >&2; exit 1; }
}

if [ "${SKIP_SETUP:-0}" != 1 ] && ! toolchain_ready; then
    install_toolchain
fi
echo "test-aarch64: $(/usr/bin/rustc -V) for aarch64, $(qemu-aarch64 --version | head -1)" >&2

export RUSTC=/usr/bin/rustc # Debian's rustc-web: rustup's rustc has no aarch64 std here
export RUSTDOC=/usr/bin/rustdoc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64 # no -L (see above)
# Host build artifacts come from a different rustc: keep them apart from the native target dir.
export CARGO_TARGET_DIR="${AARCH64_TARGET_DIR:-target/aarch64-debian}"
TARGET=aarch64-unknown-linux-gnu

if [ "${AARCH64_CLIPPY:-1}" != 0 ]; then
    # Debian's cargo-clippy runs rustup's cargo with Debian's clippy-driver wrapped around $RUSTC.
    /usr/bin/cargo-clippy clippy -p ingot-kernels --all-targets --release --target "$TARGET" -- -D warnings
fi

# Build once (release: the conformance suite is slow under emulation at opt-level 1).
cargo test -p ingot-kernels --release --target "$TARGET" --no-run "$@"

# The dotprod path must really be compiled in: the `sdot` inline asm in the test binary.
bin="$(ls -t "$CARGO_TARGET_DIR/$TARGET"/release/deps/simd_conformance-* | grep -v '\.d$' | head -1)"
sdots="$(aarch64-linux-gnu-objdump -d "$bin" | grep -c $'\tsdot\t' || true)"
echo "test-aarch64: $bin has $sdots sdot instructions" >&2
[ "$sdots" -gt 0 ] || { echo "test-aarch64: no sdot in the release test binary" >&2; exit 1; }

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for cpu in ${AARCH64_CPUS:-max cortex-a72}; do
    echo "=== QEMU_CPU=$cpu ===" >&2
    if ! QEMU_CPU=$cpu cargo test -p ingot-kernels --release --target "$TARGET" "$@" \
        -- --nocapture >"$log" 2>&1; then
        cat "$log" >&2
        echo "=== $cpu: FAILED ===" >&2
        exit 1
    fi
    grep -E "^test result|: ran \[" "$log" | sort | uniq -c >&2
    # Which NEON paths this core must run (qemu reports dotprod on max, neoverse-n1, cortex-a76).
    case "$cpu" in
    max | neoverse-n1 | cortex-a76) want='"scalar", "neon", "dotprod"' ;;
    *) want='"scalar", "neon"\]' ;;
    esac
    if ! grep -q "vec_dot_matches_reference_within_rounding: ran \[$want" "$log"; then
        echo "=== $cpu: the conformance suite did not run [$want] ===" >&2
        exit 1
    fi
    echo "=== $cpu: ok ===" >&2
done
