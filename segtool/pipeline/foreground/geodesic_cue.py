"""Geodesic boundary connectivity of each cell on the image's colour: an objectness cue per cell.

Zhu et al.'s boundary connectivity (CVPR 2014) asks how much of a region's soft extent lies on
the image border, where the extent of a cell is every cell reachable from it by small colour
steps (geodesic distances along the 4-connected grid). A background region is reached from the
frame through small steps even where it does not touch the frame itself (a sky shading from
blue to white, the bright middle of vignetted skin, a wall behind a person); an object is walled
off from the frame by its outline, even when it is large and central. Unlike RBD saliency,
which asks the same of SLIC superpixels and then optimises a map, this is computed on a coarse
grid of cell colours with steps below half the median step counted as texture; measured per
cell, it tells object from background beyond what the centre and RBD saliency already say on
each kind of image when that kind is left out of the fit (bench/cell_cue_probe.py).

It is computed on the cells' Lab colour, not on any model's features, so that the SC-VAE
pipeline and the same pipeline on colour weigh the same cue.
"""

from __future__ import annotations

import numpy as np

# Distances are in units of the image's median step between neighbouring cells, less the half
# step counted as texture (as the geodesic foreground rule does).
TEXTURE = 0.5
# Geodesic scale of a cell's soft extent: chosen by bench/cell_cue_probe.py on the selection
# subsets of three kinds among 1, 1.5, 2 and 4: 1.5 adds the most to centre and saliency over the
# three kinds left out (+0.011 / +0.021 / +0.008 AUC, against +0.009 / +0.017 / +0.009 at 2), and
# its per-image AUC is above 2's on every kind.
SIGMA = 1.5
BNDCON_SIGMA = 1.0     # boundary connectivity -> background probability, as Zhu et al.
# The grid the distances run on: half the pipeline's cells a side (16 x 16 for the 32 x 32 codes),
# which tells object from background as well as the full grid and costs a sixteenth.
COARSENING = 2


def _steps(features: np.ndarray, texture: float, unit: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Edge weights of the 4-connected grid: across [h, w-1] and down [h-1, w], in units of the
    median step (or of `unit`, in the features' own units) less `texture`, floored at 0."""
    flat = features.astype(np.float64)
    across = np.linalg.norm(flat[:, 1:] - flat[:, :-1], axis=-1)
    down = np.linalg.norm(flat[1:, :] - flat[:-1, :], axis=-1)
    if unit is not None:
        return np.maximum(across / unit - texture, 0.0), np.maximum(down / unit - texture, 0.0)
    every = np.concatenate([across.ravel(), down.ravel()])
    unit = float(np.median(every)) if every.size else 0.0
    if unit <= 0:  # mostly flat (a graphic, a logo on a plain ground): any step is an outline
        unit = float(every.mean()) if every.size and every.mean() > 0 else 1.0
    return np.maximum(across / unit - texture, 0.0), np.maximum(down / unit - texture, 0.0)


def all_pairs_geodesic(features: np.ndarray, texture: float = TEXTURE) -> np.ndarray:
    """Geodesic distances [n, n] between the n = h x w cells of a feature grid [h, w, C].

    Exact shortest paths for every source at once, by fast sweeping: each round sweeps the grid
    left to right, right to left, top to bottom and bottom to top, each column (row) taking the
    best of its own distance and its neighbour's plus the step, so that one sweep carries a path
    the whole width of the grid; rounds repeat until nothing moves (a dozen or so on a 16 x 16
    grid, where a pass that moves every cell one hop at a time needs about as many passes as the
    longest path has hops). Every distance is the sum of its path's steps from the source outward,
    the same sums in the same order whatever the schedule, so the result is exactly that of any
    other relaxation order. In numpy because importing scipy.sparse.csgraph costs more than the
    computation on a 16 x 16 grid, and segmenting a photo from the command line imports no scipy."""
    h, w = features.shape[:2]
    return all_pairs_along_steps(*_steps(features.reshape(h, w, -1), texture))


def all_pairs_along_steps(across: np.ndarray, down: np.ndarray) -> np.ndarray:
    """All-pairs shortest paths [n, n] over an h x w grid whose edge costs are `across` [h, w-1]
    and `down` [h-1, w] (see all_pairs_geodesic)."""
    h, w = across.shape[0], across.shape[1] + 1
    across, down = (step.astype(np.float32)[:, :, None] for step in (across, down))
    n = h * w
    # [row, column, source]: a column or a row of the grid is then one block of memory per step.
    # float32: half the memory traffic of float64, and distances of a few units need no more.
    distance = np.full((h, w, n), np.inf, dtype=np.float32)
    distance.reshape(n, n)[np.arange(n), np.arange(n)] = 0.0
    while True:
        before = distance.copy()
        for x in range(1, w):
            np.minimum(distance[:, x], distance[:, x - 1] + across[:, x - 1], out=distance[:, x])
        for x in range(w - 2, -1, -1):
            np.minimum(distance[:, x], distance[:, x + 1] + across[:, x], out=distance[:, x])
        for y in range(1, h):
            np.minimum(distance[y], distance[y - 1] + down[y - 1], out=distance[y])
        for y in range(h - 2, -1, -1):
            np.minimum(distance[y], distance[y + 1] + down[y], out=distance[y])
        if np.array_equal(distance, before):
            break
    return distance.reshape(n, n).T.astype(np.float64)  # [source, cell]


def geodesic_background_probability(features: np.ndarray, sigma: float = SIGMA, bndcon_sigma: float = BNDCON_SIGMA,
                                    texture: float = TEXTURE) -> np.ndarray:
    """Per cell of a feature grid [h, w, C]: Area(p) = sum_q exp(-d(p, q)^2 / 2 sigma^2),
    Len(p) = the same sum over border cells q, BndCon = Len / sqrt(Area), and the background
    probability 1 - exp(-BndCon^2 / 2 bndcon_sigma^2); returns [h, w]."""
    h, w = features.shape[:2]
    return background_probability_from_distances(all_pairs_geodesic(features, texture), h, w, sigma, bndcon_sigma)


def background_probability_from_distances(distances: np.ndarray, h: int, w: int, sigma: float = SIGMA,
                                          bndcon_sigma: float = BNDCON_SIGMA) -> np.ndarray:
    """Zhu et al.'s background probability [h, w] from all-pairs geodesic distances [n, n] between
    the cells of an h x w grid (shared with the geodesic foreground rule, which gets its distances
    from scipy's Dijkstra on the full grid)."""
    from segtool.pipeline.foreground.cues import border_cells

    similarity = np.exp(-(distances ** 2) / (2 * sigma ** 2))
    area = similarity.sum(axis=1)
    length = similarity[:, border_cells(h, w).ravel()].sum(axis=1)
    bndcon = length / np.sqrt(area)
    return (1 - np.exp(-(bndcon ** 2) / (2 * bndcon_sigma ** 2))).reshape(h, w)


def geodesic_objectness_grid(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """The cue per cell of a height x width grid over an RGB image: 1 - the geodesic background
    probability of the cells' standardised mean Lab colour, computed on a grid COARSENING times
    coarser and repeated over the cells; [height, width] in [0, 1]."""
    import cv2

    from segtool.pipeline.features import colour_grid, standardise

    coarse = (max(2, height // COARSENING), max(2, width // COARSENING))
    objectness = 1.0 - geodesic_background_probability(standardise(colour_grid(image, coarse)))
    return cv2.resize(objectness.astype(np.float32), (width, height), interpolation=cv2.INTER_NEAREST)
