#!/usr/bin/env bash
# Fine-tune the teacher (seed: run_train_teacher.sh). Variables (with defaults for the shipped data):
#   DATA_ROOT=data/glue_data  dataset=SST-2  PRETRAINED=default (all-MiniLM-L6-v2)
#   TEACHER_DIR=models/finetuned_teacher/$dataset  SEQ_LENGTH=32  EPOCHS=3  LR=5e-5  BATCH=32 (global)
#   NPROC=auto (data-parallel processes; see plan_ranks in common.sh)
# Extra arguments go to task_teacher.py.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
DATA_ROOT=${DATA_ROOT:-data/glue_data}
dataset=${dataset:-SST-2}
PRETRAINED=${PRETRAINED:-default}
TEACHER_DIR=${TEACHER_DIR:-models/finetuned_teacher/$dataset}
BATCH=${BATCH:-32}
plan_ranks "$BATCH" "$@"
run_ranks model_compress/distil/task_teacher.py \
    --task_name "$dataset" --data_dir "$DATA_ROOT/$dataset" --model_load_dir "$PRETRAINED" \
    --model_save_dir "$TEACHER_DIR" --seq_length "${SEQ_LENGTH:-32}" --num_epochs "${EPOCHS:-3}" \
    --learning_rate "${LR:-5e-5}" --batch_size_per_device "$RANK_BATCH" --seed "${SEED:-42}" \
    --do_train --do_eval "$@"
