"""What every distilled student shares: where it starts (a snapshot, teacher layers, or random with derived
sizes), its flags, the teacher's inputs and outputs (online or cached), evaluation and reporting.

The entry model_compress/distil/bert-pkd_generate_student_model.py writes a student from chosen teacher
layers (`generate_main`).
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from model_compress.cli import add_bool, add_data_args, add_train_args, finite_number, user_errors
from model_compress.data.vocab import load_vocab
from model_compress.distill.objectives import (
    TeacherTargets,
    WithOnlineTeacher,
)
from model_compress.distill.teacher_cache import TeacherFileError, cached_teacher_outputs, read_logits_file
from model_compress.errors import RecipeError
from model_compress.log import logger
from model_compress.modeling.bert import BertForSequenceClassification
from model_compress.modeling.checkpoint import save_snapshot
from model_compress.modeling.classifiers import build_classifier
from model_compress.modeling.config import BertConfig
from model_compress.modeling.resolve import resolve_model
from model_compress.modeling.slicing import slice_layers
from model_compress.recipes import settings as cfg
from model_compress.recipes.common import (
    TaskData,
    check_same_vocab,
    classifier_state,
    evaluate_snapshot,
    find_vocab,
    flags_of,
    load_classifier,
    load_model_snapshot,
    load_task_data,
    student_vocab_map,
    write_results,
)
from model_compress.recipes.settings import (
    RunSettings,
    from_flags,
)
from model_compress.training import distributed
from model_compress.training.sources import WithCachedTargets


def generate_student_model(teacher_model: str, student_model: str, layer_list: str) -> str:
    """Save a student made of the teacher's embeddings, chosen encoder layers, pooler and head."""
    teacher_dir = resolve_model(teacher_model)
    state, config, meta = load_model_snapshot(teacher_dir, "tell its layer count")
    try:
        sliced, student_config = slice_layers(classifier_state(state), config, layer_list)
    except ValueError as exc:
        raise RecipeError(str(exc)) from None
    extra = {}
    vocab = os.path.join(teacher_dir, "vocab.txt")
    if os.path.isfile(vocab):
        extra["vocab.txt"] = vocab
    save_snapshot(sliced, student_model, config=student_config,
                  meta={"teacher": os.path.abspath(teacher_dir), "layer_list": layer_list,
                        "labels": meta.get("labels")}, extra_files=extra)
    print(f"[student] {student_model}: teacher layers {layer_list} -> {student_config.num_hidden_layers} layers")
    return student_model


@user_errors
def generate_main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Build a BERT-PKD student from chosen teacher layers.",
                                     allow_abbrev=False)
    parser.add_argument("--teacher_model", required=True, help="fine-tuned teacher snapshot")
    parser.add_argument("--student_model", required=True, help="where the student snapshot goes")
    parser.add_argument("--layer_list", default="2,6,10", help="0-based teacher layers, e.g. '2,6,10'")
    args = parser.parse_args(argv)
    generate_student_model(args.teacher_model, args.student_model, args.layer_list)


def add_student_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("student")
    g.add_argument("--student_model", default=None,
                   help="student snapshot to start from (e.g. from bert-pkd_generate_student_model.py)")
    add_bool(g, "--from_scratch", False, "initialise the student randomly instead of from --student_model")
    g.add_argument("--student_num_hidden_layers", type=int, default=3, help="layers of a --from_scratch student")
    g.add_argument("--student_hidden_size", type=int, default=0, help="--from_scratch width (0: teacher's)")
    g.add_argument("--student_num_attention_heads", type=int, default=0)
    g.add_argument("--student_intermediate_size", type=int, default=0)
    g.add_argument("--temperature", type=finite_number, default=1.0, help="softmax temperature T of the soft labels")
    add_bool(g, "--serve_for_online", False, "save only the student's tensors (no teacher, projections)")


def student_parser(description: str, epochs: float = 3, lr: float = 5e-5) -> argparse.ArgumentParser:
    """A student recipe's parser with the data, training and student flags (its own flags go on top)."""
    parser = argparse.ArgumentParser(description=description, allow_abbrev=False)
    add_data_args(parser)
    add_train_args(parser, epochs=epochs, lr=lr)
    add_student_args(parser)
    return parser


def check_soft_label_flags(weight_flag: str, weight: float, temperature: float) -> None:
    """Refuse a soft-label weight outside [0, 1] and a temperature that is not positive."""
    if not 0.0 <= weight <= 1.0:
        raise RecipeError(f"{weight_flag} must be in [0, 1], got {weight}")
    if temperature <= 0:
        raise RecipeError(f"--temperature must be positive, got {temperature}")


def run_settings(args: argparse.Namespace) -> RunSettings:
    """The run flags, with the scalar flags recorded in results files."""
    return from_flags(RunSettings, args, flags=flags_of(args))


def build_student(spec: cfg.StudentSettings, num_labels: int, reference_dir: str, data_vocab: str | None = None
                  ) -> tuple[BertForSequenceClassification, BertConfig]:
    """The student model: loaded from --student_model, or random with a config derived from a reference.
    A loaded student must read the ids of ``data_vocab`` (default: the reference's vocab.txt)."""
    if not spec.from_scratch:
        if not spec.student_model:
            raise RecipeError("give --student_model (e.g. from bert-pkd_generate_student_model.py) or --from_scratch")
        student_dir = resolve_model(spec.student_model)
        if data_vocab is None:
            data_vocab = os.path.join(reference_dir, "vocab.txt") if os.path.isdir(reference_dir) else ""
        if os.path.isfile(data_vocab):
            check_same_vocab(student_dir, load_vocab(data_vocab), data_vocab)
        model, config, _ = load_classifier(student_dir, num_labels, student=True)
        return model, config
    size_dir = resolve_model(spec.student_model) if spec.student_model else reference_dir
    _, ref_config, _ = load_model_snapshot(size_dir, "derive the student's size from it",
                                           student=bool(spec.student_model))
    changes = {"num_hidden_layers": spec.student_num_hidden_layers, "num_labels": num_labels}
    sizes = ((spec.student_hidden_size, "hidden_size"), (spec.student_num_attention_heads, "num_attention_heads"),
             (spec.student_intermediate_size, "intermediate_size"))
    for value, field in sizes:
        if value:
            changes[field] = value
    try:
        config = ref_config.replace(**changes)
    except ValueError as exc:
        raise RecipeError(str(exc)) from None
    return build_classifier(config), config


def pretrained_student(spec: cfg.StudentSettings) -> str | None:
    """The folder of a student loaded from --student_model (None for a random one)."""
    return resolve_model(spec.student_model) if spec.student_model and not spec.from_scratch else None


def teacher_inputs(teacher_model: str | None, run: cfg.RunSettings, data_settings: cfg.DataSettings,
                   student_dir: str | None = None
                   ) -> tuple[str, str, TaskData, BertForSequenceClassification, BertConfig]:
    """What a distillation from a teacher reads: (teacher dir, the vocab the data is read with, the task data,
    the teacher, its config); exit 2 without --teacher_model.

    The data is read with the teacher's vocabulary, or, for a pretrained ``student`` stored with another
    vocabulary that maps onto the teacher's (MiniLM under MPNet; ``student_dir``), with the student's:
    ``data.vocab_map`` then carries the map the teacher reads the ids through."""
    if not teacher_model:
        raise RecipeError("--teacher_model is required for training")
    teacher_dir = resolve_model(teacher_model)
    vocab = find_vocab(teacher_dir, run.vocab_file)
    mapped = None
    if student_dir and not run.vocab_file:
        mapped = student_vocab_map(student_dir, vocab)
    if mapped is None:
        data = load_task_data(data_settings, vocab, model_dir=teacher_dir)
    else:
        vocab = mapped[0]
        data = load_task_data(data_settings, vocab, model_dir=os.path.dirname(vocab), student=True)
        data.vocab_map = mapped[1]
        logger("data").info(f"token ids read with the student's {vocab}; the teacher {teacher_dir} reads them "
                            "mapped to its vocabulary")
    teacher, t_config, _ = load_classifier(teacher_dir, len(data.labels))
    longest = data_settings.seq_length + (data.vocab_map.extra_separator if data.vocab_map is not None else 0)
    if longest > t_config.max_seq_length:
        raise RecipeError(f"--seq_length {data_settings.seq_length}: the teacher {teacher_dir} reads a pair "
                          f"with one more separator than the student ({longest} tokens) but takes at most "
                          f"{t_config.max_seq_length}")
    return teacher_dir, vocab, data, teacher, t_config


def with_teacher_outputs(objective, train, teacher, teacher_dir: str, data: TaskData, settings: cfg.TrainSettings,
                         teacher_mode: str, refresh: bool, cls_layers=(), hidden_layers=(), tag: str = "kd"):
    """(objective, training batches) fed with the teacher's logits (and chosen states): computed in every
    step (`teacher_mode` online) or once per dataset into the teacher cache and joined by example index.
    With ``data.vocab_map`` the teacher reads the student's ids mapped to its own."""
    if teacher_mode == "online":
        targets = TeacherTargets(teacher, cls_layers, hidden_layers, vocab_map=data.vocab_map)
        return WithOnlineTeacher(objective, targets), train
    ordered = data.loader("train", settings.eval_batch_size_per_device, train=False, seed=settings.seed,
                          rank=0, world_size=1)
    arrays, where, hit = cached_teacher_outputs(
        teacher_dir, teacher, ordered, ordered.meta, os.path.join(data.data_dir, "teacher_cache"),
        cls_layers, hidden_layers, eager=settings.eager, refresh=refresh, vocab_map=data.vocab_map)
    logger(tag).info(f"teacher outputs {'reused from' if hit else 'cached in'} {where}")
    return objective, WithCachedTargets(train, arrays)


def logits_from_file(path: str, data: TaskData, train_loader) -> np.ndarray:
    """The teacher logits file checked against the training split (rows, labels, source); errors end the run."""
    try:
        return read_logits_file(path, len(data.examples["train"]), len(data.labels),
                                train_loader.meta.get("source_hash"))
    except TeacherFileError as exc:
        raise RecipeError(str(exc)) from None


def evaluate_and_report(
    settings: cfg.TrainSettings, flags: dict, snapshot: str, data: TaskData, result_dir: str, role: str,
    measured: dict | None = None,
) -> dict:
    """Dev metrics of a snapshot, written to ``result_dir``/results_eval.json (rank 0) and printed.

    ``measured``: the training loop's dev evaluation of this very snapshot, reported instead of a second
    one (which would compile another set of graphs: OneFlow keeps each graph's memory until the process
    ends)."""
    student = role.startswith("student")
    if measured is not None:
        metrics, model = measured, load_classifier(snapshot, len(data.labels), student=student, verbose=False)[0]
    else:
        metrics, model = evaluate_snapshot(settings, snapshot, data, "dev", student=student)
    if distributed.rank() == 0:
        path = write_results(result_dir, metrics, flags, model, snapshot, {"role": role})
        print(f"[{role}] dev accuracy {metrics['accuracy']:.4f}; results in {path}")
    return metrics


def evaluate_student(run: cfg.RunSettings, data_settings: cfg.DataSettings, settings: cfg.TrainSettings,
                     snapshot: str | None, output_dir: str, role: str) -> dict:
    """--do_eval of a student job: the trained (or given --student_model) snapshot on the dev split."""
    if not snapshot:
        raise RecipeError("--do_eval without --do_train needs --student_model")
    snap_dir = resolve_model(snapshot)
    data = load_task_data(data_settings, find_vocab(snap_dir, run.vocab_file), model_dir=snap_dir, student=True)
    return evaluate_and_report(settings, run.flags, snap_dir, data, run.result_dir or output_dir, role)
