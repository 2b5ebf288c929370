"""Few-shot test accuracy of MFT -> fine-tuning against its two baselines.

For every K-shot seed (default 42, 21, 12; K=16) and target domain (default all of g1: SST-2, MR, CR):

  1. preprocess.py       prototypical scores on the g1 group (SST-2, MR, CR)
  2. meta_finetuning.py  meta learner from the default pretrained model
  3. finetuning.py       plain fine-tuning on the same cross-domain rows, same epochs and lr (no
                         prototypical weights, no domain-corruption loss): what MFT's own machinery adds
  4. finetuning.py       on the target domain, from the meta learner          -> "MFT -> FT"
  5. finetuning.py       on the target domain, from step 3's model            -> "cross FT -> FT"
  6. finetuning.py       on the target domain, from the pretrained model       -> "FT"

The target fine-tuning arms use identical flags; the snapshot is chosen on the target's dev split and the
full test split is reported. The runs are sequential subprocesses of the real entry scripts. The CSVs are
copied into --work_dir first, so OFRecord files and weight.npy are written there, not in the shared data.

    .venv/bin/python benchmarks/bench_mft_fewshot.py            # 3 targets x 3 seeds
    .venv/bin/python benchmarks/bench_mft_fewshot.py --reuse    # only print the table of finished runs
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import time

from bench_runs import REPO, markdown_table, mean_std, python_command, read_json, run_logged, script_path, write_json

GROUP_DOMAINS = ("SST-2", "MR", "CR")
ARMS = (("mft", "MFT -> FT"), ("cross", "cross FT -> FT"), ("plain", "FT"))


def ensure_data(data_root: str, work_data: str, targets: list[str], k: int, seeds: list[int]) -> None:
    """Copy the g1 and target K-shot CSVs (generating the shipped data if absent) into the work dir."""
    if not os.path.isdir(os.path.join(data_root, "k-shot-cross", "g1")):
        print(f"[bench] {data_root} has no K-shot data: generating the shipped default data there")
        subprocess.run([sys.executable, "-m", "model_compress.data.synthetic", "--out", data_root], cwd=REPO,
                       check=True)
    for seed in seeds:
        for rel in [f"k-shot-cross/g1/{k}-{seed}"] + [f"k-shot-single/{t}/{k}-{seed}" for t in targets]:
            dest = os.path.join(work_data, rel)
            os.makedirs(dest, exist_ok=True)
            for csv in glob.glob(os.path.join(data_root, rel, "*.csv")):
                shutil.copyfile(csv, os.path.join(dest, os.path.basename(csv)))


def mft_step(script: str, flags: list[str], out: str, log: str, reuse: bool) -> None:
    """One MFT entry script into `out` unless `out` already holds its results and --reuse is given."""
    if reuse and os.path.isfile(os.path.join(out, "results_eval.json")):
        return
    os.makedirs(out, exist_ok=True)
    run_logged(python_command(script_path("mft", script), flags), os.path.join(out, log), f"{script} -> {out}")


def one_seed(args, seed: int, targets: list[str]) -> list[dict]:
    work = os.path.abspath(args.work_dir)
    cross = os.path.join(work, "data", "k-shot-cross", "g1", f"{args.k}-{seed}")
    base = ["--seed", str(seed), "--seq_length", str(args.seq_length), "--resave_ofrecord"]
    source = {"mft": os.path.join(work, f"mft-{seed}"), "cross": os.path.join(work, f"cross-{seed}")}
    group = ["--task_name", "g1", "--data_dir", cross, "--model_load_dir", args.model, "--num_epochs",
             str(args.mft_epochs), "--learning_rate", str(args.mft_lr), "--batch_size_per_device", str(args.batch),
             "--eval_batch_size_per_device", "48", *base]
    if not (args.reuse and os.path.isfile(os.path.join(source["mft"], "results_eval.json"))):
        mft_step("preprocess.py", ["--task_name", "g1", "--data_dir", cross, "--model_load_dir", args.model, *base],
                 source["mft"], "preprocess.log", reuse=False)
    mft_step("meta_finetuning.py", [*group, "--model_save_dir", source["mft"], "--domain_loss_weight",
                                    str(args.domain_loss_weight)], source["mft"], "train.log", args.reuse)
    mft_step("finetuning.py", [*group, "--model_save_dir", source["cross"], "--do_test", "false"], source["cross"],
             "train.log", args.reuse)
    inits = {"mft": read_json(os.path.join(source["mft"], "results_eval.json"))["snapshot"],
             "cross": read_json(os.path.join(source["cross"], "results_eval.json"))["snapshot"],
             "plain": args.model}
    rows = []
    for target in targets:
        single = os.path.join(work, "data", "k-shot-single", target, f"{args.k}-{seed}")
        flags = ["--task_name", target.lower(), "--data_dir", single, "--num_epochs", str(args.ft_epochs),
                 "--learning_rate", str(args.ft_lr), "--batch_size_per_device", str(args.batch),
                 "--eval_batch_size_per_device", "40", *base]
        row = {"seed": seed, "target": target}
        for arm, _ in ARMS:
            out = os.path.join(work, f"ft_{arm}-{target}-{seed}")
            mft_step("finetuning.py", [*flags, "--model_load_dir", inits[arm], "--model_save_dir", out], out,
                     "train.log", args.reuse)
            result = read_json(os.path.join(out, "results_eval.json"))
            row[f"{arm}_dev"], row[f"{arm}_test"] = result["dev"]["accuracy"], result["test"]["accuracy"]
            row["test_examples"] = result["test"]["num_examples"]
        rows.append(row)
    return rows


def table(rows: list[dict], targets: list[str]) -> str:
    lines = []
    for target in targets:
        mine = [r for r in rows if r["target"] == target]
        cells = [target]
        for arm, _ in ARMS:
            mean, std = mean_std([r[f"{arm}_test"] for r in mine])
            cells.append(f"{100 * mean:.2f} +- {100 * std:.2f}")
        lines.append(cells)
    return markdown_table(["target (test acc %)", *[title for _, title in ARMS]], lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--data_root", default=os.path.join(REPO, "data"))
    parser.add_argument("--work_dir", default=os.path.join(REPO, "output", "bench_mft"))
    parser.add_argument("--targets", default=",".join(GROUP_DOMAINS), help="comma list of g1 domains")
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--seeds", default="42,21,12")
    parser.add_argument("--model", default="default", help="pretrained model every arm starts from")
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
    targets = [t.strip() for t in args.targets.split(",")]
    unknown = [t for t in targets if t not in GROUP_DOMAINS]
    if unknown:
        raise SystemExit(f"--targets: {', '.join(unknown)} not in g1 ({', '.join(GROUP_DOMAINS)})")
    ensure_data(args.data_root, os.path.join(args.work_dir, "data"), targets, args.k, seeds)
    start = time.perf_counter()
    rows = []
    for seed in seeds:
        rows += one_seed(args, seed, targets)
        print(f"[bench] seed {seed} done ({(time.perf_counter() - start) / 60:.1f} min)", flush=True)
    summary = {"settings": vars(args), "rows": rows, "seconds": time.perf_counter() - start}
    write_json(os.path.join(args.work_dir, "summary.json"), summary)
    print(f"\nK={args.k}, seeds {args.seeds}, {summary['seconds'] / 60:.1f} min\n")
    print(table(rows, targets))


if __name__ == "__main__":
    main()
