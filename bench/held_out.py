"""Scores of an eval run on the images a selection subset left out.

The cluster scorer and the pipeline's settings were chosen on every third image in sorted order
(`--stride 3`: indices 0, 3, 6, ...). This prints each method's mean IoU on the other images
only, beside its mean on all of them, so a reader can see how much of a figure is in-sample.

    .venv/bin/python bench/held_out.py segtool-out/model-card/full [--stride 3]
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="an eval output folder (holds results.csv), run without --stride")
    parser.add_argument("--stride", type=int, default=3, help="the selection subset's stride")
    args = parser.parse_args(argv)
    table = Path(args.run) / "results.csv"
    if not table.is_file():
        sys.exit(f"held_out: {table}: no such file (run `segtool eval ... --out {args.run}` first)")
    if args.stride < 2:
        sys.exit("held_out: --stride must be at least 2 (1 would leave nothing out)")
    scores = defaultdict(lambda: {"all": [], "held": []})
    with table.open(newline="") as f:
        for row in csv.DictReader(f):
            key = (row["method"], float(row["noise"]))
            value = (float(row["iou"]), float(row["iem_iou"]))
            scores[key]["all"].append(value)
            if int(row["index"]) % args.stride:
                scores[key]["held"].append(value)
    if not scores:
        sys.exit(f"held_out: {table} has no rows")
    width = max(len(m) for m, _ in scores)
    print(f"{'method':<{width}} {'noise':>5} {'held-out':>9} {'strict':>7} {'IEM':>6} {'all':>5} {'strict':>7} {'IEM':>6}")
    for (method, noise), s in scores.items():
        held, every = s["held"], s["all"]
        mean = lambda rows, j: 100 * sum(r[j] for r in rows) / max(1, len(rows))  # noqa: E731
        print(f"{method:<{width}} {noise:>5g} {len(held):>9} {mean(held, 0):>7.1f} {mean(held, 1):>6.1f} "
              f"{len(every):>5} {mean(every, 0):>7.1f} {mean(every, 1):>6.1f}")


if __name__ == "__main__":
    main()
