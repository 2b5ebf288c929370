"""Train-step throughput of MiniLM-shaped BERTs (384 wide, 12 heads) on this machine, with a roofline.

For every shape (layers x seq, batch 32 by default) it prints s/step, samples/s and the achieved GFLOP/s
of one optimizer step (forward + backward ~ 3x the forward's multiply-adds, 2 FLOP each), next to this
machine's sgemm peak measured with numpy on all cores, so that the ratio can be compared across machines.
Runs under `python -m oneflow.distributed.launch --nproc_per_node N` too (data parallel: each rank takes
batch/N rows of the same global batch). The CPU settings in force are printed first.

  .venv/bin/python benchmarks/bench_train_step.py                        # 6 layers, seq 64, nn.Graph
  .venv/bin/python benchmarks/bench_train_step.py --roofline             # 6/3 layers x seq 32/64/128
  .venv/bin/python benchmarks/bench_train_step.py --modes graph,graph-unfused,eager --freeze_word_embeddings
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from model_compress.runtime import require_oneflow  # noqa: E402

flow = require_oneflow()
import numpy as np  # noqa: E402

from model_compress.commands.runtime_probe import FFN, HIDDEN, train_step_seconds  # noqa: E402
from model_compress.runtime import blas  # noqa: E402
from model_compress.training import distributed  # noqa: E402


def train_step_gflop(layers: int, batch: int, seq: int, hidden: int = HIDDEN, ffn: int = FFN) -> float:
    """FLOP of one training step: 3 x 2 x the encoder's forward multiply-adds (projections, FFN, attention)."""
    per_token_per_layer = 4 * hidden * hidden + 2 * hidden * ffn + 2 * seq * hidden
    return 3 * 2 * per_token_per_layer * layers * batch * seq / 1e9


def numpy_sgemm_peak(size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of numpy's float32 matmul on all cores (its own multi-threaded BLAS): the roofline."""
    rs = np.random.RandomState(0)
    a, b = rs.randn(size, size).astype(np.float32), rs.randn(size, size).astype(np.float32)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def numpy_sgemm_peak_in_child() -> float:
    """numpy_sgemm_peak() in a plain python child (no OneFlow, no launcher variables)."""
    code = ("import time, numpy as np\n"
            "a = np.random.RandomState(0).randn(2048, 2048).astype(np.float32); b = a.T.copy(); a @ b\n"
            "best = min((lambda t: (a @ b, time.perf_counter() - t)[1])(time.perf_counter()) for _ in range(5))\n"
            "print(2 * 2048 ** 3 / best / 1e9)")
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "OMP_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return float(out.stdout.strip().splitlines()[-1])


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--batch", type=int, default=32, help="global batch size")
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--modes", default="graph-unfused",
                        help="comma list of graph (fused AdamW), graph-unfused, eager")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--amp", action="store_true", help="mixed precision in the graph modes (CUDA)")
    parser.add_argument("--roofline", action="store_true", help="every shape of 6/3 layers x seq 32/64/128")
    parser.add_argument("--freeze_word_embeddings", action="store_true", help="also time with them fixed")
    args = parser.parse_args()
    main_rank = distributed.rank() == 0
    shapes = [(layers, seq) for layers in (6, 3) for seq in (32, 64, 128)] if args.roofline \
        else [(args.layers, args.seq)]
    # numpy's BLAS threads keep spinning for a while after a product: measure the peak in a child process
    peak = numpy_sgemm_peak_in_child() if main_rank else float("nan")
    if main_rank:
        env = {k: os.environ.get(k, "-") for k in ("MODEL_COMPRESS_BLAS", "OPENBLAS_CORETYPE",
                                                  "ONEFLOW_ENABLE_ONEDNN_OPTS")}
        print(f"device {args.device}; env {env}; sgemm routed: {blas.routed() or 'no'}; "
              f"ranks {distributed.world_size()}; batch {args.batch}; numpy sgemm peak {peak:.1f} GFLOP/s")
        print(f"{'mode':24s} {'layers':>6s} {'seq':>4s} {'s/step':>7s} {'samples/s':>9s} {'GFLOP/s':>8s} "
              f"{'of peak':>7s}")
    for frozen in (False, True) if args.freeze_word_embeddings else (False,):
        for mode in args.modes.split(","):
            for layers, seq in shapes:
                seconds = train_step_seconds(flow, layers, args.batch, seq, args.steps, eager=mode == "eager",
                                             fused=mode == "graph", frozen=frozen, device=args.device,
                                             amp=args.amp and mode != "eager")
                gflops = train_step_gflop(layers, args.batch, seq) / seconds
                if main_rank:
                    label = mode + (" frozen-emb" if frozen else "") + (" amp" if args.amp and mode != "eager" else "")
                    print(f"{label:24s} {layers:6d} {seq:4d} {seconds:7.3f} {args.batch / seconds:9.1f} "
                          f"{gflops:8.1f} {gflops / peak:7.1%}", flush=True)


if __name__ == "__main__":
    main()
