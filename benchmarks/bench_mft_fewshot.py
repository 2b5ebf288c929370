"""Few-shot test accuracy of MFT -> fine-tuning vs plain fine-tuning from the pretrained model.

For every K-shot seed (default 42, 21, 12; K=16) and one target domain (default SST-2):

  1. preprocess.py       prototypical scores on the g1 group (SST-2, MR, CR)
  2. meta_finetuning.py  meta learner from the default pretrained model
  3. finetuning.py       on the target domain, from the meta learner          -> "MFT -> FT"
  4. finetuning.py       on the target domain, from the pretrained model       -> "FT"

Both fine-tuning arms use identical flags; the snapshot is chosen on the target's dev split and the
full test split is reported. The runs are sequential subprocesses of the real entry scripts. The CSVs are
copied into --work_dir first, so OFRecord files and weight.npy are written there, not in the shared data.

    .venv/bin/python benchmarks/bench_mft_fewshot.py            # ~25 min on 2 shared CPU cores
    .venv/bin/python benchmarks/bench_mft_fewshot.py --reuse    # only print the table of finished runs
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MFT = os.path.join(REPO, "model_compress", "mft")
GROUP_DOMAINS = ("SST-2", "MR", "CR")


def ensure_data(data_root: str, work_data: str, target: str, k: int, seeds: list[int]) -> None:
    """Copy the g1 and target K-shot CSVs (generating the shipped data if absent) into the work dir."""
    if not os.path.isdir(os.path.join(data_root, "k-shot-cross", "g1")):
        print(f"[bench] {data_root} has no K-shot data: generating the shipped default data there")
        subprocess.run([sys.executable, "-m", "model_compress.data.synthetic", "--out", data_root], cwd=REPO,
                       check=True)
    for seed in seeds:
        for rel in (f"k-shot-cross/g1/{k}-{seed}", f"k-shot-single/{target}/{k}-{seed}"):
            dest = os.path.join(work_data, rel)
            os.makedirs(dest, exist_ok=True)
            for csv in glob.glob(os.path.join(data_root, rel, "*.csv")):
                shutil.copyfile(csv, os.path.join(dest, os.path.basename(csv)))


def run(script: str, flags: list[str], log: str) -> float:
    """Run one entry script to completion (output to `log`); return its wall time."""
    start = time.perf_counter()
    with open(log, "w") as out:
        done = subprocess.run([sys.executable, os.path.join(MFT, script), *flags], cwd=REPO, stdout=out,
                              stderr=subprocess.STDOUT)
    if done.returncode:
        raise SystemExit(f"{script} failed (exit {done.returncode}); see {log}")
    return time.perf_counter() - start


def read(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def one_seed(args, seed: int) -> dict:
    work = os.path.abspath(args.work_dir)
    cross = os.path.join(work, "data", "k-shot-cross", "g1", f"{args.k}-{seed}")
    single = os.path.join(work, "data", "k-shot-single", args.target, f"{args.k}-{seed}")
    base = ["--seed", str(seed), "--seq_length", str(args.seq_length), "--resave_ofrecord"]
    out = {name: os.path.join(work, f"{name}-{seed}") for name in ("mft", "ft_mft", "ft_plain")}
    seconds = {}
    if not (args.reuse and os.path.isfile(os.path.join(out["mft"], "results_eval.json"))):
        os.makedirs(out["mft"], exist_ok=True)
        seconds["preprocess"] = run("preprocess.py", ["--task_name", "g1", "--data_dir", cross,
                                                      "--model_load_dir", args.model, *base],
                                    os.path.join(out["mft"], "preprocess.log"))
        seconds["mft"] = run("meta_finetuning.py", [
            "--task_name", "g1", "--data_dir", cross, "--model_load_dir", args.model, "--model_save_dir", out["mft"],
            "--num_epochs", str(args.mft_epochs), "--learning_rate", str(args.mft_lr),
            "--batch_size_per_device", str(args.batch), "--eval_batch_size_per_device", "48",
            "--domain_loss_weight", str(args.domain_loss_weight), *base], os.path.join(out["mft"], "train.log"))
    mft = read(os.path.join(out["mft"], "results_eval.json"))
    ft_flags = ["--task_name", args.target.lower(), "--data_dir", single, "--num_epochs", str(args.ft_epochs),
                "--learning_rate", str(args.ft_lr), "--batch_size_per_device", str(args.batch),
                "--eval_batch_size_per_device", "40", *base]
    for name, init in (("ft_mft", mft["snapshot"]), ("ft_plain", args.model)):
        if args.reuse and os.path.isfile(os.path.join(out[name], "results_eval.json")):
            continue
        os.makedirs(out[name], exist_ok=True)
        seconds[name] = run("finetuning.py", [*ft_flags, "--model_load_dir", init, "--model_save_dir", out[name]],
                            os.path.join(out[name], "train.log"))
    ft_mft = read(os.path.join(out["ft_mft"], "results_eval.json"))
    ft_plain = read(os.path.join(out["ft_plain"], "results_eval.json"))
    return {"seed": seed, "mft_dev": mft["accuracy"], "mft_ft_dev": ft_mft["dev"]["accuracy"],
            "mft_ft_test": ft_mft["test"]["accuracy"], "ft_dev": ft_plain["dev"]["accuracy"],
            "ft_test": ft_plain["test"]["accuracy"], "test_examples": ft_plain["test"]["num_examples"],
            "seconds": seconds}


def table(rows: list[dict]) -> str:
    cols = [("seed", "seed"), ("mft_dev", "MFT dev (g1)"), ("mft_ft_dev", "MFT->FT dev"),
            ("mft_ft_test", "MFT->FT test"), ("ft_dev", "FT dev"), ("ft_test", "FT test")]
    lines = ["| " + " | ".join(title for _, title in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(str(r[k]) if k == "seed" else f"{r[k]:.4f}" for k, _ in cols) + " |")
    if len(rows) > 1:
        cells = ["mean +- std"]
        for key, _ in cols[1:]:
            values = [r[key] for r in rows]
            cells.append(f"{statistics.mean(values):.4f} +- {statistics.stdev(values):.4f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--data_root", default=os.path.join(REPO, "data"))
    parser.add_argument("--work_dir", default=os.path.join(REPO, "output", "bench_mft"))
    parser.add_argument("--target", default="SST-2", choices=GROUP_DOMAINS)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--seeds", default="42,21,12")
    parser.add_argument("--model", default="default", help="pretrained model both arms start from")
    parser.add_argument("--seq_length", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--mft_epochs", type=float, default=5)
    parser.add_argument("--mft_lr", type=float, default=1e-4)
    parser.add_argument("--domain_loss_weight", type=float, default=0.1)
    parser.add_argument("--ft_epochs", type=float, default=10)
    parser.add_argument("--ft_lr", type=float, default=1e-4)
    parser.add_argument("--reuse", action="store_true", help="keep finished runs found in --work_dir")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    ensure_data(args.data_root, os.path.join(args.work_dir, "data"), args.target, args.k, seeds)
    start = time.perf_counter()
    rows = []
    for seed in seeds:
        rows.append(one_seed(args, seed))
        print(f"[bench] seed {seed}: MFT->FT test {rows[-1]['mft_ft_test']:.4f}, FT test {rows[-1]['ft_test']:.4f} "
              f"({', '.join(f'{k} {v:.0f}s' for k, v in rows[-1]['seconds'].items())})", flush=True)
    summary = {"settings": {k: v for k, v in vars(args).items()}, "rows": rows,
               "seconds": time.perf_counter() - start}
    with open(os.path.join(args.work_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(f"\n{args.target} K={args.k}, test split {rows[0]['test_examples']} examples, "
          f"{summary['seconds'] / 60:.1f} min\n")
    print(table(rows))


if __name__ == "__main__":
    main()
