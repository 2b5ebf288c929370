"""Student runs over typed settings: vanilla KD from a logits file, BERT-PKD, and a no-teacher baseline."""

from __future__ import annotations

import os
import sys

import numpy as np

from model_compress.data.vocab import load_vocab
from model_compress.distill.mapping import pkd_mapping, uniform_mapping
from model_compress.distill.objectives import (
    PKDObjective,
    PKDSequenceMSEObjective,
    TeacherTargets,
    VanillaKDObjective,
    WithOnlineTeacher,
)
from model_compress.distill.teacher_cache import TeacherFileError, cached_teacher_outputs, read_logits_file
from model_compress.errors import RecipeError
from model_compress.jobs import settings as cfg
from model_compress.jobs.common import (
    TaskData,
    check_same_vocab,
    evaluate_snapshot,
    find_vocab,
    fit_classifier,
    load_classifier,
    load_model_snapshot,
    load_task_data,
    student_vocab_map,
    write_results,
)
from model_compress.modeling.bert import BertForSequenceClassification
from model_compress.modeling.classifiers import build_classifier
from model_compress.modeling.config import BertConfig
from model_compress.modeling.resolve import resolve_model
from model_compress.training import distributed
from model_compress.training.sources import WithCachedTargets


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


def evaluate_and_report(
    settings: cfg.TrainSettings, flags: dict, snapshot: str, data: TaskData, result_dir: str, role: str
) -> dict:
    """Dev metrics of a snapshot, written to ``result_dir``/results_eval.json (rank 0) and printed."""
    metrics, model = evaluate_snapshot(settings, snapshot, data, "dev", student=role.startswith("student"))
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


def logits_from_file(path: str, data: TaskData, train_loader) -> np.ndarray:
    """The teacher logits file checked against the training split (rows, labels, source); errors end the run."""
    try:
        return read_logits_file(path, len(data.examples["train"]), len(data.labels),
                                train_loader.meta.get("source_hash"))
    except TeacherFileError as exc:
        raise RecipeError(str(exc)) from None


def train_kd_student(settings: cfg.TrainSettings, data: TaskData, student: cfg.StudentSettings, reference: str,
                     vocab: str, logits: np.ndarray, temperature: float, alpha: float, train_loader,
                     output_dir: str, meta: dict | None = None):
    """Vanilla KD: the student learns from ``logits`` (one row per training example, file order) and the
    labels; the loop keeps the best dev snapshot in ``output_dir``."""
    model, _ = build_student(student, len(data.labels), reference)
    model = distributed.setup_model(model, settings.device)
    train = WithCachedTargets(train_loader, {"teacher_logits": logits})
    dev = data.loader("dev", settings.eval_batch_size_per_device, train=False, seed=settings.seed, rank=0,
                      world_size=1)
    objective = VanillaKDObjective(model, temperature, alpha)
    return fit_classifier(settings, objective, model, train, dev, vocab, output_dir,
                          meta={"labels": data.labels, "role": "student-kd", **(meta or {})})


def train_kd(
    run: cfg.RunSettings, data_settings: cfg.DataSettings, settings: cfg.TrainSettings, student: cfg.StudentSettings,
    kd: cfg.KDSettings,
) -> dict:
    """Vanilla KD of a student from a teacher logits file (best dev snapshot), then its dev metrics."""
    reference = resolve_model(student.student_model)
    vocab = find_vocab(reference, run.vocab_file)
    data = load_task_data(data_settings, vocab, model_dir=reference, student=True)
    output_dir = run.model_save_dir or os.path.join("output", f"student-kd-{settings.task_name}")
    snapshot, result = student.student_model, {}
    if run.do_train:
        if not kd.teacher_logits:
            raise RecipeError("--teacher_logits is required for training (export it with task_teacher.py "
                              "--export_logits)")
        loader = data.loader("train", run.batch_size_per_device, train=True, seed=settings.seed)
        logits = logits_from_file(kd.teacher_logits, data, loader)
        loop = train_kd_student(settings, data, student, reference, vocab, logits, kd.temperature, kd.alpha,
                                loader, output_dir)
        snapshot, result["train"] = loop.best_snapshot, loop
    if run.do_eval:
        if not snapshot:
            raise RecipeError("--do_eval without --do_train needs --student_model")
        result["eval"] = evaluate_and_report(settings, run.flags, snapshot, data, run.result_dir or output_dir,
                                             "student-kd")
    result["snapshot"] = snapshot
    return result


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
    print(f"[{tag}] teacher outputs {'reused from' if hit else 'cached in'} {where}", file=sys.stderr)
    return objective, WithCachedTargets(train, arrays)


def pkd_layers(variant: str, mapping: str, student_layers: int, teacher_layers: int) -> tuple[list[int], list[int]]:
    """(student hidden-state indices, teacher hidden-state indices) the intermediate loss compares."""
    try:
        if variant == "paper":
            pairs = pkd_mapping(student_layers, teacher_layers, mapping)
        else:
            pairs = uniform_mapping(student_layers, teacher_layers)
    except ValueError as exc:
        raise RecipeError(str(exc)) from None
    return [s for s, _ in pairs], [t for _, t in pairs]


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
        if distributed.rank() == 0:
            print(f"[data] token ids read with the student's {vocab}; the teacher {teacher_dir} reads them mapped "
                  "to its vocabulary", file=sys.stderr)
    teacher, t_config, _ = load_classifier(teacher_dir, len(data.labels))
    longest = data_settings.seq_length + (data.vocab_map.extra_separator if data.vocab_map is not None else 0)
    if longest > t_config.max_seq_length:
        raise RecipeError(f"--seq_length {data_settings.seq_length}: the teacher {teacher_dir} reads a pair "
                          f"with one more separator than the student ({longest} tokens) but takes at most "
                          f"{t_config.max_seq_length}")
    return teacher_dir, vocab, data, teacher, t_config


def train_pkd(
    run: cfg.RunSettings, data_settings: cfg.DataSettings, settings: cfg.TrainSettings, spec: cfg.StudentSettings,
    pkd: cfg.PKDSettings,
) -> dict:
    """BERT-PKD (soft labels + patient loss, teacher online or cached), then the student's dev metrics."""
    output_dir = run.model_save_dir or os.path.join("output", f"student-pkd-{settings.task_name}")
    result, snapshot = {}, spec.student_model
    if run.do_train:
        teacher_dir, vocab, data, teacher, t_config = teacher_inputs(pkd.teacher_model, run, data_settings,
                                                                     pretrained_student(spec))
        student, s_config = build_student(spec, len(data.labels), teacher_dir, vocab)
        s_layers, t_layers = pkd_layers(pkd.pkd_variant, pkd.pkd_mapping, s_config.num_hidden_layers,
                                        t_config.num_hidden_layers)
        teacher = distributed.setup_model(teacher, settings.device)
        student = distributed.setup_model(student, settings.device)
        cls_layers = t_layers if pkd.pkd_variant == "paper" else ()
        hidden_layers = t_layers if pkd.pkd_variant == "original" else ()
        if pkd.pkd_variant == "paper":
            objective = PKDObjective(student, s_layers, pkd.temperature, pkd.kd_alpha, pkd.kd_beta)
        else:
            objective = PKDSequenceMSEObjective(student, s_layers, t_config.hidden_size, pkd.temperature,
                                                pkd.kd_alpha, pkd.kd_beta)
            objective = distributed.setup_model(objective, settings.device)
        train = data.loader("train", run.batch_size_per_device, train=True, seed=settings.seed)
        objective, train = with_teacher_outputs(objective, train, teacher, teacher_dir, data, settings,
                                                pkd.teacher_mode, pkd.refresh_teacher_cache, cls_layers,
                                                hidden_layers, tag="pkd")
        dev = data.loader("dev", settings.eval_batch_size_per_device, train=False, seed=settings.seed, rank=0,
                          world_size=1)
        save_module = student if pkd.serve_for_online else objective
        loop = fit_classifier(settings, objective, student, train, dev, vocab, output_dir, save_module=save_module,
                              meta={"labels": data.labels, "role": "student-pkd", "teacher": teacher_dir,
                                    "student_layers": s_layers, "teacher_layers": t_layers,
                                    "serve_for_online": bool(pkd.serve_for_online)})
        snapshot, result["train"] = loop.best_snapshot, loop
    if run.do_eval:
        result["eval"] = evaluate_student(run, data_settings, settings, snapshot, output_dir, "student-pkd")
    result["snapshot"] = snapshot
    return result
