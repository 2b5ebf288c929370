"""Meta-KD steps 1-3: prototypical scores (preprocess), the meta-teacher (sample-weighted CE + domain
corruption over all domains) and its dump (logits, mapped attention maps, hidden states and domain
representation of every training example, written once), and the teacher's evaluation.

Entries: model_compress/metakd/preprocess.py, meta_teacher.py, meta_teacher_eval.py.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from model_compress.cli import (
    add_bool,
    add_data_args,
    add_train_args,
    normalise_aliases,
    note_ignored,
    user_errors,
)
from model_compress.distill.meta import DomainCorruptionHead, MetaFineTuningObjective, WithShuffledDomains
from model_compress.distill.metakd import MetaTeacherOutputs
from model_compress.distill.metakd_dump import DUMP_KIND, dump_table, write_teacher_dump
from model_compress.distill.teacher_cache import cache_key, cache_source, checked_cache, load_cache
from model_compress.errors import RecipeError
from model_compress.modeling.config import BertConfig
from model_compress.modeling.pretrained import DEFAULT as DEFAULT_MODEL
from model_compress.recipes import mft
from model_compress.recipes.common import (
    TaskData,
    fit_objective,
    flags_of,
    load_classifier,
    write_results,
)
from model_compress.recipes.inputs import prepare_inputs, stamp_dir
from model_compress.recipes.metakd.shared import (
    ALL_GENRES,
    add_attention_flag,
    dev_source,
    domain_names,
    log,
    optional_weights,
    teacher_layers,
)
from model_compress.recipes.settings import (
    DataSettings,
    MetaTeacherSettings,
    RunSettings,
    TeacherDumpSettings,
    TrainSettings,
    from_flags,
)
from model_compress.training import distributed
from model_compress.training.domains import make_domain_evaluator, per_domain
from model_compress.training.sources import WithUnitWeights


def train_meta_teacher(
    run: RunSettings, data_settings: DataSettings, settings: TrainSettings, meta: MetaTeacherSettings,
    model_load_dir: str | None,
) -> dict:
    """MFT-style meta-teacher on every domain; keeps the best-dev snapshot and reports accuracy per domain.

    Without `run.do_train` the snapshot at `model_load_dir` is evaluated per domain instead.
    """
    inputs = prepare_inputs(data_settings, settings.seed, model_load_dir, run.vocab_file, ("train", "dev"))
    model_dir, vocab, data = inputs.model_dir, inputs.vocab, inputs.data
    flags = {**run.flags, "data_dir": inputs.data_dir}
    domains = domain_names(data)
    output_dir = stamp_dir(run.model_save_dir)  # the seed's output/model_save-<time>
    dev = dev_source(data, settings)
    if not run.do_train:
        model, _, _ = load_classifier(model_dir, len(data.labels))
        model = distributed.setup_model(model, settings.device)
        metrics = make_domain_evaluator(model, dev, domains, ALL_GENRES, settings.eager)()
        path = write_results(run.result_dir or output_dir, metrics, flags, model, model_dir,
                             {"role": "meta-teacher", "per_domain": per_domain(metrics, domains)})
        print(f"[metakd] meta-teacher dev accuracy {metrics['accuracy']:.4f}; results in {path}")
        return {"eval": metrics, "snapshot": model_dir}
    count = len(data.examples["train"])
    scores = mft.load_weights(inputs.data_dir, count) if meta.use_sample_weights else \
        optional_weights(inputs.data_dir, count)
    model, config, _ = load_classifier(model_dir, len(data.labels))
    layers = mft.choose_layers(meta.layer_indexes, config.num_hidden_layers)
    model = distributed.setup_model(model, settings.device)
    head = distributed.setup_model(
        DomainCorruptionHead(config.hidden_size, len(domains), layers, config.initializer_range), settings.device)
    weight = meta.domain_loss_weight if meta.use_domain_loss else 0.0
    objective = MetaFineTuningObjective(model, head, weight)
    train = data.loader("train", run.batch_size_per_device, train=True, seed=settings.seed, with_domain=True,
                        weights=scores)
    if scores is not None:
        mft.keep_weights(inputs.data_dir, scores)
    if not meta.use_sample_weights:
        train = WithUnitWeights(train)
    train = WithShuffledDomains(train, seed=settings.seed)
    task = settings.task_name
    choices = {"use_sample_weights": bool(meta.use_sample_weights), "use_domain_loss": bool(meta.use_domain_loss),
               "domain_loss_weight": weight, "layer_indexes": layers}
    evaluate = make_domain_evaluator(model, dev, domains, ALL_GENRES, settings.eager)
    loop = fit_objective(settings, objective, model, train, evaluate, vocab, output_dir,
                         lambda m: f"snapshot_best_mft_model_{task}_dev_{m['accuracy']}",
                         meta={"labels": data.labels, "domains": domains, "role": "meta-teacher", "init": model_dir,
                               **choices})
    metrics = loop.best_metrics()
    if distributed.rank() == 0:
        path = write_results(run.result_dir or output_dir, metrics, flags, model, loop.best_snapshot,
                             {"role": "meta-teacher", "best_step": loop.best_step, "domains": domains,
                              "per_domain": per_domain(metrics, domains), "train_seconds": loop.train_seconds,
                              **choices})
        shown = ", ".join(f"{d} {a:.4f}" for d, a in per_domain(metrics, domains).items())
        print(f"[metakd] meta-teacher best dev accuracy {metrics['accuracy']:.4f} at step {loop.best_step} "
              f"({shown}); snapshot {loop.best_snapshot}; results in {path}")
    return {"train": loop, "snapshot": loop.best_snapshot, "eval": metrics}


def dump_teacher(
    data_settings: DataSettings, settings: TrainSettings, dump: TeacherDumpSettings, model_load_dir: str | None,
    vocab_file: str | None, student_layers: int,
) -> dict:
    """The meta-teacher's dump for a `student_layers`-deep student, made unless an identical one exists."""
    inputs = prepare_inputs(data_settings, settings.seed, model_load_dir, vocab_file, ("train",))
    teacher_dir, data = inputs.model_dir, inputs.data
    teacher, config, _ = load_classifier(teacher_dir, len(data.labels))
    arrays, directory = ensure_teacher_dump(settings, dump.dump_dir, teacher_dir, teacher, config, data,
                                            student_layers, refresh=dump.refresh_teacher_cache,
                                            attention=dump.attention_loss)
    return {"arrays": arrays, "dump_dir": directory, "teacher": teacher_dir}


def ensure_teacher_dump(settings: TrainSettings, dump_dir: str | None, teacher_dir: str, teacher,
                        teacher_config: BertConfig, data: TaskData, student_layers: int, refresh: bool = False,
                        attention: str = "probs") -> tuple[dict[str, np.ndarray], str]:
    """The meta-teacher's outputs for every training example: reused when an identical dump exists, else made.

    A dump is identified by the teacher snapshot, the training split (content, seq_length, vocab,
    count) and the mapped layers; it lives in `--dump_dir` or `<data_dir>/teacher_cache/metakd-<key>`.
    Returns (arrays memory-mapped by example index, directory).
    """
    domains = domain_names(data)
    count = len(data.examples["train"])
    scores = mft.load_weights(data.data_dir, count)  # the split carries the prototypical scores
    batch = settings.eval_batch_size_per_device
    source = data.loader("train", batch, train=False, seed=settings.seed, rank=0, world_size=1, with_domain=True,
                         weights=scores)
    mft.keep_weights(data.data_dir, scores)
    attention_layers, hidden = teacher_layers(student_layers, teacher_config)
    spec = {"kind": DUMP_KIND, "attention_layers": attention_layers, "attention": attention, "hidden_layers": hidden,
            "vocab_hash": source.meta.get("vocab_hash"), "labels": data.labels, "domains": domains}
    key = cache_key(teacher_dir, source.meta, spec)
    directory = dump_dir or os.path.join(data.data_dir, "teacher_cache", f"metakd-{key}")
    if not refresh:
        found = checked_cache(directory, key, count)
        if found is not None:
            log.info(f"teacher dump reused from {directory}")
            return found, directory
    info = {"kind": DUMP_KIND, "key": key, "teacher": os.path.abspath(teacher_dir), "count": count,
            "source": cache_source(teacher_dir, source.meta),
            "seq_length": int(source.meta["seq_length"]), "source_hash": source.meta.get("source_hash"),
            "student_num_hidden_layers": student_layers, "teacher_num_hidden_layers": teacher_config.num_hidden_layers,
            **spec}
    outputs = MetaTeacherOutputs(distributed.setup_model(teacher, settings.device), attention_layers, hidden,
                                 attention)
    write_teacher_dump(directory, outputs, source, count, info, eager=settings.eager)
    arrays = load_cache(directory)
    if distributed.rank() == 0:
        print(f"[metakd] teacher dump of {count} examples in {directory} "
              f"({sum(a.nbytes for a in arrays.values()) / 2**20:.1f} MiB)")
        print(dump_table(arrays["teacher_logits"], source.arrays, domains))
    return arrays, directory


def preprocess_parser() -> argparse.ArgumentParser:
    parser = mft.preprocess_parser()
    parser.description = "Meta-KD step 1: prototypical score of every training example across the domains."
    parser.set_defaults(task_name="senti", data_dir="data/SENTI")
    return parser


@user_errors
def preprocess_main(argv=None) -> None:
    note_ignored(argv, mft.PREPROCESS_IGNORED, "preprocess.py")
    mft.run_preprocess(normalise_aliases(preprocess_parser().parse_args(argv)))


def meta_teacher_parser() -> argparse.ArgumentParser:
    parser = mft.meta_finetuning_parser()
    parser.description = ("Meta-KD step 2: the meta-teacher, trained on all domains with sample weights and "
                          "the domain-corruption loss.")
    g = parser.add_argument_group("meta-teacher")
    add_bool(g, "--use_sample_weights", True, "weight each example's CE by its prototypical score")
    add_bool(g, "--use_domain_loss", True, "add the domain-corruption loss (weight --domain_loss_weight)")
    parser.set_defaults(task_name="senti", data_dir="data/SENTI", domain_loss_weight=0.5, num_epochs=3)
    return parser


def run_meta_teacher(args: argparse.Namespace) -> dict:
    """MFT-style meta-teacher on every domain; keeps the best-dev snapshot and reports accuracy per domain."""
    if args.domain_loss_weight < 0:
        raise RecipeError(f"--domain_loss_weight must be >= 0, got {args.domain_loss_weight}")
    return train_meta_teacher(from_flags(RunSettings, args, flags=flags_of(args)), from_flags(DataSettings, args),
                              from_flags(TrainSettings, args), from_flags(MetaTeacherSettings, args),
                              args.model_load_dir)


@user_errors
def meta_teacher_main(argv=None) -> None:
    run_meta_teacher(normalise_aliases(meta_teacher_parser().parse_args(argv)))


def teacher_eval_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Meta-KD step 3: dump the meta-teacher's knowledge of every "
                                                 "training example (logits, attentions, hidden states, domain).",
                                     allow_abbrev=False)
    parser.add_argument("--model_load_dir", default=DEFAULT_MODEL,
                        help="the meta-teacher snapshot, e.g. "
                             "output/model_save-<time>/snapshot_best_mft_model_senti_dev_<acc>")
    add_data_args(parser)
    add_train_args(parser, epochs=4, lr=5e-5)  # accepted as in the seed command; only eval/seed/device flags act
    g = parser.add_argument_group("dump")
    g.add_argument("--student_num_hidden_layers", type=int, default=3,
                   help="depth of the student the dump is for: it decides which teacher layers are kept")
    g.add_argument("--dump_dir", default=None,
                   help="where the dump goes (default <data_dir>/teacher_cache/metakd-<key>)")
    add_bool(g, "--refresh_teacher_cache", False, "recompute the dump even if an identical one exists")
    add_attention_flag(g)
    parser.set_defaults(task_name="senti", data_dir="data/SENTI")
    return parser


def run_teacher_eval(args: argparse.Namespace) -> dict:
    """The meta-teacher's dump for a --student_num_hidden_layers student (reused when an identical one exists)."""
    return dump_teacher(from_flags(DataSettings, args), from_flags(TrainSettings, args),
                        from_flags(TeacherDumpSettings, args), args.model_load_dir, args.vocab_file,
                        args.student_num_hidden_layers)


@user_errors
def teacher_eval_main(argv=None) -> None:
    note_ignored(argv, mft.PREPROCESS_IGNORED, "meta_teacher_eval.py")
    run_teacher_eval(normalise_aliases(teacher_eval_parser().parse_args(argv)))
