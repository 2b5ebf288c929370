"""PP-MiniLM task-agnostic distillation (entry: model_compress/minilm/general_distill.py).

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
import dataclasses
import json
import os
import sys
from collections.abc import Sequence

import numpy as np
from oneflow import nn

from model_compress.cli import add_bool, fail, positive_int, seed_everything, user_errors
from model_compress.data.corpus import CorpusStream, list_corpus_files, make_corpus
from model_compress.data.tokenization import FullTokenizer
from model_compress.distill.minilm import RelationDistillation, encoder_layer_of
from model_compress.jobs.common import classifier_state, find_vocab, load_model_snapshot, resolve_model_dir
from model_compress.modeling.bert import BertForSequenceClassification, BertModel
from model_compress.modeling.checkpoint import load_state_into, module_state_numpy, select_prefix
from model_compress.modeling.config import BertConfig
from model_compress.training import distributed
from model_compress.training.resume import (
    SnapshotShapeMismatch,
    list_snapshots,
    load_newest_snapshot,
    save_step_snapshot,
)
from model_compress.training.steps import NonFiniteLoss, StepConfig, amp_active, build_step, run_steps

ROLE = "general_distill_student"
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
            fail(f"source {source!r} is not task_name:data_dir")
        pairs.append((task, data_dir))
    try:
        count = make_corpus(pairs, args.out, args.num_files, args.force)
    except (KeyError, ValueError, FileNotFoundError) as exc:
        fail(str(exc).strip("'\""))
    if count:
        print(f"[corpus] wrote {count} sentences to {args.out} ({args.num_files} files)")
    else:
        print(f"[corpus] {args.out} already holds a corpus (pass --force to rewrite it)")


# ----------------------------------------------------------------------------------------------------
# Models and the objective
# ----------------------------------------------------------------------------------------------------
def resolve_layer(index: int, num_layers: int, what: str) -> int:
    """A python-style (negative counts from the end) layer index, checked against ``num_layers``."""
    resolved = index + num_layers if index < 0 else index
    if not 0 <= resolved < num_layers:
        fail(f"--{what}_layer_index {index} is outside the {what}'s {num_layers} layers")
    return resolved


def load_teacher(model_dir: str, layer_index: int) -> tuple[BertModel, BertConfig, int]:
    """The teacher encoder cut after the distilled layer (later layers are never needed), frozen, no dropout."""
    state, config, _ = load_model_snapshot(model_dir, "build the teacher")
    layer = resolve_layer(layer_index, config.num_hidden_layers, "teacher")
    config = config.replace(num_hidden_layers=layer + 1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    teacher = BertModel(config, add_pooler=False)
    encoder_state = select_prefix(classifier_state(state), "bert.")
    needed = {}
    for key, value in encoder_state.items():
        key_layer = encoder_layer_of(key)
        if not key.startswith("pooler.") and (key_layer is None or key_layer <= layer):
            needed[key] = value
    report = load_state_into(teacher, needed, verbose=False)
    if report.missing:
        fail(f"teacher {model_dir} lacks {len(report.missing)} tensors, e.g. {', '.join(report.missing[:3])}")
    for p in teacher.parameters():
        p.requires_grad = False
    teacher.eval()
    return teacher, config, layer


def student_config(
    teacher_config: BertConfig, num_layers: int, hidden_size: int = 0, num_attention_heads: int = 0,
    intermediate_size: int = 0,
) -> BertConfig:
    """The student's shape: ``num_layers`` deep; width/heads default (0) to the teacher's, FFN to 4 x width,
    vocab and positions the teacher's."""
    hidden = hidden_size or teacher_config.hidden_size
    heads = num_attention_heads or teacher_config.num_attention_heads
    try:
        return BertConfig(
            vocab_size=teacher_config.vocab_size,
            hidden_size=hidden,
            num_hidden_layers=num_layers,
            num_attention_heads=heads,
            intermediate_size=intermediate_size or 4 * hidden,
            max_position_embeddings=teacher_config.max_position_embeddings,
            type_vocab_size=teacher_config.type_vocab_size,
            initializer_range=teacher_config.initializer_range,
            layer_norm_eps=teacher_config.layer_norm_eps,
        )
    except ValueError as exc:
        fail(str(exc))
        raise AssertionError from None


def check_relation_heads(num_relation_heads: int, widths: Sequence[int]) -> None:
    """Fail with the valid choices when ``num_relation_heads`` does not divide every width."""
    if num_relation_heads > 0 and all(w % num_relation_heads == 0 for w in widths):
        return
    common = int(np.gcd.reduce(np.asarray(widths)))
    choices = [d for d in range(1, common + 1) if common % d == 0]
    fail(f"--num_relation_heads {num_relation_heads} must divide the teacher and student widths {list(widths)}; "
         f"valid: {choices}")


def step_config(args: argparse.Namespace, warmup_steps: int | None = None) -> StepConfig:
    """The step run the flags ask for (``warmup_steps`` default: --warmup_steps, or --warmup_proportion)."""
    if warmup_steps is None:
        warmup_steps = (args.warmup_steps if args.warmup_steps >= 0
                        else int(round(args.warmup_proportion * args.max_steps)))
    return StepConfig(
        max_steps=args.max_steps, learning_rate=args.learning_rate, weight_decay=args.weight_decay,
        max_grad_norm=args.max_grad_norm, warmup_steps=warmup_steps, logging_steps=args.logging_steps,
        save_steps=args.save_steps, device=args.device, eager=args.eager, use_amp=args.use_amp,
        sequences_per_step=args.batch_size * distributed.world_size(), desc="general_distill",
    )


def student_state(student: nn.Module) -> dict[str, np.ndarray]:
    """What a general student snapshot holds: the encoder and pooler, no task head (gathered on every rank)."""
    return {k: v for k, v in module_state_numpy(student).items() if not k.startswith("classifier.")}


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
    g.add_argument("--alpha", type=float, default=0.0, help="weight of head-head relations")
    g.add_argument("--beta", type=float, default=0.0, help="weight of sample-sample relations")
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
    g.add_argument("--learning_rate", type=float, default=6e-4)
    g.add_argument("--weight_decay", type=float, default=0.01)
    g.add_argument("--max_grad_norm", type=float, default=1.0)
    g.add_argument("--max_steps", type=int, default=400000, help="total steps (0: only write the initial student)")
    g.add_argument("--warmup_steps", type=int, default=-1, help="warm-up steps (-1: --warmup_proportion)")
    g.add_argument("--warmup_proportion", type=float, default=0.01)
    g.add_argument("--logging_steps", type=positive_int, default=100)
    g.add_argument("--save_steps", type=positive_int, default=100)
    g.add_argument("--keep_last", type=int, default=0, help="keep only the newest N snapshots (0: all)")
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--device", default="cpu", help="cpu, cuda or gpu (= cuda)")
    add_bool(g, "--use_amp", False, "mixed precision (CUDA + nn.Graph only; ignored on CPU)")
    add_bool(g, "--resume", True, "continue from the newest model_<step> in --output_dir, if any")
    add_bool(g, "--eager", False, "run eagerly instead of nn.Graph (debugging)")
    return p


def check_args(args) -> None:
    if args.model_type.lower() not in STUDENT_TYPES:
        fail(f"--model_type {args.model_type!r}: choose one of {STUDENT_TYPES}")
    if args.teacher_model_type.lower() not in TEACHER_TYPES:
        fail(f"--teacher_model_type {args.teacher_model_type!r}: choose one of {TEACHER_TYPES}")
    if args.alpha < 0 or args.beta < 0 or args.alpha + args.beta > 1:
        fail(f"--alpha {args.alpha} and --beta {args.beta} must be >= 0 with alpha + beta <= 1")
    if args.max_steps < 0:
        fail("--max_steps must be >= 0")
    if args.device == "gpu":
        args.device = "cuda"


def run(args) -> dict:
    """Distil a student; returns ``{"step", "snapshot", "losses" [(step, loss)], "seconds"}``."""
    check_args(args)
    rank, world = distributed.rank(), distributed.world_size()
    is_main = rank == 0
    seed_everything(args.seed)  # same on every rank: identical student initialisation

    teacher_dir = resolve_model_dir(args.teacher_model_name_or_path)
    vocab = find_vocab(teacher_dir, args.vocab_file)
    teacher, teacher_cfg, t_layer = load_teacher(teacher_dir, args.teacher_layer_index)
    if args.max_seq_length > teacher_cfg.max_position_embeddings:
        fail(f"--max_seq_length {args.max_seq_length} exceeds the teacher's {teacher_cfg.max_position_embeddings} "
             "positions")
    config = student_config(teacher_cfg, args.num_layers, args.hidden_size, args.num_attention_heads,
                            args.intermediate_size)
    s_layer = resolve_layer(args.student_layer_index, config.num_hidden_layers, "student")
    check_relation_heads(args.num_relation_heads, [teacher_cfg.hidden_size, config.hidden_size])
    if s_layer != config.num_hidden_layers - 1 and is_main:
        print(f"[general_distill] student layers above {s_layer} get no signal and stay at their initialisation",
              file=sys.stderr)

    student = BertForSequenceClassification(config)
    try:
        start_step, path = load_newest_snapshot(args.output_dir, student, config) if args.resume else (0, None)
    except SnapshotShapeMismatch as exc:
        fail(f"{exc.path} holds a student of another shape than the flags ask for; use another --output_dir "
             "or --resume False")
    if path and is_main:
        print(f"[general_distill] resuming from {path} (step {start_step}); Adam moments restart", file=sys.stderr)
    elif not args.resume and list_snapshots(args.output_dir) and is_main:
        print(f"[general_distill] --resume False: starting over; snapshots in {args.output_dir} will be replaced",
              file=sys.stderr)
    config_run = step_config(args)
    if args.use_amp and not amp_active(config_run) and is_main:
        print("[general_distill] --use_amp is ignored on CPU and in eager mode", file=sys.stderr)

    objective = RelationDistillation(student, teacher, s_layer, t_layer, args.num_relation_heads,
                                     args.alpha, args.beta)
    objective = distributed.setup_model(objective, args.device)
    meta = {
        "role": ROLE, "teacher": os.path.abspath(teacher_dir), "teacher_layer_index": t_layer,
        "student_layer_index": s_layer, "num_relation_heads": args.num_relation_heads, "alpha": args.alpha,
        "beta": args.beta, "max_seq_length": args.max_seq_length, "batch_size": args.batch_size * world,
        "learning_rate": args.learning_rate, "max_steps": args.max_steps, "seed": args.seed,
    }

    def save(step: int, loss: float | None) -> str:
        return save_step_snapshot(student_state(student), args.output_dir, step, config,
                                  {**meta, "step": step, "loss": loss}, {"vocab.txt": vocab}, args.keep_last)

    if start_step >= args.max_steps:
        snapshot = path or save(start_step, None)
        if is_main:
            print(f"[general_distill] nothing to train: step {start_step} >= --max_steps {args.max_steps}; "
                  f"student at {snapshot}")
        return {"step": start_step, "snapshot": snapshot, "losses": [], "seconds": 0.0}

    step_fn = build_step(objective, config_run, start_step)
    teacher.eval()  # build_step put the whole objective in training mode
    try:
        files = list_corpus_files(args.input_dir)
    except FileNotFoundError as exc:
        fail(str(exc))
    stream = CorpusStream(files, FullTokenizer(vocab, do_lower_case=args.do_lower_case), args.max_seq_length,
                          args.seed, rank, world, args.pack, args.shuffle_buffer)
    if is_main:
        print(f"[general_distill] teacher {teacher_dir} layer {t_layer} -> student {config.num_hidden_layers}x"
              f"{config.hidden_size} ({config.num_attention_heads} heads) layer {s_layer}; {len(files)} corpus files; "
              f"relation heads {args.num_relation_heads}, alpha {args.alpha}, beta {args.beta}", file=sys.stderr)
    try:
        done = run_steps(step_fn, list(objective.input_names), stream.batches(args.batch_size, skip=start_step),
                         start_step, save, config_run)
    except NonFiniteLoss as exc:
        fail(f"{exc}: lower --learning_rate")
    result = dataclasses.asdict(done)
    if is_main:
        with open(os.path.join(args.output_dir, "general_distill_log.json"), "a", encoding="utf-8") as f:
            f.write(json.dumps({"start_step": start_step, "step": done.step, "seconds": round(done.seconds, 1),
                                "losses": done.losses, "snapshot": done.snapshot}) + "\n")
        print(f"[general_distill] step {done.step}: student snapshot {done.snapshot}")
    return result


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
