"""OFRecord framing: records as ``int64 little-endian length`` + a serialized ``oneflow.core.record.OFRecord``
(a map feature-name -> Feature), encoded with numpy (varints for whole arrays at once; exactly the bytes of
protobuf's deterministic serialization), and record files read and written atomically."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator, Mapping

import numpy as np

from model_compress.files import atomic_open

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


def record_pb2():
    """OneFlow's generated ``record_pb2`` module (imported on first use)."""
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
    record = record_pb2().OFRecord()
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


def fsync_dir(path: str) -> None:
    """fsync a directory (its entries), ignoring file systems that refuse."""
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
    count = 0
    try:
        with atomic_open(path, "wb", fsync=True) as f:
            pack = _LEN.pack
            for payload in records:
                f.write(pack(len(payload)))
                f.write(payload)
                count += 1
            size = f.tell()
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, path) from None  # name the file the user can act on
    return count, size


