"""Meta-KD steps 1-3: prototypical scores, the meta-teacher and its dump (preprocess, meta_teacher, _eval)."""

from __future__ import annotations

import argparse

from model_compress.cli import (
    add_bool,
    add_data_args,
    add_train_args,
    fail,
    normalise_aliases,
    note_ignored,
    user_errors,
)
from model_compress.distill.meta import (
    DomainCorruptionHead,
    MetaFineTuningObjective,
    WithShuffledDomains,
)
from model_compress.distill.metakd import WithUnitWeights
from model_compress.jobs import mft
from model_compress.jobs.common import (
    DEFAULT_MODEL,
    flags_of,
    load_classifier,
    write_results,
)
from model_compress.jobs.metakd.shared import (
    ALL_GENRES,
    add_attention_flag,
    best_metrics,
    dev_source,
    domain_names,
    ensure_teacher_dump,
    fit,
    optional_weights,
    prepare,
)
from model_compress.jobs.pipelines import mft as mft_runs
from model_compress.jobs.settings import TrainSettings, from_flags
from model_compress.training import distributed
from model_compress.training.domains import make_domain_evaluator, per_domain

# ----------------------------------------------------------------------------------------------
# preprocess.py


def preprocess_parser() -> argparse.ArgumentParser:
    parser = mft.preprocess_parser()
    parser.description = "Meta-KD step 1: prototypical score of every training example across the domains."
    parser.set_defaults(task_name="senti", data_dir="data/SENTI")
    return parser


@user_errors
def preprocess_main(argv=None) -> None:
    note_ignored(argv, mft.PREPROCESS_IGNORED, "preprocess.py")
    mft.run_preprocess(normalise_aliases(preprocess_parser().parse_args(argv)))


# ----------------------------------------------------------------------------------------------
# meta_teacher.py


def meta_teacher_parser() -> argparse.ArgumentParser:
    parser = mft.meta_finetuning_parser()
    parser.description = ("Meta-KD step 2: the meta-teacher, trained on all domains with sample weights and "
                          "the domain-corruption loss.")
    g = parser.add_argument_group("meta-teacher")
    add_bool(g, "--use_sample_weights", True, "weight each example's CE by its prototypical score")
    add_bool(g, "--use_domain_loss", True, "add the domain-corruption loss (weight --domain_loss_weight)")
    parser.set_defaults(task_name="senti", data_dir="data/SENTI", domain_loss_weight=0.5, num_epochs=3)
    return parser


def run_meta_teacher(args) -> dict:
    """MFT-style meta-teacher on every domain; keeps the best-dev snapshot and reports accuracy per domain."""
    if args.domain_loss_weight < 0:
        fail(f"--domain_loss_weight must be >= 0, got {args.domain_loss_weight}")
    inputs = prepare(args, args.model_load_dir, ("train", "dev"))
    model_dir, vocab, data = inputs.model_dir, inputs.vocab, inputs.data
    flags = flags_of(args, data_dir=inputs.data_dir)
    settings = from_flags(TrainSettings, args)
    domains = domain_names(data)
    output_dir = mft.stamp_dir(args.model_save_dir)  # the seed's output/model_save-<time>
    dev = dev_source(data, settings)
    if not args.do_train:
        model, _, _ = load_classifier(model_dir, len(data.labels))
        model = distributed.setup_model(model, args.device)
        metrics = make_domain_evaluator(model, dev, domains, ALL_GENRES, args.eager)()
        path = write_results(args.result_dir or output_dir, metrics, flags, model, model_dir,
                             {"role": "meta-teacher", "per_domain": per_domain(metrics, domains)})
        print(f"[metakd] meta-teacher dev accuracy {metrics['accuracy']:.4f}; results in {path}")
        return {"eval": metrics, "snapshot": model_dir}
    count = len(data.examples["train"])
    scores = mft_runs.load_weights(inputs.data_dir, count) if args.use_sample_weights else \
        optional_weights(inputs.data_dir, count)
    model, config, _ = load_classifier(model_dir, len(data.labels))
    layers = mft_runs.choose_layers(args.layer_indexes, config.num_hidden_layers)
    model = distributed.setup_model(model, args.device)
    head = distributed.setup_model(
        DomainCorruptionHead(config.hidden_size, len(domains), layers, config.initializer_range), args.device)
    weight = args.domain_loss_weight if args.use_domain_loss else 0.0
    objective = MetaFineTuningObjective(model, head, weight)
    train = data.loader("train", args.batch_size_per_device, train=True, seed=args.seed, with_domain=True,
                        weights=scores)
    if scores is not None:
        mft_runs.keep_weights(inputs.data_dir, scores)
    if not args.use_sample_weights:
        train = WithUnitWeights(train)
    train = WithShuffledDomains(train, seed=args.seed)
    task = args.task_name
    choices = {"use_sample_weights": bool(args.use_sample_weights), "use_domain_loss": bool(args.use_domain_loss),
                "domain_loss_weight": weight, "layer_indexes": layers}
    loop = fit(settings, objective, model, train, make_domain_evaluator(model, dev, domains, ALL_GENRES, args.eager),
                vocab, output_dir, lambda m: f"snapshot_best_mft_model_{task}_dev_{m['accuracy']}",
                {"labels": data.labels, "domains": domains, "role": "meta-teacher", "init": model_dir, **choices})
    metrics = best_metrics(loop)
    if distributed.rank() == 0:
        path = write_results(args.result_dir or output_dir, metrics, flags, model, loop.best_snapshot,
                             {"role": "meta-teacher", "best_step": loop.best_step, "domains": domains,
                              "per_domain": per_domain(metrics, domains), "train_seconds": loop.train_seconds,
                              **choices})
        shown = ", ".join(f"{d} {a:.4f}" for d, a in per_domain(metrics, domains).items())
        print(f"[metakd] meta-teacher best dev accuracy {metrics['accuracy']:.4f} at step {loop.best_step} "
              f"({shown}); snapshot {loop.best_snapshot}; results in {path}")
    return {"train": loop, "snapshot": loop.best_snapshot, "eval": metrics}


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


def run_teacher_eval(args) -> dict:
    inputs = prepare(args, args.model_load_dir, ("train",))
    teacher_dir, data = inputs.model_dir, inputs.data
    teacher, config, _ = load_classifier(teacher_dir, len(data.labels))
    arrays, directory = ensure_teacher_dump(from_flags(TrainSettings, args), args.dump_dir, teacher_dir, teacher,
                                            config, data, args.student_num_hidden_layers,
                                            refresh=args.refresh_teacher_cache, attention=args.attention_loss)
    return {"arrays": arrays, "dump_dir": directory, "teacher": teacher_dir}


@user_errors
def teacher_eval_main(argv=None) -> None:
    note_ignored(argv, mft.PREPROCESS_IGNORED, "meta_teacher_eval.py")
    run_teacher_eval(normalise_aliases(teacher_eval_parser().parse_args(argv)))


