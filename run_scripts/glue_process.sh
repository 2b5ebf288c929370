#!/usr/bin/env bash
# Build the train/dev OFRecord splits of the downloaded GLUE tasks (seed: glue_process.sh), where the
# training scripts read them again (<data_dir>/<TASK>/ofrecord/; reused while seq length and vocab match).
#   bash run_scripts/glue_process.sh [--data_dir data/glue_data] [--tasks all|CoLA,SST-2,...]
#       [--seq_length 128] [--model_load_dir default] [--vocab_file FILE] [--resave_ofrecord]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
exec "$PYTHON" -m model_compress.commands.glue_data process "$@"
