"""EasyNLP-style predict mode over snapshots and exported ONNX files, on both backends."""

import os

import numpy as np
import oneflow as flow
import pytest

from model_compress.commands import export_model as export_job
from model_compress.commands import predict_tables as predict_job
from model_compress.distill.teacher_cache import read_logits_file
from model_compress.modeling.bert import BertForSequenceClassification, init_bert_weights
from model_compress.modeling.checkpoint import save_snapshot
from model_compress.modeling.config import BertConfig
from model_compress.modeling.pretrained import default_pretrained_dir
from model_compress.recipes.common import load_classifier
from tests.conftest import REPO_ROOT, TINY_BERT
from tests.support import cli_error

LABELS = ["negative", "positive"]
VOCAB = os.path.join(default_pretrained_dir(), "vocab.txt")
SST2_DEV = os.path.join(REPO_ROOT, "data", "glue_data", "SST-2", "dev.tsv")
SCHEMA = "label:str:1,sid1:str:1,sid2:str:1,sent1:str:1,sent2:str:1"


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    """A tiny classifier snapshot (logits of order 1) and its ONNX export."""
    root = tmp_path_factory.mktemp("predict")
    flow.manual_seed(7)
    config = BertConfig(**TINY_BERT)
    model = BertForSequenceClassification(config)
    init_bert_weights(model, 0.2)
    snapshot = str(root / "snapshot_best")
    save_snapshot(model, snapshot, config=config, meta={"labels": LABELS}, extra_files={"vocab.txt": VOCAB})
    export_job.main(["--model_dir", snapshot, "--format", "onnx", "--output_dir", str(root / "onnx")])
    return snapshot, str(root / "onnx")


@pytest.fixture(scope="module")
def easynlp_table(tmp_path_factory):
    """37 sentence pairs from the shipped SST-2 dev set in EasyNLP's layout (no header, 5 columns)."""
    with open(SST2_DEV, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f.readlines()[1:39]]
    path = tmp_path_factory.mktemp("table") / "dev.tsv"
    lines = [f"{label}\ts{i}\ts{i + 1}\t{text}\t{rows[i + 1][0]}" for i, (text, label) in enumerate(rows[:37])]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path), lines


def expected_logits(snapshot: str, table: str, seq: int) -> np.ndarray:
    """The toolkit's own logits for the table's pairs (tokenized the training way, batched at once)."""
    from model_compress.data.processors import InputExample
    from model_compress.data.tokenization import FullTokenizer
    from model_compress.serving.runners import encode_examples

    rows = [line.rstrip("\n").split("\t") for line in open(table, encoding="utf-8")]
    inputs = encode_examples([InputExample(str(i), r[3], r[4]) for i, r in enumerate(rows)], FullTokenizer(VOCAB), seq)
    model, _, _ = load_classifier(snapshot, 2, verbose=False)
    with flow.no_grad():
        logits, _ = model.eval()(flow.tensor(inputs["input_ids"]), flow.tensor(inputs["token_type_ids"]),
                                 flow.tensor(inputs["attention_mask"]))
    return logits.numpy()


def predict(*argv):
    return predict_job.main(list(argv))


@pytest.mark.parametrize("source,backend", [("snapshot", "oneflow"), ("snapshot", "onnxruntime"), ("onnx", None)])
def test_predict_writes_the_chosen_columns(model_dirs, easynlp_table, tmp_path, source, backend):
    snapshot, onnx_dir = model_dirs
    table, lines = easynlp_table
    out = str(tmp_path / "pred.tsv")
    args = ["--tables", table, "--outputs", out, "--input_schema", SCHEMA, "--first_sequence", "sent1",
            "--second_sequence", "sent2", "--output_schema", "predictions,probabilities,logits",
            "--append_cols", "label,sid1", "--micro_batch_size", "8", "--sequence_length", "48",
            "--checkpoint_path", snapshot if source == "snapshot" else onnx_dir, "--mode", "predict"]
    result = predict(*args, *(["--backend", backend] if backend else []))
    assert result["rows"] == 37 and result["backend"] == (backend or "onnxruntime")
    written = [line.split("\t") for line in open(out, encoding="utf-8").read().splitlines()]
    assert len(written) == 37 and {len(cols) for cols in written} == {5}
    logits = np.array([[float(v) for v in cols[2].split(",")] for cols in written])
    probs = np.array([[float(v) for v in cols[1].split(",")] for cols in written])
    expected = expected_logits(snapshot, table, 48)
    assert np.abs(expected).max() > 0.3 and len(set(np.argmax(expected, 1))) == 2
    np.testing.assert_allclose(logits, expected, atol=1e-4)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    z = np.exp(expected - expected.max(1, keepdims=True))
    np.testing.assert_allclose(probs, z / z.sum(1, keepdims=True), atol=1e-5)
    assert [cols[0] for cols in written] == [LABELS[k] for k in expected.argmax(1)]
    assert [cols[3:] for cols in written] == [line.split("\t")[:2] for line in lines]


def test_logits_output_is_the_kd_logits_file_and_header_tables_work(model_dirs, tmp_path):
    snapshot, onnx_dir = model_dirs
    out = str(tmp_path / "logits.tsv")
    # GLUE layout: the header names the columns; 300 rows in batches of 64 leave a short last batch
    predict("--tables", SST2_DEV, "--outputs", out, "--output_schema", "logits", "--checkpoint_path", onnx_dir,
            "--micro_batch_size", "64", "--sequence_length", "32")
    logits = read_logits_file(out, 300, 2)
    other = str(tmp_path / "oneflow.tsv")
    predict("--tables", SST2_DEV, "--outputs", other, "--output_schema", "logits", "--checkpoint_path", snapshot,
            "--micro_batch_size", "64", "--sequence_length", "32", "--backend", "oneflow")
    np.testing.assert_allclose(read_logits_file(other, 300, 2), logits, atol=1e-4)


def _fails(capsys, *argv) -> str:
    return cli_error(capsys, predict_job.main, argv)


def test_predict_bad_input(model_dirs, easynlp_table, tmp_path, capsys):
    snapshot, onnx_dir = model_dirs
    table, lines = easynlp_table
    out = tmp_path / "pred.tsv"
    base = ["--outputs", str(out), "--input_schema", SCHEMA, "--first_sequence", "sent1"]
    bad = tmp_path / "bad.tsv"
    bad.write_text("\n".join(lines[:3] + ["0\tonly three\tcolumns"]) + "\n", encoding="utf-8")
    line = _fails(capsys, "--tables", str(bad), "--checkpoint_path", snapshot, *base)
    assert f"--input_schema: {bad}, line 4: names 5 columns" in line and "has 3 tab-separated fields" in line
    assert "'sentence1' is not a column" in _fails(capsys, "--tables", table, "--checkpoint_path", snapshot,
                                                  *base[:-1], "sentence1")
    assert "--output_schema" in _fails(capsys, "--tables", table, "--checkpoint_path", snapshot, *base,
                                       "--output_schema", "scores")
    assert "use --backend onnxruntime" in _fails(capsys, "--tables", table, "--checkpoint_path", onnx_dir,
                                                 *base, "--backend", "oneflow")
    assert "does not exist" in _fails(capsys, "--tables", table, "--checkpoint_path", str(tmp_path / "no"), *base)
    assert "exceeds the model's longest input 64" in _fails(
        capsys, "--tables", table, "--checkpoint_path", onnx_dir, *base, "--sequence_length", "128")
    assert os.listdir(tmp_path) == ["bad.tsv"]  # no output, no temporary file
