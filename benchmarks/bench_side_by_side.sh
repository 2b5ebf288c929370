#!/usr/bin/env bash
# Two trainings at once on this machine: is it worth running independent jobs side by side?
#
# Times a 6-layer and a 3-layer train step (384 wide, batch 32, seq 32, nn.Graph) alone, then both
# processes started together. A OneFlow CPU training step keeps about one core busy, so on a 2-core
# machine two jobs run nearly as fast as one each; run_scripts/demo.sh relies on this.
#
#   bash benchmarks/bench_side_by_side.sh            # STEPS6=8 STEPS3=14 SEQ=32
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON=${PYTHON:-.venv/bin/python}
SEQ=${SEQ:-32}
STEPS6=${STEPS6:-8}
STEPS3=${STEPS3:-14}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

bench() {  # layers steps
    "$PYTHON" benchmarks/bench_train_step.py --layers "$1" --seq "$SEQ" --steps "$2" --modes graph-unfused \
        | grep '^graph'
}

echo "alone:"
echo "  6 layers: $(bench 6 "$STEPS6")"
echo "  3 layers: $(bench 3 "$STEPS3")"
start=$(date +%s.%N)
bench 6 "$STEPS6" > "$TMP/six" &
bench 3 "$STEPS3" > "$TMP/three"
wait
end=$(date +%s.%N)
echo "side by side (both processes started together, $(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.0f", b - a}') s wall):"
echo "  6 layers: $(cat "$TMP/six")"
echo "  3 layers: $(cat "$TMP/three")"
