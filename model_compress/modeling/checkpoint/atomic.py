"""Atomic directory writes: build under a hidden sibling, then rename into place."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import uuid
from typing import Any

import numpy as np


def sibling(path: str, tag: str) -> str:
    """A hidden, unique sibling path of ``path`` (same directory, so a rename is atomic)."""
    parent, name = os.path.split(os.path.abspath(path))
    return os.path.join(parent, f".{name}.{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def prepare_target(path: str) -> None:
    """Refuse a non-directory at ``path`` and create its parent directory."""
    if os.path.lexists(path) and not os.path.isdir(path):
        raise FileExistsError(f"{path} exists and is not a directory; refusing to replace it with a snapshot")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


def install_dir(tmp: str, path: str) -> None:
    """Move the finished directory ``tmp`` to ``path``, replacing an existing directory safely.

    The old directory is renamed aside first and deleted only after the new one is in place, so at
    every instant ``path`` is either the complete old snapshot or the complete new one.
    """
    if not os.path.lexists(path):
        os.rename(tmp, path)
        return
    old = sibling(path, "old")
    os.rename(path, old)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.rename(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def json_default(value: Any) -> Any:
    """``json.dump`` fallback for numpy scalars/arrays and dataclasses."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def write_json(path: str, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON with a final newline."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=json_default)
        f.write("\n")
