#!/usr/bin/env bash
# Evaluate a BERT-PKD student (seed: run_eval_student_bert_pkd.sh). Two forms (docs/scripts.md):
#   bash run_scripts/run_eval_student_bert_pkd.sh GPU TASK MODEL_ID [--flag ...]
#       e.g. 0 SST-2 bert-pkd_3_epoch-4_lr-2e-5_wd-0.0001_kd_alpha-0.2_kd_beta-10: $MODELS_DIR/student_model/TASK/MODEL_ID
#   DATA_ROOT=data/glue_data  dataset=SST-2  STUDENT_DIR=$MODELS_DIR/student_model/$dataset/bert_pkd_3  RESULT_DIR=""
#   (MODELS_DIR=models; bert_pkd_3 points at the newest student run_train_student_bert_pkd.sh trained)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
script_args eval "$@"; set -- "${SCRIPT_ARGS[@]}"
DATA_ROOT=${DATA_ROOT:-data/glue_data}
dataset=${dataset:-SST-2}
id_dir STUDENT_DIR "$MODELS_DIR/student_model/$dataset"
STUDENT_DIR=${STUDENT_DIR:-$MODELS_DIR/student_model/$dataset/bert_pkd_3}
glue_recipe bert_pkd
"$PYTHON" model_compress/distil/task_student_bert-pkd.py \
    --task_name "$dataset" --data_dir "$DATA_ROOT/$dataset" --student_model "$STUDENT_DIR/snapshot_best" \
    --model_save_dir "$STUDENT_DIR" --result_dir "${RESULT_DIR:-}" --seq_length "${SEQ_LENGTH:-32}" --do_eval \
    "${DEVICE_ARGS[@]}" "${RECIPE_ARGS[@]}" "$@"
