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


# Per-example cached targets with token axes (axes of the gathered batch array): they are stored at the
# split's full seq_length and sliced to the batch's own length (length buckets). Shapes as produced by
# distill.objectives.TeacherTargets and the Meta-KD dumps.
CACHED_SEQUENCE_AXES: dict[str, tuple[int, ...]] = {
    "teacher_attention": (3, 4),  # [B, layers, heads, L, L]
    "teacher_hidden": (2,),  # [B, layers, L, H]
}


def slice_tokens(value: np.ndarray, axes: tuple[int, ...], length: int) -> np.ndarray:
    """``value`` cut to its first ``length`` positions along every axis in ``axes``."""
    index = [slice(None)] * value.ndim
    for axis in axes:
        index[axis] = slice(0, length)
    return np.ascontiguousarray(value[tuple(index)])


class WithCachedTargets:
    """Adds per-example arrays (gathered by the batch's `idxs`) to every batch of `source`; the token axes of
    sequence-shaped caches (``sequence_axes``) are cut to the batch's length (its ``input_ids`` width)."""

    def __init__(self, source, cached: dict[str, np.ndarray],
                 sequence_axes: dict[str, tuple[int, ...]] | None = None) -> None:
        self.source = source
        self.cached = cached
        self.sequence_axes = CACHED_SEQUENCE_AXES if sequence_axes is None else sequence_axes

    def __len__(self) -> int:
        return len(self.source)

    def set_epoch(self, epoch: int) -> None:
        self.source.set_epoch(epoch)

    def __iter__(self) -> Iterator[dict[str, flow.Tensor]]:
        for batch in self.source:
            if "idxs" not in batch:
                raise KeyError("batches need an `idxs` feature to join cached teacher outputs")
            rows = batch["idxs"].numpy().reshape(-1).astype(np.int64)
            length = batch["input_ids"].shape[1] if "input_ids" in batch else None
            extra = {}
            for name, array in self.cached.items():
                value = np.ascontiguousarray(array[rows])
                if name in self.sequence_axes and length is not None:
                    value = slice_tokens(value, self.sequence_axes[name], length)
                extra[name] = flow.tensor(value)
            yield {**batch, **extra}


class RowSubset:
    """Batches of an OFRecordLoader restricted to some of its records (e.g. one domain's rows).

    Keeps the loader's semantics (``OFRecordLoader.epoch_plan`` over the rows): a shuffle per epoch drawn
    from (seed, epoch), rank sharding, drop_last in training mode, length buckets. Batches carry the
    records' original ``idxs``, so per-example caches of the whole split still join by index.
    """

    def __init__(self, loader, rows: np.ndarray) -> None:
        self.loader = loader
        self.rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(self.rows) == 0:
            raise ValueError("the row subset is empty")
        self._epoch = 0
        if loader.drop_last and not self.loader.epoch_plan(0, self.rows):
            raise ValueError(f"too few records on this rank for one batch of {loader.batch_size}: "
                             "lower the batch size")

    def __len__(self) -> int:
        return len(self.loader.epoch_plan(0, self.rows))

    def set_epoch(self, epoch: int) -> None:
        self._epoch = int(epoch)

    def __iter__(self) -> Iterator[dict]:
        epoch = self._epoch
        self._epoch += 1
        for bound, index in self.loader.epoch_plan(epoch, self.rows):
            yield self.loader.make_batch(index, bound)


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
