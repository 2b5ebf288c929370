"""The originals' script forms: positional training arguments, evaluation by GPU TASK MODEL_ID, model-id
folders, the per-task GLUE table, and the GLUE download / OFRecord scripts (docs/scripts.md)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import zipfile

import pytest

from model_compress.commands import glue_data
from model_compress.recipes import glue_tasks
from tests.conftest import REPO_ROOT, TINY_BERT

SHIPPED_SST2 = os.path.join(REPO_ROOT, "data", "glue_data", "SST-2")
TINY_FLAGS = ["--train_example_num", "64", "--eval_example_num", "32"]


def run_script(name: str, *args: str, timeout: int = 900, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "EPOCHS": "1", "SEQ_LENGTH": "16", "BATCH": "16", **env}
    return subprocess.run(["bash", f"run_scripts/{name}", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO_ROOT, env=environ)


def results(folder) -> dict:
    return json.loads((folder / "results_eval.json").read_text())


@pytest.fixture(scope="module")
def six_layer_teacher(tmp_path_factory):
    """The tiny test BERT with 6 layers: a 3-layer student (LAYER_LIST 1,3,5) divides it."""
    import oneflow as flow

    from model_compress.modeling.bert import BertForSequenceClassification
    from model_compress.modeling.checkpoint import save_snapshot
    from model_compress.modeling.config import BertConfig
    from model_compress.modeling.pretrained import default_pretrained_dir

    flow.manual_seed(0)
    config = BertConfig(**{**TINY_BERT, "num_hidden_layers": 6})
    path = str(tmp_path_factory.mktemp("teacher6") / "teacher")
    save_snapshot(BertForSequenceClassification(config), path, config=config, meta={"labels": ["0", "1"]},
                  extra_files={"vocab.txt": os.path.join(default_pretrained_dir(), "vocab.txt")})
    return path


@pytest.fixture()
def glue_root(tiny_sst2_dir):
    """A DATA_ROOT holding SST-2 rows that are not the shipped file: the GLUE table applies to it."""
    return os.path.dirname(tiny_sst2_dir)


# ------------------------------------------------------------------------------------------------ table
def test_table_applies_to_glue_data_but_not_to_the_shipped_set(glue_root):
    assert glue_tasks.is_shipped("SST-2", SHIPPED_SST2)
    assert glue_tasks.table_values("bert_pkd", "SST-2", SHIPPED_SST2) == {}
    values = glue_tasks.table_values("bert_pkd", "sst-2", os.path.join(glue_root, "SST-2"))
    assert values == {"EPOCHS": "4", "LR": "2e-5", "WD": "0.0001", "SEQ_LENGTH": "128",
                      "TRAIN_EXAMPLE_NUM": "67349", "EVAL_EXAMPLE_NUM": "872"}
    assert glue_tasks.table_values("kd", "CoLA", "/nowhere")["EPOCHS"] == "70"
    assert glue_tasks.table_values("teacher", "senti", "data/SENTI") == {}  # not a GLUE task
    with pytest.raises(glue_tasks.RecipeError, match="no GLUE table for algorithm 'nope'"):
        glue_tasks.table_values("nope", "SST-2", "/nowhere")


def test_shipped_hash_is_the_shipped_file():
    path = os.path.join(SHIPPED_SST2, "train.tsv")
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    assert glue_tasks.SHIPPED_TRAIN["SST-2"] == (os.path.getsize(path), digest)


def test_model_ids_are_the_originals():
    """Each table row rebuilds the id of the model the originals published for it."""
    published = {
        ("bert_pkd", "SST-2"): "bert-pkd_3_epoch-4_lr-2e-5_wd-0.0001_kd_alpha-0.2_kd_beta-10",
        ("bert_pkd", "QQP"): "bert-pkd_3_epoch-5_lr-5e-5_wd-0.0001_kd_alpha-0.2_kd_beta-10",
        ("bert_pkd", "CoLA"): "bert-pkd_3_epoch-100_lr-5e-5_wd-0.0001_kd_alpha-0.2_kd_beta-10",
        ("kd", "MRPC"): "bert-kd-distl_epoch-5_lr-2e-5_wd-0.001_kd_alpha-0.8",
        ("kd", "CoLA"): "bert-kd-distl_epoch-70_lr-5e-5_wd-0.0001_kd_alpha-0.8",
        ("teacher", "MRPC"): "MRPC_epoch-5_lr-1e-5_wd-0.001",
        ("teacher", "CoLA"): "CoLA_epoch-5_lr-1e-5_wd-0.01",
    }
    for (algo, task), name in published.items():
        r = glue_tasks.RECIPES[algo][task]
        got = glue_tasks.model_id(algo, task=task, layers="3", epochs=r.epochs, lr=r.lr, wd=r.wd,
                                    kd_alpha="0.8" if algo == "kd" else "0.2", kd_beta="10")
        assert got == name
    with pytest.raises(glue_tasks.RecipeError, match="needs kd_beta=VALUE"):
        glue_tasks.model_id("bert_pkd", layers="3", epochs="4", lr="1", wd="0", kd_alpha="0.2")


# ---------------------------------------------------------------------------------- evaluation by id
def test_eval_by_unknown_id_fails_in_one_line(tmp_path):
    (tmp_path / "student_model" / "SST-2" / "bert-kd-distl_epoch-1").mkdir(parents=True)
    for script in ("run_eval_student_kd.sh", "run_eval_student_bert_pkd.sh"):
        proc = run_script(script, "0", "SST-2", "no-such-model", MODELS_DIR=str(tmp_path))
        assert proc.returncode == 2
        assert proc.stderr.strip().splitlines() == [
            f"error: no model 'no-such-model' in {tmp_path}/student_model/SST-2/ (known: bert-kd-distl_epoch-1)"]
        assert "running on the CPU (GPU 0 asked)" in proc.stdout  # this machine has no GPU
    proc = run_script("run_eval_teacher.sh", "0", "SST-2", "x", "extra")
    assert proc.returncode == 2 and "too many arguments before the flags" in proc.stderr
    proc = run_script("run_eval_teacher.sh", "gpu0", "SST-2", "x")
    assert proc.returncode == 2 and proc.stderr.strip() == "error: GPU 'gpu0': expected a GPU number such as 0"


def test_teacher_positional_form_then_eval_by_id(tmp_path, tiny_model_dir, glue_root):
    """DATA_ROOT PRETRAINED LOG_DIR RESULT_DIR dataset; the table sets lr and weight decay (EPOCHS and
    SEQ_LENGTH come from the environment); the teacher lands in its model-id folder, evaluated by id."""
    models, logs, res = tmp_path / "models", tmp_path / "logs", tmp_path / "results"
    proc = run_script("run_train_teacher.sh", glue_root, tiny_model_dir, str(logs), str(res), "SST-2", *TINY_FLAGS,
                      NPROC="1", MODELS_DIR=str(models))
    assert proc.returncode == 0, proc.stderr[-3000:]
    model_id = "SST-2_epoch-1_lr-2e-5_wd-0.0001"
    assert (models / "finetuned_teacher" / model_id / "snapshot_best").is_dir()
    assert os.readlink(models / "finetuned_teacher" / "SST-2") == model_id
    report = results(res)
    assert report["flags"]["learning_rate"] == 2e-5 and report["flags"]["weight_decay_rate"] == 1e-4
    assert report["num_examples"] == 32  # the later flag beat the table's 872
    assert "[recipe] SST-2, teacher" in (logs / "run_train_teacher.log").read_text()

    proc = run_script("run_eval_teacher.sh", "0", "SST-2", model_id, "--eval_example_num", "32",
                      MODELS_DIR=str(models), DATA_ROOT=glue_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[device] this machine has no GPU: running on the CPU (GPU 0 asked)" in proc.stdout
    assert f"finetuned_teacher/{model_id}/snapshot_best: dev accuracy" in proc.stdout


@pytest.mark.slow
def test_bert_pkd_both_forms_and_eval(tmp_path, six_layer_teacher, glue_root):
    models = tmp_path / "models"
    common = dict(FT_BERT_BASE_DIR=six_layer_teacher, MODELS_DIR=str(models))
    # environment form, default NPROC (the measured process count), the shipped defaults for alpha/beta
    proc = run_script("run_train_student_bert_pkd.sh", *TINY_FLAGS, DATA_ROOT=glue_root, dataset="SST-2", **common)
    assert proc.returncode == 0, proc.stderr[-3000:]
    model_id = "bert-pkd_3_epoch-1_lr-2e-5_wd-0.0001_kd_alpha-0.9_kd_beta-10"
    assert (models / "student_model" / "SST-2" / model_id / "snapshot_best").is_dir()
    assert os.readlink(models / "student_model" / "SST-2" / "bert_pkd_3") == model_id
    # positional form: the student goes to OUT_DIR/student_model
    out = tmp_path / "out"
    proc = run_script("run_train_student_bert_pkd.sh", glue_root, str(out), str(tmp_path / "log"),
                      str(tmp_path / "res"), "SST-2", *TINY_FLAGS, NPROC="1", KD_ALPHA="0.2", **common)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "student_model" / "snapshot_best").is_dir()
    assert results(tmp_path / "res")["flags"]["kd_alpha"] == 0.2
    # evaluation by id, and without arguments (the bert_pkd_3 link)
    for args in (("0", "SST-2", model_id), ()):
        (models / "student_model" / "SST-2" / model_id / "results_eval.json").unlink()
        proc = run_script("run_eval_student_bert_pkd.sh", *args, "--eval_example_num", "16",
                          MODELS_DIR=str(models), DATA_ROOT=glue_root)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert results(models / "student_model" / "SST-2" / model_id)["num_examples"] == 16


@pytest.mark.slow
def test_kd_both_forms_and_eval(tmp_path, six_layer_teacher, glue_root):
    models = tmp_path / "models"
    common = dict(FT_BERT_BASE_DIR=six_layer_teacher, MODELS_DIR=str(models), NPROC="1",
                  LOGITS_PATH=str(tmp_path / "logits.tsv"))
    proc = run_script("run_train_student_kd.sh", glue_root, str(tmp_path / "out"), "", str(tmp_path / "res"),
                      "SST-2", *TINY_FLAGS, **common)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "out" / "student_model" / "snapshot_best").is_dir()
    assert results(tmp_path / "res")["flags"]["weight_decay_rate"] == 1e-4
    proc = run_script("run_train_student_kd.sh", *TINY_FLAGS, DATA_ROOT=glue_root, dataset="SST-2", LR="1e-4",
                      **common)
    assert proc.returncode == 0, proc.stderr[-3000:]
    model_id = "bert-kd-distl_epoch-1_lr-1e-4_wd-0.0001_kd_alpha-0.2"
    assert os.readlink(models / "student_model" / "SST-2" / "kd_3") == model_id
    proc = run_script("run_eval_student_kd.sh", "0", "SST-2", model_id, "--eval_example_num", "32",
                      MODELS_DIR=str(models), DATA_ROOT=glue_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = results(models / "student_model" / "SST-2" / model_id)
    assert report["num_examples"] == 32 and report["flags"]["do_train"] is False


# --------------------------------------------------------------------------------------- GLUE download
@pytest.mark.parametrize("train, evaluate, extra", [
    ("run_train_student_tinybert.sh", "run_eval_student_tinybert.sh", {"INTERMEDIATE_EPOCHS": "1"}),
    ("run_train_theseus.sh", "run_eval_theseus.sh", {"TMP_STUDENT_DIR": "{tmp}/phase1"}),
    ("run_train_student_distilled_lstm.sh", "run_eval_student_distilled_lstm.sh", {"STUDENT_HIDDEN_SIZE": "32"}),
])
def test_newer_algorithms_take_the_positional_form_and_eval_by_id(tmp_path, six_layer_teacher, glue_root, train,
                                                                   evaluate, extra):
    """TinyBERT, BERT-of-Theseus and Distilled BiLSTM: DATA_ROOT OUT_DIR LOG_DIR RESULT_DIR dataset, then
    GPU TASK MODEL_ID (their environment-variable forms are tested with each algorithm)."""
    models = tmp_path / "models"
    env = {k: v.format(tmp=tmp_path) for k, v in extra.items()}
    out = tmp_path / "out"
    proc = run_script(train, glue_root, str(out), str(tmp_path / "log"), str(tmp_path / "res"), "SST-2",
                      *TINY_FLAGS, FT_BERT_BASE_DIR=six_layer_teacher, MODELS_DIR=str(models), NPROC="1", **env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "student_model" / "snapshot_best").is_dir()
    assert results(tmp_path / "res")["num_examples"] == 32
    assert (tmp_path / "log" / train.replace(".sh", ".log")).is_file()
    # evaluation by id: the student folder moved under $MODELS_DIR/student_model/<task>/<id>
    (models / "student_model" / "SST-2").mkdir(parents=True)
    shutil.move(str(out / "student_model"), str(models / "student_model" / "SST-2" / "my-run"))
    proc = run_script(evaluate, "0", "SST-2", "my-run", "--eval_example_num", "16", MODELS_DIR=str(models),
                      DATA_ROOT=glue_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "no GPU: running on the CPU" in proc.stdout
    assert results(models / "student_model" / "SST-2" / "my-run")["num_examples"] == 16
    proc = run_script(evaluate, "0", "SST-2", "no-such-run", MODELS_DIR=str(models), DATA_ROOT=glue_root)
    assert proc.returncode == 2 and "no model 'no-such-run'" in proc.stderr


DEMO_NAMES = {"tinybert": "TinyBERT", "kd": "KD", "pkd": "PKD", "theseus": "Theseus"}


@pytest.mark.parametrize("algorithm", [
    "tinybert",  # the default
    pytest.param("kd", marks=pytest.mark.slow),
    pytest.param("pkd", marks=pytest.mark.slow),
    pytest.param("theseus", marks=pytest.mark.slow),
])
def test_demo_end_to_end_with_each_student_algorithm(tmp_path, six_layer_teacher, glue_root, algorithm):
    """run_scripts/demo.sh on a tiny 6-layer "pretrained" model: teacher and no-teacher student, the
    STUDENT_ALGO student (as 2 data-parallel processes, but for the default), three evaluations, the ONNX
    export and the interleaved table."""
    out = tmp_path / "demo"
    env = dict(OUT=str(out), DATA_ROOT=glue_root, PRETRAINED=six_layer_teacher, STUDENT_EPOCHS="1",
               NPROC="1" if algorithm == "tinybert" else "2", SPEED_ROUNDS="1")
    if algorithm != "tinybert":
        env["STUDENT_ALGO"] = algorithm
    proc = run_script("demo.sh", **env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for run in ("teacher", f"student_{algorithm}", "student_no_teacher"):
        assert results(out / run)["num_examples"] == 48
    config = json.loads((out / f"student_{algorithm}" / "snapshot_best" / "config.json").read_text())
    assert config["num_hidden_layers"] == 3
    assert (out / "student_init").is_dir() == (algorithm != "theseus")
    assert (out / f"student_{algorithm}_onnx" / "model.onnx").is_file()
    name = f"{DEMO_NAMES[algorithm]} student (3 layers)"
    assert any(line.startswith(name) and line.endswith("x") for line in proc.stdout.splitlines())


def test_demo_refuses_an_unknown_student_algorithm(tmp_path):
    proc = run_script("demo.sh", OUT=str(tmp_path / "demo"), STUDENT_ALGO="distilbert", timeout=60)
    assert proc.returncode == 2
    assert "STUDENT_ALGO=distilbert: expected tinybert, kd, pkd or theseus" in proc.stderr
    assert not (tmp_path / "demo").exists()


def test_download_fails_in_one_line_offline(tmp_path):
    """This machine reaches no GLUE host: one line naming the task and the archive, exit 2, nothing left."""
    proc = run_script("run_download_glue_data.sh", "--data_dir", str(tmp_path / "glue"), "--tasks", "RTE,CoLA",
                      "--timeout", "10", timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot download GLUE RTE: dl.fbaipublicfiles.com")
    assert "RTE.zip" in lines[0] and "--from_dir" in lines[0]
    assert not (tmp_path / "glue" / "RTE").exists() and not (tmp_path / "glue" / ".downloads").exists()


def make_task_zip(path, task: str, train: str, dev: str, extra: dict | None = None) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{task}/train.tsv", train)
        zf.writestr(f"{task}/dev.tsv", dev)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)


RTE_TRAIN = ("index\tsentence1\tsentence2\tlabel\n0\ta cat sat\ta cat\tentailment\n"
             "1\tit rains\tit is dry\tnot_entailment\n")
RTE_DEV = "index\tsentence1\tsentence2\tlabel\n0\tbooks are good\tbooks\tentailment\n"


def test_download_from_local_archives_then_build_ofrecords(tmp_path):
    from_dir, data_dir = tmp_path / "archives", tmp_path / "glue"
    from_dir.mkdir()
    make_task_zip(from_dir / "RTE.zip", "RTE", RTE_TRAIN, RTE_DEV)
    proc = run_script("run_download_glue_data.sh", "--data_dir", str(data_dir), "--tasks", "rte",
                      "--from_dir", str(from_dir), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "[glue] RTE: 2 train / 1 dev rows" in proc.stdout and "not pinned in the manifest" in proc.stdout
    assert "RTE train has 2 rows, the originals' table says 2490" in proc.stderr
    assert sorted(os.listdir(data_dir)) == ["RTE"]  # nothing half-made beside it
    proc = run_script("run_download_glue_data.sh", "--data_dir", str(data_dir), "--tasks", "RTE",
                      "--from_dir", str(from_dir), timeout=300)
    assert proc.returncode == 0 and "kept" in proc.stdout
    proc = run_script("glue_process.sh", "--data_dir", str(data_dir), "--seq_length", "16", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (data_dir / "RTE" / "ofrecord" / "train").is_dir() and (data_dir / "RTE" / "ofrecord" / "dev").is_dir()
    assert "RTE: dev ->" in proc.stdout


def test_download_refuses_bad_archives(tmp_path):
    from_dir, data_dir = tmp_path / "archives", tmp_path / "glue"
    from_dir.mkdir()
    make_task_zip(from_dir / "RTE.zip", "RTE", RTE_TRAIN, RTE_DEV.replace("entailment\n", "maybe\n"))
    with pytest.raises(SystemExit) as exc:
        glue_data.main(["download", "--data_dir", str(data_dir), "--tasks", "RTE", "--from_dir", str(from_dir)])
    assert exc.value.code == 2
    with zipfile.ZipFile(from_dir / "RTE.zip", "w") as zf:
        zf.writestr("RTE/train.tsv", RTE_TRAIN)  # no dev.tsv
    with pytest.raises(glue_data.DownloadError, match="does not hold train.tsv, dev.tsv"):
        glue_data.download_task("RTE", glue_data.load_glue_manifest()["RTE"], str(data_dir), str(from_dir))
    make_task_zip(from_dir / "RTE.zip", "RTE", RTE_TRAIN, RTE_DEV, extra={"../evil.tsv": "x"})
    with pytest.raises(glue_data.DownloadError, match="refusing member with '..'"):
        glue_data.download_task("RTE", glue_data.load_glue_manifest()["RTE"], str(data_dir), str(from_dir))
    assert not os.path.exists(data_dir / "RTE") and not [n for n in os.listdir(data_dir) if "download" in n]


def test_download_over_http_resumes_and_checks_the_pinned_sha256(tmp_path, range_server):
    www, base = range_server
    make_task_zip(www / "RTE.zip", "RTE", RTE_TRAIN, RTE_DEV)
    blob = (www / "RTE.zip").read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    entry = {"url": f"{base}/RTE.zip", "sha256": digest, "format": "zip", "expect": ["train.tsv", "dev.tsv"]}
    data_dir = tmp_path / "glue"
    cache = data_dir / glue_data.CACHE
    cache.mkdir(parents=True)
    (cache / "RTE.zip.part").write_bytes(blob[:100])  # an interrupted earlier download
    glue_data.download_task("RTE", entry, str(data_dir))
    assert (data_dir / "RTE" / "dev.tsv").read_text() == RTE_DEV
    assert range_server.ranges == ["bytes=100-"] and not os.listdir(cache)
    with pytest.raises(glue_data.DownloadError, match="sha256 mismatch"):
        glue_data.download_task("RTE", {**entry, "sha256": "0" * 64}, str(data_dir), force=True)
    assert (data_dir / "RTE" / "dev.tsv").read_text() == RTE_DEV  # the installed copy is untouched


@pytest.fixture
def range_server(tmp_path):
    """A loopback HTTP server that honours single Range requests; yields (www dir, base url), records ranges."""
    import functools
    import http.server
    import threading

    www = tmp_path / "www"
    www.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def send_head(self):
            wanted = self.headers.get("Range")
            if not wanted:
                return super().send_head()
            server_info.ranges.append(wanted)
            data = (www / self.path.lstrip("/")).read_bytes()
            start = int(wanted.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Length", str(len(data) - start))
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            import io
            return io.BytesIO(data[start:])

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()

    class Info(tuple):
        ranges: list

    server_info = Info((www, f"http://127.0.0.1:{httpd.server_address[1]}"))
    server_info.ranges = []
    try:
        yield server_info
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
        shutil.rmtree(www, ignore_errors=True)


def test_tinybert_with_augmentation_defaults_to_the_budget_measured_on_real_text(tmp_path, six_layer_teacher,
                                                                                 glue_root):
    """AUG_TRAIN=True: 4 new rows per sentence and one epoch per step at lr 2e-4 unless set otherwise."""
    res = tmp_path / "res"
    proc = run_script("run_train_student_tinybert.sh", glue_root, str(tmp_path / "out"), "", str(res), "SST-2",
                      *TINY_FLAGS, FT_BERT_BASE_DIR=six_layer_teacher, NPROC="1", AUG_TRAIN="True", EPOCHS="")
    assert proc.returncode == 0, proc.stderr[-3000:]
    flags = results(res)["flags"]
    assert flags["aug_train"] is True and flags["N"] == 4
    assert flags["num_epochs"] == 1 and flags["learning_rate"] == 2e-4
    step1 = json.loads((tmp_path / "out" / "student_model" / "snapshot_intermediate" / "snapshot.json").read_text())
    assert step1["meta"]["aug_train"] is True
    with open(os.path.join(glue_root, "SST-2", "train_aug.json"), encoding="utf-8") as f:
        assert json.load(f)["num_tries"] == 4
