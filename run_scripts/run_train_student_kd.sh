#!/usr/bin/env bash
# Vanilla KD (EasyNLP convention): export the teacher's logits on the training set once, then train
# the student on (1 - ALPHA) * CE + ALPHA * T^2 * KL. Two forms (docs/scripts.md):
#   bash run_scripts/run_train_student_kd.sh [DATA_ROOT OUT_DIR LOG_DIR RESULT_DIR dataset] [--flag ...]
#   DATA_ROOT=... dataset=... bash run_scripts/run_train_student_kd.sh [--flag ...]
# Variables:
#   DATA_ROOT=data/glue_data  dataset=SST-2  LOG_DIR=""  RESULT_DIR=""  (MODELS_DIR=models)
#   FT_BERT_BASE_DIR=$MODELS_DIR/finetuned_teacher/$dataset/snapshot_best  (trained first if missing)
#   STUDENT_MODEL=$MODELS_DIR/student_model/bert_pkd_3/$dataset (made from LAYER_LIST=1,3,5 if missing)
#   STUDENT_DIR=OUT_DIR/student_model with OUT_DIR given, else $MODELS_DIR/student_model/$dataset/<model id>
#   (bert-kd-distl_epoch-E_lr-L_wd-W_kd_alpha-A), with .../$dataset/kd_<layers> pointing at it
#   LOGITS_PATH=$FT_BERT_BASE_DIR/../logits_train.tsv
#   TEMPERATURE=5  ALPHA=0.2  EPOCHS=4  LR=2e-4  WD=0.01  SEQ_LENGTH=32  BATCH=32 (global)
#   (T 5 / alpha 0.2 was also the best KD point of the real-text sweep: docs/benchmarks.md "Real data")
#   A GLUE task other than the shipped set takes EPOCHS LR WD SEQ_LENGTH left unset from the originals' table.
#   NPROC=auto (data-parallel processes; see plan_ranks in common.sh)
# Extra arguments go to task_student_kd.py.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
script_args train "$@"; set -- "${SCRIPT_ARGS[@]}"
DATA_ROOT=${DATA_ROOT:-data/glue_data}
dataset=${dataset:-SST-2}
FT_BERT_BASE_DIR=${FT_BERT_BASE_DIR:-$MODELS_DIR/finetuned_teacher/$dataset/snapshot_best}
STUDENT_MODEL=${STUDENT_MODEL:-$MODELS_DIR/student_model/bert_pkd_3/$dataset}
LAYER_LIST=${LAYER_LIST:-1,3,5}
glue_recipe kd
SEQ_LENGTH=${SEQ_LENGTH:-32} EPOCHS=${EPOCHS:-4} LR=${LR:-2e-4} WD=${WD:-0.01} ALPHA=${ALPHA:-0.2}
LAYERS=$(tr ',' '\n' <<< "$LAYER_LIST" | grep -c .)
[ -n "${MODEL_ARG:-}" ] && STUDENT_DIR=${STUDENT_DIR:-$MODEL_ARG/student_model}
named_dir STUDENT_DIR "$MODELS_DIR/student_model/$dataset" \
    "$(model_id kd epochs="$EPOCHS" lr="$LR" wd="$WD" kd_alpha="$ALPHA")" "kd_$LAYERS"
LOGITS_PATH=${LOGITS_PATH:-$(dirname "$FT_BERT_BASE_DIR")/logits_train.tsv}
ensure_teacher "$FT_BERT_BASE_DIR" kd
if [ ! -d "$STUDENT_MODEL" ]; then
    "$PYTHON" model_compress/distil/bert-pkd_generate_student_model.py \
        --teacher_model "$FT_BERT_BASE_DIR" --student_model "$STUDENT_MODEL" --layer_list "$LAYER_LIST"
fi
# the logits cover the rows the student trains on: the same training-row flags go to the export
EXPORT_ARGS=("${RECIPE_ARGS[@]:0:2}")
prev=""
for arg in "$@"; do
    case "$arg" in --train_example_num=* | --vocab_file=*) EXPORT_ARGS+=("$arg") ;; esac
    case "$prev" in --train_example_num | --vocab_file) EXPORT_ARGS+=("$prev" "$arg") ;; esac
    prev=$arg
done
"$PYTHON" model_compress/distil/task_teacher.py --task_name "$dataset" --data_dir "$DATA_ROOT/$dataset" \
    --model_load_dir "$FT_BERT_BASE_DIR" --seq_length "$SEQ_LENGTH" --export_logits "$LOGITS_PATH" \
    "${EXPORT_ARGS[@]}"
BATCH=${BATCH:-32}
plan_ranks "$BATCH" "$@"
run_ranks model_compress/distil/task_student_kd.py --task_name "$dataset" --data_dir "$DATA_ROOT/$dataset" \
    --student_model "$STUDENT_MODEL" --teacher_logits "$LOGITS_PATH" --model_save_dir "$STUDENT_DIR" \
    --result_dir "${RESULT_DIR:-}" --temperature "${TEMPERATURE:-5}" --alpha "$ALPHA" \
    --num_epochs "$EPOCHS" --seq_length "$SEQ_LENGTH" --learning_rate "$LR" --weight_decay_rate "$WD" \
    --seed "${SEED:-42}" --batch_size_per_device "$RANK_BATCH" --do_train --do_eval "${RECIPE_ARGS[@]}" "$@"
link_named
