"""Int8 classifiers through onnxruntime's quantization tools (no quantizer of our own).

The fp32 ONNX file that `onnx_graph` writes is quantized by ``onnxruntime.quantization``:

* ``dynamic`` (the default): int8 weights, activations quantized at run time per batch
  (``quantize_dynamic``: MatMul -> DynamicQuantizeLinear + MatMulInteger, fused by onnxruntime);
* ``static``: QDQ format, activation ranges calibrated (MinMax) on rows of the training table
  (``quantize_static`` with a calibration reader over encoded rows).

Which parts stay in float is a setting (``keep_float``), chosen by measurement (docs/serving.md):

* ``embeddings``  the word / position / token-type Gathers (int8 embedding tables shrink the file 4x);
* ``head``        the pooler and classifier MatMuls;
* ``attention``   the activation-by-activation MatMuls (q @ k^T, probabilities @ v).

The encoder's linear layers (QKV, attention output, intermediate, output) are always quantized.
LayerNormalization, Softmax, Erf/GELU and the residual Adds are never quantized: onnxruntime's
integer-ops mode has no kernels for them, and in QDQ mode they are left out of ``op_types_to_quantize``.
Parts are recognised by the initializer names ``onnx_graph`` gives the weights (``bert.embeddings.*``,
``bert.pooler.*``, ``classifier.*``), not by node names.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from model_compress.serving import SERVING_INPUTS, ServingError


class _RootWarningsOff:
    """Root-logger records below ERROR dropped while the block runs (onnxruntime's quantizer logs there)."""

    def __enter__(self) -> None:
        self.logger = logging.getLogger()
        self.level = self.logger.level
        self.logger.setLevel(logging.ERROR)

    def __exit__(self, *exc) -> None:
        self.logger.setLevel(self.level)

MODES = ("dynamic", "static")
FLOAT_PARTS = ("embeddings", "head", "attention")
DEFAULT_KEEP_FLOAT = ("head", "attention")
QUANTIZATION_KEY = "model_compress.quantization"  # ONNX metadata: the settings as JSON
PARTS = ("encoder", "head", "embeddings", "attention")


@dataclasses.dataclass(frozen=True)
class QuantizeSettings:
    """How to quantize: mode, per-channel weight scales, the parts kept in float."""

    mode: str = "dynamic"
    per_channel: bool = True
    keep_float: tuple[str, ...] = DEFAULT_KEEP_FLOAT

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ServingError(f"quantization mode {self.mode!r} is not one of {', '.join(MODES)}")
        unknown = [p for p in self.keep_float if p not in FLOAT_PARTS]
        if unknown:
            raise ServingError(f"--keep_float: unknown part(s) {', '.join(unknown)}; choose from "
                               f"{', '.join(FLOAT_PARTS)}")

    def describe(self) -> str:
        kept = ", ".join(self.keep_float) or "nothing"
        return (f"int8 {self.mode} ({'per-channel' if self.per_channel else 'per-tensor'} weights; "
                f"float: {kept}, LayerNorm, softmax, GELU)")


@dataclasses.dataclass
class QuantizeReport:
    settings: QuantizeSettings
    quantized: dict[str, int]  # part -> nodes quantized
    fp32_bytes: int
    int8_bytes: int

    def describe(self) -> str:
        counts = ", ".join(f"{part} {n}" for part, n in self.quantized.items() if n)
        return (f"{self.settings.describe()}; nodes quantized: {counts}; file {self.fp32_bytes / 2**20:.1f} -> "
                f"{self.int8_bytes / 2**20:.1f} MiB")


def graph_parts(model) -> dict[str, list[str]]:
    """Quantizable node names of an `onnx_graph` classifier, by part (see the module doc)."""
    weights = {t.name for t in model.graph.initializer}
    parts: dict[str, list[str]] = {p: [] for p in PARTS}
    for node in model.graph.node:
        if node.op_type == "Gather" and node.input[0].startswith("bert.embeddings."):
            parts["embeddings"].append(node.name)
        elif node.op_type == "MatMul":
            weight = next((name for name in node.input if name in weights), None)
            if weight is None:
                parts["attention"].append(node.name)
            elif weight.startswith(("bert.pooler.", "classifier.")):
                parts["head"].append(node.name)
            else:
                parts["encoder"].append(node.name)
    return parts


class CalibrationRows:
    """onnxruntime's CalibrationDataReader protocol over encoded rows, ``batch_size`` rows at a time."""

    def __init__(self, inputs: Mapping[str, np.ndarray], batch_size: int = 32) -> None:
        self.inputs = {name: np.asarray(inputs[name], np.int64) for name in SERVING_INPUTS}
        self.batch_size = batch_size
        self._batches: Iterator[dict[str, np.ndarray]] | None = None

    def __len__(self) -> int:
        return len(self.inputs["input_ids"])

    def _iterate(self) -> Iterator[dict[str, np.ndarray]]:
        for start in range(0, len(self), self.batch_size):
            yield {name: array[start:start + self.batch_size] for name, array in self.inputs.items()}

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._batches is None:
            self._batches = self._iterate()
        return next(self._batches, None)

    def rewind(self) -> None:
        self._batches = None


def quantize_onnx(
    fp32_path: str,
    int8_path: str,
    settings: QuantizeSettings,
    calibration: Mapping[str, np.ndarray] | None = None,
) -> QuantizeReport:
    """Write the int8 version of the classifier at ``fp32_path`` to ``int8_path``.

    ``calibration`` (encoded rows, as `runners.encode_examples` returns) is required for ``static``.
    The fp32 file's metadata (labels, casing, config) is kept; the settings are added to it.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static

    model = onnx.load(fp32_path)
    parts = graph_parts(model)
    chosen = ["encoder"] + [p for p in ("head", "embeddings", "attention") if p not in settings.keep_float]
    excluded = [name for part in PARTS if part not in chosen for name in parts[part]]
    op_types = ["MatMul"] + (["Gather"] if "embeddings" in chosen else [])
    extra = {"MatMulConstBOnly": "attention" not in chosen}
    # onnxruntime logs a root-logger advice to pre-process the model on every call (the graph here is
    # already shape-inferred and built for it): kept out of the output
    quiet = _RootWarningsOff()
    if settings.mode == "dynamic":
        with quiet:
            quantize_dynamic(fp32_path, int8_path, op_types_to_quantize=op_types, per_channel=settings.per_channel,
                             weight_type=QuantType.QInt8, nodes_to_exclude=excluded, extra_options=extra)
    else:
        if calibration is None or not len(calibration["input_ids"]):
            raise ServingError("static int8 quantization needs calibration rows (--calibration_data)")
        with quiet:
            quantize_static(fp32_path, int8_path, CalibrationRows(calibration), quant_format=QuantFormat.QDQ,
                            op_types_to_quantize=op_types, per_channel=settings.per_channel,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            nodes_to_exclude=excluded, calibrate_method=CalibrationMethod.MinMax,
                            extra_options={**extra, "ActivationSymmetric": False, "WeightSymmetric": True})
    quantized = onnx.load(int8_path)
    meta = {p.key: p.value for p in model.metadata_props}
    meta[QUANTIZATION_KEY] = json.dumps(dataclasses.asdict(settings), sort_keys=True)
    onnx.helper.set_model_props(quantized, meta)
    onnx.save_model(quantized, int8_path)
    counts = {part: (len(parts[part]) if part in chosen else 0) for part in PARTS}
    return QuantizeReport(settings, counts, os.path.getsize(fp32_path), os.path.getsize(int8_path))


def parse_keep_float(value: str | None) -> tuple[str, ...]:
    """`--keep_float head,attention` -> ('head', 'attention'); 'none' or '' keeps nothing in float."""
    if value is None:
        return DEFAULT_KEEP_FLOAT
    names = [v.strip() for v in value.split(",") if v.strip() and v.strip() != "none"]
    return tuple(dict.fromkeys(names))


def sample_rows(count: int, wanted: int, seed: int = 0) -> Sequence[int]:
    """``wanted`` row indices out of ``count`` (all when fewer), spread by a seeded permutation, sorted."""
    if count <= wanted:
        return range(count)
    return sorted(np.random.RandomState(seed).permutation(count)[:wanted].tolist())


QUANTIZATION_FILE = "quantization.json"


def quantize_folder(
    folder: str,
    settings: QuantizeSettings,
    dev_inputs: Mapping[str, np.ndarray],
    dev_labels: np.ndarray,
    calibration: Mapping[str, np.ndarray] | None = None,
    max_drop: float | None = None,
):
    """Replace ``folder``'s fp32 ``model.onnx`` by its int8 version if it passes the accuracy gate.

    Returns (QuantizeReport, GateResult) and records both in ``quantization.json``. Raises
    AccuracyGateError (figures attached) when the int8 model loses more than ``max_drop`` points; the
    folder then still holds the fp32 file (the caller, which owns the temporary folder, removes it).
    """
    from model_compress.modeling.checkpoint.atomic import write_json
    from model_compress.serving.gate import DEFAULT_MAX_DROP, AccuracyGateError, accuracy_gate
    from model_compress.serving.runners import ONNX_FILE, OnnxRunner

    fp32_path = os.path.join(folder, ONNX_FILE)
    int8_path = os.path.join(folder, "model.int8.onnx")
    report = quantize_onnx(fp32_path, int8_path, settings, calibration)
    gate = accuracy_gate(OnnxRunner(fp32_path, trim=True), OnnxRunner(int8_path, trim=True), dev_inputs, dev_labels,
                         DEFAULT_MAX_DROP if max_drop is None else max_drop)
    if not gate.ok:
        raise AccuracyGateError(f"the int8 model failed the accuracy gate: {gate.describe()}", gate)
    os.replace(int8_path, fp32_path)
    write_json(os.path.join(folder, QUANTIZATION_FILE),
               {"settings": dataclasses.asdict(settings), "quantized_nodes": report.quantized,
                "fp32_bytes": report.fp32_bytes, "int8_bytes": report.int8_bytes,
                "gate": {**dataclasses.asdict(gate), "drop": gate.drop}})
    return report, gate


def read_quantization(path: str) -> dict | None:
    """The ``quantization.json`` record of an int8 export (its folder or ONNX file), else None."""
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    record = os.path.join(folder, QUANTIZATION_FILE)
    if not os.path.isfile(record):
        return None
    with open(record, encoding="utf-8") as f:
        return json.load(f)
