#!/usr/bin/env bash
# The demo's last step, on its finished runs: export the distilled student to ONNX, then print teacher vs
# students (dev accuracy, size) with their speed timed interleaved on the same batches (medians over
# SPEED_ROUNDS rounds), and the ONNX student's onnxruntime samples/s beside its OneFlow figure, with its
# int8 export (dynamic, accuracy-gated on DATA's dev rows) beside it: samples/s and dev accuracy.
#   OUT=output/demo  STUDENT_ALGO=tinybert (the distilled run is $OUT/student_$STUDENT_ALGO)  SPEED_ROUNDS=7
#   DATA=data/glue_data/SST-2 (the demo's data folder: the int8 gate's dev rows)  INT8_MAX_DROP=1.0 (the gate's points)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
OUT=${OUT:-output/demo}
STUDENT_ALGO=${STUDENT_ALGO:-tinybert}
SPEED_ROUNDS=${SPEED_ROUNDS:-7}
source "$(dirname "${BASH_SOURCE[0]}")/demo_students.sh"
STUDENT=$(student_label "$STUDENT_ALGO") || exit 2
RUN="$OUT/student_$STUDENT_ALGO"
if [ ! -f "$RUN/results_eval.json" ]; then
    echo "error: $RUN/results_eval.json missing: run the demo with STUDENT_ALGO=$STUDENT_ALGO first" >&2
    exit 2
fi
"$PYTHON" -m model_compress.export --model_dir "$RUN/snapshot_best" --format onnx --output_dir "${RUN}_onnx" --force
INT8=(--onnx "$STUDENT=${RUN}_int8")
rc=0
"$PYTHON" -m model_compress.export --model_dir "$RUN/snapshot_best" --format onnx --quantize int8 \
    --parity_data "${DATA:-data/glue_data/SST-2}" --max_accuracy_drop "${INT8_MAX_DROP:-1.0}" \
    --output_dir "${RUN}_int8" --force || rc=$?
if [ "$rc" -eq 1 ]; then  # exit 1: the accuracy gate refused the int8 file (its figures are printed above)
    echo "[demo] the int8 student was refused by its accuracy gate: the table shows the fp32 export only"
    INT8=()
elif [ "$rc" -ne 0 ]; then
    exit "$rc"
fi
echo
"$PYTHON" -m model_compress.commands.report --speed_rounds "$SPEED_ROUNDS" --onnx "$STUDENT=${RUN}_onnx" \
    ${INT8[@]+"${INT8[@]}"} \
    "teacher (6 layers)=$OUT/teacher" "$STUDENT=$RUN" "no-teacher student (3)=$OUT/student_no_teacher"
