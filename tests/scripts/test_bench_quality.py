"""The quality benchmark's own logic: arms as data and the summary table's arithmetic."""

from __future__ import annotations

import argparse
import os
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO_ROOT, "benchmarks"))
import bench_quality  # noqa: E402


def run(seed: int, dev: float, test: float, speed: float) -> dict:
    return {"seed": seed, "dev_accuracy": dev, "test_accuracy": test, "train_seconds": 100.0,
            "eval_samples_per_second": speed, "parameters": 17_390_594}


def test_arm_flags_replace_or_add_arms():
    arms = bench_quality.parse_arms("ce,pkd_a05", ["pkd_a05=pkd:--kd_alpha 0.5 --kd_beta 100"])
    assert arms == {"ce": ("ce", ""), "pkd_a05": ("pkd", "--kd_alpha 0.5 --kd_beta 100")}
    with pytest.raises(SystemExit, match="unknown arm"):
        bench_quality.parse_arms("nope", [])
    with pytest.raises(SystemExit, match="ALGORITHM one of"):
        bench_quality.parse_arms("x", ["x=distil:--flag"])


def test_summary_rows_retention_per_seed_and_speed_columns():
    results = {"teacher": [run(1, 0.90, 0.80, 30.0), run(2, 0.90, 0.90, 30.0)],
               "kd": [run(1, 0.88, 0.76, 60.0), run(2, 0.86, 0.81, 66.0)]}
    rows = dict((row[0], row) for row in bench_quality.summary_rows(results))
    # retention per seed: 0.76/0.80 = 95%, 0.81/0.90 = 90% -> 92.5 +- 3.5
    assert rows["kd"][1:4] == ["87.00 +- 1.41", "78.50 +- 3.54", "92.5 +- 3.5%"]
    assert rows["kd"][-2:] == ["63", "2.10x"]
    timed = {"teacher": {"samples_per_second": 25.0, "speedup": 1.0},
             "kd": {"samples_per_second": 51.0, "speedup": 2.04}}
    rows = dict((row[0], row) for row in bench_quality.summary_rows(results, timed))
    assert rows["kd"][-2:] == ["51", "2.04x"]
    assert rows["teacher"][-2:] == ["25", "1.00x"]


def test_one_shared_teacher_is_every_seeds_teacher():
    """With --teacher_run the teacher row is one run: each seed's retention divides by it."""
    results = {"teacher": [run(1, 0.92, 0.80, 10.0)],
               "kd": [run(1, 0.88, 0.76, 60.0), run(2, 0.86, 0.72, 60.0)]}
    rows = dict((row[0], row) for row in bench_quality.summary_rows(results))
    assert rows["kd"][3] == "92.5 +- 3.5%"  # 0.76/0.80 = 95%, 0.72/0.80 = 90%
    assert rows["teacher"][1:4] == ["92.00 +- 0.00", "80.00 +- 0.00", "100.0 +- 0.0%"]
    assert rows["kd"][-1] == "6.00x"


def test_a_steps_fixed_flags_win_over_the_arms_flags(tmp_path):
    args = argparse.Namespace(out=str(tmp_path), task_name="SST-2", seq_length=32, student_epochs=2,
                              student_lr=2e-4, batch=32, layer_list="1,3,5")
    (tmp_path / "seed-1" / "student_init").mkdir(parents=True)  # an existing init is reused, not rebuilt
    bench = bench_quality.Bench(args, str(tmp_path / "data"), ranks=1)
    theseus = bench.steps(1, "theseus", "teacher_dir", str(tmp_path / "theseus"), 1)
    tinybert = bench.steps(1, "tinybert", "teacher_dir", str(tmp_path / "tinybert"), 1)
    arm = "--replacing_rate 0.8 --pred_distill true"
    for (_, flags, fixed), rate in zip(theseus, (None, "1")):
        command = bench_quality.step_command_flags(flags, arm, fixed)
        last = len(command) - 1 - command[::-1].index("--replacing_rate")
        assert command[last + 1] == (rate or "0.8")  # phase 2 is the successor alone whatever the arm says
    assert [fixed for _, _, fixed in tinybert] == [["--intermediate_distill", "true", "--pred_distill", "false"],
                                                   ["--intermediate_distill", "false", "--pred_distill", "true"]]


def test_arm_names_are_not_algorithms():
    with pytest.raises(SystemExit, match="ALGORITHM one of"):
        bench_quality.parse_arms("x", ["x=tinybert_aug:--N 2"])
    assert bench_quality.parse_arms("y", ["y=ce_aug:--num_epochs 2"]) == {"y": ("ce_aug", "--num_epochs 2")}


def test_ce_aug_trains_on_the_rows_tinybert_aug_builds(tmp_path, tiny_model_dir, tiny_sst2_dir):
    """The control arm's training file is the augmentation TinyBERT's --aug_train makes for the same teacher
    and seed (labels copied); dev is the original."""
    from model_compress.data.augmentation import AugmentSpec, ensure_augmented
    from model_compress.recipes.common import load_task_data
    from model_compress.recipes.settings import DataSettings
    from model_compress.recipes.tinybert import word_embeddings

    args = argparse.Namespace(out=str(tmp_path / "bench"), task_name="SST-2", seq_length=16, student_epochs=2,
                              student_lr=2e-4, batch=32, layer_list="1,3,5")
    (tmp_path / "bench" / "seed-3" / "student_init").mkdir(parents=True)
    bench = bench_quality.Bench(args, tiny_sst2_dir, ranks=1)
    [(script, flags, _)] = bench.steps(3, "ce_aug", tiny_model_dir, str(tmp_path / "ce_aug"), 1)
    data_dir = flags[flags.index("--data_dir") + 1]
    assert script == "task_teacher.py" and data_dir != tiny_sst2_dir
    data = load_task_data(DataSettings("sst-2", tiny_sst2_dir, 16), os.path.join(tiny_model_dir, "vocab.txt"))
    spec = AugmentSpec(num_tries=bench_quality.AUG_TRIES, seed=3)
    _, built, _ = ensure_augmented(str(tmp_path / "tinybert_side"), data.examples["train"], data.tokenizer,
                                   word_embeddings(tiny_model_dir), spec)
    augmented = open(os.path.join(data_dir, "train.tsv"), encoding="utf-8").read()
    assert augmented == open(built, encoding="utf-8").read()
    assert len(augmented.splitlines()) > 97  # more rows than the 96 it was made from
    assert open(os.path.join(data_dir, "dev.tsv")).read() == open(os.path.join(tiny_sst2_dir, "dev.tsv")).read()
    assert bench.steps(3, "ce_aug", tiny_model_dir, str(tmp_path / "again"), 1)[0][1] == [
        *flags[: flags.index("--model_save_dir") + 1], str(tmp_path / "again"), *flags[flags.index("--do_train"):]]
