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
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator, Sequence

import numpy as np
import oneflow as flow
from oneflow import nn
from tqdm import tqdm

from model_compress.cli import add_bool, fail, positive_int, seed_everything
from model_compress.data.tokenization import FullTokenizer
from model_compress.distill.relations import qkv_relation_loss
from model_compress.jobs.common import classifier_state, find_vocab, load_model_snapshot, resolve_model_dir
from model_compress.modeling.bert import BertForSequenceClassification, BertModel
from model_compress.modeling.checkpoint import (
    SNAPSHOT_JSON,
    load_snapshot,
    load_state_into,
    module_state_numpy,
    save_snapshot,
    select_prefix,
)
from model_compress.modeling.config import BertConfig
from model_compress.training import distributed
from model_compress.training.graph import make_train_step
from model_compress.training.objectives import ENCODER_INPUTS
from model_compress.training.optim import build_optimizer, build_scheduler

SNAPSHOT_PREFIX = "model_"
ROLE = "general_distill_student"
STUDENT_TYPES = ("ppminilm", "bert", "ernie", "roberta")  # all mean: a BERT-architecture student here
TEACHER_TYPES = ("bert", "roberta", "ernie", "ppminilm")  # the teacher is whatever checkpoint is given


# ----------------------------------------------------------------------------------------------------
# Corpus: a directory of text files, one sentence per line, streamed into packed token sequences
# ----------------------------------------------------------------------------------------------------
def list_corpus_files(input_dir: str) -> list[str]:
    """Regular, non-hidden files directly in ``input_dir``, sorted by name."""
    if not os.path.isdir(input_dir):
        raise FileNotFoundError(f"--input_dir {input_dir} is not a directory")
    files = sorted(
        os.path.join(input_dir, name)
        for name in os.listdir(input_dir)
        if not name.startswith(".") and os.path.isfile(os.path.join(input_dir, name))
    )
    if not files:
        raise FileNotFoundError(f"--input_dir {input_dir} holds no corpus files (one sentence per line)")
    return files


def shard_files(files: Sequence[str], rank: int, world_size: int) -> list[str]:
    """The files one rank reads: every ``world_size``-th, or one (shared) file when ranks outnumber files."""
    if world_size <= len(files):
        return list(files[rank::world_size])
    return [files[rank % len(files)]]


class CorpusStream:
    """Endless batches of packed token sequences from text files, one pass after another.

    Each pass shuffles the file order with ``seed + pass`` (the same on every rank), takes this
    rank's share of the files, and reads them line by line. Non-empty lines are tokenised; with
    ``pack`` consecutive sentences of one file are joined into ``[CLS] s1 s2 ... [SEP]`` while they
    fit in ``max_seq_length`` (a longer sentence is cut into several sequences), without ``pack``
    each sentence is one sequence, truncated. Sequences pass through a shuffle buffer of
    ``shuffle_buffer`` entries; nothing else is kept in memory.

    Batches are dicts of int32 numpy arrays ``input_ids``, ``input_mask``, ``segment_ids`` of shape
    ``[batch_size, max_seq_length]`` (padding id 0 of ``[PAD]``).
    """

    def __init__(
        self,
        files: Sequence[str],
        tokenizer: FullTokenizer,
        max_seq_length: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pack: bool = True,
        shuffle_buffer: int = 2048,
    ) -> None:
        if max_seq_length < 3:
            raise ValueError(f"max_seq_length {max_seq_length} leaves no room for a token between [CLS] and [SEP]")
        self.files = list(files)
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.pack = pack
        self.shuffle_buffer = max(1, shuffle_buffer)
        special = tokenizer.special_ids()
        self.cls_id, self.sep_id, self.pad_id = special["[CLS]"], special["[SEP]"], special["[PAD]"]

    def files_of_pass(self, pass_index: int) -> list[str]:
        order = list(self.files)
        np.random.RandomState(self.seed + pass_index).shuffle(order)
        return shard_files(order, self.rank, self.world_size)

    def _file_sequences(self, path: str) -> Iterator[list[int]]:
        """Token-id bodies (without [CLS]/[SEP]) of one file, packed or one per sentence."""
        budget = self.max_seq_length - 2
        current: list[int] = []
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                text = line.strip()
                if not text:
                    continue
                ids = self.tokenizer.encode(text)
                if not ids:
                    continue
                if not self.pack:
                    yield ids[:budget]
                    continue
                if current and len(current) + len(ids) > budget:
                    yield current
                    current = []
                while len(ids) > budget:  # a sentence longer than one sequence: cut it
                    yield ids[:budget]
                    ids = ids[budget:]
                current.extend(ids)
        if current:
            yield current

    def sequences(self, pass_index: int) -> Iterator[list[int]]:
        """One pass: shuffled ``[CLS] ... [SEP]`` id lists of this rank's files."""
        rng = np.random.RandomState(self.seed + 7919 * (pass_index + 1) + self.rank)
        buffer: list[list[int]] = []
        for path in self.files_of_pass(pass_index):
            for body in self._file_sequences(path):
                buffer.append([self.cls_id, *body, self.sep_id])
                if len(buffer) >= self.shuffle_buffer:
                    index = rng.randint(len(buffer))
                    buffer[index], buffer[-1] = buffer[-1], buffer[index]
                    yield buffer.pop()
        rng.shuffle(buffer)
        yield from buffer

    def _endless(self) -> Iterator[list[int]]:
        pass_index = 0
        while True:
            produced = 0
            for seq in self.sequences(pass_index):
                produced += 1
                yield seq
            if not produced:
                raise ValueError(f"the corpus files {self.files_of_pass(pass_index)} hold no text")
            pass_index += 1

    def batches(self, batch_size: int, skip: int = 0) -> Iterator[dict[str, np.ndarray]]:
        """Endless batches; the first ``skip`` batches are consumed without being built (resume)."""
        stream = self._endless()
        for _ in range(skip * batch_size):
            next(stream)
        while True:
            rows = [next(stream) for _ in range(batch_size)]
            ids = np.full((batch_size, self.max_seq_length), self.pad_id, dtype=np.int32)
            mask = np.zeros((batch_size, self.max_seq_length), dtype=np.int32)
            for i, row in enumerate(rows):
                ids[i, : len(row)] = row
                mask[i, : len(row)] = 1
            yield {"input_ids": ids, "input_mask": mask, "segment_ids": np.zeros_like(ids)}


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def split_sentences(text: str) -> list[str]:
    """Sentences of a text: split after ``.``, ``!`` or ``?`` followed by white space."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def make_corpus(sources: Sequence[tuple[str, str]], out_dir: str, num_files: int = 8, force: bool = False) -> int:
    """Write the texts of task training sets as a corpus: one sentence per line, over ``num_files`` files.

    ``sources`` are ``(task_name, data_dir)`` pairs read with the project's task processors (training
    split only, so dev text never leaks into distillation). Sentences are deduplicated and dealt
    round-robin into ``part-00000.txt`` ...; the directory is written under a temporary name and
    renamed. An existing non-empty ``out_dir`` is kept unless ``force``. Returns the sentence count
    (0 when the existing corpus was kept).
    """
    from model_compress.data.processors import get_processor

    if os.path.isdir(out_dir) and os.listdir(out_dir) and not force:
        return 0
    seen: set[str] = set()
    sentences: list[str] = []
    for task, data_dir in sources:
        for example in get_processor(task).get_examples(data_dir, "train"):
            for text in (example.text_a, example.text_b):
                for sentence in split_sentences(text or ""):
                    if sentence not in seen:
                        seen.add(sentence)
                        sentences.append(sentence)
    if not sentences:
        raise ValueError(f"no sentences found in {', '.join(d for _, d in sources)}")
    num_files = max(1, min(num_files, len(sentences)))
    tmp = f"{out_dir.rstrip('/')}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    handles = [open(os.path.join(tmp, f"part-{i:05d}.txt"), "w", encoding="utf-8") for i in range(num_files)]
    try:
        for i, sentence in enumerate(sentences):
            handles[i % num_files].write(sentence.replace("\n", " ") + "\n")
    finally:
        for handle in handles:
            handle.close()
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return len(sentences)


def corpus_main(argv: Sequence[str] | None = None) -> None:
    """``python -m model_compress.jobs.general_distill make_corpus --out DIR task:data_dir ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m model_compress.jobs.general_distill make_corpus",
        description="Write a distillation corpus (one sentence per line, several files) from task training sets.",
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
        key_layer = _layer_of(key)
        if not key.startswith("pooler.") and (key_layer is None or key_layer <= layer):
            needed[key] = value
    report = load_state_into(teacher, needed, verbose=False)
    if report.missing:
        fail(f"teacher {model_dir} lacks {len(report.missing)} tensors, e.g. {', '.join(report.missing[:3])}")
    for p in teacher.parameters():
        p.requires_grad = False
    teacher.eval()
    return teacher, config, layer


def _layer_of(key: str) -> int | None:
    match = re.match(r"encoder\.layer\.(\d+)\.", key)
    return int(match.group(1)) if match else None


def student_config(args, teacher_config: BertConfig) -> BertConfig:
    """The student's shape: depth from ``--num_layers``, width/heads default to the teacher's, vocab the teacher's."""
    hidden = args.hidden_size or teacher_config.hidden_size
    heads = args.num_attention_heads or teacher_config.num_attention_heads
    try:
        return BertConfig(
            vocab_size=teacher_config.vocab_size,
            hidden_size=hidden,
            num_hidden_layers=args.num_layers,
            num_attention_heads=heads,
            intermediate_size=args.intermediate_size or 4 * hidden,
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


class RelationDistillation(nn.Module):
    """Objective: the student's Q/K/V relations at one layer against the teacher's (returns ``(loss,)``)."""

    input_names = ENCODER_INPUTS

    def __init__(
        self,
        student: BertForSequenceClassification,
        teacher: BertModel,
        student_layer: int,
        teacher_layer: int,
        num_relation_heads: int,
        alpha: float = 0.0,
        beta: float = 0.0,
    ) -> None:
        super().__init__()
        self.student = student
        self.teacher = teacher
        self.student_layer = student_layer
        self.teacher_layer = teacher_layer
        self.num_relation_heads = num_relation_heads
        self.alpha = float(alpha)
        self.beta = float(beta)
        freeze_unused_student_parts(student, student_layer)

    def forward(self, input_ids, input_mask, segment_ids):
        teacher_qkv = self.teacher(input_ids, segment_ids, input_mask, output_qkv=True).qkv[self.teacher_layer]
        student_qkv = self.student.bert(input_ids, segment_ids, input_mask, output_qkv=True).qkv[self.student_layer]
        loss = qkv_relation_loss(student_qkv, teacher_qkv, input_mask, self.num_relation_heads, self.alpha, self.beta)
        return (loss,)


def freeze_unused_student_parts(student: BertForSequenceClassification, student_layer: int) -> None:
    """Freeze what the relation loss cannot reach, so weight decay and Adam leave it at its initial values:
    the pooler, the classifier, layers above the distilled one, and the distilled layer's attention
    output and feed-forward block (only its query/key/value projections feed the loss, as in MiniLMv2)."""
    for name, param in student.named_parameters():
        layer = _layer_of(name[len("bert."):]) if name.startswith("bert.") else None
        unused = name.startswith(("bert.pooler.", "classifier.")) or (
            layer is not None and (layer > student_layer or (layer == student_layer and ".attention.self." not in name))
        )
        if unused:
            param.requires_grad = False


# ----------------------------------------------------------------------------------------------------
# Snapshots and resume
# ----------------------------------------------------------------------------------------------------
def list_snapshots(output_dir: str) -> list[tuple[int, str]]:
    """Complete ``model_<step>`` snapshots in ``output_dir``, sorted by step."""
    if not os.path.isdir(output_dir):
        return []
    found = []
    for name in os.listdir(output_dir):
        match = re.fullmatch(rf"{SNAPSHOT_PREFIX}(\d+)", name)
        path = os.path.join(output_dir, name)
        if match and os.path.isfile(os.path.join(path, SNAPSHOT_JSON)):
            found.append((int(match.group(1)), path))
    return sorted(found)


def student_state(student: nn.Module) -> dict[str, np.ndarray]:
    """What a general student snapshot holds: the encoder and pooler, no task head (gathered on every rank)."""
    return {k: v for k, v in module_state_numpy(student).items() if not k.startswith("classifier.")}


def lr_at(step: int, learning_rate: float, total_steps: int, warmup_steps: int) -> float:
    """The schedule of ``build_scheduler``: linear warm-up from 0, then linear decay to 0 at ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return learning_rate * step / warmup_steps
    return learning_rate * max(0.0, 1.0 - (step - warmup_steps) / max(1, total_steps - warmup_steps))


def build_resumed_optimization(
    module: nn.Module, args, start_step: int, warmup_steps: int
) -> tuple[flow.optim.Optimizer, object]:
    """AdamW and a schedule that continue the linear warm-up/decay of a run from ``start_step``.

    Adam moments are not stored in snapshots, so after a resume they restart from zero (bias
    correction makes that harmless); only the learning rate curve continues where it was.
    """
    fused = args.device.startswith("cuda") and not args.eager  # the fused kernel is CUDA-only
    total = args.max_steps
    if start_step == 0:
        optimizer = build_optimizer(module, args.learning_rate, args.weight_decay, args.max_grad_norm, fused=fused)
        return optimizer, build_scheduler(optimizer, total, warmup_steps / max(1, total))
    if start_step >= warmup_steps:
        lr_now = lr_at(start_step, args.learning_rate, total, warmup_steps)
        optimizer = build_optimizer(module, lr_now, args.weight_decay, args.max_grad_norm, fused=fused)
        return optimizer, build_scheduler(optimizer, total - start_step, 0.0)
    optimizer = build_optimizer(module, args.learning_rate, args.weight_decay, args.max_grad_norm, fused=fused)
    decay = flow.optim.lr_scheduler.PolynomialLR(
        optimizer, decay_batch=max(1, total - warmup_steps), end_learning_rate=0.0, power=1.0
    )
    return optimizer, flow.optim.lr_scheduler.WarmupLR(
        decay, warmup_factor=start_step / warmup_steps, warmup_iters=warmup_steps - start_step,
        warmup_method="linear", warmup_prefix=True,
    )


# ----------------------------------------------------------------------------------------------------
# Command line and the training run
# ----------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="PP-MiniLM task-agnostic distillation of a BERT student.")
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
    config = student_config(args, teacher_cfg)
    s_layer = resolve_layer(args.student_layer_index, config.num_hidden_layers, "student")
    check_relation_heads(args.num_relation_heads, [teacher_cfg.hidden_size, config.hidden_size])
    if s_layer != config.num_hidden_layers - 1 and is_main:
        print(f"[general_distill] student layers above {s_layer} get no signal and stay at their initialisation",
              file=sys.stderr)

    student = BertForSequenceClassification(config)
    start_step = 0
    snapshots = list_snapshots(args.output_dir)
    if snapshots and args.resume:
        start_step, path = snapshots[-1]
        state, saved_cfg, _ = load_snapshot(path)
        if saved_cfg is not None and saved_cfg.replace(num_labels=config.num_labels) != config:
            fail(f"{path} holds a student of another shape than the flags ask for; use another --output_dir "
                 "or --resume False")
        load_state_into(student, state, verbose=False)
        if is_main:
            print(f"[general_distill] resuming from {path} (step {start_step}); Adam moments restart", file=sys.stderr)
    elif snapshots and is_main:
        print(f"[general_distill] --resume False: starting over; snapshots in {args.output_dir} will be replaced",
              file=sys.stderr)
    if args.use_amp and (args.device == "cpu" or args.eager) and is_main:
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
        state = student_state(student)  # collective in multi-process runs: every rank calls it
        path = os.path.join(args.output_dir, f"{SNAPSHOT_PREFIX}{step}")
        if is_main:
            save_snapshot(state, path, config, {**meta, "step": step, "loss": loss},
                          extra_files={"vocab.txt": vocab})
            if args.keep_last > 0:
                for _, old in list_snapshots(args.output_dir)[: -args.keep_last]:
                    shutil.rmtree(old, ignore_errors=True)
        distributed.barrier()
        return path

    result = {"step": start_step, "snapshot": None, "losses": [], "seconds": 0.0}
    if start_step >= args.max_steps:
        existing = dict(snapshots)
        result["snapshot"] = existing.get(start_step) if args.resume else None
        if result["snapshot"] is None:
            result["snapshot"] = save(start_step, None)
        if is_main:
            print(f"[general_distill] nothing to train: step {start_step} >= --max_steps {args.max_steps}; "
                  f"student at {result['snapshot']}")
        return result

    warmup = args.warmup_steps if args.warmup_steps >= 0 else int(round(args.warmup_proportion * args.max_steps))
    optimizer, scheduler = build_resumed_optimization(objective, args, start_step, warmup)
    step_fn = make_train_step(objective, optimizer, scheduler, eager=args.eager)
    teacher.eval()  # make_train_step put the whole objective in training mode
    if args.use_amp and args.device != "cpu" and not args.eager:
        step_fn.config.enable_amp(True)
        step_fn.set_grad_scaler(flow.amp.GradScaler(init_scale=2**15, growth_factor=2.0, backoff_factor=0.5,
                                                    growth_interval=2000))

    tokenizer = FullTokenizer(vocab, do_lower_case=args.do_lower_case)
    try:
        files = list_corpus_files(args.input_dir)
    except FileNotFoundError as exc:
        fail(str(exc))
    stream = CorpusStream(files, tokenizer, args.max_seq_length, args.seed, rank, world, args.pack,
                          args.shuffle_buffer)
    batches = stream.batches(args.batch_size, skip=start_step)
    if is_main:
        print(f"[general_distill] teacher {teacher_dir} layer {t_layer} -> student {config.num_hidden_layers}x"
              f"{config.hidden_size} ({config.num_attention_heads} heads) layer {s_layer}; {len(files)} corpus files; "
              f"relation heads {args.num_relation_heads}, alpha {args.alpha}, beta {args.beta}", file=sys.stderr)

    bar = tqdm(total=args.max_steps, initial=start_step, desc="general_distill", unit="step", disable=not is_main)
    start, window_start, window_steps = time.perf_counter(), time.perf_counter(), 0
    step, loss_value = start_step, None
    while step < args.max_steps:
        batch = next(batches)
        inputs = [distributed.shard_batch_tensor(flow.tensor(batch[name])) for name in objective.input_names]
        outputs = step_fn(*inputs)
        step += 1
        window_steps += 1
        bar.update(1)
        if step % args.logging_steps == 0 or step == args.max_steps:
            loss_value = float(distributed.to_local_numpy(outputs[0]))
            if not np.isfinite(loss_value):
                fail(f"the loss became {loss_value} at step {step}: lower --learning_rate")
            result["losses"].append((step, loss_value))
            elapsed = time.perf_counter() - window_start
            rate = window_steps * args.batch_size * world / max(elapsed, 1e-9)
            lr = lr_at(step, args.learning_rate, args.max_steps, warmup)
            bar.set_postfix(loss=f"{loss_value:.4f}")
            if is_main:
                tqdm.write(f"step {step}: loss {loss_value:.5f}, lr {lr:.3e}, {rate:.1f} sequences/s")
            window_start, window_steps = time.perf_counter(), 0
        if step % args.save_steps == 0 or step == args.max_steps:
            result["snapshot"] = save(step, loss_value)
    bar.close()
    result["step"] = step
    result["seconds"] = time.perf_counter() - start
    if is_main:
        with open(os.path.join(args.output_dir, "general_distill_log.json"), "a", encoding="utf-8") as f:
            f.write(json.dumps({"start_step": start_step, "step": step, "seconds": round(result["seconds"], 1),
                                "losses": result["losses"], "snapshot": result["snapshot"]}) + "\n")
        print(f"[general_distill] step {step}: student snapshot {result['snapshot']}")
    return result


def main(argv: Sequence[str] | None = None) -> None:
    run(build_parser().parse_args(argv))


if __name__ == "__main__":
    raw = sys.argv[1:]
    if raw and raw[0] == "make_corpus":
        corpus_main(raw[1:])
    else:
        sys.exit("usage: python -m model_compress.jobs.general_distill make_corpus --out DIR task:data_dir ...\n"
                 "(distillation itself: python model_compress/minilm/general_distill.py --help)")
