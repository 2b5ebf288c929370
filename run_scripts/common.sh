# Sourced by the run_scripts: repo root, the project python (set up on first use), quiet OneFlow.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ ! -x "$ROOT/.venv/bin/python" ] || [ ! -f "$ROOT/.venv/.model_compress_setup" ]; then
    bash "$ROOT/run_scripts/setup_env.sh"
fi
PYTHON="$ROOT/.venv/bin/python"
cd "$ROOT"
