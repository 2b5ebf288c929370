"""BERT-of-Theseus job: flags of model_compress/distil/task_theseus.py (both phases, and evaluation)."""

from __future__ import annotations

import argparse

from model_compress.cli import (
    add_data_args,
    add_train_args,
    finite_number,
    normalise_aliases,
    note_ignored,
    seed_everything,
    user_errors,
)
from model_compress.jobs.pipelines.theseus import train_theseus
from model_compress.jobs.settings import DataSettings, TheseusSettings, TrainSettings, from_flags
from model_compress.jobs.student import run_settings


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
