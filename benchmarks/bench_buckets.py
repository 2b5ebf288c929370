"""Length buckets against padding every batch to --seq_length: one teacher or student epoch, timed and scored.

    flock /tmp/mc_heavy.lock .venv/bin/python benchmarks/bench_buckets.py --data_dir /path/SST-2 \
        --seq_length 64 --seeds 1,2,3 --out /tmp/bench_buckets [--reference_python .venv-reference/bin/python]
    flock /tmp/mc_heavy.lock .venv/bin/python benchmarks/bench_buckets.py --data_dir /path/SST-2 \
        --recipe tinybert --teacher_model /tmp/bench_buckets/teacher-auto-seed1/snapshot_best --seeds 1 ...

Prints the token-length histogram of the training split (the toolkit's tokenizer), then runs the
default teacher recipe (all-MiniLM-L6-v2 fine-tuning, batch 32, one epoch, one process) with
``--length_buckets none`` and ``auto`` for every seed, the two arms interleaved (order alternating per
seed), each in a fresh process. An epoch's time is the training loop's own clock (graph compilation
included, the dev evaluation at its end excluded); the dev accuracy is that evaluation. With
``--reference_python`` the PyTorch reference (benchmarks/reference/hf_finetune.py, same batch, one
epoch) runs too, padded to --seq_length and with a dynamic-padding collator. Results: a markdown table
on stdout and ``<out>/results.json``.

``--recipe tinybert`` times a student distillation epoch instead: TinyBERT step 1 (attention and hidden
states of every student layer against the mapped teacher layers, teacher forward online) from
--teacher_model into a student of its layers 1,3,5; it has no dev evaluation, so only the time is compared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)


def one_run(args: argparse.Namespace) -> None:
    """One epoch of the recipe in this process; prints one JSON line."""
    from model_compress import cli

    argv = ["--task_name", args.task_name, "--data_dir", args.data_dir, "--seq_length", str(args.seq_length),
            "--num_epochs", "1", "--batch_size_per_device", str(args.batch_size), "--seed", str(args.seed),
            "--length_buckets", args.length_buckets, "--model_save_dir", args.run_dir, "--do_train"]
    if args.recipe == "tinybert":
        from model_compress.recipes import tinybert

        parsed = cli.normalise_aliases(tinybert.build_parser().parse_args(
            [*argv, "--teacher_model", args.teacher_model, "--layer_list", "1,3,5", "--intermediate_distill", "true",
             "--pred_distill", "false"]))
        loop, dev = tinybert.run(parsed)["intermediate"], None
    else:
        from model_compress.recipes import teacher

        loop = teacher.run(cli.normalise_aliases(teacher.build_parser().parse_args(argv)))["train"]
        dev = loop.best_score
    print("RESULT " + json.dumps({"buckets": args.length_buckets, "seed": args.seed, "steps": loop.steps,
                                  "train_seconds": round(loop.train_seconds, 1), "dev_accuracy": dev}), flush=True)


def length_histogram(data_dir: str, task_name: str, seq_length: int) -> dict:
    """Token counts of the training split with the toolkit's tokenizer, and what buckets would pad."""
    import numpy as np

    from model_compress.data import buckets
    from model_compress.modeling.resolve import resolve_model
    from model_compress.recipes.common import find_vocab, load_task_data
    from model_compress.recipes.settings import DataSettings

    model_dir = resolve_model("default")
    data = load_task_data(DataSettings(task_name, data_dir, seq_length), find_vocab(model_dir, None), ("train",),
                          model_dir=model_dir)
    loader = data.loader("train", 32, train=False, seed=0, bucketed=False)
    lengths = buckets.token_lengths(loader.arrays["input_mask"])
    bounds = buckets.choose_bounds(lengths, seq_length)
    ids = buckets.bucket_ids(lengths, bounds)
    edges = list(range(0, seq_length + 8, 8))
    counts, _ = np.histogram(lengths, bins=[e + 0.5 for e in edges])
    return {
        "records": int(len(lengths)), "mean": float(lengths.mean()), "median": float(np.median(lengths)),
        "p90": float(np.percentile(lengths, 90)), "max": int(lengths.max()),
        "truncated": int((lengths >= seq_length).sum()),
        "histogram": {f"{lo + 1}-{hi}": int(c) for lo, hi, c in zip(edges[:-1], edges[1:], counts)},
        "auto_bounds": list(bounds), "per_bucket": np.bincount(ids, minlength=len(bounds)).tolist(),
        "real_token_share_padded": float(lengths.sum() / (len(lengths) * seq_length)),
        "real_token_share_bucketed": float(lengths.sum() / np.asarray(bounds)[ids].sum()),
    }


def run_arm(args: argparse.Namespace, buckets: str, seed: int) -> dict:
    run_dir = os.path.join(args.out, f"{args.recipe}-{buckets}-seed{seed}")
    cmd = [sys.executable, os.path.abspath(__file__), "--one_run", "--data_dir", args.data_dir,
           "--task_name", args.task_name, "--seq_length", str(args.seq_length), "--batch_size",
           str(args.batch_size), "--seed", str(seed), "--length_buckets", buckets, "--run_dir", run_dir,
           "--recipe", args.recipe, "--teacher_model", args.teacher_model or ""]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    with open(run_dir + ".log", "w", encoding="utf-8") as f:
        f.write(proc.stdout + proc.stderr)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}); see {run_dir}.log")
    result = {**json.loads(lines[-1][len("RESULT "):]), "wall_seconds": round(wall, 1)}
    print(f"[bench_buckets] {result}", flush=True)
    return result


def run_reference(args: argparse.Namespace, dynamic: bool, seed: int) -> dict:
    from model_compress.modeling.pretrained import default_pretrained_dir

    cmd = [args.reference_python, os.path.join(REPO_ROOT, "benchmarks", "reference", "hf_finetune.py"),
           "--data_dir", args.data_dir, "--model_dir", default_pretrained_dir(), "--seed", str(seed),
           "--epochs", "1", "--batch_size", str(args.batch_size), "--seq_length", str(args.seq_length),
           "--threads", str(args.reference_threads)] + (["--dynamic_padding"] if dynamic else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result = {"padding": "dynamic" if dynamic else "max", "seed": seed, "epoch_seconds": result["epoch_seconds"],
              "dev_accuracy": result["dev_accuracy"]}
    print(f"[bench_buckets] reference {result}", flush=True)
    return result


def _joined(rows: list[dict], key: str, fmt: str) -> str:
    return " / ".join("-" if r[key] is None else format(r[key], fmt) for r in rows)


def _mean(rows: list[dict], key: str) -> str:
    values = [r[key] for r in rows if r[key] is not None]
    return f"{statistics.mean(values):.4f}" if values else "-"


def summarise(runs: list[dict], refs: list[dict]) -> str:
    rows = ["| arm | epoch s (per seed) | median epoch s | dev accuracy (per seed) | mean dev acc |",
            "|---|---|---|---|---|"]
    medians = {}
    for arm in ("none", "auto"):
        mine = [r for r in runs if r["buckets"] == arm]
        if not mine:
            continue
        medians[arm] = statistics.median(r["train_seconds"] for r in mine)
        rows.append(f"| toolkit, --length_buckets {arm} | {_joined(mine, 'train_seconds', '.1f')} | "
                    f"{medians[arm]:.1f} | {_joined(mine, 'dev_accuracy', '.4f')} | {_mean(mine, 'dev_accuracy')} |")
    for padding in ("max", "dynamic"):
        mine = [r for r in refs if r["padding"] == padding]
        if mine:
            med = statistics.median(r["epoch_seconds"] for r in mine)
            medians[f"torch-{padding}"] = med
            rows.append(f"| PyTorch reference, padding {padding} | {_joined(mine, 'epoch_seconds', '.1f')} | "
                        f"{med:.1f} | {_joined(mine, 'dev_accuracy', '.4f')} | "
                        f"{statistics.mean(r['dev_accuracy'] for r in mine):.4f} |")
    if "none" in medians and "auto" in medians:
        rows.append(f"\nspeed-up of buckets: {medians['none'] / medians['auto']:.2f}x")
    if "auto" in medians and "torch-dynamic" in medians:
        rows.append(f"toolkit with buckets / PyTorch dynamic padding: {medians['auto'] / medians['torch-dynamic']:.2f}")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--task_name", default="SST-2")
    parser.add_argument("--seq_length", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--out", default="bench_buckets_out")
    parser.add_argument("--arms", default="none,auto", help="toolkit arms (--length_buckets values)")
    parser.add_argument("--recipe", choices=("teacher", "tinybert"), default="teacher",
                        help="teacher: fine-tuning epoch of the default model; tinybert: a step-1 distillation epoch")
    parser.add_argument("--teacher_model", default=None, help="the fine-tuned teacher of --recipe tinybert")
    parser.add_argument("--reference_python", default=None, help="python of .venv-reference (PyTorch runs)")
    parser.add_argument("--reference_seeds", default=None, help="seeds of the PyTorch runs (default: --seeds)")
    parser.add_argument("--reference_threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--skip_toolkit", action="store_true", help="only the histogram and the reference")
    parser.add_argument("--one_run", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--length_buckets", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--run_dir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.recipe == "tinybert" and not args.teacher_model:
        parser.error("--recipe tinybert needs --teacher_model (e.g. a teacher run's snapshot_best)")
    if args.one_run:
        one_run(args)
        return
    os.makedirs(args.out, exist_ok=True)
    import platform

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    print(f"[bench_buckets] CPU: {cpu}, {os.cpu_count()} cores", flush=True)
    histogram = length_histogram(args.data_dir, args.task_name, args.seq_length)
    print(f"[bench_buckets] token lengths at seq {args.seq_length}: {json.dumps(histogram)}", flush=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    ref_seeds = [int(s) for s in (args.reference_seeds or args.seeds).split(",")] if args.reference_python else []
    arms = args.arms.split(",")
    runs, refs = [], []

    def save() -> str:  # after every run, so an interrupted benchmark still leaves its figures
        table = summarise(runs, refs)
        with open(os.path.join(args.out, "results.json"), "w", encoding="utf-8") as f:
            json.dump({"cpu": cpu, "recipe": args.recipe, "seq_length": args.seq_length, "batch_size": args.batch_size,
                       "histogram": histogram, "runs": runs, "reference": refs, "table": table}, f, indent=2)
        return table

    # per seed: the toolkit's arms, then the reference's (orders alternating), so every seed's figures
    # come from the same stretch of time
    for i, seed in enumerate(sorted(set(seeds) | set(ref_seeds), key=lambda s: (seeds + ref_seeds).index(s))):
        if seed in seeds and not args.skip_toolkit:
            for arm in (arms if i % 2 == 0 else arms[::-1]):
                runs.append(run_arm(args, arm, seed))
                save()
        if seed in ref_seeds:
            for dynamic in ((False, True) if i % 2 == 0 else (True, False)):
                refs.append(run_reference(args, dynamic, seed))
                save()
    print(save())


if __name__ == "__main__":
    main()
