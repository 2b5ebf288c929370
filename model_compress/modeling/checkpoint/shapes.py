"""Shapes a BertConfig / MPNetConfig implies for HF-keyed tensors, prefix selection, the classifier inside an
objective."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from model_compress.modeling.checkpoint.names import HF_LAYER, HF_LAYER_RE
from model_compress.modeling.config import EncoderConfig, MPNetConfig

_MPNET_LAYER_RE = re.compile(r"^mpnet\.encoder\.layer\.(\d+)\.(.+)$")
_MPNET_LAYER_SUFFIXES = {f"attention.attn.{p}.{t}" for p in "qkvo" for t in ("weight", "bias")} | {
    f"{m}.{t}" for m in ("attention.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm")
    for t in ("weight", "bias")}


def encoder_prefix(config: EncoderConfig) -> str:
    """Key prefix of the encoder inside the classifier: ``bert.`` or ``mpnet.`` (HF's attribute names)."""
    return "mpnet." if isinstance(config, MPNetConfig) else "bert."


def _mpnet_shape(key: str, config: MPNetConfig) -> tuple[int, ...] | None:
    h, i = config.hidden_size, config.intermediate_size
    fixed = {
        "mpnet.embeddings.word_embeddings.weight": (config.vocab_size, h),
        "mpnet.embeddings.position_embeddings.weight": (config.max_position_embeddings, h),
        "mpnet.embeddings.LayerNorm.weight": (h,),
        "mpnet.embeddings.LayerNorm.bias": (h,),
        "mpnet.encoder.relative_attention_bias.weight": (config.relative_attention_num_buckets,
                                                         config.num_attention_heads),
        "classifier.dense.weight": (h, h),
        "classifier.dense.bias": (h,),
        "classifier.out_proj.weight": (config.num_labels, h),
        "classifier.out_proj.bias": (config.num_labels,),
    }
    if key in fixed:
        return fixed[key]
    match = _MPNET_LAYER_RE.match(key)
    if not match or int(match.group(1)) >= config.num_hidden_layers or match.group(2) not in _MPNET_LAYER_SUFFIXES:
        return None
    suffix = match.group(2)
    if suffix.startswith("intermediate.dense."):
        return (i, h) if suffix.endswith("weight") else (i,)
    if suffix == "output.dense.weight":
        return (h, i)
    return (h, h) if suffix.endswith("weight") and "LayerNorm" not in suffix else (h,)


def expected_shape(key: str, config: EncoderConfig) -> tuple[int, ...] | None:
    """Shape (HF convention, Linear weights [out, in]) a config implies for ``key``; None if unknown.

    A leading ``student.``/``teacher.`` wrapper prefix is ignored. ``fit_dense`` shapes depend on the
    teacher's width, which a single config does not know, so they return None.
    """
    key = re.sub(r"^(student|teacher)\.", "", key)
    if isinstance(config, MPNetConfig):
        return _mpnet_shape(key, config)
    h, i = config.hidden_size, config.intermediate_size
    fixed = {
        "bert.embeddings.word_embeddings.weight": (config.vocab_size, h),
        "bert.embeddings.position_embeddings.weight": (config.max_position_embeddings, h),
        "bert.embeddings.token_type_embeddings.weight": (config.type_vocab_size, h),
        "bert.embeddings.LayerNorm.weight": (h,),
        "bert.embeddings.LayerNorm.bias": (h,),
        "bert.pooler.dense.weight": (h, h),
        "bert.pooler.dense.bias": (h,),
        "classifier.weight": (config.num_labels, h),
        "classifier.bias": (config.num_labels,),
    }
    if key in fixed:
        return fixed[key]
    match = HF_LAYER_RE.match(key)
    if not match or int(match.group(1)) >= config.num_hidden_layers:
        return None
    layer = {
        "intermediate.dense.weight": (i, h),
        "intermediate.dense.bias": (i,),
        "output.dense.weight": (h, i),
    }
    suffix = match.group(2)
    if suffix not in HF_LAYER:
        return None
    if suffix in layer:
        return layer[suffix]
    if suffix.endswith(".weight") and "LayerNorm" not in suffix:
        return (h, h)
    return (h,)


def check_state_shapes(state: Mapping[str, np.ndarray], config: EncoderConfig) -> list[str]:
    """Human-readable problems where ``state`` disagrees with ``config`` (empty list when consistent)."""
    problems = []
    for key, value in state.items():
        want = expected_shape(key, config)
        if want is not None and tuple(value.shape) != want:
            problems.append(f"{key}: shape {tuple(value.shape)}, config implies {want}")
    return problems


def select_prefix(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The entries whose key starts with ``prefix`` (e.g. ``"student."``), with the prefix removed."""
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


_STUDENT_KEY = re.compile(r"^(?:.*\.)?student\.(.+)$")


def classifier_state(state: dict[str, Any]) -> dict[str, Any]:
    """HF-keyed classifier tensors from a snapshot that may hold a whole distillation objective.

    Objective snapshots nest the student under `student.` (possibly below a wrapper such as
    `objective.student.`); teacher tensors and projections are left out.
    """
    student = {}
    for key, value in state.items():
        match = _STUDENT_KEY.match(key)
        if match:
            student[match.group(1)] = value
    return student or state
