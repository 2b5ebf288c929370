#!/usr/bin/env bash
# Download the GLUE tasks (seed: run_download_glue_data.sh) into data/glue_data/<TASK>, verified and unpacked
# safely; an interrupted download resumes. Offline: one line naming what could not be fetched, exit code 2.
#   bash run_scripts/run_download_glue_data.sh [--data_dir data/glue_data] [--tasks all|CoLA,SST-2,...]
#       [--from_dir DIR (archives fetched by hand)] [--force (replace task folders already there)]
# Archives and checksums: models/glue_manifest.json. Then build the OFRecords: bash run_scripts/glue_process.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
exec "$PYTHON" -m model_compress.commands.glue_data download "$@"
