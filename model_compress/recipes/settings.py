"""Typed settings the jobs build once from their flags; helpers take these, never the argparse namespace."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, TypeVar

S = TypeVar("S")


def from_flags(cls: type[S], args: argparse.Namespace, **overrides: Any) -> S:
    """``cls`` (a settings dataclass) filled from the flags of the same names, then ``overrides``."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
              if f.name not in overrides and (hasattr(args, f.name) or f.default is dataclasses.MISSING)}
    values.update(overrides)
    return cls(**values)


@dataclasses.dataclass(frozen=True)
class DataSettings:
    """Which task files to read and how to tokenise them (the data flags)."""

    task_name: str
    data_dir: str
    seq_length: int
    do_lower_case: bool = True
    resave_ofrecord: bool = False
    train_example_num: int = 0
    dev_example_num: int = 0
    eval_example_num: int = 0
    length_buckets: str | tuple[int, ...] | None = None  # data.buckets: "auto", bounds, or None (pad all)


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Optimisation, evaluation cadence and device (the training flags)."""

    task_name: str
    num_epochs: float
    max_steps: int
    learning_rate: float
    weight_decay_rate: float
    warmup_proportion: float
    clip_grad_norm: float
    eval_every_step_num: int
    freeze_word_embeddings: bool
    eval_batch_size_per_device: int
    seed: int
    eager: bool
    device: str
    gradient_accumulation_steps: int = 1  # micro-batches per step (training/graph.py TrainGraph)


@dataclasses.dataclass(frozen=True)
class StudentSettings:
    """Where a student starts: a snapshot, or random with sizes derived from a reference model."""

    student_model: str | None
    from_scratch: bool
    student_num_hidden_layers: int
    student_hidden_size: int = 0
    student_num_attention_heads: int = 0
    student_intermediate_size: int = 0


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """What a run does and where it writes (the run flags), and the flags recorded in results files."""

    do_train: bool
    do_eval: bool
    batch_size_per_device: int
    model_save_dir: str | None
    result_dir: str
    vocab_file: str | None
    flags: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class KDSettings:
    """Vanilla KD: the teacher logits file, soft-label temperature and weight."""

    teacher_logits: str | None
    temperature: float
    alpha: float


@dataclasses.dataclass(frozen=True)
class PKDSettings:
    """BERT-PKD: the teacher, loss weights, layer mapping and how the teacher's outputs are obtained."""

    teacher_model: str | None
    temperature: float
    kd_alpha: float
    kd_beta: float
    pkd_mapping: str
    pkd_variant: str
    teacher_mode: str
    refresh_teacher_cache: bool
    serve_for_online: bool


@dataclasses.dataclass(frozen=True)
class TinyBERTSettings:
    """TinyBERT: the teacher, which steps run, what the attention loss compares, the prediction temperature,
    teacher layers a sliced student starts from, and whether the augmented training set is used."""

    teacher_model: str | None
    intermediate_distill: bool
    pred_distill: bool
    attention_loss: str
    temperature: float
    layer_list: str | None
    aug_train: bool
    serve_for_online: bool
    intermediate_epochs: float = 0  # step 1's budget when both steps run (0: --num_epochs / --learning_rate)
    intermediate_learning_rate: float = 0


@dataclasses.dataclass(frozen=True)
class MFTSettings:
    """Meta fine-tuning: the domain-corruption layers (None: scaled defaults) and loss weight."""

    layer_indexes: str | None
    domain_loss_weight: float


@dataclasses.dataclass(frozen=True)
class MetaTeacherSettings:
    """The Meta-KD meta-teacher: MFT's domain-corruption loss, with sample weights and that loss switchable."""

    layer_indexes: str | None
    domain_loss_weight: float
    use_sample_weights: bool
    use_domain_loss: bool


@dataclasses.dataclass(frozen=True)
class TeacherDumpSettings:
    """Where the Meta-KD teacher dump lives, whether to recompute it, and what its attention arrays hold."""

    dump_dir: str | None
    refresh_teacher_cache: bool
    attention_loss: str


@dataclasses.dataclass(frozen=True)
class MetaKDSettings:
    """Meta-KD distillation: the meta-teacher, stage, domain and the loss weights of the two stages."""

    teacher_model: str | None
    distill_stage: str
    genre: str
    # stage 1
    first_stage_epochs: float
    domain_loss_weight: float
    use_sample_weights: bool
    # stage 2 (and vanilla KD)
    temperature: float
    weight_soft_loss: bool
    alpha: float


@dataclasses.dataclass(frozen=True)
class GeneralDistillSettings:
    """PP-MiniLM general distillation: teacher and corpus, relations, student shape, the step run."""

    teacher_model_name_or_path: str
    input_dir: str
    output_dir: str
    vocab_file: str | None
    do_lower_case: bool
    # relations
    num_relation_heads: int
    teacher_layer_index: int
    student_layer_index: int
    alpha: float
    beta: float
    # student shape (0: the teacher's width / heads, 4 x width for the FFN)
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    intermediate_size: int
    # corpus stream and steps
    max_seq_length: int
    pack: bool
    shuffle_buffer: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    max_grad_norm: float
    max_steps: int
    warmup_steps: int
    warmup_proportion: float
    logging_steps: int
    save_steps: int
    keep_last: int
    seed: int
    device: str
    use_amp: bool
    resume: bool
    eager: bool


@dataclasses.dataclass(frozen=True)
class TheseusSettings:
    """BERT-of-Theseus: the predecessor (fine-tuned teacher) and the replacing-rate schedule."""

    teacher_model: str | None
    replacing_rate: float
    scheduler_type: str
    scheduler_linear_k: float
    steps_for_replacing: int


@dataclasses.dataclass(frozen=True)
class DistilledLSTMSettings:
    """Distilled BiLSTM: the teacher signal (logits file, or the teacher online / cached), KD weights and
    the LSTM student's sizes (0 embedding size: the hidden size; 0 sequence length: --seq_length)."""

    teacher_model: str | None
    teacher_logits: str | None
    teacher_mode: str
    refresh_teacher_cache: bool
    kd_alpha: float
    temperature: float
    student_model: str | None
    student_embedding_size: int
    student_hidden_size: int
    student_num_hidden_layers: int
    bidirectional: bool
    student_intermediate_size: int
    student_hidden_dropout_prob: float
    student_seq_length: int
