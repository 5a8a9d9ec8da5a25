"""SLIC superpixels (Achanta et al., TPAMI 2012) and Otsu's threshold for the saliency vote,
without the imports that made every cold `segment` 0.7 s slower.

`skimage.segmentation.slic` pulls in scipy.cluster, scipy.spatial, scipy.ndimage, scipy.linalg
and skimage.color when its module loads, though its default path uses none of them. Here the
same steps run with the same compiled kernels: the RGB image scaled to [0, 1] by its own range,
converted to CIE Lab (D65, 2 degrees, the formulas of skimage.color.rgb2lab), seeds on
skimage.util.regular_grid, skimage's compiled SLIC iterations, then its connectivity
enforcement. The labels are identical to `slic(image, n_segments, compactness, start_label=0)`
(tests/test_rbd.py checks it on photos and noise). Where a scikit-image release no longer has
those kernels, the public `slic` runs instead: slower to import, the same superpixels.
"""

from __future__ import annotations

import numpy as np

SLIC_ITERATIONS = 10        # skimage's max_num_iter
MIN_SIZE_FACTOR = 0.5       # superpixels under half the mean size are merged into a neighbour
MAX_SIZE_FACTOR = 3.0


def _compiled_slic():
    """skimage's compiled SLIC kernels, or None where this scikit-image release lacks them."""
    try:
        from skimage.segmentation._slic import _enforce_label_connectivity_cython, _slic_cython
    except ImportError:
        return None
    return _slic_cython, _enforce_label_connectivity_cython


def slic_labels(image: np.ndarray, n_segments: int = 200, compactness: float = 10.0) -> np.ndarray:
    """SLIC superpixel ids (from 0) of an RGB uint8 image [H, W, 3], about `n_segments` of them,
    exactly as `skimage.segmentation.slic(image, n_segments, compactness, start_label=0,
    channel_axis=-1)` gives them."""
    kernels = _compiled_slic()
    if kernels is not None:
        try:
            return _slic_with(kernels, image, n_segments, compactness)
        except TypeError:  # the kernels' signature changed in this release
            pass
    from skimage.segmentation import slic

    return slic(image, n_segments=n_segments, compactness=compactness, start_label=0, channel_axis=-1)


def _slic_with(kernels, image: np.ndarray, n_segments: int, compactness: float) -> np.ndarray:
    from skimage.util import img_as_float, regular_grid

    from segtool.io.colour import rgb_to_lab

    slic_kernel, enforce_connectivity = kernels
    scaled = img_as_float(image[..., :3]).astype(np.float64, copy=True)
    low, high = scaled.min(), scaled.max()
    scaled -= low
    if high != low:
        scaled /= high - low  # compactness means the same on a dark photo as on a bright one
    volume = rgb_to_lab(scaled)[np.newaxis]  # the kernels take a 3-D volume of depth 1
    depth, height, width = volume.shape[:3]

    slices = regular_grid((depth, height, width), n_segments)
    grid = np.mgrid[:depth, :height, :width]
    seeds = np.stack([axis[slices].ravel() for axis in grid], axis=-1)
    steps = [float(s.step) if s.step is not None else 1.0 for s in slices]
    segments = np.ascontiguousarray(np.concatenate([seeds, np.zeros((len(seeds), 3))], axis=-1), dtype=np.float64)
    volume = np.ascontiguousarray(volume / compactness, dtype=np.float64)
    spacing = np.ones(3, dtype=np.float64)
    labels = slic_kernel(volume, None, segments, max(steps), SLIC_ITERATIONS, spacing, False,
                         ignore_color=False, start_label=0)
    segment_size = depth * height * width / len(seeds)
    labels = enforce_connectivity(labels, int(MIN_SIZE_FACTOR * segment_size), int(MAX_SIZE_FACTOR * segment_size),
                                  start_label=0)
    return labels[0]


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of float values over a `bins`-bin histogram of their range: the bin centre
    that maximises the between-class variance, as skimage.filters.threshold_otsu gives it (the one
    value when all are equal)."""
    values = np.asarray(values).ravel()
    first = values[0]
    if np.all(values == first):
        return float(first)
    counts, edges = np.histogram(values, bins=bins, range=(values.min(), values.max()))
    centres = (edges[:-1] + edges[1:]) / 2
    weight_below = np.cumsum(counts)
    weight_above = np.cumsum(counts[::-1])[::-1]
    mean_below = np.cumsum(counts * centres) / weight_below
    mean_above = (np.cumsum((counts * centres)[::-1]) / weight_above[::-1])[::-1]
    between = weight_below[:-1] * weight_above[1:] * (mean_below[:-1] - mean_above[1:]) ** 2
    return float(centres[int(np.argmax(between))])


def all_pairs_shortest_paths(weights: np.ndarray) -> np.ndarray:
    """Shortest path lengths between all nodes of an undirected graph given as a dense symmetric
    [n, n] matrix of edge costs (np.inf: no edge), by Floyd-Warshall: n vectorised relaxations,
    which for the ~200 superpixels of RBD cost a few milliseconds and no scipy.sparse import."""
    distance = np.array(weights, np.float64)
    np.fill_diagonal(distance, 0.0)
    for k in range(len(distance)):
        np.minimum(distance, distance[:, k, None] + distance[None, k, :], out=distance)
    return distance

