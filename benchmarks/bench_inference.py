"""Teacher vs student inference: OneFlow nn.Graph, ONNX fp32, ONNX int8 dynamic and int8 static.

For each (sequence length, batch size) cell every variant (teacher and student, each through OneFlow,
onnxruntime fp32 and the two int8 files) is timed interleaved on the same batch, round after round, so
load from other processes hits all of them alike. samples/s is the median over the rounds, speed-ups are
medians of per-round ratios, and at batch 1 the per-call latency's p50/p99 are printed too. The ONNX
graphs are the ones `python -m model_compress.export --format onnx [--quantize int8]` writes, built
from the same weights (the int8 files by onnxruntime's quantization tools, `serving/quantize.py`, static
calibrated on `--calibration_data` training rows).

By default the teacher is the default model's shape (6 layers, 384 wide) and the student keeps 3 of
its layers; pass --teacher/--student snapshot dirs to measure real ones, and --dev_data folders
(SST-2 layout) to also print each variant's dev accuracy there (meaningful for trained snapshots).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from model_compress.runtime import require_oneflow  # noqa: E402

flow = require_oneflow()
import numpy as np  # noqa: E402

from model_compress.modeling.checkpoint import module_state_numpy  # noqa: E402
from model_compress.modeling.config import BertConfig  # noqa: E402
from model_compress.modeling.pretrained import default_pretrained_dir  # noqa: E402
from model_compress.serving.gate import batched_logits  # noqa: E402
from model_compress.serving.onnx_graph import build_classifier_onnx, save_onnx  # noqa: E402
from model_compress.serving.quantize import QuantizeSettings, parse_keep_float, quantize_onnx  # noqa: E402
from model_compress.serving.runners import OneFlowRunner, OnnxRunner, encode_examples  # noqa: E402
from model_compress.serving.servable import build_oneflow_model, load_servable  # noqa: E402
from model_compress.serving.speed import interleaved_throughput  # noqa: E402

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
BACKENDS = ("oneflow", "onnx fp32", "int8 dynamic", "int8 static")


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


def encoded_split(folder: str, split: str, tokenizer, seq: int, limit: int = 0):
    """(encoded rows, label ids) of ``folder``/<split>.tsv read as SST-2."""
    from model_compress.data.processors import get_processor

    processor = get_processor("sst-2")
    examples = processor.get_examples(folder, split)
    examples = examples[:limit] if limit else examples
    labels = np.array([processor.get_labels().index(ex.label) for ex in examples if ex.label is not None])
    return encode_examples(examples, tokenizer, seq), labels


def make_variants(role: str, snapshot: str | None, layers: int, workdir: str, calibration, settings: dict,
                  threads: int) -> dict:
    """{"<role> <backend>": runner} for the four backends, the int8 files quantized from the fp32 one."""
    model, state, config = build(snapshot, layers)
    fp32 = os.path.join(workdir, f"{role}.onnx")
    save_onnx(build_classifier_onnx(state, config), fp32)
    runners = {f"{role} oneflow": OneFlowRunner(model), f"{role} onnx fp32": OnnxRunner(fp32, threads=threads)}
    for mode in ("dynamic", "static"):
        path = os.path.join(workdir, f"{role}.int8-{mode}.onnx")
        report = quantize_onnx(fp32, path, QuantizeSettings(mode, **settings), calibration)
        runners[f"{role} int8 {mode}"] = OnnxRunner(path, threads=threads)
        print(f"{role} {report.describe()}")
    print(f"{role}: {config.num_hidden_layers} layers, hidden {config.hidden_size}")
    return runners


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--teacher", default=None, help="teacher snapshot (default: random 6-layer MiniLM shape)")
    parser.add_argument("--student", default=None, help="student snapshot (default: random 3-layer)")
    parser.add_argument("--seq_lengths", default="64,128")
    parser.add_argument("--batch_sizes", default="1,32")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds per cell (median reported)")
    parser.add_argument("--latency_rounds", type=int, default=200, help="rounds at batch 1 (p50/p99 latency)")
    parser.add_argument("--ort_threads", type=int, default=0, help="onnxruntime intra-op threads (0: its default)")
    parser.add_argument("--calibration_data", default=os.path.join(REPO, "data", "glue_data", "SST-2"),
                        help="folder whose train.tsv rows calibrate the static int8 files")
    parser.add_argument("--calibration_rows", type=int, default=256)
    parser.add_argument("--keep_float", default=None, help="parts left in float (serving/quantize.py)")
    parser.add_argument("--per_channel", type=int, default=1, help="1: per-channel int8 weight scales")
    parser.add_argument("--dev_data", action="append", default=[],
                        help="SST-2-layout folder: print every variant's dev accuracy on it (repeatable)")
    parser.add_argument("--dev_seq_length", type=int, default=64)
    args = parser.parse_args()

    from model_compress.data.tokenization import FullTokenizer

    vocab = os.path.join(args.student, "vocab.txt") if args.student else ""
    tokenizer = FullTokenizer(vocab if os.path.isfile(vocab) else os.path.join(default_pretrained_dir(), "vocab.txt"))
    longest = max(map(int, args.seq_lengths.split(",")))
    calibration, _ = encoded_split(args.calibration_data, "train", tokenizer, longest, args.calibration_rows)
    settings = {"per_channel": bool(args.per_channel), "keep_float": parse_keep_float(args.keep_float)}
    workdir = tempfile.mkdtemp(prefix="bench_inference-")
    runners = {}
    for role, snapshot, layers in (("teacher", args.teacher, 6), ("student", args.student, 3)):
        runners.update(make_variants(role, snapshot, layers, workdir, calibration, settings, args.ort_threads))
    import onnxruntime as ort

    threads = args.ort_threads or "default (= physical cores)"
    print(f"CPU: {cpu_name()}, {os.cpu_count()} logical cores; onnxruntime {ort.__version__}, intra-op threads "
          f"{threads}; {args.rounds} interleaved rounds per cell ({args.latency_rounds} at batch 1), medians")

    for folder in args.dev_data:
        inputs, labels = encoded_split(folder, "dev", tokenizer, args.dev_seq_length)
        print(f"\ndev accuracy on {folder} ({len(labels)} rows, seq {args.dev_seq_length}):")
        for name, runner in runners.items():
            logits = batched_logits(runner, inputs, 32)
            print(f"  {name:<22} {100 * float(np.mean(logits.argmax(-1) == labels)):6.2f}", flush=True)

    header = (f"\n{'seq':>4} {'batch':>5} {'model':<22} {'samples/s':>10} {'x fp32 ONNX':>11} {'x OneFlow':>9} "
              f"{'p50 ms':>7} {'p99 ms':>7}")
    print(header)
    print("-" * len(header))
    rs = np.random.RandomState(0)
    for seq in map(int, args.seq_lengths.split(",")):
        for batch in map(int, args.batch_sizes.split(",")):
            inputs = (rs.randint(1000, 30000, (batch, seq)), np.ones((batch, seq), np.int64),
                      np.zeros((batch, seq), np.int64))
            calls = {name: (lambda r=runner, x=inputs: r(*x)) for name, runner in runners.items()}
            rounds = args.latency_rounds if batch == 1 else args.rounds
            t = interleaved_throughput(calls, batch, rounds=rounds, warmup=2)
            for name in runners:
                role = name.split()[0]
                ms = [1000 * s for s in t.seconds[name]]
                latency = (f"{statistics.median(ms):>7.2f} {percentile(ms, 99):>7.2f}" if batch == 1 else "")
                print(f"{seq:>4} {batch:>5} {name:<22} {t.samples_per_second(name):>10.1f} "
                      f"{t.speedup(name, f'{role} onnx fp32'):>10.2f}x {t.speedup(name, f'{role} oneflow'):>8.2f}x "
                      f"{latency}", flush=True)
            print(f"{seq:>4} {batch:>5} student/teacher: " + ", ".join(
                f"{b} {t.speedup(f'student {b}', f'teacher {b}'):.2f}x" for b in BACKENDS), flush=True)


if __name__ == "__main__":
    main()
