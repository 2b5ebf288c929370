"""CPU runtime settings: the candidates for this CPU and the rule that picks one from measurements.

A setting says which BLAS runs OneFlow's matmuls (its bundled OpenBLAS with a given core type, or the
scipy-openblas32 library with N threads) and whether OneFlow's oneDNN paths are on. Which one is fastest
depends on the CPU (an AVX2 core type was right on one AMD machine and 1.55x slower on an Intel one), so
nothing here is chosen by vendor: `tuning.py` measures the candidates and `choose` keeps the fastest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

BUNDLED = "oneflow"  # OneFlow's own statically linked OpenBLAS
OPENBLAS = "openblas"  # scipy-openblas32, routed in by runtime.blas


@dataclass(frozen=True)
class RuntimeSetting:
    """One candidate: BLAS, its core type (bundled only; "" = its own detection), threads, oneDNN."""

    blas: str = BUNDLED
    coretype: str = ""
    threads: int = 1
    onednn: bool = False

    @property
    def name(self) -> str:
        if self.blas == BUNDLED:
            base = f"oneflow-openblas[{self.coretype or 'autodetect'}]"
        else:
            base = f"openblas-{self.threads}t"
        return base + ("+onednn" if self.onednn else "")

    def env(self) -> dict[str, str]:
        """Environment variables that select this setting in a fresh process."""
        return {
            "MODEL_COMPRESS_BLAS": self.blas,
            "MODEL_COMPRESS_BLAS_THREADS": str(self.threads),
            "OPENBLAS_CORETYPE": self.coretype,
            "ONEFLOW_ENABLE_ONEDNN_OPTS": "1" if self.onednn else "0",
        }

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> RuntimeSetting:
        return cls(**{k: data[k] for k in ("blas", "coretype", "threads", "onednn") if k in data})


BASELINE = RuntimeSetting()  # what OneFlow does by itself, minus its slow oneDNN element-wise paths


def blas_candidates(cpu_flags: set[str], vendor: str, cores: int, openblas_available: bool) -> list[RuntimeSetting]:
    """BLAS choices worth timing on a CPU with these flags (oneDNN off; it is tried on the winner)."""
    found = [BASELINE]
    if "avx2" in cpu_flags:
        found.append(RuntimeSetting(coretype="Haswell"))
        if "AMD" in vendor:
            found.append(RuntimeSetting(coretype="Zen"))
    if "avx512f" in cpu_flags:
        found.append(RuntimeSetting(coretype="SkylakeX"))
    if openblas_available:
        found.append(RuntimeSetting(blas=OPENBLAS, threads=max(1, cores)))
        if cores > 1:
            found.append(RuntimeSetting(blas=OPENBLAS, threads=1))
    return found


def with_onednn(setting: RuntimeSetting) -> RuntimeSetting:
    return RuntimeSetting(setting.blas, setting.coretype, setting.threads, True)


def choose(timings: dict, margin: float = 0.05, baseline=BASELINE):
    """The fastest option; the baseline is kept unless another beats it by more than `margin`.

    `timings` maps options (settings, or process counts with baseline 1) to a measured time (lower is
    better); failed measurements are absent. The margin keeps noise from replacing the plain option with
    something no faster.
    """
    if not timings:
        return baseline
    best = min(timings, key=timings.get)
    if baseline in timings and timings[best] > timings[baseline] * (1.0 - margin):
        return baseline
    return best


def rank_candidates(cores: int, batch: int = 32, most: int = 8) -> list[int]:
    """Processes per training job worth timing: 1, then powers of two up to the cores (at most `most`)
    that split the probe's batch evenly."""
    counts, n = [1], 2
    while n <= min(cores, most) and batch % n == 0:
        counts.append(n)
        n *= 2
    return counts


def threads_per_process(chosen_threads: int, cores: int, world_size: int) -> int:
    """BLAS threads for one process when `world_size` ranks may share this machine's cores."""
    if world_size <= 1:
        return max(1, chosen_threads)
    return max(1, min(chosen_threads, cores // min(world_size, cores)))
