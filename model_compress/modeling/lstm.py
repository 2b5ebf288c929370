"""The Distilled BiLSTM student: word embeddings -> (bi)LSTM -> ReLU layer -> classifier.

It takes the same inputs as the BERT classifiers (`input_ids, token_type_ids, attention_mask`) and
returns `(logits, None)`, so the KD objectives, evaluation and snapshots treat it like any student.

Padding: each direction is its own single-layer LSTM, and the backward direction reads every
sequence reversed *within its real length* (a gather by per-example indices), so neither direction
ever reads a padding position before a real token. The sentence vector is the forward state at the
last real token concatenated with the backward state at the first token, exactly what packed
sequences would give, with fixed shapes that compile in nn.Graph.

A direction (`LSTMDirection`) holds `nn.LSTM`'s parameters under its names. On local tensors it runs
OneFlow's fused LSTM op; on global ones (a run under `oneflow.distributed.launch`, batch split over
the ranks) it runs the recurrence step by step from matmul, sigmoid and tanh, because the fused op's
backward in OneFlow 0.9 mixes up physical and logical shapes of a split tensor ("Stack Grad expects
the shape of input tensor ...").
"""

from __future__ import annotations

import math

import oneflow as flow
from oneflow import nn
from oneflow.nn import functional as F

from model_compress.modeling.config import LSTMConfig


def _gather_time(x: flow.Tensor, index: flow.Tensor) -> flow.Tensor:
    """x [B, L, D] gathered along time by index [B, T] -> [B, T, D]."""
    return flow.gather(x, 1, index.unsqueeze(-1).expand(index.shape[0], index.shape[1], x.shape[-1]))


def reverse_within_length(attention_mask: flow.Tensor) -> tuple[flow.Tensor, flow.Tensor]:
    """(per-example reversal indices [B, L], last real position [B, 1]) from a [B, L] 1/0 mask.

    Position t < n maps to n - 1 - t, padding positions map to themselves (n the real length, at
    least 1); applying the gather twice gives the original order back.
    """
    mask = attention_mask.to(flow.int64)
    positions = flow.cumsum(mask * 0 + 1, dim=1) - 1  # arithmetic, not flow.ones: no module call in nn.Graph
    length = flow.clamp(mask.sum(dim=1, keepdim=True), min=1)
    reversed_index = flow.where(positions < length, length - 1 - positions, positions)
    return reversed_index, length - 1


def lstm_recurrence(x: flow.Tensor, h: flow.Tensor, c: flow.Tensor, weight_ih: flow.Tensor, weight_hh: flow.Tensor,
                    bias_ih: flow.Tensor, bias_hh: flow.Tensor) -> flow.Tensor:
    """All hidden states [B, L, H] of an LSTM over x [B, L, I] from states h, c [B, H], in elementary ops.

    Gates in nn.LSTM's order (input, forget, cell, output): i, f, g, o = split(x_t W_ih^T + b_ih + h W_hh^T
    + b_hh); c = sigmoid(f) c + sigmoid(i) tanh(g); h = sigmoid(o) tanh(c). The steps are joined by
    concatenation, not flow.stack (whose backward fails on split global tensors in nn.Graph).
    """
    inputs = F.linear(x, weight_ih, bias_ih + bias_hh)  # every step's input projection at once
    steps = []
    for t in range(x.shape[1]):
        i, f, g, o = flow.chunk(inputs[:, t] + F.linear(h, weight_hh), 4, dim=-1)
        c = flow.sigmoid(f) * c + flow.sigmoid(i) * flow.tanh(g)
        h = flow.sigmoid(o) * flow.tanh(c)
        steps.append(h.unsqueeze(1))
    return flow.cat(steps, dim=1)


class LSTMDirection(nn.Module):
    """A single-layer, batch-first LSTM with `nn.LSTM`'s parameter names, shapes and initialisation.

    `fused`: None (default) runs OneFlow's fused op on local tensors and `lstm_recurrence` on global
    ones; True or False forces one of them.
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.fused: bool | None = None
        self.weight_ih_l0 = nn.Parameter(flow.empty(4 * hidden_size, input_size))
        self.weight_hh_l0 = nn.Parameter(flow.empty(4 * hidden_size, hidden_size))
        self.bias_ih_l0 = nn.Parameter(flow.empty(4 * hidden_size))
        self.bias_hh_l0 = nn.Parameter(flow.empty(4 * hidden_size))
        bound = 1.0 / math.sqrt(hidden_size)
        for parameter in self.parameters():  # nn.LSTM's order and draws: the same weights for the same seed
            nn.init.uniform_(parameter, -bound, bound)

    def forward(self, x: flow.Tensor, zeros: flow.Tensor) -> flow.Tensor:
        """Hidden states [B, L, H] of x [B, L, I], starting from zero states `zeros` [B, H]."""
        weights = [self.weight_ih_l0, self.weight_hh_l0, self.bias_ih_l0, self.bias_hh_l0]
        fused = not x.is_global if self.fused is None else self.fused
        if fused:
            state = zeros.unsqueeze(0)
            return flow._C.lstm(x, (state, state), weights, True, 1, 0.0, self.training, False, True)[0]
        return lstm_recurrence(x, zeros, zeros, *weights)


def set_recurrence(model: nn.Module, fused: bool | None) -> nn.Module:
    """Set `fused` on every LSTMDirection of `model` (None: automatic); returns `model`."""
    for module in model.modules():
        if isinstance(module, LSTMDirection):
            module.fused = fused
    return model


class BiLSTMLayer(nn.Module):
    """One layer: a forward LSTM and, if bidirectional, a backward one over the length-reversed input."""

    def __init__(self, input_size: int, hidden_size: int, bidirectional: bool) -> None:
        super().__init__()
        self.fw = LSTMDirection(input_size, hidden_size)
        self.bw = LSTMDirection(input_size, hidden_size) if bidirectional else None

    def forward(self, x: flow.Tensor, reversed_index: flow.Tensor) -> tuple[flow.Tensor, flow.Tensor | None]:
        """Outputs per position: forward [B, L, H] and backward [B, L, H] (in the original order) or None."""
        # zero initial states [B, H] made from x (flow.zeros is a module call nn.Graph warns about)
        zeros = (x[:, 0, :1] * 0).repeat(1, self.fw.hidden_size)
        forward = self.fw(x, zeros)
        if self.bw is None:
            return forward, None
        backward = self.bw(_gather_time(x, reversed_index), zeros)
        return forward, _gather_time(backward, reversed_index)


class DistilledBiLSTM(nn.Module):
    """Embedding over the teacher's vocabulary, `num_layers` (bi)LSTM layers, ReLU dense, dropout, classifier."""

    def __init__(self, config: LSTMConfig) -> None:
        super().__init__()
        self.config = config
        directions = 2 if config.bidirectional else 1
        self.word_embeddings = nn.Embedding(config.vocab_size, config.embedding_size)
        self.lstm = nn.ModuleList([
            BiLSTMLayer(config.embedding_size if i == 0 else directions * config.hidden_size, config.hidden_size,
                        config.bidirectional)
            for i in range(config.num_layers)
        ])
        self.dense = nn.Linear(directions * config.hidden_size, config.intermediate_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.intermediate_size, config.num_labels)
        for module in (self.word_embeddings, self.dense, self.classifier):
            nn.init.normal_(module.weight, mean=0.0, std=config.initializer_range)
        nn.init.zeros_(self.dense.bias)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, input_ids: flow.Tensor, token_type_ids: flow.Tensor, attention_mask: flow.Tensor):
        """Logits [B, num_labels] and None (no encoder states); `token_type_ids` is accepted and unused."""
        if self.config.max_seq_length and input_ids.shape[1] > self.config.max_seq_length:
            input_ids = input_ids[:, : self.config.max_seq_length]
            attention_mask = attention_mask[:, : self.config.max_seq_length]
        reversed_index, last = reverse_within_length(attention_mask)
        x = self.word_embeddings(input_ids)
        for layer in self.lstm:
            forward, backward = layer(x, reversed_index)
            x = forward if backward is None else flow.cat([forward, backward], dim=-1)
        features = _gather_time(forward, last).squeeze(1)
        if backward is not None:
            features = flow.cat([features, backward[:, 0]], dim=-1)
        hidden = flow.relu(self.dense(features))
        return self.classifier(self.dropout(hidden)), None
