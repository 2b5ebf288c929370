"""Teacher / KD / BERT-PKD jobs end to end on a tiny model, plus the pieces they are made of."""

import json
import os

import numpy as np
import oneflow as flow
import pytest

from model_compress.distill import losses
from model_compress.distill.objectives import PKDObjective, TeacherTargets, WithOnlineTeacher
from model_compress.distill.teacher_cache import TeacherFileError, read_logits_file, write_logits_file
from model_compress.modeling.bert import BertForSequenceClassification
from model_compress.modeling.checkpoint import load_snapshot
from model_compress.modeling.config import BertConfig
from model_compress.recipes import kd as kd_recipe
from model_compress.recipes import pkd as pkd_recipe
from model_compress.recipes import student as student_recipe
from model_compress.recipes import teacher as teacher_job
from tests.conftest import TINY_BERT
from tests.support import refused

FAST = ["--seq_length", "24", "--batch_size_per_device", "16", "--eval_batch_size_per_device", "16",
        "--learning_rate", "1e-3", "--task_name", "sst-2"]


def test_logits_file_round_trip_and_errors(tmp_path):
    logits = np.array([[0.5, -1.25], [3.0, 2.0], [-0.001, 7.5]], dtype=np.float32)
    path = str(tmp_path / "logits.tsv")
    write_logits_file(path, logits)
    assert open(path).read().splitlines()[1] == "3,2"
    np.testing.assert_allclose(read_logits_file(path, 3, 2), logits, rtol=1e-6)
    with pytest.raises(TeacherFileError, match="3 rows of logits but the training set has 4"):
        read_logits_file(path, 4, 2)
    with pytest.raises(TeacherFileError, match="line 1: 2 logits but the task has 3 labels"):
        read_logits_file(path, 3, 3)
    (tmp_path / "bad.tsv").write_text("1,2\n1,x\n")
    with pytest.raises(TeacherFileError, match="line 2: not a number"):
        read_logits_file(str(tmp_path / "bad.tsv"), 2, 2)


def _batch(seed=0, batch=4, seq=10, vocab=200):
    rs = np.random.RandomState(seed)
    mask = np.ones((batch, seq), np.int32)
    mask[0, 6:] = 0
    return [flow.tensor(rs.randint(5, vocab, (batch, seq)).astype(np.int32)), flow.tensor(mask),
            flow.tensor(np.zeros((batch, seq), np.int32)), flow.tensor(rs.randint(0, 2, (batch, 1)).astype(np.int32))]


def test_pkd_objective_matches_its_formula_and_online_equals_cached():
    flow.manual_seed(1)
    teacher = BertForSequenceClassification(BertConfig(vocab_size=200, **TINY_BERT)).eval()
    student = BertForSequenceClassification(BertConfig(vocab_size=200, **{**TINY_BERT, "num_hidden_layers": 2}))
    student.eval()
    ids, mask, seg, labels = _batch()
    targets = TeacherTargets(teacher, cls_layers=[2])
    t_logits, t_cls = targets(ids, mask, seg)
    objective = PKDObjective(student, [1], temperature=3.0, alpha=0.4, beta=7.0)
    loss, _ = objective(ids, mask, seg, labels, t_logits, t_cls)

    s_logits, enc = student(ids, seg, mask, output_hidden_states=True)
    y = labels.reshape(-1).to(flow.int64)
    expected = (0.6 * losses.cross_entropy_per_example(s_logits, y).mean()
                + 0.4 * losses.soft_label_loss(s_logits, t_logits, 3.0)
                + 7.0 * losses.normalized_state_distance(enc.hidden_states[1][:, 0:1], t_cls))
    assert float(loss.numpy()) == pytest.approx(float(expected.numpy()), rel=1e-5)

    online = WithOnlineTeacher(objective, targets)
    assert online.input_names == ("input_ids", "input_mask", "segment_ids", "label_ids")
    online_loss, _ = online(ids, mask, seg, labels)
    assert float(online_loss.numpy()) == pytest.approx(float(loss.numpy()), rel=1e-6)
    assert all(not p.requires_grad for p in teacher.parameters())


def test_teacher_kd_pkd_pipeline(tmp_path, tiny_model_dir, tiny_sst2_dir):
    out = str(tmp_path)
    data = ["--data_dir", tiny_sst2_dir]
    teacher = teacher_job.build_parser().parse_args(
        FAST + data + ["--model_load_dir", tiny_model_dir, "--model_save_dir", f"{out}/teacher", "--num_epochs", "2",
                       "--do_train", "--do_eval", "--export_logits", f"{out}/logits.tsv"])
    result = teacher_job.run(teacher)
    best = result["snapshot"]
    assert best == f"{out}/teacher/snapshot_best" and os.path.isdir(best)
    report = json.load(open(f"{out}/teacher/results_eval.json"))
    for key in ("accuracy", "mcc", "precision", "recall", "f1", "model_size_mib", "eval_samples_per_second",
                "parameters", "snapshot", "flags", "task"):
        assert key in report
    assert len(open(f"{out}/logits.tsv").read().splitlines()) == 96
    # best-dev selection: the kept snapshot is the step with the highest dev accuracy
    history = result["train"].history
    best_step, best_metrics = max(history, key=lambda item: item[1]["accuracy"])
    assert result["train"].best_step == best_step
    assert report["accuracy"] == pytest.approx(best_metrics["accuracy"])
    # the combined run reports what a separate evaluation of the kept snapshot measures
    alone = teacher_job.run(teacher_job.build_parser().parse_args(
        FAST + data + ["--model_load_dir", best, "--model_save_dir", f"{out}/teacher_eval", "--do_eval"]))["eval"]
    for key in ("accuracy", "mcc", "precision", "recall", "f1"):
        assert report[key] == pytest.approx(alone[key], abs=1e-9), key

    student_recipe.generate_student_model(best, f"{out}/student_init", "1,3")
    state, config, _ = load_snapshot(f"{out}/student_init")
    assert config.num_hidden_layers == 2

    kd = kd_recipe.build_parser().parse_args(
        FAST + data + ["--student_model", f"{out}/student_init", "--teacher_logits", f"{out}/logits.tsv",
                       "--model_save_dir", f"{out}/kd", "--num_epochs", "1", "--do_train", "--do_eval"])
    assert os.path.isfile(os.path.join(kd_recipe.run(kd)["snapshot"], "snapshot.json"))

    def pkd(extra):
        args = pkd_recipe.build_parser().parse_args(
            FAST + data + ["--teacher_model", best, "--student_model", f"{out}/student_init", "--num_epochs", "1",
                           "--do_train", "--do_eval"] + extra)
        return pkd_recipe.run(args)

    served = pkd(["--model_save_dir", f"{out}/pkd_served", "--serve_for_online", "True"])
    keys = set(load_snapshot(served["snapshot"])[0])
    assert keys == set(state), "SERVE_FOR_ONLINE keeps exactly the student's tensors"

    full = pkd(["--model_save_dir", f"{out}/pkd_full", "--pkd_variant", "original", "--teacher_mode", "online"])
    keys = set(load_snapshot(full["snapshot"])[0])
    assert any(k.startswith("targets.teacher.") for k in keys) and any("fit_dense" in k for k in keys)
    # the evaluation path strips everything but the student from such a snapshot
    assert full["eval"]["num_examples"] == 48


def test_teacher_cache_is_reused_and_matches_a_fresh_forward(tmp_path, tiny_model_dir, tiny_sst2_dir, capsys):
    args = pkd_recipe.build_parser().parse_args(
        FAST + ["--data_dir", tiny_sst2_dir, "--teacher_model", tiny_model_dir, "--from_scratch",
                "--student_num_hidden_layers", "2", "--model_save_dir", str(tmp_path / "a"), "--max_steps", "2",
                "--do_train"])
    pkd_recipe.run(args)
    assert "cached in" in capsys.readouterr().err
    args.model_save_dir = str(tmp_path / "b")
    pkd_recipe.run(args)
    assert "reused from" in capsys.readouterr().err
    cache_root = os.path.join(tiny_sst2_dir, "teacher_cache")
    (entry,) = os.listdir(cache_root)
    cached_cls = np.load(os.path.join(cache_root, entry, "teacher_cls.npy"))
    assert cached_cls.shape == (96, 1, 32)  # skip mapping of a 2-layer student on 4 layers: teacher layer 2


def test_bad_flags_fail_with_one_line(tmp_path, tiny_model_dir, tiny_sst2_dir, capsys):
    """The entry points end a user mistake in one line and exit code 2; below them it is a RecipeError."""
    from model_compress.errors import RecipeError

    refused(kd_recipe.main, FAST + ["--data_dir", tiny_sst2_dir, "--student_model", tiny_model_dir, "--alpha",
                                         "1.5", "--do_train"], capsys, "--alpha must be in")
    refused(student_recipe.generate_main, ["--teacher_model", tiny_model_dir, "--student_model", str(tmp_path / "s"),
                                        "--layer_list", "1,9"], capsys, "layer 9 is outside")
    with pytest.raises(RecipeError, match="layer 9 is outside"):
        student_recipe.generate_student_model(tiny_model_dir, str(tmp_path / "s"), "1,9")
    refused(teacher_job.main, ["--data_dir", str(tmp_path / "nope"), "--do_train"], capsys, "does not exist")
    assert not (tmp_path / "s").exists()
