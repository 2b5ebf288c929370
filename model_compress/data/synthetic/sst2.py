"""``glue_data/SST-2/{train,dev}.tsv``: SST-2 style snippets with a ``sentence<TAB>label`` header."""

from __future__ import annotations

import os
import random

from model_compress.data.synthetic.generate import generate_domain, write_lines


def make_glue_sst2(out: str, seed: int, n_train: int = 1200, n_dev: int = 300) -> dict[str, int]:
    """``<out>/glue_data/SST-2/{train,dev}.tsv`` with a ``sentence<TAB>label`` header."""
    rng = random.Random(f"glue-sst2-{seed}")
    seen: set[str] = set()
    counts = {}
    for split, n in (("train", n_train), ("dev", n_dev)):
        items = generate_domain("SST-2", n, rng, "sst", seen, min_words=8, max_words=30)
        lines = ["sentence\tlabel"] + [f"{item.text}\t{item.label}" for item in items]
        write_lines(os.path.join(out, "glue_data", "SST-2", f"{split}.tsv"), lines)
        counts[f"glue_data/SST-2/{split}.tsv"] = n
    return counts
