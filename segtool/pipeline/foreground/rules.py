"""Which clusters are foreground: boundary connectivity (Zhu et al., CVPR 2014) on the code grid.

Background regions touch the image border a lot for their size; objects rarely do. The grid
cells play the role of Zhu et al.'s superpixels.

simple:    BndCon(R) = border cells of R / sqrt(cells of R), per cluster; a cluster below the
           threshold is foreground.
geodesic:  per cell p, with geodesic distances d(p, q) along the 4-connected grid (edge weight
           = feature distance of neighbouring cells, in units of the image's median edge):
           Area(p) = sum_q exp(-d^2 / 2 sigma^2), Len(p) = sum_{q on border} exp(-d^2 / 2 sigma^2),
           BndCon(p) = Len / sqrt(Area), bgProb(p) = 1 - exp(-BndCon^2 / 2). A cluster whose
           mean bgProb is below the threshold (0.3) is foreground. Edge differences below half
           a median edge count as zero (texture, not boundary).
scored:    a cluster is foreground if the cluster scorer (segtool.pipeline.foreground.scorer: boosted
           trees or a logistic regression over scale-free cues of position, shape, border contact
           and feature contrast, and for the shipped scorers the image's RBD saliency and geodesic
           objectness, fit offline on selection subsets' masks and pseudo-labelled photos) gives
           it P(object) above 1/2; its score is the background probability
           1 - P(object).
In all three, if no cluster qualifies the most object-like one is taken, and if every cluster
qualifies the most background-like one is dropped: a mask is never empty or full.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segtool.pipeline.foreground.cues import border_cells, cluster_cues
from segtool.pipeline.foreground.geodesic_cue import background_probability_from_distances
from segtool.pipeline.foreground.scorer import load_scorer_cached
from segtool.settings import RULES



def cluster_boundary_connectivity(labels: np.ndarray) -> dict[int, float]:
    """border cells / sqrt(cells) for each cluster of a label grid [h, w]."""
    border = border_cells(*labels.shape)
    scores = {}
    for c in np.unique(labels):
        region = labels == c
        scores[int(c)] = float(np.logical_and(region, border).sum() / np.sqrt(region.sum()))
    return scores


def _grid_edges(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.arange(h * w).reshape(h, w)
    a = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
    b = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
    return a, b


def geodesic_background_probability(features: np.ndarray, sigma: float = 2.0, bndcon_sigma: float = 1.0,
                                    clip: float = 0.5) -> np.ndarray:
    """bgProb per cell of a feature grid [h, w, C] (see module docstring); returns [h, w]."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import dijkstra

    h, w, _ = features.shape
    flat = features.reshape(h * w, -1).astype(np.float64)
    a, b = _grid_edges(h, w)
    dist = np.linalg.norm(flat[a] - flat[b], axis=1)
    scale = np.median(dist)
    # Differences up to `clip` median edges are texture, not boundaries: without this the many
    # small steps inside a region add up and every path across a 32x32 grid looks long.
    dist = np.maximum(dist / (scale if scale > 0 else 1.0) - clip, 0.0)
    # Zero-weight edges would vanish from the sparse graph; a floor keeps them as edges.
    dist = np.maximum(dist, 1e-6)
    graph = coo_matrix((np.concatenate([dist, dist]), (np.concatenate([a, b]), np.concatenate([b, a]))),
                       shape=(h * w, h * w)).tocsr()
    # scipy's Dijkstra on the full grid (1,024 cells), which this rule has always used: the 1e-6
    # floor above is part of its distances (the geodesic cue's sweeps need no floor).
    return background_probability_from_distances(dijkstra(graph, directed=False), h, w, sigma, bndcon_sigma)


@dataclass
class ForegroundChoice:
    mask: np.ndarray                 # bool [h, w]
    foreground_clusters: list[int]
    cluster_scores: dict[int, float]  # the rule's score per cluster (lower = more object-like)


def select_foreground(labels: np.ndarray, rule: str = "simple", threshold: float | None = None,
                      features: np.ndarray | None = None, sigma: float = 2.0,
                      scorer: str = "scvae", saliency: np.ndarray | None = None,
                      geodesic: np.ndarray | None = None) -> ForegroundChoice:
    """Foreground clusters of a label grid [h, w] (see the module docstring for the rules);
    `scorer` names the shipped cluster scorer, or a JSON path, for the scored rule, and
    `saliency` is the grid [h, w] of segtool.pipeline.saliency.saliency_cue_grid, needed when
    that scorer weighs the saliency cue; `geodesic` likewise the grid of
    segtool.pipeline.foreground.geodesic_cue.geodesic_objectness_grid for the geodesic cue."""
    if rule == "simple":
        scores = cluster_boundary_connectivity(labels)
        threshold = 1.5 if threshold is None else threshold
    elif rule == "geodesic":
        if features is None:
            raise ValueError("the geodesic rule needs the feature grid")
        bg = geodesic_background_probability(features, sigma=sigma)
        scores = {int(c): float(bg[labels == c].mean()) for c in np.unique(labels)}
        threshold = 0.3 if threshold is None else threshold
    elif rule == "scored":
        if features is None:
            raise ValueError("the scored rule needs the feature grid")
        model = load_scorer_cached(scorer)
        if model.uses_saliency and saliency is None:
            raise ValueError(f"the cluster scorer {scorer!r} weighs saliency: pass the image's saliency grid")
        if model.uses_geodesic and geodesic is None:
            raise ValueError(f"the cluster scorer {scorer!r} weighs the geodesic cue: pass the image's geodesic grid")
        cues, ids = cluster_cues(labels, features, saliency if model.uses_saliency else None,
                                 geodesic if model.uses_geodesic else None)
        background = 1.0 - model.probability(cues)
        scores = {c: float(p) for c, p in zip(ids, background)}
        threshold = 0.5 if threshold is None else threshold
    else:
        raise ValueError(f"unknown foreground rule {rule!r}; choose one of {', '.join(RULES)}")
    chosen = clusters_below(scores, threshold)
    return ForegroundChoice(np.isin(labels, chosen), chosen, scores)


def clusters_below(scores: dict[int, float], threshold: float) -> list[int]:
    """The clusters scoring under `threshold` (lower = more object-like), never none and never
    all: with none, the lowest; with all, every one but the highest. Sorted by id."""
    ranked = sorted(scores, key=scores.get)
    chosen = [c for c in ranked if scores[c] < threshold]
    if not chosen:
        chosen = ranked[:1]
    elif len(chosen) == len(ranked):
        chosen = ranked[:-1]
    return sorted(chosen)
