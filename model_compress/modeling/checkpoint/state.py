"""Module state <-> numpy: gathering a state dict and copying a numpy state into a module."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

State = dict[str, np.ndarray]


def flow_module():
    """oneflow, imported on first use so that the numpy-only parts work without it."""
    from model_compress.runtime import require_oneflow

    return require_oneflow()


def to_numpy(value: Any) -> np.ndarray:
    """A numpy copy of a tensor (global tensors are gathered first); arrays pass through."""
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "is_global") and value.is_global:
        flow = flow_module()
        value = value.to_global(sbp=[flow.sbp.broadcast] * len(value.sbp)).to_local()
    if hasattr(value, "numpy"):
        if hasattr(value, "detach"):
            value = value.detach()
        if getattr(getattr(value, "device", None), "type", "cpu") != "cpu":
            value = value.cpu()
        return np.array(value.numpy())  # a copy: a CPU tensor's numpy() shares the tensor's memory
    return np.asarray(value)


def module_state_numpy(module: Any) -> State:
    """A copy of ``module.state_dict()`` as numpy arrays (global tensors are gathered: call it on every rank)."""
    return {key: to_numpy(value) for key, value in module.state_dict().items()}


@dataclasses.dataclass
class LoadReport:
    """What :func:`load_state_into` did: keys copied, missing from the state, unused, or skipped."""

    loaded: list[str] = dataclasses.field(default_factory=list)
    missing: list[str] = dataclasses.field(default_factory=list)
    unexpected: list[str] = dataclasses.field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = dataclasses.field(default_factory=list)

    @staticmethod
    def _few(keys: list[str], limit: int = 4) -> str:
        shown = ", ".join(keys[:limit])
        return f" ({shown}{', ...' if len(keys) > limit else ''})" if keys else ""

    def summary(self) -> str:
        text = (
            f"loaded {len(self.loaded)} tensors; missing {len(self.missing)}{self._few(self.missing)}; "
            f"unexpected {len(self.unexpected)}{self._few(self.unexpected)}"
        )
        if self.mismatched:
            keys = [k for k, _, _ in self.mismatched]
            text += f"; shape-mismatched {len(keys)}{self._few(keys)}"
        return text

    def __str__(self) -> str:
        return self.summary()


def load_state_into(
    module: Any, state: Mapping[str, Any], strict_shapes: bool = True, verbose: bool = True
) -> LoadReport:
    """Copy ``state`` (numpy arrays or tensors) into ``module``'s parameters and buffers in place.

    Keys are matched exactly against ``module.state_dict()``. With ``strict_shapes`` a shape mismatch
    raises ValueError naming the key and both shapes (before anything is copied); otherwise the key
    is skipped and listed in ``report.mismatched``. Values are cast to the target's dtype. Prints the
    one-line summary when ``verbose``.
    """
    flow = flow_module()
    targets = module.state_dict()
    report = LoadReport()
    plan = []
    for key, value in state.items():
        if key not in targets:
            report.unexpected.append(key)
            continue
        array = to_numpy(value)
        target = targets[key]
        want = tuple(target.shape)
        if tuple(array.shape) != want:
            if strict_shapes:
                raise ValueError(f"{key}: checkpoint shape {tuple(array.shape)} != model shape {want}")
            report.mismatched.append((key, tuple(array.shape), want))
            continue
        plan.append((key, array, target))
    with flow.no_grad():
        for key, array, target in plan:
            if target.is_global:
                source = flow.tensor(
                    array,
                    dtype=target.dtype,
                    placement=target.placement,
                    sbp=[flow.sbp.broadcast] * len(target.sbp),
                ).to_global(sbp=target.sbp)
            else:
                source = flow.tensor(array, dtype=target.dtype, device=target.device)
            target.copy_(source)
            report.loaded.append(key)
    report.missing = [key for key in targets if key not in state]
    if verbose:
        print(f"model_compress: {report.summary()}")
    return report
