"""Per-domain evaluation of multi-domain tasks: metrics on one domain (or all) plus accuracy per domain."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from model_compress.training.evaluation import Predictor
from model_compress.training.metrics import classification_metrics
from model_compress.training.objectives import ClassifierLogits

ALL_DOMAINS = "all"


def domain_index(name: str, domains: Sequence[str]) -> int | None:
    """Id of domain ``name`` (None for ``all``); an unknown name raises ValueError listing the choices."""
    if name == ALL_DOMAINS:
        return None
    if name not in domains:
        raise ValueError(f"{name!r} is not a domain of this task: use one of {', '.join(domains)} or all")
    return list(domains).index(name)


def domain_metrics(logits: np.ndarray, labels: np.ndarray, domain_ids: np.ndarray, domains: Sequence[str],
                   genre: str = ALL_DOMAINS) -> dict[str, float]:
    """Metrics on the rows of `genre` (all rows for `all`) plus `accuracy_<domain>` for every domain present."""
    predictions = np.asarray(logits).argmax(-1).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    domain_ids = np.asarray(domain_ids).reshape(-1)
    gid = domain_index(genre, domains)
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

