"""Model names as EasyNLP users write them, resolved to local directories (nothing is downloaded here).

``pretrain_model_name_or_path`` (and ``--checkpoint_path``, ``teacher_model_path``, ``--bert_path``) accept
a local directory in any format the toolkit loads (project snapshot, legacy OneFlow, Hugging Face), a run
directory holding one ``snapshot_*`` (what a training run leaves in ``--checkpoint_dir``), ``default`` (the
shipped all-MiniLM-L6-v2), or one of EasyNLP's model names, which resolve to ``models/<name>`` when present.
"""

from __future__ import annotations

import os

from model_compress.easynlp.flags import UsageError
from model_compress.jobs.common import DEFAULT_MODEL, REPO_ROOT, resolve_model_dir, snapshot_in
from model_compress.modeling.checkpoint import snapshot_format
from model_compress.modeling.pretrained import MODEL_NAMES

EASYNLP_MODEL_NAMES = ("bert-base-uncased", "bert-small-uncased", "bert-tiny-uncased", "bert-large-uncased")
MODELS_DIR = os.path.join(REPO_ROOT, "models")


def _known_name(value: str) -> str | None:
    """The EasyNLP model name ``value`` refers to (also as ``~/.easynlp/modelzoo/<name>``), else None."""
    name = os.path.basename(os.path.normpath(value))
    return name if name in EASYNLP_MODEL_NAMES else None


def resolve_model(value: str, flag: str) -> str:
    """A loadable snapshot directory for ``value``; one :class:`UsageError` line when there is none."""
    if not value or value in MODEL_NAMES:
        return resolve_model_dir(value or DEFAULT_MODEL)
    path = os.path.expanduser(value)
    if os.path.exists(path):
        found = snapshot_in(path)
        if snapshot_format(found) is None:
            raise UsageError(flag, f"{value} holds no model the toolkit can load (a snapshot, a Hugging Face BERT "
                             "directory, or a run directory with one snapshot_*)")
        return found
    name = _known_name(value)
    if name is not None:
        local = os.path.join(MODELS_DIR, name)
        if os.path.exists(local):
            return resolve_model(local, flag)
        raise UsageError(flag, f"{name} is not in {MODELS_DIR} and cannot be downloaded here; put a copy there, "
                         "pass a local model directory, or pass 'default' (the shipped all-MiniLM-L6-v2)")
    raise UsageError(flag, f"{value} does not exist (pass a local model directory, 'default', or one of "
                     f"{', '.join(EASYNLP_MODEL_NAMES)} with a copy under {MODELS_DIR})")


def check_sequence_length(model_dir: str, length: int, flag: str) -> None:
    """``length`` tokens fit the model's position embeddings, else one :class:`UsageError` line."""
    from model_compress.jobs.common import load_model_snapshot

    _, config, _ = load_model_snapshot(model_dir, "read its config")
    if length > config.max_seq_length:
        raise UsageError(flag, f"{length} exceeds the {config.max_seq_length} positions of {model_dir}")
