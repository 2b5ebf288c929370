"""Relation losses (MiniLMv2 / PP-MiniLM) against a loop-by-loop numpy reference."""

from __future__ import annotations

import math

import numpy as np
import oneflow as flow
import pytest

from model_compress.distill import relations as R

# lengths 5, 3, 1 and 4 of L = 5: padded queries, keys and samples all occur
MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 0]], dtype=np.int32)
A = 4  # relation heads: student 2 x 6 = 12 wide (d_r 3), teacher 3 x 8 = 24 wide (d_r 6)


def _split(x: np.ndarray, heads: int) -> np.ndarray:
    b, h, n, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, n, heads, h * d // heads).transpose(0, 2, 1, 3)


def _kl_rows(s_vecs: np.ndarray, t_vecs: np.ndarray, query: int) -> float:
    """KL(softmax(t_q . t_k / sqrt(d_t)) || softmax(s_q . s_k / sqrt(d_s))) over the given keys."""
    def log_softmax(v):
        v = v - v.max()
        return v - math.log(np.exp(v).sum())

    s = log_softmax(s_vecs @ s_vecs[query] / math.sqrt(s_vecs.shape[-1]))
    t = log_softmax(t_vecs @ t_vecs[query] / math.sqrt(t_vecs.shape[-1]))
    return float((np.exp(t) * (t - s)).sum())


def np_token(s, t, mask, heads):
    s, t = _split(s, heads), _split(t, heads)
    total, rows = 0.0, 0
    for b in range(s.shape[0]):
        keys = np.flatnonzero(mask[b])
        for a in range(heads):
            for q_pos, _ in enumerate(keys):
                total += _kl_rows(s[b, a, keys], t[b, a, keys], q_pos)
                rows += 1
    return total / rows


def np_head(s, t, mask, heads):
    s, t = _split(s, heads), _split(t, heads)
    total, rows = 0.0, 0
    for b in range(s.shape[0]):
        for i in np.flatnonzero(mask[b]):
            for a in range(heads):
                total += _kl_rows(s[b, :, i], t[b, :, i], a)
                rows += 1
    return total / rows


def np_sample(s, t, mask, heads):
    s, t = _split(s, heads), _split(t, heads)
    total, rows = 0.0, 0
    for i in range(s.shape[2]):
        samples = np.flatnonzero(mask[:, i])
        for a in range(heads):
            for q_pos, _ in enumerate(samples):
                total += _kl_rows(s[samples, a, i], t[samples, a, i], q_pos)
                rows += 1
    return total / rows


NUMPY = {"token": np_token, "head": np_head, "sample": np_sample}
FLOW = {"token": R.token_relation_loss, "head": R.head_relation_loss, "sample": R.sample_relation_loss}


def _pair(seed: int = 0):
    rng = np.random.RandomState(seed)
    s = rng.randn(4, 2, 5, 6).astype(np.float32)
    t = (1.5 * rng.randn(4, 3, 5, 8)).astype(np.float32)
    return s, t


def _loss(kind, s, t, mask=MASK, heads=A) -> float:
    return float(FLOW[kind](flow.tensor(s), flow.tensor(t), flow.tensor(mask), heads).numpy())


def test_split_relation_heads_matches_reshape():
    s, _ = _pair()
    got = R.split_relation_heads(flow.tensor(s), 4).numpy()
    np.testing.assert_allclose(got, _split(s, 4), rtol=0, atol=0)
    assert R.split_relation_heads(flow.tensor(s), 2).shape == (4, 2, 5, 6)
    with pytest.raises(ValueError, match="does not divide"):
        R.split_relation_heads(flow.tensor(s), 5)


@pytest.mark.parametrize("kind", ["token", "head", "sample"])
def test_relation_loss_matches_numpy_on_padded_batch(kind):
    s, t = _pair()
    expected = NUMPY[kind](s.astype(np.float64), t.astype(np.float64), MASK, A)
    assert expected > 0
    assert _loss(kind, s, t) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("kind", ["token", "head", "sample"])
def test_relation_loss_matches_numpy_without_padding(kind):
    s, t = _pair(1)
    full = np.ones_like(MASK)
    expected = NUMPY[kind](s.astype(np.float64), t.astype(np.float64), full, 2)
    assert _loss(kind, s, t, full, 2) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("kind", ["token", "head", "sample"])
@pytest.mark.parametrize("garbage", [1e4, float("nan"), float("inf")])
def test_padded_positions_do_not_matter(kind, garbage):
    s, t = _pair(2)
    clean = _loss(kind, s, t)
    pad = MASK == 0  # [B, L]
    s2, t2 = s.copy(), t.copy()
    rng = np.random.RandomState(3)
    s2.transpose(0, 2, 1, 3)[pad] = garbage * rng.randn(int(pad.sum()), 2, 6)
    t2.transpose(0, 2, 1, 3)[pad] = garbage * rng.randn(int(pad.sum()), 3, 8)
    assert _loss(kind, s2, t2) == pytest.approx(clean, rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("kind", ["token", "head", "sample"])
def test_gradients_finite_and_zero_at_padding(kind):
    s, t = _pair(4)
    s[1, :, 3:] = np.nan
    student = flow.tensor(s, requires_grad=True)
    loss = FLOW[kind](student, flow.tensor(t), flow.tensor(MASK), A)
    loss.backward()
    grad = student.grad.numpy()
    assert np.isfinite(grad).all()
    assert np.abs(grad.transpose(0, 2, 1, 3)[MASK == 0]).max() == 0.0
    assert np.abs(grad).max() > 0


@pytest.mark.parametrize("kind", ["token", "head", "sample"])
def test_zero_when_student_equals_teacher(kind):
    s, _ = _pair(5)
    assert abs(_loss(kind, s, s.copy())) < 1e-6
    # the same projection seen with another attention-head split gives the same relations
    b, h, n, d = s.shape
    regrouped = s.transpose(0, 2, 1, 3).reshape(b, n, 4, 3).transpose(0, 2, 1, 3).copy()
    assert abs(_loss(kind, s, regrouped, heads=2)) < 1e-6


def test_multi_relation_weights_and_qkv_sum():
    s, t = _pair(6)
    alpha, beta = 0.2, 0.3
    parts = {kind: _loss(kind, s, t) for kind in FLOW}
    args = (flow.tensor(s), flow.tensor(t), flow.tensor(MASK), A)
    combined = float(R.multi_relation_loss(*args, alpha=alpha, beta=beta).numpy())
    want = (1 - alpha - beta) * parts["token"] + alpha * parts["head"] + beta * parts["sample"]
    assert combined == pytest.approx(want, rel=1e-5)
    assert float(R.multi_relation_loss(*args).numpy()) == pytest.approx(parts["token"], rel=1e-6)
    assert float(R.multi_relation_loss(*args, alpha=0.0, beta=1.0).numpy()) == pytest.approx(parts["sample"], rel=1e-6)
    qkv = float(R.qkv_relation_loss([args[0]] * 3, [args[1]] * 3, args[2], A, alpha, beta).numpy())
    assert qkv == pytest.approx(3 * combined, rel=1e-5)


def test_half_precision_inputs_are_computed_in_float32():
    s, t = _pair(7)
    loss = R.token_relation_loss(flow.tensor(s).to(flow.float16), flow.tensor(t).to(flow.float16),
                                 flow.tensor(MASK), A)
    assert loss.dtype == flow.float32
    expected = np_token(s.astype(np.float16).astype(np.float64), t.astype(np.float16).astype(np.float64), MASK, A)
    assert float(loss.numpy()) == pytest.approx(expected, rel=1e-3)
