#!/usr/bin/env bash
# Export a student snapshot for serving outside OneFlow: a Hugging Face folder or an ONNX file, checked
# for parity with the OneFlow model before it is written.
#   STUDENT_DIR=output/demo/student_tinybert/snapshot_best  FORMAT=onnx (or hf)  OUTPUT_DIR=$STUDENT_DIR-$FORMAT
# Extra arguments go to `python -m model_compress.export` (e.g. --force, --label_enumerate_values 0,1).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
STUDENT_DIR=${STUDENT_DIR:-output/demo/student_tinybert/snapshot_best}
FORMAT=${FORMAT:-onnx}
OUTPUT_DIR=${OUTPUT_DIR:-${STUDENT_DIR%/}-$FORMAT}
"$PYTHON" -m model_compress.export --model_dir "$STUDENT_DIR" --format "$FORMAT" --output_dir "$OUTPUT_DIR" "$@"
