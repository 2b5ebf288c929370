"""Meta-KD: a meta-teacher learnt across domains, distilled into a small student for one domain.

Entries (run from model_compress/metakd/, flags as in the seed README):

    python preprocess.py --task_name senti --data_dir data/SENTI/ --resave_ofrecord
    python meta_teacher.py --task_name senti --data_dir data/SENTI/ --num_epochs 2 --do_train --do_eval
    python meta_teacher_eval.py --task_name senti --model_load_dir <the meta-teacher snapshot>
    python meta_distill.py --task_name senti --teacher_model <the same> --genre books --distill_stage first
    python meta_distill.py --task_name senti --teacher_model <the same> --genre books --distill_stage second

(the meta-teacher snapshot: output/model_save-<time>/snapshot_best_mft_model_senti_dev_<acc>)

1. preprocess: MFT's prototypical scores (`model_compress.jobs.mft.run_preprocess`) on the SENTI domains.
2. meta-teacher: sample-weighted CE + domain-corruption loss (weight 0.5) over all domains, best dev snapshot.
3. teacher dump: logits, mapped attention scores and hidden states, and the domain representation of
   every training example, written once as memory-mapped .npy files (see docs/metakd.md).
4. student: stage 1 intermediate distillation weighted by the domain-expertise weight, stage 2 soft
   labels at temperature T; `--distill_stage vanilla` trains the same student with plain KD instead.

`python -m model_compress.jobs.metakd summary ...` prints the per-domain comparison table.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence

import numpy as np
from tqdm import tqdm

from model_compress.cli import add_bool, add_data_args, add_train_args, fail, normalise_aliases, seed_everything
from model_compress.data.tokenization import load_vocab
from model_compress.distill.meta import (
    DomainCorruptionHead,
    MetaFineTuningObjective,
    WithShuffledDomains,
    domain_expertise_weight,
)
from model_compress.distill.metakd import (
    TEACHER_ARRAYS,
    MetaDistillFirstStage,
    MetaDistillSecondStage,
    MetaTeacherOutputs,
    RowSubset,
    WithUnitWeights,
    attention_mapping,
    hidden_mapping,
    student_init_layers,
)
from model_compress.distill.objectives import VanillaKDObjective
from model_compress.distill.teacher_cache import cache_key, load_cache
from model_compress.jobs import mft
from model_compress.jobs.common import (
    DEFAULT_MODEL,
    TaskData,
    load_classifier,
    load_task_data,
    loop_config,
    save_classifier,
    task_domains,
    write_results,
)
from model_compress.jobs.student import build_student
from model_compress.modeling.bert import BertForSequenceClassification
from model_compress.modeling.checkpoint import load_state_into, module_state_numpy, snapshot_format
from model_compress.modeling.config import BertConfig
from model_compress.modeling.slicing import slice_layers
from model_compress.training import distributed
from model_compress.training.evaluation import Predictor
from model_compress.training.graph import make_eval_step
from model_compress.training.metrics import classification_metrics
from model_compress.training.objectives import ClassifierLogits
from model_compress.training.sources import WithCachedTargets

ALL_GENRES = "all"
DUMP_KIND = "metakd-teacher"
STAGES = ("first", "second", "all", "vanilla")


def _note(message: str) -> None:
    if distributed.rank() == 0:
        print(f"[metakd] {message}", file=sys.stderr)


def _prepare(args, model_path: str | None, splits: Sequence[str]) -> tuple[str, str, TaskData]:
    """Seed, model dir, vocab and task data, with the seeds' path fallbacks (see jobs/mft.py)."""
    seed_everything(args.seed)
    model_dir = mft.resolve_model(model_path)
    vocab = mft.resolve_vocab(model_dir, args.vocab_file)
    args.data_dir = mft.resolve_data_dir(args.data_dir)
    return model_dir, vocab, load_task_data(args, vocab, splits)


def domain_names(data: TaskData) -> list[str]:
    """The task's domains in id order; Meta-KD needs a multi-domain task such as senti."""
    return task_domains(data, "Meta-KD", "senti")


def genre_id(genre: str, domains: Sequence[str]) -> int | None:
    """Domain id of --genre (None for `all`); an unknown genre is an error listing the choices."""
    if genre == ALL_GENRES:
        return None
    if genre not in domains:
        fail(f"--genre {genre!r} is not a domain of this task: use one of {', '.join(domains)} or all")
    return list(domains).index(genre)


def _optional_weights(data_dir: str, count: int) -> np.ndarray | None:
    """The prototypical scores when preprocess.py wrote them, else None."""
    return mft.load_weights(data_dir, count) if os.path.isfile(mft.weight_path(data_dir)) else None


# ----------------------------------------------------------------------------------------------
# per-domain evaluation


def domain_metrics(logits: np.ndarray, labels: np.ndarray, domain_ids: np.ndarray, domains: Sequence[str],
                   genre: str = ALL_GENRES) -> dict[str, float]:
    """Metrics on the rows of `genre` (all rows for `all`) plus `accuracy_<domain>` for every domain present."""
    predictions = np.asarray(logits).argmax(-1).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    domain_ids = np.asarray(domain_ids).reshape(-1)
    gid = genre_id(genre, domains)
    chosen = np.ones(len(labels), dtype=bool) if gid is None else domain_ids == gid
    if not chosen.any():
        raise ValueError(f"no evaluation example of domain {genre}")
    metrics = classification_metrics(labels[chosen], predictions[chosen])
    metrics["num_examples"] = int(chosen.sum())
    for i, name in enumerate(domains):
        rows = domain_ids == i
        if rows.any():
            metrics[f"accuracy_{name}"] = float((predictions[rows] == labels[rows]).mean())
    return metrics


def per_domain(metrics: dict, domains: Sequence[str]) -> dict[str, float]:
    """{domain: accuracy} from the `accuracy_<domain>` keys of :func:`domain_metrics`."""
    return {d: metrics[f"accuracy_{d}"] for d in domains if f"accuracy_{d}" in metrics}


def make_domain_evaluator(model, source, domains: Sequence[str], genre: str, eager: bool) -> Callable[[], dict]:
    """evaluate() -> per-domain metrics of `model` on `source` (a split loaded with its domains)."""
    predictor = Predictor(ClassifierLogits(model), eager=eager)

    def evaluate() -> dict:
        logits, features, seconds = predictor.outputs(source)
        metrics = domain_metrics(logits, features["label_ids"], features["domain"], domains, genre)
        metrics["eval_samples_per_second"] = float(len(logits) / max(seconds, 1e-9))
        return metrics

    return evaluate


def _dev_source(args, data: TaskData):
    return data.loader("dev", args.eval_batch_size_per_device, train=False, seed=args.seed, rank=0, world_size=1,
                       with_domain=True)


def _fit(args, objective, model, train_source, evaluate, vocab: str, output_dir: str, snapshot_name, meta: dict):
    """The shared training loop; `evaluate=None` trains without dev evaluation or snapshots."""
    from model_compress.training.loop import train

    def save(path: str, metrics: dict) -> None:
        save_classifier(model, path, model.config, vocab, {"task": args.task_name, **meta, **metrics})

    return train(objective, train_source, evaluate, save if evaluate else None, snapshot_name,
                 loop_config(args, output_dir))


def _best_metrics(loop) -> dict:
    return next(metrics for step, metrics in loop.history if step == loop.best_step)


# ----------------------------------------------------------------------------------------------
# preprocess.py


def preprocess_parser() -> argparse.ArgumentParser:
    parser = mft.preprocess_parser()
    parser.description = "Meta-KD step 1: prototypical score of every training example across the domains."
    parser.set_defaults(task_name="senti", data_dir="data/SENTI")
    return parser


def preprocess_main(argv=None) -> None:
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
    model_dir, vocab, data = _prepare(args, args.model_load_dir, ("train", "dev"))
    domains = domain_names(data)
    output_dir = mft.stamp_dir(args)  # the seed's output/model_save-<time>
    dev = _dev_source(args, data)
    if not args.do_train:
        model, _, _ = load_classifier(model_dir, len(data.labels))
        model = distributed.setup_model(model, args.device)
        metrics = make_domain_evaluator(model, dev, domains, ALL_GENRES, args.eager)()
        path = write_results(args.result_dir or output_dir, metrics, args, model, model_dir,
                             {"role": "meta-teacher", "per_domain": per_domain(metrics, domains)})
        print(f"[metakd] meta-teacher dev accuracy {metrics['accuracy']:.4f}; results in {path}")
        return {"eval": metrics, "snapshot": model_dir}
    count = len(data.examples["train"])
    scores = mft.load_weights(args.data_dir, count) if args.use_sample_weights else \
        _optional_weights(args.data_dir, count)
    model, config, _ = load_classifier(model_dir, len(data.labels))
    layers = mft.choose_layers(args.layer_indexes, config.num_hidden_layers)
    model = distributed.setup_model(model, args.device)
    head = distributed.setup_model(
        DomainCorruptionHead(config.hidden_size, len(domains), layers, config.initializer_range), args.device)
    weight = args.domain_loss_weight if args.use_domain_loss else 0.0
    objective = MetaFineTuningObjective(model, head, weight)
    train = data.loader("train", args.batch_size_per_device, train=True, seed=args.seed, with_domain=True,
                        weights=scores)
    if scores is not None:
        mft.keep_weights(args.data_dir, scores)
    if not args.use_sample_weights:
        train = WithUnitWeights(train)
    train = WithShuffledDomains(train, seed=args.seed)
    task = args.task_name
    settings = {"use_sample_weights": bool(args.use_sample_weights), "use_domain_loss": bool(args.use_domain_loss),
                "domain_loss_weight": weight, "layer_indexes": layers}
    loop = _fit(args, objective, model, train, make_domain_evaluator(model, dev, domains, ALL_GENRES, args.eager),
                vocab, output_dir, lambda m: f"snapshot_best_mft_model_{task}_dev_{m['accuracy']}",
                {"labels": data.labels, "domains": domains, "role": "meta-teacher", "init": model_dir, **settings})
    metrics = _best_metrics(loop)
    if distributed.rank() == 0:
        path = write_results(args.result_dir or output_dir, metrics, args, model, loop.best_snapshot,
                             {"role": "meta-teacher", "best_step": loop.best_step, "domains": domains,
                              "per_domain": per_domain(metrics, domains), "train_seconds": loop.train_seconds,
                              **settings})
        shown = ", ".join(f"{d} {a:.4f}" for d, a in per_domain(metrics, domains).items())
        print(f"[metakd] meta-teacher best dev accuracy {metrics['accuracy']:.4f} at step {loop.best_step} "
              f"({shown}); snapshot {loop.best_snapshot}; results in {path}")
    return {"train": loop, "snapshot": loop.best_snapshot, "eval": metrics}


def meta_teacher_main(argv=None) -> None:
    run_meta_teacher(normalise_aliases(meta_teacher_parser().parse_args(argv)))


# ----------------------------------------------------------------------------------------------
# meta_teacher_eval.py: the teacher dump


def teacher_layers(student_layers: int, teacher_config: BertConfig) -> tuple[list[int], list[int]]:
    """(teacher attention layers, teacher hidden-state indexes) a `student_layers`-deep student learns from."""
    try:
        attention = [t for _, t in attention_mapping(student_layers, teacher_config.num_hidden_layers)]
        hidden = [t for _, t in hidden_mapping(student_layers, teacher_config.num_hidden_layers)]
    except ValueError as exc:
        fail(f"--student_num_hidden_layers: {exc}")
    return attention, hidden


def write_teacher_dump(directory: str, outputs: MetaTeacherOutputs, source, count: int, info: dict,
                       eager: bool = False) -> str:
    """Run `outputs` over `source` once, streaming each array into a memory-mapped .npy by example index.

    The directory (arrays + index.json, readable with `teacher_cache.load_cache`) is written under a
    temporary name and renamed into place, so a crash never leaves half a dump. Every rank runs the
    forward (global graphs are collective); rank 0 writes.
    """
    writer = distributed.rank() == 0
    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=parent) if writer else None
    step = make_eval_step(outputs, eager=eager)
    arrays: dict[str, np.ndarray] = {}
    filled = np.zeros(count, dtype=bool)
    try:
        source.set_epoch(0)
        for batch in tqdm(source, desc="teacher dump", unit="batch", disable=not writer):
            produced = step(*[distributed.replicate_tensor(batch[n]) for n in outputs.input_names])
            values = [distributed.to_local_numpy(t) for t in produced]
            rows = batch["idxs"].numpy().reshape(-1).astype(np.int64)
            if not writer:
                continue
            if not arrays:
                for name, value in zip(outputs.names, values):
                    arrays[name] = np.lib.format.open_memmap(os.path.join(tmp, f"{name}.npy"), mode="w+",
                                                             dtype=np.float32, shape=(count, *value.shape[1:]))
            for name, value in zip(outputs.names, values):
                arrays[name][rows] = value
            filled[rows] = True
        if writer:
            if not filled.all():
                raise RuntimeError(f"teacher dump: {int((~filled).sum())} of {count} examples were not visited")
            shapes = {name: list(a.shape) for name, a in arrays.items()}
            for a in arrays.values():
                a.flush()
            arrays.clear()
            with open(os.path.join(tmp, "index.json"), "w", encoding="utf-8") as f:
                json.dump({"arrays": sorted(shapes), "shapes": shapes, "dtype": "float32", **info}, f, indent=2)
            if os.path.isdir(directory):
                shutil.rmtree(directory)
            os.replace(tmp, directory)
    except BaseException:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    distributed.barrier()
    return directory


def _read_index(directory: str) -> dict:
    with open(os.path.join(directory, "index.json"), encoding="utf-8") as f:
        return json.load(f)


def ensure_teacher_dump(args, teacher_dir: str, teacher, teacher_config: BertConfig, data: TaskData,
                        student_layers: int, refresh: bool = False) -> tuple[dict[str, np.ndarray], str]:
    """The meta-teacher's outputs for every training example: reused when an identical dump exists, else made.

    A dump is identified by the teacher snapshot, the training split (content, seq_length, vocab,
    count) and the mapped layers; it lives in `--dump_dir` or `<data_dir>/teacher_cache/metakd-<key>`.
    Returns (arrays memory-mapped by example index, directory).
    """
    domains = domain_names(data)
    count = len(data.examples["train"])
    scores = mft.load_weights(args.data_dir, count)  # the split carries the prototypical scores
    batch = args.eval_batch_size_per_device
    source = data.loader("train", batch, train=False, seed=args.seed, rank=0, world_size=1, with_domain=True,
                         weights=scores)
    mft.keep_weights(args.data_dir, scores)
    attention, hidden = teacher_layers(student_layers, teacher_config)
    spec = {"kind": DUMP_KIND, "attention_layers": attention, "hidden_layers": hidden,
            "vocab_hash": source.meta.get("vocab_hash"), "labels": data.labels, "domains": domains}
    key = cache_key(teacher_dir, source.meta, spec)
    directory = args.dump_dir or os.path.join(args.data_dir, "teacher_cache", f"metakd-{key}")
    if not refresh and os.path.isfile(os.path.join(directory, "index.json")):
        if _read_index(directory).get("key") == key:
            _note(f"teacher dump reused from {directory}")
            return load_cache(directory), directory
        _note(f"{directory} holds a dump of another teacher, split or layer choice: rewriting it")
    info = {"kind": DUMP_KIND, "key": key, "teacher": os.path.abspath(teacher_dir), "count": count,
            "seq_length": int(source.meta["seq_length"]), "source_hash": source.meta.get("source_hash"),
            "student_num_hidden_layers": student_layers, "teacher_num_hidden_layers": teacher_config.num_hidden_layers,
            **spec}
    outputs = MetaTeacherOutputs(distributed.setup_model(teacher, args.device), attention, hidden)
    write_teacher_dump(directory, outputs, source, count, info, eager=args.eager)
    arrays = load_cache(directory)
    if distributed.rank() == 0:
        print(f"[metakd] teacher dump of {count} examples in {directory} "
              f"({sum(a.nbytes for a in arrays.values()) / 2**20:.1f} MiB)")
        print(dump_table(arrays["teacher_logits"], source.arrays, domains))
    return arrays, directory


def dump_table(logits: np.ndarray, split: dict[str, np.ndarray], domains: Sequence[str]) -> str:
    """Per-domain teacher accuracy on the training set and mean domain-expertise weight, as text."""
    z = np.asarray(logits, dtype=np.float64)
    probs = np.exp(z - z.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    labels = split["label_ids"].reshape(-1).astype(np.int64)
    p_true = probs[np.arange(len(labels)), labels]
    weights = domain_expertise_weight(p_true, split["weights"].reshape(-1))
    lines = [f"{'domain':<12} {'count':>6} {'teacher acc':>11} {'mean u_i':>9}"]
    for i, name in enumerate(list(domains) + [ALL_GENRES]):
        rows = split["domain"] == i if name != ALL_GENRES else np.ones(len(labels), dtype=bool)
        if rows.any():
            acc = float((probs[rows].argmax(-1) == labels[rows]).mean())
            lines.append(f"{name:<12} {int(rows.sum()):>6} {acc:>11.4f} {float(weights[rows].mean()):>9.4f}")
    return "\n".join(lines)


def teacher_eval_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Meta-KD step 3: dump the meta-teacher's knowledge of every "
                                                 "training example (logits, attentions, hidden states, domain).")
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
    parser.set_defaults(task_name="senti", data_dir="data/SENTI")
    return parser


def run_teacher_eval(args) -> dict:
    teacher_dir, _, data = _prepare(args, args.model_load_dir, ("train",))
    teacher, config, _ = load_classifier(teacher_dir, len(data.labels))
    arrays, directory = ensure_teacher_dump(args, teacher_dir, teacher, config, data, args.student_num_hidden_layers,
                                            refresh=args.refresh_teacher_cache)
    return {"arrays": arrays, "dump_dir": directory, "teacher": teacher_dir}


def teacher_eval_main(argv=None) -> None:
    run_teacher_eval(normalise_aliases(teacher_eval_parser().parse_args(argv)))


# ----------------------------------------------------------------------------------------------
# meta_distill.py


def distill_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Meta-KD step 4: distil the meta-teacher into a student for one "
                                                 "domain (stage 1 intermediate layers, stage 2 soft labels).")
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


def first_stage_snapshot(output_dir: str, genre: str) -> str:
    return os.path.join(output_dir, f"snapshot_meta_student_first_{genre}")


def _snapshot_in(path: str) -> str:
    """A snapshot path as given, or the single `snapshot_*` snapshot inside a run's output directory."""
    if snapshot_format(path) is not None:
        return path
    inside = sorted(n for n in os.listdir(path) if n.startswith("snapshot_")
                    and snapshot_format(os.path.join(path, n)) is not None) if os.path.isdir(path) else []
    if len(inside) == 1:
        return os.path.join(path, inside[0])
    return path


def build_meta_student(args, data: TaskData, reference_dir: str, source: str | None
                       ) -> tuple[BertForSequenceClassification, BertConfig, str]:
    """The student: from scratch, or loaded from `source` and sliced to its layers k*i+k-1 when deeper.

    Returns (model, config, a description of where it came from).
    """
    if args.from_scratch:
        if args.student_num_hidden_layers < 1:
            fail("--from_scratch needs --student_num_hidden_layers >= 1")
        scratch = copy.copy(args)
        scratch.student_model = source
        model, config = build_student(scratch, data, reference_dir)
        return model, config, "random"
    source_dir = _snapshot_in(mft.resolve_model(source))
    _check_vocab(source_dir, data.tokenizer.vocab)
    model, config, _ = load_classifier(source_dir, len(data.labels))
    # stage 2 continues the stage-1 student whatever its depth
    wanted = 0 if args.distill_stage == "second" else args.student_num_hidden_layers
    if wanted < 0:
        fail(f"--student_num_hidden_layers must be >= 0, got {wanted}")
    if wanted > config.num_hidden_layers:
        fail(f"--student_num_hidden_layers {wanted}: {source_dir} has only {config.num_hidden_layers} layers")
    if 0 < wanted < config.num_hidden_layers:
        layers = student_init_layers(wanted, config.num_hidden_layers)
        state, config = slice_layers(module_state_numpy(model), config, layers)
        model = BertForSequenceClassification(config)
        load_state_into(model, state, verbose=False)
        _note(f"student: layers {','.join(map(str, layers))} of {source_dir} ({len(layers)} layers)")
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


def _stage_args(args, epochs: float):
    staged = copy.copy(args)
    staged.num_epochs = epochs
    return staged


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
    student_source = args.student_model
    if stage == "second" and not student_source:
        student_source = first_stage_snapshot(output_dir, args.genre)
        if not os.path.isdir(student_source):
            fail(f"--distill_stage second needs the stage-1 student: pass --student_model or run --distill_stage "
                 f"first with the same --model_save_dir (looked for {student_source})")
    model_path = args.teacher_model if args.do_train else (student_source or DEFAULT_MODEL)
    model_dir, vocab, data = _prepare(args, model_path, ("train", "dev"))
    domains = domain_names(data)
    genre_id(args.genre, domains)
    dev = _dev_source(args, data)
    result: dict = {"output_dir": output_dir}
    snapshot = _snapshot_in(mft.resolve_model(student_source)) if student_source else None
    student = None
    if args.do_train:
        teacher, t_config, _ = load_classifier(model_dir, len(data.labels), verbose=False)
        student, s_config, init = build_meta_student(args, data, model_dir, student_source)
        _check_pair(s_config, t_config)
        dump, dump_dir = ensure_teacher_dump(args, model_dir, teacher, t_config, data, s_config.num_hidden_layers,
                                             refresh=args.refresh_teacher_cache)
        del teacher
        count = len(data.examples["train"])
        scores = mft.load_weights(args.data_dir, count)
        loader = data.loader("train", args.batch_size_per_device, train=True, seed=args.seed, with_domain=True,
                             weights=scores)
        mft.keep_weights(args.data_dir, scores)
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
                args.use_sample_weights), args.device)
            train = WithCachedTargets(source, {name: dump[name] for name in TEACHER_ARRAYS})
            loop = _fit(_stage_args(args, epochs), objective, student, train, None, vocab, output_dir,
                        lambda m: "", meta)
            snapshot = save_classifier(student, first_stage_snapshot(output_dir, args.genre), s_config, vocab,
                                       {"task": args.task_name, "role": "meta-student-first", **meta,
                                        "final_loss": loop.final_loss, "epochs": epochs})
            distributed.barrier()
            result["first"] = loop
            _note(f"stage 1 ({args.genre}, {len(source.rows)} examples, {loop.steps} steps, final loss "
                  f"{loop.final_loss:.4f}): student in {snapshot}")
        if stage in ("second", "all", "vanilla"):
            if stage == "vanilla":
                objective = VanillaKDObjective(student, args.temperature, args.alpha)
                name, role = "kd", "vanilla-kd-student"
            else:
                objective = MetaDistillSecondStage(student, args.temperature, args.weight_soft_loss)
                name, role = "meta", "meta-kd-student"
            train = WithCachedTargets(source, {"teacher_logits": dump["teacher_logits"]})
            genre = args.genre
            loop = _fit(args, objective, student, train,
                        make_domain_evaluator(student, dev, domains, genre, args.eager), vocab, output_dir,
                        lambda m: f"snapshot_best_{name}_student_{genre}_dev_{m['accuracy']}",
                        {**meta, "role": role})
            snapshot, result["train"] = loop.best_snapshot, loop
            result["eval"] = metrics = _best_metrics(loop)
            if distributed.rank() == 0:
                _report(args, metrics, student, snapshot, output_dir, domains,
                        {"role": role, "stage": stage, "best_step": loop.best_step,
                         "train_seconds": loop.train_seconds, **meta})
    elif args.do_eval:
        if not snapshot:
            fail("--do_eval without --do_train needs --student_model")
        student, _, _ = load_classifier(snapshot, len(data.labels))
        student = distributed.setup_model(student, args.device)
        result["eval"] = metrics = make_domain_evaluator(student, dev, domains, args.genre, args.eager)()
        if distributed.rank() == 0:
            _report(args, metrics, student, snapshot, output_dir, domains, {"role": "student-eval"})
    result["snapshot"] = snapshot
    return result


def results_name(genre: str) -> str:
    return f"results_eval_{genre}.json"


def _report(args, metrics: dict, model, snapshot: str | None, output_dir: str, domains: Sequence[str],
            extra: dict) -> str:
    path = write_results(args.result_dir or output_dir, metrics, args, model, snapshot,
                         {"genre": args.genre, "per_domain": per_domain(metrics, domains), **extra},
                         name=results_name(args.genre))
    shown = ", ".join(f"{d} {a:.4f}" for d, a in per_domain(metrics, domains).items())
    print(f"[metakd] {extra.get('role')} ({args.genre}): dev accuracy {metrics['accuracy']:.4f} ({shown}); "
          f"snapshot {snapshot}; results in {path}")
    return path


def distill_main(argv=None) -> None:
    run_meta_distill(normalise_aliases(distill_parser().parse_args(argv)))


# ----------------------------------------------------------------------------------------------
# summary table (benchmarks/bench_metakd.sh)


def summary_table(teacher_results: str, columns: Sequence[tuple[str, str]], genres: Sequence[str]) -> str:
    """Per-domain dev accuracy: the meta-teacher, then one column per student family.

    `columns` are (title, path pattern) pairs; `{genre}` in the pattern is replaced by each genre, and the
    file's `accuracy` (its genre's dev accuracy) fills the cell. Missing files show as '-'.
    """
    def read(path: str) -> dict | None:
        if not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    teacher = read(teacher_results) or {}
    header = ["domain", "meta-teacher", *[title for title, _ in columns]]
    rows, sums = [], [[] for _ in header[1:]]
    for genre in genres:
        cells = [teacher.get("per_domain", {}).get(genre)]
        for _, pattern in columns:
            found = read(pattern.replace("{genre}", genre))
            cells.append(found.get("accuracy") if found else None)
        for bucket, value in zip(sums, cells):
            if value is not None:
                bucket.append(value)
        rows.append([genre, *("-" if v is None else f"{v:.4f}" for v in cells)])
    rows.append(["mean", *(f"{np.mean(b):.4f}" if len(b) == len(genres) else "-" for b in sums)])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in [header, *rows]]
    return "\n".join(lines)


def summary_main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Per-domain table of a Meta-KD run against its baselines.")
    parser.add_argument("--teacher_results", required=True, help="the meta-teacher's results_eval.json")
    parser.add_argument("--column", action="append", default=[], metavar="TITLE=PATTERN",
                        help="a student column: title and results path with {genre}, e.g. "
                             "'Meta-KD=out/metakd/{genre}/results_eval_{genre}.json' (repeatable)")
    parser.add_argument("--genres", default="books,dvd,electronics,kitchen")
    args = parser.parse_args(argv)
    columns = []
    for spec in args.column:
        title, sep, pattern = spec.partition("=")
        if not sep:
            fail(f"--column {spec!r}: expected TITLE=PATTERN")
        columns.append((title, pattern))
    print(summary_table(args.teacher_results, columns, [g for g in args.genres.split(",") if g]))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "summary":
        summary_main(sys.argv[2:])
    else:
        raise SystemExit("usage: python -m model_compress.jobs.metakd summary --teacher_results FILE --column ...")
