"""Deterministic synthetic sentiment data, laid out exactly like the real datasets.

Third-party corpora cannot be shipped, so the default data is generated from templates and word
lists: English product reviews in the four Amazon domains (books, dvd, electronics, kitchen) and
three stand-ins for the MFT group g1 (SST-2, MR, CR). The grammar is built so that single words do not
decide the label:

* positive and negative words appear in both classes: negation (``the plot was not gripping``),
  contrast where the clause after *but / however / yet* (or the main clause of *although / even
  though*) decides (``the plot was dull but the acting was superb``);
* intensifiers, neutral filler sentences, aspects and adjectives shared across domains;
* about 5% mixed reviews without a contrast marker (either label) and 3% label noise.

A bag-of-words classifier therefore stays well below a fine-tuned BERT, and nothing reaches 100%.

Output (``--out data``)::

    SENTI/{train,dev}.tsv                           guid text_a text_b label domain (1600 / 400)
    glue_data/SST-2/{train,dev}.tsv                 sentence label (1200 / 300)
    k-shot-single/{SST-2,MR,CR}/16-{42,21,12}/{train,dev,test}.csv   text domain label
    k-shot-cross/g1/16-{42,21,12}/{train,dev}.csv                    text domain label
    easynlp/MRPC/{train,dev}.tsv                    label sid1 sid2 sent1 sent2, no header (400 / 100)

Run: ``python -m model_compress.data.synthetic --out data`` (or ``run_scripts/make_default_data.sh``).
The same arguments always produce the same bytes.

Modules: `lexicon` (word tables), `generate` (texts), one per data set (`senti`, `sst2`, `kshot`, `pairs`).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from model_compress.data.synthetic.generate import generate_domain
from model_compress.data.synthetic.kshot import make_k_shot
from model_compress.data.synthetic.lexicon import G1_DOMAINS, LEXICONS, SENTI_DOMAINS, Lexicon
from model_compress.data.synthetic.pairs import make_mrpc_pairs
from model_compress.data.synthetic.senti import make_senti
from model_compress.data.synthetic.sst2 import make_glue_sst2

__all__ = [
    "G1_DOMAINS",
    "LEXICONS",
    "SENTI_DOMAINS",
    "Lexicon",
    "generate_domain",
    "main",
    "make_all",
    "make_glue_sst2",
    "make_k_shot",
    "make_mrpc_pairs",
    "make_senti",
]


def make_all(out: str, seed: int = 0) -> dict[str, int]:
    """Write every default dataset under ``out``; return file -> number of rows."""
    counts = {}
    counts.update(make_senti(out, seed))
    counts.update(make_glue_sst2(out, seed))
    counts.update(make_k_shot(out, seed))
    counts.update(make_mrpc_pairs(out, seed))
    return counts


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the deterministic synthetic default data.", allow_abbrev=False)
    parser.add_argument("--out", default="data", help="output root (default: data)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default: 0, the shipped data)")
    args = parser.parse_args(argv)
    counts = make_all(args.out, args.seed)
    for path, n in sorted(counts.items()):
        print(f"{n:6d}  {os.path.join(args.out, path)}")

