"""TinyBERT end to end on the shipped data at tiny sizes: both steps, the student's starts, augmentation,
the teacher's targets, and one-line refusals."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import oneflow as flow
import pytest

from model_compress.distill.intermediate import layer_stack
from model_compress.distill.objectives import TeacherTargets
from model_compress.modeling.bert import BertForSequenceClassification
from model_compress.modeling.checkpoint import load_snapshot
from model_compress.modeling.config import BertConfig
from model_compress.recipes import tinybert as tinybert_job
from tests.conftest import REPO_ROOT, TINY_BERT
from tests.support import assert_matches_reference, refused

FAST = ["--task_name", "sst-2", "--seq_length", "16", "--batch_size_per_device", "16",
        "--eval_batch_size_per_device", "16", "--learning_rate", "1e-3", "--num_epochs", "1"]
SMALL_STUDENT = ["--from_scratch", "--student_num_hidden_layers", "2", "--student_hidden_size", "16",
                 "--student_num_attention_heads", "4", "--student_intermediate_size", "32"]


def snapshot_meta(path: str) -> dict:
    with open(os.path.join(path, "snapshot.json"), encoding="utf-8") as f:
        return json.load(f)["meta"]


def test_teacher_targets_give_mapped_attention_scores_and_hidden_states():
    flow.manual_seed(0)
    teacher = BertForSequenceClassification(BertConfig(vocab_size=60, **TINY_BERT)).eval()
    rs = np.random.RandomState(0)
    ids = flow.tensor(rs.randint(1, 60, (2, 7)).astype(np.int32))
    mask = np.ones((2, 7), np.int32)
    mask[1, 5:] = 0
    mask, seg = flow.tensor(mask), flow.tensor(np.zeros((2, 7), np.int32))
    targets = TeacherTargets(teacher, hidden_layers=[0, 2, 4], attention_layers=[1, 3])
    assert targets.names == ["teacher_logits", "teacher_attention", "teacher_hidden"]
    logits, attention, hidden = targets(ids, mask, seg)
    _, enc = teacher(ids, seg, mask, output_hidden_states=True, output_attentions=True)
    assert attention.shape == (2, 2, 4, 7, 7) and hidden.shape == (2, 3, 7, 32)
    np.testing.assert_allclose(attention.numpy()[:, 1], enc.attention_scores[3].numpy(), rtol=1e-6)
    np.testing.assert_allclose(hidden.numpy(), layer_stack(enc.hidden_states, [0, 2, 4]).numpy(), rtol=1e-6)
    assert attention.numpy()[1, :, :, :, 5:].max() < -100  # raw scores: the masked keys stay masked


def test_two_steps_as_the_shell_script_runs_them(tmp_path, tiny_model_dir, tiny_sst2_dir, capsys):
    """Step 1 alone saves snapshot_intermediate; step 2 alone continues it and keeps the best dev snapshot."""
    out = str(tmp_path / "tinybert")
    base = FAST + ["--data_dir", tiny_sst2_dir, "--teacher_model", tiny_model_dir, "--model_save_dir", out,
                   "--train_example_num", "64", "--do_train"]
    first = tinybert_job.run(tinybert_job.build_parser().parse_args(
        base + SMALL_STUDENT + ["--intermediate_distill", "True", "--pred_distill", "False"]))
    step1 = os.path.join(out, "snapshot_intermediate")
    assert first["snapshot"] == step1
    state, config, _ = load_snapshot(step1)
    assert (config.num_hidden_layers, config.hidden_size) == (2, 16)
    assert not any("fit_dense" in k or "teacher" in k for k in state)  # only the student is kept
    meta = snapshot_meta(step1)
    assert meta["role"] == "student-tinybert-intermediate"
    assert meta["teacher_attention_layers"] == [1, 3] and meta["teacher_hidden_layers"] == [0, 2, 4]
    assert np.isfinite(meta["final_loss"]) and first["intermediate"].steps == 4

    second = tinybert_job.run(tinybert_job.build_parser().parse_args(
        base + ["--intermediate_distill", "False", "--pred_distill", "True", "--temperature", "2", "--do_eval",
                "--serve_for_online", "True"]))
    assert "continues the step-1 student" in capsys.readouterr().err
    best = second["snapshot"]
    assert best == os.path.join(out, "snapshot_best")
    served, served_config, _ = load_snapshot(best)
    assert set(served) == set(state) and served_config.hidden_size == 16
    assert snapshot_meta(best)["student_init"] == step1
    report = json.load(open(os.path.join(out, "results_eval.json")))
    assert report["num_examples"] == 48 and report["role"] == "student-tinybert"
    # the head moved in step 2: the student is not the step-1 snapshot any more
    assert not np.allclose(served["classifier.weight"], state["classifier.weight"])


def test_both_steps_in_one_run_from_teacher_layers_on_augmented_rows(tmp_path, tiny_model_dir, tiny_sst2_dir,
                                                                      capsys):
    out = str(tmp_path / "tinybert")
    args = tinybert_job.build_parser().parse_args(
        FAST + ["--data_dir", tiny_sst2_dir, "--teacher_model", tiny_model_dir, "--model_save_dir", out,
                "--train_example_num", "16", "--layer_list", "1,3", "--aug_train", "True", "--N", "2",
                "--do_train", "--do_eval"])
    result = tinybert_job.run(args)
    assert result["student_init"] == f"{tiny_model_dir} layers 1,3"
    assert 16 < result["train_rows"] <= 16 * 3  # each row plus at most N = 2 variants
    assert os.path.isfile(os.path.join(tiny_sst2_dir, "train_aug.tsv"))
    assert os.path.isdir(os.path.join(out, "snapshot_intermediate")) and result["eval"]["num_examples"] == 48
    state, config, _ = load_snapshot(result["snapshot"])
    assert config.num_hidden_layers == 2 and "objective.student.bert.encoder.layer.1.output.dense.weight" in state
    # a second run reuses the augmented rows
    args.model_save_dir = str(tmp_path / "again")
    args.do_eval = False
    args.pred_distill = False
    capsys.readouterr()
    tinybert_job.run(args)
    assert "augmented training set reused from" in capsys.readouterr().err


def test_presets_are_defaults_that_given_flags_override():
    original = tinybert_job.build_parser("original").parse_args([])
    assert (original.intermediate_epochs, original.intermediate_learning_rate) == (10, 2e-4)
    assert (original.num_epochs, original.learning_rate, original.temperature) == (4, 1e-4, 1.0)
    assert original.attention_loss == "scores" and original.aug_train is False
    augmented = tinybert_job.build_parser("augmented").parse_args(["--num_epochs", "3"])
    assert augmented.aug_train is True and augmented.N == 4 and augmented.num_epochs == 3
    assert augmented.intermediate_epochs == 1
    plain = tinybert_job.build_parser(None).parse_args([])
    assert plain.intermediate_epochs == 0 and plain.num_epochs == 3  # no preset: one budget for both steps
    assert tinybert_job.preset_of(["--seed", "1", "--preset", "augmented"]) == "augmented"


def test_one_run_gives_each_step_its_own_budget(tmp_path, tiny_model_dir, tiny_sst2_dir):
    args = tinybert_job.build_parser().parse_args(
        FAST + ["--data_dir", tiny_sst2_dir, "--teacher_model", tiny_model_dir, "--model_save_dir",
                str(tmp_path / "tinybert"), "--train_example_num", "32", "--layer_list", "1,3",
                "--intermediate_epochs", "3", "--intermediate_learning_rate", "5e-4", "--do_train"])
    result = tinybert_job.run(args)
    assert (result["intermediate"].steps, result["train"].steps) == (6, 2)  # 32 rows, batch 16


@pytest.mark.parametrize("extra,needles", [
    (["--student_hidden_size", "30"], ["hidden_size 30", "num_attention_heads 4"]),
    (["--student_num_attention_heads", "2", "--student_hidden_size", "16"], ["2 heads", "the teacher 4"]),
    (["--student_num_hidden_layers", "3"], ["3-layer student", "4-layer teacher"]),
    (["--layer_list", "1,3"], ["--layer_list", "leave out --student_model and --from_scratch"]),
])
def test_students_that_cannot_learn_layer_to_layer_are_refused(tiny_model_dir, tiny_sst2_dir, capsys, extra,
                                                               needles):
    argv = FAST + ["--data_dir", tiny_sst2_dir, "--teacher_model", tiny_model_dir, "--do_train"] + SMALL_STUDENT
    refused(tinybert_job.main, argv + extra, capsys, *needles)


def test_step_two_alone_needs_a_step_one_student(tiny_model_dir, tiny_sst2_dir, tmp_path, capsys):
    refused(tinybert_job.main, FAST + ["--data_dir", tiny_sst2_dir, "--teacher_model", tiny_model_dir,
                                      "--model_save_dir", str(tmp_path), "--intermediate_distill", "False",
                                      "--do_train"], capsys, "snapshot_intermediate")
    refused(tinybert_job.main, FAST + ["--data_dir", tiny_sst2_dir, "--teacher_model", tiny_model_dir,
                                      "--do_train"], capsys, "--student_model", "--layer_list", "--from_scratch")
    refused(tinybert_job.augment_main, ["--task_name", "SST-2", "--glue_dir", tiny_sst2_dir, "--p", "2"], capsys,
            "--p")


def test_data_augmentation_entry_writes_then_reuses(tmp_path, tiny_model_dir, tiny_sst2_dir, capsys):
    glue = os.path.dirname(tiny_sst2_dir)
    argv = ["--task_name", "SST-2", "--glue_dir", glue, "--pretrained_bert_model", tiny_model_dir,
            "--train_example_num", "8", "--N", "3", "--glove_embs", "glove.6B.100d.txt"]
    path, rows, reused = tinybert_job.augment(tinybert_job.augment_parser().parse_args(argv))
    assert path == os.path.join(tiny_sst2_dir, "train_aug.tsv") and 8 < rows <= 32 and not reused
    assert "no GloVe here" in capsys.readouterr().err
    assert tinybert_job.augment(tinybert_job.augment_parser().parse_args(argv))[2]


@pytest.mark.slow
def test_shell_scripts_on_the_shipped_data(tmp_path):
    """run_train_student_tinybert.sh then run_eval_student_tinybert.sh with the default teacher (trained if missing),
    a random 312-wide student (LAYER_LIST empty; the default starts from teacher layers 1,3,5)."""
    shutil.copytree(os.path.join(REPO_ROOT, "data", "glue_data", "SST-2"), tmp_path / "glue" / "SST-2")
    env = {**os.environ, "STUDENT_DIR": str(tmp_path / "tinybert"), "INTERMEDIATE_EPOCHS": "1", "EPOCHS": "1",
           "SEQ_LENGTH": "16", "LAYER_LIST": "", "DATA_ROOT": str(tmp_path / "glue"),
           "MODELS_DIR": str(tmp_path / "models")}
    train = subprocess.run(["bash", "run_scripts/run_train_student_tinybert.sh", "--train_example_num", "64"],
                           cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=3600)
    assert train.returncode == 0, train.stderr[-2000:]
    evaluated = subprocess.run(["bash", "run_scripts/run_eval_student_tinybert.sh"], cwd=REPO_ROOT, env=env,
                               capture_output=True, text=True, timeout=600)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    report = json.load(open(tmp_path / "tinybert" / "results_eval.json"))
    assert report["role"] == "student-tinybert"
    assert_matches_reference(report, str(tmp_path / "tinybert" / "snapshot_best"), str(tmp_path / "glue" / "SST-2"), 16)
    config = json.load(open(tmp_path / "tinybert" / "snapshot_best" / "config.json"))
    assert (config["hidden_size"], config["num_hidden_layers"]) == (312, 3)
