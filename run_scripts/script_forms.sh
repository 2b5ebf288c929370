# The originals' argument forms (docs/scripts.md), sourced by common.sh.
# Every run_train_*/run_eval_* script takes them the same way; a new algorithm's script adopts them with
# a few lines (see run_train_student_bert_pkd.sh and run_eval_student_bert_pkd.sh):
#     script_args train "$@"; set -- "${SCRIPT_ARGS[@]}"   # [DATA_ROOT MODEL_ARG LOG_DIR RESULT_DIR dataset]
#     glue_recipe ALGO          # EPOCHS LR WD SEQ_LENGTH left unset <- the GLUE table (recipes/glue_tasks.py)
#     ...the script's own defaults (${EPOCHS:-4} ...)...
#     named_dir STUDENT_DIR "$MODELS_DIR/student_model/$dataset" "$(model_id ALGO k=v ...)" LINK
#     ...training, with "${RECIPE_ARGS[@]}" before "$@"...; link_named
# and in an evaluation script:
#     script_args eval "$@"; set -- "${SCRIPT_ARGS[@]}"    # [GPU TASK MODEL_ID]
#     glue_recipe ALGO; id_dir STUDENT_DIR "$MODELS_DIR/student_model/$dataset"
# plus "${DEVICE_ARGS[@]}" on the python line. The environment-variable form keeps working: positional
# arguments, when given, set the same variables; flags (--name value) after them go to the python script.
MODELS_DIR=${MODELS_DIR:-models}

die() {
    echo "error: $*" >&2
    exit 2
}

# script_args train|eval ARGS...: consume the leading positional arguments, leave the flags in SCRIPT_ARGS.
#   train: DATA_ROOT MODEL_ARG LOG_DIR RESULT_DIR dataset (the originals' order; an empty one keeps the
#          variable's value; MODEL_ARG is the script's own: the teacher's pretrained model, a student's
#          output folder). LOG_DIR set: this script's output is also appended to LOG_DIR/<script>.log.
#   eval:  GPU TASK MODEL_ID. GPU: CUDA_VISIBLE_DEVICES and --device cuda (DEVICE_ARGS) when the machine
#          has a GPU, else one line saying the CPU is used.
script_args() {
    local mode=$1 names i=0
    shift
    if [ "$mode" = train ]; then names=(DATA_ROOT MODEL_ARG LOG_DIR RESULT_DIR dataset); else names=(GPU dataset MODEL_ID); fi
    while [ $# -gt 0 ] && [[ "$1" != --* ]]; do
        [ $i -lt ${#names[@]} ] || die "$(basename "$0"): too many arguments before the flags" \
            "(expected at most: ${names[*]}); got '$1'"
        [ -n "$1" ] && printf -v "${names[$i]}" '%s' "$1"
        i=$((i + 1))
        shift
    done
    SCRIPT_ARGS=("$@")
    DEVICE_ARGS=()
    if [ -n "${LOG_DIR:-}" ]; then
        mkdir -p "$LOG_DIR"
        local log
        log="$LOG_DIR/$(basename "$0" .sh).log"
        exec > >(tee -a "$log") 2> >(tee -a "$log" >&2)
    fi
    if [ "$mode" = eval ] && [ -n "${GPU:-}" ]; then
        [[ "$GPU" =~ ^[0-9]+(,[0-9]+)*$ ]] || die "GPU '$GPU': expected a GPU number such as 0"
        if command -v nvidia-smi > /dev/null 2>&1 && nvidia-smi -L 2> /dev/null | grep -q '^GPU'; then
            export CUDA_VISIBLE_DEVICES=$GPU
            DEVICE_ARGS=(--device cuda)
        else
            echo "[device] this machine has no GPU: running on the CPU (GPU $GPU asked)"
        fi
    fi
}

# glue_recipe ALGO: when dataset names a task of the originals' GLUE table and its data is not the shipped
# synthetic set, set EPOCHS LR WD SEQ_LENGTH that are still unset from the table, and RECIPE_ARGS to the
# table's --train_example_num/--eval_example_num (put them before "$@" so that a flag given later wins).
glue_recipe() {
    local line key
    RECIPE_ARGS=()
    while IFS= read -r line; do
        key=${line%%=*}
        case $key in
            TRAIN_EXAMPLE_NUM) RECIPE_ARGS+=(--train_example_num "${line#*=}") ;;
            EVAL_EXAMPLE_NUM) RECIPE_ARGS+=(--eval_example_num "${line#*=}") ;;
            *) if [ -z "${!key:-}" ]; then printf -v "$key" '%s' "${line#*=}"; fi ;;
        esac
    done < <("$PYTHON" model_compress/recipes/glue_tasks.py shell "$1" "$dataset" "$DATA_ROOT/$dataset")
    if [ ${#RECIPE_ARGS[@]} -gt 0 ]; then
        echo "[recipe] $dataset, $1: the originals' GLUE table gives what is unset: epochs ${EPOCHS}," \
            "lr ${LR}, weight decay ${WD}, seq ${SEQ_LENGTH}, examples ${RECIPE_ARGS[1]}/${RECIPE_ARGS[3]}"
    fi
}

# model_id ALGO key=value...: the originals' model id (formats in model_compress/recipes/glue_tasks.py).
model_id() {
    "$PYTHON" model_compress/recipes/glue_tasks.py id "$@"
}

# named_dir VAR BASE ID LINK: unless VAR is set, VAR=BASE/ID, and after training (link_named) BASE/LINK
# points at it, so that the id-less defaults (the other scripts' FT_BERT_BASE_DIR, the evaluation scripts
# run without arguments) find the newest run.
named_dir() {
    NAMED_LINK=""
    if [ -z "${!1:-}" ]; then
        printf -v "$1" '%s' "$2/$3"
        NAMED_LINK="$2/$4"
        NAMED_TARGET=$3
    fi
}

link_named() {
    [ -n "${NAMED_LINK:-}" ] || return 0
    if [ -e "$NAMED_LINK" ] && [ ! -L "$NAMED_LINK" ]; then
        echo "[model id] $NAMED_LINK is a folder of an earlier run: left as it is (the new one is $NAMED_TARGET)"
        return 0
    fi
    ln -sfn "$NAMED_TARGET" "$NAMED_LINK.tmp-link"
    mv -Tf "$NAMED_LINK.tmp-link" "$NAMED_LINK"
    echo "[model id] $NAMED_LINK -> $NAMED_TARGET"
}

# id_dir VAR BASE: with MODEL_ID (the evaluation scripts' third argument) VAR=BASE/MODEL_ID, which must exist.
id_dir() {
    [ -n "${MODEL_ID:-}" ] || return 0
    [[ "$MODEL_ID" != */* && "$MODEL_ID" != . && "$MODEL_ID" != .. ]] || die "model id '$MODEL_ID' is not a folder name"
    if [ ! -d "$2/$MODEL_ID" ]; then
        local known
        known=$({ ls -1 "$2" 2> /dev/null || true; } | head -n 8 | paste -sd, - | sed 's/,/, /g')
        die "no model '$MODEL_ID' in $2/ (known: ${known:-none})"
    fi
    printf -v "$1" '%s' "$2/$MODEL_ID"
}
