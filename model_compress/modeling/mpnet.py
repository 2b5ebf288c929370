"""MPNet (all-mpnet-base-v2) in OneFlow modules named after Hugging Face MPNet checkpoints.

Differences from BERT: no token-type embeddings; position ids count real tokens from the padding index
(``pad_token_id + cumsum(mask)`` on tokens, ``pad_token_id`` on padding, as HF derives them); a
relative-position bias (a ``buckets x heads`` table shared by every layer, looked up once per forward
from the bucket of each key - query distance) is added to every layer's attention scores; attention
projections are ``attention.attn.{q,k,v,o}`` with the post-attention LayerNorm at ``attention.LayerNorm``;
the classification head (``classifier.dense`` + tanh, then ``classifier.out_proj``) reads the ``<s>``
state directly, with dropout before and after the dense layer.

The classifier keeps BertForSequenceClassification's call signature and outputs, so training, distillation
objectives, evaluation and snapshots use either model unchanged (the token-type argument is ignored).
"""

from __future__ import annotations

import math

import numpy as np
import oneflow as flow
from oneflow import nn

from model_compress.modeling.bert import (
    BertLayer,
    EncoderOutput,
    additive_attention_mask,
    init_bert_weights,
    multi_head_attention,
    run_layers,
)
from model_compress.modeling.config import MPNetConfig

RELATIVE_MAX_DISTANCE = 128  # distances beyond it share the last bucket (HF's max_distance)


def relative_position_buckets(length: int, num_buckets: int, max_distance: int = RELATIVE_MAX_DISTANCE
                              ) -> np.ndarray:
    """[length, length] bucket of key position j seen from query position i (T5 / MPNet bucketing).

    Half of the buckets hold keys after the query, half keys at or before it. In each half the first
    quarter of ``num_buckets`` are exact distances 0..n-1; larger distances fall into log-spaced buckets up
    to ``max_distance``, beyond which they share the last one. The logarithm is taken in float32, as the
    reference implementation does, so boundary distances land in the same bucket.
    """
    distance = np.arange(length)[:, None] - np.arange(length)[None, :]  # query - key
    half = num_buckets // 2
    exact = half // 2
    offset = np.where(distance < 0, half, 0)
    n = np.abs(distance)
    far = np.maximum(n, exact).astype(np.float32)  # the log is only used where n >= exact
    scaled = np.log(far / np.float32(exact)) / np.float32(math.log(max_distance / exact)) * np.float32(half - exact)
    large = np.minimum(exact + scaled.astype(np.int64), half - 1)
    return (offset + np.where(n < exact, n, large)).astype(np.int64)


class MPNetEmbeddings(nn.Module):
    def __init__(self, config: MPNetConfig) -> None:
        super().__init__()
        self.padding_idx = config.pad_token_id
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: flow.Tensor, attention_mask: flow.Tensor) -> flow.Tensor:
        mask = attention_mask.to(flow.int64)
        positions = flow.cumsum(mask, dim=1) * mask + self.padding_idx
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions)
        return self.dropout(self.LayerNorm(x))


class MPNetSelfAttention(nn.Module):
    def __init__(self, config: MPNetConfig) -> None:
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.q = nn.Linear(config.hidden_size, config.hidden_size)
        self.k = nn.Linear(config.hidden_size, config.hidden_size)
        self.v = nn.Linear(config.hidden_size, config.hidden_size)
        self.o = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def forward(self, hidden: flow.Tensor, additive: flow.Tensor):
        context, scores, probs, qkv = multi_head_attention(self.q(hidden), self.k(hidden), self.v(hidden),
                                                           additive, self.num_heads, self.dropout)
        return self.o(context), scores, probs, qkv


class MPNetAttention(nn.Module):
    def __init__(self, config: MPNetConfig) -> None:
        super().__init__()
        self.attn = MPNetSelfAttention(config)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden: flow.Tensor, additive: flow.Tensor):
        out, scores, probs, qkv = self.attn(hidden, additive)
        return self.LayerNorm(self.dropout(out) + hidden), scores, probs, qkv


class MPNetEncoder(nn.Module):
    def __init__(self, config: MPNetConfig) -> None:
        super().__init__()
        # BERT's layer with MPNet's attention block (intermediate / output are the same)
        self.layer = nn.ModuleList([BertLayer(config, MPNetAttention(config)) for _ in range(config.num_hidden_layers)])
        self.relative_attention_bias = nn.Embedding(config.relative_attention_num_buckets,
                                                    config.num_attention_heads)
        # bucket ids for every (query, key) pair a sequence can have; a buffer (not saved) so it follows the
        # module to devices and global placements
        buckets = relative_position_buckets(config.max_seq_length, config.relative_attention_num_buckets)
        self.register_buffer("position_buckets", flow.tensor(buckets), persistent=False)

    def position_bias(self, seq_len: int) -> flow.Tensor:
        """[1, heads, L, L] bias added to every layer's attention scores."""
        if seq_len > self.position_buckets.shape[0]:
            raise ValueError(f"sequence length {seq_len} exceeds the {self.position_buckets.shape[0]} positions "
                             "of this MPNet")
        bias = self.relative_attention_bias(self.position_buckets[:seq_len, :seq_len])  # [L, L, heads]
        return bias.permute(2, 0, 1).unsqueeze(0)


class MPNetModel(nn.Module):
    """Embeddings + encoder (HF's MPNetModel without the pooler, as MPNetForSequenceClassification builds it)."""

    def __init__(self, config: MPNetConfig) -> None:
        super().__init__()
        self.config, self.embeddings, self.encoder = config, MPNetEmbeddings(config), MPNetEncoder(config)

    def forward(self, input_ids: flow.Tensor, token_type_ids: flow.Tensor | None, attention_mask: flow.Tensor,
                output_hidden_states: bool = False, output_attentions: bool = False, output_qkv: bool = False,
                ) -> EncoderOutput:
        """Same outputs as BertModel's (``pooled_output`` is None); ``token_type_ids`` is ignored."""
        hidden = self.embeddings(input_ids, attention_mask)
        # padding mask and position bias summed once, then shared by every layer
        additive = additive_attention_mask(attention_mask) + self.encoder.position_bias(input_ids.shape[1])
        return run_layers(self.encoder.layer, hidden, additive, output_hidden_states, output_attentions, output_qkv)


class MPNetClassificationHead(nn.Module):
    """dropout -> dense -> tanh -> dropout -> out_proj over the first (``<s>``) token's state."""

    def __init__(self, config: MPNetConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, sequence_output: flow.Tensor) -> flow.Tensor:
        x = flow.tanh(self.dense(self.dropout(sequence_output[:, 0])))
        return self.out_proj(self.dropout(x))


class MPNetForSequenceClassification(nn.Module):
    """MPNet + classification head; called like BertForSequenceClassification."""

    def __init__(self, config: MPNetConfig) -> None:
        super().__init__()
        self.config = config
        self.mpnet = MPNetModel(config)
        self.classifier = MPNetClassificationHead(config)
        init_bert_weights(self, config.initializer_range)

    @property
    def encoder_model(self) -> MPNetModel:
        return self.mpnet

    def forward(self, input_ids: flow.Tensor, token_type_ids: flow.Tensor | None, attention_mask: flow.Tensor,
                **outputs: bool) -> tuple[flow.Tensor, EncoderOutput]:
        """``outputs``: output_hidden_states / output_attentions / output_qkv, as MPNetModel takes them."""
        enc = self.mpnet(input_ids, token_type_ids, attention_mask, **outputs)
        return self.classifier(enc.sequence_output), enc
