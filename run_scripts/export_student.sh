#!/usr/bin/env bash
# Export a student snapshot for serving outside OneFlow: a Hugging Face folder or an ONNX file, checked
# for parity with the OneFlow model before it is written; QUANTIZE=int8 also quantizes the ONNX file
# (onnxruntime, dynamic; static QDQ with CALIBRATION_DATA) behind the dev-accuracy gate (docs/serving.md).
#   STUDENT_DIR=output/demo/student_tinybert/snapshot_best  FORMAT=onnx (or hf)  QUANTIZE="" (or int8)
#   CALIBRATION_DATA="" (folder whose train.tsv rows calibrate static int8)
#   OUTPUT_DIR=$STUDENT_DIR-$FORMAT (-int8 appended with QUANTIZE=int8)
# Extra arguments go to `python -m model_compress.export` (e.g. --force, --parity_data DIR, --max_accuracy_drop 1).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
STUDENT_DIR=${STUDENT_DIR:-output/demo/student_tinybert/snapshot_best}
FORMAT=${FORMAT:-onnx}
QUANTIZE=${QUANTIZE:-}
OUTPUT_DIR=${OUTPUT_DIR:-${STUDENT_DIR%/}-$FORMAT${QUANTIZE:+-$QUANTIZE}}
ARGS=()
if [ -n "$QUANTIZE" ]; then ARGS+=(--quantize "$QUANTIZE"); fi
if [ -n "${CALIBRATION_DATA:-}" ]; then ARGS+=(--calibration_data "$CALIBRATION_DATA"); fi
"$PYTHON" -m model_compress.export --model_dir "$STUDENT_DIR" --format "$FORMAT" --output_dir "$OUTPUT_DIR" \
    ${ARGS[@]+"${ARGS[@]}"} "$@"
