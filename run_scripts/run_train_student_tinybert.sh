#!/usr/bin/env bash
# TinyBERT in the original's two steps (seed: run_train_student_tinybert.sh): step 1 distils the
# attention maps and hidden states, step 2 the prediction layer; both read the teacher online.
# Variables, as in the original where it has them (defaults run on the shipped data with the default teacher):
#   DATA_ROOT=data/glue_data   dataset=SST-2
#   FT_BERT_BASE_DIR=models/finetuned_teacher/$dataset/snapshot_best   (trained first if missing)
#   TMP_STUDENT_DIR=""   a general TinyBERT snapshot to start from, when given
#   LAYER_LIST=1,3,5     else start from these 0-based teacher layers (the recipe measured on the shipped set
#                        and on real text, docs/benchmarks.md)
#   LAYER_LIST=""        else a random student: STUDENT_LAYERS=3 STUDENT_HIDDEN=312 STUDENT_HEADS=12
#                        STUDENT_INTERMEDIATE=1200
#                          (the original's 4 x 312 needs a teacher whose depth 4 divides, e.g. 12 layers;
#                           the heads must equal the teacher's)
#   STUDENT_DIR=models/student_model/$dataset/tinybert   RESULT_DIR=""   SERVE_FOR_ONLINE=False
#   AUG_TRAIN=False  (True: both steps train on train_aug.tsv, built once; N M P as data_augmentation.py)
#   step 1: INTERMEDIATE_EPOCHS=10  INTERMEDIATE_LR=2e-4  ATTENTION_LOSS=scores
#   step 2: EPOCHS=4  LR=1e-4  TEMPERATURE=1
#   AUG_TRAIN=True changes the defaults to the recipe measured on real text (docs/benchmarks.md, CR):
#           N=4 new rows per sentence, INTERMEDIATE_EPOCHS=1, EPOCHS=1, LR=2e-4
#   SEQ_LENGTH=32  BATCH=32 (global)  SEED=42  NPROC=auto (data-parallel processes; see plan_ranks in common.sh)
# Also: bash run_scripts/run_train_student_tinybert.sh [DATA_ROOT OUT_DIR LOG_DIR RESULT_DIR dataset] [--flag ...] (docs/scripts.md;
# the student goes to OUT_DIR/student_model). Extra arguments go to both task_student_tinybert.py runs.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
script_args train "$@"; set -- "${SCRIPT_ARGS[@]}"  # [DATA_ROOT OUT_DIR LOG_DIR RESULT_DIR dataset]
DATA_ROOT=${DATA_ROOT:-data/glue_data}
dataset=${dataset:-SST-2}
FT_BERT_BASE_DIR=${FT_BERT_BASE_DIR:-${MODELS_DIR:-models}/finetuned_teacher/$dataset/snapshot_best}
TMP_STUDENT_DIR=${TMP_STUDENT_DIR:-}
LAYER_LIST=${LAYER_LIST-1,3,5}
[ -n "${MODEL_ARG:-}" ] && STUDENT_DIR=${STUDENT_DIR:-$MODEL_ARG/student_model}
STUDENT_DIR=${STUDENT_DIR:-${MODELS_DIR:-models}/student_model/$dataset/tinybert}
RESULT_DIR=${RESULT_DIR:-}
SERVE_FOR_ONLINE=${SERVE_FOR_ONLINE:-False}
AUG_TRAIN=${AUG_TRAIN:-False}
case "$(printf %s "$AUG_TRAIN" | tr '[:upper:]' '[:lower:]')" in
    1|true|yes|y|on)  # every epoch reads N+1 rows per sentence
        N=${N:-4} INTERMEDIATE_EPOCHS=${INTERMEDIATE_EPOCHS:-1} EPOCHS=${EPOCHS:-1} LR=${LR:-2e-4} ;;
esac

ensure_teacher "$FT_BERT_BASE_DIR" tinybert
plan_ranks "${BATCH:-32}" "$@"
if [ -n "$TMP_STUDENT_DIR" ]; then
    START=(--student_model "$TMP_STUDENT_DIR")
elif [ -n "$LAYER_LIST" ]; then
    START=(--layer_list "$LAYER_LIST")
else
    START=(--from_scratch --student_num_hidden_layers "${STUDENT_LAYERS:-3}" --student_hidden_size "${STUDENT_HIDDEN:-312}"
           --student_num_attention_heads "${STUDENT_HEADS:-12}" --student_intermediate_size "${STUDENT_INTERMEDIATE:-1200}")
fi
COMMON=(--task_name "$dataset" --data_dir "$DATA_ROOT/$dataset" --teacher_model "$FT_BERT_BASE_DIR"
        --model_save_dir "$STUDENT_DIR" --aug_train "$AUG_TRAIN" --seq_length "${SEQ_LENGTH:-32}"
        --batch_size_per_device "$RANK_BATCH" --seed "${SEED:-42}")
if [ -n "${N:-}" ]; then COMMON+=(--N "$N"); fi
COMMON+=(--M "${M:-15}" --p "${P:-0.4}")

echo "[tinybert] step 1: intermediate-layer distillation"
run_ranks model_compress/distil/task_student_tinybert.py "${COMMON[@]}" "${START[@]}" \
    --intermediate_distill True --pred_distill False --attention_loss "${ATTENTION_LOSS:-scores}" \
    --num_epochs "${INTERMEDIATE_EPOCHS:-10}" --learning_rate "${INTERMEDIATE_LR:-2e-4}" --do_train "$@"
echo "[tinybert] step 2: prediction-layer distillation"
run_ranks model_compress/distil/task_student_tinybert.py "${COMMON[@]}" \
    --student_model "$STUDENT_DIR/snapshot_intermediate" \
    --intermediate_distill False --pred_distill True --temperature "${TEMPERATURE:-1}" \
    --result_dir "$RESULT_DIR" --serve_for_online "$SERVE_FOR_ONLINE" \
    --num_epochs "${EPOCHS:-4}" --learning_rate "${LR:-1e-4}" --do_train --do_eval "$@"
