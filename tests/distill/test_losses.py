"""Distillation losses against direct numpy computations of the formulas in docs/algorithms.md."""

import numpy as np
import oneflow as flow
import pytest

from model_compress.distill import losses
from model_compress.distill.mapping import pkd_mapping, uniform_mapping
from model_compress.modeling.slicing import parse_layer_list


def np_log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


@pytest.fixture
def logits():
    rs = np.random.RandomState(3)
    return rs.randn(5, 3).astype("float32") * 2, rs.randn(5, 3).astype("float32") * 3, rs.randint(0, 3, 5)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 5.0])
def test_soft_label_loss_is_t_squared_kl(logits, temperature):
    zs, zt, _ = logits
    lt, ls = np_log_softmax(zt / temperature), np_log_softmax(zs / temperature)
    expected = temperature**2 * (np.exp(lt) * (lt - ls)).sum(-1).mean()
    got = losses.soft_label_loss(flow.tensor(zs), flow.tensor(zt), temperature).numpy()
    assert got == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("alpha,temperature", [(0.0, 1.0), (0.2, 5.0), (0.5, 2.0), (1.0, 3.0)])
def test_vanilla_kd_mixes_hard_and_soft(logits, alpha, temperature):
    zs, zt, y = logits
    ce = -np_log_softmax(zs)[np.arange(5), y].mean()
    lt, ls = np_log_softmax(zt / temperature), np_log_softmax(zs / temperature)
    kl = (np.exp(lt) * (lt - ls)).sum(-1).mean()
    expected = (1 - alpha) * ce + alpha * temperature**2 * kl
    got = losses.vanilla_kd_loss(
        flow.tensor(zs), flow.tensor(zt), flow.tensor(y.astype("int64")), temperature, alpha
    ).numpy()
    assert got == pytest.approx(expected, rel=1e-5)


def test_soft_loss_zero_when_student_equals_teacher(logits):
    zs, _, _ = logits
    assert float(losses.soft_label_loss(flow.tensor(zs), flow.tensor(zs), 4.0).numpy()) == pytest.approx(0, abs=1e-6)


def test_patient_loss_normalises_states():
    rs = np.random.RandomState(0)
    hs, ht = rs.randn(4, 2, 8).astype("float32"), rs.randn(4, 2, 8).astype("float32")
    ns = hs / np.linalg.norm(hs, axis=-1, keepdims=True)
    nt = ht / np.linalg.norm(ht, axis=-1, keepdims=True)
    expected = ((ns - nt) ** 2).sum(-1).sum(-1).mean()
    got = losses.normalized_state_distance(flow.tensor(hs), flow.tensor(ht)).numpy()
    assert got == pytest.approx(expected, rel=1e-5)
    # scale invariance: only directions matter
    scaled = losses.normalized_state_distance(flow.tensor(hs * 7.0), flow.tensor(ht * 0.1)).numpy()
    assert scaled == pytest.approx(expected, rel=1e-5)


def test_soft_cross_entropy_and_mse_per_example():
    rs = np.random.RandomState(1)
    zs, zt = rs.randn(3, 4).astype("float32"), rs.randn(3, 4).astype("float32")
    pt = np.exp(np_log_softmax(zt / 2))
    expected = -(pt * np_log_softmax(zs / 2)).sum(-1)
    got = losses.soft_cross_entropy_per_example(flow.tensor(zs), flow.tensor(zt), 2.0).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    a, b = rs.randn(3, 2, 5).astype("float32"), rs.randn(3, 2, 5).astype("float32")
    np.testing.assert_allclose(losses.mse_per_example(flow.tensor(a), flow.tensor(b)).numpy(),
                               ((a - b) ** 2).reshape(3, -1).mean(-1), rtol=1e-5)


def test_pkd_mappings():
    assert pkd_mapping(6, 12, "skip") == [(1, 2), (2, 4), (3, 6), (4, 8), (5, 10)]
    assert pkd_mapping(6, 12, "last") == [(1, 7), (2, 8), (3, 9), (4, 10), (5, 11)]
    assert pkd_mapping(3, 6, "skip") == [(1, 2), (2, 4)]
    assert pkd_mapping(3, 6, "last") == [(1, 4), (2, 5)]
    assert uniform_mapping(3, 12) == [(0, 0), (1, 4), (2, 8), (3, 12)]
    with pytest.raises(ValueError, match="skip"):
        pkd_mapping(3, 6, "middle")
    with pytest.raises(ValueError, match="cannot map"):
        pkd_mapping(7, 6, "skip")


@pytest.mark.parametrize("text,message", [
    ("2,6,12", "outside 0..11"), ("2,2,6", "duplicate"), ("6,2", "increasing"), ("a,b", "integer"), ("", "empty"),
])
def test_layer_list_rejects_bad_input(text, message):
    with pytest.raises(ValueError, match=message):
        parse_layer_list(text, 12)
    assert parse_layer_list("2, 6,10", 12) == [2, 6, 10]


def test_pkd_original_variant_keeps_the_original_reductions():
    """`--pkd_variant original`: per-layer MSEs summed, soft loss averaged over batch and classes, no T^2."""
    from model_compress.distill.objectives import PKDSequenceMSEObjective
    from model_compress.modeling.bert import BertForSequenceClassification
    from model_compress.modeling.config import BertConfig
    from tests.conftest import TINY_BERT

    flow.manual_seed(0)
    config = BertConfig(vocab_size=50, num_labels=3, **{**TINY_BERT, "num_hidden_layers": 2})
    student = BertForSequenceClassification(config).eval()
    rs = np.random.RandomState(4)
    B, L, T, a, b = 4, 6, 2.0, 0.3, 10.0
    ids = rs.randint(1, 50, (B, L)).astype(np.int32)
    mask, seg = np.ones((B, L), np.int32), np.zeros((B, L), np.int32)
    y = rs.randint(0, 3, B).astype(np.int32)
    zt = (rs.randn(B, 3) * 2).astype(np.float32)
    ht = rs.randn(B, 3, L, 40).astype(np.float32)  # teacher width 40: embeddings and two mapped layers
    objective = PKDSequenceMSEObjective(student, [0, 1, 2], 40, T, a, b).eval()
    loss, _ = objective(*[flow.tensor(v) for v in (ids, mask, seg, y, zt, ht)])

    zs, enc = student(flow.tensor(ids), flow.tensor(seg), flow.tensor(mask), output_hidden_states=True)
    zs = zs.numpy()
    W, bias = objective.fit_dense.weight.numpy(), objective.fit_dense.bias.numpy()
    ce = -np_log_softmax(zs)[np.arange(B), y].mean()
    matrix = -np.exp(np_log_softmax(zt / T)) * np_log_softmax(zs / T)  # [B, C], as the original reduces it
    soft = matrix.mean()
    patient = 0.0
    for j in range(3):  # one MSE per layer, over batch, tokens and width; the layers add up
        patient += ((enc.hidden_states[j].numpy() @ W.T + bias - ht[:, j]) ** 2).mean()
    expected = (1 - a) * ce + a * soft + b * patient
    assert float(loss.numpy()) == pytest.approx(expected, rel=1e-5)
    # and not the paper conventions: T^2-scaled KL, or the mean over layers
    kl = T**2 * (np.exp(np_log_softmax(zt / T)) * (np_log_softmax(zt / T) - np_log_softmax(zs / T))).sum(-1).mean()
    assert float(loss.numpy()) != pytest.approx((1 - a) * ce + a * kl + b * patient, rel=1e-3)
    assert float(loss.numpy()) != pytest.approx((1 - a) * ce + a * soft + b * patient / 3, rel=1e-3)


def _masked_scores(rs, shape, masked_keys):
    scores = rs.randn(*shape).astype("float32") * 3
    scores[..., masked_keys] += -10000.0  # what the additive mask does to padded keys
    return scores


def test_attention_score_mse_counts_masked_keys_as_zero():
    """TinyBERT's attention loss: per layer MSE of raw scores, entries <= -100 set to 0 on both sides, summed."""
    rs = np.random.RandomState(5)
    B, H, L = 3, 2, 5
    students = [_masked_scores(rs, (B, H, L, L), [4]) for _ in range(2)]
    teacher = _masked_scores(rs, (B, 2, H, L, L), [3, 4])

    def zero_masked(a):
        return np.where(a <= -100, 0.0, a)

    expected = sum(((zero_masked(s) - zero_masked(teacher[:, i])) ** 2).reshape(B, -1).mean(-1)
                   for i, s in enumerate(students))
    got = losses.attention_score_mse_per_example([flow.tensor(s) for s in students], flow.tensor(teacher)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert got.max() < 100  # the -10000 entries do not leak into the loss
    # masked entries of any size give the same loss; unmasked ones count
    shifted = teacher.copy()
    shifted[..., 3] -= 500.0
    again = losses.attention_score_mse_per_example([flow.tensor(s) for s in students], flow.tensor(shifted)).numpy()
    np.testing.assert_allclose(again, got, rtol=1e-6)
    shifted[..., 0] += 1.0
    moved = losses.attention_score_mse_per_example([flow.tensor(s) for s in students], flow.tensor(shifted)).numpy()
    assert not np.allclose(moved, got)


@pytest.mark.parametrize("attention", ["scores", "probs"])
def test_tinybert_intermediate_objective_matches_numpy(attention):
    """Step 1: mean over the batch of sum_l MSE(A_s, A_t) + sum_j MSE(fit_dense(h_s_j), h_t_j), real tokens only."""
    from model_compress.distill.objectives import TinyBERTIntermediateObjective
    from model_compress.modeling.bert import BertForSequenceClassification
    from model_compress.modeling.config import BertConfig
    from tests.conftest import TINY_BERT

    flow.manual_seed(2)
    config = BertConfig(vocab_size=50, **{**TINY_BERT, "num_hidden_layers": 2, "hidden_size": 16})
    student = BertForSequenceClassification(config).eval()
    rs = np.random.RandomState(6)
    B, L, heads, Ht = 3, 6, 4, 40
    ids = rs.randint(1, 50, (B, L)).astype(np.int32)
    mask = np.ones((B, L), np.int32)
    mask[0, 4:] = 0
    seg = np.zeros((B, L), np.int32)
    t_att = _masked_scores(rs, (B, 2, heads, L, L), [])
    t_att[0, ..., 4:] += -10000.0
    if attention == "probs":
        t_att = np.exp(np_log_softmax(t_att)).astype(np.float32)
    t_hid = rs.randn(B, 3, L, Ht).astype(np.float32)
    objective = TinyBERTIntermediateObjective(student, Ht, attention).eval()
    loss, _, att_loss, hid_loss = objective(*[flow.tensor(v) for v in (ids, mask, seg, t_att, t_hid)])

    _, enc = student(flow.tensor(ids), flow.tensor(seg), flow.tensor(mask), output_hidden_states=True,
                     output_attentions=True)
    raw = np.stack([a.numpy() for a in enc.attention_scores], 1)
    if attention == "scores":
        s_att, t_cmp = np.where(raw <= -100, 0.0, raw), np.where(t_att <= -100, 0.0, t_att)
    else:
        s_att, t_cmp = np.exp(np_log_softmax(raw)), t_att
    m = mask.astype(np.float32)
    pairs = np.broadcast_to((m[:, :, None] * m[:, None, :])[:, None, None], s_att.shape)  # real query x key
    att = (((s_att - t_cmp) ** 2 * pairs).sum((2, 3, 4)) / pairs.sum((2, 3, 4))).sum(1).mean()
    W, b = objective.fit_dense.weight.numpy(), objective.fit_dense.bias.numpy()
    s_hid = np.stack([h.numpy() for h in enc.hidden_states], 1)
    tokens = np.broadcast_to(m[:, None, :, None], t_hid.shape)  # real tokens only
    hid = ((((s_hid @ W.T + b - t_hid) ** 2) * tokens).sum((2, 3)) / tokens.sum((2, 3))).sum(1).mean()
    assert float(att_loss.numpy()) == pytest.approx(att, rel=1e-4)
    assert float(hid_loss.numpy()) == pytest.approx(hid, rel=1e-4)
    assert float(loss.numpy()) == pytest.approx(att + hid, rel=1e-4)


def test_tinybert_prediction_objective_is_the_originals_soft_cross_entropy(logits):
    """Step 2: -softmax(z_t/T) * log softmax(z_s/T) averaged over batch and classes, no hard labels, no T^2."""
    from model_compress.distill.objectives import TinyBERTPredictionObjective

    zs, zt, _ = logits
    T = 2.0
    expected = (-np.exp(np_log_softmax(zt / T)) * np_log_softmax(zs / T)).mean()

    class Fixed(flow.nn.Module):  # a stand-in student returning the given logits
        def forward(self, input_ids, segment_ids, input_mask):
            return flow.tensor(zs), None

    objective = TinyBERTPredictionObjective(Fixed(), T)
    ids = flow.tensor(np.zeros((5, 4), np.int32))
    loss, _ = objective(ids, ids, ids, flow.tensor(zt))
    assert float(loss.numpy()) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="positive"):
        TinyBERTPredictionObjective(Fixed(), 0.0)
