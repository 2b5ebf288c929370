#!/usr/bin/env bash
# Meta-KD against vanilla KD, per domain, on the shipped SENTI data (4 domains x 400 train / 100 dev).
#
#   meta-teacher  all-MiniLM-L6-v2 (6 layers, 384 wide) meta-trained on all four domains
#   students      3 layers sliced from the same pretrained model (its layers 1, 3, 5), trained on ONE domain:
#                 Meta-KD stage 1 (FIRST_EPOCHS) + stage 2 (SECOND_EPOCHS), or vanilla KD for
#                 FIRST_EPOCHS + SECOND_EPOCHS epochs (same total), alpha 0.5, T 2
#
# The tsv files are copied into $OUT/data first, so OFRecord files, weight.npy and the teacher dump
# (about 1.6 GB at seq 64) are written there, not in the shared data/. Prints the per-domain dev
# accuracy table at the end and the wall time. Variables are those of run_scripts/run_metakd.sh; defaults
# here: OUT=output/bench_metakd GENRES="books dvd electronics kitchen" TEACHER_EPOCHS=2 FIRST_EPOCHS=2
# SECOND_EPOCHS=3. About 25 minutes of CPU time on 2 cores (longer when the machine is shared).
#
#   bash benchmarks/bench_metakd.sh
#   SUMMARY_ONLY=1 bash benchmarks/bench_metakd.sh     # only print the table of a finished run
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export OUT=${OUT:-output/bench_metakd}
export GENRES=${GENRES:-books dvd electronics kitchen}
export TEACHER_EPOCHS=${TEACHER_EPOCHS:-2} TEACHER_LR=${TEACHER_LR:-1e-4}
export FIRST_EPOCHS=${FIRST_EPOCHS:-2} SECOND_EPOCHS=${SECOND_EPOCHS:-3}
export DATA_DIR="$OUT/data/SENTI"

if [ -z "${SUMMARY_ONLY:-}" ]; then
    mkdir -p "$DATA_DIR"
    cp data/SENTI/train.tsv data/SENTI/dev.tsv "$DATA_DIR/"
    # `time` reports wall (real) and CPU (user + sys) time of the whole pipeline, children included
    { time bash run_scripts/run_metakd.sh; } 2>&1 | tee "$OUT/log.txt"
else
    .venv/bin/python -m model_compress.recipes.metakd summary --teacher_results "$OUT/teacher/results_eval.json" \
        --column "Meta-KD=$OUT/metakd/{genre}/results_eval_{genre}.json" \
        --column "vanilla KD=$OUT/kd/{genre}/results_eval_{genre}.json" --genres "$(echo $GENRES | tr ' ' ',')"
fi
