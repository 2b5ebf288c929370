"""PP-MiniLM relation distillation: the objective that matches a student layer's Q/K/V relations to a
teacher layer's, and the freezing of the student parts the loss cannot reach."""

from __future__ import annotations

import re

from oneflow import nn

from model_compress.distill.relations import qkv_relation_loss
from model_compress.modeling.bert import BertForSequenceClassification, BertModel
from model_compress.training.objectives import ENCODER_INPUTS


def encoder_layer_of(key: str) -> int | None:
    """The layer index of an encoder key relative to the BertModel (``encoder.layer.<i>....``), else None."""
    match = re.match(r"encoder\.layer\.(\d+)\.", key)
    return int(match.group(1)) if match else None


class RelationDistillation(nn.Module):
    """Objective: the student's Q/K/V relations at one layer against the teacher's (returns ``(loss,)``)."""

    input_names = ENCODER_INPUTS

    def __init__(
        self,
        student: BertForSequenceClassification,
        teacher: BertModel,
        student_layer: int,
        teacher_layer: int,
        num_relation_heads: int,
        alpha: float = 0.0,
        beta: float = 0.0,
    ) -> None:
        super().__init__()
        self.student = student
        self.teacher = teacher
        self.student_layer = student_layer
        self.teacher_layer = teacher_layer
        self.num_relation_heads = num_relation_heads
        self.alpha = float(alpha)
        self.beta = float(beta)
        freeze_unused_student_parts(student, student_layer)

    def forward(self, input_ids, input_mask, segment_ids):
        teacher_qkv = self.teacher(input_ids, segment_ids, input_mask, output_qkv=True).qkv[self.teacher_layer]
        student_qkv = self.student.bert(input_ids, segment_ids, input_mask, output_qkv=True).qkv[self.student_layer]
        loss = qkv_relation_loss(student_qkv, teacher_qkv, input_mask, self.num_relation_heads, self.alpha, self.beta)
        return (loss,)


def freeze_unused_student_parts(student: BertForSequenceClassification, student_layer: int) -> None:
    """Freeze what the relation loss cannot reach, so weight decay and Adam leave it at its initial values:
    the pooler, the classifier, layers above the distilled one, and the distilled layer's attention
    output and feed-forward block (only its query/key/value projections feed the loss, as in MiniLMv2)."""
    for name, param in student.named_parameters():
        layer = encoder_layer_of(name[len("bert."):]) if name.startswith("bert.") else None
        unused = name.startswith(("bert.pooler.", "classifier.")) or (
            layer is not None and (layer > student_layer or (layer == student_layer and ".attention.self." not in name))
        )
        if unused:
            param.requires_grad = False

