"""Student distillation jobs: vanilla KD from a logits file, and BERT-PKD.

Entries: model_compress/distil/task_student_kd.py, model_compress/distil/task_student_bert-pkd.py and
model_compress/distil/bert-pkd_generate_student_model.py (students from chosen teacher layers).
"""

from __future__ import annotations

import argparse
import os

from model_compress.cli import (
    add_bool,
    add_data_args,
    add_train_args,
    finite_number,
    normalise_aliases,
    seed_everything,
    user_errors,
)
from model_compress.errors import RecipeError
from model_compress.jobs.common import (
    classifier_state,
    flags_of,
    load_model_snapshot,
)
from model_compress.jobs.pipelines.student import train_kd, train_pkd
from model_compress.jobs.settings import (
    DataSettings,
    KDSettings,
    PKDSettings,
    RunSettings,
    StudentSettings,
    TrainSettings,
    from_flags,
)
from model_compress.modeling.checkpoint import save_snapshot
from model_compress.modeling.resolve import resolve_model
from model_compress.modeling.slicing import slice_layers

# ----------------------------------------------------------------------------------------------
# bert-pkd_generate_student_model.py


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


# ----------------------------------------------------------------------------------------------
# shared by the KD and PKD students


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


# ----------------------------------------------------------------------------------------------
# task_student_kd.py: vanilla KD


def kd_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train a student with vanilla KD from teacher logits.",
                                     allow_abbrev=False)
    add_data_args(parser)
    add_train_args(parser, epochs=3, lr=5e-5)
    add_student_args(parser)
    parser.add_argument("--teacher_logits", "--logits_saved_path", dest="teacher_logits", default=None,
                        help="teacher logits file (task_teacher.py --export_logits), one line per train row")
    parser.add_argument("--alpha", type=finite_number, default=0.2, help="weight of the soft-label loss in [0, 1]")
    parser.set_defaults(temperature=5.0)
    return parser


def run_settings(args: argparse.Namespace) -> RunSettings:
    """The run flags, with the scalar flags recorded in results files."""
    return from_flags(RunSettings, args, flags=flags_of(args))


def run_kd(args: argparse.Namespace) -> dict:
    seed_everything(args.seed)
    if not 0.0 <= args.alpha <= 1.0:
        raise RecipeError(f"--alpha must be in [0, 1], got {args.alpha}")
    if args.temperature <= 0:
        raise RecipeError(f"--temperature must be positive, got {args.temperature}")
    return train_kd(run_settings(args), from_flags(DataSettings, args), from_flags(TrainSettings, args),
                    from_flags(StudentSettings, args), from_flags(KDSettings, args))


@user_errors
def kd_main(argv=None) -> None:
    run_kd(normalise_aliases(kd_parser().parse_args(argv)))


# ----------------------------------------------------------------------------------------------
# task_student_bert-pkd.py


def pkd_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train a BERT-PKD student (soft labels + patient loss).",
                                     allow_abbrev=False)
    add_data_args(parser)
    add_train_args(parser, epochs=3, lr=5e-5)
    add_student_args(parser)
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


def run_pkd(args: argparse.Namespace) -> dict:
    seed_everything(args.seed)
    for name in ("kd_alpha",):
        if not 0.0 <= getattr(args, name) <= 1.0:
            raise RecipeError(f"--{name} must be in [0, 1], got {getattr(args, name)}")
    if args.temperature <= 0:
        raise RecipeError(f"--temperature must be positive, got {args.temperature}")
    return train_pkd(run_settings(args), from_flags(DataSettings, args), from_flags(TrainSettings, args),
                     from_flags(StudentSettings, args), from_flags(PKDSettings, args))


@user_errors
def pkd_main(argv=None) -> None:
    run_pkd(normalise_aliases(pkd_parser().parse_args(argv)))
