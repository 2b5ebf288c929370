"""TinyBERT jobs: task distillation (model_compress/distil/task_student_tinybert.py) and the training-set
augmentation (model_compress/distil/data_augmentation.py)."""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from model_compress import cli
from model_compress.cli import add_bool, finite_number, user_errors
from model_compress.data.augmentation import DEFAULT_N, TASK_N, AugmentSpec, ensure_augmented
from model_compress.distill.intermediate import ATTENTION_KINDS
from model_compress.errors import RecipeError
from model_compress.jobs import settings as cfg
from model_compress.jobs.common import (
    classifier_state,
    find_vocab,
    load_model_snapshot,
    load_task_data,
)
from model_compress.jobs.pipelines.tinybert import train_tinybert
from model_compress.jobs.student import add_student_args, run_settings
from model_compress.modeling.resolve import resolve_model

WORD_EMBEDDINGS = "bert.embeddings.word_embeddings.weight"


def add_augment_args(parser: argparse.ArgumentParser) -> None:
    """The original data_augmentation.py's N, M and p."""
    g = parser.add_argument_group("augmentation")
    g.add_argument("--N", type=int, default=None,
                   help=f"tries per text, i.e. at most N new rows per text (default per task, e.g. SST-2 20; "
                        f"{DEFAULT_N} otherwise)")
    g.add_argument("--M", type=int, default=15, help="candidate replacements per word (nearest vocabulary words)")
    g.add_argument("--p", type=finite_number, default=0.4, help="probability of replacing each content word")


def augment_spec(args: argparse.Namespace, task_name: str) -> AugmentSpec:
    tries = args.N if args.N is not None else TASK_N.get(task_name.lower(), DEFAULT_N)
    try:
        return AugmentSpec(num_tries=tries, num_candidates=args.M, replace_prob=args.p, seed=args.seed)
    except ValueError as exc:
        raise RecipeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="TinyBERT task distillation: intermediate layers (step 1), then the prediction layer (step 2).",
        allow_abbrev=False)
    cli.add_data_args(parser)
    cli.add_train_args(parser, epochs=3, lr=5e-5)
    add_student_args(parser)
    parser.set_defaults(student_num_hidden_layers=4, student_hidden_size=312, student_num_attention_heads=12,
                        student_intermediate_size=1200, temperature=1.0)
    parser.add_argument("--teacher_model", default=None, help="fine-tuned teacher snapshot")
    add_bool(parser, "--intermediate_distill", True, "step 1: attention and hidden-state distillation")
    add_bool(parser, "--pred_distill", True, "step 2: soft cross-entropy on the teacher's logits (after step 1 "
             "when both are on; alone it continues --student_model or this run's snapshot_intermediate)")
    parser.add_argument("--attention_loss", choices=ATTENTION_KINDS, default="scores",
                        help="scores: raw attention scores with masked keys as 0 (TinyBERT); probs: probabilities")
    parser.add_argument("--layer_list", default=None,
                        help="start the student from these 0-based teacher layers, e.g. '1,3,5' (instead of "
                             "--student_model / --from_scratch)")
    add_bool(parser, "--aug_train", False, "train on the augmented training set (train_aug.tsv, built once)")
    add_augment_args(parser)
    return parser


def run(args: argparse.Namespace) -> dict:
    cli.seed_everything(args.seed)
    if args.layer_list and (args.from_scratch or args.student_model):
        raise RecipeError("--layer_list starts the student from teacher layers: leave out --student_model and "
                          "--from_scratch")
    spec = augment_spec(args, args.task_name)
    return train_tinybert(run_settings(args), cfg.from_flags(cfg.DataSettings, args),
                          cfg.from_flags(cfg.TrainSettings, args), cfg.from_flags(cfg.StudentSettings, args),
                          cfg.from_flags(cfg.TinyBERTSettings, args), spec)


@user_errors
def main(argv=None) -> None:
    run(cli.normalise_aliases(build_parser().parse_args(argv)))


def augment_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Write <glue_dir>/<task_name>/train_aug.tsv: training rows with words replaced by their nearest "
                    "neighbours in the model's word-embedding matrix (reused while nothing changes).",
        allow_abbrev=False)
    parser.add_argument("--pretrained_bert_model", default=None,
                        help="snapshot whose word embeddings choose the replacements (use the teacher, so that "
                             "task_student_tinybert.py --aug_train reuses the file; default: the default model)")
    parser.add_argument("--glue_dir", default="data/glue_data", help="folder holding <task_name>/train.tsv")
    parser.add_argument("--task_name", required=True, help="e.g. SST-2")
    parser.add_argument("--vocab_file", default=None, help="vocab.txt (default: the model's own)")
    parser.add_argument("--glove_embs", default=None, help="accepted for the original command line; not used")
    add_bool(parser, "--do_lower_case", True, "lower-case the text (uncased models)")
    parser.add_argument("--train_example_num", type=int, default=0, help="augment only the first N training rows")
    parser.add_argument("--seed", type=int, default=42)
    add_augment_args(parser)
    return parser


def word_embeddings(model_dir: str) -> np.ndarray:
    """The word-embedding matrix [vocab, width] of a snapshot."""
    state, _, _ = load_model_snapshot(model_dir, "read its word embeddings")
    matrix = classifier_state(state).get(WORD_EMBEDDINGS)
    if matrix is None:
        raise RecipeError(f"{model_dir} has no {WORD_EMBEDDINGS}")
    return np.asarray(matrix, dtype=np.float32)


def augment(args: argparse.Namespace) -> tuple[str, int, bool]:
    """Build (or reuse) the augmented training file; returns (path, rows, reused)."""
    spec = augment_spec(args, args.task_name)
    if args.glove_embs:
        print("[augment] --glove_embs: no GloVe here; replacements come from the model's word embeddings",
              file=sys.stderr)
    model_dir = resolve_model(args.pretrained_bert_model)
    vocab = find_vocab(model_dir, args.vocab_file)
    data_dir = os.path.join(args.glue_dir, args.task_name)
    settings = cfg.DataSettings(task_name=args.task_name, data_dir=data_dir, seq_length=1,
                            do_lower_case=args.do_lower_case, train_example_num=args.train_example_num)
    data = load_task_data(settings, vocab, splits=("train",))
    try:
        rows, path, reused = ensure_augmented(data_dir, data.examples["train"], data.tokenizer,
                                              word_embeddings(model_dir), spec)
    except ValueError as exc:
        raise RecipeError(f"{model_dir}: {exc}") from None
    print(f"[augment] {path}: {len(rows)} rows from {len(data.examples['train'])} "
          f"({'reused' if reused else 'written'}; N={spec.num_tries} M={spec.num_candidates} p={spec.replace_prob})")
    return path, len(rows), reused


@user_errors
def augment_main(argv=None) -> None:
    augment(augment_parser().parse_args(argv))
