#!/usr/bin/env bash
# Vanilla KD (EasyNLP convention): export the teacher's logits on the training set once, then train
# the student on (1 - ALPHA) * CE + ALPHA * T^2 * KL.
#   DATA_ROOT=data/glue_data  dataset=SST-2  FT_BERT_BASE_DIR=models/finetuned_teacher/$dataset/snapshot_best
#   STUDENT_MODEL=models/student_model/bert_pkd_3/$dataset (made from LAYER_LIST=1,3,5 if missing)
#   STUDENT_DIR=models/student_model/$dataset/kd_3  LOGITS_PATH=$FT_BERT_BASE_DIR/../logits_train.tsv
#   TEMPERATURE=5  ALPHA=0.2  EPOCHS=4  LR=2e-4  SEQ_LENGTH=32  BATCH=32 (global)
#   NPROC=auto (data-parallel processes; see plan_ranks in common.sh)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
DATA_ROOT=${DATA_ROOT:-data/glue_data}
dataset=${dataset:-SST-2}
FT_BERT_BASE_DIR=${FT_BERT_BASE_DIR:-models/finetuned_teacher/$dataset/snapshot_best}
STUDENT_MODEL=${STUDENT_MODEL:-models/student_model/bert_pkd_3/$dataset}
STUDENT_DIR=${STUDENT_DIR:-models/student_model/$dataset/kd_3}
LOGITS_PATH=${LOGITS_PATH:-$(dirname "$FT_BERT_BASE_DIR")/logits_train.tsv}
SEQ=${SEQ_LENGTH:-32}
ensure_teacher "$FT_BERT_BASE_DIR" kd
if [ ! -d "$STUDENT_MODEL" ]; then
    "$PYTHON" model_compress/distil/bert-pkd_generate_student_model.py \
        --teacher_model "$FT_BERT_BASE_DIR" --student_model "$STUDENT_MODEL" --layer_list "${LAYER_LIST:-1,3,5}"
fi
"$PYTHON" model_compress/distil/task_teacher.py --task_name "$dataset" --data_dir "$DATA_ROOT/$dataset" \
    --model_load_dir "$FT_BERT_BASE_DIR" --seq_length "$SEQ" --export_logits "$LOGITS_PATH"
BATCH=${BATCH:-32}
plan_ranks "$BATCH" "$@"
run_ranks model_compress/distil/task_student_kd.py --task_name "$dataset" --data_dir "$DATA_ROOT/$dataset" \
    --student_model "$STUDENT_MODEL" --teacher_logits "$LOGITS_PATH" --model_save_dir "$STUDENT_DIR" \
    --result_dir "${RESULT_DIR:-}" --temperature "${TEMPERATURE:-5}" --alpha "${ALPHA:-0.2}" \
    --num_epochs "${EPOCHS:-4}" --seq_length "$SEQ" --learning_rate "${LR:-2e-4}" --seed "${SEED:-42}" \
    --batch_size_per_device "$RANK_BATCH" --do_train --do_eval "$@"
