"""TinyBERT task distillation over typed settings: step 1 intermediate layers, step 2 the prediction layer.

Step 1 trains the student's attention maps and hidden states (embeddings included) against the
teacher's uniformly mapped layers and saves the student as ``<model_save_dir>/snapshot_intermediate``
(no dev selection: the classifier head is not trained yet). Step 2 continues that student with the
soft cross-entropy at T against the teacher's logits and keeps the best dev snapshot
(``snapshot_best``). The teacher runs inside the training graph in both steps. With ``aug_train`` both
steps read the augmented training rows (``data/augmentation.py``), built once and reused.
"""

from __future__ import annotations

import os
import sys

from model_compress.data.augmentation import AugmentSpec, ensure_augmented
from model_compress.distill.intermediate import check_heads
from model_compress.distill.mapping import attention_mapping, hidden_mapping
from model_compress.distill.objectives import (
    TeacherTargets,
    TinyBERTIntermediateObjective,
    TinyBERTPredictionObjective,
    WithOnlineTeacher,
)
from model_compress.errors import RecipeError
from model_compress.jobs import settings as cfg
from model_compress.jobs.common import (
    TaskData,
    check_model_inputs,
    find_vocab,
    fit_classifier,
    fit_objective,
    load_classifier,
    load_task_data,
    save_classifier,
)
from model_compress.jobs.pipelines.student import (
    build_student,
    evaluate_and_report,
    pretrained_student,
    teacher_inputs,
)
from model_compress.modeling.bert import BertForSequenceClassification
from model_compress.modeling.config import BertConfig
from model_compress.modeling.resolve import resolve_model
from model_compress.modeling.slicing import slice_model
from model_compress.training import distributed
from model_compress.training.graph import graph_free_copy

INTERMEDIATE_SNAPSHOT = "snapshot_intermediate"
ROLE = "student-tinybert"


def note(message: str) -> None:
    if distributed.rank() == 0:
        print(f"[tinybert] {message}", file=sys.stderr)


def build_tinybert_student(spec: cfg.StudentSettings, layer_list: str | None, teacher: BertForSequenceClassification,
                           teacher_dir: str, num_labels: int, seq_length: int, vocab: str
                           ) -> tuple[BertForSequenceClassification, BertConfig, str]:
    """The student: teacher layers `layer_list`, a snapshot (e.g. a general TinyBERT), or random.

    Returns (model, config, where it came from).
    """
    if layer_list:
        try:
            model, config = slice_model(teacher, layer_list)
        except ValueError as exc:
            raise RecipeError(str(exc)) from None
        return model, config, f"{teacher_dir} layers {layer_list}"
    if not spec.from_scratch and not spec.student_model:
        raise RecipeError("give --student_model (e.g. a general TinyBERT snapshot), --layer_list (teacher layers) or "
                          "--from_scratch (with --student_num_hidden_layers / --student_hidden_size ...)")
    if spec.student_model and not spec.from_scratch:
        check_model_inputs(resolve_model(spec.student_model), vocab, seq_length, student=True)
    model, config = build_student(spec, num_labels, teacher_dir, vocab)
    return model, config, "random" if spec.from_scratch else spec.student_model


def check_student(student: BertConfig, teacher: BertConfig, mapped: bool = False) -> tuple[list[int], list[int]]:
    """(teacher attention layers, teacher hidden-state indexes) the student learns from; exit 2 when the
    pair cannot be distilled layer to layer. ``mapped``: the teacher reads the student's ids through a
    vocabulary map, so the embedding tables may differ."""
    try:
        check_heads(student.num_attention_heads, teacher.num_attention_heads)
        attention = [t for _, t in attention_mapping(student.num_hidden_layers, teacher.num_hidden_layers)]
        hidden = [t for _, t in hidden_mapping(student.num_hidden_layers, teacher.num_hidden_layers)]
    except ValueError as exc:
        raise RecipeError(f"student {student.num_hidden_layers} layers x {student.num_attention_heads} heads, teacher "
                          f"{teacher.num_hidden_layers} x {teacher.num_attention_heads}: {exc}") from None
    if not mapped and student.vocab_size != teacher.vocab_size:
        raise RecipeError(f"the student embeds {student.vocab_size} tokens, the teacher {teacher.vocab_size}: "
                          "both must read the same token ids")
    return attention, hidden


def training_split(data: TaskData, teacher: BertForSequenceClassification, aug_train: bool,
                   augment: AugmentSpec) -> str:
    """The split both steps train on: "train", or "train_aug" (built once with the teacher's embeddings)."""
    if not aug_train:
        return "train"

    embeddings = teacher.encoder_model.embeddings.word_embeddings.weight.numpy()
    if data.vocab_map is not None:  # rows in the student's id order: neighbours are found by the teacher
        embeddings = embeddings[data.vocab_map.table]

    def build() -> tuple[list, str, bool]:
        try:
            return ensure_augmented(data.data_dir, data.examples["train"], data.tokenizer, embeddings, augment)
        except ValueError as exc:
            raise RecipeError(f"--aug_train: {exc}") from None

    if distributed.rank() == 0:  # rank 0 builds; the others then read the same file
        rows, path, reused = build()
        note(f"augmented training set {'reused from' if reused else 'written to'} {path}: {len(rows)} rows from "
             f"{len(data.examples['train'])}")
    distributed.barrier()
    if distributed.rank() != 0:
        rows, _, _ = build()
    data.examples["train_aug"] = rows
    return "train_aug"


def intermediate_step(settings: cfg.TrainSettings, run: cfg.RunSettings, tb: cfg.TinyBERTSettings, data: TaskData,
                      split: str, teacher, t_config: BertConfig, student, s_config: BertConfig, vocab: str,
                      output_dir: str, meta: dict) -> tuple[str, object]:
    """Step 1: attention + hidden-state MSE; the student is saved as ``snapshot_intermediate``."""
    attention_layers, hidden_layers = check_student(s_config, t_config, data.vocab_map is not None)
    objective = distributed.setup_model(
        TinyBERTIntermediateObjective(student, t_config.hidden_size, tb.attention_loss), settings.device)
    targets = TeacherTargets(teacher, hidden_layers=hidden_layers, attention_layers=attention_layers,
                             attention=tb.attention_loss, vocab_map=data.vocab_map)
    train = data.loader(split, run.batch_size_per_device, train=True, seed=settings.seed)
    loop = fit_objective(settings, WithOnlineTeacher(objective, targets), student, train, None, vocab, output_dir,
                         meta=meta)
    path = save_classifier(student, os.path.join(output_dir, INTERMEDIATE_SNAPSHOT), s_config, vocab,
                           {"task": settings.task_name, **meta, "role": f"{ROLE}-intermediate",
                            "teacher_attention_layers": attention_layers, "teacher_hidden_layers": hidden_layers,
                            "final_loss": loop.final_loss})
    distributed.barrier()
    note(f"step 1 (intermediate layers, {loop.steps} steps, final loss {loop.final_loss:.4f}): student in {path}")
    return path, loop


def prediction_step(settings: cfg.TrainSettings, run: cfg.RunSettings, tb: cfg.TinyBERTSettings, data: TaskData,
                    split: str, teacher, student, vocab: str, output_dir: str, meta: dict):
    """Step 2: soft cross-entropy at T against the teacher's logits; the best dev snapshot is kept."""
    objective = TinyBERTPredictionObjective(student, tb.temperature)
    train = data.loader(split, run.batch_size_per_device, train=True, seed=settings.seed)
    dev = data.loader("dev", settings.eval_batch_size_per_device, train=False, seed=settings.seed, rank=0,
                      world_size=1)
    online = WithOnlineTeacher(objective, TeacherTargets(teacher, vocab_map=data.vocab_map))
    save_module = student if tb.serve_for_online else online
    return fit_classifier(settings, online, student, train, dev, vocab, output_dir, save_module=save_module,
                          meta={**meta, "role": ROLE, "serve_for_online": bool(tb.serve_for_online)})


def continued_student(spec: cfg.StudentSettings, output_dir: str) -> str:
    """Step 2 alone continues a step-1 student: --student_model, else this run's ``snapshot_intermediate``."""
    if spec.student_model:
        return resolve_model(spec.student_model)
    own = os.path.join(output_dir, INTERMEDIATE_SNAPSHOT)
    if os.path.isdir(own):
        note(f"step 2 continues the step-1 student {own}")
        return own
    raise RecipeError(f"--pred_distill alone continues a step-1 student: pass it as --student_model, or run "
                      f"--intermediate_distill with the same --model_save_dir first (looked for {own})")


def train_tinybert(run: cfg.RunSettings, data_settings: cfg.DataSettings, settings: cfg.TrainSettings,
                   spec: cfg.StudentSettings, tb: cfg.TinyBERTSettings, augment: AugmentSpec) -> dict:
    """TinyBERT step 1 and/or step 2 (per the flags), then the student's dev metrics with --do_eval."""
    output_dir = run.model_save_dir or os.path.join("output", f"student-tinybert-{settings.task_name}")
    result: dict = {"output_dir": output_dir}
    snapshot = spec.student_model
    if run.do_train:
        if not (tb.intermediate_distill or tb.pred_distill):
            raise RecipeError("--do_train with --intermediate_distill False and --pred_distill False: nothing to train")
        source = None if tb.intermediate_distill else continued_student(spec, output_dir)
        own = pretrained_student(spec) if tb.intermediate_distill and not tb.layer_list else source
        teacher_dir, vocab, data, teacher, t_config = teacher_inputs(tb.teacher_model, run, data_settings, own)
        if tb.intermediate_distill:
            student, s_config, init = build_tinybert_student(spec, tb.layer_list, teacher, teacher_dir,
                                                             len(data.labels), data_settings.seq_length, vocab)
            check_student(s_config, t_config, data.vocab_map is not None)
        else:
            check_model_inputs(source, vocab, data_settings.seq_length, student=True)
            student, s_config, _ = load_classifier(source, len(data.labels), student=True)
            init = source
        split = training_split(data, teacher, tb.aug_train, augment)
        teacher = distributed.setup_model(teacher, settings.device)
        student = distributed.setup_model(student, settings.device)
        meta = {"labels": data.labels, "teacher": teacher_dir, "student_init": init, "aug_train": bool(tb.aug_train),
                "train_rows": len(data.examples[split])}
        result.update(student_init=init, train_rows=len(data.examples[split]))
        note(f"student {s_config.num_hidden_layers} layers x {s_config.hidden_size} wide "
             f"({s_config.num_attention_heads} heads) from {init}; teacher {teacher_dir}")
        if tb.intermediate_distill:
            snapshot, result["intermediate"] = intermediate_step(settings, run, tb, data, split, teacher, t_config,
                                                                 student, s_config, vocab, output_dir, meta)
            if tb.pred_distill:  # a second TrainGraph needs modules no graph has compiled
                student = distributed.setup_model(graph_free_copy(student), settings.device)
                teacher = distributed.setup_model(graph_free_copy(teacher), settings.device)
                meta["student_init"] = snapshot
        if tb.pred_distill:
            loop = prediction_step(settings, run, tb, data, split, teacher, student, vocab, output_dir, meta)
            snapshot, result["train"] = loop.best_snapshot, loop
    if run.do_eval:
        if not snapshot:
            raise RecipeError("--do_eval without --do_train needs --student_model")
        if run.do_train and not tb.pred_distill:
            note("--do_eval after step 1 alone evaluates an untrained classifier head")
        snap_dir = resolve_model(snapshot)
        vocab = find_vocab(snap_dir, run.vocab_file)
        data = load_task_data(data_settings, vocab, model_dir=snap_dir, student=True)
        result["eval"] = evaluate_and_report(settings, run.flags, snap_dir, data, run.result_dir or output_dir, ROLE)
    result["snapshot"] = snapshot
    return result

