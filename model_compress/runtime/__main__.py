"""``python -m model_compress.runtime --report | --probe | --ranks``: show or re-measure the CPU runtime choice,
or print how many processes one CPU training job should run here (what the run scripts launch)."""

from __future__ import annotations

import argparse
import os
import sys

from model_compress.runtime import blas, tuning


def print_report() -> None:
    info = tuning.cpu_info()
    key, path = tuning.cpu_key(info), tuning.cache_path()
    entry = tuning.read_cache(path).get(key)
    print(f"cpu: {info['model']} ({info['vendor']}, {info['cores']} cores)")
    print(f"cache: {path}")
    if entry is None:
        print("no measurement for this CPU yet (run with --probe)")
        return
    print(f"measured {entry['measured_at']}; chosen: {entry['chosen_name']}")
    print(f"{'setting':34s} {'step ms':>8s} {'op mix ms':>9s} {'sgemm GFLOP/s':>14s} {'softmax after gemm ms':>22s} "
          f"{'LayerNorm ms':>13s} {'x-mean ms':>10s}")
    for row in sorted(entry["measurements"], key=lambda r: r[tuning.METRIC]):
        mark = " *" if row["name"] == entry["chosen_name"] else ""
        print(f"{row['name']:34s} {row[tuning.METRIC]:8.1f} {row['layer_ms']:9.1f} {row['sgemm_gflops']:14.1f} "
              f"{row['softmax_after_gemm_ms']:22.2f} {row['layernorm_ms']:13.2f} {row['center_ms']:10.2f}{mark}")
    for row in entry.get("rank_measurements", []):
        mark = " *" if row["ranks"] == entry.get("ranks", 1) else ""
        print(f"{entry['chosen_name']} as {row['ranks']} data-parallel process(es) of one job: "
              f"step {row[tuning.METRIC]:.1f} ms{mark}")
    in_force = {k: os.environ.get(k, "-") for k in (
        "MODEL_COMPRESS_BLAS", "MODEL_COMPRESS_BLAS_THREADS", "OPENBLAS_CORETYPE", "ONEFLOW_ENABLE_ONEDNN_OPTS")}
    print(f"in this process: {in_force}; sgemm routed: {blas.routed() or 'no (OneFlow own OpenBLAS)'}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m model_compress.runtime", description=__doc__,
                                     allow_abbrev=False)
    parser.add_argument("--report", action="store_true", help="print the chosen setting and its measurements")
    parser.add_argument("--probe", action="store_true", help="measure the candidates again and store the choice")
    parser.add_argument("--ranks", action="store_true",
                        help="print only the number of processes a CPU training job runs on this machine")
    args = parser.parse_args()
    if args.ranks:
        print(tuning.chosen_ranks())
        return
    if args.probe and not tuning.measured_in_this_process():
        setting = tuning.chosen_setting(force=True, log=print)
        print(f"chosen: {setting.name}")
    if args.report or not args.probe:
        print_report()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
