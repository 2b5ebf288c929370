"""Meta-KD step 4: stage 1 intermediate distillation weighted by the domain-expertise weight, stage 2 soft
labels at temperature T (or vanilla KD of the same student) from the meta-teacher's dump, for one domain.

Entry: model_compress/metakd/meta_distill.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from collections.abc import Sequence

import numpy as np

from model_compress import cli
from model_compress.cli import (
    add_bool,
    add_data_args,
    add_train_args,
    normalise_aliases,
    user_errors,
)
from model_compress.distill.intermediate import check_heads
from model_compress.distill.mapping import student_init_layers
from model_compress.distill.metakd import TEACHER_ARRAYS, MetaDistillFirstStage, MetaDistillSecondStage
from model_compress.distill.objectives import VanillaKDObjective
from model_compress.errors import RecipeError
from model_compress.modeling.bert import BertForSequenceClassification
from model_compress.modeling.checkpoint import SNAPSHOT_JSON
from model_compress.modeling.config import BertConfig
from model_compress.modeling.pretrained import DEFAULT as DEFAULT_MODEL
from model_compress.modeling.resolve import resolve_model
from model_compress.modeling.slicing import slice_model
from model_compress.recipes import settings as cfg
from model_compress.recipes.common import (
    TaskData,
    check_same_vocab,
    fit_objective,
    flags_of,
    load_classifier,
    save_classifier,
    write_results,
)
from model_compress.recipes.inputs import prepare_inputs
from model_compress.recipes.metakd import shared as meta_runs
from model_compress.recipes.metakd.shared import ALL_GENRES, STAGES, add_attention_flag
from model_compress.recipes.metakd.teacher import ensure_teacher_dump
from model_compress.recipes.mft import keep_weights, load_weights
from model_compress.recipes.settings import (
    DataSettings,
    MetaKDSettings,
    RunSettings,
    StudentSettings,
    TeacherDumpSettings,
    TrainSettings,
    from_flags,
)
from model_compress.recipes.student import build_student
from model_compress.training import distributed
from model_compress.training.domains import make_domain_evaluator, per_domain
from model_compress.training.graph import graph_free_copy
from model_compress.training.sources import RowSubset, WithCachedTargets

FIRST_STAGE_ROLE = "meta-student-first"


def first_stage_snapshot(output_dir: str, genre: str) -> str:
    return os.path.join(output_dir, f"snapshot_meta_student_first_{genre}")


def results_name(genre: str) -> str:
    return f"results_eval_{genre}.json"


def _is_first_stage_student(path: str) -> bool:
    info = os.path.join(path, SNAPSHOT_JSON)
    if not os.path.isfile(info):
        return False
    try:
        with open(info, encoding="utf-8") as f:
            return (json.load(f).get("meta") or {}).get("role") == FIRST_STAGE_ROLE
    except (OSError, ValueError):
        return False


def _second_stage_source(student_model: str | None, output_dir: str, genre: str) -> str:
    """Stage 2 continues stage 1's student: this run's stage-1 snapshot, or a --student_model that is one.

    The seed passes the pretrained start of stage 1 as --student_model; when this output folder holds a
    stage-1 snapshot that one is taken (and said so), otherwise such a --student_model is refused.
    """
    own = first_stage_snapshot(output_dir, genre)
    given = resolve_model(student_model) if student_model else None
    if given and _is_first_stage_student(given):
        return given
    if os.path.isdir(own) and _is_first_stage_student(own):
        if given:
            meta_runs.log.info(f"--distill_stage second continues the stage-1 student {own}; "
                           f"--student_model {student_model} (the start of stage 1) is not used")
        return own
    if given:
        raise RecipeError(f"--distill_stage second continues a stage-1 student, but --student_model "
                          f"{student_model} is not "
                          f"one (no {own} either): run --distill_stage first (or all) with the same "
                          "--model_save_dir first")
    raise RecipeError(f"--distill_stage second needs the stage-1 student: run --distill_stage first with the same "
                      f"--model_save_dir, or pass its snapshot as --student_model (looked for {own})")


def build_meta_student(spec: cfg.StudentSettings, stage: str, data: TaskData, reference_dir: str, source: str | None
                       ) -> tuple[BertForSequenceClassification, BertConfig, str]:
    """The student: from scratch, or loaded from `source` and sliced to its layers k*i+k-1 when deeper.

    Returns (model, config, a description of where it came from).
    """
    if spec.from_scratch:
        if spec.student_num_hidden_layers < 1:
            raise RecipeError("--from_scratch needs --student_num_hidden_layers >= 1")
        model, config = build_student(dataclasses.replace(spec, student_model=source), len(data.labels),
                                      reference_dir)
        return model, config, "random"
    source_dir = resolve_model(source)
    check_same_vocab(source_dir, data.tokenizer.vocab, "the teacher")
    model, config, _ = load_classifier(source_dir, len(data.labels), student=True)
    # stage 2 continues the stage-1 student whatever its depth
    wanted = 0 if stage == "second" else spec.student_num_hidden_layers
    if wanted < 0:
        raise RecipeError(f"--student_num_hidden_layers must be >= 0, got {wanted}")
    if wanted > config.num_hidden_layers:
        raise RecipeError(f"--student_num_hidden_layers {wanted}: {source_dir} has only "
                          f"{config.num_hidden_layers} layers")
    if 0 < wanted < config.num_hidden_layers:
        layers = student_init_layers(wanted, config.num_hidden_layers)
        model, config = slice_model(model, layers)
        meta_runs.log.info(f"student: layers {','.join(map(str, layers))} of {source_dir} ({len(layers)} layers)")
        return model, config, f"{source_dir} layers {','.join(map(str, layers))}"
    return model, config, source_dir


def _check_pair(student: BertConfig, teacher: BertConfig) -> None:
    try:
        check_heads(student.num_attention_heads, teacher.num_attention_heads)
    except ValueError as exc:
        raise RecipeError(str(exc)) from None
    if student.num_hidden_layers > teacher.num_hidden_layers:
        raise RecipeError(f"a {student.num_hidden_layers}-layer student cannot learn from a "
                          f"{teacher.num_hidden_layers}-layer teacher's layers")


def _genre_rows(loader, genre: str, domains: Sequence[str]) -> np.ndarray:
    gid = meta_runs.genre_id(genre, domains)
    rows = np.arange(loader.num_records) if gid is None else np.flatnonzero(loader.arrays["domain"] == gid)
    if len(rows) == 0:
        raise RecipeError(f"the training split has no example of domain {genre}")
    return rows


def meta_distill(
    run: cfg.RunSettings, data_settings: cfg.DataSettings, settings: cfg.TrainSettings, spec: cfg.StudentSettings,
    kd: cfg.MetaKDSettings, dump_settings: cfg.TeacherDumpSettings,
) -> dict:
    """Train (and evaluate per domain) the Meta-KD student of one genre, or its vanilla-KD twin."""
    output_dir = run.model_save_dir or os.path.join("output", f"meta_distill-{settings.task_name}-{kd.genre}")
    stage = kd.distill_stage
    student_source = _second_stage_source(spec.student_model, output_dir, kd.genre) if stage == "second" \
        else spec.student_model
    model_path = kd.teacher_model if run.do_train else (student_source or DEFAULT_MODEL)
    inputs = prepare_inputs(data_settings, settings.seed, model_path, run.vocab_file, ("train", "dev"),
                            student=not run.do_train)
    model_dir, vocab, data = inputs.model_dir, inputs.vocab, inputs.data
    flags = {**run.flags, "data_dir": inputs.data_dir}
    domains = meta_runs.domain_names(data)
    meta_runs.genre_id(kd.genre, domains)
    dev = meta_runs.dev_source(data, settings)
    result: dict = {"output_dir": output_dir}
    snapshot = resolve_model(student_source) if student_source else None
    student = None
    if run.do_train:
        teacher, t_config, _ = load_classifier(model_dir, len(data.labels), verbose=False)
        student, s_config, init = build_meta_student(spec, stage, data, model_dir, student_source)
        _check_pair(s_config, t_config)
        dump, dump_dir = ensure_teacher_dump(
            settings, dump_settings.dump_dir, model_dir, teacher, t_config, data, s_config.num_hidden_layers,
            refresh=dump_settings.refresh_teacher_cache, attention=dump_settings.attention_loss)
        del teacher
        count = len(data.examples["train"])
        scores = load_weights(inputs.data_dir, count)
        loader = data.loader("train", run.batch_size_per_device, train=True, seed=settings.seed, with_domain=True,
                             weights=scores)
        keep_weights(inputs.data_dir, scores)
        try:
            source = RowSubset(loader, _genre_rows(loader, kd.genre, domains))
        except ValueError as exc:
            raise RecipeError(f"--genre {kd.genre}: {exc}") from None
        student = distributed.setup_model(student, settings.device)
        meta = {"labels": data.labels, "domains": domains, "genre": kd.genre, "teacher": model_dir,
                "dump": dump_dir, "student_init": init}
        result.update(dump_dir=dump_dir, student_init=init, examples=len(source.rows))
        if stage in ("first", "all"):
            epochs = (kd.first_stage_epochs or settings.num_epochs) if stage == "all" else settings.num_epochs
            attention, hidden = meta_runs.teacher_layers(s_config.num_hidden_layers, t_config)
            objective = distributed.setup_model(MetaDistillFirstStage(
                student, t_config.hidden_size, len(domains), attention, hidden, kd.domain_loss_weight,
                kd.use_sample_weights, dump_settings.attention_loss), settings.device)
            train = WithCachedTargets(source, {name: dump[name] for name in TEACHER_ARRAYS})
            loop = fit_objective(dataclasses.replace(settings, num_epochs=epochs), objective, student, train, None,
                                 vocab, output_dir, lambda m: "", meta=meta)
            snapshot = save_classifier(student, first_stage_snapshot(output_dir, kd.genre), s_config, vocab,
                                       {"task": settings.task_name, "role": FIRST_STAGE_ROLE, **meta,
                                        "final_loss": loop.final_loss, "epochs": epochs})
            distributed.barrier()
            result["first"] = loop
            meta_runs.log.info(f"stage 1 ({kd.genre}, {len(source.rows)} examples, {loop.steps} steps, final loss "
                           f"{loop.final_loss:.4f}): student in {snapshot}")
        if stage == "all":  # stage 2 compiles a new TrainGraph: it needs a module no graph has seen
            student = distributed.setup_model(graph_free_copy(student), settings.device)
        if stage in ("second", "all", "vanilla"):
            if stage == "vanilla":
                objective = VanillaKDObjective(student, kd.temperature, kd.alpha)
                name, role = "kd", "vanilla-kd-student"
            else:
                objective = MetaDistillSecondStage(student, kd.temperature, kd.weight_soft_loss)
                name, role = "meta", "meta-kd-student"
            train = WithCachedTargets(source, {"teacher_logits": dump["teacher_logits"]})
            genre = kd.genre
            loop = fit_objective(settings, objective, student, train,
                                 make_domain_evaluator(student, dev, domains, genre, settings.eager), vocab, output_dir,
                                 lambda m: f"snapshot_best_{name}_student_{genre}_dev_{m['accuracy']}",
                                 meta={**meta, "role": role})
            snapshot, result["train"] = loop.best_snapshot, loop
            result["eval"] = metrics = loop.best_metrics()
            if distributed.rank() == 0:
                _report(flags, run.result_dir or output_dir, kd.genre, metrics, student, snapshot,
                        domains, {"role": role, "stage": stage, "best_step": loop.best_step,
                                  "train_seconds": loop.train_seconds, **meta})
    elif run.do_eval:
        if not snapshot:
            raise RecipeError("--do_eval without --do_train needs --student_model")
        student, _, _ = load_classifier(snapshot, len(data.labels), student=True)
        student = distributed.setup_model(student, settings.device)
        result["eval"] = metrics = make_domain_evaluator(student, dev, domains, kd.genre, settings.eager)()
        if distributed.rank() == 0:
            _report(flags, run.result_dir or output_dir, kd.genre, metrics, student, snapshot,
                    domains, {"role": "student-eval"})
    result["snapshot"] = snapshot
    return result


def _report(flags: dict, result_dir: str, genre: str, metrics: dict, model, snapshot: str | None,
            domains: Sequence[str], extra: dict) -> str:
    """results_eval_<genre>.json (per-domain accuracy included) and a one-line summary."""
    path = write_results(result_dir, metrics, flags, model, snapshot,
                         {"genre": genre, "per_domain": per_domain(metrics, domains), **extra},
                         name=results_name(genre))
    shown = ", ".join(f"{d} {a:.4f}" for d, a in per_domain(metrics, domains).items())
    print(f"[metakd] {extra.get('role')} ({genre}): dev accuracy {metrics['accuracy']:.4f} ({shown}); "
          f"snapshot {snapshot}; results in {path}")
    return path


def distill_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Meta-KD step 4: distil the meta-teacher into a student for one "
                                                 "domain (stage 1 intermediate layers, stage 2 soft labels).",
                                     allow_abbrev=False)
    add_data_args(parser)
    add_train_args(parser, epochs=3, lr=5e-5)
    g = parser.add_argument_group("meta distillation")
    g.add_argument("--teacher_model", default=None, help="the meta-teacher snapshot (meta_teacher.py)")
    g.add_argument("--distill_stage", choices=STAGES, default="all",
                   help="first: attention/hidden/domain MSE; second: soft labels at T; all: first then second; "
                        "vanilla: the same student trained with plain KD (baseline)")
    g.add_argument("--genre", default=ALL_GENRES, help="train on this domain only (books, dvd, ...) or all")
    g.add_argument("--temperature", "--T", dest="temperature", type=cli.finite_number, default=2.0,
                   help="softmax temperature of the soft labels (stage 2 and vanilla)")
    g.add_argument("--domain_loss_weight", type=cli.finite_number, default=0.5,
                   help="weight of the domain-knowledge MSE")
    add_bool(g, "--use_sample_weights", True, "stage 1: weight each example by its domain-expertise weight")
    add_bool(g, "--weight_soft_loss", False, "stage 2: weight the soft-label loss by the domain-expertise weight")
    g.add_argument("--first_stage_epochs", type=cli.finite_number, default=0,
                   help="epochs of stage 1 under --distill_stage all (0: --num_epochs)")
    g.add_argument("--alpha", type=cli.finite_number, default=0.5, help="vanilla stage: weight of the soft-label loss")
    g.add_argument("--dump_dir", default=None, help="the teacher dump (default: found by key, made if missing)")
    add_bool(g, "--refresh_teacher_cache", False, "recompute the teacher dump")
    add_attention_flag(g)
    s = parser.add_argument_group("student")
    s.add_argument("--student_model", default=None,
                   help="snapshot the student starts from (default: the pretrained model sliced to "
                        "--student_num_hidden_layers; stage second: this run's stage-1 snapshot)")
    s.add_argument("--student_num_hidden_layers", type=int, default=3,
                   help="student depth; a deeper --student_model keeps its layers k*i+k-1 (0: keep all; "
                        "stage second keeps the stage-1 student as it is)")
    add_bool(s, "--from_scratch", False, "random student of --student_num_hidden_layers layers instead")
    s.add_argument("--student_hidden_size", type=int, default=0, help="--from_scratch width (0: as the model)")
    s.add_argument("--student_num_attention_heads", type=int, default=0)
    s.add_argument("--student_intermediate_size", type=int, default=0)
    parser.set_defaults(task_name="senti", data_dir="data/SENTI", do_train=True, do_eval=True)
    return parser


def run_meta_distill(args: argparse.Namespace) -> dict:
    """Train (and evaluate per domain) the Meta-KD student of one genre, or its vanilla-KD twin."""
    if args.temperature <= 0:
        raise RecipeError(f"--temperature must be positive, got {args.temperature}")
    if not 0.0 <= args.alpha <= 1.0:
        raise RecipeError(f"--alpha must be in [0, 1], got {args.alpha}")
    if args.domain_loss_weight < 0:
        raise RecipeError(f"--domain_loss_weight must be >= 0, got {args.domain_loss_weight}")
    if args.do_train and not args.teacher_model:
        raise RecipeError("--teacher_model is required for training (the meta_teacher.py snapshot)")
    return meta_distill(from_flags(RunSettings, args, flags=flags_of(args)), from_flags(DataSettings, args),
                        from_flags(TrainSettings, args), from_flags(StudentSettings, args),
                        from_flags(MetaKDSettings, args), from_flags(TeacherDumpSettings, args))


@user_errors
def distill_main(argv=None) -> None:
    run_meta_distill(normalise_aliases(distill_parser().parse_args(argv)))
