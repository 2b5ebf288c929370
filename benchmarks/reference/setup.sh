#!/usr/bin/env bash
# The reference environment for benchmarks/reference/hf_finetune.py: PyTorch (CPU) and transformers in
# .venv-reference (separate from the OneFlow venv), then the default pretrained weights' folder path.
# Usage: bash benchmarks/reference/setup.sh   (prints the model folder to pass as --model_dir)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.venv-reference"
PY=${REFERENCE_PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q torch==2.13.0 transformers==4.57.6 >&2
fi
bash "$ROOT/run_scripts/setup_env.sh" >&2
"$ROOT/.venv/bin/python" -c "from model_compress.modeling.pretrained import default_pretrained_dir; print(default_pretrained_dir())"
