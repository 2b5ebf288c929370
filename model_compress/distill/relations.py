"""Self-attention relation losses of MiniLMv2 and PP-MiniLM (pure functions of tensors).

Inputs are one layer's query, key or value projection split into attention heads, ``[B, H, L, d]``
as ``EncoderOutput.qkv`` returns them, for the student and for the teacher. The two may have
different widths: both are re-split into the same number ``A`` of *relation heads* (``A`` must divide
both widths), so student and teacher relations have identical shapes while their relation head
sizes ``d_s = H_s*d_s0/A`` and ``d_t`` may differ. With ``X`` the re-split tensor, ``[B, A, L, d_r]``:

* token relations (MiniLMv2): ``softmax(X X^T / sqrt(d_r))`` over the tokens of one sequence,
  ``[B, A, L, L]``: for every query token, a distribution over the real tokens of its sequence;
* head relations (the original's ``alpha`` term): the heads of one token related to each other,
  ``X`` seen as ``[B, L, A, d_r]`` -> ``[B, L, A, A]``;
* sample relations (PP-MiniLM's ``beta`` term): the samples of the batch related to each other at
  the same position and relation head, ``X`` seen as ``[L, A, B, d_r]`` -> ``[L, A, B, B]``.

Each loss is ``KL(teacher || student)`` of one relation row, averaged over the rows that exist:
padded query tokens (token and head relations) and padded (position, sample) rows (sample
relations) are left out of the average, and padded keys (tokens, or samples padded at that
position) are removed from every softmax by filling their logits with a large negative number
before it. Padded positions of ``X`` are zeroed first, so whatever a padded position holds (even
inf or NaN) cannot reach the loss. The original implementation added the attention mask to the head
and sample relations along a dimension the softmax does not run over, which changes nothing; here
the masks act. Everything is computed in float32 whatever the input dtype.

``multi_relation_loss`` combines them as ``(1 - alpha - beta) * token + alpha * head + beta *
sample``; ``qkv_relation_loss`` sums that over Q, K and V, as PP-MiniLM's general distillation does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import oneflow as flow
import oneflow.nn.functional as F

# Logit given to padded keys: exp() of it underflows to exactly 0 in float32, and unlike -inf it
# keeps log_softmax finite, so 0 * (log p_t - log p_s) stays 0 instead of NaN.
MASKED_LOGIT = -1e9

__all__ = [
    "MASKED_LOGIT",
    "head_relation_loss",
    "multi_relation_loss",
    "qkv_relation_loss",
    "relation_head_size",
    "sample_relation_loss",
    "split_relation_heads",
    "token_relation_loss",
]


def relation_head_size(num_heads: int, head_size: int, num_relation_heads: int) -> int:
    """Size of one relation head when a ``num_heads * head_size`` wide projection is split ``num_relation_heads`` ways.

    Raises ValueError when the width is not a multiple of ``num_relation_heads``.
    """
    width = num_heads * head_size
    if num_relation_heads <= 0 or width % num_relation_heads:
        raise ValueError(
            f"num_relation_heads {num_relation_heads} does not divide the projection width {width} "
            f"({num_heads} heads x {head_size})"
        )
    return width // num_relation_heads


def split_relation_heads(x: flow.Tensor, num_relation_heads: int) -> flow.Tensor:
    """``[B, H, L, d]`` attention heads -> ``[B, A, L, H*d/A]`` relation heads (A = ``num_relation_heads``).

    The heads are first joined back into the layer's ``[B, L, H*d]`` projection, then split into
    ``A`` equal contiguous chunks, exactly as a model with ``A`` attention heads would split it.
    """
    b, h, n, d = x.shape
    size = relation_head_size(h, d, num_relation_heads)
    if h == num_relation_heads:
        return x
    joined = x.permute(0, 2, 1, 3).reshape(b, n, num_relation_heads, size)
    return joined.permute(0, 2, 1, 3)


def _valid_tokens(mask: flow.Tensor) -> flow.Tensor:
    """[B, L] 1/0 (int, bool or float) attention mask -> bool [B, L], True for real tokens."""
    return mask > 0


def _prepare(x: flow.Tensor, valid: flow.Tensor, num_relation_heads: int) -> flow.Tensor:
    """float32 relation heads ``[B, A, L, d_r]`` with padded positions set to zero."""
    x = split_relation_heads(x.to(flow.float32), num_relation_heads)
    return x.masked_fill(~valid[:, None, :, None], 0.0)


def _relation_logits(x: flow.Tensor) -> flow.Tensor:
    """``x x^T / sqrt(d)`` over the last two dimensions of ``[..., N, d]`` -> ``[..., N, N]``."""
    return flow.matmul(x, x, transpose_b=True) / math.sqrt(x.shape[-1])


def _masked_row_kl(
    student_logits: flow.Tensor,
    teacher_logits: flow.Tensor,
    key_valid: flow.Tensor | None,
    row_weight: flow.Tensor,
) -> flow.Tensor:
    """Mean of ``KL(softmax(t) || softmax(s))`` over the rows of ``[..., N, N]`` logits.

    ``key_valid`` (bool, broadcastable to the logits, or None) removes keys from every softmax;
    ``row_weight`` (float 0/1, broadcastable to the logits without their last dimension) says which
    rows count. The result is ``sum(row_kl * weight) / sum(weight)`` (0 when no row counts).
    """
    if key_valid is not None:
        student_logits = student_logits.masked_fill(~key_valid, MASKED_LOGIT)
        teacher_logits = teacher_logits.masked_fill(~key_valid, MASKED_LOGIT)
    log_p_s = F.log_softmax(student_logits, dim=-1)
    log_p_t = F.log_softmax(teacher_logits, dim=-1)
    terms = log_p_t.exp() * (log_p_t - log_p_s)
    if key_valid is not None:
        terms = terms * key_valid.to(flow.float32)
    row_kl = terms.sum(-1)
    weight = row_weight.expand(*row_kl.shape)
    return (row_kl * weight).sum() / weight.sum().clamp(min=1.0)


def token_relation_loss(
    student: flow.Tensor, teacher: flow.Tensor, mask: flow.Tensor, num_relation_heads: int
) -> flow.Tensor:
    """MiniLMv2 token-token relation loss of one projection (Q, K or V).

    ``student`` ``[B, H_s, L, d_s]``, ``teacher`` ``[B, H_t, L, d_t]``, ``mask`` ``[B, L]`` (1 = token).
    Mean over real query tokens and relation heads of KL(teacher row || student row), keys
    restricted to the real tokens of the same sequence.
    """
    valid = _valid_tokens(mask)
    s = _relation_logits(_prepare(student, valid, num_relation_heads))  # [B, A, L, L]
    t = _relation_logits(_prepare(teacher, valid, num_relation_heads))
    rows = valid.to(flow.float32)[:, None, :]  # [B, 1, L] over (head, query)
    return _masked_row_kl(s, t, valid[:, None, None, :], rows)


def head_relation_loss(
    student: flow.Tensor, teacher: flow.Tensor, mask: flow.Tensor, num_relation_heads: int
) -> flow.Tensor:
    """Head-head relation loss (PP-MiniLM's ``alpha`` term) of one projection.

    At every real token, the relation heads are related to each other: ``[B, L, A, A]``. Every
    head is a real key; padded tokens are left out of the mean.
    """
    valid = _valid_tokens(mask)
    s = _relation_logits(_prepare(student, valid, num_relation_heads).permute(0, 2, 1, 3))  # [B, L, A, A]
    t = _relation_logits(_prepare(teacher, valid, num_relation_heads).permute(0, 2, 1, 3))
    rows = valid.to(flow.float32)[:, :, None]  # [B, L, 1] over (token, head)
    return _masked_row_kl(s, t, None, rows)


def sample_relation_loss(
    student: flow.Tensor, teacher: flow.Tensor, mask: flow.Tensor, num_relation_heads: int
) -> flow.Tensor:
    """Sample-sample relation loss (PP-MiniLM's ``beta`` term) of one projection.

    At every position and relation head, the samples of the batch are related to each other:
    ``[L, A, B, B]``. Samples padded at that position are neither keys nor counted rows; a position
    where only one sample is real contributes a zero KL for that row.
    """
    valid = _valid_tokens(mask)
    s = _relation_logits(_prepare(student, valid, num_relation_heads).permute(2, 1, 0, 3))  # [L, A, B, B]
    t = _relation_logits(_prepare(teacher, valid, num_relation_heads).permute(2, 1, 0, 3))
    by_position = valid.permute(1, 0)  # [L, B]
    rows = by_position.to(flow.float32)[:, None, :]  # [L, 1, B] over (head, sample)
    return _masked_row_kl(s, t, by_position[:, None, None, :], rows)


def multi_relation_loss(
    student: flow.Tensor,
    teacher: flow.Tensor,
    mask: flow.Tensor,
    num_relation_heads: int,
    alpha: float = 0.0,
    beta: float = 0.0,
) -> flow.Tensor:
    """``(1 - alpha - beta) * token + alpha * head + beta * sample`` relation loss of one projection.

    Terms whose weight is zero are not computed (as in the original).
    """
    weights = ((1.0 - alpha - beta, token_relation_loss), (alpha, head_relation_loss), (beta, sample_relation_loss))
    total = None
    for weight, loss_fn in weights:
        if weight == 0.0:
            continue
        term = weight * loss_fn(student, teacher, mask, num_relation_heads)
        total = term if total is None else total + term
    if total is None:
        raise ValueError(f"alpha {alpha} and beta {beta} leave every relation with weight 0")
    return total


def qkv_relation_loss(
    student_qkv: Sequence[flow.Tensor],
    teacher_qkv: Sequence[flow.Tensor],
    mask: flow.Tensor,
    num_relation_heads: int,
    alpha: float = 0.0,
    beta: float = 0.0,
) -> flow.Tensor:
    """Sum over Q, K and V of ``multi_relation_loss`` (PP-MiniLM's general distillation loss).

    ``student_qkv`` / ``teacher_qkv`` are one layer's ``(query, key, value)`` from
    ``EncoderOutput.qkv``.
    """
    if len(student_qkv) != len(teacher_qkv):
        raise ValueError(f"{len(student_qkv)} student projections but {len(teacher_qkv)} teacher projections")
    total = None
    for s, t in zip(student_qkv, teacher_qkv):
        term = multi_relation_loss(s, t, mask, num_relation_heads, alpha, beta)
        total = term if total is None else total + term
    return total
