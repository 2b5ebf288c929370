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
#   PRESET=original (AUG_TRAIN=True: augmented): the budget, stated once in model_compress/recipes/tinybert.py
#           (PRESETS): original = step 1 10 epochs at 2e-4, step 2 4 epochs at 1e-4, T 1, attention scores;
#           augmented = the recipe measured on real text (docs/benchmarks.md, CR): N=4, 1 + 1 epochs at 2e-4.
#   Set to override the preset: step 1: INTERMEDIATE_EPOCHS INTERMEDIATE_LR ATTENTION_LOSS;
#                               step 2: EPOCHS LR TEMPERATURE; N
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
    1|true|yes|y|on) PRESET=${PRESET:-augmented} ;;  # every epoch reads N+1 rows per sentence
    *) PRESET=${PRESET:-original} ;;
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
ARGS=(--task_name "$dataset" --data_dir "$DATA_ROOT/$dataset" --teacher_model "$FT_BERT_BASE_DIR"
      --model_save_dir "$STUDENT_DIR" --preset "$PRESET" --aug_train "$AUG_TRAIN" --seq_length "${SEQ_LENGTH:-32}"
      --batch_size_per_device "$RANK_BATCH" --seed "${SEED:-42}" --M "${M:-15}" --p "${P:-0.4}"
      --result_dir "$RESULT_DIR" --serve_for_online "$SERVE_FOR_ONLINE" "${START[@]}")
# given variables override the preset's values
for pair in N:--N INTERMEDIATE_EPOCHS:--intermediate_epochs INTERMEDIATE_LR:--intermediate_learning_rate \
            ATTENTION_LOSS:--attention_loss EPOCHS:--num_epochs LR:--learning_rate TEMPERATURE:--temperature; do
    name=${pair%%:*}
    if [ -n "${!name:-}" ]; then ARGS+=("${pair#*:}" "${!name}"); fi
done

echo "[tinybert] step 1 (intermediate layers), then step 2 (prediction layer), preset $PRESET"
run_ranks model_compress/distil/task_student_tinybert.py "${ARGS[@]}" \
    --intermediate_distill True --pred_distill True --do_train --do_eval "$@"
