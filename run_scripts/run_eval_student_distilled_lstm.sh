#!/usr/bin/env bash
# Evaluate a Distilled BiLSTM student (seed: run_eval_student_distilled_lstm.sh).
#   bash run_scripts/run_eval_student_distilled_lstm.sh [GPU TASK MODEL_ID] [--flag ...]  (MODEL_ID: a folder of $MODELS_DIR/student_model/TASK)
#   DATA_ROOT=data/glue_data  dataset=SST-2  STUDENT_DIR=models/student_model/$dataset/kd_lstm  RESULT_DIR=""
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
eval_student_script model_compress/distil/task_student_kd_lstm.py "${STUDENT_NAME:-kd_lstm}" "$@"
