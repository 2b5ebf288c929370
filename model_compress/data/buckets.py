"""Length buckets: examples grouped by token count, each group's batches cut to its own bound.

A batch padded to ``seq_length`` computes its padding in every layer; sentences are mostly much shorter.
Here every example goes to the smallest bound holding its tokens (the count of ``input_mask``), batches
are formed within a bucket and sliced to that bound, and each bound runs its own static graph.

Epoch plan (``plan_batches``): the epoch's order of records (a seeded permutation in training) is split by
bucket keeping that order; each bucket is cut into full global batches, and its leftover rows move up to
the next larger bucket (a shorter row fits any larger bound), so only the top bucket can end with a
partial batch: an epoch has exactly as many batches as without buckets and visits the same records.
The batches' order is then shuffled (training) with the same seed on every rank, so all ranks of a
data-parallel run are in the same bucket at every step.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

AUTO = "auto"
DEFAULT_MAX_BUCKETS = 4
BOUND_MULTIPLE = 8  # bounds chosen from the data are multiples of this (or seq_length)


class BucketSpecError(ValueError):
    """A --length_buckets value that cannot be used."""


LengthBuckets = str | tuple[int, ...] | None  # AUTO, explicit bounds, or None (no buckets)


def parse_length_buckets(text: str) -> str | tuple[int, ...] | None:
    """``none`` -> None, ``auto`` -> AUTO, ``16,32,64`` -> (16, 32, 64) (sorted, unique, positive)."""
    value = text.strip().lower()
    if value in ("none", "off", ""):
        return None
    if value == AUTO:
        return AUTO
    try:
        bounds = sorted({int(part) for part in value.split(",") if part.strip()})
    except ValueError:
        raise BucketSpecError(f"--length_buckets {text!r}: expected 'auto', 'none' or comma-separated "
                              "token counts such as 16,32,64") from None
    if not bounds or bounds[0] < 1:
        raise BucketSpecError(f"--length_buckets {text!r}: bounds must be positive token counts")
    return tuple(bounds)


def token_lengths(input_mask: np.ndarray) -> np.ndarray:
    """Tokens per example: the count of ``input_mask`` ([N, seq_length] -> [N])."""
    return np.asarray(input_mask).astype(bool).sum(axis=1).astype(np.int64)


def choose_bounds(lengths: np.ndarray, seq_length: int, max_buckets: int = DEFAULT_MAX_BUCKETS,
                  multiple: int = BOUND_MULTIPLE) -> tuple[int, ...]:
    """Up to ``max_buckets`` bounds minimising the padded tokens of ``lengths``; the last is the longest
    length rounded up to ``multiple`` (at most ``seq_length``): no record needs more.

    Exact dynamic programme over candidate bounds (multiples of ``multiple`` and the top bound); a
    bucket that would stay empty is never chosen.
    """
    lengths = np.clip(np.asarray(lengths, dtype=np.int64), 1, seq_length)
    top_bound = min(seq_length, -(-int(lengths.max()) // multiple) * multiple)
    candidates = sorted({b for b in range(multiple, top_bound, multiple)} | {top_bound})
    counts = np.array([np.count_nonzero(lengths <= b) for b in candidates])  # rows fitting each bound
    n = len(candidates)
    top = n - 1
    # cost[k][j]: padded tokens of rows <= candidates[j] using k+1 bounds, the largest candidates[j]
    inf = float("inf")
    cost = np.full((max_buckets, n), inf)
    back = np.full((max_buckets, n), -1, dtype=np.int64)
    for j in range(n):
        cost[0, j] = counts[j] * candidates[j]
    for k in range(1, max_buckets):
        for j in range(n):
            for i in range(j):
                extra = (counts[j] - counts[i]) * candidates[j]
                if counts[j] == counts[i] or cost[k - 1, i] == inf:
                    continue
                if cost[k - 1, i] + extra < cost[k, j]:
                    cost[k, j], back[k, j] = cost[k - 1, i] + extra, i
    k = int(np.argmin(cost[:, top]))
    bounds, j = [], top
    while j >= 0 and k >= 0:
        bounds.append(candidates[j])
        j, k = int(back[k, j]), k - 1
    return tuple(sorted(bounds))


def resolve_bounds(spec: str | Sequence[int] | None, lengths: np.ndarray, seq_length: int) -> tuple[int, ...] | None:
    """The bounds in force: None (no buckets, or the one bound ``seq_length``), chosen from ``lengths``
    (AUTO), or the given ones capped at ``seq_length`` with ``seq_length`` itself added as the top bound."""
    if spec is None:
        return None
    if spec == AUTO:
        bounds = choose_bounds(lengths, seq_length)
    else:
        bounds = tuple(sorted({min(int(b), seq_length) for b in spec} | {seq_length}))
    return None if bounds == (seq_length,) else bounds


def bucket_ids(lengths: np.ndarray, bounds: Sequence[int]) -> np.ndarray:
    """Index of the smallest bound holding each length."""
    return np.searchsorted(np.asarray(bounds), np.asarray(lengths), side="left")


def plan_batches(
    order: np.ndarray, buckets: np.ndarray, num_buckets: int, batch_size: int, drop_last: bool,
    shuffle_seed: Sequence[int] | None,
) -> list[tuple[int, np.ndarray]]:
    """(bucket, record indices) per global batch of one epoch (see the module doc).

    ``order``: the epoch's records in visiting order; ``buckets``: bucket of every record of the split.
    ``shuffle_seed``: seed of the batch order (None keeps bucket order, for evaluation).
    """
    order = np.asarray(order, dtype=np.int64)
    of_order = buckets[order]
    batches: list[tuple[int, np.ndarray]] = []
    carry = np.zeros(0, dtype=np.int64)
    for bucket in range(num_buckets):
        rows = np.concatenate([carry, order[of_order == bucket]])
        full = len(rows) - len(rows) % batch_size
        batches.extend((bucket, rows[i:i + batch_size]) for i in range(0, full, batch_size))
        carry = rows[full:]
    if len(carry) and not drop_last:
        batches.append((num_buckets - 1, carry))
    if shuffle_seed is not None:
        picks = np.random.default_rng(list(shuffle_seed)).permutation(len(batches))
        batches = [batches[i] for i in picks]
    return batches


def describe(bounds: Sequence[int], buckets: np.ndarray, num_records: int) -> str:
    """One line naming the bounds and how many records each bucket holds."""
    counts = np.bincount(buckets, minlength=len(bounds))
    parts = [f"<={b}: {c}" for b, c in zip(bounds, counts)]
    return f"length buckets {','.join(map(str, bounds))} ({'; '.join(parts)} of {num_records} records)"
