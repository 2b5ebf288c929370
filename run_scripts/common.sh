# Sourced by the run_scripts: repo root, the project python (set up on first use), quiet OneFlow.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ ! -x "$ROOT/.venv/bin/python" ] || [ ! -f "$ROOT/.venv/.model_compress_setup" ]; then
    bash "$ROOT/run_scripts/setup_env.sh"
fi
PYTHON="$ROOT/.venv/bin/python"
cd "$ROOT"

# The GLUE scripts' defaults: DATA_ROOT=data/glue_data, dataset=SST-2.
glue_defaults() {
    DATA_ROOT=${DATA_ROOT:-data/glue_data}
    dataset=${dataset:-SST-2}
}

# Fine-tune a teacher into $1 (a .../snapshot_best path) when it does not exist yet; $2 tags the message.
ensure_teacher() {
    if [ ! -d "$1" ]; then
        echo "[$2] no teacher at $1: fine-tuning one first"
        TEACHER_DIR="$(dirname "$1")" DATA_ROOT="$DATA_ROOT" dataset="$dataset" bash run_scripts/run_train_teacher.sh
    fi
}

# Evaluate $STUDENT_DIR/snapshot_best on the dev split with entry script $1; results in $RESULT_DIR
# (default $STUDENT_DIR). Extra arguments go to the script.
eval_student() {
    local script=$1
    shift
    "$PYTHON" "$script" --task_name "$dataset" --data_dir "$DATA_ROOT/$dataset" \
        --student_model "$STUDENT_DIR/snapshot_best" --model_save_dir "$STUDENT_DIR" --result_dir "${RESULT_DIR:-}" \
        --seq_length "${SEQ_LENGTH:-32}" --do_eval "$@"
}
