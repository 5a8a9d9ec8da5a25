"""Part maps: each image's grid cells in n regions by one K-means, with no foreground choice (the
paper's qualitative mode, section 5.4: K-means with 5 clusters).

The features are the ones the segmenter clusters for its masks (codes, plus colour and position
at their configured weights), so a part map and a mask of the same settings agree on what is
similar; only the foreground rule and the vote over several k are left out.
"""

from __future__ import annotations

import numpy as np

from segtool.pipeline.cluster import kmeans_labels, principal_projection


def parts_labels(segmenter, images: list[np.ndarray], parts: int) -> list[np.ndarray]:
    """A part label per grid cell [h, w], 0..parts-1, for each image (a GridClusterSegmenter's features)."""
    labels = []
    for features in segmenter.feature_grids(images):
        features = segmenter.with_position(features)
        h, w, c = features.shape
        if parts > h * w:
            raise ValueError(f"{parts} parts is more than the {h}x{w} = {h * w} cells of the grid")
        projected = principal_projection(features.reshape(h * w, c), segmenter.cfg.keep_variance)  # as the masks'
        flat = kmeans_labels(projected, parts, seed=segmenter.cfg.seed, n_init=segmenter.cfg.n_init)
        labels.append(flat.reshape(h, w))
    return labels
