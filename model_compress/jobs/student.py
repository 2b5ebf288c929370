"""Student distillation jobs: vanilla KD from a logits file, and BERT-PKD.

Entries: model_compress/distil/task_student_kd.py, model_compress/distil/task_student_bert-pkd.py and
model_compress/distil/bert-pkd_generate_student_model.py (students from chosen teacher layers).
"""

from __future__ import annotations

import argparse
import os
import sys

from model_compress.cli import (
    add_bool,
    add_data_args,
    add_train_args,
    fail,
    normalise_aliases,
    seed_everything,
)
from model_compress.distill.mapping import pkd_mapping, uniform_mapping
from model_compress.distill.objectives import (
    PKDObjective,
    PKDSequenceMSEObjective,
    TeacherTargets,
    VanillaKDObjective,
    WithOnlineTeacher,
)
from model_compress.distill.teacher_cache import TeacherFileError, cached_teacher_outputs, read_logits_file
from model_compress.jobs.common import (
    classifier_state,
    evaluate_snapshot,
    find_vocab,
    fit_classifier,
    flags_of,
    load_classifier,
    load_model_snapshot,
    load_task_data,
    resolve_model_dir,
    write_results,
)
from model_compress.jobs.settings import DataSettings, StudentSettings, TrainSettings, from_flags
from model_compress.modeling.bert import BertForSequenceClassification
from model_compress.modeling.checkpoint import save_snapshot
from model_compress.modeling.slicing import slice_layers
from model_compress.training import distributed
from model_compress.training.objectives import ClassificationObjective
from model_compress.training.sources import WithCachedTargets

# ----------------------------------------------------------------------------------------------
# bert-pkd_generate_student_model.py


def generate_student_model(teacher_model: str, student_model: str, layer_list: str) -> str:
    """Save a student made of the teacher's embeddings, chosen encoder layers, pooler and head."""
    teacher_dir = resolve_model_dir(teacher_model)
    state, config, meta = load_model_snapshot(teacher_dir, "tell its layer count")
    try:
        sliced, student_config = slice_layers(classifier_state(state), config, layer_list)
    except ValueError as exc:
        fail(str(exc))
    extra = {}
    vocab = os.path.join(teacher_dir, "vocab.txt")
    if os.path.isfile(vocab):
        extra["vocab.txt"] = vocab
    save_snapshot(sliced, student_model, config=student_config,
                  meta={"teacher": os.path.abspath(teacher_dir), "layer_list": layer_list,
                        "labels": meta.get("labels")}, extra_files=extra)
    print(f"[student] {student_model}: teacher layers {layer_list} -> {student_config.num_hidden_layers} layers")
    return student_model


def generate_main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Build a BERT-PKD student from chosen teacher layers.")
    parser.add_argument("--teacher_model", required=True, help="fine-tuned teacher snapshot")
    parser.add_argument("--student_model", required=True, help="where the student snapshot goes")
    parser.add_argument("--layer_list", default="2,6,10", help="0-based teacher layers, e.g. '2,6,10'")
    args = parser.parse_args(argv)
    generate_student_model(args.teacher_model, args.student_model, args.layer_list)


# ----------------------------------------------------------------------------------------------
# shared by the KD and PKD students


def add_student_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("student")
    g.add_argument("--student_model", default=None,
                   help="student snapshot to start from (e.g. from bert-pkd_generate_student_model.py)")
    add_bool(g, "--from_scratch", False, "initialise the student randomly instead of from --student_model")
    g.add_argument("--student_num_hidden_layers", type=int, default=3, help="layers of a --from_scratch student")
    g.add_argument("--student_hidden_size", type=int, default=0, help="--from_scratch width (0: teacher's)")
    g.add_argument("--student_num_attention_heads", type=int, default=0)
    g.add_argument("--student_intermediate_size", type=int, default=0)
    g.add_argument("--temperature", type=float, default=1.0, help="softmax temperature T of the soft labels")
    add_bool(g, "--serve_for_online", False, "save only the student's tensors (no teacher, projections)")


def build_student(spec: StudentSettings, num_labels: int, reference_dir: str):
    """The student model: loaded from --student_model, or random with a config derived from a reference."""
    if not spec.from_scratch:
        if not spec.student_model:
            fail("give --student_model (e.g. from bert-pkd_generate_student_model.py) or --from_scratch")
        model, config, _ = load_classifier(resolve_model_dir(spec.student_model), num_labels)
        return model, config
    size_dir = resolve_model_dir(spec.student_model) if spec.student_model else reference_dir
    _, ref_config, _ = load_model_snapshot(size_dir, "derive the student's size from it")
    changes = {"num_hidden_layers": spec.student_num_hidden_layers, "num_labels": num_labels}
    sizes = ((spec.student_hidden_size, "hidden_size"), (spec.student_num_attention_heads, "num_attention_heads"),
             (spec.student_intermediate_size, "intermediate_size"))
    for value, field in sizes:
        if value:
            changes[field] = value
    try:
        config = ref_config.replace(**changes)
    except ValueError as exc:
        fail(str(exc))
    return BertForSequenceClassification(config), config


def evaluate_and_report(
    settings: TrainSettings, flags: dict, snapshot: str, data, result_dir: str, role: str
) -> dict:
    """Dev metrics of a snapshot, written to ``result_dir``/results_eval.json (rank 0) and printed."""
    metrics, model = evaluate_snapshot(settings, snapshot, data, "dev")
    if distributed.rank() == 0:
        path = write_results(result_dir, metrics, flags, model, snapshot, {"role": role})
        print(f"[{role}] dev accuracy {metrics['accuracy']:.4f}; results in {path}")
    return metrics


# ----------------------------------------------------------------------------------------------
# task_student_kd.py: vanilla KD


def kd_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train a student with vanilla KD from teacher logits.")
    add_data_args(parser)
    add_train_args(parser, epochs=3, lr=5e-5)
    add_student_args(parser)
    parser.add_argument("--teacher_logits", "--logits_saved_path", dest="teacher_logits", default=None,
                        help="teacher logits file (task_teacher.py --export_logits), one line per train row")
    parser.add_argument("--alpha", type=float, default=0.2, help="weight of the soft-label loss in [0, 1]")
    parser.set_defaults(temperature=5.0)
    return parser


def train_kd_student(settings: TrainSettings, data, spec: StudentSettings, reference: str, vocab: str,
                     logits, temperature: float, alpha: float, batch_size: int, output_dir: str,
                     meta: dict | None = None):
    """Vanilla KD: the student learns from ``logits`` (one row per training example, file order) and the labels."""
    model, _ = build_student(spec, len(data.labels), reference)
    model = distributed.setup_model(model, settings.device)
    train = WithCachedTargets(data.loader("train", batch_size, train=True, seed=settings.seed),
                              {"teacher_logits": logits})
    dev = data.loader("dev", settings.eval_batch_size_per_device, train=False, seed=settings.seed, rank=0,
                      world_size=1)
    objective = VanillaKDObjective(model, temperature, alpha)
    return fit_classifier(settings, objective, model, train, dev, vocab, output_dir,
                          meta={"labels": data.labels, "role": "student-kd", **(meta or {})})


def run_kd(args) -> dict:
    seed_everything(args.seed)
    settings = from_flags(TrainSettings, args)
    if not 0.0 <= args.alpha <= 1.0:
        fail(f"--alpha must be in [0, 1], got {args.alpha}")
    if args.temperature <= 0:
        fail(f"--temperature must be positive, got {args.temperature}")
    reference = resolve_model_dir(args.student_model)
    vocab = find_vocab(reference, args.vocab_file)
    data = load_task_data(from_flags(DataSettings, args), vocab)
    output_dir = args.model_save_dir or os.path.join("output", f"student-kd-{args.task_name}")
    snapshot, result = args.student_model, {}
    if args.do_train:
        if not args.teacher_logits:
            fail("--teacher_logits is required for training (export it with task_teacher.py --export_logits)")
        try:
            logits = read_logits_file(args.teacher_logits, len(data.examples["train"]), len(data.labels))
        except TeacherFileError as exc:
            fail(str(exc))
        loop = train_kd_student(settings, data, from_flags(StudentSettings, args), reference, vocab, logits,
                                args.temperature, args.alpha, args.batch_size_per_device, output_dir)
        snapshot, result["train"] = loop.best_snapshot, loop
    if args.do_eval:
        if not snapshot:
            fail("--do_eval without --do_train needs --student_model")
        result["eval"] = evaluate_and_report(settings, flags_of(args), snapshot, data,
                                             args.result_dir or output_dir, "student-kd")
    result["snapshot"] = snapshot
    return result


def kd_main(argv=None) -> None:
    run_kd(normalise_aliases(kd_parser().parse_args(argv)))


# ----------------------------------------------------------------------------------------------
# task_student_bert-pkd.py


def pkd_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train a BERT-PKD student (soft labels + patient loss).")
    add_data_args(parser)
    add_train_args(parser, epochs=3, lr=5e-5)
    add_student_args(parser)
    parser.add_argument("--teacher_model", default=None, help="fine-tuned teacher snapshot")
    parser.add_argument("--kd_alpha", type=float, default=0.9, help="weight of the soft-label loss")
    parser.add_argument("--kd_beta", type=float, default=10.0, help="weight of the patient (intermediate) loss")
    parser.add_argument("--pkd_mapping", choices=("skip", "last"), default="skip",
                        help="teacher layers the student's [CLS] states follow (paper: PKD-Skip / PKD-Last)")
    parser.add_argument("--pkd_variant", choices=("paper", "original"), default="paper",
                        help="paper: normalised [CLS] distance; original: the OneFlow original's full-sequence "
                             "MSE through fit_dense on uniformly spaced teacher layers")
    parser.add_argument("--teacher_mode", choices=("cached", "online"), default="cached",
                        help="cached: teacher outputs computed once per dataset and reused; online: every step")
    add_bool(parser, "--refresh_teacher_cache", False, "recompute cached teacher outputs")
    parser.set_defaults(temperature=2.0)
    return parser


def _pkd_layers(variant: str, mapping: str, student_layers: int, teacher_layers: int):
    """(student hidden-state indices, teacher hidden-state indices) the intermediate loss compares."""
    try:
        if variant == "paper":
            pairs = pkd_mapping(student_layers, teacher_layers, mapping)
        else:
            pairs = uniform_mapping(student_layers, teacher_layers)
    except ValueError as exc:
        fail(str(exc))
    return [s for s, _ in pairs], [t for _, t in pairs]


def run_pkd(args) -> dict:
    seed_everything(args.seed)
    settings = from_flags(TrainSettings, args)
    for name in ("kd_alpha",):
        if not 0.0 <= getattr(args, name) <= 1.0:
            fail(f"--{name} must be in [0, 1], got {getattr(args, name)}")
    if args.temperature <= 0:
        fail(f"--temperature must be positive, got {args.temperature}")
    output_dir = args.model_save_dir or os.path.join("output", f"student-pkd-{args.task_name}")
    result, snapshot = {}, args.student_model
    if args.do_train:
        if not args.teacher_model:
            fail("--teacher_model is required for training")
        teacher_dir = resolve_model_dir(args.teacher_model)
        vocab = find_vocab(teacher_dir, args.vocab_file)
        data = load_task_data(from_flags(DataSettings, args), vocab)
        teacher, t_config, _ = load_classifier(teacher_dir, len(data.labels))
        student, s_config = build_student(from_flags(StudentSettings, args), len(data.labels), teacher_dir)
        s_layers, t_layers = _pkd_layers(args.pkd_variant, args.pkd_mapping, s_config.num_hidden_layers,
                                         t_config.num_hidden_layers)
        teacher = distributed.setup_model(teacher, args.device)
        student = distributed.setup_model(student, args.device)
        cls_layers = t_layers if args.pkd_variant == "paper" else ()
        hidden_layers = t_layers if args.pkd_variant == "original" else ()
        if args.pkd_variant == "paper":
            objective = PKDObjective(student, s_layers, args.temperature, args.kd_alpha, args.kd_beta)
        else:
            objective = PKDSequenceMSEObjective(student, s_layers, t_config.hidden_size, args.temperature,
                                                args.kd_alpha, args.kd_beta)
            objective = distributed.setup_model(objective, args.device)
        train = data.loader("train", args.batch_size_per_device, train=True, seed=args.seed)
        if args.teacher_mode == "online":
            objective = WithOnlineTeacher(objective, TeacherTargets(teacher, cls_layers, hidden_layers))
        else:
            ordered = data.loader("train", args.eval_batch_size_per_device, train=False, seed=args.seed,
                                  rank=0, world_size=1)
            arrays, where, hit = cached_teacher_outputs(
                teacher_dir, teacher, ordered, ordered.meta, os.path.join(args.data_dir, "teacher_cache"),
                cls_layers, hidden_layers, eager=args.eager, refresh=args.refresh_teacher_cache)
            print(f"[pkd] teacher outputs {'reused from' if hit else 'cached in'} {where}", file=sys.stderr)
            train = WithCachedTargets(train, arrays)
        dev = data.loader("dev", args.eval_batch_size_per_device, train=False, seed=args.seed, rank=0, world_size=1)
        save_module = student if args.serve_for_online else objective
        loop = fit_classifier(settings, objective, student, train, dev, vocab, output_dir, save_module=save_module,
                              meta={"labels": data.labels, "role": "student-pkd", "teacher": teacher_dir,
                                    "student_layers": s_layers, "teacher_layers": t_layers,
                                    "serve_for_online": bool(args.serve_for_online)})
        snapshot, result["train"] = loop.best_snapshot, loop
    if args.do_eval:
        if not snapshot:
            fail("--do_eval without --do_train needs --student_model")
        snap_dir = resolve_model_dir(snapshot)
        vocab = find_vocab(snap_dir, args.vocab_file)
        data = load_task_data(from_flags(DataSettings, args), vocab)
        result["eval"] = evaluate_and_report(settings, flags_of(args), snap_dir, data,
                                             args.result_dir or output_dir, "student-pkd")
    result["snapshot"] = snapshot
    return result


def pkd_main(argv=None) -> None:
    run_pkd(normalise_aliases(pkd_parser().parse_args(argv)))


# ----------------------------------------------------------------------------------------------
# a same-size student trained on hard labels only (the baseline the demo compares against)


def run_no_teacher(args) -> dict:
    """Plain fine-tuning of a student (no teacher signal), reusing the KD flags."""
    seed_everything(args.seed)
    settings = from_flags(TrainSettings, args)
    reference = resolve_model_dir(args.student_model)
    vocab = find_vocab(reference, args.vocab_file)
    data = load_task_data(from_flags(DataSettings, args), vocab)
    output_dir = args.model_save_dir or os.path.join("output", f"student-ce-{args.task_name}")
    model, _ = build_student(from_flags(StudentSettings, args), len(data.labels), reference)
    model = distributed.setup_model(model, args.device)
    train = data.loader("train", args.batch_size_per_device, train=True, seed=args.seed)
    dev = data.loader("dev", args.eval_batch_size_per_device, train=False, seed=args.seed, rank=0, world_size=1)
    loop = fit_classifier(settings, ClassificationObjective(model), model, train, dev, vocab, output_dir,
                          meta={"labels": data.labels, "role": "student-no-teacher"})
    return {"train": loop, "snapshot": loop.best_snapshot,
            "eval": evaluate_and_report(settings, flags_of(args), loop.best_snapshot, data,
                                        args.result_dir or output_dir, "student-no-teacher")}
