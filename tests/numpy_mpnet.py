"""Reference MPNet forward pass in numpy (float64), for checking the OneFlow model against.

Follows Hugging Face ``MPNetModel`` / ``MPNetForSequenceClassification`` in eval mode (no dropout):
position ids are ``padding_idx + running count of real tokens`` (``padding_idx`` on padding), derived here
from the ids as HF does (``input_ids != padding_idx``); embeddings = LayerNorm(word + position); every
layer adds the same relative-position bias (T5-style buckets of key - query distance, looked up in
``encoder.relative_attention_bias``) and the additive padding mask to its scaled scores; post-LN
attention (``attention.attn.{q,k,v,o}``, ``attention.LayerNorm``) and a GELU MLP; the head is
``out_proj(tanh(dense(h[:, 0])))``. Weights use HF names, Linear weights [out, in].
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from tests.numpy_bert import BertOutputs, _cfg, gelu, layer_norm, linear, softmax


def bucket(relative: int, num_buckets: int = 32, max_distance: int = 128) -> int:
    """Bucket of one relative position (key - query), one scalar at a time; the log in float32 as HF's."""
    half = num_buckets // 2
    base = half if relative > 0 else 0  # keys after the query use the upper half
    n = abs(relative)
    exact = half // 2
    if n < exact:
        return base + n
    log_ratio = np.float32(np.log(np.float32(n) / np.float32(exact)))
    step = int(log_ratio / np.float32(math.log(max_distance / exact)) * np.float32(half - exact))
    return base + min(exact + step, half - 1)


def mpnet_forward(state: Mapping[str, np.ndarray], config: Any, input_ids: np.ndarray,
                  attention_mask: np.ndarray | None = None, padding_idx: int = 1) -> BertOutputs:
    """Run MPNet on ``input_ids`` [batch, seq]; ``config`` is an MPNetConfig or a dict with its fields.

    ``state`` keys may carry the ``mpnet.`` prefix (classifier state) or not (bare MPNetModel).
    ``logits`` is None without ``classifier.*`` weights; ``pooled`` is always None (the classifier reads
    the ``<s>`` state itself).
    """
    prefix = "mpnet." if "mpnet.embeddings.word_embeddings.weight" in state else ""

    def w(name: str) -> np.ndarray:
        return np.asarray(state[prefix + name], dtype=np.float64)

    input_ids = np.asarray(input_ids)
    batch, seq = input_ids.shape
    real = (input_ids != padding_idx).astype(np.int64)
    mask = real.astype(np.float64) if attention_mask is None else np.asarray(attention_mask, dtype=np.float64)
    eps = float(_cfg(config, "layer_norm_eps"))
    heads = int(_cfg(config, "num_attention_heads"))
    hidden = int(_cfg(config, "hidden_size"))
    head_size = hidden // heads
    num_buckets = int(_cfg(config, "relative_attention_num_buckets"))

    positions = np.cumsum(real, axis=1) * real + padding_idx
    x = w("embeddings.word_embeddings.weight")[input_ids] + w("embeddings.position_embeddings.weight")[positions]
    x = layer_norm(x, w("embeddings.LayerNorm.weight"), w("embeddings.LayerNorm.bias"), eps)

    table = w("encoder.relative_attention_bias.weight")  # [buckets, heads]
    buckets = np.array([[bucket(k - q, num_buckets) for k in range(seq)] for q in range(seq)])
    bias = table[buckets].transpose(2, 0, 1)[None]  # [1, heads, query, key]
    additive = ((1.0 - mask) * -10000.0)[:, None, None, :]
    hidden_states, attentions = [x], []

    def split(t: np.ndarray) -> np.ndarray:
        return t.reshape(batch, seq, heads, head_size).transpose(0, 2, 1, 3)

    for i in range(int(_cfg(config, "num_hidden_layers"))):
        p = f"encoder.layer.{i}."
        q, k, v = (split(linear(x, w(f"{p}attention.attn.{n}.weight"), w(f"{p}attention.attn.{n}.bias")))
                   for n in "qkv")
        probs = softmax(q @ k.transpose(0, 1, 3, 2) / math.sqrt(head_size) + bias + additive)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, hidden)
        attn = linear(context, w(p + "attention.attn.o.weight"), w(p + "attention.attn.o.bias"))
        x = layer_norm(attn + x, w(p + "attention.LayerNorm.weight"), w(p + "attention.LayerNorm.bias"), eps)
        inner = gelu(linear(x, w(p + "intermediate.dense.weight"), w(p + "intermediate.dense.bias")))
        out = linear(inner, w(p + "output.dense.weight"), w(p + "output.dense.bias"))
        x = layer_norm(out + x, w(p + "output.LayerNorm.weight"), w(p + "output.LayerNorm.bias"), eps)
        hidden_states.append(x)
        attentions.append(probs)

    logits = None
    if "classifier.dense.weight" in state:
        head = {k: np.asarray(v, np.float64) for k, v in state.items() if k.startswith("classifier.")}
        pooled = np.tanh(linear(x[:, 0], head["classifier.dense.weight"], head["classifier.dense.bias"]))
        logits = linear(pooled, head["classifier.out_proj.weight"], head["classifier.out_proj.bias"])
    return BertOutputs(hidden_states, attentions, None, logits)
