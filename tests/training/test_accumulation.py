"""Gradient accumulation: a batch split into micro-batches takes the step of the whole batch."""

from __future__ import annotations

import numpy as np
import oneflow as flow
import pytest

from model_compress.modeling.bert import BertForSequenceClassification
from model_compress.modeling.config import BertConfig
from model_compress.training.graph import make_train_step
from model_compress.training.loop import check_micro_batches
from model_compress.training.nonfinite import checked_loss
from model_compress.training.objectives import ClassificationObjective
from model_compress.training.optim import build_optimizer, build_scheduler
from tests.conftest import TINY_BERT


def _inputs(rows: int = 16, length: int = 12) -> list[flow.Tensor]:
    rs = np.random.RandomState(1)
    ids = rs.randint(5, 60, (rows, length)).astype(np.int32)
    mask = np.ones((rows, length), np.int32)
    mask[::3, 8:] = 0  # some padded rows, so micro-batches differ from each other
    labels = (ids[:, 1] > 30).astype(np.int32)[:, None]
    return [flow.tensor(ids), flow.tensor(mask), flow.zeros(rows, length, dtype=flow.int32), flow.tensor(labels)]


def _train(micro_batches: int, eager: bool, steps: int = 4):
    flow.manual_seed(5)
    model = BertForSequenceClassification(BertConfig(vocab_size=64, **TINY_BERT))
    objective = ClassificationObjective(model)
    optimizer = build_optimizer(objective, 1e-2, clip_grad_norm=0.5, fused=False)  # clipping after averaging
    step = make_train_step(objective, optimizer, build_scheduler(optimizer, 10, 0.0), eager=eager,
                           micro_batches=micro_batches)
    inputs = _inputs()
    outputs = [step(*inputs) for _ in range(steps)]
    losses = [checked_loss(out[0], i) for i, out in enumerate(outputs)]
    params = {k: v.numpy() for k, v in model.state_dict().items()}
    return losses, params, outputs[-1] if outputs else None


@pytest.mark.parametrize("eager", [False, True])
def test_micro_batches_take_the_step_of_the_whole_batch(eager):
    whole_losses, whole, _ = _train(1, eager=False)
    losses, params, last = _train(4, eager=eager)
    np.testing.assert_allclose(losses, whole_losses, rtol=1e-4)
    assert max(np.abs(params[k] - whole[k]).max() for k in whole) < 1e-4  # float summation order only
    _, untrained, _ = _train(1, eager=False, steps=0)
    assert max(np.abs(untrained[k] - whole[k]).max() for k in whole) > 1e-2  # the steps did move them
    assert tuple(last[1].shape) == (16, 2)  # logits of every row, micro-batches concatenated in order
    if not eager:
        assert tuple(last[0].shape) == (4,)  # the graph gives one loss per micro-batch


def test_a_batch_that_does_not_split_is_refused():
    check_micro_batches(32, 4)
    with pytest.raises(ValueError, match="does not split into 3 equal micro-batches"):
        check_micro_batches(32, 3)
    with pytest.raises(ValueError, match="at least 1"):
        make_train_step(ClassificationObjective(BertForSequenceClassification(BertConfig(vocab_size=64, **TINY_BERT))),
                        None, micro_batches=0)
