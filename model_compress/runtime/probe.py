"""The measurement behind the CPU runtime choice, run in a fresh process per candidate setting.

`tuning.py` starts ``python -m model_compress.runtime.probe`` with a candidate's environment; this module
times what decides the choice, a compiled nn.Graph training step of a 2-layer BERT at the default width
(batch 32, seq 64: the kernels, threads and scheduling of a real step), and, as diagnostics, a BERT-layer
op mix in eager mode (projections and FFN matmuls including the transposed products of the backward
pass, attention batch matmuls, softmax and GELU right after the matmuls, LayerNorm, mean-centring). It
checks the matmul against numpy and prints one JSON line.
"""

from __future__ import annotations

import json
import time

import numpy as np

TOKENS, HIDDEN, FFN, HEADS, SEQ = 2048, 384, 1536, 12, 64


def _best_of(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def matmul_error(flow) -> float:
    """Largest relative error of OneFlow's matmul (all transpose combinations) against numpy."""
    rs = np.random.RandomState(0)
    a, b = rs.randn(67, 45).astype(np.float32), rs.randn(45, 39).astype(np.float32)
    want = a.astype(np.float64) @ b.astype(np.float64)
    worst = 0.0
    for ta in (False, True):
        for tb in (False, True):
            x = flow.tensor(np.ascontiguousarray(a.T) if ta else a)
            y = flow.tensor(np.ascontiguousarray(b.T) if tb else b)
            got = flow.matmul(x, y, transpose_a=ta, transpose_b=tb).numpy()
            worst = max(worst, float(np.abs(got - want).max() / np.abs(want).max()))
    return worst


def graph_step_seconds(flow, layers: int = 2, batch: int = 32, steps: int = 5) -> float:
    """Median seconds of a compiled BERT training step (after two warm-up steps)."""
    from model_compress.modeling.bert import BertForSequenceClassification
    from model_compress.modeling.config import BertConfig
    from model_compress.training.graph import make_train_step
    from model_compress.training.objectives import ClassificationObjective
    from model_compress.training.optim import build_optimizer, build_scheduler

    config = BertConfig(hidden_size=HIDDEN, num_hidden_layers=layers, num_attention_heads=HEADS,
                        intermediate_size=FFN)
    objective = ClassificationObjective(BertForSequenceClassification(config))
    optimizer = build_optimizer(objective, 2e-5)
    step = make_train_step(objective, optimizer, build_scheduler(optimizer, 100))
    rs = np.random.RandomState(0)
    inputs = [flow.tensor(a) for a in (rs.randint(1000, 30000, (batch, SEQ)).astype(np.int32),
                                        np.ones((batch, SEQ), np.int32), np.zeros((batch, SEQ), np.int32),
                                        rs.randint(0, 2, (batch, 1)).astype(np.int32))]
    times = []
    for i in range(steps + 2):
        start = time.perf_counter()
        step(*inputs)[0].numpy()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def measure(repeats: int = 5) -> dict:
    """Time the op mix and its parts in this process (settings already applied by the runtime)."""
    import oneflow as flow

    flow.manual_seed(0)
    h = flow.randn(TOKENS, HIDDEN)
    w_proj, w_in, w_out = flow.randn(HIDDEN, HIDDEN), flow.randn(HIDDEN, FFN), flow.randn(FFN, HIDDEN)
    heads = TOKENS // SEQ * HEADS
    q = flow.randn(heads, SEQ, HIDDEN // HEADS)
    k = flow.randn(heads, SEQ, HIDDEN // HEADS)
    norm = flow.nn.LayerNorm(HIDDEN)

    def layer():
        for _ in range(4):
            flow.matmul(h, w_proj)
        scores = flow.matmul(q, k, transpose_b=True)
        context = flow.matmul(flow.softmax(scores, -1), k)
        inner = flow.nn.functional.gelu(flow.matmul(h, w_in))
        out = flow.matmul(inner, w_out)
        grad_w = flow.matmul(h, inner, transpose_a=True)  # weight-gradient shape of the backward pass
        grad_x = flow.matmul(inner, w_in, transpose_b=True)
        centred = out - out.mean(-1, keepdim=True)
        return norm(centred + grad_x).sum() + context.sum() + grad_w.sum()

    attention = flow.randn(32, HEADS, SEQ, SEQ)

    def softmax_after_gemm():  # an AVX kernel that leaves the upper registers dirty slows exp here
        flow.matmul(h, w_in)
        return flow.softmax(attention, -1)

    gemm = _best_of(lambda: flow.matmul(h, w_in).numpy(), repeats)
    x = flow.randn(32, SEQ, HIDDEN)
    return {
        "step_ms": graph_step_seconds(flow) * 1e3,
        "layer_ms": _best_of(lambda: layer().numpy(), repeats) * 1e3,
        "sgemm_gflops": 2 * TOKENS * HIDDEN * FFN / gemm / 1e9,
        "softmax_after_gemm_ms": _best_of(lambda: softmax_after_gemm().numpy(), repeats) * 1e3,
        "layernorm_ms": _best_of(lambda: norm(x).numpy(), repeats) * 1e3,
        "center_ms": _best_of(lambda: (x - x.mean(-1, keepdim=True)).numpy(), repeats) * 1e3,
        "matmul_rel_error": matmul_error(flow),
    }


def main() -> None:
    from model_compress.runtime import blas, require_oneflow

    require_oneflow()
    result = measure()
    result["routed"] = blas.routed()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
