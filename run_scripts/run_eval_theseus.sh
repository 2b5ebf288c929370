#!/usr/bin/env bash
# Evaluate a BERT-of-Theseus successor (seed: run_eval_theseus.sh).
#   DATA_ROOT=data/glue_data  dataset=SST-2  STUDENT_DIR=models/student_model/$dataset/theseus  RESULT_DIR=""
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
glue_defaults
STUDENT_DIR=${STUDENT_DIR:-models/student_model/$dataset/${STUDENT_NAME:-theseus}}
eval_student model_compress/distil/task_theseus.py "$@"
