"""The legacy layout of the OneFlow 0.1-0.5 originals: one folder per variable holding raw float32 ``out``."""

from __future__ import annotations

import math
import os
import re
import shutil
from collections.abc import Mapping
from typing import Any

import numpy as np

from model_compress.modeling.checkpoint.atomic import install_dir, prepare_target, sibling
from model_compress.modeling.checkpoint.names import (
    LEGACY_LAYER_RE,
    hf_to_legacy_name,
    is_non_model_variable,
    legacy_to_hf_name,
)
from model_compress.modeling.checkpoint.shapes import expected_shape
from model_compress.modeling.checkpoint.state import State, to_numpy
from model_compress.modeling.config import BertConfig

LEGACY_DONE = "snapshot_done"  # marker the originals' CheckPoint.save left in a finished snapshot
STUDENT_PREFIX = "student-"


def legacy_variables(path: str) -> list[str]:
    """Sub-folders of ``path`` that hold an ``out`` file (the legacy one-folder-per-variable layout)."""
    try:
        names = sorted(os.listdir(path))
    except OSError:
        return []
    return [n for n in names if os.path.isfile(os.path.join(path, n, "out"))]


_META_DIM_RE = re.compile(r"dim:\s*(\d+)")
_META_TYPE_RE = re.compile(r"data_type:\s*(\w+)")


def _read_legacy_out(folder: str) -> tuple[np.ndarray, tuple[int, ...] | None]:
    """Raw float32 values of ``folder/out`` and the shape from ``folder/meta`` when that exists.

    The originals' TF converter wrote only ``out``; later OneFlow versions also wrote a text-proto
    ``meta`` (``shape { dim: .. } data_type: kFloat``), which is honoured when present.
    """
    shape = None
    meta_path = os.path.join(folder, "meta")
    if os.path.isfile(meta_path):
        with open(meta_path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        kind = _META_TYPE_RE.search(text)
        if kind and kind.group(1) != "kFloat":
            raise ValueError(f"{meta_path}: data_type {kind.group(1)} is not supported (only kFloat)")
        shape = tuple(int(d) for d in _META_DIM_RE.findall(text))
    out = os.path.join(folder, "out")
    size = os.path.getsize(out)
    if size % 4:
        raise ValueError(f"{out}: {size} bytes is not a whole number of float32 values")
    return np.fromfile(out, dtype="<f4").astype(np.float32, copy=False), shape


def _legacy_model_names(path: str, prefix: str) -> dict[str, str]:
    """Legacy model variable name (prefix removed) -> folder name, for variables under ``prefix``."""
    result = {}
    for folder in legacy_variables(path):
        if prefix:
            if not folder.startswith(prefix):
                continue
            name = folder[len(prefix) :]
        else:
            if folder.startswith(STUDENT_PREFIX):
                continue
            name = folder
        result[name] = folder
    return result


def infer_legacy_config(path: str, prefix: str = "") -> BertConfig:
    """A BertConfig read off the sizes of a legacy snapshot's variables.

    Sizes give hidden, vocab, position, type-vocab, intermediate, layer and label counts. The head
    count cannot be seen in the weights: it is taken as hidden / 64, the rule the originals used
    (``hidden_size = 64 * num_attention_heads``). Pass an explicit config when that is wrong.
    """
    names = _legacy_model_names(path, prefix)

    def count(name: str) -> int:
        if name not in names:
            raise ValueError(
                f"{path}: legacy snapshot has no variable {prefix}{name}; pass a config to read it"
            )
        return os.path.getsize(os.path.join(path, names[name], "out")) // 4

    hidden = count("bert-embeddings-LayerNorm-gamma")
    layers = [int(m.group(1)) for m in map(LEGACY_LAYER_RE.match, names) if m]
    raw = {
        "hidden_size": hidden,
        "vocab_size": count("bert-embeddings-word_embeddings") // hidden,
        "max_position_embeddings": count("bert-embeddings-position_embeddings") // hidden,
        "type_vocab_size": count("bert-embeddings-token_type_embeddings") // hidden,
        "num_hidden_layers": max(layers) + 1 if layers else 0,
        "num_attention_heads": max(hidden // 64, 1) if hidden % 64 == 0 else 1,
    }
    if "bert-encoder-layer_0-intermediate-dense-bias" in names:
        raw["intermediate_size"] = count("bert-encoder-layer_0-intermediate-dense-bias")
    if "classification-output_bias" in names:
        raw["num_labels"] = count("classification-output_bias")
    return BertConfig.from_dict(raw)


def read_legacy_snapshot(
    path: str, config: BertConfig | None = None, prefix: str = "", skipped: list[str] | None = None
) -> State:
    """Read a legacy OneFlow snapshot directory into an HF-keyed numpy state.

    ``prefix`` selects whose variables to read: ``""`` for a plain or teacher model (``student-*``
    folders are then ignored), ``"student-"`` for the student of a distillation snapshot; the prefix
    is removed from the keys. Kernels stored [in, out] are transposed to [out, in]; the position
    table (stored [1, P, H] by OneFlow, [P, H] by the TF converter) becomes [P, H]. Optimizer
    moments (``-m``/``-v``), ``System-*`` step counters, learning-rate variables and names with no
    classifier meaning (e.g. pre-training ``cls-*`` heads) are skipped and appended to ``skipped``.
    The files do not store shapes, so ``config`` (default: inferred) gives them; a size that
    disagrees raises ValueError naming the folder.
    """
    if not os.path.isdir(path):
        raise FileNotFoundError(f"legacy snapshot directory {path} does not exist")
    if config is None:
        config = infer_legacy_config(path, prefix)
    skipped = skipped if skipped is not None else []
    state: State = {}
    for name, folder in _legacy_model_names(path, prefix).items():
        mapped = None if is_non_model_variable(name) else legacy_to_hf_name(name)
        if mapped is None:
            skipped.append(folder)
            continue
        key, transposed = mapped
        values, stored_shape = _read_legacy_out(os.path.join(path, folder))
        shape = expected_shape(key, config)
        if shape is None:  # fit_dense: [out, hidden] with out from the size
            if key.endswith(".bias"):
                shape = (values.size,)
            elif values.size % config.hidden_size == 0:
                shape = (values.size // config.hidden_size, config.hidden_size)
            else:
                raise ValueError(
                    f"{path}/{folder}: {values.size} values do not fit hidden size {config.hidden_size}"
                )
        if values.size != math.prod(shape):
            raise ValueError(
                f"{path}/{folder}/out holds {values.size} float32 values, but {key} needs shape {shape} "
                f"({math.prod(shape)} values) under the config; pass the right config"
            )
        if stored_shape and math.prod(stored_shape) != values.size:
            raise ValueError(f"{path}/{folder}: meta shape {stored_shape} disagrees with the out file size")
        if transposed:
            array = values.reshape(shape[::-1]).T.copy()
        else:
            array = values.reshape(shape).copy()
        state[key] = array
    if not state:
        raise ValueError(f"{path}: no model variables with prefix {prefix!r} found in the legacy snapshot")
    return state


def write_legacy_snapshot(
    state: Mapping[str, Any], path: str, prefix: str = "", zero_moments: bool = False, strict: bool = True
) -> str:
    """Write an HF-keyed state in the originals' layout: ``<prefix><name>/out`` + ``snapshot_done``.

    Linear kernels are written [in, out] as the originals stored them; every file is raw
    little-endian float32 with no shape record. Keys that start with ``student.`` are written with
    the ``student-`` prefix (on top of ``prefix``), ``teacher.`` keys without a prefix, matching the
    originals' distillation jobs. ``zero_moments`` also writes zero ``-m``/``-v`` moment folders,
    as the originals' converter did for training jobs. Keys with no legacy name raise ValueError
    (``strict``) or are left out. The directory is written to a temporary sibling and renamed.
    """
    entries = []
    unknown = []
    for key, value in state.items():
        local_prefix, bare = prefix, key
        if bare.startswith("student."):
            local_prefix, bare = prefix + STUDENT_PREFIX, bare[len("student.") :]
        elif bare.startswith("teacher."):
            bare = bare[len("teacher.") :]
        mapped = hf_to_legacy_name(bare)
        if mapped is None:
            unknown.append(key)
            continue
        name, transposed = mapped
        array = to_numpy(value).astype("<f4", copy=False)
        if transposed:
            if array.ndim != 2:
                raise ValueError(f"{key}: expected a 2-d Linear weight, got shape {array.shape}")
            array = array.T
        entries.append((local_prefix + name, np.ascontiguousarray(array)))
    if unknown and strict:
        raise ValueError(f"no legacy name for {len(unknown)} keys: {', '.join(unknown[:6])}")
    prepare_target(path)
    tmp = sibling(path, "tmp")
    try:
        os.makedirs(tmp)
        for name, array in entries:
            payloads = [(name, array)]
            if zero_moments:
                payloads += [(f"{name}-m", np.zeros_like(array)), (f"{name}-v", np.zeros_like(array))]
            for folder, data in payloads:
                os.makedirs(os.path.join(tmp, folder))
                with open(os.path.join(tmp, folder, "out"), "wb") as f:
                    f.write(data.tobytes())
        open(os.path.join(tmp, LEGACY_DONE), "wb").close()
        install_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path
