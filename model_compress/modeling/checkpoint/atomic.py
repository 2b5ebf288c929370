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
_RETIREMENT = re.compile(r"^\.retire-(\d+)-[0-9a-f]{8}\.json$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _dead_writer(match: re.Match | None) -> bool:
    return bool(match) and int(match.group(1)) != os.getpid() and not _alive(int(match.group(1)))


def clean_leftovers(directory: str) -> list[str]:
    """Remove hidden ``.<name>.tmp-<pid>-*`` / ``.old-<pid>-*`` siblings left by killed processes, and
    finish the retirements they had planned (see `plan_retirement`).

    Only those whose process is gone are touched (a concurrent writer's are kept). Returns the paths
    removed.
    """
    removed = []
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return removed
    for name in names:
        path = os.path.join(directory, name)
        if _dead_writer(_RETIREMENT.match(name)):
            removed += _resolve_retirement(path)
        elif _dead_writer(_LEFTOVER.match(name)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def plan_retirement(old: str, new: str) -> str:
    """Record, before `new` is written, that `old` goes once `new` is complete; return the plan's path.

    Replacing the best snapshot is "write new, then retire old": a process killed in between would
    leave both. The plan (a hidden ``.retire-<pid>-*.json`` beside `new`) lets the next writer in that
    folder finish the job: retire `old` if `new` exists (snapshots appear complete or not at all),
    otherwise keep `old`. `finish_retirement` does it in the normal case.
    """
    parent = os.path.dirname(os.path.abspath(new))
    os.makedirs(parent, exist_ok=True)
    plan = os.path.join(parent, f".retire-{os.getpid()}-{uuid.uuid4().hex[:8]}.json")
    tmp = plan + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"retire": os.path.abspath(old), "keep": os.path.abspath(new)}, f)
    os.replace(tmp, plan)
    return plan


def finish_retirement(plan: str) -> None:
    """Retire the planned directory (its replacement is in place) and drop the plan."""
    _resolve_retirement(plan)


def _resolve_retirement(plan: str) -> list[str]:
    try:
        with open(plan, encoding="utf-8") as f:
            spec = json.load(f)
        old, new = spec["retire"], spec["keep"]
    except (OSError, ValueError, KeyError, TypeError):
        old = new = None
    removed = []
    if old and new and old != new and os.path.isdir(new) and os.path.isdir(old):
        retire_dir(old)
        removed.append(old)
    if os.path.exists(plan):
        os.unlink(plan)
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
