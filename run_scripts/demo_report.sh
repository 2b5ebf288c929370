#!/usr/bin/env bash
# The demo's last step, on its finished runs: export the PKD student to ONNX, then print teacher vs
# students (dev accuracy, size) with their speed timed interleaved on the same batches (medians over
# SPEED_ROUNDS rounds), and the ONNX student's onnxruntime samples/s beside its OneFlow figure.
#   OUT=output/demo  SPEED_ROUNDS=7
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
OUT=${OUT:-output/demo}
SPEED_ROUNDS=${SPEED_ROUNDS:-7}
PKD="PKD student (3 layers)"
"$PYTHON" -m model_compress.export --model_dir "$OUT/student_pkd/snapshot_best" --format onnx \
    --output_dir "$OUT/student_pkd_onnx" --force
echo
"$PYTHON" -m model_compress.jobs.report --speed_rounds "$SPEED_ROUNDS" --onnx "$PKD=$OUT/student_pkd_onnx" \
    "teacher (6 layers)=$OUT/teacher" "$PKD=$OUT/student_pkd" "no-teacher student (3)=$OUT/student_no_teacher"
