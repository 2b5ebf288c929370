"""Meta-KD step 4 (meta_distill.py): stage 1 intermediate and stage 2 soft-label distillation, or vanilla KD."""

from __future__ import annotations

import argparse

from model_compress import cli
from model_compress.cli import (
    add_bool,
    add_data_args,
    add_train_args,
    normalise_aliases,
    user_errors,
)
from model_compress.errors import RecipeError
from model_compress.jobs.common import flags_of
from model_compress.jobs.metakd.shared import add_attention_flag
from model_compress.jobs.pipelines.metakd import ALL_GENRES, STAGES
from model_compress.jobs.pipelines.metakd_distill import (  # noqa: F401  (re-exported for callers of this module)
    FIRST_STAGE_ROLE,
    build_meta_student,
    first_stage_snapshot,
    meta_distill,
    results_name,
)
from model_compress.jobs.settings import (
    DataSettings,
    MetaKDSettings,
    RunSettings,
    StudentSettings,
    TeacherDumpSettings,
    TrainSettings,
    from_flags,
)

# ----------------------------------------------------------------------------------------------
# meta_distill.py


def distill_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Meta-KD step 4: distil the meta-teacher into a student for one "
                                                 "domain (stage 1 intermediate layers, stage 2 soft labels).",
                                     allow_abbrev=False)
    add_data_args(parser)
    add_train_args(parser, epochs=3, lr=5e-5)
    g = parser.add_argument_group("meta distillation")
    g.add_argument("--teacher_model", default=None, help="the meta-teacher snapshot (meta_teacher.py)")
    g.add_argument("--distill_stage", choices=STAGES, default="all",
                   help="first: attention/hidden/domain MSE; second: soft labels at T; all: first then second; "
                        "vanilla: the same student trained with plain KD (baseline)")
    g.add_argument("--genre", default=ALL_GENRES, help="train on this domain only (books, dvd, ...) or all")
    g.add_argument("--temperature", "--T", dest="temperature", type=cli.finite_number, default=2.0,
                   help="softmax temperature of the soft labels (stage 2 and vanilla)")
    g.add_argument("--domain_loss_weight", type=cli.finite_number, default=0.5,
                   help="weight of the domain-knowledge MSE")
    add_bool(g, "--use_sample_weights", True, "stage 1: weight each example by its domain-expertise weight")
    add_bool(g, "--weight_soft_loss", False, "stage 2: weight the soft-label loss by the domain-expertise weight")
    g.add_argument("--first_stage_epochs", type=cli.finite_number, default=0,
                   help="epochs of stage 1 under --distill_stage all (0: --num_epochs)")
    g.add_argument("--alpha", type=cli.finite_number, default=0.5, help="vanilla stage: weight of the soft-label loss")
    g.add_argument("--dump_dir", default=None, help="the teacher dump (default: found by key, made if missing)")
    add_bool(g, "--refresh_teacher_cache", False, "recompute the teacher dump")
    add_attention_flag(g)
    s = parser.add_argument_group("student")
    s.add_argument("--student_model", default=None,
                   help="snapshot the student starts from (default: the pretrained model sliced to "
                        "--student_num_hidden_layers; stage second: this run's stage-1 snapshot)")
    s.add_argument("--student_num_hidden_layers", type=int, default=3,
                   help="student depth; a deeper --student_model keeps its layers k*i+k-1 (0: keep all; "
                        "stage second keeps the stage-1 student as it is)")
    add_bool(s, "--from_scratch", False, "random student of --student_num_hidden_layers layers instead")
    s.add_argument("--student_hidden_size", type=int, default=0, help="--from_scratch width (0: as the model)")
    s.add_argument("--student_num_attention_heads", type=int, default=0)
    s.add_argument("--student_intermediate_size", type=int, default=0)
    parser.set_defaults(task_name="senti", data_dir="data/SENTI", do_train=True, do_eval=True)
    return parser


def run_meta_distill(args: argparse.Namespace) -> dict:
    """Train (and evaluate per domain) the Meta-KD student of one genre, or its vanilla-KD twin."""
    if args.temperature <= 0:
        raise RecipeError(f"--temperature must be positive, got {args.temperature}")
    if not 0.0 <= args.alpha <= 1.0:
        raise RecipeError(f"--alpha must be in [0, 1], got {args.alpha}")
    if args.domain_loss_weight < 0:
        raise RecipeError(f"--domain_loss_weight must be >= 0, got {args.domain_loss_weight}")
    if args.do_train and not args.teacher_model:
        raise RecipeError("--teacher_model is required for training (the meta_teacher.py snapshot)")
    return meta_distill(from_flags(RunSettings, args, flags=flags_of(args)), from_flags(DataSettings, args),
                        from_flags(TrainSettings, args), from_flags(StudentSettings, args),
                        from_flags(MetaKDSettings, args), from_flags(TeacherDumpSettings, args))


@user_errors
def distill_main(argv=None) -> None:
    run_meta_distill(normalise_aliases(distill_parser().parse_args(argv)))
