"""The loss of a training step read back and refused when NaN or infinite (every training loop calls it)."""

from __future__ import annotations

import math


class NonFiniteLoss(ArithmeticError):
    """The loss became NaN or infinite; the message names the step."""


def checked_loss(loss, step: int, kept: str | None = None) -> float:
    """The step's loss as a float; raises NonFiniteLoss naming ``step`` (and the snapshot ``kept``) on NaN/inf."""
    from model_compress.training import distributed  # imports OneFlow: kept out of the error types' import

    value = float(distributed.to_local_numpy(loss))
    if not math.isfinite(value):
        kept_text = f"; the best snapshot so far is kept: {kept}" if kept else "; no snapshot was written"
        raise NonFiniteLoss(f"the loss became {value} at step {step}: training stopped (lower --learning_rate, "
                            f"or check the inputs){kept_text}")
    return value
