"""Parity of an exported model with the OneFlow model it came from, on a batch of real rows.

The batch mixes single sentences and sentence pairs (so ``token_type_ids`` 1 occurs) of different
lengths (so padding and the attention mask matter), tokenized with the model's own vocab. The figure
is the largest absolute logit difference divided by the logit scale ``max(1, max |logit|)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from model_compress.data.processors import InputExample

TOLERANCE = 1e-4
PARITY_ROWS = 16


class ParityError(RuntimeError):
    """The exported model's logits differ from the OneFlow model's by more than the tolerance."""


def parity_examples(texts: Sequence[str], rows: int = PARITY_ROWS) -> list[InputExample]:
    """``rows`` examples from ``texts``: the first half single sentences, the rest consecutive pairs."""
    if not texts:
        raise ValueError("no texts to check parity on")
    texts = list(texts)
    singles = (rows + 1) // 2
    examples = [InputExample(f"parity-{i}", texts[i % len(texts)]) for i in range(singles)]
    for i in range(singles, rows):
        examples.append(InputExample(f"parity-{i}", texts[i % len(texts)], texts[(i + 1) % len(texts)]))
    return examples


@dataclasses.dataclass
class ParityResult:
    """How far exported logits are from the reference ones."""

    max_abs_diff: float
    scale: float
    rows: int
    tolerance: float = TOLERANCE

    @property
    def relative(self) -> float:
        return self.max_abs_diff / self.scale

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.relative)) and self.relative <= self.tolerance

    def describe(self) -> str:
        return (f"max |logit difference| {self.max_abs_diff:.3g} over {self.rows} rows, logit scale "
                f"{self.scale:.3g}: {self.relative:.3g} relative (limit {self.tolerance:g})")


def compare_logits(reference: np.ndarray, exported: np.ndarray, tolerance: float = TOLERANCE) -> ParityResult:
    """Compare two [rows, labels] logit arrays; shapes must agree."""
    reference, exported = np.asarray(reference, np.float64), np.asarray(exported, np.float64)
    if reference.shape != exported.shape:
        raise ParityError(f"exported logits have shape {exported.shape}, the OneFlow model's {reference.shape}")
    scale = max(1.0, float(np.abs(reference).max()))
    return ParityResult(float(np.abs(reference - exported).max()), scale, int(reference.shape[0]), tolerance)
