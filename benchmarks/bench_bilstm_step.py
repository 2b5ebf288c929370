"""Train-step time of the Distilled BiLSTM student (vanilla KD, nn.Graph) with either LSTM recurrence.

`fused` is OneFlow's fused LSTM op (what nn.LSTM runs; one process only), `unrolled` the step-by-step
recurrence of `model_compress.modeling.lstm.lstm_recurrence` (what runs on global tensors under the
launcher). In one process the recurrences are timed in alternating rounds of `--steps` steps each, so a
drift of the machine's speed hits both alike; it prints the median s/step of each and their ratio. Under
`python -m oneflow.distributed.launch --nproc_per_node N` only `unrolled` can run (data parallel: each
rank takes batch/N rows of the global batch).

  .venv/bin/python benchmarks/bench_bilstm_step.py                          # seq 64, batch 32, hidden 300
  .venv/bin/python benchmarks/bench_bilstm_step.py --recurrences unrolled --rounds 3
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

from model_compress.distill.objectives import VanillaKDObjective  # noqa: E402
from model_compress.modeling.config import LSTMConfig  # noqa: E402
from model_compress.modeling.lstm import DistilledBiLSTM, set_recurrence  # noqa: E402
from model_compress.training import distributed  # noqa: E402
from model_compress.training.graph import make_train_step  # noqa: E402
from model_compress.training.optim import build_optimizer, build_scheduler  # noqa: E402

RECURRENCES = ("fused", "unrolled")


def build_step(recurrence: str, config: LSTMConfig):
    """A compiled KD training step of a fresh student whose LSTM directions run `recurrence`."""
    flow.manual_seed(0)
    student = set_recurrence(DistilledBiLSTM(config), recurrence == "fused")
    objective = distributed.setup_model(VanillaKDObjective(student, temperature=1.0, alpha=0.7))
    optimizer = build_optimizer(objective, 1e-4)
    return make_train_step(objective, optimizer, build_scheduler(optimizer, 100000))


def batch(rows: int, seq: int, vocab: int, seed: int) -> list:
    """A rank's rows of a random batch (real lengths from 1 to seq) in the objective's input order."""
    rs = np.random.RandomState(seed)
    lengths = rs.randint(1, seq + 1, rows)
    arrays = (rs.randint(1, vocab, (rows, seq)).astype(np.int32),
              (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int32), np.zeros((rows, seq), np.int32),
              rs.randint(0, 2, (rows, 1)).astype(np.int32), rs.randn(rows, 2).astype(np.float32))
    return [distributed.shard_batch_tensor(flow.tensor(a)) for a in arrays]


def seconds_per_step(step, inputs: list, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        loss = step(*inputs)[0]
    distributed.to_local_numpy(loss)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--batch", type=int, default=32, help="global batch size")
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=300, help="LSTM units per direction (= embedding size)")
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--vocab", type=int, default=30522, help="word embedding rows (the teacher's vocabulary)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per recurrence")
    parser.add_argument("--recurrences", default=",".join(RECURRENCES), help="comma list of fused, unrolled")
    args = parser.parse_args()
    recurrences = [r for r in args.recurrences.split(",") if r]
    if not recurrences or set(recurrences) - set(RECURRENCES):
        parser.error(f"--recurrences: expected a comma list of {', '.join(RECURRENCES)}")
    if distributed.is_distributed() and "fused" in recurrences:
        recurrences.remove("fused")  # the fused op's backward fails on split global tensors
    if not recurrences:
        parser.error("--recurrences: only unrolled runs under the launcher")
    config = LSTMConfig(vocab_size=args.vocab, embedding_size=args.hidden, hidden_size=args.hidden,
                        num_layers=args.layers, max_seq_length=args.seq)
    inputs = batch(args.batch // distributed.world_size(), args.seq, args.vocab, distributed.rank())
    steps = {r: build_step(r, config) for r in recurrences}
    for step in steps.values():  # compile and warm up
        seconds_per_step(step, inputs, 2)
    times: dict[str, list[float]] = {r: [] for r in recurrences}
    for _ in range(args.rounds):
        for recurrence, step in steps.items():
            times[recurrence].append(seconds_per_step(step, inputs, args.steps))
    if distributed.rank() != 0:
        return
    print(f"ranks {distributed.world_size()}; batch {args.batch}; seq {args.seq}; hidden {args.hidden}; "
          f"layers {args.layers}; vocab {args.vocab}; {args.rounds} rounds of {args.steps} steps")
    for recurrence, values in times.items():
        median = float(np.median(values))
        print(f"{recurrence:9s} s/step median {median:.4f} (min {min(values):.4f}, max {max(values):.4f}); "
              f"{args.batch / median:.1f} samples/s")
    if len(times) == 2:
        ratios = [u / f for f, u in zip(times["fused"], times["unrolled"])]
        print(f"unrolled / fused per round: median {np.median(ratios):.2f} (min {min(ratios):.2f}, "
              f"max {max(ratios):.2f})")


if __name__ == "__main__":
    main()
