"""TinyBERT task distillation over typed settings: step 1 intermediate layers, step 2 the prediction layer.

Step 1 trains the student's attention maps and hidden states (embeddings included) against the
teacher's uniformly mapped layers and saves the student as ``<model_save_dir>/snapshot_intermediate``
(no dev selection: the classifier head is not trained yet). Step 2 continues that student with the
soft cross-entropy at T against the teacher's logits and keeps the best dev snapshot
(``snapshot_best``). The teacher runs inside the training graph in both steps. With ``aug_train`` both
steps read the augmented training rows (``data/augmentation.py``), built once and reused.

The entries model_compress/distil/task_student_tinybert.py (both steps) and data_augmentation.py (the
augmented training set alone) parse the flags below.
"""

from __future__ import annotations

import argparse
import dataclasses
import os

import numpy as np

from model_compress import cli
from model_compress.cli import add_bool, finite_number, user_errors
from model_compress.data.augmentation import DEFAULT_N, TASK_N, AugmentSpec, ensure_augmented
from model_compress.distill.intermediate import ATTENTION_KINDS, check_heads
from model_compress.distill.mapping import attention_mapping, hidden_mapping
from model_compress.distill.objectives import (
    TeacherTargets,
    TinyBERTIntermediateObjective,
    TinyBERTPredictionObjective,
    WithOnlineTeacher,
)
from model_compress.errors import RecipeError
from model_compress.log import logger
from model_compress.modeling.bert import BertForSequenceClassification
from model_compress.modeling.config import BertConfig
from model_compress.modeling.resolve import resolve_model
from model_compress.modeling.slicing import slice_model
from model_compress.recipes import settings as cfg
from model_compress.recipes.common import (
    TaskData,
    check_model_inputs,
    classifier_state,
    find_vocab,
    fit_classifier,
    fit_objective,
    load_classifier,
    load_model_snapshot,
    load_task_data,
    save_classifier,
)
from model_compress.recipes.student import (
    add_student_args,
    build_student,
    evaluate_and_report,
    pretrained_student,
    run_settings,
    teacher_inputs,
)
from model_compress.training import distributed
from model_compress.training.graph import graph_free_copy

log = logger("tinybert")

INTERMEDIATE_SNAPSHOT = "snapshot_intermediate"
ROLE = "student-tinybert"


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named TinyBERT budget: both steps' epochs and learning rates, the temperature, the attention loss
    and, for the augmented recipe, the new rows per sentence. Flags given on the command line win."""

    intermediate_epochs: float
    intermediate_learning_rate: float
    num_epochs: float
    learning_rate: float
    temperature: float = 1.0
    attention_loss: str = "scores"
    aug_train: bool = False
    N: int | None = None


PRESETS = {
    # the original's run_train_student_tinybert.sh: step 1 10 epochs at 2e-4, step 2 4 epochs at 1e-4
    "original": Preset(intermediate_epochs=10, intermediate_learning_rate=2e-4, num_epochs=4, learning_rate=1e-4),
    # measured on real text (docs/benchmarks.md, CR): 4 new rows per sentence, one epoch per step at 2e-4
    "augmented": Preset(intermediate_epochs=1, intermediate_learning_rate=2e-4, num_epochs=1, learning_rate=2e-4,
                        aug_train=True, N=4),
}


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
        log.info(f"augmented training set {'reused from' if reused else 'written to'} {path}: {len(rows)} rows from "
             f"{len(data.examples['train'])}")
    distributed.barrier()
    if distributed.rank() != 0:
        rows, _, _ = build()
    data.examples["train_aug"] = rows
    return "train_aug"


def step_one_settings(settings: cfg.TrainSettings, tb: cfg.TinyBERTSettings) -> cfg.TrainSettings:
    """Step 1's optimisation: --intermediate_epochs / --intermediate_learning_rate where given (a preset
    gives both), else the run's own --num_epochs / --learning_rate."""
    return dataclasses.replace(settings, num_epochs=tb.intermediate_epochs or settings.num_epochs,
                               learning_rate=tb.intermediate_learning_rate or settings.learning_rate)


def intermediate_step(settings: cfg.TrainSettings, run: cfg.RunSettings, tb: cfg.TinyBERTSettings, data: TaskData,
                      split: str, teacher, t_config: BertConfig, student, s_config: BertConfig, vocab: str,
                      output_dir: str, meta: dict) -> tuple[str, object]:
    """Step 1: attention + hidden-state MSE; the student is saved as ``snapshot_intermediate``."""
    attention_layers, hidden_layers = check_student(s_config, t_config, data.vocab_map is not None)
    settings = step_one_settings(settings, tb)
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
    log.info(f"step 1 (intermediate layers, {loop.steps} steps, final loss {loop.final_loss:.4f}): student in {path}")
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
        log.info(f"step 2 continues the step-1 student {own}")
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
        log.info(f"student {s_config.num_hidden_layers} layers x {s_config.hidden_size} wide "
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
            log.info("--do_eval after step 1 alone evaluates an untrained classifier head")
        snap_dir = resolve_model(snapshot)
        vocab = find_vocab(snap_dir, run.vocab_file)
        data = load_task_data(data_settings, vocab, model_dir=snap_dir, student=True)
        result["eval"] = evaluate_and_report(settings, run.flags, snap_dir, data, run.result_dir or output_dir, ROLE)
    result["snapshot"] = snapshot
    return result


WORD_EMBEDDINGS = "bert.embeddings.word_embeddings.weight"


def add_augment_args(parser: argparse.ArgumentParser) -> None:
    """The original data_augmentation.py's N, M and p."""
    g = parser.add_argument_group("augmentation")
    g.add_argument("--N", type=int, default=None,
                   help=f"tries per text, i.e. at most N new rows per text (default per task, e.g. SST-2 20; "
                        f"{DEFAULT_N} otherwise)")
    g.add_argument("--M", type=int, default=15, help="candidate replacements per word (nearest vocabulary words)")
    g.add_argument("--p", type=finite_number, default=0.4, help="probability of replacing each content word")


def augment_spec(args: argparse.Namespace, task_name: str) -> AugmentSpec:
    tries = args.N if args.N is not None else TASK_N.get(task_name.lower(), DEFAULT_N)
    try:
        return AugmentSpec(num_tries=tries, num_candidates=args.M, replace_prob=args.p, seed=args.seed)
    except ValueError as exc:
        raise RecipeError(str(exc)) from None


def preset_of(argv) -> str | None:
    """The --preset named in ``argv`` (checked by the full parser)."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--preset", default=None)
    return pre.parse_known_args(argv)[0].preset


def build_parser(preset: str | None = None) -> argparse.ArgumentParser:
    """The flags of task_student_tinybert.py; with ``preset`` its budget becomes the defaults."""
    parser = argparse.ArgumentParser(
        description="TinyBERT task distillation: intermediate layers (step 1), then the prediction layer (step 2).",
        allow_abbrev=False)
    cli.add_data_args(parser)
    cli.add_train_args(parser, epochs=3, lr=5e-5)
    add_student_args(parser)
    parser.set_defaults(student_num_hidden_layers=4, student_hidden_size=312, student_num_attention_heads=12,
                        student_intermediate_size=1200, temperature=1.0)
    parser.add_argument("--teacher_model", default=None, help="fine-tuned teacher snapshot")
    add_bool(parser, "--intermediate_distill", True, "step 1: attention and hidden-state distillation")
    add_bool(parser, "--pred_distill", True, "step 2: soft cross-entropy on the teacher's logits (after step 1 "
             "when both are on; alone it continues --student_model or this run's snapshot_intermediate)")
    parser.add_argument("--attention_loss", choices=ATTENTION_KINDS, default="scores",
                        help="scores: raw attention scores with masked keys as 0 (TinyBERT); probs: probabilities")
    parser.add_argument("--layer_list", default=None,
                        help="start the student from these 0-based teacher layers, e.g. '1,3,5' (instead of "
                             "--student_model / --from_scratch)")
    add_bool(parser, "--aug_train", False, "train on the augmented training set (train_aug.tsv, built once)")
    add_augment_args(parser)
    g = parser.add_argument_group("budget")
    g.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="a named budget for both steps in one run: " + "; ".join(
                       f"{name}: step 1 {p.intermediate_epochs:g} epochs at {p.intermediate_learning_rate:g}, step 2 "
                       f"{p.num_epochs:g} at {p.learning_rate:g}" + (f", N={p.N} augmented rows" if p.aug_train else "")
                       for name, p in PRESETS.items()) + " (flags given win)")
    g.add_argument("--intermediate_epochs", type=finite_number, default=0,
                   help="step 1's epochs (0: --num_epochs, which is step 2's)")
    g.add_argument("--intermediate_learning_rate", type=finite_number, default=0,
                   help="step 1's learning rate (0: --learning_rate)")
    if preset in PRESETS:
        parser.set_defaults(**dataclasses.asdict(PRESETS[preset]))
    return parser


def run(args: argparse.Namespace) -> dict:
    cli.seed_everything(args.seed)
    for flag in ("intermediate_epochs", "intermediate_learning_rate"):
        if getattr(args, flag) < 0:
            raise RecipeError(f"--{flag} must be >= 0, got {getattr(args, flag)}")
    if args.layer_list and (args.from_scratch or args.student_model):
        raise RecipeError("--layer_list starts the student from teacher layers: leave out --student_model and "
                          "--from_scratch")
    spec = augment_spec(args, args.task_name)
    return train_tinybert(run_settings(args), cfg.from_flags(cfg.DataSettings, args),
                          cfg.from_flags(cfg.TrainSettings, args), cfg.from_flags(cfg.StudentSettings, args),
                          cfg.from_flags(cfg.TinyBERTSettings, args), spec)


@user_errors
def main(argv=None) -> None:
    run(cli.normalise_aliases(build_parser(preset_of(argv)).parse_args(argv)))


def augment_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Write <glue_dir>/<task_name>/train_aug.tsv: training rows with words replaced by their nearest "
                    "neighbours in the model's word-embedding matrix (reused while nothing changes).",
        allow_abbrev=False)
    parser.add_argument("--pretrained_bert_model", default=None,
                        help="snapshot whose word embeddings choose the replacements (use the teacher, so that "
                             "task_student_tinybert.py --aug_train reuses the file; default: the default model)")
    parser.add_argument("--glue_dir", default="data/glue_data", help="folder holding <task_name>/train.tsv")
    parser.add_argument("--task_name", required=True, help="e.g. SST-2")
    parser.add_argument("--vocab_file", default=None, help="vocab.txt (default: the model's own)")
    parser.add_argument("--glove_embs", default=None, help="accepted for the original command line; not used")
    add_bool(parser, "--do_lower_case", True, "lower-case the text (uncased models)")
    parser.add_argument("--train_example_num", type=int, default=0, help="augment only the first N training rows")
    parser.add_argument("--seed", type=int, default=42)
    add_augment_args(parser)
    return parser


def word_embeddings(model_dir: str) -> np.ndarray:
    """The word-embedding matrix [vocab, width] of a snapshot."""
    state, _, _ = load_model_snapshot(model_dir, "read its word embeddings")
    matrix = classifier_state(state).get(WORD_EMBEDDINGS)
    if matrix is None:
        raise RecipeError(f"{model_dir} has no {WORD_EMBEDDINGS}")
    return np.asarray(matrix, dtype=np.float32)


def augment(args: argparse.Namespace) -> tuple[str, int, bool]:
    """Build (or reuse) the augmented training file; returns (path, rows, reused)."""
    spec = augment_spec(args, args.task_name)
    if args.glove_embs:
        logger("augment").info("--glove_embs: no GloVe here; replacements come from the model's word embeddings")
    model_dir = resolve_model(args.pretrained_bert_model)
    vocab = find_vocab(model_dir, args.vocab_file)
    data_dir = os.path.join(args.glue_dir, args.task_name)
    settings = cfg.DataSettings(task_name=args.task_name, data_dir=data_dir, seq_length=1,
                            do_lower_case=args.do_lower_case, train_example_num=args.train_example_num)
    data = load_task_data(settings, vocab, splits=("train",))
    try:
        rows, path, reused = ensure_augmented(data_dir, data.examples["train"], data.tokenizer,
                                              word_embeddings(model_dir), spec)
    except ValueError as exc:
        raise RecipeError(f"{model_dir}: {exc}") from None
    print(f"[augment] {path}: {len(rows)} rows from {len(data.examples['train'])} "
          f"({'reused' if reused else 'written'}; N={spec.num_tries} M={spec.num_candidates} p={spec.replace_prob})")
    return path, len(rows), reused


@user_errors
def augment_main(argv=None) -> None:
    augment(augment_parser().parse_args(argv))
