"""The on-disk layout of a prepared split: part files plus ``meta.json``, written atomically and verified.

Layout::

    <data_dir>/ofrecord/<split>/<split>.of_record-0 .. -<P-1>   records in example order, contiguous
    <data_dir>/ofrecord/<split>/meta.json                        count, seq_length, features, ...

A split is written into a fresh hidden directory beside the target (parts fsynced, ``meta.json`` last)
and then swapped in with renames, so readers never see a half-written part and a rebuild replaces
records instead of appending to them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from model_compress.data.features import FEATURE_DTYPES, SEQUENCE_FEATURES
from model_compress.data.ofrecord_codec import (
    OFRecordError,
    count_records,
    decode_record,
    encode_records,
    fsync_dir,
    iter_raw_records,
    write_ofrecord_file,
)
from model_compress.files import sha256_file

FORMAT_VERSION = 1
META_FILE = "meta.json"


@dataclasses.dataclass
class SplitInfo:
    """A prepared split on disk."""

    directory: str
    split: str
    count: int
    seq_length: int
    features: list[str]
    num_parts: int
    meta: dict

    @property
    def part_prefix(self) -> str:
        return part_prefix(self.split)


def part_prefix(split: str) -> str:
    """``part_name_prefix`` of OneFlow's OFRecordReader for this split, e.g. ``train.of_record-``."""
    return f"{split}.of_record-"


def split_dir(data_dir: str, split: str) -> str:
    """``<data_dir>/ofrecord/<split>``."""
    return os.path.join(data_dir, "ofrecord", split)


def feature_specs(names: Sequence[str], seq_length: int) -> dict[str, dict]:
    """meta.json description of features: dtype and per-example shape."""
    specs = {}
    for name in names:
        if name not in FEATURE_DTYPES:
            raise ValueError(f"unknown feature {name!r}; known: {list(FEATURE_DTYPES)}")
        shape = [seq_length] if name in SEQUENCE_FEATURES else [1]
        specs[name] = {"dtype": np.dtype(FEATURE_DTYPES[name]).name, "shape": shape}
    return specs


def _cleanup_leftovers(parent: str, split: str) -> None:
    """Remove hidden directories left by interrupted writes of this split (dead writers only)."""
    if not os.path.isdir(parent):
        return
    for name in os.listdir(parent):
        if not name.startswith(f".{split}."):
            continue
        kind_pid = name[len(split) + 2:].split("-")
        if len(kind_pid) < 2 or kind_pid[0] not in ("tmp", "old"):
            continue
        try:
            pid = int(kind_pid[1])
        except ValueError:
            continue
        alive = True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            alive = False
        except PermissionError:
            pass
        if kind_pid[0] == "old" or not alive:
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


def write_split(
    arrays: Mapping[str, np.ndarray],
    data_dir: str,
    split: str,
    seq_length: int,
    num_parts: int = 1,
    extra_meta: Mapping | None = None,
) -> SplitInfo:
    """Write feature arrays as a split and swap it in place of any previous one.

    Args:
        arrays: feature name -> ``[N, seq_length]`` or ``[N]`` array (see :func:`features_to_arrays`).
        data_dir: task data directory; the split goes to ``<data_dir>/ofrecord/<split>``.
        split: split name (train, dev, test, ...).
        seq_length: sequence length of the sequence features (checked).
        num_parts: number of part files (records are cut into contiguous, near-equal chunks).
        extra_meta: additional keys for meta.json (vocab hash, labels, source hash, ...).
    """
    names = list(arrays)
    n = len(next(iter(arrays.values()))) if arrays else 0
    for name in names:
        if len(arrays[name]) != n:
            raise ValueError(f"feature {name!r} has {len(arrays[name])} rows, expected {n}")
        if name in SEQUENCE_FEATURES and np.asarray(arrays[name]).shape[1:] != (seq_length,):
            raise ValueError(f"feature {name!r} has shape {np.asarray(arrays[name]).shape}, "
                             f"expected [N, {seq_length}]")
    if num_parts < 1:
        raise ValueError(f"num_parts must be >= 1, got {num_parts}")
    typed = {name: np.asarray(arrays[name], dtype=FEATURE_DTYPES[name]) for name in names}

    target = split_dir(data_dir, split)
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    _cleanup_leftovers(parent, split)
    tmp_dir = os.path.join(parent, f".{split}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.makedirs(tmp_dir)
    try:
        parts = []
        bounds = [round(i * n / num_parts) for i in range(num_parts + 1)]
        chunk = 4096
        for p in range(num_parts):
            lo, hi = bounds[p], bounds[p + 1]

            def records(lo: int = lo, hi: int = hi) -> Iterator[bytes]:
                for start in range(lo, hi, chunk):
                    stop = min(start + chunk, hi)
                    yield from encode_records({k: v[start:stop] for k, v in typed.items()})

            file_name = f"{part_prefix(split)}{p}"
            count, size = write_ofrecord_file(os.path.join(tmp_dir, file_name), records())
            parts.append({"file": file_name, "count": count, "bytes": size,
                          "sha256": sha256_file(os.path.join(tmp_dir, file_name))})
        meta = {
            "format": "model_compress.ofrecord",
            "version": FORMAT_VERSION,
            "split": split,
            "count": n,
            "seq_length": seq_length,
            "features": feature_specs(names, seq_length),
            "num_parts": num_parts,
            "part_prefix": part_prefix(split),
            "parts": parts,
        }
        meta.update(extra_meta or {})
        meta_path = os.path.join(tmp_dir, META_FILE)
        with open(meta_path, "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=1, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        fsync_dir(tmp_dir)
        _swap_in(tmp_dir, target, split)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return SplitInfo(target, split, n, seq_length, names, num_parts, meta)


def _swap_in(tmp_dir: str, target: str, split: str) -> None:
    """Replace ``target`` by ``tmp_dir`` with two renames; tolerant of a concurrent writer."""
    parent = os.path.dirname(target)
    for _ in range(10):
        old = None
        if os.path.exists(target):
            old = os.path.join(parent, f".{split}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
            try:
                os.rename(target, old)
            except FileNotFoundError:  # another writer moved it away first
                old = None
        try:
            os.rename(tmp_dir, target)
        except OSError:  # another writer put its own copy in place meanwhile: try again
            if old:
                shutil.rmtree(old, ignore_errors=True)
            continue
        if old:
            shutil.rmtree(old, ignore_errors=True)
        fsync_dir(parent)
        return
    raise OSError(f"could not replace {target}: another process keeps rewriting it")


def read_split_meta(directory: str) -> dict:
    """meta.json of a split directory.

    Raises:
        FileNotFoundError: no split or no meta.json (e.g. a split written by the original tools).
        ValueError: unreadable meta.json.
    """
    path = os.path.join(directory, META_FILE)
    if not os.path.isfile(path):
        if os.path.isdir(directory):
            raise FileNotFoundError(f"{directory} has no {META_FILE}: not written by model_compress "
                                    "(rebuild it with --resave_ofrecord)")
        raise FileNotFoundError(f"no prepared split at {directory} (run the preprocessing step first)")
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    for key in ("count", "seq_length", "features", "num_parts", "parts", "split"):
        if key not in meta:
            raise ValueError(f"{path} has no {key!r} entry")
    return meta


def verify_split(directory: str, deep: bool = False) -> dict:
    """Check that a split's part files match its meta.json; return the meta.

    Checks file presence, sizes, record framing and counts, each part's sha256 (so a damaged record
    in the middle of a part is found before OneFlow's decoder sees it), and the first record of every
    part (features, dtypes, lengths). ``deep``, or a part without a sha256, parses every record.
    OneFlow's own reader aborts the whole process on a bad file, so the loader calls this first.

    Raises:
        FileNotFoundError, OFRecordError: naming the file (and byte offset) at fault.
    """
    meta = read_split_meta(directory)
    total = 0
    for part in meta["parts"]:
        path = os.path.join(directory, part["file"])
        if not os.path.isfile(path):
            raise FileNotFoundError(f"part file missing: {path} (listed in {META_FILE})")
        size = os.path.getsize(path)
        if size != part["bytes"]:
            raise OFRecordError(path, None, f"size is {size} bytes, {META_FILE} says {part['bytes']} "
                                "(truncated or modified after writing)")
        count = count_records(path)
        if count != part["count"]:
            raise OFRecordError(path, None, f"holds {count} records, {META_FILE} says {part['count']}")
        total += count
        if part.get("sha256") and sha256_file(path) != part["sha256"]:
            raise OFRecordError(path, None, f"content differs from the sha256 in {META_FILE} (damaged or "
                                "modified after writing; rebuild it with --resave_ofrecord)")
        # without a checksum (older splits) every record is parsed: OneFlow aborts on a damaged one
        thorough = deep or not part.get("sha256")
        for offset, payload in iter_raw_records(path):
            _check_record(path, offset, payload, meta)
            if not thorough:
                break
    if total != meta["count"]:
        raise OFRecordError(directory, None, f"parts hold {total} records, {META_FILE} says {meta['count']}")
    return meta


def _check_record(path: str, offset: int, payload: bytes, meta: dict) -> dict:
    try:
        record = decode_record(payload)
    except Exception as exc:
        raise OFRecordError(path, offset, f"record does not parse as an OFRecord ({exc})") from None
    for name, spec in meta["features"].items():
        if name not in record:
            raise OFRecordError(path, offset, f"record has no feature {name!r}")
        value = record[name]
        want = int(np.prod(spec["shape"]))
        if len(value) != want or (isinstance(value, np.ndarray) and value.dtype.name != spec["dtype"]):
            got = value.dtype.name if isinstance(value, np.ndarray) else "bytes"
            raise OFRecordError(path, offset, f"feature {name!r} has {len(value)} {got} values, "
                                f"expected {want} {spec['dtype']}")
    return record


def read_split(directory: str, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Read a whole split with the python reader: name -> ``[N, seq_length]`` / ``[N]`` arrays.

    Every record is parsed and checked against meta.json.
    """
    meta = read_split_meta(directory)
    names = list(meta["features"]) if names is None else list(names)
    for name in names:
        if name not in meta["features"]:
            raise KeyError(f"split {directory} has no feature {name!r}; it has {list(meta['features'])}")
    columns: dict[str, list] = {name: [] for name in names}
    for part in meta["parts"]:
        path = os.path.join(directory, part["file"])
        if not os.path.isfile(path):
            raise FileNotFoundError(f"part file missing: {path} (listed in {META_FILE})")
        for offset, payload in iter_raw_records(path):
            record = _check_record(path, offset, payload, meta)
            for name in names:
                columns[name].append(record[name])
    out = {}
    for name in names:
        spec = meta["features"][name]
        values = columns[name]
        if values:
            array = np.stack(values).astype(spec["dtype"], copy=False)
        else:
            array = np.zeros((0, *spec["shape"]), dtype=spec["dtype"])
        out[name] = array.reshape(-1) if list(spec["shape"]) == [1] else array
    if len(next(iter(out.values()), [])) != meta["count"]:
        raise OFRecordError(directory, None, f"read {len(next(iter(out.values())))} records, "
                            f"{META_FILE} says {meta['count']}")
    return out
