"""Distilled BiLSTM runs over typed settings: an LSTM student taught by a BERT teacher's logits (vanilla KD).

The entry model_compress/distil/task_student_kd_lstm.py parses the flags below and calls `run`.
"""

from __future__ import annotations

import argparse
import os

from model_compress import cli
from model_compress.cli import finite_number
from model_compress.distill.objectives import VanillaKDObjective
from model_compress.errors import RecipeError
from model_compress.modeling.checkpoint import snapshot_config
from model_compress.modeling.config import LSTMConfig
from model_compress.modeling.lstm import DistilledBiLSTM
from model_compress.modeling.resolve import resolve_model
from model_compress.recipes import settings as cfg
from model_compress.recipes.common import (
    find_vocab,
    fit_classifier,
    load_classifier,
    load_task_data,
)
from model_compress.recipes.settings import DataSettings, DistilledLSTMSettings, TrainSettings, from_flags
from model_compress.recipes.student import evaluate_student, logits_from_file, run_settings, with_teacher_outputs
from model_compress.training import distributed
from model_compress.training.sources import WithCachedTargets

ROLE = "student-bilstm"


def lstm_config(spec: cfg.DistilledLSTMSettings, vocab_size: int, num_labels: int) -> LSTMConfig:
    """The student's shape from the flags; its embedding covers the teacher's vocabulary."""
    try:
        return LSTMConfig(
            vocab_size=vocab_size, embedding_size=spec.student_embedding_size or spec.student_hidden_size,
            hidden_size=spec.student_hidden_size, num_layers=spec.student_num_hidden_layers,
            bidirectional=spec.bidirectional, intermediate_size=spec.student_intermediate_size,
            hidden_dropout_prob=spec.student_hidden_dropout_prob, num_labels=num_labels,
            max_seq_length=spec.student_seq_length)
    except ValueError as exc:
        raise RecipeError(f"student size: {exc}") from None


def train_distilled_lstm(
    run: cfg.RunSettings, data_settings: cfg.DataSettings, settings: cfg.TrainSettings,
    spec: cfg.DistilledLSTMSettings,
) -> dict:
    """KD of a fresh LSTM student from a logits file or the teacher (online or cached), then dev metrics."""
    output_dir = run.model_save_dir or os.path.join("output", f"{ROLE}-{settings.task_name}")
    result, snapshot = {}, spec.student_model
    if run.do_train:
        if not (spec.teacher_logits or spec.teacher_model):
            raise RecipeError("give --teacher_model (the fine-tuned teacher) or --teacher_logits "
                              "(task_teacher.py --export_logits)")
        teacher_dir = resolve_model(spec.teacher_model)  # its vocabulary is the student's
        vocab = find_vocab(teacher_dir, run.vocab_file)
        data = load_task_data(data_settings, vocab, model_dir=teacher_dir)
        teacher_config = snapshot_config(teacher_dir)
        vocab_size = teacher_config.vocab_size if teacher_config else len(data.tokenizer.vocab)
        model = DistilledBiLSTM(lstm_config(spec, vocab_size, len(data.labels)))
        model = distributed.setup_model(model, settings.device)
        objective = VanillaKDObjective(model, spec.temperature, spec.kd_alpha)
        train = data.loader("train", run.batch_size_per_device, train=True, seed=settings.seed)
        if spec.teacher_logits:
            train = WithCachedTargets(train, {"teacher_logits": logits_from_file(spec.teacher_logits, data, train)})
        else:
            teacher, _, _ = load_classifier(teacher_dir, len(data.labels))
            teacher = distributed.setup_model(teacher, settings.device)
            objective, train = with_teacher_outputs(objective, train, teacher, teacher_dir, data, settings,
                                                    spec.teacher_mode, spec.refresh_teacher_cache, tag="bilstm")
        dev = data.loader("dev", settings.eval_batch_size_per_device, train=False, seed=settings.seed, rank=0,
                          world_size=1)
        loop = fit_classifier(settings, objective, model, train, dev, vocab, output_dir,
                              meta={"labels": data.labels, "role": ROLE, "teacher": teacher_dir})
        snapshot, result["train"] = loop.best_snapshot, loop
    if run.do_eval:
        result["eval"] = evaluate_student(run, data_settings, settings, snapshot, output_dir, ROLE)
    result["snapshot"] = snapshot
    return result


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
