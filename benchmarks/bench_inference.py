"""Teacher vs student inference throughput through OneFlow nn.Graph and through onnxruntime.

For each (sequence length, batch size) cell the four runs (teacher and student, each on both
backends) are timed interleaved on the same batch, round after round, and every figure is a median
over the rounds (speed-ups: median of the per-round ratios), so load from other processes hits all
four alike. The ONNX graph is the one `python -m model_compress.export --format onnx` writes, built
in memory from the same weights.

By default the teacher is the default model's shape (6 layers, 384 wide) and the student keeps 3 of
its layers (the shape of the demo's distilled student); pass --teacher/--student snapshot dirs to measure real ones.
The ideal speed-up is the layer ratio; embeddings, pooler and per-call overhead keep it lower.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from model_compress.runtime import require_oneflow  # noqa: E402

flow = require_oneflow()
import numpy as np  # noqa: E402

from model_compress.modeling.checkpoint import module_state_numpy  # noqa: E402
from model_compress.modeling.config import BertConfig  # noqa: E402
from model_compress.serving.export import build_oneflow_model, load_servable  # noqa: E402
from model_compress.serving.onnx_graph import build_classifier_onnx  # noqa: E402
from model_compress.serving.runners import OneFlowRunner, OnnxRunner  # noqa: E402
from model_compress.serving.speed import interleaved_throughput  # noqa: E402


def build(snapshot: str | None, layers: int):
    """(OneFlow model, state, config): a snapshot's classifier, or a random one of the default shape."""
    if snapshot:
        servable = load_servable(snapshot)
        return build_oneflow_model(servable.state, servable.config), servable.state, servable.config
    from model_compress.modeling.bert import BertForSequenceClassification

    config = BertConfig(hidden_size=384, num_hidden_layers=layers, num_attention_heads=12, intermediate_size=1536,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = BertForSequenceClassification(config).eval()
    return model, module_state_numpy(model), config


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--teacher", default=None, help="teacher snapshot (default: random 6-layer MiniLM shape)")
    parser.add_argument("--student", default=None, help="student snapshot (default: random 3-layer)")
    parser.add_argument("--seq_lengths", default="64,128")
    parser.add_argument("--batch_sizes", default="1,32")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds per cell (median reported)")
    parser.add_argument("--ort_threads", type=int, default=0, help="onnxruntime intra-op threads (0: its default)")
    args = parser.parse_args()

    runners = {}
    for role, snapshot, layers in (("teacher", args.teacher, 6), ("student", args.student, 3)):
        model, state, config = build(snapshot, layers)
        runners[f"{role} oneflow"] = OneFlowRunner(model)
        runners[f"{role} onnxruntime"] = OnnxRunner(build_classifier_onnx(state, config), threads=args.ort_threads)
        print(f"{role}: {config.num_hidden_layers} layers, hidden {config.hidden_size}")
    print(f"CPU: {cpu_name()}, {os.cpu_count()} logical cores; {args.rounds} interleaved rounds per cell, medians")
    header = (f"{'seq':>4} {'batch':>5} | {'OneFlow teacher/s':>17} {'student/s':>9} {'speed-up':>8} | "
              f"{'ORT teacher/s':>13} {'student/s':>9} {'speed-up':>8} | {'student ORT/OneFlow':>19}")
    print(header)
    print("-" * len(header))
    rs = np.random.RandomState(0)
    for seq in map(int, args.seq_lengths.split(",")):
        for batch in map(int, args.batch_sizes.split(",")):
            inputs = (rs.randint(1000, 30000, (batch, seq)), np.ones((batch, seq), np.int64),
                      np.zeros((batch, seq), np.int64))
            calls = {name: (lambda r=runner, x=inputs: r(*x)) for name, runner in runners.items()}
            t = interleaved_throughput(calls, batch, rounds=args.rounds)
            rate = t.samples_per_second
            print(f"{seq:>4} {batch:>5} | {rate('teacher oneflow'):>17.1f} {rate('student oneflow'):>9.1f} "
                  f"{t.speedup('student oneflow', 'teacher oneflow'):>7.2f}x | "
                  f"{rate('teacher onnxruntime'):>13.1f} {rate('student onnxruntime'):>9.1f} "
                  f"{t.speedup('student onnxruntime', 'teacher onnxruntime'):>7.2f}x | "
                  f"{t.speedup('student onnxruntime', 'student oneflow'):>18.2f}x", flush=True)


if __name__ == "__main__":
    main()
