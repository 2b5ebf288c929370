# Sourced by the run_scripts: repo root, the project python (set up on first use), quiet OneFlow.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ ! -x "$ROOT/.venv/bin/python" ] || [ ! -f "$ROOT/.venv/.model_compress_setup" ]; then
    bash "$ROOT/run_scripts/setup_env.sh"
fi
PYTHON="$ROOT/.venv/bin/python"
cd "$ROOT"

# ensure_teacher DIR TAG: fine-tune the teacher into DIR's parent (run_train_teacher.sh on $DATA_ROOT/$dataset)
# unless DIR exists.
ensure_teacher() {
    if [ ! -d "$1" ]; then
        echo "[$2] no teacher at $1: fine-tuning one first"
        TEACHER_DIR="$(dirname "$1")" DATA_ROOT="$DATA_ROOT" dataset="$dataset" bash run_scripts/run_train_teacher.sh
    fi
}
