"""generate_senti_data.py: data/SENTI/{train,dev,test}.tsv (review, domain, sentiment) from the Amazon
multi-domain reviews, or from the project's generator when they are not there."""

from __future__ import annotations

import os
import random
from collections.abc import Sequence

from model_compress.easynlp.flags import OneLineParser, UsageError, guarded
from model_compress.easynlp.metakd import SENTI_DOMAINS, SENTI_LABELS
from model_compress.easynlp.schema import write_lines_atomic

RAW_HEADER = ("review", "domain", "sentiment")



def read_review_file(path: str) -> list[str]:
    """The texts of a ``*.review`` file of the Amazon multi-domain data (lines between <review_text> tags)."""
    texts, current = [], None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            tag = line.strip()
            if tag == "<review_text>":
                current = []
            elif tag == "</review_text>":
                if current is not None:
                    texts.append(" ".join(current).replace("\t", " ").strip())
                current = None
            elif current is not None and tag:
                current.append(tag)
    return [t for t in texts if t]


def _raw_reviews(source_dir: str) -> list[tuple[str, str, str]]:
    rows = []
    for folder in sorted(os.listdir(source_dir)):
        domain = folder.split("_")[0]
        if domain not in SENTI_DOMAINS:
            continue
        for label in SENTI_LABELS:
            path = os.path.join(source_dir, folder, f"{label}.review")
            if os.path.isfile(path):
                rows.extend((text, domain, label) for text in read_review_file(path))
    return rows


def _synthetic_reviews(rows_per_domain: int, seed: int) -> list[tuple[str, str, str]]:
    from model_compress.data.synthetic.generate import generate_domain
    from model_compress.data.synthetic.lexicon import POS

    rng = random.Random(f"easynlp-senti-{seed}")
    seen: set[str] = set()
    rows = []
    for domain in SENTI_DOMAINS:
        for item in generate_domain(domain, rows_per_domain, rng, "review", seen):
            rows.append((item.text, domain, "positive" if item.label == POS else "negative"))
    return rows


def stratified_split(rows: Sequence[tuple[str, str, str]], fraction: float, seed: int) -> tuple[list, list]:
    """(rest, held out): ``fraction`` of every (domain, label) group held out, after a seeded shuffle."""
    rng = random.Random(seed)
    shuffled = list(rows)
    rng.shuffle(shuffled)
    groups: dict[tuple[str, str], list] = {}
    for row in shuffled:
        groups.setdefault((row[1], row[2]), []).append(row)
    rest, held = [], []
    for key in sorted(groups):
        group = groups[key]
        n = max(1, round(len(group) * fraction)) if len(group) > 1 else 0
        held.extend(group[:n])
        rest.extend(group[n:])
    rng.shuffle(rest)
    rng.shuffle(held)
    return rest, held


def generate_senti_main(argv: Sequence[str] | None = None) -> None:
    parser = OneLineParser(prog="generate_senti_data.py",
                           description="data/SENTI/{train,dev,test}.tsv (review domain sentiment) from the Amazon "
                                       "multi-domain reviews in --source_dir, or from the project's generator when "
                                       "they are not there (nothing is downloaded here).")
    parser.add_argument("--source_dir", default="data/sorted_data_acl", help="the unpacked domain_sentiment_data")
    parser.add_argument("--output_dir", default="data/SENTI")
    parser.add_argument("--rows_per_domain", type=int, default=500, help="generated reviews per domain")
    parser.add_argument("--seed", type=int, default=11111)
    args = parser.parse_args(argv)

    def run() -> None:
        if os.path.isdir(args.source_dir):
            rows = _raw_reviews(args.source_dir)
            if not rows:
                raise UsageError("--source_dir", "holds no <domain>/{positive,negative}.review files", args.source_dir)
            origin = args.source_dir
        else:
            if args.rows_per_domain < 10:
                raise UsageError("--rows_per_domain", f"must be at least 10, got {args.rows_per_domain}")
            rows = _synthetic_reviews(args.rows_per_domain, args.seed)
            origin = f"generated ({args.source_dir} not found; the real data cannot be downloaded here)"
        rest, test = stratified_split(rows, 0.1, args.seed)
        train, dev = stratified_split(rest, 0.1, args.seed + 1)
        for name, part in (("train", train), ("dev", dev), ("test", test)):
            lines = ["\t".join(RAW_HEADER)] + ["\t".join(row) for row in part]
            write_lines_atomic(os.path.join(args.output_dir, f"{name}.tsv"), lines)
            counts = {d: sum(1 for r in part if r[1] == d) for d in SENTI_DOMAINS}
            print(f"{name}: {len(part)} rows ({', '.join(f'{d} {n}' for d, n in counts.items())})")
        print(f"[metakd] {args.output_dir}/{{train,dev,test}}.tsv from {origin}")

    guarded("generate_senti_data.py", run)


