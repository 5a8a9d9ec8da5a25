"""Does the cluster scorer choose better with RBD saliency as a tenth cue? The probe that led to
the shipped scorers weighing it; it compares nine-cue and ten-cue scorers fit the same way.

    .venv/bin/python bench/saliency_cue_probe.py folder:SET_A folder:SET_B ... [--method scvae]
        [--held-step 2] [--json FILE]

For each image (the eval protocol's 128x128 crop) the pipeline's clusterings are computed as
shipped, with each cluster's nine cues (segtool.pipeline.foreground.cues) and a tenth: the mean,
over the cluster's cells, of the saliency vote (RBD saliency centred on its Otsu threshold,
segtool.pipeline.saliency.saliency_cue_grid) taken to the grid. Two logistic scorers, nine cues and ten, are fit
as bench/fit_cluster_scorer.py fits (clusterings at k = 2, 3, 4, 5, 6, 8 of the selection subset,
index % 3 == 0, of every set; each set weighs the same), then the whole default pipeline (the
vote over its k, the blend with saliency, the clean-up) runs with each scorer on the held-out
images (every --held-step-th of them). It prints strict IoU per set and the per-image
difference (ten cues - nine), in-sample across kinds and leave one kind out (both scorers fit
without the set they are scored on).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fit_cluster_scorer import balanced_fit, clusterings_with_cues  # noqa: E402

FIT_KS = (2, 3, 4, 5, 6, 8)  # bench/fit_cluster_scorer.py's default


def cluster_rows(segmenter, image: np.ndarray, features: np.ndarray, ks) -> list[tuple]:
    """(labels, ten cues: the nine and the saliency cue, cluster ids) of each clustering of one image."""
    return list(clusterings_with_cues(segmenter, image, features, ks).values())


def chosen_cells(p_object: np.ndarray, labels: np.ndarray, ids: list[int]) -> np.ndarray:
    """The scored rule's choice (segtool.pipeline.foreground.rules) from P(object) per cluster."""
    from segtool.pipeline.foreground.rules import clusters_below

    return np.isin(labels, clusters_below({c: 1.0 - float(p) for c, p in zip(ids, p_object)}, 0.5))


def read_set(spec: str, segmenter, held_step: int):
    """Training rows of the selection subset and the held-out images' clusterings of one set."""
    import cv2

    from segtool.data.readers import open_dataset
    from segtool.evaluation.protocol import iem_crop

    reader = open_dataset(spec)
    samples = reader.samples()
    picked = [(i, s) for i, s in enumerate(samples) if i % 3 == 0 or (i % 3 and (i // 3) % held_step == 0)]
    fit_rows = {"cues": [], "fractions": [], "cells": []}
    held = []
    for start in range(0, len(picked), 32):
        chunk = picked[start:start + 32]
        crops = [iem_crop(*reader.load(s), 128, "bilinear") for _, s in chunk]
        grids = segmenter.feature_grids([image for image, _ in crops])
        for (index, _), (image, truth), features in zip(chunk, crops, grids):
            if index % 3 == 0:
                h, w = features.shape[:2]
                truth_grid = cv2.resize(truth.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
                for labels, cues, ids in cluster_rows(segmenter, image, features, FIT_KS):
                    fit_rows["cues"].append(cues)
                    fit_rows["fractions"].extend(truth_grid[labels == c].mean() for c in ids)
                    fit_rows["cells"].extend(int((labels == c).sum()) for c in ids)
            else:
                held.append((image, truth.astype(bool), cluster_rows(segmenter, image, features, segmenter.cfg.ks)))
        print(f"  {reader.name}: {min(start + 32, len(picked))}/{len(picked)}", end="\r", file=sys.stderr)
    print(file=sys.stderr)
    rows = {"cues": np.concatenate(fit_rows["cues"]), "fractions": np.array(fit_rows["fractions"]),
            "cells": np.array(fit_rows["cells"], float)}
    return reader.name, rows, held


def fit_pair(sets: dict, names: list[str]):
    """The nine-cue and ten-cue scorers fit on the named sets, each set weighing the same
    (bench/fit_cluster_scorer.py's balanced_fit, without and with the saliency cue)."""
    chosen = {n: sets[n] for n in names}
    return (balanced_fit(chosen, {}, saliency_cue=False, geodesic_cue=False),
            balanced_fit(chosen, {}, saliency_cue=True, geodesic_cue=False))


def held_out_iou(segmenter, held, nine, ten) -> tuple[np.ndarray, np.ndarray]:
    from segtool.evaluation.metrics import score_mask

    scores = {9: [], 10: []}
    for image, truth, clusterings in held:
        for n, scorer in ((9, nine), (10, ten)):
            votes = np.mean([chosen_cells(scorer.probability(cues[:, :n]), labels, ids)
                             for labels, cues, ids in clusterings], axis=0)
            scores[n].append(score_mask(segmenter.full_resolution_mask(image, votes), truth).iou)
    return np.array(scores[9]), np.array(scores[10])


def paired(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    d = 100 * (b - a)
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+", help="folder:PATH of each labelled set")
    parser.add_argument("--method", default="scvae", help="scvae or colour-pipeline")
    parser.add_argument("--held-step", type=int, default=1, help="score every N-th held-out image")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args(argv)
    if len(args.datasets) < 2:
        sys.exit("saliency_cue_probe: give at least two sets (leave one kind out needs the others)")
    if args.held_step < 1:
        sys.exit("saliency_cue_probe: --held-step must be at least 1")
    from segtool.pipeline.models import load_extractor
    from segtool.pipeline.registry import build_segmenter, parse_method

    segmenter = build_segmenter(parse_method(args.method), extractor_factory=lambda: load_extractor(None, cache=True))
    if not hasattr(segmenter, "cluster"):
        sys.exit(f"saliency_cue_probe: --method {args.method!r}: choose scvae or colour-pipeline")
    sets, held = {}, {}
    for spec in args.datasets:
        name, rows, items = read_set(spec, segmenter, args.held_step)
        sets[name], held[name] = rows, items
    names = list(sets)
    across = fit_pair(sets, names)
    result = {"method": args.method, "held_step": args.held_step, "sets": {}}
    print(f"{args.method}: strict IoU on held-out images, nine cues | ten cues (+ mean saliency vote)")
    print(f"{'set':24s} {'n':>4s}  {'9':>5s} {'10':>5s} {'10 - 9':>15s}   leave one kind out: {'9':>5s} {'10':>5s} {'10 - 9':>15s}")
    for name in names:
        nine, ten = held_out_iou(segmenter, held[name], *across)
        loko_nine, loko_ten = held_out_iou(segmenter, held[name], *fit_pair(sets, [n for n in names if n != name]))
        d, se = paired(nine, ten)
        dl, sel = paired(loko_nine, loko_ten)
        print(f"{name:24s} {len(nine):4d}  {100 * nine.mean():5.1f} {100 * ten.mean():5.1f} {d:+7.2f} +- {se:4.2f}"
              f"   {' ' * 20}{100 * loko_nine.mean():5.1f} {100 * loko_ten.mean():5.1f} {dl:+7.2f} +- {sel:4.2f}")
        result["sets"][name] = {"images": len(nine), "nine": float(nine.mean()), "ten": float(ten.mean()),
                                "difference": [d, se], "loko_nine": float(loko_nine.mean()),
                                "loko_ten": float(loko_ten.mean()), "loko_difference": [dl, sel]}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
