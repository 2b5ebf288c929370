#!/usr/bin/env bash
# Evaluate a TinyBERT student (seed: run_eval_student_tinybert.sh).
#   bash run_scripts/run_eval_student_tinybert.sh [GPU TASK MODEL_ID] [--flag ...]  (MODEL_ID: a folder of $MODELS_DIR/student_model/TASK)
#   DATA_ROOT=data/glue_data  dataset=SST-2  STUDENT_DIR=models/student_model/$dataset/tinybert  RESULT_DIR=""
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
eval_student_script model_compress/distil/task_student_tinybert.py "tinybert" "$@"
