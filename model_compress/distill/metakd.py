"""Meta-KD student distillation: domain-expertise weights and the two stage objectives.

The meta-teacher's knowledge arrives as batch inputs gathered from the on-disk dump written by
``meta_teacher_eval.py`` (see docs/metakd.md): ``teacher_logits`` [B, C], ``teacher_attention``
[B, M, heads, L, L] (attention probabilities of the mapped teacher layers, or their raw scores),
``teacher_hidden`` [B, M + 1, L, H_t] (embeddings output and mapped layer outputs) and ``teacher_domain`` [B, H_t]
(mean of the teacher's last layer over real tokens).

Stage 1 (TinyBERT-style intermediate distillation, the losses and mappings of ``intermediate``), per
example i::

    L_i = sum_l MSE(A_s[l], A_t[k*l+k-1]) + sum_j MSE(fit_dense(h_s[j]), h_t[k*j])
          + domain_loss_weight * MSE(domain_proj(pool(h_s[M]) + E[d_i]), pool(h_t[N]))
    L   = mean_i  u_i * L_i,    u_i = (1 + w_i) / (exp((1 - p_t(y_i))^2) + 1)

with l = 0..M-1 student layers (0-based), j = 0..M hidden-state indices (0 = embeddings), k = N // M,
w_i the prototypical score and p_t(y_i) the teacher's probability of the true label. A is the attention
probability (softmax over keys) by default, as the OneFlow original and EasyNLP compare; with
``attention="scores"`` it is the raw masked score, where values at or below -100 (masked keys) count
as 0 on both sides, as in TinyBERT.

Stage 2: soft-label cross-entropy at temperature T, -sum_c softmax(z_t / T)_c log softmax(z_s / T)_c,
batch mean; optionally weighted by u_i as well (off by default, as in EasyNLP).
"""

from __future__ import annotations

from collections.abc import Sequence

import oneflow as flow
from oneflow import nn

from model_compress.distill import losses
from model_compress.distill.intermediate import (
    attention_maps,
    check_attention_kind,
    init_projection,
    intermediate_mse_per_example,
    layer_stack,
)
from model_compress.distill.mapping import (  # noqa: F401  (re-exported: Meta-KD's mappings are the shared ones)
    attention_mapping,
    hidden_mapping,
    student_init_layers,
)
from model_compress.distill.meta import domain_expertise_weight, mean_pool
from model_compress.training.objectives import ENCODER_INPUTS, labels_of
from model_compress.training.sources import RowSubset  # noqa: F401  (re-exported: Meta-KD's row subsets)

TEACHER_ARRAYS = ("teacher_logits", "teacher_attention", "teacher_hidden", "teacher_domain")


def teacher_true_probability(teacher_logits: flow.Tensor, labels: flow.Tensor) -> flow.Tensor:
    """[B] p_t(y_i): the teacher's softmax probability of each example's true label."""
    probs = flow.softmax(teacher_logits, dim=-1)
    return (probs * nn.functional.one_hot(labels, teacher_logits.shape[-1]).to(probs.dtype)).sum(-1)


def expertise_weights(teacher_logits: flow.Tensor, label_ids: flow.Tensor, proto_weights: flow.Tensor) -> flow.Tensor:
    """[B] domain-expertise weights u_i from the teacher logits, labels and prototypical scores."""
    p_true = teacher_true_probability(teacher_logits, labels_of(label_ids))
    return domain_expertise_weight(p_true, proto_weights.reshape(-1).to(p_true.dtype))


class MetaDistillFirstStage(nn.Module):
    """Stage 1: attention + hidden-state + domain-knowledge MSE, each example weighted by u_i.

    Owns the stage's learned projections: ``fit_dense`` (student width -> teacher width, shared by
    all hidden states), the student-side ``domain_embeddings`` and ``domain_proj``. Returns
    (loss, logits, attention loss, hidden loss, domain loss), the last three unweighted batch means.
    """

    input_names = ENCODER_INPUTS + ("label_ids", "domain", "weights") + TEACHER_ARRAYS

    def __init__(self, student: nn.Module, teacher_hidden_size: int, num_domains: int,
                 attention_layers: Sequence[int], hidden_layers: Sequence[int],
                 domain_loss_weight: float = 0.5, use_sample_weights: bool = True,
                 attention: str = "probs") -> None:
        super().__init__()
        self.attention = check_attention_kind(attention)
        config = student.config
        if len(attention_layers) != config.num_hidden_layers:
            raise ValueError(f"{len(attention_layers)} teacher attention layers for a "
                             f"{config.num_hidden_layers}-layer student")
        if len(hidden_layers) != config.num_hidden_layers + 1:
            raise ValueError(f"{len(hidden_layers)} teacher hidden states for a "
                             f"{config.num_hidden_layers}-layer student (need layers + 1)")
        self.student = student
        self.domain_loss_weight = float(domain_loss_weight)
        self.use_sample_weights = bool(use_sample_weights)
        self.fit_dense = nn.Linear(config.hidden_size, teacher_hidden_size)
        self.domain_embeddings = nn.Embedding(num_domains, config.hidden_size)
        self.domain_proj = nn.Linear(config.hidden_size, teacher_hidden_size)
        for module in (self.fit_dense, self.domain_proj):
            init_projection(module, config.initializer_range)
        nn.init.normal_(self.domain_embeddings.weight, mean=0.0, std=config.initializer_range)

    def student_domain(self, last_hidden: flow.Tensor, mask: flow.Tensor, domain: flow.Tensor) -> flow.Tensor:
        """[B, H_t] student domain representation: domain_proj(pool(last layer) + E[domain])."""
        return self.domain_proj(mean_pool(last_hidden, mask) + self.domain_embeddings(labels_of(domain)))

    def forward(self, input_ids, input_mask, segment_ids, label_ids, domain, weights,
                teacher_logits, teacher_attention, teacher_hidden, teacher_domain):
        logits, enc = self.student(input_ids, segment_ids, input_mask, output_hidden_states=True,
                                   output_attentions=True)
        attention, hidden = intermediate_mse_per_example(enc, self.fit_dense, teacher_attention, teacher_hidden,
                                                         self.attention, input_mask)
        dom = losses.mse_per_example(self.student_domain(enc.sequence_output, input_mask, domain), teacher_domain)
        per_example = attention + hidden + self.domain_loss_weight * dom
        if self.use_sample_weights:
            per_example = per_example * expertise_weights(teacher_logits, label_ids, weights)
        return per_example.mean(), logits, attention.mean(), hidden.mean(), dom.mean()


class MetaDistillSecondStage(nn.Module):
    """Stage 2: soft-label cross-entropy at temperature T (optionally weighted by u_i). Returns (loss, logits)."""

    input_names = ENCODER_INPUTS + ("label_ids", "weights", "teacher_logits")

    def __init__(self, student: nn.Module, temperature: float = 2.0, use_sample_weights: bool = False) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.student = student
        self.temperature = float(temperature)
        self.use_sample_weights = bool(use_sample_weights)

    def forward(self, input_ids, input_mask, segment_ids, label_ids, weights, teacher_logits):
        logits, _ = self.student(input_ids, segment_ids, input_mask)
        per_example = losses.soft_cross_entropy_per_example(logits, teacher_logits, self.temperature)
        if self.use_sample_weights:
            per_example = per_example * expertise_weights(teacher_logits, label_ids, weights)
        return per_example.mean(), logits


class MetaTeacherOutputs(nn.Module):
    """Inference wrapper: what the student stages need from the meta-teacher, in ``names`` order.

    Outputs: logits [B, C]; attention probabilities (``attention="probs"``) or raw scores of
    ``attention_layers`` (0-based encoder layers) [B, len, heads, L, L]; hidden states
    ``hidden_layers`` (EncoderOutput.hidden_states indexes, 0 = embeddings) [B, len, L, H]; the domain
    representation, mean of the last layer over real tokens [B, H].
    """

    input_names = ENCODER_INPUTS
    names = TEACHER_ARRAYS

    def __init__(self, teacher: nn.Module, attention_layers: Sequence[int], hidden_layers: Sequence[int],
                 attention: str = "probs") -> None:
        super().__init__()
        self.attention = check_attention_kind(attention)
        self.teacher = teacher
        self.attention_layers = [int(i) for i in attention_layers]
        self.hidden_layers = [int(i) for i in hidden_layers]

    def forward(self, input_ids, input_mask, segment_ids):
        logits, enc = self.teacher(input_ids, segment_ids, input_mask, output_hidden_states=True,
                                   output_attentions=True)
        attention = layer_stack(attention_maps(enc, self.attention), self.attention_layers)
        hidden = layer_stack(enc.hidden_states, self.hidden_layers)
        return logits, attention, hidden, mean_pool(enc.sequence_output, input_mask)
