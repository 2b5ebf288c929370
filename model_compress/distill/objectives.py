"""Distillation objectives (nn.Modules run by the shared nn.Graph training step).

Teacher knowledge arrives as batch inputs (`teacher_logits`, `teacher_cls`, ...) gathered from the
on-disk cache, or, in online mode, from `TeacherTargets` run inside the same graph.
"""

from __future__ import annotations

import oneflow as flow
from oneflow import nn

from model_compress.distill import losses
from model_compress.distill.crossvocab import TeacherInputMap
from model_compress.distill.intermediate import (
    attention_maps,
    check_attention_kind,
    intermediate_mse_per_example,
    layer_stack,
    projection,
)
from model_compress.training.objectives import ENCODER_INPUTS, labels_of


class TeacherTargets(nn.Module):
    """What a frozen teacher gives a student: logits, and the [CLS] states, attention maps or hidden
    states of chosen layers.

    Output order follows `names`: ("teacher_logits",) plus ("teacher_cls",) when `cls_layers` is
    given ([B, len(cls_layers), H]), ("teacher_attention",) when `attention_layers` (0-based encoder
    layers) is given ([B, len, heads, L, L]: probabilities or raw scores, per `attention`) and
    ("teacher_hidden",) when `hidden_layers` is given ([B, len(hidden_layers), L, H]).

    With `vocab_map` (a ``data.vocab_map.VocabMap``) the batch holds the student's ids: the teacher reads
    them translated (``crossvocab.TeacherInputMap``) and its per-token outputs come back at the student's
    positions.
    """

    input_names = ENCODER_INPUTS

    def __init__(self, teacher: nn.Module, cls_layers=(), hidden_layers=(), attention_layers=(),
                 attention: str = "scores", vocab_map=None) -> None:
        super().__init__()
        self.teacher = teacher
        self.input_map = TeacherInputMap(vocab_map) if vocab_map is not None else None
        self.cls_layers = list(cls_layers)
        self.hidden_layers = list(hidden_layers)
        self.attention_layers = list(attention_layers)
        self.attention = check_attention_kind(attention)
        self.names = ["teacher_logits"]
        if self.cls_layers:
            self.names.append("teacher_cls")
        if self.attention_layers:
            self.names.append("teacher_attention")
        if self.hidden_layers:
            self.names.append("teacher_hidden")
        for p in teacher.parameters():
            p.requires_grad = False

    def forward(self, input_ids, input_mask, segment_ids):
        need_states = bool(self.cls_layers or self.hidden_layers)
        dst = None
        if self.input_map is not None:
            input_ids, input_mask, segment_ids, dst = self.input_map.to_teacher(input_ids, input_mask, segment_ids)
        logits, enc = self.teacher(input_ids, segment_ids, input_mask, output_hidden_states=need_states,
                                   output_attentions=bool(self.attention_layers))
        outputs = [logits]
        if self.cls_layers:
            outputs.append(flow.stack([enc.hidden_states[i][:, 0] for i in self.cls_layers], dim=1))
        if self.attention_layers:
            stacked = layer_stack(attention_maps(enc, self.attention), self.attention_layers)
            outputs.append(stacked if dst is None else self.input_map.to_student(stacked, dst, dims=(3, 4)))
        if self.hidden_layers:
            stacked = layer_stack(enc.hidden_states, self.hidden_layers)
            outputs.append(stacked if dst is None else self.input_map.to_student(stacked, dst, dims=(2,)))
        return tuple(outputs) if len(outputs) > 1 else outputs[0]


class VanillaKDObjective(nn.Module):
    """(1 - alpha) * CE + alpha * T^2 * KL(p_t || p_s)."""

    input_names = ENCODER_INPUTS + ("label_ids", "teacher_logits")

    def __init__(self, student: nn.Module, temperature: float, alpha: float) -> None:
        super().__init__()
        self.student = student
        self.temperature = float(temperature)
        self.alpha = float(alpha)

    def forward(self, input_ids, input_mask, segment_ids, label_ids, teacher_logits):
        logits, _ = self.student(input_ids, segment_ids, input_mask)
        loss = losses.vanilla_kd_loss(logits, teacher_logits, labels_of(label_ids), self.temperature, self.alpha)
        return loss, logits


class PKDObjective(nn.Module):
    """BERT-PKD (paper): vanilla KD + beta * normalised [CLS] patient loss over the mapped layers."""

    input_names = ENCODER_INPUTS + ("label_ids", "teacher_logits", "teacher_cls")

    def __init__(self, student: nn.Module, student_layers, temperature: float, alpha: float, beta: float) -> None:
        super().__init__()
        self.student = student
        self.student_layers = list(student_layers)
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.beta = float(beta)

    def forward(self, input_ids, input_mask, segment_ids, label_ids, teacher_logits, teacher_cls):
        logits, enc = self.student(input_ids, segment_ids, input_mask, output_hidden_states=True)
        loss = losses.vanilla_kd_loss(logits, teacher_logits, labels_of(label_ids), self.temperature, self.alpha)
        if self.student_layers and self.beta:
            student_cls = flow.stack([enc.hidden_states[j][:, 0] for j in self.student_layers], dim=1)
            loss = loss + self.beta * losses.normalized_state_distance(student_cls, teacher_cls)
        return loss, logits


class PKDSequenceMSEObjective(nn.Module):
    """The OneFlow original's PKD variant, with the original's reductions:

        (1 - alpha) * CE + alpha * mean_{b,c}(-p_t log p_s at T) + beta * sum_j MSE(fit_dense(h_s_j), h_t_kj)

    Student hidden states (embeddings and every layer) go through one shared `fit_dense` projection
    and are compared with the teacher states of the uniform mapping (embeddings, k, 2k, ...); each
    layer's MSE is a mean over the real tokens (padding left out, unlike the original) and the width,
    then the batch, and the layers are summed. The soft loss has
    no T^2 factor and averages over classes as well as examples.
    """

    input_names = ENCODER_INPUTS + ("label_ids", "teacher_logits", "teacher_hidden")

    def __init__(
        self,
        student: nn.Module,
        student_layers,
        teacher_hidden_size: int,
        temperature: float,
        alpha: float,
        beta: float,
    ) -> None:
        super().__init__()
        self.student = student
        self.student_layers = list(student_layers)
        self.fit_dense = nn.Linear(student.config.hidden_size, teacher_hidden_size)
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.beta = float(beta)

    def forward(self, input_ids, input_mask, segment_ids, label_ids, teacher_logits, teacher_hidden):
        logits, enc = self.student(input_ids, segment_ids, input_mask, output_hidden_states=True)
        hard = losses.cross_entropy_per_example(logits, labels_of(label_ids)).mean()
        soft = losses.class_mean_soft_cross_entropy(logits, teacher_logits, self.temperature)
        student_hidden = [self.fit_dense(enc.hidden_states[j]) for j in self.student_layers]
        patient = losses.layerwise_mse_per_example(student_hidden, teacher_hidden,
                                                   losses.token_weights(input_mask)).mean()
        loss = (1.0 - self.alpha) * hard + self.alpha * soft + self.beta * patient
        return loss, logits


class TinyBERTIntermediateObjective(nn.Module):
    """TinyBERT step 1: attention MSE + hidden-state MSE (embeddings included, through ``fit_dense``).

        L = mean_b [ sum_l MSE(A_s[l], A_t[k*l+k-1]) + sum_j MSE(fit_dense(h_s[j]), h_t[k*j]) ]

    Each MSE counts real tokens only (attention: real query x real key entries), see ``intermediate``.

    Teacher targets arrive stacked in mapping order (``teacher_attention`` [B, M, heads, L, L],
    ``teacher_hidden`` [B, M + 1, L, H_t]). Returns (loss, logits, attention loss, hidden loss).
    """

    input_names = ENCODER_INPUTS + ("teacher_attention", "teacher_hidden")

    def __init__(self, student: nn.Module, teacher_hidden_size: int, attention: str = "scores") -> None:
        super().__init__()
        self.student = student
        self.attention = check_attention_kind(attention)
        config = student.config
        self.fit_dense = projection(config.hidden_size, teacher_hidden_size, config.initializer_range)

    def forward(self, input_ids, input_mask, segment_ids, teacher_attention, teacher_hidden):
        logits, enc = self.student(input_ids, segment_ids, input_mask, output_hidden_states=True,
                                   output_attentions=True)
        attention, hidden = intermediate_mse_per_example(enc, self.fit_dense, teacher_attention, teacher_hidden,
                                                         self.attention, input_mask)
        attention, hidden = attention.mean(), hidden.mean()
        return attention + hidden, logits, attention, hidden


class TinyBERTPredictionObjective(nn.Module):
    """TinyBERT step 2: soft cross-entropy at temperature T, averaged over batch and classes as the
    originals reduce it (``losses.class_mean_soft_cross_entropy``); no hard-label term."""

    input_names = ENCODER_INPUTS + ("teacher_logits",)

    def __init__(self, student: nn.Module, temperature: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.student = student
        self.temperature = float(temperature)

    def forward(self, input_ids, input_mask, segment_ids, teacher_logits):
        logits, _ = self.student(input_ids, segment_ids, input_mask)
        return losses.class_mean_soft_cross_entropy(logits, teacher_logits, self.temperature), logits


class WithOnlineTeacher(nn.Module):
    """Runs `targets` (a TeacherTargets) inside the step and feeds its outputs to `objective`."""

    def __init__(self, objective: nn.Module, targets: TeacherTargets) -> None:
        super().__init__()
        self.objective = objective
        self.targets = targets
        extra = set(targets.names)
        self.input_names = tuple(n for n in objective.input_names if n not in extra)

    def forward(self, *inputs):
        batch = dict(zip(self.input_names, inputs))
        produced = self.targets(batch["input_ids"], batch["input_mask"], batch["segment_ids"])
        if not isinstance(produced, tuple):
            produced = (produced,)
        batch.update(zip(self.targets.names, (t.detach() for t in produced)))
        return self.objective(*[batch[n] for n in self.objective.input_names])

    def train(self, mode: bool = True):
        super().train(mode)
        self.targets.eval()  # the teacher never uses dropout
        return self
