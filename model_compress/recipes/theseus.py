"""BERT-of-Theseus runs over typed settings: module replacing (phase 1), successor fine-tuning (phase 2).

The entry model_compress/distil/task_theseus.py parses the flags below and calls `run`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os

from model_compress.cli import (
    add_data_args,
    add_train_args,
    finite_number,
    normalise_aliases,
    note_ignored,
    seed_everything,
    user_errors,
)
from model_compress.distill.mapping import check_layer_counts
from model_compress.distill.theseus import ReplacingGates, ReplacingSchedule, TheseusObjective
from model_compress.errors import RecipeError
from model_compress.modeling.bert import BertForSequenceClassification
from model_compress.modeling.resolve import resolve_model
from model_compress.modeling.slicing import slice_model
from model_compress.recipes import common
from model_compress.recipes import settings as cfg
from model_compress.recipes.settings import DataSettings, TheseusSettings, TrainSettings, from_flags
from model_compress.recipes.student import evaluate_student, run_settings
from model_compress.training import distributed
from model_compress.training.objectives import ClassificationObjective

ROLE = "student-theseus"


def successor_from(teacher: BertForSequenceClassification, layers: int) -> BertForSequenceClassification:
    """The successor as the original initialises it: the predecessor's embeddings, pooler and classifier
    and its first `layers` encoder layers."""
    return slice_model(teacher, list(range(layers)))[0]


def replacing_objective(
    run: cfg.RunSettings, settings: cfg.TrainSettings, data: common.TaskData, teacher_dir: str,
    student_model: str | None, student_layers: int, schedule: ReplacingSchedule,
):
    """Phase 1: (objective, successor, training batches with replacing gates)."""
    teacher, t_config, _ = common.load_classifier(teacher_dir, len(data.labels))
    if student_model:
        successor, s_config, _ = common.load_classifier(resolve_model(student_model), len(data.labels),
                                                        student=True)
        if s_config.hidden_size != t_config.hidden_size:
            raise RecipeError(f"--student_model {student_model} is {s_config.hidden_size} wide but the teacher "
                              f"{t_config.hidden_size}: successor layers must take the predecessor's width")
        student_layers = s_config.num_hidden_layers
    try:
        check_layer_counts(student_layers, t_config.num_hidden_layers)
    except ValueError as exc:
        raise RecipeError(f"--student_num_hidden_layers {student_layers}: {exc}") from None
    if not student_model:
        successor = successor_from(teacher, student_layers)
    teacher = distributed.setup_model(teacher, settings.device)
    successor = distributed.setup_model(successor, settings.device)
    objective = TheseusObjective(successor, teacher.bert.encoder.layer)
    loader = data.loader("train", run.batch_size_per_device, train=True, seed=settings.seed)
    return objective, successor, ReplacingGates(loader, schedule, student_layers, settings.seed)


def train_theseus(
    run: cfg.RunSettings, data_settings: cfg.DataSettings, settings: cfg.TrainSettings, student_model: str | None,
    student_layers: int, theseus: cfg.TheseusSettings,
) -> dict:
    """Phase 1 when the replacing rate is below 1 (needs the teacher), phase 2 (the successor alone, from
    --student_model) when it is 1; either keeps the best dev snapshot of the successor, a plain student."""
    output_dir = run.model_save_dir or os.path.join("output", f"{ROLE}-{settings.task_name}")
    result, snapshot = {}, student_model
    if run.do_train:
        try:
            schedule = ReplacingSchedule(theseus.replacing_rate, theseus.scheduler_type, theseus.scheduler_linear_k,
                                         theseus.steps_for_replacing)
        except ValueError as exc:
            raise RecipeError(str(exc)) from None
        if schedule.successor_only:
            if not student_model:
                raise RecipeError("--replacing_rate 1 fine-tunes the successor alone (phase 2): give --student_model "
                                  "(the phase-1 snapshot)")
            source_dir = resolve_model(student_model)
            vocab = common.find_vocab(source_dir, run.vocab_file)
            data = common.load_task_data(data_settings, vocab, model_dir=source_dir, student=True)
            successor, _, _ = common.load_classifier(source_dir, len(data.labels), student=True)
            successor = distributed.setup_model(successor, settings.device)
            objective = ClassificationObjective(successor)
            train = data.loader("train", run.batch_size_per_device, train=True, seed=settings.seed)
            phase = {"phase": 2, "predecessor": None}
        else:
            if not theseus.teacher_model:
                raise RecipeError("--teacher_model (the fine-tuned predecessor) is required while --replacing_rate < 1")
            source_dir = resolve_model(theseus.teacher_model)
            vocab = common.find_vocab(source_dir, run.vocab_file)
            data = common.load_task_data(data_settings, vocab, model_dir=source_dir)
            objective, successor, train = replacing_objective(run, settings, data, source_dir, student_model,
                                                              student_layers, schedule)
            phase = {"phase": 1, "predecessor": source_dir, "schedule": dataclasses.asdict(schedule)}
        dev = data.loader("dev", settings.eval_batch_size_per_device, train=False, seed=settings.seed, rank=0,
                          world_size=1)
        loop = common.fit_classifier(settings, objective, successor, train, dev, vocab, output_dir,
                              meta={"labels": data.labels, "role": ROLE, **phase})
        snapshot, result["train"] = loop.best_snapshot, loop
    if run.do_eval:
        result["eval"] = evaluate_student(run, data_settings, settings, snapshot, output_dir, ROLE)
    result["snapshot"] = snapshot
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="BERT-of-Theseus: replace blocks of a fine-tuned teacher by successor layers, then fine-tune "
                    "the successor alone (--replacing_rate 1).", allow_abbrev=False)
    add_data_args(parser)
    add_train_args(parser, epochs=4, lr=2e-5)
    g = parser.add_argument_group("theseus")
    g.add_argument("--teacher_model", default=None, help="fine-tuned teacher: the predecessor (phase 1)")
    g.add_argument("--student_model", default=None,
                   help="phase 1: successor to start from (default: the teacher's first layers); "
                        "phase 2 and evaluation: the successor snapshot")
    g.add_argument("--student_num_hidden_layers", type=int, default=3,
                   help="successor layers M; the teacher's N layers form M blocks of N / M")
    g.add_argument("--replacing_rate", "--replace_prob", dest="replacing_rate", type=finite_number, default=0.8,
                   help="probability that a block runs its successor (the base rate of a linear scheduler); "
                        "1: successor-only fine-tuning")
    g.add_argument("--scheduler_type", choices=("none", "linear"), default="none",
                   help="none: constant rate; linear: min(1, replacing_rate + scheduler_linear_k * step)")
    g.add_argument("--scheduler_linear_k", type=finite_number, default=0.0006, help="slope of the linear scheduler")
    g.add_argument("--steps_for_replacing", type=int, default=0,
                   help="constant scheduler: rate 1 from this step on (0: never)")
    g.add_argument("--serve_for_online", default=None,
                   help="accepted for the original; snapshots hold the successor only")
    return parser


def run(args: argparse.Namespace) -> dict:
    seed_everything(args.seed)
    return train_theseus(run_settings(args), from_flags(DataSettings, args), from_flags(TrainSettings, args),
                         args.student_model, args.student_num_hidden_layers, from_flags(TheseusSettings, args))


@user_errors
def main(argv=None) -> None:
    note_ignored(argv, ("--serve_for_online",), "task_theseus.py")
    run(normalise_aliases(build_parser().parse_args(argv)))
