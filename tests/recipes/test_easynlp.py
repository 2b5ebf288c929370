"""The `easynlp` command and the Meta-KD example scripts: seed 001's command blocks as written, bad input.

The blocks below are the seed's (EasyNLP's knowledge-distillation guide) verbatim; `seed_block` applies only
the allowed changes: torch.distributed.launch -> oneflow.distributed.launch, model names -> local models,
sizes shrunk with the commands' own flags.
"""

import hashlib
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from model_compress.data.processors import InputExample
from model_compress.easynlp import flags as easynlp_flags
from model_compress.easynlp.app import main as easynlp_main
from model_compress.easynlp.flags import UsageError
from model_compress.easynlp.models import resolve_model
from model_compress.easynlp.schema import make_spec, output_rows, parse_schema, read_table
from tests.conftest import REPO_ROOT
from tests.support import assert_matches_reference

EASYNLP = os.path.join(REPO_ROOT, "run_scripts", "easynlp")
METAKD_DIR = os.path.join(REPO_ROOT, "examples", "knowledge_distillation", "metakd")


def _seed_blocks() -> dict[str, str]:
    """tests/data/seed_001_blocks.txt: the seed's blocks by name."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "seed_001_blocks.txt")
    parts = re.split(r"^#### (\w+)\n", open(path, encoding="utf-8").read(), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


BLOCKS = _seed_blocks()
SST2_KD, MRPC_ENV, MRPC_TEACHER, MRPC_LOGITS, MRPC_STUDENT, MRPC_PREDICT = (
    BLOCKS[n] for n in ("SST2_KD", "MRPC_ENV", "MRPC_TEACHER", "MRPC_LOGITS", "MRPC_STUDENT", "MRPC_PREDICT"))
SENTI_DATA, SENTI_PREPROCESS, SENTI_TEACHER, SENTI_STUDENT = (
    BLOCKS[n] for n in ("SENTI_DATA", "SENTI_PREPROCESS", "SENTI_TEACHER", "SENTI_STUDENT"))


def seed_block(block: str, model: str, nproc: int = 1, port: int = 0) -> str:
    """The allowed changes: the launcher, model names -> ``model``, sizes and process count shrunk."""
    text = block.replace("torch.distributed.launch", "oneflow.distributed.launch")
    text = re.sub(r"(bert-(?:base|large|small|tiny)-uncased)", model, text)
    text = text.replace(f"~/.easynlp/modelzoo/{model}", model)
    text = text.replace("--sequence_length=128", "--sequence_length=32").replace("--epoch_num=10", "--epoch_num=1")
    text = text.replace("--micro_batch_size=32", "--micro_batch_size=16")
    text = text.replace("--task_name senti --gpu 7", "--task_name senti --gpu 7 --max_seq_length 32")
    text = text.replace("--nproc_per_node 2", f"--nproc_per_node {nproc}")
    return text.replace("--master_port 6009", f"--master_port {port or 6009}")


def run_bash(script: str, cwd, env_extra=None, timeout=600) -> subprocess.CompletedProcess:
    """``script`` under bash -e in ``cwd`` with `easynlp` and the example scripts' python on PATH."""
    bindir = os.path.join(str(cwd), ".bin")
    os.makedirs(bindir, exist_ok=True)
    if not os.path.exists(os.path.join(bindir, "easynlp")):
        os.symlink(EASYNLP, os.path.join(bindir, "easynlp"))
        with open(os.path.join(bindir, "python"), "w") as f:
            f.write(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        os.chmod(os.path.join(bindir, "python"), 0o755)
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "HOME": str(cwd), **(env_extra or {})}
    proc = subprocess.run(["bash", "-ec", script], cwd=str(cwd), env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-3000:]
    return proc


def _tables(target, source_rows, n_train, n_dev, transform=lambda cols: cols):
    for split, n in (("train", n_train), ("dev", n_dev)):
        with open(source_rows[split], encoding="utf-8") as f:
            lines = [line.rstrip("\n").split("\t") for line in f if line.strip()]
        (target / f"{split}.tsv").write_text("".join("\t".join(transform(c)) + "\n" for c in lines[:n]),
                                             encoding="utf-8")


@pytest.fixture()
def mrpc_dir(tmp_path):
    """48 train / 24 dev rows of the shipped MRPC-style pairs (EasyNLP's layout, no header)."""
    base = os.path.join(REPO_ROOT, "data", "easynlp", "MRPC")
    _tables(tmp_path, {s: os.path.join(base, f"{s}.tsv") for s in ("train", "dev")}, 48, 24)
    return tmp_path


# ----------------------------------------------------------------------------------------------
# seed 001 as written


def test_mrpc_walkthrough_as_written(mrpc_dir, tiny_model_dir):
    env_block = seed_block(MRPC_ENV, tiny_model_dir)
    script = "\n".join(seed_block(b, tiny_model_dir) for b in (MRPC_TEACHER, MRPC_LOGITS, MRPC_STUDENT,
                                                                 MRPC_PREDICT))
    proc = run_bash(env_block + script, mrpc_dir)
    assert "--worker_gpu=1: no GPU on this machine, running on the CPU" in proc.stderr
    teacher = mrpc_dir / "results" / "large-sst2-teacher"
    student = mrpc_dir / "results" / "small-sst2-student"
    assert sorted(os.listdir(teacher)) == ["logits.tsv", "records", "results_eval.json", "snapshot_best"]
    logits = np.loadtxt(teacher / "logits.tsv", delimiter=",")
    assert logits.shape == (48, 2)
    report = json.loads((student / "results_eval.json").read_text())
    assert report["role"] == "student-kd"
    rows = [line.split("\t") for line in (mrpc_dir / "dev.tsv").read_text(encoding="utf-8").splitlines()]
    pairs = [InputExample(f"dev-{i}", c[3], c[4], c[0]) for i, c in enumerate(rows)]
    assert_matches_reference(report, str(student / "snapshot_best"), None, 32, task="mrpc", examples=pairs)
    assert report["flags"]["user_defined_parameters"]["temperature"] == "5"
    assert os.path.isdir(student / "snapshot_best")
    predictions = (mrpc_dir / "student_pred.tsv").read_text().splitlines()
    assert len(predictions) == 24 and set(predictions) <= {"0", "1"}
    # evaluate mode on the same table agrees with the training run's own report
    proc = run_bash(f"easynlp --mode=evaluate --tables=dev.tsv --checkpoint_path={student}/snapshot_best "
                    "--input_schema=label:str:1,sid1:str:1,sid2:str:1,sent1:str:1,sent2:str:1 --first_sequence=sent1 "
                    "--second_sequence=sent2 --label_name=label --sequence_length=32 --micro_batch_size=16",
                    mrpc_dir)
    again = json.loads((student / "results_eval.json").read_text())
    assert again["role"] == "evaluate" and again["accuracy"] == pytest.approx(report["accuracy"])


def test_sst2_kd_block_with_logits_file_and_in_table(tmp_path, tiny_model_dir):
    base = os.path.join(REPO_ROOT, "data", "glue_data", "SST-2")
    _tables(tmp_path, {s: os.path.join(base, f"{s}.tsv") for s in ("train", "dev")}, 33, 17)
    for split in ("train", "dev"):  # drop the GLUE header: EasyNLP tables have none
        path = tmp_path / f"{split}.tsv"
        path.write_text("".join(path.read_text().splitlines(True)[1:]))
    predict = (f"easynlp --mode=predict --tables=train.tsv --outputs=teacher_logits.tsv --output_schema=logits "
               f"--input_schema=sent:str:1,label:str:1 --first_sequence=sent --checkpoint_path={tiny_model_dir} "
               "--sequence_length=32 --micro_batch_size=16\n")
    env = {"STUDENT_MODEL": tiny_model_dir, "LOGITS_PATH": "teacher_logits.tsv"}
    run_bash(predict + seed_block(SST2_KD, tiny_model_dir), tmp_path, env)
    report = json.loads((tmp_path / "results" / "small_sst2_student" / "results_eval.json").read_text())
    assert report["role"] == "student-kd" and report["num_examples"] == 16

    # the same logits carried in the table instead of a file
    logits = (tmp_path / "teacher_logits.tsv").read_text().splitlines()
    rows = (tmp_path / "train.tsv").read_text().splitlines()
    (tmp_path / "train_kd.tsv").write_text("".join(f"{r}\t{g}\n" for r, g in zip(rows, logits)))
    carried = seed_block(SST2_KD, tiny_model_dir).replace("train.tsv,dev.tsv", "train_kd.tsv,dev.tsv")
    carried = carried.replace("        logits_saved_path=${LOGITS_PATH}\n", "").replace("small_sst2", "carried")
    run_bash(carried, tmp_path, env)
    assert json.loads((tmp_path / "results" / "carried_student" / "results_eval.json").read_text())["role"] == \
        "student-kd"


def _senti_workdir(tmp_path):
    for name in os.listdir(METAKD_DIR):
        if name.endswith(".py"):
            os.symlink(os.path.join(METAKD_DIR, name), tmp_path / name)
    return tmp_path


def _senti_flow(tmp_path, model, nproc, port):
    work = _senti_workdir(tmp_path)
    run_bash(f"python generate_senti_data.py --rows_per_domain {24 * nproc}", work)  # a batch of books per rank
    script = "\n".join(seed_block(b, model, nproc, port)
                       for b in (SENTI_DATA, SENTI_PREPROCESS, SENTI_TEACHER, SENTI_STUDENT))
    proc = run_bash(script, work, {"cur_path": str(work)}, timeout=1200)
    senti = work / "data" / "SENTI"
    header = (senti / "train_with_weights.tsv").read_text().splitlines()[0]
    assert header == "guid\ttext_a\ttext_b\tlabel\tdomain\tweight"
    assert (senti / "dev_standard.tsv").read_text().splitlines()[0].endswith("\tembeddings")
    teacher = json.loads((work / "tmp" / "meta_teacher" / "results_eval.json").read_text())
    assert teacher["role"] == "meta-teacher" and teacher["use_sample_weights"] and teacher["domain_loss_weight"] == 0.5
    assert [n for n in os.listdir(work / "tmp" / "books" / "meta_student_pretrain")] == \
        ["snapshot_meta_student_first_books"]
    final = json.loads((work / "tmp" / "books" / "meta_student_fintune" / "results_eval_books.json").read_text())
    assert final["role"] == "student-eval" and final["genre"] == "books"
    assert "teacher dump reused from" in proc.stderr
    return proc


def test_senti_metakd_flow_as_written_one_process(tmp_path, tiny_model_dir):
    _senti_flow(tmp_path, tiny_model_dir, nproc=1, port=29741)


@pytest.mark.slow
def test_senti_metakd_flow_as_written_two_processes(tmp_path, tiny_model_dir):
    """The seed's flow under its 2-process launcher: meta-teacher, teacher dump and both student stages."""
    proc = _senti_flow(tmp_path, tiny_model_dir, nproc=2, port=29743)
    assert "OMP_NUM_THREADS" in proc.stdout  # the launcher started two processes


@pytest.mark.slow
def test_worker_gpu_two_starts_two_processes(mrpc_dir, tiny_model_dir):
    block = seed_block(MRPC_TEACHER, tiny_model_dir).replace("--worker_gpu=1", "--worker_gpu=2")
    proc = run_bash(block, mrpc_dir, {"TEACHER_MODEL": tiny_model_dir, "TEACHER_CKPT": "results/two"})
    assert "2 processes under oneflow.distributed.launch" in proc.stderr
    assert "OMP_NUM_THREADS" in proc.stdout  # the launcher's banner: it started the processes
    assert json.loads((mrpc_dir / "results" / "two" / "results_eval.json").read_text())["num_examples"] == 24


def test_setup_links_the_easynlp_command(tmp_path):
    """setup_env.sh on a ready environment links <venv>/bin/easynlp, and the command runs from there.

    The environment is a folder whose python execs this one and refuses pip, with the stamp setup_env.sh
    expects (requirements + weights pin), so the script takes its ready path and installs nothing.
    """
    script = os.path.join(REPO_ROOT, "run_scripts", "setup_env.sh")
    text = open(script, encoding="utf-8").read()
    pin = re.search(r'^WEIGHTS_PKG="(.+)"$', text, re.M).group(1)
    digest = re.search(r'^WEIGHTS_SHA256="(.+)"$', text, re.M).group(1)
    requirements = open(os.path.join(REPO_ROOT, "requirements.txt"), "rb").read()
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / ".model_compress_setup").write_text(
        hashlib.sha256(requirements + f"{pin} {digest}\n".encode()).hexdigest() + "\n")
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\n[ "$1 $2" = "-m pip" ] && {{ echo "pip refused" >&2; exit 97; }}\n'
                      f'exec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    env = {**os.environ, "MC_VENV": str(venv)}
    proc = subprocess.run(["bash", script], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "environment ready" in proc.stdout, proc.stdout + proc.stderr
    assert os.path.realpath(venv / "bin" / "easynlp") == os.path.realpath(EASYNLP)
    proc = subprocess.run([str(venv / "bin" / "easynlp"), "--app_name=text_classify", "--mode=tune"], env=env,
                          capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == ("easynlp: error: --mode: 'tune' is not supported here; choose "
                                                    "one of train, evaluate, predict")


# ----------------------------------------------------------------------------------------------
# bad input: one line naming flag, file and line; exit 2


def _error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        easynlp_main(argv)
    assert exc.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines and lines[-1].startswith("easynlp: error: ")
    return lines[-1]


TRAIN = ["--mode=train", "--tables=train.tsv,dev.tsv", "--first_sequence=sent1", "--second_sequence=sent2",
         "--label_name=label", "--label_enumerate_values=0,1", "--checkpoint_dir=out", "--sequence_length=16"]
SCHEMA = "--input_schema=label:str:1,sid1:str:1,sid2:str:1,sent1:str:1,sent2:str:1"


def test_bad_flags_and_parameters(mrpc_dir, capsys, monkeypatch, tiny_model_dir):
    monkeypatch.chdir(mrpc_dir)
    udp = f"--user_defined_parameters=pretrain_model_name_or_path={tiny_model_dir}"
    assert "--app_name: 'text_summarize' is not supported" in _error(["--app_name=text_summarize"], capsys)
    assert "--mode: 'export' is not supported" in _error(["--mode=export"], capsys)
    assert "unrecognized arguments: --mod=train" in _error(["--mod=train"], capsys)  # no prefix matching
    line = _error([*TRAIN, SCHEMA, "--user_defined_parameters=pretrain_model_name_or_path"], capsys)
    assert line.endswith("--user_defined_parameters: entry 'pretrain_model_name_or_path' is not key=value")
    assert "unknown key 'temprature'" in _error([*TRAIN, SCHEMA, "--user_defined_parameters=temprature=2"], capsys)
    line = _error([*TRAIN, SCHEMA + ",logits:float:2", udp + " enable_distillation=True alpha=1.5"], capsys)
    assert "alpha=1.5: must be in [0.0, 1.0]" in line
    line = _error([*TRAIN, SCHEMA.replace("sent2:str:1", "sent2:str"), udp], capsys)
    assert "--input_schema: entry 'sent2:str' is not name:type:count" in line
    line = _error([*TRAIN, SCHEMA.replace("sent2", "sentence2"), udp], capsys)
    assert line.endswith("--second_sequence: 'sent2' is not a column of --input_schema "
                         "(label, sid1, sid2, sent1, sentence2)")
    line = _error([*TRAIN, SCHEMA + ",extra:str:1", udp], capsys)
    assert line.endswith("--input_schema: train.tsv, line 1: names 6 columns (label,sid1,sid2,sent1,sent2,extra) "
                         "but the row has 5 tab-separated fields")
    line = _error([*TRAIN, SCHEMA, udp, "--sequence_length=128"], capsys)
    assert line.endswith(f"--sequence_length: 128 exceeds the 64 positions of {tiny_model_dir}")
    line = _error([*TRAIN, SCHEMA, udp.replace(tiny_model_dir, "bert-large-uncased")], capsys)
    assert "bert-large-uncased is not in" in line and "cannot be downloaded here" in line and "'default'" in line
    rows = (mrpc_dir / "train.tsv").read_text().splitlines()
    rows[6] = "maybe" + rows[6][1:]
    (mrpc_dir / "bad.tsv").write_text("\n".join(rows) + "\n")
    line = _error([*TRAIN, SCHEMA, udp, "--tables=bad.tsv,dev.tsv"], capsys)
    assert line.endswith("--label_enumerate_values: bad.tsv, line 7: label 'maybe' (column 'label') is not one of 0,1")


def test_bad_logits_width_in_file_and_table(mrpc_dir, capsys, monkeypatch, tiny_model_dir):
    monkeypatch.chdir(mrpc_dir)
    kd = (f"--user_defined_parameters=pretrain_model_name_or_path={tiny_model_dir} enable_distillation=True "
          "type=vanilla_kd logits_name=logits logits_saved_path=logits.tsv temperature=5 alpha=0.2")
    logits = ["0.1,0.2"] * 48
    logits[4] = "0.1,0.2,0.3"
    (mrpc_dir / "logits.tsv").write_text("\n".join(logits) + "\n")
    line = _error([*TRAIN, SCHEMA + ",logits:float:2", kd], capsys)
    assert line.endswith("--user_defined_parameters logits_saved_path=logits.tsv: logits.tsv, line 5: column "
                         "'logits' (logits:float:2) holds 3 values, expected 2")
    rows = [f"{r}\t0.5,0.5" for r in (mrpc_dir / "train.tsv").read_text().splitlines()]
    rows[2] += ",1"
    (mrpc_dir / "carried.tsv").write_text("\n".join(rows) + "\n")
    line = _error([*TRAIN, SCHEMA + ",logits:float:2", kd.replace(" logits_saved_path=logits.tsv", ""),
                   "--tables=carried.tsv,dev.tsv"], capsys)
    assert line.endswith("--input_schema: carried.tsv, line 3: column 'logits' (logits:float:2) holds 3 values, "
                         "expected 2")
    line = _error([*TRAIN, SCHEMA + ",logits:float:3", kd], capsys)
    assert "logits:float:3 holds 3 values but --label_enumerate_values has 2 labels" in line
    line = _error([*TRAIN, SCHEMA, kd.replace("type=vanilla_kd", "type=patient_kd")], capsys)
    assert "type=patient_kd: supported distillation types: vanilla_kd" in line


def test_metakd_scripts_reject_bad_input(tmp_path):
    work = _senti_workdir(tmp_path)
    (work / "data").mkdir()
    (work / "data" / "dev.tsv").write_text("review\tdomain\tsentiment\nGood one.\ttoys\tpositive\n")
    proc = subprocess.run([sys.executable, "generate_dev_file.py", "--input", "data/dev.tsv", "--output", "o.tsv"],
                          cwd=str(work), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and not (work / "o.tsv").exists()
    assert proc.stderr.strip().splitlines()[-1] == (
        "generate_dev_file.py: error: --input: data/dev.tsv, line 2: field 'domain': unknown domain 'toys'; "
        "expected one of ['books', 'dvd', 'electronics', 'kitchen']")
    proc = subprocess.run([sys.executable, "meta_student_distill.py", "--mode", "train", "--tables=a.tsv,b.tsv",
                           "--user_defined_parameters=distill_stage=third"], cwd=str(work), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == ("meta_student_distill.py: error: --user_defined_parameters "
                                                    "distill_stage: 'third' is not supported here; choose one of "
                                                    "first, second")


# ----------------------------------------------------------------------------------------------
# pieces


def test_schema_reader_and_output_rows(tmp_path):
    columns = parse_schema("guid:str:1,text_a:str:1,text_b:str:1,label:str:1,domain:str:1,weight:str:1")
    spec = make_spec(columns, "text_a", "text_b", "label", ["positive", "negative"], domain_name="domain",
                     weight_name="weight")
    path = tmp_path / "t.tsv"
    path.write_text("guid\ttext_a\ttext_b\tlabel\tdomain\tweight\ng1\tFine.\t\tpositive\tbooks\t0.5\n"
                    "g2\tBad.\tReally.\tnegative\tdvd\t0.25\n")
    table = read_table(str(path), spec)  # the header equals the schema's names: skipped
    assert [(e.guid, e.text_b, e.label, e.domain, e.weight) for e in table.examples] == \
        [("g1", None, "positive", "books", 0.5), ("g2", "Really.", "negative", "dvd", 0.25)]
    assert table.lines == [2, 3]
    logits = np.array([[2.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    rows = output_rows(logits, ["positive", "negative"], ["predictions", "probabilities", "logits"], table.fields,
                       ["guid"])
    assert rows[0].split("\t")[0] == "positive" and rows[1].split("\t")[0] == "negative"
    assert rows[0].split("\t")[2:] == ["2,0", "g1"]
    assert float(rows[0].split("\t")[1].split(",")[0]) == pytest.approx(np.exp(2) / (np.exp(2) + 1), rel=1e-6)
    with pytest.raises(UsageError, match="weight: must be in|'x' is not a number"):
        path.write_text("g1\tFine.\t\tpositive\tbooks\tx\n")
        read_table(str(path), spec)


def test_user_defined_parameters_and_model_names():
    text = "\n        pretrain_model_name_or_path=default\n        temperature=5\n    "
    assert easynlp_flags.parse_user_defined_parameters(text, ("pretrain_model_name_or_path", "temperature")) == \
        {"pretrain_model_name_or_path": "default", "temperature": "5"}
    with pytest.raises(UsageError, match="temperature is given twice"):
        easynlp_flags.parse_user_defined_parameters("temperature=1 temperature=2", ("temperature",))
    assert os.path.isfile(os.path.join(resolve_model("default", "--x"), "config.json"))
    with pytest.raises(UsageError, match="bert-tiny-uncased is not in .* cannot be downloaded here"):
        resolve_model("~/.easynlp/modelzoo/bert-tiny-uncased", "--bert_path")
