"""What every Meta-KD step shares: the domains (genres), the distillation stages, the teacher-to-student
layer mapping, optional sample weights, the dev source, and the attention flag.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from model_compress.distill.intermediate import ATTENTION_KINDS
from model_compress.distill.metakd_dump import dump_layers
from model_compress.errors import RecipeError
from model_compress.log import logger
from model_compress.modeling.config import BertConfig
from model_compress.recipes import mft
from model_compress.recipes.common import (
    TaskData,
    task_domains,
)
from model_compress.recipes.settings import (
    TrainSettings,
)
from model_compress.training.domains import ALL_DOMAINS, domain_index

log = logger("metakd")

ALL_GENRES = ALL_DOMAINS


STAGES = ("first", "second", "all", "vanilla")


def domain_names(data: TaskData) -> list[str]:
    """The task's domains in id order; Meta-KD needs a multi-domain task such as senti."""
    return task_domains(data, "Meta-KD", "senti")


def genre_id(genre: str, domains: Sequence[str]) -> int | None:
    """Domain id of --genre (None for `all`); an unknown genre is an error listing the choices."""
    try:
        return domain_index(genre, domains)
    except ValueError as exc:
        raise RecipeError(f"--genre {exc}") from None


def optional_weights(data_dir: str, count: int) -> np.ndarray | None:
    """The prototypical scores when preprocess.py wrote them, else None."""
    return mft.load_weights(data_dir, count) if os.path.isfile(mft.weight_path(data_dir)) else None


def dev_source(data: TaskData, settings: TrainSettings):
    """The dev split in file order, with its domains."""
    return data.loader("dev", settings.eval_batch_size_per_device, train=False, seed=settings.seed, rank=0,
                       world_size=1, with_domain=True)


def teacher_layers(student_layers: int, teacher_config: BertConfig) -> tuple[list[int], list[int]]:
    """(teacher attention layers, teacher hidden-state indexes) a `student_layers`-deep student learns from."""
    try:
        return dump_layers(student_layers, teacher_config.num_hidden_layers)
    except ValueError as exc:
        raise RecipeError(f"--student_num_hidden_layers: {exc}") from None


def add_attention_flag(group) -> None:
    """`--attention_loss`: what stage 1's attention loss (and so the teacher dump) compares."""
    group.add_argument("--attention_loss", choices=ATTENTION_KINDS, default="probs",
                       help="probs: attention probabilities (the OneFlow original and EasyNLP); "
                            "scores: raw masked pre-softmax scores (TinyBERT)")
