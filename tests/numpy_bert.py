"""Reference BERT forward pass in numpy (float64), for checking the OneFlow model against.

Follows Hugging Face ``BertModel`` / ``BertForSequenceClassification`` exactly in eval mode (no
dropout): embeddings = LayerNorm(word + position + token_type); each layer = post-LN self-attention
with the additive mask ``(1 - mask) * -10000`` on the key axis, then a GELU (exact erf form) MLP;
pooler = tanh(dense([CLS])); classifier = dense(pooler). Weights use the HF names with Linear
weights [out, in], i.e. the state ``model_compress.modeling.checkpoint`` produces.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU, x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2))), with math.erf (double precision)."""
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    return x @ weight.T + bias


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    z = np.exp(x - x.max(axis=axis, keepdims=True))
    return z / z.sum(axis=axis, keepdims=True)


@dataclasses.dataclass
class BertOutputs:
    """hidden_states[0] is the embedding output, hidden_states[i] the output of layer i (1-based)."""

    hidden_states: list[np.ndarray]
    attentions: list[np.ndarray]  # per layer [batch, heads, query, key]
    pooled: np.ndarray | None
    logits: np.ndarray | None

    @property
    def last_hidden_state(self) -> np.ndarray:
        return self.hidden_states[-1]


def _cfg(config: Any, name: str) -> Any:
    return config[name] if isinstance(config, Mapping) else getattr(config, name)


def bert_forward(
    state: Mapping[str, np.ndarray],
    config: Any,
    input_ids: np.ndarray,
    attention_mask: np.ndarray | None = None,
    token_type_ids: np.ndarray | None = None,
) -> BertOutputs:
    """Run BERT on ``input_ids`` [batch, seq]; ``config`` is a BertConfig or a dict with its fields.

    ``state`` keys may carry the ``bert.`` prefix (classifier state) or not (bare BertModel). Pooler
    and classifier outputs are None when their weights are absent.
    """
    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in state else ""

    def w(name: str) -> np.ndarray:
        return np.asarray(state[prefix + name], dtype=np.float64)

    input_ids = np.asarray(input_ids)
    batch, seq = input_ids.shape
    mask = np.ones((batch, seq)) if attention_mask is None else np.asarray(attention_mask, dtype=np.float64)
    types = np.zeros_like(input_ids) if token_type_ids is None else np.asarray(token_type_ids)
    eps = float(_cfg(config, "layer_norm_eps"))
    heads = int(_cfg(config, "num_attention_heads"))
    hidden = int(_cfg(config, "hidden_size"))
    head_size = hidden // heads

    x = w("embeddings.word_embeddings.weight")[input_ids]
    x = x + w("embeddings.position_embeddings.weight")[np.arange(seq)][None]
    x = x + w("embeddings.token_type_embeddings.weight")[types]
    x = layer_norm(x, w("embeddings.LayerNorm.weight"), w("embeddings.LayerNorm.bias"), eps)
    hidden_states, attentions = [x], []
    additive = ((1.0 - mask) * -10000.0)[:, None, None, :]

    def split(t: np.ndarray) -> np.ndarray:
        return t.reshape(batch, seq, heads, head_size).transpose(0, 2, 1, 3)

    for i in range(int(_cfg(config, "num_hidden_layers"))):
        p = f"encoder.layer.{i}."
        q = split(linear(x, w(p + "attention.self.query.weight"), w(p + "attention.self.query.bias")))
        k = split(linear(x, w(p + "attention.self.key.weight"), w(p + "attention.self.key.bias")))
        v = split(linear(x, w(p + "attention.self.value.weight"), w(p + "attention.self.value.bias")))
        probs = softmax(q @ k.transpose(0, 1, 3, 2) / math.sqrt(head_size) + additive)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, hidden)
        attn = linear(context, w(p + "attention.output.dense.weight"), w(p + "attention.output.dense.bias"))
        x = layer_norm(
            attn + x,
            w(p + "attention.output.LayerNorm.weight"),
            w(p + "attention.output.LayerNorm.bias"),
            eps,
        )
        inner = gelu(linear(x, w(p + "intermediate.dense.weight"), w(p + "intermediate.dense.bias")))
        out = linear(inner, w(p + "output.dense.weight"), w(p + "output.dense.bias"))
        x = layer_norm(out + x, w(p + "output.LayerNorm.weight"), w(p + "output.LayerNorm.bias"), eps)
        hidden_states.append(x)
        attentions.append(probs)

    pooled = logits = None
    if prefix + "pooler.dense.weight" in state:
        pooled = np.tanh(linear(x[:, 0], w("pooler.dense.weight"), w("pooler.dense.bias")))
        if "classifier.weight" in state:
            logits = linear(
                pooled,
                np.asarray(state["classifier.weight"], np.float64),
                np.asarray(state["classifier.bias"]),
            )
    return BertOutputs(hidden_states, attentions, pooled, logits)


def mean_pool(hidden: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """Average of the token vectors where the mask is 1 (sentence-transformers' pooling)."""
    mask = np.asarray(attention_mask, dtype=np.float64)[..., None]
    return (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
