"""How much the foreground rule loses: the best choice of clusters vs the rule's choice.

For each image and each k, clusters the pipeline's feature grid once, then scores (strict IoU,
no refinement) the clusters the method's foreground rule picks (the cluster scorer by default;
`--method 'scvae[rule=simple]'` for boundary connectivity) and, as a ceiling, the best of
all 2^k - 2 non-empty, non-full subsets of clusters, chosen by looking at the ground truth. A
large gap says the clusters hold the object and the rule picks the wrong ones; a small one says
the features do not separate it.

    .venv/bin/python bench/cluster_choice_oracle.py folder:PATH [--method scvae] [--model M]
        [--ks 2,3,4,6] [--stride 3]
"""

from __future__ import annotations

import argparse
import itertools
import sys

import numpy as np


def best_subset_iou(labels: np.ndarray, truth: np.ndarray) -> float:
    from segtool.evaluation.metrics import iou
    from segtool.pipeline.refine import upsample_mask

    clusters = np.unique(labels)
    best = 0.0
    for n in range(1, len(clusters)):
        for subset in itertools.combinations(clusters, n):
            mask = upsample_mask(np.isin(labels, subset).astype(np.float32), *truth.shape)
            best = max(best, iou(mask, truth))
    return best


def main() -> None:
    from segtool.data.readers import open_dataset
    from segtool.pipeline.foreground.rules import select_foreground
    from segtool.pipeline.registry import build_segmenter, parse_method
    from segtool.evaluation.metrics import iou
    from segtool.pipeline.models import load_extractor
    from segtool.evaluation.protocol import iem_crop
    from segtool.pipeline.refine import upsample_mask
    from segtool.pipeline.saliency import saliency_cue_grid

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--method", default="scvae", help="scvae or colour-pipeline, with [overrides]")
    parser.add_argument("--model", default=None, help="checkpoint folder or shipped name (scvae only)")
    parser.add_argument("--ks", default="2,3,4,6")
    parser.add_argument("--stride", type=int, default=3)
    args = parser.parse_args()
    try:
        ks = tuple(int(k) for k in args.ks.split(","))
    except ValueError:
        sys.exit(f"cluster_choice_oracle: --ks {args.ks!r}: expected whole numbers such as 2,3,4,6")
    if min(ks) < 2 or max(ks) > 8:
        # The ceiling tries all 2^k - 2 subsets: past 8 clusters that is hours, not minutes.
        sys.exit(f"cluster_choice_oracle: --ks {args.ks!r}: each k must be from 2 to 8")

    import scvae
    from segtool.errors import SegtoolError

    try:
        reader = open_dataset(args.dataset, args.data_root)
        pairs = [iem_crop(*reader.load(s)) for s in reader.samples()[:: args.stride]]
        segmenter = build_segmenter(parse_method(args.method), extractor_factory=lambda: load_extractor(args.model))
        if not hasattr(segmenter, "cluster"):
            sys.exit(f"cluster_choice_oracle: --method {args.method!r}: choose scvae or colour-pipeline")
        grids = segmenter.feature_grids([image for image, _ in pairs])
    except (SegtoolError, scvae.CheckpointError) as exc:
        sys.exit(f"cluster_choice_oracle: {exc}")

    rule = {k: [] for k in ks}
    best = {k: [] for k in ks}
    for (image, truth), features in zip(pairs, grids):
        labels = segmenter.cluster(segmenter.with_position(features), ks)
        saliency = (saliency_cue_grid(segmenter.rbd_of(image), *features.shape[:2])
                    if segmenter.scorer_uses_saliency else None)
        geodesic = segmenter.geodesic_of(image, features.shape[:2])
        for k in ks:
            chosen = select_foreground(labels[k], segmenter.cfg.rule, segmenter.cfg.threshold, features=features,
                                       scorer=segmenter.cfg.scorer or segmenter.name, saliency=saliency,
                                       geodesic=geodesic)
            rule[k].append(iou(upsample_mask(chosen.mask.astype(np.float32), *truth.shape), truth))
            best[k].append(best_subset_iou(labels[k], truth))

    print(f"{len(pairs)} images, {args.method} (rule: {segmenter.cfg.rule}); strict IoU (%) without refinement")
    print(f"{'k':>3} {'rule':>6} {'best choice':>12} {'gap':>6}")
    for k in ks:
        r, b = 100 * np.mean(rule[k]), 100 * np.mean(best[k])
        print(f"{k:>3} {r:6.1f} {b:12.1f} {b - r:6.1f}")


if __name__ == "__main__":
    main()
