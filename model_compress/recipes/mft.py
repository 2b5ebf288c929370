"""MFT runs over typed settings: prototypical scores (weight.npy), meta fine-tuning across domains, and
per-domain fine-tuning. The entries model_compress/mft/preprocess.py, meta_finetuning.py and finetuning.py
parse the flags below.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

import numpy as np

from model_compress.cli import (
    add_bool,
    add_data_args,
    add_train_args,
    finite_number,
    normalise_aliases,
    note_ignored,
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
from model_compress.errors import RecipeError
from model_compress.files import atomic_open
from model_compress.finite import NonFiniteError, require_finite
from model_compress.modeling.pretrained import DEFAULT as DEFAULT_MODEL
from model_compress.recipes.common import (
    TaskData,
    default_output_dir,
    evaluate_snapshot,
    fit_classifier,
    flags_of,
    load_classifier,
    task_domains,
    write_results,
)
from model_compress.recipes.inputs import RunInputs, log, prepare_inputs, stamp_dir
from model_compress.recipes.settings import DataSettings, MFTSettings, RunSettings, TrainSettings, from_flags
from model_compress.training import distributed
from model_compress.training.evaluation import Predictor
from model_compress.training.objectives import ClassificationObjective
from model_compress.training.sources import ArrayBatches

WEIGHT_FILE = "weight.npy"


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
    with atomic_open(path, "wb") as f:
        np.save(f, np.asarray(scores, dtype=np.float32))
    return path


def load_weights(data_dir: str, count: int) -> np.ndarray:
    """The prototypical scores of the `count` training examples (from preprocess.py)."""
    path = weight_path(data_dir)
    if not os.path.isfile(path):
        raise RecipeError(f"{path} not found: run preprocess.py on {data_dir} first")
    scores = np.load(path, allow_pickle=False).astype(np.float32).reshape(-1)
    if len(scores) != count:
        raise RecipeError(f"{path} holds {len(scores)} scores but {count} training examples are used: rerun "
                          "preprocess.py with the same --train_example_num")
    try:
        require_finite(scores, path, row_name="example")
    except NonFiniteError as exc:
        raise RecipeError(f"{exc}: rerun preprocess.py") from None
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
    embeddings, _, _ = Predictor(embedder, eager=eager).outputs(source, progress=f"embedding {split}")
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


def score_examples(inputs: RunInputs, settings: TrainSettings) -> dict:
    """Scores of every training example -> weight.npy + OFRecord splits with `domain` and `weights`."""
    model_dir, data, data_dir = inputs.model_dir, inputs.data, inputs.data_dir
    domains = _domains(data)
    out = embed_examples(model_dir, data, "train", settings.eval_batch_size_per_device, settings.device,
                         settings.eager)
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


# ----------------------------------------------------------------------------------------------
# meta_finetuning.py


def choose_layers(text: str | None, num_layers: int) -> list[int]:
    """--layer_indexes checked against the model; unset: 3,7,11 scaled to the model's depth."""
    if text is None:
        layers = scale_layer_indexes(DEFAULT_LAYER_INDEXES, num_layers, DEFAULT_LAYER_REFERENCE)
        if num_layers != DEFAULT_LAYER_REFERENCE:
            default = ",".join(map(str, DEFAULT_LAYER_INDEXES))
            log.info(f"{num_layers}-layer model: domain-corruption layers {default} (meant for 12 layers) scaled "
                  f"to {','.join(map(str, layers))}")
        return layers
    try:
        return parse_layer_indexes(text, num_layers)
    except ValueError as exc:
        raise RecipeError(f"--layer_indexes: {exc}") from None


def meta_finetune(
    inputs: RunInputs, run: RunSettings, settings: TrainSettings, mft: MFTSettings, output_dir: str
) -> dict:
    """Weighted CE + lambda * domain corruption over all domains; keeps the best-dev meta learner."""
    model_dir, vocab, data = inputs.model_dir, inputs.vocab, inputs.data
    flags = run.flags
    if not run.do_train:
        metrics, model = evaluate_snapshot(settings, model_dir, data, "dev")
        path = write_results(run.result_dir or output_dir, metrics, flags, model, model_dir, {"role": "mft"})
        print(f"[mft] dev accuracy {metrics['accuracy']:.4f}; results in {path}")
        return {"eval": metrics, "snapshot": model_dir}
    domains = _domains(data)
    scores = load_weights(inputs.data_dir, len(data.examples["train"]))
    model, config, _ = load_classifier(model_dir, len(data.labels))
    layers = choose_layers(mft.layer_indexes, config.num_hidden_layers)
    model = distributed.setup_model(model, settings.device)
    head = distributed.setup_model(
        DomainCorruptionHead(config.hidden_size, len(domains), layers, config.initializer_range), settings.device)
    objective = MetaFineTuningObjective(model, head, mft.domain_loss_weight)
    train = data.loader("train", run.batch_size_per_device, train=True, seed=settings.seed, with_domain=True,
                        weights=scores)
    keep_weights(inputs.data_dir, scores)
    train = WithShuffledDomains(train, seed=settings.seed)
    dev = data.loader("dev", settings.eval_batch_size_per_device, train=False, seed=settings.seed, rank=0, world_size=1,
                      with_domain=True)
    task = settings.task_name
    loop = fit_classifier(
        settings, objective, model, train, dev, vocab, output_dir,
        snapshot_name=lambda m: f"snapshot_best_mft_model_{task}_dev_{m['accuracy']}",
        meta={"labels": data.labels, "domains": domains, "role": "mft", "init": model_dir,
              "layer_indexes": layers, "domain_loss_weight": mft.domain_loss_weight})
    metrics = loop.best_metrics()
    if distributed.rank() == 0:
        path = write_results(run.result_dir or output_dir, metrics, flags, model, loop.best_snapshot,
                             {"role": "mft", "best_step": loop.best_step, "layer_indexes": layers,
                              "domains": domains, "train_seconds": loop.train_seconds})
        print(f"[mft] best dev accuracy {metrics['accuracy']:.4f} at step {loop.best_step}; meta learner in "
              f"{loop.best_snapshot}; results in {path}")
    return {"train": loop, "snapshot": loop.best_snapshot, "eval": metrics, "layer_indexes": layers}


# ----------------------------------------------------------------------------------------------
# finetuning.py


def finetune(inputs: RunInputs, run: RunSettings, settings: TrainSettings, do_test: bool, output_dir: str) -> dict:
    """Plain fine-tuning on one domain's K-shot data (best dev), then dev and test metrics."""
    model_dir, vocab, data = inputs.model_dir, inputs.vocab, inputs.data
    flags = run.flags
    snapshot, dev_metrics, model, result = model_dir, None, None, {}
    if run.do_train:
        model, _, _ = load_classifier(model_dir, len(data.labels))
        model = distributed.setup_model(model, settings.device)
        train = data.loader("train", run.batch_size_per_device, train=True, seed=settings.seed)
        dev = data.loader("dev", settings.eval_batch_size_per_device, train=False, seed=settings.seed, rank=0,
                          world_size=1)
        task = settings.task_name
        loop = fit_classifier(
            settings, ClassificationObjective(model), model, train, dev, vocab, output_dir,
            snapshot_name=lambda m: f"snapshot_best_ft_model_{task}_dev_{m['accuracy']}",
            meta={"labels": data.labels, "role": "finetune", "init": model_dir})
        snapshot, dev_metrics, result["train"] = loop.best_snapshot, loop.best_metrics(), loop
    if run.do_eval:
        if dev_metrics is None:
            dev_metrics, model = evaluate_snapshot(settings, snapshot, data, "dev")
        test_metrics = None
        if do_test:
            test_metrics, model = evaluate_snapshot(settings, snapshot, data, "test")
        shown = test_metrics or dev_metrics
        if distributed.rank() == 0:
            extra = {"role": "finetune", "init": model_dir, "eval_split": "test" if test_metrics else "dev",
                     "dev": dev_metrics, "test": test_metrics}
            path = write_results(run.result_dir or output_dir, shown, flags, model, snapshot, extra)
            test_text = f", test accuracy {test_metrics['accuracy']:.4f}" if test_metrics else ""
            print(f"[finetune] {settings.task_name}: dev accuracy {dev_metrics['accuracy']:.4f}{test_text}; "
                  f"snapshot {snapshot}; results in {path}")
        result.update(dev=dev_metrics, test=test_metrics)
    result["snapshot"] = snapshot
    return result


def _prepare(args: argparse.Namespace, splits: Sequence[str]) -> RunInputs:
    """The inputs of the three MFT steps from their flags."""
    return prepare_inputs(from_flags(DataSettings, args), args.seed, args.model_load_dir, args.vocab_file, splits)


def run_settings(args: argparse.Namespace, inputs: RunInputs) -> RunSettings:
    """The run flags; results record the --data_dir actually read."""
    return from_flags(RunSettings, args, flags=flags_of(args, data_dir=inputs.data_dir))


def run_preprocess(args: argparse.Namespace) -> dict:
    """Scores of every training example -> weight.npy + OFRecord splits with `domain` and `weights`."""
    return score_examples(_prepare(args, ("train", "dev")), from_flags(TrainSettings, args))


# ----------------------------------------------------------------------------------------------
# preprocess.py


# accepted because the seeds' preprocess.py command lines pass them; scoring trains nothing and draws
# no random numbers
PREPROCESS_IGNORED = (
    "--num_epochs", "--seed", "--learning_rate", "--batch_size_per_device", "--do_train", "--max_steps")


def preprocess_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="MFT step 1: prototypical score of every training example.",
                                     allow_abbrev=False)
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


def run_meta_finetuning(args: argparse.Namespace) -> dict:
    """Weighted CE + lambda * domain corruption over all domains; keeps the best-dev meta learner."""
    if args.domain_loss_weight < 0:
        raise RecipeError(f"--domain_loss_weight must be >= 0, got {args.domain_loss_weight}")
    inputs = _prepare(args, ("train", "dev"))
    return meta_finetune(inputs, run_settings(args, inputs), from_flags(TrainSettings, args),
                         from_flags(MFTSettings, args), stamp_dir(args.model_save_dir))


def meta_finetuning_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="MFT step 2: meta fine-tuning across the domains of a group.",
                                     allow_abbrev=False)
    parser.add_argument("--model_load_dir", default=DEFAULT_MODEL, help="pretrained BERT (default: all-MiniLM-L6-v2)")
    add_data_args(parser)
    add_train_args(parser, epochs=5, lr=5e-5)
    g = parser.add_argument_group("mft")
    g.add_argument("--layer_indexes", default=None,
                   help="0-based encoder layers of the domain-corruption loss (default 3,7,11 for 12 layers, "
                        "scaled to the model's depth, e.g. 1,3,5 for 6)")
    g.add_argument("--domain_loss_weight", "--domain_weight", dest="domain_loss_weight",
                   type=finite_number, default=0.1,
                   help="lambda: weight of the domain-corruption loss")
    parser.set_defaults(task_name="g1", data_dir="data/k-shot-cross/g1/16-42", do_train=True, do_eval=True)
    return parser


@user_errors
def meta_finetuning_main(argv=None) -> None:
    run_meta_finetuning(normalise_aliases(meta_finetuning_parser().parse_args(argv)))


# ----------------------------------------------------------------------------------------------
# finetuning.py


def run_finetuning(args: argparse.Namespace) -> dict:
    """Plain fine-tuning on one domain's K-shot data (best dev), then dev and test metrics."""
    inputs = _prepare(args, ("train", "dev", "test") if args.do_test else ("train", "dev"))
    return finetune(inputs, run_settings(args, inputs), from_flags(TrainSettings, args), args.do_test,
                    default_output_dir(args.model_save_dir, args.task_name, "finetune"))


def finetuning_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="MFT step 3: fine-tune a (meta-learnt) snapshot on one domain.",
                                     allow_abbrev=False)
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
