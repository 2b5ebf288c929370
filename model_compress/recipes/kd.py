"""Vanilla KD: (1 - alpha) hard-label cross-entropy + alpha T^2 KL to the teacher's softened logits, read
from a logits file (task_teacher.py --export_logits) or computed from --teacher_model once.

The entry model_compress/distil/task_student_kd.py parses the flags below and calls `run`.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from model_compress.cli import (
    finite_number,
    normalise_aliases,
    seed_everything,
    user_errors,
)
from model_compress.distill.objectives import (
    VanillaKDObjective,
)
from model_compress.errors import RecipeError
from model_compress.modeling.resolve import resolve_model
from model_compress.recipes import settings as cfg
from model_compress.recipes.common import (
    TaskData,
    find_vocab,
    fit_classifier,
    load_task_data,
)
from model_compress.recipes.settings import (
    DataSettings,
    KDSettings,
    StudentSettings,
    TrainSettings,
    from_flags,
)
from model_compress.recipes.student import (
    build_student,
    check_soft_label_flags,
    evaluate_and_report,
    logits_from_file,
    run_settings,
    student_parser,
)
from model_compress.training import distributed
from model_compress.training.sources import WithCachedTargets


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
                                             "student-kd", result["train"].best_metrics() if run.do_train else None)
    result["snapshot"] = snapshot
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = student_parser("Train a student with vanilla KD from teacher logits.")
    parser.add_argument("--teacher_logits", "--logits_saved_path", dest="teacher_logits", default=None,
                        help="teacher logits file (task_teacher.py --export_logits), one line per train row")
    parser.add_argument("--alpha", type=finite_number, default=0.2, help="weight of the soft-label loss in [0, 1]")
    parser.set_defaults(temperature=5.0)
    return parser


def run(args: argparse.Namespace) -> dict:
    seed_everything(args.seed)
    check_soft_label_flags("--alpha", args.alpha, args.temperature)
    return train_kd(run_settings(args), from_flags(DataSettings, args), from_flags(TrainSettings, args),
                    from_flags(StudentSettings, args), from_flags(KDSettings, args))


@user_errors
def main(argv=None) -> None:
    run(normalise_aliases(build_parser().parse_args(argv)))
