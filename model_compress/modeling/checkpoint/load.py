"""Reading any supported checkpoint: format detection and ``load_snapshot``."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import Any

from model_compress.finite import NonFiniteError, require_finite
from model_compress.modeling.checkpoint.hf import SAFETENSORS_FILE, import_hf_safetensors
from model_compress.modeling.checkpoint.legacy import (
    STUDENT_PREFIX,
    infer_legacy_config,
    legacy_variables,
    read_legacy_snapshot,
)
from model_compress.modeling.checkpoint.project import CONFIG_JSON, FLOW_PICKLE, SNAPSHOT_JSON
from model_compress.modeling.checkpoint.state import State, flow_module, to_numpy
from model_compress.modeling.config import BertConfig, config_from_dict, config_from_json_file


class CheckpointError(ValueError):
    """A checkpoint that exists but cannot be read (damaged, truncated, inconsistent); names the path."""


def _notice(message: str) -> None:
    """One line on stderr, from the first process only when a launcher started several (RANK > 0; OneFlow
    sets -1 in a process it did not launch)."""
    if int(os.environ.get("RANK", "0") or 0) > 0:
        return
    sys.stderr.write(f"model_compress: {message}\n")
    sys.stderr.flush()


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
    if legacy_variables(path):
        return "legacy"
    return None



def choose_legacy_prefix(path: str, prefer_student: bool = False, quiet: bool = False) -> str:
    """The variable prefix of the model to read from a legacy snapshot.

    The originals save teacher (``bert-*``) and student (``student-bert-*``) side by side when
    ``SERVE_FOR_ONLINE=False``: a student role takes ``student-``, any other role the teacher, and
    a notice says which was taken. With one model inside, that one.
    """
    names = legacy_variables(path)
    has_student = any(n.startswith(STUDENT_PREFIX + "bert-") for n in names)
    has_plain = any(n.startswith("bert-") for n in names)
    if has_student and has_plain:
        prefix = STUDENT_PREFIX if prefer_student else ""
        which = "student (student-bert-*)" if prefer_student else "teacher (bert-*)"
        if not quiet:
            _notice(f"{path} holds a teacher (bert-*) and a student (student-bert-*): taking the {which} "
                    "variables for this role")
        return prefix
    return "" if has_plain else STUDENT_PREFIX


def _config_beside(path: str) -> BertConfig | None:
    for name in (CONFIG_JSON, "bert_config.json"):
        candidate = os.path.join(path, name)
        if os.path.isfile(candidate):
            return config_from_json_file(candidate)
    return None


def snapshot_config(path: str, prefer_student: bool = False) -> BertConfig | None:
    """The config of a checkpoint without reading its weights (None when it has none or is unreadable)."""
    fmt = snapshot_format(path)
    try:
        if fmt == "project":
            with open(os.path.join(path, SNAPSHOT_JSON), encoding="utf-8") as f:
                found = json.load(f).get("config")
            return config_from_dict(found) if found else _config_beside(path)
        if fmt in ("flow", "hf"):
            return _config_beside(path if os.path.isdir(path) else os.path.dirname(path))
        if fmt == "legacy":
            return _config_beside(path) or infer_legacy_config(
                path, choose_legacy_prefix(path, prefer_student, quiet=True))
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return None


def _require_finite_state(path: str, state: State) -> None:
    """A checkpoint whose weights hold NaN/inf (a diverged or damaged run) is refused, naming the tensor."""
    for key, value in state.items():
        try:
            require_finite(value, f"{path}: weight {key}", row_name="index")
        except NonFiniteError as exc:
            raise CheckpointError(str(exc)) from None


def load_snapshot(
    path: str, config: BertConfig | None = None, legacy_prefix: str | None = None, prefer_student: bool = False
) -> tuple[State, BertConfig | None, dict[str, Any]]:
    """Read any supported checkpoint and return ``(state, config, meta)``.

    ``state`` maps HF-style keys to **numpy arrays** whatever the format (dtypes as saved for
    project snapshots, float32 from the other formats); ``meta`` is the snapshot's meta plus
    ``snapshot_format``. The format is detected:

    * project snapshot (``snapshot.json`` + flow.save files) -> config and meta from the json;
    * bare ``flow.save`` directory -> config from ``config.json`` beside it, if any;
    * legacy layout -> ``read_legacy_snapshot``; config from the argument, else ``config.json`` /
      ``bert_config.json`` in the directory, else inferred from variable sizes. ``legacy_prefix``
      picks the model inside it (``""`` plain/teacher, ``"student-"`` student); None chooses with
      :func:`choose_legacy_prefix` (``prefer_student`` for student roles);
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
        try:
            loaded = flow_module().load(path)
        except Exception as exc:  # OneFlow reports damage as a bare AssertionError or RuntimeError
            detail = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise CheckpointError(f"{path}: damaged or truncated snapshot, flow.load failed ({detail})") from None
        if not isinstance(loaded, Mapping):
            raise ValueError(f"{path}: flow.load returned {type(loaded).__name__}, expected a state dict")
        state = {str(k): to_numpy(v) for k, v in loaded.items()}
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
                found = config_from_dict(info["config"])
        else:
            found = _config_beside(path)
        meta["snapshot_format"] = fmt
        _require_finite_state(path, state)
        return state, config or found, meta
    if fmt == "legacy":
        config = config or _config_beside(path)
        if legacy_prefix is None:
            legacy_prefix = choose_legacy_prefix(path, prefer_student)
        if config is None:
            config = infer_legacy_config(path, legacy_prefix)
        skipped: list[str] = []
        state = read_legacy_snapshot(path, config, prefix=legacy_prefix, skipped=skipped)
        meta = {"snapshot_format": "legacy", "legacy_prefix": legacy_prefix, "skipped": skipped}
        _require_finite_state(path, state)
        return state, config, meta
    if fmt == "hf":
        state, found = import_hf_safetensors(path)
        _require_finite_state(path, state)
        return state, config or found, {"snapshot_format": "hf"}
    raise ValueError(
        f"{path} is not a checkpoint model_compress can read: expected a project snapshot "
        f"({SNAPSHOT_JSON} + {FLOW_PICKLE}), a flow.save directory, a legacy OneFlow snapshot "
        f"(folders like bert-embeddings-word_embeddings/out) or a Hugging Face directory "
        f"({SAFETENSORS_FILE} + {CONFIG_JSON})"
    )
