"""A 2-process CPU run under OneFlow's own launcher trains data-parallel and writes one snapshot."""

import json
import os
import subprocess
import sys

from .conftest import REPO_ROOT


def test_two_process_teacher_run(tmp_path, tiny_model_dir, tiny_sst2_dir):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "oneflow.distributed.launch", "--nproc_per_node", "2",
           "--master_port", "29731", os.path.join(REPO_ROOT, "model_compress", "distil", "task_teacher.py"),
           "--task_name", "sst-2", "--data_dir", tiny_sst2_dir, "--model_load_dir", tiny_model_dir,
           "--model_save_dir", str(out), "--seq_length", "24", "--batch_size_per_device", "8",
           "--num_epochs", "2", "--learning_rate", "1e-3", "--do_train", "--do_eval"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(os.listdir(out)) == ["results_eval.json", "snapshot_best"]
    # 96 examples, 2 ranks x 8 per rank: 6 steps per epoch, 12 in all
    assert "| 12/12 [" in proc.stderr
    report = json.loads((out / "results_eval.json").read_text())
    assert report["num_examples"] == 48 and 0.0 <= report["accuracy"] <= 1.0
