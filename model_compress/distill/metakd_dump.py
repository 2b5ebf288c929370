"""The Meta-KD teacher dump: the meta-teacher's outputs for every training example, written once as
memory-mapped ``.npy`` arrays indexed by example plus ``index.json`` (see docs/metakd.md), and read
back with ``teacher_cache.load_cache``."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence

import numpy as np
from tqdm import tqdm

from model_compress.distill.mapping import attention_mapping, hidden_mapping
from model_compress.distill.meta import domain_expertise_weight
from model_compress.distill.metakd import MetaTeacherOutputs
from model_compress.training import distributed
from model_compress.training.evaluation import Predictor

DUMP_KIND = "metakd-teacher"
INDEX_JSON = "index.json"
ALL_DOMAINS = "all"


def dump_layers(student_layers: int, teacher_layers: int) -> tuple[list[int], list[int]]:
    """(teacher attention layers, teacher hidden-state indexes) a ``student_layers``-deep student learns from.

    Raises ValueError when the depths do not map onto each other.
    """
    attention = [t for _, t in attention_mapping(student_layers, teacher_layers)]
    hidden = [t for _, t in hidden_mapping(student_layers, teacher_layers)]
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
    predictor = Predictor(outputs, eager=eager)
    arrays: dict[str, np.ndarray] = {}
    filled = np.zeros(count, dtype=bool)
    try:
        batches = predictor.batches(source)
        for values, batch, _ in tqdm(batches, desc="teacher dump", unit="batch", total=len(source),
                                     disable=not writer):
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
            with open(os.path.join(tmp, INDEX_JSON), "w", encoding="utf-8") as f:
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


def dump_table(logits: np.ndarray, split: dict[str, np.ndarray], domains: Sequence[str]) -> str:
    """Per-domain teacher accuracy on the training set and mean domain-expertise weight, as text."""
    z = np.asarray(logits, dtype=np.float64)
    probs = np.exp(z - z.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    labels = split["label_ids"].reshape(-1).astype(np.int64)
    p_true = probs[np.arange(len(labels)), labels]
    weights = domain_expertise_weight(p_true, split["weights"].reshape(-1))
    lines = [f"{'domain':<12} {'count':>6} {'teacher acc':>11} {'mean u_i':>9}"]
    for i, name in enumerate(list(domains) + [ALL_DOMAINS]):
        rows = split["domain"] == i if name != ALL_DOMAINS else np.ones(len(labels), dtype=bool)
        if rows.any():
            acc = float((probs[rows].argmax(-1) == labels[rows]).mean())
            lines.append(f"{name:<12} {int(rows.sum()):>6} {acc:>11.4f} {float(weights[rows].mean()):>9.4f}")
    return "\n".join(lines)

