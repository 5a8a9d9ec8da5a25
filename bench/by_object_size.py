"""Where a method fails, by how much of the image the object covers.

    .venv/bin/python bench/by_object_size.py RUN [--bins 0.35,0.5] [--methods scvae,colour-pipeline] [--all]

Reads RUN/results.csv (any `segtool eval` run) and splits each set's images by the ground truth's
share of the crop (`truth_fraction`), at the --bins edges. Per set, method and bin: images, mean
strict IoU, how often the inverted mask would have scored better (the wrong side chosen), and the
mean share of the crop the method called foreground. Held-out images only (index % 3 != 0)
unless --all. Noise-free rows only.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np


def size_table(rows: list[dict], edges: list[float]) -> list[dict]:
    """One entry per (dataset, method, bin) of the rows given, in the order they first appear."""
    bounds = [0.0, *edges, float("inf")]
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["dataset"], row["method"]), []).append(row)
    table = []
    for (dataset, method), group in groups.items():
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            chosen = [r for r in group if lo <= float(r["truth_fraction"]) < hi]
            if not chosen:
                continue
            table.append({"dataset": dataset, "method": method, "low": lo, "high": hi, "images": len(chosen),
                          "iou": 100 * float(np.mean([float(r["iou"]) for r in chosen])),
                          "wrong_side": 100 * float(np.mean([r["inverse_better"] in ("1", "True") for r in chosen])),
                          "predicted": 100 * float(np.mean([float(r["foreground_fraction"]) for r in chosen]))})
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a segtool eval output folder (with results.csv)")
    parser.add_argument("--bins", default="0.35,0.5", help="edges of the truth-fraction bins, in (0, 1)")
    parser.add_argument("--methods", default=None, help="comma-separated methods (default: every method of the run)")
    parser.add_argument("--all", action="store_true", help="every image, not only the held-out ones")
    args = parser.parse_args(argv)
    results = Path(args.run) / "results.csv"
    if not results.is_file():
        sys.exit(f"by_object_size: {results}: no such file (give a segtool eval output folder)")
    try:
        edges = sorted(float(v) for v in args.bins.split(",") if v.strip())
    except ValueError:
        sys.exit(f"by_object_size: --bins {args.bins!r}: give comma-separated numbers in (0, 1)")
    if not edges or any(not 0 < e < 1 for e in edges):
        sys.exit(f"by_object_size: --bins {args.bins!r}: give comma-separated numbers in (0, 1)")
    with results.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if float(r["noise"]) == 0 and (args.all or int(r["index"]) % 3 != 0)]
    if args.methods:
        wanted = [m.strip() for m in args.methods.split(",") if m.strip()]
        missing = sorted(set(wanted) - {r["method"] for r in rows})
        if missing:
            sys.exit(f"by_object_size: {', '.join(missing)}: not in {results}")
        rows = [r for r in rows if r["method"] in wanted]
    print(f"{'set':22s} {'method':28s} {'object share':>13s} {'images':>7s} {'IoU':>6s} {'wrong side':>11s} "
          f"{'called fg':>10s}")
    for e in size_table(rows, edges):
        share = f"{e['low']:.2f}-{min(e['high'], 1):.2f}"
        print(f"{e['dataset']:22s} {e['method'][:28]:28s} {share:>13s} {e['images']:7d} {e['iou']:6.1f} "
              f"{e['wrong_side']:10.0f}% {e['predicted']:9.0f}%")


if __name__ == "__main__":
    main()
