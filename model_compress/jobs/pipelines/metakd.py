"""Meta-KD runs over typed settings, steps 2-3: the meta-teacher and its dump; the pieces every Meta-KD step
shares (domains, the training loop, the teacher dump). Step 4 is in ``metakd_distill.py``; the entries and
their flags are in ``jobs/metakd/``."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import numpy as np

from model_compress.distill.meta import DomainCorruptionHead, MetaFineTuningObjective, WithShuffledDomains
from model_compress.distill.metakd import MetaTeacherOutputs
from model_compress.distill.metakd_dump import DUMP_KIND, dump_layers, dump_table, write_teacher_dump
from model_compress.distill.teacher_cache import cache_key, cache_source, checked_cache, load_cache
from model_compress.errors import RecipeError
from model_compress.jobs.common import (
    TaskData,
    fit_objective,
    load_classifier,
    task_domains,
    write_results,
)
from model_compress.jobs.pipelines import mft as mft_runs
from model_compress.jobs.pipelines.inputs import prepare_inputs, stamp_dir
from model_compress.jobs.settings import (
    DataSettings,
    MetaTeacherSettings,
    RunSettings,
    TeacherDumpSettings,
    TrainSettings,
)
from model_compress.modeling.config import BertConfig
from model_compress.training import distributed
from model_compress.training.domains import ALL_DOMAINS, domain_index, make_domain_evaluator, per_domain
from model_compress.training.sources import WithUnitWeights

ALL_GENRES = ALL_DOMAINS
STAGES = ("first", "second", "all", "vanilla")


def note(message: str) -> None:
    if distributed.rank() == 0:
        print(f"[metakd] {message}", file=sys.stderr)


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
    return mft_runs.load_weights(data_dir, count) if os.path.isfile(mft_runs.weight_path(data_dir)) else None


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


# ----------------------------------------------------------------------------------------------
# meta_teacher.py


def train_meta_teacher(
    run: RunSettings, data_settings: DataSettings, settings: TrainSettings, meta: MetaTeacherSettings,
    model_load_dir: str | None,
) -> dict:
    """MFT-style meta-teacher on every domain; keeps the best-dev snapshot and reports accuracy per domain.

    Without `run.do_train` the snapshot at `model_load_dir` is evaluated per domain instead.
    """
    inputs = prepare_inputs(data_settings, settings.seed, model_load_dir, run.vocab_file, ("train", "dev"))
    model_dir, vocab, data = inputs.model_dir, inputs.vocab, inputs.data
    flags = {**run.flags, "data_dir": inputs.data_dir}
    domains = domain_names(data)
    output_dir = stamp_dir(run.model_save_dir)  # the seed's output/model_save-<time>
    dev = dev_source(data, settings)
    if not run.do_train:
        model, _, _ = load_classifier(model_dir, len(data.labels))
        model = distributed.setup_model(model, settings.device)
        metrics = make_domain_evaluator(model, dev, domains, ALL_GENRES, settings.eager)()
        path = write_results(run.result_dir or output_dir, metrics, flags, model, model_dir,
                             {"role": "meta-teacher", "per_domain": per_domain(metrics, domains)})
        print(f"[metakd] meta-teacher dev accuracy {metrics['accuracy']:.4f}; results in {path}")
        return {"eval": metrics, "snapshot": model_dir}
    count = len(data.examples["train"])
    scores = mft_runs.load_weights(inputs.data_dir, count) if meta.use_sample_weights else \
        optional_weights(inputs.data_dir, count)
    model, config, _ = load_classifier(model_dir, len(data.labels))
    layers = mft_runs.choose_layers(meta.layer_indexes, config.num_hidden_layers)
    model = distributed.setup_model(model, settings.device)
    head = distributed.setup_model(
        DomainCorruptionHead(config.hidden_size, len(domains), layers, config.initializer_range), settings.device)
    weight = meta.domain_loss_weight if meta.use_domain_loss else 0.0
    objective = MetaFineTuningObjective(model, head, weight)
    train = data.loader("train", run.batch_size_per_device, train=True, seed=settings.seed, with_domain=True,
                        weights=scores)
    if scores is not None:
        mft_runs.keep_weights(inputs.data_dir, scores)
    if not meta.use_sample_weights:
        train = WithUnitWeights(train)
    train = WithShuffledDomains(train, seed=settings.seed)
    task = settings.task_name
    choices = {"use_sample_weights": bool(meta.use_sample_weights), "use_domain_loss": bool(meta.use_domain_loss),
               "domain_loss_weight": weight, "layer_indexes": layers}
    evaluate = make_domain_evaluator(model, dev, domains, ALL_GENRES, settings.eager)
    loop = fit_objective(settings, objective, model, train, evaluate, vocab, output_dir,
                         lambda m: f"snapshot_best_mft_model_{task}_dev_{m['accuracy']}",
                         meta={"labels": data.labels, "domains": domains, "role": "meta-teacher", "init": model_dir,
                               **choices})
    metrics = loop.best_metrics()
    if distributed.rank() == 0:
        path = write_results(run.result_dir or output_dir, metrics, flags, model, loop.best_snapshot,
                             {"role": "meta-teacher", "best_step": loop.best_step, "domains": domains,
                              "per_domain": per_domain(metrics, domains), "train_seconds": loop.train_seconds,
                              **choices})
        shown = ", ".join(f"{d} {a:.4f}" for d, a in per_domain(metrics, domains).items())
        print(f"[metakd] meta-teacher best dev accuracy {metrics['accuracy']:.4f} at step {loop.best_step} "
              f"({shown}); snapshot {loop.best_snapshot}; results in {path}")
    return {"train": loop, "snapshot": loop.best_snapshot, "eval": metrics}


# ----------------------------------------------------------------------------------------------
# meta_teacher_eval.py


def dump_teacher(
    data_settings: DataSettings, settings: TrainSettings, dump: TeacherDumpSettings, model_load_dir: str | None,
    vocab_file: str | None, student_layers: int,
) -> dict:
    """The meta-teacher's dump for a `student_layers`-deep student, made unless an identical one exists."""
    inputs = prepare_inputs(data_settings, settings.seed, model_load_dir, vocab_file, ("train",))
    teacher_dir, data = inputs.model_dir, inputs.data
    teacher, config, _ = load_classifier(teacher_dir, len(data.labels))
    arrays, directory = ensure_teacher_dump(settings, dump.dump_dir, teacher_dir, teacher, config, data,
                                            student_layers, refresh=dump.refresh_teacher_cache,
                                            attention=dump.attention_loss)
    return {"arrays": arrays, "dump_dir": directory, "teacher": teacher_dir}
