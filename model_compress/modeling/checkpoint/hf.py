"""Hugging Face checkpoints: the safetensors container (numpy only) and HF BERT / MPNet directory import."""

from __future__ import annotations

import json
import math
import os
import re
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

from model_compress.files import atomic_open
from model_compress.modeling.checkpoint.project import CONFIG_JSON
from model_compress.modeling.checkpoint.shapes import check_state_shapes, encoder_prefix
from model_compress.modeling.checkpoint.state import State
from model_compress.modeling.config import BertConfig, EncoderConfig, MPNetConfig, config_from_json_file

SAFETENSORS_FILE = "model.safetensors"
_ST_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "BF16": "<u2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U8": "u1",
    "BOOL": "?",
}
_NP_TO_ST = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint8": "U8",
    "bool": "BOOL",
}
_MAX_HEADER = 100 * 1024 * 1024


def read_safetensors(path: str, float32: bool = True) -> dict[str, np.ndarray]:
    """Parse a ``.safetensors`` file with numpy: 8-byte little-endian header length, JSON header
    (``dtype``, ``shape``, ``data_offsets`` per tensor, optional ``__metadata__``), raw data.

    F64/F32/F16/BF16 and integer/bool dtypes are supported; with ``float32`` every floating tensor
    is returned as float32 (BF16 is widened exactly). A malformed file raises ValueError naming it.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"{path}: not a safetensors file ({size} bytes, no header length)")
        (length,) = struct.unpack("<Q", head)
        if length > size - 8 or length > _MAX_HEADER:
            raise ValueError(f"{path}: bad safetensors header length {length} for a {size}-byte file")
        try:
            header = json.loads(f.read(length).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: safetensors header is not valid JSON ({exc})") from None
        if not isinstance(header, dict):
            raise ValueError(f"{path}: safetensors header is not a JSON object")
        data = f.read()
    tensors: dict[str, np.ndarray] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
            shape = tuple(int(d) for d in shape)
            begin, end = int(begin), int(end)
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: tensor {name!r} has a malformed header entry {entry!r}") from None
        if dtype not in _ST_DTYPES:
            raise ValueError(f"{path}: tensor {name!r} has unsupported dtype {dtype!r}")
        np_dtype = np.dtype(_ST_DTYPES[dtype])
        count = math.prod(shape)
        if any(d < 0 for d in shape) or not 0 <= begin <= end <= len(data):
            raise ValueError(f"{path}: tensor {name!r} data_offsets {[begin, end]} outside the data area")
        if end - begin != count * np_dtype.itemsize:
            raise ValueError(
                f"{path}: tensor {name!r} spans {end - begin} bytes, but {dtype}{list(shape)} needs "
                f"{count * np_dtype.itemsize}"
            )
        array = np.frombuffer(data, dtype=np_dtype, count=count, offset=begin).reshape(shape)
        if dtype == "BF16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        elif float32 and array.dtype.kind == "f":
            array = array.astype(np.float32)
        else:
            array = array.copy()
        tensors[name] = array
    return tensors


def write_safetensors(
    tensors: Mapping[str, np.ndarray], path: str, metadata: Mapping[str, str] | None = None
) -> str:
    """Write numpy arrays as a ``.safetensors`` file (header padded to 8 bytes, as the format does)."""
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs, offset = [], 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        kind = _NP_TO_ST.get(array.dtype.name)
        if kind is None:
            raise ValueError(f"{name}: dtype {array.dtype} cannot be written to safetensors")
        raw = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {
            "dtype": kind,
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        blobs.append(raw)
        offset += len(raw)
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)
    with atomic_open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for raw in blobs:
            f.write(raw)
    return path


def import_hf_safetensors(model_dir: str) -> tuple[State, EncoderConfig]:
    """Read a Hugging Face BERT or MPNet (``model.safetensors`` + ``config.json``) into ``(state, config)``.

    ``model_dir`` is the directory (or the ``.safetensors`` file inside it); ``config.json``'s
    ``model_type`` says which model it is (``mpnet``, else BERT). Keys of a bare encoder (``embeddings.*``,
    ``encoder.*``, ``pooler.*``) get the classifier's prefix (``bert.`` / ``mpnet.``); old-style
    ``LayerNorm.gamma/beta`` become ``weight/bias``; the ``position_ids`` buffer and other integer
    tensors are dropped; floats become float32. MPNet's pooler and masked-LM head are dropped too: its
    sequence classifier (as HF's MPNetForSequenceClassification) has neither. Shapes are checked
    against the config.
    """
    if os.path.isfile(model_dir):
        weights, model_dir = model_dir, os.path.dirname(model_dir)
    else:
        weights = os.path.join(model_dir, SAFETENSORS_FILE)
    for needed in (weights, os.path.join(model_dir, CONFIG_JSON)):
        if not os.path.isfile(needed):
            raise FileNotFoundError(f"Hugging Face checkpoint file {needed} is missing")
    config = config_from_json_file(os.path.join(model_dir, CONFIG_JSON))
    if not isinstance(config, (BertConfig, MPNetConfig)):
        raise ValueError(f"{model_dir}: {CONFIG_JSON} describes a {type(config).__name__}, not a BERT or MPNet")
    prefix = encoder_prefix(config)
    dropped = ("pooler.", "lm_head.", f"{prefix}pooler.") if isinstance(config, MPNetConfig) else ()
    state: State = {}
    for key, array in read_safetensors(weights).items():
        if array.dtype.kind != "f" or key.startswith(dropped):
            continue  # position_ids and similar buffers; parts the classifier does not have
        key = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", key)
        key = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", key)
        if key.startswith(("embeddings.", "encoder.", "pooler.")):
            key = prefix + key
        state[key] = array
    problems = check_state_shapes(state, config)
    if problems:
        raise ValueError(f"{weights} does not match {CONFIG_JSON}: " + "; ".join(problems[:4]))
    return state, config
