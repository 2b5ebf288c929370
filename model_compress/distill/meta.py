"""Meta-learning pieces shared by Meta Fine-Tuning (MFT) and Meta-KD.

* Prototypical scores (how typical an example is of its class across domains), computed once from
  mean-pooled pretrained embeddings: :func:`mean_pool`, :class:`SentenceEmbedder`,
  :func:`prototypical_scores`.
* The MFT training loss: sample-weighted cross-entropy plus a domain-corruption loss
  (:func:`weighted_cross_entropy`, :class:`DomainCorruptionHead`, :class:`MetaFineTuningObjective`).
  The shuffled domain labels are drawn in the batch pipeline (:func:`shuffled_domains`,
  :class:`WithShuffledDomains`) and fed to the graph as an ordinary input, so the compiled graph
  itself stays deterministic.
* Meta-KD's domain-expertise weight (:func:`domain_expertise_weight`).

Layer indexes are 0-based encoder layers: index ``i`` is the output of encoder layer ``i``, i.e.
``EncoderOutput.hidden_states[i + 1]`` (entry 0 there is the embedding output). ``3,7,11`` on a
12-layer BERT are layers 4, 8 and 12 counted from one, the last being the top layer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import oneflow as flow
from oneflow import nn

from model_compress.distill.losses import cross_entropy_per_example
from model_compress.training.objectives import ENCODER_INPUTS, labels_of

DEFAULT_LAYER_INDEXES = (3, 7, 11)
DEFAULT_LAYER_REFERENCE = 12  # DEFAULT_LAYER_INDEXES are meant for a 12-layer BERT-base
SHUFFLED_DOMAIN = "shuffled_domain"


# ----------------------------------------------------------------------------------------------
# embeddings and prototypical scores


def mean_pool(hidden: flow.Tensor, mask: flow.Tensor) -> flow.Tensor:
    """[B, L, H] states, [B, L] 1/0 mask -> [B, H] mean over the real (mask 1) tokens only."""
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class SentenceEmbedder(nn.Module):
    """Inference wrapper: encoder inputs -> mean of the last layer over real tokens ([B, H])."""

    input_names = ENCODER_INPUTS

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.bert = bert  # a BertModel (e.g. `classifier.bert`)

    def forward(self, input_ids, input_mask, segment_ids):
        enc = self.bert(input_ids, segment_ids, input_mask)
        return mean_pool(enc.sequence_output, input_mask)


def _unit(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


def prototypical_scores(embeddings: np.ndarray, domains: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """MFT prototypical score of every example, in [-1, 1].

    With c[d, y] the centroid (mean embedding) of the examples of domain d and class y, an example
    e of domain d and class y scores

        w = ( cos(e, c[d, y]) + cos(e, mean over d' != d of c[d', y]) ) / 2

    The second term only uses the domains that have examples of class y. When there is none (single-
    domain data, or a class seen in one domain only) it is undefined and replaced by the first, so
    the score reduces to cos(e, c[d, y]): typicality within the example's own domain.

    Args:
        embeddings: [N, H] float array.
        domains: [N] domain ids (any hashable integers).
        labels: [N] class ids.

    Returns:
        [N] float32 scores, in the order of the inputs.
    """
    emb = np.asarray(embeddings, dtype=np.float64)
    domains = np.asarray(domains).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if emb.ndim != 2 or not len(emb) == len(domains) == len(labels):
        raise ValueError(f"expected [N, H] embeddings and [N] domains and labels, got {emb.shape}, "
                         f"{domains.shape}, {labels.shape}")
    centroids = {}
    for key in set(zip(domains.tolist(), labels.tolist())):
        rows = (domains == key[0]) & (labels == key[1])
        centroids[key] = emb[rows].mean(0)
    unit = _unit(emb)
    scores = np.empty(len(emb), dtype=np.float64)
    for i, (d, y) in enumerate(zip(domains.tolist(), labels.tolist())):
        own = float(unit[i] @ _unit(centroids[(d, y)]))
        others = [c for (dd, yy), c in centroids.items() if yy == y and dd != d]
        cross = float(unit[i] @ _unit(np.mean(others, axis=0))) if others else own
        scores[i] = (own + cross) / 2.0
    return scores.astype(np.float32)


# ----------------------------------------------------------------------------------------------
# layer choice


def scale_layer_indexes(
    indexes: Sequence[int] = DEFAULT_LAYER_INDEXES, num_layers: int = DEFAULT_LAYER_REFERENCE,
    reference_layers: int = DEFAULT_LAYER_REFERENCE,
) -> list[int]:
    """Map 0-based layer indexes chosen for a `reference_layers` model onto a `num_layers` one.

    Layer i covers the fraction (i + 1) / reference_layers of the depth; the scaled index keeps that
    fraction: round((i + 1) * num_layers / reference_layers) - 1. 3,7,11 of 12 -> 1,3,5 of 6.
    Duplicates that appear on very shallow models are dropped.
    """
    if num_layers < 1:
        raise ValueError(f"num_layers must be positive, got {num_layers}")
    scaled = {max(0, int(round((i + 1) * num_layers / reference_layers)) - 1) for i in indexes}
    return sorted(min(s, num_layers - 1) for s in scaled)


def parse_layer_indexes(text: str | Sequence[int], num_layers: int) -> list[int]:
    """'3,7,11' -> [3, 7, 11], checked against the model depth (0-based, < num_layers).

    Raises:
        ValueError: not integers, empty, duplicated, or out of range (the message gives the range).
    """
    if isinstance(text, str):
        try:
            indexes = [int(part) for part in text.replace(" ", "").split(",") if part != ""]
        except ValueError:
            raise ValueError(f"layer indexes must be comma separated integers, got {text!r}") from None
    else:
        indexes = [int(i) for i in text]
    if not indexes:
        raise ValueError("give at least one layer index")
    if len(set(indexes)) != len(indexes):
        raise ValueError(f"layer indexes {indexes} repeat a layer")
    bad = [i for i in indexes if not 0 <= i < num_layers]
    if bad:
        raise ValueError(f"layer index(es) {bad} out of range for a {num_layers}-layer model "
                         f"(0-based: valid 0..{num_layers - 1})")
    return indexes


# ----------------------------------------------------------------------------------------------
# losses


def weighted_cross_entropy(logits: flow.Tensor, labels: flow.Tensor, weights: flow.Tensor) -> flow.Tensor:
    """Batch mean of w_i * CE(z_i, y_i); negative weights are clipped to 0.

    A zero-weight example adds nothing to the loss or its gradient. With no zero weight this equals
    TensorFlow's SUM_BY_NONZERO_WEIGHTS reduction the EasyTransfer MFT used. Negative prototypical
    scores (an example pointing away from its class prototype) would otherwise push the model away
    from the example's own label.
    """
    per_example = cross_entropy_per_example(logits, labels)
    return (per_example * weights.reshape(-1).to(per_example.dtype).clamp(min=0.0)).mean()


def domain_expertise_weight(p_true, proto_weight):
    """Meta-KD's per-example weight (1 + w) / (exp((1 - p)^2) + 1).

    `p_true` is the teacher's probability of the true label, `proto_weight` the prototypical score
    w. Works on numpy arrays (or floats) and on OneFlow tensors alike.
    """
    exp = flow.exp if isinstance(p_true, flow.Tensor) else np.exp
    return (1.0 + proto_weight) / (exp((1.0 - p_true) ** 2) + 1.0)


class DomainCorruptionHead(nn.Module):
    """MFT's domain-corruption loss over chosen encoder layers.

    For each chosen layer l: x_l = mean_pool(h_l) + E[domain] (a learnt domain embedding of the
    example's true domain); one domain classifier shared by all layers maps x_l to domain logits,
    trained with cross-entropy against *shuffled* domain labels (a permutation of the batch's
    domains). The loss is the mean over the chosen layers. Predicting a random domain from the
    representations pushes them to carry domain-invariant (meta) knowledge.
    """

    def __init__(self, hidden_size: int, num_domains: int, layer_indexes: Sequence[int],
                 initializer_range: float = 0.02) -> None:
        super().__init__()
        if num_domains < 1:
            raise ValueError(f"num_domains must be positive, got {num_domains}")
        if not layer_indexes:
            raise ValueError("DomainCorruptionHead needs at least one layer")
        self.layer_indexes = [int(i) for i in layer_indexes]
        self.num_domains = int(num_domains)
        self.domain_embeddings = nn.Embedding(num_domains, hidden_size)
        self.domain_classifier = nn.Linear(hidden_size, num_domains)
        nn.init.normal_(self.domain_embeddings.weight, mean=0.0, std=initializer_range)
        nn.init.normal_(self.domain_classifier.weight, mean=0.0, std=initializer_range)
        nn.init.zeros_(self.domain_classifier.bias)

    def domain_logits(self, hidden_states: Sequence[flow.Tensor], mask: flow.Tensor,
                      domain: flow.Tensor) -> list[flow.Tensor]:
        """[B, num_domains] logits per chosen layer; `hidden_states` as in EncoderOutput (embeddings first)."""
        if max(self.layer_indexes) + 1 >= len(hidden_states):
            raise ValueError(f"layer {max(self.layer_indexes)} asked for, the encoder has "
                             f"{len(hidden_states) - 1} layers")
        shift = self.domain_embeddings(labels_of(domain))
        return [self.domain_classifier(mean_pool(hidden_states[i + 1], mask) + shift) for i in self.layer_indexes]

    def forward(self, hidden_states: Sequence[flow.Tensor], mask: flow.Tensor, domain: flow.Tensor,
                shuffled_domain: flow.Tensor) -> flow.Tensor:
        targets = labels_of(shuffled_domain)
        per_layer = [cross_entropy_per_example(z, targets).mean()
                     for z in self.domain_logits(hidden_states, mask, domain)]
        return sum(per_layer[1:], per_layer[0]) / len(per_layer)


class MetaFineTuningObjective(nn.Module):
    """weighted CE(z, y; w) + domain_loss_weight * DomainCorruptionHead (MFT; Meta-KD's meta-teacher).

    Batch inputs: the encoder inputs, `label_ids`, `weights` (prototypical scores), `domain` and
    `shuffled_domain` (see :class:`WithShuffledDomains`). Returns (loss, logits, ce, domain_loss).
    """

    input_names = ENCODER_INPUTS + ("label_ids", "weights", "domain", SHUFFLED_DOMAIN)

    def __init__(self, model: nn.Module, head: DomainCorruptionHead, domain_loss_weight: float = 0.1) -> None:
        super().__init__()
        self.model = model
        self.head = head
        self.domain_loss_weight = float(domain_loss_weight)

    def forward(self, input_ids, input_mask, segment_ids, label_ids, weights, domain, shuffled_domain):
        logits, enc = self.model(input_ids, segment_ids, input_mask, output_hidden_states=True)
        ce = weighted_cross_entropy(logits, labels_of(label_ids), weights)
        domain_loss = self.head(enc.hidden_states, input_mask, domain, shuffled_domain)
        return ce + self.domain_loss_weight * domain_loss, logits, ce, domain_loss


# ----------------------------------------------------------------------------------------------
# batch pipeline


def shuffled_domains(domain_ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random permutation of a batch's domain ids (same multiset, same dtype)."""
    return rng.permutation(np.asarray(domain_ids).reshape(-1))


class WithShuffledDomains:
    """Adds `shuffled_domain` (a within-batch permutation of `domain`) to every batch of `source`.

    Epoch e draws from numpy's generator seeded with (seed, e), so runs are reproducible and the
    shuffle differs between epochs.
    """

    def __init__(self, source, seed: int = 42, key: str = SHUFFLED_DOMAIN) -> None:
        self.source = source
        self.seed = int(seed)
        self.key = key
        self._epoch = 0

    def __len__(self) -> int:
        return len(self.source)

    def set_epoch(self, epoch: int) -> None:
        self._epoch = int(epoch)
        self.source.set_epoch(epoch)

    def __iter__(self) -> Iterator[dict]:
        rng = np.random.default_rng([self.seed, self._epoch])
        self._epoch += 1
        for batch in self.source:
            if "domain" not in batch:
                raise KeyError("batches need a `domain` feature (build the split with its domains)")
            domain = batch["domain"]
            values = domain.numpy() if isinstance(domain, flow.Tensor) else np.asarray(domain)
            shuffled = np.ascontiguousarray(shuffled_domains(values, rng).astype(values.dtype))
            yield {**batch, self.key: flow.tensor(shuffled) if isinstance(domain, flow.Tensor) else shuffled}
