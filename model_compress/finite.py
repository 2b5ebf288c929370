"""NaN and infinity refused in numbers read from users' files and from caches.

Python's ``float()`` accepts ``nan``, ``inf`` and ``Infinity``; a NaN teacher logit or sample weight then
trains silently into a NaN loss or a wrong model. Text readers parse with :func:`finite_float`; arrays
loaded from ``.npy`` files, caches and snapshots pass through :func:`require_finite`.
"""

from __future__ import annotations

import math

import numpy as np

# rows checked at a time, so a memory-mapped cache of several GB is never copied whole
_CHUNK_BYTES = 64 << 20


class NonFiniteError(ValueError):
    """A NaN or infinite value where a finite number is needed; the message says where."""


def finite_float(text: str) -> float:
    """``float(text)``, refusing NaN and infinity (ValueError for text that is no number at all)."""
    value = float(text)
    if not math.isfinite(value):
        raise NonFiniteError(f"{text.strip()!r} is not a finite number")
    return value


def first_non_finite(values: np.ndarray) -> tuple[int, ...] | None:
    """Index of the first NaN/inf entry of a float array (row-major order), or None; ints are finite."""
    array = np.asarray(values) if not isinstance(values, np.ndarray) else values
    if not np.issubdtype(array.dtype, np.floating) or array.size == 0:
        return None
    if array.ndim == 0:
        return None if np.isfinite(array) else ()
    row_bytes = max(1, array[0].nbytes)
    step = max(1, _CHUNK_BYTES // row_bytes)
    for start in range(0, len(array), step):
        bad = ~np.isfinite(array[start:start + step])
        if bad.any():
            index = np.unravel_index(int(np.argmax(bad)), bad.shape)
            return (start + int(index[0]),) + tuple(int(i) for i in index[1:])
    return None


def require_finite(values: np.ndarray, where: str, row_name: str = "row", first_row: int = 0) -> None:
    """Raise NonFiniteError naming ``where`` and the first bad entry's position when ``values`` holds NaN/inf.

    The first axis is reported as ``row_name`` counted from ``first_row`` (e.g. ``"line", 1`` for text
    files), the second as ``column`` (1-based), further axes as an index.
    """
    index = first_non_finite(values)
    if index is None:
        return
    value = float(np.asarray(values)[index])
    if not index:
        place = "the value"
    else:
        place = f"{row_name} {index[0] + first_row}"
        if len(index) >= 2:
            place += f", column {index[1] + 1}"
        if len(index) > 2:
            place += f", index {list(index[2:])}"
    raise NonFiniteError(f"{where}: {place} is {value} (NaN and infinity are not accepted)")
