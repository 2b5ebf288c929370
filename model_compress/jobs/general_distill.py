"""PP-MiniLM task-agnostic distillation (entry: model_compress/minilm/general_distill.py): its flags and
`make_corpus`; the run is ``jobs/pipelines/general_distill.py``.

A randomly initialised BERT student learns the self-attention relations (Q-Q, K-K, V-V; token,
head and sample relations, see ``model_compress.distill.relations``) of one teacher layer from a
plain-text corpus, with no labels. The result is a general-purpose student snapshot
(``output_dir/model_<step>``) to fine-tune on any task::

    python -m model_compress.jobs.general_distill make_corpus --out data/corpus \
        senti:data/SENTI sst-2:data/glue_data/SST-2
    python model_compress/minilm/general_distill.py --input_dir data/corpus \
        --output_dir output/minilm --num_layers 4 --max_steps 300 --batch_size 32 --max_seq_length 64
    python model_compress/distil/task_teacher.py --task_name senti --data_dir data/SENTI \
        --model_load_dir output/minilm/model_300 --do_train --do_eval

The corpus is a directory of text files, one sentence per line. It is streamed: files are read line
by line, sentences are tokenised and packed into sequences of at most ``--max_seq_length`` tokens,
and only a bounded shuffle buffer of sequences is held in memory. Files are sharded across ranks.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from model_compress.cli import add_bool, finite_number, positive_int, user_errors
from model_compress.data.corpus import make_corpus
from model_compress.errors import RecipeError
from model_compress.jobs.pipelines.general_distill import distill_general
from model_compress.jobs.settings import GeneralDistillSettings, from_flags

STUDENT_TYPES = ("ppminilm", "bert", "ernie", "roberta")  # all mean: a BERT-architecture student here
TEACHER_TYPES = ("bert", "roberta", "ernie", "ppminilm")  # the teacher is whatever checkpoint is given


@user_errors
def corpus_main(argv: Sequence[str] | None = None) -> None:
    """``python -m model_compress.jobs.general_distill make_corpus --out DIR task:data_dir ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m model_compress.jobs.general_distill make_corpus",
        description="Write a distillation corpus (one sentence per line, several files) from task training sets.",
        allow_abbrev=False,
    )
    parser.add_argument("sources", nargs="+", help="task_name:data_dir pairs, e.g. senti:data/SENTI")
    parser.add_argument("--out", required=True, help="corpus directory to write")
    parser.add_argument("--num_files", type=positive_int, default=8, help="number of corpus files")
    parser.add_argument("--force", action="store_true", help="rewrite an existing corpus")
    args = parser.parse_args(argv)
    pairs = []
    for source in args.sources:
        task, sep, data_dir = source.partition(":")
        if not sep or not task or not data_dir:
            raise RecipeError(f"source {source!r} is not task_name:data_dir")
        pairs.append((task, data_dir))
    try:
        count = make_corpus(pairs, args.out, args.num_files, args.force)
    except (KeyError, ValueError, FileNotFoundError) as exc:
        raise RecipeError(str(exc).strip("'\"")) from None
    if count:
        print(f"[corpus] wrote {count} sentences to {args.out} ({args.num_files} files)")
    else:
        print(f"[corpus] {args.out} already holds a corpus (pass --force to rewrite it)")


# ----------------------------------------------------------------------------------------------------
# Command line and the training run
# ----------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="PP-MiniLM task-agnostic distillation of a BERT student.",
                                allow_abbrev=False)
    p.add_argument("--model_type", default="ppminilm", help=f"student type {STUDENT_TYPES}: a BERT student here")
    p.add_argument("--teacher_model_type", default="bert", help=f"teacher type {TEACHER_TYPES}: any BERT checkpoint")
    p.add_argument("--teacher_model_name_or_path", default="default",
                   help="teacher checkpoint (project, legacy OneFlow or HF dir; default: all-MiniLM-L6-v2)")
    p.add_argument("--input_dir", required=True, help="corpus directory: text files, one sentence per line")
    p.add_argument("--output_dir", required=True, help="where model_<step> snapshots go")
    p.add_argument("--vocab_file", default=None, help="vocab.txt (default: the teacher's)")
    add_bool(p, "--do_lower_case", True, "lower-case and strip accents (uncased vocab)")
    g = p.add_argument_group("relations")
    g.add_argument("--num_relation_heads", type=positive_int, default=48,
                   help="relation heads A (must divide teacher and student widths; 48 base, 64 large teachers)")
    g.add_argument("--teacher_layer_index", type=int, default=-1, help="teacher layer distilled (0-based; -1 = last)")
    g.add_argument("--student_layer_index", type=int, default=-1, help="student layer trained (0-based; -1 = last)")
    g.add_argument("--alpha", type=finite_number, default=0.0, help="weight of head-head relations")
    g.add_argument("--beta", type=finite_number, default=0.0, help="weight of sample-sample relations")
    g = p.add_argument_group("student")
    g.add_argument("--num_layers", type=int, choices=(2, 4, 6), default=6, help="student depth")
    g.add_argument("--hidden_size", type=int, default=0, help="student width (0: the teacher's)")
    g.add_argument("--num_attention_heads", type=int, default=0, help="student heads (0: the teacher's)")
    g.add_argument("--intermediate_size", type=int, default=0, help="student FFN size (0: 4 x hidden)")
    g = p.add_argument_group("training")
    g.add_argument("--max_seq_length", type=positive_int, default=128, help="tokens per packed sequence")
    add_bool(g, "--pack", True, "pack consecutive sentences into each sequence (False: one sentence each)")
    g.add_argument("--shuffle_buffer", type=positive_int, default=2048, help="sequences in the shuffle buffer")
    g.add_argument("--batch_size", type=positive_int, default=128, help="sequences per step and device")
    g.add_argument("--learning_rate", type=finite_number, default=6e-4)
    g.add_argument("--weight_decay", type=finite_number, default=0.01)
    g.add_argument("--max_grad_norm", type=finite_number, default=1.0)
    g.add_argument("--max_steps", type=int, default=400000, help="total steps (0: only write the initial student)")
    g.add_argument("--warmup_steps", type=int, default=-1, help="warm-up steps (-1: --warmup_proportion)")
    g.add_argument("--warmup_proportion", type=finite_number, default=0.01)
    g.add_argument("--logging_steps", type=positive_int, default=100)
    g.add_argument("--save_steps", type=positive_int, default=100)
    g.add_argument("--keep_last", type=int, default=0, help="keep only the newest N snapshots (0: all)")
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--device", default="cpu", help="cpu, cuda or gpu (= cuda)")
    add_bool(g, "--use_amp", False, "mixed precision (CUDA + nn.Graph only; ignored on CPU)")
    add_bool(g, "--resume", True, "continue from the newest model_<step> in --output_dir, if any")
    add_bool(g, "--eager", False, "run eagerly instead of nn.Graph (debugging)")
    return p


def check_args(args: argparse.Namespace) -> None:
    if args.model_type.lower() not in STUDENT_TYPES:
        raise RecipeError(f"--model_type {args.model_type!r}: choose one of {STUDENT_TYPES}")
    if args.teacher_model_type.lower() not in TEACHER_TYPES:
        raise RecipeError(f"--teacher_model_type {args.teacher_model_type!r}: choose one of {TEACHER_TYPES}")
    if args.alpha < 0 or args.beta < 0 or args.alpha + args.beta > 1:
        raise RecipeError(f"--alpha {args.alpha} and --beta {args.beta} must be >= 0 with alpha + beta <= 1")
    if args.max_steps < 0:
        raise RecipeError("--max_steps must be >= 0")
    if args.device == "gpu":
        args.device = "cuda"


def distill_settings(args: argparse.Namespace) -> GeneralDistillSettings:
    """The checked flags as typed settings."""
    check_args(args)
    return from_flags(GeneralDistillSettings, args)


def run(args: argparse.Namespace) -> dict:
    """Distil a student; returns ``{"step", "snapshot", "losses" [(step, loss)], "seconds"}``."""
    return distill_general(distill_settings(args))


@user_errors
def main(argv: Sequence[str] | None = None) -> None:
    run(build_parser().parse_args(argv))


if __name__ == "__main__":
    raw = sys.argv[1:]
    if raw and raw[0] == "make_corpus":
        corpus_main(raw[1:])
    else:
        sys.exit("usage: python -m model_compress.jobs.general_distill make_corpus --out DIR task:data_dir ...\n"
                 "(distillation itself: python model_compress/minilm/general_distill.py --help)")
