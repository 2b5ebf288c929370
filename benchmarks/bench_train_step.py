"""Train-step throughput of the default model shape (MiniLM-L6: 6 layers, 384 wide) on this machine.

Prints samples/s for nn.Graph and eager, batch 32, seq 64 by default, with the word embeddings trained
and, with --freeze_word_embeddings, fixed. Run the script under different environment variables
(e.g. ONEFLOW_ENABLE_ONEDNN_OPTS=1) to measure the runtime defaults.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from model_compress.runtime import require_oneflow  # noqa: E402

flow = require_oneflow()
import numpy as np  # noqa: E402

from model_compress.modeling.bert import BertForSequenceClassification  # noqa: E402
from model_compress.modeling.config import BertConfig  # noqa: E402
from model_compress.training.graph import make_train_step  # noqa: E402
from model_compress.training.objectives import ClassificationObjective  # noqa: E402
from model_compress.training.optim import build_optimizer, build_scheduler, freeze_word_embeddings  # noqa: E402


def measure(eager: bool, fused: bool, batch: int, seq: int, layers: int, steps: int, frozen: bool) -> float:
    config = BertConfig(hidden_size=384, num_hidden_layers=layers, num_attention_heads=12, intermediate_size=1536)
    flow.manual_seed(0)
    objective = ClassificationObjective(BertForSequenceClassification(config))
    if frozen:
        freeze_word_embeddings(objective)
    optimizer = build_optimizer(objective, 2e-5, fused=fused)
    step = make_train_step(objective, optimizer, build_scheduler(optimizer, 1000), eager=eager)
    rs = np.random.RandomState(0)
    inputs = [
        flow.tensor(rs.randint(1000, 30000, (batch, seq)).astype(np.int32)),
        flow.tensor(np.ones((batch, seq), np.int32)),
        flow.tensor(np.zeros((batch, seq), np.int32)),
        flow.tensor(rs.randint(0, 2, (batch, 1)).astype(np.int32)),
    ]
    for _ in range(2):  # compile / warm up
        step(*inputs)[0].numpy()
    start = time.perf_counter()
    for _ in range(steps):
        step(*inputs)[0].numpy()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--modes", default="graph,graph-unfused,eager")
    parser.add_argument("--freeze_word_embeddings", action="store_true", help="also time with them fixed")
    args = parser.parse_args()
    env = {k: os.environ.get(k, "-") for k in ("ONEFLOW_ENABLE_ONEDNN_OPTS", "OPENBLAS_CORETYPE", "OMP_NUM_THREADS")}
    print(f"env {env}  batch {args.batch} seq {args.seq} layers {args.layers}")
    for frozen in (False, True) if args.freeze_word_embeddings else (False,):
        for mode in args.modes.split(","):
            eager = mode == "eager"
            fused = mode == "graph"
            seconds = measure(eager, fused, args.batch, args.seq, args.layers, args.steps, frozen)
            label = mode + (" frozen-emb" if frozen else "")
            print(f"{label:25s} {seconds:6.3f} s/step  {args.batch / seconds:7.1f} samples/s")


if __name__ == "__main__":
    main()
