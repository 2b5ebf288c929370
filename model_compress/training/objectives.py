"""Objectives: modules mapping batch tensors (named by `input_names`) to (loss, logits, ...)."""

from __future__ import annotations

import oneflow as flow
from oneflow import nn

ENCODER_INPUTS = ("input_ids", "input_mask", "segment_ids")


def labels_of(label_ids: flow.Tensor) -> flow.Tensor:
    """[B] or [B, 1] int32 labels -> [B] int64, as cross-entropy wants them."""
    return label_ids.reshape(-1).to(flow.int64)


class ClassifierLogits(nn.Module):
    """Inference wrapper: encoder inputs -> logits."""

    input_names = ENCODER_INPUTS

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, input_mask, segment_ids):
        logits, _ = self.model(input_ids, segment_ids, input_mask)
        return logits


class ClassificationObjective(nn.Module):
    """Plain fine-tuning: cross-entropy on the hard labels."""

    input_names = ENCODER_INPUTS + ("label_ids",)

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, input_mask, segment_ids, label_ids):
        logits, _ = self.model(input_ids, segment_ids, input_mask)
        return nn.functional.cross_entropy(logits, labels_of(label_ids)), logits
