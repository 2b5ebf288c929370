"""Checkpoint I/O: project snapshots, the OneFlow originals' legacy layout and Hugging Face safetensors.

Every reader returns a flat ``dict[str, numpy.ndarray]`` keyed like Hugging Face
``BertForSequenceClassification`` (``bert.embeddings.word_embeddings.weight`` ... ``classifier.bias``),
so checkpoints are independent of the ``nn.Module`` that will receive them. ``load_state_into`` copies
such a dict into a OneFlow module and reports what was missing or unexpected.

Formats (see docs/checkpoints.md):

* project snapshot: a directory written by ``flow.save(state_dict)`` (``pickled_data`` plus
  ``tensor_<n>/`` folders) with ``snapshot.json`` (config, score, step, task, meta) beside it.
  ``flow.load`` unpickles, so loading one prints a notice naming the path: load only trusted files.
* legacy layout of the OneFlow 0.1-0.5 originals: one folder per variable holding ``out``, raw
  little-endian float32 with dense kernels stored [in, out]; optimizer moments ``<name>-m``/``-v``.
* Hugging Face directory: ``model.safetensors`` + ``config.json``, parsed with numpy only.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import re
import shutil
import struct
import sys
import uuid
from collections.abc import Mapping
from typing import Any

import numpy as np

from model_compress.modeling.config import BertConfig

State = dict[str, np.ndarray]

SNAPSHOT_JSON = "snapshot.json"
SNAPSHOT_FORMAT = "model_compress.snapshot"
SNAPSHOT_VERSION = 1
CONFIG_JSON = "config.json"
FLOW_PICKLE = "pickled_data"  # written by flow.save
LEGACY_DONE = "snapshot_done"  # marker the originals' CheckPoint.save left in a finished snapshot
SAFETENSORS_FILE = "model.safetensors"
STUDENT_PREFIX = "student-"

__all__ = [
    "LoadReport",
    "State",
    "check_state_shapes",
    "expected_shape",
    "hf_to_legacy_name",
    "import_hf_safetensors",
    "infer_legacy_config",
    "legacy_to_hf_name",
    "load_snapshot",
    "load_state_into",
    "module_state_numpy",
    "read_legacy_snapshot",
    "read_safetensors",
    "save_snapshot",
    "select_prefix",
    "snapshot_format",
    "write_legacy_snapshot",
    "write_safetensors",
]


def _flow():
    """oneflow, imported on first use so that the numpy-only parts work without it."""
    from model_compress.runtime import require_oneflow

    return require_oneflow()


def _notice(message: str) -> None:
    sys.stderr.write(f"model_compress: {message}\n")
    sys.stderr.flush()


# ----------------------------------------------------------------------------------------------------
# Legacy (OneFlow 0.x originals) variable names
# ----------------------------------------------------------------------------------------------------
# Names come from the originals' graph code: flow.get_variable inside flow.scope.namespace("bert") /
# "embeddings" / "encoder" / "layer_<i>" ..., `_FullyConnected(name=...)` creating `<name>-weight`
# ([in, out], used as x @ W) and `<name>-bias`, `flow.layers.layer_norm(name="LayerNorm")` creating
# `LayerNorm-gamma`/`-beta`, the pooler in namespace "bert-pooler", and the classifier head
# `classification-output_weights` ([num_labels, hidden], used with transpose_b, i.e. already [out, in]).
# Students live in namespace "student" (prefix "student-"), with their TinyBERT/PKD projection
# `fit_dense-weight` ([fit_size, hidden], also transpose_b).

# legacy name -> (HF key, stored transposed)
_LEGACY_FIXED: dict[str, tuple[str, bool]] = {
    "bert-embeddings-word_embeddings": ("bert.embeddings.word_embeddings.weight", False),
    "bert-embeddings-position_embeddings": ("bert.embeddings.position_embeddings.weight", False),
    "bert-embeddings-token_type_embeddings": ("bert.embeddings.token_type_embeddings.weight", False),
    "bert-embeddings-LayerNorm-gamma": ("bert.embeddings.LayerNorm.weight", False),
    "bert-embeddings-LayerNorm-beta": ("bert.embeddings.LayerNorm.bias", False),
    "bert-pooler-dense-weight": ("bert.pooler.dense.weight", True),
    "bert-pooler-dense-bias": ("bert.pooler.dense.bias", False),
    "classification-output_weights": ("classifier.weight", False),
    "classification-output_bias": ("classifier.bias", False),
    "fit_dense-weight": ("fit_dense.weight", False),
    "fit_dense-bias": ("fit_dense.bias", False),
}

# legacy suffix after "bert-encoder-layer_<i>-" -> (HF suffix after "bert.encoder.layer.<i>.", transposed)
_LEGACY_LAYER: dict[str, tuple[str, bool]] = {}
for _legacy, _hf in (
    ("attention-self-query", "attention.self.query"),
    ("attention-self-key", "attention.self.key"),
    ("attention-self-value", "attention.self.value"),
    ("attention-output-dense", "attention.output.dense"),
    ("intermediate-dense", "intermediate.dense"),
    ("output-dense", "output.dense"),
):
    _LEGACY_LAYER[f"{_legacy}-weight"] = (f"{_hf}.weight", True)
    _LEGACY_LAYER[f"{_legacy}-bias"] = (f"{_hf}.bias", False)
for _legacy, _hf in (
    ("attention-output-LayerNorm", "attention.output.LayerNorm"),
    ("output-LayerNorm", "output.LayerNorm"),
):
    _LEGACY_LAYER[f"{_legacy}-gamma"] = (f"{_hf}.weight", False)
    _LEGACY_LAYER[f"{_legacy}-beta"] = (f"{_hf}.bias", False)

_HF_FIXED = {hf: (legacy, t) for legacy, (hf, t) in _LEGACY_FIXED.items()}
_HF_LAYER = {hf: (legacy, t) for legacy, (hf, t) in _LEGACY_LAYER.items()}
_LEGACY_LAYER_RE = re.compile(r"^bert-encoder-layer_(\d+)-(.+)$")
_HF_LAYER_RE = re.compile(r"^bert\.encoder\.layer\.(\d+)\.(.+)$")


def legacy_to_hf_name(name: str) -> tuple[str, bool] | None:
    """HF key for a legacy variable name (without ``student-``) and whether it is stored [in, out].

    Returns None for names that are not model parameters of the classifier (optimizer moments,
    ``System-Train-TrainStep-*``, learning-rate variables, pre-training heads such as ``cls-*``).
    """
    if name in _LEGACY_FIXED:
        return _LEGACY_FIXED[name]
    match = _LEGACY_LAYER_RE.match(name)
    if match and match.group(2) in _LEGACY_LAYER:
        hf, transposed = _LEGACY_LAYER[match.group(2)]
        return f"bert.encoder.layer.{match.group(1)}.{hf}", transposed
    return None


def hf_to_legacy_name(key: str) -> tuple[str, bool] | None:
    """Inverse of :func:`legacy_to_hf_name`; None for keys the legacy layout has no name for."""
    if key in _HF_FIXED:
        return _HF_FIXED[key]
    match = _HF_LAYER_RE.match(key)
    if match and match.group(2) in _HF_LAYER:
        legacy, transposed = _HF_LAYER[match.group(2)]
        return f"bert-encoder-layer_{match.group(1)}-{legacy}", transposed
    return None


def _is_non_model_variable(name: str) -> bool:
    """Optimizer moments, step counters and learning-rate variables the originals saved too."""
    return (
        name.endswith(("-m", "-v"))
        or name.startswith("System-")
        or "learning_rate" in name.lower()
        or "TrainStep" in name
    )


# ----------------------------------------------------------------------------------------------------
# Shapes implied by a config
# ----------------------------------------------------------------------------------------------------
def expected_shape(key: str, config: BertConfig) -> tuple[int, ...] | None:
    """Shape (HF convention, Linear weights [out, in]) a config implies for ``key``; None if unknown.

    A leading ``student.``/``teacher.`` wrapper prefix is ignored. ``fit_dense`` shapes depend on the
    teacher's width, which a single config does not know, so they return None.
    """
    key = re.sub(r"^(student|teacher)\.", "", key)
    h, i = config.hidden_size, config.intermediate_size
    fixed = {
        "bert.embeddings.word_embeddings.weight": (config.vocab_size, h),
        "bert.embeddings.position_embeddings.weight": (config.max_position_embeddings, h),
        "bert.embeddings.token_type_embeddings.weight": (config.type_vocab_size, h),
        "bert.embeddings.LayerNorm.weight": (h,),
        "bert.embeddings.LayerNorm.bias": (h,),
        "bert.pooler.dense.weight": (h, h),
        "bert.pooler.dense.bias": (h,),
        "classifier.weight": (config.num_labels, h),
        "classifier.bias": (config.num_labels,),
    }
    if key in fixed:
        return fixed[key]
    match = _HF_LAYER_RE.match(key)
    if not match or int(match.group(1)) >= config.num_hidden_layers:
        return None
    layer = {
        "intermediate.dense.weight": (i, h),
        "intermediate.dense.bias": (i,),
        "output.dense.weight": (h, i),
    }
    suffix = match.group(2)
    if suffix not in _HF_LAYER:
        return None
    if suffix in layer:
        return layer[suffix]
    if suffix.endswith(".weight") and "LayerNorm" not in suffix:
        return (h, h)
    return (h,)


def check_state_shapes(state: Mapping[str, np.ndarray], config: BertConfig) -> list[str]:
    """Human-readable problems where ``state`` disagrees with ``config`` (empty list when consistent)."""
    problems = []
    for key, value in state.items():
        want = expected_shape(key, config)
        if want is not None and tuple(value.shape) != want:
            problems.append(f"{key}: shape {tuple(value.shape)}, config implies {want}")
    return problems


def select_prefix(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The entries whose key starts with ``prefix`` (e.g. ``"student."``), with the prefix removed."""
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


# ----------------------------------------------------------------------------------------------------
# Atomic directory writes
# ----------------------------------------------------------------------------------------------------
def _sibling(path: str, tag: str) -> str:
    parent, name = os.path.split(os.path.abspath(path))
    return os.path.join(parent, f".{name}.{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _prepare_target(path: str) -> None:
    if os.path.lexists(path) and not os.path.isdir(path):
        raise FileExistsError(f"{path} exists and is not a directory; refusing to replace it with a snapshot")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


def _install_dir(tmp: str, path: str) -> None:
    """Move the finished directory ``tmp`` to ``path``, replacing an existing directory safely.

    The old directory is renamed aside first and deleted only after the new one is in place, so at
    every instant ``path`` is either the complete old snapshot or the complete new one.
    """
    if not os.path.lexists(path):
        os.rename(tmp, path)
        return
    old = _sibling(path, "old")
    os.rename(path, old)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.rename(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _write_json(path: str, obj: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=_json_default)
        f.write("\n")


# ----------------------------------------------------------------------------------------------------
# Module <-> numpy
# ----------------------------------------------------------------------------------------------------
def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "is_global") and value.is_global:
        flow = _flow()
        value = value.to_global(sbp=[flow.sbp.broadcast] * len(value.sbp)).to_local()
    if hasattr(value, "numpy"):
        if hasattr(value, "detach"):
            value = value.detach()
        if getattr(getattr(value, "device", None), "type", "cpu") != "cpu":
            value = value.cpu()
        return np.array(value.numpy())  # a copy: a CPU tensor's numpy() shares the tensor's memory
    return np.asarray(value)


def module_state_numpy(module: Any) -> State:
    """A copy of ``module.state_dict()`` as numpy arrays (global tensors are gathered: call it on every rank)."""
    return {key: _to_numpy(value) for key, value in module.state_dict().items()}


@dataclasses.dataclass
class LoadReport:
    """What :func:`load_state_into` did: keys copied, missing from the state, unused, or skipped."""

    loaded: list[str] = dataclasses.field(default_factory=list)
    missing: list[str] = dataclasses.field(default_factory=list)
    unexpected: list[str] = dataclasses.field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = dataclasses.field(default_factory=list)

    @staticmethod
    def _few(keys: list[str], limit: int = 4) -> str:
        shown = ", ".join(keys[:limit])
        return f" ({shown}{', ...' if len(keys) > limit else ''})" if keys else ""

    def summary(self) -> str:
        text = (
            f"loaded {len(self.loaded)} tensors; missing {len(self.missing)}{self._few(self.missing)}; "
            f"unexpected {len(self.unexpected)}{self._few(self.unexpected)}"
        )
        if self.mismatched:
            keys = [k for k, _, _ in self.mismatched]
            text += f"; shape-mismatched {len(keys)}{self._few(keys)}"
        return text

    def __str__(self) -> str:
        return self.summary()


def load_state_into(
    module: Any, state: Mapping[str, Any], strict_shapes: bool = True, verbose: bool = True
) -> LoadReport:
    """Copy ``state`` (numpy arrays or tensors) into ``module``'s parameters and buffers in place.

    Keys are matched exactly against ``module.state_dict()``. With ``strict_shapes`` a shape mismatch
    raises ValueError naming the key and both shapes (before anything is copied); otherwise the key
    is skipped and listed in ``report.mismatched``. Values are cast to the target's dtype. Prints the
    one-line summary when ``verbose``.
    """
    flow = _flow()
    targets = module.state_dict()
    report = LoadReport()
    plan = []
    for key, value in state.items():
        if key not in targets:
            report.unexpected.append(key)
            continue
        array = _to_numpy(value)
        target = targets[key]
        want = tuple(target.shape)
        if tuple(array.shape) != want:
            if strict_shapes:
                raise ValueError(f"{key}: checkpoint shape {tuple(array.shape)} != model shape {want}")
            report.mismatched.append((key, tuple(array.shape), want))
            continue
        plan.append((key, array, target))
    with flow.no_grad():
        for key, array, target in plan:
            if target.is_global:
                source = flow.tensor(
                    array,
                    dtype=target.dtype,
                    placement=target.placement,
                    sbp=[flow.sbp.broadcast] * len(target.sbp),
                ).to_global(sbp=target.sbp)
            else:
                source = flow.tensor(array, dtype=target.dtype, device=target.device)
            target.copy_(source)
            report.loaded.append(key)
    report.missing = [key for key in targets if key not in state]
    if verbose:
        print(f"model_compress: {report.summary()}")
    return report


# ----------------------------------------------------------------------------------------------------
# Project snapshots
# ----------------------------------------------------------------------------------------------------
def save_snapshot(
    module_or_state: Any,
    path: str,
    config: BertConfig | None = None,
    meta: Mapping[str, Any] | None = None,
    extra_files: Mapping[str, str] | None = None,
) -> str:
    """Write a project snapshot directory atomically and return its path.

    ``module_or_state`` is an ``nn.Module`` or a mapping of numpy arrays / local tensors. The
    directory holds the ``flow.save`` output (so plain ``flow.load(path)`` works), ``snapshot.json``
    (``config``, ``meta`` such as score/step/task, creation time), ``config.json`` when a config is
    given, and copies of ``extra_files`` (name in snapshot -> source path, e.g. ``vocab.txt``).

    Everything is written under a hidden temporary sibling that is renamed to ``path`` at the end; an
    existing snapshot at ``path`` is replaced only once the new one is complete. On any error the
    temporary directory is removed and ``path`` is left as it was. In multi-process runs call it
    on one rank only, with local tensors (e.g. from :func:`module_state_numpy`).
    """
    flow = _flow()
    state = module_or_state.state_dict() if hasattr(module_or_state, "state_dict") else module_or_state
    tensors = {}
    for key, value in state.items():
        if isinstance(value, np.ndarray):
            value = flow.tensor(np.ascontiguousarray(value))
        elif getattr(value, "is_global", False):
            value = flow.tensor(_to_numpy(value))
        tensors[str(key)] = value
    info = {
        "format": SNAPSHOT_FORMAT,
        "version": SNAPSHOT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "num_tensors": len(tensors),
        "config": config.to_dict() if config is not None else None,
        "meta": dict(meta or {}),
    }
    json.dumps(info, default=_json_default)  # fail on unserialisable meta before touching the disk
    _prepare_target(path)
    tmp = _sibling(path, "tmp")
    try:
        flow.save(tensors, tmp)
        for name, source in (extra_files or {}).items():
            shutil.copyfile(source, os.path.join(tmp, name))
        if config is not None:
            config.to_json_file(os.path.join(tmp, CONFIG_JSON))
        _write_json(os.path.join(tmp, SNAPSHOT_JSON), info)
        _install_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def snapshot_format(path: str) -> str | None:
    """``"project"``, ``"flow"`` (bare flow.save dir), ``"legacy"``, ``"hf"``, or None if none of them."""
    if os.path.isfile(path) and path.endswith(".safetensors"):
        return "hf"
    if not os.path.isdir(path):
        return None
    if os.path.isfile(os.path.join(path, SNAPSHOT_JSON)) and os.path.isfile(os.path.join(path, FLOW_PICKLE)):
        return "project"
    if os.path.isfile(os.path.join(path, FLOW_PICKLE)):
        return "flow"
    if os.path.isfile(os.path.join(path, SAFETENSORS_FILE)):
        return "hf"
    if _legacy_variables(path):
        return "legacy"
    return None


def _legacy_variables(path: str) -> list[str]:
    """Sub-folders of ``path`` that hold an ``out`` file (the legacy one-folder-per-variable layout)."""
    try:
        names = sorted(os.listdir(path))
    except OSError:
        return []
    return [n for n in names if os.path.isfile(os.path.join(path, n, "out"))]


def _config_beside(path: str) -> BertConfig | None:
    for name in (CONFIG_JSON, "bert_config.json"):
        candidate = os.path.join(path, name)
        if os.path.isfile(candidate):
            return BertConfig.from_json_file(candidate)
    return None


def load_snapshot(
    path: str, config: BertConfig | None = None, legacy_prefix: str | None = None
) -> tuple[State, BertConfig | None, dict[str, Any]]:
    """Read any supported checkpoint and return ``(state, config, meta)``.

    ``state`` maps HF-style keys to **numpy arrays** whatever the format (dtypes as saved for
    project snapshots, float32 from the other formats); ``meta`` is the snapshot's meta plus
    ``snapshot_format``. The format is detected:

    * project snapshot (``snapshot.json`` + flow.save files) -> config and meta from the json;
    * bare ``flow.save`` directory -> config from ``config.json`` beside it, if any;
    * legacy layout -> ``read_legacy_snapshot``; config from the argument, else ``config.json`` /
      ``bert_config.json`` in the directory, else inferred from variable sizes. ``legacy_prefix``
      picks the model inside it (``""`` plain/teacher, ``"student-"`` student); None chooses ``""``
      when un-prefixed BERT variables exist, else ``"student-"``;
    * Hugging Face directory or ``.safetensors`` file -> ``import_hf_safetensors``.

    Security: project and bare flow.save snapshots are read with ``flow.load``, which **unpickles**
    ``pickled_data`` and can run arbitrary code from a malicious file. A one-line notice naming the
    path goes to stderr every time; only load snapshots you or your team wrote. The legacy and
    safetensors readers parse raw bytes and JSON only.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint path {path} does not exist")
    fmt = snapshot_format(path)
    if fmt in ("project", "flow"):
        _notice(f"loading {path} with flow.load (unpickles; load only snapshots you trust)")
        loaded = _flow().load(path)
        if not isinstance(loaded, Mapping):
            raise ValueError(f"{path}: flow.load returned {type(loaded).__name__}, expected a state dict")
        state = {str(k): _to_numpy(v) for k, v in loaded.items()}
        meta: dict[str, Any] = {}
        found = None
        if fmt == "project":
            with open(os.path.join(path, SNAPSHOT_JSON), encoding="utf-8") as f:
                try:
                    info = json.load(f)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{os.path.join(path, SNAPSHOT_JSON)}: not valid JSON ({exc})") from None
            meta = dict(info.get("meta") or {})
            if info.get("config"):
                found = BertConfig.from_dict(info["config"])
        else:
            found = _config_beside(path)
        meta["snapshot_format"] = fmt
        return state, config or found, meta
    if fmt == "legacy":
        config = config or _config_beside(path)
        if legacy_prefix is None:
            names = _legacy_variables(path)
            legacy_prefix = "" if any(n.startswith("bert-") for n in names) else STUDENT_PREFIX
        if config is None:
            config = infer_legacy_config(path, legacy_prefix)
        skipped: list[str] = []
        state = read_legacy_snapshot(path, config, prefix=legacy_prefix, skipped=skipped)
        meta = {"snapshot_format": "legacy", "legacy_prefix": legacy_prefix, "skipped": skipped}
        return state, config, meta
    if fmt == "hf":
        state, found = import_hf_safetensors(path)
        return state, config or found, {"snapshot_format": "hf"}
    raise ValueError(
        f"{path} is not a checkpoint model_compress can read: expected a project snapshot "
        f"({SNAPSHOT_JSON} + {FLOW_PICKLE}), a flow.save directory, a legacy OneFlow snapshot "
        f"(folders like bert-embeddings-word_embeddings/out) or a Hugging Face directory "
        f"({SAFETENSORS_FILE} + {CONFIG_JSON})"
    )


# ----------------------------------------------------------------------------------------------------
# Legacy layout
# ----------------------------------------------------------------------------------------------------
_META_DIM_RE = re.compile(r"dim:\s*(\d+)")
_META_TYPE_RE = re.compile(r"data_type:\s*(\w+)")


def _read_legacy_out(folder: str) -> tuple[np.ndarray, tuple[int, ...] | None]:
    """Raw float32 values of ``folder/out`` and the shape from ``folder/meta`` when that exists.

    The originals' TF converter wrote only ``out``; later OneFlow versions also wrote a text-proto
    ``meta`` (``shape { dim: .. } data_type: kFloat``), which is honoured when present.
    """
    shape = None
    meta_path = os.path.join(folder, "meta")
    if os.path.isfile(meta_path):
        with open(meta_path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        kind = _META_TYPE_RE.search(text)
        if kind and kind.group(1) != "kFloat":
            raise ValueError(f"{meta_path}: data_type {kind.group(1)} is not supported (only kFloat)")
        shape = tuple(int(d) for d in _META_DIM_RE.findall(text))
    out = os.path.join(folder, "out")
    size = os.path.getsize(out)
    if size % 4:
        raise ValueError(f"{out}: {size} bytes is not a whole number of float32 values")
    return np.fromfile(out, dtype="<f4").astype(np.float32, copy=False), shape


def _legacy_model_names(path: str, prefix: str) -> dict[str, str]:
    """Legacy model variable name (prefix removed) -> folder name, for variables under ``prefix``."""
    result = {}
    for folder in _legacy_variables(path):
        if prefix:
            if not folder.startswith(prefix):
                continue
            name = folder[len(prefix) :]
        else:
            if folder.startswith(STUDENT_PREFIX):
                continue
            name = folder
        result[name] = folder
    return result


def infer_legacy_config(path: str, prefix: str = "") -> BertConfig:
    """A BertConfig read off the sizes of a legacy snapshot's variables.

    Sizes give hidden, vocab, position, type-vocab, intermediate, layer and label counts. The head
    count cannot be seen in the weights: it is taken as hidden / 64, the rule the originals used
    (``hidden_size = 64 * num_attention_heads``). Pass an explicit config when that is wrong.
    """
    names = _legacy_model_names(path, prefix)

    def count(name: str) -> int:
        if name not in names:
            raise ValueError(
                f"{path}: legacy snapshot has no variable {prefix}{name}; pass a config to read it"
            )
        return os.path.getsize(os.path.join(path, names[name], "out")) // 4

    hidden = count("bert-embeddings-LayerNorm-gamma")
    layers = [int(m.group(1)) for m in map(_LEGACY_LAYER_RE.match, names) if m]
    raw = {
        "hidden_size": hidden,
        "vocab_size": count("bert-embeddings-word_embeddings") // hidden,
        "max_position_embeddings": count("bert-embeddings-position_embeddings") // hidden,
        "type_vocab_size": count("bert-embeddings-token_type_embeddings") // hidden,
        "num_hidden_layers": max(layers) + 1 if layers else 0,
        "num_attention_heads": max(hidden // 64, 1) if hidden % 64 == 0 else 1,
    }
    if "bert-encoder-layer_0-intermediate-dense-bias" in names:
        raw["intermediate_size"] = count("bert-encoder-layer_0-intermediate-dense-bias")
    if "classification-output_bias" in names:
        raw["num_labels"] = count("classification-output_bias")
    return BertConfig.from_dict(raw)


def read_legacy_snapshot(
    path: str, config: BertConfig | None = None, prefix: str = "", skipped: list[str] | None = None
) -> State:
    """Read a legacy OneFlow snapshot directory into an HF-keyed numpy state.

    ``prefix`` selects whose variables to read: ``""`` for a plain or teacher model (``student-*``
    folders are then ignored), ``"student-"`` for the student of a distillation snapshot; the prefix
    is removed from the keys. Kernels stored [in, out] are transposed to [out, in]; the position
    table (stored [1, P, H] by OneFlow, [P, H] by the TF converter) becomes [P, H]. Optimizer
    moments (``-m``/``-v``), ``System-*`` step counters, learning-rate variables and names with no
    classifier meaning (e.g. pre-training ``cls-*`` heads) are skipped and appended to ``skipped``.
    The files do not store shapes, so ``config`` (default: inferred) gives them; a size that
    disagrees raises ValueError naming the folder.
    """
    if not os.path.isdir(path):
        raise FileNotFoundError(f"legacy snapshot directory {path} does not exist")
    if config is None:
        config = infer_legacy_config(path, prefix)
    skipped = skipped if skipped is not None else []
    state: State = {}
    for name, folder in _legacy_model_names(path, prefix).items():
        mapped = None if _is_non_model_variable(name) else legacy_to_hf_name(name)
        if mapped is None:
            skipped.append(folder)
            continue
        key, transposed = mapped
        values, stored_shape = _read_legacy_out(os.path.join(path, folder))
        shape = expected_shape(key, config)
        if shape is None:  # fit_dense: [out, hidden] with out from the size
            if key.endswith(".bias"):
                shape = (values.size,)
            elif values.size % config.hidden_size == 0:
                shape = (values.size // config.hidden_size, config.hidden_size)
            else:
                raise ValueError(
                    f"{path}/{folder}: {values.size} values do not fit hidden size {config.hidden_size}"
                )
        if values.size != math.prod(shape):
            raise ValueError(
                f"{path}/{folder}/out holds {values.size} float32 values, but {key} needs shape {shape} "
                f"({math.prod(shape)} values) under the config; pass the right config"
            )
        if stored_shape and math.prod(stored_shape) != values.size:
            raise ValueError(f"{path}/{folder}: meta shape {stored_shape} disagrees with the out file size")
        if transposed:
            array = values.reshape(shape[::-1]).T.copy()
        else:
            array = values.reshape(shape).copy()
        state[key] = array
    if not state:
        raise ValueError(f"{path}: no model variables with prefix {prefix!r} found in the legacy snapshot")
    return state


def write_legacy_snapshot(
    state: Mapping[str, Any], path: str, prefix: str = "", zero_moments: bool = False, strict: bool = True
) -> str:
    """Write an HF-keyed state in the originals' layout: ``<prefix><name>/out`` + ``snapshot_done``.

    Linear kernels are written [in, out] as the originals stored them; every file is raw
    little-endian float32 with no shape record. Keys that start with ``student.`` are written with
    the ``student-`` prefix (on top of ``prefix``), ``teacher.`` keys without a prefix, matching the
    originals' distillation jobs. ``zero_moments`` also writes zero ``-m``/``-v`` moment folders,
    as the originals' converter did for training jobs. Keys with no legacy name raise ValueError
    (``strict``) or are left out. The directory is written to a temporary sibling and renamed.
    """
    entries = []
    unknown = []
    for key, value in state.items():
        local_prefix, bare = prefix, key
        if bare.startswith("student."):
            local_prefix, bare = prefix + STUDENT_PREFIX, bare[len("student.") :]
        elif bare.startswith("teacher."):
            bare = bare[len("teacher.") :]
        mapped = hf_to_legacy_name(bare)
        if mapped is None:
            unknown.append(key)
            continue
        name, transposed = mapped
        array = _to_numpy(value).astype("<f4", copy=False)
        if transposed:
            if array.ndim != 2:
                raise ValueError(f"{key}: expected a 2-d Linear weight, got shape {array.shape}")
            array = array.T
        entries.append((local_prefix + name, np.ascontiguousarray(array)))
    if unknown and strict:
        raise ValueError(f"no legacy name for {len(unknown)} keys: {', '.join(unknown[:6])}")
    _prepare_target(path)
    tmp = _sibling(path, "tmp")
    try:
        os.makedirs(tmp)
        for name, array in entries:
            payloads = [(name, array)]
            if zero_moments:
                payloads += [(f"{name}-m", np.zeros_like(array)), (f"{name}-v", np.zeros_like(array))]
            for folder, data in payloads:
                os.makedirs(os.path.join(tmp, folder))
                with open(os.path.join(tmp, folder, "out"), "wb") as f:
                    f.write(data.tobytes())
        open(os.path.join(tmp, LEGACY_DONE), "wb").close()
        _install_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


# ----------------------------------------------------------------------------------------------------
# safetensors (numpy only)
# ----------------------------------------------------------------------------------------------------
_ST_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "BF16": "<u2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U8": "u1",
    "BOOL": "?",
}
_NP_TO_ST = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint8": "U8",
    "bool": "BOOL",
}
_MAX_HEADER = 100 * 1024 * 1024


def read_safetensors(path: str, float32: bool = True) -> dict[str, np.ndarray]:
    """Parse a ``.safetensors`` file with numpy: 8-byte little-endian header length, JSON header
    (``dtype``, ``shape``, ``data_offsets`` per tensor, optional ``__metadata__``), raw data.

    F64/F32/F16/BF16 and integer/bool dtypes are supported; with ``float32`` every floating tensor
    is returned as float32 (BF16 is widened exactly). A malformed file raises ValueError naming it.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"{path}: not a safetensors file ({size} bytes, no header length)")
        (length,) = struct.unpack("<Q", head)
        if length > size - 8 or length > _MAX_HEADER:
            raise ValueError(f"{path}: bad safetensors header length {length} for a {size}-byte file")
        try:
            header = json.loads(f.read(length).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: safetensors header is not valid JSON ({exc})") from None
        if not isinstance(header, dict):
            raise ValueError(f"{path}: safetensors header is not a JSON object")
        data = f.read()
    tensors: dict[str, np.ndarray] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
            shape = tuple(int(d) for d in shape)
            begin, end = int(begin), int(end)
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: tensor {name!r} has a malformed header entry {entry!r}") from None
        if dtype not in _ST_DTYPES:
            raise ValueError(f"{path}: tensor {name!r} has unsupported dtype {dtype!r}")
        np_dtype = np.dtype(_ST_DTYPES[dtype])
        count = math.prod(shape)
        if any(d < 0 for d in shape) or not 0 <= begin <= end <= len(data):
            raise ValueError(f"{path}: tensor {name!r} data_offsets {[begin, end]} outside the data area")
        if end - begin != count * np_dtype.itemsize:
            raise ValueError(
                f"{path}: tensor {name!r} spans {end - begin} bytes, but {dtype}{list(shape)} needs "
                f"{count * np_dtype.itemsize}"
            )
        array = np.frombuffer(data, dtype=np_dtype, count=count, offset=begin).reshape(shape)
        if dtype == "BF16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        elif float32 and array.dtype.kind == "f":
            array = array.astype(np.float32)
        else:
            array = array.copy()
        tensors[name] = array
    return tensors


def write_safetensors(
    tensors: Mapping[str, np.ndarray], path: str, metadata: Mapping[str, str] | None = None
) -> str:
    """Write numpy arrays as a ``.safetensors`` file (header padded to 8 bytes, as the format does)."""
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs, offset = [], 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        kind = _NP_TO_ST.get(array.dtype.name)
        if kind is None:
            raise ValueError(f"{name}: dtype {array.dtype} cannot be written to safetensors")
        raw = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {
            "dtype": kind,
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        blobs.append(raw)
        offset += len(raw)
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for raw in blobs:
            f.write(raw)
    os.replace(tmp, path)
    return path


def import_hf_safetensors(model_dir: str) -> tuple[State, BertConfig]:
    """Read a Hugging Face BERT (``model.safetensors`` + ``config.json``) into ``(state, config)``.

    ``model_dir`` is the directory (or the ``.safetensors`` file inside it). Keys of a bare
    ``BertModel`` (``embeddings.*``, ``encoder.*``, ``pooler.*``) get the ``bert.`` prefix; old-style
    ``LayerNorm.gamma/beta`` become ``weight/bias``; the ``position_ids`` buffer and other integer
    tensors are dropped; floats become float32. Shapes are checked against the config.
    """
    if os.path.isfile(model_dir):
        weights, model_dir = model_dir, os.path.dirname(model_dir)
    else:
        weights = os.path.join(model_dir, SAFETENSORS_FILE)
    for needed in (weights, os.path.join(model_dir, CONFIG_JSON)):
        if not os.path.isfile(needed):
            raise FileNotFoundError(f"Hugging Face checkpoint file {needed} is missing")
    config = BertConfig.from_json_file(os.path.join(model_dir, CONFIG_JSON))
    state: State = {}
    for key, array in read_safetensors(weights).items():
        if array.dtype.kind != "f":
            continue  # position_ids and similar buffers
        key = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", key)
        key = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", key)
        if key.startswith(("embeddings.", "encoder.", "pooler.")):
            key = "bert." + key
        state[key] = array
    problems = check_state_shapes(state, config)
    if problems:
        raise ValueError(f"{weights} does not match {CONFIG_JSON}: " + "; ".join(problems[:4]))
    return state, config
