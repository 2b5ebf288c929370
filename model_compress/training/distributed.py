"""Multi-process helpers for runs under `python -m oneflow.distributed.launch`.

With one process everything is local and these are no-ops. With several, the model is made global
(parameters broadcast over the CPU or CUDA ranks), each rank feeds its own shard of the data, and the
per-rank batches are stitched into one global batch split along dimension 0: nn.Graph then runs
data-parallel training with gradients all-reduced by OneFlow.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Iterator

import numpy as np
import oneflow as flow
from oneflow import nn

_device_type = "cpu"


def rank() -> int:
    return flow.env.get_rank()


def world_size() -> int:
    return flow.env.get_world_size()


def is_distributed() -> bool:
    return world_size() > 1


def placement() -> flow.placement:
    return flow.placement(_device_type, ranks=list(range(world_size())))


def setup_model(module: nn.Module, device: str = "cpu") -> nn.Module:
    """Move `module` to `device`; in a multi-process run make it global and broadcast."""
    global _device_type
    _device_type = "cuda" if device.startswith("cuda") else "cpu"
    if not is_distributed():
        return module.to(device)
    return module.to_global(placement=placement(), sbp=flow.sbp.broadcast)


def shard_batch_tensor(tensor: flow.Tensor) -> flow.Tensor:
    """A rank-local batch -> a global tensor split over ranks along the batch dimension."""
    if not is_distributed():
        return tensor if _device_type == "cpu" else tensor.to(_device_type)
    return tensor.to_global(placement=placement(), sbp=flow.sbp.split(0))


def replicate_tensor(tensor: flow.Tensor) -> flow.Tensor:
    """The same full tensor on every rank (used for evaluation, where each rank sees all data)."""
    if not is_distributed():
        return tensor if _device_type == "cpu" else tensor.to(_device_type)
    return tensor.to_global(placement=placement(), sbp=flow.sbp.broadcast)


def split_rows_tensor(tensor: flow.Tensor) -> flow.Tensor:
    """A batch every rank holds in full -> a global tensor split over the ranks, rank r giving its block of
    rows (evaluation: each rank computes its part, to_local_numpy gathers them in order). The rows must be
    a multiple of the world size."""
    if not is_distributed():
        return tensor if _device_type == "cpu" else tensor.to(_device_type)
    block = tensor.shape[0] // world_size()
    if block * world_size() != tensor.shape[0]:
        raise ValueError(f"{tensor.shape[0]} rows do not split over {world_size()} ranks")
    mine = tensor[rank() * block:(rank() + 1) * block]
    return mine.to_global(placement=placement(), sbp=flow.sbp.split(0))


def to_local_numpy(tensor: flow.Tensor) -> np.ndarray:
    """Gather a (possibly global) tensor and return it as numpy on every rank."""
    if tensor.is_global:
        tensor = tensor.to_global(sbp=flow.sbp.broadcast).to_local()
    return tensor.numpy()


def barrier() -> None:
    if is_distributed():
        flow.comm.barrier()


@contextlib.contextmanager
def failure_ends_process() -> Iterator[None]:
    """A rank whose run fails ends its process at once, with the error's exit code (1 for a traceback).

    OneFlow 0.9's shutdown waits for every rank: a process that failed while its peers went on (or
    waited for it in a collective) would hang at exit instead of exiting, and
    `oneflow.distributed.launch`, which stops every process as soon as one exits non-zero, would wait
    forever. Output is flushed and the traceback printed before `os._exit`.
    """
    try:
        yield
    except SystemExit as exc:
        if exc.code in (None, 0):
            raise
        if not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
        _exit_now(exc.code if isinstance(exc.code, int) else 1)
    except BaseException:
        traceback.print_exc()
        _exit_now(1)


def _exit_now(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
