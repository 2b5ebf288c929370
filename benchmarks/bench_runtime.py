"""Measure the CPU settings model_compress.runtime applies, each in a fresh process.

For every setting it runs the same micro-benchmarks with the variable on and off: sgemm throughput
(the matmul of a 2048x384 by 384x1536 product, BERT's FFN shape), `x - x.mean(-1, keepdim=True)` and
LayerNorm on a [32, 64, 384] tensor. Run: .venv/bin/python benchmarks/bench_runtime.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

PROBE = r"""
import json, time
import model_compress, oneflow as flow
def best(fn, n=20):
    fn(); times = []
    for _ in range(n):
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    return min(times)
a, b = flow.randn(2048, 384), flow.randn(384, 1536)
x = flow.randn(32, 64, 384)
ln = flow.nn.LayerNorm(384)
gemm = best(lambda: flow.matmul(a, b).numpy())
center = best(lambda: (x - x.mean(-1, keepdim=True)).numpy())
norm = best(lambda: ln(x).numpy())
print(json.dumps({"sgemm_gflops": 2 * 2048 * 384 * 1536 / gemm / 1e9, "center_ms": center * 1e3,
                  "layernorm_ms": norm * 1e3}))
"""


def run(env_changes: dict) -> dict:
    env = dict(os.environ)
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    env["PYTHONPATH"] = ROOT
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    cases = [
        ("defaults (model_compress.runtime)", {}),
        ("ONEFLOW_ENABLE_ONEDNN_OPTS=1", {"ONEFLOW_ENABLE_ONEDNN_OPTS": "1"}),
        ("OPENBLAS_CORETYPE unset (autodetect)", {"OPENBLAS_CORETYPE": ""}),
    ]
    print(f"{'setting':<40} {'sgemm GFLOP/s':>14} {'x-mean ms':>10} {'LayerNorm ms':>13}")
    for name, changes in cases:
        r = run(changes)
        print(f"{name:<40} {r['sgemm_gflops']:>14.1f} {r['center_ms']:>10.2f} {r['layernorm_ms']:>13.2f}")


if __name__ == "__main__":
    main()
