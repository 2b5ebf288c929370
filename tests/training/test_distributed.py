"""A 2-process CPU run under OneFlow's own launcher trains data-parallel, evaluates split over the ranks
(the same metrics as one process) and writes one snapshot."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT
from tests.support import assert_matches_reference


def test_two_process_teacher_run(tmp_path, tiny_model_dir, tiny_sst2_dir):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "oneflow.distributed.launch", "--nproc_per_node", "2",
           "--master_port", "29731", os.path.join(REPO_ROOT, "model_compress", "distil", "task_teacher.py"),
           "--task_name", "sst-2", "--data_dir", tiny_sst2_dir, "--model_load_dir", tiny_model_dir,
           "--model_save_dir", str(out), "--seq_length", "24", "--batch_size_per_device", "8",
           "--num_epochs", "2", "--learning_rate", "1e-3", "--eval_batch_size_per_device", "7",
           "--do_train", "--do_eval"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(os.listdir(out)) == ["results_eval.json", "snapshot_best"]
    # 96 examples, 2 ranks x 8 per rank: 6 steps per epoch, 12 in all
    assert "| 12/12 [" in proc.stderr
    report = json.loads((out / "results_eval.json").read_text())
    assert_matches_reference(report, str(out / "snapshot_best"), tiny_sst2_dir, 24)
    # the same snapshot evaluated by one process: each rank evaluated half of every (padded) batch of 7
    alone = tmp_path / "alone"
    single = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "model_compress", "distil", "task_teacher.py"),
                             "--task_name", "sst-2", "--data_dir", tiny_sst2_dir, "--model_load_dir",
                             str(out / "snapshot_best"), "--model_save_dir", str(alone), "--seq_length", "24",
                             "--do_eval"], capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    assert single.returncode == 0, single.stderr[-3000:]
    again = json.loads((alone / "results_eval.json").read_text())
    for metric in ("num_examples", "accuracy", "f1", "mcc"):
        assert again[metric] == pytest.approx(report[metric], abs=1e-9), metric


@pytest.fixture()
def two_hosts():
    """Two network namespaces joined by a veth pair: two "machines" (10.77.x.1 and .2) on this host.

    OneFlow 0.9 tells machines apart by address: two nodes both at 127.0.0.1 wait for each other forever.
    """
    tag = f"{os.getpid() % 100000}"
    names = [f"mc{tag}a", f"mc{tag}b"]
    subnet = f"10.77.{os.getpid() % 250}"
    commands = [
        ["ip", "netns", "add", names[0]], ["ip", "netns", "add", names[1]],
        ["ip", "link", "add", f"v{tag}a", "netns", names[0], "type", "veth", "peer", "name", f"v{tag}b",
         "netns", names[1]],
    ]
    for index, name in enumerate(names):
        commands += [["ip", "-n", name, "addr", "add", f"{subnet}.{index + 1}/24", "dev", f"v{tag}{'ab'[index]}"],
                     ["ip", "-n", name, "link", "set", f"v{tag}{'ab'[index]}", "up"],
                     ["ip", "-n", name, "link", "set", "lo", "up"]]
    try:
        for command in commands:
            proc = subprocess.run(command, capture_output=True, text=True)
            assert proc.returncode == 0, f"{' '.join(command)}: {proc.stderr.strip()} (needs root and iproute2)"
        yield names, f"{subnet}.1"
    finally:
        for name in names:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_two_nodes_agree(tmp_path, two_hosts):
    """The multi-machine form of the launcher (--nnodes 2 --node_rank 0|1), one node per namespace."""
    names, master = two_hosts
    driver = os.path.join(REPO_ROOT, "tests", "two_node_train.py")
    procs = [
        subprocess.Popen(["ip", "netns", "exec", names[node], sys.executable, "-m", "oneflow.distributed.launch",
                          "--nnodes", "2", "--node_rank", str(node), "--nproc_per_node", "1",
                          "--master_addr", master, "--master_port", "29733", driver, str(tmp_path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for node in (0, 1)
    ]
    try:
        for proc in procs:
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err[-3000:]
    finally:
        for proc in procs:
            proc.kill()
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in reports] == [2, 2]
    assert reports[0]["losses"] == reports[1]["losses"]  # one global loss per step
    assert reports[0]["params"] == reports[1]["params"]  # the same model on both nodes
    assert reports[0]["losses"][-1] < 0.8 * reports[0]["losses"][0]


def test_run_script_launches_ranks_with_the_global_batch_split(tmp_path):
    """run_train_teacher.sh with NPROC=2: two processes of BATCH/2 rows, one snapshot, dev results."""
    shutil.copytree(os.path.join(REPO_ROOT, "data", "glue_data", "SST-2"), tmp_path / "glue" / "SST-2")
    env = {**os.environ, "NPROC": "2", "BATCH": "16", "EPOCHS": "1", "SEQ_LENGTH": "16",
           "TEACHER_DIR": str(tmp_path / "teacher"), "DATA_ROOT": str(tmp_path / "glue")}
    proc = subprocess.run(["bash", "run_scripts/run_train_teacher.sh", "--train_example_num", "64",
                           "--eval_example_num", "32"], capture_output=True, text=True, timeout=600, cwd=REPO_ROOT,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "as 2 data-parallel processes of 8 rows each" in proc.stdout
    assert "| 4/4 [" in proc.stderr  # 64 rows / (2 x 8) = 4 steps
    report = json.loads((tmp_path / "teacher" / "results_eval.json").read_text())
    assert report["num_examples"] == 32 and report["flags"]["batch_size_per_device"] == 8
