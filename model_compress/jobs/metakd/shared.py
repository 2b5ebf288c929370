"""Meta-KD job pieces shared by its entry points: task data, domains, the training loop, the teacher dump."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import numpy as np

from model_compress.cli import fail
from model_compress.distill.metakd import ATTENTION_KINDS, MetaTeacherOutputs
from model_compress.distill.metakd_dump import DUMP_KIND, dump_layers, dump_table, write_teacher_dump
from model_compress.distill.teacher_cache import cache_key, cache_source, checked_cache, load_cache
from model_compress.jobs import mft
from model_compress.jobs.common import (
    TaskData,
    loop_config,
    save_classifier,
    task_domains,
)
from model_compress.jobs.pipelines import mft as mft_runs
from model_compress.jobs.settings import DataSettings, TrainSettings, from_flags
from model_compress.modeling.config import BertConfig
from model_compress.training import distributed
from model_compress.training.domains import ALL_DOMAINS, domain_index

ALL_GENRES = ALL_DOMAINS
STAGES = ("first", "second", "all", "vanilla")


def add_attention_flag(group) -> None:
    """`--attention_loss`: what stage 1's attention loss (and so the teacher dump) compares."""
    group.add_argument("--attention_loss", choices=ATTENTION_KINDS, default="probs",
                       help="probs: attention probabilities (the OneFlow original and EasyNLP); "
                            "scores: raw masked pre-softmax scores (TinyBERT)")


def note(message: str) -> None:
    if distributed.rank() == 0:
        print(f"[metakd] {message}", file=sys.stderr)


def prepare(args: argparse.Namespace, model_path: str | None, splits: Sequence[str], student: bool = False
            ) -> mft_runs.RunInputs:
    """Seed, model dir, vocab and task data from the flags, with the seeds' path fallbacks (see jobs/mft.py)."""
    return mft.prepare_inputs(from_flags(DataSettings, args), args.seed, model_path, args.vocab_file, splits,
                              student)


def domain_names(data: TaskData) -> list[str]:
    """The task's domains in id order; Meta-KD needs a multi-domain task such as senti."""
    return task_domains(data, "Meta-KD", "senti")


def genre_id(genre: str, domains: Sequence[str]) -> int | None:
    """Domain id of --genre (None for `all`); an unknown genre is an error listing the choices."""
    try:
        return domain_index(genre, domains)
    except ValueError as exc:
        fail(f"--genre {exc}")
        raise AssertionError from None


def optional_weights(data_dir: str, count: int) -> np.ndarray | None:
    """The prototypical scores when preprocess.py wrote them, else None."""
    return mft_runs.load_weights(data_dir, count) if os.path.isfile(mft_runs.weight_path(data_dir)) else None


def dev_source(data: TaskData, settings: TrainSettings):
    """The dev split in file order, with its domains."""
    return data.loader("dev", settings.eval_batch_size_per_device, train=False, seed=settings.seed, rank=0,
                       world_size=1, with_domain=True)


def fit(settings: TrainSettings, objective, model, train_source, evaluate, vocab: str, output_dir: str,
        snapshot_name, meta: dict):
    """The shared training loop; `evaluate=None` trains without dev evaluation or snapshots."""
    from model_compress.training.loop import train

    def save(path: str, metrics: dict) -> None:
        save_classifier(model, path, model.config, vocab, {"task": settings.task_name, **meta, **metrics})

    return train(objective, train_source, evaluate, save if evaluate else None, snapshot_name,
                 loop_config(settings, output_dir))


def best_metrics(loop) -> dict:
    return next(metrics for step, metrics in loop.history if step == loop.best_step)


def teacher_layers(student_layers: int, teacher_config: BertConfig) -> tuple[list[int], list[int]]:
    """(teacher attention layers, teacher hidden-state indexes) a `student_layers`-deep student learns from."""
    try:
        return dump_layers(student_layers, teacher_config.num_hidden_layers)
    except ValueError as exc:
        fail(f"--student_num_hidden_layers: {exc}")
        raise AssertionError from None


def ensure_teacher_dump(settings: TrainSettings, dump_dir: str | None, teacher_dir: str, teacher,
                        teacher_config: BertConfig, data: TaskData, student_layers: int, refresh: bool = False,
                        attention: str = "probs") -> tuple[dict[str, np.ndarray], str]:
    """The meta-teacher's outputs for every training example: reused when an identical dump exists, else made.

    A dump is identified by the teacher snapshot, the training split (content, seq_length, vocab,
    count) and the mapped layers; it lives in `--dump_dir` or `<data_dir>/teacher_cache/metakd-<key>`.
    Returns (arrays memory-mapped by example index, directory).
    """
    domains = domain_names(data)
    count = len(data.examples["train"])
    scores = mft_runs.load_weights(data.data_dir, count)  # the split carries the prototypical scores
    batch = settings.eval_batch_size_per_device
    source = data.loader("train", batch, train=False, seed=settings.seed, rank=0, world_size=1, with_domain=True,
                         weights=scores)
    mft_runs.keep_weights(data.data_dir, scores)
    attention_layers, hidden = teacher_layers(student_layers, teacher_config)
    spec = {"kind": DUMP_KIND, "attention_layers": attention_layers, "attention": attention, "hidden_layers": hidden,
            "vocab_hash": source.meta.get("vocab_hash"), "labels": data.labels, "domains": domains}
    key = cache_key(teacher_dir, source.meta, spec)
    directory = dump_dir or os.path.join(data.data_dir, "teacher_cache", f"metakd-{key}")
    if not refresh:
        found = checked_cache(directory, key, count)
        if found is not None:
            note(f"teacher dump reused from {directory}")
            return found, directory
    info = {"kind": DUMP_KIND, "key": key, "teacher": os.path.abspath(teacher_dir), "count": count,
            "source": cache_source(teacher_dir, source.meta),
            "seq_length": int(source.meta["seq_length"]), "source_hash": source.meta.get("source_hash"),
            "student_num_hidden_layers": student_layers, "teacher_num_hidden_layers": teacher_config.num_hidden_layers,
            **spec}
    outputs = MetaTeacherOutputs(distributed.setup_model(teacher, settings.device), attention_layers, hidden,
                                 attention)
    write_teacher_dump(directory, outputs, source, count, info, eager=settings.eager)
    arrays = load_cache(directory)
    if distributed.rank() == 0:
        print(f"[metakd] teacher dump of {count} examples in {directory} "
              f"({sum(a.nbytes for a in arrays.values()) / 2**20:.1f} MiB)")
        print(dump_table(arrays["teacher_logits"], source.arrays, domains))
    return arrays, directory


