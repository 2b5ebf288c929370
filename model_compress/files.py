"""Files written so that a reader never sees half of one: every write goes to a temporary sibling first and
is renamed into place only when complete (an error or a kill leaves the old file, or none)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from typing import IO, Any


def temporary_sibling(path: str) -> str:
    """A fresh hidden name beside ``path`` (same directory, so the final rename is atomic)."""
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f".{name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w", encoding: str | None = "utf-8", newline: str | None = None,
                fsync: bool = False) -> Iterator[IO[Any]]:
    """``open`` for writing that installs ``path`` only when the block ends without an error (parents are
    created); ``fsync`` also flushes the bytes to disk before the rename."""
    if "w" not in mode:
        raise ValueError(f"atomic_open writes a whole file: mode {mode!r} has no 'w'")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": encoding, "newline": newline})) as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: str, text: str) -> None:
    """``text`` as the whole of ``path``."""
    with atomic_open(path) as f:
        f.write(text)


def write_json_atomic(path: str, obj: Any, indent: int | None = 2, sort_keys: bool = True, default=None) -> None:
    """``obj`` as JSON (indented, keys sorted, a final newline) as the whole of ``path``."""
    with atomic_open(path) as f:
        json.dump(obj, f, indent=indent, sort_keys=sort_keys, default=default)
        f.write("\n")


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
