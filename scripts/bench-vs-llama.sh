#!/usr/bin/env bash
# ingot vs llama.cpp, side by side on the same machine and model: prefill of a 128-token prompt in one
# batch, then 128 greedy decode steps, median of 5 runs each, alternating the engines (A B A B) at
# high priority as ../shared/docs/peer.md recommends for a shared 2-core machine.
# Usage: scripts/bench-vs-llama.sh [MODEL] [THREADS...]    (defaults: the fetched SmolLM2, threads 1 2)
# N_PROMPT / N_GEN / RUNS change the workload (default 128 / 128 / 5), e.g.
#   N_PROMPT=2048 N_GEN=16 RUNS=3 scripts/bench-vs-llama.sh models/SmolLM2-135M-Instruct.Q4_1.gguf 1
# Needs the peer build (tools/peer, ~10 min the first time; apt packages cmake and libclang-dev).
# PEER=PATH runs that ingot-peer binary instead of building tools/peer (e.g. a peer built for AVX2 only, to
# compare with INGOT_ISA=avx2; the command is in tools/peer/README.md).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model=${1:-$("$root/scripts/fetch-model.sh")}
shift || true
threads=("${@:-1 2}")
[ $# -gt 0 ] || threads=(1 2)
(cd "$root" && cargo build --release -q)
peer=${PEER:-}
if [ -z "$peer" ]; then
  (cd "$root/tools/peer" && cargo build --release -q)
  peer=$root/tools/peer/target/release/ingot-peer
fi
np=${N_PROMPT:-128} ng=${N_GEN:-128} runs=${RUNS:-5}
prio() { setsid -w bash -c 'echo -20 > /proc/self/autogroup 2>/dev/null; exec nice -n -20 "$@"' _ "$@"; }
for t in "${threads[@]}"; do
  for round in 1 2; do
    echo "== threads $t, round $round: ingot"
    prio "$root/target/release/ingot" bench -m "$model" --threads "$t" --n-prompt "$np" --n-gen "$ng" --runs "$runs" 2>/dev/null
    echo "== threads $t, round $round: llama.cpp"
    prio "$peer" bench --model "$model" --threads "$t" --prompt "$np" --gen "$ng" --runs "$runs" 2>/dev/null
  done
done
