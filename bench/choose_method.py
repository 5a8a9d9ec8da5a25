"""Choose among methods (settings of the pipeline) across kinds of images, from one `segtool eval`.

    .venv/bin/python bench/choose_method.py RUN [--incumbent scvae] [--no-loss] [--prefer-faster] [--json FILE]

RUN: the output folder (or results.csv) of a `segtool eval folder:A folder:B ... --methods M1,M2,...`
run on every image of each set (`--subset all`, the default). The choice uses only each set's
selection subset (index % 3 == 0) and is scored on the other two thirds:
- the method with the best mean over sets of the selection subsets' strict IoU; with --incumbent
  (the shipped setting) a challenger must lead it by more than two standard errors of the per-image
  difference (mean over sets), and with --no-loss also trail it on no single set by more than two
  (bench/saliency_blend.py's rule, shared); with --prefer-faster, among the methods that pass that
  rule and trail the best by no more than two standard errors (a tie), the one with the fewest
  seconds per image (the run's own timing, on the selection subsets) is taken;
- its held-out IoU per set beside the incumbent's, with the paired per-image difference;
- leave one kind out: for each set, the method chosen on the other sets' selection subsets, scored
  on that set's held-out images: the forecast for a kind of image nothing was chosen on.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from saliency_blend import choose_setting, selection_lead  # noqa: E402


def read_run(run: str) -> tuple[list[str], list[str], dict, dict]:
    """(sets, methods, scores, seconds) from a results.csv; scores[set, method] = (selection IoUs,
    held-out IoUs), each in the images' order, at noise 0; seconds[set, method] = the mean seconds
    per image on the selection subset."""
    path = Path(run)
    path = path / "results.csv" if path.is_dir() else path
    if not path.is_file():
        sys.exit(f"choose_method: {run}: no results.csv there (give an eval output folder or the file)")
    rows: dict = {}
    times: dict = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if float(row["noise"]) == 0:
                rows.setdefault((row["dataset"], row["method"]), {})[int(row["index"])] = float(row["iou"])
                if int(row["index"]) % 3 == 0:
                    times.setdefault((row["dataset"], row["method"]), []).append(float(row.get("seconds") or "nan"))
    sets = list(dict.fromkeys(s for s, _ in rows))
    methods = list(dict.fromkeys(m for _, m in rows))
    scores = {}
    for name in sets:
        indices = None
        for method in methods:
            per_image = rows.get((name, method))
            if per_image is None or (indices is not None and sorted(per_image) != indices):
                sys.exit(f"choose_method: {path}: {method} was not scored on the same images of {name} as the others")
            indices = sorted(per_image)
            if not any(i % 3 == 0 for i in indices) or all(i % 3 == 0 for i in indices):
                sys.exit(f"choose_method: {path}: {name} needs images of both the selection subset and the rest "
                         "(run eval with --subset all)")
            selection = np.array([per_image[i] for i in indices if i % 3 == 0])
            held_out = np.array([per_image[i] for i in indices if i % 3 != 0])
            scores[name, method] = (selection, held_out)
    seconds = {key: float(np.mean(values)) for key, values in times.items()}
    return sets, methods, scores, seconds


def fold_settings(method: str) -> dict:
    """The settings a method's brackets give (scvae[consensus=[4,6,8]] -> {"consensus": [4, 6, 8]})."""
    from segtool.pipeline.registry import parse_method

    return {key: list(value) if isinstance(value, tuple) else value
            for key, value in parse_method(method).overrides.items()}


def paired(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    d = 100 * (b - a)
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else float("nan")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--incumbent", default=None, help="the shipped method, kept unless a challenger wins")
    parser.add_argument("--no-loss", action="store_true", help="a challenger may also trail the incumbent on no set")
    parser.add_argument("--prefer-faster", action="store_true",
                        help="among methods tied with the best (within two standard errors), take the fastest")
    parser.add_argument("--json", default=None, help="also write the choices and figures here")
    args = parser.parse_args(argv)

    sets, methods, scores, seconds = read_run(args.run)
    if args.incumbent is not None and args.incumbent not in methods:
        sys.exit(f"choose_method: --incumbent {args.incumbent!r} is not among the run's methods: {', '.join(methods)}")
    if len(sets) < 2:
        sys.exit("choose_method: needs a run over at least two sets (leave one kind out has nothing to leave otherwise)")
    reference = args.incumbent or methods[0]

    def is_behind(lead: float, se: float) -> bool:
        return lead < -2 * se

    def choose(among: list[str]) -> str:
        best = choose_setting(methods, scores, among, args.incumbent, args.no_loss)
        if not args.prefer_faster:
            return best
        # choose_setting over one method gives it back only when it passes the incumbent rule.
        tied = [m for m in methods if choose_setting([m], scores, among, args.incumbent, args.no_loss) == m
                and not is_behind(*selection_lead(scores, among, m, best))]
        return min(tied or [best], key=lambda m: float(np.mean([seconds[n, m] for n in among])))

    width = max(len(m) for m in methods)
    print("strict IoU on the selection subsets (where the choice is made):")
    print(f"  {'method':{width}s}  " + "  ".join(f"{s[:14]:>14s}" for s in sets) + "    mean  s/image")
    for method in methods:
        values = [100 * scores[s, method][0].mean() for s in sets]
        cost = np.mean([seconds[s, method] for s in sets])
        print(f"  {method:{width}s}  " + "  ".join(f"{v:14.1f}" for v in values) + f"  {np.mean(values):6.1f}  {cost:7.3f}")

    print(f"\nheld-out strict IoU of every method (reported, not used to choose), and the paired per-image "
          f"difference against {reference}:")
    for method in methods:
        cells = []
        for name in sets:
            diff, se = paired(scores[name, reference][1], scores[name, method][1])
            cells.append(f"{100 * scores[name, method][1].mean():5.1f} ({diff:+5.2f} +- {se:.2f})")
        mean = np.mean([100 * scores[name, method][1].mean() for name in sets])
        print(f"  {method:{width}s}  " + "  ".join(cells) + f"  mean {mean:.1f}")

    chosen = choose(sets)
    print(f"\nchosen on all sets: {chosen}" + (" (the incumbent)" if chosen == args.incumbent else ""))
    print(f"held-out strict IoU, and the paired per-image difference against {reference}:")
    # "leave_one_kind_out" holds each fold's settings as bench/saliency_blend.py writes them, so that
    # bench/leave_one_kind_out.py --fold-overrides takes either file; the fold's figures sit beside.
    report: dict = {"chosen": chosen, "incumbent": args.incumbent, "held_out": {}, "leave_one_kind_out": {},
                    "leave_one_kind_out_scores": {}}
    for name in sets:
        held = scores[name, chosen][1]
        diff, se = paired(scores[name, reference][1], held)
        report["held_out"][name] = {"iou": 100 * held.mean(), "difference": diff, "se": se, "images": len(held)}
        print(f"  {name:24s} {100 * held.mean():5.1f}   {diff:+5.2f} +- {se:.2f}")

    print("\nleave one kind out (chosen without the set, scored on its held-out images):")
    loko, loko_reference = [], []
    for name in sets:
        fold = choose([s for s in sets if s != name])
        held = scores[name, fold][1]
        diff, se = paired(scores[name, reference][1], held)
        loko.append(100 * held.mean())
        loko_reference.append(100 * scores[name, reference][1].mean())
        report["leave_one_kind_out"][name] = fold_settings(fold)
        report["leave_one_kind_out_scores"][name] = {"chosen": fold, "iou": loko[-1], "difference": diff, "se": se}
        print(f"  {name:24s} {fold:{width}s} {loko[-1]:5.1f}   {diff:+5.2f} +- {se:.2f} against {reference}")
    print(f"  mean {np.mean(loko):.1f} (held-out mean of {reference}: {np.mean(loko_reference):.1f})")
    report["leave_one_kind_out_mean"] = float(np.mean(loko))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
