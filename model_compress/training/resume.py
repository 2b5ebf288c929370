"""Resumable optimisation: step-numbered snapshots in a directory and a learning-rate schedule that
continues a linear warm-up/decay run from any step."""

from __future__ import annotations

import os
import re
import shutil

import numpy as np
import oneflow as flow
from oneflow import nn

from model_compress.modeling.checkpoint import SNAPSHOT_JSON, load_snapshot, load_state_into, save_snapshot
from model_compress.modeling.config import BertConfig
from model_compress.training import distributed
from model_compress.training.optim import build_optimizer, build_scheduler

SNAPSHOT_PREFIX = "model_"


def list_snapshots(output_dir: str, prefix: str = SNAPSHOT_PREFIX) -> list[tuple[int, str]]:
    """Complete ``<prefix><step>`` snapshots (``model_<step>`` by default) in ``output_dir``, sorted by step."""
    if not os.path.isdir(output_dir):
        return []
    found = []
    for name in os.listdir(output_dir):
        match = re.fullmatch(rf"{re.escape(prefix)}(\d+)", name)
        path = os.path.join(output_dir, name)
        if match and os.path.isfile(os.path.join(path, SNAPSHOT_JSON)):
            found.append((int(match.group(1)), path))
    return sorted(found)


def prune_snapshots(output_dir: str, keep_last: int, prefix: str = SNAPSHOT_PREFIX) -> None:
    """Delete all but the newest ``keep_last`` step snapshots (nothing when ``keep_last`` <= 0)."""
    if keep_last > 0:
        for _, old in list_snapshots(output_dir, prefix)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)


def save_step_snapshot(
    state: dict[str, np.ndarray], output_dir: str, step: int, config: BertConfig, meta: dict,
    extra_files: dict[str, str] | None = None, keep_last: int = 0,
) -> str:
    """``output_dir/model_<step>`` written by rank 0 (older ones pruned to ``keep_last``); every rank returns
    its path after a barrier. ``state`` must already be gathered (a collective call on every rank)."""
    path = os.path.join(output_dir, f"{SNAPSHOT_PREFIX}{step}")
    if distributed.rank() == 0:
        save_snapshot(state, path, config, meta, extra_files=extra_files)
        prune_snapshots(output_dir, keep_last)
    distributed.barrier()
    return path


class SnapshotShapeMismatch(ValueError):
    """A step snapshot holds a model of another shape than the run asks for."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{path} holds a model of another shape than asked for")
        self.path = path


def load_newest_snapshot(output_dir: str, module: nn.Module, config: BertConfig) -> tuple[int, str | None]:
    """Load the newest step snapshot of ``output_dir`` into ``module``: ``(step, path)``, or ``(0, None)`` when
    there is none. Raises ``SnapshotShapeMismatch`` when the snapshot holds a model of another shape than ``config``
    (the label count aside)."""
    snapshots = list_snapshots(output_dir)
    if not snapshots:
        return 0, None
    step, path = snapshots[-1]
    state, saved_config, _ = load_snapshot(path)
    if saved_config is not None and saved_config.replace(num_labels=config.num_labels) != config:
        raise SnapshotShapeMismatch(path)
    load_state_into(module, state, verbose=False)
    return step, path


def lr_at(step: int, learning_rate: float, total_steps: int, warmup_steps: int) -> float:
    """The schedule of ``build_scheduler``: linear warm-up from 0, then linear decay to 0 at ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return learning_rate * step / warmup_steps
    return learning_rate * max(0.0, 1.0 - (step - warmup_steps) / max(1, total_steps - warmup_steps))


def resumed_optimization(
    module: nn.Module,
    learning_rate: float,
    weight_decay: float,
    max_grad_norm: float,
    total_steps: int,
    start_step: int,
    warmup_steps: int,
    fused: bool = False,
) -> tuple[flow.optim.Optimizer, object]:
    """AdamW and a schedule that continue the linear warm-up/decay of a run from ``start_step``.

    Adam moments are not stored in snapshots, so after a resume they restart from zero (bias
    correction makes that harmless); only the learning rate curve continues where it was.
    ``fused`` selects the CUDA-only fused AdamW kernel.
    """
    total = total_steps
    if start_step == 0:
        optimizer = build_optimizer(module, learning_rate, weight_decay, max_grad_norm, fused=fused)
        return optimizer, build_scheduler(optimizer, total, warmup_steps / max(1, total))
    if start_step >= warmup_steps:
        lr_now = lr_at(start_step, learning_rate, total, warmup_steps)
        optimizer = build_optimizer(module, lr_now, weight_decay, max_grad_norm, fused=fused)
        return optimizer, build_scheduler(optimizer, total - start_step, 0.0)
    optimizer = build_optimizer(module, learning_rate, weight_decay, max_grad_norm, fused=fused)
    decay = flow.optim.lr_scheduler.PolynomialLR(
        optimizer, decay_batch=max(1, total - warmup_steps), end_learning_rate=0.0, power=1.0
    )
    return optimizer, flow.optim.lr_scheduler.WarmupLR(
        decay,
        warmup_factor=start_step / warmup_steps,
        warmup_iters=warmup_steps - start_step,
        warmup_method="linear",
        warmup_prefix=True,
    )
