"""Compare finished runs from their results_eval.json files: accuracy, size, speed.

    python -m model_compress.commands.report teacher=output/demo/teacher tinybert=output/demo/student_tinybert ...
    python -m model_compress.commands.report --speed_rounds 7 --onnx tinybert=output/demo/student_tinybert_onnx \
        teacher=output/demo/teacher tinybert=output/demo/student_tinybert

The first run is the reference for the speed-up column. By default the speed column is each run's own
eval throughput; with `--speed_rounds N` the runs' snapshots are instead timed interleaved on the same
batch (the eval batch size and sequence length of the first run), N rounds, medians, so machine load
cannot favour one run. `--onnx NAME=EXPORT` also times run NAME's exported ONNX model through
onnxruntime in the same rounds and prints it beside the OneFlow figure; it may be repeated for one run
(e.g. its fp32 and int8 exports: an int8 export also prints the dev accuracies of its accuracy gate).
"""

from __future__ import annotations

import argparse
import json
import os

from model_compress.cli import user_errors
from model_compress.errors import RecipeError


def load_result(directory: str) -> dict:
    path = directory if directory.endswith(".json") else os.path.join(directory, "results_eval.json")
    if not os.path.isfile(path):
        raise RecipeError(f"{path} not found (did that run finish?)")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def format_table(rows: list[tuple[str, dict]], speedups: dict[str, float] | None = None,
                 speed_label: str = "eval samples/s") -> str:
    """A fixed-width table (the name column as wide as the longest name); speed-up is relative to the first
    row's eval throughput unless given."""
    reference = rows[0][1].get("eval_samples_per_second") or 0.0
    width = max(24, *(len(name) for name, _ in rows))
    header = f"{'model':<{width}} {'dev acc':>8} {'params':>12} {'MiB':>8} {speed_label:>15} {'speed-up':>9}"
    lines = [header, "-" * len(header)]
    for name, r in rows:
        sps = r.get("eval_samples_per_second", 0.0)
        ratio = speedups[name] if speedups else (sps / reference if reference else None)
        speed = f"{ratio:.2f}x" if ratio else "-"
        lines.append(f"{name:<{width}} {r['accuracy']:>8.4f} {r['parameters']:>12,} {r['model_size_mib']:>8.1f} "
                     f"{sps:>15.1f} {speed:>9}")
    return "\n".join(lines)


def onnx_label(name: str, path: str) -> str:
    """The timing label of run ``name``'s export at ``path`` (int8 exports are marked)."""
    from model_compress.serving.quantize import read_quantization

    return f"{name} [onnxruntime{' int8' if read_quantization(path) else ''}]"


def measure_interleaved(rows: list[tuple[str, dict]], onnx: list[tuple[str, str]], rounds: int):
    """Time every run's snapshot (OneFlow nn.Graph) and the given ONNX exports on one shared batch."""
    import numpy as np

    from model_compress.serving import ServingError
    from model_compress.serving.runners import open_classifier
    from model_compress.serving.speed import interleaved_throughput

    flags = rows[0][1].get("flags", {})
    batch, seq = int(flags.get("eval_batch_size_per_device") or 64), int(flags.get("seq_length") or 128)
    rs = np.random.RandomState(0)
    inputs = {"input_ids": rs.randint(1000, 20000, (batch, seq)), "attention_mask": np.ones((batch, seq), np.int64),
              "token_type_ids": np.zeros((batch, seq), np.int64)}
    models = {}
    try:
        for name, result in rows:
            models[name] = open_classifier(result["snapshot"], "oneflow")
        for name, path in onnx:
            models[onnx_label(name, path)] = open_classifier(path, "onnxruntime")
    except ServingError as exc:
        raise RecipeError(str(exc)) from None
    calls = {name: (lambda m=model: m(inputs)) for name, model in models.items()}
    return interleaved_throughput(calls, batch, rounds=rounds), batch, seq


@user_errors
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Compare finished runs (results_eval.json).", allow_abbrev=False)
    parser.add_argument("runs", nargs="+", metavar="NAME=DIR", help="run directories; the first is the reference")
    parser.add_argument("--speed_rounds", type=int, default=0,
                        help="time the snapshots interleaved for N rounds instead of using eval throughput")
    parser.add_argument("--onnx", action="append", default=[], metavar="NAME=EXPORT",
                        help="with --speed_rounds: also time run NAME's ONNX export through onnxruntime")
    args = parser.parse_args(argv)
    rows = []
    for item in args.runs:
        name, _, directory = item.partition("=")
        rows.append((name, load_result(directory or name)))
    onnx = [tuple(item.partition("=")[::2]) for item in args.onnx]
    unknown = [name for name, _ in onnx if name not in dict(rows)]
    if unknown:
        raise RecipeError(f"--onnx names {unknown} are not among the runs {[n for n, _ in rows]}")
    if args.speed_rounds <= 0:
        print(format_table(rows))
        return
    timing, batch, seq = measure_interleaved(rows, onnx, args.speed_rounds)
    reference = rows[0][0]
    measured = [(name, {**r, "eval_samples_per_second": timing.samples_per_second(name)}) for name, r in rows]
    print(format_table(measured, {name: timing.speedup(name, reference) for name, _ in rows}, "samples/s"))
    print(f"samples/s: OneFlow nn.Graph, batch {batch} x seq {seq}, median of {timing.rounds} interleaved rounds; "
          "speed-up: median of the per-round ratios")
    from model_compress.serving.quantize import read_quantization

    for name, path in onnx:
        ort = onnx_label(name, path)
        record = read_quantization(path)
        kind = "int8 ONNX" if record else "ONNX"
        print(f"{name} exported to {kind}, onnxruntime: {timing.samples_per_second(ort):.1f} samples/s beside "
              f"OneFlow's {timing.samples_per_second(name):.1f} ({timing.speedup(ort, name):.2f}x; "
              f"{timing.speedup(ort, reference):.2f}x the OneFlow {reference})")
        if record:
            gate = record["gate"]
            print(f"    its dev accuracy {gate['int8_accuracy']:.4f} beside the fp32 export's "
                  f"{gate['fp32_accuracy']:.4f} ({gate['rows']} rows of the accuracy gate; "
                  f"predictions agree on {100 * gate['agreement']:.1f}%)")


if __name__ == "__main__":
    main()
