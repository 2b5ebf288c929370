"""BERT-of-Theseus: progressive module replacing.

The predecessor (the fine-tuned teacher) is cut into M blocks of k = N / M consecutive layers; the
successor has one layer per block. At every training step each block independently runs its
successor layer with probability p (the replacing rate) and its frozen predecessor layers otherwise;
embeddings, pooler and classifier are the successor's own (initialised from the predecessor) and are
trained throughout. Only the hard-label cross-entropy is used (no soft labels).

In nn.Graph the per-step choice must not change the compiled graph, so the step computes both paths
and mixes them with 0/1 gates, h = g * successor(h) + (1 - g) * predecessor_block(h): with g exactly 0
or 1 the forward values and every gradient equal those of the chosen path alone. The gates are drawn
on the host from a seeded generator and fed as the batch input `replace_gates` ([B, M], every row the
step's draw), so graph and eager runs see the same choices and multi-process runs agree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import oneflow as flow
from oneflow import nn

from model_compress.distill import losses
from model_compress.modeling.bert import additive_attention_mask
from model_compress.training.objectives import ENCODER_INPUTS, labels_of


@dataclasses.dataclass(frozen=True)
class ReplacingSchedule:
    """The replacing rate p at a (0-based) training step, as the original's two schedulers.

    constant: p = replacing_rate, and 1 from step `steps_for_replacing` on (0: never);
    linear:   p = min(1, replacing_rate + scheduler_linear_k * step).
    """

    replacing_rate: float
    scheduler_type: str = "none"
    scheduler_linear_k: float = 0.0
    steps_for_replacing: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.replacing_rate <= 1.0:
            raise ValueError(f"--replacing_rate must be in [0, 1], got {self.replacing_rate}")
        if self.scheduler_type not in ("none", "linear"):
            raise ValueError(f"--scheduler_type {self.scheduler_type!r}: choose none or linear")
        if self.scheduler_linear_k < 0:
            raise ValueError(f"--scheduler_linear_k must be >= 0, got {self.scheduler_linear_k}")
        if self.steps_for_replacing < 0:
            raise ValueError(f"--steps_for_replacing must be >= 0, got {self.steps_for_replacing}")

    def rate(self, step: int) -> float:
        if self.scheduler_type == "linear":
            return min(1.0, self.replacing_rate + self.scheduler_linear_k * step)
        if self.steps_for_replacing and step >= self.steps_for_replacing:
            return 1.0
        return self.replacing_rate

    @property
    def successor_only(self) -> bool:
        """True when every step runs the successor alone (phase 2: successor fine-tuning)."""
        return self.rate(0) >= 1.0


class ReplacingGates:
    """Adds `replace_gates` ([B, blocks] float, 1 = run the successor) to every batch of `source`.

    Step s draws one Bernoulli(schedule.rate(s)) per block from a generator seeded with `seed`.
    """

    def __init__(self, source, schedule: ReplacingSchedule, num_blocks: int, seed: int) -> None:
        self.source = source
        self.schedule = schedule
        self.num_blocks = num_blocks
        self.rng = np.random.RandomState(seed)
        self.step = 0

    def __len__(self) -> int:
        return len(self.source)

    def set_epoch(self, epoch: int) -> None:
        self.source.set_epoch(epoch)

    def draw(self) -> np.ndarray:
        """The next step's gates [blocks] (advances the step)."""
        gates = (self.rng.random_sample(self.num_blocks) < self.schedule.rate(self.step)).astype(np.float32)
        self.step += 1
        return gates

    def __iter__(self) -> Iterator[dict[str, flow.Tensor]]:
        for batch in self.source:
            rows = batch["input_ids"].shape[0]
            yield {**batch, "replace_gates": flow.tensor(np.tile(self.draw(), (rows, 1)))}


class TheseusObjective(nn.Module):
    """Cross-entropy of the mixed predecessor/successor model (see the module docstring).

    `successor` is a BertForSequenceClassification of M layers; `predecessor_layers` the teacher's N
    encoder layers (frozen here), N = k * M.
    """

    input_names = ENCODER_INPUTS + ("label_ids", "replace_gates")

    def __init__(self, successor: nn.Module, predecessor_layers: nn.ModuleList) -> None:
        super().__init__()
        blocks = successor.config.num_hidden_layers
        if len(predecessor_layers) % blocks:
            raise ValueError(f"{len(predecessor_layers)} predecessor layers do not split into {blocks} blocks")
        self.successor = successor
        self.predecessor = predecessor_layers
        self.block_size = len(predecessor_layers) // blocks
        for p in self.predecessor.parameters():
            p.requires_grad = False

    def mixed_logits(self, input_ids, input_mask, segment_ids, replace_gates) -> flow.Tensor:
        bert = self.successor.bert
        mask = additive_attention_mask(input_mask)
        hidden = bert.embeddings(input_ids, segment_ids)
        for block, successor_layer in enumerate(bert.encoder.layer):
            replaced = successor_layer(hidden, mask)[0]
            kept = hidden
            for index in range(block * self.block_size, (block + 1) * self.block_size):
                kept = self.predecessor[index](kept, mask)[0]
            gate = replace_gates[:, block].reshape(-1, 1, 1)
            hidden = gate * replaced + (1.0 - gate) * kept
        return self.successor.classifier(self.successor.dropout(bert.pooler(hidden)))

    def forward(self, input_ids, input_mask, segment_ids, label_ids, replace_gates):
        logits = self.mixed_logits(input_ids, input_mask, segment_ids, replace_gates)
        return losses.cross_entropy_per_example(logits, labels_of(label_ids)).mean(), logits
