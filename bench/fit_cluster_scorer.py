"""Fit the cluster scorer (segtool.cluster_scorer) on the masks of a selection subset.

Clusters each image's feature grid with the pipeline's own settings at every k in --ks, computes
each cluster's cues (segtool.cluster_cues) and the fraction of its cells that the ground truth
calls object, and fits the logistic regression. Writes the scorer JSON with the command, the
data and the image count inside it. The shipped scorers come from:

    .venv/bin/python bench/fit_cluster_scorer.py folder:../shared/data/oxford17-flowers-seg \\
        --method scvae --out segtool/scorers/scvae.json
    .venv/bin/python bench/fit_cluster_scorer.py folder:../shared/data/oxford17-flowers-seg \\
        --method colour-pipeline --out segtool/scorers/colour-pipeline.json

(--stride 3: every third image in sorted order, the selection subset; the rest are never seen.)
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> None:
    from segtool.cluster_cues import cluster_cues
    from segtool.cluster_scorer import fit_scorer
    from segtool.datasets import open_dataset
    from segtool.errors import SegtoolError
    from segtool.methods import build_segmenter, parse_method
    from segtool.models import load_extractor
    from segtool.protocol import iem_crop

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--method", default="scvae", help="scvae or colour-pipeline, with [overrides]")
    parser.add_argument("--model", default=None, help="checkpoint folder or shipped name (scvae only)")
    parser.add_argument("--ks", default="2,3,4,5,6,8", help="the clusterings whose clusters are the training rows")
    parser.add_argument("--stride", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="at most this many images (after --stride)")
    parser.add_argument("--out", required=True, help="the scorer JSON to write (an existing file is kept)")
    parser.add_argument("--force", action="store_true", help="overwrite --out")
    args = parser.parse_args(argv)
    import scvae

    out = Path(args.out)
    if out.exists() and not args.force:
        sys.exit(f"fit_cluster_scorer: {out} exists; pass --force to overwrite it")
    try:
        ks = tuple(int(k) for k in args.ks.split(","))
    except ValueError:
        sys.exit(f"fit_cluster_scorer: --ks {args.ks!r}: expected whole numbers such as 2,3,4")
    if min(ks) < 2:
        sys.exit(f"fit_cluster_scorer: --ks {args.ks!r}: each k must be at least 2")
    if args.stride < 1:
        sys.exit("fit_cluster_scorer: --stride must be at least 1")
    try:
        reader = open_dataset(args.dataset, args.data_root)
        samples = reader.samples()[:: args.stride][: args.limit]
        pairs = [iem_crop(*reader.load(s)) for s in samples]
        # The simple rule here: the scorer being fit must not be needed to build the segmenter.
        spec = parse_method(args.method)
        spec.overrides.setdefault("rule", "simple")
        segmenter = build_segmenter(spec, extractor_factory=lambda: load_extractor(args.model))
        if not hasattr(segmenter, "cluster"):
            sys.exit(f"fit_cluster_scorer: --method {args.method!r}: choose scvae or colour-pipeline")
        grids = segmenter.feature_grids([image for image, _ in pairs])
    except (SegtoolError, scvae.CheckpointError) as exc:
        sys.exit(f"fit_cluster_scorer: {exc}")
    if not pairs:
        sys.exit("fit_cluster_scorer: the dataset has no images")

    import cv2

    rows, fractions, cells = [], [], []
    for (image, truth), features in zip(pairs, grids):
        h, w = features.shape[:2]
        truth_grid = cv2.resize(truth.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
        for labels in segmenter.cluster(segmenter.with_position(features), ks).values():
            cues, ids = cluster_cues(labels, features)
            rows.append(cues)
            fractions.extend(truth_grid[labels == c].mean() for c in ids)
            cells.extend(int((labels == c).sum()) for c in ids)
    provenance = {"command": "python bench/fit_cluster_scorer.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
                  "dataset": args.dataset, "method": args.method, "model": args.model or "default",
                  "images": len(pairs), "stride": args.stride, "ks": list(ks), "clusters": len(cells)}
    try:
        scorer = fit_scorer(np.concatenate(rows), np.array(fractions), np.array(cells), provenance)
    except ValueError as exc:
        sys.exit(f"fit_cluster_scorer: {exc}")
    out.parent.mkdir(parents=True, exist_ok=True)
    scorer.save(out)
    print(f"{len(pairs)} images, {len(cells)} clusters -> {out}")
    for name, c in zip(scorer.cues, scorer.coef):
        print(f"  {name:>22} {c:+.3f}")
    print(f"  {'intercept':>22} {scorer.intercept:+.3f}")


if __name__ == "__main__":
    main()
