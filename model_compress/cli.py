"""Command-line flags shared by the entry scripts, with the originals' names and spellings.

Boolean flags accept both styles the seeds use: `--do_train` and `--do_train=True` / `'False'`.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import functools
import os
import random
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn, TypeVar

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


def finite_number(value: str) -> float:
    """argparse type of float flags: a number, NaN and infinity refused."""
    from model_compress.finite import finite_float

    try:
        return finite_float(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc) if "finite" in str(exc) else f"not a number: {value!r}") from None


def positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return number


def length_buckets_flag(value: str):
    """--length_buckets: ``auto``, ``none`` or comma-separated bounds (see ``data.buckets``)."""
    from model_compress.data.buckets import BucketSpecError, parse_length_buckets

    try:
        return parse_length_buckets(value)
    except BucketSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
    g.add_argument("--length_buckets", type=length_buckets_flag, default="auto",
                   help="batches of similar token counts padded only to their bucket's bound, one compiled graph "
                        "per bound: 'auto' (bounds chosen from the data), 'none' (pad to --seq_length) or e.g. "
                        "16,32,48,64")
    add_bool(g, "--resave_ofrecord", False, "rebuild the OFRecord files from the text files")
    add_bool(g, "--do_lower_case", True, "lower-case and strip accents (uncased vocab)")


def add_train_args(parser: argparse.ArgumentParser, epochs: float = 3, lr: float = 2e-5) -> None:
    """Optimisation, evaluation cadence, output and device flags (training scripts)."""
    g = parser.add_argument_group("training")
    g.add_argument("--num_epochs", type=finite_number, default=epochs)
    g.add_argument("--max_steps", type=int, default=0, help="stop after N steps (0: num_epochs decides)")
    g.add_argument("--batch_size_per_device", type=positive_int, default=32)
    g.add_argument("--eval_batch_size_per_device", type=positive_int, default=64)
    g.add_argument("--dev_batch_size_per_device", type=positive_int, default=None, help="alias of eval")
    g.add_argument("--learning_rate", type=finite_number, default=lr)
    g.add_argument("--weight_decay_rate", type=finite_number, default=0.01)
    g.add_argument("--warmup_proportion", type=finite_number, default=0.1)
    g.add_argument("--clip_grad_norm", type=finite_number, default=1.0)
    g.add_argument("--gradient_accumulation_steps", type=positive_int, default=1,
                   help="split each batch into N micro-batches with their gradients averaged: the same step "
                        "at a fraction of the memory (a 12-layer teacher on a CPU; docs/runtime.md)")
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
    """Fold the originals' alias flags into the canonical ones, then refuse values that cannot be right."""
    if getattr(args, "dev_every_step_num", None) is not None:
        args.eval_every_step_num = args.dev_every_step_num
    if getattr(args, "dev_batch_size_per_device", None) is not None:
        args.eval_batch_size_per_device = args.dev_batch_size_per_device
    if getattr(args, "gpu_num_per_node", None) and args.gpu_num_per_node > 0 and args.device == "cpu":
        args.device = "cuda"
    check_flags(args)
    return args


# flag -> (lowest accepted value, whether the lowest value itself is refused)
_LOWER_BOUNDS = {
    "max_steps": (0, False), "eval_every_step_num": (0, False), "train_example_num": (0, False),
    "dev_example_num": (0, False), "eval_example_num": (0, False), "weight_decay_rate": (0.0, False),
    "clip_grad_norm": (0.0, False), "kd_alpha": (0.0, False), "kd_beta": (0.0, False),
    "alpha": (0.0, False), "beta": (0.0, False), "temperature": (0.0, True), "domain_loss_weight": (0.0, False),
}


def check_flags(args: argparse.Namespace) -> None:
    """Refuse, before any work, flag values no run can use (each named in one line, exit code 2)."""
    values = vars(args)
    training = bool(values.get("do_train", True))
    if training and values.get("num_epochs") is not None and not values["num_epochs"] > 0:
        fail(f"--num_epochs must be positive, got {values['num_epochs']}")
    if training and values.get("learning_rate") is not None and not values["learning_rate"] > 0:
        fail(f"--learning_rate must be positive, got {values['learning_rate']}")
    micro = values.get("gradient_accumulation_steps") or 1
    if micro > 1 and values.get("batch_size_per_device") and values["batch_size_per_device"] % micro:
        fail(f"--batch_size_per_device {values['batch_size_per_device']} does not split into "
             f"--gradient_accumulation_steps {micro} equal micro-batches")
    for name, (low, strict) in _LOWER_BOUNDS.items():
        value = values.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and (
                value < low or (strict and value == low) or value != value):
            fail(f"--{name} must be {'>' if strict else '>='} {low}, got {value}")
    warmup = values.get("warmup_proportion")
    if warmup is not None and not 0.0 <= warmup <= 1.0:
        fail(f"--warmup_proportion must be in [0, 1], got {warmup}")
    for name in ("model_save_dir", "result_dir", "output_dir"):
        path = values.get(name)
        if isinstance(path, str) and path and os.path.exists(path) and not os.path.isdir(path):
            fail(f"--{name} {path} is an existing file, not a folder")
    if isinstance(values.get("device"), str):
        args.device = check_device(args.device)


def note_ignored(argv: Sequence[str] | None, names: tuple[str, ...], script: str) -> None:
    """Say once which of `names` (flags accepted for the seeds' command lines) were given but have no effect."""
    given = [a.split("=", 1)[0] for a in (sys.argv[1:] if argv is None else argv) if a.startswith("--")]
    ignored = [n for n in names if n in given]
    if ignored:
        print(f"[{script}] {', '.join(ignored)}: accepted for the original command line, no effect here",
              file=sys.stderr)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and OneFlow."""
    import oneflow as flow

    random.seed(seed)
    np.random.seed(seed)
    flow.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))


class UserError(SystemExit):
    """A user mistake: one line on stderr, exit code 2, no traceback (str() is the message)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = 2


def fail(message: str) -> NoReturn:
    """Stop with one clear line (`error: ...`) and exit code 2 instead of a traceback (user mistakes)."""
    line = " ".join(f"error: {message}".split())
    print(line, file=sys.stderr, flush=True)
    raise UserError(line)


def check_device(device: str) -> str:
    """`cpu`, or `cuda`/`gpu` (`cuda:N`) when OneFlow sees a GPU; anything else is refused in one line."""
    name = device.strip().lower()
    if name == "gpu" or name.startswith("gpu:"):
        name = "cuda" + name[3:]
    if name == "cpu":
        return name
    if not (name == "cuda" or name.startswith("cuda:")):
        fail(f"--device {device}: choose cpu or cuda")
    import oneflow as flow

    if not flow.cuda.is_available():
        fail(f"--device {device}: this machine has no usable GPU (OneFlow sees none); use --device cpu")
    return name


F = TypeVar("F", bound=Callable)

# errno values that mean "the disk or the permissions", not a bug: reported in one line
_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}


def user_error_types() -> tuple[type[BaseException], ...]:
    """The typed errors that report a user mistake (each message names the file, flag or model)."""
    from model_compress.data.ofrecord import StaleSplitError
    from model_compress.data.ofrecord_codec import OFRecordError
    from model_compress.data.processors import DataFormatError
    from model_compress.distill.teacher_cache import TeacherFileError
    from model_compress.errors import RecipeError
    from model_compress.finite import NonFiniteError
    from model_compress.modeling.archive import DownloadError
    from model_compress.modeling.checkpoint import CheckpointError
    from model_compress.serving import ServingError
    from model_compress.training.nonfinite import NonFiniteLoss

    return (DataFormatError, OFRecordError, StaleSplitError, TeacherFileError, CheckpointError, ServingError,
            NonFiniteError, NonFiniteLoss, DownloadError, RecipeError)


def user_errors(main: F) -> F:
    """Decorate an entry point: damaged inputs and a full or read-only disk end in one line and exit code 2.

    The library raises typed errors naming the file (and line); this turns them into `fail` lines.
    Anything else is a bug and keeps its traceback.
    """
    @functools.wraps(main)
    def run(*args, **kwargs):
        with failed_rank_exits():
            try:
                return main(*args, **kwargs)
            except user_error_types() as exc:
                fail(str(exc).strip("'\""))
            except OSError as exc:
                if exc.errno not in _DISK_ERRNOS:
                    raise
                fail(f"{exc.filename or 'writing'}: {exc.strerror}" + (
                    " (nothing was left half-written)" if exc.errno == errno.ENOSPC else ""))
    return run  # type: ignore[return-value]


def failed_rank_exits() -> contextlib.AbstractContextManager:
    """Under a multi-process launcher (WORLD_SIZE > 1), a failing rank exits at once instead of hanging
    in OneFlow's shutdown (`training.distributed.failure_ends_process`); otherwise nothing changes."""
    if int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1:
        return contextlib.nullcontext()
    from model_compress.training.distributed import failure_ends_process

    return failure_ends_process()
