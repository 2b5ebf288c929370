#!/usr/bin/env bash
# Evaluate a vanilla-KD student.  DATA_ROOT=data/glue_data  dataset=SST-2  STUDENT_DIR=models/student_model/$dataset/kd_3
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
DATA_ROOT=${DATA_ROOT:-data/glue_data}
dataset=${dataset:-SST-2}
STUDENT_DIR=${STUDENT_DIR:-models/student_model/$dataset/kd_3}
"$PYTHON" model_compress/distil/task_student_kd.py --task_name "$dataset" --data_dir "$DATA_ROOT/$dataset" \
    --student_model "$STUDENT_DIR/snapshot_best" --model_save_dir "$STUDENT_DIR" --result_dir "${RESULT_DIR:-}" \
    --seq_length "${SEQ_LENGTH:-32}" --do_eval "$@"
