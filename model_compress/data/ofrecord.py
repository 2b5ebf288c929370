"""OFRecord files: writer, plain-python reader and the on-disk layout of a prepared split.

File format (OneFlow's): a sequence of records, each ``int64 little-endian length`` followed by that
many bytes of a serialized ``oneflow.core.record.OFRecord`` (a map feature-name -> Feature).

Split layout::

    <data_dir>/ofrecord/<split>/<split>.of_record-0 .. -<P-1>   records in example order, contiguous
    <data_dir>/ofrecord/<split>/meta.json                        count, seq_length, features, ...

Features: ``input_ids input_mask segment_ids`` (Int32List, seq_length), ``label_ids`` (Int32List, 1),
optionally ``domain`` (Int32List, 1), ``idxs`` (Int32List, 1) and ``weights`` (FloatList, 1).

Writing is atomic: a split is written into a fresh hidden directory beside the target (parts fsynced,
``meta.json`` last) and then swapped in with renames, so readers never see a half-written part and a
rebuild replaces records instead of appending to them. Serialization is done with numpy (varints
for whole arrays at once); it produces exactly the bytes of protobuf's deterministic serialization.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import struct
import uuid
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np

try:
    import fcntl
except ImportError:  # not on Windows
    fcntl = None

from model_compress.data.features import (
    FEATURE_DTYPES,
    SEQUENCE_FEATURES,
    convert_examples_to_features,
    feature_names,
    features_to_arrays,
)
from model_compress.data.processors import InputExample
from model_compress.data.tokenization import FullTokenizer

FORMAT_VERSION = 1
META_FILE = "meta.json"
_LEN = struct.Struct("<q")

# Feature field numbers of oneflow.core.record.Feature (oneof kind) -> protobuf tag byte
_TAG_FLOAT = (2 << 3) | 2
_TAG_INT32 = (4 << 3) | 2
_TAG_INT64 = (5 << 3) | 2


class OFRecordError(ValueError):
    """An OFRecord file is truncated or corrupt. ``path`` and ``offset`` say where."""

    def __init__(self, path: str, offset: int | None, reason: str) -> None:
        self.path = path
        self.offset = offset
        where = path if offset is None else f"{path} at byte offset {offset}"
        super().__init__(f"{where}: {reason}")


class StaleSplitError(RuntimeError):
    """A prepared split does not match what was asked for (seq_length, vocab, data, features)."""


def _record_pb2():
    from oneflow.core.record import record_pb2

    return record_pb2


# ---------------------------------------------------------------------------------------------------
# Serialization
# ---------------------------------------------------------------------------------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL_VARINTS = [_varint(i) for i in range(1 << 14)]


def _varint_len_prefix(n: int) -> bytes:
    return _SMALL_VARINTS[n] if n < (1 << 14) else _varint(n)


def _packed_varints(values: np.ndarray) -> list[bytes]:
    """Protobuf varint encoding of each row of a 2-D integer array (int32/int64 semantics)."""
    v = values.astype(np.int64, copy=False).view(np.uint64)
    nbytes = np.ones(v.shape, dtype=np.int64)
    for j in range(1, 10):
        nbytes += v >= np.uint64(1 << (7 * j))
    width = int(nbytes.max()) if nbytes.size else 1
    shifts = np.arange(width, dtype=np.uint64) * np.uint64(7)
    groups = ((v[..., None] >> shifts) & np.uint64(0x7F)).astype(np.uint8)
    position = np.arange(width)
    groups |= np.where(position < (nbytes[..., None] - 1), 0x80, 0).astype(np.uint8)
    flat = groups[position < nbytes[..., None]].tobytes()
    ends = np.cumsum(nbytes.sum(axis=1))
    starts = ends - nbytes.sum(axis=1)
    return [flat[s:e] for s, e in zip(starts.tolist(), ends.tolist())]


def _payloads(array: np.ndarray) -> tuple[int, list[bytes]]:
    """(tag, packed payload per row) of one feature column shaped [N, k]."""
    if array.dtype == np.float32:
        flat = np.ascontiguousarray(array, dtype="<f4").tobytes()
        step = 4 * array.shape[1]
        return _TAG_FLOAT, [flat[i * step:(i + 1) * step] for i in range(array.shape[0])]
    if array.dtype == np.int32:
        return _TAG_INT32, _packed_varints(array)
    if array.dtype == np.int64:
        return _TAG_INT64, _packed_varints(array)
    raise TypeError(f"unsupported feature dtype {array.dtype} (use int32, int64 or float32)")


def encode_records(arrays: Mapping[str, np.ndarray]) -> list[bytes]:
    """Serialize rows of feature arrays into OFRecord messages.

    Args:
        arrays: name -> array of shape ``[N]`` or ``[N, k]``; int32 becomes Int32List, int64
            Int64List, float32 FloatList. All arrays must have the same N.

    Returns:
        N serialized ``OFRecord`` messages (identical to protobuf's deterministic serialization).
    """
    names = sorted(arrays)
    columns = {}
    n = None
    for name in names:
        a = np.asarray(arrays[name])
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2:
            raise ValueError(f"feature {name!r}: expected shape [N] or [N, k], got {a.shape}")
        if n is None:
            n = a.shape[0]
        elif a.shape[0] != n:
            raise ValueError(f"feature {name!r} has {a.shape[0]} rows, expected {n}")
        columns[name] = a
    if not n:
        return []
    keys = {name: b"\x0a" + _varint_len_prefix(len(name.encode())) + name.encode() for name in names}
    parts = []
    for name in names:
        tag, payloads = _payloads(columns[name])
        parts.append((keys[name], bytes([tag]), payloads))
    records = []
    vp = _varint_len_prefix
    for i in range(n):
        chunks = []
        for key, tag, payloads in parts:
            p = payloads[i]
            inner = b"\x0a" + vp(len(p)) + p if p else b""  # the list message: packed field 1
            feature = tag + vp(len(inner)) + inner  # Feature: oneof field
            entry = key + b"\x12" + vp(len(feature)) + feature  # map entry: key=1, value=2
            chunks.append(b"\x0a" + vp(len(entry)) + entry)  # OFRecord.feature (field 1)
        records.append(b"".join(chunks))
    return records


def decode_record(data: bytes) -> dict[str, np.ndarray | list[bytes]]:
    """Parse one serialized OFRecord into name -> numpy array (bytes lists stay lists)."""
    record = _record_pb2().OFRecord()
    record.ParseFromString(data)
    out: dict[str, np.ndarray | list[bytes]] = {}
    for name, feature in record.feature.items():
        kind = feature.WhichOneof("kind")
        if kind == "int32_list":
            out[name] = np.array(feature.int32_list.value, dtype=np.int32)
        elif kind == "int64_list":
            out[name] = np.array(feature.int64_list.value, dtype=np.int64)
        elif kind == "float_list":
            out[name] = np.array(feature.float_list.value, dtype=np.float32)
        elif kind == "double_list":
            out[name] = np.array(feature.double_list.value, dtype=np.float64)
        elif kind == "bytes_list":
            out[name] = list(feature.bytes_list.value)
        else:
            out[name] = np.zeros(0, dtype=np.int32)
    return out


# ---------------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------------
def _record_frames(f, path: str) -> Iterator[tuple[int, int]]:
    """``(offset, length)`` of each record of an open file, left positioned at the record's payload.

    Raises:
        OFRecordError: a length header or a payload is cut short, or a length is impossible.
    """
    size = os.fstat(f.fileno()).st_size
    offset = 0
    while offset < size:
        f.seek(offset)
        header = f.read(8)
        if len(header) < 8:
            raise OFRecordError(path, offset, f"truncated length header ({len(header)} of 8 bytes)")
        (length,) = _LEN.unpack(header)
        if length < 0 or offset + 8 + length > size:
            raise OFRecordError(
                path, offset,
                f"record length {length} does not fit in the file ({size - offset - 8} bytes left); "
                "the file is truncated or corrupt",
            )
        yield offset, length
        offset += 8 + length


def iter_raw_records(path: str) -> Iterator[tuple[int, bytes]]:
    """Yield ``(offset, payload)`` of every record of an OFRecord file, checking the framing.

    Raises:
        OFRecordError: a length header or a payload is cut short, or a length is impossible.
    """
    with open(path, "rb") as f:
        for offset, length in _record_frames(f, path):
            yield offset, f.read(length)


def count_records(path: str) -> int:
    """Number of records in a file, checking the framing only (fast: it seeks over payloads)."""
    with open(path, "rb") as f:
        return sum(1 for _ in _record_frames(f, path))


def read_ofrecord_file(path: str) -> Iterator[dict[str, np.ndarray | list[bytes]]]:
    """Decoded records of one OFRecord file, in order.

    Raises:
        OFRecordError: truncated or corrupt file (the message names the file and byte offset).
    """
    for offset, payload in iter_raw_records(path):
        try:
            yield decode_record(payload)
        except Exception as exc:  # protobuf raises its own DecodeError
            raise OFRecordError(path, offset, f"record does not parse as an OFRecord ({exc})") from None


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_ofrecord_file(path: str, records: Iterable[bytes]) -> tuple[int, int]:
    """Atomically write serialized records to ``path`` (temp file in the same dir, fsync, rename).

    Returns:
        ``(record_count, byte_size)``.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # mode honours the umask
    count = 0
    try:
        with os.fdopen(fd, "wb") as f:
            pack = _LEN.pack
            for payload in records:
                f.write(pack(len(payload)))
                f.write(payload)
                count += 1
            f.flush()
            os.fsync(f.fileno())
            size = f.tell()
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return count, size


# ---------------------------------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------------------------------
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
            parts.append({"file": file_name, "count": count, "bytes": size})
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
        _fsync_dir(tmp_dir)
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
        _fsync_dir(parent)
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

    Checks file presence, sizes, record framing and counts, and the first record of every part
    (features, dtypes, lengths). ``deep`` parses and checks every record. OneFlow's own reader aborts
    the whole process on a bad file, so the loader calls this first.

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
        for offset, payload in iter_raw_records(path):
            _check_record(path, offset, payload, meta)
            if not deep:
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


# ---------------------------------------------------------------------------------------------------
# Build-or-reuse
# ---------------------------------------------------------------------------------------------------
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


@contextlib.contextmanager
def split_lock(data_dir: str, split: str) -> Iterator[None]:
    """Hold an exclusive advisory lock on one split of `data_dir`.

    Without flock, or where the lock file cannot be created (a read-only dataset), it locks nothing:
    an up-to-date split is then still reused, and a build fails on its own write as before.
    """
    path = os.path.join(os.path.dirname(split_dir(data_dir, split)), f".{split}.lock")
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
        try:
            yield
        finally:
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
