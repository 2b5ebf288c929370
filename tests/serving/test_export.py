"""Export to a Hugging Face folder and to ONNX: parity with the toolkit's own logits, bad input."""

import json
import os
import shutil
import subprocess

import numpy as np
import oneflow as flow
import onnx
import pytest

from model_compress.commands import export_model as export_job
from model_compress.commands.report import format_table
from model_compress.modeling.bert import BertForSequenceClassification, init_bert_weights
from model_compress.modeling.checkpoint import (
    module_state_numpy,
    read_safetensors,
    save_snapshot,
    write_legacy_snapshot,
)
from model_compress.modeling.config import BertConfig
from model_compress.modeling.pretrained import default_pretrained_dir
from model_compress.recipes.common import load_classifier
from model_compress.recipes.student import generate_student_model
from model_compress.serving.onnx_graph import build_classifier_onnx
from model_compress.serving.runners import OnnxRunner, encode_examples, run_batch
from model_compress.serving.speed import Throughput
from tests.conftest import REPO_ROOT, TINY_BERT
from tests.numpy_bert import bert_forward
from tests.support import cli_error

LABELS = ["negative", "positive"]
VOCAB = os.path.join(default_pretrained_dir(), "vocab.txt")


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    """A 4-layer tiny teacher with weights large enough for logits of order 1 (init std 0.2)."""
    flow.manual_seed(3)
    config = BertConfig(**TINY_BERT)
    model = BertForSequenceClassification(config)
    init_bert_weights(model, 0.2)
    path = str(tmp_path_factory.mktemp("teacher") / "snapshot_best")
    save_snapshot(model, path, config=config, meta={"labels": LABELS}, extra_files={"vocab.txt": VOCAB})
    return path


@pytest.fixture(scope="module")
def student_dir(teacher_dir, tmp_path_factory):
    """A student made the demo's way (teacher layers 1,3 kept by bert-pkd_generate_student_model)."""
    path = str(tmp_path_factory.mktemp("student") / "student_init")
    generate_student_model(teacher_dir, path, "1,3")
    return path


def sst2_batch(rows: int = 12, seq: int = 40, pairs: bool = True) -> dict:
    """Real rows of the shipped SST-2 dev set: singles and pairs, padded to different lengths."""
    from model_compress.data.processors import InputExample, get_processor
    from model_compress.data.tokenization import FullTokenizer

    texts = [ex.text_a for ex in get_processor("sst-2").get_examples(
        os.path.join(REPO_ROOT, "data", "glue_data", "SST-2"), "dev")[20:20 + rows + 1]]
    examples = [InputExample(str(i), texts[i], texts[i + 1] if pairs and i % 2 else None) for i in range(rows)]
    return encode_examples(examples, FullTokenizer(VOCAB), seq)


def toolkit_logits(snapshot: str, inputs: dict) -> np.ndarray:
    """Logits the way the toolkit's jobs compute them (load_classifier + the model's forward)."""
    model, _, _ = load_classifier(snapshot, len(LABELS), verbose=False)
    model.eval()
    with flow.no_grad():
        logits, _ = model(flow.tensor(inputs["input_ids"]), flow.tensor(inputs["token_type_ids"]),
                          flow.tensor(inputs["attention_mask"]))
    return logits.numpy()


def export(*argv):
    return export_job.main(list(argv))


def test_onnx_graph_matches_oneflow_and_numpy_reference():
    flow.manual_seed(5)
    config = BertConfig(vocab_size=300, num_labels=3, **TINY_BERT)
    model = BertForSequenceClassification(config).eval()
    init_bert_weights(model, 0.2)
    state = module_state_numpy(model)
    proto = build_classifier_onnx(state, config, {"labels": json.dumps(["a", "b", "c"])})
    onnx.checker.check_model(proto)
    assert proto.opset_import[0].version >= 13
    graph = proto.graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask", "token_type_ids"]
    assert all(i.type.tensor_type.elem_type == onnx.TensorProto.INT64 for i in graph.input)
    assert [d.dim_param for d in graph.input[0].type.tensor_type.shape.dim] == ["batch", "sequence"]
    assert [o.name for o in graph.output] == ["logits"]
    runner = OnnxRunner(proto)
    rs = np.random.RandomState(0)
    for batch, seq in ((5, 17), (2, 9)):  # dynamic batch and sequence axes
        ids = rs.randint(0, 300, (batch, seq))
        mask = np.ones((batch, seq), np.int64)
        mask[0, seq // 2:] = 0
        types = np.zeros((batch, seq), np.int64)
        types[-1, seq // 3:] = 1
        got = runner(ids, mask, types)
        with flow.no_grad():
            ours = model(flow.tensor(ids), flow.tensor(types), flow.tensor(mask))[0].numpy()
        reference = bert_forward(state, config, ids, mask, types).logits
        assert got.shape == (batch, 3) and np.abs(reference).max() > 0.3
        np.testing.assert_allclose(got, reference, atol=2e-5)
        np.testing.assert_allclose(got, ours, atol=2e-5)
    assert runner.metadata["labels"] == '["a", "b", "c"]'


def test_student_exports_to_both_formats_with_parity(student_dir, tmp_path, capsys):
    inputs = sst2_batch()
    expected = toolkit_logits(student_dir, inputs)
    assert np.abs(expected).max() > 0.3

    onnx_dir = str(tmp_path / "student_onnx")
    result = export("--model_dir", student_dir, "--format", "onnx", "--output_dir", onnx_dir)
    out = capsys.readouterr().out
    assert "parity with the OneFlow model: max |logit difference|" in out
    assert result.parity.ok and result.parity.rows == 16
    assert sorted(os.listdir(onnx_dir)) == ["config.json", "model.onnx", "special_tokens_map.json",
                                            "tokenizer_config.json", "vocab.txt"]
    runner = OnnxRunner(os.path.join(onnx_dir, "model.onnx"))
    np.testing.assert_allclose(run_batch(runner, inputs), expected, atol=1e-4 * max(1, np.abs(expected).max()))
    assert json.loads(runner.metadata["labels"]) == LABELS

    hf_dir = str(tmp_path / "student_hf")
    export("--model_dir", student_dir, "--format", "hf", "--output_dir", hf_dir)
    config = json.load(open(os.path.join(hf_dir, "config.json")))
    assert config["architectures"] == ["BertForSequenceClassification"] and config["model_type"] == "bert"
    assert config["num_labels"] == 2 and config["id2label"] == {"0": "negative", "1": "positive"}
    assert config["num_hidden_layers"] == 2 and config["label2id"] == {"negative": 0, "positive": 1}
    with open(os.path.join(hf_dir, "model.safetensors"), "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    assert header.pop("__metadata__") == {"format": "pt"}
    assert {entry["dtype"] for entry in header.values()} == {"F32"}
    weights = read_safetensors(os.path.join(hf_dir, "model.safetensors"))
    assert "bert.encoder.layer.1.attention.self.query.weight" in weights and "classifier.bias" in weights
    assert not any("layer.2." in key for key in weights)
    # the HF folder through the numpy reference BERT, keys and config as written (no toolkit reader)
    reference = bert_forward(weights, config, inputs["input_ids"], inputs["attention_mask"],
                             inputs["token_type_ids"]).logits
    np.testing.assert_allclose(reference, expected, atol=1e-4 * max(1, np.abs(expected).max()))
    tokenizer = json.load(open(os.path.join(hf_dir, "tokenizer_config.json")))
    assert tokenizer["tokenizer_class"] == "BertTokenizer" and tokenizer["do_lower_case"] is True
    assert open(os.path.join(hf_dir, "vocab.txt")).read() == open(VOCAB).read()


def test_legacy_objective_and_hf_snapshots_export(teacher_dir, tmp_path, capsys):
    inputs = sst2_batch(pairs=False)
    expected = toolkit_logits(teacher_dir, inputs)
    model, config, _ = load_classifier(teacher_dir, 2, verbose=False)
    state = module_state_numpy(model)

    legacy = str(tmp_path / "legacy")
    write_legacy_snapshot(state, legacy)
    config.to_json_file(os.path.join(legacy, "config.json"))  # 32 wide: heads cannot be inferred
    shutil.copy(VOCAB, os.path.join(legacy, "vocab.txt"))
    export("--model_dir", legacy, "--format", "onnx", "--output_dir", str(tmp_path / "legacy_onnx"),
           "--label_enumerate_values", "neg,pos")
    runner = OnnxRunner(str(tmp_path / "legacy_onnx" / "model.onnx"))
    np.testing.assert_allclose(run_batch(runner, inputs), expected, atol=1e-4)
    assert json.loads(runner.metadata["labels"]) == ["neg", "pos"]

    # a whole distillation objective: the student is exported, the projection left out
    objective = str(tmp_path / "objective")
    nested = {f"student.{k}": v for k, v in state.items()}
    nested["fit_dense.weight"] = np.zeros((48, 32), np.float32)
    nested["teacher.bert.pooler.dense.bias"] = np.zeros(32, np.float32)
    save_snapshot(nested, objective, config=config, meta={"labels": LABELS}, extra_files={"vocab.txt": VOCAB})
    export("--model_dir", objective, "--format", "hf", "--output_dir", str(tmp_path / "objective_hf"))
    assert "left out 2 training-only tensors (fit_dense.weight, teacher.bert.pooler.dense.bias)" in \
        capsys.readouterr().out

    # an exported HF folder is itself a snapshot the toolkit loads: export it on to ONNX
    export("--model_dir", str(tmp_path / "objective_hf"), "--format", "onnx", "--output_dir",
           str(tmp_path / "from_hf"))
    runner = OnnxRunner(str(tmp_path / "from_hf" / "model.onnx"))
    np.testing.assert_allclose(run_batch(runner, inputs), expected, atol=1e-4)
    assert json.loads(runner.metadata["labels"]) == LABELS


def _fails(capsys, *argv) -> str:
    return cli_error(capsys, export_job.main, argv)


def test_bad_input_gives_one_line_and_leaves_nothing(student_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert "does not exist" in _fails(capsys, "--model_dir", str(tmp_path / "missing"), "--format", "onnx",
                                      "--output_dir", str(out))
    out.mkdir()
    (out / "keep.txt").write_text("old")
    line = _fails(capsys, "--model_dir", student_dir, "--format", "onnx", "--output_dir", str(out))
    assert "already exists; pass --force" in line and os.listdir(out) == ["keep.txt"]
    assert "would replace the snapshot" in _fails(capsys, "--model_dir", student_dir, "--format", "hf",
                                                   "--output_dir", student_dir, "--force")

    model, config, _ = load_classifier(student_dir, 2, verbose=False)
    state = module_state_numpy(model)
    encoder_only = str(tmp_path / "encoder_only")
    save_snapshot({k: v for k, v in state.items() if not k.startswith("classifier.")}, encoder_only, config=config,
                  extra_files={"vocab.txt": VOCAB})
    assert "no classification head" in _fails(capsys, "--model_dir", encoder_only, "--format", "onnx",
                                              "--output_dir", str(tmp_path / "x"))
    two_layer_head = str(tmp_path / "two_layer_head")
    save_snapshot({**state, "classifier.dense.weight": np.zeros((32, 32), np.float32)}, two_layer_head,
                  config=config, extra_files={"vocab.txt": VOCAB})
    line = _fails(capsys, "--model_dir", two_layer_head, "--format", "hf", "--output_dir", str(tmp_path / "x"))
    assert "cannot express (classifier.dense.weight)" in line
    assert "x" not in os.listdir(tmp_path) and not [n for n in os.listdir(tmp_path) if n.startswith(".")]

    # a parity failure (tolerance 0 cannot be met in float32) writes nothing and keeps the old folder
    with pytest.raises(SystemExit) as exc:
        export("--model_dir", student_dir, "--format", "onnx", "--output_dir", str(out), "--force",
               "--tolerance", "0")
    assert exc.value.code == 1 and "failed the parity check" in capsys.readouterr().err
    assert os.listdir(out) == ["keep.txt"] and not [n for n in os.listdir(tmp_path) if n.startswith(".")]
    export("--model_dir", student_dir, "--format", "onnx", "--output_dir", str(out), "--force")
    assert "model.onnx" in os.listdir(out) and "keep.txt" not in os.listdir(out)


def test_throughput_medians_and_per_round_ratios():
    timing = Throughput(rows=32, seconds={"teacher": [2.0, 1.0, 9.0], "student": [1.0, 0.5, 3.0]})
    assert timing.rounds == 3
    assert timing.samples_per_second("teacher") == pytest.approx(16.0)
    # per-round ratios 2, 2, 3: the loaded third round is outvoted
    assert timing.speedup("student", "teacher") == pytest.approx(2.0)


def test_report_columns_stay_aligned_for_long_names():
    result = {"accuracy": 0.9, "parameters": 17_390_594, "model_size_mib": 66.3, "eval_samples_per_second": 55.1}
    table = format_table([("teacher (6 layers)", result), ("TinyBERT student (3 layers) of seed 42", result)])
    header, rule, *rows = table.splitlines()
    assert [len(line) for line in rows] == [len(header)] * 2 == [len(rule)] * 2
    assert all(line.endswith("1.00x") for line in rows)


def test_demo_tail_exports_and_times_interleaved(teacher_dir, student_dir, tmp_path):
    """run_scripts/demo_report.sh on finished runs: the distilled student (TinyBERT by default) exported to
    ONNX, then the interleaved table."""
    out = tmp_path / "demo"
    for run, snapshot, accuracy in (("teacher", teacher_dir, 0.9), ("student_tinybert", student_dir, 0.88),
                                    ("student_no_teacher", student_dir, 0.85)):
        (out / run).mkdir(parents=True)
        shutil.copytree(snapshot, out / run / "snapshot_best")
        result = {"accuracy": accuracy, "parameters": 1, "model_size_mib": 1.0, "eval_samples_per_second": 1.0,
                  "snapshot": str(out / run / "snapshot_best"),
                  "flags": {"eval_batch_size_per_device": 8, "seq_length": 16}}
        (out / run / "results_eval.json").write_text(json.dumps(result))
    script = os.path.join(REPO_ROOT, "run_scripts", "demo_report.sh")
    done = subprocess.run(["bash", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OUT": str(out), "SPEED_ROUNDS": "2",
                               # the report's plumbing is tested here, the gate's refusals in test_quantize
                               "INT8_MAX_DROP": "100"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert os.path.isfile(out / "student_tinybert_onnx" / "model.onnx")
    lines = done.stdout.splitlines()
    assert any(line.startswith("TinyBERT student (3 layers)") and line.endswith("x") for line in lines)
    assert "median of 2 interleaved rounds" in done.stdout
    assert any(line.startswith("TinyBERT student (3 layers) exported to ONNX, onnxruntime: ") for line in lines)
    # the int8 export beside it: its samples/s and its dev accuracy beside the fp32 export's (from its gate)
    assert any(line.startswith("TinyBERT student (3 layers) exported to int8 ONNX, onnxruntime: ") for line in lines)
    gate = json.load(open(out / "student_tinybert_int8" / "quantization.json"))["gate"]
    assert f"its dev accuracy {gate['int8_accuracy']:.4f} beside the fp32 export's {gate['fp32_accuracy']:.4f}" \
        in done.stdout and gate["rows"] == 300

    missing = subprocess.run(["bash", script], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "OUT": str(out), "STUDENT_ALGO": "kd"})
    assert missing.returncode == 2
    assert f"{out}/student_kd/results_eval.json missing" in missing.stderr
