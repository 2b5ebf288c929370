"""Distilled BiLSTM job: flags of model_compress/distil/task_student_kd_lstm.py."""

from __future__ import annotations

import argparse

from model_compress import cli
from model_compress.cli import finite_number
from model_compress.errors import RecipeError
from model_compress.jobs.pipelines.bilstm import train_distilled_lstm
from model_compress.jobs.settings import DataSettings, DistilledLSTMSettings, TrainSettings, from_flags
from model_compress.jobs.student import run_settings

# the original's flags that size a BERT student or the separate LSTM vocabulary: no effect on this student
IGNORED = ("--student_vocab_size", "--student_num_attention_heads", "--student_hidden_size_per_head",
           "--student_max_position_embeddings", "--student_type_vocab_size",
           "--student_attention_probs_dropout_prob", "--serve_for_online")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Distilled BiLSTM: an LSTM student learns from a BERT teacher's "
                                                 "logits (vanilla KD).", allow_abbrev=False)
    cli.add_data_args(parser)
    cli.add_train_args(parser, epochs=5, lr=1e-4)
    g = parser.add_argument_group("teacher")
    g.add_argument("--teacher_model", default=None, help="fine-tuned teacher; its vocabulary is the student's")
    g.add_argument("--teacher_logits", "--logits_saved_path", dest="teacher_logits", default=None,
                   help="teacher logits file (task_teacher.py --export_logits) instead of running the teacher")
    g.add_argument("--teacher_mode", choices=("cached", "online"), default="cached",
                   help="with --teacher_model: logits computed once and cached, or in every step")
    cli.add_bool(g, "--refresh_teacher_cache", False, "recompute cached teacher logits")
    g.add_argument("--kd_alpha", type=finite_number, default=0.7,
                   help="weight of the soft-label loss (1 - it: hard labels)")
    g.add_argument("--temperature", type=finite_number, default=1.0, help="softmax temperature T of the soft labels")
    s = parser.add_argument_group("LSTM student")
    s.add_argument("--student_model", default=None, help="a BiLSTM snapshot to evaluate (--do_eval alone)")
    s.add_argument("--student_hidden_size", type=int, default=300, help="LSTM hidden size per direction")
    s.add_argument("--student_embedding_size", type=int, default=0, help="word embedding size (0: hidden size)")
    s.add_argument("--student_num_hidden_layers", type=int, default=1, help="stacked LSTM layers")
    cli.add_bool(s, "--bidirectional", True, "a backward LSTM beside the forward one")
    s.add_argument("--student_intermediate_size", type=int, default=400, help="ReLU layer before the classifier")
    s.add_argument("--student_hidden_dropout_prob", type=finite_number, default=0.5,
                   help="dropout before the classifier")
    s.add_argument("--student_seq_length", type=int, default=0, help="tokens the student reads (0: --seq_length)")
    for name in IGNORED:
        s.add_argument(name, default=None, help=argparse.SUPPRESS)
    return parser


def run(args: argparse.Namespace) -> dict:
    cli.seed_everything(args.seed)
    if not 0.0 <= args.kd_alpha <= 1.0:
        raise RecipeError(f"--kd_alpha must be in [0, 1], got {args.kd_alpha}")
    if not 0.0 <= args.student_hidden_dropout_prob < 1.0:
        raise RecipeError(f"--student_hidden_dropout_prob must be in [0, 1), got {args.student_hidden_dropout_prob}")
    for name in ("student_hidden_size", "student_num_hidden_layers", "student_intermediate_size"):
        if getattr(args, name) < 1:
            raise RecipeError(f"--{name} must be positive, got {getattr(args, name)}")
    for name in ("student_embedding_size", "student_seq_length"):
        if getattr(args, name) < 0:
            raise RecipeError(f"--{name} must be >= 0, got {getattr(args, name)}")
    return train_distilled_lstm(run_settings(args), from_flags(DataSettings, args), from_flags(TrainSettings, args),
                                from_flags(DistilledLSTMSettings, args))


@cli.user_errors
def main(argv=None) -> None:
    cli.note_ignored(argv, IGNORED, "task_student_kd_lstm.py")
    run(cli.normalise_aliases(build_parser().parse_args(argv)))
