"""Distilled BiLSTM: padding-exact final states (against OneFlow's own bidirectional nn.LSTM on unpadded
rows), the step-by-step recurrence = nn.LSTM (outputs and gradients), nn.Graph = eager, the KD step
compiled, a 2-process run under OneFlow's launcher, the shell scripts end to end, and refused inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import oneflow as flow
import pytest

from model_compress.distill.objectives import VanillaKDObjective
from model_compress.distill.teacher_cache import write_logits_file
from model_compress.modeling.checkpoint import load_snapshot
from model_compress.modeling.config import LSTMConfig
from model_compress.modeling.lstm import DistilledBiLSTM, LSTMDirection, reverse_within_length, set_recurrence
from model_compress.recipes import bilstm as bilstm_job
from model_compress.serving import ServingError
from model_compress.serving.servable import load_servable
from model_compress.training.graph import EagerTrainStep, EvalGraph, TrainGraph
from model_compress.training.objectives import ClassifierLogits
from model_compress.training.optim import build_optimizer
from tests.conftest import REPO_ROOT
from tests.support import TINY_RUN, clean_success, refused
from tests.support import run_shell_script as _bash

SMALL = dict(vocab_size=50, embedding_size=6, hidden_size=5, intermediate_size=7, hidden_dropout_prob=0.0)
LENGTHS = (7, 3, 1, 5)


def _batch(seq=7, seed=0):
    rs = np.random.RandomState(seed)
    ids = rs.randint(1, 50, (len(LENGTHS), seq)).astype(np.int32)
    mask = (np.arange(seq)[None, :] < np.array(LENGTHS)[:, None]).astype(np.int32)
    return flow.tensor(ids), flow.tensor(np.zeros_like(ids)), flow.tensor(mask)


def test_reversal_within_length():
    index, last = reverse_within_length(flow.tensor(np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], np.int32)))
    np.testing.assert_array_equal(index.numpy(), [[2, 1, 0, 3, 4], [4, 3, 2, 1, 0]])
    np.testing.assert_array_equal(last.numpy().reshape(-1), [2, 4])


LSTM_WEIGHTS = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")


def test_a_direction_has_the_parameters_and_initial_values_of_nn_lstm():
    flow.manual_seed(3)
    reference = dict(flow.nn.LSTM(6, 5, batch_first=True).named_parameters())
    flow.manual_seed(3)
    direction = dict(LSTMDirection(6, 5).named_parameters())
    assert list(direction) == list(reference) == list(LSTM_WEIGHTS)
    for name, value in reference.items():
        np.testing.assert_array_equal(direction[name].numpy(), value.numpy())  # snapshots load either way
    assert 0 < np.abs(reference["weight_hh_l0"].numpy()).max() <= 1 / np.sqrt(5)


def test_unrolled_recurrence_equals_nn_lstm_in_outputs_and_gradients():
    flow.manual_seed(0)
    reference = flow.nn.LSTM(6, 5, batch_first=True)
    direction = set_recurrence(LSTMDirection(6, 5), False)
    with flow.no_grad():
        for name in LSTM_WEIGHTS:
            getattr(direction, name).copy_(getattr(reference, name))
    rs = np.random.RandomState(0)
    x = rs.randn(4, 7, 6).astype(np.float32)
    x[1, 3:] = 0.0  # zero-padded rows too
    probe = flow.tensor(rs.randn(4, 7, 5).astype(np.float32))
    outputs, grads = [], []
    for module, call in ((reference, lambda m, t: m(t)[0]), (direction, lambda m, t: m(t, flow.zeros(4, 5)))):
        inputs = flow.tensor(x, requires_grad=True)
        out = call(module, inputs)
        (out * probe).sum().backward()
        outputs.append(out.numpy())
        grads.append([inputs.grad.numpy()] + [getattr(module, name).grad.numpy() for name in LSTM_WEIGHTS])
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-5, atol=1e-6)
    for got, expected in zip(grads[1], grads[0]):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_both_recurrences_give_the_model_the_same_logits_and_gradients_on_padded_batches():
    results = []
    for fused in (True, False):
        flow.manual_seed(0)
        model = set_recurrence(DistilledBiLSTM(LSTMConfig(**SMALL, num_layers=2)), fused)
        ids, segments, mask = _batch()
        logits = model(ids, segments, mask)[0]
        (logits * flow.tensor([[1.0, -2.0]])).sum().backward()
        results.append((logits.numpy(), {k: v.grad.numpy() for k, v in model.named_parameters() if ".lstm" in f".{k}"}))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-5, atol=1e-6)
    assert len(results[0][1]) == 16
    for name, grad in results[0][1].items():
        assert np.abs(grad).max() > 0, name
        np.testing.assert_allclose(results[1][1][name], grad, rtol=1e-4, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("fused", [True, False])
def test_final_states_ignore_padding_like_a_bidirectional_lstm_on_unpadded_rows(fused):
    flow.manual_seed(0)
    model = set_recurrence(DistilledBiLSTM(LSTMConfig(**SMALL)).eval(), fused)
    reference = flow.nn.LSTM(6, 5, batch_first=True, bidirectional=True)
    layer = model.lstm[0]
    with flow.no_grad():
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(reference, name).copy_(getattr(layer.fw, name))
            getattr(reference, name + "_reverse").copy_(getattr(layer.bw, name))
        ids, segments, mask = _batch()
        logits = model(ids, segments, mask)[0].numpy()
        for row, length in enumerate(LENGTHS):
            _, (h_n, _) = reference(model.word_embeddings(ids[row:row + 1, :length]))
            features = flow.cat([h_n[0], h_n[1]], dim=-1)
            expected = model.classifier(flow.relu(model.dense(features))).numpy()
            np.testing.assert_allclose(logits[row:row + 1], expected, rtol=1e-5, atol=1e-6)
        # whatever sits in the padding does not matter, with two stacked layers too
        deep = set_recurrence(DistilledBiLSTM(LSTMConfig(**SMALL, num_layers=2)).eval(), fused)
        noisy = flow.tensor(np.where(mask.numpy() == 1, ids.numpy(), 49).astype(np.int32))
        np.testing.assert_allclose(deep(noisy, segments, mask)[0].numpy(), deep(ids, segments, mask)[0].numpy(),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(EvalGraph(ClassifierLogits(deep))(ids, mask, segments).numpy(),
                                   deep(ids, segments, mask)[0].numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bidirectional, fused", [(True, None), (False, None), (True, False)])
def test_kd_step_compiles_and_matches_eager(bidirectional, fused):
    def one_step(compiled: bool) -> tuple[float, np.ndarray]:
        flow.manual_seed(1)
        model = set_recurrence(DistilledBiLSTM(LSTMConfig(**SMALL, bidirectional=bidirectional)), fused)
        objective = VanillaKDObjective(model, temperature=2.0, alpha=0.5).train()
        optimizer = build_optimizer(objective, 1e-2, weight_decay=0.0, clip_grad_norm=None)
        step = TrainGraph(objective, optimizer) if compiled else EagerTrainStep(objective, optimizer)
        ids, segments, mask = _batch()
        labels = flow.tensor(np.array([[0], [1], [1], [0]], np.int32))
        teacher = flow.tensor(np.random.RandomState(2).randn(4, 2).astype(np.float32))
        loss = float(step(ids, mask, segments, labels, teacher)[0].numpy())
        return loss, model.lstm[0].fw.weight_ih_l0.numpy()

    loss, weights = one_step(True)
    eager_loss, eager_weights = one_step(False)
    assert np.isfinite(loss) and loss == pytest.approx(eager_loss, rel=1e-5)
    np.testing.assert_allclose(weights, eager_weights, rtol=1e-4, atol=1e-6)


STUDENT = ["--student_hidden_size", "8", "--student_embedding_size", "12", "--student_intermediate_size", "10"]


def _lstm_job(*args: str, launcher: list[str], cwd) -> subprocess.CompletedProcess:
    script = os.path.join(REPO_ROOT, "model_compress", "distil", "task_student_kd_lstm.py")
    return subprocess.run([sys.executable, *launcher, script, *args], capture_output=True, text=True, timeout=600,
                          cwd=str(cwd))


def test_two_process_run_trains_and_evaluates_like_one_process(tmp_path, tiny_model_dir, tiny_sst2_dir):
    """Under OneFlow's launcher the student (global, batch split over 2 ranks) runs the step-by-step
    recurrence; its snapshot, evaluated by one process with the fused op, gives the same dev metrics."""
    out = tmp_path / "out"
    data = ["--task_name", "SST-2", "--data_dir", tiny_sst2_dir, "--seq_length", "16"]
    # hard labels, no dropout and a high rate: 30 steps make a student that predicts both classes
    learner = ["--student_hidden_size", "32", "--student_embedding_size", "32", "--student_intermediate_size", "32",
               "--student_hidden_dropout_prob", "0", "--kd_alpha", "0", "--learning_rate", "3e-2"]
    done = _lstm_job(*data, *learner, "--teacher_model", tiny_model_dir, "--model_save_dir", str(out),
                     "--batch_size_per_device", "8", "--num_epochs", "5", "--eval_batch_size_per_device", "7",
                     "--do_train", "--do_eval",
                     launcher=["-m", "oneflow.distributed.launch", "--nproc_per_node", "2", "--master_port", "29751"],
                     cwd=tmp_path)
    clean_success(done)
    assert sorted(os.listdir(out)) == ["results_eval.json", "snapshot_best"]
    assert "| 30/30 [" in done.stderr  # 96 rows, 2 ranks x 8: 6 steps an epoch
    report = json.loads((out / "results_eval.json").read_text())
    assert report["num_examples"] == 48 and 0.0 < report["f1"] < 1.0, "the student predicts both classes"
    alone = _lstm_job(*data, "--student_model", str(out / "snapshot_best"), "--model_save_dir", str(tmp_path / "one"),
                      "--do_eval", launcher=[], cwd=tmp_path)
    clean_success(alone)
    again = json.loads((tmp_path / "one" / "results_eval.json").read_text())
    for metric in ("num_examples", "accuracy", "f1", "mcc"):
        assert again[metric] == pytest.approx(report[metric], abs=1e-9), metric


def test_script_trains_and_evaluates_a_bilstm_student(tmp_path, tiny_model_dir, tiny_sst2_dir):
    """The train script in one process (NPROC=1; its launcher branch is run_ranks, tested with the teacher's script,
    and the 2-process job is tested above)."""
    out = tmp_path / "kd_lstm"
    env = {"DATA_ROOT": os.path.dirname(tiny_sst2_dir), "dataset": "SST-2", "FT_BERT_BASE_DIR": tiny_model_dir,
           "STUDENT_DIR": str(out), "STUDENT_NUM_HIDDEN_LAYERS": "2", "NPROC": "1"}
    done = _bash("run_train_student_distilled_lstm.sh", env, TINY_RUN + STUDENT + ["--student_seq_length", "8"])
    clean_success(done)
    state, config, meta = load_snapshot(str(out / "snapshot_best"))
    assert isinstance(config, LSTMConfig) and config.num_layers == 2 and config.bidirectional
    assert config.max_seq_length == 8 and config.hidden_size == 8 and config.embedding_size == 12
    assert config.vocab_size == 30522, "the embedding covers the teacher's vocabulary"
    assert meta["role"] == "student-bilstm" and "lstm.1.bw.weight_hh_l0" in state
    report = json.load(open(out / "results_eval.json"))
    for key in ("accuracy", "mcc", "f1", "parameters", "model_size_mib", "eval_samples_per_second"):
        assert key in report
    assert report["num_examples"] == 32
    with pytest.raises(ServingError, match="distilled_bilstm model: export and predict serve BERT"):
        load_servable(str(out / "snapshot_best"))

    done = _bash("run_eval_student_distilled_lstm.sh", {**env, "RESULT_DIR": str(tmp_path / "eval")},
                 ["--dev_example_num", "32", "--seq_length", "16"])
    clean_success(done)
    assert json.load(open(tmp_path / "eval" / "results_eval.json"))["accuracy"] == pytest.approx(report["accuracy"])


@pytest.mark.parametrize("teacher", ["logits_file", "online"])
def test_other_teacher_signals_and_a_unidirectional_student(teacher, tmp_path, tiny_model_dir, tiny_sst2_dir):
    logits = str(tmp_path / "logits.tsv")
    write_logits_file(logits, np.random.RandomState(0).randn(64, 2).astype(np.float32))
    signal = ["--teacher_logits", logits] if teacher == "logits_file" else ["--teacher_mode", "online"]
    args = bilstm_job.build_parser().parse_args(
        TINY_RUN + STUDENT + signal + ["--task_name", "SST-2", "--data_dir", tiny_sst2_dir, "--teacher_model",
                                       tiny_model_dir, "--student_seq_length", "8", "--bidirectional", "False",
                                       "--student_embedding_size", "0", "--model_save_dir", str(tmp_path / "s"),
                                       "--do_train", "--do_eval"])
    result = bilstm_job.run(args)
    state, config, _ = load_snapshot(result["snapshot"])
    assert not config.bidirectional and config.embedding_size == config.hidden_size == 8
    assert not any(k.startswith(("targets.", "objective.")) for k in state), "the snapshot is the student alone"
    assert result["eval"]["num_examples"] == 32


def test_bad_bilstm_inputs_fail_in_one_line(tmp_path, tiny_model_dir, tiny_sst2_dir, capsys):

    base = ["--task_name", "SST-2", "--data_dir", tiny_sst2_dir, "--teacher_model", tiny_model_dir, "--do_train",
            "--model_save_dir", str(tmp_path / "s"), "--seq_length", "16"]
    refused(bilstm_job.main, base + ["--kd_alpha", "1.5"], capsys, "--kd_alpha")
    refused(bilstm_job.main, base + ["--student_hidden_size", "0"], capsys, "--student_hidden_size must be positive")
    refused(bilstm_job.main, base[:4] + ["--do_train"], capsys, "--teacher_model", "--teacher_logits")
    wrong = str(tmp_path / "wrong.tsv")
    write_logits_file(wrong, np.zeros((5, 2), np.float32))
    refused(bilstm_job.main, base + ["--teacher_logits", wrong, "--train_example_num", "64"], capsys, "wrong.tsv")
    assert not os.path.exists(tmp_path / "s")
