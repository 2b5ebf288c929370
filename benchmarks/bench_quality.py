"""Student quality on real text: a teacher per seed, then small students from that teacher, over seeds.

For a GLUE-style folder whose train, dev and test files all carry labels (default ../shared/data/CR,
the Customer Review sentences) and for every seed:

  1. teacher      task_teacher.py from the pretrained model; dev chooses the snapshot
  2. student init the teacher's layers --layer_list (bert-pkd_generate_student_model.py), shared by all arms
  3. arms         every student arm with the same budget (epochs, lr, batch, seq), 3 layers:
                  ce        hard labels only, from the init
                  kd        vanilla KD from the teacher's logits file, from the init
                  pkd       BERT-PKD (paper variant), from the init
                  tinybert  TinyBERT step 1 (attention + hidden states) then step 2 (soft labels), from the
                            init; each step gets the budget (tinybert_aug: each step one epoch over the input
                            plus 4 augmented rows per input, i.e. 5x an epoch's rows)
                  ce_aug    the control of tinybert_aug: hard labels only, from the init, one epoch over the
                            same augmented rows with each row's label copied from its source sentence
                  theseus   BERT-of-Theseus: module replacing from the teacher, then the successor alone;
                            each phase gets the budget
                  bilstm    Distilled BiLSTM (1 bidirectional layer of 300) from the cached teacher logits
  4. test         each chosen snapshot evaluated once on the test split (when the folder has a test.tsv)

It prints mean +- std over seeds of dev and test accuracy, retention (student test / teacher test, per
seed), training wall time and eval throughput with the speed-up over the teacher, and writes
<out>/summary.json. Finished runs are kept: running it again resumes (a run's record is written last,
atomically); --reuse only prints the table. Each run's eval throughput is taken from its one test
evaluation; --speed_rounds N times the first seed's runs again, interleaved over N rounds (medians), so the
speed-up holds on a busy machine (with --reuse: re-time finished runs only). Training runs as the
data-parallel processes measured fastest on this CPU (--nproc). Arms are data: --arm NAME=ALGORITHM:FLAGS
adds or replaces one, e.g. a sweep point --arm "pkd_a05=pkd:--kd_alpha 0.5 --kd_beta 100".

A larger teacher and a different, pretrained student: --teacher_run DIR trains one teacher (the first seed)
in DIR and every seed's students learn from it (several benchmarks can share it); --student_model NAME
slices the students from that pretrained model (--layer_list of its layers) instead of from the teacher,
so the ce arm is the same pretrained student fine-tuned without a teacher. --teacher_nproc and
--teacher_flags set the teacher's own processes and flags (a 12-layer teacher needs one process here).

    .venv/bin/python benchmarks/bench_quality.py                          # CR, seeds 1,2,3: about an hour
    .venv/bin/python benchmarks/bench_quality.py --arms ce,pkd --seeds 1  # a quicker look
    .venv/bin/python benchmarks/bench_quality.py --data_dir ../shared/data/SST-2 \
        --teacher all-mpnet-base-v2 --teacher_run output/mpnet_teacher --teacher_nproc 1 \
        --teacher_epochs 1 --teacher_lr 3e-5 --teacher_flags "--length_buckets 64" \
        --student_model default --layer_list 0,1,2,3,4,5 --arms ce,kd --out output/bench_mpnet_l6
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from bench_runs import REPO, markdown_table, mean_std, python_command, read_json, run_logged, script_path, write_json

AUG_TRIES = 4  # augmented rows per training sentence (TinyBERT's N) of the *_aug arms
# name -> (algorithm, flags): the shell scripts' defaults unless a sweep on real data chose otherwise
# (docs/benchmarks.md, "Real data").
ARMS = {
    "ce": ("ce", ""),
    "kd": ("kd", "--temperature 5 --alpha 0.2"),
    "pkd": ("pkd", "--kd_alpha 0.9 --kd_beta 10 --temperature 2 --pkd_mapping skip --pkd_variant paper"),
    "tinybert": ("tinybert", "--temperature 1"),
    "tinybert_aug": ("tinybert", f"--temperature 1 --aug_train true --N {AUG_TRIES} --num_epochs 1"),
    "ce_aug": ("ce_aug", "--num_epochs 1"),
    "theseus": ("theseus", "--replacing_rate 0.8"),
    "bilstm": ("bilstm", "--learning_rate 1e-3 --kd_alpha 0.7 --temperature 1"),
}
DEFAULT_ARMS = ("ce", "kd", "pkd")
ALGORITHMS = tuple(sorted({algorithm for algorithm, _ in ARMS.values()}))
SINGLE_PROCESS = ("bilstm",)  # its step-by-step LSTM under the launcher is slower than one process
RECORD = "bench_run.json"


def parse_arms(selected: str, extra: list[str]) -> dict[str, tuple[str, str]]:
    arms = dict(ARMS)
    for spec in extra:
        name, _, rest = spec.partition("=")
        algorithm, _, flags = rest.partition(":")
        if not name or algorithm not in ALGORITHMS:
            raise SystemExit(f"--arm {spec!r}: expected NAME=ALGORITHM[:FLAGS] with ALGORITHM one of {ALGORITHMS}")
        arms[name] = (algorithm, flags)
    chosen = [name.strip() for name in selected.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in arms]
    if unknown:
        raise SystemExit(f"--arms: unknown arm(s) {', '.join(unknown)}; known: {', '.join(arms)}")
    return {name: arms[name] for name in chosen}


def copy_splits(source: str, dest: str, splits: tuple[str, ...] = ("train", "dev", "test")) -> str:
    """The splits' tsv files copied into `dest` (test may be absent)."""
    os.makedirs(dest, exist_ok=True)
    for split in splits:
        path = os.path.join(source, f"{split}.tsv")
        if os.path.isfile(path):
            shutil.copyfile(path, os.path.join(dest, f"{split}.tsv"))
        elif split != "test":
            raise SystemExit(f"--data_dir {source}: {split}.tsv is missing")
    return dest


def copy_data(source: str, work: str) -> str:
    """The train/dev/test files copied into the work folder (OFRecord files are written beside them)."""
    return copy_splits(source, os.path.join(work, "data", os.path.basename(os.path.normpath(source))))


def training_ranks(requested: str) -> int:
    if requested != "auto":
        return int(requested)
    out = subprocess.run([sys.executable, "-m", "model_compress.runtime", "--ranks"], cwd=REPO, text=True,
                         capture_output=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def step_command_flags(step_flags: list[str], arm_flags: str, fixed: list[str]) -> list[str]:
    """One training step's flags: the arm's flags override the step's budget, and the step's fixed flags (what
    makes the step what it is) override the arm's."""
    return [*step_flags, *shlex.split(arm_flags), *fixed]


class Bench:
    """One benchmark run: its settings, where things go, and how each kind of run is started."""

    def __init__(self, args: argparse.Namespace, data_dir: str, ranks: int) -> None:
        self.args, self.data_dir, self.ranks = args, data_dir, ranks
        self.has_test = os.path.isfile(os.path.join(data_dir, "test.tsv"))
        if args.batch % ranks:
            raise SystemExit(f"--batch {args.batch} does not split over {ranks} processes (--nproc)")

    def data_flags(self, seed: int, data_dir: str | None = None) -> list[str]:
        return ["--task_name", self.args.task_name, "--data_dir", data_dir or self.data_dir, "--seq_length",
                str(self.args.seq_length), "--seed", str(seed)]

    def train_flags(self, seed: int, epochs: float, lr: float, out: str, ranks: int,
                    data_dir: str | None = None) -> list[str]:
        return [*self.data_flags(seed, data_dir), "--num_epochs", str(epochs), "--learning_rate", str(lr),
                "--batch_size_per_device", str(self.args.batch // ranks), "--model_save_dir", out, "--do_train"]

    def test(self, snapshot: str, seed: int, out: str) -> dict:
        """Evaluate a snapshot in one process on the test split (the dev split when there is none): the
        accuracy reported and the throughput compared."""
        split = "test" if self.has_test else "dev"
        flags = [*self.data_flags(seed), "--model_load_dir", snapshot, "--do_eval", "--eval_split", split,
                 "--model_save_dir", out]
        run_logged(python_command(script_path("distil", "task_teacher.py"), flags), os.path.join(out, "test.log"),
                   f"test of {snapshot}")
        return read_json(os.path.join(out, "results_eval.json"))

    def record(self, run_dir: str, seed: int, train: Callable[[str], float]) -> dict:
        """Train (unless finished before), test the chosen snapshot, and keep the record."""
        path = os.path.join(run_dir, RECORD)
        if os.path.isfile(path):
            return read_json(path)
        if self.args.reuse:
            raise SystemExit(f"--reuse: {run_dir} has no finished run")
        shutil.rmtree(run_dir, ignore_errors=True)  # an unfinished run starts again
        os.makedirs(run_dir)
        seconds = train(run_dir)
        dev = read_json(os.path.join(run_dir, "results_eval.json"))
        final = self.test(os.path.join(run_dir, "snapshot_best"), seed, os.path.join(run_dir, "test"))
        row = {"seed": seed, "dev_accuracy": dev["accuracy"], "test_accuracy": final["accuracy"] if self.has_test
               else None, "train_seconds": seconds, "eval_samples_per_second": final["eval_samples_per_second"],
               "parameters": final["parameters"], "ranks": self.ranks}
        write_json(path, row)
        return row

    def retime(self, seed: int, names: list[str], rounds: int) -> dict[str, dict[str, float]]:
        """Eval throughput of one seed's finished runs timed again, interleaved: each round evaluates every
        run once, so load from other processes falls on all of them alike. Per run: the median samples/s
        and the median of the per-round ratios to the teacher."""
        runs = {name: os.path.join(self.args.out, f"seed-{seed}", name) for name in ("teacher", *names)}
        runs["teacher"] = self.args.teacher_run or runs["teacher"]
        rounds_seen: list[dict[str, float]] = []
        for index in range(rounds):
            rounds_seen.append({name: self.test(os.path.join(d, "snapshot_best"), seed, os.path.join(d, "retime"))[
                "eval_samples_per_second"] for name, d in runs.items()})
            print(f"[bench] speed round {index + 1}/{rounds}: " + ", ".join(
                f"{name} {speed:.0f}/s" for name, speed in rounds_seen[-1].items()), flush=True)
        return {name: {"samples_per_second": statistics.median(r[name] for r in rounds_seen),
                       "speedup": statistics.median(r[name] / r["teacher"] for r in rounds_seen)} for name in runs}

    def teacher(self, seed: int) -> tuple[dict, str]:
        """The teacher the students of `seed` learn from: its own per seed, or the one --teacher_run (trained
        with the first seed it is asked for)."""
        a = self.args
        run_dir = a.teacher_run or os.path.join(a.out, f"seed-{seed}", "teacher")
        ranks = a.teacher_nproc or self.ranks
        if a.teacher_run and os.path.isfile(os.path.join(run_dir, RECORD)):
            row = read_json(os.path.join(run_dir, RECORD))
            return row, os.path.join(run_dir, "snapshot_best")
        flags = [*self.train_flags(seed, a.teacher_epochs, a.teacher_lr, run_dir, ranks), "--do_eval",
                 "--model_load_dir", a.teacher, *shlex.split(a.teacher_flags)]
        row = self.record(run_dir, seed, lambda d: run_logged(
            python_command(script_path("distil", "task_teacher.py"), flags, ranks), os.path.join(d, "train.log"),
            f"teacher (seed {seed})"))
        return row, os.path.join(run_dir, "snapshot_best")

    def student_init(self, seed: int, teacher: str) -> str:
        """The arms' common start: --layer_list of the teacher's layers, or of --student_model's."""
        path = os.path.join(self.args.out, f"seed-{seed}", "student_init")
        if not os.path.isdir(path):
            run_logged(python_command(script_path("distil", "bert-pkd_generate_student_model.py"), [
                "--teacher_model", self.args.student_model or teacher, "--student_model", path,
                "--layer_list", self.args.layer_list]),
                path + ".log", f"student init (seed {seed})")
        return path

    def teacher_logits(self, seed: int, teacher: str) -> str:
        path = os.path.join(os.path.dirname(teacher), "logits_train.tsv")
        if not os.path.isfile(path):
            run_logged(python_command(script_path("distil", "task_teacher.py"), [
                *self.data_flags(seed), "--model_load_dir", teacher, "--export_logits", path,
                *shlex.split(self.args.teacher_flags)]),
                path + ".log", f"teacher logits (seed {seed})")
        return path

    def augmented_data(self, seed: int, teacher: str) -> str:
        """A data folder whose train.tsv is the augmentation tinybert_aug trains on for this seed (same teacher
        embeddings, N, seed), the labels copied from each source sentence; dev and test as they are."""
        root = os.path.join(self.args.out, f"seed-{seed}", "augmented_data")
        task_dir = os.path.join(root, self.args.task_name)
        if os.path.isfile(os.path.join(task_dir, "train.tsv")):
            return task_dir
        build = os.path.join(root, "build")
        copy_splits(self.data_dir, os.path.join(build, self.args.task_name), ("train",))
        run_logged(python_command(script_path("distil", "data_augmentation.py"), [
            "--pretrained_bert_model", teacher, "--glue_dir", build, "--task_name", self.args.task_name,
            "--N", str(AUG_TRIES), "--seed", str(seed)]), os.path.join(root, "augment.log"),
            f"augmented training set (seed {seed})")
        copy_splits(self.data_dir, task_dir, ("dev", "test"))
        shutil.copyfile(os.path.join(build, self.args.task_name, "train_aug.tsv"), os.path.join(task_dir, ".train.tsv"))
        os.replace(os.path.join(task_dir, ".train.tsv"), os.path.join(task_dir, "train.tsv"))  # train.tsv last
        return task_dir

    def student(self, seed: int, name: str, algorithm: str, flags: str, teacher: str) -> dict:
        a = self.args
        run_dir = os.path.join(a.out, f"seed-{seed}", name)
        ranks = 1 if algorithm in SINGLE_PROCESS else self.ranks

        def train(out: str) -> float:
            seconds = 0.0
            for index, (script, step_flags, fixed) in enumerate(self.steps(seed, algorithm, teacher, out, ranks)):
                command = python_command(script_path("distil", script), step_command_flags(step_flags, flags, fixed),
                                         ranks)
                seconds += run_logged(command, os.path.join(out, f"train-{index + 1}.log"),
                                      f"{name} step {index + 1} (seed {seed})")
            return seconds

        return self.record(run_dir, seed, train)

    def steps(self, seed: int, algorithm: str, teacher: str, out: str,
              ranks: int) -> list[tuple[str, list[str], list[str]]]:
        """(entry script, flags, fixed flags) of each training step of one arm; the arm's flags go between the
        two, so they override the budget but not what makes the step what it is. The last step writes
        results_eval.json."""
        a = self.args

        def budget(directory: str, data_dir: str | None = None) -> list[str]:
            return self.train_flags(seed, a.student_epochs, a.student_lr, directory, ranks, data_dir)

        init = self.student_init(seed, teacher) if algorithm not in ("theseus", "bilstm") else None
        if algorithm == "ce":
            return [("task_teacher.py", [*budget(out), "--do_eval", "--model_load_dir", init], [])]
        if algorithm == "ce_aug":
            return [("task_teacher.py", [*budget(out, self.augmented_data(seed, teacher)), "--do_eval",
                                         "--model_load_dir", init], [])]
        if algorithm == "kd":
            return [("task_student_kd.py", [*budget(out), "--do_eval", "--student_model", init,
                                            "--teacher_logits", self.teacher_logits(seed, teacher)], [])]
        if algorithm == "pkd":
            return [("task_student_bert-pkd.py", [*budget(out), "--do_eval", "--student_model", init,
                                                  "--teacher_model", teacher], [])]
        if algorithm == "tinybert":
            step1 = os.path.join(out, "intermediate")
            return [("task_student_tinybert.py", [*budget(step1), "--student_model", init, "--teacher_model", teacher],
                     ["--intermediate_distill", "true", "--pred_distill", "false"]),
                    ("task_student_tinybert.py", [*budget(out), "--do_eval", "--teacher_model", teacher,
                                                  "--student_model", os.path.join(step1, "snapshot_intermediate")],
                     ["--intermediate_distill", "false", "--pred_distill", "true"])]
        if algorithm == "theseus":
            phase1 = os.path.join(out, "replacing")
            return [("task_theseus.py", [*budget(phase1), "--teacher_model", teacher, "--student_num_hidden_layers",
                                         str(len(a.layer_list.split(",")))], []),
                    ("task_theseus.py", [*budget(out), "--do_eval", "--student_model",
                                         os.path.join(phase1, "snapshot_best")], ["--replacing_rate", "1"])]
        return [("task_student_kd_lstm.py", [*budget(out), "--do_eval", "--teacher_model", teacher,
                                             "--teacher_mode", "cached"], [])]


def summary_rows(results: dict[str, list[dict]], speeds: dict[str, dict[str, float]] | None = None) -> list[list[str]]:
    """Per arm: dev and test accuracy (mean +- std over seeds), test retention, size, time, eval speed (the
    mean of each run's own figure, or the interleaved re-timing when given). A single teacher row is every
    seed's teacher."""
    by_seed = {r["seed"]: r for r in results["teacher"]}
    shared = results["teacher"][0] if len(by_seed) == 1 else None
    teacher = {r["seed"]: shared or by_seed[r["seed"]] for runs in results.values() for r in runs}
    teacher_speed, _ = mean_std([r["eval_samples_per_second"] for r in results["teacher"]])
    key = "test_accuracy" if all(r["test_accuracy"] is not None for r in results["teacher"]) else "dev_accuracy"
    rows = []
    for name, runs in results.items():
        dev, dev_sd = mean_std([r["dev_accuracy"] for r in runs])
        cells = [name, f"{100 * dev:.2f} +- {100 * dev_sd:.2f}"]
        if key == "test_accuracy":
            test, test_sd = mean_std([r["test_accuracy"] for r in runs])
            cells.append(f"{100 * test:.2f} +- {100 * test_sd:.2f}")
        keep, keep_sd = mean_std([r[key] / teacher[r["seed"]][key] for r in runs])
        seconds, _ = mean_std([r["train_seconds"] for r in runs])
        if speeds:
            speed, speedup = speeds[name]["samples_per_second"], speeds[name]["speedup"]
        else:
            speed = mean_std([r["eval_samples_per_second"] for r in runs])[0]
            speedup = speed / teacher_speed
        rows.append([*cells, f"{100 * keep:.1f} +- {100 * keep_sd:.1f}%", f"{runs[0]['parameters'] / 1e6:.1f} M",
                     f"{seconds:.0f}", f"{speed:.0f}", f"{speedup:.2f}x"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--data_dir", default=os.path.join(REPO, "..", "shared", "data", "CR"))
    parser.add_argument("--task_name", default="SST-2", help="processor of the files (SST-2 layout for CR)")
    parser.add_argument("--out", default=os.path.join(REPO, "output", "bench_quality"))
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--teacher", default="default", help="pretrained model the teacher starts from")
    parser.add_argument("--teacher_epochs", type=float, default=2)
    parser.add_argument("--teacher_lr", type=float, default=5e-5)
    parser.add_argument("--teacher_run", default="",
                        help="one teacher for every seed, trained in this folder with the first seed (kept and reused)")
    parser.add_argument("--teacher_nproc", type=int, default=0, help="the teacher's processes (0: as --nproc)")
    parser.add_argument("--teacher_flags", default="", help="more task_teacher.py flags for the teacher's runs")
    parser.add_argument("--student_model", default="",
                        help="pretrained model the students are sliced from (default: the teacher)")
    parser.add_argument("--student_epochs", type=float, default=2)
    parser.add_argument("--student_lr", type=float, default=2e-4)
    parser.add_argument("--layer_list", default="1,3,5", help="teacher layers the students start from")
    parser.add_argument("--seq_length", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32, help="global batch size")
    parser.add_argument("--nproc", default="auto", help="training processes (auto: measured fastest here)")
    parser.add_argument("--arms", default=",".join(DEFAULT_ARMS),
                        help=f"student arms to run, in order (known: {', '.join(ARMS)})")
    parser.add_argument("--arm", action="append", default=[], help="NAME=ALGORITHM[:FLAGS] (repeatable)")
    parser.add_argument("--reuse", action="store_true", help="only print the table of finished runs")
    parser.add_argument("--speed_rounds", type=int, default=0,
                        help="time the first seed's runs again, interleaved, this many rounds (0: each run's own)")
    args = parser.parse_args()
    args.out = os.path.abspath(args.out)
    args.teacher_run = os.path.abspath(args.teacher_run) if args.teacher_run else ""
    arms = parse_arms(args.arms, args.arm)
    seeds = [int(s) for s in args.seeds.split(",")]
    bench = Bench(args, copy_data(os.path.abspath(args.data_dir), args.out), training_ranks(args.nproc))
    results: dict[str, list[dict]] = {"teacher": [], **{name: [] for name in arms}}
    total, done, start = len(seeds) * (1 + len(arms)), 0, time.perf_counter()

    def progress(what: str, row: dict) -> None:
        nonlocal done
        done += 1
        elapsed = time.perf_counter() - start
        test = f" test {row['test_accuracy']:.4f}" if row["test_accuracy"] is not None else ""
        print(f"[bench] {done}/{total} {what}: dev {row['dev_accuracy']:.4f}{test} "
              f"({row['train_seconds']:.0f} s; {elapsed / 60:.1f} min so far)", flush=True)

    if args.student_model and any(arms[name][0] in ("theseus", "bilstm") for name in arms):
        raise SystemExit("--student_model: theseus and bilstm students are not sliced from a model; drop them")
    for seed in seeds:
        row, teacher = bench.teacher(seed)
        if not (args.teacher_run and results["teacher"]):
            results["teacher"].append(row)
        progress(f"seed {seed} teacher", row)
        for name, (algorithm, flags) in arms.items():
            results[name].append(bench.student(seed, name, algorithm, flags, teacher))
            progress(f"seed {seed} {name}", results[name][-1])
    speeds = bench.retime(seeds[0], list(arms), args.speed_rounds) if args.speed_rounds > 0 else None
    split = "test" if bench.has_test else "dev"
    timing = f", seed {seeds[0]} interleaved, median of {args.speed_rounds}" if speeds else ""
    header = ["arm", "dev acc %", *(["test acc %"] if bench.has_test else []), f"{split} retention", "parameters",
              "train s", f"eval samples/s ({split}, 1 process{timing})", "speed-up"]
    table = markdown_table(header, summary_rows(results, speeds))
    write_json(os.path.join(args.out, "summary.json"), {
        "settings": {k: v for k, v in vars(args).items() if k != "arm"}, "arms": arms, "ranks": bench.ranks,
        "results": results, "speeds": speeds, "table": table})
    process_counts = "/".join(map(str, sorted({r["ranks"] for runs in results.values() for r in runs})))
    print(f"\n{args.data_dir}: seeds {args.seeds}, students from teacher layers {args.layer_list}, "
          f"{process_counts} training process(es) per run\n")
    print(table)


if __name__ == "__main__":
    main()
