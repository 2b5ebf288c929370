"""The runtime set-up: quiet import, CPU defaults that yield to the user, nn.Graph training on CPU."""

import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_python(code: str, env_extra: dict | None = None, python: str = sys.executable):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GLOG_", "ONEFLOW_", "OPENBLAS_"))}
    env.update(env_extra or {})
    env["PYTHONPATH"] = ROOT
    return subprocess.run([python, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)


def test_import_prints_no_driver_noise():
    proc = run_python("import model_compress, oneflow; print('ok', oneflow.__version__)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok 0.9.0"
    assert proc.stderr.strip() == "", proc.stderr


def test_glog_default_applied_and_user_setting_wins():
    code = "import os, model_compress; print(os.environ['GLOG_minloglevel'])"
    assert run_python(code).stdout.split() == ["3"]
    assert run_python(code, {"GLOG_minloglevel": "2"}).stdout.split() == ["2"]


def test_entry_script_without_oneflow_gives_one_clear_line(tmp_path):
    # The machine's own python (3.11) has no oneflow: the entry script must say how to set up.
    host = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else None
    candidates = [p for p in (host, sys.base_prefix + "/bin/python3") if p and os.path.exists(p)]
    python = None
    for cand in candidates:
        probe = subprocess.run([cand, "-c", "import oneflow"], capture_output=True)
        if probe.returncode != 0:
            python = cand
            break
    if python is None:
        # Build a bare venv so there is certainly no oneflow in it.
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True)
        python = str(tmp_path / "bare" / "bin" / "python")
    script = os.path.join(ROOT, "model_compress", "distil", "task_teacher.py")
    proc = subprocess.run([python, script, "--help"], capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ.get("PATH", "")})
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 2 and "cannot import oneflow" in lines[0]
    assert "run_scripts/setup_env.sh" in lines[1]
    assert "Traceback" not in proc.stderr


def test_nn_graph_trains_tiny_model_on_cpu():
    import oneflow as flow

    from model_compress.training.graph import make_train_step
    from model_compress.training.optim import build_optimizer, build_scheduler

    class Objective(flow.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = flow.nn.Sequential(flow.nn.Linear(8, 16), flow.nn.GELU(), flow.nn.Linear(16, 2))

        def forward(self, x, y):
            logits = self.net(x)
            return flow.nn.functional.cross_entropy(logits, y), logits

    rs = np.random.RandomState(0)
    x = rs.randn(64, 8).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int64")
    flow.manual_seed(0)
    objective = Objective()
    optimizer = build_optimizer(objective, 1e-2)
    step = make_train_step(objective, optimizer, build_scheduler(optimizer, 60, 0.1))
    assert isinstance(step, flow.nn.Graph)
    losses = [float(step(flow.tensor(x), flow.tensor(y))[0].numpy()) for _ in range(60)]
    assert losses[-1] < 0.5 * losses[0]
