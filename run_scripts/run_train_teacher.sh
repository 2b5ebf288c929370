#!/usr/bin/env bash
# Fine-tune the teacher (seed: run_train_teacher.sh). Two forms (docs/scripts.md):
#   bash run_scripts/run_train_teacher.sh [DATA_ROOT PRETRAINED LOG_DIR RESULT_DIR dataset] [--flag ...]
#   DATA_ROOT=... dataset=... bash run_scripts/run_train_teacher.sh [--flag ...]
# Variables (defaults for the shipped data):
#   DATA_ROOT=data/glue_data  dataset=SST-2  PRETRAINED=default (all-MiniLM-L6-v2)  LOG_DIR=""  RESULT_DIR=""
#   TEACHER_DIR=$MODELS_DIR/finetuned_teacher/<model id>, with $MODELS_DIR/finetuned_teacher/$dataset
#   pointing at it (MODELS_DIR=models; id: <dataset>_epoch-E_lr-L_wd-W)
#   SEQ_LENGTH=32  EPOCHS=3  LR=5e-5  WD=0.01  BATCH=32 (global); a GLUE task other than the shipped set
#   takes what is unset from the originals' table (glue_recipe)
#   NPROC=auto (data-parallel processes; see plan_ranks in common.sh)
# Extra arguments go to task_teacher.py.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
script_args train "$@"; set -- "${SCRIPT_ARGS[@]}"
DATA_ROOT=${DATA_ROOT:-data/glue_data}
dataset=${dataset:-SST-2}
PRETRAINED=${MODEL_ARG:-${PRETRAINED:-default}}
glue_recipe teacher
SEQ_LENGTH=${SEQ_LENGTH:-32} EPOCHS=${EPOCHS:-3} LR=${LR:-5e-5} WD=${WD:-0.01}
named_dir TEACHER_DIR "$MODELS_DIR/finetuned_teacher" \
    "$(model_id teacher task="$dataset" epochs="$EPOCHS" lr="$LR" wd="$WD")" "$dataset"
BATCH=${BATCH:-32}
plan_ranks "$BATCH" "$@"
run_ranks model_compress/distil/task_teacher.py \
    --task_name "$dataset" --data_dir "$DATA_ROOT/$dataset" --model_load_dir "$PRETRAINED" \
    --model_save_dir "$TEACHER_DIR" --result_dir "${RESULT_DIR:-}" --seq_length "$SEQ_LENGTH" \
    --num_epochs "$EPOCHS" --learning_rate "$LR" --weight_decay_rate "$WD" \
    --batch_size_per_device "$RANK_BATCH" --seed "${SEED:-42}" --do_train --do_eval "${RECIPE_ARGS[@]}" "$@"
link_named
