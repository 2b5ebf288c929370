"""Batches of a prepared OFRecord split, read through OneFlow's own OFRecordReader.

How it works: the split's records are read once with ``flow.nn.OFRecordReader`` (sequential, no
shuffle) and decoded with one ``flow.nn.OFRecordRawDecoder`` per feature into host arrays; every epoch
then draws its order from those arrays. This gives exact epoch semantics, which OneFlow's reader does
not (measured on 0.9.0):

* the reader is an endless stream: after the last record it wraps to the first one inside the same
  batch, so it never yields a partial last batch. The loader reads ``ceil(N / chunk)`` chunks and
  drops the wrapped tail of the last one, so every record is seen exactly once.
* ``random_shuffle=True`` samples from a buffer that spans epoch boundaries: within one "epoch" some
  records repeat and others are missing. ``shuffle_after_epoch`` only reorders part files.
* a missing, truncated or corrupt part file, a missing feature or a wrong shape abort the whole
  process (glog CHECK failure, SIGABRT) instead of raising, so the split is verified against its
  meta.json before OneFlow touches it.
* in a multi-process run (``oneflow.distributed.launch``) a reader created without placement still
  splits the part files between ranks (rank r gets a contiguous block of parts) and aborts when
  ``data_part_num < world_size``. The loader gives the reader a placement holding only its own rank,
  so every rank reads the whole split, and then shards records itself (disjoint, seeded).

Length buckets (``length_buckets``, see ``data.buckets``): examples are grouped by token count, every
batch holds one bucket's examples and its sequence features are sliced to that bucket's bound, so a
batch is ``[B, bound]`` instead of ``[B, seq_length]``; the epoch plan stays seeded and identical on
every rank (all ranks run the same bucket at a step).

Batch dict (one per step): ``input_ids input_mask segment_ids`` int32 ``[B, seq_length]`` (or
``[B, bound]`` with buckets);
``label_ids``, ``domain``, ``idxs`` int32 ``[B]``; ``weights`` float32 ``[B]``. ``label_ids`` is ``-1``
for unlabeled (test) examples.

Memory: the split is held in host memory, ``N * (3 * seq_length + 4) * 4`` bytes (SST-2 at 128:
about 100 MiB), which fits every dataset this project targets.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

from model_compress.data import buckets as bucketing
from model_compress.data.ofrecord import read_split_meta, verify_split
from model_compress.runtime import require_oneflow

flow = require_oneflow()

_FLOW_DTYPES = {"int32": flow.int32, "int64": flow.int64, "float32": flow.float32, "float64": flow.float64}


def read_split_with_oneflow(
    directory: str, names: Sequence[str] | None = None, chunk: int = 4096, verify: bool = True
) -> dict[str, np.ndarray]:
    """Read a whole split through ``flow.nn.OFRecordReader`` + ``OFRecordRawDecoder``.

    Returns name -> ``[N, seq_length]`` (sequence features) or ``[N]`` arrays, in record order.

    Args:
        directory: split directory (``<data_dir>/ofrecord/<split>``).
        names: features to decode (default: all listed in meta.json).
        chunk: records per reader call; any value works (the wrapped tail is dropped).
        verify: check the files against meta.json first (OneFlow aborts on a bad file).
    """
    meta = verify_split(directory) if verify else read_split_meta(directory)
    count = int(meta["count"])
    if count == 0:
        raise ValueError(f"split {directory} has no records")
    names = list(meta["features"]) if names is None else list(names)
    for name in names:
        if name not in meta["features"]:
            raise KeyError(f"split {directory} has no feature {name!r}; it has {list(meta['features'])}")
    chunk = max(1, min(int(chunk), count))
    reader_args = dict(
        batch_size=chunk,
        data_part_num=int(meta["num_parts"]),
        part_name_prefix=meta["part_prefix"],
        part_name_suffix_length=-1,
        random_shuffle=False,
        shuffle_after_epoch=False,
    )
    global_mode = flow.env.get_world_size() > 1
    if global_mode:
        # In a multi-process run even a reader without placement splits the part files between the
        # ranks (and aborts when there are fewer parts than ranks). A placement holding only this
        # rank makes it read the whole split; the loader then shards records itself.
        placement = flow.placement("cpu", ranks=[flow.env.get_rank()])
        reader = flow.nn.OFRecordReader(directory, placement=placement, sbp=flow.sbp.broadcast, **reader_args)
    else:
        reader = flow.nn.OFRecordReader(directory, **reader_args)
    decoders = {}
    for name in names:
        spec = meta["features"][name]
        decoders[name] = flow.nn.OFRecordRawDecoder(name, list(spec["shape"]), _FLOW_DTYPES[spec["dtype"]])
    pieces: dict[str, list[np.ndarray]] = {name: [] for name in names}
    remaining = count
    for _ in range(math.ceil(count / chunk)):
        records = reader()
        take = min(chunk, remaining)
        for name, decoder in decoders.items():
            decoded = decoder(records)
            if global_mode:
                decoded = decoded.to_local()
            pieces[name].append(decoded.numpy()[:take])
        remaining -= take
    out = {}
    for name in names:
        array = np.concatenate(pieces[name])
        out[name] = array.reshape(count) if list(meta["features"][name]["shape"]) == [1] else array
    return out


def shard_indices(
    count: int, rank: int, world_size: int, shuffle: bool, seed: int, epoch: int, equal_shards: bool
) -> np.ndarray:
    """Record indices one rank visits in one epoch.

    All ranks draw the same permutation (seeded by ``seed`` and ``epoch``) and rank ``r`` takes
    positions ``r, r + world_size, ...``: the shards are disjoint and together cover every record.
    With ``equal_shards`` the permutation is first cut to a multiple of ``world_size`` so every rank
    gets the same number of records (needed for lock-step training); otherwise nothing is dropped.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside world_size {world_size}")
    order = np.random.default_rng([seed, epoch]).permutation(count) if shuffle else np.arange(count)
    if equal_shards:
        order = order[: count - count % world_size]
    return order[rank::world_size]


class OFRecordLoader:
    """Iterate batches of a prepared split; one ``for`` loop over the loader is one epoch.

    Args:
        directory: split directory (``<data_dir>/ofrecord/<split>``, see ``SplitInfo.directory``).
        batch_size: examples per batch on this rank.
        train: training mode defaults: shuffle every epoch and drop the last partial batch. Eval mode
            (``train=False``) keeps record order and yields every record of the shard exactly once,
            the last batch possibly smaller.
        shuffle, drop_last: override the mode defaults.
        seed: shuffle seed; epoch ``e`` uses the permutation of ``(seed, e)``, the same on all ranks.
        rank, world_size: this process's shard (default: ``flow.env.get_rank()`` /
            ``get_world_size()``). Training shards have equal sizes (up to ``world_size - 1`` records
            are left out per epoch, a different few each epoch); eval shards cover every record.
        features: features to load (default: all).
        device: where batches go (``"cpu"`` default, e.g. ``"cuda"``).
        as_numpy: yield numpy arrays instead of tensors (for tools).
        read_chunk: records per OFRecordReader call while loading.
        verify: check files against meta.json before OneFlow reads them.
        length_buckets: ``None`` (every batch padded to ``seq_length``), ``"auto"`` (bounds chosen from
            the split's token lengths) or explicit bounds; see ``data.buckets``.
    """

    def __init__(
        self,
        directory: str,
        batch_size: int,
        train: bool = False,
        shuffle: bool | None = None,
        drop_last: bool | None = None,
        seed: int = 42,
        rank: int | None = None,
        world_size: int | None = None,
        features: Sequence[str] | None = None,
        device: str | None = "cpu",
        as_numpy: bool = False,
        read_chunk: int = 4096,
        verify: bool = True,
        length_buckets: bucketing.LengthBuckets = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.directory = directory
        self.batch_size = int(batch_size)
        self.shuffle = train if shuffle is None else bool(shuffle)
        self.drop_last = train if drop_last is None else bool(drop_last)
        self.seed = int(seed)
        self.rank = flow.env.get_rank() if rank is None else int(rank)
        self.world_size = flow.env.get_world_size() if world_size is None else int(world_size)
        self.device = device
        self.as_numpy = as_numpy
        self.meta = verify_split(directory) if verify else read_split_meta(directory)
        self.num_records = int(self.meta["count"])
        if self.num_records == 0:
            raise ValueError(f"split {directory} has no records")
        if features is None:
            features = self.meta.get("feature_names") or list(self.meta["features"])
        self.features = list(features)
        for name in self.features:
            if name not in self.meta["features"]:
                known = list(self.meta["features"])
                raise KeyError(f"split {directory} has no feature {name!r}; it has {known}")
        self.seq_length = int(self.meta["seq_length"])
        self._read_chunk = read_chunk
        self._arrays: dict[str, np.ndarray] | None = None
        self._epoch = 0
        self.length_buckets = length_buckets
        self._bucketing: tuple | None = None  # (bounds, bucket of every record) once resolved
        # shard size does not depend on the epoch
        self.num_examples = len(self._indices(0))
        if self.drop_last and self.num_examples < self.batch_size:
            raise ValueError(
                f"split {directory}: rank {self.rank} has {self.num_examples} records, fewer than one "
                f"batch of {self.batch_size} with drop_last; lower the batch size"
            )

    # -- data ------------------------------------------------------------------------------------
    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """All records of the split as host arrays (read through OneFlow on first use)."""
        if self._arrays is None:
            arrays = read_split_with_oneflow(self.directory, self.features, self._read_chunk, verify=False)
            if "idxs" in arrays and not np.array_equal(arrays["idxs"], np.arange(self.num_records)):
                raise RuntimeError(f"split {self.directory}: records came back out of order from "
                                   "OFRecordReader (idxs is not 0..N-1)")
            self._arrays = arrays
        return self._arrays

    def _indices(self, epoch: int) -> np.ndarray:
        return shard_indices(self.num_records, self.rank, self.world_size, self.shuffle, self.seed, epoch,
                             equal_shards=self.drop_last)

    # -- iteration -------------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        """Epoch the next ``iter()`` will run."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch (and so the shuffle order) of the next ``iter()``."""
        self._epoch = int(epoch)

    # -- length buckets --------------------------------------------------------------------------
    def _resolved_buckets(self) -> tuple:
        if self._bucketing is None:
            bounds = record_buckets = None
            if self.length_buckets is not None:
                if "input_mask" not in self.features:
                    raise ValueError(f"split {self.directory}: length buckets need the input_mask feature")
                lengths = bucketing.token_lengths(self.arrays["input_mask"])
                bounds = bucketing.resolve_bounds(self.length_buckets, lengths, self.seq_length)
                if bounds is not None:
                    record_buckets = bucketing.bucket_ids(lengths, bounds)
            self._bucketing = (bounds, record_buckets)
        return self._bucketing

    @property
    def bounds(self) -> tuple[int, ...] | None:
        """The bucket bounds in force (None: every batch is padded to ``seq_length``)."""
        return self._resolved_buckets()[0]

    def bucket_summary(self) -> str:
        """One line: the bounds and the records per bucket, or that batches are padded to ``seq_length``."""
        bounds, record_buckets = self._resolved_buckets()
        if bounds is None:
            return f"no length buckets (every batch padded to {self.seq_length} tokens)"
        return bucketing.describe(bounds, record_buckets, self.num_records)

    def epoch_plan(self, epoch: int, rows: np.ndarray | None = None) -> list[tuple[int, np.ndarray]]:
        """This rank's batches of one epoch as (sequence bound, record indices), over all records or ``rows``.

        Without buckets: this rank's shard (``shard_indices``) cut into consecutive batches of
        ``seq_length``. With buckets: the global plan of ``buckets.plan_batches`` (global batches of
        ``batch_size * world_size``, the same on every rank), each batch's rows dealt to the ranks.
        """
        rows = np.arange(self.num_records) if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)
        bounds, record_buckets = self._resolved_buckets()
        if bounds is None:
            order = rows[shard_indices(len(rows), self.rank, self.world_size, self.shuffle, self.seed, epoch,
                                       equal_shards=self.drop_last)]
            count = len(order) - len(order) % self.batch_size if self.drop_last else len(order)
            return [(self.seq_length, order[i:i + self.batch_size]) for i in range(0, count, self.batch_size)]
        order = rows[np.random.default_rng([self.seed, epoch]).permutation(len(rows))] if self.shuffle else rows
        plan = bucketing.plan_batches(
            order, record_buckets, len(bounds), self.batch_size * self.world_size, self.drop_last,
            shuffle_seed=(self.seed, epoch, 1) if self.shuffle else None)
        dealt = [(bounds[bucket], index[self.rank::self.world_size]) for bucket, index in plan]
        return [(bound, index) for bound, index in dealt if len(index)]

    def make_batch(self, index: np.ndarray, bound: int | None = None) -> dict:
        """The batch of records ``index``, sequence features sliced to ``bound`` tokens (default all)."""
        arrays, bound = self.arrays, bound or self.seq_length
        batch = {}
        for name in self.features:
            value = arrays[name][index]
            if bound < self.seq_length and value.ndim == 2 and value.shape[1] == self.seq_length:
                value = np.ascontiguousarray(value[:, :bound])
            batch[name] = value
        if self.as_numpy:
            return batch
        tensors = {}
        for name, value in batch.items():
            tensor = flow.from_numpy(value)
            if self.device not in (None, "cpu"):
                tensor = tensor.to(self.device)
            tensors[name] = tensor
        return tensors

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        if self.length_buckets is None:
            if self.drop_last:
                return self.num_examples // self.batch_size
            return math.ceil(self.num_examples / self.batch_size)
        return len(self.epoch_plan(0))

    def __iter__(self) -> Iterator[dict]:
        epoch = self._epoch
        self._epoch += 1
        for bound, index in self.epoch_plan(epoch):
            yield self.make_batch(index, bound)
