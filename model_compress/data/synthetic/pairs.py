"""``easynlp/MRPC/{train,dev}.tsv``: sentence pairs in the layout of EasyNLP's MRPC tutorial files.

No header; columns ``label sid1 sid2 sent1 sent2``. Both sentences are reviews of one domain; the label
is ``1`` when they take the same side (both positive or both negative), so neither text alone decides it.
"""

from __future__ import annotations

import os
import random

from model_compress.data.synthetic.generate import generate_domain, write_lines
from model_compress.data.synthetic.lexicon import SENTI_DOMAINS


def make_mrpc_pairs(out: str, seed: int, n_train: int = 400, n_dev: int = 100) -> dict[str, int]:
    """``<out>/easynlp/MRPC/{train,dev}.tsv``: ``n_train`` / ``n_dev`` pairs, labels about balanced."""
    rng = random.Random(f"easynlp-mrpc-{seed}")
    seen: set[str] = set()
    counts = {}
    sid = 100000
    for split, n in (("train", n_train), ("dev", n_dev)):
        lines = []
        per_domain = -(-n // len(SENTI_DOMAINS))
        for domain in SENTI_DOMAINS:
            items = generate_domain(domain, 2 * per_domain, rng, "review", seen, max_words=30)
            for first, second in zip(items[0::2], items[1::2]):
                label = "1" if first.label == second.label else "0"
                lines.append(f"{label}\t{sid}\t{sid + 1}\t{first.text}\t{second.text}")
                sid += 2
        rng.shuffle(lines)
        lines = lines[:n]
        write_lines(os.path.join(out, "easynlp", "MRPC", f"{split}.tsv"), lines)
        counts[f"easynlp/MRPC/{split}.tsv"] = len(lines)
    return counts
