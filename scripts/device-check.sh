#!/usr/bin/env bash
# The CUDA backend's device check (issue #8), for a machine with an NVIDIA GPU, in one run of under
# 8 minutes:
#   1. builds ingot with `--features cuda` (REQUIRE_CUDA_KERNELS=1: nvcc must be found), and in the
#      background llama.cpp's CUDA backend (tools/peer with its `cuda` feature);
#   2. runs the CUDA conformance tests against the CPU reference kernels (kernels/tests/cuda.rs);
#   3. compares logits with the CPU path on SmolLM2 (runtime/tests/cuda_logits.rs);
#   4. benchmarks prefill-128 and decode-128: `ingot bench --device cuda` and `ingot-peer bench`
#      (llama.cpp CUDA, all layers offloaded, flash attention auto) on the same card;
#   5. prints one table.
# Every step has a time limit; a failed step is reported and the next one still runs. Exit status 0
# only if every step passed.
#
#   scripts/device-check.sh                       # from the repository root
# Environment: INGOT_MODEL (default models/SmolLM2-135M-Instruct.Q4_1.gguf, else scripts/fetch-model.sh),
# NVCC / CUDA_HOME (else nvcc on PATH, /usr/local/cuda, or scripts/setup-cuda.sh), PEER_BIN (a prebuilt
# CUDA ingot-peer: skips its build), SKIP_PEER=1, LOG_DIR (default /tmp/ingot-device-check).
set -uo pipefail
cd "$(dirname "$0")/.."
LOG_DIR="${LOG_DIR:-/tmp/ingot-device-check}"
mkdir -p "$LOG_DIR"
T_START=$(date +%s)
declare -a ROWS=()
FAILED=0

# step NAME LIMIT_S CMD...: runs CMD with a time limit, logs to $LOG_DIR/NAME.log, records a row.
step() {
  local name=$1 limit=$2; shift 2
  local t0 rc note
  t0=$(date +%s)
  echo "== $name (limit ${limit}s)"
  timeout --kill-after=10 "$limit" "$@" >"$LOG_DIR/$name.log" 2>&1
  rc=$?
  local dt=$(( $(date +%s) - t0 ))
  if [ $rc -eq 0 ]; then note=ok
  elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then note="TIMEOUT after ${limit}s"; FAILED=1
  else note="FAILED (exit $rc)"; FAILED=1; fi
  if [ "$note" != ok ]; then
    echo "-- $name: $note; last lines of $LOG_DIR/$name.log:"; tail -n 25 "$LOG_DIR/$name.log"
  fi
  ROWS+=("$(printf '| %-22s | %-24s | %5ss |' "$name" "$note" "$dt")")
  return $rc
}

median_of() { # median_of LOG prefill|decode -> the median tok/s of a bench log, or "-"
  local v
  v=$(grep -oE "^$2 .*median [0-9.]+ tok/s" "$1" 2>/dev/null | grep -oE '[0-9.]+ tok/s' | grep -oE '[0-9.]+' | tail -1)
  echo "${v:--}"
}

# --- toolchain and model ----------------------------------------------------------------------
if command -v nvidia-smi >/dev/null; then
  timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$LOG_DIR/gpu.txt"
else
  echo "nvidia-smi not found: is this a GPU machine?" | tee "$LOG_DIR/gpu.txt"; FAILED=1
fi
if [ -z "${NVCC:-}" ]; then
  if command -v nvcc >/dev/null; then NVCC=$(command -v nvcc)
  elif [ -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ]; then NVCC="${CUDA_HOME:-/usr/local/cuda}/bin/nvcc"
  else eval "$(timeout 120 scripts/setup-cuda.sh --env)" || true; fi
fi
export NVCC="${NVCC:-}"
[ -n "$NVCC" ] && export CUDA_HOME="${CUDA_HOME:-$(dirname "$(dirname "$NVCC")")}" && export PATH="$(dirname "$NVCC"):$PATH"
echo "nvcc: ${NVCC:-none} $("${NVCC:-false}" --version 2>/dev/null | tail -1)"
MODEL="${INGOT_MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}"
[ -f "$MODEL" ] || MODEL=$(timeout 120 scripts/fetch-model.sh) || MODEL=""
[ -n "$MODEL" ] && MODEL=$(realpath "$MODEL")   # the tests run in their crate's directory
export INGOT_MODEL="$MODEL"
echo "model: ${MODEL:-none}"
export INGOT_REQUIRE_GPU=1 REQUIRE_CUDA_KERNELS=1

# --- llama.cpp CUDA peer, built in the background -------------------------------------------------
PEER="${PEER_BIN:-}"
PEER_PID=""
if [ -z "$PEER" ] && [ "${SKIP_PEER:-0}" != 1 ]; then
  PEER_TARGET="$LOG_DIR/peer-target"
  echo "== peer-build started in the background (log $LOG_DIR/peer-build.log)"
  ( t0=$(date +%s)
    CARGO_TARGET_DIR="$PEER_TARGET" timeout --kill-after=10 330 \
      cargo build --release --features cuda --manifest-path tools/peer/Cargo.toml >"$LOG_DIR/peer-build.log" 2>&1
    echo "$? $(( $(date +%s) - t0 ))" >"$LOG_DIR/peer-build.rc" ) &
  PEER_PID=$!
  PEER="$PEER_TARGET/release/ingot-peer"
fi

# --- ingot ----------------------------------------------------------------------------------------
step build 240 cargo build --release --features cuda
step build-tests 180 cargo test --release --no-run -p ingot-kernels -p ingot-runtime --features ingot-runtime/cuda
# Same packages and features as build-tests, so nothing is rebuilt.
step conformance 120 cargo test --release -p ingot-kernels -p ingot-runtime --features ingot-runtime/cuda --test cuda -- --nocapture --test-threads 1
step logits 150 cargo test --release -p ingot-kernels -p ingot-runtime --features ingot-runtime/cuda --test cuda_logits --test cuda_no_alloc -- --nocapture
step ingot-bench 120 target/release/ingot bench -m "$MODEL" --device cuda --prompt 128 --gen 128 --runs 5

# --- llama.cpp ------------------------------------------------------------------------------------
if [ -n "$PEER_PID" ]; then
  wait "$PEER_PID"
  read -r prc pdt < "$LOG_DIR/peer-build.rc" || { prc=1; pdt=0; }
  if [ "$prc" = 0 ]; then pnote=ok
  elif [ "$prc" = 124 ] || [ "$prc" = 137 ]; then pnote="TIMEOUT after 330s"; FAILED=1
  else pnote="FAILED (exit $prc)"; FAILED=1; fi
  [ "$pnote" != ok ] && { echo "-- peer-build: $pnote"; tail -n 25 "$LOG_DIR/peer-build.log"; }
  ROWS+=("$(printf '| %-22s | %-24s | %5ss |' peer-build "$pnote" "$pdt")")
fi
if [ "${SKIP_PEER:-0}" != 1 ] && [ -x "$PEER" ]; then
  step peer-bench 120 "$PEER" bench --model "$MODEL" --threads 4 --prompt 128 --gen 128 --runs 5 --flash-attn auto
elif [ "${SKIP_PEER:-0}" != 1 ]; then
  ROWS+=("$(printf '| %-22s | %-24s | %5ss |' peer-bench "not run (no peer binary)" 0)"); FAILED=1
fi

# --- the table ------------------------------------------------------------------------------------
IP=$(median_of "$LOG_DIR/ingot-bench.log" prefill); ID=$(median_of "$LOG_DIR/ingot-bench.log" decode)
LP=$(median_of "$LOG_DIR/peer-bench.log" prefill); LD=$(median_of "$LOG_DIR/peer-bench.log" decode)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2fx", a / b; else print "-" }'; }
echo
echo "ingot CUDA device check: $(head -1 "$LOG_DIR/gpu.txt"), model ${MODEL##*/}, $(( $(date +%s) - T_START )) s in all; logs in $LOG_DIR"
echo "| step                   | result                   |  time |"
echo "|------------------------|--------------------------|-------|"
printf '%s\n' "${ROWS[@]}"
echo
echo "| engine (same card)     | prefill-128 tok/s | decode-128 tok/s |"
echo "|------------------------|-------------------|------------------|"
printf '| %-22s | %17s | %16s |\n' "ingot --device cuda" "$IP" "$ID"
printf '| %-22s | %17s | %16s |\n' "llama.cpp CUDA" "$LP" "$LD"
printf '| %-22s | %17s | %16s |\n' "ingot / llama.cpp" "$(ratio "$IP" "$LP")" "$(ratio "$ID" "$LD")"
echo "(targets: decode >= 1.20x, prefill >= 1.00x; logits: see the logits step's max/mean differences)"
grep -E "max \|cpu - cuda\|" "$LOG_DIR/logits.log" 2>/dev/null | head -3
exit $FAILED
