#!/usr/bin/env bash
# One short GPU session (at most ~8 minutes on one H100): environment, per-model training
# throughput and FLOP/s, FCSN at 8192-d in bf16, and a timed sample of the standard preset.
# Usage: benchmarks/gpu/run.sh OUT [--smoke]      (--smoke: tiny sizes, runs on a CPU in seconds)
# Every part writes its own JSON under OUT as soon as it ends; a part that runs past its
# time limit is stopped and noted in OUT/parts.txt, and the next part still runs.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?usage: benchmarks/gpu/run.sh OUT [--smoke]}
SMOKE=${2:-}
mkdir -p "$OUT"
: > "$OUT/parts.txt"
run_part() {  # name, time limit in seconds
  local start=$SECONDS
  timeout "$2" python3 benchmarks/gpu/measure.py "$1" "$OUT" $SMOKE > "$OUT/$1.log" 2>&1
  echo "$1 exit=$? seconds=$((SECONDS - start))" >> "$OUT/parts.txt"
}
run_part env 60
run_part fcsn8192 90
run_part models 120
run_part prnet 60
run_part bench 170
cat "$OUT/parts.txt"
