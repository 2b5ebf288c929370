"""Variable names of the OneFlow 0.x originals and their Hugging Face equivalents."""

from __future__ import annotations

import re

# Names come from the originals' graph code: flow.get_variable inside flow.scope.namespace("bert") /
# "embeddings" / "encoder" / "layer_<i>" ..., `_FullyConnected(name=...)` creating `<name>-weight`
# ([in, out], used as x @ W) and `<name>-bias`, `flow.layers.layer_norm(name="LayerNorm")` creating
# `LayerNorm-gamma`/`-beta`, the pooler in namespace "bert-pooler", and the classifier head
# `classification-output_weights` ([num_labels, hidden], used with transpose_b, i.e. already [out, in]).
# Students live in namespace "student" (prefix "student-"), with their TinyBERT/PKD projection
# `fit_dense-weight` ([fit_size, hidden], also transpose_b).

# legacy name -> (HF key, stored transposed)
_LEGACY_FIXED: dict[str, tuple[str, bool]] = {
    "bert-embeddings-word_embeddings": ("bert.embeddings.word_embeddings.weight", False),
    "bert-embeddings-position_embeddings": ("bert.embeddings.position_embeddings.weight", False),
    "bert-embeddings-token_type_embeddings": ("bert.embeddings.token_type_embeddings.weight", False),
    "bert-embeddings-LayerNorm-gamma": ("bert.embeddings.LayerNorm.weight", False),
    "bert-embeddings-LayerNorm-beta": ("bert.embeddings.LayerNorm.bias", False),
    "bert-pooler-dense-weight": ("bert.pooler.dense.weight", True),
    "bert-pooler-dense-bias": ("bert.pooler.dense.bias", False),
    "classification-output_weights": ("classifier.weight", False),
    "classification-output_bias": ("classifier.bias", False),
    "fit_dense-weight": ("fit_dense.weight", False),
    "fit_dense-bias": ("fit_dense.bias", False),
}

# legacy suffix after "bert-encoder-layer_<i>-" -> (HF suffix after "bert.encoder.layer.<i>.", transposed)
_LEGACY_LAYER: dict[str, tuple[str, bool]] = {}
for _legacy, _hf in (
    ("attention-self-query", "attention.self.query"),
    ("attention-self-key", "attention.self.key"),
    ("attention-self-value", "attention.self.value"),
    ("attention-output-dense", "attention.output.dense"),
    ("intermediate-dense", "intermediate.dense"),
    ("output-dense", "output.dense"),
):
    _LEGACY_LAYER[f"{_legacy}-weight"] = (f"{_hf}.weight", True)
    _LEGACY_LAYER[f"{_legacy}-bias"] = (f"{_hf}.bias", False)
for _legacy, _hf in (
    ("attention-output-LayerNorm", "attention.output.LayerNorm"),
    ("output-LayerNorm", "output.LayerNorm"),
):
    _LEGACY_LAYER[f"{_legacy}-gamma"] = (f"{_hf}.weight", False)
    _LEGACY_LAYER[f"{_legacy}-beta"] = (f"{_hf}.bias", False)

_HF_FIXED = {hf: (legacy, t) for legacy, (hf, t) in _LEGACY_FIXED.items()}
HF_LAYER = {hf: (legacy, t) for legacy, (hf, t) in _LEGACY_LAYER.items()}
LEGACY_LAYER_RE = re.compile(r"^bert-encoder-layer_(\d+)-(.+)$")
HF_LAYER_RE = re.compile(r"^bert\.encoder\.layer\.(\d+)\.(.+)$")


def legacy_to_hf_name(name: str) -> tuple[str, bool] | None:
    """HF key for a legacy variable name (without ``student-``) and whether it is stored [in, out].

    Returns None for names that are not model parameters of the classifier (optimizer moments,
    ``System-Train-TrainStep-*``, learning-rate variables, pre-training heads such as ``cls-*``).
    """
    if name in _LEGACY_FIXED:
        return _LEGACY_FIXED[name]
    match = LEGACY_LAYER_RE.match(name)
    if match and match.group(2) in _LEGACY_LAYER:
        hf, transposed = _LEGACY_LAYER[match.group(2)]
        return f"bert.encoder.layer.{match.group(1)}.{hf}", transposed
    return None


def hf_to_legacy_name(key: str) -> tuple[str, bool] | None:
    """Inverse of :func:`legacy_to_hf_name`; None for keys the legacy layout has no name for."""
    if key in _HF_FIXED:
        return _HF_FIXED[key]
    match = HF_LAYER_RE.match(key)
    if match and match.group(2) in HF_LAYER:
        legacy, transposed = HF_LAYER[match.group(2)]
        return f"bert-encoder-layer_{match.group(1)}-{legacy}", transposed
    return None


def is_non_model_variable(name: str) -> bool:
    """Optimizer moments, step counters and learning-rate variables the originals saved too."""
    return (
        name.endswith(("-m", "-v"))
        or name.startswith("System-")
        or "learning_rate" in name.lower()
        or "TrainStep" in name
    )
