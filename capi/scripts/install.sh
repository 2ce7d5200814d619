#!/usr/bin/env bash
# Installs ingot's C ABI under PREFIX: include/ingot.h, lib/libingot.a, lib/libingot.so (unless
# STATIC_ONLY=1) and lib/pkgconfig/ingot.pc. Builds the library first (release).
#
#   capi/scripts/install.sh PREFIX
#   PKG_CONFIG_PATH=PREFIX/lib/pkgconfig cc app.c $(pkg-config --static --cflags --libs ingot)
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 PREFIX" >&2; exit 2; }
cd "$(dirname "$0")/../.."
mkdir -p "$1"
prefix=$(cd "$1" && pwd)
cargo build --release -p ingot-capi
target=${CARGO_TARGET_DIR:-target}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
mkdir -p "$prefix/include" "$prefix/lib/pkgconfig"
cp capi/include/ingot.h "$prefix/include/"
cp "$target/release/libingot.a" "$prefix/lib/"
[ "${STATIC_ONLY:-0}" = 1 ] || cp "$target/release/libingot.so" "$prefix/lib/"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" capi/ingot.pc.in >"$prefix/lib/pkgconfig/ingot.pc"
echo "installed ingot $version under $prefix"
