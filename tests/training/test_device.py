"""Device paths: a training job, a fused-optimizer graph step and AMP on the device named by MC_TEST_DEVICE.

CPU by default (as CI runs it); `benchmarks/gpu_check.sh` runs this file with MC_TEST_DEVICE=cuda on a GPU
machine. On a machine without a GPU, asking for one ends in one line, from the jobs and from gpu_check.sh.
"""

import json
import os
import subprocess
import sys

import numpy as np

from tests.conftest import REPO_ROOT
from tests.support import assert_matches_reference

DEVICE = os.environ.get("MC_TEST_DEVICE", "cpu")


def test_teacher_job_trains_and_evaluates_on_the_device(tmp_path, tiny_model_dir, tiny_sst2_dir):
    out = tmp_path / "out"
    cmd = [sys.executable, os.path.join(REPO_ROOT, "model_compress", "distil", "task_teacher.py"),
           "--task_name", "sst-2", "--data_dir", tiny_sst2_dir, "--model_load_dir", tiny_model_dir,
           "--model_save_dir", str(out), "--seq_length", "24", "--batch_size_per_device", "16",
           "--num_epochs", "2", "--learning_rate", "1e-3", "--device", DEVICE, "--do_train", "--do_eval"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "results_eval.json").read_text())
    assert_matches_reference(report, str(out / "snapshot_best"), tiny_sst2_dir, 24)


def test_graph_step_with_the_device_optimizer_and_amp_lowers_the_loss():
    import oneflow as flow

    from model_compress.training.graph import make_train_step
    from model_compress.training.optim import build_optimizer, build_scheduler

    class Objective(flow.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = flow.nn.Sequential(flow.nn.Linear(8, 32), flow.nn.GELU(), flow.nn.Linear(32, 2))

        def forward(self, x, y):
            logits = self.net(x)
            return flow.nn.functional.cross_entropy(logits, y), logits

    cuda = DEVICE.startswith("cuda")
    rs = np.random.RandomState(0)
    x = rs.randn(64, 8).astype("float32")
    y = (x[:, 0] - x[:, 2] > 0).astype("int64")
    flow.manual_seed(0)
    objective = Objective().to(DEVICE)
    optimizer = build_optimizer(objective, 1e-2, fused=cuda)  # the fused AdamW kernel is CUDA-only
    step = make_train_step(objective, optimizer, build_scheduler(optimizer, 80, 0.1), amp=cuda)
    inputs = (flow.tensor(x, device=DEVICE), flow.tensor(y, device=DEVICE))
    losses = [float(step(*inputs)[0].numpy()) for _ in range(80)]
    assert np.isfinite(losses).all() and losses[-1] < 0.5 * losses[0]


def test_gpu_check_says_in_one_line_when_there_is_no_gpu(tmp_path):
    import oneflow as flow

    if flow.cuda.is_available():  # on a GPU machine the check must pass instead
        proc = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "benchmarks", "gpu_probe.py")],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0 and proc.stdout.startswith("[gpu_check] OK"), proc.stdout + proc.stderr
        return
    proc = subprocess.run(["bash", os.path.join(REPO_ROOT, "benchmarks", "gpu_check.sh")], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "OUT": str(tmp_path / "gpu_check")})
    assert proc.returncode == 1
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("[gpu_check] FAILED: OneFlow 0.9.0 sees no CUDA device")
    assert "Traceback" not in proc.stdout + proc.stderr
