#!/usr/bin/env bash
# Meta Fine-Tuning end to end on the shipped default data (seed README: preprocess.py,
# meta_finetuning.py, finetuning.py): prototypical scores on the g1 group (SST-2, MR, CR), meta
# fine-tuning across the three domains, then fine-tuning + test on one domain. Variables (defaults):
#   DATA_ROOT=data  K=16  KSEED=42  TARGET=SST-2  PRETRAINED=default (all-MiniLM-L6-v2)
#   SEQ_LENGTH=64  BATCH=8  MFT_EPOCHS=5  MFT_LR=1e-4  FT_EPOCHS=10  FT_LR=1e-4  OUT=output/mft
# About 6-8 minutes on 2 CPU cores. Results: $OUT/meta/results_eval.json (meta learner, g1 dev) and
# $OUT/finetune-$TARGET/results_eval.json (target dev + test).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
DATA_ROOT=${DATA_ROOT:-data}
K=${K:-16}
KSEED=${KSEED:-42}
TARGET=${TARGET:-SST-2}
PRETRAINED=${PRETRAINED:-default}
OUT=${OUT:-output/mft}
CROSS="$DATA_ROOT/k-shot-cross/g1/$K-$KSEED"
SINGLE="$DATA_ROOT/k-shot-single/$TARGET/$K-$KSEED"
COMMON=(--seed "$KSEED" --seq_length "${SEQ_LENGTH:-64}" --resave_ofrecord)

if [ ! -f "$CROSS/train.csv" ] || [ ! -f "$SINGLE/test.csv" ]; then
    echo "run_mft: $CROSS or $SINGLE missing: generating the default data" >&2
    "$PYTHON" -m model_compress.data.synthetic --out "$DATA_ROOT"
fi

echo "== 1/3 prototypical scores ($CROSS)"
"$PYTHON" model_compress/mft/preprocess.py --task_name g1 --model_load_dir "$PRETRAINED" \
    --data_dir "$CROSS" "${COMMON[@]}"

echo "== 2/3 meta fine-tuning on g1"
rm -rf "$OUT/meta"
"$PYTHON" model_compress/mft/meta_finetuning.py --task_name g1 --model_load_dir "$PRETRAINED" \
    --data_dir "$CROSS" --model_save_dir "$OUT/meta" --num_epochs "${MFT_EPOCHS:-5}" \
    --learning_rate "${MFT_LR:-1e-4}" --batch_size_per_device "${BATCH:-8}" --dev_batch_size_per_device 48 \
    "${COMMON[@]}"
META=$(ls -d "$OUT"/meta/snapshot_best_mft_model_g1_dev_* | head -n 1)

echo "== 3/3 fine-tuning on $TARGET from $META"
"$PYTHON" model_compress/mft/finetuning.py --task_name "$(echo "$TARGET" | tr '[:upper:]' '[:lower:]')" \
    --model_load_dir "$META" --data_dir "$SINGLE" --model_save_dir "$OUT/finetune-$TARGET" \
    --num_epochs "${FT_EPOCHS:-10}" --learning_rate "${FT_LR:-1e-4}" --batch_size_per_device "${BATCH:-8}" \
    --eval_batch_size_per_device 40 "${COMMON[@]}" "$@"
