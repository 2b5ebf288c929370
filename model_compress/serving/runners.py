"""Inference runners: numpy batches in, numpy logits out, through OneFlow or onnxruntime.

Every runner is called as ``runner(input_ids, attention_mask, token_type_ids)`` with integer arrays
[batch, sequence] and returns float32 logits [batch, num_labels].

* :class:`OneFlowRunner` compiles the model into an ``nn.Graph`` once per input shape (or runs it
  eagerly); a batch smaller than an already compiled one of the same length is padded to it and the
  extra rows dropped, so a file's short last batch costs no new compilation.
* :class:`OnnxRunner` runs an ONNX file or in-memory model with onnxruntime's CPU provider; its
  batch and sequence axes are dynamic, so ``trim=True`` cuts each batch's trailing all-padding
  columns first (same logits: padded keys get zero attention).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence

import numpy as np

from model_compress.data.features import convert_examples_to_features, features_to_arrays
from model_compress.data.processors import InputExample
from model_compress.modeling.config import config_from_dict
from model_compress.serving import SERVING_INPUTS, ServingError
from model_compress.serving.onnx_graph import CONFIG_KEY
from model_compress.serving.servable import build_oneflow_model, load_servable

BACKENDS = ("oneflow", "onnxruntime")
ONNX_FILE = "model.onnx"
LABELS_KEY = "labels"  # ONNX metadata: label names (JSON list)
LOWER_CASE_KEY = "do_lower_case"  # ONNX metadata: tokenizer casing (JSON bool)


def encode_examples(examples: Sequence[InputExample], tokenizer, seq_length: int) -> dict[str, np.ndarray]:
    """int64 ``input_ids``, ``attention_mask``, ``token_type_ids`` [rows, seq_length] (serving names)."""
    unlabeled = [dataclasses.replace(ex, label=None) for ex in examples]
    arrays = features_to_arrays(convert_examples_to_features(unlabeled, [], seq_length, tokenizer),
                                ["input_ids", "input_mask", "segment_ids"])
    return {"input_ids": arrays["input_ids"].astype(np.int64),
            "attention_mask": arrays["input_mask"].astype(np.int64),
            "token_type_ids": arrays["segment_ids"].astype(np.int64)}


def run_batch(runner, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """Logits of ``runner`` on a dict of serving inputs (as :func:`encode_examples` returns)."""
    return runner(*(inputs[name] for name in SERVING_INPUTS))


def trim_padding(input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray):
    """Drop the columns after the batch's longest row (columns where every mask value is 0)."""
    used = np.flatnonzero(attention_mask.any(axis=0))
    length = int(used[-1]) + 1 if used.size else 1
    return input_ids[:, :length], attention_mask[:, :length], token_type_ids[:, :length]


class OneFlowRunner:
    """A ``BertForSequenceClassification`` (eval mode) as an nn.Graph, or eager with ``eager=True``."""

    backend = "oneflow"

    def __init__(self, model, eager: bool = False) -> None:
        from model_compress.training.graph import make_eval_step
        from model_compress.training.objectives import ClassifierLogits

        self.module = ClassifierLogits(model)
        self.eager = eager
        self._make = make_eval_step
        self._graphs: dict[tuple[int, int], object] = {}

    def _step(self, rows: int, length: int):
        if self.eager:
            return rows, self._graphs.setdefault((0, 0), self._make(self.module, eager=True))
        fitting = [b for b, n in self._graphs if n == length and b >= rows]
        if fitting:
            rows = min(fitting)
        elif (rows, length) not in self._graphs:
            self._graphs[(rows, length)] = self._make(self.module)
        return rows, self._graphs[(rows, length)]

    def __call__(self, input_ids, attention_mask, token_type_ids) -> np.ndarray:
        import oneflow as flow

        rows, length = input_ids.shape
        padded_rows, step = self._step(rows, length)
        tensors = []
        for array in (input_ids, attention_mask, token_type_ids):
            array = np.asarray(array, dtype=np.int32)
            if padded_rows > rows:
                array = np.concatenate([array, np.repeat(array[-1:], padded_rows - rows, axis=0)])
            tensors.append(flow.tensor(np.ascontiguousarray(array)))
        ids, mask, types = tensors
        return step(ids, mask, types).numpy()[:rows]


class OnnxRunner:
    """An ONNX classifier (file path or ``onnx.ModelProto``) in an onnxruntime CPU session."""

    backend = "onnxruntime"

    def __init__(self, model, threads: int = 0, trim: bool = False) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ServingError("onnxruntime is not installed: run `bash run_scripts/setup_env.sh`") from None
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only
        if threads:
            options.intra_op_num_threads = threads
        source = model if isinstance(model, str) else model.SerializeToString()
        try:
            self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            where = model if isinstance(model, str) else "the ONNX model"
            raise ServingError(f"onnxruntime cannot load {where}: {str(exc).splitlines()[0]}") from None
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.trim = trim

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def __call__(self, input_ids, attention_mask, token_type_ids) -> np.ndarray:
        arrays = [np.asarray(a, dtype=np.int64) for a in (input_ids, attention_mask, token_type_ids)]
        if self.trim:
            arrays = trim_padding(*arrays)
        feed = dict(zip(SERVING_INPUTS, arrays))
        return self.session.run(["logits"], {name: feed[name] for name in self.input_names})[0]


@dataclasses.dataclass
class Classifier:
    """A runner plus what it takes to feed it: label names, vocab, casing and longest sequence."""

    runner: object
    labels: list[str]
    vocab_file: str | None
    do_lower_case: bool | None
    max_length: int | None

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        return run_batch(self.runner, inputs)


def onnx_file(path: str) -> str | None:
    """The ONNX file ``path`` names (the file, or ``model.onnx`` in the folder), else None."""
    if os.path.isfile(path) and path.endswith(".onnx"):
        return path
    inside = os.path.join(path, ONNX_FILE)
    return inside if os.path.isdir(path) and os.path.isfile(inside) else None


def open_classifier(path: str, backend: str | None = None, labels: Sequence[str] | None = None,
                    threads: int = 0) -> Classifier:
    """A classifier from a snapshot (any format the toolkit reads) or an exported ONNX file/folder.

    ``backend`` is ``"oneflow"`` (nn.Graph; snapshots only) or ``"onnxruntime"`` (an ONNX file, or a
    snapshot converted in memory); None chooses onnxruntime for ONNX files and OneFlow otherwise.
    ``threads``: onnxruntime's intra-op threads (0: its default, one per physical core).
    """
    if not os.path.exists(path):
        raise ServingError(f"{path} does not exist")
    exported = onnx_file(path)
    backend = backend or ("onnxruntime" if exported else "oneflow")
    if backend not in BACKENDS:
        raise ServingError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    folder = os.path.dirname(exported) if exported else (path if os.path.isdir(path) else os.path.dirname(path))
    vocab = os.path.join(folder, "vocab.txt")
    vocab = vocab if os.path.isfile(vocab) else None
    if exported:
        if backend != "onnxruntime":
            raise ServingError(f"{path} is an ONNX model: use --backend onnxruntime")
        runner = OnnxRunner(exported, threads=threads, trim=True)
        meta = runner.metadata
        names = list(labels or json.loads(meta.get(LABELS_KEY, "null")) or [])
        lower = json.loads(meta[LOWER_CASE_KEY]) if LOWER_CASE_KEY in meta else None
        stored = json.loads(meta.get(CONFIG_KEY, "{}"))
        longest = config_from_dict(stored).max_seq_length if stored.get("max_position_embeddings") else None
        return Classifier(runner, names, vocab, lower, longest)

    servable = load_servable(path, labels)
    if backend == "oneflow":
        runner = OneFlowRunner(build_oneflow_model(servable.state, servable.config))
    else:
        from model_compress.serving.onnx_graph import build_classifier_onnx

        runner = OnnxRunner(build_classifier_onnx(servable.state, servable.config), threads=threads, trim=True)
    return Classifier(runner, servable.labels, vocab, None, servable.config.max_seq_length)


def classify_examples(model: Classifier, examples: Sequence[InputExample], seq_length: int, batch_size: int,
                      vocab_file: str | None = None) -> np.ndarray:
    """Logits [rows, labels] of ``model`` over ``examples``, tokenized with its own vocab and casing."""
    from model_compress.data.tokenization import FullTokenizer

    vocab = vocab_file or model.vocab_file
    if not vocab or not os.path.isfile(vocab):
        raise ServingError("no vocab.txt beside the model: pass --vocab_file")
    tokenizer = FullTokenizer(vocab, do_lower_case=True if model.do_lower_case is None else model.do_lower_case)
    batches = [model(encode_examples(examples[s:s + batch_size], tokenizer, seq_length))
               for s in range(0, len(examples), batch_size)]
    return np.concatenate(batches) if batches else np.zeros((0, len(model.labels)), np.float32)
