#!/usr/bin/env bash
# One short GPU session (at most ~10.5 minutes on one H100/H200; PARTS picks a subset): environment, FCSN at 8192-d in
# bf16, the zoo against the reference code, per-model training throughput and FLOP/s, PR-Net
# at 64/512/4,096-d, torch.compile against eager, and a timed sample of the standard preset.
# Usage: benchmarks/gpu/run.sh OUT [--smoke]      (--smoke: tiny sizes, runs on a CPU in seconds)
# Every part writes its own JSON under OUT as soon as it ends; a part that runs past its
# time limit is stopped and noted in OUT/parts.txt, and the next part still runs.
set -uo pipefail
cd "$(dirname "$0")/../.."
# the checkout itself, importable without installing it (the GPU machine has the dependencies only)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT=${1:?usage: benchmarks/gpu/run.sh OUT [--smoke]}
SMOKE=${2:-}
mkdir -p "$OUT"
: > "$OUT/parts.txt"
run_part() {  # name, time limit in seconds
  local start=$SECONDS
  timeout "$2" python3 benchmarks/gpu/measure.py "$1" "$OUT" $SMOKE > "$OUT/$1.log" 2>&1
  echo "$1 exit=$? seconds=$((SECONDS - start))" >> "$OUT/parts.txt"
}
declare -A LIMIT=([env]=45 [fcsn8192]=90 [fcsn8192_compile]=150 [reference]=75 [models]=90 [prnet]=50 [profile]=90
                  [compile]=90 [bench]=130 [fcsn8192_contiguous]=60 [fcsn8192_eager]=60
                  [fcsn8192_compile_contiguous]=150 [profile_contiguous]=60 [trainer_graphs]=180
                  [profile_compile]=120 [fcsn8192_compile_prenormed]=150)
# PARTS="env models" benchmarks/gpu/run.sh OUT runs only those parts (default: all, in this order;
# also named only: fcsn8192_contiguous, fcsn8192_compile_contiguous and profile_contiguous (the
# conv-kernel layout before, side by side), trainer_graphs, profile_compile (the compiled FCSN
# 8192-d step per kernel), fcsn8192_compile_prenormed (that step without the input's L2 norm:
# what norms from the data loader could save), and fcsn8192_eager, for older code)
for part in ${PARTS:-env fcsn8192 fcsn8192_compile reference models prnet profile compile bench}; do
  run_part "$part" "${LIMIT[$part]:?unknown part $part}"
done
cat "$OUT/parts.txt"
