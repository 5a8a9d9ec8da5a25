"""Fit the cluster scorer (segtool.pipeline.foreground.scorer) on the masks of several kinds of images.

Clusters each image's feature grid with the pipeline's own settings at every k in --ks, computes
each cluster's cues (segtool.pipeline.foreground.cues) and the fraction of its cells that the ground truth
calls object, and fits the logistic regression. Only the selection subset of each set is read
(--stride 3: every third image in sorted order); the other two thirds are never seen. Each set
weighs the same in the fit whatever its size, so no one kind of image decides the scorer. Writes
the scorer JSON with the command, the sets and the image counts inside it. The shipped scorers:

    .venv/bin/python bench/fit_cluster_scorer.py folder:../shared/data/oxford17-flowers-seg \\
        folder:../shared/data/ecssd-dev folder:../shared/data/isic-lesions-128 \\
        --method scvae --out segtool/scorers/scvae.json
    (the same with --method colour-pipeline --out segtool/scorers/colour-pipeline.json)

--rows-cache DIR keeps each set's training rows, so that fits on other combinations of the same
sets (bench/leave_one_kind_out.py) do not cluster the images again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
from pathlib import Path

import numpy as np


def training_rows(dataset: str, data_root, method: str, model, ks: tuple[int, ...], stride: int, limit,
                  cache: Path | None) -> tuple[dict, str]:
    """(rows, set name): cues [n, 9], object fractions [n], cells [n] of every cluster of the subset."""
    from segtool.pipeline.foreground.cues import cluster_cues
    from segtool.data.readers import open_dataset
    from segtool.pipeline.registry import build_segmenter, parse_method
    from segtool.pipeline.models import load_extractor
    from segtool.evaluation.protocol import iem_crop

    reader = open_dataset(dataset, data_root)
    samples = reader.samples()[::stride][:limit]
    key = hashlib.sha256(json.dumps([str(getattr(reader, "root", dataset)), [s.id for s in samples], method,
                                     model or "default", list(ks)]).encode()).hexdigest()[:16]
    cached = cache / f"{reader.name}-{key}.npz" if cache else None
    if cached is not None and cached.is_file():
        with np.load(cached) as data:
            return {name: data[name] for name in ("cues", "fractions", "cells", "image")}, reader.name
    import cv2

    # The simple rule here: the scorer being fit must not be needed to build the segmenter.
    spec = parse_method(method)
    spec.overrides.setdefault("rule", "simple")
    segmenter = build_segmenter(spec, extractor_factory=lambda: load_extractor(model))
    if not hasattr(segmenter, "cluster"):
        raise SystemExit(f"fit_cluster_scorer: --method {method!r}: choose scvae or colour-pipeline")
    cues_rows, fractions, cells, image_ids = [], [], [], []
    for start in range(0, len(samples), 32):
        pairs = [iem_crop(*reader.load(s)) for s in samples[start:start + 32]]
        grids = segmenter.feature_grids([image for image, _ in pairs])
        for offset, ((image, truth), features) in enumerate(zip(pairs, grids)):
            h, w = features.shape[:2]
            truth_grid = cv2.resize(truth.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
            for labels in segmenter.cluster(segmenter.with_position(features), ks).values():
                cues, ids = cluster_cues(labels, features)
                cues_rows.append(cues)
                fractions.extend(truth_grid[labels == c].mean() for c in ids)
                cells.extend(int((labels == c).sum()) for c in ids)
                image_ids.extend([start + offset] * len(ids))
        print(f"  {reader.name}: {min(start + 32, len(samples))}/{len(samples)} images", file=sys.stderr, flush=True)
    rows = {"cues": np.concatenate(cues_rows), "fractions": np.array(fractions), "cells": np.array(cells),
            "image": np.array(image_ids)}
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cached, **rows)
    return rows, reader.name


def balanced_fit(sets: dict[str, dict], provenance: dict):
    """One scorer over several sets, each set's rows weighted to the same total (cells per set)."""
    from segtool.pipeline.foreground.scorer import fit_scorer

    cues, fractions, weights = [], [], []
    for rows in sets.values():
        cells = rows["cells"].astype(np.float64)
        cues.append(rows["cues"])
        fractions.append(rows["fractions"])
        weights.append(cells / cells.sum())
    return fit_scorer(np.concatenate(cues), np.concatenate(fractions), np.concatenate(weights) * 1e4, provenance)


def main(argv: list[str] | None = None) -> None:
    from segtool.errors import SegtoolError

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+", help="folder:PATH or flowers | cub | isic (with --data-root)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--method", default="scvae", help="scvae or colour-pipeline, with [overrides]")
    parser.add_argument("--model", default=None, help="checkpoint folder or shipped name (scvae only)")
    parser.add_argument("--ks", default="2,3,4,5,6,8", help="the clusterings whose clusters are the training rows")
    parser.add_argument("--stride", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="at most this many images per set (after --stride)")
    parser.add_argument("--rows-cache", default=None, help="folder keeping each set's training rows")
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
    sets = {}
    try:
        for dataset in args.datasets:
            rows, name = training_rows(dataset, args.data_root, args.method, args.model, ks, args.stride, args.limit,
                                       Path(args.rows_cache) if args.rows_cache else None)
            sets[name] = rows
    except (SegtoolError, scvae.CheckpointError) as exc:
        sys.exit(f"fit_cluster_scorer: {exc}")
    if any(len(rows["cells"]) == 0 for rows in sets.values()):
        sys.exit("fit_cluster_scorer: a dataset has no images")
    provenance = {"command": "python bench/fit_cluster_scorer.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
                  "datasets": list(sets), "method": args.method, "model": args.model or "default",
                  "images": {name: int(len(np.unique(rows["image"]))) for name, rows in sets.items()},
                  "stride": args.stride, "ks": list(ks), "clusters": int(sum(len(r["cells"]) for r in sets.values())),
                  "weighting": "each set weighs the same; within a set, clusters by their cells"}
    try:
        scorer = balanced_fit(sets, provenance)
    except ValueError as exc:
        sys.exit(f"fit_cluster_scorer: {exc}")
    out.parent.mkdir(parents=True, exist_ok=True)
    scorer.save(out)
    print(f"{provenance['images']} images, {provenance['clusters']} clusters -> {out}")
    for name, c in zip(scorer.cues, scorer.coef):
        print(f"  {name:>22} {c:+.3f}")
    print(f"  {'intercept':>22} {scorer.intercept:+.3f}")


if __name__ == "__main__":
    main()
