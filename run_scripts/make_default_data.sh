#!/usr/bin/env bash
# (Re)generate the shipped synthetic default data under data/ (deterministic: same bytes every run).
#   bash run_scripts/make_default_data.sh [--out DIR] [--seed N]
# Writes data/SENTI, data/glue_data/SST-2, data/k-shot-cross/g1/16-{42,21,12} and
# data/k-shot-single/{SST-2,MR,CR}/16-{42,21,12}; other files under data/ are left alone.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ ! -x .venv/bin/python ]; then
    echo "make_default_data: no .venv here; run 'bash run_scripts/setup_env.sh' first" >&2
    exit 2
fi
exec .venv/bin/python -m model_compress.data.synthetic --out data "$@"
