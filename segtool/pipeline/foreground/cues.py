"""Per-cluster cues of objectness on a feature grid: what the cluster scorer weighs.

Each cue is scale-free (a fraction, or a distance relative to the image's own spread), so the
same weights serve grids of any size and feature sets of any dimension:

    boundary_connectivity  border cells of the cluster / sqrt(cells)          (Zhu et al. 2014)
    border_share           border cells of the cluster / all border cells
    size                   cells of the cluster / all cells
    centre_distance        mean distance of its cells from the grid centre (0 centre, 1 corner)
    spread                 spatial standard deviation of its cells / sqrt(cells): scattered
                           clusters score high, compact blobs low
    contrast_to_border     distance of its mean feature from the mean feature of the border
                           cells, in units of the mean such distance over all cells
    contrast_to_rest       the same for the mean feature of all other cells
    vertical_offset        |centroid row index / height - 1/2| (indices from 0, as the shipped
    horizontal_offset      |centroid column index / width - 1/2|  scorers were fit: a centred
                           cluster reads 1/(2 x side), not 0)

and, when a saliency grid is given (a scorer that weighs it: SALIENCY_CUE in its cues),

    saliency               mean over its cells of the image's RBD saliency vote on the grid
                           (segtool.pipeline.saliency.saliency_cue_grid): a cue computed from
                           the pixels, not the features, so it holds when the features do not
                           separate object from background

and, when a geodesic grid is given (a scorer that weighs it: GEODESIC_CUE in its cues),

    geodesic_objectness    mean over its cells of 1 - the geodesic background probability of
                           the cells' colour (segtool.pipeline.foreground.geodesic_cue): low
                           where the border reaches the cell by small colour steps
"""

from __future__ import annotations

import numpy as np

CUE_NAMES = ("boundary_connectivity", "border_share", "size", "centre_distance", "spread",
             "contrast_to_border", "contrast_to_rest", "vertical_offset", "horizontal_offset")
SALIENCY_CUE = "saliency"
GEODESIC_CUE = "geodesic_objectness"  # named here too so that reading cues never imports the computation


def border_cells(h: int, w: int) -> np.ndarray:
    b = np.zeros((h, w), dtype=bool)
    b[0, :] = b[-1, :] = b[:, 0] = b[:, -1] = True
    return b


def cluster_cues(labels: np.ndarray, features: np.ndarray, saliency: np.ndarray | None = None,
                 geodesic: np.ndarray | None = None) -> tuple[np.ndarray, list[int]]:
    """Cues [clusters, len(CUE_NAMES)] of a label grid [h, w] over a feature grid [h, w, C],
    and the cluster ids in the same order; with a saliency grid [h, w], one more column, the
    SALIENCY_CUE, and with a geodesic objectness grid [h, w], one more after it, the GEODESIC_CUE."""
    h, w = labels.shape
    if features.shape[:2] != (h, w):
        raise ValueError(f"labels are {h}x{w} but features are {features.shape[0]}x{features.shape[1]}")
    for name, grid in (("saliency", saliency), ("geodesic", geodesic)):
        if grid is not None and grid.shape != (h, w):
            raise ValueError(f"labels are {h}x{w} but the {name} grid is {grid.shape[0]}x{grid.shape[1]}")
    border = border_cells(h, w)
    rows, cols = np.mgrid[0:h, 0:w]
    # The same normalisation on both axes keeps the cue a distance from the centre on any aspect.
    centre = np.hypot((rows + 0.5 - h / 2) / (h / 2), (cols + 0.5 - w / 2) / (w / 2)) / np.sqrt(2)
    flat = features.reshape(h, w, -1).astype(np.float64)
    border_mean = flat[border].mean(axis=0)
    offsets = flat - border_mean
    spread_unit = np.sqrt(np.einsum("ijc,ijc->ij", offsets, offsets)).mean() + 1e-6  # norm(axis=-1) is 10x slower

    # Every per-cluster sum as one product with the clusters' indicator matrix, rather than a
    # boolean copy of the [cells, C] features per cluster: the scorer asks for every k of the vote.
    ids, inverse = np.unique(labels, return_inverse=True)
    member = np.zeros((len(ids), h * w))
    member[inverse.ravel(), np.arange(h * w)] = 1.0
    n = member.sum(axis=1)
    cells = flat.reshape(h * w, -1)
    sums = member @ cells
    mean = sums / n[:, None]
    others = np.maximum(h * w - n, 1)[:, None]
    rest = np.where((n < h * w)[:, None], (cells.sum(axis=0)[None, :] - sums) / others, mean)
    on_border = member @ border.ravel().astype(np.float64)
    r, c = rows.ravel().astype(np.float64), cols.ravel().astype(np.float64)
    row_mean, col_mean = member @ r / n, member @ c / n
    row_var = np.maximum(member @ (r * r) / n - row_mean ** 2, 0.0)  # E[x^2] - E[x]^2, per cluster
    col_var = np.maximum(member @ (c * c) / n - col_mean ** 2, 0.0)
    cues = np.stack([
        on_border / np.sqrt(n),
        on_border / border.sum(),
        n / (h * w),
        member @ centre.ravel() / n,
        np.hypot(np.sqrt(row_var), np.sqrt(col_var)) / np.sqrt(n),
        np.linalg.norm(mean - border_mean, axis=1) / spread_unit,
        np.linalg.norm(mean - rest, axis=1) / spread_unit,
        np.abs(row_mean / h - 0.5),
        np.abs(col_mean / w - 0.5),
    ] + [member @ grid.ravel().astype(np.float64) / n for grid in (saliency, geodesic) if grid is not None], axis=1)
    return cues, [int(c) for c in ids]
