"""Which kind of cluster scorer chooses clusters best: a logistic regression, one on the cues'
pairwise products, or boosted trees; measured on the training rows alone, before any eval.

    .venv/bin/python bench/scorer_family.py folder:SET_A folder:SET_B folder:SET_C \
        --unlabelled ../shared/data/photos-unlabelled --rows-cache segtool-out/rows-cache

The rows are bench/fit_cluster_scorer.py's (every cluster of every selection image at each k of
--ks, with its eleven cues, its object fraction and its size; the photos' rows pseudo-labelled),
weighted as that script weighs them (each set the same). For each scorer and each labelled image,
the IoU on the 32 x 32 grid of the clusters the scorer calls object (P > 1/2), at k = 6 and 8
(two of the default vote's clusterings), averaged: the step the pipeline's vote is made of,
without the blend and upsampling after it. Two splits, so that no figure is in-sample:
- leave one kind out: fit on the other labelled sets and the photos, scored on the set left out;
- in the suite: two folds by image within each set (fit on every set's other half and the
  photos, scored on this half).
Each row: the mean grid IoU, and the paired difference against the logistic regression (mean +-
standard error over images).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fit_cluster_scorer import add_set_options, fit_sets  # noqa: E402

SCORED_KS = (6, 8)
# name -> (kind, setting): the regression's C for "quadratic", (depth, trees) for "trees".
FAMILIES = {"logistic": ("linear", 1.0), "quadratic C=1": ("quadratic", 1.0), "quadratic C=0.1": ("quadratic", 0.1),
            "quadratic C=0.01": ("quadratic", 0.01), "trees 200 x depth 2": ("trees", (2, 200)),
            "trees 150 x depth 3": ("trees", (3, 150)), "trees 300 x depth 3": ("trees", (3, 300)),
            "trees 100 x depth 4": ("trees", (4, 100))}


def clusterings_of(rows: dict, ks: tuple[int, ...]) -> dict[int, list[np.ndarray]]:
    """{image: [row indices of its clustering at each k of ks]}: an image's rows come clustering
    by clustering, and each clustering's clusters cover every grid cell once."""
    out = {}
    for image in np.unique(rows["image"]):
        idx = np.where(rows["image"] == image)[0]
        cumulative = np.cumsum(rows["cells"][idx])
        per = cumulative[-1] / len(ks)
        bounds = np.searchsorted(cumulative, per * np.arange(1, len(ks)) - 1e-6) + 1
        out[int(image)] = np.split(idx, bounds)
    return out


def quadratic(z: np.ndarray) -> np.ndarray:
    i, j = np.triu_indices(z.shape[1])
    return np.concatenate([z, z[:, i] * z[:, j]], axis=1)


def fit(sets: dict[str, dict], names: list[str], kind: str, setting):
    """P(object) of cue rows, fit on `names` (each set weighing the same, as the shipped fit)."""
    from sklearn.linear_model import LogisticRegression

    from segtool.pipeline.foreground.scorer import fit_tree_scorer

    x = np.concatenate([sets[n]["cues"] for n in names])
    fractions = np.concatenate([sets[n]["fractions"] for n in names])
    weights = np.concatenate([sets[n]["cells"] / sets[n]["cells"].sum() for n in names]) * 1e4
    if kind == "trees":
        depth, count = setting
        scorer = fit_tree_scorer(x, fractions, weights, depth=depth, trees=count)
        return scorer.probability
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    expand = quadratic if kind == "quadratic" else (lambda z: z)
    z = expand((x - mean) / scale)
    z_mean, z_scale = z.mean(axis=0), z.std(axis=0)
    z_scale[z_scale == 0] = 1.0
    model = LogisticRegression(C=setting, max_iter=5000).fit((z - z_mean) / z_scale, fractions > 0.5,
                                                              sample_weight=weights)
    return lambda cues: model.predict_proba((expand((cues - mean) / scale) - z_mean) / z_scale)[:, 1]


def grid_iou(rows: dict, groups: dict, ks: tuple[int, ...], probability, images) -> dict[int, float]:
    p = probability(rows["cues"])
    out = {}
    for image in images:
        values = []
        for k, idx in zip(ks, groups[image]):
            if k not in SCORED_KS:
                continue
            cells, chosen = rows["cells"][idx], p[idx] > 0.5
            obj = rows["fractions"][idx] * cells
            inter = obj[chosen].sum()
            union = cells[chosen].sum() + obj.sum() - inter
            values.append(inter / union if union > 0 else 1.0)
        out[image] = float(np.mean(values))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_set_options(parser)
    parser.add_argument("--stride", type=int, default=3)
    parser.add_argument("--families", default=",".join(FAMILIES), help=f"comma-separated, of: {', '.join(FAMILIES)}")
    args = parser.parse_args(argv)
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        parser.error(f"unknown famil(ies) {', '.join(unknown)}")
    ks = tuple(int(k) for k in args.ks.split(","))
    if not set(SCORED_KS) <= set(ks):
        parser.error(f"--ks must include {SCORED_KS}")
    sets = fit_sets(args, ks, args.stride, None)
    labelled = list(sets)[:len(args.datasets)]
    photos = [n for n in sets if n not in labelled]
    groups = {n: clusterings_of(sets[n], ks) for n in labelled}

    def halves(half: int) -> dict[str, dict]:
        return {**{n: {key: value[(sets[n]["image"] % 2) != half] for key, value in sets[n].items()} for n in labelled},
                **{n: sets[n] for n in photos}}

    splits = {"leave one kind out (fit on the other kinds and the photos)":
              lambda target: [(sets, [n for n in sets if n != target], sorted(groups[target]))],
              "in the suite, two folds by image (fit on every kind's other half and the photos)":
              lambda target: [(halves(h), list(sets), [i for i in sorted(groups[target]) if i % 2 == h]) for h in (0, 1)]}
    print(f"grid IoU of the clusters called object at k = {', '.join(map(str, SCORED_KS))}; "
          "in brackets, the paired difference against the logistic regression")
    for title, split in splits.items():
        print(title)
        print(f"  {'scorer':22s} " + "  ".join(f"{n[:22]:>24s}" for n in labelled))
        baseline = {t: {} for t in labelled}
        for target in labelled:
            for fit_sets_, names, images in split(target):
                baseline[target].update(grid_iou(sets[target], groups[target], ks,
                                                 fit(fit_sets_, names, "linear", 1.0), images))
        for family in families:
            cells = []
            for target in labelled:
                scores = {}
                for fit_sets_, names, images in split(target):
                    scores.update(grid_iou(sets[target], groups[target], ks, fit(fit_sets_, names, *FAMILIES[family]),
                                           images))
                d = 100 * np.array([scores[i] - baseline[target][i] for i in scores])
                cells.append(f"{100 * np.mean(list(scores.values())):5.1f} ({d.mean():+.2f} +- "
                             f"{d.std(ddof=1) / np.sqrt(len(d)):.2f})")
            print(f"  {family:22s} " + "  ".join(f"{c:>24s}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
