"""EasyNLP's command-line flags (the `easynlp` command and the Meta-KD example scripts), exact names only.

User mistakes end the run with one line naming the flag (and file and line where there is one) and exit
code 2: :class:`UsageError`, raised anywhere below the entry points and printed by :func:`guarded`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from model_compress.cli import failed_rank_exits, finite_number, str2bool, user_error_types
from model_compress.finite import NonFiniteError, finite_float

APP_NAMES = ("text_classify", "text_match")
MODES = ("train", "evaluate", "predict")
OUTPUT_COLUMNS = ("predictions", "probabilities", "logits")


class UsageError(Exception):
    """A user mistake: ``flag`` (and ``path``/``line`` when a file row is at fault) plus the reason."""

    def __init__(self, flag: str, reason: str, path: str | None = None, line: int | None = None) -> None:
        self.flag, self.reason, self.path, self.line = flag, reason, path, line
        where = "" if path is None else (f"{path}, line {line}: " if line is not None else f"{path}: ")
        super().__init__(f"{flag}: {where}{reason}")


class OneLineParser(argparse.ArgumentParser):
    """argparse without prefix matching whose errors are one line (``prog: error: ...``) and exit code 2."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def guarded(prog: str, run: Callable[[], object]) -> None:
    """Run ``run``; a :class:`UsageError` or a library's user error becomes one line on stderr and exit 2."""
    with failed_rank_exits():
        try:
            run()
        except (UsageError, *user_error_types()) as exc:
            message = str(exc).strip("'\"")  # a KeyError's str() is quoted
            print(f"{prog}: error: {message}", file=sys.stderr)
            raise SystemExit(2) from None


def build_parser(prog: str, description: str) -> OneLineParser:
    """The EasyNLP flags the seed's command lines use (see docs/easynlp.md for what each maps to)."""
    p = OneLineParser(prog=prog, description=description)
    p.add_argument("--app_name", default="text_classify", help=f"one of {', '.join(APP_NAMES)}")
    p.add_argument("--mode", default="train", help=f"one of {', '.join(MODES)}")
    p.add_argument("--tables", default="", help="train.tsv,dev.tsv (train), dev.tsv (evaluate), input.tsv (predict)")
    p.add_argument("--skip_first_line", type=str2bool, nargs="?", const=True, default=False,
                   help="the tables start with a header line (a first line equal to the schema's names is "
                        "always skipped)")
    p.add_argument("--outputs", default="", help="predict: the output tsv")
    p.add_argument("--input_schema", default="", help="name:type:count,... one entry per tsv column")
    p.add_argument("--output_schema", default="predictions",
                   help=f"predict: comma separated, from {', '.join(OUTPUT_COLUMNS)}")
    p.add_argument("--append_cols", default="", help="predict: input columns copied after the outputs")
    p.add_argument("--first_sequence", default="", help="column of the first text")
    p.add_argument("--second_sequence", default="", help="column of the second text (pair tasks)")
    p.add_argument("--label_name", default="", help="column of the label")
    p.add_argument("--label_enumerate_values", default="", help="the label strings, comma separated, in id order")
    p.add_argument("--checkpoint_dir", default="", help="train: where the best model and results go")
    p.add_argument("--checkpoint_path", default="", help="evaluate / predict: the trained model (a run directory "
                                                         "or a snapshot)")
    p.add_argument("--modelzoo_base_dir", default="", help="accepted; models resolve under models/")
    p.add_argument("--learning_rate", type=finite_number, default=5e-5)
    p.add_argument("--weight_decay", type=finite_number, default=1e-4)
    p.add_argument("--warmup_proportion", type=finite_number, default=0.1)
    p.add_argument("--max_grad_norm", type=finite_number, default=1.0)
    p.add_argument("--epoch_num", type=finite_number, default=3.0)
    p.add_argument("--random_seed", type=int, default=1234)
    p.add_argument("--save_checkpoint_steps", type=int, default=0,
                   help="evaluate on the dev table every N steps (and at each epoch end); the best model is kept")
    p.add_argument("--logging_steps", type=int, default=100, help="accepted; progress shows in the tqdm bar")
    p.add_argument("--sequence_length", type=int, default=128)
    p.add_argument("--micro_batch_size", type=int, default=2, help="examples per process and step")
    p.add_argument("--worker_count", type=int, default=1, help="machines (start each with the launcher)")
    p.add_argument("--worker_gpu", type=int, default=-1,
                   help="GPUs per machine: -1/0 CPU; N > 1 starts N processes under oneflow.distributed.launch")
    p.add_argument("--worker_cpu", type=int, default=-1, help="accepted")
    p.add_argument("--n_cpu", type=int, default=1, help="accepted")
    p.add_argument("--eager", type=str2bool, nargs="?", const=True, default=False, help="run eagerly (debugging)")
    p.add_argument("--user_defined_parameters", default="",
                   help="whitespace separated key=value: pretrain_model_name_or_path, enable_distillation, type, "
                        "logits_name, logits_saved_path, temperature, alpha, ...")
    return p


def parse_user_defined_parameters(text: str, known: Sequence[str]) -> dict[str, str]:
    """``key=value`` entries separated by whitespace/newlines; no ``=``, an unknown key or a repeat is an error."""
    flag = "--user_defined_parameters"
    values: dict[str, str] = {}
    for entry in text.split():
        key, sep, value = entry.partition("=")
        if not sep or not key:
            raise UsageError(flag, f"entry {entry!r} is not key=value")
        if key not in known:
            raise UsageError(flag, f"unknown key {key!r}; known keys: {', '.join(known)}")
        if not value:
            raise UsageError(flag, f"{key}= has no value")
        if key in values:
            raise UsageError(flag, f"{key} is given twice")
        values[key] = value
    return values


def udp_bool(values: dict[str, str], key: str, default: bool) -> bool:
    if key not in values:
        return default
    try:
        return str2bool(values[key])
    except argparse.ArgumentTypeError:
        raise UsageError("--user_defined_parameters", f"{key}={values[key]}: expected True or False") from None


def udp_float(values: dict[str, str], key: str, default: float, low: float | None = None,
              high: float | None = None) -> float:
    if key not in values:
        return default
    try:
        number = finite_float(values[key])
    except ValueError as exc:
        reason = str(exc) if isinstance(exc, NonFiniteError) else "not a number"
        raise UsageError("--user_defined_parameters", f"{key}={values[key]}: {reason}") from None
    if (low is not None and number < low) or (high is not None and number > high):
        bounds = f"[{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        raise UsageError("--user_defined_parameters", f"{key}={values[key]}: must be in {bounds}")
    return number


def check_choice(flag: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise UsageError(flag, f"{value!r} is not supported here; choose one of {', '.join(choices)}")
    return value


def split_list(flag: str, text: str) -> list[str]:
    """A comma separated flag value as a list; empty items are an error."""
    items = [item.strip() for item in text.split(",")] if text.strip() else []
    if any(not item for item in items):
        raise UsageError(flag, f"{text!r} has an empty item")
    return items
