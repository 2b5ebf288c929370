"""Meta-KD step 4 (meta_distill.py): stage 1 intermediate and stage 2 soft-label distillation, or vanilla KD."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from collections.abc import Sequence

import numpy as np

from model_compress.cli import add_bool, add_data_args, add_train_args, fail, normalise_aliases, user_errors
from model_compress.data.tokenization import load_vocab
from model_compress.distill.metakd import (
    TEACHER_ARRAYS,
    MetaDistillFirstStage,
    MetaDistillSecondStage,
    RowSubset,
    student_init_layers,
)
from model_compress.distill.objectives import VanillaKDObjective
from model_compress.jobs import mft
from model_compress.jobs.common import (
    DEFAULT_MODEL,
    TaskData,
    flags_of,
    load_classifier,
    save_classifier,
    snapshot_in,
    write_results,
)
from model_compress.jobs.metakd.shared import (
    ALL_GENRES,
    STAGES,
    add_attention_flag,
    best_metrics,
    dev_source,
    domain_names,
    ensure_teacher_dump,
    fit,
    genre_id,
    note,
    prepare,
    teacher_layers,
)
from model_compress.jobs.pipelines import mft as mft_runs
from model_compress.jobs.pipelines.student import build_student
from model_compress.jobs.settings import StudentSettings, TrainSettings, from_flags
from model_compress.modeling.bert import BertForSequenceClassification
from model_compress.modeling.checkpoint import SNAPSHOT_JSON, load_state_into, module_state_numpy
from model_compress.modeling.config import BertConfig
from model_compress.modeling.slicing import slice_layers
from model_compress.training import distributed
from model_compress.training.domains import make_domain_evaluator, per_domain
from model_compress.training.graph import graph_free_copy
from model_compress.training.sources import WithCachedTargets

# ----------------------------------------------------------------------------------------------
# meta_distill.py


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
    g.add_argument("--temperature", "--T", dest="temperature", type=float, default=2.0,
                   help="softmax temperature of the soft labels (stage 2 and vanilla)")
    g.add_argument("--domain_loss_weight", type=float, default=0.5, help="weight of the domain-knowledge MSE")
    add_bool(g, "--use_sample_weights", True, "stage 1: weight each example by its domain-expertise weight")
    add_bool(g, "--weight_soft_loss", False, "stage 2: weight the soft-label loss by the domain-expertise weight")
    g.add_argument("--first_stage_epochs", type=float, default=0,
                   help="epochs of stage 1 under --distill_stage all (0: --num_epochs)")
    g.add_argument("--alpha", type=float, default=0.5, help="vanilla stage: weight of the soft-label loss")
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


FIRST_STAGE_ROLE = "meta-student-first"


def first_stage_snapshot(output_dir: str, genre: str) -> str:
    return os.path.join(output_dir, f"snapshot_meta_student_first_{genre}")


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
    given = snapshot_in(mft.resolve_model(student_model)) if student_model else None
    if given and _is_first_stage_student(given):
        return given
    if os.path.isdir(own) and _is_first_stage_student(own):
        if given:
            note(f"--distill_stage second continues the stage-1 student {own}; --student_model {student_model} "
                 "(the start of stage 1) is not used")
        return own
    if given:
        fail(f"--distill_stage second continues a stage-1 student, but --student_model {student_model} is not "
             f"one (no {own} either): run --distill_stage first (or all) with the same --model_save_dir first")
    fail(f"--distill_stage second needs the stage-1 student: run --distill_stage first with the same "
         f"--model_save_dir, or pass its snapshot as --student_model (looked for {own})")
    raise AssertionError


def build_meta_student(spec: StudentSettings, stage: str, data: TaskData, reference_dir: str, source: str | None
                       ) -> tuple[BertForSequenceClassification, BertConfig, str]:
    """The student: from scratch, or loaded from `source` and sliced to its layers k*i+k-1 when deeper.

    Returns (model, config, a description of where it came from).
    """
    if spec.from_scratch:
        if spec.student_num_hidden_layers < 1:
            fail("--from_scratch needs --student_num_hidden_layers >= 1")
        model, config = build_student(dataclasses.replace(spec, student_model=source), len(data.labels),
                                      reference_dir)
        return model, config, "random"
    source_dir = snapshot_in(mft.resolve_model(source))
    _check_vocab(source_dir, data.tokenizer.vocab)
    model, config, _ = load_classifier(source_dir, len(data.labels), student=True)
    # stage 2 continues the stage-1 student whatever its depth
    wanted = 0 if stage == "second" else spec.student_num_hidden_layers
    if wanted < 0:
        fail(f"--student_num_hidden_layers must be >= 0, got {wanted}")
    if wanted > config.num_hidden_layers:
        fail(f"--student_num_hidden_layers {wanted}: {source_dir} has only {config.num_hidden_layers} layers")
    if 0 < wanted < config.num_hidden_layers:
        layers = student_init_layers(wanted, config.num_hidden_layers)
        state, config = slice_layers(module_state_numpy(model), config, layers)
        model = BertForSequenceClassification(config)
        load_state_into(model, state, verbose=False)
        note(f"student: layers {','.join(map(str, layers))} of {source_dir} ({len(layers)} layers)")
        return model, config, f"{source_dir} layers {','.join(map(str, layers))}"
    return model, config, source_dir


def _check_vocab(student_dir: str, teacher_vocab: dict[str, int]) -> None:
    """The student reads the teacher's token ids: a vocab.txt stored with the student must match."""
    path = os.path.join(student_dir, "vocab.txt") if os.path.isdir(student_dir) else ""
    if not os.path.isfile(path):
        return
    if load_vocab(path) != teacher_vocab:
        fail(f"{path} differs from the teacher's vocabulary: the student must read the same token ids")


def _check_pair(student: BertConfig, teacher: BertConfig) -> None:
    if student.num_attention_heads != teacher.num_attention_heads:
        fail(f"the attention loss compares heads one to one: the student has {student.num_attention_heads} "
             f"heads, the teacher {teacher.num_attention_heads}")
    if student.num_hidden_layers > teacher.num_hidden_layers:
        fail(f"a {student.num_hidden_layers}-layer student cannot learn from a "
             f"{teacher.num_hidden_layers}-layer teacher's layers")


def _genre_rows(loader, genre: str, domains: Sequence[str]) -> np.ndarray:
    gid = genre_id(genre, domains)
    rows = np.arange(loader.num_records) if gid is None else np.flatnonzero(loader.arrays["domain"] == gid)
    if len(rows) == 0:
        fail(f"the training split has no example of domain {genre}")
    return rows


def run_meta_distill(args) -> dict:
    """Train (and evaluate per domain) the Meta-KD student of one genre, or its vanilla-KD twin."""
    if args.temperature <= 0:
        fail(f"--temperature must be positive, got {args.temperature}")
    if not 0.0 <= args.alpha <= 1.0:
        fail(f"--alpha must be in [0, 1], got {args.alpha}")
    if args.domain_loss_weight < 0:
        fail(f"--domain_loss_weight must be >= 0, got {args.domain_loss_weight}")
    if args.do_train and not args.teacher_model:
        fail("--teacher_model is required for training (the meta_teacher.py snapshot)")
    output_dir = args.model_save_dir or os.path.join("output", f"meta_distill-{args.task_name}-{args.genre}")
    stage = args.distill_stage
    student_source = _second_stage_source(args.student_model, output_dir, args.genre) if stage == "second" \
        else args.student_model
    model_path = args.teacher_model if args.do_train else (student_source or DEFAULT_MODEL)
    inputs = prepare(args, model_path, ("train", "dev"), student=not args.do_train)
    model_dir, vocab, data = inputs.model_dir, inputs.vocab, inputs.data
    flags = flags_of(args, data_dir=inputs.data_dir)
    settings = from_flags(TrainSettings, args)
    domains = domain_names(data)
    genre_id(args.genre, domains)
    dev = dev_source(data, settings)
    result: dict = {"output_dir": output_dir}
    snapshot = snapshot_in(mft.resolve_model(student_source)) if student_source else None
    student = None
    if args.do_train:
        teacher, t_config, _ = load_classifier(model_dir, len(data.labels), verbose=False)
        student, s_config, init = build_meta_student(from_flags(StudentSettings, args), stage, data, model_dir,
                                                     student_source)
        _check_pair(s_config, t_config)
        dump, dump_dir = ensure_teacher_dump(settings, args.dump_dir, model_dir, teacher, t_config, data,
                                             s_config.num_hidden_layers, refresh=args.refresh_teacher_cache,
                                             attention=args.attention_loss)
        del teacher
        count = len(data.examples["train"])
        scores = mft_runs.load_weights(inputs.data_dir, count)
        loader = data.loader("train", args.batch_size_per_device, train=True, seed=args.seed, with_domain=True,
                             weights=scores)
        mft_runs.keep_weights(inputs.data_dir, scores)
        try:
            source = RowSubset(loader, _genre_rows(loader, args.genre, domains))
        except ValueError as exc:
            fail(f"--genre {args.genre}: {exc}")
        student = distributed.setup_model(student, args.device)
        meta = {"labels": data.labels, "domains": domains, "genre": args.genre, "teacher": model_dir,
                "dump": dump_dir, "student_init": init}
        result.update(dump_dir=dump_dir, student_init=init, examples=len(source.rows))
        if stage in ("first", "all"):
            epochs = (args.first_stage_epochs or args.num_epochs) if stage == "all" else args.num_epochs
            attention, hidden = teacher_layers(s_config.num_hidden_layers, t_config)
            objective = distributed.setup_model(MetaDistillFirstStage(
                student, t_config.hidden_size, len(domains), attention, hidden, args.domain_loss_weight,
                args.use_sample_weights, args.attention_loss), args.device)
            train = WithCachedTargets(source, {name: dump[name] for name in TEACHER_ARRAYS})
            loop = fit(dataclasses.replace(settings, num_epochs=epochs), objective, student, train, None, vocab,
                       output_dir, lambda m: "", meta)
            snapshot = save_classifier(student, first_stage_snapshot(output_dir, args.genre), s_config, vocab,
                                       {"task": args.task_name, "role": FIRST_STAGE_ROLE, **meta,
                                        "final_loss": loop.final_loss, "epochs": epochs})
            distributed.barrier()
            result["first"] = loop
            note(f"stage 1 ({args.genre}, {len(source.rows)} examples, {loop.steps} steps, final loss "
                  f"{loop.final_loss:.4f}): student in {snapshot}")
        if stage == "all":  # stage 2 compiles a new TrainGraph: it needs a module no graph has seen
            student = distributed.setup_model(graph_free_copy(student), args.device)
        if stage in ("second", "all", "vanilla"):
            if stage == "vanilla":
                objective = VanillaKDObjective(student, args.temperature, args.alpha)
                name, role = "kd", "vanilla-kd-student"
            else:
                objective = MetaDistillSecondStage(student, args.temperature, args.weight_soft_loss)
                name, role = "meta", "meta-kd-student"
            train = WithCachedTargets(source, {"teacher_logits": dump["teacher_logits"]})
            genre = args.genre
            loop = fit(settings, objective, student, train,
                        make_domain_evaluator(student, dev, domains, genre, args.eager), vocab, output_dir,
                        lambda m: f"snapshot_best_{name}_student_{genre}_dev_{m['accuracy']}",
                        {**meta, "role": role})
            snapshot, result["train"] = loop.best_snapshot, loop
            result["eval"] = metrics = best_metrics(loop)
            if distributed.rank() == 0:
                _report(flags, args.result_dir or output_dir, args.genre, metrics, student, snapshot,
                        domains, {"role": role, "stage": stage, "best_step": loop.best_step,
                         "train_seconds": loop.train_seconds, **meta})
    elif args.do_eval:
        if not snapshot:
            fail("--do_eval without --do_train needs --student_model")
        student, _, _ = load_classifier(snapshot, len(data.labels), student=True)
        student = distributed.setup_model(student, args.device)
        result["eval"] = metrics = make_domain_evaluator(student, dev, domains, args.genre, args.eager)()
        if distributed.rank() == 0:
            _report(flags, args.result_dir or output_dir, args.genre, metrics, student, snapshot,
                    domains, {"role": "student-eval"})
    result["snapshot"] = snapshot
    return result


def results_name(genre: str) -> str:
    return f"results_eval_{genre}.json"


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


@user_errors
def distill_main(argv=None) -> None:
    run_meta_distill(normalise_aliases(distill_parser().parse_args(argv)))


