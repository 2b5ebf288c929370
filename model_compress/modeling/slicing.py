"""Build a shallower student from a teacher by keeping chosen encoder layers (BERT-PKD init)."""

from __future__ import annotations

import re

from oneflow import nn

from model_compress.modeling.checkpoint import load_state_into, module_state_numpy
from model_compress.modeling.classifiers import build_classifier
from model_compress.modeling.config import EncoderConfig

_LAYER_KEY = re.compile(r"^(.*\bencoder\.layer\.)(\d+)(\..*)$")


def parse_layer_list(text: str, teacher_layers: int) -> list[int]:
    """The seeds' LAYER_LIST: comma separated 0-based teacher layers, strictly increasing, in range."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise ValueError("--layer_list is empty: give 0-based teacher layers such as '2,6,10'")
    try:
        layers = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"--layer_list {text!r}: every entry must be an integer") from None
    for layer in layers:
        if not 0 <= layer < teacher_layers:
            raise ValueError(f"--layer_list {text!r}: layer {layer} is outside 0..{teacher_layers - 1}")
    if len(set(layers)) != len(layers):
        raise ValueError(f"--layer_list {text!r}: duplicate layers")
    if layers != sorted(layers):
        raise ValueError(f"--layer_list {text!r}: layers must be in increasing order")
    return layers


def slice_layers(state: dict, config: EncoderConfig, layer_list: str | list[int]) -> tuple[dict, EncoderConfig]:
    """Keep teacher layers `layer_list` (0-based) as student layers 0..n-1, plus all other tensors.

    Embeddings, pooler and classifier (and MPNet's relative-position bias table, which every layer shares)
    are copied unchanged; tensors of dropped layers are left out. BERT and MPNet alike.
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


def slice_model(model: nn.Module, layer_list: str | list[int]) -> tuple[nn.Module, EncoderConfig]:
    """A new classifier (same family) made of `model`'s embeddings, pooler, head and encoder layers `layer_list`."""
    state, config = slice_layers(module_state_numpy(model), model.config, layer_list)
    sliced = build_classifier(config)
    load_state_into(sliced, state, verbose=False)
    return sliced, config
