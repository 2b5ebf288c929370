"""The classifier a config describes, and facts about classifier states that depend on the model family.

BERT, MPNet and the Distilled BiLSTM share one call signature ``model(input_ids, segment_ids, input_mask,
output_hidden_states=..., output_attentions=..., output_qkv=...) -> (logits, EncoderOutput)``, so every
objective, graph and evaluator takes any of them; only construction and the head's tensor names differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oneflow import nn

from model_compress.modeling.config import BertConfig, LSTMConfig, MPNetConfig

# the tensor whose first dimension is the label count, per family
_HEAD_OUTPUT = ("classifier.weight", "classifier.out_proj.weight")


def build_classifier(config: BertConfig | MPNetConfig | LSTMConfig) -> nn.Module:
    """A freshly initialised classifier of the config's family."""
    if isinstance(config, MPNetConfig):
        from model_compress.modeling.mpnet import MPNetForSequenceClassification

        return MPNetForSequenceClassification(config)
    if isinstance(config, LSTMConfig):
        from model_compress.modeling.lstm import DistilledBiLSTM

        return DistilledBiLSTM(config)
    from model_compress.modeling.bert import BertForSequenceClassification

    return BertForSequenceClassification(config)


def head_num_labels(state: Mapping[str, Any]) -> int | None:
    """Label count of the task head held in a classifier state, None when it has no head."""
    for key in _HEAD_OUTPUT:
        if key in state:
            return int(state[key].shape[0])
    return None


def without_head(state: Mapping[str, Any]) -> dict[str, Any]:
    """The state minus the task head (``classifier.*``), for a task with another label count."""
    return {k: v for k, v in state.items() if not k.startswith("classifier.")}
