"""BERT in OneFlow modules whose parameter names match Hugging Face BERT checkpoints one-to-one.

Every distillation loss in the project reads intermediate states from here: per-layer hidden states,
attention probabilities, raw attention scores and the per-layer query/key/value projections, each
returned only when asked for so plain training does not keep them alive.
"""

from __future__ import annotations

import dataclasses
import math

import oneflow as flow
from oneflow import nn

from model_compress.modeling.config import BertConfig


@dataclasses.dataclass
class EncoderOutput:
    """What one BERT forward can return; lists are empty unless requested.

    hidden_states: embeddings output followed by every layer's output, each [B, L, H].
    attention_probs / attention_scores: per layer [B, heads, L, L] (scores before softmax, masked).
    qkv: per layer (query, key, value), each [B, heads, L, head_size].
    """

    sequence_output: flow.Tensor
    pooled_output: flow.Tensor | None
    hidden_states: list = dataclasses.field(default_factory=list)
    attention_probs: list = dataclasses.field(default_factory=list)
    attention_scores: list = dataclasses.field(default_factory=list)
    qkv: list = dataclasses.field(default_factory=list)


class BertEmbeddings(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        # a buffer (not saved) so it follows the module to devices and global placements
        positions = flow.arange(config.max_position_embeddings, dtype=flow.int64).unsqueeze(0)
        self.register_buffer("position_ids", positions, persistent=False)

    def forward(self, input_ids: flow.Tensor, token_type_ids: flow.Tensor) -> flow.Tensor:
        seq_len = input_ids.shape[1]
        if seq_len > self.position_ids.shape[1]:
            raise ValueError(f"sequence length {seq_len} exceeds max_position_embeddings {self.position_ids.shape[1]}")
        positions = self.position_ids[:, :seq_len]
        x = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(positions)
            + self.token_type_embeddings(token_type_ids)
        )
        return self.dropout(self.LayerNorm(x))


def multi_head_attention(query: flow.Tensor, key: flow.Tensor, value: flow.Tensor, additive: flow.Tensor,
                         num_heads: int, dropout: nn.Module):
    """Scaled dot-product attention over projected [B, L, H] inputs split into ``num_heads`` heads.

    ``additive`` (broadcast to [B, heads, L, L]) is added to the scaled scores: the padding mask, plus
    MPNet's relative-position bias. Returns (context [B, L, H], scores, probs, (q, k, v) per head).
    """
    b, n, width = query.shape
    size = width // num_heads

    def split(x: flow.Tensor) -> flow.Tensor:
        return x.reshape(b, n, num_heads, size).permute(0, 2, 1, 3)

    q, k, v = split(query), split(key), split(value)
    scores = flow.matmul(q, k, transpose_b=True) / math.sqrt(size) + additive
    probs = flow.softmax(scores, dim=-1)
    context = flow.matmul(dropout(probs), v).permute(0, 2, 1, 3).reshape(b, n, width)
    return context, scores, probs, (q, k, v)


class BertSelfAttention(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_size = config.head_size
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def forward(self, hidden: flow.Tensor, additive_mask: flow.Tensor):
        return multi_head_attention(self.query(hidden), self.key(hidden), self.value(hidden), additive_mask,
                                    self.num_heads, self.dropout)


class BertResidualOutput(nn.Module):
    """dense -> dropout -> add residual -> LayerNorm; BERT's `attention.output` and `output` blocks."""

    def __init__(self, config: BertConfig, in_features: int) -> None:
        super().__init__()
        self.dense = nn.Linear(in_features, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x: flow.Tensor, residual: flow.Tensor) -> flow.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertResidualOutput(config, config.hidden_size)

    def forward(self, hidden: flow.Tensor, additive_mask: flow.Tensor):
        context, scores, probs, qkv = self.self(hidden, additive_mask)
        return self.output(context, hidden), scores, probs, qkv


class BertIntermediate(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = nn.GELU()  # exact erf form, as in BERT

    def forward(self, x: flow.Tensor) -> flow.Tensor:
        return self.act(self.dense(x))


class BertLayer(nn.Module):
    """attention -> GELU MLP; ``attention`` (BertAttention by default) returns (output, scores, probs, qkv)."""

    def __init__(self, config: BertConfig, attention: nn.Module | None = None) -> None:
        super().__init__()
        self.attention = attention if attention is not None else BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertResidualOutput(config, config.intermediate_size)

    def forward(self, hidden: flow.Tensor, additive_mask: flow.Tensor):
        attended, scores, probs, qkv = self.attention(hidden, additive_mask)
        return self.output(self.intermediate(attended), attended), scores, probs, qkv


class BertEncoder(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(config) for _ in range(config.num_hidden_layers)])


class BertPooler(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, sequence_output: flow.Tensor) -> flow.Tensor:
        return self.activation(self.dense(sequence_output[:, 0]))


def additive_attention_mask(attention_mask: flow.Tensor, dtype=flow.float32) -> flow.Tensor:
    """[B, L] 1/0 mask -> [B, 1, 1, L] additive mask (0 for tokens, -10000 for padding), as in BERT."""
    return (1.0 - attention_mask.to(dtype).unsqueeze(1).unsqueeze(2)) * -10000.0


def run_layers(layers, hidden: flow.Tensor, additive: flow.Tensor, output_hidden_states: bool = False,
               output_attentions: bool = False, output_qkv: bool = False) -> EncoderOutput:
    """Run the encoder layers over the embeddings output ``hidden``, keeping what was asked for."""
    out = EncoderOutput(sequence_output=hidden, pooled_output=None)
    if output_hidden_states:
        out.hidden_states.append(hidden)
    for layer in layers:
        hidden, scores, probs, qkv = layer(hidden, additive)
        if output_hidden_states:
            out.hidden_states.append(hidden)
        if output_attentions:
            out.attention_scores.append(scores)
            out.attention_probs.append(probs)
        if output_qkv:
            out.qkv.append(qkv)
    out.sequence_output = hidden
    return out


class BertModel(nn.Module):
    """Embeddings + encoder + pooler."""

    def __init__(self, config: BertConfig, add_pooler: bool = True) -> None:
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooler else None

    def forward(
        self,
        input_ids: flow.Tensor,
        token_type_ids: flow.Tensor,
        attention_mask: flow.Tensor,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        output_qkv: bool = False,
    ) -> EncoderOutput:
        hidden = self.embeddings(input_ids, token_type_ids)
        out = run_layers(self.encoder.layer, hidden, additive_attention_mask(attention_mask),
                         output_hidden_states, output_attentions, output_qkv)
        if self.pooler is not None:
            out.pooled_output = self.pooler(out.sequence_output)
        return out


class BertForSequenceClassification(nn.Module):
    """BERT + dropout + linear head over the pooled [CLS] state."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.bert = BertModel(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        init_bert_weights(self, config.initializer_range)

    @property
    def encoder_model(self) -> BertModel:
        """The encoder under the head (MPNet's classifier names it the same way)."""
        return self.bert

    def forward(
        self,
        input_ids: flow.Tensor,
        token_type_ids: flow.Tensor,
        attention_mask: flow.Tensor,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        output_qkv: bool = False,
    ) -> tuple[flow.Tensor, EncoderOutput]:
        enc = self.bert(
            input_ids, token_type_ids, attention_mask, output_hidden_states, output_attentions, output_qkv
        )
        logits = self.classifier(self.dropout(enc.pooled_output))
        return logits, enc


def init_bert_weights(module: nn.Module, std: float = 0.02) -> None:
    """BERT's initialisation: N(0, std) for weights and embeddings, zero biases, unit LayerNorm."""
    for sub in module.modules():
        if isinstance(sub, (nn.Linear, nn.Embedding)):
            nn.init.normal_(sub.weight, mean=0.0, std=std)
            if isinstance(sub, nn.Linear) and sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, nn.LayerNorm):
            nn.init.ones_(sub.weight)
            nn.init.zeros_(sub.bias)


def count_parameters(module: nn.Module) -> int:
    """Number of scalar parameters."""
    return int(sum(p.numel() for p in module.parameters()))


def parameter_mib(module: nn.Module) -> float:
    """Parameter memory in MiB (float32 storage)."""
    return sum(p.numel() * p.element_size() for p in module.parameters()) / 2**20
