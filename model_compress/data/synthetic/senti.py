"""``SENTI/{train,dev}.tsv``: Amazon-style reviews in four domains (the Meta-KD / MFT data)."""

from __future__ import annotations

import os
import random

from model_compress.data.synthetic.generate import Item, generate_domain, write_lines
from model_compress.data.synthetic.lexicon import (
    POS,
    SENTI_DOMAINS,
)


def make_senti(out: str, seed: int, n_train: int = 1600, n_dev: int = 400) -> dict[str, int]:
    """``<out>/SENTI/{train,dev}.tsv`` in the Amazon multi-domain layout."""
    rng = random.Random(f"senti-{seed}")
    seen: set[str] = set()
    splits: dict[str, list[Item]] = {"train": [], "dev": []}
    per_domain = {"train": n_train // len(SENTI_DOMAINS), "dev": n_dev // len(SENTI_DOMAINS)}
    for domain in SENTI_DOMAINS:
        for split in ("train", "dev"):
            splits[split].extend(generate_domain(domain, per_domain[split], rng, "review", seen))
    counts = {}
    for split, items in splits.items():
        rng.shuffle(items)
        lines = ["guid\ttext_a\ttext_b\tlabel\tdomain"]
        for i, item in enumerate(items):
            label = "positive" if item.label == POS else "negative"
            lines.append(f"{split}-{i:05d}\t{item.text}\t\t{label}\t{item.domain}")
        write_lines(os.path.join(out, "SENTI", f"{split}.tsv"), lines)
        counts[f"SENTI/{split}.tsv"] = len(items)
    return counts
