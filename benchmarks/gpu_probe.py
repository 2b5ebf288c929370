"""One-line GPU readiness check for OneFlow: device, driver, compute capability, a CUDA op, an nn.Graph step.

Exit 0 and one `[gpu_check] OK ...` line when a CUDA tensor op and a compiled training step both run;
exit 1 and one `[gpu_check] FAILED ...` line otherwise. `benchmarks/gpu_check.sh` runs it first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from model_compress.runtime import require_oneflow  # noqa: E402


def nvidia_smi() -> str:
    """'name, driver, compute capability' of each GPU as nvidia-smi reports them, or why not."""
    if shutil.which("nvidia-smi") is None:
        return "nvidia-smi not found"
    proc = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,compute_cap", "--format=csv,noheader"],
                          capture_output=True, text=True)
    lines = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    return "; ".join(lines) if proc.returncode == 0 and lines else (proc.stderr.strip() or "nvidia-smi failed")


def graph_step(flow) -> float:
    """One compiled training step of a small MLP on the GPU (fused AdamW); returns its loss."""
    from model_compress.training.graph import make_train_step
    from model_compress.training.optim import build_optimizer

    class Objective(flow.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = flow.nn.Sequential(flow.nn.Linear(64, 64), flow.nn.GELU(), flow.nn.Linear(64, 2))

        def forward(self, x, y):
            logits = self.net(x)
            return flow.nn.functional.cross_entropy(logits, y), logits

    objective = Objective().to("cuda")
    step = make_train_step(objective, build_optimizer(objective, 1e-3, fused=True))
    x = flow.randn(32, 64, device="cuda")
    y = flow.zeros(32, dtype=flow.int64, device="cuda")
    return float(step(x, y)[0].numpy())


def main() -> None:
    smi = nvidia_smi()
    flow = require_oneflow()
    if not flow.cuda.is_available():
        print(f"[gpu_check] FAILED: OneFlow {flow.__version__} sees no CUDA device (nvidia-smi: {smi})")
        raise SystemExit(1)
    try:
        total = float((flow.ones(1024, device="cuda") * 2).sum().numpy())
        assert total == 2048.0, f"wrong CUDA result {total}"
        loss = graph_step(flow)
    except Exception as exc:  # one line whatever OneFlow raised (e.g. no kernel image for this architecture)
        message = " ".join(str(exc).split())[:300]
        print(f"[gpu_check] FAILED: {type(exc).__name__}: {message} (nvidia-smi: {smi})")
        raise SystemExit(1) from None
    print(f"[gpu_check] OK: {flow.cuda.device_count()} device(s) [{smi}], OneFlow {flow.__version__}: "
          f"CUDA op and nn.Graph step (fused AdamW, loss {loss:.3f}) run")


if __name__ == "__main__":
    main()
