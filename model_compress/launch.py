"""OneFlow's multi-process launcher, started through the toolkit's runtime set-up.

``python -m model_compress.launch --nproc_per_node N script.py ...`` takes exactly the flags of
``python -m oneflow.distributed.launch``; importing the toolkit first keeps OneFlow's import noise on
machines without a GPU or InfiniBand, and its thread banner, out of the output (``MODEL_COMPRESS_VERBOSE=1`` shows it).
"""

import os

import model_compress  # noqa: F401  (runtime set-up and the quiet oneflow import)

if __name__ == "__main__":
    # what the launcher sets anyway, given up front so it does not print its banner about it
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from oneflow.distributed.launch import main

    main()
