"""The accuracy gate of an int8 export: the quantized model against the fp32 one on the labelled dev rows.

Parity within 1e-4 (the fp32 exports' check) is not what int8 can give; what matters is whether it
classifies as well. Both models run on every dev row; the figures are the accuracy of each
(scikit-learn), the share of rows where their predictions agree and the largest logit difference.
The gate passes when the int8 accuracy is at most ``max_drop`` points (percentage points) below
the fp32 accuracy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from model_compress.serving import SERVING_INPUTS

DEFAULT_MAX_DROP = 1.0  # accuracy points


class AccuracyGateError(RuntimeError):
    """The quantized model loses more dev accuracy than allowed; ``result`` holds the figures."""

    def __init__(self, message: str, result: GateResult) -> None:
        super().__init__(message)
        self.result = result


@dataclasses.dataclass
class GateResult:
    """The gate's figures (accuracies as fractions, the limit in points) and its verdict."""

    rows: int
    fp32_accuracy: float
    int8_accuracy: float
    agreement: float  # share of rows where the two predictions agree
    max_logit_diff: float  # inf when int8 gave a non-finite logit
    max_drop: float = DEFAULT_MAX_DROP

    @property
    def drop(self) -> float:
        """fp32 minus int8 accuracy, in points."""
        return 100.0 * (self.fp32_accuracy - self.int8_accuracy)

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.max_logit_diff)) and self.drop <= self.max_drop

    def describe(self) -> str:
        return (f"dev accuracy fp32 {100 * self.fp32_accuracy:.2f}, int8 {100 * self.int8_accuracy:.2f} "
                f"(drop {self.drop:.2f} points, limit {self.max_drop:g}) over {self.rows} rows; predictions "
                f"agree on {100 * self.agreement:.2f}%; max |logit difference| {self.max_logit_diff:.3g}")


def compare_on_labels(fp32_logits: np.ndarray, int8_logits: np.ndarray, labels: np.ndarray,
                      max_drop: float = DEFAULT_MAX_DROP) -> GateResult:
    """The gate's figures from the two models' logits [rows, labels] and the true label ids [rows]."""
    from sklearn.metrics import accuracy_score

    fp32_logits, int8_logits = np.asarray(fp32_logits, np.float64), np.asarray(int8_logits, np.float64)
    labels = np.asarray(labels).reshape(-1)
    if fp32_logits.shape != int8_logits.shape or fp32_logits.shape[0] != labels.shape[0]:
        raise ValueError(f"logits {fp32_logits.shape} / {int8_logits.shape} for {labels.shape[0]} labels")
    ref, own = fp32_logits.argmax(-1), int8_logits.argmax(-1)
    diff = float(np.abs(fp32_logits - int8_logits).max()) if labels.size else 0.0
    return GateResult(int(labels.size), float(accuracy_score(labels, ref)), float(accuracy_score(labels, own)),
                      float(np.mean(ref == own)), diff if np.isfinite(int8_logits).all() else float("inf"),
                      max_drop)


def batched_logits(runner, inputs: Mapping[str, np.ndarray], batch_size: int = 64) -> np.ndarray:
    """``runner``'s logits over all rows of ``inputs``, ``batch_size`` rows per call."""
    rows = len(inputs["input_ids"])
    out = [runner(*(inputs[n][s:s + batch_size] for n in SERVING_INPUTS)) for s in range(0, rows, batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def accuracy_gate(fp32_runner, int8_runner, inputs: Mapping[str, np.ndarray], labels: np.ndarray,
                  max_drop: float = DEFAULT_MAX_DROP) -> GateResult:
    """Run both models on the dev rows and return the figures (``.ok`` says whether the gate passes)."""
    return compare_on_labels(batched_logits(fp32_runner, inputs), batched_logits(int8_runner, inputs), labels,
                             max_drop)
