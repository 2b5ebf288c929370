"""BERT-PKD: KD on the logits plus the patient loss on the normalised [CLS] states of mapped layers
(PKD-skip / PKD-last), or the sequence-MSE variant.

The entry model_compress/distil/task_student_bert-pkd.py parses the flags below and calls `run`.
"""

from __future__ import annotations

import argparse
import os

from model_compress.cli import (
    add_bool,
    finite_number,
    normalise_aliases,
    seed_everything,
    user_errors,
)
from model_compress.distill.mapping import pkd_mapping, uniform_mapping
from model_compress.distill.objectives import (
    PKDObjective,
    PKDSequenceMSEObjective,
)
from model_compress.errors import RecipeError
from model_compress.recipes import settings as cfg
from model_compress.recipes.common import (
    fit_classifier,
)
from model_compress.recipes.settings import (
    DataSettings,
    PKDSettings,
    StudentSettings,
    TrainSettings,
    from_flags,
)
from model_compress.recipes.student import (
    build_student,
    check_soft_label_flags,
    evaluate_student,
    pretrained_student,
    run_settings,
    student_parser,
    teacher_inputs,
    with_teacher_outputs,
)
from model_compress.training import distributed


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


def build_parser() -> argparse.ArgumentParser:
    parser = student_parser("Train a BERT-PKD student (soft labels + patient loss).")
    parser.add_argument("--teacher_model", default=None, help="fine-tuned teacher snapshot")
    parser.add_argument("--kd_alpha", type=finite_number, default=0.9, help="weight of the soft-label loss")
    parser.add_argument("--kd_beta", type=finite_number, default=10.0, help="weight of the patient (intermediate) loss")
    parser.add_argument("--pkd_mapping", choices=("skip", "last"), default="skip",
                        help="teacher layers the student's [CLS] states follow (paper: PKD-Skip / PKD-Last)")
    parser.add_argument("--pkd_variant", choices=("paper", "original"), default="paper",
                        help="paper: normalised [CLS] distance; original: the OneFlow original's full-sequence "
                             "MSE through fit_dense on uniformly spaced teacher layers")
    parser.add_argument("--teacher_mode", choices=("cached", "online"), default="cached",
                        help="cached: teacher outputs computed once per dataset and reused; online: every step")
    add_bool(parser, "--refresh_teacher_cache", False, "recompute cached teacher outputs")
    parser.set_defaults(temperature=2.0)
    return parser


def run(args: argparse.Namespace) -> dict:
    seed_everything(args.seed)
    check_soft_label_flags("--kd_alpha", args.kd_alpha, args.temperature)
    return train_pkd(run_settings(args), from_flags(DataSettings, args), from_flags(TrainSettings, args),
                     from_flags(StudentSettings, args), from_flags(PKDSettings, args))


@user_errors
def main(argv=None) -> None:
    run(normalise_aliases(build_parser().parse_args(argv)))
