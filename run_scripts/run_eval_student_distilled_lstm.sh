#!/usr/bin/env bash
# Evaluate a Distilled BiLSTM student (seed: run_eval_student_distilled_lstm.sh).
#   bash run_scripts/run_eval_student_distilled_lstm.sh [GPU TASK MODEL_ID] [--flag ...]  (MODEL_ID: a folder of $MODELS_DIR/student_model/TASK)
#   DATA_ROOT=data/glue_data  dataset=SST-2  STUDENT_DIR=models/student_model/$dataset/kd_lstm  RESULT_DIR=""
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
script_args eval "$@"; set -- "${SCRIPT_ARGS[@]}"
glue_defaults
id_dir STUDENT_DIR "$MODELS_DIR/student_model/$dataset"
STUDENT_DIR=${STUDENT_DIR:-$MODELS_DIR/student_model/$dataset/${STUDENT_NAME:-kd_lstm}}
eval_student model_compress/distil/task_student_kd_lstm.py "${DEVICE_ARGS[@]}" "$@"
