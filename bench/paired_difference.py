"""Is one evaluation really better than another? The per-image difference of two `segtool eval` runs.

Pairs the per-image rows of two results.csv files (same dataset, same images) and prints the mean
score of each, the mean per-image difference B - A with its standard error, and how often B wins.
A difference within about two standard errors is not a measured improvement.

    .venv/bin/python bench/paired_difference.py RUN_A RUN_B [--method scvae] [--method-b NAME]
        [--metric iou] [--noise 0] [--dataset NAME] [--held-out]

RUN_A / RUN_B: an eval output folder (holding results.csv) or the results.csv itself.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

METRICS = ("iou", "dice", "iem_iou", "iem_dice", "boundary_f")


def read_scores(run: str, method: str, metric: str, noise: float, dataset: str | None = None,
                held_out: bool = False) -> dict[tuple[str, str], float]:
    path = Path(run)
    if path.is_dir():
        path = path / "results.csv"
    if not path.is_file():
        sys.exit(f"paired_difference: {run}: no results.csv there (give an eval output folder or the file)")
    scores = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if row["method"] == method and math.isclose(float(row["noise"]), noise) \
                    and dataset in (None, row.get("dataset")) and not (held_out and int(row["index"]) % 3 == 0):
                if metric not in row:
                    sys.exit(f"paired_difference: {path}: no {metric} column (written by an older segtool)")
                scores[(row.get("dataset", ""), row["id"])] = float(row[metric])
    if not scores:
        sys.exit(f"paired_difference: {path}: no rows for method {method!r} at noise {noise:g}")
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_a")
    parser.add_argument("run_b")
    parser.add_argument("--method", default="scvae", help="method name in RUN_A (and in RUN_B unless --method-b)")
    parser.add_argument("--method-b", default=None)
    parser.add_argument("--metric", default="iou", choices=METRICS)
    parser.add_argument("--noise", type=float, default=0.0)
    parser.add_argument("--dataset", default=None, help="only this set's rows (a suite's results.csv holds several)")
    parser.add_argument("--held-out", action="store_true", help="only images outside the selection subset")
    args = parser.parse_args()

    a = read_scores(args.run_a, args.method, args.metric, args.noise, args.dataset, args.held_out)
    b = read_scores(args.run_b, args.method_b or args.method, args.metric, args.noise, args.dataset, args.held_out)
    common = sorted(a.keys() & b.keys())
    if len(common) < 2:
        sys.exit(f"paired_difference: the runs share {len(common)} image(s); they must score the same images")
    diffs = [b[i] - a[i] for i in common]
    n = len(diffs)
    mean = sum(diffs) / n
    se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1) / n)
    wins = sum(d > 0 for d in diffs) / n
    ties = sum(d == 0 for d in diffs) / n
    mean_a = sum(a[i] for i in common) / n
    mean_b = sum(b[i] for i in common) / n
    print(f"{n} images paired ({len(a) - n} only in A, {len(b) - n} only in B); metric {args.metric}, %")
    print(f"A  {args.method:<32s} {100 * mean_a:6.2f}")
    print(f"B  {args.method_b or args.method:<32s} {100 * mean_b:6.2f}")
    print(f"B - A per image: {100 * mean:+.2f} +- {100 * se:.2f} (standard error); "
          f"B better on {100 * wins:.0f}% of images, equal on {100 * ties:.0f}%")


if __name__ == "__main__":
    main()
