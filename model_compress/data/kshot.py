"""K-shot sampling for Meta Fine-Tuning: K examples per class per domain for train, K more for dev.

The sampled files use the MFT CSV format (``text<TAB>domain<TAB>label``, no header) in a
``<K>-<seed>`` folder, e.g. ``data/k-shot-cross/g1/16-42/{train,dev}.csv``.

Command line (real data drop-in)::

    python -m model_compress.data.kshot --input pool.csv --k 16 --seed 42 --out data/k-shot-cross/g1
"""

from __future__ import annotations

import argparse
import os
import random
from collections.abc import Sequence

from model_compress.data.processors import DataFormatError, InputExample, read_rows


def sample_k_shot(
    examples: Sequence[InputExample], k: int, seed: int
) -> tuple[list[InputExample], list[InputExample]]:
    """Draw ``k`` train and ``k`` other dev examples from every (domain, label) group.

    Groups are visited in sorted order and sampled with ``random.Random(seed)``, so the result
    depends only on the examples, ``k`` and ``seed``. Both outputs are shuffled.

    Raises:
        ValueError: a group has fewer than ``2 * k`` examples.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    groups: dict[tuple[str, str], list[InputExample]] = {}
    for ex in examples:
        groups.setdefault((str(ex.domain), str(ex.label)), []).append(ex)
    rng = random.Random(seed)
    train: list[InputExample] = []
    dev: list[InputExample] = []
    for key in sorted(groups):
        members = list(groups[key])
        if len(members) < 2 * k:
            raise ValueError(f"domain {key[0]!r}, label {key[1]!r} has {len(members)} examples; "
                             f"{2 * k} are needed for k={k} (train + dev)")
        rng.shuffle(members)
        train.extend(members[:k])
        dev.extend(members[k:2 * k])
    rng.shuffle(train)
    rng.shuffle(dev)
    return train, dev


def write_mft_csv(path: str, examples: Sequence[InputExample]) -> None:
    """Write examples as ``text<TAB>domain<TAB>label`` lines (UTF-8, ``\\n`` line ends)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for ex in examples:
            fields = (ex.text_a, ex.domain or "", ex.label or "")
            for field in fields:
                if "\t" in field or "\n" in field or "\r" in field:
                    raise ValueError(f"example {ex.guid}: tabs and newlines cannot be written to {path}")
            f.write("\t".join(fields) + "\n")


def read_mft_csv(path: str) -> list[InputExample]:
    """Read an MFT CSV file of any domains/labels (no validation against a task's label set)."""
    examples = []
    for number, cols in read_rows(path):
        if len(cols) != 3:
            raise DataFormatError(path, number, "columns", f"expected 3 columns, found {len(cols)}")
        examples.append(InputExample(f"pool-{number}", cols[0], None, cols[2].strip(), cols[1].strip()))
    return examples


def write_k_shot_dir(out_dir: str, examples: Sequence[InputExample], k: int, seed: int) -> str:
    """Sample and write ``<out_dir>/<k>-<seed>/{train,dev}.csv``; return that folder."""
    train, dev = sample_k_shot(examples, k, seed)
    folder = os.path.join(out_dir, f"{k}-{seed}")
    write_mft_csv(os.path.join(folder, "train.csv"), train)
    write_mft_csv(os.path.join(folder, "dev.csv"), dev)
    return folder


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    , allow_abbrev=False)
    parser.add_argument("--input", required=True, help="MFT CSV pool: text<TAB>domain<TAB>label")
    parser.add_argument("--out", required=True, help="output folder; <k>-<seed>/ is created inside")
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--seed", type=int, nargs="+", default=[42])
    args = parser.parse_args(argv)
    pool = read_mft_csv(args.input)
    for seed in args.seed:
        print(write_k_shot_dir(args.out, pool, args.k, seed))


if __name__ == "__main__":
    main()
