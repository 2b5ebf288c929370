"""Meta-KD student distillation: layer mappings, per-example losses and the two stage objectives.

The meta-teacher's knowledge arrives as batch inputs gathered from the on-disk dump written by
``meta_teacher_eval.py`` (see docs/metakd.md): ``teacher_logits`` [B, C], ``teacher_attention``
[B, M, heads, L, L] (attention probabilities of the mapped teacher layers, or their raw scores),
``teacher_hidden`` [B, M + 1, L, H_t] (embeddings output and mapped layer outputs) and ``teacher_domain`` [B, H_t]
(mean of the teacher's last layer over real tokens).

Stage 1 (TinyBERT-style intermediate distillation), per example i::

    L_i = sum_l MSE(A_s[l], A_t[k*l+k-1]) + sum_j MSE(fit_dense(h_s[j]), h_t[k*j])
          + domain_loss_weight * MSE(domain_proj(pool(h_s[M]) + E[d_i]), pool(h_t[N]))
    L   = mean_i  u_i * L_i,    u_i = (1 + w_i) / (exp((1 - p_t(y_i))^2) + 1)

with l = 0..M-1 student layers (0-based), j = 0..M hidden-state indices (0 = embeddings), k = N // M,
w_i the prototypical score and p_t(y_i) the teacher's probability of the true label. A is the attention
probability (softmax over keys) by default, as the OneFlow original and EasyNLP compare; with
``attention="scores"`` it is the raw masked score, where values at or below -100 (masked keys) count
as 0 on both sides, as in TinyBERT.

Stage 2: soft-label cross-entropy at temperature T, -sum_c softmax(z_t / T)_c log softmax(z_s / T)_c,
batch mean; optionally weighted by u_i as well (off by default, as in EasyNLP).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import oneflow as flow
from oneflow import nn

from model_compress.distill import losses
from model_compress.distill.mapping import check_layer_counts, uniform_mapping
from model_compress.distill.meta import domain_expertise_weight, mean_pool
from model_compress.training.objectives import ENCODER_INPUTS, labels_of

MASKED_SCORE = -100.0  # attention scores at or below this are masked keys; TinyBERT compares them as 0
ATTENTION_KINDS = ("probs", "scores")  # what the attention loss compares: probabilities or raw scores
TEACHER_ARRAYS = ("teacher_logits", "teacher_attention", "teacher_hidden", "teacher_domain")


# ----------------------------------------------------------------------------------------------
# layer mappings


def layers_per_block(student_layers: int, teacher_layers: int) -> int:
    """k = N // M: each student layer stands for a block of k teacher layers (N a multiple of M)."""
    return check_layer_counts(student_layers, teacher_layers)


def attention_mapping(student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """(student layer i, teacher layer k*i + k - 1) pairs, 0-based encoder layers (the top of each block)."""
    k = layers_per_block(student_layers, teacher_layers)
    return [(i, k * i + k - 1) for i in range(student_layers)]


def hidden_mapping(student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """(student j, teacher k*j) for j = 0 (embeddings) .. M, as indexes of EncoderOutput.hidden_states."""
    return uniform_mapping(student_layers, teacher_layers, include_embeddings=True)


def student_init_layers(student_layers: int, pretrained_layers: int) -> list[int]:
    """0-based pretrained layers a sliced student starts from: the attention mapping's teacher side."""
    return [t for _, t in attention_mapping(student_layers, pretrained_layers)]


# ----------------------------------------------------------------------------------------------
# per-example losses ([B] each, so that examples can be weighted before averaging)


def keep_unmasked(scores: flow.Tensor) -> flow.Tensor:
    """Attention scores with masked positions (<= -100) set to 0."""
    return scores * (scores > MASKED_SCORE).to(scores.dtype)


def attention_mse_per_example(student: Sequence[flow.Tensor], teacher: flow.Tensor,
                              attention: str = "probs") -> flow.Tensor:
    """Student maps [B, heads, L, L] per layer, teacher stack [B, layers, heads, L, L] -> [B]: sum over
    layers of the mean squared error per layer.

    `attention` "scores": raw scores, masked keys (<= -100) counted as 0; "probs": probabilities as they are.
    """
    if attention == "scores":
        student, teacher = [keep_unmasked(s) for s in student], keep_unmasked(teacher)
    return losses.layerwise_mse_per_example(student, teacher)


def hidden_mse_per_example(student_states: Sequence[flow.Tensor], teacher_states: flow.Tensor) -> flow.Tensor:
    """Student states [B, L, H] per layer (already projected), teacher stack [B, layers, L, H] -> [B]: sum
    over layers of the per-layer MSE."""
    return losses.layerwise_mse_per_example(student_states, teacher_states)


def check_attention_kind(attention: str) -> str:
    if attention not in ATTENTION_KINDS:
        raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {attention!r}")
    return attention


def attention_maps(enc, attention: str) -> list:
    """The per-layer attention tensors the loss compares: probabilities or raw scores."""
    return enc.attention_probs if attention == "probs" else enc.attention_scores


def teacher_true_probability(teacher_logits: flow.Tensor, labels: flow.Tensor) -> flow.Tensor:
    """[B] p_t(y_i): the teacher's softmax probability of each example's true label."""
    probs = flow.softmax(teacher_logits, dim=-1)
    return (probs * nn.functional.one_hot(labels, teacher_logits.shape[-1]).to(probs.dtype)).sum(-1)


def expertise_weights(teacher_logits: flow.Tensor, label_ids: flow.Tensor, proto_weights: flow.Tensor) -> flow.Tensor:
    """[B] domain-expertise weights u_i from the teacher logits, labels and prototypical scores."""
    p_true = teacher_true_probability(teacher_logits, labels_of(label_ids))
    return domain_expertise_weight(p_true, proto_weights.reshape(-1).to(p_true.dtype))


# ----------------------------------------------------------------------------------------------
# objectives


class MetaDistillFirstStage(nn.Module):
    """Stage 1: attention + hidden-state + domain-knowledge MSE, each example weighted by u_i.

    Owns the stage's learned projections: ``fit_dense`` (student width -> teacher width, shared by
    all hidden states), the student-side ``domain_embeddings`` and ``domain_proj``. Returns
    (loss, logits, attention loss, hidden loss, domain loss), the last three unweighted batch means.
    """

    input_names = ENCODER_INPUTS + ("label_ids", "domain", "weights") + TEACHER_ARRAYS

    def __init__(self, student: nn.Module, teacher_hidden_size: int, num_domains: int,
                 attention_layers: Sequence[int], hidden_layers: Sequence[int],
                 domain_loss_weight: float = 0.5, use_sample_weights: bool = True,
                 attention: str = "probs") -> None:
        super().__init__()
        self.attention = check_attention_kind(attention)
        config = student.config
        if len(attention_layers) != config.num_hidden_layers:
            raise ValueError(f"{len(attention_layers)} teacher attention layers for a "
                             f"{config.num_hidden_layers}-layer student")
        if len(hidden_layers) != config.num_hidden_layers + 1:
            raise ValueError(f"{len(hidden_layers)} teacher hidden states for a "
                             f"{config.num_hidden_layers}-layer student (need layers + 1)")
        self.student = student
        self.domain_loss_weight = float(domain_loss_weight)
        self.use_sample_weights = bool(use_sample_weights)
        self.fit_dense = nn.Linear(config.hidden_size, teacher_hidden_size)
        self.domain_embeddings = nn.Embedding(num_domains, config.hidden_size)
        self.domain_proj = nn.Linear(config.hidden_size, teacher_hidden_size)
        for module in (self.fit_dense, self.domain_proj):
            nn.init.normal_(module.weight, mean=0.0, std=config.initializer_range)
            nn.init.zeros_(module.bias)
        nn.init.normal_(self.domain_embeddings.weight, mean=0.0, std=config.initializer_range)

    def student_domain(self, last_hidden: flow.Tensor, mask: flow.Tensor, domain: flow.Tensor) -> flow.Tensor:
        """[B, H_t] student domain representation: domain_proj(pool(last layer) + E[domain])."""
        return self.domain_proj(mean_pool(last_hidden, mask) + self.domain_embeddings(labels_of(domain)))

    def forward(self, input_ids, input_mask, segment_ids, label_ids, domain, weights,
                teacher_logits, teacher_attention, teacher_hidden, teacher_domain):
        logits, enc = self.student(input_ids, segment_ids, input_mask, output_hidden_states=True,
                                   output_attentions=True)
        # per-layer terms, no stack of the student's layers (see losses.layerwise_mse_per_example)
        attention = attention_mse_per_example(attention_maps(enc, self.attention), teacher_attention, self.attention)
        hidden = hidden_mse_per_example([self.fit_dense(h) for h in enc.hidden_states], teacher_hidden)
        dom = losses.mse_per_example(self.student_domain(enc.sequence_output, input_mask, domain), teacher_domain)
        per_example = attention + hidden + self.domain_loss_weight * dom
        if self.use_sample_weights:
            per_example = per_example * expertise_weights(teacher_logits, label_ids, weights)
        return per_example.mean(), logits, attention.mean(), hidden.mean(), dom.mean()


class MetaDistillSecondStage(nn.Module):
    """Stage 2: soft-label cross-entropy at temperature T (optionally weighted by u_i). Returns (loss, logits)."""

    input_names = ENCODER_INPUTS + ("label_ids", "weights", "teacher_logits")

    def __init__(self, student: nn.Module, temperature: float = 2.0, use_sample_weights: bool = False) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.student = student
        self.temperature = float(temperature)
        self.use_sample_weights = bool(use_sample_weights)

    def forward(self, input_ids, input_mask, segment_ids, label_ids, weights, teacher_logits):
        logits, _ = self.student(input_ids, segment_ids, input_mask)
        per_example = losses.soft_cross_entropy_per_example(logits, teacher_logits, self.temperature)
        if self.use_sample_weights:
            per_example = per_example * expertise_weights(teacher_logits, label_ids, weights)
        return per_example.mean(), logits


class MetaTeacherOutputs(nn.Module):
    """Inference wrapper: what the student stages need from the meta-teacher, in ``names`` order.

    Outputs: logits [B, C]; attention probabilities (``attention="probs"``) or raw scores of
    ``attention_layers`` (0-based encoder layers) [B, len, heads, L, L]; hidden states
    ``hidden_layers`` (EncoderOutput.hidden_states indexes, 0 = embeddings) [B, len, L, H]; the domain
    representation, mean of the last layer over real tokens [B, H].
    """

    input_names = ENCODER_INPUTS
    names = TEACHER_ARRAYS

    def __init__(self, teacher: nn.Module, attention_layers: Sequence[int], hidden_layers: Sequence[int],
                 attention: str = "probs") -> None:
        super().__init__()
        self.attention = check_attention_kind(attention)
        self.teacher = teacher
        self.attention_layers = [int(i) for i in attention_layers]
        self.hidden_layers = [int(i) for i in hidden_layers]

    def forward(self, input_ids, input_mask, segment_ids):
        logits, enc = self.teacher(input_ids, segment_ids, input_mask, output_hidden_states=True,
                                   output_attentions=True)
        maps = attention_maps(enc, self.attention)
        attention = flow.stack([maps[i] for i in self.attention_layers], dim=1)
        hidden = flow.stack([enc.hidden_states[j] for j in self.hidden_layers], dim=1)
        return logits, attention, hidden, mean_pool(enc.sequence_output, input_mask)


# ----------------------------------------------------------------------------------------------
# batch pipeline


class RowSubset:
    """Batches of an OFRecordLoader restricted to some of its records (e.g. one domain's rows).

    Keeps the loader's semantics: a shuffle per epoch drawn from (seed, epoch), rank sharding, drop_last
    in training mode. Batches carry the records' original ``idxs``, so per-example caches of the whole
    split still join by index.
    """

    def __init__(self, loader, rows: np.ndarray) -> None:
        from model_compress.data.loader import shard_indices

        self.loader = loader
        self.rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(self.rows) == 0:
            raise ValueError("the row subset is empty")
        self._shard = shard_indices
        self._epoch = 0
        count = len(self._indices(0))
        if loader.drop_last and count < loader.batch_size:
            raise ValueError(f"{count} records on this rank, fewer than one batch of {loader.batch_size}: "
                             "lower the batch size")

    def _indices(self, epoch: int) -> np.ndarray:
        lo = self.loader
        picked = self._shard(len(self.rows), lo.rank, lo.world_size, lo.shuffle, lo.seed, epoch,
                             equal_shards=lo.drop_last)
        return self.rows[picked]

    def __len__(self) -> int:
        count, batch = len(self._indices(0)), self.loader.batch_size
        return count // batch if self.loader.drop_last else -(-count // batch)

    def set_epoch(self, epoch: int) -> None:
        self._epoch = int(epoch)

    def __iter__(self) -> Iterator[dict]:
        order = self._indices(self._epoch)
        self._epoch += 1
        arrays, batch, device = self.loader.arrays, self.loader.batch_size, self.loader.device
        for step in range(len(self)):
            index = order[step * batch:(step + 1) * batch]
            tensors = {name: flow.from_numpy(np.ascontiguousarray(arrays[name][index]))
                       for name in self.loader.features}
            if device not in (None, "cpu"):
                tensors = {name: t.to(device) for name, t in tensors.items()}
            yield tensors


class WithUnitWeights:
    """Replaces every batch's ``weights`` by ones (training without sample weights)."""

    def __init__(self, source) -> None:
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def set_epoch(self, epoch: int) -> None:
        self.source.set_epoch(epoch)

    def __iter__(self) -> Iterator[dict]:
        for batch in self.source:
            size = batch["input_ids"].shape[0]
            yield {**batch, "weights": flow.ones(size, dtype=flow.float32)}
