"""The loss of a training step read back and refused when NaN or infinite (every training loop calls it).

Reading a loss waits for its step. ``LossCheck`` reads each step's loss after the next step was queued,
so OneFlow runs a step while Python prepares the next one; a loop flushes it before it evaluates, saves
or returns, so no snapshot is written after a NaN step.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


class NonFiniteLoss(ArithmeticError):
    """The loss became NaN or infinite; the message names the step."""


def checked_loss(loss, step: int, kept: str | None = None) -> float:
    """The step's loss as a float; raises NonFiniteLoss naming ``step`` (and the snapshot ``kept``) on NaN/inf."""
    from model_compress.training import distributed  # imports OneFlow: kept out of the error types' import

    value = float(np.mean(distributed.to_local_numpy(loss)))  # one value per micro-batch with accumulation
    if not math.isfinite(value):
        kept_text = f"; the best snapshot so far is kept: {kept}" if kept else "; no snapshot was written"
        raise NonFiniteLoss(f"the loss became {value} at step {step}: training stopped (lower --learning_rate, "
                            f"or check the inputs){kept_text}")
    return value


class LossCheck:
    """Step losses checked one step late. ``push(step, loss)`` queues a step's loss tensor and checks the
    one queued before it; ``flush()`` checks the queued one. ``kept()`` names the snapshot a failure keeps."""

    def __init__(self, kept: Callable[[], str | None] = lambda: None) -> None:
        self._kept = kept
        self._pending: tuple[int, object] | None = None
        self.value = float("nan")  # the newest checked loss
        self.step = 0  # its step

    def push(self, step: int, loss) -> None:
        previous, self._pending = self._pending, (step, loss)
        if previous is not None:
            self._check(*previous)

    def flush(self) -> float:
        """Check the queued loss (if any); the newest checked loss."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._check(*pending)
        return self.value

    def _check(self, step: int, loss) -> None:
        self.value, self.step = checked_loss(loss, step, self._kept()), step
