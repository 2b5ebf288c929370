"""What an MFT or Meta-KD step reads (RunInputs), found with the seeds' path fallbacks.

Seed-style paths are honoured: a relative --data_dir missing from the current directory is looked up
under the repository root, and the seed's `uncased_L-12_H-768_A-12_oneflow` falls back to the default
pretrained model when no such directory exists (a note says so).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections.abc import Sequence

from model_compress.cli import seed_everything
from model_compress.errors import RecipeError
from model_compress.log import logger
from model_compress.modeling.resolve import REPO_ROOT, resolve_model
from model_compress.recipes.common import (
    TaskData,
    find_vocab,
    load_task_data,
)
from model_compress.recipes.settings import DataSettings

log = logger("mft")


@dataclasses.dataclass(frozen=True)
class RunInputs:
    """What an MFT or Meta-KD step reads: the model snapshot, its vocab and the task data (data_dir resolved)."""

    model_dir: str
    vocab: str
    data: TaskData

    @property
    def data_dir(self) -> str:
        return self.data.data_dir


def resolve_vocab(model_dir: str, vocab_file: str | None) -> str:
    """--vocab_file if it exists; a missing one (e.g. the seed's BERT-base path) gives way to the model's own."""
    if vocab_file and not os.path.isfile(vocab_file):
        beside = os.path.join(model_dir, "vocab.txt")
        if os.path.isfile(beside):
            log.info(f"--vocab_file {vocab_file} not found: using the model's own {beside}")
            return beside
    return find_vocab(model_dir, vocab_file)


def resolve_data_dir(path: str) -> str:
    """A relative --data_dir missing here is looked up under the repository root (seeds run from mft/)."""
    if os.path.isdir(path):
        return path
    candidate = os.path.join(REPO_ROOT, path)
    if not os.path.isabs(path) and os.path.isdir(candidate):
        log.info(f"--data_dir {path} not found here: using {candidate}")
        return candidate
    raise RecipeError(f"--data_dir {path} does not exist (looked here and under {REPO_ROOT}); the default K-shot data "
                      "is made by `python -m model_compress.data.synthetic --out data` in the repository root")


def prepare_inputs(
    settings: DataSettings, seed: int, model_path: str | None, vocab_file: str | None,
    splits: Sequence[str] = ("train", "dev"), student: bool = False,
) -> RunInputs:
    """Seed, then the model dir, vocab and task data with the seeds' path fallbacks (see the module doc)."""
    seed_everything(seed)
    model_dir = resolve_model(model_path)
    vocab = resolve_vocab(model_dir, vocab_file)
    settings = dataclasses.replace(settings, data_dir=resolve_data_dir(settings.data_dir))
    return RunInputs(model_dir, vocab, load_task_data(settings, vocab, splits, model_dir, student))


def stamp_dir(model_save_dir: str | None) -> str:
    """The seed's output/model_save-<YYYY-mm-dd-HH:MM:SS>, unless --model_save_dir."""
    if model_save_dir:
        return model_save_dir
    return os.path.join("output", f"model_save-{datetime.datetime.now().strftime('%Y-%m-%d-%H:%M:%S')}")
