#!/usr/bin/env bash
# Evaluate a BERT-of-Theseus successor (seed: run_eval_theseus.sh).
#   bash run_scripts/run_eval_theseus.sh [GPU TASK MODEL_ID] [--flag ...]  (MODEL_ID: a folder of $MODELS_DIR/student_model/TASK)
#   DATA_ROOT=data/glue_data  dataset=SST-2  STUDENT_DIR=models/student_model/$dataset/theseus  RESULT_DIR=""
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
eval_student_script model_compress/distil/task_theseus.py "${STUDENT_NAME:-theseus}" "$@"
