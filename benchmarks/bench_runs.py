"""What the quality benchmarks share: running entry scripts to a log (as data-parallel ranks when asked),
reading their results, and mean +- std tables over seeds."""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from model_compress.files import write_json_atomic  # noqa: E402


def script_path(*parts: str) -> str:
    return os.path.join(REPO, "model_compress", *parts)


def python_command(script: str, flags: list[str], ranks: int = 1) -> list[str]:
    """The command running an entry script in this Python, under OneFlow's launcher when ranks > 1."""
    if ranks <= 1:
        return [sys.executable, script, *flags]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return [sys.executable, "-m", "model_compress.launch", "--nproc_per_node", str(ranks),
            "--master_port", str(port), script, *flags]


def run_logged(command: list[str], log: str, name: str) -> float:
    """Run a command to completion with its output in `log`; its wall time, or exit naming the run and log."""
    os.makedirs(os.path.dirname(log) or ".", exist_ok=True)
    start = time.perf_counter()
    with open(log, "w") as out:
        done = subprocess.run(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        raise SystemExit(f"{name} failed (exit {done.returncode}); see {log}")
    return time.perf_counter() - start


def read_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def write_json(path: str, data: dict) -> None:
    """Write atomically: a crash never leaves a half-written record that a resumed run would trust."""
    write_json_atomic(path, data)


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
