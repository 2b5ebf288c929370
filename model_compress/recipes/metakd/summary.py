"""Per-domain comparison table of finished Meta-KD runs: python -m model_compress.recipes.metakd summary ..."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence

import numpy as np

from model_compress.cli import user_errors
from model_compress.errors import RecipeError


def summary_table(teacher_results: str, columns: Sequence[tuple[str, str]], genres: Sequence[str]) -> str:
    """Per-domain dev accuracy: the meta-teacher, then one column per student family.

    `columns` are (title, path pattern) pairs; `{genre}` in the pattern is replaced by each genre, and the
    file's `accuracy` (its genre's dev accuracy) fills the cell. Missing files show as '-'.
    """
    def read(path: str) -> dict | None:
        if not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    teacher = read(teacher_results) or {}
    header = ["domain", "meta-teacher", *[title for title, _ in columns]]
    rows, sums = [], [[] for _ in header[1:]]
    for genre in genres:
        cells = [teacher.get("per_domain", {}).get(genre)]
        for _, pattern in columns:
            found = read(pattern.replace("{genre}", genre))
            cells.append(found.get("accuracy") if found else None)
        for bucket, value in zip(sums, cells):
            if value is not None:
                bucket.append(value)
        rows.append([genre, *("-" if v is None else f"{v:.4f}" for v in cells)])
    rows.append(["mean", *(f"{np.mean(b):.4f}" if len(b) == len(genres) else "-" for b in sums)])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in [header, *rows]]
    return "\n".join(lines)


@user_errors
def summary_main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Per-domain table of a Meta-KD run against its baselines.",
                                     allow_abbrev=False)
    parser.add_argument("--teacher_results", required=True, help="the meta-teacher's results_eval.json")
    parser.add_argument("--column", action="append", default=[], metavar="TITLE=PATTERN",
                        help="a student column: title and results path with {genre}, e.g. "
                             "'Meta-KD=out/metakd/{genre}/results_eval_{genre}.json' (repeatable)")
    parser.add_argument("--genres", default="books,dvd,electronics,kitchen")
    args = parser.parse_args(argv)
    columns = []
    for spec in args.column:
        title, sep, pattern = spec.partition("=")
        if not sep:
            raise RecipeError(f"--column {spec!r}: expected TITLE=PATTERN")
        columns.append((title, pattern))
    print(summary_table(args.teacher_results, columns, [g for g in args.genres.split(",") if g]))


