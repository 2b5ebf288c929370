"""Atomic directory writes: build under a hidden sibling, then rename into place."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import uuid
from typing import Any

import numpy as np


def sibling(path: str, tag: str) -> str:
    """A hidden, unique sibling path of ``path`` (same directory, so a rename is atomic)."""
    parent, name = os.path.split(os.path.abspath(path))
    return os.path.join(parent, f".{name}.{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


_LEFTOVER = re.compile(r"^\..+\.(?:tmp|old)-(\d+)-[0-9a-f]{8}$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_leftovers(directory: str) -> list[str]:
    """Remove hidden ``.<name>.tmp-<pid>-*`` / ``.old-<pid>-*`` siblings left by killed processes.

    Only those whose process is gone are removed (a concurrent writer's are kept). Returns the paths.
    """
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        match = _LEFTOVER.match(name)
        if match and int(match.group(1)) != os.getpid() and not _alive(int(match.group(1))):
            path = os.path.join(directory, name)
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def prepare_target(path: str) -> None:
    """Refuse a non-directory at ``path``, create its parent and clean a killed writer's leftovers there."""
    if os.path.lexists(path) and not os.path.isdir(path):
        raise FileExistsError(f"{path} exists and is not a directory; refusing to replace it with a snapshot")
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    clean_leftovers(parent)


def retire_dir(path: str) -> None:
    """Delete a directory without ever showing it half-deleted: rename it aside (hidden), then remove."""
    if not os.path.isdir(path):
        return
    aside = sibling(path, "old")
    os.rename(path, aside)
    shutil.rmtree(aside, ignore_errors=True)


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
