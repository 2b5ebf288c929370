#!/usr/bin/env bash
# Evaluate a teacher snapshot on the dev set (seed: run_eval_teacher.sh).
#   DATA_ROOT=data/glue_data  dataset=SST-2  TEACHER_DIR=models/finetuned_teacher/$dataset  RESULT_DIR=""
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
DATA_ROOT=${DATA_ROOT:-data/glue_data}
dataset=${dataset:-SST-2}
TEACHER_DIR=${TEACHER_DIR:-models/finetuned_teacher/$dataset}
"$PYTHON" model_compress/distil/task_teacher.py \
    --task_name "$dataset" --data_dir "$DATA_ROOT/$dataset" --model_load_dir "$TEACHER_DIR/snapshot_best" \
    --model_save_dir "$TEACHER_DIR" --result_dir "${RESULT_DIR:-}" --seq_length "${SEQ_LENGTH:-32}" --do_eval "$@"
