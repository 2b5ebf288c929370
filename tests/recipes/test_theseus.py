"""BERT-of-Theseus: the replacing schedule, the mixed forward (rate 0 = predecessor, rate 1 = successor,
graph = eager), one compiled training step, the two-phase shell script, and refused inputs."""

from __future__ import annotations

import json
import os

import numpy as np
import oneflow as flow
import pytest

from model_compress.distill.theseus import ReplacingGates, ReplacingSchedule, TheseusObjective
from model_compress.modeling.bert import BertForSequenceClassification
from model_compress.modeling.checkpoint import load_snapshot, module_state_numpy
from model_compress.modeling.config import BertConfig
from model_compress.recipes.theseus import successor_from
from model_compress.training.graph import EagerTrainStep, EvalGraph, TrainGraph
from model_compress.training.optim import build_optimizer
from model_compress.training.sources import ArrayBatches
from tests.conftest import TINY_BERT
from tests.support import TINY_RUN, assert_matches_reference, clean_success, one_line_failure, run_script
from tests.support import run_shell_script as _bash


def test_linear_and_constant_schedules():
    linear = ReplacingSchedule(0.3, "linear", 0.1)
    assert [round(linear.rate(s), 6) for s in (0, 1, 2, 6, 7, 8, 1000)] == [0.3, 0.4, 0.5, 0.9, 1.0, 1.0, 1.0]
    assert not linear.successor_only
    constant = ReplacingSchedule(0.5, "none", 0.1, steps_for_replacing=5)
    assert [constant.rate(s) for s in (0, 4, 5, 50)] == [0.5, 0.5, 1.0, 1.0]
    assert ReplacingSchedule(0.5).rate(10**6) == 0.5  # steps_for_replacing 0: never switches
    assert ReplacingSchedule(1.0).successor_only
    for bad in (dict(replacing_rate=1.5), dict(replacing_rate=-0.1),
                dict(replacing_rate=0.5, scheduler_type="cosine"),
                dict(replacing_rate=0.5, scheduler_linear_k=-1.0), dict(replacing_rate=0.5, steps_for_replacing=-2)):
        with pytest.raises(ValueError):
            ReplacingSchedule(**bad)


def test_gates_follow_the_schedule_and_are_seeded():
    source = ArrayBatches({"input_ids": np.zeros((12, 4), np.int32)}, batch_size=4)

    def drawn(schedule, steps, seed=7):
        gates = ReplacingGates(source, schedule, num_blocks=3, seed=seed)
        return np.stack([gates.draw() for _ in range(steps)])

    assert drawn(ReplacingSchedule(0.0), 50).sum() == 0
    assert drawn(ReplacingSchedule(1.0), 50).min() == 1
    assert abs(drawn(ReplacingSchedule(0.3), 4000).mean() - 0.3) < 0.02
    ramp = drawn(ReplacingSchedule(0.0, "linear", 0.001), 1000)  # rate 0 -> 0.999
    assert ramp[:200].mean() < 0.2 < 0.8 < ramp[800:].mean()
    np.testing.assert_array_equal(drawn(ReplacingSchedule(0.5), 20), drawn(ReplacingSchedule(0.5), 20))
    # every batch row carries the step's draw; steps advance per batch across epochs
    gates = ReplacingGates(source, ReplacingSchedule(0.5), num_blocks=3, seed=7)
    batches = []
    for epoch in range(2):
        gates.set_epoch(epoch)
        batches += [batch["replace_gates"].numpy() for batch in gates]
    assert gates.step == 6 and all(b.shape == (4, 3) and (b == b[0]).all() for b in batches)
    np.testing.assert_array_equal(np.stack([b[0] for b in batches]), drawn(ReplacingSchedule(0.5), 6))


def _models():
    flow.manual_seed(3)
    teacher = BertForSequenceClassification(BertConfig(vocab_size=120, **TINY_BERT)).eval()
    successor = successor_from(teacher, 2).eval()
    with flow.no_grad():  # the successor's layers start as copies of the teacher's first two: make them differ
        for p in successor.bert.encoder.parameters():
            p.add_(flow.randn(*p.shape) * 0.05)
    return teacher, successor


def _inputs(batch=3, seq=9):
    rs = np.random.RandomState(0)
    mask = np.ones((batch, seq), np.int32)
    mask[1, 5:] = 0
    return (flow.tensor(rs.randint(4, 120, (batch, seq)).astype(np.int32)), flow.tensor(mask),
            flow.tensor(np.zeros((batch, seq), np.int32)), flow.tensor(rs.randint(0, 2, (batch, 1)).astype(np.int32)))


def _gates(values, batch=3):
    return flow.tensor(np.tile(np.asarray(values, np.float32), (batch, 1)))


def test_rate_zero_is_the_predecessor_rate_one_the_successor_and_graph_equals_eager():
    teacher, successor = _models()
    objective = TheseusObjective(successor, teacher.bert.encoder.layer).eval()
    ids, mask, seg, labels = _inputs()
    with flow.no_grad():
        predecessor_logits = teacher(ids, seg, mask)[0].numpy()
        successor_logits = successor(ids, seg, mask)[0].numpy()
        _, kept = objective(ids, mask, seg, labels, _gates([0, 0]))
        _, replaced = objective(ids, mask, seg, labels, _gates([1, 1]))
        # a mixed draw: successor layer 0, then the predecessor's second block (its layers 2 and 3)
        _, mixed = objective(ids, mask, seg, labels, _gates([1, 0]))
        hidden = successor.bert.embeddings(ids, seg)
        additive = (1.0 - mask.to(flow.float32).unsqueeze(1).unsqueeze(2)) * -10000.0
        hidden = successor.bert.encoder.layer[0](hidden, additive)[0]
        for layer in teacher.bert.encoder.layer[2:]:
            hidden = layer(hidden, additive)[0]
        expected_mixed = successor.classifier(successor.bert.pooler(hidden)).numpy()
    assert not np.allclose(predecessor_logits, successor_logits, atol=1e-3)
    np.testing.assert_allclose(kept.numpy(), predecessor_logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(replaced.numpy(), successor_logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mixed.numpy(), expected_mixed, rtol=1e-5, atol=1e-6)

    graph = EvalGraph(objective)
    for values, eager in (([0, 0], kept), ([1, 1], replaced), ([1, 0], mixed), ([0, 1], None)):
        _, logits = graph(ids, mask, seg, labels, _gates(values))
        if eager is None:
            with flow.no_grad():
                eager = objective(ids, mask, seg, labels, _gates(values))[1]
        np.testing.assert_allclose(logits.numpy(), eager.numpy(), rtol=1e-4, atol=1e-5)


def test_a_compiled_step_trains_only_the_chosen_successor_layers_like_eager():
    def step_once(compiled: bool):
        teacher, successor = _models()
        objective = TheseusObjective(successor, teacher.bert.encoder.layer).train()
        optimizer = build_optimizer(objective, 1e-2, weight_decay=0.0, clip_grad_norm=None)
        step = TrainGraph(objective, optimizer) if compiled else EagerTrainStep(objective, optimizer)
        before = module_state_numpy(objective)
        loss = float(step(*_inputs(), _gates([1, 0]))[0].numpy())
        return loss, before, module_state_numpy(objective)

    loss, before, after = step_once(compiled=True)
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    assert not any(k.startswith("predecessor.") for k in changed), "the predecessor is frozen"
    assert any(k.startswith("successor.bert.encoder.layer.0.") for k in changed)
    assert not any(k.startswith("successor.bert.encoder.layer.1.") for k in changed), "block 1 kept its predecessor"
    assert {"successor.bert.embeddings.word_embeddings.weight", "successor.classifier.weight"} <= changed
    eager_loss, _, eager_after = step_once(compiled=False)
    assert loss == pytest.approx(eager_loss, rel=1e-5)
    for key in changed:
        np.testing.assert_allclose(after[key], eager_after[key], rtol=1e-4, atol=1e-5, err_msg=key)


def test_two_phase_script_ends_in_an_evaluable_student(tmp_path, tiny_model_dir, tiny_sst2_dir):
    out = tmp_path / "runs"
    env = {"DATA_ROOT": os.path.dirname(tiny_sst2_dir), "dataset": "SST-2", "FT_BERT_BASE_DIR": tiny_model_dir,
           "TMP_STUDENT_DIR": str(out / "phase1"), "STUDENT_DIR": str(out / "theseus"),
           "STUDENT_NUM_HIDDEN_LAYERS": "2", "REPLACING_RATE": "0.3", "SCHEDULER_TYPE": "linear",
           "SCHEDULER_LINEAR_K": "0.2"}
    done = _bash("run_train_theseus.sh", env, TINY_RUN)
    clean_success(done)
    assert "phase 1" in done.stdout and "phase 2" in done.stdout
    phase1 = json.load(open(out / "phase1" / "snapshot_best" / "snapshot.json"))
    assert phase1["meta"]["phase"] == 1 and phase1["meta"]["schedule"]["scheduler_type"] == "linear"
    state, config, meta = load_snapshot(str(out / "theseus" / "snapshot_best"))
    assert config.num_hidden_layers == 2 and meta["phase"] == 2
    assert set(state) == set(module_state_numpy(BertForSequenceClassification(config))), "a plain student"
    report = json.load(open(out / "theseus" / "results_eval.json"))
    assert report["role"] == "student-theseus"
    assert_matches_reference(report, str(out / "theseus" / "snapshot_best"), tiny_sst2_dir, 16, rows=32)

    os.remove(out / "theseus" / "results_eval.json")
    done = _bash("run_eval_theseus.sh", {**env, "RESULT_DIR": str(out / "eval")},
                 ["--dev_example_num", "32", "--seq_length", "16"])
    clean_success(done)
    again = json.load(open(out / "eval" / "results_eval.json"))
    assert again["accuracy"] == pytest.approx(report["accuracy"])


def test_bad_theseus_inputs_fail_in_one_line(tmp_path, tiny_model_dir, tiny_sst2_dir):
    base = ["--task_name", "SST-2", "--data_dir", tiny_sst2_dir, "--model_save_dir", str(tmp_path / "s"),
            "--seq_length", "16", "--do_train"]
    done = run_script("distil/task_theseus.py", base + ["--teacher_model", tiny_model_dir,
                                                        "--student_num_hidden_layers", "3"])
    one_line_failure(done, "--student_num_hidden_layers 3", "does not divide a 4-layer teacher")
    done = run_script("distil/task_theseus.py", base + ["--teacher_model", tiny_model_dir, "--replacing_rate", "1.5"])
    one_line_failure(done, "--replacing_rate must be in [0, 1]")
    done = run_script("distil/task_theseus.py", base + ["--replacing_rate", "1"])
    one_line_failure(done, "--student_model")
    done = run_script("distil/task_theseus.py", base + ["--replacing_rate", "0.5"])
    one_line_failure(done, "--teacher_model")
    assert not os.path.exists(tmp_path / "s")
