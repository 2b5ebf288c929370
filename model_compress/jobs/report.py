"""Compare finished runs from their results_eval.json files: accuracy, size, speed.

    python -m model_compress.jobs.report teacher=output/demo/teacher pkd=output/demo/student_pkd ...
The first run is the reference for the speed-up column.
"""

from __future__ import annotations

import json
import os
import sys


def load_result(directory: str) -> dict:
    path = directory if directory.endswith(".json") else os.path.join(directory, "results_eval.json")
    if not os.path.isfile(path):
        raise SystemExit(f"error: {path} not found (did that run finish?)")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def format_table(rows: list[tuple[str, dict]]) -> str:
    """A fixed-width table; speed-up is relative to the first row's eval throughput."""
    reference = rows[0][1].get("eval_samples_per_second") or 0.0
    header = f"{'model':<24} {'dev acc':>8} {'params':>12} {'MiB':>8} {'eval samples/s':>15} {'speed-up':>9}"
    lines = [header, "-" * len(header)]
    for name, r in rows:
        sps = r.get("eval_samples_per_second", 0.0)
        speed = f"{sps / reference:.2f}x" if reference else "-"
        lines.append(f"{name:<24} {r['accuracy']:>8.4f} {r['parameters']:>12,} {r['model_size_mib']:>8.1f} "
                     f"{sps:>15.1f} {speed:>9}")
    return "\n".join(lines)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        raise SystemExit("usage: python -m model_compress.jobs.report NAME=DIR [NAME=DIR ...]")
    rows = []
    for item in argv:
        name, _, directory = item.partition("=")
        rows.append((name, load_result(directory or name)))
    print(format_table(rows))


if __name__ == "__main__":
    main()
