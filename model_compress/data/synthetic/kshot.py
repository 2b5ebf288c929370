"""K-shot folders: the g1 group (cross) and each of its domains SST-2, MR, CR (single)."""

from __future__ import annotations

import os
import random
from collections.abc import Sequence

from model_compress.data.kshot import sample_k_shot, write_mft_csv
from model_compress.data.processors import InputExample
from model_compress.data.synthetic.generate import generate_domain
from model_compress.data.synthetic.lexicon import (
    G1_DOMAINS,
    KSHOT_K,
    KSHOT_SEEDS,
)


def make_k_shot(
    out: str, seed: int, k: int = KSHOT_K, seeds: Sequence[int] = KSHOT_SEEDS, pool_per_class: int = 100,
    n_test: int = 200,
) -> dict[str, int]:
    """K-shot folders for the g1 group (cross) and each of its domains (single)."""
    rng = random.Random(f"kshot-{seed}")
    pool: list[InputExample] = []
    tests: dict[str, list[InputExample]] = {}
    for domain in G1_DOMAINS:
        seen: set[str] = set()
        style = "sst" if domain == "SST-2" else "review"
        limits = {"min_words": 8, "max_words": 30} if style == "sst" else {"max_words": 40}
        for name, n in (("pool", 2 * pool_per_class), ("test", n_test)):
            items = generate_domain(domain, n, rng, style, seen, **limits)
            examples = [InputExample(f"{domain}-{name}-{i}", it.text, None, str(it.label), domain)
                        for i, it in enumerate(items)]
            if name == "pool":
                pool.extend(examples)
            else:
                tests[domain] = examples
    counts = {}
    for kseed in seeds:
        train, dev = sample_k_shot(pool, k, kseed)
        folder = f"{k}-{kseed}"
        cross = os.path.join(out, "k-shot-cross", "g1", folder)
        write_mft_csv(os.path.join(cross, "train.csv"), train)
        write_mft_csv(os.path.join(cross, "dev.csv"), dev)
        counts[f"k-shot-cross/g1/{folder}/train.csv"] = len(train)
        counts[f"k-shot-cross/g1/{folder}/dev.csv"] = len(dev)
        for domain in G1_DOMAINS:
            single = os.path.join(out, "k-shot-single", domain, folder)
            parts = {
                "train": [e for e in train if e.domain == domain],
                "dev": [e for e in dev if e.domain == domain],
                "test": tests[domain],
            }
            for split, examples in parts.items():
                write_mft_csv(os.path.join(single, f"{split}.csv"), examples)
                counts[f"k-shot-single/{domain}/{folder}/{split}.csv"] = len(examples)
    return counts
