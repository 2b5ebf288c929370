"""Export a classifier snapshot (any format the toolkit reads) as a Hugging Face folder or an ONNX file.

An export is written under a hidden temporary sibling of the output directory, checked for parity
against the OneFlow model (logits on real rows, through the files just written), and only then
renamed into place; any failure removes the temporary directory, so nothing half-written is left.

Folder contents:

* ``hf``: ``config.json``, ``model.safetensors``, ``vocab.txt``, ``tokenizer_config.json``,
  ``special_tokens_map.json`` (see :mod:`model_compress.serving.hf`);
* ``onnx``: ``model.onnx`` (see :mod:`model_compress.serving.onnx_graph`; label names and casing in its
  metadata) plus the same ``config.json`` and tokenizer files, so the folder is self-describing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Mapping, Sequence

import numpy as np

from model_compress.modeling.checkpoint import check_state_shapes, classifier_state, load_snapshot, load_state_into
from model_compress.modeling.checkpoint.atomic import install_dir, sibling
from model_compress.modeling.classifiers import build_classifier, head_num_labels
from model_compress.modeling.config import BertConfig, EncoderConfig, MPNetConfig
from model_compress.serving import ServingError
from model_compress.serving.parity import ParityError, ParityResult, compare_logits
from model_compress.serving.runners import LABELS_KEY, LOWER_CASE_KEY, ONNX_FILE, OneFlowRunner, OnnxRunner, run_batch

FORMATS = ("hf", "onnx")


@dataclasses.dataclass
class Servable:
    """A classifier ready to export: exactly the BertForSequenceClassification tensors, config, labels."""

    state: dict[str, np.ndarray]
    config: BertConfig
    labels: list[str]
    source: str
    dropped: list[str] = dataclasses.field(default_factory=list)  # training-only tensors left out


@dataclasses.dataclass
class ExportResult:
    output_dir: str
    format: str
    files: list[str]
    parity: ParityResult
    quantization: object | None = None  # quantize.QuantizeReport of an int8 export
    gate: object | None = None  # gate.GateResult of an int8 export


@dataclasses.dataclass
class Int8Request:
    """An int8 export: the settings, the labelled dev rows of the accuracy gate, calibration rows (static)."""

    settings: object  # quantize.QuantizeSettings
    dev_inputs: Mapping[str, np.ndarray]
    dev_labels: np.ndarray
    calibration: Mapping[str, np.ndarray] | None = None
    max_accuracy_drop: float = 1.0


def mpnet_classifier_keys(config: MPNetConfig) -> list[str]:
    """The tensor names of an MPNetForSequenceClassification with this config (HF convention)."""
    layer = [f"attention.attn.{n}" for n in "qkvo"] + [
        "attention.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm"]
    modules = ["mpnet.embeddings.LayerNorm", "classifier.dense", "classifier.out_proj"]
    modules += [f"mpnet.encoder.layer.{i}.{m}" for i in range(config.num_hidden_layers) for m in layer]
    keys = [f"mpnet.embeddings.{n}_embeddings.weight" for n in ("word", "position")]
    keys.append("mpnet.encoder.relative_attention_bias.weight")
    return keys + [f"{m}.{p}" for m in modules for p in ("weight", "bias")]


def classifier_keys(config: EncoderConfig) -> list[str]:
    """The tensor names of a BertForSequenceClassification (MPNetForSequenceClassification) with this config."""
    if isinstance(config, MPNetConfig):
        return mpnet_classifier_keys(config)
    layer = [f"attention.self.{n}" for n in ("query", "key", "value")] + [
        "attention.output.dense", "attention.output.LayerNorm", "intermediate.dense", "output.dense",
        "output.LayerNorm"]
    modules = ["bert.embeddings.LayerNorm", "bert.pooler.dense", "classifier"]
    modules += [f"bert.encoder.layer.{i}.{m}" for i in range(config.num_hidden_layers) for m in layer]
    keys = [f"bert.embeddings.{n}_embeddings.weight" for n in ("word", "position", "token_type")]
    return keys + [f"{m}.{p}" for m in modules for p in ("weight", "bias")]


def _few(keys: Sequence[str], limit: int = 4) -> str:
    return ", ".join(keys[:limit]) + (", ..." if len(keys) > limit else "")


def servable_state(
    state: Mapping[str, np.ndarray], config: BertConfig, source: str
) -> tuple[dict[str, np.ndarray], list[str]]:
    """(classifier tensors as float32, names of the training-only tensors left out).

    Raises ServingError when the classifier head is missing, when the head or encoder holds tensors a
    BertForSequenceClassification (one Linear over the tanh-pooled [CLS] state) has no place for, or
    when shapes disagree with the config.
    """
    wanted = classifier_keys(config)
    missing = [k for k in wanted if k not in state]
    if any(k.startswith("classifier.") for k in missing):
        raise ServingError(
            f"{source} has no classification head (classifier.weight/bias): an encoder-only snapshot "
            "cannot be served as a classifier; fine-tune it on a task first")
    if missing:
        raise ServingError(f"{source} lacks {len(missing)} tensors a BertForSequenceClassification needs "
                           f"({_few(missing)})")
    extra = sorted(k for k in state if k not in set(wanted))
    inexpressible = [k for k in extra if k.startswith(("bert.", "mpnet.", "classifier."))]
    if inexpressible:
        raise ServingError(
            f"{source} has a head or encoder tensors the export formats cannot express ({_few(inexpressible)}): "
            "they hold a BertForSequenceClassification, i.e. one Linear layer over the pooled [CLS] state")
    chosen = {k: np.asarray(state[k], dtype=np.float32) for k in wanted}
    problems = check_state_shapes(chosen, config)
    if problems:
        raise ServingError(f"{source} does not match its config: {'; '.join(problems[:3])}")
    return chosen, extra


def _hf_labels(model_dir: str) -> list[str] | None:
    path = os.path.join(model_dir, "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            id2label = json.load(f).get("id2label")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(id2label, dict):
        return None
    try:
        return [str(id2label[k]) for k in sorted(id2label, key=int)]
    except (TypeError, ValueError):
        return None


def load_servable(model_dir: str, labels: Sequence[str] | None = None) -> Servable:
    """Read a snapshot (project, legacy OneFlow or HF) and keep the classifier it holds.

    Distillation snapshots holding a whole objective give their ``student.`` model. Label names come
    from ``labels``, else the snapshot's meta (project) or ``id2label`` (HF), else ``"0" .. "N-1"``.
    """
    if not os.path.exists(model_dir):
        raise ServingError(f"--model_dir {model_dir} does not exist")
    try:
        state, config, meta = load_snapshot(model_dir)
    except (FileNotFoundError, ValueError) as exc:
        raise ServingError(str(exc)) from None
    if config is None:
        raise ServingError(f"{model_dir} has no config (config.json / snapshot.json); cannot export it")
    if not isinstance(config, EncoderConfig):
        raise ServingError(f"{model_dir} holds a {getattr(config, 'model_type', type(config).__name__)} model: "
                           "export and predict serve BERT classifiers (evaluate it with its --do_eval script)")
    selected = classifier_state(state)
    head = head_num_labels(selected)
    if head is not None and head != config.num_labels:
        config = config.replace(num_labels=head)
    chosen, dropped = servable_state(selected, config, model_dir)
    if selected is not state:  # a distillation objective: its student was chosen, the rest is left out
        dropped = sorted(k for k in state if k.partition("student.")[2] not in chosen)
    found = labels or meta.get("labels") or (_hf_labels(model_dir) if meta.get("snapshot_format") == "hf" else None)
    names = [str(label) for label in found] if found else [str(i) for i in range(config.num_labels)]
    if len(names) != config.num_labels:
        raise ServingError(f"{model_dir}: {len(names)} label names ({_few(names)}) for a head of "
                           f"{config.num_labels} labels")
    return Servable(chosen, config, names, model_dir, dropped)


def build_oneflow_model(state: Mapping[str, np.ndarray], config: BertConfig):
    """A OneFlow classifier of the config's family in eval mode holding ``state`` (every key must fit)."""
    model = build_classifier(config.replace(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    report = load_state_into(model, state, verbose=False)
    if report.missing or report.unexpected:
        raise ServingError(f"tensors do not fit {type(model).__name__}: {report.summary()}")
    return model.eval()


def check_output_dir(output_dir: str, force: bool, source: str) -> None:
    """Refuse an existing output without ``force``, a file in its place, or one that holds the source."""
    target, origin = os.path.realpath(output_dir), os.path.realpath(source)
    if target == origin or origin.startswith(target + os.sep):
        raise ServingError(f"--output_dir {output_dir} would replace the snapshot being exported ({source})")
    if os.path.lexists(output_dir):
        if not os.path.isdir(output_dir):
            raise ServingError(f"--output_dir {output_dir} exists and is not a directory")
        if not force:
            raise ServingError(f"--output_dir {output_dir} already exists; pass --force to replace it")


def _write_onnx_folder(tmp: str, servable: Servable, vocab_file: str, do_lower_case: bool) -> list[str]:
    from model_compress.serving.hf import write_hf_config, write_tokenizer_files
    from model_compress.serving.onnx_graph import build_classifier_onnx, save_onnx

    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ServingError("the onnx package is not installed: run `bash run_scripts/setup_env.sh`") from None
    metadata = {LABELS_KEY: json.dumps(servable.labels), LOWER_CASE_KEY: json.dumps(do_lower_case)}
    model = build_classifier_onnx(servable.state, servable.config, metadata)
    files = save_onnx(model, os.path.join(tmp, ONNX_FILE))
    files.append(write_hf_config(tmp, servable.config, servable.labels))
    return files + write_tokenizer_files(tmp, vocab_file, do_lower_case, servable.config.max_seq_length)


def _exported_logits(tmp: str, fmt: str, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """Logits of the files just written: ONNX through onnxruntime, HF re-read by the toolkit's reader."""
    if fmt == "onnx":
        runner = OnnxRunner(os.path.join(tmp, ONNX_FILE))
    else:
        state, config, _ = load_snapshot(tmp)
        runner = OneFlowRunner(build_oneflow_model(state, config), eager=True)
    return run_batch(runner, inputs)


def export_servable(
    servable: Servable,
    fmt: str,
    output_dir: str,
    vocab_file: str,
    parity_inputs: Mapping[str, np.ndarray],
    do_lower_case: bool = True,
    force: bool = False,
    tolerance: float | None = None,
    int8: Int8Request | None = None,
) -> ExportResult:
    """Write ``servable`` as ``fmt`` to ``output_dir`` after a parity check on ``parity_inputs``.

    ``parity_inputs`` are int ``input_ids``/``attention_mask``/``token_type_ids`` [rows, seq]. With
    ``int8`` (ONNX only) the parity-checked fp32 file is then quantized and must pass the accuracy gate
    (`serving.quantize.quantize_folder`). Raises ServingError for user mistakes, ParityError when the
    exported logits are off and AccuracyGateError when the int8 model loses too much accuracy; in each
    case nothing is left at ``output_dir`` (an existing directory replaced with ``force`` stays as it was).
    """
    from model_compress.serving.hf import write_hf_folder
    from model_compress.serving.parity import TOLERANCE
    if fmt not in FORMATS:
        raise ServingError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    if int8 is not None and fmt != "onnx":
        raise ServingError("--quantize int8 needs --format onnx")
    if not os.path.isfile(vocab_file):
        raise ServingError(f"vocab file {vocab_file} does not exist")
    check_output_dir(output_dir, force, servable.source)
    reference = run_batch(OneFlowRunner(build_oneflow_model(servable.state, servable.config), eager=True),
                          parity_inputs)
    os.makedirs(os.path.dirname(os.path.abspath(output_dir)), exist_ok=True)
    tmp = sibling(output_dir, "tmp")
    os.makedirs(tmp)
    try:
        if fmt == "hf":
            files = write_hf_folder(tmp, servable.state, servable.config, servable.labels, vocab_file, do_lower_case)
        else:
            files = _write_onnx_folder(tmp, servable, vocab_file, do_lower_case)
        parity = compare_logits(reference, _exported_logits(tmp, fmt, parity_inputs),
                                TOLERANCE if tolerance is None else tolerance)
        if not parity.ok:
            raise ParityError(f"{fmt} export of {servable.source} failed the parity check: {parity.describe()}")
        report = gate = None
        if int8 is not None:
            from model_compress.serving.quantize import QUANTIZATION_FILE, quantize_folder

            report, gate = quantize_folder(tmp, int8.settings, int8.dev_inputs, int8.dev_labels, int8.calibration,
                                           int8.max_accuracy_drop)
            files.append(os.path.join(tmp, QUANTIZATION_FILE))
        install_dir(tmp, output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    names = sorted(os.path.relpath(f, tmp) for f in files)
    return ExportResult(output_dir, fmt, names, parity, report, gate)
