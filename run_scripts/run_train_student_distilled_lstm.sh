#!/usr/bin/env bash
# Distilled BiLSTM (seed: run_train_student_distilled_lstm.sh): an LSTM student over the teacher's vocabulary
# learns (1 - KD_ALPHA) * CE + KD_ALPHA * T^2 * KL(p_t || p_s) from the fine-tuned teacher's logits.
# Variables (defaults run on the shipped data with the default teacher):
#   DATA_ROOT=data/glue_data  dataset=SST-2  STUDENT_NAME=kd_lstm
#   FT_BERT_BASE_DIR=models/finetuned_teacher/$dataset/snapshot_best   (trained first if missing)
#   STUDENT_DIR=models/student_model/$dataset/$STUDENT_NAME   RESULT_DIR=""
#   LOGITS_PATH=""  (a task_teacher.py --export_logits file; empty: teacher logits cached once, TEACHER_MODE=cached)
#   KD_ALPHA=0.7  TEMPERATURE=1  EPOCHS=5  LR=1e-4  SEQ_LENGTH=32  BATCH=32 (global)  SEED=42
#   STUDENT_HIDDEN_SIZE=300  STUDENT_EMBEDDING_SIZE=0 (= hidden)  STUDENT_NUM_HIDDEN_LAYERS=1  BIDIRECTIONAL=True
#   NPROC=1 (data-parallel processes; NPROC=auto or N as in common.sh's plan_ranks: on a 2-core CPU two
#   processes ran this student's step about half as fast, as its LSTM then runs step by step, docs/benchmarks.md)
# Also: bash run_scripts/run_train_student_distilled_lstm.sh [DATA_ROOT OUT_DIR LOG_DIR RESULT_DIR dataset] [--flag ...] (docs/scripts.md;
# the student goes to OUT_DIR/student_model). Extra arguments go to task_student_kd_lstm.py.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
script_args train "$@"; set -- "${SCRIPT_ARGS[@]}"  # [DATA_ROOT OUT_DIR LOG_DIR RESULT_DIR dataset]
glue_defaults
STUDENT_NAME=${STUDENT_NAME:-kd_lstm}
FT_BERT_BASE_DIR=${FT_BERT_BASE_DIR:-${MODELS_DIR:-models}/finetuned_teacher/$dataset/snapshot_best}
[ -n "${MODEL_ARG:-}" ] && STUDENT_DIR=${STUDENT_DIR:-$MODEL_ARG/student_model}
STUDENT_DIR=${STUDENT_DIR:-${MODELS_DIR:-models}/student_model/$dataset/$STUDENT_NAME}
LOGITS=()
if [ -n "${LOGITS_PATH:-}" ]; then LOGITS=(--teacher_logits "$LOGITS_PATH"); fi

ensure_teacher "$FT_BERT_BASE_DIR" bilstm
NPROC=${NPROC:-1}
plan_ranks "${BATCH:-32}" "$@"
run_ranks model_compress/distil/task_student_kd_lstm.py \
    --task_name "$dataset" --data_dir "$DATA_ROOT/$dataset" --teacher_model "$FT_BERT_BASE_DIR" ${LOGITS[@]+"${LOGITS[@]}"} \
    --teacher_mode "${TEACHER_MODE:-cached}" --model_save_dir "$STUDENT_DIR" --result_dir "${RESULT_DIR:-}" \
    --kd_alpha "${KD_ALPHA:-0.7}" --temperature "${TEMPERATURE:-1}" --num_epochs "${EPOCHS:-5}" \
    --learning_rate "${LR:-1e-4}" --seq_length "${SEQ_LENGTH:-32}" --batch_size_per_device "$RANK_BATCH" \
    --student_hidden_size "${STUDENT_HIDDEN_SIZE:-300}" --student_embedding_size "${STUDENT_EMBEDDING_SIZE:-0}" \
    --student_num_hidden_layers "${STUDENT_NUM_HIDDEN_LAYERS:-1}" --bidirectional "${BIDIRECTIONAL:-True}" \
    --seed "${SEED:-42}" --do_train --do_eval "$@"
