"""Model names as EasyNLP users write them, resolved to local directories (nothing is downloaded here).

``pretrain_model_name_or_path`` (and ``--checkpoint_path``, ``teacher_model_path``, ``--bert_path``) accept
a local directory in any format the toolkit loads (project snapshot, legacy OneFlow, Hugging Face), a run
directory holding one ``snapshot_*`` (what a training run leaves in ``--checkpoint_dir``), ``default`` (the
shipped all-MiniLM-L6-v2), or one of EasyNLP's model names, which resolve to ``models/<name>`` when present.
"""

from __future__ import annotations

from model_compress.easynlp.flags import UsageError
from model_compress.modeling import resolve
from model_compress.modeling.archive import DownloadError


def resolve_model(value: str, flag: str) -> str:
    """A loadable snapshot directory for ``value`` (``modeling.resolve``); one :class:`UsageError` line when none."""
    try:
        return resolve.resolve_model(value, flag)
    except resolve.ModelNotFoundError as exc:
        raise UsageError(flag, str(exc).removeprefix(f"{flag} ")) from None
    except DownloadError as exc:
        raise UsageError(flag, str(exc)) from None


def check_sequence_length(model_dir: str, length: int, flag: str) -> None:
    """``length`` tokens fit the model's position embeddings, else one :class:`UsageError` line."""
    from model_compress.recipes.common import load_model_snapshot

    _, config, _ = load_model_snapshot(model_dir, "read its config")
    if length > config.max_seq_length:
        raise UsageError(flag, f"{length} exceeds the {config.max_seq_length} positions of {model_dir}")
