#!/usr/bin/env bash
# Evaluate a teacher snapshot on the dev set (seed: run_eval_teacher.sh). Two forms (docs/scripts.md):
#   bash run_scripts/run_eval_teacher.sh GPU TASK MODEL_ID [--flag ...]
#       e.g. 0 SST-2 SST-2_epoch-3_lr-2e-5_wd-0.0001: $MODELS_DIR/finetuned_teacher/MODEL_ID
#   DATA_ROOT=data/glue_data  dataset=SST-2  TEACHER_DIR=$MODELS_DIR/finetuned_teacher/$dataset  RESULT_DIR=""
#   (MODELS_DIR=models; finetuned_teacher/$dataset points at the newest teacher run_train_teacher.sh trained)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
script_args eval "$@"; set -- "${SCRIPT_ARGS[@]}"
DATA_ROOT=${DATA_ROOT:-data/glue_data}
dataset=${dataset:-SST-2}
id_dir TEACHER_DIR "$MODELS_DIR/finetuned_teacher"
TEACHER_DIR=${TEACHER_DIR:-$MODELS_DIR/finetuned_teacher/$dataset}
glue_recipe teacher
"$PYTHON" model_compress/distil/task_teacher.py \
    --task_name "$dataset" --data_dir "$DATA_ROOT/$dataset" --model_load_dir "$TEACHER_DIR/snapshot_best" \
    --model_save_dir "$TEACHER_DIR" --result_dir "${RESULT_DIR:-}" --seq_length "${SEQ_LENGTH:-32}" --do_eval \
    "${DEVICE_ARGS[@]}" "${RECIPE_ARGS[@]}" "$@"
