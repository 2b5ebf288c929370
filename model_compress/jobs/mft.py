"""Meta Fine-Tuning (MFT): prototypical scores, meta fine-tuning across domains, then per-domain fine-tuning.

Entries (run from model_compress/mft/, flags as in the seed README):

    python preprocess.py --task_name g1 --data_dir data/k-shot-cross/g1/16-42 --resave_ofrecord
    python meta_finetuning.py --task_name g1 --data_dir data/k-shot-cross/g1/16-42 --num_epochs 5
    python finetuning.py --task_name sst-2 --data_dir data/k-shot-single/SST-2/16-42 \
        --model_load_dir output/model_save-<time>/snapshot_best_mft_model_g1_dev_<acc>

Seed-style paths are honoured: a relative --data_dir missing from the current directory is looked up
under the repository root, and the seed's `uncased_L-12_H-768_A-12_oneflow` falls back to the default
pretrained model when no such directory exists (a note says so). See docs/mft.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import sys
from collections.abc import Sequence

import numpy as np

from model_compress.cli import (
    add_bool,
    add_data_args,
    add_train_args,
    fail,
    normalise_aliases,
    note_ignored,
    seed_everything,
    user_errors,
)
from model_compress.data.features import convert_examples_to_features, feature_names, features_to_arrays
from model_compress.data.ofrecord import split_dir
from model_compress.distill.meta import (
    DEFAULT_LAYER_INDEXES,
    DEFAULT_LAYER_REFERENCE,
    DomainCorruptionHead,
    MetaFineTuningObjective,
    SentenceEmbedder,
    WithShuffledDomains,
    parse_layer_indexes,
    prototypical_scores,
    scale_layer_indexes,
)
from model_compress.jobs.common import (
    DEFAULT_MODEL,
    REPO_ROOT,
    TaskData,
    default_output_dir,
    evaluate_snapshot,
    find_vocab,
    fit_classifier,
    flags_of,
    load_classifier,
    load_task_data,
    resolve_model_dir,
    task_domains,
    write_results,
)
from model_compress.jobs.settings import DataSettings, TrainSettings, from_flags
from model_compress.training import distributed
from model_compress.training.evaluation import Predictor
from model_compress.training.objectives import ClassificationObjective
from model_compress.training.sources import ArrayBatches

SEED_MODEL_NAMES = ("uncased_L-12_H-768_A-12_oneflow",)
WEIGHT_FILE = "weight.npy"


def _note(message: str) -> None:
    if distributed.rank() == 0:
        print(f"[mft] {message}", file=sys.stderr)


# ----------------------------------------------------------------------------------------------
# seed-style paths


def resolve_model(path: str | None) -> str:
    """--model_load_dir as the seeds use it; the seed's BERT-base name falls back to the default model."""
    if path and path != DEFAULT_MODEL and not os.path.exists(path):
        if not os.path.isabs(path) and os.path.exists(os.path.join(REPO_ROOT, path)):
            return os.path.join(REPO_ROOT, path)
        name = os.path.basename(os.path.normpath(path))
        if name in SEED_MODEL_NAMES:
            beside = os.path.join(REPO_ROOT, "models", name)
            if os.path.exists(beside):
                return beside
            default = resolve_model_dir(DEFAULT_MODEL)
            _note(f"{path} not found (here or in {os.path.dirname(beside)}): using the default pretrained "
                  f"model {default} instead")
            return default
    return resolve_model_dir(path)


def resolve_vocab(model_dir: str, vocab_file: str | None) -> str:
    """--vocab_file if it exists; a missing one (e.g. the seed's BERT-base path) gives way to the model's own."""
    if vocab_file and not os.path.isfile(vocab_file):
        beside = os.path.join(model_dir, "vocab.txt")
        if os.path.isfile(beside):
            _note(f"--vocab_file {vocab_file} not found: using the model's own {beside}")
            return beside
    return find_vocab(model_dir, vocab_file)


def resolve_data_dir(path: str) -> str:
    """A relative --data_dir missing here is looked up under the repository root (seeds run from mft/)."""
    if os.path.isdir(path):
        return path
    candidate = os.path.join(REPO_ROOT, path)
    if not os.path.isabs(path) and os.path.isdir(candidate):
        _note(f"--data_dir {path} not found here: using {candidate}")
        return candidate
    fail(f"--data_dir {path} does not exist (looked here and under {REPO_ROOT}); the default K-shot data "
         "is made by `python -m model_compress.data.synthetic --out data` in the repository root")
    raise AssertionError


@dataclasses.dataclass(frozen=True)
class RunInputs:
    """What an MFT or Meta-KD step reads: the model snapshot, its vocab and the task data (data_dir resolved)."""

    model_dir: str
    vocab: str
    data: TaskData

    @property
    def data_dir(self) -> str:
        return self.data.data_dir


def prepare_inputs(
    settings: DataSettings, seed: int, model_path: str | None, vocab_file: str | None,
    splits: Sequence[str] = ("train", "dev"), student: bool = False,
) -> RunInputs:
    """Seed, then the model dir, vocab and task data with the seeds' path fallbacks (see the module doc)."""
    seed_everything(seed)
    model_dir = resolve_model(model_path)
    vocab = resolve_vocab(model_dir, vocab_file)
    settings = dataclasses.replace(settings, data_dir=resolve_data_dir(settings.data_dir))
    return RunInputs(model_dir, vocab, load_task_data(settings, vocab, splits, model_dir, student))


def _prepare(args: argparse.Namespace, splits: Sequence[str]) -> RunInputs:
    """The inputs of the three MFT steps from their flags."""
    return prepare_inputs(from_flags(DataSettings, args), args.seed, args.model_load_dir, args.vocab_file, splits)


def _domains(data: TaskData) -> list[str]:
    return task_domains(data, "MFT", "g1")


# ----------------------------------------------------------------------------------------------
# weight.npy beside the training split


def weight_path(data_dir: str) -> str:
    """<data_dir>/ofrecord/train/weight.npy, where the seed tree keeps the prototypical scores."""
    return os.path.join(split_dir(data_dir, "train"), WEIGHT_FILE)


def save_weights(data_dir: str, scores: np.ndarray) -> str:
    """Write weight.npy atomically (after the split: rebuilding a split replaces its directory)."""
    path = weight_path(data_dir)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        np.save(f, np.asarray(scores, dtype=np.float32))
    os.replace(tmp, path)
    return path


def load_weights(data_dir: str, count: int) -> np.ndarray:
    """The prototypical scores of the `count` training examples (from preprocess.py)."""
    path = weight_path(data_dir)
    if not os.path.isfile(path):
        fail(f"{path} not found: run preprocess.py on {data_dir} first")
    scores = np.load(path, allow_pickle=False).astype(np.float32).reshape(-1)
    if len(scores) != count:
        fail(f"{path} holds {len(scores)} scores but {count} training examples are used: rerun preprocess.py "
             "with the same --train_example_num")
    return scores


def keep_weights(data_dir: str, scores: np.ndarray) -> None:
    """(Re)write weight.npy once the train split is built: a rebuild (--resave_ofrecord) replaces the folder."""
    if distributed.rank() == 0:
        save_weights(data_dir, scores)
    distributed.barrier()


# ----------------------------------------------------------------------------------------------
# preprocess.py


def embed_examples(
    model_dir: str, data: TaskData, split: str, batch_size: int, device: str, eager: bool
) -> dict[str, np.ndarray]:
    """Mean-pooled last-layer embeddings of a split (shared eval graph) with its domain and label ids."""
    domains = _domains(data)
    features = convert_examples_to_features(data.examples[split], data.labels, data.seq_length, data.tokenizer,
                                            domains)
    arrays = features_to_arrays(features, feature_names(with_domain=True))
    model, _, _ = load_classifier(model_dir, len(data.labels))
    model = distributed.setup_model(model, device)
    embedder = SentenceEmbedder(model.bert)
    source = ArrayBatches(arrays, batch_size)
    embeddings, _, _ = Predictor(embedder, eager=eager).outputs(source)
    return {"embeddings": embeddings, "domain": arrays["domain"], "label_ids": arrays["label_ids"]}


def score_table(scores: np.ndarray, domain_ids: np.ndarray, domain_names: list[str]) -> str:
    """Per-domain count, mean, min and max of the scores, plus an `all` row, as aligned text."""
    rows = [("domain", "count", "mean", "min", "max")]
    groups = [(name, domain_ids == i) for i, name in enumerate(domain_names)]
    groups.append(("all", np.ones_like(domain_ids, dtype=bool)))
    for name, rows_of in groups:
        s = scores[rows_of]
        if len(s):
            rows.append((name, str(len(s)), f"{s.mean():.4f}", f"{s.min():.4f}", f"{s.max():.4f}"))
        else:
            rows.append((name, "0", "-", "-", "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in rows)


def run_preprocess(args) -> dict:
    """Scores of every training example -> weight.npy + OFRecord splits with `domain` and `weights`."""
    inputs = _prepare(args, ("train", "dev"))
    model_dir, data, data_dir = inputs.model_dir, inputs.data, inputs.data_dir
    domains = _domains(data)
    out = embed_examples(model_dir, data, "train", args.eval_batch_size_per_device, args.device, args.eager)
    scores = prototypical_scores(out["embeddings"], out["domain"], out["label_ids"])
    train_dir = data.split("train", with_domain=True, weights=scores)
    keep_weights(data_dir, scores)
    dev_dir = data.split("dev", with_domain=True)
    if distributed.rank() == 0:
        print(f"prototypical scores of {len(scores)} training examples ({model_dir}):")
        print(score_table(scores, out["domain"], domains))
        print(f"[mft] wrote {weight_path(data_dir)}, {train_dir} and {dev_dir}")
    return {"scores": scores, "weight_file": weight_path(data_dir), "train_dir": train_dir,
            "dev_dir": dev_dir, "embeddings": out["embeddings"], "domain": out["domain"]}


# accepted because the seeds' preprocess.py command lines pass them; scoring trains nothing and draws
# no random numbers
PREPROCESS_IGNORED = (
    "--num_epochs", "--seed", "--learning_rate", "--batch_size_per_device", "--do_train", "--max_steps")


def preprocess_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="MFT step 1: prototypical score of every training example.")
    parser.add_argument("--model_load_dir", default=DEFAULT_MODEL,
                        help="pretrained BERT giving the embeddings (default: all-MiniLM-L6-v2)")
    add_data_args(parser)
    add_train_args(parser, epochs=4, lr=5e-5)  # accepted as in the seed command; only --seed and eval flags act
    parser.set_defaults(task_name="g1", data_dir="data/k-shot-cross/g1/16-42")
    return parser


@user_errors
def preprocess_main(argv=None) -> None:
    note_ignored(argv, PREPROCESS_IGNORED, "preprocess.py")
    run_preprocess(normalise_aliases(preprocess_parser().parse_args(argv)))


# ----------------------------------------------------------------------------------------------
# meta_finetuning.py


def choose_layers(text: str | None, num_layers: int) -> list[int]:
    """--layer_indexes checked against the model; unset: 3,7,11 scaled to the model's depth."""
    if text is None:
        layers = scale_layer_indexes(DEFAULT_LAYER_INDEXES, num_layers, DEFAULT_LAYER_REFERENCE)
        if num_layers != DEFAULT_LAYER_REFERENCE:
            default = ",".join(map(str, DEFAULT_LAYER_INDEXES))
            _note(f"{num_layers}-layer model: domain-corruption layers {default} (meant for 12 layers) scaled "
                  f"to {','.join(map(str, layers))}")
        return layers
    try:
        return parse_layer_indexes(text, num_layers)
    except ValueError as exc:
        fail(f"--layer_indexes: {exc}")
        raise AssertionError from None


def _best_metrics(loop) -> dict:
    return next(metrics for step, metrics in loop.history if step == loop.best_step)


def stamp_dir(model_save_dir: str | None) -> str:
    """The seed's output/model_save-<YYYY-mm-dd-HH:MM:SS>, unless --model_save_dir."""
    if model_save_dir:
        return model_save_dir
    return os.path.join("output", f"model_save-{datetime.datetime.now().strftime('%Y-%m-%d-%H:%M:%S')}")


def run_meta_finetuning(args) -> dict:
    """Weighted CE + lambda * domain corruption over all domains; keeps the best-dev meta learner."""
    if args.domain_loss_weight < 0:
        fail(f"--domain_loss_weight must be >= 0, got {args.domain_loss_weight}")
    inputs = _prepare(args, ("train", "dev"))
    model_dir, vocab, data = inputs.model_dir, inputs.vocab, inputs.data
    flags = flags_of(args, data_dir=inputs.data_dir)
    settings = from_flags(TrainSettings, args)
    output_dir = stamp_dir(args.model_save_dir)
    if not args.do_train:
        metrics, model = evaluate_snapshot(settings, model_dir, data, "dev")
        path = write_results(args.result_dir or output_dir, metrics, flags, model, model_dir, {"role": "mft"})
        print(f"[mft] dev accuracy {metrics['accuracy']:.4f}; results in {path}")
        return {"eval": metrics, "snapshot": model_dir}
    domains = _domains(data)
    scores = load_weights(inputs.data_dir, len(data.examples["train"]))
    model, config, _ = load_classifier(model_dir, len(data.labels))
    layers = choose_layers(args.layer_indexes, config.num_hidden_layers)
    model = distributed.setup_model(model, args.device)
    head = distributed.setup_model(
        DomainCorruptionHead(config.hidden_size, len(domains), layers, config.initializer_range), args.device)
    objective = MetaFineTuningObjective(model, head, args.domain_loss_weight)
    train = data.loader("train", args.batch_size_per_device, train=True, seed=args.seed, with_domain=True,
                        weights=scores)
    keep_weights(inputs.data_dir, scores)
    train = WithShuffledDomains(train, seed=args.seed)
    dev = data.loader("dev", args.eval_batch_size_per_device, train=False, seed=args.seed, rank=0, world_size=1,
                      with_domain=True)
    task = args.task_name
    loop = fit_classifier(
        settings, objective, model, train, dev, vocab, output_dir,
        snapshot_name=lambda m: f"snapshot_best_mft_model_{task}_dev_{m['accuracy']}",
        meta={"labels": data.labels, "domains": domains, "role": "mft", "init": model_dir,
              "layer_indexes": layers, "domain_loss_weight": args.domain_loss_weight})
    metrics = _best_metrics(loop)
    if distributed.rank() == 0:
        path = write_results(args.result_dir or output_dir, metrics, flags, model, loop.best_snapshot,
                             {"role": "mft", "best_step": loop.best_step, "layer_indexes": layers,
                              "domains": domains, "train_seconds": loop.train_seconds})
        print(f"[mft] best dev accuracy {metrics['accuracy']:.4f} at step {loop.best_step}; meta learner in "
              f"{loop.best_snapshot}; results in {path}")
    return {"train": loop, "snapshot": loop.best_snapshot, "eval": metrics, "layer_indexes": layers}


def meta_finetuning_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="MFT step 2: meta fine-tuning across the domains of a group.")
    parser.add_argument("--model_load_dir", default=DEFAULT_MODEL, help="pretrained BERT (default: all-MiniLM-L6-v2)")
    add_data_args(parser)
    add_train_args(parser, epochs=5, lr=5e-5)
    g = parser.add_argument_group("mft")
    g.add_argument("--layer_indexes", default=None,
                   help="0-based encoder layers of the domain-corruption loss (default 3,7,11 for 12 layers, "
                        "scaled to the model's depth, e.g. 1,3,5 for 6)")
    g.add_argument("--domain_loss_weight", "--domain_weight", dest="domain_loss_weight", type=float, default=0.1,
                   help="lambda: weight of the domain-corruption loss")
    parser.set_defaults(task_name="g1", data_dir="data/k-shot-cross/g1/16-42", do_train=True, do_eval=True)
    return parser


@user_errors
def meta_finetuning_main(argv=None) -> None:
    run_meta_finetuning(normalise_aliases(meta_finetuning_parser().parse_args(argv)))


# ----------------------------------------------------------------------------------------------
# finetuning.py


def run_finetuning(args) -> dict:
    """Plain fine-tuning on one domain's K-shot data (best dev), then dev and test metrics."""
    splits = ("train", "dev", "test") if args.do_test else ("train", "dev")
    inputs = _prepare(args, splits)
    model_dir, vocab, data = inputs.model_dir, inputs.vocab, inputs.data
    flags = flags_of(args, data_dir=inputs.data_dir)
    settings = from_flags(TrainSettings, args)
    output_dir = default_output_dir(args.model_save_dir, args.task_name, "finetune")
    snapshot, dev_metrics, model, result = model_dir, None, None, {}
    if args.do_train:
        model, _, _ = load_classifier(model_dir, len(data.labels))
        model = distributed.setup_model(model, args.device)
        train = data.loader("train", args.batch_size_per_device, train=True, seed=args.seed)
        dev = data.loader("dev", args.eval_batch_size_per_device, train=False, seed=args.seed, rank=0,
                          world_size=1)
        task = args.task_name
        loop = fit_classifier(
            settings, ClassificationObjective(model), model, train, dev, vocab, output_dir,
            snapshot_name=lambda m: f"snapshot_best_ft_model_{task}_dev_{m['accuracy']}",
            meta={"labels": data.labels, "role": "finetune", "init": model_dir})
        snapshot, dev_metrics, result["train"] = loop.best_snapshot, _best_metrics(loop), loop
    if args.do_eval:
        if dev_metrics is None:
            dev_metrics, model = evaluate_snapshot(settings, snapshot, data, "dev")
        test_metrics = None
        if args.do_test:
            test_metrics, model = evaluate_snapshot(settings, snapshot, data, "test")
        shown = test_metrics or dev_metrics
        if distributed.rank() == 0:
            extra = {"role": "finetune", "init": model_dir, "eval_split": "test" if test_metrics else "dev",
                     "dev": dev_metrics, "test": test_metrics}
            path = write_results(args.result_dir or output_dir, shown, flags, model, snapshot, extra)
            test_text = f", test accuracy {test_metrics['accuracy']:.4f}" if test_metrics else ""
            print(f"[finetune] {args.task_name}: dev accuracy {dev_metrics['accuracy']:.4f}{test_text}; "
                  f"snapshot {snapshot}; results in {path}")
        result.update(dev=dev_metrics, test=test_metrics)
    result["snapshot"] = snapshot
    return result


def finetuning_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="MFT step 3: fine-tune a (meta-learnt) snapshot on one domain.")
    parser.add_argument("--model_load_dir", default=DEFAULT_MODEL,
                        help="snapshot to start from, e.g. "
                             "output/model_save-<time>/snapshot_best_mft_model_g1_dev_<acc>")
    add_data_args(parser)
    add_train_args(parser, epochs=10, lr=2e-5)
    add_bool(parser, "--do_test", True, "also report accuracy on the test split (test.csv)")
    parser.set_defaults(task_name="sst-2", data_dir="data/k-shot-single/SST-2/16-42", do_train=True, do_eval=True)
    return parser


@user_errors
def finetuning_main(argv=None) -> None:
    run_finetuning(normalise_aliases(finetuning_parser().parse_args(argv)))
