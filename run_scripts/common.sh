# Sourced by the run_scripts: repo root, the project python (set up on first use), quiet OneFlow.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ ! -x "$ROOT/.venv/bin/python" ] || [ ! -f "$ROOT/.venv/.model_compress_setup" ]; then
    bash "$ROOT/run_scripts/setup_env.sh"
fi
PYTHON="$ROOT/.venv/bin/python"
cd "$ROOT"

# plan_ranks GLOBAL_BATCH [job args...]: sets RANKS, the processes the next training job runs as (data
# parallel under OneFlow's launcher), and RANK_BATCH, the rows each takes, so that the global batch and
# hence the recipe stay the same. NPROC=auto (default): on a CPU, the count measured fastest on this
# machine (python -m model_compress.runtime --ranks; docs/runtime.md); 1 on a GPU (DEVICE=cuda or
# --device cuda among the job args). NPROC=N: N processes.
plan_ranks() {
    local batch=$1 n=${NPROC:-auto} device=${DEVICE:-cpu} prev=""
    shift
    for arg in "$@"; do
        case "$arg" in --device=*) device=${arg#--device=} ;; esac
        [ "$prev" = "--device" ] && device=$arg
        prev=$arg
    done
    if [ "$n" = auto ]; then
        if [ "$device" = cpu ]; then n=$("$PYTHON" -m model_compress.runtime --ranks); else n=1; fi
        if [ $((batch % n)) -ne 0 ]; then
            echo "[ranks] a batch of $batch rows does not split over $n processes: running one" >&2
            n=1
        fi
    elif ! [[ "$n" =~ ^[1-9][0-9]*$ ]]; then
        echo "error: NPROC=$n: expected auto or a positive number of processes" >&2
        exit 2
    elif [ $((batch % n)) -ne 0 ]; then
        echo "error: a batch of $batch rows does not split over NPROC=$n processes" >&2
        exit 2
    fi
    RANKS=$n
    RANK_BATCH=$((batch / n))
}

# run_ranks SCRIPT ARGS...: run a training script as $RANKS processes (OneFlow's launcher), or plainly.
run_ranks() {
    if [ "${RANKS:-1}" -gt 1 ]; then
        local port
        port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        echo "[ranks] $1 as $RANKS data-parallel processes of $RANK_BATCH rows each"
        "$PYTHON" -m model_compress.launch --nproc_per_node "$RANKS" --master_port "$port" "$@"
    else
        "$PYTHON" "$@"
    fi
}

# ensure_teacher DIR TAG: unless DIR (a .../snapshot_best path) exists, fine-tune the teacher
# (run_train_teacher.sh on $DATA_ROOT/$dataset): into DIR's parent when DIR is not the default place, else
# under its model id with $MODELS_DIR/finetuned_teacher/$dataset pointing at it. TAG prefixes the message.
ensure_teacher() {
    if [ ! -d "$1" ]; then
        echo "[$2] no teacher at $1: fine-tuning one first"
        local target=()
        if [ "$1" != "${MODELS_DIR:-models}/finetuned_teacher/$dataset/snapshot_best" ]; then
            target=(TEACHER_DIR="$(dirname "$1")")
        fi
        env ${target[@]+"${target[@]}"} DATA_ROOT="$DATA_ROOT" dataset="$dataset" MODELS_DIR="${MODELS_DIR:-models}" \
            bash run_scripts/run_train_teacher.sh
    fi
}

# The GLUE scripts' defaults: DATA_ROOT=data/glue_data, dataset=SST-2.
glue_defaults() {
    DATA_ROOT=${DATA_ROOT:-data/glue_data}
    dataset=${dataset:-SST-2}
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

source "$ROOT/run_scripts/script_forms.sh"

# eval_student_script ENTRY DEFAULT_NAME ARGS...: the whole of an evaluation script in both forms
# ([GPU TASK MODEL_ID] or variables): the student is $MODELS_DIR/student_model/$dataset/(MODEL_ID or
# $STUDENT_DIR or DEFAULT_NAME), evaluated with ENTRY on the dev split.
eval_student_script() {
    local entry=$1 name=$2
    shift 2
    script_args eval "$@"
    set -- ${SCRIPT_ARGS[@]+"${SCRIPT_ARGS[@]}"}
    glue_defaults
    id_dir STUDENT_DIR "$MODELS_DIR/student_model/$dataset"
    STUDENT_DIR=${STUDENT_DIR:-$MODELS_DIR/student_model/$dataset/$name}
    eval_student "$entry" ${DEVICE_ARGS[@]+"${DEVICE_ARGS[@]}"} "$@"
}
