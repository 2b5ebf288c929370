"""OFRecord splits of a task: build one from examples, or reuse an up-to-date one (file lock, staleness).

The record framing lives in ``ofrecord_codec`` and the split layout (part files, ``meta.json``, atomic
writes, verification) in ``ofrecord_split``; their public names are importable from here too.

Features: ``input_ids input_mask segment_ids`` (Int32List, seq_length), ``label_ids`` (Int32List, 1),
optionally ``domain`` (Int32List, 1), ``idxs`` (Int32List, 1) and ``weights`` (FloatList, 1).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
from collections.abc import Iterator, Sequence

import numpy as np

try:
    import fcntl
except ImportError:  # not on Windows
    fcntl = None

from model_compress.data.features import convert_examples_to_features, feature_names, features_to_arrays
from model_compress.data.ofrecord_codec import (
    OFRecordError,
    count_records,
    decode_record,
    encode_records,
    iter_raw_records,
    read_ofrecord_file,
    write_ofrecord_file,
)
from model_compress.data.ofrecord_split import (
    FORMAT_VERSION,
    META_FILE,
    SplitInfo,
    feature_specs,
    part_prefix,
    read_split,
    read_split_meta,
    split_dir,
    verify_split,
    write_split,
)
from model_compress.data.processors import InputExample
from model_compress.data.tokenization import FullTokenizer

__all__ = [
    "FORMAT_VERSION",
    "META_FILE",
    "OFRecordError",
    "SplitInfo",
    "StaleSplitError",
    "count_records",
    "decode_record",
    "encode_records",
    "ensure_ofrecord_split",
    "examples_fingerprint",
    "feature_specs",
    "iter_raw_records",
    "part_prefix",
    "read_ofrecord_file",
    "read_split",
    "read_split_meta",
    "split_dir",
    "split_lock",
    "verify_split",
    "write_ofrecord_file",
    "write_split",
]


class StaleSplitError(RuntimeError):
    """A prepared split does not match what was asked for (seq_length, vocab, data, features)."""


def examples_fingerprint(examples: Sequence[InputExample], weights: Sequence[float] | None = None) -> str:
    """sha256 over the content of examples (and explicit weights): changes when the data changes."""
    digest = hashlib.sha256()
    for ex in examples:
        digest.update(f"{ex.text_a!r}\x1f{ex.text_b!r}\x1f{ex.label!r}\x1f{ex.domain!r}\x1f{ex.weight!r}\x1e".encode())
    if weights is not None:
        digest.update(np.asarray(weights, dtype=np.float32).tobytes())
    return digest.hexdigest()


def _stale_reasons(meta: dict, expected: dict) -> list[str]:
    reasons = []
    for key, want in expected.items():
        have = meta.get(key)
        if have != want:
            if key in ("vocab_hash", "source_hash"):
                reasons.append(f"{key} differs")
            else:
                reasons.append(f"{key} is {have!r}, wanted {want!r}")
    return reasons


_held_locks: dict[str, int] = {}  # lock path -> nesting depth in this process


@contextlib.contextmanager
def split_lock(data_dir: str, split: str) -> Iterator[None]:
    """Hold an exclusive advisory lock on one split of `data_dir` (re-entrant within a process).

    Jobs hold it while they build *and* read a split, so a concurrent job asking for other content
    (e.g. another --dev_example_num) rebuilds it only after the first has its records in memory.
    Without flock, or where the lock file cannot be created (a read-only dataset), it locks nothing:
    an up-to-date split is then still reused, and a build fails on its own write as before.
    """
    path = os.path.abspath(os.path.join(os.path.dirname(split_dir(data_dir, split)), f".{split}.lock"))
    if _held_locks.get(path):
        _held_locks[path] += 1
        try:
            yield
        finally:
            _held_locks[path] -= 1
        return
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        handle = open(path, "a+b")
    except OSError:
        handle = None
    if handle is None or fcntl is None:
        yield
        return
    with handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        _held_locks[path] = 1
        try:
            yield
        finally:
            _held_locks.pop(path, None)
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def ensure_ofrecord_split(
    examples: Sequence[InputExample],
    data_dir: str,
    split: str,
    tokenizer: FullTokenizer,
    seq_length: int,
    label_list: Sequence[str],
    domain_list: Sequence[str] | None = None,
    resave: bool = False,
    weights: Sequence[float] | None = None,
    with_weights: bool | None = None,
    num_parts: int = 1,
    on_stale: str = "rebuild",
) -> SplitInfo:
    """Build the OFRecord split of ``examples`` unless an identical one is already on disk.

    The split is (re)built when it is missing, when ``resave`` is True, or when its meta.json shows
    it was built from other data or settings (seq_length, vocab/casing, labels, domains, features,
    example content): ``on_stale="rebuild"`` rebuilds it with a warning, ``"error"`` raises
    :class:`StaleSplitError`. Rebuilding always rewrites, never appends.

    Args:
        examples: the split's examples, in order (``idxs`` = position here).
        data_dir: task data directory (the split goes to ``<data_dir>/ofrecord/<split>``).
        split: split name.
        tokenizer: :class:`~model_compress.data.tokenization.FullTokenizer`.
        seq_length: padded sequence length.
        label_list: labels in id order.
        domain_list: domains in id order; when given the ``domain`` feature is written.
        resave: rebuild even if an up-to-date split exists.
        weights: per-example weights overriding ``example.weight`` (e.g. MFT prototypical scores).
        with_weights: write the ``weights`` feature; default: when ``weights`` is given or any example
            has a weight.
        num_parts: number of part files.
        on_stale: ``"rebuild"`` or ``"error"``.

    Returns:
        :class:`SplitInfo` with ``directory``, ``count`` and ``features`` (the feature names).

    Jobs running at the same time on the same data directory take turns (a file lock per split): the
    first builds, the others find its split up to date. In multi-process runs still call this on one
    rank and make the others wait (a barrier).
    """
    if on_stale not in ("rebuild", "error"):
        raise ValueError(f"on_stale must be 'rebuild' or 'error', got {on_stale!r}")
    if weights is not None and len(weights) != len(examples):
        raise ValueError(f"{len(weights)} weights for {len(examples)} examples")
    if with_weights is None:
        with_weights = weights is not None or any(ex.weight is not None for ex in examples)
    names = feature_names(with_domain=domain_list is not None, with_weights=with_weights)
    expected = {
        "version": FORMAT_VERSION,
        "seq_length": seq_length,
        "vocab_hash": tokenizer.vocab_hash,
        "label_list": list(label_list),
        "domain_list": None if domain_list is None else list(domain_list),
        "feature_names": names,
        "source_hash": examples_fingerprint(examples, weights),
        "count": len(examples),
    }
    with split_lock(data_dir, split):  # a concurrent job on the same data waits, then reuses the split
        target = split_dir(data_dir, split)
        if not resave and os.path.isdir(target):
            try:
                meta = verify_split(target)
                reasons = _stale_reasons(meta, expected)
            except (OSError, ValueError) as exc:
                meta, reasons = None, [str(exc)]
            if not reasons:
                return SplitInfo(target, split, meta["count"], meta["seq_length"], names, meta["num_parts"], meta)
            message = f"OFRecord split {target} is stale: {'; '.join(reasons)}"
            if on_stale == "error":
                raise StaleSplitError(message + " (rebuild it with --resave_ofrecord)")
            warnings.warn(message + "; rebuilding it", stacklevel=2)

        features = convert_examples_to_features(examples, label_list, seq_length, tokenizer, domain_list)
        arrays = features_to_arrays(features, names)
        if weights is not None:
            arrays["weights"] = np.asarray(weights, dtype=np.float32)
        extra = dict(expected)
        extra["do_lower_case"] = getattr(tokenizer, "do_lower_case", None)
        return write_split(arrays, data_dir, split, seq_length, num_parts=num_parts, extra_meta=extra)
