#!/usr/bin/env bash
# GPU readiness check for users with a CUDA machine (no GPU is available to this project's development):
#   1. OneFlow sees the GPU, a CUDA tensor op and a compiled nn.Graph training step run (one line either way)
#   2. the device tests with --device cuda (tests/training/test_device.py, MC_TEST_DEVICE=cuda)
#   3. the train-step benchmark on the GPU: nn.Graph with fused AdamW, unfused, and mixed precision (AMP)
#   4. the demo on the GPU (DEVICE=cuda; skip with DEMO=0)
# and a summary table. About 10 minutes on one GPU. Logs go to $OUT (default output/gpu_check).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT=${OUT:-$ROOT/output/gpu_check}
DEMO=${DEMO:-1}
bash "$ROOT/run_scripts/setup_env.sh" >/dev/null || { echo "[gpu_check] FAILED: set-up (run_scripts/setup_env.sh)"; exit 1; }
PY="$ROOT/.venv/bin/python"
mkdir -p "$OUT"
cd "$ROOT"
declare -a NAMES STATUS

record() {  # name, exit code
    NAMES+=("$1"); if [ "$2" = 0 ]; then STATUS+=("ok"); else STATUS+=("FAILED (log: $OUT)"); fi
}

# 1. The device itself. A OneFlow abort (e.g. an unsupported architecture) ends the child; keep one line.
if "$PY" benchmarks/gpu_probe.py > "$OUT/probe.log" 2>&1; then
    grep '^\[gpu_check\]' "$OUT/probe.log"
else
    line=$(grep '^\[gpu_check\]' "$OUT/probe.log" | tail -n 1)
    [ -n "$line" ] || line="[gpu_check] FAILED: $(grep -iE 'error|check failed|abort' "$OUT/probe.log" | tail -n 1)"
    echo "$line"
    exit 1
fi

echo "[gpu_check] device tests (--device cuda)"
MC_TEST_DEVICE=cuda "$PY" -m pytest -q tests/training/test_device.py > "$OUT/tests.log" 2>&1
record "device tests" $?
tail -n 1 "$OUT/tests.log"

echo "[gpu_check] train step: 6 layers, batch 32, seq 64 and 128"
for flags in "--modes graph,graph-unfused" "--modes graph --amp"; do
    for seq in 64 128; do
        # shellcheck disable=SC2086
        "$PY" benchmarks/bench_train_step.py --device cuda --seq "$seq" --steps 10 $flags 2>&1 \
            | tee -a "$OUT/bench.log" | grep -E '^graph'
    done
done
record "train-step benchmark" "${PIPESTATUS[0]}"

if [ "$DEMO" = 1 ]; then
    echo "[gpu_check] demo on the GPU (log: $OUT/demo.log)"
    START=$(date +%s)
    DEVICE=cuda OUT="$OUT/demo" bash run_scripts/demo.sh > "$OUT/demo.log" 2>&1
    record "demo ($(( $(date +%s) - START )) s)" $?
    grep -A6 '^| model' "$OUT/demo.log" || tail -n 5 "$OUT/demo.log"
fi

echo
echo "| check | result |"
echo "|---|---|"
failed=0
for i in "${!NAMES[@]}"; do
    echo "| ${NAMES[$i]} | ${STATUS[$i]} |"
    [ "${STATUS[$i]}" = ok ] || failed=1
done
exit $failed
