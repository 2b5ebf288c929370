#!/usr/bin/env bash
# BERT-of-Theseus in two phases (seed: run_train_theseus.sh / run_bert_theseus.sh).
#   phase 1: every block of N / STUDENT_NUM_HIDDEN_LAYERS teacher layers is replaced by its successor layer
#            with probability REPLACING_RATE (constant, or linear: min(1, REPLACING_RATE + SCHEDULER_LINEAR_K * step));
#   phase 2: the successor alone is fine-tuned (replacing rate 1).
# Variables, as in the original (defaults run on the shipped data with the default teacher):
#   DATA_ROOT=data/glue_data   dataset=SST-2   STUDENT_NAME=theseus
#   FT_BERT_BASE_DIR=models/finetuned_teacher/$dataset/snapshot_best   (trained first if missing)
#   TMP_STUDENT_DIR=models/bert_theseus/$dataset   (phase-1 successor)
#   STUDENT_DIR=models/student_model/$dataset/$STUDENT_NAME   RESULT_DIR=""   (phase-2 student, results_eval.json)
#   STUDENT_NUM_HIDDEN_LAYERS=3   REPLACING_RATE=0.8 (PHRASE1_REPLACE_RATE)   SCHEDULER_TYPE=none
#   SCHEDULER_LINEAR_K=0.0006   STEPS_FOR_REPLACING=0   PHRASE1_LR=5e-5   PHRASE2_LR=5e-5
#   EPOCHS=4 (phase 1)   PHRASE2_EPOCHS=$EPOCHS   SEQ_LENGTH=32   BATCH=32 (global)   SEED=42
#   NPROC=auto (data-parallel processes; see plan_ranks in common.sh; every rank draws the same replacing gates)
# Also: bash run_scripts/run_train_theseus.sh [DATA_ROOT OUT_DIR LOG_DIR RESULT_DIR dataset] [--flag ...] (docs/scripts.md;
# the student goes to OUT_DIR/student_model). Extra arguments go to task_theseus.py in both phases.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
script_args train "$@"; set -- "${SCRIPT_ARGS[@]}"  # [DATA_ROOT OUT_DIR LOG_DIR RESULT_DIR dataset]
glue_defaults
STUDENT_NAME=${STUDENT_NAME:-theseus}
FT_BERT_BASE_DIR=${FT_BERT_BASE_DIR:-${MODELS_DIR:-models}/finetuned_teacher/$dataset/snapshot_best}
TMP_STUDENT_DIR=${TMP_STUDENT_DIR:-${MODELS_DIR:-models}/bert_theseus/$dataset}
[ -n "${MODEL_ARG:-}" ] && STUDENT_DIR=${STUDENT_DIR:-$MODEL_ARG/student_model}
STUDENT_DIR=${STUDENT_DIR:-${MODELS_DIR:-models}/student_model/$dataset/$STUDENT_NAME}
RESULT_DIR=${RESULT_DIR:-}
REPLACING_RATE=${REPLACING_RATE:-${PHRASE1_REPLACE_RATE:-0.8}}
EPOCHS=${EPOCHS:-4}

ensure_teacher "$FT_BERT_BASE_DIR" theseus
plan_ranks "${BATCH:-32}" "$@"
COMMON=(--task_name "$dataset" --data_dir "$DATA_ROOT/$dataset" --seq_length "${SEQ_LENGTH:-32}"
        --batch_size_per_device "$RANK_BATCH" --seed "${SEED:-42}")
echo "[theseus] phase 1: module replacing -> $TMP_STUDENT_DIR"
run_ranks model_compress/distil/task_theseus.py "${COMMON[@]}" \
    --teacher_model "$FT_BERT_BASE_DIR" --student_num_hidden_layers "${STUDENT_NUM_HIDDEN_LAYERS:-3}" \
    --replacing_rate "$REPLACING_RATE" --scheduler_type "${SCHEDULER_TYPE:-none}" \
    --scheduler_linear_k "${SCHEDULER_LINEAR_K:-0.0006}" --steps_for_replacing "${STEPS_FOR_REPLACING:-0}" \
    --learning_rate "${PHRASE1_LR:-5e-5}" --num_epochs "$EPOCHS" --model_save_dir "$TMP_STUDENT_DIR" \
    --do_train "$@"
echo "[theseus] phase 2: successor fine-tuning -> $STUDENT_DIR"
run_ranks model_compress/distil/task_theseus.py "${COMMON[@]}" \
    --student_model "$TMP_STUDENT_DIR/snapshot_best" --replacing_rate 1 \
    --learning_rate "${PHRASE2_LR:-5e-5}" --num_epochs "${PHRASE2_EPOCHS:-$EPOCHS}" \
    --model_save_dir "$STUDENT_DIR" --result_dir "$RESULT_DIR" --do_train --do_eval "$@"
