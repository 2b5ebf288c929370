"""The measurement behind the CPU runtime choice, run in a fresh process per candidate setting.

`runtime/tuning.py` starts ``python -m model_compress.commands.runtime_probe`` with a candidate's environment;
this module times what decides the choice, a compiled nn.Graph training step of a 2-layer BERT at the default width
(batch 32, seq 64: the kernels, threads and scheduling of a real step), and, as diagnostics, a BERT-layer
op mix in eager mode (projections and FFN matmuls including the transposed products of the backward
pass, attention batch matmuls, softmax and GELU right after the matmuls, LayerNorm, mean-centring). It
checks the matmul against numpy and prints one JSON line. With ``--step-only`` under
``oneflow.distributed.launch`` it times just the step, data parallel over the ranks (global batch 32), for
the choice of how many processes a training job runs.
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


def train_step_seconds(flow, layers: int = 2, batch: int = 32, seq: int = SEQ, steps: int = 5, *,
                       eager: bool = False, fused: bool = False, frozen: bool = False, device: str = "cpu",
                       amp: bool = False) -> float:
    """Median seconds of a BERT training step at the default width (after two warm-up steps).

    Under `oneflow.distributed.launch` the step is data parallel: each rank feeds batch / ranks rows of
    the same global batch.
    """
    from model_compress.modeling.bert import BertForSequenceClassification
    from model_compress.modeling.config import BertConfig
    from model_compress.training import distributed
    from model_compress.training.graph import make_train_step
    from model_compress.training.objectives import ClassificationObjective
    from model_compress.training.optim import build_optimizer, build_scheduler, freeze_word_embeddings

    config = BertConfig(hidden_size=HIDDEN, num_hidden_layers=layers, num_attention_heads=HEADS,
                        intermediate_size=FFN)
    flow.manual_seed(0)
    objective = distributed.setup_model(ClassificationObjective(BertForSequenceClassification(config)), device)
    if frozen:
        freeze_word_embeddings(objective)
    optimizer = build_optimizer(objective, 2e-5, fused=fused)
    step = make_train_step(objective, optimizer, build_scheduler(optimizer, 1000), eager=eager, amp=amp)
    local = batch // distributed.world_size()
    rs = np.random.RandomState(distributed.rank())
    inputs = [distributed.shard_batch_tensor(flow.tensor(a)) for a in (
        rs.randint(1000, 30000, (local, seq)).astype(np.int32), np.ones((local, seq), np.int32),
        np.zeros((local, seq), np.int32), rs.randint(0, 2, (local, 1)).astype(np.int32))]
    times = []
    for i in range(steps + 2):
        start = time.perf_counter()
        distributed.to_local_numpy(step(*inputs)[0])
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
        "step_ms": train_step_seconds(flow) * 1e3,
        "layer_ms": _best_of(lambda: layer().numpy(), repeats) * 1e3,
        "sgemm_gflops": 2 * TOKENS * HIDDEN * FFN / gemm / 1e9,
        "softmax_after_gemm_ms": _best_of(lambda: softmax_after_gemm().numpy(), repeats) * 1e3,
        "layernorm_ms": _best_of(lambda: norm(x).numpy(), repeats) * 1e3,
        "center_ms": _best_of(lambda: (x - x.mean(-1, keepdim=True)).numpy(), repeats) * 1e3,
        "matmul_rel_error": matmul_error(flow),
    }


def main() -> None:
    import sys

    from model_compress.runtime import blas, require_oneflow

    flow = require_oneflow()
    if "--step-only" in sys.argv[1:]:  # the rank-count measurement: only the step, printed by rank 0
        from model_compress.training import distributed

        step_ms = train_step_seconds(flow) * 1e3
        if distributed.rank() == 0:
            print(json.dumps({"step_ms": step_ms, "ranks": distributed.world_size()}), flush=True)
        return
    result = measure()
    result["routed"] = blas.routed()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
