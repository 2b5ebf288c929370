#!/usr/bin/env bash
# PP-MiniLM task-agnostic distillation (seed: general_distill/run.sh), with working CPU defaults on the
# shipped data. Step 1 writes a corpus (one sentence per line, several files) from the training texts
# of the shipped tasks; step 2 distils a randomly initialised student from the teacher's Q/K/V relations.
# Snapshots go to $OUTPUT_DIR/model_<step>; running the script again resumes from the newest one.
# Variables (defaults):
#   TEACHER=default (all-MiniLM-L6-v2)  CORPUS_DIR=data/corpus  OUTPUT_DIR=output/general_distill
#   num_layers=4 hidden=384 heads=12 numH=48 teacher_layer_index=-1 student_layer_index=-1
#   bs=32 maxlen=64 lr=6e-4 maxStep=100 warmStep=10 wd=1e-2 alpha=0 beta=0.5 save_steps=50
#   device=cpu use_amp=False
# Extra arguments go to general_distill.py. Then: bash run_scripts/run_minilm_finetune.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

TEACHER=${TEACHER:-default}
CORPUS_DIR=${CORPUS_DIR:-data/corpus}
OUTPUT_DIR=${OUTPUT_DIR:-output/general_distill}
num_layers=${num_layers:-4}
hidden=${hidden:-384}
heads=${heads:-12}
numH=${numH:-48}
teacher_layer_index=${teacher_layer_index:--1}
student_layer_index=${student_layer_index:--1}
bs=${bs:-32}
maxlen=${maxlen:-64}
lr=${lr:-6e-4}
maxStep=${maxStep:-100}
warmStep=${warmStep:-10}
wd=${wd:-1e-2}
alpha=${alpha:-0}
beta=${beta:-0.5}
save_steps=${save_steps:-50}
device=${device:-cpu}
use_amp=${use_amp:-False}

if [ ! -f data/SENTI/train.tsv ] || [ ! -f data/glue_data/SST-2/train.tsv ]; then
    "$PYTHON" -m model_compress.data.synthetic --out data
fi
# the corpus: training sentences of the shipped tasks (dev text stays out), 8 files
"$PYTHON" -m model_compress.recipes.minilm make_corpus --out "$CORPUS_DIR" --num_files 8 \
    senti:data/SENTI sst-2:data/glue_data/SST-2

"$PYTHON" model_compress/minilm/general_distill.py \
    --model_type ppminilm \
    --num_relation_heads "$numH" \
    --teacher_model_type bert \
    --teacher_layer_index "$teacher_layer_index" \
    --student_layer_index "$student_layer_index" \
    --teacher_model_name_or_path "$TEACHER" \
    --max_seq_length "$maxlen" \
    --num_layers "$num_layers" \
    --hidden_size "$hidden" \
    --num_attention_heads "$heads" \
    --batch_size "$bs" \
    --learning_rate "$lr" \
    --logging_steps 10 \
    --max_steps "$maxStep" \
    --warmup_steps "$warmStep" \
    --save_steps "$save_steps" \
    --weight_decay "$wd" \
    --output_dir "$OUTPUT_DIR" \
    --device "$device" \
    --input_dir "$CORPUS_DIR" \
    --use_amp "$use_amp" \
    --alpha "$alpha" \
    --beta "$beta" \
    "$@"
