"""Training rows for the cluster scorer without a single mask: pseudo-labels on unlabelled photos.

Used by `bench/fit_cluster_scorer.py --unlabelled FOLDER` (and bench/leave_one_kind_out.py).
Each photo is brought to the eval protocol's size (short side 128, centre crop 128 x 128) and
clustered as a labelled image is (at each k of --ks). In place of a mask, two label-free
views that fail on different images label its grid cells:
- the label-free pipeline's vote: boundary connectivity (the `simple` rule) on the clusterings
  at k = 2, 3, 4 (whatever --ks are), a cell object when most of them call it so;
- RBD saliency (segtool.pipeline.saliency): the cell's saliency vote above 1/2.
A cell is object where both say object, background where both say background, and unknown
where they disagree. Each cluster becomes one training row: its object fraction is that of its
known cells, its weight its known cells (clusters with none are left out).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

LABEL_FREE_KS = (2, 3, 4)  # the label-free pipeline's vote (segtool.settings: rule=simple)


def pseudo_labels(clusterings: dict, saliency: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(object [h, w], known [h, w]) of one image from the simple rule's vote over LABEL_FREE_KS
    ({k: (labels, ...)}) and the saliency grid: known where the two agree."""
    from segtool.pipeline.foreground.rules import select_foreground

    vote = np.mean([select_foreground(clusterings[k][0], "simple").mask for k in LABEL_FREE_KS], axis=0) > 0.5
    salient = saliency > 0.5
    return vote & salient, vote == salient


def unlabelled_rows(folder: str, stride: int, limit, segmenter, ks: tuple[int, ...], cache: Path | None,
                    key_parts: list) -> tuple[dict, str]:
    """(rows, set name) as fit_cluster_scorer.training_rows gives for a labelled set: cues
    [n, 10], object fractions [n] and weights [n] (known cells), image index [n]."""
    from fit_cluster_scorer import clusterings_with_cues
    from segtool.evaluation.protocol import iem_crop
    from segtool.io.images import image_files_under, load_image
    from segtool.pipeline.saliency import saliency_cue_grid

    root = Path(folder)
    if not root.is_dir():
        raise SystemExit(f"fit_cluster_scorer: --unlabelled {folder}: not a folder")
    paths = image_files_under(root)[::stride][:limit]
    if not paths:
        raise SystemExit(f"fit_cluster_scorer: --unlabelled {folder}: no images there")
    name = f"{root.name} (pseudo-labels)"
    key = hashlib.sha256(json.dumps(key_parts + ["pseudo", str(root.resolve()), [p.name for p in paths]])
                         .encode()).hexdigest()[:16]
    cached = cache / f"{root.name}-pseudo-{key}.npz" if cache else None
    if cached is not None and cached.is_file():
        with np.load(cached) as data:
            return {n: data[n] for n in ("cues", "fractions", "cells", "image")}, name
    cues_rows, fractions, cells, image_ids, agreed = [], [], [], [], []
    for start in range(0, len(paths), 32):
        images = []
        for path in paths[start:start + 32]:
            image = load_image(path)
            images.append(iem_crop(image, np.zeros(image.shape[:2], bool))[0])  # the eval protocol's crop
        for offset, (image, features) in enumerate(zip(images, segmenter.feature_grids(images))):
            saliency = saliency_cue_grid(segmenter.rbd_of(image), *features.shape[:2])  # once: cue and label
            # The labels come from the label-free vote's clusterings whatever --ks are; the rows, from --ks.
            clusterings = clusterings_with_cues(segmenter, image, features, sorted({*ks, *LABEL_FREE_KS}), saliency)
            obj, known = pseudo_labels(clusterings, saliency)
            agreed.append(known.mean())
            for labels, cues, ids in (clusterings[k] for k in ks):
                for row, c in zip(cues, ids):
                    member = labels == c
                    n_known = int((member & known).sum())
                    if n_known:
                        cues_rows.append(row)
                        fractions.append((member & obj).sum() / n_known)
                        cells.append(n_known)
                        image_ids.append(start + offset)
        print(f"  {name}: {min(start + 32, len(paths))}/{len(paths)} photos", file=sys.stderr, flush=True)
    print(f"  {name}: the two views agree on {100 * np.mean(agreed):.0f}% of cells", file=sys.stderr)
    rows = {"cues": np.array(cues_rows), "fractions": np.array(fractions), "cells": np.array(cells, float),
            "image": np.array(image_ids)}
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cached, **rows)
    return rows, name
