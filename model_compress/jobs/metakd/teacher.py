"""Meta-KD steps 1-3: prototypical scores, the meta-teacher and its dump (preprocess, meta_teacher, _eval)."""

from __future__ import annotations

import argparse

from model_compress.cli import (
    add_bool,
    add_data_args,
    add_train_args,
    normalise_aliases,
    note_ignored,
    user_errors,
)
from model_compress.errors import RecipeError
from model_compress.jobs import mft
from model_compress.jobs.common import flags_of
from model_compress.jobs.metakd.shared import add_attention_flag
from model_compress.jobs.pipelines.metakd import dump_teacher, train_meta_teacher
from model_compress.jobs.settings import (
    DataSettings,
    MetaTeacherSettings,
    RunSettings,
    TeacherDumpSettings,
    TrainSettings,
    from_flags,
)
from model_compress.modeling.pretrained import DEFAULT as DEFAULT_MODEL

# ----------------------------------------------------------------------------------------------
# preprocess.py


def preprocess_parser() -> argparse.ArgumentParser:
    parser = mft.preprocess_parser()
    parser.description = "Meta-KD step 1: prototypical score of every training example across the domains."
    parser.set_defaults(task_name="senti", data_dir="data/SENTI")
    return parser


@user_errors
def preprocess_main(argv=None) -> None:
    note_ignored(argv, mft.PREPROCESS_IGNORED, "preprocess.py")
    mft.run_preprocess(normalise_aliases(preprocess_parser().parse_args(argv)))


# ----------------------------------------------------------------------------------------------
# meta_teacher.py


def meta_teacher_parser() -> argparse.ArgumentParser:
    parser = mft.meta_finetuning_parser()
    parser.description = ("Meta-KD step 2: the meta-teacher, trained on all domains with sample weights and "
                          "the domain-corruption loss.")
    g = parser.add_argument_group("meta-teacher")
    add_bool(g, "--use_sample_weights", True, "weight each example's CE by its prototypical score")
    add_bool(g, "--use_domain_loss", True, "add the domain-corruption loss (weight --domain_loss_weight)")
    parser.set_defaults(task_name="senti", data_dir="data/SENTI", domain_loss_weight=0.5, num_epochs=3)
    return parser


def run_meta_teacher(args: argparse.Namespace) -> dict:
    """MFT-style meta-teacher on every domain; keeps the best-dev snapshot and reports accuracy per domain."""
    if args.domain_loss_weight < 0:
        raise RecipeError(f"--domain_loss_weight must be >= 0, got {args.domain_loss_weight}")
    return train_meta_teacher(from_flags(RunSettings, args, flags=flags_of(args)), from_flags(DataSettings, args),
                              from_flags(TrainSettings, args), from_flags(MetaTeacherSettings, args),
                              args.model_load_dir)


@user_errors
def meta_teacher_main(argv=None) -> None:
    run_meta_teacher(normalise_aliases(meta_teacher_parser().parse_args(argv)))


def teacher_eval_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Meta-KD step 3: dump the meta-teacher's knowledge of every "
                                                 "training example (logits, attentions, hidden states, domain).",
                                     allow_abbrev=False)
    parser.add_argument("--model_load_dir", default=DEFAULT_MODEL,
                        help="the meta-teacher snapshot, e.g. "
                             "output/model_save-<time>/snapshot_best_mft_model_senti_dev_<acc>")
    add_data_args(parser)
    add_train_args(parser, epochs=4, lr=5e-5)  # accepted as in the seed command; only eval/seed/device flags act
    g = parser.add_argument_group("dump")
    g.add_argument("--student_num_hidden_layers", type=int, default=3,
                   help="depth of the student the dump is for: it decides which teacher layers are kept")
    g.add_argument("--dump_dir", default=None,
                   help="where the dump goes (default <data_dir>/teacher_cache/metakd-<key>)")
    add_bool(g, "--refresh_teacher_cache", False, "recompute the dump even if an identical one exists")
    add_attention_flag(g)
    parser.set_defaults(task_name="senti", data_dir="data/SENTI")
    return parser


def run_teacher_eval(args: argparse.Namespace) -> dict:
    """The meta-teacher's dump for a --student_num_hidden_layers student (reused when an identical one exists)."""
    return dump_teacher(from_flags(DataSettings, args), from_flags(TrainSettings, args),
                        from_flags(TeacherDumpSettings, args), args.model_load_dir, args.vocab_file,
                        args.student_num_hidden_layers)


@user_errors
def teacher_eval_main(argv=None) -> None:
    note_ignored(argv, mft.PREPROCESS_IGNORED, "meta_teacher_eval.py")
    run_teacher_eval(normalise_aliases(teacher_eval_parser().parse_args(argv)))


