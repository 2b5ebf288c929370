#!/usr/bin/env bash
# BERT-PKD: build the student from teacher layers, then distill (seed: run_train_student_bert_pkd.sh).
# Variables, as in the original (defaults run on the shipped data with the default teacher):
#   DATA_ROOT=data/glue_data   dataset=SST-2
#   FT_BERT_BASE_DIR=models/finetuned_teacher/$dataset/snapshot_best   (trained first if missing)
#   TMP_STUDENT_DIR=models/student_model/bert_pkd_3/$dataset
#   STUDENT_DIR=models/student_model/$dataset/bert_pkd_3   RESULT_DIR=""   SERVE_FOR_ONLINE=False
#   LAYER_LIST=1,3,5  (0-based teacher layers; use 2,6,10 for a 12-layer BERT-base teacher)
#   KD_ALPHA=0.9  KD_BETA=10  TEMPERATURE=2  PKD_MAPPING=skip  PKD_VARIANT=paper  EPOCHS=4  LR=2e-4
#   SEQ_LENGTH=32  BATCH=32 (global)  NPROC=auto (data-parallel processes; see plan_ranks in common.sh)
#   (the BERT-PKD original used KD_ALPHA=0.2 KD_BETA=10 TEMPERATURE=1 with PKD_VARIANT=original)
# Extra arguments go to task_student_bert-pkd.py.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
DATA_ROOT=${DATA_ROOT:-data/glue_data}
dataset=${dataset:-SST-2}
FT_BERT_BASE_DIR=${FT_BERT_BASE_DIR:-models/finetuned_teacher/$dataset/snapshot_best}
TMP_STUDENT_DIR=${TMP_STUDENT_DIR:-models/student_model/bert_pkd_3/$dataset}
STUDENT_DIR=${STUDENT_DIR:-models/student_model/$dataset/bert_pkd_3}
RESULT_DIR=${RESULT_DIR:-}
SERVE_FOR_ONLINE=${SERVE_FOR_ONLINE:-False}
LAYER_LIST=${LAYER_LIST:-1,3,5}

ensure_teacher "$FT_BERT_BASE_DIR" pkd
"$PYTHON" model_compress/distil/bert-pkd_generate_student_model.py \
    --teacher_model "$FT_BERT_BASE_DIR" --student_model "$TMP_STUDENT_DIR" --layer_list "$LAYER_LIST"
BATCH=${BATCH:-32}
plan_ranks "$BATCH" "$@"
run_ranks model_compress/distil/task_student_bert-pkd.py \
    --task_name "$dataset" --data_dir "$DATA_ROOT/$dataset" \
    --teacher_model "$FT_BERT_BASE_DIR" --student_model "$TMP_STUDENT_DIR" \
    --model_save_dir "$STUDENT_DIR" --result_dir "$RESULT_DIR" --serve_for_online "$SERVE_FOR_ONLINE" \
    --kd_alpha "${KD_ALPHA:-0.9}" --kd_beta "${KD_BETA:-10}" --temperature "${TEMPERATURE:-2}" \
    --pkd_mapping "${PKD_MAPPING:-skip}" --pkd_variant "${PKD_VARIANT:-paper}" \
    --num_epochs "${EPOCHS:-4}" --seq_length "${SEQ_LENGTH:-32}" --learning_rate "${LR:-2e-4}" \
    --batch_size_per_device "$RANK_BATCH" --seed "${SEED:-42}" --do_train --do_eval "$@"
