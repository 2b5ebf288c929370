"""Teacher fine-tuning, evaluation and logits export (entry: model_compress/distil/task_teacher.py).

    python model_compress/distil/task_teacher.py --task_name senti --data_dir data/SENTI \
        --do_train --do_eval --model_save_dir output/teacher
    python model_compress/distil/task_teacher.py --task_name senti --data_dir data/SENTI \
        --model_load_dir output/teacher/snapshot_best --export_logits output/teacher/logits.tsv
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from model_compress.cli import add_data_args, add_train_args, normalise_aliases, seed_everything, user_errors
from model_compress.distill.teacher_cache import write_logits_file
from model_compress.errors import RecipeError
from model_compress.modeling.resolve import resolve_model
from model_compress.recipes.common import (
    evaluate_snapshot,
    find_vocab,
    fit_classifier,
    flags_of,
    load_classifier,
    load_task_data,
    write_results,
)
from model_compress.recipes.settings import DataSettings, TrainSettings, from_flags
from model_compress.training import distributed
from model_compress.training.evaluation import Predictor
from model_compress.training.objectives import ClassificationObjective, ClassifierLogits


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Fine-tune, evaluate or export logits of a teacher classifier.",
                                     allow_abbrev=False)
    parser.add_argument("--model_load_dir", default="default",
                        help="snapshot to start from (project, legacy OneFlow or HF dir; default: all-MiniLM-L6-v2)")
    add_data_args(parser)
    add_train_args(parser, epochs=3, lr=5e-5)
    parser.add_argument("--export_logits", default=None,
                        help="write the teacher's logits on --export_split to this file (one line per row)")
    parser.add_argument("--export_split", default="train", help="split whose logits --export_logits writes")
    parser.add_argument("--eval_split", default="dev", help="split --do_eval reports on")
    return parser


def predict_logits(settings: TrainSettings, snapshot: str, data, split: str) -> tuple[np.ndarray, str | None]:
    """A snapshot's logits for every row of ``split``, in file order (the Predictor over the split), and the
    fingerprint of the split they were computed from."""
    model, _, _ = load_classifier(snapshot, len(data.labels))
    model = distributed.setup_model(model, settings.device)
    source = data.loader(split, settings.eval_batch_size_per_device, train=False, seed=settings.seed,
                         rank=0, world_size=1, bucketed=True)  # rows put back in file order below
    logits, features, _ = Predictor(ClassifierLogits(model), eager=settings.eager).outputs(source)
    order = features["idxs"].reshape(-1)
    ordered = logits.copy()
    ordered[order] = logits
    return ordered, source.meta.get("source_hash")


def export_logits(settings: TrainSettings, snapshot: str, data, split: str, path: str) -> None:
    """Teacher logits for every row of ``split``, in file order, written to ``path``."""
    ordered, source_hash = predict_logits(settings, snapshot, data, split)
    if distributed.rank() == 0:
        write_logits_file(path, ordered, source_hash)
        print(f"[teacher] wrote {len(ordered)} rows of logits to {path}")


def train_teacher(settings: TrainSettings, data, model_dir: str, vocab: str, output_dir: str, batch_size: int,
                  eval_split: str = "dev", meta: dict | None = None):
    """Fine-tune the classifier in ``model_dir`` on the train split; the loop keeps the best ``eval_split`` snapshot.
    Returns the loop's result and the trained model."""
    model, _, _ = load_classifier(model_dir, len(data.labels))
    model = distributed.setup_model(model, settings.device)
    train_source = data.loader("train", batch_size, train=True, seed=settings.seed)
    dev_source = data.loader(eval_split, settings.eval_batch_size_per_device, train=False, seed=settings.seed,
                             rank=0, world_size=1, bucketed=True)
    loop = fit_classifier(settings, ClassificationObjective(model), model, train_source, dev_source, vocab,
                          output_dir, meta={"labels": data.labels, "role": "teacher", **(meta or {})})
    return loop, model


def run(args) -> dict:
    seed_everything(args.seed)
    settings = from_flags(TrainSettings, args)
    model_dir = resolve_model(args.model_load_dir)
    vocab = find_vocab(model_dir, args.vocab_file)
    splits = sorted({"train", args.eval_split} | ({args.export_split} if args.export_logits else set()))
    data = load_task_data(from_flags(DataSettings, args), vocab, splits, model_dir=model_dir)
    output_dir = args.model_save_dir or os.path.join("output", f"teacher-{args.task_name}")
    snapshot, trained = model_dir, None
    result = {}
    if args.do_train:
        loop, trained = train_teacher(settings, data, model_dir, vocab, output_dir, args.batch_size_per_device,
                                      args.eval_split)
        snapshot = loop.best_snapshot
        result["train"] = loop
    if args.do_eval:
        if trained is not None and snapshot:
            # the loop evaluated this very snapshot on eval_split; a second evaluation would compile a second
            # set of graphs, and OneFlow keeps every compiled graph's memory until the process ends
            metrics, model = loop.best_metrics(), trained
        else:
            metrics, model = evaluate_snapshot(settings, snapshot, data, args.eval_split)
        if distributed.rank() == 0:
            path = write_results(args.result_dir or output_dir, metrics, flags_of(args), model, snapshot)
            print(f"[eval] {snapshot}: {args.eval_split} accuracy {metrics['accuracy']:.4f}; results in {path}")
        result["eval"] = metrics
    if args.export_logits:
        export_logits(settings, snapshot, data, args.export_split, args.export_logits)
    if not (args.do_train or args.do_eval or args.export_logits):
        raise RecipeError("nothing to do: pass --do_train, --do_eval and/or --export_logits")
    result["snapshot"] = snapshot
    return result


@user_errors
def main(argv=None) -> None:
    run(normalise_aliases(build_parser().parse_args(argv)))
