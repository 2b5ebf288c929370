#!/usr/bin/env bash
# Meta-KD end to end on the shipped default data (seed README: preprocess.py, meta_teacher.py,
# meta_teacher_eval.py, meta_distill.py), plus a vanilla-KD baseline of the same student:
#   1. prototypical scores of the SENTI training rows (default pretrained model)
#   2. meta-teacher from the default pretrained model: sample weights + domain loss, all domains
#   3. teacher dump (logits, attentions, hidden states, domain representations) for the student depth
#   4. per genre: Meta-KD stage 1 + stage 2, and vanilla KD of the same sliced student
# Variables (defaults):
#   DATA_DIR=data/SENTI  PRETRAINED=default (all-MiniLM-L6-v2)  GENRES="books"  STUDENT_LAYERS=3
#   SEQ_LENGTH=64  BATCH=32  TEACHER_EPOCHS=2  TEACHER_LR=5e-5  FIRST_EPOCHS=3  SECOND_EPOCHS=3
#   VANILLA_EPOCHS=FIRST_EPOCHS+SECOND_EPOCHS  STUDENT_LR=1e-4  T=2  ALPHA=0.5  OUT=output/metakd
# Results: $OUT/teacher/results_eval.json, $OUT/metakd/<genre>/results_eval_<genre>.json,
# $OUT/kd/<genre>/results_eval_<genre>.json and the per-domain table printed at the end.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
DATA_DIR=${DATA_DIR:-data/SENTI}
PRETRAINED=${PRETRAINED:-default}
GENRES=${GENRES:-books}
STUDENT_LAYERS=${STUDENT_LAYERS:-3}
BATCH=${BATCH:-32}
FIRST_EPOCHS=${FIRST_EPOCHS:-3}
SECOND_EPOCHS=${SECOND_EPOCHS:-3}
VANILLA_EPOCHS=${VANILLA_EPOCHS:-$((FIRST_EPOCHS + SECOND_EPOCHS))}
OUT=${OUT:-output/metakd}
COMMON=(--task_name senti --data_dir "$DATA_DIR" --seed "${SEED:-42}" --seq_length "${SEQ_LENGTH:-64}"
        --eval_batch_size_per_device 80)

if [ ! -f "$DATA_DIR/train.tsv" ] || [ ! -f "$DATA_DIR/dev.tsv" ]; then
    echo "run_metakd: $DATA_DIR missing: generating the default data" >&2
    "$PYTHON" -m model_compress.data.synthetic --out "$(dirname "$DATA_DIR")"
fi

echo "== 1/4 prototypical scores ($DATA_DIR)"
"$PYTHON" model_compress/metakd/preprocess.py --model_load_dir "$PRETRAINED" "${COMMON[@]}" --resave_ofrecord

echo "== 2/4 meta-teacher (init $PRETRAINED)"
rm -rf "$OUT/teacher"
"$PYTHON" model_compress/metakd/meta_teacher.py --model_load_dir "$PRETRAINED" "${COMMON[@]}" \
    --model_save_dir "$OUT/teacher" --num_epochs "${TEACHER_EPOCHS:-2}" --learning_rate "${TEACHER_LR:-5e-5}" \
    --batch_size_per_device "$BATCH" --use_sample_weights --use_domain_loss --domain_loss_weight 0.5
TEACHER=$(ls -d "$OUT"/teacher/snapshot_best_mft_model_senti_dev_* | head -n 1)

echo "== 3/4 teacher dump for a $STUDENT_LAYERS-layer student ($TEACHER)"
"$PYTHON" model_compress/metakd/meta_teacher_eval.py --model_load_dir "$TEACHER" "${COMMON[@]}" \
    --student_num_hidden_layers "$STUDENT_LAYERS"

STUDENT=(--teacher_model "$TEACHER" --student_num_hidden_layers "$STUDENT_LAYERS" --batch_size_per_device "$BATCH"
         --learning_rate "${STUDENT_LR:-1e-4}" --T "${T:-2}")
for genre in $GENRES; do
    echo "== 4/4 $genre: Meta-KD stage 1 ($FIRST_EPOCHS epochs), stage 2 ($SECOND_EPOCHS epochs)"
    rm -rf "$OUT/metakd/$genre" "$OUT/kd/$genre"
    "$PYTHON" model_compress/metakd/meta_distill.py "${COMMON[@]}" "${STUDENT[@]}" --genre "$genre" \
        --distill_stage first --num_epochs "$FIRST_EPOCHS" --model_save_dir "$OUT/metakd/$genre"
    "$PYTHON" model_compress/metakd/meta_distill.py "${COMMON[@]}" "${STUDENT[@]}" --genre "$genre" \
        --distill_stage second --num_epochs "$SECOND_EPOCHS" --model_save_dir "$OUT/metakd/$genre"
    echo "== 4/4 $genre: vanilla KD of the same student ($VANILLA_EPOCHS epochs, alpha ${ALPHA:-0.5})"
    "$PYTHON" model_compress/metakd/meta_distill.py "${COMMON[@]}" "${STUDENT[@]}" --genre "$genre" \
        --distill_stage vanilla --alpha "${ALPHA:-0.5}" --num_epochs "$VANILLA_EPOCHS" --model_save_dir "$OUT/kd/$genre"
done

echo "== dev accuracy per domain (students trained on their domain only)"
"$PYTHON" -m model_compress.recipes.metakd summary --teacher_results "$OUT/teacher/results_eval.json" \
    --column "Meta-KD=$OUT/metakd/{genre}/results_eval_{genre}.json" \
    --column "vanilla KD=$OUT/kd/{genre}/results_eval_{genre}.json" --genres "$(echo $GENRES | tr ' ' ',')"
