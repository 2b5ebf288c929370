"""Measure the candidate CPU settings once per machine and remember the fastest, keyed by CPU model.

The cache is a small JSON file (``$MODEL_COMPRESS_RUNTIME_CACHE``, else ``<venv>/model_compress_runtime.json``,
else ``~/.cache/model_compress/runtime.json``) holding, per CPU, the chosen setting and every figure
measured. ``python -m model_compress.runtime --report`` prints it; ``--probe`` measures again.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from model_compress.files import write_json_atomic
from model_compress.runtime import blas
from model_compress.runtime.settings import (
    RuntimeSetting,
    blas_candidates,
    choose,
    rank_candidates,
    threads_per_process,
    with_onednn,
)

_measured_here: list[str] = []  # cache keys this process has measured (so --probe does not measure twice)
PROBE_FLAG = "MODEL_COMPRESS_RUNTIME_PROBE"  # set in probe processes: take settings from the environment
METRIC = "step_ms"  # what the choice minimises: a compiled training step (probe.train_step_seconds)
CACHE_VERSION = 2  # entries gained optional keys (ranks) without a new version
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cpu_info() -> dict:
    """Model name, vendor, flags and core count of this machine (from /proc/cpuinfo)."""
    info = {"model": "unknown", "vendor": "unknown", "flags": [], "cores": os.cpu_count() or 1}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "model name" and info["model"] == "unknown":
                    info["model"] = value
                elif key == "vendor_id" and info["vendor"] == "unknown":
                    info["vendor"] = value
                elif key == "flags" and not info["flags"]:
                    info["flags"] = value.split()
    except OSError:
        pass
    if hasattr(os, "sched_getaffinity"):
        info["cores"] = len(os.sched_getaffinity(0))
    return info


def cpu_key(info: dict) -> str:
    """Cache key: the CPU model plus a digest of its flags and core count (same name, other VM shape)."""
    digest = hashlib.sha256((" ".join(sorted(info["flags"])) + f" cores={info['cores']}").encode()).hexdigest()
    return f"{info['model']} [{digest[:12]}]"


def cache_path() -> str:
    explicit = os.environ.get("MODEL_COMPRESS_RUNTIME_CACHE")
    if explicit:
        return explicit
    if sys.prefix != sys.base_prefix and os.access(sys.prefix, os.W_OK):
        return os.path.join(sys.prefix, "model_compress_runtime.json")
    return os.path.join(os.path.expanduser("~"), ".cache", "model_compress", "runtime.json")


def read_cache(path: str) -> dict:
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data.get("entries", {}) if data.get("version") == CACHE_VERSION else {}


def write_cache_entry(path: str, key: str, entry: dict) -> None:
    entries = read_cache(path)
    entries[key] = entry
    write_json_atomic(path, {"version": CACHE_VERSION, "entries": entries}, indent=1)


def _probe_env(setting: RuntimeSetting) -> dict[str, str]:
    env = dict(os.environ)
    env.update(setting.env())
    env[PROBE_FLAG] = "1"
    env["PYTHONPATH"] = PACKAGE_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run_json(cmd: list[str], env: dict[str, str], name: str, timeout: float) -> dict | None:
    """Run a probe command; its last stdout line as JSON, or None (with the reason on stderr)."""
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        sys.stderr.write(f"model_compress: probe {name} timed out\n")
        return None
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        reason = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        sys.stderr.write(f"model_compress: probe {name} failed: {reason}\n")
        return None
    return json.loads(lines[-1])


def run_probe(setting: RuntimeSetting, timeout: float = 300) -> dict | None:
    """Measure one setting in a fresh process; None (with the reason on stderr) when it fails."""
    result = _run_json([sys.executable, "-m", "model_compress.commands.runtime_probe"], _probe_env(setting),
                       setting.name, timeout)
    if result is not None and result["matmul_rel_error"] > 1e-4:
        sys.stderr.write(f"model_compress: probe {setting.name} gave wrong matmul results; not used\n")
        return None
    return result


def free_port() -> int:
    """A TCP port nobody listens on now (for a launcher's master)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_ranks_probe(setting: RuntimeSetting, ranks: int, cores: int, timeout: float = 300) -> dict | None:
    """Time the training step as `ranks` data-parallel processes (the launcher) sharing the cores."""
    env = _probe_env(setting)
    env["MODEL_COMPRESS_BLAS_THREADS"] = str(threads_per_process(setting.threads, cores, ranks))
    probe = ["-m", "model_compress.commands.runtime_probe", "--step-only"]
    cmd = [sys.executable, *probe] if ranks == 1 else [
        sys.executable, "-m", "oneflow.distributed.launch", "--nproc_per_node", str(ranks),
        "--master_port", str(free_port()), *probe]
    return _run_json(cmd, env, f"{setting.name} x{ranks} processes", timeout)


def _measure_rounds(settings: list, measure: Callable[[Any], dict | None], rounds: int) -> dict:
    """Measure each option `rounds` times, interleaved, keeping each one's fastest result.

    Interleaving spreads a passing load over all candidates instead of penalising whichever ran then.
    """
    best: dict[RuntimeSetting, dict] = {}
    for _ in range(rounds):
        for setting in settings:
            result = measure(setting)
            if result is not None and (setting not in best or result[METRIC] < best[setting][METRIC]):
                best[setting] = result
    return best


def tune(info: dict, measure: Callable[[RuntimeSetting], dict | None] = run_probe,
         log: Callable[[str], None] = lambda line: None, rounds: int = 2,
         measure_ranks: Callable[[RuntimeSetting, int, int], dict | None] = run_ranks_probe) -> dict:
    """Time the BLAS candidates, then the winner with oneDNN on, then the winner as 1, 2, ... processes
    of one data-parallel job; return the cache entry to store."""
    candidates = blas_candidates(set(info["flags"]), info["vendor"], info["cores"],
                                 blas.replacement_library() is not None)
    measured = _measure_rounds(candidates, measure, rounds)
    onednn = with_onednn(choose({s: r[METRIC] for s, r in measured.items()}))
    measured.update(_measure_rounds([onednn], measure, rounds))
    for setting, result in measured.items():
        log(f"{setting.name:34s} step {result[METRIC]:8.1f} ms  op mix {result['layer_ms']:7.1f} ms  "
            f"sgemm {result['sgemm_gflops']:6.1f} GFLOP/s")
    chosen = choose({s: r[METRIC] for s, r in measured.items()})
    entry = {
        "cpu": info["model"],
        "cores": info["cores"],
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "chosen": chosen.to_json(),
        "chosen_name": chosen.name,
        "measurements": [{"setting": s.to_json(), "name": s.name, **r} for s, r in measured.items()],
    }
    if measured:
        entry.update(tune_ranks(chosen, info, measure_ranks, log, rounds))
    else:
        entry.update({"ranks": 1, "rank_measurements": []})
    return entry


def tune_ranks(chosen: RuntimeSetting, info: dict,
               measure_ranks: Callable[[RuntimeSetting, int, int], dict | None] = run_ranks_probe,
               log: Callable[[str], None] = lambda line: None, rounds: int = 2) -> dict:
    """Time the chosen setting as 1, 2, 4, ... data-parallel processes of one job: the cache entry's
    ``ranks`` (the count kept) and ``rank_measurements``."""
    counts = rank_candidates(info["cores"])
    by_ranks = _measure_rounds(counts, lambda n: measure_ranks(chosen, n, info["cores"]), rounds) \
        if len(counts) > 1 else {}
    for ranks, result in sorted(by_ranks.items()):
        log(f"{chosen.name} as {ranks} process(es) of one job: step {result[METRIC]:8.1f} ms")
    return {"ranks": choose({n: r[METRIC] for n, r in by_ranks.items()}, baseline=1),
            "rank_measurements": [{"ranks": n, METRIC: r[METRIC]} for n, r in sorted(by_ranks.items())]}


def measured_in_this_process() -> bool:
    return cpu_key(cpu_info()) in _measured_here


def chosen_setting(force: bool = False, log: Callable[[str], None] | None = None) -> RuntimeSetting:
    """This machine's setting: from the cache, else measured now (once; concurrent callers wait)."""
    info = cpu_info()
    key, path = cpu_key(info), cache_path()
    if not force and key in read_cache(path):
        return RuntimeSetting.from_json(read_cache(path)[key]["chosen"])
    if log is None:
        sys.stderr.write(f"model_compress: measuring CPU runtime settings for {info['model']} "
                         f"(once per machine, about four minutes; cached in {path})\n")
        log = lambda line: None  # noqa: E731
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and key in read_cache(path):  # another process measured while we waited
            return RuntimeSetting.from_json(read_cache(path)[key]["chosen"])
        entry = tune(info, log=log)
        if entry["measurements"]:  # never remember a choice that nothing was measured for
            write_cache_entry(path, key, entry)
            _measured_here.append(key)
    return RuntimeSetting.from_json(entry["chosen"])


def chosen_ranks(measure_ranks: Callable[[RuntimeSetting, int, int], dict | None] | None = None) -> int:
    """Processes one CPU training job should run here: the count measured fastest (1 if unmeasured).

    A cache entry written before process counts were measured gets them measured now, once.
    """
    info = cpu_info()
    key, path = cpu_key(info), cache_path()
    entry = read_cache(path).get(key)
    if entry is None:
        return 1
    if "ranks" not in entry:
        sys.stderr.write("model_compress: measuring how many processes a training job should run here "
                         f"(once per machine, about a minute; cached in {path})\n")
        with open(path + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            entry = read_cache(path).get(key, entry)
            if "ranks" not in entry:
                entry.update(tune_ranks(RuntimeSetting.from_json(entry["chosen"]), info,
                                        measure_ranks or run_ranks_probe))
                write_cache_entry(path, key, entry)
    return int(entry["ranks"])
