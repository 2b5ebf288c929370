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
from collections.abc import Mapping

import numpy as np

from model_compress.modeling.checkpoint import load_snapshot
from model_compress.modeling.checkpoint.atomic import install_dir, sibling
from model_compress.serving import ServingError
from model_compress.serving.parity import ParityError, ParityResult, compare_logits
from model_compress.serving.runners import LABELS_KEY, LOWER_CASE_KEY, ONNX_FILE, OneFlowRunner, OnnxRunner, run_batch
from model_compress.serving.servable import Servable, build_oneflow_model

FORMATS = ("hf", "onnx")


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
