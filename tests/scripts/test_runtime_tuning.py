"""CPU runtime choice: candidates per CPU, the choice rule on injected timings, the cache, and the
replacement sgemm routed into OneFlow (checked against numpy in fresh processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from model_compress.runtime import tuning
from model_compress.runtime.settings import (
    BASELINE,
    OPENBLAS,
    RuntimeSetting,
    blas_candidates,
    choose,
    rank_candidates,
    threads_per_process,
    with_onednn,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HASWELL = RuntimeSetting(coretype="Haswell")
SKYLAKEX = RuntimeSetting(coretype="SkylakeX")
OPENBLAS_2T = RuntimeSetting(blas=OPENBLAS, threads=2)
OPENBLAS_1T = RuntimeSetting(blas=OPENBLAS, threads=1)


def run_python(code: str, env_extra: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GLOG_", "ONEFLOW_", "OPENBLAS_", "MODEL_COMPRESS_"))}
    env.update(env_extra)
    env["PYTHONPATH"] = ROOT
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=180)


def test_candidates_follow_the_cpu_flags_not_the_vendor_name():
    plain = blas_candidates(set(), "GenuineIntel", 2, openblas_available=False)
    assert plain == [BASELINE]
    intel = blas_candidates({"avx2", "avx512f"}, "GenuineIntel", 2, openblas_available=True)
    assert intel == [BASELINE, HASWELL, SKYLAKEX, OPENBLAS_2T, OPENBLAS_1T]
    amd = blas_candidates({"avx2"}, "AuthenticAMD", 1, openblas_available=True)
    assert amd == [BASELINE, HASWELL, RuntimeSetting(coretype="Zen"), OPENBLAS_1T]


def test_choose_takes_the_fastest_but_keeps_the_baseline_within_noise():
    assert choose({BASELINE: 3.7, HASWELL: 6.0, OPENBLAS_2T: 2.0}) == OPENBLAS_2T
    assert choose({BASELINE: 1.00, OPENBLAS_2T: 0.97}) == BASELINE  # 3% is noise
    assert choose({BASELINE: 1.00, OPENBLAS_2T: 0.90}) == OPENBLAS_2T
    assert choose({HASWELL: 2.0, OPENBLAS_2T: 1.0}) == OPENBLAS_2T  # baseline failed to measure
    assert choose({}) == BASELINE
    # process counts: one process is the baseline
    assert choose({1: 1.00, 2: 0.97}, baseline=1) == 1
    assert choose({1: 1.00, 2: 0.80, 4: 0.85}, baseline=1) == 2


def test_process_counts_tried_are_powers_of_two_up_to_the_cores():
    assert rank_candidates(1) == [1]
    assert rank_candidates(2) == [1, 2]
    assert rank_candidates(3) == [1, 2]
    assert rank_candidates(64) == [1, 2, 4, 8]
    assert rank_candidates(8, batch=12) == [1, 2, 4]  # 8 would not split the batch


def test_threads_are_shared_between_ranks_on_one_machine():
    assert threads_per_process(2, cores=2, world_size=1) == 2
    assert threads_per_process(2, cores=2, world_size=2) == 1
    assert threads_per_process(8, cores=8, world_size=2) == 4
    assert threads_per_process(1, cores=8, world_size=4) == 1


def test_tune_with_injected_timings_interleaves_rounds_and_tries_onednn_on_the_winner(monkeypatch):
    monkeypatch.setattr(tuning.blas, "replacement_library", lambda: "/lib/x.so")
    step_ms = {BASELINE: [370.0, 360.0], HASWELL: [600.0, 590.0], SKYLAKEX: [620.0, 615.0],
                OPENBLAS_2T: [210.0, 150.0], OPENBLAS_1T: [260.0, 250.0], with_onednn(OPENBLAS_2T): [500.0, 480.0]}
    calls = []

    def fake_measure(setting):
        calls.append(setting)
        value = step_ms[setting][sum(1 for c in calls if c == setting) - 1]
        return {"step_ms": value, "layer_ms": 2 * value, "sgemm_gflops": 1.0, "softmax_after_gemm_ms": 1.0,
                "layernorm_ms": 1.0, "center_ms": 1.0, "matmul_rel_error": 0.0}

    rank_calls = []

    def fake_ranks(setting, ranks, cores):
        rank_calls.append((setting, ranks, cores))
        return {"step_ms": {1: 150.0, 2: 120.0}[ranks], "ranks": ranks}

    info = {"model": "Test CPU", "vendor": "GenuineIntel", "flags": ["avx2", "avx512f"], "cores": 2}
    entry = tuning.tune(info, measure=fake_measure, rounds=2, measure_ranks=fake_ranks)
    assert entry["chosen_name"] == "openblas-2t"
    # the winner is then timed as 1 and 2 processes, interleaved; 2 is kept (20% faster)
    assert rank_calls == [(OPENBLAS_2T, 1, 2), (OPENBLAS_2T, 2, 2)] * 2
    assert entry["ranks"] == 2 and [r["ranks"] for r in entry["rank_measurements"]] == [1, 2]
    assert RuntimeSetting.from_json(entry["chosen"]) == OPENBLAS_2T
    assert calls[:5] == calls[5:10] == [BASELINE, HASWELL, SKYLAKEX, OPENBLAS_2T, OPENBLAS_1T]  # interleaved
    assert calls[10:] == [with_onednn(OPENBLAS_2T)] * 2  # oneDNN only on the winner
    best = {row["name"]: row["step_ms"] for row in entry["measurements"]}
    assert best["openblas-2t"] == 150.0 and best["oneflow-openblas[autodetect]"] == 360.0


def test_tune_survives_failed_probes(monkeypatch):
    monkeypatch.setattr(tuning.blas, "replacement_library", lambda: None)
    info = {"model": "Test CPU", "vendor": "x", "flags": [], "cores": 1}
    entry = tuning.tune(info, measure=lambda setting: None)
    assert RuntimeSetting.from_json(entry["chosen"]) == BASELINE and entry["measurements"] == []
    assert entry["ranks"] == 1


def write_cache(path, setting: RuntimeSetting, ranks: int = 1) -> None:
    key = tuning.cpu_key(tuning.cpu_info())
    entry = {"cpu": "test", "cores": 2, "measured_at": "now", "chosen": setting.to_json(),
             "chosen_name": setting.name, "ranks": ranks,
             "rank_measurements": [{"ranks": 1, "step_ms": 0.5}, {"ranks": 2, "step_ms": 0.4}],
             "measurements": [{"setting": setting.to_json(), "name": setting.name, "step_ms": 0.5, "layer_ms": 1.0,
                               "sgemm_gflops": 2.0, "softmax_after_gemm_ms": 3.0, "layernorm_ms": 4.0,
                               "center_ms": 5.0, "matmul_rel_error": 0.0}]}
    tuning.write_cache_entry(str(path), key, entry)


SHOW = ("import os, model_compress; from model_compress.runtime import blas; "
        "print(os.environ['ONEFLOW_ENABLE_ONEDNN_OPTS'], os.environ.get('OPENBLAS_CORETYPE', '-'), "
        "blas.routed().get('threads', 0))")


def test_cached_choice_is_applied_and_user_variables_win(tmp_path):
    cache = tmp_path / "runtime.json"
    write_cache(cache, with_onednn(OPENBLAS_2T))
    env = {"MODEL_COMPRESS_RUNTIME_CACHE": str(cache)}
    assert run_python(SHOW, env).stdout.split() == ["1", "-", "2"]
    assert run_python(SHOW, {**env, "ONEFLOW_ENABLE_ONEDNN_OPTS": "0"}).stdout.split() == ["0", "-", "2"]
    assert run_python(SHOW, {**env, "MODEL_COMPRESS_BLAS_THREADS": "1"}).stdout.split() == ["1", "-", "1"]
    # MODEL_COMPRESS_BLAS set by the user: no cache lookup, OneFlow's own BLAS with the given core type.
    own = run_python(SHOW, {**env, "MODEL_COMPRESS_BLAS": "oneflow", "OPENBLAS_CORETYPE": "Haswell"})
    assert own.stdout.split() == ["0", "Haswell", "0"]
    write_cache(cache, HASWELL)
    assert run_python(SHOW, env).stdout.split() == ["0", "Haswell", "0"]


def test_report_prints_the_choice_and_its_measurements(tmp_path):
    cache = tmp_path / "runtime.json"
    write_cache(cache, OPENBLAS_2T)
    proc = run_python("import runpy; runpy.run_module('model_compress.runtime', run_name='__main__')",
                      {"MODEL_COMPRESS_RUNTIME_CACHE": str(cache)})
    assert proc.returncode == 0, proc.stderr
    assert "chosen: openblas-2t" in proc.stdout
    rows = proc.stdout.splitlines()
    assert "openblas-2t" in rows[-4] and rows[-4].endswith("*")
    assert "as 1 data-parallel" in rows[-3] and rows[-3].endswith("*")  # the cache says 1 process
    assert "as 2 data-parallel" in rows[-2] and not rows[-2].endswith("*")


PLAN = 'source run_scripts/common.sh; plan_ranks "$@"; echo "$RANKS $RANK_BATCH"'


def plan(args: list[str], env_extra: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODEL_COMPRESS_", "NPROC", "DEVICE"))}
    env.update(env_extra)
    return subprocess.run(["bash", "-c", PLAN, "plan", *args], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=120)


def test_run_scripts_launch_the_measured_number_of_processes_and_keep_the_global_batch(tmp_path):
    cache = tmp_path / "runtime.json"
    write_cache(cache, OPENBLAS_1T, ranks=2)
    env = {"MODEL_COMPRESS_RUNTIME_CACHE": str(cache)}
    assert plan(["32"], env).stdout.split() == ["2", "16"]
    assert plan(["32", "--device", "cuda"], env).stdout.split() == ["1", "32"]  # GPU: one process
    assert plan(["32"], {**env, "NPROC": "4"}).stdout.split() == ["4", "8"]
    odd = plan(["33"], env)  # auto falls back to one process, saying so
    assert odd.stdout.split() == ["1", "33"] and "does not split" in odd.stderr
    for bad in ("3", "two"):  # an explicit count that cannot work is refused
        proc = plan(["32"], {**env, "NPROC": bad})
        assert proc.returncode == 2 and proc.stderr.startswith("error: ") and len(proc.stderr.splitlines()) == 1
    write_cache(cache, OPENBLAS_1T, ranks=1)
    assert plan(["32"], env).stdout.split() == ["1", "32"]


def test_an_entry_without_process_counts_gets_them_measured_once(tmp_path, monkeypatch):
    """Entries written before process counts were measured stay valid; the count is measured on first ask."""
    cache = tmp_path / "runtime.json"
    write_cache(cache, OPENBLAS_1T)
    key = tuning.cpu_key(tuning.cpu_info())
    entry = tuning.read_cache(str(cache))[key]
    del entry["ranks"], entry["rank_measurements"]
    tuning.write_cache_entry(str(cache), key, entry)
    monkeypatch.setenv("MODEL_COMPRESS_RUNTIME_CACHE", str(cache))
    calls = []

    def fake_ranks(setting, ranks, cores):
        calls.append(ranks)
        return {"step_ms": 100.0 / ranks}

    monkeypatch.setattr(tuning, "rank_candidates", lambda cores: [1, 2])
    assert tuning.chosen_ranks(measure_ranks=fake_ranks) == 2
    assert calls == [1, 2, 1, 2]  # two interleaved rounds
    assert tuning.chosen_ranks(measure_ranks=fake_ranks) == 2 and len(calls) == 4  # cached now
    assert tuning.read_cache(str(cache))[key]["chosen_name"] == OPENBLAS_1T.name  # the rest kept


@pytest.mark.parametrize("blas_name", ["openblas", "oneflow"])
def test_matmuls_agree_with_numpy_whichever_blas_runs_them(blas_name):
    code = """
import json
import numpy as np
import model_compress, oneflow as flow
from model_compress.runtime import blas
from model_compress.commands.runtime_probe import matmul_error
rs = np.random.RandomState(1)
a, b = rs.randn(6, 33, 17).astype(np.float32), rs.randn(6, 17, 29).astype(np.float32)
batched = flow.matmul(flow.tensor(a), flow.tensor(b)).numpy()
lin = flow.nn.Linear(17, 5)
x = flow.tensor(a[0], requires_grad=True)
lin(x).sum().backward()
grad_want = lin.weight.numpy().sum(0)[None, :].repeat(33, 0)
print(json.dumps({"routed": blas.routed().get("core", ""), "plain": matmul_error(flow),
                  "batched": float(np.abs(batched - a @ b).max()),
                  "grad": float(np.abs(x.grad.numpy() - grad_want).max())}))
"""
    proc = run_python(code, {"MODEL_COMPRESS_BLAS": blas_name})
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (result["routed"] != "") == (blas_name == "openblas")
    assert result["plain"] < 1e-5 and result["batched"] < 1e-4 and result["grad"] < 1e-5
