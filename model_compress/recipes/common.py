"""Pieces every job shares: models from snapshots, task data as OFRecord loaders, results files."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import os
from collections.abc import Sequence

import numpy as np
import oneflow as flow

from model_compress.data.loader import OFRecordLoader
from model_compress.data.ofrecord import ensure_ofrecord_split, split_lock
from model_compress.data.processors import DataFormatError, DataProcessor, InputExample, get_processor
from model_compress.data.tokenization import FullTokenizer
from model_compress.data.vocab import load_vocab
from model_compress.data.vocab_map import VocabMap, VocabMapError, vocab_map_between
from model_compress.errors import RecipeError
from model_compress.files import write_json_atomic
from model_compress.log import logger
from model_compress.modeling.bert import BertForSequenceClassification, count_parameters, parameter_mib
from model_compress.modeling.checkpoint import (
    check_state_shapes,
    classifier_state,
    load_snapshot,
    load_state_into,
    module_state_numpy,
    save_snapshot,
    snapshot_config,
)
from model_compress.modeling.classifiers import build_classifier, head_num_labels, without_head
from model_compress.modeling.config import BertConfig, EncoderConfig
from model_compress.recipes.settings import DataSettings, TrainSettings
from model_compress.training import distributed


def find_vocab(model_dir: str, vocab_file: str | None) -> str:
    """The vocab given on the command line, else the one stored beside the model."""
    if vocab_file:
        if not os.path.isfile(vocab_file):
            raise RecipeError(f"--vocab_file {vocab_file} does not exist")
        return vocab_file
    beside = os.path.join(model_dir, "vocab.txt")
    if os.path.isfile(beside):
        return beside
    raise RecipeError(f"no vocab.txt in {model_dir}: pass --vocab_file")


def load_model_snapshot(model_dir: str, purpose: str, student: bool = False) -> tuple[dict, BertConfig, dict]:
    """`load_snapshot` for a job: an unreadable snapshot, or one without a config, ends the run clearly.

    `purpose` finishes the message "cannot ..." (e.g. "build the teacher"); `student` roles take the
    student of a legacy snapshot holding teacher and student.
    """
    try:
        state, config, meta = load_snapshot(model_dir, prefer_student=student)
    except (FileNotFoundError, ValueError) as exc:
        raise RecipeError(str(exc) or f"{model_dir}: cannot be read") from None
    if config is None:
        raise RecipeError(f"{model_dir} has no config (config.json / snapshot.json); cannot {purpose}")
    problems = check_state_shapes(classifier_state(state), config) if isinstance(config, EncoderConfig) else []
    if problems:
        raise RecipeError(f"{model_dir}: the config does not match the weights ({problems[0]}"
                          f"{f' and {len(problems) - 1} more' if len(problems) > 1 else ''})")
    return state, config, meta


def check_model_inputs(model_dir: str, vocab_file: str, seq_length: int, student: bool = False) -> None:
    """Before any OFRecord is built: the vocab and --seq_length must fit the model that will read them.

    Refuses a vocab with more entries than the model's word embeddings, one without [UNK], and a
    --seq_length above the model's position embeddings.
    """
    config = snapshot_config(model_dir, prefer_student=student)
    if config is None:
        return
    if isinstance(config, EncoderConfig) and seq_length > config.max_seq_length:  # a BiLSTM reads any length
        raise RecipeError(f"--seq_length {seq_length} exceeds the {config.max_seq_length} positions of {model_dir}")
    try:
        vocab = load_vocab(vocab_file)
    except (OSError, ValueError) as exc:
        raise RecipeError(f"{vocab_file}: {exc}") from None
    if "[UNK]" not in vocab:
        raise RecipeError(f"{vocab_file}: no [UNK] token; this is not a BERT WordPiece vocab.txt")
    if len(vocab) > config.vocab_size:
        raise RecipeError(f"{vocab_file} has {len(vocab)} tokens but {model_dir} embeds only {config.vocab_size}: "
                          "it is not this model's vocab (pass the model's own vocab.txt)")


def student_vocab_map(student_dir: str, teacher_vocab: str) -> tuple[str, VocabMap] | None:
    """(the student's vocab.txt, the map of its ids to the teacher's) when a student stored with its own
    vocabulary learns from a teacher of another one; None when they share it (or the student has none).
    Exit 2 when the vocabularies cannot be mapped."""
    path = os.path.join(student_dir, "vocab.txt") if os.path.isdir(student_dir) else ""
    if not os.path.isfile(path) or not os.path.isfile(teacher_vocab):
        return None
    try:
        found = vocab_map_between(path, teacher_vocab)
    except VocabMapError as exc:
        raise RecipeError(f"{path} against the teacher's {teacher_vocab}: {exc}") from None
    return (path, found) if found is not None else None


def check_same_vocab(student_dir: str, vocab: dict[str, int], source: str) -> None:
    """For algorithms that feed one batch of ids to both models: a vocab.txt stored with the student must
    be ``source``'s (KD, BERT-PKD and TinyBERT map other vocabularies instead, see ``student_vocab_map``)."""
    path = os.path.join(student_dir, "vocab.txt") if os.path.isdir(student_dir) else ""
    if os.path.isfile(path) and load_vocab(path) != vocab:
        raise RecipeError(f"{path} differs from the vocabulary of {source}: the student would read another "
                          "model's token ids (this algorithm does not map vocabularies; KD, BERT-PKD and TinyBERT do)")


def load_classifier(
    model_dir: str, num_labels: int, config_changes: dict | None = None, verbose: bool = True,
    student: bool = False,
) -> tuple[BertForSequenceClassification, BertConfig, dict]:
    """A BertForSequenceClassification (a DistilledBiLSTM for its snapshots) from any snapshot format,
    with a fresh head if labels differ.

    `student` roles read the student of a legacy snapshot holding both (see `choose_legacy_prefix`).
    """
    state, config, meta = load_model_snapshot(model_dir, "build the model", student)
    state = classifier_state(state)
    config = config.replace(num_labels=num_labels, **(config_changes or {}))
    head = head_num_labels(state)
    if head is not None and head != num_labels:
        logger("model").info(f"{model_dir}: classifier has {head} labels, task has {num_labels}: new head")
        state = without_head(state)
    model = build_classifier(config)
    try:
        report = load_state_into(model, state, verbose=False)
    except ValueError as exc:
        raise RecipeError(f"{model_dir}: the config does not match the weights ({exc})") from None
    if verbose:
        logger("model").info(f"{model_dir}: {report.summary()}")
    return model, config, meta


def model_summary(model: flow.nn.Module) -> dict[str, float]:
    return {"parameters": count_parameters(model), "model_size_mib": round(parameter_mib(model), 3)}


@dataclasses.dataclass
class TaskData:
    """A task's processor, tokenizer and examples per split, turned into OFRecord loaders on demand."""

    processor: DataProcessor
    tokenizer: FullTokenizer
    data_dir: str
    seq_length: int
    resave: bool
    examples: dict
    length_buckets: str | tuple[int, ...] | None = None  # for training loaders and bucketed evaluation
    vocab_map: VocabMap | None = None  # set when the ids are a student's and the teacher reads them mapped

    @property
    def labels(self) -> list[str]:
        return self.processor.get_labels()

    def split(self, name: str, with_domain: bool = False, weights: Sequence[float] | None = None):
        """Build (or reuse) the OFRecord files of a split; one rank builds, the others wait."""
        info = None
        if distributed.rank() == 0:
            domains = self.processor.get_domains() if with_domain else None
            try:
                info = ensure_ofrecord_split(
                    self.examples[name], self.data_dir, name, self.tokenizer, self.seq_length,
                    self.labels, domain_list=domains, resave=self.resave, weights=weights,
                )
            except ValueError as exc:
                raise RecipeError(f"{self.data_dir} ({name}): {exc}") from None
        distributed.barrier()
        return info.directory if info else os.path.join(self.data_dir, "ofrecord", name)

    def loader(self, name: str, batch_size: int, train: bool, seed: int, bucketed: bool | None = None,
               **kwargs) -> OFRecordLoader:
        """The split built (or reused) and read into memory under its lock: a concurrent job asking for
        other content waits, and neither reads the other's half-replaced files.

        ``bucketed`` (default: ``train``) applies the task's length buckets; their choice is printed."""
        # Multi-process runs build on rank 0 and meet at a barrier: a lock held across it would
        # deadlock the other ranks, so there each rank reads after the barrier as before.
        lock = split_lock(self.data_dir, name) if not distributed.is_distributed() else contextlib.nullcontext()
        with lock:
            directory = self.split(name, kwargs.pop("with_domain", False), kwargs.pop("weights", None))
            buckets = self.length_buckets if (train if bucketed is None else bucketed) else None
            loader = OFRecordLoader(directory, batch_size, train=train, seed=seed, length_buckets=buckets, **kwargs)
            loader.arrays  # noqa: B018  (read now, while the lock is held)
        if buckets is not None:
            logger("data").info(f"{name}: {loader.bucket_summary()}")
        return loader


def task_domains(data: TaskData, algorithm: str, example_task: str) -> list[str]:
    """The task's domains in id order, or one clear error when the task has none."""
    try:
        return data.processor.get_domains()
    except NotImplementedError:
        raise RecipeError(f"task {data.processor.name} has no domains: {algorithm} needs a multi-domain task "
                          f"such as {example_task}") from None


def load_task_data(
    settings: DataSettings, vocab_file: str, splits: Sequence[str] = ("train", "dev"),
    model_dir: str | None = None, student: bool = False,
) -> TaskData:
    """Read the task's text files (with the seeds' example-count limits) and the tokenizer.

    With `model_dir`, the vocab and --seq_length are first checked against that model.
    """
    if model_dir:
        check_model_inputs(model_dir, vocab_file, settings.seq_length, student)
    try:
        processor = get_processor(settings.task_name)
    except (KeyError, ValueError) as exc:
        raise RecipeError(str(exc).strip("'\"")) from None
    if not os.path.isdir(settings.data_dir):
        raise RecipeError(f"--data_dir {settings.data_dir} does not exist")
    limits = {"train": settings.train_example_num, "dev": settings.dev_example_num or settings.eval_example_num,
              "test": settings.eval_example_num}
    examples: dict[str, list[InputExample]] = {}
    try:
        for split in splits:
            rows = processor.get_examples(settings.data_dir, split)
            if limits.get(split):
                rows = rows[: limits[split]]
            if not rows:
                raise RecipeError(f"{settings.data_dir}: the {split} split has no examples")
            examples[split] = rows
    except (DataFormatError, FileNotFoundError) as exc:
        raise RecipeError(str(exc)) from None
    tokenizer = FullTokenizer(vocab_file, do_lower_case=settings.do_lower_case)
    return TaskData(processor, tokenizer, settings.data_dir, settings.seq_length, settings.resave_ofrecord, examples,
                    settings.length_buckets)


def default_output_dir(model_save_dir: str | None, task_name: str, job: str) -> str:
    """--model_save_dir, else ``output/<job>-<task>-<time>``."""
    if model_save_dir:
        return model_save_dir
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H-%M-%S")
    return os.path.join("output", f"{job}-{task_name}-{stamp}")


def save_classifier(
    model: flow.nn.Module, path: str, config: BertConfig, vocab_file: str, meta: dict
) -> str:
    """A classifier snapshot (model weights, config, vocab, meta) written atomically by rank 0.

    Every rank must call it: global (multi-process) parameters are gathered collectively first.
    """
    state = module_state_numpy(model)
    if distributed.rank() == 0:
        save_snapshot(state, path, config=config, meta=meta, extra_files={"vocab.txt": vocab_file})
    return path


def flags_of(args: argparse.Namespace, **resolved: object) -> dict:
    """The scalar flags of a run, as recorded in results files; ``resolved`` replaces flags by the values used
    (e.g. a --data_dir found under the repository root)."""
    flags = {k: v for k, v in vars(args).items() if isinstance(v, (str, int, float, bool)) or v is None}
    return {**flags, **resolved}


def write_results(path_dir: str, metrics: dict, flags: dict, model: flow.nn.Module, snapshot: str | None,
                  extra: dict | None = None, name: str = "results_eval.json") -> str:
    """results_eval.json: metrics, model size and throughput, task, snapshot and ``flags`` (see :func:`flags_of`)."""
    os.makedirs(path_dir, exist_ok=True)
    payload = {
        "task": flags.get("task_name"),
        **{k: v for k, v in metrics.items()},
        **model_summary(model),
        "snapshot": snapshot,
        "flags": dict(flags),
        **(extra or {}),
    }
    path = os.path.join(path_dir, name)
    write_json_atomic(path, payload, sort_keys=False, default=_json_default)
    return path


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return str(value)


def loop_config(settings: TrainSettings, output_dir: str, metric: str = "accuracy"):
    """The training loop's configuration from the training settings."""
    from model_compress.training.loop import LoopConfig

    return LoopConfig(
        num_epochs=settings.num_epochs,
        learning_rate=settings.learning_rate,
        weight_decay=settings.weight_decay_rate,
        warmup_proportion=settings.warmup_proportion,
        clip_grad_norm=settings.clip_grad_norm,
        eval_every_step_num=settings.eval_every_step_num,
        metric=metric,
        eager=settings.eager,
        device=settings.device,
        output_dir=output_dir,
        max_steps=settings.max_steps,
        freeze_word_embeddings=settings.freeze_word_embeddings,
        micro_batches=settings.gradient_accumulation_steps,
    )


def fit_classifier(settings: TrainSettings, objective: flow.nn.Module, model: BertForSequenceClassification,
                   train_source, dev_source, vocab_file: str, output_dir: str, **options):
    """Train `objective`, evaluating `model` on `dev_source`; `options` as `fit_objective`'s (snapshot_name,
    save_module: what snapshots hold, default the model; meta)."""
    from model_compress.training.evaluation import Predictor, evaluate_classifier
    from model_compress.training.objectives import ClassifierLogits

    predictor = Predictor(ClassifierLogits(model), eager=settings.eager)
    return fit_objective(settings, objective, model, train_source, lambda: evaluate_classifier(predictor, dev_source),
                         vocab_file, output_dir, **options)


def fit_objective(
    settings: TrainSettings,
    objective: flow.nn.Module,
    model: BertForSequenceClassification,
    train_source,
    evaluate,
    vocab_file: str,
    output_dir: str,
    snapshot_name=lambda metrics: "snapshot_best",
    save_module: flow.nn.Module | None = None,
    meta: dict | None = None,
):
    """The shared training loop: with `evaluate` (a callable returning metrics) the best snapshot of
    `save_module` (default `model`) is kept; `evaluate=None` trains without evaluation or snapshots."""
    from model_compress.training.loop import train

    to_save = save_module if save_module is not None else model

    def save(path: str, metrics: dict) -> None:
        save_classifier(to_save, path, model.config, vocab_file,
                        {"task": settings.task_name, "labels": None, **(meta or {}), **metrics})

    return train(objective, train_source, evaluate, save if evaluate else None, snapshot_name,
                 loop_config(settings, output_dir))


def evaluate_snapshot(
    settings: TrainSettings, snapshot: str, data: TaskData, split: str = "dev", student: bool = False
) -> tuple[dict, flow.nn.Module]:
    """Metrics and throughput of a snapshot on one split (nn.Graph unless --eager)."""
    from model_compress.training.evaluation import Predictor, evaluate_classifier
    from model_compress.training.objectives import ClassifierLogits

    model, _, _ = load_classifier(snapshot, len(data.labels), student=student)
    model = distributed.setup_model(model, settings.device)
    source = data.loader(split, settings.eval_batch_size_per_device, train=False, seed=settings.seed,
                         rank=0, world_size=1, bucketed=True)
    return evaluate_classifier(Predictor(ClassifierLogits(model), eager=settings.eager), source), model
