"""Command-line flags shared by the entry scripts, with the originals' names and spellings.

Boolean flags accept both styles the seeds use: `--do_train` and `--do_train=True` / `'False'`.
"""

from __future__ import annotations

import argparse
import os
import random

import numpy as np


def str2bool(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "y", "on"):
        return True
    if lowered in ("0", "false", "no", "n", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {value!r}")


def add_bool(parser: argparse.ArgumentParser, name: str, default: bool, help: str) -> None:
    parser.add_argument(name, type=str2bool, nargs="?", const=True, default=default, help=help)


def positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return number


def add_data_args(parser: argparse.ArgumentParser) -> None:
    """Task, data location, tokenisation and OFRecord flags (every script)."""
    g = parser.add_argument_group("data")
    g.add_argument("--task_name", default="senti", help="task/processor name, e.g. sst-2, senti, g1")
    g.add_argument("--data_dir", default="data/SENTI", help="folder with the task's tsv/csv files")
    g.add_argument("--vocab_file", default=None, help="BERT vocab.txt (default: the model's own)")
    g.add_argument("--seq_length", type=positive_int, default=128, help="max tokens per example")
    g.add_argument("--train_example_num", type=int, default=0, help="use only the first N training rows")
    g.add_argument("--eval_example_num", type=int, default=0, help="use only the first N eval rows")
    g.add_argument("--dev_example_num", type=int, default=0, help="use only the first N dev rows")
    add_bool(g, "--resave_ofrecord", False, "rebuild the OFRecord files from the text files")
    add_bool(g, "--do_lower_case", True, "lower-case and strip accents (uncased vocab)")


def add_train_args(parser: argparse.ArgumentParser, epochs: float = 3, lr: float = 2e-5) -> None:
    """Optimisation, evaluation cadence, output and device flags (training scripts)."""
    g = parser.add_argument_group("training")
    g.add_argument("--num_epochs", type=float, default=epochs)
    g.add_argument("--max_steps", type=int, default=0, help="stop after N steps (0: num_epochs decides)")
    g.add_argument("--batch_size_per_device", type=positive_int, default=32)
    g.add_argument("--eval_batch_size_per_device", type=positive_int, default=64)
    g.add_argument("--dev_batch_size_per_device", type=positive_int, default=None, help="alias of eval")
    g.add_argument("--learning_rate", type=float, default=lr)
    g.add_argument("--weight_decay_rate", type=float, default=0.01)
    g.add_argument("--warmup_proportion", type=float, default=0.1)
    g.add_argument("--clip_grad_norm", type=float, default=1.0)
    g.add_argument("--eval_every_step_num", type=int, default=0, help="also evaluate every N steps")
    g.add_argument("--dev_every_step_num", type=int, default=None, help="alias of --eval_every_step_num")
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--model_save_dir", default=None, help="where snapshots go (default output/<job>-<task>)")
    g.add_argument("--result_dir", default="", help="where results_eval.json goes (default: model_save_dir)")
    add_bool(g, "--do_train", False, "train")
    add_bool(g, "--do_eval", False, "evaluate the best snapshot on the dev set")
    add_bool(g, "--freeze_word_embeddings", False,
             "keep the word-embedding matrix fixed (a faster step on CPU; see docs/benchmarks.md)")
    add_bool(g, "--eager", False, "run eagerly instead of nn.Graph (debugging)")
    g.add_argument("--device", default="cpu", help="cpu or cuda (GPU runs need a CUDA machine)")
    g.add_argument("--gpu_num_per_node", type=int, default=None, help="accepted for the originals; use the launcher")


def normalise_aliases(args: argparse.Namespace) -> argparse.Namespace:
    """Fold the originals' alias flags into the canonical ones."""
    if getattr(args, "dev_every_step_num", None) is not None:
        args.eval_every_step_num = args.dev_every_step_num
    if getattr(args, "dev_batch_size_per_device", None) is not None:
        args.eval_batch_size_per_device = args.dev_batch_size_per_device
    if getattr(args, "gpu_num_per_node", None) and args.gpu_num_per_node > 0 and args.device == "cpu":
        args.device = "cuda"
    return args


def seed_everything(seed: int) -> None:
    """Seed python, numpy and OneFlow."""
    import oneflow as flow

    random.seed(seed)
    np.random.seed(seed)
    flow.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))


def fail(message: str) -> None:
    """Stop with one clear line instead of a traceback (user mistakes)."""
    raise SystemExit(f"error: {message}")
