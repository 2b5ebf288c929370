"""Batch sources beyond the OFRecord loader: in-memory arrays, per-example cached targets, row subsets.

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


class RowSubset:
    """Batches of an OFRecordLoader restricted to some of its records (e.g. one domain's rows).

    Keeps the loader's semantics: a shuffle per epoch drawn from (seed, epoch), rank sharding, drop_last
    in training mode. Batches carry the records' original ``idxs``, so per-example caches of the whole
    split still join by index.
    """

    def __init__(self, loader, rows: np.ndarray) -> None:
        from model_compress.data.loader import shard_indices

        self.loader = loader
        self.rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(self.rows) == 0:
            raise ValueError("the row subset is empty")
        self._shard = shard_indices
        self._epoch = 0
        count = len(self._indices(0))
        if loader.drop_last and count < loader.batch_size:
            raise ValueError(f"{count} records on this rank, fewer than one batch of {loader.batch_size}: "
                             "lower the batch size")

    def _indices(self, epoch: int) -> np.ndarray:
        lo = self.loader
        picked = self._shard(len(self.rows), lo.rank, lo.world_size, lo.shuffle, lo.seed, epoch,
                             equal_shards=lo.drop_last)
        return self.rows[picked]

    def __len__(self) -> int:
        count, batch = len(self._indices(0)), self.loader.batch_size
        return count // batch if self.loader.drop_last else -(-count // batch)

    def set_epoch(self, epoch: int) -> None:
        self._epoch = int(epoch)

    def __iter__(self) -> Iterator[dict]:
        order = self._indices(self._epoch)
        self._epoch += 1
        arrays, batch, device = self.loader.arrays, self.loader.batch_size, self.loader.device
        for step in range(len(self)):
            index = order[step * batch:(step + 1) * batch]
            tensors = {name: flow.from_numpy(np.ascontiguousarray(arrays[name][index]))
                       for name in self.loader.features}
            if device not in (None, "cpu"):
                tensors = {name: t.to(device) for name, t in tensors.items()}
            yield tensors


class WithUnitWeights:
    """Replaces every batch's ``weights`` by ones (training without sample weights)."""

    def __init__(self, source) -> None:
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def set_epoch(self, epoch: int) -> None:
        self.source.set_epoch(epoch)

    def __iter__(self) -> Iterator[dict]:
        for batch in self.source:
            size = batch["input_ids"].shape[0]
            yield {**batch, "weights": flow.ones(size, dtype=flow.float32)}
