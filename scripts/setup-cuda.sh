#!/usr/bin/env bash
# Installs a GPU-less CUDA compiler (nvcc 13.0 from PyPI wheels) into a venv: no driver, no apt, no NVIDIA repo.
#   scripts/setup-cuda.sh [VENV_DIR]              install (default $INGOT_CUDA_VENV or ~/.cache/ingot/cuda-pip)
#   eval "$(scripts/setup-cuda.sh --env)"          install if needed, then export NVCC and CUDA_HOME
# nvcc 13.0 emits PTX ISA 9.0, which drivers >= 580 load; kernels/build.rs also embeds sm_80 and sm_90 SASS.
# Every package is pinned: nvidia-cuda-nvcc==13.0.88 alone would pull nvvm 13.5 (PTX 9.5, newer drivers only).
# nvidia-cuda-cccl brings the headers cuda_fp16.h needs. Idempotent; about 100 MB download, 300 MB on disk.
set -euo pipefail
ENV_ONLY=0; [ "${1:-}" = "--env" ] && { ENV_ONLY=1; shift; }
VENV="${1:-${INGOT_CUDA_VENV:-$HOME/.cache/ingot/cuda-pip}}"
PKGS=("nvidia-cuda-nvcc==13.0.88" "nvidia-nvvm==13.0.88" "nvidia-cuda-crt==13.0.88"
      "nvidia-cuda-runtime==13.0.96" "nvidia-cuda-cccl==13.0.85")
PY="${PYTHON:-python3}"
stamp="$VENV/.ingot-cuda-pkgs"
# A venv when python3 can make one; otherwise (Debian without python3-venv) a plain `pip --target`
# directory: the wheels only need unpacking, nothing is imported.
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "${PKGS[*]}" ]; then
  { rm -rf "$VENV"; mkdir -p "$(dirname "$VENV")"
    if "$PY" -m venv "$VENV" 2>/dev/null; then
      "$VENV/bin/pip" install -q --disable-pip-version-check "${PKGS[@]}"
    else
      rm -rf "$VENV"
      "$PY" -m pip install -q --disable-pip-version-check --target "$VENV/site" "${PKGS[@]}" ||
        "$PY" -m pip install -q --disable-pip-version-check --break-system-packages --target "$VENV/site" "${PKGS[@]}"
    fi
    echo "${PKGS[*]}" > "$stamp"; } 1>&2
fi
if [ -x "$VENV/bin/python" ]; then
  SP="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
else
  SP="$VENV/site"
fi
H="$SP/nvidia/cu13"
"$H/bin/nvcc" --version >/dev/null || { echo "setup-cuda: install looks broken in $VENV (rm -rf it)" >&2; exit 1; }
out=("export CUDA_HOME='$H'" "export NVCC='$H/bin/nvcc'")
if [ "$ENV_ONLY" = 1 ]; then printf '%s\n' "${out[@]}"; else
  echo "setup-cuda: nvcc 13.0 ready in $VENV; to use:"; printf '  %s\n' "${out[@]}"; fi
