"""Build a shallower student from a teacher by keeping chosen encoder layers (BERT-PKD init)."""

from __future__ import annotations

import re

from model_compress.distill.mapping import parse_layer_list
from model_compress.modeling.bert import BertForSequenceClassification
from model_compress.modeling.checkpoint import load_state_into, module_state_numpy
from model_compress.modeling.config import BertConfig

_LAYER_KEY = re.compile(r"^(.*\bencoder\.layer\.)(\d+)(\..*)$")


def slice_layers(state: dict, config: BertConfig, layer_list: str | list[int]) -> tuple[dict, BertConfig]:
    """Keep teacher layers `layer_list` (0-based) as student layers 0..n-1, plus all other tensors.

    Embeddings, pooler and classifier are copied unchanged; tensors of dropped layers are left out.
    """
    layers = (
        parse_layer_list(layer_list, config.num_hidden_layers)
        if isinstance(layer_list, str)
        else parse_layer_list(",".join(map(str, layer_list)), config.num_hidden_layers)
    )
    new_index = {teacher: student for student, teacher in enumerate(layers)}
    sliced = {}
    for key, value in state.items():
        match = _LAYER_KEY.match(key)
        if match is None:
            sliced[key] = value
            continue
        teacher_layer = int(match.group(2))
        if teacher_layer in new_index:
            sliced[f"{match.group(1)}{new_index[teacher_layer]}{match.group(3)}"] = value
    return sliced, config.replace(num_hidden_layers=len(layers))


def slice_model(model: BertForSequenceClassification, layer_list: str | list[int]
                ) -> tuple[BertForSequenceClassification, BertConfig]:
    """A new classifier made of `model`'s embeddings, pooler, head and encoder layers `layer_list`."""
    state, config = slice_layers(module_state_numpy(model), model.config, layer_list)
    sliced = BertForSequenceClassification(config)
    load_state_into(sliced, state, verbose=False)
    return sliced, config
