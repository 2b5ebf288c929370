"""Batch sources beyond the OFRecord loader: in-memory arrays, and per-example cached targets.

Cached teacher outputs (logits, [CLS] states, ...) are numpy arrays indexed by example index; each
training batch carries `idxs`, so the cache joins the batch by a gather instead of a teacher forward.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import oneflow as flow


class ArrayBatches:
    """Batches from a dict of equally long numpy arrays (tests, tools, small cached sets)."""

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        lengths = {name: len(a) for name, a in arrays.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"arrays differ in length: {lengths}")
        self.arrays = arrays
        self.size = next(iter(lengths.values()))
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        full, rest = divmod(self.size, batch_size)
        self.num_batches = full if drop_last or not rest else full + 1
        self._epoch = 0

    def __len__(self) -> int:
        return self.num_batches

    def set_epoch(self, epoch: int) -> None:
        self._epoch = int(epoch)

    def __iter__(self) -> Iterator[dict[str, flow.Tensor]]:
        order = np.arange(self.size)
        if self.shuffle:
            np.random.RandomState(self.seed + self._epoch).shuffle(order)
        self._epoch += 1
        for b in range(self.num_batches):
            take = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield {name: flow.tensor(np.ascontiguousarray(a[take])) for name, a in self.arrays.items()}


class WithCachedTargets:
    """Adds per-example arrays (gathered by the batch's `idxs`) to every batch of `source`."""

    def __init__(self, source, cached: dict[str, np.ndarray]) -> None:
        self.source = source
        self.cached = cached

    def __len__(self) -> int:
        return len(self.source)

    def set_epoch(self, epoch: int) -> None:
        self.source.set_epoch(epoch)

    def __iter__(self) -> Iterator[dict[str, flow.Tensor]]:
        for batch in self.source:
            if "idxs" not in batch:
                raise KeyError("batches need an `idxs` feature to join cached teacher outputs")
            rows = batch["idxs"].numpy().reshape(-1).astype(np.int64)
            extra = {name: flow.tensor(np.ascontiguousarray(a[rows])) for name, a in self.cached.items()}
            yield {**batch, **extra}
