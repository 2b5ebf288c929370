#!/usr/bin/env bash
# Fine-tune the general-distilled student (run_general_distill.sh) on a shipped task, and the same
# architecture from random initialisation with the same settings, then print both dev accuracies.
# Variables (defaults):
#   DISTILL_DIR=output/general_distill  STUDENT=<newest $DISTILL_DIR/model_<step>>
#   OUT=output/minilm_finetune  task=sst-2  DATA_DIR=data/glue_data/SST-2  SEQ_LENGTH=32
#   EPOCHS=3  LR=1e-4  BATCH=32 (global)  SEED=42  NPROC=auto (see plan_ranks in common.sh)
# The random-init student is written by general_distill.py --max_steps 0 with the flags (and seed) of
# the distilled one, read from its snapshot.json. Extra arguments go to both task_teacher.py runs.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DISTILL_DIR=${DISTILL_DIR:-output/general_distill}
OUT=${OUT:-output/minilm_finetune}
task=${task:-sst-2}
DATA_DIR=${DATA_DIR:-data/glue_data/SST-2}
if [ -z "${STUDENT:-}" ]; then
    STUDENT=$(ls -d "$DISTILL_DIR"/model_* 2>/dev/null | awk -F'model_' '{print $NF" "$0}' | sort -n | tail -1 | cut -d' ' -f2- || true)
fi
if [ -z "$STUDENT" ] || [ ! -d "$STUDENT" ]; then
    echo "error: no distilled student in $DISTILL_DIR; run bash run_scripts/run_general_distill.sh first" >&2
    exit 2
fi

# the same architecture, randomly initialised (same seed as the distillation run)
read -r layers hidden heads inter seed t_layer teacher < <("$PYTHON" - "$STUDENT" <<'PY'
import json, sys
info = json.load(open(f"{sys.argv[1]}/snapshot.json"))
c, m = info["config"], info["meta"]
print(c["num_hidden_layers"], c["hidden_size"], c["num_attention_heads"], c["intermediate_size"], m["seed"], m["teacher_layer_index"], m["teacher"])
PY
)
RANDOM_DIR="$OUT/random_init"
"$PYTHON" model_compress/minilm/general_distill.py --input_dir data/corpus --output_dir "$RANDOM_DIR" \
    --teacher_model_name_or_path "$teacher" --num_layers "$layers" --hidden_size "$hidden" \
    --num_attention_heads "$heads" --intermediate_size "$inter" --seed "$seed" --teacher_layer_index "$t_layer" \
    --max_steps 0

plan_ranks "${BATCH:-32}" "$@"
for name in distilled random; do
    if [ "$name" = distilled ]; then init="$STUDENT"; else init="$RANDOM_DIR/model_0"; fi
    run_ranks model_compress/distil/task_teacher.py --task_name "$task" --data_dir "$DATA_DIR" \
        --model_load_dir "$init" --model_save_dir "$OUT/$name" --seq_length "${SEQ_LENGTH:-32}" \
        --num_epochs "${EPOCHS:-3}" --learning_rate "${LR:-1e-4}" --batch_size_per_device "$RANK_BATCH" \
        --seed "${SEED:-42}" --do_train --do_eval "$@"
done

"$PYTHON" - "$OUT" "$STUDENT" <<'PY'
import json, sys
out, student = sys.argv[1], sys.argv[2]
for name in ("distilled", "random"):
    r = json.load(open(f"{out}/{name}/results_eval.json"))
    print(f"{name:>9}: dev accuracy {r['accuracy']:.4f}  f1 {r.get('f1', float('nan')):.4f}  ({r['snapshot']})")
print(f"distilled student: {student}")
PY
