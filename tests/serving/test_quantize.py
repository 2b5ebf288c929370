"""Int8 exports through onnxruntime's quantization tools: graph parts, the accuracy gate, serving."""

import json
import os

import numpy as np
import oneflow as flow
import onnx
import pytest

from model_compress.commands import export_model as export_job
from model_compress.commands import predict_tables as predict_job
from model_compress.data.processors import get_processor
from model_compress.data.tokenization import FullTokenizer
from model_compress.easynlp.app import main as easynlp_main
from model_compress.easynlp.app import run as easynlp_run
from model_compress.modeling.bert import BertForSequenceClassification, init_bert_weights
from model_compress.modeling.checkpoint import module_state_numpy, save_snapshot
from model_compress.modeling.config import BertConfig
from model_compress.modeling.pretrained import default_pretrained_dir
from model_compress.serving.gate import compare_on_labels
from model_compress.serving.onnx_graph import build_classifier_onnx
from model_compress.serving.quantize import graph_parts
from model_compress.serving.runners import OnnxRunner, encode_examples, run_batch
from tests.conftest import REPO_ROOT, TINY_BERT
from tests.support import cli_error

LABELS = ["negative", "positive"]
VOCAB = os.path.join(default_pretrained_dir(), "vocab.txt")
SHIPPED = os.path.join(REPO_ROOT, "data", "glue_data", "SST-2")


def tiny_classifier(seed: int):
    flow.manual_seed(seed)
    config = BertConfig(**TINY_BERT)
    model = BertForSequenceClassification(config)
    init_bert_weights(model, 0.2)  # logits of order 1
    return model.eval(), config


def save(model, config, path: str) -> str:
    save_snapshot(model, path, config=config, meta={"labels": LABELS}, extra_files={"vocab.txt": VOCAB})
    return path


def labelled_by_model(state, config, folder, rows: int = 300, keep: int = 80) -> None:
    """An SST-2 folder whose dev labels are the fp32 model's own predictions on its `keep` clearest rows
    (largest logit margin), so fp32 scores 100% there and every int8 flip costs accuracy; train.tsv is the
    shipped one (calibration rows)."""
    examples = get_processor("sst-2").get_examples(SHIPPED, "dev")[:rows]
    inputs = encode_examples(examples, FullTokenizer(VOCAB), 64)
    logits = run_batch(OnnxRunner(build_classifier_onnx(state, config)), inputs)
    clear = np.sort(np.argsort(-np.abs(logits[:, 1] - logits[:, 0]))[:keep])
    os.makedirs(folder)
    with open(os.path.join(folder, "dev.tsv"), "w", encoding="utf-8") as f:
        f.write("sentence\tlabel\n")
        for i in clear:
            f.write(f"{examples[i].text_a}\t{int(logits[i].argmax())}\n")
    with open(os.path.join(SHIPPED, "train.tsv"), encoding="utf-8") as src:
        lines = src.readlines()[:300]
    with open(os.path.join(folder, "train.tsv"), "w", encoding="utf-8") as f:
        f.writelines(lines)


@pytest.fixture(scope="module")
def sound(tmp_path_factory):
    """(snapshot, data folder): a tiny classifier and dev rows it labels itself."""
    root = tmp_path_factory.mktemp("int8")
    model, config = tiny_classifier(5)
    snapshot = save(model, config, str(root / "snapshot_best"))
    labelled_by_model(module_state_numpy(model), config, str(root / "data"))
    labels = [ex.label for ex in get_dev_examples(root / "data")]
    assert 10 < labels.count("1") < 70  # both classes among the gate's rows
    return snapshot, str(root / "data")


def get_dev_examples(folder):
    return get_processor("sst-2").get_examples(str(folder), "dev")


def ops(path: str) -> set[str]:
    return {node.op_type for node in onnx.load(path).graph.node}


def test_graph_parts_name_every_quantizable_node():
    model, config = tiny_classifier(1)
    parts = graph_parts(build_classifier_onnx(module_state_numpy(model), config))
    layers = config.num_hidden_layers
    assert {k: len(v) for k, v in parts.items()} == {"encoder": 4 * layers, "head": 2, "embeddings": 3,
                                                      "attention": 2 * layers}
    assert all(name.startswith(("bert.pooler.", "classifier.")) for name in parts["head"])


def test_gate_figures_and_verdict():
    fp32 = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 3.0]])
    labels = np.array([0, 1, 1, 1])  # fp32: 3 of 4 right
    same = compare_on_labels(fp32, fp32 + 0.1, labels)
    assert (same.fp32_accuracy, same.int8_accuracy, same.agreement) == (0.75, 0.75, 1.0)
    assert same.ok and same.drop == 0.0 and abs(same.max_logit_diff - 0.1) < 1e-12
    flipped = fp32.copy()
    flipped[1] = [1.0, 0.0]  # one right answer lost: 25 points
    worse = compare_on_labels(fp32, flipped, labels, max_drop=1.0)
    assert worse.int8_accuracy == 0.5 and worse.agreement == 0.75 and worse.drop == pytest.approx(25.0)
    assert not worse.ok and compare_on_labels(fp32, flipped, labels, max_drop=30.0).ok
    assert not compare_on_labels(fp32, fp32 * np.nan, labels, max_drop=100.0).ok
    assert "drop 25.00 points, limit 1" in worse.describe()


def test_dynamic_int8_export_passes_gate_and_serves(sound, tmp_path, capsys):
    snapshot, data = sound
    out = str(tmp_path / "int8")
    result = export_job.main(["--model_dir", snapshot, "--format", "onnx", "--quantize", "int8",
                              "--output_dir", out, "--parity_data", data])
    printed = capsys.readouterr().out
    assert "accuracy gate passed: dev accuracy fp32 100.00, int8" in printed and "over 80 rows" in printed
    assert result.gate.ok and result.gate.rows == 80 and result.gate.fp32_accuracy == 1.0
    assert result.gate.max_logit_diff > 0  # really a different model
    model_file = os.path.join(out, "model.onnx")
    assert "DynamicQuantizeLinear" in ops(model_file) and "MatMulInteger" in ops(model_file)
    assert sorted(os.listdir(out)) == ["config.json", "model.onnx", "quantization.json", "special_tokens_map.json",
                                       "tokenizer_config.json", "vocab.txt"]
    record = json.load(open(os.path.join(out, "quantization.json")))
    assert record["settings"]["mode"] == "dynamic" and record["gate"]["rows"] == 80
    assert record["quantized_nodes"]["encoder"] == 4 * TINY_BERT["num_hidden_layers"]
    meta = OnnxRunner(model_file).metadata
    assert json.loads(meta["labels"]) == LABELS and "model_compress.quantization" in meta

    # predict serves the int8 folder through onnxruntime; its predictions are the gate's
    table = str(tmp_path / "pred.tsv")
    stats = predict_job.main(["--tables", os.path.join(data, "dev.tsv"), "--outputs", table,
                              "--sequence_length", "64", "--checkpoint_path", out, "--append_cols", "label",
                              "--ort_threads", "1"])
    assert stats["backend"] == "onnxruntime" and stats["rows"] == 80
    rows = [line.rstrip("\n").split("\t") for line in open(table, encoding="utf-8")]
    right = sum(LABELS.index(pred) == int(label) for pred, label in rows)
    assert right == round(result.gate.int8_accuracy * 80)

    # and so does `easynlp --mode predict` (a headerless EasyNLP table)
    lines = open(os.path.join(data, "dev.tsv"), encoding="utf-8").readlines()[1:]
    (tmp_path / "easynlp.tsv").write_text("".join(lines), encoding="utf-8")
    done = easynlp_run(["--mode=predict", f"--tables={tmp_path / 'easynlp.tsv'}", f"--outputs={tmp_path / 'e.tsv'}",
                        "--input_schema=sent:str:1,label:str:1", "--first_sequence=sent", f"--checkpoint_path={out}",
                        "--sequence_length=64", "--micro_batch_size=16", "--output_schema=predictions",
                        "--append_cols=label"])
    assert done["snapshot"] == model_file
    assert [line.rstrip("\n").split("\t") for line in open(tmp_path / "e.tsv", encoding="utf-8")] == rows
    with pytest.raises(SystemExit) as too_long:
        easynlp_main(["--mode=predict", f"--tables={tmp_path / 'easynlp.tsv'}", f"--outputs={tmp_path / 'f.tsv'}",
                      "--input_schema=sent:str:1,label:str:1", "--first_sequence=sent", f"--checkpoint_path={out}",
                      "--sequence_length=65"])
    assert too_long.value.code == 2 and "longest input 64" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "f.tsv")


def test_static_int8_export_with_calibration_rows(sound, tmp_path, capsys):
    snapshot, data = sound
    out = str(tmp_path / "static")
    result = export_job.main(["--model_dir", snapshot, "--format", "onnx", "--quantize", "int8",
                              "--calibration_data", data, "--calibration_rows", "64", "--keep_float", "none",
                              "--output_dir", out, "--parity_data", data])
    assert result.gate.ok and result.quantization.settings.mode == "static"
    assert result.quantization.quantized == {"encoder": 16, "head": 2, "embeddings": 3, "attention": 8}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops(os.path.join(out, "model.onnx"))
    assert "int8 static" in capsys.readouterr().out


def test_gate_refuses_a_model_int8_cannot_hold(tmp_path, capsys):
    """A model int8 cannot hold: every LayerNorm outputs 0 on feature 0, and the weights reading that
    feature (query/key/value, intermediate) hold a huge value there. The fp32 model is unchanged (0 times
    anything), but each int8 weight column's scale is set by its outlier, so all its other weights round
    to 0: the int8 model loses its predictions and the export is refused."""
    model, config = tiny_classifier(5)
    with flow.no_grad():
        for name, param in model.named_parameters():
            if "LayerNorm" in name:
                param[0] = 0.0
        for name, param in model.named_parameters():
            if name.endswith(("query.weight", "key.weight", "value.weight", "intermediate.dense.weight")):
                param[:, 0] = 1e4
    damaged = save(model, config, str(tmp_path / "outliers"))
    labelled_by_model(module_state_numpy(model), config, str(tmp_path / "data"))
    with open(os.path.join(tmp_path, "data", "dev.tsv"), encoding="utf-8") as f:
        assert len(f.readlines()) == 81
    inputs = encode_examples(get_dev_examples(tmp_path / "data"), FullTokenizer(VOCAB), 64)
    fp32 = run_batch(OnnxRunner(build_classifier_onnx(module_state_numpy(model), config)), inputs)
    assert np.abs(fp32).max() > 0.3  # a working fp32 classifier
    out = str(tmp_path / "int8")
    with pytest.raises(SystemExit) as exit_info:
        export_job.main(["--model_dir", damaged, "--format", "onnx", "--quantize", "int8", "--output_dir", out,
                         "--parity_data", str(tmp_path / "data")])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "failed the accuracy gate: dev accuracy fp32 100.00" in err and "nothing was written" in err
    assert not os.path.exists(out)
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []  # no half-written sibling left


def test_int8_flags_checked(sound, tmp_path, capsys):
    snapshot, data = sound
    line = cli_error(capsys, export_job.main, ["--model_dir", snapshot, "--format", "hf", "--quantize", "int8",
                                               "--output_dir", str(tmp_path / "x"), "--parity_data", data])
    assert "--quantize int8 needs --format onnx" in line
    line = cli_error(capsys, export_job.main, ["--model_dir", snapshot, "--format", "onnx", "--quantize", "int8",
                                               "--keep_float", "softmax", "--output_dir", str(tmp_path / "y"),
                                               "--parity_data", data])
    assert "unknown part(s) softmax" in line
    assert not os.path.exists(tmp_path / "x") and not os.path.exists(tmp_path / "y")
