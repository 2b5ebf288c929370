"""Throughput of several models measured interleaved, so that a busy machine slows them all alike.

Timing models one after another lets a burst of load from elsewhere land on one of them (two students
of identical shape once read 2.02x and 2.96x in one run). Here every round calls each model once on
the same batch, in an order that rotates from round to round; a model's figure is the median over the
rounds, and a speed-up is the median of the per-round ratios, so a round disturbed by load moves
both sides of its ratio or is outvoted.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Mapping


@dataclasses.dataclass
class Throughput:
    """Seconds per call of each model, round by round; ``rows`` samples per call."""

    rows: int
    seconds: dict[str, list[float]]

    @property
    def rounds(self) -> int:
        return len(next(iter(self.seconds.values())))

    def samples_per_second(self, name: str) -> float:
        """Median samples/s of ``name`` over the rounds."""
        return self.rows / statistics.median(self.seconds[name])

    def speedup(self, name: str, reference: str) -> float:
        """Median over rounds of (reference's time / name's time) within the same round."""
        pairs = zip(self.seconds[reference], self.seconds[name])
        return statistics.median(ref / max(own, 1e-12) for ref, own in pairs)


def interleaved_throughput(
    calls: Mapping[str, Callable[[], object]], rows: int, rounds: int = 7, warmup: int = 1
) -> Throughput:
    """Time every zero-argument ``calls[name]()`` (one batch of ``rows`` samples) ``rounds`` times.

    Each call runs ``warmup`` times first (graph compilation, allocator warm-up), outside the timing.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    names = list(calls)
    for name in names:
        for _ in range(warmup):
            calls[name]()
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            start = time.perf_counter()
            calls[name]()
            seconds[name].append(time.perf_counter() - start)
    return Throughput(rows, seconds)
