"""The loss catalogue: pure functions of tensors, each matching a formula in docs/algorithms.md.

Reductions are explicit: `per_example` variants return [B] so callers can weight examples (Meta-KD,
MFT); the plain ones average over the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import oneflow as flow
import oneflow.nn.functional as F

MASKED_SCORE = -100.0  # attention scores at or below this belong to masked keys (the additive mask is -10000)


def cross_entropy_per_example(logits: flow.Tensor, labels: flow.Tensor) -> flow.Tensor:
    """[B, C] logits, [B] int64 labels -> [B] negative log-likelihoods."""
    log_probs = F.log_softmax(logits, dim=-1)
    return -(log_probs * F.one_hot(labels, logits.shape[-1]).to(log_probs.dtype)).sum(-1)


def kl_teacher_student_per_example(
    student_logits: flow.Tensor, teacher_logits: flow.Tensor, temperature: float = 1.0
) -> flow.Tensor:
    """[B] KL(p_t || p_s) with p = softmax(z / T)."""
    log_p_s = F.log_softmax(student_logits / temperature, dim=-1)
    log_p_t = F.log_softmax(teacher_logits / temperature, dim=-1)
    return (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1)


def soft_label_loss(student_logits: flow.Tensor, teacher_logits: flow.Tensor, temperature: float) -> flow.Tensor:
    """T^2 * KL(p_t || p_s), batch mean (the T^2 keeps gradient scale independent of T)."""
    return temperature**2 * kl_teacher_student_per_example(student_logits, teacher_logits, temperature).mean()


def soft_cross_entropy_per_example(
    student_logits: flow.Tensor, teacher_logits: flow.Tensor, temperature: float = 1.0
) -> flow.Tensor:
    """[B] -sum p_t log p_s at temperature T (Meta-KD stage 2)."""
    log_p_s = F.log_softmax(student_logits / temperature, dim=-1)
    p_t = F.softmax(teacher_logits / temperature, dim=-1)
    return -(p_t * log_p_s).sum(-1)


def class_mean_soft_cross_entropy(
    student_logits: flow.Tensor, teacher_logits: flow.Tensor, temperature: float = 1.0
) -> flow.Tensor:
    """-p_t log p_s at temperature T averaged over batch *and* classes, no T^2 (the OneFlow PKD original)."""
    per_example = soft_cross_entropy_per_example(student_logits, teacher_logits, temperature)
    return per_example.mean() / student_logits.shape[-1]


def vanilla_kd_loss(
    student_logits: flow.Tensor,
    teacher_logits: flow.Tensor,
    labels: flow.Tensor,
    temperature: float,
    alpha: float,
) -> flow.Tensor:
    """(1 - alpha) * CE(z_s, y) + alpha * T^2 * KL(p_t || p_s) (EasyNLP's vanilla_kd convention)."""
    hard = cross_entropy_per_example(student_logits, labels).mean()
    return (1.0 - alpha) * hard + alpha * soft_label_loss(student_logits, teacher_logits, temperature)


def normalized_state_distance(student_states: flow.Tensor, teacher_states: flow.Tensor) -> flow.Tensor:
    """BERT-PKD patient loss: sum over matched layers of ||h_s/|h_s| - h_t/|h_t|||^2, batch mean.

    Both arguments are [B, layers, H] stacks of the [CLS] states of the matched layers.
    """
    s = student_states / student_states.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    t = teacher_states / teacher_states.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    return ((s - t) ** 2).sum(-1).sum(-1).mean()


def token_weights(mask: flow.Tensor, pairs: bool = False) -> flow.Tensor:
    """[B, L] 1/0 mask -> float weights of real tokens: [B, L, 1] for token states ([B, L, H]), or with
    ``pairs`` [B, 1, L, L] for (real query, real key) entries of attention maps ([B, heads, L, L])."""
    m = mask.to(flow.float32)
    if pairs:
        return m.unsqueeze(1).unsqueeze(3) * m.unsqueeze(1).unsqueeze(2)
    return m.unsqueeze(2)


def layerwise_mse_per_example(students: Sequence[flow.Tensor], teacher: flow.Tensor,
                              weight: flow.Tensor | None = None) -> flow.Tensor:
    """Per-layer student tensors [B, ...] against the teacher's [B, layers, ...] stack -> [B]: per layer
    the mean squared error over its elements (with ``weight``, see ``token_weights``, over the real
    tokens' elements only), summed over layers.

    Its batch mean is the sum over layers of each layer's MSE over the whole batch. The student side is
    not stacked: in a multi-process nn.Graph, OneFlow 0.9 may give the backward of `flow.stack` a split
    along a non-batch axis that it maps to the wrong axis of the inputs ("Stack Grad expects the shape
    of input tensor ..."); per-layer terms need no stack and its backward.
    """
    if len(students) != teacher.shape[1]:
        raise ValueError(f"{len(students)} student layers against {teacher.shape[1]} teacher layers")
    total = mse_per_example(students[0], teacher[:, 0], weight)
    for layer in range(1, len(students)):
        total = total + mse_per_example(students[layer], teacher[:, layer], weight)
    return total


def mse_per_example(student: flow.Tensor, teacher: flow.Tensor, weight: flow.Tensor | None = None) -> flow.Tensor:
    """[B] mean squared error over all but the batch dimension; with ``weight`` (broadcastable 0/1, e.g.
    ``token_weights``) the mean over the weighted elements only, so padding never counts and a batch cut to
    a shorter length (length buckets) gives the same value."""
    diff = (student - teacher) ** 2
    if weight is None:
        return diff.reshape(diff.shape[0], -1).mean(-1)
    full = weight.expand(*diff.shape)
    rows = diff.shape[0]
    return (diff * full).reshape(rows, -1).sum(-1) / full.reshape(rows, -1).sum(-1).clamp(min=1.0)


def keep_unmasked(scores: flow.Tensor) -> flow.Tensor:
    """Attention scores with the masked keys' entries (<= MASKED_SCORE) set to 0."""
    return scores * (scores > MASKED_SCORE).to(scores.dtype)


def attention_score_mse_per_example(students: Sequence[flow.Tensor], teacher: flow.Tensor,
                                    weight: flow.Tensor | None = None) -> flow.Tensor:
    """TinyBERT's attention loss, [B]: per layer the MSE between raw (pre-softmax) attention scores with
    masked keys counted as 0 on both sides, summed over layers.

    Student scores [B, heads, L, L] per layer, teacher stack [B, layers, heads, L, L].
    """
    return layerwise_mse_per_example([keep_unmasked(s) for s in students], keep_unmasked(teacher), weight)
