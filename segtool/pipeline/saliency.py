"""Robust background detection (RBD) saliency, a classical baseline.

Zhu, Liang, Wei and Sun, "Saliency Optimization from Robust Background Detection", CVPR 2014.
The image is cut into SLIC superpixels; a superpixel is background when the region it belongs
to touches the image border much more than a compact object would (boundary connectivity,
measured with geodesic colour distances); saliency is the minimiser of a quadratic cost that
pulls background superpixels to 0, contrast-weighted foreground superpixels to 1 and keeps
similar neighbours alike. `rbd_mask` thresholds the saliency with Otsu.

Superpixels, Lab colour, Otsu's threshold and the geodesic distances come from
segtool.pipeline.superpixels, which gives scikit-image's results without importing
skimage.segmentation, skimage.color, skimage.filters or scipy: those imports cost a cold
`segment` 0.7 s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The paper's values (section 3 and 4): colour sigma in Lab units, boundary-connectivity sigma,
# spatial sigma on positions normalised to [0, 1], and the smoothness floor mu.
SIGMA_CLR = 10.0
SIGMA_BNDCON = 1.0
SIGMA_SPA = 0.25
MU = 0.1


@dataclass
class SuperpixelGraph:
    labels: np.ndarray      # int [H, W]: superpixel id per pixel, 0..n-1
    lab: np.ndarray         # float [n, 3]: mean Lab colour per superpixel
    centroids: np.ndarray   # float [n, 2]: mean (row, column) per superpixel, divided by (H, W)
    adjacent: np.ndarray    # int [m, 2]: pairs (i < j) of superpixels touching horizontally or vertically
    boundary: np.ndarray    # bool [n]: the superpixel touches the image border

    @property
    def n(self) -> int:
        return len(self.lab)


@dataclass
class RBDResult:
    labels: np.ndarray       # int [H, W] superpixel ids
    saliency: np.ndarray     # float [n] per superpixel, in [0, 1]
    background: np.ndarray   # float [n]: w_bg, the background probability per superpixel
    bndcon: np.ndarray       # float [n]: boundary connectivity per superpixel

    def pixel_saliency(self) -> np.ndarray:
        return self.saliency[self.labels]


def _as_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if image.ndim != 3 or image.shape[2] < 3:
        raise ValueError(f"expected an RGB image H x W x 3, got shape {image.shape}")
    return image[..., :3]


def superpixel_graph(image: np.ndarray, n_segments: int = 200, compactness: float = 10.0) -> SuperpixelGraph:
    """SLIC superpixels (about `n_segments`, `compactness` as in skimage.segmentation.slic) of
    an RGB image, with their mean Lab colours, normalised centroids, 4-adjacency and border contact."""
    from skimage.util import img_as_float

    from segtool.io.colour import rgb_to_lab
    from segtool.pipeline.superpixels import slic_labels

    image = _as_rgb(image)
    h, w = image.shape[:2]
    raw = slic_labels(image, n_segments=n_segments, compactness=compactness)
    _, labels = np.unique(raw, return_inverse=True)  # ids 0..n-1 whatever SLIC left out
    labels = labels.reshape(h, w)
    n = int(labels.max()) + 1
    counts = np.bincount(labels.ravel(), minlength=n).astype(np.float64)

    lab_image = rgb_to_lab(img_as_float(image)).reshape(-1, 3)
    lab = np.stack([np.bincount(labels.ravel(), weights=lab_image[:, c], minlength=n) for c in range(3)], axis=1)
    lab /= counts[:, None]
    rows, cols = np.mgrid[0:h, 0:w]
    centroids = np.stack([np.bincount(labels.ravel(), weights=rows.ravel() + 0.5, minlength=n) / h,
                          np.bincount(labels.ravel(), weights=cols.ravel() + 0.5, minlength=n) / w], axis=1)
    centroids /= counts[:, None]

    pairs = np.concatenate([np.stack([labels[:, :-1].ravel(), labels[:, 1:].ravel()], axis=1),
                            np.stack([labels[:-1, :].ravel(), labels[1:, :].ravel()], axis=1)])
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    pairs = np.unique(np.sort(pairs, axis=1), axis=0) if len(pairs) else np.zeros((0, 2), np.int64)

    boundary = np.zeros(n, bool)
    boundary[np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])] = True
    return SuperpixelGraph(labels, lab, centroids, pairs, boundary)


def geodesic_distances(graph: SuperpixelGraph, link_boundary: bool = True) -> np.ndarray:
    """All-pairs geodesic distance [n, n]: shortest paths over adjacent superpixels, each step
    costing the Lab distance of their means. With `link_boundary` every pair of border
    superpixels is also joined at cost 0, so the whole border acts as one region (as in the paper)."""
    from segtool.pipeline.superpixels import all_pairs_shortest_paths

    n = graph.n
    i, j = graph.adjacent[:, 0], graph.adjacent[:, 1]
    # Identical neighbours and linked border superpixels get a tiny positive cost rather than 0
    # (scipy's csgraph, used before, read an explicit 0 as "no edge"): kept so distances are unchanged.
    weights = np.maximum(np.linalg.norm(graph.lab[i] - graph.lab[j], axis=1), 1e-9)
    if link_boundary:
        keep = ~(graph.boundary[i] & graph.boundary[j])  # border pairs get the link instead
        border = np.flatnonzero(graph.boundary)
        bi, bj = np.triu_indices(len(border), k=1)
        i = np.concatenate([i[keep], border[bi]])
        j = np.concatenate([j[keep], border[bj]])
        weights = np.concatenate([weights[keep], np.full(len(bi), 1e-9)])
    costs = np.full((n, n), np.inf)
    costs[i, j] = costs[j, i] = weights  # each pair once: adjacency pairs are unique, border pairs replace theirs
    return all_pairs_shortest_paths(costs)


def boundary_connectivity(graph: SuperpixelGraph, geodesic: np.ndarray,
                          sigma_clr: float = SIGMA_CLR) -> np.ndarray:
    """BndCon(p) = Len_bnd(p) / sqrt(Area(p)), where Area(p) = sum_q exp(-d_geo(p,q)^2 / (2 sigma_clr^2))
    is the soft area of the region p belongs to and Len_bnd(p) is the same sum over border superpixels."""
    similarity = np.exp(-geodesic ** 2 / (2 * sigma_clr ** 2))
    area = similarity.sum(axis=1)
    length = similarity[:, graph.boundary].sum(axis=1)
    return length / np.sqrt(area)


def background_probability(bndcon: np.ndarray, sigma_bndcon: float = SIGMA_BNDCON) -> np.ndarray:
    """w_bg = 1 - exp(-BndCon^2 / (2 sigma_bndcon^2)): near 1 for regions that hug the border."""
    return 1.0 - np.exp(-bndcon ** 2 / (2 * sigma_bndcon ** 2))


def weighted_contrast(graph: SuperpixelGraph, w_bg: np.ndarray, sigma_spa: float = SIGMA_SPA) -> np.ndarray:
    """Background-weighted contrast, the foreground weight w_fg (scaled to [0, 1]):
    w_fg(p) = sum_q d_app(p,q) w_spa(p,q) w_bg(q), w_spa = exp(-d_spa^2 / (2 sigma_spa^2)) on
    normalised centroids. Contrast against likely background counts, against likely object not."""
    d_app = np.linalg.norm(graph.lab[:, None] - graph.lab[None], axis=2)
    d_spa = np.linalg.norm(graph.centroids[:, None] - graph.centroids[None], axis=2)
    contrast = (d_app * np.exp(-d_spa ** 2 / (2 * sigma_spa ** 2)) * w_bg[None]).sum(axis=1)
    return _unit_range(contrast)


def optimise_saliency(graph: SuperpixelGraph, w_bg: np.ndarray, w_fg: np.ndarray,
                      sigma_clr: float = SIGMA_CLR, mu: float = MU) -> np.ndarray:
    """The paper's saliency optimisation: s minimising
    sum_i w_bg_i s_i^2 + sum_i w_fg_i (s_i - 1)^2 + sum_(i,j adjacent) w_ij (s_i - s_j)^2,
    w_ij = exp(-d_app(i,j)^2 / (2 sigma_clr^2)) + mu, i.e. (diag(w_bg) + diag(w_fg) + L) s = w_fg
    with L the graph Laplacian of w_ij. Returned scaled to [0, 1]."""
    n = graph.n
    i, j = graph.adjacent[:, 0], graph.adjacent[:, 1]
    d_app = np.linalg.norm(graph.lab[i] - graph.lab[j], axis=1)
    w = np.exp(-d_app ** 2 / (2 * sigma_clr ** 2)) + mu
    laplacian = np.zeros((n, n))
    np.add.at(laplacian, (i, j), -w)
    np.add.at(laplacian, (j, i), -w)
    laplacian[np.diag_indices(n)] = -laplacian.sum(axis=1)
    system = laplacian + np.diag(w_bg + w_fg)
    try:
        s = np.linalg.solve(system, w_fg)
    except np.linalg.LinAlgError:  # every weight 0: singular; the least-squares answer is as good
        s = np.linalg.lstsq(system, w_fg, rcond=None)[0]
    return _unit_range(s)


def _unit_range(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, np.float64)
    low, high = float(values.min()), float(values.max())
    if not np.isfinite(high - low) or high - low <= 1e-12:
        return np.zeros_like(values)
    return (values - low) / (high - low)


def rbd(image: np.ndarray, n_segments: int = 200, compactness: float = 10.0, link_boundary: bool = True,
        sigma_clr: float = SIGMA_CLR, sigma_bndcon: float = SIGMA_BNDCON, sigma_spa: float = SIGMA_SPA,
        mu: float = MU) -> RBDResult:
    """RBD saliency per superpixel (Zhu et al., CVPR 2014), with the superpixels and the
    background probabilities. Parameters as in `rbd_saliency`."""
    graph = superpixel_graph(image, n_segments=n_segments, compactness=compactness)
    bndcon = boundary_connectivity(graph, geodesic_distances(graph, link_boundary), sigma_clr)
    w_bg = background_probability(bndcon, sigma_bndcon)
    w_fg = weighted_contrast(graph, w_bg, sigma_spa)
    saliency = optimise_saliency(graph, w_bg, w_fg, sigma_clr, mu)
    return RBDResult(graph.labels, saliency, w_bg, bndcon)


def rbd_saliency(image: np.ndarray, n_segments: int = 200, compactness: float = 10.0, link_boundary: bool = True,
                 sigma_clr: float = SIGMA_CLR, sigma_bndcon: float = SIGMA_BNDCON, sigma_spa: float = SIGMA_SPA,
                 mu: float = MU) -> np.ndarray:
    """Robust-background-detection saliency (Zhu, Liang, Wei, Sun, "Saliency Optimization from
    Robust Background Detection", CVPR 2014) of an RGB image: a float map H x W in [0, 1].

    n_segments, compactness: SLIC superpixels (about n_segments of them).
    link_boundary: join all border superpixels at geodesic cost 0, so the border is one region.
    sigma_clr: Lab-distance scale of the geodesic area and of the smoothness weights (10).
    sigma_bndcon: boundary-connectivity scale of the background probability (1).
    sigma_spa: spatial scale of the weighted contrast, on positions normalised to [0, 1] (0.25).
    mu: smoothness weight floor between adjacent superpixels (0.1).
    """
    return rbd(image, n_segments, compactness, link_boundary, sigma_clr, sigma_bndcon, sigma_spa,
               mu).pixel_saliency()


def rbd_mask(image: np.ndarray, **settings) -> np.ndarray:
    """RBD saliency thresholded with Otsu: bool H x W, saliency > threshold. A constant map has
    no Otsu threshold; then the superpixels with background probability < 0.5 are the foreground
    (none, an empty mask, when every superpixel looks like background)."""
    from segtool.pipeline.superpixels import otsu_threshold

    result = rbd(image, **settings)
    saliency = result.pixel_saliency()
    if float(saliency.max() - saliency.min()) <= 1e-12:
        return (result.background < 0.5)[result.labels]
    return saliency > otsu_threshold(saliency)


# RBD runs on a copy of about this many pixels: its superpixels (about 200) need no more, and the
# saliency is blended into the pipeline's map at any size (segtool.pipeline.segmenters).
VOTE_WORK_PIXELS = 128 * 128


def saliency_vote(image: np.ndarray, height: int, width: int, gain: float = 1.0) -> np.ndarray:
    """RBD saliency as a vote in [0, 1] at height x width: 0.5 + gain x (saliency - its Otsu
    threshold), clipped, so that 1/2 is where `rbd_mask` cuts. A constant saliency map (no Otsu
    threshold) votes 1 on the superpixels with background probability < 0.5 and 0 elsewhere."""
    return vote_from_rbd(rbd_on_work_copy(image), height, width, gain)


# Above this estimated noise (sigma on [0, 1]; clean photos read about 0.01, and 5 of the 2,146
# crops of the three labelled sets read above it, the highest 0.058), RBD reads a copy smoothed
# in proportion to the noise.
NOISE_FLOOR = 0.04


def cue_work_copy(image: np.ndarray) -> np.ndarray:
    """The copy of the image that the pixel cues read (RBD saliency, and the scorer's geodesic
    cue): the image itself, or a copy of about VOTE_WORK_PIXELS when it is larger; smoothed when
    the image is noisy.

    Why smooth: RBD's geodesic distances add up colour steps between neighbouring superpixels, and
    noise puts a step on every edge, so every region looks small and far from the border and
    nearly the whole image reads salient (with Gaussian noise of sigma 0.2 the saliency cue was
    above 1/2 on 92% of the cells of 14 noisy lesion crops, against 23% clean, and the scorer, which
    weighs it, took almost every cluster). A Gaussian blur of 1 + 10 sigma pixels, sigma estimated from the image itself,
    brings the superpixels' colours back to the scene's (docs/PIPELINE.md, "Noise"). The geodesic
    cue adds up colour steps between cells in the same way, and reads the same copy."""
    from segtool.pipeline.features import shrink_to_pixels
    from segtool.pipeline.refine import estimate_noise_sigma

    copy = shrink_to_pixels(_as_rgb(image), VOTE_WORK_PIXELS, min_side=8)
    sigma = estimate_noise_sigma(copy)
    if sigma > NOISE_FLOOR:
        import cv2

        copy = cv2.GaussianBlur(np.ascontiguousarray(copy), (0, 0), 1.0 + 10.0 * sigma)
    return copy


def rbd_on_work_copy(image: np.ndarray) -> RBDResult:
    """RBD of the pixel cues' copy of the image (cue_work_copy: at most about VOTE_WORK_PIXELS,
    smoothed when noisy)."""
    return rbd(cue_work_copy(image))


def saliency_cue_grid(result: RBDResult, height: int, width: int) -> np.ndarray:
    """The cluster scorer's saliency cue per cell of a height x width grid: the vote at gain 1
    on the RBD's own pixels, averaged over each cell (area resampling)."""
    import cv2

    vote = vote_from_rbd(result, *result.labels.shape)
    return cv2.resize(vote, (width, height), interpolation=cv2.INTER_AREA)


def vote_from_rbd(result: RBDResult, height: int, width: int, gain: float = 1.0) -> np.ndarray:
    """saliency_vote's map from an RBD result (so that several gains can share one RBD)."""
    import cv2

    from segtool.pipeline.superpixels import otsu_threshold

    saliency = result.pixel_saliency()
    if float(saliency.max() - saliency.min()) <= 1e-12:
        vote = (result.background < 0.5)[result.labels].astype(np.float32)
    else:
        vote = np.clip(0.5 + gain * (saliency - otsu_threshold(saliency)), 0.0, 1.0).astype(np.float32)
    if vote.shape != (height, width):
        vote = cv2.resize(vote, (width, height), interpolation=cv2.INTER_LINEAR)
    return vote
