"""Intermediate-layer distillation shared by TinyBERT and Meta-KD: attention maps and hidden states.

A student of M layers learns from a teacher of N = k*M layers (``mapping.attention_mapping`` and
``mapping.hidden_mapping``): student layer i's attention from teacher layer k*i+k-1, student hidden
state j (0 = embeddings output) from teacher hidden state k*j through the learnt projection
``fit_dense`` (student width -> teacher width). Per example::

    attention_i = sum_l MSE(A_s[l], A_t[k*l+k-1])        hidden_i = sum_j MSE(fit_dense(h_s[j]), h_t[k*j])

With the input mask given, every MSE is a mean over the real tokens only (hidden states: real positions;
attention maps: real query x real key entries), so padding never counts and a batch cut to its length
bucket's bound gives exactly the loss of the same batch padded to --seq_length.

A is either the attention probability (softmax over keys, ``"probs"``) or the raw pre-softmax score
with masked keys counted as 0 on both sides (``"scores"``, TinyBERT's choice). The teacher side
arrives stacked ([B, layers, ...]); the student side stays a list of per-layer tensors (see
``losses.layerwise_mse_per_example`` for why).
"""

from __future__ import annotations

from collections.abc import Sequence

import oneflow as flow
from oneflow import nn

from model_compress.distill import losses

ATTENTION_KINDS = ("probs", "scores")  # what the attention loss compares: probabilities or raw scores


def check_attention_kind(attention: str) -> str:
    """``attention`` itself when it is one of ATTENTION_KINDS, else ValueError."""
    if attention not in ATTENTION_KINDS:
        raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {attention!r}")
    return attention


def attention_maps(enc, attention: str) -> list:
    """The per-layer attention tensors of an EncoderOutput the loss compares: probabilities or raw scores."""
    return enc.attention_probs if attention == "probs" else enc.attention_scores


def layer_stack(per_layer: Sequence[flow.Tensor], layers: Sequence[int]) -> flow.Tensor:
    """[B, len(layers), ...]: the chosen entries of a per-layer list (a teacher's targets), stacked on dim 1."""
    return flow.stack([per_layer[i] for i in layers], dim=1)


def projection(student_width: int, teacher_width: int, std: float) -> nn.Linear:
    """A learnt projection student width -> teacher width (``fit_dense``), initialised like BERT's dense layers."""
    layer = nn.Linear(student_width, teacher_width)
    init_projection(layer, std)
    return layer


def init_projection(layer: nn.Linear, std: float) -> None:
    """Weights ~ N(0, std), bias 0."""
    nn.init.normal_(layer.weight, mean=0.0, std=std)
    nn.init.zeros_(layer.bias)


def attention_mse_per_example(student: Sequence[flow.Tensor], teacher: flow.Tensor, attention: str,
                              mask: flow.Tensor | None = None) -> flow.Tensor:
    """[B] attention loss: student maps [B, heads, L, L] per layer against the teacher stack
    [B, layers, heads, L, L], per-layer MSEs summed (over real query/key pairs when ``mask`` [B, L] is
    given); raw scores masked (``"scores"``) or probabilities."""
    weight = None if mask is None else losses.token_weights(mask, pairs=True)
    if attention == "scores":
        return losses.attention_score_mse_per_example(student, teacher, weight)
    return losses.layerwise_mse_per_example(student, teacher, weight)


def intermediate_mse_per_example(enc, fit_dense: nn.Module, teacher_attention: flow.Tensor,
                                 teacher_hidden: flow.Tensor, attention: str,
                                 mask: flow.Tensor | None = None) -> tuple[flow.Tensor, flow.Tensor]:
    """([B] attention loss, [B] hidden-state loss) of a student's EncoderOutput (run with hidden states and
    attentions) against the teacher's stacked mapped layers; every hidden state goes through ``fit_dense``.
    With ``mask`` (the batch's input mask) both count real tokens only."""
    att = attention_mse_per_example(attention_maps(enc, attention), teacher_attention, attention, mask)
    weight = None if mask is None else losses.token_weights(mask)
    hidden = losses.layerwise_mse_per_example([fit_dense(h) for h in enc.hidden_states], teacher_hidden, weight)
    return att, hidden


def check_heads(student_heads: int, teacher_heads: int) -> None:
    """ValueError unless the attention maps can be compared head to head."""
    if student_heads != teacher_heads:
        raise ValueError(f"the attention loss compares heads one to one: the student has {student_heads} "
                         f"heads, the teacher {teacher_heads}")
