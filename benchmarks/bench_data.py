"""Data pipeline throughput: tokenize + features + OFRecord write, and OneFlow read-back.

Usage: ``.venv/bin/python benchmarks/bench_data.py [--examples 4000] [--seq_length 128]``

The text is the synthetic review generator's (limited vocabulary, so the tokenizer's word cache hits
often); the ``no word cache`` line shows the worst case where every word is new.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import model_compress  # noqa: E402,F401  (OneFlow environment first)
from model_compress.data import synthetic  # noqa: E402
from model_compress.data.features import convert_examples_to_features, features_to_arrays  # noqa: E402
from model_compress.data.loader import OFRecordLoader  # noqa: E402
from model_compress.data.ofrecord import encode_records, ensure_ofrecord_split  # noqa: E402
from model_compress.data.processors import InputExample  # noqa: E402
from model_compress.data.tokenization import FullTokenizer  # noqa: E402
from model_compress.modeling.pretrained import default_pretrained_dir  # noqa: E402


def make_examples(n: int) -> list[InputExample]:
    rng = random.Random("bench")
    seen: set[str] = set()
    items = []
    per_domain = n // len(synthetic.SENTI_DOMAINS) + 1
    for domain in synthetic.SENTI_DOMAINS:
        items.extend(synthetic.generate_domain(domain, per_domain, rng, "review", seen))
    labels = ("negative", "positive")
    return [
        InputExample(f"b{i}", it.text, None, labels[it.label], it.domain) for i, it in enumerate(items[:n])
    ]


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:9.0f} examples/s  ({seconds * 1e6 / n:6.1f} us/example)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False)
    parser.add_argument("--examples", type=int, default=4000)
    parser.add_argument("--seq_length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    args = parser.parse_args()

    vocab = os.path.join(default_pretrained_dir(), "vocab.txt")
    examples = make_examples(args.examples)
    labels = ["positive", "negative"]
    domains = list(synthetic.SENTI_DOMAINS)
    n, seq = len(examples), args.seq_length
    print(f"{n} synthetic reviews, seq_length {seq}, vocab {vocab}")

    def best(fn) -> float:
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    with tempfile.TemporaryDirectory() as tmp:
        def pipeline(cache_size: int = 500_000) -> None:
            tokenizer = FullTokenizer(vocab, cache_size=cache_size)  # fresh: cold word cache
            ensure_ofrecord_split(examples, tmp, "train", tokenizer, seq, labels, domains, resave=True)

        total = best(pipeline)
        no_cache = best(lambda: pipeline(cache_size=0))

        tokenizer = FullTokenizer(vocab)
        tokenize = best(lambda: [tokenizer.encode(e.text_a) for e in examples])
        features = best(lambda: convert_examples_to_features(examples, labels, seq, tokenizer, domains))
        arrays = features_to_arrays(convert_examples_to_features(examples, labels, seq, tokenizer, domains))
        encode = best(lambda: encode_records(arrays))

        directory = os.path.join(tmp, "ofrecord", "train")
        start = time.perf_counter()
        loader = OFRecordLoader(directory, batch_size=32, train=True)
        loader.arrays  # noqa: B018  (reads the split through OFRecordReader)
        read = time.perf_counter() - start
        start = time.perf_counter()
        steps = sum(1 for _ in loader)
        iterate = time.perf_counter() - start

    print(f"tokenize + features + write (total) {rate(n, total)}")
    print(f"  same, no word cache                 {rate(n, no_cache)}")
    print(f"  tokenize only (warm cache)          {rate(n, tokenize)}")
    print(f"  tokenize + features (warm cache)    {rate(n, features)}")
    print(f"  OFRecord encode only                {rate(n, encode)}")
    print(f"read back via OFRecordReader          {rate(n, read)}")
    print(f"iterate {steps} shuffled batches of 32    {rate(steps * 32, iterate)}")


if __name__ == "__main__":
    main()
