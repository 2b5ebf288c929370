#!/usr/bin/env bash
# Evaluate a TinyBERT student (seed: run_eval_student_tinybert.sh).
#   DATA_ROOT=data/glue_data  dataset=SST-2  STUDENT_DIR=models/student_model/$dataset/tinybert  RESULT_DIR=""
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
DATA_ROOT=${DATA_ROOT:-data/glue_data}
dataset=${dataset:-SST-2}
STUDENT_DIR=${STUDENT_DIR:-models/student_model/$dataset/tinybert}
"$PYTHON" model_compress/distil/task_student_tinybert.py \
    --task_name "$dataset" --data_dir "$DATA_ROOT/$dataset" --student_model "$STUDENT_DIR/snapshot_best" \
    --model_save_dir "$STUDENT_DIR" --result_dir "${RESULT_DIR:-}" --seq_length "${SEQ_LENGTH:-32}" --do_eval "$@"
