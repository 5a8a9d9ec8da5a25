"""Fit the cluster scorer (segtool.pipeline.foreground.scorer) on the masks of several kinds of images.

Clusters each image's feature grid with the pipeline's own settings at every k in --ks, computes
each cluster's cues (segtool.pipeline.foreground.cues) and the fraction of its cells that the ground truth
calls object, and fits the logistic regression (or, with --trees N, N gradient-boosted trees of
--tree-depth, as the shipped scorers are). Only the selection subset of each set is read
(--stride 3: every third image in sorted order); the other two thirds are never seen. Each set
weighs the same in the fit whatever its size, so no one kind of image decides the scorer. Writes
the scorer JSON with the command, the sets and the image counts inside it. The shipped scorers:

    .venv/bin/python bench/fit_cluster_scorer.py folder:../shared/data/oxford17-flowers-seg \\
        folder:../shared/data/ecssd-dev folder:../shared/data/isic-lesions-128 \\
        --unlabelled ../shared/data/photos-unlabelled --trees 200 --tree-depth 2 \\
        --method scvae --out segtool/scorers/scvae.json
    (the same with --method colour-pipeline --out segtool/scorers/colour-pipeline.json)

The scorer weighs the nine cues of the feature grid, the image's RBD saliency per cluster
(the tenth cue, segtool.pipeline.saliency.saliency_cue_grid) and the geodesic objectness of the
cells' colour (the eleventh, segtool.pipeline.foreground.geodesic_cue); --no-geodesic-cue fits
the first ten, --no-saliency-cue --no-geodesic-cue the nine alone.

--unlabelled FOLDER adds photos without masks as one more set, labelled by the agreement of
two label-free views (bench/pseudo_labels.py); with no labelled sets at all, the scorer is fit
without a single mask.

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

ROWS_VERSION = "nine cues + saliency + geodesic (sigma 1.5) of the cue copy"


def clusterings_with_cues(segmenter, image: np.ndarray, features: np.ndarray, ks,
                          saliency: np.ndarray | None = None) -> dict[int, tuple]:
    """{k: (labels [h, w], cues [clusters, 11], cluster ids)} for each clustering of one image:
    the nine grid cues, the saliency cue and the geodesic cue, as the pipeline computes them
    (`saliency`: the image's saliency_cue_grid when the caller already has it)."""
    from segtool.pipeline.foreground.cues import cluster_cues
    from segtool.pipeline.foreground.geodesic_cue import geodesic_objectness_grid
    from segtool.pipeline.saliency import cue_work_copy, saliency_cue_grid

    if saliency is None:
        saliency = saliency_cue_grid(segmenter.rbd_of(image), *features.shape[:2])
    # Read from the copy the pipeline reads it from (smoothed when the image is noisy).
    geodesic = geodesic_objectness_grid(cue_work_copy(image), *features.shape[:2])
    return {k: (labels, *cluster_cues(labels, features, saliency, geodesic))
            for k, labels in segmenter.cluster(segmenter.with_position(features), ks).items()}


def fitting_segmenter(method: str, model):
    """The method's segmenter with the simple rule: the scorer being fit must not be needed to build it."""
    from segtool.pipeline.models import load_extractor
    from segtool.pipeline.registry import build_segmenter, parse_method

    spec = parse_method(method)
    spec.overrides.setdefault("rule", "simple")
    segmenter = build_segmenter(spec, extractor_factory=lambda: load_extractor(model))
    if not hasattr(segmenter, "cluster"):
        raise SystemExit(f"fit_cluster_scorer: --method {method!r}: choose scvae or colour-pipeline")
    return segmenter


def fit_sets(args, ks: tuple[int, ...], stride: int, limit) -> dict[str, dict]:
    """Training rows of every labelled set (args.datasets) and every --unlabelled folder, by set name."""
    from pseudo_labels import unlabelled_rows

    cache = Path(args.rows_cache) if args.rows_cache else None
    sets = {}
    for dataset in args.datasets:
        rows, name = training_rows(dataset, args.data_root, args.method, args.model, ks, stride, limit, cache)
        sets[name] = rows
    for folder in args.unlabelled or []:
        segmenter = fitting_segmenter(args.method, args.model)
        rows, name = unlabelled_rows(folder, args.unlabelled_stride, limit, segmenter, ks, cache,
                                     [ROWS_VERSION, args.method, args.model or "default", list(ks)])
        sets[name] = rows
    return sets


def add_set_options(parser: argparse.ArgumentParser) -> None:
    """The training sets of a fit: labelled sets, and unlabelled photos with pseudo-labels."""
    parser.add_argument("datasets", nargs="*", help="folder:PATH or flowers | cub | isic (with --data-root)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--unlabelled", action="append", metavar="FOLDER",
                        help="photos without masks, pseudo-labelled (bench/pseudo_labels.py) as one more set; "
                             "never an evaluation set's images")
    parser.add_argument("--unlabelled-stride", type=int, default=4, help="every N-th photo of --unlabelled")
    parser.add_argument("--method", default="scvae", help="scvae or colour-pipeline, with [overrides]")
    parser.add_argument("--model", default=None, help="checkpoint folder or shipped name (scvae only)")
    parser.add_argument("--ks", default="2,3,4,5,6,8", help="the clusterings whose clusters are the training rows")
    parser.add_argument("--rows-cache", default=None, help="folder keeping each set's training rows")


def training_rows(dataset: str, data_root, method: str, model, ks: tuple[int, ...], stride: int, limit,
                  cache: Path | None) -> tuple[dict, str]:
    """(rows, set name): cues [n, 11] (the nine CUE_NAMES, the saliency cue, the geodesic cue), object
    fractions [n], cells [n] and image index [n] of every cluster of the subset."""
    from segtool.data.readers import open_dataset
    from segtool.evaluation.protocol import iem_crop

    reader = open_dataset(dataset, data_root)
    samples = reader.samples()[::stride][:limit]
    # ROWS_VERSION names what a row holds: a cache written by an older layout is never read.
    key = hashlib.sha256(json.dumps([ROWS_VERSION, str(getattr(reader, "root", dataset)), [s.id for s in samples],
                                     method, model or "default", list(ks)]).encode()).hexdigest()[:16]
    cached = cache / f"{reader.name}-{key}.npz" if cache else None
    if cached is not None and cached.is_file():
        with np.load(cached) as data:
            return {name: data[name] for name in ("cues", "fractions", "cells", "image")}, reader.name
    import cv2

    segmenter = fitting_segmenter(method, model)
    cues_rows, fractions, cells, image_ids = [], [], [], []
    for start in range(0, len(samples), 32):
        pairs = [iem_crop(*reader.load(s)) for s in samples[start:start + 32]]
        grids = segmenter.feature_grids([image for image, _ in pairs])
        for offset, ((image, truth), features) in enumerate(zip(pairs, grids)):
            h, w = features.shape[:2]
            truth_grid = cv2.resize(truth.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
            for labels, cues, ids in clusterings_with_cues(segmenter, image, features, ks).values():
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


def balanced_fit(sets: dict[str, dict], provenance: dict, saliency_cue: bool = True, geodesic_cue: bool = True,
                 trees: tuple[int, int] | None = None):
    """One scorer over several sets, each set's rows weighted to the same total (cells per set):
    on the nine cues of the feature grid, then the saliency cue (`saliency_cue`), then the
    geodesic cue (`geodesic_cue`, which needs the saliency cue before it). A logistic regression,
    or with `trees` = (count, depth) boosted trees on the same rows and weights."""
    from segtool.pipeline.foreground.cues import CUE_NAMES
    from segtool.pipeline.foreground.scorer import fit_scorer, fit_tree_scorer

    if geodesic_cue and not saliency_cue:
        raise ValueError("the geodesic cue comes after the saliency cue: weigh both, or neither")
    columns = len(CUE_NAMES) + int(saliency_cue) + int(geodesic_cue)
    cues, fractions, weights = [], [], []
    for name, rows in sets.items():
        if rows["cues"].shape[1] != len(CUE_NAMES) + 2:
            raise ValueError(f"{name}: rows of {rows['cues'].shape[1]} cues; expected the nine, saliency and geodesic")
        cells = rows["cells"].astype(np.float64)
        cues.append(rows["cues"][:, :columns])
        fractions.append(rows["fractions"])
        weights.append(cells / cells.sum())
    rows = (np.concatenate(cues), np.concatenate(fractions), np.concatenate(weights) * 1e4)
    if trees is not None:
        count, depth = trees
        return fit_tree_scorer(*rows, provenance, depth=depth, trees=count)
    return fit_scorer(*rows, provenance)


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Which kind of scorer to fit: a logistic regression, or boosted trees (--trees N)."""
    parser.add_argument("--trees", type=int, default=None, metavar="N",
                        help="fit N gradient-boosted trees instead of a logistic regression (the shipped scorers: 200)")
    parser.add_argument("--tree-depth", type=int, default=2, help="the trees' depth (with --trees; shipped: 2)")


def tree_option(args, prog: str) -> tuple[int, int] | None:
    if args.trees is None:
        return None
    if args.trees < 1 or args.tree_depth < 1:
        sys.exit(f"{prog}: --trees and --tree-depth must be at least 1")
    return args.trees, args.tree_depth


def add_scorer_options(parser: argparse.ArgumentParser) -> None:
    """The options of every script that writes a scorer: which cues, where, and overwriting."""
    parser.add_argument("--saliency-cue", action=argparse.BooleanOptionalAction, default=True,
                        help="weigh the image's RBD saliency per cluster beside the nine grid cues")
    parser.add_argument("--geodesic-cue", action=argparse.BooleanOptionalAction, default=True,
                        help="weigh the geodesic objectness of the cells' colour per cluster, after the saliency cue")
    parser.add_argument("--out", required=True, help="the scorer JSON to write (an existing file is kept)")
    parser.add_argument("--force", action="store_true", help="overwrite --out")


def scorer_path(args, prog: str) -> Path:
    """--out, refused (exit with one line) when it exists and --force was not given."""
    out = Path(args.out)
    if out.exists() and not args.force:
        sys.exit(f"{prog}: {out} exists; pass --force to overwrite it")
    return out


def main(argv: list[str] | None = None) -> None:
    from segtool.errors import SegtoolError

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_set_options(parser)
    parser.add_argument("--stride", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="at most this many images per set (after --stride)")
    add_scorer_options(parser)
    add_model_options(parser)
    args = parser.parse_args(argv)
    trees = tree_option(args, "fit_cluster_scorer")
    import scvae

    out = scorer_path(args, "fit_cluster_scorer")
    try:
        ks = tuple(int(k) for k in args.ks.split(","))
    except ValueError:
        sys.exit(f"fit_cluster_scorer: --ks {args.ks!r}: expected whole numbers such as 2,3,4")
    if min(ks) < 2:
        sys.exit(f"fit_cluster_scorer: --ks {args.ks!r}: each k must be at least 2")
    if args.stride < 1 or args.unlabelled_stride < 1:
        sys.exit("fit_cluster_scorer: --stride and --unlabelled-stride must be at least 1")
    if not args.datasets and not args.unlabelled:
        sys.exit("fit_cluster_scorer: give labelled sets, --unlabelled FOLDER, or both")
    try:
        sets = fit_sets(args, ks, args.stride, args.limit)
    except (SegtoolError, scvae.CheckpointError) as exc:
        sys.exit(f"fit_cluster_scorer: {exc}")
    if any(len(rows["cells"]) == 0 for rows in sets.values()):
        sys.exit("fit_cluster_scorer: a dataset has no images")
    provenance = {"command": "python bench/fit_cluster_scorer.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
                  "datasets": list(sets), "method": args.method, "model": args.model or "default",
                  "images": {name: int(len(np.unique(rows["image"]))) for name, rows in sets.items()},
                  "stride": args.stride, "ks": list(ks), "clusters": int(sum(len(r["cells"]) for r in sets.values())),
                  "weighting": "each set weighs the same; within a set, clusters by their cells"}
    if args.unlabelled:
        provenance.update(unlabelled_stride=args.unlabelled_stride,
                          pseudo_labels="cells where the label-free vote (simple rule, k = 2, 3, 4) and RBD saliency "
                                        "agree (bench/pseudo_labels.py)")
    try:
        scorer = balanced_fit(sets, provenance, args.saliency_cue, args.geodesic_cue, trees)
    except ValueError as exc:
        sys.exit(f"fit_cluster_scorer: {exc}")
    out.parent.mkdir(parents=True, exist_ok=True)
    scorer.save(out)
    print(f"{provenance['images']} images, {provenance['clusters']} clusters -> {out}")
    if trees is not None:
        print(f"  {scorer.provenance['model']}")
        return
    for name, c in zip(scorer.cues, scorer.coef):
        print(f"  {name:>22} {c:+.3f}")
    print(f"  {'intercept':>22} {scorer.intercept:+.3f}")


if __name__ == "__main__":
    main()
