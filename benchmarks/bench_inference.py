"""Teacher vs student inference throughput with nn.Graph, over sequence lengths and batch sizes.

By default the teacher is the default model's shape (6 layers, 384 wide) and the student keeps 3 of
its layers (the demo's BERT-PKD student); pass --teacher/--student snapshot dirs to measure real ones.
The ideal speed-up is the layer ratio; embeddings, pooler and per-call overhead keep it lower.
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
from model_compress.training.graph import make_eval_step  # noqa: E402
from model_compress.training.objectives import ClassifierLogits  # noqa: E402


def build(snapshot: str | None, layers: int) -> BertForSequenceClassification:
    if snapshot:
        from model_compress.jobs.common import load_classifier

        return load_classifier(snapshot, 2, verbose=False)[0]
    config = BertConfig(hidden_size=384, num_hidden_layers=layers, num_attention_heads=12, intermediate_size=1536)
    return BertForSequenceClassification(config)


def samples_per_second(model, batch: int, seq: int, seconds: float) -> float:
    step = make_eval_step(ClassifierLogits(model))
    rs = np.random.RandomState(0)
    inputs = [flow.tensor(rs.randint(1000, 30000, (batch, seq)).astype(np.int32)),
              flow.ones(batch, seq, dtype=flow.int32), flow.zeros(batch, seq, dtype=flow.int32)]
    step(*inputs).numpy()  # compile
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or runs < 3:
        step(*inputs).numpy()
        runs += 1
    return runs * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--teacher", default=None, help="teacher snapshot (default: random 6-layer MiniLM shape)")
    parser.add_argument("--student", default=None, help="student snapshot (default: random 3-layer)")
    parser.add_argument("--seq_lengths", default="32,64,128")
    parser.add_argument("--batch_sizes", default="1,8,32")
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per cell")
    args = parser.parse_args()
    teacher, student = build(args.teacher, 6).eval(), build(args.student, 3).eval()
    ideal = teacher.config.num_hidden_layers / student.config.num_hidden_layers
    print(f"teacher {teacher.config.num_hidden_layers} layers, student {student.config.num_hidden_layers} layers, "
          f"hidden {teacher.config.hidden_size}/{student.config.hidden_size}; ideal speed-up {ideal:.2f}x")
    print(f"{'seq':>4} {'batch':>5} {'teacher/s':>10} {'student/s':>10} {'speed-up':>9}")
    for seq in map(int, args.seq_lengths.split(",")):
        for batch in map(int, args.batch_sizes.split(",")):
            t = samples_per_second(teacher, batch, seq, args.seconds)
            s = samples_per_second(student, batch, seq, args.seconds)
            print(f"{seq:>4} {batch:>5} {t:>10.1f} {s:>10.1f} {s / t:>8.2f}x", flush=True)


if __name__ == "__main__":
    main()
