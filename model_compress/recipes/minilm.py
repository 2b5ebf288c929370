"""PP-MiniLM general distillation over typed settings: the teacher cut after its distilled layer, the student
shape, resuming from the newest step snapshot, the relation objective and the corpus stream, then the step
run. The entry model_compress/minilm/general_distill.py parses the flags below; see docs/minilm.md.
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

from model_compress.cli import add_bool, finite_number, positive_int, seed_everything, user_errors
from model_compress.data.corpus import CorpusStream, list_corpus_files, make_corpus
from model_compress.data.tokenization import FullTokenizer
from model_compress.distill.minilm import RelationDistillation, encoder_layer_of
from model_compress.errors import RecipeError
from model_compress.log import logger
from model_compress.modeling.bert import BertForSequenceClassification, BertModel
from model_compress.modeling.checkpoint import load_state_into, module_state_numpy, select_prefix
from model_compress.modeling.config import BertConfig
from model_compress.modeling.resolve import resolve_model
from model_compress.recipes.common import classifier_state, find_vocab, load_model_snapshot
from model_compress.recipes.settings import GeneralDistillSettings, from_flags
from model_compress.training import distributed
from model_compress.training.nonfinite import NonFiniteLoss
from model_compress.training.resume import (
    SnapshotShapeMismatch,
    list_snapshots,
    load_newest_snapshot,
    save_step_snapshot,
)
from model_compress.training.steps import StepConfig, amp_active, build_step, run_steps

log = logger("general_distill")

ROLE = "general_distill_student"


def resolve_layer(index: int, num_layers: int, what: str) -> int:
    """A python-style (negative counts from the end) layer index, checked against ``num_layers``."""
    resolved = index + num_layers if index < 0 else index
    if not 0 <= resolved < num_layers:
        raise RecipeError(f"--{what}_layer_index {index} is outside the {what}'s {num_layers} layers")
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
        raise RecipeError(f"teacher {model_dir} lacks {len(report.missing)} tensors, e.g. "
                          f"{', '.join(report.missing[:3])}")
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
        raise RecipeError(str(exc)) from None


def check_relation_heads(num_relation_heads: int, widths: Sequence[int]) -> None:
    """Fail with the valid choices when ``num_relation_heads`` does not divide every width."""
    if num_relation_heads > 0 and all(w % num_relation_heads == 0 for w in widths):
        return
    common = int(np.gcd.reduce(np.asarray(widths)))
    choices = [d for d in range(1, common + 1) if common % d == 0]
    raise RecipeError(f"--num_relation_heads {num_relation_heads} must divide the teacher and student widths "
                      f"{list(widths)}; "
                      f"valid: {choices}")


def step_config(settings: GeneralDistillSettings, warmup_steps: int | None = None) -> StepConfig:
    """The step run the settings ask for (``warmup_steps`` default: --warmup_steps, or --warmup_proportion)."""
    if warmup_steps is None:
        warmup_steps = (settings.warmup_steps if settings.warmup_steps >= 0
                        else int(round(settings.warmup_proportion * settings.max_steps)))
    return StepConfig(
        max_steps=settings.max_steps, learning_rate=settings.learning_rate, weight_decay=settings.weight_decay,
        max_grad_norm=settings.max_grad_norm, warmup_steps=warmup_steps, logging_steps=settings.logging_steps,
        save_steps=settings.save_steps, device=settings.device, eager=settings.eager, use_amp=settings.use_amp,
        sequences_per_step=settings.batch_size * distributed.world_size(), desc="general_distill",
    )


def student_state(student: nn.Module) -> dict[str, np.ndarray]:
    """What a general student snapshot holds: the encoder and pooler, no task head (gathered on every rank)."""
    return {k: v for k, v in module_state_numpy(student).items() if not k.startswith("classifier.")}


def resume_student(settings: GeneralDistillSettings, student: nn.Module, config: BertConfig
                   ) -> tuple[int, str | None]:
    """(start step, snapshot) of the newest model_<step> in the output folder under --resume, else (0, None)."""
    try:
        start_step, path = (load_newest_snapshot(settings.output_dir, student, config) if settings.resume
                            else (0, None))
    except SnapshotShapeMismatch as exc:
        raise RecipeError(f"{exc.path} holds a student of another shape than the flags ask for; use another "
                          "--output_dir or --resume False") from None
    if path:
        log.info(f"resuming from {path} (step {start_step}); Adam moments restart")
    elif not settings.resume and list_snapshots(settings.output_dir):
        log.info(f"--resume False: starting over; snapshots in {settings.output_dir} will be replaced")
    return start_step, path


def distill_general(settings: GeneralDistillSettings) -> dict:
    """Distil a student; returns ``{"step", "snapshot", "losses" [(step, loss)], "seconds"}``."""
    rank, world = distributed.rank(), distributed.world_size()
    is_main = rank == 0
    seed_everything(settings.seed)  # same on every rank: identical student initialisation

    teacher_dir = resolve_model(settings.teacher_model_name_or_path)
    vocab = find_vocab(teacher_dir, settings.vocab_file)
    teacher, teacher_cfg, t_layer = load_teacher(teacher_dir, settings.teacher_layer_index)
    if settings.max_seq_length > teacher_cfg.max_position_embeddings:
        raise RecipeError(f"--max_seq_length {settings.max_seq_length} exceeds the teacher's "
                          f"{teacher_cfg.max_position_embeddings} positions")
    config = student_config(teacher_cfg, settings.num_layers, settings.hidden_size, settings.num_attention_heads,
                            settings.intermediate_size)
    s_layer = resolve_layer(settings.student_layer_index, config.num_hidden_layers, "student")
    check_relation_heads(settings.num_relation_heads, [teacher_cfg.hidden_size, config.hidden_size])
    if s_layer != config.num_hidden_layers - 1:
        log.info(f"student layers above {s_layer} get no signal and stay at their initialisation")

    student = BertForSequenceClassification(config)
    start_step, path = resume_student(settings, student, config)
    config_run = step_config(settings)
    if settings.use_amp and not amp_active(config_run):
        log.info("--use_amp is ignored on CPU and in eager mode")

    objective = RelationDistillation(student, teacher, s_layer, t_layer, settings.num_relation_heads,
                                     settings.alpha, settings.beta)
    objective = distributed.setup_model(objective, settings.device)
    meta = {
        "role": ROLE, "teacher": os.path.abspath(teacher_dir), "teacher_layer_index": t_layer,
        "student_layer_index": s_layer, "num_relation_heads": settings.num_relation_heads, "alpha": settings.alpha,
        "beta": settings.beta, "max_seq_length": settings.max_seq_length, "batch_size": settings.batch_size * world,
        "learning_rate": settings.learning_rate, "max_steps": settings.max_steps, "seed": settings.seed,
    }

    def save(step: int, loss: float | None) -> str:
        return save_step_snapshot(student_state(student), settings.output_dir, step, config,
                                  {**meta, "step": step, "loss": loss}, {"vocab.txt": vocab}, settings.keep_last)

    if start_step >= settings.max_steps:
        snapshot = path or save(start_step, None)
        if is_main:
            print(f"[general_distill] nothing to train: step {start_step} >= --max_steps {settings.max_steps}; "
                  f"student at {snapshot}")
        return {"step": start_step, "snapshot": snapshot, "losses": [], "seconds": 0.0}

    step_fn = build_step(objective, config_run, start_step)
    teacher.eval()  # build_step put the whole objective in training mode
    try:
        files = list_corpus_files(settings.input_dir)
    except FileNotFoundError as exc:
        raise RecipeError(str(exc)) from None
    stream = CorpusStream(files, FullTokenizer(vocab, do_lower_case=settings.do_lower_case), settings.max_seq_length,
                          settings.seed, rank, world, settings.pack, settings.shuffle_buffer)
    log.info(f"teacher {teacher_dir} layer {t_layer} -> student {config.num_hidden_layers}x{config.hidden_size} "
         f"({config.num_attention_heads} heads) layer {s_layer}; {len(files)} corpus files; "
         f"relation heads {settings.num_relation_heads}, alpha {settings.alpha}, beta {settings.beta}")
    try:
        done = run_steps(step_fn, list(objective.input_names), stream.batches(settings.batch_size, skip=start_step),
                         start_step, save, config_run)
    except NonFiniteLoss as exc:
        raise RecipeError(f"{exc}: lower --learning_rate") from None
    result = dataclasses.asdict(done)
    if is_main:
        with open(os.path.join(settings.output_dir, "general_distill_log.json"), "a", encoding="utf-8") as f:
            f.write(json.dumps({"start_step": start_step, "step": done.step, "seconds": round(done.seconds, 1),
                                "losses": done.losses, "snapshot": done.snapshot}) + "\n")
        print(f"[general_distill] step {done.step}: student snapshot {done.snapshot}")
    return result


STUDENT_TYPES = ("ppminilm", "bert", "ernie", "roberta")  # all mean: a BERT-architecture student here
TEACHER_TYPES = ("bert", "roberta", "ernie", "ppminilm")  # the teacher is whatever checkpoint is given


@user_errors
def corpus_main(argv: Sequence[str] | None = None) -> None:
    """``python -m model_compress.recipes.minilm make_corpus --out DIR task:data_dir ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m model_compress.recipes.minilm make_corpus",
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
        sys.exit("usage: python -m model_compress.recipes.minilm make_corpus --out DIR task:data_dir ...\n"
                 "(distillation itself: python model_compress/minilm/general_distill.py --help)")
